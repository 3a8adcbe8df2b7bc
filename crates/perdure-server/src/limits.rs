//! What one client may hold of the server: the [`Limits`] both doors
//! share (timeouts, connections, request memory, long-poll waits, URI
//! length) and [`Waits`], the cap on long-poll waits in progress.

use std::sync::Arc;
use std::time::Duration;
use tokio::sync::{OwnedSemaphorePermit, Semaphore};

/// Bounds that keep slow and greedy clients from starving the others.
/// The defaults suit a server for a team; every bound is a setting.
#[derive(Clone, Debug)]
pub struct Limits {
    /// How long a connection may take to send a request's headers, and how
    /// long a kept-alive HTTP connection may sit without a request (the
    /// two are one clock: waiting for the next request is waiting for its
    /// headers). A gRPC connection must send its first bytes within it.
    pub header_timeout: Duration,
    /// How long a request's body may take to arrive (answered 408).
    pub body_timeout: Duration,
    /// How long a write to a client may stay blocked (a client that stops
    /// reading its response) before the connection is closed.
    pub write_timeout: Duration,
    /// Connections held at once, per door; later ones wait in the
    /// listener's backlog until one closes.
    pub max_connections: usize,
    /// Bytes of request bodies held in memory at once, over all HTTP
    /// requests; a body that would pass it waits for room until its body
    /// timeout, then is answered 503.
    pub max_body_bytes_in_flight: usize,
    /// Long-poll waits at once, over both doors (HTTP starts with
    /// `timeout`, gRPC `WaitForInstanceStart`/`Completion`). Past it an
    /// HTTP start answers 202 at once and gRPC answers RESOURCE_EXHAUSTED.
    pub max_waits: usize,
    /// The longest request target (path and query) the HTTP door reads,
    /// in bytes (longer: 414).
    pub max_uri_bytes: usize,
    /// How often a gRPC connection is pinged, and how long the answer may
    /// take before the connection is closed (a peer that vanished).
    pub grpc_keepalive: Duration,
    /// Concurrent calls on one gRPC connection.
    pub grpc_max_streams: u32,
}

impl Default for Limits {
    fn default() -> Self {
        Limits {
            header_timeout: Duration::from_secs(30),
            body_timeout: Duration::from_secs(60),
            write_timeout: Duration::from_secs(60),
            max_connections: 1024,
            max_body_bytes_in_flight: 256 * 1024 * 1024,
            max_waits: 1000,
            max_uri_bytes: 16 * 1024,
            grpc_keepalive: Duration::from_secs(30),
            grpc_max_streams: 1000,
        }
    }
}

/// The long-poll waits in progress, shared by both doors.
#[derive(Clone, Debug)]
pub struct Waits(Arc<Semaphore>);

impl Waits {
    pub fn new(max: usize) -> Self {
        Waits(Arc::new(Semaphore::new(max)))
    }

    /// A slot for one wait, or `None` when every slot is taken.
    pub fn try_start(&self) -> Option<OwnedSemaphorePermit> {
        self.0.clone().try_acquire_owned().ok()
    }
}

impl Default for Waits {
    fn default() -> Self {
        Waits::new(Limits::default().max_waits)
    }
}

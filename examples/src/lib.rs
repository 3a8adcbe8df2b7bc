//! The seed documents' patterns as Perdure orchestrations and activities,
//! shared by `perdure demo`, `perdure worker`, the runnable examples in
//! `examples/examples/` and the end-to-end tests. [`registry`] registers
//! them all.

pub mod approval;
pub mod chaining;
pub mod devices;
pub mod error_handling;
pub mod eternal;
pub mod fan_out;
pub mod monitor;

use perdure::{Client, Registry};

/// Every sample orchestration and activity. Activities that play an outside
/// party (a device acknowledging a download) use `client` to raise events.
pub fn registry(client: Client) -> Registry {
    let mut r = Registry::new();
    chaining::register(&mut r);
    fan_out::register(&mut r);
    monitor::register(&mut r);
    approval::register(&mut r);
    devices::register(&mut r, client);
    error_handling::register(&mut r);
    eternal::register(&mut r);
    r
}

//! Request bodies, read once: within the body timeout (408 after it),
//! at most the largest payload plus room for its framing (413 beyond it,
//! at once when `Content-Length` says so), and within the server's budget
//! of body bytes held in memory at once, over all requests (a body waits
//! for room until its timeout, then 503). The handlers then see the body
//! as one buffer: no copy is made on the way to them. The gRPC door's
//! bodies ([`TimedBody`]) keep the same timeout and a budget of their own.

use crate::wire;
use crate::AppState;
use axum::body::{Body, Bytes};
use axum::extract::{Request, State};
use axum::http::{header, StatusCode};
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};
use http_body_util::BodyExt;
use hyper::body::Body as _;
use std::sync::Arc;
use tokio::sync::{OwnedSemaphorePermit, Semaphore};
use tokio::time::Instant;

/// The largest body the HTTP door reads: the largest payload, and room
/// for what surrounds it.
pub const MAX_BODY_BYTES: usize = perdure::MAX_PAYLOAD_BYTES + 64 * 1024;

/// The budget is counted in KiB, so that it fits a semaphore's count.
const UNIT: usize = 1024;

/// The server's budget of body bytes in memory.
pub(crate) struct BodyBudget(Arc<Semaphore>);

impl BodyBudget {
    pub(crate) fn new(bytes: usize) -> Self {
        // Room for one largest body at least, or no large body could ever pass.
        let bytes = bytes.max(MAX_BODY_BYTES);
        BodyBudget(Arc::new(Semaphore::new(bytes.div_ceil(UNIT))))
    }

    async fn take(
        &self,
        bytes: usize,
        deadline: Instant,
    ) -> Result<Option<OwnedSemaphorePermit>, Response> {
        let units = u32::try_from(bytes.div_ceil(UNIT)).unwrap_or(u32::MAX);
        if units == 0 {
            return Ok(None);
        }
        match tokio::time::timeout_at(deadline, self.0.clone().acquire_many_owned(units)).await {
            Ok(Ok(p)) => Ok(Some(p)),
            _ => Err(busy()),
        }
    }
}

fn busy() -> Response {
    wire::error(
        StatusCode::SERVICE_UNAVAILABLE,
        "ServerBusy",
        "the server holds as many request bodies as it may; try again shortly",
    )
    .into_response()
}

fn too_large(size: usize) -> Response {
    wire::error(
        StatusCode::PAYLOAD_TOO_LARGE,
        "PayloadTooLarge",
        format!("the request body is {size} bytes or more; the limit is {MAX_BODY_BYTES}"),
    )
    .into_response()
}

fn too_slow() -> Response {
    wire::error(
        StatusCode::REQUEST_TIMEOUT,
        "RequestTimeout",
        "the request body did not arrive in time",
    )
    .into_response()
}

/// Reads the body (see the module's doc), then runs the request.
pub(crate) async fn read_body(
    State(state): State<Arc<AppState>>,
    req: Request,
    next: Next,
) -> Response {
    let (parts, body) = req.into_parts();
    if body.is_end_stream() {
        return next.run(Request::from_parts(parts, body)).await;
    }
    let declared = parts
        .headers
        .get(header::CONTENT_LENGTH)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.parse::<usize>().ok());
    if let Some(n) = declared.filter(|n| *n > MAX_BODY_BYTES) {
        return too_large(n);
    }
    let deadline = Instant::now() + state.config.limits.body_timeout;
    let mut held = Vec::new();
    let mut room = 0;
    if let Some(n) = declared {
        match state.body_budget.take(n, deadline).await {
            Ok(p) => held.extend(p),
            Err(r) => return r,
        }
        room = n;
    }
    let mut buf = Vec::with_capacity(room);
    let mut body = body;
    loop {
        let frame = match tokio::time::timeout_at(deadline, body.frame()).await {
            Err(_) => return too_slow(),
            Ok(None) => break,
            Ok(Some(Err(e))) => {
                return wire::error(
                    StatusCode::BAD_REQUEST,
                    "BadRequest",
                    format!("the request body could not be read: {e}"),
                )
                .into_response()
            }
            Ok(Some(Ok(frame))) => frame,
        };
        let Ok(data) = frame.into_data() else {
            continue;
        };
        let need = buf.len() + data.len();
        if need > MAX_BODY_BYTES {
            return too_large(need);
        }
        if need > room {
            // A body longer than it said, or without a length: room for
            // what arrived (doubling, as the buffer grows).
            let more = need.max(room * 2).min(MAX_BODY_BYTES) - room;
            match state.body_budget.take(more, deadline).await {
                Ok(p) => held.extend(p),
                Err(r) => return r,
            }
            room += more;
        }
        buf.extend_from_slice(&data);
    }
    let req = Request::from_parts(parts, Body::from(Bytes::from(buf)));
    let resp = next.run(req).await;
    drop(held);
    resp
}

/// A gRPC request body under the same rules as an HTTP one: it must
/// arrive within the body timeout (counted from the request's headers),
/// and what it has read holds room in the door's memory budget until the
/// body is dropped (past the budget: RESOURCE_EXHAUSTED).
pub(crate) struct TimedBody {
    inner: tonic::body::Body,
    deadline: std::pin::Pin<Box<tokio::time::Sleep>>,
    budget: Arc<Semaphore>,
    held: Vec<OwnedSemaphorePermit>,
}

impl TimedBody {
    pub(crate) fn wrap(
        inner: tonic::body::Body,
        timeout: std::time::Duration,
        budget: &Arc<Semaphore>,
    ) -> tonic::body::Body {
        tonic::body::Body::new(TimedBody {
            inner,
            deadline: Box::pin(tokio::time::sleep(timeout)),
            budget: budget.clone(),
            held: Vec::new(),
        })
    }
}

/// The gRPC door's budget of request bytes in memory.
pub(crate) fn grpc_budget(bytes: usize) -> Arc<Semaphore> {
    Arc::new(Semaphore::new(
        bytes.max(MAX_BODY_BYTES + 1024 * 1024).div_ceil(UNIT),
    ))
}

impl hyper::body::Body for TimedBody {
    type Data = Bytes;
    type Error = tonic::Status;

    fn poll_frame(
        mut self: std::pin::Pin<&mut Self>,
        cx: &mut std::task::Context<'_>,
    ) -> std::task::Poll<Option<Result<hyper::body::Frame<Bytes>, tonic::Status>>> {
        use std::future::Future;
        use std::task::Poll;
        match std::pin::Pin::new(&mut self.inner).poll_frame(cx) {
            Poll::Ready(Some(Ok(frame))) => {
                if let Some(data) = frame.data_ref() {
                    let units = u32::try_from(data.len().div_ceil(UNIT)).unwrap_or(u32::MAX);
                    if units > 0 {
                        match self.budget.clone().try_acquire_many_owned(units) {
                            Ok(p) => self.held.push(p),
                            Err(_) => {
                                return Poll::Ready(Some(Err(tonic::Status::resource_exhausted(
                                    "the server holds as many request bytes as it may; try again shortly",
                                ))))
                            }
                        }
                    }
                }
                Poll::Ready(Some(Ok(frame)))
            }
            Poll::Pending => {
                if self.deadline.as_mut().poll(cx).is_ready() {
                    Poll::Ready(Some(Err(tonic::Status::deadline_exceeded(
                        "the request body did not arrive in time",
                    ))))
                } else {
                    Poll::Pending
                }
            }
            other => other,
        }
    }

    fn is_end_stream(&self) -> bool {
        self.inner.is_end_stream()
    }

    fn size_hint(&self) -> hyper::body::SizeHint {
        self.inner.size_hint()
    }
}

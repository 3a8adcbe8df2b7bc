//! Connections, for both doors: a cap on how many are held at once, a
//! deadline for a new connection's first bytes, a deadline on writes that
//! a client blocks by not reading ([`Guarded`]), and the HTTP door's
//! connection loop (hyper, with its header-read timeout, which is also the
//! idle timeout of a kept-alive connection).

use crate::limits::Limits;
use axum::Router;
use futures::Stream;
use std::future::Future;
use std::io;
use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context, Poll};
use std::time::Duration;
use tokio::io::{AsyncRead, AsyncWrite, ReadBuf};
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::{OwnedSemaphorePermit, Semaphore};
use tokio::time::Sleep;

/// A connection that holds one of the door's connection slots, must send
/// its first bytes before `first_read` fires, and fails a write that stays
/// blocked for `write_timeout`.
pub struct Guarded<T> {
    inner: T,
    _slot: OwnedSemaphorePermit,
    first_read: Option<Pin<Box<Sleep>>>,
    write_timeout: Duration,
    blocked: Option<Pin<Box<Sleep>>>,
}

fn timed_out(what: &str) -> io::Error {
    io::Error::new(io::ErrorKind::TimedOut, what.to_string())
}

impl<T> Guarded<T> {
    fn new(inner: T, slot: OwnedSemaphorePermit, limits: &Limits) -> Self {
        Guarded {
            inner,
            _slot: slot,
            first_read: Some(Box::pin(tokio::time::sleep(limits.header_timeout))),
            write_timeout: limits.write_timeout,
            blocked: None,
        }
    }

    /// A blocked write: fails once it has been blocked too long.
    fn blocked(&mut self, cx: &mut Context<'_>) -> Poll<io::Error> {
        let timeout = self.write_timeout;
        let sleep = self
            .blocked
            .get_or_insert_with(|| Box::pin(tokio::time::sleep(timeout)));
        sleep
            .as_mut()
            .poll(cx)
            .map(|()| timed_out("the client stopped reading"))
    }
}

impl<T: AsyncRead + Unpin> AsyncRead for Guarded<T> {
    fn poll_read(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<io::Result<()>> {
        let before = buf.filled().len();
        match Pin::new(&mut self.inner).poll_read(cx, buf) {
            Poll::Ready(r) => {
                if buf.filled().len() > before {
                    self.first_read = None;
                }
                Poll::Ready(r)
            }
            Poll::Pending => {
                let silent_too_long = self
                    .first_read
                    .as_mut()
                    .is_some_and(|s| s.as_mut().poll(cx).is_ready());
                if silent_too_long {
                    Poll::Ready(Err(timed_out("the client sent nothing")))
                } else {
                    Poll::Pending
                }
            }
        }
    }
}

impl<T: AsyncWrite + Unpin> AsyncWrite for Guarded<T> {
    fn poll_write(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        data: &[u8],
    ) -> Poll<io::Result<usize>> {
        match Pin::new(&mut self.inner).poll_write(cx, data) {
            Poll::Ready(r) => {
                self.blocked = None;
                Poll::Ready(r)
            }
            Poll::Pending => self.blocked(cx).map(Err),
        }
    }

    fn poll_flush(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        match Pin::new(&mut self.inner).poll_flush(cx) {
            Poll::Ready(r) => {
                self.blocked = None;
                Poll::Ready(r)
            }
            Poll::Pending => self.blocked(cx).map(Err),
        }
    }

    fn poll_shutdown(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.inner).poll_shutdown(cx)
    }

    fn poll_write_vectored(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        bufs: &[io::IoSlice<'_>],
    ) -> Poll<io::Result<usize>> {
        match Pin::new(&mut self.inner).poll_write_vectored(cx, bufs) {
            Poll::Ready(r) => {
                self.blocked = None;
                Poll::Ready(r)
            }
            Poll::Pending => self.blocked(cx).map(Err),
        }
    }

    fn is_write_vectored(&self) -> bool {
        self.inner.is_write_vectored()
    }
}

impl tonic::transport::server::Connected for Guarded<TcpStream> {
    type ConnectInfo = tonic::transport::server::TcpConnectInfo;

    fn connect_info(&self) -> Self::ConnectInfo {
        self.inner.connect_info()
    }
}

/// The connections `listener` accepts, each holding a slot of
/// `limits.max_connections`: when all are taken, accepting waits (new
/// connections queue in the kernel's backlog). An accept error (out of
/// file descriptors) pauses accepting briefly; it never ends the stream.
pub fn incoming(
    listener: TcpListener,
    limits: Limits,
) -> impl Stream<Item = io::Result<Guarded<TcpStream>>> + Send + 'static {
    let slots = Arc::new(Semaphore::new(limits.max_connections.max(1)));
    futures::stream::unfold(
        (listener, slots, limits),
        |(listener, slots, limits)| async move {
            let slot = slots.clone().acquire_owned().await.ok()?;
            loop {
                match listener.accept().await {
                    Ok((tcp, _)) => {
                        let _ = tcp.set_nodelay(true);
                        let conn = Guarded::new(tcp, slot, &limits);
                        return Some((Ok(conn), (listener, slots, limits)));
                    }
                    Err(e) => {
                        tracing::warn!(error = %e, "accepting a connection failed");
                        tokio::time::sleep(Duration::from_millis(50)).await;
                    }
                }
            }
        },
    )
}

/// Serves `app` over HTTP/1.1 on `listener` under `limits` until
/// `shutdown`; then lets requests in progress finish, for at most
/// `limits.header_timeout` (long-poll waits are cut short there).
pub async fn serve_http(
    listener: TcpListener,
    app: Router,
    limits: Limits,
    shutdown: impl Future<Output = ()> + Send + 'static,
) -> io::Result<()> {
    use futures::StreamExt;
    use hyper_util::rt::{TokioIo, TokioTimer};
    use hyper_util::service::TowerToHyperService;

    let grace = limits.header_timeout;
    let mut builder = hyper::server::conn::http1::Builder::new();
    builder
        .timer(TokioTimer::new())
        .header_read_timeout(limits.header_timeout)
        .keep_alive(true);
    let graceful = hyper_util::server::graceful::GracefulShutdown::new();
    let mut incoming = std::pin::pin!(incoming(listener, limits));
    let mut shutdown = std::pin::pin!(shutdown);
    loop {
        tokio::select! {
            () = &mut shutdown => break,
            conn = incoming.next() => {
                let Some(Ok(conn)) = conn else { break };
                let service = TowerToHyperService::new(app.clone());
                let conn = builder.serve_connection(TokioIo::new(conn), service);
                let conn = graceful.watch(conn);
                tokio::spawn(async move {
                    if let Err(e) = conn.await {
                        tracing::debug!(error = %e, "HTTP connection ended");
                    }
                });
            }
        }
    }
    let _ = tokio::time::timeout(grace, graceful.shutdown()).await;
    Ok(())
}

//! One client connection, served by hyper (HTTP/1.1, or HTTP/2 with prior
//! knowledge unless the config says `http2 = false`) and closed by the
//! gateway when it is too slow to send a request head, or stays idle
//! between requests too long. A request in flight — a long SSE stream
//! among them — is never timed out here: bodies have their own deadline
//! (`limits.body_read_timeout`, where the handlers read them), calls
//! theirs.
//!
//! Nothing is allocated for a connection until its first byte arrives, so
//! a silent connection costs its socket and one small task.

use std::convert::Infallible;
use std::io;
use std::pin::Pin;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::task::{Context, Poll};
use std::time::Duration;

use arc_swap::ArcSwap;
use axum::Router;
use axum::body::{Body, Bytes};
use http::Request;
use http_body::{Frame, SizeHint};
use hyper::body::Incoming;
use hyper_util::rt::{TokioExecutor, TokioIo, TokioTimer};
use hyper_util::server::conn::auto;
use parking_lot::Mutex;
use tokio::io::{AsyncRead, AsyncWrite, ReadBuf};
use tokio::net::TcpStream;
use tokio::sync::{Notify, OwnedSemaphorePermit};
use tokio::time::Instant;
use tokio_util::sync::CancellationToken;
use tower::ServiceExt;
use tracing::debug;

use crate::metrics::{ConnectionEnd, Metrics};

/// Largest request head (and read buffer) of an HTTP/1.1 connection: a
/// bigger head gets 431, and an idle connection holds no more than this.
const MAX_HEAD_BYTES: usize = 64 * 1024;

/// The deadlines of a connection between its requests.
#[derive(Debug, Clone, Copy)]
pub(super) struct Timeouts {
    /// To send the first byte of a request, then again to complete its head.
    pub(super) header: Duration,
    /// To start the next request after the last response ended.
    pub(super) idle: Duration,
}

/// The routes of the config in force: each request loads them (one atomic
/// load), so a reload reaches the connections already open.
pub(super) type Routes = Arc<ArcSwap<Router>>;

/// Serves `stream` with `routes` until it closes, a deadline of `timeouts`
/// passes, or `stop` asks every connection to finish (the request in
/// flight completes, then the connection closes). `http2`: HTTP/2 with
/// prior knowledge is served too. `permit` is its place under the
/// connection limit, held until it closes.
pub(super) async fn serve(
    stream: TcpStream,
    routes: Routes,
    timeouts: Timeouts,
    http2: bool,
    metrics: Arc<Metrics>,
    stop: CancellationToken,
    permit: OwnedSemaphorePermit,
) {
    let _permit = permit;
    metrics.connections.opened();
    let end = run(stream, routes, timeouts, http2, &stop).await;
    if let Some(why) = end {
        metrics.connections.ended(why);
    }
    metrics.connections.closed();
}

async fn run(
    stream: TcpStream,
    routes: Routes,
    timeouts: Timeouts,
    http2: bool,
    stop: &CancellationToken,
) -> Option<ConnectionEnd> {
    let phase = Arc::new(Phase::new(Instant::now()));
    // Wait for the first byte before hyper allocates its buffers.
    let first = phase.deadline(timeouts)?.0;
    tokio::select! {
        r = tokio::time::timeout_at(first, stream.readable()) => match r {
            Ok(Ok(())) => {}
            Ok(Err(_)) => return None,
            Err(_) => return Some(ConnectionEnd::HeaderTimeout),
        },
        _ = stop.cancelled() => return None,
    }
    let io = TokioIo::new(Watched {
        stream,
        phase: phase.clone(),
    });
    let service = {
        let phase = phase.clone();
        hyper::service::service_fn(move |request: Request<Incoming>| {
            let in_flight = phase.request_started();
            let router = Router::clone(&routes.load());
            async move {
                let response = match router.oneshot(request).await {
                    Ok(r) => r,
                    Err(never) => match never {},
                };
                Ok::<_, Infallible>(response.map(|body| Tracked {
                    body,
                    _in_flight: in_flight,
                }))
            }
        })
    };
    let mut builder = auto::Builder::new(TokioExecutor::new());
    if !http2 {
        builder = builder.http1_only();
    }
    builder
        .http1()
        .timer(TokioTimer::new())
        .max_buf_size(MAX_HEAD_BYTES);
    builder.http2().timer(TokioTimer::new());
    let conn = builder.serve_connection(io, service);
    tokio::pin!(conn);
    let mut stopping = false;
    loop {
        let deadline = phase.deadline(timeouts);
        tokio::select! {
            _ = conn.as_mut() => return None,
            _ = stop.cancelled(), if !stopping => {
                stopping = true;
                conn.as_mut().graceful_shutdown();
            }
            _ = phase.changed.notified() => {}
            _ = sleep_until(deadline.map(|d| d.0)), if deadline.is_some() => {
                if let Some((at, why)) = phase.deadline(timeouts)
                    && at <= Instant::now()
                {
                    debug!(reason = ?why, "closing a client connection");
                    return Some(why);
                }
            }
        }
    }
}

async fn sleep_until(at: Option<Instant>) {
    if let Some(at) = at {
        tokio::time::sleep_until(at).await;
    }
}

/// What a connection is waiting for, since when.
#[derive(Debug, Clone, Copy)]
enum Waiting {
    /// The first byte of a request: the connection is new, or was idle.
    FirstByte(Instant, ConnectionEnd),
    /// The rest of a request head, since its first byte.
    Head(Instant),
    /// Nothing: requests are in flight.
    Busy,
}

#[derive(Debug)]
struct State {
    waiting: Waiting,
    in_flight: usize,
}

/// A connection's progress, shared by its I/O, its service and its
/// watchdog.
#[derive(Debug)]
struct Phase {
    state: Mutex<State>,
    /// Set while a read would start a request head, so that other reads
    /// do not take the lock.
    expecting_head: AtomicBool,
    /// Woken when the deadline may have moved earlier.
    changed: Notify,
}

impl Phase {
    fn new(now: Instant) -> Phase {
        Phase {
            state: Mutex::new(State {
                waiting: Waiting::FirstByte(now, ConnectionEnd::HeaderTimeout),
                in_flight: 0,
            }),
            expecting_head: AtomicBool::new(true),
            changed: Notify::new(),
        }
    }

    /// Bytes arrived.
    fn read(&self) {
        if !self.expecting_head.swap(false, Ordering::Relaxed) {
            return;
        }
        let mut s = self.state.lock();
        if let Waiting::FirstByte(..) = s.waiting {
            s.waiting = Waiting::Head(Instant::now());
            drop(s);
            self.changed.notify_one();
        }
    }

    /// A request head is complete: it is in flight until its response
    /// ends.
    fn request_started(self: &Arc<Self>) -> InFlight {
        let mut s = self.state.lock();
        s.in_flight += 1;
        s.waiting = Waiting::Busy;
        self.expecting_head.store(false, Ordering::Relaxed);
        InFlight(self.clone())
    }

    /// When the connection is closed if nothing changes, and why.
    fn deadline(&self, t: Timeouts) -> Option<(Instant, ConnectionEnd)> {
        match self.state.lock().waiting {
            Waiting::FirstByte(since, why @ ConnectionEnd::HeaderTimeout) => {
                Some((since + t.header, why))
            }
            Waiting::FirstByte(since, why @ ConnectionEnd::IdleTimeout) => {
                Some((since + t.idle, why))
            }
            Waiting::Head(since) => Some((since + t.header, ConnectionEnd::HeaderTimeout)),
            Waiting::Busy => None,
        }
    }
}

/// A request in flight; dropped when its response has been sent (or
/// abandoned).
#[derive(Debug)]
struct InFlight(Arc<Phase>);

impl Drop for InFlight {
    fn drop(&mut self) {
        let mut s = self.0.state.lock();
        s.in_flight = s.in_flight.saturating_sub(1);
        if s.in_flight == 0 {
            s.waiting = Waiting::FirstByte(Instant::now(), ConnectionEnd::IdleTimeout);
            self.0.expecting_head.store(true, Ordering::Relaxed);
            drop(s);
            self.0.changed.notify_one();
        }
    }
}

/// A response body that keeps its request in flight until it ends.
struct Tracked {
    body: Body,
    _in_flight: InFlight,
}

impl http_body::Body for Tracked {
    type Data = Bytes;
    type Error = axum::Error;

    fn poll_frame(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<Frame<Bytes>, axum::Error>>> {
        Pin::new(&mut self.body).poll_frame(cx)
    }

    fn is_end_stream(&self) -> bool {
        self.body.is_end_stream()
    }

    fn size_hint(&self) -> SizeHint {
        self.body.size_hint()
    }
}

/// The socket, telling the connection's phase when bytes arrive.
struct Watched {
    stream: TcpStream,
    phase: Arc<Phase>,
}

impl AsyncRead for Watched {
    fn poll_read(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<io::Result<()>> {
        let before = buf.filled().len();
        let r = Pin::new(&mut self.stream).poll_read(cx, buf);
        if matches!(r, Poll::Ready(Ok(()))) && buf.filled().len() > before {
            self.phase.read();
        }
        r
    }
}

impl AsyncWrite for Watched {
    fn poll_write(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<io::Result<usize>> {
        Pin::new(&mut self.stream).poll_write(cx, buf)
    }

    fn poll_write_vectored(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        bufs: &[io::IoSlice<'_>],
    ) -> Poll<io::Result<usize>> {
        Pin::new(&mut self.stream).poll_write_vectored(cx, bufs)
    }

    fn is_write_vectored(&self) -> bool {
        self.stream.is_write_vectored()
    }

    fn poll_flush(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.stream).poll_flush(cx)
    }

    fn poll_shutdown(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.stream).poll_shutdown(cx)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const T: Timeouts = Timeouts {
        header: Duration::from_secs(10),
        idle: Duration::from_secs(60),
    };

    #[tokio::test(start_paused = true)]
    async fn a_connection_waits_for_a_head_then_nothing_then_idles() {
        let phase = Arc::new(Phase::new(Instant::now()));
        let opened = Instant::now();
        assert_eq!(
            phase.deadline(T),
            Some((opened + T.header, ConnectionEnd::HeaderTimeout))
        );
        tokio::time::advance(Duration::from_secs(3)).await;
        phase.read();
        let head = Instant::now();
        assert_eq!(
            phase.deadline(T),
            Some((head + T.header, ConnectionEnd::HeaderTimeout))
        );
        let a = phase.request_started();
        let b = phase.request_started();
        assert_eq!(phase.deadline(T), None, "no deadline while requests run");
        drop(a);
        assert_eq!(phase.deadline(T), None, "one request is still in flight");
        tokio::time::advance(Duration::from_secs(100)).await;
        drop(b);
        let idle = Instant::now();
        assert_eq!(
            phase.deadline(T),
            Some((idle + T.idle, ConnectionEnd::IdleTimeout))
        );
        phase.read();
        assert_eq!(
            phase.deadline(T),
            Some((Instant::now() + T.header, ConnectionEnd::HeaderTimeout)),
            "the next request's head has its own deadline"
        );
    }
}

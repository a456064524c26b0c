//! The accept loop: each connection takes a place under the connection
//! limit, or is answered as overflow, or — past that too — closed at once.
//! Running out of file descriptors slows accepting down instead of
//! spinning.

use std::sync::Arc;
use std::time::Duration;

use tokio::net::TcpListener;
use tokio::sync::Semaphore;
use tokio::time::Instant;
use tokio_util::sync::CancellationToken;
use tokio_util::task::TaskTracker;
use tracing::{debug, warn};

use super::connection::{self, Routes, Timeouts};
use super::overflow::{self, OVERFLOW_CONNECTIONS};
use crate::metrics::Metrics;

/// How long accepting pauses when the process is out of descriptors.
const EXHAUSTED_PAUSE: Duration = Duration::from_millis(100);

/// What the accept loop needs.
pub(super) struct Accept {
    /// The listening socket.
    pub(super) listener: TcpListener,
    /// Every route, of the config in force.
    pub(super) routes: Routes,
    /// Open connections at most.
    pub(super) max_connections: usize,
    /// Deadlines between requests.
    pub(super) timeouts: Timeouts,
    /// HTTP/2 with prior knowledge is served besides HTTP/1.1.
    pub(super) http2: bool,
    /// Counters.
    pub(super) metrics: Arc<Metrics>,
    /// Connections' tasks, to wait for at shutdown.
    pub(super) tasks: TaskTracker,
}

/// Accepts connections until `stop`; the connections then finish their
/// requests in flight and close.
pub(super) async fn accept(a: Accept, stop: CancellationToken) {
    let places = Arc::new(Semaphore::new(a.max_connections));
    let overflow = Arc::new(Semaphore::new(OVERFLOW_CONNECTIONS));
    let mut last_warning: Option<Instant> = None;
    loop {
        let accepted = tokio::select! {
            r = a.listener.accept() => r,
            _ = stop.cancelled() => return,
        };
        let stream = match accepted {
            Ok((stream, _peer)) => stream,
            Err(e) => {
                if is_exhaustion(&e) {
                    if last_warning.is_none_or(|t| t.elapsed() >= Duration::from_secs(1)) {
                        warn!(error = %e, "cannot accept connections: out of file descriptors");
                        last_warning = Some(Instant::now());
                    }
                    tokio::time::sleep(EXHAUSTED_PAUSE).await;
                } else {
                    debug!(error = %e, "accept failed");
                }
                continue;
            }
        };
        let _ = stream.set_nodelay(true);
        if let Ok(place) = places.clone().try_acquire_owned() {
            a.tasks.spawn(connection::serve(
                stream,
                a.routes.clone(),
                a.timeouts,
                a.http2,
                a.metrics.clone(),
                stop.clone(),
                place,
            ));
            continue;
        }
        a.metrics.connections.refused();
        if let Ok(place) = overflow.clone().try_acquire_owned() {
            a.tasks
                .spawn(overflow::answer(stream, a.max_connections, place));
        }
        // Else the stream is dropped here: closed at once.
    }
}

fn is_exhaustion(e: &std::io::Error) -> bool {
    matches!(
        e.raw_os_error(),
        Some(nix::libc::EMFILE | nix::libc::ENFILE)
    ) || e.kind() == std::io::ErrorKind::OutOfMemory
}

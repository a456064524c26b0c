//! The two things the driver needs from an async runtime.

use std::future::Future;
use std::pin::Pin;
use std::sync::Arc;
use std::time::Instant;

/// A boxed, sendable future, as runtimes and connectors hand them around.
pub type BoxFuture<'a, T> = Pin<Box<dyn Future<Output = T> + Send + 'a>>;

/// An async runtime, as far as the driver is concerned: it can run a task in
/// the background and sleep until an instant.
///
/// Everything else (I/O readiness, channels) is runtime-neutral: the driver
/// reads and writes through `futures::io` traits and synchronises with
/// runtime-agnostic channels. `mcpod-tokio` and `mcpod-async-std` implement
/// this for tokio, async-std and smol.
pub trait Runtime: Send + Sync + 'static {
    /// Runs `task` to completion in the background (detached).
    fn spawn(&self, task: BoxFuture<'static, ()>);

    /// A future that completes at `deadline` (at once if it has passed).
    fn sleep_until(&self, deadline: Instant) -> BoxFuture<'static, ()>;
}

impl<R: Runtime + ?Sized> Runtime for Arc<R> {
    fn spawn(&self, task: BoxFuture<'static, ()>) {
        (**self).spawn(task)
    }

    fn sleep_until(&self, deadline: Instant) -> BoxFuture<'static, ()> {
        (**self).sleep_until(deadline)
    }
}

/// Runs `fut` until `deadline`; `None` if the deadline came first.
pub async fn timeout_at<F: Future>(
    runtime: &dyn Runtime,
    deadline: Instant,
    fut: F,
) -> Option<F::Output> {
    let fut = std::pin::pin!(fut);
    match futures::future::select(fut, runtime.sleep_until(deadline)).await {
        futures::future::Either::Left((out, _)) => Some(out),
        futures::future::Either::Right(((), _)) => None,
    }
}

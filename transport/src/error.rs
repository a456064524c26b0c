//! [`UpstreamError`]: why an upstream operation failed.

use std::io;
use std::sync::Arc;
use std::time::Duration;

use mcpod_core::{CloseReason, SendError};
use thiserror::Error;

use crate::item::ServerRequestKey;

/// Why an [`Upstream`](crate::Upstream) operation failed.
#[derive(Debug, Clone, Error)]
#[non_exhaustive]
pub enum UpstreamError {
    /// The session refused the command: too many calls, the backend not
    /// reading its input, an invalid id, a reserved method…
    #[error("request refused: {0}")]
    Send(#[from] SendError),
    /// The backend could not be started.
    #[error("failed to start the backend: {0}")]
    SpawnFailed(#[source] Arc<io::Error>),
    /// Era detection or the `initialize` handshake failed.
    #[error("backend handshake failed: {0}")]
    HandshakeFailed(String),
    /// The backend went away before it was ready.
    #[error("backend went away before it was ready: {0}")]
    BackendGone(CloseReason),
    /// The backend keeps dying young and waits out its restart backoff
    /// ([`UpstreamConfig::restart_backoff_min`](crate::UpstreamConfig::restart_backoff_min)):
    /// the operation was refused at once rather than held. Try again after
    /// `retry_after`.
    #[error(
        "the backend failed {failures} times in a row and is restarting; retry in {} ms",
        retry_after.as_millis().max(1)
    )]
    Restarting {
        /// How long until a new backend may start.
        retry_after: Duration,
        /// Quick deaths in a row so far.
        failures: u32,
    },
    /// The server request belongs to a backend process that has since
    /// ended; the answer has nowhere to go.
    #[error("{0} belongs to a backend process that has ended")]
    StaleServerRequest(ServerRequestKey),
    /// [`Upstream::close`](crate::Upstream::close) was called (or every handle was dropped).
    #[error("upstream is closed")]
    Closed,
}

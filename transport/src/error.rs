//! [`UpstreamError`]: why an upstream operation failed.

use std::io;
use std::sync::Arc;

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
    /// The server request belongs to a backend process that has since
    /// ended; the answer has nowhere to go.
    #[error("{0} belongs to a backend process that has ended")]
    StaleServerRequest(ServerRequestKey),
    /// [`Upstream::close`](crate::Upstream::close) was called (or every handle was dropped).
    #[error("upstream is closed")]
    Closed,
}

//! # mcpod-transport
//!
//! The runtime-neutral half of mcpod's runtime adapters: the driver task
//! that moves bytes between an [`mcpod_core::Session`] and a backend's byte
//! streams, the supervisor that starts, restarts and stops the backend, and
//! the cloneable [`Upstream`] handle that callers use.
//!
//! It is written once, over `futures::io::{AsyncRead, AsyncWrite}` and the
//! two-method [`Runtime`] trait (spawn a task, sleep until an instant).
//! `mcpod-tokio` and `mcpod-async-std` supply runtimes and child-process
//! [`Connector`]s, and re-export this API; use one of them.
//!
//! ## How it works
//! - One task per [`Upstream`] supervises the backend and owns its streams.
//!   The session sits behind a mutex shared with the handles, as in quinn:
//!   a caller submits its call to the session directly (so a refusal such
//!   as [`SendError::TooManyCalls`] comes back at once, with no round trip
//!   through the task) and writes what the session queued straight to the
//!   backend's stdin when nothing else waits to be written. The task is
//!   woken only when that write finds no room (it then waits for room and
//!   writes the rest), when the caller's work left events, or when it
//!   brought a deadline before the task's timer. After each chunk of
//!   input, timeout or wakeup the task drains the session completely:
//!   bytes for the backend, the next deadline, then events, which it routes
//!   to the calls' streams and the subscribers. The session's lock is
//!   never held across I/O.
//! - Writing never blocks a caller or the task: bytes are taken from the session only
//!   once the previous batch is written, so a backend that stops reading
//!   leaves its output queued in the session, which soon refuses new calls
//!   with [`SendError::BackendNotReading`].
//!   Memory stays bounded by the session's limits.
//! - Each call gets a [`CallStream`]: the notifications and server requests
//!   that belong to it, then exactly one terminal item. Dropping the stream
//!   early cancels the call (the backend gets `notifications/cancelled`).
//! - When the backend dies, open calls end at once with an error; the next
//!   operation starts a new one. A backend that keeps dying young is
//!   restarted after a backoff that doubles up to a cap
//!   ([`UpstreamConfig::restart_backoff_min`], `_max`); operations that
//!   arrive during it fail at once with [`UpstreamError::Restarting`] and
//!   the time left, rather than pile up. Operations waiting for a backend
//!   to start are bounded ([`UpstreamConfig::max_queued_commands`]).
//!   Server requests carry their backend's generation in their
//!   [`ServerRequestKey`], so an answer meant for a dead process is refused.
//! - A backend's line longer than the frame limit is discarded unread; if
//!   it was the response to a call, the call ends at once with
//!   [`EndReason::ResponseTooLarge`].
//! - A backend process is stopped by closing its stdin, waiting
//!   [`UpstreamConfig::shutdown_grace`], terminating it, waiting again and
//!   killing it; it is always reaped. Its stderr is logged line by line
//!   through `tracing`, each line cut at [`UpstreamConfig::stderr_line_cap`]
//!   bytes, and drained until it ends.
//!
//! ## Example
//! Any byte streams make a backend; here, a connector over a Unix socket
//! (with `async-io`), driven by a runtime from an adapter crate (not
//! compiled here: this crate does not depend on its adapters):
//!
//! ```ignore
//! use mcpod_transport::{BoxFuture, Connection, Connector, Upstream, UpstreamConfig};
//!
//! struct Socket(std::path::PathBuf);
//!
//! impl Connector for Socket {
//!     fn connect(&self) -> BoxFuture<'_, std::io::Result<Connection>> {
//!         Box::pin(async move {
//!             let stream = async_io::Async::<std::os::unix::net::UnixStream>::connect(&self.0).await?;
//!             let (reader, writer) = futures::io::AsyncReadExt::split(stream);
//!             Ok(Connection::new(reader, writer))
//!         })
//!     }
//! }
//!
//! let upstream = Upstream::new(Socket("/run/mcp.sock".into()), UpstreamConfig::default(), mcpod_async_std::SmolRuntime);
//! let info = upstream.ready().await?;
//! ```

#![forbid(unsafe_code)]
#![warn(missing_docs)]

// Top to bottom, each module uses only those below it: the handle starts
// the supervisor, which drives the shared session and commands.
mod upstream;

mod driver;
mod process;

mod command;
mod shared;

mod call;
mod config;
mod error;
mod item;

mod connect;
mod runtime;

pub use call::CallStream;
pub use config::UpstreamConfig;
pub use connect::{
    BackendProcess, Connection, Connector, Inherit, ProcessExit, ProcessSpec, signal_group,
};
pub use error::UpstreamError;
pub use item::{CallItem, OwnedOutcome, OwnedRequest, ServerRequestKey, UpstreamEvent};
pub use runtime::{BoxFuture, Runtime, timeout_at};
pub use shared::UpstreamStatus;
pub use upstream::{Upstream, UpstreamEvents};

pub use mcpod_core::{
    BackendInfo, CallId, CloseReason, Deadline, EndReason, Era, EraMode, Owner, RequestOptions,
    SendError, ServerRequestId,
};

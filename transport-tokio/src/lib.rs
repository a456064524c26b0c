//! # mcpod-tokio
//!
//! mcpod's tokio adapter: the [`Runtime`] for tokio, local child processes
//! as backends (`tokio::process`), and the [`Upstream`] handle from
//! `mcpod-transport`, re-exported. The driver loop itself is
//! `mcpod-transport`'s, shared with the async-std and smol adapter.
//!
//! ## Example
//!
//! ```no_run
//! use mcpod_tokio::{OwnedRequest, ProcessSpec, RequestOptions, SpawnProcess, Upstream, UpstreamConfig};
//! use serde_json::value::RawValue;
//!
//! # async fn demo() -> Result<(), Box<dyn std::error::Error>> {
//! let upstream = Upstream::spawn_process(
//!     ProcessSpec::new("mcpod-demo").env("RUST_LOG", "info"),
//!     UpstreamConfig::default(),
//! );
//! let info = upstream.ready().await?;
//! println!("backend speaks {:?} {}", info.era, info.protocol_version);
//!
//! let request = OwnedRequest::new(
//!     RawValue::from_string(r#""my-id""#.into())?,
//!     "tools/call",
//!     Some(RawValue::from_string(r#"{"name":"echo","arguments":{"text":"hi"}}"#.into())?),
//! );
//! let mut call = upstream.call(request, RequestOptions::default()).await?;
//! while let Some(item) = call.next().await {
//!     println!("{item:?}"); // notifications, then the response with id "my-id"
//! }
//! upstream.close().await;
//! # Ok(())
//! # }
//! ```
//!
//! ## Why
//! The protocol lives in `mcpod-core` and the driver in `mcpod-transport`,
//! both runtime-neutral; this crate is only what tokio itself must provide:
//! timers, task spawning, child processes and the bridge between tokio's and
//! `futures`' I/O traits ([`connection`], [`compat_read`], [`compat_write`])
//! for connectors whose streams are tokio's (such as containerd FIFOs).

#![forbid(unsafe_code)]
#![warn(missing_docs)]

use std::io;
use std::process::Stdio;
use std::time::Instant;

use nix::sys::signal::Signal;
use tokio::process::{Child, Command};
use tokio_util::compat::{Compat, TokioAsyncReadCompatExt, TokioAsyncWriteCompatExt};

pub use mcpod_transport::{
    BackendInfo, BackendProcess, BoxFuture, CallId, CallItem, CallStream, CloseReason, Connection,
    Connector, Deadline, EndReason, Era, EraMode, Inherit, OwnedOutcome, OwnedRequest, Owner,
    ProcessExit, ProcessSpec, RequestOptions, Runtime, SendError, ServerRequestId,
    ServerRequestKey, Upstream, UpstreamConfig, UpstreamError, UpstreamEvent, UpstreamEvents,
    UpstreamStatus,
};

/// The tokio [`Runtime`]: spawns on a runtime handle, sleeps with
/// `tokio::time`.
#[derive(Debug, Clone)]
pub struct TokioRuntime {
    handle: tokio::runtime::Handle,
}

impl TokioRuntime {
    /// The runtime of the calling context.
    ///
    /// # Panics
    /// Outside a tokio runtime, like [`tokio::runtime::Handle::current`].
    pub fn current() -> Self {
        TokioRuntime {
            handle: tokio::runtime::Handle::current(),
        }
    }

    /// A specific runtime.
    pub fn new(handle: tokio::runtime::Handle) -> Self {
        TokioRuntime { handle }
    }
}

impl Runtime for TokioRuntime {
    fn spawn(&self, task: BoxFuture<'static, ()>) {
        drop(self.handle.spawn(task));
    }

    fn sleep_until(&self, deadline: Instant) -> BoxFuture<'static, ()> {
        Box::pin(tokio::time::sleep_until(deadline.into()))
    }
}

/// Starts local child processes from a [`ProcessSpec`]: stdin and stdout to
/// the driver, stderr to `tracing`. Each child runs in its own process
/// group (so terminal signals meant for the gateway do not reach it, and
/// stopping it reaches its own children too) and is killed if its handle is
/// dropped.
#[derive(Debug, Clone)]
pub struct ProcessConnector {
    spec: ProcessSpec,
}

impl ProcessConnector {
    /// A connector for `spec`.
    pub fn new(spec: ProcessSpec) -> Self {
        ProcessConnector { spec }
    }

    fn spawn(&self) -> io::Result<Connection> {
        let mut command = Command::from(self.spec.command());
        // Set again: not every runtime's conversion keeps the std stdio.
        command
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .kill_on_drop(true);
        let mut child = command.spawn().map_err(|e| self.spec.spawn_error(e))?;
        let missing = || io::Error::other("child process streams were not piped");
        let stdin = child.stdin.take().ok_or_else(missing)?;
        let stdout = child.stdout.take().ok_or_else(missing)?;
        let stderr = child.stderr.take().ok_or_else(missing)?;
        Ok(connection(stdout, stdin)
            .with_stderr(stderr.compat())
            .with_process(TokioChild::new(child)))
    }
}

impl Connector for ProcessConnector {
    fn connect(&self) -> BoxFuture<'_, io::Result<Connection>> {
        let result = self.spawn();
        Box::pin(async move { result })
    }
}

/// A tokio child process as a [`BackendProcess`]. Signals go to its process
/// group, and only while the child is not yet reaped (so never to a reused
/// pid).
#[derive(Debug)]
pub struct TokioChild {
    child: Child,
    pid: Option<u32>,
}

impl TokioChild {
    /// Wraps a spawned child (best spawned with `kill_on_drop(true)`, and
    /// `process_group(0)` for group-wide signals).
    pub fn new(child: Child) -> Self {
        let pid = child.id();
        TokioChild { child, pid }
    }

    fn signal(&mut self, signal: Signal) -> io::Result<()> {
        // `id()` is `None` once the child has been reaped: its pid may have
        // been reused, so nothing may be sent to it.
        let Some(pid) = self.child.id() else {
            return Ok(());
        };
        mcpod_transport::signal_group(pid, signal)
    }
}

impl BackendProcess for TokioChild {
    fn pid(&self) -> Option<u32> {
        self.pid
    }

    fn wait(&mut self) -> BoxFuture<'_, io::Result<ProcessExit>> {
        Box::pin(async move { self.child.wait().await.map(ProcessExit::from) })
    }

    fn terminate(&mut self) -> io::Result<()> {
        self.signal(Signal::SIGTERM)
    }

    fn kill(&mut self) -> io::Result<()> {
        self.signal(Signal::SIGKILL)?;
        if self.child.id().is_some() {
            self.child.start_kill()?;
        }
        Ok(())
    }
}

/// A [`Connection`] over tokio streams (a child's pipes, a Unix socket,
/// FIFOs, `tokio::io::duplex`), bridged to `futures::io` with
/// `tokio-util`'s compat layer.
pub fn connection<R, W>(reader: R, writer: W) -> Connection
where
    R: tokio::io::AsyncRead + Send + Unpin + 'static,
    W: tokio::io::AsyncWrite + Send + Unpin + 'static,
{
    Connection::new(reader.compat(), writer.compat_write())
}

/// A tokio reader as a `futures::io::AsyncRead` (e.g. for
/// [`Connection::with_stderr`]).
pub fn compat_read<R: tokio::io::AsyncRead>(reader: R) -> Compat<R> {
    reader.compat()
}

/// A tokio writer as a `futures::io::AsyncWrite`.
pub fn compat_write<W: tokio::io::AsyncWrite>(writer: W) -> Compat<W> {
    writer.compat_write()
}

/// `Upstream::spawn_process`: a supervised child process on the current
/// tokio runtime.
pub trait SpawnProcess {
    /// Supervises the process `spec` describes on the current tokio runtime
    /// (started on first use, restarted after it dies). The same as
    /// [`spawn_process`].
    ///
    /// # Panics
    /// Outside a tokio runtime.
    fn spawn_process(spec: ProcessSpec, config: UpstreamConfig) -> Upstream;
}

impl SpawnProcess for Upstream {
    fn spawn_process(spec: ProcessSpec, config: UpstreamConfig) -> Upstream {
        spawn_process(spec, config)
    }
}

/// Supervises the process `spec` describes on the current tokio runtime
/// (started on first use, restarted after it dies).
///
/// # Panics
/// Outside a tokio runtime.
pub fn spawn_process(spec: ProcessSpec, config: UpstreamConfig) -> Upstream {
    Upstream::new(ProcessConnector::new(spec), config, TokioRuntime::current())
}

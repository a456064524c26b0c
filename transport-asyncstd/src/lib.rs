//! # mcpod-async-std
//!
//! mcpod's adapter for async-std and smol: a [`Runtime`] for each
//! ([`AsyncStdRuntime`], [`SmolRuntime`]), local child processes as
//! backends (`async-process`), and the [`Upstream`] handle from
//! `mcpod-transport`, re-exported. The driver loop itself is
//! `mcpod-transport`'s, shared with the tokio adapter.
//!
//! async-std is discontinued upstream in favour of smol. Both run on the
//! same foundations (`async-io` timers and reactor, `async-process`), so
//! this crate serves both: only task spawning differs.
//!
//! ## Example
//!
//! ```no_run
//! use mcpod_async_std::{OwnedRequest, ProcessSpec, RequestOptions, SpawnProcess, Upstream, UpstreamConfig};
//! use serde_json::value::RawValue;
//!
//! # fn main() -> Result<(), Box<dyn std::error::Error>> {
//! async_std::task::block_on(async {
//!     // On smol instead: mcpod_async_std::spawn_process_on(spec, config, SmolRuntime)
//!     let upstream = Upstream::spawn_process(ProcessSpec::new("mcpod-demo"), UpstreamConfig::default());
//!     let info = upstream.ready().await?;
//!     println!("backend speaks {:?} {}", info.era, info.protocol_version);
//!
//!     let request = OwnedRequest::new(
//!         RawValue::from_string("1".into())?,
//!         "tools/call",
//!         Some(RawValue::from_string(r#"{"name":"echo","arguments":{"text":"hi"}}"#.into())?),
//!     );
//!     let call = upstream.call(request, RequestOptions::default()).await?;
//!     println!("{:?}", call.finish().await);
//!     upstream.close().await;
//!     Ok(())
//! })
//! # }
//! ```
//!
//! ## Why
//! The protocol lives in `mcpod-core` and the driver in `mcpod-transport`,
//! both runtime-neutral; this crate is only what the runtime must provide:
//! timers, task spawning and child processes.

#![forbid(unsafe_code)]
#![warn(missing_docs)]

use std::io;
use std::process::Stdio;
use std::time::Instant;

use async_process::{Child, Command};
use nix::sys::signal::Signal;

pub use mcpod_transport::{
    BackendInfo, BackendProcess, BoxFuture, CallId, CallItem, CallStream, CloseReason, Connection,
    Connector, Deadline, EndReason, Era, EraMode, Inherit, OwnedOutcome, OwnedRequest, ProcessExit,
    ProcessSpec, RequestOptions, Runtime, SendError, ServerRequestId, ServerRequestKey, Upstream,
    UpstreamConfig, UpstreamError, UpstreamEvent, UpstreamEvents, UpstreamStatus,
};

/// The async-std [`Runtime`]: `async_std::task::spawn` and `async-io`
/// timers.
#[derive(Debug, Clone, Copy, Default)]
pub struct AsyncStdRuntime;

impl Runtime for AsyncStdRuntime {
    fn spawn(&self, task: BoxFuture<'static, ()>) {
        drop(async_std::task::spawn(task));
    }

    fn sleep_until(&self, deadline: Instant) -> BoxFuture<'static, ()> {
        Box::pin(async move {
            async_io::Timer::at(deadline).await;
        })
    }
}

/// The smol [`Runtime`]: `smol::spawn` (smol's global executor) and
/// `async-io` timers.
#[derive(Debug, Clone, Copy, Default)]
pub struct SmolRuntime;

impl Runtime for SmolRuntime {
    fn spawn(&self, task: BoxFuture<'static, ()>) {
        smol::spawn(task).detach();
    }

    fn sleep_until(&self, deadline: Instant) -> BoxFuture<'static, ()> {
        Box::pin(async move {
            async_io::Timer::at(deadline).await;
        })
    }
}

/// Starts local child processes from a [`ProcessSpec`] with
/// `async-process`: stdin and stdout to the driver, stderr to `tracing`.
/// Each child runs in its own process group (so terminal signals meant for
/// the gateway do not reach it, and stopping it reaches its own children
/// too) and is killed if its handle is dropped.
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
        Ok(Connection::new(stdout, stdin)
            .with_stderr(stderr)
            .with_process(AsyncChild::new(child)))
    }
}

impl Connector for ProcessConnector {
    fn connect(&self) -> BoxFuture<'_, io::Result<Connection>> {
        let result = self.spawn();
        Box::pin(async move { result })
    }
}

/// An `async-process` child as a [`BackendProcess`]. Signals go to its
/// process group, and only while the child is still running.
///
/// `async-process` reaps children from a background thread, so between the
/// check that the child still runs and the signal there is a window of
/// microseconds in which it could exit and be reaped; its pid would have to
/// be reused by a new process group within that window to be hit. SIGKILL
/// also goes through `async-process` itself, which knows whether the child
/// was reaped.
#[derive(Debug)]
pub struct AsyncChild {
    child: Child,
    pid: u32,
}

impl AsyncChild {
    /// Wraps a spawned child (best spawned with `kill_on_drop(true)`, in a
    /// process group of its own).
    pub fn new(child: Child) -> Self {
        let pid = child.id();
        AsyncChild { child, pid }
    }

    fn signal(&mut self, signal: Signal) -> io::Result<()> {
        if self.child.try_status()?.is_some() {
            return Ok(()); // exited and reaped
        }
        mcpod_transport::signal_group(self.pid, signal)
    }
}

impl BackendProcess for AsyncChild {
    fn pid(&self) -> Option<u32> {
        Some(self.pid)
    }

    fn wait(&mut self) -> BoxFuture<'_, io::Result<ProcessExit>> {
        let status = self.child.status();
        Box::pin(async move { status.await.map(ProcessExit::from) })
    }

    fn terminate(&mut self) -> io::Result<()> {
        self.signal(Signal::SIGTERM)
    }

    fn kill(&mut self) -> io::Result<()> {
        self.signal(Signal::SIGKILL)?;
        match self.child.kill() {
            Err(e) if e.kind() == io::ErrorKind::InvalidInput => Ok(()), // already exited
            other => other,
        }
    }
}

/// `Upstream::spawn_process`: a supervised child process on async-std.
pub trait SpawnProcess {
    /// Supervises the process `spec` describes on async-std (started on
    /// first use, restarted after it dies). For smol, use
    /// [`spawn_process_on`] with [`SmolRuntime`].
    fn spawn_process(spec: ProcessSpec, config: UpstreamConfig) -> Upstream;
}

impl SpawnProcess for Upstream {
    fn spawn_process(spec: ProcessSpec, config: UpstreamConfig) -> Upstream {
        spawn_process_on(spec, config, AsyncStdRuntime)
    }
}

/// Supervises the process `spec` describes on async-std (started on first
/// use, restarted after it dies).
pub fn spawn_process(spec: ProcessSpec, config: UpstreamConfig) -> Upstream {
    spawn_process_on(spec, config, AsyncStdRuntime)
}

/// Supervises the process `spec` describes on `runtime`
/// ([`AsyncStdRuntime`] or [`SmolRuntime`]).
pub fn spawn_process_on(
    spec: ProcessSpec,
    config: UpstreamConfig,
    runtime: impl Runtime,
) -> Upstream {
    Upstream::new(ProcessConnector::new(spec), config, runtime)
}

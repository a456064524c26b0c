//! [`ExecConnector`]: a [`Connector`] whose backend is a process exec'd in a
//! bot's container.
//!
//! Each `connect` finds the bot's container (checking its label), makes
//! sure its task runs and execs the command with FIFO stdio. The process is
//! owned by a small task that serializes everything done to it:
//!
//! - dropping (or closing) the connection's writer closes our end of stdin
//!   *and* sends `Tasks.CloseIO`, without which the shim keeps the FIFO open
//!   and the process never reads EOF;
//! - [`BackendProcess::terminate`] / [`BackendProcess::kill`] send SIGTERM /
//!   SIGKILL through containerd;
//! - once the process has exited, its exec record is deleted and its FIFO
//!   directory removed *before* [`BackendProcess::wait`] reports the exit,
//!   so a reaped backend leaves nothing behind; when every handle is gone
//!   first, the process is shut down (CloseIO, grace, SIGTERM, SIGKILL) and
//!   cleaned up the same way;
//! - with an idle timeout, a process that has seen no bytes either way for
//!   that long is shut down; the supervisor starts a fresh one on the next
//!   call.
//! - processes that no live mcpod owns (an mcpod killed before it could
//!   close their stdin, or one that could not confirm their end) are
//!   reaped on each start; ownership is an owner lock in each process's
//!   FIFO directory, so mcpods in other PID namespaces keep theirs.
//! - containerd restarting under a live process costs it nothing: the
//!   streams run through the shim, and the wait for its exit finds it
//!   again and goes on (within the retry budget, counted from the failure).

use std::io;
use std::pin::Pin;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::task::{Context, Poll};
use std::time::{Duration, Instant};

use futures::io::{AsyncRead, AsyncWrite};
use mcpod_containerd::{Error as CtdError, ExecProcess};
use mcpod_tokio::{
    BackendProcess, BoxFuture, Connection, Connector, ProcessExit, TokioRuntime, Upstream,
    UpstreamConfig,
};
use tokio::io::ReadBuf;
use tokio::net::unix::pipe;
use tokio::sync::{mpsc, watch};
use tracing::{debug, info, warn};

use super::clients::Clients;
use crate::config::ContainerdBackend;

/// Starts processes in a bot's container (see the module docs).
#[derive(Debug, Clone)]
pub(crate) struct ExecConnector {
    backend: ContainerdBackend,
    clients: Clients,
    grace: Duration,
    idle: Option<Duration>,
}

impl ExecConnector {
    /// A connector for `backend`. `grace` is the shutdown grace of a process
    /// stopped for idleness or abandoned; the idle timeout is never shorter
    /// than `call_timeout`, so no call still in its deadline is cut off.
    pub(crate) fn new(
        backend: ContainerdBackend,
        clients: Clients,
        grace: Duration,
        call_timeout: Duration,
    ) -> Self {
        let idle = backend.settings.idle_timeout.map(|d| d.max(call_timeout));
        ExecConnector {
            backend,
            clients,
            grace,
            idle,
        }
    }

    /// Execs the command and wires it up.
    async fn start(&self) -> Result<Connection, CtdError> {
        let bots = self.clients.bots(&self.backend.settings).await?;
        let mut exec = bots
            .exec(&self.backend.bot, &self.backend.settings.exec.options())
            .await?;
        let (Some(stdin), Some(stdout)) = (exec.stdin.take(), exec.stdout.take()) else {
            // Cannot happen with a fresh process; clean it up anyway.
            let _ = exec.shutdown(Duration::ZERO).await;
            return Err(CtdError::Config("exec'd process came without stdio".into()));
        };
        debug!(bot = %self.backend.bot, container = exec.container_id(), exec_id = exec.exec_id(), "exec'd MCP server started");
        // Off the critical path: `ListPids` runs `runc ps` (~15 ms).
        tokio::spawn({
            let client = bots.client().clone();
            let container_id = exec.container_id().to_owned();
            async move { reap_orphans(&client, &container_id).await }
        });
        let activity = Arc::new(Activity::new());
        let (ctl, ctl_rx) = mpsc::unbounded_channel();
        let (exit_tx, exit) = watch::channel(None);
        tokio::spawn(own(
            exec,
            ctl_rx,
            exit_tx,
            activity.clone(),
            self.idle,
            self.grace,
        ));
        let reader = StdoutReader {
            inner: stdout,
            activity: activity.clone(),
        };
        let writer = StdinWriter {
            inner: Some(stdin),
            ctl: ctl.clone(),
            activity,
        };
        Ok(Connection::new(reader, writer).with_process(ExecBackend { ctl, exit }))
    }
}

impl Connector for ExecConnector {
    fn connect(&self) -> BoxFuture<'_, io::Result<Connection>> {
        Box::pin(async move { self.start().await.map_err(into_io) })
    }
}

/// Ends the processes in the container that no live mcpod owns (their
/// mcpod was killed before it could close their stdin, so they would never
/// exit; or their end could not be confirmed), with their exec records and
/// FIFO directories. Ownership is decided by each process's owner lock, not
/// by pids, so mcpods in other PID namespaces keep their processes (see
/// [`mcpod_containerd::Client::reap_orphans`]).
async fn reap_orphans(client: &mcpod_containerd::Client, container_id: &str) {
    match client.reap_orphans(container_id).await {
        Ok(reaped) => {
            if !reaped.is_empty() {
                info!(
                    container_id,
                    reaped = reaped.len(),
                    "reaped exec'd processes no live mcpod owns"
                );
            }
            debug!(container_id, reaped = reaped.len(), "reaper pass done");
        }
        Err(e) => debug!(container_id, error = %e, "reaper pass failed"),
    }
}

/// A containerd error as an `io::Error` (the connector's error type), with
/// a kind that says what happened and the original kept as its source.
fn into_io(e: CtdError) -> io::Error {
    let kind = match &e {
        CtdError::NotFound { .. } => io::ErrorKind::NotFound,
        CtdError::BotMismatch { .. } | CtdError::Unlabelled { .. } => {
            io::ErrorKind::PermissionDenied
        }
        CtdError::InvalidBotId { .. } | CtdError::Config(_) => io::ErrorKind::InvalidInput,
        CtdError::Timeout { .. } => io::ErrorKind::TimedOut,
        CtdError::Connect { .. } => io::ErrorKind::ConnectionRefused,
        _ => io::ErrorKind::Other,
    };
    io::Error::new(kind, e)
}

/// When bytes last crossed either stream.
#[derive(Debug)]
struct Activity {
    base: Instant,
    last_ms: AtomicU64,
}

impl Activity {
    fn new() -> Self {
        Activity {
            base: Instant::now(),
            last_ms: AtomicU64::new(0),
        }
    }

    fn touch(&self) {
        let ms = u64::try_from(self.base.elapsed().as_millis()).unwrap_or(u64::MAX);
        self.last_ms.store(ms, Ordering::Relaxed);
    }

    fn last(&self) -> Instant {
        self.base + Duration::from_millis(self.last_ms.load(Ordering::Relaxed))
    }
}

/// What the owner task is asked to do.
#[derive(Debug)]
enum Ctl {
    CloseStdin,
    Signal(i32),
}

type Exit = Option<Result<ProcessExit, String>>;

/// Why the owner task stopped waiting.
enum End {
    Exited(Result<mcpod_containerd::ExitStatus, CtdError>),
    Idle,
    Abandoned,
}

/// Owns the exec'd process: carries out [`Ctl`]s, notices the exit (or
/// idleness, or abandonment), cleans up, then reports the exit.
async fn own(
    mut exec: ExecProcess,
    mut ctl: mpsc::UnboundedReceiver<Ctl>,
    exit: watch::Sender<Exit>,
    activity: Arc<Activity>,
    idle: Option<Duration>,
    grace: Duration,
) {
    let end = loop {
        let idle_at = idle.map(|d| activity.last() + d);
        tokio::select! {
            status = exec.wait() => break End::Exited(status),
            cmd = ctl.recv() => match cmd {
                Some(Ctl::CloseStdin) => {
                    if let Err(e) = exec.close_stdin().await {
                        warn!(exec_id = exec.exec_id(), error = %e, "closing the exec'd process's stdin failed");
                    }
                }
                Some(Ctl::Signal(signal)) => {
                    if let Err(e) = exec.signal(signal).await {
                        if !e.is_not_found() {
                            warn!(exec_id = exec.exec_id(), signal, error = %e, "signalling the exec'd process failed");
                        }
                    }
                }
                None => break End::Abandoned,
            },
            () = sleep_until(idle_at) => {
                if idle.is_some_and(|d| activity.last().elapsed() >= d) {
                    break End::Idle;
                }
            }
        }
    };
    let exec_id = exec.exec_id().to_owned();
    let outcome = match end {
        End::Exited(Ok(status)) => {
            if let Err(e) = exec.shutdown(grace).await {
                warn!(exec_id, error = %e, "cleaning up after the exec'd process failed");
            }
            Ok(status)
        }
        End::Exited(Err(e)) => {
            warn!(exec_id, error = %e, "lost track of the exec'd process; stopping it");
            exec.shutdown(grace)
                .await
                .map(|r| r.status)
                .map_err(|e2| format!("{e}; then {e2}"))
        }
        End::Idle => {
            info!(exec_id, idle = ?idle, "exec'd MCP server idle; stopping it");
            exec.shutdown(grace)
                .await
                .map(|r| r.status)
                .map_err(|e| e.to_string())
        }
        End::Abandoned => exec
            .shutdown(grace)
            .await
            .map(|r| r.status)
            .map_err(|e| e.to_string()),
    };
    let _ = exit.send(Some(outcome.map(|s| process_exit(s.code))));
}

async fn sleep_until(at: Option<Instant>) {
    match at {
        Some(at) => tokio::time::sleep_until(at.into()).await,
        None => std::future::pending().await,
    }
}

/// containerd reports `128 + n` for a process ended by signal `n`.
fn process_exit(code: u32) -> ProcessExit {
    let code = i32::try_from(code).unwrap_or(i32::MAX);
    if (129..=128 + 64).contains(&code) {
        ProcessExit {
            code: None,
            signal: Some(code - 128),
        }
    } else {
        ProcessExit {
            code: Some(code),
            signal: None,
        }
    }
}

/// The exec'd process as the supervisor sees it.
struct ExecBackend {
    ctl: mpsc::UnboundedSender<Ctl>,
    exit: watch::Receiver<Exit>,
}

impl BackendProcess for ExecBackend {
    fn pid(&self) -> Option<u32> {
        None
    }

    fn wait(&mut self) -> BoxFuture<'_, io::Result<ProcessExit>> {
        Box::pin(async move {
            let guard = self.exit.wait_for(Option::is_some).await.map_err(|_| {
                io::Error::other("the exec'd process's owner task ended without an exit")
            })?;
            match &*guard {
                Some(Ok(exit)) => Ok(*exit),
                Some(Err(message)) => Err(io::Error::other(message.clone())),
                None => Err(io::Error::other("no exit status")),
            }
        })
    }

    fn terminate(&mut self) -> io::Result<()> {
        // An owner task that has ended has nothing left to signal.
        let _ = self.ctl.send(Ctl::Signal(libc_signal::TERM));
        Ok(())
    }

    fn kill(&mut self) -> io::Result<()> {
        let _ = self.ctl.send(Ctl::Signal(libc_signal::KILL));
        Ok(())
    }
}

/// Linux signal numbers, as containerd's `Kill` takes them.
mod libc_signal {
    /// SIGTERM.
    pub(super) const TERM: i32 = 15;
    /// SIGKILL.
    pub(super) const KILL: i32 = 9;
}

/// The process's stdout, noting activity.
struct StdoutReader {
    inner: pipe::Receiver,
    activity: Arc<Activity>,
}

impl AsyncRead for StdoutReader {
    fn poll_read(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut [u8],
    ) -> Poll<io::Result<usize>> {
        let this = self.get_mut();
        let mut rb = ReadBuf::new(buf);
        match tokio::io::AsyncRead::poll_read(Pin::new(&mut this.inner), cx, &mut rb) {
            Poll::Ready(Ok(())) => {
                let n = rb.filled().len();
                if n > 0 {
                    this.activity.touch();
                }
                Poll::Ready(Ok(n))
            }
            Poll::Ready(Err(e)) => Poll::Ready(Err(e)),
            Poll::Pending => Poll::Pending,
        }
    }
}

/// The process's stdin: closing or dropping it closes the process's stdin
/// for real (our FIFO end, then `CloseIO`).
struct StdinWriter {
    inner: Option<pipe::Sender>,
    ctl: mpsc::UnboundedSender<Ctl>,
    activity: Arc<Activity>,
}

impl StdinWriter {
    fn close(&mut self) {
        if self.inner.take().is_some() {
            let _ = self.ctl.send(Ctl::CloseStdin);
        }
    }
}

impl AsyncWrite for StdinWriter {
    fn poll_write(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<io::Result<usize>> {
        let this = self.get_mut();
        let Some(inner) = this.inner.as_mut() else {
            return Poll::Ready(Err(io::ErrorKind::BrokenPipe.into()));
        };
        let r = tokio::io::AsyncWrite::poll_write(Pin::new(inner), cx, buf);
        if matches!(r, Poll::Ready(Ok(n)) if n > 0) {
            this.activity.touch();
        }
        r
    }

    fn poll_flush(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        match self.get_mut().inner.as_mut() {
            Some(inner) => tokio::io::AsyncWrite::poll_flush(Pin::new(inner), cx),
            None => Poll::Ready(Ok(())),
        }
    }

    fn poll_close(self: Pin<&mut Self>, _cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        self.get_mut().close();
        Poll::Ready(Ok(()))
    }
}

impl Drop for StdinWriter {
    fn drop(&mut self) {
        self.close();
    }
}

/// Starts the supervisor of a containerd backend.
///
/// # Panics
/// Outside a tokio runtime.
pub(crate) fn launch(
    backend: &ContainerdBackend,
    clients: &Clients,
    config: UpstreamConfig,
) -> Upstream {
    let connector = ExecConnector::new(
        backend.clone(),
        clients.clone(),
        config.shutdown_grace,
        config.core.default_call_timeout,
    );
    Upstream::new(connector, config, TokioRuntime::current())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn signal_exits_are_told_apart() {
        assert_eq!(
            process_exit(0),
            ProcessExit {
                code: Some(0),
                signal: None
            }
        );
        assert_eq!(
            process_exit(3),
            ProcessExit {
                code: Some(3),
                signal: None
            }
        );
        assert_eq!(
            process_exit(137),
            ProcessExit {
                code: None,
                signal: Some(9)
            }
        );
        assert_eq!(
            process_exit(143),
            ProcessExit {
                code: None,
                signal: Some(15)
            }
        );
        assert_eq!(
            process_exit(255),
            ProcessExit {
                code: Some(255),
                signal: None
            }
        );
    }
}

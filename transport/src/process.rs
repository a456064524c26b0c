//! What the supervisor does around a backend process: watch it, stop it
//! (grace, terminate, kill), reap it, and log its stderr.

use std::io;
use std::sync::Arc;
use std::time::{Duration, Instant};

use futures::future::{Either, select};
use futures::io::{AsyncRead, AsyncReadExt};
use tokio::sync::oneshot;

use crate::connect::{BackendProcess, ProcessExit};
use crate::runtime::{Runtime, timeout_at};
use crate::shared::Shared;

/// The supervisor's side of a running process's monitor task.
pub(crate) struct Monitor {
    /// Dropping (or firing) it starts the shutdown sequence.
    stop: Option<oneshot::Sender<()>>,
    /// How the process ended (`None`: it could not be reaped); fires once.
    exited: Option<oneshot::Receiver<Option<ProcessExit>>>,
}

/// Who a process is, for logs.
#[derive(Clone)]
pub(crate) struct Label {
    pub(crate) name: Arc<str>,
    pub(crate) generation: u64,
    pub(crate) pid: Option<u32>,
}

impl Monitor {
    /// Starts a task that owns `process`: it reports the process's exit, and
    /// stops it (grace, terminate, grace, kill) once told to.
    pub(crate) fn spawn(
        runtime: &Arc<dyn Runtime>,
        process: Box<dyn BackendProcess>,
        grace: Duration,
        shared: Arc<Shared>,
        label: Label,
    ) -> Monitor {
        let (stop, stop_rx) = oneshot::channel();
        let (exited_tx, exited) = oneshot::channel();
        let rt = runtime.clone();
        runtime.spawn(Box::pin(async move {
            let exit = watch(process, &*rt, grace, stop_rx, &label).await;
            match &exit {
                Ok(exit) if exit.success() => {
                    tracing::info!(upstream = %label.name, generation = label.generation, pid = label.pid, %exit, "backend process exited");
                }
                Ok(exit) => {
                    tracing::warn!(upstream = %label.name, generation = label.generation, pid = label.pid, %exit, "backend process exited");
                }
                Err(e) => {
                    tracing::error!(upstream = %label.name, generation = label.generation, pid = label.pid, error = %e, "backend process could not be reaped");
                }
            }
            let exit = exit.ok();
            if let Some(exit) = exit {
                shared.state().status.last_exit = Some(exit);
            }
            let _ = exited_tx.send(exit);
        }));
        Monitor {
            stop: Some(stop),
            exited: Some(exited),
        }
    }

    /// The receiver of the exit report, until it has been taken.
    pub(crate) fn exited(&mut self) -> Option<&mut oneshot::Receiver<Option<ProcessExit>>> {
        self.exited.as_mut()
    }

    /// Marks the exit report as received.
    pub(crate) fn exit_seen(&mut self) {
        self.exited = None;
    }

    /// Starts the shutdown sequence (the backend's stdin must be closed by
    /// now) without waiting for it.
    pub(crate) fn stop(&mut self) {
        if let Some(stop) = self.stop.take() {
            let _ = stop.send(());
        }
    }

    /// Starts the shutdown sequence and waits until the process is reaped.
    pub(crate) async fn stop_and_wait(mut self) {
        self.stop();
        if let Some(exited) = self.exited.take() {
            let _ = exited.await;
        }
    }
}

async fn watch(
    mut process: Box<dyn BackendProcess>,
    runtime: &dyn Runtime,
    grace: Duration,
    stop: oneshot::Receiver<()>,
    label: &Label,
) -> io::Result<ProcessExit> {
    let exited = match select(process.wait(), stop).await {
        Either::Left((exit, _)) => Some(exit),
        Either::Right(_) => None,
    };
    match exited {
        Some(exit) => exit,
        None => shut_down(&mut *process, runtime, grace, label).await,
    }
}

/// Stops a process whose stdin is closed: waits `grace` for it to exit,
/// then terminates it, waits `grace` again, then kills it; reaps it.
async fn shut_down(
    process: &mut dyn BackendProcess,
    runtime: &dyn Runtime,
    grace: Duration,
    label: &Label,
) -> io::Result<ProcessExit> {
    if let Some(exit) = timeout_at(runtime, Instant::now() + grace, process.wait()).await {
        return exit;
    }
    tracing::info!(upstream = %label.name, generation = label.generation, pid = label.pid, ?grace, "backend still running after its stdin closed; terminating it");
    if let Err(e) = process.terminate() {
        tracing::warn!(upstream = %label.name, pid = label.pid, error = %e, "terminating the backend failed");
    }
    if let Some(exit) = timeout_at(runtime, Instant::now() + grace, process.wait()).await {
        return exit;
    }
    tracing::warn!(upstream = %label.name, generation = label.generation, pid = label.pid, ?grace, "backend ignored the termination request; killing it");
    process.kill()?;
    // SIGKILL cannot be ignored; the bound only guards against a broken
    // process handle.
    let bound = grace.max(Duration::from_secs(5));
    match timeout_at(runtime, Instant::now() + bound, process.wait()).await {
        Some(exit) => exit,
        None => Err(io::Error::new(
            io::ErrorKind::TimedOut,
            "the backend did not exit after being killed",
        )),
    }
}

/// Reads a backend's stderr until it ends, logging each line. Lines longer
/// than `cap` are cut (the rest is counted, not kept): draining never stops,
/// so the backend never blocks on a full stderr pipe.
pub(crate) async fn drain_stderr(
    mut stderr: Box<dyn AsyncRead + Send + Unpin>,
    cap: usize,
    label: Label,
) {
    let mut lines = mcpod_core::framing::CappedLines::new(cap);
    let mut buf = vec![0u8; 8 * 1024];
    loop {
        match stderr.read(&mut buf).await {
            Ok(0) => break,
            Ok(n) => lines.push(&buf[..n], |line, cut| log_line(&label, line, cut)),
            Err(e) if e.kind() == io::ErrorKind::Interrupted => continue,
            Err(e) => {
                tracing::debug!(upstream = %label.name, error = %e, "reading backend stderr failed");
                break;
            }
        }
    }
    lines.finish(|line, cut| log_line(&label, line, cut));
}

fn log_line(label: &Label, line: &[u8], cut: usize) {
    let text = String::from_utf8_lossy(line);
    if cut > 0 {
        tracing::info!(target: "mcpod::backend::stderr", upstream = %label.name, generation = label.generation, pid = label.pid, cut_bytes = cut, "{text}…");
    } else {
        tracing::info!(target: "mcpod::backend::stderr", upstream = %label.name, generation = label.generation, pid = label.pid, "{text}");
    }
}

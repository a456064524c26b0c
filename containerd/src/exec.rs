//! Exec'd processes: FIFOs, streams, exit, and cleanup on every path.

use std::os::unix::fs::{DirBuilderExt, PermissionsExt};
use std::path::{Path, PathBuf};
use std::time::Duration;

use containerd_client::services::v1::{CloseIoRequest, ExecProcessRequest, StartRequest};
use nix::sys::stat::Mode;
use tokio::io::AsyncReadExt;
use tokio::net::unix::pipe;
use tokio::sync::watch;

use crate::client::{AbortOnDrop, Client, ExitStatus, Retry, TaskStatus, is_valid_identifier};
use crate::error::{Error, Result};
use crate::owner::{self, Owner, OwnerLock, new_exec_id};

/// The command run by default: the bot image's stdio MCP server.
pub const DEFAULT_COMMAND: &str = "/app/mcp";
/// Default cap on one logged stderr line, in bytes.
pub const DEFAULT_STDERR_LINE_LIMIT: usize = 8 * 1024;

const PROCESS_SPEC_TYPE: &str = "types.containerd.io/opencontainers/runtime-spec/1/Process";

/// What to run with [`Client::exec`].
#[non_exhaustive]
#[derive(Debug, Clone)]
pub struct ExecOptions {
    /// Program and arguments. Default `["/app/mcp"]`.
    pub args: Vec<String>,
    /// `KEY=VALUE` entries set on top of the container's own environment
    /// (an entry replaces the container's value for the same key).
    pub env: Vec<String>,
    /// Working directory; `None`: the container's (or `/`).
    pub cwd: Option<String>,
    /// The user and group (`uid`, `gid`) the process runs as, with no
    /// additional groups; `None`: the container's process user.
    pub user: Option<(u32, u32)>,
    /// Longest stderr line logged, in bytes; the rest of a longer line is
    /// dropped (and counted) while draining goes on.
    pub stderr_line_limit: usize,
    /// How long a dropped [`ExecProcess`] gets between stdin EOF and SIGTERM
    /// (and between SIGTERM and SIGKILL) in its background cleanup.
    pub drop_grace: Duration,
}

impl Default for ExecOptions {
    fn default() -> Self {
        ExecOptions {
            args: vec![DEFAULT_COMMAND.to_owned()],
            env: Vec::new(),
            cwd: None,
            user: None,
            stderr_line_limit: DEFAULT_STDERR_LINE_LIMIT,
            drop_grace: Duration::from_secs(1),
        }
    }
}

impl ExecOptions {
    /// Options running `args`.
    pub fn new<I, S>(args: I) -> Self
    where
        I: IntoIterator<Item = S>,
        S: Into<String>,
    {
        ExecOptions {
            args: args.into_iter().map(Into::into).collect(),
            ..ExecOptions::default()
        }
    }

    /// Adds a `KEY=VALUE` environment entry.
    pub fn env(mut self, key: &str, value: &str) -> Self {
        self.env.push(format!("{key}={value}"));
        self
    }

    /// Sets the working directory.
    pub fn cwd(mut self, cwd: impl Into<String>) -> Self {
        self.cwd = Some(cwd.into());
        self
    }

    /// Runs the process as `uid` and `gid` (no additional groups).
    pub fn user(mut self, uid: u32, gid: u32) -> Self {
        self.user = Some((uid, gid));
        self
    }
}

/// How [`ExecProcess::shutdown`] ended the process.
#[non_exhaustive]
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Escalation {
    /// It exited on its own (after stdin EOF, or before).
    None,
    /// SIGTERM ended it.
    Term,
    /// It needed SIGKILL.
    Kill,
}

/// What [`ExecProcess::shutdown`] did.
#[non_exhaustive]
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ShutdownReport {
    /// The exit status.
    pub status: ExitStatus,
    /// Which step ended the process.
    pub escalation: Escalation,
}

type Exit = Option<std::result::Result<ExitStatus, String>>;

/// Whether the exit was observed (not merely given up on by a lost Wait).
fn exit_known(exit: &watch::Receiver<Exit>) -> bool {
    matches!(&*exit.borrow(), Some(Ok(_)))
}

/// Everything needed to tear a process down, movable into a task for `Drop`.
struct Teardown {
    client: Client,
    container_id: String,
    exec_id: String,
    fifo_dir: PathBuf,
    exit: watch::Receiver<Exit>,
    waiter: Option<AbortOnDrop<()>>,
    stderr: Option<AbortOnDrop<()>>,
    /// The owner lock in the FIFO directory: held while the process may run.
    owner: Option<OwnerLock>,
}

/// A process exec'd in a container's running task.
///
/// Take [`stdin`](Self::stdin) and [`stdout`](Self::stdout) (like
/// `tokio::process::Child`); stderr is drained into `tracing` (target
/// `mcpod_containerd::stderr`) line by line. End it with
/// [`shutdown`](Self::shutdown); a process dropped without it is shut down
/// in a background task (needs a tokio runtime that keeps running).
///
/// Always read stdout: a process whose stdout nobody drains blocks once the
/// pipe (64 KiB) is full.
pub struct ExecProcess {
    /// The process's stdin. Writes after the process has exited do not fail
    /// but fill the pipe and then block: watch [`wait`](Self::wait), not write errors.
    /// The process reads EOF when this is dropped *and* the shim is told with
    /// [`close_stdin`](Self::close_stdin) (which [`shutdown`](Self::shutdown) does).
    pub stdin: Option<pipe::Sender>,
    /// The process's stdout; reaches EOF when the process has exited.
    pub stdout: Option<pipe::Receiver>,
    container_id: String,
    exec_id: String,
    exit: watch::Receiver<Exit>,
    drop_grace: Duration,
    teardown: Option<Teardown>,
}

impl std::fmt::Debug for ExecProcess {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ExecProcess")
            .field("container_id", &self.container_id)
            .field("exec_id", &self.exec_id)
            .finish_non_exhaustive()
    }
}

impl Client {
    /// Runs a process in the container's running task with FIFO stdio.
    ///
    /// The process spec is the container's own `spec.process` (so user,
    /// capabilities, rlimits match `ctr task exec`) with `args`, `env`,
    /// `cwd` (and `user`, if given) overridden and `terminal: false`. The
    /// environment is the container's with `env` on top: nothing of the
    /// calling process's own environment is passed. Every failure part-way
    /// through removes what was made (the exec record and the FIFO directory).
    pub async fn exec(&self, container_id: &str, opts: &ExecOptions) -> Result<ExecProcess> {
        if opts.args.is_empty() {
            return Err(Error::Config("exec needs at least one argument".into()));
        }
        match self.task(container_id).await? {
            Some(t) if t.status == TaskStatus::Running => {}
            Some(t) => {
                return Err(Error::TaskNotRunning {
                    container_id: container_id.to_owned(),
                    state: t.status.to_string(),
                });
            }
            None => {
                // Distinguish a missing container from a missing task.
                self.get_container(container_id).await?;
                return Err(Error::TaskNotRunning {
                    container_id: container_id.to_owned(),
                    state: "no task".into(),
                });
            }
        }
        let container = self.get_container(container_id).await?;
        let spec = process_spec(container_id, &container, opts)?;
        let exec_id = new_exec_id();
        debug_assert!(is_valid_identifier(&exec_id));
        let fifo_dir = self.fifo_root().join(&exec_id);
        let claim = Owner {
            namespace: self.namespace().to_owned(),
            container_id: container_id.to_owned(),
            instance: owner::instance_id().to_owned(),
        };
        let fifos = match Fifos::create(self.fifo_root(), &fifo_dir, &claim) {
            Ok(f) => f,
            Err(e) => {
                remove_dir(&fifo_dir);
                return Err(e);
            }
        };
        let Fifos {
            paths: [stdin_path, stdout_path, stderr_path],
            stdin,
            stdout,
            stderr,
            owner,
        } = fifos;
        let exec_result = self
            .call(
                "Tasks.Exec",
                Retry::Unsent,
                Some(self.rpc_timeout()),
                || {
                    let mut c = self.tasks();
                    let req = self.request(ExecProcessRequest {
                        container_id: container_id.to_owned(),
                        exec_id: exec_id.clone(),
                        stdin: path_str(&stdin_path),
                        stdout: path_str(&stdout_path),
                        stderr: path_str(&stderr_path),
                        terminal: false,
                        spec: Some(prost_types::Any {
                            type_url: PROCESS_SPEC_TYPE.to_owned(),
                            value: spec.clone(),
                        }),
                    });
                    async move { c.exec(req).await }
                },
            )
            .await;
        let started = match exec_result {
            Ok(_) => {
                self.call(
                    "Tasks.Start",
                    Retry::Unsent,
                    Some(self.start_timeout()),
                    || {
                        let mut c = self.tasks();
                        let req = self.request(StartRequest {
                            container_id: container_id.to_owned(),
                            exec_id: exec_id.clone(),
                        });
                        async move { c.start(req).await }
                    },
                )
                .await
            }
            Err(e) => Err(e),
        };
        if let Err(e) = started {
            // A failed Exec may and a failed Start does leave the exec id
            // registered: delete it in either case.
            drop((stdin, stdout, stderr));
            match self.delete_process(container_id, &exec_id).await {
                Ok(()) => remove_dir(&fifo_dir),
                Err(del) => {
                    // The record (and maybe a process) is still there: leave
                    // the FIFO directory, unlocked, for a reaper to find.
                    tracing::warn!(container_id, exec_id, error = %del,
                        "deleting exec record after failed exec; left for the reaper");
                }
            }
            drop(owner);
            return Err(e);
        }
        tracing::debug!(container_id, exec_id, "exec'd process started");

        let (waiter, exit_rx) = spawn_waiter(self, container_id, &exec_id);
        let stderr_task = tokio::spawn(drain_stderr(
            stderr,
            container_id.to_owned(),
            exec_id.clone(),
            opts.stderr_line_limit.max(1),
        ));
        Ok(ExecProcess {
            stdin: Some(stdin),
            stdout: Some(stdout),
            container_id: container_id.to_owned(),
            exec_id: exec_id.clone(),
            exit: exit_rx.clone(),
            drop_grace: opts.drop_grace,
            teardown: Some(Teardown {
                client: self.clone(),
                container_id: container_id.to_owned(),
                exec_id,
                fifo_dir,
                exit: exit_rx,
                waiter: Some(waiter),
                stderr: Some(AbortOnDrop(stderr_task)),
                owner: Some(owner),
            }),
        })
    }
}

/// Waits for the process's exit in a task of its own, reporting it (or that
/// it could not be observed) on the returned channel.
fn spawn_waiter(
    client: &Client,
    container_id: &str,
    exec_id: &str,
) -> (AbortOnDrop<()>, watch::Receiver<Exit>) {
    let (exit_tx, exit_rx) = watch::channel::<Exit>(None);
    let client = client.clone();
    let cid = container_id.to_owned();
    let eid = exec_id.to_owned();
    let task = tokio::spawn(async move {
        let outcome = client.wait(&cid, &eid).await.map_err(|e| e.to_string());
        if let Err(msg) = &outcome {
            tracing::warn!(
                container_id = cid,
                exec_id = eid,
                error = msg.as_str(),
                "waiting for exec'd process failed"
            );
        }
        let _ = exit_tx.send(Some(outcome));
    });
    (AbortOnDrop(task), exit_rx)
}

impl ExecProcess {
    /// The container the process runs in.
    pub fn container_id(&self) -> &str {
        &self.container_id
    }

    /// The process's exec id.
    pub fn exec_id(&self) -> &str {
        &self.exec_id
    }

    /// Waits for the process to exit. containerd restarting meanwhile is
    /// survived (see [`Client::wait`]). An error means the exit could not be
    /// observed (containerd gone for longer than the retry budget, counted
    /// from the failure), never that the process exited: the process may
    /// still run, and [`shutdown`](Self::shutdown) still ends it.
    pub async fn wait(&self) -> Result<ExitStatus> {
        wait_exit(&self.exit, &self.container_id, &self.exec_id).await
    }

    /// The exit status if the process has exited already.
    pub fn try_exit_status(&self) -> Option<ExitStatus> {
        match &*self.exit.borrow() {
            Some(Ok(s)) => Some(*s),
            _ => None,
        }
    }

    /// Sends a signal to the process.
    pub async fn signal(&self, signal: i32) -> Result<()> {
        let Some(t) = &self.teardown else {
            return Ok(());
        };
        t.client
            .kill(&self.container_id, &self.exec_id, signal, false)
            .await
    }

    /// Closes the process's stdin for good: drops [`stdin`](Self::stdin) if it
    /// is still here and tells the shim with `Tasks.CloseIO`. The shim holds
    /// its own writer on the FIFO, so without this the process never reads
    /// EOF even after every writer of ours is dropped — and with it, the
    /// process reads EOF only once every writer is gone: drop a `stdin` you
    /// took *before* calling this. A process that has already exited (or
    /// whose record is gone) is not an error.
    pub async fn close_stdin(&mut self) -> Result<()> {
        self.stdin = None;
        let Some(t) = &self.teardown else {
            return Ok(());
        };
        if exit_known(&t.exit) {
            return Ok(());
        }
        let client = &t.client;
        let r = client
            .call(
                "Tasks.CloseIO",
                Retry::Idempotent,
                Some(client.rpc_timeout()),
                || {
                    let mut c = client.tasks();
                    let req = client.request(CloseIoRequest {
                        container_id: t.container_id.clone(),
                        exec_id: t.exec_id.clone(),
                        stdin: true,
                    });
                    async move { c.close_io(req).await }
                },
            )
            .await
            .map(|_| ());
        ignore_gone(r)
    }

    /// Ends the process and removes every trace of it: closes stdin (and tells
    /// the shim with `CloseIO`), waits up to `grace` for an exit, then SIGTERM
    /// and up to `grace` again, then SIGKILL; then deletes the exec record and
    /// the FIFO directory. Cleanup runs to the end even when a step fails; the
    /// first error is returned.
    ///
    /// When waiting for the exit had failed (containerd unreachable for the
    /// whole retry budget), the process is first found again by its exec id
    /// and then ended the same way — a lost Wait is never taken for an exit.
    /// When its end cannot be confirmed (containerd still unreachable, or no
    /// exit even after SIGKILL), the FIFO directory is left in place with its
    /// owner lock released, and the process is reaped later: by a background
    /// retry here, or by any mcpod's [`Client::reap_orphans`].
    pub async fn shutdown(mut self, grace: Duration) -> Result<ShutdownReport> {
        self.stdin = None;
        match self.teardown.take() {
            Some(t) => t.run(grace).await,
            None => Err(Error::Config("process was already shut down".into())),
        }
    }
}

impl Drop for ExecProcess {
    fn drop(&mut self) {
        let Some(teardown) = self.teardown.take() else {
            return;
        };
        self.stdin = None;
        let grace = self.drop_grace;
        match tokio::runtime::Handle::try_current() {
            Ok(handle) => {
                handle.spawn(async move {
                    let (cid, eid) = (teardown.container_id.clone(), teardown.exec_id.clone());
                    if let Err(e) = teardown.run(grace).await {
                        tracing::warn!(container_id = cid, exec_id = eid, error = %e,
                            "background cleanup of dropped exec'd process failed");
                    }
                });
            }
            Err(_) => {
                // Nothing can be sent to containerd here. Dropping the
                // teardown releases the owner lock and keeps the FIFO
                // directory, so the process is found and reaped later.
                tracing::warn!(
                    container_id = teardown.container_id,
                    exec_id = teardown.exec_id,
                    "exec'd process dropped outside a tokio runtime: left for the reaper"
                );
            }
        }
    }
}

async fn wait_exit(
    exit: &watch::Receiver<Exit>,
    container_id: &str,
    exec_id: &str,
) -> Result<ExitStatus> {
    let mut rx = exit.clone();
    let wait_failed = |message: String| Error::WaitFailed {
        container_id: container_id.to_owned(),
        exec_id: exec_id.to_owned(),
        message,
    };
    let guard = rx
        .wait_for(|v| v.is_some())
        .await
        .map_err(|_| wait_failed("the waiting task ended without a result".into()))?;
    match &*guard {
        Some(Ok(s)) => Ok(*s),
        Some(Err(m)) => Err(wait_failed(m.clone())),
        None => Err(wait_failed("no result".into())),
    }
}

impl Teardown {
    async fn run(mut self, grace: Duration) -> Result<ShutdownReport> {
        let client = self.client.clone();
        let (cid, eid) = (self.container_id.clone(), self.exec_id.clone());
        let mut first_error: Option<Error> = None;
        let mut note = |r: Result<()>, what: &str| {
            if let Err(e) = r {
                tracing::debug!(container_id = cid, exec_id = eid, error = %e, "{what}");
                if first_error.is_none() {
                    first_error = Some(e);
                }
            }
        };

        if matches!(&*self.exit.borrow(), Some(Err(_))) {
            // The Wait gave up: the process's fate is unknown. Find it again
            // by its exec id before anything else.
            match client.process_info(&cid, &eid).await {
                Ok(Some(p)) if p.status == TaskStatus::Stopped => {
                    let (tx, rx) = watch::channel::<Exit>(Some(Ok(ExitStatus {
                        code: p.exit_status.unwrap_or_default(),
                    })));
                    drop(tx);
                    self.exit = rx;
                }
                Ok(Some(_)) => {
                    tracing::info!(
                        container_id = cid,
                        exec_id = eid,
                        "found the exec'd process again; ending it"
                    );
                    let (waiter, rx) = spawn_waiter(&client, &cid, &eid);
                    self.waiter = Some(waiter);
                    self.exit = rx;
                }
                Ok(None) => {
                    // containerd has no record: nothing runs under this id.
                    self.stderr.take();
                    self.waiter.take();
                    remove_dir(&self.fifo_dir);
                    return Err(Error::WaitFailed {
                        container_id: cid,
                        exec_id: eid,
                        message: "the process is gone and its exit status unknown".into(),
                    });
                }
                Err(e) => return Err(self.leave_for_reaper(e)),
            }
        }

        let mut escalation = Escalation::None;
        if !exit_known(&self.exit) {
            let r = client
                .call(
                    "Tasks.CloseIO",
                    Retry::Idempotent,
                    Some(client.rpc_timeout()),
                    || {
                        let mut c = client.tasks();
                        let req = client.request(CloseIoRequest {
                            container_id: cid.clone(),
                            exec_id: eid.clone(),
                            stdin: true,
                        });
                        async move { c.close_io(req).await }
                    },
                )
                .await
                .map(|_| ());
            note(ignore_gone(r), "CloseIO failed");
        }
        let mut status = self.wait_for(grace).await;
        if status.is_none() {
            escalation = Escalation::Term;
            note(
                ignore_gone(client.kill(&cid, &eid, libc::SIGTERM, false).await),
                "SIGTERM failed",
            );
            status = self.wait_for(grace).await;
        }
        if status.is_none() {
            escalation = Escalation::Kill;
            note(
                ignore_gone(client.kill(&cid, &eid, libc::SIGKILL, false).await),
                "SIGKILL failed",
            );
            status = self.wait_for(client.rpc_timeout()).await;
        }
        let status = match status {
            Some(Ok(s)) => s,
            Some(Err(e)) => {
                note(Err(e), "wait failed");
                let e = first_error.unwrap_or_else(|| unknown_exit(&cid, &eid));
                return Err(self.leave_for_reaper(e));
            }
            None => {
                note(
                    Err(Error::Timeout {
                        op: "waiting for exec'd process exit after SIGKILL",
                        after: client.rpc_timeout(),
                    }),
                    "no exit after SIGKILL",
                );
                let e = first_error.unwrap_or_else(|| unknown_exit(&cid, &eid));
                return Err(self.leave_for_reaper(e));
            }
        };
        if let Err(e) = client.delete_process(&cid, &eid).await {
            // The exec record stays: keep the directory too, so that the
            // reaper finds both and deletes the record.
            note(Err(e), "DeleteProcess failed");
            let e = first_error.unwrap_or_else(|| unknown_exit(&cid, &eid));
            return Err(self.leave_for_reaper(e));
        }
        // The shim has closed its ends now; let stderr drain to EOF briefly, then stop it.
        if let Some(stderr) = self.stderr.take() {
            let mut stderr = stderr;
            let _ = tokio::time::timeout(Duration::from_millis(200), &mut stderr.0).await;
        }
        self.waiter.take();
        remove_dir(&self.fifo_dir);
        if self.fifo_dir.exists() {
            note(
                Err(Error::io(
                    format!("removing FIFO directory {}", self.fifo_dir.display()),
                    std::io::Error::other("still present"),
                )),
                "FIFO directory left behind",
            );
        }
        // Only now, with the directory gone, may the process count as unowned.
        self.owner.take();
        tracing::debug!(
            container_id = cid,
            exec_id = eid,
            ?escalation,
            "exec'd process cleaned up"
        );
        match first_error {
            None => Ok(ShutdownReport { status, escalation }),
            Some(e) => Err(e),
        }
    }

    /// The process may still run, or its record is still there, and
    /// containerd cannot be asked now: keep its FIFO directory, release the
    /// owner lock (so any mcpod's reaper may take it), and keep trying to
    /// reap it in the background.
    fn leave_for_reaper(mut self, reason: Error) -> Error {
        tracing::warn!(
            container_id = self.container_id,
            exec_id = self.exec_id,
            error = %reason,
            "cannot finish cleaning up the exec'd process now; leaving it to the reaper"
        );
        self.waiter.take();
        self.stderr.take();
        self.owner.take();
        self.client
            .reap_later(self.container_id.clone(), self.exec_id.clone());
        reason
    }

    /// Up to `limit` for the exit; `None` when it did not come in time.
    async fn wait_for(&self, limit: Duration) -> Option<Result<ExitStatus>> {
        tokio::time::timeout(
            limit,
            wait_exit(&self.exit, &self.container_id, &self.exec_id),
        )
        .await
        .ok()
    }
}

fn unknown_exit(container_id: &str, exec_id: &str) -> Error {
    Error::WaitFailed {
        container_id: container_id.to_owned(),
        exec_id: exec_id.to_owned(),
        message: "no exit status".into(),
    }
}

pub(crate) fn ignore_gone(r: Result<()>) -> Result<()> {
    match r {
        // The process (or the whole task) is already gone: nothing to do.
        Err(e)
            if matches!(
                e.rpc_code(),
                Some(tonic::Code::NotFound) | Some(tonic::Code::FailedPrecondition)
            ) =>
        {
            Ok(())
        }
        other => other,
    }
}

struct Fifos {
    paths: [PathBuf; 3],
    stdin: pipe::Sender,
    stdout: pipe::Receiver,
    stderr: pipe::Receiver,
    owner: OwnerLock,
}

impl Fifos {
    /// Makes `dir` (0700) with its owner file, locked (see [`owner`]), and
    /// three FIFOs (0600), and opens them in the order the shim needs:
    /// stdout and stderr for non-blocking reading, stdin read+write (a
    /// write-only non-blocking open fails with ENXIO before the shim's
    /// reader exists).
    fn create(root: &Path, dir: &Path, claim: &Owner) -> Result<Fifos> {
        std::fs::DirBuilder::new()
            .recursive(true)
            .mode(0o700)
            .create(root)
            .map_err(|e| Error::io(format!("creating FIFO root {}", root.display()), e))?;
        std::fs::DirBuilder::new()
            .mode(0o700)
            .create(dir)
            .map_err(|e| Error::io(format!("creating FIFO directory {}", dir.display()), e))?;
        // The umask may have narrowed it further, never widened it; make it exact.
        std::fs::set_permissions(dir, std::fs::Permissions::from_mode(0o700))
            .map_err(|e| Error::io(format!("chmod {}", dir.display()), e))?;
        let owner = owner::claim(dir, claim)?;
        let paths = ["stdin", "stdout", "stderr"].map(|n| dir.join(n));
        for p in &paths {
            nix::unistd::mkfifo(p, Mode::from_bits_truncate(0o600))
                .map_err(|e| Error::io(format!("mkfifo {}", p.display()), e.into()))?;
        }
        let open_err = |p: &Path| {
            let p = p.display().to_string();
            move |e| Error::io(format!("opening FIFO {p}"), e)
        };
        let stdout = pipe::OpenOptions::new()
            .open_receiver(&paths[1])
            .map_err(open_err(&paths[1]))?;
        let stderr = pipe::OpenOptions::new()
            .open_receiver(&paths[2])
            .map_err(open_err(&paths[2]))?;
        let stdin = pipe::OpenOptions::new()
            .read_write(true)
            .open_sender(&paths[0])
            .map_err(open_err(&paths[0]))?;
        Ok(Fifos {
            paths,
            stdin,
            stdout,
            stderr,
            owner,
        })
    }
}

fn path_str(p: &Path) -> String {
    p.to_string_lossy().into_owned()
}

pub(crate) fn remove_dir(dir: &Path) {
    match std::fs::remove_dir_all(dir) {
        Ok(()) => {}
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => {}
        Err(e) => tracing::warn!(dir = %dir.display(), error = %e, "removing FIFO directory"),
    }
}

/// Reads stderr to EOF, logging each line (at most `limit` bytes of it).
/// Never stops early: an over-long line is cut, the rest counted and skipped.
async fn drain_stderr(
    mut stderr: pipe::Receiver,
    container_id: String,
    exec_id: String,
    limit: usize,
) {
    let emit = |line: &[u8], cut: usize| {
        let text = String::from_utf8_lossy(line);
        if cut > 0 {
            tracing::info!(target: "mcpod_containerd::stderr", container_id, exec_id,
                dropped_bytes = cut, "{text}");
        } else {
            tracing::info!(target: "mcpod_containerd::stderr", container_id, exec_id, "{text}");
        }
    };
    let mut lines = mcpod_core::framing::CappedLines::new(limit);
    let mut buf = vec![0u8; 16 * 1024];
    loop {
        match stderr.read(&mut buf).await {
            Ok(0) => break,
            Ok(n) => lines.push(&buf[..n], emit),
            Err(e) if e.kind() == std::io::ErrorKind::Interrupted => continue,
            Err(e) => {
                tracing::warn!(container_id, exec_id, error = %e, "reading stderr failed");
                break;
            }
        }
    }
    lines.finish(emit);
}

/// The container's `spec.process` with args, env, cwd and user overridden.
fn process_spec(
    container_id: &str,
    container: &containerd_client::services::v1::Container,
    opts: &ExecOptions,
) -> Result<Vec<u8>> {
    let spec_err = |message: String| Error::Spec {
        container_id: container_id.to_owned(),
        message,
    };
    let any = container
        .spec
        .as_ref()
        .ok_or_else(|| spec_err("container has no spec".into()))?;
    let spec: serde_json::Value = serde_json::from_slice(&any.value)
        .map_err(|e| spec_err(format!("spec is not JSON: {e}")))?;
    let mut process = match spec.get("process") {
        Some(serde_json::Value::Object(p)) => p.clone(),
        _ => return Err(spec_err("spec has no process object".into())),
    };
    let mut env: Vec<String> = process
        .get("env")
        .and_then(|e| e.as_array())
        .map(|a| {
            a.iter()
                .filter_map(|v| v.as_str().map(str::to_owned))
                .collect()
        })
        .unwrap_or_default();
    for entry in &opts.env {
        let key = entry.split_once('=').map_or(entry.as_str(), |(k, _)| k);
        env.retain(|e| e.split_once('=').map_or(e.as_str(), |(k, _)| k) != key);
        env.push(entry.clone());
    }
    let cwd = match &opts.cwd {
        Some(c) => c.clone(),
        None => process
            .get("cwd")
            .and_then(|c| c.as_str())
            .filter(|c| !c.is_empty())
            .unwrap_or("/")
            .to_owned(),
    };
    process.insert("args".into(), serde_json::json!(opts.args));
    process.insert("env".into(), serde_json::json!(env));
    process.insert("cwd".into(), serde_json::json!(cwd));
    if let Some((uid, gid)) = opts.user {
        process.insert("user".into(), serde_json::json!({"uid": uid, "gid": gid}));
    }
    process.insert("terminal".into(), serde_json::Value::Bool(false));
    process.remove("consoleSize");
    serde_json::to_vec(&process).map_err(|e| spec_err(format!("serializing process spec: {e}")))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn process_spec_overrides() {
        let spec = serde_json::json!({
            "process": {
                "args": ["/bin/sleep", "1"], "env": ["PATH=/bin", "A=1"], "cwd": "/srv",
                "terminal": true, "capabilities": {"bounding": ["CAP_KILL"]}
            }
        });
        let container = containerd_client::services::v1::Container {
            spec: Some(prost_types::Any {
                type_url: String::new(),
                value: serde_json::to_vec(&spec).unwrap_or_default(),
            }),
            ..Default::default()
        };
        let opts = ExecOptions::new(["/bin/cat"]).env("A", "2").env("B", "3");
        let out = process_spec("c", &container, &opts).unwrap_or_default();
        let v: serde_json::Value = serde_json::from_slice(&out).unwrap_or_default();
        assert_eq!(v["args"], serde_json::json!(["/bin/cat"]));
        assert_eq!(v["env"], serde_json::json!(["PATH=/bin", "A=2", "B=3"]));
        assert_eq!(v["cwd"], "/srv");
        assert_eq!(v["terminal"], false);
        assert_eq!(v["capabilities"]["bounding"][0], "CAP_KILL");
        assert_eq!(
            v["user"],
            serde_json::Value::Null,
            "the container's user by default"
        );

        let opts = ExecOptions::new(["/bin/cat"]).user(1000, 1001);
        let out = process_spec("c", &container, &opts).unwrap_or_default();
        let v: serde_json::Value = serde_json::from_slice(&out).unwrap_or_default();
        assert_eq!(v["user"], serde_json::json!({"uid": 1000, "gid": 1001}));
    }

    // The exec'd process's environment is the container's and the
    // options': a variable of this (test) process never gets in.
    #[test]
    fn the_callers_environment_is_not_passed() {
        let spec = serde_json::json!({"process": {"args": ["/bin/sh"], "env": ["PATH=/bin"]}});
        let container = containerd_client::services::v1::Container {
            spec: Some(prost_types::Any {
                type_url: String::new(),
                value: serde_json::to_vec(&spec).unwrap_or_default(),
            }),
            ..Default::default()
        };
        let out = process_spec(
            "c",
            &container,
            &ExecOptions::new(["/bin/cat"]).env("A", "1"),
        )
        .unwrap_or_default();
        let v: serde_json::Value = serde_json::from_slice(&out).unwrap_or_default();
        assert_eq!(v["env"], serde_json::json!(["PATH=/bin", "A=1"]));
        assert!(
            std::env::var_os("PATH").is_some(),
            "this process has a PATH"
        );
    }

    #[test]
    fn missing_spec_is_an_error() {
        let container = containerd_client::services::v1::Container::default();
        assert!(matches!(
            process_spec("c", &container, &ExecOptions::default()),
            Err(Error::Spec { .. })
        ));
    }
}

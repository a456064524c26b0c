//! Connection to containerd: per-call timeouts, retries of transient failures,
//! and the container-id level operations everything else is built from.

use std::future::Future;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::{Duration, Instant};

use containerd_client::services::v1::containers_client::ContainersClient;
use containerd_client::services::v1::snapshots::MountsRequest;
use containerd_client::services::v1::snapshots::snapshots_client::SnapshotsClient;
use containerd_client::services::v1::tasks_client::TasksClient;
use containerd_client::services::v1::version_client::VersionClient;
use containerd_client::services::v1::{
    Container, CreateTaskRequest, DeleteProcessRequest, DeleteTaskRequest, GetContainerRequest,
    GetRequest, KillRequest, ListContainersRequest, ListPidsRequest, ListTasksRequest,
    StartRequest, WaitRequest,
};
use containerd_client::types::v1::Status;
use prost::Message;
use tonic::metadata::MetadataValue;
use tonic::transport::Channel;

use crate::error::{Error, Result};

/// The default containerd socket.
pub const DEFAULT_SOCKET: &str = "/run/containerd/containerd.sock";
/// The default containerd namespace.
pub const DEFAULT_NAMESPACE: &str = "default";
/// The default root under which per-process FIFO directories are made.
pub const DEFAULT_FIFO_ROOT: &str = "/run/mcpod/containerd-fifo";

/// Longest pause between a broken `Wait`'s attempts to find its process again.
const WAIT_PROBE_MAX_BACKOFF: Duration = Duration::from_millis(250);

/// How transient failures (containerd restarting, connection reset) are retried.
#[non_exhaustive]
#[derive(Debug, Clone)]
pub struct RetryPolicy {
    /// First back-off delay.
    pub initial_backoff: Duration,
    /// Largest back-off delay (the delay doubles up to this).
    pub max_backoff: Duration,
    /// Give up when failures have gone on this long without a success,
    /// counted from the first failure (the retry budget).
    pub max_elapsed: Duration,
}

impl Default for RetryPolicy {
    fn default() -> Self {
        RetryPolicy {
            initial_backoff: Duration::from_millis(25),
            max_backoff: Duration::from_secs(1),
            max_elapsed: Duration::from_secs(30),
        }
    }
}

/// Settings of a [`Client`].
#[non_exhaustive]
#[derive(Debug, Clone)]
pub struct ClientConfig {
    /// containerd's gRPC socket. Default [`DEFAULT_SOCKET`].
    pub socket: PathBuf,
    /// containerd namespace every call is made in. Default [`DEFAULT_NAMESPACE`].
    pub namespace: String,
    /// Time limit of connecting.
    pub connect_timeout: Duration,
    /// Time limit of each ordinary RPC attempt (Wait has none: it is a long poll).
    pub rpc_timeout: Duration,
    /// Time limit of RPCs that start processes (Tasks.Create, Tasks.Start), which
    /// run `runc` and are slower.
    pub start_timeout: Duration,
    /// Retries of transient failures.
    pub retry: RetryPolicy,
    /// Absolute directory under which each exec'd process gets a fresh FIFO
    /// directory (mode 0700). Created (0700) when missing. Default [`DEFAULT_FIFO_ROOT`].
    pub fifo_root: PathBuf,
}

impl Default for ClientConfig {
    fn default() -> Self {
        ClientConfig {
            socket: PathBuf::from(DEFAULT_SOCKET),
            namespace: DEFAULT_NAMESPACE.to_owned(),
            connect_timeout: Duration::from_secs(5),
            rpc_timeout: Duration::from_secs(10),
            start_timeout: Duration::from_secs(40),
            retry: RetryPolicy::default(),
            fifo_root: PathBuf::from(DEFAULT_FIFO_ROOT),
        }
    }
}

impl ClientConfig {
    /// Defaults with another socket.
    pub fn new(socket: impl Into<PathBuf>) -> Self {
        ClientConfig {
            socket: socket.into(),
            ..ClientConfig::default()
        }
    }

    /// Sets the namespace.
    pub fn with_namespace(mut self, namespace: impl Into<String>) -> Self {
        self.namespace = namespace.into();
        self
    }

    /// Sets the FIFO root.
    pub fn with_fifo_root(mut self, fifo_root: impl Into<PathBuf>) -> Self {
        self.fifo_root = fifo_root.into();
        self
    }

    /// Sets how long transient failures are retried, counted from the first
    /// failure ([`RetryPolicy::max_elapsed`]); also how long a `Wait` broken
    /// by containerd restarting keeps trying to find its process again.
    pub fn with_retry_budget(mut self, budget: Duration) -> Self {
        self.retry.max_elapsed = budget;
        self
    }
}

/// Whether a failed call may be sent again.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Retry {
    /// Retry only when the request surely did not reach containerd (`Unavailable`).
    Unsent,
    /// The call is idempotent (reads, Wait, Kill, CloseIO, deletes): also retry
    /// when the connection broke mid-call (`Unknown` "transport error").
    Idempotent,
}

/// State of a task or process, as containerd reports it.
#[non_exhaustive]
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum TaskStatus {
    /// Created, not started.
    Created,
    /// Running.
    Running,
    /// Exited, not yet deleted.
    Stopped,
    /// Paused.
    Paused,
    /// Being paused.
    Pausing,
    /// containerd does not know.
    Unknown,
}

impl TaskStatus {
    fn from_proto(v: i32) -> Self {
        match Status::try_from(v) {
            Ok(Status::Created) => TaskStatus::Created,
            Ok(Status::Running) => TaskStatus::Running,
            Ok(Status::Stopped) => TaskStatus::Stopped,
            Ok(Status::Paused) => TaskStatus::Paused,
            Ok(Status::Pausing) => TaskStatus::Pausing,
            _ => TaskStatus::Unknown,
        }
    }

    /// Lower-case name, as `ctr` prints it.
    pub fn as_str(self) -> &'static str {
        match self {
            TaskStatus::Created => "created",
            TaskStatus::Running => "running",
            TaskStatus::Stopped => "stopped",
            TaskStatus::Paused => "paused",
            TaskStatus::Pausing => "pausing",
            TaskStatus::Unknown => "unknown",
        }
    }
}

impl std::fmt::Display for TaskStatus {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.as_str())
    }
}

/// A container's task (its init process).
#[non_exhaustive]
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TaskInfo {
    /// The container.
    pub container_id: String,
    /// Host PID of the init process (0 when not started).
    pub pid: u32,
    /// State.
    pub status: TaskStatus,
    /// Exit status when stopped.
    pub exit_status: Option<u32>,
}

/// A process running in a task, from `Tasks.ListPids`.
#[non_exhaustive]
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ProcessPid {
    /// Host PID.
    pub pid: u32,
    /// The exec id when the process was started by `Tasks.Exec` (runc shims report it).
    pub exec_id: Option<String>,
}

/// How a process ended.
#[non_exhaustive]
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ExitStatus {
    /// The exit status containerd reports: the exit code, or 128 + signal number.
    pub code: u32,
}

impl ExitStatus {
    /// Whether the process exited with status 0.
    pub fn success(self) -> bool {
        self.code == 0
    }
}

/// `containerd.runc.v1.ProcessDetails`: what runc shims put in `ProcessInfo.info`.
#[derive(Clone, PartialEq, prost::Message)]
struct ProcessDetails {
    #[prost(string, tag = "1")]
    exec_id: String,
}

struct Inner {
    channel: Channel,
    namespace: MetadataValue<tonic::metadata::Ascii>,
    config: ClientConfig,
}

/// A connection to containerd in one namespace. Cheap to clone.
#[derive(Clone)]
pub struct Client {
    inner: Arc<Inner>,
}

impl std::fmt::Debug for Client {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Client")
            .field("socket", &self.inner.config.socket)
            .field("namespace", &self.inner.config.namespace)
            .finish_non_exhaustive()
    }
}

/// Whether `s` is a valid containerd identifier (namespace, container id, exec id):
/// `^[A-Za-z0-9]+(?:[._-][A-Za-z0-9]+)*$`, at most 76 characters.
pub fn is_valid_identifier(s: &str) -> bool {
    if s.is_empty() || s.len() > 76 {
        return false;
    }
    let mut prev_sep = true;
    for b in s.bytes() {
        if b.is_ascii_alphanumeric() {
            prev_sep = false;
        } else if matches!(b, b'.' | b'_' | b'-') {
            if prev_sep {
                return false;
            }
            prev_sep = true;
        } else {
            return false;
        }
    }
    !prev_sep
}

impl Client {
    /// Connects to the socket in `config` (fails after `connect_timeout`).
    pub async fn connect(config: ClientConfig) -> Result<Client> {
        if !is_valid_identifier(&config.namespace) {
            return Err(Error::Config(format!(
                "namespace {:?} is not a valid containerd identifier",
                config.namespace
            )));
        }
        if !config.fifo_root.is_absolute() {
            return Err(Error::Config(format!(
                "fifo_root {} must be an absolute path",
                config.fifo_root.display()
            )));
        }
        let namespace = MetadataValue::try_from(config.namespace.as_str())
            .map_err(|e| Error::Config(format!("namespace: {e}")))?;
        let channel = match tokio::time::timeout(
            config.connect_timeout,
            containerd_client::connect(&config.socket),
        )
        .await
        {
            Ok(Ok(channel)) => channel,
            Ok(Err(e)) => {
                let message = if config.socket.exists() {
                    error_chain(&e)
                } else {
                    "no such socket (is containerd running, and listening there?)".to_owned()
                };
                return Err(Error::Connect {
                    socket: config.socket.clone(),
                    message,
                });
            }
            Err(_) => {
                return Err(Error::Connect {
                    socket: config.socket.clone(),
                    message: format!("timed out after {:?}", config.connect_timeout),
                });
            }
        };
        Ok(Client {
            inner: Arc::new(Inner {
                channel,
                namespace,
                config,
            }),
        })
    }

    /// The settings this client was made with.
    pub fn config(&self) -> &ClientConfig {
        &self.inner.config
    }

    /// The namespace every call is made in.
    pub fn namespace(&self) -> &str {
        &self.inner.config.namespace
    }

    /// The FIFO root of exec'd processes.
    pub fn fifo_root(&self) -> &Path {
        &self.inner.config.fifo_root
    }

    pub(crate) fn channel(&self) -> Channel {
        self.inner.channel.clone()
    }

    pub(crate) fn tasks(&self) -> TasksClient<Channel> {
        TasksClient::new(self.inner.channel.clone())
    }

    pub(crate) fn containers(&self) -> ContainersClient<Channel> {
        ContainersClient::new(self.inner.channel.clone())
    }

    /// Wraps `msg` in a request carrying the namespace.
    pub(crate) fn request<T>(&self, msg: T) -> tonic::Request<T> {
        let mut req = tonic::Request::new(msg);
        req.metadata_mut()
            .insert("containerd-namespace", self.inner.namespace.clone());
        req
    }

    pub(crate) fn rpc_timeout(&self) -> Duration {
        self.inner.config.rpc_timeout
    }

    pub(crate) fn start_timeout(&self) -> Duration {
        self.inner.config.start_timeout
    }

    /// Runs one RPC with a time limit per attempt (`None`: no limit) and
    /// retries of transient failures with exponential back-off, for up to
    /// [`RetryPolicy::max_elapsed`] counted from the first failure (not from
    /// the call's start: a slow first attempt does not use up the budget).
    pub(crate) async fn call<T, F, Fut>(
        &self,
        op: &'static str,
        retry: Retry,
        timeout: Option<Duration>,
        mut attempt: F,
    ) -> Result<T>
    where
        F: FnMut() -> Fut,
        Fut: Future<Output = std::result::Result<tonic::Response<T>, tonic::Status>>,
    {
        let policy = &self.inner.config.retry;
        let mut failing_since: Option<Instant> = None;
        let mut backoff = policy.initial_backoff;
        loop {
            let outcome = match timeout {
                Some(limit) => match tokio::time::timeout(limit, attempt()).await {
                    Ok(r) => r,
                    Err(_) => return Err(Error::Timeout { op, after: limit }),
                },
                None => attempt().await,
            };
            match outcome {
                Ok(resp) => return Ok(resp.into_inner()),
                Err(status) if is_transient(&status, retry) => {
                    let since = *failing_since.get_or_insert_with(Instant::now);
                    if since.elapsed() >= policy.max_elapsed {
                        return Err(Error::rpc(op, &status));
                    }
                    tracing::debug!(op, code = ?status.code(), message = status.message(),
                        ?backoff, "transient containerd error; retrying");
                    tokio::time::sleep(backoff).await;
                    backoff = (backoff * 2).min(policy.max_backoff);
                }
                Err(status) => return Err(Error::rpc(op, &status)),
            }
        }
    }

    /// containerd's version string.
    pub async fn version(&self) -> Result<String> {
        let resp = self
            .call(
                "Version",
                Retry::Idempotent,
                Some(self.rpc_timeout()),
                || {
                    let mut c = VersionClient::new(self.inner.channel.clone());
                    async move { c.version(()).await }
                },
            )
            .await?;
        Ok(resp.version)
    }

    /// Reads a container record; a missing container is [`Error::NotFound`].
    pub async fn get_container(&self, container_id: &str) -> Result<Container> {
        let resp = self
            .call(
                "Containers.Get",
                Retry::Idempotent,
                Some(self.rpc_timeout()),
                || {
                    let mut c = self.containers();
                    let req = self.request(GetContainerRequest {
                        id: container_id.to_owned(),
                    });
                    async move { c.get(req).await }
                },
            )
            .await
            .map_err(|e| not_found_as(e, container_id))?;
        resp.container.ok_or_else(|| Error::NotFound {
            container_id: container_id.to_owned(),
        })
    }

    /// Lists container records, optionally with containerd filters
    /// (e.g. `labels."mcp.bot_id"`).
    pub async fn list_containers(&self, filters: &[String]) -> Result<Vec<Container>> {
        let resp = self
            .call(
                "Containers.List",
                Retry::Idempotent,
                Some(self.rpc_timeout()),
                || {
                    let mut c = self.containers();
                    let req = self.request(ListContainersRequest {
                        filters: filters.to_vec(),
                    });
                    async move { c.list(req).await }
                },
            )
            .await?;
        Ok(resp.containers)
    }

    /// The container's task, or `None` when it has none.
    pub async fn task(&self, container_id: &str) -> Result<Option<TaskInfo>> {
        self.process_info(container_id, "").await
    }

    pub(crate) async fn process_info(
        &self,
        container_id: &str,
        exec_id: &str,
    ) -> Result<Option<TaskInfo>> {
        Ok(self
            .process_state(container_id, exec_id)
            .await?
            .map(|p| task_info(container_id, &p)))
    }

    /// containerd's record of a process (`exec_id` empty: the task), with
    /// its stdio paths; `None` when there is none.
    pub(crate) async fn process_state(
        &self,
        container_id: &str,
        exec_id: &str,
    ) -> Result<Option<containerd_client::types::v1::Process>> {
        let resp = self
            .call(
                "Tasks.Get",
                Retry::Idempotent,
                Some(self.rpc_timeout()),
                || {
                    let mut c = self.tasks();
                    let req = self.request(GetRequest {
                        container_id: container_id.to_owned(),
                        exec_id: exec_id.to_owned(),
                    });
                    async move { c.get(req).await }
                },
            )
            .await;
        match resp {
            Ok(resp) => Ok(resp.process),
            Err(e) if e.rpc_code() == Some(tonic::Code::NotFound) => Ok(None),
            Err(e) => Err(e),
        }
    }

    /// All tasks in the namespace.
    pub async fn list_tasks(&self) -> Result<Vec<TaskInfo>> {
        let resp = self
            .call(
                "Tasks.List",
                Retry::Idempotent,
                Some(self.rpc_timeout()),
                || {
                    let mut c = self.tasks();
                    let req = self.request(ListTasksRequest::default());
                    async move { c.list(req).await }
                },
            )
            .await?;
        Ok(resp
            .tasks
            .iter()
            // containerd 1.x leaves `container_id` empty here and puts it in `id`.
            .map(|p| {
                let id = if p.container_id.is_empty() {
                    &p.id
                } else {
                    &p.container_id
                };
                task_info(id, p)
            })
            .collect())
    }

    /// The processes of a container's task (`Tasks.ListPids`): the init process
    /// and every exec'd one, with their exec ids where the shim reports them.
    pub async fn list_pids(&self, container_id: &str) -> Result<Vec<ProcessPid>> {
        let resp = self
            .call(
                "Tasks.ListPids",
                Retry::Idempotent,
                Some(self.rpc_timeout()),
                || {
                    let mut c = self.tasks();
                    let req = self.request(ListPidsRequest {
                        container_id: container_id.to_owned(),
                    });
                    async move { c.list_pids(req).await }
                },
            )
            .await
            .map_err(|e| not_found_as(e, container_id))?;
        Ok(resp
            .processes
            .into_iter()
            .map(|p| ProcessPid {
                pid: p.pid,
                exec_id: p
                    .info
                    .and_then(|any| ProcessDetails::decode(any.value.as_slice()).ok())
                    .map(|d| d.exec_id)
                    .filter(|id| !id.is_empty()),
            })
            .collect())
    }

    /// Creates and starts the container's task with no stdio (`/dev/null`).
    ///
    /// The rootfs is the spec's `root.path`, or, for containers made from an
    /// image, the mounts of the container's snapshot. When `Start` fails the
    /// task is deleted again. Returns the init PID.
    pub async fn start_task(&self, container_id: &str) -> Result<u32> {
        let container = self.get_container(container_id).await?;
        let mut rootfs = Vec::new();
        if !container.snapshot_key.is_empty() {
            let resp = self
                .call(
                    "Snapshots.Mounts",
                    Retry::Idempotent,
                    Some(self.rpc_timeout()),
                    || {
                        let mut c = SnapshotsClient::new(self.inner.channel.clone());
                        let req = self.request(MountsRequest {
                            snapshotter: container.snapshotter.clone(),
                            key: container.snapshot_key.clone(),
                        });
                        async move { c.mounts(req).await }
                    },
                )
                .await?;
            rootfs = resp.mounts;
        }
        self.call(
            "Tasks.Create",
            Retry::Unsent,
            Some(self.start_timeout()),
            || {
                let mut c = self.tasks();
                let req = self.request(CreateTaskRequest {
                    container_id: container_id.to_owned(),
                    rootfs: rootfs.clone(),
                    ..Default::default()
                });
                async move { c.create(req).await }
            },
        )
        .await?;
        let started = self
            .call(
                "Tasks.Start",
                Retry::Unsent,
                Some(self.start_timeout()),
                || {
                    let mut c = self.tasks();
                    let req = self.request(StartRequest {
                        container_id: container_id.to_owned(),
                        exec_id: String::new(),
                    });
                    async move { c.start(req).await }
                },
            )
            .await;
        match started {
            Ok(resp) => Ok(resp.pid),
            Err(e) => {
                if let Err(del) = self.delete_task(container_id).await {
                    tracing::warn!(container_id, error = %del, "deleting task after failed start");
                }
                Err(e)
            }
        }
    }

    /// Sends `signal` to a process (`exec_id` empty: the task's init process;
    /// `all`: every process of the task).
    pub async fn kill(
        &self,
        container_id: &str,
        exec_id: &str,
        signal: i32,
        all: bool,
    ) -> Result<()> {
        let signal = u32::try_from(signal)
            .map_err(|_| Error::Config(format!("invalid signal number {signal}")))?;
        self.call(
            "Tasks.Kill",
            Retry::Idempotent,
            Some(self.rpc_timeout()),
            || {
                let mut c = self.tasks();
                let req = self.request(KillRequest {
                    container_id: container_id.to_owned(),
                    exec_id: exec_id.to_owned(),
                    signal,
                    all,
                });
                async move { c.kill(req).await }
            },
        )
        .await?;
        Ok(())
    }

    /// Waits for a process to exit (`exec_id` empty: the task). A long poll
    /// with no time limit, which may run for a process's whole life, so
    /// containerd restarting under it is expected: a transient failure
    /// starts a streak of retries with back-off, each of which first finds
    /// the process again (`Tasks.Get` by exec id) and then waits anew. The
    /// streak ends — and its budget, [`RetryPolicy::max_elapsed`] counted
    /// from the streak's first failure, starts over — as soon as containerd
    /// answers again. The process found stopped gives its exit status; found
    /// running, it is waited for again (re-adopted).
    ///
    /// An error ([`Error::WaitFailed`]) is never an exit: it says the exit
    /// could not be observed (containerd unreachable for the whole budget,
    /// or no longer knowing the process).
    pub async fn wait(&self, container_id: &str, exec_id: &str) -> Result<ExitStatus> {
        let policy = &self.inner.config.retry;
        let failed = |message: String| Error::WaitFailed {
            container_id: container_id.to_owned(),
            exec_id: exec_id.to_owned(),
            message,
        };
        let mut failing_since: Option<Instant> = None;
        let mut backoff = policy.initial_backoff;
        // Whether the next step is a Wait (else: find the process again).
        let mut waiting = true;
        loop {
            let (op, status) = if waiting {
                let req = self.request(WaitRequest {
                    container_id: container_id.to_owned(),
                    exec_id: exec_id.to_owned(),
                });
                match self.tasks().wait(req).await {
                    Ok(resp) => {
                        return Ok(ExitStatus {
                            code: resp.into_inner().exit_status,
                        });
                    }
                    Err(status) => ("Tasks.Wait", status),
                }
            } else {
                let req = self.request(GetRequest {
                    container_id: container_id.to_owned(),
                    exec_id: exec_id.to_owned(),
                });
                let limit = self.rpc_timeout();
                match tokio::time::timeout(limit, self.tasks().get(req)).await {
                    Ok(Ok(resp)) => match resp.into_inner().process {
                        Some(p) if TaskStatus::from_proto(p.status) == TaskStatus::Stopped => {
                            return Ok(ExitStatus {
                                code: p.exit_status,
                            });
                        }
                        Some(_) => {
                            if let Some(since) = failing_since.take() {
                                tracing::info!(
                                    container_id,
                                    exec_id,
                                    after = ?since.elapsed(),
                                    "containerd answers again; the process still runs: waiting for it anew"
                                );
                            }
                            backoff = policy.initial_backoff;
                            waiting = true;
                            continue;
                        }
                        None => {
                            return Err(failed(
                                "containerd no longer knows the process (Tasks.Get: no process)"
                                    .into(),
                            ));
                        }
                    },
                    Ok(Err(status)) => ("Tasks.Get", status),
                    Err(_) => (
                        "Tasks.Get",
                        tonic::Status::unavailable(format!("timed out after {limit:?}")),
                    ),
                }
            };
            if status.code() == tonic::Code::NotFound {
                return Err(failed(format!(
                    "containerd no longer knows the process ({op}: {})",
                    status.message()
                )));
            }
            if !is_transient(&status, Retry::Idempotent) {
                return Err(failed(Error::rpc(op, &status).to_string()));
            }
            let since = *failing_since.get_or_insert_with(Instant::now);
            if since.elapsed() >= policy.max_elapsed {
                return Err(failed(format!(
                    "containerd unreachable for {:?} (the retry budget is {:?}): {}",
                    since.elapsed(),
                    policy.max_elapsed,
                    Error::rpc(op, &status)
                )));
            }
            tracing::debug!(container_id, exec_id, op, code = ?status.code(),
                message = status.message(), ?backoff, "waiting for a process: transient containerd error; retrying");
            tokio::time::sleep(backoff).await;
            // Probes are cheap: keep them frequent, so that the process is
            // re-adopted soon after containerd is back.
            backoff = (backoff * 2).min(policy.max_backoff.min(WAIT_PROBE_MAX_BACKOFF));
            waiting = false;
        }
    }

    /// Deletes a stopped task. A missing task is not an error.
    pub async fn delete_task(&self, container_id: &str) -> Result<Option<ExitStatus>> {
        let resp = self
            .call(
                "Tasks.Delete",
                Retry::Idempotent,
                Some(self.rpc_timeout()),
                || {
                    let mut c = self.tasks();
                    let req = self.request(DeleteTaskRequest {
                        container_id: container_id.to_owned(),
                    });
                    async move { c.delete(req).await }
                },
            )
            .await;
        match resp {
            Ok(r) => Ok(Some(ExitStatus {
                code: r.exit_status,
            })),
            Err(e) if e.rpc_code() == Some(tonic::Code::NotFound) => Ok(None),
            Err(e) => Err(e),
        }
    }

    /// Deletes an exec'd process record. A missing one is not an error.
    pub async fn delete_process(&self, container_id: &str, exec_id: &str) -> Result<()> {
        let resp = self
            .call(
                "Tasks.DeleteProcess",
                Retry::Idempotent,
                Some(self.rpc_timeout()),
                || {
                    let mut c = self.tasks();
                    let req = self.request(DeleteProcessRequest {
                        container_id: container_id.to_owned(),
                        exec_id: exec_id.to_owned(),
                    });
                    async move { c.delete_process(req).await }
                },
            )
            .await;
        match resp {
            Ok(_) => Ok(()),
            Err(e) if e.rpc_code() == Some(tonic::Code::NotFound) => Ok(()),
            Err(e) => Err(e),
        }
    }

    /// Stops the container's task: SIGTERM, up to `grace` for it to exit,
    /// SIGKILL (to every process) and up to `kill_wait` more, then deletes the task.
    /// Returns the exit status, or `None` when there was no task.
    pub async fn stop_task(
        &self,
        container_id: &str,
        grace: Duration,
    ) -> Result<Option<ExitStatus>> {
        let Some(task) = self.task(container_id).await? else {
            return Ok(None);
        };
        if task.status != TaskStatus::Stopped {
            if task.status == TaskStatus::Created {
                // Never started: nothing to signal gracefully.
                return self.delete_task(container_id).await;
            }
            let waiter = {
                let client = self.clone();
                let id = container_id.to_owned();
                tokio::spawn(async move { client.wait(&id, "").await })
            };
            let mut waiter = AbortOnDrop(waiter);
            ignore_not_found(self.kill(container_id, "", libc::SIGTERM, false).await)?;
            if tokio::time::timeout(grace, &mut waiter.0).await.is_err() {
                tracing::info!(
                    container_id,
                    ?grace,
                    "task ignored SIGTERM; sending SIGKILL"
                );
                ignore_not_found(self.kill(container_id, "", libc::SIGKILL, true).await)?;
                let limit = self.rpc_timeout();
                match tokio::time::timeout(limit, &mut waiter.0).await {
                    Ok(_) => {}
                    Err(_) => {
                        return Err(Error::Timeout {
                            op: "waiting for task exit after SIGKILL",
                            after: limit,
                        });
                    }
                }
            }
        }
        self.delete_task(container_id).await
    }
}

/// Aborts a spawned task when dropped.
pub(crate) struct AbortOnDrop<T>(pub(crate) tokio::task::JoinHandle<T>);

impl<T> Drop for AbortOnDrop<T> {
    fn drop(&mut self) {
        self.0.abort();
    }
}

fn ignore_not_found(r: Result<()>) -> Result<()> {
    match r {
        Err(e) if e.rpc_code() == Some(tonic::Code::NotFound) => Ok(()),
        other => other,
    }
}

fn not_found_as(e: Error, container_id: &str) -> Error {
    if e.rpc_code() == Some(tonic::Code::NotFound) {
        Error::NotFound {
            container_id: container_id.to_owned(),
        }
    } else {
        e
    }
}

fn task_info(container_id: &str, p: &containerd_client::types::v1::Process) -> TaskInfo {
    let status = TaskStatus::from_proto(p.status);
    TaskInfo {
        container_id: container_id.to_owned(),
        pid: p.pid,
        status,
        exit_status: (status == TaskStatus::Stopped).then_some(p.exit_status),
    }
}

fn is_transient(status: &tonic::Status, retry: Retry) -> bool {
    match status.code() {
        tonic::Code::Unavailable => true,
        tonic::Code::Unknown | tonic::Code::Cancelled | tonic::Code::Internal
            if retry == Retry::Idempotent =>
        {
            let m = status.message().to_ascii_lowercase();
            m.contains("transport error")
                || m.contains("connection reset")
                || m.contains("broken pipe")
                || m.contains("h2 protocol error")
                || m.contains("error trying to connect")
        }
        _ => false,
    }
}

/// An error and its sources, `: `-separated, without repeating a source
/// that its parent's text already ends with (tonic's transport errors
/// print their cause themselves).
fn error_chain(e: &dyn std::error::Error) -> String {
    let mut s = e.to_string();
    let mut cur = e.source();
    while let Some(inner) = cur {
        let text = inner.to_string();
        if !s.ends_with(&text) {
            s.push_str(": ");
            s.push_str(&text);
        }
        cur = inner.source();
    }
    s
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn identifiers() {
        for ok in ["a", "mcp-bot1", "a.b_c-d", "A9", &"x".repeat(76)] {
            assert!(is_valid_identifier(ok), "{ok}");
        }
        for bad in [
            "",
            "-a",
            "a-",
            "a--b",
            "a/b",
            "a b",
            "é",
            &"x".repeat(77),
            "a..b",
        ] {
            assert!(!is_valid_identifier(bad), "{bad}");
        }
    }

    #[tokio::test]
    async fn connect_errors_are_values() {
        let missing = ClientConfig::new("/nonexistent/containerd.sock");
        let err = Client::connect(missing).await.map(drop);
        assert!(matches!(err, Err(Error::Connect { .. })), "{err:?}");
        let text = err.err().map(|e| e.to_string()).unwrap_or_default();
        assert_eq!(
            text,
            "cannot connect to containerd at /nonexistent/containerd.sock: \
             no such socket (is containerd running, and listening there?)"
        );
        // A path that exists but is no socket: the cause, said once.
        let tmp = tempfile::tempdir().unwrap_or_else(|e| panic!("{e}"));
        let not_a_socket = tmp.path().join("plain-file");
        std::fs::write(&not_a_socket, b"").unwrap_or_else(|e| panic!("{e}"));
        let text = Client::connect(ClientConfig::new(&not_a_socket))
            .await
            .err()
            .map(|e| e.to_string())
            .unwrap_or_default();
        assert!(
            text.starts_with("cannot connect to containerd at "),
            "{text}"
        );
        let cause = "Connection refused";
        assert_eq!(text.matches(cause).count(), 1, "{text}");
        let bad_ns = ClientConfig::default().with_namespace("no/slash");
        assert!(matches!(
            Client::connect(bad_ns).await,
            Err(Error::Config(_))
        ));
        let relative = ClientConfig::default().with_fifo_root("relative/fifo");
        assert!(matches!(
            Client::connect(relative).await,
            Err(Error::Config(_))
        ));
    }

    #[test]
    fn transient_classification() {
        let unavailable = tonic::Status::unavailable("connection refused");
        assert!(is_transient(&unavailable, Retry::Unsent));
        let broken = tonic::Status::unknown("transport error");
        assert!(is_transient(&broken, Retry::Idempotent));
        assert!(!is_transient(&broken, Retry::Unsent));
        let other = tonic::Status::unknown("exec: \"nope\": executable file not found");
        assert!(!is_transient(&other, Retry::Idempotent));
        assert!(!is_transient(
            &tonic::Status::not_found("x"),
            Retry::Idempotent
        ));
    }
}

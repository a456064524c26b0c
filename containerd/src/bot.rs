//! Bot containers: `{prefix}{bot_id}`, labelled `mcp.bot_id=<bot_id>`.

use std::collections::HashMap;
use std::os::unix::fs::DirBuilderExt;
use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

use containerd_client::services::v1::container::Runtime;
use containerd_client::services::v1::{Container, CreateContainerRequest, DeleteContainerRequest};

use crate::client::{Client, Retry, TaskInfo, TaskStatus, is_valid_identifier};
use crate::error::{Error, Result};
use crate::exec::{ExecOptions, ExecProcess};
use crate::image::ImportedImage;
use crate::spec::{self, SpecOptions};

/// The label naming a container's bot.
pub const BOT_LABEL: &str = "mcp.bot_id";
/// The default container id prefix.
pub const DEFAULT_PREFIX: &str = "mcp-";
/// Longest accepted bot id.
pub const MAX_BOT_ID_LEN: usize = 64;

/// A validated bot id: 1 to 64 characters of `[A-Za-z0-9._-]`, starting and
/// ending with a letter or digit, with no two separators in a row — so that
/// `{prefix}{bot_id}` is a valid container id and safe in paths.
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct BotId(String);

impl BotId {
    /// Validates `s`.
    pub fn parse(s: &str) -> Result<BotId> {
        let invalid = |reason| Error::InvalidBotId {
            bot_id: s.chars().take(80).collect(),
            reason,
        };
        if s.is_empty() {
            return Err(invalid("empty"));
        }
        if s.len() > MAX_BOT_ID_LEN {
            return Err(invalid("longer than 64 characters"));
        }
        if !s
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'.' | b'_' | b'-'))
        {
            return Err(invalid(
                "only ASCII letters, digits, '.', '_' and '-' are allowed",
            ));
        }
        if !is_valid_identifier(s) {
            return Err(invalid(
                "must start and end with a letter or digit, with no two separators in a row",
            ));
        }
        Ok(BotId(s.to_owned()))
    }

    /// The id.
    pub fn as_str(&self) -> &str {
        &self.0
    }
}

impl std::fmt::Display for BotId {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.0)
    }
}

impl std::str::FromStr for BotId {
    type Err = Error;
    fn from_str(s: &str) -> Result<BotId> {
        BotId::parse(s)
    }
}

/// Settings of [`Bots`].
#[non_exhaustive]
#[derive(Debug, Clone)]
pub struct BotConfig {
    /// Container id prefix. Default `mcp-`.
    pub prefix: String,
    /// Accept a container with no `mcp.bot_id` label. Default `false`.
    pub allow_unlabelled: bool,
    /// Start the task of a found container when it is not running. Default `true`.
    pub start_if_stopped: bool,
    /// How long `stop`/`delete` wait after SIGTERM before SIGKILL.
    pub stop_grace: Duration,
}

impl Default for BotConfig {
    fn default() -> Self {
        BotConfig {
            prefix: DEFAULT_PREFIX.to_owned(),
            allow_unlabelled: false,
            start_if_stopped: true,
            stop_grace: Duration::from_secs(10),
        }
    }
}

/// A bot's container, found and checked.
#[non_exhaustive]
#[derive(Debug, Clone)]
pub struct BotContainer {
    /// The bot.
    pub bot_id: BotId,
    /// The container id.
    pub container_id: String,
    /// Whether the container carries the bot label (false only when unlabelled
    /// containers are allowed).
    pub labelled: bool,
    /// The container's labels.
    pub labels: HashMap<String, String>,
}

/// A row of [`Bots::list`].
#[non_exhaustive]
#[derive(Debug, Clone)]
pub struct BotSummary {
    /// The container id.
    pub container_id: String,
    /// The bot named by the label, if any.
    pub bot_id: Option<String>,
    /// The task, if any.
    pub task: Option<TaskInfo>,
}

/// How to make a bot container with [`Bots::create`].
#[non_exhaustive]
#[derive(Debug, Clone)]
pub struct BotSpec {
    /// Absolute host directory used as the root file system (bind-mounted by
    /// runc). Ignored by [`Bots::create_from_image`].
    pub rootfs: PathBuf,
    /// Absolute host directory bind-mounted read-write at `/data`; created (0700) if missing.
    pub data_dir: Option<PathBuf>,
    /// The init process. Default: a busybox `sh` loop that sleeps and exits on SIGTERM.
    pub args: Vec<String>,
    /// `KEY=VALUE` entries added to the minimal environment (`PATH`, `HOME`).
    pub env: Vec<String>,
    /// Working directory of the init process and default of exec'd ones. Default `/`.
    pub cwd: String,
    /// Mount the root file system read-only.
    pub readonly_rootfs: bool,
    /// Give the container its own network namespace (loopback only). Default
    /// `false`: the host network, as nothing here sets up container networking.
    pub network_namespace: bool,
    /// Extra labels (the bot label is always set).
    pub labels: HashMap<String, String>,
}

impl Default for BotSpec {
    /// Defaults with no rootfs (for [`Bots::create_from_image`]).
    fn default() -> Self {
        BotSpec::new(PathBuf::new())
    }
}

impl BotSpec {
    /// A spec with defaults for `rootfs`.
    pub fn new(rootfs: impl Into<PathBuf>) -> Self {
        BotSpec {
            rootfs: rootfs.into(),
            data_dir: None,
            args: spec::default_init_args(),
            env: Vec::new(),
            cwd: "/".into(),
            readonly_rootfs: false,
            network_namespace: false,
            labels: HashMap::new(),
        }
    }

    /// Sets the data directory mounted at `/data`.
    pub fn with_data_dir(mut self, dir: impl Into<PathBuf>) -> Self {
        self.data_dir = Some(dir.into());
        self
    }

    /// Sets the init process.
    pub fn with_args<I, S>(mut self, args: I) -> Self
    where
        I: IntoIterator<Item = S>,
        S: Into<String>,
    {
        self.args = args.into_iter().map(Into::into).collect();
        self
    }
}

/// Bot containers in one namespace: find and check them, exec in them, and
/// manage their lifecycle (`create`, `start`, `stop`, `delete`, `list`).
#[derive(Debug, Clone)]
pub struct Bots {
    client: Client,
    config: BotConfig,
    /// Serialises task starts of this `Bots` (and its clones), so that
    /// concurrent first calls do not tear down each other's half-started task.
    start_lock: Arc<tokio::sync::Mutex<()>>,
}

impl Bots {
    /// Bot containers reached through `client`.
    pub fn new(client: Client, config: BotConfig) -> Self {
        Bots {
            client,
            config,
            start_lock: Arc::new(tokio::sync::Mutex::new(())),
        }
    }

    /// The client.
    pub fn client(&self) -> &Client {
        &self.client
    }

    /// The settings.
    pub fn config(&self) -> &BotConfig {
        &self.config
    }

    /// The container id of a bot: `{prefix}{bot_id}`.
    pub fn container_id(&self, bot: &BotId) -> String {
        format!("{}{}", self.config.prefix, bot.as_str())
    }

    /// Finds the bot's container and checks its label: missing →
    /// [`Error::NotFound`], another bot's → [`Error::BotMismatch`], no label →
    /// [`Error::Unlabelled`] unless `allow_unlabelled`.
    pub async fn find(&self, bot_id: &str) -> Result<BotContainer> {
        let bot = BotId::parse(bot_id)?;
        let container_id = self.container_id(&bot);
        let container = self.client.get_container(&container_id).await?;
        self.check(bot, container)
    }

    fn check(&self, bot: BotId, container: Container) -> Result<BotContainer> {
        let labelled = match container.labels.get(BOT_LABEL) {
            Some(found) if found == bot.as_str() => true,
            Some(found) => {
                return Err(Error::BotMismatch {
                    container_id: container.id,
                    expected: bot.0,
                    found: found.clone(),
                });
            }
            None if self.config.allow_unlabelled => false,
            None => {
                return Err(Error::Unlabelled {
                    container_id: container.id,
                });
            }
        };
        Ok(BotContainer {
            bot_id: bot,
            container_id: container.id,
            labelled,
            labels: container.labels,
        })
    }

    /// Makes sure the container's task runs: starts it when it has none or
    /// it stopped (a stopped task is deleted first) if `start_if_stopped`,
    /// else [`Error::TaskNotRunning`]. A paused task is not resumed.
    ///
    /// Starts are serialised within this `Bots` and its clones; a task seen
    /// in the `created` state is given a moment to finish starting before it
    /// is taken for a leftover and replaced.
    pub async fn ensure_running(&self, container: &BotContainer) -> Result<TaskInfo> {
        self.ensure_running_with(container, self.config.start_if_stopped)
            .await
    }

    async fn ensure_running_with(&self, container: &BotContainer, start: bool) -> Result<TaskInfo> {
        let id = &container.container_id;
        if let Some(t) = self.client.task(id).await?
            && t.status == TaskStatus::Running
        {
            return Ok(t);
        }
        let _guard = self.start_lock.lock().await;
        for _ in 0..3 {
            let mut task = self.client.task(id).await?;
            if task.as_ref().map(|t| t.status) == Some(TaskStatus::Created) {
                // Possibly being started by someone else (another process).
                let deadline = tokio::time::Instant::now() + Duration::from_secs(2);
                while task.as_ref().map(|t| t.status) == Some(TaskStatus::Created)
                    && tokio::time::Instant::now() < deadline
                {
                    tokio::time::sleep(Duration::from_millis(50)).await;
                    task = self.client.task(id).await?;
                }
            }
            let state = match &task {
                Some(t) if t.status == TaskStatus::Running => return Ok(t.clone()),
                Some(t) => t.status.to_string(),
                None => "no task".to_owned(),
            };
            let startable = matches!(
                task.as_ref().map(|t| t.status),
                None | Some(TaskStatus::Stopped) | Some(TaskStatus::Created)
            );
            if !start || !startable {
                return Err(Error::TaskNotRunning {
                    container_id: id.clone(),
                    state,
                });
            }
            if task.is_some() {
                self.client.stop_task(id, self.config.stop_grace).await?;
            }
            match self.client.start_task(id).await {
                Ok(_) => {}
                // Someone else started it concurrently: look again.
                Err(e) if e.rpc_code() == Some(tonic::Code::AlreadyExists) => continue,
                Err(e) => return Err(e),
            }
        }
        self.running_task(id).await
    }

    /// Finds the bot's container, makes sure its task runs, and execs `opts` in it.
    pub async fn exec(&self, bot_id: &str, opts: &ExecOptions) -> Result<ExecProcess> {
        let container = self.find(bot_id).await?;
        self.ensure_running(&container).await?;
        self.client.exec(&container.container_id, opts).await
    }

    /// Creates the bot's container record from a rootfs directory (no task:
    /// see [`start`](Self::start)).
    pub async fn create(&self, bot_id: &str, bot_spec: &BotSpec) -> Result<BotContainer> {
        let bot = BotId::parse(bot_id)?;
        if !bot_spec.rootfs.is_absolute() || !bot_spec.rootfs.is_dir() {
            return Err(Error::Config(format!(
                "rootfs {} must be an existing absolute directory",
                bot_spec.rootfs.display()
            )));
        }
        let root = bot_spec.rootfs.to_str().ok_or_else(|| {
            Error::Config(format!("rootfs {} is not UTF-8", bot_spec.rootfs.display()))
        })?;
        self.create_record(bot, bot_spec, root, &[], None).await
    }

    /// Creates the bot's container record on a fresh snapshot of an imported
    /// image (see [`Client::import_image`]). The init process is
    /// `bot_spec.args`; the environment is the image's `Env` with
    /// `bot_spec.env` on top; `bot_spec.rootfs` is ignored. The snapshot is
    /// removed with the container by [`delete`](Self::delete).
    pub async fn create_from_image(
        &self,
        bot_id: &str,
        image: &ImportedImage,
        bot_spec: &BotSpec,
    ) -> Result<BotContainer> {
        let bot = BotId::parse(bot_id)?;
        let container_id = self.container_id(&bot);
        self.client
            .prepare_snapshot(
                Some(&image.lease),
                &image.snapshotter,
                &container_id,
                &image.chain_id,
            )
            .await
            .map_err(|e| {
                if e.rpc_code() == Some(tonic::Code::AlreadyExists) {
                    Error::AlreadyExists {
                        container_id: container_id.clone(),
                    }
                } else {
                    e
                }
            })?;
        let r = self
            .create_record(bot, bot_spec, "rootfs", &image.env, Some(image))
            .await;
        if r.is_err()
            && let Err(e) = self
                .client
                .remove_snapshot(&image.snapshotter, &container_id)
                .await
        {
            tracing::warn!(container_id, error = %e, "removing snapshot after failed create");
        }
        r
    }

    async fn create_record(
        &self,
        bot: BotId,
        bot_spec: &BotSpec,
        root_path: &str,
        base_env: &[String],
        image: Option<&ImportedImage>,
    ) -> Result<BotContainer> {
        let container_id = self.container_id(&bot);
        if let Some(data) = &bot_spec.data_dir {
            if !data.is_absolute() {
                return Err(Error::Config(format!(
                    "data_dir {} must be absolute",
                    data.display()
                )));
            }
            std::fs::DirBuilder::new()
                .recursive(true)
                .mode(0o700)
                .create(data)
                .map_err(|e| Error::io(format!("creating data dir {}", data.display()), e))?;
        }
        let spec_json = spec::runtime_spec(&SpecOptions {
            container_id: &container_id,
            namespace: self.client.namespace(),
            bot_spec,
            root_path,
            base_env,
        })
        .map_err(|message| Error::Spec {
            container_id: container_id.clone(),
            message,
        })?;
        let mut labels = bot_spec.labels.clone();
        labels.insert(BOT_LABEL.to_owned(), bot.as_str().to_owned());
        let container = Container {
            id: container_id.clone(),
            labels: labels.clone(),
            runtime: Some(Runtime {
                name: "io.containerd.runc.v2".into(),
                options: None,
            }),
            spec: Some(prost_types::Any {
                type_url: spec::SPEC_TYPE.into(),
                value: spec_json,
            }),
            image: image.map(|i| i.name.clone()).unwrap_or_default(),
            snapshotter: image.map(|i| i.snapshotter.clone()).unwrap_or_default(),
            snapshot_key: if image.is_some() {
                container_id.clone()
            } else {
                String::new()
            },
            ..Default::default()
        };
        let client = &self.client;
        client
            .call(
                "Containers.Create",
                Retry::Unsent,
                Some(client.rpc_timeout()),
                || {
                    let mut c = client.containers();
                    let req = client.request(CreateContainerRequest {
                        container: Some(container.clone()),
                    });
                    async move { c.create(req).await }
                },
            )
            .await
            .map_err(|e| {
                if e.rpc_code() == Some(tonic::Code::AlreadyExists) {
                    Error::AlreadyExists {
                        container_id: container_id.clone(),
                    }
                } else {
                    e
                }
            })?;
        Ok(BotContainer {
            bot_id: bot,
            container_id,
            labelled: true,
            labels,
        })
    }

    /// [`create`](Self::create) then [`start`](Self::start); when the task
    /// cannot be made, the container record is deleted again.
    pub async fn create_and_start(&self, bot_id: &str, bot_spec: &BotSpec) -> Result<TaskInfo> {
        let container = self.create(bot_id, bot_spec).await?;
        self.start_or_roll_back(&container).await
    }

    /// [`create_from_image`](Self::create_from_image) then
    /// [`start`](Self::start); when the task cannot be made, the container
    /// record and its snapshot are deleted again.
    pub async fn create_and_start_from_image(
        &self,
        bot_id: &str,
        image: &ImportedImage,
        bot_spec: &BotSpec,
    ) -> Result<TaskInfo> {
        let container = self.create_from_image(bot_id, image, bot_spec).await?;
        self.start_or_roll_back(&container).await
    }

    async fn start_or_roll_back(&self, container: &BotContainer) -> Result<TaskInfo> {
        match self.client.start_task(&container.container_id).await {
            Ok(_) => self.running_task(&container.container_id).await,
            Err(e) => {
                if let Err(del) = self.delete_record(&container.container_id).await {
                    tracing::warn!(container_id = container.container_id, error = %del,
                        "deleting container record after failed task start");
                }
                Err(e)
            }
        }
    }

    /// Starts the bot's task (see [`ensure_running`](Self::ensure_running),
    /// which this calls whatever `start_if_stopped` says).
    pub async fn start(&self, bot_id: &str) -> Result<TaskInfo> {
        let container = self.find(bot_id).await?;
        self.ensure_running_with(&container, true).await
    }

    /// Stops and deletes the bot's task (SIGTERM, `stop_grace`, SIGKILL).
    /// Returns its exit status, or `None` when it had no task.
    pub async fn stop(&self, bot_id: &str) -> Result<Option<crate::ExitStatus>> {
        let container = self.find(bot_id).await?;
        self.client
            .stop_task(&container.container_id, self.config.stop_grace)
            .await
    }

    /// Deletes the bot's task (stopping it first) and then its container record.
    pub async fn delete(&self, bot_id: &str) -> Result<()> {
        let container = self.find(bot_id).await?;
        self.client
            .stop_task(&container.container_id, self.config.stop_grace)
            .await?;
        self.delete_record(&container.container_id).await
    }

    async fn delete_record(&self, container_id: &str) -> Result<()> {
        let client = &self.client;
        let snapshot = match client.get_container(container_id).await {
            Ok(c) if !c.snapshot_key.is_empty() => Some((c.snapshotter, c.snapshot_key)),
            Ok(_) => None,
            Err(Error::NotFound { .. }) => return Ok(()),
            Err(e) => return Err(e),
        };
        let r = client
            .call(
                "Containers.Delete",
                Retry::Idempotent,
                Some(client.rpc_timeout()),
                || {
                    let mut c = client.containers();
                    let req = client.request(DeleteContainerRequest {
                        id: container_id.to_owned(),
                    });
                    async move { c.delete(req).await }
                },
            )
            .await;
        match r {
            Ok(_) => {}
            Err(e) if e.rpc_code() == Some(tonic::Code::NotFound) => {}
            Err(e) => return Err(e),
        }
        if let Some((snapshotter, key)) = snapshot {
            client.remove_snapshot(&snapshotter, &key).await?;
        }
        Ok(())
    }

    async fn running_task(&self, container_id: &str) -> Result<TaskInfo> {
        match self.client.task(container_id).await? {
            Some(t) if t.status == TaskStatus::Running => Ok(t),
            t => Err(Error::TaskNotRunning {
                container_id: container_id.to_owned(),
                state: t.map_or("no task".into(), |t| t.status.to_string()),
            }),
        }
    }

    /// Bot containers in the namespace: those whose id has the prefix or that
    /// carry the bot label, with their tasks, sorted by container id.
    pub async fn list(&self) -> Result<Vec<BotSummary>> {
        let containers = self.client.list_containers(&[]).await?;
        let tasks = self.client.list_tasks().await?;
        let mut out: Vec<BotSummary> = containers
            .into_iter()
            .filter(|c| c.id.starts_with(&self.config.prefix) || c.labels.contains_key(BOT_LABEL))
            .map(|c| BotSummary {
                task: tasks.iter().find(|t| t.container_id == c.id).cloned(),
                bot_id: c.labels.get(BOT_LABEL).cloned(),
                container_id: c.id,
            })
            .collect();
        out.sort_by(|a, b| a.container_id.cmp(&b.container_id));
        Ok(out)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn bot_ids() {
        for ok in ["1", "bot-7", "a.b_c", &"x".repeat(64)] {
            assert!(BotId::parse(ok).is_ok(), "{ok}");
        }
        for bad in [
            "",
            "../x",
            "a/b",
            "-a",
            "a-",
            "a b",
            "a..b",
            &"x".repeat(65),
            "a\0b",
        ] {
            assert!(
                matches!(BotId::parse(bad), Err(Error::InvalidBotId { .. })),
                "{bad:?}"
            );
        }
    }
}

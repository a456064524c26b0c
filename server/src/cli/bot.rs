//! `mcpod bot create|start|stop|delete|ls`: bot containers for users.
//!
//! ```text
//! mcpod bot create alice --rootfs /srv/rootfs --data-dir /srv/data/alice   # create and start
//! mcpod bot ls
//! mcpod bot stop alice
//! mcpod bot start alice
//! mcpod bot delete alice
//! ```
//!
//! Socket, namespace and container prefix come from the flags, else from
//! the config file's `[containerd]` section (`--config` / `MCPOD_CONFIG`),
//! else the defaults. A containerd that is not the system one (its socket
//! is not `/run/containerd/containerd.sock`) must be named on every command:
//! `--socket`, or the config file `mcpod serve` uses.

use std::path::PathBuf;
use std::process::ExitCode;
use std::time::Duration;

use clap::{Args, Subcommand};
use mcpod_containerd::{BotSpec, Bots, Client};

use crate::config::{ContainerdSettings, RawConfig, RawContainerd};

/// `mcpod bot …`.
#[derive(Debug, Args)]
pub(crate) struct BotArgs {
    /// Where containerd is and how bots are named.
    #[command(flatten)]
    pub(crate) connection: ConnectionArgs,
    /// What to do.
    #[command(subcommand)]
    pub(crate) action: BotAction,
}

/// How to reach containerd.
#[derive(Debug, Args)]
pub(crate) struct ConnectionArgs {
    /// Config file whose `[containerd]` section gives the defaults.
    #[arg(long, short, env = "MCPOD_CONFIG", global = true)]
    pub(crate) config: Option<PathBuf>,
    /// containerd socket [default: the config file's, else
    /// /run/containerd/containerd.sock]. Name it on every command when
    /// containerd is not the system one.
    #[arg(long, global = true)]
    pub(crate) socket: Option<PathBuf>,
    /// containerd namespace.
    #[arg(long, short = 'n', global = true)]
    pub(crate) namespace: Option<String>,
    /// Container id prefix (containers are `{prefix}{bot_id}`).
    #[arg(long, global = true)]
    pub(crate) container_prefix: Option<String>,
}

/// Bot container subcommands.
#[derive(Debug, Subcommand)]
pub(crate) enum BotAction {
    /// Create a bot container from a root file system directory (labelled
    /// `mcp.bot_id=<bot>`) and start its task.
    Create {
        /// The bot id.
        bot: String,
        /// Existing directory used as the container's root file system (its
        /// MCP server at `/app/mcp`). A relative path is taken from the
        /// current directory; the container records the absolute path.
        #[arg(long)]
        rootfs: PathBuf,
        /// Host directory mounted read-write at `/data` (created if missing;
        /// a relative path is taken from the current directory).
        #[arg(long)]
        data_dir: Option<PathBuf>,
        /// Mount the root file system read-only.
        #[arg(long)]
        readonly: bool,
        /// Create the container record only; do not start its task.
        #[arg(long)]
        no_start: bool,
    },
    /// Start a bot's task.
    Start {
        /// The bot id.
        bot: String,
    },
    /// Stop a bot's task (SIGTERM, then SIGKILL after the grace period).
    Stop {
        /// The bot id.
        bot: String,
        /// Grace period before SIGKILL, in seconds.
        #[arg(long, default_value_t = 10)]
        grace: u64,
    },
    /// Stop a bot's task and delete its container.
    Delete {
        /// The bot id.
        bot: String,
    },
    /// List bot containers and their tasks.
    Ls,
}

/// Runs a `mcpod bot` subcommand to completion.
pub(crate) fn run(args: BotArgs) -> ExitCode {
    let settings = match settings(&args.connection) {
        Ok(s) => s,
        Err(e) => {
            eprintln!("mcpod bot: {e}");
            return ExitCode::from(2);
        }
    };
    let runtime = match tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
    {
        Ok(r) => r,
        Err(e) => {
            eprintln!("mcpod bot: cannot start the runtime: {e}");
            return ExitCode::FAILURE;
        }
    };
    match runtime.block_on(execute(&settings, args.action)) {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("mcpod bot: {e}");
            ExitCode::FAILURE
        }
    }
}

fn settings(c: &ConnectionArgs) -> Result<ContainerdSettings, String> {
    let mut raw = match &c.config {
        Some(path) => RawConfig::from_file(path)
            .map_err(|e| e.to_string())?
            .containerd
            .unwrap_or_default(),
        None => RawContainerd::default(),
    };
    if let Some(s) = &c.socket {
        raw.socket = Some(s.clone());
    }
    if let Some(n) = &c.namespace {
        raw.namespace = Some(n.clone());
    }
    if let Some(p) = &c.container_prefix {
        raw.container_prefix = Some(p.clone());
    }
    ContainerdSettings::from_raw(&raw).map_err(|e| e.to_string())
}

async fn execute(settings: &ContainerdSettings, action: BotAction) -> Result<(), String> {
    let client = Client::connect(settings.client_config())
        .await
        .map_err(|e| match e {
            mcpod_containerd::Error::Connect { .. } => format!(
                "{e}\n  hint: name containerd's socket with --socket PATH on every `mcpod bot` \
                 command, or with `[containerd] socket` in the file given to --config \
                 (the one `mcpod serve` uses)"
            ),
            e => e.to_string(),
        })?;
    let mut bot_config = settings.bot_config();
    bot_config.stop_grace = Duration::from_secs(10);
    let bots = Bots::new(client, bot_config);
    let err = |e: mcpod_containerd::Error| e.to_string();
    match action {
        BotAction::Create {
            bot,
            rootfs,
            data_dir,
            readonly,
            no_start,
        } => {
            let rootfs = std::fs::canonicalize(&rootfs).map_err(|e| {
                format!(
                    "rootfs {}: {e} (it must be an existing directory)",
                    rootfs.display()
                )
            })?;
            let mut spec = BotSpec::new(&rootfs);
            if let Some(d) = data_dir {
                spec = spec.with_data_dir(absolute(&d)?);
            }
            spec.readonly_rootfs = readonly;
            if no_start {
                let c = bots.create(&bot, &spec).await.map_err(err)?;
                println!(
                    "created {} (bot {bot}, rootfs {}); not started",
                    c.container_id,
                    rootfs.display()
                );
            } else {
                let task = bots.create_and_start(&bot, &spec).await.map_err(err)?;
                println!(
                    "created and started {} (bot {bot}, rootfs {}, pid {})",
                    task.container_id,
                    rootfs.display(),
                    task.pid
                );
            }
        }
        BotAction::Start { bot } => {
            let task = bots.start(&bot).await.map_err(err)?;
            println!("{} running (pid {})", task.container_id, task.pid);
        }
        BotAction::Stop { bot, grace } => {
            let mut config = bots.config().clone();
            config.stop_grace = Duration::from_secs(grace);
            let bots = Bots::new(bots.client().clone(), config);
            match bots.stop(&bot).await.map_err(err)? {
                Some(status) => println!("stopped bot {bot} (exit status {})", status.code),
                None => println!("bot {bot} had no task"),
            }
        }
        BotAction::Delete { bot } => {
            bots.delete(&bot).await.map_err(err)?;
            println!("deleted bot {bot}");
        }
        BotAction::Ls => {
            let list = bots.list().await.map_err(err)?;
            println!("{:<40} {:<24} {:<18} PID", "CONTAINER", "BOT", "STATE");
            for b in list {
                let (status, pid) = state(b.task.as_ref());
                println!(
                    "{:<40} {:<24} {:<18} {}",
                    b.container_id,
                    b.bot_id.as_deref().unwrap_or("(unlabelled)"),
                    status,
                    pid
                );
            }
        }
    }
    Ok(())
}

fn absolute(p: &std::path::Path) -> Result<PathBuf, String> {
    std::path::absolute(p).map_err(|e| format!("{}: {e}", p.display()))
}

/// The STATE and PID columns of `bot ls`: a container without a task (never
/// started, or stopped: `bot stop` deletes the task) is `stopped`; a task
/// that exited but was not deleted shows its exit status.
fn state(task: Option<&mcpod_containerd::TaskInfo>) -> (String, String) {
    use mcpod_containerd::TaskStatus;
    match task {
        None => ("stopped".to_owned(), "-".to_owned()),
        Some(t) => match (t.status, t.exit_status) {
            (TaskStatus::Stopped, Some(code)) => (format!("stopped (exit {code})"), "-".to_owned()),
            (TaskStatus::Stopped, None) => ("stopped".to_owned(), "-".to_owned()),
            (status, _) if t.pid == 0 => (status.to_string(), "-".to_owned()),
            (status, _) => (status.to_string(), t.pid.to_string()),
        },
    }
}

//! containerd backend for mcpod: exec stdio MCP servers inside containers over FIFOs.
//!
//! **What.** A thin, careful client of containerd's gRPC API (through
//! `containerd-client`) that finds a bot's container (`mcp-<bot_id>`, labelled
//! `mcp.bot_id=<bot_id>`), makes sure its task runs, execs a process in it
//! with FIFO stdio and hands back plain byte streams ([`ExecProcess::stdin`],
//! [`ExecProcess::stdout`]), its exit status and a shutdown that leaves
//! nothing behind. It also creates, starts, stops, deletes and lists bot
//! containers made from a root file system directory or from an OCI image
//! tarball imported with [`Client::import_image`] (no registry needed). It
//! knows nothing of MCP: the transport crates speak the protocol over these
//! streams.
//!
//! **Why.** The system mcpod replaces leaked exec'd processes, exec records
//! and FIFOs on error paths, accepted unlabelled containers for any bot,
//! stopped draining stderr after a long line, and took a failed `Wait` for an
//! exit. Here every RPC has its own time limit (except `Wait`, a long poll),
//! transient failures — containerd restarting — are retried with back-off
//! for a budget counted from the failure, a `Wait` broken by a restart finds
//! its process again and goes on waiting, a `Wait` error is an error and
//! never an exit, and cleanup (CloseIO, grace, SIGTERM, SIGKILL,
//! DeleteProcess, FIFO directory removal) runs on every path, including a
//! dropped [`ExecProcess`]. Each process is owned through a lock in its FIFO
//! directory, so [`Client::reap_orphans`] ends only processes that no live
//! mcpod owns — whatever PID namespace each mcpod runs in.
//!
//! ```no_run
//! use std::time::Duration;
//! use mcpod_containerd::{BotConfig, Bots, Client, ClientConfig, ExecOptions};
//! use tokio::io::{AsyncBufReadExt, AsyncWriteExt, BufReader};
//!
//! # async fn run() -> Result<(), Box<dyn std::error::Error>> {
//! let client = Client::connect(ClientConfig::default()).await?;
//! let bots = Bots::new(client, BotConfig::default());
//! // Finds `mcp-42`, checks its label, starts its task if needed, execs /app/mcp.
//! let mut process = bots.exec("42", &ExecOptions::default()).await?;
//! let mut stdin = process.stdin.take().ok_or("no stdin")?;
//! let mut stdout = BufReader::new(process.stdout.take().ok_or("no stdout")?);
//! stdin.write_all(b"{\"jsonrpc\":\"2.0\",\"id\":1,\"method\":\"ping\"}\n").await?;
//! let mut line = String::new();
//! stdout.read_line(&mut line).await?;
//! drop(stdin);
//! let report = process.shutdown(Duration::from_secs(2)).await?;
//! println!("{line} (exit {})", report.status.code);
//! # Ok(())
//! # }
//! ```
//!
//! Every call is made in the [`ClientConfig::namespace`]; FIFOs live in a fresh
//! 0700 directory per process under [`ClientConfig::fifo_root`].
//!
//! The lifecycle API behind `mcpod bot create|start|stop|delete|ls` is
//! [`Bots::create`] (or [`Bots::create_from_image`]), [`Bots::start`],
//! [`Bots::stop`], [`Bots::delete`] and [`Bots::list`].

mod bot;
mod client;
mod error;
mod exec;
mod image;
mod owner;
mod reap;
mod spec;
#[cfg(feature = "test-support")]
pub mod testing;

pub use bot::{
    BOT_LABEL, BotConfig, BotContainer, BotId, BotSpec, BotSummary, Bots, DEFAULT_PREFIX,
    MAX_BOT_ID_LEN,
};
pub use client::{
    Client, ClientConfig, DEFAULT_FIFO_ROOT, DEFAULT_NAMESPACE, DEFAULT_SOCKET, ExitStatus,
    ProcessPid, RetryPolicy, TaskInfo, TaskStatus, is_valid_identifier,
};
pub use error::{Error, Result};
pub use exec::{
    DEFAULT_COMMAND, DEFAULT_STDERR_LINE_LIMIT, Escalation, ExecOptions, ExecProcess,
    ShutdownReport,
};
pub use image::{DEFAULT_SNAPSHOTTER, ImportedImage};
pub use owner::{exec_id_instance, instance_id, new_exec_id};
pub use reap::Reaped;

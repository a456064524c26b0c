//! The `mcpod` command line.

use std::path::PathBuf;

use clap::{Parser, Subcommand};

/// mcpod: serves stdio MCP servers to MCP clients over Streamable HTTP.
#[derive(Debug, Parser)]
#[command(name = "mcpod", version, about, propagate_version = true)]
pub struct Cli {
    /// What to do.
    #[command(subcommand)]
    pub command: Command,
}

/// Subcommands.
#[derive(Debug, Subcommand)]
pub enum Command {
    /// Run the gateway. Without a config file: the embedded default (one
    /// target `demo` running the built-in demo MCP server, loopback only).
    Serve {
        /// TOML config file.
        #[arg(long, short, env = "MCPOD_CONFIG")]
        config: Option<PathBuf>,
        /// Listen address (overrides the config file and MCPOD_LISTEN).
        #[arg(long)]
        listen: Option<String>,
    },
    /// Validate a config file (with MCPOD_* overrides) without starting.
    CheckConfig {
        /// TOML config file.
        file: PathBuf,
    },
    /// Manage bot containers in containerd (create from a rootfs directory,
    /// start, stop, delete, list).
    Bot(crate::containerd::cli::BotArgs),
    /// Run the built-in demo MCP server on stdin/stdout.
    #[command(hide = true)]
    DemoServer {
        /// Arguments for the demo server (`--legacy-only`, `--modern-only`).
        #[arg(trailing_var_arg = true, allow_hyphen_values = true)]
        args: Vec<String>,
    },
}

//! The `mcpod` command line: `serve`, `config example`, `check-config`,
//! `bot …`, and the hidden `demo-server` (the embedded default backend).

mod bot;
mod command_target;
mod logging;
mod signal;

use std::path::PathBuf;
use std::process::ExitCode;

use clap::{Parser, Subcommand};

use crate::config::{Config, ConfigError, Overrides, RawConfig};

/// mcpod: serves stdio MCP servers to MCP clients over Streamable HTTP.
#[derive(Debug, Parser)]
#[command(name = "mcpod", version, about, propagate_version = true)]
struct Cli {
    /// What to do.
    #[command(subcommand)]
    command: Command,
}

/// Subcommands.
#[derive(Debug, Subcommand)]
enum Command {
    /// Run the gateway. `mcpod serve -- CMD [ARGS…]` serves the stdio MCP
    /// server CMD at `/mcp/{name}` (beside the config file's targets, with
    /// `--config`). Without either: the embedded default (one target
    /// `demo` running the built-in demo MCP server, loopback only).
    Serve {
        /// TOML config file.
        #[arg(long, short, env = "MCPOD_CONFIG")]
        config: Option<PathBuf>,
        /// Listen address (overrides the config file and MCPOD_LISTEN).
        #[arg(long)]
        listen: Option<String>,
        /// A target from the command line.
        #[command(flatten)]
        target: command_target::CommandTarget,
    },
    /// Print an example config file: every key, with its default.
    #[command(subcommand)]
    Config(ConfigCommand),
    /// Validate a config file (with MCPOD_* overrides) without starting.
    CheckConfig {
        /// TOML config file.
        file: PathBuf,
    },
    /// Manage bot containers in containerd (create from a rootfs directory,
    /// start, stop, delete, list).
    Bot(bot::BotArgs),
    /// Run the built-in demo MCP server on stdin/stdout.
    #[command(hide = true)]
    DemoServer {
        /// Arguments for the demo server (`--legacy-only`, `--modern-only`).
        #[arg(trailing_var_arg = true, allow_hyphen_values = true)]
        args: Vec<String>,
    },
}

/// `mcpod config …`.
#[derive(Debug, Subcommand)]
enum ConfigCommand {
    /// Print a commented config with every key and its default.
    Example,
}

fn load(file: Option<&std::path::Path>, overrides: &Overrides) -> Result<Config, ConfigError> {
    load_with(file, overrides, command_target::CommandTarget::default())
}

/// The config from `file` (or the embedded default), its `MCPOD_*`
/// overrides, the command line's, and the command-line target.
fn load_with(
    file: Option<&std::path::Path>,
    overrides: &Overrides,
    target: command_target::CommandTarget,
) -> Result<Config, ConfigError> {
    let mut raw = match file {
        Some(path) => RawConfig::from_file(path)?,
        None => {
            let exe = std::env::current_exe().map_err(|e| ConfigError::Invalid {
                key: "targets.demo.command".into(),
                message: format!("cannot find the mcpod executable for the embedded demo: {e}"),
            })?;
            RawConfig::embedded_default(&exe)
        }
    };
    raw.apply_env(|k| std::env::var(k).ok())?;
    raw.apply_overrides(overrides);
    target.apply(&mut raw, file.is_none())?;
    raw.validate()
}

/// Runs the `mcpod` command line (the binary's `main`).
pub fn main() -> ExitCode {
    let cli = Cli::parse();
    match cli.command {
        Command::DemoServer { args } => demo_server(&args),
        Command::Bot(args) => bot::run(args),
        Command::Config(ConfigCommand::Example) => {
            print!("{}", crate::config::EXAMPLE);
            ExitCode::SUCCESS
        }
        Command::CheckConfig { file } => match load(Some(&file), &Overrides::default()) {
            Ok(config) => {
                println!(
                    "{}: ok ({} target{}: {}; listen {})",
                    file.display(),
                    config.targets.len(),
                    if config.targets.len() == 1 { "" } else { "s" },
                    config
                        .targets
                        .keys()
                        .cloned()
                        .collect::<Vec<_>>()
                        .join(", "),
                    config.listen
                );
                ExitCode::SUCCESS
            }
            Err(e) => {
                eprintln!("mcpod: invalid config: {e}");
                ExitCode::from(2)
            }
        },
        Command::Serve {
            config,
            listen,
            target,
        } => {
            let config_file = config.clone();
            let overrides = Overrides { listen };
            let config = match load_with(config.as_deref(), &overrides, target.clone()) {
                Ok(c) => c,
                Err(e) => {
                    eprintln!("mcpod: invalid config: {e}");
                    return ExitCode::from(2);
                }
            };
            let runtime = match tokio::runtime::Builder::new_multi_thread()
                .worker_threads(config.workers)
                .enable_all()
                .build()
            {
                Ok(r) => r,
                Err(e) => {
                    eprintln!("mcpod: cannot start the runtime: {e}");
                    return ExitCode::FAILURE;
                }
            };
            let telemetry = {
                let _in_runtime = runtime.enter();
                logging::init(&config.log, &config.telemetry)
            };
            let file = config_file;
            let load: crate::gateway::LoadConfig = std::sync::Arc::new(move || {
                let config = load_with(file.as_deref(), &overrides, target.clone())?;
                Ok(config)
            });
            let result = runtime.block_on(async move {
                let listener = bind_listener(config.listen).map_err(|e| {
                    std::io::Error::new(
                        e.kind(),
                        format!("cannot listen on {}: {e}", config.listen),
                    )
                })?;
                eprint!("{}", banner(&config, listener.local_addr()?));
                let reloader = crate::gateway::Reloader {
                    requests: signal::hangups(),
                    load,
                };
                crate::gateway::serve_reloading(config, listener, signal::signal(), Some(reloader))
                    .await
            });
            // Off the runtime's workers, which still run the exporter.
            if let Some(telemetry) = telemetry {
                telemetry.shutdown();
            }
            match result {
                Ok(()) => ExitCode::SUCCESS,
                Err(e) => {
                    eprintln!("mcpod: {e}");
                    ExitCode::FAILURE
                }
            }
        }
    }
}

/// What the gateway serves where, and whether auth is on: printed at start.
fn banner(config: &Config, addr: std::net::SocketAddr) -> String {
    use std::fmt::Write;
    let auth = if config.auth.disabled {
        "auth off (loopback only)"
    } else {
        "auth on: send Authorization: Bearer <token>"
    };
    let mut out = format!(
        "mcpod {} on http://{addr}, {auth}\n",
        env!("CARGO_PKG_VERSION")
    );
    for (name, target) in &config.targets {
        let own = if target.tokens.is_some() {
            " (its own tokens)"
        } else {
            ""
        };
        let issuer = target
            .oauth
            .as_ref()
            .or(config.auth.oauth.as_ref())
            .filter(|_| target.auth_methods.oauth)
            .map(|o| format!(" (access tokens of {})", o.issuer))
            .unwrap_or_default();
        let _ = writeln!(out, "  {name}: http://{addr}/mcp/{name}{own}{issuer}");
    }
    out
}

/// Backlog of the listening socket: room for bursts of connections while
/// the gateway is busy (the kernel caps it at `net.core.somaxconn`).
const LISTEN_BACKLOG: u32 = 4096;

/// A listener on `addr`, with [`LISTEN_BACKLOG`].
fn bind_listener(addr: std::net::SocketAddr) -> std::io::Result<tokio::net::TcpListener> {
    let socket = match addr {
        std::net::SocketAddr::V4(_) => tokio::net::TcpSocket::new_v4()?,
        std::net::SocketAddr::V6(_) => tokio::net::TcpSocket::new_v6()?,
    };
    socket.set_reuseaddr(true)?;
    socket.bind(addr)?;
    socket.listen(LISTEN_BACKLOG)
}

fn demo_server(args: &[String]) -> ExitCode {
    match mcpod_demo::parse_args(args) {
        Ok(mcpod_demo::Command::Serve(config)) => {
            match mcpod_demo::run_with(config, std::io::stdin().lock(), std::io::stdout()) {
                Ok(()) => ExitCode::SUCCESS,
                Err(e) => {
                    eprintln!("mcpod demo-server: {e}");
                    ExitCode::FAILURE
                }
            }
        }
        Ok(mcpod_demo::Command::Version) => {
            println!("mcpod-demo {}", mcpod_demo::SERVER_VERSION);
            ExitCode::SUCCESS
        }
        Ok(_) => {
            println!("{}", mcpod_demo::USAGE);
            ExitCode::SUCCESS
        }
        Err(message) => {
            eprintln!("{message}");
            ExitCode::from(2)
        }
    }
}

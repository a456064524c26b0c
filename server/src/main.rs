//! The `mcpod` binary.

use std::process::ExitCode;

use clap::Parser;
use mcpod_server::cli::{Cli, Command};
use mcpod_server::config::{Config, ConfigError, Overrides, RawConfig};

fn load(file: Option<&std::path::Path>, overrides: &Overrides) -> Result<Config, ConfigError> {
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
    raw.validate()
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    match cli.command {
        Command::DemoServer { args } => demo_server(&args),
        Command::Bot(args) => mcpod_server::containerd::cli::run(args),
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
        Command::Serve { config, listen } => {
            let config = match load(config.as_deref(), &Overrides { listen }) {
                Ok(c) => c,
                Err(e) => {
                    eprintln!("mcpod: invalid config: {e}");
                    return ExitCode::from(2);
                }
            };
            mcpod_server::logging::init(&config.log);
            let runtime = match tokio::runtime::Runtime::new() {
                Ok(r) => r,
                Err(e) => {
                    eprintln!("mcpod: cannot start the runtime: {e}");
                    return ExitCode::FAILURE;
                }
            };
            let result = runtime.block_on(async move {
                let listener = tokio::net::TcpListener::bind(config.listen)
                    .await
                    .map_err(|e| {
                        std::io::Error::new(
                            e.kind(),
                            format!("cannot listen on {}: {e}", config.listen),
                        )
                    })?;
                mcpod_server::serve(config, listener, mcpod_server::shutdown::signal()).await
            });
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

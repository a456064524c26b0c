//! `mcpod-loadgen`: the load benchmark of the mcpod gateway.
//!
//! It drives `tools/call echo` with a unique text per request against an MCP
//! server, over Streamable HTTP (`http`, legacy or 2026-07-28 era) or over a
//! child's stdin/stdout (`stdio`), with a fixed number of closed-loop virtual
//! clients, and checks every reply (its id, and that it echoes the text
//! sent). It prints requests per second, p50/p99 latency and the peak RSS of
//! a process, and exits non-zero if any request failed. See the README.

mod abuse;
mod check;
mod cli;
mod floor;
mod http;
mod report;
mod rss;
mod run;
mod stdio;

use std::process::ExitCode;

use clap::Parser;

use crate::cli::{Cli, Command, LoadArgs};
use crate::run::RunResult;

/// Exit status when a run had errors.
const EXIT_ERRORS: u8 = 1;
/// Exit status when a run could not start (bad arguments, server unreachable).
const EXIT_SETUP: u8 = 2;

fn main() -> ExitCode {
    let cli = Cli::parse();
    match cli.command {
        Command::DemoServer => match mcpod_demo::run(std::io::stdin().lock(), std::io::stdout()) {
            Ok(()) => ExitCode::SUCCESS,
            Err(e) => {
                eprintln!("mcpod-loadgen demo-server: {e}");
                ExitCode::FAILURE
            }
        },
        Command::Report(args) => match report::run(&args) {
            Ok(text) => {
                print!("{text}");
                ExitCode::SUCCESS
            }
            Err(e) => {
                eprintln!("mcpod-loadgen report: {e}");
                ExitCode::from(EXIT_SETUP)
            }
        },
        Command::FloorServer(args) => {
            let mut builder = tokio::runtime::Builder::new_multi_thread();
            if let Some(threads) = args.threads {
                builder.worker_threads(threads as usize);
            }
            let outcome = builder
                .enable_all()
                .build()
                .map_err(|e| format!("cannot start the runtime: {e}"))
                .and_then(|runtime| runtime.block_on(floor::serve(args.listen)));
            match outcome {
                Ok(()) => ExitCode::SUCCESS,
                Err(e) => {
                    eprintln!("mcpod-loadgen floor-server: {e}");
                    ExitCode::from(EXIT_SETUP)
                }
            }
        }
        Command::Abuse(args) => {
            let json = args.json;
            let outcome = tokio::runtime::Builder::new_current_thread()
                .enable_all()
                .build()
                .map_err(|e| format!("cannot start the runtime: {e}"))
                .and_then(|runtime| runtime.block_on(abuse::run(args)));
            match outcome {
                Ok(report) if json => match serde_json::to_string(&report) {
                    Ok(line) => {
                        println!("{line}");
                        ExitCode::SUCCESS
                    }
                    Err(e) => {
                        eprintln!("mcpod-loadgen abuse: cannot encode the result: {e}");
                        ExitCode::from(EXIT_SETUP)
                    }
                },
                Ok(report) => {
                    println!("{}", report.line());
                    ExitCode::SUCCESS
                }
                Err(e) => {
                    eprintln!("mcpod-loadgen abuse: {e}");
                    ExitCode::from(EXIT_SETUP)
                }
            }
        }
        Command::Http(args) => {
            let load = args.load.clone();
            let label = load.label.clone().unwrap_or_else(|| "http".to_owned());
            finish(&load, block_on(&load, http::run(args, label)))
        }
        Command::Stdio(args) => {
            let load = args.load.clone();
            let label = load.label.clone().unwrap_or_else(|| "stdio".to_owned());
            finish(&load, block_on(&load, stdio::run(args, label)))
        }
    }
}

/// Runs a benchmark on a runtime with `--threads` workers.
fn block_on<F>(load: &LoadArgs, run: F) -> Result<RunResult, String>
where
    F: Future<Output = Result<RunResult, String>>,
{
    let runtime = if load.threads == 1 {
        tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
    } else {
        tokio::runtime::Builder::new_multi_thread()
            .worker_threads(load.threads as usize)
            .enable_all()
            .build()
    };
    runtime
        .map_err(|e| format!("cannot start the runtime: {e}"))?
        .block_on(run)
}

/// Prints the result and picks the exit status.
fn finish(load: &LoadArgs, outcome: Result<RunResult, String>) -> ExitCode {
    let result = match outcome {
        Ok(result) => result,
        Err(e) => {
            eprintln!("mcpod-loadgen: {e}");
            return ExitCode::from(EXIT_SETUP);
        }
    };
    if load.json {
        match serde_json::to_string(&result) {
            Ok(json) => println!("{json}"),
            Err(e) => {
                eprintln!("mcpod-loadgen: cannot encode the result: {e}");
                return ExitCode::from(EXIT_SETUP);
            }
        }
    } else {
        println!("{}", result.line());
    }
    for message in &result.error_messages {
        eprintln!("mcpod-loadgen: {}: error: {message}", result.label);
    }
    if result.passed() {
        ExitCode::SUCCESS
    } else {
        if result.ok == 0 && result.errors == 0 {
            eprintln!("mcpod-loadgen: {}: no request was measured", result.label);
        }
        ExitCode::from(EXIT_ERRORS)
    }
}

//! The `mcpod-demo` binary: the demo MCP server on stdin/stdout.

use std::process::ExitCode;

use mcpod_demo::{Command, SERVER_VERSION, USAGE, parse_args, run_with};

fn main() -> ExitCode {
    let config = match parse_args(std::env::args().skip(1)) {
        Ok(Command::Serve(config)) => config,
        Ok(Command::Help) => {
            println!("{USAGE}");
            return ExitCode::SUCCESS;
        }
        Ok(Command::Version) => {
            println!("mcpod-demo {SERVER_VERSION}");
            return ExitCode::SUCCESS;
        }
        Err(message) => {
            eprintln!("{message}");
            return ExitCode::from(2);
        }
    };
    match run_with(config, std::io::stdin().lock(), std::io::stdout()) {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("mcpod-demo: {e}");
            ExitCode::FAILURE
        }
    }
}

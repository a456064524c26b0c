//! Modern era (2026-07-28): discovery, `_meta` versions, MRTR, per-request log levels, subscriptions.

use serde_json::{Value, json};

use crate::harness::{MODERN, Server, assert_valid, modern_meta, text_of};

/// Sends a modern request (params get the modern `_meta`) and returns the next message.
fn modern(server: &mut Server, id: &str, method: &str, mut params: Value) -> Value {
    params["_meta"] = modern_meta();
    server.request(id, method, params)
}

#[test]
fn discover_then_lists_and_calls() {
    let mut server = Server::start(MODERN, &[]);
    let discovered = modern(&mut server, "1", "server/discover", json!({}));
    assert_valid(MODERN, "DiscoverResultResponse", &discovered);
    server.expect_result(&discovered, "DiscoverResult");
    let result = &discovered["result"];
    assert_eq!(result["resultType"], "complete");
    assert!(
        result["supportedVersions"]
            .as_array()
            .expect("versions")
            .contains(&json!(MODERN))
    );
    assert_eq!(
        result["_meta"]["io.modelcontextprotocol/serverInfo"]["name"],
        "mcpod-demo"
    );
    assert_eq!(result["capabilities"]["tools"]["listChanged"], true);
    assert!(result["instructions"].is_string());

    for (n, (method, params, whole, def)) in [
        (
            "tools/list",
            json!({}),
            "ListToolsResultResponse",
            "ListToolsResult",
        ),
        (
            "tools/call",
            json!({ "name": "echo", "arguments": { "text": "hi" } }),
            "CallToolResultResponse",
            "CallToolResult",
        ),
        (
            "tools/call",
            json!({ "name": "add", "arguments": { "a": 1, "b": 2 } }),
            "CallToolResultResponse",
            "CallToolResult",
        ),
        (
            "tools/call",
            json!({ "name": "fail" }),
            "CallToolResultResponse",
            "CallToolResult",
        ),
        (
            "resources/list",
            json!({}),
            "ListResourcesResultResponse",
            "ListResourcesResult",
        ),
        (
            "resources/read",
            json!({ "uri": "demo://hello" }),
            "ReadResourceResultResponse",
            "ReadResourceResult",
        ),
        (
            "resources/templates/list",
            json!({}),
            "ListResourceTemplatesResultResponse",
            "ListResourceTemplatesResult",
        ),
        (
            "prompts/list",
            json!({}),
            "ListPromptsResultResponse",
            "ListPromptsResult",
        ),
        (
            "prompts/get",
            json!({ "name": "greet", "arguments": { "name": "Ada" } }),
            "GetPromptResultResponse",
            "GetPromptResult",
        ),
    ]
    .into_iter()
    .enumerate()
    {
        let reply = modern(&mut server, &(n + 2).to_string(), method, params);
        assert_valid(MODERN, whole, &reply);
        server.expect_result(&reply, def);
        assert_eq!(
            reply["result"]["resultType"], "complete",
            "{method}: {reply}"
        );
    }

    let echoed = modern(
        &mut server,
        "\"e\"",
        "tools/call",
        json!({ "name": "echo", "arguments": { "text": "modern" } }),
    );
    assert_eq!(text_of(&echoed), "modern");
}

#[test]
fn unsupported_version_gets_32022_with_the_supported_list() {
    let mut server = Server::start(MODERN, &[]);
    for method in ["server/discover", "tools/call", "tools/list"] {
        let reply = server.request(
            "7",
            method,
            json!({
                "name": "echo",
                "arguments": { "text": "x" },
                "_meta": { "io.modelcontextprotocol/protocolVersion": "2099-01-01", "io.modelcontextprotocol/clientCapabilities": {} },
            }),
        );
        assert_valid(MODERN, "UnsupportedProtocolVersionError", &reply);
        let error = server.expect_error(&reply, -32022);
        assert_eq!(error["data"]["requested"], "2099-01-01");
        assert_eq!(error["data"]["supported"], json!([MODERN]));
    }
}

#[test]
fn legacy_only_methods_do_not_exist_in_the_modern_era() {
    let mut server = Server::start(MODERN, &[]);
    for (n, method) in ["initialize", "ping", "logging/setLevel"]
        .into_iter()
        .enumerate()
    {
        let reply = modern(
            &mut server,
            &n.to_string(),
            method,
            json!({ "level": "info", "protocolVersion": MODERN }),
        );
        assert_valid(MODERN, "MethodNotFoundError", &reply["error"]);
        server.expect_error(&reply, -32601);
    }
    let missing = modern(
        &mut server,
        "9",
        "resources/read",
        json!({ "uri": "demo://nope" }),
    );
    server.expect_error(&missing, -32602);
}

#[test]
fn ask_is_a_multi_round_trip_request() {
    let mut server = Server::start(MODERN, &[]);
    for (n, (kind, method, answer)) in [
        ("roots", "roots/list", json!({ "roots": [{ "uri": "file:///work" }] })),
        ("elicitation", "elicitation/create", json!({ "action": "accept", "content": { "name": "Ada" } })),
        ("sampling", "sampling/createMessage", json!({ "role": "assistant", "model": "m", "content": { "type": "text", "text": "hi" } })),
    ]
    .into_iter()
    .enumerate()
    {
        let first = modern(&mut server, &format!("{}", 10 * n + 1), "tools/call", json!({ "name": "ask", "arguments": { "kind": kind } }));
        assert_valid(MODERN, "CallToolResultResponse", &first);
        server.expect_result(&first, "InputRequiredResult");
        let result = &first["result"];
        assert_eq!(result["resultType"], "input_required");
        assert_eq!(result["inputRequests"]["q"]["method"], method);
        let state = result["requestState"].as_str().expect("requestState").to_owned();

        // Retry the same call under a new id with the answer and the state.
        let done = modern(
            &mut server,
            &format!("{}", 10 * n + 2),
            "tools/call",
            json!({ "name": "ask", "arguments": { "kind": kind }, "inputResponses": { "q": answer }, "requestState": state }),
        );
        assert_valid(MODERN, "CallToolResultResponse", &done);
        server.expect_result(&done, "CallToolResult");
        assert_eq!(done["result"]["resultType"], "complete");
        assert_eq!(serde_json::from_str::<Value>(text_of(&done)).expect("JSON text"), answer);
    }

    // A state this server did not issue, or for another kind, is refused.
    for (id, state) in [("40", "forged"), ("41", "mcpod-demo.ask.v1.sampling.1")] {
        let reply = modern(
            &mut server,
            id,
            "tools/call",
            json!({ "name": "ask", "arguments": { "kind": "roots" }, "inputResponses": { "q": { "roots": [] } }, "requestState": state }),
        );
        server.expect_error(&reply, -32602);
    }
}

#[test]
fn log_messages_only_at_the_requested_level() {
    let mut server = Server::start(MODERN, &[]);
    // No level in _meta: no message.
    let quiet = modern(
        &mut server,
        "1",
        "tools/call",
        json!({ "name": "log", "arguments": { "level": "emergency", "message": "m" } }),
    );
    server.expect_result(&quiet, "CallToolResult");
    assert_eq!(text_of(&quiet), r#"{"emitted":false}"#);

    let mut meta = modern_meta();
    meta["io.modelcontextprotocol/logLevel"] = json!("warning");
    for (id, level, emitted) in [(2, "error", true), (3, "info", false)] {
        server.send_json(&json!({
            "jsonrpc": "2.0", "id": id, "method": "tools/call",
            "params": { "name": "log", "arguments": { "level": level, "message": "m" }, "_meta": meta },
        }));
        if emitted {
            let note = server.recv();
            assert_valid(MODERN, "LoggingMessageNotification", &note);
            assert_eq!(note["params"]["level"], level);
        }
        let reply = server.recv();
        assert_eq!(reply["id"], id);
        server.expect_result(&reply, "CallToolResult");
        assert_eq!(text_of(&reply), format!(r#"{{"emitted":{emitted}}}"#));
    }
}

#[test]
fn progress_in_the_modern_era() {
    let mut server = Server::start(MODERN, &[]);
    let mut meta = modern_meta();
    meta["progressToken"] = json!("mt");
    server.send_json(&json!({
        "jsonrpc": "2.0", "id": 1, "method": "tools/call",
        "params": { "name": "progress", "arguments": { "steps": 2, "delay_ms": 1 }, "_meta": meta },
    }));
    for step in 1..=2 {
        let note = server.recv();
        assert_valid(MODERN, "ProgressNotification", &note);
        assert_eq!(note["params"]["progressToken"], "mt");
        assert_eq!(note["params"]["progress"], step);
    }
    let done = server.recv();
    server.expect_result(&done, "CallToolResult");
    assert_eq!(done["result"]["resultType"], "complete");
}

#[test]
fn tool_list_changes_reach_subscriptions() {
    let mut server = Server::start(MODERN, &[]);
    server.send_json(&json!({
        "jsonrpc": "2.0", "id": "sub", "method": "subscriptions/listen",
        "params": { "notifications": { "toolsListChanged": true, "promptsListChanged": true }, "_meta": modern_meta() },
    }));
    let ack = server.recv();
    assert_valid(MODERN, "SubscriptionsAcknowledgedNotification", &ack);
    assert_eq!(
        ack["params"]["notifications"],
        json!({ "toolsListChanged": true })
    );
    assert_eq!(
        ack["params"]["_meta"]["io.modelcontextprotocol/subscriptionId"],
        "sub"
    );

    server.send_json(&json!({
        "jsonrpc": "2.0", "id": 1, "method": "tools/call",
        "params": { "name": "notify_change", "_meta": modern_meta() },
    }));
    let note = server.recv();
    assert_valid(MODERN, "ToolListChangedNotification", &note);
    assert_eq!(
        note["params"]["_meta"]["io.modelcontextprotocol/subscriptionId"],
        "sub"
    );
    let done = server.recv();
    server.expect_result(&done, "CallToolResult");
    assert_eq!(
        done["result"]["structuredContent"],
        json!({ "legacy": false, "subscriptions": 1 })
    );

    // Cancelling the listen request closes the stream.
    server.send(
        r#"{"jsonrpc":"2.0","method":"notifications/cancelled","params":{"requestId":"sub"}}"#,
    );
    let done = modern(
        &mut server,
        "2",
        "tools/call",
        json!({ "name": "notify_change" }),
    );
    server.expect_result(&done, "CallToolResult");
    assert_eq!(
        done["result"]["structuredContent"],
        json!({ "legacy": false, "subscriptions": 0 })
    );
}

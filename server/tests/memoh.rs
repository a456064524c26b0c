//! The Memoh-compatible routes keep their contract.

#![allow(clippy::unwrap_used, missing_docs)]

mod common;

use common::{DEMO, Gateway, demo_target};
use serde_json::{Value, json};

fn config() -> String {
    format!(
        "{}[bots.bot1]\ntarget = \"demo\"\nallow_local_stdio = true\n[bots.bot2]\ntarget = \"demo\"\n",
        demo_target("demo", "")
    )
}

async fn rpc(gw: &Gateway, path: &str, body: &str) -> common::Reply {
    gw.post_raw(
        path,
        &[("content-type", "application/json")],
        body.to_owned(),
    )
    .await
}

const FS: &str = "/bots/bot1/container/fs-mcp";

#[tokio::test]
async fn fs_mcp_contract() {
    let gw = Gateway::start(&config()).await;
    let r = rpc(&gw, FS, r#"{"jsonrpc":"2.0","id":1,"method":"tools/list"}"#).await;
    assert_eq!(r.status, 200);
    assert!(
        r.json()["result"]["tools"]
            .as_array()
            .unwrap()
            .iter()
            .any(|t| t["name"] == "echo")
    );
    // The caller's own initialize is answered (the backend is never re-initialized).
    let r = rpc(&gw, FS, r#"{"jsonrpc":"2.0","id":"init-1","method":"initialize","params":{"protocolVersion":"2025-06-18"}}"#).await;
    assert_eq!(r.json()["result"]["protocolVersion"], "2025-06-18");
    // Ids and error data survive intact.
    let r = rpc(&gw, FS, r#"{"jsonrpc":"2.0","id":1.5,"method":"tools/call","params":{"name":"echo","arguments":{"text":"x"}}}"#).await;
    assert!(r.body.contains("\"id\":1.5"), "{}", r.body);
    let r = rpc(
        &gw,
        FS,
        r#"{"jsonrpc":"2.0","id":2,"method":"tools/call","params":{"name":"nope"}}"#,
    )
    .await;
    assert_eq!(r.status, 200);
    assert_eq!(r.code(), Some(-32602));
    // Notification: 202, no body.
    let r = rpc(
        &gw,
        FS,
        r#"{"jsonrpc":"2.0","method":"notifications/initialized"}"#,
    )
    .await;
    assert_eq!((r.status, r.body.as_str()), (202, ""));
    // jsonrpc other than 2.0: -32600 with 200.
    let r = rpc(&gw, FS, r#"{"jsonrpc":"1.0","id":3,"method":"tools/list"}"#).await;
    assert_eq!((r.status, r.code()), (200, Some(-32600)));
    assert_eq!(r.json()["id"], 3);
    // No jsonrpc at all: the same.
    let r = rpc(&gw, FS, r#"{"id":3,"method":"tools/list"}"#).await;
    assert_eq!((r.status, r.code()), (200, Some(-32600)), "{}", r.body);
    assert_eq!(r.json()["id"], 3);
    // A batch: -32600, saying batches are not supported.
    let r = rpc(
        &gw,
        FS,
        r#"[{"jsonrpc":"2.0","id":7,"method":"tools/list"}]"#,
    )
    .await;
    assert_eq!((r.status, r.code()), (200, Some(-32600)), "{}", r.body);
    assert!(r.body.contains("batches"), "{}", r.body);
    // Empty method: -32601 with 200.
    let r = rpc(&gw, FS, r#"{"jsonrpc":"2.0","id":4,"method":""}"#).await;
    assert_eq!((r.status, r.code()), (200, Some(-32601)));
    // Not JSON: 400 with a message.
    let r = rpc(&gw, FS, "{nope").await;
    assert_eq!(r.status, 400);
    assert!(r.json()["message"].is_string());
    // Unknown bot: 404.
    let r = rpc(
        &gw,
        "/bots/nobody/container/fs-mcp",
        r#"{"jsonrpc":"2.0","id":1,"method":"tools/list"}"#,
    )
    .await;
    assert_eq!(r.status, 404);
    assert_eq!(r.json()["message"], "container not found for bot");
    // Backend failure: -32603 with a message, 200; the next call works.
    let r = rpc(&gw, FS, r#"{"jsonrpc":"2.0","id":5,"method":"tools/call","params":{"name":"crash","arguments":{}}}"#).await;
    assert_eq!((r.status, r.code()), (200, Some(-32603)), "{}", r.body);
    assert!(
        r.json()["error"]["message"]
            .as_str()
            .unwrap()
            .contains("backend closed")
    );
    let r = rpc(&gw, FS, r#"{"jsonrpc":"2.0","id":6,"method":"tools/call","params":{"name":"echo","arguments":{"text":"ok"}}}"#).await;
    assert_eq!(r.text(), "ok");
    gw.shutdown().await;
}

#[tokio::test]
async fn mcp_stdio_contract() {
    let gw = Gateway::start(&config()).await;
    let create = json!({"name":"demo2","command":DEMO,"args":["demo-server","--legacy-only"],"env":{"X":"1"},"cwd":"/"});
    let r = rpc(&gw, "/bots/bot1/mcp-stdio", &create.to_string()).await;
    assert_eq!(r.status, 200, "{}", r.body);
    let v: Value = r.json();
    let id = v["connection_id"].as_str().unwrap().to_owned();
    assert_eq!(id.len(), 36);
    assert_eq!(v["url"], format!("/bots/bot1/mcp-stdio/{id}"));
    let tools: Vec<&str> = v["tools"]
        .as_array()
        .unwrap()
        .iter()
        .map(|t| t.as_str().unwrap())
        .collect();
    let mut sorted = tools.clone();
    sorted.sort();
    assert_eq!(tools, sorted);
    assert!(tools.contains(&"echo"));

    let url = v["url"].as_str().unwrap().to_owned();
    let ready = |gw: &Gateway| {
        let url = gw.url("/readyz");
        let http = gw.http.clone();
        async move {
            let r = http.get(url).send().await.unwrap();
            serde_json::from_str::<Value>(&r.text().await.unwrap()).unwrap()
        }
    };
    assert_eq!(ready(&gw).await["bots"]["stdio_connections"], 1);
    let r = rpc(&gw, &url, r#"{"jsonrpc":"2.0","id":1,"method":"tools/call","params":{"name":"echo","arguments":{"text":"stdio"}}}"#).await;
    assert_eq!(r.text(), "stdio");
    let r = rpc(&gw, &url, r#"{"jsonrpc":"2.0","id":2,"method":""}"#).await;
    assert_eq!(r.code(), Some(-32601));
    let r = rpc(&gw, &url, r#"{"id":3,"method":"tools/list"}"#).await;
    assert_eq!((r.status, r.code()), (200, Some(-32600)), "{}", r.body);
    let r = rpc(
        &gw,
        &url,
        r#"[{"jsonrpc":"2.0","id":4,"method":"tools/list"}]"#,
    )
    .await;
    assert_eq!((r.status, r.code()), (200, Some(-32600)), "{}", r.body);
    assert!(r.body.contains("batches"), "{}", r.body);
    // A batch to create a connection: 400 that says what is expected.
    let r = rpc(&gw, "/bots/bot1/mcp-stdio", &format!("[{create}]")).await;
    assert_eq!(r.status, 400, "{}", r.body);
    assert!(
        r.json()["message"]
            .as_str()
            .unwrap()
            .contains("a JSON object"),
        "{}",
        r.body
    );

    // Another bot's connection id: 404.
    let r = rpc(
        &gw,
        &format!("/bots/bot2/mcp-stdio/{id}"),
        r#"{"jsonrpc":"2.0","id":1,"method":"tools/list"}"#,
    )
    .await;
    assert_eq!(r.status, 404);
    let d = gw
        .http
        .delete(gw.url(&format!("/bots/bot2/mcp-stdio/{id}")))
        .send()
        .await
        .unwrap();
    assert_eq!(d.status(), 404);

    // Bad requests.
    let r = rpc(&gw, "/bots/bot1/mcp-stdio", r#"{"name":"x"}"#).await;
    assert_eq!(r.status, 400);
    assert_eq!(r.json()["message"], "command is required");
    let r = rpc(&gw, "/bots/bot2/mcp-stdio", &create.to_string()).await;
    assert_eq!(r.status, 403);
    let r = rpc(
        &gw,
        "/bots/bot1/mcp-stdio",
        r#"{"command":"/nonexistent/server"}"#,
    )
    .await;
    assert_eq!(r.status, 500);

    // DELETE stops it; then it is gone.
    let d = gw.http.delete(gw.url(&url)).send().await.unwrap();
    assert_eq!(d.status(), 204);
    assert_eq!(ready(&gw).await["bots"]["stdio_connections"], 0);
    let r = rpc(
        &gw,
        &url,
        r#"{"jsonrpc":"2.0","id":1,"method":"tools/list"}"#,
    )
    .await;
    assert_eq!(r.status, 404);
    gw.shutdown().await;
}

#[tokio::test]
async fn bot_tokens_guard_the_memoh_routes() {
    let gw = Gateway::start(&format!(
        "[auth]\ntokens = [\"{}\"]\n{}[bots.bot1]\ntarget = \"demo\"\ntokens = [\"bot1-only-token-0123456789\"]\n",
        common::TOKEN,
        demo_target("demo", "")
    ))
    .await;
    let body = r#"{"jsonrpc":"2.0","id":1,"method":"tools/list"}"#;
    let with = |token: &'static str| {
        gw.http
            .post(gw.url(FS))
            .header("content-type", "application/json")
            .bearer_auth(token)
            .body(body)
            .send()
    };
    let r = gw
        .post_raw(FS, &[("content-type", "application/json")], body)
        .await;
    assert_eq!(r.status, 401);
    assert!(r.header("www-authenticate").is_some());
    // The global token is not enough for a bot with its own tokens.
    assert_eq!(with(common::TOKEN).await.unwrap().status(), 401);
    assert_eq!(
        with("bot1-only-token-0123456789").await.unwrap().status(),
        200
    );
    gw.shutdown().await;
}

#[tokio::test]
async fn memoh_routes_take_json_only() {
    let gw = Gateway::start(&config()).await;
    let body = r#"{"jsonrpc":"2.0","id":1,"method":"tools/list"}"#;
    let create = json!({"command": DEMO, "args": ["demo-server"]}).to_string();
    let created = rpc(&gw, "/bots/bot1/mcp-stdio", &create).await;
    assert_eq!(created.status, 200, "{}", created.body);
    let url = created.json()["url"].as_str().unwrap().to_owned();
    for (path, body) in [(FS, body), ("/bots/bot1/mcp-stdio", &create), (&url, body)] {
        for headers in [&[][..], &[("content-type", "text/plain")][..]] {
            let r = gw.post_raw(path, headers, body.to_owned()).await;
            assert_eq!(r.status, 415, "{path} {headers:?}: {}", r.body);
            assert_eq!(
                r.json()["message"],
                "Content-Type must be application/json",
                "{path}: the contract's error shape"
            );
        }
        let r = gw
            .post_raw(
                path,
                &[("content-type", "application/json; charset=utf-8")],
                body.to_owned(),
            )
            .await;
        assert_eq!(r.status, 200, "{path}: {}", r.body);
    }
    gw.shutdown().await;
}

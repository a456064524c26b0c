//! Cancellation, server→client requests and subscriptions.

#![allow(clippy::unwrap_used, missing_docs)]

mod common;

use std::time::Duration;

use common::{Gateway, MODERN, Reply, call, demo_target, read_events, stats};
use serde_json::{Value, json};

/// Waits until the demo's `cancelled` list reaches `n`.
async fn wait_cancelled(gw: &Gateway, target: &str, n: usize) -> Value {
    for _ in 0..60 {
        let s = stats(gw, target).await;
        if s["cancelled"].as_array().unwrap().len() >= n {
            return s;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    panic!(
        "the backend never saw {n} cancellations: {}",
        stats(gw, target).await
    );
}

fn modern_call(id: Value, tool: &str, args: Value) -> (Vec<(&'static str, String)>, Value) {
    (
        vec![
            ("content-type", "application/json".into()),
            ("accept", "application/json, text/event-stream".into()),
            ("mcp-protocol-version", MODERN.into()),
            ("mcp-method", "tools/call".into()),
            ("mcp-name", tool.into()),
        ],
        json!({"jsonrpc":"2.0","id":id,"method":"tools/call","params":{"name":tool,"arguments":args,
            "_meta":{"io.modelcontextprotocol/protocolVersion":MODERN,"io.modelcontextprotocol/clientCapabilities":{},"progressToken":"p"}}}),
    )
}

fn request(
    gw: &Gateway,
    path: &str,
    headers: &[(&'static str, String)],
    body: &Value,
) -> reqwest::RequestBuilder {
    let mut req = gw.http.post(gw.url(path)).body(body.to_string());
    for (k, v) in headers {
        req = req.header(*k, v);
    }
    req
}

#[tokio::test]
async fn client_disconnect_cancels_the_call_at_the_backend() {
    let gw = Gateway::demo().await;
    // JSON reply pending: the client gives up after 300 ms.
    let impatient = reqwest::Client::builder()
        .timeout(Duration::from_millis(300))
        .build()
        .unwrap();
    let (headers, body) = modern_call(json!(1), "sleep", json!({"ms": 20000}));
    let mut req = impatient.post(gw.url("/mcp/demo")).body(body.to_string());
    for (k, v) in &headers {
        req = req.header(*k, v);
    }
    assert!(req.send().await.is_err());
    wait_cancelled(&gw, "demo", 1).await;

    // SSE reply: the client reads one progress event and hangs up.
    let (headers, body) = modern_call(json!(2), "progress", json!({"steps": 100, "delay_ms": 100}));
    let mut resp = request(&gw, "/mcp/demo", &headers, &body)
        .send()
        .await
        .unwrap();
    let first = read_events(&mut resp, |e| !e.is_empty()).await;
    assert_eq!(first[0]["method"], "notifications/progress");
    drop(resp);
    // Two distinct backend calls were cancelled (the demo records the
    // backend's ids verbatim; the callers' ids never reach it).
    let s = wait_cancelled(&gw, "demo", 2).await;
    let cancelled = s["cancelled"].as_array().unwrap();
    assert_ne!(cancelled[0], cancelled[1], "{s}");
    gw.shutdown().await;
}

#[tokio::test]
async fn legacy_notifications_cancelled_reaches_the_right_call() {
    let gw = Gateway::demo().await;
    let a = gw.initialize("demo").await;
    let b = gw.initialize("demo").await;
    let (ra, rb, _) = tokio::join!(
        gw.legacy("demo", &a, call(json!(1), "sleep", json!({"ms": 20000}))),
        gw.legacy("demo", &b, call(json!(1), "sleep", json!({"ms": 1000}))),
        async {
            tokio::time::sleep(Duration::from_millis(400)).await;
            let n = gw
                .legacy("demo", &a, json!({"jsonrpc":"2.0","method":"notifications/cancelled","params":{"requestId":1,"reason":"user"}}))
                .await;
            assert_eq!(n.status, 202);
        }
    );
    assert_eq!((ra.status, ra.code()), (200, Some(-32800)), "{}", ra.body);
    assert_eq!(ra.json()["id"], 1);
    // B's call with the same id was not touched.
    assert_eq!(rb.text(), "slept 1000 ms");
    wait_cancelled(&gw, "demo", 1).await;
    gw.shutdown().await;
}

/// A backend that only speaks the legacy era (so it sends real server
/// requests even to modern callers' calls).
fn legacy_only(name: &str, extra: &str) -> String {
    format!(
        "[targets.{name}]\ncommand = \"{}\"\nargs = [\"demo-server\", \"--legacy-only\"]\n{extra}\n",
        common::DEMO
    )
}

fn roots_target() -> String {
    legacy_only(
        "old",
        "roots = [{ uri = \"file:///srv/configured\", name = \"configured\" }]",
    )
}

#[tokio::test]
async fn server_request_goes_to_the_calling_session_over_sse() {
    let gw = Gateway::start(&roots_target()).await;
    let sid = gw.initialize("old").await;
    let headers = vec![
        ("content-type", "application/json".to_owned()),
        ("accept", "application/json, text/event-stream".to_owned()),
        ("mcp-session-id", sid.clone()),
    ];
    let mut resp = request(
        &gw,
        "/mcp/old",
        &headers,
        &call(json!(1), "ask", json!({"kind":"roots"})),
    )
    .send()
    .await
    .unwrap();
    let events = read_events(&mut resp, |e| !e.is_empty()).await;
    let req = &events[0];
    assert_eq!(req["method"], "roots/list", "{req}");
    // The session's own id for it, not the backend's.
    assert_eq!(req["id"], 1);
    let answer = gw
        .legacy("old", &sid, json!({"jsonrpc":"2.0","id":req["id"],"result":{"roots":[{"uri":"file:///from/client"}]}}))
        .await;
    assert_eq!(answer.status, 202);
    let rest = read_events(&mut resp, |e| e.iter().any(|m| m.get("result").is_some())).await;
    let result = rest.last().unwrap();
    assert_eq!(result["id"], 1);
    let text = result["result"]["content"][0]["text"].as_str().unwrap();
    assert!(text.contains("file:///from/client"), "{text}");
    gw.shutdown().await;
}

#[tokio::test]
async fn server_request_without_a_client_is_answered_from_config_or_refused() {
    let gw = Gateway::start(&format!("{}{}", roots_target(), legacy_only("bare", ""))).await;
    // A modern caller cannot take server requests: roots come from config.
    let r = gw
        .modern(
            "old",
            json!(1),
            "tools/call",
            json!({"name":"ask","arguments":{"kind":"roots"}}),
        )
        .await;
    assert!(r.text().contains("file:///srv/configured"), "{}", r.body);
    // No roots configured, or another kind: the caller did not declare the
    // capability the backend needs, so it gets the 2026-07-28 error for
    // that (-32021, HTTP 400, naming the capability) — never a hang.
    for (target, kind, capability) in [("bare", "roots", "roots"), ("old", "sampling", "sampling")]
    {
        let r = gw
            .modern(
                target,
                json!(2),
                "tools/call",
                json!({"name":"ask","arguments":{"kind":kind}}),
            )
            .await;
        assert_eq!((r.status, r.code()), (400, Some(-32021)), "{}", r.body);
        assert!(
            r.json()["error"]["data"]["requiredCapabilities"][capability].is_object(),
            "{}",
            r.body
        );
    }
    // The backend was answered and carries on: the next call works.
    let r = gw
        .modern(
            "old",
            json!(3),
            "tools/call",
            json!({"name":"echo","arguments":{"text":"still here"}}),
        )
        .await;
    assert_eq!(r.text(), "still here");
    gw.shutdown().await;
}

#[tokio::test]
async fn shared_server_request_goes_to_the_only_session_with_a_call_in_flight() {
    let gw = Gateway::start(&roots_target()).await;
    let a = gw.initialize("old").await;
    let _idle = gw.initialize("old").await;
    let mut stream = gw
        .http
        .get(gw.url("/mcp/old"))
        .header("mcp-session-id", &a)
        .header("accept", "text/event-stream")
        .send()
        .await
        .unwrap();
    assert_eq!(stream.status(), 200);
    // Another (modern) call keeps the backend busy, so the core cannot tie
    // the server request to one call; the gateway picks the only session
    // with a call in flight.
    let busy = gw.modern(
        "old",
        json!("busy"),
        "tools/call",
        json!({"name":"sleep","arguments":{"ms": 1500}}),
    );
    let asking = async {
        tokio::time::sleep(Duration::from_millis(200)).await;
        gw.post_raw(
            "/mcp/old",
            &[
                ("content-type", "application/json"),
                ("accept", "application/json"),
                ("mcp-session-id", &a),
            ],
            call(json!(7), "ask", json!({"kind":"roots"})).to_string(),
        )
        .await
    };
    let answering = async {
        let events = read_events(&mut stream, |e| {
            e.iter().any(|m| m["method"] == "roots/list")
        })
        .await;
        let req = events
            .iter()
            .find(|m| m["method"] == "roots/list")
            .unwrap()
            .clone();
        let r = gw
            .legacy("old", &a, json!({"jsonrpc":"2.0","id":req["id"],"result":{"roots":[{"uri":"file:///via/get"}]}}))
            .await;
        assert_eq!(r.status, 202);
    };
    let (busy, asked, ()) = tokio::join!(busy, asking, answering);
    assert_eq!(busy.text(), "slept 1500 ms");
    assert!(asked.text().contains("file:///via/get"), "{}", asked.body);
    gw.shutdown().await;
}

async fn listen(gw: &Gateway, target: &str, id: &str) -> reqwest::Response {
    let headers = vec![
        ("content-type", "application/json".to_owned()),
        ("accept", "application/json, text/event-stream".to_owned()),
        ("mcp-protocol-version", MODERN.to_owned()),
        ("mcp-method", "subscriptions/listen".to_owned()),
    ];
    let body = json!({"jsonrpc":"2.0","id":id,"method":"subscriptions/listen","params":{
        "notifications":{"toolsListChanged":true},
        "_meta":{"io.modelcontextprotocol/protocolVersion":MODERN,"io.modelcontextprotocol/clientCapabilities":{}}}});
    let resp = request(gw, &format!("/mcp/{target}"), &headers, &body)
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), 200);
    assert_eq!(resp.headers()["content-type"], "text/event-stream");
    resp
}

#[tokio::test]
async fn subscriptions_listen_carries_tagged_change_notifications() {
    for (target, extra) in [("modern", ""), ("old", "era = \"legacy\"")] {
        let gw = Gateway::start(&demo_target(target, extra)).await;
        let mut sub = listen(&gw, target, "sub-1").await;
        let ack = read_events(&mut sub, |e| !e.is_empty()).await;
        assert_eq!(
            ack[0]["method"], "notifications/subscriptions/acknowledged",
            "{target}: {ack:?}"
        );
        assert_eq!(
            ack[0]["params"]["_meta"]["io.modelcontextprotocol/subscriptionId"],
            "sub-1"
        );
        assert_eq!(
            ack[0]["params"]["notifications"]["toolsListChanged"], true,
            "{target}"
        );

        // A legacy session's GET stream gets the broadcast too (legacy backend).
        let sid = gw.initialize(target).await;
        let mut get = gw
            .http
            .get(gw.url(&format!("/mcp/{target}")))
            .header("mcp-session-id", &sid)
            .header("accept", "text/event-stream")
            .send()
            .await
            .unwrap();
        let r = gw
            .modern(
                target,
                json!(1),
                "tools/call",
                json!({"name":"notify_change","arguments":{}}),
            )
            .await;
        assert_eq!(r.status, 200);
        let got = read_events(&mut sub, |e| !e.is_empty()).await;
        assert_eq!(
            got[0]["method"], "notifications/tools/list_changed",
            "{target}: {got:?}"
        );
        assert_eq!(
            got[0]["params"]["_meta"]["io.modelcontextprotocol/subscriptionId"],
            "sub-1"
        );
        if extra.contains("legacy") {
            let on_get = read_events(&mut get, |e| !e.is_empty()).await;
            assert_eq!(on_get[0]["method"], "notifications/tools/list_changed");
        }
        drop(sub);
        gw.shutdown().await;
    }
}

#[tokio::test]
async fn quiet_streams_get_keep_alive_comments() {
    let gw = Gateway::start(&format!(
        "[limits]\nsse_keep_alive = \"100ms\"\n{}",
        demo_target("demo", "")
    ))
    .await;
    let sid = gw.initialize("demo").await;
    let mut get = gw
        .http
        .get(gw.url("/mcp/demo"))
        .header("mcp-session-id", &sid)
        .header("accept", "text/event-stream")
        .send()
        .await
        .unwrap();
    assert_eq!(get.headers()["x-accel-buffering"], "no");
    let mut seen = String::new();
    while !seen.contains(": keep-alive\n\n") {
        let chunk = tokio::time::timeout(Duration::from_secs(10), get.chunk())
            .await
            .unwrap()
            .unwrap()
            .unwrap();
        seen.push_str(std::str::from_utf8(&chunk).unwrap());
    }
    // Deleting the session ends its stream.
    let del = gw
        .http
        .delete(gw.url("/mcp/demo"))
        .header("mcp-session-id", &sid)
        .send()
        .await
        .unwrap();
    assert_eq!(del.status(), 200);
    let end = tokio::time::timeout(Duration::from_secs(10), async {
        loop {
            match get.chunk().await {
                Ok(Some(_)) => continue,
                other => return other.map(|_| ()),
            }
        }
    })
    .await;
    assert!(end.is_ok(), "the GET stream did not end after DELETE");
    gw.shutdown().await;
}

#[tokio::test]
async fn legacy_server_request_reaches_a_modern_client_as_input_required() {
    let headers = vec![
        ("content-type", "application/json".to_owned()),
        ("accept", "application/json, text/event-stream".to_owned()),
        ("mcp-protocol-version", MODERN.to_owned()),
        ("mcp-method", "tools/call".to_owned()),
        ("mcp-name", "ask".to_owned()),
    ];
    let meta = json!({"io.modelcontextprotocol/protocolVersion":MODERN,
        "io.modelcontextprotocol/clientCapabilities":{"roots":{},"sampling":{}}});
    for (kind, method, answer, expect) in [
        (
            "roots",
            "roots/list",
            json!({"roots":[{"uri":"file:///from/mrtr"}]}),
            "file:///from/mrtr",
        ),
        (
            "sampling",
            "sampling/createMessage",
            json!({"role":"assistant","content":{"type":"text","text":"sampled!"},"model":"m"}),
            "sampled!",
        ),
    ] {
        // A fresh gateway each: an unanswered parked call would keep the
        // backend busy, and with two calls in flight a server request
        // belongs to no single call.
        let gw = Gateway::start(&legacy_only("old", "")).await;
        let first = json!({"jsonrpc":"2.0","id":"first","method":"tools/call","params":{
            "name":"ask","arguments":{"kind":kind},"_meta":meta}});
        let r = Reply::from(
            request(&gw, "/mcp/old", &headers, &first)
                .send()
                .await
                .unwrap(),
        )
        .await;
        let v = r.json();
        assert_eq!(v["id"], "first", "{v}");
        assert_eq!(v["result"]["resultType"], "input_required", "{v}");
        let (key, req) = v["result"]["inputRequests"]
            .as_object()
            .unwrap()
            .iter()
            .next()
            .unwrap();
        assert_eq!(req["method"], method);
        let state = v["result"]["requestState"].clone();

        let retry = json!({"jsonrpc":"2.0","id":"retry","method":"tools/call","params":{
            "name":"ask","arguments":{"kind":kind},"_meta":meta,
            "inputResponses":{key.clone(): answer},"requestState":state}});
        let r = Reply::from(
            request(&gw, "/mcp/old", &headers, &retry)
                .send()
                .await
                .unwrap(),
        )
        .await;
        let v = r.json();
        assert_eq!(v["id"], "retry", "{v}");
        let text = v["result"]["content"][0]["text"]
            .as_str()
            .unwrap_or_default();
        assert!(text.contains(expect), "{v}");

        // The same state cannot be used twice: the retry is a new call,
        // which asks again.
        let again = Reply::from(
            request(&gw, "/mcp/old", &headers, &retry)
                .send()
                .await
                .unwrap(),
        )
        .await;
        let v = again.json();
        assert_eq!(v["result"]["resultType"], "input_required", "{v}");
        assert_ne!(v["result"]["requestState"], state);
        gw.shutdown().await;
    }
}

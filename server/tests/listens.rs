//! `subscriptions/listen` streams of 2026-07-28 clients: each holds one of
//! its target's stream slots (`max_streams_per_target`), never a call slot,
//! and ends after `max_stream_lifetime`; on a 2026-07-28 backend (the
//! listen forwarded) and on a legacy one (served by the gateway).

#![allow(clippy::unwrap_used, missing_docs)]

mod common;

use std::time::{Duration, Instant};

use common::{Gateway, MODERN, demo_target, read_events};
use serde_json::{Value, json};

/// The two ways a listen is served: forwarded to a 2026-07-28 backend, or
/// served by the gateway for a legacy one.
const BACKENDS: [(&str, &str); 2] = [("modern", "era = \"modern\""), ("old", "era = \"legacy\"")];

async fn listen(gw: &Gateway, target: &str, id: &str) -> reqwest::Response {
    let body = json!({"jsonrpc":"2.0","id":id,"method":"subscriptions/listen","params":{
        "notifications":{"toolsListChanged":true},
        "_meta":{"io.modelcontextprotocol/protocolVersion":MODERN,"io.modelcontextprotocol/clientCapabilities":{}}}});
    gw.http
        .post(gw.url(&format!("/mcp/{target}")))
        .header("content-type", "application/json")
        .header("accept", "application/json, text/event-stream")
        .header("mcp-protocol-version", MODERN)
        .header("mcp-method", "subscriptions/listen")
        .body(body.to_string())
        .send()
        .await
        .unwrap()
}

/// A listen that was acknowledged.
async fn acknowledged(gw: &Gateway, target: &str, id: &str) -> reqwest::Response {
    let mut resp = listen(gw, target, id).await;
    assert_eq!(resp.status(), 200, "{target} {id}");
    let ack = read_events(&mut resp, |e| !e.is_empty()).await;
    assert_eq!(
        ack.first().map(|m| m["method"].clone()),
        Some(json!("notifications/subscriptions/acknowledged")),
        "{target} {id}: {ack:?}"
    );
    resp
}

async fn streams_open(gw: &Gateway, target: &str) -> u64 {
    let series = format!("mcpod_streams_open{{target=\"{target}\"}}");
    common::metric(gw, &series, None).await
}

async fn eventually_streams_open(gw: &Gateway, target: &str, want: u64) {
    let what = format!("{target}: {want} streams open");
    common::eventually(Duration::from_secs(10), &what, || async {
        (streams_open(gw, target).await == want).then_some(())
    })
    .await;
}

async fn echo(gw: &Gateway, target: &str, text: &str) -> common::Reply {
    gw.modern(
        target,
        json!(text),
        "tools/call",
        json!({"name":"echo","arguments":{"text":text}}),
    )
    .await
}

#[tokio::test]
async fn listens_take_stream_slots_and_leave_the_call_budget_alone() {
    for (target, era) in BACKENDS {
        let gw = Gateway::start(&format!(
            "[limits]\nmax_streams_per_target = 3\n{}",
            demo_target(target, &format!("{era}\nmax_calls_in_flight = 1"))
        ))
        .await;
        let mut open = Vec::new();
        for i in 0..3 {
            open.push(acknowledged(&gw, target, &format!("sub-{i}")).await);
        }
        assert_eq!(streams_open(&gw, target).await, 3, "{target}");

        // The target's one call slot is free for a call.
        let r = echo(&gw, target, "still served").await;
        assert_eq!(r.status, 200, "{target}: {r:?}");
        assert_eq!(r.text(), "still served", "{target}");

        // A fourth stream is refused, clearly and at once.
        let refused = listen(&gw, target, "sub-3").await;
        assert_eq!(refused.status(), 503, "{target}");
        assert_eq!(refused.headers()["retry-after"], "1", "{target}");
        let v: Value = serde_json::from_str(&refused.text().await.unwrap()).unwrap();
        assert_eq!(v["id"], "sub-3", "{target}: {v}");
        let message = v["error"]["message"].as_str().unwrap_or_default();
        assert!(message.contains("3 streams open"), "{target}: {v}");

        // A stream that closes frees its slot.
        drop(open.pop());
        eventually_streams_open(&gw, target, 2).await;
        open.push(acknowledged(&gw, target, "sub-4").await);
        drop(open);
        eventually_streams_open(&gw, target, 0).await;
        gw.shutdown().await;
    }
}

#[tokio::test]
async fn a_listen_ends_after_its_lifetime_and_frees_its_slot() {
    for (target, era) in BACKENDS {
        let gw = Gateway::start(&format!(
            "[limits]\nmax_stream_lifetime = \"300ms\"\n{}",
            demo_target(target, era)
        ))
        .await;
        let opened = Instant::now();
        let mut resp = acknowledged(&gw, target, "short").await;
        // Read to the end: the gateway ends the stream.
        let ended = tokio::time::timeout(Duration::from_secs(10), async {
            while resp.chunk().await.unwrap().is_some() {}
        })
        .await;
        assert!(ended.is_ok(), "{target}: the stream outlived its lifetime");
        let lived = opened.elapsed();
        assert!(lived >= Duration::from_millis(300), "{target}: {lived:?}");
        eventually_streams_open(&gw, target, 0).await;
        // And the client listens again.
        drop(acknowledged(&gw, target, "again").await);
        gw.shutdown().await;
    }
}

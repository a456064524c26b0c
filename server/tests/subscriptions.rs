//! Resource subscriptions of legacy sessions on a 2026-07-28 backend: the
//! gateway serves them with its own `subscriptions/listen`, widened or
//! narrowed per subscription. A subscribe (or unsubscribe) is answered
//! only once the backend acknowledged the new listen, so an update right
//! after the answer reaches the client (and one right after an
//! unsubscribe does not) even when the backend is slow to acknowledge.

#![allow(clippy::unwrap_used, missing_docs)]

mod common;

use std::time::Duration;

use common::{Gateway, call, read_events};
use serde_json::{Value, json};

/// A 2026-07-28 stdio backend that acknowledges a listen 300 ms late and,
/// as the specification asks, sends a subscription's notifications only
/// after its acknowledgement. Tool `touch` updates resource `uri`.
const SLOW_ACK_BACKEND: &str = r#"
import json, sys, threading, time
out = threading.Lock()
state = threading.Lock()
listens = {}
def send(m):
    with out:
        sys.stdout.write(json.dumps(m) + "\n")
        sys.stdout.flush()
def acknowledge(rid, wanted):
    # The slowness under test, not an ordering wait: the gateway must wait
    # for this acknowledgement however late it comes (its bound is 5 s).
    time.sleep(0.3)
    with state:
        listens[json.dumps(rid)] = (rid, wanted)
    send({"jsonrpc": "2.0", "method": "notifications/subscriptions/acknowledged",
          "params": {"notifications": wanted,
                     "_meta": {"io.modelcontextprotocol/subscriptionId": rid}}})
for line in sys.stdin:
    m = json.loads(line)
    method, rid, params = m.get("method"), m.get("id"), m.get("params") or {}
    if method == "server/discover":
        send({"jsonrpc": "2.0", "id": rid, "result": {
            "supportedVersions": ["2026-07-28"],
            "capabilities": {"tools": {}, "resources": {"subscribe": True}},
            "_meta": {"io.modelcontextprotocol/serverInfo": {"name": "slow-ack", "version": "1"}}}})
    elif method == "subscriptions/listen":
        threading.Thread(target=acknowledge, args=(rid, params["notifications"])).start()
    elif method == "notifications/cancelled":
        with state:
            listens.pop(json.dumps(params.get("requestId")), None)
    elif method == "tools/list":
        send({"jsonrpc": "2.0", "id": rid, "result": {"tools": [
            {"name": "touch", "inputSchema": {"type": "object"}}]}})
    elif method == "tools/call":
        uri = params["arguments"]["uri"]
        with state:
            open_now = list(listens.values())
        for lid, wanted in open_now:
            if uri in wanted.get("resourceSubscriptions", []):
                send({"jsonrpc": "2.0", "method": "notifications/resources/updated",
                      "params": {"uri": uri,
                                 "_meta": {"io.modelcontextprotocol/subscriptionId": lid}}})
        send({"jsonrpc": "2.0", "id": rid, "result": {
            "content": [{"type": "text", "text": "touched " + uri}]}})
    elif rid is not None:
        send({"jsonrpc": "2.0", "id": rid, "error": {"code": -32601, "message": "no " + str(method)}})
"#;

async fn slow_ack_gateway(dir: &std::path::Path) -> Gateway {
    let script = dir.join("slow_ack.py");
    std::fs::write(&script, SLOW_ACK_BACKEND).unwrap();
    Gateway::start(&format!(
        "[targets.slow]\ncommand = \"python3\"\nargs = [\"{}\"]\nera = \"modern\"\n",
        script.display()
    ))
    .await
}

/// The session's GET stream.
async fn get_stream(gw: &Gateway, sid: &str) -> reqwest::Response {
    let resp = gw
        .http
        .get(gw.url("/mcp/slow"))
        .header("mcp-session-id", sid)
        .header("mcp-protocol-version", "2025-06-18")
        .header("accept", "text/event-stream")
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), 200);
    resp
}

async fn request(gw: &Gateway, sid: &str, id: u64, method: &str, params: Value) {
    let r = gw
        .legacy(
            "slow",
            sid,
            json!({"jsonrpc":"2.0","id":id,"method":method,"params":params}),
        )
        .await;
    let answer = r.messages().into_iter().find(|m| m["id"] == json!(id));
    assert!(
        answer.as_ref().is_some_and(|a| a.get("result").is_some()),
        "{method}: {}",
        r.body
    );
}

async fn touch(gw: &Gateway, sid: &str, id: u64, uri: &str) {
    let r = gw
        .legacy("slow", sid, call(json!(id), "touch", json!({ "uri": uri })))
        .await;
    assert_eq!(r.text(), format!("touched {uri}"));
}

fn updated(events: &[Value]) -> Vec<String> {
    events
        .iter()
        .filter(|e| e["method"] == "notifications/resources/updated")
        .map(|e| e["params"]["uri"].as_str().unwrap_or_default().to_owned())
        .collect()
}

#[tokio::test(flavor = "multi_thread")]
async fn an_update_right_after_subscribe_reaches_the_session_on_a_slow_acknowledging_backend() {
    let dir = tempfile::tempdir().unwrap();
    let gw = slow_ack_gateway(dir.path()).await;
    let sid = gw.initialize("slow").await;
    let mut stream = get_stream(&gw, &sid).await;

    request(
        &gw,
        &sid,
        1,
        "resources/subscribe",
        json!({"uri": "test://a"}),
    )
    .await;
    touch(&gw, &sid, 2, "test://a").await;
    let events = tokio::time::timeout(
        Duration::from_secs(10),
        read_events(&mut stream, |e| !updated(e).is_empty()),
    )
    .await
    .expect("no notifications/resources/updated for test://a on the GET stream");
    assert_eq!(updated(&events), ["test://a"], "{events:?}");

    // Unsubscribed from a, subscribed to b: the next update the session
    // sees is b's, not a's (touched first).
    request(
        &gw,
        &sid,
        3,
        "resources/unsubscribe",
        json!({"uri": "test://a"}),
    )
    .await;
    request(
        &gw,
        &sid,
        4,
        "resources/subscribe",
        json!({"uri": "test://b"}),
    )
    .await;
    touch(&gw, &sid, 5, "test://a").await;
    touch(&gw, &sid, 6, "test://b").await;
    let events = tokio::time::timeout(
        Duration::from_secs(10),
        read_events(&mut stream, |e| !updated(e).is_empty()),
    )
    .await
    .expect("no notifications/resources/updated for test://b on the GET stream");
    assert_eq!(updated(&events), ["test://b"], "{events:?}");
    gw.shutdown().await;
}

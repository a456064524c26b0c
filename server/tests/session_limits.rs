//! `max_sessions_per_target` is reserved atomically: a burst of concurrent
//! `initialize`s on a `per_session` target starts no more backends than
//! the limit allows, and a 2024-11-05 SSE endpoint holds its session's
//! place from the moment it opens.

#![allow(clippy::unwrap_used, missing_docs)]

mod common;

use std::sync::Arc;
use std::time::{Duration, Instant};

use common::{DEMO, Gateway, read_events};
use serde_json::json;

/// A `per_session` target whose every backend start appends a line to
/// `starts`.
fn counted_target(starts: &std::path::Path) -> String {
    format!(
        "[limits]\nmax_sessions_per_target = 2\n\
         [targets.own]\ncommand = \"/bin/sh\"\n\
         args = [\"-c\", \"echo start >> '{}'; exec '{DEMO}' demo-server\"]\n\
         sharing = \"per_session\"\nera = \"legacy\"\n",
        starts.display()
    )
}

fn starts(path: &std::path::Path) -> usize {
    std::fs::read_to_string(path).map_or(0, |s| s.lines().count())
}

#[tokio::test]
async fn concurrent_initializes_start_no_more_backends_than_the_session_limit() {
    let dir = tempfile::tempdir().unwrap();
    let log = dir.path().join("starts");
    let gw = Arc::new(Gateway::start(&counted_target(&log)).await);
    let init = json!({"jsonrpc":"2.0","id":0,"method":"initialize","params":{
        "protocolVersion":"2025-06-18","capabilities":{},
        "clientInfo":{"name":"burst","version":"1"}}});
    let burst: Vec<_> = (0..24)
        .map(|_| {
            let gw = gw.clone();
            let init = init.clone();
            tokio::spawn(async move { gw.post("/mcp/own", &[], &init).await })
        })
        .collect();
    let (mut made, mut refused) = (0, 0);
    for r in burst {
        let r = r.await.unwrap();
        match r.status {
            200 => made += 1,
            503 => {
                assert_eq!(r.header("retry-after").as_deref(), Some("5"), "{r:?}");
                assert!(r.body.contains("2 sessions, its limit"), "{}", r.body);
                refused += 1;
            }
            other => panic!("{other}: {}", r.body),
        }
    }
    assert_eq!((made, refused), (2, 22));
    // Only the two sessions' backends ever started.
    assert_eq!(starts(&log), 2, "backends started for refused sessions");
}

#[tokio::test]
async fn an_sse_endpoint_holds_its_sessions_place_until_it_closes() {
    let dir = tempfile::tempdir().unwrap();
    let log = dir.path().join("starts");
    let gw = Gateway::start(&counted_target(&log)).await;
    let open = || async {
        gw.http
            .get(gw.url("/mcp/own/sse"))
            .header("accept", "text/event-stream")
            .send()
            .await
            .unwrap()
    };
    let mut first = open().await;
    assert_eq!(first.status(), 200);
    let second = open().await;
    assert_eq!(second.status(), 200);
    // Two endpoints hold the two places: a third endpoint and a Streamable
    // HTTP initialize are refused, no backend started.
    assert_eq!(open().await.status(), 503);
    let init = json!({"jsonrpc":"2.0","id":0,"method":"initialize","params":{
        "protocolVersion":"2025-06-18","capabilities":{},
        "clientInfo":{"name":"late","version":"1"}}});
    assert_eq!(gw.post("/mcp/own", &[], &init).await.status, 503);
    assert_eq!(starts(&log), 0);

    // The first endpoint's initialize takes its own place.
    let mut endpoint = String::new();
    let mut buf = String::new();
    while !buf.contains("sessionId=") {
        let chunk = tokio::time::timeout(Duration::from_secs(10), first.chunk())
            .await
            .unwrap()
            .unwrap()
            .unwrap();
        buf.push_str(std::str::from_utf8(&chunk).unwrap());
    }
    for line in buf.lines() {
        if let Some(d) = line.strip_prefix("data: ") {
            endpoint = d.to_owned();
        }
    }
    let r = gw
        .http
        .post(gw.url(&endpoint))
        .header("content-type", "application/json")
        .body(init.to_string())
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 202);
    let answer = read_events(&mut first, |e| !e.is_empty()).await;
    assert!(
        answer[0]["result"]["protocolVersion"].is_string(),
        "{answer:?}"
    );

    // Closing the second endpoint gives its place back.
    drop(second);
    let until = Instant::now() + Duration::from_secs(10);
    loop {
        let r = gw.post("/mcp/own", &[], &init).await;
        if r.status == 200 {
            break;
        }
        assert_eq!(r.status, 503, "{}", r.body);
        assert!(Instant::now() < until, "the closed endpoint kept its place");
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    assert_eq!(starts(&log), 2);
}

//! The robustness suite, short: a soak of both eras with every reply
//! checked, slow and silent connections while normal calls run, and a
//! randomized generator of malformed HTTP. `scripts/robustness.sh` runs the
//! long version against a release build (README, "Robustness").

#![allow(clippy::unwrap_used, missing_docs)]

mod common;

use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::Duration;

use common::{Gateway, demo_target};
use futures::StreamExt;
use proptest::prelude::*;
use proptest::strategy::ValueTree;
use proptest::test_runner::{Config as ProptestConfig, TestRunner};
use serde_json::{Value, json};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;
use tokio::time::Instant;

const BOUND: Duration = Duration::from_secs(20);

fn addr(gw: &Gateway) -> String {
    gw.base.trim_start_matches("http://").to_owned()
}

/// `n` calls of `echo` at concurrency `c`, half from legacy sessions and
/// half stateless, each with its own text and id; the replies that were
/// not exactly the call's own.
async fn soak(gw: &Gateway, n: usize, c: usize) -> Vec<String> {
    let sessions: Vec<String> = {
        let mut s = Vec::new();
        for _ in 0..c / 2 {
            s.push(gw.initialize("demo").await);
        }
        s
    };
    let sessions = Arc::new(sessions);
    futures::stream::iter(0..n)
        .map(|i| {
            let sessions = sessions.clone();
            async move {
                let text = format!("soak-{i}-{}", i.wrapping_mul(2_654_435_761) % 1_000_003);
                let args = json!({"text": text});
                let r = if i % 2 == 0 {
                    let sid = &sessions[(i / 2) % sessions.len()];
                    gw.legacy("demo", sid, common::call(json!(i), "echo", args))
                        .await
                } else {
                    gw.modern(
                        "demo",
                        json!(i),
                        "tools/call",
                        json!({"name":"echo","arguments":args}),
                    )
                    .await
                };
                let v = r.json();
                let ok = r.status == 200
                    && v["id"] == json!(i)
                    && v["result"]["content"][0]["text"] == json!(text);
                (!ok).then(|| format!("call {i}: {} {v}", r.status))
            }
        })
        .buffer_unordered(c)
        .filter_map(|bad| async move { bad })
        .collect()
        .await
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_soak_of_both_eras_loses_and_misroutes_nothing() {
    let gw = Gateway::start(&demo_target("demo", "")).await;
    let bad = soak(&gw, 10_000, 64).await;
    assert!(
        bad.is_empty(),
        "{} bad replies, e.g. {:?}",
        bad.len(),
        &bad[..bad.len().min(5)]
    );
    gw.shutdown().await;
}

/// Opens `n` connections that send nothing and `n` that send a whole head
/// promising a body, then one byte of it; how many the gateway closed
/// within `within`.
async fn abuse(addr: &str, n: usize, within: Duration) -> usize {
    let closed = Arc::new(AtomicUsize::new(0));
    let mut tasks = Vec::new();
    for i in 0..2 * n {
        let Ok(mut s) = TcpStream::connect(addr).await else {
            continue;
        };
        let closed = closed.clone();
        tasks.push(tokio::spawn(async move {
            if i % 2 == 1 {
                let _ = s
                    .write_all(
                        b"POST /mcp/demo HTTP/1.1\r\nHost: 127.0.0.1\r\n\
                          Content-Type: application/json\r\nContent-Length: 100000\r\n\r\n{",
                    )
                    .await;
            }
            let mut buf = [0u8; 512];
            let end = Instant::now() + within;
            loop {
                match tokio::time::timeout_at(end, s.read(&mut buf)).await {
                    Ok(Ok(0)) | Ok(Err(_)) => {
                        closed.fetch_add(1, Ordering::Relaxed);
                        return;
                    }
                    Ok(Ok(_)) => {}
                    Err(_) => return,
                }
            }
        }));
    }
    for t in tasks {
        let _ = t.await;
    }
    closed.load(Ordering::Relaxed)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn slow_and_silent_connections_are_closed_while_calls_go_on() {
    let gw = Gateway::start(&format!(
        "[limits]\nheader_read_timeout = \"1s\"\nbody_read_timeout = \"1s\"\n{}",
        demo_target("demo", "")
    ))
    .await;
    // Warm: the backend is up and the client's connections are open.
    assert!(soak(&gw, 64, 8).await.is_empty());
    let a = addr(&gw);
    let abusers = tokio::spawn(async move { abuse(&a, 500, Duration::from_secs(8)).await });
    let bad = soak(&gw, 2_000, 8).await;
    assert!(
        bad.is_empty(),
        "calls failed under abuse: {:?}",
        &bad[..bad.len().min(5)]
    );
    let closed = abusers.await.unwrap();
    assert_eq!(
        closed, 1000,
        "every slow and silent connection is closed by a timeout"
    );
    // The gauge comes back down to the client's own connections.
    let deadline = Instant::now() + BOUND;
    loop {
        let open = common::metric(&gw, "mcpod_connections", None).await;
        if open <= 16 {
            break;
        }
        assert!(Instant::now() < deadline, "{open} connections still open");
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    gw.shutdown().await;
}

/// One malformed (or merely odd) HTTP request, as bytes on the wire.
fn odd_request() -> impl Strategy<Value = Vec<u8>> {
    let method = prop::sample::select(vec![
        "POST", "GET", "DELETE", "PUT", "PATCH", "OPTIONS", "HEAD", "TRACE", "BREW", "post", "",
    ]);
    let path = prop::sample::select(vec![
        "/mcp/demo",
        "/mcp/demo/sse",
        "/mcp/demo/messages?sessionId=x",
        "/mcp/nope",
        "/bots/x/container/fs-mcp",
        "/healthz",
        "/%ff%fe",
        "*",
        "/mcp/demo?\u{0}",
        "",
    ]);
    let header = prop_oneof![
        Just("Content-Type: application/json".to_owned()),
        Just("Accept: application/json, text/event-stream".to_owned()),
        Just("MCP-Protocol-Version: 2026-07-28".to_owned()),
        Just("MCP-Protocol-Version: 1999-01-01".to_owned()),
        Just("Mcp-Session-Id: \u{7f}\u{1}".to_owned()),
        Just("Mcp-Method: tools/call".to_owned()),
        Just("Mcp-Name: =?base64?!!!?=".to_owned()),
        Just("Transfer-Encoding: chunked".to_owned()),
        Just("Transfer-Encoding: chunked, gzip".to_owned()),
        Just("Content-Length: 5".to_owned()),
        Just("Content-Length: -1".to_owned()),
        Just("Content-Length: 99999999999999999999".to_owned()),
        Just("Expect: 100-continue".to_owned()),
        Just(format!("X-Huge: {}", "a".repeat(70_000))),
        "[a-zA-Z-]{1,20}: [ -~]{0,40}".prop_map(|s| s),
    ];
    let body = prop_oneof![
        Just(Vec::new()),
        Just(br#"{"jsonrpc":"2.0","id":1,"method":"tools/list"}"#.to_vec()),
        Just(br#"[{"jsonrpc":"2.0","id":1,"method":"ping"}]"#.to_vec()),
        Just(b"5\r\nhello\r\n0\r\n\r\n".to_vec()),
        Just(b"ffffffffffffffff\r\nx".to_vec()),
        Just(b"zz\r\n".to_vec()),
        Just(vec![0xff, 0xfe, 0x00, b'{']),
        prop::collection::vec(any::<u8>(), 0..300),
    ];
    (
        method,
        path,
        prop::collection::vec(header, 0..6),
        body,
        any::<bool>(),
    )
        .prop_map(|(m, p, hs, body, truncate)| {
            let mut out = format!("{m} {p} HTTP/1.1\r\nHost: 127.0.0.1\r\n").into_bytes();
            for h in hs {
                out.extend_from_slice(h.as_bytes());
                out.extend_from_slice(b"\r\n");
            }
            out.extend_from_slice(b"\r\n");
            out.extend_from_slice(&body);
            if truncate && out.len() > 4 {
                out.truncate(out.len() / 2);
            }
            out
        })
}

/// Sends `request` and reads the first line of the answer: `Ok` when the
/// gateway answered with a proper status line, or closed the connection
/// without a word (a head it could not parse, a timeout), within the bound.
async fn answer_to(addr: &str, request: &[u8]) -> Result<(), String> {
    let mut s = TcpStream::connect(addr).await.map_err(|e| e.to_string())?;
    let _ = s.write_all(request).await;
    let mut out = Vec::new();
    let mut buf = [0u8; 1024];
    let read = tokio::time::timeout(Duration::from_secs(10), async {
        while !out.windows(2).any(|w| w == b"\r\n") {
            match s.read(&mut buf).await {
                Ok(0) | Err(_) => break,
                Ok(n) => out.extend_from_slice(&buf[..n]),
            }
        }
    })
    .await;
    if read.is_err() {
        return Err("no answer and not closed within 10 s".into());
    }
    if out.is_empty() {
        return Ok(());
    }
    let text = String::from_utf8_lossy(&out);
    let status = text
        .strip_prefix("HTTP/1.1 ")
        .and_then(|t| t.get(..3))
        .and_then(|c| c.parse::<u16>().ok());
    match status {
        Some(100..=599) => Ok(()),
        _ => Err(format!(
            "not an HTTP answer: {:?}",
            &text[..text.len().min(200)]
        )),
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn malformed_requests_get_a_status_or_a_close_and_never_a_hang() {
    let gw = Gateway::start(&format!(
        "[limits]\nheader_read_timeout = \"2s\"\nbody_read_timeout = \"2s\"\n{}",
        demo_target("demo", "")
    ))
    .await;
    let a = addr(&gw);
    let mut runner = TestRunner::new(ProptestConfig {
        cases: 300,
        failure_persistence: None,
        ..ProptestConfig::default()
    });
    let strategy = odd_request();
    let requests: Vec<Vec<u8>> = (0..300)
        .map(|_| strategy.new_tree(&mut runner).unwrap().current())
        .collect();
    let failures: Vec<(String, String)> = futures::stream::iter(requests)
        .map(|request| {
            let a = a.clone();
            async move {
                let e = answer_to(&a, &request).await.err()?;
                let shown = String::from_utf8_lossy(&request[..request.len().min(300)]);
                Some((shown.into_owned(), e))
            }
        })
        .buffer_unordered(32)
        .filter_map(|f| async move { f })
        .collect()
        .await;
    assert!(
        failures.is_empty(),
        "{} bad answers, e.g. {:#?}",
        failures.len(),
        &failures[..failures.len().min(3)]
    );
    // Still serving.
    let v: Value = gw
        .http
        .get(gw.url("/healthz"))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!(v["status"], "ok");
    assert!(soak(&gw, 50, 4).await.is_empty());
    gw.shutdown().await;
}

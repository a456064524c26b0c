//! Client connections under abuse: silent, slow and idle connections are
//! closed by their timeouts, a request in flight never is, and past the
//! connection limit new connections are answered 503 (health checks 200)
//! instead of exhausting the process.

#![allow(clippy::unwrap_used, missing_docs)]

mod common;

use std::time::Duration;

use common::{Gateway, demo_target};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;
use tokio::time::Instant;

/// Bound for any wait below: generous, since the machine is shared.
const BOUND: Duration = Duration::from_secs(10);

async fn gateway(limits: &str) -> Gateway {
    Gateway::start(&format!("[limits]\n{limits}\n{}", demo_target("demo", ""))).await
}

async fn connect(gw: &Gateway) -> TcpStream {
    TcpStream::connect(gw.base.trim_start_matches("http://"))
        .await
        .unwrap()
}

/// Reads until the peer closes; what it sent, and how long that took.
async fn read_to_close(stream: &mut TcpStream) -> (String, Duration) {
    let start = Instant::now();
    let mut out = Vec::new();
    let read = tokio::time::timeout(BOUND, async {
        let mut buf = [0u8; 4096];
        loop {
            match stream.read(&mut buf).await {
                Ok(0) | Err(_) => break,
                Ok(n) => out.extend_from_slice(&buf[..n]),
            }
        }
    })
    .await;
    assert!(
        read.is_ok(),
        "the gateway kept the connection open for {BOUND:?}"
    );
    (String::from_utf8_lossy(&out).into_owned(), start.elapsed())
}

/// One whole HTTP/1.1 request on `stream`, keep-alive; the response head
/// and body as text (read until the body's length is in).
async fn request(stream: &mut TcpStream, method: &str, path: &str, body: &str) -> String {
    let head = format!(
        "{method} {path} HTTP/1.1\r\nHost: 127.0.0.1\r\nContent-Type: application/json\r\n\
         Accept: application/json, text/event-stream\r\nContent-Length: {}\r\n\r\n{body}",
        body.len()
    );
    stream.write_all(head.as_bytes()).await.unwrap();
    let mut out = Vec::new();
    let mut buf = [0u8; 4096];
    tokio::time::timeout(BOUND, async {
        loop {
            let n = stream.read(&mut buf).await.unwrap();
            assert!(n > 0, "closed before the response was complete");
            out.extend_from_slice(&buf[..n]);
            let text = String::from_utf8_lossy(&out);
            if let Some(end) = text.find("\r\n\r\n") {
                let len: usize = text[..end]
                    .lines()
                    .find_map(|l| {
                        let (k, v) = l.split_once(':')?;
                        k.eq_ignore_ascii_case("content-length")
                            .then(|| v.trim().parse().ok())?
                    })
                    .unwrap_or(0);
                if out.len() >= end + 4 + len {
                    break;
                }
            }
        }
    })
    .await
    .unwrap();
    String::from_utf8_lossy(&out).into_owned()
}

#[tokio::test]
async fn a_silent_connection_is_closed_after_the_header_timeout() {
    let gw = gateway("header_read_timeout = \"300ms\"").await;
    let mut s = connect(&gw).await;
    let (sent, took) = read_to_close(&mut s).await;
    assert_eq!(
        sent, "",
        "nothing is answered to a connection that sent nothing"
    );
    assert!(
        took >= Duration::from_millis(250),
        "closed too early: {took:?}"
    );
    let metrics = gw.http.get(gw.url("/metrics")).send().await.unwrap();
    let text = metrics.text().await.unwrap();
    assert!(
        text.contains("mcpod_connections_timed_out_total{timeout=\"header\"} 1"),
        "{text}"
    );
    gw.shutdown().await;
}

#[tokio::test]
async fn a_head_that_never_completes_is_closed() {
    let gw = gateway("header_read_timeout = \"300ms\"").await;
    let mut s = connect(&gw).await;
    s.write_all(b"POST /mcp/demo HTTP/1.1\r\nHost: 127.0.0.1\r\nContent-Le")
        .await
        .unwrap();
    let (_, took) = read_to_close(&mut s).await;
    assert!(
        took >= Duration::from_millis(250),
        "closed too early: {took:?}"
    );
    gw.shutdown().await;
}

#[tokio::test]
async fn a_body_that_trickles_gets_408_and_the_connection_closes() {
    let gw = gateway("body_read_timeout = \"300ms\"").await;
    let mut s = connect(&gw).await;
    s.write_all(
        b"POST /mcp/demo HTTP/1.1\r\nHost: 127.0.0.1\r\nContent-Type: application/json\r\n\
          Accept: application/json, text/event-stream\r\nContent-Length: 100000\r\n\r\n{",
    )
    .await
    .unwrap();
    let (sent, took) = read_to_close(&mut s).await;
    assert!(sent.starts_with("HTTP/1.1 408"), "{sent}");
    assert!(sent.contains("did not arrive within 300 ms"), "{sent}");
    assert!(
        took >= Duration::from_millis(250),
        "answered too early: {took:?}"
    );
    gw.shutdown().await;
}

#[tokio::test]
async fn an_idle_keep_alive_connection_is_closed_and_a_busy_one_is_not() {
    let gw = gateway("idle_timeout = \"400ms\"\nsse_keep_alive = \"100ms\"").await;
    // Idle after one request: closed after the idle timeout.
    let mut idle = connect(&gw).await;
    let answer = request(&mut idle, "GET", "/healthz", "").await;
    assert!(answer.starts_with("HTTP/1.1 200"), "{answer}");
    let (_, took) = read_to_close(&mut idle).await;
    assert!(
        took >= Duration::from_millis(350),
        "closed too early: {took:?}"
    );

    // A legacy session's GET stream: in flight for as long as it lasts.
    let sid = gw.initialize("demo").await;
    let mut busy = connect(&gw).await;
    busy.write_all(
        format!(
            "GET /mcp/demo HTTP/1.1\r\nHost: 127.0.0.1\r\nAccept: text/event-stream\r\n\
             Mcp-Session-Id: {sid}\r\nMCP-Protocol-Version: 2025-11-25\r\n\r\n"
        )
        .as_bytes(),
    )
    .await
    .unwrap();
    // Keep-alive comments for five idle timeouts: the stream stays open.
    let until = Instant::now() + Duration::from_secs(2);
    let mut seen = Vec::new();
    let mut buf = [0u8; 1024];
    while Instant::now() < until {
        match tokio::time::timeout_at(until, busy.read(&mut buf)).await {
            Ok(Ok(0)) | Ok(Err(_)) => panic!(
                "the stream was closed after {} bytes: {}",
                seen.len(),
                String::from_utf8_lossy(&seen)
            ),
            Ok(Ok(n)) => seen.extend_from_slice(&buf[..n]),
            Err(_) => break,
        }
    }
    let text = String::from_utf8_lossy(&seen);
    assert!(text.starts_with("HTTP/1.1 200"), "{text}");
    assert!(text.matches("keep-alive").count() >= 5, "{text}");
    let metrics = gw.http.get(gw.url("/metrics")).send().await.unwrap();
    let text = metrics.text().await.unwrap();
    // The raw idle connection, and the HTTP client's pooled one too.
    let idled: u64 = text
        .lines()
        .find_map(|l| l.strip_prefix("mcpod_connections_timed_out_total{timeout=\"idle\"} "))
        .and_then(|v| v.parse().ok())
        .unwrap();
    assert!(idled >= 1, "{text}");
    gw.shutdown().await;
}

#[tokio::test]
async fn past_the_connection_limit_calls_get_503_and_health_checks_200() {
    let gw = gateway("max_connections = 3\nheader_read_timeout = \"30s\"").await;
    // Three silent connections take every place (accepted in the order
    // they connected, before any below).
    let hogs = [connect(&gw).await, connect(&gw).await, connect(&gw).await];
    let mut s = connect(&gw).await;
    let call = request(
        &mut s,
        "POST",
        "/mcp/demo",
        r#"{"jsonrpc":"2.0","id":1,"method":"tools/list","params":{"_meta":{"io.modelcontextprotocol/protocolVersion":"2026-07-28","io.modelcontextprotocol/clientCapabilities":{}}}}"#,
    )
    .await;
    assert!(call.starts_with("HTTP/1.1 503"), "{call}");
    assert!(
        call.to_ascii_lowercase().contains("retry-after: 1"),
        "{call}"
    );
    assert!(call.contains("limit of 3 connections"), "{call}");
    let mut s = connect(&gw).await;
    let health = request(&mut s, "GET", "/healthz", "").await;
    assert!(health.starts_with("HTTP/1.1 200"), "{health}");
    assert!(health.contains(r#"{"status":"ok"}"#), "{health}");
    // The places come back when the connections close.
    drop(hogs);
    let deadline = Instant::now() + BOUND;
    let text = loop {
        let r = gw.http.get(gw.url("/metrics")).send().await.unwrap();
        if r.status() == 200 {
            break r.text().await.unwrap();
        }
        assert!(Instant::now() < deadline, "no place came back");
    };
    let refused: u64 = text
        .lines()
        .find_map(|l| l.strip_prefix("mcpod_connections_refused_total "))
        .and_then(|v| v.parse().ok())
        .unwrap();
    assert!(refused >= 2, "{text}");
    gw.shutdown().await;
}

//! Bearer auth, Origin allow-list, Host/authority checks (HTTP/1.1 on the
//! wire, and HTTP/2 with prior knowledge), CORS for allowed Origins.

#![allow(clippy::unwrap_used, missing_docs)]

mod common;

use std::net::SocketAddr;
use std::time::Duration;

use bytes::Bytes;
use common::{Gateway, TOKEN, demo_target};
use http_body_util::{BodyExt, Full};
use hyper_util::rt::{TokioExecutor, TokioIo};
use serde_json::json;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;

const PING: &str = r#"{"jsonrpc":"2.0","id":1,"method":"initialize","params":{"protocolVersion":"2025-06-18","capabilities":{},"clientInfo":{"name":"t","version":"1"}}}"#;

async fn post(gw: &Gateway, path: &str, extra: &[(&str, &str)]) -> common::Reply {
    let mut headers = vec![("content-type", "application/json")];
    headers.extend_from_slice(extra);
    gw.post_raw(path, &headers, PING).await
}

#[tokio::test]
async fn bearer_tokens_global_and_per_target() {
    let gw = Gateway::start(&format!(
        "[auth]\ntokens = [\"{TOKEN}\"]\n{}{}",
        demo_target("demo", ""),
        demo_target("private", "tokens = [\"private-token-0123456789\"]"),
    ))
    .await;
    let good = format!("Bearer {TOKEN}");
    let r = post(&gw, "/mcp/demo", &[]).await;
    assert_eq!(r.status, 401);
    assert_eq!(
        r.header("www-authenticate").as_deref(),
        Some("Bearer realm=\"mcpod\"")
    );
    assert_eq!(r.code(), Some(-32000));
    let r = post(
        &gw,
        "/mcp/demo",
        &[("authorization", "Bearer wrong-token-xxxxxxxxxx")],
    )
    .await;
    assert_eq!(r.status, 401);
    assert!(
        r.header("www-authenticate")
            .unwrap()
            .contains("invalid_token")
    );
    let r = post(&gw, "/mcp/demo", &[("authorization", &good)]).await;
    assert_eq!(r.status, 200, "{}", r.body);

    // A target with its own tokens takes only those.
    let r = post(&gw, "/mcp/private", &[("authorization", &good)]).await;
    assert_eq!(r.status, 401);
    let r = post(
        &gw,
        "/mcp/private",
        &[("authorization", "Bearer private-token-0123456789")],
    )
    .await;
    assert_eq!(r.status, 200);

    // Unknown targets are not revealed without a token.
    let r = post(&gw, "/mcp/nope", &[]).await;
    assert_eq!(r.status, 401);
    let r = post(&gw, "/mcp/nope", &[("authorization", &good)]).await;
    assert_eq!(r.status, 404);

    // Health is open; metrics need the token.
    let h = gw.http.get(gw.url("/healthz")).send().await.unwrap();
    assert_eq!(h.status(), 200);
    let m = gw.http.get(gw.url("/metrics")).send().await.unwrap();
    assert_eq!(m.status(), 401);
    let m = gw
        .http
        .get(gw.url("/metrics"))
        .bearer_auth(TOKEN)
        .send()
        .await
        .unwrap();
    assert_eq!(m.status(), 200);
    let text = m.text().await.unwrap();
    assert!(
        text.contains(
            "mcpod_requests_total{target=\"demo\",method=\"other\",outcome=\"unauthorized\"} 2"
        ),
        "{text}"
    );
    assert!(text.contains(
        "mcpod_request_duration_seconds_bucket{target=\"demo\",method=\"initialize\",le=\"+Inf\"}"
    ));
    gw.shutdown().await;
}

#[tokio::test]
async fn origin_and_host_checks() {
    let gw = Gateway::start(&format!(
        "allowed_origins = [\"https://app.example.com\"]\nallowed_hosts = [\"gw.internal\"]\n{}",
        demo_target("demo", "")
    ))
    .await;
    let r = post(&gw, "/mcp/demo", &[("origin", "https://evil.example")]).await;
    assert_eq!(r.status, 403);
    assert_eq!(r.code(), Some(-32000));
    for ok in [
        "https://app.example.com",
        "http://localhost:5173",
        "http://127.0.0.1:3000",
    ] {
        let r = post(&gw, "/mcp/demo", &[("origin", ok)]).await;
        assert_eq!(r.status, 200, "{ok}: {}", r.body);
    }
    // DNS rebinding: a loopback listener reached under a foreign name.
    let r = post(&gw, "/mcp/demo", &[("host", "evil.example:8080")]).await;
    assert_eq!(r.status, 403);
    let r = post(&gw, "/mcp/demo", &[("host", "gw.internal:8080")]).await;
    assert_eq!(r.status, 200);
    // Every route is guarded, ops included.
    let h = gw
        .http
        .get(gw.url("/healthz"))
        .header("host", "evil.example")
        .send()
        .await
        .unwrap();
    assert_eq!(h.status(), 403);
    gw.shutdown().await;
}

#[tokio::test]
async fn readyz_reports_targets() {
    let gw = Gateway::start(&format!(
        "{}{}",
        demo_target("demo", ""),
        demo_target("own", "sharing = \"per_session\"")
    ))
    .await;
    // Ready once the backend started at launch has done its handshake.
    let v = readyz_until(&gw, None, |v| v["ready"] == true).await;
    assert_eq!(v["ready"], true);
    assert_eq!(v["targets"]["demo"]["ready"], true);
    assert_eq!(v["targets"]["demo"]["era"], "modern");
    assert_eq!(v["targets"]["own"]["sharing"], "per_session");

    // A backend that has stopped (here: crashed) is reported idle and is not
    // restarted by the probe; the next call restarts it.
    let c = gw
        .modern(
            "demo",
            json!(1),
            "tools/call",
            json!({"name": "crash", "arguments": {}}),
        )
        .await;
    assert_eq!(c.code(), Some(-32000), "{}", c.body);
    let mut idle = serde_json::Value::Null;
    for _ in 0..50 {
        let v: serde_json::Value = gw
            .http
            .get(gw.url("/readyz"))
            .send()
            .await
            .unwrap()
            .json()
            .await
            .unwrap();
        if v["targets"]["demo"]["idle"] == true {
            idle = v;
            break;
        }
        tokio::time::sleep(std::time::Duration::from_millis(100)).await;
    }
    assert_eq!(idle["ready"], true, "{idle}");
    assert_eq!(
        idle["targets"]["demo"]["alive"], false,
        "the probe started the backend: {idle}"
    );
    assert_eq!(idle["targets"]["demo"]["restarts"], 0);
    let c = gw.modern("demo", json!(2), "tools/list", json!({})).await;
    assert_eq!(c.status, 200, "{}", c.body);
    let v: serde_json::Value = gw
        .http
        .get(gw.url("/readyz"))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!(v["targets"]["demo"]["restarts"], 1, "{v}");
    assert_eq!(v["targets"]["demo"]["idle"], false, "{v}");

    let broken = Gateway::start("[targets.gone]\ncommand = \"/nonexistent/mcp-server\"\n").await;
    let r = broken.http.get(broken.url("/readyz")).send().await.unwrap();
    assert_eq!(r.status(), 503);
    let v: serde_json::Value = r.json().await.unwrap();
    assert_eq!(v["targets"]["gone"]["ready"], false);
    // Auth is off: everyone gets the detail, the start error among it.
    let v = readyz_until(&broken, None, |v| !v["targets"]["gone"]["error"].is_null()).await;
    let error = v["targets"]["gone"]["error"].as_str().unwrap();
    assert!(error.contains("/nonexistent/mcp-server"), "{error}");
    // A call to it fails cleanly with 502 and a JSON-RPC error.
    let c = broken
        .modern("gone", json!(1), "tools/list", json!({}))
        .await;
    assert_eq!((c.status, c.code()), (502, Some(-32603)), "{}", c.body);
    broken.shutdown().await;
    gw.shutdown().await;
}

fn addr(gw: &Gateway) -> SocketAddr {
    gw.server.as_ref().unwrap().addr()
}

/// One HTTP/1.1 request as written on the wire: `head` is the request
/// line and any headers; the body is `PING`. The status and the body.
async fn wire(gw: &Gateway, head: &str) -> (u16, String) {
    let mut s = TcpStream::connect(addr(gw)).await.unwrap();
    let request = format!(
        "{head}Content-Type: application/json\r\nAccept: application/json, text/event-stream\r\n\
         Content-Length: {}\r\nConnection: close\r\n\r\n{PING}",
        PING.len()
    );
    s.write_all(request.as_bytes()).await.unwrap();
    let mut out = Vec::new();
    tokio::time::timeout(Duration::from_secs(20), s.read_to_end(&mut out))
        .await
        .unwrap()
        .unwrap();
    let text = String::from_utf8_lossy(&out).into_owned();
    let status = text
        .split(' ')
        .nth(1)
        .and_then(|s| s.parse().ok())
        .unwrap_or_else(|| panic!("no status line: {text:?}"));
    let body = text.split_once("\r\n\r\n").map_or("", |(_, b)| b);
    (status, body.to_owned())
}

#[tokio::test]
async fn the_target_authority_wins_and_host_must_be_one() {
    let gw = Gateway::demo().await;
    let port = addr(&gw).port();
    let ok = wire(
        &gw,
        &format!("POST /mcp/demo HTTP/1.1\r\nHost: 127.0.0.1:{port}\r\n"),
    )
    .await;
    assert_eq!(ok.0, 200, "{}", ok.1);
    // Absolute form: the target's authority is the one addressed (RFC 9112
    // §3.2.2), whatever Host says.
    let r = wire(
        &gw,
        "POST http://evil.example/mcp/demo HTTP/1.1\r\nHost: 127.0.0.1\r\n",
    )
    .await;
    assert_eq!(r.0, 403, "{}", r.1);
    assert!(r.1.contains("evil.example"), "{}", r.1);
    let r = wire(
        &gw,
        &format!("POST http://localhost:{port}/mcp/demo HTTP/1.1\r\nHost: evil.example\r\n"),
    )
    .await;
    assert_eq!(r.0, 200, "{}", r.1);
    // No Host on HTTP/1.1, two of them, or a malformed one: 400 that says so.
    let r = wire(&gw, "POST /mcp/demo HTTP/1.1\r\n").await;
    assert_eq!(r.0, 400, "{}", r.1);
    assert!(r.1.contains("needs a Host header"), "{}", r.1);
    let r = wire(
        &gw,
        "POST /mcp/demo HTTP/1.1\r\nHost: 127.0.0.1\r\nHost: evil.example\r\n",
    )
    .await;
    assert_eq!(r.0, 400, "{}", r.1);
    assert!(r.1.contains("more than one Host"), "{}", r.1);
    let r = wire(&gw, "POST /mcp/demo HTTP/1.1\r\nHost: a@127.0.0.1\r\n").await;
    assert_eq!(r.0, 400, "{}", r.1);
    // HTTP/1.0 has no Host to require: nothing to rebind.
    let r = wire(&gw, "POST /mcp/demo HTTP/1.0\r\n").await;
    assert_eq!(r.0, 200, "{}", r.1);
    gw.shutdown().await;
}

/// A POST over HTTP/2 with prior knowledge to `uri` (its authority goes
/// out as `:authority`, whatever address the connection went to).
async fn h2_post(
    to: SocketAddr,
    uri: &str,
    extra: &[(&str, &str)],
) -> Result<(u16, String), Box<dyn std::error::Error>> {
    let tcp = TcpStream::connect(to).await?;
    let (mut send, conn) =
        hyper::client::conn::http2::handshake(TokioExecutor::new(), TokioIo::new(tcp)).await?;
    tokio::spawn(conn);
    let mut request = http::Request::post(uri)
        .header("content-type", "application/json")
        .header("accept", "application/json, text/event-stream");
    for (k, v) in extra {
        request = request.header(*k, *v);
    }
    let request = request.body(Full::new(Bytes::from_static(PING.as_bytes())))?;
    let response =
        tokio::time::timeout(Duration::from_secs(20), send.send_request(request)).await??;
    let status = response.status().as_u16();
    let body = response.into_body().collect().await?.to_bytes();
    Ok((status, String::from_utf8_lossy(&body).into_owned()))
}

#[tokio::test]
async fn h2c_authority_is_checked_and_h2c_can_be_turned_off() {
    let gw = Gateway::demo().await;
    let to = addr(&gw);
    let r = h2_post(to, &format!("http://127.0.0.1:{}/mcp/demo", to.port()), &[])
        .await
        .unwrap();
    assert_eq!(r.0, 200, "{}", r.1);
    // DNS rebinding over h2c: a foreign name in `:authority`.
    let r = h2_post(to, "http://evil.example/mcp/demo", &[])
        .await
        .unwrap();
    assert_eq!(r.0, 403, "{}", r.1);
    assert!(r.1.contains("evil.example"), "{}", r.1);
    // A Host that names another host than `:authority`: malformed.
    let r = h2_post(
        to,
        &format!("http://127.0.0.1:{}/mcp/demo", to.port()),
        &[("host", "evil.example")],
    )
    .await
    .unwrap();
    assert_eq!(r.0, 400, "{}", r.1);
    gw.shutdown().await;

    let gw = Gateway::start(&format!("http2 = false\n{}", demo_target("demo", ""))).await;
    let to = addr(&gw);
    let r = h2_post(to, &format!("http://127.0.0.1:{}/mcp/demo", to.port()), &[]).await;
    assert!(r.is_err(), "h2c still served: {r:?}");
    let ok = gw
        .post_raw("/mcp/demo", &[("content-type", "application/json")], PING)
        .await;
    assert_eq!(ok.status, 200, "HTTP/1.1 still works: {}", ok.body);
    gw.shutdown().await;
}

const APP: &str = "https://inspector.example";

async fn preflight(gw: &Gateway, path: &str, origin: &str) -> reqwest::Response {
    gw.http
        .request(reqwest::Method::OPTIONS, gw.url(path))
        .header("origin", origin)
        .header("access-control-request-method", "POST")
        .header(
            "access-control-request-headers",
            "content-type, authorization, mcp-session-id, mcp-param-region",
        )
        .send()
        .await
        .unwrap()
}

fn header<'a>(r: &'a reqwest::Response, name: &str) -> Option<&'a str> {
    r.headers().get(name).map(|v| v.to_str().unwrap())
}

#[tokio::test]
async fn cors_preflights_and_responses_for_allowed_origins_only() {
    let gw = Gateway::start(&format!(
        "allowed_origins = [\"{APP}\"]\n[auth]\ntokens = [\"{TOKEN}\"]\n{}",
        demo_target("demo", "")
    ))
    .await;
    // A preflight needs no token, and says the same for every target name.
    for path in ["/mcp/demo", "/mcp/no-such-target", "/mcp/demo/sse"] {
        let r = preflight(&gw, path, APP).await;
        assert_eq!(r.status(), 204, "{path}");
        assert_eq!(header(&r, "access-control-allow-origin"), Some(APP));
        let methods = header(&r, "access-control-allow-methods").unwrap();
        assert!(
            methods.contains("POST") && methods.contains("DELETE"),
            "{methods}"
        );
        let allowed = header(&r, "access-control-allow-headers")
            .unwrap()
            .to_ascii_lowercase();
        for h in [
            "content-type",
            "authorization",
            "mcp-session-id",
            "mcp-protocol-version",
            "last-event-id",
            "mcp-param-region",
        ] {
            assert!(allowed.contains(h), "{h} in {allowed}");
        }
        assert!(header(&r, "access-control-max-age").is_some());
        assert!(header(&r, "vary").unwrap().contains("Origin"));
        assert!(header(&r, "access-control-allow-credentials").is_none());
        assert!(r.text().await.unwrap().is_empty());
    }
    // A loopback origin is allowed on a loopback listener (the Inspector run
    // locally).
    let r = preflight(&gw, "/mcp/demo", "http://localhost:6274").await;
    assert_eq!(r.status(), 204);
    // A foreign Origin: refused as before, with nothing for CORS.
    let r = preflight(&gw, "/mcp/demo", "https://evil.example").await;
    assert_eq!(r.status(), 403);
    assert!(header(&r, "access-control-allow-origin").is_none());
    // Not the MCP routes: no preflight answered.
    let r = preflight(&gw, "/metrics", APP).await;
    assert_eq!(r.status(), 405);
    assert!(header(&r, "access-control-allow-origin").is_none());

    // The actual request: the browser may read the session id.
    let good = format!("Bearer {TOKEN}");
    let r = post(
        &gw,
        "/mcp/demo",
        &[("origin", APP), ("authorization", &good)],
    )
    .await;
    assert_eq!(r.status, 200, "{}", r.body);
    assert!(r.header("mcp-session-id").is_some());
    assert_eq!(
        r.header("access-control-allow-origin").as_deref(),
        Some(APP)
    );
    let exposed = r.header("access-control-expose-headers").unwrap();
    assert!(exposed.contains("Mcp-Session-Id"), "{exposed}");
    assert!(r.header("vary").unwrap().contains("Origin"));
    // ...and the challenge of a refusal.
    let r = post(&gw, "/mcp/demo", &[("origin", APP)]).await;
    assert_eq!(r.status, 401);
    assert_eq!(
        r.header("access-control-allow-origin").as_deref(),
        Some(APP)
    );
    assert!(
        r.header("access-control-expose-headers")
            .unwrap()
            .contains("WWW-Authenticate")
    );
    // No Origin (not a browser): no CORS headers.
    let r = post(&gw, "/mcp/demo", &[("authorization", &good)]).await;
    assert_eq!(r.status, 200);
    assert!(r.header("access-control-allow-origin").is_none());
    gw.shutdown().await;
}

/// `/readyz` (with `token`, if any) until `done` holds for its body.
async fn readyz_until(
    gw: &Gateway,
    token: Option<&str>,
    done: impl Fn(&serde_json::Value) -> bool,
) -> serde_json::Value {
    let mut last = serde_json::Value::Null;
    for _ in 0..200 {
        let mut req = gw.http.get(gw.url("/readyz"));
        if let Some(t) = token {
            req = req.bearer_auth(t);
        }
        last = req.send().await.unwrap().json().await.unwrap();
        if done(&last) {
            return last;
        }
        tokio::time::sleep(std::time::Duration::from_millis(50)).await;
    }
    panic!("/readyz never got there: {last}");
}

async fn readyz(gw: &Gateway, token: Option<&str>) -> (u16, String) {
    let mut req = gw.http.get(gw.url("/readyz"));
    if let Some(t) = token {
        req = req.bearer_auth(t);
    }
    let r = req.send().await.unwrap();
    (r.status().as_u16(), r.text().await.unwrap())
}

#[tokio::test]
async fn readyz_tells_anonymous_callers_only_ready_or_not_and_starts_nothing() {
    let dir = tempfile::tempdir().unwrap();
    let starts = dir.path().join("starts");
    let gw = Gateway::start(&format!(
        "[auth]\ntokens = [\"{TOKEN}\"]\n{}{}\
         [targets.flaky]\ncommand = \"/bin/sh\"\n\
         args = [\"-c\", 'echo started >> \"$0\"; exit 1', \"{}\"]\n\
         restart_backoff_min = \"1ms\"\nrestart_backoff_max = \"1ms\"\n\
         [bots.bot1]\ntarget = \"demo\"\ntokens = [\"bot1-only-token-0123456789\"]\n",
        demo_target("demo", ""),
        demo_target("private", "tokens = [\"private-token-0123456789\"]"),
        starts.display()
    ))
    .await;
    let count = || {
        std::fs::read_to_string(&starts)
            .unwrap_or_default()
            .lines()
            .count()
    };
    // The gateway's own start of `flaky` has run and failed.
    let v = readyz_until(&gw, Some(TOKEN), |v| {
        v["targets"]["demo"]["ready"] == true && !v["targets"]["flaky"]["error"].is_null()
    })
    .await;
    assert_eq!(v["targets"]["flaky"]["ready"], false, "{v}");
    let before = count();
    assert!(before >= 1);

    let mut answers = Vec::new();
    for token in [
        None,
        Some("wrong-token-0123456789abc"),
        Some("bot1-only-token-0123456789"),
        Some("private-token-0123456789"),
    ] {
        for _ in 0..5 {
            answers.push((token, readyz(&gw, token).await));
        }
    }
    // With the global token: the detail.
    let (status, body) = readyz(&gw, Some(TOKEN)).await;
    assert_eq!(count(), before, "a /readyz started a backend");
    assert_eq!(status, 503);
    let v: serde_json::Value = serde_json::from_str(&body).unwrap();
    assert_eq!(v["targets"]["demo"]["ready"], true, "{v}");
    assert!(v["targets"]["private"].is_object(), "{v}");
    for (token, (status, body)) in answers {
        assert_eq!(status, 503, "{token:?}: {body}");
        assert_eq!(body, r#"{"ready":false}"#, "{token:?}");
    }
    gw.shutdown().await;

    // All ready: 200, and still only that to anonymous callers.
    let gw = Gateway::start(&format!(
        "[auth]\ntokens = [\"{TOKEN}\"]\n{}",
        demo_target("demo", "")
    ))
    .await;
    readyz_until(&gw, Some(TOKEN), |v| v["ready"] == true).await;
    assert_eq!(
        readyz(&gw, None).await,
        (200, r#"{"ready":true}"#.to_owned())
    );
    gw.shutdown().await;
}

/// Answers `initialize` with an error that names a database URL with its
/// password, as a backend that cannot reach its database does.
const LEAKY_BACKEND: &str = r#"read line; id=$(printf %s "$line" | sed 's/.*"id":\([0-9]*\).*/\1/'); printf '{"jsonrpc":"2.0","id":%s,"error":{"code":-32603,"message":"cannot connect to postgres://admin:hunter2@db.internal:5432/prod?sslmode=require&password=hunter2"}}\n' "$id"; cat >/dev/null"#;

#[tokio::test]
async fn readyz_detail_needs_the_global_token_and_hides_credentials() {
    let gw = Gateway::start(&format!(
        "[auth]\ntokens = [\"{TOKEN}\"]\n[targets.pg]\ncommand = \"/bin/sh\"\nargs = [\"-c\", '''{LEAKY_BACKEND}''']\nera = \"legacy\"\n"
    ))
    .await;
    let v = readyz_until(&gw, Some(TOKEN), |v| !v["targets"]["pg"]["error"].is_null()).await;
    let error = v["targets"]["pg"]["error"].as_str().unwrap();
    assert!(!error.contains("hunter2"), "{error}");
    assert!(
        error.contains("initialize failed: cannot connect to postgres://…@db.internal:5432/prod"),
        "{error}"
    );
    assert!(error.contains("&password=…"), "{error}");
    let (status, body) = readyz(&gw, None).await;
    assert_eq!((status, body.as_str()), (503, r#"{"ready":false}"#));
    gw.shutdown().await;
}

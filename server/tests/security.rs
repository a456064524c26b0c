//! Bearer auth, Origin allow-list and Host checks.

#![allow(clippy::unwrap_used, missing_docs)]

mod common;

use common::{Gateway, TOKEN, demo_target};
use serde_json::json;

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

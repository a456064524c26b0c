//! What one client may do to another's requests: ids in flight are unique
//! per legacy session, so a cancellation names exactly one call.

#![allow(clippy::unwrap_used, missing_docs)]

mod common;

use std::sync::Arc;
use std::time::Duration;

use common::{Gateway, call, demo_target, eventually, stats};

/// How long a test waits for a condition.
const WAIT: Duration = Duration::from_secs(10);
use serde_json::json;

#[tokio::test]
async fn a_second_request_with_an_id_in_flight_is_refused_and_a_cancel_names_the_first() {
    let gw = Arc::new(Gateway::start(&demo_target("demo", "era = \"legacy\"")).await);
    let sid = gw.initialize("demo").await;
    let first = {
        let (gw, sid) = (gw.clone(), sid.clone());
        tokio::spawn(async move {
            gw.legacy("demo", &sid, call(json!(7), "sleep", json!({"ms": 20_000})))
                .await
        })
    };
    // Wait until the first call is with the backend.
    eventually(WAIT, "the first call reaches the backend", || async {
        (stats(&gw, "demo").await["in_flight"].as_u64().unwrap_or(0) > 0).then_some(())
    })
    .await;
    // The same id again, in the same session: -32600, and nothing sent.
    let second = gw
        .legacy(
            "demo",
            &sid,
            call(json!(7), "echo", json!({"text": "twin"})),
        )
        .await;
    assert_eq!(second.status, 400, "{}", second.body);
    assert_eq!(second.code(), Some(-32600), "{}", second.body);
    assert_eq!(second.json()["id"], 7);
    assert!(second.body.contains("already in use"), "{}", second.body);
    // Another session may use id 7 at the same time.
    let other = gw.initialize("demo").await;
    let r = gw
        .legacy(
            "demo",
            &other,
            call(json!(7), "echo", json!({"text": "mine"})),
        )
        .await;
    assert_eq!(r.text(), "mine");
    // The cancellation names the first call, which ends at once.
    let cancel = gw
        .legacy(
            "demo",
            &sid,
            json!({"jsonrpc":"2.0","method":"notifications/cancelled","params":{"requestId":7}}),
        )
        .await;
    assert_eq!(cancel.status, 202);
    let ended = tokio::time::timeout(Duration::from_secs(10), first)
        .await
        .expect("the cancelled call did not end")
        .unwrap();
    assert_eq!(ended.json()["id"], 7, "{}", ended.body);
    assert!(ended.json()["error"].is_object(), "{}", ended.body);
    // Id 7 is free again.
    let again = gw
        .legacy(
            "demo",
            &sid,
            call(json!(7), "echo", json!({"text": "free"})),
        )
        .await;
    assert_eq!(again.text(), "free");
}

const G: &str = "token-of-principal-g-0123456789";
const E: &str = "token-of-principal-e-0123456789";

/// A gateway with two global tokens and a legacy-only demo backend (its
/// sampling becomes `input_required` for 2026-07-28 clients).
async fn two_principals(extra_limits: &str) -> Gateway {
    Gateway::start(&format!(
        "[auth]\ntokens = [\"{G}\", \"{E}\"]\n[limits]\n{extra_limits}\n[targets.demo]\n\
         command = \"{}\"\nargs = [\"demo-server\", \"--legacy-only\"]\nera = \"legacy\"\n",
        common::DEMO
    ))
    .await
}

fn bearer(token: &str) -> String {
    format!("Bearer {token}")
}

async fn initialize_as(gw: &Gateway, token: &str) -> common::Reply {
    let auth = bearer(token);
    gw.post(
        "/mcp/demo",
        &[("authorization", &auth)],
        &json!({"jsonrpc":"2.0","id":0,"method":"initialize","params":{
            "protocolVersion":"2025-06-18","capabilities":{},
            "clientInfo":{"name":"principal","version":"1"}}}),
    )
    .await
}

#[tokio::test]
async fn a_session_is_its_makers_alone() {
    let gw = two_principals("").await;
    let made = initialize_as(&gw, G).await;
    assert_eq!(made.status, 200, "{}", made.body);
    let sid = made.header("mcp-session-id").unwrap();
    let (g, e) = (bearer(G), bearer(E));
    let echo = call(json!(1), "echo", json!({"text": "mine"}));
    // Its maker uses it.
    let r = gw
        .post(
            "/mcp/demo",
            &[("authorization", &g), ("mcp-session-id", &sid)],
            &echo,
        )
        .await;
    assert_eq!(r.text(), "mine");
    // To another token it does not exist: POST, GET and DELETE get 404.
    let r = gw
        .post(
            "/mcp/demo",
            &[("authorization", &e), ("mcp-session-id", &sid)],
            &echo,
        )
        .await;
    assert_eq!(r.status, 404, "{}", r.body);
    for method in [reqwest::Method::GET, reqwest::Method::DELETE] {
        let r = gw
            .http
            .request(method.clone(), gw.url("/mcp/demo"))
            .header("authorization", &e)
            .header("mcp-session-id", &sid)
            .header("accept", "text/event-stream")
            .send()
            .await
            .unwrap();
        assert_eq!(r.status(), 404, "{method}");
    }
    // It survived the foreign DELETE.
    let r = gw
        .post(
            "/mcp/demo",
            &[("authorization", &g), ("mcp-session-id", &sid)],
            &echo,
        )
        .await;
    assert_eq!(r.text(), "mine");
    gw.shutdown().await;
}

#[tokio::test]
async fn one_token_cannot_take_every_session_of_a_target() {
    let gw = two_principals("max_sessions_per_target = 4\nmax_sessions_per_principal = 2").await;
    for _ in 0..2 {
        assert_eq!(initialize_as(&gw, G).await.status, 200);
    }
    let third = initialize_as(&gw, G).await;
    assert_eq!(third.status, 429, "{}", third.body);
    assert_eq!(third.header("retry-after").as_deref(), Some("5"));
    assert!(
        third.body.contains("this token has 2 sessions"),
        "{}",
        third.body
    );
    // The other token still gets its own.
    for _ in 0..2 {
        assert_eq!(initialize_as(&gw, E).await.status, 200);
    }
    // And the target's own limit still holds over both.
    let r = initialize_as(&gw, E).await;
    assert_eq!(r.status, 503, "{}", r.body);
    gw.shutdown().await;
}

#[tokio::test]
async fn a_request_state_is_redeemed_only_by_the_token_it_was_issued_to() {
    let gw = two_principals("").await;
    let ask = |token: &'static str, id: &str, extra: serde_json::Value| {
        let mut params = json!({"name":"ask","arguments":{"kind":"sampling"},
            "_meta":{"io.modelcontextprotocol/protocolVersion":common::MODERN,
                "io.modelcontextprotocol/clientCapabilities":{"sampling":{}}}});
        if let (Some(p), Some(e)) = (params.as_object_mut(), extra.as_object()) {
            p.extend(e.clone());
        }
        let body = json!({"jsonrpc":"2.0","id":id,"method":"tools/call","params":params});
        let req = gw
            .http
            .post(gw.url("/mcp/demo"))
            .header("authorization", bearer(token))
            .header("content-type", "application/json")
            .header("accept", "application/json, text/event-stream")
            .header("mcp-protocol-version", common::MODERN)
            .header("mcp-method", "tools/call")
            .header("mcp-name", "ask")
            .body(body.to_string());
        async move { common::Reply::from(req.send().await.unwrap()).await }
    };
    let parked = ask(G, "q", json!({})).await.json();
    assert_eq!(parked["result"]["resultType"], "input_required", "{parked}");
    let key = parked["result"]["inputRequests"]
        .as_object()
        .unwrap()
        .keys()
        .next()
        .unwrap()
        .clone();
    let answer = json!({"role":"assistant","content":{"type":"text","text":"from g"},"model":"m"});
    let retry = json!({"inputResponses":{key.clone(): answer},
        "requestState": parked["result"]["requestState"]});
    // Another token's retry: refused as a state this gateway never issued.
    let foreign = ask(E, "q-e", retry.clone()).await;
    assert_eq!(foreign.code(), Some(-32602), "{}", foreign.body);
    assert!(
        foreign.body.contains("requestState was not issued"),
        "{}",
        foreign.body
    );
    // Its owner's retry resumes the call.
    let done = ask(G, "q-g", retry).await.json();
    let text = done["result"]["content"][0]["text"]
        .as_str()
        .unwrap_or_default();
    assert!(text.contains("from g"), "{done}");
    gw.shutdown().await;
}

#[tokio::test]
async fn an_sse_endpoint_takes_messages_only_from_its_opener() {
    let gw = two_principals("").await;
    let mut stream = gw
        .http
        .get(gw.url("/mcp/demo/sse"))
        .header("authorization", bearer(G))
        .header("accept", "text/event-stream")
        .send()
        .await
        .unwrap();
    assert_eq!(stream.status(), 200);
    let mut buf = String::new();
    while !buf.contains("sessionId=") {
        let chunk = tokio::time::timeout(Duration::from_secs(10), stream.chunk())
            .await
            .unwrap()
            .unwrap()
            .unwrap();
        buf.push_str(std::str::from_utf8(&chunk).unwrap());
    }
    let endpoint = buf
        .lines()
        .find_map(|l| l.strip_prefix("data: "))
        .unwrap()
        .to_owned();
    let init = json!({"jsonrpc":"2.0","id":0,"method":"initialize","params":{
        "protocolVersion":"2024-11-05","capabilities":{},"clientInfo":{"name":"sse","version":"1"}}});
    let post = |token: &str| {
        gw.http
            .post(gw.url(&endpoint))
            .header("authorization", bearer(token))
            .header("content-type", "application/json")
            .body(init.to_string())
            .send()
    };
    assert_eq!(post(E).await.unwrap().status(), 404);
    assert_eq!(post(G).await.unwrap().status(), 202);
    gw.shutdown().await;
}

/// Session `token`'s: initialized, `notifications/initialized` sent, log
/// level debug.
async fn session_as(gw: &Gateway, token: &str) -> String {
    let sid = initialize_as(gw, token)
        .await
        .header("mcp-session-id")
        .unwrap();
    let auth = bearer(token);
    let h = [
        ("authorization", auth.as_str()),
        ("mcp-session-id", sid.as_str()),
    ];
    let r = gw
        .post(
            "/mcp/demo",
            &h,
            &json!({"jsonrpc":"2.0","method":"notifications/initialized"}),
        )
        .await;
    assert_eq!(r.status, 202);
    let r = gw
        .post(
            "/mcp/demo",
            &h,
            &json!({"jsonrpc":"2.0","id":"lvl","method":"logging/setLevel","params":{"level":"debug"}}),
        )
        .await;
    assert!(r.json()["result"].is_object(), "{}", r.body);
    sid
}

async fn unattributed(gw: &Gateway) -> u64 {
    let series = "mcpod_log_messages_unattributed_total{target=\"demo\"}";
    common::metric(gw, series, Some(G)).await
}

/// Session A (token G) listens on its GET stream with a call in flight
/// while session V (token E) makes its backend log: with two clients'
/// calls in flight, that log message is nobody's in particular.
async fn a_log_between_two_tokens(broadcast: bool) -> Vec<serde_json::Value> {
    let gw = Arc::new(
        Gateway::start(&format!(
            "[auth]\ntokens = [\"{G}\", \"{E}\"]\n[targets.demo]\ncommand = \"{}\"\n\
             args = [\"demo-server\", \"--legacy-only\"]\nera = \"legacy\"\nbroadcast_logs = {broadcast}\n",
            common::DEMO
        ))
        .await,
    );
    let (a, v) = (session_as(&gw, G).await, session_as(&gw, E).await);
    let mut stream = gw
        .http
        .get(gw.url("/mcp/demo"))
        .header("authorization", bearer(G))
        .header("mcp-session-id", &a)
        .header("accept", "text/event-stream")
        .send()
        .await
        .unwrap();
    assert_eq!(stream.status(), 200);
    let sleeping = long_call(&gw, G, &a);
    let auth = bearer(E);
    let h = [
        ("authorization", auth.as_str()),
        ("mcp-session-id", v.as_str()),
    ];
    eventually(WAIT, "the sleep reaches the backend", || async {
        let r = gw
            .post("/mcp/demo", &h, &call(json!("st"), "stats", json!({})))
            .await;
        let s: serde_json::Value = serde_json::from_str(&r.text()).unwrap();
        (s["in_flight"].as_u64().unwrap_or(0) > 0).then_some(())
    })
    .await;
    let before = unattributed(&gw).await;
    let auth = bearer(E);
    let h = [
        ("authorization", auth.as_str()),
        ("mcp-session-id", v.as_str()),
    ];
    let logged = gw
        .post(
            "/mcp/demo",
            &h,
            &call(json!("l"), "log", json!({"message": "V's private data"})),
        )
        .await;
    assert!(logged.body.contains("emitted"), "{}", logged.body);
    // A marker every GET stream gets, after the log message.
    let r = gw
        .post(
            "/mcp/demo",
            &h,
            &call(json!("n"), "notify_change", json!({})),
        )
        .await;
    assert_eq!(r.status, 200, "{}", r.body);
    let seen = common::read_events(&mut stream, |e| {
        e.iter()
            .any(|m| m["method"] == "notifications/tools/list_changed")
    })
    .await;
    let after = unattributed(&gw).await;
    assert_eq!(
        after - before,
        u64::from(!broadcast),
        "dropped logs counted"
    );
    sleeping.abort();
    seen.into_iter()
        .filter(|m| m["method"] == "notifications/message")
        .collect()
}

#[tokio::test]
async fn a_log_message_no_call_owns_reaches_no_other_token_unless_the_target_broadcasts() {
    let leaked = a_log_between_two_tokens(false).await;
    assert!(leaked.is_empty(), "session A got V's log: {leaked:?}");
    let shared = a_log_between_two_tokens(true).await;
    assert_eq!(shared.len(), 1, "{shared:?}");
    assert_eq!(
        shared[0]["params"]["data"], "V's private data",
        "{shared:?}"
    );
}

/// A 2026-07-28 request of `token`'s.
async fn modern_as(
    gw: &Gateway,
    token: &str,
    id: &str,
    method: &str,
    params: serde_json::Value,
) -> reqwest::Response {
    let mut params = params;
    params["_meta"] = json!({"io.modelcontextprotocol/protocolVersion":common::MODERN,
        "io.modelcontextprotocol/clientCapabilities":{}});
    let mut req = gw
        .http
        .post(gw.url("/mcp/demo"))
        .header("authorization", bearer(token))
        .header("content-type", "application/json")
        .header("accept", "application/json, text/event-stream")
        .header("mcp-protocol-version", common::MODERN)
        .header("mcp-method", method);
    if let Some(name) = params["name"].as_str() {
        req = req.header("mcp-name", name.to_owned());
    }
    req.body(json!({"jsonrpc":"2.0","id":id,"method":method,"params":params}).to_string())
        .send()
        .await
        .unwrap()
}

#[tokio::test]
async fn one_token_cannot_take_every_call_or_listen_of_a_target() {
    let gw = Arc::new(
        two_principals("max_calls_per_principal = 1\nmax_listens_per_principal = 1").await,
    );
    // G's one call in flight (a legacy session's and a stateless one count alike).
    let sid = initialize_as(&gw, G)
        .await
        .header("mcp-session-id")
        .unwrap();
    let sleeping = long_call(&gw, G, &sid);
    let echo = json!({"name":"echo","arguments":{"text":"x"}});
    let refused = eventually(WAIT, "G's second call is refused", || async {
        let r = modern_as(&gw, G, "2", "tools/call", echo.clone()).await;
        (r.status() == 429).then_some(r)
    })
    .await;
    let body = refused.text().await.unwrap();
    assert!(body.contains("this token has 1 calls in flight"), "{body}");
    // E calls meanwhile.
    let r = modern_as(
        &gw,
        E,
        "3",
        "tools/call",
        json!({"name":"echo","arguments":{"text":"e"}}),
    )
    .await;
    assert_eq!(r.status(), 200);
    assert!(r.text().await.unwrap().contains("\"e\""));
    sleeping.abort();

    // One listen each.
    let listen = json!({"notifications":{"toolsListChanged":true}});
    let g1 = modern_as(&gw, G, "l1", "subscriptions/listen", listen.clone()).await;
    assert_eq!(g1.status(), 200);
    let g2 = modern_as(&gw, G, "l2", "subscriptions/listen", listen.clone()).await;
    assert_eq!(g2.status(), 429);
    let e1 = modern_as(&gw, E, "l3", "subscriptions/listen", listen.clone()).await;
    assert_eq!(e1.status(), 200);
    // A closed listen gives its place back.
    drop(g1);
    eventually(WAIT, "the closed listen gives its place back", || async {
        let r = modern_as(&gw, G, "l4", "subscriptions/listen", listen.clone()).await;
        assert!(matches!(r.status().as_u16(), 200 | 429), "{}", r.status());
        (r.status() == 200).then_some(())
    })
    .await;
}

/// A 20 s `sleep` call of `token`'s session `sid`, in flight until aborted.
fn long_call(
    gw: &Arc<Gateway>,
    token: &'static str,
    sid: &str,
) -> tokio::task::JoinHandle<common::Reply> {
    let (gw, sid) = (gw.clone(), sid.to_owned());
    tokio::spawn(async move {
        let auth = bearer(token);
        let h = [
            ("authorization", auth.as_str()),
            ("mcp-session-id", sid.as_str()),
        ];
        let body = call(json!("long"), "sleep", json!({"ms": 20_000}));
        gw.post("/mcp/demo", &h, &body).await
    })
}

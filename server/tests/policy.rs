//! Per-target policy: two identities (named static tokens) and an OAuth
//! subject see different tools in `tools/list` and get different answers
//! from `tools/call`, in both eras and on the Memoh route; prompts and
//! resources are filtered the same way; deny wins.

#![allow(clippy::unwrap_used, missing_docs)]

mod common;

use common::issuer::{Issuer, TestKey};
use common::{Gateway, MODERN, call, demo_target};
use serde_json::{Value, json};

const ALICE: &str = "alice-token-0123456789abcdef";
const BOB: &str = "bob-token-0123456789abcdef";

const POLICY: &str = r#"
[[targets.demo.policy]]
allow = ["tool:echo", "tool:add", "prompt:*"]
[[targets.demo.policy]]
tokens = ["alice"]
allow = ["tool:*"]
deny = ["tool:crash", "tool:garbage"]
[[targets.demo.policy]]
tokens = ["bob"]
deny = ["tool:add", "prompt:greet"]
[[targets.demo.policy]]
subjects = ["svc-*"]
scopes = ["admin"]
allow = ["tool:env", "tool:stats"]
"#;

async fn gateway(issuer: &Issuer) -> Gateway {
    Gateway::start(&format!(
        "[auth]\nnamed_tokens = {{ alice = \"{ALICE}\", bob = \"{BOB}\" }}\n\
         [auth.oauth]\n{}\n{}{POLICY}\n[bots.bot1]\ntarget = \"demo\"\n",
        issuer.oauth_toml(&[]),
        demo_target("demo", ""),
    ))
    .await
}

/// A legacy session for `token`.
async fn session(gw: &Gateway, token: &str) -> String {
    let auth = format!("Bearer {token}");
    let r = gw
        .post(
            "/mcp/demo",
            &[("authorization", &auth)],
            &json!({"jsonrpc":"2.0","id":0,"method":"initialize","params":{
                "protocolVersion":"2025-06-18","capabilities":{},
                "clientInfo":{"name":"policy-test","version":"1"}}}),
        )
        .await;
    assert_eq!(r.status, 200, "{}", r.body);
    let sid = r.header("mcp-session-id").unwrap();
    let n = gw
        .post(
            "/mcp/demo",
            &[("authorization", &auth), ("mcp-session-id", &sid)],
            &json!({"jsonrpc":"2.0","method":"notifications/initialized"}),
        )
        .await;
    assert_eq!(n.status, 202);
    sid
}

async fn legacy(gw: &Gateway, token: &str, sid: &str, body: Value) -> Value {
    let auth = format!("Bearer {token}");
    let r = gw
        .post(
            "/mcp/demo",
            &[("authorization", &auth), ("mcp-session-id", sid)],
            &body,
        )
        .await;
    assert_eq!(r.status, 200, "{}", r.body);
    r.messages().pop().unwrap()
}

async fn modern(gw: &Gateway, token: &str, method: &str, mut params: Value) -> Value {
    let name = params
        .get("name")
        .or_else(|| params.get("uri"))
        .and_then(Value::as_str)
        .map(str::to_owned);
    params["_meta"]["io.modelcontextprotocol/protocolVersion"] = json!(MODERN);
    params["_meta"]["io.modelcontextprotocol/clientCapabilities"] = json!({});
    let auth = format!("Bearer {token}");
    let mut headers = vec![
        ("authorization", auth.as_str()),
        ("mcp-protocol-version", MODERN),
        ("mcp-method", method),
    ];
    if let Some(n) = &name {
        headers.push(("mcp-name", n));
    }
    let r = gw
        .post(
            "/mcp/demo",
            &headers,
            &json!({"jsonrpc":"2.0","id":1,"method":method,"params":params}),
        )
        .await;
    assert_eq!(r.status, 200, "{}", r.body);
    r.messages().pop().unwrap()
}

fn names(reply: &Value, list: &str, key: &str) -> Vec<String> {
    let mut v: Vec<String> = reply["result"][list]
        .as_array()
        .unwrap_or_else(|| panic!("no {list} in {reply}"))
        .iter()
        .map(|t| t[key].as_str().unwrap().to_owned())
        .collect();
    v.sort();
    v
}

fn sorted(v: &[&str]) -> Vec<String> {
    let mut v: Vec<String> = v.iter().map(|s| (*s).to_owned()).collect();
    v.sort();
    v
}

/// Every tool the demo server has.
const ALL_TOOLS: &[&str] = &[
    "echo",
    "meta",
    "add",
    "sleep",
    "progress",
    "fail",
    "crash",
    "garbage",
    "big",
    "ask",
    "notify_change",
    "log",
    "stats",
    "env",
];

fn denied(reply: &Value, what: &str) {
    assert_eq!(reply["error"]["code"], json!(-32602), "{reply}");
    let message = reply["error"]["message"].as_str().unwrap();
    assert!(
        message.contains(what) && message.contains("policy"),
        "{message}"
    );
}

#[tokio::test]
async fn two_identities_see_and_call_different_tools_in_both_eras() {
    let issuer = Issuer::start(&[TestKey::Rsa1], "").await;
    let gw = gateway(&issuer).await;
    let alice_tools: Vec<&str> = ALL_TOOLS
        .iter()
        .copied()
        .filter(|t| !["crash", "garbage"].contains(t))
        .collect();
    let list = json!({"jsonrpc":"2.0","id":1,"method":"tools/list"});

    // Legacy era.
    let a = session(&gw, ALICE).await;
    let b = session(&gw, BOB).await;
    let got = legacy(&gw, ALICE, &a, list.clone()).await;
    assert_eq!(names(&got, "tools", "name"), sorted(&alice_tools));
    let got = legacy(&gw, BOB, &b, list.clone()).await;
    assert_eq!(names(&got, "tools", "name"), sorted(&["echo"]));
    let add = call(json!(2), "add", json!({"a": 2, "b": 3}));
    let got = legacy(&gw, ALICE, &a, add.clone()).await;
    assert!(got["result"]["content"].is_array(), "{got}");
    denied(&legacy(&gw, BOB, &b, add.clone()).await, "tool `add`");
    denied(
        &legacy(&gw, ALICE, &a, call(json!(3), "crash", json!({}))).await,
        "tool `crash`",
    );
    let echo = call(json!(4), "echo", json!({"text": "hi"}));
    assert!(legacy(&gw, BOB, &b, echo.clone()).await["result"].is_object());

    // Modern era.
    let got = modern(&gw, ALICE, "tools/list", json!({})).await;
    assert_eq!(names(&got, "tools", "name"), sorted(&alice_tools));
    let got = modern(&gw, BOB, "tools/list", json!({})).await;
    assert_eq!(names(&got, "tools", "name"), sorted(&["echo"]));
    // A list filtered for one caller is theirs alone.
    assert_eq!(got["result"]["cacheScope"], json!("private"), "{got}");
    let args = json!({"name": "add", "arguments": {"a": 1, "b": 1}});
    let got = modern(&gw, ALICE, "tools/call", args.clone()).await;
    assert_eq!(got["result"]["resultType"], json!("complete"), "{got}");
    denied(&modern(&gw, BOB, "tools/call", args).await, "tool `add`");

    // Prompts: open to everyone by the first rule, but bob's deny wins.
    let prompts = json!({"jsonrpc":"2.0","id":5,"method":"prompts/list"});
    let got = legacy(&gw, ALICE, &a, prompts.clone()).await;
    assert_eq!(names(&got, "prompts", "name"), sorted(&["greet"]));
    let got = legacy(&gw, BOB, &b, prompts).await;
    assert_eq!(names(&got, "prompts", "name"), Vec::<String>::new());
    let greet = json!({"name": "greet", "arguments": {"name": "Bob"}});
    denied(
        &modern(&gw, BOB, "prompts/get", greet.clone()).await,
        "prompt `greet`",
    );
    assert!(modern(&gw, ALICE, "prompts/get", greet).await["result"].is_object());
    // Completions of a denied prompt's arguments are refused too.
    let complete = json!({"ref": {"type": "ref/prompt", "name": "greet"},
        "argument": {"name": "name", "value": "B"}});
    denied(
        &modern(&gw, BOB, "completion/complete", complete).await,
        "prompt `greet`",
    );
    // No rule names resources: both see them all.
    let got = modern(&gw, BOB, "resources/list", json!({})).await;
    assert_eq!(
        names(&got, "resources", "uri"),
        sorted(&["demo://hello", "demo://server-info"])
    );
    // Untouched, a (modern) backend's list keeps its own cache hints.
    assert_eq!(got["result"]["cacheScope"], json!("public"), "{got}");
    gw.shutdown().await;
}

#[tokio::test]
async fn oauth_subjects_and_scopes_select_rules() {
    let issuer = Issuer::start(&[TestKey::Rsa1], "").await;
    let gw = gateway(&issuer).await;
    let admin = issuer.token(TestKey::Rsa1, "svc-backup", "admin");
    let plain = issuer.token(TestKey::Rsa1, "svc-backup", "read");
    let other = issuer.token(TestKey::Rsa1, "user-1", "admin");
    let got = modern(&gw, &admin, "tools/list", json!({})).await;
    assert_eq!(
        names(&got, "tools", "name"),
        sorted(&["add", "echo", "env", "stats"])
    );
    for token in [&plain, &other] {
        let got = modern(&gw, token, "tools/list", json!({})).await;
        assert_eq!(names(&got, "tools", "name"), sorted(&["add", "echo"]));
        let stats = json!({"name": "stats", "arguments": {}});
        denied(
            &modern(&gw, token, "tools/call", stats).await,
            "tool `stats`",
        );
    }
    let sid = session(&gw, &admin).await;
    let got = legacy(&gw, &admin, &sid, call(json!(9), "stats", json!({}))).await;
    assert!(got["result"].is_object(), "{got}");
    gw.shutdown().await;
}

#[tokio::test]
async fn the_memoh_route_applies_the_target_policy() {
    let issuer = Issuer::start(&[TestKey::Rsa1], "").await;
    let gw = gateway(&issuer).await;
    let fs = "/bots/bot1/container/fs-mcp";
    let rpc = |token: &'static str, body: Value| {
        let gw = &gw;
        async move {
            let auth = format!("Bearer {token}");
            let r = gw
                .post_raw(
                    fs,
                    &[
                        ("content-type", "application/json"),
                        ("authorization", &auth),
                    ],
                    body.to_string(),
                )
                .await;
            assert_eq!(r.status, 200, "{}", r.body);
            r.json()
        }
    };
    let list = json!({"jsonrpc":"2.0","id":1,"method":"tools/list"});
    assert_eq!(
        names(&rpc(BOB, list.clone()).await, "tools", "name"),
        sorted(&["echo"])
    );
    assert_eq!(
        names(&rpc(ALICE, list).await, "tools", "name").len(),
        ALL_TOOLS.len() - 2
    );
    denied(
        &rpc(BOB, call(json!(2), "add", json!({"a": 1, "b": 2}))).await,
        "tool `add`",
    );
    assert!(rpc(ALICE, call(json!(3), "add", json!({"a": 1, "b": 2}))).await["result"].is_object());
    gw.shutdown().await;
}

#[tokio::test]
async fn the_2024_11_05_transport_applies_the_target_policy() {
    let issuer = Issuer::start(&[TestKey::Rsa1], "").await;
    let gw = gateway(&issuer).await;
    let auth = format!("Bearer {BOB}");
    let mut stream = gw
        .http
        .get(gw.url("/mcp/demo/sse"))
        .header("authorization", &auth)
        .header("accept", "text/event-stream")
        .send()
        .await
        .unwrap();
    assert_eq!(stream.status(), 200);
    let mut buf = String::new();
    while !buf.contains("sessionId=") {
        let chunk = tokio::time::timeout(std::time::Duration::from_secs(10), stream.chunk())
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
    let post = |body: Value| {
        let (gw, auth, endpoint) = (&gw, &auth, &endpoint);
        async move {
            let r = gw
                .http
                .post(gw.url(endpoint))
                .header("authorization", auth)
                .header("content-type", "application/json")
                .body(body.to_string())
                .send()
                .await
                .unwrap();
            assert_eq!(r.status(), 202);
        }
    };
    post(json!({"jsonrpc":"2.0","id":0,"method":"initialize","params":{
        "protocolVersion":"2024-11-05","capabilities":{},"clientInfo":{"name":"sse","version":"1"}}}))
    .await;
    // Each message is handled on its own: the session exists once its
    // initialize is answered.
    let init = common::read_events(&mut stream, |got| got.iter().any(|m| m["id"] == 0)).await;
    assert!(init.iter().any(|m| m["result"].is_object()), "{init:?}");
    post(json!({"jsonrpc":"2.0","method":"notifications/initialized"})).await;
    post(json!({"jsonrpc":"2.0","id":1,"method":"tools/list"})).await;
    post(call(json!(2), "add", json!({"a": 1, "b": 2}))).await;
    let events = common::read_events(&mut stream, |got| {
        [1, 2]
            .iter()
            .all(|id| got.iter().any(|m| m["id"] == json!(id)))
    })
    .await;
    let of = |id: i64| {
        events
            .iter()
            .find(|m| m["id"] == json!(id))
            .unwrap_or_else(|| panic!("no answer {id} in {events:?}"))
    };
    assert_eq!(names(of(1), "tools", "name"), sorted(&["echo"]));
    denied(of(2), "tool `add`");
    gw.shutdown().await;
}

#[test]
fn policy_config_errors_name_the_key() {
    use mcpod_server::config::RawConfig;
    let t = format!("[auth]\ndisabled = true\n{}", demo_target("t", ""));
    let cases = [
        (
            format!("{t}[[targets.t.policy]]\nallow = [\"tools:echo\"]\n"),
            "targets.t.policy[0].allow[0]",
        ),
        (
            format!("{t}[[targets.t.policy]]\ntokens = [\"ci\"]\n"),
            "targets.t.policy[0]",
        ),
        (
            format!(
                "{t}[[targets.t.policy]]\nallow = [\"tool:a\"]\n[[targets.t.policy]]\ndeny = [\"tool:[x\"]\n"
            ),
            "targets.t.policy[1].deny[0]",
        ),
        (
            format!(
                "[auth]\nnamed_tokens = {{ \"bad name\" = \"{}\" }}\n{}",
                common::TOKEN,
                demo_target("t", "")
            ),
            "auth.named_tokens.bad name",
        ),
    ];
    for (text, key) in cases {
        let err = RawConfig::from_toml(&text)
            .unwrap()
            .validate()
            .unwrap_err()
            .to_string();
        assert!(err.starts_with(key), "{key}: {err}");
    }
}

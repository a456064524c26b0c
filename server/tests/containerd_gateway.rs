//! The gateway in front of MCP servers exec'd in real containers: both eras,
//! progress and cancellation through the exec, container checks (404 / 403
//! / 400), crash recovery and `mcp-stdio` in a container.
//!
//! Needs a real containerd and the static demo server (see `ctd/mod.rs`);
//! behind the `containerd-tests` feature, and never skipped silently.

#![cfg(feature = "containerd-tests")]
#![allow(clippy::unwrap_used, missing_docs)]

mod common;
mod ctd;

use std::time::{Duration, Instant};

use common::{Gateway, MODERN, call, read_events, stats};
use serde_json::{Value, json};

/// A gateway with one containerd target per bot in `targets` and every
/// other bot served on the Memoh routes.
async fn gateway(env: &ctd::Env, extra: &str, targets: &[&str]) -> Gateway {
    let mut toml = env.section(&format!("serve_bots = true\n{extra}"));
    for bot in targets {
        toml.push_str(&format!(
            "[targets.{bot}]\nkind = \"containerd\"\nbot = \"{bot}\"\n"
        ));
    }
    Gateway::start(&toml).await
}

async fn fs_mcp(gw: &Gateway, bot: &str, body: Value) -> common::Reply {
    gw.post(&format!("/bots/{bot}/container/fs-mcp"), &[], &body)
        .await
}

#[tokio::test]
async fn both_eras_on_a_target_and_on_the_memoh_route() {
    let env = ctd::Env::new("eras").await;
    env.bot("alice").await;
    env.bot("bob").await;
    let gw = gateway(&env, "", &["alice"]).await;

    // Legacy client on /mcp/alice.
    let sid = gw.initialize("alice").await;
    let r = gw
        .legacy(
            "alice",
            &sid,
            json!({"jsonrpc":"2.0","id":"l1","method":"tools/list"}),
        )
        .await;
    assert_eq!(r.status, 200, "{}", r.body);
    let tools = r.json()["result"]["tools"].as_array().unwrap().len();
    assert!(tools >= 10, "{}", r.body);
    let r = gw
        .legacy(
            "alice",
            &sid,
            call(json!(7), "echo", json!({"text":"from a container"})),
        )
        .await;
    assert_eq!(r.text(), "from a container");
    assert_eq!(r.json()["id"], 7);

    // Modern client on /mcp/alice: the same exec'd server.
    let r = gw.modern("alice", json!(1), "tools/list", json!({})).await;
    assert_eq!(r.status, 200, "{}", r.body);
    assert_eq!(r.json()["result"]["tools"].as_array().unwrap().len(), tools);
    let r = gw
        .modern(
            "alice",
            json!("m2"),
            "tools/call",
            json!({"name":"add","arguments":{"a":2,"b":40}}),
        )
        .await;
    assert_eq!(
        r.json()["result"]["structuredContent"]["sum"],
        42.0,
        "{}",
        r.body
    );
    assert_eq!(env.execs("alice").await.len(), 1);

    // Memoh route for an unconfigured bot: initialize, tools/list, tools/call.
    let r = fs_mcp(
        &gw,
        "bob",
        json!({"jsonrpc":"2.0","id":1,"method":"initialize","params":{"protocolVersion":"2025-06-18",
            "capabilities":{},"clientInfo":{"name":"memoh","version":"1"}}}),
    )
    .await;
    assert_eq!(r.status, 200, "{}", r.body);
    assert!(
        r.json()["result"]["serverInfo"]["name"].is_string(),
        "{}",
        r.body
    );
    let r = fs_mcp(
        &gw,
        "bob",
        json!({"jsonrpc":"2.0","method":"notifications/initialized"}),
    )
    .await;
    assert_eq!(r.status, 202, "{}", r.body);
    let r = fs_mcp(
        &gw,
        "bob",
        json!({"jsonrpc":"2.0","id":2,"method":"tools/list"}),
    )
    .await;
    assert_eq!(r.json()["result"]["tools"].as_array().unwrap().len(), tools);
    let r = fs_mcp(&gw, "bob", call(json!(3), "echo", json!({"text":"bob's"}))).await;
    assert_eq!(r.text(), "bob's");
    // A configured containerd target is also reachable by its bot's route.
    let r = fs_mcp(
        &gw,
        "alice",
        call(json!(4), "echo", json!({"text":"alice's"})),
    )
    .await;
    assert_eq!(r.text(), "alice's");
    assert_eq!(env.execs("bob").await.len(), 1);
    assert_eq!(
        env.execs("alice").await.len(),
        1,
        "one session per container"
    );

    gw.shutdown().await;
    assert!(env.execs("alice").await.is_empty());
    assert!(env.execs("bob").await.is_empty());
    assert_eq!(env.fifo_leftovers(), Vec::<std::path::PathBuf>::new());
    env.cleanup().await;
}

/// Waits until the demo's `cancelled` list reaches `n`.
async fn wait_cancelled(gw: &Gateway, target: &str, n: usize) -> Value {
    for _ in 0..100 {
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

#[tokio::test]
async fn progress_and_cancellation_reach_through_the_exec() {
    let env = ctd::Env::new("progress").await;
    env.bot("carol").await;
    let gw = gateway(&env, "", &["carol"]).await;

    // Progress over SSE, modern caller.
    let body = json!({"jsonrpc":"2.0","id":"p","method":"tools/call","params":{"name":"progress",
        "arguments":{"steps":5,"delay_ms":20},
        "_meta":{"io.modelcontextprotocol/protocolVersion":MODERN,"io.modelcontextprotocol/clientCapabilities":{},"progressToken":"tok"}}});
    let r = gw
        .post(
            "/mcp/carol",
            &[
                ("mcp-protocol-version", MODERN),
                ("mcp-method", "tools/call"),
                ("mcp-name", "progress"),
            ],
            &body,
        )
        .await;
    assert!(r.is_sse(), "{r:?}");
    let msgs = r.messages();
    let progress: Vec<&Value> = msgs
        .iter()
        .filter(|m| m["method"] == "notifications/progress")
        .collect();
    assert_eq!(progress.len(), 5, "{msgs:?}");
    assert!(
        progress
            .iter()
            .all(|p| p["params"]["progressToken"] == "tok")
    );
    assert_eq!(
        msgs.last().unwrap()["result"]["content"][0]["text"],
        "completed 5 steps"
    );

    // Legacy cancellation: the backend records the cancelled call.
    let sid = gw.initialize("carol").await;
    let started = Instant::now();
    let (r, _) = tokio::join!(
        gw.legacy("carol", &sid, call(json!(1), "sleep", json!({"ms": 20000}))),
        async {
            tokio::time::sleep(Duration::from_millis(300)).await;
            let n = gw
                .legacy("carol", &sid, json!({"jsonrpc":"2.0","method":"notifications/cancelled","params":{"requestId":1,"reason":"user"}}))
                .await;
            assert_eq!(n.status, 202);
        }
    );
    assert_eq!(r.code(), Some(-32800), "{}", r.body);
    assert!(started.elapsed() < Duration::from_secs(10));
    wait_cancelled(&gw, "carol", 1).await;

    // A client that hangs up mid-stream cancels its call at the backend.
    let mut resp = gw
        .http
        .post(gw.url("/mcp/carol"))
        .header("content-type", "application/json")
        .header("accept", "application/json, text/event-stream")
        .header("mcp-protocol-version", MODERN)
        .header("mcp-method", "tools/call")
        .header("mcp-name", "progress")
        .body(
            json!({"jsonrpc":"2.0","id":"q","method":"tools/call","params":{"name":"progress",
            "arguments":{"steps":100,"delay_ms":100},
            "_meta":{"io.modelcontextprotocol/protocolVersion":MODERN,"io.modelcontextprotocol/clientCapabilities":{},"progressToken":"t2"}}})
            .to_string(),
        )
        .send()
        .await
        .unwrap();
    let first = read_events(&mut resp, |e| !e.is_empty()).await;
    assert_eq!(first[0]["method"], "notifications/progress");
    drop(resp);
    let s = wait_cancelled(&gw, "carol", 2).await;
    let cancelled = s["cancelled"].as_array().unwrap();
    assert_ne!(cancelled[0], cancelled[1], "{s}");
    assert_eq!(env.execs("carol").await.len(), 1);

    gw.shutdown().await;
    env.cleanup().await;
}

#[tokio::test]
async fn container_checks_answer_404_403_and_400() {
    let env = ctd::Env::new("checks").await;
    // `mcp-alice`, labelled for bot `ice` (made with the prefix `mcp-al`).
    let mut other = mcpod_containerd::BotConfig::default();
    other.prefix = "mcp-al".into();
    let misfiled = mcpod_containerd::Bots::new(env.client.clone(), other);
    misfiled.create("ice", &env.spec("ice")).await.unwrap();
    // `mcp-nolabel`: a runnable container without the bot label.
    env.bots
        .create("template", &env.spec("template"))
        .await
        .unwrap();
    ctd::raw_create_container(&env.client, "mcp-nolabel", &[], "mcp-template").await;
    ctd::raw_delete_container(&env.client, "mcp-template").await;

    let gw = gateway(&env, "", &[]).await;
    let echo = call(json!(1), "echo", json!({"text":"x"}));
    let r = fs_mcp(&gw, "nobody", echo.clone()).await;
    assert_eq!(r.status, 404, "{}", r.body);
    assert_eq!(r.json()["message"], "container not found");
    let r = fs_mcp(&gw, "alice", echo.clone()).await;
    assert_eq!(r.status, 403, "{}", r.body);
    assert_eq!(r.json()["message"], "bot mismatch");
    let r = fs_mcp(&gw, "nolabel", echo.clone()).await;
    assert_eq!(r.status, 403, "{}", r.body);
    assert!(
        r.json()["message"]
            .as_str()
            .unwrap()
            .contains("no bot label"),
        "{}",
        r.body
    );
    let r = fs_mcp(&gw, "bad..id", echo.clone()).await;
    assert_eq!(r.status, 400, "{}", r.body);
    let r = gw.post("/bots/%20/container/fs-mcp", &[], &echo).await;
    assert_eq!(r.status, 400, "{}", r.body);
    // Nothing was exec'd for any of them.
    assert!(env.fifo_leftovers().is_empty());
    gw.shutdown().await;

    // A target pointing at another bot's container is refused the same way.
    let gw = Gateway::start(&format!(
        "{}[targets.t]\nkind = \"containerd\"\nbot = \"alice\"\n\
         [targets.gone]\nkind = \"containerd\"\nbot = \"nobody\"\n",
        env.section("")
    ))
    .await;
    let r = fs_mcp(&gw, "nobody", echo.clone()).await;
    assert_eq!(r.status, 404, "serve_bots is off: {}", r.body);
    let r = gw
        .modern(
            "t",
            json!(1),
            "tools/call",
            json!({"name":"echo","arguments":{"text":"x"}}),
        )
        .await;
    assert_eq!(r.status, 403, "{}", r.body);
    assert_eq!(r.json()["error"]["message"], "bot mismatch", "{}", r.body);
    let r = gw
        .modern(
            "gone",
            json!(2),
            "tools/call",
            json!({"name":"echo","arguments":{"text":"x"}}),
        )
        .await;
    assert_eq!(r.status, 404, "{}", r.body);
    assert_eq!(
        r.json()["error"]["message"],
        "container not found",
        "{}",
        r.body
    );
    gw.shutdown().await;

    // With allow_unlabelled, the unlabelled container is served.
    let gw = gateway(&env, "allow_unlabelled = true", &[]).await;
    let r = fs_mcp(&gw, "nolabel", echo.clone()).await;
    assert_eq!(r.status, 200, "{}", r.body);
    assert_eq!(r.text(), "x");
    gw.shutdown().await;
    assert!(env.fifo_leftovers().is_empty());
    env.cleanup().await;
}

#[tokio::test]
async fn crash_mid_call_errors_promptly_and_the_next_call_gets_a_fresh_exec() {
    let env = ctd::Env::new("crash").await;
    env.bot("dave").await;
    let gw = gateway(&env, "", &["dave"]).await;
    let before = stats(&gw, "dave").await;
    let first_exec = env.execs("dave").await;
    assert_eq!(first_exec.len(), 1);

    let started = Instant::now();
    let (slow, crash) = tokio::join!(
        gw.modern(
            "dave",
            json!("slow"),
            "tools/call",
            json!({"name":"sleep","arguments":{"ms":30000}})
        ),
        async {
            tokio::time::sleep(Duration::from_millis(200)).await;
            gw.modern(
                "dave",
                json!("boom"),
                "tools/call",
                json!({"name":"crash","arguments":{}}),
            )
            .await
        }
    );
    assert!(
        started.elapsed() < Duration::from_secs(8),
        "{:?}",
        started.elapsed()
    );
    for r in [&slow, &crash] {
        assert!(r.status >= 500 || r.code().is_some(), "{r:?}");
    }
    let after = stats(&gw, "dave").await;
    assert_ne!(
        before["pid"], after["pid"],
        "a fresh process serves the next call"
    );
    // The crashed exec was cleaned up; only the new one runs.
    let ok = ctd::eventually(Duration::from_secs(5), || async {
        let execs = env.execs("dave").await;
        execs.len() == 1 && execs != first_exec && env.fifo_leftovers().len() == 1
    })
    .await;
    assert!(
        ok,
        "execs {:?}, fifos {:?}",
        env.execs("dave").await,
        env.fifo_leftovers()
    );
    gw.shutdown().await;
    env.cleanup().await;
}

#[tokio::test]
async fn mcp_stdio_execs_the_command_in_the_container() {
    let env = ctd::Env::new("stdio").await;
    env.bot("erin").await;
    let gw = gateway(&env, "", &[]).await;
    let r = gw
        .post(
            "/bots/erin/mcp-stdio",
            &[],
            &json!({"name":"fs","command":"/app/mcp","args":["--legacy-only"],"env":{"A":"1"},"cwd":"/data"}),
        )
        .await;
    assert_eq!(r.status, 200, "{}", r.body);
    let created = r.json();
    let tools = created["tools"].as_array().unwrap();
    assert!(tools.iter().any(|t| t == "echo"), "{created}");
    let url = created["url"].as_str().unwrap().to_owned();
    assert_eq!(
        env.execs("erin").await.len(),
        1,
        "the command runs in the bot's container"
    );
    let r = gw
        .post(&url, &[], &call(json!(1), "echo", json!({"text":"inside"})))
        .await;
    assert_eq!(r.text(), "inside");
    // Another bot cannot use it.
    env.bot("frank").await;
    let other = url.replace("/bots/erin/", "/bots/frank/");
    let r = gw
        .post(&other, &[], &call(json!(2), "echo", json!({"text":"x"})))
        .await;
    assert_eq!(r.status, 404, "{}", r.body);
    // Unknown bots are refused before anything runs.
    let r = gw
        .post("/bots/ghost/mcp-stdio", &[], &json!({"command":"/app/mcp"}))
        .await;
    assert_eq!(r.status, 404, "{}", r.body);
    let r = gw.http.delete(gw.url(&url)).send().await.unwrap();
    assert_eq!(r.status(), 204);
    let gone = ctd::eventually(Duration::from_secs(5), || async {
        env.execs("erin").await.is_empty() && env.fifo_leftovers().is_empty()
    })
    .await;
    assert!(
        gone,
        "execs {:?}, fifos {:?}",
        env.execs("erin").await,
        env.fifo_leftovers()
    );
    gw.shutdown().await;
    env.cleanup().await;
}

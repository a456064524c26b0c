//! Both MCP eras end to end over real HTTP against the demo server.

#![allow(clippy::unwrap_used, missing_docs)]

mod common;

use common::{Gateway, call, demo_target, stats};
use serde_json::{Value, json};

#[tokio::test]
async fn legacy_client_full_lifecycle() {
    let gw = Gateway::demo().await;
    let sid = gw.initialize("demo").await;
    assert_eq!(sid.len(), 32);

    let list = gw
        .legacy(
            "demo",
            &sid,
            json!({"jsonrpc":"2.0","id":1,"method":"tools/list"}),
        )
        .await;
    assert_eq!(list.status, 200);
    assert_eq!(
        list.header("content-type").as_deref(),
        Some("application/json")
    );
    let tools = list.json()["result"]["tools"].as_array().unwrap().clone();
    assert!(tools.iter().any(|t| t["name"] == "echo"), "{tools:?}");

    let echo = gw
        .legacy(
            "demo",
            &sid,
            call(json!("a"), "echo", json!({"text":"hello"})),
        )
        .await;
    assert_eq!(echo.json()["id"], "a");
    assert_eq!(echo.text(), "hello");

    let ping = gw
        .legacy(
            "demo",
            &sid,
            json!({"jsonrpc":"2.0","id":7,"method":"ping"}),
        )
        .await;
    assert_eq!(ping.json(), json!({"jsonrpc":"2.0","id":7,"result":{}}));

    // The GET stream opens with the SSE headers.
    let get = gw
        .http
        .get(gw.url("/mcp/demo"))
        .header("mcp-session-id", &sid)
        .header("accept", "text/event-stream")
        .send()
        .await
        .unwrap();
    assert_eq!(get.status(), 200);
    assert_eq!(get.headers()["content-type"], "text/event-stream");
    assert_eq!(get.headers()["x-accel-buffering"], "no");
    drop(get);

    let del = gw
        .http
        .delete(gw.url("/mcp/demo"))
        .header("mcp-session-id", &sid)
        .send()
        .await
        .unwrap();
    assert_eq!(del.status(), 200);
    let after = gw
        .legacy(
            "demo",
            &sid,
            json!({"jsonrpc":"2.0","id":2,"method":"tools/list"}),
        )
        .await;
    assert_eq!(after.status, 404);
    assert_eq!(after.code(), Some(-32001));
    gw.shutdown().await;
}

#[tokio::test]
async fn legacy_initialize_negotiates_the_clients_version() {
    let gw = Gateway::demo().await;
    for (asked, got) in [
        ("2025-03-26", "2025-03-26"),
        ("2025-11-25", "2025-11-25"),
        ("1999-01-01", "2025-11-25"),
    ] {
        let r = gw
            .post(
                "/mcp/demo",
                &[],
                &json!({"jsonrpc":"2.0","id":1,"method":"initialize","params":{"protocolVersion":asked,"capabilities":{},"clientInfo":{"name":"t","version":"1"}}}),
            )
            .await;
        let v = r.json();
        assert_eq!(v["result"]["protocolVersion"], got, "{v}");
        assert_eq!(v["result"]["serverInfo"]["name"], "mcpod-demo");
        assert!(v["result"]["capabilities"]["tools"].is_object());
    }
    gw.shutdown().await;
}

#[tokio::test]
async fn modern_client_end_to_end() {
    let gw = Gateway::demo().await;
    let d = gw
        .modern("demo", json!(1), "server/discover", json!({}))
        .await;
    assert_eq!(d.status, 200);
    let v = d.json();
    assert!(
        v["result"]["supportedVersions"]
            .as_array()
            .unwrap()
            .contains(&json!("2026-07-28")),
        "{v}"
    );
    assert!(v["result"]["capabilities"]["tools"].is_object());

    let list = gw.modern("demo", json!(2), "tools/list", json!({})).await;
    assert!(list.json()["result"]["tools"].as_array().unwrap().len() >= 10);

    // Mcp-Name in its base64 form ("echo").
    let r = gw
        .post(
            "/mcp/demo",
            &[("mcp-protocol-version", "2026-07-28"), ("mcp-method", "tools/call"), ("mcp-name", "=?base64?ZWNobw==?=")],
            &json!({"jsonrpc":"2.0","id":"x","method":"tools/call","params":{"name":"echo","arguments":{"text":"b64"},
                "_meta":{"io.modelcontextprotocol/protocolVersion":"2026-07-28","io.modelcontextprotocol/clientCapabilities":{}}}}),
        )
        .await;
    assert_eq!(r.status, 200, "{}", r.body);
    assert_eq!(r.text(), "b64");
    gw.shutdown().await;
}

#[tokio::test]
async fn both_eras_against_a_legacy_backend() {
    let gw = Gateway::start(&demo_target("old", "era = \"legacy\"")).await;
    let d = gw
        .modern("old", json!(1), "server/discover", json!({}))
        .await;
    let v = d.json();
    assert_eq!(
        v["result"]["supportedVersions"],
        json!(["2026-07-28"]),
        "{v}"
    );
    assert_eq!(
        v["result"]["_meta"]["io.modelcontextprotocol/serverInfo"]["name"],
        "mcpod-demo"
    );
    let r = gw
        .modern(
            "old",
            json!(2),
            "tools/call",
            json!({"name":"add","arguments":{"a":2,"b":3}}),
        )
        .await;
    assert_eq!(r.json()["result"]["structuredContent"]["sum"], 5.0);

    let sid = gw.initialize("old").await;
    let r = gw
        .legacy(
            "old",
            &sid,
            call(json!(3), "echo", json!({"text":"legacy"})),
        )
        .await;
    assert_eq!(r.text(), "legacy");
    // One handshake with the backend, whatever the number of clients.
    assert_eq!(stats(&gw, "old").await["initialize_count"], 1);
    gw.shutdown().await;
}

#[tokio::test]
async fn same_id_from_two_clients_each_get_their_own_answer() {
    let gw = Gateway::demo().await;
    let a = gw.initialize("demo").await;
    let b = gw.initialize("demo").await;
    // Three callers, one backend, all with id 1, overlapping in time.
    let (ra, rb, rm) = tokio::join!(
        gw.legacy("demo", &a, call(json!(1), "sleep", json!({"ms": 300}))),
        gw.legacy("demo", &b, call(json!(1), "sleep", json!({"ms": 150}))),
        gw.modern(
            "demo",
            json!(1),
            "tools/call",
            json!({"name":"sleep","arguments":{"ms": 50}})
        ),
    );
    assert_eq!(ra.json()["id"], 1);
    assert_eq!(ra.text(), "slept 300 ms");
    assert_eq!(rb.json()["id"], 1);
    assert_eq!(rb.text(), "slept 150 ms");
    assert_eq!(rm.json()["id"], 1);
    assert_eq!(rm.text(), "slept 50 ms");
    // Ids are byte-exact: a big integer and a string "1" stay what they were.
    let big = gw
        .legacy(
            "demo",
            &a,
            call(json!(1152921504606846977u64), "echo", json!({"text":"big"})),
        )
        .await;
    assert!(
        big.body.contains("\"id\":1152921504606846977"),
        "{}",
        big.body
    );
    let s = gw
        .legacy("demo", &a, call(json!("1"), "echo", json!({"text":"s"})))
        .await;
    assert_eq!(s.json()["id"], "1");
    gw.shutdown().await;
}

#[tokio::test]
async fn progress_reaches_only_its_caller() {
    let gw = Gateway::demo().await;
    let a = gw.initialize("demo").await;
    let body = |steps: u64| {
        json!({"jsonrpc":"2.0","id":5,"method":"tools/call","params":{"name":"progress",
            "arguments":{"steps":steps,"delay_ms":30},"_meta":{"progressToken":"tok"}}})
    };
    // A legacy caller and a modern caller, same id, same progress token.
    let modern_body = {
        let mut b = body(4);
        b["params"]["_meta"]["io.modelcontextprotocol/protocolVersion"] = json!("2026-07-28");
        b["params"]["_meta"]["io.modelcontextprotocol/clientCapabilities"] = json!({});
        b
    };
    let (ra, rm) = tokio::join!(
        gw.legacy("demo", &a, body(2)),
        gw.post(
            "/mcp/demo",
            &[
                ("mcp-protocol-version", "2026-07-28"),
                ("mcp-method", "tools/call"),
                ("mcp-name", "progress")
            ],
            &modern_body
        ),
    );
    for (reply, steps) in [(&ra, 2usize), (&rm, 4)] {
        assert!(reply.is_sse(), "{reply:?}");
        assert_eq!(reply.header("x-accel-buffering").as_deref(), Some("no"));
        let msgs = reply.messages();
        let progress: Vec<_> = msgs
            .iter()
            .filter(|m| m["method"] == "notifications/progress")
            .collect();
        assert_eq!(progress.len(), steps, "{msgs:?}");
        assert!(
            progress
                .iter()
                .all(|p| p["params"]["progressToken"] == "tok")
        );
        assert_eq!(progress.last().unwrap()["params"]["total"], steps as u64);
        assert_eq!(
            msgs.last().unwrap()["result"]["content"][0]["text"],
            format!("completed {steps} steps")
        );
    }
    gw.shutdown().await;
}

#[tokio::test]
async fn backend_crash_mid_call_fails_that_call_and_the_next_succeeds() {
    let gw = Gateway::demo().await;
    let sid = gw.initialize("demo").await;
    let crash = gw
        .legacy("demo", &sid, call(json!(1), "crash", json!({})))
        .await;
    assert_eq!(crash.status, 200);
    let v = crash.json();
    assert_eq!(v["id"], 1);
    assert_eq!(v["error"]["code"], -32000, "{v}");
    let next = gw
        .legacy(
            "demo",
            &sid,
            call(json!(2), "echo", json!({"text":"again"})),
        )
        .await;
    assert_eq!(next.text(), "again");
    let m = gw
        .modern(
            "demo",
            json!(3),
            "tools/call",
            json!({"name":"echo","arguments":{"text":"m"}}),
        )
        .await;
    assert_eq!(m.text(), "m");
    let metrics = gw
        .http
        .get(gw.url("/metrics"))
        .send()
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    assert!(
        metrics.contains("mcpod_backend_restarts_total{target=\"demo\"} 1"),
        "{metrics}"
    );
    gw.shutdown().await;
}

#[tokio::test]
async fn per_session_targets_get_their_own_backend() {
    let gw = Gateway::start(&demo_target("own", "sharing = \"per_session\"")).await;
    let a = gw.initialize("own").await;
    let b = gw.initialize("own").await;
    let pid = |r: common::Reply| {
        serde_json::from_str::<serde_json::Value>(&r.text()).unwrap()["pid"].clone()
    };
    let pa = pid(gw
        .legacy("own", &a, call(json!(1), "stats", json!({})))
        .await);
    let pb = pid(gw
        .legacy("own", &b, call(json!(1), "stats", json!({})))
        .await);
    let pa2 = pid(gw
        .legacy("own", &a, call(json!(2), "stats", json!({})))
        .await);
    assert_ne!(pa, pb);
    assert_eq!(pa, pa2);
    // Ending the session stops its backend process (and reaps it).
    let del = gw
        .http
        .delete(gw.url("/mcp/own"))
        .header("mcp-session-id", &a)
        .send()
        .await
        .unwrap();
    assert_eq!(del.status(), 200);
    let proc_dir = format!("/proc/{}", pa.as_u64().unwrap());
    let mut gone = false;
    for _ in 0..100 {
        if !std::path::Path::new(&proc_dir).exists() {
            gone = true;
            break;
        }
        tokio::time::sleep(std::time::Duration::from_millis(50)).await;
    }
    assert!(gone, "backend {proc_dir} still running after DELETE");
    // The other session's backend is untouched.
    let r = gw
        .legacy(
            "own",
            &b,
            call(json!(3), "echo", json!({"text":"still here"})),
        )
        .await;
    assert_eq!(r.text(), "still here");
    gw.shutdown().await;
}

#[tokio::test]
async fn idle_sessions_expire() {
    let gw = Gateway::start(&format!(
        "[limits]\nsession_idle_timeout = \"300ms\"\n{}",
        demo_target("demo", "")
    ))
    .await;
    let sid = gw.initialize("demo").await;
    let r = gw
        .legacy(
            "demo",
            &sid,
            json!({"jsonrpc":"2.0","id":1,"method":"ping"}),
        )
        .await;
    assert_eq!(r.status, 200);
    let mut expired = false;
    for _ in 0..40 {
        tokio::time::sleep(std::time::Duration::from_millis(100)).await;
        let r = gw
            .http
            .get(gw.url("/metrics"))
            .send()
            .await
            .unwrap()
            .text()
            .await
            .unwrap();
        if r.contains("mcpod_sessions{target=\"demo\"} 0") {
            expired = true;
            break;
        }
    }
    assert!(expired, "session never expired");
    let r = gw
        .legacy(
            "demo",
            &sid,
            json!({"jsonrpc":"2.0","id":2,"method":"ping"}),
        )
        .await;
    assert_eq!((r.status, r.code()), (404, Some(-32001)));
    gw.shutdown().await;
}

#[tokio::test]
async fn log_messages_reach_the_caller() {
    let gw = Gateway::start(&format!(
        "[targets.old]\ncommand = \"{}\"\nargs = [\"demo-server\", \"--legacy-only\"]\n",
        common::DEMO
    ))
    .await;
    let caller = gw.initialize("old").await;
    let other = gw.initialize("old").await;
    let open = |sid: String| {
        gw.http
            .get(gw.url("/mcp/old"))
            .header("mcp-session-id", sid)
            .header("accept", "text/event-stream")
            .send()
    };
    let mut caller_stream = open(caller.clone()).await.unwrap();
    let mut other_stream = open(other.clone()).await.unwrap();
    let r = gw
        .legacy(
            "old",
            &caller,
            json!({"jsonrpc":"2.0","id":1,"method":"logging/setLevel","params":{"level":"debug"}}),
        )
        .await;
    assert_eq!(r.status, 200, "{}", r.body);
    // The caller keeps a call in flight meanwhile, so it is unambiguously
    // the only session with one when the log message comes through.
    let (slow, r) = tokio::join!(
        gw.legacy("old", &caller, call(json!(3), "sleep", json!({"ms": 800}))),
        async {
            tokio::time::sleep(std::time::Duration::from_millis(100)).await;
            gw.legacy(
                "old",
                &caller,
                call(
                    json!(2),
                    "log",
                    json!({"level":"warning","message":"careful"}),
                ),
            )
            .await
        }
    );
    assert_eq!(slow.text(), "slept 800 ms");
    assert_eq!(
        r.json()["result"]["structuredContent"]["emitted"],
        true,
        "{}",
        r.body
    );
    let got = common::read_events(&mut caller_stream, |e| !e.is_empty()).await;
    assert_eq!(got[0]["method"], "notifications/message", "{got:?}");
    assert_eq!(got[0]["params"]["level"], "warning");
    // The other session, with no call in flight, did not get it.
    let nothing = tokio::time::timeout(
        std::time::Duration::from_millis(300),
        common::read_events(&mut other_stream, |e| !e.is_empty()),
    )
    .await;
    assert!(nothing.is_err(), "{nothing:?}");
    gw.shutdown().await;
}

/// Reads SSE events (name, data) from `resp` until `until` holds.
async fn read_named_events(
    resp: &mut reqwest::Response,
    buf: &mut String,
    mut until: impl FnMut(&[(String, String)]) -> bool,
) -> Vec<(String, String)> {
    let mut out = Vec::new();
    loop {
        while let Some(end) = buf.find("\n\n") {
            let event: String = buf.drain(..end + 2).collect();
            let mut name = "message".to_owned();
            let mut data = String::new();
            for line in event.lines() {
                if let Some(n) = line.strip_prefix("event: ") {
                    name = n.to_owned();
                } else if let Some(d) = line.strip_prefix("data: ") {
                    data.push_str(d);
                }
            }
            if !data.is_empty() {
                out.push((name, data));
            }
        }
        if until(&out) {
            return out;
        }
        let chunk = tokio::time::timeout(std::time::Duration::from_secs(20), resp.chunk())
            .await
            .expect("an SSE event in time")
            .unwrap()
            .expect("the stream still open");
        buf.push_str(std::str::from_utf8(&chunk).unwrap());
    }
}

#[tokio::test]
async fn the_2024_11_05_http_sse_transport_carries_a_whole_session() {
    let gw = Gateway::demo().await;
    let mut sse = gw
        .http
        .get(gw.url("/mcp/demo/sse"))
        .header("accept", "text/event-stream")
        .send()
        .await
        .unwrap();
    assert_eq!(sse.status(), 200);
    let mut buf = String::new();
    let events = read_named_events(&mut sse, &mut buf, |e| !e.is_empty()).await;
    assert_eq!(events[0].0, "endpoint");
    let endpoint = events[0].1.clone();
    assert!(
        endpoint.starts_with("/mcp/demo/messages?sessionId="),
        "{endpoint}"
    );
    let post = |body: Value| {
        let http = gw.http.clone();
        let url = gw.url(&endpoint);
        async move {
            http.post(url)
                .header("content-type", "application/json")
                .body(body.to_string())
                .send()
                .await
                .unwrap()
                .status()
        }
    };
    // Every POST is accepted at once; its answer comes on the stream.
    let init = json!({"jsonrpc":"2.0","id":1,"method":"initialize","params":{
        "protocolVersion":"2024-11-05","capabilities":{},"clientInfo":{"name":"old","version":"1"}}});
    assert_eq!(post(init).await, 202);
    let got = read_named_events(&mut sse, &mut buf, |e| !e.is_empty()).await;
    let answer: Value = serde_json::from_str(&got[0].1).unwrap();
    assert_eq!(answer["id"], 1);
    assert_eq!(answer["result"]["protocolVersion"], "2024-11-05");
    assert_eq!(
        post(json!({"jsonrpc":"2.0","method":"notifications/initialized"})).await,
        202
    );
    assert_eq!(
        post(call(json!("p"), "progress", json!({"steps": 2}))).await,
        202
    );
    let got = read_named_events(&mut sse, &mut buf, |e| {
        e.iter().any(|(_, d)| d.contains("\"result\""))
    })
    .await;
    let frames: Vec<Value> = got
        .iter()
        .map(|(_, d)| serde_json::from_str(d).unwrap())
        .collect();
    assert!(
        frames
            .iter()
            .all(|f| f["id"] == "p" || f["method"].is_string()),
        "{frames:?}"
    );
    assert_eq!(frames.last().unwrap()["id"], "p");
    // An unknown endpoint is told to open the stream again.
    let r = gw
        .http
        .post(gw.url("/mcp/demo/messages?sessionId=nope"))
        .header("content-type", "application/json")
        .body(call(json!(9), "echo", json!({"text":"x"})).to_string())
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 404);
    // Closing the stream ends the session.
    drop(sse);
    let mut ended = false;
    for _ in 0..50 {
        tokio::time::sleep(std::time::Duration::from_millis(50)).await;
        if post(call(json!(10), "echo", json!({"text":"x"}))).await == 404 {
            ended = true;
            break;
        }
    }
    assert!(ended, "the session outlived its stream");
    gw.shutdown().await;
}

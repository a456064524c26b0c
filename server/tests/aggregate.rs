//! Aggregates end to end over loopback: one endpoint for three real
//! members — a legacy-only demo server (`files`, paged two tools at a
//! time), a 2026-07-28-only one with other tools (`git`), and one that
//! never becomes ready (`search`) — as a 2026-07-28 client sees them.

#![allow(clippy::unwrap_used)]

mod common;

use std::time::Duration;

use common::{DEMO, Gateway, MODERN, eventually, metric, read_events};
use serde_json::{Value, json};

/// The three members and the aggregate `all` over them.
fn config() -> String {
    format!(
        "[targets.files]\ncommand = \"{DEMO}\"\n\
         args = [\"demo-server\", \"--legacy-only\", \"--tools\", \"echo,add,progress,sleep,stats,notify_change\", \"--page-size\", \"2\"]\n\
         [targets.git]\ncommand = \"{DEMO}\"\n\
         args = [\"demo-server\", \"--modern-only\", \"--tools\", \"echo,stats,notify_change\"]\n\
         [targets.search]\ncommand = \"/bin/sh\"\nargs = [\"-c\", \"exec sleep 3600\"]\n\
         [targets.all]\nkind = \"aggregate\"\nmembers = [\"files\", \"git\", \"search\"]\n\
         member_timeout = \"500ms\"\n"
    )
}

fn names(list: &Value, key: &str) -> Vec<String> {
    list["result"][key]
        .as_array()
        .unwrap_or_else(|| panic!("no {key} in {list}"))
        .iter()
        .map(|t| t["name"].as_str().unwrap().to_owned())
        .collect()
}

#[tokio::test(flavor = "multi_thread")]
async fn merged_lists_carry_each_members_prefix_and_page_across_members() {
    let gw = Gateway::start(&config()).await;
    let first = gw.modern("all", json!(1), "tools/list", json!({})).await;
    assert_eq!(first.status, 200, "{}", first.body);
    let first = first.json();
    assert_eq!(
        names(&first, "tools"),
        [
            "files_echo",
            "files_add",
            "git_echo",
            "git_notify_change",
            "git_stats"
        ]
    );
    assert_eq!(
        first["result"]["_meta"]["io.mcpod/omittedMembers"],
        json!(["search"])
    );
    let mut seen = names(&first, "tools");
    let mut cursor = first["result"]["nextCursor"].as_str().map(str::to_owned);
    let mut pages = 1;
    while let Some(c) = cursor {
        assert!(c.starts_with("mcpod-agg1."), "{c}");
        let page = gw
            .modern("all", json!(pages + 1), "tools/list", json!({"cursor": c}))
            .await
            .json();
        seen.extend(names(&page, "tools"));
        cursor = page["result"]["nextCursor"].as_str().map(str::to_owned);
        pages += 1;
        assert!(pages <= 5, "the pages never end: {page}");
    }
    assert_eq!(pages, 3, "files' six tools are three pages of two");
    assert_eq!(
        seen,
        [
            "files_echo",
            "files_add",
            "git_echo",
            "git_notify_change",
            "git_stats",
            "files_sleep",
            "files_progress",
            "files_notify_change",
            "files_stats"
        ]
    );
    let bad = gw
        .modern("all", json!(9), "tools/list", json!({"cursor": "p2"}))
        .await;
    assert_eq!(bad.code(), Some(-32602), "{}", bad.body);
    let omitted = metric(
        &gw,
        "mcpod_aggregate_member_requests_total{target=\"all\",member=\"search\",outcome=\"omitted\"}",
        None,
    )
    .await;
    assert!(omitted >= 1, "the slow member was counted as left out");
    gw.shutdown().await;
}

#[tokio::test(flavor = "multi_thread")]
async fn calls_are_routed_by_prefix_and_answered_with_the_callers_ids() {
    let gw = Gateway::start(&config()).await;
    let legacy = gw
        .modern(
            "all",
            json!("call-1"),
            "tools/call",
            json!({"name": "files_echo", "arguments": {"text": "to files"}}),
        )
        .await;
    assert_eq!(legacy.json()["id"], json!("call-1"));
    assert_eq!(legacy.text(), "to files");
    let modern = gw
        .modern(
            "all",
            json!(1152921504606846976u64),
            "tools/call",
            json!({"name": "git_echo", "arguments": {"text": "to git"}}),
        )
        .await;
    assert!(
        modern.body.contains("\"id\":1152921504606846976"),
        "{}",
        modern.body
    );
    assert_eq!(modern.text(), "to git");
    assert_eq!(modern.json()["result"]["resultType"], "complete");
    // Each member got its own name: git has no `add`, files has it.
    let stats: Value = serde_json::from_str(
        &gw.modern(
            "all",
            json!(3),
            "tools/call",
            json!({"name": "git_stats", "arguments": {}}),
        )
        .await
        .text(),
    )
    .unwrap();
    assert!(stats["requests"].as_u64().unwrap() >= 1, "{stats}");
    let unknown = gw
        .modern(
            "all",
            json!(4),
            "tools/call",
            json!({"name": "nobody_echo", "arguments": {}}),
        )
        .await;
    assert_eq!(unknown.code(), Some(-32602), "{}", unknown.body);
    assert!(
        unknown.body.contains("no member's prefix"),
        "{}",
        unknown.body
    );
    let not_served = gw
        .modern(
            "all",
            json!(5),
            "tools/call",
            json!({"name": "git_add", "arguments": {"a": 1, "b": 2}}),
        )
        .await;
    assert!(
        not_served.body.contains("unknown tool: add"),
        "{}",
        not_served.body
    );
    gw.shutdown().await;
}

#[tokio::test(flavor = "multi_thread")]
async fn progress_and_cancellation_travel_through_a_member() {
    let gw = Gateway::start(&config()).await;
    let r = gw
        .modern(
            "all",
            json!("p"),
            "tools/call",
            json!({"name": "files_progress", "arguments": {"steps": 3, "delay_ms": 1},
                   "_meta": {"progressToken": "tok-1"}}),
        )
        .await;
    assert!(r.is_sse(), "{}", r.body);
    let messages = r.messages();
    let progress: Vec<&Value> = messages
        .iter()
        .filter(|m| m["method"] == "notifications/progress")
        .collect();
    assert_eq!(progress.len(), 3, "{messages:?}");
    assert!(
        progress
            .iter()
            .all(|p| p["params"]["progressToken"] == "tok-1")
    );
    assert_eq!(messages.last().unwrap()["id"], json!("p"));

    // A call whose client goes away is cancelled at the member.
    let body = json!({"jsonrpc": "2.0", "id": "long", "method": "tools/call", "params": {
        "name": "files_sleep", "arguments": {"ms": 30000},
        "_meta": {"io.modelcontextprotocol/protocolVersion": MODERN,
                  "io.modelcontextprotocol/clientCapabilities": {}}}});
    let request = gw
        .http
        .post(gw.url("/mcp/all"))
        .header("content-type", "application/json")
        .header("accept", "application/json, text/event-stream")
        .header("mcp-protocol-version", MODERN)
        .header("mcp-method", "tools/call")
        .header("mcp-name", "files_sleep")
        .body(body.to_string())
        .timeout(Duration::from_millis(300))
        .send()
        .await;
    assert!(request.is_err(), "the sleep answered early");
    eventually(
        Duration::from_secs(10),
        "the member saw the cancel",
        || async {
            let text = gw
                .modern(
                    "all",
                    json!("s"),
                    "tools/call",
                    json!({"name": "files_stats", "arguments": {}}),
                )
                .await
                .text();
            let stats: Value = serde_json::from_str(&text).unwrap();
            (stats["cancelled"].as_array().is_some_and(|c| !c.is_empty())).then_some(())
        },
    )
    .await;
    gw.shutdown().await;
}

#[tokio::test(flavor = "multi_thread")]
async fn discovery_merges_the_members_and_names_the_one_left_out() {
    let gw = Gateway::start(&config()).await;
    let d = gw
        .modern("all", json!(1), "server/discover", json!({}))
        .await;
    assert_eq!(d.status, 200, "{}", d.body);
    let result = &d.json()["result"];
    assert_eq!(result["supportedVersions"], json!([MODERN]));
    assert_eq!(
        result["_meta"]["io.modelcontextprotocol/serverInfo"]["name"],
        "all"
    );
    assert_eq!(
        result["_meta"]["io.mcpod/omittedMembers"],
        json!(["search"])
    );
    let instructions = result["instructions"].as_str().unwrap();
    assert!(instructions.starts_with("## files\n\n"), "{instructions}");
    assert!(instructions.contains("\n\n## git\n\n"), "{instructions}");
    assert!(result["capabilities"]["tools"].is_object(), "{result}");
    gw.shutdown().await;
}

#[tokio::test(flavor = "multi_thread")]
async fn a_uri_two_members_list_is_refused_as_ambiguous() {
    let gw = Gateway::start(&config()).await;
    let list = gw
        .modern("all", json!(1), "resources/list", json!({}))
        .await
        .json();
    let uris: Vec<&str> = list["result"]["resources"]
        .as_array()
        .unwrap()
        .iter()
        .map(|r| r["uri"].as_str().unwrap())
        .collect();
    assert_eq!(
        uris.iter().filter(|u| **u == "demo://hello").count(),
        2,
        "{list}"
    );
    let read = gw
        .modern(
            "all",
            json!(2),
            "resources/read",
            json!({"uri": "demo://hello"}),
        )
        .await;
    assert_eq!(read.code(), Some(-32602), "{}", read.body);
    assert!(read.body.contains("members files, git"), "{}", read.body);
    let unknown = gw
        .modern(
            "all",
            json!(3),
            "resources/read",
            json!({"uri": "other://x"}),
        )
        .await;
    assert!(
        unknown.body.contains("no member of aggregate `all` lists"),
        "{}",
        unknown.body
    );
    gw.shutdown().await;
}

#[tokio::test(flavor = "multi_thread")]
async fn names_that_collide_are_refused_at_start_naming_both() {
    let toml = format!(
        "[targets.a]\ncommand = \"{DEMO}\"\nargs = [\"demo-server\", \"--tools\", \"echo\"]\n\
         [targets.b]\ncommand = \"{DEMO}\"\nargs = [\"demo-server\", \"--tools\", \"echo,add\"]\n\
         [targets.both]\nkind = \"aggregate\"\nmembers = [\"a\", \"b\"]\n\
         prefixes = {{ a = \"\", b = \"\" }}\n"
    );
    let gw = Gateway::start(&toml).await;
    let refused = eventually(Duration::from_secs(20), "the collision refused", || async {
        let r = gw
            .modern(
                "both",
                json!(1),
                "tools/call",
                json!({"name": "add", "arguments": {"a": 1, "b": 1}}),
            )
            .await;
        (r.status == 503).then_some(r)
    })
    .await;
    assert!(
        refused
            .body
            .contains("`echo` of member `a` and `echo` of member `b` both appear as `echo`"),
        "{}",
        refused.body
    );
    gw.shutdown().await;
}

/// A legacy request body.
fn rpc(id: Value, method: &str, params: Value) -> Value {
    json!({"jsonrpc": "2.0", "id": id, "method": method, "params": params})
}

#[tokio::test(flavor = "multi_thread")]
async fn a_legacy_session_sees_merged_lists_with_prefixes_and_pages() {
    let gw = Gateway::start(&config()).await;
    let init = gw
        .post(
            "/mcp/all",
            &[],
            &rpc(
                json!(0),
                "initialize",
                json!({"protocolVersion": "2025-06-18",
                "capabilities": {}, "clientInfo": {"name": "test", "version": "1"}}),
            ),
        )
        .await;
    assert_eq!(init.status, 200, "{}", init.body);
    let result = &init.json()["result"];
    assert_eq!(result["protocolVersion"], "2025-06-18", "{result}");
    assert_eq!(result["serverInfo"]["name"], "all", "{result}");
    assert_eq!(
        result["capabilities"]["tools"]["listChanged"], true,
        "{result}"
    );
    let sid = init.header("mcp-session-id").unwrap();
    assert!(sid.starts_with("mcpod-agg1."), "{sid}");
    let done = gw
        .legacy(
            "all",
            &sid,
            json!({"jsonrpc": "2.0", "method": "notifications/initialized"}),
        )
        .await;
    assert_eq!(done.status, 202, "{}", done.body);
    let ping = gw
        .legacy("all", &sid, rpc(json!("p"), "ping", json!({})))
        .await;
    assert_eq!(
        ping.json(),
        json!({"jsonrpc": "2.0", "id": "p", "result": {}})
    );

    let first = gw
        .legacy("all", &sid, rpc(json!(1), "tools/list", json!({})))
        .await;
    assert_eq!(first.status, 200, "{}", first.body);
    let first = first.json();
    assert_eq!(
        names(&first, "tools"),
        [
            "files_echo",
            "files_add",
            "git_echo",
            "git_notify_change",
            "git_stats"
        ]
    );
    assert!(first["result"].get("resultType").is_none(), "{first}");
    let mut seen = names(&first, "tools");
    let mut cursor = first["result"]["nextCursor"].as_str().map(str::to_owned);
    let mut pages = 1;
    while let Some(c) = cursor {
        let page = gw
            .legacy(
                "all",
                &sid,
                rpc(json!(pages + 1), "tools/list", json!({"cursor": c})),
            )
            .await
            .json();
        seen.extend(names(&page, "tools"));
        cursor = page["result"]["nextCursor"].as_str().map(str::to_owned);
        pages += 1;
        assert!(pages <= 5, "the pages never end: {page}");
    }
    assert_eq!(pages, 3, "files' six tools are three pages of two");
    assert_eq!(seen.len(), 9, "{seen:?}");
    let level = gw
        .legacy(
            "all",
            &sid,
            rpc(json!("l"), "logging/setLevel", json!({"level": "debug"})),
        )
        .await;
    assert_eq!(level.json()["result"], json!({}), "{}", level.body);
    gw.shutdown().await;
}

#[tokio::test(flavor = "multi_thread")]
async fn a_legacy_sessions_calls_are_routed_with_its_ids_progress_and_cancellation() {
    let gw = Gateway::start(&config()).await;
    let sid = gw.initialize("all").await;
    let files = gw
        .legacy(
            "all",
            &sid,
            common::call(json!("call-1"), "files_echo", json!({"text": "to files"})),
        )
        .await;
    assert_eq!(files.json()["id"], json!("call-1"), "{}", files.body);
    assert_eq!(files.text(), "to files");
    let git = gw
        .legacy(
            "all",
            &sid,
            common::call(json!(77), "git_echo", json!({"text": "to git"})),
        )
        .await;
    assert_eq!(git.json()["id"], json!(77), "{}", git.body);
    assert_eq!(git.text(), "to git");
    let unknown = gw
        .legacy(
            "all",
            &sid,
            common::call(json!(5), "nobody_echo", json!({})),
        )
        .await;
    assert_eq!(unknown.code(), Some(-32602), "{}", unknown.body);

    let progress = gw
        .legacy(
            "all",
            &sid,
            rpc(
                json!("p"),
                "tools/call",
                json!({"name": "files_progress",
                "arguments": {"steps": 3, "delay_ms": 1}, "_meta": {"progressToken": "tok-1"}}),
            ),
        )
        .await;
    let messages = progress.messages();
    let steps: Vec<&Value> = messages
        .iter()
        .filter(|m| m["method"] == "notifications/progress")
        .collect();
    assert_eq!(steps.len(), 3, "{messages:?}");
    assert!(
        steps
            .iter()
            .all(|p| p["params"]["progressToken"] == "tok-1")
    );
    assert_eq!(messages.last().unwrap()["id"], json!("p"));

    // The caller cancels by its own id; the member's call ends.
    let long = {
        let http = gw.http.clone();
        let url = gw.url("/mcp/all");
        let sid = sid.clone();
        tokio::spawn(async move {
            http.post(url)
                .header("content-type", "application/json")
                .header("accept", "application/json, text/event-stream")
                .header("mcp-session-id", sid)
                .body(common::call(json!("long"), "files_sleep", json!({"ms": 30000})).to_string())
                .send()
                .await
                .map(|r| r.status().as_u16())
        })
    };
    eventually(
        Duration::from_secs(10),
        "the member saw the cancel",
        || async {
            let cancel = gw
                .legacy(
                    "all",
                    &sid,
                    json!({"jsonrpc": "2.0", "method": "notifications/cancelled",
                       "params": {"requestId": "long", "reason": "enough"}}),
                )
                .await;
            assert_eq!(cancel.status, 202, "{}", cancel.body);
            let text = gw
                .legacy(
                    "all",
                    &sid,
                    common::call(json!("s"), "files_stats", json!({})),
                )
                .await
                .text();
            let stats: Value = serde_json::from_str(&text).unwrap();
            (stats["cancelled"].as_array().is_some_and(|c| !c.is_empty())).then_some(())
        },
    )
    .await;
    long.abort();
    gw.shutdown().await;
}

#[tokio::test(flavor = "multi_thread")]
async fn a_members_list_change_reaches_a_legacy_sessions_stream_and_delete_ends_it() {
    let gw = Gateway::start(&config()).await;
    let sid = gw.initialize("all").await;
    let mut stream = gw
        .http
        .get(gw.url("/mcp/all"))
        .header("accept", "text/event-stream")
        .header("mcp-session-id", &sid)
        .send()
        .await
        .unwrap();
    assert_eq!(stream.status(), 200);
    assert_eq!(
        stream
            .headers()
            .get("mcp-session-id")
            .unwrap()
            .to_str()
            .unwrap(),
        sid
    );
    for tool in ["files_notify_change", "git_notify_change"] {
        let r = gw
            .legacy("all", &sid, common::call(json!(tool), tool, json!({})))
            .await;
        assert_eq!(r.status, 200, "{tool}: {}", r.body);
        let events = read_events(&mut stream, |e| {
            e.iter()
                .any(|m| m["method"] == "notifications/tools/list_changed")
        })
        .await;
        assert!(
            events
                .iter()
                .any(|m| m["method"] == "notifications/tools/list_changed"),
            "{tool}'s change did not come: {events:?}"
        );
    }
    drop(stream);
    let end = gw
        .http
        .delete(gw.url("/mcp/all"))
        .header("mcp-session-id", &sid)
        .send()
        .await
        .unwrap();
    assert_eq!(end.status(), 200);
    let after = gw
        .legacy(
            "all",
            &sid,
            common::call(json!(1), "files_echo", json!({"text": "x"})),
        )
        .await;
    assert_eq!(after.status, 404, "{}", after.body);
    let made_up = gw
        .legacy(
            "all",
            "mcpod-agg1.x.y.z",
            rpc(json!(1), "tools/list", json!({})),
        )
        .await;
    assert_eq!(made_up.status, 404, "{}", made_up.body);
    gw.shutdown().await;
}

#[tokio::test(flavor = "multi_thread")]
async fn a_members_list_change_reaches_a_listening_client() {
    let gw = Gateway::start(&config()).await;
    let body = json!({"jsonrpc": "2.0", "id": "listen-1", "method": "subscriptions/listen", "params": {
        "notifications": {"toolsListChanged": true},
        "_meta": {"io.modelcontextprotocol/protocolVersion": MODERN,
                  "io.modelcontextprotocol/clientCapabilities": {}}}});
    let mut stream = gw
        .http
        .post(gw.url("/mcp/all"))
        .header("content-type", "application/json")
        .header("accept", "application/json, text/event-stream")
        .header("mcp-protocol-version", MODERN)
        .header("mcp-method", "subscriptions/listen")
        .body(body.to_string())
        .send()
        .await
        .unwrap();
    assert_eq!(stream.status(), 200);
    let ack = read_events(&mut stream, |e| !e.is_empty()).await;
    assert_eq!(
        ack[0]["method"], "notifications/subscriptions/acknowledged",
        "{ack:?}"
    );
    for (member, tool) in [
        ("files", "files_notify_change"),
        ("git", "git_notify_change"),
    ] {
        let r = gw
            .modern(
                "all",
                json!(tool),
                "tools/call",
                json!({"name": tool, "arguments": {}}),
            )
            .await;
        assert_eq!(r.status, 200, "{member}: {}", r.body);
        let events = read_events(&mut stream, |e| {
            e.iter()
                .any(|m| m["method"] == "notifications/tools/list_changed")
        })
        .await;
        assert!(
            events
                .iter()
                .any(|m| m["method"] == "notifications/tools/list_changed"),
            "{member}'s change did not come: {events:?}"
        );
        assert!(
            events
                .iter()
                .all(|m| m["method"] != "notifications/subscriptions/acknowledged"),
            "one acknowledgement only: {events:?}"
        );
    }
    drop(stream);
    gw.shutdown().await;
}

#[tokio::test(flavor = "multi_thread")]
async fn the_aggregates_policy_applies_to_its_prefixed_names() {
    let token = "ci-token-0123456789abcdef";
    let toml = format!(
        "[auth]\nnamed_tokens = {{ ci = \"{token}\" }}\n{}\
         [[targets.all.policy]]\ntokens = [\"ci\"]\nallow = [\"tool:files_*\"]\n",
        config()
    );
    let gw = Gateway::start(&toml).await;
    let bearer = format!("Bearer {token}");
    let auth = [("authorization", bearer.as_str())];
    let list = gw
        .modern_with("all", json!(1), "tools/list", json!({}), &auth)
        .await
        .json();
    let listed = names(&list, "tools");
    assert_eq!(listed, ["files_echo", "files_add"], "{list}");
    let denied = gw
        .modern_with(
            "all",
            json!(2),
            "tools/call",
            json!({"name": "git_echo", "arguments": {"text": "x"}}),
            &auth,
        )
        .await;
    assert_eq!(denied.code(), Some(-32602), "{}", denied.body);
    assert!(denied.body.contains("`git_echo`"), "{}", denied.body);
    let allowed = gw
        .modern_with(
            "all",
            json!(3),
            "tools/call",
            json!({"name": "files_echo", "arguments": {"text": "ok"}}),
            &auth,
        )
        .await;
    assert_eq!(allowed.text(), "ok");
    let unauthenticated = gw.modern("all", json!(4), "tools/list", json!({})).await;
    assert_eq!(unauthenticated.status, 401, "{}", unauthenticated.body);
    gw.shutdown().await;
}

/// The pid of member `a`'s backend, through the aggregate.
async fn a_pid(gw: &Gateway) -> u64 {
    let text = gw
        .modern(
            "all",
            json!("pid"),
            "tools/call",
            json!({"name": "a_stats", "arguments": {}}),
        )
        .await
        .text();
    serde_json::from_str::<Value>(&text).unwrap()["pid"]
        .as_u64()
        .unwrap()
}

#[tokio::test(flavor = "multi_thread")]
async fn a_reload_adds_a_member_and_keeps_the_others_backend() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("mcpod.toml");
    let write = |members: &[&str]| {
        let mut toml = String::from("[auth]\ndisabled = true\n");
        for m in members {
            toml.push_str(&format!(
                "[targets.{m}]\ncommand = \"{DEMO}\"\nargs = [\"demo-server\", \"--tools\", \"echo,stats\"]\n"
            ));
        }
        let quoted: Vec<String> = members.iter().map(|m| format!("\"{m}\"")).collect();
        toml.push_str(&format!(
            "[targets.all]\nkind = \"aggregate\"\nmembers = [{}]\n",
            quoted.join(", ")
        ));
        std::fs::write(&path, toml).unwrap();
    };
    write(&["a"]);
    let served = common::Served::start(&path, &[("NO_COLOR", "1")]).await;
    let gw = &served.gateway;
    let before = a_pid(gw).await;
    let list = gw
        .modern("all", json!(1), "tools/list", json!({}))
        .await
        .json();
    assert_eq!(names(&list, "tools"), ["a_echo", "a_stats"]);
    write(&["a", "b"]);
    served.signal("HUP");
    eventually(
        Duration::from_secs(20),
        "b's tools in the aggregate",
        || async {
            let list = gw
                .modern("all", json!(2), "tools/list", json!({}))
                .await
                .json();
            (names(&list, "tools") == ["a_echo", "a_stats", "b_echo", "b_stats"]).then_some(())
        },
    )
    .await;
    assert_eq!(a_pid(gw).await, before, "a's backend was kept");
    served.stop().await;
}

#[tokio::test(flavor = "multi_thread")]
async fn a_memoh_bot_mapped_to_an_aggregate_lists_and_calls_its_members() {
    let gw = Gateway::start(&format!("{}[bots.agent]\ntarget = \"all\"\n", config())).await;
    let fs = "/bots/agent/container/fs-mcp";
    let init = gw
        .post(
            fs,
            &[],
            &rpc(
                json!("i"),
                "initialize",
                json!({"protocolVersion": "2025-06-18"}),
            ),
        )
        .await;
    assert_eq!(
        init.json()["result"]["serverInfo"]["name"],
        "all",
        "{}",
        init.body
    );
    let list = gw
        .post(fs, &[], &rpc(json!(1), "tools/list", json!({})))
        .await;
    assert_eq!(list.status, 200, "{}", list.body);
    let list = list.json();
    assert_eq!(
        names(&list, "tools"),
        [
            "files_echo",
            "files_add",
            "git_echo",
            "git_notify_change",
            "git_stats"
        ]
    );
    assert!(list["result"]["nextCursor"].is_string(), "{list}");
    assert!(list["result"].get("resultType").is_none(), "{list}");
    for (id, tool) in [("a", "files_echo"), ("b", "git_echo")] {
        let r = gw
            .post(
                fs,
                &[],
                &common::call(json!(id), tool, json!({"text": tool})),
            )
            .await;
        assert_eq!(r.json()["id"], json!(id), "{}", r.body);
        assert_eq!(r.text(), tool);
    }
    let unknown = gw
        .post(fs, &[], &common::call(json!(9), "nobody_echo", json!({})))
        .await;
    assert_eq!(unknown.code(), Some(-32602), "{}", unknown.body);
    let stdio = gw
        .post(
            "/bots/agent/mcp-stdio",
            &[],
            &json!({"command": "/bin/true"}),
        )
        .await;
    assert_eq!(stdio.status, 400, "{}", stdio.body);
    gw.shutdown().await;
}

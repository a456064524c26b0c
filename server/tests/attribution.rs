//! Server requests of a shared legacy backend under concurrency: calls
//! that may ask the client take turns, so each question reaches the client
//! whose call asked it, while other calls (and parked `input_required`
//! calls) go on.

#![allow(clippy::unwrap_used, missing_docs)]

mod common;

use std::time::Duration;

use common::{DEMO, Gateway, MODERN, Reply, call, read_events, stats};
use futures::StreamExt;
use serde_json::{Value, json};

/// A shared target running the legacy-only demo (its `ask` sends real
/// server requests), with `extra` config lines.
fn legacy_only(name: &str, extra: &str) -> String {
    format!(
        "[targets.{name}]\ncommand = \"{DEMO}\"\nargs = [\"demo-server\", \"--legacy-only\"]\n{extra}\n"
    )
}

/// A client with no overall deadline: a call waiting for its turn to ask
/// gets its first event late.
fn patient() -> reqwest::Client {
    reqwest::Client::builder()
        .timeout(Duration::from_secs(300))
        .build()
        .unwrap()
}

fn sampling_answer(id: &Value, text: &str) -> Value {
    json!({"jsonrpc":"2.0","id":id,"result":{
        "role":"assistant","content":{"type":"text","text":text},"model":"m"}})
}

/// The text of a sampling request's first message.
fn question_text(params: &Value) -> &str {
    params["messages"][0]["content"]["text"]
        .as_str()
        .unwrap_or("")
}

/// A legacy session calls `ask` for sampling with its own question, gets
/// the backend's request on the call's SSE stream, answers it, and checks
/// the question and the result are its own. `Err` says what went wrong.
async fn legacy_ask(
    gw: &Gateway,
    http: &reqwest::Client,
    target: &str,
    sid: &str,
    n: usize,
) -> Result<(), String> {
    let question = format!("question #{n} of this session");
    let answer = format!("answer #{n} from this session");
    let mut resp = http
        .post(gw.url(&format!("/mcp/{target}")))
        .header("content-type", "application/json")
        .header("accept", "application/json, text/event-stream")
        .header("mcp-session-id", sid)
        .body(
            call(
                json!(n),
                "ask",
                json!({"kind":"sampling","prompt":question}),
            )
            .to_string(),
        )
        .send()
        .await
        .map_err(|e| format!("{n}: {e}"))?;
    let events = read_events(&mut resp, |e| !e.is_empty()).await;
    let Some(first) = events.first() else {
        return Err(format!("{n}: no event"));
    };
    if first["method"] != "sampling/createMessage" {
        return Err(format!("{n}: expected the sampling request, got {first}"));
    }
    if question_text(&first["params"]) != question {
        return Err(format!("{n}: got another's question: {first}"));
    }
    let accepted = gw
        .legacy(target, sid, sampling_answer(&first["id"], &answer))
        .await;
    if accepted.status != 202 {
        return Err(format!("{n}: the answer got {}", accepted.status));
    }
    let rest = read_events(&mut resp, |e| {
        e.iter().any(|m| m.get("id") == Some(&json!(n)))
    })
    .await;
    let Some(result) = rest.iter().find(|m| m.get("id") == Some(&json!(n))) else {
        return Err(format!("{n}: no result in {rest:?}"));
    };
    let text = result["result"]["content"][0]["text"]
        .as_str()
        .unwrap_or("");
    if result["result"]["isError"] == true || !text.contains(&format!("\"text\":\"{answer}\"")) {
        return Err(format!("{n}: not its own answer: {result}"));
    }
    Ok(())
}

/// `count` legacy sessions of `target`, opened a few at a time.
async fn sessions(gw: &Gateway, target: &str, count: usize) -> Vec<String> {
    futures::stream::iter(0..count)
        .map(|_| gw.initialize(target))
        .buffer_unordered(32)
        .collect()
        .await
}

/// Every session asks at once; the failures.
async fn ask_all(gw: &Gateway, target: &str, sids: &[String], from: usize) -> Vec<String> {
    let http = patient();
    let runs = sids
        .iter()
        .enumerate()
        .map(|(i, sid)| legacy_ask(gw, &http, target, sid, from + i));
    futures::future::join_all(runs)
        .await
        .into_iter()
        .filter_map(Result::err)
        .collect()
}

/// A call that keeps the backend busy without asking (so a question is
/// never the only call's), until the task is aborted.
fn busy(gw: &Gateway, target: &str, sid: &str) -> tokio::task::JoinHandle<()> {
    let req = patient()
        .post(gw.url(&format!("/mcp/{target}")))
        .header("content-type", "application/json")
        .header("accept", "application/json, text/event-stream")
        .header("mcp-session-id", sid)
        .body(call(json!("busy"), "sleep", json!({"ms": 120_000})).to_string());
    tokio::spawn(async move {
        let _ = req.send().await;
    })
}

/// Waits until the backend works on `n` calls (its `stats`).
async fn wait_in_flight(gw: &Gateway, target: &str, n: u64) {
    let deadline = tokio::time::Instant::now() + Duration::from_secs(20);
    loop {
        let s = stats(gw, target).await;
        if s["in_flight"].as_u64().unwrap() >= n {
            return;
        }
        assert!(
            tokio::time::Instant::now() < deadline,
            "the backend never had {n} calls in flight: {s}"
        );
        tokio::task::yield_now().await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn five_hundred_concurrent_asks_from_legacy_sessions_each_get_their_own_question_and_answer()
{
    let gw = Gateway::start(&legacy_only(
        "old",
        "asking_tools = [\"ask\"]\ncall_timeout = \"240s\"",
    ))
    .await;
    let sids = sessions(&gw, "old", 500).await;
    let started = std::time::Instant::now();
    let failures = ask_all(&gw, "old", &sids, 0).await;
    let took = started.elapsed();
    assert!(
        failures.is_empty(),
        "{} of 500 failed, e.g. {:?}",
        failures.len(),
        &failures[..failures.len().min(5)]
    );
    eprintln!("500 concurrent asks through one shared legacy backend: {took:?}");
    // One backend did it all, and nothing was left behind.
    let s = stats(&gw, "old").await;
    assert_eq!(s["initialize_count"], 1, "{s}");
    assert_eq!(s["in_flight"], 0, "{s}");
    gw.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_parked_input_required_call_does_not_make_other_clients_sampling_fail() {
    let gw = Gateway::start(&legacy_only("old", "asking_tools = [\"as*\"]")).await;
    let caps = json!({"sampling":{}});
    let modern_ask = |id: &str, question: &str, extra: Value| {
        let mut params = json!({"name":"ask","arguments":{"kind":"sampling","prompt":question},
            "_meta":{"io.modelcontextprotocol/protocolVersion":MODERN,
                "io.modelcontextprotocol/clientCapabilities":caps}});
        if let (Some(p), Some(e)) = (params.as_object_mut(), extra.as_object()) {
            p.extend(e.clone());
        }
        let body = json!({"jsonrpc":"2.0","id":id,"method":"tools/call","params":params});
        let req = gw
            .http
            .post(gw.url("/mcp/old"))
            .header("content-type", "application/json")
            .header("accept", "application/json, text/event-stream")
            .header("mcp-protocol-version", MODERN)
            .header("mcp-method", "tools/call")
            .header("mcp-name", "ask")
            .body(body.to_string());
        async move { Reply::from(req.send().await.unwrap()).await.json() }
    };
    // A 2026-07-28 client's call parks on its question, and stays parked.
    let parked = modern_ask("m1", "the parked question", json!({})).await;
    assert_eq!(parked["result"]["resultType"], "input_required", "{parked}");
    let (key, asked) = parked["result"]["inputRequests"]
        .as_object()
        .unwrap()
        .iter()
        .next()
        .map(|(k, v)| (k.clone(), v.clone()))
        .unwrap();
    assert_eq!(question_text(&asked["params"]), "the parked question");
    // Another session's call keeps the backend busy meanwhile.
    let busy_sid = gw.initialize("old").await;
    let busy = busy(&gw, "old", &busy_sid);
    wait_in_flight(&gw, "old", 2).await;

    // Legacy sessions sample at once: each gets its own question.
    let sids = sessions(&gw, "old", 8).await;
    let failures = ask_all(&gw, "old", &sids, 0).await;
    assert!(failures.is_empty(), "{failures:?}");
    // So does another 2026-07-28 client, in its own round trip.
    let other = modern_ask("m2", "another question", json!({})).await;
    let (other_key, other_asked) = other["result"]["inputRequests"]
        .as_object()
        .unwrap()
        .iter()
        .next()
        .map(|(k, v)| (k.clone(), v.clone()))
        .unwrap();
    assert_eq!(question_text(&other_asked["params"]), "another question");
    let done = modern_ask(
        "m2-retry",
        "another question",
        json!({"inputResponses":{other_key: sampling_answer(&json!(0), "for m2")["result"]},
            "requestState": other["result"]["requestState"]}),
    )
    .await;
    let text = done["result"]["content"][0]["text"].as_str().unwrap();
    assert!(text.contains("for m2"), "{done}");

    // The parked call, answered at last, gets its own answer.
    let done = modern_ask(
        "m1-retry",
        "the parked question",
        json!({"inputResponses":{key: sampling_answer(&json!(0), "for m1")["result"]},
            "requestState": parked["result"]["requestState"]}),
    )
    .await;
    let text = done["result"]["content"][0]["text"].as_str().unwrap();
    assert!(text.contains("for m1"), "{done}");
    busy.abort();
    gw.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn without_asking_tools_the_first_ask_teaches_the_gateway_and_later_concurrent_asks_succeed()
{
    let gw = Gateway::start(&legacy_only("old", "")).await;
    // Alone on the backend, the first ask's question is plainly its own.
    let first = sessions(&gw, "old", 1).await;
    let failures = ask_all(&gw, "old", &first, 0).await;
    assert!(failures.is_empty(), "{failures:?}");
    // From now on asks take turns: many at once, with another call in
    // flight, each get their own question and answer.
    let busy_sid = gw.initialize("old").await;
    let busy = busy(&gw, "old", &busy_sid);
    wait_in_flight(&gw, "old", 1).await;
    let sids = sessions(&gw, "old", 32).await;
    let failures = ask_all(&gw, "old", &sids, 1).await;
    assert!(failures.is_empty(), "{failures:?}");
    busy.abort();
    gw.shutdown().await;
}

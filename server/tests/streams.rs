//! A legacy session's SSE streams: resumption with `Last-Event-ID` (GET
//! streams and POST replies), what a bad or stale id gets, the caps on GET
//! streams (per session 429, per target 503, neither taking call slots),
//! and the stream lifetime, over real HTTP against the demo server.

#![allow(clippy::unwrap_used, missing_docs)]

mod common;

use std::time::Duration;

use common::{Gateway, call};
use serde_json::{Value, json};

/// A target whose demo backend speaks the legacy era (its `log` tool then
/// logs for sessions that set no level), with quick keep-alives so a
/// connection the client dropped is noticed soon.
fn config(limits: &str) -> String {
    format!(
        "[limits]\nsse_keep_alive = \"100ms\"\n{limits}\n[targets.demo]\ncommand = \"{}\"\nargs = [\"demo-server\"]\nera = \"legacy\"\n",
        common::DEMO
    )
}

/// A legacy session at 2025-11-25, whose new GET streams start with a
/// priming event.
async fn session(gw: &Gateway) -> String {
    let r = gw
        .post(
            "/mcp/demo",
            &[],
            &json!({"jsonrpc":"2.0","id":0,"method":"initialize","params":{
                "protocolVersion":"2025-11-25","capabilities":{},
                "clientInfo":{"name":"streams-test","version":"1"}}}),
        )
        .await;
    assert_eq!(r.status, 200, "{}", r.body);
    let sid = r.header("mcp-session-id").unwrap();
    let n = gw
        .legacy(
            "demo",
            &sid,
            json!({"jsonrpc":"2.0","method":"notifications/initialized"}),
        )
        .await;
    assert_eq!(n.status, 202);
    sid
}

/// One SSE event as a client reads it.
#[derive(Debug, Clone)]
struct Event {
    id: Option<String>,
    /// The data, when it is JSON (a message).
    data: Option<Value>,
    /// The data as sent, when not empty.
    text: Option<String>,
    retry: bool,
}

/// An open event stream, read event by event.
struct Sse {
    resp: reqwest::Response,
    buf: String,
}

impl Sse {
    fn new(resp: reqwest::Response) -> Sse {
        assert_eq!(resp.status(), 200);
        assert_eq!(resp.headers()["content-type"], "text/event-stream");
        Sse {
            resp,
            buf: String::new(),
        }
    }

    /// The next event (comments skipped); `None` when the stream ends.
    /// Panics after 20 s without either (keep-alives do not count).
    async fn next(&mut self) -> Option<Event> {
        let deadline = tokio::time::Instant::now() + Duration::from_secs(20);
        loop {
            while let Some(end) = self.buf.find("\n\n") {
                let block: String = self.buf.drain(..end + 2).collect();
                let mut event = Event {
                    id: None,
                    data: None,
                    text: None,
                    retry: false,
                };
                let mut fields = false;
                for line in block.lines() {
                    if let Some(id) = line.strip_prefix("id: ") {
                        event.id = Some(id.to_owned());
                        fields = true;
                    } else if let Some(data) = line.strip_prefix("data: ") {
                        if !data.is_empty() {
                            event.data = serde_json::from_str(data).ok();
                            event.text = Some(data.to_owned());
                        }
                        fields = true;
                    } else if line.starts_with("retry: ") {
                        event.retry = true;
                        fields = true;
                    }
                }
                if fields {
                    return Some(event);
                }
            }
            let chunk = tokio::time::timeout_at(deadline, self.resp.chunk())
                .await
                .expect("no event, nor the end of the stream, within 20 s");
            match chunk {
                Ok(Some(c)) => self.buf.push_str(std::str::from_utf8(&c).unwrap()),
                _ => return None,
            }
        }
    }

    /// Events until one satisfies `done` (included); panics if the stream
    /// ends first.
    async fn until(&mut self, mut done: impl FnMut(&Event) -> bool) -> Vec<Event> {
        let mut out = Vec::new();
        loop {
            let e = self.next().await.expect("the stream ended early");
            let stop = done(&e);
            out.push(e);
            if stop {
                return out;
            }
        }
    }
}

/// `GET /mcp/demo` of session `sid`, resuming after `last` if given.
async fn get(gw: &Gateway, sid: &str, last: Option<&str>) -> reqwest::Response {
    let mut req = gw
        .http
        .get(gw.url("/mcp/demo"))
        .header("mcp-session-id", sid)
        .header("mcp-protocol-version", "2025-11-25")
        .header("accept", "text/event-stream");
    if let Some(last) = last {
        req = req.header("last-event-id", last);
    }
    req.send().await.unwrap()
}

/// Makes the backend log `text` during a call of session `sid` answered
/// in JSON: the log message goes to the session's GET stream.
async fn log(gw: &Gateway, sid: &str, text: &str) {
    let r = gw
        .post_raw(
            "/mcp/demo",
            &[
                ("content-type", "application/json"),
                ("accept", "application/json"),
                ("mcp-session-id", sid),
            ],
            call(json!(text), "log", json!({"message": text})).to_string(),
        )
        .await;
    assert_eq!(r.status, 200, "{}", r.body);
    assert!(r.text().contains("true"), "{}", r.body);
}

/// The text a log event carries.
fn logged(e: &Event) -> Option<&str> {
    let d = e.data.as_ref()?;
    (d["method"] == "notifications/message").then(|| d["params"]["data"].as_str().unwrap())
}

fn is(text: &'static str) -> impl FnMut(&Event) -> bool {
    move |e| logged(e) == Some(text)
}

fn texts(events: &[Event]) -> Vec<&str> {
    events.iter().filter_map(logged).collect()
}

/// `mcpod_streams_open{target="demo"}` from `/metrics`.
async fn streams_open(gw: &Gateway) -> usize {
    let n = common::metric(gw, "mcpod_streams_open{target=\"demo\"}", None).await;
    usize::try_from(n).unwrap()
}

/// Waits until the target has `n` streams open.
async fn wait_streams(gw: &Gateway, n: usize) {
    for _ in 0..400 {
        if streams_open(gw).await == n {
            return;
        }
        tokio::time::sleep(Duration::from_millis(25)).await;
    }
    panic!(
        "the target never had {n} streams open (has {})",
        streams_open(gw).await
    );
}

async fn error_of(resp: reqwest::Response) -> (u16, Option<String>, Value) {
    let status = resp.status().as_u16();
    let retry = resp
        .headers()
        .get("retry-after")
        .map(|v| v.to_str().unwrap().to_owned());
    assert_eq!(resp.headers()["content-type"], "application/json");
    let body: Value = serde_json::from_str(&resp.text().await.unwrap()).unwrap();
    (status, retry, body)
}

#[tokio::test]
async fn a_dropped_get_stream_resumed_with_last_event_id_gets_exactly_what_it_missed() {
    let gw = Gateway::start(&config("")).await;
    let sid = session(&gw).await;
    let mut first = Sse::new(get(&gw, &sid, None).await);
    // A new stream starts with a priming event: an id, no data.
    let priming = first.next().await.unwrap();
    assert!(priming.data.is_none(), "{priming:?}");
    let primed = priming.id.unwrap();

    log(&gw, &sid, "m1").await;
    let got = first.until(is("m1")).await;
    assert_eq!(texts(&got), ["m1"]);
    let after_m1 = got.last().unwrap().id.clone().unwrap();
    assert_ne!(after_m1, primed);
    drop(first);

    // Sent while the client is away: kept for its stream.
    log(&gw, &sid, "m2").await;
    log(&gw, &sid, "m3").await;
    let mut resumed = Sse::new(get(&gw, &sid, Some(&after_m1)).await);
    let mut got = resumed.until(is("m3")).await;
    log(&gw, &sid, "m4").await;
    got.extend(resumed.until(is("m4")).await);
    assert_eq!(texts(&got), ["m2", "m3", "m4"], "{got:?}");
    assert!(
        got.iter().all(|e| e.data.is_some()),
        "no priming on a resume: {got:?}"
    );

    // From the priming id, the whole stream again; the older reading of
    // the same stream is replaced (it ends).
    let mut again = Sse::new(get(&gw, &sid, Some(&primed)).await);
    let all = again.until(is("m4")).await;
    assert_eq!(texts(&all), ["m1", "m2", "m3", "m4"], "{all:?}");
    assert!(resumed.next().await.is_none(), "the replaced reading ended");

    // Ids are unique, and one stream's ids rise.
    let mut ids: Vec<String> = all.iter().map(|e| e.id.clone().unwrap()).collect();
    ids.insert(0, primed);
    let seqs: Vec<u64> = ids
        .iter()
        .map(|i| i.rsplit('-').next().unwrap().parse().unwrap())
        .collect();
    assert!(seqs.windows(2).all(|w| w[0] < w[1]), "{ids:?}");
    gw.shutdown().await;
}

fn progress_call(id: Value, steps: u64, delay_ms: u64) -> Value {
    json!({"jsonrpc":"2.0","id":id,"method":"tools/call","params":{
        "name":"progress","arguments":{"steps":steps,"delay_ms":delay_ms},
        "_meta":{"progressToken":"tok"}}})
}

fn progress_of(e: &Event) -> Option<u64> {
    let d = e.data.as_ref()?;
    (d["method"] == "notifications/progress").then(|| d["params"]["progress"].as_u64().unwrap())
}

#[tokio::test]
async fn a_post_stream_cut_before_its_response_is_resumed_with_get_and_delivers_it() {
    let gw = Gateway::start(&config("")).await;
    let sid = session(&gw).await;
    let resp = gw
        .http
        .post(gw.url("/mcp/demo"))
        .header("content-type", "application/json")
        .header("accept", "application/json, text/event-stream")
        .header("mcp-session-id", &sid)
        .body(progress_call(json!("p-1"), 6, 200).to_string())
        .send()
        .await
        .unwrap();
    let mut post = Sse::new(resp);
    // A reply stream, too, starts with a priming event.
    let priming = post.next().await.unwrap();
    assert!(
        priming.id.is_some() && priming.data.is_none(),
        "{priming:?}"
    );
    let first = post.next().await.unwrap();
    assert_eq!(progress_of(&first), Some(1), "{first:?}");
    assert_eq!(
        first.data.as_ref().unwrap()["params"]["progressToken"],
        "tok"
    );
    // The connection breaks: the call goes on.
    drop(post);

    let mut resumed = Sse::new(get(&gw, &sid, first.id.as_deref()).await);
    let rest = resumed
        .until(|e| e.data.as_ref().is_some_and(|d| d.get("result").is_some()))
        .await;
    let steps: Vec<u64> = rest.iter().filter_map(progress_of).collect();
    assert_eq!(steps, [2, 3, 4, 5, 6], "{rest:?}");
    let response = rest.last().unwrap().data.clone().unwrap();
    assert_eq!(response["id"], "p-1");
    assert_eq!(
        response["result"]["content"][0]["text"], "completed 6 steps",
        "{response}"
    );
    // The reply stream ends after its response.
    assert!(resumed.next().await.is_none());
    // And the response went nowhere else: the GET stream of the session
    // never carries it (the reply was not cancelled either).
    let stats = common::stats(&gw, "demo").await;
    assert_eq!(stats["cancelled"], json!([]), "{stats}");
    gw.shutdown().await;
}

#[tokio::test]
async fn a_last_event_id_of_another_session_or_unknown_is_refused_and_a_dropped_one_is_gone() {
    let gw = Gateway::start(&config("sse_replay_events = 2")).await;
    let a = session(&gw).await;
    let b = session(&gw).await;
    let mut stream_a = Sse::new(get(&gw, &a, None).await);
    let primed_a = stream_a.next().await.unwrap().id.unwrap();

    // Another session's id, or one never given: 400, the stream unopened.
    for bad in [primed_a.as_str(), "not-an-event-id", "0-0-0"] {
        let (status, _, body) = error_of(get(&gw, &b, Some(bad)).await).await;
        assert_eq!(status, 400, "{bad}: {body}");
        assert_eq!(body["error"]["code"], -32600, "{body}");
        assert!(
            body["error"]["message"]
                .as_str()
                .unwrap()
                .contains("Last-Event-ID"),
            "{body}"
        );
    }

    // More messages than the session keeps pass while A is away: its
    // stream cannot be resumed without a gap, and says so.
    drop(stream_a);
    for text in ["m1", "m2", "m3"] {
        log(&gw, &a, text).await;
    }
    let (status, _, body) = error_of(get(&gw, &a, Some(&primed_a)).await).await;
    assert_eq!(status, 410, "{body}");
    assert_eq!(body["error"]["code"], -32000, "{body}");
    assert!(
        body["error"]["message"]
            .as_str()
            .unwrap()
            .contains("no longer kept"),
        "{body}"
    );
    // Asked again, the same; a new stream (no Last-Event-ID) works, and
    // takes what comes from now on.
    let (status, _, _) = error_of(get(&gw, &a, Some(&primed_a)).await).await;
    assert_eq!(status, 410);
    let mut fresh = Sse::new(get(&gw, &a, None).await);
    assert!(fresh.next().await.unwrap().data.is_none());
    log(&gw, &a, "m4").await;
    let got = fresh.until(is("m4")).await;
    assert_eq!(texts(&got), ["m4"]);
    gw.shutdown().await;
}

#[tokio::test]
async fn the_fifth_get_stream_of_a_session_gets_429_and_get_streams_take_no_call_slot() {
    let gw = Gateway::start(&config("max_calls_per_target = 1")).await;
    let sid = session(&gw).await;
    let mut open = Vec::new();
    for _ in 0..4 {
        open.push(Sse::new(get(&gw, &sid, None).await));
    }
    let (status, retry, body) = error_of(get(&gw, &sid, None).await).await;
    assert_eq!(status, 429, "{body}");
    assert_eq!(retry.as_deref(), Some("1"));
    assert_eq!(body["error"]["code"], -32000, "{body}");
    assert!(
        body["error"]["message"]
            .as_str()
            .unwrap()
            .contains("4 GET streams"),
        "{body}"
    );
    // Another session is not counted against this one.
    let other = session(&gw).await;
    let _other_stream = Sse::new(get(&gw, &other, None).await);
    // Five streams open, and the target's one call slot is still free.
    let r = gw
        .legacy(
            "demo",
            &sid,
            call(json!(1), "echo", json!({"text": "free"})),
        )
        .await;
    assert_eq!(r.text(), "free");

    drop(open.pop());
    wait_streams(&gw, 4).await;
    let _again = Sse::new(get(&gw, &sid, None).await);
    gw.shutdown().await;
}

#[tokio::test]
async fn the_target_stream_cap_gives_503_and_frees_when_streams_close() {
    let gw = Gateway::start(&config(
        "max_streams_per_target = 2\nmax_calls_per_target = 1",
    ))
    .await;
    let a = session(&gw).await;
    let b = session(&gw).await;
    let first = Sse::new(get(&gw, &a, None).await);
    let _second = Sse::new(get(&gw, &b, None).await);

    let (status, retry, body) = error_of(get(&gw, &a, None).await).await;
    assert_eq!(status, 503, "{body}");
    assert_eq!(retry.as_deref(), Some("1"));
    assert_eq!(body["error"]["code"], -32000, "{body}");
    assert!(
        body["error"]["message"]
            .as_str()
            .unwrap()
            .contains("2 streams open"),
        "{body}"
    );
    assert_eq!(streams_open(&gw).await, 2);
    // The 2024-11-05 transport's stream needs a slot too.
    let sse = gw
        .http
        .get(gw.url("/mcp/demo/sse"))
        .header("accept", "text/event-stream")
        .send()
        .await
        .unwrap();
    let (status, retry, _) = error_of(sse).await;
    assert_eq!((status, retry.as_deref()), (503, Some("1")));
    // Calls are apart from streams: the one call slot is free.
    let r = gw
        .legacy("demo", &a, call(json!(1), "echo", json!({"text": "free"})))
        .await;
    assert_eq!(r.text(), "free");

    // A closed stream frees its slot…
    drop(first);
    wait_streams(&gw, 1).await;
    let _third = Sse::new(get(&gw, &a, None).await);
    // …and so does the end of a session.
    let del = gw
        .http
        .delete(gw.url("/mcp/demo"))
        .header("mcp-session-id", &b)
        .send()
        .await
        .unwrap();
    assert_eq!(del.status(), 200);
    wait_streams(&gw, 1).await;
    let mut endpoint = Sse::new(
        gw.http
            .get(gw.url("/mcp/demo/sse"))
            .header("accept", "text/event-stream")
            .send()
            .await
            .unwrap(),
    );
    assert!(endpoint.next().await.unwrap().text.is_some());
    assert_eq!(streams_open(&gw).await, 2);
    // Shutting down ends it like the GET streams, without waiting out the
    // grace (10 s).
    let stopping = std::time::Instant::now();
    gw.shutdown().await;
    assert!(
        stopping.elapsed() < Duration::from_secs(5),
        "shutdown waited {:?}",
        stopping.elapsed()
    );
}

#[tokio::test]
async fn a_stream_past_its_lifetime_is_ended_and_resumed_without_loss() {
    let gw = Gateway::start(&config("max_stream_lifetime = \"1s\"")).await;
    let sid = session(&gw).await;
    let mut got: Vec<Event> = Vec::new();
    // Reads a stream to its end, noting what it carried.
    async fn to_the_end(s: &mut Sse, got: &mut Vec<Event>) -> bool {
        let mut retry = false;
        while let Some(e) = s.next().await {
            retry |= e.retry;
            if e.data.is_some() {
                got.push(e);
            }
        }
        retry
    }
    let mut last: Option<String>;

    let mut s = Sse::new(get(&gw, &sid, None).await);
    last = s.next().await.unwrap().id;
    log(&gw, &sid, "m1").await;
    assert!(
        to_the_end(&mut s, &mut got).await,
        "ended with a retry field"
    );
    if let Some(e) = got.last() {
        last = e.id.clone();
    }

    // Sent between two connections.
    log(&gw, &sid, "m2").await;
    let mut s = Sse::new(get(&gw, &sid, last.as_deref()).await);
    log(&gw, &sid, "m3").await;
    assert!(
        to_the_end(&mut s, &mut got).await,
        "ended with a retry field"
    );
    last = got.last().and_then(|e| e.id.clone());

    let mut s = Sse::new(get(&gw, &sid, last.as_deref()).await);
    log(&gw, &sid, "m4").await;
    got.extend(
        s.until(is("m4"))
            .await
            .into_iter()
            .filter(|e| e.data.is_some()),
    );
    assert_eq!(texts(&got), ["m1", "m2", "m3", "m4"], "{got:?}");

    // The 2024-11-05 transport's stream ends at its lifetime too (and its
    // session with it: that transport does not resume).
    let mut endpoint = Sse::new(
        gw.http
            .get(gw.url("/mcp/demo/sse"))
            .header("accept", "text/event-stream")
            .send()
            .await
            .unwrap(),
    );
    let announced = endpoint.next().await.unwrap();
    let url = announced.text.unwrap();
    assert!(url.starts_with("/mcp/demo/messages?sessionId="), "{url}");
    while endpoint.next().await.is_some() {}
    let r = gw
        .post(&url, &[], &json!({"jsonrpc":"2.0","id":1,"method":"ping"}))
        .await;
    assert_eq!(r.status, 404, "the endpoint ended with its stream");
    gw.shutdown().await;
}

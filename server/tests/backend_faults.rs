//! Backend faults seen through the gateway: a reply over the frame limit,
//! a backend that dies on start-up (the restart backoff answered 503 with
//! `Retry-After` at once), and a crash loop under load.

#![allow(clippy::unwrap_used)]

mod common;

use std::collections::BTreeSet;
use std::path::Path;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant};

use common::*;
use serde_json::{Value, json};

/// The default frame limit of a backend's lines.
const LIMIT: usize = mcpod_core::framing::DEFAULT_MAX_FRAME_LEN;

async fn echo(gw: &Gateway, target: &str, id: Value, text: &str) -> Reply {
    gw.modern(
        target,
        id,
        "tools/call",
        json!({"name": "echo", "arguments": {"text": text}}),
    )
    .await
}

#[tokio::test]
async fn an_oversize_reply_fails_its_call_at_once_and_the_backend_keeps_working() {
    let gw = Gateway::start(&demo_target("demo", "call_timeout = \"60s\"")).await;
    let before = stats(&gw, "demo").await;
    let sid = gw.initialize("demo").await;
    for era in ["modern", "legacy"] {
        let args = json!({"name": "big", "arguments": {"bytes": LIMIT + 1024 * 1024}});
        let started = Instant::now();
        let r = if era == "modern" {
            gw.modern("demo", json!("huge"), "tools/call", args).await
        } else {
            let body = json!({"jsonrpc":"2.0","id":"huge","method":"tools/call","params":args});
            gw.legacy("demo", &sid, body).await
        };
        let took = started.elapsed();
        eprintln!("{era}: an oversize reply failed its call in {took:?}");
        assert_eq!(r.status, 200, "{era}: {}", r.body);
        let v = r.json();
        assert_eq!(v["id"], "huge", "{era}: {v}");
        assert_eq!(v["error"]["code"], -32000, "{era}: {v}");
        let message = v["error"]["message"].as_str().unwrap();
        assert!(
            message.contains(&format!("larger than the {LIMIT}-byte limit")),
            "{era}: {message}"
        );
        // At once: not after the 60 s call timeout.
        assert!(took < Duration::from_secs(15), "{era}: took {took:?}");
        // The same backend answers the next call.
        let ok = gw
            .legacy(
                "demo",
                &sid,
                call(json!(2), "echo", json!({"text": "after"})),
            )
            .await;
        assert_eq!(ok.text(), "after");
    }
    let after = stats(&gw, "demo").await;
    assert_eq!(before["pid"], after["pid"], "the backend was restarted");
    // Counted as what it was, not as a backend that went away.
    let metrics = gw.http.get(gw.url("/metrics")).send().await.unwrap();
    let metrics = metrics.text().await.unwrap();
    let line = "mcpod_requests_total{target=\"demo\",method=\"tools/call\",outcome=\"response_too_large\"} 2";
    assert!(metrics.contains(line), "{metrics}");
    gw.shutdown().await;
}

/// A target whose backend exits at once with status 1 until `flag` exists,
/// then runs the demo server.
fn dies_unless(name: &str, flag: &Path) -> String {
    format!(
        "[targets.{name}]\ncommand = \"/bin/sh\"\nargs = [\"-c\", '[ -e \"$1\" ] || exit 1; exec \"$0\" demo-server', \"{DEMO}\", \"{}\"]\n",
        flag.display()
    )
}

#[tokio::test]
async fn a_backend_dying_on_start_up_is_answered_503_with_retry_after_at_once_then_recovers() {
    let dir = tempfile::tempdir().unwrap();
    let flag = dir.path().join("healthy");
    let gw = Gateway::start(&dies_unless("flaky", &flag)).await;
    // Quick deaths: the first restarts at once, then the backoff doubles
    // from 100 ms. Calls during a backoff are refused; the others start a
    // backend that dies (a 5xx of their own).
    let mut refusals = Vec::new();
    let mut deaths = 0;
    let until = Instant::now() + Duration::from_secs(20);
    while refusals.len() < 20 {
        assert!(Instant::now() < until, "{deaths} deaths, {refusals:?}");
        let started = Instant::now();
        let r = echo(&gw, "flaky", json!(1), "x").await;
        let took = started.elapsed();
        // A call that reached a backend as it died: a JSON-RPC error (200)
        // or a 5xx.
        assert!(
            r.status >= 500 || (r.status == 200 && r.code().is_some()),
            "{}: {}",
            r.status,
            r.body
        );
        if r.status != 503 {
            deaths += 1;
            continue;
        }
        let retry: u64 = r.header("retry-after").unwrap().parse().unwrap();
        assert!((1..=10).contains(&retry), "Retry-After {retry}");
        let v = r.json();
        assert_eq!(v["error"]["code"], -32000, "{v}");
        assert_eq!(v["error"]["data"]["retryAfter"], retry, "{v}");
        let message = v["error"]["message"].as_str().unwrap();
        assert!(message.contains("restarting"), "{message}");
        refusals.push(took);
    }
    // The gateway starts its backends up front: the deaths began there.
    assert!(restarts(&gw, "flaky").await >= 1, "{deaths}");
    // A legacy client's initialize is refused the same way (the others of
    // these start a backend that dies).
    let initialize = json!({"jsonrpc":"2.0","id":0,"method":"initialize","params":{
        "protocolVersion":"2025-06-18","capabilities":{},
        "clientInfo":{"name":"test","version":"1"}}});
    let mut tries = 0;
    loop {
        tries += 1;
        assert!(tries <= 50, "initialize never refused in a backoff");
        let r = gw.post("/mcp/flaky", &[], &initialize).await;
        assert!(r.status >= 500 || r.code().is_some(), "{r:?}");
        if r.status == 503 {
            assert!(r.header("retry-after").is_some(), "{r:?}");
            assert_eq!(r.code(), Some(-32000), "{r:?}");
            break;
        }
    }
    refusals.sort();
    let (median, max) = (refusals[refusals.len() / 2], refusals[refusals.len() - 1]);
    eprintln!(
        "refused in backoff: {} calls, median {median:?}, max {max:?}",
        refusals.len()
    );
    assert!(max < Duration::from_millis(100), "{refusals:?}");

    // Healthy again: after the backoff, calls succeed.
    std::fs::write(&flag, b"").unwrap();
    let until = Instant::now() + Duration::from_secs(30);
    loop {
        assert!(Instant::now() < until, "never recovered");
        let r = echo(&gw, "flaky", json!(2), "back").await;
        if r.status == 200 && r.json()["result"].is_object() {
            assert_eq!(r.text(), "back");
            break;
        }
        assert!(r.status >= 500 || r.code().is_some(), "{r:?}");
        let wait = r
            .header("retry-after")
            .and_then(|s| s.parse().ok())
            .unwrap_or(0);
        tokio::time::sleep(Duration::from_millis(100).max(Duration::from_secs(wait))).await;
    }
    for i in 0..5 {
        assert_eq!(echo(&gw, "flaky", json!(i), "ok").await.text(), "ok");
    }
    gw.shutdown().await;
}

/// A process's parent pid and state, from `/proc/{pid}/stat`.
fn stat(pid: u32) -> Option<(u32, char)> {
    let text = std::fs::read_to_string(format!("/proc/{pid}/stat")).ok()?;
    let rest = &text[text.rfind(')')? + 2..];
    let mut fields = rest.split(' ');
    let state = fields.next()?.chars().next()?;
    let ppid = fields.next()?.parse().ok()?;
    Some((ppid, state))
}

/// This process's running children whose environment carries `mark`, and
/// their states (a zombie's environment cannot be read any more).
fn marked_children(mark: &str) -> Vec<(u32, char)> {
    let me = std::process::id();
    let needle = format!("MCPOD_FAULTS_MARK={mark}");
    let mut out = Vec::new();
    for entry in std::fs::read_dir("/proc").unwrap().flatten() {
        let Some(pid) = entry.file_name().to_str().and_then(|s| s.parse().ok()) else {
            continue;
        };
        let Some((ppid, state)) = stat(pid) else {
            continue;
        };
        if ppid != me {
            continue;
        }
        let env = std::fs::read(format!("/proc/{pid}/environ")).unwrap_or_default();
        let marked = env.split(|b| *b == 0).any(|var| var == needle.as_bytes());
        if marked {
            out.push((pid, state));
        }
    }
    out
}

async fn restarts(gw: &Gateway, target: &str) -> u64 {
    let series = format!("mcpod_backend_restarts_total{{target=\"{target}\"}}");
    common::metric(gw, &series, None).await
}

#[tokio::test]
async fn crash_loop_under_load_every_call_ends_and_restarts_are_counted() {
    let mark = format!("crashloop-{}", std::process::id());
    let call_timeout = Duration::from_secs(10);
    let gw = Arc::new(
        Gateway::start(&demo_target(
            "loop",
            &format!(
                "call_timeout = \"10s\"\nrestart_backoff_min = \"2s\"\nrestart_backoff_max = \"8s\"\n\
                 env = {{ MCPOD_FAULTS_MARK = \"{mark}\" }}"
            ),
        ))
        .await,
    );
    assert_eq!(echo(&gw, "loop", json!(0), "up").await.text(), "up");

    let stop = Arc::new(AtomicBool::new(false));
    let mut callers = Vec::new();
    for c in 0..16 {
        let gw = gw.clone();
        let stop = stop.clone();
        callers.push(tokio::spawn(async move {
            let (mut ok, mut failed, mut slowest) = (0u32, 0u32, Duration::ZERO);
            let mut n = 0u64;
            while !stop.load(Ordering::Relaxed) {
                n += 1;
                let text = format!("{c}-{n}");
                let started = Instant::now();
                let r = echo(&gw, "loop", json!(format!("{c}:{n}")), &text).await;
                slowest = slowest.max(started.elapsed());
                if r.status == 200 && r.json()["result"].is_object() {
                    assert_eq!(r.text(), text, "a caller got another's answer");
                    ok += 1;
                    continue;
                }
                // A clear error: a JSON-RPC error naming the call, with a
                // message, or a 5xx of the gateway's.
                let v = r.json();
                assert!(r.status == 200 || r.status >= 500, "{r:?}");
                assert!(
                    v["error"]["message"]
                        .as_str()
                        .is_some_and(|m| !m.is_empty()),
                    "{v}"
                );
                if r.status == 200 {
                    assert_eq!(v["id"], json!(format!("{c}:{n}")), "{v}");
                }
                if r.status == 503 {
                    // Refused during a backoff: come back when told to,
                    // as a client would (briefly, to keep the load on).
                    tokio::time::sleep(Duration::from_millis(20)).await;
                }
                failed += 1;
            }
            (ok, failed, slowest)
        }));
    }

    // Kill the running backend every 300 ms for 4 s.
    let mut killed = BTreeSet::new();
    let killing = Instant::now();
    while killing.elapsed() < Duration::from_secs(4) {
        tokio::time::sleep(Duration::from_millis(300)).await;
        for (pid, state) in marked_children(&mark) {
            if state != 'Z' && killed.insert(pid) {
                let pid = nix::unistd::Pid::from_raw(i32::try_from(pid).unwrap());
                let _ = nix::sys::signal::kill(pid, nix::sys::signal::Signal::SIGKILL);
            }
        }
    }
    assert!(killed.len() >= 3, "only {} kills", killed.len());

    // The load goes on until calls succeed again.
    let until = Instant::now() + Duration::from_secs(30);
    loop {
        assert!(Instant::now() < until, "the backend never came back");
        let r = echo(&gw, "loop", json!("probe"), "probe").await;
        if r.status == 200 && r.json()["result"].is_object() {
            break;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    stop.store(true, Ordering::Relaxed);
    let (mut ok, mut failed) = (0, 0);
    for caller in callers {
        let (o, f, slowest) = tokio::time::timeout(call_timeout * 2, caller)
            .await
            .expect("a caller hung")
            .expect("a caller failed");
        ok += o;
        failed += f;
        // No call waits out a backoff (2 s and more here): during one,
        // every call is refused at once, those already on their way too.
        assert!(slowest < Duration::from_secs(2), "a call took {slowest:?}");
    }
    eprintln!(
        "crash loop: {} kills, {ok} calls answered, {failed} clear errors",
        killed.len()
    );
    assert!(ok > 0 && failed > 0, "{ok} ok, {failed} failed");

    // Only the current backend is left, every killed one reaped.
    let until = Instant::now() + Duration::from_secs(10);
    let left = loop {
        let left = marked_children(&mark);
        let unreaped: Vec<_> = killed
            .iter()
            .filter(|pid| Path::new(&format!("/proc/{pid}")).exists())
            .collect();
        if left.len() <= 1 && unreaped.is_empty() {
            break left;
        }
        assert!(
            Instant::now() < until,
            "left behind: {left:?}, not reaped: {unreaped:?}"
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    };
    assert_eq!(left.len(), 1, "{left:?}");
    assert!(!killed.contains(&left[0].0));
    // Every kill was a restart, and /metrics counts them.
    assert_eq!(restarts(&gw, "loop").await, killed.len() as u64);

    let gw = Arc::into_inner(gw).expect("callers are done");
    gw.shutdown().await;
    let until = Instant::now() + Duration::from_secs(10);
    while !marked_children(&mark).is_empty() {
        assert!(Instant::now() < until, "{:?}", marked_children(&mark));
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

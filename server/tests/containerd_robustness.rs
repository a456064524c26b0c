//! The containerd backend under faults: containerd restarted three times
//! under sessions older than the retry budget, containerd gone for longer
//! than the budget, a second gateway in another PID namespace on the same
//! containerd namespace, and the exec'd server killed over and over under
//! concurrent calls.
//!
//! Needs a real containerd and the static demo server (see `ctd/mod.rs`);
//! behind the `containerd-tests` feature, and never skipped silently. The
//! restart tests run containerds of their own.
//! `MCPOD_TEST_CRASH_LOOP_SECS` (default 5) sets how long the crash loop runs.

#![cfg(feature = "containerd-tests")]
#![allow(clippy::unwrap_used, missing_docs)]

mod common;
mod ctd;

use std::collections::BTreeMap;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant};

use common::{Gateway, Reply, call};
use serde_json::{Value, json};

/// The retry budget of these tests (a restart here keeps containerd away
/// for 1.3–2.3 s).
const BUDGET: Duration = Duration::from_secs(4);

async fn fs_mcp(gw: &Gateway, bot: &str, body: Value) -> Reply {
    gw.post(&format!("/bots/{bot}/container/fs-mcp"), &[], &body)
        .await
}

fn echo(id: i64, text: &str) -> Value {
    call(json!(id), "echo", json!({ "text": text }))
}

/// A call's answer as the client sees it.
#[derive(Debug)]
enum Answer {
    /// The tool's text.
    Text(String),
    /// A clear error: a JSON-RPC error or an HTTP error, with a message.
    Error(String),
    /// Anything else.
    Unclear(String),
}

fn answer(r: &Reply) -> Answer {
    let parse = |s: &str| serde_json::from_str::<Value>(s).ok();
    let last = if r.is_sse() {
        r.body
            .lines()
            .rev()
            .filter_map(|l| l.strip_prefix("data: "))
            .find_map(parse)
    } else {
        parse(&r.body)
    };
    let Some(v) = last else {
        return Answer::Unclear(format!("{}: {}", r.status, r.body));
    };
    if let Some(text) = v["result"]["content"][0]["text"].as_str() {
        return Answer::Text(text.to_owned());
    }
    let message = v["error"]["message"]
        .as_str()
        .or_else(|| v["message"].as_str())
        .or_else(|| v["error"].as_str());
    match message {
        Some(m) if !m.is_empty() => Answer::Error(format!("{}: {m}", r.status)),
        _ => Answer::Unclear(format!("{}: {}", r.status, r.body)),
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sessions_older_than_the_retry_budget_survive_three_containerd_restarts() {
    let daemon = ctd::OwnDaemon::start();
    let env = ctd::Env::on("readopt", daemon.socket()).await;
    env.bot("rita").await;
    env.bot("sam").await;
    let base = (env.pids("rita").await, env.pids("sam").await);
    let gw = Gateway::start(&format!(
        "{}[targets.rita]\nkind = \"containerd\"\nbot = \"rita\"\n\
         [targets.solo]\nkind = \"containerd\"\nbot = \"rita\"\nsharing = \"per_session\"\n",
        env.section(&format!(
            "serve_bots = true\nretry_budget = \"{}s\"",
            BUDGET.as_secs()
        ))
    ))
    .await;
    // Four sessions: a legacy session on the shared server, a legacy
    // session with a server of its own, modern calls on the shared server,
    // and a Memoh bot.
    let shared = gw.initialize("rita").await;
    let solo = gw.initialize("solo").await;
    let mut n = 0;
    let mut check_all = async |what: &str| {
        n += 1;
        let r = gw.legacy("rita", &shared, echo(n, "shared")).await;
        assert_eq!(r.text(), "shared", "{what}: {}", r.body);
        let r = gw.legacy("solo", &solo, echo(n, "solo")).await;
        assert_eq!(r.text(), "solo", "{what}: {}", r.body);
        let r = gw
            .modern(
                "rita",
                json!(n),
                "tools/call",
                json!({"name":"echo","arguments":{"text":"modern"}}),
            )
            .await;
        assert_eq!(r.text(), "modern", "{what}: {}", r.body);
        let r = fs_mcp(&gw, "sam", echo(n, "memoh")).await;
        assert_eq!(r.text(), "memoh", "{what}: {}", r.body);
    };
    check_all("before").await;
    let execs = async || {
        let mut all = env.execs("rita").await;
        all.extend(env.execs("sam").await);
        all.sort();
        all
    };
    let before = execs().await;
    assert_eq!(before.len(), 3, "{before:?}");

    for round in 0..3 {
        // Every session (and every wait for its server's exit) is older
        // than the retry budget.
        tokio::time::sleep(BUDGET + Duration::from_secs(1)).await;
        // A call in flight across the restart.
        let (slow, took) = tokio::join!(
            gw.legacy(
                "solo",
                &solo,
                call(json!("slow"), "sleep", json!({"ms": 1500}))
            ),
            async {
                tokio::time::sleep(Duration::from_millis(200)).await;
                daemon.restart().await
            }
        );
        assert_eq!(slow.text(), "slept 1500 ms", "round {round}: {}", slow.body);
        let t = Instant::now();
        check_all(&format!("after restart {round}")).await;
        eprintln!(
            "restart {round}: containerd down and up in {took:?}; all four sessions answered {:?} later",
            t.elapsed()
        );
        // The same servers: re-adopted, not replaced.
        assert_eq!(execs().await, before, "round {round}");
    }
    // Their waits go on: none gives up later.
    tokio::time::sleep(BUDGET + Duration::from_secs(1)).await;
    check_all("after the last restart").await;
    assert_eq!(execs().await, before);

    gw.shutdown().await;
    let clean = ctd::eventually(Duration::from_secs(10), || async {
        execs().await.is_empty() && env.fifo_leftovers().is_empty()
    })
    .await;
    assert!(
        clean,
        "left: {:?}, FIFOs {:?}",
        execs().await,
        env.fifo_leftovers()
    );
    assert_eq!((env.pids("rita").await, env.pids("sam").await), base);
    env.cleanup().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn containerd_gone_longer_than_the_budget_fails_cleanly_and_leaves_nothing_running() {
    let daemon = ctd::OwnDaemon::start();
    let env = ctd::Env::on("outage", daemon.socket()).await;
    env.bot("tom").await;
    let base = env.pids("tom").await;
    let gw = Gateway::start(&format!(
        "{}[targets.tom]\nkind = \"containerd\"\nbot = \"tom\"\ncall_timeout = \"5s\"\n",
        env.section(&format!("retry_budget = \"{}s\"", BUDGET.as_secs()))
    ))
    .await;
    let modern = async |id: i64, text: &str| {
        gw.modern(
            "tom",
            json!(id),
            "tools/call",
            json!({"name":"echo","arguments":{"text":text}}),
        )
        .await
    };
    assert_eq!(modern(1, "up").await.text(), "up");
    let old = env.execs("tom").await;
    assert_eq!(old.len(), 1);
    let old_dir = env.fifo_root.join(&old[0]);

    daemon.down().await;
    let down = Instant::now();
    // The wait for the server's exit gives up after the budget: the
    // backend counts as gone.
    let gone = ctd::eventually(Duration::from_secs(30), || async {
        ctd::metric(&gw.base, "mcpod_backends_alive", "tom").await == Some(0.0)
    })
    .await;
    assert!(gone, "the backend still counts as alive");
    eprintln!(
        "backend given up {:?} after containerd went down",
        down.elapsed()
    );
    // Calls meanwhile fail clearly, within their deadline.
    let t = Instant::now();
    let r = modern(2, "down").await;
    assert!(t.elapsed() < Duration::from_secs(8), "{:?}", t.elapsed());
    assert!(matches!(answer(&r), Answer::Error(_)), "{r:?}");

    daemon.up().await;
    let up = Instant::now();
    // The old server is found, killed and cleaned up; a new call gets a new one.
    let cleaned = ctd::eventually(Duration::from_secs(30), || async {
        !env.execs("tom").await.contains(&old[0]) && !old_dir.exists()
    })
    .await;
    assert!(
        cleaned,
        "old server left: {:?}, its FIFO directory: {}",
        env.execs("tom").await,
        old_dir.exists()
    );
    eprintln!(
        "old server reaped {:?} after containerd came back",
        up.elapsed()
    );
    let back = ctd::eventually(Duration::from_secs(30), || async {
        matches!(answer(&modern(3, "back").await), Answer::Text(t) if t == "back")
    })
    .await;
    assert!(back, "no call worked after containerd came back");
    let now = env.execs("tom").await;
    assert_eq!(now.len(), 1, "{now:?}");
    assert_ne!(now, old);

    gw.shutdown().await;
    assert!(env.execs("tom").await.is_empty());
    assert!(
        env.fifo_leftovers().is_empty(),
        "{:?}",
        env.fifo_leftovers()
    );
    assert_eq!(env.pids("tom").await, base);
    env.cleanup().await;
}

#[tokio::test]
async fn a_gateway_in_another_pid_namespace_spares_the_servers_of_a_live_one() {
    let env = ctd::Env::new("pidns").await;
    env.bot("pia").await;
    let section = env.section("serve_bots = true");
    let a = Gateway::start(&section).await;
    let r = fs_mcp(&a, "pia", echo(1, "a")).await;
    assert_eq!(r.text(), "a");
    let a_exec = env.execs("pia").await;
    assert_eq!(a_exec.len(), 1);

    // Gateway B: another process in a PID namespace of its own (with its
    // own /proc), where gateway A's pid does not exist.
    let mut b = ctd::ServeProcess::start(
        &["unshare", "--pid", "--fork", "--kill-child", "--mount-proc"],
        &section,
    )
    .await;
    let r = b
        .post_json("/bots/pia/container/fs-mcp", &echo(2, "b"))
        .await;
    assert_eq!(r["result"]["content"][0]["text"], "b", "{r}\n{}", b.log());
    // B's reaper runs when it starts its server; wait until it has.
    let passed = ctd::eventually(Duration::from_secs(20), || async {
        b.log().contains("reaper pass done")
    })
    .await;
    assert!(passed, "B's reaper never ran: {}", b.log());
    let both = env.execs("pia").await;
    assert_eq!(both.len(), 2, "{both:?}\n{}", b.log());
    assert!(
        both.contains(&a_exec[0]),
        "A's server was reaped by B: {both:?}"
    );
    // A's session is the same server, still working.
    let r = fs_mcp(&a, "pia", echo(3, "a again")).await;
    assert_eq!(r.text(), "a again");
    assert!(env.execs("pia").await.contains(&a_exec[0]));

    // B dies without cleaning up: its server is an orphan now, and the
    // next server started in the container (by gateway C) reaps it — and
    // still spares A's.
    let b_exec: Vec<String> = both.into_iter().filter(|e| *e != a_exec[0]).collect();
    b.kill();
    let c = Gateway::start(&format!(
        "{section}[targets.pia]\nkind = \"containerd\"\nbot = \"pia\"\n"
    ))
    .await;
    let r = c
        .modern(
            "pia",
            json!(4),
            "tools/call",
            json!({"name":"echo","arguments":{"text":"c"}}),
        )
        .await;
    assert_eq!(r.text(), "c");
    let reaped = ctd::eventually(Duration::from_secs(10), || async {
        let now = env.execs("pia").await;
        now.len() == 2
            && now.contains(&a_exec[0])
            && !now.contains(&b_exec[0])
            && !env.fifo_root.join(&b_exec[0]).exists()
    })
    .await;
    assert!(
        reaped,
        "execs {:?} (A {a_exec:?}, dead B {b_exec:?}), FIFOs {:?}",
        env.execs("pia").await,
        env.fifo_leftovers()
    );
    let r = fs_mcp(&a, "pia", echo(5, "a at last")).await;
    assert_eq!(r.text(), "a at last");

    a.shutdown().await;
    c.shutdown().await;
    assert!(env.execs("pia").await.is_empty());
    assert!(
        env.fifo_leftovers().is_empty(),
        "{:?}",
        env.fifo_leftovers()
    );
    env.cleanup().await;
}

/// `m` with each run of digits replaced by `N` (error kinds, for counting).
fn digits_as_n(m: &str) -> String {
    let mut out = String::with_capacity(m.len());
    for c in m.chars() {
        if !c.is_ascii_digit() {
            out.push(c);
        } else if !out.ends_with('N') {
            out.push('N');
        }
    }
    out
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn crash_loop_under_concurrent_calls_ends_every_call_and_leaves_nothing() {
    const CALLERS: usize = 8;
    let secs: u64 = std::env::var("MCPOD_TEST_CRASH_LOOP_SECS")
        .ok()
        .and_then(|s| s.parse().ok())
        .unwrap_or(5);
    let call_timeout = Duration::from_secs(5);
    let env = Arc::new(ctd::Env::new("crashloop").await);
    env.bot("cleo").await;
    let base = env.pids("cleo").await;
    let gw = Arc::new(
        Gateway::start(&format!(
            "{}[targets.cleo]\nkind = \"containerd\"\nbot = \"cleo\"\ncall_timeout = \"{}s\"\n",
            env.section(""),
            call_timeout.as_secs()
        ))
        .await,
    );
    let modern = |gw: Arc<Gateway>, id: u64, tool: &'static str, args: Value| async move {
        gw.modern(
            "cleo",
            json!(id),
            "tools/call",
            json!({"name": tool, "arguments": args}),
        )
        .await
    };
    assert!(matches!(
        answer(&modern(gw.clone(), 0, "echo", json!({"text":"warm"})).await),
        Answer::Text(_)
    ));

    let stop = Arc::new(AtomicBool::new(false));
    let callers: Vec<_> = (0..CALLERS)
        .map(|c| {
            let (gw, stop) = (gw.clone(), stop.clone());
            tokio::spawn(async move {
                let mut seen = Vec::new();
                let mut i = 0u64;
                while !stop.load(Ordering::Relaxed) {
                    i += 1;
                    let id = (c as u64) << 32 | i;
                    let t = Instant::now();
                    let (r, want) = if i % 4 == 0 {
                        (
                            modern(gw.clone(), id, "sleep", json!({"ms": 200})).await,
                            "slept 200 ms".to_owned(),
                        )
                    } else {
                        let text = format!("c{c} #{i}");
                        (
                            modern(gw.clone(), id, "echo", json!({ "text": text })).await,
                            text,
                        )
                    };
                    let busy = r.status == 503;
                    seen.push((t.elapsed(), answer(&r), want));
                    if busy {
                        // As a client honouring Retry-After would (briefly).
                        tokio::time::sleep(Duration::from_millis(50)).await;
                    }
                }
                seen
            })
        })
        .collect();

    let started = Instant::now();
    let mut kills = 0u32;
    for _ in 0..secs {
        tokio::time::sleep(Duration::from_secs(1)).await;
        for exec_id in env.execs("cleo").await {
            if env
                .client
                .kill("mcp-cleo", &exec_id, 9, false)
                .await
                .is_ok()
            {
                kills += 1;
            }
        }
    }
    stop.store(true, Ordering::Relaxed);
    let mut counts: BTreeMap<&str, usize> = BTreeMap::new();
    let mut slowest = Duration::ZERO;
    let mut errors = BTreeMap::new();
    for caller in callers {
        for (took, answer, want) in caller.await.unwrap() {
            slowest = slowest.max(took);
            assert!(
                took <= call_timeout + Duration::from_secs(1),
                "a call took {took:?} (deadline {call_timeout:?}): {answer:?}"
            );
            match answer {
                Answer::Text(t) => {
                    assert_eq!(t, want, "a reply for another call");
                    *counts.entry("ok").or_default() += 1;
                }
                Answer::Error(m) => {
                    *counts.entry("error").or_default() += 1;
                    let (status, message) = m.split_once(": ").unwrap_or(("", &m));
                    let kind = format!("{status}: {}", digits_as_n(message));
                    *errors.entry(kind).or_insert(0usize) += 1;
                }
                Answer::Unclear(body) => panic!("an unclear answer: {body}"),
            }
        }
    }
    eprintln!(
        "crash loop: {kills} kills in {:?}, {CALLERS} callers: {counts:?}, slowest call {slowest:?}; errors: {errors:?}",
        started.elapsed()
    );
    assert!(kills >= 2, "only {kills} kills");
    assert!(counts.get("ok").copied().unwrap_or(0) > 0, "{counts:?}");

    // After the last kill the next call gets a fresh server.
    let back = ctd::eventually(Duration::from_secs(20), || async {
        matches!(
            answer(&modern(gw.clone(), 1, "echo", json!({"text":"after"})).await),
            Answer::Text(t) if t == "after"
        )
    })
    .await;
    assert!(back, "no server after the crash loop");
    let restarts = ctd::metric(&gw.base, "mcpod_backend_restarts_total", "cleo")
        .await
        .unwrap_or(0.0);
    eprintln!("mcpod_backend_restarts_total{{target=\"cleo\"}} {restarts}");
    assert!(
        restarts >= f64::from(kills),
        "{restarts} restarts for {kills} kills"
    );
    // One server, one FIFO directory: the killed ones left nothing.
    let settled = ctd::eventually(Duration::from_secs(10), || async {
        env.execs("cleo").await.len() == 1 && env.fifo_leftovers().len() == 1
    })
    .await;
    assert!(
        settled,
        "execs {:?}, FIFOs {:?}",
        env.execs("cleo").await,
        env.fifo_leftovers()
    );
    Arc::into_inner(gw).unwrap().shutdown().await;
    assert!(env.execs("cleo").await.is_empty());
    assert!(
        env.fifo_leftovers().is_empty(),
        "{:?}",
        env.fifo_leftovers()
    );
    assert_eq!(env.pids("cleo").await, base);
    env.cleanup().await;
}

//! Live reload: the `mcpod serve` binary, sent SIGHUP after its config file
//! changed, adds, changes and removes targets under load without an error
//! on the target left alone (its backend and legacy session untouched, the
//! new limits in force on it); a
//! changed target drains (a long call on the old backend finishes, new
//! calls reach the new one, then the old one stops); an invalid config is
//! refused, naming the key, counted, and the one in force stays.

#![allow(clippy::unwrap_used)]

mod common;

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::time::Duration;

use common::{DEMO, Gateway, Served, eventually, metric};
use serde_json::{Value, json};

/// Client tasks calling the untouched target in a loop.
const LOAD_TASKS: usize = 4;
/// Calls each of them makes at most (the loop is bounded in count too).
const MAX_CALLS_PER_TASK: u64 = 20_000;
/// The long call in flight on the changed target's old backend.
const LONG_CALL_MS: u64 = 5_000;

fn target(name: &str, generation: &str) -> String {
    format!(
        "[targets.{name}]\ncommand = \"{DEMO}\"\nargs = [\"demo-server\"]\nenv = {{ GENERATION = \"{generation}\" }}\n"
    )
}

fn config(extra: &str, limits: &str, targets: &[(&str, &str)]) -> String {
    let mut out =
        format!("{extra}\n[auth]\ndisabled = true\n[limits]\nshutdown_grace = \"20s\"\n{limits}\n");
    for (name, generation) in targets {
        out.push_str(&target(name, generation));
    }
    out
}

/// A modern tool call's text, or the failure as an `Err`.
async fn tool(gw: &Gateway, target: &str, name: &str, args: Value) -> Result<String, String> {
    let r = gw
        .modern(
            target,
            json!(1),
            "tools/call",
            json!({"name": name, "arguments": args}),
        )
        .await;
    if r.status != 200 {
        return Err(format!("{}: {}", r.status, r.body));
    }
    let v = r.json();
    v["result"]["content"][0]["text"]
        .as_str()
        .map(str::to_owned)
        .ok_or_else(|| format!("no result: {v}"))
}

/// The backend's `GENERATION` and pid, as the demo reports them.
async fn backend(gw: &Gateway, target: &str) -> (String, u64) {
    let env: Value = serde_json::from_str(
        &tool(gw, target, "env", json!({"names": ["GENERATION"]}))
            .await
            .unwrap(),
    )
    .unwrap();
    let stats: Value =
        serde_json::from_str(&tool(gw, target, "stats", json!({})).await.unwrap()).unwrap();
    (
        env["GENERATION"].as_str().unwrap().to_owned(),
        stats["pid"].as_u64().unwrap(),
    )
}

fn alive(pid: u64) -> bool {
    // A reaped process has no /proc entry; a zombie is not running.
    std::fs::read_to_string(format!("/proc/{pid}/stat")).is_ok_and(|s| {
        !s.rsplit(')')
            .next()
            .unwrap_or("")
            .trim_start()
            .starts_with('Z')
    })
}

#[tokio::test]
async fn sighup_reloads_targets_under_load_without_touching_the_others() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("mcpod.toml");
    std::fs::write(
        &path,
        config(
            "",
            "",
            &[("steady", "1"), ("changing", "old"), ("leaving", "1")],
        ),
    )
    .unwrap();
    let served = Served::start(&path, &[("NO_COLOR", "1")]).await;
    let gw = Arc::new(Gateway {
        server: None,
        base: served.gateway.base.clone(),
        http: served.gateway.http.clone(),
    });

    let (_, steady_pid) = backend(&gw, "steady").await;
    let (generation, old_pid) = backend(&gw, "changing").await;
    assert_eq!(generation, "old");
    assert_eq!(backend(&gw, "leaving").await.0, "1");
    let sid = gw.initialize("steady").await;

    // Load on the untouched target: modern calls, from several tasks.
    let stop = Arc::new(AtomicBool::new(false));
    let ok = Arc::new(AtomicU64::new(0));
    let errors = Arc::new(std::sync::Mutex::new(Vec::<String>::new()));
    let mut load = Vec::new();
    for task in 0..LOAD_TASKS {
        let (gw, stop, ok, errors) = (gw.clone(), stop.clone(), ok.clone(), errors.clone());
        load.push(tokio::spawn(async move {
            for i in 0..MAX_CALLS_PER_TASK {
                if stop.load(Ordering::Relaxed) {
                    break;
                }
                let text = format!("{task}-{i}");
                match tool(&gw, "steady", "echo", json!({"text": text})).await {
                    Ok(t) if t == text => {
                        ok.fetch_add(1, Ordering::Relaxed);
                    }
                    Ok(t) => errors.lock().unwrap().push(format!("echo {text} gave {t}")),
                    Err(e) => errors.lock().unwrap().push(e),
                }
            }
        }));
    }
    eventually(Duration::from_secs(20), "the load runs", || {
        let n = ok.load(Ordering::Relaxed);
        async move { (n >= 20).then_some(()) }
    })
    .await;

    // A long call in flight on the old backend of `changing`.
    let long = {
        let gw = gw.clone();
        tokio::spawn(
            async move { tool(&gw, "changing", "sleep", json!({"ms": LONG_CALL_MS})).await },
        )
    };
    eventually(
        Duration::from_secs(20),
        "the long call is in flight",
        || {
            let gw = gw.clone();
            async move {
                (metric(&gw, "mcpod_calls_in_flight{target=\"changing\"}", None).await == 1)
                    .then_some(())
            }
        },
    )
    .await;
    let origin = [("origin", "https://app.example.com")];
    let refused = gw
        .modern_with(
            "steady",
            json!(9),
            "tools/call",
            json!({"name": "echo", "arguments": {"text": "x"}}),
            &origin,
        )
        .await;
    assert_eq!(refused.status, 403, "{}", refused.body);

    // Add `arriving`, change `changing`, remove `leaving`, allow an origin.
    std::fs::write(
        &path,
        config(
            "allowed_origins = [\"https://app.example.com\"]",
            "max_sessions_per_target = 1\nmax_calls_per_target = 512",
            &[("steady", "1"), ("changing", "new"), ("arriving", "1")],
        ),
    )
    .unwrap();
    served.signal("HUP");
    eventually(Duration::from_secs(20), "the reload is counted", || {
        let gw = gw.clone();
        async move {
            (metric(&gw, "mcpod_config_reloads_total{outcome=\"ok\"}", None).await == 1)
                .then_some(())
        }
    })
    .await;

    // New calls reach the new backend while the old one finishes its call.
    let (generation, new_pid) = backend(&gw, "changing").await;
    assert_eq!(generation, "new");
    assert_ne!(new_pid, old_pid);
    assert!(
        !long.is_finished(),
        "the long call ran on during the reload"
    );
    assert!(alive(old_pid), "the old backend drains before it stops");
    let slept = long.await.unwrap().unwrap();
    assert_eq!(slept, format!("slept {LONG_CALL_MS} ms"));
    eventually(
        Duration::from_secs(20),
        "the drained backend stops",
        || async move { (!alive(old_pid)).then_some(()) },
    )
    .await;

    // Added, removed; the origin now allowed.
    assert_eq!(backend(&gw, "arriving").await.0, "1");
    let gone = gw
        .modern("leaving", json!(1), "tools/list", json!({}))
        .await;
    assert_eq!(gone.status, 404, "{}", gone.body);
    let allowed = gw
        .modern_with(
            "steady",
            json!(9),
            "tools/call",
            json!({"name": "echo", "arguments": {"text": "x"}}),
            &origin,
        )
        .await;
    assert_eq!(allowed.status, 200, "{}", allowed.body);

    // The untouched target: same backend, its legacy session still open.
    assert_eq!(backend(&gw, "steady").await.1, steady_pid);
    let r = gw
        .legacy(
            "steady",
            &sid,
            common::call(json!(5), "echo", json!({"text": "still here"})),
        )
        .await;
    assert_eq!(r.status, 200, "{}", r.body);
    assert_eq!(r.text(), "still here");
    // ...under the new limits: its one session is all it now takes, and
    // its call budget is the new one.
    let refused = gw
        .post(
            "/mcp/steady",
            &[],
            &json!({"jsonrpc":"2.0","id":0,"method":"initialize","params":{
                "protocolVersion":"2025-06-18","capabilities":{},
                "clientInfo":{"name":"test","version":"1"}}}),
        )
        .await;
    assert_eq!(refused.status, 503, "{}", refused.body);
    assert_eq!(
        metric(&gw, "mcpod_calls_limit{target=\"steady\"}", None).await,
        512
    );

    // An invalid config is refused, naming the key; the one in force stays.
    std::fs::write(
        &path,
        config("[telemetry]\nsample_ratio = 3.0", "", &[("steady", "1")]),
    )
    .unwrap();
    served.signal("HUP");
    eventually(Duration::from_secs(20), "the refusal is counted", || {
        let gw = gw.clone();
        async move {
            (metric(&gw, "mcpod_config_reloads_total{outcome=\"failed\"}", None).await == 1)
                .then_some(())
        }
    })
    .await;
    let log = served.log();
    assert!(
        log.lines()
            .any(|l| l.contains("config reload refused") && l.contains("telemetry.sample_ratio")),
        "{log}"
    );
    assert_eq!(backend(&gw, "arriving").await.0, "1");
    assert_eq!(backend(&gw, "changing").await.0, "new");

    stop.store(true, Ordering::Relaxed);
    for task in load {
        task.await.unwrap();
    }
    let errors = errors.lock().unwrap().clone();
    assert!(
        errors.is_empty(),
        "calls to the untouched target failed: {errors:?}"
    );
    assert!(ok.load(Ordering::Relaxed) > 20);
    assert_eq!(
        metric(&gw, "mcpod_config_reloads_total{outcome=\"ok\"}", None).await,
        1
    );
    served.stop().await;
}

#[tokio::test]
async fn a_call_longer_than_the_grace_is_dropped_when_its_target_drains() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("mcpod.toml");
    let with_grace = |generation: &str| {
        config("", "", &[("changing", generation)])
            .replace("shutdown_grace = \"20s\"", "shutdown_grace = \"1s\"")
    };
    std::fs::write(&path, with_grace("old")).unwrap();
    let served = Served::start(&path, &[("NO_COLOR", "1")]).await;
    let gw = Arc::new(Gateway {
        server: None,
        base: served.gateway.base.clone(),
        http: served.gateway.http.clone(),
    });
    let (_, old_pid) = backend(&gw, "changing").await;
    let long = {
        let gw = gw.clone();
        tokio::spawn(async move { tool(&gw, "changing", "sleep", json!({"ms": 120_000})).await })
    };
    eventually(
        Duration::from_secs(20),
        "the long call is in flight",
        || {
            let gw = gw.clone();
            async move {
                (metric(&gw, "mcpod_calls_in_flight{target=\"changing\"}", None).await == 1)
                    .then_some(())
            }
        },
    )
    .await;
    std::fs::write(&path, with_grace("new")).unwrap();
    served.signal("HUP");
    // Past the 1 s grace the old backend stops, and the call with it.
    let ended = tokio::time::timeout(Duration::from_secs(20), long)
        .await
        .expect("the call outlived the grace by far")
        .unwrap();
    assert!(ended.is_err(), "{ended:?}");
    eventually(
        Duration::from_secs(20),
        "the old backend stops",
        || async move { (!alive(old_pid)).then_some(()) },
    )
    .await;
    assert_eq!(backend(&gw, "changing").await.0, "new");
    let log = served.log();
    assert!(log.contains("grace over"), "{log}");
    served.stop().await;
}

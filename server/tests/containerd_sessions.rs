//! Sessions on bot containers: one exec per bot however many first calls
//! race, nothing left behind after many sessions, recovery after the task
//! is killed, idle stop, and containerd restarting under a live session.
//!
//! Needs a real containerd and the static demo server (see `ctd/mod.rs`);
//! behind the `containerd-tests` feature, and never skipped silently.

#![cfg(feature = "containerd-tests")]
#![allow(clippy::unwrap_used, missing_docs)]

mod common;
mod ctd;

use std::path::PathBuf;
use std::time::{Duration, Instant};

use common::{Gateway, call};
use serde_json::json;

async fn fs_mcp(gw: &Gateway, bot: &str, body: serde_json::Value) -> common::Reply {
    gw.post(&format!("/bots/{bot}/container/fs-mcp"), &[], &body)
        .await
}

#[tokio::test]
async fn twenty_concurrent_first_calls_make_exactly_one_exec() {
    let env = ctd::Env::new("race").await;
    env.bot("gina").await;
    // The task's own processes (its init and what that runs).
    let base = env.pids("gina").await;
    let gw = Gateway::start(&env.section("serve_bots = true")).await;
    let replies = futures::future::join_all((0..20).map(|i| {
        fs_mcp(
            &gw,
            "gina",
            call(json!(i), "echo", json!({"text": format!("call {i}")})),
        )
    }))
    .await;
    for (i, r) in replies.iter().enumerate() {
        assert_eq!(r.status, 200, "{}", r.body);
        assert_eq!(r.text(), format!("call {i}"));
    }
    // The task's processes: its own and one exec'd server.
    assert_eq!(
        env.pids("gina").await,
        base + 1,
        "{:?}",
        env.execs("gina").await
    );
    assert_eq!(env.execs("gina").await.len(), 1);
    assert_eq!(env.fifo_leftovers().len(), 1);
    gw.shutdown().await;
    assert_eq!(env.pids("gina").await, base);
    assert!(env.fifo_leftovers().is_empty());
    env.cleanup().await;
}

#[tokio::test]
async fn a_hundred_session_cycles_leave_no_process_and_no_fifo() {
    let env = ctd::Env::new("cycles").await;
    env.bot("hank").await;
    let base = env.pids("hank").await;
    // One exec'd server per legacy session: each cycle execs and ends one.
    let gw = Gateway::start(&format!(
        "{}[targets.hank]\nkind = \"containerd\"\nbot = \"hank\"\nsharing = \"per_session\"\n",
        env.section("")
    ))
    .await;
    let started = Instant::now();
    for i in 0..100 {
        let sid = gw.initialize("hank").await;
        let r = gw
            .legacy(
                "hank",
                &sid,
                call(json!(i), "echo", json!({"text": "cycle"})),
            )
            .await;
        assert_eq!(r.text(), "cycle", "cycle {i}");
        let closing = Instant::now();
        let d = gw
            .http
            .delete(gw.url("/mcp/hank"))
            .header("mcp-session-id", &sid)
            .send()
            .await
            .unwrap();
        assert_eq!(d.status(), 200, "cycle {i}");
        // The server exits on stdin EOF (CloseIO reached it), well before
        // the 3 s grace after which it would be terminated.
        assert!(
            closing.elapsed() < Duration::from_millis(2500),
            "cycle {i}: ending the session took {:?}",
            closing.elapsed()
        );
        // Ending a session waits until its process is reaped and cleaned up.
        assert_eq!(env.execs("hank").await, Vec::<String>::new(), "cycle {i}");
        assert_eq!(env.fifo_leftovers(), Vec::<PathBuf>::new(), "cycle {i}");
    }
    eprintln!("100 session cycles in {:?}", started.elapsed());
    assert_eq!(env.pids("hank").await, base);
    gw.shutdown().await;
    env.cleanup().await;
}

#[tokio::test]
async fn killed_task_gives_clean_errors_then_recovers_when_it_runs_again() {
    let env = ctd::Env::new("killed").await;
    env.bot("ivan").await;
    let gw = Gateway::start(&env.section("serve_bots = true\nstart_stopped_tasks = false")).await;
    let r = fs_mcp(&gw, "ivan", call(json!(1), "echo", json!({"text":"up"}))).await;
    assert_eq!(r.text(), "up");

    // Kill the whole task under a call in flight.
    let started = Instant::now();
    let (slow, _) = tokio::join!(
        fs_mcp(&gw, "ivan", call(json!(2), "sleep", json!({"ms": 30000}))),
        async {
            tokio::time::sleep(Duration::from_millis(300)).await;
            env.client.kill("mcp-ivan", "", 9, true).await.unwrap();
        }
    );
    assert!(
        started.elapsed() < Duration::from_secs(10),
        "{:?}",
        started.elapsed()
    );
    assert_eq!(slow.status, 200, "{}", slow.body);
    assert_eq!(slow.code(), Some(-32603), "{}", slow.body);

    // While the task is down: a clean error, quickly, every time.
    for i in 0..3 {
        let t = Instant::now();
        let r = fs_mcp(
            &gw,
            "ivan",
            call(json!(10 + i), "echo", json!({"text":"down"})),
        )
        .await;
        assert!(t.elapsed() < Duration::from_secs(5));
        assert!(r.status == 503 || r.code() == Some(-32603), "{r:?}");
        assert!(
            r.body.contains("not running") || r.body.contains("backend"),
            "{}",
            r.body
        );
    }
    // Once the task runs again, calls work again.
    env.client
        .stop_task("mcp-ivan", Duration::from_secs(1))
        .await
        .unwrap();
    env.bots.start("ivan").await.unwrap();
    let back = ctd::eventually(Duration::from_secs(20), || async {
        let r = fs_mcp(&gw, "ivan", call(json!(20), "echo", json!({"text":"back"}))).await;
        r.status == 200 && r.code().is_none() && r.text() == "back"
    })
    .await;
    assert!(back, "no recovery after the task was started again");
    assert_eq!(env.execs("ivan").await.len(), 1);
    assert_eq!(env.fifo_leftovers().len(), 1, "{:?}", env.fifo_leftovers());
    gw.shutdown().await;
    assert!(env.fifo_leftovers().is_empty());
    env.cleanup().await;
}

#[tokio::test]
async fn killed_task_is_restarted_when_allowed() {
    let env = ctd::Env::new("restarted").await;
    env.bot("judy").await;
    let gw = Gateway::start(&env.section("serve_bots = true")).await;
    let r = fs_mcp(&gw, "judy", call(json!(1), "echo", json!({"text":"up"}))).await;
    assert_eq!(r.text(), "up");
    env.client.kill("mcp-judy", "", 9, true).await.unwrap();
    let back = ctd::eventually(Duration::from_secs(20), || async {
        let r = fs_mcp(&gw, "judy", call(json!(2), "echo", json!({"text":"again"}))).await;
        r.status == 200 && r.code().is_none() && r.text() == "again"
    })
    .await;
    assert!(back, "the stopped task was not restarted");
    assert_eq!(env.execs("judy").await.len(), 1);
    gw.shutdown().await;
    env.cleanup().await;
}

#[tokio::test]
async fn idle_exec_is_stopped_and_started_again_on_demand() {
    let env = ctd::Env::new("idle").await;
    env.bot("kate").await;
    // The idle timeout is never below the call timeout: lower both.
    let gw = Gateway::start(&format!(
        "{}[targets.kate]\nkind = \"containerd\"\nbot = \"kate\"\nidle_timeout = \"1s\"\ncall_timeout = \"1s\"\n",
        env.section("")
    ))
    .await;
    let r = gw
        .modern(
            "kate",
            json!(1),
            "tools/call",
            json!({"name":"echo","arguments":{"text":"a"}}),
        )
        .await;
    assert_eq!(r.text(), "a");
    assert_eq!(env.execs("kate").await.len(), 1);
    let stopped = ctd::eventually(Duration::from_secs(10), || async {
        env.execs("kate").await.is_empty() && env.fifo_leftovers().is_empty()
    })
    .await;
    assert!(
        stopped,
        "idle exec still running: {:?}",
        env.execs("kate").await
    );
    let r = gw
        .modern(
            "kate",
            json!(2),
            "tools/call",
            json!({"name":"echo","arguments":{"text":"b"}}),
        )
        .await;
    assert_eq!(r.text(), "b");
    assert_eq!(env.execs("kate").await.len(), 1);
    gw.shutdown().await;
    env.cleanup().await;
}

#[tokio::test]
async fn containerd_restart_under_a_live_session_neither_breaks_nor_leaks() {
    let daemon = ctd::OwnDaemon::start();
    let env = ctd::Env::on("restart", daemon.socket()).await;
    env.bot("liam").await;
    let base = env.pids("liam").await;
    let gw = Gateway::start(&env.section("serve_bots = true")).await;
    let sid_call = |i: i64| call(json!(i), "echo", json!({"text": format!("n{i}")}));
    let r = fs_mcp(&gw, "liam", sid_call(1)).await;
    assert_eq!(r.text(), "n1");
    let exec_before = env.execs("liam").await;
    assert_eq!(exec_before.len(), 1);

    // A call in flight across the restart, and calls right after it.
    let (slow, _) = tokio::join!(
        fs_mcp(
            &gw,
            "liam",
            call(json!("slow"), "sleep", json!({"ms": 1500}))
        ),
        async {
            tokio::time::sleep(Duration::from_millis(200)).await;
            daemon.restart().await;
        }
    );
    assert_eq!(slow.text(), "slept 1500 ms", "{}", slow.body);
    for i in 2..6 {
        let r = fs_mcp(&gw, "liam", sid_call(i)).await;
        assert_eq!(r.text(), format!("n{i}"), "{}", r.body);
    }
    // The same exec'd server kept serving: the session survived.
    let ok = ctd::eventually(Duration::from_secs(10), || async {
        env.execs("liam").await == exec_before
    })
    .await;
    assert!(ok, "execs after restart: {:?}", env.execs("liam").await);

    // A second restart with no call in flight, then a clean shutdown.
    daemon.restart().await;
    let r = fs_mcp(&gw, "liam", sid_call(9)).await;
    assert_eq!(r.text(), "n9", "{}", r.body);
    gw.shutdown().await;
    let clean = ctd::eventually(Duration::from_secs(10), || async {
        env.execs("liam").await.is_empty() && env.fifo_leftovers().is_empty()
    })
    .await;
    assert!(
        clean,
        "leaked: execs {:?}, fifos {:?}",
        env.execs("liam").await,
        env.fifo_leftovers()
    );
    assert_eq!(env.pids("liam").await, base);
    env.cleanup().await;
}

#[tokio::test]
async fn processes_left_by_a_killed_mcpod_are_reaped() {
    let env = ctd::Env::new("orphans").await;
    env.bot("olga").await;
    // Another mcpod serves olga, then is killed: it never closes its
    // server's stdin (the shim keeps its own handle), so the server would
    // run forever; its owner lock dies with it.
    let mut dead = ctd::ServeProcess::start(&[], &env.section("serve_bots = true")).await;
    let r = dead
        .post_json(
            "/bots/olga/container/fs-mcp",
            &call(json!(1), "echo", json!({"text":"hi"})),
        )
        .await;
    assert_eq!(r["result"]["content"][0]["text"], "hi", "{r}");
    let orphan = env.execs("olga").await;
    assert_eq!(orphan.len(), 1);
    let orphan = orphan[0].clone();
    dead.kill();
    let fifo_dir = env.fifo_root.join(&orphan);
    assert!(fifo_dir.is_dir());
    assert_eq!(
        env.execs("olga").await,
        vec![orphan.clone()],
        "not orphaned"
    );

    let gw = Gateway::start(&env.section("serve_bots = true")).await;
    let r = fs_mcp(&gw, "olga", call(json!(1), "echo", json!({"text":"hi"}))).await;
    assert_eq!(r.text(), "hi");
    let reaped = ctd::eventually(Duration::from_secs(10), || async {
        let execs = env.execs("olga").await;
        execs.len() == 1 && !execs.contains(&orphan) && !fifo_dir.exists()
    })
    .await;
    assert!(
        reaped,
        "execs: {:?}, orphan's FIFO directory left: {}",
        env.execs("olga").await,
        fifo_dir.exists()
    );
    gw.shutdown().await;
    assert!(env.execs("olga").await.is_empty());
    assert!(
        env.fifo_leftovers().is_empty(),
        "{:?}",
        env.fifo_leftovers()
    );
    env.cleanup().await;
}

//! containerd restarting, or gone for longer than the retry budget, under
//! exec'd processes older than that budget. Each test has a containerd of
//! its own (so restarting it disturbs no other test) and a 4 s budget
//! (a restart here keeps containerd away for 1.3–2.3 s).
//! Run with `--features containerd-tests` (see scripts/containerd-env.sh).
#![cfg(feature = "containerd-tests")]

mod common;

use std::time::{Duration, Instant};

use common::{OwnDaemon, TestEnv, eventually, only_baseline, pid_set};
use mcpod_containerd::{Error, Escalation, ExecOptions, ExecProcess};
use tokio::io::{AsyncBufReadExt, AsyncWriteExt, BufReader};
use tokio::net::unix::pipe;

const BUDGET: Duration = Duration::from_secs(4);

/// The crate's log lines, captured (for figures: when a wait resumed).
#[derive(Clone, Default)]
struct Captured(std::sync::Arc<std::sync::Mutex<Vec<u8>>>);

impl std::io::Write for Captured {
    fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
        self.0.lock().expect("lock").extend_from_slice(buf);
        Ok(buf.len())
    }
    fn flush(&mut self) -> std::io::Result<()> {
        Ok(())
    }
}

impl Captured {
    fn text(&self) -> String {
        String::from_utf8_lossy(&self.0.lock().expect("lock")).into_owned()
    }
}

/// The log of this test binary (installed once).
fn log() -> &'static Captured {
    static LOG: std::sync::OnceLock<Captured> = std::sync::OnceLock::new();
    LOG.get_or_init(|| {
        let captured = Captured::default();
        let writer = captured.clone();
        let subscriber = tracing_subscriber::fmt()
            .with_writer(move || writer.clone())
            .with_ansi(false)
            .with_env_filter(tracing_subscriber::EnvFilter::new("mcpod_containerd=info"))
            .finish();
        let _ = tracing::subscriber::set_global_default(subscriber);
        captured
    })
}

/// How many times the wait for `exec_id` found its process again.
fn resumed(exec_id: &str) -> usize {
    log()
        .text()
        .lines()
        .filter(|l| l.contains(exec_id) && l.contains("waiting for it anew"))
        .count()
}

async fn round_trip(stdin: &mut pipe::Sender, stdout: &mut BufReader<pipe::Receiver>, msg: &str) {
    stdin.write_all(msg.as_bytes()).await.expect("write");
    let mut line = String::new();
    tokio::time::timeout(Duration::from_secs(5), stdout.read_line(&mut line))
        .await
        .expect("echo in time")
        .expect("read");
    assert_eq!(line, msg);
}

async fn cat(env: &TestEnv) -> (ExecProcess, pipe::Sender, BufReader<pipe::Receiver>) {
    let mut p = env
        .bots
        .exec("b", &ExecOptions::new(["/bin/cat"]))
        .await
        .expect("exec");
    let stdin = p.stdin.take().expect("stdin");
    let stdout = BufReader::new(p.stdout.take().expect("stdout"));
    (p, stdin, stdout)
}

/// Whether the process's wait is still on (neither an exit nor given up).
async fn still_waiting(p: &ExecProcess) -> bool {
    tokio::time::timeout(Duration::from_millis(100), p.wait())
        .await
        .is_err()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_exec_older_than_the_budget_survives_three_restarts() {
    log();
    let daemon = OwnDaemon::start();
    let env = TestEnv::on_daemon("readopt", daemon.socket(), BUDGET).await;
    env.bots
        .create_and_start("b", &env.spec("b"))
        .await
        .expect("create and start");
    let baseline = pid_set(&env.client, "mcp-b").await;
    let (p, mut stdin, mut stdout) = cat(&env).await;
    round_trip(&mut stdin, &mut stdout, "before\n").await;
    for i in 0..3 {
        // Older than the budget since it started (and since the last restart).
        tokio::time::sleep(BUDGET + Duration::from_millis(500)).await;
        let took = daemon.restart().await;
        let back = Instant::now();
        round_trip(&mut stdin, &mut stdout, &format!("after restart {i}\n")).await;
        // The wait found the process again (re-adopted it) once containerd answered.
        let readopted = eventually(Duration::from_secs(10), || async {
            resumed(p.exec_id()) > i
        })
        .await;
        assert!(
            readopted,
            "restart {i}: the wait never resumed:\n{}",
            log().text()
        );
        eprintln!(
            "restart {i}: containerd down and up in {took:?}; the wait resumed {:?} after it answered",
            back.elapsed()
        );
        assert!(
            still_waiting(&p).await,
            "restart {i}: the wait ended: {:?}",
            p.wait().await
        );
    }
    // The wait found the process again each time, and its budget starts
    // over from the next failure: it does not give up later either.
    tokio::time::sleep(BUDGET + Duration::from_millis(500)).await;
    assert!(still_waiting(&p).await, "{:?}", p.wait().await);
    drop(stdin);
    let report = p.shutdown(Duration::from_secs(5)).await.expect("shutdown");
    assert_eq!(report.escalation, Escalation::None);
    assert!(report.status.success());
    assert!(only_baseline(&env.client, "mcp-b", &baseline).await);
    assert!(
        env.fifo_leftovers().is_empty(),
        "{:?}",
        env.fifo_leftovers()
    );
    env.cleanup().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_wait_lost_to_a_long_outage_is_no_exit_and_shutdown_still_ends_the_process() {
    let daemon = OwnDaemon::start();
    let env = TestEnv::on_daemon("lost", daemon.socket(), BUDGET).await;
    env.bots
        .create_and_start("b", &env.spec("b"))
        .await
        .expect("create and start");
    let baseline = pid_set(&env.client, "mcp-b").await;
    let (p, mut stdin, mut stdout) = cat(&env).await;
    round_trip(&mut stdin, &mut stdout, "before\n").await;

    daemon.down().await;
    let t = Instant::now();
    let lost = tokio::time::timeout(Duration::from_secs(30), p.wait())
        .await
        .expect("the wait gives up within its budget");
    eprintln!("the wait gave up after {:?}: {lost:?}", t.elapsed());
    assert!(matches!(lost, Err(Error::WaitFailed { .. })), "{lost:?}");
    assert!(p.try_exit_status().is_none());
    // The process did not exit: its stream still works, through the shim.
    round_trip(&mut stdin, &mut stdout, "during the outage\n").await;

    daemon.up().await;
    drop(stdin);
    // Teardown finds the process again and ends it: CloseIO reaches it.
    let report = p.shutdown(Duration::from_secs(2)).await.expect("shutdown");
    assert_eq!(report.escalation, Escalation::None, "{report:?}");
    assert!(report.status.success());
    assert!(only_baseline(&env.client, "mcp-b", &baseline).await);
    assert!(
        env.fifo_leftovers().is_empty(),
        "{:?}",
        env.fifo_leftovers()
    );
    env.cleanup().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_shutdown_during_the_outage_leaves_the_process_to_a_reaper_that_ends_it() {
    let daemon = OwnDaemon::start();
    let env = TestEnv::on_daemon("later", daemon.socket(), BUDGET).await;
    env.bots
        .create_and_start("b", &env.spec("b"))
        .await
        .expect("create and start");
    let baseline = pid_set(&env.client, "mcp-b").await;
    let (p, mut stdin, mut stdout) = cat(&env).await;
    round_trip(&mut stdin, &mut stdout, "before\n").await;
    let fifo_dir = env.fifo_root.join(p.exec_id());

    daemon.down().await;
    drop(stdin);
    let t = Instant::now();
    let r = p.shutdown(Duration::from_millis(200)).await;
    eprintln!(
        "shutdown during the outage: {:?} after {:?}",
        r,
        t.elapsed()
    );
    assert!(r.is_err(), "{r:?}");
    // The process may still run: its FIFO directory stays, for the reaper.
    assert!(fifo_dir.join("owner").is_file(), "FIFO directory removed");

    daemon.up().await;
    let t = Instant::now();
    let clean = eventually(Duration::from_secs(20), || async {
        only_baseline(&env.client, "mcp-b", &baseline).await && env.fifo_leftovers().is_empty()
    })
    .await;
    eprintln!("reaped {:?} after containerd came back", t.elapsed());
    assert!(
        clean,
        "left: {:?}, FIFOs {:?}",
        env.client.list_pids("mcp-b").await,
        env.fifo_leftovers()
    );
    env.cleanup().await;
}

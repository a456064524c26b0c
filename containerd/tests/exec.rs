//! Exec'd processes in bot containers against a real containerd.
//! Run with `--features containerd-tests` (see scripts/containerd-env.sh).
#![cfg(feature = "containerd-tests")]

mod common;

use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use common::{TestEnv, eventually, only_baseline, pid_set};
use mcpod_containerd::{Error, Escalation, ExecOptions};
use tokio::io::{AsyncBufReadExt, AsyncReadExt, AsyncWriteExt, BufReader};

async fn running_bot(env: &TestEnv, bot: &str) -> String {
    env.bots
        .create_and_start(bot, &env.spec(bot))
        .await
        .expect("create and start bot");
    env.bots.container_id(&bot.parse().expect("bot id"))
}

#[tokio::test]
async fn cat_round_trip() {
    let env = TestEnv::new("cat").await;
    running_bot(&env, "cat").await;
    let baseline = pid_set(&env.client, "mcp-cat").await;
    let mut p = env
        .bots
        .exec("cat", &ExecOptions::new(["/bin/cat"]))
        .await
        .expect("exec cat");
    let mut stdin = p.stdin.take().expect("stdin");
    let mut stdout = BufReader::new(p.stdout.take().expect("stdout"));
    for i in 0..50 {
        let msg = format!("line {i} {}\n", "x".repeat(i * 37));
        stdin.write_all(msg.as_bytes()).await.expect("write");
        let mut back = String::new();
        tokio::time::timeout(Duration::from_secs(5), stdout.read_line(&mut back))
            .await
            .expect("echo in time")
            .expect("read");
        assert_eq!(back, msg);
    }
    // Its FIFOs live in a private directory of its own.
    let dir = env.fifo_root.join(p.exec_id());
    let mode = std::os::unix::fs::PermissionsExt::mode(
        &std::fs::metadata(&dir).expect("FIFO dir").permissions(),
    );
    assert_eq!(mode & 0o777, 0o700, "{}", dir.display());
    // The exec'd process shows in ListPids with its exec id.
    let pids = env.client.list_pids("mcp-cat").await.expect("pids");
    assert!(
        pids.iter()
            .any(|p2| p2.exec_id.as_deref() == Some(p.exec_id())),
        "{pids:?}"
    );
    // Closing stdin (plus CloseIO in shutdown) makes cat exit by itself.
    drop(stdin);
    let report = p.shutdown(Duration::from_secs(5)).await.expect("shutdown");
    assert_eq!(report.escalation, Escalation::None);
    assert!(report.status.success());
    let mut rest = Vec::new();
    stdout.read_to_end(&mut rest).await.expect("stdout EOF");
    assert!(rest.is_empty());
    assert!(only_baseline(&env.client, "mcp-cat", &baseline).await);
    assert!(env.fifo_leftovers().is_empty());
    env.cleanup().await;
}

#[derive(Clone, Default)]
struct Captured(Arc<Mutex<Vec<u8>>>);

impl std::io::Write for Captured {
    fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
        self.0.lock().expect("lock").extend_from_slice(buf);
        Ok(buf.len())
    }
    fn flush(&mut self) -> std::io::Result<()> {
        Ok(())
    }
}

#[tokio::test]
async fn long_stderr_line_does_not_block() {
    let captured = Captured::default();
    let writer = captured.clone();
    let subscriber = tracing_subscriber::fmt()
        .with_writer(move || writer.clone())
        .with_ansi(false)
        .with_max_level(tracing::Level::INFO)
        .finish();
    // current_thread runtime: spawned tasks log on this thread.
    let _guard = tracing::subscriber::set_default(subscriber);

    let env = TestEnv::new("stderr").await;
    running_bot(&env, "err").await;
    // 2 MiB on one stderr line, then a short one, then stdout: with stderr not
    // drained the writer would block at 64 KiB and "done" would never come.
    let script =
        "head -c 2097152 /dev/zero | tr '\\0' x >&2; echo >&2; echo tail-line >&2; echo done";
    let mut p = env
        .bots
        .exec("err", &ExecOptions::new(["/bin/sh", "-c", script]))
        .await
        .expect("exec");
    let mut out = String::new();
    tokio::time::timeout(
        Duration::from_secs(20),
        p.stdout.take().expect("stdout").read_to_string(&mut out),
    )
    .await
    .expect("stdout must finish: stderr is drained")
    .expect("read stdout");
    assert_eq!(out, "done\n");
    let status = tokio::time::timeout(Duration::from_secs(10), p.wait())
        .await
        .expect("exit in time")
        .expect("wait");
    assert!(status.success());
    p.shutdown(Duration::from_secs(1)).await.expect("shutdown");
    let logs = String::from_utf8_lossy(&captured.0.lock().expect("lock")).into_owned();
    assert!(
        logs.contains("tail-line"),
        "later line logged after the long one"
    );
    assert!(
        logs.contains(&format!(
            "dropped_bytes={}",
            2 * 1024 * 1024 - mcpod_containerd::DEFAULT_STDERR_LINE_LIMIT
        )),
        "long line cut and counted"
    );
    assert!(!logs.contains(&"x".repeat(mcpod_containerd::DEFAULT_STDERR_LINE_LIMIT + 1)));
    env.cleanup().await;
}

#[tokio::test]
async fn hundred_exec_cycles_leave_nothing() {
    let env = TestEnv::new("cycles").await;
    let cid = running_bot(&env, "cyc").await;
    let baseline = pid_set(&env.client, &cid).await;
    let t0 = Instant::now();
    for i in 0..100 {
        let mut p = env
            .client
            .exec(&cid, &ExecOptions::new(["/bin/cat"]))
            .await
            .expect("exec");
        let mut stdin = p.stdin.take().expect("stdin");
        let mut stdout = BufReader::new(p.stdout.take().expect("stdout"));
        if i % 2 == 0 {
            // Half of them do a round trip; half are closed untouched.
            stdin.write_all(b"ping\n").await.expect("write");
            let mut line = String::new();
            stdout.read_line(&mut line).await.expect("read");
            assert_eq!(line, "ping\n");
        }
        drop(stdin);
        p.shutdown(Duration::from_secs(2)).await.expect("shutdown");
    }
    let per_cycle = t0.elapsed() / 100;
    eprintln!("exec + shutdown cycle: {per_cycle:?} on average");
    let pids = env.client.list_pids(&cid).await.expect("pids");
    assert!(
        only_baseline(&env.client, &cid, &baseline).await,
        "only init remains: {pids:?} vs {baseline:?}"
    );
    assert!(
        env.fifo_leftovers().is_empty(),
        "{:?}",
        env.fifo_leftovers()
    );
    env.cleanup().await;
}

#[tokio::test]
async fn dropped_process_is_cleaned_up() {
    let env = TestEnv::new("drop").await;
    let cid = running_bot(&env, "drop").await;
    let baseline = pid_set(&env.client, &cid).await;
    for _ in 0..5 {
        let p = env
            .client
            .exec(&cid, &ExecOptions::new(["/bin/sleep", "1000"]))
            .await
            .expect("exec");
        drop(p);
    }
    let client = env.client.clone();
    let c2 = cid.clone();
    assert!(
        eventually(Duration::from_secs(15), || {
            let client = client.clone();
            let cid = c2.clone();
            let baseline = baseline.clone();
            async move { only_baseline(&client, &cid, &baseline).await }
        })
        .await,
        "dropped processes end: {:?}",
        env.client.list_pids(&cid).await
    );
    assert!(
        eventually(Duration::from_secs(5), || async {
            env.fifo_leftovers().is_empty()
        })
        .await,
        "FIFO dirs removed: {:?}",
        env.fifo_leftovers()
    );
    env.cleanup().await;
}

#[tokio::test]
async fn shutdown_escalates_for_processes_ignoring_eof_and_term() {
    let env = TestEnv::new("escalate").await;
    let cid = running_bot(&env, "esc").await;
    let baseline = pid_set(&env.client, &cid).await;

    // Ignores stdin EOF, dies on SIGTERM.
    let p = env
        .client
        .exec(&cid, &ExecOptions::new(["/bin/sleep", "1000"]))
        .await
        .expect("exec sleep");
    let t0 = Instant::now();
    let report = p
        .shutdown(Duration::from_millis(300))
        .await
        .expect("shutdown sleep");
    assert_eq!(report.escalation, Escalation::Term);
    assert_eq!(report.status.code, 128 + 15);
    assert!(t0.elapsed() < Duration::from_secs(3), "{:?}", t0.elapsed());

    // Ignores EOF and SIGTERM: needs SIGKILL.
    let p = env
        .client
        .exec(
            &cid,
            &ExecOptions::new(["/bin/sh", "-c", "trap '' TERM; while :; do sleep 1; done"]),
        )
        .await
        .expect("exec trap");
    // Let the shell install its trap.
    tokio::time::sleep(Duration::from_millis(200)).await;
    let t0 = Instant::now();
    let report = p
        .shutdown(Duration::from_millis(300))
        .await
        .expect("shutdown trap");
    assert_eq!(report.escalation, Escalation::Kill);
    assert_eq!(report.status.code, 128 + 9);
    assert!(t0.elapsed() < Duration::from_secs(5), "{:?}", t0.elapsed());

    let pids = env.client.list_pids(&cid).await.expect("pids");
    // The shell's `sleep 1` child may outlive it by up to a second.
    let client = env.client.clone();
    assert!(
        eventually(Duration::from_secs(3), || {
            let client = client.clone();
            let cid = cid.clone();
            let baseline = baseline.clone();
            async move { only_baseline(&client, &cid, &baseline).await }
        })
        .await,
        "{pids:?}"
    );
    assert!(env.fifo_leftovers().is_empty());
    env.cleanup().await;
}

#[tokio::test]
async fn failed_exec_leaves_nothing() {
    let env = TestEnv::new("fail").await;
    let cid = running_bot(&env, "fail").await;
    let baseline = pid_set(&env.client, &cid).await;
    let err = env
        .client
        .exec(&cid, &ExecOptions::new(["/no/such/binary"]))
        .await
        .expect_err("exec of a missing binary fails");
    assert!(matches!(err, Error::Rpc { .. }), "{err:?}");
    assert!(
        env.fifo_leftovers().is_empty(),
        "{:?}",
        env.fifo_leftovers()
    );
    assert!(only_baseline(&env.client, &cid, &baseline).await);
    // The task is still usable.
    let mut p = env
        .client
        .exec(&cid, &ExecOptions::new(["/bin/echo", "ok"]))
        .await
        .expect("exec echo");
    let mut out = String::new();
    p.stdout
        .take()
        .expect("stdout")
        .read_to_string(&mut out)
        .await
        .expect("read");
    assert_eq!(out, "ok\n");
    p.shutdown(Duration::from_secs(1)).await.expect("shutdown");
    // Exec in a container without a task, and in no container at all.
    env.bots
        .create("idle", &env.spec("idle"))
        .await
        .expect("create");
    assert!(matches!(
        env.client
            .exec("mcp-idle", &ExecOptions::new(["/bin/true"]))
            .await,
        Err(Error::TaskNotRunning { .. })
    ));
    assert!(matches!(
        env.client
            .exec("mcp-none", &ExecOptions::new(["/bin/true"]))
            .await,
        Err(Error::NotFound { .. })
    ));
    assert!(env.fifo_leftovers().is_empty());
    env.cleanup().await;
}

#[tokio::test]
async fn task_killed_under_live_exec() {
    let env = TestEnv::new("taskkill").await;
    let cid = running_bot(&env, "tk").await;
    let mut p = env
        .client
        .exec(&cid, &ExecOptions::new(["/bin/cat"]))
        .await
        .expect("exec");
    let mut stdin = p.stdin.take().expect("stdin");
    let mut stdout = BufReader::new(p.stdout.take().expect("stdout"));
    stdin.write_all(b"before\n").await.expect("write");
    let mut line = String::new();
    stdout.read_line(&mut line).await.expect("read");
    assert_eq!(line, "before\n");

    env.client
        .kill(&cid, "", libc_sigkill(), true)
        .await
        .expect("kill task");
    let mut rest = Vec::new();
    tokio::time::timeout(Duration::from_secs(10), stdout.read_to_end(&mut rest))
        .await
        .expect("stdout reaches EOF")
        .expect("read to EOF");
    let status = tokio::time::timeout(Duration::from_secs(10), p.wait())
        .await
        .expect("wait returns")
        .expect("exit observed");
    assert_eq!(status.code, 128 + 9);
    drop(stdin);
    let report = p
        .shutdown(Duration::from_millis(200))
        .await
        .expect("shutdown after task death");
    assert_eq!(report.escalation, Escalation::None);
    assert!(env.fifo_leftovers().is_empty());

    // The stopped task can be restarted and exec'd in again.
    let task = env.bots.start("tk").await.expect("restart task");
    assert_eq!(task.status, mcpod_containerd::TaskStatus::Running);
    let baseline = pid_set(&env.client, &cid).await;
    let mut p = env
        .client
        .exec(&cid, &ExecOptions::new(["/bin/echo", "again"]))
        .await
        .expect("exec after restart");
    let mut out = String::new();
    p.stdout
        .take()
        .expect("stdout")
        .read_to_string(&mut out)
        .await
        .expect("read");
    assert_eq!(out, "again\n");
    p.shutdown(Duration::from_secs(1)).await.expect("shutdown");
    assert!(only_baseline(&env.client, &cid, &baseline).await);
    env.cleanup().await;
}

fn libc_sigkill() -> i32 {
    9
}

#[tokio::test]
async fn close_stdin_is_what_delivers_eof() {
    let env = TestEnv::new("closestdin").await;
    let cid = running_bot(&env, "cs").await;
    let mut p = env
        .client
        .exec(&cid, &ExecOptions::new(["/bin/cat"]))
        .await
        .expect("exec");
    let mut stdout = p.stdout.take().expect("stdout");
    // Dropping our writer alone is not EOF: the shim holds a writer of its own.
    drop(p.stdin.take());
    tokio::time::sleep(Duration::from_millis(300)).await;
    assert!(p.try_exit_status().is_none(), "cat still running");
    p.close_stdin().await.expect("close stdin");
    let status = tokio::time::timeout(Duration::from_secs(10), p.wait())
        .await
        .expect("cat exits on EOF")
        .expect("wait");
    assert!(status.success());
    let mut rest = Vec::new();
    stdout.read_to_end(&mut rest).await.expect("EOF");
    // Closing again after the exit is not an error.
    p.close_stdin().await.expect("close stdin again");
    let report = p
        .shutdown(Duration::from_millis(200))
        .await
        .expect("shutdown");
    assert_eq!(report.escalation, Escalation::None);
    assert!(env.fifo_leftovers().is_empty());
    env.cleanup().await;
}

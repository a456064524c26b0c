//! containerd restarted under a live exec. Its own test binary, so it runs
//! alone (cargo runs test binaries one after another).
//! Run with `--features containerd-tests` (see scripts/containerd-env.sh).
#![cfg(feature = "containerd-tests")]

mod common;

use std::time::{Duration, Instant};

use common::{TestEnv, daemon_dir, only_baseline, pid_set, script};
use mcpod_containerd::{Escalation, ExecOptions};
use tokio::io::{AsyncBufReadExt, AsyncReadExt, AsyncWriteExt, BufReader};

async fn round_trip(
    stdin: &mut tokio::net::unix::pipe::Sender,
    stdout: &mut BufReader<tokio::net::unix::pipe::Receiver>,
    msg: &str,
) {
    stdin.write_all(msg.as_bytes()).await.expect("write");
    let mut line = String::new();
    tokio::time::timeout(Duration::from_secs(5), stdout.read_line(&mut line))
        .await
        .expect("echo in time")
        .expect("read");
    assert_eq!(line, msg);
}

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

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn exec_survives_containerd_restart() {
    let captured = Captured::default();
    let writer = captured.clone();
    let subscriber = tracing_subscriber::fmt()
        .with_writer(move || writer.clone())
        .with_ansi(false)
        .with_env_filter(tracing_subscriber::EnvFilter::new("mcpod_containerd=debug"))
        .finish();
    tracing::subscriber::set_global_default(subscriber).expect("the only subscriber");
    let dir = daemon_dir();
    let env = TestEnv::new("restart").await;
    env.bots
        .create_and_start("rs", &env.spec("rs"))
        .await
        .expect("create and start");
    let baseline = pid_set(&env.client, "mcp-rs").await;
    let mut p = env
        .bots
        .exec("rs", &ExecOptions::new(["/bin/cat"]))
        .await
        .expect("exec");
    let mut stdin = p.stdin.take().expect("stdin");
    let mut stdout = BufReader::new(p.stdout.take().expect("stdout"));
    round_trip(&mut stdin, &mut stdout, "before restart\n").await;

    let t0 = Instant::now();
    let restart = tokio::process::Command::new("bash")
        .arg(script())
        .arg("restart")
        .arg(&dir)
        .output();
    // RPCs made while the daemon is down are retried until it is back.
    let poll = async {
        let mut calls = 0u32;
        loop {
            env.client
                .list_pids("mcp-rs")
                .await
                .expect("ListPids across the restart");
            calls += 1;
            tokio::time::sleep(Duration::from_millis(20)).await;
            if t0.elapsed() > Duration::from_secs(30) {
                return calls;
            }
        }
    };
    let out = tokio::select! {
        out = restart => out.expect("run containerd-env.sh restart"),
        calls = poll => panic!("restart did not finish in 30 s ({calls} calls)"),
    };
    assert!(
        out.status.success(),
        "restart failed: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    eprintln!("containerd restarted in {:?}", t0.elapsed());

    // The stream lives between us and the shim: it never noticed.
    round_trip(&mut stdin, &mut stdout, "after restart\n").await;
    // The background Wait broke with the old daemon and was retried: no false exit.
    assert!(
        p.try_exit_status().is_none(),
        "a broken Wait is not an exit"
    );
    // RPCs work again through the same client.
    assert!(env.client.version().await.is_ok());
    let pids = env
        .client
        .list_pids("mcp-rs")
        .await
        .expect("pids after restart");
    assert!(
        pids.iter()
            .any(|x| x.exec_id.as_deref() == Some(p.exec_id()))
    );

    drop(stdin);
    let report = p.shutdown(Duration::from_secs(5)).await.expect("shutdown");
    assert_eq!(report.escalation, Escalation::None);
    assert!(report.status.success());
    let mut rest = Vec::new();
    stdout.read_to_end(&mut rest).await.expect("EOF");
    assert!(only_baseline(&env.client, "mcp-rs", &baseline).await);
    assert!(env.fifo_leftovers().is_empty());
    env.cleanup().await;
}

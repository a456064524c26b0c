//! Reaping decides ownership by each process's owner lock, never by pids:
//! processes of a live owner are spared, whatever client or instance asks;
//! processes whose owner is gone, or whose FIFO directory was removed under
//! them, are ended with their records and directories; others' are left.
//! Run with `--features containerd-tests` (see scripts/containerd-env.sh).
#![cfg(feature = "containerd-tests")]

mod common;

use std::process::{Child, Command, Stdio};
use std::time::Duration;

use common::{TestEnv, eventually, socket};
use mcpod_containerd::{Client, ExecOptions};

/// `ctr task exec` of `args` under `exec_id`, killed once the process runs:
/// the shim keeps the process's stdin open, so it runs on, owned by nobody.
/// Its FIFOs go in a directory of its own under `fifo_dir`.
async fn ctr_orphan(env: &TestEnv, exec_id: &str, fifo_dir: &str, args: &[&str]) {
    let mut cmd = Command::new("ctr");
    cmd.arg("--address")
        .arg(socket())
        .args([
            "-n",
            env.client.namespace(),
            "task",
            "exec",
            "--exec-id",
            exec_id,
        ])
        .args(["--fifo-dir", fifo_dir]);
    let mut ctr: Child = cmd
        .arg("mcp-r")
        .args(args)
        .stdin(Stdio::piped())
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .expect("spawn ctr");
    let running = eventually(Duration::from_secs(10), || async {
        execs(&env.client).await.iter().any(|e| e == exec_id)
    })
    .await;
    assert!(running, "{exec_id} never started");
    ctr.kill().expect("kill ctr");
    ctr.wait().expect("reap ctr");
}

async fn execs(client: &Client) -> Vec<String> {
    client
        .list_pids("mcp-r")
        .await
        .expect("list pids")
        .into_iter()
        .filter_map(|p| p.exec_id)
        .collect()
}

#[tokio::test]
async fn orphans_are_reaped_and_live_or_foreign_processes_are_not() {
    let env = TestEnv::new("reap").await;
    env.bots
        .create_and_start("r", &env.spec("r"))
        .await
        .expect("create and start");
    // A live process of this client.
    let live = env
        .bots
        .exec("r", &ExecOptions::new(["/bin/cat"]))
        .await
        .expect("exec");
    let live_id = live.exec_id().to_owned();

    // An mcpod's process whose owner is gone: its FIFO directory has an
    // owner file that nobody holds locked (as a killed mcpod leaves it).
    let elsewhere = env.tmp.path().join("ctr-fifo");
    let elsewhere = elsewhere.to_str().expect("utf-8");
    let dead_owner = "mcpod.00000000deadbeef.1";
    ctr_orphan(&env, dead_owner, elsewhere, &["/bin/cat"]).await;
    let dead_dir = env.fifo_root.join(dead_owner);
    std::fs::create_dir_all(&dead_dir).expect("mkdir");
    std::fs::write(
        dead_dir.join("owner"),
        format!(
            "namespace={}\ncontainer=mcp-r\ninstance=00000000deadbeef\n",
            env.client.namespace()
        ),
    )
    .expect("owner file");

    // An older mcpod's process whose FIFO directory was removed under it
    // (its stdio still lives under this FIFO root).
    let stripped = "mcpod.4242.18eb051eaa4703b3.0";
    let fifo_root = env.fifo_root.to_str().expect("utf-8").to_owned();
    ctr_orphan(&env, stripped, &fifo_root, &["/bin/cat"]).await;

    // Not mcpod's: never touched.
    ctr_orphan(&env, "other-1", elsewhere, &["/bin/sleep", "600"]).await;

    // Another client — as another mcpod on the same FIFO root would be —
    // spares the live process: its owner lock is held.
    let other = Client::connect(env.client.config().clone())
        .await
        .expect("connect");
    let reaped = other.reap_orphans("mcp-r").await.expect("reap");
    let mut ids: Vec<&str> = reaped.iter().map(|r| r.exec_id.as_str()).collect();
    ids.sort_unstable();
    assert_eq!(ids, [dead_owner, stripped], "{reaped:?}");
    let left = execs(&env.client).await;
    assert!(left.contains(&live_id), "{left:?}");
    assert!(left.contains(&"other-1".to_owned()), "{left:?}");
    assert_eq!(left.len(), 2, "{left:?}");
    // Their FIFO directories went with them; the live one's stays.
    let dirs = env.fifo_leftovers();
    assert_eq!(dirs, vec![env.fifo_root.join(&live_id)], "{dirs:?}");

    // A second pass finds nothing more.
    assert!(other.reap_orphans("mcp-r").await.expect("reap").is_empty());
    live.shutdown(Duration::from_secs(2))
        .await
        .expect("shutdown");
    assert!(
        env.fifo_leftovers().is_empty(),
        "{:?}",
        env.fifo_leftovers()
    );
    env.client
        .kill("mcp-r", "other-1", 9, false)
        .await
        .expect("kill");
    env.cleanup().await;
}

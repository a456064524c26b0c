//! Shared set-up of the tests against a real containerd.
#![allow(dead_code, unused_imports, unreachable_pub, missing_docs)]

use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use mcpod_containerd::{BotConfig, Bots, Client, ClientConfig, testing};

pub const SOCKET_VAR: &str = "MCPOD_TEST_CONTAINERD_SOCKET";
pub const DIR_VAR: &str = "MCPOD_TEST_CONTAINERD_DIR";

/// The private containerd's socket. Panics (fails the test) when unset.
pub fn socket() -> PathBuf {
    match std::env::var_os(SOCKET_VAR) {
        Some(s) if !s.is_empty() => PathBuf::from(s),
        _ => panic!(
            "\n\n*** {SOCKET_VAR} is not set: these tests need a real containerd. ***\n\
             Start a private one (as root) and run them with:\n\
             \n    scripts/containerd-env.sh start /tmp/ctd\n    \
             MCPOD_TEST_CONTAINERD_SOCKET=/tmp/ctd/containerd.sock MCPOD_TEST_CONTAINERD_DIR=/tmp/ctd \\\n        \
             cargo test -p mcpod-containerd --features containerd-tests\n    \
             scripts/containerd-env.sh stop /tmp/ctd\n\n"
        ),
    }
}

/// The private containerd's directory (for restarting it): `MCPOD_TEST_CONTAINERD_DIR`,
/// else the socket's directory when it is one made by `containerd-env.sh`.
/// Panics when neither is there.
pub fn daemon_dir() -> PathBuf {
    match std::env::var_os(DIR_VAR) {
        Some(s) if !s.is_empty() => PathBuf::from(s),
        _ if socket()
            .parent()
            .is_some_and(|d| d.join("containerd.pid").is_file()) =>
        {
            socket().parent().map(Path::to_path_buf).unwrap_or_default()
        }
        _ => panic!(
            "\n\n*** {DIR_VAR} is not set: the restart test needs the directory given to \
             `scripts/containerd-env.sh start DIR` (it prints the export line). ***\n\n"
        ),
    }
}

pub fn script() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../scripts/containerd-env.sh")
}

/// One test's world: its own namespace, rootfs, FIFO root and data dir.
pub struct TestEnv {
    pub tmp: tempfile::TempDir,
    pub rootfs: PathBuf,
    pub fifo_root: PathBuf,
    pub data_root: PathBuf,
    pub client: Client,
    pub bots: Bots,
}

impl TestEnv {
    pub async fn new(name: &str) -> TestEnv {
        Self::with_config(name, BotConfig::default()).await
    }

    pub async fn with_config(name: &str, bot_config: BotConfig) -> TestEnv {
        Self::make(name, bot_config, socket(), None).await
    }

    /// A world on the daemon at `socket`, with a retry budget of `budget`.
    pub async fn on_daemon(name: &str, socket: PathBuf, budget: Duration) -> TestEnv {
        Self::make(name, BotConfig::default(), socket, Some(budget)).await
    }

    async fn make(
        name: &str,
        bot_config: BotConfig,
        socket: PathBuf,
        budget: Option<Duration>,
    ) -> TestEnv {
        let tmp = tempfile::Builder::new()
            .prefix("mcpod-ctd-test-")
            .tempdir()
            .expect("tempdir");
        let rootfs = tmp.path().join("rootfs");
        build_rootfs(&rootfs);
        let fifo_root = tmp.path().join("fifo");
        let data_root = tmp.path().join("data");
        let namespace = format!("mcpod-t-{name}-{}", std::process::id());
        let mut config = ClientConfig::new(socket)
            .with_namespace(namespace)
            .with_fifo_root(&fifo_root);
        if let Some(budget) = budget {
            config = config.with_retry_budget(budget);
        }
        let client = Client::connect(config)
            .await
            .expect("connect to test containerd");
        let bots = Bots::new(client.clone(), bot_config);
        TestEnv {
            tmp,
            rootfs,
            fifo_root,
            data_root,
            client,
            bots,
        }
    }

    pub fn spec(&self, bot: &str) -> mcpod_containerd::BotSpec {
        mcpod_containerd::BotSpec::new(&self.rootfs).with_data_dir(self.data_root.join(bot))
    }

    /// Deletes every container (and task) left in the namespace; fails the
    /// test when that does not work. (Drop does the same, quietly, for tests
    /// that panicked before getting here.)
    pub async fn cleanup(&self) {
        purge_namespace(&self.client).await.expect("cleanup");
    }

    /// Entries left under the FIFO root.
    pub fn fifo_leftovers(&self) -> Vec<PathBuf> {
        match std::fs::read_dir(&self.fifo_root) {
            Ok(rd) => rd.filter_map(|e| e.ok().map(|e| e.path())).collect(),
            Err(_) => Vec::new(),
        }
    }
}

impl Drop for TestEnv {
    fn drop(&mut self) {
        // Runs on its own thread and runtime: Drop may run inside (or while
        // unwinding out of) the test's runtime, where blocking is not allowed.
        let config = self.client.config().clone();
        let done = std::thread::spawn(move || {
            let rt = tokio::runtime::Builder::new_current_thread()
                .enable_all()
                .build()
                .map_err(|e| e.to_string())?;
            rt.block_on(async move {
                let client = Client::connect(config).await.map_err(|e| e.to_string())?;
                purge_namespace(&client).await
            })
        })
        .join();
        match done {
            Ok(Ok(())) => {}
            Ok(Err(e)) => eprintln!("test cleanup failed: {e}"),
            Err(_) => eprintln!("test cleanup panicked"),
        }
    }
}

async fn purge_namespace(client: &Client) -> Result<(), String> {
    let containers = client
        .list_containers(&[])
        .await
        .map_err(|e| e.to_string())?;
    for c in containers {
        client
            .stop_task(&c.id, Duration::from_millis(200))
            .await
            .map_err(|e| format!("stopping {}: {e}", c.id))?;
        raw_delete_container(client, &c.id).await?;
        if !c.snapshot_key.is_empty() {
            raw_remove_snapshot(client, &c.snapshotter, &c.snapshot_key).await?;
        }
    }
    Ok(())
}

async fn raw_remove_snapshot(client: &Client, snapshotter: &str, key: &str) -> Result<(), String> {
    use containerd_client::services::v1::snapshots::RemoveSnapshotRequest;
    use containerd_client::services::v1::snapshots::snapshots_client::SnapshotsClient;
    let channel = containerd_client::connect(client.config().socket.clone())
        .await
        .map_err(|e| e.to_string())?;
    let mut c = SnapshotsClient::new(channel);
    let mut req = tonic::Request::new(RemoveSnapshotRequest {
        snapshotter: snapshotter.to_owned(),
        key: key.to_owned(),
    });
    req.metadata_mut().insert(
        "containerd-namespace",
        client
            .namespace()
            .parse()
            .map_err(|_| "namespace metadata")?,
    );
    match c.remove(req).await {
        Ok(_) => Ok(()),
        Err(s) if s.code() == tonic::Code::NotFound => Ok(()),
        Err(s) => Err(format!("removing snapshot {key}: {s}")),
    }
}

/// A rootfs with busybox-static and applet symlinks.
pub fn build_rootfs(rootfs: &Path) {
    testing::busybox_rootfs(
        rootfs,
        &[
            "sh", "cat", "sleep", "echo", "head", "tr", "dd", "yes", "true", "ls", "kill", "ps",
        ],
    )
    .expect("build rootfs");
}

async fn raw_delete_container(client: &Client, id: &str) -> Result<(), String> {
    testing::raw_delete_container(client, id).await
}

/// Creates a container record with arbitrary labels (no spec checks needed).
pub async fn raw_create_container(
    client: &Client,
    id: &str,
    labels: &[(&str, &str)],
    spec_from: Option<&str>,
) {
    testing::raw_create_container(client, id, labels, spec_from)
        .await
        .expect("raw create container");
}

pub use testing::eventually;

/// The PIDs of the task's init once it has settled: the default init is `sh`
/// plus the `sleep` it starts right away.
pub async fn pid_set(client: &Client, container_id: &str) -> Vec<u32> {
    let start = Instant::now();
    loop {
        let pids = current_pids(client, container_id).await;
        if pids.len() >= 2 || start.elapsed() > Duration::from_secs(5) {
            return pids;
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

async fn current_pids(client: &Client, container_id: &str) -> Vec<u32> {
    let mut pids: Vec<u32> = client
        .list_pids(container_id)
        .await
        .expect("list pids")
        .into_iter()
        .map(|p| p.pid)
        .collect();
    pids.sort_unstable();
    pids
}

/// Whether the task runs exactly `baseline` and no exec'd process.
pub async fn only_baseline(client: &Client, container_id: &str, baseline: &[u32]) -> bool {
    let procs = client.list_pids(container_id).await.expect("list pids");
    procs.iter().all(|p| p.exec_id.is_none())
        && current_pids(client, container_id).await == baseline
}

/// A containerd of the test's own (`containerd-env.sh start` on a fresh
/// directory), so that restarting or stopping it disturbs no other test.
/// Dropping it runs `containerd-env.sh stop` (tasks killed, daemon stopped,
/// directory removed).
pub struct OwnDaemon {
    dir: tempfile::TempDir,
}

impl OwnDaemon {
    /// Starts one. Fails the test without the test environment.
    pub fn start() -> OwnDaemon {
        socket(); // fail loudly without the test environment
        let dir = tempfile::Builder::new()
            .prefix("mcpod-ctd-own-")
            .tempdir()
            .expect("tempdir");
        run_script("start", dir.path());
        OwnDaemon { dir }
    }

    pub fn socket(&self) -> PathBuf {
        self.dir.path().join("containerd.sock")
    }

    pub fn dir(&self) -> &Path {
        self.dir.path()
    }

    /// `containerd-env.sh restart`: the daemon stopped and started again;
    /// returns how long it took.
    pub async fn restart(&self) -> Duration {
        self.script_async("restart").await
    }

    /// The daemon stopped (tasks and shims live on).
    pub async fn down(&self) {
        self.script_async("down").await;
    }

    /// The daemon started again after [`down`](Self::down).
    pub async fn up(&self) {
        self.script_async("start").await;
    }

    async fn script_async(&self, action: &'static str) -> Duration {
        let dir = self.dir.path().to_owned();
        let t = Instant::now();
        tokio::task::spawn_blocking(move || run_script(action, &dir))
            .await
            .expect("containerd-env.sh task");
        t.elapsed()
    }
}

impl Drop for OwnDaemon {
    fn drop(&mut self) {
        let _ = std::process::Command::new("bash")
            .arg(script())
            .arg("stop")
            .arg(self.dir.path())
            .output();
    }
}

fn run_script(action: &str, dir: &Path) {
    let out = std::process::Command::new("bash")
        .arg(script())
        .arg(action)
        .arg(dir)
        .output()
        .expect("run containerd-env.sh");
    assert!(
        out.status.success(),
        "containerd-env.sh {action} failed: {}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
}

//! Set-up of the gateway tests against a real containerd: a private
//! namespace, FIFO root and rootfs (with the static demo server at
//! `/app/mcp`) per test, bot containers, and leak checks.
//!
//! Missing `MCPOD_TEST_CONTAINERD_SOCKET` or `MCPOD_TEST_DEMO_STATIC` fails
//! the test with instructions: these tests never skip silently.

#![allow(
    dead_code,
    unused_imports,
    unreachable_pub,
    missing_docs,
    clippy::unwrap_used
)]

use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use mcpod_containerd::{BotConfig, BotSpec, Bots, Client, ClientConfig, testing};

pub const SOCKET_VAR: &str = "MCPOD_TEST_CONTAINERD_SOCKET";
pub const DEMO_VAR: &str = "MCPOD_TEST_DEMO_STATIC";

fn howto() -> &'static str {
    "Run them through scripts/test.sh, or by hand (as root):\n\
     \n    scripts/containerd-env.sh start /tmp/ctd\n    \
     RUSTFLAGS='-C target-feature=+crt-static' cargo build --release -p mcpod-demo --target x86_64-unknown-linux-gnu\n    \
     MCPOD_TEST_CONTAINERD_SOCKET=/tmp/ctd/containerd.sock MCPOD_TEST_CONTAINERD_DIR=/tmp/ctd \\\n    \
     MCPOD_TEST_DEMO_STATIC=$PWD/target/x86_64-unknown-linux-gnu/release/mcpod-demo \\\n        \
     cargo test -p mcpod-server --features containerd-tests\n"
}

/// The private containerd's socket. Fails the test when unset.
pub fn socket() -> PathBuf {
    match std::env::var_os(SOCKET_VAR) {
        Some(s) if !s.is_empty() => PathBuf::from(s),
        _ => panic!(
            "\n\n*** {SOCKET_VAR} is not set: these tests need a real containerd. ***\n{}\n",
            howto()
        ),
    }
}

/// The statically linked demo server. Fails the test when unset or missing.
pub fn demo_static() -> PathBuf {
    match std::env::var_os(DEMO_VAR) {
        Some(s) if !s.is_empty() && Path::new(&s).is_file() => PathBuf::from(s),
        Some(s) if !s.is_empty() => panic!(
            "\n\n*** {DEMO_VAR}={} does not exist: build the static demo server first. ***\n{}\n",
            Path::new(&s).display(),
            howto()
        ),
        _ => panic!(
            "\n\n*** {DEMO_VAR} is not set: the bot rootfs needs a statically linked mcpod-demo at /app/mcp. ***\n{}\n",
            howto()
        ),
    }
}

pub fn script() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../scripts/containerd-env.sh")
}

/// A rootfs with busybox (for the init process) and the demo at `/app/mcp`.
pub fn build_rootfs(rootfs: &Path) {
    testing::busybox_rootfs(rootfs, &["sh", "sleep", "cat", "kill"]).unwrap();
    std::fs::create_dir_all(rootfs.join("app")).unwrap();
    let mcp = rootfs.join("app/mcp");
    std::fs::copy(demo_static(), &mcp).unwrap();
    std::fs::set_permissions(&mcp, std::fs::Permissions::from_mode(0o755)).unwrap();
}

/// One test's world.
pub struct Env {
    pub tmp: tempfile::TempDir,
    pub socket: PathBuf,
    pub namespace: String,
    pub rootfs: PathBuf,
    pub fifo_root: PathBuf,
    pub client: Client,
    pub bots: Bots,
}

impl Env {
    /// A fresh namespace on the shared test daemon.
    pub async fn new(name: &str) -> Env {
        Self::on(name, socket()).await
    }

    /// A fresh namespace on the daemon at `socket`.
    pub async fn on(name: &str, socket: PathBuf) -> Env {
        demo_static();
        let tmp = tempfile::Builder::new()
            .prefix("mcpod-srv-ctd-")
            .tempdir()
            .unwrap();
        let rootfs = tmp.path().join("rootfs");
        build_rootfs(&rootfs);
        let fifo_root = tmp.path().join("fifo");
        let namespace = format!("mcpod-s-{name}-{}", std::process::id());
        let client = Client::connect(
            ClientConfig::new(&socket)
                .with_namespace(&namespace)
                .with_fifo_root(&fifo_root),
        )
        .await
        .unwrap_or_else(|e| {
            panic!(
                "cannot connect to the test containerd at {}: {e}",
                socket.display()
            )
        });
        let bots = Bots::new(client.clone(), BotConfig::default());
        Env {
            tmp,
            socket,
            namespace,
            rootfs,
            fifo_root,
            client,
            bots,
        }
    }

    /// The `[containerd]` section for this world, plus `extra` lines.
    pub fn section(&self, extra: &str) -> String {
        format!(
            "[containerd]\nsocket = \"{}\"\nnamespace = \"{}\"\nfifo_root = \"{}\"\n{extra}\n",
            self.socket.display(),
            self.namespace,
            self.fifo_root.display()
        )
    }

    pub fn spec(&self, bot: &str) -> BotSpec {
        BotSpec::new(&self.rootfs).with_data_dir(self.tmp.path().join("data").join(bot))
    }

    /// Creates `mcp-{bot}` (labelled) and starts its task, and waits until
    /// its init has settled (the default init is `sh` plus the `sleep` it
    /// starts), so that [`pids`](Self::pids) gives a stable baseline.
    pub async fn bot(&self, bot: &str) {
        self.bots
            .create_and_start(bot, &self.spec(bot))
            .await
            .unwrap_or_else(|e| panic!("creating bot {bot}: {e}"));
        let settled = eventually(Duration::from_secs(5), || async {
            self.pids(bot).await >= 2
        })
        .await;
        assert!(settled, "the init of bot {bot} did not settle");
    }

    /// Exec'd processes (not the init process) in the bot's container.
    pub async fn execs(&self, bot: &str) -> Vec<String> {
        self.client
            .list_pids(&format!("mcp-{bot}"))
            .await
            .unwrap()
            .into_iter()
            .filter_map(|p| p.exec_id)
            .collect()
    }

    /// Every process of the bot's task (init included).
    pub async fn pids(&self, bot: &str) -> usize {
        self.client
            .list_pids(&format!("mcp-{bot}"))
            .await
            .unwrap()
            .len()
    }

    /// The FIFO directories of exec'd processes (entries under the FIFO root).
    pub fn fifo_leftovers(&self) -> Vec<PathBuf> {
        match std::fs::read_dir(&self.fifo_root) {
            Ok(rd) => rd.filter_map(|e| e.ok().map(|e| e.path())).collect(),
            Err(_) => Vec::new(),
        }
    }

    /// Stops every task and deletes every container of the namespace.
    pub async fn cleanup(&self) {
        for c in self.client.list_containers(&[]).await.unwrap() {
            let _ = self
                .client
                .stop_task(&c.id, Duration::from_millis(200))
                .await;
            raw_delete_container(&self.client, &c.id).await;
        }
        self.delete_namespace().await;
    }

    /// Deletes the (empty) namespace; best effort.
    async fn delete_namespace(&self) {
        use containerd_client::services::v1::DeleteNamespaceRequest;
        use containerd_client::services::v1::namespaces_client::NamespacesClient;
        let Ok(channel) = containerd_client::connect(self.socket.clone()).await else {
            return;
        };
        let req = tonic::Request::new(DeleteNamespaceRequest {
            name: self.namespace.clone(),
        });
        if let Err(s) = NamespacesClient::new(channel).delete(req).await {
            eprintln!("deleting namespace {}: {s}", self.namespace);
        }
    }
}

impl Drop for Env {
    /// A test that failed before its `cleanup` must not leave tasks running
    /// on a root file system about to be removed: stop them here (on a
    /// thread and runtime of its own, as Drop may run inside the test's).
    fn drop(&mut self) {
        let config = self.client.config().clone();
        let done = std::thread::spawn(move || {
            let rt = tokio::runtime::Builder::new_current_thread()
                .enable_all()
                .build()
                .map_err(|e| e.to_string())?;
            rt.block_on(async move {
                let client = Client::connect(config).await.map_err(|e| e.to_string())?;
                for c in client
                    .list_containers(&[])
                    .await
                    .map_err(|e| e.to_string())?
                {
                    let _ = client.stop_task(&c.id, Duration::from_millis(200)).await;
                    testing::raw_delete_container(&client, &c.id).await?;
                }
                Ok::<(), String>(())
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

pub async fn raw_delete_container(client: &Client, id: &str) {
    testing::raw_delete_container(client, id).await.unwrap();
}

/// Creates a container record with `labels` and the spec of `spec_from`.
pub async fn raw_create_container(
    client: &Client,
    id: &str,
    labels: &[(&str, &str)],
    spec_from: &str,
) {
    testing::raw_create_container(client, id, labels, Some(spec_from))
        .await
        .unwrap();
}

pub use testing::eventually;

/// A containerd of the test's own (`containerd-env.sh start` on a fresh
/// directory), so that restarting or stopping it disturbs no other test.
/// Dropping it runs `containerd-env.sh stop`.
pub struct OwnDaemon {
    pub dir: tempfile::TempDir,
}

impl OwnDaemon {
    pub fn start() -> OwnDaemon {
        socket(); // fail loudly without the test environment
        let dir = tempfile::Builder::new()
            .prefix("mcpod-srv-ctd-daemon-")
            .tempdir()
            .unwrap();
        run_script("start", dir.path());
        OwnDaemon { dir }
    }

    pub fn socket(&self) -> PathBuf {
        self.dir.path().join("containerd.sock")
    }

    /// `containerd-env.sh restart`; returns how long it took.
    pub async fn restart(&self) -> Duration {
        self.script("restart").await
    }

    /// Stops the daemon (tasks and shims live on).
    pub async fn down(&self) {
        self.script("down").await;
    }

    /// Starts it again after [`down`](Self::down).
    pub async fn up(&self) {
        self.script("start").await;
    }

    async fn script(&self, action: &'static str) -> Duration {
        let dir = self.dir.path().to_owned();
        let t = Instant::now();
        tokio::task::spawn_blocking(move || run_script(action, &dir))
            .await
            .unwrap();
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
        .unwrap();
    assert!(
        out.status.success(),
        "containerd-env.sh {action} failed: {}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
}

/// `mcpod serve` as a child process — another gateway instance, possibly
/// in namespaces of its own (`wrapper`, e.g. `unshare --pid ...`). Killed
/// when dropped.
pub struct ServeProcess {
    child: std::process::Child,
    dir: tempfile::TempDir,
    pub base: String,
}

impl ServeProcess {
    /// Starts `wrapper… mcpod serve` with `toml` (auth disabled, a free
    /// loopback port) and waits until it answers `/healthz`.
    pub async fn start(wrapper: &[&str], toml: &str) -> ServeProcess {
        let dir = tempfile::Builder::new()
            .prefix("mcpod-srv-serve-")
            .tempdir()
            .unwrap();
        let port = std::net::TcpListener::bind("127.0.0.1:0")
            .unwrap()
            .local_addr()
            .unwrap()
            .port();
        let config = dir.path().join("mcpod.toml");
        std::fs::write(
            &config,
            format!("listen = \"127.0.0.1:{port}\"\n{toml}\n[auth]\ndisabled = true\n"),
        )
        .unwrap();
        let log = std::fs::File::create(dir.path().join("log")).unwrap();
        let (program, pre) = match wrapper.split_first() {
            Some((p, rest)) => (*p, rest.to_vec()),
            None => (crate::common::DEMO, Vec::new()),
        };
        let mut cmd = std::process::Command::new(program);
        cmd.args(pre);
        if !wrapper.is_empty() {
            cmd.arg(crate::common::DEMO);
        }
        let child = cmd
            .arg("serve")
            .arg("--config")
            .arg(&config)
            .env("RUST_LOG", "info,mcpod_server::targets::containerd=debug")
            .env_remove("MCPOD_CONFIG")
            .stdin(std::process::Stdio::null())
            .stdout(std::process::Stdio::null())
            .stderr(log)
            .spawn()
            .unwrap();
        let mut p = ServeProcess {
            child,
            dir,
            base: format!("http://127.0.0.1:{port}"),
        };
        let http = reqwest::Client::new();
        let started = Instant::now();
        loop {
            if let Ok(Some(status)) = p.child.try_wait() {
                panic!("mcpod serve exited ({status}): {}", p.log());
            }
            if let Ok(r) = http.get(format!("{}/healthz", p.base)).send().await {
                if r.status().is_success() {
                    return p;
                }
            }
            assert!(
                started.elapsed() < Duration::from_secs(30),
                "mcpod serve did not answer /healthz in 30 s: {}",
                p.log()
            );
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    }

    /// POSTs a JSON-RPC message and returns the JSON answer (or `null`).
    pub async fn post_json(&self, path: &str, body: &serde_json::Value) -> serde_json::Value {
        let r = reqwest::Client::new()
            .post(format!("{}{path}", self.base))
            .header("content-type", "application/json")
            .header("accept", "application/json, text/event-stream")
            .body(body.to_string())
            .timeout(Duration::from_secs(30))
            .send()
            .await
            .unwrap();
        r.json().await.unwrap_or(serde_json::Value::Null)
    }

    /// Its stderr so far.
    pub fn log(&self) -> String {
        std::fs::read_to_string(self.dir.path().join("log")).unwrap_or_default()
    }

    /// SIGKILL: it dies without cleaning anything up.
    pub fn kill(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

impl Drop for ServeProcess {
    fn drop(&mut self) {
        self.kill();
    }
}

/// The value of a `/metrics` line `name{target="target"}`.
pub async fn metric(base: &str, name: &str, target: &str) -> Option<f64> {
    let text = reqwest::get(format!("{base}/metrics"))
        .await
        .ok()?
        .text()
        .await
        .ok()?;
    let prefix = format!("{name}{{target=\"{target}\"}} ");
    text.lines()
        .find_map(|l| l.strip_prefix(&prefix))
        .and_then(|v| v.trim().parse().ok())
}

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

    /// Creates `mcp-{bot}` (labelled) and starts its task.
    pub async fn bot(&self, bot: &str) {
        self.bots
            .create_and_start(bot, &self.spec(bot))
            .await
            .unwrap_or_else(|e| panic!("creating bot {bot}: {e}"));
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

    /// Entries left under the FIFO root.
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

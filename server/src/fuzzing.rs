//! An entry point for fuzzing the HTTP side of the gateway (feature
//! `fuzzing`): bytes in as one client connection — HTTP/1.1 parsing,
//! routing, guards, era detection, header and body checks — and the bytes
//! the gateway wrote back out. Its one target's backend cannot start, so
//! every call ends at once with an error instead of reaching a process.

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use axum::Router;
use hyper_util::rt::{TokioIo, TokioTimer};
use hyper_util::service::TowerToHyperService;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::runtime::Runtime;

use crate::config::RawConfig;
use crate::routes::{self, App};

/// The most time one connection is given.
const CONNECTION_DEADLINE: Duration = Duration::from_secs(2);

const CONFIG: &str = r#"
listen = "127.0.0.1:9"
[auth]
disabled = true
[limits]
body_read_timeout = "100ms"
header_read_timeout = "100ms"
[targets.demo]
command = "/nonexistent/mcpod-fuzz-backend"
call_timeout = "100ms"
"#;

/// A gateway's routes on a runtime of their own, fed one connection at a
/// time.
#[derive(Debug)]
pub struct Harness {
    runtime: Runtime,
    router: Router,
    _app: Arc<App>,
}

impl Harness {
    /// The routes of a loopback gateway with auth off and one target.
    pub fn new() -> Result<Harness, String> {
        let runtime = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .map_err(|e| e.to_string())?;
        let config = RawConfig::from_toml(CONFIG)?
            .validate()
            .map_err(|e| e.to_string())?;
        let addr: SocketAddr = config.listen;
        let app = runtime
            .block_on(async { App::new(config, addr) })
            .map_err(|e| e.to_string())?;
        let router = runtime.block_on(async { routes::router(app.clone()) });
        Ok(Harness {
            runtime,
            router,
            _app: app,
        })
    }

    /// Serves `bytes` as one HTTP/1.1 connection that then half-closes;
    /// what the gateway wrote back before closing it.
    pub fn connection(&self, bytes: &[u8]) -> Vec<u8> {
        let router = self.router.clone();
        self.runtime.block_on(async move {
            let (client, server) = tokio::io::duplex(1 << 16);
            let served = tokio::spawn(async move {
                let _ = hyper::server::conn::http1::Builder::new()
                    .timer(TokioTimer::new())
                    .header_read_timeout(CONNECTION_DEADLINE / 4)
                    .half_close(true)
                    .serve_connection(TokioIo::new(server), TowerToHyperService::new(router))
                    .await;
            });
            let (mut read, mut write) = tokio::io::split(client);
            let mut out = Vec::new();
            let _ = tokio::time::timeout(CONNECTION_DEADLINE, async {
                let send = async {
                    let _ = write.write_all(bytes).await;
                    let _ = write.shutdown().await;
                };
                let receive = async {
                    let _ = read.read_to_end(&mut out).await;
                };
                tokio::join!(send, receive);
            })
            .await;
            served.abort();
            out
        })
    }
}

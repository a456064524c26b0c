//! # mcpod-server
//!
//! The mcpod gateway: runs stdio MCP servers (as child processes) and
//! serves them to MCP clients of both eras over Streamable HTTP on
//! `/mcp/{target}`, plus the Memoh-compatible `/bots/…` routes, with
//! bearer auth, Origin/Host checks, limits, health and Prometheus metrics.
//!
//! ```no_run
//! # async fn run() -> Result<(), Box<dyn std::error::Error>> {
//! use mcpod_server::config::RawConfig;
//! let config = RawConfig::embedded_default(&std::env::current_exe()?).validate()?;
//! let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await?;
//! let server = mcpod_server::spawn(config, listener)?;
//! println!("listening on http://{}/mcp/demo", server.addr());
//! server.shutdown().await;
//! # Ok(())
//! # }
//! ```
//!
//! The protocol work (id rewriting, correlation, cancellation, era
//! detection) is `mcpod-core`'s, driven by `mcpod-tokio`; this crate is the
//! HTTP front end and its policies.

#![forbid(unsafe_code)]
#![warn(missing_docs)]

pub mod auth;
pub mod cli;
pub mod config;
pub mod containerd;
pub mod http;
pub mod logging;
pub mod memoh;
pub mod metrics;
pub mod origin;
pub mod sessions;
pub mod shutdown;
pub mod targets;

use std::future::Future;
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::{Duration, Instant};

use tokio::net::TcpListener;
use tokio::task::JoinHandle;
use tokio_util::sync::CancellationToken;
use tracing::{info, warn};

use crate::config::Config;
use crate::http::App;
use crate::origin::HostGuard;
use crate::targets::Registry;

/// Serves `config` on `listener` until `stop` resolves, then shuts down
/// gracefully: stops accepting, ends long-lived streams, lets in-flight
/// calls finish for up to `limits.shutdown_grace`, then closes every
/// backend properly.
pub async fn serve(
    config: Config,
    listener: TcpListener,
    stop: impl Future<Output = ()> + Send + 'static,
) -> std::io::Result<()> {
    let addr = listener.local_addr()?;
    let app = build_app(config, addr)?;
    run(app, listener, stop).await
}

fn build_app(config: Config, addr: SocketAddr) -> std::io::Result<Arc<App>> {
    // The config was checked against `listen`; the listener actually given
    // may differ (tests, embedding).
    if config.auth.disabled && !addr.ip().is_loopback() {
        return Err(std::io::Error::new(
            std::io::ErrorKind::InvalidInput,
            format!("auth.disabled: auth may only be disabled on a loopback listener, not {addr}"),
        ));
    }
    let guard = HostGuard::new(
        &config.allowed_origins,
        &config.allowed_hosts,
        addr.ip().is_loopback(),
    );
    Ok(Arc::new(App {
        targets: Registry::new(&config.targets, &config.limits),
        metrics: Default::default(),
        guard,
        shutdown: CancellationToken::new(),
        stdio: Default::default(),
        bot_containers: config
            .containerd
            .as_ref()
            .filter(|c| c.serve_bots)
            .map(|c| crate::containerd::BotContainers::new(c.clone(), config.limits.clone())),
        started: Instant::now(),
        config,
    }))
}

async fn run(
    app: Arc<App>,
    listener: TcpListener,
    stop: impl Future<Output = ()> + Send + 'static,
) -> std::io::Result<()> {
    let addr = listener.local_addr()?;
    // Start shared backends now, so the first client does not wait and
    // /readyz tells the truth.
    for target in app.targets.all() {
        if !target.per_session() {
            let upstream = target.shared_upstream();
            let name = target.name().to_owned();
            tokio::spawn(async move {
                match upstream.ready().await {
                    Ok(info) => {
                        info!(target = %name, era = ?info.era, version = %info.protocol_version, "backend ready")
                    }
                    Err(e) => warn!(target = %name, error = %e, "backend not ready"),
                }
            });
        }
    }
    let sweeper = tokio::spawn(sweep(app.clone()));
    info!(%addr, targets = ?app.config.targets.keys().collect::<Vec<_>>(), "mcpod listening");

    let token = app.shutdown.clone();
    tokio::spawn({
        let token = token.clone();
        async move {
            stop.await;
            token.cancel();
        }
    });
    let router = http::router(app.clone());
    let server =
        axum::serve(listener, router).with_graceful_shutdown(token.clone().cancelled_owned());
    let grace = app.config.limits.shutdown_grace;
    let outcome = tokio::select! {
        r = server.into_future() => r,
        _ = async { token.cancelled().await; tokio::time::sleep(grace).await } => {
            warn!(grace_ms = grace.as_millis() as u64, "grace period over; dropping calls still in flight");
            Ok(())
        }
    };
    sweeper.abort();
    for target in app.targets.all() {
        target.close().await;
    }
    app.stdio.close_all().await;
    if let Some(bots) = &app.bot_containers {
        bots.close_all().await;
    }
    info!("mcpod stopped");
    outcome
}

/// Expires idle sessions and stdio connections.
async fn sweep(app: Arc<App>) {
    let timeout = app.config.limits.session_idle_timeout;
    let period = (timeout / 4).clamp(Duration::from_millis(100), Duration::from_secs(30));
    let mut tick = tokio::time::interval(period);
    loop {
        tick.tick().await;
        for target in app.targets.all() {
            for session in target.sessions.take_idle(timeout) {
                info!(target = %target.name(), session = %session.id, "idle session expired");
                if session.owns_upstream {
                    target.note_closed_upstream(&session.upstream);
                }
                session.close().await;
            }
        }
        app.stdio.expire(timeout).await;
    }
}

/// A gateway running in the background (for tests and embedding).
#[derive(Debug)]
pub struct Server {
    addr: SocketAddr,
    stop: CancellationToken,
    task: JoinHandle<std::io::Result<()>>,
}

impl Server {
    /// The address it listens on.
    pub fn addr(&self) -> SocketAddr {
        self.addr
    }

    /// Shuts it down gracefully and waits until it has stopped.
    pub async fn shutdown(self) {
        self.stop.cancel();
        let _ = self.task.await;
    }
}

/// Starts [`serve`] on a task; stop it with [`Server::shutdown`].
pub fn spawn(config: Config, listener: TcpListener) -> std::io::Result<Server> {
    let addr = listener.local_addr()?;
    let stop = CancellationToken::new();
    let app = build_app(config, addr)?;
    let task = tokio::spawn(run(app, listener, stop.clone().cancelled_owned()));
    Ok(Server { addr, stop, task })
}

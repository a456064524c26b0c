//! The gateway's life: the routes on a listener, shared backends started
//! up front, idle sessions swept, and a graceful shutdown that lets calls
//! in flight finish within the grace and then closes every backend.

use std::future::Future;
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use tokio::net::TcpListener;
use tokio::task::JoinHandle;
use tokio_util::sync::CancellationToken;
use tokio_util::task::TaskTracker;
use tracing::{info, warn};

use super::connection::Timeouts;
use super::listener::{self, Accept};
use super::nofile;
use crate::config::Config;
use crate::routes::{self, App};

/// Serves `config` on `listener` until `stop` resolves, then shuts down
/// gracefully: `/readyz` answers 503 while requests are still served for
/// `limits.shutdown_drain` (a balancer's health checks notice), then it
/// stops accepting, ends long-lived streams, lets in-flight calls finish
/// for up to `limits.shutdown_grace`, and closes every backend properly.
pub async fn serve(
    config: Config,
    listener: TcpListener,
    stop: impl Future<Output = ()> + Send + 'static,
) -> std::io::Result<()> {
    let addr = listener.local_addr()?;
    let app = App::new(config, addr)?;
    run(app, listener, stop).await
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
            tokio::spawn(start_until_ready(
                target.shared_upstream(),
                target.name().to_owned(),
                app.ctx.shutdown.clone(),
            ));
        }
    }
    let sweeper = tokio::spawn(sweep(app.clone()));
    let limits = &app.config.limits;
    let nofile = nofile::raise();
    let max_connections = limits
        .max_connections
        .unwrap_or_else(|| nofile::default_max_connections(nofile));
    app.ctx.metrics.connections.set_limit(max_connections);
    // Sealed: session ids any replica with the key serves; local: random
    // ids, this process only.
    let sessions = if app.config.sessions.sealed() {
        "sealed"
    } else {
        "local"
    };
    info!(%addr, targets = ?app.config.targets.keys().collect::<Vec<_>>(), max_connections, open_files = nofile, sessions, "mcpod listening");

    let token = app.ctx.shutdown.clone();
    tokio::spawn({
        let token = token.clone();
        let draining = app.ctx.draining.clone();
        let drain = limits.shutdown_drain;
        async move {
            stop.await;
            // Not ready from now on, still serving: a balancer's health
            // checks see it and stop sending here before the listener
            // closes.
            draining.cancel();
            if !drain.is_zero() {
                info!(
                    drain_ms = drain.as_millis() as u64,
                    "draining: /readyz answers 503, requests are still served"
                );
                tokio::time::sleep(drain).await;
            }
            token.cancel();
        }
    });
    let tasks = TaskTracker::new();
    let accept = Accept {
        listener,
        router: routes::router(app.clone()),
        max_connections,
        timeouts: Timeouts {
            header: limits.header_read_timeout,
            idle: limits.idle_timeout,
        },
        http2: app.config.http2,
        metrics: app.ctx.metrics.clone(),
        tasks: tasks.clone(),
    };
    listener::accept(accept, token.clone()).await;
    // Stopping: no new connections; those open finish what is in flight.
    tasks.close();
    let grace = app.config.limits.shutdown_grace;
    let calls = app.ctx.calls.clone();
    let drained = async move {
        tasks.wait().await;
        // Calls whose connection is gone, running on to be resumed.
        calls.close();
        calls.wait().await;
    };
    if tokio::time::timeout(grace, drained).await.is_err() {
        warn!(
            grace_ms = grace.as_millis() as u64,
            "grace period over; dropping calls still in flight"
        );
    }
    sweeper.abort();
    for store in app.sessions.all() {
        for session in store.drain() {
            session.close().await;
        }
    }
    for target in app.targets.all() {
        target.close().await;
    }
    app.stdio.close_all().await;
    if let Some(bots) = &app.bot_containers {
        bots.close_all().await;
    }
    info!("mcpod stopped");
    Ok(())
}

/// How long the gateway waits before it tries again to start a shared
/// backend that has never become ready.
const NOT_READY_RETRY: Duration = Duration::from_secs(10);

/// Starts a shared backend, and tries again (after [`NOT_READY_RETRY`], or
/// the restart backoff if longer) until it has been ready once. `/readyz`
/// never starts a backend, so without this a gateway whose backend failed
/// at its start would stay unready until some client called.
async fn start_until_ready(upstream: mcpod_tokio::Upstream, name: String, stop: CancellationToken) {
    loop {
        match upstream.ready().await {
            Ok(info) => {
                info!(target = %name, era = ?info.era, version = %info.protocol_version, "backend ready");
                return;
            }
            Err(e) => warn!(target = %name, error = %e, "backend not ready"),
        }
        let status = upstream.status();
        let wait = status.retry_after.unwrap_or_default().max(NOT_READY_RETRY);
        tokio::select! {
            () = tokio::time::sleep(wait) => {}
            () = stop.cancelled() => return,
        }
        // A call may have started it meanwhile.
        if upstream.status().closed || upstream.backend_info().is_some() {
            return;
        }
    }
}

/// Expires idle sessions and stdio connections.
async fn sweep(app: Arc<App>) {
    let timeout = app.config.limits.session_idle_timeout;
    let period = (timeout / 4).clamp(Duration::from_millis(100), Duration::from_secs(30));
    let mut tick = tokio::time::interval(period);
    loop {
        tick.tick().await;
        for store in app.sessions.all() {
            for session in store.take_idle(timeout) {
                info!(session = %session.id, "idle session expired");
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
    let app = App::new(config, addr)?;
    let task = tokio::spawn(run(app, listener, stop.clone().cancelled_owned()));
    Ok(Server { addr, stop, task })
}

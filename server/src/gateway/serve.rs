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

use arc_swap::ArcSwap;

use super::backends::{check_aggregates, start_shared};
use super::connection::{Routes, Timeouts};
use super::listener::{self, Accept};
use super::nofile;
use super::reload::{self, Current, Reloader};
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
    serve_reloading(config, listener, stop, None).await
}

/// [`serve`], reloading the config when `reloader` asks.
pub(crate) async fn serve_reloading(
    config: Config,
    listener: TcpListener,
    stop: impl Future<Output = ()> + Send + 'static,
    reloader: Option<Reloader>,
) -> std::io::Result<()> {
    let addr = listener.local_addr()?;
    let app = App::new(config, addr)?;
    run(app, listener, stop, reloader).await
}

async fn run(
    app: Arc<App>,
    listener: TcpListener,
    stop: impl Future<Output = ()> + Send + 'static,
    reloader: Option<Reloader>,
) -> std::io::Result<()> {
    let addr = listener.local_addr()?;
    // Start shared backends now, so the first client does not wait and
    // /readyz tells the truth.
    for target in app.targets.all() {
        start_shared(target, &app.ctx.shutdown);
    }
    check_aggregates(&app);
    let current: Current = Arc::new(ArcSwap::new(app.clone()));
    let routes: Routes = Arc::new(ArcSwap::from_pointee(routes::router(app.clone())));
    let sweeper = tokio::spawn(sweep(current.clone()));
    // Targets a reload retired, draining; ended at once past the grace of
    // a shutdown.
    let drains = TaskTracker::new();
    let drop_now = CancellationToken::new();
    let reloading = reloader.map(|reloader| {
        tokio::spawn(reload::serve(reload::Reloading {
            reloader,
            current: current.clone(),
            routes: routes.clone(),
            drains: drains.clone(),
            drop_now: drop_now.clone(),
        }))
    });
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
        routes,
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
    if let Some(reloading) = reloading {
        reloading.abort();
    }
    // The config in force when stopping.
    let app = current.load_full();
    // Stopping: no new connections; those open finish what is in flight.
    tasks.close();
    drains.close();
    let grace = app.config.limits.shutdown_grace;
    let calls = app.ctx.calls.clone();
    let drained = {
        let drains = drains.clone();
        async move {
            tasks.wait().await;
            // Calls whose connection is gone, running on to be resumed.
            calls.close();
            calls.wait().await;
            drains.wait().await;
        }
    };
    if tokio::time::timeout(grace, drained).await.is_err() {
        warn!(
            grace_ms = grace.as_millis() as u64,
            "grace period over; dropping calls still in flight"
        );
    }
    // Retired targets still draining close now.
    drop_now.cancel();
    drains.wait().await;
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

/// Expires idle sessions and stdio connections (of the config in force
/// at each round).
async fn sweep(current: Current) {
    loop {
        let timeout = current.load().config.limits.session_idle_timeout;
        let period = (timeout / 4).clamp(Duration::from_millis(100), Duration::from_secs(30));
        tokio::time::sleep(period).await;
        let app = current.load_full();
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
    let task = tokio::spawn(run(app, listener, stop.clone().cancelled_owned(), None));
    Ok(Server { addr, stop, task })
}

//! Live reload: on each request of a [`Reloader`] (SIGHUP), the config is
//! read again and, if valid, put in force without a restart. Targets whose
//! backend settings did not change keep their backends, legacy sessions
//! and calls (under their new tokens and limits); tokens, origins, hosts,
//! limits and bots apply to the next request. A changed target drains: new calls go to its new backend, the
//! calls in flight on the old one finish (within `limits.shutdown_grace`),
//! then the old one closes, with its legacy sessions (their clients
//! initialize again, on the new one). A removed target answers 404 at once
//! and drains the same way. An invalid config is refused, naming the key
//! at fault, and the one in force stays.

use std::sync::Arc;

use arc_swap::ArcSwap;
use tokio::sync::mpsc;
use tokio_util::sync::CancellationToken;
use tokio_util::task::TaskTracker;
use tracing::{error, info, warn};

use super::backends::{check_aggregates, start_shared};
use super::connection::Routes;
use crate::config::{Config, ConfigError};
use crate::routes::{self, App, Retired};

/// The state of the config in force (read by the sweep and the shutdown;
/// requests read [`Routes`]).
pub(super) type Current = Arc<ArcSwap<App>>;

/// Reads the config again (the same file, environment and command line as
/// at start).
pub(crate) type LoadConfig = Arc<dyn Fn() -> Result<Config, ConfigError> + Send + Sync>;

/// When to reload, and how to read the config.
pub(crate) struct Reloader {
    /// Each message asks for one reload (requests made while one runs are
    /// folded into the next).
    pub(crate) requests: mpsc::Receiver<()>,
    /// Reads the config.
    pub(crate) load: LoadConfig,
}

impl std::fmt::Debug for Reloader {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Reloader").finish_non_exhaustive()
    }
}

/// What the reload task works on.
pub(super) struct Reloading {
    /// The requests and the loader.
    pub(super) reloader: Reloader,
    /// The state in force.
    pub(super) current: Current,
    /// The routes in force.
    pub(super) routes: Routes,
    /// Retired targets draining.
    pub(super) drains: TaskTracker,
    /// Cancelled when a shutdown's grace is over: drains end at once.
    pub(super) drop_now: CancellationToken,
}

/// Reloads on each request until the requests end.
pub(super) async fn serve(mut r: Reloading) {
    while r.reloader.requests.recv().await.is_some() {
        let old = r.current.load_full();
        // Files are read (the config, token files) off the runtime's workers.
        let load = r.reloader.load.clone();
        let loaded = tokio::task::spawn_blocking(move || load())
            .await
            .unwrap_or_else(|e| {
                Err(ConfigError::Invalid {
                    key: "config".into(),
                    message: format!("reading the config failed: {e}"),
                })
            });
        match loaded.and_then(|config| apply(&r, &old, config)) {
            Ok(()) => old.ctx.metrics.reloads.applied(),
            Err(e) => {
                old.ctx.metrics.reloads.refused();
                error!(error = %e, "config reload refused; the config in force stays");
            }
        }
    }
}

/// Puts `config` in force over `old`.
fn apply(r: &Reloading, old: &Arc<App>, config: Config) -> Result<(), ConfigError> {
    warn_needs_restart(&old.config, &config);
    let (app, retired) = old.reloaded(config).map_err(|e| ConfigError::Invalid {
        key: "auth.disabled".into(),
        message: e.to_string(),
    })?;
    let added: Vec<&str> = app
        .targets
        .all()
        .filter(|t| !app.targets.kept(&old.targets, t.name()))
        .map(|t| t.name())
        .collect();
    for target in app.targets.all() {
        if !app.targets.kept(&old.targets, target.name()) {
            start_shared(target, &app.ctx.shutdown);
        }
    }
    check_aggregates(&app);
    // Requests see the new config from here on.
    r.routes.store(Arc::new(routes::router(app.clone())));
    r.current.store(app.clone());
    let retired_names: Vec<&str> = retired.iter().map(|t| t.target.name()).collect();
    info!(
        started = ?added,
        retired = ?retired_names,
        "config reloaded"
    );
    let grace = app.config.limits.shutdown_grace;
    for retired in retired {
        r.drains.spawn(drain(retired, grace, r.drop_now.clone()));
    }
    Ok(())
}

/// Lets the calls in flight on a retired target finish (within `grace`,
/// or until `drop_now`), then closes its legacy sessions and backends.
async fn drain(retired: Retired, grace: std::time::Duration, drop_now: CancellationToken) {
    let Retired { target, sessions } = retired;
    let in_flight = target.calls_in_flight();
    info!(target = %target.name(), in_flight, "draining a retired target");
    tokio::select! {
        r = tokio::time::timeout(grace, target.drained()) => {
            if r.is_err() {
                warn!(
                    target = %target.name(),
                    grace_ms = grace.as_millis() as u64,
                    left = target.calls_in_flight(),
                    "grace over; dropping the retired target's calls still in flight"
                );
            }
        }
        () = drop_now.cancelled() => {}
    }
    if let Some(store) = sessions {
        for session in store.drain() {
            session.close().await;
        }
    }
    target.close().await;
    info!(target = %target.name(), "retired target closed");
}

/// Logs the settings a reload cannot change (they apply at the next
/// start).
fn warn_needs_restart(old: &Config, new: &Config) {
    let mut keys = Vec::new();
    if old.listen != new.listen {
        keys.push("listen");
    }
    if old.http2 != new.http2 {
        keys.push("http2");
    }
    if old.workers != new.workers {
        keys.push("workers");
    }
    if old.log.format != new.log.format || old.log.level != new.log.level {
        keys.push("log");
    }
    if old.telemetry != new.telemetry {
        keys.push("telemetry");
    }
    if old.sessions != new.sessions {
        // The seal keys live in the context every config shares.
        keys.push("sessions");
    }
    if old.containerd != new.containerd {
        keys.push("containerd");
    }
    let limits = (&old.limits, &new.limits);
    if limits.0.max_connections != limits.1.max_connections {
        keys.push("limits.max_connections");
    }
    if limits.0.header_read_timeout != limits.1.header_read_timeout {
        keys.push("limits.header_read_timeout");
    }
    if limits.0.idle_timeout != limits.1.idle_timeout {
        keys.push("limits.idle_timeout");
    }
    if !keys.is_empty() {
        warn!(
            keys = ?keys,
            "config reloaded without these changes: they take effect at the next start"
        );
    }
}

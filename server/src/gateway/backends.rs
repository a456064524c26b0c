//! Shared backends started by the gateway itself (at start, and for the
//! targets a reload adds or changes) rather than by a first call.

use std::time::Duration;

use tokio_util::sync::CancellationToken;
use tracing::{info, warn};

use crate::routes::App;
use crate::targets::Target;

/// Starts `target`'s shared backend (in the background, until it has been
/// ready once), unless its backends are per session.
pub(super) fn start_shared(target: &Target, stop: &CancellationToken) {
    if !target.per_session() {
        tokio::spawn(start_until_ready(
            target.shared_upstream(),
            target.name().to_owned(),
            stop.clone(),
        ));
    }
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

/// Checks each aggregate of `app` once its members are ready (in the
/// background): names that collide across members make it refuse.
pub(super) fn check_aggregates(app: &App) {
    for aggregate in app.aggregates.values() {
        tokio::spawn(crate::aggregate::check_names(
            aggregate.clone(),
            app.ctx.inputs.clone(),
            app.ctx.metrics.clone(),
        ));
    }
}

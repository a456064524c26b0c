//! `/healthz`, `/readyz`, `/metrics`.

use std::sync::Arc;

use axum::extract::State;
use axum::response::{IntoResponse, Response};
use http::{HeaderMap, HeaderValue, StatusCode, header};
use serde_json::json;

use super::app::App;
use super::redact::redact_credentials;
use crate::metrics::TargetGauges;

/// `GET /healthz`: the process is up (liveness: 200 as long as it
/// answers, draining or not; a balancer routes on `/readyz`).
pub(super) async fn healthz() -> Response {
    (
        [(
            header::CONTENT_TYPE,
            HeaderValue::from_static("application/json"),
        )],
        r#"{"status":"ok"}"#,
    )
        .into_response()
}

/// `GET /readyz`: 200 when every target is ready and the gateway is not
/// shutting down, else 503 — what a balancer's health check asks.
///
/// From SIGINT/SIGTERM on it answers 503 (`"draining": true`) while the
/// gateway still serves for `limits.shutdown_drain`, so the balancer
/// stops sending before the listener closes.
///
/// Readiness comes from what the gateway knows, and asking never starts a
/// backend, whoever asks: a shared target is ready once its backend has
/// completed a handshake and until the target is closed (a backend that
/// stopped since, idle or exited, counts as ready: the next call starts
/// it); one whose backend never got that far — still starting, or failing
/// to start — is not (the gateway keeps trying to start it, see
/// `gateway::serve`); a `per_session` target is always ready.
///
/// Anyone gets `{"ready": …}` alone. The detail — each target's state, its
/// counts, why its backend failed (credentials redacted), the bots'
/// counts — needs the global token when auth is on.
pub(super) async fn readyz(State(app): State<Arc<App>>, headers: HeaderMap) -> Response {
    let detailed = app.authorize(None, &headers, || None).await.is_ok();
    let draining = app.ctx.draining.is_cancelled();
    let mut all_ready = !draining;
    let mut report = serde_json::Map::new();
    for target in app.targets.all() {
        let sessions = app.sessions.count(target.name());
        if target.per_session() {
            report.insert(
                target.name().to_owned(),
                json!({ "ready": true, "sharing": "per_session", "sessions": sessions }),
            );
            continue;
        }
        let upstream = target.shared_upstream();
        let status = upstream.status();
        let was_ready = upstream.backend_info().is_some();
        let ready = was_ready && !status.closed;
        all_ready &= ready;
        if !detailed {
            continue;
        }
        report.insert(
            target.name().to_owned(),
            json!({
                "ready": ready,
                "sharing": "shared",
                "alive": status.alive,
                "idle": ready && !status.alive,
                "era": status.era.map(|e| format!("{e:?}").to_lowercase()),
                "restarts": status.restarts,
                "calls_in_flight": target.calls_in_flight(),
                "streams_open": target.streams_open(),
                "sessions": sessions,
                "error": status.last_error.as_deref().map(redact_credentials),
            }),
        );
    }
    let status = if all_ready {
        StatusCode::OK
    } else {
        StatusCode::SERVICE_UNAVAILABLE
    };
    let body = if detailed {
        json!({
            "ready": all_ready,
            "draining": draining,
            "targets": report,
            "bots": {
                "stdio_connections": app.stdio.count(),
                "containers": app.bot_containers.as_ref().map(|b| b.count()),
            },
        })
    } else if draining {
        json!({ "ready": false, "draining": true })
    } else {
        json!({ "ready": all_ready })
    };
    (
        status,
        [(
            header::CONTENT_TYPE,
            HeaderValue::from_static("application/json"),
        )],
        body.to_string(),
    )
        .into_response()
}

/// `GET /metrics`: Prometheus text format (needs the global token when
/// auth is on).
pub(super) async fn metrics(State(app): State<Arc<App>>, headers: HeaderMap) -> Response {
    if let Err(e) = app.authorize(None, &headers, || None).await {
        return e.into_response();
    }
    let gauges: Vec<TargetGauges> = app
        .targets
        .all()
        .map(|t| TargetGauges {
            target: t.name().to_owned(),
            calls_in_flight: t.calls_in_flight(),
            calls_limit: t.config.max_calls_in_flight,
            streams_open: t.streams_open(),
            streams_limit: t.limits.max_streams_per_target,
            sessions: app.sessions.count(t.name()),
            sessions_limit: t.limits.max_sessions_per_target,
            restarts: t.restarts(),
            unattributed_logs: t.unattributed_logs(),
            backends_alive: t.backends_alive(),
        })
        .collect();
    (
        [(
            header::CONTENT_TYPE,
            HeaderValue::from_static("text/plain; version=0.0.4; charset=utf-8"),
        )],
        app.ctx.metrics.render(&gauges),
    )
        .into_response()
}

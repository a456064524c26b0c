//! `/healthz`, `/readyz`, `/metrics`.

use std::sync::Arc;
use std::time::Duration;

use axum::extract::State;
use axum::response::{IntoResponse, Response};
use http::{HeaderMap, HeaderValue, StatusCode, header};
use serde_json::json;

use super::app::App;
use crate::metrics::TargetGauges;

/// `GET /healthz`: the process is up.
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

/// `GET /readyz`: every shared target's backend is ready (started if it
/// never ran; one that ran and stopped counts as idle and ready, since the
/// next call starts it); 503 otherwise, with each target's state.
pub(super) async fn readyz(State(app): State<Arc<App>>) -> Response {
    let mut all_ready = true;
    let mut report = serde_json::Map::new();
    for target in app.targets.all() {
        let sessions = app.sessions.count(target.name());
        let state = if target.per_session() {
            json!({ "ready": true, "sharing": "per_session", "sessions": sessions })
        } else {
            let upstream = target.shared_upstream();
            // A backend that was ready before and is not running now (stopped
            // when idle, or exited) is started again by the next call: the
            // probe must not start it, or probing would defeat idle stops.
            let before = upstream.status();
            let idle = !before.alive && !before.closed && upstream.backend_info().is_some();
            let (ok, error) = if idle {
                (true, None)
            } else {
                match tokio::time::timeout(Duration::from_secs(2), upstream.ready()).await {
                    Ok(Ok(_)) => (true, None),
                    Ok(Err(e)) => (false, Some(e.to_string())),
                    Err(_) => (false, Some("backend not ready yet".to_owned())),
                }
            };
            let status = upstream.status();
            all_ready &= ok;
            json!({
                "ready": ok,
                "sharing": "shared",
                "alive": status.alive,
                "idle": idle,
                "era": status.era.map(|e| format!("{e:?}").to_lowercase()),
                "restarts": status.restarts,
                "calls_in_flight": target.calls_in_flight(),
                "sessions": sessions,
                "error": error,
            })
        };
        report.insert(target.name().to_owned(), state);
    }
    let status = if all_ready {
        StatusCode::OK
    } else {
        StatusCode::SERVICE_UNAVAILABLE
    };
    (
        status,
        [(
            header::CONTENT_TYPE,
            HeaderValue::from_static("application/json"),
        )],
        json!({ "ready": all_ready, "targets": report }).to_string(),
    )
        .into_response()
}

/// `GET /metrics`: Prometheus text format (needs the global token when
/// auth is on).
pub(super) async fn metrics(State(app): State<Arc<App>>, headers: HeaderMap) -> Response {
    if let Err(e) = app.authorize(None, &headers) {
        return e.into_response();
    }
    let gauges: Vec<TargetGauges> = app
        .targets
        .all()
        .map(|t| TargetGauges {
            target: t.name().to_owned(),
            calls_in_flight: t.calls_in_flight(),
            sessions: app.sessions.count(t.name()),
            streams: t.streams_open(),
            restarts: t.restarts(),
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

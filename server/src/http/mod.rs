//! The HTTP front end: routes, shared state, and the checks every request
//! goes through (Host/Origin, auth, body size).

pub mod calls;
pub mod errors;
pub mod headers;
pub mod legacy;
pub mod mcp;
pub mod modern;
pub mod ops;
pub mod sse;

use std::sync::Arc;
use std::time::Instant;

use axum::Router;
use axum::body::{Body, Bytes};
use axum::extract::{Request, State};
use axum::middleware::{self, Next};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use http::StatusCode;
use tokio_util::sync::CancellationToken;

use crate::auth::TokenSet;
use crate::config::Config;
use crate::memoh;
use crate::metrics::Metrics;
use crate::origin::HostGuard;
use crate::targets::Registry;
use errors::{ApiError, SERVER_ERROR};

/// Everything the handlers share.
#[derive(Debug)]
pub struct App {
    /// The configuration.
    pub config: Config,
    /// The targets.
    pub targets: Registry,
    /// Counters.
    pub metrics: Metrics,
    /// Host/Origin checks.
    pub guard: HostGuard,
    /// Cancelled at shutdown: long-lived streams end.
    pub shutdown: CancellationToken,
    /// Memoh `mcp-stdio` connections.
    pub stdio: memoh::StdioConnections,
    /// Bots served from their containers without configuration
    /// (`[containerd] serve_bots = true`).
    pub bot_containers: Option<crate::containerd::BotContainers>,
    /// When the gateway started.
    pub started: Instant,
}

impl App {
    /// The tokens a route needs, given its own (if any).
    pub fn tokens(&self, own: Option<&Vec<String>>) -> TokenSet {
        if self.config.auth.disabled {
            return TokenSet::Disabled;
        }
        TokenSet::Tokens(
            own.cloned()
                .unwrap_or_else(|| self.config.auth.tokens.clone()),
        )
    }
}

/// The router with every route.
pub fn router(app: Arc<App>) -> Router {
    Router::new()
        .route(
            "/mcp/{target}",
            post(mcp::post).get(mcp::get).delete(mcp::delete),
        )
        .route("/bots/{bot_id}/container/fs-mcp", post(memoh::fs_mcp))
        .route("/bots/{bot_id}/mcp-stdio", post(memoh::create_stdio))
        .route(
            "/bots/{bot_id}/mcp-stdio/{connection_id}",
            post(memoh::call_stdio).delete(memoh::delete_stdio),
        )
        .route("/healthz", get(ops::healthz))
        .route("/readyz", get(ops::readyz))
        .route("/metrics", get(ops::metrics))
        .fallback(not_found)
        .layer(middleware::from_fn_with_state(app.clone(), guard))
        .with_state(app)
}

async fn not_found() -> Response {
    ApiError::new(StatusCode::NOT_FOUND, SERVER_ERROR, "no such route").into_response()
}

/// DNS-rebinding protection for every route.
async fn guard(State(app): State<Arc<App>>, request: Request, next: Next) -> Response {
    if let Err(e) = app.guard.check(request.headers()) {
        tracing::warn!(path = %request.uri().path(), error = %e.message, "request refused by Host/Origin check");
        return e.into_response();
    }
    next.run(request).await
}

/// Reads a request body up to `limit` bytes (413 beyond).
pub async fn read_body(body: Body, limit: usize) -> Result<Bytes, ApiError> {
    axum::body::to_bytes(body, limit).await.map_err(|e| {
        let mut source: Option<&(dyn std::error::Error + 'static)> = Some(&e);
        let mut too_large = false;
        while let Some(s) = source {
            too_large |= s.is::<http_body_util::LengthLimitError>();
            source = s.source();
        }
        if too_large {
            ApiError::new(
                StatusCode::PAYLOAD_TOO_LARGE,
                errors::INVALID_REQUEST,
                format!("request body is larger than the limit of {limit} bytes"),
            )
        } else {
            ApiError::bad_request(
                errors::PARSE_ERROR,
                format!("could not read the request body: {e}"),
            )
        }
    })
}

//! HTTP routing and the guards every request passes (Host/Origin, CORS
//! for allowed browser Origins, bearer tokens and OAuth access tokens),
//! the protected resource metadata, then the front end of the request's
//! kind.

mod app;
mod auth;
mod bots;
mod cors;
mod guard;
mod mcp;
mod oauth;
mod ops;
mod redact;
mod resource;
mod verified;

use std::sync::Arc;

use axum::Router;
use axum::extract::{Request, State};
use axum::middleware::{self, Next};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use http::StatusCode;

use crate::web::errors::{ApiError, SERVER_ERROR};

pub(crate) use app::{App, Retired};
use guard::Addressed;

/// The router with every route.
pub(crate) fn router(app: Arc<App>) -> Router {
    Router::new()
        .route(
            "/mcp/{target}",
            post(mcp::post).get(mcp::get).delete(mcp::delete),
        )
        // The deprecated 2024-11-05 HTTP+SSE transport.
        .route("/mcp/{target}/sse", get(mcp::sse_open))
        .route("/mcp/{target}/messages", post(mcp::sse_message))
        .route("/bots/{bot_id}/container/fs-mcp", post(bots::fs_mcp))
        .route("/bots/{bot_id}/mcp-stdio", post(bots::create_stdio))
        .route(
            "/bots/{bot_id}/mcp-stdio/{connection_id}",
            post(bots::call_stdio).delete(bots::delete_stdio),
        )
        .route(resource::WELL_KNOWN, get(resource::gateway))
        .route(
            "/.well-known/oauth-protected-resource/mcp/{target}",
            get(resource::target),
        )
        .route("/healthz", get(ops::healthz))
        .route("/readyz", get(ops::readyz))
        .route("/metrics", get(ops::metrics))
        .fallback(not_found)
        // Outermost first: the guard, then CORS for what it let through.
        .layer(middleware::from_fn_with_state(app.clone(), cors::cors))
        .layer(middleware::from_fn_with_state(app.clone(), guard))
        .with_state(app)
}

async fn not_found() -> Response {
    ApiError::new(StatusCode::NOT_FOUND, SERVER_ERROR, "no such route").into_response()
}

/// DNS-rebinding protection for every route.
async fn guard(State(app): State<Arc<App>>, request: Request, next: Next) -> Response {
    let addressed = Addressed {
        version: request.version(),
        uri: request.uri(),
        headers: request.headers(),
    };
    if let Err(e) = app.guard.check(addressed) {
        tracing::warn!(path = %request.uri().path(), error = %e.message, "request refused by Host/Origin check");
        return e.into_response();
    }
    next.run(request).await
}

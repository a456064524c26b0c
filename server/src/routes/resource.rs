//! OAuth 2.0 Protected Resource Metadata (RFC 9728): what a client needs
//! to get a token for the gateway — `/.well-known/oauth-protected-resource`
//! for the `[auth.oauth]` issuer, and
//! `/.well-known/oauth-protected-resource/mcp/{target}` for each target
//! that takes access tokens. The resource is named by `public_url` when
//! set, else by the request's own authority.

use std::sync::Arc;

use axum::Json;
use axum::extract::{Path, State};
use axum::response::{IntoResponse, Response};
use http::{HeaderMap, StatusCode, Uri, header};
use serde_json::json;

use super::app::App;
use super::oauth::Verifier;
use crate::web::errors::{ApiError, SERVER_ERROR};

/// The path of the metadata of the gateway as a whole.
pub(crate) const WELL_KNOWN: &str = "/.well-known/oauth-protected-resource";

/// Whether `path` is one of the metadata routes (browser clients read them
/// cross-origin: CORS applies to them as to the MCP routes).
pub(crate) fn is_metadata_path(path: &str) -> bool {
    path.strip_prefix(WELL_KNOWN)
        .is_some_and(|rest| rest.is_empty() || rest.starts_with("/mcp/"))
}

/// The gateway's URL as the client reached it: `public_url`, else
/// `http://` and the request's authority (`:authority`, absolute-form
/// target or `Host`, already checked by the Host guard).
pub(crate) fn base_url(app: &App, uri: Option<&Uri>, headers: &HeaderMap) -> Option<String> {
    if let Some(url) = &app.config.public_url {
        return Some(url.clone());
    }
    let authority = uri
        .and_then(Uri::authority)
        .map(|a| a.as_str().to_owned())
        .or_else(|| {
            headers
                .get(header::HOST)
                .and_then(|h| h.to_str().ok())
                .map(str::to_owned)
        })?;
    let authority = authority
        .rsplit_once('@')
        .map_or(authority.as_str(), |(_, h)| h);
    Some(format!("http://{authority}"))
}

/// The absolute URL of `target`'s metadata (`None`: the whole gateway's).
pub(crate) fn metadata_url(base: &str, target: Option<&str>) -> String {
    match target {
        Some(t) => format!("{base}{WELL_KNOWN}/mcp/{t}"),
        None => format!("{base}{WELL_KNOWN}"),
    }
}

fn document(resource: String, name: &str, verifier: &Verifier) -> Response {
    let config = verifier.config();
    let mut doc = json!({
        "resource": resource,
        "authorization_servers": [config.issuer],
        "bearer_methods_supported": ["header"],
        "resource_name": name,
    });
    if !config.required_scopes.is_empty() {
        doc["scopes_supported"] = json!(config.required_scopes);
    }
    ([(header::CACHE_CONTROL, "public, max-age=300")], Json(doc)).into_response()
}

fn not_found(what: &str) -> Response {
    ApiError::new(StatusCode::NOT_FOUND, SERVER_ERROR, what).into_response()
}

/// `GET /.well-known/oauth-protected-resource`.
pub(super) async fn gateway(State(app): State<Arc<App>>, uri: Uri, headers: HeaderMap) -> Response {
    let Some(verifier) = app.oauth.as_ref() else {
        return not_found("this gateway takes no OAuth access tokens ([auth.oauth] is not set)");
    };
    let Some(base) = base_url(&app, Some(&uri), &headers) else {
        return not_found("the request names no host (set public_url)");
    };
    document(base, "mcpod", verifier)
}

/// `GET /.well-known/oauth-protected-resource/mcp/{target}`.
pub(super) async fn target(
    State(app): State<Arc<App>>,
    Path(name): Path<String>,
    uri: Uri,
    headers: HeaderMap,
) -> Response {
    let verifier = match (app.targets.get(&name), app.aggregates.get(&name)) {
        (Some(t), _) => app.verifier_of(&t.config),
        (None, Some(a)) => app.verifier_of(&a.config),
        (None, None) => None,
    };
    let Some(verifier) = verifier else {
        return not_found("no target of that name takes OAuth access tokens");
    };
    let Some(base) = base_url(&app, Some(&uri), &headers) else {
        return not_found("the request names no host (set public_url)");
    };
    let title = format!("mcpod target {name}");
    document(format!("{base}/mcp/{name}"), &title, verifier)
}

//! `/mcp/{target}`: finds the client's era and hands the request to the
//! modern or legacy handler.

use std::sync::Arc;

use axum::body::Body;
use axum::extract::{Path, State};
use axum::response::{IntoResponse, Response};
use futures::StreamExt;
use http::{HeaderMap, HeaderValue, StatusCode, header};
use mcpod_core::{LEGACY_VERSIONS, Message};
use serde::Deserialize;
use serde_json::value::RawValue;
use tracing::Instrument;

use super::calls::Record;
use super::errors::{ApiError, HEADER_MISMATCH, INVALID_REQUEST, SERVER_ERROR, SESSION_NOT_FOUND};
use super::headers::{self, Accept};
use super::{App, legacy, modern, read_body, sse};
use crate::sessions::Session;
use crate::targets::Target;

/// The era a request belongs to.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ClientEra {
    /// `initialize`-based, with sessions.
    Legacy,
    /// Stateless; the `MCP-Protocol-Version` header, if sent.
    Modern(Option<String>),
}

#[derive(Deserialize)]
struct MetaOnly<'a> {
    #[serde(rename = "_meta", borrow)]
    meta: Option<MetaVersion<'a>>,
}

#[derive(Deserialize)]
struct MetaVersion<'a> {
    #[serde(rename = "io.modelcontextprotocol/protocolVersion", borrow)]
    version: Option<std::borrow::Cow<'a, str>>,
}

/// `params._meta["io.modelcontextprotocol/protocolVersion"]`, if any.
pub fn meta_version(params: Option<&RawValue>) -> Option<String> {
    let p: MetaOnly<'_> = serde_json::from_str(params?.get()).ok()?;
    p.meta?.version.map(|v| v.into_owned())
}

fn message_params<'a>(msg: &Message<'a>) -> Option<&'a RawValue> {
    match msg {
        Message::Request { params, .. } | Message::Notification { params, .. } => *params,
        _ => None,
    }
}

/// Decides the era: `initialize` or a session id means legacy; a legacy
/// `MCP-Protocol-Version` means legacy; any other version header, or a
/// `_meta` protocol version, means modern; nothing at all means legacy
/// (a client without the header may be treated as 2025-03-26).
pub fn detect_era(headers: &HeaderMap, msg: &Message<'_>) -> Result<ClientEra, ApiError> {
    let version = headers::single(headers, headers::PROTOCOL_VERSION)
        .map_err(|p| ApiError::bad_request(HEADER_MISMATCH, p.to_string()))?;
    let session = headers::session_id(headers)
        .map_err(|p| ApiError::bad_request(INVALID_REQUEST, p.to_string()))?;
    if msg.method() == Some("initialize") || session.is_some() {
        return Ok(ClientEra::Legacy);
    }
    match version {
        Some(v) if LEGACY_VERSIONS.contains(&v) => Ok(ClientEra::Legacy),
        Some(v) => Ok(ClientEra::Modern(Some(v.to_owned()))),
        None if meta_version(message_params(msg)).is_some() => Ok(ClientEra::Modern(None)),
        None => Ok(ClientEra::Legacy),
    }
}

/// The target label for metrics: unknown names are not echoed into
/// label values (a client could otherwise create series at will).
fn metric_target<'a>(app: &App, name: &'a str) -> &'a str {
    if app.targets.get(name).is_some() {
        name
    } else {
        "unknown"
    }
}

/// Finds the target and checks the caller's token (the global tokens
/// guard the 404 for unknown targets, so names do not leak).
pub fn target_for(app: &App, name: &str, headers: &HeaderMap) -> Result<Arc<Target>, ApiError> {
    match app.targets.get(name) {
        Some(t) => {
            app.tokens(t.config.tokens.as_ref()).check(headers)?;
            Ok(t.clone())
        }
        None => {
            app.tokens(None).check(headers)?;
            Err(ApiError::new(
                StatusCode::NOT_FOUND,
                SERVER_ERROR,
                format!("no target named `{name}`"),
            ))
        }
    }
}

/// `POST /mcp/{target}`.
pub async fn post(
    State(app): State<Arc<App>>,
    Path(name): Path<String>,
    headers: HeaderMap,
    body: Body,
) -> Response {
    let span = tracing::info_span!(
        "request",
        target = %name,
        http = "POST",
        era = tracing::field::Empty,
        method = tracing::field::Empty,
        session = tracing::field::Empty,
    );
    handle_post(app, name, headers, body).instrument(span).await
}

async fn handle_post(app: Arc<App>, name: String, headers: HeaderMap, body: Body) -> Response {
    let mut record = Record::new(&app, metric_target(&app, &name));
    let target = match target_for(&app, &name, &headers) {
        Ok(t) => t,
        Err(e) => return record.fail(e),
    };
    if !headers::is_json_content_type(&headers) {
        return record.fail(ApiError::new(
            StatusCode::UNSUPPORTED_MEDIA_TYPE,
            INVALID_REQUEST,
            "Content-Type must be application/json",
        ));
    }
    let body = match read_body(body, app.config.limits.max_body_bytes).await {
        Ok(b) => b,
        Err(e) => return record.fail(e),
    };
    let msg = match Message::parse(&body) {
        Ok(m) => m,
        Err(e) => return record.fail(ApiError::bad_request(e.code(), e.to_string())),
    };
    if let Some(m) = msg.method() {
        record.method(m);
    } else {
        record.method("response");
    }
    let era = match detect_era(&headers, &msg) {
        Ok(e) => e,
        Err(e) => return record.fail(e),
    };
    match era {
        ClientEra::Modern(version) => {
            tracing::Span::current().record("era", "modern");
            modern::post(app, target, &headers, &msg, version, record).await
        }
        ClientEra::Legacy => {
            tracing::Span::current().record("era", "legacy");
            legacy::post(app, target, &headers, &msg, record).await
        }
    }
}

/// The legacy session a GET or DELETE names, or the error to answer.
/// The target (auth checked) and the legacy session a `GET` or `DELETE`
/// names.
fn target_and_session(
    app: &App,
    name: &str,
    headers: &HeaderMap,
) -> Result<(Arc<Target>, Arc<Session>), ApiError> {
    let target = target_for(app, name, headers)?;
    let session = session_for(&target, headers)?;
    Ok((target, session))
}

fn session_for(target: &Target, headers: &HeaderMap) -> Result<Arc<Session>, ApiError> {
    let id = headers::session_id(headers)
        .map_err(|p| ApiError::bad_request(INVALID_REQUEST, p.to_string()))?;
    let Some(id) = id else {
        let legacy = headers::single(headers, headers::PROTOCOL_VERSION)
            .ok()
            .flatten()
            .is_some_and(|v| LEGACY_VERSIONS.contains(&v));
        return Err(if legacy {
            ApiError::bad_request(INVALID_REQUEST, "missing Mcp-Session-Id header")
        } else {
            ApiError::new(
                StatusCode::METHOD_NOT_ALLOWED,
                INVALID_REQUEST,
                "only POST is served to stateless (2026-07-28) clients; legacy clients send Mcp-Session-Id",
            )
            .with_header(header::ALLOW, HeaderValue::from_static("POST"))
        });
    };
    target.sessions.get(id).ok_or_else(|| {
        ApiError::new(
            StatusCode::NOT_FOUND,
            SESSION_NOT_FOUND,
            "session not found or expired; initialize again",
        )
    })
}

/// `GET /mcp/{target}`: a legacy session's stream of server-initiated
/// messages.
pub async fn get(
    State(app): State<Arc<App>>,
    Path(name): Path<String>,
    headers: HeaderMap,
) -> Response {
    let mut record = Record::new(&app, metric_target(&app, &name));
    record.method("GET");
    let (target, session) = match target_and_session(&app, &name, &headers) {
        Ok(found) => found,
        Err(e) => return record.fail(e),
    };
    record.session(&session.id);
    if !Accept::from_headers(&headers).sse {
        return record.fail(ApiError::new(
            StatusCode::NOT_ACCEPTABLE,
            INVALID_REQUEST,
            "GET opens an event stream: Accept must include text/event-stream",
        ));
    }
    session.touch();
    let (_, rx) = session.open_stream();
    let events =
        futures::stream::unfold(rx, |mut rx| async move { rx.recv().await.map(|b| (b, rx)) })
            .boxed();
    record.outcome = "ok";
    let mut response = sse::response(
        events,
        target.limits.sse_keep_alive,
        Some(session.closed.clone()),
    );
    if let Ok(v) = HeaderValue::from_str(&session.id) {
        response.headers_mut().insert(headers::SESSION_ID, v);
    }
    response
}

/// `DELETE /mcp/{target}`: ends a legacy session.
pub async fn delete(
    State(app): State<Arc<App>>,
    Path(name): Path<String>,
    headers: HeaderMap,
) -> Response {
    let mut record = Record::new(&app, metric_target(&app, &name));
    record.method("DELETE");
    let (target, session) = match target_and_session(&app, &name, &headers) {
        Ok(found) => found,
        Err(e) => return record.fail(e),
    };
    record.session(&session.id);
    target.end_session(&session.id).await;
    record.outcome = "ok";
    StatusCode::OK.into_response()
}

//! `/mcp/{target}`: the target and the caller's token, then the client's
//! era, then the front end of that era.

use std::collections::HashMap;
use std::sync::Arc;

use axum::body::{Body, Bytes};
use axum::extract::{Path, Query, State};
use axum::response::Response;
use http::{HeaderMap, StatusCode, Uri};
use mcpod_core::meta::RequestMeta;
use mcpod_core::{LEGACY_VERSIONS, Message};
use tracing::Instrument;

use super::app::App;
use super::auth::Authorized;
use super::resource;
use crate::aggregate::Aggregate;
use crate::config::Access;
use crate::front;
use crate::front::legacy::SessionRequest;
use crate::metrics::{Method, Operation};
use crate::targets::Target;
use crate::telemetry;
use crate::web::body::read_json_body;
use crate::web::errors::{ApiError, HEADER_MISMATCH, INVALID_REQUEST, SERVER_ERROR};
use crate::web::headers;
use crate::web::record::Record;

/// The route of the MCP endpoint, as spans name it (`http.route`).
const ROUTE: &str = "/mcp/{target}";

/// The era a request belongs to.
#[derive(Debug, Clone, PartialEq, Eq)]
enum ClientEra {
    /// `initialize`-based, with sessions.
    Legacy,
    /// Stateless; the `MCP-Protocol-Version` header, if sent.
    Modern(Option<String>),
}

fn message_params<'a>(msg: &Message<'a>) -> Option<&'a serde_json::value::RawValue> {
    match msg {
        Message::Request { params, .. } | Message::Notification { params, .. } => *params,
        _ => None,
    }
}

/// Decides the era: `initialize` or a session id means legacy; a legacy
/// `MCP-Protocol-Version` means legacy; any other version header, or a
/// `_meta` protocol version, means modern; nothing at all means legacy
/// (a client without the header may be treated as 2025-03-26).
fn detect_era(
    headers: &HeaderMap,
    msg: &Message<'_>,
    meta: Option<&RequestMeta<'_>>,
) -> Result<ClientEra, ApiError> {
    let version = headers::single(headers, headers::PROTOCOL_VERSION)
        .map_err(|p| ApiError::bad_request(HEADER_MISMATCH, p.to_string()))?;
    let session = headers::session_id(headers)
        .map_err(|p| ApiError::bad_request(INVALID_REQUEST, p.to_string()))?;
    // `initialize` is the legacy handshake, unless the client says it
    // speaks 2026-07-28 (which has no such method).
    let modern_header = version.is_some_and(|v| !LEGACY_VERSIONS.contains(&v));
    if (msg.method() == Some("initialize") && !modern_header) || session.is_some() {
        return Ok(ClientEra::Legacy);
    }
    match version {
        Some(v) if LEGACY_VERSIONS.contains(&v) => Ok(ClientEra::Legacy),
        Some(v) => Ok(ClientEra::Modern(Some(v.to_owned()))),
        None if meta.is_some_and(|m| m.protocol_version.is_some()) => Ok(ClientEra::Modern(None)),
        None => Ok(ClientEra::Legacy),
    }
}

/// The target label for metrics: unknown names are not echoed into
/// label values (a client could otherwise create series at will).
fn metric_target<'a>(app: &App, name: &'a str) -> &'a str {
    if app.targets.get(name).is_some() || app.aggregates.contains_key(name) {
        name
    } else {
        "unknown"
    }
}

/// Finds the target and checks the caller's credentials (the global ones
/// guard the 404 for unknown targets, so names do not leak).
async fn target_for(
    app: &App,
    name: &str,
    uri: &Uri,
    headers: &HeaderMap,
) -> Result<(Arc<Target>, Authorized), ApiError> {
    let base = || resource::base_url(app, Some(uri), headers);
    match app.targets.get(name) {
        Some(t) => {
            let metadata = || base().map(|b| resource::metadata_url(&b, Some(name)));
            let who = app.authorize_target(&t.config, headers, metadata).await?;
            Ok((t.clone(), who))
        }
        None => {
            let metadata = || base().map(|b| resource::metadata_url(&b, None));
            app.authorize(None, headers, metadata).await?;
            Err(ApiError::new(
                StatusCode::NOT_FOUND,
                SERVER_ERROR,
                format!("no target named `{name}`"),
            ))
        }
    }
}

/// `POST /mcp/{target}`.
pub(super) async fn post(
    State(app): State<Arc<App>>,
    Path(name): Path<String>,
    uri: Uri,
    headers: HeaderMap,
    body: Body,
) -> Response {
    let span = telemetry::http_span("POST", ROUTE, &name, &headers).unwrap_or_else(|| {
        tracing::info_span!(
            "request",
            target = %name,
            http = "POST",
            era = tracing::field::Empty,
            method = tracing::field::Empty,
            session = tracing::field::Empty,
        )
    });
    handle_post(app, name, uri, headers, body)
        .instrument(span)
        .await
}

async fn handle_post(
    app: Arc<App>,
    name: String,
    uri: Uri,
    headers: HeaderMap,
    body: Body,
) -> Response {
    let mut record = Record::rpc(&app.ctx.metrics, metric_target(&app, &name));
    if let Some(aggregate) = app.aggregates.get(&name).cloned() {
        return Box::pin(aggregate_post(app, aggregate, uri, headers, body, record)).await;
    }
    // Boxed: checking an access token may fetch the issuer's keys, and a
    // connection waiting for its body should not hold that future's room.
    let (target, who) = match Box::pin(target_for(&app, &name, &uri, &headers)).await {
        Ok(t) => t,
        Err(e) => return record.fail(e),
    };
    let body = match read_json_body(&headers, body, &app.config.limits).await {
        Ok(b) => b,
        Err(e) => return record.fail(e),
    };
    // Boxed apart: a connection whose body is still coming holds only the
    // small future above, not the one of the whole exchange.
    Box::pin(dispatch_post(app, target, who, headers, body, record)).await
}

/// A POST whose body has arrived: to the front end of the client's era.
async fn dispatch_post(
    app: Arc<App>,
    target: Arc<Target>,
    who: Authorized,
    headers: HeaderMap,
    body: Bytes,
    mut record: Record,
) -> Response {
    let Authorized {
        principal,
        identity,
    } = who;
    let access = Access::of(target.config.policy.as_ref(), identity);
    let msg = match Message::parse(&body) {
        Ok(m) => m,
        Err(e) => return record.fail(ApiError::bad_request(e.code(), e.to_string())),
    };
    match msg.method() {
        Some(m) => record.method(Method::of(m), m),
        None => record.method(Method::RESPONSE, "response"),
    }
    if telemetry::enabled() {
        telemetry::describe_call(&tracing::Span::current(), &msg);
    }
    // Read once: the era depends on it, and the modern front end uses it.
    let meta = RequestMeta::read(message_params(&msg));
    let era = match detect_era(&headers, &msg, meta.as_ref().ok()) {
        Ok(e) => e,
        Err(e) => return record.fail(e),
    };
    match era {
        ClientEra::Modern(version) => {
            tracing::Span::current().record("era", "modern");
            if telemetry::enabled() {
                let version = version.as_deref().or(meta
                    .as_ref()
                    .ok()
                    .and_then(|m| m.protocol_version.as_deref()));
                telemetry::record_protocol_version(&tracing::Span::current(), "modern", version);
            }
            let request = front::modern::ModernPost {
                headers: &headers,
                msg: &msg,
                meta,
                version,
                principal,
                access,
            };
            front::modern::post(&app.ctx, target, request, record).await
        }
        ClientEra::Legacy => {
            tracing::Span::current().record("era", "legacy");
            if telemetry::enabled() {
                let version = headers::single(&headers, headers::PROTOCOL_VERSION)
                    .ok()
                    .flatten();
                telemetry::record_protocol_version(&tracing::Span::current(), "legacy", version);
            }
            let request = front::legacy::LegacyPost {
                headers: &headers,
                msg: &msg,
                principal,
                access,
            };
            front::legacy::post(&app.ctx, &app.sessions, target, request, record).await
        }
    }
}

/// A POST to an aggregate: its own credentials and policy, then the
/// aggregate front end of the client's era.
async fn aggregate_post(
    app: Arc<App>,
    aggregate: Arc<Aggregate>,
    uri: Uri,
    headers: HeaderMap,
    body: Body,
    mut record: Record,
) -> Response {
    let name = aggregate.name();
    let metadata = || {
        resource::base_url(&app, Some(&uri), &headers)
            .map(|b| resource::metadata_url(&b, Some(name)))
    };
    let who = match app
        .authorize_target(&aggregate.config, &headers, metadata)
        .await
    {
        Ok(who) => who,
        Err(e) => return record.fail(e),
    };
    let body = match read_json_body(&headers, body, &app.config.limits).await {
        Ok(b) => b,
        Err(e) => return record.fail(e),
    };
    let msg = match Message::parse(&body) {
        Ok(m) => m,
        Err(e) => return record.fail(ApiError::bad_request(e.code(), e.to_string())),
    };
    match msg.method() {
        Some(m) => record.method(Method::of(m), m),
        None => record.method(Method::RESPONSE, "response"),
    }
    let meta = RequestMeta::read(message_params(&msg));
    let era = match detect_era(&headers, &msg, meta.as_ref().ok()) {
        Ok(e) => e,
        Err(e) => return record.fail(e),
    };
    let Authorized {
        principal,
        identity,
    } = who;
    let ClientEra::Modern(version) = era else {
        tracing::Span::current().record("era", "legacy");
        let request = front::legacy::aggregate::AggregatePost {
            headers: &headers,
            msg: &msg,
            principal,
            access: Access::of(aggregate.config.policy.as_ref(), identity.clone()),
            identity,
        };
        return front::legacy::aggregate::post(
            &app.ctx,
            &app.sessions,
            aggregate.clone(),
            request,
            record,
        )
        .await;
    };
    tracing::Span::current().record("era", "modern");
    let request = front::modern::ModernPost {
        headers: &headers,
        msg: &msg,
        meta,
        version,
        principal,
        access: Access::of(aggregate.config.policy.as_ref(), identity.clone()),
    };
    front::modern::aggregate::post(&app.ctx, aggregate.clone(), request, identity, record).await
}

/// `GET /mcp/{target}`: a legacy session's stream of server-initiated
/// messages.
pub(super) async fn get(
    State(app): State<Arc<App>>,
    Path(name): Path<String>,
    uri: Uri,
    headers: HeaderMap,
) -> Response {
    session_request(&app, &name, &uri, &headers, SessionRequest::OpenStream).await
}

/// `DELETE /mcp/{target}`: ends a legacy session.
pub(super) async fn delete(
    State(app): State<Arc<App>>,
    Path(name): Path<String>,
    uri: Uri,
    headers: HeaderMap,
) -> Response {
    session_request(&app, &name, &uri, &headers, SessionRequest::End).await
}

async fn session_request(
    app: &App,
    name: &str,
    uri: &Uri,
    headers: &HeaderMap,
    request: SessionRequest,
) -> Response {
    let (operation, http_method) = match request {
        SessionRequest::OpenStream => (Operation::OpenStream, "GET"),
        SessionRequest::End => (Operation::EndSession, "DELETE"),
    };
    match telemetry::http_span(http_method, ROUTE, name, headers) {
        Some(span) => {
            session_request_in(app, name, uri, headers, request, operation)
                .instrument(span)
                .await
        }
        None => session_request_in(app, name, uri, headers, request, operation).await,
    }
}

async fn session_request_in(
    app: &App,
    name: &str,
    uri: &Uri,
    headers: &HeaderMap,
    request: SessionRequest,
    operation: Operation,
) -> Response {
    let mut record = Record::new(&app.ctx.metrics, metric_target(app, name), operation);
    if let Some(aggregate) = app.aggregates.get(name) {
        return match app
            .authorize_target(&aggregate.config, headers, || None)
            .await
        {
            Ok(who) => {
                front::legacy::aggregate::session_request(
                    &app.ctx,
                    &app.sessions,
                    aggregate,
                    headers,
                    &who.principal,
                    request,
                    record,
                )
                .await
            }
            Err(e) => record.fail(e),
        };
    }
    match target_for(app, name, uri, headers).await {
        Ok((target, who)) => {
            let sessions = &app.sessions;
            let ctx = &app.ctx;
            let principal = &who.principal;
            front::legacy::session_request(
                ctx, sessions, &target, headers, principal, request, record,
            )
            .await
        }
        Err(e) => record.fail(e),
    }
}

/// `GET /mcp/{target}/sse`: an endpoint of the 2024-11-05 transport.
pub(super) async fn sse_open(
    State(app): State<Arc<App>>,
    Path(name): Path<String>,
    uri: Uri,
    headers: HeaderMap,
) -> Response {
    let mut record = Record::new(
        &app.ctx.metrics,
        metric_target(&app, &name),
        Operation::OpenStream,
    );
    match target_for(&app, &name, &uri, &headers).await {
        Ok((target, who)) => {
            let shutdown = app.ctx.shutdown.clone();
            let sessions = &app.sessions;
            let principal = who.principal;
            front::legacy::sse_transport::open(
                sessions, &target, &headers, principal, shutdown, record,
            )
        }
        Err(e) => record.fail(e),
    }
}

/// `POST /mcp/{target}/messages?sessionId=…`: a message of the 2024-11-05
/// transport.
pub(super) async fn sse_message(
    State(app): State<Arc<App>>,
    Path(name): Path<String>,
    Query(query): Query<HashMap<String, String>>,
    uri: Uri,
    headers: HeaderMap,
    body: Body,
) -> Response {
    match telemetry::http_span("POST", "/mcp/{target}/messages", &name, &headers) {
        Some(span) => {
            sse_message_in(app, name, query, uri, headers, body)
                .instrument(span)
                .await
        }
        None => sse_message_in(app, name, query, uri, headers, body).await,
    }
}

async fn sse_message_in(
    app: Arc<App>,
    name: String,
    query: HashMap<String, String>,
    uri: Uri,
    headers: HeaderMap,
    body: Body,
) -> Response {
    let mut record = Record::rpc(&app.ctx.metrics, metric_target(&app, &name));
    let (target, who) = match target_for(&app, &name, &uri, &headers).await {
        Ok(t) => t,
        Err(e) => return record.fail(e),
    };
    let Some(session_id) = query.get("sessionId") else {
        return record.fail(ApiError::bad_request(
            INVALID_REQUEST,
            "the messages endpoint needs ?sessionId= (from the SSE endpoint event)",
        ));
    };
    let body = match read_json_body(&headers, body, &app.config.limits).await {
        Ok(b) => b,
        Err(e) => return record.fail(e),
    };
    if let Ok(msg) = Message::parse(&body) {
        match msg.method() {
            Some(m) => record.method(Method::of(m), m),
            None => record.method(Method::RESPONSE, "response"),
        }
        if telemetry::enabled() {
            telemetry::describe_call(&tracing::Span::current(), &msg);
        }
    }
    let ctx = &app.ctx;
    let access = Access::of(target.config.policy.as_ref(), who.identity);
    front::legacy::sse_transport::post(
        ctx,
        &app.sessions,
        target,
        session_id,
        &who.principal,
        access,
        body,
        record,
    )
}

//! Legacy (2025-11-25 and earlier) clients: `initialize` answered by the
//! gateway, sessions, their resumable SSE streams (GET, and the replies to
//! their POSTs) and DELETE, client cancellations and answers to server
//! requests.

pub(crate) mod aggregate;
mod sealed;
mod session;
pub(crate) mod sse_transport;
mod stream;

use std::sync::Arc;

use axum::response::{IntoResponse, Response};
use http::{HeaderMap, HeaderValue, StatusCode, header};
use mcpod_core::envelope::ErrorObject;
use mcpod_core::{LEGACY_VERSIONS, Message};
use mcpod_tokio::{OwnedOutcome, OwnedRequest, RequestOptions};
use serde::Deserialize;
use serde_json::value::RawValue;
use tracing::{debug, info, warn};

use super::context::Context;
use super::refusals::{principal_busy, target_busy, unsupported_version};
use super::reply::{forward_notification, reply};
use crate::bridge::{self, Caller, Client, ClientHello, Exchange, LogLevel, Slots};
use crate::config::Access;
use crate::ids::Principal;
use crate::metrics::Outcome;
use crate::targets::Target;
use crate::web::errors::{
    ApiError, INTERNAL_ERROR, INVALID_PARAMS, INVALID_REQUEST, SERVER_ERROR, SESSION_NOT_FOUND,
    accepted, not_ready, overloaded, upstream_error,
};
use crate::web::headers::{self, Accept};
use crate::web::record::Record;

use session::Session;
pub(crate) use session::{SessionStore, Sessions};

#[derive(Deserialize)]
struct InitializeParams<'a> {
    #[serde(rename = "protocolVersion", borrow, default)]
    protocol_version: Option<std::borrow::Cow<'a, str>>,
    #[serde(borrow, default)]
    capabilities: Option<&'a RawValue>,
    #[serde(rename = "clientInfo", borrow, default)]
    client_info: Option<&'a RawValue>,
}

#[derive(Deserialize)]
struct UriParams<'a> {
    #[serde(borrow)]
    uri: std::borrow::Cow<'a, str>,
}

#[derive(Deserialize)]
struct CancelParams<'a> {
    #[serde(rename = "requestId", borrow)]
    request_id: &'a RawValue,
    #[serde(default)]
    reason: Option<String>,
}

/// Why a request the gateway answers itself failed.
enum Refusal {
    /// The backend refused what the gateway asked of it for the client.
    Backend(bridge::Refused),
    /// The request's params are not what the method takes.
    Params(&'static str),
}

/// The requests the gateway answers for a session itself, in either
/// backend era: `ping`; `logging/setLevel` (remembered, and a legacy
/// backend set to the most verbose level wanted); `resources/subscribe`
/// and `unsubscribe` (counted across sessions at a legacy backend, carried
/// by the gateway's listen at a modern one). `None`: not one of them.
async fn answered_here(
    client: &Client,
    method: &str,
    params: Option<&RawValue>,
) -> Option<Result<(), Refusal>> {
    let uri = || params.and_then(|p| serde_json::from_str::<UriParams<'_>>(p.get()).ok());
    Some(match method {
        "ping" => Ok(()),
        "logging/setLevel" => match LogLevel::of_set_level(params) {
            Some(level) => client.set_log_level(level).await.map_err(Refusal::Backend),
            None => Err(Refusal::Params(
                "logging/setLevel needs a valid params.level",
            )),
        },
        "resources/subscribe" => match uri() {
            Some(u) => client.subscribe(&u.uri).await.map_err(Refusal::Backend),
            None => Err(Refusal::Params("resources/subscribe needs params.uri")),
        },
        "resources/unsubscribe" => match uri() {
            Some(u) => client.unsubscribe(&u.uri).await.map_err(Refusal::Backend),
            None => Err(Refusal::Params("resources/unsubscribe needs params.uri")),
        },
        _ => return None,
    })
}

fn not_acceptable(id: Option<&RawValue>) -> ApiError {
    ApiError::new(
        StatusCode::NOT_ACCEPTABLE,
        INVALID_REQUEST,
        "Accept must include application/json or text/event-stream",
    )
    .with_id(id)
}

fn session_not_found() -> ApiError {
    ApiError::new(
        StatusCode::NOT_FOUND,
        SESSION_NOT_FOUND,
        "session not found or expired; initialize again",
    )
}

fn sessions_of<'a>(sessions: &'a Sessions, target: &Target) -> Result<&'a SessionStore, ApiError> {
    sessions.of(target.name()).ok_or_else(|| {
        ApiError::new(
            StatusCode::NOT_FOUND,
            SERVER_ERROR,
            format!("target `{}` has no legacy sessions", target.name()),
        )
    })
}

/// A legacy client's POST: its headers, its message, who sent it.
pub(crate) struct LegacyPost<'a> {
    /// The request's headers.
    pub(crate) headers: &'a HeaderMap,
    /// Its JSON-RPC message.
    pub(crate) msg: &'a Message<'a>,
    /// Who sent it (sessions are theirs alone).
    pub(crate) principal: Principal,
    /// What of the target they may see and use.
    pub(crate) access: Access,
}

/// Handles a legacy client's POST.
pub(crate) async fn post(
    ctx: &Context,
    sessions: &Sessions,
    target: Arc<Target>,
    request: LegacyPost<'_>,
    record: Record,
) -> Response {
    post_bound(ctx, sessions, target, request, record, None).await
}

/// A session of the 2024-11-05 HTTP+SSE transport being made: its id is
/// the endpoint's, and its stream is the endpoint's SSE stream.
#[derive(Debug)]
pub(crate) struct Binding {
    /// The session id the endpoint announced.
    pub(crate) id: String,
    /// The endpoint's stream.
    pub(crate) stream: tokio::sync::mpsc::Sender<Vec<u8>>,
}

/// [`post`], with the binding an `initialize` of the 2024-11-05 transport
/// makes its session with.
pub(crate) async fn post_bound(
    ctx: &Context,
    sessions: &Sessions,
    target: Arc<Target>,
    request: LegacyPost<'_>,
    mut record: Record,
    binding: Option<Binding>,
) -> Response {
    let LegacyPost {
        headers,
        msg,
        principal,
        access,
    } = request;
    let accept = Accept::from_headers(headers);
    if let Message::Request { id, method, params } = msg {
        if method == "initialize" {
            let made = Made { principal, binding };
            return initialize(ctx, sessions, &target, id, *params, accept, record, made).await;
        }
    }
    let session_id = match headers::session_id(headers) {
        Ok(Some(s)) => s,
        Ok(None) => {
            return record.fail(ApiError::bad_request(
                INVALID_REQUEST,
                "missing Mcp-Session-Id header (send initialize first)",
            ));
        }
        Err(p) => return record.fail(ApiError::bad_request(INVALID_REQUEST, p.to_string())),
    };
    let session = match find(ctx, sessions, &target, session_id, &principal).await {
        Ok(session) => session,
        Err(e) => return record.fail(e),
    };
    record.session(&session.id);
    session.touch();
    if let Ok(Some(v)) = headers::single(headers, headers::PROTOCOL_VERSION) {
        if !LEGACY_VERSIONS.contains(&v) {
            return record.fail(unsupported_version(v, None, LEGACY_VERSIONS));
        }
    }
    let client = &session.client;
    match msg {
        Message::Request { id, method, params } => {
            if !accept.json && !accept.sse {
                return record.fail(not_acceptable(Some(id)));
            }
            if let Some(why) = bridge::refusal(&access, method, *params) {
                record.outcome = Outcome::Forbidden;
                let frame = mcpod_core::json::error_frame(id.get(), bridge::DENIED, &why, None);
                return reply(frame, accept.json);
            }
            if let Some(done) = answered_here(client, method, *params).await {
                let frame = match done {
                    Ok(()) => {
                        record.outcome = Outcome::Ok;
                        let empty = mcpod_core::json::to_raw(&serde_json::json!({}));
                        mcpod_core::json::result_frame(id.get(), &empty)
                    }
                    Err(Refusal::Backend(e)) => {
                        record.outcome = Outcome::Error;
                        mcpod_core::json::error_frame(
                            id.get(),
                            e.code,
                            &e.message,
                            e.data.as_deref(),
                        )
                    }
                    Err(Refusal::Params(why)) => {
                        record.outcome = Outcome::Rejected;
                        mcpod_core::json::error_frame(id.get(), INVALID_PARAMS, why, None)
                    }
                };
                return reply(frame, accept.json);
            }
            let Some(target_slot) = target.try_call_slot() else {
                return record.fail(target_busy(&target).with_id(Some(id)));
            };
            let Some(client_slot) = client.try_start_call(target.limits.max_calls_per_session)
            else {
                return record.fail(
                    overloaded(
                        StatusCode::TOO_MANY_REQUESTS,
                        format!(
                            "this session has {} calls in flight, its limit",
                            target.limits.max_calls_per_session
                        ),
                    )
                    .with_id(Some(id)),
                );
            };
            let request = OwnedRequest::new(
                (*id).to_owned(),
                method.as_ref(),
                params.map(|p| p.to_owned()),
            );
            let mut place = bridge::place(&target, client.backend().clone(), &ctx.inputs);
            place.access = access;
            let Some(own_slot) = target.try_principal_call(&principal) else {
                let max = target.limits.max_calls_per_principal;
                let e = principal_busy(&target, "calls in flight", max);
                return record.fail(e.with_id(Some(id)));
            };
            let slots = Slots::new(target_slot, Some(client_slot)).with_principal(own_slot);
            let exchange = match Exchange::start(
                place,
                Caller::Session(client.clone()),
                request,
                RequestOptions::default(),
                slots,
            )
            .await
            {
                Ok(e) => e,
                Err(e) => return record.fail(upstream_error(&e).with_id(Some(id))),
            };
            let keep_alive = target.limits.sse_keep_alive;
            stream::answer(ctx, &session, exchange, record, accept, keep_alive).await
        }
        Message::Notification { method, params } => match method.as_ref() {
            "notifications/initialized" => {
                record.outcome = Outcome::Ok;
                accepted()
            }
            "notifications/cancelled" => {
                let found = params
                    .and_then(|p| serde_json::from_str::<CancelParams<'_>>(p.get()).ok())
                    .map(|p| {
                        client.backend().upstream.cancel_caller(
                            client.owner(),
                            p.request_id.get(),
                            Some(p.reason.as_deref().unwrap_or("cancelled by the client")),
                        )
                    });
                debug!(found = ?found, "client cancelled a call");
                record.outcome = Outcome::Ok;
                accepted()
            }
            m => forward_notification(&client.backend().upstream, m, *params, record).await,
        },
        Message::Response { id, result } => {
            client
                .answer(id.get(), OwnedOutcome::Result((*result).to_owned()))
                .await;
            record.outcome = Outcome::Ok;
            accepted()
        }
        Message::Error { id, error } => {
            let outcome = match ErrorObject::parse(error) {
                Some(e) => OwnedOutcome::Error {
                    code: e.code,
                    message: e.message.into_owned(),
                    data: e.data.map(|d| d.to_owned()),
                },
                None => OwnedOutcome::Error {
                    code: INTERNAL_ERROR,
                    message: "the client sent an invalid error object".into(),
                    data: None,
                },
            };
            match id {
                Some(id) => {
                    client.answer(id.get(), outcome).await;
                }
                None => debug!("client sent an error without an id; nothing to answer"),
            }
            record.outcome = Outcome::Ok;
            accepted()
        }
    }
}

/// Who a session is being made for, and the 2024-11-05 endpoint it is
/// bound to, if any.
struct Made {
    principal: Principal,
    binding: Option<Binding>,
}

#[allow(clippy::too_many_arguments)] // one of each thing a handshake needs
async fn initialize(
    ctx: &Context,
    sessions: &Sessions,
    target: &Arc<Target>,
    id: &RawValue,
    params: Option<&RawValue>,
    accept: Accept,
    mut record: Record,
    made: Made,
) -> Response {
    let Made { principal, binding } = made;
    if !accept.json && !accept.sse {
        return record.fail(not_acceptable(Some(id)));
    }
    let store = match sessions_of(sessions, target) {
        Ok(s) => s,
        Err(e) => return record.fail(e.with_id(Some(id))),
    };
    let init = params.and_then(|p| serde_json::from_str::<InitializeParams<'_>>(p.get()).ok());
    let version = bridge::negotiate(init.as_ref().and_then(|p| p.protocol_version.as_deref()));
    let hello = ClientHello {
        capabilities: init
            .as_ref()
            .and_then(|p| p.capabilities)
            .map(|c| c.to_owned()),
        client_info: init
            .as_ref()
            .and_then(|p| p.client_info)
            .map(|c| c.to_owned()),
    };
    let (session_id, bound_stream) = match binding {
        Some(b) => (b.id, Some(b.stream)),
        None => (new_id(ctx, target, version, &principal, &hello), None),
    };
    if store.get(&session_id).is_some() {
        return record.fail(
            ApiError::bad_request(INVALID_REQUEST, "this session is already initialized")
                .with_id(Some(id)),
        );
    }
    // The place is taken before the backend starts: concurrent
    // `initialize`s cannot pass the limit together.
    let held = bound_stream
        .is_some()
        .then(|| sessions.endpoints.take_place(&session_id))
        .flatten()
        .filter(|p| p.is_for(store, &principal));
    let place = match held {
        Some(place) => place,
        None => match reserve(store, target, &principal) {
            Ok(place) => place,
            Err(e) => return record.fail(e.with_id(Some(id))),
        },
    };
    let (backend, private) = if target.per_session() {
        let p = target.open_private(&session_id[..8]);
        (p.backend, Some(p.id))
    } else {
        (target.shared_backend(), None)
    };
    let info = match bridge::ready(&backend.upstream, target.ready_timeout()).await {
        Ok(info) => info,
        Err(e) => {
            if let Some(p) = private {
                target.close_private(p).await;
            }
            return record.fail(not_ready(&e, target.name()).with_id(Some(id)));
        }
    };
    let client = Client::attach(backend, hello, stream::stream_limits(&target.limits));
    if let Some(stream) = bound_stream {
        client.adopt_stream(stream);
    }
    let session = Arc::new(Session::new(
        session_id,
        version,
        client,
        principal,
        target.clone(),
        private,
        ctx.shutdown.child_token(),
    ));
    place.fill(session.clone());
    record.session(&session.id);
    record.outcome = Outcome::Ok;
    let frame =
        mcpod_core::json::result_frame(id.get(), &bridge::initialize_result(&info, version));
    let mut response = reply(frame, accept.json);
    if let Ok(v) = HeaderValue::from_str(&session.id) {
        response.headers_mut().insert(headers::SESSION_ID, v);
    }
    response
}

/// The legacy session a `GET` or `DELETE` names, or the error to answer.
async fn session_for(
    ctx: &Context,
    sessions: &Sessions,
    target: &Arc<Target>,
    headers: &HeaderMap,
    principal: &Principal,
) -> Result<Arc<Session>, ApiError> {
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
    find(ctx, sessions, target, id, principal).await
}

/// A new session's id: sealed when the replicas share a key and the
/// target's backend is shared (a `per_session` backend lives in this
/// process: its session cannot move), else random.
fn new_id(
    ctx: &Context,
    target: &Target,
    version: &str,
    principal: &Principal,
    hello: &ClientHello,
) -> String {
    let Some(sealer) = ctx.seal.as_deref().filter(|_| !target.per_session()) else {
        return session::new_session_id();
    };
    let now = crate::ids::unix_now();
    let max_age = ctx.session_max_age;
    let name = target.name();
    sealed::seal(sealer, max_age, now, name, version, principal, hello).unwrap_or_else(|| {
        warn!(
            target = name,
            "the client's capabilities are too large for a sealed session id (over {} bytes): \
             the session gets a random id, served by this replica only",
            sealed::MAX_ID_LEN
        );
        session::new_session_id()
    })
}

/// The session `id` of `principal` on `target`: the one this replica has,
/// or, for a sealed id this replica does not know, the session re-created
/// from the id (attached to this replica's backend of the target, within
/// the session limits). Anything else is 404: the client initializes
/// again.
async fn find(
    ctx: &Context,
    sessions: &Sessions,
    target: &Arc<Target>,
    id: &str,
    principal: &Principal,
) -> Result<Arc<Session>, ApiError> {
    let store = sessions_of(sessions, target)?;
    if let Some(session) = store.get_for(id, principal) {
        return Ok(session);
    }
    let Some(sealer) = ctx.seal.as_deref() else {
        return Err(session_not_found());
    };
    // Another principal's session here, or one its client ended here.
    if store.get(id).is_some() || store.was_ended(id) {
        return Err(session_not_found());
    }
    let now = crate::ids::unix_now();
    let opened = match sealed::open(sealer, id, now, target.name(), principal) {
        Ok(o) => o,
        Err(why) => {
            debug!(?why, "session id names no session this replica can serve");
            return Err(session_not_found());
        }
    };
    if target.per_session() {
        // Sealed ids are not given for per-session targets; one of a target
        // that was shared when it was made has no backend here.
        return Err(session_not_found());
    }
    let place = reserve(store, target, principal)?;
    let backend = target.shared_backend();
    if let Err(e) = bridge::ready(&backend.upstream, target.ready_timeout()).await {
        return Err(not_ready(&e, target.name()));
    }
    let client = Client::attach(backend, opened.hello, stream::stream_limits(&target.limits));
    let session = Arc::new(Session::new(
        id.to_owned(),
        opened.version,
        client,
        principal.clone(),
        target.clone(),
        None,
        ctx.shutdown.child_token(),
    ));
    match place.fill_unless_present(session.clone()) {
        Ok(()) => {
            info!(
                target = target.name(),
                principal = principal.as_str(),
                "session re-created from its sealed id"
            );
            Ok(session)
        }
        // A request of the same session made it meanwhile.
        Err(existing) => {
            session.client.close().await;
            if existing.principal == *principal {
                Ok(existing)
            } else {
                Err(session_not_found())
            }
        }
    }
}

/// A legacy `GET` or `DELETE`.
#[derive(Debug, Clone, Copy)]
pub(crate) enum SessionRequest {
    /// `GET`: open a stream of server-initiated messages, or resume one
    /// (`Last-Event-ID`).
    OpenStream,
    /// `DELETE`: end the session.
    End,
}

/// Answers a legacy session's `GET` or `DELETE`.
pub(crate) async fn session_request(
    ctx: &Context,
    sessions: &Sessions,
    target: &Arc<Target>,
    headers: &HeaderMap,
    principal: &Principal,
    request: SessionRequest,
    mut record: Record,
) -> Response {
    let session = match session_for(ctx, sessions, target, headers, principal).await {
        Ok(s) => s,
        Err(e) => return record.fail(e),
    };
    record.session(&session.id);
    match request {
        SessionRequest::OpenStream => stream::open(&session, target, headers, record),
        SessionRequest::End => {
            if let Ok(store) = sessions_of(sessions, target) {
                if let Some(session) = store.end(&session.id) {
                    session.close().await;
                }
            }
            record.outcome = Outcome::Ok;
            StatusCode::OK.into_response()
        }
    }
}
/// A place for a session of `principal` in `store`: 503 when the target
/// has `max_sessions_per_target` sessions open or being made, 429 when
/// `principal` has `max_sessions_per_principal` of them (one token cannot
/// lock the others out).
pub(super) fn reserve(
    store: &SessionStore,
    target: &Target,
    principal: &Principal,
) -> Result<session::Reservation, ApiError> {
    let limits = &target.limits;
    let full = match store.reserve(
        limits.max_sessions_per_target,
        limits.max_sessions_per_principal,
        principal,
    ) {
        Ok(place) => return Ok(place),
        Err(full) => full,
    };
    let (status, message) = match full {
        session::Full::Target => (
            StatusCode::SERVICE_UNAVAILABLE,
            format!(
                "target `{}` has {} sessions, its limit",
                target.name(),
                limits.max_sessions_per_target
            ),
        ),
        session::Full::Principal => (
            StatusCode::TOO_MANY_REQUESTS,
            format!(
                "this token has {} sessions on target `{}`, its limit; end one (DELETE) or wait for one to expire",
                limits.max_sessions_per_principal,
                target.name()
            ),
        ),
    };
    Err(ApiError::new(status, SERVER_ERROR, message)
        .with_header(header::RETRY_AFTER, HeaderValue::from_static("5")))
}

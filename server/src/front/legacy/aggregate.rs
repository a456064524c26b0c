//! `/mcp/{aggregate}` for legacy clients: one session of the aggregate is
//! one legacy session on each member, made by the members' own
//! `initialize` and named together in the aggregate's session id
//! (`mcpod-agg1.` and the members' ids, `.`-separated, empty for a member
//! not ready then). `initialize` is answered from the merged discovery,
//! lists from the members (merged and paged as for 2026-07-28 clients),
//! `ping` here; a named call, a read or a subscription goes to one member
//! as the member session's own request (prefix taken off; ids, progress,
//! log messages and server requests travel as on the member), and what
//! concerns the whole session — `logging/setLevel`, notifications
//! (`notifications/cancelled` by the caller's id), answers to server
//! requests, the GET stream, DELETE — goes to every member session.

use std::sync::Arc;

use axum::body::{Body, to_bytes};
use axum::response::{IntoResponse, Response};
use futures::StreamExt;
use http::{HeaderMap, HeaderValue, StatusCode, header};
use mcpod_core::Message;
use serde_json::Value;
use serde_json::value::RawValue;
use tracing::warn;

use super::super::context::Context;
use super::super::modern::aggregate::{by_name, by_uri, list, unknown_method, unroutable, uri_of};
use super::super::reply::reply;
use super::{LegacyPost, SessionRequest, Sessions, session_not_found};
use crate::aggregate::{self, Aggregate, Asking};
use crate::bridge::{self, Caller, ClientCaps};
use crate::config::Access;
use crate::ids::{Identity, Principal};
use crate::metrics::{MemberOutcome, Method, Operation, Outcome};
use crate::web::errors::{ApiError, INVALID_REQUEST, SERVER_ERROR, SESSION_NOT_FOUND, accepted};
use crate::web::headers::{self, Accept};
use crate::web::record::Record;

/// What an aggregate's session id starts with.
const SESSION_PREFIX: &str = "mcpod-agg1.";

/// Most bytes of a member's answer read when the gateway looks inside it
/// (an `initialize`, a `logging/setLevel`).
const MAX_MEMBER_ANSWER: usize = 1 << 20;

/// The list keys a 2026-07-28 result has and a legacy one does not.
const MODERN_LIST_KEYS: &[&str] = &["resultType", "cacheScope", "ttlMs"];

/// A legacy client's request to an aggregate: who sent it, and what of
/// the aggregate (`access`, over its prefixed names) they may use.
pub(crate) struct AggregatePost<'a> {
    /// The request's headers.
    pub(crate) headers: &'a HeaderMap,
    /// Its JSON-RPC message.
    pub(crate) msg: &'a Message<'a>,
    /// Who sent it.
    pub(crate) principal: Principal,
    /// Who sent it, for the members' own policies.
    pub(crate) identity: Identity,
    /// The aggregate's policy for them.
    pub(crate) access: Access,
}

/// The aggregate's session id over the members' (`None`: left out).
fn session_id(members: &[Option<String>]) -> String {
    let parts: Vec<&str> = members.iter().map(|m| m.as_deref().unwrap_or("")).collect();
    format!("{SESSION_PREFIX}{}", parts.join("."))
}

/// The members' session ids an aggregate session id names (`None`: not
/// one of this aggregate's).
fn member_ids(id: &str, members: usize) -> Option<Vec<Option<&str>>> {
    let ids: Vec<Option<&str>> = id
        .strip_prefix(SESSION_PREFIX)?
        .split('.')
        .map(|p| (!p.is_empty()).then_some(p))
        .collect();
    (ids.len() == members && ids.iter().any(Option::is_some)).then_some(ids)
}

/// `headers` as member session `id` gets them.
fn member_headers(headers: &HeaderMap, id: &str) -> Option<HeaderMap> {
    let mut own = headers.clone();
    own.insert(headers::SESSION_ID, HeaderValue::from_str(id).ok()?);
    // Each member numbers its own events: a merged stream starts afresh.
    own.remove("last-event-id");
    Some(own)
}

/// A record of the gateway's request to a member, counted under it.
fn member_record(ctx: &Context, target: &str, method: &str) -> Record {
    let mut record = Record::rpc(&ctx.metrics, target);
    record.method(Method::of(method), method);
    record
}

/// Handles a legacy client's POST to an aggregate.
pub(crate) async fn post(
    ctx: &Context,
    sessions: &Sessions,
    aggregate: Arc<Aggregate>,
    request: AggregatePost<'_>,
    mut record: Record,
) -> Response {
    let id = match request.msg {
        Message::Request { id, .. } => Some(*id),
        _ => None,
    };
    if let Some(why) = aggregate.refused() {
        return record
            .fail(ApiError::new(StatusCode::SERVICE_UNAVAILABLE, SERVER_ERROR, why).with_id(id));
    }
    if let Message::Request { id, method, params } = request.msg {
        if method == "initialize" {
            return initialize(ctx, sessions, &aggregate, &request, id, *params, record).await;
        }
    }
    let ids = match request_ids(request.headers, &aggregate) {
        Ok(ids) => ids,
        Err(e) => return record.fail(e),
    };
    if let Err(e) = find_all(ctx, sessions, &aggregate, &ids, &request.principal).await {
        return record.fail(e.with_id(id));
    }
    let Message::Request { id, method, params } = request.msg else {
        // Notifications and answers concern the whole session.
        let answers = to_every_member(ctx, sessions, &aggregate, &ids, &request).await;
        record.outcome = if answers.iter().any(|r| r.status().is_success()) {
            Outcome::Ok
        } else {
            Outcome::Error
        };
        return accepted();
    };
    let accept = Accept::from_headers(request.headers);
    if let Some(why) = bridge::refusal(&request.access, method, *params) {
        record.outcome = Outcome::Forbidden;
        let frame = mcpod_core::json::error_frame(id.get(), bridge::DENIED, &why, None);
        return reply(frame, accept.json);
    }
    let parsed: Value = params
        .and_then(|p| serde_json::from_str(p.get()).ok())
        .unwrap_or_else(|| Value::Object(serde_json::Map::new()));
    let ask = Asking {
        id: (*id).to_owned(),
        params: params.map(|p| p.to_owned()),
        caller: Caller::Stateless {
            caps: ClientCaps::from_raw(None),
            log_level: None,
            preset: std::collections::HashMap::new(),
        },
        inputs: ctx.inputs.clone(),
        identity: Some(request.identity.clone()),
        metrics: ctx.metrics.clone(),
    };
    match method.as_ref() {
        "ping" => {
            record.outcome = Outcome::Ok;
            let empty = mcpod_core::json::to_raw(&serde_json::json!({}));
            return reply(
                mcpod_core::json::result_frame(id.get(), &empty),
                accept.json,
            );
        }
        "logging/setLevel" => {
            let answers = to_every_member(ctx, sessions, &aggregate, &ids, &request).await;
            return set_level(id, answers, accept, record).await;
        }
        m => {
            if let Some((key, prefixed)) = aggregate::list_of(m) {
                let cursor = parsed.get("cursor").and_then(Value::as_str);
                return match list(&aggregate, m, key, prefixed, cursor, &ask).await {
                    Ok(result) => {
                        record.outcome = Outcome::Ok;
                        let legacy =
                            mcpod_core::json::edit_object(result.get(), &[], MODERN_LIST_KEYS)
                                .unwrap_or_else(|| result.get().to_owned());
                        let legacy = RawValue::from_string(legacy).unwrap_or(result);
                        let frame = mcpod_core::json::result_frame(id.get(), &legacy);
                        reply(bridge::filter_list(&request.access, m, frame), accept.json)
                    }
                    Err(e) => record.fail(e.with_id(Some(id))),
                };
            }
        }
    }
    let routed = match method.as_ref() {
        "tools/call" | "prompts/get" | "completion/complete"
            if uri_of(method, &parsed).is_none() =>
        {
            by_name(&aggregate, method, parsed, id)
        }
        "resources/read"
        | "completion/complete"
        | "resources/subscribe"
        | "resources/unsubscribe" => {
            let uri = uri_of(method, &parsed)
                .or_else(|| parsed.get("uri").and_then(Value::as_str))
                .map(str::to_owned);
            match uri {
                Some(uri) => by_uri(&aggregate, &uri, &ask).await.map(|i| (i, parsed)),
                None => Err(unroutable(id, format!("{method} needs a resource URI"))),
            }
        }
        other => Err(unknown_method(&aggregate, other, id)),
    };
    let (index, params) = match routed {
        Ok(r) => r,
        Err(e) => return record.fail(e),
    };
    let Some(member_id) = ids.get(index).copied().flatten() else {
        let member = aggregate
            .member(index)
            .map_or("?", |(m, _)| m.target.as_str());
        return record.fail(
            ApiError::new(
                StatusCode::SERVICE_UNAVAILABLE,
                SERVER_ERROR,
                format!(
                    "member `{member}` of aggregate `{}` was not ready when this session began; \
                     initialize again to reach it",
                    aggregate.name()
                ),
            )
            .with_id(Some(id)),
        );
    };
    let frame =
        mcpod_core::json::request_frame(id.get(), method, Some(&mcpod_core::json::to_raw(&params)));
    let Ok(msg) = Message::parse(&frame) else {
        return record.fail(ApiError::bad_request(
            INVALID_REQUEST,
            "the renamed request does not parse",
        ));
    };
    let Some((member, target)) = aggregate.member(index) else {
        return record.fail(ApiError::bad_request(INVALID_REQUEST, "no such member"));
    };
    let Some(headers) = member_headers(request.headers, member_id) else {
        return record.fail(session_not_found());
    };
    let own = LegacyPost {
        headers: &headers,
        msg: &msg,
        principal: request.principal.clone(),
        access: Access::of(target.config.policy.as_ref(), request.identity.clone()),
    };
    let mut response = super::post(ctx, sessions, target.clone(), own, record).await;
    let outcome = if response.status().is_success() {
        MemberOutcome::Ok
    } else {
        MemberOutcome::Error
    };
    ctx.metrics
        .members
        .record(aggregate.name(), &member.target, outcome);
    set_session_header(&mut response, request.headers);
    response
}

/// The member session ids a request's `Mcp-Session-Id` names, or the
/// error to answer.
fn request_ids<'h>(
    headers: &'h HeaderMap,
    aggregate: &Aggregate,
) -> Result<Vec<Option<&'h str>>, ApiError> {
    match headers::session_id(headers) {
        Ok(Some(id)) => member_ids(id, aggregate.len()).ok_or_else(session_not_found),
        Ok(None) => Err(ApiError::bad_request(
            INVALID_REQUEST,
            "missing Mcp-Session-Id header (send initialize first)",
        )),
        Err(p) => Err(ApiError::bad_request(INVALID_REQUEST, p.to_string())),
    }
}

/// Finds (and keeps alive) every member session of `ids`: what the
/// gateway answers itself (`ping`, lists) is for a live session only.
async fn find_all(
    ctx: &Context,
    sessions: &Sessions,
    aggregate: &Aggregate,
    ids: &[Option<&str>],
    principal: &Principal,
) -> Result<(), ApiError> {
    for (index, id) in ids.iter().enumerate() {
        let (Some((_, target)), Some(id)) = (aggregate.member(index), id) else {
            continue;
        };
        super::find(ctx, sessions, target, id, principal)
            .await?
            .touch();
    }
    Ok(())
}

/// A member's answer carries the aggregate's session id, not its own.
fn set_session_header(response: &mut Response, headers: &HeaderMap) {
    if let Some(id) = headers.get(headers::SESSION_ID) {
        if response.headers().contains_key(headers::SESSION_ID) {
            response
                .headers_mut()
                .insert(headers::SESSION_ID, id.clone());
        }
    }
}

/// The request as it is, to every member session of `ids`, at once (each
/// within `member_timeout`); their answers.
async fn to_every_member(
    ctx: &Context,
    sessions: &Sessions,
    aggregate: &Aggregate,
    ids: &[Option<&str>],
    request: &AggregatePost<'_>,
) -> Vec<Response> {
    let timeout = aggregate.config.member_timeout;
    let method = request.msg.method().unwrap_or("response");
    let asked = ids.iter().enumerate().filter_map(|(index, id)| {
        let (member, target) = aggregate.member(index)?;
        let headers = member_headers(request.headers, (*id)?)?;
        Some(async move {
            let own = LegacyPost {
                headers: &headers,
                msg: request.msg,
                principal: request.principal.clone(),
                access: Access::of(target.config.policy.as_ref(), request.identity.clone()),
            };
            let record = member_record(ctx, target.name(), method);
            let sent = super::post(ctx, sessions, target.clone(), own, record);
            let answer = tokio::time::timeout(timeout, sent).await.ok();
            let outcome = match &answer {
                Some(r) if r.status().is_success() => MemberOutcome::Ok,
                Some(_) => MemberOutcome::Error,
                None => MemberOutcome::Omitted,
            };
            if outcome != MemberOutcome::Ok {
                warn!(aggregate = aggregate.name(), member = %member.target, method, "member session did not take the request");
            }
            ctx.metrics
                .members
                .record(aggregate.name(), &member.target, outcome);
            answer
        })
    });
    futures::future::join_all(asked)
        .await
        .into_iter()
        .flatten()
        .collect()
}

/// The answer to `logging/setLevel` from the members': the first error
/// one gave, else an empty result.
async fn set_level(
    id: &RawValue,
    answers: Vec<Response>,
    accept: Accept,
    mut record: Record,
) -> Response {
    for answer in answers {
        let Ok(body) = to_bytes(answer.into_body(), MAX_MEMBER_ANSWER).await else {
            continue;
        };
        let error = last_message(&body).and_then(|m| m.get("error").cloned());
        if let Some(error) = error {
            record.outcome = Outcome::Error;
            let code = error.get("code").and_then(Value::as_i64).unwrap_or(-32603);
            let text = error.get("message").and_then(Value::as_str).unwrap_or("");
            return reply(
                mcpod_core::json::error_frame(id.get(), code, text, None),
                accept.json,
            );
        }
    }
    record.outcome = Outcome::Ok;
    let empty = mcpod_core::json::to_raw(&serde_json::json!({}));
    reply(
        mcpod_core::json::result_frame(id.get(), &empty),
        accept.json,
    )
}

/// The last JSON-RPC message of a JSON or SSE body.
fn last_message(body: &[u8]) -> Option<Value> {
    let text = std::str::from_utf8(body).ok()?;
    if let Ok(v) = serde_json::from_str(text) {
        return Some(v);
    }
    text.lines()
        .rev()
        .filter_map(|l| l.strip_prefix("data:"))
        .find_map(|d| serde_json::from_str(d.trim()).ok())
}

/// A legacy `initialize` of the aggregate: a session on every member (the
/// members' own handshakes, each within `member_timeout`; one not ready
/// is left out of the session), answered with the merged discovery.
async fn initialize(
    ctx: &Context,
    sessions: &Sessions,
    aggregate: &Aggregate,
    request: &AggregatePost<'_>,
    id: &RawValue,
    params: Option<&RawValue>,
    mut record: Record,
) -> Response {
    let accept = Accept::from_headers(request.headers);
    if !accept.json && !accept.sse {
        return record.fail(super::not_acceptable(Some(id)));
    }
    let mut headers = request.headers.clone();
    headers.remove(headers::SESSION_ID);
    let timeout = aggregate.config.member_timeout;
    let made = futures::future::join_all((0..aggregate.len()).map(|index| {
        let headers = &headers;
        async move {
            let (member, target) = aggregate.member(index)?;
            let own = LegacyPost {
                headers,
                msg: request.msg,
                principal: request.principal.clone(),
                access: Access::of(target.config.policy.as_ref(), request.identity.clone()),
            };
            let record = member_record(ctx, target.name(), "initialize");
            let sent = super::post(ctx, sessions, target.clone(), own, record);
            let session = tokio::time::timeout(timeout, sent)
                .await
                .ok()
                .filter(|r| r.status().is_success())
                .and_then(|r| {
                    let id = r.headers().get(headers::SESSION_ID)?.to_str().ok()?;
                    Some(id.to_owned())
                });
            let outcome = if session.is_some() {
                MemberOutcome::Ok
            } else {
                warn!(aggregate = aggregate.name(), member = %member.target, "member not ready, left out of the legacy session");
                MemberOutcome::Omitted
            };
            ctx.metrics
                .members
                .record(aggregate.name(), &member.target, outcome);
            session
        }
    }))
    .await;
    if made.iter().all(Option::is_none) {
        return record.fail(
            ApiError::new(
                StatusCode::SERVICE_UNAVAILABLE,
                SERVER_ERROR,
                format!(
                    "no member of aggregate `{}` could start a session",
                    aggregate.name()
                ),
            )
            .with_id(Some(id)),
        );
    }
    let infos = aggregate::discoveries(aggregate, &ctx.metrics).await;
    let members: Vec<(&str, Option<&mcpod_core::BackendInfo>)> = aggregate
        .config
        .members
        .iter()
        .zip(&infos)
        .zip(&made)
        .map(|((m, i), s)| (m.target.as_str(), s.as_ref().and(i.as_deref())))
        .collect();
    let info = aggregate::discovery(aggregate.name(), &members);
    #[derive(serde::Deserialize)]
    struct Requested {
        #[serde(rename = "protocolVersion", default)]
        protocol_version: Option<String>,
    }
    let requested = params
        .and_then(|p| serde_json::from_str::<Requested>(p.get()).ok())
        .and_then(|r| r.protocol_version);
    let version = bridge::negotiate(requested.as_deref());
    record.outcome = Outcome::Ok;
    let frame =
        mcpod_core::json::result_frame(id.get(), &bridge::initialize_result(&info, version));
    let mut response = reply(frame, accept.json);
    if let Ok(v) = HeaderValue::from_str(&session_id(&made)) {
        response.headers_mut().insert(headers::SESSION_ID, v);
    }
    response
}

/// A legacy `GET` or `DELETE` of an aggregate's session: every member
/// session's stream merged into one, or every member session ended.
pub(crate) async fn session_request(
    ctx: &Context,
    sessions: &Sessions,
    aggregate: &Aggregate,
    headers: &HeaderMap,
    principal: &Principal,
    request: SessionRequest,
    mut record: Record,
) -> Response {
    let ids = match request_ids(headers, aggregate) {
        Ok(ids) => ids,
        Err(e) => return record.fail(e),
    };
    let operation = match request {
        SessionRequest::OpenStream => Operation::OpenStream,
        SessionRequest::End => Operation::EndSession,
    };
    let answers = futures::future::join_all(ids.iter().enumerate().filter_map(|(index, id)| {
        let (_, target) = aggregate.member(index)?;
        let own = member_headers(headers, (*id)?)?;
        Some(async move {
            let record = Record::new(&ctx.metrics, target.name(), operation);
            super::session_request(ctx, sessions, target, &own, principal, request, record).await
        })
    }))
    .await;
    let (ok, refused): (Vec<Response>, Vec<Response>) =
        answers.into_iter().partition(|r| r.status().is_success());
    if ok.is_empty() {
        record.outcome = Outcome::Error;
        return refused.into_iter().next().unwrap_or_else(|| {
            ApiError::new(
                StatusCode::NOT_FOUND,
                SESSION_NOT_FOUND,
                "session not found or expired; initialize again",
            )
            .into_response()
        });
    }
    record.outcome = Outcome::Ok;
    match request {
        SessionRequest::End => StatusCode::OK.into_response(),
        SessionRequest::OpenStream => {
            let mut streams = Vec::with_capacity(ok.len());
            let mut head = None;
            for response in ok {
                let (parts, body) = response.into_parts();
                head.get_or_insert(parts);
                streams.push(body.into_data_stream());
            }
            let Some(mut parts) = head else {
                return StatusCode::INTERNAL_SERVER_ERROR.into_response();
            };
            if let Some(id) = headers.get(headers::SESSION_ID) {
                parts.headers.insert(headers::SESSION_ID, id.clone());
            }
            parts.headers.remove(header::CONTENT_LENGTH);
            let merged = futures::stream::select_all(streams).boxed();
            Response::from_parts(parts, Body::from_stream(merged))
        }
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;

    #[test]
    fn a_session_id_names_each_members_session_or_none() {
        let id = session_id(&[Some("a1".into()), None, Some("c-3_x".into())]);
        assert_eq!(id, "mcpod-agg1.a1..c-3_x");
        assert_eq!(
            member_ids(&id, 3).unwrap(),
            [Some("a1"), None, Some("c-3_x")]
        );
        assert_eq!(member_ids(&id, 2), None, "another aggregate's");
        assert_eq!(member_ids("mcpod-agg1...", 3), None, "no member at all");
        assert_eq!(member_ids("a1.b.c", 3), None);
    }
}

//! `/mcp/{aggregate}` for 2026-07-28 clients: `server/discover` and the
//! lists answered from the members (merged, paged across them), and every
//! call routed to one member — by the prefix of the name it gives, or by
//! the resource URI — as the member's own request on its plain-target
//! path (progress, log messages, `input_required` rounds and cancellation
//! by closing the stream travel as they do there).

use std::sync::Arc;

use axum::response::{IntoResponse, Response};
use base64::Engine;
use futures::StreamExt;
use http::{HeaderMap, HeaderValue, StatusCode};
use mcpod_core::meta::RequestMeta;
use mcpod_core::{MODERN_VERSIONS, Message};
use serde_json::Value;
use serde_json::value::RawValue;

use super::super::context::Context;
use super::super::refusals::unsupported_version;
use super::super::reply::reply;
use super::{ModernPost, checks, invalid_params};
use crate::aggregate::{self, Aggregate, Asking, Owner, Part};
use crate::bridge::{self, Caller, ClientCaps};
use crate::config::Access;
use crate::ids::Identity;
use crate::metrics::{MemberOutcome, Outcome};
use crate::web::errors::{
    ApiError, INTERNAL_ERROR, INVALID_PARAMS, INVALID_REQUEST, METHOD_NOT_FOUND, SERVER_ERROR,
    accepted,
};
use crate::web::headers::{self, Accept};
use crate::web::record::Record;

/// Why a request cannot go to one member.
pub(in crate::front) fn unroutable(id: &RawValue, message: String) -> ApiError {
    ApiError::bad_request(INVALID_PARAMS, message).with_id(Some(id))
}

/// A method an aggregate does not serve (404, -32601).
pub(in crate::front) fn unknown_method(
    aggregate: &Aggregate,
    method: &str,
    id: &RawValue,
) -> ApiError {
    ApiError::new(
        StatusCode::NOT_FOUND,
        METHOD_NOT_FOUND,
        format!(
            "method not found: {method} (aggregate `{}`)",
            aggregate.name()
        ),
    )
    .with_id(Some(id))
}

/// `value` as an `Mcp-Name` header: plain when it is visible ASCII, else
/// base64-wrapped.
fn name_header(value: &str) -> Option<HeaderValue> {
    if !value.is_empty() && value.bytes().all(|b| b.is_ascii_graphic() || b == b' ') {
        HeaderValue::from_str(value).ok()
    } else {
        let b64 = base64::engine::general_purpose::STANDARD.encode(value);
        HeaderValue::from_str(&format!("=?base64?{b64}?=")).ok()
    }
}

/// Handles a modern client's POST to an aggregate (`identity`: who sent
/// it, for the members' own policies; `request.access` is the
/// aggregate's, over its prefixed names).
pub(crate) async fn post(
    ctx: &Context,
    aggregate: Arc<Aggregate>,
    request: ModernPost<'_>,
    identity: Identity,
    mut record: Record,
) -> Response {
    let (id, method, raw_params) = match request.msg {
        Message::Request { id, method, params } => (Some(*id), method.as_ref(), *params),
        Message::Notification { method, params } => (None, method.as_ref(), *params),
        Message::Response { .. } | Message::Error { .. } => {
            return record.fail(ApiError::bad_request(
                INVALID_REQUEST,
                "a 2026-07-28 client has no server requests to answer",
            ));
        }
    };
    if let Some(why) = aggregate.refused() {
        return record
            .fail(ApiError::new(StatusCode::SERVICE_UNAVAILABLE, SERVER_ERROR, why).with_id(id));
    }
    let Some(version) = request.version.clone() else {
        return record.fail(checks::missing_version(id));
    };
    if !MODERN_VERSIONS.contains(&version.as_str()) {
        return record.fail(unsupported_version(&version, id, MODERN_VERSIONS));
    }
    let meta = match &request.meta {
        Ok(m) => m,
        Err(e) => {
            return record.fail(
                ApiError::bad_request(INVALID_PARAMS, format!("invalid params: {e}")).with_id(id),
            );
        }
    };
    let params: Value = match raw_params.map(|p| serde_json::from_str(p.get())) {
        Some(Ok(p)) => p,
        Some(Err(e)) => return record.fail(invalid_params(e, id)),
        None => Value::Object(serde_json::Map::new()),
    };
    let name = params.get("name").and_then(Value::as_str);
    let uri = params.get("uri").and_then(Value::as_str);
    let named = checks::Named {
        meta_version: meta.protocol_version.as_deref(),
        has_capabilities: meta.client_capabilities.is_some(),
        name,
        uri,
    };
    if let Err(e) = checks::check_headers(request.headers, method, &named, &version, id) {
        return record.fail(e);
    }
    let Some(id) = id else {
        // Stateless clients cancel by closing the stream; nothing else a
        // client notifies concerns one member.
        record.outcome = Outcome::Ok;
        return accepted();
    };
    let accept = Accept::from_headers(request.headers);
    if !accept.json && !accept.sse {
        return record.fail(
            ApiError::new(
                StatusCode::NOT_ACCEPTABLE,
                INVALID_REQUEST,
                "Accept must include application/json or text/event-stream",
            )
            .with_id(Some(id)),
        );
    }
    if let Some(why) = bridge::refusal(&request.access, method, raw_params) {
        record.outcome = Outcome::Forbidden;
        let frame = mcpod_core::json::error_frame(id.get(), bridge::DENIED, &why, None);
        return reply(frame, accept.json);
    }
    let ask = Asking {
        id: id.to_owned(),
        params: raw_params.map(|p| p.to_owned()),
        caller: Caller::Stateless {
            caps: ClientCaps::from_raw(meta.client_capabilities),
            log_level: None,
            preset: std::collections::HashMap::new(),
        },
        inputs: ctx.inputs.clone(),
        identity: Some(identity.clone()),
        metrics: ctx.metrics.clone(),
    };
    if method == "server/discover" {
        let infos = aggregate::discoveries(&aggregate, &ctx.metrics).await;
        let members: Vec<(&str, Option<&mcpod_core::BackendInfo>)> = aggregate
            .config
            .members
            .iter()
            .zip(&infos)
            .map(|(m, i)| (m.target.as_str(), i.as_deref()))
            .collect();
        let info = aggregate::discovery(aggregate.name(), &members);
        record.outcome = Outcome::Ok;
        let frame = mcpod_core::json::result_frame(id.get(), &bridge::discover_result(&info));
        return reply(frame, accept.json);
    }
    if let Some((key, prefixed)) = aggregate::list_of(method) {
        let cursor = params.get("cursor").and_then(Value::as_str);
        let frame = match list(&aggregate, method, key, prefixed, cursor, &ask).await {
            Ok(result) => {
                record.outcome = Outcome::Ok;
                let frame = mcpod_core::json::result_frame(id.get(), &result);
                bridge::filter_list(&request.access, method, frame)
            }
            Err(e) => return record.fail(e.with_id(Some(id))),
        };
        return reply(frame, accept.json);
    }
    if method == "subscriptions/listen" {
        if !accept.sse {
            return record.fail(
                ApiError::new(
                    StatusCode::NOT_ACCEPTABLE,
                    INVALID_REQUEST,
                    "subscriptions/listen answers with an event stream: Accept must include text/event-stream",
                )
                .with_id(Some(id)),
            );
        }
        record.outcome = Outcome::Ok;
        return listen(ctx, &aggregate, request, identity).await;
    }
    let routed = match method {
        "tools/call" | "prompts/get" | "completion/complete"
            if uri_of(method, &params).is_none() =>
        {
            by_name(&aggregate, method, params, id)
        }
        "resources/read" | "completion/complete" => match uri_of(method, &params) {
            Some(uri) => by_uri(&aggregate, uri, &ask).await.map(|i| (i, params)),
            None => Err(unroutable(id, format!("{method} needs a resource URI"))),
        },
        other => Err(unknown_method(&aggregate, other, id)),
    };
    let (index, params) = match routed {
        Ok(r) => r,
        Err(e) => return record.fail(e),
    };
    forward(
        ctx, &aggregate, index, method, params, request, identity, record,
    )
    .await
}

/// The resource URI a request routes by: `uri` of `resources/read`,
/// `ref.uri` of a `completion/complete` for a resource template.
pub(in crate::front) fn uri_of<'a>(method: &str, params: &'a Value) -> Option<&'a str> {
    match method {
        "resources/read" => params.get("uri")?.as_str(),
        "completion/complete" => {
            let r = params.get("ref")?;
            (r.get("type")?.as_str()? == "ref/resource")
                .then(|| r.get("uri")?.as_str())
                .flatten()
        }
        _ => None,
    }
}

/// The member a named call goes to, and its params with the member's own
/// name.
pub(in crate::front) fn by_name(
    aggregate: &Aggregate,
    method: &str,
    params: Value,
    id: &RawValue,
) -> Result<(usize, Value), ApiError> {
    let name = aggregate::routed_name(method, &params)
        .ok_or_else(|| unroutable(id, format!("{method} needs a name")))?;
    let (index, own) = aggregate.route(&name).ok_or_else(|| {
        unroutable(
            id,
            format!(
                "`{name}` has no member's prefix in aggregate `{}`",
                aggregate.name()
            ),
        )
    })?;
    let own = own.to_owned();
    Ok((index, aggregate::with_name(method, params, &own)))
}

/// The member a resource URI goes to: as the members' listings say, read
/// again in whole when they do not know it yet.
pub(in crate::front) async fn by_uri(
    aggregate: &Aggregate,
    uri: &str,
    ask: &Asking,
) -> Result<usize, ApiError> {
    let mut owner = aggregate.owner_of(uri);
    if owner == Owner::Unknown {
        aggregate::whole(aggregate, "resources/list", ask).await;
        aggregate::whole(aggregate, "resources/templates/list", ask).await;
        owner = aggregate.owner_of(uri);
    }
    let id = ask.id.as_ref();
    let name = |i: usize| aggregate.member(i).map_or("?", |(m, _)| m.target.as_str());
    match owner {
        Owner::Member(i) => Ok(i),
        Owner::Ambiguous(who) => {
            let names: Vec<&str> = who.into_iter().map(name).collect();
            Err(unroutable(
                id,
                format!(
                    "resource `{uri}` is claimed by members {} of aggregate `{}` alike; \
                     read it on one of them directly",
                    names.join(", "),
                    aggregate.name()
                ),
            ))
        }
        Owner::Unknown => Err(unroutable(
            id,
            format!(
                "no member of aggregate `{}` lists resource `{uri}` or has a template matching it",
                aggregate.name()
            ),
        )),
    }
}

/// A page of the aggregate's list `method`.
pub(in crate::front) async fn list(
    aggregate: &Aggregate,
    method: &str,
    key: &str,
    prefixed: bool,
    cursor: Option<&str>,
    ask: &Asking,
) -> Result<Box<RawValue>, ApiError> {
    let resumes = match cursor {
        Some(c) => aggregate::decode_cursor(c, aggregate.len())
            .map_err(|why| ApiError::bad_request(INVALID_PARAMS, why))?,
        None => (0..aggregate.len()).map(|i| (i, None)).collect(),
    };
    let parts: Vec<(usize, Part)> = aggregate::page(aggregate, method, resumes, ask).await;
    let mut result = aggregate::merge(key, prefixed, &aggregate.named(), parts).map_err(|c| {
        ApiError::bad_request(
            INTERNAL_ERROR,
            format!("aggregate `{}`: {c}", aggregate.name()),
        )
    })?;
    if let Some(obj) = result.as_object_mut() {
        obj.insert("resultType".into(), Value::from("complete"));
        // Merged for this caller (members' policies filter their parts).
        obj.insert("cacheScope".into(), Value::from("private"));
        obj.insert("ttlMs".into(), Value::from(0));
    }
    Ok(mcpod_core::json::to_raw(&result))
}

/// The request, renamed for member `index`, on the member's own path.
#[allow(clippy::too_many_arguments)] // the request's parts, as the member gets them
async fn forward(
    ctx: &Context,
    aggregate: &Aggregate,
    index: usize,
    method: &str,
    params: Value,
    request: ModernPost<'_>,
    identity: Identity,
    mut record: Record,
) -> Response {
    let Some((member, target)) = aggregate.member(index) else {
        return record.fail(ApiError::bad_request(INTERNAL_ERROR, "no such member"));
    };
    let Message::Request { id, .. } = request.msg else {
        return record.fail(ApiError::bad_request(INVALID_REQUEST, "not a request"));
    };
    let frame =
        mcpod_core::json::request_frame(id.get(), method, Some(&mcpod_core::json::to_raw(&params)));
    let Ok(msg) = Message::parse(&frame) else {
        return record.fail(ApiError::bad_request(
            INTERNAL_ERROR,
            "the renamed request does not parse",
        ));
    };
    let mut member_headers: HeaderMap = request.headers.clone();
    let own_name = params.get("name").and_then(Value::as_str);
    if let Some(value) = own_name.and_then(name_header) {
        if member_headers.contains_key(headers::MCP_NAME) {
            member_headers.insert(headers::MCP_NAME, value);
        }
    }
    let meta = RequestMeta::read(match &msg {
        Message::Request { params, .. } => *params,
        _ => None,
    });
    let forwarded = ModernPost {
        headers: &member_headers,
        msg: &msg,
        meta,
        version: request.version,
        principal: request.principal,
        access: Access::of(target.config.policy.as_ref(), identity),
    };
    let response = super::post(ctx, target.clone(), forwarded, record).await;
    let outcome = if response.status().is_success() {
        MemberOutcome::Ok
    } else {
        MemberOutcome::Error
    };
    ctx.metrics
        .members
        .record(aggregate.name(), &member.target, outcome);
    response
}

/// The method of a listen's acknowledgement.
const ACKNOWLEDGED: &[u8] = b"notifications/subscriptions/acknowledged";

/// A listen on every member at once, their streams fanned into one: the
/// first acknowledgement, then every member's notifications (a member's
/// list change is the aggregate's). A member whose listen is refused is
/// left out, and counted.
async fn listen(
    ctx: &Context,
    aggregate: &Aggregate,
    request: ModernPost<'_>,
    identity: Identity,
) -> Response {
    let timeout = aggregate.config.member_timeout;
    let opened = futures::future::join_all((0..aggregate.len()).map(|index| {
        let request = &request;
        let identity = &identity;
        async move {
            let (member, target) = aggregate.member(index)?;
            let meta = RequestMeta::read(match request.msg {
                Message::Request { params, .. } => *params,
                _ => None,
            });
            let own = ModernPost {
                headers: request.headers,
                msg: request.msg,
                meta,
                version: request.version.clone(),
                principal: request.principal.clone(),
                access: Access::of(target.config.policy.as_ref(), identity.clone()),
            };
            let mut record = Record::rpc(&ctx.metrics, target.name());
            record.method(
                crate::metrics::Method::of("subscriptions/listen"),
                "subscriptions/listen",
            );
            let response = tokio::time::timeout(timeout, super::post(ctx, target.clone(), own, record))
                .await
                .ok()
                .filter(|r| {
                    r.status().is_success()
                        && r.headers()
                            .get(http::header::CONTENT_TYPE)
                            .is_some_and(|c| c.as_bytes().starts_with(b"text/event-stream"))
                });
            let outcome = if response.is_some() {
                MemberOutcome::Ok
            } else {
                tracing::warn!(aggregate = aggregate.name(), member = %member.target, "member's listen refused or slow, left out");
                MemberOutcome::Omitted
            };
            ctx.metrics
                .members
                .record(aggregate.name(), &member.target, outcome);
            response
        }
    }))
    .await;
    let mut streams = Vec::with_capacity(aggregate.len());
    let mut head = None;
    for response in opened.into_iter().flatten() {
        let (parts, body) = response.into_parts();
        head.get_or_insert(parts);
        streams.push(body.into_data_stream());
    }
    let Some(parts) = head else {
        let id = match request.msg {
            Message::Request { id, .. } => Some(*id),
            _ => None,
        };
        return ApiError::new(
            StatusCode::SERVICE_UNAVAILABLE,
            SERVER_ERROR,
            format!("no member of aggregate `{}` could listen", aggregate.name()),
        )
        .with_id(id)
        .into_response();
    };
    let mut acknowledged = false;
    let merged = futures::stream::select_all(streams).filter(move |chunk| {
        let keep = match chunk {
            Ok(bytes) if memchr::memmem::find(bytes, ACKNOWLEDGED).is_some() => {
                !std::mem::replace(&mut acknowledged, true)
            }
            _ => true,
        };
        std::future::ready(keep)
    });
    Response::from_parts(parts, axum::body::Body::from_stream(merged))
}

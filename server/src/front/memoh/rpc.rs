//! One JSON-RPC exchange under the Memoh contract.

use std::sync::Arc;

use axum::body::Body;
use axum::response::Response;
use http::{HeaderMap, StatusCode};
use mcpod_core::envelope::EnvelopeError;
use mcpod_core::json::error_frame;
use mcpod_core::{Id, Message};
use mcpod_tokio::{OwnedRequest, RequestOptions};
use serde::Deserialize;

use serde_json::Value;
use serde_json::value::RawValue;

use super::super::context::Context;
use super::super::modern::aggregate::{by_name, list};
use crate::aggregate::{self, Aggregate, Asking};
use crate::bridge::{self, Caller, Exchange, Slots};
use crate::config::{Access, Limits};
use crate::ids::Identity;
use crate::metrics::MemberOutcome;
use crate::metrics::{Method, Outcome};
use crate::targets::{Backend, Target};
use crate::web::body::read_json_body;
use crate::web::errors::{ApiError, METHOD_NOT_FOUND};
use crate::web::errors::{INTERNAL_ERROR, INVALID_REQUEST, accepted, json_response, message};
use crate::web::record::Record;

/// What serves a bot's `fs-mcp` route.
pub(crate) enum Served {
    /// A target, on `backend`, with the caller's `access` to it.
    Target {
        /// The target.
        target: Arc<Target>,
        /// Its backend for this bot.
        backend: Arc<Backend>,
        /// What the caller may see and use of it.
        access: Access,
    },
    /// An aggregate: `initialize` and `tools/list` (and the other lists)
    /// answered from its members, named calls routed to one by prefix.
    Aggregate {
        /// The aggregate.
        aggregate: Arc<Aggregate>,
        /// Who asks, for the members' own policies.
        identity: Identity,
    },
}

impl Served {
    fn name(&self) -> &str {
        match self {
            Served::Target { target, .. } => target.name(),
            Served::Aggregate { aggregate, .. } => aggregate.name(),
        }
    }
}

/// One JSON-RPC exchange under the Memoh contract, with what `served`
/// names: a JSON body (415 otherwise, as on `/mcp`), errors before
/// JSON-RPC as `{"message": …}`.
pub(crate) async fn rpc(
    ctx: &Context,
    served: Served,
    headers: &HeaderMap,
    body: Body,
    limits: &Limits,
) -> Response {
    let mut record = Record::rpc(&ctx.metrics, served.name());
    let body = match read_json_body(headers, body, limits).await {
        Ok(b) => b,
        Err(e) => {
            record.outcome = e.outcome();
            return message(e.status, e.message);
        }
    };
    let msg = match Message::parse(&body) {
        Ok(m) => m,
        Err(e @ (EnvelopeError::NotJson(_) | EnvelopeError::NotUtf8)) => {
            record.outcome = Outcome::Rejected;
            return message(StatusCode::BAD_REQUEST, e.to_string());
        }
        Err(e) => {
            record.outcome = Outcome::Rejected;
            let id = Message::recover_id(&body);
            let code = e.code();
            let text = match e {
                EnvelopeError::BadVersion => "invalid jsonrpc version".to_owned(),
                EnvelopeError::EmptyMethod => "method not found".to_owned(),
                EnvelopeError::InvalidId => "invalid request id".to_owned(),
                other => other.to_string(),
            };
            let id = id.as_ref().map_or("null", |i| i.get());
            return json_response(error_frame(id, code, &text, None));
        }
    };
    let (id, method, params) = match msg {
        Message::Request { id, method, params } => (Some(id), method, params),
        Message::Notification { method, params } => (None, method, params),
        Message::Response { .. } | Message::Error { .. } => {
            record.outcome = Outcome::Rejected;
            return json_response(error_frame(
                "null",
                INVALID_REQUEST,
                "this route takes requests and notifications only",
                None,
            ));
        }
    };
    record.method(Method::of(&method), &method);
    let Some(id) = id else {
        // A notification. Cancellation has nothing to cancel on a route
        // whose requests are answered one at a time.
        if method == "notifications/cancelled" {
            record.outcome = Outcome::Ok;
            return accepted();
        }
        let Served::Target { backend, .. } = &served else {
            // Nothing a bot notifies concerns one member of an aggregate.
            record.outcome = Outcome::Ok;
            return accepted();
        };
        return match backend
            .upstream
            .notify(&method, params.map(|p| p.to_owned()))
            .await
        {
            Ok(()) => {
                record.outcome = Outcome::Ok;
                accepted()
            }
            Err(e) => {
                record.outcome = Outcome::Failed;
                message(StatusCode::INTERNAL_SERVER_ERROR, e.to_string())
            }
        };
    };
    if Id::from_raw(id).is_err() {
        record.outcome = Outcome::Rejected;
        return json_response(error_frame(
            "null",
            INVALID_REQUEST,
            "invalid request id",
            None,
        ));
    }
    let (target, backend, access) = match served {
        Served::Target {
            target,
            backend,
            access,
        } => (target, backend, access),
        Served::Aggregate {
            aggregate,
            identity,
        } => return aggregated(ctx, &aggregate, identity, id, &method, params, record).await,
    };
    if method == "initialize" {
        #[derive(Deserialize)]
        struct Init {
            #[serde(rename = "protocolVersion", default)]
            protocol_version: Option<String>,
        }
        let requested = params
            .and_then(|p| serde_json::from_str::<Init>(p.get()).ok())
            .and_then(|i| i.protocol_version);
        return match bridge::ready(&backend.upstream, target.ready_timeout()).await {
            Ok(info) => {
                record.outcome = Outcome::Ok;
                let version = bridge::negotiate(requested.as_deref());
                json_response(mcpod_core::json::result_frame(
                    id.get(),
                    &bridge::initialize_result(&info, version),
                ))
            }
            Err(e) => {
                record.outcome = Outcome::Failed;
                let e = crate::web::errors::not_ready(&e, target.name());
                json_response(error_frame(id.get(), INTERNAL_ERROR, &e.message, None))
            }
        };
    }
    exchange(ctx, &target, backend, access, id, &method, params, record).await
}

/// A request to `target` on `backend` (an aggregate's member's, renamed),
/// answered under the contract.
#[allow(clippy::too_many_arguments)] // the request's parts, and where it goes
async fn exchange(
    ctx: &Context,
    target: &Arc<Target>,
    backend: Arc<Backend>,
    access: Access,
    id: &RawValue,
    method: &str,
    params: Option<&RawValue>,
    mut record: Record,
) -> Response {
    if let Some(why) = bridge::refusal(&access, method, params) {
        record.outcome = Outcome::Forbidden;
        return json_response(error_frame(id.get(), bridge::DENIED, &why, None));
    }
    let Some(slot) = target.try_call_slot() else {
        record.outcome = Outcome::Overloaded;
        let e = super::super::refusals::target_busy(target);
        return json_response(error_frame(id.get(), INTERNAL_ERROR, &e.message, None));
    };
    let request = OwnedRequest::new(id.to_owned(), method, params.map(|p| p.to_owned()));
    let mut place = bridge::place(target, backend, &ctx.inputs);
    place.access = access;
    let slots = Slots::new(slot, None);
    let mut exchange = match Exchange::start(
        place,
        Caller::Detached,
        request,
        RequestOptions::default(),
        slots,
    )
    .await
    {
        Ok(e) => e,
        Err(e) => {
            record.outcome = Outcome::Failed;
            return json_response(error_frame(id.get(), INTERNAL_ERROR, &e.to_string(), None));
        }
    };
    let end = exchange.finish().await;
    record.outcome = end.outcome;
    match end.ended {
        // The contract: a backend failure is -32603 with its message.
        Some(reason) => json_response(error_frame(
            exchange.id_json(),
            INTERNAL_ERROR,
            &reason.to_string(),
            None,
        )),
        None => json_response(end.frame),
    }
}

/// A bot's request to its aggregate: `initialize` from the merged
/// discovery, the lists merged and paged across the members (in legacy
/// shape), a named call to the member its prefix names, prefix taken off.
async fn aggregated(
    ctx: &Context,
    aggregate: &Aggregate,
    identity: Identity,
    id: &RawValue,
    method: &str,
    params: Option<&RawValue>,
    mut record: Record,
) -> Response {
    let fail = |mut record: Record, e: ApiError| {
        record.outcome = e.outcome();
        json_response(error_frame(id.get(), e.code, &e.message, None))
    };
    if let Some(why) = aggregate.refused() {
        return fail(record, ApiError::bad_request(INTERNAL_ERROR, why));
    }
    let access = Access::of(aggregate.config.policy.as_ref(), identity.clone());
    if let Some(why) = bridge::refusal(&access, method, params) {
        record.outcome = Outcome::Forbidden;
        return json_response(error_frame(id.get(), bridge::DENIED, &why, None));
    }
    let parsed: Value = params
        .and_then(|p| serde_json::from_str(p.get()).ok())
        .unwrap_or_else(|| Value::Object(serde_json::Map::new()));
    if method == "initialize" {
        let infos = aggregate::discoveries(aggregate, &ctx.metrics).await;
        let members: Vec<(&str, Option<&mcpod_core::BackendInfo>)> = aggregate
            .config
            .members
            .iter()
            .zip(&infos)
            .map(|(m, i)| (m.target.as_str(), i.as_deref()))
            .collect();
        let info = aggregate::discovery(aggregate.name(), &members);
        let requested = parsed.get("protocolVersion").and_then(Value::as_str);
        record.outcome = Outcome::Ok;
        return json_response(mcpod_core::json::result_frame(
            id.get(),
            &bridge::initialize_result(&info, bridge::negotiate(requested)),
        ));
    }
    if let Some((key, prefixed)) = aggregate::list_of(method) {
        let ask = Asking {
            id: id.to_owned(),
            params: params.map(|p| p.to_owned()),
            caller: Caller::Detached,
            inputs: ctx.inputs.clone(),
            identity: Some(identity),
            metrics: ctx.metrics.clone(),
        };
        let cursor = parsed.get("cursor").and_then(Value::as_str);
        return match list(aggregate, method, key, prefixed, cursor, &ask).await {
            Ok(result) => {
                record.outcome = Outcome::Ok;
                let legacy = legacy_list(&result);
                let frame = mcpod_core::json::result_frame(id.get(), &legacy);
                json_response(bridge::filter_list(&access, method, frame))
            }
            Err(e) => fail(record, e),
        };
    }
    let (index, renamed) = match method {
        "tools/call" | "prompts/get" | "completion/complete" => {
            match by_name(aggregate, method, parsed, id) {
                Ok(r) => r,
                Err(e) => return fail(record, e),
            }
        }
        other => {
            let e = ApiError::new(
                StatusCode::NOT_FOUND,
                METHOD_NOT_FOUND,
                format!(
                    "method not found: {other} (aggregate `{}` serves bots its lists and named calls)",
                    aggregate.name()
                ),
            );
            return fail(record, e);
        }
    };
    let Some((member, target)) = aggregate.member(index) else {
        return fail(
            record,
            ApiError::bad_request(INTERNAL_ERROR, "no such member"),
        );
    };
    let access = Access::of(target.config.policy.as_ref(), identity);
    let params = mcpod_core::json::to_raw(&renamed);
    let backend = target.shared_backend();
    let response = exchange(
        ctx,
        target,
        backend,
        access,
        id,
        method,
        Some(&params),
        record,
    )
    .await;
    ctx.metrics
        .members
        .record(aggregate.name(), &member.target, MemberOutcome::Ok);
    response
}

/// A merged list result without the 2026-07-28 keys.
fn legacy_list(result: &RawValue) -> Box<RawValue> {
    mcpod_core::json::edit_object(result.get(), &[], &["resultType", "cacheScope", "ttlMs"])
        .and_then(|s| RawValue::from_string(s).ok())
        .unwrap_or_else(|| result.to_owned())
}

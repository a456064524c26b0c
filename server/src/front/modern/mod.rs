//! Stateless (2026-07-28) clients: header validation, `server/discover`,
//! `subscriptions/listen`, multi round-trip retries, and forwarding.

pub(crate) mod aggregate;
mod checks;

use std::borrow::Cow;
use std::collections::HashMap;
use std::sync::Arc;

use axum::response::Response;
use futures::StreamExt;
use http::{HeaderMap, StatusCode};
use mcpod_core::meta::RequestMeta;
use mcpod_core::{Era, MODERN_VERSIONS, Message};
use mcpod_tokio::{Deadline, OwnedRequest, RequestOptions};
use serde::Deserialize;
use serde_json::value::RawValue;

use super::context::Context;
use super::refusals::{principal_busy, target_busy, unsupported_version};
use super::reply::{Answering, answer, forward_notification, reply};
use super::streams::open_stream;
use crate::bridge::{
    self, Caller, ClientCaps, Exchange, ListenFilter, LogLevel, Resumed, Retry, Slots,
};
use crate::config::Access;
use crate::ids::Principal;
use crate::metrics::Outcome;
use crate::targets::Target;
use crate::web::errors::{
    ApiError, INVALID_PARAMS, INVALID_REQUEST, METHOD_NOT_FOUND, accepted, not_ready,
    upstream_error,
};
use crate::web::headers::Accept;
use crate::web::record::Record;
use crate::web::sse;

/// Client requests a 2026-07-28 server serves (besides `server/discover`
/// and `subscriptions/listen`, which the gateway handles itself).
const FORWARDED_METHODS: &[&str] = &[
    "tools/list",
    "tools/call",
    "resources/list",
    "resources/templates/list",
    "resources/read",
    "prompts/list",
    "prompts/get",
    "completion/complete",
];

/// What the front end reads of a request's params besides `_meta`.
#[derive(Deserialize, Default)]
#[serde(rename_all = "camelCase")]
struct Params<'a> {
    #[serde(borrow, default)]
    request_state: Option<Cow<'a, str>>,
    #[serde(borrow, default)]
    input_responses: Option<HashMap<String, &'a RawValue>>,
    #[serde(borrow, default)]
    name: Option<Cow<'a, str>>,
    #[serde(borrow, default)]
    uri: Option<Cow<'a, str>>,
    #[serde(default)]
    notifications: Option<ListenFilter>,
    #[serde(borrow, default)]
    arguments: Option<HashMap<String, &'a RawValue>>,
}

/// A stateless client's call to forward.
struct Call {
    place: bridge::Place,
    request: OwnedRequest,
    caps: ClientCaps,
    log_level: Option<LogLevel>,
    preset: HashMap<String, Box<RawValue>>,
    deadline: Deadline,
}

impl Call {
    /// Takes a call slot, starts the call and answers it.
    async fn answer(self, target: &Target, how: Answering, mut record: Record) -> Response {
        let id = self.request.id.clone();
        let Some(slot) = target.try_call_slot() else {
            return record.fail(target_busy(target).with_id(Some(&id)));
        };
        let Some(own) = target.try_principal_call(&self.place.principal) else {
            let max = target.limits.max_calls_per_principal;
            let e = principal_busy(target, "calls in flight", max);
            return record.fail(e.with_id(Some(&id)));
        };
        let slots = Slots::new(slot, None).with_principal(own);
        self.answer_holding(slots, how, record).await
    }

    /// Starts the call with `slots` already taken and answers it.
    async fn answer_holding(self, slots: Slots, how: Answering, mut record: Record) -> Response {
        let id = self.request.id.clone();
        let opts = RequestOptions {
            deadline: self.deadline,
            ..RequestOptions::default()
        };
        let started = Exchange::start(
            self.place,
            Caller::Stateless {
                caps: self.caps,
                log_level: self.log_level,
                preset: self.preset,
            },
            self.request,
            opts,
            slots,
        )
        .await;
        match started {
            Ok(exchange) => answer(exchange, record, how).await,
            Err(e) => record.fail(upstream_error(&e).with_id(Some(&id))),
        }
    }
}

fn invalid_params(e: serde_json::Error, id: Option<&RawValue>) -> ApiError {
    ApiError::bad_request(INVALID_PARAMS, format!("invalid params: {e}")).with_id(id)
}

/// A 2026-07-28 client's POST: its headers, message and `_meta` (read
/// once, by the router), its `MCP-Protocol-Version`, who sent it.
pub(crate) struct ModernPost<'a> {
    /// The request's headers.
    pub(crate) headers: &'a HeaderMap,
    /// Its JSON-RPC message.
    pub(crate) msg: &'a Message<'a>,
    /// Its `params._meta`.
    pub(crate) meta: Result<RequestMeta<'a>, serde_json::Error>,
    /// The `MCP-Protocol-Version` header.
    pub(crate) version: Option<String>,
    /// Who sent it (a parked call resumes only for them).
    pub(crate) principal: Principal,
    /// What of the target they may see and use.
    pub(crate) access: Access,
}

/// Handles a modern client's POST.
pub(crate) async fn post(
    ctx: &Context,
    target: Arc<Target>,
    request: ModernPost<'_>,
    mut record: Record,
) -> Response {
    let ModernPost {
        headers,
        msg,
        meta,
        version: header_version,
        principal,
        access,
    } = request;
    let (id, method, raw_params) = match msg {
        Message::Request { id, method, params } => (Some(*id), method.as_ref(), *params),
        Message::Notification { method, params } => (None, method.as_ref(), *params),
        Message::Response { .. } | Message::Error { .. } => {
            return record.fail(ApiError::bad_request(
                INVALID_REQUEST,
                "a 2026-07-28 client has no server requests to answer",
            ));
        }
    };
    let Some(version) = header_version else {
        return record.fail(checks::missing_version(id));
    };
    if !MODERN_VERSIONS.contains(&version.as_str()) {
        return record.fail(unsupported_version(&version, id, MODERN_VERSIONS));
    }
    let meta = match meta {
        Ok(m) => m,
        Err(e) => return record.fail(invalid_params(e, id)),
    };
    let params: Params<'_> = match raw_params.map(|p| serde_json::from_str(p.get())) {
        Some(Ok(p)) => p,
        Some(Err(e)) => return record.fail(invalid_params(e, id)),
        None => Params::default(),
    };
    let named = checks::Named {
        meta_version: meta.protocol_version.as_deref(),
        has_capabilities: meta.client_capabilities.is_some(),
        name: params.name.as_deref(),
        uri: params.uri.as_deref(),
    };
    if let Err(e) = checks::check_headers(headers, method, &named, &version, id) {
        return record.fail(e);
    }

    let Some(id) = id else {
        // A notification.
        return match method {
            // Stateless clients cancel by closing the response stream.
            "notifications/cancelled" | "notifications/initialized" => {
                record.outcome = Outcome::Ok;
                accepted()
            }
            _ => forward_notification(&target.shared_upstream(), method, raw_params, record).await,
        };
    };

    let accept = Accept::from_headers(headers);
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
    // What the caller may not use is refused before anything about it
    // (its `Mcp-Param-*` headers among them) is looked at.
    if let Some(why) = bridge::refusal(&access, method, raw_params) {
        record.outcome = Outcome::Forbidden;
        let frame = mcpod_core::json::error_frame(id.get(), bridge::DENIED, &why, None);
        return reply(frame, accept.json);
    }
    let backend = target.shared_backend();
    if method == "tools/call" {
        if let Some(tool) = params.name.as_deref() {
            let mirrored = bridge::header_params(&backend, tool).await;
            if let Err(e) =
                checks::check_param_headers(headers, params.arguments.as_ref(), &mirrored, Some(id))
            {
                return record.fail(e);
            }
        }
    }
    let caps = ClientCaps::from_raw(meta.client_capabilities);
    let log_level = match meta.log_level.as_deref().map(|l| (l, LogLevel::parse(l))) {
        None => None,
        Some((_, Some(level))) => Some(level),
        Some((name, None)) => {
            return record.fail(
                ApiError::bad_request(INVALID_PARAMS, format!("`{name}` is not a log level"))
                    .with_id(Some(id)),
            );
        }
    };
    let how = Answering {
        accept,
        keep_alive: target.limits.sse_keep_alive,
        stop: None,
        statuses: true,
    };
    match method {
        "server/discover" => {
            let info = match bridge::ready(&backend.upstream, target.ready_timeout()).await {
                Ok(info) => info,
                Err(e) => return record.fail(not_ready(&e, target.name()).with_id(Some(id))),
            };
            record.outcome = Outcome::Ok;
            let result = bridge::discover_result(&info);
            reply(
                mcpod_core::json::result_frame(id.get(), &result),
                accept.json,
            )
        }
        "subscriptions/listen" => {
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
            // A listen holds a stream slot, not a call slot: open streams
            // never starve calls, and end after their lifetime.
            let Some(own) = target.try_principal_listen(&principal) else {
                let max = target.limits.max_listens_per_principal;
                let e = principal_busy(&target, "listens open", max);
                return record.fail(e.with_id(Some(id)));
            };
            let (stop, hold) = match open_stream(&target, &ctx.shutdown) {
                Ok(held) => held,
                Err(e) => return record.fail(e.with_id(Some(id))),
            };
            let info = match bridge::ready(&backend.upstream, target.ready_timeout()).await {
                Ok(info) => info,
                Err(e) => return record.fail(not_ready(&e, target.name()).with_id(Some(id))),
            };
            if info.era == Era::Modern {
                let call = Call {
                    place: bridge::place(&target, backend, &ctx.inputs),
                    request: OwnedRequest::new(
                        id.to_owned(),
                        method,
                        raw_params.map(|p| p.to_owned()),
                    ),
                    caps,
                    log_level,
                    preset: HashMap::new(),
                    deadline: Deadline::Never,
                };
                let how = Answering {
                    stop: Some(stop),
                    ..how
                };
                let slots = Slots::stream(hold.slot, hold.timer).with_principal(own);
                return call.answer_holding(slots, how, record).await;
            }
            record.outcome = Outcome::Ok;
            let listening = bridge::listen(
                &backend,
                &info,
                id,
                params.notifications.unwrap_or_default(),
            )
            .await;
            let first = futures::stream::iter([sse::event(&listening.ack)]);
            let rest = futures::stream::unfold(
                (listening.rx, listening.guard, (hold, own)),
                |(mut rx, guard, hold)| async move {
                    rx.recv()
                        .await
                        .map(|frame| (sse::event(&frame), (rx, guard, hold)))
                },
            );
            sse::response(
                first.chain(rest).boxed(),
                target.limits.sse_keep_alive,
                Some(stop),
            )
        }
        m if FORWARDED_METHODS.contains(&m) => {
            let mut place = bridge::place(&target, backend, &ctx.inputs);
            place.principal = principal.clone();
            place.access = access;
            // The retry of a call the gateway parked for client input.
            let retry = params
                .request_state
                .as_deref()
                .filter(|s| s.starts_with(bridge::STATE_PREFIX))
                .map(|s| ctx.inputs.take(target.name(), &principal, s));
            let mut forward_params = raw_params.map(|p| p.to_owned());
            match retry {
                Some(Retry::Forged) => {
                    return record.fail(
                        ApiError::bad_request(
                            INVALID_PARAMS,
                            "requestState was not issued by this gateway for this target \
                             (tampered with, or from another gateway); start the request again",
                        )
                        .with_id(Some(id)),
                    );
                }
                Some(Retry::Elsewhere) => {
                    return record.fail(
                        ApiError::bad_request(
                            INVALID_PARAMS,
                            "requestState names a call parked on another replica of this \
                             gateway (the balancer sent the retry elsewhere, or that replica \
                             went away), where it cannot be resumed; start the request again \
                             without requestState and inputResponses",
                        )
                        .with_id(Some(id)),
                    );
                }
                Some(Retry::Parked(parked)) => {
                    let empty = HashMap::new();
                    let answers = params.input_responses.as_ref().unwrap_or(&empty);
                    let caller = Caller::Stateless {
                        caps,
                        log_level,
                        preset: HashMap::new(),
                    };
                    let resumed =
                        Exchange::resume(*parked, answers, caller, id.get().to_owned(), place)
                            .await;
                    return match resumed {
                        Ok(Resumed::Exchange(exchange)) => answer(*exchange, record, how).await,
                        Ok(Resumed::AskedAgain(end)) => {
                            record.outcome = end.outcome;
                            reply(end.frame, accept.json)
                        }
                        Err(e) => record.fail(upstream_error(&e).with_id(Some(id))),
                    };
                }
                // The call it named is gone (answered, expired): the
                // request starts afresh, without the spent state.
                Some(Retry::Gone) => {
                    forward_params = raw_params.and_then(|p| {
                        let edited = mcpod_core::json::edit_object(
                            p.get(),
                            &[],
                            &["requestState", "inputResponses"],
                        )?;
                        RawValue::from_string(edited).ok()
                    });
                }
                None => {}
            }
            // Answers brought without a state of ours answer the backend's
            // questions of the same keys, if it asks them.
            let preset = if matches!(retry, Some(Retry::Gone)) {
                HashMap::new()
            } else {
                params
                    .input_responses
                    .iter()
                    .flatten()
                    .map(|(k, v)| (k.clone(), (*v).to_owned()))
                    .collect()
            };
            let call = Call {
                place,
                request: OwnedRequest::new(id.to_owned(), method, forward_params),
                caps,
                log_level,
                preset,
                deadline: Deadline::Default,
            };
            call.answer(&target, how, record).await
        }
        other => record.fail(
            ApiError::new(
                StatusCode::NOT_FOUND,
                METHOD_NOT_FOUND,
                format!("method not found: {other}"),
            )
            .with_id(Some(id)),
        ),
    }
}

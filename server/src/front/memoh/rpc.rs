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

use super::super::context::Context;
use crate::bridge::{self, Caller, Exchange, Slots};
use crate::config::{Access, Limits};
use crate::metrics::{Method, Outcome};
use crate::targets::{Backend, Target};
use crate::web::body::read_json_body;
use crate::web::errors::{INTERNAL_ERROR, INVALID_REQUEST, accepted, json_response, message};
use crate::web::record::Record;

/// One JSON-RPC exchange under the Memoh contract, with `backend`: a JSON
/// body (415 otherwise, as on `/mcp`), errors before JSON-RPC as
/// `{"message": …}`.
pub(crate) async fn rpc(
    ctx: &Context,
    target: Arc<Target>,
    backend: Arc<Backend>,
    access: Access,
    headers: &HeaderMap,
    body: Body,
    limits: &Limits,
) -> Response {
    let mut record = Record::rpc(&ctx.metrics, target.name());
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
    if let Some(why) = bridge::refusal(&access, &method, params) {
        record.outcome = Outcome::Forbidden;
        return json_response(error_frame(id.get(), bridge::DENIED, &why, None));
    }
    let Some(slot) = target.try_call_slot() else {
        record.outcome = Outcome::Overloaded;
        let e = super::super::refusals::target_busy(&target);
        return json_response(error_frame(id.get(), INTERNAL_ERROR, &e.message, None));
    };
    let request = OwnedRequest::new(id.to_owned(), method.as_ref(), params.map(|p| p.to_owned()));
    let mut place = bridge::place(&target, backend, &ctx.inputs);
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

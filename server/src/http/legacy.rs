//! Legacy (2025-11-25 and earlier) clients: `initialize` answered by the
//! gateway, sessions, client cancellations and answers to server requests.

use std::sync::Arc;

use axum::response::Response;
use http::{HeaderMap, HeaderValue, StatusCode};
use mcpod_core::envelope::ErrorObject;
use mcpod_core::{BackendInfo, LATEST_LEGACY_VERSION, LEGACY_VERSIONS, Message};
use mcpod_tokio::{Deadline, OwnedOutcome, OwnedRequest};
use serde::Deserialize;
use serde_json::json;
use serde_json::value::RawValue;
use tracing::debug;

use super::App;
use super::calls::{self, Call, Caller, Record, Slots};
use super::errors::{
    ApiError, INVALID_REQUEST, SERVER_ERROR, SESSION_NOT_FOUND, accepted, raw_json,
};
use super::headers::{self, Accept};
use super::modern::{ready, unsupported_version};
use crate::sessions::Session;
use crate::targets::Target;

#[derive(Deserialize)]
struct InitializeParams<'a> {
    #[serde(rename = "protocolVersion", borrow, default)]
    protocol_version: Option<std::borrow::Cow<'a, str>>,
}

#[derive(Deserialize)]
struct CancelParams<'a> {
    #[serde(rename = "requestId", borrow)]
    request_id: &'a RawValue,
}

/// The revision to use with a legacy client: its own if the gateway knows
/// it, else the newest legacy one.
pub fn negotiate(requested: Option<&str>) -> &'static str {
    requested
        .and_then(|r| LEGACY_VERSIONS.iter().find(|v| **v == r).copied())
        .unwrap_or(LATEST_LEGACY_VERSION)
}

/// The `initialize` result the gateway gives a client, from the backend's
/// own handshake (or discovery) result.
pub fn initialize_result(info: &BackendInfo, version: &str) -> Box<RawValue> {
    let server_info = info.server_info.clone().unwrap_or_else(|| {
        raw_json(&json!({"name": "mcpod", "version": env!("CARGO_PKG_VERSION")}))
    });
    let mut result = json!({
        "protocolVersion": version,
        "capabilities": info.capabilities,
        "serverInfo": server_info,
    });
    if let (Some(text), Some(obj)) = (&info.instructions, result.as_object_mut()) {
        obj.insert("instructions".into(), json!(text));
    }
    raw_json(&result)
}

fn not_acceptable(id: Option<&RawValue>) -> ApiError {
    ApiError::new(
        StatusCode::NOT_ACCEPTABLE,
        INVALID_REQUEST,
        "Accept must include application/json or text/event-stream",
    )
    .with_id(id)
}

/// Handles a legacy client's POST.
pub async fn post(
    app: Arc<App>,
    target: Arc<Target>,
    headers: &HeaderMap,
    msg: &Message<'_>,
    mut record: Record,
) -> Response {
    let accept = Accept::from_headers(headers);
    if let Message::Request { id, method, params } = msg {
        if method == "initialize" {
            return initialize(&app, &target, id, *params, accept, record).await;
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
    let Some(session) = target.sessions.get(session_id) else {
        return record.fail(ApiError::new(
            StatusCode::NOT_FOUND,
            SESSION_NOT_FOUND,
            "session not found or expired; initialize again",
        ));
    };
    record.session(&session.id);
    session.touch();
    if let Ok(Some(v)) = headers::single(headers, headers::PROTOCOL_VERSION) {
        if !LEGACY_VERSIONS.contains(&v) {
            return record.fail(unsupported_version(v, None));
        }
    }

    match msg {
        Message::Request { id, method, params } => {
            if !accept.json && !accept.sse {
                return record.fail(not_acceptable(Some(id)));
            }
            if method == "ping" {
                record.outcome = "ok";
                let empty = raw_json(&json!({}));
                return calls::reply(
                    mcpod_core::json::result_frame(id.get(), &empty),
                    accept.json,
                );
            }
            let mut slots = match Slots::acquire(&target, Some(&session)) {
                Ok(s) => s,
                Err(e) => return record.fail(e.with_id(Some(id))),
            };
            let cancel = slots
                .session
                .as_mut()
                .map(|guard| session.register_call(guard, id.get()));
            let req = OwnedRequest::new(
                (*id).to_owned(),
                method.as_ref(),
                params.map(|p| p.to_owned()),
            );
            let call = Call {
                target: target.clone(),
                upstream: session.upstream.clone(),
                caller: Caller::Legacy(session.clone()),
                sse: accept.sse,
                json: accept.json,
                deadline: Deadline::Default,
                cancel,
                stop: None,
                slots,
                record,
            };
            calls::forward(call, req).await
        }
        Message::Notification { method, params } => match method.as_ref() {
            "notifications/initialized" => {
                record.outcome = "ok";
                accepted()
            }
            "notifications/cancelled" => {
                let found = params
                    .and_then(|p| serde_json::from_str::<CancelParams<'_>>(p.get()).ok())
                    .map(|p| session.cancel_call(p.request_id.get()));
                debug!(found = ?found, "client cancelled a call");
                record.outcome = "ok";
                accepted()
            }
            m => match session
                .upstream
                .notify(m, params.map(|p| p.to_owned()))
                .await
            {
                Ok(()) => {
                    record.outcome = "ok";
                    accepted()
                }
                Err(e) => record.fail(calls::upstream_error(&e)),
            },
        },
        Message::Response { id, result } => {
            answer(
                &session,
                id.get(),
                OwnedOutcome::Result((*result).to_owned()),
            )
            .await;
            record.outcome = "ok";
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
                    code: mcpod_core::envelope::INTERNAL_ERROR,
                    message: "the client sent an invalid error object".into(),
                    data: None,
                },
            };
            match id {
                Some(id) => answer(&session, id.get(), outcome).await,
                None => debug!("client sent an error without an id; nothing to answer"),
            }
            record.outcome = "ok";
            accepted()
        }
    }
}

/// Passes a client's answer to a server request on to the backend.
async fn answer(session: &Session, id: &str, outcome: OwnedOutcome) {
    match session.take_server_request(id) {
        Some((upstream, key)) => {
            if let Err(e) = upstream.respond(key, outcome).await {
                debug!(error = %e, "answer to a server request not delivered");
            }
        }
        None => debug!(
            id,
            "answer to an unknown (or withdrawn) server request ignored"
        ),
    }
}

async fn initialize(
    app: &Arc<App>,
    target: &Arc<Target>,
    id: &RawValue,
    params: Option<&RawValue>,
    accept: Accept,
    mut record: Record,
) -> Response {
    if !accept.json && !accept.sse {
        return record.fail(not_acceptable(Some(id)));
    }
    let max = target.limits.max_sessions_per_target;
    let too_many = || {
        ApiError::new(
            StatusCode::SERVICE_UNAVAILABLE,
            SERVER_ERROR,
            format!("target `{}` has {max} sessions, its limit", target.name()),
        )
        .with_id(Some(id))
        .with_header(http::header::RETRY_AFTER, HeaderValue::from_static("5"))
    };
    if target.sessions.len() >= max {
        return record.fail(too_many());
    }
    let requested = params
        .and_then(|p| serde_json::from_str::<InitializeParams<'_>>(p.get()).ok())
        .and_then(|p| p.protocol_version.map(|v| v.into_owned()));
    let version = negotiate(requested.as_deref());
    let owns = target.per_session();
    let session_id = crate::sessions::new_session_id();
    let upstream = if owns {
        target.session_upstream(&session_id[..8])
    } else {
        target.shared_upstream()
    };
    let info = match ready(target, &upstream).await {
        Ok(info) => info,
        Err(e) => {
            if owns {
                upstream.close().await;
            }
            return record.fail(e.with_id(Some(id)));
        }
    };
    let session = Arc::new(Session::with_id(
        session_id,
        version.to_owned(),
        upstream,
        owns,
        app.shutdown.child_token(),
    ));
    if !target.sessions.insert(session.clone(), max) {
        session.close().await;
        return record.fail(too_many());
    }
    if owns {
        target.attach_session_dispatcher(&session);
    }
    record.session(&session.id);
    record.outcome = "ok";
    let frame = mcpod_core::json::result_frame(id.get(), &initialize_result(&info, version));
    let mut response = calls::reply(frame, accept.json);
    if let Ok(v) = HeaderValue::from_str(&session.id) {
        response.headers_mut().insert(headers::SESSION_ID, v);
    }
    response
}

#[cfg(test)]
mod tests {
    use super::*;

    fn info() -> BackendInfo {
        let raw = |s: &str| RawValue::from_string(s.to_owned()).unwrap();
        BackendInfo {
            era: mcpod_core::Era::Modern,
            protocol_version: "2026-07-28".into(),
            supported_versions: vec!["2026-07-28".into()],
            capabilities: raw(r#"{"tools":{"listChanged":true}}"#),
            server_info: Some(raw(r#"{"name":"s","version":"1"}"#)),
            instructions: Some("use it".into()),
            result: raw("{}"),
        }
    }

    #[test]
    fn negotiates_known_versions_only() {
        assert_eq!(negotiate(Some("2025-03-26")), "2025-03-26");
        assert_eq!(negotiate(Some("2024-11-05")), "2024-11-05");
        assert_eq!(negotiate(Some("2026-07-28")), LATEST_LEGACY_VERSION);
        assert_eq!(negotiate(Some("nonsense")), LATEST_LEGACY_VERSION);
        assert_eq!(negotiate(None), LATEST_LEGACY_VERSION);
    }

    #[test]
    #[allow(clippy::unwrap_used)]
    fn initialize_result_comes_from_the_backend() {
        let v: serde_json::Value =
            serde_json::from_str(initialize_result(&info(), "2025-06-18").get()).unwrap();
        assert_eq!(v["protocolVersion"], "2025-06-18");
        assert_eq!(v["capabilities"]["tools"]["listChanged"], true);
        assert_eq!(v["serverInfo"]["name"], "s");
        assert_eq!(v["instructions"], "use it");
    }
}

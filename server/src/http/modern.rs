//! Stateless (2026-07-28) clients: header validation, `server/discover`,
//! `subscriptions/listen`, and forwarding.

use std::borrow::Cow;
use std::sync::Arc;

use axum::response::Response;
use bytes::Bytes;
use futures::StreamExt;
use http::{HeaderMap, StatusCode};
use mcpod_core::{BackendInfo, Era, LEGACY_VERSIONS, MODERN_VERSIONS, Message};
use mcpod_tokio::{Deadline, OwnedOutcome, OwnedRequest};
use serde::Deserialize;
use serde_json::json;
use serde_json::value::RawValue;

use super::App;
use super::calls::inputs::{self, ClientCaps};
use super::calls::{self, Call, Caller, Record, Slots};
use super::errors::{
    ApiError, HEADER_MISMATCH, INTERNAL_ERROR, INVALID_PARAMS, INVALID_REQUEST, METHOD_NOT_FOUND,
    UNSUPPORTED_PROTOCOL_VERSION, accepted, raw_json,
};
use super::headers::{self, Accept};
use super::sse;
use crate::targets::{ListenFilter, Target, tagged_notification};

/// Client requests a 2026-07-28 server serves (besides `server/discover`
/// and `subscriptions/listen`, which the gateway handles itself).
pub const FORWARDED_METHODS: &[&str] = &[
    "tools/list",
    "tools/call",
    "resources/list",
    "resources/templates/list",
    "resources/read",
    "prompts/list",
    "prompts/get",
    "completion/complete",
];

#[derive(Deserialize, Default)]
#[serde(rename_all = "camelCase")]
struct Params<'a> {
    #[serde(rename = "_meta", borrow, default)]
    meta: Option<Meta<'a>>,
    #[serde(borrow, default)]
    request_state: Option<Cow<'a, str>>,
    #[serde(borrow, default)]
    input_responses: Option<std::collections::HashMap<String, &'a RawValue>>,
    #[serde(borrow, default)]
    name: Option<Cow<'a, str>>,
    #[serde(borrow, default)]
    uri: Option<Cow<'a, str>>,
    #[serde(default)]
    notifications: Option<ListenFilter>,
}

#[derive(Deserialize, Default)]
struct Meta<'a> {
    #[serde(rename = "io.modelcontextprotocol/protocolVersion", borrow, default)]
    version: Option<Cow<'a, str>>,
    #[serde(rename = "io.modelcontextprotocol/clientCapabilities", borrow, default)]
    capabilities: Option<&'a RawValue>,
}

fn mismatch(message: impl Into<String>, id: Option<&RawValue>) -> ApiError {
    ApiError::bad_request(HEADER_MISMATCH, message).with_id(id)
}

/// Checks `MCP-Protocol-Version` against `_meta` and `Mcp-Method`/`Mcp-Name`
/// against the body.
fn validate(
    headers: &HeaderMap,
    method: &str,
    params: &Params<'_>,
    header_version: &str,
    id: Option<&RawValue>,
    is_request: bool,
) -> Result<(), ApiError> {
    let meta_version = params.meta.as_ref().and_then(|m| m.version.as_deref());
    match meta_version {
        Some(v) if v != header_version => {
            return Err(mismatch(
                format!(
                    "MCP-Protocol-Version header `{header_version}` does not match _meta protocolVersion `{v}`"
                ),
                id,
            ));
        }
        None if is_request => {
            return Err(mismatch(
                "params._meta[\"io.modelcontextprotocol/protocolVersion\"] is required",
                id,
            ));
        }
        _ => {}
    }
    let header_method =
        headers::decoded(headers, headers::MCP_METHOD).map_err(|p| mismatch(p.to_string(), id))?;
    match header_method {
        None => return Err(mismatch("missing Mcp-Method header", id)),
        Some(h) if h != method => {
            return Err(mismatch(
                format!("Mcp-Method header `{h}` does not match body method `{method}`"),
                id,
            ));
        }
        Some(_) => {}
    }
    let expected_name = match method {
        "tools/call" | "prompts/get" => Some(params.name.as_deref().ok_or_else(|| {
            ApiError::bad_request(INVALID_PARAMS, format!("{method} needs params.name")).with_id(id)
        })?),
        "resources/read" => Some(params.uri.as_deref().ok_or_else(|| {
            ApiError::bad_request(INVALID_PARAMS, "resources/read needs params.uri").with_id(id)
        })?),
        _ => None,
    };
    if let Some(expected) = expected_name {
        match headers::decoded(headers, headers::MCP_NAME)
            .map_err(|p| mismatch(p.to_string(), id))?
        {
            None => {
                return Err(mismatch(
                    format!("missing Mcp-Name header for {method}"),
                    id,
                ));
            }
            Some(h) if h != expected => {
                return Err(mismatch(
                    format!("Mcp-Name header `{h}` does not match body value `{expected}`"),
                    id,
                ));
            }
            Some(_) => {}
        }
    }
    Ok(())
}

/// The -32022 answer for a version the gateway does not serve.
pub fn unsupported_version(requested: &str, id: Option<&RawValue>) -> ApiError {
    let supported: Vec<&str> = MODERN_VERSIONS
        .iter()
        .rev()
        .chain(LEGACY_VERSIONS.iter().rev())
        .copied()
        .collect();
    ApiError::bad_request(
        UNSUPPORTED_PROTOCOL_VERSION,
        format!("protocol version `{requested}` is not supported"),
    )
    .with_id(id)
    .with_data(raw_json(
        &json!({ "supported": supported, "requested": requested }),
    ))
}

/// Handles a modern client's POST.
pub async fn post(
    app: Arc<App>,
    target: Arc<Target>,
    headers: &HeaderMap,
    msg: &Message<'_>,
    header_version: Option<String>,
    mut record: Record,
) -> Response {
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
        return record.fail(mismatch("missing MCP-Protocol-Version header", id));
    };
    if !MODERN_VERSIONS.contains(&version.as_str()) {
        return record.fail(unsupported_version(&version, id));
    }
    let params: Params<'_> = match raw_params {
        Some(p) => match serde_json::from_str(p.get()) {
            Ok(p) => p,
            Err(e) => {
                return record.fail(
                    ApiError::bad_request(INVALID_PARAMS, format!("invalid params: {e}"))
                        .with_id(id),
                );
            }
        },
        None => Params::default(),
    };
    if let Err(e) = validate(headers, method, &params, &version, id, id.is_some()) {
        return record.fail(e);
    }

    let Some(id) = id else {
        // A notification.
        return match method {
            // Stateless clients cancel by closing the response stream.
            "notifications/cancelled" | "notifications/initialized" => {
                record.outcome = "ok";
                accepted()
            }
            _ => match target
                .shared_upstream()
                .notify(method, raw_params.map(boxed))
                .await
            {
                Ok(()) => {
                    record.outcome = "ok";
                    accepted()
                }
                Err(e) => record.fail(calls::upstream_error(&e)),
            },
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
    let upstream = target.shared_upstream();
    let caps = ClientCaps::from_raw(params.meta.as_ref().and_then(|m| m.capabilities));
    match method {
        "server/discover" => {
            let info = match ready(&target, &upstream).await {
                Ok(info) => info,
                Err(e) => return record.fail(e.with_id(Some(id))),
            };
            record.outcome = "ok";
            let result = discover_result(&info);
            calls::reply(
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
            let info = match ready(&target, &upstream).await {
                Ok(info) => info,
                Err(e) => return record.fail(e.with_id(Some(id))),
            };
            if info.era == Era::Modern {
                let slots = match Slots::acquire(&target, None) {
                    Ok(s) => s,
                    Err(e) => return record.fail(e.with_id(Some(id))),
                };
                let req = OwnedRequest::new(boxed(id), method, raw_params.map(boxed));
                let call = Call {
                    target,
                    upstream,
                    caller: Caller::Modern(caps),
                    sse: true,
                    json: accept.json,
                    deadline: Deadline::Never,
                    cancel: None,
                    stop: Some(app.shutdown.clone()),
                    slots,
                    record,
                };
                return calls::forward(call, req).await;
            }
            record.outcome = "ok";
            listen_locally(
                &app,
                &target,
                &info,
                id,
                params.notifications.unwrap_or_default(),
            )
        }
        m if FORWARDED_METHODS.contains(&m) => {
            // The retry of a call the gateway parked for client input.
            let parked = params
                .request_state
                .as_deref()
                .filter(|s| s.starts_with(inputs::STATE_PREFIX))
                .and_then(|s| target.inputs.take(s));
            if let Some(parked) = parked {
                let answer = params
                    .input_responses
                    .as_ref()
                    .and_then(|r| r.get(inputs::INPUT_KEY))
                    .map(|r| OwnedOutcome::Result((*r).to_owned()));
                let Some(answer) = answer else {
                    let _ = parked
                        .upstream
                        .respond(parked.key, inputs::no_answer("the client sent no input"))
                        .await;
                    return record.fail(
                        ApiError::bad_request(
                            INVALID_PARAMS,
                            format!("inputResponses.{} is missing", inputs::INPUT_KEY),
                        )
                        .with_id(Some(id)),
                    );
                };
                let call = Call {
                    target: target.clone(),
                    upstream: upstream.clone(),
                    caller: Caller::Modern(caps),
                    sse: accept.sse,
                    json: accept.json,
                    deadline: Deadline::Default,
                    cancel: None,
                    stop: None,
                    slots: Slots::default(),
                    record,
                };
                return calls::resume(parked, answer, call, id.get().to_owned()).await;
            }
            let slots = match Slots::acquire(&target, None) {
                Ok(s) => s,
                Err(e) => return record.fail(e.with_id(Some(id))),
            };
            let req = OwnedRequest::new(boxed(id), method, raw_params.map(boxed));
            let call = Call {
                target,
                upstream,
                caller: Caller::Modern(caps),
                sse: accept.sse,
                json: accept.json,
                deadline: Deadline::Default,
                cancel: None,
                stop: None,
                slots,
                record,
            };
            calls::forward(call, req).await
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

fn boxed(raw: &RawValue) -> Box<RawValue> {
    raw.to_owned()
}

/// Waits for the backend to be ready (bounded by the handshake timeout).
pub async fn ready(
    target: &Target,
    upstream: &mcpod_tokio::Upstream,
) -> Result<Arc<BackendInfo>, ApiError> {
    let limit = mcpod_core::Config::default().handshake_timeout
        + mcpod_core::Config::default().probe_timeout;
    match tokio::time::timeout(limit, upstream.ready()).await {
        Ok(Ok(info)) => Ok(info),
        Ok(Err(e)) => Err(calls::upstream_error(&e)),
        Err(_) => Err(ApiError::new(
            StatusCode::GATEWAY_TIMEOUT,
            INTERNAL_ERROR,
            format!(
                "backend of target `{}` did not become ready in time",
                target.name()
            ),
        )),
    }
}

/// `server/discover` answered from what the backend said about itself: a
/// modern backend's own result, or a legacy backend's handshake adapted.
pub fn discover_result(info: &BackendInfo) -> Box<RawValue> {
    if info.era == Era::Modern {
        return info.result.clone();
    }
    let server_info = info.server_info.clone().unwrap_or_else(|| {
        raw_json(&json!({"name": "mcpod", "version": env!("CARGO_PKG_VERSION")}))
    });
    let mut result = json!({
        "resultType": "complete",
        "supportedVersions": MODERN_VERSIONS,
        "capabilities": info.capabilities,
        "cacheScope": "public",
        "ttlMs": 0,
        "_meta": { "io.modelcontextprotocol/serverInfo": server_info },
    });
    if let (Some(text), Some(obj)) = (&info.instructions, result.as_object_mut()) {
        obj.insert("instructions".into(), json!(text));
    }
    raw_json(&result)
}

#[derive(Deserialize, Default)]
#[serde(rename_all = "camelCase")]
struct Caps {
    #[serde(default)]
    tools: Option<ListChanged>,
    #[serde(default)]
    prompts: Option<ListChanged>,
    #[serde(default)]
    resources: Option<ListChanged>,
}

#[derive(Deserialize, Default)]
#[serde(rename_all = "camelCase")]
struct ListChanged {
    #[serde(default)]
    list_changed: bool,
}

fn honoured(info: &BackendInfo, asked: ListenFilter) -> ListenFilter {
    let caps: Caps = serde_json::from_str(info.capabilities.get()).unwrap_or_default();
    let has = |c: &Option<ListChanged>| c.as_ref().is_some_and(|c| c.list_changed);
    ListenFilter {
        tools_list_changed: asked.tools_list_changed && has(&caps.tools),
        prompts_list_changed: asked.prompts_list_changed && has(&caps.prompts),
        resources_list_changed: asked.resources_list_changed && has(&caps.resources),
    }
}

/// `subscriptions/listen` for a legacy backend: the gateway acknowledges
/// what it can honour and forwards the backend's list-changed broadcasts,
/// tagged with the subscription id, until the client goes away.
fn listen_locally(
    app: &App,
    target: &Arc<Target>,
    info: &BackendInfo,
    id: &RawValue,
    asked: ListenFilter,
) -> Response {
    let filter = honoured(info, asked);
    let subscription = id.get().to_owned();
    let ack = {
        let mut frame =
            tagged_notification("notifications/subscriptions/acknowledged", &subscription);
        // Insert `"notifications":{…}` into params: the frame ends in "}}}".
        let filter_json = serde_json::to_string(&filter).unwrap_or_else(|_| "{}".into());
        let at = frame.len() - 2;
        frame.splice(
            at..at,
            format!(",\"notifications\":{filter_json}").into_bytes(),
        );
        frame
    };
    let (listener, rx) = target.add_listener(subscription, filter);
    struct Unlisten(Arc<Target>, u64);
    impl Drop for Unlisten {
        fn drop(&mut self) {
            self.0.remove_listener(self.1);
        }
    }
    let guard = Unlisten(target.clone(), listener);
    let first = futures::stream::iter([sse::event(&ack)]);
    let rest = futures::stream::unfold((rx, guard), |(mut rx, guard)| async move {
        rx.recv().await.map(|b: Bytes| (b, (rx, guard)))
    });
    sse::response(
        first.chain(rest).boxed(),
        target.limits.sse_keep_alive,
        Some(app.shutdown.clone()),
    )
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;

    fn legacy_info() -> BackendInfo {
        let raw = |s: &str| RawValue::from_string(s.to_owned()).unwrap();
        BackendInfo {
            era: Era::Legacy,
            protocol_version: "2025-06-18".into(),
            supported_versions: vec!["2025-06-18".into()],
            capabilities: raw(r#"{"tools":{"listChanged":true},"prompts":{}}"#),
            server_info: Some(raw(r#"{"name":"old","version":"1"}"#)),
            instructions: None,
            result: raw(r#"{"protocolVersion":"2025-06-18"}"#),
        }
    }

    #[test]
    fn discover_adapts_a_legacy_handshake() {
        let v: serde_json::Value =
            serde_json::from_str(discover_result(&legacy_info()).get()).unwrap();
        assert_eq!(v["supportedVersions"], json!(MODERN_VERSIONS));
        assert_eq!(v["resultType"], "complete");
        assert_eq!(
            v["_meta"]["io.modelcontextprotocol/serverInfo"]["name"],
            "old"
        );
        assert!(v.get("instructions").is_none());
        let mut modern = legacy_info();
        modern.era = Era::Modern;
        assert_eq!(discover_result(&modern).get(), modern.result.get());
    }

    #[test]
    fn listen_honours_only_what_the_backend_has() {
        let asked = ListenFilter {
            tools_list_changed: true,
            prompts_list_changed: true,
            resources_list_changed: true,
        };
        let got = honoured(&legacy_info(), asked);
        assert!(got.tools_list_changed);
        assert!(!got.prompts_list_changed, "prompts has no listChanged");
        assert!(!got.resources_list_changed);
    }
}

//! The spans: one per HTTP request to an MCP route (kind server,
//! continuing the client's W3C trace), one per call to a backend (kind
//! client, its child), with the attributes of the OpenTelemetry semantic
//! conventions for MCP (`mcp.method.name`, `mcp.session.id`,
//! `mcp.protocol.version`, `jsonrpc.request.id`, `gen_ai.tool.name`,
//! `gen_ai.prompt.name`, `gen_ai.operation.name`, `mcp.resource.uri`,
//! `error.type`, `network.transport`) and the gateway's own (`mcpod.target`,
//! `mcpod.era`, `mcpod.outcome`).

use http::HeaderMap;
use mcpod_core::Message;
use mcpod_core::meta::{TRACEPARENT, TRACESTATE, with_meta_strings};
use opentelemetry::propagation::{Extractor, Injector, TextMapPropagator};
use opentelemetry::trace::TraceContextExt;
use opentelemetry_sdk::propagation::TraceContextPropagator;
use serde::Deserialize;
use serde_json::value::RawValue;
use tracing::Span;
use tracing::field::Empty;
use tracing_opentelemetry::OpenTelemetrySpanExt;

use super::export::{TARGET, enabled};

/// The span of an HTTP request to `route` of `target`, continuing the
/// trace of its `traceparent`/`tracestate` headers; `None` when telemetry
/// is off. It also has the fields the request's logs carry (`era`,
/// `method`, `session`).
pub(crate) fn http_span(
    http_method: &str,
    route: &str,
    target: &str,
    headers: &HeaderMap,
) -> Option<Span> {
    if !enabled() {
        return None;
    }
    let span = tracing::info_span!(
        target: TARGET,
        "request",
        otel.name = %format_args!("{http_method} {route}"),
        otel.kind = "server",
        otel.status_code = Empty,
        http.request.method = http_method,
        http.route = route,
        http.response.status_code = Empty,
        network.protocol.name = "http",
        mcpod.target = target,
        mcpod.era = Empty,
        mcpod.outcome = Empty,
        mcp.method.name = Empty,
        mcp.session.id = Empty,
        mcp.protocol.version = Empty,
        jsonrpc.request.id = Empty,
        gen_ai.operation.name = Empty,
        gen_ai.tool.name = Empty,
        gen_ai.prompt.name = Empty,
        mcp.resource.uri = Empty,
        error.type = Empty,
        era = Empty,
        method = Empty,
        session = Empty,
    );
    let parent = TraceContextPropagator::new().extract(&Headers(headers));
    if parent.span().span_context().is_valid() {
        // A span just made has not started: this cannot fail.
        let _ = span.set_parent(parent);
    }
    Some(span)
}

/// The span of a call to a backend of `target` (a child of the current
/// span); [`CallSpan::off`] when telemetry is off.
pub(crate) fn backend_span(
    target: &str,
    method: &str,
    params: Option<&RawValue>,
    protocol_version: Option<&str>,
) -> CallSpan {
    if !enabled() {
        return CallSpan(None);
    }
    let span = tracing::info_span!(
        target: TARGET,
        "backend call",
        otel.kind = "client",
        otel.status_code = Empty,
        network.transport = "pipe",
        mcpod.target = target,
        mcpod.outcome = Empty,
        mcp.method.name = Empty,
        mcp.protocol.version = protocol_version,
        gen_ai.operation.name = Empty,
        gen_ai.tool.name = Empty,
        gen_ai.prompt.name = Empty,
        mcp.resource.uri = Empty,
        error.type = Empty,
    );
    name_call(&span, method, params);
    CallSpan(Some(span))
}

/// The span of one backend call, ended when dropped; nothing when
/// telemetry is off.
#[derive(Debug, Default)]
pub(crate) struct CallSpan(Option<Span>);

impl CallSpan {
    /// No span (telemetry off, or a call resumed under its first span).
    pub(crate) fn off() -> CallSpan {
        CallSpan(None)
    }

    /// The span, if any.
    pub(crate) fn span(&self) -> Option<&Span> {
        self.0.as_ref()
    }
}

/// Records what a JSON-RPC message is on `span`: its method, id, and the
/// tool, prompt or resource it names; the span is named after them as the
/// conventions ask (`tools/call get_weather`).
pub(crate) fn describe_call(span: &Span, msg: &Message<'_>) {
    let (method, params, id) = match msg {
        Message::Request { method, params, id } => (method.as_ref(), *params, Some(id)),
        Message::Notification { method, params } => (method.as_ref(), *params, None),
        _ => return,
    };
    if let Some(id) = id {
        let id = id.get();
        span.record("jsonrpc.request.id", id.trim_matches('"'));
    }
    name_call(span, method, params);
}

fn name_call(span: &Span, method: &str, params: Option<&RawValue>) {
    #[derive(Deserialize, Default)]
    struct Named<'a> {
        #[serde(borrow, default)]
        name: Option<std::borrow::Cow<'a, str>>,
        #[serde(borrow, default)]
        uri: Option<std::borrow::Cow<'a, str>>,
    }
    let named: Named<'_> = params
        .and_then(|p| serde_json::from_str(p.get()).ok())
        .unwrap_or_default();
    span.record("mcp.method.name", method);
    let subject = match method {
        "tools/call" => {
            span.record("gen_ai.operation.name", "execute_tool");
            named.name.inspect(|n| {
                span.record("gen_ai.tool.name", n.as_ref());
            })
        }
        "prompts/get" => named.name.inspect(|n| {
            span.record("gen_ai.prompt.name", n.as_ref());
        }),
        "resources/read" | "resources/subscribe" | "resources/unsubscribe" => {
            named.uri.inspect(|u| {
                span.record("mcp.resource.uri", u.as_ref());
            })
        }
        _ => None,
    };
    let name = match subject {
        Some(s) => format!("{method} {s}"),
        None => method.to_owned(),
    };
    // The span may have started (entered): its name is the OpenTelemetry
    // span's to change, not a field's.
    span.context().span().update_name(name);
}

/// Records the client's era and protocol version.
pub(crate) fn record_protocol_version(span: &Span, era: &str, version: Option<&str>) {
    span.record("mcpod.era", era);
    if let Some(v) = version {
        span.record("mcp.protocol.version", v);
    }
}

/// Records the JSON-RPC method (of a route that reads no more of the
/// message).
pub(crate) fn record_method(span: &Span, method: &str) {
    span.record("mcp.method.name", method);
}

/// Records the legacy session.
pub(crate) fn record_session(span: &Span, id: &str) {
    span.record("mcp.session.id", id);
}

/// Records how it ended: `outcome` (a metrics label); a failure also as
/// `error.type` and the span's error status. `status`: the HTTP status of
/// a refusal.
pub(crate) fn record_end(span: &Span, outcome: &str, failed: bool, status: Option<u16>) {
    span.record("mcpod.outcome", outcome);
    if let Some(status) = status {
        span.record("http.response.status_code", status);
    }
    if failed {
        span.record("error.type", outcome);
        span.record("otel.status_code", "error");
    }
}

/// `params` with the W3C trace context of `span` in `_meta` (`traceparent`,
/// and `tracestate` when there is one), as SEP-414 carries it to the
/// backend; `None` when `params` is not an object (it goes as it is).
pub(crate) fn with_trace_context(span: &Span, params: Option<&RawValue>) -> Option<Box<RawValue>> {
    let mut fields = Fields::default();
    TraceContextPropagator::new().inject_context(&span.context(), &mut fields);
    let mut set: Vec<(&str, &str)> = Vec::with_capacity(2);
    if let Some(tp) = &fields.traceparent {
        set.push((TRACEPARENT, tp));
    }
    if let Some(ts) = fields.tracestate.as_deref().filter(|s| !s.is_empty()) {
        set.push((TRACESTATE, ts));
    }
    if set.is_empty() {
        return None;
    }
    let edited = with_meta_strings(params.map(RawValue::get), &set)?;
    RawValue::from_string(edited).ok()
}

/// The request's headers, read by the propagator.
struct Headers<'a>(&'a HeaderMap);

impl Extractor for Headers<'_> {
    fn get(&self, key: &str) -> Option<&str> {
        self.0.get(key).and_then(|v| v.to_str().ok())
    }

    fn keys(&self) -> Vec<&str> {
        self.0.keys().map(|k| k.as_str()).collect()
    }
}

/// What the propagator writes: the two W3C fields, nothing else kept.
#[derive(Default)]
struct Fields {
    traceparent: Option<String>,
    tracestate: Option<String>,
}

impl Injector for Fields {
    fn set(&mut self, key: &str, value: String) {
        match key {
            TRACEPARENT => self.traceparent = Some(value),
            TRACESTATE => self.tracestate = Some(value),
            _ => {}
        }
    }
}

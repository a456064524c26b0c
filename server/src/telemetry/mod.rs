//! OpenTelemetry: spans of HTTP requests and backend calls, exported over
//! OTLP (gRPC or HTTP/protobuf) when `[telemetry]` or the `OTEL_*`
//! variables name a collector, and W3C trace context carried from the
//! client's `traceparent` header to the backend's `params._meta`.
//!
//! Off by default, and then free: [`enabled`] is one relaxed atomic load,
//! and no span of this module is built.

mod export;
mod spans;

pub(crate) use export::{Telemetry, enabled};
pub(crate) use spans::{
    CallSpan, backend_span, describe_call, http_span, record_end, record_method,
    record_protocol_version, record_session, with_trace_context,
};

//! [`Record`]: each HTTP request counted in the metrics and logged (at
//! `debug`) when it ends (its body streamed to the end, or the client gone).

use std::sync::Arc;
use std::time::Instant;

use axum::response::{IntoResponse, Response};
use tracing::debug;

use super::errors::ApiError;
use crate::metrics::{Method, Metrics, Operation, Outcome, TargetCounters};
use crate::telemetry;

/// Counts a request in the metrics and logs it when dropped.
#[derive(Debug)]
pub(crate) struct Record {
    /// The target's series (and its name).
    counters: Arc<TargetCounters>,
    operation: Operation,
    /// Kept for the access log only when it is on.
    session: Option<String>,
    /// How it ended; [`Outcome::Disconnected`] if nothing else is set.
    pub(crate) outcome: Outcome,
    started: Instant,
    /// The request's span when telemetry is on: it ends with the record.
    span: Option<tracing::Span>,
    /// The HTTP status of a refusal.
    refused: Option<u16>,
}

impl Record {
    /// Starts timing a request to `target` (a metrics label).
    pub(crate) fn new(metrics: &Arc<Metrics>, target: &str, operation: Operation) -> Self {
        Record {
            counters: metrics.counters(target),
            operation,
            session: None,
            outcome: Outcome::Disconnected,
            started: Instant::now(),
            span: telemetry::enabled().then(tracing::Span::current),
            refused: None,
        }
    }

    /// A JSON-RPC request whose method is not known yet.
    pub(crate) fn rpc(metrics: &Arc<Metrics>, target: &str) -> Self {
        Self::new(metrics, target, Operation::Rpc(Method::OTHER))
    }

    /// Names the session.
    pub(crate) fn session(&mut self, id: &str) {
        if tracing::enabled!(tracing::Level::DEBUG) {
            self.session = Some(id.to_owned());
        }
        tracing::Span::current().record("session", id);
        if let Some(span) = &self.span {
            telemetry::record_session(span, id);
        }
    }

    /// Names the JSON-RPC method (or a client's response).
    pub(crate) fn method(&mut self, method: Method, name: &str) {
        self.operation = Operation::Rpc(method);
        tracing::Span::current().record("method", name);
        if let Some(span) = &self.span {
            telemetry::record_method(span, name);
        }
    }

    /// Answers with an error, recording its outcome.
    pub(crate) fn fail(&mut self, e: ApiError) -> Response {
        self.outcome = e.outcome();
        self.refused = Some(e.status.as_u16());
        debug!(status = %e.status, code = e.code, message = %e.message, "request refused");
        e.into_response()
    }
}

impl Drop for Record {
    fn drop(&mut self) {
        let elapsed = self.started.elapsed();
        self.counters.record(self.operation, self.outcome, elapsed);
        // The access log: at `debug`, so the default level writes nothing
        // per request (metrics and spans carry the same facts).
        debug!(
            target_name = %self.counters.target(),
            method = self.operation.label(),
            session = self.session.as_deref().unwrap_or("-"),
            outcome = self.outcome.label(),
            elapsed_ms = elapsed.as_secs_f64() * 1000.0,
            "request done"
        );
        if let Some(span) = &self.span {
            let failed = !matches!(self.outcome, Outcome::Ok | Outcome::InputRequired);
            telemetry::record_end(span, self.outcome.label(), failed, self.refused);
        }
    }
}

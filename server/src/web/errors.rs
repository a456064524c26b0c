//! Errors answered over HTTP: a status code plus a JSON-RPC error body;
//! the echo-style `{"message": …}` errors of the Memoh routes; and how
//! backend failures map to them.

use axum::Json;
use axum::body::Body;
use axum::response::{IntoResponse, Response};
use http::{HeaderName, HeaderValue, StatusCode, header};
use mcpod_tokio::{SendError, UpstreamError};
use serde_json::value::RawValue;
use std::time::Duration;

pub(crate) use mcpod_core::envelope::{
    HEADER_MISMATCH, INTERNAL_ERROR, INVALID_PARAMS, INVALID_REQUEST, METHOD_NOT_FOUND,
    PARSE_ERROR, SERVER_ERROR, UNSUPPORTED_PROTOCOL_VERSION,
};

use crate::bridge::NotReady;
use crate::metrics::Outcome;
use crate::targets::BotRefusal;

/// The session is unknown or expired (as the MCP SDKs report it).
pub(crate) const SESSION_NOT_FOUND: i64 = -32001;

/// An error answered with an HTTP status and a JSON-RPC error object.
#[derive(Debug, Clone)]
pub(crate) struct ApiError {
    /// HTTP status.
    pub(crate) status: StatusCode,
    /// JSON-RPC error code.
    pub(crate) code: i64,
    /// Message.
    pub(crate) message: String,
    /// The request's id as JSON, when known (else `null`).
    pub(crate) id: Option<String>,
    /// Raw `data`.
    pub(crate) data: Option<Box<RawValue>>,
    /// Extra response headers.
    pub(crate) headers: Vec<(HeaderName, HeaderValue)>,
}

impl ApiError {
    /// An error with this status, code and message.
    pub(crate) fn new(status: StatusCode, code: i64, message: impl Into<String>) -> Self {
        ApiError {
            status,
            code,
            message: message.into(),
            id: None,
            data: None,
            headers: Vec::new(),
        }
    }

    /// 400 with a JSON-RPC code.
    pub(crate) fn bad_request(code: i64, message: impl Into<String>) -> Self {
        Self::new(StatusCode::BAD_REQUEST, code, message)
    }

    /// Sets the id the error answers.
    pub(crate) fn with_id(mut self, id: Option<&RawValue>) -> Self {
        self.id = id.map(|i| i.get().to_owned());
        self
    }

    /// Sets `data`.
    pub(crate) fn with_data(mut self, data: Box<RawValue>) -> Self {
        self.data = Some(data);
        self
    }

    /// Adds a response header.
    pub(crate) fn with_header(mut self, name: HeaderName, value: HeaderValue) -> Self {
        self.headers.push((name, value));
        self
    }

    /// The JSON-RPC error frame.
    pub(crate) fn frame(&self) -> Vec<u8> {
        mcpod_core::json::error_frame(
            self.id.as_deref().unwrap_or("null"),
            self.code,
            &self.message,
            self.data.as_deref(),
        )
    }

    /// How a request refused with it ended, for metrics and logs.
    pub(crate) fn outcome(&self) -> Outcome {
        Outcome::of_status(self.status.as_u16())
    }
}

impl std::fmt::Display for ApiError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{} ({}): {}", self.status, self.code, self.message)
    }
}

impl IntoResponse for ApiError {
    fn into_response(self) -> Response {
        let mut response = Response::new(Body::from(self.frame()));
        *response.status_mut() = self.status;
        response.headers_mut().insert(
            header::CONTENT_TYPE,
            HeaderValue::from_static("application/json"),
        );
        for (name, value) in self.headers {
            response.headers_mut().append(name, value);
        }
        response
    }
}

/// A JSON response with status 200 from a ready frame.
pub(crate) fn json_response(frame: Vec<u8>) -> Response {
    let mut response = Response::new(Body::from(frame));
    response.headers_mut().insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static("application/json"),
    );
    response
}

/// 202 Accepted with no body.
pub(crate) fn accepted() -> Response {
    let mut response = Response::new(Body::empty());
    *response.status_mut() = StatusCode::ACCEPTED;
    response
}

/// An echo-style error of the Memoh routes: `{"message": …}` with a status.
pub(crate) fn message(status: StatusCode, text: impl Into<String>) -> Response {
    #[derive(serde::Serialize)]
    struct Message {
        message: String,
    }
    (
        status,
        Json(Message {
            message: text.into(),
        }),
    )
        .into_response()
}

impl IntoResponse for BotRefusal {
    fn into_response(self) -> Response {
        message(self.status, self.message)
    }
}

/// 503 with `Retry-After`: a limit is reached.
pub(crate) fn overloaded(status: StatusCode, message: impl Into<String>) -> ApiError {
    ApiError::new(status, SERVER_ERROR, message)
        .with_header(header::RETRY_AFTER, HeaderValue::from_static("1"))
}

/// 503 for a backend waiting out its restart backoff: `Retry-After` in
/// whole seconds (rounded up, at least 1), the same in the error's `data`.
fn restarting(e: &UpstreamError, retry_after: Duration) -> ApiError {
    let seconds = retry_after
        .as_secs()
        .saturating_add(u64::from(retry_after.subsec_nanos() > 0))
        .max(1);
    let data = mcpod_core::json::to_raw(&serde_json::json!({ "retryAfter": seconds }));
    ApiError::new(
        StatusCode::SERVICE_UNAVAILABLE,
        SERVER_ERROR,
        format!("backend unavailable: {e}"),
    )
    .with_data(data)
    .with_header(header::RETRY_AFTER, HeaderValue::from(seconds))
}

/// Maps an upstream failure to the HTTP error answering the call.
pub(crate) fn upstream_error(e: &UpstreamError) -> ApiError {
    match e {
        UpstreamError::Restarting { retry_after, .. } => restarting(e, *retry_after),
        UpstreamError::Send(
            SendError::TooManyCalls(_)
            | SendError::BackendNotReading(_)
            | SendError::NotReadyQueueFull(_)
            | SendError::AskingQueueFull(_),
        ) => overloaded(
            StatusCode::SERVICE_UNAVAILABLE,
            format!("backend overloaded: {e}"),
        ),
        UpstreamError::Send(SendError::InvalidId | SendError::DuplicateId(_)) => {
            ApiError::bad_request(INVALID_REQUEST, e.to_string())
        }
        // A bot container that is missing, another bot's or refused: the
        // same statuses as the Memoh routes (404 / 403 / 400 / 503).
        UpstreamError::SpawnFailed(io) => match BotRefusal::of_spawn_error(io) {
            Some(r) => ApiError::new(r.status, SERVER_ERROR, r.message),
            None => ApiError::new(
                StatusCode::BAD_GATEWAY,
                INTERNAL_ERROR,
                format!("backend unavailable: {e}"),
            ),
        },
        _ => ApiError::new(
            StatusCode::BAD_GATEWAY,
            INTERNAL_ERROR,
            format!("backend unavailable: {e}"),
        ),
    }
}

/// The error for a backend of `target` that is not ready.
pub(crate) fn not_ready(e: &NotReady, target: &str) -> ApiError {
    match e {
        NotReady::Failed(e) => upstream_error(e),
        NotReady::TimedOut => ApiError::new(
            StatusCode::GATEWAY_TIMEOUT,
            INTERNAL_ERROR,
            format!("backend of target `{target}` did not become ready in time"),
        ),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_restarting_backend_is_503_with_retry_after_in_whole_seconds() {
        for (ms, seconds) in [(0, 1), (1, 1), (999, 1), (1000, 1), (1001, 2), (9_500, 10)] {
            let e = UpstreamError::Restarting {
                retry_after: Duration::from_millis(ms),
                failures: 3,
            };
            let api = upstream_error(&e);
            assert_eq!(api.status, StatusCode::SERVICE_UNAVAILABLE);
            assert_eq!(api.code, SERVER_ERROR);
            assert!(api.message.contains("restarting"), "{}", api.message);
            let retry = api
                .headers
                .iter()
                .find(|(name, _)| name == header::RETRY_AFTER)
                .map(|(_, v)| v.to_str().unwrap_or_default().to_owned());
            assert_eq!(retry, Some(seconds.to_string()), "{ms} ms");
            let data = api.data.as_deref().map(RawValue::get);
            assert_eq!(
                data,
                Some(format!(r#"{{"retryAfter":{seconds}}}"#).as_str())
            );
        }
    }
}

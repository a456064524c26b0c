//! Errors answered over HTTP: a status code plus a JSON-RPC error body.

use axum::body::Body;
use axum::response::{IntoResponse, Response};
use http::{HeaderName, HeaderValue, StatusCode, header};
use serde_json::value::RawValue;

pub use mcpod_core::envelope::{
    INTERNAL_ERROR, INVALID_PARAMS, INVALID_REQUEST, METHOD_NOT_FOUND, PARSE_ERROR,
    UNSUPPORTED_PROTOCOL_VERSION,
};

/// MCP 2026-07-28: HTTP headers do not match the body.
pub const HEADER_MISMATCH: i64 = -32020;
/// Generic server error: limits, unavailable backend, auth.
pub const SERVER_ERROR: i64 = -32000;
/// The session is unknown or expired (as the MCP SDKs report it).
pub const SESSION_NOT_FOUND: i64 = -32001;

/// An error answered with an HTTP status and a JSON-RPC error object.
#[derive(Debug, Clone)]
pub struct ApiError {
    /// HTTP status.
    pub status: StatusCode,
    /// JSON-RPC error code.
    pub code: i64,
    /// Message.
    pub message: String,
    /// The request's id as JSON, when known (else `null`).
    pub id: Option<String>,
    /// Raw `data`.
    pub data: Option<Box<RawValue>>,
    /// Extra response headers.
    pub headers: Vec<(HeaderName, HeaderValue)>,
}

impl ApiError {
    /// An error with this status, code and message.
    pub fn new(status: StatusCode, code: i64, message: impl Into<String>) -> Self {
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
    pub fn bad_request(code: i64, message: impl Into<String>) -> Self {
        Self::new(StatusCode::BAD_REQUEST, code, message)
    }

    /// Sets the id the error answers.
    pub fn with_id(mut self, id: Option<&RawValue>) -> Self {
        self.id = id.map(|i| i.get().to_owned());
        self
    }

    /// Sets `data`.
    pub fn with_data(mut self, data: Box<RawValue>) -> Self {
        self.data = Some(data);
        self
    }

    /// Adds a response header.
    pub fn with_header(mut self, name: HeaderName, value: HeaderValue) -> Self {
        self.headers.push((name, value));
        self
    }

    /// The JSON-RPC error frame.
    pub fn frame(&self) -> Vec<u8> {
        mcpod_core::json::error_frame(
            self.id.as_deref().unwrap_or("null"),
            self.code,
            &self.message,
            self.data.as_deref(),
        )
    }

    /// A short label for metrics and logs.
    pub fn outcome(&self) -> &'static str {
        match self.status.as_u16() {
            401 => "unauthorized",
            403 => "forbidden",
            404 => "not_found",
            413 => "too_large",
            429 | 503 => "overloaded",
            s if s >= 500 => "error",
            _ => "rejected",
        }
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
pub fn json_response(frame: Vec<u8>) -> Response {
    let mut response = Response::new(Body::from(frame));
    response.headers_mut().insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static("application/json"),
    );
    response
}

/// 202 Accepted with no body.
pub fn accepted() -> Response {
    let mut response = Response::new(Body::empty());
    *response.status_mut() = StatusCode::ACCEPTED;
    response
}

/// Raw JSON for a value that serializes (never fails for plain data).
pub fn raw_json<T: serde::Serialize>(value: &T) -> Box<RawValue> {
    serde_json::value::to_raw_value(value).unwrap_or_else(|_| null_raw())
}

/// The raw JSON `null`.
pub fn null_raw() -> Box<RawValue> {
    RawValue::NULL.to_owned()
}

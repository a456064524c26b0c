//! Reading request bodies within the configured limit.

use axum::body::{Body, Bytes};
use http::{HeaderMap, StatusCode};

use crate::config::Limits;

use super::errors::{ApiError, INVALID_REQUEST, PARSE_ERROR};
use super::headers::is_json_content_type;

/// Reads the body of a JSON-RPC POST: 415 unless its `Content-Type` is
/// JSON, then as [`read_body`].
pub(crate) async fn read_json_body(
    headers: &HeaderMap,
    body: Body,
    limits: &Limits,
) -> Result<Bytes, ApiError> {
    if !is_json_content_type(headers) {
        return Err(ApiError::new(
            StatusCode::UNSUPPORTED_MEDIA_TYPE,
            INVALID_REQUEST,
            "Content-Type must be application/json",
        ));
    }
    read_body(body, limits).await
}

/// Reads a request body up to `limits.max_body_bytes` (413 beyond), within
/// `limits.body_read_timeout` (408 after it: a client trickling its body
/// holds a connection and its buffer, so it gets a deadline for the whole).
pub(crate) async fn read_body(body: Body, limits: &Limits) -> Result<Bytes, ApiError> {
    let limit = limits.max_body_bytes;
    let read = tokio::time::timeout(limits.body_read_timeout, axum::body::to_bytes(body, limit));
    let Ok(read) = read.await else {
        return Err(ApiError::new(
            StatusCode::REQUEST_TIMEOUT,
            INVALID_REQUEST,
            format!(
                "the request body did not arrive within {} ms",
                limits.body_read_timeout.as_millis()
            ),
        ));
    };
    read.map_err(|e| {
        let mut source: Option<&(dyn std::error::Error + 'static)> = Some(&e);
        let mut too_large = false;
        while let Some(s) = source {
            too_large |= s.is::<http_body_util::LengthLimitError>();
            source = s.source();
        }
        if too_large {
            ApiError::new(
                StatusCode::PAYLOAD_TOO_LARGE,
                INVALID_REQUEST,
                format!("request body is larger than the limit of {limit} bytes"),
            )
        } else {
            ApiError::bad_request(PARSE_ERROR, format!("could not read the request body: {e}"))
        }
    })
}

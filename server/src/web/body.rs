//! Reading request bodies within the configured limit.

use axum::body::{Body, Bytes};
use http::StatusCode;

use super::errors::{ApiError, INVALID_REQUEST, PARSE_ERROR};

/// Reads a request body up to `limit` bytes (413 beyond).
pub(crate) async fn read_body(body: Body, limit: usize) -> Result<Bytes, ApiError> {
    axum::body::to_bytes(body, limit).await.map_err(|e| {
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

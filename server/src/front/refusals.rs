//! Refusals every front end gives the same way.

use http::StatusCode;
use mcpod_core::{LEGACY_VERSIONS, MODERN_VERSIONS};
use serde_json::json;
use serde_json::value::RawValue;

use crate::targets::Target;
use crate::web::errors::{ApiError, UNSUPPORTED_PROTOCOL_VERSION, overloaded};

/// 503 for a target whose call budget is used up.
pub(crate) fn target_busy(target: &Target) -> ApiError {
    overloaded(
        StatusCode::SERVICE_UNAVAILABLE,
        format!(
            "target `{}` has {} calls in flight, its limit; retry later",
            target.name(),
            target.config.max_calls_in_flight
        ),
    )
}

/// The -32022 answer for a version the gateway does not serve.
pub(crate) fn unsupported_version(requested: &str, id: Option<&RawValue>) -> ApiError {
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
    .with_data(mcpod_core::json::to_raw(
        &json!({ "supported": supported, "requested": requested }),
    ))
}

//! Refusals every front end gives the same way.

use http::StatusCode;
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

/// 503 for a target whose stream budget (`max_streams_per_target`: legacy
/// GET streams and `subscriptions/listen` streams) is used up.
pub(crate) fn streams_busy(target: &Target) -> ApiError {
    overloaded(
        StatusCode::SERVICE_UNAVAILABLE,
        format!(
            "target `{}` has {} streams open, its limit; retry later",
            target.name(),
            target.limits.max_streams_per_target
        ),
    )
}

/// 429 for a token that holds `max` of a target's `what` already.
pub(crate) fn principal_busy(target: &Target, what: &str, max: usize) -> ApiError {
    overloaded(
        StatusCode::TOO_MANY_REQUESTS,
        format!(
            "this token has {max} {what} on target `{}`, its limit; retry later",
            target.name()
        ),
    )
}

/// The -32022 answer for a version the gateway does not serve to this
/// kind of client; `supported` lists what it does (what discovery says, for
/// a 2026-07-28 client).
pub(crate) fn unsupported_version(
    requested: &str,
    id: Option<&RawValue>,
    supported: &[&str],
) -> ApiError {
    let supported: Vec<&str> = supported.iter().rev().copied().collect();
    ApiError::bad_request(
        UNSUPPORTED_PROTOCOL_VERSION,
        format!("protocol version `{requested}` is not supported"),
    )
    .with_id(id)
    .with_data(mcpod_core::json::to_raw(
        &json!({ "supported": supported, "requested": requested }),
    ))
}

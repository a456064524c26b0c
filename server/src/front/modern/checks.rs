//! The 2026-07-28 request checks: `MCP-Protocol-Version` against `_meta`,
//! `Mcp-Method` and `Mcp-Name` against the body.

use http::HeaderMap;
use serde_json::value::RawValue;

use crate::web::errors::{ApiError, HEADER_MISMATCH, INVALID_PARAMS};
use crate::web::headers;

/// What the checks read of a request's params.
#[derive(Debug, Default)]
pub(super) struct Named<'a> {
    /// `_meta`'s protocol version.
    pub(super) meta_version: Option<&'a str>,
    /// `params.name` (tools/call, prompts/get).
    pub(super) name: Option<&'a str>,
    /// `params.uri` (resources/read).
    pub(super) uri: Option<&'a str>,
}

fn mismatch(message: impl Into<String>, id: Option<&RawValue>) -> ApiError {
    ApiError::bad_request(HEADER_MISMATCH, message).with_id(id)
}

/// 400 + -32020: a header is missing or does not match the body.
pub(super) fn missing_version(id: Option<&RawValue>) -> ApiError {
    mismatch("missing MCP-Protocol-Version header", id)
}

/// Checks `MCP-Protocol-Version` against `_meta` and `Mcp-Method`/`Mcp-Name`
/// against the body.
pub(super) fn check_headers(
    headers: &HeaderMap,
    method: &str,
    named: &Named<'_>,
    header_version: &str,
    id: Option<&RawValue>,
) -> Result<(), ApiError> {
    let is_request = id.is_some();
    match named.meta_version {
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
        "tools/call" | "prompts/get" => Some(named.name.ok_or_else(|| {
            ApiError::bad_request(INVALID_PARAMS, format!("{method} needs params.name")).with_id(id)
        })?),
        "resources/read" => Some(named.uri.ok_or_else(|| {
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

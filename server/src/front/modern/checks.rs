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
    /// Whether `_meta` declares the client's capabilities.
    pub(super) has_capabilities: bool,
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
    let invalid = |message: &str| ApiError::bad_request(INVALID_PARAMS, message).with_id(id);
    match named.meta_version {
        Some(v) if v != header_version => {
            return Err(mismatch(
                format!(
                    "MCP-Protocol-Version header `{header_version}` does not match _meta protocolVersion `{v}`"
                ),
                id,
            ));
        }
        // The envelope is part of the params: its absence is invalid params.
        None if is_request => {
            return Err(invalid(
                "params._meta[\"io.modelcontextprotocol/protocolVersion\"] is required",
            ));
        }
        _ => {}
    }
    if is_request && !named.has_capabilities {
        return Err(invalid(
            "params._meta[\"io.modelcontextprotocol/clientCapabilities\"] is required",
        ));
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

/// Checks the `Mcp-Param-*` headers of a `tools/call` (SEP-2243): each
/// argument the tool's schema mirrors into a header must come with that
/// header, holding the same value (plain, or `=?base64?…?=`), and a header
/// must not name an argument the body lacks. 400 + -32020 otherwise.
pub(super) fn check_param_headers(
    headers: &HeaderMap,
    arguments: Option<&std::collections::HashMap<String, &RawValue>>,
    params: &[crate::bridge::HeaderParam],
    id: Option<&RawValue>,
) -> Result<(), ApiError> {
    for p in params {
        let name = format!("mcp-param-{}", p.header.to_ascii_lowercase());
        let mut values = headers.get_all(name.as_str()).iter();
        let header = match (values.next(), values.next()) {
            (None, _) => None,
            (Some(v), None) => Some(v.to_str().map(str::trim).map_err(|_| {
                mismatch(
                    format!("header Mcp-Param-{} is not visible ASCII", p.header),
                    id,
                )
            })?),
            (Some(_), Some(_)) => {
                return Err(mismatch(
                    format!("header Mcp-Param-{} is sent more than once", p.header),
                    id,
                ));
            }
        };
        let body = arguments.and_then(|a| a.get(&p.argument));
        match (header, body) {
            (None, None) => {}
            (None, Some(_)) => {
                return Err(mismatch(
                    format!(
                        "argument `{}` needs its header Mcp-Param-{}",
                        p.argument, p.header
                    ),
                    id,
                ));
            }
            (Some(_), None) => {
                return Err(mismatch(
                    format!(
                        "header Mcp-Param-{} names argument `{}`, which the body lacks",
                        p.header, p.argument
                    ),
                    id,
                ));
            }
            (Some(header), Some(body)) => {
                let decoded = headers::decode_value(header, "Mcp-Param-*").map_err(|_| {
                    mismatch(
                        format!("header Mcp-Param-{} is not valid base64", p.header),
                        id,
                    )
                })?;
                let expected = match serde_json::from_str::<serde_json::Value>(body.get()) {
                    Ok(serde_json::Value::String(s)) => Some(s),
                    Ok(v @ (serde_json::Value::Number(_) | serde_json::Value::Bool(_))) => {
                        Some(v.to_string())
                    }
                    _ => None,
                };
                if expected.as_deref() != Some(decoded.as_str()) {
                    return Err(mismatch(
                        format!(
                            "header Mcp-Param-{} does not match argument `{}`",
                            p.header, p.argument
                        ),
                        id,
                    ));
                }
            }
        }
    }
    Ok(())
}

//! JSON-RPC 2.0 framing: classifying one inbound line and encoding outbound lines.
//!
//! Ids are kept as raw JSON text ([`RawValue`]) from the moment they are read
//! until they are written back, so `1`, `"1"` and `1152921504606846976`
//! round-trip byte for byte.

use std::borrow::Cow;

use serde::de::IgnoredAny;
use serde::{Deserialize, Deserializer, Serialize};
use serde_json::Value;
use serde_json::value::RawValue;

/// JSON-RPC / MCP error codes used by this server.
pub(crate) mod code {
    /// Invalid JSON was received.
    pub(crate) const PARSE_ERROR: i64 = -32700;
    /// The JSON sent is not a valid request object.
    pub(crate) const INVALID_REQUEST: i64 = -32600;
    /// The method does not exist in the era the caller uses.
    pub(crate) const METHOD_NOT_FOUND: i64 = -32601;
    /// Invalid method parameters.
    pub(crate) const INVALID_PARAMS: i64 = -32602;
    /// Internal error.
    pub(crate) const INTERNAL_ERROR: i64 = -32603;
    /// Legacy MCP: resource not found.
    pub(crate) const RESOURCE_NOT_FOUND: i64 = -32002;
    /// MCP 2026-07-28: unsupported protocol version.
    pub(crate) const UNSUPPORTED_PROTOCOL_VERSION: i64 = -32022;
}

/// A JSON-RPC error object, sent back as the `error` member of a response.
#[derive(Debug, Clone, Serialize)]
pub(crate) struct RpcError {
    pub(crate) code: i64,
    pub(crate) message: String,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub(crate) data: Option<Value>,
}

impl RpcError {
    pub(crate) fn new(code: i64, message: impl Into<String>) -> Self {
        Self {
            code,
            message: message.into(),
            data: None,
        }
    }

    pub(crate) fn parse_error(detail: impl std::fmt::Display) -> Self {
        Self::new(code::PARSE_ERROR, format!("parse error: {detail}"))
    }

    pub(crate) fn invalid_request(detail: impl std::fmt::Display) -> Self {
        Self::new(code::INVALID_REQUEST, format!("invalid request: {detail}"))
    }

    pub(crate) fn method_not_found(method: &str) -> Self {
        Self::new(
            code::METHOD_NOT_FOUND,
            format!("method not found: {method}"),
        )
    }

    pub(crate) fn invalid_params(detail: impl std::fmt::Display) -> Self {
        Self::new(code::INVALID_PARAMS, format!("invalid params: {detail}"))
    }

    pub(crate) fn internal(detail: impl std::fmt::Display) -> Self {
        Self::new(code::INTERNAL_ERROR, format!("internal error: {detail}"))
    }
}

/// One classified inbound line.
#[derive(Debug)]
pub(crate) enum Inbound<'a> {
    /// A request: needs exactly one response with the same id.
    Request {
        id: &'a RawValue,
        method: Cow<'a, str>,
        params: Option<&'a RawValue>,
    },
    /// A notification: never answered.
    Notification {
        method: Cow<'a, str>,
        params: Option<&'a RawValue>,
    },
    /// The client's response to a request this server sent.
    Response {
        id: &'a RawValue,
        /// The `result` or the `error` member, verbatim.
        body: &'a RawValue,
        is_error: bool,
    },
    /// Not a usable message; answer with this error (id `null` when unknown).
    Invalid {
        id: Option<&'a RawValue>,
        error: RpcError,
    },
}

/// Deserializes a member that is present (even as `null`) into `Some(raw)`.
fn present<'de, D>(d: D) -> Result<Option<&'de RawValue>, D::Error>
where
    D: Deserializer<'de>,
{
    <&'de RawValue>::deserialize(d).map(Some)
}

#[derive(Deserialize)]
struct Frame<'a> {
    #[serde(borrow, default)]
    jsonrpc: Option<Cow<'a, str>>,
    #[serde(borrow, default, deserialize_with = "present")]
    id: Option<&'a RawValue>,
    #[serde(borrow, default)]
    method: Option<Cow<'a, str>>,
    #[serde(borrow, default, deserialize_with = "present")]
    params: Option<&'a RawValue>,
    #[serde(borrow, default, deserialize_with = "present")]
    result: Option<&'a RawValue>,
    #[serde(borrow, default, deserialize_with = "present")]
    error: Option<&'a RawValue>,
}

/// Only the id, for answering a malformed request with the id it carried.
#[derive(Deserialize)]
struct IdOnly<'a> {
    #[serde(borrow, default, deserialize_with = "present")]
    id: Option<&'a RawValue>,
}

/// True if `raw` is a valid MCP request id: a string or an integer.
pub(crate) fn is_valid_id(raw: &RawValue) -> bool {
    let text = raw.get();
    if text.starts_with('"') {
        return true;
    }
    let digits = text.strip_prefix('-').unwrap_or(text);
    !digits.is_empty() && digits.bytes().all(|b| b.is_ascii_digit())
}

/// A canonical key for an id, so that two spellings of one string id match.
pub(crate) fn id_key(raw: &RawValue) -> String {
    let text = raw.get();
    if text.starts_with('"') {
        match serde_json::from_str::<String>(text) {
            Ok(s) => format!("s:{s}"),
            Err(_) => format!("r:{text}"),
        }
    } else {
        format!("n:{text}")
    }
}

/// Classifies one line (already stripped of its line ending).
pub(crate) fn decode(line: &str) -> Inbound<'_> {
    let frame: Frame<'_> = match serde_json::from_str(line) {
        Ok(frame) => frame,
        Err(parse_error) => return undecodable(line, &parse_error),
    };
    let id = match frame.id {
        Some(id) if !is_valid_id(id) => {
            return Inbound::Invalid {
                id: None,
                error: RpcError::invalid_request("id must be a string or an integer"),
            };
        }
        other => other,
    };
    if frame.jsonrpc.as_deref() != Some("2.0") {
        return Inbound::Invalid {
            id,
            error: RpcError::invalid_request("jsonrpc must be \"2.0\""),
        };
    }
    match (frame.method, id) {
        (Some(method), Some(id)) => Inbound::Request {
            id,
            method,
            params: frame.params,
        },
        (Some(method), None) => Inbound::Notification {
            method,
            params: frame.params,
        },
        (None, Some(id)) => match (frame.result, frame.error) {
            (Some(body), None) => Inbound::Response {
                id,
                body,
                is_error: false,
            },
            (None, Some(body)) => Inbound::Response {
                id,
                body,
                is_error: true,
            },
            _ => Inbound::Invalid {
                id: Some(id),
                error: RpcError::invalid_request(
                    "a message with an id needs a method, or exactly one of result and error",
                ),
            },
        },
        (None, None) => Inbound::Invalid {
            id: None,
            error: RpcError::invalid_request("missing method"),
        },
    }
}

/// A line that is not a JSON-RPC object: tell invalid JSON from valid JSON of the wrong shape.
fn undecodable<'a>(line: &'a str, parse_error: &serde_json::Error) -> Inbound<'a> {
    if serde_json::from_str::<IgnoredAny>(line).is_err() {
        return Inbound::Invalid {
            id: None,
            error: RpcError::parse_error(parse_error),
        };
    }
    if line.trim_start().starts_with('[') {
        return Inbound::Invalid {
            id: None,
            error: RpcError::invalid_request("JSON-RPC batches are not supported"),
        };
    }
    let id = serde_json::from_str::<IdOnly<'_>>(line)
        .ok()
        .and_then(|only| only.id)
        .filter(|id| is_valid_id(id));
    Inbound::Invalid {
        id,
        error: RpcError::invalid_request(parse_error),
    }
}

/// Used if encoding ever fails: a response that is always valid JSON.
const ENCODING_FAILED: &[u8] =
    b"{\"jsonrpc\":\"2.0\",\"id\":null,\"error\":{\"code\":-32603,\"message\":\"internal error: cannot encode message\"}}\n";

fn line_of(message: &impl Serialize) -> Vec<u8> {
    let mut buf = Vec::with_capacity(256);
    match serde_json::to_writer(&mut buf, message) {
        Ok(()) => {
            buf.push(b'\n');
            buf
        }
        Err(_) => ENCODING_FAILED.to_vec(),
    }
}

#[derive(Serialize)]
struct ResultOut<'a, T> {
    jsonrpc: &'static str,
    id: &'a RawValue,
    result: &'a T,
}

#[derive(Serialize)]
struct ErrorOut<'a> {
    jsonrpc: &'static str,
    id: Option<&'a RawValue>,
    error: &'a RpcError,
}

#[derive(Serialize)]
struct NotificationOut<'a, T> {
    jsonrpc: &'static str,
    method: &'a str,
    #[serde(skip_serializing_if = "Option::is_none")]
    params: Option<&'a T>,
}

#[derive(Serialize)]
struct RequestOut<'a, T> {
    jsonrpc: &'static str,
    id: &'a RawValue,
    method: &'a str,
    params: &'a T,
}

/// A success response line.
pub(crate) fn response(id: &RawValue, result: &impl Serialize) -> Vec<u8> {
    let mut buf = Vec::with_capacity(256);
    let out = ResultOut {
        jsonrpc: "2.0",
        id,
        result,
    };
    match serde_json::to_writer(&mut buf, &out) {
        Ok(()) => {
            buf.push(b'\n');
            buf
        }
        Err(e) => error_response(Some(id), &RpcError::internal(format!("cannot encode: {e}"))),
    }
}

/// An error response line; `id: None` is written as `null`.
pub(crate) fn error_response(id: Option<&RawValue>, error: &RpcError) -> Vec<u8> {
    line_of(&ErrorOut {
        jsonrpc: "2.0",
        id,
        error,
    })
}

/// A notification line (params omitted when `None`).
pub(crate) fn notification(method: &str, params: Option<&impl Serialize>) -> Vec<u8> {
    line_of(&NotificationOut {
        jsonrpc: "2.0",
        method,
        params,
    })
}

/// A server-to-client request line.
pub(crate) fn request(id: &RawValue, method: &str, params: &impl Serialize) -> Vec<u8> {
    line_of(&RequestOut {
        jsonrpc: "2.0",
        id,
        method,
        params,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ids_keep_their_spelling() {
        for id in ["1", "\"1\"", "1152921504606846976", "\"\u{fc}\"", "-7"] {
            let line = format!(r#"{{"jsonrpc":"2.0","id":{id},"method":"ping"}}"#);
            match decode(&line) {
                Inbound::Request { id: got, .. } => {
                    assert_eq!(got.get(), id);
                    let out = response(got, &serde_json::json!({}));
                    let text = String::from_utf8(out).expect("utf-8");
                    assert!(text.contains(&format!("\"id\":{id},")), "{text}");
                }
                other => panic!("{other:?}"),
            }
        }
    }

    #[test]
    fn classifies_malformed_lines() {
        let cases = [
            ("not json", code::PARSE_ERROR, None),
            ("[1,2]", code::INVALID_REQUEST, None),
            (
                r#"{"jsonrpc":"2.0","id":null,"method":"x"}"#,
                code::INVALID_REQUEST,
                None,
            ),
            (
                r#"{"jsonrpc":"2.0","id":1.5,"method":"x"}"#,
                code::INVALID_REQUEST,
                None,
            ),
            (
                r#"{"jsonrpc":"1.0","id":4,"method":"x"}"#,
                code::INVALID_REQUEST,
                Some("4"),
            ),
            (
                r#"{"jsonrpc":"2.0","id":5,"method":7}"#,
                code::INVALID_REQUEST,
                Some("5"),
            ),
            (
                r#"{"jsonrpc":"2.0","id":6}"#,
                code::INVALID_REQUEST,
                Some("6"),
            ),
            ("5", code::INVALID_REQUEST, None),
        ];
        for (line, want, want_id) in cases {
            match decode(line) {
                Inbound::Invalid { id, error } => {
                    assert_eq!(error.code, want, "{line}");
                    assert_eq!(id.map(RawValue::get), want_id, "{line}");
                }
                other => panic!("{line}: {other:?}"),
            }
        }
    }

    #[test]
    fn classifies_responses_and_notifications() {
        assert!(matches!(
            decode(r#"{"jsonrpc":"2.0","id":"ask-1","result":{"roots":[]}}"#),
            Inbound::Response {
                is_error: false,
                ..
            }
        ));
        assert!(matches!(
            decode(r#"{"jsonrpc":"2.0","id":"ask-1","error":{"code":1,"message":"no"}}"#),
            Inbound::Response { is_error: true, .. }
        ));
        assert!(matches!(
            decode(r#"{"jsonrpc":"2.0","method":"notifications/initialized"}"#),
            Inbound::Notification { .. }
        ));
    }

    #[test]
    fn id_keys_normalise_string_escapes() {
        let a: Box<RawValue> = RawValue::from_string("\"A\"".into()).expect("json");
        let b: Box<RawValue> = RawValue::from_string("\"\\u0041\"".into()).expect("json");
        let n: Box<RawValue> = RawValue::from_string("65".into()).expect("json");
        assert_eq!(id_key(&a), id_key(&b));
        assert_ne!(id_key(&a), id_key(&n));
    }
}

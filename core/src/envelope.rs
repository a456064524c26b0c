//! JSON-RPC 2.0 envelopes, parsed without touching payloads.
//!
//! Only `jsonrpc`, `id`, `method` and the presence of `params`, `result` and
//! `error` are read; every payload stays a borrowed [`RawValue`] so it goes
//! back on the wire exactly as it came, and ids keep their exact spelling
//! (`1` is not `"1"`, and `2^60` keeps every digit).

use std::borrow::Cow;
use std::fmt;

use serde::Deserialize;
use serde_json::value::RawValue;
use thiserror::Error;

/// JSON-RPC parse error.
pub const PARSE_ERROR: i64 = -32700;
/// JSON-RPC invalid request.
pub const INVALID_REQUEST: i64 = -32600;
/// JSON-RPC method not found.
pub const METHOD_NOT_FOUND: i64 = -32601;
/// JSON-RPC invalid params.
pub const INVALID_PARAMS: i64 = -32602;
/// JSON-RPC internal error.
pub const INTERNAL_ERROR: i64 = -32603;
/// Implementation-defined server error (limits, unavailable backend).
pub const SERVER_ERROR: i64 = -32000;
/// A request that timed out (the code mcpod and the MCP SDKs use).
pub const REQUEST_TIMEOUT: i64 = -32001;
/// A request the client (or the gateway for it) cancelled.
pub const REQUEST_CANCELLED: i64 = -32800;
/// MCP 2026-07-28: HTTP headers do not match the body.
pub const HEADER_MISMATCH: i64 = -32020;
/// MCP 2026-07-28: the request needs a client capability it did not declare.
pub const MISSING_REQUIRED_CLIENT_CAPABILITY: i64 = -32021;
/// MCP 2026-07-28: unsupported protocol version.
pub const UNSUPPORTED_PROTOCOL_VERSION: i64 = -32022;

/// Why a frame is not a usable JSON-RPC 2.0 message.
#[derive(Debug, Clone, PartialEq, Eq, Error)]
#[non_exhaustive]
pub enum EnvelopeError {
    /// The bytes are not UTF-8.
    #[error("message is not valid UTF-8")]
    NotUtf8,
    /// The bytes are not JSON (or an object with duplicate envelope keys).
    #[error("message is not valid JSON: {0}")]
    NotJson(String),
    /// A JSON array: batches were removed from MCP in 2025-06-18.
    #[error("JSON-RPC batches (arrays) are not supported")]
    Batch,
    /// JSON, but not an object.
    #[error("message is not a JSON object")]
    NotObject,
    /// `jsonrpc` missing or not `"2.0"`.
    #[error("`jsonrpc` must be \"2.0\"")]
    BadVersion,
    /// An id that is not a string or a number (MCP also forbids `null`).
    #[error("id must be a string or a number")]
    InvalidId,
    /// A method that is the empty string.
    #[error("method must not be empty")]
    EmptyMethod,
    /// Neither request, notification nor response.
    #[error("not a JSON-RPC request, notification or response: {0}")]
    InvalidShape(&'static str),
}

impl EnvelopeError {
    /// The JSON-RPC error code that answers this fault.
    pub fn code(&self) -> i64 {
        match self {
            EnvelopeError::NotUtf8 | EnvelopeError::NotJson(_) => PARSE_ERROR,
            EnvelopeError::EmptyMethod => METHOD_NOT_FOUND,
            _ => INVALID_REQUEST,
        }
    }
}

/// A JSON-RPC id, kept as its exact JSON text (a string or a number).
#[derive(Clone, PartialEq, Eq, Hash)]
pub struct Id(Box<str>);

impl Id {
    /// Validates and copies an id from raw JSON.
    pub fn from_raw(raw: &RawValue) -> Result<Self, EnvelopeError> {
        Self::parse(raw.get())
    }

    /// Validates JSON text as an id: a JSON string or number, nothing else.
    pub fn parse(json: &str) -> Result<Self, EnvelopeError> {
        let json = json.trim_matches(|c: char| c.is_ascii_whitespace());
        if is_valid_id(json) {
            Ok(Id(json.into()))
        } else {
            Err(EnvelopeError::InvalidId)
        }
    }

    /// An integer id.
    pub fn from_u64(n: u64) -> Self {
        Id(n.to_string().into_boxed_str())
    }

    /// The id's exact JSON text, ready to splice into a frame.
    pub fn as_json(&self) -> &str {
        &self.0
    }
}

impl fmt::Debug for Id {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "Id({})", self.0)
    }
}

impl fmt::Display for Id {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

/// Whether raw JSON text (already known to be valid JSON) is a string or
/// number, the only id shapes MCP allows.
fn is_valid_id(json: &str) -> bool {
    match json.as_bytes().first() {
        Some(b'"') => serde_json::from_str::<&RawValue>(json).is_ok() && json.len() >= 2,
        Some(b'-' | b'0'..=b'9') => is_json_number(json.as_bytes()),
        _ => false,
    }
}

/// JSON's number grammar, checked by hand so that numbers beyond `f64`
/// (`1e400`, 40-digit integers) are still accepted byte-exact.
fn is_json_number(s: &[u8]) -> bool {
    let digits = |s: &[u8], i: &mut usize| {
        let start = *i;
        while *i < s.len() && s[*i].is_ascii_digit() {
            *i += 1;
        }
        *i > start
    };
    let mut i = 0;
    if s.first() == Some(&b'-') {
        i += 1;
    }
    match s.get(i) {
        Some(b'0') => i += 1,
        Some(b'1'..=b'9') => {
            digits(s, &mut i);
        }
        _ => return false,
    }
    if s.get(i) == Some(&b'.') {
        i += 1;
        if !digits(s, &mut i) {
            return false;
        }
    }
    if matches!(s.get(i), Some(b'e' | b'E')) {
        i += 1;
        if matches!(s.get(i), Some(b'+' | b'-')) {
            i += 1;
        }
        if !digits(s, &mut i) {
            return false;
        }
    }
    i == s.len()
}

/// One parsed JSON-RPC message, borrowing from its frame.
#[derive(Debug, Clone)]
pub enum Message<'a> {
    /// A request: expects exactly one response with the same id.
    Request {
        /// The request id (validated: string or number).
        id: &'a RawValue,
        /// The method name.
        method: Cow<'a, str>,
        /// Raw params, if present.
        params: Option<&'a RawValue>,
    },
    /// A notification: no id, no response.
    Notification {
        /// The method name.
        method: Cow<'a, str>,
        /// Raw params, if present.
        params: Option<&'a RawValue>,
    },
    /// A successful response.
    Response {
        /// The id of the request answered.
        id: &'a RawValue,
        /// The raw result.
        result: &'a RawValue,
    },
    /// An error response. The id is absent (`null`) when the peer could not
    /// read the request's id.
    Error {
        /// The id of the request answered, if known.
        id: Option<&'a RawValue>,
        /// The raw error object (`code`, `message`, `data` kept as is).
        error: &'a RawValue,
    },
}

#[derive(Deserialize)]
struct Envelope<'a> {
    #[serde(borrow)]
    jsonrpc: Option<Cow<'a, str>>,
    #[serde(borrow, default, deserialize_with = "raw_keeping_null")]
    id: Option<&'a RawValue>,
    #[serde(borrow)]
    method: Option<Cow<'a, str>>,
    #[serde(borrow)]
    params: Option<&'a RawValue>,
    #[serde(borrow)]
    result: Option<&'a RawValue>,
    #[serde(borrow)]
    error: Option<&'a RawValue>,
}

/// Reads a present field as raw JSON even when it is `null`, so a `null` id
/// is seen (and refused) rather than mistaken for an absent one.
fn raw_keeping_null<'de, D>(d: D) -> Result<Option<&'de RawValue>, D::Error>
where
    D: serde::Deserializer<'de>,
{
    <&RawValue>::deserialize(d).map(Some)
}

impl<'a> Message<'a> {
    /// Parses one frame's envelope.
    pub fn parse(frame: &'a [u8]) -> Result<Self, EnvelopeError> {
        let text = std::str::from_utf8(frame).map_err(|_| EnvelopeError::NotUtf8)?;
        Self::parse_str(text)
    }

    /// Parses one message's envelope from text.
    pub fn parse_str(text: &'a str) -> Result<Self, EnvelopeError> {
        match text.trim_start().as_bytes().first() {
            Some(b'{') => {}
            Some(b'[') => {
                return Err(match serde_json::from_str::<&RawValue>(text) {
                    Ok(_) => EnvelopeError::Batch,
                    Err(e) => EnvelopeError::NotJson(e.to_string()),
                });
            }
            _ => {
                return Err(match serde_json::from_str::<&RawValue>(text) {
                    Ok(_) => EnvelopeError::NotObject,
                    Err(e) => EnvelopeError::NotJson(e.to_string()),
                });
            }
        }
        let env: Envelope<'a> =
            serde_json::from_str(text).map_err(|e| EnvelopeError::NotJson(e.to_string()))?;
        if env.jsonrpc.as_deref() != Some("2.0") {
            return Err(EnvelopeError::BadVersion);
        }
        let id = match env.id {
            // A null id is only meaningful on an error response to a request
            // whose id could not be read.
            Some(id) if id.get() == "null" && env.method.is_none() && env.error.is_some() => None,
            Some(id) if !is_valid_id(id.get()) => return Err(EnvelopeError::InvalidId),
            id => id,
        };
        match (env.method, id, env.result, env.error) {
            (Some(method), id, None, None) => {
                if method.is_empty() {
                    return Err(EnvelopeError::EmptyMethod);
                }
                Ok(match id {
                    Some(id) => Message::Request {
                        id,
                        method,
                        params: env.params,
                    },
                    None => Message::Notification {
                        method,
                        params: env.params,
                    },
                })
            }
            (Some(_), ..) => Err(EnvelopeError::InvalidShape(
                "a message with a method cannot carry `result` or `error`",
            )),
            (None, Some(id), Some(result), None) => Ok(Message::Response { id, result }),
            (None, id, None, Some(error)) => Ok(Message::Error { id, error }),
            (None, _, Some(_), Some(_)) => Err(EnvelopeError::InvalidShape(
                "a response carries exactly one of `result` and `error`",
            )),
            (None, None, Some(_), None) => {
                Err(EnvelopeError::InvalidShape("a result without an id"))
            }
            (None, _, None, None) => Err(EnvelopeError::InvalidShape(
                "no `method`, `result` or `error`",
            )),
        }
    }

    /// The id of a message that failed to parse, when it can still be read
    /// (a valid JSON object whose `id` is a string or number), so that an
    /// error reply can name it, as JSON-RPC asks.
    pub fn recover_id(frame: &[u8]) -> Option<Box<RawValue>> {
        #[derive(Deserialize)]
        struct IdOnly<'a> {
            #[serde(borrow)]
            id: Option<&'a RawValue>,
        }
        let text = std::str::from_utf8(frame).ok()?;
        if !text.trim_start().starts_with('{') {
            return None; // serde would read `[1]` as a struct too
        }
        let id = serde_json::from_str::<IdOnly<'_>>(text).ok()?.id?;
        is_valid_id(id.get()).then(|| id.to_owned())
    }

    /// The method of a request or notification.
    pub fn method(&self) -> Option<&str> {
        match self {
            Message::Request { method, .. } | Message::Notification { method, .. } => Some(method),
            _ => None,
        }
    }
}

/// The fields of a JSON-RPC error object that routing needs; `data` is kept
/// raw.
#[derive(Debug, Deserialize)]
pub struct ErrorObject<'a> {
    /// The error code.
    pub code: i64,
    /// The message.
    #[serde(borrow)]
    pub message: Cow<'a, str>,
    /// Raw `data`, if present.
    #[serde(borrow, default)]
    pub data: Option<&'a RawValue>,
}

impl<'a> ErrorObject<'a> {
    /// Reads an error object; `None` if it lacks an integer `code` or a
    /// string `message`.
    pub fn parse(raw: &'a RawValue) -> Option<Self> {
        serde_json::from_str(raw.get()).ok()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn classifies_the_four_shapes() {
        let m =
            Message::parse(br#"{"jsonrpc":"2.0","id":1,"method":"a","params":{"x":1}}"#).unwrap();
        assert!(matches!(m, Message::Request { id, .. } if id.get() == "1"));
        let m = Message::parse(br#"{"jsonrpc":"2.0","method":"n"}"#).unwrap();
        assert!(matches!(m, Message::Notification { params: None, .. }));
        let m = Message::parse(br#"{"jsonrpc":"2.0","id":"a","result":{}}"#).unwrap();
        assert!(matches!(m, Message::Response { id, .. } if id.get() == "\"a\""));
        let m =
            Message::parse(br#"{"jsonrpc":"2.0","id":null,"error":{"code":-32700,"message":"x"}}"#)
                .unwrap();
        assert!(matches!(m, Message::Error { id: None, .. }));
    }

    #[test]
    fn ids_keep_their_exact_spelling() {
        for id in [
            "1",
            "\"1\"",
            "1152921504606846977",
            "1.5",
            "-0",
            "\"\\u00fc\"",
            "\"ü\"",
            "1e400",
        ] {
            let frame = format!(r#"{{"jsonrpc":"2.0","id":{id},"method":"m"}}"#);
            let m = Message::parse(frame.as_bytes()).unwrap();
            let Message::Request { id: got, .. } = m else {
                panic!("not a request")
            };
            assert_eq!(got.get(), id);
            assert_eq!(Id::from_raw(got).unwrap().as_json(), id);
        }
    }

    #[test]
    fn id_parse_checks_the_grammar() {
        for bad in [
            "01",
            "1.",
            "-",
            "1e",
            "+1",
            "\"unterminated",
            "null",
            "[]",
            "1 2",
            "",
        ] {
            assert!(Id::parse(bad).is_err(), "{bad}");
        }
        for good in ["0", "-0.5e+3", "123456789012345678901234567890", "\"\""] {
            assert_eq!(Id::parse(good).unwrap().as_json(), good);
        }
    }

    #[test]
    fn rejects_bad_envelopes_with_the_right_code() {
        let cases: &[(&[u8], i64)] = &[
            (b"not json", PARSE_ERROR),
            (b"\xff\xfe", PARSE_ERROR),
            (br#"[{"jsonrpc":"2.0","method":"a"}]"#, INVALID_REQUEST),
            (br#""str""#, INVALID_REQUEST),
            (br#"{"jsonrpc":"1.0","method":"a"}"#, INVALID_REQUEST),
            (br#"{"method":"a"}"#, INVALID_REQUEST),
            (
                br#"{"jsonrpc":"2.0","id":{},"method":"a"}"#,
                INVALID_REQUEST,
            ),
            (
                br#"{"jsonrpc":"2.0","id":true,"method":"a"}"#,
                INVALID_REQUEST,
            ),
            (br#"{"jsonrpc":"2.0","id":1,"method":""}"#, METHOD_NOT_FOUND),
            (
                br#"{"jsonrpc":"2.0","id":1,"result":{},"error":{}}"#,
                INVALID_REQUEST,
            ),
            (
                br#"{"jsonrpc":"2.0","id":1,"id":2,"method":"a"}"#,
                PARSE_ERROR,
            ),
            (br#"{"jsonrpc":"2.0"}"#, INVALID_REQUEST),
        ];
        for (frame, code) in cases {
            let err = Message::parse(frame).unwrap_err();
            assert_eq!(
                err.code(),
                *code,
                "{}: {err}",
                String::from_utf8_lossy(frame)
            );
        }
    }

    #[test]
    fn the_id_of_an_invalid_message_can_be_recovered() {
        let id = |f: &[u8]| Message::recover_id(f).map(|i| i.get().to_owned());
        assert_eq!(
            id(br#"{"jsonrpc":"1.0","id":3,"method":"a"}"#).as_deref(),
            Some("3")
        );
        assert_eq!(id(br#"{"id":"x","method":""}"#).as_deref(), Some("\"x\""));
        assert_eq!(id(br#"{"id":{},"method":"a"}"#), None);
        assert_eq!(id(b"[1]"), None);
        assert_eq!(id(b"nope"), None);
    }

    #[test]
    fn null_id_is_refused_on_requests_and_results() {
        for frame in [
            &br#"{"jsonrpc":"2.0","id":null,"method":"a"}"#[..],
            br#"{"jsonrpc":"2.0","id":null,"result":{}}"#,
        ] {
            assert_eq!(Message::parse(frame).unwrap_err(), EnvelopeError::InvalidId);
        }
    }

    #[test]
    fn error_object_keeps_data_raw() {
        let raw: &RawValue =
            serde_json::from_str(r#"{"code":-1,"message":"m","data":{"b":1.50,"a":[1]}}"#).unwrap();
        let e = ErrorObject::parse(raw).unwrap();
        assert_eq!(e.data.unwrap().get(), r#"{"b":1.50,"a":[1]}"#);
    }
}

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

/// Longest id a [`ResponseIdScanner`] keeps, in bytes; a longer one is
/// taken as unreadable.
pub const MAX_SCANNED_ID_LEN: usize = 1024;

/// Reads the `id` of a JSON-RPC response from its bytes as they stream by,
/// in constant memory, for a message too large to keep (see
/// [`Framer`](crate::Framer)): the call it answers can then be ended at
/// once rather than left to its deadline.
///
/// It follows only the top level of one JSON object: keys, and values
/// skipped over (nested objects, arrays and strings, escapes included). The
/// message is a response when the object has an `id` that is a string or a
/// number and a `result` or an `error` key, and no `method` key. Key order
/// does not matter: the id may come first (most servers write it so) or
/// after a huge `result` (the TypeScript SDK does); as soon as both an
/// `id` and a `result`/`error` key have been seen the outcome is known and
/// the rest can be skipped unread. Keys are compared as written, so an id
/// key spelled with escapes is not recognised.
///
/// ```
/// use mcpod_core::envelope::ResponseIdScanner;
/// let mut scan = ResponseIdScanner::new();
/// assert!(!scan.push(br#"{"jsonrpc":"2.0","id":7,"#));
/// assert!(scan.push(br#""result":{"content":[{"type":"text","text":"xxxx"#)); // known now
/// assert_eq!(scan.finish().unwrap().as_json(), "7");
///
/// let mut scan = ResponseIdScanner::new();
/// scan.push(br#"{"jsonrpc":"2.0","id":8,"method":"sampling/createMessage","params":{"#);
/// assert!(scan.finish().is_none()); // a request, not a response
/// ```
#[derive(Debug, Clone)]
pub struct ResponseIdScanner {
    at: Scan,
    /// Nesting inside the top-level value being skipped.
    depth: u32,
    /// Inside a string (of a key or of a value).
    in_string: bool,
    escaped: bool,
    /// The top-level key being read, as written (only short keys matter).
    key: [u8; 8],
    key_len: usize,
    key_long: bool,
    /// What the current top-level key is.
    current: Key,
    /// The id value being read, or read.
    id: Vec<u8>,
    id_state: IdState,
    has_reply: bool,
    has_method: bool,
    /// The bytes are not one JSON object.
    broken: bool,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Scan {
    /// Before the opening brace.
    Start,
    /// Expecting a key (or `}` for an empty object).
    Key,
    /// Inside a top-level key.
    InKey,
    /// Expecting `:`.
    Colon,
    /// Expecting a value.
    Value,
    /// Reading the id: a string.
    IdString,
    /// Reading the id: a number (or another scalar).
    IdScalar,
    /// Skipping a string, array or object value (`depth`, `in_string`).
    Skip,
    /// Skipping a scalar value.
    SkipScalar,
    /// Expecting `,` or `}`.
    AfterValue,
    /// Nothing more matters.
    Done,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Key {
    Id,
    Other,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum IdState {
    /// No `id` key seen.
    Absent,
    /// Being read.
    Reading,
    /// Read in full.
    Read,
    /// Not a string or number, too long, or given twice.
    Unusable,
}

impl Default for ResponseIdScanner {
    fn default() -> Self {
        Self::new()
    }
}

impl ResponseIdScanner {
    /// A scanner at the start of a message.
    pub fn new() -> Self {
        ResponseIdScanner {
            at: Scan::Start,
            depth: 0,
            in_string: false,
            escaped: false,
            key: [0; 8],
            key_len: 0,
            key_long: false,
            current: Key::Other,
            id: Vec::new(),
            id_state: IdState::Absent,
            has_reply: false,
            has_method: false,
            broken: false,
        }
    }

    /// Feeds the next bytes of the message. Returns `true` once the outcome
    /// is known: later bytes would not change [`finish`](Self::finish).
    pub fn push(&mut self, bytes: &[u8]) -> bool {
        let mut i = 0;
        while i < bytes.len() {
            if self.at == Scan::Done {
                return true;
            }
            if self.in_string && !self.escaped && matches!(self.at, Scan::Skip) {
                // The bulk of a large message is strings: jump to what ends one.
                match memchr::memchr2(b'"', b'\\', &bytes[i..]) {
                    Some(n) => i += n,
                    None => return false,
                }
            }
            self.step(bytes[i]);
            i += 1;
        }
        self.at == Scan::Done
    }

    /// The id of the response the bytes seen so far show, if they show one
    /// (call it once the message has ended, or once [`push`](Self::push)
    /// said the outcome is known).
    pub fn finish(&self) -> Option<Id> {
        if self.broken || self.has_method || !self.has_reply || self.id_state != IdState::Read {
            return None;
        }
        let text = std::str::from_utf8(&self.id).ok()?;
        Id::parse(text).ok()
    }

    fn step(&mut self, b: u8) {
        match self.at {
            Scan::Start => match b {
                b'{' => self.at = Scan::Key,
                _ if b.is_ascii_whitespace() => {}
                _ => self.fail(),
            },
            Scan::Key => match b {
                b'"' => {
                    self.key_len = 0;
                    self.key_long = false;
                    self.escaped = false;
                    self.at = Scan::InKey;
                }
                b'}' => self.at = Scan::Done,
                _ if b.is_ascii_whitespace() => {}
                _ => self.fail(),
            },
            Scan::InKey => {
                if self.escaped {
                    self.escaped = false;
                } else if b == b'\\' {
                    self.escaped = true;
                } else if b == b'"' {
                    self.key_done();
                    return;
                }
                if self.key_len < self.key.len() {
                    self.key[self.key_len] = b;
                    self.key_len += 1;
                } else {
                    self.key_long = true;
                }
            }
            Scan::Colon => match b {
                b':' => self.at = Scan::Value,
                _ if b.is_ascii_whitespace() => {}
                _ => self.fail(),
            },
            Scan::Value => {
                if b.is_ascii_whitespace() {
                    return;
                }
                if self.current == Key::Id && self.id_state == IdState::Absent {
                    self.id_state = IdState::Reading;
                    self.id.clear();
                    self.id.push(b);
                    self.at = match b {
                        b'"' => {
                            self.escaped = false;
                            Scan::IdString
                        }
                        b'{' | b'[' => {
                            self.id_state = IdState::Unusable;
                            self.id = Vec::new();
                            self.skip_from(b)
                        }
                        _ => Scan::IdScalar,
                    };
                    return;
                }
                if self.current == Key::Id {
                    self.id_state = IdState::Unusable; // a second `id`
                }
                self.at = self.skip_from(b);
            }
            Scan::IdString => {
                if !self.keep_id_byte(b) {
                    return;
                }
                if self.escaped {
                    self.escaped = false;
                } else if b == b'\\' {
                    self.escaped = true;
                } else if b == b'"' {
                    self.id_read();
                }
            }
            Scan::IdScalar => match b {
                b',' | b'}' => {
                    self.id_read();
                    self.after_value(b);
                }
                _ if b.is_ascii_whitespace() => self.id_read(),
                _ => {
                    self.keep_id_byte(b);
                }
            },
            Scan::Skip => {
                if self.in_string {
                    if self.escaped {
                        self.escaped = false;
                    } else if b == b'\\' {
                        self.escaped = true;
                    } else if b == b'"' {
                        self.in_string = false;
                        if self.depth == 0 {
                            self.at = Scan::AfterValue;
                        }
                    }
                    return;
                }
                match b {
                    b'"' => {
                        self.in_string = true;
                        self.escaped = false;
                    }
                    b'{' | b'[' => self.depth = self.depth.saturating_add(1),
                    b'}' | b']' => {
                        self.depth = self.depth.saturating_sub(1);
                        if self.depth == 0 {
                            self.at = Scan::AfterValue;
                        }
                    }
                    _ => {}
                }
            }
            Scan::SkipScalar => match b {
                b',' | b'}' => self.after_value(b),
                _ if b.is_ascii_whitespace() => self.at = Scan::AfterValue,
                b'"' | b'{' | b'[' | b':' | b']' => self.fail(),
                _ => {}
            },
            Scan::AfterValue => match b {
                b',' | b'}' => self.after_value(b),
                _ if b.is_ascii_whitespace() => {}
                _ => self.fail(),
            },
            Scan::Done => {}
        }
    }

    /// Starts skipping a value whose first byte is `b`.
    fn skip_from(&mut self, b: u8) -> Scan {
        match b {
            b'"' => {
                self.depth = 0;
                self.in_string = true;
                self.escaped = false;
                Scan::Skip
            }
            b'{' | b'[' => {
                self.depth = 1;
                self.in_string = false;
                Scan::Skip
            }
            b'}' | b']' | b',' | b':' => {
                self.fail();
                Scan::Done
            }
            _ => Scan::SkipScalar,
        }
    }

    fn key_done(&mut self) {
        let key = &self.key[..self.key_len];
        self.current = Key::Other;
        if !self.key_long {
            match key {
                b"id" => self.current = Key::Id,
                b"result" | b"error" => self.has_reply = true,
                b"method" => self.has_method = true,
                _ => {}
            }
        }
        self.at = Scan::Colon;
        self.check_known();
    }

    /// Keeps a byte of the id; `false` if that made it too long, and the
    /// rest of the value is being skipped instead.
    fn keep_id_byte(&mut self, b: u8) -> bool {
        if self.id.len() >= MAX_SCANNED_ID_LEN {
            // Too long to be one of ours: skip the rest of it.
            self.id_state = IdState::Unusable;
            self.id = Vec::new();
            self.at = if self.at == Scan::IdString {
                self.depth = 0;
                self.in_string = true;
                Scan::Skip
            } else {
                Scan::SkipScalar
            };
            // `b` itself is read again in the skipping state.
            self.step(b);
            return false;
        }
        self.id.push(b);
        true
    }

    fn id_read(&mut self) {
        if self.id_state == IdState::Reading {
            self.id_state = IdState::Read;
        }
        self.at = Scan::AfterValue;
        self.check_known();
    }

    /// After a top-level value: `,` (another key) or `}` (the end).
    fn after_value(&mut self, b: u8) {
        self.at = if b == b',' { Scan::Key } else { Scan::Done };
        self.check_known();
    }

    /// Done as soon as the outcome cannot change.
    fn check_known(&mut self) {
        let id_known = matches!(self.id_state, IdState::Read | IdState::Unusable);
        if self.has_method || (self.has_reply && id_known) {
            self.at = Scan::Done;
        }
    }

    fn fail(&mut self) {
        self.broken = true;
        self.at = Scan::Done;
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

    fn scanned(text: &str) -> Option<String> {
        let mut scan = ResponseIdScanner::new();
        scan.push(text.as_bytes());
        scan.finish().map(|id| id.as_json().to_owned())
    }

    #[test]
    fn the_scanner_takes_only_the_top_level_id_of_a_response() {
        let cases = [
            (r#"{"jsonrpc":"2.0","id":5,"result":{}}"#, Some("5")),
            (
                r#"{"result":{"id":9,"s":"\"}{,","a":[{"id":1}]},"id":"q\\"}"#,
                Some(r#""q\\""#),
            ),
            (
                r#" { "error" : {"code":1} , "id" : -1.5e3 } "#,
                Some("-1.5e3"),
            ),
            (r#"{"id":true,"result":1}"#, None),
            (r#"{"id":{"a":1},"result":1}"#, None),
            (r#"{"id":1,"id":2,"result":1}"#, None),
            (r#"{"id":1}"#, None),
            (r#"{"id":1,"method":"m"}"#, None),
            (r#"{"method":"m","result":1,"id":1}"#, None),
            (r#"["id",1]"#, None),
            (r#"{"id" 1,"result":1}"#, None),
        ];
        for (text, want) in cases {
            assert_eq!(scanned(text).as_deref(), want, "{text}");
        }
        let long = format!(
            r#"{{"id":"{}","result":1}}"#,
            "x".repeat(MAX_SCANNED_ID_LEN)
        );
        assert_eq!(scanned(&long), None);
        let long = format!(
            r#"{{"id":{},"result":1}}"#,
            "1".repeat(MAX_SCANNED_ID_LEN + 1)
        );
        assert_eq!(scanned(&long), None);
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

//! Request bodies and the checks every reply goes through.

use std::borrow::Cow;
use std::fmt;
use std::time::Duration;

use serde::Deserialize;
use serde_json::value::RawValue;

/// The modern (stateless) protocol revision.
pub(crate) const MODERN_VERSION: &str = "2026-07-28";

/// The legacy revision requested by default.
pub(crate) const LEGACY_VERSION: &str = "2025-11-25";

/// Why one request did not count as a success.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum CallError {
    /// Connecting, writing or reading failed.
    Transport(String),
    /// No reply within the timeout.
    Timeout(Duration),
    /// The HTTP status was not the one expected.
    Status {
        /// The status received.
        status: u16,
        /// The start of the body.
        body: String,
    },
    /// The reply was not the JSON-RPC message expected.
    Malformed(String),
    /// The reply's id is not the request's.
    WrongId {
        /// The id sent.
        expected: String,
        /// The id received (JSON text).
        got: String,
    },
    /// A JSON-RPC error object instead of a result.
    Rpc(String),
    /// A tool result flagged `isError`.
    ToolError(String),
    /// The result does not echo the text sent.
    WrongText {
        /// The text sent.
        expected: String,
        /// The text received.
        got: String,
    },
    /// The server closed the stream before answering.
    Closed,
}

impl CallError {
    /// Whether the connection (or session) should be dropped and opened again.
    pub(crate) fn breaks_connection(&self) -> bool {
        matches!(
            self,
            CallError::Transport(_) | CallError::Timeout(_) | CallError::Closed
        )
    }
}

impl fmt::Display for CallError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            CallError::Transport(message) => write!(f, "transport: {message}"),
            CallError::Timeout(after) => write!(f, "no reply within {after:?}"),
            CallError::Status { status, body } => write!(f, "HTTP status {status}: {body}"),
            CallError::Malformed(message) => write!(f, "malformed reply: {message}"),
            CallError::WrongId { expected, got } => {
                write!(f, "reply id {got} does not match request id {expected}")
            }
            CallError::Rpc(error) => write!(f, "JSON-RPC error: {error}"),
            CallError::ToolError(content) => write!(f, "tool error result: {content}"),
            CallError::WrongText { expected, got } => {
                write!(f, "echo returned {got:?}, sent {expected:?}")
            }
            CallError::Closed => f.write_str("the server closed the stream before answering"),
        }
    }
}

impl std::error::Error for CallError {}

/// Shortens `text` for an error message.
pub(crate) fn snippet(bytes: &[u8]) -> String {
    const MAX: usize = 300;
    let text = String::from_utf8_lossy(bytes);
    let text = text.trim();
    if text.chars().count() <= MAX {
        text.to_owned()
    } else {
        let cut: String = text.chars().take(MAX).collect();
        format!("{cut}…")
    }
}

/// The unique text request `seq` of virtual client `client` asks `echo` to
/// return, padded with `x` to `bytes` bytes (when longer than the unique
/// part).
///
/// Only ASCII letters, digits and `-`, so it needs no JSON escaping.
pub(crate) fn echo_text(client: u32, seq: u64, bytes: usize) -> String {
    let mut text = format!("lg-{client}-{seq}");
    if text.len() < bytes {
        text.reserve(bytes - text.len());
        text.push('-');
        while text.len() < bytes {
            text.push('x');
        }
    }
    text
}

/// A `tools/call echo` request; `modern` adds the 2026-07-28 `_meta`.
pub(crate) fn echo_request(id: u64, text: &str, modern: Option<&str>) -> String {
    match modern {
        None => format!(
            r#"{{"jsonrpc":"2.0","id":{id},"method":"tools/call","params":{{"name":"echo","arguments":{{"text":"{text}"}}}}}}"#
        ),
        Some(version) => format!(
            r#"{{"jsonrpc":"2.0","id":{id},"method":"tools/call","params":{{"name":"echo","arguments":{{"text":"{text}"}},"_meta":{{"io.modelcontextprotocol/protocolVersion":"{version}","io.modelcontextprotocol/clientCapabilities":{{}}}}}}}}"#,
            version = json_string(version)
        ),
    }
}

/// A legacy `initialize` request.
pub(crate) fn initialize_request(id: u64, version: &str) -> String {
    format!(
        r#"{{"jsonrpc":"2.0","id":{id},"method":"initialize","params":{{"protocolVersion":{version},"capabilities":{{}},"clientInfo":{{"name":"mcpod-loadgen","version":"{crate_version}"}}}}}}"#,
        version = serde_json::Value::from(version),
        crate_version = env!("CARGO_PKG_VERSION"),
    )
}

/// The `notifications/initialized` notification.
pub(crate) const INITIALIZED: &str = r#"{"jsonrpc":"2.0","method":"notifications/initialized"}"#;

/// `text` as the inside of a JSON string literal.
fn json_string(text: &str) -> String {
    let quoted = serde_json::Value::from(text).to_string();
    quoted[1..quoted.len() - 1].to_owned()
}

/// The envelope of any JSON-RPC message, payloads left raw.
#[derive(Debug, Deserialize)]
pub(crate) struct Envelope<'a> {
    /// The id (absent on notifications).
    #[serde(borrow, default)]
    pub(crate) id: Option<&'a RawValue>,
    /// The method (requests and notifications).
    #[serde(borrow, default)]
    pub(crate) method: Option<Cow<'a, str>>,
    /// The result of a successful response.
    #[serde(borrow, default)]
    pub(crate) result: Option<&'a RawValue>,
    /// The error of a failed response.
    #[serde(borrow, default)]
    pub(crate) error: Option<&'a RawValue>,
}

impl<'a> Envelope<'a> {
    /// Parses one JSON-RPC message.
    pub(crate) fn parse(json: &'a [u8]) -> Result<Self, CallError> {
        serde_json::from_slice(json)
            .map_err(|e| CallError::Malformed(format!("{e} in {}", snippet(json))))
    }

    /// Whether this is a response (an id and no method).
    pub(crate) fn is_response(&self) -> bool {
        self.method.is_none() && self.id.is_some()
    }

    /// The id as an unsigned integer, if it is one.
    pub(crate) fn integer_id(&self) -> Option<u64> {
        self.id.and_then(|id| id.get().parse().ok())
    }

    /// The result of this response to request `id`, checking the id byte for byte.
    pub(crate) fn result_for(&self, id: u64) -> Result<&'a RawValue, CallError> {
        let expected = id.to_string();
        let got = self.id.map_or("(none)", |raw| raw.get());
        if got != expected {
            return Err(CallError::WrongId {
                expected,
                got: got.to_owned(),
            });
        }
        match (self.result, self.error) {
            (Some(result), None) => Ok(result),
            (None, Some(error)) => Err(CallError::Rpc(error.get().to_owned())),
            (Some(_), Some(_)) => Err(CallError::Malformed(
                "a response with both result and error".into(),
            )),
            (None, None) => Err(CallError::Malformed(
                "a response with neither result nor error".into(),
            )),
        }
    }
}

#[derive(Deserialize)]
struct EchoResult<'a> {
    #[serde(borrow)]
    content: Vec<Content<'a>>,
    #[serde(rename = "isError", default)]
    is_error: Option<bool>,
    #[serde(rename = "resultType", borrow, default)]
    result_type: Option<Cow<'a, str>>,
}

#[derive(Deserialize)]
struct Content<'a> {
    #[serde(rename = "type", borrow)]
    kind: Cow<'a, str>,
    #[serde(borrow, default)]
    text: Option<Cow<'a, str>>,
}

/// Checks that `result` is an `echo` result returning exactly `text`.
pub(crate) fn check_echo_result(result: &RawValue, text: &str) -> Result<(), CallError> {
    let parsed: EchoResult<'_> = serde_json::from_str(result.get()).map_err(|e| {
        CallError::Malformed(format!(
            "not a tool result ({e}): {}",
            snippet(result.get().as_bytes())
        ))
    })?;
    if parsed.is_error == Some(true) {
        return Err(CallError::ToolError(snippet(result.get().as_bytes())));
    }
    if let Some(kind) = parsed.result_type.as_deref() {
        if kind != "complete" {
            return Err(CallError::Malformed(format!(
                "resultType {kind:?}, expected \"complete\""
            )));
        }
    }
    match parsed.content.as_slice() {
        [only] if only.kind == "text" => match only.text.as_deref() {
            Some(got) if got == text => Ok(()),
            Some(got) => Err(CallError::WrongText {
                expected: text.to_owned(),
                got: got.to_owned(),
            }),
            None => Err(CallError::Malformed("text content without text".into())),
        },
        _ => Err(CallError::Malformed(format!(
            "expected one text content item: {}",
            snippet(result.get().as_bytes())
        ))),
    }
}

/// Checks one JSON-RPC message: the response to request `id` echoing `text`.
pub(crate) fn check_echo_reply(json: &[u8], id: u64, text: &str) -> Result<(), CallError> {
    let envelope = Envelope::parse(json)?;
    check_echo_result(envelope.result_for(id)?, text)
}

/// How an HTTP response body is framed.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum BodyKind {
    /// `application/json`: one JSON-RPC message.
    Json,
    /// `text/event-stream`: SSE events, one of which is the response.
    EventStream,
}

impl BodyKind {
    /// Classifies a `Content-Type` header value.
    pub(crate) fn from_content_type(value: Option<&[u8]>) -> Result<Self, CallError> {
        let Some(value) = value else {
            return Err(CallError::Malformed("no Content-Type".into()));
        };
        let essence = value.split(|&b| b == b';').next().unwrap_or_default();
        let essence = String::from_utf8_lossy(essence).trim().to_ascii_lowercase();
        match essence.as_str() {
            "application/json" => Ok(BodyKind::Json),
            "text/event-stream" => Ok(BodyKind::EventStream),
            _ => Err(CallError::Malformed(format!("Content-Type {essence:?}"))),
        }
    }
}

/// Finds the response to request `id` in an HTTP body: the body itself for
/// JSON; for SSE the first event carrying a response (notifications and
/// requests before it are skipped). Returns the message's JSON text.
pub(crate) fn response_in_body(kind: BodyKind, body: &[u8]) -> Result<Cow<'_, [u8]>, CallError> {
    match kind {
        BodyKind::Json => Ok(Cow::Borrowed(body)),
        BodyKind::EventStream => {
            for data in sse_data(body) {
                let envelope = Envelope::parse(&data)?;
                if envelope.is_response() {
                    return Ok(data);
                }
            }
            Err(CallError::Malformed(format!(
                "event stream without a response: {}",
                snippet(body)
            )))
        }
    }
}

/// The `data` of each SSE event in `body` (multi-line data joined with `\n`).
pub(crate) fn sse_data(body: &[u8]) -> Vec<Cow<'_, [u8]>> {
    let mut events = Vec::new();
    let mut current: Option<Cow<'_, [u8]>> = None;
    for line in body.split(|&b| b == b'\n') {
        let line = line.strip_suffix(b"\r").unwrap_or(line);
        if line.is_empty() {
            events.extend(current.take());
            continue;
        }
        let (field, value) = match line.iter().position(|&b| b == b':') {
            Some(0) => continue, // a comment
            Some(colon) => {
                let value = &line[colon + 1..];
                (&line[..colon], value.strip_prefix(b" ").unwrap_or(value))
            }
            None => (line, &b""[..]),
        };
        if field != b"data" {
            continue;
        }
        current = Some(match current.take() {
            None => Cow::Borrowed(value),
            Some(previous) => {
                let mut joined = previous.into_owned();
                joined.push(b'\n');
                joined.extend_from_slice(value);
                Cow::Owned(joined)
            }
        });
    }
    // An event is dispatched only at a blank line; a stream ending without
    // one still carried the data, so keep it.
    events.extend(current);
    events
}

#[cfg(test)]
mod tests {
    use super::*;

    fn reply(id: &str, text: &str) -> String {
        format!(
            r#"{{"jsonrpc":"2.0","id":{id},"result":{{"content":[{{"type":"text","text":"{text}"}}]}}}}"#
        )
    }

    #[test]
    fn requests_are_valid_json_with_the_right_fields() {
        let legacy: serde_json::Value =
            serde_json::from_str(&echo_request(7, "lg-1-7", None)).expect("json");
        assert_eq!(echo_text(1, 7, 0), "lg-1-7");
        let padded = echo_text(1, 7, 1000);
        assert_eq!(padded.len(), 1000);
        assert!(padded.starts_with("lg-1-7-x") && padded.ends_with('x'));
        assert_eq!(legacy["id"], 7);
        assert_eq!(legacy["method"], "tools/call");
        assert_eq!(legacy["params"]["name"], "echo");
        assert_eq!(legacy["params"]["arguments"]["text"], "lg-1-7");
        assert!(legacy["params"].get("_meta").is_none());

        let modern: serde_json::Value =
            serde_json::from_str(&echo_request(8, "x", Some(MODERN_VERSION))).expect("json");
        assert_eq!(
            modern["params"]["_meta"]["io.modelcontextprotocol/protocolVersion"],
            MODERN_VERSION
        );

        let init: serde_json::Value =
            serde_json::from_str(&initialize_request(0, LEGACY_VERSION)).expect("json");
        assert_eq!(init["params"]["protocolVersion"], LEGACY_VERSION);
        let _: serde_json::Value = serde_json::from_str(INITIALIZED).expect("json");
    }

    #[test]
    fn a_matching_echo_passes() {
        assert_eq!(
            check_echo_reply(reply("3", "hi").as_bytes(), 3, "hi"),
            Ok(())
        );
        let modern = r#"{"jsonrpc":"2.0","id":3,"result":{"content":[{"text":"hi","type":"text"}],"resultType":"complete"}}"#;
        assert_eq!(check_echo_reply(modern.as_bytes(), 3, "hi"), Ok(()));
    }

    #[test]
    fn escaped_text_is_compared_after_unescaping() {
        let escaped =
            r#"{"jsonrpc":"2.0","id":1,"result":{"content":[{"type":"text","text":"a\u0062"}]}}"#;
        assert_eq!(check_echo_reply(escaped.as_bytes(), 1, "ab"), Ok(()));
    }

    #[test]
    fn every_kind_of_mismatch_is_an_error() {
        assert!(matches!(
            check_echo_reply(reply("4", "hi").as_bytes(), 3, "hi"),
            Err(CallError::WrongId { .. })
        ));
        // `"3"` is not `3`.
        assert!(matches!(
            check_echo_reply(reply("\"3\"", "hi").as_bytes(), 3, "hi"),
            Err(CallError::WrongId { .. })
        ));
        assert!(matches!(
            check_echo_reply(reply("3", "ho").as_bytes(), 3, "hi"),
            Err(CallError::WrongText { .. })
        ));
        let error = r#"{"jsonrpc":"2.0","id":3,"error":{"code":-32601,"message":"nope"}}"#;
        assert!(matches!(
            check_echo_reply(error.as_bytes(), 3, "hi"),
            Err(CallError::Rpc(_))
        ));
        let tool_error = r#"{"jsonrpc":"2.0","id":3,"result":{"content":[{"type":"text","text":"hi"}],"isError":true}}"#;
        assert!(matches!(
            check_echo_reply(tool_error.as_bytes(), 3, "hi"),
            Err(CallError::ToolError(_))
        ));
        let pending = r#"{"jsonrpc":"2.0","id":3,"result":{"content":[{"type":"text","text":"hi"}],"resultType":"input_required"}}"#;
        assert!(matches!(
            check_echo_reply(pending.as_bytes(), 3, "hi"),
            Err(CallError::Malformed(_))
        ));
        let two = r#"{"jsonrpc":"2.0","id":3,"result":{"content":[{"type":"text","text":"hi"},{"type":"text","text":"hi"}]}}"#;
        assert!(matches!(
            check_echo_reply(two.as_bytes(), 3, "hi"),
            Err(CallError::Malformed(_))
        ));
        assert!(matches!(
            check_echo_reply(b"not json", 3, "hi"),
            Err(CallError::Malformed(_))
        ));
        let neither = r#"{"jsonrpc":"2.0","id":3}"#;
        assert!(matches!(
            check_echo_reply(neither.as_bytes(), 3, "hi"),
            Err(CallError::Malformed(_))
        ));
    }

    #[test]
    fn sse_bodies_yield_the_response_after_notifications() {
        let body = format!(
            "event: message\r\nid: 1\r\ndata: {{\"jsonrpc\":\"2.0\",\"method\":\"notifications/progress\",\"params\":{{}}}}\r\n\r\n: keep-alive\n\nevent: message\ndata: {}\n\n",
            reply("9", "yo")
        );
        let found = response_in_body(BodyKind::EventStream, body.as_bytes()).expect("found");
        assert_eq!(check_echo_reply(&found, 9, "yo"), Ok(()));
    }

    #[test]
    fn sse_data_lines_join_and_a_missing_final_blank_line_is_tolerated() {
        let body = b"data: {\"a\":\ndata: 1}\n\ndata:{\"b\":2}";
        let events = sse_data(body);
        assert_eq!(events.len(), 2);
        assert_eq!(&*events[0], b"{\"a\":\n1}");
        assert_eq!(&*events[1], b"{\"b\":2}");
    }

    #[test]
    fn an_sse_body_without_a_response_is_an_error() {
        let body = b"data: {\"jsonrpc\":\"2.0\",\"method\":\"notifications/message\"}\n\n";
        assert!(response_in_body(BodyKind::EventStream, body).is_err());
        assert!(response_in_body(BodyKind::EventStream, b"").is_err());
    }

    #[test]
    fn content_types_are_classified() {
        assert_eq!(
            BodyKind::from_content_type(Some(b"application/json; charset=utf-8")),
            Ok(BodyKind::Json)
        );
        assert_eq!(
            BodyKind::from_content_type(Some(b"Text/Event-Stream")),
            Ok(BodyKind::EventStream)
        );
        assert!(BodyKind::from_content_type(Some(b"text/html")).is_err());
        assert!(BodyKind::from_content_type(None).is_err());
    }
}

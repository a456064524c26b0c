//! Reading the Streamable HTTP request headers: `Accept`, `Content-Type`,
//! `MCP-Protocol-Version`, `Mcp-Session-Id`, `Mcp-Method`/`Mcp-Name`
//! (including the `=?base64?…?=` form).

use base64::Engine;
use base64::engine::general_purpose::STANDARD;
use http::HeaderMap;

/// `Mcp-Session-Id`.
pub(crate) const SESSION_ID: &str = "mcp-session-id";
/// `MCP-Protocol-Version`.
pub(crate) const PROTOCOL_VERSION: &str = "mcp-protocol-version";
/// `Mcp-Method`.
pub(crate) const MCP_METHOD: &str = "mcp-method";
/// `Mcp-Name`.
pub(crate) const MCP_NAME: &str = "mcp-name";

/// What the client's `Accept` header allows.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct Accept {
    /// `application/json` (or a wildcard covering it).
    pub(crate) json: bool,
    /// `text/event-stream` (or a wildcard covering it).
    pub(crate) sse: bool,
}

impl Accept {
    /// Reads `Accept`; a missing header accepts anything.
    pub(crate) fn from_headers(headers: &HeaderMap) -> Accept {
        let mut values = headers.get_all(http::header::ACCEPT).iter().peekable();
        if values.peek().is_none() {
            return Accept {
                json: true,
                sse: true,
            };
        }
        let mut accept = Accept {
            json: false,
            sse: false,
        };
        for value in values {
            let Ok(value) = value.to_str() else { continue };
            for item in value.split(',') {
                let mut parts = item.split(';');
                let media = parts.next().unwrap_or("").trim();
                // `q=0` means "not acceptable".
                let refused = parts.any(|p| {
                    let p = p.trim();
                    p.strip_prefix("q=")
                        .and_then(|q| q.trim().parse::<f32>().ok())
                        .is_some_and(|q| q <= 0.0)
                });
                if refused {
                    continue;
                }
                // Compared without a lowercase copy.
                let is = |name: &str| media.eq_ignore_ascii_case(name);
                if media == "*/*" {
                    accept.json = true;
                    accept.sse = true;
                } else if is("application/json") || is("application/*") {
                    accept.json = true;
                } else if is("text/event-stream") || is("text/*") {
                    accept.sse = true;
                }
            }
        }
        accept
    }
}

/// Whether `Content-Type` is `application/json` (parameters allowed).
pub(crate) fn is_json_content_type(headers: &HeaderMap) -> bool {
    headers
        .get(http::header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.split(';').next())
        .is_some_and(|media| media.trim().eq_ignore_ascii_case("application/json"))
}

/// Why a header could not be read.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum HeaderProblem {
    /// Sent more than once.
    Duplicate(&'static str),
    /// Not visible ASCII, or a bad `=?base64?…?=` wrapper.
    Malformed(&'static str),
}

impl std::fmt::Display for HeaderProblem {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            HeaderProblem::Duplicate(h) => write!(f, "header {h} is sent more than once"),
            HeaderProblem::Malformed(h) => write!(f, "header {h} is malformed"),
        }
    }
}

/// The single value of a header, as text; `Ok(None)` when absent.
pub(crate) fn single<'a>(
    headers: &'a HeaderMap,
    name: &'static str,
) -> Result<Option<&'a str>, HeaderProblem> {
    let mut values = headers.get_all(name).iter();
    let Some(first) = values.next() else {
        return Ok(None);
    };
    if values.next().is_some() {
        return Err(HeaderProblem::Duplicate(name));
    }
    first
        .to_str()
        .map(|s| Some(s.trim()))
        .map_err(|_| HeaderProblem::Malformed(name))
}

/// A header value with the `=?base64?…?=` wrapper (if any) removed.
pub(crate) fn decode_value(value: &str, name: &'static str) -> Result<String, HeaderProblem> {
    match value
        .strip_prefix("=?base64?")
        .and_then(|rest| rest.strip_suffix("?="))
    {
        Some(inner) => STANDARD
            .decode(inner)
            .ok()
            .and_then(|bytes| String::from_utf8(bytes).ok())
            .ok_or(HeaderProblem::Malformed(name)),
        None => Ok(value.to_owned()),
    }
}

/// The decoded single value of a header.
pub(crate) fn decoded(
    headers: &HeaderMap,
    name: &'static str,
) -> Result<Option<String>, HeaderProblem> {
    single(headers, name)?
        .map(|v| decode_value(v, name))
        .transpose()
}

/// The `Mcp-Session-Id`, if sent.
pub(crate) fn session_id(headers: &HeaderMap) -> Result<Option<&str>, HeaderProblem> {
    single(headers, SESSION_ID)
}

#[cfg(test)]
mod tests {
    use super::*;
    use http::HeaderValue;

    fn map(pairs: &[(&'static str, &str)]) -> HeaderMap {
        let mut h = HeaderMap::new();
        for (k, v) in pairs {
            h.append(*k, HeaderValue::from_str(v).unwrap());
        }
        h
    }

    #[test]
    fn accept_parsing() {
        let a = Accept::from_headers(&map(&[("accept", "application/json, text/event-stream")]));
        assert!(a.json && a.sse);
        let a = Accept::from_headers(&map(&[("accept", "text/event-stream")]));
        assert!(!a.json && a.sse);
        let a = Accept::from_headers(&map(&[("accept", "text/html")]));
        assert!(!a.json && !a.sse);
        let a = Accept::from_headers(&map(&[("accept", "*/*;q=0.8")]));
        assert!(a.json && a.sse);
        let a = Accept::from_headers(&map(&[("accept", "application/json;q=0")]));
        assert!(!a.json);
        let a = Accept::from_headers(&HeaderMap::new());
        assert!(a.json && a.sse);
    }

    #[test]
    fn content_type() {
        assert!(is_json_content_type(&map(&[(
            "content-type",
            "application/json; charset=utf-8"
        )])));
        assert!(is_json_content_type(&map(&[(
            "content-type",
            "Application/JSON"
        )])));
        assert!(!is_json_content_type(&map(&[(
            "content-type",
            "text/plain"
        )])));
        assert!(!is_json_content_type(&HeaderMap::new()));
    }

    #[test]
    fn base64_values() {
        assert_eq!(decode_value("plain", MCP_NAME).unwrap(), "plain");
        assert_eq!(
            decode_value("=?base64?aMOpbGxv?=", MCP_NAME).unwrap(),
            "héllo"
        );
        assert!(decode_value("=?base64?!!!?=", MCP_NAME).is_err());
        let h = map(&[(MCP_NAME, "a"), (MCP_NAME, "b")]);
        assert_eq!(
            decoded(&h, MCP_NAME),
            Err(HeaderProblem::Duplicate(MCP_NAME))
        );
    }
}

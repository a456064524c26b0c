//! The `params._meta` keys of MCP requests, and reading them.
//!
//! 2026-07-28 carries the protocol envelope in every request's `_meta`
//! (`io.modelcontextprotocol/protocolVersion`, `…/clientCapabilities`,
//! `…/clientInfo`, `…/logLevel`); both eras put a progress token there.
//! [`RequestMeta::read`] reads what a gateway routes on, borrowing from the
//! params and leaving every value raw.

use std::borrow::Cow;

use serde::Deserialize;
use serde_json::value::RawValue;

/// The key of the metadata object in params and results.
pub const META: &str = "_meta";
/// A request's progress token.
pub const PROGRESS_TOKEN: &str = "progressToken";
/// 2026-07-28: the protocol version of a request.
pub const PROTOCOL_VERSION: &str = "io.modelcontextprotocol/protocolVersion";
/// 2026-07-28: the client's capabilities.
pub const CLIENT_CAPABILITIES: &str = "io.modelcontextprotocol/clientCapabilities";
/// 2026-07-28: the client's name and version.
pub const CLIENT_INFO: &str = "io.modelcontextprotocol/clientInfo";
/// 2026-07-28: the log level for this request's log messages.
pub const LOG_LEVEL: &str = "io.modelcontextprotocol/logLevel";
/// 2026-07-28: the subscription a notification belongs to.
pub const SUBSCRIPTION_ID: &str = "io.modelcontextprotocol/subscriptionId";
/// 2026-07-28: the server's name and version in a discover result.
pub const SERVER_INFO: &str = "io.modelcontextprotocol/serverInfo";

/// W3C trace context in `_meta` (SEP-414): the `traceparent` of the call.
pub const TRACEPARENT: &str = "traceparent";
/// W3C trace context in `_meta` (SEP-414): the vendors' `tracestate`.
pub const TRACESTATE: &str = "tracestate";

/// The 2026-07-28 envelope keys: a legacy backend must not see them.
pub const ENVELOPE_KEYS: &[&str] = &[
    PROTOCOL_VERSION,
    CLIENT_CAPABILITIES,
    CLIENT_INFO,
    LOG_LEVEL,
];

/// What a request's `params._meta` says, values raw.
#[derive(Debug, Clone, Default, Deserialize)]
pub struct RequestMeta<'a> {
    /// `io.modelcontextprotocol/protocolVersion`.
    #[serde(rename = "io.modelcontextprotocol/protocolVersion", borrow, default)]
    pub protocol_version: Option<Cow<'a, str>>,
    /// `io.modelcontextprotocol/clientCapabilities`.
    #[serde(rename = "io.modelcontextprotocol/clientCapabilities", borrow, default)]
    pub client_capabilities: Option<&'a RawValue>,
    /// `io.modelcontextprotocol/clientInfo`.
    #[serde(rename = "io.modelcontextprotocol/clientInfo", borrow, default)]
    pub client_info: Option<&'a RawValue>,
    /// `io.modelcontextprotocol/logLevel`.
    #[serde(rename = "io.modelcontextprotocol/logLevel", borrow, default)]
    pub log_level: Option<Cow<'a, str>>,
    /// `progressToken`.
    #[serde(rename = "progressToken", borrow, default)]
    pub progress_token: Option<&'a RawValue>,
}

#[derive(Deserialize)]
struct WithMeta<'a> {
    #[serde(rename = "_meta", borrow, default)]
    meta: Option<RequestMeta<'a>>,
}

impl<'a> RequestMeta<'a> {
    /// Reads `params._meta`; absent params or `_meta` read as empty.
    /// Fails only when params or `_meta` are not objects, or a key has the
    /// wrong type.
    pub fn read(params: Option<&'a RawValue>) -> Result<RequestMeta<'a>, serde_json::Error> {
        let Some(params) = params else {
            return Ok(RequestMeta::default());
        };
        let with: WithMeta<'a> = serde_json::from_str(params.get())?;
        Ok(with.meta.unwrap_or_default())
    }
}

/// `params` (absent: `{}`) with the string values `set` in its `_meta`
/// (created if absent; keys present are replaced), every other byte kept.
/// `None` if `params` or its `_meta` is not a JSON object.
pub fn with_meta_strings(params: Option<&str>, set: &[(&str, &str)]) -> Option<String> {
    #[derive(Deserialize)]
    struct Meta<'a> {
        #[serde(rename = "_meta", borrow, default)]
        meta: Option<&'a RawValue>,
    }
    let params = params.unwrap_or("{}");
    let found: Meta<'_> = serde_json::from_str(params).ok()?;
    let values: Vec<String> = set.iter().map(|(_, v)| crate::json::string(v)).collect();
    let entries: Vec<(&str, &str)> = set
        .iter()
        .zip(&values)
        .map(|((k, _), v)| (*k, v.as_str()))
        .collect();
    let meta = match found.meta {
        Some(meta) => crate::json::edit_object(meta.get(), &entries, &[])?,
        None => crate::json::object(&entries),
    };
    crate::json::edit_object(params, &[(META, &meta)], &[])
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;

    #[test]
    fn trace_context_goes_into_meta_keeping_the_rest() {
        let tp = "00-0af7651916cd43dd8448eb211c80319c-b7ad6b7169203331-01";
        let got = with_meta_strings(
            Some(r#"{"name":"x","_meta":{"progressToken":7,"traceparent":"old"}}"#),
            &[(TRACEPARENT, tp), (TRACESTATE, "k=v")],
        )
        .unwrap();
        assert_eq!(
            got,
            format!(
                r#"{{"name":"x","_meta":{{"progressToken":7,"traceparent":"{tp}","tracestate":"k=v"}}}}"#
            )
        );
        let got = with_meta_strings(None, &[(TRACEPARENT, tp)]).unwrap();
        assert_eq!(got, format!(r#"{{"_meta":{{"traceparent":"{tp}"}}}}"#));
        assert_eq!(with_meta_strings(Some("[1]"), &[(TRACEPARENT, tp)]), None);
        assert_eq!(
            with_meta_strings(Some(r#"{"_meta":3}"#), &[(TRACEPARENT, tp)]),
            None
        );
    }

    #[test]
    fn reads_the_envelope_and_the_progress_token() {
        let p = RawValue::from_string(
            r#"{"name":"x","_meta":{"progressToken":7,"io.modelcontextprotocol/protocolVersion":"2026-07-28","io.modelcontextprotocol/clientCapabilities":{"roots":{}},"io.modelcontextprotocol/logLevel":"debug","vendor/x":1}}"#
                .into(),
        )
        .unwrap();
        let m = RequestMeta::read(Some(&p)).unwrap();
        assert_eq!(m.protocol_version.as_deref(), Some("2026-07-28"));
        assert_eq!(m.client_capabilities.unwrap().get(), r#"{"roots":{}}"#);
        assert_eq!(m.log_level.as_deref(), Some("debug"));
        assert_eq!(m.progress_token.unwrap().get(), "7");
        assert!(m.client_info.is_none());
        assert!(RequestMeta::read(None).unwrap().protocol_version.is_none());
        let bad = RawValue::from_string(
            r#"{"_meta":{"io.modelcontextprotocol/protocolVersion":1}}"#.into(),
        )
        .unwrap();
        assert!(RequestMeta::read(Some(&bad)).is_err());
    }
}

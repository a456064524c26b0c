//! The two MCP eras and how a request says which one it uses.
//!
//! A request is *modern* (2026-07-28) when its `params._meta` carries
//! `io.modelcontextprotocol/protocolVersion`; otherwise it is *legacy*
//! (2024-11-05 … 2025-11-25, which begin with an `initialize` handshake).

use std::borrow::Cow;

use serde::{Deserialize, Serialize};
use serde_json::value::RawValue;
use serde_json::{Value, json};

use crate::envelope::{RpcError, code, is_valid_id};

/// Legacy protocol revisions this server accepts in `initialize`, oldest first.
pub const LEGACY_VERSIONS: &[&str] = &["2024-11-05", "2025-03-26", "2025-06-18", "2025-11-25"];

/// The legacy revision offered to a client that asks for one this server does not know.
pub const LATEST_LEGACY_VERSION: &str = "2025-11-25";

/// Modern (stateless) protocol revisions this server serves.
pub const MODERN_VERSIONS: &[&str] = &["2026-07-28"];

/// `_meta` key naming the protocol version of a modern request.
pub(crate) const META_PROTOCOL_VERSION: &str = "io.modelcontextprotocol/protocolVersion";

/// The era a request is served in.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Era {
    /// 2025-11-25 and earlier: `initialize` handshake, server-to-client requests.
    Legacy,
    /// 2026-07-28: stateless, `resultType` on results, MRTR instead of server requests.
    Modern,
}

/// Severity of a log message, in increasing order.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Deserialize, Serialize)]
#[serde(rename_all = "lowercase")]
pub(crate) enum Level {
    Debug,
    Info,
    Notice,
    Warning,
    Error,
    Critical,
    Alert,
    Emergency,
}

/// The parts of `params._meta` this server reads.
#[derive(Debug, Default, Deserialize)]
pub(crate) struct Meta<'a> {
    #[serde(rename = "progressToken", borrow, default)]
    pub(crate) progress_token: Option<&'a RawValue>,
    #[serde(rename = "io.modelcontextprotocol/protocolVersion", borrow, default)]
    pub(crate) protocol_version: Option<Cow<'a, str>>,
    #[serde(rename = "io.modelcontextprotocol/logLevel", default)]
    pub(crate) log_level: Option<Level>,
}

#[derive(Deserialize)]
struct MetaCarrier<'a> {
    #[serde(rename = "_meta", borrow, default)]
    meta: Option<Meta<'a>>,
}

/// Reads `params._meta` (absent params or `_meta` give an empty [`Meta`]).
pub(crate) fn read_meta(params: Option<&RawValue>) -> Result<Meta<'_>, RpcError> {
    let Some(params) = params else {
        return Ok(Meta::default());
    };
    if !params.get().starts_with('{') {
        return Err(RpcError::invalid_params("params must be an object"));
    }
    let carrier: MetaCarrier<'_> = serde_json::from_str(params.get())
        .map_err(|e| RpcError::invalid_params(format!("params: {e}")))?;
    let meta = carrier.meta.unwrap_or_default();
    if meta.progress_token.is_some_and(|token| !is_valid_id(token)) {
        return Err(RpcError::invalid_params(
            "_meta.progressToken must be a string or an integer",
        ));
    }
    Ok(meta)
}

/// Picks the era of a request; an error (-32022) means it named a version this server does not serve.
pub(crate) fn era_of(meta: &Meta<'_>, modern_enabled: bool) -> Result<Era, RpcError> {
    match meta.protocol_version.as_deref() {
        Some(version) if modern_enabled => {
            if MODERN_VERSIONS.contains(&version) {
                Ok(Era::Modern)
            } else {
                Err(unsupported_version(version))
            }
        }
        _ => Ok(Era::Legacy),
    }
}

/// The -32022 error with the versions this server supports.
pub(crate) fn unsupported_version(requested: &str) -> RpcError {
    RpcError {
        code: code::UNSUPPORTED_PROTOCOL_VERSION,
        message: format!("unsupported protocol version: {requested}"),
        data: Some(json!({ "supported": MODERN_VERSIONS, "requested": requested })),
    }
}

/// The legacy version to answer `initialize` with: the client's if known, else the latest.
pub(crate) fn negotiate_legacy(requested: Option<&str>) -> &'static str {
    requested
        .and_then(|want| LEGACY_VERSIONS.iter().copied().find(|v| *v == want))
        .unwrap_or(LATEST_LEGACY_VERSION)
}

/// Marks a result for its era: modern results carry `resultType` (default `"complete"`).
pub(crate) fn finish(era: Era, mut result: Value) -> Value {
    if let (Era::Modern, Value::Object(map)) = (era, &mut result) {
        map.entry("resultType")
            .or_insert_with(|| Value::from("complete"));
    }
    result
}

/// Adds the cache hints a modern list/read result requires (`cacheScope`, `ttlMs`).
pub(crate) fn cacheable(era: Era, mut result: Value) -> Value {
    if let (Era::Modern, Value::Object(map)) = (era, &mut result) {
        map.insert("cacheScope".into(), Value::from("public"));
        map.insert("ttlMs".into(), Value::from(0));
    }
    result
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn negotiation_prefers_the_clients_version() {
        assert_eq!(negotiate_legacy(Some("2025-03-26")), "2025-03-26");
        assert_eq!(negotiate_legacy(Some("2024-11-05")), "2024-11-05");
        assert_eq!(negotiate_legacy(Some("1999-01-01")), LATEST_LEGACY_VERSION);
        assert_eq!(negotiate_legacy(None), LATEST_LEGACY_VERSION);
    }

    #[test]
    fn meta_decides_the_era() {
        let raw = |s: &str| RawValue::from_string(s.to_owned()).expect("json");
        let modern = raw(r#"{"_meta":{"io.modelcontextprotocol/protocolVersion":"2026-07-28"}}"#);
        let meta = read_meta(Some(&modern)).expect("meta");
        assert_eq!(era_of(&meta, true).expect("era"), Era::Modern);
        assert_eq!(era_of(&meta, false).expect("era"), Era::Legacy);

        let future = raw(r#"{"_meta":{"io.modelcontextprotocol/protocolVersion":"2099-01-01"}}"#);
        let meta = read_meta(Some(&future)).expect("meta");
        let err = era_of(&meta, true).expect_err("unsupported");
        assert_eq!(err.code, code::UNSUPPORTED_PROTOCOL_VERSION);

        let legacy = raw(r#"{"name":"echo","_meta":{"progressToken":7}}"#);
        let meta = read_meta(Some(&legacy)).expect("meta");
        assert_eq!(era_of(&meta, true).expect("era"), Era::Legacy);
        assert_eq!(meta.progress_token.map(RawValue::get), Some("7"));

        let bad = raw(r#"{"_meta":{"progressToken":{"x":1}}}"#);
        assert!(read_meta(Some(&bad)).is_err());
        let not_object = raw("[]");
        assert!(read_meta(Some(&not_object)).is_err());
    }

    #[test]
    fn levels_are_ordered_by_severity() {
        assert!(Level::Debug < Level::Info);
        assert!(Level::Warning < Level::Error);
        assert!(Level::Alert < Level::Emergency);
    }
}

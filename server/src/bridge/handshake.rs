//! The gateway's side of a client's handshake: it answers `initialize` and
//! `server/discover` itself, from what the backend said about itself
//! (the backend is never re-initialized), in the client's era.

use std::sync::Arc;
use std::time::Duration;

use mcpod_core::{BackendInfo, Era, LATEST_LEGACY_VERSION, LEGACY_VERSIONS, MODERN_VERSIONS};
use mcpod_tokio::{Upstream, UpstreamError};
use serde_json::json;
use serde_json::value::RawValue;

use mcpod_core::json::to_raw as raw;

/// Why the backend is not ready for a client.
#[derive(Debug, Clone)]
pub(crate) enum NotReady {
    /// It failed to start or its handshake failed.
    Failed(UpstreamError),
    /// It did not become ready within the target's handshake timeouts.
    TimedOut,
}

/// Waits for the backend to be ready, bounded by `limit` (the target's
/// probe and handshake timeouts).
pub(crate) async fn ready(
    upstream: &Upstream,
    limit: Duration,
) -> Result<Arc<BackendInfo>, NotReady> {
    match tokio::time::timeout(limit, upstream.ready()).await {
        Ok(Ok(info)) => Ok(info),
        Ok(Err(e)) => Err(NotReady::Failed(e)),
        Err(_) => Err(NotReady::TimedOut),
    }
}

/// The revision to use with a legacy client: its own if the gateway knows
/// it, else the newest legacy one.
pub(crate) fn negotiate(requested: Option<&str>) -> &'static str {
    requested
        .and_then(|r| LEGACY_VERSIONS.iter().find(|v| **v == r).copied())
        .unwrap_or(LATEST_LEGACY_VERSION)
}

fn server_info(info: &BackendInfo) -> Box<RawValue> {
    info.server_info
        .clone()
        .unwrap_or_else(|| raw(&json!({"name": "mcpod", "version": env!("CARGO_PKG_VERSION")})))
}

/// The `initialize` result the gateway gives a legacy client, from the
/// backend's own handshake (or discovery) result.
pub(crate) fn initialize_result(info: &BackendInfo, version: &str) -> Box<RawValue> {
    let mut result = json!({
        "protocolVersion": version,
        "capabilities": info.capabilities,
        "serverInfo": server_info(info),
    });
    if let (Some(text), Some(obj)) = (&info.instructions, result.as_object_mut()) {
        obj.insert("instructions".into(), json!(text));
    }
    raw(&result)
}

/// `server/discover` answered from what the backend said about itself: a
/// modern backend's own result, or a legacy backend's handshake adapted.
pub(crate) fn discover_result(info: &BackendInfo) -> Box<RawValue> {
    if info.era == Era::Modern {
        return info.result.clone();
    }
    let mut result = json!({
        "resultType": "complete",
        "supportedVersions": MODERN_VERSIONS,
        "capabilities": info.capabilities,
        "cacheScope": "public",
        "ttlMs": 0,
        "_meta": { "io.modelcontextprotocol/serverInfo": server_info(info) },
    });
    if let (Some(text), Some(obj)) = (&info.instructions, result.as_object_mut()) {
        obj.insert("instructions".into(), json!(text));
    }
    raw(&result)
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;

    fn info(era: Era) -> BackendInfo {
        let raw = |s: &str| RawValue::from_string(s.to_owned()).unwrap();
        BackendInfo {
            era,
            protocol_version: "2025-06-18".into(),
            supported_versions: vec!["2025-06-18".into()],
            capabilities: raw(r#"{"tools":{"listChanged":true},"prompts":{}}"#),
            server_info: Some(raw(r#"{"name":"old","version":"1"}"#)),
            instructions: Some("use it".into()),
            result: raw(r#"{"protocolVersion":"2025-06-18"}"#),
        }
    }

    #[test]
    fn negotiates_known_versions_only() {
        assert_eq!(negotiate(Some("2025-03-26")), "2025-03-26");
        assert_eq!(negotiate(Some("2024-11-05")), "2024-11-05");
        assert_eq!(negotiate(Some("2026-07-28")), LATEST_LEGACY_VERSION);
        assert_eq!(negotiate(Some("nonsense")), LATEST_LEGACY_VERSION);
        assert_eq!(negotiate(None), LATEST_LEGACY_VERSION);
    }

    #[test]
    fn initialize_result_comes_from_the_backend() {
        let v: serde_json::Value =
            serde_json::from_str(initialize_result(&info(Era::Modern), "2025-06-18").get())
                .unwrap();
        assert_eq!(v["protocolVersion"], "2025-06-18");
        assert_eq!(v["capabilities"]["tools"]["listChanged"], true);
        assert_eq!(v["serverInfo"]["name"], "old");
        assert_eq!(v["instructions"], "use it");
    }

    #[test]
    fn discover_adapts_a_legacy_handshake() {
        let mut legacy = info(Era::Legacy);
        legacy.instructions = None;
        let v: serde_json::Value = serde_json::from_str(discover_result(&legacy).get()).unwrap();
        assert_eq!(v["supportedVersions"], json!(MODERN_VERSIONS));
        assert_eq!(v["resultType"], "complete");
        assert_eq!(
            v["_meta"]["io.modelcontextprotocol/serverInfo"]["name"],
            "old"
        );
        assert!(v.get("instructions").is_none());
        let modern = info(Era::Modern);
        assert_eq!(discover_result(&modern).get(), modern.result.get());
    }
}

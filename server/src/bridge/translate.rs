//! What crosses eras, as pure functions on frames and params: a result in
//! the client's era's shape, and a legacy session's envelope in the
//! request `_meta` a modern backend needs. Only the keys named here change;
//! every other byte of a payload is copied as it came.
//!
//! (The other half, taking the envelope out for a legacy backend, is the
//! core's: it knows the backend's era when it writes the request.)

use std::sync::LazyLock;

use mcpod_core::Message;
use mcpod_core::json::{edit_object, result_frame_text};
use mcpod_core::meta::{
    CLIENT_CAPABILITIES, CLIENT_INFO, LOG_LEVEL, META, PROTOCOL_VERSION, SERVER_INFO,
};
use memchr::memmem::Finder;
use serde_json::value::RawValue;

/// The era a client speaks.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum ClientEra {
    /// `initialize`-based (2025-11-25 and earlier).
    Legacy,
    /// Stateless (2026-07-28).
    Modern,
}

/// Methods whose 2026-07-28 results carry caching hints.
const CACHED_RESULTS: &[&str] = &[
    "tools/list",
    "prompts/list",
    "resources/list",
    "resources/templates/list",
    "resources/read",
    "server/discover",
];

/// Keys a 2026-07-28 result has and a legacy one does not.
const MODERN_RESULT_KEYS: [&str; 3] = ["resultType", "ttlMs", "cacheScope"];

/// Searchers for what makes a result or params need an edit, built once
/// (a searcher per call was a measurable share of a call's work).
static FIND_MODERN_KEYS: LazyLock<[Finder<'static>; 3]> =
    LazyLock::new(|| MODERN_RESULT_KEYS.map(Finder::new));
static FIND_SERVER_INFO: LazyLock<Finder<'static>> = LazyLock::new(|| Finder::new(SERVER_INFO));
static FIND_META: LazyLock<Finder<'static>> = LazyLock::new(|| Finder::new(META));

/// `frame` (a backend's response to `method`) as a client of `client`
/// expects it from a backend of era `backend`: a legacy client's result
/// loses what only 2026-07-28 has (`resultType`, `ttlMs`, `cacheScope`,
/// the server info in `_meta`); a 2026-07-28 client's result gains what it
/// requires (`resultType`, and for lists, reads and discovery
/// `cacheScope: "private"` and `ttlMs: 0`: a legacy backend gives no
/// caching hints, so nothing may be cached or shared). Errors, and results
/// between peers of one era, are untouched.
pub(crate) fn result_for_client(
    frame: Vec<u8>,
    method: &str,
    client: ClientEra,
    backend_modern: bool,
) -> Vec<u8> {
    let legacy_to_modern = client == ClientEra::Modern && !backend_modern;
    let modern_to_legacy = client == ClientEra::Legacy && backend_modern;
    if !legacy_to_modern && !modern_to_legacy {
        return frame;
    }
    let Ok(Message::Response { id, result }) = Message::parse(&frame) else {
        return frame;
    };
    let edited = if modern_to_legacy {
        legacy_result(result.get())
    } else {
        modern_result(result.get(), method)
    };
    match edited {
        // Built by `edit_object` from the parsed result: valid JSON.
        Some(result) => result_frame_text(id.get(), &result),
        None => frame,
    }
}

/// A 2026-07-28 result without its modern-only keys (`None`: nothing to
/// change, or not an object).
fn legacy_result(result: &str) -> Option<String> {
    let bytes = result.as_bytes();
    let has_key = FIND_MODERN_KEYS.iter().any(|k| k.find(bytes).is_some());
    let has_info = FIND_SERVER_INFO.find(bytes).is_some();
    if !has_key && !has_info {
        return None;
    }
    let mut set: Vec<(&str, String)> = Vec::new();
    let mut remove: Vec<&str> = MODERN_RESULT_KEYS.to_vec();
    if has_info {
        match meta_without(result, &[SERVER_INFO]) {
            Some(Some(meta)) => set.push((META, meta)),
            Some(None) => remove.push(META),
            None => {}
        }
    }
    let set: Vec<(&str, &str)> = set.iter().map(|(k, v)| (*k, v.as_str())).collect();
    edit_object(result, &set, &remove)
}

/// A legacy result with what 2026-07-28 requires of `method`'s result.
fn modern_result(result: &str, method: &str) -> Option<String> {
    let mut set = vec![("resultType", "\"complete\"")];
    if CACHED_RESULTS.contains(&method) {
        set.push(("cacheScope", "\"private\""));
        set.push(("ttlMs", "0"));
    }
    // Keep what the backend did say (a dual-era backend may send them).
    let present = present_keys(result, &set.iter().map(|(k, _)| *k).collect::<Vec<_>>())?;
    let set: Vec<(&str, &str)> = set
        .into_iter()
        .filter(|(k, _)| !present.contains(k))
        .collect();
    if set.is_empty() {
        return None;
    }
    edit_object(result, &set, &[])
}

/// Which of `keys` the object `object` has (`None`: not an object).
fn present_keys<'k>(object: &str, keys: &[&'k str]) -> Option<Vec<&'k str>> {
    let map: serde_json::Map<String, serde_json::Value> = serde_json::from_str(object).ok()?;
    Some(
        keys.iter()
            .copied()
            .filter(|k| map.contains_key(*k))
            .collect(),
    )
}

/// The `_meta` of `object` without `keys`: `Some(None)` when nothing is
/// left, `None` when there is no `_meta` object.
fn meta_without(object: &str, keys: &[&str]) -> Option<Option<String>> {
    #[derive(serde::Deserialize)]
    struct WithMeta<'a> {
        #[serde(rename = "_meta", borrow)]
        meta: Option<&'a RawValue>,
    }
    let meta = serde_json::from_str::<WithMeta<'_>>(object).ok()?.meta?;
    let edited = edit_object(meta.get(), &[], keys)?;
    Some((edited != "{}").then_some(edited))
}

/// A notification from a modern backend's listen, for a legacy client:
/// without the subscription tag (a 2026-07-28 key), every other byte kept.
pub(crate) fn without_subscription_tag(frame: Vec<u8>) -> Vec<u8> {
    let Ok(Message::Notification {
        method,
        params: Some(params),
    }) = Message::parse(&frame)
    else {
        return frame;
    };
    let meta = match meta_without(params.get(), &[mcpod_core::meta::SUBSCRIPTION_ID]) {
        Some(meta) => meta,
        None => return frame,
    };
    let edited = match &meta {
        Some(meta) => edit_object(params.get(), &[(META, meta)], &[]),
        None => edit_object(params.get(), &[], &[META]),
    };
    match edited {
        Some(params) => mcpod_core::json::notification_frame(&method, Some(&params)),
        None => frame,
    }
}

/// What a legacy session tells a modern backend on each of its requests:
/// its capabilities and info from its `initialize`, and the log level it
/// set (`None`: no log messages). Borrowed from the session.
#[derive(Debug, Clone, Default)]
pub(crate) struct SessionEnvelope<'a> {
    /// `initialize`'s `capabilities`, raw.
    pub(crate) capabilities: Option<&'a RawValue>,
    /// `initialize`'s `clientInfo`, raw.
    pub(crate) client_info: Option<&'a RawValue>,
    /// The level of `logging/setLevel`, as JSON text.
    pub(crate) log_level: Option<String>,
}

/// `params` with the session's envelope keys in `_meta`, and the modern
/// backend's `protocol_version` (keys the request already has are kept).
/// The core takes them out again for a legacy backend, and adds what is
/// still missing for a modern one: given them all here, it has nothing
/// left to parse.
pub(crate) fn with_envelope(
    params: Option<&RawValue>,
    envelope: &SessionEnvelope<'_>,
    protocol_version: Option<&str>,
) -> Option<Box<RawValue>> {
    let version = protocol_version.map(mcpod_core::json::string);
    let mut keys: Vec<(&str, &str)> = Vec::with_capacity(4);
    if let Some(v) = &version {
        keys.push((PROTOCOL_VERSION, v));
    }
    if let Some(c) = envelope.capabilities {
        keys.push((CLIENT_CAPABILITIES, c.get()));
    }
    if let Some(i) = envelope.client_info {
        keys.push((CLIENT_INFO, i.get()));
    }
    if let Some(l) = &envelope.log_level {
        keys.push((LOG_LEVEL, l));
    }
    let original = || params.map(|p| p.to_owned());
    if keys.is_empty() {
        return original();
    }
    let text = params.map_or("{}", RawValue::get);
    let edited = match meta_prepended(text, &keys) {
        Some(edited) => Some(edited),
        None => meta_merged(text, &keys),
    };
    match edited {
        Some(edited) => RawValue::from_string(edited).ok().or_else(original),
        None => original(), // not an object: the backend answers it as it is
    }
}

/// `object` with a `_meta` of `keys` put first, without parsing it: only
/// when it surely has no `_meta` (the text appears nowhere, and no escape
/// could spell it) — the common case, a call's params.
fn meta_prepended(object: &str, keys: &[(&str, &str)]) -> Option<String> {
    let rest = object.trim_start().strip_prefix('{')?.trim_start();
    if FIND_META.find(object.as_bytes()).is_some()
        || memchr::memchr(b'\\', object.as_bytes()).is_some()
    {
        return None;
    }
    let meta = mcpod_core::json::object(keys);
    let mut out = String::with_capacity(object.len() + meta.len() + 12);
    out.push_str("{\"_meta\":");
    out.push_str(&meta);
    if !rest.starts_with('}') {
        out.push(',');
    }
    out.push_str(rest);
    Some(out)
}

/// `object` with `keys` added to its `_meta` where it lacks them (`None`:
/// not an object).
fn meta_merged(object: &str, keys: &[(&str, &str)]) -> Option<String> {
    #[derive(serde::Deserialize)]
    struct WithMeta<'a> {
        #[serde(rename = "_meta", borrow)]
        meta: Option<&'a RawValue>,
    }
    let with = serde_json::from_str::<WithMeta<'_>>(object).ok()?;
    let meta = match with.meta {
        Some(meta) => {
            let present = present_keys(
                meta.get(),
                &keys.iter().map(|(k, _)| *k).collect::<Vec<_>>(),
            )
            .unwrap_or_default();
            let add: Vec<(&str, &str)> = keys
                .iter()
                .copied()
                .filter(|(k, _)| !present.contains(k))
                .collect();
            edit_object(meta.get(), &add, &[])
        }
        None => Some(mcpod_core::json::object(keys)),
    };
    meta.and_then(|m| edit_object(object, &[(META, &m)], &[]))
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;
    use proptest::prelude::*;
    use serde_json::{Value, json};

    fn frame(result: &str) -> Vec<u8> {
        format!(r#"{{"jsonrpc":"2.0","id":"x","result":{result}}}"#).into_bytes()
    }

    fn result_of(frame: &[u8]) -> Value {
        serde_json::from_slice::<Value>(frame).unwrap()["result"].clone()
    }

    #[test]
    fn a_legacy_client_gets_no_modern_only_fields() {
        let f = frame(
            r#"{"tools":[{"name":"t","inputSchema":{"type":"object"}}],"resultType":"complete","ttlMs":0,"cacheScope":"public","_meta":{"io.modelcontextprotocol/serverInfo":{"name":"s","version":"1"},"vendor/k":1}}"#,
        );
        let out = result_of(&result_for_client(f, "tools/list", ClientEra::Legacy, true));
        assert_eq!(
            out,
            json!({"tools":[{"name":"t","inputSchema":{"type":"object"}}],"_meta":{"vendor/k":1}})
        );
        // A `_meta` holding only the server info goes.
        let f = frame(r#"{"content":[],"_meta":{"io.modelcontextprotocol/serverInfo":{}}}"#);
        let out = result_of(&result_for_client(f, "tools/call", ClientEra::Legacy, true));
        assert_eq!(out, json!({"content":[]}));
    }

    #[test]
    fn a_modern_client_gets_what_its_schema_requires() {
        let f = frame(r#"{"tools":[]}"#);
        let out = result_of(&result_for_client(
            f,
            "tools/list",
            ClientEra::Modern,
            false,
        ));
        assert_eq!(
            out,
            json!({"tools":[],"resultType":"complete","cacheScope":"private","ttlMs":0})
        );
        let f = frame(r#"{"content":[{"type":"text","text":"hi"}]}"#);
        let out = result_of(&result_for_client(
            f,
            "tools/call",
            ClientEra::Modern,
            false,
        ));
        assert_eq!(
            out,
            json!({"content":[{"type":"text","text":"hi"}],"resultType":"complete"})
        );
        // What the backend said is kept.
        let f = frame(r#"{"resources":[],"ttlMs":60000,"resultType":"complete"}"#);
        let out = result_of(&result_for_client(
            f,
            "resources/list",
            ClientEra::Modern,
            false,
        ));
        assert_eq!(out["ttlMs"], 60000);
        assert_eq!(out["cacheScope"], "private");
    }

    #[test]
    fn errors_and_same_era_results_are_untouched() {
        let err = br#"{"jsonrpc":"2.0","id":1,"error":{"code":-1,"message":"m","data":{"resultType":1}}}"#;
        for (client, modern) in [(ClientEra::Legacy, true), (ClientEra::Modern, false)] {
            assert_eq!(
                result_for_client(err.to_vec(), "tools/call", client, modern),
                err
            );
        }
        let f = frame(r#"{"resultType":"complete"}"#);
        assert_eq!(
            result_for_client(f.clone(), "tools/call", ClientEra::Modern, true),
            f
        );
        let f = frame(r#"{"tools":[]}"#);
        assert_eq!(
            result_for_client(f.clone(), "tools/list", ClientEra::Legacy, false),
            f
        );
    }

    #[test]
    fn the_session_envelope_joins_the_requests_meta() {
        let caps = RawValue::from_string(r#"{"sampling":{}}"#.into()).unwrap();
        let info = RawValue::from_string(r#"{"name":"c","version":"1"}"#.into()).unwrap();
        let env = SessionEnvelope {
            capabilities: Some(&caps),
            client_info: Some(&info),
            log_level: Some("\"info\"".into()),
        };
        let p = RawValue::from_string(r#"{"name":"t","_meta":{"progressToken":3,"io.modelcontextprotocol/logLevel":"debug"}}"#.into()).unwrap();
        let out: Value =
            serde_json::from_str(with_envelope(Some(&p), &env, None).unwrap().get()).unwrap();
        assert_eq!(out["name"], "t");
        assert_eq!(out["_meta"]["progressToken"], 3);
        assert_eq!(
            out["_meta"]["io.modelcontextprotocol/logLevel"], "debug",
            "the request's own wins"
        );
        assert_eq!(
            out["_meta"]["io.modelcontextprotocol/clientCapabilities"],
            json!({"sampling":{}})
        );
        assert_eq!(
            out["_meta"]["io.modelcontextprotocol/clientInfo"]["name"],
            "c"
        );
        let out: Value =
            serde_json::from_str(with_envelope(None, &env, None).unwrap().get()).unwrap();
        assert_eq!(out["_meta"]["io.modelcontextprotocol/logLevel"], "info");
        assert!(with_envelope(None, &SessionEnvelope::default(), None).is_none());
    }

    #[test]
    fn params_without_meta_get_it_first_and_keep_every_byte() {
        let caps = RawValue::from_string(r#"{"roots":{}}"#.into()).unwrap();
        let env = SessionEnvelope {
            capabilities: Some(&caps),
            ..SessionEnvelope::default()
        };
        let p =
            RawValue::from_string(r#" { "name":"t", "arguments":{"x":[1, 2]} }"#.into()).unwrap();
        let out = with_envelope(Some(&p), &env, Some("2026-07-28")).unwrap();
        assert_eq!(
            out.get(),
            r#"{"_meta":{"io.modelcontextprotocol/protocolVersion":"2026-07-28","io.modelcontextprotocol/clientCapabilities":{"roots":{}}},"name":"t", "arguments":{"x":[1, 2]} }"#
        );
        let p = RawValue::from_string("{}".into()).unwrap();
        let out: Value =
            serde_json::from_str(with_envelope(Some(&p), &env, None).unwrap().get()).unwrap();
        assert_eq!(
            out,
            json!({"_meta":{"io.modelcontextprotocol/clientCapabilities":{"roots":{}}}})
        );
        // A `_meta` spelled with an escape is merged, not doubled.
        let p = RawValue::from_string(r#"{"\u005fmeta":{"k":1}}"#.into()).unwrap();
        let out = with_envelope(Some(&p), &env, None).unwrap();
        let out: serde_json::Map<String, Value> = serde_json::from_str(out.get()).unwrap();
        assert_eq!(out.len(), 1);
        assert_eq!(out["_meta"]["k"], 1);
        assert_eq!(
            out["_meta"]["io.modelcontextprotocol/clientCapabilities"],
            json!({"roots":{}})
        );
        // Not an object: as it came.
        let p = RawValue::from_string("[1]".into()).unwrap();
        assert_eq!(with_envelope(Some(&p), &env, None).unwrap().get(), "[1]");
    }

    #[test]
    fn listen_notifications_lose_their_subscription_tag_for_legacy_clients() {
        let f = br#"{"jsonrpc":"2.0","method":"notifications/resources/updated","params":{"uri":"a://b","_meta":{"io.modelcontextprotocol/subscriptionId":"mcpod-3"}}}"#;
        let out: Value = serde_json::from_slice(&without_subscription_tag(f.to_vec())).unwrap();
        assert_eq!(out["params"], json!({"uri":"a://b"}));
        let f = br#"{"jsonrpc":"2.0","method":"n","params":{"_meta":{"io.modelcontextprotocol/subscriptionId":1,"k":2}}}"#;
        let out: Value = serde_json::from_slice(&without_subscription_tag(f.to_vec())).unwrap();
        assert_eq!(out["params"], json!({"_meta":{"k":2}}));
    }

    fn json_value() -> impl Strategy<Value = Value> {
        let leaf = prop_oneof![
            Just(Value::Null),
            any::<bool>().prop_map(Value::Bool),
            any::<i64>().prop_map(|n| json!(n)),
            "[a-z\\\\\"é ]{0,8}".prop_map(Value::String),
        ];
        leaf.prop_recursive(3, 16, 4, |inner| {
            prop_oneof![
                prop::collection::vec(inner.clone(), 0..4).prop_map(Value::Array),
                prop::collection::btree_map("[a-z_]{1,6}", inner, 0..4)
                    .prop_map(|m| Value::Object(m.into_iter().collect())),
            ]
        })
    }

    proptest! {
        /// Whatever the result holds, translation changes only the keys it
        /// names: every other entry comes back with the same text.
        #[test]
        fn only_the_translated_keys_change(
            entries in prop::collection::btree_map("[a-z]{1,6}", json_value(), 0..6),
            to_modern in any::<bool>(),
        ) {
            let result = Value::Object(entries.clone().into_iter().collect());
            let text = serde_json::to_string(&result).unwrap();
            let (client, modern) = if to_modern {
                (ClientEra::Modern, false)
            } else {
                (ClientEra::Legacy, true)
            };
            let out = result_for_client(frame(&text), "tools/list", client, modern);
            let raw_in: std::collections::BTreeMap<String, Box<RawValue>> =
                serde_json::from_str(&text).unwrap();
            #[derive(serde::Deserialize)]
            struct Response {
                result: std::collections::BTreeMap<String, Box<RawValue>>,
            }
            let raw_out = serde_json::from_slice::<Response>(&out).unwrap().result;
            for (k, v) in &raw_in {
                if MODERN_RESULT_KEYS.contains(&k.as_str()) {
                    continue;
                }
                prop_assert_eq!(raw_out[k].get(), v.get(), "{}", k);
            }
            let out = result_of(&out);
            if to_modern {
                prop_assert_eq!(&out["resultType"], &json!("complete"));
            } else {
                prop_assert!(out.get("resultType").is_none());
            }
        }
    }
}

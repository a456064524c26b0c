//! The aggregate's own discovery (pure): what its `initialize` and
//! `server/discover` answer, merged from what its members said of
//! themselves — the modern versions every member can be served at, the
//! union of their capabilities, their instructions under member headings.

use mcpod_core::{BackendInfo, Era, MODERN_VERSIONS};
use serde_json::{Map, Value, json};

use super::merge::OMITTED_MEMBERS;

/// The capabilities a routed call honours, with the flags merged by "any
/// member has it" (a list-changed or subscription of one member becomes
/// the aggregate's).
const ROUTED: &[&str] = &["tools", "prompts", "resources", "completions", "logging"];

/// The 2026-07-28 versions a modern client may use with a member: any the
/// gateway serves for a legacy member (it bridges), those the member
/// supports too for a modern one (its requests are forwarded).
fn servable(info: &BackendInfo) -> Vec<&'static str> {
    MODERN_VERSIONS
        .iter()
        .copied()
        .filter(|v| info.era == Era::Legacy || info.supported_versions.iter().any(|s| s == v))
        .collect()
}

/// The union of `members`' capabilities that routed calls honour.
fn capabilities<'a>(members: impl Iterator<Item = &'a BackendInfo>) -> Value {
    let mut union = Map::new();
    for info in members {
        let Ok(Value::Object(caps)) = serde_json::from_str::<Value>(info.capabilities.get()) else {
            continue;
        };
        for (key, value) in caps {
            if !ROUTED.contains(&key.as_str()) {
                continue;
            }
            let entry = union
                .entry(key)
                .or_insert_with(|| Value::Object(Map::new()));
            if let (Value::Object(into), Value::Object(flags)) = (entry, value) {
                for (flag, on) in flags {
                    if on == Value::Bool(true) || !into.contains_key(&flag) {
                        into.insert(flag, on);
                    }
                }
            }
        }
    }
    Value::Object(union)
}

/// The members' instructions, each under a heading naming its member.
fn instructions<'a>(members: impl Iterator<Item = (&'a str, &'a BackendInfo)>) -> Option<String> {
    let parts: Vec<String> = members
        .filter_map(|(name, info)| {
            let text = info.instructions.as_deref()?.trim();
            (!text.is_empty()).then(|| format!("## {name}\n\n{text}"))
        })
        .collect();
    (!parts.is_empty()).then(|| parts.join("\n\n"))
}

/// The aggregate `name`'s discovery from its members' (`None`: a member
/// not ready, left out and named in `_meta`), as a modern backend's would
/// be: the gateway's handshake answers serve it to either era.
pub(crate) fn discovery(name: &str, members: &[(&str, Option<&BackendInfo>)]) -> BackendInfo {
    let ready = || members.iter().filter_map(|(n, i)| i.map(|i| (*n, i)));
    let versions: Vec<&str> = MODERN_VERSIONS
        .iter()
        .copied()
        .filter(|v| ready().all(|(_, info)| servable(info).contains(v)))
        .collect();
    let server_info = json!({ "name": name, "version": env!("CARGO_PKG_VERSION") });
    let capabilities = capabilities(ready().map(|(_, i)| i));
    let instructions = instructions(ready());
    let omitted: Vec<&str> = members
        .iter()
        .filter(|(_, i)| i.is_none())
        .map(|(n, _)| *n)
        .collect();
    let mut meta = json!({ "io.modelcontextprotocol/serverInfo": server_info });
    if !omitted.is_empty() {
        meta[OMITTED_MEMBERS] = json!(omitted);
    }
    let mut result = json!({
        "resultType": "complete",
        "supportedVersions": versions,
        "capabilities": capabilities,
        "cacheScope": "private",
        "ttlMs": 0,
        "_meta": meta,
    });
    if let (Some(text), Some(obj)) = (&instructions, result.as_object_mut()) {
        obj.insert("instructions".into(), json!(text));
    }
    let raw = mcpod_core::json::to_raw;
    BackendInfo {
        era: Era::Modern,
        protocol_version: versions.last().map_or_else(
            || mcpod_core::LATEST_MODERN_VERSION.to_owned(),
            |v| (*v).to_owned(),
        ),
        supported_versions: versions.iter().map(|v| (*v).to_owned()).collect(),
        capabilities: raw(&capabilities),
        server_info: Some(raw(&server_info)),
        instructions,
        result: raw(&result),
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;

    fn info(era: Era, caps: &str, instructions: Option<&str>) -> BackendInfo {
        let raw = |s: &str| serde_json::value::RawValue::from_string(s.to_owned()).unwrap();
        BackendInfo {
            era,
            protocol_version: "2025-06-18".into(),
            supported_versions: vec!["2026-07-28".into()],
            capabilities: raw(caps),
            server_info: None,
            instructions: instructions.map(str::to_owned),
            result: raw("{}"),
        }
    }

    #[test]
    fn members_merge_into_one_discovery() {
        let a = info(
            Era::Legacy,
            r#"{"tools":{"listChanged":false},"experimental":{"x":{}}}"#,
            Some("Files."),
        );
        let b = info(
            Era::Modern,
            r#"{"tools":{"listChanged":true},"resources":{"subscribe":true}}"#,
            Some("Git."),
        );
        let merged = discovery(
            "all",
            &[("files", Some(&a)), ("git", Some(&b)), ("down", None)],
        );
        let result: Value = serde_json::from_str(merged.result.get()).unwrap();
        assert_eq!(result["supportedVersions"], json!(["2026-07-28"]));
        assert_eq!(
            result["capabilities"],
            json!({"tools": {"listChanged": true}, "resources": {"subscribe": true}})
        );
        assert_eq!(
            result["instructions"],
            "## files\n\nFiles.\n\n## git\n\nGit."
        );
        assert_eq!(result["_meta"][OMITTED_MEMBERS], json!(["down"]));
        assert_eq!(
            result["_meta"]["io.modelcontextprotocol/serverInfo"]["name"],
            "all"
        );
        assert_eq!(merged.era, Era::Modern);
    }

    #[test]
    fn a_modern_member_limits_the_versions_to_its_own() {
        let mut b = info(Era::Modern, "{}", None);
        b.supported_versions = vec!["2099-01-01".into()];
        let merged = discovery("all", &[("git", Some(&b))]);
        assert!(merged.supported_versions.is_empty());
        assert_eq!(merged.instructions, None);
    }
}

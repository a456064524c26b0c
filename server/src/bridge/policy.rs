//! A target's policy applied to one caller's traffic (pure): the item a
//! request names, refused when the caller may not use it, and list
//! results without the items the caller may not see. Every other byte of
//! a result is kept.

use mcpod_core::Message;
use mcpod_core::json::{edit_object, result_frame};
use serde::Deserialize;
use serde_json::value::RawValue;

use crate::config::{Access, ItemKind};

/// JSON-RPC code of a request for an item the caller may not use: the
/// code MCP gives an unknown tool, prompt or resource (-32602).
pub(crate) const DENIED: i64 = mcpod_core::envelope::INVALID_PARAMS;

#[derive(Deserialize)]
struct Named<'a> {
    #[serde(borrow, default)]
    name: Option<std::borrow::Cow<'a, str>>,
    #[serde(borrow, default)]
    uri: Option<std::borrow::Cow<'a, str>>,
    /// A resource template's URI template, matched as written (so
    /// `file:///public/*` lists `file:///public/{path}`).
    #[serde(rename = "uriTemplate", borrow, default)]
    uri_template: Option<std::borrow::Cow<'a, str>>,
}

/// `completion/complete`'s `ref`: a prompt by name, or a resource
/// (template) by URI.
#[derive(Deserialize)]
struct Completing<'a> {
    #[serde(rename = "ref", borrow)]
    reference: Reference<'a>,
}

#[derive(Deserialize)]
struct Reference<'a> {
    #[serde(rename = "type", borrow)]
    kind: std::borrow::Cow<'a, str>,
    #[serde(borrow, default)]
    name: Option<std::borrow::Cow<'a, str>>,
    #[serde(borrow, default)]
    uri: Option<std::borrow::Cow<'a, str>>,
}

/// The item a request of `method` names, if its method names one.
fn named_item(method: &str, params: Option<&RawValue>) -> Option<(ItemKind, String)> {
    if method == "completion/complete" {
        let r = serde_json::from_str::<Completing<'_>>(params?.get())
            .ok()?
            .reference;
        return match r.kind.as_ref() {
            "ref/prompt" => Some((ItemKind::Prompt, r.name?.into_owned())),
            "ref/resource" => Some((ItemKind::Resource, r.uri?.into_owned())),
            _ => None,
        };
    }
    let kind = kind_named(method)?;
    let named: Named<'_> = serde_json::from_str(params?.get()).ok()?;
    let name = match kind {
        ItemKind::Resource => named.uri,
        ItemKind::Tool | ItemKind::Prompt => named.name,
    }?;
    Some((kind, name.into_owned()))
}

/// The kind of item a request of `method` names by its params' `name` or
/// `uri` (`completion/complete` names one in its `ref`).
fn kind_named(method: &str) -> Option<ItemKind> {
    match method {
        "tools/call" => Some(ItemKind::Tool),
        "prompts/get" => Some(ItemKind::Prompt),
        "resources/read" | "resources/subscribe" | "resources/unsubscribe" => {
            Some(ItemKind::Resource)
        }
        _ => None,
    }
}

/// Whether `access` may refuse some request of `method`: it governs the
/// kind of item the method names.
fn may_refuse(access: &Access, method: &str) -> bool {
    match kind_named(method) {
        Some(kind) => access.restricts(kind),
        None => {
            method == "completion/complete"
                && (access.restricts(ItemKind::Prompt) || access.restricts(ItemKind::Resource))
        }
    }
}

/// Why `access` refuses a request of `method` with `params` (`None`: it
/// may go on). A request whose item cannot be read goes on: the backend
/// answers it as malformed. Params are read only when the policy governs
/// the kind of item the method names (an ungoverned kind is allowed).
pub(crate) fn refusal(access: &Access, method: &str, params: Option<&RawValue>) -> Option<String> {
    if !may_refuse(access, method) {
        return None;
    }
    let (kind, name) = named_item(method, params)?;
    (!access.allows(kind, &name)).then(|| {
        format!(
            "{} `{name}` is not available to this caller (the target's policy denies it)",
            kind.word()
        )
    })
}

/// The list a result of `method` carries, and the kind of its items.
fn list_of(method: &str) -> Option<(&'static str, ItemKind)> {
    match method {
        "tools/list" => Some(("tools", ItemKind::Tool)),
        "prompts/list" => Some(("prompts", ItemKind::Prompt)),
        "resources/list" => Some(("resources", ItemKind::Resource)),
        "resources/templates/list" => Some(("resourceTemplates", ItemKind::Resource)),
        _ => None,
    }
}

/// `frame` (a response to `method`) without the listed items `access`
/// hides; untouched when nothing is hidden, or it is not such a list.
pub(crate) fn filter_list(access: &Access, method: &str, frame: Vec<u8>) -> Vec<u8> {
    let Some((key, kind)) = list_of(method) else {
        return frame;
    };
    if !access.restricts(kind) {
        return frame;
    }
    let Ok(Message::Response { id, result }) = Message::parse(&frame) else {
        return frame;
    };
    let Some(edited) = listed(result.get(), key).and_then(|(items, cached)| {
        let kept: Vec<&RawValue> = items
            .into_iter()
            .filter(|item| {
                let named = serde_json::from_str::<Named<'_>>(item.get()).ok();
                let name = named.and_then(|n| match kind {
                    ItemKind::Resource => n.uri.or(n.uri_template),
                    ItemKind::Tool | ItemKind::Prompt => n.name,
                });
                // An item without a name cannot be matched: hidden.
                name.is_some_and(|n| access.allows(kind, &n))
            })
            .collect();
        let array = serde_json::to_string(&kept).ok()?;
        // What one caller sees is theirs: no shared cache may keep it.
        let mut set = vec![(key, array.as_str())];
        if cached {
            set.push(("cacheScope", "\"private\""));
        }
        let object = edit_object(result.get(), &set, &[])?;
        RawValue::from_string(object).ok()
    }) else {
        return frame;
    };
    result_frame(id.get(), &edited)
}

/// The items of the list `key` of the result object `result`, and whether
/// it has a `cacheScope` (a 2026-07-28 result).
fn listed<'a>(result: &'a str, key: &str) -> Option<(Vec<&'a RawValue>, bool)> {
    let map: std::collections::HashMap<std::borrow::Cow<'a, str>, &'a RawValue> =
        serde_json::from_str(result).ok()?;
    let items = serde_json::from_str(map.get(key)?.get()).ok()?;
    Some((items, map.contains_key("cacheScope")))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_methods_naming_items_are_looked_at() {
        let p = RawValue::from_string(r#"{"name":"x","uri":"file:///a"}"#.to_owned()).unwrap();
        assert_eq!(
            named_item("tools/call", Some(&p)),
            Some((ItemKind::Tool, "x".to_owned()))
        );
        assert_eq!(
            named_item("resources/read", Some(&p)),
            Some((ItemKind::Resource, "file:///a".to_owned()))
        );
        assert_eq!(named_item("tools/list", Some(&p)), None);
        let c = RawValue::from_string(
            r#"{"ref":{"type":"ref/prompt","name":"greet"},"argument":{"name":"n","value":"a"}}"#
                .to_owned(),
        )
        .unwrap();
        assert_eq!(
            named_item("completion/complete", Some(&c)),
            Some((ItemKind::Prompt, "greet".to_owned()))
        );
        assert!(refusal(&Access::all(), "tools/call", Some(&p)).is_none());
        let frame = br#"{"jsonrpc":"2.0","id":1,"result":{"tools":[{"name":"a"}]}}"#.to_vec();
        assert_eq!(
            filter_list(&Access::all(), "tools/list", frame.clone()),
            frame
        );
    }

    /// A policy that governs resources only: those under `file:///public/`.
    fn public_resources_only() -> Access {
        use crate::config::{Policy, RawPolicyRule};
        let rule = RawPolicyRule {
            allow: Some(vec!["resource:file:///public/*".to_owned()]),
            ..RawPolicyRule::default()
        };
        let policy = Policy::from_raw("targets.t", vec![rule]).unwrap().unwrap();
        Access::of(Some(&std::sync::Arc::new(policy)), Default::default())
    }

    #[test]
    fn only_governed_kinds_are_refused() {
        let access = public_resources_only();
        let raw = |s: &str| RawValue::from_string(s.to_owned()).unwrap();
        let tool = raw(r#"{"name":"anything"}"#);
        assert!(refusal(&access, "tools/call", Some(&tool)).is_none());
        let secret = raw(r#"{"uri":"file:///secret/a"}"#);
        assert!(refusal(&access, "resources/read", Some(&secret)).is_some());
        let public = raw(r#"{"uri":"file:///public/a"}"#);
        assert!(refusal(&access, "resources/read", Some(&public)).is_none());
        let complete = raw(r#"{"ref":{"type":"ref/resource","uri":"file:///secret/{p}"}}"#);
        assert!(refusal(&access, "completion/complete", Some(&complete)).is_some());
        let prompt = raw(r#"{"ref":{"type":"ref/prompt","name":"greet"}}"#);
        assert!(refusal(&access, "completion/complete", Some(&prompt)).is_none());
    }

    #[test]
    fn resource_templates_are_listed_by_their_uri_template() {
        let access = public_resources_only();
        let frame = br#"{"jsonrpc":"2.0","id":7,"result":{"resourceTemplates":[{"uriTemplate":"file:///public/{path}","name":"pub"},{"uriTemplate":"file:///secret/{path}","name":"sec"}]}}"#.to_vec();
        let out = filter_list(&access, "resources/templates/list", frame);
        let out = String::from_utf8(out).unwrap();
        assert!(out.contains("file:///public/{path}"), "{out}");
        assert!(!out.contains("secret"), "{out}");
        assert!(out.contains(r#""id":7"#), "{out}");
    }
}

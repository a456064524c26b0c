//! Names under a member's prefix: what each list method carries, the
//! prefix put on the names of a member's items, and taken off the name a
//! call of the aggregate gives.

use serde_json::Value;

/// The list methods an aggregate merges, the key of their items, and
/// whether those items' names take the member's prefix (resources keep
/// their URIs and names).
pub(crate) const LISTS: &[(&str, &str, bool)] = &[
    ("tools/list", "tools", true),
    ("prompts/list", "prompts", true),
    ("resources/list", "resources", false),
    ("resources/templates/list", "resourceTemplates", true),
];

/// The item key of list `method`, and whether its names are prefixed.
pub(crate) fn list_of(method: &str) -> Option<(&'static str, bool)> {
    LISTS
        .iter()
        .find(|(m, _, _)| *m == method)
        .map(|(_, key, prefixed)| (*key, *prefixed))
}

/// `item` with `prefix` before its `name`.
pub(crate) fn prefixed(mut item: Value, prefix: &str) -> Value {
    if prefix.is_empty() {
        return item;
    }
    if let Some(Value::String(name)) = item.get_mut("name") {
        name.insert_str(0, prefix);
    }
    item
}

/// The name of a listed item, as the aggregate's list shows it: the
/// `name` of tools, prompts and templates, the `uri` of resources.
pub(crate) fn listed_name<'a>(item: &'a Value, key: &str) -> Option<&'a str> {
    let field = if key == "resources" { "uri" } else { "name" };
    item.get(field).and_then(Value::as_str)
}

/// Where the name a request routes by sits in its params: `name` of
/// `tools/call` and `prompts/get`, `ref.name` of a `completion/complete`
/// for a prompt. `None`: the method is not routed by name.
fn name_slot<'a>(method: &str, params: &'a mut Value) -> Option<&'a mut Value> {
    match method {
        "tools/call" | "prompts/get" => params.get_mut("name"),
        "completion/complete" => {
            let reference = params.get_mut("ref")?;
            if reference.get("type").and_then(Value::as_str) == Some("ref/prompt") {
                reference.get_mut("name")
            } else {
                None
            }
        }
        _ => None,
    }
}

/// The name a request of `method` routes by, if it routes by name.
pub(crate) fn routed_name(method: &str, params: &Value) -> Option<String> {
    let mut copy = params.clone();
    name_slot(method, &mut copy)
        .and_then(|v| v.as_str())
        .map(str::to_owned)
}

/// `params` with the routed name replaced by `name` (the member's own).
pub(crate) fn with_name(method: &str, mut params: Value, name: &str) -> Value {
    if let Some(slot) = name_slot(method, &mut params) {
        *slot = Value::String(name.to_owned());
    }
    params
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn prefixes_go_on_names_and_come_off_routed_ones() {
        let tool = prefixed(json!({"name": "echo", "description": "d"}), "demo_");
        assert_eq!(tool, json!({"name": "demo_echo", "description": "d"}));
        assert_eq!(
            prefixed(json!({"name": "echo"}), ""),
            json!({"name": "echo"})
        );
        let call = json!({"name": "demo_echo", "arguments": {"text": "x"}});
        assert_eq!(routed_name("tools/call", &call).unwrap(), "demo_echo");
        assert_eq!(
            with_name("tools/call", call, "echo"),
            json!({"name": "echo", "arguments": {"text": "x"}})
        );
        let complete = json!({"ref": {"type": "ref/prompt", "name": "demo_greet"}, "argument": {}});
        assert_eq!(
            routed_name("completion/complete", &complete).unwrap(),
            "demo_greet"
        );
        let resource = json!({"ref": {"type": "ref/resource", "uri": "demo://x"}});
        assert_eq!(routed_name("completion/complete", &resource), None);
        assert_eq!(list_of("resources/list"), Some(("resources", false)));
        assert_eq!(list_of("tools/call"), None);
    }
}

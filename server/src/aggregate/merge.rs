//! One page of an aggregate's list from one page of each member's (pure):
//! items in member order under their prefixes, the cursor of the pages
//! still to come, and the members left out.

use serde_json::{Map, Value, json};

use super::cursor::{self, Resume};
use super::names;

/// The `_meta` key naming the members a merged list left out.
pub(crate) const OMITTED_MEMBERS: &str = "io.mcpod/omittedMembers";

/// What one member gave for a page.
#[derive(Debug, Clone, PartialEq)]
pub(crate) enum Part {
    /// Its items, and its cursor for the next page.
    Listed {
        /// The items, as the member named them.
        items: Vec<Value>,
        /// Its `nextCursor`.
        next: Option<String>,
    },
    /// Down, slow or failing: left out of this page.
    Omitted,
}

/// A member as a merge sees it.
#[derive(Debug, Clone, Copy)]
pub(crate) struct Named<'a> {
    /// The member target's name.
    pub(crate) name: &'a str,
    /// The prefix of its names.
    pub(crate) prefix: &'a str,
}

/// Two members' items under one name.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Collision {
    /// The name both appear under.
    pub(crate) name: String,
    /// The first member and its own name.
    pub(crate) first: (String, String),
    /// The second member and its own name.
    pub(crate) second: (String, String),
}

impl std::fmt::Display for Collision {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(
            f,
            "`{}` of member `{}` and `{}` of member `{}` both appear as `{}`: give one of them a prefix",
            self.first.1, self.first.0, self.second.1, self.second.0, self.name
        )
    }
}

/// The aggregate's page of list `key` (`prefixed`: its names take the
/// member's prefix) from `parts`, one per member index: the result object
/// without era-specific keys.
pub(crate) fn merge(
    key: &str,
    prefixed: bool,
    members: &[Named<'_>],
    parts: Vec<(usize, Part)>,
) -> Result<Value, Collision> {
    let mut items: Vec<Value> = Vec::new();
    // The aggregate's name of each item so far: whose, and its own name.
    let mut seen: std::collections::HashMap<String, (usize, String)> =
        std::collections::HashMap::new();
    let mut rest: Vec<Resume> = Vec::new();
    let mut omitted: Vec<&str> = Vec::new();
    let mut parts = parts;
    parts.sort_by_key(|(i, _)| *i);
    for (index, part) in parts {
        let Some(member) = members.get(index) else {
            continue;
        };
        match part {
            Part::Omitted => omitted.push(member.name),
            Part::Listed {
                items: listed,
                next,
            } => {
                for item in listed {
                    let item = if prefixed {
                        names::prefixed(item, member.prefix)
                    } else {
                        item
                    };
                    if prefixed {
                        if let Some(name) = names::listed_name(&item, key) {
                            let own = name[member.prefix.len().min(name.len())..].to_owned();
                            if let Some((other, their)) = seen.get(name) {
                                return Err(Collision {
                                    name: name.to_owned(),
                                    first: (members[*other].name.to_owned(), their.clone()),
                                    second: (member.name.to_owned(), own),
                                });
                            }
                            seen.insert(name.to_owned(), (index, own));
                        }
                    }
                    items.push(item);
                }
                if let Some(next) = next {
                    rest.push((index, Some(next)));
                }
            }
        }
    }
    let mut result = Map::new();
    result.insert(key.to_owned(), Value::Array(items));
    if let Some(next) = cursor::encode(&rest) {
        result.insert("nextCursor".into(), Value::String(next));
    }
    if !omitted.is_empty() {
        result.insert("_meta".into(), json!({ OMITTED_MEMBERS: omitted }));
    }
    Ok(Value::Object(result))
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;

    const MEMBERS: &[Named<'static>] = &[
        Named {
            name: "files",
            prefix: "files_",
        },
        Named {
            name: "git",
            prefix: "git_",
        },
        Named {
            name: "search",
            prefix: "",
        },
    ];

    fn listed(names: &[&str], next: Option<&str>) -> Part {
        Part::Listed {
            items: names.iter().map(|n| json!({ "name": n })).collect(),
            next: next.map(str::to_owned),
        }
    }

    #[test]
    fn items_come_in_member_order_under_their_prefixes() {
        let parts = vec![
            (1, listed(&["log"], Some("g2"))),
            (0, listed(&["read", "write"], None)),
            (2, Part::Omitted),
        ];
        let page = merge("tools", true, MEMBERS, parts).unwrap();
        let names: Vec<&str> = page["tools"]
            .as_array()
            .unwrap()
            .iter()
            .map(|t| t["name"].as_str().unwrap())
            .collect();
        assert_eq!(names, ["files_read", "files_write", "git_log"]);
        assert_eq!(page["_meta"][OMITTED_MEMBERS], json!(["search"]));
        let next = page["nextCursor"].as_str().unwrap();
        assert_eq!(
            cursor::decode(next, 3).unwrap(),
            vec![(1, Some("g2".to_owned()))]
        );
    }

    #[test]
    fn the_last_page_has_no_cursor_and_resources_keep_their_names() {
        let parts = vec![(0, listed(&["a"], None)), (2, listed(&["b"], None))];
        let page = merge("resources", false, MEMBERS, parts).unwrap();
        assert_eq!(page, json!({"resources": [{"name": "a"}, {"name": "b"}]}));
    }

    #[test]
    fn a_collision_names_both_items() {
        let members = [
            Named {
                name: "files",
                prefix: "",
            },
            Named {
                name: "git",
                prefix: "",
            },
        ];
        let parts = vec![
            (0, listed(&["status"], None)),
            (1, listed(&["status"], None)),
        ];
        let e = merge("tools", true, &members, parts).unwrap_err();
        assert_eq!(e.first, ("files".to_owned(), "status".to_owned()));
        assert_eq!(e.second, ("git".to_owned(), "status".to_owned()));
        assert!(e.to_string().contains("both appear as `status`"));
    }
}

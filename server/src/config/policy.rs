//! `[[targets.NAME.policy]]`: which tools, prompts and resources of a
//! target each caller may see and use.
//!
//! A rule *applies* to a caller when its identity selectors match (any
//! of `subjects` — globs over an OAuth token's `sub` — or `tokens` — names
//! of static tokens; a rule with neither applies to everyone) and the
//! caller holds every scope in `scopes`. Its `allow` and `deny` lists name
//! items as `tool:NAME`, `prompt:NAME` or `resource:URI`, each a glob
//! (`*` any run of characters, `?` one, `[abc]` a class).
//!
//! The decision for one item: denied if any applying rule denies it
//! (deny wins); else allowed if any applying rule allows it; else the
//! default of its kind — denied when some rule of the target names that
//! kind at all (in `allow` or `deny`), allowed when none does. So a target
//! without rules, or whose rules only speak of tools, keeps its prompts
//! and resources open.

use std::sync::Arc;

use globset::{Glob, GlobBuilder, GlobSet, GlobSetBuilder};
use serde::Deserialize;

use super::error::{ConfigError, invalid};
use crate::ids::Identity;

/// Rules per target, at most.
pub(super) const MAX_RULES: usize = 256;
/// Patterns in one list of a rule, at most.
pub(super) const MAX_PATTERNS: usize = 256;

/// One `[[targets.NAME.policy]]` rule as written.
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawPolicyRule {
    /// Globs over the OAuth token's `sub`.
    pub subjects: Option<Vec<String>>,
    /// Names of static tokens (`named_tokens`).
    pub tokens: Option<Vec<String>>,
    /// Scopes the caller must all hold.
    pub scopes: Option<Vec<String>>,
    /// Items allowed: `tool:GLOB`, `prompt:GLOB`, `resource:GLOB`.
    pub allow: Option<Vec<String>>,
    /// Items denied (deny wins over allow).
    pub deny: Option<Vec<String>>,
}

/// The kinds of item a policy speaks of.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ItemKind {
    /// A tool, by name.
    Tool,
    /// A prompt, by name.
    Prompt,
    /// A resource, by URI.
    Resource,
}

impl ItemKind {
    const ALL: [ItemKind; 3] = [ItemKind::Tool, ItemKind::Prompt, ItemKind::Resource];

    fn index(self) -> usize {
        match self {
            ItemKind::Tool => 0,
            ItemKind::Prompt => 1,
            ItemKind::Resource => 2,
        }
    }

    /// Its word in patterns and messages.
    pub fn word(self) -> &'static str {
        match self {
            ItemKind::Tool => "tool",
            ItemKind::Prompt => "prompt",
            ItemKind::Resource => "resource",
        }
    }
}

/// Patterns of one list, one set per kind.
#[derive(Debug, Clone)]
struct Lists {
    sets: [GlobSet; 3],
    named: [bool; 3],
}

impl Lists {
    fn matches(&self, kind: ItemKind, name: &str) -> bool {
        self.named[kind.index()] && self.sets[kind.index()].is_match(name)
    }
}

#[derive(Debug, Clone)]
struct Rule {
    subjects: Option<GlobSet>,
    tokens: Option<Vec<String>>,
    scopes: Vec<String>,
    allow: Lists,
    deny: Lists,
}

impl Rule {
    fn applies(&self, who: &Identity) -> bool {
        let identified = match (&self.subjects, &self.tokens) {
            (None, None) => true,
            (subjects, tokens) => {
                subjects
                    .as_ref()
                    .zip(who.subject.as_deref())
                    .is_some_and(|(set, sub)| set.is_match(sub))
                    || tokens
                        .as_ref()
                        .zip(who.token.as_deref())
                        .is_some_and(|(names, name)| names.iter().any(|n| n == name))
            }
        };
        identified && self.scopes.iter().all(|s| who.scopes.contains(s))
    }
}

/// A target's rules, validated and compiled.
#[derive(Debug, Clone)]
pub struct Policy {
    rules: Vec<Rule>,
    /// Whether some rule names each kind (then it is denied by default).
    governed: [bool; 3],
    /// The rules as written, for equality.
    written: String,
}

impl PartialEq for Policy {
    fn eq(&self, other: &Self) -> bool {
        self.written == other.written
    }
}

fn glob(key: &str, pattern: &str) -> Result<Glob, ConfigError> {
    if pattern.is_empty() || pattern.len() > 1024 || pattern.chars().any(char::is_control) {
        return Err(invalid(
            key,
            "expected a name or glob (1..1024 characters, no control characters)",
        ));
    }
    GlobBuilder::new(pattern)
        .literal_separator(false)
        .backslash_escape(true)
        .build()
        .map_err(|e| invalid(key, format!("`{pattern}` is not a glob: {}", e.kind())))
}

fn list(key: &str, items: Option<Vec<String>>) -> Result<Option<Vec<String>>, ConfigError> {
    match items {
        Some(v) if v.len() > MAX_PATTERNS => {
            Err(invalid(key, format!("at most {MAX_PATTERNS} entries")))
        }
        Some(v) if v.is_empty() => Err(invalid(key, "empty (leave it out instead)")),
        other => Ok(other),
    }
}

fn lists(key: &str, items: Option<Vec<String>>) -> Result<Lists, ConfigError> {
    let mut builders = [
        GlobSetBuilder::new(),
        GlobSetBuilder::new(),
        GlobSetBuilder::new(),
    ];
    let mut named = [false; 3];
    for (i, item) in list(key, items)?.unwrap_or_default().iter().enumerate() {
        let key = format!("{key}[{i}]");
        let Some((word, pattern)) = item.split_once(':') else {
            return Err(invalid(
                key,
                format!(
                    "`{item}`: expected tool:NAME, prompt:NAME or resource:URI (globs allowed)"
                ),
            ));
        };
        let Some(kind) = ItemKind::ALL.into_iter().find(|k| k.word() == word) else {
            return Err(invalid(
                key,
                format!("`{word}` is not a kind: expected tool, prompt or resource"),
            ));
        };
        builders[kind.index()].add(glob(&key, pattern)?);
        named[kind.index()] = true;
    }
    let build = |b: GlobSetBuilder| {
        b.build()
            .map_err(|e| invalid(key, format!("the patterns do not compile: {e}")))
    };
    let [t, p, r] = builders;
    Ok(Lists {
        sets: [build(t)?, build(p)?, build(r)?],
        named,
    })
}

impl Policy {
    /// Validates the rules of the target at `key` (`targets.NAME`).
    pub fn from_raw(key: &str, raw: Vec<RawPolicyRule>) -> Result<Option<Policy>, ConfigError> {
        if raw.is_empty() {
            return Ok(None);
        }
        if raw.len() > MAX_RULES {
            return Err(invalid(
                format!("{key}.policy"),
                format!("at most {MAX_RULES} rules"),
            ));
        }
        let written = format!("{raw:?}");
        let mut rules = Vec::with_capacity(raw.len());
        let mut governed = [false; 3];
        for (n, r) in raw.into_iter().enumerate() {
            let key = format!("{key}.policy[{n}]");
            let subjects = match list(&format!("{key}.subjects"), r.subjects)? {
                Some(globs) => {
                    let mut set = GlobSetBuilder::new();
                    for (i, g) in globs.iter().enumerate() {
                        set.add(glob(&format!("{key}.subjects[{i}]"), g)?);
                    }
                    Some(set.build().map_err(|e| {
                        invalid(format!("{key}.subjects"), format!("do not compile: {e}"))
                    })?)
                }
                None => None,
            };
            let tokens = list(&format!("{key}.tokens"), r.tokens)?;
            let scopes = list(&format!("{key}.scopes"), r.scopes)?.unwrap_or_default();
            if r.allow.is_none() && r.deny.is_none() {
                return Err(invalid(
                    key,
                    "a rule needs `allow` or `deny` (it would decide nothing)",
                ));
            }
            let allow = lists(&format!("{key}.allow"), r.allow)?;
            let deny = lists(&format!("{key}.deny"), r.deny)?;
            for kind in ItemKind::ALL {
                let i = kind.index();
                governed[i] |= allow.named[i] || deny.named[i];
            }
            rules.push(Rule {
                subjects,
                tokens,
                scopes,
                allow,
                deny,
            });
        }
        Ok(Some(Policy {
            rules,
            governed,
            written,
        }))
    }

    /// Whether `who` may see and use the `kind` item `name`.
    pub(crate) fn allows(&self, who: &Identity, kind: ItemKind, name: &str) -> bool {
        let mut allowed = false;
        for rule in self.rules.iter().filter(|r| r.applies(who)) {
            if rule.deny.matches(kind, name) {
                return false;
            }
            allowed |= rule.allow.matches(kind, name);
        }
        allowed || !self.governed[kind.index()]
    }

    /// Whether it restricts `kind` at all.
    pub fn governs(&self, kind: ItemKind) -> bool {
        self.governed[kind.index()]
    }
}

/// What one caller may reach of one target: everything, or what the
/// target's policy gives their identity.
#[derive(Debug, Clone, Default)]
pub struct Access(Option<Arc<(Arc<Policy>, Identity)>>);

impl Access {
    /// Everything (no policy).
    pub fn all() -> Access {
        Access(None)
    }

    /// What `policy` (if any) gives `who`.
    pub(crate) fn of(policy: Option<&Arc<Policy>>, who: Identity) -> Access {
        Access(policy.map(|p| Arc::new((p.clone(), who))))
    }

    /// Whether the caller may see and use the `kind` item `name`.
    pub fn allows(&self, kind: ItemKind, name: &str) -> bool {
        match &self.0 {
            None => true,
            Some(both) => both.0.allows(&both.1, kind, name),
        }
    }

    /// Whether some of `kind` may be hidden from the caller.
    pub fn restricts(&self, kind: ItemKind) -> bool {
        self.0.as_ref().is_some_and(|both| both.0.governs(kind))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn policy(toml: &str) -> Result<Policy, String> {
        #[derive(Deserialize)]
        struct P {
            policy: Vec<RawPolicyRule>,
        }
        let p: P = toml::from_str(toml).map_err(|e| e.to_string())?;
        Policy::from_raw("targets.t", p.policy)
            .map(|p| p.unwrap())
            .map_err(|e| e.to_string())
    }

    fn who(subject: Option<&str>, token: Option<&str>, scopes: &[&str]) -> Identity {
        Identity {
            token: token.map(str::to_owned),
            subject: subject.map(str::to_owned),
            scopes: scopes.iter().map(|s| (*s).to_owned()).collect(),
        }
    }

    #[test]
    fn deny_wins_and_governed_kinds_default_to_deny() {
        let p = policy(
            r#"
            [[policy]]
            allow = ["tool:read_*", "tool:echo"]
            [[policy]]
            subjects = ["alice@*"]
            allow = ["tool:*"]
            deny = ["tool:drop_table"]
            [[policy]]
            tokens = ["ci"]
            scopes = ["admin"]
            allow = ["tool:drop_*"]
            "#,
        )
        .unwrap();
        let anyone = who(None, None, &[]);
        let alice = who(Some("alice@example.com"), None, &[]);
        let ci = who(None, Some("ci"), &["admin"]);
        let ci_plain = who(None, Some("ci"), &[]);
        assert!(p.allows(&anyone, ItemKind::Tool, "read_file"));
        assert!(!p.allows(&anyone, ItemKind::Tool, "write_file"));
        assert!(p.allows(&alice, ItemKind::Tool, "write_file"));
        assert!(!p.allows(&alice, ItemKind::Tool, "drop_table"));
        assert!(p.allows(&ci, ItemKind::Tool, "drop_table"));
        assert!(!p.allows(&ci_plain, ItemKind::Tool, "drop_table"));
        // No rule names prompts or resources: they stay open.
        assert!(p.allows(&anyone, ItemKind::Prompt, "anything"));
        assert!(p.allows(&anyone, ItemKind::Resource, "file:///x"));
        assert!(p.governs(ItemKind::Tool) && !p.governs(ItemKind::Prompt));
    }

    #[test]
    fn bad_rules_name_the_key() {
        let cases = [
            (
                "[[policy]]\nallow = [\"tools:x\"]",
                "targets.t.policy[0].allow[0]",
            ),
            (
                "[[policy]]\nallow = [\"x\"]",
                "targets.t.policy[0].allow[0]",
            ),
            ("[[policy]]\nsubjects = [\"a\"]", "targets.t.policy[0]"),
            (
                "[[policy]]\nallow = [\"tool:a\"]\n[[policy]]\ndeny = [\"tool:[\"]",
                "targets.t.policy[1].deny[0]",
            ),
            ("[[policy]]\nallow = []", "targets.t.policy[0].allow"),
        ];
        for (text, key) in cases {
            let err = policy(text).unwrap_err();
            assert!(err.starts_with(key), "{key}: {err}");
        }
    }
}

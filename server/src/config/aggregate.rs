//! `kind = "aggregate"` targets: one endpoint serving the tools, prompts
//! and resources of several other targets (its members), their names under
//! a per-member prefix.
//!
//! ```toml
//! [targets.all]
//! kind = "aggregate"
//! members = ["files", "git", "search"]
//! prefixes = { search = "" }   # default `{member}_`; "" for none
//! member_timeout = "5s"        # a member's part of a list is left out after this
//! ```

use std::collections::BTreeMap;
use std::time::Duration;

use super::error::{ConfigError, invalid};
use super::oauth::{AuthMethods, OAuthConfig};
use super::policy::Policy;
use super::raw::RawTarget;

/// Most members one aggregate may have (each list fans out to all).
pub const MAX_MEMBERS: usize = 64;

/// The default deadline of a member's part of a merged list.
pub const DEFAULT_MEMBER_TIMEOUT: Duration = Duration::from_secs(5);

/// One member of an aggregate: a target, and the prefix of its names.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AggregateMember {
    /// The member target's name.
    pub target: String,
    /// Put before each of its tool, prompt and resource template names
    /// (empty: names as the member gives them).
    pub prefix: String,
}

/// A `kind = "aggregate"` target, validated.
#[derive(Debug, Clone, PartialEq)]
pub struct AggregateConfig {
    /// Its name (the `/mcp/{name}` path).
    pub name: String,
    /// Its members, in the order configured (merged lists follow it).
    pub members: Vec<AggregateMember>,
    /// How long a member's part of a merged list is waited for.
    pub member_timeout: Duration,
    /// Bearer tokens for the aggregate (`None`: the global ones).
    pub tokens: Option<Vec<String>>,
    /// Which credentials it accepts.
    pub auth_methods: AuthMethods,
    /// Its own issuer (replacing `[auth.oauth]`).
    pub oauth: Option<OAuthConfig>,
    /// Who may see and use which of its (prefixed) names.
    pub policy: Option<std::sync::Arc<Policy>>,
}

impl AggregateConfig {
    /// The member whose prefix `name` carries, and `name` without it.
    /// The longest prefix wins (`git_` before `g`), so that a name is
    /// routed the same way the merged list named it.
    pub fn member_of<'a>(&self, name: &'a str) -> Option<(&AggregateMember, &'a str)> {
        self.members
            .iter()
            .filter_map(|m| name.strip_prefix(m.prefix.as_str()).map(|rest| (m, rest)))
            .max_by_key(|(m, _)| m.prefix.len())
    }
}

/// Whether `raw` is an aggregate.
pub(super) fn is_aggregate(raw: &RawTarget) -> bool {
    raw.kind.as_deref() == Some("aggregate")
}

/// Refuses the aggregate-only keys on a target of another kind.
pub(super) fn reject_aggregate_fields(key: &str, raw: &RawTarget) -> Result<(), ConfigError> {
    let set = [
        ("members", raw.members.is_some()),
        ("prefixes", raw.prefixes.is_some()),
        ("member_timeout", raw.member_timeout.is_some()),
    ];
    match set.iter().find(|(_, is_set)| *is_set) {
        Some((field, _)) => Err(invalid(
            format!("{key}.{field}"),
            "only for targets of kind = \"aggregate\"",
        )),
        None => Ok(()),
    }
}

/// Refuses the keys of a backend on an aggregate (it runs nothing itself).
fn reject_backend_fields(key: &str, raw: &RawTarget) -> Result<(), ConfigError> {
    let set = [
        ("command", raw.command.is_some()),
        ("args", raw.args.is_some()),
        ("env", raw.env.is_some()),
        ("env_clear", raw.env_clear.is_some()),
        ("cwd", raw.cwd.is_some()),
        ("era", raw.era.is_some()),
        ("call_timeout", raw.call_timeout.is_some()),
        ("sharing", raw.sharing.is_some()),
        ("roots", raw.roots.is_some()),
        ("max_calls_in_flight", raw.max_calls_in_flight.is_some()),
        ("shutdown_grace", raw.shutdown_grace.is_some()),
        ("restart_backoff_min", raw.restart_backoff_min.is_some()),
        ("restart_backoff_max", raw.restart_backoff_max.is_some()),
        ("asking_tools", raw.asking_tools.is_some()),
        ("broadcast_logs", raw.broadcast_logs.is_some()),
        ("bot", raw.bot.is_some()),
        ("socket", raw.socket.is_some()),
        ("namespace", raw.namespace.is_some()),
        ("container_prefix", raw.container_prefix.is_some()),
        ("fifo_root", raw.fifo_root.is_some()),
        ("allow_unlabelled", raw.allow_unlabelled.is_some()),
        ("start_stopped_tasks", raw.start_stopped_tasks.is_some()),
        ("idle_timeout", raw.idle_timeout.is_some()),
    ];
    match set.iter().find(|(_, is_set)| *is_set) {
        Some((field, _)) => Err(invalid(
            format!("{key}.{field}"),
            "an aggregate runs no backend of its own: set this on its members",
        )),
        None => Ok(()),
    }
}

/// Validates the aggregate `name` (a valid target name) over the raw
/// targets of the config (`targets`): its members must be targets of
/// another kind.
pub(super) fn validate_aggregate(
    name: &str,
    raw: &RawTarget,
    targets: &BTreeMap<String, RawTarget>,
) -> Result<AggregateConfig, ConfigError> {
    let key = format!("targets.{name}");
    reject_backend_fields(&key, raw)?;
    let names = raw
        .members
        .as_ref()
        .filter(|m| !m.is_empty())
        .ok_or_else(|| {
            invalid(
                format!("{key}.members"),
                "missing (the targets it serves, e.g. [\"files\", \"git\"])",
            )
        })?;
    if names.len() > MAX_MEMBERS {
        return Err(invalid(
            format!("{key}.members"),
            format!("at most {MAX_MEMBERS} members"),
        ));
    }
    let prefixes = raw.prefixes.clone().unwrap_or_default();
    if let Some(unknown) = prefixes.keys().find(|p| !names.contains(p)) {
        return Err(invalid(
            format!("{key}.prefixes.{unknown}"),
            format!("`{unknown}` is not one of members"),
        ));
    }
    let mut members: Vec<AggregateMember> = Vec::with_capacity(names.len());
    for (i, member) in names.iter().enumerate() {
        let at = format!("{key}.members[{i}]");
        match targets.get(member) {
            None => return Err(invalid(at, format!("no target named `{member}`"))),
            Some(t) if is_aggregate(t) => {
                return Err(invalid(
                    at,
                    format!(
                        "`{member}` is an aggregate; members must be targets that run a server"
                    ),
                ));
            }
            Some(_) => {}
        }
        if members.iter().any(|m| &m.target == member) {
            return Err(invalid(at, format!("`{member}` is listed twice")));
        }
        let prefix = prefixes
            .get(member)
            .cloned()
            .unwrap_or_else(|| format!("{member}_"));
        if prefix.len() > 64 || prefix.chars().any(|c| c.is_control() || c == '/') {
            return Err(invalid(
                format!("{key}.prefixes.{member}"),
                "at most 64 characters, no control characters or `/`",
            ));
        }
        members.push(AggregateMember {
            target: member.clone(),
            prefix,
        });
    }
    // Without prefixes, names of two members can only be told apart by
    // the members' lists: checked at start. One prefix that starts
    // another (`g` and `git_`) is refused here, where it is plain.
    for a in &members {
        for b in &members {
            if a.target != b.target && !a.prefix.is_empty() && b.prefix.starts_with(&a.prefix) {
                return Err(invalid(
                    format!("{key}.prefixes.{}", b.target),
                    format!(
                        "prefix `{}` of `{}` starts with prefix `{}` of `{}`: their names could collide",
                        b.prefix, b.target, a.prefix, a.target
                    ),
                ));
            }
        }
    }
    let member_timeout = match &raw.member_timeout {
        Some(d) => d.parse(&format!("{key}.member_timeout"))?,
        None => DEFAULT_MEMBER_TIMEOUT,
    };
    if member_timeout.is_zero() {
        return Err(invalid(
            format!("{key}.member_timeout"),
            "must be above zero",
        ));
    }
    Ok(AggregateConfig {
        name: name.to_owned(),
        members,
        member_timeout,
        tokens: None,
        auth_methods: AuthMethods {
            tokens: true,
            oauth: false,
        },
        oauth: None,
        policy: None,
    })
}

#[cfg(test)]
mod tests {
    use crate::config::{Config, RawConfig};

    const MEMBERS: &str = "[auth]\ndisabled = true\n\
        [targets.files]\ncommand = \"f\"\n\
        [targets.git]\ncommand = \"g\"\n";

    fn load(extra: &str) -> Result<Config, String> {
        RawConfig::from_toml(&format!("{MEMBERS}{extra}"))?
            .validate()
            .map_err(|e| e.to_string())
    }

    #[test]
    fn an_aggregate_is_kept_apart_with_default_and_given_prefixes() {
        let config = load(
            "[targets.all]\nkind = \"aggregate\"\nmembers = [\"files\", \"git\"]\n\
             prefixes = { git = \"\" }\nmember_timeout = \"2s\"\n",
        )
        .unwrap();
        assert!(!config.targets.contains_key("all"));
        let all = &config.aggregates["all"];
        let prefixes: Vec<(&str, &str)> = all
            .members
            .iter()
            .map(|m| (m.target.as_str(), m.prefix.as_str()))
            .collect();
        assert_eq!(prefixes, [("files", "files_"), ("git", "")]);
        assert_eq!(all.member_timeout, std::time::Duration::from_secs(2));
        let (member, rest) = all.member_of("files_read").unwrap();
        assert_eq!((member.target.as_str(), rest), ("files", "read"));
        let (member, rest) = all.member_of("log").unwrap();
        assert_eq!((member.target.as_str(), rest), ("git", "log"));
    }

    #[test]
    fn errors_name_the_key_at_fault() {
        let cases = [
            (
                "[targets.all]\nkind = \"aggregate\"\n",
                "targets.all.members: missing",
            ),
            (
                "[targets.all]\nkind = \"aggregate\"\nmembers = [\"nope\"]\n",
                "targets.all.members[0]: no target named `nope`",
            ),
            (
                "[targets.all]\nkind = \"aggregate\"\nmembers = [\"files\"]\n\
                 [targets.top]\nkind = \"aggregate\"\nmembers = [\"all\"]\n",
                "targets.top.members[0]: `all` is an aggregate",
            ),
            (
                "[targets.all]\nkind = \"aggregate\"\nmembers = [\"files\", \"files\"]\n",
                "targets.all.members[1]: `files` is listed twice",
            ),
            (
                "[targets.all]\nkind = \"aggregate\"\nmembers = [\"files\"]\ncommand = \"x\"\n",
                "targets.all.command: an aggregate runs no backend",
            ),
            (
                "[targets.all]\nkind = \"aggregate\"\nmembers = [\"files\"]\n\
                 prefixes = { git = \"g_\" }\n",
                "targets.all.prefixes.git: `git` is not one of members",
            ),
            (
                "[targets.all]\nkind = \"aggregate\"\nmembers = [\"files\", \"git\"]\n\
                 prefixes = { files = \"g\", git = \"git_\" }\n",
                "targets.all.prefixes.git: prefix `git_` of `git` starts with prefix `g` of `files`",
            ),
            (
                "[targets.all]\nkind = \"aggregate\"\nmembers = [\"files\"]\nmember_timeout = \"0s\"\n",
                "targets.all.member_timeout: must be above zero",
            ),
            (
                "[targets.other]\ncommand = \"o\"\nmembers = [\"files\"]\n",
                "targets.other.members: only for targets of kind = \"aggregate\"",
            ),
        ];
        for (extra, expected) in cases {
            let e = load(extra).unwrap_err();
            assert!(e.contains(expected), "{extra}: {e}");
        }
    }

    #[test]
    fn a_bot_may_map_to_an_aggregate_but_not_to_nothing() {
        let c = load(
            "[targets.all]\nkind = \"aggregate\"\nmembers = [\"files\"]\n\
             [bots.b1]\ntarget = \"all\"\n",
        )
        .unwrap();
        assert_eq!(c.bots["b1"].target, "all");
        let e = load("[bots.b1]\ntarget = \"nothing\"\n").unwrap_err();
        assert!(
            e.contains("bots.b1.target: no target named `nothing`"),
            "{e}"
        );
    }
}

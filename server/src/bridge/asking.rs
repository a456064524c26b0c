//! [`AskingTools`]: which tool calls may ask the client (sampling,
//! elicitation, roots) on a shared legacy backend.
//!
//! A stdio server request names no call, so with several calls in flight
//! on one backend the core cannot tell whose it is. Calls flagged
//! [`RequestOptions::may_ask`](mcpod_tokio::RequestOptions::may_ask) take
//! turns there (the core's mechanism): a server request then belongs to
//! the one asking call that runs, while every other call goes on at once.
//! This module decides the flag: a `tools/call` of a tool the target's
//! `asking_tools` names, or of one seen asking before (a server request
//! given to its call) — learned per backend, a bounded set, since the
//! names come from the backend's own tool list.
//!
//! Backends of one client (`per_session`, Memoh stdio connections) need
//! none of it: every server request is that client's. Modern backends send
//! none (they answer `input_required`); the core ignores the flag there.

use std::collections::HashSet;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};

use parking_lot::Mutex;
use serde::Deserialize;
use serde_json::value::RawValue;
use tracing::{info, warn};

use crate::config::TargetConfig;
use crate::targets::Backend;

/// Tools learned as asking per backend, at most; past it, more are not
/// learned (their calls keep the rules for calls that do not ask).
pub(crate) const MAX_LEARNED: usize = 256;

/// The tools whose calls may ask the client, for one shared backend.
#[derive(Debug)]
pub(crate) struct AskingTools {
    /// The target's `asking_tools`: names, or patterns with `*`.
    configured: Vec<String>,
    learned: Mutex<HashSet<String>>,
    /// The bound was reached and said so (once).
    full: AtomicBool,
    target: String,
}

impl AskingTools {
    /// Those of `backend` (of target `config`); `None` when it has one
    /// client only.
    pub(crate) fn of(backend: &Backend, config: &TargetConfig) -> Option<Arc<AskingTools>> {
        if backend.exclusive() {
            return None;
        }
        Some(backend.attachment(|| AskingTools {
            configured: config.asking_tools.clone(),
            learned: Mutex::new(HashSet::new()),
            full: AtomicBool::new(false),
            target: config.name.clone(),
        }))
    }

    /// Whether a call of `tool` may ask.
    pub(crate) fn asks(&self, tool: &str) -> bool {
        self.configured.iter().any(|p| glob(p, tool)) || self.learned.lock().contains(tool)
    }

    /// A call of `tool` got a server request: its later calls take turns.
    pub(crate) fn learn(&self, tool: &str) {
        if self.configured.iter().any(|p| glob(p, tool)) {
            return;
        }
        let mut learned = self.learned.lock();
        if learned.contains(tool) {
            return;
        }
        if learned.len() >= MAX_LEARNED {
            if !self.full.swap(true, Ordering::Relaxed) {
                warn!(target = %self.target, tool, max = MAX_LEARNED, "too many tools learned as asking the client: no more are; name the ones that ask in asking_tools");
            }
            return;
        }
        learned.insert(tool.to_owned());
        info!(target = %self.target, tool, "the tool asks the client: its calls take turns from now on");
    }
}

/// The tool a `tools/call` names.
pub(crate) fn tool_name(params: Option<&RawValue>) -> Option<String> {
    #[derive(Deserialize)]
    struct Call<'a> {
        #[serde(borrow)]
        name: std::borrow::Cow<'a, str>,
    }
    let call = serde_json::from_str::<Call<'_>>(params?.get()).ok()?;
    Some(call.name.into_owned())
}

/// Whether `name` matches `pattern`, where `*` stands for any run of
/// characters (none included) and everything else for itself.
fn glob(pattern: &str, name: &str) -> bool {
    let mut parts = pattern.split('*');
    let Some(first) = parts.next() else {
        return false;
    };
    let Some(mut rest) = name.strip_prefix(first) else {
        return false;
    };
    let parts: Vec<&str> = parts.collect();
    let Some((last, middle)) = parts.split_last() else {
        return rest.is_empty(); // no `*`: the exact name
    };
    for part in middle {
        match rest.find(part) {
            Some(at) => rest = &rest[at + part.len()..],
            None => return false,
        }
    }
    rest.len() >= last.len() && rest.ends_with(last)
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;

    fn tools(configured: &[&str]) -> AskingTools {
        AskingTools {
            configured: configured.iter().map(|s| (*s).to_owned()).collect(),
            learned: Mutex::new(HashSet::new()),
            full: AtomicBool::new(false),
            target: "t".into(),
        }
    }

    #[test]
    fn configured_tools_ask_learned_ones_join_them_up_to_the_bound() {
        let t = tools(&["ask", "summarize*"]);
        assert!(t.asks("ask") && t.asks("summarize_all"));
        assert!(!t.asks("echo"));
        t.learn("echo");
        assert!(t.asks("echo"));
        t.learn("ask"); // configured already: not learned twice
        assert_eq!(t.learned.lock().len(), 1);
        for n in 0..2 * MAX_LEARNED {
            t.learn(&format!("tool-{n}"));
        }
        assert_eq!(t.learned.lock().len(), MAX_LEARNED);
        assert!(!t.asks(&format!("tool-{}", 2 * MAX_LEARNED - 1)));
    }

    #[test]
    fn the_tool_is_read_from_a_call() {
        let p = RawValue::from_string(r#"{"name":"ask","arguments":{}}"#.into()).unwrap();
        assert_eq!(tool_name(Some(&p)).as_deref(), Some("ask"));
        let p = RawValue::from_string(r#"{"arguments":{}}"#.into()).unwrap();
        assert_eq!(tool_name(Some(&p)), None);
        assert_eq!(tool_name(None), None);
    }

    #[test]
    fn patterns_match_names_exactly_or_around_stars() {
        let cases = [
            ("ask", "ask", true),
            ("ask", "ask2", false),
            ("ask", "as", false),
            ("summarize*", "summarize", true),
            ("summarize*", "summarize_doc", true),
            ("summarize*", "summariz", false),
            ("*_ask", "user_ask", true),
            ("*_ask", "user_ask_not", false),
            ("a*b*c", "abc", true),
            ("a*b*c", "a-b-b-c", true),
            ("a*b*c", "a-c", false),
            ("a*a", "a", false),
            ("*", "anything", true),
            ("*", "", true),
            ("**", "x", true),
        ];
        for (pattern, name, want) in cases {
            assert_eq!(glob(pattern, name), want, "{pattern} ~ {name}");
        }
    }
}

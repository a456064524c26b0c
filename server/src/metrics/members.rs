//! `mcpod_aggregate_member_requests_total{target,member,outcome}`: what
//! an aggregate asked of each member, and how it went.

use std::collections::BTreeMap;
use std::fmt::Write as _;

use parking_lot::Mutex;

/// Most (aggregate, member) pairs counted: both come from the config, so
/// this is only reached by many reloads adding new names.
const MAX_SERIES: usize = 4096;

/// How a member's part of an aggregate's request went.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub(crate) enum MemberOutcome {
    /// It answered.
    Ok,
    /// It answered with an error.
    Error,
    /// It was left out: not ready, busy, or slower than `member_timeout`.
    Omitted,
}

impl MemberOutcome {
    fn label(self) -> &'static str {
        match self {
            MemberOutcome::Ok => "ok",
            MemberOutcome::Error => "error",
            MemberOutcome::Omitted => "omitted",
        }
    }
}

/// The counters, by aggregate, member and outcome.
#[derive(Debug, Default)]
pub(crate) struct MemberRequests {
    counts: Mutex<BTreeMap<(String, String, MemberOutcome), u64>>,
}

impl MemberRequests {
    /// Counts one request of `aggregate` to `member`.
    pub(crate) fn record(&self, aggregate: &str, member: &str, outcome: MemberOutcome) {
        let mut counts = self.counts.lock();
        let key = (aggregate.to_owned(), member.to_owned(), outcome);
        if let Some(n) = counts.get_mut(&key) {
            *n += 1;
        } else if counts.len() < MAX_SERIES {
            counts.insert(key, 1);
        }
    }

    /// How many requests of `aggregate` to `member` ended so.
    #[cfg(test)]
    pub(crate) fn count(&self, aggregate: &str, member: &str, outcome: MemberOutcome) -> u64 {
        let key = (aggregate.to_owned(), member.to_owned(), outcome);
        self.counts.lock().get(&key).copied().unwrap_or(0)
    }

    /// Appends the counters to `out`, label values escaped with `esc`.
    pub(crate) fn render(&self, out: &mut String, esc: fn(&str) -> String) {
        let counts = self.counts.lock();
        if counts.is_empty() {
            return;
        }
        out.push_str(
            "# HELP mcpod_aggregate_member_requests_total Requests an aggregate made of its members, by outcome (omitted: left out of the answer).\n\
             # TYPE mcpod_aggregate_member_requests_total counter\n",
        );
        for ((target, member, outcome), n) in counts.iter() {
            let _ = writeln!(
                out,
                "mcpod_aggregate_member_requests_total{{target=\"{}\",member=\"{}\",outcome=\"{}\"}} {n}",
                esc(target),
                esc(member),
                outcome.label()
            );
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn counts_render_by_target_member_and_outcome() {
        let m = MemberRequests::default();
        let mut out = String::new();
        m.render(&mut out, str::to_owned);
        assert!(out.is_empty(), "nothing counted, nothing rendered");
        m.record("all", "git", MemberOutcome::Omitted);
        m.record("all", "git", MemberOutcome::Omitted);
        m.record("all", "files", MemberOutcome::Ok);
        assert_eq!(m.count("all", "git", MemberOutcome::Omitted), 2);
        m.render(&mut out, str::to_owned);
        assert!(out.contains(
            "mcpod_aggregate_member_requests_total{target=\"all\",member=\"git\",outcome=\"omitted\"} 2"
        ));
        assert!(out.contains("member=\"files\",outcome=\"ok\"} 1"));
    }
}

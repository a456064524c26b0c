//! Prometheus metrics, in the text exposition format (hand-rolled: a few
//! counters, one histogram, gauges read at scrape time).

use std::collections::{BTreeMap, HashMap};
use std::fmt::Write as _;
use std::sync::Mutex;
use std::time::Duration;

/// Latency histogram bucket bounds, in seconds.
const BUCKETS: [f64; 14] = [
    0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 10.0, 60.0,
];

/// Methods reported by name; anything else is `other` (bounded cardinality).
const KNOWN_METHODS: &[&str] = &[
    "initialize",
    "ping",
    "server/discover",
    "subscriptions/listen",
    "tools/list",
    "tools/call",
    "resources/list",
    "resources/templates/list",
    "resources/read",
    "resources/subscribe",
    "resources/unsubscribe",
    "prompts/list",
    "prompts/get",
    "completion/complete",
    "logging/setLevel",
    "notifications/initialized",
    "notifications/cancelled",
    "notifications/progress",
    "notifications/roots/list_changed",
    "response",
    "GET",
    "DELETE",
    "mcp-stdio/create",
    "mcp-stdio/delete",
];

/// The label a method is counted under.
pub fn method_label(method: &str) -> &'static str {
    KNOWN_METHODS
        .iter()
        .find(|m| **m == method)
        .copied()
        .unwrap_or("other")
}

#[derive(Debug, Default, Clone)]
struct Histogram {
    buckets: [u64; BUCKETS.len()],
    sum: f64,
    count: u64,
}

/// Counters of one target; keys are static, so counting allocates nothing
/// once a series exists.
#[derive(Debug, Default)]
struct TargetCounters {
    requests: HashMap<(&'static str, &'static str), u64>,
    latency: HashMap<&'static str, Histogram>,
}

#[derive(Debug, Default)]
struct Inner {
    targets: HashMap<String, TargetCounters>,
}

/// Gauges of one target, read at scrape time.
#[derive(Debug, Clone, Default)]
pub struct TargetGauges {
    /// Target name.
    pub target: String,
    /// Calls in flight now.
    pub calls_in_flight: usize,
    /// Legacy sessions open now.
    pub sessions: usize,
    /// Backend restarts so far (all of the target's backends).
    pub restarts: u64,
    /// Backends running now.
    pub backends_alive: usize,
}

/// The gateway's counters.
#[derive(Debug, Default)]
pub struct Metrics {
    inner: Mutex<Inner>,
}

impl Metrics {
    /// Counts one finished request.
    pub fn record(&self, target: &str, method: &str, outcome: &'static str, elapsed: Duration) {
        let method = method_label(method);
        let mut inner = self.inner.lock().unwrap_or_else(|e| e.into_inner());
        if !inner.targets.contains_key(target) {
            inner
                .targets
                .insert(target.to_owned(), TargetCounters::default());
        }
        let Some(counters) = inner.targets.get_mut(target) else {
            return;
        };
        *counters.requests.entry((method, outcome)).or_default() += 1;
        let h = counters.latency.entry(method).or_default();
        let secs = elapsed.as_secs_f64();
        for (i, bound) in BUCKETS.iter().enumerate() {
            if secs <= *bound {
                h.buckets[i] += 1;
            }
        }
        h.sum += secs;
        h.count += 1;
    }

    /// The text exposition.
    pub fn render(&self, gauges: &[TargetGauges]) -> String {
        // Sorted, so scrapes are stable and diffable.
        let (requests, latency) = {
            let inner = self.inner.lock().unwrap_or_else(|e| e.into_inner());
            let mut requests = BTreeMap::new();
            let mut latency = BTreeMap::new();
            for (target, c) in &inner.targets {
                for ((method, outcome), n) in &c.requests {
                    requests.insert((target.clone(), *method, *outcome), *n);
                }
                for (method, h) in &c.latency {
                    latency.insert((target.clone(), *method), h.clone());
                }
            }
            (requests, latency)
        };
        let mut out = String::with_capacity(4096);
        out.push_str(
            "# HELP mcpod_requests_total MCP requests handled, by target, method and outcome.\n",
        );
        out.push_str("# TYPE mcpod_requests_total counter\n");
        for ((target, method, outcome), n) in &requests {
            let _ = writeln!(
                out,
                "mcpod_requests_total{{target=\"{}\",method=\"{}\",outcome=\"{}\"}} {n}",
                esc(target),
                method,
                esc(outcome)
            );
        }
        out.push_str("# HELP mcpod_request_duration_seconds Time to answer a request (to the end of its stream).\n");
        out.push_str("# TYPE mcpod_request_duration_seconds histogram\n");
        for ((target, method), h) in &latency {
            let labels = format!("target=\"{}\",method=\"{}\"", esc(target), method);
            for (i, bound) in BUCKETS.iter().enumerate() {
                let _ = writeln!(
                    out,
                    "mcpod_request_duration_seconds_bucket{{{labels},le=\"{bound}\"}} {}",
                    h.buckets[i]
                );
            }
            let _ = writeln!(
                out,
                "mcpod_request_duration_seconds_bucket{{{labels},le=\"+Inf\"}} {}",
                h.count
            );
            let _ = writeln!(
                out,
                "mcpod_request_duration_seconds_sum{{{labels}}} {}",
                h.sum
            );
            let _ = writeln!(
                out,
                "mcpod_request_duration_seconds_count{{{labels}}} {}",
                h.count
            );
        }
        let gauge = |out: &mut String,
                     name: &str,
                     help: &str,
                     kind: &str,
                     f: &dyn Fn(&TargetGauges) -> String| {
            let _ = writeln!(out, "# HELP {name} {help}");
            let _ = writeln!(out, "# TYPE {name} {kind}");
            for g in gauges {
                let _ = writeln!(out, "{name}{{target=\"{}\"}} {}", esc(&g.target), f(g));
            }
        };
        gauge(
            &mut out,
            "mcpod_calls_in_flight",
            "Calls open now.",
            "gauge",
            &|g| g.calls_in_flight.to_string(),
        );
        gauge(
            &mut out,
            "mcpod_sessions",
            "Legacy client sessions open now.",
            "gauge",
            &|g| g.sessions.to_string(),
        );
        gauge(
            &mut out,
            "mcpod_backend_restarts_total",
            "Backend processes restarted after dying.",
            "counter",
            &|g| g.restarts.to_string(),
        );
        gauge(
            &mut out,
            "mcpod_backends_alive",
            "Backend processes running now.",
            "gauge",
            &|g| g.backends_alive.to_string(),
        );
        out
    }
}

fn esc(s: &str) -> String {
    s.replace('\\', "\\\\")
        .replace('"', "\\\"")
        .replace('\n', "\\n")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn renders_counters_histogram_and_gauges() {
        let m = Metrics::default();
        m.record("demo", "tools/call", "ok", Duration::from_millis(3));
        m.record("demo", "tools/call", "ok", Duration::from_millis(30));
        m.record("demo", "x-custom", "error", Duration::from_millis(1));
        let text = m.render(&[TargetGauges {
            target: "demo".into(),
            calls_in_flight: 2,
            sessions: 1,
            restarts: 3,
            backends_alive: 1,
        }]);
        assert!(text.contains(
            "mcpod_requests_total{target=\"demo\",method=\"tools/call\",outcome=\"ok\"} 2"
        ));
        assert!(text.contains(
            "mcpod_requests_total{target=\"demo\",method=\"other\",outcome=\"error\"} 1"
        ));
        assert!(text.contains("mcpod_request_duration_seconds_bucket{target=\"demo\",method=\"tools/call\",le=\"0.005\"} 1"));
        assert!(text.contains("mcpod_request_duration_seconds_bucket{target=\"demo\",method=\"tools/call\",le=\"+Inf\"} 2"));
        assert!(text.contains("mcpod_calls_in_flight{target=\"demo\"} 2"));
        assert!(text.contains("mcpod_backend_restarts_total{target=\"demo\"} 3"));
    }
}

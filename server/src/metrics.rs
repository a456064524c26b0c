//! Prometheus metrics, in the text exposition format (hand-rolled: a few
//! counters, one histogram, gauges read at scrape time).
//!
//! Each target's series are registered once, as a fixed table of atomics
//! indexed by method and outcome ([`TargetCounters`]): counting a request
//! is a few relaxed atomic adds, with no lock and no allocation.

use parking_lot::RwLock;
use std::collections::HashMap;
use std::fmt::Write as _;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

mod members;

pub(crate) use members::{MemberOutcome, MemberRequests};

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
];

/// How many method labels there are: the known methods, `response` and
/// `other`.
const METHODS: usize = KNOWN_METHODS.len() + 2;

/// The JSON-RPC method a request is counted under: a known MCP method,
/// `response` (a client's answer to a server request), or `other` (an
/// index into [`KNOWN_METHODS`], then those two).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub(crate) struct Method(u8);

impl Method {
    /// A message the client sent with this method.
    pub(crate) fn of(method: &str) -> Method {
        KNOWN_METHODS
            .iter()
            .position(|m| *m == method)
            .map_or(Method::OTHER, |i| Method(i as u8))
    }

    /// A client's response to a server request.
    pub(crate) const RESPONSE: Method = Method(KNOWN_METHODS.len() as u8);
    /// Not known (yet): refused before its body was read, or unknown.
    pub(crate) const OTHER: Method = Method(KNOWN_METHODS.len() as u8 + 1);

    fn label(self) -> &'static str {
        match self {
            Method::RESPONSE => "response",
            Method::OTHER => "other",
            Method(i) => KNOWN_METHODS[usize::from(i)],
        }
    }

    fn index(self) -> usize {
        usize::from(self.0)
    }
}

/// How a request ended.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub(crate) enum Outcome {
    /// Answered with a result (or accepted).
    Ok,
    /// Answered with the backend's error.
    Error,
    /// The call's deadline passed.
    Timeout,
    /// The client (or the gateway for it) cancelled it.
    Cancelled,
    /// The backend went away before answering.
    BackendClosed,
    /// The backend's answer was over the frame limit (discarded).
    ResponseTooLarge,
    /// Ended with an `input_required` result, to be retried.
    InputRequired,
    /// The client went away before the end.
    Disconnected,
    /// 401.
    Unauthorized,
    /// 403.
    Forbidden,
    /// 404.
    NotFound,
    /// 413.
    TooLarge,
    /// 429 / 503: a limit was reached.
    Overloaded,
    /// Another 4xx.
    Rejected,
    /// Another 5xx.
    Failed,
}

impl Outcome {
    /// The outcome of a refusal with this HTTP status.
    pub(crate) fn of_status(status: u16) -> Outcome {
        match status {
            401 => Outcome::Unauthorized,
            403 => Outcome::Forbidden,
            404 => Outcome::NotFound,
            408 => Outcome::Timeout,
            413 => Outcome::TooLarge,
            429 | 503 => Outcome::Overloaded,
            s if s >= 500 => Outcome::Failed,
            _ => Outcome::Rejected,
        }
    }

    /// The label value.
    pub(crate) fn label(self) -> &'static str {
        OUTCOME_LABELS[self.slot()]
    }

    /// The index of its label in [`OUTCOME_LABELS`] (`Error` and `Failed`
    /// share one).
    fn slot(self) -> usize {
        match self {
            Outcome::Ok => 0,
            Outcome::Error | Outcome::Failed => 1,
            Outcome::Timeout => 2,
            Outcome::Cancelled => 3,
            Outcome::BackendClosed => 4,
            Outcome::ResponseTooLarge => 5,
            Outcome::InputRequired => 6,
            Outcome::Disconnected => 7,
            Outcome::Unauthorized => 8,
            Outcome::Forbidden => 9,
            Outcome::NotFound => 10,
            Outcome::TooLarge => 11,
            Outcome::Overloaded => 12,
            Outcome::Rejected => 13,
        }
    }
}

/// The outcome label values, indexed by [`Outcome::slot`].
const OUTCOME_LABELS: [&str; 14] = [
    "ok",
    "error",
    "timeout",
    "cancelled",
    "backend_closed",
    "response_too_large",
    "input_required",
    "disconnected",
    "unauthorized",
    "forbidden",
    "not_found",
    "too_large",
    "overloaded",
    "rejected",
];

/// What an HTTP request was: a JSON-RPC message, or one of the requests
/// around them (streams, sessions, stdio connections), counted apart.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub(crate) enum Operation {
    /// A JSON-RPC message (`POST`).
    Rpc(Method),
    /// `GET /mcp/{target}`: a legacy session's stream.
    OpenStream,
    /// `DELETE /mcp/{target}`: the end of a legacy session.
    EndSession,
    /// `POST /bots/{bot_id}/mcp-stdio`.
    StdioCreate,
    /// `DELETE /bots/{bot_id}/mcp-stdio/{connection_id}`.
    StdioDelete,
}

impl Operation {
    /// The label value: the method of a JSON-RPC message, else the
    /// operation's name.
    pub(crate) fn label(self) -> &'static str {
        match self {
            Operation::Rpc(m) => m.label(),
            Operation::OpenStream => "open_stream",
            Operation::EndSession => "end_session",
            Operation::StdioCreate => "stdio_create",
            Operation::StdioDelete => "stdio_delete",
        }
    }
}

impl Operation {
    /// The index of an operation other than a JSON-RPC message.
    fn other_index(self) -> Option<usize> {
        match self {
            Operation::Rpc(_) => None,
            Operation::OpenStream => Some(0),
            Operation::EndSession => Some(1),
            Operation::StdioCreate => Some(2),
            Operation::StdioDelete => Some(3),
        }
    }
}

/// The operations other than JSON-RPC messages, by [`Operation::other_index`].
const OTHER_OPERATIONS: [Operation; 4] = [
    Operation::OpenStream,
    Operation::EndSession,
    Operation::StdioCreate,
    Operation::StdioDelete,
];

/// Counts by outcome label.
type ByOutcome = [AtomicU64; OUTCOME_LABELS.len()];

/// One method's latency histogram: each request counted in the first
/// bucket it fits (made cumulative when rendered), the sum in nanoseconds.
#[derive(Debug, Default)]
struct Histogram {
    /// The last one is `+Inf`.
    buckets: [AtomicU64; BUCKETS.len() + 1],
    sum_nanos: AtomicU64,
}

impl Histogram {
    fn observe(&self, elapsed: Duration) {
        let secs = elapsed.as_secs_f64();
        let i = BUCKETS
            .iter()
            .position(|bound| secs <= *bound)
            .unwrap_or(BUCKETS.len());
        self.buckets[i].fetch_add(1, Ordering::Relaxed);
        let nanos = u64::try_from(elapsed.as_nanos()).unwrap_or(u64::MAX);
        self.sum_nanos.fetch_add(nanos, Ordering::Relaxed);
    }
}

/// The series of one target, registered once: a fixed table of counters
/// by method (or operation) and outcome, and a histogram per method.
/// Counting is lock-free and allocates nothing.
#[derive(Debug)]
pub(crate) struct TargetCounters {
    target: Box<str>,
    requests: [ByOutcome; METHODS],
    latency: [Histogram; METHODS],
    other: [ByOutcome; OTHER_OPERATIONS.len()],
}

impl TargetCounters {
    fn new(target: &str) -> TargetCounters {
        TargetCounters {
            target: target.into(),
            requests: Default::default(),
            latency: Default::default(),
            other: Default::default(),
        }
    }

    /// The target's name (its label value).
    pub(crate) fn target(&self) -> &str {
        &self.target
    }

    /// Counts one finished request.
    pub(crate) fn record(&self, operation: Operation, outcome: Outcome, elapsed: Duration) {
        let slot = outcome.slot();
        let method = match operation {
            Operation::Rpc(method) => method,
            other => {
                if let Some(i) = other.other_index() {
                    self.other[i][slot].fetch_add(1, Ordering::Relaxed);
                }
                return;
            }
        };
        self.requests[method.index()][slot].fetch_add(1, Ordering::Relaxed);
        self.latency[method.index()].observe(elapsed);
    }
}

/// The series that exist (a count above zero), as `(label, outcome, n)`
/// sorted by label.
fn nonzero<'a>(
    rows: impl Iterator<Item = (&'static str, &'a ByOutcome)>,
) -> Vec<(&'static str, &'static str, u64)> {
    let mut out = Vec::new();
    for (label, counts) in rows {
        for (i, n) in counts.iter().enumerate() {
            let n = n.load(Ordering::Relaxed);
            if n > 0 {
                out.push((label, OUTCOME_LABELS[i], n));
            }
        }
    }
    out.sort_unstable();
    out
}

/// Gauges of one target, read at scrape time.
#[derive(Debug, Clone, Default)]
pub(crate) struct TargetGauges {
    /// Target name.
    pub(crate) target: String,
    /// Calls in flight now.
    pub(crate) calls_in_flight: usize,
    /// Calls in flight it accepts (`max_calls_in_flight`).
    pub(crate) calls_limit: usize,
    /// Streams open now (legacy GET, `subscriptions/listen`).
    pub(crate) streams_open: usize,
    /// Streams it accepts (`limits.max_streams_per_target`).
    pub(crate) streams_limit: usize,
    /// Legacy sessions open now.
    pub(crate) sessions: usize,
    /// Legacy sessions it accepts (`limits.max_sessions_per_target`).
    pub(crate) sessions_limit: usize,
    /// Backend restarts so far (all of the target's backends).
    pub(crate) restarts: u64,
    /// Log messages of a shared backend no call owned, dropped.
    pub(crate) unattributed_logs: u64,
    /// Backends running now.
    pub(crate) backends_alive: usize,
}

/// Why the gateway closed a client connection it had accepted.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum ConnectionEnd {
    /// It did not complete a request head in time.
    HeaderTimeout,
    /// It stayed idle between requests too long.
    IdleTimeout,
}

/// Client connections: open now, the limit, refused at the limit, closed
/// by a timeout.
#[derive(Debug, Default)]
pub(crate) struct Connections {
    open: AtomicU64,
    /// 0 until the listener has worked it out.
    limit: AtomicU64,
    refused: AtomicU64,
    header_timeouts: AtomicU64,
    idle_timeouts: AtomicU64,
}

impl Connections {
    /// A connection was accepted and is served.
    pub(crate) fn opened(&self) {
        self.open.fetch_add(1, Ordering::Relaxed);
    }

    /// A served connection closed.
    pub(crate) fn closed(&self) {
        self.open.fetch_sub(1, Ordering::Relaxed);
    }

    /// The connection limit in force (known only once the open-file limit
    /// is raised, when serving starts).
    pub(crate) fn set_limit(&self, limit: usize) {
        self.limit.store(limit as u64, Ordering::Relaxed);
    }

    /// A connection was refused: the limit was reached.
    pub(crate) fn refused(&self) {
        self.refused.fetch_add(1, Ordering::Relaxed);
    }

    /// The gateway closed a connection for `why`.
    pub(crate) fn ended(&self, why: ConnectionEnd) {
        match why {
            ConnectionEnd::HeaderTimeout => &self.header_timeouts,
            ConnectionEnd::IdleTimeout => &self.idle_timeouts,
        }
        .fetch_add(1, Ordering::Relaxed);
    }

    fn render(&self, out: &mut String) {
        let get = |a: &AtomicU64| a.load(Ordering::Relaxed);
        let _ = writeln!(
            out,
            "# HELP mcpod_connections Client connections served now.\n\
             # TYPE mcpod_connections gauge\nmcpod_connections {}",
            get(&self.open)
        );
        // Absent rather than 0 before it is known: a 0 would read as
        // saturated.
        let limit = get(&self.limit);
        if limit > 0 {
            let _ = writeln!(
                out,
                "# HELP mcpod_connections_limit Client connections served at once (limits.max_connections); more are refused.\n\
                 # TYPE mcpod_connections_limit gauge\nmcpod_connections_limit {limit}"
            );
        }
        let _ = writeln!(
            out,
            "# HELP mcpod_connections_refused_total Client connections refused at the connection limit.\n\
             # TYPE mcpod_connections_refused_total counter\nmcpod_connections_refused_total {}",
            get(&self.refused)
        );
        let _ = writeln!(
            out,
            "# HELP mcpod_connections_timed_out_total Client connections the gateway closed, by the timeout that closed them.\n\
             # TYPE mcpod_connections_timed_out_total counter\n\
             mcpod_connections_timed_out_total{{timeout=\"header\"}} {}\n\
             mcpod_connections_timed_out_total{{timeout=\"idle\"}} {}",
            get(&self.header_timeouts),
            get(&self.idle_timeouts)
        );
    }
}

/// Config reloads (SIGHUP): applied, and refused (the old config kept).
#[derive(Debug, Default)]
pub(crate) struct Reloads {
    applied: AtomicU64,
    refused: AtomicU64,
}

impl Reloads {
    /// A new config is in force.
    pub(crate) fn applied(&self) {
        self.applied.fetch_add(1, Ordering::Relaxed);
    }

    /// A new config was refused (invalid, or unreadable).
    pub(crate) fn refused(&self) {
        self.refused.fetch_add(1, Ordering::Relaxed);
    }

    fn render(&self, out: &mut String) {
        let get = |a: &AtomicU64| a.load(Ordering::Relaxed);
        let _ = writeln!(
            out,
            "# HELP mcpod_config_reloads_total Config reloads, by outcome: ok (in force) or failed (refused, the config before kept).\n\
             # TYPE mcpod_config_reloads_total counter\n\
             mcpod_config_reloads_total{{outcome=\"ok\"}} {}\n\
             mcpod_config_reloads_total{{outcome=\"failed\"}} {}",
            get(&self.applied),
            get(&self.refused)
        );
    }
}

/// The gateway's counters.
#[derive(Debug, Default)]
pub(crate) struct Metrics {
    /// Each target's series, registered by its first request.
    targets: RwLock<HashMap<Box<str>, Arc<TargetCounters>>>,
    /// Client connections.
    pub(crate) connections: Connections,
    /// Config reloads.
    pub(crate) reloads: Reloads,
    /// Aggregates' requests to their members.
    pub(crate) members: MemberRequests,
}

impl Metrics {
    /// The series of `target`, registered on first use (a read lock
    /// after that; requests hold the `Arc` and count without one).
    pub(crate) fn counters(&self, target: &str) -> Arc<TargetCounters> {
        if let Some(c) = self.targets.read().get(target) {
            return c.clone();
        }
        self.targets
            .write()
            .entry(target.into())
            .or_insert_with(|| Arc::new(TargetCounters::new(target)))
            .clone()
    }

    /// The text exposition.
    pub(crate) fn render(&self, gauges: &[TargetGauges]) -> String {
        // Sorted, so scrapes are stable and diffable.
        let mut targets: Vec<Arc<TargetCounters>> = self.targets.read().values().cloned().collect();
        targets.sort_unstable_by(|a, b| a.target.cmp(&b.target));
        let mut out = String::with_capacity(4096);
        out.push_str(
            "# HELP mcpod_requests_total MCP requests handled, by target, method and outcome.\n",
        );
        out.push_str("# TYPE mcpod_requests_total counter\n");
        for c in &targets {
            let methods = (0..METHODS).map(|i| (Method(i as u8).label(), &c.requests[i]));
            for (method, outcome, n) in nonzero(methods) {
                let _ = writeln!(
                    out,
                    "mcpod_requests_total{{target=\"{}\",method=\"{method}\",outcome=\"{outcome}\"}} {n}",
                    esc(&c.target),
                );
            }
        }
        out.push_str(
            "# HELP mcpod_http_requests_total HTTP requests other than JSON-RPC messages (streams, session ends, stdio connections), by target, operation and outcome.\n",
        );
        out.push_str("# TYPE mcpod_http_requests_total counter\n");
        for c in &targets {
            let ops = OTHER_OPERATIONS.iter().zip(&c.other);
            for (op, outcome, n) in nonzero(ops.map(|(op, counts)| (op.label(), counts))) {
                let _ = writeln!(
                    out,
                    "mcpod_http_requests_total{{target=\"{}\",operation=\"{op}\",outcome=\"{outcome}\"}} {n}",
                    esc(&c.target),
                );
            }
        }
        out.push_str("# HELP mcpod_request_duration_seconds Time to answer a request (to the end of its stream).\n");
        out.push_str("# TYPE mcpod_request_duration_seconds histogram\n");
        for c in &targets {
            let mut methods: Vec<(&str, &Histogram)> = (0..METHODS)
                .map(|i| (Method(i as u8).label(), &c.latency[i]))
                .collect();
            methods.sort_unstable_by_key(|(label, _)| *label);
            for (method, h) in methods {
                let counts: Vec<u64> = h
                    .buckets
                    .iter()
                    .map(|b| b.load(Ordering::Relaxed))
                    .collect();
                let count: u64 = counts.iter().sum();
                if count == 0 {
                    continue;
                }
                let labels = format!("target=\"{}\",method=\"{method}\"", esc(&c.target));
                let mut cumulative = 0;
                for (bound, n) in BUCKETS.iter().zip(&counts) {
                    cumulative += n;
                    let _ = writeln!(
                        out,
                        "mcpod_request_duration_seconds_bucket{{{labels},le=\"{bound}\"}} {cumulative}"
                    );
                }
                let sum = h.sum_nanos.load(Ordering::Relaxed) as f64 / 1e9;
                let _ = writeln!(
                    out,
                    "mcpod_request_duration_seconds_bucket{{{labels},le=\"+Inf\"}} {count}\n\
                     mcpod_request_duration_seconds_sum{{{labels}}} {sum}\n\
                     mcpod_request_duration_seconds_count{{{labels}}} {count}"
                );
            }
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
            "mcpod_calls_limit",
            "Calls in flight the target accepts (max_calls_in_flight); more are refused with 503.",
            "gauge",
            &|g| g.calls_limit.to_string(),
        );
        gauge(
            &mut out,
            "mcpod_streams_open",
            "Streams open now (legacy GET streams, subscriptions/listen).",
            "gauge",
            &|g| g.streams_open.to_string(),
        );
        gauge(
            &mut out,
            "mcpod_streams_limit",
            "Streams the target accepts open (limits.max_streams_per_target); more are refused with 503.",
            "gauge",
            &|g| g.streams_limit.to_string(),
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
            "mcpod_sessions_limit",
            "Legacy client sessions the target accepts (limits.max_sessions_per_target); more are refused with 503.",
            "gauge",
            &|g| g.sessions_limit.to_string(),
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
            "mcpod_log_messages_unattributed_total",
            "Log messages of a shared backend that no call owned, dropped (broadcast_logs = false).",
            "counter",
            &|g| g.unattributed_logs.to_string(),
        );
        gauge(
            &mut out,
            "mcpod_backends_alive",
            "Backend processes running now.",
            "gauge",
            &|g| g.backends_alive.to_string(),
        );
        self.connections.render(&mut out);
        self.reloads.render(&mut out);
        self.members.render(&mut out, esc);
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
        let demo = m.counters("demo");
        let call = Operation::Rpc(Method::of("tools/call"));
        demo.record(call, Outcome::Ok, Duration::from_millis(3));
        demo.record(call, Outcome::Ok, Duration::from_millis(30));
        let custom = Operation::Rpc(Method::of("x-custom"));
        demo.record(custom, Outcome::Error, Duration::from_millis(1));
        demo.record(Operation::OpenStream, Outcome::Ok, Duration::ZERO);
        // Registered once: the same series.
        assert!(Arc::ptr_eq(&demo, &m.counters("demo")));
        // Two outcomes with one label value count in one series.
        let list = Operation::Rpc(Method::of("tools/list"));
        demo.record(list, Outcome::Error, Duration::from_secs(100));
        demo.record(list, Outcome::Failed, Duration::from_secs(100));
        let text = m.render(&[TargetGauges {
            target: "demo".into(),
            calls_in_flight: 2,
            calls_limit: 16,
            streams_open: 4,
            streams_limit: 8,
            sessions: 1,
            sessions_limit: 32,
            restarts: 3,
            unattributed_logs: 5,
            backends_alive: 1,
        }]);
        assert!(text.contains("mcpod_log_messages_unattributed_total{target=\"demo\"} 5"));
        assert!(text.contains(
            "mcpod_requests_total{target=\"demo\",method=\"tools/call\",outcome=\"ok\"} 2"
        ));
        assert!(text.contains(
            "mcpod_requests_total{target=\"demo\",method=\"other\",outcome=\"error\"} 1"
        ));
        assert!(text.contains("mcpod_request_duration_seconds_bucket{target=\"demo\",method=\"tools/call\",le=\"0.005\"} 1"));
        assert!(text.contains("mcpod_request_duration_seconds_bucket{target=\"demo\",method=\"tools/call\",le=\"+Inf\"} 2"));
        assert!(text.contains(
            "mcpod_request_duration_seconds_sum{target=\"demo\",method=\"tools/call\"} 0.033\n"
        ));
        assert!(text.contains(
            "mcpod_requests_total{target=\"demo\",method=\"tools/list\",outcome=\"error\"} 2"
        ));
        // Past the last bound: only in +Inf.
        assert!(text.contains("mcpod_request_duration_seconds_bucket{target=\"demo\",method=\"tools/list\",le=\"60\"} 0\n"));
        assert!(text.contains("mcpod_request_duration_seconds_bucket{target=\"demo\",method=\"tools/list\",le=\"+Inf\"} 2\n"));
        // Series never counted are absent.
        assert!(!text.contains("method=\"ping\""));
        assert!(text.contains("mcpod_calls_in_flight{target=\"demo\"} 2"));
        assert!(text.contains("mcpod_streams_open{target=\"demo\"} 4"));
        assert!(text.contains("mcpod_calls_limit{target=\"demo\"} 16"));
        assert!(text.contains("mcpod_streams_limit{target=\"demo\"} 8"));
        assert!(text.contains("mcpod_sessions_limit{target=\"demo\"} 32"));
        // The connection limit appears once it is known.
        assert!(!text.contains("mcpod_connections_limit"));
        m.connections.set_limit(768);
        assert!(m.render(&[]).contains("\nmcpod_connections_limit 768\n"));
        assert!(text.contains(
            "mcpod_http_requests_total{target=\"demo\",operation=\"open_stream\",outcome=\"ok\"} 1"
        ));
        assert!(!text.contains("method=\"open_stream\""));
        assert!(text.contains("mcpod_backend_restarts_total{target=\"demo\"} 3"));
    }
}

//! Prometheus metrics, in the text exposition format (hand-rolled: a few
//! counters, one histogram, gauges read at scrape time).

use parking_lot::Mutex;
use std::collections::{BTreeMap, HashMap};
use std::fmt::Write as _;
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

/// The JSON-RPC method a request is counted under: a known MCP method,
/// `response` (a client's answer to a server request), or `other`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub(crate) struct Method(&'static str);

impl Method {
    /// A message the client sent with this method.
    pub(crate) fn of(method: &str) -> Method {
        Method(
            KNOWN_METHODS
                .iter()
                .find(|m| **m == method)
                .copied()
                .unwrap_or("other"),
        )
    }

    /// A client's response to a server request.
    pub(crate) const RESPONSE: Method = Method("response");
    /// Not known (yet): refused before its body was read, or unknown.
    pub(crate) const OTHER: Method = Method("other");

    fn label(self) -> &'static str {
        self.0
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
        match self {
            Outcome::Ok => "ok",
            Outcome::Error | Outcome::Failed => "error",
            Outcome::Timeout => "timeout",
            Outcome::Cancelled => "cancelled",
            Outcome::BackendClosed => "backend_closed",
            Outcome::ResponseTooLarge => "response_too_large",
            Outcome::InputRequired => "input_required",
            Outcome::Disconnected => "disconnected",
            Outcome::Unauthorized => "unauthorized",
            Outcome::Forbidden => "forbidden",
            Outcome::NotFound => "not_found",
            Outcome::TooLarge => "too_large",
            Outcome::Overloaded => "overloaded",
            Outcome::Rejected => "rejected",
        }
    }
}

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
    requests: HashMap<(Method, Outcome), u64>,
    latency: HashMap<Method, Histogram>,
    other: HashMap<(Operation, Outcome), u64>,
}

#[derive(Debug, Default)]
struct Inner {
    targets: HashMap<String, TargetCounters>,
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
    inner: Mutex<Inner>,
    /// Client connections.
    pub(crate) connections: Connections,
    /// Config reloads.
    pub(crate) reloads: Reloads,
    /// Aggregates' requests to their members.
    pub(crate) members: MemberRequests,
}

impl Metrics {
    /// Counts one finished request.
    pub(crate) fn record(
        &self,
        target: &str,
        operation: Operation,
        outcome: Outcome,
        elapsed: Duration,
    ) {
        let mut inner = self.inner.lock();
        if !inner.targets.contains_key(target) {
            inner
                .targets
                .insert(target.to_owned(), TargetCounters::default());
        }
        let Some(counters) = inner.targets.get_mut(target) else {
            return;
        };
        let method = match operation {
            Operation::Rpc(method) => method,
            other => {
                *counters.other.entry((other, outcome)).or_default() += 1;
                return;
            }
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
    pub(crate) fn render(&self, gauges: &[TargetGauges]) -> String {
        // Sorted, so scrapes are stable and diffable.
        let (requests, latency, other) = {
            let inner = self.inner.lock();
            let mut requests = BTreeMap::new();
            let mut latency = BTreeMap::new();
            let mut other = BTreeMap::new();
            for (target, c) in &inner.targets {
                for ((method, outcome), n) in &c.requests {
                    requests.insert((target.clone(), method.label(), outcome.label()), *n);
                }
                for (method, h) in &c.latency {
                    latency.insert((target.clone(), method.label()), h.clone());
                }
                for ((op, outcome), n) in &c.other {
                    other.insert((target.clone(), op.label(), outcome.label()), *n);
                }
            }
            (requests, latency, other)
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
                outcome
            );
        }
        out.push_str(
            "# HELP mcpod_http_requests_total HTTP requests other than JSON-RPC messages (streams, session ends, stdio connections), by target, operation and outcome.\n",
        );
        out.push_str("# TYPE mcpod_http_requests_total counter\n");
        for ((target, op, outcome), n) in &other {
            let _ = writeln!(
                out,
                "mcpod_http_requests_total{{target=\"{}\",operation=\"{op}\",outcome=\"{outcome}\"}} {n}",
                esc(target),
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
        let call = Operation::Rpc(Method::of("tools/call"));
        m.record("demo", call, Outcome::Ok, Duration::from_millis(3));
        m.record("demo", call, Outcome::Ok, Duration::from_millis(30));
        let custom = Operation::Rpc(Method::of("x-custom"));
        m.record("demo", custom, Outcome::Error, Duration::from_millis(1));
        m.record("demo", Operation::OpenStream, Outcome::Ok, Duration::ZERO);
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

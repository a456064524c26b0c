//! What every load mode shares: the schedule, per-client statistics and the result line.

use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::time::{Duration, Instant};

use hdrhistogram::Histogram;
use serde::{Deserialize, Serialize};

use crate::check::CallError;
use crate::cli::LoadArgs;
use crate::rss::ProbeReport;

/// How many error messages each client keeps for the final report.
const KEPT_ERRORS: usize = 3;

/// When the clients stop.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Stop {
    /// After measuring for this long.
    After(Duration),
    /// After this many measured requests in total.
    Count(u64),
}

/// The shared schedule: a warm-up, then a measured phase.
#[derive(Debug)]
pub(crate) struct Clock {
    measure_from: Instant,
    end: Option<Instant>,
    budget: Option<u64>,
    claimed: AtomicU64,
    aborted: AtomicBool,
}

/// What a client should do next.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Next {
    /// Send a request that is not recorded.
    Warmup,
    /// Send a request that is recorded.
    Measure,
    /// Stop.
    Stop,
}

impl Clock {
    /// Starts the schedule now.
    pub(crate) fn start(warmup: Duration, stop: Stop) -> Self {
        let measure_from = Instant::now() + warmup;
        let (end, budget) = match stop {
            Stop::After(duration) => (Some(measure_from + duration), None),
            Stop::Count(count) => (None, Some(count)),
        };
        Self {
            measure_from,
            end,
            budget,
            claimed: AtomicU64::new(0),
            aborted: AtomicBool::new(false),
        }
    }

    /// When measuring starts.
    pub(crate) fn measure_from(&self) -> Instant {
        self.measure_from
    }

    /// Claims the next request.
    pub(crate) fn next(&self) -> Next {
        if self.aborted.load(Ordering::Relaxed) {
            return Next::Stop;
        }
        let now = Instant::now();
        if now < self.measure_from {
            return Next::Warmup;
        }
        if let Some(end) = self.end {
            if now >= end {
                return Next::Stop;
            }
        }
        if let Some(budget) = self.budget {
            if self.claimed.fetch_add(1, Ordering::Relaxed) >= budget {
                return Next::Stop;
            }
        }
        Next::Measure
    }

    /// Makes every client stop at its next [`Clock::next`].
    pub(crate) fn abort(&self) {
        self.aborted.store(true, Ordering::Relaxed);
    }

    /// Whether [`Clock::abort`] was called.
    pub(crate) fn is_aborted(&self) -> bool {
        self.aborted.load(Ordering::Relaxed)
    }
}

/// One virtual client's tally.
#[derive(Debug)]
pub(crate) struct ClientStats {
    latency_ns: Histogram<u64>,
    ok: u64,
    errors: u64,
    warmup_ok: u64,
    warmup_errors: u64,
    last_done: Option<Instant>,
    messages: Vec<String>,
    connections: u64,
    sessions: u64,
}

impl ClientStats {
    /// An empty tally.
    pub(crate) fn new() -> Self {
        Self {
            latency_ns: new_histogram(),
            ok: 0,
            errors: 0,
            warmup_ok: 0,
            warmup_errors: 0,
            last_done: None,
            messages: Vec::new(),
            connections: 0,
            sessions: 0,
        }
    }

    /// Counts a connection (or a spawned stdio server) opened.
    pub(crate) fn connected(&mut self) {
        self.connections += 1;
    }

    /// Counts a completed `initialize` handshake.
    pub(crate) fn initialized(&mut self) {
        self.sessions += 1;
    }

    /// Records the outcome of a request started at `started`.
    pub(crate) fn record(
        &mut self,
        phase: Next,
        started: Instant,
        outcome: &Result<(), CallError>,
    ) {
        let done = Instant::now();
        let measured = phase == Next::Measure;
        match outcome {
            Ok(()) if measured => {
                self.ok += 1;
                let ns = u64::try_from(done.duration_since(started).as_nanos()).unwrap_or(u64::MAX);
                self.latency_ns.saturating_record(ns.max(1));
            }
            Ok(()) => self.warmup_ok += 1,
            Err(error) => {
                if measured {
                    self.errors += 1;
                } else {
                    self.warmup_errors += 1;
                }
                if self.messages.len() < KEPT_ERRORS {
                    self.messages.push(error.to_string());
                }
            }
        }
        if measured {
            self.last_done = Some(done);
        }
    }

    /// Records an error that belongs to no request in particular (a stray reply).
    pub(crate) fn stray(&mut self, error: &CallError) {
        self.errors += 1;
        if self.messages.len() < KEPT_ERRORS {
            self.messages.push(error.to_string());
        }
    }
}

fn new_histogram() -> Histogram<u64> {
    // 1 ns .. 1 hour, 3 significant digits; these bounds are valid.
    Histogram::new_with_bounds(1, 3_600_000_000_000, 3).unwrap_or_else(|_| {
        Histogram::new(3).unwrap_or_else(|_| unreachable!("3 significant digits are valid"))
    })
}

/// The merged tally of a run.
#[derive(Debug)]
pub(crate) struct Tally {
    latency_ns: Histogram<u64>,
    ok: u64,
    errors: u64,
    warmup_ok: u64,
    warmup_errors: u64,
    last_done: Option<Instant>,
    messages: Vec<String>,
    connections: u64,
    sessions: u64,
}

impl Tally {
    /// Merges the clients' tallies.
    pub(crate) fn merge(clients: impl IntoIterator<Item = ClientStats>) -> Self {
        let mut tally = Tally {
            latency_ns: new_histogram(),
            ok: 0,
            errors: 0,
            warmup_ok: 0,
            warmup_errors: 0,
            last_done: None,
            messages: Vec::new(),
            connections: 0,
            sessions: 0,
        };
        for client in clients {
            // Same bounds on both sides, so adding cannot fail.
            let _ = tally.latency_ns.add(&client.latency_ns);
            tally.ok += client.ok;
            tally.errors += client.errors;
            tally.warmup_ok += client.warmup_ok;
            tally.warmup_errors += client.warmup_errors;
            tally.last_done = tally.last_done.max(client.last_done);
            tally.connections += client.connections;
            tally.sessions += client.sessions;
            for message in client.messages {
                if tally.messages.len() < 10 && !tally.messages.contains(&message) {
                    tally.messages.push(message);
                }
            }
        }
        tally
    }
}

/// The outcome of one run, as printed.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub(crate) struct RunResult {
    /// Name of the run.
    pub(crate) label: String,
    /// `stdio` or `http`.
    pub(crate) mode: String,
    /// `legacy` or `modern`.
    pub(crate) era: String,
    /// What was loaded (the URL or the command).
    pub(crate) target: String,
    /// Virtual clients.
    pub(crate) concurrency: u32,
    /// Bytes of each echo text (0: the short text), each way.
    #[serde(default)]
    pub(crate) text_bytes: u32,
    /// Measured requests (successes and errors).
    pub(crate) requests: u64,
    /// Measured requests answered and checked.
    pub(crate) ok: u64,
    /// Errors in the measured phase, in the warm-up and stray replies.
    pub(crate) errors: u64,
    /// Requests completed during the warm-up.
    pub(crate) warmup_requests: u64,
    /// Seconds from the end of the warm-up to the last measured reply.
    pub(crate) elapsed_s: f64,
    /// Checked replies per second in the measured phase.
    pub(crate) rps: f64,
    /// Median latency, microseconds.
    pub(crate) p50_us: f64,
    /// 90th percentile latency, microseconds.
    pub(crate) p90_us: f64,
    /// 99th percentile latency, microseconds.
    pub(crate) p99_us: f64,
    /// Largest latency, microseconds.
    pub(crate) max_us: f64,
    /// Mean latency, microseconds.
    pub(crate) mean_us: f64,
    /// Process whose RSS was sampled.
    pub(crate) rss_pid: Option<u32>,
    /// Peak VmRSS of that process, KiB.
    pub(crate) rss_peak_kib: Option<u64>,
    /// CPU seconds that process spent in the measured phase.
    pub(crate) cpu_s: Option<f64>,
    /// CPU seconds its live children (a gateway's backends) spent in the measured phase.
    pub(crate) children_cpu_s: Option<f64>,
    /// CPU seconds the load generator spent in the measured phase.
    pub(crate) loadgen_cpu_s: Option<f64>,
    /// Connections opened (HTTP), or 1 for the stdio server.
    pub(crate) connections: u64,
    /// `initialize` handshakes completed (0 for modern clients).
    pub(crate) sessions: u64,
    /// Distinct error messages (at most ten).
    pub(crate) error_messages: Vec<String>,
}

/// Identifies a run for [`RunResult::new`].
#[derive(Debug, Clone)]
pub(crate) struct RunInfo {
    /// Name of the run.
    pub(crate) label: String,
    /// `stdio` or `http`.
    pub(crate) mode: &'static str,
    /// `legacy` or `modern`.
    pub(crate) era: &'static str,
    /// What was loaded.
    pub(crate) target: String,
    /// Virtual clients.
    pub(crate) concurrency: u32,
    /// Bytes of each echo text (0: the short text).
    pub(crate) text_bytes: u32,
}

impl RunResult {
    /// Builds the result from a tally.
    pub(crate) fn new(
        info: RunInfo,
        clock: &Clock,
        tally: Tally,
        probe: Option<ProbeReport>,
        loadgen_cpu_s: Option<f64>,
    ) -> Self {
        let elapsed = tally.last_done.map_or(Duration::ZERO, |done| {
            done.saturating_duration_since(clock.measure_from())
        });
        let elapsed_s = elapsed.as_secs_f64();
        let us = |ns: u64| ns as f64 / 1e3;
        let hist = &tally.latency_ns;
        let empty = hist.is_empty();
        let quantile = |q: f64| {
            if empty {
                0.0
            } else {
                us(hist.value_at_quantile(q))
            }
        };
        Self {
            label: info.label,
            mode: info.mode.to_owned(),
            era: info.era.to_owned(),
            target: info.target,
            concurrency: info.concurrency,
            text_bytes: info.text_bytes,
            requests: tally.ok + tally.errors,
            ok: tally.ok,
            errors: tally.errors + tally.warmup_errors,
            warmup_requests: tally.warmup_ok + tally.warmup_errors,
            elapsed_s,
            rps: if elapsed_s > 0.0 {
                tally.ok as f64 / elapsed_s
            } else {
                0.0
            },
            p50_us: quantile(0.5),
            p90_us: quantile(0.9),
            p99_us: quantile(0.99),
            max_us: if empty { 0.0 } else { us(hist.max()) },
            mean_us: if empty { 0.0 } else { hist.mean() / 1e3 },
            rss_pid: probe.map(|p| p.pid),
            rss_peak_kib: probe.map(|p| p.rss_peak_kib),
            cpu_s: probe.and_then(|p| p.cpu).map(|c| c.own_s),
            children_cpu_s: probe.and_then(|p| p.cpu).map(|c| c.children_s),
            loadgen_cpu_s,
            connections: tally.connections,
            sessions: tally.sessions,
            error_messages: tally.messages,
        }
    }

    /// Whether the run counts as a success: something was measured and nothing failed.
    pub(crate) fn passed(&self) -> bool {
        self.errors == 0 && self.ok > 0
    }

    /// The one-line human-readable form.
    pub(crate) fn line(&self) -> String {
        let rss = match self.rss_peak_kib {
            Some(kib) => format!("{:.1}MiB", kib as f64 / 1024.0),
            None => "-".to_owned(),
        };
        let per_request = |seconds: Option<f64>| match seconds {
            Some(s) if self.ok > 0 => format!("{:.1}µs", s * 1e6 / self.ok as f64),
            _ => "-".to_owned(),
        };
        format!(
            "{label:<14} mode={mode} era={era} c={c} requests={requests} errors={errors} rps={rps:.0} p50={p50} p99={p99} rss_peak={rss} cpu/req={cpu}+{children} loadgen_cpu/req={loadgen}",
            cpu = per_request(self.cpu_s),
            children = per_request(self.children_cpu_s),
            loadgen = per_request(self.loadgen_cpu_s),
            label = self.label,
            mode = self.mode,
            era = self.era,
            c = self.concurrency,
            requests = self.requests,
            errors = self.errors,
            rps = self.rps,
            p50 = format_us(self.p50_us),
            p99 = format_us(self.p99_us),
        )
    }
}

/// `812µs`, `1.25ms`, `2.0s`.
pub(crate) fn format_us(us: f64) -> String {
    if us < 1_000.0 {
        format!("{us:.0}µs")
    } else if us < 1_000_000.0 {
        format!("{:.2}ms", us / 1e3)
    } else {
        format!("{:.2}s", us / 1e6)
    }
}

/// The schedule the load options describe.
pub(crate) fn stop_rule(args: &LoadArgs) -> Stop {
    match args.requests {
        Some(count) => Stop::Count(count),
        None => Stop::After(args.duration),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_count_budget_is_shared_and_exhausted() {
        let clock = Clock::start(Duration::ZERO, Stop::Count(3));
        assert_eq!(clock.next(), Next::Measure);
        assert_eq!(clock.next(), Next::Measure);
        assert_eq!(clock.next(), Next::Measure);
        assert_eq!(clock.next(), Next::Stop);
    }

    #[test]
    fn warmup_comes_first_and_abort_stops() {
        let clock = Clock::start(Duration::from_secs(3600), Stop::Count(1));
        assert_eq!(clock.next(), Next::Warmup);
        clock.abort();
        assert_eq!(clock.next(), Next::Stop);
    }

    #[test]
    fn a_duration_ends() {
        let clock = Clock::start(Duration::ZERO, Stop::After(Duration::ZERO));
        assert_eq!(clock.next(), Next::Stop);
    }

    #[test]
    fn tallies_count_errors_in_both_phases_and_record_only_measured_latency() {
        let start = Instant::now();
        let mut a = ClientStats::new();
        a.record(Next::Warmup, start, &Ok(()));
        a.record(Next::Measure, start, &Ok(()));
        a.record(Next::Measure, start, &Err(CallError::Closed));
        let mut b = ClientStats::new();
        b.record(Next::Warmup, start, &Err(CallError::Closed));
        b.record(Next::Measure, start, &Ok(()));
        let clock = Clock::start(Duration::ZERO, Stop::Count(10));
        let tally = Tally::merge([a, b]);
        let info = RunInfo {
            label: "t".into(),
            mode: "stdio",
            era: "legacy",
            target: "x".into(),
            concurrency: 2,
            text_bytes: 0,
        };
        let result = RunResult::new(info, &clock, tally, None, None);
        assert_eq!(result.ok, 2);
        assert_eq!(result.requests, 3);
        assert_eq!(result.errors, 2);
        assert_eq!(result.warmup_requests, 2);
        assert_eq!(result.error_messages.len(), 1, "duplicates are merged");
        assert!(!result.passed());
        let json = serde_json::to_string(&result).expect("serializes");
        let back: RunResult = serde_json::from_str(&json).expect("parses");
        assert_eq!(back, result);
    }

    #[test]
    fn latencies_are_formatted_with_units() {
        assert_eq!(format_us(812.4), "812µs");
        assert_eq!(format_us(1250.0), "1.25ms");
        assert_eq!(format_us(2_000_000.0), "2.00s");
    }
}

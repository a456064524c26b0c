//! `report`: a Markdown table, ratios and target verdicts from `--json` result lines.

use std::collections::BTreeSet;
use std::fmt::Write as _;
use std::io::Read;

use crate::cli::ReportArgs;
use crate::run::{RunResult, format_us};

/// Throughput at the target concurrency, at least this many times the peer's.
pub(crate) const TARGET_PEER_RATIO: f64 = 10.0;
/// Throughput at the target concurrency, at least this share of direct stdio.
pub(crate) const TARGET_DIRECT_SHARE: f64 = 0.30;
/// p50 latency added over direct stdio at the target concurrency, under this many µs.
pub(crate) const TARGET_ADDED_P50_US: f64 = 150.0;

/// Reads the result lines named by `args` and returns the report.
pub(crate) fn run(args: &ReportArgs) -> Result<String, String> {
    let mut text = String::new();
    if args.files.is_empty() || args.files.iter().any(|f| f.as_os_str() == "-") {
        std::io::stdin()
            .read_to_string(&mut text)
            .map_err(|e| format!("reading standard input: {e}"))?;
    }
    for file in args.files.iter().filter(|f| f.as_os_str() != "-") {
        let content = std::fs::read_to_string(file)
            .map_err(|e| format!("reading {}: {e}", file.display()))?;
        text.push_str(&content);
        text.push('\n');
    }
    let results = parse(&text)?;
    Ok(render(&results, args))
}

/// Parses one result per non-blank line.
pub(crate) fn parse(text: &str) -> Result<Vec<RunResult>, String> {
    text.lines()
        .enumerate()
        .filter(|(_, line)| !line.trim().is_empty())
        .map(|(n, line)| {
            serde_json::from_str(line).map_err(|e| format!("line {}: not a result: {e}", n + 1))
        })
        .collect()
}

/// What runs are compared at: the payload and the concurrency.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
struct Level {
    /// Bytes of each echo text (0: the short text).
    bytes: u32,
    /// Virtual clients.
    c: u32,
}

impl Level {
    fn of(r: &RunResult) -> Level {
        Level {
            bytes: r.text_bytes,
            c: r.concurrency,
        }
    }

    /// The short echo at concurrency `c`.
    fn echo(c: u32) -> Level {
        Level { bytes: 0, c }
    }

    /// `16`, or `16, 256 KiB` for a large payload.
    fn name(self) -> String {
        match self.bytes {
            0 => self.c.to_string(),
            b if b % 1024 == 0 => format!("{}, {} KiB", self.c, b / 1024),
            b => format!("{}, {b} B", self.c),
        }
    }
}

/// The runs with this label at this level, summarized: the run with the
/// median throughput (the lower median for an even count), with the errors
/// of all of them, and how many there were.
fn find(results: &[RunResult], label: &str, level: Level) -> Option<Summary> {
    let mut runs: Vec<&RunResult> = results
        .iter()
        .filter(|r| r.label == label && Level::of(r) == level)
        .collect();
    runs.sort_by(|a, b| a.rps.total_cmp(&b.rps));
    let median = *runs.get(runs.len().checked_sub(1)? / 2)?;
    Some(Summary {
        rps: median.rps,
        mb_per_s: (median.text_bytes > 0).then(|| median.rps * f64::from(median.text_bytes) / 1e6),
        p50_us: median.p50_us,
        p99_us: median.p99_us,
        rss_peak_kib: runs.iter().filter_map(|r| r.rss_peak_kib).max(),
        cpu_us: per_request(median.cpu_s, median.ok),
        children_cpu_us: per_request(median.children_cpu_s, median.ok),
        loadgen_cpu_us: per_request(median.loadgen_cpu_s, median.ok),
        errors: runs.iter().map(|r| r.errors).sum(),
        runs: runs.len(),
    })
}

/// One label at one concurrency, over its repeated runs.
#[derive(Debug, Clone, Copy, PartialEq)]
struct Summary {
    rps: f64,
    /// Payload throughput each way, MB/s (runs with a large payload).
    mb_per_s: Option<f64>,
    p50_us: f64,
    p99_us: f64,
    rss_peak_kib: Option<u64>,
    /// CPU µs per checked request: the probed process, its children, the load generator.
    cpu_us: Option<f64>,
    children_cpu_us: Option<f64>,
    loadgen_cpu_us: Option<f64>,
    errors: u64,
    runs: usize,
}

fn per_request(seconds: Option<f64>, ok: u64) -> Option<f64> {
    seconds.filter(|_| ok > 0).map(|s| s * 1e6 / ok as f64)
}

/// `38 + 9 / 15`: CPU µs per request of the server, its backends and the load generator.
fn cpu_cell(s: &Summary) -> String {
    let us = |v: Option<f64>| v.map_or("—".to_owned(), |v| format!("{v:.0}"));
    format!(
        "{} + {} / {}",
        us(s.cpu_us),
        us(s.children_cpu_us),
        us(s.loadgen_cpu_us)
    )
}

/// Renders the tables.
pub(crate) fn render(results: &[RunResult], args: &ReportArgs) -> String {
    // Direct stdio first, the peer last, the gateways in between in the order they ran.
    let mut labels: Vec<&str> = Vec::new();
    let present = |label: &str| results.iter().any(|r| r.label == label);
    if present(&args.direct) {
        labels.push(&args.direct);
    }
    for result in results {
        let label = result.label.as_str();
        if label != args.direct && label != args.peer && !labels.contains(&label) {
            labels.push(label);
        }
    }
    if present(&args.peer) {
        labels.push(&args.peer);
    }
    let levels: BTreeSet<Level> = results.iter().map(Level::of).collect();
    let candidates: Vec<&str> = labels
        .iter()
        .copied()
        .filter(|l| *l != args.direct && *l != args.peer)
        .collect();

    let mut out = String::new();
    let repeated = levels.iter().any(|&level| {
        labels
            .iter()
            .any(|l| find(results, l, level).is_some_and(|s| s.runs > 1))
    });
    if repeated {
        out.push_str(
            "Each row is the run with the median req/s; errors are summed over all runs.\n\n",
        );
    }
    out.push_str("| run | c | req/s | MB/s each way | p50 | p99 | peak RSS | CPU µs/req: server + backends / loadgen | errors | runs |\n");
    out.push_str("| --- | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: |\n");
    for &level in &levels {
        let c = level.name();
        for label in &labels {
            let Some(r) = find(results, label, level) else {
                continue;
            };
            let rss = r.rss_peak_kib.map_or("—".to_owned(), |kib| {
                format!("{:.1} MiB", kib as f64 / 1024.0)
            });
            let _ = writeln!(
                out,
                "| {label} | {c} | {rps:.0} | {mb} | {p50} | {p99} | {rss} | {cpu} | {errors} | {runs} |",
                cpu = cpu_cell(&r),
                rps = r.rps,
                mb = r.mb_per_s.map_or("—".to_owned(), |m| format!("{m:.0}")),
                p50 = format_us(r.p50_us),
                p99 = format_us(r.p99_us),
                errors = r.errors,
                runs = r.runs,
            );
        }
    }

    if !candidates.is_empty() {
        let _ = writeln!(
            out,
            "\n| gateway | c | req/s vs {floor} | req/s vs {peer} | req/s vs {direct} | p50 added over {direct} |",
            floor = args.floor,
            peer = args.peer,
            direct = args.direct
        );
        out.push_str("| --- | ---: | ---: | ---: | ---: | ---: |\n");
        for &level in &levels {
            for label in &candidates {
                let Some(r) = find(results, label, level) else {
                    continue;
                };
                let ratios = Ratios::of(&r, level, results, args);
                let _ = writeln!(
                    out,
                    "| {label} | {c} | {floor} | {peer} | {direct} | {added} |",
                    c = level.name(),
                    floor = ratios
                        .floor
                        .map_or("—".to_owned(), |x| format!("{:.0}%", x * 100.0)),
                    peer = ratios.peer.map_or("—".to_owned(), |x| format!("{x:.1}×")),
                    direct = ratios
                        .direct
                        .map_or("—".to_owned(), |x| format!("{:.0}%", x * 100.0)),
                    added = ratios.added_p50_us.map_or("—".to_owned(), signed_us),
                );
            }
        }

        let c = args.target_concurrency;
        let _ = writeln!(
            out,
            "\nTargets at c={c}: ≥ {TARGET_PEER_RATIO}× {peer}'s throughput, ≥ {share:.0}% of {direct}'s, < {TARGET_ADDED_P50_US} µs p50 added over {direct}.\n",
            peer = args.peer,
            direct = args.direct,
            share = TARGET_DIRECT_SHARE * 100.0,
        );
        for label in &candidates {
            let Some(r) = find(results, label, Level::echo(c)) else {
                let _ = writeln!(out, "- {label}: no run at c={c}");
                continue;
            };
            let ratios = Ratios::of(&r, Level::echo(c), results, args);
            let verdict = |pass: Option<bool>| match pass {
                Some(true) => "met",
                Some(false) => "MISSED",
                None => "not measured",
            };
            let _ = writeln!(
                out,
                "- {label}: {peer} vs {peer_name} ({}), {direct} of {direct_name} ({}), {added} p50 ({}){errors}",
                verdict(ratios.peer.map(|x| x >= TARGET_PEER_RATIO)),
                verdict(ratios.direct.map(|x| x >= TARGET_DIRECT_SHARE)),
                verdict(ratios.added_p50_us.map(|x| x < TARGET_ADDED_P50_US)),
                peer = ratios.peer.map_or("—".to_owned(), |x| format!("{x:.1}×")),
                peer_name = args.peer,
                direct = ratios
                    .direct
                    .map_or("—".to_owned(), |x| format!("{:.0}%", x * 100.0)),
                direct_name = args.direct,
                added = ratios.added_p50_us.map_or("—".to_owned(), signed_us),
                errors = if r.errors > 0 {
                    format!(" — {} ERRORS", r.errors)
                } else {
                    String::new()
                },
            );
        }
    }
    out
}

fn signed_us(us: f64) -> String {
    if us < 0.0 {
        format!("−{}", format_us(-us))
    } else {
        format!("+{}", format_us(us))
    }
}

/// A candidate's standing against the peer and the direct limit at one concurrency.
#[derive(Debug, Clone, Copy, PartialEq)]
pub(crate) struct Ratios {
    /// Throughput over the HTTP floor's.
    pub(crate) floor: Option<f64>,
    /// Throughput over the peer's.
    pub(crate) peer: Option<f64>,
    /// Throughput over direct stdio's.
    pub(crate) direct: Option<f64>,
    /// p50 minus direct stdio's p50, µs.
    pub(crate) added_p50_us: Option<f64>,
}

impl Ratios {
    fn of(r: &Summary, level: Level, results: &[RunResult], args: &ReportArgs) -> Self {
        let floor = find(results, &args.floor, level).filter(|f| f.rps > 0.0);
        let peer = find(results, &args.peer, level).filter(|p| p.rps > 0.0);
        let direct = find(results, &args.direct, level).filter(|d| d.rps > 0.0);
        Self {
            floor: floor.map(|f| r.rps / f.rps),
            peer: peer.map(|p| r.rps / p.rps),
            direct: direct.map(|d| r.rps / d.rps),
            added_p50_us: direct.map(|d| r.p50_us - d.p50_us),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn result(label: &str, c: u32, rps: f64, p50_us: f64) -> RunResult {
        RunResult {
            label: label.into(),
            mode: "http".into(),
            era: "legacy".into(),
            target: "t".into(),
            concurrency: c,
            text_bytes: 0,
            requests: 10_000,
            ok: 10_000,
            errors: 0,
            warmup_requests: 0,
            elapsed_s: 1.0,
            rps,
            p50_us,
            p90_us: p50_us,
            p99_us: p50_us * 2.0,
            max_us: p50_us * 3.0,
            mean_us: p50_us,
            rss_pid: Some(1),
            rss_peak_kib: Some(2048),
            cpu_s: Some(0.5),
            children_cpu_s: Some(0.25),
            loadgen_cpu_s: Some(0.1),
            connections: u64::from(c),
            sessions: u64::from(c),
            error_messages: vec![],
        }
    }

    fn args() -> ReportArgs {
        ReportArgs {
            files: vec![],
            direct: "direct-stdio".into(),
            peer: "supergateway".into(),
            floor: "http-floor".into(),
            target_concurrency: 16,
        }
    }

    #[test]
    fn ratios_and_verdicts_follow_the_figures() {
        let results = vec![
            result("direct-stdio", 16, 100_000.0, 100.0),
            result("mcpod-legacy", 16, 40_000.0, 200.0),
            result("mcpod-modern", 16, 20_000.0, 400.0),
            result("supergateway", 16, 3_000.0, 5_000.0),
            result("http-floor", 16, 50_000.0, 150.0),
        ];
        let legacy = find(&results, "mcpod-legacy", Level::echo(16)).expect("a run");
        let ratios = Ratios::of(&legacy, Level::echo(16), &results, &args());
        assert_eq!(ratios.floor, Some(0.8));
        assert_eq!(ratios.peer.map(|x| (x * 100.0).round()), Some(1333.0));
        assert_eq!(ratios.direct, Some(0.4));
        assert_eq!(ratios.added_p50_us, Some(100.0));
        let text = render(&results, &args());
        assert!(
            text.contains(
                "| mcpod-legacy | 16 | 40000 | — | 200µs | 400µs | 2.0 MiB | 50 + 25 / 10 | 0 | 1 |"
            ),
            "{text}"
        );
        assert!(text.contains("- mcpod-legacy: 13.3× vs supergateway (met), 40% of direct-stdio (met), +100µs p50 (met)"), "{text}");
        assert!(text.contains("- mcpod-modern: 6.7× vs supergateway (MISSED), 20% of direct-stdio (MISSED), +300µs p50 (MISSED)"), "{text}");
        // direct first, peer last.
        let direct = text.find("| direct-stdio | 16").expect("direct row");
        let peer = text.find("| supergateway | 16").expect("peer row");
        assert!(direct < text.find("| mcpod-legacy | 16").expect("row") && peer > direct);
    }

    #[test]
    fn large_payload_runs_are_compared_with_the_floor_at_the_same_payload() {
        let big = |label: &str, rps: f64| {
            let mut r = result(label, 16, rps, 1000.0);
            r.text_bytes = 256 * 1024;
            r
        };
        let results = vec![
            result("http-floor", 16, 50_000.0, 150.0),
            big("http-floor", 2_000.0),
            big("mcpod-legacy", 1_500.0),
        ];
        let text = render(&results, &args());
        // 1500 × 262 144 B = 393 MB/s.
        assert!(
            text.contains("| mcpod-legacy | 16, 256 KiB | 1500 | 393 | 1.00ms |"),
            "{text}"
        );
        assert!(
            text.contains("| mcpod-legacy | 16, 256 KiB | 75% |"),
            "{text}"
        );
        // The short-echo floor is its own level.
        assert!(text.contains("| http-floor | 16 | 50000 | — |"), "{text}");
    }

    #[test]
    fn missing_runs_are_reported_as_not_measured() {
        let results = vec![result("mcpod-legacy", 16, 1.0, 1.0)];
        let text = render(&results, &args());
        assert!(text.contains("(not measured)"), "{text}");
        let text = render(&[result("mcpod-legacy", 1, 1.0, 1.0)], &args());
        assert!(text.contains("- mcpod-legacy: no run at c=16"), "{text}");
    }

    #[test]
    fn repeated_runs_report_the_median_and_every_error() {
        let runs: Vec<String> = [(3.0, 0), (1.0, 2), (2.0, 0), (9.0, 0)]
            .iter()
            .map(|&(rps, errors)| {
                let mut r = result("x", 1, rps, 1.0);
                r.errors = errors;
                serde_json::to_string(&r).expect("json")
            })
            .collect();
        let results = parse(&format!("{}\n\n", runs.join("\n"))).expect("parses");
        let summary = find(&results, "x", Level::echo(1)).expect("found");
        assert_eq!(summary.rps, 2.0, "the lower median of 1, 2, 3, 9");
        assert_eq!(summary.errors, 2);
        assert_eq!(summary.runs, 4);
        assert!(find(&results, "x", Level::echo(2)).is_none());
        assert!(render(&results, &args()).contains("median"));
        assert!(parse("{}\n").is_err());
    }
}

//! `tools/call echo` through the tokio adapter to the demo server, next to
//! a raw baseline: the same request lines written straight to a demo
//! server child's stdin and its answers read from stdout, with a pipelined
//! window of the same size as the adapter's concurrency.
//!
//! ```text
//! cargo bench -p mcpod-tokio --bench echo
//! ```
//!
//! Criterion measures throughput (calls per second); afterwards a plain
//! loop prints calls/s, p50 and p99 latency per configuration, and the
//! adapter/raw throughput ratio, from rounds of raw and adapter calls
//! interleaved so that both see the same machine load. Both sides talk to a
//! demo server in the legacy era (the same bytes on the wire: the adapter's
//! session does the `initialize` handshake, the raw client does it by hand).
//! The tokio runtime has 2 worker threads (`MCPOD_BENCH_WORKERS` to
//! change). The demo server is this bench binary itself, re-executed (see
//! `mcpod_transport_suite::demo`).

use std::collections::HashMap;
use std::process::Stdio;
use std::sync::Arc;
use std::time::{Duration, Instant};

use criterion::{BenchmarkId, Criterion, Throughput};
use mcpod_tokio::{
    CallItem, EraMode, OwnedRequest, RequestOptions, SpawnProcess, Upstream, UpstreamConfig,
};
use mcpod_transport_suite as suite;
use serde_json::value::RawValue;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::process::{Child, ChildStdin, ChildStdout, Command};

const CONCURRENCY: [usize; 3] = [1, 16, 64];
const PARAMS: &str = r#"{"name":"echo","arguments":{"text":"hello"}}"#;

fn raw(json: &str) -> Box<RawValue> {
    RawValue::from_string(json.to_owned()).expect("valid JSON")
}

/// A hand-written pipelined client straight on the child's pipes.
struct RawClient {
    _child: Child,
    stdin: ChildStdin,
    stdout: ChildStdout,
    buf: Vec<u8>,
    chunk: Vec<u8>,
    next_id: u64,
}

impl RawClient {
    async fn start() -> RawClient {
        let spec = suite::demo(&[]);
        let mut child = Command::new(&spec.program)
            .envs(spec.env.iter().map(|(k, v)| (k, v)))
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .kill_on_drop(true)
            .spawn()
            .expect("spawn demo");
        let stdin = child.stdin.take().expect("stdin");
        let stdout = child.stdout.take().expect("stdout");
        let mut client = RawClient {
            _child: child,
            stdin,
            stdout,
            buf: Vec::with_capacity(64 * 1024),
            chunk: vec![0; 64 * 1024],
            next_id: 1,
        };
        let init = br#"{"jsonrpc":"2.0","id":0,"method":"initialize","params":{"protocolVersion":"2025-11-25","capabilities":{},"clientInfo":{"name":"raw","version":"0"}}}
"#;
        client.stdin.write_all(init).await.expect("write");
        let mut lines = 0;
        while lines == 0 {
            lines += client.read_lines(|_| {}).await;
        }
        client
            .stdin
            .write_all(b"{\"jsonrpc\":\"2.0\",\"method\":\"notifications/initialized\"}\n")
            .await
            .expect("write");
        client
    }

    /// Reads what is available; calls `each` with the id of every complete
    /// response line. Returns how many lines it saw.
    async fn read_lines(&mut self, mut each: impl FnMut(u64)) -> usize {
        let n = self.stdout.read(&mut self.chunk).await.expect("read");
        assert!(n > 0, "demo server closed its output");
        self.buf.extend_from_slice(&self.chunk[..n]);
        let mut seen = 0;
        let mut start = 0;
        while let Some(end) = self.buf[start..].iter().position(|b| *b == b'\n') {
            let line = &self.buf[start..start + end];
            each(response_id(line));
            seen += 1;
            start += end + 1;
        }
        self.buf.drain(..start);
        seen
    }

    fn push_request(&mut self, out: &mut Vec<u8>) -> u64 {
        let id = self.next_id;
        self.next_id += 1;
        out.extend_from_slice(br#"{"jsonrpc":"2.0","id":"#);
        out.extend_from_slice(id.to_string().as_bytes());
        out.extend_from_slice(br#","method":"tools/call","params":"#);
        out.extend_from_slice(PARAMS.as_bytes());
        out.extend_from_slice(b"}\n");
        id
    }

    /// `total` calls with at most `window` outstanding; per-call latencies.
    async fn run(&mut self, total: usize, window: usize) -> (Duration, Vec<Duration>) {
        let started = Instant::now();
        let mut sent_at: HashMap<u64, Instant> = HashMap::with_capacity(window);
        let mut latencies = Vec::with_capacity(total);
        let mut out = Vec::new();
        let mut sent = 0;
        while sent < total.min(window) {
            let id = self.push_request(&mut out);
            sent_at.insert(id, Instant::now());
            sent += 1;
        }
        self.stdin.write_all(&out).await.expect("write");
        while latencies.len() < total {
            let mut answered = 0;
            self.read_lines(|id| {
                let at = sent_at.remove(&id).expect("an id we sent");
                latencies.push(at.elapsed());
                answered += 1;
            })
            .await;
            out.clear();
            for _ in 0..answered {
                if sent < total {
                    let id = self.push_request(&mut out);
                    sent_at.insert(id, Instant::now());
                    sent += 1;
                }
            }
            if !out.is_empty() {
                self.stdin.write_all(&out).await.expect("write");
            }
        }
        (started.elapsed(), latencies)
    }
}

/// Runs the raw client as a task on the runtime (like the adapter's
/// callers and driver), not on the thread that blocks on the runtime.
fn raw_run(
    runtime: &tokio::runtime::Runtime,
    client: &mut Option<RawClient>,
    total: usize,
    window: usize,
) -> (Duration, Vec<Duration>) {
    let mut owned = client.take().expect("raw client");
    let task = runtime.spawn(async move {
        let out = owned.run(total, window).await;
        (owned, out)
    });
    let (owned, out) = runtime.block_on(task).expect("raw client task");
    *client = Some(owned);
    out
}

/// The numeric id of a response line (`{"jsonrpc":"2.0","id":N,...`).
fn response_id(line: &[u8]) -> u64 {
    let key = b"\"id\":";
    let at = line
        .windows(key.len())
        .position(|w| w == key)
        .expect("a response with an id")
        + key.len();
    line[at..]
        .iter()
        .take_while(|b| b.is_ascii_digit())
        .fold(0, |n, b| n * 10 + u64::from(b - b'0'))
}

/// `total` calls through the adapter from `concurrency` tasks, each with
/// its own handle clone and colliding ids.
async fn adapter_run(
    upstream: &Upstream,
    total: usize,
    concurrency: usize,
) -> (Duration, Vec<Duration>) {
    let params: Arc<str> = PARAMS.into();
    let started = Instant::now();
    let workers = concurrency.min(total).max(1);
    let tasks: Vec<_> = (0..workers)
        .map(|w| {
            let count = total / workers + usize::from(w < total % workers);
            let upstream = upstream.clone();
            let params = params.clone();
            tokio::spawn(async move {
                let mut latencies = Vec::with_capacity(count);
                for i in 0..count {
                    let at = Instant::now();
                    let req =
                        OwnedRequest::new(raw(&i.to_string()), "tools/call", Some(raw(&params)));
                    let call = upstream
                        .call(req, RequestOptions::default())
                        .await
                        .expect("call accepted");
                    match call.finish().await {
                        Some(CallItem::Response { .. }) => {}
                        other => panic!("expected a response, got {other:?}"),
                    }
                    latencies.push(at.elapsed());
                }
                latencies
            })
        })
        .collect();
    let mut latencies = Vec::with_capacity(total);
    for task in tasks {
        latencies.extend(task.await.expect("worker"));
    }
    (started.elapsed(), latencies)
}

struct Figures {
    calls_per_sec: f64,
    p50: Duration,
    p99: Duration,
}

/// Measurements of several rounds of one configuration.
#[derive(Default)]
struct Rounds {
    rates: Vec<f64>,
    latencies: Vec<Duration>,
}

impl Rounds {
    fn add(&mut self, calls: usize, elapsed: Duration, latencies: Vec<Duration>) {
        self.rates.push(calls as f64 / elapsed.as_secs_f64());
        self.latencies.extend(latencies);
    }

    fn figures(mut self) -> Figures {
        self.rates.sort_by(f64::total_cmp);
        self.latencies.sort_unstable();
        let at = |q: f64| self.latencies[((self.latencies.len() - 1) as f64 * q).round() as usize];
        Figures {
            calls_per_sec: self.rates[self.rates.len() / 2],
            p50: at(0.50),
            p99: at(0.99),
        }
    }
}

fn main() {
    suite::serve_demo_if_child();
    let bench_mode = std::env::args().any(|a| a == "--bench");
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(
            std::env::var("MCPOD_BENCH_WORKERS")
                .ok()
                .and_then(|w| w.parse().ok())
                .unwrap_or(2),
        )
        .enable_all()
        .build()
        .expect("tokio runtime");
    let mut config = UpstreamConfig::default();
    config.core.era_mode = EraMode::Legacy;
    config.core.default_call_timeout = Duration::from_secs(600);
    let upstream = runtime.block_on(async {
        let upstream = Upstream::spawn_process(suite::demo(&[]), config);
        upstream.ready().await.expect("adapter ready");
        upstream
    });
    let mut raw_client = Some(runtime.block_on(RawClient::start()));

    let mut criterion = Criterion::default()
        .sample_size(10)
        .warm_up_time(Duration::from_secs(1))
        .measurement_time(Duration::from_secs(3))
        .configure_from_args();
    {
        let mut group = criterion.benchmark_group("tools_call_echo");
        group.throughput(Throughput::Elements(1));
        for n in CONCURRENCY {
            group.bench_with_input(BenchmarkId::new("raw", n), &n, |b, &n| {
                b.iter_custom(|iters| raw_run(&runtime, &mut raw_client, iters as usize, n).0)
            });
            group.bench_with_input(BenchmarkId::new("mcpod-tokio", n), &n, |b, &n| {
                b.iter_custom(|iters| {
                    runtime
                        .block_on(adapter_run(&upstream, iters as usize, n))
                        .0
                })
            });
        }
        group.finish();
    }
    criterion.final_summary();

    // Latency percentiles and the throughput ratio, same run: raw and
    // adapter rounds interleaved, so both see the same machine load; the
    // median round's throughput, percentiles over every call.
    let (calls, rounds) = if bench_mode { (10_000, 15) } else { (200, 1) };
    println!(
        "\ntools/call echo: {rounds} interleaved rounds of {calls} calls per row; median round's calls/s, \
         p50/p99 over all calls; ratio: median of the rounds' adapter/raw ratios"
    );
    println!(
        "{:<12} {:>5} {:>12} {:>10} {:>10}",
        "client", "conc", "calls/s", "p50 µs", "p99 µs"
    );
    for n in CONCURRENCY {
        let mut base = Rounds::default();
        let mut ours = Rounds::default();
        for _ in 0..rounds {
            let (elapsed, lat) = raw_run(&runtime, &mut raw_client, calls, n);
            base.add(calls, elapsed, lat);
            let (elapsed, lat) = runtime.block_on(adapter_run(&upstream, calls, n));
            ours.add(calls, elapsed, lat);
        }
        let mut ratios: Vec<f64> = ours
            .rates
            .iter()
            .zip(&base.rates)
            .map(|(ours, base)| ours / base)
            .collect();
        ratios.sort_by(f64::total_cmp);
        let ratio = ratios[ratios.len() / 2];
        let (base, ours) = (base.figures(), ours.figures());
        for (name, f) in [("raw", &base), ("mcpod-tokio", &ours)] {
            println!(
                "{:<12} {:>5} {:>12.0} {:>10} {:>10}",
                name,
                n,
                f.calls_per_sec,
                f.p50.as_micros(),
                f.p99.as_micros()
            );
        }
        println!("{:<12} {:>5} {:>11.1}%", "ratio", n, 100.0 * ratio);
    }
    runtime.block_on(upstream.close());
}

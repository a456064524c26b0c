//! Latency of the containerd backend, next to its baselines, in one run.
//!
//! - **Cold start**: the first call on a bot with no session (the gateway
//!   checks the container, execs `/app/mcp`, runs the handshake, forwards
//!   the call), over HTTP on the Memoh route, next to
//!   `ctr task exec --exec-id X mcp-BOT /app/mcp` of the same binary with
//!   one `tools/call` piped into it (spawn → response line). The two are
//!   interleaved, one bot each per round.
//! - **Warm calls**: sequential `tools/call echo` on a bot's live session,
//!   next to the same calls on a process target running the same binary
//!   on the host, in interleaved rounds.
//!
//! ```text
//! scripts/bench-containerd.sh          # builds, starts a private containerd, runs this
//! # or by hand, with a containerd running:
//! cargo run --release -p mcpod-server --example containerd_bench -- \
//!     --socket /tmp/ctd/containerd.sock --demo target/x86_64-unknown-linux-gnu/release/mcpod-demo
//! ```
//!
//! Options: `--cold N` (bots, default 20), `--warm N` (calls per target per
//! round, default 500), `--rounds N` (default 6), `--json` (one JSON object).

#![allow(clippy::unwrap_used, missing_docs)]

use std::os::unix::fs::{PermissionsExt, symlink};
use std::path::{Path, PathBuf};
use std::process::Stdio;
use std::time::{Duration, Instant};

use mcpod_containerd::{BotConfig, BotSpec, Bots, Client, ClientConfig};
use mcpod_server::config::RawConfig;
use serde_json::json;
use tokio::io::{AsyncBufReadExt, AsyncWriteExt, BufReader};

struct Args {
    socket: PathBuf,
    demo: PathBuf,
    cold: usize,
    warm: usize,
    rounds: usize,
    json: bool,
}

fn args() -> Result<Args, String> {
    let mut a = Args {
        socket: std::env::var_os("MCPOD_TEST_CONTAINERD_SOCKET")
            .map(PathBuf::from)
            .unwrap_or_default(),
        demo: std::env::var_os("MCPOD_TEST_DEMO_STATIC")
            .map(PathBuf::from)
            .unwrap_or_default(),
        cold: 20,
        warm: 500,
        rounds: 6,
        json: false,
    };
    let mut it = std::env::args().skip(1);
    while let Some(flag) = it.next() {
        let mut value = || it.next().ok_or(format!("{flag} needs a value"));
        match flag.as_str() {
            "--socket" => a.socket = value()?.into(),
            "--demo" => a.demo = value()?.into(),
            "--cold" => a.cold = value()?.parse().map_err(|e| format!("--cold: {e}"))?,
            "--warm" => a.warm = value()?.parse().map_err(|e| format!("--warm: {e}"))?,
            "--rounds" => a.rounds = value()?.parse().map_err(|e| format!("--rounds: {e}"))?,
            "--json" => a.json = true,
            other => return Err(format!("unknown argument {other}")),
        }
    }
    if a.socket.as_os_str().is_empty() {
        return Err("--socket (or MCPOD_TEST_CONTAINERD_SOCKET) is required".into());
    }
    if !a.demo.is_file() {
        return Err(format!(
            "--demo (or MCPOD_TEST_DEMO_STATIC) must name the statically linked mcpod-demo; got {:?}",
            a.demo
        ));
    }
    if a.cold == 0 || a.warm == 0 || a.rounds == 0 {
        return Err("--cold, --warm and --rounds must be at least 1".into());
    }
    Ok(a)
}

fn build_rootfs(rootfs: &Path, demo: &Path) {
    for d in [
        "bin", "app", "proc", "dev", "tmp", "data", "etc", "root", "sys",
    ] {
        std::fs::create_dir_all(rootfs.join(d)).unwrap();
    }
    std::fs::copy("/bin/busybox", rootfs.join("bin/busybox"))
        .expect("/bin/busybox (apt-get install busybox-static)");
    for applet in ["sh", "sleep"] {
        symlink("busybox", rootfs.join("bin").join(applet)).unwrap();
    }
    let mcp = rootfs.join("app/mcp");
    std::fs::copy(demo, &mcp).unwrap();
    std::fs::set_permissions(&mcp, std::fs::Permissions::from_mode(0o755)).unwrap();
}

const CALL: &str = r#"{"jsonrpc":"2.0","id":1,"method":"tools/call","params":{"name":"echo","arguments":{"text":"x"}}}"#;

/// One `tools/call` through the gateway; panics on anything but the echo.
async fn http_call(http: &reqwest::Client, url: &str) -> Duration {
    let t = Instant::now();
    let r = http
        .post(url)
        .header("content-type", "application/json")
        .header("accept", "application/json, text/event-stream")
        .body(CALL)
        .send()
        .await
        .unwrap();
    let status = r.status();
    let body = r.text().await.unwrap();
    let elapsed = t.elapsed();
    assert!(
        status.is_success() && body.contains(r#""text":"x""#),
        "{status}: {body}"
    );
    elapsed
}

/// `ctr task exec` of `/app/mcp` with one call piped in: spawn → response.
async fn ctr_call(socket: &Path, namespace: &str, container: &str, exec_id: &str) -> Duration {
    let t = Instant::now();
    let mut child = tokio::process::Command::new("ctr")
        .arg("--address")
        .arg(socket)
        .args([
            "-n",
            namespace,
            "task",
            "exec",
            "--exec-id",
            exec_id,
            container,
            "/app/mcp",
        ])
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .spawn()
        .expect("ctr (apt-get install containerd)");
    let mut stdin = child.stdin.take().unwrap();
    stdin.write_all(CALL.as_bytes()).await.unwrap();
    stdin.write_all(b"\n").await.unwrap();
    let mut stdout = BufReader::new(child.stdout.take().unwrap());
    let mut line = String::new();
    stdout.read_line(&mut line).await.unwrap();
    let elapsed = t.elapsed();
    assert!(line.contains(r#""text":"x""#), "ctr exec answered {line:?}");
    drop(stdin);
    let status = child.wait().await.unwrap();
    assert!(status.success(), "ctr exec: {status}");
    elapsed
}

/// Line round trips straight over a process's stdio (no gateway): the
/// floor each backend's transport sets.
async fn raw_round_trips<W, R>(stdin: &mut W, stdout: &mut BufReader<R>, n: usize) -> Vec<Duration>
where
    W: tokio::io::AsyncWrite + Unpin,
    R: tokio::io::AsyncRead + Unpin,
{
    let mut out = Vec::with_capacity(n);
    let mut line = String::new();
    let mut msg = CALL.as_bytes().to_vec();
    msg.push(b'\n');
    for _ in 0..n {
        let t = Instant::now();
        stdin.write_all(&msg).await.unwrap();
        line.clear();
        stdout.read_line(&mut line).await.unwrap();
        out.push(t.elapsed());
        assert!(line.contains(r#""text":"x""#), "{line:?}");
    }
    out
}

#[derive(Debug, Clone, Copy, serde::Serialize)]
struct Summary {
    n: usize,
    p50_us: f64,
    p90_us: f64,
    p99_us: f64,
    mean_us: f64,
}

fn summary(mut v: Vec<Duration>) -> Summary {
    v.sort();
    let us = |d: Duration| d.as_secs_f64() * 1e6;
    let at = |q: f64| us(v[((v.len() - 1) as f64 * q).round() as usize]);
    Summary {
        n: v.len(),
        p50_us: at(0.5),
        p90_us: at(0.9),
        p99_us: at(0.99),
        mean_us: v.iter().map(|d| us(*d)).sum::<f64>() / v.len() as f64,
    }
}

#[tokio::main]
async fn main() {
    let a = match args() {
        Ok(a) => a,
        Err(e) => {
            eprintln!("containerd_bench: {e}");
            std::process::exit(2);
        }
    };
    let tmp = tempfile::Builder::new()
        .prefix("mcpod-ctd-bench-")
        .tempdir()
        .unwrap();
    let rootfs = tmp.path().join("rootfs");
    build_rootfs(&rootfs, &a.demo);
    let fifo_root = tmp.path().join("fifo");
    let namespace = format!("mcpod-bench-{}", std::process::id());
    let client = Client::connect(
        ClientConfig::new(&a.socket)
            .with_namespace(&namespace)
            .with_fifo_root(&fifo_root),
    )
    .await
    .unwrap_or_else(|e| panic!("containerd at {}: {e}", a.socket.display()));
    let version = client.version().await.unwrap();
    let bots = Bots::new(client.clone(), BotConfig::default());
    let names: Vec<String> = (0..a.cold).map(|i| format!("b{i}")).collect();
    for b in &names {
        bots.create_and_start(b, &BotSpec::new(&rootfs))
            .await
            .unwrap();
    }
    bots.create_and_start("warm", &BotSpec::new(&rootfs))
        .await
        .unwrap();

    let toml = format!(
        "[auth]\ndisabled = true\n\
         [containerd]\nsocket = \"{}\"\nnamespace = \"{namespace}\"\nfifo_root = \"{}\"\nserve_bots = true\n\
         [targets.proc]\ncommand = \"{}\"\n[bots.procbot]\ntarget = \"proc\"\n",
        a.socket.display(),
        fifo_root.display(),
        a.demo.display()
    );
    let config = RawConfig::from_toml(&toml).unwrap().validate().unwrap();
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let server = mcpod_server::spawn(config, listener).unwrap();
    let base = format!("http://{}", server.addr());
    let http = reqwest::Client::builder().build().unwrap();

    // Cold starts, interleaved with ctr exec on the same container.
    let mut cold = Vec::new();
    let mut ctr = Vec::new();
    for (i, b) in names.iter().enumerate() {
        let container = format!("mcp-{b}");
        let url = format!("{base}/bots/{b}/container/fs-mcp");
        let exec_id = format!("bench-ctr-{i}");
        if i % 2 == 0 {
            cold.push(http_call(&http, &url).await);
            ctr.push(ctr_call(&a.socket, &namespace, &container, &exec_id).await);
        } else {
            ctr.push(ctr_call(&a.socket, &namespace, &container, &exec_id).await);
            cold.push(http_call(&http, &url).await);
        }
    }

    // Warm calls, interleaved rounds.
    let warm_url = format!("{base}/bots/warm/container/fs-mcp");
    // The same route, served by a process target (bot `procbot`).
    let proc_url = format!("{base}/bots/procbot/container/fs-mcp");
    for _ in 0..50 {
        http_call(&http, &warm_url).await;
        http_call(&http, &proc_url).await;
    }
    let mut warm = Vec::new();
    let mut process = Vec::new();
    for round in 0..a.rounds {
        let order: [(&str, &mut Vec<Duration>); 2] = if round % 2 == 0 {
            [(&warm_url, &mut warm), (&proc_url, &mut process)]
        } else {
            [(&proc_url, &mut process), (&warm_url, &mut warm)]
        };
        for (url, out) in order {
            for _ in 0..a.warm {
                out.push(http_call(&http, url).await);
            }
        }
    }
    server.shutdown().await;

    // The transports alone: an exec'd process's FIFOs (through the shim)
    // and a local child's pipes, same binary, interleaved rounds.
    let mut exec = client
        .exec("mcp-warm", &mcpod_containerd::ExecOptions::default())
        .await
        .unwrap();
    let mut exec_in = exec.stdin.take().unwrap();
    let mut exec_out = BufReader::new(exec.stdout.take().unwrap());
    let mut child = tokio::process::Command::new(&a.demo)
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .kill_on_drop(true)
        .spawn()
        .unwrap();
    let mut child_in = child.stdin.take().unwrap();
    let mut child_out = BufReader::new(child.stdout.take().unwrap());
    let (mut raw_fifo, mut raw_pipe) = (Vec::new(), Vec::new());
    for _ in 0..a.rounds {
        raw_fifo.extend(raw_round_trips(&mut exec_in, &mut exec_out, a.warm).await);
        raw_pipe.extend(raw_round_trips(&mut child_in, &mut child_out, a.warm).await);
    }
    drop((exec_in, child_in));
    exec.shutdown(Duration::from_secs(2)).await.unwrap();
    child.wait().await.unwrap();

    for b in names.iter().chain(std::iter::once(&"warm".to_owned())) {
        if let Err(e) = bots.delete(b).await {
            eprintln!("deleting bot {b}: {e}");
        }
    }

    let (cold, ctr, warm, process) = (summary(cold), summary(ctr), summary(warm), summary(process));
    let (raw_fifo, raw_pipe) = (summary(raw_fifo), summary(raw_pipe));
    let cold_ratio = cold.p50_us / ctr.p50_us;
    let warm_ratio = warm.p50_us / process.p50_us;
    if a.json {
        println!(
            "{}",
            json!({
                "containerd": version,
                "cold_start": cold, "ctr_exec_plus_call": ctr,
                "warm_containerd": warm, "warm_process": process,
                "raw_exec_fifo": raw_fifo, "raw_child_pipe": raw_pipe,
                "cold_ratio_p50": cold_ratio, "warm_ratio_p50": warm_ratio,
            })
        );
        return;
    }
    println!(
        "containerd {version}; {} cold starts, {} warm calls per backend",
        cold.n, warm.n
    );
    println!();
    println!("| measurement | n | p50 | p90 | p99 | mean |");
    println!("| --- | ---: | ---: | ---: | ---: | ---: |");
    let ms = |us: f64| format!("{:.2} ms", us / 1000.0);
    for (name, s) in [
        (
            "cold start via mcpod (check + exec + handshake + call)",
            cold,
        ),
        ("`ctr task exec` /app/mcp + one call", ctr),
        ("warm call, containerd backend", warm),
        ("warm call, process backend", process),
        (
            "raw line round trip, exec'd process (FIFOs via the shim)",
            raw_fifo,
        ),
        ("raw line round trip, local child (pipes)", raw_pipe),
    ] {
        println!(
            "| {name} | {} | {} | {} | {} | {} |",
            s.n,
            ms(s.p50_us),
            ms(s.p90_us),
            ms(s.p99_us),
            ms(s.mean_us)
        );
    }
    println!();
    println!(
        "cold start / ctr exec (p50): {cold_ratio:.2}x (target <= 1.2x) {}",
        if cold_ratio <= 1.2 { "ok" } else { "MISSED" }
    );
    println!(
        "warm containerd / process (p50): {warm_ratio:.2}x (target <= 1.2x) {}",
        if warm_ratio <= 1.2 { "ok" } else { "MISSED" }
    );
    println!(
        "transport floor: exec FIFOs add {:.0} us per round trip over local pipes (p50); \
         the gateway adds {:.0} us (containerd) and {:.0} us (process) over its transport",
        raw_fifo.p50_us - raw_pipe.p50_us,
        warm.p50_us - raw_fifo.p50_us,
        process.p50_us - raw_pipe.p50_us
    );
}

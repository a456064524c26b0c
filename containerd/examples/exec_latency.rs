//! Measures exec latency through this crate against `ctr task exec`.
//!
//! Needs a containerd (as root) and `/bin/busybox` (busybox-static):
//!
//! ```text
//! scripts/containerd-env.sh start /tmp/ctd
//! MCPOD_TEST_CONTAINERD_SOCKET=/tmp/ctd/containerd.sock \
//!     cargo run --release -p mcpod-containerd --example exec_latency -- 100
//! ```
//!
//! It makes a bot container in the namespace `mcpod-latency` from a busybox
//! rootfs in a temporary directory and deletes it at the end.
#![allow(missing_docs)]

use std::os::unix::fs::symlink;
use std::path::Path;
use std::time::{Duration, Instant};

use mcpod_containerd::{BotConfig, BotSpec, Bots, Client, ClientConfig, ExecOptions};
use tokio::io::{AsyncReadExt, AsyncWriteExt};

type BoxError = Box<dyn std::error::Error>;

#[tokio::main(flavor = "current_thread")]
async fn main() -> Result<(), BoxError> {
    let iterations: usize = match std::env::args().nth(1) {
        Some(n) => n.parse()?,
        None => 50,
    };
    let socket = std::env::var("MCPOD_TEST_CONTAINERD_SOCKET")
        .unwrap_or_else(|_| mcpod_containerd::DEFAULT_SOCKET.to_owned());
    let tmp = tempfile::tempdir()?;
    let rootfs = tmp.path().join("rootfs");
    for d in ["bin", "proc", "dev", "tmp", "data", "etc", "root"] {
        std::fs::create_dir_all(rootfs.join(d))?;
    }
    std::fs::copy("/bin/busybox", rootfs.join("bin/busybox"))?;
    for applet in ["sh", "cat", "sleep", "echo"] {
        symlink("busybox", rootfs.join("bin").join(applet))?;
    }
    let namespace = "mcpod-latency";
    let client = Client::connect(
        ClientConfig::new(&socket)
            .with_namespace(namespace)
            .with_fifo_root(tmp.path().join("fifo")),
    )
    .await?;
    let bots = Bots::new(client.clone(), BotConfig::default());
    let bot = "latency";
    // A leftover from an interrupted run would make create fail.
    let _ = bots.delete(bot).await;

    let t0 = Instant::now();
    bots.create_and_start(bot, &BotSpec::new(&rootfs)).await?;
    let create_start = t0.elapsed();
    let cid = format!("mcp-{bot}");

    let mut first_byte_cat = Vec::new();
    let mut first_byte_echo = Vec::new();
    let mut round_trip = Vec::new();
    let mut shutdown = Vec::new();
    let mut ctr = Vec::new();
    for _ in 0..iterations {
        // exec cat, write one line, first byte back.
        let t = Instant::now();
        let mut p = client.exec(&cid, &ExecOptions::new(["/bin/cat"])).await?;
        let mut stdin = p.stdin.take().ok_or("stdin")?;
        let mut stdout = p.stdout.take().ok_or("stdout")?;
        stdin.write_all(b"x\n").await?;
        let mut b = [0u8; 2];
        stdout.read_exact(&mut b[..1]).await?;
        first_byte_cat.push(t.elapsed());
        stdout.read_exact(&mut b[1..]).await?;
        // One line round trip through the running cat.
        let mut line = [0u8; 16];
        for _ in 0..10 {
            let t = Instant::now();
            stdin.write_all(b"0123456789abcde\n").await?;
            stdout.read_exact(&mut line).await?;
            round_trip.push(t.elapsed());
        }
        drop(stdin);
        let t = Instant::now();
        p.shutdown(Duration::from_secs(5)).await?;
        shutdown.push(t.elapsed());

        // exec echo: first byte of its output.
        let t = Instant::now();
        let mut p = client
            .exec(&cid, &ExecOptions::new(["/bin/echo", "x"]))
            .await?;
        let mut stdout = p.stdout.take().ok_or("stdout")?;
        stdout.read_exact(&mut b[..1]).await?;
        first_byte_echo.push(t.elapsed());
        p.shutdown(Duration::from_secs(5)).await?;

        // The same with the Go CLI (process start, connect, exec, wait, delete).
        let exec_id = mcpod_containerd::new_exec_id();
        let t = Instant::now();
        let out = tokio::process::Command::new("ctr")
            .args(["--address", &socket, "-n", namespace, "task", "exec"])
            .args(["--exec-id", &exec_id, &cid, "/bin/echo", "x"])
            .output()
            .await?;
        ctr.push(t.elapsed());
        if out.stdout != b"x\n" {
            return Err(format!("ctr task exec: {}", String::from_utf8_lossy(&out.stderr)).into());
        }
    }
    bots.delete(bot).await?;

    println!("iterations: {iterations}");
    println!("| step | p50 | p90 | max |");
    println!("| --- | --- | --- | --- |");
    row(
        "create + start container and task (once)",
        &mut [create_start],
    );
    row("exec cat → first byte echoed", &mut first_byte_cat);
    row("exec echo → first byte of output", &mut first_byte_echo);
    row("line round trip through running cat", &mut round_trip);
    row(
        "shutdown (CloseIO, Wait, DeleteProcess, rm FIFOs)",
        &mut shutdown,
    );
    row("`ctr task exec /bin/echo x` (whole CLI run)", &mut ctr);
    check_clean(tmp.path())?;
    Ok(())
}

fn row(name: &str, samples: &mut [Duration]) {
    samples.sort_unstable();
    let at = |q: f64| samples[((samples.len() - 1) as f64 * q).round() as usize];
    println!(
        "| {name} | {:.2?} | {:.2?} | {:.2?} |",
        at(0.5),
        at(0.9),
        at(1.0)
    );
}

fn check_clean(tmp: &Path) -> Result<(), BoxError> {
    let left = std::fs::read_dir(tmp.join("fifo"))?.count();
    if left != 0 {
        return Err(format!("{left} FIFO directories left behind").into());
    }
    Ok(())
}

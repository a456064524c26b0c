//! `abuse`: connections that hold a server's resources without doing
//! anything useful — silent ones that send nothing, slow ones that send a
//! whole request head promising a body and then one byte of it — each held
//! open until the server closes it or it has been open `--hold`, reporting
//! how many were accepted, answered, closed and when.

use std::sync::Arc;
use std::time::{Duration, Instant};

use serde::Serialize;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;
use tokio::sync::Semaphore;

use crate::cli::AbuseArgs;

/// Connections being opened at once (a SYN burst of tens of thousands
/// overflows the listen backlog of any server).
const CONNECTING_AT_ONCE: usize = 256;

/// What became of one kind of connection.
#[derive(Debug, Default, Serialize)]
pub(crate) struct KindReport {
    /// Connections asked for.
    pub(crate) wanted: u32,
    /// Connections established.
    pub(crate) opened: u32,
    /// Connections that could not be established.
    pub(crate) refused: u32,
    /// Connections the server answered with a status line (and which).
    pub(crate) answered: Vec<(u16, u32)>,
    /// Connections the server closed within `--hold` of their opening.
    pub(crate) closed: u32,
    /// Median time from opening to the server's close, in milliseconds.
    pub(crate) close_ms_p50: Option<u64>,
    /// Longest such time, in milliseconds.
    pub(crate) close_ms_max: Option<u64>,
    /// Connections still open `--hold` after their opening.
    pub(crate) still_open: u32,
}

/// The whole run.
#[derive(Debug, Serialize)]
pub(crate) struct AbuseReport {
    /// Connections that sent nothing.
    pub(crate) silent: KindReport,
    /// Connections that sent a head and one byte of a promised body.
    pub(crate) slow: KindReport,
    /// How long the run lasted, in milliseconds.
    pub(crate) elapsed_ms: u64,
}

impl AbuseReport {
    /// One line of text.
    pub(crate) fn line(&self) -> String {
        let kind = |name: &str, k: &KindReport| {
            format!(
                "{name}: {}/{} opened, {} refused, {} closed by the server (p50 {} ms, max {} ms), {} still open, answers {:?}",
                k.opened,
                k.wanted,
                k.refused,
                k.closed,
                k.close_ms_p50.map_or("-".into(), |v| v.to_string()),
                k.close_ms_max.map_or("-".into(), |v| v.to_string()),
                k.still_open,
                k.answered
            )
        };
        format!(
            "{}; {} ({} ms)",
            kind("silent", &self.silent),
            kind("slow", &self.slow),
            self.elapsed_ms
        )
    }
}

/// How one connection ended.
enum End {
    Refused,
    Closed {
        after: Duration,
        status: Option<u16>,
    },
    StillOpen,
}

/// Runs the abuse described by `args`.
pub(crate) async fn run(args: AbuseArgs) -> Result<AbuseReport, String> {
    let addr = args
        .url
        .trim_start_matches("http://")
        .split('/')
        .next()
        .unwrap_or_default()
        .to_owned();
    if addr.is_empty() {
        return Err(format!("`{}` names no host:port", args.url));
    }
    let start = Instant::now();
    let hold_for = args.hold;
    let connecting = Arc::new(Semaphore::new(CONNECTING_AT_ONCE));
    let mut silent = Vec::new();
    let mut slow = Vec::new();
    let total = args.silent + args.slow;
    for i in 0..total {
        // Interleave the kinds, so both meet the same server state.
        let is_slow = (i % 2 == 1 && i / 2 < args.slow) || i / 2 >= args.silent;
        let permit = connecting
            .clone()
            .acquire_owned()
            .await
            .map_err(|e| e.to_string())?;
        let addr = addr.clone();
        let task = tokio::spawn(async move {
            let stream = TcpStream::connect(&addr).await;
            drop(permit);
            match stream {
                Ok(s) => hold(s, is_slow, hold_for).await,
                Err(_) => End::Refused,
            }
        });
        if is_slow {
            slow.push(task);
        } else {
            silent.push(task);
        }
    }
    let silent = tally(args.silent, silent).await;
    let slow = tally(args.slow, slow).await;
    Ok(AbuseReport {
        silent,
        slow,
        elapsed_ms: start.elapsed().as_millis() as u64,
    })
}

async fn hold(mut s: TcpStream, slow: bool, hold_for: Duration) -> End {
    let opened = Instant::now();
    let until = opened + hold_for;
    if slow {
        let head = b"POST /mcp/demo HTTP/1.1\r\nHost: 127.0.0.1\r\nContent-Type: application/json\r\n\
                     Accept: application/json, text/event-stream\r\nContent-Length: 100000\r\n\r\n{";
        if s.write_all(head).await.is_err() {
            return End::Closed {
                after: opened.elapsed(),
                status: None,
            };
        }
    }
    let mut first = Vec::new();
    let mut buf = [0u8; 1024];
    loop {
        match tokio::time::timeout_at(until.into(), s.read(&mut buf)).await {
            Err(_) => return End::StillOpen,
            Ok(Ok(0)) | Ok(Err(_)) => {
                let status = std::str::from_utf8(&first)
                    .ok()
                    .and_then(|t| t.strip_prefix("HTTP/1.1 "))
                    .and_then(|t| t.get(..3))
                    .and_then(|c| c.parse().ok());
                return End::Closed {
                    after: opened.elapsed(),
                    status,
                };
            }
            Ok(Ok(n)) => {
                if first.len() < 64 {
                    first.extend_from_slice(&buf[..n.min(64 - first.len())]);
                }
            }
        }
    }
}

async fn tally(wanted: u32, tasks: Vec<tokio::task::JoinHandle<End>>) -> KindReport {
    let mut report = KindReport {
        wanted,
        ..KindReport::default()
    };
    let mut closes = Vec::new();
    let mut answered = std::collections::BTreeMap::<u16, u32>::new();
    for t in tasks {
        match t.await {
            Ok(End::Refused) | Err(_) => report.refused += 1,
            Ok(End::StillOpen) => {
                report.opened += 1;
                report.still_open += 1;
            }
            Ok(End::Closed { after, status }) => {
                report.opened += 1;
                report.closed += 1;
                closes.push(after.as_millis() as u64);
                if let Some(s) = status {
                    *answered.entry(s).or_default() += 1;
                }
            }
        }
    }
    closes.sort_unstable();
    report.close_ms_p50 = closes.get(closes.len() / 2).copied();
    report.close_ms_max = closes.last().copied();
    report.answered = answered.into_iter().collect();
    report
}

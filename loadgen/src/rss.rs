//! Sampling a process's resident set size from `/proc/PID/status`.

use std::io;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

use tokio::task::JoinHandle;

/// How often the RSS is sampled.
const INTERVAL: Duration = Duration::from_millis(50);

/// Reads `VmRSS` of `pid`, in KiB.
pub(crate) fn vm_rss_kib(pid: u32) -> io::Result<u64> {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status"))?;
    parse_vm_rss(&status).ok_or_else(|| {
        io::Error::new(
            io::ErrorKind::InvalidData,
            format!("no VmRSS line in /proc/{pid}/status (a zombie or kernel thread?)"),
        )
    })
}

fn parse_vm_rss(status: &str) -> Option<u64> {
    let line = status.lines().find(|line| line.starts_with("VmRSS:"))?;
    let mut fields = line["VmRSS:".len()..].split_whitespace();
    let value: u64 = fields.next()?.parse().ok()?;
    match fields.next() {
        Some("kB") | None => Some(value),
        Some(_) => None,
    }
}

/// A background task that keeps the peak RSS of one process.
#[derive(Debug)]
pub(crate) struct RssSampler {
    pid: u32,
    peak: Arc<AtomicU64>,
    task: JoinHandle<()>,
}

impl RssSampler {
    /// Starts sampling `pid`; fails if its RSS cannot be read now.
    pub(crate) fn start(pid: u32) -> io::Result<Self> {
        let first = vm_rss_kib(pid).map_err(|e| {
            io::Error::new(e.kind(), format!("cannot read the RSS of pid {pid}: {e}"))
        })?;
        let peak = Arc::new(AtomicU64::new(first));
        let task = tokio::spawn({
            let peak = Arc::clone(&peak);
            async move {
                let mut ticks = tokio::time::interval(INTERVAL);
                ticks.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
                loop {
                    ticks.tick().await;
                    match vm_rss_kib(pid) {
                        Ok(kib) => {
                            peak.fetch_max(kib, Ordering::Relaxed);
                        }
                        // The process is gone: its peak so far stands.
                        Err(_) => break,
                    }
                }
            }
        });
        Ok(Self { pid, peak, task })
    }

    /// Takes a last sample, stops, and returns the pid and its peak RSS in KiB.
    pub(crate) fn finish(self) -> (u32, Option<u64>) {
        self.task.abort();
        if let Ok(kib) = vm_rss_kib(self.pid) {
            self.peak.fetch_max(kib, Ordering::Relaxed);
        }
        (self.pid, Some(self.peak.load(Ordering::Relaxed)))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn vm_rss_is_parsed_from_a_status_file() {
        let status = "Name:\tx\nVmPeak:\t  10 kB\nVmRSS:\t    4242 kB\nThreads:\t1\n";
        assert_eq!(parse_vm_rss(status), Some(4242));
        assert_eq!(parse_vm_rss("Name:\tx\n"), None);
        assert_eq!(parse_vm_rss("VmRSS:\t12 MB\n"), None);
    }

    #[test]
    fn our_own_rss_is_readable_and_plausible() {
        let kib = vm_rss_kib(std::process::id()).expect("own status");
        assert!(kib > 100, "{kib} KiB");
    }
}

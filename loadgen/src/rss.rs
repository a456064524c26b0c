//! What `/proc` says about a process during a run: its peak resident set
//! size (`/proc/PID/status`) and the CPU time it and its children spent in
//! the measured phase (`/proc/PID/stat`).

use std::io;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex, PoisonError};
use std::time::{Duration, Instant};

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

/// Clock ticks per second of `utime`/`stime` in `/proc/PID/stat` (`USER_HZ`,
/// 100 on every Linux architecture mcpod targets).
const TICKS_PER_SECOND: f64 = 100.0;

/// CPU time of `pid` (user + system, all its threads), in clock ticks.
pub(crate) fn cpu_ticks(pid: &str) -> io::Result<u64> {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat"))?;
    parse_cpu_ticks(&stat).ok_or_else(|| {
        io::Error::new(
            io::ErrorKind::InvalidData,
            format!("unexpected /proc/{pid}/stat"),
        )
    })
}

fn parse_cpu_ticks(stat: &str) -> Option<u64> {
    // The command name may contain spaces and parentheses: fields resume
    // after the last `)`, starting with field 3 (state).
    let rest = &stat[stat.rfind(')')? + 1..];
    let fields: Vec<&str> = rest.split_whitespace().collect();
    let utime: u64 = fields.get(14 - 3)?.parse().ok()?;
    let stime: u64 = fields.get(15 - 3)?.parse().ok()?;
    Some(utime + stime)
}

/// The live children of `pid` (from `/proc/PID/task/*/children`).
fn children(pid: u32) -> Vec<u32> {
    let Ok(tasks) = std::fs::read_dir(format!("/proc/{pid}/task")) else {
        return Vec::new();
    };
    tasks
        .flatten()
        .filter_map(|task| std::fs::read_to_string(task.path().join("children")).ok())
        .flat_map(|list| {
            list.split_whitespace()
                .filter_map(|child| child.parse().ok())
                .collect::<Vec<u32>>()
        })
        .collect()
}

/// The live descendants of `pid` (a gateway may start its backends through a shell).
fn descendants(pid: u32) -> Vec<u32> {
    let mut found = children(pid);
    let mut next = 0;
    // Bounded, in case /proc races produce a cycle of reused pids.
    while next < found.len() && found.len() < 10_000 {
        let more = children(found[next]);
        found.extend(more.into_iter().filter(|p| *p != pid));
        next += 1;
    }
    found
}

/// CPU ticks of a process and of each of its live children, by pid.
#[derive(Debug, Clone, Default)]
struct CpuSnapshot {
    own: u64,
    children: Vec<(u32, u64)>,
}

impl CpuSnapshot {
    fn take(pid: u32) -> Option<Self> {
        let own = cpu_ticks(&pid.to_string()).ok()?;
        let children = descendants(pid)
            .into_iter()
            .filter_map(|child| Some((child, cpu_ticks(&child.to_string()).ok()?)))
            .collect();
        Some(Self { own, children })
    }

    /// Ticks spent since `earlier`: the process's own, and its children's
    /// (children born in between count from zero; those gone are lost).
    fn since(&self, earlier: &CpuSnapshot) -> (u64, u64) {
        let own = self.own.saturating_sub(earlier.own);
        let children = self
            .children
            .iter()
            .map(|(pid, now)| {
                let before = earlier
                    .children
                    .iter()
                    .find(|(p, _)| p == pid)
                    .map_or(0, |(_, ticks)| *ticks);
                now.saturating_sub(before)
            })
            .sum();
        (own, children)
    }
}

/// CPU seconds spent in the measured phase.
#[derive(Debug, Clone, Copy, PartialEq)]
pub(crate) struct CpuUse {
    /// The process itself.
    pub(crate) own_s: f64,
    /// Its live descendants (a gateway's backends).
    pub(crate) children_s: f64,
}

/// What a [`ProcessProbe`] found.
#[derive(Debug, Clone, Copy, PartialEq)]
pub(crate) struct ProbeReport {
    /// The process probed.
    pub(crate) pid: u32,
    /// Its peak VmRSS, KiB.
    pub(crate) rss_peak_kib: u64,
    /// CPU time in the measured phase, if both ends were sampled.
    pub(crate) cpu: Option<CpuUse>,
}

/// CPU seconds this load generator spent since `since` (ticks of `/proc/self`).
#[derive(Debug)]
pub(crate) struct SelfCpu {
    at_start: Arc<Mutex<Option<u64>>>,
}

impl SelfCpu {
    /// Samples `/proc/self/stat` when the measured phase starts.
    pub(crate) fn start_at(measure_from: Instant) -> Self {
        let at_start = Arc::new(Mutex::new(None));
        let slot = Arc::clone(&at_start);
        tokio::spawn(async move {
            tokio::time::sleep_until(measure_from.into()).await;
            *slot.lock().unwrap_or_else(PoisonError::into_inner) = cpu_ticks("self").ok();
        });
        Self { at_start }
    }

    /// CPU seconds from the start of the measured phase to now.
    pub(crate) fn finish(self) -> Option<f64> {
        let start = (*self.at_start.lock().unwrap_or_else(PoisonError::into_inner))?;
        let now = cpu_ticks("self").ok()?;
        Some(now.saturating_sub(start) as f64 / TICKS_PER_SECOND)
    }
}

/// A background task that keeps the peak RSS of one process, and its CPU
/// time (with its children's) at the start of the measured phase.
#[derive(Debug)]
pub(crate) struct ProcessProbe {
    pid: u32,
    peak: Arc<AtomicU64>,
    cpu_at_start: Arc<Mutex<Option<CpuSnapshot>>>,
    task: JoinHandle<()>,
}

impl ProcessProbe {
    /// Starts probing `pid`; fails if its RSS cannot be read now.
    pub(crate) fn start(pid: u32, measure_from: Instant) -> io::Result<Self> {
        let first = vm_rss_kib(pid).map_err(|e| {
            io::Error::new(e.kind(), format!("cannot read the RSS of pid {pid}: {e}"))
        })?;
        let peak = Arc::new(AtomicU64::new(first));
        let cpu_at_start = Arc::new(Mutex::new(None));
        tokio::spawn({
            let slot = Arc::clone(&cpu_at_start);
            async move {
                tokio::time::sleep_until(measure_from.into()).await;
                *slot.lock().unwrap_or_else(PoisonError::into_inner) = CpuSnapshot::take(pid);
            }
        });
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
        Ok(Self {
            pid,
            peak,
            cpu_at_start,
            task,
        })
    }

    /// Takes a last sample, stops, and reports.
    pub(crate) fn finish(self) -> ProbeReport {
        self.task.abort();
        if let Ok(kib) = vm_rss_kib(self.pid) {
            self.peak.fetch_max(kib, Ordering::Relaxed);
        }
        let start = self
            .cpu_at_start
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .take();
        let cpu = start.zip(CpuSnapshot::take(self.pid)).map(|(start, end)| {
            let (own, children) = end.since(&start);
            CpuUse {
                own_s: own as f64 / TICKS_PER_SECOND,
                children_s: children as f64 / TICKS_PER_SECOND,
            }
        });
        ProbeReport {
            pid: self.pid,
            rss_peak_kib: self.peak.load(Ordering::Relaxed),
            cpu,
        }
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
    fn cpu_ticks_are_parsed_after_the_command_name() {
        let stat = "42 (a) b (c)) S 1 42 42 0 -1 4194304 101 0 0 0 250 50 7 9 20 0 1 0";
        assert_eq!(parse_cpu_ticks(stat), Some(300));
        assert_eq!(parse_cpu_ticks("42 (a) S 1"), None);
        assert!(cpu_ticks("self").is_ok());
    }

    #[test]
    fn children_cpu_counts_from_zero_for_the_newborn() {
        let before = CpuSnapshot {
            own: 10,
            children: vec![(7, 100), (8, 5)],
        };
        let after = CpuSnapshot {
            own: 25,
            children: vec![(7, 130), (9, 4)],
        };
        assert_eq!(after.since(&before), (15, 34));
    }

    #[test]
    fn our_own_children_and_grandchildren_are_listed() {
        let mut child = std::process::Command::new("sh")
            .args(["-c", "sleep 5 & wait"])
            .spawn()
            .expect("sh runs");
        let shell = child.id();
        let mut grandchildren = Vec::new();
        for _ in 0..100 {
            grandchildren = children(shell);
            if !grandchildren.is_empty() {
                break;
            }
            std::thread::sleep(Duration::from_millis(10));
        }
        let listed = descendants(std::process::id());
        let _ = child.kill();
        let _ = child.wait();
        for pid in &grandchildren {
            let _ = std::process::Command::new("kill")
                .arg(pid.to_string())
                .status();
        }
        assert!(listed.contains(&shell), "{listed:?}");
        assert!(!grandchildren.is_empty(), "sleep did not start");
        assert!(listed.contains(&grandchildren[0]), "{listed:?}");
    }

    #[test]
    fn our_own_rss_is_readable_and_plausible() {
        let kib = vm_rss_kib(std::process::id()).expect("own status");
        assert!(kib > 100, "{kib} KiB");
    }
}

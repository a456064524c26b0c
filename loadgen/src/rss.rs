//! What `/proc` says about a process during a run: its peak resident set
//! size (`/proc/PID/status`) and the CPU time it and its descendants spent
//! in the measured phase (`/proc/PID/task/TID/schedstat`, in nanoseconds:
//! `utime`/`stime` count whole 10 ms ticks, which rounds a lightly loaded
//! backend down to nothing).

use std::collections::HashMap;
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

/// CPU time of each live thread of `pid` (`self` for this process), in
/// nanoseconds, by thread id.
fn thread_cpu_ns(pid: &str) -> HashMap<u32, u64> {
    let Ok(tasks) = std::fs::read_dir(format!("/proc/{pid}/task")) else {
        return HashMap::new();
    };
    tasks
        .flatten()
        .filter_map(|task| {
            let tid = task.file_name().to_str()?.parse().ok()?;
            let schedstat = std::fs::read_to_string(task.path().join("schedstat")).ok()?;
            Some((tid, parse_schedstat(&schedstat)?))
        })
        .collect()
}

/// The first field of a `schedstat` line: time spent on a CPU, in ns.
fn parse_schedstat(line: &str) -> Option<u64> {
    line.split_whitespace().next()?.parse().ok()
}

/// CPU nanoseconds spent by the threads of `now` since `earlier`: threads
/// born in between count from zero; threads gone in between are lost.
fn spent_since(now: &HashMap<u32, u64>, earlier: &HashMap<u32, u64>) -> u64 {
    now.iter()
        .map(|(tid, ns)| ns.saturating_sub(earlier.get(tid).copied().unwrap_or(0)))
        .sum()
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

/// Per-thread CPU time of a process and of its live descendants.
#[derive(Debug, Clone, Default)]
struct CpuSnapshot {
    own: HashMap<u32, u64>,
    descendants: HashMap<u32, u64>,
}

impl CpuSnapshot {
    fn take(pid: u32) -> Self {
        let own = thread_cpu_ns(&pid.to_string());
        let descendants = descendants(pid)
            .into_iter()
            .flat_map(|child| thread_cpu_ns(&child.to_string()))
            .collect();
        Self { own, descendants }
    }

    /// Nanoseconds spent since `earlier`: the process's own, and its descendants'.
    fn since(&self, earlier: &CpuSnapshot) -> (u64, u64) {
        (
            spent_since(&self.own, &earlier.own),
            spent_since(&self.descendants, &earlier.descendants),
        )
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

/// CPU seconds this load generator spends in the measured phase.
#[derive(Debug)]
pub(crate) struct SelfCpu {
    at_start: Arc<Mutex<Option<HashMap<u32, u64>>>>,
}

impl SelfCpu {
    /// Samples this process's threads when the measured phase starts.
    pub(crate) fn start_at(measure_from: Instant) -> Self {
        let at_start = Arc::new(Mutex::new(None));
        let slot = Arc::clone(&at_start);
        tokio::spawn(async move {
            tokio::time::sleep_until(measure_from.into()).await;
            *slot.lock().unwrap_or_else(PoisonError::into_inner) = Some(thread_cpu_ns("self"));
        });
        Self { at_start }
    }

    /// CPU seconds from the start of the measured phase to now.
    pub(crate) fn finish(self) -> Option<f64> {
        let start = self
            .at_start
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .take()?;
        Some(spent_since(&thread_cpu_ns("self"), &start) as f64 / 1e9)
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
                *slot.lock().unwrap_or_else(PoisonError::into_inner) = Some(CpuSnapshot::take(pid));
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
        let cpu = start.map(|start| {
            let (own, descendants) = CpuSnapshot::take(self.pid).since(&start);
            CpuUse {
                own_s: own as f64 / 1e9,
                children_s: descendants as f64 / 1e9,
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
    fn schedstat_gives_nanoseconds_and_our_threads_are_found() {
        assert_eq!(parse_schedstat("216432 4018643 3\n"), Some(216_432));
        assert_eq!(parse_schedstat(""), None);
        let threads = thread_cpu_ns("self");
        assert!(
            threads.contains_key(&std::process::id()),
            "the main thread is listed: {threads:?}"
        );
    }

    #[test]
    fn threads_born_count_from_zero_and_threads_gone_are_lost() {
        let before = HashMap::from([(7, 100), (8, 5)]);
        let after = HashMap::from([(7, 130), (9, 4)]);
        assert_eq!(spent_since(&after, &before), 34);
    }

    #[test]
    fn a_busy_loop_shows_up_in_our_cpu_time() {
        let before = thread_cpu_ns("self");
        let started = Instant::now();
        let mut x = 0u64;
        while started.elapsed() < Duration::from_millis(30) {
            x = std::hint::black_box(x.wrapping_mul(31).wrapping_add(1));
        }
        let spent = spent_since(&thread_cpu_ns("self"), &before);
        assert!(spent >= 5_000_000, "{spent} ns");
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

//! Reaping exec'd processes that no live mcpod owns.
//!
//! A process exec'd by an mcpod that was killed (before it could close the
//! process's stdin: the shim keeps its own handle open, so the process
//! would never exit), or whose end could not be confirmed (containerd
//! unreachable for too long), keeps running in the container. It is found
//! and ended here — only when it is provably nobody's:
//!
//! - its FIFO directory (`{fifo_root}/{exec_id}`) has an owner file whose
//!   lock no live process holds (see [`crate::owner`]) — whatever PID
//!   namespace the mcpod that made it lived in; or
//! - its FIFO directory is gone although containerd says its stdio lives
//!   under this FIFO root (no mcpod of this version removes the directory
//!   of a process that may still run; older ones did, on a lost Wait).
//!
//! Processes whose exec id was not made by mcpod, processes of another FIFO
//! root (another gateway identity), and directories without an owner file
//! (an older mcpod's, which cannot be told dead or alive) are left alone.

use std::path::Path;
use std::time::{Duration, Instant};

use crate::client::{Client, TaskStatus};
use crate::error::{Error, Result};
use crate::exec::{ignore_gone, remove_dir};
use crate::owner::{self, OwnerLock, Probe};

/// How long a background retry of one process's reaping goes on.
const REAP_LATER_LIMIT: Duration = Duration::from_secs(600);
/// How long reaping waits for a killed process to exit.
const KILL_WAIT: Duration = Duration::from_secs(5);

/// An exec'd process ended by [`Client::reap_orphans`].
#[non_exhaustive]
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Reaped {
    /// The container.
    pub container_id: String,
    /// The exec id.
    pub exec_id: String,
    /// Why it was taken for an orphan.
    pub reason: &'static str,
}

impl Client {
    /// Ends the exec'd processes of `container_id` that no live mcpod owns,
    /// with their exec records and FIFO directories (see the module docs for
    /// what counts as unowned), then sweeps the FIFO root for directories of
    /// this namespace whose owner is gone, and cleans them and their
    /// processes' records. Processes of live mcpods — in any PID namespace —
    /// are never touched. Returns what was reaped; a failure to reap one
    /// process is logged and leaves it for the next pass.
    pub async fn reap_orphans(&self, container_id: &str) -> Result<Vec<Reaped>> {
        let pids = self.list_pids(container_id).await?;
        let mut reaped = Vec::new();
        for exec_id in pids.into_iter().filter_map(|p| p.exec_id) {
            if !owner::is_mcpod_exec_id(&exec_id) {
                continue;
            }
            let dir = self.fifo_root().join(&exec_id);
            // The owner lock, why, and where its FIFOs are when not in `dir`.
            let (lock, reason, fifos_in) = match owner::probe(&dir) {
                Probe::Live | Probe::NoOwner => continue,
                Probe::Free(lock, o) => {
                    if o.namespace != self.namespace() || o.container_id != container_id {
                        continue;
                    }
                    (Some(lock), "its owner is gone", None)
                }
                Probe::NoDir => {
                    let stdin = match self.process_state(container_id, &exec_id).await {
                        Ok(Some(p)) => p.stdin,
                        Ok(None) => continue,
                        Err(e) => {
                            tracing::debug!(container_id, exec_id, error = %e, "reading an exec's state");
                            continue;
                        }
                    };
                    if stdin.is_empty() || !Path::new(&stdin).starts_with(self.fifo_root()) {
                        continue;
                    }
                    // Its FIFOs' own directory, when that is one directly
                    // under the root that no live mcpod owns.
                    let parent = Path::new(&stdin).parent().map(Path::to_path_buf);
                    let fifos_in = parent.filter(|p| {
                        p.parent() == Some(self.fifo_root())
                            && matches!(owner::probe(p), Probe::NoOwner)
                    });
                    (None, "its FIFO directory is gone", fifos_in)
                }
            };
            tracing::warn!(
                container_id,
                exec_id,
                instance = owner::exec_id_instance(&exec_id).unwrap_or("?"),
                reason,
                "reaping an exec'd process that no live mcpod owns"
            );
            match self.reap_exec(container_id, &exec_id, lock).await {
                Ok(()) => {
                    if let Some(d) = fifos_in {
                        remove_dir(&d);
                    }
                    reaped.push(Reaped {
                        container_id: container_id.to_owned(),
                        exec_id,
                        reason,
                    });
                }
                Err(e) => {
                    tracing::warn!(container_id, exec_id, error = %e, "reaping failed; left for the next pass");
                }
            }
        }
        reaped.extend(self.sweep_fifo_root(&reaped).await);
        Ok(reaped)
    }

    /// FIFO directories of this namespace whose owner is gone and that the
    /// pass over `ListPids` did not see (their process exited, or was never
    /// started): their exec records are deleted (the process killed first
    /// if it runs after all) and the directories removed.
    async fn sweep_fifo_root(&self, done: &[Reaped]) -> Vec<Reaped> {
        let Ok(entries) = std::fs::read_dir(self.fifo_root()) else {
            return Vec::new();
        };
        let names: Vec<String> = entries
            .filter_map(|e| e.ok()?.file_name().into_string().ok())
            .filter(|n| owner::is_mcpod_exec_id(n) && !done.iter().any(|r| &r.exec_id == n))
            .collect();
        let mut out = Vec::new();
        for exec_id in names {
            let Probe::Free(lock, o) = owner::probe(&self.fifo_root().join(&exec_id)) else {
                continue;
            };
            if o.namespace != self.namespace() || !crate::is_valid_identifier(&o.container_id) {
                continue;
            }
            match self.reap_exec(&o.container_id, &exec_id, Some(lock)).await {
                Ok(()) => {
                    tracing::info!(
                        container_id = o.container_id,
                        exec_id,
                        "removed a FIFO directory that no live mcpod owns"
                    );
                    out.push(Reaped {
                        container_id: o.container_id,
                        exec_id,
                        reason: "its owner is gone (swept)",
                    });
                }
                Err(e) => {
                    tracing::debug!(exec_id, error = %e, "sweeping a FIFO directory failed");
                }
            }
        }
        out
    }

    /// Ends one unowned process: SIGKILL if it runs, a bounded wait, its
    /// exec record deleted, its FIFO directory removed (while `lock`, the
    /// owner lock, is held, so that no other reaper works on it at once).
    async fn reap_exec(
        &self,
        container_id: &str,
        exec_id: &str,
        lock: Option<OwnerLock>,
    ) -> Result<()> {
        if let Some(p) = self.process_info(container_id, exec_id).await? {
            if p.status != TaskStatus::Stopped {
                ignore_gone(self.kill(container_id, exec_id, libc::SIGKILL, false).await)?;
                match tokio::time::timeout(KILL_WAIT, self.wait(container_id, exec_id)).await {
                    Ok(Ok(_)) => {}
                    Ok(Err(e)) if e.is_not_found() => {}
                    Ok(Err(e)) => return Err(e),
                    Err(_) => {
                        return Err(Error::Timeout {
                            op: "waiting for a reaped process to exit",
                            after: KILL_WAIT,
                        });
                    }
                }
            }
            self.delete_process(container_id, exec_id).await?;
        }
        remove_dir(&self.fifo_root().join(exec_id));
        drop(lock);
        Ok(())
    }

    /// Keeps trying, in the background and for a bounded time, to reap a
    /// process whose end could not be confirmed (its owner lock already
    /// released): as soon as containerd answers, it is killed and cleaned
    /// up. Stops when another reaper holds the process, or when it is done.
    pub(crate) fn reap_later(&self, container_id: String, exec_id: String) {
        let Ok(handle) = tokio::runtime::Handle::try_current() else {
            return;
        };
        let client = self.clone();
        handle.spawn(async move {
            let started = Instant::now();
            let mut delay = client.config().retry.initial_backoff;
            let dir = client.fifo_root().join(&exec_id);
            loop {
                let lock = match owner::probe(&dir) {
                    Probe::Free(lock, _) => Some(lock),
                    // Someone else is reaping it, or it is gone already.
                    Probe::Live | Probe::NoDir => return,
                    Probe::NoOwner => None,
                };
                match client.reap_exec(&container_id, &exec_id, lock).await {
                    Ok(()) => {
                        tracing::info!(
                            container_id,
                            exec_id,
                            after = ?started.elapsed(),
                            "reaped an exec'd process whose end had not been confirmed"
                        );
                        return;
                    }
                    Err(e) if started.elapsed() >= REAP_LATER_LIMIT => {
                        tracing::warn!(container_id, exec_id, error = %e,
                            "giving up reaping in the background; the next reaper pass will");
                        return;
                    }
                    Err(e) => {
                        tracing::debug!(container_id, exec_id, error = %e, ?delay, "reaping later");
                    }
                }
                tokio::time::sleep(delay).await;
                delay = (delay * 2).min(client.config().retry.max_backoff);
            }
        });
    }
}

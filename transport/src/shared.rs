//! The state an [`Upstream`](crate::Upstream)'s handles share with its
//! driver: the running backend's session (behind a mutex never held across
//! I/O), the call routes, the health snapshot and the driver's waker.

use std::collections::HashMap;
use std::io;
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::{Duration, Instant};

use futures::task::AtomicWaker;
use mcpod_core::{BackendInfo, CallId, Era};
use tokio::sync::broadcast;

use crate::call::{CallSender, CancelCall};
use crate::connect::ProcessExit;
use crate::error::UpstreamError;
use crate::item::UpstreamEvent;

/// A snapshot of an upstream's health.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
#[non_exhaustive]
pub struct UpstreamStatus {
    /// Whether a backend is running now.
    pub alive: bool,
    /// How many times a backend was started after the first.
    pub restarts: u64,
    /// Calls open now.
    pub calls_in_flight: usize,
    /// The running backend's process id, if any.
    pub pid: Option<u32>,
    /// The running backend's era, once known.
    pub era: Option<Era>,
    /// The current (or last) backend's generation, 0 before the first.
    pub generation: u64,
    /// How the last backend process that ended did end.
    pub last_exit: Option<ProcessExit>,
    /// Whether [`Upstream::close`](crate::Upstream::close) was called.
    pub closed: bool,
    /// While a restart backoff runs: the time left. Operations meanwhile
    /// fail at once ([`UpstreamError::Restarting`]).
    pub retry_after: Option<Duration>,
    /// Why the last backend failed before it was ready (its start, its
    /// handshake, or its early exit), as the error would say it; cleared
    /// once a backend is ready. Backend texts may hold secrets: show them
    /// only to operators.
    pub last_error: Option<String>,
}

#[derive(Default)]
pub(crate) struct State {
    pub(crate) status: UpstreamStatus,
    /// The running backend's info (cleared when it ends).
    pub(crate) current_info: Option<Arc<BackendInfo>>,
    /// The last info seen, kept across restarts.
    pub(crate) last_info: Option<Arc<BackendInfo>>,
    /// The restart backoff being waited out, if any.
    pub(crate) backoff: Option<Backoff>,
}

/// A restart backoff: until when no backend starts, and why.
#[derive(Clone)]
pub(crate) struct Backoff {
    pub(crate) until: Instant,
    /// Quick deaths in a row.
    pub(crate) failures: u32,
    /// The start that failed, when that is why.
    pub(crate) spawn_error: Option<Arc<io::Error>>,
}

impl Backoff {
    /// What an operation that arrives at `now` is refused with, if the
    /// backoff still runs then.
    pub(crate) fn refusal(&self, now: Instant) -> Option<UpstreamError> {
        let retry_after = self
            .until
            .checked_duration_since(now)
            .filter(|d| !d.is_zero())?;
        Some(match &self.spawn_error {
            Some(e) => UpstreamError::SpawnFailed(e.clone()),
            None => UpstreamError::Restarting {
                retry_after,
                failures: self.failures,
            },
        })
    }
}

/// The running backend's session, shared by the driver and the callers
/// (as in quinn): callers submit work under the lock and wake the driver,
/// without a round trip through the driver task.
pub(crate) struct Live {
    pub(crate) generation: u64,
    pub(crate) session: mcpod_core::Session,
    /// Where each open call's items go.
    pub(crate) routes: HashMap<CallId, CallSender>,
}

pub(crate) struct Shared {
    pub(crate) state: Mutex<State>,
    /// The running backend's session; `None` between backends.
    pub(crate) live: Mutex<Option<Live>>,
    /// Wakes the driver after a caller queued bytes for the backend.
    pub(crate) driver: AtomicWaker,
    pub(crate) events: broadcast::Sender<UpstreamEvent>,
    pub(crate) call_buffer: usize,
}

impl Shared {
    #[cfg(test)]
    pub(crate) fn for_tests() -> Self {
        Shared {
            state: Mutex::new(State::default()),
            live: Mutex::new(None),
            driver: AtomicWaker::new(),
            events: broadcast::channel(1).0,
            call_buffer: 1,
        }
    }

    pub(crate) fn state(&self) -> MutexGuard<'_, State> {
        // A panic while holding this lock leaves plain data behind: go on.
        self.state.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// Why an operation that needs a backend must fail at once: the
    /// restart backoff runs (checked before it is queued for the
    /// supervisor, so nothing piles up behind a backoff).
    pub(crate) fn refusal(&self, now: Instant) -> Option<UpstreamError> {
        self.state().backoff.as_ref()?.refusal(now)
    }

    pub(crate) fn live(&self) -> MutexGuard<'_, Option<Live>> {
        // The session never panics on input; a panic elsewhere while this is
        // held leaves it consistent between two of its methods.
        self.live.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// Runs `f` on the running backend, if its session still takes work,
    /// then wakes the driver to write what `f` queued.
    pub(crate) fn with_open<R>(&self, f: impl FnOnce(&mut Live) -> R) -> Option<R> {
        let mut guard = self.live();
        let live = guard
            .as_mut()
            .filter(|live| live.session.close_reason().is_none())?;
        let out = f(live);
        drop(guard);
        self.driver.wake();
        Some(out)
    }

    /// Cancels an open call of backend `generation`.
    pub(crate) fn cancel(&self, generation: u64, call: CallId) {
        let mut live = self.live();
        let Some(live) = live.as_mut().filter(|l| l.generation == generation) else {
            return; // its backend is gone, and the call with it
        };
        live.routes.remove(&call);
        if live.session.cancel(
            call,
            Some("request cancelled by the caller"),
            Instant::now(),
        ) {
            self.driver.wake();
        }
    }
}

impl CancelCall for Shared {
    fn cancel(&self, generation: u64, call: CallId) {
        Shared::cancel(self, generation, call)
    }
}

//! The state an [`Upstream`](crate::Upstream)'s handles share with its
//! driver: the running backend's session (behind a mutex never held across
//! I/O), the call routes, the backend's stdin with the bytes on their way
//! to it, the health snapshot and the driver's waker.

use std::collections::HashMap;
use std::io;
use std::pin::Pin;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex, MutexGuard};
use std::task::{Context, Poll};
use std::time::{Duration, Instant};

use futures::io::AsyncWrite;
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
    /// When the driver's armed timer wakes it by itself (set by the
    /// driver): a caller whose work brings the session's next deadline
    /// before this must wake it.
    pub(crate) wakes_at: Option<Instant>,
}

/// The backend's stdin and the batch being written to it. Whoever holds
/// it writes: a caller straight after queuing work, while nothing waits
/// to be written (with a no-op waker: it never waits), else the driver,
/// which alone waits for room. Taken while the session is locked, so
/// batches go out in the order the session made them; the session's lock
/// is released before the write.
pub(crate) struct Output {
    pub(crate) generation: u64,
    /// `None` once closed or broken.
    pub(crate) writer: Option<Box<dyn AsyncWrite + Send + Unpin>>,
    /// Bytes taken from the session, written up to `pos`. New bytes are
    /// taken only when it is all written, so a backend that stops reading
    /// leaves them queued in the session, which then refuses new work.
    pub(crate) buf: Vec<u8>,
    pub(crate) pos: usize,
    pub(crate) need_flush: bool,
}

impl Output {
    pub(crate) fn new(generation: u64, writer: Box<dyn AsyncWrite + Send + Unpin>) -> Output {
        Output {
            generation,
            writer: Some(writer),
            buf: Vec::new(),
            pos: 0,
            need_flush: false,
        }
    }

    /// Whether nothing waits to be written or flushed (so the next batch
    /// may be taken).
    pub(crate) fn idle(&self) -> bool {
        self.pos == self.buf.len() && !self.need_flush
    }

    /// Takes the session's next batch, if all before it is written.
    pub(crate) fn take_from(&mut self, session: &mut mcpod_core::Session) {
        if self.writer.is_none() {
            // Nothing can reach the backend any more.
            self.buf.clear();
            self.pos = 0;
            while session.poll_transmit(&mut self.buf) {
                self.buf.clear();
            }
        } else if self.idle() {
            self.buf.clear();
            self.pos = 0;
            let _ = session.poll_transmit(&mut self.buf);
        }
    }

    /// Writes the batch, waiting (`Pending`) for room with `cx`'s waker.
    /// `Ready(Ok(true))`: something was written and all of it is flushed.
    pub(crate) fn poll_write_all(&mut self, cx: &mut Context<'_>) -> Poll<io::Result<bool>> {
        let Some(writer) = self.writer.as_mut() else {
            return Poll::Ready(Ok(false));
        };
        while self.pos < self.buf.len() {
            match Pin::new(&mut **writer).poll_write(cx, &self.buf[self.pos..]) {
                Poll::Ready(Ok(0)) => return Poll::Ready(Err(io::ErrorKind::WriteZero.into())),
                Poll::Ready(Ok(n)) => {
                    self.pos += n;
                    self.need_flush = true;
                }
                Poll::Ready(Err(e)) if e.kind() == io::ErrorKind::Interrupted => {}
                Poll::Ready(Err(e)) => return Poll::Ready(Err(e)),
                Poll::Pending => return Poll::Pending,
            }
        }
        if !self.need_flush {
            return Poll::Ready(Ok(false));
        }
        match Pin::new(&mut **writer).poll_flush(cx) {
            Poll::Ready(Ok(())) => {
                self.need_flush = false;
                Poll::Ready(Ok(true))
            }
            Poll::Ready(Err(e)) => Poll::Ready(Err(e)),
            Poll::Pending => Poll::Pending,
        }
    }

    /// A caller's write: at once or not at all. Whether it is all written;
    /// if not (no room, or an error, which the driver's own attempt then
    /// meets and handles), the driver must take over.
    fn write_now(&mut self) -> bool {
        let mut cx = Context::from_waker(futures::task::noop_waker_ref());
        matches!(self.poll_write_all(&mut cx), Poll::Ready(Ok(_)))
    }
}

pub(crate) struct Shared {
    pub(crate) state: Mutex<State>,
    /// The running backend's session; `None` between backends.
    pub(crate) live: Mutex<Option<Live>>,
    /// The running backend's stdin; `None` between backends. Locked after
    /// `live` when both are.
    pub(crate) output: Mutex<Option<Output>>,
    /// Wakes the driver after a caller queued bytes for the backend.
    pub(crate) driver: AtomicWaker,
    /// A caller left its bytes in the session for the driver to write
    /// together with those of the calls that come in the same turn of the
    /// runtime (see [`Shared::transmit`]); cleared by the driver as it
    /// takes them.
    pub(crate) batch: AtomicBool,
    pub(crate) events: broadcast::Sender<UpstreamEvent>,
    pub(crate) call_buffer: usize,
}

impl Shared {
    #[cfg(test)]
    pub(crate) fn for_tests() -> Self {
        Shared {
            state: Mutex::new(State::default()),
            live: Mutex::new(None),
            output: Mutex::new(None),
            driver: AtomicWaker::new(),
            batch: AtomicBool::new(false),
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

    pub(crate) fn output(&self) -> MutexGuard<'_, Option<Output>> {
        // Plain data: a panic elsewhere leaves a batch partly written,
        // which the next write carries on.
        self.output.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// Runs `f` on the running backend, if its session still takes work,
    /// then writes what `f` queued (see [`Shared::transmit`]).
    pub(crate) fn with_open<R>(&self, f: impl FnOnce(&mut Live) -> R) -> Option<R> {
        let mut guard = self.live();
        let live = guard
            .as_mut()
            .filter(|live| live.session.close_reason().is_none())?;
        let out = f(live);
        self.transmit(guard);
        Some(out)
    }

    /// After a caller's work on the session: writes the bytes it queued
    /// straight to the backend's stdin when nothing else waits to be
    /// written, and wakes the driver only if it has something to do — a
    /// write that found no room, events to hand out, or a deadline earlier
    /// than its timer. The session's lock is released before the write.
    ///
    /// While other calls are open, callers come in bursts: the bytes are
    /// left in the session for the driver, which writes them after the
    /// tasks runnable now have queued theirs — one write, and one wake-up
    /// of the backend, for the burst instead of one each (the wake-up of a
    /// sleeping reader is most of a pipe write's cost).
    fn transmit(&self, mut guard: MutexGuard<'_, Option<Live>>) {
        let Some(live) = guard.as_mut() else {
            return;
        };
        let mut wake = live.session.has_events()
            || live
                .session
                .poll_timeout()
                .is_some_and(|at| live.wakes_at.is_none_or(|wakes| at < wakes));
        let burst = live.routes.len() > 1;
        let mut output = self.output();
        match output
            .as_mut()
            .filter(|o| o.generation == live.generation && o.writer.is_some() && o.idle())
        {
            // Under the session's lock, so the driver, which clears the
            // flag before it takes the bytes under that lock, takes these.
            Some(_) if burst => wake |= !self.batch.swap(true, Ordering::AcqRel),
            Some(o) => {
                o.take_from(&mut live.session);
                drop(guard);
                wake |= !o.write_now();
            }
            // A batch waits for room (the driver writes this one after
            // it), or the writer is gone (the driver discards it).
            None => wake = true,
        }
        drop(output);
        if wake {
            self.driver.wake();
        }
    }

    /// Cancels an open call of backend `generation`.
    pub(crate) fn cancel(&self, generation: u64, call: CallId) {
        let mut guard = self.live();
        let Some(live) = guard.as_mut().filter(|l| l.generation == generation) else {
            return; // its backend is gone, and the call with it
        };
        live.routes.remove(&call);
        if live.session.cancel(
            call,
            Some("request cancelled by the caller"),
            Instant::now(),
        ) {
            self.transmit(guard);
        }
    }
}

impl CancelCall for Shared {
    fn cancel(&self, generation: u64, call: CallId) {
        Shared::cancel(self, generation, call)
    }
}

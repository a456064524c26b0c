//! A long-running call's rendezvous: cancellation and the client's reply.
//!
//! Worker threads (`sleep`, `progress`, legacy `ask`) block on a [`Call`];
//! the reading thread wakes them with [`Call::cancel`] or [`Call::deliver`].

use std::sync::{Condvar, Mutex, MutexGuard, PoisonError};
use std::time::Duration;

use serde_json::value::RawValue;

/// Locks a mutex, ignoring poisoning (state stays usable after a panicking holder).
pub(crate) fn lock<T>(mutex: &Mutex<T>) -> MutexGuard<'_, T> {
    mutex.lock().unwrap_or_else(PoisonError::into_inner)
}

/// The client's answer to a server-to-client request.
#[derive(Debug)]
pub(crate) struct Reply {
    /// True if the client answered with an `error` member.
    pub(crate) is_error: bool,
    /// The `result` or `error` member, verbatim.
    pub(crate) body: Box<RawValue>,
}

#[derive(Default)]
struct Slot {
    cancelled: bool,
    reply: Option<Reply>,
}

/// Shared between a worker thread and the reading thread.
#[derive(Default)]
pub(crate) struct Call {
    slot: Mutex<Slot>,
    wake: Condvar,
}

impl Call {
    /// Marks the call cancelled and wakes its worker.
    pub(crate) fn cancel(&self) {
        lock(&self.slot).cancelled = true;
        self.wake.notify_all();
    }

    /// True once [`Call::cancel`] was called.
    pub(crate) fn is_cancelled(&self) -> bool {
        lock(&self.slot).cancelled
    }

    /// Hands the client's reply to the worker.
    pub(crate) fn deliver(&self, reply: Reply) {
        lock(&self.slot).reply = Some(reply);
        self.wake.notify_all();
    }

    /// Sleeps for `duration`; returns `false` early if the call is cancelled.
    pub(crate) fn sleep(&self, duration: Duration) -> bool {
        let slot = lock(&self.slot);
        let (slot, _) = self
            .wake
            .wait_timeout_while(slot, duration, |s| !s.cancelled)
            .unwrap_or_else(PoisonError::into_inner);
        !slot.cancelled
    }

    /// Waits for a reply; `None` if the call is cancelled first.
    pub(crate) fn wait_reply(&self) -> Option<Reply> {
        let slot = lock(&self.slot);
        let mut slot = self
            .wake
            .wait_while(slot, |s| !s.cancelled && s.reply.is_none())
            .unwrap_or_else(PoisonError::into_inner);
        if slot.cancelled {
            None
        } else {
            slot.reply.take()
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::Arc;
    use std::time::Instant;

    #[test]
    fn cancel_wakes_a_sleeper_early() {
        let call = Arc::new(Call::default());
        let other = Arc::clone(&call);
        let started = Instant::now();
        let worker = std::thread::spawn(move || other.sleep(Duration::from_secs(30)));
        std::thread::sleep(Duration::from_millis(20));
        call.cancel();
        assert!(!worker.join().expect("worker"));
        assert!(started.elapsed() < Duration::from_secs(5));
    }

    #[test]
    fn sleep_completes_without_cancel() {
        assert!(Call::default().sleep(Duration::from_millis(1)));
    }

    #[test]
    fn delivered_reply_is_returned() {
        let call = Arc::new(Call::default());
        let other = Arc::clone(&call);
        let worker = std::thread::spawn(move || other.wait_reply());
        let body = RawValue::from_string("{\"roots\":[]}".into()).expect("json");
        call.deliver(Reply {
            is_error: false,
            body,
        });
        let reply = worker.join().expect("worker").expect("reply");
        assert_eq!(reply.body.get(), "{\"roots\":[]}");
    }
}

//! One call's channel between the driver and its caller: a single shared
//! slot (one allocation per call) holding the acceptance, the items that
//! belong to the call, and its terminal item.

use std::collections::VecDeque;
use std::fmt;
use std::future::poll_fn;
use std::sync::{Arc, Mutex, MutexGuard};
use std::task::{Poll, Waker};

use mcpod_core::CallId;

use crate::error::UpstreamError;
use crate::item::CallItem;

/// Cancels an open call when its caller goes away (implemented by the
/// shared session state; a trait so this module stays below it).
pub(crate) trait CancelCall: Send + Sync {
    /// Cancels call `call` of backend `generation`, if still open.
    fn cancel(&self, generation: u64, call: CallId);
}

#[derive(Default)]
struct SlotState {
    /// The driver's answer to the call command: `(generation, call)`.
    accepted: Option<Result<(u64, CallId), UpstreamError>>,
    items: VecDeque<CallItem>,
    terminal: Option<CallItem>,
    /// The driver dropped its end without a terminal item.
    sender_gone: bool,
    /// The caller dropped its end.
    receiver_gone: bool,
    waker: Option<Waker>,
}

struct Slot {
    state: Mutex<SlotState>,
    capacity: usize,
}

impl Slot {
    fn lock(&self) -> MutexGuard<'_, SlotState> {
        // Plain data: a panic elsewhere while holding it leaves it usable.
        self.state.lock().unwrap_or_else(|e| e.into_inner())
    }
}

fn wake(mut state: MutexGuard<'_, SlotState>) {
    let waker = state.waker.take();
    drop(state);
    if let Some(waker) = waker {
        waker.wake();
    }
}

/// Creates the two ends of a call's channel.
pub(crate) fn channel(capacity: usize, shared: Arc<dyn CancelCall>) -> (CallSender, PendingCall) {
    let slot = Arc::new(Slot {
        state: Mutex::new(SlotState::default()),
        capacity: capacity.max(1),
    });
    (
        CallSender { slot: slot.clone() },
        PendingCall {
            slot,
            shared,
            converted: false,
        },
    )
}

/// The driver's end.
pub(crate) struct CallSender {
    slot: Arc<Slot>,
}

impl CallSender {
    /// Answers the call command. Returns `false` if the caller has gone
    /// (the driver must then cancel the call).
    pub(crate) fn accept(&self, result: Result<(u64, CallId), UpstreamError>) -> bool {
        let mut state = self.slot.lock();
        if state.receiver_gone {
            return false;
        }
        state.accepted = Some(result);
        wake(state);
        true
    }

    /// Queues an item that belongs to the call; hands it back if the
    /// caller is gone or too far behind.
    pub(crate) fn push(&self, item: CallItem) -> Result<(), CallItem> {
        let mut state = self.slot.lock();
        if state.receiver_gone || state.items.len() >= self.slot.capacity {
            return Err(item);
        }
        state.items.push_back(item);
        wake(state);
        Ok(())
    }

    /// Delivers the terminal item.
    pub(crate) fn finish(self, item: CallItem) {
        let mut state = self.slot.lock();
        state.terminal = Some(item);
        wake(state);
    }
}

impl Drop for CallSender {
    fn drop(&mut self) {
        let mut state = self.slot.lock();
        if state.terminal.is_none() {
            state.sender_gone = true;
            wake(state);
        }
    }
}

/// The caller's end while the driver has not accepted the call yet.
pub(crate) struct PendingCall {
    slot: Arc<Slot>,
    shared: Arc<dyn CancelCall>,
    /// Turned into a [`CallStream`](crate::CallStream), which now owns the caller's side.
    converted: bool,
}

impl PendingCall {
    /// Waits for the driver to accept or refuse the call.
    pub(crate) async fn accepted(self) -> Result<CallStream, UpstreamError> {
        let slot = self.slot.clone();
        let (generation, id) = poll_fn(|cx| {
            let mut state = slot.lock();
            if let Some(result) = state.accepted.take() {
                return Poll::Ready(result);
            }
            if state.sender_gone {
                return Poll::Ready(Err(UpstreamError::Closed));
            }
            state.waker = Some(cx.waker().clone());
            Poll::Pending
        })
        .await?;
        Ok(self.into_stream(generation, id))
    }

    /// The stream of a call the session has taken.
    pub(crate) fn into_stream(mut self, generation: u64, id: CallId) -> CallStream {
        self.converted = true;
        CallStream {
            id,
            generation,
            slot: self.slot.clone(),
            finished: false,
            shared: self.shared.clone(),
        }
    }
}

impl Drop for PendingCall {
    fn drop(&mut self) {
        if self.converted {
            return;
        }
        let mut state = self.slot.lock();
        state.receiver_gone = true;
        // Accepted but never picked up: the call is open, cancel it.
        if let Some(Ok((generation, call))) = state.accepted.take() {
            drop(state);
            self.shared.cancel(generation, call);
        }
    }
}

/// The items of one call, in order: notifications and server requests that
/// belong to it, then exactly one terminal item ([`CallItem::Response`] or
/// [`CallItem::Ended`]), then `None`.
///
/// Dropping it before the terminal item cancels the call: the backend gets
/// `notifications/cancelled`.
pub struct CallStream {
    id: CallId,
    generation: u64,
    slot: Arc<Slot>,
    finished: bool,
    shared: Arc<dyn CancelCall>,
}

impl fmt::Debug for CallStream {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("CallStream")
            .field("id", &self.id)
            .field("generation", &self.generation)
            .field("finished", &self.finished)
            .finish_non_exhaustive()
    }
}

impl CallStream {
    /// The call's id within its session (also the id the backend sees).
    pub fn id(&self) -> CallId {
        self.id
    }

    /// The backend generation the call went to.
    pub fn generation(&self) -> u64 {
        self.generation
    }

    /// The next item; `None` after the terminal one.
    pub async fn next(&mut self) -> Option<CallItem> {
        if self.finished {
            return None;
        }
        let slot = self.slot.clone();
        let item = poll_fn(|cx| {
            let mut state = slot.lock();
            // Items queued before the terminal one come first.
            if let Some(item) = state.items.pop_front() {
                return Poll::Ready(Some(item));
            }
            if let Some(item) = state.terminal.take() {
                return Poll::Ready(Some(item));
            }
            if state.sender_gone {
                return Poll::Ready(None);
            }
            state.waker = Some(cx.waker().clone());
            Poll::Pending
        })
        .await;
        if !matches!(&item, Some(item) if !item.is_terminal()) {
            self.finished = true;
        }
        item
    }

    /// Waits for the terminal item, skipping everything before it.
    pub async fn finish(mut self) -> Option<CallItem> {
        while let Some(item) = self.next().await {
            if item.is_terminal() {
                return Some(item);
            }
        }
        None
    }
}

impl Drop for CallStream {
    fn drop(&mut self) {
        let mut state = self.slot.lock();
        state.receiver_gone = true;
        state.items.clear();
        let open = !self.finished && state.terminal.is_none() && !state.sender_gone;
        drop(state);
        if open {
            self.shared.cancel(self.generation, self.id);
        }
    }
}

#[cfg(test)]
mod tests {
    use std::sync::Arc;

    use futures::executor::block_on;
    use mcpod_core::EndReason;

    use super::{CallItem, CallStream, channel};
    use crate::shared::Shared;

    fn note(n: u8) -> CallItem {
        CallItem::Notification {
            method: "notifications/progress".into(),
            frame: vec![n],
        }
    }

    fn stream(capacity: usize) -> (super::CallSender, CallStream) {
        let (tx, pending) = channel(capacity, Arc::new(Shared::for_tests()));
        // A call id can only come from a session.
        let mut session = mcpod_core::Session::new(Default::default(), std::time::Instant::now());
        let id = serde_json::value::RawValue::from_string("1".into()).expect("json");
        let request = mcpod_core::Request {
            id: &id,
            method: "tools/list",
            params: None,
        };
        let call = session
            .send_request(request, Default::default(), std::time::Instant::now())
            .expect("queued");
        (tx, pending.into_stream(1, call))
    }

    #[test]
    fn items_come_before_the_terminal_item_then_none() {
        let (tx, mut rx) = stream(8);
        tx.push(note(1)).expect("room");
        tx.push(note(2)).expect("room");
        tx.finish(CallItem::Ended {
            reason: EndReason::TimedOut,
            frame: vec![],
        });
        let got: Vec<_> = block_on(async {
            let mut got = Vec::new();
            while let Some(item) = rx.next().await {
                got.push(item);
            }
            got
        });
        assert_eq!(got.len(), 3);
        assert!(matches!(&got[0], CallItem::Notification { frame, .. } if frame == &[1]));
        assert!(matches!(&got[1], CallItem::Notification { frame, .. } if frame == &[2]));
        assert!(matches!(&got[2], CallItem::Ended { .. }));
        assert!(block_on(rx.next()).is_none());
    }

    #[test]
    fn a_full_or_dropped_stream_refuses_items() {
        let (tx, rx) = stream(1);
        tx.push(note(1)).expect("room");
        assert!(tx.push(note(2)).is_err(), "capacity 1");
        drop(rx);
        assert!(tx.push(note(3)).is_err(), "receiver gone");
    }

    #[test]
    fn a_vanished_driver_ends_the_stream() {
        let (tx, rx) = stream(4);
        drop(tx);
        assert!(block_on(rx.finish()).is_none());
    }
}

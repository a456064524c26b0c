//! [`Slots`]: the limits a call (or a stream) holds while it runs.

use tokio::sync::OwnedSemaphorePermit;
use tokio_util::sync::DropGuard;

use super::client::ClientCallGuard;
use crate::targets::PrincipalSlot;

/// Slots held for the life of a call (freed when dropped).
#[derive(Debug, Default)]
pub(crate) struct Slots {
    _target: Option<OwnedSemaphorePermit>,
    _client: Option<ClientCallGuard>,
    _stream_timer: Option<DropGuard>,
    _principal: Option<PrincipalSlot>,
}

impl Slots {
    /// One of the target's call slots and, for a session, one of its own.
    pub(crate) fn new(target: OwnedSemaphorePermit, client: Option<ClientCallGuard>) -> Slots {
        Slots {
            _target: Some(target),
            _client: client,
            _stream_timer: None,
            _principal: None,
        }
    }

    /// The same, holding the caller's principal's share too.
    pub(crate) fn with_principal(mut self, slot: PrincipalSlot) -> Slots {
        self._principal = Some(slot);
        self
    }

    /// One of the target's stream slots, for a call that is a stream
    /// (`subscriptions/listen`), and the guard of its lifetime timer.
    pub(crate) fn stream(slot: OwnedSemaphorePermit, timer: DropGuard) -> Slots {
        Slots {
            _target: Some(slot),
            _client: None,
            _stream_timer: Some(timer),
            _principal: None,
        }
    }
}

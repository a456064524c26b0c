//! [`Slots`]: the limits a call holds while it runs.

use tokio::sync::OwnedSemaphorePermit;

use super::client::ClientCallGuard;

/// Slots held for the life of a call (freed when dropped).
#[derive(Debug, Default)]
pub(crate) struct Slots {
    _target: Option<OwnedSemaphorePermit>,
    _client: Option<ClientCallGuard>,
}

impl Slots {
    /// One of the target's call slots and, for a session, one of its own.
    pub(crate) fn new(target: OwnedSemaphorePermit, client: Option<ClientCallGuard>) -> Slots {
        Slots {
            _target: Some(target),
            _client: client,
        }
    }
}

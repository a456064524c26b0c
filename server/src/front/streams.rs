//! What every long-lived stream holds: one of its target's stream slots
//! (apart from the call budget) and a stop that fires at gateway shutdown
//! or when the stream has lived `max_stream_lifetime`, whichever is first.

use std::time::Duration;

use tokio::sync::OwnedSemaphorePermit;
use tokio_util::sync::{CancellationToken, DropGuard};

use super::refusals::streams_busy;
use crate::targets::Target;
use crate::web::errors::ApiError;

/// Held by an open stream; frees its slot and its lifetime timer when
/// dropped (the stream ended or the client went away).
#[derive(Debug)]
pub(crate) struct StreamHold {
    /// The target's stream slot.
    pub(crate) slot: OwnedSemaphorePermit,
    /// Ends the lifetime timer.
    pub(crate) timer: DropGuard,
}

/// A stream slot of `target` and the token that ends the stream: at
/// `shutdown`, or after the target's `max_stream_lifetime`. 503 if every
/// slot is taken.
pub(crate) fn open_stream(
    target: &Target,
    shutdown: &CancellationToken,
) -> Result<(CancellationToken, StreamHold), ApiError> {
    let slot = target
        .try_stream_slot()
        .ok_or_else(|| streams_busy(target))?;
    let (stop, timer) = lifetime(shutdown, target.limits.max_stream_lifetime);
    Ok((stop, StreamHold { slot, timer }))
}

/// A child of `shutdown` cancelled after `lifetime`; dropping the guard
/// cancels it too, which ends the timer task at once.
fn lifetime(shutdown: &CancellationToken, lifetime: Duration) -> (CancellationToken, DropGuard) {
    let stop = shutdown.child_token();
    let timer = stop.clone();
    tokio::spawn(async move {
        tokio::select! {
            () = tokio::time::sleep(lifetime) => timer.cancel(),
            () = timer.cancelled() => {}
        }
    });
    (stop.clone(), stop.drop_guard())
}

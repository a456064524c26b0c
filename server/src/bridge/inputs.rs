//! Multi round-trip requests (2026-07-28) for legacy backends: a server
//! request (`roots/list`, `sampling/createMessage`, `elicitation/create`)
//! that arrives during a stateless client's call is carried to that client
//! as an `input_required` result; the backend call stays parked until the
//! client retries with `inputResponses` and the gateway's `requestState`,
//! then the answer goes to the backend and the retry gets the call's
//! result.

use std::collections::HashMap;
use std::sync::Arc;

use parking_lot::Mutex;
use std::time::Duration;

use mcpod_tokio::{CallStream, ServerRequestKey};
use serde_json::value::RawValue;
use tracing::debug;

use super::slots::Slots;
use crate::targets::{Backend, no_answer};

/// Prefix of the `requestState` values the gateway issues.
pub(crate) const STATE_PREFIX: &str = "mcpod-input.";
/// The key of the one input request in an `inputRequests` object.
pub(crate) const INPUT_KEY: &str = "mcpod";
/// How long a parked call waits for the client's retry.
const PARK_TTL: Duration = Duration::from_secs(120);
/// Calls parked at once, gateway-wide; beyond it the backend's request is
/// refused instead.
const MAX_PARKED: usize = 4096;

/// A backend call waiting for a stateless client's input.
#[derive(Debug)]
pub(crate) struct Parked {
    /// The call.
    pub(crate) stream: CallStream,
    /// Its backend.
    pub(crate) backend: Arc<Backend>,
    /// Its target's name: a retry on another target does not resume it.
    pub(crate) target: String,
    /// Its method.
    pub(crate) method: String,
    /// Its call slots, still held.
    pub(crate) slots: Slots,
    /// The server request awaiting the answer.
    pub(crate) key: ServerRequestKey,
}

/// The parked calls, by `requestState` token.
#[derive(Debug, Default)]
pub(crate) struct Inputs {
    parked: Mutex<HashMap<String, Parked>>,
}

impl Inputs {
    /// Parks a call; returns the `requestState` to give the client, or the
    /// call back if too many are parked. A call not resumed within
    /// [`PARK_TTL`] is answered with an error at the backend and dropped
    /// (which cancels it).
    pub(crate) fn park(self: &Arc<Self>, parked: Parked) -> Result<String, Box<Parked>> {
        let state = format!("{STATE_PREFIX}{}", crate::ids::random_hex(16));
        {
            let mut map = self.parked.lock();
            if map.len() >= MAX_PARKED {
                return Err(Box::new(parked));
            }
            map.insert(state.clone(), parked);
        }
        let store = Arc::downgrade(self);
        let expiring = state.clone();
        tokio::spawn(async move {
            tokio::time::sleep(PARK_TTL).await;
            let Some(store) = store.upgrade() else { return };
            let Some(p) = store.parked.lock().remove(&expiring) else {
                return;
            };
            debug!(target = %p.target, "parked call expired: the client never retried");
            let _ = p
                .backend
                .upstream
                .respond(p.key, no_answer("the client did not retry in time"))
                .await;
        });
        Ok(state)
    }

    /// Takes the call of `target` parked under `state`, if any.
    pub(crate) fn take(&self, target: &str, state: &str) -> Option<Parked> {
        let mut map = self.parked.lock();
        match map.get(state) {
            Some(p) if p.target == target => map.remove(state),
            _ => None,
        }
    }
}

/// The `input_required` result frame for request `id_json`.
pub(crate) fn input_required_frame(
    id_json: &str,
    method: &str,
    params: Option<&RawValue>,
    state: &str,
) -> Vec<u8> {
    use mcpod_core::json::{object, result_frame, string};
    let request = object(&[
        ("method", &string(method)),
        ("params", params.map_or("{}", RawValue::get)),
    ]);
    let result = object(&[
        ("resultType", "\"input_required\""),
        ("inputRequests", &object(&[(INPUT_KEY, &request)])),
        ("requestState", &string(state)),
    ]);
    match RawValue::from_string(result) {
        Ok(result) => result_frame(id_json, &result),
        Err(_) => mcpod_core::json::error_frame(
            id_json,
            mcpod_core::envelope::INTERNAL_ERROR,
            "the backend's request could not be carried to the client",
            None,
        ),
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;

    #[test]
    fn input_required_frame_carries_the_request_and_state() {
        let params = RawValue::from_string(r#"{"x":[1]}"#.into()).unwrap();
        let frame = input_required_frame("7", "roots/list", Some(&params), "mcpod-input.x");
        let v: serde_json::Value = serde_json::from_slice(&frame).unwrap();
        assert_eq!(v["id"], 7);
        assert_eq!(v["result"]["resultType"], "input_required");
        assert_eq!(
            v["result"]["inputRequests"][INPUT_KEY]["method"],
            "roots/list"
        );
        assert_eq!(v["result"]["inputRequests"][INPUT_KEY]["params"]["x"][0], 1);
        assert_eq!(v["result"]["requestState"], "mcpod-input.x");
    }
}

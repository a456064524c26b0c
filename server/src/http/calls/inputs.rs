//! Multi round-trip requests (2026-07-28) for legacy backends: a server
//! request (`roots/list`, `sampling/createMessage`, `elicitation/create`)
//! that arrives during a stateless client's call is carried to that client
//! as an `input_required` result; the backend call stays parked until the
//! client retries with `inputResponses` and the gateway's `requestState`,
//! then the answer goes to the backend and the retry gets the call's
//! result.

use std::collections::HashMap;
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::Duration;

use mcpod_tokio::{CallStream, OwnedOutcome, ServerRequestKey, Upstream};
use rand::RngCore;
use serde::Deserialize;
use serde_json::value::RawValue;
use tracing::debug;

use super::Slots;
use crate::targets::Target;

/// Prefix of the `requestState` values the gateway issues.
pub const STATE_PREFIX: &str = "mcpod-input.";
/// The key of the one input request in an `inputRequests` object.
pub const INPUT_KEY: &str = "mcpod";
/// How long a parked call waits for the client's retry.
pub const PARK_TTL: Duration = Duration::from_secs(120);

fn lock<T>(m: &Mutex<T>) -> MutexGuard<'_, T> {
    m.lock().unwrap_or_else(|e| e.into_inner())
}

/// Which server requests a stateless client said it can answer, from its
/// `_meta["io.modelcontextprotocol/clientCapabilities"]`.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct ClientCaps {
    /// `roots`.
    pub roots: bool,
    /// `sampling`.
    pub sampling: bool,
    /// `elicitation`.
    pub elicitation: bool,
}

impl ClientCaps {
    /// Reads the capabilities object (raw JSON).
    pub fn from_raw(caps: Option<&RawValue>) -> ClientCaps {
        #[derive(Deserialize)]
        struct Keys<'a> {
            #[serde(borrow, default)]
            roots: Option<&'a RawValue>,
            #[serde(borrow, default)]
            sampling: Option<&'a RawValue>,
            #[serde(borrow, default)]
            elicitation: Option<&'a RawValue>,
        }
        let present = |v: Option<&RawValue>| v.is_some_and(|v| v.get() != "null");
        caps.and_then(|c| serde_json::from_str::<Keys<'_>>(c.get()).ok())
            .map(|k| ClientCaps {
                roots: present(k.roots),
                sampling: present(k.sampling),
                elicitation: present(k.elicitation),
            })
            .unwrap_or_default()
    }

    /// Whether the client can answer `method`.
    pub fn can_answer(&self, method: &str) -> bool {
        match method {
            "roots/list" => self.roots,
            "sampling/createMessage" => self.sampling,
            "elicitation/create" => self.elicitation,
            _ => false,
        }
    }
}

/// A backend call waiting for a stateless client's input.
#[derive(Debug)]
pub struct Parked {
    /// The call.
    pub stream: CallStream,
    /// Its target.
    pub target: Arc<Target>,
    /// Its backend.
    pub upstream: Upstream,
    /// Its call slots, still held.
    pub slots: Slots,
    /// The server request awaiting the answer.
    pub key: ServerRequestKey,
}

/// Parked calls of one target, by `requestState` token.
#[derive(Debug, Default)]
pub struct InputStore {
    parked: Mutex<HashMap<String, Parked>>,
}

impl InputStore {
    /// Parks a call; returns the `requestState` to give the client. A call
    /// not resumed within [`PARK_TTL`] is answered with an error at the
    /// backend and dropped (which cancels it).
    pub fn park(self: &Arc<Self>, parked: Parked) -> String {
        let mut bytes = [0u8; 16];
        rand::rng().fill_bytes(&mut bytes);
        let token: String = bytes.iter().map(|b| format!("{b:02x}")).collect();
        let state = format!("{STATE_PREFIX}{token}");
        lock(&self.parked).insert(state.clone(), parked);
        let store = Arc::downgrade(self);
        let expiring = state.clone();
        tokio::spawn(async move {
            tokio::time::sleep(PARK_TTL).await;
            let Some(store) = store.upgrade() else { return };
            let Some(p) = lock(&store.parked).remove(&expiring) else {
                return;
            };
            debug!(target = %p.target.name(), "parked call expired: the client never retried");
            let _ = p
                .upstream
                .respond(p.key, no_answer("the client did not retry in time"))
                .await;
        });
        state
    }

    /// Takes the call parked under `state`, if any.
    pub fn take(&self, state: &str) -> Option<Parked> {
        lock(&self.parked).remove(state)
    }

    /// Parked calls now.
    pub fn len(&self) -> usize {
        lock(&self.parked).len()
    }

    /// Whether none is parked.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }
}

/// An error answer to a server request.
pub fn no_answer(why: &str) -> OwnedOutcome {
    OwnedOutcome::Error {
        code: mcpod_core::envelope::INTERNAL_ERROR,
        message: why.to_owned(),
        data: None,
    }
}

/// The `input_required` result frame for request `id_json`.
pub fn input_required_frame(
    id_json: &str,
    method: &str,
    params: Option<&RawValue>,
    state: &str,
) -> Vec<u8> {
    let method = serde_json::to_string(method).unwrap_or_else(|_| "\"\"".into());
    let state = serde_json::to_string(state).unwrap_or_else(|_| "\"\"".into());
    let params = params.map(RawValue::get).unwrap_or("{}");
    format!(
        r#"{{"jsonrpc":"2.0","id":{id_json},"result":{{"resultType":"input_required","inputRequests":{{"{INPUT_KEY}":{{"method":{method},"params":{params}}}}},"requestState":{state}}}}}"#
    )
    .into_bytes()
}

/// A response frame re-addressed to another request id (the retry's).
pub fn readdress(frame: &[u8], id_json: &str) -> Vec<u8> {
    match mcpod_core::Message::parse(frame) {
        Ok(mcpod_core::Message::Response { result, .. }) => {
            mcpod_core::json::result_frame(id_json, result)
        }
        Ok(mcpod_core::Message::Error { error, .. }) => format!(
            r#"{{"jsonrpc":"2.0","id":{id_json},"error":{}}}"#,
            error.get()
        )
        .into_bytes(),
        _ => mcpod_core::json::error_frame(
            id_json,
            mcpod_core::envelope::INTERNAL_ERROR,
            "the backend's answer could not be read",
            None,
        ),
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;

    #[test]
    fn caps_and_frames() {
        let raw = RawValue::from_string(r#"{"roots":{},"sampling":null}"#.into()).unwrap();
        let caps = ClientCaps::from_raw(Some(&raw));
        assert!(caps.can_answer("roots/list"));
        assert!(!caps.can_answer("sampling/createMessage"));
        assert!(!caps.can_answer("ping"));

        let frame = input_required_frame("7", "roots/list", None, "mcpod-input.x");
        let v: serde_json::Value = serde_json::from_slice(&frame).unwrap();
        assert_eq!(v["id"], 7);
        assert_eq!(v["result"]["resultType"], "input_required");
        assert_eq!(
            v["result"]["inputRequests"][INPUT_KEY]["method"],
            "roots/list"
        );
        assert_eq!(v["result"]["requestState"], "mcpod-input.x");

        assert_eq!(
            readdress(br#"{"jsonrpc":"2.0","id":1,"result":{"a":1.50}}"#, "\"r\""),
            br#"{"jsonrpc":"2.0","id":"r","result":{"a":1.50}}"#
        );
        assert_eq!(
            readdress(
                br#"{"jsonrpc":"2.0","id":1,"error":{"code":-1,"message":"m","data":[1]}}"#,
                "2"
            ),
            br#"{"jsonrpc":"2.0","id":2,"error":{"code":-1,"message":"m","data":[1]}}"#
        );
    }
}

//! Multi round-trip requests (2026-07-28) for legacy backends: the server
//! requests (`roots/list`, `sampling/createMessage`, `elicitation/create`)
//! that a legacy backend sends during a stateless client's call — one, or
//! several at once — are carried to that client as one `input_required`
//! result; the backend call stays parked until the client retries with
//! `inputResponses` and the gateway's `requestState`, then the answers go
//! to the backend and the retry gets the call's result (or the next round).
//!
//! The `requestState` is `mcpod-input.` and a token sealed (authenticated
//! encryption, [`Sealer`]) under the gateway's key — the replicas' shared
//! `[sessions] key_file`, or a key of this process — that names the
//! replica and the parked call and binds them to the target and the
//! principal: a tampered or foreign state is refused; an authentic one
//! whose call is gone (answered, expired) starts the request afresh; one
//! whose call is parked on another replica is refused with an error that
//! tells the client to start the request again (the call cannot move).

use std::collections::HashMap;
use std::sync::Arc;
use std::time::Duration;

use mcpod_tokio::{CallStream, ServerRequestKey};
use parking_lot::Mutex;
use serde::{Deserialize, Serialize};
use serde_json::value::RawValue;
use tracing::debug;

use super::slots::Slots;
use crate::ids::{Principal, Sealer, Unsealed, unix_now};
use crate::targets::{Backend, no_answer};

/// Prefix of the `requestState` values the gateway issues.
pub(crate) const STATE_PREFIX: &str = "mcpod-input.";
/// The `_meta` key by which a legacy backend may name the input key of a
/// server request (a dual-era server keeping its keys across the bridge).
pub(crate) const INPUT_KEY_HINT: &str = "mcpod/inputKey";
/// How long a parked call waits for the client's retry.
const PARK_TTL: Duration = Duration::from_secs(120);
/// Calls parked at once, gateway-wide; beyond it the backend's request is
/// refused instead.
const MAX_PARKED: usize = 4096;
/// What a gateway-made `requestState` is sealed for (a session id does not
/// open as one).
const PURPOSE: &[u8] = b"mcpod requestState v1";
/// How long a `requestState` stays authentic beyond its call's
/// [`PARK_TTL`] (then it is as good as spent: the request starts afresh).
const STATE_SLACK: Duration = Duration::from_secs(60);

/// One server request carried to the client under `key`.
#[derive(Debug)]
pub(crate) struct Question {
    /// Its key in `inputRequests`.
    pub(crate) key: String,
    /// The backend's request.
    pub(crate) request: ServerRequestKey,
    /// Its method.
    pub(crate) method: String,
    /// Its params.
    pub(crate) params: Option<Box<RawValue>>,
}

/// A backend call waiting for a stateless client's input.
#[derive(Debug)]
pub(crate) struct Parked {
    /// The call.
    pub(crate) stream: CallStream,
    /// Its backend.
    pub(crate) backend: Arc<Backend>,
    /// Its target's name: a retry on another target does not resume it.
    pub(crate) target: String,
    /// Who it is for: another principal's retry does not resume it.
    pub(crate) principal: Principal,
    /// Its method.
    pub(crate) method: String,
    /// Its call slots, still held.
    pub(crate) slots: Slots,
    /// The questions awaiting answers.
    pub(crate) questions: Vec<Question>,
}

/// Answers each of `questions` at `backend` with an error saying `why`
/// (the client will not be asked them), so no backend request is left
/// waiting.
pub(crate) async fn refuse(backend: &Backend, questions: Vec<Question>, why: &str) {
    for q in questions {
        let _ = backend.upstream.respond(q.request, no_answer(why)).await;
    }
}

/// What a retry's `requestState` names.
#[derive(Debug)]
pub(crate) enum Retry {
    /// The parked call, to resume.
    Parked(Box<Parked>),
    /// An authentic state whose call is gone: start the request afresh.
    Gone,
    /// An authentic state whose call is parked on another replica (or was,
    /// before that replica went away): the client must start again.
    Elsewhere,
    /// Not a state this gateway made for this target.
    Forged,
}

/// What a sealed `requestState` says.
#[derive(Serialize, Deserialize)]
struct State {
    /// The replica the call is parked on.
    r: String,
    /// The parked call's token.
    k: String,
    /// The target.
    t: String,
    /// The principal's seal tag.
    p: String,
}

/// The parked calls, by token.
#[derive(Debug)]
pub(crate) struct Inputs {
    parked: Mutex<HashMap<String, Parked>>,
    seal: Arc<Sealer>,
    /// This replica, in the states it issues.
    replica: String,
}

impl Inputs {
    /// No parked calls; states sealed with `seal`.
    pub(crate) fn new(seal: Arc<Sealer>) -> Self {
        Inputs {
            parked: Mutex::new(HashMap::new()),
            seal,
            replica: crate::ids::random_hex(8),
        }
    }

    fn state(&self, token: &str, target: &str, principal: &Principal) -> String {
        let state = State {
            r: self.replica.clone(),
            k: token.to_owned(),
            t: target.to_owned(),
            p: principal.seal_tag(),
        };
        let payload = serde_json::to_vec(&state).unwrap_or_default();
        let expires = unix_now() + (PARK_TTL + STATE_SLACK).as_secs();
        format!(
            "{STATE_PREFIX}{}",
            self.seal.seal(PURPOSE, &payload, expires)
        )
    }

    /// Parks a call; returns the `input_required` frame for the client's
    /// request `id_json`, whose `requestState` names the parked call, or the
    /// call back if too many are parked. A call not resumed within
    /// [`PARK_TTL`] gets errors for its questions and is dropped (which
    /// cancels it).
    pub(crate) fn park(
        self: &Arc<Self>,
        parked: Parked,
        id_json: &str,
    ) -> Result<Vec<u8>, Box<Parked>> {
        let token = crate::ids::random_hex(16);
        let state = self.state(&token, &parked.target, &parked.principal);
        let frame = input_required_frame(id_json, &parked.questions, &state);
        {
            let mut map = self.parked.lock();
            if map.len() >= MAX_PARKED {
                return Err(Box::new(parked));
            }
            map.insert(token.clone(), parked);
        }
        let store = Arc::downgrade(self);
        tokio::spawn(async move {
            tokio::time::sleep(PARK_TTL).await;
            let Some(store) = store.upgrade() else { return };
            let Some(p) = store.parked.lock().remove(&token) else {
                return;
            };
            debug!(target = %p.target, "parked call expired: the client never retried");
            refuse(&p.backend, p.questions, "the client did not retry in time").await;
        });
        Ok(frame)
    }

    /// What the `requestState` of `principal`'s retry on `target` names
    /// (a state issued to another principal is as good as forged).
    pub(crate) fn take(&self, target: &str, principal: &Principal, state: &str) -> Retry {
        let Some(sealed) = state.strip_prefix(STATE_PREFIX) else {
            return Retry::Forged;
        };
        let payload = match self.seal.open(PURPOSE, sealed, unix_now()) {
            Ok(p) => p,
            // Past its call's life wherever it was parked.
            Err(Unsealed::Expired) => return Retry::Gone,
            Err(Unsealed::Bad) => return Retry::Forged,
        };
        let Ok(state) = serde_json::from_slice::<State>(&payload) else {
            return Retry::Forged;
        };
        if state.t != target || state.p != principal.seal_tag() {
            return Retry::Forged;
        }
        if state.r != self.replica {
            return Retry::Elsewhere;
        }
        match self.parked.lock().remove(&state.k) {
            Some(p) => Retry::Parked(Box::new(p)),
            None => Retry::Gone,
        }
    }
}

/// The `input_required` result frame for request `id_json`.
pub(crate) fn input_required_frame(id_json: &str, questions: &[Question], state: &str) -> Vec<u8> {
    use mcpod_core::json::{object, result_frame, string};
    let requests: Vec<String> = questions
        .iter()
        .map(|q| {
            object(&[
                ("method", &string(&q.method)),
                ("params", q.params.as_deref().map_or("{}", RawValue::get)),
            ])
        })
        .collect();
    let keyed: Vec<(&str, &str)> = questions
        .iter()
        .zip(&requests)
        .map(|(q, r)| (q.key.as_str(), r.as_str()))
        .collect();
    let result = object(&[
        ("resultType", "\"input_required\""),
        ("inputRequests", &object(&keyed)),
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

/// The key a question goes under: the backend's hint in the request's
/// `_meta` ([`INPUT_KEY_HINT`]), else `mcpod-{n}`; and the params without
/// the hint.
pub(crate) fn question_key(params: Option<&RawValue>, n: usize) -> (String, Option<Box<RawValue>>) {
    #[derive(serde::Deserialize)]
    struct WithMeta<'a> {
        #[serde(rename = "_meta", borrow)]
        meta: Option<Hint<'a>>,
    }
    #[derive(serde::Deserialize)]
    struct Hint<'a> {
        #[serde(rename = "mcpod/inputKey", borrow)]
        key: Option<std::borrow::Cow<'a, str>>,
    }
    let fallback = format!("mcpod-{n}");
    let Some(params) = params else {
        return (fallback, None);
    };
    let hint = serde_json::from_str::<WithMeta<'_>>(params.get())
        .ok()
        .and_then(|w| w.meta?.key.map(|k| k.into_owned()))
        .filter(|k| !k.is_empty());
    let Some(key) = hint else {
        return (fallback, Some(params.to_owned()));
    };
    let stripped = strip_hint(params.get()).and_then(|p| RawValue::from_string(p).ok());
    (key, stripped.or_else(|| Some(params.to_owned())))
}

fn strip_hint(params: &str) -> Option<String> {
    use mcpod_core::json::edit_object;
    #[derive(serde::Deserialize)]
    struct WithMeta<'a> {
        #[serde(rename = "_meta", borrow)]
        meta: Option<&'a RawValue>,
    }
    let meta = serde_json::from_str::<WithMeta<'_>>(params).ok()?.meta?;
    let meta = edit_object(meta.get(), &[], &[INPUT_KEY_HINT])?;
    if meta == "{}" {
        edit_object(params, &[], &["_meta"])
    } else {
        edit_object(params, &[("_meta", &meta)], &[])
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;

    #[test]
    fn the_frame_carries_every_question_under_its_key() {
        let params = RawValue::from_string(r#"{"x":[1]}"#.into()).unwrap();
        let questions = vec![
            Question {
                key: "user_name".into(),
                request: ServerRequestKey::from_wire_id(1),
                method: "elicitation/create".into(),
                params: Some(params),
            },
            Question {
                key: "mcpod-2".into(),
                request: ServerRequestKey::from_wire_id(2),
                method: "roots/list".into(),
                params: None,
            },
        ];
        let frame = input_required_frame("7", &questions, "mcpod-input.x.y");
        let v: serde_json::Value = serde_json::from_slice(&frame).unwrap();
        assert_eq!(v["id"], 7);
        assert_eq!(v["result"]["resultType"], "input_required");
        assert_eq!(
            v["result"]["inputRequests"]["user_name"]["method"],
            "elicitation/create"
        );
        assert_eq!(
            v["result"]["inputRequests"]["user_name"]["params"]["x"][0],
            1
        );
        assert_eq!(
            v["result"]["inputRequests"]["mcpod-2"]["method"],
            "roots/list"
        );
        assert_eq!(v["result"]["requestState"], "mcpod-input.x.y");
    }

    #[test]
    fn a_backend_may_name_the_key_and_the_hint_does_not_reach_the_client() {
        let p =
            RawValue::from_string(r#"{"message":"m","_meta":{"mcpod/inputKey":"confirm"}}"#.into())
                .unwrap();
        let (key, params) = question_key(Some(&p), 1);
        assert_eq!(key, "confirm");
        assert_eq!(params.unwrap().get(), r#"{"message":"m"}"#);
        let p = RawValue::from_string(r#"{"message":"m"}"#.into()).unwrap();
        assert_eq!(question_key(Some(&p), 3).0, "mcpod-3");
    }

    fn inputs(seal: &Arc<Sealer>) -> Inputs {
        Inputs::new(seal.clone())
    }

    #[tokio::test]
    async fn a_tampered_or_foreign_state_is_refused_and_a_spent_one_starts_afresh() {
        use crate::ids::SealKey;
        let key = SealKey::random();
        let seal = Arc::new(Sealer::new(&key, &[]));
        let inputs = inputs(&seal);
        let token = "00".repeat(16);
        let g = Principal::of_token("token-of-g-0123456789");
        let e = Principal::of_token("token-of-e-0123456789");
        let good = inputs.state(&token, "t", &g);
        assert!(good.starts_with(STATE_PREFIX));
        assert!(!good.contains(&token), "the state is sealed: {good}");
        assert!(matches!(inputs.take("t", &g, &good), Retry::Gone));
        assert!(matches!(inputs.take("other", &g, &good), Retry::Forged));
        // Issued to G, redeemed by E: as good as forged.
        assert!(matches!(inputs.take("t", &e, &good), Retry::Forged));
        let mut tampered = good.clone().into_bytes();
        let last = tampered.len() - 3;
        tampered[last] = if tampered[last] == b'A' { b'B' } else { b'A' };
        let tampered = String::from_utf8(tampered).unwrap();
        assert!(matches!(inputs.take("t", &g, &tampered), Retry::Forged));
        assert!(matches!(
            inputs.take("t", &g, "mcpod-input.nodot"),
            Retry::Forged
        ));
        // Another gateway, with a key of its own: forged.
        let other_gateway = Inputs::new(Arc::new(Sealer::new(&SealKey::random(), &[])));
        assert!(matches!(other_gateway.take("t", &g, &good), Retry::Forged));
        // Another replica sharing the key: authentic, parked elsewhere.
        let replica = Inputs::new(Arc::new(Sealer::new(&key, &[])));
        assert!(matches!(replica.take("t", &g, &good), Retry::Elsewhere));
        assert!(matches!(replica.take("t", &e, &good), Retry::Forged));
    }
}

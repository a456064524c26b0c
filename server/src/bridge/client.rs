//! [`Client`]: a legacy client session as the bridge sees it — the owner tag
//! its calls carry, its calls in flight, its standing stream (the HTTP GET
//! stream) and the server requests forwarded to it.
//!
//! A server request goes to the client under an id made from its
//! [`ServerRequestKey`] ([`ServerRequestKey::wire_id`]), so the answer
//! names the key again: there is no second id space, only the set of keys
//! this client holds (an answer for a key it does not hold is ignored).

use std::collections::HashSet;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering};

use parking_lot::Mutex;

use mcpod_core::Owner;
use mcpod_tokio::{OwnedOutcome, ServerRequestKey};
use serde_json::value::RawValue;
use tokio::sync::mpsc;
use tracing::debug;

use crate::targets::{Backend, Member, no_answer};

/// Frames buffered for a standing stream whose client reads slowly.
const STREAM_BUFFER: usize = 256;

static NEXT_OWNER: AtomicU64 = AtomicU64::new(1);

/// A legacy client session, attached to the backend its calls go to.
#[derive(Debug)]
pub(crate) struct Client {
    owner: Owner,
    backend: Arc<Backend>,
    calls: AtomicUsize,
    stream: Mutex<Option<mpsc::Sender<Vec<u8>>>>,
    held: Mutex<HashSet<ServerRequestKey>>,
}

impl Client {
    /// A client of `backend`, attached to it.
    pub(crate) fn attach(backend: Arc<Backend>) -> Arc<Client> {
        let client = Arc::new(Client {
            owner: Owner(NEXT_OWNER.fetch_add(1, Ordering::Relaxed)),
            backend,
            calls: AtomicUsize::new(0),
            stream: Mutex::new(None),
            held: Mutex::new(HashSet::new()),
        });
        let member: Arc<dyn Member> = client.clone();
        client.backend.attach(Arc::downgrade(&member));
        client
    }

    /// The owner tag of its calls.
    pub(crate) fn owner(&self) -> Owner {
        self.owner
    }

    /// The backend its calls go to.
    pub(crate) fn backend(&self) -> &Arc<Backend> {
        &self.backend
    }

    /// Calls in flight now.
    pub(crate) fn calls_in_flight(&self) -> usize {
        self.calls.load(Ordering::Relaxed)
    }

    /// Reserves a call slot, if fewer than `max` are in use.
    pub(crate) fn try_start_call(self: &Arc<Self>, max: usize) -> Option<ClientCallGuard> {
        self.calls
            .fetch_update(Ordering::AcqRel, Ordering::Relaxed, |n| {
                (n < max).then_some(n + 1)
            })
            .ok()
            .map(|_| ClientCallGuard {
                client: self.clone(),
            })
    }

    /// Opens the standing stream, replacing an older one (which ends).
    pub(crate) fn open_stream(&self) -> mpsc::Receiver<Vec<u8>> {
        let (tx, rx) = mpsc::channel(STREAM_BUFFER);
        *self.stream.lock() = Some(tx);
        rx
    }

    /// Whether a standing stream is open.
    pub(crate) fn has_stream(&self) -> bool {
        self.stream
            .lock()
            .as_ref()
            .is_some_and(|tx| !tx.is_closed())
    }

    /// Sends a frame on the standing stream; false if none is open or it is
    /// full.
    pub(crate) fn push(&self, frame: Vec<u8>) -> bool {
        match self.stream.lock().as_ref() {
            Some(tx) => tx.try_send(frame).is_ok(),
            None => false,
        }
    }

    /// Takes a server request for this client: the request frame to send
    /// it, with an id that names `key`.
    pub(crate) fn forward(
        &self,
        key: ServerRequestKey,
        method: &str,
        params: Option<&RawValue>,
    ) -> Vec<u8> {
        self.held.lock().insert(key);
        mcpod_core::json::request_frame(&key.wire_id().to_string(), method, params)
    }

    /// Forgets a server request that could not be delivered.
    pub(crate) fn forget(&self, key: ServerRequestKey) {
        self.held.lock().remove(&key);
    }

    /// The client answered request `id_json`: passes the answer on, if the
    /// id names a request this client holds. Returns whether it did.
    pub(crate) async fn answer(&self, id_json: &str, outcome: OwnedOutcome) -> bool {
        let key = id_json
            .trim()
            .parse::<u64>()
            .ok()
            .map(ServerRequestKey::from_wire_id);
        let Some(key) = key.filter(|k| self.held.lock().remove(k)) else {
            debug!(
                id = id_json,
                "answer to an unknown (or withdrawn) server request ignored"
            );
            return false;
        };
        if let Err(e) = self.backend.upstream.respond(key, outcome).await {
            debug!(error = %e, "answer to a server request not delivered");
        }
        true
    }

    /// Ends the client: its stream closes, and the server requests it held
    /// are answered with an error.
    pub(crate) async fn close(&self) {
        *self.stream.lock() = None;
        let held: Vec<ServerRequestKey> = self.held.lock().drain().collect();
        for key in held {
            let _ = self
                .backend
                .upstream
                .respond(key, no_answer("the client session ended before answering"))
                .await;
        }
    }
}

impl Member for Client {
    fn owner(&self) -> Option<Owner> {
        Some(self.owner)
    }

    fn notify(&self, _method: &str, frame: &[u8]) -> bool {
        self.push(frame.to_vec())
    }

    fn offer(
        &self,
        _backend: &Backend,
        key: ServerRequestKey,
        method: &str,
        params: Option<&RawValue>,
    ) -> bool {
        let frame = self.forward(key, method, params);
        if self.push(frame) {
            return true;
        }
        self.forget(key);
        false
    }

    fn withdraw(&self, key: ServerRequestKey) {
        if !self.held.lock().remove(&key) {
            return;
        }
        let id = key.wire_id().to_string();
        let params = mcpod_core::json::object(&[
            ("requestId", &id),
            ("reason", "\"withdrawn by the server\""),
        ]);
        self.push(mcpod_core::json::notification_frame(
            "notifications/cancelled",
            Some(&params),
        ));
    }
}

/// Holds one of a client's call slots; frees it when dropped.
#[derive(Debug)]
pub(crate) struct ClientCallGuard {
    client: Arc<Client>,
}

impl Drop for ClientCallGuard {
    fn drop(&mut self) {
        self.client.calls.fetch_sub(1, Ordering::AcqRel);
    }
}

//! [`Client`]: a legacy client session as the bridge sees it — the owner tag
//! its calls carry, its calls in flight, what it said in `initialize`, the
//! log level it set, the resources it subscribed to, its streams (the
//! HTTP GET streams and SSE replies, with the events kept for their
//! resumption: [`super::streams`]), and the requests it was asked to
//! answer.
//!
//! A backend's server request goes to the client under an id made from its
//! [`ServerRequestKey`] ([`ServerRequestKey::wire_id`]), so the answer
//! names the key again: there is no second id space, only the set of keys
//! this client holds (an answer for a key it does not hold is ignored).
//! Requests the gateway itself makes of the client (to carry a modern
//! backend's `input_required` to it) have ids of their own, `"mcpod-g…"`.

use std::collections::{BTreeSet, HashMap, HashSet};
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering};

use bytes::Bytes;
use mcpod_core::Owner;
use mcpod_tokio::{OwnedOutcome, ServerRequestKey};
use parking_lot::Mutex;
use serde_json::value::RawValue;
use tokio::sync::{Notify, OwnedSemaphorePermit, mpsc, oneshot};
use tokio_util::sync::CancellationToken;
use tracing::debug;

use super::adapter::{Adapter, Party, Refused};
use super::caps::ClientCaps;
use super::logging::{LogLevel, passes};
use super::streams::{Attached, Next, Refusal, StreamId, StreamLimits, Streams};
use super::translate::SessionEnvelope;
use crate::targets::{Backend, Member, no_answer};

/// Requests of the gateway's own awaiting a client's answer, per client.
const MAX_ASKED: usize = 64;
/// The prefix of the ids of the gateway's own requests to clients.
const ASK_PREFIX: &str = "mcpod-g";

static NEXT_OWNER: AtomicU64 = AtomicU64::new(1);
static NEXT_ASK: AtomicU64 = AtomicU64::new(1);

/// What a client said in its `initialize`.
#[derive(Debug, Clone, Default)]
pub(crate) struct ClientHello {
    /// `capabilities`, raw.
    pub(crate) capabilities: Option<Box<RawValue>>,
    /// `clientInfo`, raw.
    pub(crate) client_info: Option<Box<RawValue>>,
}

/// A legacy client session, attached to the backend its calls go to.
#[derive(Debug)]
pub(crate) struct Client {
    owner: Owner,
    backend: Arc<Backend>,
    hello: ClientHello,
    caps: ClientCaps,
    log_level: Mutex<Option<LogLevel>>,
    subscriptions: Mutex<BTreeSet<String>>,
    calls: AtomicUsize,
    /// Its GET streams and SSE replies; a GET holds one of the target's
    /// stream slots while open.
    streams: Mutex<Streams<OwnedSemaphorePermit>>,
    /// Woken after every change of `streams`: readers and replies wait on it.
    wake: Notify,
    /// The 2024-11-05 transport's SSE stream, when the session has one
    /// (that transport has no resumption: its session ends with it).
    bound: Mutex<Option<mpsc::Sender<Vec<u8>>>>,
    /// Cancelled when the client ends: the calls carried on its SSE
    /// replies stop (they run on without a connection, to be resumed).
    ended: CancellationToken,
    held: Mutex<HashSet<ServerRequestKey>>,
    asked: Mutex<HashMap<String, oneshot::Sender<OwnedOutcome>>>,
}

impl Client {
    /// A client of `backend`, attached to it, its streams bounded by
    /// `limits`.
    pub(crate) fn attach(
        backend: Arc<Backend>,
        hello: ClientHello,
        limits: StreamLimits,
    ) -> Arc<Client> {
        let client = Arc::new(Client {
            owner: Owner(NEXT_OWNER.fetch_add(1, Ordering::Relaxed)),
            caps: ClientCaps::from_raw(hello.capabilities.as_deref()),
            hello,
            backend,
            log_level: Mutex::new(None),
            subscriptions: Mutex::new(BTreeSet::new()),
            calls: AtomicUsize::new(0),
            streams: Mutex::new(Streams::new(crate::ids::random_hex(4), limits)),
            wake: Notify::new(),
            bound: Mutex::new(None),
            ended: CancellationToken::new(),
            held: Mutex::new(HashSet::new()),
            asked: Mutex::new(HashMap::new()),
        });
        let member: Arc<dyn Member> = client.clone();
        client.backend.attach(Arc::downgrade(&member));
        Adapter::of(&client.backend).session_attached(&client.backend, true);
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

    /// The server requests it said it can answer.
    pub(crate) fn caps(&self) -> ClientCaps {
        self.caps
    }

    /// What its requests tell a modern backend in `_meta`.
    pub(crate) fn envelope(&self) -> SessionEnvelope<'_> {
        SessionEnvelope {
            capabilities: self.hello.capabilities.as_deref(),
            client_info: self.hello.client_info.as_deref(),
            log_level: self
                .log_level
                .lock()
                .map(|l| mcpod_core::json::string(l.name())),
        }
    }

    /// The level it set (`None`: it never did, and gets what the backend
    /// sends).
    pub(crate) fn log_level(&self) -> Option<LogLevel> {
        *self.log_level.lock()
    }

    /// Whether it gets a log message of `level`.
    pub(crate) fn wants_log(&self, frame: &[u8]) -> bool {
        match self.log_level() {
            None => true,
            Some(wanted) => passes(wanted, LogLevel::of_message(frame)),
        }
    }

    /// `logging/setLevel`: remembered, and a legacy backend set to it if it
    /// is the most verbose level wanted.
    pub(crate) async fn set_log_level(&self, level: LogLevel) -> Result<(), Refused> {
        *self.log_level.lock() = Some(level);
        Adapter::of(&self.backend)
            .want_level(&self.backend, Party::Session(self.owner), Some(level))
            .await
    }

    /// `resources/subscribe`.
    pub(crate) async fn subscribe(&self, uri: &str) -> Result<(), Refused> {
        if !self.subscriptions.lock().insert(uri.to_owned()) {
            return Ok(()); // already subscribed: idempotent
        }
        let result = Adapter::of(&self.backend)
            .subscribe(&self.backend, uri)
            .await;
        if result.is_err() {
            self.subscriptions.lock().remove(uri);
        }
        result
    }

    /// `resources/unsubscribe`.
    pub(crate) async fn unsubscribe(&self, uri: &str) -> Result<(), Refused> {
        if !self.subscriptions.lock().remove(uri) {
            return Ok(());
        }
        Adapter::of(&self.backend)
            .unsubscribe(&self.backend, uri)
            .await
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

    /// Opens a GET stream (with a priming event if `prime`), holding a
    /// slot from `slot` while it is read.
    pub(crate) fn open_standing(
        &self,
        prime: bool,
        slot: impl FnOnce() -> Option<OwnedSemaphorePermit>,
    ) -> Result<Attached, Refusal> {
        let opened = self.streams.lock().open_standing(prime, slot);
        self.wake.notify_waiters();
        opened
    }

    /// A GET with `Last-Event-ID`: the stream it names, read from there on.
    pub(crate) fn resume(
        &self,
        last_event_id: &str,
        slot: impl FnOnce() -> Option<OwnedSemaphorePermit>,
    ) -> Result<Attached, Refusal> {
        let resumed = self.streams.lock().resume(last_event_id, slot);
        // A reader replaced by this one ends.
        self.wake.notify_waiters();
        resumed
    }

    /// Opens the SSE reply stream of one of its calls (with a priming
    /// event if `prime`).
    pub(crate) fn open_reply(&self, prime: bool) -> Option<Attached> {
        self.streams.lock().open_reply(prime)
    }

    /// Adds a frame to one of its streams: its sequence number, or `None`
    /// when it is not kept.
    pub(crate) fn append(&self, stream: StreamId, frame: Vec<u8>) -> Option<u64> {
        let seq = self.streams.lock().append(stream, Bytes::from(frame));
        self.wake.notify_waiters();
        seq
    }

    /// A reply stream got its response.
    pub(crate) fn finish(&self, stream: StreamId) {
        self.streams.lock().finish(stream);
        self.wake.notify_waiters();
    }

    /// What a reader of `stream` sends next (see [`Streams::next`]).
    pub(crate) fn next_event(&self, stream: StreamId, generation: u64, cursor: u64) -> Next {
        let next = self.streams.lock().next(stream, generation, cursor);
        if matches!(next, Next::Event { .. }) {
            // A reply waiting for its reader may go on.
            self.wake.notify_waiters();
        }
        next
    }

    /// A reader of `stream` stopped.
    pub(crate) fn detach(&self, stream: StreamId, generation: u64) {
        self.streams.lock().detach(stream, generation);
        self.wake.notify_waiters();
    }

    /// Whether event `seq` of `stream` waits for its reader.
    pub(crate) fn awaits_reader(&self, stream: StreamId, seq: u64) -> bool {
        self.streams.lock().awaits_reader(stream, seq)
    }

    /// Woken after every change of its streams. Make the `notified()`
    /// future (and `enable` it) before looking, so no change is missed.
    pub(crate) fn wake(&self) -> &Notify {
        &self.wake
    }

    /// Cancelled when the client ends.
    pub(crate) fn ended(&self) -> &CancellationToken {
        &self.ended
    }

    /// Takes `stream` as its standing stream (the 2024-11-05 transport's
    /// SSE stream, opened before the session was).
    pub(crate) fn adopt_stream(&self, stream: mpsc::Sender<Vec<u8>>) {
        *self.bound.lock() = Some(stream);
    }

    /// Whether a standing stream is open (read by a client now).
    pub(crate) fn has_stream(&self) -> bool {
        let bound = self.bound.lock().as_ref().is_some_and(|tx| !tx.is_closed());
        bound || self.streams.lock().has_reader()
    }

    /// Sends a frame that no call's reply carries to a standing stream:
    /// false if there is none to take it (nor to keep it for the client's
    /// return), or the 2024-11-05 transport's stream is full.
    pub(crate) fn push(&self, frame: Vec<u8>) -> bool {
        if let Some(tx) = self.bound.lock().as_ref() {
            return tx.try_send(frame).is_ok();
        }
        let delivered = self.streams.lock().deliver(Bytes::from(frame));
        self.wake.notify_waiters();
        delivered
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

    /// A request of the gateway's own for this client: its frame, and where
    /// the answer arrives. `None` when too many await answers.
    pub(crate) fn ask(
        &self,
        method: &str,
        params: Option<&RawValue>,
    ) -> Option<(Vec<u8>, oneshot::Receiver<OwnedOutcome>)> {
        let mut asked = self.asked.lock();
        asked.retain(|_, tx| !tx.is_closed());
        if asked.len() >= MAX_ASKED {
            return None;
        }
        let id = format!("{ASK_PREFIX}{}", NEXT_ASK.fetch_add(1, Ordering::Relaxed));
        let (tx, rx) = oneshot::channel();
        let frame = mcpod_core::json::request_frame(&mcpod_core::json::string(&id), method, params);
        asked.insert(id, tx);
        Some((frame, rx))
    }

    /// The client answered request `id_json`: passes the answer on, if the
    /// id names a request this client holds. Returns whether it did.
    pub(crate) async fn answer(&self, id_json: &str, outcome: OwnedOutcome) -> bool {
        if let Ok(id) = serde_json::from_str::<String>(id_json) {
            return match self.asked.lock().remove(&id) {
                Some(tx) => tx.send(outcome).is_ok(),
                None => {
                    debug!(id, "answer to an unknown request of the gateway ignored");
                    false
                }
            };
        }
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

    /// Ends the client: its streams close (what they kept goes with them),
    /// the calls carried on its SSE replies are cancelled, the server
    /// requests it held are answered with an error, and what it asked of
    /// the backend (a log level, subscriptions) is given back.
    pub(crate) async fn close(&self) {
        *self.bound.lock() = None;
        self.streams.lock().close();
        self.ended.cancel();
        self.wake.notify_waiters();
        self.asked.lock().clear();
        let held: Vec<ServerRequestKey> = self.held.lock().drain().collect();
        for key in held {
            let _ = self
                .backend
                .upstream
                .respond(key, no_answer("the client session ended before answering"))
                .await;
        }
        let adapter = Adapter::of(&self.backend);
        let subscriptions: Vec<String> = std::mem::take(&mut *self.subscriptions.lock())
            .into_iter()
            .collect();
        for uri in subscriptions {
            let _ = adapter.unsubscribe(&self.backend, &uri).await;
        }
        let _ = adapter
            .want_level(&self.backend, Party::Session(self.owner), None)
            .await;
        adapter.session_attached(&self.backend, false);
    }
}

/// The `uri` of a `notifications/resources/updated` frame.
fn updated_uri(frame: &[u8]) -> Option<String> {
    #[derive(serde::Deserialize)]
    struct Frame {
        params: Option<Params>,
    }
    #[derive(serde::Deserialize)]
    struct Params {
        uri: Option<String>,
    }
    serde_json::from_slice::<Frame>(frame).ok()?.params?.uri
}

impl Member for Client {
    fn owner(&self) -> Option<Owner> {
        Some(self.owner)
    }

    fn notify(&self, method: &str, frame: &[u8]) -> bool {
        let wanted = match method {
            "notifications/message" => self.wants_log(frame),
            // Only to the clients subscribed to that resource.
            "notifications/resources/updated" => {
                updated_uri(frame).is_some_and(|uri| self.subscriptions.lock().contains(&uri))
            }
            _ => true,
        };
        wanted && self.push(frame.to_vec())
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

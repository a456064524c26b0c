//! Legacy client sessions (`Mcp-Session-Id`): their GET streams, their calls
//! in flight, and the per-session ids of server→client requests.

use std::collections::HashMap;
use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::{Duration, Instant};

use bytes::Bytes;
use mcpod_tokio::{OwnedOutcome, ServerRequestKey, Upstream};
use rand::RngCore;
use serde_json::value::RawValue;
use tokio::sync::mpsc;
use tokio_util::sync::CancellationToken;

use crate::http::sse;

fn lock<T>(m: &Mutex<T>) -> MutexGuard<'_, T> {
    m.lock().unwrap_or_else(|e| e.into_inner())
}

/// Events buffered for a GET stream whose client reads slowly.
const STREAM_BUFFER: usize = 256;

/// A server request forwarded to this session's client.
#[derive(Debug, Clone)]
struct Pending {
    key: ServerRequestKey,
    upstream: Upstream,
}

#[derive(Debug, Default)]
struct ServerRequests {
    by_id: HashMap<String, Pending>,
    by_key: HashMap<ServerRequestKey, String>,
}

/// One legacy client session.
#[derive(Debug)]
pub struct Session {
    /// The `Mcp-Session-Id`.
    pub id: String,
    /// The negotiated protocol revision.
    pub protocol_version: String,
    /// The backend this session's calls go to.
    pub upstream: Upstream,
    /// Whether the session owns its backend (`per_session` sharing).
    pub owns_upstream: bool,
    last_seen: Mutex<Instant>,
    get_stream: Mutex<Option<(u64, mpsc::Sender<Bytes>)>>,
    next_stream: AtomicU64,
    calls: AtomicUsize,
    in_flight: Mutex<HashMap<String, CancellationToken>>,
    server_requests: Mutex<ServerRequests>,
    next_server_request: AtomicU64,
    /// Cancelled when the session ends.
    pub closed: CancellationToken,
}

/// A random session id: 128 bits as 32 hex digits.
pub fn new_session_id() -> String {
    let mut bytes = [0u8; 16];
    rand::rng().fill_bytes(&mut bytes);
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

impl Session {
    /// A new session on `upstream`; `closed` ends it (a child of the
    /// gateway's shutdown token ends it at shutdown too).
    pub fn new(
        protocol_version: String,
        upstream: Upstream,
        owns_upstream: bool,
        closed: CancellationToken,
    ) -> Self {
        Self::with_id(
            new_session_id(),
            protocol_version,
            upstream,
            owns_upstream,
            closed,
        )
    }

    /// Like [`Session::new`], with a given id.
    pub fn with_id(
        id: String,
        protocol_version: String,
        upstream: Upstream,
        owns_upstream: bool,
        closed: CancellationToken,
    ) -> Self {
        Session {
            id,
            protocol_version,
            upstream,
            owns_upstream,
            last_seen: Mutex::new(Instant::now()),
            get_stream: Mutex::new(None),
            next_stream: AtomicU64::new(1),
            calls: AtomicUsize::new(0),
            in_flight: Mutex::new(HashMap::new()),
            server_requests: Mutex::new(ServerRequests::default()),
            next_server_request: AtomicU64::new(1),
            closed,
        }
    }

    /// Marks the session as used now.
    pub fn touch(&self) {
        *lock(&self.last_seen) = Instant::now();
    }

    /// Whether the session has been idle (no request, no open stream, no
    /// call) for `timeout`.
    pub fn is_idle(&self, timeout: Duration) -> bool {
        self.calls.load(Ordering::Relaxed) == 0
            && !self.has_stream()
            && lock(&self.last_seen).elapsed() >= timeout
    }

    /// Calls in flight now.
    pub fn calls_in_flight(&self) -> usize {
        self.calls.load(Ordering::Relaxed)
    }

    /// Reserves a call slot, if fewer than `max` are in use.
    pub fn try_start_call(self: &Arc<Self>, max: usize) -> Option<SessionCallGuard> {
        let mut current = self.calls.load(Ordering::Relaxed);
        loop {
            if current >= max {
                return None;
            }
            match self.calls.compare_exchange_weak(
                current,
                current + 1,
                Ordering::AcqRel,
                Ordering::Relaxed,
            ) {
                Ok(_) => {
                    return Some(SessionCallGuard {
                        session: self.clone(),
                        client_id: None,
                    });
                }
                Err(now) => current = now,
            }
        }
    }

    /// Whether a GET stream is open.
    pub fn has_stream(&self) -> bool {
        lock(&self.get_stream)
            .as_ref()
            .is_some_and(|(_, tx)| !tx.is_closed())
    }

    /// Opens the session's GET stream (replacing an older one, which ends).
    pub fn open_stream(&self) -> (u64, mpsc::Receiver<Bytes>) {
        let (tx, rx) = mpsc::channel(STREAM_BUFFER);
        let n = self.next_stream.fetch_add(1, Ordering::Relaxed);
        *lock(&self.get_stream) = Some((n, tx));
        (n, rx)
    }

    /// Sends a frame on the GET stream; false if none is open or it is full.
    pub fn push(&self, frame: &[u8]) -> bool {
        let guard = lock(&self.get_stream);
        match guard.as_ref() {
            Some((_, tx)) => tx.try_send(sse::event(frame)).is_ok(),
            None => false,
        }
    }

    /// Registers a server request forwarded to this client and returns the
    /// request frame to send, with this session's own id for it.
    pub fn forward_server_request(
        &self,
        upstream: &Upstream,
        key: ServerRequestKey,
        method: &str,
        params: Option<&RawValue>,
    ) -> Vec<u8> {
        let n = self.next_server_request.fetch_add(1, Ordering::Relaxed);
        let id = n.to_string();
        let mut reqs = lock(&self.server_requests);
        reqs.by_id.insert(
            id.clone(),
            Pending {
                key,
                upstream: upstream.clone(),
            },
        );
        reqs.by_key.insert(key, id.clone());
        drop(reqs);
        request_frame(&id, method, params)
    }

    /// Forgets a server request that could not be delivered.
    pub fn forget_server_request(&self, key: ServerRequestKey) {
        let mut reqs = lock(&self.server_requests);
        if let Some(id) = reqs.by_key.remove(&key) {
            reqs.by_id.remove(&id);
        }
    }

    /// The backend withdrew a server request: the `notifications/cancelled`
    /// to send this client, if it holds that request.
    pub fn withdraw_server_request(&self, key: ServerRequestKey) -> Option<Vec<u8>> {
        let mut reqs = lock(&self.server_requests);
        let id = reqs.by_key.remove(&key)?;
        reqs.by_id.remove(&id);
        Some(
            format!(
                r#"{{"jsonrpc":"2.0","method":"notifications/cancelled","params":{{"requestId":{id},"reason":"withdrawn by the server"}}}}"#
            )
            .into_bytes(),
        )
    }

    /// The client answered a server request (by this session's id for it):
    /// the backend handle to answer with.
    pub fn take_server_request(&self, id: &str) -> Option<(Upstream, ServerRequestKey)> {
        let mut reqs = lock(&self.server_requests);
        let pending = reqs.by_id.remove(id.trim())?;
        reqs.by_key.remove(&pending.key);
        Some((pending.upstream, pending.key))
    }

    /// Registers a call by the client's id, for `notifications/cancelled`.
    pub fn register_call(
        &self,
        guard: &mut SessionCallGuard,
        client_id: &str,
    ) -> CancellationToken {
        let token = CancellationToken::new();
        lock(&self.in_flight).insert(client_id.to_owned(), token.clone());
        guard.client_id = Some(client_id.to_owned());
        token
    }

    /// The client cancelled its call `client_id`; true if it was in flight.
    pub fn cancel_call(&self, client_id: &str) -> bool {
        match lock(&self.in_flight).remove(client_id.trim()) {
            Some(token) => {
                token.cancel();
                true
            }
            None => false,
        }
    }

    /// Ends the session: its streams close, its calls are cancelled, server
    /// requests it held are answered with an error, and a backend it owns is
    /// shut down.
    pub async fn close(&self) {
        self.closed.cancel();
        *lock(&self.get_stream) = None;
        for (_, token) in lock(&self.in_flight).drain() {
            token.cancel();
        }
        let pending: Vec<Pending> = {
            let mut reqs = lock(&self.server_requests);
            reqs.by_key.clear();
            reqs.by_id.drain().map(|(_, p)| p).collect()
        };
        for p in pending {
            let _ = p
                .upstream
                .respond(
                    p.key,
                    OwnedOutcome::Error {
                        code: mcpod_core::envelope::INTERNAL_ERROR,
                        message: "the client session ended before answering".into(),
                        data: None,
                    },
                )
                .await;
        }
        if self.owns_upstream {
            self.upstream.close().await;
        }
    }
}

/// A JSON-RPC request frame.
pub fn request_frame(id_json: &str, method: &str, params: Option<&RawValue>) -> Vec<u8> {
    let method = serde_json::to_string(method).unwrap_or_else(|_| "\"\"".into());
    match params {
        Some(p) => format!(
            r#"{{"jsonrpc":"2.0","id":{id_json},"method":{method},"params":{}}}"#,
            p.get()
        ),
        None => format!(r#"{{"jsonrpc":"2.0","id":{id_json},"method":{method}}}"#),
    }
    .into_bytes()
}

/// Holds one of a session's call slots; frees it (and forgets the call's
/// cancel handle) when dropped.
#[derive(Debug)]
pub struct SessionCallGuard {
    session: Arc<Session>,
    client_id: Option<String>,
}

impl Drop for SessionCallGuard {
    fn drop(&mut self) {
        self.session.calls.fetch_sub(1, Ordering::AcqRel);
        if let Some(id) = self.client_id.take() {
            lock(&self.session.in_flight).remove(&id);
        }
    }
}

/// The sessions of one target.
#[derive(Debug, Default)]
pub struct SessionStore {
    sessions: Mutex<HashMap<String, Arc<Session>>>,
}

impl SessionStore {
    /// Adds a session if fewer than `max` exist; returns false otherwise.
    pub fn insert(&self, session: Arc<Session>, max: usize) -> bool {
        let mut map = lock(&self.sessions);
        if map.len() >= max {
            return false;
        }
        map.insert(session.id.clone(), session);
        true
    }

    /// The session with this id.
    pub fn get(&self, id: &str) -> Option<Arc<Session>> {
        lock(&self.sessions).get(id).cloned()
    }

    /// Removes a session (the caller closes it).
    pub fn remove(&self, id: &str) -> Option<Arc<Session>> {
        lock(&self.sessions).remove(id)
    }

    /// How many sessions are open.
    pub fn len(&self) -> usize {
        lock(&self.sessions).len()
    }

    /// Whether none is open.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// Every open session.
    pub fn all(&self) -> Vec<Arc<Session>> {
        lock(&self.sessions).values().cloned().collect()
    }

    /// Removes and returns the sessions idle for `timeout`.
    pub fn take_idle(&self, timeout: Duration) -> Vec<Arc<Session>> {
        let mut map = lock(&self.sessions);
        let idle: Vec<String> = map
            .iter()
            .filter(|(_, s)| s.is_idle(timeout))
            .map(|(k, _)| k.clone())
            .collect();
        idle.iter().filter_map(|k| map.remove(k)).collect()
    }

    /// Removes and returns every session.
    pub fn drain(&self) -> Vec<Arc<Session>> {
        lock(&self.sessions).drain().map(|(_, s)| s).collect()
    }
}

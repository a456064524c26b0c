//! Legacy client sessions (`Mcp-Session-Id`): each is a [`Client`] of one
//! backend (the target's shared one, or its own in `per_session` mode),
//! with the HTTP side around it — its id, its revision, when it was last
//! used, and the token that ends its streams.

use std::collections::{BTreeMap, HashMap, HashSet, VecDeque};
use std::sync::Arc;

use parking_lot::Mutex;
use std::time::{Duration, Instant};

use tokio_util::sync::CancellationToken;

use crate::bridge::Client;
use crate::ids::Principal;
use crate::targets::{Registry, Target};

/// One legacy client session.
#[derive(Debug)]
pub(crate) struct Session {
    /// The `Mcp-Session-Id`.
    pub(crate) id: String,
    /// The protocol revision negotiated in its `initialize`.
    pub(crate) version: &'static str,
    /// The session as the bridge sees it.
    pub(crate) client: Arc<Client>,
    /// Who made it: only they may use it (anyone else gets 404).
    pub(crate) principal: Principal,
    target: Arc<Target>,
    /// The session's own backend (`per_session` sharing), by its number.
    private: Option<u64>,
    last_seen: Mutex<Instant>,
    /// Cancelled when the session ends: its streams end.
    pub(crate) closed: CancellationToken,
}

/// A random session id: 128 bits as 32 hex digits.
pub(crate) fn new_session_id() -> String {
    crate::ids::random_hex(16)
}

impl Session {
    /// A session of `principal` with id `id` at revision `version` whose
    /// calls go through `client`; `private` names its own backend of
    /// `target`, if it has one.
    pub(crate) fn new(
        id: String,
        version: &'static str,
        client: Arc<Client>,
        principal: Principal,
        target: Arc<Target>,
        private: Option<u64>,
        closed: CancellationToken,
    ) -> Self {
        Session {
            id,
            version,
            client,
            principal,
            target,
            private,
            last_seen: Mutex::new(Instant::now()),
            closed,
        }
    }

    /// Marks the session as used now.
    pub(crate) fn touch(&self) {
        *self.last_seen.lock() = Instant::now();
    }

    /// Whether the session has been idle (no request, no open stream, no
    /// call) for `timeout`.
    fn is_idle(&self, timeout: Duration) -> bool {
        self.client.calls_in_flight() == 0
            && !self.client.has_stream()
            && self.last_seen.lock().elapsed() >= timeout
    }

    /// Ends the session: its streams close, server requests it held are
    /// answered with an error, and a backend it owns is shut down.
    pub(crate) async fn close(&self) {
        self.closed.cancel();
        self.client.close().await;
        if let Some(id) = self.private {
            self.target.close_private(id).await;
        }
    }
}

/// The sessions of one target (a clone is the same store: a reload hands
/// an unchanged target's sessions on).
#[derive(Debug, Default, Clone)]
pub(crate) struct SessionStore {
    inner: Arc<Mutex<StoreInner>>,
}

#[derive(Debug, Default)]
struct StoreInner {
    sessions: HashMap<String, Arc<Session>>,
    /// Places promised to sessions being made (counted with `sessions`),
    /// by principal.
    reserved: HashMap<Principal, usize>,
    /// Sealed ids of sessions ended here (DELETE), newest last, so they are
    /// not re-created from their id on this replica; the oldest go first
    /// beyond [`MAX_ENDED`].
    ended: HashSet<String>,
    ended_order: VecDeque<String>,
}

/// Ended sealed session ids each store remembers.
const MAX_ENDED: usize = 4096;

impl StoreInner {
    /// Sessions open or being made, in all and of `principal`.
    fn counts(&self, principal: &Principal) -> (usize, usize) {
        let reserved: usize = self.reserved.values().sum();
        let own_reserved = self.reserved.get(principal).copied().unwrap_or(0);
        let own = self
            .sessions
            .values()
            .filter(|s| s.principal == *principal)
            .count();
        (self.sessions.len() + reserved, own + own_reserved)
    }

    fn release(&mut self, principal: &Principal) {
        if let Some(n) = self.reserved.get_mut(principal) {
            *n -= 1;
            if *n == 0 {
                self.reserved.remove(principal);
            }
        }
    }
}

/// A place for one session of one principal in a [`SessionStore`], taken
/// before the session's backend starts, so that concurrent `initialize`s
/// cannot pass the limits together; given back when dropped unless used.
#[derive(Debug)]
pub(crate) struct Reservation {
    inner: Arc<Mutex<StoreInner>>,
    principal: Principal,
    filled: bool,
}

impl Reservation {
    /// Puts `session` in the place reserved for it.
    pub(crate) fn fill(mut self, session: Arc<Session>) {
        let mut inner = self.inner.lock();
        inner.release(&self.principal);
        inner.sessions.insert(session.id.clone(), session);
        drop(inner);
        self.filled = true;
    }

    /// Puts `session` in the place reserved for it, unless a session of
    /// its id is there already (made meanwhile by a request of the same
    /// session): that one is given back, and the place too.
    pub(crate) fn fill_unless_present(mut self, session: Arc<Session>) -> Result<(), Arc<Session>> {
        let mut inner = self.inner.lock();
        inner.release(&self.principal);
        self.filled = true;
        if let Some(existing) = inner.sessions.get(&session.id) {
            return Err(existing.clone());
        }
        inner.sessions.insert(session.id.clone(), session);
        Ok(())
    }

    /// Whether the place is in `store`, for `principal`.
    pub(crate) fn is_for(&self, store: &SessionStore, principal: &Principal) -> bool {
        Arc::ptr_eq(&self.inner, &store.inner) && self.principal == *principal
    }
}

impl Drop for Reservation {
    fn drop(&mut self) {
        if !self.filled {
            self.inner.lock().release(&self.principal);
        }
    }
}

/// Why a session could not be reserved.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Full {
    /// The target has `max_sessions_per_target`.
    Target,
    /// The principal has `max_sessions_per_principal` of the target's.
    Principal,
}

impl SessionStore {
    /// A place for one more session of `principal`, if fewer than `max`
    /// sessions exist or are being made, and fewer than `per_principal`
    /// of them are `principal`'s (a token's; not counted with auth off).
    pub(crate) fn reserve(
        &self,
        max: usize,
        per_principal: usize,
        principal: &Principal,
    ) -> Result<Reservation, Full> {
        let mut inner = self.inner.lock();
        let (all, own) = inner.counts(principal);
        if all >= max {
            return Err(Full::Target);
        }
        // With auth off every caller is the one anonymous principal: only
        // the target's limit applies.
        if own >= per_principal && !principal.is_anonymous() {
            return Err(Full::Principal);
        }
        *inner.reserved.entry(principal.clone()).or_insert(0) += 1;
        Ok(Reservation {
            inner: self.inner.clone(),
            principal: principal.clone(),
            filled: false,
        })
    }

    /// The session with this id.
    pub(crate) fn get(&self, id: &str) -> Option<Arc<Session>> {
        self.inner.lock().sessions.get(id).cloned()
    }

    /// The session with this id, if `principal` made it: to anyone else
    /// it does not exist.
    pub(crate) fn get_for(&self, id: &str, principal: &Principal) -> Option<Arc<Session>> {
        self.get(id).filter(|s| s.principal == *principal)
    }

    /// Removes a session (the caller closes it).
    pub(crate) fn remove(&self, id: &str) -> Option<Arc<Session>> {
        self.inner.lock().sessions.remove(id)
    }

    /// Removes a session its client ended, and remembers its id as ended
    /// if it is a sealed one (it is then not re-created here).
    pub(crate) fn end(&self, id: &str) -> Option<Arc<Session>> {
        let mut inner = self.inner.lock();
        if id.starts_with(super::sealed::PREFIX) && inner.ended.insert(id.to_owned()) {
            inner.ended_order.push_back(id.to_owned());
            if inner.ended_order.len() > MAX_ENDED {
                if let Some(oldest) = inner.ended_order.pop_front() {
                    inner.ended.remove(&oldest);
                }
            }
        }
        inner.sessions.remove(id)
    }

    /// Whether a session of this id was ended here.
    pub(crate) fn was_ended(&self, id: &str) -> bool {
        self.inner.lock().ended.contains(id)
    }

    /// How many sessions are open.
    pub(crate) fn len(&self) -> usize {
        self.inner.lock().sessions.len()
    }

    /// Removes and returns the sessions idle for `timeout`.
    pub(crate) fn take_idle(&self, timeout: Duration) -> Vec<Arc<Session>> {
        let mut inner = self.inner.lock();
        let idle: Vec<String> = inner
            .sessions
            .iter()
            .filter(|(_, s)| s.is_idle(timeout))
            .map(|(k, _)| k.clone())
            .collect();
        idle.iter()
            .filter_map(|k| inner.sessions.remove(k))
            .collect()
    }

    /// Removes and returns every session.
    pub(crate) fn drain(&self) -> Vec<Arc<Session>> {
        self.inner.lock().sessions.drain().map(|(_, s)| s).collect()
    }
}

/// The open endpoints of the 2024-11-05 HTTP+SSE transport: session id →
/// the stream of its SSE response (the session itself is made by its
/// `initialize`), and the place in its target's sessions that the endpoint
/// holds until then.
#[derive(Debug, Default)]
pub(crate) struct Endpoints {
    open: Mutex<HashMap<String, Endpoint>>,
}

#[derive(Debug)]
struct Endpoint {
    stream: tokio::sync::mpsc::Sender<Vec<u8>>,
    place: Option<Reservation>,
    principal: Principal,
}

impl Endpoints {
    /// Opens endpoint `id` of `principal`, holding `place` for its
    /// session.
    pub(crate) fn open(
        &self,
        id: String,
        stream: tokio::sync::mpsc::Sender<Vec<u8>>,
        place: Reservation,
        principal: Principal,
    ) {
        let endpoint = Endpoint {
            stream,
            place: Some(place),
            principal,
        };
        self.open.lock().insert(id, endpoint);
    }

    /// The stream of endpoint `id`, if `principal` opened it.
    pub(crate) fn stream(
        &self,
        id: &str,
        principal: &Principal,
    ) -> Option<tokio::sync::mpsc::Sender<Vec<u8>>> {
        let open = self.open.lock();
        open.get(id)
            .filter(|e| e.principal == *principal)
            .map(|e| e.stream.clone())
    }

    /// The place endpoint `id` holds for its session, for its `initialize`.
    pub(crate) fn take_place(&self, id: &str) -> Option<Reservation> {
        self.open.lock().get_mut(id).and_then(|e| e.place.take())
    }

    /// Closes endpoint `id` (a place it still holds is given back).
    pub(crate) fn close(&self, id: &str) {
        self.open.lock().remove(id);
    }
}

/// The legacy sessions of every configured target.
#[derive(Debug, Default)]
pub(crate) struct Sessions {
    by_target: BTreeMap<String, SessionStore>,
    /// Endpoints of the 2024-11-05 transport (their ids are unique across
    /// targets).
    pub(crate) endpoints: Arc<Endpoints>,
}

impl Sessions {
    /// An empty store for each target of `registry`.
    pub(crate) fn new(registry: &Registry) -> Self {
        Sessions {
            by_target: registry
                .all()
                .map(|t| (t.name().to_owned(), SessionStore::default()))
                .collect(),
            endpoints: Arc::default(),
        }
    }

    /// The stores for `registry` after a reload: the same store for each
    /// target `kept` says is unchanged, an empty one for the others; the
    /// stores left behind (of targets changed or removed), by name.
    pub(crate) fn carry(
        &self,
        registry: &Registry,
        kept: impl Fn(&str) -> bool,
    ) -> (Sessions, Vec<(String, SessionStore)>) {
        let by_target: BTreeMap<String, SessionStore> = registry
            .all()
            .map(|t| {
                let name = t.name();
                let store = match self.by_target.get(name) {
                    Some(store) if kept(name) => store.clone(),
                    _ => SessionStore::default(),
                };
                (name.to_owned(), store)
            })
            .collect();
        let left = self
            .by_target
            .iter()
            .filter(|(name, _)| !kept(name) || !by_target.contains_key(*name))
            .map(|(name, store)| (name.clone(), store.clone()))
            .collect();
        let sessions = Sessions {
            by_target,
            endpoints: self.endpoints.clone(),
        };
        (sessions, left)
    }

    /// The sessions of target `name`.
    pub(crate) fn of(&self, name: &str) -> Option<&SessionStore> {
        self.by_target.get(name)
    }

    /// How many sessions target `name` has.
    pub(crate) fn count(&self, name: &str) -> usize {
        self.of(name).map_or(0, SessionStore::len)
    }

    /// Every target's sessions.
    pub(crate) fn all(&self) -> impl Iterator<Item = &SessionStore> {
        self.by_target.values()
    }
}

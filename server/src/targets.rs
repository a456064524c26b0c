//! Targets: a configured backend, the upstream(s) that run it, its legacy
//! sessions, its modern subscription listeners, and the fan-out of the
//! backend's traffic that belongs to no single call.

use std::collections::BTreeMap;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex, MutexGuard, Weak};

use bytes::Bytes;
use mcpod_tokio::{
    OwnedOutcome, ProcessSpec, ServerRequestKey, Upstream, UpstreamConfig, UpstreamEvent,
};
use serde_json::value::RawValue;
use tokio::sync::{Semaphore, mpsc};
use tracing::{debug, info};

use crate::config::{BackendSpec, Limits, Sharing, TargetConfig};
use crate::http::errors::{METHOD_NOT_FOUND, raw_json};
use crate::http::sse;
use crate::sessions::{Session, SessionStore};

fn lock<T>(m: &Mutex<T>) -> MutexGuard<'_, T> {
    m.lock().unwrap_or_else(|e| e.into_inner())
}

/// Starts the supervisor of a backend: the seam where each target kind
/// turns into an [`Upstream`]. A new kind adds an arm here.
pub fn launch(backend: &BackendSpec, config: UpstreamConfig) -> Upstream {
    match backend {
        BackendSpec::Process(p) => {
            let mut spec = ProcessSpec::new(&p.command).args(p.args.iter().map(String::as_str));
            if p.env_clear {
                spec = spec.env_clear();
            }
            for (k, v) in &p.env {
                spec = spec.env(k, v);
            }
            if let Some(cwd) = &p.cwd {
                spec = spec.cwd(cwd);
            }
            mcpod_tokio::spawn_process(spec, config)
        }
        BackendSpec::Containerd(c) => crate::containerd::launch(c, config),
    }
}

/// The upstream configuration for a target.
pub fn upstream_config(target: &TargetConfig, name: String) -> UpstreamConfig {
    let mut config = UpstreamConfig {
        name,
        shutdown_grace: target.shutdown_grace,
        ..UpstreamConfig::default()
    };
    config.core.era_mode = target.era;
    config.core.default_call_timeout = target.call_timeout;
    config.core.max_calls_in_flight = config
        .core
        .max_calls_in_flight
        .max(target.max_calls_in_flight);
    config
}

/// Which notification types a modern `subscriptions/listen` opted in to
/// (the ones the gateway can honour for a legacy backend).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, serde::Deserialize, serde::Serialize)]
#[serde(rename_all = "camelCase")]
pub struct ListenFilter {
    /// `notifications/tools/list_changed`.
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub tools_list_changed: bool,
    /// `notifications/prompts/list_changed`.
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub prompts_list_changed: bool,
    /// `notifications/resources/list_changed`.
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub resources_list_changed: bool,
}

impl ListenFilter {
    fn wants(&self, method: &str) -> bool {
        match method {
            "notifications/tools/list_changed" => self.tools_list_changed,
            "notifications/prompts/list_changed" => self.prompts_list_changed,
            "notifications/resources/list_changed" => self.resources_list_changed,
            _ => false,
        }
    }
}

/// A modern client's `subscriptions/listen` stream, served by the gateway
/// for a legacy backend.
#[derive(Debug)]
struct Listener {
    id: u64,
    /// The listen request's id (the subscription id), as JSON.
    subscription: String,
    filter: ListenFilter,
    tx: mpsc::Sender<Bytes>,
}

/// One configured target.
#[derive(Debug)]
pub struct Target {
    /// Its configuration.
    pub config: TargetConfig,
    /// Limits shared by all targets.
    pub limits: Limits,
    shared: Mutex<Option<Upstream>>,
    /// Legacy sessions.
    pub sessions: SessionStore,
    /// Call slots (calls in flight for the whole target).
    pub call_slots: Arc<Semaphore>,
    listeners: Mutex<Vec<Listener>>,
    next_listener: AtomicU64,
    /// Restarts counted from per-session backends already closed.
    closed_restarts: AtomicU64,
    /// Stateless clients' calls parked for `input_required` round trips.
    pub inputs: Arc<crate::http::calls::inputs::InputStore>,
    me: Weak<Target>,
}

impl Target {
    /// A target; nothing starts until [`Target::shared_upstream`] is called.
    pub fn new(config: TargetConfig, limits: Limits) -> Arc<Target> {
        let slots = config.max_calls_in_flight;
        Arc::new_cyclic(|me| Target {
            config,
            limits,
            shared: Mutex::new(None),
            sessions: SessionStore::default(),
            call_slots: Arc::new(Semaphore::new(slots)),
            listeners: Mutex::new(Vec::new()),
            next_listener: AtomicU64::new(1),
            closed_restarts: AtomicU64::new(0),
            inputs: Arc::default(),
            me: me.clone(),
        })
    }

    /// The target's name.
    pub fn name(&self) -> &str {
        &self.config.name
    }

    /// The backend shared by all clients (in `per_session` mode: by the
    /// stateless modern clients), started on first use.
    pub fn shared_upstream(&self) -> Upstream {
        let mut shared = lock(&self.shared);
        if let Some(u) = shared.as_ref() {
            return u.clone();
        }
        let upstream = launch(
            &self.config.backend,
            upstream_config(&self.config, self.config.name.clone()),
        );
        spawn_dispatcher(upstream.clone(), self.me.clone(), None);
        *shared = Some(upstream.clone());
        upstream
    }

    /// A new backend for one session (`per_session` sharing).
    pub fn session_upstream(&self, session_hint: &str) -> Upstream {
        launch(
            &self.config.backend,
            upstream_config(&self.config, format!("{}/{session_hint}", self.config.name)),
        )
    }

    /// Routes a session-owned backend's un-routed traffic to that session.
    pub fn attach_session_dispatcher(&self, session: &Arc<Session>) {
        spawn_dispatcher(
            session.upstream.clone(),
            self.me.clone(),
            Some(Arc::downgrade(session)),
        );
    }

    /// Whether the sharing mode gives each session its own backend.
    pub fn per_session(&self) -> bool {
        self.config.sharing == Sharing::PerSession
    }

    /// Every running upstream (the shared one and the sessions' own).
    pub fn upstreams(&self) -> Vec<Upstream> {
        let mut all: Vec<Upstream> = lock(&self.shared).iter().cloned().collect();
        all.extend(
            self.sessions
                .all()
                .into_iter()
                .filter(|s| s.owns_upstream)
                .map(|s| s.upstream.clone()),
        );
        all
    }

    /// Counts the restarts of a session backend being closed.
    pub fn note_closed_upstream(&self, upstream: &Upstream) {
        self.closed_restarts
            .fetch_add(upstream.status().restarts, Ordering::Relaxed);
    }

    /// Backend restarts so far.
    pub fn restarts(&self) -> u64 {
        self.closed_restarts.load(Ordering::Relaxed)
            + self
                .upstreams()
                .iter()
                .map(|u| u.status().restarts)
                .sum::<u64>()
    }

    /// Calls in flight now.
    pub fn calls_in_flight(&self) -> usize {
        self.config.max_calls_in_flight - self.call_slots.available_permits()
    }

    /// Ends a session: removes it, closes it (and its own backend).
    pub async fn end_session(&self, id: &str) -> bool {
        let Some(session) = self.sessions.remove(id) else {
            return false;
        };
        if session.owns_upstream {
            self.note_closed_upstream(&session.upstream);
        }
        session.close().await;
        true
    }

    /// Registers a modern listener; returns its handle and event receiver.
    pub fn add_listener(
        &self,
        subscription: String,
        filter: ListenFilter,
    ) -> (u64, mpsc::Receiver<Bytes>) {
        let (tx, rx) = mpsc::channel(64);
        let id = self.next_listener.fetch_add(1, Ordering::Relaxed);
        let mut listeners = lock(&self.listeners);
        listeners.retain(|l| !l.tx.is_closed());
        listeners.push(Listener {
            id,
            subscription,
            filter,
            tx,
        });
        (id, rx)
    }

    /// Removes a listener.
    pub fn remove_listener(&self, id: u64) {
        lock(&self.listeners).retain(|l| l.id != id);
    }

    /// Closes every backend of the target (at shutdown).
    pub async fn close(&self) {
        for session in self.sessions.drain() {
            if session.owns_upstream {
                self.note_closed_upstream(&session.upstream);
            }
            session.close().await;
        }
        lock(&self.listeners).clear();
        let shared = lock(&self.shared).take();
        if let Some(u) = shared {
            u.close().await;
        }
    }

    /// Delivers a notification that belongs to no call: to every legacy
    /// session's GET stream (a log message only to the session whose call
    /// is in flight, when exactly one has one) and to every modern listener
    /// that opted in.
    fn broadcast(&self, method: &str, frame: &[u8]) {
        let mut delivered = 0usize;
        // Its own backend's traffic goes to a per-session session alone.
        let sessions: Vec<Arc<Session>> = self
            .sessions
            .all()
            .into_iter()
            .filter(|s| !s.owns_upstream)
            .collect();
        // A log message belongs to the call in flight when that is
        // unambiguous: to the only session with a call in flight.
        let busy: Vec<&Arc<Session>> = sessions
            .iter()
            .filter(|s| s.calls_in_flight() > 0)
            .collect();
        let only = (method == "notifications/message" && busy.len() == 1).then(|| busy[0].clone());
        match only {
            Some(session) => delivered += usize::from(session.push(frame)),
            None => {
                for session in &sessions {
                    delivered += usize::from(session.push(frame));
                }
            }
        }
        let listeners = lock(&self.listeners);
        for l in listeners.iter().filter(|l| l.filter.wants(method)) {
            let tagged = tagged_notification(method, &l.subscription);
            delivered += usize::from(l.tx.try_send(sse::event(&tagged)).is_ok());
        }
        debug!(target = %self.config.name, method, delivered, "broadcast notification");
    }

    /// A server request no single call owns. Shared mode: to the session
    /// whose call is in flight when exactly one has one; else answered from
    /// config or with an error — never dropped.
    async fn route_server_request(
        &self,
        upstream: &Upstream,
        owner: Option<Arc<Session>>,
        key: ServerRequestKey,
        method: String,
        params: Option<Box<RawValue>>,
    ) {
        let candidate = owner.or_else(|| {
            let busy: Vec<Arc<Session>> = self
                .sessions
                .all()
                .into_iter()
                .filter(|s| !s.owns_upstream && s.calls_in_flight() > 0)
                .collect();
            (busy.len() == 1).then(|| busy.into_iter().next()).flatten()
        });
        if let Some(session) = candidate {
            let frame = session.forward_server_request(upstream, key, &method, params.as_deref());
            if session.push(&frame) {
                debug!(target = %self.config.name, session = %session.id, method, "server request forwarded");
                return;
            }
            session.forget_server_request(key);
        }
        answer_from_config(upstream, &self.config, key, &method).await;
    }
}

/// A list-changed notification tagged with a subscription id.
pub fn tagged_notification(method: &str, subscription: &str) -> Vec<u8> {
    let method = serde_json::to_string(method).unwrap_or_else(|_| "\"\"".into());
    format!(
        r#"{{"jsonrpc":"2.0","method":{method},"params":{{"_meta":{{"io.modelcontextprotocol/subscriptionId":{subscription}}}}}}}"#
    )
    .into_bytes()
}

/// Answers a server request no client can take: `roots/list` from the
/// target's configured roots, anything else with an error.
pub async fn answer_from_config(
    upstream: &Upstream,
    target: &TargetConfig,
    key: ServerRequestKey,
    method: &str,
) {
    let outcome = match (method, &target.roots) {
        ("roots/list", Some(roots)) => {
            OwnedOutcome::Result(raw_json(&serde_json::json!({ "roots": roots })))
        }
        _ => OwnedOutcome::Error {
            code: METHOD_NOT_FOUND,
            message: format!(
                "no client of the mcpod gateway can answer `{method}` now{}",
                if method == "roots/list" {
                    " and no roots are configured for this target"
                } else {
                    ""
                }
            ),
            data: None,
        },
    };
    if let Err(e) = upstream.respond(key, outcome).await {
        debug!(target = %target.name, method, error = %e, "could not answer server request");
    } else {
        debug!(target = %target.name, method, "server request answered by the gateway");
    }
}

fn spawn_dispatcher(upstream: Upstream, target: Weak<Target>, owner: Option<Weak<Session>>) {
    let mut events = upstream.subscribe();
    tokio::spawn(async move {
        while let Some(event) = events.recv().await {
            let Some(target) = target.upgrade() else {
                break;
            };
            let owner = match &owner {
                Some(w) => match w.upgrade() {
                    Some(s) => Some(s),
                    None => break, // the session is gone
                },
                None => None,
            };
            match event {
                UpstreamEvent::Notification { method, frame } => match &owner {
                    Some(session) => {
                        session.push(&frame);
                    }
                    None => target.broadcast(&method, &frame),
                },
                UpstreamEvent::ServerRequest {
                    key,
                    method,
                    params,
                } => {
                    target
                        .route_server_request(&upstream, owner, key, method, params)
                        .await;
                }
                UpstreamEvent::ServerRequestCancelled(key) => {
                    let sessions = match owner {
                        Some(s) => vec![s],
                        None => target.sessions.all(),
                    };
                    for s in sessions {
                        if let Some(frame) = s.withdraw_server_request(key) {
                            s.push(&frame);
                        }
                    }
                }
                UpstreamEvent::Restarted { generation } => {
                    info!(target = %target.config.name, generation, "backend restarted");
                }
            }
        }
    });
}

/// All targets by name.
#[derive(Debug, Default)]
pub struct Registry {
    targets: BTreeMap<String, Arc<Target>>,
}

impl Registry {
    /// Targets from config.
    pub fn new(configs: &BTreeMap<String, TargetConfig>, limits: &Limits) -> Self {
        Registry {
            targets: configs
                .iter()
                .map(|(k, c)| (k.clone(), Target::new(c.clone(), limits.clone())))
                .collect(),
        }
    }

    /// A target by name.
    pub fn get(&self, name: &str) -> Option<&Arc<Target>> {
        self.targets.get(name)
    }

    /// Every target.
    pub fn all(&self) -> impl Iterator<Item = &Arc<Target>> {
        self.targets.values()
    }
}

//! [`Target`]: one configured backend, the [`Backend`]s that run it (one
//! shared by every client, one per client session in `per_session` mode),
//! and its call budget; [`Registry`]: all of them by name.

use std::collections::{BTreeMap, HashMap};
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};

use parking_lot::Mutex;

use tokio::sync::{OwnedSemaphorePermit, Semaphore};

use super::backend::{Backend, LogFanout};
use super::containerd::clients::Clients;
use super::launch;
use crate::config::{BackendSpec, Limits, Sharing, TargetConfig};
use crate::ids::Principal;

/// One configured target (or a bot served without configuration): its
/// settings, and the running state that a reload changing only its tokens
/// or limits hands on to the next `Target` of the same name.
#[derive(Debug)]
pub(crate) struct Target {
    /// Its configuration.
    pub(crate) config: TargetConfig,
    /// Limits shared by all targets.
    pub(crate) limits: Limits,
    state: Arc<State>,
}

/// What runs for a target: its backends and budgets.
#[derive(Debug)]
struct State {
    clients: Clients,
    shared: Mutex<Option<Arc<Backend>>>,
    /// Backends of `per_session` sessions, by a number of their own.
    private: Mutex<HashMap<u64, Arc<Backend>>>,
    next_private: AtomicU64,
    /// Calls in flight for the whole target.
    call_slots: Arc<Semaphore>,
    /// Open streams (legacy GET, `subscriptions/listen`), apart from calls.
    stream_slots: Arc<Semaphore>,
    /// Calls in flight per principal.
    principal_calls: PrincipalCounts,
    /// `subscriptions/listen` streams open per principal.
    principal_listens: PrincipalCounts,
    /// Where its backends' unowned log messages go, and how many were
    /// dropped.
    logs: LogFanout,
    /// Restarts counted from private backends already closed.
    closed_restarts: AtomicU64,
}

/// A backend of one client session (`per_session` sharing), released with
/// [`Target::close_private`].
#[derive(Debug, Clone)]
pub(crate) struct PrivateBackend {
    /// Its number within the target.
    pub(crate) id: u64,
    /// The backend.
    pub(crate) backend: Arc<Backend>,
}

impl Target {
    /// A target; nothing starts until a backend is asked for.
    pub(crate) fn new(config: TargetConfig, limits: Limits, clients: Clients) -> Arc<Target> {
        let slots = config.max_calls_in_flight;
        let streams = limits.max_streams_per_target;
        let logs = LogFanout {
            broadcast: config.broadcast_logs,
            ..LogFanout::default()
        };
        let state = State {
            clients,
            shared: Mutex::new(None),
            private: Mutex::new(HashMap::new()),
            next_private: AtomicU64::new(1),
            call_slots: Arc::new(Semaphore::new(slots)),
            stream_slots: Arc::new(Semaphore::new(streams)),
            principal_calls: PrincipalCounts::default(),
            principal_listens: PrincipalCounts::default(),
            logs,
            closed_restarts: AtomicU64::new(0),
        };
        Arc::new(Target {
            config,
            limits,
            state: Arc::new(state),
        })
    }

    /// This target under `config` and `limits` that [`same_backend`] finds
    /// running the same backend: the same backends, sessions' members,
    /// calls and streams, with the new tokens and limits (the call and
    /// stream budgets resized: a smaller one takes effect as slots free).
    pub(crate) fn renewed(&self, config: TargetConfig, limits: Limits) -> Arc<Target> {
        resize(
            &self.state.call_slots,
            self.config.max_calls_in_flight,
            config.max_calls_in_flight,
        );
        resize(
            &self.state.stream_slots,
            self.limits.max_streams_per_target,
            limits.max_streams_per_target,
        );
        Arc::new(Target {
            config,
            limits,
            state: self.state.clone(),
        })
    }

    /// Whether both run the same backends (one is the other renewed).
    pub(crate) fn same_state(&self, other: &Target) -> bool {
        Arc::ptr_eq(&self.state, &other.state)
    }

    /// The target's name.
    pub(crate) fn name(&self) -> &str {
        &self.config.name
    }

    /// How long a backend of this target may take to become ready: its
    /// era probe plus its handshake.
    pub(crate) fn ready_timeout(&self) -> std::time::Duration {
        let core = launch::upstream_config(&self.config, String::new()).core;
        core.probe_timeout + core.handshake_timeout
    }

    /// How long after a backend's server request others count as sent
    /// with it (its core's burst window).
    pub(crate) fn burst_window(&self) -> std::time::Duration {
        launch::upstream_config(&self.config, String::new())
            .core
            .burst_window
    }

    /// The containerd connections its backends use.
    pub(crate) fn clients(&self) -> &Clients {
        &self.state.clients
    }

    /// Whether each client session gets a backend of its own.
    pub(crate) fn per_session(&self) -> bool {
        self.config.sharing == Sharing::PerSession
    }

    /// The backend shared by all clients (in `per_session` mode: by the
    /// stateless clients), started on first use.
    pub(crate) fn shared_backend(&self) -> Arc<Backend> {
        let mut shared = self.state.shared.lock();
        if let Some(b) = shared.as_ref() {
            return b.clone();
        }
        let backend = self.start_backend(self.config.name.clone(), false);
        *shared = Some(backend.clone());
        backend
    }

    /// The shared backend's upstream, started on first use.
    pub(crate) fn shared_upstream(&self) -> mcpod_tokio::Upstream {
        self.shared_backend().upstream.clone()
    }

    /// A new backend for one client session (`per_session` sharing).
    pub(crate) fn open_private(&self, hint: &str) -> PrivateBackend {
        let id = self.state.next_private.fetch_add(1, Ordering::Relaxed);
        let backend = self.start_backend(format!("{}/{hint}", self.config.name), true);
        self.state.private.lock().insert(id, backend.clone());
        PrivateBackend { id, backend }
    }

    /// Shuts a session's own backend down (its restarts stay counted).
    pub(crate) async fn close_private(&self, id: u64) {
        // Moved to the closed count under the lock `restarts` reads both
        // under, so a scrape never sees the counter dip (a reset to
        // Prometheus).
        let backend = {
            let mut private = self.state.private.lock();
            let Some(backend) = private.remove(&id) else {
                return;
            };
            self.state
                .closed_restarts
                .fetch_add(backend.upstream.status().restarts, Ordering::Relaxed);
            backend
        };
        backend.upstream.close().await;
    }

    fn start_backend(&self, name: String, exclusive: bool) -> Arc<Backend> {
        self.launch_with(&self.config.backend, name, exclusive)
    }

    /// A backend running `spec` with this target's settings (timeouts,
    /// era, roots): a Memoh `mcp-stdio` connection's own server. The caller
    /// closes it.
    pub(crate) fn launch_with(
        &self,
        spec: &BackendSpec,
        name: String,
        exclusive: bool,
    ) -> Arc<Backend> {
        let upstream = launch::launch(
            spec,
            &self.state.clients,
            launch::upstream_config(&self.config, name.clone()),
        );
        let logs = self.state.logs.clone();
        Backend::start(name, upstream, self.config.roots.clone(), exclusive, logs)
    }

    /// Every running backend (the shared one and the sessions' own).
    fn backends(&self) -> Vec<Arc<Backend>> {
        let mut all: Vec<Arc<Backend>> = self.state.shared.lock().iter().cloned().collect();
        all.extend(self.state.private.lock().values().cloned());
        all
    }

    /// Backend restarts so far (never decreasing while the target runs).
    pub(crate) fn restarts(&self) -> u64 {
        let shared: u64 = self
            .state
            .shared
            .lock()
            .iter()
            .map(|b| b.upstream.status().restarts)
            .sum();
        let private = self.state.private.lock();
        shared
            + self.state.closed_restarts.load(Ordering::Relaxed)
            + private
                .values()
                .map(|b| b.upstream.status().restarts)
                .sum::<u64>()
    }

    /// Backends running now.
    pub(crate) fn backends_alive(&self) -> usize {
        self.backends()
            .iter()
            .filter(|b| b.upstream.status().alive)
            .count()
    }

    /// One of the target's call slots, if one is free.
    pub(crate) fn try_call_slot(&self) -> Option<OwnedSemaphorePermit> {
        self.state.call_slots.clone().try_acquire_owned().ok()
    }

    /// Log messages of a shared backend that no call owned, dropped.
    pub(crate) fn unattributed_logs(&self) -> u64 {
        self.state.logs.unattributed.load(Ordering::Relaxed)
    }

    /// Calls in flight now.
    pub(crate) fn calls_in_flight(&self) -> usize {
        self.config
            .max_calls_in_flight
            .saturating_sub(self.state.call_slots.available_permits())
    }

    /// One of the target's stream slots (`max_streams_per_target`), if one
    /// is free: a stream holds it while open, apart from the call budget.
    pub(crate) fn try_stream_slot(&self) -> Option<OwnedSemaphorePermit> {
        self.state.stream_slots.clone().try_acquire_owned().ok()
    }

    /// One of `principal`'s calls on this target
    /// (`limits.max_calls_per_principal`), if it has one left; always with
    /// auth off.
    pub(crate) fn try_principal_call(&self, principal: &Principal) -> Option<PrincipalSlot> {
        self.state
            .principal_calls
            .try_take(principal, self.limits.max_calls_per_principal)
    }

    /// One of `principal`'s listens on this target
    /// (`limits.max_listens_per_principal`), if it has one left.
    pub(crate) fn try_principal_listen(&self, principal: &Principal) -> Option<PrincipalSlot> {
        self.state
            .principal_listens
            .try_take(principal, self.limits.max_listens_per_principal)
    }

    /// Streams open now.
    pub(crate) fn streams_open(&self) -> usize {
        self.limits
            .max_streams_per_target
            .saturating_sub(self.state.stream_slots.available_permits())
    }

    /// Resolves once no call is in flight on the target (every call slot
    /// is free); a target retired by a reload waits on it, bounded by the
    /// grace, before it closes.
    pub(crate) async fn drained(&self) {
        let all = u32::try_from(self.config.max_calls_in_flight).unwrap_or(u32::MAX);
        // The semaphore is never closed; `Err` cannot happen, and would
        // mean nothing is left to wait for.
        let _all = self.state.call_slots.acquire_many(all).await;
    }

    /// Closes every backend of the target (at shutdown).
    pub(crate) async fn close(&self) {
        let ids: Vec<u64> = self.state.private.lock().keys().copied().collect();
        for id in ids {
            self.close_private(id).await;
        }
        let shared = self.state.shared.lock().take();
        if let Some(b) = shared {
            b.upstream.close().await;
        }
    }
}

/// Whether two configs of a target run the same backend: equal but for
/// their tokens and call budget, which a running target takes on
/// ([`Target::renewed`]).
pub(crate) fn same_backend(a: &TargetConfig, b: &TargetConfig) -> bool {
    let mut a = a.clone();
    a.tokens.clone_from(&b.tokens);
    a.max_calls_in_flight = b.max_calls_in_flight;
    a == *b
}

/// Resizes a budget of `from` slots to `to`: more at once; fewer as slots
/// in use free (taken and forgotten by a task of its own).
fn resize(slots: &Arc<Semaphore>, from: usize, to: usize) {
    if to > from {
        slots.add_permits(to - from);
    } else if to < from {
        let Ok(fewer) = u32::try_from(from - to) else {
            return;
        };
        let slots = slots.clone();
        tokio::spawn(async move {
            if let Ok(taken) = slots.acquire_many_owned(fewer).await {
                taken.forget();
            }
        });
    }
}

/// What each principal holds of one kind of a target's budget.
#[derive(Debug, Default, Clone)]
struct PrincipalCounts(Arc<Mutex<HashMap<Principal, usize>>>);

impl PrincipalCounts {
    /// One more for `principal`, if it holds fewer than `max` (any number
    /// for the anonymous principal: with auth off the target's own limits
    /// are the only ones).
    fn try_take(&self, principal: &Principal, max: usize) -> Option<PrincipalSlot> {
        if principal.is_anonymous() {
            // Nothing to count on a call's path when auth is off.
            return Some(PrincipalSlot { held: None });
        }
        let mut counts = self.0.lock();
        let n = counts.entry(principal.clone()).or_insert(0);
        if *n >= max {
            return None;
        }
        *n += 1;
        Some(PrincipalSlot {
            held: Some((self.clone(), principal.clone())),
        })
    }
}

/// A principal's share of a target's budget, given back when dropped.
#[derive(Debug)]
pub(crate) struct PrincipalSlot {
    /// The counts it is in, and whose; `None` for the anonymous principal.
    held: Option<(PrincipalCounts, Principal)>,
}

impl Drop for PrincipalSlot {
    fn drop(&mut self) {
        let Some((counts, principal)) = &self.held else {
            return;
        };
        let mut counts = counts.0.lock();
        if let Some(n) = counts.get_mut(principal) {
            *n -= 1;
            if *n == 0 {
                counts.remove(principal);
            }
        }
    }
}

/// All configured targets by name.
#[derive(Debug, Default)]
pub(crate) struct Registry {
    targets: BTreeMap<String, Arc<Target>>,
    clients: Clients,
}

impl Registry {
    /// Targets from config, sharing containerd connections.
    pub(crate) fn new(configs: &BTreeMap<String, TargetConfig>, limits: &Limits) -> Self {
        let clients = Clients::default();
        Registry {
            targets: configs
                .iter()
                .map(|(k, c)| {
                    (
                        k.clone(),
                        Target::new(c.clone(), limits.clone(), clients.clone()),
                    )
                })
                .collect(),
            clients,
        }
    }

    /// The registry for `configs` after a reload: each target whose
    /// backend settings are unchanged ([`same_backend`]) is the same
    /// [`Target`], its backends, sessions' members and calls untouched; the
    /// others are new. Also gives the targets left behind (changed or
    /// removed), to drain.
    pub(crate) fn carry(
        &self,
        configs: &BTreeMap<String, TargetConfig>,
        limits: &Limits,
    ) -> (Registry, Vec<Arc<Target>>) {
        let mut retired = Vec::new();
        let targets = configs
            .iter()
            .map(|(name, config)| {
                let target = match self.targets.get(name) {
                    Some(old) if same_backend(&old.config, config) => {
                        old.renewed(config.clone(), limits.clone())
                    }
                    _ => Target::new(config.clone(), limits.clone(), self.clients.clone()),
                };
                (name.clone(), target)
            })
            .collect::<BTreeMap<_, _>>();
        for (name, old) in &self.targets {
            if !targets.get(name).is_some_and(|t| t.same_state(old)) {
                retired.push(old.clone());
            }
        }
        let registry = Registry {
            targets,
            clients: self.clients.clone(),
        };
        (registry, retired)
    }

    /// Whether target `name` is the same [`Target`] in both registries.
    pub(crate) fn kept(&self, other: &Registry, name: &str) -> bool {
        match (self.targets.get(name), other.targets.get(name)) {
            (Some(a), Some(b)) => a.same_state(b),
            _ => false,
        }
    }

    /// A target by name.
    pub(crate) fn get(&self, name: &str) -> Option<&Arc<Target>> {
        self.targets.get(name)
    }

    /// Every target.
    pub(crate) fn all(&self) -> impl Iterator<Item = &Arc<Target>> {
        self.targets.values()
    }

    /// The containerd connections the targets share.
    pub(crate) fn clients(&self) -> &Clients {
        &self.clients
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;
    use crate::config::{Config, RawConfig};

    fn config(targets: &str) -> Config {
        RawConfig::from_toml(&format!(
            "[auth]\ntokens = [\"global-token-0123456789abcdef\"]\n{targets}"
        ))
        .unwrap()
        .validate()
        .unwrap()
    }

    #[tokio::test]
    async fn a_reload_keeps_what_runs_the_same_backend_and_retires_the_rest() {
        let before = config(
            "[targets.a]\ncommand = \"x\"\n[targets.b]\ncommand = \"x\"\n\
             [targets.c]\ncommand = \"x\"\n[targets.d]\ncommand = \"x\"\n",
        );
        let old = Registry::new(&before.targets, &before.limits);
        // a: tokens and budget changed; b: args; c: removed; d: untouched.
        let after = config(
            "[targets.a]\ncommand = \"x\"\ntokens = [\"a-token-0123456789abcdef\"]\n\
             max_calls_in_flight = 2000\n[targets.b]\ncommand = \"x\"\nargs = [\"-v\"]\n\
             [targets.d]\ncommand = \"x\"\n[targets.e]\ncommand = \"x\"\n",
        );
        let (new, retired) = old.carry(&after.targets, &after.limits);
        assert!(new.kept(&old, "a") && new.kept(&old, "d"));
        assert!(!new.kept(&old, "b") && !new.kept(&old, "e"));
        let mut names: Vec<&str> = retired.iter().map(|t| t.name()).collect();
        names.sort_unstable();
        assert_eq!(names, ["b", "c"]);
        let a = new.get("a").unwrap();
        assert_eq!(a.config.tokens.as_ref().unwrap().len(), 1);
        let slots: Vec<_> = (0..2000).map(|_| a.try_call_slot().unwrap()).collect();
        assert!(a.try_call_slot().is_none(), "the new budget, no more");
        assert_eq!(a.calls_in_flight(), 2000);
        drop(slots);
        assert_eq!(old.get("a").unwrap().calls_in_flight(), 0);
    }
}

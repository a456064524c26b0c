//! [`Backend`]: one running backend (an [`Upstream`]) and the clients
//! attached to it, to whom its traffic that names no call is fanned out.
//!
//! The core routes what it can to a call: progress by token, notifications
//! by subscription, and a server request or log message to the only call in
//! flight ([`mcpod_core::Route::Call`]) or the only owner with calls in flight
//! ([`mcpod_core::Route::Owner`]). What reaches the dispatcher here goes to
//! the attached [`Member`] of that owner, else to every member (each keeps
//! what it wants), and a server request nobody takes is answered from the
//! target's config or refused — never left waiting.

use std::any::Any;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Weak};

use parking_lot::Mutex;

use mcpod_core::Owner;
use mcpod_tokio::{OwnedOutcome, ServerRequestKey, Upstream, UpstreamEvent};
use serde_json::value::RawValue;
use tracing::{debug, info};

use crate::config::RawRoot;

/// A client attached to a backend: it takes the backend's traffic that
/// names no call (implemented by the era front ends' clients).
pub(crate) trait Member: Send + Sync {
    /// The owner tag its calls carry, if it has one.
    fn owner(&self) -> Option<Owner>;

    /// A notification that names no call; returns whether it was delivered.
    fn notify(&self, method: &str, frame: &[u8]) -> bool;

    /// A server request offered to this member; returns whether it took it
    /// (it then answers it through `backend`).
    fn offer(
        &self,
        backend: &Backend,
        key: ServerRequestKey,
        method: &str,
        params: Option<&RawValue>,
    ) -> bool;

    /// The backend withdrew a server request this member may hold.
    fn withdraw(&self, key: ServerRequestKey);
}

/// One running backend and its audience.
pub(crate) struct Backend {
    /// The target's name, for logs.
    name: String,
    /// The supervised backend.
    pub(crate) upstream: Upstream,
    /// Roots answered to `roots/list` when no client can.
    roots: Option<Vec<RawRoot>>,
    /// Whether one client owns it (`per_session`): then every server
    /// request is offered to that client.
    exclusive: bool,
    /// What becomes of log messages no call or client owns.
    logs: LogFanout,
    members: Mutex<Vec<Weak<dyn Member>>>,
    /// State the layers above keep per backend, one value per type.
    attachments: Mutex<Vec<Arc<dyn Any + Send + Sync>>>,
}

impl std::fmt::Debug for Backend {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Backend")
            .field("name", &self.name)
            .field("exclusive", &self.exclusive)
            .finish_non_exhaustive()
    }
}

impl Backend {
    /// A backend on `upstream`, with its dispatcher running.
    pub(super) fn start(
        name: String,
        upstream: Upstream,
        roots: Option<Vec<RawRoot>>,
        exclusive: bool,
        logs: LogFanout,
    ) -> Arc<Backend> {
        let backend = Arc::new(Backend {
            name,
            upstream,
            roots,
            exclusive,
            logs,
            members: Mutex::new(Vec::new()),
            attachments: Mutex::new(Vec::new()),
        });
        spawn_dispatcher(&backend);
        backend
    }

    /// Attaches a member; it stays attached while it lives.
    pub(crate) fn attach(&self, member: Weak<dyn Member>) {
        let mut members = self.members.lock();
        members.retain(|m| m.strong_count() > 0);
        members.push(member);
    }

    /// The value of type `T` attached to this backend, made by `init` on
    /// first use: state that a layer above keeps per backend (what it has
    /// asked of the backend for its clients), without this layer knowing it.
    pub(crate) fn attachment<T: Send + Sync + 'static>(&self, init: impl FnOnce() -> T) -> Arc<T> {
        let mut all = self.attachments.lock();
        if let Some(found) = all.iter().find_map(|a| a.clone().downcast::<T>().ok()) {
            return found;
        }
        let made = Arc::new(init());
        all.push(made.clone());
        made
    }

    /// The target's name.
    pub(crate) fn name(&self) -> &str {
        &self.name
    }

    /// Whether one client owns it (`per_session`, a Memoh stdio
    /// connection): then its server requests have only that client to go
    /// to.
    pub(crate) fn exclusive(&self) -> bool {
        self.exclusive
    }

    fn members(&self) -> Vec<Arc<dyn Member>> {
        let mut members = self.members.lock();
        members.retain(|m| m.strong_count() > 0);
        members.iter().filter_map(Weak::upgrade).collect()
    }

    /// Answers a server request no client can take: `roots/list` from the
    /// configured roots, anything else with an error.
    pub(crate) async fn answer_from_config(&self, key: ServerRequestKey, method: &str) {
        let outcome = match (method, &self.roots) {
            ("roots/list", Some(roots)) => {
                let roots = serde_json::to_string(roots).unwrap_or_else(|_| "[]".into());
                match RawValue::from_string(mcpod_core::json::object(&[("roots", &roots)])) {
                    Ok(result) => OwnedOutcome::Result(result),
                    Err(e) => no_answer(&format!("configured roots are not JSON: {e}")),
                }
            }
            _ => OwnedOutcome::Error {
                code: mcpod_core::envelope::METHOD_NOT_FOUND,
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
        match self.upstream.respond(key, outcome).await {
            Ok(()) => debug!(target = %self.name, method, "server request answered by the gateway"),
            Err(e) => {
                debug!(target = %self.name, method, error = %e, "could not answer server request")
            }
        }
    }

    /// Delivers a notification that names no call: to the members of
    /// `owner`, or to every member when there is none (each keeps what it
    /// wants).
    pub(crate) fn deliver_notification(&self, method: &str, frame: &[u8], owner: Option<Owner>) {
        // A log message of a shared backend that no call or client owns
        // may carry any client's data: it goes to nobody, unless the
        // target says its logs are for everyone.
        if method == "notifications/message"
            && owner.is_none()
            && !self.exclusive
            && !self.logs.broadcast
        {
            self.logs.unattributed.fetch_add(1, Ordering::Relaxed);
            debug!(target = %self.name, "a log message no call owns was dropped");
            return;
        }
        let members = self.members();
        let mut delivered = 0usize;
        for m in &members {
            if owner.is_none() || m.owner() == owner {
                delivered += usize::from(m.notify(method, frame));
            }
        }
        debug!(target = %self.name, method, delivered, "notification fanned out");
    }

    async fn route_server_request(
        &self,
        key: ServerRequestKey,
        method: String,
        params: Option<Box<RawValue>>,
        owner: Option<Owner>,
    ) {
        let members = self.members();
        let candidate = members.iter().find(|m| match owner {
            Some(owner) => m.owner() == Some(owner),
            None => self.exclusive,
        });
        if let Some(member) = candidate {
            if member.offer(self, key, &method, params.as_deref()) {
                debug!(target = %self.name, method, "server request forwarded to a client");
                return;
            }
        }
        self.answer_from_config(key, &method).await;
    }
}

/// What a backend does with log messages no call or client owns.
#[derive(Debug, Clone, Default)]
pub(crate) struct LogFanout {
    /// Send them to every client (the target's `broadcast_logs`).
    pub(crate) broadcast: bool,
    /// Counts the ones dropped instead.
    pub(crate) unattributed: Arc<AtomicU64>,
}

/// An error answer to a server request.
pub(crate) fn no_answer(why: &str) -> OwnedOutcome {
    OwnedOutcome::Error {
        code: mcpod_core::envelope::INTERNAL_ERROR,
        message: why.to_owned(),
        data: None,
    }
}

fn spawn_dispatcher(backend: &Arc<Backend>) {
    let mut events = backend.upstream.subscribe();
    let backend = Arc::downgrade(backend);
    tokio::spawn(async move {
        while let Some(event) = events.recv().await {
            let Some(backend) = backend.upgrade() else {
                break;
            };
            match event {
                UpstreamEvent::Notification {
                    method,
                    frame,
                    owner,
                } => backend.deliver_notification(&method, &frame, owner),
                UpstreamEvent::ServerRequest {
                    key,
                    method,
                    params,
                    owner,
                } => {
                    backend
                        .route_server_request(key, method, params, owner)
                        .await
                }
                UpstreamEvent::ServerRequestCancelled(key) => {
                    for m in backend.members() {
                        m.withdraw(key);
                    }
                }
                UpstreamEvent::Restarted { generation } => {
                    info!(target = %backend.name, generation, "backend restarted");
                }
            }
        }
    });
}

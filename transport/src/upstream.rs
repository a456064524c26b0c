//! [`Upstream`]: the cloneable handle callers use.

use std::fmt;
use std::sync::atomic::AtomicBool;
use std::sync::{Arc, Mutex};
use std::time::Instant;

use futures::task::AtomicWaker;
use mcpod_core::{BackendInfo, Owner, RequestOptions, SendError};
use serde_json::value::RawValue;
use tokio::sync::{broadcast, mpsc, oneshot};

use crate::call::{self, CallStream};
use crate::command::Command;
use crate::config::UpstreamConfig;
use crate::connect::Connector;
use crate::driver::Supervisor;
use crate::error::UpstreamError;
use crate::item::{OwnedOutcome, OwnedRequest, ServerRequestKey, UpstreamEvent};
use crate::runtime::Runtime;
use crate::shared::{Shared, State, UpstreamStatus};

/// One supervised backend, shared by any number of callers.
///
/// Cheap to clone; every clone shares one [`mcpod_core::Session`] and one
/// driver task, which owns the backend's streams: callers submit work to
/// the session directly and wake the driver to write it. The backend is started
/// by the first operation that needs it ([`ready`](Self::ready),
/// [`call`](Self::call), [`notify`](Self::notify)) and restarted by the
/// first one after it dies. A backend that keeps dying young is restarted
/// after a capped backoff, and operations that arrive meanwhile fail at
/// once with [`UpstreamError::Restarting`] (see
/// [`UpstreamConfig::restart_backoff_min`]). Operations waiting for a
/// backend to start are bounded ([`UpstreamConfig::max_queued_commands`]).
/// When the last clone is dropped the backend is shut down as by
/// [`close`](Self::close).
#[derive(Clone)]
pub struct Upstream {
    cmds: mpsc::Sender<Command>,
    shared: Arc<Shared>,
    /// The bound of `cmds`, for the error.
    queue: usize,
}

impl fmt::Debug for Upstream {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Upstream")
            .field("status", &self.status())
            .finish_non_exhaustive()
    }
}

impl Upstream {
    /// Starts the supervisor of a backend reached through `connector`, on
    /// `runtime`. Nothing is connected until the first operation needs it.
    pub fn new(
        connector: impl Connector,
        config: UpstreamConfig,
        runtime: impl Runtime,
    ) -> Upstream {
        let queue = config.max_queued_commands.max(1);
        let (cmds, rx) = mpsc::channel(queue);
        let (events, _) = broadcast::channel(config.event_buffer.max(1));
        let shared = Arc::new(Shared {
            state: Mutex::new(State::default()),
            live: Mutex::new(None),
            output: Mutex::new(None),
            driver: AtomicWaker::new(),
            batch: AtomicBool::new(false),
            events,
            call_buffer: config.call_buffer.max(1),
        });
        let runtime: Arc<dyn Runtime> = Arc::new(runtime);
        let supervisor = Supervisor::new(
            shared.clone(),
            runtime.clone(),
            Arc::new(connector),
            config,
            rx,
        );
        runtime.spawn(Box::pin(supervisor.run()));
        Upstream {
            cmds,
            shared,
            queue,
        }
    }

    /// Hands a command to the supervisor, or fails at once: in a restart
    /// backoff, or when too many already wait.
    fn send(&self, cmd: Command) -> Result<(), UpstreamError> {
        if let Some(e) = self.shared.refusal(Instant::now()) {
            return Err(e);
        }
        self.send_queued(cmd)
    }

    /// Hands a command to the supervisor unless too many already wait.
    fn send_queued(&self, cmd: Command) -> Result<(), UpstreamError> {
        self.cmds.try_send(cmd).map_err(|e| match e {
            mpsc::error::TrySendError::Full(_) => {
                UpstreamError::Send(SendError::NotReadyQueueFull(self.queue))
            }
            mpsc::error::TrySendError::Closed(_) => UpstreamError::Closed,
        })
    }

    /// Waits until the backend is ready (era detected, handshake done) and
    /// returns what it said about itself. Starts a backend if none runs;
    /// fails at once during a restart backoff.
    pub async fn ready(&self) -> Result<Arc<BackendInfo>, UpstreamError> {
        if let Some(info) = self.shared.state().current_info.clone() {
            return Ok(info);
        }
        let (reply, rx) = oneshot::channel();
        self.send(Command::Ready(reply))?;
        rx.await.map_err(|_| UpstreamError::Closed)?
    }

    /// The last known backend info, without waiting (kept across restarts).
    pub fn backend_info(&self) -> Option<Arc<BackendInfo>> {
        self.shared.state().last_info.clone()
    }

    /// Starts a call. The caller's id may be any JSON string or number and
    /// may collide with other callers' ids; it comes back byte-exact in the
    /// response frame. Starts a backend if none runs.
    ///
    /// Fails fast with [`SendError::BackendNotReading`] when the backend has
    /// stopped reading its input and the output queue is full, with
    /// [`UpstreamError::Restarting`] during a restart backoff, and with
    /// [`SendError::NotReadyQueueFull`] when too many operations already
    /// wait for a backend to start.
    pub async fn call(
        &self,
        req: OwnedRequest,
        opts: RequestOptions,
    ) -> Result<CallStream, UpstreamError> {
        let (call, pending) = call::channel(
            self.shared.call_buffer,
            self.shared.clone() as Arc<dyn call::CancelCall>,
        );
        // Fast path: a running backend takes the call at once.
        let mut call = Some(call);
        let taken = self.shared.with_open(|live| {
            let request = mcpod_core::Request {
                id: &req.id,
                method: &req.method,
                params: req.params.as_deref(),
            };
            let id = live.session.send_request(request, opts, Instant::now())?;
            if let Some(call) = call.take() {
                live.routes.insert(id, call);
            }
            Ok::<_, UpstreamError>((live.generation, id))
        });
        if let Some(taken) = taken {
            let (generation, id) = taken?;
            return Ok(pending.into_stream(generation, id));
        }
        let Some(call) = call else {
            return Err(UpstreamError::Closed);
        };
        // Otherwise the supervisor starts a backend first.
        self.send(Command::Call { req, opts, call })?;
        pending.accepted().await
    }

    /// Forwards a notification to the backend. Starts a backend if none
    /// runs.
    pub async fn notify(
        &self,
        method: &str,
        params: Option<Box<RawValue>>,
    ) -> Result<(), UpstreamError> {
        let sent = self.shared.with_open(|live| {
            live.session
                .send_notification(method, params.as_deref())
                .map_err(UpstreamError::from)
        });
        if let Some(sent) = sent {
            return sent;
        }
        let (reply, rx) = oneshot::channel();
        self.send(Command::Notify {
            method: method.to_owned(),
            params,
            reply,
        })?;
        rx.await.map_err(|_| UpstreamError::Closed)?
    }

    /// Cancels the call in flight that `owner` made with the caller id
    /// `caller_id` (its exact JSON text, as in a client's
    /// `notifications/cancelled`): the backend is told, and the call's
    /// stream ends with [`CallItem::Ended`](crate::CallItem::Ended)
    /// (`request cancelled`). Returns whether such a call was open.
    pub fn cancel_caller(&self, owner: Owner, caller_id: &str, reason: Option<&str>) -> bool {
        self.shared
            .with_open(|live| {
                live.session
                    .cancel_caller(owner, caller_id, reason, Instant::now())
            })
            .unwrap_or(false)
    }

    /// A receiver of notifications and server requests that belong to no
    /// single call, and of restarts. Each receiver sees everything sent
    /// after it subscribed; one that falls behind skips the oldest events
    /// and never slows the driver.
    pub fn subscribe(&self) -> UpstreamEvents {
        UpstreamEvents {
            rx: self.shared.events.subscribe(),
        }
    }

    /// Answers a server→client request.
    pub async fn respond(
        &self,
        to: ServerRequestKey,
        outcome: OwnedOutcome,
    ) -> Result<(), UpstreamError> {
        let answered = self.shared.with_open(|live| {
            if live.generation != to.generation {
                return Err(UpstreamError::StaleServerRequest(to));
            }
            live.session
                .respond(to.id, outcome.as_outcome(), Instant::now())
                .map_err(UpstreamError::from)
        });
        if let Some(answered) = answered {
            return answered;
        }
        let (reply, rx) = oneshot::channel();
        // No backend runs: the supervisor finds the request stale.
        self.send_queued(Command::Respond {
            key: to,
            outcome,
            reply,
        })?;
        rx.await.map_err(|_| UpstreamError::Closed)?
    }

    /// A snapshot of the upstream's health.
    pub fn status(&self) -> UpstreamStatus {
        let mut status = {
            let state = self.shared.state();
            let mut status = state.status.clone();
            status.retry_after = state
                .backoff
                .as_ref()
                .and_then(|b| b.until.checked_duration_since(Instant::now()))
                .filter(|d| !d.is_zero());
            status
        };
        status.calls_in_flight = self
            .shared
            .live()
            .as_ref()
            .map_or(0, |live| live.session.calls_in_flight());
        status
    }

    /// Shuts the backend down gracefully — open calls end, its stdin is
    /// closed, it gets the grace period to exit, then SIGTERM, then SIGKILL
    /// — and waits until it has been reaped. Every later operation fails
    /// with [`UpstreamError::Closed`]. Calling it again does nothing.
    pub async fn close(&self) {
        let (reply, rx) = oneshot::channel();
        // Never refused for a full queue: it waits for room (the
        // supervisor keeps taking commands).
        if self.cmds.send(Command::Close(reply)).await.is_ok() {
            // An error means the driver has already finished closing.
            let _ = rx.await;
        }
    }
}

/// A receiver of [`UpstreamEvent`]s, from [`Upstream::subscribe`].
#[derive(Debug)]
pub struct UpstreamEvents {
    rx: broadcast::Receiver<UpstreamEvent>,
}

impl UpstreamEvents {
    /// The next event; `None` once the upstream is closed. Events this
    /// receiver fell too far behind on are skipped.
    pub async fn recv(&mut self) -> Option<UpstreamEvent> {
        loop {
            match self.rx.recv().await {
                Ok(event) => return Some(event),
                Err(broadcast::error::RecvError::Lagged(n)) => {
                    tracing::debug!(skipped = n, "upstream event receiver lagged");
                }
                Err(broadcast::error::RecvError::Closed) => return None,
            }
        }
    }
}

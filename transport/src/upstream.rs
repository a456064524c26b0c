//! [`Upstream`]: the cloneable handle callers use, and what it hands back.

use std::collections::HashMap;
use std::fmt;
use std::io;
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::{Duration, Instant};

use futures::task::AtomicWaker;

use mcpod_core::{
    BackendInfo, CallId, CloseReason, Era, RequestOptions, SendError, ServerRequestId,
};
use serde_json::value::RawValue;
use thiserror::Error;
use tokio::sync::{broadcast, mpsc, oneshot};

use crate::call::{self, CallSender, CallStream};
use crate::connect::{Connector, ProcessExit};
use crate::driver::Supervisor;
use crate::runtime::Runtime;

/// Everything an [`Upstream`] can be tuned by.
#[derive(Debug, Clone)]
pub struct UpstreamConfig {
    /// The protocol session's own settings (era mode, timeouts, bounds).
    pub core: mcpod_core::Config,
    /// A name for logs (e.g. the target's name).
    pub name: String,
    /// How long a backend gets to exit after its stdin is closed, and again
    /// after it is asked to terminate, before it is killed.
    pub shutdown_grace: Duration,
    /// The delay before restarting a backend that died after a short life.
    pub restart_backoff_min: Duration,
    /// The longest delay between restarts. Each quick death doubles the
    /// delay up to this; a backend that ran longer than this resets it.
    pub restart_backoff_max: Duration,
    /// Longest stderr line logged; the rest of a longer line is counted and
    /// dropped (stderr is always drained, whatever its line lengths).
    pub stderr_line_cap: usize,
    /// Notifications and server requests buffered per call for a caller
    /// that is slow to read its [`CallStream`]; more are dropped (server
    /// requests go to [`Upstream::subscribe`] instead).
    pub call_buffer: usize,
    /// Events buffered per [`UpstreamEvents`] receiver; a receiver that
    /// falls further behind skips the oldest.
    pub event_buffer: usize,
    /// Size of the buffer the backend's output is read into.
    pub read_buffer: usize,
}

impl Default for UpstreamConfig {
    fn default() -> Self {
        UpstreamConfig {
            core: mcpod_core::Config::default(),
            name: "upstream".into(),
            shutdown_grace: Duration::from_secs(3),
            restart_backoff_min: Duration::from_millis(100),
            restart_backoff_max: Duration::from_secs(10),
            stderr_line_cap: 8 * 1024,
            call_buffer: 256,
            event_buffer: 1024,
            read_buffer: 64 * 1024,
        }
    }
}

/// Why an [`Upstream`] operation failed.
#[derive(Debug, Clone, Error)]
#[non_exhaustive]
pub enum UpstreamError {
    /// The session refused the command: too many calls, the backend not
    /// reading its input, an invalid id, a reserved method…
    #[error("request refused: {0}")]
    Send(#[from] SendError),
    /// The backend could not be started.
    #[error("failed to start the backend: {0}")]
    SpawnFailed(#[source] Arc<io::Error>),
    /// Era detection or the `initialize` handshake failed.
    #[error("backend handshake failed: {0}")]
    HandshakeFailed(String),
    /// The backend went away before it was ready.
    #[error("backend went away before it was ready: {0}")]
    BackendGone(CloseReason),
    /// The server request belongs to a backend process that has since
    /// ended; the answer has nowhere to go.
    #[error("{0} belongs to a backend process that has ended")]
    StaleServerRequest(ServerRequestKey),
    /// [`Upstream::close`] was called (or every handle was dropped).
    #[error("upstream is closed")]
    Closed,
}

/// A caller's request, owned so it can travel to the driver task.
#[derive(Debug, Clone)]
pub struct OwnedRequest {
    /// The caller's id (any JSON string or number); it comes back
    /// byte-exact in the response frame.
    pub id: Box<RawValue>,
    /// The method.
    pub method: String,
    /// Raw params, if any.
    pub params: Option<Box<RawValue>>,
}

impl OwnedRequest {
    /// A request from its parts.
    pub fn new(
        id: Box<RawValue>,
        method: impl Into<String>,
        params: Option<Box<RawValue>>,
    ) -> Self {
        OwnedRequest {
            id,
            method: method.into(),
            params,
        }
    }
}

/// The answer to a server→client request.
#[derive(Debug, Clone)]
pub enum OwnedOutcome {
    /// A result object.
    Result(Box<RawValue>),
    /// A JSON-RPC error.
    Error {
        /// The error code.
        code: i64,
        /// The message.
        message: String,
        /// Optional raw data.
        data: Option<Box<RawValue>>,
    },
}

impl OwnedOutcome {
    pub(crate) fn as_outcome(&self) -> mcpod_core::Outcome<'_> {
        match self {
            OwnedOutcome::Result(result) => mcpod_core::Outcome::Result(result),
            OwnedOutcome::Error {
                code,
                message,
                data,
            } => mcpod_core::Outcome::Error {
                code: *code,
                message,
                data: data.as_deref(),
            },
        }
    }
}

/// Names one server→client request of one backend process: answers for a
/// process that has since ended are refused with
/// [`UpstreamError::StaleServerRequest`].
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct ServerRequestKey {
    pub(crate) generation: u64,
    pub(crate) id: ServerRequestId,
}

impl ServerRequestKey {
    /// The backend process it came from (1 for the first, counting restarts).
    pub fn generation(&self) -> u64 {
        self.generation
    }

    /// The session's id for it.
    pub fn id(&self) -> ServerRequestId {
        self.id
    }
}

impl fmt::Display for ServerRequestKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{} of backend generation {}", self.id, self.generation)
    }
}

/// What a [`CallStream`] yields.
#[derive(Debug, Clone)]
pub enum CallItem {
    /// A notification that belongs to this call: progress (with the
    /// caller's own token restored) or a notification tagged with this
    /// call's subscription.
    Notification {
        /// Its method.
        method: String,
        /// The notification frame, ready to send (no trailing newline).
        frame: Vec<u8>,
    },
    /// A server→client request that belongs to this call; answer it with
    /// [`Upstream::respond`].
    ServerRequest {
        /// The handle to answer it with.
        key: ServerRequestKey,
        /// Its method, e.g. `roots/list`.
        method: String,
        /// Its raw params.
        params: Option<Box<RawValue>>,
    },
    /// The backend's response, with the caller's id put back. Terminal.
    Response {
        /// The response frame (no trailing newline).
        frame: Vec<u8>,
        /// Whether it is an error response.
        is_error: bool,
    },
    /// The call ended without a response (timed out, backend closed).
    /// Terminal.
    Ended {
        /// Why.
        reason: mcpod_core::EndReason,
        /// A JSON-RPC error response with the caller's id, ready to send.
        frame: Vec<u8>,
    },
}

impl CallItem {
    /// Whether this is the call's last item.
    pub fn is_terminal(&self) -> bool {
        matches!(self, CallItem::Response { .. } | CallItem::Ended { .. })
    }
}

/// Traffic from the backend that belongs to no single call.
#[derive(Debug, Clone)]
pub enum UpstreamEvent {
    /// A notification for everyone (list changes, resource updates, logs).
    Notification {
        /// Its method.
        method: String,
        /// The frame (no trailing newline).
        frame: Vec<u8>,
    },
    /// A server→client request not tied to one call; answer it with
    /// [`Upstream::respond`].
    ServerRequest {
        /// The handle to answer it with.
        key: ServerRequestKey,
        /// Its method.
        method: String,
        /// Its raw params.
        params: Option<Box<RawValue>>,
    },
    /// The backend withdrew a server request.
    ServerRequestCancelled(ServerRequestKey),
    /// A new backend process replaced one that ended.
    Restarted {
        /// Its generation (2 for the first restart).
        generation: u64,
    },
}

/// A snapshot of an upstream's health.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
#[non_exhaustive]
pub struct UpstreamStatus {
    /// Whether a backend is running now.
    pub alive: bool,
    /// How many times a backend was started after the first.
    pub restarts: u64,
    /// Calls open now.
    pub calls_in_flight: usize,
    /// The running backend's process id, if any.
    pub pid: Option<u32>,
    /// The running backend's era, once known.
    pub era: Option<Era>,
    /// The current (or last) backend's generation, 0 before the first.
    pub generation: u64,
    /// How the last backend process that ended did end.
    pub last_exit: Option<ProcessExit>,
    /// Whether [`Upstream::close`] was called.
    pub closed: bool,
}

pub(crate) enum Command {
    Call {
        req: OwnedRequest,
        opts: RequestOptions,
        call: CallSender,
    },
    Notify {
        method: String,
        params: Option<Box<RawValue>>,
        reply: oneshot::Sender<Result<(), UpstreamError>>,
    },
    Ready(oneshot::Sender<Result<Arc<BackendInfo>, UpstreamError>>),
    Respond {
        key: ServerRequestKey,
        outcome: OwnedOutcome,
        reply: oneshot::Sender<Result<(), UpstreamError>>,
    },
    Close(oneshot::Sender<()>),
}

#[derive(Default)]
pub(crate) struct State {
    pub(crate) status: UpstreamStatus,
    /// The running backend's info (cleared when it ends).
    pub(crate) current_info: Option<Arc<BackendInfo>>,
    /// The last info seen, kept across restarts.
    pub(crate) last_info: Option<Arc<BackendInfo>>,
}

/// The running backend's session, shared by the driver and the callers
/// (as in quinn): callers submit work under the lock and wake the driver,
/// without a round trip through the driver task.
pub(crate) struct Live {
    pub(crate) generation: u64,
    pub(crate) session: mcpod_core::Session,
    /// Where each open call's items go.
    pub(crate) routes: HashMap<CallId, CallSender>,
}

pub(crate) struct Shared {
    pub(crate) state: Mutex<State>,
    /// The running backend's session; `None` between backends.
    pub(crate) live: Mutex<Option<Live>>,
    /// Wakes the driver after a caller queued bytes for the backend.
    pub(crate) driver: AtomicWaker,
    pub(crate) events: broadcast::Sender<UpstreamEvent>,
    pub(crate) call_buffer: usize,
}

impl Shared {
    #[cfg(test)]
    pub(crate) fn for_tests() -> Self {
        Shared {
            state: Mutex::new(State::default()),
            live: Mutex::new(None),
            driver: AtomicWaker::new(),
            events: broadcast::channel(1).0,
            call_buffer: 1,
        }
    }

    pub(crate) fn state(&self) -> MutexGuard<'_, State> {
        // A panic while holding this lock leaves plain data behind: go on.
        self.state.lock().unwrap_or_else(|e| e.into_inner())
    }

    pub(crate) fn live(&self) -> MutexGuard<'_, Option<Live>> {
        // The session never panics on input; a panic elsewhere while this is
        // held leaves it consistent between two of its methods.
        self.live.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// Runs `f` on the running backend, if its session still takes work,
    /// then wakes the driver to write what `f` queued.
    pub(crate) fn with_open<R>(&self, f: impl FnOnce(&mut Live) -> R) -> Option<R> {
        let mut guard = self.live();
        let live = guard
            .as_mut()
            .filter(|live| live.session.close_reason().is_none())?;
        let out = f(live);
        drop(guard);
        self.driver.wake();
        Some(out)
    }

    /// Cancels an open call of backend `generation`.
    pub(crate) fn cancel(&self, generation: u64, call: CallId) {
        let mut live = self.live();
        let Some(live) = live.as_mut().filter(|l| l.generation == generation) else {
            return; // its backend is gone, and the call with it
        };
        live.routes.remove(&call);
        if live.session.cancel(
            call,
            Some("request cancelled by the caller"),
            Instant::now(),
        ) {
            self.driver.wake();
        }
    }
}

/// One supervised backend, shared by any number of callers.
///
/// Cheap to clone; every clone shares one [`mcpod_core::Session`] and one
/// driver task, which owns the backend's streams: callers submit work to
/// the session directly and wake the driver to write it. The backend is started
/// by the first operation that needs it ([`ready`](Self::ready),
/// [`call`](Self::call), [`notify`](Self::notify)) and restarted, with
/// backoff, by the first one after it dies. When the last clone is dropped
/// the backend is shut down as by [`close`](Self::close).
#[derive(Clone)]
pub struct Upstream {
    cmds: mpsc::UnboundedSender<Command>,
    shared: Arc<Shared>,
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
        let (cmds, rx) = mpsc::unbounded_channel();
        let (events, _) = broadcast::channel(config.event_buffer.max(1));
        let shared = Arc::new(Shared {
            state: Mutex::new(State::default()),
            live: Mutex::new(None),
            driver: AtomicWaker::new(),
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
        Upstream { cmds, shared }
    }

    fn send(&self, cmd: Command) -> Result<(), UpstreamError> {
        self.cmds.send(cmd).map_err(|_| UpstreamError::Closed)
    }

    /// Waits until the backend is ready (era detected, handshake done) and
    /// returns what it said about itself. Starts a backend if none runs.
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
    /// stopped reading its input and the output queue is full.
    pub async fn call(
        &self,
        req: OwnedRequest,
        opts: RequestOptions,
    ) -> Result<CallStream, UpstreamError> {
        let (call, pending) = call::channel(self.shared.call_buffer, self.shared.clone());
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
                .respond(to.id, outcome.as_outcome())
                .map_err(UpstreamError::from)
        });
        if let Some(answered) = answered {
            return answered;
        }
        let (reply, rx) = oneshot::channel();
        self.send(Command::Respond {
            key: to,
            outcome,
            reply,
        })?;
        rx.await.map_err(|_| UpstreamError::Closed)?
    }

    /// A snapshot of the upstream's health.
    pub fn status(&self) -> UpstreamStatus {
        let mut status = self.shared.state().status.clone();
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
        if self.send(Command::Close(reply)).is_ok() {
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

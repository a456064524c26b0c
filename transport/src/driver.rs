//! The supervisor task: it starts and restarts the backend, owns its
//! streams, and moves bytes between them and the shared [`Session`], and
//! the session's events to the callers.

use std::collections::{HashMap, VecDeque};
use std::future::{Future, poll_fn};
use std::io;
use std::pin::{Pin, pin};
use std::sync::Arc;
use std::sync::atomic::Ordering;
use std::task::{Context, Poll};
use std::time::{Duration, Instant};

use futures::io::AsyncRead;
use mcpod_core::{BackendInfo, CloseReason, Event, Outcome, Request, Route, SendError, Session};
use tokio::sync::{mpsc, oneshot};

use crate::command::{Command, refuse};
use crate::config::UpstreamConfig;
use crate::connect::{Connection, Connector, ProcessExit};
use crate::error::UpstreamError;
use crate::item::{CallItem, ServerRequestKey, UpstreamEvent};
use crate::process::{Label, Monitor, drain_stderr};
use crate::runtime::{BoxFuture, Runtime};
use crate::shared::{Backoff, Live, Output, Shared};

/// Commands handled per round before I/O gets its turn.
const COMMANDS_PER_ROUND: usize = 256;
/// Rounds per poll before the driver yields to other tasks.
const ROUNDS_PER_POLL: usize = 32;

pub(crate) struct Supervisor {
    shared: Arc<Shared>,
    runtime: Arc<dyn Runtime>,
    connector: Arc<dyn Connector>,
    config: UpstreamConfig,
    name: Arc<str>,
    cmds: mpsc::Receiver<Command>,
    /// Commands taken from the channel that wait for the next backend
    /// (at most [`UpstreamConfig::max_queued_commands`], and a close).
    backlog: VecDeque<Command>,
    generation: u64,
    /// Quick deaths in a row (see [`UpstreamConfig::restart_backoff_min`]).
    quick_deaths: u32,
    /// No backend starts before this.
    restart_at: Option<Instant>,
}

enum Started {
    Connected(Connection),
    Failed(io::Error),
    Close(oneshot::Sender<()>),
    /// Every handle was dropped.
    Abandoned,
}

enum Flow {
    Continue,
    Stop,
}

impl Supervisor {
    pub(crate) fn new(
        shared: Arc<Shared>,
        runtime: Arc<dyn Runtime>,
        connector: Arc<dyn Connector>,
        config: UpstreamConfig,
        cmds: mpsc::Receiver<Command>,
    ) -> Self {
        Supervisor {
            shared,
            runtime,
            connector,
            name: config.name.as_str().into(),
            quick_deaths: 0,
            config,
            cmds,
            backlog: VecDeque::new(),
            generation: 0,
            restart_at: None,
        }
    }

    pub(crate) async fn run(mut self) {
        loop {
            let cmd = match self.backlog.pop_front() {
                Some(cmd) => cmd,
                None => match self.cmds.recv().await {
                    Some(cmd) => cmd,
                    None => break,
                },
            };
            match cmd {
                Command::Close(reply) => {
                    self.mark_closed();
                    let _ = reply.send(());
                    break;
                }
                Command::Respond { key, reply, .. } => {
                    let _ = reply.send(Err(UpstreamError::StaleServerRequest(key)));
                }
                cmd => {
                    self.backlog.push_front(cmd);
                    match self.start().await {
                        Started::Connected(conn) => {
                            if let Flow::Stop = self.drive(conn).await {
                                break;
                            }
                        }
                        Started::Failed(e) => self.spawn_failed(e),
                        Started::Close(reply) => {
                            self.mark_closed();
                            let _ = reply.send(());
                            break;
                        }
                        Started::Abandoned => break,
                    }
                }
            }
        }
        self.mark_closed();
        self.cmds.close();
        while let Some(cmd) = self.backlog.pop_front() {
            refuse(cmd, UpstreamError::Closed);
        }
        while let Ok(cmd) = self.cmds.try_recv() {
            refuse(cmd, UpstreamError::Closed);
        }
        tracing::debug!(upstream = %self.name, "upstream closed");
    }

    fn mark_closed(&self) {
        let mut state = self.shared.state();
        state.status.closed = true;
        state.status.alive = false;
        state.status.pid = None;
        state.status.era = None;
        state.current_info = None;
        state.backoff = None;
    }

    /// Waits out the restart backoff and connects. Commands that arrive
    /// meanwhile wait for the backend (a bounded number), except during
    /// the backoff: then they fail at once, as the handles would have
    /// failed them (they got past that check just before the backoff
    /// began).
    async fn start(&mut self) -> Started {
        let delay_until = self.restart_at.filter(|at| *at > Instant::now());
        if let Some(at) = delay_until {
            tracing::info!(upstream = %self.name, delay = ?at.saturating_duration_since(Instant::now()), "restarting the backend after a backoff");
        }
        let connector = self.connector.clone();
        let runtime = self.runtime.clone();
        let mut connect = pin!(async move {
            if let Some(at) = delay_until {
                runtime.sleep_until(at).await;
            }
            connector.connect().await
        });
        let shared = self.shared.clone();
        let cap = self.config.max_queued_commands.max(1);
        let cmds = &mut self.cmds;
        let backlog = &mut self.backlog;
        poll_fn(|cx| {
            loop {
                match cmds.poll_recv(cx) {
                    Poll::Ready(Some(Command::Close(reply))) => {
                        return Poll::Ready(Started::Close(reply));
                    }
                    Poll::Ready(Some(Command::Respond { key, reply, .. })) => {
                        // No backend runs: it can only be a past one's.
                        let _ = reply.send(Err(UpstreamError::StaleServerRequest(key)));
                    }
                    Poll::Ready(Some(cmd)) => match shared.refusal(Instant::now()) {
                        Some(err) => refuse(cmd, err),
                        None => enqueue(backlog, cap, cmd),
                    },
                    Poll::Ready(None) => return Poll::Ready(Started::Abandoned),
                    Poll::Pending => break,
                }
            }
            connect.as_mut().poll(cx).map(|r| match r {
                Ok(conn) => Started::Connected(conn),
                Err(e) => Started::Failed(e),
            })
        })
        .await
    }

    fn spawn_failed(&mut self, e: io::Error) {
        tracing::error!(upstream = %self.name, error = %e, "failed to start the backend");
        let e = Arc::new(e);
        let err = UpstreamError::SpawnFailed(e.clone());
        self.shared.state().status.last_error = Some(err.to_string());
        self.schedule_restart(Duration::ZERO, Some(e));
        self.refuse_backlog(&err);
    }

    /// Refuses every waiting command with `err`, except a close.
    fn refuse_backlog(&mut self, err: &UpstreamError) {
        let mut keep = VecDeque::new();
        while let Some(cmd) = self.backlog.pop_front() {
            match cmd {
                Command::Close(_) => keep.push_back(cmd),
                cmd => refuse(cmd, err.clone()),
            }
        }
        self.backlog = keep;
    }

    /// Sets when the next backend may start, after one that lived `lived`
    /// (or failed to start: `spawn_error`), and publishes the backoff so
    /// that the handles refuse operations at once while it runs. The
    /// commands already on their way are moved to the backlog first: with
    /// no backoff they wait for the next backend, which starts at once;
    /// with one they are refused like the commands that come during it
    /// (a caller should not wait out a backoff of up to
    /// `restart_backoff_max` for a backend that may die again).
    fn schedule_restart(&mut self, lived: Duration, spawn_error: Option<Arc<io::Error>>) {
        let cap = self.config.max_queued_commands.max(1);
        while let Ok(cmd) = self.cmds.try_recv() {
            enqueue(&mut self.backlog, cap, cmd);
        }
        let quick = lived < self.config.restart_backoff_max;
        self.quick_deaths = if quick {
            self.quick_deaths.saturating_add(1)
        } else {
            0
        };
        let delay = restart_delay(&self.config, self.quick_deaths);
        let now = Instant::now();
        self.restart_at = delay.and_then(|d| now.checked_add(d));
        let backoff = self.restart_at.map(|until| Backoff {
            until,
            failures: self.quick_deaths,
            spawn_error,
        });
        if let Some(delay) = delay {
            tracing::warn!(upstream = %self.name, failures = self.quick_deaths, ?delay, "the backend keeps failing; restarts after a backoff, operations meanwhile are refused");
        }
        self.shared.state().backoff = backoff;
        if let Some(err) = self.shared.refusal(now) {
            self.refuse_backlog(&err);
        }
    }

    async fn drive(&mut self, conn: Connection) -> Flow {
        self.generation += 1;
        let generation = self.generation;
        let started = Instant::now();
        let pid = conn.process.as_ref().and_then(|p| p.pid());
        {
            let mut state = self.shared.state();
            state.status.alive = true;
            state.status.pid = pid;
            state.status.era = None;
            state.status.generation = generation;
            state.current_info = None;
            state.backoff = None;
            if generation > 1 {
                state.status.restarts += 1;
            }
        }
        if generation > 1 {
            let _ = self
                .shared
                .events
                .send(UpstreamEvent::Restarted { generation });
        }
        tracing::info!(upstream = %self.name, generation, pid, "backend started");
        let label = Label {
            name: self.name.clone(),
            generation,
            pid,
        };
        if let Some(stderr) = conn.stderr {
            let cap = self.config.stderr_line_cap;
            self.runtime
                .spawn(Box::pin(drain_stderr(stderr, cap, label.clone())));
        }
        let monitor = conn.process.map(|process| {
            Monitor::spawn(
                &self.runtime,
                process,
                self.config.shutdown_grace,
                self.shared.clone(),
                label,
            )
        });
        let session = Session::new(self.config.core.clone(), Instant::now());
        *self.shared.output() = Some(Output::new(generation, conn.writer));
        *self.shared.live() = Some(Live {
            generation,
            session,
            routes: HashMap::new(),
            wakes_at: None,
        });
        let mut driver = Driver {
            shared: self.shared.clone(),
            generation,
            reader: conn.reader,
            rbuf: vec![0; self.config.read_buffer.max(512)],
            eof: false,
            ready_waiters: Vec::new(),
            deadline: None,
            timer: None,
            exit_deadline: None,
            monitor,
            batch_held: false,
            sup: self,
        };
        let end = poll_fn(|cx| driver.poll(cx)).await;
        driver.finish(end, started).await
    }
}

enum LiveEnd {
    /// The session closed on the backend's side (EOF, crash, failed
    /// handshake, broken pipe).
    Died,
    /// [`Upstream::close`](crate::Upstream::close).
    Close(oneshot::Sender<()>),
    /// Every handle was dropped.
    Abandoned,
}

/// What one session step did.
struct Step {
    /// Events were handled.
    busy: bool,
    /// The session has closed.
    closed: bool,
}

/// What one read from the backend brought.
enum Input {
    Nothing,
    Bytes(usize),
    End,
}

/// The driver of one backend generation: it owns the backend's output
/// and feeds it to the shared session, and writes to its stdin what the
/// callers could not write at once (see [`Output`]).
struct Driver<'a> {
    sup: &'a mut Supervisor,
    shared: Arc<Shared>,
    generation: u64,
    reader: Box<dyn AsyncRead + Send + Unpin>,
    rbuf: Vec<u8>,
    eof: bool,
    ready_waiters: Vec<oneshot::Sender<Result<Arc<BackendInfo>, UpstreamError>>>,
    /// When the session (or the exit grace) next needs the clock.
    deadline: Option<Instant>,
    timer: Option<(Instant, BoxFuture<'static, ()>)>,
    /// Set when the process exited: its output gets this long to end.
    exit_deadline: Option<Instant>,
    monitor: Option<Monitor>,
    /// Callers' bytes of a burst were held back for one turn of the
    /// runtime (see `Shared::transmit`): taken at the next poll.
    batch_held: bool,
}

impl Driver<'_> {
    /// One wakeup: rounds of commands, input, the session's drain and
    /// output, until nothing is left to do (or it is time to yield).
    fn poll(&mut self, cx: &mut Context<'_>) -> Poll<LiveEnd> {
        self.shared.driver.register(cx.waker());
        // A burst's first bytes wait until the tasks runnable now (the
        // rest of the burst) have run: the driver wakes itself, so it
        // comes back after them, and takes them all then.
        let hold = if self.batch_held {
            self.batch_held = false;
            self.shared.batch.store(false, Ordering::Release);
            false
        } else if self.shared.batch.load(Ordering::Acquire) {
            self.batch_held = true;
            cx.waker().wake_by_ref();
            true
        } else {
            false
        };
        for _ in 0..ROUNDS_PER_POLL {
            let now = Instant::now();
            let mut busy = match self.poll_commands(cx, now) {
                Ok(busy) => busy,
                Err(end) => return Poll::Ready(end),
            };
            let input = self.poll_input(cx);
            busy |= !matches!(input, Input::Nothing);
            busy |= self.poll_exit(cx, now);
            match self.step_session(input, now, hold) {
                Some(Step { busy: b, closed }) => {
                    if closed {
                        return Poll::Ready(LiveEnd::Died);
                    }
                    busy |= b;
                }
                None => return Poll::Ready(LiveEnd::Died),
            }
            busy |= self.poll_output(cx, now);
            busy |= self.poll_timer(cx, now);
            if !busy {
                return Poll::Pending;
            }
        }
        // Plenty done in one go: let other tasks run, then carry on.
        cx.waker().wake_by_ref();
        Poll::Pending
    }

    /// Carries out the backlog, then commands waiting in the channel (a
    /// bounded number per round). Returns whether any was handled.
    fn poll_commands(&mut self, cx: &mut Context<'_>, now: Instant) -> Result<bool, LiveEnd> {
        let mut busy = false;
        while let Some(cmd) = self.sup.backlog.pop_front() {
            busy = true;
            match self.command(cmd, now) {
                Handled::Done => {}
                Handled::Later(cmd) => {
                    // The session is closing: wait for the next backend.
                    self.sup.backlog.push_front(cmd);
                    return Ok(busy);
                }
                Handled::End(end) => return Err(end),
            }
        }
        for _ in 0..COMMANDS_PER_ROUND {
            match self.sup.cmds.poll_recv(cx) {
                Poll::Ready(Some(cmd)) => {
                    busy = true;
                    match self.command(cmd, now) {
                        Handled::Done => {}
                        Handled::Later(cmd) => {
                            let cap = self.sup.config.max_queued_commands.max(1);
                            enqueue(&mut self.sup.backlog, cap, cmd);
                            break;
                        }
                        Handled::End(end) => return Err(end),
                    }
                }
                Poll::Ready(None) => return Err(LiveEnd::Abandoned),
                Poll::Pending => break,
            }
        }
        Ok(busy)
    }

    /// Everything that touches the session, under one lock: the input, due
    /// deadlines, the events, the next batch of output (unless `hold`: a
    /// burst is gathering) and the next deadline. `None` if the session is
    /// gone.
    fn step_session(&mut self, input: Input, now: Instant, hold: bool) -> Option<Step> {
        let shared = self.shared.clone();
        let mut guard = shared.live();
        let live = guard.as_mut()?;
        let mut busy = false;
        match input {
            Input::Nothing => {}
            Input::Bytes(n) => live.session.handle_input(&self.rbuf[..n], now),
            Input::End => live.session.handle_eof(now),
        }
        if self.deadline.is_some_and(|at| at <= now) {
            self.timer = None;
            live.session.handle_timeout(now);
            if self.exit_deadline.is_some_and(|at| at <= now) {
                self.exit_deadline = None;
                if !self.eof {
                    tracing::warn!(upstream = %self.sup.name, generation = self.generation, "backend process exited but its output is still open; closing");
                    self.eof = true;
                    live.session.handle_eof(now);
                }
            }
        }
        while let Some(event) = live.session.poll_event() {
            busy = true;
            self.event(live, event);
        }
        if !hold {
            if let Some(output) = shared.output().as_mut() {
                output.take_from(&mut live.session);
            }
        }
        self.deadline = match (live.session.poll_timeout(), self.exit_deadline) {
            (Some(a), Some(b)) => Some(a.min(b)),
            (a, b) => a.or(b),
        };
        self.arm_timer(now);
        live.wakes_at = self.timer.as_ref().map(|(at, _)| *at);
        Some(Step {
            busy,
            closed: live.session.close_reason().is_some(),
        })
    }

    /// Carries out a command that came through the supervisor (callers use
    /// the shared session directly while a backend runs).
    fn command(&mut self, cmd: Command, now: Instant) -> Handled {
        let shared = self.shared.clone();
        let mut guard = shared.live();
        let Some(live) = guard.as_mut() else {
            return Handled::Later(cmd);
        };
        if let Command::Close(reply) = cmd {
            return Handled::End(LiveEnd::Close(reply));
        }
        if live.session.close_reason().is_some() {
            return Handled::Later(cmd);
        }
        match cmd {
            Command::Call { req, opts, call } => {
                let request = Request {
                    id: &req.id,
                    method: &req.method,
                    params: req.params.as_deref(),
                };
                match live.session.send_request(request, opts, now) {
                    Ok(id) => {
                        if call.accept(Ok((self.generation, id))) {
                            live.routes.insert(id, call);
                        } else {
                            // The caller gave up while the call was on its way.
                            live.session.cancel(id, Some("the caller went away"), now);
                        }
                    }
                    Err(e) => {
                        call.accept(Err(e.into()));
                    }
                }
            }
            Command::Notify {
                method,
                params,
                reply,
            } => {
                let result = live
                    .session
                    .send_notification(&method, params.as_deref())
                    .map_err(UpstreamError::from);
                let _ = reply.send(result);
            }
            Command::Ready(reply) => match live.session.backend_info() {
                Some(info) => {
                    let _ = reply.send(Ok(info.clone()));
                }
                None => {
                    let cap = self.sup.config.max_queued_commands.max(1);
                    if self.ready_waiters.len() >= cap {
                        let full = SendError::NotReadyQueueFull(self.ready_waiters.len());
                        let _ = reply.send(Err(full.into()));
                    } else {
                        self.ready_waiters.push(reply);
                    }
                }
            },
            Command::Respond {
                key,
                outcome,
                reply,
            } => {
                let result = if key.generation != self.generation {
                    Err(UpstreamError::StaleServerRequest(key))
                } else {
                    live.session
                        .respond(key.id, outcome.as_outcome(), now)
                        .map_err(UpstreamError::from)
                };
                let _ = reply.send(result);
            }
            Command::Close(reply) => return Handled::End(LiveEnd::Close(reply)),
        }
        Handled::Done
    }

    fn poll_input(&mut self, cx: &mut Context<'_>) -> Input {
        if self.eof {
            return Input::Nothing;
        }
        match Pin::new(&mut self.reader).poll_read(cx, &mut self.rbuf) {
            Poll::Ready(Ok(0)) => {
                self.eof = true;
                Input::End
            }
            Poll::Ready(Ok(n)) => Input::Bytes(n),
            Poll::Ready(Err(e)) if e.kind() == io::ErrorKind::Interrupted => {
                cx.waker().wake_by_ref();
                Input::Nothing
            }
            Poll::Ready(Err(e)) => {
                tracing::warn!(upstream = %self.sup.name, generation = self.generation, error = %e, "reading from the backend failed");
                self.eof = true;
                Input::End
            }
            Poll::Pending => Input::Nothing,
        }
    }

    /// Writes the batch taken from the session, when a caller could not
    /// (no room). Returns whether a batch got fully written (so the next
    /// round can take more) or failed.
    fn poll_output(&mut self, cx: &mut Context<'_>, now: Instant) -> bool {
        let written = match self.shared.output().as_mut() {
            Some(output) => output.poll_write_all(cx),
            None => return false,
        };
        match written {
            Poll::Ready(Ok(wrote)) => wrote,
            Poll::Ready(Err(e)) => {
                self.write_failed(e, now);
                true
            }
            Poll::Pending => false,
        }
    }

    fn write_failed(&mut self, e: io::Error, now: Instant) {
        tracing::warn!(upstream = %self.sup.name, generation = self.generation, error = %e, "writing to the backend failed; taking it as gone");
        if let Some(output) = self.shared.output().as_mut() {
            output.writer = None;
            output.buf.clear();
            output.pos = 0;
            output.need_flush = false;
        }
        if let Some(live) = self.shared.live().as_mut() {
            live.session.handle_eof(now);
        }
    }

    /// Notices the process exiting; its output then gets a grace period to
    /// end (a leftover child may hold it open).
    fn poll_exit(&mut self, cx: &mut Context<'_>, now: Instant) -> bool {
        let Some(monitor) = self.monitor.as_mut() else {
            return false;
        };
        let Some(exited) = monitor.exited() else {
            return false;
        };
        match Pin::new(exited).poll(cx) {
            Poll::Ready(exit) => {
                monitor.exit_seen();
                let exit: Option<ProcessExit> = exit.ok().flatten();
                tracing::debug!(upstream = %self.sup.name, generation = self.generation, ?exit, "backend process ended");
                if !self.eof {
                    self.exit_deadline = Some(now + self.sup.config.shutdown_grace);
                }
                true
            }
            Poll::Pending => false,
        }
    }

    /// Arms a timer for the next deadline, unless one is armed for an
    /// earlier time: a spurious wakeup is harmless, and this avoids
    /// re-arming on every call that ends (and, kept while no deadline is
    /// set, waking for the calls that come next: see [`Live::wakes_at`]).
    fn arm_timer(&mut self, now: Instant) {
        let Some(want) = self.deadline.filter(|want| *want > now) else {
            return;
        };
        if !matches!(&self.timer, Some((at, _)) if *at <= want) {
            self.timer = Some((want, self.sup.runtime.sleep_until(want)));
        }
    }

    /// Polls the armed timer; `true` once a deadline is due or the timer
    /// fires.
    fn poll_timer(&mut self, cx: &mut Context<'_>, now: Instant) -> bool {
        if self.deadline.is_some_and(|want| want <= now) {
            return true;
        }
        let Some((_, sleep)) = self.timer.as_mut() else {
            return false;
        };
        if sleep.as_mut().poll(cx).is_pending() {
            return false;
        }
        // Due now, or an earlier timer to re-arm: either way, go round.
        self.timer = None;
        true
    }

    fn key(&self, id: mcpod_core::ServerRequestId) -> ServerRequestKey {
        ServerRequestKey {
            generation: self.generation,
            id,
        }
    }

    fn event(&mut self, live: &mut Live, event: Event) {
        match event {
            Event::Ready(info) => {
                tracing::info!(upstream = %self.sup.name, generation = self.generation, era = ?info.era, version = %info.protocol_version, "backend ready");
                {
                    let mut state = self.shared.state();
                    state.status.era = Some(info.era);
                    state.status.last_error = None;
                    state.current_info = Some(info.clone());
                    state.last_info = Some(info.clone());
                }
                for waiter in self.ready_waiters.drain(..) {
                    let _ = waiter.send(Ok(info.clone()));
                }
            }
            Event::Response {
                call,
                frame,
                is_error,
            } => {
                if let Some(route) = live.routes.remove(&call) {
                    route.finish(CallItem::Response { frame, is_error });
                }
            }
            Event::CallEnded {
                call,
                reason,
                frame,
            } => {
                if let Some(route) = live.routes.remove(&call) {
                    route.finish(CallItem::Ended { reason, frame });
                }
            }
            Event::Notification {
                route: Route::Call(call),
                method,
                frame,
            } => {
                let Some(route) = live.routes.get(&call) else {
                    return;
                };
                if route
                    .push(CallItem::Notification { method, frame })
                    .is_err()
                {
                    tracing::debug!(upstream = %self.sup.name, %call, "caller not reading its call stream; notification dropped");
                }
            }
            Event::Notification {
                route: route @ (Route::Broadcast | Route::Owner(_)),
                method,
                frame,
            } => {
                let owner = match route {
                    Route::Owner(owner) => Some(owner),
                    _ => None,
                };
                let _ = self.shared.events.send(UpstreamEvent::Notification {
                    method,
                    frame,
                    owner,
                });
            }
            Event::ServerRequest(request) => {
                let key = self.key(request.id);
                let mut item = CallItem::ServerRequest {
                    key,
                    method: request.method,
                    params: request.params,
                };
                if let Route::Call(call) = request.route {
                    if let Some(route) = live.routes.get(&call) {
                        match route.push(item) {
                            Ok(()) => return,
                            Err(back) => item = back,
                        }
                    }
                }
                let CallItem::ServerRequest {
                    key,
                    method,
                    params,
                } = item
                else {
                    return;
                };
                let owner = match request.route {
                    Route::Owner(owner) => Some(owner),
                    _ => None,
                };
                let event = UpstreamEvent::ServerRequest {
                    key,
                    method,
                    params,
                    owner,
                };
                if self.shared.events.send(event).is_err() {
                    // Nobody listens: answer at once rather than leave the
                    // backend waiting.
                    let _ = live.session.respond(
                        key.id,
                        Outcome::Error {
                            code: mcpod_core::envelope::INTERNAL_ERROR,
                            message: "no client is connected to answer this request",
                            data: None,
                        },
                        Instant::now(),
                    );
                }
            }
            Event::ServerRequestCancelled(id) => {
                let key = self.key(id);
                let _ = self
                    .shared
                    .events
                    .send(UpstreamEvent::ServerRequestCancelled(key));
            }
            Event::PeerFault(fault) => {
                tracing::warn!(upstream = %self.sup.name, generation = self.generation, %fault, "backend misbehaved");
            }
            Event::Closed(reason) => {
                tracing::info!(upstream = %self.sup.name, generation = self.generation, %reason, "backend session closed");
                let err = match &reason {
                    CloseReason::HandshakeFailed(why) => {
                        UpstreamError::HandshakeFailed(why.to_string())
                    }
                    CloseReason::Local => UpstreamError::Closed,
                    other => UpstreamError::BackendGone(other.clone()),
                };
                if !matches!(reason, CloseReason::Local) {
                    let mut state = self.shared.state();
                    if state.current_info.is_none() {
                        state.status.last_error = Some(err.to_string());
                    }
                }
                for waiter in self.ready_waiters.drain(..) {
                    let _ = waiter.send(Err(err.clone()));
                }
            }
            other => {
                tracing::debug!(upstream = %self.sup.name, event = ?other, "unhandled session event");
            }
        }
    }

    /// Ends this generation: stops and reaps the process (waiting for it on
    /// a close), and updates the status.
    async fn finish(mut self, end: LiveEnd, started: Instant) -> Flow {
        let now = Instant::now();
        let (flow, reply) = match end {
            LiveEnd::Died => (Flow::Continue, None),
            LiveEnd::Close(reply) => (Flow::Stop, Some(reply)),
            LiveEnd::Abandoned => (Flow::Stop, None),
        };
        let shared = self.shared.clone();
        let gone = {
            let mut guard = shared.live();
            if let (Flow::Stop, Some(live)) = (&flow, guard.as_mut()) {
                live.session.close(now);
                while let Some(event) = live.session.poll_event() {
                    self.event(live, event);
                }
            }
            // From now on callers go through the supervisor.
            guard.take()
        };
        drop(gone);
        // Closing the backend's stdin is the first step of its shutdown.
        let output = shared.output().take();
        drop(output);
        match (&flow, self.monitor.take()) {
            (Flow::Stop, Some(monitor)) => monitor.stop_and_wait().await,
            (Flow::Continue, Some(mut monitor)) => monitor.stop(),
            (_, None) => {}
        }
        {
            let mut state = shared.state();
            state.status.alive = false;
            state.status.pid = None;
            state.status.era = None;
            state.current_info = None;
            if let Flow::Stop = flow {
                state.status.closed = true;
            }
        }
        if let Flow::Continue = flow {
            self.sup.schedule_restart(started.elapsed(), None);
        }
        if let Some(reply) = reply {
            let _ = reply.send(());
        }
        flow
    }
}

/// Queues a command for the next backend, or fails it when `cap` already
/// wait (a close is always kept: it ends the wait).
fn enqueue(backlog: &mut VecDeque<Command>, cap: usize, cmd: Command) {
    match cmd {
        Command::Close(_) => backlog.push_front(cmd),
        cmd if backlog.len() >= cap => {
            refuse(cmd, SendError::NotReadyQueueFull(backlog.len()).into());
        }
        cmd => backlog.push_back(cmd),
    }
}

/// How long to wait before the next backend after `quick_deaths` quick
/// deaths in a row: none after the first (a one-off crash restarts at
/// once), then `restart_backoff_min` doubling each time, capped at
/// `restart_backoff_max` (or at `restart_backoff_min` if that is larger).
/// `None`: no wait.
fn restart_delay(config: &UpstreamConfig, quick_deaths: u32) -> Option<Duration> {
    let doublings = quick_deaths.checked_sub(2)?;
    let min = config.restart_backoff_min;
    let cap = config.restart_backoff_max.max(min);
    let delay = min.saturating_mul(1u32 << doublings.min(31)).min(cap);
    (!delay.is_zero()).then_some(delay)
}

/// What became of a command.
enum Handled {
    Done,
    /// No session takes work now: keep it for the next backend.
    Later(Command),
    End(LiveEnd),
}

#[cfg(test)]
mod tests {
    use std::time::Duration;

    use super::restart_delay;
    use crate::config::UpstreamConfig;

    fn config(min_ms: u64, max: Duration) -> UpstreamConfig {
        UpstreamConfig {
            restart_backoff_min: Duration::from_millis(min_ms),
            restart_backoff_max: max,
            ..UpstreamConfig::default()
        }
    }

    #[test]
    fn the_backoff_starts_at_the_second_quick_death_doubles_and_is_capped() {
        let c = config(100, Duration::from_millis(1000));
        let ms = |n| restart_delay(&c, n).map(|d| d.as_millis());
        let got: Vec<_> = (0..8).map(ms).collect();
        let want = [
            None,
            None,
            Some(100),
            Some(200),
            Some(400),
            Some(800),
            Some(1000),
            Some(1000),
        ];
        assert_eq!(got, want);
        // However many deaths: never beyond the cap, never a panic.
        for n in [31, 32, 33, 64, u32::MAX] {
            assert_eq!(ms(n), Some(1000), "{n}");
        }
        // A cap below the minimum: the minimum is the cap.
        let c = config(500, Duration::from_millis(10));
        assert_eq!(restart_delay(&c, 9), Some(Duration::from_millis(500)));
        // Absurd settings saturate instead of overflowing.
        let c = config(u64::MAX, Duration::MAX);
        assert!(restart_delay(&c, u32::MAX).is_some());
        // No minimum: no backoff at all.
        let c = config(0, Duration::from_secs(10));
        assert_eq!(restart_delay(&c, 5), None);
    }
}

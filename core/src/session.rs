//! [`Session`]: the client side of one stdio MCP server, shared by many
//! callers.

use std::collections::{BTreeSet, VecDeque};
use std::sync::{Arc, LazyLock};
use std::time::{Duration, Instant};

use memchr::memmem::Finder;
use rustc_hash::FxHashMap;
use serde::Deserialize;
use serde_json::value::RawValue;

use crate::config::{Config, EraMode, MODERN_VERSIONS};
use crate::envelope::{ErrorObject, Id, Message, UNSUPPORTED_PROTOCOL_VERSION};
use crate::event::{
    BackendInfo, CallId, CloseReason, EndReason, Era, Event, Owner, PeerFault, Route, SendError,
    ServerRequest, ServerRequestId,
};
use crate::framing::{FrameError, Framer};
use crate::json::{self, Entries};
use crate::turn::TurnQueue;

use crate::meta::{
    CLIENT_CAPABILITIES as META_CLIENT_CAPABILITIES, CLIENT_INFO as META_CLIENT_INFO,
    ENVELOPE_KEYS, META, PROGRESS_TOKEN, PROTOCOL_VERSION as META_PROTOCOL_VERSION,
    SUBSCRIPTION_ID as META_SUBSCRIPTION_ID,
};

/// What every 2026-07-28 envelope key starts with.
const ENVELOPE_PREFIX: &str = "io.modelcontextprotocol/";

/// A request from a caller, in the caller's own terms.
#[derive(Debug, Clone, Copy)]
pub struct Request<'a> {
    /// The caller's id: returned byte-exact in the response frame.
    pub id: &'a RawValue,
    /// The method.
    pub method: &'a str,
    /// Raw params, if any.
    pub params: Option<&'a RawValue>,
}

/// When a call times out.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum Deadline {
    /// After [`Config::default_call_timeout`].
    #[default]
    Default,
    /// After this long (never, if that is beyond what the clock holds).
    After(Duration),
    /// Never (for long-lived calls such as `subscriptions/listen`).
    Never,
}

/// Per-call options.
#[derive(Debug, Clone, Copy, Default)]
pub struct RequestOptions {
    /// The call's deadline.
    pub deadline: Deadline,
    /// Who the call belongs to. An owner's in-flight calls have unique
    /// caller ids (a duplicate is refused) and can be cancelled by them
    /// ([`Session::cancel_caller`]); backend traffic that names no call
    /// goes to the only owner with calls in flight ([`Route::Owner`]).
    pub owner: Option<Owner>,
    /// The call may send server requests (sampling, elicitation, roots):
    /// an *asking* call. On a legacy backend asking calls take turns, so
    /// that a server request, which names no call, can be given to the
    /// one that runs: an asking call is sent only while no other one runs
    /// (one waiting for an answer to its question does not run), and
    /// waits its turn otherwise — queued, its deadline running, owners
    /// served round robin ([`Config::max_queued_asking`] at most). Calls
    /// that do not ask are never held. A modern backend sends no server
    /// requests: there the flag does nothing.
    pub may_ask: bool,
}

/// The answer to a server→client request.
#[derive(Debug, Clone, Copy)]
pub enum Outcome<'a> {
    /// A result object.
    Result(&'a RawValue),
    /// An error.
    Error {
        /// JSON-RPC error code.
        code: i64,
        /// Message.
        message: &'a str,
        /// Optional raw data.
        data: Option<&'a RawValue>,
    },
}

/// Counters of what the session has dropped or survived.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Stats {
    /// Frames received from the backend.
    pub frames_in: u64,
    /// Responses to calls that had already ended, dropped.
    pub late_responses: u64,
    /// Responses to ids never issued, dropped.
    pub unknown_responses: u64,
    /// Progress or subscription notifications for calls no longer open.
    pub orphan_notifications: u64,
    /// Lines that were not JSON-RPC, or too long.
    pub bad_frames: u64,
}

#[derive(Debug)]
enum Phase {
    /// `server/discover` sent; `fallback`: on failure, try `initialize`.
    Probing {
        id: u64,
        retried: bool,
        fallback: bool,
    },
    /// `initialize` sent; `late_probe`: a `server/discover` that timed out
    /// and may still be answered (a slow modern server that adopted the
    /// 2026-07-28 era from it refuses the `initialize`).
    Initializing {
        id: u64,
        late_probe: Option<u64>,
    },
    Ready(Arc<BackendInfo>),
    Closed(CloseReason),
}

#[derive(Debug)]
struct Call {
    caller_id: Id,
    owner: Option<Owner>,
    /// The caller's own progress token, restored on progress notifications.
    caller_token: Option<Box<str>>,
    deadline: Option<Instant>,
    /// Server requests given to this call and not answered yet (an answer
    /// held back for the turn counts as not given yet).
    questions: u32,
    /// An asking call ([`RequestOptions::may_ask`]) on a legacy backend.
    may_ask: bool,
    /// A `subscriptions/listen` stream: it takes only the notifications
    /// tagged with it, never traffic that names no call.
    listen: bool,
    /// Held until the backend is ready; `None` once sent.
    unsent: Option<Unsent>,
}

/// A server→client request awaiting its answer.
#[derive(Debug)]
struct PendingServerRequest {
    /// The backend's id for it.
    raw_id: Box<RawValue>,
    /// The call it was given to, if one.
    call: Option<u64>,
}

/// An answer held back until its call's turn.
#[derive(Debug)]
struct HeldAnswer {
    call: u64,
    /// The answer line, ready for the backend.
    line: Vec<u8>,
    /// When the client answered.
    since: Instant,
}

#[derive(Debug)]
struct Unsent {
    method: Box<str>,
    params: Option<Box<RawValue>>,
}

#[derive(Debug)]
enum Queued {
    Call(u64),
    Notification(Vec<u8>),
}

/// One stdio MCP server as seen by its callers: a pure state machine.
///
/// Feed it the backend's output with [`handle_input`](Self::handle_input),
/// submit work with [`send_request`](Self::send_request) and friends, and
/// after every such call drain, in this order, [`poll_transmit`](Self::poll_transmit)
/// (bytes for the backend's stdin), [`poll_timeout`](Self::poll_timeout)
/// (when to call [`handle_timeout`](Self::handle_timeout)) and
/// [`poll_event`](Self::poll_event). Every call ends exactly once: with a
/// [`Event::Response`] or an [`Event::CallEnded`].
#[derive(Debug)]
pub struct Session {
    framer: Framer,
    state: State,
}

#[derive(Debug)]
struct State {
    config: Config,
    phase: Phase,
    next_id: u64,
    calls: FxHashMap<u64, Call>,
    /// Calls that have been written to the backend.
    sent_calls: usize,
    /// Sent calls per owner (owners with none are removed).
    owners: FxHashMap<Owner, usize>,
    /// Open calls of owners, by the caller's id.
    by_caller: FxHashMap<(Owner, Id), u64>,
    deadlines: BTreeSet<(Instant, u64)>,
    queued: VecDeque<Queued>,
    tx: Vec<u8>,
    events: VecDeque<Event>,
    server_requests: FxHashMap<u64, PendingServerRequest>,
    /// The call the last server request went to, and when it came: a
    /// request right after it is most likely the same call's next one.
    last_attributed: Option<(u64, Instant)>,
    /// Asking calls written to the backend.
    asking_sent: Vec<u64>,
    /// Asking calls held unsent until it is their turn.
    turn_queue: TurnQueue,
    /// Answers to the last open question of an asking call, held back
    /// while another asking call runs.
    held_answers: VecDeque<HeldAnswer>,
    /// When the turn must be looked at again (a burst window closing, a
    /// held answer's time running out).
    turn_timer: Option<Instant>,
    next_server_request: u64,
    stats: Stats,
}

impl Session {
    /// A new session; starts era detection (or the handshake) at once, so
    /// drain [`poll_transmit`](Self::poll_transmit) right away.
    pub fn new(config: Config, now: Instant) -> Self {
        let framer = Framer::new(config.max_frame_len);
        let mut state = State {
            phase: Phase::Closed(CloseReason::Local),
            next_id: 1,
            calls: FxHashMap::default(),
            sent_calls: 0,
            owners: FxHashMap::default(),
            by_caller: FxHashMap::default(),
            deadlines: BTreeSet::new(),
            queued: VecDeque::new(),
            tx: Vec::new(),
            events: VecDeque::new(),
            server_requests: FxHashMap::default(),
            last_attributed: None,
            asking_sent: Vec::new(),
            turn_queue: TurnQueue::default(),
            held_answers: VecDeque::new(),
            turn_timer: None,
            next_server_request: 1,
            stats: Stats::default(),
            config,
        };
        match state.config.era_mode {
            EraMode::Auto | EraMode::Modern => {
                let version = state.config.modern_version.clone();
                state.send_discover(&version, false, now);
            }
            EraMode::Legacy => state.send_initialize(None, now),
        }
        Session { framer, state }
    }

    /// Feeds bytes the backend wrote to its stdout.
    pub fn handle_input(&mut self, bytes: &[u8], now: Instant) {
        if matches!(self.state.phase, Phase::Closed(_)) {
            return;
        }
        let state = &mut self.state;
        self.framer.decode(bytes, |frame| match frame {
            Ok(frame) => state.handle_frame(frame, now),
            Err(e) => state.handle_bad_line(e, now),
        });
        self.state.pump_turn(now);
    }

    /// The backend's stdout ended: every open call ends, the session closes.
    pub fn handle_eof(&mut self, _now: Instant) {
        self.state.close_with(CloseReason::Eof);
    }

    /// Ends what has expired by `now`. A spurious call does nothing.
    pub fn handle_timeout(&mut self, now: Instant) {
        self.state.handle_timeout(now);
        self.state.pump_turn(now);
    }

    /// Submits a caller's request. The caller's id may be anything MCP
    /// allows and may collide with other callers' ids.
    pub fn send_request(
        &mut self,
        req: Request<'_>,
        opts: RequestOptions,
        now: Instant,
    ) -> Result<CallId, SendError> {
        let sent = self.state.send_request(req, opts, now);
        self.state.pump_turn(now);
        sent
    }

    /// Forwards a caller's notification. `notifications/initialized` is
    /// swallowed: the session did the handshake itself.
    pub fn send_notification(
        &mut self,
        method: &str,
        params: Option<&RawValue>,
    ) -> Result<(), SendError> {
        self.state.send_notification(method, params)
    }

    /// Cancels a call: the backend gets `notifications/cancelled` if it saw
    /// the request, and the call ends with [`EndReason::Cancelled`]. Returns
    /// whether the call was still open.
    pub fn cancel(&mut self, call: CallId, reason: Option<&str>, now: Instant) -> bool {
        let open = self.state.end_call(call.0, EndReason::Cancelled, reason);
        self.state.pump_turn(now);
        open
    }

    /// Cancels the open call that `owner` made with the caller id
    /// `caller_id` (its exact JSON text), as [`cancel`](Self::cancel) does.
    /// Returns whether there was one.
    pub fn cancel_caller(
        &mut self,
        owner: Owner,
        caller_id: &str,
        reason: Option<&str>,
        now: Instant,
    ) -> bool {
        let Ok(id) = Id::parse(caller_id) else {
            return false;
        };
        let open = match self.state.by_caller.get(&(owner, id)) {
            Some(&call) => self.state.end_call(call, EndReason::Cancelled, reason),
            None => false,
        };
        self.state.pump_turn(now);
        open
    }

    /// Answers a server→client request. The answer to the last open
    /// question of an asking call ([`RequestOptions::may_ask`]) is held
    /// back while another asking call runs, until that one asks or ends,
    /// or for [`Config::answer_hold`] at most: so only one asking call runs
    /// at a time.
    pub fn respond(
        &mut self,
        to: ServerRequestId,
        outcome: Outcome<'_>,
        now: Instant,
    ) -> Result<(), SendError> {
        let answered = self.state.respond(to, outcome, now);
        self.state.pump_turn(now);
        answered
    }

    /// Closes the session: every open call ends with
    /// [`EndReason::BackendClosed`]; nothing more is sent. The driver then
    /// closes the backend's stdin.
    pub fn close(&mut self, _now: Instant) {
        self.state.close_with(CloseReason::Local);
    }

    /// Appends every byte queued for the backend's stdin to `out`. Returns
    /// whether anything was appended.
    #[must_use]
    pub fn poll_transmit(&mut self, out: &mut Vec<u8>) -> bool {
        let tx = &mut self.state.tx;
        if tx.is_empty() {
            return false;
        }
        if out.is_empty() {
            std::mem::swap(out, tx);
        } else {
            out.extend_from_slice(tx);
            tx.clear();
        }
        true
    }

    /// The next event, if any.
    #[must_use]
    pub fn poll_event(&mut self) -> Option<Event> {
        self.state.events.pop_front()
    }

    /// Whether [`poll_event`](Self::poll_event) has an event to give (a
    /// driver that did not cause the last mutation checks this to know
    /// whether it must drain).
    #[must_use]
    pub fn has_events(&self) -> bool {
        !self.state.events.is_empty()
    }

    /// When [`handle_timeout`](Self::handle_timeout) is next due.
    #[must_use]
    pub fn poll_timeout(&self) -> Option<Instant> {
        let call = self.state.deadlines.first().map(|(at, _)| *at);
        match (call, self.state.turn_timer) {
            (Some(a), Some(b)) => Some(a.min(b)),
            (a, b) => a.or(b),
        }
    }

    /// What discovery or the handshake found, once ready.
    pub fn backend_info(&self) -> Option<&Arc<BackendInfo>> {
        match &self.state.phase {
            Phase::Ready(info) => Some(info),
            _ => None,
        }
    }

    /// Why the session closed, if it has.
    pub fn close_reason(&self) -> Option<&CloseReason> {
        match &self.state.phase {
            Phase::Closed(reason) => Some(reason),
            _ => None,
        }
    }

    /// Calls open (queued or sent).
    pub fn calls_in_flight(&self) -> usize {
        self.state.calls.len()
    }

    /// Server→client requests awaiting an answer.
    pub fn server_requests_pending(&self) -> usize {
        self.state.server_requests.len()
    }

    /// Asking calls ([`RequestOptions::may_ask`]) waiting for their turn,
    /// not sent yet.
    pub fn calls_waiting_for_turn(&self) -> usize {
        self.state.turn_queue.len()
    }

    /// Answers held back until their asking call's turn.
    pub fn answers_held(&self) -> usize {
        self.state.held_answers.len()
    }

    /// Bytes queued for the backend, not yet taken by `poll_transmit`.
    pub fn queued_output(&self) -> usize {
        self.state.tx.len()
    }

    /// Counters of dropped and survived traffic.
    pub fn stats(&self) -> &Stats {
        &self.state.stats
    }

    /// The configuration in force.
    pub fn config(&self) -> &Config {
        &self.state.config
    }
}

#[derive(Deserialize)]
struct DiscoverResult<'a> {
    #[serde(rename = "supportedVersions", default)]
    supported_versions: Vec<String>,
    #[serde(borrow)]
    capabilities: Option<&'a RawValue>,
    #[serde(rename = "_meta", borrow, default)]
    meta: Option<DiscoverMeta<'a>>,
    instructions: Option<String>,
}

#[derive(Deserialize)]
struct DiscoverMeta<'a> {
    #[serde(rename = "io.modelcontextprotocol/serverInfo", borrow)]
    server_info: Option<&'a RawValue>,
}

#[derive(Deserialize)]
struct InitializeResult<'a> {
    #[serde(rename = "protocolVersion")]
    protocol_version: String,
    #[serde(borrow)]
    capabilities: Option<&'a RawValue>,
    #[serde(rename = "serverInfo", borrow)]
    server_info: Option<&'a RawValue>,
    instructions: Option<String>,
}

#[derive(Deserialize)]
struct UnsupportedVersionData {
    #[serde(default)]
    supported: Vec<String>,
}

#[derive(Deserialize)]
struct ProgressParams<'a> {
    #[serde(rename = "progressToken", borrow)]
    token: &'a RawValue,
}

#[derive(Deserialize)]
struct TaggedParams<'a> {
    #[serde(rename = "_meta", borrow)]
    meta: Option<SubscriptionMeta<'a>>,
}

#[derive(Deserialize)]
struct SubscriptionMeta<'a> {
    #[serde(rename = "io.modelcontextprotocol/subscriptionId", borrow)]
    subscription: Option<&'a RawValue>,
}

#[derive(Deserialize)]
struct CancelledParams<'a> {
    #[serde(rename = "requestId", borrow)]
    request_id: &'a RawValue,
    #[serde(default)]
    reason: Option<String>,
}

fn boxed(raw: &RawValue) -> Box<RawValue> {
    raw.to_owned()
}

/// The keys looked for in every call's params, each searcher built once:
/// building one costs more than searching a small params object.
static FIND_PROGRESS_TOKEN: LazyLock<Finder<'static>> =
    LazyLock::new(|| Finder::new(PROGRESS_TOKEN));
static FIND_PROTOCOL_VERSION: LazyLock<Finder<'static>> =
    LazyLock::new(|| Finder::new(META_PROTOCOL_VERSION));
static FIND_CLIENT_CAPABILITIES: LazyLock<Finder<'static>> =
    LazyLock::new(|| Finder::new(META_CLIENT_CAPABILITIES));
static FIND_ENVELOPE_PREFIX: LazyLock<Finder<'static>> =
    LazyLock::new(|| Finder::new(ENVELOPE_PREFIX));
static FIND_SUBSCRIPTION_ID: LazyLock<Finder<'static>> =
    LazyLock::new(|| Finder::new(META_SUBSCRIPTION_ID));

/// Whether `haystack` holds what `needle` searches for.
fn contains(haystack: &str, needle: &Finder<'_>) -> bool {
    needle.find(haystack.as_bytes()).is_some()
}

impl State {
    fn next_id(&mut self) -> u64 {
        let id = self.next_id;
        self.next_id += 1;
        id
    }

    fn client_info_json(&self) -> String {
        let mut out = Vec::new();
        out.extend_from_slice(b"{\"name\":");
        json::push_str_literal(&mut out, &self.config.client_name);
        out.extend_from_slice(b",\"version\":");
        json::push_str_literal(&mut out, &self.config.client_version);
        out.push(b'}');
        String::from_utf8(out).unwrap_or_default()
    }

    fn send_discover(&mut self, version: &str, retried: bool, now: Instant) {
        let id = self.next_id();
        let mut params = Vec::new();
        params.extend_from_slice(b"{\"_meta\":{\"");
        params.extend_from_slice(META_PROTOCOL_VERSION.as_bytes());
        params.extend_from_slice(b"\":");
        json::push_str_literal(&mut params, version);
        params.extend_from_slice(b",\"");
        params.extend_from_slice(META_CLIENT_CAPABILITIES.as_bytes());
        params.extend_from_slice(b"\":");
        json::push_raw(&mut params, &self.config.client_capabilities);
        params.extend_from_slice(b",\"");
        params.extend_from_slice(META_CLIENT_INFO.as_bytes());
        params.extend_from_slice(b"\":");
        params.extend_from_slice(self.client_info_json().as_bytes());
        params.extend_from_slice(b"}}");
        let params = String::from_utf8(params).unwrap_or_default();
        json::push_request(&mut self.tx, id, "server/discover", Some(&params));
        let timeout = match self.config.era_mode {
            EraMode::Auto => self.config.probe_timeout,
            _ => self.config.handshake_timeout,
        };
        if let Some(at) = now.checked_add(timeout) {
            self.deadlines.insert((at, id));
        }
        self.phase = Phase::Probing {
            id,
            retried,
            fallback: self.config.era_mode == EraMode::Auto,
        };
    }

    fn send_initialize(&mut self, late_probe: Option<u64>, now: Instant) {
        let id = self.next_id();
        let mut params = Vec::new();
        params.extend_from_slice(b"{\"protocolVersion\":");
        json::push_str_literal(&mut params, &self.config.legacy_version);
        params.extend_from_slice(b",\"capabilities\":");
        json::push_raw(&mut params, &self.config.client_capabilities);
        params.extend_from_slice(b",\"clientInfo\":");
        params.extend_from_slice(self.client_info_json().as_bytes());
        params.push(b'}');
        let params = String::from_utf8(params).unwrap_or_default();
        json::push_request(&mut self.tx, id, "initialize", Some(&params));
        if let Some(at) = now.checked_add(self.config.handshake_timeout) {
            self.deadlines.insert((at, id));
        }
        self.phase = Phase::Initializing { id, late_probe };
    }

    /// A line that was no frame (too long). When it was a response whose
    /// id could be read, what it answered ends now: a call with
    /// [`EndReason::ResponseTooLarge`], the handshake as if it had failed.
    fn handle_bad_line(&mut self, e: FrameError, now: Instant) {
        if matches!(self.phase, Phase::Closed(_)) {
            return;
        }
        self.stats.bad_frames += 1;
        let FrameError::Oversize { limit, id } = &e;
        let (limit, backend_id) = (
            *limit,
            id.as_ref().and_then(|id| id.as_json().parse::<u64>().ok()),
        );
        self.events.push_back(Event::PeerFault(e.into()));
        let Some(backend_id) = backend_id else {
            return;
        };
        match self.phase {
            Phase::Probing {
                id: probe,
                fallback,
                ..
            } if probe == backend_id => {
                self.deadlines.retain(|&(_, d)| d != probe);
                match fallback {
                    true => self.send_initialize(None, now),
                    false => self.close_with(CloseReason::HandshakeFailed(
                        format!(
                            "the server/discover result was larger than the {limit}-byte limit"
                        )
                        .into(),
                    )),
                }
            }
            Phase::Initializing { id: init, .. } if init == backend_id => {
                self.close_with(CloseReason::HandshakeFailed(
                    format!("the initialize result was larger than the {limit}-byte limit").into(),
                ));
            }
            _ => {
                let sent = matches!(self.calls.get(&backend_id), Some(c) if c.unsent.is_none());
                if sent {
                    self.end_call(backend_id, EndReason::ResponseTooLarge { limit }, None);
                }
            }
        }
    }

    fn handle_frame(&mut self, frame: &[u8], now: Instant) {
        if matches!(self.phase, Phase::Closed(_)) {
            return; // a handshake failure mid-input: the rest is moot
        }
        self.stats.frames_in += 1;
        let message = match Message::parse(frame) {
            Ok(m) => m,
            Err(e) => {
                self.stats.bad_frames += 1;
                self.events.push_back(Event::PeerFault(e.into()));
                return;
            }
        };
        match message {
            Message::Response { id, result } => self.handle_response(frame, id, Ok(result), now),
            Message::Error {
                id: Some(id),
                error,
            } => self.handle_response(frame, id, Err(error), now),
            Message::Error { id: None, error } => {
                self.events
                    .push_back(Event::PeerFault(PeerFault::UnroutableError(
                        error.get().to_owned(),
                    )));
            }
            Message::Notification { method, params } => {
                self.handle_notification(frame, &method, params)
            }
            Message::Request { id, method, params } => {
                self.handle_server_request(id, &method, params, now)
            }
        }
    }

    fn handle_response(
        &mut self,
        frame: &[u8],
        id: &RawValue,
        outcome: Result<&RawValue, &RawValue>,
        now: Instant,
    ) {
        let Ok(backend_id) = id.get().parse::<u64>() else {
            self.stats.unknown_responses += 1;
            self.events
                .push_back(Event::PeerFault(PeerFault::UnknownResponse(
                    id.get().into(),
                )));
            return;
        };
        match self.phase {
            Phase::Probing {
                id: probe,
                retried,
                fallback,
            } if probe == backend_id => {
                self.deadlines.retain(|&(_, d)| d != probe);
                return self.handle_discover(outcome, retried, fallback, now);
            }
            Phase::Initializing {
                id: init,
                late_probe: Some(probe),
            } if probe == backend_id => {
                // The timed-out probe answered after all: a result means
                // the server speaks 2026-07-28 (and will refuse the
                // handshake); an error is the legacy answer, moot now.
                if outcome.is_ok() {
                    self.deadlines.retain(|&(_, d)| d != init);
                    return self.handle_discover(outcome, false, false, now);
                }
                self.phase = Phase::Initializing {
                    id: init,
                    late_probe: None,
                };
                return;
            }
            Phase::Initializing {
                id: init,
                late_probe,
            } if init == backend_id => {
                self.deadlines.retain(|&(_, d)| d != init);
                return self.handle_initialize(outcome, late_probe, now);
            }
            _ => {}
        }
        let sent = matches!(self.calls.get(&backend_id), Some(call) if call.unsent.is_none());
        if !sent {
            if backend_id < self.next_id {
                self.stats.late_responses += 1;
                self.events
                    .push_back(Event::PeerFault(PeerFault::LateResponse(backend_id)));
            } else {
                self.stats.unknown_responses += 1;
                self.events
                    .push_back(Event::PeerFault(PeerFault::UnknownResponse(
                        id.get().into(),
                    )));
            }
            return;
        }
        let Some(call) = self.remove_call(backend_id) else {
            return;
        };
        let frame = json::splice(
            frame,
            json::span_in(frame, id.get()),
            call.caller_id.as_json(),
        );
        self.events.push_back(Event::Response {
            call: CallId(backend_id),
            frame,
            is_error: outcome.is_err(),
        });
    }

    fn handle_discover(
        &mut self,
        outcome: Result<&RawValue, &RawValue>,
        retried: bool,
        may_fall_back: bool,
        now: Instant,
    ) {
        let fallback = |this: &mut Self, why: String, now: Instant| match may_fall_back {
            true => this.send_initialize(None, now),
            false => this.close_with(CloseReason::HandshakeFailed(why.into())),
        };
        match outcome {
            Ok(result) => {
                let parsed = serde_json::from_str::<DiscoverResult<'_>>(result.get());
                match parsed {
                    Ok(d) if d.capabilities.is_some() => {
                        let version =
                            pick_modern_version(&d.supported_versions, &self.config.modern_version);
                        let info = BackendInfo {
                            era: Era::Modern,
                            protocol_version: version,
                            supported_versions: d.supported_versions,
                            capabilities: d.capabilities.map(boxed).unwrap_or_else(empty_object),
                            server_info: d.meta.and_then(|m| m.server_info).map(boxed),
                            instructions: d.instructions,
                            result: boxed(result),
                        };
                        self.become_ready(info);
                    }
                    _ => fallback(
                        self,
                        "server/discover returned an invalid result".into(),
                        now,
                    ),
                }
            }
            Err(error) => {
                let error = ErrorObject::parse(error);
                let code = error.as_ref().map(|e| e.code);
                if code == Some(UNSUPPORTED_PROTOCOL_VERSION) {
                    // A modern backend that wants another revision: never
                    // fall back to legacy, ask again in its terms.
                    let supported = error
                        .and_then(|e| e.data)
                        .and_then(|d| serde_json::from_str::<UnsupportedVersionData>(d.get()).ok())
                        .map(|d| d.supported)
                        .unwrap_or_default();
                    if retried || supported.is_empty() {
                        return self.close_with(CloseReason::HandshakeFailed(
                            "backend supports no protocol version in common".into(),
                        ));
                    }
                    let version = pick_modern_version(&supported, &self.config.modern_version);
                    self.send_discover(&version, true, now);
                } else {
                    let why = format!(
                        "server/discover failed: {}",
                        error
                            .map(|e| e.message.into_owned())
                            .unwrap_or_else(|| "invalid error".into())
                    );
                    fallback(self, why, now);
                }
            }
        }
    }

    fn handle_initialize(
        &mut self,
        outcome: Result<&RawValue, &RawValue>,
        late_probe: Option<u64>,
        now: Instant,
    ) {
        let result = match (outcome, late_probe) {
            (Ok(result), _) => result,
            (Err(_), Some(probe)) => {
                // Refused, with the probe still unanswered: the server may
                // have taken the 2026-07-28 era from it. Wait for the probe
                // (once more a handshake's time), with no fallback left.
                if let Some(at) = now.checked_add(self.config.handshake_timeout) {
                    self.deadlines.insert((at, probe));
                }
                self.phase = Phase::Probing {
                    id: probe,
                    retried: false,
                    fallback: false,
                };
                return;
            }
            (Err(error), None) => {
                let message = ErrorObject::parse(error)
                    .map(|e| e.message.into_owned())
                    .unwrap_or_else(|| error.get().to_owned());
                return self.close_with(CloseReason::HandshakeFailed(
                    format!("initialize failed: {message}").into(),
                ));
            }
        };
        match serde_json::from_str::<InitializeResult<'_>>(result.get()) {
            Ok(init) => {
                json::push_notification(&mut self.tx, "notifications/initialized", None);
                let info = BackendInfo {
                    era: Era::Legacy,
                    supported_versions: vec![init.protocol_version.clone()],
                    protocol_version: init.protocol_version,
                    capabilities: init.capabilities.map(boxed).unwrap_or_else(empty_object),
                    server_info: init.server_info.map(boxed),
                    instructions: init.instructions,
                    result: boxed(result),
                };
                self.become_ready(info);
            }
            Err(e) => self.close_with(CloseReason::HandshakeFailed(
                format!("initialize returned an invalid result: {e}").into(),
            )),
        }
    }

    fn become_ready(&mut self, info: BackendInfo) {
        let legacy = info.era == Era::Legacy;
        let info = Arc::new(info);
        self.phase = Phase::Ready(info.clone());
        self.events.push_back(Event::Ready(info));
        while let Some(queued) = self.queued.pop_front() {
            match queued {
                Queued::Notification(frame) => self.tx.extend_from_slice(&frame),
                Queued::Call(id) => {
                    let Some(call) = self.calls.get_mut(&id) else {
                        continue; // cancelled or timed out while queued
                    };
                    if call.may_ask {
                        if legacy {
                            // Sent when its turn comes (the caller drains the
                            // turn after this input).
                            let owner = call.owner;
                            self.turn_queue.push(owner, id);
                            continue;
                        }
                        call.may_ask = false; // a modern backend does not ask
                    }
                    self.send_unsent(id);
                }
            }
        }
    }

    /// Writes a call held unsent (until the backend was ready, or until its
    /// turn) to the backend.
    fn send_unsent(&mut self, id: u64) {
        let Some(unsent) = self.calls.get_mut(&id).and_then(|c| c.unsent.take()) else {
            return;
        };
        let token = self.push_call_frame(id, &unsent.method, unsent.params.as_deref());
        let (owner, may_ask) = match self.calls.get_mut(&id) {
            Some(call) => {
                call.caller_token = token;
                (call.owner, call.may_ask)
            }
            None => (None, false),
        };
        self.note_sent(owner);
        if may_ask {
            self.asking_sent.push(id);
        }
    }

    /// Writes a call's request line in the backend's terms: its progress
    /// token rewritten; for a modern backend the 2026-07-28 envelope in
    /// `_meta` filled in where the caller did not send it; for a legacy
    /// backend the envelope keys taken out (a dual-era server initialized
    /// with the handshake refuses them), every other `_meta` key kept.
    /// Returns the caller's own progress token.
    fn push_call_frame(
        &mut self,
        id: u64,
        method: &str,
        params: Option<&RawValue>,
    ) -> Option<Box<str>> {
        let modern_version = match &self.phase {
            Phase::Ready(info) if info.era == Era::Modern => Some(info.protocol_version.clone()),
            _ => None,
        };
        let Some(params) = params else {
            let Some(version) = modern_version else {
                json::push_request(&mut self.tx, id, method, None);
                return None;
            };
            let params = json::object(&[(META, &self.modern_meta(&[], &version))]);
            json::push_request(&mut self.tx, id, method, Some(&params));
            return None;
        };
        let text = params.get();
        let needs_token = contains(text, &FIND_PROGRESS_TOKEN);
        let needs_envelope = match modern_version {
            Some(_) => {
                !contains(text, &FIND_PROTOCOL_VERSION)
                    || !contains(text, &FIND_CLIENT_CAPABILITIES)
            }
            None => contains(text, &FIND_ENVELOPE_PREFIX),
        };
        if !needs_token && !needs_envelope {
            json::push_request(&mut self.tx, id, method, Some(text));
            return None;
        }
        let Ok(entries) = serde_json::from_str::<Entries<'_>>(text) else {
            json::push_request(&mut self.tx, id, method, Some(text));
            return None;
        };
        let meta = entries
            .get(META)
            .and_then(|m| serde_json::from_str::<Entries<'_>>(m.get()).ok());
        let mut caller_token = None;
        let backend_token = id.to_string();
        let mut edits: Vec<(&str, &str)> = Vec::new();
        if let Some(token) = meta.as_ref().and_then(|m| m.get(PROGRESS_TOKEN)) {
            caller_token = Some(Box::<str>::from(token.get()));
            edits.push((PROGRESS_TOKEN, &backend_token));
        }
        let quoted_version = modern_version.as_deref().map(json::string);
        let caps = self.config.client_capabilities.clone();
        let meta_json = match (&meta, &quoted_version) {
            (Some(meta), Some(version)) => {
                if meta.get(META_PROTOCOL_VERSION).is_none() {
                    edits.push((META_PROTOCOL_VERSION, version));
                }
                if meta.get(META_CLIENT_CAPABILITIES).is_none() {
                    edits.push((META_CLIENT_CAPABILITIES, &caps));
                }
                let mut out = Vec::new();
                json::push_object(&mut out, &meta.0, &edits);
                Some(String::from_utf8(out).unwrap_or_default())
            }
            (Some(meta), None) => {
                let kept: Vec<_> = meta
                    .0
                    .iter()
                    .filter(|(k, _)| !ENVELOPE_KEYS.contains(&k.as_ref()))
                    .cloned()
                    .collect();
                // `_meta` with nothing left in it goes too.
                (!kept.is_empty()).then(|| {
                    let mut out = Vec::new();
                    json::push_object(&mut out, &kept, &edits);
                    String::from_utf8(out).unwrap_or_default()
                })
            }
            (None, Some(_)) => modern_version.as_deref().map(|v| self.modern_meta(&[], v)),
            (None, None) => None,
        };
        let others: Vec<_> = entries
            .0
            .iter()
            .filter(|(k, _)| k != META)
            .cloned()
            .collect();
        let mut out = Vec::with_capacity(text.len() + 64);
        match &meta_json {
            // In place when the caller sent `_meta`, else appended.
            Some(m) => json::push_object(&mut out, &entries.0, &[(META, m)]),
            None => json::push_object(&mut out, &others, &[]),
        }
        let params = String::from_utf8(out).unwrap_or_default();
        json::push_request(&mut self.tx, id, method, Some(&params));
        caller_token
    }

    fn modern_meta(
        &self,
        base: &[(std::borrow::Cow<'_, str>, &RawValue)],
        version: &str,
    ) -> String {
        let v = json::string(version);
        let mut out = Vec::new();
        json::push_object(
            &mut out,
            base,
            &[
                (META_PROTOCOL_VERSION, &v),
                (META_CLIENT_CAPABILITIES, &self.config.client_capabilities),
            ],
        );
        String::from_utf8(out).unwrap_or_default()
    }

    fn send_request(
        &mut self,
        req: Request<'_>,
        opts: RequestOptions,
        now: Instant,
    ) -> Result<CallId, SendError> {
        if let Phase::Closed(reason) = &self.phase {
            return Err(SendError::Closed(reason.clone()));
        }
        if req.method == "initialize" {
            return Err(SendError::Reserved("initialize"));
        }
        let caller_id = Id::from_raw(req.id).map_err(|_| SendError::InvalidId)?;
        if let Some(owner) = opts.owner {
            if self.by_caller.contains_key(&(owner, caller_id.clone())) {
                return Err(SendError::DuplicateId(caller_id.as_json().into()));
            }
        }
        if self.calls.len() >= self.config.max_calls_in_flight {
            return Err(SendError::TooManyCalls(self.config.max_calls_in_flight));
        }
        let listen = req.method == "subscriptions/listen";
        let era = match &self.phase {
            Phase::Ready(info) => Some(info.era),
            _ => None,
        };
        // Unknown before the backend is ready: decided then.
        let may_ask = opts.may_ask && !listen && era != Some(Era::Modern);
        let max_turn = self.config.max_queued_asking;
        if may_ask && era.is_some() && self.turn_queue.len() >= max_turn {
            return Err(SendError::AskingQueueFull(max_turn));
        }
        let ready = matches!(self.phase, Phase::Ready(_));
        if ready && self.tx.len() >= self.config.max_queued_output {
            return Err(SendError::BackendNotReading(self.tx.len()));
        }
        if !ready && self.queued.len() >= self.config.max_queued_before_ready {
            return Err(SendError::NotReadyQueueFull(self.queued.len()));
        }
        let id = self.next_id();
        let deadline = match opts.deadline {
            // A timeout too long for the clock is no timeout at all.
            Deadline::Default => now.checked_add(self.config.default_call_timeout),
            Deadline::After(d) => now.checked_add(d),
            Deadline::Never => None,
        };
        if let Some(at) = deadline {
            self.deadlines.insert((at, id));
        }
        if let Some(owner) = opts.owner {
            self.by_caller.insert((owner, caller_id.clone()), id);
        }
        let mut call = Call {
            caller_id,
            owner: opts.owner,
            caller_token: None,
            deadline,
            questions: 0,
            may_ask,
            listen,
            unsent: None,
        };
        let unsent = || Unsent {
            method: req.method.into(),
            params: req.params.map(boxed),
        };
        if !ready {
            call.unsent = Some(unsent());
            self.queued.push_back(Queued::Call(id));
        } else if may_ask {
            // Sent now if the turn is free ([`Session::send_request`]
            // drains the turn), else when it comes.
            call.unsent = Some(unsent());
            self.turn_queue.push(opts.owner, id);
        } else {
            call.caller_token = self.push_call_frame(id, req.method, req.params);
            self.note_sent(opts.owner);
        }
        self.calls.insert(id, call);
        Ok(CallId(id))
    }

    fn send_notification(
        &mut self,
        method: &str,
        params: Option<&RawValue>,
    ) -> Result<(), SendError> {
        if let Phase::Closed(reason) = &self.phase {
            return Err(SendError::Closed(reason.clone()));
        }
        match method {
            "notifications/initialized" => return Ok(()),
            "notifications/cancelled" => return Err(SendError::UseCancel),
            _ => {}
        }
        if matches!(self.phase, Phase::Ready(_)) {
            if self.tx.len() >= self.config.max_queued_output {
                return Err(SendError::BackendNotReading(self.tx.len()));
            }
            json::push_notification(&mut self.tx, method, params.map(RawValue::get));
        } else {
            if self.queued.len() >= self.config.max_queued_before_ready {
                return Err(SendError::NotReadyQueueFull(self.queued.len()));
            }
            let mut frame = Vec::new();
            json::push_notification(&mut frame, method, params.map(RawValue::get));
            self.queued.push_back(Queued::Notification(frame));
        }
        Ok(())
    }

    fn respond(
        &mut self,
        to: ServerRequestId,
        outcome: Outcome<'_>,
        now: Instant,
    ) -> Result<(), SendError> {
        if let Phase::Closed(reason) = &self.phase {
            return Err(SendError::Closed(reason.clone()));
        }
        let pending = self
            .server_requests
            .remove(&to.0)
            .ok_or(SendError::UnknownServerRequest(to))?;
        if let Some(call) = pending.call.filter(|&c| self.must_hold(c)) {
            let mut line = Vec::new();
            push_answer(&mut line, &pending.raw_id, outcome);
            self.held_answers.push_back(HeldAnswer {
                call,
                line,
                since: now,
            });
            return Ok(());
        }
        self.settle_question(pending.call);
        push_answer(&mut self.tx, &pending.raw_id, outcome);
        Ok(())
    }

    /// Whether the answer to a question of `call` waits for the turn: it
    /// is the last open question of an asking call, so the answer lets it
    /// run again, and another asking call runs now.
    fn must_hold(&self, call: u64) -> bool {
        let last_question = matches!(
            self.calls.get(&call),
            Some(c) if c.may_ask && c.unsent.is_none() && c.questions == 1
        );
        last_question && self.running_asking().any(|c| c != call)
    }

    /// The asking calls the backend runs: sent, and not waiting for an
    /// answer (a call waiting for one cannot ask another question).
    fn running_asking(&self) -> impl Iterator<Item = u64> + '_ {
        self.asking_sent
            .iter()
            .copied()
            .filter(|id| self.calls.get(id).is_some_and(|c| c.questions == 0))
    }

    /// Passes the asking turn on, after any change that may have freed it
    /// (a call ended or asked, an answer came, time passed): while no
    /// asking call runs, the oldest held answer is delivered, else the
    /// next queued asking call is sent — but only once the burst window of
    /// the last question is over, so that the burst rule of
    /// [`attribute_request`](Self::attribute_request) cannot give a
    /// question of the call that starts running to the one that asked.
    /// While one runs, an answer is held for at most [`Config::answer_hold`].
    fn pump_turn(&mut self, now: Instant) {
        self.turn_timer = None;
        if !matches!(&self.phase, Phase::Ready(info) if info.era == Era::Legacy) {
            return;
        }
        loop {
            if self.running_asking().next().is_some() {
                // Held long enough: a backend that works on one call at a
                // time may need these answers to get to the running one.
                let hold = self.config.answer_hold;
                let due = |a: &HeldAnswer| a.since.checked_add(hold).is_none_or(|at| at <= now);
                let expired: Vec<u64> = self
                    .held_answers
                    .iter()
                    .filter(|a| due(a))
                    .map(|a| a.call)
                    .collect();
                self.release_held(|c| expired.contains(&c));
                self.turn_timer = self
                    .held_answers
                    .iter()
                    .filter_map(|a| a.since.checked_add(hold))
                    .min();
                return;
            }
            if self.held_answers.is_empty() && self.turn_queue.is_empty() {
                return;
            }
            if let Some((id, at)) = self.last_attributed {
                let open = self.calls.get(&id).is_some_and(|c| c.unsent.is_none());
                let closes = at.checked_add(self.config.burst_window);
                if let (true, Some(closes)) = (open, closes) {
                    if closes > now {
                        self.turn_timer = Some(closes);
                        return;
                    }
                }
            }
            if let Some(call) = self.held_answers.front().map(|a| a.call) {
                self.release_held(|c| c == call);
            } else if let Some(id) = self.turn_queue.pop() {
                self.send_unsent(id);
            }
        }
    }

    /// Writes the held answers of the calls `which` picks to the backend.
    fn release_held(&mut self, which: impl Fn(u64) -> bool) {
        let mut i = 0;
        while i < self.held_answers.len() {
            if !which(self.held_answers[i].call) {
                i += 1;
                continue;
            }
            if let Some(held) = self.held_answers.remove(i) {
                self.tx.extend_from_slice(&held.line);
                self.settle_question(Some(held.call));
            }
        }
    }

    /// Counts a call written to the backend.
    fn note_sent(&mut self, owner: Option<Owner>) {
        self.sent_calls += 1;
        if let Some(owner) = owner {
            *self.owners.entry(owner).or_default() += 1;
        }
    }

    fn remove_call(&mut self, id: u64) -> Option<Call> {
        let call = self.calls.remove(&id)?;
        if let Some(at) = call.deadline {
            self.deadlines.remove(&(at, id));
        }
        if call.may_ask {
            match call.unsent {
                Some(_) => {
                    self.turn_queue.remove(call.owner, id);
                }
                None => self.asking_sent.retain(|&c| c != id),
            }
            // The backend's question still waits for this answer.
            self.release_held(|c| c == id);
        }
        if let Some(owner) = call.owner {
            self.by_caller.remove(&(owner, call.caller_id.clone()));
        }
        if call.unsent.is_none() {
            self.sent_calls -= 1;
            if let Some(owner) = call.owner {
                if let Some(n) = self.owners.get_mut(&owner) {
                    *n -= 1;
                    if *n == 0 {
                        self.owners.remove(&owner);
                    }
                }
            }
        }
        Some(call)
    }

    /// Ends an open call without a backend response; tells the backend to
    /// stop if it saw the request. Returns whether the call was open.
    fn end_call(&mut self, id: u64, reason: EndReason, why: Option<&str>) -> bool {
        let Some(call) = self.remove_call(id) else {
            return false;
        };
        let backend_knows = matches!(
            reason,
            EndReason::BackendClosed(_)
                | EndReason::EndedByBackend(_)
                | EndReason::ResponseTooLarge { .. }
        );
        if call.unsent.is_none() && !backend_knows {
            let mut params = Vec::new();
            params.extend_from_slice(b"{\"requestId\":");
            json::push_u64(&mut params, id);
            let why = why.map(str::to_owned).unwrap_or_else(|| reason.to_string());
            params.extend_from_slice(b",\"reason\":");
            json::push_str_literal(&mut params, &why);
            params.push(b'}');
            let params = String::from_utf8(params).unwrap_or_default();
            json::push_notification(&mut self.tx, "notifications/cancelled", Some(&params));
        }
        let frame = json::error_frame(
            call.caller_id.as_json(),
            reason.code(),
            &reason.to_string(),
            None,
        );
        self.events.push_back(Event::CallEnded {
            call: CallId(id),
            reason,
            frame,
        });
        true
    }

    fn handle_timeout(&mut self, now: Instant) {
        while let Some(&(at, id)) = self.deadlines.first() {
            if at > now {
                break;
            }
            self.deadlines.pop_first();
            match self.phase {
                Phase::Probing {
                    id: probe,
                    fallback,
                    ..
                } if probe == id => {
                    match fallback {
                        true => self.send_initialize(Some(probe), now),
                        false => self.close_with(CloseReason::HandshakeFailed(
                            "server/discover timed out".into(),
                        )),
                    }
                    continue;
                }
                Phase::Initializing { id: init, .. } if init == id => {
                    // `initialize` is never cancelled: the session just fails.
                    self.close_with(CloseReason::HandshakeFailed("initialize timed out".into()));
                    return;
                }
                _ => {}
            }
            self.end_call(id, EndReason::TimedOut, None);
        }
    }

    fn handle_notification(&mut self, frame: &[u8], method: &str, params: Option<&RawValue>) {
        let Some(params) = params else {
            return self.broadcast(frame, method);
        };
        if method == "notifications/progress" {
            let token = serde_json::from_str::<ProgressParams<'_>>(params.get()).ok();
            let owner = token.as_ref().and_then(|t| {
                let id = t.token.get().parse::<u64>().ok()?;
                let call = self.calls.get(&id)?;
                Some((id, call.caller_token.as_deref()?))
            });
            let (Some(token), Some((id, caller_token))) = (token, owner) else {
                self.stats.orphan_notifications += 1;
                return;
            };
            let frame = json::splice(frame, json::span_in(frame, token.token.get()), caller_token);
            self.events.push_back(Event::Notification {
                route: Route::Call(CallId(id)),
                method: method.to_owned(),
                frame,
            });
            return;
        }
        if method == "notifications/cancelled" {
            if let Ok(p) = serde_json::from_str::<CancelledParams<'_>>(params.get()) {
                self.handle_backend_cancel(p);
            }
            return;
        }
        if contains(params.get(), &FIND_SUBSCRIPTION_ID) {
            let tagged = serde_json::from_str::<TaggedParams<'_>>(params.get()).ok();
            if let Some(sub) = tagged.as_ref().and_then(|t| t.meta.as_ref()?.subscription) {
                let owner = sub
                    .get()
                    .parse::<u64>()
                    .ok()
                    .and_then(|id| Some((id, self.calls.get(&id)?.caller_id.as_json())));
                let Some((id, caller_id)) = owner else {
                    self.stats.orphan_notifications += 1;
                    return;
                };
                let frame = json::splice(frame, json::span_in(frame, sub.get()), caller_id);
                self.events.push_back(Event::Notification {
                    route: Route::Call(CallId(id)),
                    method: method.to_owned(),
                    frame,
                });
                return;
            }
        }
        self.broadcast(frame, method);
    }

    /// The backend's `notifications/cancelled`: it withdraws one of its own
    /// requests to us, or — a modern server on stdio — ends a
    /// `subscriptions/listen` stream it was asked to open.
    fn handle_backend_cancel(&mut self, p: CancelledParams<'_>) {
        let withdrawn = self
            .server_requests
            .iter()
            .find(|(_, pending)| pending.raw_id.get() == p.request_id.get())
            .map(|(k, _)| *k);
        if let Some(key) = withdrawn {
            if let Some(pending) = self.server_requests.remove(&key) {
                self.settle_question(pending.call);
            }
            self.events
                .push_back(Event::ServerRequestCancelled(ServerRequestId(key)));
            return;
        }
        let modern = matches!(&self.phase, Phase::Ready(info) if info.era == Era::Modern);
        let sent_call = p
            .request_id
            .get()
            .parse::<u64>()
            .ok()
            .filter(|id| matches!(self.calls.get(id), Some(c) if c.unsent.is_none()));
        if let (true, Some(id)) = (modern, sent_call) {
            let why = p.reason.unwrap_or_else(|| "stream closed".to_owned());
            self.end_call(id, EndReason::EndedByBackend(why), None);
        }
    }

    /// Where backend traffic that names no call (a log message, a server
    /// request) most likely belongs: the only call the backend is working
    /// on; else the only owner with calls in flight (calls without an
    /// owner cannot take such traffic); else nobody in particular.
    fn attribute(&self) -> Route {
        if let Some(call) = self.only_sent_call(|_| true) {
            return Route::Call(call);
        }
        self.only_owner()
    }

    /// Where a server request most likely belongs. Beyond [`attribute`]'s
    /// rules, with several calls in flight: the call that got the request
    /// just before, within [`Config::burst_window`] (a server that asks
    /// several things at once sends them together); else the asking call
    /// that runs, when one alone does (asking calls take turns, see
    /// [`RequestOptions::may_ask`]); else the only call not already
    /// waiting for an answer (a call parked on a question cannot ask
    /// another until it is answered).
    ///
    /// [`attribute`]: Self::attribute
    fn attribute_request(&self, now: Instant) -> Route {
        if let Some(call) = self.only_sent_call(|_| true) {
            return Route::Call(call);
        }
        if let Some((id, at)) = self.last_attributed {
            let open = matches!(self.calls.get(&id), Some(c) if c.unsent.is_none());
            // Within the window, its end excluded: from then on the turn
            // may pass to another asking call (see `pump_turn`).
            if open && now.saturating_duration_since(at) < self.config.burst_window {
                return Route::Call(CallId(id));
            }
        }
        let mut running = self.running_asking();
        if let (Some(id), None) = (running.next(), running.next()) {
            return Route::Call(CallId(id));
        }
        if let Some(call) = self.only_sent_call(|c| c.questions == 0) {
            return Route::Call(call);
        }
        self.only_owner()
    }

    /// The one sent call that `filter` keeps, if exactly one.
    fn only_sent_call(&self, filter: impl Fn(&Call) -> bool) -> Option<CallId> {
        let mut found = self
            .calls
            .iter()
            .filter(|(_, c)| c.unsent.is_none() && !c.listen && filter(c));
        match (found.next(), found.next()) {
            (Some((id, _)), None) => Some(CallId(*id)),
            _ => None,
        }
    }

    fn only_owner(&self) -> Route {
        let mut owners = self.owners.keys();
        match (owners.next(), owners.next()) {
            (Some(owner), None) => Route::Owner(*owner),
            _ => Route::Broadcast,
        }
    }

    /// A server request given to `call` was answered or withdrawn.
    fn settle_question(&mut self, call: Option<u64>) {
        if let Some(c) = call.and_then(|id| self.calls.get_mut(&id)) {
            c.questions = c.questions.saturating_sub(1);
        }
    }

    fn broadcast(&mut self, frame: &[u8], method: &str) {
        // A log message belongs to the call in flight when that is
        // unambiguous; every other unrouted notification is for everyone.
        let route = match method {
            "notifications/message" => self.attribute(),
            _ => Route::Broadcast,
        };
        self.events.push_back(Event::Notification {
            route,
            method: method.to_owned(),
            frame: frame.to_vec(),
        });
    }

    fn handle_server_request(
        &mut self,
        id: &RawValue,
        method: &str,
        params: Option<&RawValue>,
        now: Instant,
    ) {
        if method == "ping" && self.config.answer_ping {
            json::push_result(&mut self.tx, id.get(), "{}");
            self.tx.push(b'\n');
            return;
        }
        if self.server_requests.len() >= self.config.max_server_requests {
            json::push_error(
                &mut self.tx,
                id.get(),
                crate::envelope::INTERNAL_ERROR,
                "too many server requests awaiting an answer",
                None,
            );
            self.tx.push(b'\n');
            return;
        }
        let key = self.next_server_request;
        self.next_server_request += 1;
        let route = self.attribute_request(now);
        let call = match route {
            Route::Call(CallId(c)) => {
                if let Some(entry) = self.calls.get_mut(&c) {
                    entry.questions += 1;
                }
                self.last_attributed = Some((c, now));
                Some(c)
            }
            _ => None,
        };
        self.server_requests.insert(
            key,
            PendingServerRequest {
                raw_id: boxed(id),
                call,
            },
        );
        self.events.push_back(Event::ServerRequest(ServerRequest {
            id: ServerRequestId(key),
            method: method.to_owned(),
            params: params.map(boxed),
            route,
        }));
    }

    fn close_with(&mut self, reason: CloseReason) {
        if matches!(self.phase, Phase::Closed(_)) {
            return;
        }
        self.phase = Phase::Closed(reason.clone());
        let mut ids: Vec<u64> = self.calls.keys().copied().collect();
        ids.sort_unstable();
        for id in ids {
            self.end_call(id, EndReason::BackendClosed(reason.clone()), None);
        }
        self.server_requests.clear();
        self.queued.clear();
        self.deadlines.clear();
        self.turn_queue.clear();
        self.asking_sent.clear();
        self.held_answers.clear();
        self.turn_timer = None;
        self.tx.clear();
        self.events.push_back(Event::Closed(reason));
    }
}

/// Writes the answer line to a server request of id `raw_id`.
fn push_answer(out: &mut Vec<u8>, raw_id: &RawValue, outcome: Outcome<'_>) {
    match outcome {
        Outcome::Result(result) => json::push_result(out, raw_id.get(), result.get()),
        Outcome::Error {
            code,
            message,
            data,
        } => json::push_error(out, raw_id.get(), code, message, data.map(RawValue::get)),
    }
    out.push(b'\n');
}

fn empty_object() -> Box<RawValue> {
    RawValue::from_string("{}".to_owned()).unwrap_or_else(|_| unreachable_raw())
}

#[allow(clippy::unwrap_used)]
fn unreachable_raw() -> Box<RawValue> {
    // "null" is valid JSON; this cannot fail.
    RawValue::from_string("null".to_owned()).unwrap()
}

/// Our preferred modern revision if the backend has it, else the newest it
/// lists (revisions are dates, so they sort as strings).
fn pick_modern_version(supported: &[String], preferred: &str) -> String {
    if supported.is_empty() || supported.iter().any(|v| v == preferred) {
        return preferred.to_owned();
    }
    supported
        .iter()
        .filter(|v| MODERN_VERSIONS.contains(&v.as_str()))
        .max()
        .or_else(|| supported.iter().max())
        .cloned()
        .unwrap_or_else(|| preferred.to_owned())
}

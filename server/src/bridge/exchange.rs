//! [`Exchange`]: one client call through a backend, its items turned into
//! what the client's era expects.
//!
//! A front end that can send frames before the answer (an SSE reply) asks
//! for [`Exchange::next_inline`] steps: notifications and requests for the
//! client come back as [`Step::Frame`]s. One that cannot asks for
//! [`Exchange::finish`]: they take the client's standing stream (a legacy
//! session's GET stream) or, for a server request, are answered from
//! config. Across eras:
//!
//! - a legacy backend's server request that a stateless client can answer
//!   ends the exchange with an `input_required` result and parks the call
//!   ([`super::inputs`]);
//! - a modern backend's `input_required` result for a legacy session
//!   becomes requests to the session, and their answers a retry of the
//!   request with `inputResponses` and `requestState`, for as many rounds
//!   as the backend asks; the session sees one ordinary result;
//! - results are reshaped for the client's era ([`super::translate`]), and
//!   log messages reach a caller only at the level it asked for.
//!
//! Dropping an exchange before its end cancels the call at the backend.

use std::collections::VecDeque;
use std::sync::Arc;
use std::time::Duration;

use mcpod_core::envelope::{INTERNAL_ERROR, MISSING_REQUIRED_CLIENT_CAPABILITY};
use mcpod_core::json::{edit_object, error_frame, object};
use mcpod_core::{Era, Message};
use mcpod_tokio::{
    CallItem, CallStream, EndReason, OwnedOutcome, OwnedRequest, RequestOptions, ServerRequestKey,
    UpstreamError,
};
use serde::Deserialize;
use serde_json::value::RawValue;
use tokio::sync::oneshot;
use tracing::debug;

use super::adapter::{Adapter, Party};
use super::asking::{AskingTools, tool_name};
use super::caps::ClientCaps;
use super::client::Client;
use super::inputs::{self, Inputs, Parked, Question, question_key};
use super::logging::{LogLevel, passes};
use super::policy::filter_list;
use super::slots::Slots;
use super::translate::{ClientEra, result_for_client, with_envelope};
use crate::config::Access;
use crate::ids::Principal;
use crate::metrics::Outcome;
use crate::targets::Backend;
use crate::telemetry::{self, CallSpan};

/// Rounds of `input_required` a legacy session is carried through for one
/// call, at most.
const MAX_ROUNDS: usize = 16;

/// Why a server request is refused when no more calls can be parked.
const TOO_MANY_PARKED: &str = "too many calls are waiting for client input";

/// Who is calling, as far as the exchange cares.
#[derive(Debug, Clone)]
pub(crate) enum Caller {
    /// A legacy client session: server requests are forwarded to it, and
    /// notifications it cannot get inline go to its standing stream.
    Session(Arc<Client>),
    /// A stateless (2026-07-28) client: a server request it can answer
    /// comes back to it as `input_required`; it gets log messages at the
    /// level its request asked for, and none without one.
    Stateless {
        /// What it can answer.
        caps: ClientCaps,
        /// `_meta["io.modelcontextprotocol/logLevel"]`.
        log_level: Option<LogLevel>,
        /// Answers the request brought before being asked
        /// (`inputResponses` without a state of the gateway's), by key.
        preset: std::collections::HashMap<String, Box<RawValue>>,
    },
    /// A client that takes no server traffic (the Memoh routes).
    Detached,
}

impl Caller {
    fn era(&self) -> ClientEra {
        match self {
            Caller::Stateless { .. } => ClientEra::Modern,
            Caller::Session(_) | Caller::Detached => ClientEra::Legacy,
        }
    }

    fn wants_log(&self, frame: &[u8]) -> bool {
        match self {
            Caller::Session(client) => client.wants_log(frame),
            Caller::Stateless { log_level, .. } => {
                log_level.is_some_and(|wanted| passes(wanted, LogLevel::of_message(frame)))
            }
            Caller::Detached => true,
        }
    }
}

/// What an exchange gives next.
#[derive(Debug)]
pub(crate) enum Step {
    /// A frame for the client before the answer.
    Frame(Vec<u8>),
    /// The last frame.
    Final(Final),
}

/// The frame that ends an exchange.
#[derive(Debug)]
pub(crate) struct Final {
    /// The response (with the client's id), or an `input_required` result.
    pub(crate) frame: Vec<u8>,
    /// How the call ended.
    pub(crate) outcome: Outcome,
    /// Why the call ended without a backend response, if it did.
    pub(crate) ended: Option<EndReason>,
}

/// A call item still to be placed.
enum Advance {
    Final(Final),
    Notification {
        method: String,
        frame: Vec<u8>,
    },
    Request {
        key: ServerRequestKey,
        method: String,
        params: Option<Box<RawValue>>,
    },
    /// A request of the gateway's own for a legacy session.
    Ask(Vec<u8>),
}

/// One round of a modern backend's `input_required`, carried to a legacy
/// session.
struct Round {
    /// Request frames not yet given to the client.
    to_send: VecDeque<Vec<u8>>,
    /// The answers, by input key.
    answers: Vec<(String, oneshot::Receiver<OwnedOutcome>)>,
    /// The backend's `requestState`, raw.
    request_state: Option<Box<RawValue>>,
}

/// What the exchange needs to know about where it runs.
#[derive(Debug, Clone)]
pub(crate) struct Place {
    /// The backend.
    pub(crate) backend: Arc<Backend>,
    /// The target's name.
    pub(crate) target: String,
    /// Whether the target configures roots.
    pub(crate) config_roots: bool,
    /// The parked-call store.
    pub(crate) inputs: Arc<Inputs>,
    /// How long a client gets to answer the gateway's requests.
    pub(crate) call_timeout: Duration,
    /// How long after a backend's question others count as asked with it.
    pub(crate) burst_window: Duration,
    /// Which calls may ask the client (`None`: the backend has one client).
    pub(crate) asking: Option<Arc<AskingTools>>,
    /// Who the calls are for: a parked call resumes only for them.
    pub(crate) principal: Principal,
    /// What of the target they may see: lists are filtered to it.
    pub(crate) access: Access,
}

/// Where a call's items go, and what its caller holds.
pub(crate) struct Exchange {
    /// `None` once the call is parked or finished.
    stream: Option<CallStream>,
    /// Items read ahead (while gathering a round of questions).
    queued: VecDeque<CallItem>,
    place: Place,
    caller: Caller,
    method: String,
    /// The tool, for a `tools/call`: learned as asking if its call asks.
    tool: Option<String>,
    id_json: String,
    /// The request as the backend got it, for a retry with input.
    request: Option<OwnedRequest>,
    opts: RequestOptions,
    round: Option<Round>,
    rounds: usize,
    /// Resumed for a retry with another id: answers are re-addressed.
    readdress: bool,
    slots: Slots,
    /// A stateless caller's log level, wanted of a legacy backend while the
    /// call runs (given back when the exchange ends).
    _level: Option<LevelHold>,
    /// The call's span (telemetry on), ended with the exchange.
    trace: CallSpan,
    /// The backend that has the call speaks 2026-07-28.
    backend_modern: bool,
}

impl std::fmt::Debug for Exchange {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Exchange")
            .field("target", &self.place.target)
            .field("method", &self.method)
            .field("id", &self.id_json)
            .finish_non_exhaustive()
    }
}

/// A log level wanted of a backend for one call; given back when dropped.
struct LevelHold {
    backend: Arc<Backend>,
    party: Party,
}

impl Drop for LevelHold {
    fn drop(&mut self) {
        let backend = self.backend.clone();
        let party = self.party;
        tokio::spawn(async move {
            let _ = Adapter::of(&backend)
                .want_level(&backend, party, None)
                .await;
        });
    }
}

fn backend_era(backend: &Backend) -> Option<Era> {
    backend.upstream.backend_info().map(|i| i.era)
}

impl Exchange {
    /// Starts `request` on the backend for `caller`.
    pub(crate) async fn start(
        place: Place,
        caller: Caller,
        mut request: OwnedRequest,
        mut opts: RequestOptions,
        slots: Slots,
    ) -> Result<Exchange, UpstreamError> {
        // Read once: the era and the version come from the same handshake.
        let info = place.backend.upstream.backend_info();
        let backend_era = info.as_ref().map(|i| i.era);
        let backend_version = info.as_ref().map(|i| i.protocol_version.as_str());
        let backend_modern = backend_era == Some(Era::Modern);
        let mut level = None;
        match &caller {
            Caller::Session(client) => {
                opts.owner = Some(client.owner());
                if backend_modern {
                    request.params = with_envelope(
                        request.params.as_deref(),
                        &client.envelope(),
                        backend_version,
                    );
                }
            }
            Caller::Stateless {
                log_level: Some(l), ..
            } if backend_era == Some(Era::Legacy) => {
                let party = Party::call();
                if let Err(e) = Adapter::of(&place.backend)
                    .want_level(&place.backend, party, Some(*l))
                    .await
                {
                    debug!(target = %place.target, message = %e.message, "the backend refused the log level");
                }
                level = Some(LevelHold {
                    backend: place.backend.clone(),
                    party,
                });
            }
            _ => {}
        }
        let id_json = request.id.get().to_owned();
        let method = request.method.clone();
        // Read only where it can matter: a modern backend asks nothing (it
        // answers `input_required`), and the core ignores the flag there.
        let tool = (method == "tools/call" && place.asking.is_some() && !backend_modern)
            .then(|| tool_name(request.params.as_deref()))
            .flatten();
        // A call that may ask takes turns with the others that may.
        opts.may_ask = match (&place.asking, &tool) {
            (Some(asking), Some(tool)) => asking.asks(tool),
            _ => false,
        };
        // A legacy session of a modern backend may be asked for input:
        // keep the request to retry it with the answers.
        let keep = matches!(caller, Caller::Session(_)) && backend_modern;
        // Nothing of the span's is read or built with telemetry off.
        let trace = if telemetry::enabled() {
            telemetry::backend_span(
                &place.target,
                &method,
                request.params.as_deref(),
                backend_version,
            )
        } else {
            CallSpan::off()
        };
        if let Some(span) = trace.span() {
            if let Some(params) = telemetry::with_trace_context(span, request.params.as_deref()) {
                request.params = Some(params);
            }
        }
        let kept = keep.then(|| request.clone());
        let stream = match place.backend.upstream.call(request, opts).await {
            Ok(stream) => stream,
            Err(e) => {
                if let Some(span) = trace.span() {
                    telemetry::record_end(span, Outcome::Failed.label(), true, None);
                }
                return Err(e);
            }
        };
        Ok(Exchange {
            stream: Some(stream),
            queued: VecDeque::new(),
            place,
            caller,
            method,
            tool,
            id_json,
            request: kept,
            opts,
            round: None,
            rounds: 0,
            readdress: false,
            slots,
            _level: level,
            backend_modern,
            trace,
        })
    }

    /// Resumes a parked call for the client's retry (request id `id_json`):
    /// the answers the retry brings go to the backend; if some question is
    /// left unanswered, the retry gets a new `input_required` for those
    /// (the call stays parked), else the call's items.
    pub(crate) async fn resume(
        mut parked: Parked,
        answers: &std::collections::HashMap<String, &RawValue>,
        caller: Caller,
        id_json: String,
        place: Place,
    ) -> Result<Resumed, UpstreamError> {
        let questions = std::mem::take(&mut parked.questions);
        for q in questions {
            match answers.get(&q.key) {
                Some(answer) => {
                    let outcome = OwnedOutcome::Result((*answer).to_owned());
                    parked.backend.upstream.respond(q.request, outcome).await?;
                }
                None => parked.questions.push(q),
            }
        }
        if !parked.questions.is_empty() {
            // Ask again for what is missing, under a new state.
            let inputs = place.inputs.clone();
            return Ok(match inputs.park(parked, &id_json) {
                Ok(frame) => Resumed::AskedAgain(Final {
                    frame,
                    outcome: Outcome::InputRequired,
                    ended: None,
                }),
                Err(parked) => {
                    inputs::refuse(&parked.backend, parked.questions, TOO_MANY_PARKED).await;
                    Resumed::AskedAgain(Final {
                        frame: error_frame(&id_json, INTERNAL_ERROR, TOO_MANY_PARKED, None),
                        outcome: Outcome::Overloaded,
                        ended: None,
                    })
                }
            });
        }
        let backend_modern = backend_era(&parked.backend) == Some(Era::Modern);
        Ok(Resumed::Exchange(Box::new(Exchange {
            stream: Some(parked.stream),
            queued: VecDeque::new(),
            place: Place {
                backend: parked.backend,
                target: parked.target,
                ..place
            },
            caller,
            method: parked.method,
            tool: None,
            id_json,
            request: None,
            opts: RequestOptions::default(),
            round: None,
            rounds: 0,
            readdress: true,
            slots: parked.slots,
            _level: None,
            trace: CallSpan::off(),
            backend_modern,
        })))
    }

    /// The client's id for the call, as JSON.
    pub(crate) fn id_json(&self) -> &str {
        &self.id_json
    }

    /// The next step of an answer that can carry frames before its end (an
    /// SSE reply).
    pub(crate) async fn next_inline(&mut self) -> Step {
        loop {
            match self.advance().await {
                Advance::Final(end) => return Step::Final(self.ended(end)),
                Advance::Notification { frame, .. } | Advance::Ask(frame) => {
                    return Step::Frame(frame);
                }
                Advance::Request {
                    key,
                    method,
                    params,
                } => match &self.caller {
                    Caller::Session(client) => {
                        return Step::Frame(client.forward(key, &method, params.as_deref()));
                    }
                    _ => self.place.backend.answer_from_config(key, &method).await,
                },
            }
        }
    }

    /// The end of an answer that carries nothing before it (a JSON reply).
    pub(crate) async fn finish(&mut self) -> Final {
        let end = self.finish_here().await;
        self.ended(end)
    }

    /// How the call ended, on its span.
    fn ended(&self, end: Final) -> Final {
        if let Some(span) = self.trace.span() {
            let failed = !matches!(end.outcome, Outcome::Ok | Outcome::InputRequired);
            telemetry::record_end(span, end.outcome.label(), failed, None);
        }
        end
    }

    async fn finish_here(&mut self) -> Final {
        loop {
            match self.advance().await {
                Advance::Final(end) => return end,
                Advance::Notification { method, frame } => match &self.caller {
                    Caller::Session(client) if client.push(frame) => {}
                    _ => debug!(
                        method,
                        "notification not delivered: the reply is JSON and no stream is open"
                    ),
                },
                Advance::Request {
                    key,
                    method,
                    params,
                } => {
                    if let Caller::Session(client) = &self.caller {
                        if client.push(client.forward(key, &method, params.as_deref())) {
                            continue;
                        }
                        client.forget(key);
                    }
                    self.place.backend.answer_from_config(key, &method).await;
                }
                Advance::Ask(frame) => {
                    let pushed = matches!(&self.caller, Caller::Session(c) if c.push(frame));
                    if !pushed {
                        self.round = None;
                        return self.fail(
                            "the server asks the client for input, and the client has no open \
                             stream to be asked on: accept text/event-stream, or open the GET stream",
                        );
                    }
                }
            }
        }
    }

    /// The call's next item that is not parked or carried away.
    async fn advance(&mut self) -> Advance {
        loop {
            if let Some(round) = self.round.as_mut() {
                if let Some(frame) = round.to_send.pop_front() {
                    return Advance::Ask(frame);
                }
                match self.answer_round().await {
                    Ok(()) => continue,
                    Err(end) => return Advance::Final(end),
                }
            }
            let item = match (self.queued.pop_front(), self.stream.as_mut()) {
                (Some(item), _) => Some(item),
                (None, Some(stream)) => stream.next().await,
                (None, None) => None,
            };
            let Some(item) = item else {
                return Advance::Final(self.fail("the backend connection ended without answering"));
            };
            match item {
                CallItem::Response { frame, is_error } => {
                    self.stream = None;
                    if !is_error && self.request.is_some() {
                        match self.begin_round(&frame) {
                            Ok(true) => continue,
                            Ok(false) => {}
                            Err(end) => return Advance::Final(end),
                        }
                    }
                    let frame = self.address(frame);
                    if self.method == "tools/list" && !is_error {
                        if let Ok(Message::Response { result, .. }) = Message::parse(&frame) {
                            Adapter::of(&self.place.backend)
                                .tool_headers
                                .note_result(result.get());
                        }
                    }
                    let frame = result_for_client(
                        frame,
                        &self.method,
                        self.caller.era(),
                        self.backend_modern,
                    );
                    let frame = if is_error {
                        frame
                    } else {
                        filter_list(&self.place.access, &self.method, frame)
                    };
                    return Advance::Final(Final {
                        frame,
                        outcome: if is_error {
                            Outcome::Error
                        } else {
                            Outcome::Ok
                        },
                        ended: None,
                    });
                }
                CallItem::Ended { reason, frame } => {
                    self.stream = None;
                    let outcome = match reason {
                        EndReason::TimedOut => Outcome::Timeout,
                        EndReason::Cancelled => Outcome::Cancelled,
                        EndReason::ResponseTooLarge { .. } => Outcome::ResponseTooLarge,
                        _ => Outcome::BackendClosed,
                    };
                    return Advance::Final(Final {
                        frame: self.address(frame),
                        outcome,
                        ended: Some(reason),
                    });
                }
                CallItem::Notification { method, frame } => {
                    if method == "notifications/message" && !self.caller.wants_log(&frame) {
                        continue;
                    }
                    return Advance::Notification { method, frame };
                }
                CallItem::ServerRequest {
                    key,
                    method,
                    params,
                } => {
                    // The core gave this call the question: its tool asks.
                    if let (Some(asking), Some(tool)) = (&self.place.asking, &self.tool) {
                        asking.learn(tool);
                    }
                    if let Caller::Stateless { .. } = self.caller {
                        if let Some(end) = self.ask_stateless(key, method, params).await {
                            return Advance::Final(end);
                        }
                        continue;
                    }
                    return Advance::Request {
                        key,
                        method,
                        params,
                    };
                }
            }
        }
    }

    /// A modern backend answered a legacy session with `input_required`:
    /// asks the session. `Ok(false)`: not such a result.
    fn begin_round(&mut self, frame: &[u8]) -> Result<bool, Final> {
        #[derive(Deserialize)]
        struct InputRequired<'a> {
            #[serde(rename = "resultType", borrow)]
            result_type: Option<std::borrow::Cow<'a, str>>,
            #[serde(rename = "inputRequests", default)]
            input_requests: std::collections::BTreeMap<String, InputRequest>,
            #[serde(rename = "requestState", default)]
            request_state: Option<Box<RawValue>>,
        }
        #[derive(Deserialize)]
        struct InputRequest {
            method: String,
            params: Option<Box<RawValue>>,
        }
        if memchr::memmem::find(frame, b"input_required").is_none() {
            return Ok(false);
        }
        let Ok(Message::Response { result, .. }) = Message::parse(frame) else {
            return Ok(false);
        };
        let Ok(ir) = serde_json::from_str::<InputRequired<'_>>(result.get()) else {
            return Ok(false);
        };
        if ir.result_type.as_deref() != Some("input_required") {
            return Ok(false);
        }
        let Caller::Session(client) = &self.caller else {
            return Ok(false);
        };
        self.rounds += 1;
        if self.rounds > MAX_ROUNDS {
            return Err(self.fail("the server asked for client input too many times"));
        }
        let caps = client.caps();
        let mut round = Round {
            to_send: VecDeque::new(),
            answers: Vec::new(),
            request_state: ir.request_state,
        };
        for (key, request) in ir.input_requests {
            if !caps.can_answer(&request.method) {
                return Err(self.fail(&format!(
                    "the server needs `{}` from the client, which did not declare that capability",
                    request.method
                )));
            }
            let Some((frame, rx)) = client.ask(&request.method, request.params.as_deref()) else {
                return Err(self.fail("too many requests are waiting for this client's answers"));
            };
            round.to_send.push_back(frame);
            round.answers.push((key, rx));
        }
        self.round = Some(round);
        Ok(true)
    }

    /// Waits for the session's answers, then retries the request with them.
    async fn answer_round(&mut self) -> Result<(), Final> {
        let Some(round) = self.round.take() else {
            return Ok(());
        };
        let mut responses: Vec<(String, String)> = Vec::new();
        for (key, rx) in round.answers {
            let answer = tokio::time::timeout(self.place.call_timeout, rx).await;
            match answer {
                Ok(Ok(OwnedOutcome::Result(result))) => {
                    responses.push((key, result.get().to_owned()))
                }
                Ok(Ok(OwnedOutcome::Error {
                    code,
                    message,
                    data,
                })) => {
                    return Err(Final {
                        frame: error_frame(&self.id_json, code, &message, data.as_deref()),
                        outcome: Outcome::Error,
                        ended: None,
                    });
                }
                Ok(Err(_)) => return Err(self.fail("the client session ended before answering")),
                Err(_) => return Err(self.fail("the client did not answer in time")),
            }
        }
        let Some(request) = self.request.clone() else {
            return Err(self.fail("the request cannot be retried"));
        };
        let pairs: Vec<(&str, &str)> = responses
            .iter()
            .map(|(k, v)| (k.as_str(), v.as_str()))
            .collect();
        let inputs = object(&pairs);
        let mut set = vec![("inputResponses", inputs.as_str())];
        let state = round.request_state.as_ref().map(|s| s.get().to_owned());
        if let Some(state) = &state {
            set.push(("requestState", state));
        }
        let params = request.params.as_ref().map_or("{}", |p| p.get());
        let Some(params) =
            edit_object(params, &set, &[]).and_then(|p| RawValue::from_string(p).ok())
        else {
            return Err(self.fail("the request's params are not an object"));
        };
        let retry = OwnedRequest::new(request.id.clone(), request.method.clone(), Some(params));
        match self.place.backend.upstream.call(retry, self.opts).await {
            Ok(stream) => {
                self.stream = Some(stream);
                Ok(())
            }
            Err(e) => Err(self.fail(&format!("the retry with the client's input failed: {e}"))),
        }
    }

    /// A response frame with the retry's id when the call was resumed.
    fn address(&self, frame: Vec<u8>) -> Vec<u8> {
        if !self.readdress {
            return frame;
        }
        mcpod_core::json::readdress(&frame, &self.id_json).unwrap_or_else(|| {
            error_frame(
                &self.id_json,
                INTERNAL_ERROR,
                "the backend's answer could not be read",
                None,
            )
        })
    }

    fn fail(&mut self, message: &str) -> Final {
        self.stream = None;
        Final {
            frame: error_frame(&self.id_json, INTERNAL_ERROR, message, None),
            outcome: Outcome::Failed,
            ended: None,
        }
    }

    /// A legacy backend's server request for a stateless caller, with the
    /// others it sends at once: those the client can answer go back to it
    /// as one `input_required` result (the call parks); the others are
    /// answered from config or refused at the backend. When the client can
    /// answer none and config cannot either, the call ends with the error a
    /// 2026-07-28 server gives: -32021, the capability it lacks. `None`:
    /// nothing for the client, the call goes on.
    async fn ask_stateless(
        &mut self,
        first: ServerRequestKey,
        method: String,
        params: Option<Box<RawValue>>,
    ) -> Option<Final> {
        let mut round = vec![(first, method, params)];
        self.gather(&mut round).await;
        let Caller::Stateless { caps, preset, .. } = &mut self.caller else {
            return None;
        };
        let caps = *caps;
        let mut questions = Vec::new();
        let mut lacking: Vec<&'static str> = Vec::new();
        let mut answered = Vec::new();
        for (key, method, params) in round {
            let by_config = method == "roots/list" && self.place.config_roots;
            if caps.can_answer(&method) && !by_config {
                let (name, params) = question_key(params.as_deref(), questions.len() + 1);
                // Answered in advance by the request itself.
                if let Some(answer) = preset.remove(&name) {
                    answered.push((key, answer));
                    continue;
                }
                questions.push(Question {
                    key: name,
                    request: key,
                    method,
                    params,
                });
                continue;
            }
            if !by_config {
                if let Some(cap) = capability_of(&method) {
                    lacking.push(cap);
                }
            }
            self.place.backend.answer_from_config(key, &method).await;
        }
        for (key, answer) in answered {
            let _ = self
                .place
                .backend
                .upstream
                .respond(key, OwnedOutcome::Result(answer))
                .await;
        }
        if questions.is_empty() {
            if lacking.is_empty() {
                return None; // answered from config or in advance: the call goes on
            }
            let required: Vec<(&str, &str)> = lacking.iter().map(|c| (*c, "{}")).collect();
            let data = object(&[("requiredCapabilities", &object(&required))]);
            let data = RawValue::from_string(data).ok();
            self.stream = None; // the call is cancelled at the backend
            return Some(Final {
                frame: error_frame(
                    &self.id_json,
                    MISSING_REQUIRED_CLIENT_CAPABILITY,
                    &format!(
                        "the server needs the client capability `{}`, which this request did not declare",
                        lacking.join("`, `")
                    ),
                    data.as_deref(),
                ),
                outcome: Outcome::Error,
                ended: None,
            });
        }
        self.park(questions).await
    }

    /// Adds to `round` the server requests that follow within the burst
    /// window; anything else read meanwhile is kept for later.
    async fn gather(&mut self, round: &mut Vec<(ServerRequestKey, String, Option<Box<RawValue>>)>) {
        let window = self.place.burst_window;
        let Some(stream) = self.stream.as_mut() else {
            return;
        };
        while let Ok(item) = tokio::time::timeout(window, stream.next()).await {
            match item {
                Some(CallItem::ServerRequest {
                    key,
                    method,
                    params,
                }) => round.push((key, method, params)),
                Some(other) => {
                    self.queued.push_back(other);
                    break;
                }
                None => break,
            }
        }
    }

    /// Parks the call for the client's retry; the `input_required` frame
    /// ends this exchange. `None` when too many calls are parked: the
    /// backend's requests are refused and the call goes on.
    async fn park(&mut self, questions: Vec<Question>) -> Option<Final> {
        let stream = self.stream.take()?;
        if self.queued.iter().any(CallItem::is_terminal) {
            // The call ended while asking: its end answers this exchange.
            self.stream = Some(stream);
            inputs::refuse(&self.place.backend, questions, "the call ended").await;
            return None;
        }
        let parked = Parked {
            stream,
            backend: self.place.backend.clone(),
            target: self.place.target.clone(),
            principal: self.place.principal.clone(),
            method: self.method.clone(),
            slots: std::mem::take(&mut self.slots),
            questions,
        };
        let inputs = self.place.inputs.clone();
        match inputs.park(parked, &self.id_json) {
            Ok(frame) => Some(Final {
                frame,
                outcome: Outcome::InputRequired,
                ended: None,
            }),
            Err(parked) => {
                let mut parked = *parked;
                let questions = std::mem::take(&mut parked.questions);
                inputs::refuse(&parked.backend, questions, TOO_MANY_PARKED).await;
                self.stream = Some(parked.stream);
                self.slots = parked.slots;
                None
            }
        }
    }
}

/// What a retry of a parked call became.
#[derive(Debug)]
pub(crate) enum Resumed {
    /// The call goes on: answer the retry from it.
    Exchange(Box<Exchange>),
    /// Some questions are unanswered: this `input_required` asks again.
    AskedAgain(Final),
}

/// The capability a server request needs of the client.
fn capability_of(method: &str) -> Option<&'static str> {
    match method {
        "sampling/createMessage" => Some("sampling"),
        "elicitation/create" => Some("elicitation"),
        "roots/list" => Some("roots"),
        _ => None,
    }
}

//! Forwarding one call to a backend and answering it: as JSON when the
//! first thing the backend sends is the response, as SSE when something
//! comes before it (progress, a server request, a log message) and the
//! client accepts SSE. Closing the response stream drops the call, which
//! cancels it at the backend.

use std::sync::Arc;
use std::time::Instant;

use axum::response::{IntoResponse, Response};
use bytes::Bytes;
use http::StatusCode;
use mcpod_tokio::{
    CallItem, CallStream, Deadline, EndReason, OwnedOutcome, OwnedRequest, RequestOptions,
    SendError, ServerRequestKey, Upstream, UpstreamError,
};
use tokio::sync::OwnedSemaphorePermit;
use tokio_util::sync::CancellationToken;
use tracing::{debug, info};

pub mod inputs;

use super::App;
use super::errors::{ApiError, INTERNAL_ERROR, SERVER_ERROR, json_response};
use super::sse;
use crate::sessions::{Session, SessionCallGuard};
use crate::targets::{Target, answer_from_config};

/// JSON-RPC code for a request the client cancelled.
pub const REQUEST_CANCELLED: i64 = -32800;

/// Who is calling.
#[derive(Debug, Clone)]
pub enum Caller {
    /// A legacy client session.
    Legacy(Arc<Session>),
    /// A modern (stateless) client, with what it can answer by
    /// `input_required` round trips.
    Modern(inputs::ClientCaps),
    /// A Memoh-compatible route: always one JSON answer, failures as -32603.
    Memoh,
}

/// Counts a request in the metrics and logs it when dropped.
#[derive(Debug)]
pub struct Record {
    app: Arc<App>,
    target: String,
    /// The JSON-RPC method (or a label).
    pub method: String,
    session: Option<String>,
    /// How it ended; `disconnected` if nothing else is set.
    pub outcome: &'static str,
    started: Instant,
}

impl Record {
    /// Starts timing a request.
    pub fn new(app: &Arc<App>, target: &str) -> Self {
        Record {
            app: app.clone(),
            target: target.to_owned(),
            method: "unknown".into(),
            session: None,
            outcome: "disconnected",
            started: Instant::now(),
        }
    }

    /// Names the session.
    pub fn session(&mut self, id: &str) {
        self.session = Some(id.to_owned());
        tracing::Span::current().record("session", id);
    }

    /// Names the method.
    pub fn method(&mut self, method: &str) {
        self.method = method.to_owned();
        tracing::Span::current().record("method", method);
    }

    /// Answers with an error, recording its outcome.
    pub fn fail(&mut self, e: ApiError) -> Response {
        self.outcome = e.outcome();
        debug!(status = %e.status, code = e.code, message = %e.message, "request refused");
        e.into_response()
    }
}

impl Drop for Record {
    fn drop(&mut self) {
        let elapsed = self.started.elapsed();
        self.app
            .metrics
            .record(&self.target, &self.method, self.outcome, elapsed);
        info!(
            target_name = %self.target,
            method = %self.method,
            session = self.session.as_deref().unwrap_or("-"),
            outcome = self.outcome,
            elapsed_ms = elapsed.as_secs_f64() * 1000.0,
            "request done"
        );
    }
}

/// Slots held for the life of a call.
#[derive(Debug, Default)]
pub struct Slots {
    /// One of the target's call slots.
    pub target: Option<OwnedSemaphorePermit>,
    /// One of the session's call slots.
    pub session: Option<SessionCallGuard>,
}

impl Slots {
    /// Takes a target slot and, for a session, a session slot: 503 or 429
    /// when none is free.
    pub fn acquire(target: &Target, session: Option<&Arc<Session>>) -> Result<Slots, ApiError> {
        let permit = target.call_slots.clone().try_acquire_owned().map_err(|_| {
            ApiError::new(
                StatusCode::SERVICE_UNAVAILABLE,
                SERVER_ERROR,
                format!(
                    "target `{}` has {} calls in flight, its limit; retry later",
                    target.name(),
                    target.config.max_calls_in_flight
                ),
            )
            .with_header(
                http::header::RETRY_AFTER,
                http::HeaderValue::from_static("1"),
            )
        })?;
        let session = match session {
            Some(s) => Some(
                s.try_start_call(target.limits.max_calls_per_session)
                    .ok_or_else(|| {
                        ApiError::new(
                            StatusCode::TOO_MANY_REQUESTS,
                            SERVER_ERROR,
                            format!(
                                "this session has {} calls in flight, its limit",
                                target.limits.max_calls_per_session
                            ),
                        )
                        .with_header(
                            http::header::RETRY_AFTER,
                            http::HeaderValue::from_static("1"),
                        )
                    })?,
            ),
            None => None,
        };
        Ok(Slots {
            target: Some(permit),
            session,
        })
    }
}

/// One call about to be forwarded.
#[derive(Debug)]
pub struct Call {
    /// The target.
    pub target: Arc<Target>,
    /// The backend.
    pub upstream: Upstream,
    /// Who calls.
    pub caller: Caller,
    /// Whether the reply may be SSE.
    pub sse: bool,
    /// Whether the reply may be JSON (if not, even a lone response is
    /// sent as a one-event stream).
    pub json: bool,
    /// The call's deadline.
    pub deadline: Deadline,
    /// Fires when the client cancels (legacy `notifications/cancelled`).
    pub cancel: Option<CancellationToken>,
    /// Ends an SSE reply early (gateway shutdown), for calls that never
    /// end by themselves (`subscriptions/listen`).
    pub stop: Option<CancellationToken>,
    /// Slots held until the call ends.
    pub slots: Slots,
    /// Metrics and log record.
    pub record: Record,
}

/// Maps an upstream failure to the HTTP error answering the call.
pub fn upstream_error(e: &UpstreamError) -> ApiError {
    match e {
        UpstreamError::Send(
            SendError::TooManyCalls(_)
            | SendError::BackendNotReading(_)
            | SendError::NotReadyQueueFull(_),
        ) => ApiError::new(
            StatusCode::SERVICE_UNAVAILABLE,
            SERVER_ERROR,
            format!("backend overloaded: {e}"),
        )
        .with_header(
            http::header::RETRY_AFTER,
            http::HeaderValue::from_static("1"),
        ),
        UpstreamError::Send(SendError::InvalidId) => {
            ApiError::bad_request(super::errors::INVALID_REQUEST, e.to_string())
        }
        // A bot container that is missing, another bot's or refused: the
        // same statuses as the Memoh routes (404 / 403 / 400 / 503).
        UpstreamError::SpawnFailed(io) => match crate::containerd::BotRefusal::of_spawn_error(io) {
            Some(r) => ApiError::new(r.status, SERVER_ERROR, r.message),
            None => ApiError::new(
                StatusCode::BAD_GATEWAY,
                INTERNAL_ERROR,
                format!("backend unavailable: {e}"),
            ),
        },
        _ => ApiError::new(
            StatusCode::BAD_GATEWAY,
            INTERNAL_ERROR,
            format!("backend unavailable: {e}"),
        ),
    }
}

struct Flow {
    stream: CallStream,
    call: Call,
    id_json: String,
    /// The call was parked and resumed by a retry with another id: the
    /// backend's answer is re-addressed to it.
    readdress: bool,
}

/// What to do with a non-terminal item on an SSE reply.
enum Step {
    /// Send this frame.
    Emit(Vec<u8>),
    /// Nothing to send.
    Skip,
    /// End the reply with `input_required` and park the call.
    Park {
        key: ServerRequestKey,
        method: String,
        params: Option<Box<serde_json::value::RawValue>>,
    },
}

impl Flow {
    /// The terminal item's frame; records the outcome.
    fn finish(&mut self, item: CallItem) -> Vec<u8> {
        match item {
            CallItem::Response { frame, is_error } => {
                self.call.record.outcome = if is_error { "error" } else { "ok" };
                if self.readdress {
                    inputs::readdress(&frame, &self.id_json)
                } else {
                    frame
                }
            }
            CallItem::Ended { reason, frame } => {
                self.call.record.outcome = match reason {
                    EndReason::TimedOut => "timeout",
                    EndReason::Cancelled => "cancelled",
                    _ => "backend_closed",
                };
                if matches!(self.call.caller, Caller::Memoh) {
                    mcpod_core::json::error_frame(
                        &self.id_json,
                        INTERNAL_ERROR,
                        &reason.to_string(),
                        None,
                    )
                } else if self.readdress {
                    inputs::readdress(&frame, &self.id_json)
                } else {
                    frame
                }
            }
            // Not terminal: never passed here.
            CallItem::Notification { frame, .. } => frame,
            CallItem::ServerRequest { .. } => Vec::new(),
        }
    }

    /// Whether a server request should go back to a stateless caller as
    /// `input_required` (it can answer it, and config cannot).
    fn should_park(&self, method: &str) -> bool {
        match &self.call.caller {
            Caller::Modern(caps) => {
                caps.can_answer(method)
                    && !(method == "roots/list" && self.call.target.config.roots.is_some())
            }
            _ => false,
        }
    }

    /// A non-terminal item on an SSE reply.
    async fn stream_step(&mut self, item: CallItem) -> Step {
        match item {
            CallItem::Notification { frame, .. } => Step::Emit(frame),
            CallItem::ServerRequest {
                key,
                method,
                params,
            } => match &self.call.caller {
                Caller::Legacy(session) => Step::Emit(session.forward_server_request(
                    &self.call.upstream,
                    key,
                    &method,
                    params.as_deref(),
                )),
                _ if self.should_park(&method) => Step::Park {
                    key,
                    method,
                    params,
                },
                _ => {
                    answer_from_config(&self.call.upstream, &self.call.target.config, key, &method)
                        .await;
                    Step::Skip
                }
            },
            terminal => Step::Emit(self.finish(terminal)),
        }
    }

    /// Parks the call for the client's retry; returns the `input_required`
    /// frame that ends this reply.
    fn park(
        self,
        key: ServerRequestKey,
        method: &str,
        params: Option<&serde_json::value::RawValue>,
    ) -> Vec<u8> {
        let Flow {
            stream,
            call,
            id_json,
            ..
        } = self;
        let Call {
            target,
            upstream,
            slots,
            mut record,
            ..
        } = call;
        record.outcome = "input_required";
        let store = target.inputs.clone();
        let state = store.park(inputs::Parked {
            stream,
            target,
            upstream,
            slots,
            key,
        });
        inputs::input_required_frame(&id_json, method, params, &state)
    }

    /// A non-terminal item on a JSON reply: delivered another way.
    async fn side_channel(&mut self, item: CallItem) {
        match item {
            CallItem::Notification { method, frame } => match &self.call.caller {
                Caller::Legacy(session) if session.push(&frame) => {}
                _ => debug!(
                    method,
                    "notification not delivered: the reply is JSON and no stream is open"
                ),
            },
            CallItem::ServerRequest {
                key,
                method,
                params,
            } => {
                if let Caller::Legacy(session) = &self.call.caller {
                    let frame = session.forward_server_request(
                        &self.call.upstream,
                        key,
                        &method,
                        params.as_deref(),
                    );
                    if session.push(&frame) {
                        return;
                    }
                    session.forget_server_request(key);
                }
                answer_from_config(&self.call.upstream, &self.call.target.config, key, &method)
                    .await;
            }
            _ => {}
        }
    }

    fn cancelled_frame(&mut self) -> Vec<u8> {
        self.call.record.outcome = "cancelled";
        mcpod_core::json::error_frame(
            &self.id_json,
            REQUEST_CANCELLED,
            "request cancelled by the client",
            None,
        )
    }
}

async fn cancelled(token: &Option<CancellationToken>) {
    match token {
        Some(t) => t.cancelled().await,
        None => std::future::pending().await,
    }
}

/// Forwards `req` and answers it.
pub async fn forward(mut call: Call, req: OwnedRequest) -> Response {
    let id_json = req.id.get().to_owned();
    let opts = RequestOptions {
        deadline: call.deadline,
    };
    let stream = match call.upstream.call(req, opts).await {
        Ok(s) => s,
        Err(e) => {
            let mut err = upstream_error(&e);
            err.id = Some(id_json);
            if matches!(call.caller, Caller::Memoh) {
                call.record.outcome = "error";
                return json_response(mcpod_core::json::error_frame(
                    err.id.as_deref().unwrap_or("null"),
                    INTERNAL_ERROR,
                    &e.to_string(),
                    None,
                ));
            }
            return call.record.fail(err);
        }
    };
    drive(Flow {
        stream,
        call,
        id_json,
        readdress: false,
    })
    .await
}

/// Resumes a parked call for the client's retry `call` (with request id
/// `id_json`): the client's answer goes to the backend, the call's
/// result to the retry.
pub async fn resume(
    parked: inputs::Parked,
    answer: OwnedOutcome,
    call: Call,
    id_json: String,
) -> Response {
    let inputs::Parked {
        stream,
        upstream,
        slots,
        key,
        ..
    } = parked;
    let mut call = Call {
        upstream,
        slots,
        ..call
    };
    if let Err(e) = call.upstream.respond(key, answer).await {
        let mut err = upstream_error(&e);
        err.id = Some(id_json);
        return call.record.fail(err);
    }
    drive(Flow {
        stream,
        call,
        id_json,
        readdress: true,
    })
    .await
}

async fn drive(mut flow: Flow) -> Response {
    loop {
        let item = tokio::select! {
            item = flow.stream.next() => item,
            _ = cancelled(&flow.call.cancel) => return json_response(flow.cancelled_frame()),
        };
        match item {
            None => {
                let mut err = ApiError::new(
                    StatusCode::BAD_GATEWAY,
                    INTERNAL_ERROR,
                    "the backend connection ended without answering",
                );
                err.id = Some(flow.id_json.clone());
                return flow.call.record.fail(err);
            }
            Some(item) if item.is_terminal() => {
                let json = flow.call.json;
                return reply(flow.finish(item), json);
            }
            Some(CallItem::ServerRequest {
                key,
                method,
                params,
            }) if flow.should_park(&method) => {
                let json = flow.call.json;
                return reply(flow.park(key, &method, params.as_deref()), json);
            }
            Some(item) if flow.call.sse => {
                let keep_alive = flow.call.target.limits.sse_keep_alive;
                let stop = flow.call.stop.clone();
                return sse::response(stream_rest(flow, item), keep_alive, stop);
            }
            Some(item) => flow.side_channel(item).await,
        }
    }
}

fn stream_rest(flow: Flow, first: CallItem) -> impl futures::Stream<Item = Bytes> + Send {
    futures::stream::unfold(
        (Some(flow), Some(first)),
        |(flow, mut pending)| async move {
            let mut flow = flow?;
            loop {
                let item = match pending.take() {
                    Some(item) => item,
                    None => {
                        let next = tokio::select! {
                            item = flow.stream.next() => item,
                            _ = cancelled(&flow.call.cancel) => {
                                let frame = flow.cancelled_frame();
                                return Some((sse::event(&frame), (None, None)));
                            }
                        };
                        next?
                    }
                };
                let terminal = item.is_terminal();
                match flow.stream_step(item).await {
                    Step::Emit(frame) => {
                        let next = if terminal { None } else { Some(flow) };
                        return Some((sse::event(&frame), (next, None)));
                    }
                    Step::Skip => {}
                    Step::Park {
                        key,
                        method,
                        params,
                    } => {
                        let frame = flow.park(key, &method, params.as_deref());
                        return Some((sse::event(&frame), (None, None)));
                    }
                }
            }
        },
    )
}

/// A locally produced answer: JSON if accepted, else a one-event SSE stream.
pub fn reply(frame: Vec<u8>, accept_json: bool) -> Response {
    if accept_json {
        json_response(frame)
    } else {
        let event = sse::event(&frame);
        sse::response(
            futures::stream::iter([event]),
            std::time::Duration::from_secs(3600),
            None,
        )
        .into_response()
    }
}

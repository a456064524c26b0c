//! [`Exchange`]: one client call through a backend, its items turned into
//! what the client's era expects.
//!
//! A front end that can send frames before the answer (an SSE reply) asks
//! for [`Exchange::next_inline`] steps: notifications and server requests
//! come back as [`Step::Frame`]s. One that cannot asks for
//! [`Exchange::finish`]: they take the client's standing stream (a legacy
//! session's GET stream) or, for a server request, are answered from
//! config. A server request that a stateless
//! client can answer ends the exchange with an `input_required` result and
//! parks the call ([`super::inputs`]). Dropping an exchange before its end
//! cancels the call at the backend.

use std::sync::Arc;

use mcpod_tokio::{
    CallItem, CallStream, EndReason, OwnedOutcome, OwnedRequest, RequestOptions, ServerRequestKey,
    UpstreamError,
};
use serde_json::value::RawValue;
use tracing::debug;

use super::caps::ClientCaps;
use super::client::Client;
use super::inputs::{Inputs, Parked, input_required_frame};
use super::slots::Slots;
use crate::metrics::Outcome;
use crate::targets::{Backend, no_answer};

/// Who is calling, as far as the exchange cares.
#[derive(Debug, Clone)]
pub(crate) enum Caller {
    /// A legacy client session: server requests are forwarded to it, and
    /// notifications it cannot get inline go to its standing stream.
    Session(Arc<Client>),
    /// A stateless (2026-07-28) client: a server request it can answer
    /// comes back to it as `input_required`.
    Stateless(ClientCaps),
    /// A client that takes no server traffic (the Memoh routes).
    Detached,
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
}

/// Where a call's items go, and what its caller holds.
#[derive(Debug)]
pub(crate) struct Exchange {
    /// `None` once the call is parked or finished.
    stream: Option<CallStream>,
    backend: Arc<Backend>,
    target: String,
    caller: Caller,
    id_json: String,
    /// Resumed for a retry with another id: answers are re-addressed.
    readdress: bool,
    slots: Slots,
    inputs: Arc<Inputs>,
    /// Whether `roots/list` is answered from config (never parked).
    config_roots: bool,
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
}

impl Exchange {
    /// Starts `request` on the backend for `caller`.
    pub(crate) async fn start(
        place: Place,
        caller: Caller,
        request: OwnedRequest,
        mut opts: RequestOptions,
        slots: Slots,
    ) -> Result<Exchange, UpstreamError> {
        if let Caller::Session(client) = &caller {
            opts.owner = Some(client.owner());
        }
        let id_json = request.id.get().to_owned();
        let stream = place.backend.upstream.call(request, opts).await?;
        Ok(Exchange {
            stream: Some(stream),
            backend: place.backend,
            target: place.target,
            caller,
            id_json,
            readdress: false,
            slots,
            inputs: place.inputs,
            config_roots: place.config_roots,
        })
    }

    /// Resumes a parked call for the client's retry (request id `id_json`):
    /// the client's answer goes to the backend, the call's items to the
    /// retry.
    pub(crate) async fn resume(
        parked: Parked,
        answer: OwnedOutcome,
        caller: Caller,
        id_json: String,
        place: Place,
    ) -> Result<Exchange, UpstreamError> {
        parked.backend.upstream.respond(parked.key, answer).await?;
        Ok(Exchange {
            stream: Some(parked.stream),
            backend: parked.backend,
            target: parked.target,
            caller,
            id_json,
            readdress: true,
            slots: parked.slots,
            inputs: place.inputs,
            config_roots: place.config_roots,
        })
    }

    /// The client's id for the call, as JSON.
    pub(crate) fn id_json(&self) -> &str {
        &self.id_json
    }

    /// The next step of an answer that can carry frames before its end (an
    /// SSE reply): notifications and server requests come back as
    /// [`Step::Frame`]s.
    pub(crate) async fn next_inline(&mut self) -> Step {
        loop {
            match self.advance().await {
                Advance::Final(end) => return Step::Final(end),
                Advance::Notification { frame, .. } => return Step::Frame(frame),
                Advance::Request {
                    key,
                    method,
                    params,
                } => match &self.caller {
                    Caller::Session(client) => {
                        return Step::Frame(client.forward(key, &method, params.as_deref()));
                    }
                    _ => self.backend.answer_from_config(key, &method).await,
                },
            }
        }
    }

    /// The end of an answer that carries nothing before it (a JSON reply):
    /// notifications and server requests take the client's standing stream
    /// or, for a server request, are answered from config.
    pub(crate) async fn finish(&mut self) -> Final {
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
                    self.backend.answer_from_config(key, &method).await;
                }
            }
        }
    }

    /// The call's next item that is not parked away.
    async fn advance(&mut self) -> Advance {
        loop {
            let item = match self.stream.as_mut() {
                Some(stream) => stream.next().await,
                None => None,
            };
            let Some(item) = item else {
                return Advance::Final(self.fail("the backend connection ended without answering"));
            };
            match item {
                CallItem::Response { frame, is_error } => {
                    self.stream = None;
                    return Advance::Final(Final {
                        frame: self.address(frame),
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
                        _ => Outcome::BackendClosed,
                    };
                    return Advance::Final(Final {
                        frame: self.address(frame),
                        outcome,
                        ended: Some(reason),
                    });
                }
                CallItem::Notification { method, frame } => {
                    return Advance::Notification { method, frame };
                }
                CallItem::ServerRequest {
                    key,
                    method,
                    params,
                } => {
                    if self.should_park(&method) {
                        if let Some(end) = self.park(key, &method, params.as_deref()).await {
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

    /// A response frame with the retry's id when the call was resumed.
    fn address(&self, frame: Vec<u8>) -> Vec<u8> {
        if !self.readdress {
            return frame;
        }
        mcpod_core::json::readdress(&frame, &self.id_json).unwrap_or_else(|| {
            mcpod_core::json::error_frame(
                &self.id_json,
                mcpod_core::envelope::INTERNAL_ERROR,
                "the backend's answer could not be read",
                None,
            )
        })
    }

    fn fail(&mut self, message: &str) -> Final {
        self.stream = None;
        Final {
            frame: mcpod_core::json::error_frame(
                &self.id_json,
                mcpod_core::envelope::INTERNAL_ERROR,
                message,
                None,
            ),
            outcome: Outcome::Failed,
            ended: None,
        }
    }

    /// Whether a server request goes back to a stateless caller as
    /// `input_required` (it can answer it, and config cannot).
    fn should_park(&self, method: &str) -> bool {
        match &self.caller {
            Caller::Stateless(caps) => {
                caps.can_answer(method) && !(method == "roots/list" && self.config_roots)
            }
            _ => false,
        }
    }

    /// Parks the call for the client's retry; the `input_required` frame
    /// ends this exchange. `None` when too many calls are parked: the
    /// backend's request is refused and the call goes on.
    async fn park(
        &mut self,
        key: ServerRequestKey,
        method: &str,
        params: Option<&RawValue>,
    ) -> Option<Final> {
        let stream = self.stream.take()?;
        let parked = Parked {
            stream,
            backend: self.backend.clone(),
            target: self.target.clone(),
            slots: std::mem::take(&mut self.slots),
            key,
        };
        match self.inputs.park(parked) {
            Ok(state) => Some(Final {
                frame: input_required_frame(&self.id_json, method, params, &state),
                outcome: Outcome::InputRequired,
                ended: None,
            }),
            Err(parked) => {
                let _ = parked
                    .backend
                    .upstream
                    .respond(
                        key,
                        no_answer("too many calls are waiting for client input"),
                    )
                    .await;
                self.stream = Some(parked.stream);
                self.slots = parked.slots;
                None
            }
        }
    }
}

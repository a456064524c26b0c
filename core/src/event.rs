//! What a session reports: events, routes and why calls end.

use std::fmt;
use std::sync::Arc;

use serde_json::value::RawValue;
use thiserror::Error;

use crate::envelope::EnvelopeError;
use crate::framing::FrameError;

/// Identifies one call. It is also the id the backend sees, so it never
/// collides with another call or with the session's own requests.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct CallId(pub(crate) u64);

impl CallId {
    /// The id the backend sees for this call.
    pub fn backend_id(self) -> u64 {
        self.0
    }
}

impl fmt::Display for CallId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "call#{}", self.0)
    }
}

/// Identifies one server→client request awaiting an answer.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct ServerRequestId(pub(crate) u64);

impl ServerRequestId {
    /// Its number within the session.
    pub fn get(self) -> u64 {
        self.0
    }

    /// The id with this number (answering one the session never issued is
    /// refused with [`SendError::UnknownServerRequest`]).
    pub fn from_u64(n: u64) -> Self {
        ServerRequestId(n)
    }
}

impl fmt::Display for ServerRequestId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "server-request#{}", self.0)
    }
}

/// The MCP era a backend speaks.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Era {
    /// `initialize`-based revisions (2025-11-25 and earlier).
    Legacy,
    /// Stateless revisions (2026-07-28 and later).
    Modern,
}

/// What discovery or the handshake found out about the backend, enough for a
/// front end to answer its own clients' `initialize` or `server/discover`.
#[derive(Debug, Clone)]
pub struct BackendInfo {
    /// The backend's era.
    pub era: Era,
    /// The revision in use with the backend.
    pub protocol_version: String,
    /// Revisions the backend supports (legacy: just the negotiated one).
    pub supported_versions: Vec<String>,
    /// The backend's capabilities object.
    pub capabilities: Box<RawValue>,
    /// The backend's `serverInfo` (legacy) or
    /// `_meta["io.modelcontextprotocol/serverInfo"]` (modern).
    pub server_info: Option<Box<RawValue>>,
    /// The backend's instructions.
    pub instructions: Option<String>,
    /// The whole `initialize` or `server/discover` result, as received.
    pub result: Box<RawValue>,
}

/// Who a call belongs to, in the caller's terms (a client session, say):
/// set in [`RequestOptions::owner`](crate::RequestOptions::owner).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct Owner(pub u64);

impl fmt::Display for Owner {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "owner#{}", self.0)
    }
}

/// Where a backend notification or request belongs.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Route {
    /// To the caller of this call (progress for its token, notifications of
    /// its subscription, or — for server requests and log messages — the
    /// only call in flight).
    Call(CallId),
    /// To this owner: a server request or log message while several calls
    /// are in flight, all of the calls with an owner being this owner's.
    Owner(Owner),
    /// To every interested client (list changes, resource updates, logs).
    Broadcast,
}

/// Why a call ended without a response from the backend.
#[derive(Debug, Clone, PartialEq, Eq, Error)]
#[non_exhaustive]
pub enum EndReason {
    /// Its deadline passed; the backend was told to cancel it.
    #[error("request timed out")]
    TimedOut,
    /// The caller cancelled it; the backend was told.
    #[error("request cancelled")]
    Cancelled,
    /// The backend closed (EOF, crash or local close) before answering.
    #[error("backend closed: {0}")]
    BackendClosed(CloseReason),
    /// The backend ended it without a response: on stdio, a modern server
    /// ends a `subscriptions/listen` stream with `notifications/cancelled`.
    #[error("ended by the backend: {0}")]
    EndedByBackend(String),
    /// The backend answered with a line longer than
    /// [`Config::max_frame_len`](crate::Config::max_frame_len): the answer
    /// was discarded unread (its id read from its first bytes), the call
    /// ended at once.
    #[error("the backend's reply was larger than the {limit}-byte limit")]
    ResponseTooLarge {
        /// The limit in force, in bytes.
        limit: usize,
    },
}

impl EndReason {
    /// The JSON-RPC error code used to tell the caller.
    pub fn code(&self) -> i64 {
        use crate::envelope::{REQUEST_CANCELLED, REQUEST_TIMEOUT, SERVER_ERROR};
        match self {
            EndReason::TimedOut => REQUEST_TIMEOUT,
            EndReason::Cancelled => REQUEST_CANCELLED,
            EndReason::BackendClosed(_)
            | EndReason::EndedByBackend(_)
            | EndReason::ResponseTooLarge { .. } => SERVER_ERROR,
        }
    }
}

/// Why a session closed.
#[derive(Debug, Clone, PartialEq, Eq, Error)]
#[non_exhaustive]
pub enum CloseReason {
    /// The backend's output ended.
    #[error("backend closed its output")]
    Eof,
    /// [`Session::close`](crate::Session::close) was called.
    #[error("session closed locally")]
    Local,
    /// Discovery or the `initialize` handshake failed.
    #[error("handshake failed: {0}")]
    HandshakeFailed(Arc<str>),
}

/// A fault of the backend's, reported and survived.
#[derive(Debug, Clone, PartialEq, Eq, Error)]
#[non_exhaustive]
pub enum PeerFault {
    /// A line too long; discarded.
    #[error(transparent)]
    Frame(#[from] FrameError),
    /// A line that is not a JSON-RPC message; skipped.
    #[error("backend sent an invalid message: {0}")]
    Envelope(#[from] EnvelopeError),
    /// A response to an id never issued.
    #[error("backend answered an unknown id {0}")]
    UnknownResponse(String),
    /// A response to a call that had already ended (timed out or
    /// cancelled); dropped.
    #[error("late response to backend id {0} dropped")]
    LateResponse(u64),
    /// An error response without an id.
    #[error("backend sent an error without an id: {0}")]
    UnroutableError(String),
}

/// A server→client request for the front end to answer through
/// [`Session::respond`](crate::Session::respond).
#[derive(Debug, Clone)]
pub struct ServerRequest {
    /// The handle to answer it with.
    pub id: ServerRequestId,
    /// Its method, e.g. `roots/list`.
    pub method: String,
    /// Its raw params.
    pub params: Option<Box<RawValue>>,
    /// The call it most likely belongs to (the only one in flight), if any.
    pub route: Route,
}

/// Everything a session reports, in order.
#[derive(Debug, Clone)]
#[non_exhaustive]
pub enum Event {
    /// The backend is ready; queued calls have been sent.
    Ready(Arc<BackendInfo>),
    /// A call's response, ready to send: the caller's own id is back in it.
    Response {
        /// The call answered.
        call: CallId,
        /// The response frame (no trailing newline).
        frame: Vec<u8>,
        /// Whether it is an error response.
        is_error: bool,
    },
    /// A call ended without a response.
    CallEnded {
        /// The call.
        call: CallId,
        /// Why.
        reason: EndReason,
        /// A JSON-RPC error response with the caller's id, ready to send.
        frame: Vec<u8>,
    },
    /// A backend notification (progress tokens and subscription ids restored
    /// to the caller's).
    Notification {
        /// Where it belongs.
        route: Route,
        /// Its method.
        method: String,
        /// The notification frame (no trailing newline).
        frame: Vec<u8>,
    },
    /// A backend request to the client side.
    ServerRequest(ServerRequest),
    /// The backend withdrew a server request (`notifications/cancelled`).
    ServerRequestCancelled(ServerRequestId),
    /// The backend misbehaved; the session carries on.
    PeerFault(PeerFault),
    /// The session is closed for good.
    Closed(CloseReason),
}

/// Why a command was refused.
#[derive(Debug, Clone, PartialEq, Eq, Error)]
#[non_exhaustive]
pub enum SendError {
    /// The session is closed; it stays closed.
    #[error("session is closed: {0}")]
    Closed(CloseReason),
    /// Too many calls open at once.
    #[error("too many calls in flight (limit {0})")]
    TooManyCalls(usize),
    /// The output queue for the backend is full: it is not reading stdin.
    #[error("backend not reading: {0} bytes already queued")]
    BackendNotReading(usize),
    /// Too many messages queued while the backend is not ready yet.
    #[error("backend not ready and {0} messages already queued")]
    NotReadyQueueFull(usize),
    /// The caller's id is not a string or number.
    #[error("request id must be a string or a number")]
    InvalidId,
    /// The owner already has a call in flight with this id.
    #[error("request id {0} is already in use by a request in flight")]
    DuplicateId(Box<str>),
    /// The method is handled by the session itself (`initialize`).
    #[error("`{0}` is handled by the gateway, not forwarded")]
    Reserved(&'static str),
    /// Cancellation goes through [`Session::cancel`](crate::Session::cancel).
    #[error("send cancellations with Session::cancel, by call")]
    UseCancel,
    /// No such server request is awaiting an answer (answered already?).
    #[error("no server request {0} awaits an answer")]
    UnknownServerRequest(ServerRequestId),
    /// Too many asking calls already wait for their turn
    /// ([`Config::max_queued_asking`](crate::Config::max_queued_asking)).
    #[error("too many calls that may ask the client wait for their turn (limit {0})")]
    AskingQueueFull(usize),
}

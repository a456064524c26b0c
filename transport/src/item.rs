//! What callers hand to an upstream and what it hands back: requests,
//! answers to server requests, call items and un-routed events.

use std::fmt;

use mcpod_core::{Owner, ServerRequestId};
use serde_json::value::RawValue;

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
/// [`UpstreamError::StaleServerRequest`](crate::UpstreamError::StaleServerRequest).
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

    /// A number naming it, for a front end that forwards the request to a
    /// client under a JSON id of its own: the session's id for it, with
    /// the generation above bit 32, so ids of a restarted backend never
    /// repeat those of the one before (the first backend's are the
    /// session's ids as they are). Exact in JSON for 2^20 generations.
    pub fn wire_id(&self) -> u64 {
        ((self.generation.saturating_sub(1)) << 32) | (self.id.get() & 0xffff_ffff)
    }

    /// The key a [`wire_id`](Self::wire_id) names.
    pub fn from_wire_id(n: u64) -> ServerRequestKey {
        ServerRequestKey {
            generation: (n >> 32) + 1,
            id: ServerRequestId::from_u64(n & 0xffff_ffff),
        }
    }
}

impl fmt::Display for ServerRequestKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{} of backend generation {}", self.id, self.generation)
    }
}

/// What a [`CallStream`](crate::CallStream) yields.
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
    /// [`Upstream::respond`](crate::Upstream::respond).
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
    /// A notification that names no call (list changes, resource updates,
    /// logs).
    Notification {
        /// Its method.
        method: String,
        /// The frame (no trailing newline).
        frame: Vec<u8>,
        /// The only owner with calls in flight when it came, for a log
        /// message ([`mcpod_core::Route::Owner`]); `None`: nobody in
        /// particular.
        owner: Option<Owner>,
    },
    /// A server→client request not tied to one call; answer it with
    /// [`Upstream::respond`](crate::Upstream::respond).
    ServerRequest {
        /// The handle to answer it with.
        key: ServerRequestKey,
        /// Its method.
        method: String,
        /// Its raw params.
        params: Option<Box<RawValue>>,
        /// The only owner with calls in flight when it came, if any.
        owner: Option<Owner>,
    },
    /// The backend withdrew a server request.
    ServerRequestCancelled(ServerRequestKey),
    /// A new backend process replaced one that ended.
    Restarted {
        /// Its generation (2 for the first restart).
        generation: u64,
    },
}

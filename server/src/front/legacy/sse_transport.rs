//! The deprecated 2024-11-05 HTTP+SSE transport, for the older clients
//! still in use: the client opens `GET /mcp/{target}/sse`, whose first event
//! (`endpoint`) names where to POST its messages
//! (`/mcp/{target}/messages?sessionId=…`); each POST is accepted at once
//! (202), and everything the server sends — responses included — comes on
//! the SSE stream.
//!
//! Underneath it is a legacy session like any other: its id is the
//! endpoint's, its standing stream is the SSE stream, and each message is
//! handled as a Streamable HTTP POST of that session whose answer is moved
//! onto the stream.
//!
//! The SSE stream holds one of the target's stream slots
//! (`max_streams_per_target`, 503 beyond) while open, and is ended after
//! `max_stream_lifetime`, or at shutdown. This transport has no resumption: the session
//! ends with its stream, and the client connects again.

use std::sync::Arc;

use axum::body::Bytes;
use axum::response::Response;
use futures::StreamExt;
use http::{HeaderMap, HeaderValue, StatusCode};
use mcpod_core::Message;
use tokio::sync::{OwnedSemaphorePermit, mpsc};
use tokio::time::Instant;
use tokio_util::sync::CancellationToken;
use tracing::debug;

use super::session::Sessions;
use super::{Binding, LegacyPost, post_bound, reserve};
use crate::config::Access;
use crate::front::context::Context;
use crate::front::refusals::streams_busy;
use crate::ids::Principal;
use crate::targets::Target;
use crate::web::errors::{ApiError, accepted};
use crate::web::headers;
use crate::web::record::Record;
use crate::web::sse;

/// Frames buffered for an endpoint's stream.
const STREAM_BUFFER: usize = 256;
/// The largest answer moved onto a stream (the core's frame limit).
const MAX_ANSWER: usize = mcpod_core::framing::DEFAULT_MAX_FRAME_LEN;

/// Ends an endpoint (and its session) when its SSE stream ends, and
/// gives back its stream slot.
struct Closing {
    id: String,
    target: Arc<Target>,
    sessions: Arc<Sessions>,
    _slot: OwnedSemaphorePermit,
}

impl Drop for Closing {
    fn drop(&mut self) {
        self.sessions.endpoints.close(&self.id);
        let session = self
            .sessions
            .of(self.target.name())
            .and_then(|s| s.remove(&self.id));
        if let Some(session) = session {
            tokio::spawn(async move { session.close().await });
        }
    }
}

/// `GET /mcp/{target}/sse`: opens an endpoint, whose stream also ends
/// when `shutdown` is cancelled.
pub(crate) fn open(
    sessions: &Arc<Sessions>,
    target: &Arc<Target>,
    headers: &HeaderMap,
    principal: Principal,
    shutdown: CancellationToken,
    mut record: Record,
) -> Response {
    if !headers::Accept::from_headers(headers).sse {
        return record.fail(ApiError::new(
            StatusCode::NOT_ACCEPTABLE,
            crate::web::errors::INVALID_REQUEST,
            "the SSE transport answers with an event stream: Accept must include text/event-stream",
        ));
    }
    // The endpoint holds its session's place from now: its `initialize`
    // cannot be refused for a limit that endpoints opened later took.
    let Some(slot) = target.try_stream_slot() else {
        return record.fail(streams_busy(target));
    };
    let Some(store) = sessions.of(target.name()) else {
        return record.fail(ApiError::new(
            StatusCode::NOT_FOUND,
            crate::web::errors::SERVER_ERROR,
            format!("target `{}` has no legacy sessions", target.name()),
        ));
    };
    let place = match reserve(store, target, &principal) {
        Ok(place) => place,
        Err(e) => return record.fail(e),
    };
    let id = super::session::new_session_id();
    let (tx, rx) = mpsc::channel(STREAM_BUFFER);
    sessions.endpoints.open(id.clone(), tx, place, principal);
    let endpoint = format!("/mcp/{}/messages?sessionId={id}", target.name());
    let first = futures::stream::iter([sse::named_event("endpoint", endpoint.as_bytes())]);
    let closing = Closing {
        id: id.clone(),
        target: target.clone(),
        sessions: sessions.clone(),
        _slot: slot,
    };
    let deadline = Instant::now() + target.limits.max_stream_lifetime;
    let rest = futures::stream::unfold((rx, closing), move |(mut rx, closing)| async move {
        tokio::select! {
            frame = rx.recv() => frame.map(|frame| (sse::event(&frame), (rx, closing))),
            () = tokio::time::sleep_until(deadline) => {
                debug!(session = %closing.id, "an SSE endpoint reached its lifetime; ending it");
                None
            }
        }
    });
    record.session(&id);
    record.outcome = crate::metrics::Outcome::Ok;
    sse::response(
        first.chain(rest).boxed(),
        target.limits.sse_keep_alive,
        Some(shutdown),
    )
}

/// `POST /mcp/{target}/messages?sessionId=…`: a message of an endpoint's
/// client, accepted at once; its answer goes onto the endpoint's stream.
#[allow(clippy::too_many_arguments)] // one of each thing a message needs
pub(crate) fn post(
    ctx: &Context,
    sessions: &Arc<Sessions>,
    target: Arc<Target>,
    session_id: &str,
    principal: &Principal,
    access: Access,
    body: Bytes,
    mut record: Record,
) -> Response {
    let Some(stream) = sessions.endpoints.stream(session_id, principal) else {
        return record.fail(ApiError::new(
            StatusCode::NOT_FOUND,
            crate::web::errors::SESSION_NOT_FOUND,
            "no open SSE endpoint with this sessionId; open /sse again",
        ));
    };
    if let Err(e) = Message::parse(&body) {
        return record.fail(ApiError::bad_request(e.code(), e.to_string()));
    }
    // Handled as a Streamable HTTP POST of the session, answered in JSON.
    let mut headers = HeaderMap::new();
    headers.insert(
        http::header::ACCEPT,
        HeaderValue::from_static("application/json"),
    );
    let is_initialize = matches!(Message::parse(&body), Ok(m) if m.method() == Some("initialize"));
    if !is_initialize {
        if let Ok(v) = HeaderValue::from_str(session_id) {
            headers.insert(headers::SESSION_ID, v);
        }
    }
    let ctx = ctx.clone();
    let sessions = sessions.clone();
    let binding = Binding {
        id: session_id.to_owned(),
        stream: stream.clone(),
    };
    let principal = principal.clone();
    tokio::spawn(async move {
        let Ok(msg) = Message::parse(&body) else {
            return;
        };
        let request = LegacyPost {
            headers: &headers,
            msg: &msg,
            principal,
            access,
        };
        let answer = post_bound(&ctx, &sessions, target, request, record, Some(binding)).await;
        if answer.status() == StatusCode::ACCEPTED {
            return; // a notification or an answer: nothing to send back
        }
        match axum::body::to_bytes(answer.into_body(), MAX_ANSWER).await {
            Ok(frame) if !frame.is_empty() => {
                if stream.send(frame.to_vec()).await.is_err() {
                    debug!("an SSE endpoint closed before its answer");
                }
            }
            Ok(_) => {}
            Err(e) => debug!(error = %e, "an answer could not be moved onto the SSE stream"),
        }
    });
    accepted()
}

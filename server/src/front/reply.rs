//! Answering a call over HTTP: as JSON when the first thing the exchange
//! gives is the answer, as SSE when frames come before it and the client
//! accepts SSE. Closing the response stream drops the exchange, which
//! cancels the call at the backend.

use std::time::Duration;

use axum::response::{IntoResponse, Response};
use bytes::Bytes;
use tokio_util::sync::CancellationToken;

use mcpod_tokio::Upstream;
use serde_json::value::RawValue;

use crate::bridge::{Exchange, Step};
use crate::metrics::Outcome;
use crate::web::errors::{accepted, json_response, upstream_error};
use crate::web::headers::Accept;
use crate::web::record::Record;
use crate::web::sse;

/// A locally produced answer: JSON if accepted, else a one-event SSE stream.
pub(crate) fn reply(frame: Vec<u8>, accept_json: bool) -> Response {
    if accept_json {
        json_response(frame)
    } else {
        let event = sse::event(&frame);
        sse::response(
            futures::stream::iter([event]),
            Duration::from_secs(3600),
            None,
        )
        .into_response()
    }
}

/// How to answer a call.
#[derive(Debug, Clone)]
pub(crate) struct Answering {
    /// What the client accepts.
    pub(crate) accept: Accept,
    /// SSE keep-alive interval.
    pub(crate) keep_alive: Duration,
    /// Ends an SSE reply early (gateway shutdown), for calls that never end
    /// by themselves (`subscriptions/listen`).
    pub(crate) stop: Option<CancellationToken>,
    /// A 2026-07-28 client: the protocol errors that HTTP status codes
    /// carry too (-32020, -32021, -32022 → 400) get them on a JSON reply.
    pub(crate) statuses: bool,
}

/// The HTTP status a 2026-07-28 JSON reply carrying this error frame gets.
fn status_of(frame: &[u8]) -> Option<http::StatusCode> {
    use mcpod_core::envelope::{
        ErrorObject, HEADER_MISMATCH, MISSING_REQUIRED_CLIENT_CAPABILITY,
        UNSUPPORTED_PROTOCOL_VERSION,
    };
    let mcpod_core::Message::Error { error, .. } = mcpod_core::Message::parse(frame).ok()? else {
        return None;
    };
    match ErrorObject::parse(error)?.code {
        HEADER_MISMATCH | MISSING_REQUIRED_CLIENT_CAPABILITY | UNSUPPORTED_PROTOCOL_VERSION => {
            Some(http::StatusCode::BAD_REQUEST)
        }
        _ => None,
    }
}

/// A final frame as a JSON reply (with its status, for a 2026-07-28
/// client), or a one-event stream.
fn final_reply(frame: Vec<u8>, how: &Answering) -> Response {
    let status = if how.statuses
        && how.accept.json
        && memchr::memmem::find(&frame, b"\"error\"").is_some()
    {
        status_of(&frame)
    } else {
        None
    };
    let mut response = reply(frame, how.accept.json);
    if let Some(status) = status {
        *response.status_mut() = status;
    }
    response
}

/// Answers the call behind `exchange`; `record` notes how it ended.
pub(crate) async fn answer(mut exchange: Exchange, mut record: Record, how: Answering) -> Response {
    if !how.accept.sse {
        let end = exchange.finish().await;
        record.outcome = end.outcome;
        return final_reply(end.frame, &how);
    }
    match exchange.next_inline().await {
        Step::Final(end) => {
            record.outcome = end.outcome;
            final_reply(end.frame, &how)
        }
        Step::Frame(first) => {
            let events = futures::stream::unfold(
                (Some((exchange, record)), Some(first)),
                |(state, first)| async move {
                    let (mut exchange, mut record) = state?;
                    if let Some(frame) = first {
                        return Some((sse::event(&frame), (Some((exchange, record)), None)));
                    }
                    match exchange.next_inline().await {
                        Step::Frame(frame) => {
                            Some((sse::event(&frame), (Some((exchange, record)), None)))
                        }
                        Step::Final(end) => {
                            record.outcome = end.outcome;
                            Some::<(Bytes, _)>((sse::event(&end.frame), (None, None)))
                        }
                    }
                },
            );
            sse::response(events, how.keep_alive, how.stop)
        }
    }
}

/// Forwards a client's notification to the backend: 202, or the error.
pub(crate) async fn forward_notification(
    upstream: &Upstream,
    method: &str,
    params: Option<&RawValue>,
    mut record: Record,
) -> Response {
    match upstream.notify(method, params.map(|p| p.to_owned())).await {
        Ok(()) => {
            record.outcome = Outcome::Ok;
            accepted()
        }
        Err(e) => record.fail(upstream_error(&e)),
    }
}

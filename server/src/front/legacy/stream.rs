//! A legacy session's SSE streams over HTTP, resumable (Streamable HTTP
//! 2025-11-25, "Resumability and Redelivery"): GET streams, new or resumed
//! with `Last-Event-ID`, and the SSE replies to its POSTs. Every event has
//! an id; the session keeps its last events ([`crate::bridge::Client`]'s
//! streams), and a GET with `Last-Event-ID` gets the events of the stream
//! that id belongs to after it, and then what comes next on that stream.
//!
//! - A GET holds one of the session's GET connections
//!   (`max_streams_per_session`, 429 beyond) and one of the target's
//!   stream slots (`max_streams_per_target`, 503 beyond) while open, and no
//!   call slot. The gateway ends it after `max_stream_lifetime` with a
//!   `retry` field; the client comes back with `Last-Event-ID` and misses
//!   nothing.
//! - A call answered with SSE runs on when its connection breaks: the spec
//!   asks that a disconnection not be taken for a cancellation
//!   (`notifications/cancelled` cancels). Its items go to the reply
//!   stream, to be resumed with a GET, which gets the rest and then the
//!   response. It is cancelled when the session ends, and bounded by the
//!   call's timeout.
//! - A `Last-Event-ID` that names no event of the session is refused with
//!   400; one whose stream's later events are no longer kept with 410
//!   (Gone): the client is told, never given a stream with a gap, and
//!   opens a new one without `Last-Event-ID`.

use std::sync::Arc;
use std::time::Duration;

use axum::response::Response;
use bytes::Bytes;
use futures::{Stream, StreamExt};
use http::{HeaderMap, HeaderValue, StatusCode};
use tokio::time::Instant;
use tracing::{Instrument, debug};

use super::session::Session;
use crate::bridge::{Attached, Client, Exchange, Next, Refusal, Step, StreamId, StreamLimits};
use crate::config::Limits;
use crate::front::context::Context;
use crate::front::refusals::streams_busy;
use crate::front::reply::reply;
use crate::targets::Target;
use crate::web::errors::{ApiError, INVALID_REQUEST, SERVER_ERROR, SESSION_NOT_FOUND, overloaded};
use crate::web::headers::{self, Accept};
use crate::web::record::Record;
use crate::web::sse;

/// `Last-Event-ID`.
const LAST_EVENT_ID: &str = "last-event-id";
/// How long a client waits before it reconnects to a stream the gateway
/// ended (the SSE `retry` field).
const RETRY: Duration = Duration::from_secs(1);
/// Bytes of events a session keeps for replay, beside the count
/// (`sse_replay_events`): the oldest go first; the newest is always kept,
/// so a large message (up to the core's frame limit) still reaches its
/// reader.
const REPLAY_BYTES: usize = 4 * 1024 * 1024;
/// The first revision whose clients expect a priming event (an id with
/// empty data); older ones may take one for a broken message.
const PRIMING_SINCE: &str = "2025-11-25";

/// Whether the session's new streams start with a priming event.
fn primes(session: &Session) -> bool {
    session.version >= PRIMING_SINCE
}

/// The bounds of a session's streams under `limits`.
pub(crate) fn stream_limits(limits: &Limits) -> StreamLimits {
    StreamLimits {
        events: limits.sse_replay_events,
        bytes: REPLAY_BYTES,
        readers: limits.max_streams_per_session,
    }
}

/// `GET /mcp/{target}` of a legacy session: a new stream of what no call
/// names, or, with `Last-Event-ID`, the stream that id belongs to.
pub(crate) fn open(
    session: &Session,
    target: &Target,
    headers: &HeaderMap,
    mut record: Record,
) -> Response {
    if !Accept::from_headers(headers).sse {
        return record.fail(ApiError::new(
            StatusCode::NOT_ACCEPTABLE,
            INVALID_REQUEST,
            "GET opens an event stream: Accept must include text/event-stream",
        ));
    }
    let last = match headers::single(headers, LAST_EVENT_ID) {
        Ok(last) => last,
        Err(p) => return record.fail(ApiError::bad_request(INVALID_REQUEST, p.to_string())),
    };
    session.touch();
    let client = &session.client;
    let slot = || target.try_stream_slot();
    let attached = match last {
        Some(id) => client.resume(id, slot),
        None => client.open_standing(primes(session), slot),
    };
    let attached = match attached {
        Ok(a) => a,
        Err(refusal) => return record.fail(refused(refusal, target)),
    };
    record.outcome = crate::metrics::Outcome::Ok;
    let deadline = Instant::now() + target.limits.max_stream_lifetime;
    let priming = attached.priming.as_deref().map(sse::priming);
    let events =
        futures::stream::iter(priming).chain(read(client.clone(), &attached, Some(deadline)));
    let mut response = sse::response(
        events,
        target.limits.sse_keep_alive,
        Some(session.closed.clone()),
    );
    if let Ok(v) = HeaderValue::from_str(&session.id) {
        response.headers_mut().insert(headers::SESSION_ID, v);
    }
    response
}

/// The answer to a GET that could not open or resume a stream.
fn refused(refusal: Refusal, target: &Target) -> ApiError {
    let limits = &target.limits;
    match refusal {
        Refusal::TooManyReaders => overloaded(
            StatusCode::TOO_MANY_REQUESTS,
            format!(
                "this session has {} GET streams open, its limit",
                limits.max_streams_per_session
            ),
        ),
        Refusal::NoSlot => streams_busy(target),
        Refusal::Unknown => ApiError::bad_request(
            INVALID_REQUEST,
            "Last-Event-ID names no event of this session; open the stream without it",
        ),
        Refusal::Gone => ApiError::new(
            StatusCode::GONE,
            SERVER_ERROR,
            format!(
                "the events after Last-Event-ID on its stream are no longer kept (a session keeps \
                 its last {}), so it cannot be resumed without a gap; open a new stream without \
                 Last-Event-ID",
                limits.sse_replay_events
            ),
        ),
        Refusal::Closed => ApiError::new(
            StatusCode::NOT_FOUND,
            SESSION_NOT_FOUND,
            "session not found or expired; initialize again",
        ),
    }
}

/// Answers a session's call: JSON when the answer is the first thing (or
/// SSE is not accepted), else a resumable SSE reply whose call runs on
/// its own, in `ctx`'s call tasks (waited for at shutdown).
pub(crate) async fn answer(
    ctx: &Context,
    session: &Session,
    mut exchange: Exchange,
    mut record: Record,
    accept: Accept,
    keep_alive: Duration,
) -> Response {
    if !accept.sse {
        let end = exchange.finish().await;
        record.outcome = end.outcome;
        return reply(end.frame, accept.json);
    }
    let first = match exchange.next_inline().await {
        Step::Final(end) => {
            record.outcome = end.outcome;
            return reply(end.frame, accept.json);
        }
        Step::Frame(frame) => frame,
    };
    let client = session.client.clone();
    let Some(attached) = client.open_reply(primes(session)) else {
        return record.fail(ApiError::new(
            StatusCode::NOT_FOUND,
            SESSION_NOT_FOUND,
            "the session ended during the call",
        ));
    };
    let seq = client.append(attached.stream, first);
    let relay = relay(client.clone(), attached.stream, exchange, record, seq);
    ctx.calls.spawn(relay.instrument(tracing::Span::current()));
    let priming = attached.priming.as_deref().map(sse::priming);
    let events = futures::stream::iter(priming).chain(read(client, &attached, None));
    sse::response(events, keep_alive, None)
}

/// Marks a reply stream finished when its call's relay ends, however it
/// ends, so its readers stop after the last event.
struct Finishing {
    client: Arc<Client>,
    stream: StreamId,
}

impl Drop for Finishing {
    fn drop(&mut self) {
        self.client.finish(self.stream);
    }
}

/// Carries a call's items onto its reply stream until the response,
/// never ahead of the connection reading it (as when the reply was
/// pulled by its connection); on its own when none does. Dropping the
/// exchange when the session ends cancels the call.
async fn relay(
    client: Arc<Client>,
    stream: StreamId,
    mut exchange: Exchange,
    mut record: Record,
    mut last: Option<u64>,
) {
    let _finishing = Finishing {
        client: client.clone(),
        stream,
    };
    loop {
        if let Some(seq) = last {
            if !reader_caught_up(&client, stream, seq).await {
                return;
            }
        }
        let step = tokio::select! {
            step = exchange.next_inline() => step,
            () = client.ended().cancelled() => return,
        };
        match step {
            Step::Frame(frame) => last = client.append(stream, frame),
            Step::Final(end) => {
                record.outcome = end.outcome;
                if client.append(stream, end.frame).is_none() {
                    debug!("a call's response had no reply stream left to go to");
                }
                return;
            }
        }
    }
}

/// Waits until event `seq` of `stream` is sent, or nobody reads it; false
/// when the client ended.
async fn reader_caught_up(client: &Client, stream: StreamId, seq: u64) -> bool {
    loop {
        let changed = client.wake().notified();
        tokio::pin!(changed);
        changed.as_mut().enable();
        if !client.awaits_reader(stream, seq) {
            return true;
        }
        tokio::select! {
            () = &mut changed => {}
            () = client.ended().cancelled() => return false,
        }
    }
}

/// One connection reading a stream; detaches from it when dropped.
struct Reading {
    client: Arc<Client>,
    stream: StreamId,
    generation: u64,
    cursor: u64,
    /// When the gateway ends this connection (GET streams).
    deadline: Option<Instant>,
    expired: bool,
}

impl Drop for Reading {
    fn drop(&mut self) {
        self.client.detach(self.stream, self.generation);
    }
}

/// The events of the stream `attached` reads, with their ids, until it
/// ends or `deadline` (then a `retry` field, and the stream stays to be
/// resumed).
fn read(
    client: Arc<Client>,
    attached: &Attached,
    deadline: Option<Instant>,
) -> impl Stream<Item = Bytes> + Send + 'static {
    let reading = Reading {
        client,
        stream: attached.stream,
        generation: attached.generation,
        cursor: attached.cursor,
        deadline,
        expired: false,
    };
    futures::stream::unfold(reading, |mut r| async move {
        if r.expired {
            return None;
        }
        let client = r.client.clone();
        let deadline = r.deadline;
        loop {
            if deadline.is_some_and(|at| Instant::now() >= at) {
                r.expired = true;
                return Some((sse::retry(RETRY), r));
            }
            let changed = client.wake().notified();
            tokio::pin!(changed);
            changed.as_mut().enable();
            match client.next_event(r.stream, r.generation, r.cursor) {
                Next::Event { id, seq, frame } => {
                    r.cursor = seq;
                    return Some((sse::event_with_id(Some(&id), &frame), r));
                }
                Next::End => return None,
                Next::Lost => {
                    debug!("a stream's reader fell behind what the session keeps; ending it");
                    return None;
                }
                Next::Wait => {}
            }
            let expiry = async move {
                match deadline {
                    Some(at) => tokio::time::sleep_until(at).await,
                    None => std::future::pending().await,
                }
            };
            tokio::select! {
                () = &mut changed => {}
                () = expiry => {
                    r.expired = true;
                    return Some((sse::retry(RETRY), r));
                }
            }
        }
    })
}

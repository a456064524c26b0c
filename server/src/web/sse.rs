//! Server-sent event responses: one JSON-RPC message per `message` event
//! (with an `id` on resumable streams), `:` comment keep-alives on quiet
//! streams, `X-Accel-Buffering: no`.

use std::convert::Infallible;
use std::future::Future;
use std::task::Poll;
use std::time::Duration;

use axum::body::Body;
use axum::response::Response;
use bytes::Bytes;
use futures::Stream;
use http::{HeaderValue, header};
use tokio_util::sync::CancellationToken;

/// One SSE `message` event carrying a JSON-RPC frame.
pub(crate) fn event(frame: &[u8]) -> Bytes {
    event_with_id(None, frame)
}

/// One SSE `message` event carrying a JSON-RPC frame, with an `id` the
/// client can resume after (`Last-Event-ID`). Ids are the gateway's own:
/// no newlines.
pub(crate) fn event_with_id(id: Option<&str>, frame: &[u8]) -> Bytes {
    let id_len = id.map_or(0, |i| i.len() + 5);
    let mut out = Vec::with_capacity(frame.len() + id_len + 24);
    if let Some(id) = id {
        out.extend_from_slice(b"id: ");
        out.extend_from_slice(id.as_bytes());
        out.push(b'\n');
    }
    out.extend_from_slice(b"event: message\ndata: ");
    push_data(&mut out, frame);
    out.extend_from_slice(b"\n\n");
    Bytes::from(out)
}

/// Appends `data` as one SSE data line. Frames are single-line JSON; a
/// stray newline would end the event early, so any is turned into a space
/// (insignificant whitespace in JSON). Copied in runs between line breaks
/// (usually one run: the whole frame).
fn push_data(out: &mut Vec<u8>, data: &[u8]) {
    let mut rest = data;
    while let Some(i) = memchr::memchr2(b'\n', b'\r', rest) {
        out.extend_from_slice(&rest[..i]);
        out.push(b' ');
        rest = &rest[i + 1..];
    }
    out.extend_from_slice(rest);
}

/// One SSE event named `name` (the 2024-11-05 transport's `endpoint`).
pub(crate) fn named_event(name: &str, data: &[u8]) -> Bytes {
    let mut out = Vec::with_capacity(data.len() + name.len() + 16);
    out.extend_from_slice(b"event: ");
    out.extend_from_slice(name.as_bytes());
    out.extend_from_slice(b"\ndata: ");
    push_data(&mut out, data);
    out.extend_from_slice(b"\n\n");
    Bytes::from(out)
}

/// A priming event: an id and empty data, sent first on a new stream so
/// that the client can resume it even before anything else came
/// (2025-11-25).
pub(crate) fn priming(id: &str) -> Bytes {
    Bytes::from(format!("id: {id}\ndata: \n\n"))
}

/// A `retry` field, sent before the gateway closes a stream that goes on:
/// how long the client waits before it reconnects.
pub(crate) fn retry(after: Duration) -> Bytes {
    Bytes::from(format!("retry: {}\n\n", after.as_millis()))
}

const KEEP_ALIVE: &[u8] = b": keep-alive\n\n";

/// An SSE response from a stream of ready events (see [`event`]).
///
/// A keep-alive comment is sent after each `keep_alive` of silence. The
/// stream ends when `events` does or, if given, when `stop` is cancelled.
/// Dropping the response body (the client went away) drops `events`.
pub(crate) fn response<S>(
    events: S,
    keep_alive: Duration,
    stop: Option<CancellationToken>,
) -> Response
where
    S: Stream<Item = Bytes> + Send + 'static,
{
    let mut events = Box::pin(events);
    let mut stop = stop.map(|t| Box::pin(t.cancelled_owned()));
    // One timer for the stream's life, pushed back after each event.
    let mut quiet = Box::pin(tokio::time::sleep(keep_alive));
    let body = futures::stream::poll_fn(move |cx| {
        if let Some(stop) = stop.as_mut() {
            if stop.as_mut().poll(cx).is_ready() {
                return Poll::Ready(None);
            }
        }
        let next = match events.as_mut().poll_next(cx) {
            Poll::Ready(Some(event)) => event,
            Poll::Ready(None) => return Poll::Ready(None),
            Poll::Pending => {
                if quiet.as_mut().poll(cx).is_pending() {
                    return Poll::Pending;
                }
                Bytes::from_static(KEEP_ALIVE)
            }
        };
        quiet
            .as_mut()
            .reset(tokio::time::Instant::now() + keep_alive);
        Poll::Ready(Some(Ok::<_, Infallible>(next)))
    });
    let mut response = Response::new(Body::from_stream(body));
    let h = response.headers_mut();
    h.insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static("text/event-stream"),
    );
    h.insert(header::CACHE_CONTROL, HeaderValue::from_static("no-cache"));
    h.insert("x-accel-buffering", HeaderValue::from_static("no"));
    response
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn event_framing() {
        assert_eq!(
            &event(br#"{"a":1}"#)[..],
            b"event: message\ndata: {\"a\":1}\n\n"
        );
        assert_eq!(&event(b"{\n}")[..], b"event: message\ndata: { }\n\n");
        assert_eq!(
            &event(b"\r\n{\"a\":\r1}\n")[..],
            b"event: message\ndata:   {\"a\": 1} \n\n"
        );
        assert_eq!(
            &named_event("endpoint", b"/m\n")[..],
            b"event: endpoint\ndata: /m \n\n"
        );
        assert_eq!(
            &event_with_id(Some("a-1-2"), b"{}")[..],
            b"id: a-1-2\nevent: message\ndata: {}\n\n"
        );
        assert_eq!(&priming("a-1-1")[..], b"id: a-1-1\ndata: \n\n");
        assert_eq!(&retry(Duration::from_secs(1))[..], b"retry: 1000\n\n");
    }
}

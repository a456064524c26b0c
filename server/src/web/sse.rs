//! Server-sent event responses: one JSON-RPC message per `message` event
//! (with an `id` on resumable streams), `:` comment keep-alives on quiet
//! streams, `X-Accel-Buffering: no`.

use std::convert::Infallible;
use std::time::Duration;

use axum::body::Body;
use axum::response::Response;
use bytes::Bytes;
use futures::{Stream, StreamExt};
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
    // Frames are single-line JSON; a stray newline would end the event
    // early, so turn any into a space (insignificant whitespace in JSON).
    out.extend(
        frame
            .iter()
            .map(|&b| if b == b'\n' || b == b'\r' { b' ' } else { b }),
    );
    out.extend_from_slice(b"\n\n");
    Bytes::from(out)
}

/// One SSE event named `name` (the 2024-11-05 transport's `endpoint`).
pub(crate) fn named_event(name: &str, data: &[u8]) -> Bytes {
    let mut out = Vec::with_capacity(data.len() + name.len() + 16);
    out.extend_from_slice(b"event: ");
    out.extend_from_slice(name.as_bytes());
    out.extend_from_slice(b"\ndata: ");
    out.extend(
        data.iter()
            .map(|&b| if b == b'\n' || b == b'\r' { b' ' } else { b }),
    );
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
    struct State<S> {
        events: std::pin::Pin<Box<S>>,
        stop: Option<CancellationToken>,
        keep_alive: Duration,
    }
    let state = State {
        events: Box::pin(events),
        stop,
        keep_alive,
    };
    let body = futures::stream::unfold(state, |mut st| async move {
        let stop = st.stop.clone();
        let stopped = async move {
            match stop {
                Some(t) => t.cancelled_owned().await,
                None => std::future::pending().await,
            }
        };
        tokio::select! {
            item = st.events.next() => item.map(|b| (Ok::<_, Infallible>(b), st)),
            _ = tokio::time::sleep(st.keep_alive) => Some((Ok(Bytes::from_static(KEEP_ALIVE)), st)),
            _ = stopped => None,
        }
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
            &event_with_id(Some("a-1-2"), b"{}")[..],
            b"id: a-1-2\nevent: message\ndata: {}\n\n"
        );
        assert_eq!(&priming("a-1-1")[..], b"id: a-1-1\ndata: \n\n");
        assert_eq!(&retry(Duration::from_secs(1))[..], b"retry: 1000\n\n");
    }
}

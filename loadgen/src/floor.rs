//! `floor-server`: the HTTP floor. A minimal Streamable HTTP responder that
//! answers `tools/call echo` itself, with no backend, no session table and no
//! checks: what any HTTP gateway costs at the very least on this machine with
//! this client. Not an MCP server to use for anything else.

use std::convert::Infallible;
use std::net::SocketAddr;
use std::sync::atomic::{AtomicU64, Ordering};

use bytes::Bytes;
use http::header::CONTENT_TYPE;
use http::{HeaderValue, Method, Request, Response, StatusCode};
use http_body_util::{BodyExt, Full};
use hyper::body::Incoming;
use hyper::server::conn::http1;
use hyper::service::service_fn;
use hyper_util::rt::TokioIo;
use serde::Deserialize;
use serde_json::value::RawValue;
use tokio::net::TcpListener;

use crate::check::{Envelope, LEGACY_VERSION};

static SESSIONS: AtomicU64 = AtomicU64::new(0);

/// Serves on `listen` until the process is stopped; prints
/// `listening on ADDR` first (port 0 picks a free port).
pub(crate) async fn serve(listen: SocketAddr) -> Result<(), String> {
    let listener = TcpListener::bind(listen)
        .await
        .map_err(|e| format!("cannot listen on {listen}: {e}"))?;
    let bound = listener
        .local_addr()
        .map_err(|e| format!("cannot read the bound address: {e}"))?;
    {
        use std::io::Write;
        let mut stdout = std::io::stdout().lock();
        writeln!(stdout, "listening on {bound}")
            .and_then(|()| stdout.flush())
            .map_err(|e| format!("cannot write to stdout: {e}"))?;
    }
    loop {
        let (stream, _) = listener
            .accept()
            .await
            .map_err(|e| format!("accept: {e}"))?;
        let _ = stream.set_nodelay(true);
        tokio::spawn(async move {
            let _ = http1::Builder::new()
                .serve_connection(TokioIo::new(stream), service_fn(handle))
                .await;
        });
    }
}

async fn handle(request: Request<Incoming>) -> Result<Response<Full<Bytes>>, Infallible> {
    if request.method() == Method::DELETE {
        return Ok(respond(StatusCode::OK, None, Bytes::new()));
    }
    let body = match request.into_body().collect().await {
        Ok(body) => body.to_bytes(),
        Err(_) => return Ok(respond(StatusCode::BAD_REQUEST, None, Bytes::new())),
    };
    Ok(answer(&body))
}

fn respond(status: StatusCode, json: Option<&'static str>, body: Bytes) -> Response<Full<Bytes>> {
    let mut response = Response::new(Full::new(body));
    *response.status_mut() = status;
    if let Some(content_type) = json {
        response
            .headers_mut()
            .insert(CONTENT_TYPE, HeaderValue::from_static(content_type));
    }
    response
}

#[derive(Deserialize)]
struct Params<'a> {
    #[serde(borrow, default)]
    arguments: Option<Arguments<'a>>,
    #[serde(rename = "_meta", borrow, default)]
    meta: Option<&'a RawValue>,
    #[serde(rename = "protocolVersion", borrow, default)]
    protocol_version: Option<&'a RawValue>,
}

#[derive(Deserialize)]
struct Arguments<'a> {
    #[serde(borrow)]
    text: &'a RawValue,
}

#[derive(Deserialize)]
struct WithParams<'a> {
    #[serde(borrow, default)]
    params: Option<Params<'a>>,
}

/// The reply to one POSTed message.
fn answer(body: &[u8]) -> Response<Full<Bytes>> {
    const JSON: Option<&str> = Some("application/json");
    let bad = || respond(StatusCode::BAD_REQUEST, None, Bytes::new());
    let (Ok(envelope), Ok(with)) = (
        Envelope::parse(body),
        serde_json::from_slice::<WithParams<'_>>(body),
    ) else {
        return bad();
    };
    let (Some(id), Some(method)) = (envelope.id, envelope.method.as_deref()) else {
        // A notification (or a response): accepted.
        return respond(StatusCode::ACCEPTED, None, Bytes::new());
    };
    let id = id.get();
    match (method, with.params) {
        ("initialize", params) => {
            let version = params
                .and_then(|p| p.protocol_version)
                .map_or_else(|| format!("\"{LEGACY_VERSION}\""), |v| v.get().to_owned());
            let reply = format!(
                r#"{{"jsonrpc":"2.0","id":{id},"result":{{"protocolVersion":{version},"capabilities":{{"tools":{{}}}},"serverInfo":{{"name":"mcpod-loadgen-floor","version":"{}"}}}}}}"#,
                env!("CARGO_PKG_VERSION")
            );
            let mut response = respond(StatusCode::OK, JSON, reply.into());
            let session = SESSIONS.fetch_add(1, Ordering::Relaxed);
            if let Ok(value) = HeaderValue::from_str(&format!("floor-{session}")) {
                response.headers_mut().insert("mcp-session-id", value);
            }
            response
        }
        ("tools/call", Some(params)) => {
            let Some(arguments) = params.arguments else {
                return bad();
            };
            let result_type = if params.meta.is_some() {
                r#","resultType":"complete""#
            } else {
                ""
            };
            let reply = format!(
                r#"{{"jsonrpc":"2.0","id":{id},"result":{{"content":[{{"type":"text","text":{text}}}]{result_type}}}}}"#,
                text = arguments.text.get()
            );
            respond(StatusCode::OK, JSON, reply.into())
        }
        _ => {
            let reply = format!(
                r#"{{"jsonrpc":"2.0","id":{id},"error":{{"code":-32601,"message":"the floor server answers only initialize and tools/call"}}}}"#
            );
            respond(StatusCode::OK, JSON, reply.into())
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::check::{check_echo_reply, echo_request, echo_text};

    async fn body_of(response: Response<Full<Bytes>>) -> Bytes {
        response
            .into_body()
            .collect()
            .await
            .map(|b| b.to_bytes())
            .unwrap_or_default()
    }

    #[tokio::test]
    async fn echo_calls_are_answered_in_both_eras() {
        let text = echo_text(1, 2, 0);
        for modern in [None, Some("2026-07-28")] {
            let request = echo_request(9, &text, modern);
            let response = answer(request.as_bytes());
            assert_eq!(response.status(), StatusCode::OK);
            let body = body_of(response).await;
            assert_eq!(check_echo_reply(&body, 9, &text), Ok(()));
            assert_eq!(
                String::from_utf8_lossy(&body).contains("resultType"),
                modern.is_some()
            );
        }
    }

    #[tokio::test]
    async fn initialize_opens_a_session_and_notifications_are_accepted() {
        let response = answer(crate::check::initialize_request(0, "2025-06-18").as_bytes());
        assert!(response.headers().contains_key("mcp-session-id"));
        let body = body_of(response).await;
        assert!(String::from_utf8_lossy(&body).contains(r#""protocolVersion":"2025-06-18""#));
        let response = answer(crate::check::INITIALIZED.as_bytes());
        assert_eq!(response.status(), StatusCode::ACCEPTED);
        assert_eq!(answer(b"nonsense").status(), StatusCode::BAD_REQUEST);
    }
}

//! `http` mode: virtual clients over Streamable HTTP, each with its own
//! keep-alive HTTP/1.1 connection (hyper's connection-level client, no pool).

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::{Duration, Instant};

use bytes::Bytes;
use http::header::{ACCEPT, CONTENT_TYPE, HOST};
use http::{HeaderMap, HeaderName, HeaderValue, Method, Request, StatusCode, Uri};
use http_body_util::{BodyExt, Full};
use hyper::client::conn::http1::{self, SendRequest};
use hyper_util::rt::TokioIo;
use tokio::net::TcpStream;

use crate::check::{
    self, BodyKind, CallError, Envelope, INITIALIZED, LEGACY_VERSION, MODERN_VERSION,
};
use crate::cli::{Era, HttpArgs};
use crate::rss::RssSampler;
use crate::run::{ClientStats, Clock, Next, RunInfo, RunResult, Tally, stop_rule};
use crate::stdio::protocol_version;

const SESSION_ID: HeaderName = HeaderName::from_static("mcp-session-id");
const PROTOCOL_VERSION: HeaderName = HeaderName::from_static("mcp-protocol-version");
const MCP_METHOD: HeaderName = HeaderName::from_static("mcp-method");
const MCP_NAME: HeaderName = HeaderName::from_static("mcp-name");
const JSON: HeaderValue = HeaderValue::from_static("application/json");
const ACCEPT_BOTH: HeaderValue = HeaderValue::from_static("application/json, text/event-stream");
const TOOLS_CALL: HeaderValue = HeaderValue::from_static("tools/call");
const ECHO: HeaderValue = HeaderValue::from_static("echo");

/// Pause before reconnecting after a failed connection, so a dead server is not spun on.
const RECONNECT_PAUSE: Duration = Duration::from_millis(20);

/// Where the requests go.
#[derive(Debug)]
pub(crate) struct Endpoint {
    addr: SocketAddr,
    host: HeaderValue,
    path: Uri,
    url: String,
}

impl Endpoint {
    /// Parses and resolves a plain `http://` URL.
    pub(crate) async fn resolve(url: &str) -> Result<Self, String> {
        let uri: Uri = url.parse().map_err(|e| format!("bad URL `{url}`: {e}"))?;
        if uri.scheme_str() != Some("http") {
            return Err(format!("`{url}`: only http:// URLs are supported"));
        }
        let authority = uri
            .authority()
            .ok_or_else(|| format!("`{url}` has no host"))?
            .clone();
        let port = authority.port_u16().unwrap_or(80);
        let addr = tokio::net::lookup_host((authority.host(), port))
            .await
            .map_err(|e| format!("cannot resolve `{}`: {e}", authority.host()))?
            .next()
            .ok_or_else(|| format!("`{}` resolves to no address", authority.host()))?;
        let path = uri
            .path_and_query()
            .map_or("/", |p| p.as_str())
            .parse()
            .map_err(|e| format!("bad path in `{url}`: {e}"))?;
        let host = HeaderValue::from_str(authority.as_str())
            .map_err(|e| format!("bad host in `{url}`: {e}"))?;
        Ok(Self {
            addr,
            host,
            path,
            url: url.to_owned(),
        })
    }
}

/// The era-specific part of a client's requests.
#[derive(Debug, Clone)]
struct Dialect {
    era: Era,
    /// The version requested (legacy) or sent on every request (modern).
    version: String,
    version_header: HeaderValue,
}

/// A keep-alive connection, and for legacy clients their session.
struct Connection {
    sender: SendRequest<Full<Bytes>>,
    session: Option<HeaderValue>,
    version: HeaderValue,
}

/// Runs the HTTP benchmark. `Err` means it could not start.
pub(crate) async fn run(args: HttpArgs, label: String) -> Result<RunResult, String> {
    let load = &args.load;
    let endpoint = Arc::new(Endpoint::resolve(&args.url).await?);
    let version = args.protocol_version.clone().unwrap_or_else(|| {
        match args.era {
            Era::Legacy => LEGACY_VERSION,
            Era::Modern => MODERN_VERSION,
        }
        .to_owned()
    });
    let dialect = Arc::new(Dialect {
        era: args.era,
        version_header: HeaderValue::from_str(&version)
            .map_err(|e| format!("bad protocol version `{version}`: {e}"))?,
        version,
    });

    // One connection (and session) before the clock starts, so an unreachable
    // or broken endpoint is reported as such rather than as a million errors.
    let probe = open(&endpoint, &dialect, load.timeout)
        .await
        .map_err(|e| format!("{}: {e}", endpoint.url))?;

    let sampler = match load.pid {
        Some(pid) => Some(RssSampler::start(pid).map_err(|e| e.to_string())?),
        None => None,
    };
    let clock = Arc::new(Clock::start(load.warmup, stop_rule(load)));
    let mut probe = Some(probe);
    let clients: Vec<_> = (0..load.concurrency)
        .map(|client| {
            tokio::spawn(virtual_client(
                client,
                probe.take(),
                Arc::clone(&endpoint),
                Arc::clone(&dialect),
                Arc::clone(&clock),
                load.timeout,
            ))
        })
        .collect();
    let mut stats = Vec::with_capacity(clients.len());
    for client in clients {
        stats.push(
            client
                .await
                .map_err(|e| format!("a client task failed: {e}"))?,
        );
    }
    let rss = sampler.map(RssSampler::finish);
    let info = RunInfo {
        label,
        mode: "http",
        era: match args.era {
            Era::Legacy => "legacy",
            Era::Modern => "modern",
        },
        target: endpoint.url.clone(),
        concurrency: load.concurrency,
    };
    Ok(RunResult::new(info, &clock, Tally::merge(stats), 0, rss))
}

async fn virtual_client(
    client: u32,
    mut connection: Option<Connection>,
    endpoint: Arc<Endpoint>,
    dialect: Arc<Dialect>,
    clock: Arc<Clock>,
    timeout: Duration,
) -> ClientStats {
    let mut stats = ClientStats::new();
    let mut seq = 0u64;
    loop {
        let phase = clock.next();
        if phase == Next::Stop {
            break;
        }
        let open_connection = match connection.as_mut() {
            Some(open) => open,
            None => match open(&endpoint, &dialect, timeout).await {
                Ok(opened) => connection.insert(opened),
                Err(error) => {
                    stats.record(phase, Instant::now(), &Err(error));
                    tokio::time::sleep(RECONNECT_PAUSE).await;
                    continue;
                }
            },
        };
        seq += 1;
        let text = check::echo_text(client, seq);
        let started = Instant::now();
        let outcome = match tokio::time::timeout(
            timeout,
            echo(open_connection, &endpoint, &dialect, seq, &text),
        )
        .await
        {
            Ok(outcome) => outcome,
            Err(_) => Err(CallError::Timeout(timeout)),
        };
        stats.record(phase, started, &outcome);
        if outcome.as_ref().is_err_and(CallError::breaks_connection) {
            connection = None;
        }
    }
    if let Some(connection) = connection {
        end_session(connection, &endpoint, timeout).await;
    }
    stats
}

/// Opens a connection and, for legacy clients, a session.
async fn open(
    endpoint: &Endpoint,
    dialect: &Dialect,
    timeout: Duration,
) -> Result<Connection, CallError> {
    let opening = async {
        let stream = TcpStream::connect(endpoint.addr)
            .await
            .map_err(|e| CallError::Transport(format!("connect {}: {e}", endpoint.addr)))?;
        stream
            .set_nodelay(true)
            .map_err(|e| CallError::Transport(format!("TCP_NODELAY: {e}")))?;
        let (sender, connection) = http1::handshake(TokioIo::new(stream))
            .await
            .map_err(|e| CallError::Transport(format!("HTTP handshake: {e}")))?;
        tokio::spawn(async move {
            // Its errors surface on the requests that were using it.
            let _ = connection.await;
        });
        let mut opened = Connection {
            sender,
            session: None,
            version: dialect.version_header.clone(),
        };
        if dialect.era == Era::Legacy {
            initialize(&mut opened, endpoint, &dialect.version).await?;
        }
        Ok(opened)
    };
    tokio::time::timeout(timeout, opening)
        .await
        .map_err(|_| CallError::Timeout(timeout))?
}

/// The legacy handshake: `initialize`, keep `Mcp-Session-Id`, `notifications/initialized`.
async fn initialize(
    connection: &mut Connection,
    endpoint: &Endpoint,
    version: &str,
) -> Result<(), CallError> {
    let body = check::initialize_request(0, version);
    let (status, headers, body) =
        post(connection, endpoint, Headers::Handshake, body.into()).await?;
    let json = expect_reply(status, &headers, &body)?;
    let result = Envelope::parse(&json)?.result_for(0)?;
    let negotiated = protocol_version(result.get())?;
    connection.version = HeaderValue::from_str(&negotiated)
        .map_err(|_| CallError::Malformed(format!("protocol version {negotiated:?}")))?;
    connection.session = headers.get(&SESSION_ID).cloned();
    let (status, _, body) =
        post(connection, endpoint, Headers::Session, INITIALIZED.into()).await?;
    if !matches!(
        status,
        StatusCode::ACCEPTED | StatusCode::OK | StatusCode::NO_CONTENT
    ) {
        return Err(CallError::Status {
            status: status.as_u16(),
            body: format!("to notifications/initialized: {}", check::snippet(&body)),
        });
    }
    Ok(())
}

/// One checked `tools/call echo`.
async fn echo(
    connection: &mut Connection,
    endpoint: &Endpoint,
    dialect: &Dialect,
    id: u64,
    text: &str,
) -> Result<(), CallError> {
    let (body, kind) = match dialect.era {
        Era::Legacy => (check::echo_request(id, text, None), Headers::Session),
        Era::Modern => (
            check::echo_request(id, text, Some(&dialect.version)),
            Headers::ModernEcho,
        ),
    };
    let (status, headers, body) = post(connection, endpoint, kind, body.into()).await?;
    let json = expect_reply(status, &headers, &body)?;
    check::check_echo_reply(&json, id, text)
}

/// A 200 response's JSON-RPC response message, from a JSON or an SSE body.
fn expect_reply<'b>(
    status: StatusCode,
    headers: &HeaderMap,
    body: &'b Bytes,
) -> Result<std::borrow::Cow<'b, [u8]>, CallError> {
    if status != StatusCode::OK {
        return Err(CallError::Status {
            status: status.as_u16(),
            body: check::snippet(body),
        });
    }
    let kind = BodyKind::from_content_type(headers.get(CONTENT_TYPE).map(HeaderValue::as_bytes))?;
    check::response_in_body(kind, body)
}

/// Which MCP headers a POST carries besides `Content-Type` and `Accept`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Headers {
    /// None: the legacy `initialize`.
    Handshake,
    /// Legacy after `initialize`: `MCP-Protocol-Version` and `Mcp-Session-Id` (if assigned).
    Session,
    /// 2026-07-28: `MCP-Protocol-Version`, `Mcp-Method: tools/call`, `Mcp-Name: echo`.
    ModernEcho,
}

/// POSTs one message and reads the whole response.
async fn post(
    connection: &mut Connection,
    endpoint: &Endpoint,
    kind: Headers,
    body: Bytes,
) -> Result<(StatusCode, HeaderMap, Bytes), CallError> {
    let mut request = Request::new(Full::new(body));
    *request.method_mut() = Method::POST;
    *request.uri_mut() = endpoint.path.clone();
    let headers = request.headers_mut();
    headers.insert(HOST, endpoint.host.clone());
    headers.insert(CONTENT_TYPE, JSON);
    headers.insert(ACCEPT, ACCEPT_BOTH);
    match kind {
        Headers::Handshake => {}
        Headers::Session => {
            headers.insert(PROTOCOL_VERSION, connection.version.clone());
            if let Some(session) = &connection.session {
                headers.insert(SESSION_ID, session.clone());
            }
        }
        Headers::ModernEcho => {
            headers.insert(PROTOCOL_VERSION, connection.version.clone());
            headers.insert(MCP_METHOD, TOOLS_CALL);
            headers.insert(MCP_NAME, ECHO);
        }
    }
    send(connection, request).await
}

async fn send(
    connection: &mut Connection,
    request: Request<Full<Bytes>>,
) -> Result<(StatusCode, HeaderMap, Bytes), CallError> {
    connection
        .sender
        .ready()
        .await
        .map_err(|e| CallError::Transport(format!("connection: {e}")))?;
    let response = connection
        .sender
        .send_request(request)
        .await
        .map_err(|e| CallError::Transport(format!("request: {e}")))?;
    let (parts, body) = response.into_parts();
    let body = body
        .collect()
        .await
        .map_err(|e| CallError::Transport(format!("response body: {e}")))?
        .to_bytes();
    Ok((parts.status, parts.headers, body))
}

/// Ends a legacy session with `DELETE` (best effort: a server may answer 405).
async fn end_session(mut connection: Connection, endpoint: &Endpoint, timeout: Duration) {
    let Some(session) = connection.session.clone() else {
        return;
    };
    let mut request = Request::new(Full::new(Bytes::new()));
    *request.method_mut() = Method::DELETE;
    *request.uri_mut() = endpoint.path.clone();
    let headers = request.headers_mut();
    headers.insert(HOST, endpoint.host.clone());
    headers.insert(SESSION_ID, session);
    headers.insert(PROTOCOL_VERSION, connection.version.clone());
    let _ = tokio::time::timeout(timeout, send(&mut connection, request)).await;
}

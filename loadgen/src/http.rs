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
use crate::cli::{Era, HttpArgs, LoadArgs};
use crate::rss::{ProcessProbe, SelfCpu};
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

/// A legacy session: its id (if the server assigned one) and negotiated version.
#[derive(Debug, Clone)]
struct Session {
    id: Option<HeaderValue>,
    version: HeaderValue,
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

/// One virtual client: a keep-alive connection and, for legacy clients, a
/// session; each is opened again when lost.
struct Client {
    endpoint: Arc<Endpoint>,
    dialect: Arc<Dialect>,
    timeout: Duration,
    /// Echo texts are padded to this many bytes.
    text_bytes: usize,
    sender: Option<SendRequest<Full<Bytes>>>,
    session: Option<Session>,
    stats: ClientStats,
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

    // The first client connects (and initializes) before the clock starts, so
    // an unreachable or broken endpoint is reported as such rather than as a
    // flood of errors.
    let mut first = Client::new(Arc::clone(&endpoint), Arc::clone(&dialect), load);
    first
        .prepare()
        .await
        .map_err(|e| format!("{}: {e}", endpoint.url))?;

    let clock = Arc::new(Clock::start(load.warmup, stop_rule(load)));
    let probe = match load.pid {
        Some(pid) => {
            Some(ProcessProbe::start(pid, clock.measure_from()).map_err(|e| e.to_string())?)
        }
        None => None,
    };
    let own_cpu = SelfCpu::start_at(clock.measure_from());
    let mut first = Some(first);
    let clients: Vec<_> = (0..load.concurrency)
        .map(|n| {
            let client = first
                .take()
                .unwrap_or_else(|| Client::new(Arc::clone(&endpoint), Arc::clone(&dialect), load));
            tokio::spawn(client.run(n, Arc::clone(&clock)))
        })
        .collect();
    let mut finished = Vec::with_capacity(clients.len());
    for client in clients {
        finished.push(
            client
                .await
                .map_err(|e| format!("a client task failed: {e}"))?,
        );
    }
    // Before the sessions end: a peer may stop its per-session backends then.
    let probe = probe.map(ProcessProbe::finish);
    let own_cpu = own_cpu.finish();
    let ending: Vec<_> = finished
        .into_iter()
        .map(|client| tokio::spawn(client.end_session()))
        .collect();
    let mut stats = Vec::with_capacity(ending.len());
    for client in ending {
        stats.push(
            client
                .await
                .map_err(|e| format!("a client task failed: {e}"))?,
        );
    }
    let info = RunInfo {
        label,
        mode: "http",
        era: match args.era {
            Era::Legacy => "legacy",
            Era::Modern => "modern",
        },
        target: endpoint.url.clone(),
        concurrency: load.concurrency,
        text_bytes: load.text_bytes,
    };
    Ok(RunResult::new(
        info,
        &clock,
        Tally::merge(stats),
        probe,
        own_cpu,
    ))
}

impl Client {
    fn new(endpoint: Arc<Endpoint>, dialect: Arc<Dialect>, load: &LoadArgs) -> Self {
        Self {
            endpoint,
            dialect,
            timeout: load.timeout,
            text_bytes: load.text_bytes as usize,
            sender: None,
            session: None,
            stats: ClientStats::new(),
        }
    }

    /// The closed loop: one checked request after another until the clock stops.
    async fn run(mut self, client: u32, clock: Arc<Clock>) -> Self {
        let mut seq = 0u64;
        loop {
            let phase = clock.next();
            if phase == Next::Stop {
                break;
            }
            if let Err(error) = self.prepare().await {
                self.stats.record(phase, Instant::now(), &Err(error));
                self.sender = None;
                tokio::time::sleep(RECONNECT_PAUSE).await;
                continue;
            }
            seq += 1;
            let text = check::echo_text(client, seq, self.text_bytes);
            let started = Instant::now();
            let outcome = match tokio::time::timeout(self.timeout, self.echo(seq, &text)).await {
                Ok(outcome) => outcome,
                Err(_) => Err(CallError::Timeout(self.timeout)),
            };
            self.stats.record(phase, started, &outcome);
            match &outcome {
                Err(error) if error.breaks_connection() => self.sender = None,
                // The session expired or is unknown: start a new one.
                Err(CallError::Status { status: 404, .. }) => self.session = None,
                _ => {}
            }
        }
        self
    }

    /// Opens the connection, and for legacy clients the session, unless open.
    async fn prepare(&mut self) -> Result<(), CallError> {
        let timeout = self.timeout;
        let preparing = async {
            self.connect().await?;
            if self.dialect.era == Era::Legacy && self.session.is_none() {
                self.initialize().await?;
            }
            Ok(())
        };
        tokio::time::timeout(timeout, preparing)
            .await
            .map_err(|_| CallError::Timeout(timeout))?
    }

    /// Opens a connection unless one is open (a server may close an idle one).
    async fn connect(&mut self) -> Result<(), CallError> {
        if self
            .sender
            .as_ref()
            .is_some_and(|sender| !sender.is_closed())
        {
            return Ok(());
        }
        let addr = self.endpoint.addr;
        let stream = TcpStream::connect(addr)
            .await
            .map_err(|e| CallError::Transport(format!("connect {addr}: {e}")))?;
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
        self.sender = Some(sender);
        self.stats.connected();
        Ok(())
    }

    /// The legacy handshake: `initialize`, keep `Mcp-Session-Id`, `notifications/initialized`.
    async fn initialize(&mut self) -> Result<(), CallError> {
        let body = check::initialize_request(0, &self.dialect.version);
        let (status, headers, body) = self.post(Headers::Handshake, body.into()).await?;
        let json = expect_reply(status, &headers, &body)?;
        let result = Envelope::parse(&json)?.result_for(0)?;
        let negotiated = protocol_version(result.get())?;
        self.session = Some(Session {
            id: headers.get(&SESSION_ID).cloned(),
            version: HeaderValue::from_str(&negotiated)
                .map_err(|_| CallError::Malformed(format!("protocol version {negotiated:?}")))?,
        });
        let (status, _, body) = self.post(Headers::Session, INITIALIZED.into()).await?;
        if !matches!(
            status,
            StatusCode::ACCEPTED | StatusCode::OK | StatusCode::NO_CONTENT
        ) {
            self.session = None;
            return Err(CallError::Status {
                status: status.as_u16(),
                body: format!("to notifications/initialized: {}", check::snippet(&body)),
            });
        }
        self.stats.initialized();
        Ok(())
    }

    /// One checked `tools/call echo`.
    async fn echo(&mut self, id: u64, text: &str) -> Result<(), CallError> {
        let (body, kind) = match self.dialect.era {
            Era::Legacy => (check::echo_request(id, text, None), Headers::Session),
            Era::Modern => (
                check::echo_request(id, text, Some(&self.dialect.version)),
                Headers::ModernEcho,
            ),
        };
        let (status, headers, body) = self.post(kind, body.into()).await?;
        let json = expect_reply(status, &headers, &body)?;
        check::check_echo_reply(&json, id, text)
    }

    /// Ends a legacy session with `DELETE` (best effort: a server may answer
    /// 405) and returns the client's tally.
    async fn end_session(mut self) -> ClientStats {
        let Some(Session {
            id: Some(id),
            version,
        }) = self.session.take()
        else {
            return self.stats;
        };
        if self.connect().await.is_err() {
            return self.stats;
        }
        let mut request = Request::new(Full::new(Bytes::new()));
        *request.method_mut() = Method::DELETE;
        *request.uri_mut() = self.endpoint.path.clone();
        let headers = request.headers_mut();
        headers.insert(HOST, self.endpoint.host.clone());
        headers.insert(SESSION_ID, id);
        headers.insert(PROTOCOL_VERSION, version);
        let _ = tokio::time::timeout(self.timeout, self.send(request)).await;
        self.stats
    }

    /// POSTs one message and reads the whole response.
    async fn post(
        &mut self,
        kind: Headers,
        body: Bytes,
    ) -> Result<(StatusCode, HeaderMap, Bytes), CallError> {
        let mut request = Request::new(Full::new(body));
        *request.method_mut() = Method::POST;
        *request.uri_mut() = self.endpoint.path.clone();
        let headers = request.headers_mut();
        headers.insert(HOST, self.endpoint.host.clone());
        headers.insert(CONTENT_TYPE, JSON);
        headers.insert(ACCEPT, ACCEPT_BOTH);
        match kind {
            Headers::Handshake => {}
            Headers::Session => {
                if let Some(session) = &self.session {
                    headers.insert(PROTOCOL_VERSION, session.version.clone());
                    if let Some(id) = &session.id {
                        headers.insert(SESSION_ID, id.clone());
                    }
                }
            }
            Headers::ModernEcho => {
                headers.insert(PROTOCOL_VERSION, self.dialect.version_header.clone());
                headers.insert(MCP_METHOD, TOOLS_CALL);
                headers.insert(MCP_NAME, ECHO);
            }
        }
        self.send(request).await
    }

    /// Sends a request on the connection and reads the whole response.
    async fn send(
        &mut self,
        request: Request<Full<Bytes>>,
    ) -> Result<(StatusCode, HeaderMap, Bytes), CallError> {
        // A connection the server closed after its last response (idle
        // timeout, `Connection: close`) is not an error: the request has not
        // been sent yet, so open another one and send it there.
        let usable = match self.sender.as_mut() {
            Some(sender) => sender.ready().await.is_ok(),
            None => false,
        };
        if !usable {
            self.sender = None;
            self.connect().await?;
        }
        let Some(sender) = self.sender.as_mut() else {
            return Err(CallError::Transport("not connected".to_owned()));
        };
        sender
            .ready()
            .await
            .map_err(|e| CallError::Transport(format!("connection: {e}")))?;
        let response = sender
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

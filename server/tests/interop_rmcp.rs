//! The gateway against the official Rust SDK client, `rmcp` 3.11, in both
//! eras: a legacy client (`initialize` at 2025-11-25) and a modern one
//! (`server/discover` at 2026-07-28, no fallback), each running the checks
//! of `interop/clients/` (py_client.py, ts_client.mjs) against the
//! conformance fixture (`interop/fixtures/conformance_server.py`).
//!
//! The reference is the fixture on its own Streamable HTTP (no gateway);
//! every check passes there. Through the gateway, with the fixture as a
//! stdio backend forced legacy or forced modern, every check that passes
//! on the reference must pass too.
//!
//! Below the SDK sits a tap (a small HTTP proxy in front of the URL), so
//! the checks can also see the wire: the tokens and `_meta` sent, the
//! `input_required` rounds, the stream a notification came on, the
//! `notifications/cancelled` the SDK sends, and every message received
//! against its revision's schema.

#![cfg(feature = "interop-tests")]
#![allow(clippy::unwrap_used, missing_docs)]
// logging/setLevel and resources/(un)subscribe are deprecated in rmcp
// (removed at 2026-07-28) but are exactly what the legacy checks exercise.
#![allow(deprecated)]

mod common;
mod interop_common;

use std::collections::BTreeMap;
use std::future::Future;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use common::Gateway;
use futures::StreamExt;
use interop_common::{fixture_program, fixture_target, http_server, require_setup};
use rmcp::model::{
    CallToolRequest, CallToolRequestParams, CallToolResult, ClientCapabilities, ClientConfig,
    ClientRequest, CreateMessageRequestParams, CreateMessageResult, ElicitRequestParams,
    ElicitResult, ErrorData, Implementation, ListRootsResult, LoggingLevel,
    LoggingMessageNotificationParam, ProgressNotificationParam, ProtocolVersion,
    ReadResourceRequestParams, RequestMetaObject, ResourceUpdatedNotificationParam,
    ServerNotification, ServerResult, SetLevelRequestParams, SubscribeRequestParams,
    SubscriptionFilter, UnsubscribeRequestParams,
};
use rmcp::service::{NotificationContext, PeerRequestOptions, RequestContext, RunningService};
use rmcp::transport::StreamableHttpClientTransport;
use rmcp::{ClientHandler, ClientLifecycleMode, ClientServiceExt, RoleClient, ServiceExt};
use serde_json::{Value, json};
use tokio::sync::{Notify, OnceCell};

const WATCHED_URI: &str = "test://watched-resource";
const SIMPLE_TEXT: &str = "This is a simple text response for testing.";
const EXPECTED_TOOLS: [&str; 11] = [
    "test_simple_text",
    "test_tool_with_progress",
    "test_tool_with_logging",
    "test_sampling",
    "test_elicitation",
    "test_list_roots",
    "test_slow",
    "test_slow_status",
    "test_trigger_tool_change",
    "test_trigger_resource_update",
    "test_input_required_result_multi_round",
];
const SAMPLING_ANSWER: &str = "rmcp-client sampled answer";
const ELICIT_ANSWER: &str = "rmcp-client says hi";
const MODERN_ONLY_RESULT_FIELDS: [&str; 3] = ["resultType", "ttlMs", "cacheScope"];
/// Results that carry `ttlMs` and `cacheScope` at 2026-07-28.
const CACHEABLE_METHODS: [&str; 6] = [
    "tools/list",
    "prompts/list",
    "resources/list",
    "resources/templates/list",
    "resources/read",
    "server/discover",
];

fn roots() -> Value {
    json!([
        {"uri": "file:///tmp/mcpod-rmcp-client-root", "name": "rmcp-root"},
        {"uri": "file:///tmp/mcpod-rmcp-client-other", "name": "rmcp-other"},
    ])
}

/// Each check's bound; the waits inside are shorter.
const CHECK_TIMEOUT: Duration = Duration::from_secs(20);
/// How long an expected notification may take.
const EVENT_WAIT: Duration = Duration::from_secs(5);
/// How long to watch for a notification that must not come.
const SILENCE: Duration = Duration::from_secs(1);

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Era {
    Legacy,
    Modern,
}

impl Era {
    fn revision(self) -> &'static str {
        match self {
            Era::Legacy => "2025-11-25",
            Era::Modern => "2026-07-28",
        }
    }
}

impl std::fmt::Display for Era {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(match self {
            Era::Legacy => "legacy",
            Era::Modern => "modern",
        })
    }
}

/// A check's outcome: what was seen (pass) or what went wrong (fail).
type Outcome = Result<String, String>;
type Checks = BTreeMap<&'static str, Outcome>;

macro_rules! ensure {
    ($cond:expr, $($detail:tt)*) => {
        if !$cond {
            return Err(format!($($detail)*));
        }
    };
}

fn failed<E: std::fmt::Display>(what: &'static str) -> impl FnOnce(E) -> String {
    move |e| format!("{what}: {e}")
}

// ------------------------------------------------------------ what was seen

/// What the client's handler was told.
#[derive(Debug, Clone)]
enum Event {
    Progress(Value),
    Log(Value),
    ResourceUpdated(String),
    ToolListChanged,
    Sampling(String),
    Elicitation { message: String, props: Vec<String> },
    Roots,
}

/// One JSON-RPC message on the wire, as the tap saw it.
#[derive(Debug, Clone)]
struct Frame {
    /// Sent by the client (else received).
    out: bool,
    /// On the GET stream (else a POST's request or response).
    get: bool,
    msg: Value,
}

impl Frame {
    fn method(&self) -> Option<&str> {
        self.msg["method"].as_str()
    }
    fn is_request(&self) -> bool {
        self.method().is_some() && self.msg.get("id").is_some()
    }
    fn is_notification(&self) -> bool {
        self.method().is_some() && self.msg.get("id").is_none()
    }
}

/// Everything seen in one client run, by the handler and by the tap; a
/// waiter is woken by each addition.
#[derive(Default)]
struct Seen {
    events: Mutex<Vec<Event>>,
    frames: Mutex<Vec<Frame>>,
    session_assigned: AtomicBool,
    notify: Notify,
}

impl Seen {
    fn event(&self, e: Event) {
        self.events.lock().unwrap().push(e);
        self.notify.notify_waiters();
    }

    fn frame(&self, out: bool, get: bool, msg: Value) {
        let mut frames = self.frames.lock().unwrap();
        match msg {
            Value::Array(batch) => {
                frames.extend(batch.into_iter().map(|msg| Frame { out, get, msg }));
            }
            msg => frames.push(Frame { out, get, msg }),
        }
        drop(frames);
        self.notify.notify_waiters();
    }

    /// Where the records stand now: (events, frames).
    fn mark(&self) -> (usize, usize) {
        (
            self.events.lock().unwrap().len(),
            self.frames.lock().unwrap().len(),
        )
    }

    fn events_since(&self, mark: (usize, usize)) -> Vec<Event> {
        self.events.lock().unwrap()[mark.0..].to_vec()
    }

    fn frames_since(&self, mark: (usize, usize)) -> Vec<Frame> {
        self.frames.lock().unwrap()[mark.1..].to_vec()
    }

    /// Waits (at most `timeout`) until `f` finds what it looks for.
    async fn until<T>(
        &self,
        timeout: Duration,
        mut f: impl FnMut(&Self) -> Option<T>,
    ) -> Option<T> {
        let deadline = tokio::time::Instant::now() + timeout;
        loop {
            let notified = self.notify.notified();
            tokio::pin!(notified);
            notified.as_mut().enable();
            if let Some(v) = f(self) {
                return Some(v);
            }
            if tokio::time::timeout_at(deadline, notified).await.is_err() {
                return f(self);
            }
        }
    }

    /// The events since `mark` that `pick` selects, once there are `n`
    /// (or all there are when `timeout` is up).
    async fn events_until<T>(
        &self,
        mark: (usize, usize),
        n: usize,
        timeout: Duration,
        pick: impl Fn(&Event) -> Option<T>,
    ) -> Vec<T> {
        let picked =
            |s: &Self| -> Vec<T> { s.events_since(mark).iter().filter_map(&pick).collect() };
        self.until(timeout, |s| Some(picked(s)).filter(|v| v.len() >= n))
            .await
            .unwrap_or_else(|| picked(self))
    }

    /// The method of the client request `id` answers.
    fn method_of_response(&self, id: &Value) -> Option<String> {
        self.frames
            .lock()
            .unwrap()
            .iter()
            .find(|f| f.out && f.is_request() && &f.msg["id"] == id)
            .and_then(|f| f.method().map(str::to_owned))
    }
}

// -------------------------------------------------------------------- tap

/// A small HTTP proxy in front of an MCP endpoint that records every
/// JSON-RPC message both ways (JSON bodies and SSE `data:` frames).
struct Tap {
    url: String,
    task: tokio::task::JoinHandle<()>,
}

impl Drop for Tap {
    fn drop(&mut self) {
        self.task.abort();
    }
}

async fn tap(upstream: &str, seen: Arc<Seen>) -> Tap {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let url = format!("http://{}/mcp", listener.local_addr().unwrap());
    let http = reqwest::Client::new();
    let upstream = upstream.to_owned();
    let app = axum::Router::new().fallback(move |req: axum::extract::Request| {
        let (seen, http, upstream) = (seen.clone(), http.clone(), upstream.clone());
        async move { forward(seen, &http, &upstream, req).await }
    });
    let task = tokio::spawn(async move {
        let _ = axum::serve(listener, app).await;
    });
    Tap { url, task }
}

async fn forward(
    seen: Arc<Seen>,
    http: &reqwest::Client,
    upstream: &str,
    req: axum::extract::Request,
) -> axum::response::Response {
    use axum::response::IntoResponse;
    let (parts, body) = req.into_parts();
    let body = axum::body::to_bytes(body, usize::MAX)
        .await
        .unwrap_or_default();
    let get = parts.method == http::Method::GET;
    if let Ok(msg) = serde_json::from_slice::<Value>(&body) {
        seen.frame(true, get, msg);
    }
    let mut headers = parts.headers;
    for h in [http::header::HOST, http::header::CONTENT_LENGTH] {
        headers.remove(h);
    }
    let resp = match http
        .request(parts.method, upstream)
        .headers(headers)
        .body(body)
        .send()
        .await
    {
        Ok(r) => r,
        Err(e) => return (http::StatusCode::BAD_GATEWAY, e.to_string()).into_response(),
    };
    let status = resp.status();
    let mut headers = resp.headers().clone();
    for h in [
        http::header::CONTENT_LENGTH,
        http::header::TRANSFER_ENCODING,
        http::header::CONNECTION,
    ] {
        headers.remove(h);
    }
    if headers.contains_key("mcp-session-id") {
        seen.session_assigned.store(true, Ordering::SeqCst);
    }
    let content_type = headers
        .get(http::header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .unwrap_or("")
        .to_ascii_lowercase();
    let body = if content_type.starts_with("text/event-stream") {
        let mut buf: Vec<u8> = Vec::new();
        axum::body::Body::from_stream(resp.bytes_stream().map(move |chunk| {
            if let Ok(bytes) = &chunk {
                buf.extend(bytes.iter().filter(|b| **b != b'\r'));
                while let Some(end) = buf.windows(2).position(|w| w == b"\n\n") {
                    let event: Vec<u8> = buf.drain(..end + 2).collect();
                    let data: Vec<&str> = std::str::from_utf8(&event)
                        .unwrap_or("")
                        .lines()
                        .filter_map(|l| l.strip_prefix("data:"))
                        .map(|d| d.strip_prefix(' ').unwrap_or(d))
                        .collect();
                    if let Ok(msg) = serde_json::from_str::<Value>(&data.join("\n")) {
                        seen.frame(false, get, msg);
                    }
                }
            }
            chunk
        }))
    } else {
        let bytes = resp.bytes().await.unwrap_or_default();
        if let Ok(msg) = serde_json::from_slice::<Value>(&bytes) {
            seen.frame(false, get, msg);
        }
        axum::body::Body::from(bytes)
    };
    let mut response = axum::response::Response::new(body);
    *response.status_mut() = status;
    *response.headers_mut() = headers;
    response
}

// ---------------------------------------------------------------- handler

/// The client's side: answers sampling, elicitation and roots, and records
/// every callback.
#[derive(Clone)]
struct Handler {
    seen: Arc<Seen>,
    config: ClientConfig,
}

fn texts(content: &Value) -> Vec<String> {
    let items = match content {
        Value::Array(items) => items.clone(),
        one => vec![one.clone()],
    };
    items
        .iter()
        .filter_map(|c| c["text"].as_str().map(str::to_owned))
        .collect()
}

impl ClientHandler for Handler {
    async fn create_message(
        &self,
        params: CreateMessageRequestParams,
        _context: RequestContext<RoleClient>,
    ) -> Result<CreateMessageResult, ErrorData> {
        let params = serde_json::to_value(&params).unwrap();
        let prompt: Vec<String> = params["messages"]
            .as_array()
            .into_iter()
            .flatten()
            .flat_map(|m| texts(&m["content"]))
            .collect();
        self.seen.event(Event::Sampling(prompt.join(" ")));
        Ok(serde_json::from_value(json!({
            "role": "assistant",
            "content": {"type": "text", "text": SAMPLING_ANSWER},
            "model": "rmcp-client-model",
            "stopReason": "endTurn",
        }))
        .unwrap())
    }

    async fn create_elicitation(
        &self,
        request: ElicitRequestParams,
        _context: RequestContext<RoleClient>,
    ) -> Result<ElicitResult, ErrorData> {
        let request = serde_json::to_value(&request).unwrap();
        let mut props: Vec<String> = request["requestedSchema"]["properties"]
            .as_object()
            .map(|p| p.keys().cloned().collect())
            .unwrap_or_default();
        props.sort();
        let mut content = serde_json::Map::new();
        for (prop, answer) in [
            ("response", ELICIT_ANSWER),
            ("name", "Ada"),
            ("color", "teal"),
        ] {
            if props.iter().any(|p| p == prop) {
                content.insert(prop.into(), json!(answer));
            }
        }
        self.seen.event(Event::Elicitation {
            message: request["message"].as_str().unwrap_or("").to_owned(),
            props,
        });
        Ok(serde_json::from_value(json!({"action": "accept", "content": content})).unwrap())
    }

    async fn list_roots(
        &self,
        _context: RequestContext<RoleClient>,
    ) -> Result<ListRootsResult, ErrorData> {
        self.seen.event(Event::Roots);
        Ok(serde_json::from_value(json!({"roots": roots()})).unwrap())
    }

    async fn on_progress(
        &self,
        params: ProgressNotificationParam,
        _context: NotificationContext<RoleClient>,
    ) {
        self.seen
            .event(Event::Progress(serde_json::to_value(&params).unwrap()));
    }

    async fn on_logging_message(
        &self,
        params: LoggingMessageNotificationParam,
        _context: NotificationContext<RoleClient>,
    ) {
        self.seen
            .event(Event::Log(serde_json::to_value(&params).unwrap()));
    }

    async fn on_resource_updated(
        &self,
        params: ResourceUpdatedNotificationParam,
        _context: NotificationContext<RoleClient>,
    ) {
        self.seen.event(Event::ResourceUpdated(params.uri));
    }

    async fn on_tool_list_changed(&self, _context: NotificationContext<RoleClient>) {
        self.seen.event(Event::ToolListChanged);
    }

    fn get_info(&self) -> ClientConfig {
        self.config.clone()
    }
}

fn client_config(era: Era) -> ClientConfig {
    let capabilities: ClientCapabilities = serde_json::from_value(json!({
        "sampling": {},
        "elicitation": {"form": {}},
        "roots": {"listChanged": true},
    }))
    .unwrap();
    let version = match era {
        Era::Legacy => ProtocolVersion::LATEST_WITH_INITIALIZE,
        Era::Modern => ProtocolVersion::V_2026_07_28,
    };
    ClientConfig::new(
        capabilities,
        Implementation::new("mcpod-interop-rmcp-client", "1.0.0"),
    )
    .with_protocol_version(version)
}

type Client = RunningService<RoleClient, Handler>;

async fn connect(url: &str, era: Era, seen: Arc<Seen>) -> Result<Client, String> {
    let handler = Handler {
        seen,
        config: client_config(era),
    };
    let transport = StreamableHttpClientTransport::from_uri(url);
    match era {
        Era::Legacy => handler.serve(transport).await,
        // Discover mode never falls back to `initialize`: a legacy answer
        // is an error.
        Era::Modern => {
            handler
                .serve_with_lifecycle(
                    transport,
                    ClientLifecycleMode::Discover {
                        preferred_versions: vec![ProtocolVersion::V_2026_07_28],
                    },
                )
                .await
        }
    }
    .map_err(failed("connect"))
}

fn call(tool: &str, args: Value) -> CallToolRequestParams {
    CallToolRequestParams::new(tool.to_owned())
        .with_arguments(args.as_object().cloned().unwrap_or_default())
}

fn text_of(result: &CallToolResult) -> String {
    let v = serde_json::to_value(result).unwrap();
    texts(&v["content"]).concat()
}

// ------------------------------------------------------------- the checks

/// One client run against one URL.
struct Run {
    era: Era,
    client: Client,
    seen: Arc<Seen>,
    nonce: String,
}

/// Runs every check of `era` with an rmcp client against `url`.
async fn rmcp_checks(url: &str, era: Era) -> Checks {
    let seen = Arc::new(Seen::default());
    let tap = tap(url, seen.clone()).await;
    let mut checks = Checks::new();
    let connected = tokio::time::timeout(CHECK_TIMEOUT, connect(&tap.url, era, seen.clone()))
        .await
        .unwrap_or_else(|_| Err("connect timed out".into()));
    let client = match connected {
        Ok(c) => c,
        Err(e) => {
            checks.insert("connect", Err(e));
            return checks;
        }
    };
    let nonce = format!(
        "rmcp-{era}-{}",
        std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .unwrap()
            .as_nanos()
    );
    let run = Run {
        era,
        client,
        seen,
        nonce,
    };
    async fn bounded(f: impl Future<Output = Outcome>) -> Outcome {
        tokio::time::timeout(CHECK_TIMEOUT, f)
            .await
            .unwrap_or_else(|_| Err(format!("timed out after {CHECK_TIMEOUT:?}")))
    }
    let legacy = era == Era::Legacy;
    checks.insert("connect", run.connect());
    checks.insert("tools_list", bounded(run.tools_list()).await);
    checks.insert("call_simple_text", bounded(run.call_simple_text()).await);
    if legacy {
        // ping is removed at 2026-07-28.
        checks.insert("ping", bounded(run.ping()).await);
    }
    checks.insert("resources_read", bounded(run.resources_read()).await);
    checks.insert("progress", bounded(run.progress()).await);
    let debug = bounded(run.logging_debug()).await;
    let debug_passed = debug.is_ok();
    checks.insert("logging_debug", debug);
    checks.insert(
        "logging_error_filters",
        bounded(run.logging_error_filters(debug_passed)).await,
    );
    if legacy {
        let subscribe = bounded(run.legacy_subscribe()).await;
        let subscribed = subscribe.is_ok();
        checks.insert("resource_subscribe", subscribe);
        checks.insert(
            "resource_unsubscribe",
            bounded(run.legacy_unsubscribe(subscribed)).await,
        );
        checks.insert("list_changed", bounded(run.legacy_list_changed()).await);
    } else {
        checks.insert("resource_subscribe", bounded(run.listen_resource()).await);
        checks.insert(
            "resource_unsubscribe",
            bounded(run.listen_without_resource()).await,
        );
        checks.insert("list_changed", bounded(run.listen_tools()).await);
    }
    checks.insert("sampling", bounded(run.sampling()).await);
    checks.insert("elicitation", bounded(run.elicitation()).await);
    checks.insert(
        "elicitation_multi_round",
        bounded(run.elicitation_multi_round()).await,
    );
    checks.insert("roots", bounded(run.roots()).await);
    let abort = bounded(run.cancel_abort()).await;
    let aborted = abort.is_ok();
    checks.insert("cancel_abort", abort);
    checks.insert(
        "cancel_reached_server",
        bounded(run.cancel_reached_server(aborted)).await,
    );
    checks.insert(
        "cancel_request_handle",
        bounded(run.cancel_request_handle()).await,
    );
    checks.insert(
        "cancel_followup_call",
        bounded(run.cancel_followup_call()).await,
    );
    let Run { client, seen, .. } = run;
    let _ = tokio::time::timeout(Duration::from_secs(5), client.cancel()).await;
    checks.insert("schema_valid", schema_valid(&seen, era));
    checks.insert("era_result_fields", era_result_fields(&seen, era));
    drop(tap);
    checks
}

/// A tools/call round's shape on the wire.
#[derive(Debug)]
struct Flow {
    tools_call_posts: usize,
    result_types: Vec<String>,
    retries_with_input_responses: usize,
    server_requests: Vec<String>,
}

impl Run {
    fn connect(&self) -> Outcome {
        let info = self
            .client
            .peer_info()
            .ok_or("no peer info after connecting")?;
        let sent: Vec<String> = self
            .seen
            .frames_since((0, 0))
            .iter()
            .filter(|f| f.out && f.is_request())
            .filter_map(|f| f.method().map(str::to_owned))
            .collect();
        let detail = format!(
            "version {}, server {:?}, requests sent {sent:?}",
            info.protocol_version,
            info.server_info.as_ref().map(|s| &s.name)
        );
        match self.era {
            Era::Legacy => {
                ensure!(
                    info.protocol_version == ProtocolVersion::V_2025_11_25,
                    "expected 2025-11-25: {detail}"
                );
                ensure!(
                    self.seen.session_assigned.load(Ordering::SeqCst),
                    "no Mcp-Session-Id assigned: {detail}"
                );
                ensure!(
                    sent.first().map(String::as_str) == Some("initialize"),
                    "expected initialize: {detail}"
                );
            }
            Era::Modern => {
                ensure!(
                    info.protocol_version == ProtocolVersion::V_2026_07_28,
                    "expected 2026-07-28 via server/discover: {detail}"
                );
                ensure!(
                    sent.iter().any(|m| m == "server/discover")
                        && !sent.iter().any(|m| m == "initialize"),
                    "expected server/discover and no initialize: {detail}"
                );
            }
        }
        Ok(detail)
    }

    async fn call_tool(&self, tool: &str, args: Value) -> Result<CallToolResult, String> {
        self.client
            .call_tool(call(tool, args))
            .await
            .map_err(|e| format!("tools/call {tool}: {e}"))
    }

    async fn call_text(&self, tool: &str, args: Value) -> Result<String, String> {
        self.call_tool(tool, args).await.map(|r| text_of(&r))
    }

    async fn tools_list(&self) -> Outcome {
        let tools = self
            .client
            .list_all_tools()
            .await
            .map_err(failed("tools/list"))?;
        let names: Vec<&str> = tools.iter().map(|t| t.name.as_ref()).collect();
        let missing: Vec<&&str> = EXPECTED_TOOLS
            .iter()
            .filter(|t| !names.contains(t))
            .collect();
        ensure!(missing.is_empty(), "missing {missing:?} in {names:?}");
        Ok(format!("{} tools", names.len()))
    }

    async fn call_simple_text(&self) -> Outcome {
        let r = self.call_tool("test_simple_text", json!({})).await?;
        ensure!(
            r.is_error != Some(true) && text_of(&r) == SIMPLE_TEXT,
            "got {r:?}"
        );
        Ok(text_of(&r))
    }

    async fn ping(&self) -> Outcome {
        match self
            .client
            .send_request(ClientRequest::PingRequest(Default::default()))
            .await
            .map_err(failed("ping"))?
        {
            ServerResult::EmptyResult(_) => Ok("pong".into()),
            other => Err(format!("ping answered {other:?}")),
        }
    }

    async fn resources_read(&self) -> Outcome {
        let r = self
            .client
            .read_resource(ReadResourceRequestParams::new(WATCHED_URI))
            .await
            .map_err(failed("resources/read"))?;
        let v = serde_json::to_value(&r).unwrap();
        let text = v["contents"][0]["text"].as_str().unwrap_or("");
        ensure!(text.starts_with("Watched resource content"), "got {v}");
        Ok(text.to_owned())
    }

    /// `test_tool_with_progress`: the handler sees 0, 50, 100 of 100, each
    /// with the token rmcp put on the request, and so does the wire.
    async fn progress(&self) -> Outcome {
        let mark = self.seen.mark();
        let handle = self
            .client
            .send_request_with_option(
                ClientRequest::CallToolRequest(CallToolRequest::new(call(
                    "test_tool_with_progress",
                    json!({}),
                ))),
                PeerRequestOptions::no_options(),
            )
            .await
            .map_err(failed("tools/call"))?;
        let token = serde_json::to_value(&handle.progress_token).unwrap();
        let result = match handle
            .await_response()
            .await
            .map_err(failed("tools/call"))?
        {
            ServerResult::CallToolResult(r) => r,
            other => return Err(format!("tools/call answered {other:?}")),
        };
        let seen = self
            .seen
            .events_until(mark, 3, EVENT_WAIT, |e| match e {
                Event::Progress(p) => Some(p.clone()),
                _ => None,
            })
            .await;
        let frames = self.seen.frames_since(mark);
        let sent_token = frames
            .iter()
            .find(|f| f.out && f.method() == Some("tools/call"))
            .map(|f| f.msg["params"]["_meta"]["progressToken"].clone());
        let wire_tokens: Vec<Value> = frames
            .iter()
            .filter(|f| !f.out && f.method() == Some("notifications/progress"))
            .map(|f| f.msg["params"]["progressToken"].clone())
            .collect();
        let progress: Vec<f64> = seen.iter().filter_map(|p| p["progress"].as_f64()).collect();
        let detail = format!(
            "callbacks {seen:?}, token {token}, sent {sent_token:?}, on the wire {wire_tokens:?}, result {:?}",
            text_of(&result)
        );
        ensure!(
            progress == [0.0, 50.0, 100.0] && seen.iter().all(|p| p["total"] == json!(100.0)),
            "expected progress 0/50/100 of 100: {detail}"
        );
        ensure!(
            seen.iter().all(|p| p["progressToken"] == token),
            "a callback carried another token: {detail}"
        );
        ensure!(
            sent_token.as_ref() == Some(&token) && wire_tokens == vec![token.clone(); 3],
            "the wire's tokens are not the client's: {detail}"
        );
        Ok(detail)
    }

    /// `test_tool_with_logging`, with `level` in the request's `_meta` (the
    /// 2026-07-28 per-request opt-in; rmcp: `RequestMetaObject::set_log_level`).
    /// Returns the log levels seen, waiting for `expect` messages.
    async fn logged_call(
        &self,
        level: Option<LoggingLevel>,
        expect: usize,
    ) -> Result<Vec<Value>, String> {
        let mark = self.seen.mark();
        let mut params = call("test_tool_with_logging", json!({}));
        if let Some(level) = level {
            let mut meta = RequestMetaObject::new();
            meta.set_log_level(level);
            params.meta = Some(meta);
        }
        let r = self
            .client
            .call_tool(params)
            .await
            .map_err(failed("tools/call test_tool_with_logging"))?;
        ensure!(
            text_of(&r) == "Tool with logging executed successfully",
            "got {r:?}"
        );
        // None expected: watch for SILENCE, and take all that came.
        let (n, wait) = if expect == 0 {
            (usize::MAX, SILENCE)
        } else {
            (expect, EVENT_WAIT)
        };
        Ok(self
            .seen
            .events_until(mark, n, wait, |e| match e {
                Event::Log(l) => Some(l.clone()),
                _ => None,
            })
            .await)
    }

    async fn logging_debug(&self) -> Outcome {
        let logs = match self.era {
            Era::Legacy => {
                self.client
                    .set_level(SetLevelRequestParams::new(LoggingLevel::Debug))
                    .await
                    .map_err(failed("logging/setLevel debug"))?;
                self.logged_call(None, 3).await?
            }
            Era::Modern => self.logged_call(Some(LoggingLevel::Debug), 3).await?,
        };
        let info = logs.iter().filter(|l| l["level"] == "info").count();
        ensure!(info == 3, "expected 3 info messages, got {logs:?}");
        Ok(format!("{logs:?}"))
    }

    async fn logging_error_filters(&self, debug_passed: bool) -> Outcome {
        let logs = match self.era {
            Era::Legacy => {
                self.client
                    .set_level(SetLevelRequestParams::new(LoggingLevel::Error))
                    .await
                    .map_err(failed("logging/setLevel error"))?;
                let logs = self.logged_call(None, 0).await;
                // Back to chatty for the rest.
                self.client
                    .set_level(SetLevelRequestParams::new(LoggingLevel::Debug))
                    .await
                    .map_err(failed("logging/setLevel debug"))?;
                logs?
            }
            Era::Modern => self.logged_call(Some(LoggingLevel::Error), 0).await?,
        };
        let below: Vec<&Value> = logs
            .iter()
            .filter(|l| {
                ["debug", "info", "notice", "warning"]
                    .iter()
                    .any(|lv| l["level"] == *lv)
            })
            .collect();
        ensure!(below.is_empty(), "messages below error arrived: {below:?}");
        ensure!(
            debug_passed,
            "logging_debug did not pass, so this check would be vacuous"
        );
        Ok(format!("none within {SILENCE:?}"))
    }

    fn updates_since(&self, mark: (usize, usize)) -> Vec<String> {
        self.seen
            .events_since(mark)
            .into_iter()
            .filter_map(|e| match e {
                Event::ResourceUpdated(uri) => Some(uri),
                _ => None,
            })
            .collect()
    }

    async fn legacy_subscribe(&self) -> Outcome {
        self.client
            .subscribe(SubscribeRequestParams::new(WATCHED_URI))
            .await
            .map_err(failed("resources/subscribe"))?;
        let mark = self.seen.mark();
        self.call_tool("test_trigger_resource_update", json!({}))
            .await?;
        let got = self
            .seen
            .events_until(mark, 1, EVENT_WAIT, |e| match e {
                Event::ResourceUpdated(uri) if uri == WATCHED_URI => Some(uri.clone()),
                _ => None,
            })
            .await;
        ensure!(
            !got.is_empty(),
            "no notifications/resources/updated for {WATCHED_URI} within {EVENT_WAIT:?}"
        );
        Ok(format!("{} update(s)", got.len()))
    }

    async fn legacy_unsubscribe(&self, subscribed: bool) -> Outcome {
        self.client
            .unsubscribe(UnsubscribeRequestParams::new(WATCHED_URI))
            .await
            .map_err(failed("resources/unsubscribe"))?;
        let mark = self.seen.mark();
        self.call_tool("test_trigger_resource_update", json!({}))
            .await?;
        let got = self
            .seen
            .until(SILENCE, |s| {
                Some(s.events_since(mark))
                    .filter(|e| e.iter().any(|e| matches!(e, Event::ResourceUpdated(_))))
            })
            .await;
        ensure!(got.is_none(), "an update after unsubscribe: {got:?}");
        ensure!(
            subscribed,
            "resource_subscribe did not pass, so this check would be vacuous"
        );
        Ok(format!("no update within {SILENCE:?}"))
    }

    async fn legacy_list_changed(&self) -> Outcome {
        let mark = self.seen.mark();
        self.call_tool("test_trigger_tool_change", json!({}))
            .await?;
        let got = self
            .seen
            .events_until(mark, 1, EVENT_WAIT, |e| {
                matches!(e, Event::ToolListChanged).then_some(())
            })
            .await;
        let streams: Vec<&str> = self
            .seen
            .frames_since(mark)
            .iter()
            .filter(|f| !f.out && f.method() == Some("notifications/tools/list_changed"))
            .map(|f| if f.get { "get" } else { "post" })
            .collect();
        ensure!(
            !got.is_empty() && !streams.is_empty() && streams.iter().all(|s| *s == "get"),
            "expected tools/list_changed on the GET stream: {} callback(s), streams {streams:?}",
            got.len()
        );
        Ok(format!("{} notification(s) on {streams:?}", got.len()))
    }

    /// Waits on `sub` for a notification `want` accepts, at most `timeout`.
    async fn next_matching(
        sub: &mut rmcp::service::Subscription,
        timeout: Duration,
        want: impl Fn(&ServerNotification) -> bool,
    ) -> Result<Vec<ServerNotification>, String> {
        let mut got = Vec::new();
        let deadline = tokio::time::Instant::now() + timeout;
        loop {
            match tokio::time::timeout_at(deadline, sub.next()).await {
                Err(_) => return Ok(got),
                Ok(Err(e)) => return Err(format!("subscription: {e} after {got:?}")),
                Ok(Ok(None)) => {
                    return Err(format!(
                        "subscription ended ({:?}) after {got:?}",
                        sub.end()
                    ));
                }
                Ok(Ok(Some(n))) => {
                    let done = want(&n);
                    got.push(n);
                    if done {
                        return Ok(got);
                    }
                }
            }
        }
    }

    async fn listen_resource(&self) -> Outcome {
        let filter = SubscriptionFilter::builder()
            .tools_list_changed()
            .resource_subscription(WATCHED_URI)
            .build();
        let mut sub = self
            .client
            .listen(filter)
            .await
            .map_err(failed("subscriptions/listen"))?;
        let honored = sub.acknowledged().clone();
        ensure!(
            honored
                .resource_subscriptions
                .as_ref()
                .is_some_and(|u| u.iter().any(|u| u == WATCHED_URI)),
            "the listen's acknowledgment does not honor {WATCHED_URI}: {honored:?}"
        );
        self.call_tool("test_trigger_resource_update", json!({}))
            .await?;
        let got = Self::next_matching(&mut sub, EVENT_WAIT, |n| {
            matches!(n, ServerNotification::ResourceUpdatedNotification(u) if u.params.uri == WATCHED_URI)
        })
        .await;
        let _ = sub.cancel().await;
        let got = got?;
        ensure!(
            got.iter()
                .any(|n| matches!(n, ServerNotification::ResourceUpdatedNotification(_))),
            "no resources/updated on the listen within {EVENT_WAIT:?}: {got:?} (honored {honored:?})"
        );
        Ok(format!("honored {honored:?}, got {got:?}"))
    }

    /// At 2026-07-28 "unsubscribed" is a listen without the URI: an update
    /// must not arrive on it, while a following tools change does.
    async fn listen_without_resource(&self) -> Outcome {
        let mark = self.seen.mark();
        let filter = SubscriptionFilter::builder().tools_list_changed().build();
        let mut sub = self
            .client
            .listen(filter)
            .await
            .map_err(failed("subscriptions/listen"))?;
        self.call_tool("test_trigger_resource_update", json!({}))
            .await?;
        let early = Self::next_matching(&mut sub, SILENCE, |_| true).await;
        let r = async {
            let early = early?;
            ensure!(early.is_empty(), "before the tools change: {early:?}");
            self.call_tool("test_trigger_tool_change", json!({}))
                .await?;
            Self::next_matching(&mut sub, EVENT_WAIT, |n| {
                matches!(n, ServerNotification::ToolListChangedNotification(_))
            })
            .await
        }
        .await;
        let _ = sub.cancel().await;
        let got = r?;
        let raw_updates = self
            .seen
            .frames_since(mark)
            .iter()
            .filter(|f| !f.out && f.method() == Some("notifications/resources/updated"))
            .count();
        let callbacks = self.updates_since(mark);
        ensure!(
            got.iter()
                .any(|n| matches!(n, ServerNotification::ToolListChangedNotification(_))),
            "no tools/list_changed on the listen: {got:?}"
        );
        ensure!(
            raw_updates == 0 && callbacks.is_empty(),
            "resources/updated arrived without a subscription: {raw_updates} on the wire, callbacks {callbacks:?}"
        );
        Ok(format!("got {got:?}, no update"))
    }

    async fn listen_tools(&self) -> Outcome {
        let filter = SubscriptionFilter::builder().tools_list_changed().build();
        let mut sub = self
            .client
            .listen(filter)
            .await
            .map_err(failed("subscriptions/listen"))?;
        let honored = sub.acknowledged().clone();
        let r = async {
            self.call_tool("test_trigger_tool_change", json!({}))
                .await?;
            Self::next_matching(&mut sub, EVENT_WAIT, |n| {
                matches!(n, ServerNotification::ToolListChangedNotification(_))
            })
            .await
        }
        .await;
        let _ = sub.cancel().await;
        let got = r?;
        ensure!(
            honored.tools_list_changed == Some(true)
                && got
                    .iter()
                    .any(|n| matches!(n, ServerNotification::ToolListChangedNotification(_))),
            "no tools/list_changed on the listen within {EVENT_WAIT:?}: {got:?} (honored {honored:?})"
        );
        Ok(format!("honored {honored:?}, got {got:?}"))
    }

    fn flow(&self, mark: (usize, usize), tool: &str) -> Flow {
        let frames = self.seen.frames_since(mark);
        let posts: Vec<&Frame> = frames
            .iter()
            .filter(|f| {
                f.out && f.method() == Some("tools/call") && f.msg["params"]["name"] == tool
            })
            .collect();
        let result_types = posts
            .iter()
            .flat_map(|p| {
                frames
                    .iter()
                    .filter(|f| !f.out && f.method().is_none() && f.msg["id"] == p.msg["id"])
                    .map(|f| match f.msg.get("result") {
                        Some(r) => r["resultType"].as_str().unwrap_or("<absent>").to_owned(),
                        None => "error".to_owned(),
                    })
            })
            .collect();
        Flow {
            tools_call_posts: posts.len(),
            result_types,
            retries_with_input_responses: posts
                .iter()
                .filter(|p| p.msg["params"].get("inputResponses").is_some())
                .count(),
            server_requests: frames
                .iter()
                .filter(|f| !f.out && f.is_request())
                .filter_map(|f| f.method().map(str::to_owned))
                .collect(),
        }
    }

    /// Legacy: one tools/call and a `method` request from the server.
    /// Modern: `input_required` round(s), retried with `inputResponses`,
    /// ending `complete`; no server→client request.
    fn expect_era_flow(&self, flow: &Flow, method: &str) -> Result<(), String> {
        match self.era {
            Era::Legacy => ensure!(
                flow.tools_call_posts == 1 && flow.server_requests.iter().any(|m| m == method),
                "expected one tools/call and a {method} request from the server: {flow:?}"
            ),
            Era::Modern => ensure!(
                flow.result_types.len() >= 2
                    && flow.result_types[0] == "input_required"
                    && flow.result_types.last().map(String::as_str) == Some("complete")
                    && flow.retries_with_input_responses > 0
                    && flow.server_requests.is_empty(),
                "expected input_required round(s) then complete, no server->client request: {flow:?}"
            ),
        }
        Ok(())
    }

    async fn sampling(&self) -> Outcome {
        let mark = self.seen.mark();
        let text = self
            .call_text("test_sampling", json!({"prompt": "What is 2+2?"}))
            .await?;
        let calls: Vec<String> = self
            .seen
            .events_since(mark)
            .into_iter()
            .filter_map(|e| match e {
                Event::Sampling(p) => Some(p),
                _ => None,
            })
            .collect();
        let flow = self.flow(mark, "test_sampling");
        let detail = format!("text {text:?}, handler calls {calls:?}, {flow:?}");
        ensure!(calls.len() == 1 && calls[0].contains("2+2"), "{detail}");
        ensure!(
            text == format!("LLM response: {SAMPLING_ANSWER}"),
            "{detail}"
        );
        self.expect_era_flow(&flow, "sampling/createMessage")?;
        Ok(detail)
    }

    fn elicitations_since(&self, mark: (usize, usize)) -> Vec<(String, Vec<String>)> {
        self.seen
            .events_since(mark)
            .into_iter()
            .filter_map(|e| match e {
                Event::Elicitation { message, props } => Some((message, props)),
                _ => None,
            })
            .collect()
    }

    async fn elicitation(&self) -> Outcome {
        let mark = self.seen.mark();
        let text = self
            .call_text("test_elicitation", json!({"message": "Say something"}))
            .await?;
        let calls = self.elicitations_since(mark);
        let flow = self.flow(mark, "test_elicitation");
        let expected =
            format!("User response: action=accept, content={{\"response\":\"{ELICIT_ANSWER}\"}}");
        let detail = format!("text {text:?}, handler calls {calls:?}, {flow:?}");
        ensure!(
            calls.len() == 1 && calls[0].0 == "Say something",
            "{detail}"
        );
        ensure!(text == expected, "expected {expected:?}: {detail}");
        self.expect_era_flow(&flow, "elicitation/create")?;
        Ok(detail)
    }

    async fn elicitation_multi_round(&self) -> Outcome {
        let mark = self.seen.mark();
        let text = self
            .call_text("test_input_required_result_multi_round", json!({}))
            .await?;
        let props: Vec<Vec<String>> = self
            .elicitations_since(mark)
            .into_iter()
            .map(|(_, p)| p)
            .collect();
        let flow = self.flow(mark, "test_input_required_result_multi_round");
        let detail = format!("text {text:?}, handler calls {props:?}, {flow:?}");
        ensure!(text == "Ada likes teal.", "{detail}");
        ensure!(
            props == [vec!["name"], vec!["color"]],
            "expected name, then color: {detail}"
        );
        match self.era {
            Era::Legacy => ensure!(
                flow.tools_call_posts == 1
                    && flow
                        .server_requests
                        .iter()
                        .filter(|m| *m == "elicitation/create")
                        .count()
                        == 2,
                "expected one tools/call and two elicitation/create: {detail}"
            ),
            Era::Modern => ensure!(
                flow.result_types == ["input_required", "input_required", "complete"]
                    && flow.server_requests.is_empty(),
                "expected input_required, input_required, complete: {detail}"
            ),
        }
        Ok(detail)
    }

    async fn roots(&self) -> Outcome {
        let mark = self.seen.mark();
        let text = self.call_text("test_list_roots", json!({})).await?;
        let calls = self
            .seen
            .events_since(mark)
            .iter()
            .filter(|e| matches!(e, Event::Roots))
            .count();
        let flow = self.flow(mark, "test_list_roots");
        let detail = format!("text {text:?}, handler calls {calls}, {flow:?}");
        let got: Option<Value> = serde_json::from_str(&text).ok();
        ensure!(
            got == Some(json!({"roots": roots()})),
            "expected the client's two roots: {detail}"
        );
        self.expect_era_flow(&flow, "roots/list")?;
        Ok(detail)
    }

    async fn slow_status(&self, id: &str) -> Result<String, String> {
        self.call_text("test_slow_status", json!({"id": id})).await
    }

    /// Polls `test_slow_status(id)` until it is no longer `from` (at most
    /// `timeout`); returns the last status.
    async fn status_leaving(
        &self,
        id: &str,
        from: &str,
        timeout: Duration,
    ) -> Result<String, String> {
        let deadline = tokio::time::Instant::now() + timeout;
        loop {
            let status = self.slow_status(id).await?;
            if status != from || tokio::time::Instant::now() >= deadline {
                return Ok(status);
            }
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
    }

    /// The id of the tools/call `test_slow` with argument `id`, and the
    /// `notifications/cancelled` the client sent for it.
    fn cancellation_on_wire(&self, mark: (usize, usize), id: &str) -> (Option<Value>, usize) {
        let frames = self.seen.frames_since(mark);
        let request = frames
            .iter()
            .find(|f| {
                f.out
                    && f.method() == Some("tools/call")
                    && f.msg["params"]["name"] == "test_slow"
                    && f.msg["params"]["arguments"]["id"] == id
            })
            .map(|f| f.msg["id"].clone());
        let sent = frames
            .iter()
            .filter(|f| {
                f.out
                    && f.method() == Some("notifications/cancelled")
                    && Some(&f.msg["params"]["requestId"]) == request.as_ref()
            })
            .count();
        (request, sent)
    }

    /// Legacy: the SDK sends one `notifications/cancelled` for the call.
    /// Modern: it sends none (the 2026 HTTP wire has no client
    /// notifications) and closes the call's POST instead.
    async fn expect_cancel_signal(&self, mark: (usize, usize), id: &str) -> Result<String, String> {
        let wanted = usize::from(self.era == Era::Legacy);
        let wait = if wanted == 1 { EVENT_WAIT } else { SILENCE };
        // Modern: watch for SILENCE that none comes.
        let (request, sent) = self
            .seen
            .until(wait, |_| {
                Some(self.cancellation_on_wire(mark, id))
                    .filter(|(_, sent)| wanted == 1 && *sent >= 1)
            })
            .await
            .unwrap_or_else(|| self.cancellation_on_wire(mark, id));
        let sent_since: Vec<String> = self
            .seen
            .frames_since(mark)
            .iter()
            .filter(|f| f.out)
            .map(|f| format!("{}", f.msg))
            .filter(|m| !m.contains("test_slow_status"))
            .collect();
        let detail = format!(
            "request {request:?}, notifications/cancelled sent {sent} (sent since: {sent_since:?})"
        );
        ensure!(request.is_some(), "the call is not on the wire: {detail}");
        ensure!(
            sent == wanted,
            "expected {wanted} notifications/cancelled: {detail}"
        );
        Ok(detail)
    }

    /// A `test_slow` abandoned by its caller (the future dropped once the
    /// server runs it) is cancelled.
    async fn cancel_abort(&self) -> Outcome {
        let id = self.nonce.clone();
        let mark = self.seen.mark();
        let running = tokio::select! {
            r = self.call_tool("test_slow", json!({"ms": 10000, "id": id})) => {
                return Err(format!("test_slow ended before it was abandoned: {r:?}"));
            }
            s = self.status_leaving(&id, "unknown", EVENT_WAIT) => s?,
        };
        ensure!(
            running == "running",
            "test_slow status before the abort: {running}"
        );
        self.expect_cancel_signal(mark, &id).await
    }

    async fn cancel_reached_server(&self, aborted: bool) -> Outcome {
        ensure!(aborted, "cancel_abort did not pass");
        let status = self
            .status_leaving(&self.nonce, "running", EVENT_WAIT)
            .await?;
        ensure!(
            status == "cancelled",
            "test_slow status {status:?}, expected cancelled"
        );
        Ok(status)
    }

    /// A `test_slow` cancelled through its `RequestHandle` is cancelled.
    async fn cancel_request_handle(&self) -> Outcome {
        let id = format!("{}-handle", self.nonce);
        let mark = self.seen.mark();
        let handle = self
            .client
            .send_cancellable_request(
                ClientRequest::CallToolRequest(CallToolRequest::new(call(
                    "test_slow",
                    json!({"ms": 10000, "id": id}),
                ))),
                PeerRequestOptions::no_options(),
            )
            .await
            .map_err(failed("tools/call test_slow"))?;
        let running = self.status_leaving(&id, "unknown", EVENT_WAIT).await?;
        ensure!(
            running == "running",
            "test_slow status before the cancel: {running}"
        );
        handle
            .cancel(Some("mcpod interop: user cancelled".into()))
            .await
            .map_err(failed("cancel"))?;
        let signal = self.expect_cancel_signal(mark, &id).await?;
        let status = self.status_leaving(&id, "running", EVENT_WAIT).await?;
        ensure!(
            status == "cancelled",
            "test_slow status {status:?}, expected cancelled ({signal})"
        );
        Ok(format!("{signal}, status {status}"))
    }

    async fn cancel_followup_call(&self) -> Outcome {
        let text = self.call_text("test_simple_text", json!({})).await?;
        ensure!(text == SIMPLE_TEXT, "test_simple_text: {text:?}");
        let id = format!("{}-after", self.nonce);
        let slow = self
            .call_text("test_slow", json!({"ms": 50, "id": id}))
            .await?;
        ensure!(slow == "slept 50 ms", "test_slow: {slow:?}");
        Ok(format!("{text:?}, {slow:?}"))
    }
}

/// Every message the client received validates against the negotiated
/// revision's schema; at 2026-07-28 no server→client request came at all.
fn schema_valid(seen: &Seen, era: Era) -> Outcome {
    let rev = era.revision();
    let frames = seen.frames_since((0, 0));
    let mut problems = Vec::new();
    let mut count = 0;
    for f in frames.iter().filter(|f| !f.out) {
        count += 1;
        let msg = &f.msg;
        let mut errors = Vec::new();
        let label;
        if f.is_request() {
            label = f.method().unwrap().to_owned();
            errors.extend(mcpod_schema::errors(rev, "JSONRPCRequest", msg));
            match era {
                Era::Legacy => errors.extend(mcpod_schema::errors(rev, "ServerRequest", msg)),
                Era::Modern => errors.push(format!("server->client request {label} at {rev}")),
            }
        } else if f.is_notification() {
            label = f.method().unwrap().to_owned();
            errors.extend(mcpod_schema::errors(rev, "JSONRPCNotification", msg));
            errors.extend(mcpod_schema::errors(rev, "ServerNotification", msg));
        } else if let Some(result) = msg.get("result") {
            let method = seen.method_of_response(&msg["id"]).unwrap_or_default();
            label = format!("result:{method}");
            errors.extend(mcpod_schema::errors(
                rev,
                mcpod_schema::result_envelope(rev),
                msg,
            ));
            let def = if result["resultType"] == "input_required" {
                "InputRequiredResult"
            } else {
                match method.as_str() {
                    "initialize" => "InitializeResult",
                    "server/discover" => "DiscoverResult",
                    "tools/list" => "ListToolsResult",
                    "tools/call" => "CallToolResult",
                    "resources/read" => "ReadResourceResult",
                    "subscriptions/listen" => "SubscriptionsListenResult",
                    "ping"
                    | "logging/setLevel"
                    | "resources/subscribe"
                    | "resources/unsubscribe" => "EmptyResult",
                    _ => "Result",
                }
            };
            errors.extend(mcpod_schema::errors(rev, def, result));
        } else {
            let method = seen.method_of_response(&msg["id"]).unwrap_or_default();
            label = format!("error:{method}");
            errors.extend(mcpod_schema::errors(
                rev,
                mcpod_schema::error_envelope(rev),
                msg,
            ));
        }
        if !errors.is_empty() {
            errors.truncate(3);
            problems.push(format!("{label} (id {}): {errors:?}", msg["id"]));
        }
    }
    ensure!(count > 0, "nothing received");
    problems.truncate(10);
    ensure!(
        problems.is_empty(),
        "{} messages, problems: {problems:#?}",
        count
    );
    Ok(format!("{count} messages valid at {rev}"))
}

/// Legacy: no result carries a 2026-07-28 field. Modern: every result
/// carries `resultType`, and the cacheable ones `ttlMs` and `cacheScope`.
fn era_result_fields(seen: &Seen, era: Era) -> Outcome {
    let frames = seen.frames_since((0, 0));
    let mut bad = Vec::new();
    let mut count = 0;
    for f in frames
        .iter()
        .filter(|f| !f.out && f.msg.get("result").is_some())
    {
        count += 1;
        let result = &f.msg["result"];
        let method = seen.method_of_response(&f.msg["id"]).unwrap_or_default();
        let wrong: Vec<&str> = match era {
            Era::Legacy => MODERN_ONLY_RESULT_FIELDS
                .into_iter()
                .filter(|k| result.get(k).is_some())
                .collect(),
            Era::Modern => {
                let mut required = vec!["resultType"];
                if CACHEABLE_METHODS.contains(&method.as_str()) {
                    required.extend(["ttlMs", "cacheScope"]);
                }
                required
                    .into_iter()
                    .filter(|k| result.get(k).is_none())
                    .collect()
            }
        };
        if !wrong.is_empty() {
            bad.push(format!("{method}: {wrong:?}"));
        }
    }
    ensure!(count > 0, "no results received");
    let what = match era {
        Era::Legacy => "2026-07-28 fields present",
        Era::Modern => "fields missing",
    };
    bad.truncate(10);
    ensure!(bad.is_empty(), "{what}: {bad:?}");
    Ok(format!("{count} results"))
}

// -------------------------------------------------------------- the gate

/// The checks each era's client runs (all must pass on the reference).
fn expected_checks(era: Era) -> Vec<&'static str> {
    let mut names = vec![
        "connect",
        "tools_list",
        "call_simple_text",
        "resources_read",
        "progress",
        "logging_debug",
        "logging_error_filters",
        "resource_subscribe",
        "resource_unsubscribe",
        "list_changed",
        "sampling",
        "elicitation",
        "elicitation_multi_round",
        "roots",
        "cancel_abort",
        "cancel_reached_server",
        "cancel_request_handle",
        "cancel_followup_call",
        "schema_valid",
        "era_result_fields",
    ];
    if era == Era::Legacy {
        names.push("ping");
    }
    names.sort_unstable();
    names
}

fn report(what: &str, checks: &Checks) {
    for (name, outcome) in checks {
        match outcome {
            Ok(detail) => eprintln!("{what}: {name} ok ({detail})"),
            Err(detail) => eprintln!("{what}: {name} FAILED: {detail}"),
        }
    }
    let passed = checks.values().filter(|o| o.is_ok()).count();
    eprintln!("{what}: {passed}/{} checks pass", checks.len());
}

struct Reference {
    legacy: Checks,
    modern: Checks,
}

impl Reference {
    fn of(&self, era: Era) -> &Checks {
        match era {
            Era::Legacy => &self.legacy,
            Era::Modern => &self.modern,
        }
    }
}

/// Both clients against the fixture on its own HTTP, no gateway (once per
/// test binary; one client after the other).
async fn reference() -> &'static Reference {
    static REFERENCE: OnceCell<Reference> = OnceCell::const_new();
    REFERENCE
        .get_or_init(|| async {
            require_setup();
            let (mut fixture, url) = http_server(&fixture_program(), true).await;
            let legacy = rmcp_checks(&url, Era::Legacy).await;
            report("rmcp legacy client, reference", &legacy);
            let modern = rmcp_checks(&url, Era::Modern).await;
            report("rmcp modern client, reference", &modern);
            let _ = fixture.kill().await;
            Reference { legacy, modern }
        })
        .await
}

fn init_tracing() {
    let _ = tracing_subscriber::fmt()
        .with_env_filter(tracing_subscriber::EnvFilter::from_default_env())
        .with_test_writer()
        .try_init();
}

/// Both rmcp clients through the gateway with the fixture as a stdio
/// backend of era `backend`: every check the reference passes passes.
async fn gate(backend: &str) {
    init_tracing();
    require_setup();
    let reference = reference().await;
    let gw = Gateway::start(&fixture_target("fixture", backend)).await;
    let mut broken = Vec::new();
    for era in [Era::Legacy, Era::Modern] {
        let through = rmcp_checks(&gw.url("/mcp/fixture"), era).await;
        report(&format!("rmcp {era} client, {backend} backend"), &through);
        for (name, outcome) in reference.of(era) {
            if outcome.is_err() {
                continue;
            }
            match through.get(name) {
                Some(Ok(_)) => {}
                Some(Err(detail)) => broken.push(format!("{era} client: {name}: {detail}")),
                None => broken.push(format!(
                    "{era} client: {name}: passes on the reference, not run through the gateway"
                )),
            }
        }
    }
    gw.shutdown().await;
    assert!(
        broken.is_empty(),
        "through a {backend} backend:\n{}",
        broken.join("\n")
    );
}

#[tokio::test(flavor = "multi_thread")]
async fn rmcp_clients_of_both_eras_pass_every_check_on_the_reference() {
    init_tracing();
    let reference = reference().await;
    let mut broken = Vec::new();
    for era in [Era::Legacy, Era::Modern] {
        let checks = reference.of(era);
        let ran: Vec<&str> = checks.keys().copied().collect();
        assert_eq!(ran, expected_checks(era), "{era} client: checks run");
        for (name, outcome) in checks {
            if let Err(detail) = outcome {
                broken.push(format!("{era} client: {name}: {detail}"));
            }
        }
    }
    assert!(
        broken.is_empty(),
        "on the reference:\n{}",
        broken.join("\n")
    );
}

#[tokio::test(flavor = "multi_thread")]
async fn rmcp_clients_of_both_eras_through_a_legacy_backend() {
    gate("legacy").await;
}

#[tokio::test(flavor = "multi_thread")]
async fn rmcp_clients_of_both_eras_through_a_modern_backend() {
    gate("modern").await;
}

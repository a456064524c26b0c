//! The Memoh-compatible routes, with the contract of the handler mcpod
//! re-creates (see SEED-NOTES.md):
//!
//! - `POST /bots/{bot_id}/container/fs-mcp`: one JSON-RPC object in, one
//!   JSON-RPC response out with 200; a notification → 202 and no body;
//!   `jsonrpc` other than "2.0" → -32600; an empty method → -32601; a
//!   backend failure → -32603 with the message. Other failures answer
//!   `{"message": …}` with 400/404/500 as echo did.
//! - `POST /bots/{bot_id}/mcp-stdio` with `{name, command, args, env, cwd}`
//!   starts a stdio server for the bot, probes `tools/list` and answers
//!   `{connection_id, url, tools}`.
//! - `POST /bots/{bot_id}/mcp-stdio/{connection_id}` talks to it (same
//!   JSON-RPC rules); `DELETE` stops it. Another bot's connection → 404.

use std::collections::{BTreeMap, HashMap};
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::{Duration, Instant};

use axum::Json;
use axum::body::Body;
use axum::extract::{Path, State};
use axum::response::{IntoResponse, Response};
use http::{HeaderMap, StatusCode};
use mcpod_core::json::error_frame;
use mcpod_tokio::{CallItem, Deadline, OwnedRequest, RequestOptions, Upstream};
use rand::RngCore;
use serde::{Deserialize, Serialize};
use serde_json::value::RawValue;
use tracing::{Instrument, info, warn};

use crate::config::{BackendSpec, BotConfig, ProcessBackend};
use crate::http::App;
use crate::http::calls::{self, Call, Caller, Record, Slots};
use crate::http::errors::{
    ApiError, INTERNAL_ERROR, INVALID_REQUEST, METHOD_NOT_FOUND, accepted, json_response,
};
use crate::http::legacy::{initialize_result, negotiate};
use crate::http::read_body;
use crate::targets::{Target, launch, upstream_config};

fn lock<T>(m: &Mutex<T>) -> MutexGuard<'_, T> {
    m.lock().unwrap_or_else(|e| e.into_inner())
}

/// An echo-style error: `{"message": …}` with a status.
fn message(status: StatusCode, text: impl Into<String>) -> Response {
    #[derive(Serialize)]
    struct Message {
        message: String,
    }
    (
        status,
        Json(Message {
            message: text.into(),
        }),
    )
        .into_response()
}

/// Why a Memoh request was refused before any JSON-RPC.
#[derive(Debug)]
enum Refusal {
    /// Auth failed (401 with `WWW-Authenticate`).
    Auth(Box<ApiError>),
    /// An echo-style `{"message": …}` error.
    Message(StatusCode, &'static str),
}

impl IntoResponse for Refusal {
    fn into_response(self) -> Response {
        match self {
            Refusal::Auth(e) => e.into_response(),
            Refusal::Message(status, text) => message(status, text),
        }
    }
}

/// One JSON-RPC object as the Go handler read it: `jsonrpc` may be absent.
#[derive(Deserialize)]
struct Envelope<'a> {
    #[serde(default)]
    jsonrpc: Option<String>,
    #[serde(borrow, default)]
    id: Option<&'a RawValue>,
    #[serde(default)]
    method: Option<String>,
    #[serde(borrow, default)]
    params: Option<&'a RawValue>,
}

/// A started stdio connection.
#[derive(Debug)]
struct StdioConnection {
    bot_id: String,
    name: String,
    target: Arc<Target>,
    upstream: Upstream,
    last_used: Mutex<Instant>,
}

/// The `mcp-stdio` connections.
#[derive(Debug, Default)]
pub struct StdioConnections {
    map: Mutex<HashMap<String, Arc<StdioConnection>>>,
}

impl StdioConnections {
    fn get(&self, id: &str) -> Option<Arc<StdioConnection>> {
        lock(&self.map).get(id).cloned()
    }

    fn count_for(&self, bot: &str) -> usize {
        lock(&self.map).values().filter(|c| c.bot_id == bot).count()
    }

    /// Stops connections idle for `timeout`.
    pub async fn expire(&self, timeout: Duration) {
        let idle: Vec<Arc<StdioConnection>> = {
            let mut map = lock(&self.map);
            let ids: Vec<String> = map
                .iter()
                .filter(|(_, c)| {
                    lock(&c.last_used).elapsed() >= timeout
                        && c.upstream.status().calls_in_flight == 0
                })
                .map(|(k, _)| k.clone())
                .collect();
            ids.iter().filter_map(|k| map.remove(k)).collect()
        };
        for c in idle {
            info!(bot = %c.bot_id, name = %c.name, "idle mcp-stdio connection stopped");
            c.upstream.close().await;
        }
    }

    /// Stops every connection (at shutdown).
    pub async fn close_all(&self) {
        let all: Vec<Arc<StdioConnection>> = lock(&self.map).drain().map(|(_, c)| c).collect();
        for c in all {
            c.upstream.close().await;
        }
    }
}

fn bot<'a>(app: &'a App, bot_id: &str, headers: &HeaderMap) -> Result<&'a BotConfig, Refusal> {
    if bot_id.trim().is_empty() {
        return Err(Refusal::Message(
            StatusCode::BAD_REQUEST,
            "bot id is required",
        ));
    }
    let auth = |e: ApiError| Refusal::Auth(Box::new(e));
    match app.config.bots.get(bot_id) {
        Some(bot) => {
            app.tokens(bot.tokens.as_ref())
                .check(headers)
                .map_err(auth)?;
            Ok(bot)
        }
        None => {
            app.tokens(None).check(headers).map_err(auth)?;
            Err(Refusal::Message(
                StatusCode::NOT_FOUND,
                "container not found for bot",
            ))
        }
    }
}

/// The bot and its target: a configured bot (its container checked when
/// its target is a containerd one), or — with `[containerd] serve_bots` —
/// any bot whose container checks out (400 / 403 / 404 otherwise).
async fn resolve(
    app: &App,
    bot_id: &str,
    headers: &HeaderMap,
) -> Result<(BotConfig, Arc<Target>), Response> {
    match bot(app, bot_id, headers) {
        Ok(bot) => {
            let Some(target) = app.targets.get(&bot.target).cloned() else {
                return Err(message(
                    StatusCode::NOT_FOUND,
                    "container not found for bot",
                ));
            };
            crate::containerd::check_target(&target)
                .await
                .map_err(IntoResponse::into_response)?;
            Ok((bot.clone(), target))
        }
        Err(Refusal::Message(StatusCode::NOT_FOUND, _)) if app.bot_containers.is_some() => {
            let Some(bots) = app.bot_containers.as_ref() else {
                return Err(message(
                    StatusCode::NOT_FOUND,
                    "container not found for bot",
                ));
            };
            let target = bots
                .target(&app.targets, bot_id)
                .await
                .map_err(IntoResponse::into_response)?;
            Ok((
                BotConfig {
                    id: bot_id.to_owned(),
                    target: target.name().to_owned(),
                    tokens: None,
                    allow_local_stdio: false,
                },
                target,
            ))
        }
        Err(r) => Err(r.into_response()),
    }
}

/// Auth and bot-id checks of the `mcp-stdio/{connection_id}` routes (the
/// connection itself says whose it is).
fn stdio_bot(app: &App, bot_id: &str, headers: &HeaderMap) -> Result<(), Refusal> {
    match bot(app, bot_id, headers) {
        Ok(_) => Ok(()),
        Err(Refusal::Message(StatusCode::NOT_FOUND, _)) if app.bot_containers.is_some() => Ok(()),
        Err(r) => Err(r),
    }
}

/// `POST /bots/{bot_id}/container/fs-mcp`.
pub async fn fs_mcp(
    State(app): State<Arc<App>>,
    Path(bot_id): Path<String>,
    headers: HeaderMap,
    body: Body,
) -> Response {
    let span = tracing::info_span!("memoh", bot = %bot_id, method = tracing::field::Empty, session = tracing::field::Empty);
    async move {
        let target = match resolve(&app, &bot_id, &headers).await {
            Ok((_, target)) => target,
            Err(r) => return r,
        };
        let upstream = target.shared_upstream();
        rpc(&app, target, upstream, body).await
    }
    .instrument(span)
    .await
}

/// One JSON-RPC exchange under the Memoh contract.
async fn rpc(app: &Arc<App>, target: Arc<Target>, upstream: Upstream, body: Body) -> Response {
    let mut record = Record::new(app, target.name());
    let body = match read_body(body, app.config.limits.max_body_bytes).await {
        Ok(b) => b,
        Err(e) => {
            record.outcome = e.outcome();
            return message(e.status, e.message);
        }
    };
    let env: Envelope<'_> = match serde_json::from_slice(&body) {
        Ok(e) => e,
        Err(e) => {
            record.outcome = "rejected";
            return message(StatusCode::BAD_REQUEST, e.to_string());
        }
    };
    let id_json = env.id.map(|i| i.get()).unwrap_or("null");
    if env
        .jsonrpc
        .as_deref()
        .is_some_and(|v| !v.is_empty() && v != "2.0")
    {
        record.outcome = "rejected";
        return json_response(error_frame(
            id_json,
            INVALID_REQUEST,
            "invalid jsonrpc version",
            None,
        ));
    }
    let method = env.method.as_deref().map(str::trim).unwrap_or("");
    if method.is_empty() {
        record.outcome = "rejected";
        return json_response(error_frame(
            id_json,
            METHOD_NOT_FOUND,
            "method not found",
            None,
        ));
    }
    record.method(method);
    let Some(id) = env.id else {
        // A notification. Cancellation has nothing to cancel on a route
        // whose requests are answered one at a time.
        if method == "notifications/cancelled" {
            record.outcome = "ok";
            return accepted();
        }
        return match upstream
            .notify(method, env.params.map(|p| p.to_owned()))
            .await
        {
            Ok(()) => {
                record.outcome = "ok";
                accepted()
            }
            Err(e) => {
                record.outcome = "error";
                message(StatusCode::INTERNAL_SERVER_ERROR, e.to_string())
            }
        };
    };
    if mcpod_core::Id::from_raw(id).is_err() {
        record.outcome = "rejected";
        return json_response(error_frame(
            "null",
            INVALID_REQUEST,
            "invalid request id",
            None,
        ));
    }
    if method == "initialize" {
        let requested = env
            .params
            .and_then(|p| {
                serde_json::from_str::<serde_json::Map<String, serde_json::Value>>(p.get()).ok()
            })
            .and_then(|m| {
                m.get("protocolVersion")
                    .and_then(|v| v.as_str())
                    .map(str::to_owned)
            });
        return match crate::http::modern::ready(&target, &upstream).await {
            Ok(info) => {
                record.outcome = "ok";
                let version = negotiate(requested.as_deref());
                json_response(mcpod_core::json::result_frame(
                    id.get(),
                    &initialize_result(&info, version),
                ))
            }
            Err(e) => {
                record.outcome = "error";
                json_response(error_frame(id.get(), INTERNAL_ERROR, &e.message, None))
            }
        };
    }
    let slots = match Slots::acquire(&target, None) {
        Ok(s) => s,
        Err(e) => {
            record.outcome = e.outcome();
            return json_response(error_frame(id.get(), INTERNAL_ERROR, &e.message, None));
        }
    };
    let req = OwnedRequest::new(id.to_owned(), method, env.params.map(|p| p.to_owned()));
    calls::forward(
        Call {
            target,
            upstream,
            caller: Caller::Memoh,
            sse: false,
            json: true,
            deadline: Deadline::Default,
            cancel: None,
            stop: None,
            slots,
            record,
        },
        req,
    )
    .await
}

/// The body of `POST /bots/{bot_id}/mcp-stdio`.
#[derive(Debug, Deserialize)]
pub struct StdioRequest {
    /// A display name.
    #[serde(default)]
    pub name: String,
    /// The program.
    #[serde(default)]
    pub command: String,
    /// Its arguments.
    #[serde(default)]
    pub args: Vec<String>,
    /// Extra environment.
    #[serde(default)]
    pub env: BTreeMap<String, String>,
    /// Working directory.
    #[serde(default)]
    pub cwd: String,
}

/// The answer to `POST /bots/{bot_id}/mcp-stdio`.
#[derive(Debug, Serialize, Deserialize)]
pub struct StdioResponse {
    /// The new connection's id.
    pub connection_id: String,
    /// Where to talk to it.
    pub url: String,
    /// Its tool names, sorted (absent if the probe failed).
    #[serde(skip_serializing_if = "Vec::is_empty", default)]
    pub tools: Vec<String>,
}

fn new_connection_id() -> String {
    let mut b = [0u8; 16];
    rand::rng().fill_bytes(&mut b);
    b[6] = (b[6] & 0x0f) | 0x40;
    b[8] = (b[8] & 0x3f) | 0x80;
    let h: String = b.iter().map(|x| format!("{x:02x}")).collect();
    format!(
        "{}-{}-{}-{}-{}",
        &h[0..8],
        &h[8..12],
        &h[12..16],
        &h[16..20],
        &h[20..32]
    )
}

/// `POST /bots/{bot_id}/mcp-stdio`.
pub async fn create_stdio(
    State(app): State<Arc<App>>,
    Path(bot_id): Path<String>,
    headers: HeaderMap,
    body: Body,
) -> Response {
    let (bot, target) = match resolve(&app, &bot_id, &headers).await {
        Ok(found) => found,
        Err(r) => return r,
    };
    let mut record = Record::new(&app, target.name());
    record.method("mcp-stdio/create");
    let body = match read_body(body, app.config.limits.max_body_bytes).await {
        Ok(b) => b,
        Err(e) => {
            record.outcome = e.outcome();
            return message(e.status, e.message);
        }
    };
    let req: StdioRequest = match serde_json::from_slice(&body) {
        Ok(r) => r,
        Err(e) => {
            record.outcome = "rejected";
            return message(StatusCode::BAD_REQUEST, e.to_string());
        }
    };
    if req.command.trim().is_empty() {
        record.outcome = "rejected";
        return message(StatusCode::BAD_REQUEST, "command is required");
    }
    let in_container = matches!(target.config.backend, BackendSpec::Containerd(_));
    if !bot.allow_local_stdio && !in_container {
        record.outcome = "forbidden";
        return message(
            StatusCode::FORBIDDEN,
            "this bot may not start local stdio servers (set allow_local_stdio)",
        );
    }
    let max = app.config.limits.max_stdio_connections_per_bot;
    if app.stdio.count_for(&bot.id) >= max {
        record.outcome = "overloaded";
        return message(
            StatusCode::TOO_MANY_REQUESTS,
            format!("bot already has {max} stdio connections, its limit"),
        );
    }
    let backend = match &target.config.backend {
        // A bot with a container runs the command inside it.
        BackendSpec::Containerd(c) => {
            BackendSpec::Containerd(c.with_command(crate::containerd::ExecCommand {
                command: req.command.trim().into(),
                args: req.args,
                env: req.env,
                cwd: (!req.cwd.trim().is_empty()).then(|| req.cwd.trim().into()),
            }))
        }
        _ => BackendSpec::Process(ProcessBackend {
            command: req.command.trim().into(),
            args: req.args,
            env: req.env,
            env_clear: false,
            cwd: (!req.cwd.trim().is_empty()).then(|| req.cwd.trim().into()),
        }),
    };
    let connection_id = new_connection_id();
    let name = req.name.trim().to_owned();
    let upstream = launch(
        &backend,
        upstream_config(&target.config, format!("bot {}/{}", bot.id, name)),
    );
    let ready = tokio::time::timeout(Duration::from_secs(30), upstream.ready()).await;
    match ready {
        Ok(Ok(_)) => {}
        Ok(Err(e)) => {
            upstream.close().await;
            record.outcome = "error";
            return message(StatusCode::INTERNAL_SERVER_ERROR, e.to_string());
        }
        Err(_) => {
            upstream.close().await;
            record.outcome = "error";
            return message(
                StatusCode::INTERNAL_SERVER_ERROR,
                "the stdio server did not start in time",
            );
        }
    }
    let tools = probe_tools(&upstream).await.unwrap_or_else(|e| {
        warn!(bot = %bot.id, name = %name, error = %e, "mcp stdio tools probe failed");
        Vec::new()
    });
    let conn = Arc::new(StdioConnection {
        bot_id: bot.id.clone(),
        name,
        target,
        upstream,
        last_used: Mutex::new(Instant::now()),
    });
    lock(&app.stdio.map).insert(connection_id.clone(), conn);
    record.outcome = "ok";
    Json(StdioResponse {
        url: format!("/bots/{}/mcp-stdio/{connection_id}", bot.id),
        connection_id,
        tools,
    })
    .into_response()
}

async fn probe_tools(upstream: &Upstream) -> Result<Vec<String>, String> {
    #[derive(Deserialize)]
    struct ToolsResponse {
        result: Option<ToolsList>,
    }
    #[derive(Deserialize)]
    struct ToolsList {
        #[serde(default)]
        tools: Vec<Tool>,
    }
    #[derive(Deserialize)]
    struct Tool {
        #[serde(default)]
        name: String,
    }
    let id = RawValue::from_string("\"probe-tools\"".into()).map_err(|e| e.to_string())?;
    let call = upstream
        .call(
            OwnedRequest::new(id, "tools/list", None),
            RequestOptions {
                deadline: Deadline::After(Duration::from_secs(8)),
            },
        )
        .await
        .map_err(|e| e.to_string())?;
    match call.finish().await {
        Some(CallItem::Response {
            frame,
            is_error: false,
        }) => {
            let r: ToolsResponse = serde_json::from_slice(&frame).map_err(|e| e.to_string())?;
            let mut names: Vec<String> = r
                .result
                .map(|l| l.tools)
                .unwrap_or_default()
                .into_iter()
                .map(|t| t.name.trim().to_owned())
                .filter(|n| !n.is_empty())
                .collect();
            names.sort();
            Ok(names)
        }
        Some(CallItem::Response { frame, .. }) | Some(CallItem::Ended { frame, .. }) => {
            Err(String::from_utf8_lossy(&frame).into_owned())
        }
        _ => Err("no answer".into()),
    }
}

fn connection(
    app: &App,
    bot_id: &str,
    connection_id: &str,
) -> Result<Arc<StdioConnection>, Refusal> {
    let connection_id = connection_id.trim();
    if connection_id.is_empty() {
        return Err(Refusal::Message(
            StatusCode::BAD_REQUEST,
            "connection_id is required",
        ));
    }
    match app.stdio.get(connection_id) {
        Some(c) if c.bot_id == bot_id => {
            if c.upstream.status().closed {
                Err(Refusal::Message(
                    StatusCode::NOT_FOUND,
                    "mcp connection closed",
                ))
            } else {
                Ok(c)
            }
        }
        _ => Err(Refusal::Message(
            StatusCode::NOT_FOUND,
            "mcp connection not found",
        )),
    }
}

/// `POST /bots/{bot_id}/mcp-stdio/{connection_id}`.
pub async fn call_stdio(
    State(app): State<Arc<App>>,
    Path((bot_id, connection_id)): Path<(String, String)>,
    headers: HeaderMap,
    body: Body,
) -> Response {
    if let Err(r) = stdio_bot(&app, &bot_id, &headers) {
        return r.into_response();
    }
    let conn = match connection(&app, &bot_id, &connection_id) {
        Ok(c) => c,
        Err(r) => return r.into_response(),
    };
    *lock(&conn.last_used) = Instant::now();
    rpc(&app, conn.target.clone(), conn.upstream.clone(), body).await
}

/// `DELETE /bots/{bot_id}/mcp-stdio/{connection_id}`: stops it (204).
pub async fn delete_stdio(
    State(app): State<Arc<App>>,
    Path((bot_id, connection_id)): Path<(String, String)>,
    headers: HeaderMap,
) -> Response {
    if let Err(r) = stdio_bot(&app, &bot_id, &headers) {
        return r.into_response();
    }
    let conn = match connection(&app, &bot_id, &connection_id) {
        Ok(c) => c,
        Err(r) => return r.into_response(),
    };
    lock(&app.stdio.map).remove(connection_id.trim());
    conn.upstream.close().await;
    info!(bot = %bot_id, name = %conn.name, "mcp-stdio connection stopped");
    StatusCode::NO_CONTENT.into_response()
}

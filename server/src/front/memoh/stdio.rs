//! Memoh `mcp-stdio` connections: a stdio MCP server started for a bot (in
//! its container when it has one), probed for its tools, talked to through
//! its own URL, stopped by `DELETE` or when idle.

use std::collections::{BTreeMap, HashMap};
use std::sync::Arc;

use parking_lot::Mutex;
use std::time::{Duration, Instant};

use axum::Json;
use axum::body::Body;
use axum::response::{IntoResponse, Response};
use http::{HeaderMap, StatusCode};
use mcpod_tokio::{CallItem, Deadline, OwnedRequest, RequestOptions, Upstream};
use serde::{Deserialize, Serialize};
use serde_json::value::RawValue;
use tracing::{info, warn};

use super::super::context::Context;
use super::policy;
use super::rpc::{Served, rpc};
use crate::config::{BackendSpec, ExecCommand, InheritEnv, ProcessBackend, StdioPolicy};
use crate::metrics::{Operation, Outcome};
use crate::targets::{Backend, Target};
use crate::web::body::read_json_body;
use crate::web::errors::message;
use crate::web::record::Record;

/// How long a started server gets to become ready.
const START_TIMEOUT: Duration = Duration::from_secs(30);
/// How long the `tools/list` probe may take.
const PROBE_TIMEOUT: Duration = Duration::from_secs(8);

/// A started stdio connection.
#[derive(Debug)]
struct StdioConnection {
    bot_id: String,
    name: String,
    target: Arc<Target>,
    backend: Arc<Backend>,
    last_used: Mutex<Instant>,
}

/// The `mcp-stdio` connections.
#[derive(Debug, Default)]
pub(crate) struct StdioConnections {
    map: Mutex<HashMap<String, Arc<StdioConnection>>>,
}

impl StdioConnections {
    fn get(&self, id: &str) -> Option<Arc<StdioConnection>> {
        self.map.lock().get(id).cloned()
    }

    /// Connections open now, of every bot.
    pub(crate) fn count(&self) -> usize {
        self.map.lock().len()
    }

    fn count_for(&self, bot: &str) -> usize {
        self.map.lock().values().filter(|c| c.bot_id == bot).count()
    }

    /// Stops connections idle for `timeout`.
    pub(crate) async fn expire(&self, timeout: Duration) {
        let idle: Vec<Arc<StdioConnection>> = {
            let mut map = self.map.lock();
            let ids: Vec<String> = map
                .iter()
                .filter(|(_, c)| {
                    c.last_used.lock().elapsed() >= timeout
                        && c.backend.upstream.status().calls_in_flight == 0
                })
                .map(|(k, _)| k.clone())
                .collect();
            ids.iter().filter_map(|k| map.remove(k)).collect()
        };
        for c in idle {
            info!(bot = %c.bot_id, name = %c.name, "idle mcp-stdio connection stopped");
            c.backend.upstream.close().await;
        }
    }

    /// Stops every connection (at shutdown).
    pub(crate) async fn close_all(&self) {
        let all: Vec<Arc<StdioConnection>> = self.map.lock().drain().map(|(_, c)| c).collect();
        for c in all {
            c.backend.upstream.close().await;
        }
    }
}

/// The body of `POST /bots/{bot_id}/mcp-stdio`. A field the contract does
/// not name is refused, not ignored: a caller asking for `env_clear` must
/// not believe it got it.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct StdioRequest {
    #[serde(default)]
    name: String,
    #[serde(default)]
    command: String,
    #[serde(default)]
    args: Vec<String>,
    #[serde(default)]
    env: BTreeMap<String, String>,
    #[serde(default)]
    cwd: String,
}

/// The answer to `POST /bots/{bot_id}/mcp-stdio`.
#[derive(Debug, Serialize)]
struct StdioResponse {
    connection_id: String,
    url: String,
    /// Tool names, sorted (absent if the probe failed).
    #[serde(skip_serializing_if = "Vec::is_empty")]
    tools: Vec<String>,
}

/// A bot as far as `mcp-stdio` is concerned.
#[derive(Debug, Clone)]
pub(crate) struct StdioBot<'a> {
    /// Its id.
    pub(crate) id: &'a str,
    /// Whether it may start local processes.
    pub(crate) allow_local_stdio: bool,
    /// What its servers may be.
    pub(crate) policy: &'a StdioPolicy,
}

/// `POST /bots/{bot_id}/mcp-stdio`: a JSON body (415 otherwise).
pub(crate) async fn create_stdio(
    ctx: &Context,
    stdio: &StdioConnections,
    bot: StdioBot<'_>,
    target: Arc<Target>,
    headers: &HeaderMap,
    body: Body,
) -> Response {
    let mut record = Record::new(&ctx.metrics, target.name(), Operation::StdioCreate);
    let body = match read_json_body(headers, body, &target.limits).await {
        Ok(b) => b,
        Err(e) => {
            record.outcome = e.outcome();
            return message(e.status, e.message);
        }
    };
    // serde would read an array as the struct's fields in order, and say
    // something about its first element: say what is expected instead.
    if body.trim_ascii_start().first() != Some(&b'{') {
        record.outcome = Outcome::Rejected;
        return message(
            StatusCode::BAD_REQUEST,
            "the body must be a JSON object: {\"command\", \"args\", \"env\", \"cwd\", \"name\"}",
        );
    }
    let req: StdioRequest = match serde_json::from_slice(&body) {
        Ok(r) => r,
        Err(e) => {
            record.outcome = Outcome::Rejected;
            return message(StatusCode::BAD_REQUEST, e.to_string());
        }
    };
    if req.command.trim().is_empty() {
        record.outcome = Outcome::Rejected;
        return message(StatusCode::BAD_REQUEST, "command is required");
    }
    let in_container = matches!(target.config.backend, BackendSpec::Containerd(_));
    if !bot.allow_local_stdio && !in_container {
        record.outcome = Outcome::Forbidden;
        return message(
            StatusCode::FORBIDDEN,
            "this bot may not start local stdio servers (set allow_local_stdio)",
        );
    }
    let command = req.command.trim().to_owned();
    let cwd = (!req.cwd.trim().is_empty()).then(|| req.cwd.trim());
    let checked = policy::check_command(&command, bot.policy)
        .and_then(|()| policy::check_env(&req.env, bot.policy))
        .and_then(|()| policy::resolve_cwd(cwd, bot.policy, in_container));
    let cwd = match checked {
        Ok(cwd) => cwd,
        Err(refusal) => {
            record.outcome = match refusal.status {
                StatusCode::FORBIDDEN => Outcome::Forbidden,
                StatusCode::INTERNAL_SERVER_ERROR => Outcome::Failed,
                _ => Outcome::Rejected,
            };
            return message(refusal.status, refusal.message);
        }
    };
    let max = target.limits.max_stdio_connections_per_bot;
    if stdio.count_for(bot.id) >= max {
        record.outcome = Outcome::Overloaded;
        return message(
            StatusCode::TOO_MANY_REQUESTS,
            format!("bot already has {max} stdio connections, its limit"),
        );
    }
    let spec = match &target.config.backend {
        // A bot with a container runs the command inside it, with the
        // container's environment (never the gateway's) under the request's.
        BackendSpec::Containerd(c) => BackendSpec::Containerd(c.with_command(ExecCommand {
            command,
            args: req.args,
            env: req.env,
            cwd,
            user: bot.policy.user,
        })),
        // A local one inherits only the small allowlist of the gateway's
        // variables, under the request's.
        _ => BackendSpec::Process(ProcessBackend {
            command: command.into(),
            args: req.args,
            env: req.env,
            inherit_env: InheritEnv::Allowlist,
            cwd: cwd.map(Into::into),
            user: bot.policy.user,
        }),
    };
    let connection_id = crate::ids::uuid_v4();
    let name = req.name.trim().to_owned();
    let backend = target.launch_with(&spec, format!("bot {}/{}", bot.id, name), true);
    match tokio::time::timeout(START_TIMEOUT, backend.upstream.ready()).await {
        Ok(Ok(_)) => {}
        Ok(Err(e)) => {
            backend.upstream.close().await;
            record.outcome = Outcome::Failed;
            return message(StatusCode::INTERNAL_SERVER_ERROR, e.to_string());
        }
        Err(_) => {
            backend.upstream.close().await;
            record.outcome = Outcome::Failed;
            return message(
                StatusCode::INTERNAL_SERVER_ERROR,
                "the stdio server did not start in time",
            );
        }
    }
    let tools = probe_tools(&backend.upstream).await.unwrap_or_else(|e| {
        warn!(bot = %bot.id, name = %name, error = %e, "mcp stdio tools probe failed");
        Vec::new()
    });
    let conn = Arc::new(StdioConnection {
        bot_id: bot.id.to_owned(),
        name,
        target,
        backend,
        last_used: Mutex::new(Instant::now()),
    });
    stdio.map.lock().insert(connection_id.clone(), conn);
    record.outcome = Outcome::Ok;
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
                deadline: Deadline::After(PROBE_TIMEOUT),
                ..RequestOptions::default()
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
    stdio: &StdioConnections,
    bot_id: &str,
    connection_id: &str,
) -> Result<Arc<StdioConnection>, (StatusCode, &'static str)> {
    let connection_id = connection_id.trim();
    if connection_id.is_empty() {
        return Err((StatusCode::BAD_REQUEST, "connection_id is required"));
    }
    match stdio.get(connection_id) {
        Some(c) if c.bot_id == bot_id => {
            if c.backend.upstream.status().closed {
                Err((StatusCode::NOT_FOUND, "mcp connection closed"))
            } else {
                Ok(c)
            }
        }
        _ => Err((StatusCode::NOT_FOUND, "mcp connection not found")),
    }
}

/// `POST /bots/{bot_id}/mcp-stdio/{connection_id}`.
pub(crate) async fn call_stdio(
    ctx: &Context,
    stdio: &StdioConnections,
    bot_id: &str,
    connection_id: &str,
    headers: &HeaderMap,
    body: Body,
) -> Response {
    let conn = match connection(stdio, bot_id, connection_id) {
        Ok(c) => c,
        Err((status, text)) => return message(status, text),
    };
    *conn.last_used.lock() = Instant::now();
    let limits = conn.target.limits.clone();
    let served = Served::Target {
        target: conn.target.clone(),
        backend: conn.backend.clone(),
        // A server the bot started itself: no target policy speaks of it.
        access: crate::config::Access::all(),
    };
    rpc(ctx, served, headers, body, &limits).await
}

/// `DELETE /bots/{bot_id}/mcp-stdio/{connection_id}`: stops it (204).
pub(crate) async fn delete_stdio(
    ctx: &Context,
    stdio: &StdioConnections,
    bot_id: &str,
    connection_id: &str,
) -> Response {
    let conn = match connection(stdio, bot_id, connection_id) {
        Ok(c) => c,
        Err((status, text)) => return message(status, text),
    };
    let mut record = Record::new(&ctx.metrics, conn.target.name(), Operation::StdioDelete);
    stdio.map.lock().remove(connection_id.trim());
    conn.backend.upstream.close().await;
    info!(bot = %bot_id, name = %conn.name, "mcp-stdio connection stopped");
    record.outcome = Outcome::Ok;
    StatusCode::NO_CONTENT.into_response()
}

//! The Memoh-compatible `/bots/{bot_id}/…` routes: who the bot is, whether
//! the caller may use it (its own tokens, or the global ones), and which
//! target serves it — a configured bot (its container checked when its
//! target is a containerd one), or, with `[containerd] serve_bots`, any bot
//! whose container checks out (400 / 403 / 404 otherwise).

use std::sync::Arc;

use axum::body::Body;
use axum::extract::{Path, State};
use axum::response::{IntoResponse, Response};
use http::{HeaderMap, StatusCode};
use tracing::Instrument;

use super::app::App;
use super::auth::Authorized;
use super::resource;
use crate::config::{Access, BotConfig, StdioPolicy};
use crate::front::memoh::{self, StdioBot};
use crate::targets::{Target, check_target};
use crate::web::errors::{ApiError, message};

/// Why a bot request was refused before any JSON-RPC.
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

const NOT_FOUND: &str = "container not found for bot";

async fn bot<'a>(
    app: &'a App,
    bot_id: &str,
    headers: &HeaderMap,
) -> Result<(&'a BotConfig, Authorized), Refusal> {
    if bot_id.trim().is_empty() {
        return Err(Refusal::Message(
            StatusCode::BAD_REQUEST,
            "bot id is required",
        ));
    }
    let auth = |e: ApiError| Refusal::Auth(Box::new(e));
    let metadata =
        || resource::base_url(app, None, headers).map(|b| resource::metadata_url(&b, None));
    match app.config.bots.get(bot_id) {
        Some(bot) => {
            let who = app
                .authorize(bot.tokens.as_ref(), headers, metadata)
                .await
                .map_err(auth)?;
            Ok((bot, who))
        }
        None => {
            app.authorize(None, headers, metadata).await.map_err(auth)?;
            Err(Refusal::Message(StatusCode::NOT_FOUND, NOT_FOUND))
        }
    }
}

/// A bot and the target serving it.
struct Resolved<'a> {
    id: &'a str,
    allow_local_stdio: bool,
    stdio: &'a StdioPolicy,
    target: Arc<Target>,
    who: Authorized,
}

async fn resolve<'a>(
    app: &'a App,
    bot_id: &'a str,
    headers: &HeaderMap,
) -> Result<Resolved<'a>, Response> {
    match bot(app, bot_id, headers).await {
        Ok((bot, _)) if app.aggregates.contains_key(&bot.target) => Err(message(
            StatusCode::BAD_REQUEST,
            "this bot's target is an aggregate: only its fs-mcp route serves it",
        )),
        Ok((bot, who)) => {
            let Some(target) = app.targets.get(&bot.target).cloned() else {
                return Err(message(StatusCode::NOT_FOUND, NOT_FOUND));
            };
            check_target(&target)
                .await
                .map_err(IntoResponse::into_response)?;
            Ok(Resolved {
                id: bot_id,
                allow_local_stdio: bot.allow_local_stdio,
                stdio: &bot.stdio,
                target,
                who,
            })
        }
        Err(Refusal::Message(StatusCode::NOT_FOUND, _)) if app.bot_containers.is_some() => {
            // `bot` checked the global credentials already; this says whose.
            let metadata =
                || resource::base_url(app, None, headers).map(|b| resource::metadata_url(&b, None));
            let who = app
                .authorize(None, headers, metadata)
                .await
                .map_err(IntoResponse::into_response)?;
            let Some(bots) = app.bot_containers.as_ref() else {
                return Err(message(StatusCode::NOT_FOUND, NOT_FOUND));
            };
            let target = bots
                .target(&app.targets, bot_id)
                .await
                .map_err(IntoResponse::into_response)?;
            Ok(Resolved {
                id: bot_id,
                allow_local_stdio: false,
                stdio: &StdioPolicy::OPEN,
                target,
                who,
            })
        }
        Err(r) => Err(r.into_response()),
    }
}

/// Auth and bot-id checks of the `mcp-stdio/{connection_id}` routes (the
/// connection itself says whose it is).
async fn stdio_bot(app: &App, bot_id: &str, headers: &HeaderMap) -> Result<(), Refusal> {
    match bot(app, bot_id, headers).await {
        Ok(_) => Ok(()),
        Err(Refusal::Message(StatusCode::NOT_FOUND, _)) if app.bot_containers.is_some() => Ok(()),
        Err(r) => Err(r),
    }
}

/// The Memoh MCP route, as spans name it (`http.route`).
const FS_MCP_ROUTE: &str = "/bots/{bot_id}/container/fs-mcp";
const STDIO_ROUTE: &str = "/bots/{bot_id}/mcp-stdio";
const STDIO_CONNECTION_ROUTE: &str = "/bots/{bot_id}/mcp-stdio/{connection_id}";

/// The span of one Memoh request: the HTTP server span when telemetry is
/// on, else one that gives its log lines the bot.
fn memoh_span(http_method: &str, route: &str, bot_id: &str, headers: &HeaderMap) -> tracing::Span {
    crate::telemetry::http_span(http_method, route, bot_id, headers).unwrap_or_else(|| {
        tracing::info_span!(
            "memoh",
            bot = %bot_id,
            method = tracing::field::Empty,
            session = tracing::field::Empty
        )
    })
}

/// `POST /bots/{bot_id}/container/fs-mcp`.
pub(super) async fn fs_mcp(
    State(app): State<Arc<App>>,
    Path(bot_id): Path<String>,
    headers: HeaderMap,
    body: Body,
) -> Response {
    let span = memoh_span("POST", FS_MCP_ROUTE, &bot_id, &headers);
    async move {
        if let Some(aggregate) = app
            .config
            .bots
            .get(&bot_id)
            .and_then(|b| app.aggregates.get(&b.target))
            .cloned()
        {
            let who = match bot(&app, &bot_id, &headers).await {
                Ok((_, who)) => who,
                Err(r) => return r.into_response(),
            };
            let served = memoh::Served::Aggregate {
                aggregate,
                identity: who.identity,
            };
            return memoh::rpc(&app.ctx, served, &headers, body, &app.config.limits).await;
        }
        let (target, who) = match resolve(&app, &bot_id, &headers).await {
            Ok(r) => (r.target, r.who),
            Err(r) => return r,
        };
        let served = memoh::Served::Target {
            backend: target.shared_backend(),
            access: Access::of(target.config.policy.as_ref(), who.identity),
            target,
        };
        memoh::rpc(&app.ctx, served, &headers, body, &app.config.limits).await
    }
    .instrument(span)
    .await
}

/// `POST /bots/{bot_id}/mcp-stdio`.
pub(super) async fn create_stdio(
    State(app): State<Arc<App>>,
    Path(bot_id): Path<String>,
    headers: HeaderMap,
    body: Body,
) -> Response {
    let span = memoh_span("POST", STDIO_ROUTE, &bot_id, &headers);
    async move {
        let resolved = match resolve(&app, &bot_id, &headers).await {
            Ok(r) => r,
            Err(r) => return r,
        };
        let bot = StdioBot {
            id: resolved.id,
            allow_local_stdio: resolved.allow_local_stdio,
            policy: resolved.stdio,
        };
        memoh::create_stdio(&app.ctx, &app.stdio, bot, resolved.target, &headers, body).await
    }
    .instrument(span)
    .await
}

/// `POST /bots/{bot_id}/mcp-stdio/{connection_id}`.
pub(super) async fn call_stdio(
    State(app): State<Arc<App>>,
    Path((bot_id, connection_id)): Path<(String, String)>,
    headers: HeaderMap,
    body: Body,
) -> Response {
    let span = memoh_span("POST", STDIO_CONNECTION_ROUTE, &bot_id, &headers);
    async move {
        if let Err(r) = stdio_bot(&app, &bot_id, &headers).await {
            return r.into_response();
        }
        memoh::call_stdio(
            &app.ctx,
            &app.stdio,
            &bot_id,
            &connection_id,
            &headers,
            body,
        )
        .await
    }
    .instrument(span)
    .await
}

/// `DELETE /bots/{bot_id}/mcp-stdio/{connection_id}`: stops it (204).
pub(super) async fn delete_stdio(
    State(app): State<Arc<App>>,
    Path((bot_id, connection_id)): Path<(String, String)>,
    headers: HeaderMap,
) -> Response {
    let span = memoh_span("DELETE", STDIO_CONNECTION_ROUTE, &bot_id, &headers);
    async move {
        if let Err(r) = stdio_bot(&app, &bot_id, &headers).await {
            return r.into_response();
        }
        memoh::delete_stdio(&app.ctx, &app.stdio, &bot_id, &connection_id).await
    }
    .instrument(span)
    .await
}

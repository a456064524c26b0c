//! The read loop, shared state and method dispatch.

use std::borrow::Cow;
use std::collections::HashMap;
use std::io::{self, BufRead, Write};
use std::sync::{Arc, Mutex, MutexGuard};

use serde::Deserialize;
use serde_json::value::RawValue;
use serde_json::{Value, json};

use crate::call::{Call, Reply, lock};
use crate::catalog;
use crate::envelope::{self, Inbound, RpcError, id_key};
use crate::era::{self, Era, Level, MODERN_VERSIONS};
use crate::output::Outbox;
use crate::reader::{Line, LineReader};
use crate::tools;
use crate::{Config, INSTRUCTIONS, SERVER_NAME, SERVER_VERSION};

/// How many cancelled request ids `stats` remembers (the oldest are dropped).
const CANCELLED_MEMORY: usize = 1024;

/// A request that is still open after its handler returned.
pub(crate) enum InFlight {
    /// A worker thread will answer it (or drop it when cancelled).
    Call(Arc<Call>),
    /// A `subscriptions/listen` stream; never answered, closed by cancellation.
    Listen {
        /// The listen request's id, which tags its notifications.
        id: Box<RawValue>,
        /// Whether the client opted in to `notifications/tools/list_changed`.
        tools: bool,
    },
}

/// Everything the reading thread and worker threads share.
#[derive(Default)]
pub(crate) struct State {
    /// `initialize` requests served.
    pub(crate) initialize_count: u64,
    /// Requests received (every message with an id and a method).
    pub(crate) requests: u64,
    /// Ids named by `notifications/cancelled`, oldest first, verbatim.
    pub(crate) cancelled: Vec<Box<RawValue>>,
    /// Open requests by [`id_key`].
    pub(crate) in_flight: HashMap<String, InFlight>,
    /// Server-to-client requests awaiting the client's response, by [`id_key`].
    pub(crate) asks: HashMap<String, Arc<Call>>,
    /// Counter for server-to-client request ids.
    pub(crate) next_ask: u64,
    /// Counter making each MRTR `requestState` distinct.
    pub(crate) next_request_state: u64,
    /// Legacy `logging/setLevel` threshold (`None`: send every level).
    pub(crate) log_threshold: Option<Level>,
    /// Set at EOF: workers finish silently.
    pub(crate) shutting_down: bool,
}

/// State shared by the reading thread and the workers it starts.
pub(crate) struct Shared {
    pub(crate) config: Config,
    pub(crate) out: Outbox,
    state: Mutex<State>,
}

impl Shared {
    pub(crate) fn state(&self) -> MutexGuard<'_, State> {
        lock(&self.state)
    }
}

/// A request being served.
pub(crate) struct Request<'a> {
    pub(crate) id: &'a RawValue,
    pub(crate) era: Era,
    pub(crate) meta: era::Meta<'a>,
    pub(crate) params: Option<&'a RawValue>,
}

/// What a handler produced.
pub(crate) enum Answer {
    /// The result, to send now (the era's markers are added by the caller).
    Now(Value),
    /// Someone else answers later (a worker thread), or nobody (a listen stream).
    Later,
}

/// Parses `params` into `T`; absent params parse as `{}`.
pub(crate) fn parse_params<'a, T: Deserialize<'a>>(
    params: Option<&'a RawValue>,
) -> Result<T, RpcError> {
    let text = params.map_or("{}", RawValue::get);
    if !text.starts_with('{') {
        return Err(RpcError::invalid_params("params must be an object"));
    }
    serde_json::from_str(text).map_err(RpcError::invalid_params)
}

/// Serves MCP on `input`/`output` until `input` reaches EOF.
pub(crate) fn serve<R, W>(config: Config, input: R, output: W) -> io::Result<()>
where
    R: BufRead,
    W: Write + Send + 'static,
{
    let max_line = config.max_line_bytes;
    let shared = Arc::new(Shared {
        config,
        out: Outbox::new(Box::new(output)),
        state: Mutex::new(State::default()),
    });
    let mut reader = LineReader::new(input, max_line);
    let outcome = loop {
        let step = match reader.next_line() {
            Ok(Line::Data(bytes)) => handle_line(&shared, bytes),
            Ok(Line::TooLong) => shared.out.send(&envelope::error_response(
                None,
                &RpcError::invalid_request(format!("message longer than {max_line} bytes")),
            )),
            Ok(Line::Eof) => break Ok(()),
            Err(e) => break Err(e),
        };
        if let Err(e) = step {
            break Err(e);
        }
    };
    shut_down(&shared);
    outcome
}

/// Cancels every worker so none of them writes after the input closed.
fn shut_down(shared: &Shared) {
    let mut state = shared.state();
    state.shutting_down = true;
    for open in state.in_flight.values() {
        if let InFlight::Call(call) = open {
            call.cancel();
        }
    }
}

/// Handles one line; only a failure to write is an error.
fn handle_line(shared: &Arc<Shared>, bytes: &[u8]) -> io::Result<()> {
    let Ok(text) = std::str::from_utf8(bytes) else {
        return shared.out.send(&envelope::error_response(
            None,
            &RpcError::parse_error("line is not valid UTF-8"),
        ));
    };
    if text.trim().is_empty() {
        return Ok(());
    }
    match envelope::decode(text) {
        Inbound::Request { id, method, params } => {
            let answer = handle_request(shared, id, &method, params);
            match answer {
                Ok((era, Answer::Now(result))) => shared
                    .out
                    .send(&envelope::response(id, &era::finish(era, result))),
                Ok((_, Answer::Later)) => Ok(()),
                Err(error) => shared.out.send(&envelope::error_response(Some(id), &error)),
            }
        }
        Inbound::Notification { method, params } => {
            handle_notification(shared, &method, params);
            Ok(())
        }
        Inbound::Response { id, body, is_error } => {
            handle_response(shared, id, body, is_error);
            Ok(())
        }
        Inbound::Invalid { id, error } => shared.out.send(&envelope::error_response(id, &error)),
    }
}

/// Methods that exist only in the legacy era.
const LEGACY_ONLY: &[&str] = &["initialize", "ping", "logging/setLevel"];

fn handle_request(
    shared: &Arc<Shared>,
    id: &RawValue,
    method: &str,
    params: Option<&RawValue>,
) -> Result<(Era, Answer), RpcError> {
    {
        let mut state = shared.state();
        state.requests += 1;
        if !state.in_flight.is_empty() && state.in_flight.contains_key(&id_key(id)) {
            return Err(RpcError::invalid_request(
                "id is already used by a request still in flight",
            ));
        }
    }
    let meta = era::read_meta(params)?;
    let era = era::era_of(&meta, shared.config.modern)?;
    if era == Era::Legacy && !shared.config.legacy {
        return Err(if LEGACY_ONLY.contains(&method) {
            RpcError::method_not_found(method)
        } else {
            RpcError::invalid_params(format!(
                "this server speaks only {}: params._meta must name {}",
                MODERN_VERSIONS.join(", "),
                era::META_PROTOCOL_VERSION
            ))
        });
    }
    let request = Request {
        id,
        era,
        meta,
        params,
    };
    let answer = match (method, era) {
        ("initialize", Era::Legacy) => Answer::Now(initialize(shared, params)?),
        ("ping", Era::Legacy) => Answer::Now(json!({})),
        ("logging/setLevel", Era::Legacy) => Answer::Now(set_level(shared, params)?),
        ("server/discover", _) if shared.config.modern => Answer::Now(discover()),
        ("subscriptions/listen", Era::Modern) => listen(shared, &request)?,
        ("tools/list", _) => Answer::Now(tools::list(era, &shared.config, params)?),
        ("tools/call", _) => tools::call(shared, &request)?,
        ("resources/list", _) => Answer::Now(catalog::list_resources(era)),
        ("resources/templates/list", _) => Answer::Now(catalog::list_resource_templates(era)),
        ("resources/read", _) => Answer::Now(catalog::read_resource(era, params)?),
        ("prompts/list", _) => Answer::Now(catalog::list_prompts(era)),
        ("prompts/get", _) => Answer::Now(catalog::get_prompt(params)?),
        _ => return Err(RpcError::method_not_found(method)),
    };
    // A legacy caller of server/discover still gets a modern-shaped result.
    let era = if method == "server/discover" {
        Era::Modern
    } else {
        era
    };
    Ok((era, answer))
}

/// `serverInfo` / `_meta["io.modelcontextprotocol/serverInfo"]`.
pub(crate) fn server_info() -> Value {
    json!({ "name": SERVER_NAME, "title": "mcpod demo server", "version": SERVER_VERSION })
}

fn capabilities() -> Value {
    json!({
        "tools": { "listChanged": true },
        "resources": {},
        "prompts": {},
        "logging": {},
    })
}

#[derive(Deserialize)]
struct InitializeParams<'a> {
    #[serde(rename = "protocolVersion", borrow, default)]
    protocol_version: Option<Cow<'a, str>>,
}

fn initialize(shared: &Shared, params: Option<&RawValue>) -> Result<Value, RpcError> {
    let InitializeParams { protocol_version } = parse_params(params)?;
    shared.state().initialize_count += 1;
    Ok(json!({
        "protocolVersion": era::negotiate_legacy(protocol_version.as_deref()),
        "capabilities": capabilities(),
        "serverInfo": server_info(),
        "instructions": INSTRUCTIONS,
    }))
}

fn discover() -> Value {
    json!({
        "supportedVersions": MODERN_VERSIONS,
        "capabilities": capabilities(),
        "instructions": INSTRUCTIONS,
        "cacheScope": "public",
        "ttlMs": 0,
        "_meta": { "io.modelcontextprotocol/serverInfo": server_info() },
    })
}

#[derive(Deserialize)]
struct SetLevelParams {
    level: Level,
}

fn set_level(shared: &Shared, params: Option<&RawValue>) -> Result<Value, RpcError> {
    let SetLevelParams { level } = parse_params(params)?;
    shared.state().log_threshold = Some(level);
    Ok(json!({}))
}

#[derive(Deserialize)]
struct ListenParams {
    notifications: SubscriptionFilter,
}

#[derive(Deserialize)]
struct SubscriptionFilter {
    #[serde(rename = "toolsListChanged", default)]
    tools_list_changed: bool,
}

/// `subscriptions/listen`: acknowledge, then keep the stream open until cancelled.
fn listen(shared: &Shared, request: &Request<'_>) -> Result<Answer, RpcError> {
    let ListenParams { notifications } = parse_params(request.params)?;
    // Only tool-list changes ever happen here; other kinds are left out of
    // the acknowledgement, as the specification asks.
    let honoured = if notifications.tools_list_changed {
        json!({ "toolsListChanged": true })
    } else {
        json!({})
    };
    shared.state().in_flight.insert(
        id_key(request.id),
        InFlight::Listen {
            id: request.id.to_owned(),
            tools: notifications.tools_list_changed,
        },
    );
    shared.out.emit(&envelope::notification(
        "notifications/subscriptions/acknowledged",
        Some(&json!({
            "notifications": honoured,
            "_meta": { "io.modelcontextprotocol/subscriptionId": request.id },
        })),
    ));
    Ok(Answer::Later)
}

#[derive(Deserialize)]
struct CancelledParams<'a> {
    #[serde(rename = "requestId", borrow)]
    request_id: &'a RawValue,
}

fn handle_notification(shared: &Shared, method: &str, params: Option<&RawValue>) {
    if method != "notifications/cancelled" {
        // notifications/initialized, roots/list_changed, …: nothing to do.
        return;
    }
    let request_id = match parse_params::<CancelledParams<'_>>(params) {
        Ok(p) => p.request_id,
        Err(e) => {
            eprintln!("mcpod-demo: ignoring malformed notifications/cancelled: {e:?}");
            return;
        }
    };
    let mut state = shared.state();
    if state.cancelled.len() == CANCELLED_MEMORY {
        state.cancelled.remove(0);
    }
    state.cancelled.push(request_id.to_owned());
    let key = id_key(request_id);
    match state.in_flight.get(&key) {
        Some(InFlight::Call(call)) => call.cancel(),
        Some(InFlight::Listen { .. }) => {
            state.in_flight.remove(&key);
        }
        None => {}
    }
}

fn handle_response(shared: &Shared, id: &RawValue, body: &RawValue, is_error: bool) {
    let waiting = shared.state().asks.remove(&id_key(id));
    match waiting {
        Some(call) => call.deliver(Reply {
            is_error,
            body: body.to_owned(),
        }),
        None => eprintln!(
            "mcpod-demo: ignoring a response to unknown request {}",
            id.get()
        ),
    }
}

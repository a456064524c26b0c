//! The demo tools: their definitions (`tools/list`) and behaviour (`tools/call`).
//!
//! Fast tools answer on the reading thread. `sleep`, `progress` and legacy
//! `ask` run on a worker thread each, registered in [`State::in_flight`] so
//! `notifications/cancelled` can stop them.
//!
//! [`State::in_flight`]: crate::server::State

use std::borrow::Cow;
use std::collections::HashMap;
use std::sync::{Arc, OnceLock};
use std::thread;
use std::time::Duration;

use serde::Deserialize;
use serde::de::DeserializeOwned;
use serde_json::value::RawValue;
use serde_json::{Number, Value, json};

use crate::Config;
use crate::call::Call;
use crate::envelope::{self, RpcError, id_key};
use crate::era::{self, Era, Level};
use crate::server::{Answer, InFlight, Request, Shared, parse_params};

/// Longest `sleep` accepted, in milliseconds.
const MAX_SLEEP_MS: u64 = 600_000;
/// Most `progress` steps accepted.
const MAX_STEPS: u64 = 10_000;
/// Longest `progress` delay per step, in milliseconds.
const MAX_STEP_DELAY_MS: u64 = 60_000;
/// `progress` delay per step when the caller gives none.
const DEFAULT_STEP_DELAY_MS: u64 = 10;
/// Largest `big` result, in bytes.
const MAX_BIG_BYTES: u64 = 64 * 1024 * 1024;
/// The line the `garbage` tool writes to stdout.
pub(crate) const GARBAGE_LINE: &[u8] = b"this line is not JSON: the garbage tool wrote it\n";
/// Exit status of the `crash` tool.
pub(crate) const CRASH_STATUS: i32 = 3;
/// Key of the single input request an MRTR `ask` result carries.
const INPUT_KEY: &str = "q";
/// Prefix of the opaque `requestState` of an MRTR `ask`.
const REQUEST_STATE_PREFIX: &str = "mcpod-demo.ask.v1";

/// Names of the tools, in `tools/list` order.
pub const TOOL_NAMES: &[&str] = &[
    "echo",
    "add",
    "sleep",
    "progress",
    "fail",
    "crash",
    "garbage",
    "big",
    "ask",
    "notify_change",
    "log",
    "stats",
    "env",
    "meta",
];

fn definitions() -> &'static Value {
    static TOOLS: OnceLock<Value> = OnceLock::new();
    TOOLS.get_or_init(|| {
        let none = json!({ "type": "object", "properties": {} });
        json!([
            {
                "name": "echo",
                "description": "Returns its text argument as text content.",
                "inputSchema": {
                    "type": "object",
                    "properties": { "text": { "type": "string" } },
                    "required": ["text"],
                },
            },
            {
                "name": "add",
                "description": "Adds two numbers; the sum comes as text and as structuredContent {sum}.",
                "inputSchema": {
                    "type": "object",
                    "properties": { "a": { "type": "number" }, "b": { "type": "number" } },
                    "required": ["a", "b"],
                },
                "outputSchema": {
                    "type": "object",
                    "properties": { "sum": { "type": "number" } },
                    "required": ["sum"],
                },
            },
            {
                "name": "sleep",
                "description": "Sleeps ms milliseconds, then answers. Cancellable: after notifications/cancelled it never answers.",
                "inputSchema": {
                    "type": "object",
                    "properties": { "ms": { "type": "integer", "minimum": 0, "maximum": MAX_SLEEP_MS } },
                    "required": ["ms"],
                },
            },
            {
                "name": "progress",
                "description": "Sends notifications/progress 1..steps (total steps) to the caller's progressToken, delay_ms apart (default 10), then answers. Cancellable.",
                "inputSchema": {
                    "type": "object",
                    "properties": {
                        "steps": { "type": "integer", "minimum": 0, "maximum": MAX_STEPS },
                        "delay_ms": { "type": "integer", "minimum": 0, "maximum": MAX_STEP_DELAY_MS },
                    },
                    "required": ["steps"],
                },
            },
            {
                "name": "fail",
                "description": "Always fails: a tool result with isError true.",
                "inputSchema": {
                    "type": "object",
                    "properties": { "message": { "type": "string" } },
                },
            },
            {
                "name": "crash",
                "description": "Exits the server process at once with status 3, without answering.",
                "inputSchema": none,
            },
            {
                "name": "garbage",
                "description": "Writes a line that is not JSON to stdout, then answers normally.",
                "inputSchema": none,
            },
            {
                "name": "big",
                "description": "Returns a text result of exactly `bytes` bytes.",
                "inputSchema": {
                    "type": "object",
                    "properties": { "bytes": { "type": "integer", "minimum": 0, "maximum": MAX_BIG_BYTES } },
                    "required": ["bytes"],
                },
            },
            {
                "name": "ask",
                "description": "Asks the client for sampling, roots or elicitation (a server-to-client request in the legacy era, an input_required result in 2026-07-28) and returns the client's answer as text.",
                "inputSchema": {
                    "type": "object",
                    "properties": {
                        "kind": { "type": "string", "enum": ["sampling", "roots", "elicitation"] },
                        "prompt": { "type": "string", "description": "the text of the question (sampling, elicitation)" },
                    },
                    "required": ["kind"],
                },
            },
            {
                "name": "notify_change",
                "description": "Emits notifications/tools/list_changed (legacy sessions, and 2026-07-28 subscriptions that opted in), then answers.",
                "inputSchema": none,
            },
            {
                "name": "log",
                "description": "Emits notifications/message at level (default info) if the caller's log level lets it through, then answers {\"emitted\": bool}.",
                "inputSchema": {
                    "type": "object",
                    "properties": {
                        "level": {
                            "type": "string",
                            "enum": ["debug", "info", "notice", "warning", "error", "critical", "alert", "emergency"],
                        },
                        "message": { "type": "string" },
                    },
                    "required": ["message"],
                },
            },
            {
                "name": "stats",
                "description": "Returns server counters as JSON text: initialize_count, requests, cancelled (ids seen in notifications/cancelled), in_flight, pid.",
                "inputSchema": none,
            },
            {
                "name": "env",
                "description": "Returns environment variables of the server process as a JSON object text: each of names (null when unset) and every variable whose name starts with prefix.",
                "inputSchema": {
                    "type": "object",
                    "properties": {
                        "names": { "type": "array", "items": { "type": "string" } },
                        "prefix": { "type": "string" },
                    },
                },
            },
            {
                "name": "meta",
                "description": "Returns the request's params._meta as JSON text ({} when it has none): what a gateway added, such as traceparent.",
                "inputSchema": none,
            },
        ])
    })
}

#[derive(Deserialize)]
struct ListParams<'a> {
    #[serde(borrow, default)]
    cursor: Option<Cow<'a, str>>,
}

/// `tools/list`: the tools `config` serves, a page of `config.page_size`
/// at a time (the cursor is the index of the page's first tool).
pub(crate) fn list(
    era: Era,
    config: &Config,
    params: Option<&RawValue>,
) -> Result<Value, RpcError> {
    let ListParams { cursor } = parse_params(params)?;
    let served: Vec<&Value> = definitions()
        .as_array()
        .into_iter()
        .flatten()
        .filter(|t| t["name"].as_str().is_some_and(|n| serves(config, n)))
        .collect();
    let start = match cursor.as_deref() {
        None => 0,
        Some(c) => c
            .parse::<usize>()
            .ok()
            .filter(|n| *n < served.len())
            .ok_or_else(|| RpcError::invalid_params(format!("invalid cursor: {c}")))?,
    };
    let size = config.page_size.unwrap_or(served.len().max(1));
    let end = (start + size).min(served.len());
    let mut result = json!({ "tools": served[start..end] });
    if end < served.len() {
        result["nextCursor"] = json!(end.to_string());
    }
    Ok(era::cacheable(era, result))
}

/// Whether `config` serves tool `name`.
fn serves(config: &Config, name: &str) -> bool {
    config
        .tools
        .as_ref()
        .is_none_or(|t| t.iter().any(|n| n == name))
}

#[derive(Deserialize)]
struct CallParams<'a> {
    #[serde(borrow)]
    name: Cow<'a, str>,
    #[serde(borrow, default)]
    arguments: Option<&'a RawValue>,
    #[serde(rename = "inputResponses", borrow, default)]
    input_responses: Option<&'a RawValue>,
    #[serde(rename = "requestState", borrow, default)]
    request_state: Option<Cow<'a, str>>,
}

#[derive(Deserialize)]
struct EchoArgs {
    text: String,
}

#[derive(Deserialize)]
struct AddArgs {
    a: Number,
    b: Number,
}

#[derive(Deserialize)]
struct SleepArgs {
    ms: u64,
}

#[derive(Deserialize)]
struct ProgressArgs {
    steps: u64,
    #[serde(default)]
    delay_ms: Option<u64>,
}

#[derive(Deserialize)]
struct FailArgs {
    #[serde(default)]
    message: Option<String>,
}

#[derive(Deserialize)]
struct BigArgs {
    bytes: u64,
}

#[derive(Deserialize, Clone, Copy, PartialEq, Eq, Debug)]
#[serde(rename_all = "lowercase")]
enum AskKind {
    Sampling,
    Roots,
    Elicitation,
}

#[derive(Deserialize)]
struct AskArgs {
    kind: AskKind,
    /// The question's text (sampling and elicitation), instead of the
    /// default one: lets a caller tell its question from another's.
    #[serde(default)]
    prompt: Option<String>,
}

#[derive(Deserialize)]
struct EnvArgs {
    #[serde(default)]
    names: Vec<String>,
    #[serde(default)]
    prefix: Option<String>,
}

#[derive(Deserialize)]
struct LogArgs {
    #[serde(default)]
    level: Option<Level>,
    message: String,
}

/// Tools without arguments accept any object (extra members are ignored).
#[derive(Deserialize)]
struct NoArgs {}

/// Parses a tool's `arguments` (absent or `null` parse as `{}`).
fn arguments<T: DeserializeOwned>(tool: &str, raw: Option<&RawValue>) -> Result<T, RpcError> {
    let text = raw.map_or("{}", RawValue::get);
    let text = if text == "null" { "{}" } else { text };
    if !text.starts_with('{') {
        return Err(RpcError::invalid_params(format!(
            "arguments of tool {tool} must be an object"
        )));
    }
    serde_json::from_str(text)
        .map_err(|e| RpcError::invalid_params(format!("arguments of tool {tool}: {e}")))
}

fn text_result(text: impl Into<String>) -> Value {
    json!({ "content": [{ "type": "text", "text": text.into() }] })
}

fn tool_error(text: impl Into<String>) -> Value {
    json!({ "content": [{ "type": "text", "text": text.into() }], "isError": true })
}

fn at_most(tool: &str, field: &str, value: u64, max: u64) -> Result<(), RpcError> {
    if value > max {
        return Err(RpcError::invalid_params(format!(
            "{tool}: {field} must be at most {max}"
        )));
    }
    Ok(())
}

/// `tools/call`.
pub(crate) fn call(shared: &Arc<Shared>, request: &Request<'_>) -> Result<Answer, RpcError> {
    let params: CallParams<'_> = parse_params(request.params)?;
    let raw = params.arguments;
    let name = params.name.as_ref();
    if !serves(&shared.config, name) {
        return Err(RpcError::invalid_params(format!("unknown tool: {name}")));
    }
    match name {
        "echo" => {
            let EchoArgs { text } = arguments(name, raw)?;
            Ok(Answer::Now(text_result(text)))
        }
        "add" => {
            let AddArgs { a, b } = arguments(name, raw)?;
            Ok(Answer::Now(add(&a, &b)))
        }
        "sleep" => {
            let SleepArgs { ms } = arguments(name, raw)?;
            at_most(name, "ms", ms, MAX_SLEEP_MS)?;
            start(shared, request, name, move |_, call| {
                call.sleep(Duration::from_millis(ms))
                    .then(|| text_result(format!("slept {ms} ms")))
            })
        }
        "progress" => {
            let ProgressArgs { steps, delay_ms } = arguments(name, raw)?;
            let delay_ms = delay_ms.unwrap_or(DEFAULT_STEP_DELAY_MS);
            at_most(name, "steps", steps, MAX_STEPS)?;
            at_most(name, "delay_ms", delay_ms, MAX_STEP_DELAY_MS)?;
            let token = request.meta.progress_token.map(RawValue::to_owned);
            start(shared, request, name, move |shared, call| {
                progress(shared, call, token.as_deref(), steps, delay_ms)
            })
        }
        "fail" => {
            let FailArgs { message } = arguments(name, raw)?;
            Ok(Answer::Now(tool_error(message.unwrap_or_else(|| {
                "the fail tool always fails".to_owned()
            }))))
        }
        "crash" => {
            let NoArgs {} = arguments(name, raw)?;
            eprintln!("mcpod-demo: crash tool called, exiting with status {CRASH_STATUS}");
            std::process::exit(CRASH_STATUS)
        }
        "garbage" => {
            let NoArgs {} = arguments(name, raw)?;
            shared.out.emit(GARBAGE_LINE);
            Ok(Answer::Now(text_result(
                "wrote one line that is not JSON before this answer",
            )))
        }
        "big" => {
            let BigArgs { bytes } = arguments(name, raw)?;
            at_most(name, "bytes", bytes, MAX_BIG_BYTES)?;
            let len = usize::try_from(bytes).map_err(RpcError::invalid_params)?;
            Ok(Answer::Now(text_result("x".repeat(len))))
        }
        "ask" => {
            let AskArgs { kind, prompt } = arguments(name, raw)?;
            match request.era {
                Era::Legacy => start(shared, request, name, move |shared, call| {
                    ask_legacy(shared, call, kind, prompt.as_deref())
                }),
                Era::Modern => {
                    ask_modern(shared, kind, prompt.as_deref(), &params).map(Answer::Now)
                }
            }
        }
        "notify_change" => {
            let NoArgs {} = arguments(name, raw)?;
            Ok(Answer::Now(notify_change(shared, request.era)))
        }
        "log" => {
            let LogArgs { level, message } = arguments(name, raw)?;
            Ok(Answer::Now(log(
                shared,
                request,
                level.unwrap_or(Level::Info),
                message,
            )))
        }
        "stats" => {
            let NoArgs {} = arguments(name, raw)?;
            Ok(Answer::Now(stats(shared)))
        }
        "env" => {
            let EnvArgs { names, prefix } = arguments(name, raw)?;
            Ok(Answer::Now(environment(&names, prefix.as_deref())))
        }
        "meta" => {
            let NoArgs {} = arguments(name, raw)?;
            Ok(Answer::Now(request_meta(request.params)))
        }
        other => Err(RpcError::invalid_params(format!("unknown tool: {other}"))),
    }
}

/// The request's `params._meta` as JSON text content (`{}` when absent).
fn request_meta(params: Option<&RawValue>) -> Value {
    #[derive(Deserialize)]
    struct WithMeta {
        #[serde(rename = "_meta", default)]
        meta: Option<Value>,
    }
    let meta = params
        .and_then(|p| serde_json::from_str::<WithMeta>(p.get()).ok())
        .and_then(|w| w.meta)
        .unwrap_or_else(|| json!({}));
    text_result(meta.to_string())
}

/// Integer sum when both are integers and it fits, else a float sum.
fn add(a: &Number, b: &Number) -> Value {
    let sum = match (a.as_i64(), b.as_i64()) {
        (Some(x), Some(y)) => x.checked_add(y).map(Number::from),
        _ => None,
    }
    .or_else(|| Number::from_f64(a.as_f64()? + b.as_f64()?));
    match sum {
        Some(sum) => json!({
            "content": [{ "type": "text", "text": sum.to_string() }],
            "structuredContent": { "sum": sum },
        }),
        None => tool_error(format!("{a} + {b} is not a finite number")),
    }
}

/// Runs `job` on a worker thread that answers `request` unless it is cancelled.
fn start<F>(
    shared: &Arc<Shared>,
    request: &Request<'_>,
    tool: &str,
    job: F,
) -> Result<Answer, RpcError>
where
    F: FnOnce(&Arc<Shared>, &Arc<Call>) -> Option<Value> + Send + 'static,
{
    let call = Arc::new(Call::default());
    let key = id_key(request.id);
    shared
        .state()
        .in_flight
        .insert(key.clone(), InFlight::Call(Arc::clone(&call)));
    let id = request.id.to_owned();
    let era = request.era;
    let worker_shared = Arc::clone(shared);
    let worker_key = key.clone();
    let spawned = thread::Builder::new()
        .name(format!("mcpod-demo {tool}"))
        .spawn(move || {
            let result = job(&worker_shared, &call);
            let answer = {
                let mut state = worker_shared.state();
                state.in_flight.remove(&worker_key);
                result.filter(|_| !call.is_cancelled())
            };
            if let Some(result) = answer {
                worker_shared
                    .out
                    .emit(&envelope::response(&id, &era::finish(era, result)));
            }
        });
    match spawned {
        Ok(_) => Ok(Answer::Later),
        Err(e) => {
            shared.state().in_flight.remove(&key);
            Err(RpcError::internal(format!("cannot start a worker: {e}")))
        }
    }
}

fn progress(
    shared: &Shared,
    call: &Call,
    token: Option<&RawValue>,
    steps: u64,
    delay_ms: u64,
) -> Option<Value> {
    for step in 1..=steps {
        if !call.sleep(Duration::from_millis(delay_ms)) {
            return None;
        }
        if let Some(token) = token {
            shared.out.emit(&envelope::notification(
                "notifications/progress",
                Some(&json!({
                    "progressToken": token,
                    "progress": step,
                    "total": steps,
                    "message": format!("step {step} of {steps}"),
                })),
            ));
        }
    }
    Some(text_result(format!("completed {steps} steps")))
}

/// The method and params of the request `ask` sends (or embeds, in MRTR),
/// with the caller's `prompt` as its text if it gave one.
fn ask_request(kind: AskKind, prompt: Option<&str>) -> (&'static str, Value) {
    match kind {
        AskKind::Sampling => (
            "sampling/createMessage",
            json!({
                "messages": [{
                    "role": "user",
                    "content": { "type": "text", "text": prompt.unwrap_or("Say hello to mcpod-demo.") },
                }],
                "maxTokens": 64,
            }),
        ),
        AskKind::Roots => ("roots/list", json!({})),
        AskKind::Elicitation => (
            "elicitation/create",
            json!({
                "message": prompt.unwrap_or("What is your name?"),
                "requestedSchema": {
                    "type": "object",
                    "properties": { "name": { "type": "string" } },
                    "required": ["name"],
                },
            }),
        ),
    }
}

fn kind_name(kind: AskKind) -> &'static str {
    match kind {
        AskKind::Sampling => "sampling",
        AskKind::Roots => "roots",
        AskKind::Elicitation => "elicitation",
    }
}

/// Legacy `ask`: a server-to-client request, then wait for the client's response.
fn ask_legacy(
    shared: &Shared,
    call: &Arc<Call>,
    kind: AskKind,
    prompt: Option<&str>,
) -> Option<Value> {
    let (method, params) = ask_request(kind, prompt);
    let ask_id = {
        let mut state = shared.state();
        state.next_ask += 1;
        let id = match RawValue::from_string(format!("\"mcpod-demo-ask-{}\"", state.next_ask)) {
            Ok(id) => id,
            Err(e) => return Some(tool_error(format!("cannot build a request id: {e}"))),
        };
        state.asks.insert(id_key(&id), Arc::clone(call));
        id
    };
    shared
        .out
        .emit(&envelope::request(&ask_id, method, &params));
    match call.wait_reply() {
        Some(reply) if reply.is_error => Some(tool_error(format!(
            "the client answered {method} with an error: {}",
            reply.body.get()
        ))),
        Some(reply) => Some(text_result(reply.body.get())),
        None => {
            let tell_client = {
                let mut state = shared.state();
                state.asks.remove(&id_key(&ask_id));
                !state.shutting_down
            };
            if tell_client {
                shared.out.emit(&envelope::notification(
                    "notifications/cancelled",
                    Some(&json!({
                        "requestId": &ask_id,
                        "reason": "the tools/call that needed this answer was cancelled",
                    })),
                ));
            }
            None
        }
    }
}

/// Modern `ask`: an `input_required` result first, the client's answer on the retry.
fn ask_modern(
    shared: &Shared,
    kind: AskKind,
    prompt: Option<&str>,
    params: &CallParams<'_>,
) -> Result<Value, RpcError> {
    if let (Some(state), Some(responses)) = (&params.request_state, params.input_responses) {
        let asked = parse_request_state(state)?;
        if asked != kind {
            return Err(RpcError::invalid_params(format!(
                "requestState belongs to ask {{kind: {}}}, not {}",
                kind_name(asked),
                kind_name(kind)
            )));
        }
        let responses: HashMap<String, &RawValue> = serde_json::from_str(responses.get())
            .map_err(|e| RpcError::invalid_params(format!("inputResponses: {e}")))?;
        let answer = responses.get(INPUT_KEY).ok_or_else(|| {
            RpcError::invalid_params(format!("inputResponses lacks the key {INPUT_KEY:?}"))
        })?;
        return Ok(text_result(answer.get()));
    }
    let nonce = {
        let mut state = shared.state();
        state.next_request_state += 1;
        state.next_request_state
    };
    let (method, request_params) = ask_request(kind, prompt);
    Ok(json!({
        "resultType": "input_required",
        "inputRequests": { INPUT_KEY: { "method": method, "params": request_params } },
        "requestState": format!("{REQUEST_STATE_PREFIX}.{}.{nonce}", kind_name(kind)),
    }))
}

fn parse_request_state(state: &str) -> Result<AskKind, RpcError> {
    let invalid = || RpcError::invalid_params("requestState was not issued by this server");
    let rest = state
        .strip_prefix(REQUEST_STATE_PREFIX)
        .and_then(|rest| rest.strip_prefix('.'))
        .ok_or_else(invalid)?;
    let (kind, nonce) = rest.split_once('.').ok_or_else(invalid)?;
    nonce.parse::<u64>().map_err(|_| invalid())?;
    match kind {
        "sampling" => Ok(AskKind::Sampling),
        "roots" => Ok(AskKind::Roots),
        "elicitation" => Ok(AskKind::Elicitation),
        _ => Err(invalid()),
    }
}

/// Tells legacy sessions and opted-in modern subscriptions that the tool list changed.
fn notify_change(shared: &Shared, era: Era) -> Value {
    let (legacy, subscriptions) = {
        let state = shared.state();
        let subscriptions: Vec<Box<RawValue>> = state
            .in_flight
            .values()
            .filter_map(|open| match open {
                InFlight::Listen { id, tools: true } => Some(id.clone()),
                _ => None,
            })
            .collect();
        (
            era == Era::Legacy || state.initialize_count > 0,
            subscriptions,
        )
    };
    if legacy {
        shared.out.emit(&envelope::notification(
            "notifications/tools/list_changed",
            None::<&Value>,
        ));
    }
    for id in &subscriptions {
        shared.out.emit(&envelope::notification(
            "notifications/tools/list_changed",
            Some(&json!({ "_meta": { "io.modelcontextprotocol/subscriptionId": id } })),
        ));
    }
    let summary = json!({ "legacy": legacy, "subscriptions": subscriptions.len() });
    json!({
        "content": [{ "type": "text", "text": summary.to_string() }],
        "structuredContent": summary,
    })
}

/// Emits `notifications/message` if the caller's level lets it through.
fn log(shared: &Shared, request: &Request<'_>, level: Level, message: String) -> Value {
    let threshold = match request.era {
        // Legacy: the session-wide logging/setLevel; before it, everything.
        Era::Legacy => Some(shared.state().log_threshold.unwrap_or(Level::Debug)),
        // Modern: only what the request asks for; no level, no messages.
        Era::Modern => request.meta.log_level,
    };
    let emitted = threshold.is_some_and(|threshold| level >= threshold);
    if emitted {
        shared.out.emit(&envelope::notification(
            "notifications/message",
            Some(&json!({ "level": level, "logger": "mcpod-demo", "data": message })),
        ));
    }
    let summary = json!({ "emitted": emitted });
    json!({
        "content": [{ "type": "text", "text": summary.to_string() }],
        "structuredContent": summary,
    })
}

#[derive(serde::Serialize)]
struct Stats<'a> {
    initialize_count: u64,
    requests: u64,
    cancelled: &'a [Box<RawValue>],
    in_flight: usize,
    pid: u32,
}

/// Counters as JSON text; ids in `cancelled` are written verbatim.
fn stats(shared: &Shared) -> Value {
    let state = shared.state();
    let stats = Stats {
        initialize_count: state.initialize_count,
        requests: state.requests,
        cancelled: &state.cancelled,
        in_flight: state.in_flight.len(),
        pid: std::process::id(),
    };
    match serde_json::to_string(&stats) {
        Ok(text) => text_result(text),
        Err(e) => tool_error(format!("cannot encode stats: {e}")),
    }
}

/// The variables asked for, as JSON text: `names` (null when unset) and
/// every variable starting with `prefix` (an empty one matches all).
fn environment(names: &[String], prefix: Option<&str>) -> Value {
    let mut found = serde_json::Map::new();
    for name in names {
        let value = std::env::var_os(name).map(|v| v.to_string_lossy().into_owned());
        found.insert(name.clone(), json!(value));
    }
    if let Some(prefix) = prefix {
        for (k, v) in std::env::vars_os() {
            let k = k.to_string_lossy();
            if k.starts_with(prefix) {
                found.insert(k.into_owned(), json!(v.to_string_lossy()));
            }
        }
    }
    text_result(Value::Object(found).to_string())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sums_keep_integers_exact() {
        let n = |s: &str| serde_json::from_str::<Number>(s).expect("number");
        assert_eq!(add(&n("2"), &n("3"))["structuredContent"]["sum"], json!(5));
        assert_eq!(
            add(&n("0.5"), &n("1"))["structuredContent"]["sum"],
            json!(1.5)
        );
        let big = add(&n("9223372036854775807"), &n("1"));
        assert_eq!(
            big["structuredContent"]["sum"],
            json!(9.223_372_036_854_776e18)
        );
        assert_eq!(add(&n("1e308"), &n("1e308"))["isError"], json!(true));
    }

    #[test]
    fn request_state_round_trips_and_rejects_strangers() {
        for kind in [AskKind::Sampling, AskKind::Roots, AskKind::Elicitation] {
            let state = format!("{REQUEST_STATE_PREFIX}.{}.7", kind_name(kind));
            assert_eq!(parse_request_state(&state).expect("state"), kind);
        }
        for bad in [
            "",
            "x",
            "mcpod-demo.ask.v1.roots",
            "mcpod-demo.ask.v1.nope.1",
            "mcpod-demo.ask.v1.roots.x",
        ] {
            assert!(parse_request_state(bad).is_err(), "{bad}");
        }
    }

    #[test]
    fn every_listed_tool_is_named_and_has_an_object_schema() {
        let tools = definitions().as_array().expect("array");
        let names: Vec<&str> = tools.iter().filter_map(|t| t["name"].as_str()).collect();
        assert_eq!(names, TOOL_NAMES);
        for tool in tools {
            assert_eq!(tool["inputSchema"]["type"], "object", "{tool}");
        }
    }
}

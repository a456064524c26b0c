//! `mcpod-demo`: a small but real stdio [MCP] server that speaks both MCP eras.
//!
//! mcpod's tests, benchmarks and README quickstart use it as a backend, and
//! container images ship it as `/app/mcp`. It reads newline-delimited
//! JSON-RPC 2.0 on stdin, writes only MCP messages to stdout (one per line,
//! flushed per message), and logs to stderr. It exits with status 0 when
//! stdin closes, without waiting for tools still running.
//!
//! # Running it
//!
//! ```text
//! cargo run -p mcpod-demo                  # both eras (default)
//! cargo run -p mcpod-demo -- --legacy-only # no server/discover: an "old" backend
//! cargo run -p mcpod-demo -- --modern-only # no initialize: a 2026-07-28-only backend
//! ```
//!
//! ```text
//! $ printf '%s\n' '{"jsonrpc":"2.0","id":1,"method":"tools/call","params":{"name":"echo","arguments":{"text":"hi"}}}' | mcpod-demo
//! {"jsonrpc":"2.0","id":1,"result":{"content":[{"text":"hi","type":"text"}]}}
//! ```
//!
//! The gateway embeds it as `mcpod demo-server` through [`run`] / [`run_with`]:
//!
//! ```no_run
//! let stdin = std::io::stdin().lock();
//! mcpod_demo::run(stdin, std::io::stdout())?;
//! # Ok::<(), std::io::Error>(())
//! ```
//!
//! # Eras
//!
//! Each request is served in the era its caller uses:
//!
//! * **Legacy** (2024-11-05, 2025-03-26, 2025-06-18, 2025-11-25): `initialize`
//!   answers with the client's version if known, else 2025-11-25;
//!   `notifications/initialized`, `ping` and `logging/setLevel` work. Requests
//!   before `initialize` are served anyway (a gateway may be the only client).
//! * **Modern** (2026-07-28): a request whose `params._meta` names
//!   `io.modelcontextprotocol/protocolVersion`. `server/discover` and
//!   `subscriptions/listen` work; results carry `resultType`; an unknown
//!   version gets error -32022 with `data.supported` and `data.requested`;
//!   log messages are sent only when `_meta` names
//!   `io.modelcontextprotocol/logLevel`.
//!
//! Ids come back byte for byte (`1`, `"1"` and `1152921504606846976` stay
//! distinct and exact). Invalid JSON gets -32700 with id `null`, a batch
//! (JSON array) -32600, an unknown method -32601, bad params -32602; the
//! server keeps running after each.
//!
//! # Tools
//!
//! | tool | arguments | behaviour |
//! |------|-----------|-----------|
//! | `echo` | `{text: string}` | returns `text` as text content |
//! | `add` | `{a: number, b: number}` | the sum as text and as `structuredContent {sum}` |
//! | `sleep` | `{ms: integer}` | answers after `ms` ms; after `notifications/cancelled` it never answers |
//! | `progress` | `{steps: integer, delay_ms?: integer}` | `notifications/progress` 1..=steps with the caller's `progressToken`, then answers |
//! | `fail` | `{message?: string}` | a tool error result (`isError: true`) |
//! | `crash` | `{}` | exits the process with status 3 without answering |
//! | `garbage` | `{}` | writes a non-JSON line to stdout, then answers |
//! | `big` | `{bytes: integer}` | a text result of exactly `bytes` bytes (`x` repeated) |
//! | `ask` | `{kind: "sampling" \| "roots" \| "elicitation"}` | legacy: sends `sampling/createMessage` / `roots/list` / `elicitation/create` to the client and returns its answer as text; modern: an `input_required` result, and the retry's `inputResponses.q` as text |
//! | `notify_change` | `{}` | emits `notifications/tools/list_changed`, then answers |
//! | `log` | `{level?: string, message: string}` | emits `notifications/message` if the caller's level allows, answers `{"emitted": bool}` |
//! | `stats` | `{}` | JSON text: `initialize_count`, `requests`, `cancelled` (ids verbatim), `in_flight`, `pid` |
//! | `env` | `{names?: string[], prefix?: string}` | JSON text: the process's variables of those names (`null` when unset) and those starting with `prefix` |
//!
//! `sleep`, `progress` and legacy `ask` run on a worker thread each (so they
//! can be cancelled and run concurrently); everything else answers on the
//! reading thread. Resources: `demo://hello` (text) and `demo://server-info`
//! (JSON). Prompt: `greet {name}`.
//!
//! [MCP]: https://modelcontextprotocol.io

mod call;
mod catalog;
mod envelope;
mod era;
mod output;
mod reader;
mod server;
mod tools;

use std::io::{self, BufRead, Write};

pub use era::{LATEST_LEGACY_VERSION, LEGACY_VERSIONS, MODERN_VERSIONS};
pub use tools::TOOL_NAMES;

/// The `serverInfo.name` this server reports.
pub const SERVER_NAME: &str = "mcpod-demo";

/// The `serverInfo.version` this server reports (the crate version).
pub const SERVER_VERSION: &str = env!("CARGO_PKG_VERSION");

/// The `instructions` sent in `initialize` and `server/discover` results.
pub const INSTRUCTIONS: &str = "mcpod-demo is a test server. Call tools/list to see its tools: \
echo returns its text, add sums two numbers, sleep and progress take time, fail and crash \
misbehave on purpose, ask asks you for sampling, roots or elicitation.";

/// Exit status of the `crash` tool.
pub const CRASH_EXIT_STATUS: i32 = tools::CRASH_STATUS;

/// Default bound on one inbound message, in bytes (longer lines get -32600).
pub const DEFAULT_MAX_LINE_BYTES: usize = 64 * 1024 * 1024;

/// Usage text for the `mcpod-demo` binary (and `mcpod demo-server`).
pub const USAGE: &str = "\
mcpod-demo: a demo MCP server on stdin/stdout (newline-delimited JSON-RPC), logs on stderr.

Usage: mcpod-demo [--legacy-only | --modern-only] [--tools a,b,...] [--page-size N]

  --legacy-only  serve only the initialize-based revisions (2024-11-05 … 2025-11-25)
  --modern-only  serve only 2026-07-28 (requests must carry _meta protocolVersion)
  --tools LIST   list and serve only these tools (comma-separated names)
  --page-size N  tools/list gives N tools a page, with nextCursor
  -h, --help     print this help
  -V, --version  print the version

Exits with status 0 when stdin closes.";

/// What the server serves.
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub struct Config {
    /// Serve legacy (`initialize`-based) requests.
    pub legacy: bool,
    /// Serve 2026-07-28 requests and `server/discover`.
    pub modern: bool,
    /// Longest inbound line accepted, in bytes.
    pub max_line_bytes: usize,
    /// The tools listed and served (`None`: all of [`TOOL_NAMES`]).
    pub tools: Option<Vec<String>>,
    /// Tools per `tools/list` page (`None`: one page).
    pub page_size: Option<usize>,
}

impl Default for Config {
    fn default() -> Self {
        Self {
            legacy: true,
            modern: true,
            max_line_bytes: DEFAULT_MAX_LINE_BYTES,
            tools: None,
            page_size: None,
        }
    }
}

/// What the command line asks for.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Command {
    /// Serve MCP with this configuration.
    Serve(Config),
    /// Print [`USAGE`].
    Help,
    /// Print the version.
    Version,
}

/// Parses command-line arguments (without the program name).
///
/// ```
/// use mcpod_demo::{Command, parse_args};
/// let Ok(Command::Serve(config)) = parse_args(["--legacy-only"]) else { panic!() };
/// assert!(config.legacy && !config.modern);
/// assert!(parse_args(["--bogus"]).is_err());
/// let Ok(Command::Serve(config)) = parse_args(["--tools", "echo,add", "--page-size", "1"]) else { panic!() };
/// assert_eq!(config.tools, Some(vec!["echo".to_owned(), "add".to_owned()]));
/// assert_eq!(config.page_size, Some(1));
/// assert!(parse_args(["--tools", "nope"]).is_err());
/// ```
pub fn parse_args<I, S>(args: I) -> Result<Command, String>
where
    I: IntoIterator<Item = S>,
    S: AsRef<str>,
{
    let mut config = Config::default();
    let mut args = args.into_iter();
    while let Some(arg) = args.next() {
        match arg.as_ref() {
            "--tools" => {
                let list = args
                    .next()
                    .ok_or_else(|| format!("--tools needs a list\n\n{USAGE}"))?;
                let names: Vec<String> = list.as_ref().split(',').map(str::to_owned).collect();
                if let Some(bad) = names.iter().find(|n| !TOOL_NAMES.contains(&n.as_str())) {
                    return Err(format!("--tools: no tool named `{bad}`\n\n{USAGE}"));
                }
                config.tools = Some(names);
            }
            "--page-size" => {
                let n = args
                    .next()
                    .and_then(|n| n.as_ref().parse::<usize>().ok())
                    .filter(|n| *n > 0)
                    .ok_or_else(|| format!("--page-size needs a number above 0\n\n{USAGE}"))?;
                config.page_size = Some(n);
            }
            "--legacy-only" => config.modern = false,
            "--modern-only" => config.legacy = false,
            "-h" | "--help" => return Ok(Command::Help),
            "-V" | "--version" => return Ok(Command::Version),
            other => return Err(format!("unknown argument: {other}\n\n{USAGE}")),
        }
    }
    if !config.legacy && !config.modern {
        return Err(format!(
            "--legacy-only and --modern-only exclude each other\n\n{USAGE}"
        ));
    }
    Ok(Command::Serve(config))
}

/// Serves MCP (both eras) on `input`/`output` until `input` reaches EOF.
///
/// Returns `Ok(())` at EOF without waiting for tools still running (they are
/// cancelled and never answer), or the first error reading `input` or
/// writing `output`. The `crash` tool exits the whole process.
pub fn run<R, W>(input: R, output: W) -> io::Result<()>
where
    R: BufRead,
    W: Write + Send + 'static,
{
    run_with(Config::default(), input, output)
}

/// Like [`run`], with an explicit [`Config`].
pub fn run_with<R, W>(config: Config, input: R, output: W) -> io::Result<()>
where
    R: BufRead,
    W: Write + Send + 'static,
{
    server::serve(config, input, output)
}

//! Command-line interface.

use std::path::PathBuf;
use std::time::Duration;

use clap::{Args, Parser, Subcommand, ValueEnum};

/// Drives `tools/call echo` against an MCP server and checks every reply.
#[derive(Debug, Parser)]
#[command(name = "mcpod-loadgen", version, about, long_about = None)]
pub(crate) struct Cli {
    /// What to do.
    #[command(subcommand)]
    pub(crate) command: Command,
}

/// The subcommands.
#[derive(Debug, Subcommand)]
pub(crate) enum Command {
    /// Load a Streamable HTTP endpoint; every virtual client owns one keep-alive connection.
    Http(HttpArgs),
    /// Load a stdio MCP server spawned as a child: one stdin/stdout pair, a window of
    /// `--concurrency` requests in flight (the "direct stdio" limit).
    Stdio(StdioArgs),
    /// Print a Markdown comparison table from the `--json` lines of several runs.
    Report(ReportArgs),
    /// Serve the HTTP floor: a Streamable HTTP responder that answers
    /// `tools/call echo` itself (no backend, no checks), to measure what the
    /// HTTP layer alone costs on this machine.
    FloorServer(FloorArgs),
    /// Hold silent and slow-body connections against a server until it
    /// closes them (or `--hold` ends), and report what became of them.
    Abuse(AbuseArgs),
    /// Serve the mcpod demo MCP server on stdin/stdout (used by the tests).
    #[command(hide = true)]
    DemoServer,
}

/// `mcpod-loadgen abuse`.
#[derive(Debug, Clone, Args)]
pub(crate) struct AbuseArgs {
    /// The server, `http://host:port[/…]` or `host:port`.
    pub(crate) url: String,
    /// Connections that send nothing.
    #[arg(long, default_value_t = 1000)]
    pub(crate) silent: u32,
    /// Connections that send a request head promising a 100 000-byte body,
    /// then one byte of it.
    #[arg(long, default_value_t = 1000)]
    pub(crate) slow: u32,
    /// How long to hold each one open at most.
    #[arg(long, default_value = "60s", value_parser = parse_duration)]
    pub(crate) hold: Duration,
    /// Print one JSON object instead of the text line.
    #[arg(long)]
    pub(crate) json: bool,
}

/// Options shared by every load mode.
#[derive(Debug, Clone, Args)]
pub(crate) struct LoadArgs {
    /// Virtual clients, each with at most one request in flight.
    #[arg(short = 'c', long, default_value_t = 1, value_parser = clap::value_parser!(u32).range(1..=65_536))]
    pub(crate) concurrency: u32,
    /// How long to measure, after the warm-up (`5`, `5s`, `500ms`, `1.5`).
    #[arg(short = 'd', long, default_value = "5s", value_parser = parse_duration)]
    pub(crate) duration: Duration,
    /// Measure exactly this many requests instead of a duration.
    #[arg(short = 'n', long, conflicts_with = "duration", value_parser = clap::value_parser!(u64).range(1..))]
    pub(crate) requests: Option<u64>,
    /// Warm-up before measuring; its replies are checked but not recorded.
    #[arg(short = 'w', long, default_value = "1s", value_parser = parse_duration)]
    pub(crate) warmup: Duration,
    /// Fail a request that has no reply after this long.
    #[arg(long, default_value = "10s", value_parser = parse_duration)]
    pub(crate) timeout: Duration,
    /// Sample this process's VmRSS during the run and report the peak
    /// (`stdio` samples its child unless this is given).
    #[arg(long)]
    pub(crate) pid: Option<u32>,
    /// Name of the run in the output (default: the mode).
    #[arg(long)]
    pub(crate) label: Option<String>,
    /// Print one JSON object instead of the text line.
    #[arg(long)]
    pub(crate) json: bool,
    /// Runtime worker threads of the load generator (1: a single-threaded runtime).
    #[arg(long, default_value_t = 1, value_parser = clap::value_parser!(u32).range(1..=256))]
    pub(crate) threads: u32,
    /// Pad each echo text to this many bytes (a large payload each way;
    /// 0: the short unique text alone).
    #[arg(long, default_value_t = 0, value_parser = clap::value_parser!(u32).range(0..=(8 << 20)))]
    pub(crate) text_bytes: u32,
}

/// Which MCP era the HTTP clients speak.
#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub(crate) enum Era {
    /// `initialize` once per virtual client, then requests in its `Mcp-Session-Id` session.
    Legacy,
    /// 2026-07-28: stateless POSTs with `MCP-Protocol-Version`, `Mcp-Method` and `Mcp-Name`.
    Modern,
}

/// `mcpod-loadgen http`.
#[derive(Debug, Clone, Args)]
pub(crate) struct HttpArgs {
    /// The MCP endpoint, e.g. `http://127.0.0.1:8080/mcp/demo` (plain http only).
    pub(crate) url: String,
    /// The MCP era to speak.
    #[arg(long, value_enum, default_value_t = Era::Legacy)]
    pub(crate) era: Era,
    /// Protocol version to request (default: 2025-11-25 for legacy, 2026-07-28 for modern).
    #[arg(long)]
    pub(crate) protocol_version: Option<String>,
    /// Load options.
    #[command(flatten)]
    pub(crate) load: LoadArgs,
}

/// `mcpod-loadgen stdio`.
#[derive(Debug, Clone, Args)]
pub(crate) struct StdioArgs {
    /// Load options.
    #[command(flatten)]
    pub(crate) load: LoadArgs,
    /// The server command and its arguments (after `--`).
    #[arg(required = true, num_args = 1.., trailing_var_arg = true, allow_hyphen_values = true)]
    pub(crate) command: Vec<String>,
}

/// `mcpod-loadgen floor-server`.
#[derive(Debug, Clone, Args)]
pub(crate) struct FloorArgs {
    /// Address to listen on (loopback only is wise).
    #[arg(long, default_value = "127.0.0.1:18082")]
    pub(crate) listen: std::net::SocketAddr,
    /// Runtime worker threads (default: one per CPU).
    #[arg(long, value_parser = clap::value_parser!(u32).range(1..=256))]
    pub(crate) threads: Option<u32>,
}

/// `mcpod-loadgen report`.
#[derive(Debug, Clone, Args)]
pub(crate) struct ReportArgs {
    /// Files of `--json` result lines (`-` or none: standard input).
    pub(crate) files: Vec<PathBuf>,
    /// Label of the direct-stdio runs (the limit).
    #[arg(long, default_value = "direct-stdio")]
    pub(crate) direct: String,
    /// Label of the peer gateway's runs.
    #[arg(long, default_value = "supergateway")]
    pub(crate) peer: String,
    /// Label of the HTTP floor's runs (the most an HTTP gateway can do).
    #[arg(long, default_value = "http-floor")]
    pub(crate) floor: String,
    /// Concurrency at which the targets apply.
    #[arg(long, default_value_t = 16)]
    pub(crate) target_concurrency: u32,
}

/// Parses `5`, `1.5`, `5s`, `250ms`, `2m` or `100us` into a duration.
pub(crate) fn parse_duration(text: &str) -> Result<Duration, String> {
    let text = text.trim();
    let split = text
        .find(|c: char| !(c.is_ascii_digit() || c == '.'))
        .unwrap_or(text.len());
    let (number, unit) = text.split_at(split);
    let value: f64 = number
        .parse()
        .map_err(|_| format!("`{text}` is not a duration (try 5s, 500ms or 1.5)"))?;
    let seconds = match unit.trim() {
        "" | "s" => value,
        "ms" => value / 1e3,
        "us" | "µs" => value / 1e6,
        "m" | "min" => value * 60.0,
        other => {
            return Err(format!(
                "unknown unit `{other}` in `{text}` (use s, ms, us or m)"
            ));
        }
    };
    Duration::try_from_secs_f64(seconds).map_err(|e| format!("`{text}`: {e}"))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn durations_parse_with_and_without_units() {
        assert_eq!(parse_duration("5"), Ok(Duration::from_secs(5)));
        assert_eq!(parse_duration("1.5"), Ok(Duration::from_millis(1500)));
        assert_eq!(parse_duration("250ms"), Ok(Duration::from_millis(250)));
        assert_eq!(parse_duration("100us"), Ok(Duration::from_micros(100)));
        assert_eq!(parse_duration("2m"), Ok(Duration::from_secs(120)));
        assert_eq!(parse_duration("0"), Ok(Duration::ZERO));
        assert!(parse_duration("fast").is_err());
        assert!(parse_duration("5h").is_err());
        assert!(parse_duration("").is_err());
    }

    #[test]
    fn the_command_line_is_consistent() {
        use clap::CommandFactory;
        Cli::command().debug_assert();
    }

    #[test]
    fn stdio_takes_the_server_command_after_the_options() {
        let cli = Cli::try_parse_from([
            "mcpod-loadgen",
            "stdio",
            "-c",
            "4",
            "-n",
            "200",
            "--",
            "server",
            "--flag",
        ])
        .expect("parses");
        let Command::Stdio(args) = cli.command else {
            panic!("not stdio: {cli:?}");
        };
        assert_eq!(args.command, ["server", "--flag"]);
        assert_eq!(args.load.concurrency, 4);
        assert_eq!(args.load.requests, Some(200));
    }

    #[test]
    fn a_request_count_excludes_an_explicit_duration() {
        let parsed = Cli::try_parse_from(["mcpod-loadgen", "stdio", "-n", "5", "-d", "1", "x"]);
        assert!(parsed.is_err());
    }
}

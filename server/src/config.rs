//! The gateway's configuration: a TOML file, `MCPOD_*` environment
//! overrides, command-line overrides, and validation into typed values.
//!
//! Loading goes in two steps: the file is read into [`RawConfig`] (every
//! field optional, unknown keys refused), overrides are applied to it, then
//! [`RawConfig::validate`] checks everything and produces a [`Config`]. Every
//! error names the key (or environment variable) at fault.

use std::collections::BTreeMap;
use std::net::{IpAddr, SocketAddr};
use std::path::{Path, PathBuf};
use std::time::Duration;

use serde::Deserialize;
use thiserror::Error;

/// Default listen address.
pub const DEFAULT_LISTEN: &str = "127.0.0.1:8080";
/// Default request body limit: tool payloads with images are large.
pub const DEFAULT_MAX_BODY_BYTES: usize = 8 * 1024 * 1024;

/// A configuration problem, naming the key at fault.
#[derive(Debug, Error)]
#[non_exhaustive]
pub enum ConfigError {
    /// The file could not be read.
    #[error("cannot read config file {path}: {source}")]
    Read {
        /// The file.
        path: PathBuf,
        /// Why.
        source: std::io::Error,
    },
    /// The file is not valid TOML or has keys of the wrong type or unknown
    /// keys (the message names the key).
    #[error("config file {path}: {message}")]
    Parse {
        /// The file.
        path: PathBuf,
        /// The TOML error, which names the key and the line.
        message: String,
    },
    /// A key has a value that is not allowed.
    #[error("{key}: {message}")]
    Invalid {
        /// The key (dotted path) or environment variable.
        key: String,
        /// What is wrong.
        message: String,
    },
}

fn invalid(key: impl Into<String>, message: impl Into<String>) -> ConfigError {
    ConfigError::Invalid {
        key: key.into(),
        message: message.into(),
    }
}

/// A duration in the config: an integer (seconds) or a string such as
/// `"250ms"`, `"30s"`, `"5m"`, `"1h"`.
#[derive(Debug, Clone, Deserialize)]
#[serde(untagged)]
pub enum RawDuration {
    /// Whole seconds.
    Seconds(u64),
    /// A number with a unit.
    Text(String),
}

impl RawDuration {
    fn parse(&self, key: &str) -> Result<Duration, ConfigError> {
        match self {
            RawDuration::Seconds(s) => Ok(Duration::from_secs(*s)),
            RawDuration::Text(t) => parse_duration(t).ok_or_else(|| {
                invalid(
                    key,
                    format!(
                        "`{t}` is not a duration (use e.g. \"250ms\", \"30s\", \"5m\", \"1h\")"
                    ),
                )
            }),
        }
    }
}

/// Parses `"250ms"`, `"30s"`, `"5m"`, `"1h"` or a bare number of seconds.
pub fn parse_duration(text: &str) -> Option<Duration> {
    let t = text.trim();
    let split = t.find(|c: char| !c.is_ascii_digit()).unwrap_or(t.len());
    let (num, unit) = t.split_at(split);
    let n: u64 = num.parse().ok()?;
    match unit.trim() {
        "" | "s" => Some(Duration::from_secs(n)),
        "ms" => Some(Duration::from_millis(n)),
        "m" | "min" => n.checked_mul(60).map(Duration::from_secs),
        "h" => n.checked_mul(3600).map(Duration::from_secs),
        _ => None,
    }
}

/// The config file as written: every field optional, unknown keys refused.
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawConfig {
    /// `listen`: address to listen on.
    pub listen: Option<String>,
    /// `allowed_origins`: browser Origins allowed (`"*"` allows any).
    pub allowed_origins: Option<Vec<String>>,
    /// `allowed_hosts`: extra `Host` names accepted on a loopback listener.
    pub allowed_hosts: Option<Vec<String>>,
    /// `[log]`.
    #[serde(default)]
    pub log: RawLog,
    /// `[auth]`.
    #[serde(default)]
    pub auth: RawAuth,
    /// `[limits]`.
    #[serde(default)]
    pub limits: RawLimits,
    /// `[targets.<name>]`.
    #[serde(default)]
    pub targets: BTreeMap<String, RawTarget>,
    /// `[bots.<bot_id>]`: Memoh-compatible routes.
    #[serde(default)]
    pub bots: BTreeMap<String, RawBot>,
    /// `[containerd]`: defaults of containerd targets, and whether every bot
    /// with a container is served on the Memoh routes.
    pub containerd: Option<crate::containerd::RawContainerd>,
}

/// `[log]`.
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawLog {
    /// `"human"` or `"json"`.
    pub format: Option<String>,
    /// A `tracing` filter, e.g. `"info"` or `"mcpod_server=debug,info"`.
    pub level: Option<String>,
}

/// `[auth]`.
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawAuth {
    /// Turn bearer auth off (allowed only on a loopback listener).
    pub disabled: Option<bool>,
    /// Accepted bearer tokens.
    pub tokens: Option<Vec<String>>,
    /// A file with one token per line (`#` comments and blank lines skipped).
    pub token_file: Option<PathBuf>,
}

/// `[limits]`.
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawLimits {
    /// Largest request body, in bytes.
    pub max_body_bytes: Option<usize>,
    /// Calls in flight per target (all clients together).
    pub max_calls_per_target: Option<usize>,
    /// Calls in flight per legacy client session.
    pub max_calls_per_session: Option<usize>,
    /// Legacy client sessions per target.
    pub max_sessions_per_target: Option<usize>,
    /// Idle time after which a legacy session expires.
    pub session_idle_timeout: Option<RawDuration>,
    /// Interval of SSE keep-alive comments.
    pub sse_keep_alive: Option<RawDuration>,
    /// How long in-flight calls may run on after SIGINT/SIGTERM.
    pub shutdown_grace: Option<RawDuration>,
    /// Local stdio connections per bot (Memoh `mcp-stdio`).
    pub max_stdio_connections_per_bot: Option<usize>,
}

/// `[targets.<name>]`.
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawTarget {
    /// `"process"` (the default).
    pub kind: Option<String>,
    /// The program to run (process targets).
    pub command: Option<String>,
    /// Its arguments.
    pub args: Option<Vec<String>>,
    /// Extra environment variables.
    pub env: Option<BTreeMap<String, String>>,
    /// Start from an empty environment (plus `env`).
    pub env_clear: Option<bool>,
    /// Working directory.
    pub cwd: Option<PathBuf>,
    /// `"auto"`, `"legacy"` or `"modern"`.
    pub era: Option<String>,
    /// Deadline of each call.
    pub call_timeout: Option<RawDuration>,
    /// `"shared"` (default) or `"per_session"`.
    pub sharing: Option<String>,
    /// Bearer tokens for this target (replacing the global ones).
    pub tokens: Option<Vec<String>>,
    /// Token file for this target.
    pub token_file: Option<PathBuf>,
    /// Roots answered to the backend's `roots/list` when no client can.
    pub roots: Option<Vec<RawRoot>>,
    /// Calls in flight for this target (overrides `limits`).
    pub max_calls_in_flight: Option<usize>,
    /// Grace period for the backend to exit after its stdin closes.
    pub shutdown_grace: Option<RawDuration>,
    /// The bot whose container runs the server (containerd targets).
    pub bot: Option<String>,
    /// containerd socket (containerd targets; default from `[containerd]`).
    pub socket: Option<PathBuf>,
    /// containerd namespace (containerd targets).
    pub namespace: Option<String>,
    /// Container id prefix (containerd targets).
    pub container_prefix: Option<String>,
    /// FIFO root directory (containerd targets).
    pub fifo_root: Option<PathBuf>,
    /// Accept a container without the bot label (containerd targets).
    pub allow_unlabelled: Option<bool>,
    /// Start the bot's task when it is not running (containerd targets).
    pub start_stopped_tasks: Option<bool>,
    /// Stop the exec'd server after this long without traffic (containerd targets).
    pub idle_timeout: Option<RawDuration>,
}

/// One configured root.
#[derive(Debug, Clone, Deserialize, serde::Serialize, PartialEq, Eq)]
#[serde(deny_unknown_fields)]
pub struct RawRoot {
    /// A `file://` URI.
    pub uri: String,
    /// A display name.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub name: Option<String>,
}

/// `[bots.<bot_id>]`.
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawBot {
    /// The target serving `/bots/{bot_id}/container/fs-mcp`.
    pub target: Option<String>,
    /// Bearer tokens for this bot (replacing the global ones).
    pub tokens: Option<Vec<String>>,
    /// Token file for this bot.
    pub token_file: Option<PathBuf>,
    /// Allow `POST /bots/{bot_id}/mcp-stdio` to start local processes.
    pub allow_local_stdio: Option<bool>,
}

/// Log output format.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum LogFormat {
    /// Human-readable lines.
    Human,
    /// One JSON object per line.
    Json,
}

/// `[log]`, validated.
#[derive(Debug, Clone)]
pub struct LogConfig {
    /// Output format.
    pub format: LogFormat,
    /// `tracing` filter directive.
    pub level: String,
}

/// `[auth]`, validated.
#[derive(Debug, Clone)]
pub struct AuthConfig {
    /// Auth turned off (loopback listeners only).
    pub disabled: bool,
    /// Accepted tokens for every route without its own.
    pub tokens: Vec<String>,
}

/// `[limits]`, validated.
#[derive(Debug, Clone)]
pub struct Limits {
    /// Largest request body, in bytes.
    pub max_body_bytes: usize,
    /// Calls in flight per target.
    pub max_calls_per_target: usize,
    /// Calls in flight per legacy session.
    pub max_calls_per_session: usize,
    /// Legacy sessions per target.
    pub max_sessions_per_target: usize,
    /// Idle time before a legacy session expires.
    pub session_idle_timeout: Duration,
    /// SSE keep-alive interval.
    pub sse_keep_alive: Duration,
    /// Grace period at shutdown.
    pub shutdown_grace: Duration,
    /// Local stdio connections per bot.
    pub max_stdio_connections_per_bot: usize,
}

impl Default for Limits {
    fn default() -> Self {
        Limits {
            max_body_bytes: DEFAULT_MAX_BODY_BYTES,
            max_calls_per_target: 1024,
            max_calls_per_session: 64,
            max_sessions_per_target: 1024,
            session_idle_timeout: Duration::from_secs(30 * 60),
            sse_keep_alive: Duration::from_secs(15),
            shutdown_grace: Duration::from_secs(10),
            max_stdio_connections_per_bot: 8,
        }
    }
}

/// How a target's backend process is shared.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Sharing {
    /// One backend process for every client.
    Shared,
    /// One backend process per legacy client session (modern, stateless
    /// clients share one more).
    PerSession,
}

/// A local child process backend.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ProcessBackend {
    /// The program.
    pub command: PathBuf,
    /// Its arguments.
    pub args: Vec<String>,
    /// Extra environment.
    pub env: BTreeMap<String, String>,
    /// Start from an empty environment.
    pub env_clear: bool,
    /// Working directory.
    pub cwd: Option<PathBuf>,
}

/// What runs a target's backend. New kinds (containerd) add a variant here
/// and an arm in [`crate::targets::launch`].
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub enum BackendSpec {
    /// `kind = "process"`.
    Process(ProcessBackend),
    /// `kind = "containerd"`: a process exec'd in a bot's container.
    Containerd(crate::containerd::ContainerdBackend),
}

impl BackendSpec {
    /// The `kind` name.
    pub fn kind(&self) -> &'static str {
        match self {
            BackendSpec::Process(_) => "process",
            BackendSpec::Containerd(_) => "containerd",
        }
    }
}

/// One target, validated.
#[derive(Debug, Clone)]
pub struct TargetConfig {
    /// Its name (the `{target}` of `/mcp/{target}`).
    pub name: String,
    /// What runs it.
    pub backend: BackendSpec,
    /// How the backend's era is found.
    pub era: mcpod_core::EraMode,
    /// Deadline of each call.
    pub call_timeout: Duration,
    /// Sharing mode.
    pub sharing: Sharing,
    /// Its own tokens (`None`: the global ones).
    pub tokens: Option<Vec<String>>,
    /// Roots for `roots/list` when no client can answer.
    pub roots: Option<Vec<RawRoot>>,
    /// Calls in flight for this target.
    pub max_calls_in_flight: usize,
    /// Backend exit grace period.
    pub shutdown_grace: Duration,
}

/// One Memoh bot, validated.
#[derive(Debug, Clone)]
pub struct BotConfig {
    /// Its id.
    pub id: String,
    /// The target behind its `container/fs-mcp` route.
    pub target: String,
    /// Its own tokens (`None`: the global ones).
    pub tokens: Option<Vec<String>>,
    /// May start local stdio processes.
    pub allow_local_stdio: bool,
}

/// The whole validated configuration.
#[derive(Debug, Clone)]
pub struct Config {
    /// Listen address.
    pub listen: SocketAddr,
    /// Allowed browser Origins (`None`: loopback origins only; `"*"` in the
    /// list: any).
    pub allowed_origins: Vec<String>,
    /// Extra Host names accepted on a loopback listener.
    pub allowed_hosts: Vec<String>,
    /// Logging.
    pub log: LogConfig,
    /// Auth.
    pub auth: AuthConfig,
    /// Limits.
    pub limits: Limits,
    /// Targets by name.
    pub targets: BTreeMap<String, TargetConfig>,
    /// Bots by id.
    pub bots: BTreeMap<String, BotConfig>,
    /// `[containerd]`, if given.
    pub containerd: Option<crate::containerd::ContainerdSettings>,
}

/// Overrides from the command line (highest precedence).
#[derive(Debug, Clone, Default)]
pub struct Overrides {
    /// `--listen`.
    pub listen: Option<String>,
}

impl RawConfig {
    /// Reads and parses a TOML file.
    pub fn from_file(path: &Path) -> Result<Self, ConfigError> {
        let text = std::fs::read_to_string(path).map_err(|source| ConfigError::Read {
            path: path.to_owned(),
            source,
        })?;
        Self::from_toml(&text).map_err(|message| ConfigError::Parse {
            path: path.to_owned(),
            message,
        })
    }

    /// Parses TOML text; the error names the key and line.
    pub fn from_toml(text: &str) -> Result<Self, String> {
        toml::from_str(text).map_err(|e| e.to_string().trim_end().to_owned())
    }

    /// The embedded default: one shared target `demo` running
    /// `<program> demo-server`, auth disabled (so the listener must be
    /// loopback).
    pub fn embedded_default(program: &Path) -> Self {
        let mut targets = BTreeMap::new();
        targets.insert(
            "demo".to_owned(),
            RawTarget {
                command: Some(program.to_string_lossy().into_owned()),
                args: Some(vec!["demo-server".to_owned()]),
                ..RawTarget::default()
            },
        );
        let mut bots = BTreeMap::new();
        bots.insert(
            "demo".to_owned(),
            RawBot {
                target: Some("demo".to_owned()),
                ..RawBot::default()
            },
        );
        RawConfig {
            auth: RawAuth {
                disabled: Some(true),
                ..RawAuth::default()
            },
            targets,
            bots,
            ..RawConfig::default()
        }
    }

    /// Applies `MCPOD_*` environment overrides, read through `var`.
    pub fn apply_env(&mut self, var: impl Fn(&str) -> Option<String>) -> Result<(), ConfigError> {
        let list = |s: String| -> Vec<String> {
            s.split(',')
                .map(str::trim)
                .filter(|s| !s.is_empty())
                .map(str::to_owned)
                .collect()
        };
        let boolean = |key: &str, s: String| -> Result<bool, ConfigError> {
            match s.trim().to_ascii_lowercase().as_str() {
                "1" | "true" | "yes" | "on" => Ok(true),
                "0" | "false" | "no" | "off" => Ok(false),
                other => Err(invalid(key, format!("`{other}` is not a boolean"))),
            }
        };
        let duration = |key: &str, s: String| -> Result<RawDuration, ConfigError> {
            parse_duration(&s)
                .map(|_| RawDuration::Text(s.clone()))
                .ok_or_else(|| invalid(key, format!("`{s}` is not a duration")))
        };
        if let Some(v) = var("MCPOD_LISTEN") {
            self.listen = Some(v);
        }
        if let Some(v) = var("MCPOD_LOG_FORMAT") {
            self.log.format = Some(v);
        }
        if let Some(v) = var("MCPOD_LOG_LEVEL") {
            self.log.level = Some(v);
        }
        if let Some(v) = var("MCPOD_AUTH_DISABLED") {
            self.auth.disabled = Some(boolean("MCPOD_AUTH_DISABLED", v)?);
        }
        if let Some(v) = var("MCPOD_AUTH_TOKENS") {
            self.auth.tokens = Some(list(v));
        }
        if let Some(v) = var("MCPOD_AUTH_TOKEN_FILE") {
            self.auth.token_file = Some(PathBuf::from(v));
        }
        if let Some(v) = var("MCPOD_ALLOWED_ORIGINS") {
            self.allowed_origins = Some(list(v));
        }
        if let Some(v) = var("MCPOD_ALLOWED_HOSTS") {
            self.allowed_hosts = Some(list(v));
        }
        if let Some(v) = var("MCPOD_MAX_BODY_BYTES") {
            let n = v.trim().parse().map_err(|_| {
                invalid("MCPOD_MAX_BODY_BYTES", format!("`{v}` is not a byte count"))
            })?;
            self.limits.max_body_bytes = Some(n);
        }
        if let Some(v) = var("MCPOD_SESSION_IDLE_TIMEOUT") {
            self.limits.session_idle_timeout = Some(duration("MCPOD_SESSION_IDLE_TIMEOUT", v)?);
        }
        if let Some(v) = var("MCPOD_SHUTDOWN_GRACE") {
            self.limits.shutdown_grace = Some(duration("MCPOD_SHUTDOWN_GRACE", v)?);
        }
        Ok(())
    }

    /// Applies command-line overrides.
    pub fn apply_overrides(&mut self, o: &Overrides) {
        if let Some(listen) = &o.listen {
            self.listen = Some(listen.clone());
        }
    }

    /// Checks everything and produces the typed configuration.
    pub fn validate(self) -> Result<Config, ConfigError> {
        let listen_text = self.listen.as_deref().unwrap_or(DEFAULT_LISTEN);
        let listen: SocketAddr = listen_text.parse().map_err(|_| {
            invalid(
                "listen",
                format!("`{listen_text}` is not an address such as 127.0.0.1:8080"),
            )
        })?;

        let log = LogConfig {
            format: match self.log.format.as_deref().unwrap_or("human") {
                "human" | "text" | "pretty" => LogFormat::Human,
                "json" => LogFormat::Json,
                other => {
                    return Err(invalid(
                        "log.format",
                        format!("`{other}`: expected \"human\" or \"json\""),
                    ));
                }
            },
            level: self.log.level.unwrap_or_else(|| "info".to_owned()),
        };
        if tracing_subscriber::EnvFilter::try_new(&log.level).is_err() {
            return Err(invalid(
                "log.level",
                format!("`{}` is not a log filter", log.level),
            ));
        }

        let disabled = self.auth.disabled.unwrap_or(false);
        let tokens = collect_tokens("auth", self.auth.tokens, self.auth.token_file.as_deref())?
            .unwrap_or_default();
        if disabled && !listen.ip().is_loopback() {
            return Err(invalid(
                "auth.disabled",
                format!(
                    "auth may only be disabled on a loopback listener, and `listen` is {listen}"
                ),
            ));
        }
        if disabled && !tokens.is_empty() {
            return Err(invalid(
                "auth.disabled",
                "auth is disabled but tokens are configured; remove one or the other",
            ));
        }

        let d = Limits::default();
        let l = self.limits;
        let positive = |key: &str, v: Option<usize>, default: usize| match v {
            Some(0) => Err(invalid(format!("limits.{key}"), "must be at least 1")),
            Some(n) => Ok(n),
            None => Ok(default),
        };
        let limits = Limits {
            max_body_bytes: positive("max_body_bytes", l.max_body_bytes, d.max_body_bytes)?,
            max_calls_per_target: positive(
                "max_calls_per_target",
                l.max_calls_per_target,
                d.max_calls_per_target,
            )?,
            max_calls_per_session: positive(
                "max_calls_per_session",
                l.max_calls_per_session,
                d.max_calls_per_session,
            )?,
            max_sessions_per_target: positive(
                "max_sessions_per_target",
                l.max_sessions_per_target,
                d.max_sessions_per_target,
            )?,
            session_idle_timeout: opt_duration(
                "limits.session_idle_timeout",
                l.session_idle_timeout,
                d.session_idle_timeout,
            )?,
            sse_keep_alive: opt_duration(
                "limits.sse_keep_alive",
                l.sse_keep_alive,
                d.sse_keep_alive,
            )?,
            shutdown_grace: opt_duration(
                "limits.shutdown_grace",
                l.shutdown_grace,
                d.shutdown_grace,
            )?,
            max_stdio_connections_per_bot: positive(
                "max_stdio_connections_per_bot",
                l.max_stdio_connections_per_bot,
                d.max_stdio_connections_per_bot,
            )?,
        };
        if limits.session_idle_timeout.is_zero() {
            return Err(invalid("limits.session_idle_timeout", "must be above zero"));
        }
        if limits.sse_keep_alive.is_zero() {
            return Err(invalid("limits.sse_keep_alive", "must be above zero"));
        }

        let containerd = self
            .containerd
            .as_ref()
            .map(crate::containerd::ContainerdSettings::from_raw)
            .transpose()?;
        if let Some(c) = &containerd {
            crate::containerd::validate(c, disabled, &tokens)?;
        }
        if self.targets.is_empty() && !containerd.as_ref().is_some_and(|c| c.serve_bots) {
            return Err(invalid(
                "targets",
                "at least one target is needed (or [containerd] serve_bots = true)",
            ));
        }
        let mut targets = BTreeMap::new();
        for (name, raw) in self.targets {
            let target = validate_target(&name, raw, &limits, containerd.as_ref())?;
            targets.insert(name, target);
        }

        let mut bots = BTreeMap::new();
        for (id, raw) in self.bots {
            let key = format!("bots.{id}");
            if !valid_name(&id) {
                return Err(invalid(
                    &key,
                    "a bot id may use letters, digits, `-`, `_` and `.`",
                ));
            }
            let target = raw
                .target
                .ok_or_else(|| invalid(format!("{key}.target"), "missing"))?;
            if !targets.contains_key(&target) {
                return Err(invalid(
                    format!("{key}.target"),
                    format!("no target named `{target}`"),
                ));
            }
            let tokens = collect_tokens(&key, raw.tokens, raw.token_file.as_deref())?;
            if disabled && tokens.is_some() {
                return Err(invalid(
                    format!("{key}.tokens"),
                    "auth is disabled globally; per-bot tokens would be ignored",
                ));
            }
            bots.insert(
                id.clone(),
                BotConfig {
                    id,
                    target,
                    tokens,
                    allow_local_stdio: raw.allow_local_stdio.unwrap_or(false),
                },
            );
        }

        if !disabled
            && tokens.is_empty()
            && (targets.values().any(|t| t.tokens.is_none())
                || bots.values().any(|b| b.tokens.is_none()))
        {
            return Err(invalid(
                "auth",
                "no bearer tokens configured: set auth.tokens or auth.token_file \
                 (or per target/bot tokens), or auth.disabled = true on a loopback listener",
            ));
        }
        if disabled && targets.values().any(|t| t.tokens.is_some()) {
            return Err(invalid(
                "auth.disabled",
                "auth is disabled globally; per-target tokens would be ignored",
            ));
        }

        let allowed_origins = self.allowed_origins.unwrap_or_default();
        for (i, o) in allowed_origins.iter().enumerate() {
            if o != "*" && !(o.starts_with("http://") || o.starts_with("https://")) {
                return Err(invalid(
                    format!("allowed_origins[{i}]"),
                    format!("`{o}` is not an origin such as https://app.example.com (or \"*\")"),
                ));
            }
        }
        Ok(Config {
            listen,
            allowed_origins,
            allowed_hosts: self
                .allowed_hosts
                .unwrap_or_default()
                .into_iter()
                .map(|h| h.to_ascii_lowercase())
                .collect(),
            log,
            auth: AuthConfig { disabled, tokens },
            limits,
            targets,
            bots,
            containerd,
        })
    }
}

fn opt_duration(
    key: &str,
    raw: Option<RawDuration>,
    default: Duration,
) -> Result<Duration, ConfigError> {
    raw.map(|r| r.parse(key))
        .transpose()
        .map(|d| d.unwrap_or(default))
}

/// Names usable in URL paths without escaping.
fn valid_name(name: &str) -> bool {
    !name.is_empty()
        && name.len() <= 128
        && name
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'-' | b'_' | b'.'))
}

/// Tokens given inline and/or in a file; `None` when neither is set.
fn collect_tokens(
    section: &str,
    inline: Option<Vec<String>>,
    file: Option<&Path>,
) -> Result<Option<Vec<String>>, ConfigError> {
    if inline.is_none() && file.is_none() {
        return Ok(None);
    }
    let mut tokens = Vec::new();
    for (i, t) in inline.unwrap_or_default().into_iter().enumerate() {
        check_token(&format!("{section}.tokens[{i}]"), &t)?;
        tokens.push(t);
    }
    if let Some(path) = file {
        let key = format!("{section}.token_file");
        let text = std::fs::read_to_string(path)
            .map_err(|e| invalid(&key, format!("cannot read {}: {e}", path.display())))?;
        for (n, line) in text.lines().enumerate() {
            let line = line.trim();
            if line.is_empty() || line.starts_with('#') {
                continue;
            }
            check_token(&format!("{key} ({}:{})", path.display(), n + 1), line)?;
            tokens.push(line.to_owned());
        }
    }
    if tokens.is_empty() {
        return Err(invalid(
            format!("{section}.tokens"),
            "no tokens given (an empty list would lock every client out)",
        ));
    }
    Ok(Some(tokens))
}

fn check_token(key: &str, token: &str) -> Result<(), ConfigError> {
    if token.len() < 16 {
        return Err(invalid(key, "a token must be at least 16 characters long"));
    }
    if !token.bytes().all(|b| b.is_ascii_graphic()) {
        return Err(invalid(
            key,
            "a token must be printable ASCII without spaces",
        ));
    }
    Ok(())
}

fn validate_target(
    name: &str,
    raw: RawTarget,
    limits: &Limits,
    containerd: Option<&crate::containerd::ContainerdSettings>,
) -> Result<TargetConfig, ConfigError> {
    let key = format!("targets.{name}");
    if !valid_name(name) {
        return Err(invalid(
            &key,
            "a target name may use letters, digits, `-`, `_` and `.`",
        ));
    }
    let backend = match raw.kind.as_deref().unwrap_or("process") {
        "process" => {
            crate::containerd::reject_containerd_fields(&key, &raw)?;
            let command = raw
                .command
                .filter(|c| !c.trim().is_empty())
                .ok_or_else(|| invalid(format!("{key}.command"), "missing (the program to run)"))?;
            BackendSpec::Process(ProcessBackend {
                command: PathBuf::from(command),
                args: raw.args.unwrap_or_default(),
                env: raw.env.unwrap_or_default(),
                env_clear: raw.env_clear.unwrap_or(false),
                cwd: raw.cwd,
            })
        }
        "containerd" => BackendSpec::Containerd(crate::containerd::ContainerdBackend::from_target(
            &key, &raw, containerd,
        )?),
        other => {
            return Err(invalid(
                format!("{key}.kind"),
                format!("unknown kind `{other}` (supported: \"process\", \"containerd\")"),
            ));
        }
    };
    let era = match raw.era.as_deref().unwrap_or("auto") {
        "auto" => mcpod_core::EraMode::Auto,
        "legacy" => mcpod_core::EraMode::Legacy,
        "modern" => mcpod_core::EraMode::Modern,
        other => {
            return Err(invalid(
                format!("{key}.era"),
                format!("`{other}`: expected \"auto\", \"legacy\" or \"modern\""),
            ));
        }
    };
    let sharing = match raw.sharing.as_deref().unwrap_or("shared") {
        "shared" => Sharing::Shared,
        "per_session" => Sharing::PerSession,
        other => {
            return Err(invalid(
                format!("{key}.sharing"),
                format!("`{other}`: expected \"shared\" or \"per_session\""),
            ));
        }
    };
    let call_timeout = opt_duration(
        &format!("{key}.call_timeout"),
        raw.call_timeout,
        Duration::from_secs(60),
    )?;
    if call_timeout.is_zero() {
        return Err(invalid(format!("{key}.call_timeout"), "must be above zero"));
    }
    let tokens = collect_tokens(&key, raw.tokens, raw.token_file.as_deref())?;
    if let Some(roots) = &raw.roots {
        for (i, r) in roots.iter().enumerate() {
            if !r.uri.starts_with("file://") {
                return Err(invalid(
                    format!("{key}.roots[{i}].uri"),
                    format!("`{}` is not a file:// URI", r.uri),
                ));
            }
        }
    }
    let max_calls_in_flight = match raw.max_calls_in_flight {
        Some(0) => {
            return Err(invalid(
                format!("{key}.max_calls_in_flight"),
                "must be at least 1",
            ));
        }
        Some(n) => n,
        None => limits.max_calls_per_target,
    };
    Ok(TargetConfig {
        name: name.to_owned(),
        backend,
        era,
        call_timeout,
        sharing,
        tokens,
        roots: raw.roots,
        max_calls_in_flight,
        shutdown_grace: opt_duration(
            &format!("{key}.shutdown_grace"),
            raw.shutdown_grace,
            Duration::from_secs(3),
        )?,
    })
}

impl Config {
    /// Whether the listener is on a loopback address.
    pub fn is_loopback(&self) -> bool {
        is_loopback_ip(self.listen.ip())
    }
}

fn is_loopback_ip(ip: IpAddr) -> bool {
    ip.is_loopback()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn load(text: &str) -> Result<Config, String> {
        RawConfig::from_toml(text)?
            .validate()
            .map_err(|e| e.to_string())
    }

    const TOKEN: &str = "0123456789abcdef0123";

    #[test]
    fn minimal_config_gets_defaults() {
        let c = load(&format!(
            "[auth]\ntokens = [\"{TOKEN}\"]\n[targets.t]\ncommand = \"/bin/cat\"\n"
        ))
        .unwrap();
        assert_eq!(c.listen.to_string(), DEFAULT_LISTEN);
        assert_eq!(c.limits.max_body_bytes, 8 * 1024 * 1024);
        let t = &c.targets["t"];
        assert_eq!(t.sharing, Sharing::Shared);
        assert_eq!(t.era, mcpod_core::EraMode::Auto);
        assert_eq!(t.backend.kind(), "process");
    }

    #[test]
    fn errors_name_the_key() {
        let cases = [
            (
                "listen = \"nope\"\n[auth]\ndisabled = true\n[targets.t]\ncommand = \"x\"",
                "listen",
            ),
            (
                "[auth]\ndisabled = true\n[targets.t]\ncommand = \"x\"\nsharing = \"all\"",
                "targets.t.sharing",
            ),
            (
                "[auth]\ndisabled = true\n[targets.t]\ncommand = \"x\"\nera = \"old\"",
                "targets.t.era",
            ),
            (
                "[auth]\ndisabled = true\n[targets.t]\nkind = \"vm\"\ncommand = \"x\"",
                "targets.t.kind",
            ),
            (
                "[auth]\ndisabled = true\n[targets.t]\nargs = []",
                "targets.t.command",
            ),
            (
                "[auth]\ndisabled = true\n[targets.t]\ncommand = \"x\"\ncall_timeout = \"soon\"",
                "targets.t.call_timeout",
            ),
            (
                "[auth]\ndisabled = true\n[limits]\nmax_body_bytes = 0\n[targets.t]\ncommand = \"x\"",
                "limits.max_body_bytes",
            ),
            (
                "[auth]\ndisabled = true\n[targets.t]\ncommand = \"x\"\n[bots.b]\ntarget = \"u\"",
                "bots.b.target",
            ),
            ("[targets.t]\ncommand = \"x\"", "auth"),
            (
                "[auth]\ntokens = [\"short\"]\n[targets.t]\ncommand = \"x\"",
                "auth.tokens[0]",
            ),
            (
                "listen = \"0.0.0.0:1\"\n[auth]\ndisabled = true\n[targets.t]\ncommand = \"x\"",
                "auth.disabled",
            ),
            ("[auth]\ndisabled = true", "targets"),
            (
                "[auth]\ndisabled = true\n[log]\nformat = \"xml\"\n[targets.t]\ncommand = \"x\"",
                "log.format",
            ),
            (
                "allowed_origins = [\"example.com\"]\n[auth]\ndisabled = true\n[targets.t]\ncommand = \"x\"",
                "allowed_origins[0]",
            ),
        ];
        for (text, key) in cases {
            let err = load(text).unwrap_err();
            assert!(err.starts_with(key), "{key}: {err}");
        }
    }

    #[test]
    fn unknown_and_mistyped_keys_are_named() {
        let err =
            load("[auth]\ndisabled = true\n[targets.t]\ncommand = \"x\"\ncomand = 1").unwrap_err();
        assert!(err.contains("comand"), "{err}");
        let err = load("[limits]\nmax_body_bytes = \"big\"\n").unwrap_err();
        assert!(err.contains("max_body_bytes"), "{err}");
    }

    #[test]
    fn env_overrides_apply_and_are_checked() {
        let mut raw =
            RawConfig::from_toml("[auth]\ndisabled = true\n[targets.t]\ncommand = \"x\"").unwrap();
        raw.apply_env(|k| match k {
            "MCPOD_LISTEN" => Some("127.0.0.1:9999".into()),
            "MCPOD_MAX_BODY_BYTES" => Some("1024".into()),
            "MCPOD_SESSION_IDLE_TIMEOUT" => Some("90s".into()),
            _ => None,
        })
        .unwrap();
        let c = raw.validate().unwrap();
        assert_eq!(c.listen.port(), 9999);
        assert_eq!(c.limits.max_body_bytes, 1024);
        assert_eq!(c.limits.session_idle_timeout, Duration::from_secs(90));

        let mut raw = RawConfig::default();
        let err = raw
            .apply_env(|k| (k == "MCPOD_AUTH_DISABLED").then(|| "maybe".into()))
            .unwrap_err();
        assert!(err.to_string().starts_with("MCPOD_AUTH_DISABLED"), "{err}");
    }

    #[test]
    fn token_file_is_read() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("tokens");
        std::fs::write(&path, format!("# comment\n\n{TOKEN}\n")).unwrap();
        let c = load(&format!(
            "[auth]\ntoken_file = \"{}\"\n[targets.t]\ncommand = \"x\"",
            path.display()
        ))
        .unwrap();
        assert_eq!(c.auth.tokens, vec![TOKEN.to_owned()]);
        let err = load("[auth]\ntoken_file = \"/nonexistent/x\"\n[targets.t]\ncommand = \"x\"")
            .unwrap_err();
        assert!(err.starts_with("auth.token_file"), "{err}");
    }

    #[test]
    fn durations_parse() {
        assert_eq!(parse_duration("250ms"), Some(Duration::from_millis(250)));
        assert_eq!(parse_duration("30s"), Some(Duration::from_secs(30)));
        assert_eq!(parse_duration("5m"), Some(Duration::from_secs(300)));
        assert_eq!(parse_duration("2h"), Some(Duration::from_secs(7200)));
        assert_eq!(parse_duration("7"), Some(Duration::from_secs(7)));
        assert_eq!(parse_duration("x"), None);
        assert_eq!(parse_duration("5 parsecs"), None);
    }

    #[test]
    fn embedded_default_is_valid_on_loopback_only() {
        let raw = RawConfig::embedded_default(Path::new("/usr/bin/mcpod"));
        let c = raw.clone().validate().unwrap();
        assert!(c.auth.disabled);
        assert!(c.targets.contains_key("demo"));
        let mut raw = raw;
        raw.apply_overrides(&Overrides {
            listen: Some("0.0.0.0:8080".into()),
        });
        assert!(raw.validate().is_err());
    }
}

//! The config file as written ([`RawConfig`]: every field optional,
//! unknown keys refused), with its `MCPOD_*` environment and command-line
//! overrides applied before validation.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use serde::Deserialize;

use super::duration::{RawDuration, parse_duration};
use super::error::{ConfigError, invalid};
use super::oauth::{RawOAuth, RawTargetAuth};
use super::policy::RawPolicyRule;

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
    /// `http2`: serve HTTP/2 with prior knowledge (h2c) besides HTTP/1.1
    /// (default true).
    pub http2: Option<bool>,
    /// `public_url`: the gateway's URL as clients reach it (behind a proxy),
    /// e.g. `https://mcp.example.com`; names the resource in the OAuth
    /// protected resource metadata (default: from the request's authority).
    pub public_url: Option<String>,
    /// `workers`: the runtime's worker threads (default: one less than the
    /// CPUs, at least one).
    pub workers: Option<usize>,
    /// `[log]`.
    #[serde(default)]
    pub log: RawLog,
    /// `[auth]`.
    #[serde(default)]
    pub auth: RawAuth,
    /// `[limits]`.
    #[serde(default)]
    pub limits: RawLimits,
    /// `[sessions]`: sealed legacy session ids, for replicas.
    #[serde(default)]
    pub sessions: RawSessions,
    /// `[targets.<name>]`.
    #[serde(default)]
    pub targets: BTreeMap<String, RawTarget>,
    /// `[bots.<bot_id>]`: Memoh-compatible routes.
    #[serde(default)]
    pub bots: BTreeMap<String, RawBot>,
    /// `[containerd]`: defaults of containerd targets, and whether every bot
    /// with a container is served on the Memoh routes.
    pub containerd: Option<RawContainerd>,
    /// `[telemetry]`: OpenTelemetry export.
    #[serde(default)]
    pub telemetry: super::telemetry::RawTelemetry,
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
    /// Tokens with names (name = token), which policies can refer to.
    pub named_tokens: Option<BTreeMap<String, String>>,
    /// `[auth.oauth]`: OAuth access tokens of one issuer, for every target
    /// without its own.
    pub oauth: Option<RawOAuth>,
}

/// `[sessions]`.
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawSessions {
    /// A file with the key (32 bytes, or 64 hex digits, or base64) that
    /// seals legacy session ids and `requestState`s, shared by the
    /// replicas; without it ids are random and known to one process.
    pub key_file: Option<PathBuf>,
    /// Files with earlier keys, still accepted (not used to seal).
    pub old_key_files: Option<Vec<PathBuf>>,
    /// How long a sealed session id is accepted after its `initialize`.
    pub max_age: Option<RawDuration>,
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
    /// Legacy client sessions of one principal (token) per target.
    pub max_sessions_per_principal: Option<usize>,
    /// Calls in flight of one principal per target.
    pub max_calls_per_principal: Option<usize>,
    /// `subscriptions/listen` streams of one principal per target.
    pub max_listens_per_principal: Option<usize>,
    /// Idle time after which a legacy session expires.
    pub session_idle_timeout: Option<RawDuration>,
    /// Interval of SSE keep-alive comments.
    pub sse_keep_alive: Option<RawDuration>,
    /// How long in-flight calls may run on after SIGINT/SIGTERM.
    pub shutdown_grace: Option<RawDuration>,
    /// How long the gateway keeps serving after SIGINT/SIGTERM with
    /// `/readyz` answering 503, before it stops accepting (the balancer
    /// notices meanwhile).
    pub shutdown_drain: Option<RawDuration>,
    /// Local stdio connections per bot (Memoh `mcp-stdio`).
    pub max_stdio_connections_per_bot: Option<usize>,
    /// Open client connections (default: derived from `RLIMIT_NOFILE`).
    pub max_connections: Option<usize>,
    /// Time a connection has to complete a request head, once it sends
    /// its first byte (or, before anything, to send one).
    pub header_read_timeout: Option<RawDuration>,
    /// Time a request has to deliver its whole body.
    pub body_read_timeout: Option<RawDuration>,
    /// Time a keep-alive connection may stay open with no request.
    pub idle_timeout: Option<RawDuration>,
    /// Open streams per target: legacy GET streams and 2026-07-28
    /// `subscriptions/listen` streams together.
    pub max_streams_per_target: Option<usize>,
    /// Open GET streams per legacy client session.
    pub max_streams_per_session: Option<usize>,
    /// How long a stream may stay open before the gateway ends it.
    pub max_stream_lifetime: Option<RawDuration>,
    /// Server messages per legacy session kept for `Last-Event-ID` replay.
    pub sse_replay_events: Option<usize>,
}

/// `[targets.<name>]`.
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawTarget {
    /// `"process"` (the default), `"containerd"` or `"aggregate"`.
    pub kind: Option<String>,
    /// The program to run (process targets).
    pub command: Option<String>,
    /// Its arguments.
    pub args: Option<Vec<String>>,
    /// Extra environment variables.
    pub env: Option<BTreeMap<String, String>>,
    /// Inherit none of the gateway's environment (only `env`); `MCPOD_*`
    /// variables are never inherited either way.
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
    /// Named tokens for this target (name = token).
    pub named_tokens: Option<BTreeMap<String, String>>,
    /// `[targets.NAME.auth]`: which credentials it accepts, its own issuer.
    pub auth: Option<RawTargetAuth>,
    /// `[[targets.NAME.policy]]`: who may see and use which tools, prompts
    /// and resources.
    pub policy: Option<Vec<RawPolicyRule>>,
    /// Roots answered to the backend's `roots/list` when no client can.
    pub roots: Option<Vec<RawRoot>>,
    /// Calls in flight for this target (overrides `limits`).
    pub max_calls_in_flight: Option<usize>,
    /// Grace period for the backend to exit after its stdin closes.
    pub shutdown_grace: Option<RawDuration>,
    /// Wait before restarting a backend that died quickly twice in a row
    /// (doubling with each further quick death).
    pub restart_backoff_min: Option<RawDuration>,
    /// The longest wait between restarts.
    pub restart_backoff_max: Option<RawDuration>,
    /// Tools whose calls may ask the client (sampling, elicitation,
    /// roots): exact names, or patterns with `*`.
    pub asking_tools: Option<Vec<String>>,
    /// Send a shared backend's log messages that no call owns to every
    /// client (default: to nobody).
    pub broadcast_logs: Option<bool>,
    /// The targets an aggregate serves (aggregate targets).
    pub members: Option<Vec<String>>,
    /// The prefix of each member's names, by member (aggregate targets;
    /// default `{member}_`, `""` for none).
    pub prefixes: Option<BTreeMap<String, String>>,
    /// How long a member's part of a merged list is waited for (aggregate
    /// targets).
    pub member_timeout: Option<RawDuration>,
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
    /// The directory every `mcp-stdio` server's `cwd` must be inside (and
    /// the `cwd` of a request that names none).
    pub stdio_cwd_root: Option<PathBuf>,
    /// The commands `mcp-stdio` may start: absolute paths, or names looked
    /// up in `PATH`, matched exactly.
    pub stdio_commands: Option<Vec<String>>,
    /// The user id `mcp-stdio` servers run as (with `stdio_gid`).
    pub stdio_uid: Option<u32>,
    /// The group id `mcp-stdio` servers run as (with `stdio_uid`).
    pub stdio_gid: Option<u32>,
}

/// `[containerd]` as written: the defaults of every containerd target, and
/// whether unconfigured bots are served on the Memoh routes.
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawContainerd {
    /// containerd's socket (default `/run/containerd/containerd.sock`).
    pub socket: Option<PathBuf>,
    /// containerd namespace (default `default`).
    pub namespace: Option<String>,
    /// Container id prefix: a bot's container is `{prefix}{bot_id}` (default `mcp-`).
    pub container_prefix: Option<String>,
    /// Absolute directory for the per-process FIFO directories.
    pub fifo_root: Option<PathBuf>,
    /// Accept containers without the `mcp.bot_id` label (default false).
    pub allow_unlabelled: Option<bool>,
    /// Start a bot's task when it is not running (default true).
    pub start_stopped_tasks: Option<bool>,
    /// The program exec'd in the container (default `/app/mcp`).
    pub command: Option<String>,
    /// Its arguments.
    pub args: Option<Vec<String>>,
    /// Environment set on top of the container's.
    pub env: Option<BTreeMap<String, String>>,
    /// Working directory inside the container (default: the container's).
    pub cwd: Option<String>,
    /// Stop an exec'd server after this long without traffic (`0`: never).
    pub idle_timeout: Option<RawDuration>,
    /// Serve every bot that has a container on `/bots/{bot_id}/…` (default false).
    pub serve_bots: Option<bool>,
    /// How long transient containerd failures are retried, counted from the
    /// first failure (default 30 s).
    pub retry_budget: Option<RawDuration>,
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
        if let Some(v) = var("MCPOD_WORKERS") {
            let n = v.trim().parse().map_err(|_| {
                invalid("MCPOD_WORKERS", format!("`{v}` is not a number of threads"))
            })?;
            self.workers = Some(n);
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
        if let Some(v) = var("MCPOD_SHUTDOWN_DRAIN") {
            self.limits.shutdown_drain = Some(duration("MCPOD_SHUTDOWN_DRAIN", v)?);
        }
        if let Some(v) = var("MCPOD_SESSION_KEY_FILE") {
            self.sessions.key_file = Some(PathBuf::from(v));
        }
        self.telemetry.apply_env(&var);
        Ok(())
    }

    /// Applies command-line overrides.
    pub fn apply_overrides(&mut self, o: &Overrides) {
        if let Some(listen) = &o.listen {
            self.listen = Some(listen.clone());
        }
    }
}

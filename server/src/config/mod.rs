//! The gateway's configuration: a TOML file, `MCPOD_*` environment
//! overrides, command-line overrides, and validation into typed values.
//!
//! Loading goes in two steps: the file is read into [`RawConfig`] (every
//! field optional, unknown keys refused), overrides are applied to it, then
//! [`RawConfig::validate`] checks everything and produces a [`Config`]. Every
//! error names the key (or environment variable) at fault.

use std::collections::BTreeMap;
use std::net::{IpAddr, SocketAddr};
use std::path::PathBuf;
use std::time::Duration;

mod aggregate;
mod containerd;
mod duration;
mod error;
mod example;
mod oauth;
mod policy;
mod raw;
mod sessions;
mod stdio;
mod telemetry;
mod tokens;

pub use aggregate::{AggregateConfig, AggregateMember, DEFAULT_MEMBER_TIMEOUT, MAX_MEMBERS};
pub use containerd::{ContainerdBackend, ContainerdSettings, ExecCommand};
pub use duration::RawDuration;
pub use duration::{MAX_DURATION, parse_duration};
pub use error::ConfigError;
use error::invalid;
pub use example::EXAMPLE;
pub use oauth::{
    ALGORITHMS, AuthMethods, JwksSource, OAuthConfig, OneOrMany, RawOAuth, RawTargetAuth,
};
pub use policy::{Access, ItemKind, Policy, RawPolicyRule};
pub use raw::{
    Overrides, RawAuth, RawBot, RawConfig, RawContainerd, RawLimits, RawLog, RawRoot, RawSessions,
    RawTarget,
};
pub use sessions::{DEFAULT_SESSION_MAX_AGE, SessionsConfig};
pub use stdio::{InheritEnv, RunAs, STDIO_ENV_ALLOWLIST, StdioPolicy, WITHHELD_ENV_PREFIX};
pub use telemetry::{
    DEFAULT_SERVICE_NAME, OtlpExport, OtlpProtocol, RawTelemetry, TelemetryConfig,
};
use tokens::collect_tokens;

/// Default listen address.
pub const DEFAULT_LISTEN: &str = "127.0.0.1:8080";
/// Default request body limit: tool payloads with images are large.
pub const DEFAULT_MAX_BODY_BYTES: usize = 8 * 1024 * 1024;

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
    /// The names of named tokens (global and per target), by token.
    pub token_names: BTreeMap<String, String>,
    /// `[auth.oauth]`: the issuer of every target without its own.
    pub oauth: Option<OAuthConfig>,
}

/// `[limits]`, validated.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Limits {
    /// Largest request body, in bytes.
    pub max_body_bytes: usize,
    /// Calls in flight per target.
    pub max_calls_per_target: usize,
    /// Calls in flight per legacy session.
    pub max_calls_per_session: usize,
    /// Legacy sessions per target.
    pub max_sessions_per_target: usize,
    /// Legacy sessions of one principal (the holder of one token) per
    /// target; not counted with auth off.
    pub max_sessions_per_principal: usize,
    /// Calls in flight of one principal per target; not counted with auth
    /// off.
    pub max_calls_per_principal: usize,
    /// `subscriptions/listen` streams of one principal per target; not
    /// counted with auth off.
    pub max_listens_per_principal: usize,
    /// Idle time before a legacy session expires.
    pub session_idle_timeout: Duration,
    /// SSE keep-alive interval.
    pub sse_keep_alive: Duration,
    /// Grace period at shutdown.
    pub shutdown_grace: Duration,
    /// Time at shutdown spent serving while `/readyz` answers 503, before
    /// the gateway stops accepting (so a balancer stops sending first).
    pub shutdown_drain: Duration,
    /// Local stdio connections per bot.
    pub max_stdio_connections_per_bot: usize,
    /// Open client connections; `None`: derived from `RLIMIT_NOFILE` when
    /// the gateway starts.
    pub max_connections: Option<usize>,
    /// Time a connection has to send the first byte of a request and then
    /// complete its head.
    pub header_read_timeout: Duration,
    /// Time a request has to deliver its whole body (408 after it).
    pub body_read_timeout: Duration,
    /// Time a keep-alive connection may stay open with no request in
    /// flight.
    pub idle_timeout: Duration,
    /// Open streams per target: legacy GET streams and 2026-07-28
    /// `subscriptions/listen` streams together, outside the call budget.
    pub max_streams_per_target: usize,
    /// Open GET streams per legacy client session.
    pub max_streams_per_session: usize,
    /// How long a stream may stay open before the gateway ends it (the
    /// client reconnects: a legacy one with `Last-Event-ID`, a 2026-07-28
    /// one with a new `subscriptions/listen`).
    pub max_stream_lifetime: Duration,
    /// Server messages per legacy session kept for `Last-Event-ID` replay.
    pub sse_replay_events: usize,
}

impl Default for Limits {
    fn default() -> Self {
        Limits {
            max_body_bytes: DEFAULT_MAX_BODY_BYTES,
            max_calls_per_target: 1024,
            max_calls_per_session: 64,
            max_sessions_per_target: 1024,
            max_sessions_per_principal: 256,
            max_calls_per_principal: 256,
            max_listens_per_principal: 256,
            session_idle_timeout: Duration::from_secs(30 * 60),
            sse_keep_alive: Duration::from_secs(15),
            shutdown_grace: Duration::from_secs(10),
            shutdown_drain: Duration::ZERO,
            max_stdio_connections_per_bot: 8,
            max_connections: None,
            header_read_timeout: Duration::from_secs(10),
            body_read_timeout: Duration::from_secs(30),
            idle_timeout: Duration::from_secs(60),
            max_streams_per_target: 1024,
            max_streams_per_session: 4,
            max_stream_lifetime: Duration::from_secs(3600),
            sse_replay_events: 256,
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
    /// Extra environment, set as written.
    pub env: BTreeMap<String, String>,
    /// Which of the gateway's variables it inherits (never `MCPOD_*` ones).
    pub inherit_env: InheritEnv,
    /// Working directory.
    pub cwd: Option<PathBuf>,
    /// Whom it runs as (`None`: the gateway's user).
    pub user: Option<RunAs>,
}

/// What runs a target's backend. New kinds (containerd) add a variant here
/// and an arm where targets are launched.
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub enum BackendSpec {
    /// `kind = "process"`.
    Process(ProcessBackend),
    /// `kind = "containerd"`: a process exec'd in a bot's container.
    Containerd(ContainerdBackend),
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
#[derive(Debug, Clone, PartialEq)]
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
    /// Which credentials it accepts.
    pub auth_methods: AuthMethods,
    /// Its own issuer (`None`: `[auth.oauth]`, if any).
    pub oauth: Option<OAuthConfig>,
    /// Who may see and use which of its tools, prompts and resources
    /// (`None`: everyone, everything).
    pub policy: Option<std::sync::Arc<Policy>>,
    /// Roots for `roots/list` when no client can answer.
    pub roots: Option<Vec<RawRoot>>,
    /// Calls in flight for this target.
    pub max_calls_in_flight: usize,
    /// Backend exit grace period.
    pub shutdown_grace: Duration,
    /// Restart backoff after quick deaths: its first wait and its cap.
    pub restart_backoff: (Duration, Duration),
    /// Tools whose calls may ask the client (exact names, or patterns
    /// where `*` stands for any run of characters): on a shared legacy
    /// backend they take turns, so that a server request goes to the
    /// call that asked. Tools seen asking are added to these.
    pub asking_tools: Vec<String>,
    /// Whether a shared backend's log messages that no call owns go to
    /// every client (else to nobody: they may carry any client's data).
    pub broadcast_logs: bool,
}

/// The restart backoff of a target that sets none: 100 ms doubling up to
/// 10 s.
pub const DEFAULT_RESTART_BACKOFF: (Duration, Duration) =
    (Duration::from_millis(100), Duration::from_secs(10));

/// Patterns in `asking_tools`, at most.
pub const MAX_ASKING_TOOLS: usize = 256;

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
    /// What its `mcp-stdio` servers may be.
    pub stdio: StdioPolicy,
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
    /// Serve HTTP/2 with prior knowledge (h2c) besides HTTP/1.1.
    pub http2: bool,
    /// The gateway's URL as clients reach it (no trailing `/`), if set.
    pub public_url: Option<String>,
    /// The runtime's worker threads.
    pub workers: usize,
    /// Logging.
    pub log: LogConfig,
    /// Auth.
    pub auth: AuthConfig,
    /// Limits.
    pub limits: Limits,
    /// `[sessions]`: sealed session ids for replicas.
    pub sessions: SessionsConfig,
    /// Targets by name (aggregates apart).
    pub targets: BTreeMap<String, TargetConfig>,
    /// `kind = "aggregate"` targets by name.
    pub aggregates: BTreeMap<String, AggregateConfig>,
    /// Bots by id.
    pub bots: BTreeMap<String, BotConfig>,
    /// `[containerd]`, if given.
    pub containerd: Option<ContainerdSettings>,
    /// `[telemetry]`: OpenTelemetry export (off unless configured).
    pub telemetry: TelemetryConfig,
}

impl RawConfig {
    /// Checks everything and produces the typed configuration.
    pub fn validate(self) -> Result<Config, ConfigError> {
        let listen = validate_listen(self.listen.as_deref())?;
        let log = validate_log(self.log)?;
        let mut auth = validate_auth(self.auth, listen)?;
        let limits = validate_limits(self.limits)?;
        let sessions = sessions::validate_sessions(self.sessions)?;
        let telemetry = self.telemetry.validate()?;
        let containerd = self
            .containerd
            .as_ref()
            .map(ContainerdSettings::from_raw)
            .transpose()?;
        if let Some(c) = &containerd {
            // Unconfigured bots take the global credentials: tokens or
            // [auth.oauth] access tokens.
            if auth.oauth.is_none() {
                containerd::validate_section(c, auth.disabled, &auth.tokens)?;
            }
        }
        if self.targets.is_empty() && !containerd.as_ref().is_some_and(|c| c.serve_bots) {
            return Err(invalid(
                "targets",
                "at least one target is needed (or [containerd] serve_bots = true)",
            ));
        }
        let mut targets = BTreeMap::new();
        let mut aggregates = BTreeMap::new();
        for (name, raw) in &self.targets {
            let mut raw = raw.clone();
            let key = format!("targets.{name}");
            let guard = RouteGuard {
                named: raw.named_tokens.take(),
                auth: raw.auth.take().unwrap_or_default(),
                policy: raw.policy.take(),
            };
            if aggregate::is_aggregate(&raw) {
                if !valid_name(name) {
                    return Err(invalid(
                        &key,
                        "a target name may use letters, digits, `-`, `_` and `.`",
                    ));
                }
                let mut aggregate = aggregate::validate_aggregate(name, &raw, &self.targets)?;
                let tokens = collect_tokens(&key, raw.tokens.take(), raw.token_file.as_deref())?;
                let route = guard.validate(&key, tokens, &mut auth)?;
                aggregate.tokens = route.tokens;
                aggregate.auth_methods = route.auth_methods;
                aggregate.oauth = route.oauth;
                aggregate.policy = route.policy;
                aggregates.insert(name.clone(), aggregate);
                continue;
            }
            aggregate::reject_aggregate_fields(&key, &raw)?;
            let mut target = validate_target(name, raw, &limits, containerd.as_ref())?;
            let route = guard.validate(&key, target.tokens.take(), &mut auth)?;
            target.tokens = route.tokens;
            target.auth_methods = route.auth_methods;
            target.oauth = route.oauth;
            target.policy = route.policy;
            targets.insert(name.clone(), target);
        }
        let bots = validate_bots(self.bots, &targets, &aggregates, auth.disabled)?;
        check_every_route_has_tokens(&auth, &targets, &aggregates, &bots)?;
        Ok(Config {
            listen,
            allowed_origins: validate_origins(self.allowed_origins.unwrap_or_default())?,
            allowed_hosts: self
                .allowed_hosts
                .unwrap_or_default()
                .into_iter()
                .map(|h| h.to_ascii_lowercase())
                .collect(),
            http2: self.http2.unwrap_or(true),
            public_url: validate_public_url(self.public_url)?,
            workers: validate_workers(self.workers)?,
            log,
            auth,
            limits,
            sessions,
            targets,
            aggregates,
            bots,
            containerd,
            telemetry,
        })
    }
}

/// The keys of a target (or aggregate) that guard its route: named
/// tokens, `[targets.NAME.auth]`, `[[targets.NAME.policy]]`.
struct RouteGuard {
    named: Option<BTreeMap<String, String>>,
    auth: RawTargetAuth,
    policy: Option<Vec<RawPolicyRule>>,
}

/// A route's credentials and policy, validated.
struct Route {
    tokens: Option<Vec<String>>,
    auth_methods: AuthMethods,
    oauth: Option<OAuthConfig>,
    policy: Option<std::sync::Arc<Policy>>,
}

impl RouteGuard {
    /// Validates the guard of the route `key` whose own tokens are
    /// `tokens`, adding its named tokens to `auth`'s names.
    fn validate(
        self,
        key: &str,
        tokens: Option<Vec<String>>,
        auth: &mut AuthConfig,
    ) -> Result<Route, ConfigError> {
        let tokens = tokens::add_named(key, tokens, self.named, &mut auth.token_names)?;
        if auth.disabled && (self.auth.oauth.is_some() || self.auth.methods.is_some()) {
            return Err(invalid(
                format!("{key}.auth"),
                "auth is disabled globally; the target's auth would be ignored",
            ));
        }
        let oauth = self
            .auth
            .oauth
            .map(|o| OAuthConfig::from_raw(&format!("{key}.auth.oauth"), o))
            .transpose()?;
        let auth_methods = AuthMethods::from_raw(
            key,
            self.auth.methods.as_deref(),
            !auth.disabled && (tokens.is_some() || !auth.tokens.is_empty()),
            oauth.is_some() || auth.oauth.is_some(),
        )?;
        let policy =
            Policy::from_raw(key, self.policy.unwrap_or_default())?.map(std::sync::Arc::new);
        Ok(Route {
            tokens,
            auth_methods,
            oauth,
            policy,
        })
    }
}

fn validate_listen(listen: Option<&str>) -> Result<SocketAddr, ConfigError> {
    let text = listen.unwrap_or(DEFAULT_LISTEN);
    text.parse().map_err(|_| {
        invalid(
            "listen",
            format!("`{text}` is not an address such as 127.0.0.1:8080"),
        )
    })
}

/// Most runtime threads a config may ask for.
const MAX_WORKERS: usize = 1024;

/// The worker threads: as asked, else one less than the CPUs (at least
/// one). The backends are the gateway's own child processes and do the
/// real work of a call; a worker per CPU makes them and the gateway fight
/// over every core, and hands each call across threads (README, "Runtime
/// layout": one worker on two CPUs spends 15-25 % less CPU a call).
fn validate_workers(workers: Option<usize>) -> Result<usize, ConfigError> {
    match workers {
        Some(n) if (1..=MAX_WORKERS).contains(&n) => Ok(n),
        Some(n) => Err(invalid(
            "workers",
            format!("{n}: expected 1 to {MAX_WORKERS} threads"),
        )),
        None => Ok(std::thread::available_parallelism()
            .map_or(1, |n| n.get().saturating_sub(1))
            .max(1)),
    }
}

fn validate_log(raw: RawLog) -> Result<LogConfig, ConfigError> {
    let log = LogConfig {
        format: match raw.format.as_deref().unwrap_or("human") {
            "human" | "text" | "pretty" => LogFormat::Human,
            "json" => LogFormat::Json,
            other => {
                return Err(invalid(
                    "log.format",
                    format!("`{other}`: expected \"human\" or \"json\""),
                ));
            }
        },
        level: raw.level.unwrap_or_else(|| "info".to_owned()),
    };
    if tracing_subscriber::EnvFilter::try_new(&log.level).is_err() {
        return Err(invalid(
            "log.level",
            format!("`{}` is not a log filter", log.level),
        ));
    }
    Ok(log)
}

fn validate_public_url(url: Option<String>) -> Result<Option<String>, ConfigError> {
    let Some(url) = url else { return Ok(None) };
    let trimmed = url.trim_end_matches('/');
    let authority = trimmed
        .strip_prefix("https://")
        .or_else(|| trimmed.strip_prefix("http://"));
    match authority {
        Some(a)
            if !a.is_empty()
                && !a.contains(['?', '#'])
                && a.bytes().all(|b| b.is_ascii_graphic()) =>
        {
            Ok(Some(trimmed.to_owned()))
        }
        _ => Err(invalid(
            "public_url",
            format!("`{url}` is not a URL such as https://mcp.example.com"),
        )),
    }
}

fn validate_auth(raw: RawAuth, listen: SocketAddr) -> Result<AuthConfig, ConfigError> {
    let disabled = raw.disabled.unwrap_or(false);
    let mut token_names = BTreeMap::new();
    let tokens = collect_tokens("auth", raw.tokens, raw.token_file.as_deref())?;
    let tokens =
        tokens::add_named("auth", tokens, raw.named_tokens, &mut token_names)?.unwrap_or_default();
    let oauth = raw
        .oauth
        .map(|o| OAuthConfig::from_raw("auth.oauth", o))
        .transpose()?;
    if disabled && oauth.is_some() {
        return Err(invalid(
            "auth.disabled",
            "auth is disabled but [auth.oauth] is configured; remove one or the other",
        ));
    }
    if disabled && !listen.ip().is_loopback() {
        return Err(invalid(
            "auth.disabled",
            format!("auth may only be disabled on a loopback listener, and `listen` is {listen}"),
        ));
    }
    if disabled && !tokens.is_empty() {
        return Err(invalid(
            "auth.disabled",
            "auth is disabled but tokens are configured; remove one or the other",
        ));
    }
    Ok(AuthConfig {
        disabled,
        tokens,
        token_names,
        oauth,
    })
}

fn validate_limits(l: RawLimits) -> Result<Limits, ConfigError> {
    let d = Limits::default();
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
        max_sessions_per_principal: positive(
            "max_sessions_per_principal",
            l.max_sessions_per_principal,
            d.max_sessions_per_principal,
        )?,
        max_calls_per_principal: positive(
            "max_calls_per_principal",
            l.max_calls_per_principal,
            d.max_calls_per_principal,
        )?,
        max_listens_per_principal: positive(
            "max_listens_per_principal",
            l.max_listens_per_principal,
            d.max_listens_per_principal,
        )?,
        session_idle_timeout: opt_duration(
            "limits.session_idle_timeout",
            l.session_idle_timeout,
            d.session_idle_timeout,
        )?,
        sse_keep_alive: opt_duration("limits.sse_keep_alive", l.sse_keep_alive, d.sse_keep_alive)?,
        shutdown_grace: opt_duration("limits.shutdown_grace", l.shutdown_grace, d.shutdown_grace)?,
        shutdown_drain: opt_duration("limits.shutdown_drain", l.shutdown_drain, d.shutdown_drain)?,
        max_stdio_connections_per_bot: positive(
            "max_stdio_connections_per_bot",
            l.max_stdio_connections_per_bot,
            d.max_stdio_connections_per_bot,
        )?,
        max_connections: l
            .max_connections
            .map(|n| positive("max_connections", Some(n), n))
            .transpose()?,
        header_read_timeout: opt_duration(
            "limits.header_read_timeout",
            l.header_read_timeout,
            d.header_read_timeout,
        )?,
        body_read_timeout: opt_duration(
            "limits.body_read_timeout",
            l.body_read_timeout,
            d.body_read_timeout,
        )?,
        idle_timeout: opt_duration("limits.idle_timeout", l.idle_timeout, d.idle_timeout)?,
        max_streams_per_target: positive(
            "max_streams_per_target",
            l.max_streams_per_target,
            d.max_streams_per_target,
        )?,
        max_streams_per_session: positive(
            "max_streams_per_session",
            l.max_streams_per_session,
            d.max_streams_per_session,
        )?,
        max_stream_lifetime: opt_duration(
            "limits.max_stream_lifetime",
            l.max_stream_lifetime,
            d.max_stream_lifetime,
        )?,
        sse_replay_events: positive(
            "sse_replay_events",
            l.sse_replay_events,
            d.sse_replay_events,
        )?,
    };
    for (key, d) in [
        ("limits.session_idle_timeout", limits.session_idle_timeout),
        ("limits.sse_keep_alive", limits.sse_keep_alive),
        ("limits.header_read_timeout", limits.header_read_timeout),
        ("limits.body_read_timeout", limits.body_read_timeout),
        ("limits.idle_timeout", limits.idle_timeout),
        ("limits.max_stream_lifetime", limits.max_stream_lifetime),
    ] {
        if d.is_zero() {
            return Err(invalid(key, "must be above zero"));
        }
    }
    Ok(limits)
}

fn validate_bots(
    raw: BTreeMap<String, RawBot>,
    targets: &BTreeMap<String, TargetConfig>,
    aggregates: &BTreeMap<String, AggregateConfig>,
    auth_disabled: bool,
) -> Result<BTreeMap<String, BotConfig>, ConfigError> {
    let mut bots = BTreeMap::new();
    for (id, raw) in raw {
        let key = format!("bots.{id}");
        if !valid_name(&id) {
            return Err(invalid(
                &key,
                "a bot id may use letters, digits, `-`, `_` and `.`",
            ));
        }
        let stdio = StdioPolicy::from_raw(&key, &raw)?;
        let target = raw
            .target
            .ok_or_else(|| invalid(format!("{key}.target"), "missing"))?;
        if !targets.contains_key(&target) && !aggregates.contains_key(&target) {
            return Err(invalid(
                format!("{key}.target"),
                format!("no target named `{target}`"),
            ));
        }
        let tokens = collect_tokens(&key, raw.tokens, raw.token_file.as_deref())?;
        if auth_disabled && tokens.is_some() {
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
                stdio,
            },
        );
    }
    Ok(bots)
}

/// With auth on, every route needs tokens of its own or the global ones;
/// with auth off, per-target tokens would be silently ignored.
fn check_every_route_has_tokens(
    auth: &AuthConfig,
    targets: &BTreeMap<String, TargetConfig>,
    aggregates: &BTreeMap<String, AggregateConfig>,
    bots: &BTreeMap<String, BotConfig>,
) -> Result<(), ConfigError> {
    if !auth.disabled
        && auth.tokens.is_empty()
        && auth.oauth.is_none()
        && (targets
            .values()
            .any(|t| t.tokens.is_none() && t.oauth.is_none())
            || aggregates
                .values()
                .any(|a| a.tokens.is_none() && a.oauth.is_none())
            || bots.values().any(|b| b.tokens.is_none()))
    {
        return Err(invalid(
            "auth",
            "no bearer tokens configured: set auth.tokens, auth.token_file, \
             auth.named_tokens or [auth.oauth] (or per target/bot tokens), \
             or auth.disabled = true on a loopback listener",
        ));
    }
    if auth.disabled
        && (targets.values().any(|t| t.tokens.is_some())
            || aggregates.values().any(|a| a.tokens.is_some()))
    {
        return Err(invalid(
            "auth.disabled",
            "auth is disabled globally; per-target tokens would be ignored",
        ));
    }
    Ok(())
}

fn validate_origins(origins: Vec<String>) -> Result<Vec<String>, ConfigError> {
    for (i, o) in origins.iter().enumerate() {
        if o != "*" && !(o.starts_with("http://") || o.starts_with("https://")) {
            return Err(invalid(
                format!("allowed_origins[{i}]"),
                format!("`{o}` is not an origin such as https://app.example.com (or \"*\")"),
            ));
        }
    }
    Ok(origins)
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

fn validate_target(
    name: &str,
    raw: RawTarget,
    limits: &Limits,
    containerd: Option<&ContainerdSettings>,
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
            containerd::reject_containerd_fields(&key, &raw)?;
            let command = raw
                .command
                .filter(|c| !c.trim().is_empty())
                .ok_or_else(|| invalid(format!("{key}.command"), "missing (the program to run)"))?;
            BackendSpec::Process(ProcessBackend {
                command: PathBuf::from(command),
                args: raw.args.unwrap_or_default(),
                env: raw.env.unwrap_or_default(),
                inherit_env: if raw.env_clear.unwrap_or(false) {
                    InheritEnv::Nothing
                } else {
                    InheritEnv::All
                },
                cwd: raw.cwd,
                user: None,
            })
        }
        "containerd" => {
            BackendSpec::Containerd(ContainerdBackend::from_target(&key, &raw, containerd)?)
        }
        other => {
            return Err(invalid(
                format!("{key}.kind"),
                format!(
                    "unknown kind `{other}` (supported: \"process\", \"containerd\", \"aggregate\")"
                ),
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
    let asking_tools = raw.asking_tools.unwrap_or_default();
    if asking_tools.len() > MAX_ASKING_TOOLS {
        return Err(invalid(
            format!("{key}.asking_tools"),
            format!("at most {MAX_ASKING_TOOLS} names or patterns"),
        ));
    }
    for (i, pattern) in asking_tools.iter().enumerate() {
        if pattern.is_empty() || pattern.len() > 256 || pattern.chars().any(char::is_control) {
            return Err(invalid(
                format!("{key}.asking_tools[{i}]"),
                "expected a tool name, or a pattern with `*` (1..256 characters, no control characters)",
            ));
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
    let backoff_min = opt_duration(
        &format!("{key}.restart_backoff_min"),
        raw.restart_backoff_min,
        DEFAULT_RESTART_BACKOFF.0,
    )?;
    let backoff_max = opt_duration(
        &format!("{key}.restart_backoff_max"),
        raw.restart_backoff_max,
        DEFAULT_RESTART_BACKOFF.1.max(backoff_min),
    )?;
    if backoff_min.is_zero() {
        return Err(invalid(
            format!("{key}.restart_backoff_min"),
            "must be above zero",
        ));
    }
    if backoff_max < backoff_min {
        return Err(invalid(
            format!("{key}.restart_backoff_max"),
            format!("must be at least restart_backoff_min ({backoff_min:?})"),
        ));
    }
    Ok(TargetConfig {
        name: name.to_owned(),
        backend,
        era,
        call_timeout,
        sharing,
        tokens,
        auth_methods: AuthMethods {
            tokens: true,
            oauth: false,
        },
        oauth: None,
        policy: None,
        roots: raw.roots,
        max_calls_in_flight,
        shutdown_grace: opt_duration(
            &format!("{key}.shutdown_grace"),
            raw.shutdown_grace,
            Duration::from_secs(3),
        )?,
        restart_backoff: (backoff_min, backoff_max),
        asking_tools,
        broadcast_logs: raw.broadcast_logs.unwrap_or(false),
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
        assert!(t.asking_tools.is_empty());
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
                "[auth]\ndisabled = true\n[targets.t]\ncommand = \"x\"\nasking_tools = [\"ask\", \"\"]",
                "targets.t.asking_tools[1]",
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
            (
                "[auth]\ndisabled = true\n[targets.t]\ncommand = \"x\"\nrestart_backoff_min = \"0s\"",
                "targets.t.restart_backoff_min",
            ),
            (
                "[auth]\ndisabled = true\n[targets.t]\ncommand = \"x\"\nrestart_backoff_min = \"2s\"\nrestart_backoff_max = \"1s\"",
                "targets.t.restart_backoff_max",
            ),
            (
                "[auth]\ndisabled = true\n[limits]\nmax_streams_per_session = 0\n[targets.t]\ncommand = \"x\"",
                "limits.max_streams_per_session",
            ),
            (
                "[auth]\ndisabled = true\n[limits]\nmax_stream_lifetime = \"0s\"\n[targets.t]\ncommand = \"x\"",
                "limits.max_stream_lifetime",
            ),
            (
                "[auth]\ndisabled = true\n[targets.t]\ncommand = \"x\"\n[bots.b]\ntarget = \"t\"\nstdio_cwd_root = \"srv\"",
                "bots.b.stdio_cwd_root",
            ),
            (
                "[auth]\ndisabled = true\n[targets.t]\ncommand = \"x\"\n[bots.b]\ntarget = \"t\"\nstdio_commands = [\"/bin/srv\", \"./srv\"]",
                "bots.b.stdio_commands[1]",
            ),
            (
                "[auth]\ndisabled = true\n[targets.t]\ncommand = \"x\"\n[bots.b]\ntarget = \"t\"\nstdio_uid = 1000",
                "bots.b.stdio_uid",
            ),
        ];
        for (text, key) in cases {
            let err = load(text).unwrap_err();
            assert!(err.starts_with(key), "{key}: {err}");
        }
    }

    #[test]
    fn durations_beyond_a_year_are_refused_not_overflowed() {
        for value in [
            "18446744073709551615",
            "\"9999999999999h\"",
            "\"366d\"",
            "31622400",
        ] {
            let err = load(&format!(
                "[auth]\ndisabled = true\n[targets.t]\ncommand = \"x\"\ncall_timeout = {value}"
            ))
            .unwrap_err();
            assert!(err.starts_with("targets.t.call_timeout"), "{value}: {err}");
        }
        let err = load("[auth]\ndisabled = true\n[limits]\nidle_timeout = 18446744073709551615\n[targets.t]\ncommand = \"x\"")
            .unwrap_err();
        assert!(err.contains("longer than a year"), "{err}");
        // A year exactly is still a duration.
        load("[auth]\ndisabled = true\n[targets.t]\ncommand = \"x\"\ncall_timeout = 31536000")
            .unwrap();
    }

    #[test]
    fn restart_backoff_and_stream_limits_are_read() {
        let c = load(
            "[auth]\ndisabled = true\n[limits]\nmax_streams_per_target = 9\n\
             max_streams_per_session = 2\nmax_stream_lifetime = \"5m\"\nsse_replay_events = 7\n\
             [targets.t]\ncommand = \"x\"\nrestart_backoff_min = \"1s\"\nrestart_backoff_max = \"1m\"\n\
             [targets.u]\ncommand = \"x\"",
        )
        .unwrap();
        let t = &c.targets["t"];
        assert_eq!(
            t.restart_backoff,
            (Duration::from_secs(1), Duration::from_secs(60))
        );
        assert_eq!(c.targets["u"].restart_backoff, DEFAULT_RESTART_BACKOFF);
        let l = &c.limits;
        assert_eq!(
            (
                l.max_streams_per_target,
                l.max_streams_per_session,
                l.sse_replay_events
            ),
            (9, 2, 7)
        );
        assert_eq!(l.max_stream_lifetime, Duration::from_secs(300));
    }

    #[test]
    fn bot_stdio_keys_and_env_clear_are_read() {
        let c = load(
            "[auth]\ndisabled = true\n[targets.t]\ncommand = \"x\"\nenv_clear = true\n\
             [targets.u]\ncommand = \"x\"\n\
             [bots.b]\ntarget = \"t\"\nstdio_cwd_root = \"/srv/b\"\n\
             stdio_commands = [\" /bin/srv \", \"mcp-git\"]\nstdio_uid = 1000\nstdio_gid = 1001\n\
             [bots.c]\ntarget = \"t\"",
        )
        .unwrap();
        let inherit = |t: &str| match &c.targets[t].backend {
            BackendSpec::Process(p) => p.inherit_env,
            other => panic!("{other:?}"),
        };
        assert_eq!(inherit("t"), InheritEnv::Nothing);
        assert_eq!(inherit("u"), InheritEnv::All);
        let b = &c.bots["b"].stdio;
        assert_eq!(b.cwd_root.as_deref(), Some(std::path::Path::new("/srv/b")));
        assert_eq!(
            b.commands.as_deref(),
            Some(&["/bin/srv".to_owned(), "mcp-git".to_owned()][..])
        );
        assert_eq!(
            b.user,
            Some(RunAs {
                uid: 1000,
                gid: 1001
            })
        );
        assert_eq!(c.bots["c"].stdio, StdioPolicy::OPEN);
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
    fn workers_default_to_one_less_than_the_cpus_and_are_checked() {
        let base = "[auth]\ndisabled = true\n[targets.t]\ncommand = \"x\"\n";
        let cpus = std::thread::available_parallelism().map_or(1, |n| n.get());
        let c = load(base).unwrap();
        assert_eq!(c.workers, (cpus - 1).max(1));
        assert_eq!(load(&format!("workers = 3\n{base}")).unwrap().workers, 3);
        let err = load(&format!("workers = 0\n{base}")).unwrap_err();
        assert!(err.starts_with("workers: 0: expected 1 to"), "{err}");
        let mut raw = RawConfig::from_toml(base).unwrap();
        raw.apply_env(|k| (k == "MCPOD_WORKERS").then(|| "2".into()))
            .unwrap();
        assert_eq!(raw.validate().unwrap().workers, 2);
        let mut raw = RawConfig::from_toml(base).unwrap();
        let err = raw
            .apply_env(|k| (k == "MCPOD_WORKERS").then(|| "many".into()))
            .unwrap_err();
        assert!(err.to_string().starts_with("MCPOD_WORKERS"), "{err}");
    }

    #[test]
    fn the_session_key_file_and_the_drain_come_from_the_environment_too() {
        let dir = tempfile::tempdir().unwrap();
        let key = dir.path().join("session.key");
        std::fs::write(&key, [9u8; 32]).unwrap();
        let mut raw =
            RawConfig::from_toml("[auth]\ndisabled = true\n[targets.t]\ncommand = \"x\"").unwrap();
        raw.apply_env(|k| match k {
            "MCPOD_SESSION_KEY_FILE" => Some(key.display().to_string()),
            "MCPOD_SHUTDOWN_DRAIN" => Some("5s".into()),
            _ => None,
        })
        .unwrap();
        let c = raw.validate().unwrap();
        assert!(c.sessions.sealed());
        assert_eq!(c.limits.shutdown_drain, Duration::from_secs(5));
        let mut raw =
            RawConfig::from_toml("[auth]\ndisabled = true\n[targets.t]\ncommand = \"x\"").unwrap();
        raw.apply_env(|k| (k == "MCPOD_SESSION_KEY_FILE").then(|| "/nonexistent/key".into()))
            .unwrap();
        let err = raw.validate().unwrap_err();
        assert!(
            err.to_string()
                .starts_with("sessions.key_file: cannot read"),
            "{err}"
        );
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
        let raw = RawConfig::embedded_default(std::path::Path::new("/usr/bin/mcpod"));
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

//! `[containerd]` and `kind = "containerd"` targets: stdio MCP servers
//! exec'd inside bot containers.
//!
//! A target of `kind = "containerd"` names a bot; its backend is
//! `/app/mcp` (or the configured command) exec'd in the bot's container
//! (`mcp-{bot_id}`, labelled `mcp.bot_id={bot_id}`). With `[containerd]
//! serve_bots = true`, every bot that has a container is also served on the
//! Memoh-compatible routes without being configured.
//!
//! ```toml
//! [containerd]
//! socket = "/run/containerd/containerd.sock"
//! namespace = "mcpod"
//! serve_bots = true          # /bots/{bot_id}/container/fs-mcp for any bot with a container
//! idle_timeout = "10m"       # stop an exec'd server nobody has used for this long
//!
//! [targets.alice]            # /mcp/alice
//! kind = "containerd"
//! bot = "alice"
//! ```

use std::collections::BTreeMap;
use std::path::PathBuf;
use std::time::Duration;

use mcpod_containerd::{
    BotConfig as CtdBotConfig, BotId, ClientConfig, DEFAULT_COMMAND, DEFAULT_FIFO_ROOT,
    DEFAULT_NAMESPACE, DEFAULT_PREFIX, DEFAULT_SOCKET, ExecOptions,
};

use super::duration::RawDuration;
use super::error::{ConfigError, invalid};
use super::raw::{RawContainerd, RawTarget};
use super::stdio::RunAs;

/// Default idle time after which an exec'd server is stopped.
const DEFAULT_IDLE_TIMEOUT: Duration = Duration::from_secs(10 * 60);
/// Default time for which transient containerd failures are retried.
const DEFAULT_RETRY_BUDGET: Duration = Duration::from_secs(30);

/// What is exec'd in a container.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ExecCommand {
    /// The program (a path inside the container).
    pub command: String,
    /// Its arguments.
    pub args: Vec<String>,
    /// Environment on top of the container's own.
    pub env: BTreeMap<String, String>,
    /// Working directory; `None`: the container's.
    pub cwd: Option<String>,
    /// Whom it runs as; `None`: the container's process user.
    pub user: Option<RunAs>,
}

impl Default for ExecCommand {
    fn default() -> Self {
        ExecCommand {
            command: DEFAULT_COMMAND.to_owned(),
            args: Vec::new(),
            env: BTreeMap::new(),
            cwd: None,
            user: None,
        }
    }
}

impl ExecCommand {
    /// The exec options for `mcpod-containerd`.
    pub fn options(&self) -> ExecOptions {
        let mut opts = ExecOptions::new(
            std::iter::once(self.command.clone()).chain(self.args.iter().cloned()),
        );
        for (k, v) in &self.env {
            opts = opts.env(k, v);
        }
        if let Some(cwd) = &self.cwd {
            opts = opts.cwd(cwd.clone());
        }
        if let Some(u) = self.user {
            opts = opts.user(u.uid, u.gid);
        }
        opts
    }
}

/// Validated containerd settings (of `[containerd]`, or of one target).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ContainerdSettings {
    /// containerd's socket.
    pub socket: PathBuf,
    /// Namespace.
    pub namespace: String,
    /// Container id prefix.
    pub container_prefix: String,
    /// FIFO root.
    pub fifo_root: PathBuf,
    /// Accept unlabelled containers.
    pub allow_unlabelled: bool,
    /// Start stopped tasks.
    pub start_stopped_tasks: bool,
    /// What is exec'd.
    pub exec: ExecCommand,
    /// Idle time after which an exec'd server is stopped (`None`: never).
    pub idle_timeout: Option<Duration>,
    /// Serve unconfigured bots on the Memoh routes (meaningful in `[containerd]` only).
    pub serve_bots: bool,
    /// How long transient containerd failures (containerd restarting) are
    /// retried, counted from the first failure — also by the wait for an
    /// exec'd server's exit, which finds the server again once containerd
    /// is back (`[containerd]` only).
    pub retry_budget: Duration,
}

impl Default for ContainerdSettings {
    fn default() -> Self {
        ContainerdSettings {
            socket: PathBuf::from(DEFAULT_SOCKET),
            namespace: DEFAULT_NAMESPACE.to_owned(),
            container_prefix: DEFAULT_PREFIX.to_owned(),
            fifo_root: PathBuf::from(DEFAULT_FIFO_ROOT),
            allow_unlabelled: false,
            start_stopped_tasks: true,
            exec: ExecCommand::default(),
            idle_timeout: Some(DEFAULT_IDLE_TIMEOUT),
            serve_bots: false,
            retry_budget: DEFAULT_RETRY_BUDGET,
        }
    }
}

impl ContainerdSettings {
    /// Validates `[containerd]`.
    pub fn from_raw(raw: &RawContainerd) -> Result<ContainerdSettings, ConfigError> {
        let mut s = ContainerdSettings::default();
        s.apply(
            "containerd",
            &Overlay {
                socket: raw.socket.as_ref(),
                namespace: raw.namespace.as_deref(),
                container_prefix: raw.container_prefix.as_deref(),
                fifo_root: raw.fifo_root.as_ref(),
                allow_unlabelled: raw.allow_unlabelled,
                start_stopped_tasks: raw.start_stopped_tasks,
                command: raw.command.as_deref(),
                args: raw.args.as_ref(),
                env: raw.env.as_ref(),
                cwd: raw.cwd.as_deref(),
                idle_timeout: raw.idle_timeout.as_ref(),
            },
        )?;
        s.serve_bots = raw.serve_bots.unwrap_or(false);
        if let Some(budget) = &raw.retry_budget {
            let d = budget.parse("containerd.retry_budget")?;
            if d.is_zero() {
                return Err(invalid(
                    "containerd.retry_budget",
                    "must be longer than 0 (containerd restarts take a moment)",
                ));
            }
            s.retry_budget = d;
        }
        Ok(s)
    }

    fn apply(&mut self, key: &str, o: &Overlay<'_>) -> Result<(), ConfigError> {
        if let Some(socket) = o.socket {
            if socket.as_os_str().is_empty() {
                return Err(invalid(format!("{key}.socket"), "must not be empty"));
            }
            self.socket = socket.clone();
        }
        if let Some(ns) = o.namespace {
            if !mcpod_containerd::is_valid_identifier(ns) {
                return Err(invalid(
                    format!("{key}.namespace"),
                    format!(
                        "`{ns}` is not a valid containerd namespace (letters, digits, `.`, `_`, `-`)"
                    ),
                ));
            }
            self.namespace = ns.to_owned();
        }
        if let Some(prefix) = o.container_prefix {
            // The prefix plus a valid bot id must make a valid container id.
            let probe = format!("{prefix}x");
            if !mcpod_containerd::is_valid_identifier(&probe) || probe.len() + 63 > 76 {
                return Err(invalid(
                    format!("{key}.container_prefix"),
                    format!("`{prefix}` cannot start a containerd container id (or is too long)"),
                ));
            }
            self.container_prefix = prefix.to_owned();
        }
        if let Some(root) = o.fifo_root {
            if !root.is_absolute() {
                return Err(invalid(
                    format!("{key}.fifo_root"),
                    "must be an absolute path",
                ));
            }
            self.fifo_root = root.clone();
        }
        if let Some(v) = o.allow_unlabelled {
            self.allow_unlabelled = v;
        }
        if let Some(v) = o.start_stopped_tasks {
            self.start_stopped_tasks = v;
        }
        if let Some(command) = o.command {
            if command.trim().is_empty() {
                return Err(invalid(format!("{key}.command"), "must not be empty"));
            }
            self.exec.command = command.trim().to_owned();
        }
        if let Some(args) = o.args {
            self.exec.args = args.clone();
        }
        if let Some(env) = o.env {
            for k in env.keys() {
                if k.is_empty() || k.contains('=') {
                    return Err(invalid(
                        format!("{key}.env"),
                        format!("`{k}` is not an environment variable name"),
                    ));
                }
            }
            self.exec.env = env.clone();
        }
        if let Some(cwd) = o.cwd {
            if !cwd.starts_with('/') {
                return Err(invalid(
                    format!("{key}.cwd"),
                    "must be an absolute path inside the container",
                ));
            }
            self.exec.cwd = Some(cwd.to_owned());
        }
        if let Some(idle) = o.idle_timeout {
            let d = idle.parse(&format!("{key}.idle_timeout"))?;
            self.idle_timeout = (!d.is_zero()).then_some(d);
        }
        Ok(())
    }

    /// Whether `other` reaches the same containerd the same way (and so may
    /// share its connection).
    pub fn same_connection(&self, other: &ContainerdSettings) -> bool {
        self.socket == other.socket
            && self.namespace == other.namespace
            && self.fifo_root == other.fifo_root
    }

    /// The client configuration.
    pub fn client_config(&self) -> ClientConfig {
        ClientConfig::new(&self.socket)
            .with_namespace(&self.namespace)
            .with_fifo_root(&self.fifo_root)
            .with_retry_budget(self.retry_budget)
    }

    /// The bot policy.
    pub fn bot_config(&self) -> CtdBotConfig {
        let mut c = CtdBotConfig::default();
        c.prefix = self.container_prefix.clone();
        c.allow_unlabelled = self.allow_unlabelled;
        c.start_if_stopped = self.start_stopped_tasks;
        c
    }
}

/// Fields a target may set over `[containerd]`.
struct Overlay<'a> {
    socket: Option<&'a PathBuf>,
    namespace: Option<&'a str>,
    container_prefix: Option<&'a str>,
    fifo_root: Option<&'a PathBuf>,
    allow_unlabelled: Option<bool>,
    start_stopped_tasks: Option<bool>,
    command: Option<&'a str>,
    args: Option<&'a Vec<String>>,
    env: Option<&'a BTreeMap<String, String>>,
    cwd: Option<&'a str>,
    idle_timeout: Option<&'a RawDuration>,
}

/// A `kind = "containerd"` target: a bot, and how its container is reached.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ContainerdBackend {
    /// The bot whose container runs the server.
    pub bot: String,
    /// Connection, policy and command.
    pub settings: ContainerdSettings,
}

impl ContainerdBackend {
    /// The same bot and connection, exec'ing another command (Memoh `mcp-stdio`).
    pub fn with_command(&self, exec: ExecCommand) -> ContainerdBackend {
        let mut b = self.clone();
        b.settings.exec = exec;
        b
    }

    /// Validates a `kind = "containerd"` target over the `[containerd]`
    /// defaults (`global`, or built-in defaults without that section).
    pub fn from_target(
        key: &str,
        raw: &RawTarget,
        global: Option<&ContainerdSettings>,
    ) -> Result<ContainerdBackend, ConfigError> {
        let bot = raw.bot.as_deref().ok_or_else(|| {
            invalid(
                format!("{key}.bot"),
                "missing (the bot whose container runs the server)",
            )
        })?;
        BotId::parse(bot).map_err(|e| invalid(format!("{key}.bot"), e.to_string()))?;
        if raw.env_clear.is_some() {
            return Err(invalid(
                format!("{key}.env_clear"),
                "not supported for containerd targets (env is set on top of the container's)",
            ));
        }
        let mut settings = global.cloned().unwrap_or_default();
        let cwd = raw.cwd.as_ref().map(|p| p.to_string_lossy().into_owned());
        settings.apply(
            key,
            &Overlay {
                socket: raw.socket.as_ref(),
                namespace: raw.namespace.as_deref(),
                container_prefix: raw.container_prefix.as_deref(),
                fifo_root: raw.fifo_root.as_ref(),
                allow_unlabelled: raw.allow_unlabelled,
                start_stopped_tasks: raw.start_stopped_tasks,
                command: raw.command.as_deref(),
                args: raw.args.as_ref(),
                env: raw.env.as_ref(),
                cwd: cwd.as_deref(),
                idle_timeout: raw.idle_timeout.as_ref(),
            },
        )?;
        settings.serve_bots = false;
        Ok(ContainerdBackend {
            bot: bot.to_owned(),
            settings,
        })
    }
}

/// Checks the `[containerd]` section against the rest of the config.
pub(super) fn validate_section(
    settings: &ContainerdSettings,
    auth_disabled: bool,
    global_tokens: &[String],
) -> Result<(), ConfigError> {
    if settings.serve_bots && !auth_disabled && global_tokens.is_empty() {
        return Err(invalid(
            "containerd.serve_bots",
            "unconfigured bots use the global tokens, and none are set (auth.tokens or auth.token_file)",
        ));
    }
    Ok(())
}

/// Refuses containerd-only keys on a target of another kind.
pub(super) fn reject_containerd_fields(key: &str, raw: &RawTarget) -> Result<(), ConfigError> {
    let set = [
        ("bot", raw.bot.is_some()),
        ("socket", raw.socket.is_some()),
        ("namespace", raw.namespace.is_some()),
        ("container_prefix", raw.container_prefix.is_some()),
        ("fifo_root", raw.fifo_root.is_some()),
        ("allow_unlabelled", raw.allow_unlabelled.is_some()),
        ("start_stopped_tasks", raw.start_stopped_tasks.is_some()),
        ("idle_timeout", raw.idle_timeout.is_some()),
    ];
    match set.iter().find(|(_, is_set)| *is_set) {
        Some((field, _)) => Err(invalid(
            format!("{key}.{field}"),
            "only for targets of kind = \"containerd\"",
        )),
        None => Ok(()),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::config::{BackendSpec, Config, RawConfig};

    fn load(text: &str) -> Result<Config, String> {
        RawConfig::from_toml(text)?
            .validate()
            .map_err(|e| e.to_string())
    }

    fn backend(c: &Config, name: &str) -> ContainerdBackend {
        match &c.targets[name].backend {
            BackendSpec::Containerd(b) => b.clone(),
            other => panic!("not containerd: {other:?}"),
        }
    }

    #[test]
    fn targets_inherit_the_section_and_override_it() {
        let c = load(
            "[auth]\ndisabled = true\n\
             [containerd]\nsocket = \"/s.sock\"\nnamespace = \"bots\"\nidle_timeout = \"5m\"\n\
             env = { A = \"1\" }\n\
             [targets.a]\nkind = \"containerd\"\nbot = \"alice\"\n\
             [targets.b]\nkind = \"containerd\"\nbot = \"bob\"\nnamespace = \"other\"\n\
             command = \"/bin/srv\"\nargs = [\"-x\"]\ncwd = \"/data\"\nidle_timeout = 0\n",
        )
        .unwrap();
        let a = backend(&c, "a");
        assert_eq!(a.bot, "alice");
        assert_eq!(a.settings.socket, PathBuf::from("/s.sock"));
        assert_eq!(a.settings.namespace, "bots");
        assert_eq!(a.settings.exec.command, DEFAULT_COMMAND);
        assert_eq!(a.settings.exec.env["A"], "1");
        assert_eq!(a.settings.idle_timeout, Some(Duration::from_secs(300)));
        assert!(!a.settings.allow_unlabelled);
        assert!(a.settings.start_stopped_tasks);
        let b = backend(&c, "b");
        assert_eq!(b.settings.namespace, "other");
        assert_eq!(b.settings.exec.command, "/bin/srv");
        assert_eq!(b.settings.exec.args, vec!["-x".to_owned()]);
        assert_eq!(b.settings.exec.cwd.as_deref(), Some("/data"));
        assert_eq!(b.settings.idle_timeout, None);
        let section = c.containerd.as_ref().unwrap();
        assert!(!section.serve_bots);
        // Same connection: shared; another namespace: its own.
        assert!(a.settings.same_connection(section));
        assert!(!b.settings.same_connection(section));
    }

    #[test]
    fn retry_budget_is_a_section_key() {
        let c = load(
            "[auth]\ndisabled = true\n[containerd]\nretry_budget = \"2s\"\n\
                      [targets.a]\nkind = \"containerd\"\nbot = \"a\"\n",
        )
        .unwrap();
        assert_eq!(
            backend(&c, "a").settings.retry_budget,
            Duration::from_secs(2)
        );
        assert_eq!(
            backend(&c, "a").settings.client_config().retry.max_elapsed,
            Duration::from_secs(2)
        );
        let d = load("[auth]\ndisabled = true\n[targets.a]\nkind = \"containerd\"\nbot = \"a\"\n")
            .unwrap();
        assert_eq!(backend(&d, "a").settings.retry_budget, DEFAULT_RETRY_BUDGET);
        let err = load("[auth]\ndisabled = true\n[containerd]\nretry_budget = 0\n[targets.t]\ncommand = \"x\"\n")
            .unwrap_err();
        assert!(err.starts_with("containerd.retry_budget"), "{err}");
        let err = RawConfig::from_toml(
            "[targets.a]\nkind = \"containerd\"\nbot = \"a\"\nretry_budget = \"2s\"\n",
        )
        .unwrap_err();
        assert!(err.contains("retry_budget"), "{err}");
    }

    #[test]
    fn serve_bots_alone_is_a_valid_config() {
        let c = load("[auth]\ndisabled = true\n[containerd]\nserve_bots = true\n").unwrap();
        assert!(c.targets.is_empty());
        assert!(c.containerd.unwrap().serve_bots);
    }

    #[test]
    fn errors_name_the_key() {
        let cases = [
            ("[targets.t]\nkind = \"containerd\"\n", "targets.t.bot"),
            (
                "[targets.t]\nkind = \"containerd\"\nbot = \"a/b\"\n",
                "targets.t.bot",
            ),
            (
                "[targets.t]\nkind = \"containerd\"\nbot = \"a\"\nenv_clear = true\n",
                "targets.t.env_clear",
            ),
            (
                "[targets.t]\nkind = \"containerd\"\nbot = \"a\"\nfifo_root = \"rel\"\n",
                "targets.t.fifo_root",
            ),
            (
                "[targets.t]\nkind = \"containerd\"\nbot = \"a\"\ncwd = \"data\"\n",
                "targets.t.cwd",
            ),
            (
                "[targets.t]\ncommand = \"x\"\nbot = \"a\"\n",
                "targets.t.bot",
            ),
            (
                "[containerd]\nnamespace = \"a b\"\n[targets.t]\ncommand = \"x\"\n",
                "containerd.namespace",
            ),
            (
                "[containerd]\ncontainer_prefix = \"-\"\n[targets.t]\ncommand = \"x\"\n",
                "containerd.container_prefix",
            ),
            (
                "[containerd]\nidle_timeout = \"soon\"\n[targets.t]\ncommand = \"x\"\n",
                "containerd.idle_timeout",
            ),
        ];
        for (text, key) in cases {
            let err = load(&format!("[auth]\ndisabled = true\n{text}")).unwrap_err();
            assert!(err.starts_with(key), "{key}: {err}");
        }
        let err = load(&format!(
            "[auth]\ntokens = [\"{}\"]\n[containerd]\nserve_bots = true\n",
            "0123456789abcdef0123"
        ));
        assert!(err.is_ok(), "{err:?}");
        let err = load(
            "[auth]\n[containerd]\nserve_bots = true\n[targets.t]\ncommand = \"x\"\ntokens = [\"0123456789abcdef0123\"]\n",
        )
        .unwrap_err();
        assert!(err.starts_with("containerd.serve_bots"), "{err}");
    }
}

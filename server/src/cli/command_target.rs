//! `mcpod serve [OPTIONS] -- CMD [ARGS…]`: one target from the command
//! line, named from the command unless `--name` says otherwise.

use std::collections::BTreeMap;
use std::path::PathBuf;

use crate::config::{ConfigError, RawConfig, RawDuration, RawTarget};

/// The options of `serve` that make (or guard) a target from the command
/// line.
#[derive(Debug, Default, Clone, clap::Args)]
pub(super) struct CommandTarget {
    /// The command-line target's name (default: from the command, e.g.
    /// `server-filesystem` for `npx -y @modelcontextprotocol/server-filesystem`).
    #[arg(long, requires = "command")]
    name: Option<String>,
    /// The backend's MCP era: found by probing (auto), or fixed.
    #[arg(long, requires = "command", value_parser = ["auto", "legacy", "modern"])]
    era: Option<String>,
    /// One backend process for all clients (shared), or one per legacy
    /// session (per_session).
    #[arg(long, requires = "command", value_parser = ["shared", "per_session"])]
    sharing: Option<String>,
    /// An environment variable for the backend (repeatable).
    #[arg(long = "env", value_name = "KEY=VALUE", requires = "command", value_parser = parse_env)]
    env: Vec<(String, String)>,
    /// The backend's working directory.
    #[arg(long, requires = "command")]
    cwd: Option<PathBuf>,
    /// The deadline of each call (e.g. `30s`, `5m`).
    #[arg(long, value_name = "DURATION", requires = "command")]
    call_timeout: Option<String>,
    /// A bearer token clients must present (repeatable; turns auth on).
    #[arg(long = "token", value_name = "TOKEN")]
    tokens: Vec<String>,
    /// A file of bearer tokens, one per line (turns auth on).
    #[arg(long, value_name = "FILE")]
    token_file: Option<PathBuf>,
    /// The stdio MCP server to serve, and its arguments.
    #[arg(last = true, value_name = "CMD")]
    command: Vec<String>,
}

fn parse_env(text: &str) -> Result<(String, String), String> {
    match text.split_once('=') {
        Some((k, v)) if !k.is_empty() => Ok((k.to_owned(), v.to_owned())),
        _ => Err(format!("`{text}`: expected KEY=VALUE")),
    }
}

impl CommandTarget {
    /// Adds the command-line target and tokens to `raw`. Without a config
    /// file (`alone`), the target replaces the embedded demo, and auth is
    /// off unless tokens are given (which the config check allows only on
    /// a loopback listener).
    pub(super) fn apply(self, raw: &mut RawConfig, alone: bool) -> Result<(), ConfigError> {
        if !self.tokens.is_empty() || self.token_file.is_some() {
            let auth = &mut raw.auth;
            auth.disabled = None;
            auth.tokens.get_or_insert_with(Vec::new).extend(self.tokens);
            if self.token_file.is_some() {
                auth.token_file = self.token_file;
            }
        }
        let Some((program, args)) = self.command.split_first() else {
            return Ok(());
        };
        let name = self.name.unwrap_or_else(|| name_from(&self.command));
        let target = RawTarget {
            command: Some(program.clone()),
            args: Some(args.to_vec()),
            env: (!self.env.is_empty()).then(|| self.env.into_iter().collect::<BTreeMap<_, _>>()),
            cwd: self.cwd,
            era: self.era,
            sharing: self.sharing,
            call_timeout: self.call_timeout.map(RawDuration::Text),
            ..RawTarget::default()
        };
        if alone {
            raw.targets.clear();
            raw.bots.clear();
        }
        if raw.targets.contains_key(&name) {
            return Err(ConfigError::Invalid {
                key: format!("targets.{name}"),
                message:
                    "the config file has a target of this name too; choose another with --name"
                        .to_owned(),
            });
        }
        raw.targets.insert(name, target);
        Ok(())
    }
}

/// Programs that run the server named by their first argument.
const LAUNCHERS: &[&str] = &[
    "npx", "pnpx", "bunx", "uvx", "pipx", "uv", "node", "deno", "bun", "python", "python3",
];

/// Words of a launcher that come before the server's name.
const LAUNCHER_WORDS: &[&str] = &["run", "tool", "exec", "x", "-m"];

/// A target name for `command`: the server it runs, without path, npm
/// scope, version or extension, in the characters a name may use.
pub(super) fn name_from(command: &[String]) -> String {
    let base = |s: &str| s.rsplit('/').next().unwrap_or(s).to_owned();
    let program = command.first().map(|p| base(p)).unwrap_or_default();
    let mut word = program.clone();
    if LAUNCHERS.contains(&program.as_str()) {
        let mut rest = command.iter().skip(1).map(String::as_str);
        let server = rest.find(|a| !a.starts_with('-') && !LAUNCHER_WORDS.contains(a));
        if let Some(server) = server {
            // `@scope/name@1.2.3` → `name`; `./server.py` → `server`.
            let unscoped = server
                .strip_prefix('@')
                .map_or(server, |s| s.split_once('/').map_or(s, |(_, name)| name));
            let unversioned = unscoped.split('@').next().unwrap_or(unscoped);
            word = base(unversioned);
        }
    }
    for ext in [".js", ".mjs", ".cjs", ".ts", ".py", ".exe"] {
        if let Some(stem) = word.strip_suffix(ext) {
            word = stem.to_owned();
        }
    }
    let mut name: String = word
        .chars()
        .map(|c| match c {
            'a'..='z' | '0'..='9' | '-' | '_' | '.' => c,
            'A'..='Z' => c.to_ascii_lowercase(),
            _ => '-',
        })
        .collect();
    name = name.trim_matches(['-', '.']).to_owned();
    name.truncate(64);
    if name.is_empty() {
        "server".to_owned()
    } else {
        name
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn name(cmd: &str) -> String {
        let words: Vec<String> = cmd.split(' ').map(str::to_owned).collect();
        name_from(&words)
    }

    #[test]
    fn names_come_from_the_server_a_command_runs() {
        assert_eq!(
            name("npx -y @modelcontextprotocol/server-filesystem /data"),
            "server-filesystem"
        );
        assert_eq!(
            name("npx -y @modelcontextprotocol/server-memory@2025.1.1"),
            "server-memory"
        );
        assert_eq!(name("uvx mcp-server-git --repository ."), "mcp-server-git");
        assert_eq!(
            name("uv run --with x tool mcp-server-time"),
            "mcp-server-time"
        );
        assert_eq!(name("python3 -m mcp_server_time"), "mcp_server_time");
        assert_eq!(name("node ./build/index.js"), "index");
        assert_eq!(name("/usr/local/bin/My Server"), "my");
        assert_eq!(name("/opt/mcp/Weather.Server"), "weather.server");
        assert_eq!(name("npx"), "npx");
        assert_eq!(name("!!!"), "server");
    }

    #[test]
    fn the_target_replaces_the_demo_or_joins_the_file() {
        let target = || CommandTarget {
            era: Some("legacy".into()),
            env: vec![("K".into(), "V".into())],
            call_timeout: Some("5s".into()),
            command: vec!["uvx".into(), "mcp-server-time".into()],
            ..CommandTarget::default()
        };
        let mut raw = RawConfig::embedded_default(std::path::Path::new("/bin/mcpod"));
        target().apply(&mut raw, true).unwrap();
        let config = raw.validate().unwrap();
        assert_eq!(
            config.targets.keys().collect::<Vec<_>>(),
            ["mcp-server-time"]
        );
        assert!(config.bots.is_empty());
        assert!(config.auth.disabled);
        let t = &config.targets["mcp-server-time"];
        assert_eq!(t.call_timeout, std::time::Duration::from_secs(5));
        assert_eq!(t.era, mcpod_core::EraMode::Legacy);

        // With a file: added beside its targets, a clash refused.
        let mut raw = RawConfig::from_toml(
            "[auth]\ntokens = [\"a-long-enough-token-1\"]\n[targets.mcp-server-time]\ncommand = \"x\"",
        )
        .unwrap();
        let err = target().apply(&mut raw, false).unwrap_err();
        assert!(err.to_string().contains("--name"), "{err}");
        let mut raw = RawConfig::from_toml(
            "[auth]\ntokens = [\"a-long-enough-token-1\"]\n[targets.files]\ncommand = \"x\"",
        )
        .unwrap();
        target().apply(&mut raw, false).unwrap();
        assert_eq!(raw.validate().unwrap().targets.len(), 2);
    }

    #[test]
    fn tokens_turn_auth_on() {
        let mut raw = RawConfig::embedded_default(std::path::Path::new("/bin/mcpod"));
        CommandTarget {
            tokens: vec!["a-long-enough-token-2".into()],
            command: vec!["server".into()],
            ..CommandTarget::default()
        }
        .apply(&mut raw, true)
        .unwrap();
        let config = raw.validate().unwrap();
        assert!(!config.auth.disabled);
        assert_eq!(config.auth.tokens, ["a-long-enough-token-2"]);
    }
}

//! What a child process receives of the gateway, and what a bot's Memoh
//! `mcp-stdio` servers may be: the `[bots.ID]` `stdio_*` keys.
//!
//! ```toml
//! [bots.bot-42]
//! target = "files"
//! allow_local_stdio = true
//! stdio_cwd_root = "/srv/bots/bot-42"     # every cwd inside it (and the default)
//! stdio_commands = ["/usr/local/bin/mcp-files", "mcp-git"]   # exact paths or names
//! stdio_uid = 65534                       # run them as this user and group
//! stdio_gid = 65534
//! ```

use std::path::PathBuf;

use super::error::{ConfigError, invalid};
use super::raw::RawBot;

/// The prefix of the gateway's own variables (`MCPOD_AUTH_TOKENS`, …):
/// no child inherits one.
pub const WITHHELD_ENV_PREFIX: &str = "MCPOD_";

/// The gateway's variables an `mcp-stdio` server inherits (those set), on
/// top of which come the request's `env`: enough for a program to find
/// its tools, its locale and its time zone, nothing that names the
/// gateway's secrets or its user.
pub const STDIO_ENV_ALLOWLIST: &[&str] =
    &["PATH", "HOME", "LANG", "LC_ALL", "LC_CTYPE", "TZ", "TMPDIR"];

/// Which of the gateway's environment variables a local process inherits;
/// a [`WITHHELD_ENV_PREFIX`] one never, whatever this says.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum InheritEnv {
    /// All of them (a configured target with `env_clear = false`).
    All,
    /// Those named in [`STDIO_ENV_ALLOWLIST`] (`mcp-stdio` servers).
    Allowlist,
    /// None (`env_clear = true`).
    Nothing,
}

/// A user and group to run a process as.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct RunAs {
    /// The user id.
    pub uid: u32,
    /// The group id (the only group: supplementary ones are dropped).
    pub gid: u32,
}

/// What a bot's `mcp-stdio` servers may be. Each part unset allows what
/// the request asks.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct StdioPolicy {
    /// `stdio_cwd_root`: the directory every server's `cwd` must be inside
    /// (canonicalized for a local process, lexically inside a container),
    /// and the `cwd` of a request that names none.
    pub cwd_root: Option<PathBuf>,
    /// `stdio_commands`: the commands allowed, each an absolute path or a
    /// name looked up in `PATH`, compared with the request's `command`
    /// exactly.
    pub commands: Option<Vec<String>>,
    /// `stdio_uid` and `stdio_gid`: whom the servers run as.
    pub user: Option<RunAs>,
}

impl StdioPolicy {
    /// No restriction (bots served without configuration).
    pub const OPEN: StdioPolicy = StdioPolicy {
        cwd_root: None,
        commands: None,
        user: None,
    };

    /// Validates the `stdio_*` keys of `[bots.ID]` (`key` is `bots.ID`).
    pub(super) fn from_raw(key: &str, raw: &RawBot) -> Result<StdioPolicy, ConfigError> {
        if let Some(root) = &raw.stdio_cwd_root
            && !root.is_absolute()
        {
            return Err(invalid(
                format!("{key}.stdio_cwd_root"),
                "must be an absolute path",
            ));
        }
        if let Some(commands) = &raw.stdio_commands {
            for (i, c) in commands.iter().enumerate() {
                let c = c.trim();
                // A relative path (`bin/srv`, `./srv`) would depend on the cwd.
                let relative_path = !c.starts_with('/') && c.contains('/');
                if c.is_empty() || relative_path {
                    return Err(invalid(
                        format!("{key}.stdio_commands[{i}]"),
                        format!("`{c}`: expected an absolute path or a command name without `/`"),
                    ));
                }
            }
        }
        let user = match (raw.stdio_uid, raw.stdio_gid) {
            (Some(uid), Some(gid)) => Some(RunAs { uid, gid }),
            (None, None) => None,
            // A uid alone would keep the gateway's group (root's, often).
            _ => {
                return Err(invalid(
                    format!("{key}.stdio_uid"),
                    "stdio_uid and stdio_gid must be set together",
                ));
            }
        };
        Ok(StdioPolicy {
            cwd_root: raw.stdio_cwd_root.clone(),
            commands: raw
                .stdio_commands
                .as_ref()
                .map(|c| c.iter().map(|c| c.trim().to_owned()).collect()),
            user,
        })
    }
}

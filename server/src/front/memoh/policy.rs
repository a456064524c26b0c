//! What an `mcp-stdio` request may ask for: its environment, its command
//! against the bot's `stdio_commands`, its `cwd` inside the bot's
//! `stdio_cwd_root`. Each refusal says what was refused and why.

use std::collections::BTreeMap;
use std::path::{Component, Path, PathBuf};

use http::StatusCode;

use crate::config::{StdioPolicy, WITHHELD_ENV_PREFIX};

/// A request refused: the status and the message for the caller.
#[derive(Debug, PartialEq, Eq)]
pub(super) struct Refusal {
    pub(super) status: StatusCode,
    pub(super) message: String,
}

fn refuse(status: StatusCode, message: impl Into<String>) -> Refusal {
    Refusal {
        status,
        message: message.into(),
    }
}

/// The request's `env`: real variable names and values; none of the
/// gateway's own names; and, for a bot whose commands are restricted,
/// nothing that would choose which program actually runs.
pub(super) fn check_env(
    env: &BTreeMap<String, String>,
    policy: &StdioPolicy,
) -> Result<(), Refusal> {
    for (k, v) in env {
        if k.is_empty() || k.contains(['=', '\0']) {
            return Err(refuse(
                StatusCode::BAD_REQUEST,
                format!("env: `{k}` is not a variable name"),
            ));
        }
        if v.contains('\0') {
            return Err(refuse(
                StatusCode::BAD_REQUEST,
                format!("env: the value of `{k}` holds a NUL byte"),
            ));
        }
        if k.len() >= WITHHELD_ENV_PREFIX.len()
            && k[..WITHHELD_ENV_PREFIX.len()].eq_ignore_ascii_case(WITHHELD_ENV_PREFIX)
        {
            return Err(refuse(
                StatusCode::BAD_REQUEST,
                format!("env: `{k}`: {WITHHELD_ENV_PREFIX}* variables are the gateway's own"),
            ));
        }
        if policy.commands.is_some() && (k == "PATH" || k.starts_with("LD_")) {
            return Err(refuse(
                StatusCode::FORBIDDEN,
                format!(
                    "env: `{k}` may not be set for this bot: its commands are restricted (stdio_commands)"
                ),
            ));
        }
    }
    Ok(())
}

/// The request's `command` against the bot's `stdio_commands` (exact).
pub(super) fn check_command(command: &str, policy: &StdioPolicy) -> Result<(), Refusal> {
    match &policy.commands {
        Some(allowed) if !allowed.iter().any(|c| c == command) => Err(refuse(
            StatusCode::FORBIDDEN,
            format!("command `{command}` is not allowed for this bot (stdio_commands)"),
        )),
        _ => Ok(()),
    }
}

/// The `cwd` a server runs in: the request's (`None`: the default), inside
/// the bot's `stdio_cwd_root` when it has one — which is then also the
/// default, and against which a relative `cwd` is taken.
///
/// For a local process the path is canonicalized (symlinks resolved, so
/// none leads out) and must be a directory; inside a container, where the
/// gateway cannot look, it is normalized lexically.
pub(super) fn resolve_cwd(
    cwd: Option<&str>,
    policy: &StdioPolicy,
    in_container: bool,
) -> Result<Option<String>, Refusal> {
    let Some(root) = &policy.cwd_root else {
        return Ok(cwd.map(str::to_owned));
    };
    let asked = match cwd {
        Some(c) => root.join(c),
        None => root.clone(),
    };
    let shown = cwd.unwrap_or("(default)");
    let outside = || {
        refuse(
            StatusCode::FORBIDDEN,
            format!("cwd `{shown}` is outside this bot's stdio_cwd_root"),
        )
    };
    if in_container {
        let path = normalize(&asked);
        return if path.starts_with(normalize(root)) {
            Ok(Some(path.to_string_lossy().into_owned()))
        } else {
            Err(outside())
        };
    }
    let root = std::fs::canonicalize(root).map_err(|e| {
        tracing::warn!(root = %root.display(), error = %e, "stdio_cwd_root cannot be resolved");
        refuse(
            StatusCode::INTERNAL_SERVER_ERROR,
            "this bot's stdio_cwd_root cannot be resolved",
        )
    })?;
    let path = std::fs::canonicalize(&asked).map_err(|e| {
        refuse(
            StatusCode::BAD_REQUEST,
            format!("cwd `{shown}` cannot be resolved: {}", e.kind()),
        )
    })?;
    if !path.starts_with(&root) {
        return Err(outside());
    }
    if !path.is_dir() {
        return Err(refuse(
            StatusCode::BAD_REQUEST,
            format!("cwd `{shown}` is not a directory"),
        ));
    }
    Ok(Some(path.to_string_lossy().into_owned()))
}

/// `path` with `.` and `..` resolved without looking at a file system
/// (`..` at the root stays at the root).
fn normalize(path: &Path) -> PathBuf {
    let mut out = PathBuf::from("/");
    for c in path.components() {
        match c {
            Component::Normal(part) => out.push(part),
            Component::ParentDir => {
                out.pop();
            }
            Component::RootDir | Component::CurDir | Component::Prefix(_) => {}
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    fn policy(root: Option<&Path>, commands: Option<&[&str]>) -> StdioPolicy {
        StdioPolicy {
            cwd_root: root.map(Path::to_path_buf),
            commands: commands.map(|c| c.iter().map(|c| (*c).to_owned()).collect()),
            user: None,
        }
    }

    fn env(pairs: &[(&str, &str)]) -> BTreeMap<String, String> {
        pairs
            .iter()
            .map(|(k, v)| ((*k).to_owned(), (*v).to_owned()))
            .collect()
    }

    #[test]
    fn env_names_are_checked() {
        let open = StdioPolicy::OPEN;
        assert!(check_env(&env(&[("A", "1"), ("PATH", "/bin")]), &open).is_ok());
        for bad in ["", "A=B", "A\0"] {
            let e = check_env(&env(&[(bad, "1")]), &open).unwrap_err();
            assert_eq!(e.status, StatusCode::BAD_REQUEST, "{bad:?}");
        }
        let e = check_env(&env(&[("mcpod_auth_tokens", "x")]), &open).unwrap_err();
        assert_eq!(e.status, StatusCode::BAD_REQUEST);
        assert!(e.message.contains("mcpod_auth_tokens"), "{}", e.message);
        let restricted = policy(None, Some(&["/bin/srv"]));
        for k in ["PATH", "LD_PRELOAD", "LD_LIBRARY_PATH"] {
            let e = check_env(&env(&[(k, "/tmp")]), &restricted).unwrap_err();
            assert_eq!(e.status, StatusCode::FORBIDDEN, "{k}");
            assert!(e.message.contains(k), "{}", e.message);
        }
        assert!(check_env(&env(&[("HOME", "/tmp")]), &restricted).is_ok());
    }

    #[test]
    fn commands_match_exactly() {
        let p = policy(None, Some(&["/usr/bin/srv", "mcp-git"]));
        assert!(check_command("/usr/bin/srv", &p).is_ok());
        assert!(check_command("mcp-git", &p).is_ok());
        for bad in [
            "srv",
            "/usr/bin/mcp-git",
            "./mcp-git",
            "/usr/bin/../bin/srv",
        ] {
            let e = check_command(bad, &p).unwrap_err();
            assert_eq!(e.status, StatusCode::FORBIDDEN, "{bad}");
            assert!(e.message.contains(bad), "{}", e.message);
        }
        assert!(check_command("anything", &StdioPolicy::OPEN).is_ok());
        assert!(check_command("x", &policy(None, Some(&[]))).is_err());
    }

    #[test]
    fn cwd_stays_inside_the_root_on_the_host() {
        let dir = tempfile::tempdir().unwrap();
        let root = dir.path().join("root");
        std::fs::create_dir_all(root.join("sub")).unwrap();
        std::fs::create_dir_all(dir.path().join("other")).unwrap();
        std::fs::write(root.join("file"), "").unwrap();
        std::os::unix::fs::symlink(dir.path().join("other"), root.join("escape")).unwrap();
        let canon = std::fs::canonicalize(&root).unwrap();
        let p = policy(Some(&root), None);
        let ok = |cwd: Option<&str>| resolve_cwd(cwd, &p, false).unwrap().unwrap();
        assert_eq!(ok(None), canon.to_string_lossy());
        assert_eq!(ok(Some("sub")), canon.join("sub").to_string_lossy());
        let abs = root.join("sub/../sub");
        assert_eq!(ok(abs.to_str()), canon.join("sub").to_string_lossy());
        let status = |cwd: &str| resolve_cwd(Some(cwd), &p, false).unwrap_err().status;
        assert_eq!(status("/"), StatusCode::FORBIDDEN);
        assert_eq!(status(".."), StatusCode::FORBIDDEN);
        assert_eq!(status("escape"), StatusCode::FORBIDDEN);
        assert_eq!(status("missing"), StatusCode::BAD_REQUEST);
        assert_eq!(status("file"), StatusCode::BAD_REQUEST);
        // Without a root, the request's cwd is taken as it is.
        assert_eq!(
            resolve_cwd(Some("/x"), &StdioPolicy::OPEN, false).unwrap(),
            Some("/x".to_owned())
        );
    }

    #[test]
    fn cwd_inside_a_container_is_checked_lexically() {
        let p = policy(Some(Path::new("/data/bot")), None);
        let ok = |cwd: Option<&str>| resolve_cwd(cwd, &p, true).unwrap().unwrap();
        assert_eq!(ok(None), "/data/bot");
        assert_eq!(ok(Some("a/./b")), "/data/bot/a/b");
        assert_eq!(ok(Some("/data/bot/a/../b")), "/data/bot/b");
        for bad in ["..", "/data/bot2", "/data/bot/../../etc", "/"] {
            let e = resolve_cwd(Some(bad), &p, true).unwrap_err();
            assert_eq!(e.status, StatusCode::FORBIDDEN, "{bad}");
        }
    }
}

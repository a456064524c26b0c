//! How a backend is reached: a [`Connector`] makes a [`Connection`] (byte
//! streams plus, for a process, a [`BackendProcess`] to stop it with).

use std::ffi::{OsStr, OsString};
use std::fmt;
use std::io;
use std::os::unix::ffi::OsStrExt;
use std::path::PathBuf;

use futures::io::{AsyncRead, AsyncWrite};

use crate::runtime::BoxFuture;

/// Starts one backend: one process (or socket, or in-memory peer) per call.
///
/// The supervisor calls [`connect`](Self::connect) for the first call and
/// again after each time the backend dies. `mcpod-tokio` and
/// `mcpod-async-std` provide connectors for local child processes; other
/// crates provide their own (a process exec'd in a container, a socket).
pub trait Connector: Send + Sync + 'static {
    /// Starts a fresh backend and hands back its streams.
    fn connect(&self) -> BoxFuture<'_, io::Result<Connection>>;
}

impl<C: Connector + ?Sized> Connector for Box<C> {
    fn connect(&self) -> BoxFuture<'_, io::Result<Connection>> {
        (**self).connect()
    }
}

impl<C: Connector + ?Sized> Connector for std::sync::Arc<C> {
    fn connect(&self) -> BoxFuture<'_, io::Result<Connection>> {
        (**self).connect()
    }
}

/// The output of a [`Connector`]: the backend's streams and, if it is a
/// process, the handle to stop it with.
pub struct Connection {
    /// The backend's output (a process's stdout).
    pub reader: Box<dyn AsyncRead + Send + Unpin>,
    /// The backend's input (a process's stdin). Dropping it closes it.
    pub writer: Box<dyn AsyncWrite + Send + Unpin>,
    /// Free-form log output (a process's stderr): read line by line into
    /// `tracing`, with a line-length cap, until it ends.
    pub stderr: Option<Box<dyn AsyncRead + Send + Unpin>>,
    /// The process behind the streams, if there is one: it is stopped
    /// (grace, then terminate, then kill) and reaped when the backend ends.
    pub process: Option<Box<dyn BackendProcess>>,
}

impl Connection {
    /// A connection over two byte streams, with no process behind them (a
    /// socket, an in-memory duplex).
    pub fn new(
        reader: impl AsyncRead + Send + Unpin + 'static,
        writer: impl AsyncWrite + Send + Unpin + 'static,
    ) -> Self {
        Connection {
            reader: Box::new(reader),
            writer: Box::new(writer),
            stderr: None,
            process: None,
        }
    }

    /// Adds a log stream, read line by line into `tracing`.
    pub fn with_stderr(mut self, stderr: impl AsyncRead + Send + Unpin + 'static) -> Self {
        self.stderr = Some(Box::new(stderr));
        self
    }

    /// Adds the process behind the streams.
    pub fn with_process(mut self, process: impl BackendProcess) -> Self {
        self.process = Some(Box::new(process));
        self
    }
}

impl fmt::Debug for Connection {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Connection")
            .field("stderr", &self.stderr.is_some())
            .field("pid", &self.process.as_ref().and_then(|p| p.pid()))
            .finish_non_exhaustive()
    }
}

/// A running backend process, as the supervisor needs it: to learn that it
/// exited, and to stop it.
///
/// The shutdown sequence itself (close stdin, wait the grace period,
/// [`terminate`](Self::terminate), wait again, [`kill`](Self::kill), reap)
/// is the supervisor's, written once.
pub trait BackendProcess: Send + 'static {
    /// The process id, if known.
    fn pid(&self) -> Option<u32>;

    /// Waits until the process exits and reaps it. Must be cancel-safe: the
    /// supervisor may drop the future and call `wait` again.
    fn wait(&mut self) -> BoxFuture<'_, io::Result<ProcessExit>>;

    /// Asks the process to stop (SIGTERM for a local process). A process
    /// that has already exited is not an error.
    fn terminate(&mut self) -> io::Result<()>;

    /// Forces the process to stop (SIGKILL for a local process). A process
    /// that has already exited is not an error.
    fn kill(&mut self) -> io::Result<()>;
}

/// How a backend process ended.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct ProcessExit {
    /// The exit code, if it exited normally.
    pub code: Option<i32>,
    /// The signal that ended it, if one did.
    pub signal: Option<i32>,
}

impl ProcessExit {
    /// Whether it exited with code 0.
    pub fn success(&self) -> bool {
        self.code == Some(0)
    }
}

impl From<std::process::ExitStatus> for ProcessExit {
    fn from(status: std::process::ExitStatus) -> Self {
        #[cfg(unix)]
        let signal = std::os::unix::process::ExitStatusExt::signal(&status);
        #[cfg(not(unix))]
        let signal = None;
        ProcessExit {
            code: status.code(),
            signal,
        }
    }
}

impl fmt::Display for ProcessExit {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match (self.code, self.signal) {
            (Some(code), _) => write!(f, "exit code {code}"),
            (None, Some(signal)) => write!(f, "killed by signal {signal}"),
            (None, None) => f.write_str("unknown exit status"),
        }
    }
}

/// Which of the gateway's own environment variables a process inherits.
/// They are read when the process starts, not when the spec is made.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub enum Inherit {
    /// All of them (but those [`ProcessSpec::withhold()`] names).
    #[default]
    All,
    /// Only those of these names that are set (and not withheld).
    Only(Vec<OsString>),
    /// None: the process sees only [`ProcessSpec::env`].
    Nothing,
}

/// What to run as a local backend process. Adapters turn it into a child
/// process with stdin, stdout and stderr piped to the supervisor.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct ProcessSpec {
    /// The program (a path, or a name looked up in `PATH`).
    pub program: PathBuf,
    /// Its arguments.
    pub args: Vec<OsString>,
    /// Environment variables to set, on top of the inherited ones (these
    /// are set as given, even when a withheld prefix matches them).
    pub env: Vec<(OsString, OsString)>,
    /// Which of the gateway's variables are inherited.
    pub inherit: Inherit,
    /// Name prefixes (ASCII case ignored) of the gateway's variables that
    /// are never inherited, whatever [`inherit`](Self::inherit) says: the
    /// gateway's own secrets.
    pub withhold: Vec<OsString>,
    /// The working directory; the gateway's own if `None`.
    pub cwd: Option<PathBuf>,
    /// The user id to run as (`setuid` in the child, which also drops the
    /// supplementary groups); the gateway's if `None`. Needs the privilege
    /// to change users, else the spawn fails.
    pub uid: Option<u32>,
    /// The group id to run as (`setgid` in the child); the gateway's if
    /// `None`.
    pub gid: Option<u32>,
}

impl ProcessSpec {
    /// Runs `program` with no arguments, the inherited environment and the
    /// current directory.
    pub fn new(program: impl Into<PathBuf>) -> Self {
        ProcessSpec {
            program: program.into(),
            ..ProcessSpec::default()
        }
    }

    /// Adds an argument.
    pub fn arg(mut self, arg: impl Into<OsString>) -> Self {
        self.args.push(arg.into());
        self
    }

    /// Adds arguments.
    pub fn args<I, S>(mut self, args: I) -> Self
    where
        I: IntoIterator<Item = S>,
        S: Into<OsString>,
    {
        self.args.extend(args.into_iter().map(Into::into));
        self
    }

    /// Sets an environment variable.
    pub fn env(mut self, key: impl Into<OsString>, value: impl Into<OsString>) -> Self {
        self.env.push((key.into(), value.into()));
        self
    }

    /// Starts from an empty environment (inherits nothing).
    pub fn env_clear(mut self) -> Self {
        self.inherit = Inherit::Nothing;
        self
    }

    /// Inherits only the gateway's variables of these names.
    pub fn inherit_only<I, S>(mut self, names: I) -> Self
    where
        I: IntoIterator<Item = S>,
        S: Into<OsString>,
    {
        self.inherit = Inherit::Only(names.into_iter().map(Into::into).collect());
        self
    }

    /// Never inherits the gateway's variables whose names start with
    /// `prefix` (ASCII case ignored).
    pub fn withhold(mut self, prefix: impl Into<OsString>) -> Self {
        self.withhold.push(prefix.into());
        self
    }

    /// Sets the working directory.
    pub fn cwd(mut self, dir: impl Into<PathBuf>) -> Self {
        self.cwd = Some(dir.into());
        self
    }

    /// Runs the process as user `uid` and group `gid`.
    pub fn user(mut self, uid: u32, gid: u32) -> Self {
        self.uid = Some(uid);
        self.gid = Some(gid);
        self
    }

    /// Whether the gateway's variable `name` is withheld.
    fn withheld(&self, name: &OsStr) -> bool {
        let name = name.as_bytes();
        self.withhold.iter().any(|prefix| {
            let prefix = prefix.as_bytes();
            name.len() >= prefix.len() && name[..prefix.len()].eq_ignore_ascii_case(prefix)
        })
    }

    /// The command to spawn: program, arguments, environment, working
    /// directory and user as specified, stdin/stdout/stderr piped, and a
    /// process group of its own (so signals to the gateway do not reach
    /// it, and [`signal_group`] reaches its children too). Adapters convert
    /// it to their runtime's command type; call it when the process is to
    /// start, since it reads the gateway's environment then.
    pub fn command(&self) -> std::process::Command {
        use std::os::unix::process::CommandExt;
        let mut command = std::process::Command::new(&self.program);
        command.args(&self.args);
        match &self.inherit {
            Inherit::All => {
                for (name, _) in std::env::vars_os() {
                    if self.withheld(&name) {
                        command.env_remove(name);
                    }
                }
            }
            Inherit::Only(names) => {
                command.env_clear();
                for name in names {
                    if let Some(value) = std::env::var_os(name).filter(|_| !self.withheld(name)) {
                        command.env(name, value);
                    }
                }
            }
            Inherit::Nothing => {
                command.env_clear();
            }
        }
        command.envs(self.env.iter().map(|(k, v)| (k, v)));
        if let Some(cwd) = &self.cwd {
            command.current_dir(cwd);
        }
        if let Some(gid) = self.gid {
            command.gid(gid);
        }
        if let Some(uid) = self.uid {
            command.uid(uid);
        }
        command
            .stdin(std::process::Stdio::piped())
            .stdout(std::process::Stdio::piped())
            .stderr(std::process::Stdio::piped())
            .process_group(0);
        command
    }

    /// The spawn error for this program: `e` with the program's path in its
    /// message, which the OS error alone does not name.
    pub fn spawn_error(&self, e: io::Error) -> io::Error {
        io::Error::new(e.kind(), format!("{}: {e}", self.program.display()))
    }
}

/// Sends `signal` to the process group led by `pid` (a process spawned
/// from [`ProcessSpec::command`]); to the process alone if it leads no
/// group. A process already gone is not an error.
pub fn signal_group(pid: u32, signal: nix::sys::signal::Signal) -> io::Result<()> {
    use nix::errno::Errno;
    use nix::sys::signal::{kill, killpg};
    use nix::unistd::Pid;
    let pid = Pid::from_raw(i32::try_from(pid).map_err(io::Error::other)?);
    match killpg(pid, signal) {
        Ok(()) | Err(Errno::ESRCH) => Ok(()),
        // Not a group leader (spawned without its own group).
        Err(Errno::EPERM) => match kill(pid, signal) {
            Ok(()) | Err(Errno::ESRCH) => Ok(()),
            Err(e) => Err(e.into()),
        },
        Err(e) => Err(e.into()),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The environment the spec's command starts with, as `KEY=VALUE` lines.
    fn environment(spec: &ProcessSpec) -> Vec<String> {
        let out = spec.command().output().unwrap();
        assert!(out.status.success(), "{out:?}");
        String::from_utf8(out.stdout)
            .unwrap()
            .lines()
            .map(str::to_owned)
            .collect()
    }

    fn names(env: &[String]) -> Vec<&str> {
        env.iter()
            .map(|l| l.split_once('=').map_or(l.as_str(), |(k, _)| k))
            .collect()
    }

    // `cargo test` gives every test process CARGO_* variables and a PATH:
    // they stand in for the gateway's own.
    #[test]
    fn withheld_prefixes_are_never_inherited_but_set_ones_are_kept() {
        let spec = ProcessSpec::new("/usr/bin/env")
            .withhold("cargo_")
            .env("CARGO_SET_BY_SPEC", "1");
        let env = environment(&spec);
        let names = names(&env);
        assert!(names.contains(&"PATH"), "{env:?}");
        assert!(names.contains(&"CARGO_SET_BY_SPEC"), "{env:?}");
        assert!(
            !names
                .iter()
                .any(|n| n.starts_with("CARGO_") && *n != "CARGO_SET_BY_SPEC"),
            "{env:?}"
        );
    }

    #[test]
    fn inherit_only_passes_just_the_named_variables() {
        let spec = ProcessSpec::new("/usr/bin/env")
            .inherit_only(["PATH", "CARGO_PKG_NAME", "MCPOD_SURELY_UNSET"])
            .withhold("CARGO_")
            .env("X", "1");
        let env = environment(&spec);
        let mut names = names(&env);
        names.sort_unstable();
        assert_eq!(names, ["PATH", "X"], "{env:?}");

        let env = environment(&ProcessSpec::new("/usr/bin/env").env_clear().env("X", "1"));
        assert_eq!(env, ["X=1"]);
    }

    #[test]
    fn uid_and_gid_are_applied_with_no_supplementary_groups() {
        let status = std::fs::read_to_string("/proc/self/status").unwrap();
        let root = status
            .lines()
            .any(|l| l.starts_with("Uid:") && l.split_whitespace().nth(2) == Some("0"));
        let spec = ProcessSpec::new("/bin/sh")
            .args(["-c", "id -u; id -g; id -G"])
            .user(65534, 65534);
        let out = spec.command().output();
        if !root {
            // Without the privilege, the spawn fails rather than run as
            // the gateway's user.
            assert!(out.is_err() || !out.unwrap().status.success());
            return;
        }
        let out = out.unwrap();
        assert!(out.status.success(), "{out:?}");
        assert_eq!(
            String::from_utf8_lossy(&out.stdout),
            "65534\n65534\n65534\n"
        );
    }
}

//! How a backend is reached: a [`Connector`] makes a [`Connection`] (byte
//! streams plus, for a process, a [`BackendProcess`] to stop it with).

use std::ffi::OsString;
use std::fmt;
use std::io;
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

/// What to run as a local backend process. Adapters turn it into a child
/// process with stdin, stdout and stderr piped to the supervisor.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct ProcessSpec {
    /// The program (a path, or a name looked up in `PATH`).
    pub program: PathBuf,
    /// Its arguments.
    pub args: Vec<OsString>,
    /// Environment variables to set (on top of the inherited ones unless
    /// `env_clear`).
    pub env: Vec<(OsString, OsString)>,
    /// Start from an empty environment instead of inheriting the gateway's.
    pub env_clear: bool,
    /// The working directory; the gateway's own if `None`.
    pub cwd: Option<PathBuf>,
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

    /// Starts from an empty environment.
    pub fn env_clear(mut self) -> Self {
        self.env_clear = true;
        self
    }

    /// Sets the working directory.
    pub fn cwd(mut self, dir: impl Into<PathBuf>) -> Self {
        self.cwd = Some(dir.into());
        self
    }

    /// The command to spawn: program, arguments, environment and working
    /// directory as specified, stdin/stdout/stderr piped, and a process
    /// group of its own (so signals to the gateway do not reach it, and
    /// [`signal_group`] reaches its children too). Adapters convert it to
    /// their runtime's command type.
    pub fn command(&self) -> std::process::Command {
        use std::os::unix::process::CommandExt;
        let mut command = std::process::Command::new(&self.program);
        command.args(&self.args);
        if self.env_clear {
            command.env_clear();
        }
        command.envs(self.env.iter().map(|(k, v)| (k, v)));
        if let Some(cwd) = &self.cwd {
            command.current_dir(cwd);
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

//! The crate's one error type.

use std::path::PathBuf;
use std::time::Duration;

/// Everything that can go wrong talking to containerd or running a process in it.
///
/// The variants that a front end maps to distinct answers are kept apart:
/// [`Error::NotFound`] (404), [`Error::BotMismatch`] and [`Error::Unlabelled`]
/// (403), [`Error::InvalidBotId`] (400), [`Error::TaskNotRunning`] (503).
#[non_exhaustive]
#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// The bot id is empty, too long or has characters outside `[A-Za-z0-9._-]`.
    #[error("invalid bot id {bot_id:?}: {reason}")]
    InvalidBotId {
        /// The id as given (possibly truncated for display).
        bot_id: String,
        /// What is wrong with it.
        reason: &'static str,
    },
    /// No container with this id exists in the namespace.
    #[error("container not found: {container_id}")]
    NotFound {
        /// The container looked for.
        container_id: String,
    },
    /// The container exists but its `mcp.bot_id` label names another bot.
    #[error("bot mismatch: container {container_id} belongs to bot {found:?}, not {expected:?}")]
    BotMismatch {
        /// The container.
        container_id: String,
        /// The bot the caller asked for.
        expected: String,
        /// The bot named by the container's label.
        found: String,
    },
    /// The container has no `mcp.bot_id` label and unlabelled containers are not allowed.
    #[error("container {container_id} has no bot label and unlabelled containers are refused")]
    Unlabelled {
        /// The container.
        container_id: String,
    },
    /// A container with this id already exists.
    #[error("container already exists: {container_id}")]
    AlreadyExists {
        /// The container.
        container_id: String,
    },
    /// The container has no running task and starting it was not allowed (or it is paused).
    #[error("task of container {container_id} is not running ({state})")]
    TaskNotRunning {
        /// The container.
        container_id: String,
        /// What was found instead: "no task", "stopped", "paused", ...
        state: String,
    },
    /// An RPC, or a wait for a process, did not finish in time.
    #[error("{op} timed out after {after:?}")]
    Timeout {
        /// The operation.
        op: &'static str,
        /// The time limit that ran out.
        after: Duration,
    },
    /// containerd answered an RPC with an error (after retries of transient ones).
    #[error("containerd {op} failed: {status_code:?}: {message}")]
    Rpc {
        /// The operation.
        op: &'static str,
        /// The gRPC status code.
        status_code: tonic::Code,
        /// containerd's message.
        message: String,
    },
    /// The socket could not be connected to.
    #[error("cannot connect to containerd at {socket}: {message}")]
    Connect {
        /// The socket path.
        socket: PathBuf,
        /// Why.
        message: String,
    },
    /// Waiting for a process's exit failed for good (containerd gone for too long,
    /// or the process record vanished). This is never an exit status.
    #[error("waiting for process {exec_id} in {container_id} failed: {message}")]
    WaitFailed {
        /// The container.
        container_id: String,
        /// The exec id (empty for the task's init process).
        exec_id: String,
        /// Why.
        message: String,
    },
    /// A container's OCI runtime spec is missing or malformed, or a spec could not be built.
    #[error("bad runtime spec for {container_id}: {message}")]
    Spec {
        /// The container.
        container_id: String,
        /// What is wrong.
        message: String,
    },
    /// An image tarball is malformed or does not fit this machine.
    #[error("image: {0}")]
    Image(String),
    /// A configuration value or argument is invalid.
    #[error("invalid configuration: {0}")]
    Config(String),
    /// A local file-system operation (FIFOs, directories) failed.
    #[error("{context}: {source}")]
    Io {
        /// What was being done, with the path.
        context: String,
        /// The OS error.
        #[source]
        source: std::io::Error,
    },
}

/// `Result` with this crate's [`Error`].
pub type Result<T, E = Error> = std::result::Result<T, E>;

impl Error {
    pub(crate) fn rpc(op: &'static str, status: &tonic::Status) -> Self {
        Error::Rpc {
            op,
            status_code: status.code(),
            message: status.message().to_owned(),
        }
    }

    pub(crate) fn io(context: impl Into<String>, source: std::io::Error) -> Self {
        Error::Io {
            context: context.into(),
            source,
        }
    }

    /// The gRPC code, when this error is an RPC failure.
    pub fn rpc_code(&self) -> Option<tonic::Code> {
        match self {
            Error::Rpc { status_code, .. } => Some(*status_code),
            _ => None,
        }
    }

    /// Whether containerd said the object (container, task, process) does not exist.
    pub fn is_not_found(&self) -> bool {
        matches!(self, Error::NotFound { .. }) || self.rpc_code() == Some(tonic::Code::NotFound)
    }
}

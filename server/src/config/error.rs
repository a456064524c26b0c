//! [`ConfigError`]: what is wrong with a config, naming the key at fault.

use std::path::PathBuf;

use thiserror::Error;

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

pub(crate) fn invalid(key: impl Into<String>, message: impl Into<String>) -> ConfigError {
    ConfigError::Invalid {
        key: key.into(),
        message: message.into(),
    }
}

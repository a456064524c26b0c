//! The gateway's life: the listener and its connections (limits and
//! timeouts), shared backends started up front, idle sessions swept, live
//! reload of the config, and a graceful shutdown.

mod backends;
mod connection;
mod listener;
mod nofile;
mod overflow;
mod reload;
mod serve;

pub(crate) use reload::{LoadConfig, Reloader};
pub(crate) use serve::serve_reloading;
pub use serve::{Server, serve, spawn};

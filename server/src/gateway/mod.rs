//! The gateway's life: the listener and its connections (limits and
//! timeouts), shared backends started up front, idle sessions swept, and a
//! graceful shutdown.

mod connection;
mod listener;
mod nofile;
mod overflow;
mod serve;

pub use serve::{Server, serve, spawn};

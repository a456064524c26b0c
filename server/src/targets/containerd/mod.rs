//! The containerd backend: stdio MCP servers exec'd inside bot containers
//! through [`mcpod_containerd`], with FIFO stdio, supervised like any
//! process backend ([`connector`]); the bots served without configuration
//! ([`bots`]); and the shared connections ([`clients`]).

mod bots;
pub(super) mod clients;
pub(super) mod connector;

pub(crate) use bots::{BotContainers, BotRefusal, check_target};

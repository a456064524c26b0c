//! The Memoh-compatible front end, with the contract of the handler mcpod
//! re-creates (see the seed's notes):
//!
//! - `POST /bots/{bot_id}/container/fs-mcp`: one JSON-RPC object in, one
//!   JSON-RPC response out with 200; a notification → 202 and no body;
//!   `jsonrpc` other than "2.0" → -32600; an empty method → -32601; a
//!   backend failure → -32603 with the message. Other failures answer
//!   `{"message": …}` with 400/404/500 as echo did.
//! - `POST /bots/{bot_id}/mcp-stdio` with `{name, command, args, env, cwd}`
//!   starts a stdio server for the bot, probes `tools/list` and answers
//!   `{connection_id, url, tools}` ([`stdio`]); a field outside those five
//!   is refused (400), and the bot's `stdio_*` keys bound what may be
//!   started ([`policy`]).
//! - `POST /bots/{bot_id}/mcp-stdio/{connection_id}` talks to it (same
//!   JSON-RPC rules); `DELETE` stops it. Another bot's connection → 404.
//!
//! Who the bot is and whether the caller may use it is the routes' job.

mod policy;
mod rpc;
mod stdio;

pub(crate) use rpc::{Served, rpc};
pub(crate) use stdio::{StdioBot, StdioConnections, call_stdio, create_stdio, delete_stdio};

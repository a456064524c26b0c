//! The era front ends, one per kind of client: legacy sessions
//! (`initialize`, `Mcp-Session-Id`, GET streams), stateless 2026-07-28
//! requests, and the Memoh-compatible routes. Each reads its era's
//! requests, hands calls to the bridge and turns what comes back into HTTP
//! responses.

mod context;
pub(crate) mod legacy;
pub(crate) mod memoh;
pub(crate) mod modern;
mod refusals;
mod reply;
mod streams;

pub(crate) use context::Context;

//! Era translation between a client and a backend: what a client of one
//! era sends reaches the backend in the backend's terms, and what comes
//! back reaches the client in its own — the handshake answered by the
//! gateway, a call's items turned into frames, SSE events or server
//! requests on the right stream (a legacy session's streams keep their
//! events for resumption), multi round-trip requests for stateless
//! clients of legacy backends, listens served for them, and which calls
//! may ask the client (they take turns on a shared legacy backend).
//!
//! The bridge knows nothing of HTTP: the front ends turn its frames into
//! responses.

mod adapter;
mod asking;
mod caps;
mod client;
mod exchange;
mod handshake;
mod inputs;
mod listen;
mod logging;
mod policy;
mod slots;
mod streams;
mod tool_headers;
mod translate;

use std::sync::Arc;

pub(crate) use adapter::Refused;
pub(crate) use caps::ClientCaps;
pub(crate) use client::{Client, ClientHello};
pub(crate) use exchange::{Caller, Exchange, Place, Resumed, Step};
pub(crate) use handshake::{NotReady, discover_result, initialize_result, negotiate, ready};
pub(crate) use inputs::{Inputs, Retry, STATE_PREFIX};
pub(crate) use listen::{ListenFilter, listen};
pub(crate) use logging::LogLevel;
pub(crate) use policy::{DENIED, filter_list, refusal};
pub(crate) use slots::Slots;
pub(crate) use streams::{Attached, Next, Refusal, StreamId, StreamLimits};

use crate::targets::{Backend, Target};

pub(crate) use tool_headers::HeaderParam;

/// The arguments of `tool` that a 2026-07-28 client mirrors into
/// `Mcp-Param-*` headers, as far as `backend`'s tool list says.
pub(crate) async fn header_params(backend: &Backend, tool: &str) -> Vec<HeaderParam> {
    adapter::Adapter::of(backend)
        .tool_headers
        .of(backend, tool)
        .await
}

/// Where a call of `target` on `backend` runs.
pub(crate) fn place(target: &Target, backend: Arc<Backend>, inputs: &Arc<Inputs>) -> Place {
    Place {
        asking: asking::AskingTools::of(&backend, &target.config),
        backend,
        target: target.name().to_owned(),
        config_roots: target.config.roots.is_some(),
        inputs: inputs.clone(),
        call_timeout: target.config.call_timeout,
        burst_window: target.burst_window(),
        principal: crate::ids::Principal::anonymous(),
        access: crate::config::Access::all(),
    }
}

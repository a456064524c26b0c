//! # mcpod-core
//!
//! The sans-IO heart of mcpod: the client side of one stdio MCP server,
//! shared by many callers. It takes bytes in and gives frames and events out
//! — framing, JSON-RPC envelopes, request correlation with id rewriting,
//! era detection and the `initialize` handshake, deadlines, cancellation and
//! routing of server→client traffic — with no I/O, no clock and no async
//! runtime. Runtime adapters (`mcpod-tokio`, `mcpod-async-std`) drive it.
//!
//! ## Example: a session against a scripted server
//!
//! ```
//! use std::time::Instant;
//! use mcpod_core::{Config, EraMode, Event, Request, RequestOptions, Session};
//! use serde_json::value::RawValue;
//!
//! let now = Instant::now();
//! let mut session = Session::new(Config { era_mode: EraMode::Legacy, ..Config::default() }, now);
//!
//! // The session opens with its own `initialize` (backend id 1).
//! let mut stdin = Vec::new();
//! assert!(session.poll_transmit(&mut stdin));
//! assert!(stdin.starts_with(br#"{"jsonrpc":"2.0","id":1,"method":"initialize""#));
//!
//! // A caller's request, with an id that is the caller's own business.
//! let id = RawValue::from_string(r#""abc""#.into()).unwrap();
//! let call = session
//!     .send_request(Request { id: &id, method: "tools/list", params: None }, RequestOptions::default(), now)
//!     .unwrap();
//!
//! // The server answers the handshake, then the call (which it knows as id 2).
//! session.handle_input(
//!     br#"{"jsonrpc":"2.0","id":1,"result":{"protocolVersion":"2025-11-25","capabilities":{},"serverInfo":{"name":"s","version":"1"}}}
//! {"jsonrpc":"2.0","id":2,"result":{"tools":[]}}
//! "#,
//!     now,
//! );
//! stdin.clear();
//! assert!(session.poll_transmit(&mut stdin)); // notifications/initialized + the call
//! assert!(matches!(session.poll_event(), Some(Event::Ready(_))));
//! match session.poll_event() {
//!     Some(Event::Response { call: c, frame, .. }) => {
//!         assert_eq!(c, call);
//!         assert_eq!(frame, br#"{"jsonrpc":"2.0","id":"abc","result":{"tools":[]}}"#);
//!     }
//!     other => panic!("{other:?}"),
//! }
//! ```
//!
//! ## Why sans-IO
//! Every rule that makes a shared backend safe — ids that never collide,
//! calls that end exactly once, bounded buffers, deadlines — lives here,
//! once, and is tested at memory speed on virtual time, property-tested and
//! fuzzed. The adapters only move bytes and sleep.
//!
//! Drain order after every mutation: [`Session::poll_transmit`], then
//! [`Session::poll_timeout`], then [`Session::poll_event`] until `None`.

#![forbid(unsafe_code)]
#![warn(missing_docs)]

mod config;
pub mod envelope;
mod event;
pub mod framing;
pub mod json;
pub mod meta;
mod session;
mod turn;

pub use config::{
    Config, EraMode, LATEST_LEGACY_VERSION, LATEST_MODERN_VERSION, LEGACY_VERSIONS, MODERN_VERSIONS,
};
pub use envelope::{Id, Message};
pub use event::{
    BackendInfo, CallId, CloseReason, EndReason, Era, Event, Owner, PeerFault, Route, SendError,
    ServerRequest, ServerRequestId,
};
pub use framing::{FrameError, Framer};
pub use session::{Deadline, Outcome, Request, RequestOptions, Session, Stats};

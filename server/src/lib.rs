//! # mcpod-server
//!
//! The mcpod gateway: runs stdio MCP servers (as child processes, or
//! exec'd in containerd containers) and serves them to MCP clients of both
//! eras over Streamable HTTP on `/mcp/{target}`, plus the Memoh-compatible
//! `/bots/…` routes, with bearer auth, Origin/Host checks, limits, health
//! and Prometheus metrics.
//!
//! ```no_run
//! # async fn run() -> Result<(), Box<dyn std::error::Error>> {
//! use mcpod_server::config::RawConfig;
//! let config = RawConfig::embedded_default(&std::env::current_exe()?).validate()?;
//! let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await?;
//! let server = mcpod_server::spawn(config, listener)?;
//! println!("listening on http://{}/mcp/demo", server.addr());
//! server.shutdown().await;
//! # Ok(())
//! # }
//! ```
//!
//! The protocol work (id rewriting, correlation, cancellation, era
//! detection) is `mcpod-core`'s, driven by `mcpod-tokio`. The modules
//! follow the path of a request, top to bottom, and each uses only those
//! below it (`ARCHITECTURE.md` at the repository root has the picture, and
//! a test checks the rule):
//!
//! | module | job |
//! | --- | --- |
//! | `cli`, `gateway` | the binary's commands; the gateway's life (listen, connections and their limits, sweep, shut down) |
//! | `fuzzing` | (feature `fuzzing`) one client connection's bytes through the routes, for the fuzz target |
//! | `routes` | HTTP routing and the guards: Host/Origin, CORS, bearer tokens, health and metrics |
//! | `front` | the era front ends: legacy sessions, 2026-07-28 requests, Memoh routes |
//! | `web` | the HTTP vocabulary they share: errors, SSE, headers, bodies, the request record |
//! | `aggregate` | aggregates: several targets on one endpoint, their lists merged, names prefixed |
//! | `bridge` | era translation between a client and a backend |
//! | `targets` | targets and their backends: shared, per session, in containerd |
//! | `metrics`, `config`, `ids` | counters, the configuration, random ids |
//! | `telemetry` | OpenTelemetry spans exported over OTLP, W3C trace context |

#![forbid(unsafe_code)]
#![warn(missing_docs)]

mod cli;
#[cfg(feature = "fuzzing")]
pub mod fuzzing;
mod gateway;

mod routes;

mod front;

mod web;

mod aggregate;

mod bridge;

mod targets;

mod metrics;

mod telemetry;

pub mod config;

mod ids;

pub use cli::main;
pub use gateway::{Server, serve, spawn};

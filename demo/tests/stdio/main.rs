//! End-to-end tests of `mcpod-demo`: the real binary over pipes, with every
//! message it sends checked against the official schema of the revision used.

mod harness;
mod legacy;
mod lifecycle;
mod modern;
mod schema;

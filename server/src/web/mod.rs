//! The HTTP vocabulary the routes and front ends share: errors as
//! responses, SSE framing, the Streamable HTTP request headers, bodies,
//! and the per-request metrics record.

pub(crate) mod body;
pub(crate) mod errors;
pub(crate) mod headers;
pub(crate) mod record;
pub(crate) mod sse;

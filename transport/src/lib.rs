//! Runtime-neutral driver and caller handle around an mcpod-core session.

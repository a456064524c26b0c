//! async-std / smol runtime adapter for mcpod.

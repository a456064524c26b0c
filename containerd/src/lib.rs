//! containerd backend for mcpod: exec stdio MCP servers inside containers over FIFOs.

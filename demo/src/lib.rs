//! A small but real stdio MCP server speaking both MCP eras, used by mcpod's tests, benches and quickstart.

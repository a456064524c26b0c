//! The mcpod gateway: serves stdio MCP servers to MCP clients over Streamable HTTP.

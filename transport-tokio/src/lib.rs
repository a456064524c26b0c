//! Tokio runtime adapter for mcpod: child-process backends and the session driver.

//! An independent MCP client — the official Rust SDK `rmcp` and its
//! Streamable HTTP client — drives the gateway, in both lifecycles.

#![allow(clippy::unwrap_used, missing_docs)]

mod common;

use common::Gateway;
use rmcp::model::{CallToolRequestParams, ClientConfig, ProtocolVersion};
use rmcp::transport::StreamableHttpClientTransport;
use rmcp::{ClientLifecycleMode, ClientServiceExt, ServiceExt};

fn echo(text: &str) -> CallToolRequestParams {
    let mut args = serde_json::Map::new();
    args.insert("text".into(), serde_json::json!(text));
    CallToolRequestParams::new("echo").with_arguments(args)
}

fn first_text(result: &rmcp::model::CallToolResult) -> String {
    let v = serde_json::to_value(result).unwrap();
    v["content"][0]["text"].as_str().unwrap().to_owned()
}

#[tokio::test]
async fn rmcp_legacy_initialize_list_and_call() {
    let gw = Gateway::demo().await;
    let transport = StreamableHttpClientTransport::from_uri(gw.url("/mcp/demo"));
    let client = ClientConfig::default()
        .with_protocol_version(ProtocolVersion::LATEST_WITH_INITIALIZE)
        .serve(transport)
        .await
        .unwrap();
    let info = client.peer_info().unwrap();
    assert_eq!(info.server_info.as_ref().unwrap().name, "mcpod-demo");
    let tools = client.list_all_tools().await.unwrap();
    assert!(tools.iter().any(|t| t.name == "echo"));
    assert!(tools.iter().any(|t| t.name == "progress"));
    let result = client.call_tool(echo("via rmcp")).await.unwrap();
    assert_eq!(first_text(&result), "via rmcp");
    client.cancel().await.unwrap();
    gw.shutdown().await;
}

#[tokio::test]
async fn rmcp_modern_discover_list_and_call() {
    let gw = Gateway::demo().await;
    let transport = StreamableHttpClientTransport::from_uri(gw.url("/mcp/demo"));
    let client = ClientConfig::default()
        .serve_with_lifecycle(
            transport,
            ClientLifecycleMode::Discover {
                preferred_versions: vec![ProtocolVersion::V_2026_07_28],
            },
        )
        .await
        .unwrap();
    let tools = client.list_all_tools().await.unwrap();
    assert!(tools.iter().any(|t| t.name == "echo"));
    let result = client.call_tool(echo("modern rmcp")).await.unwrap();
    assert_eq!(first_text(&result), "modern rmcp");
    client.cancel().await.unwrap();
    gw.shutdown().await;
}

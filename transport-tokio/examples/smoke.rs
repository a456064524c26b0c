//! Calls the demo server's `echo` tool once: `cargo run -p mcpod-tokio --example smoke -- <path to mcpod-demo>`.

use mcpod_tokio::{
    CallItem, OwnedRequest, ProcessSpec, RequestOptions, SpawnProcess, Upstream, UpstreamConfig,
};
use serde_json::value::RawValue;

#[tokio::main]
async fn main() -> Result<(), Box<dyn std::error::Error>> {
    let program = std::env::args()
        .nth(1)
        .unwrap_or_else(|| "mcpod-demo".into());
    let upstream = Upstream::spawn_process(ProcessSpec::new(program), UpstreamConfig::default());
    let info = upstream.ready().await?;
    println!("ready: {:?} {}", info.era, info.protocol_version);
    let request = OwnedRequest::new(
        RawValue::from_string("1".into())?,
        "tools/call",
        Some(RawValue::from_string(
            r#"{"name":"echo","arguments":{"text":"hi"}}"#.into(),
        )?),
    );
    let mut call = upstream.call(request, RequestOptions::default()).await?;
    while let Some(item) = call.next().await {
        match item {
            CallItem::Response { frame, .. } => println!("{}", String::from_utf8_lossy(&frame)),
            other => println!("{other:?}"),
        }
    }
    println!("{:?}", upstream.status());
    upstream.close().await;
    println!("{:?}", upstream.status());
    Ok(())
}

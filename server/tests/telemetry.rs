//! OpenTelemetry: the `mcpod serve` binary, turned on by the standard
//! `OTEL_*` variables alone, exports the spans of its calls to a collector
//! on loopback (OTLP/HTTP protobuf, and OTLP/gRPC), continuing the trace
//! the client sent in `traceparent`, and passes the trace context to the
//! backend in `params._meta` (the demo's `meta` tool shows what it got).

#![allow(clippy::unwrap_used)]

mod common;

use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use axum::body::Bytes;
use axum::extract::State;
use axum::routing::post;
use common::{Gateway, Served, demo_target};
use opentelemetry_proto::tonic::collector::trace::v1::trace_service_server::{
    TraceService, TraceServiceServer,
};
use opentelemetry_proto::tonic::collector::trace::v1::{
    ExportTraceServiceRequest, ExportTraceServiceResponse,
};
use opentelemetry_proto::tonic::common::v1::any_value::Value as Any;
use opentelemetry_proto::tonic::trace::v1::span::SpanKind;
use prost::Message as _;
use serde_json::{Value, json};

/// The client's trace: W3C ids of a call made outside the gateway.
const TRACE_ID: &str = "4bf92f3577b34da6a3ce929d0e0e4736";
const PARENT_ID: &str = "00f067aa0ba902b7";
const TRACESTATE: &str = "vendor=opaque-value";
/// The trace of the Memoh route's call.
const MEMOH_TRACE_ID: &str = "5bf92f3577b34da6a3ce929d0e0e4737";
/// The trace of a call to a server the bot started (mcp-stdio).
const STDIO_TRACE_ID: &str = "6cf92f3577b34da6a3ce929d0e0e4748";

/// Spans a collector keeps, at most.
const MAX_SPANS: usize = 10_000;

/// One received span, in the terms the assertions use.
#[derive(Debug, Clone)]
struct Got {
    service: String,
    name: String,
    kind: i32,
    trace_id: String,
    span_id: String,
    parent_id: String,
    attributes: HashMap<String, String>,
    error_status: bool,
}

/// What a collector received.
#[derive(Debug, Clone, Default)]
struct Collected(Arc<Mutex<Vec<Got>>>);

impl Collected {
    fn take(&self, request: ExportTraceServiceRequest) {
        let mut all = self.0.lock().unwrap();
        for rs in request.resource_spans {
            let service = rs
                .resource
                .iter()
                .flat_map(|r| &r.attributes)
                .find(|kv| kv.key == "service.name")
                .and_then(|kv| kv.value.as_ref())
                .and_then(|v| text(v.value.as_ref()))
                .unwrap_or_default();
            for span in rs.scope_spans.into_iter().flat_map(|s| s.spans) {
                if all.len() >= MAX_SPANS {
                    return;
                }
                all.push(Got {
                    service: service.clone(),
                    name: span.name,
                    kind: span.kind,
                    trace_id: hex(&span.trace_id),
                    span_id: hex(&span.span_id),
                    parent_id: hex(&span.parent_span_id),
                    attributes: span
                        .attributes
                        .into_iter()
                        .filter_map(|kv| {
                            let v = text(kv.value.as_ref().and_then(|v| v.value.as_ref()))?;
                            Some((kv.key, v))
                        })
                        .collect(),
                    error_status: span.status.is_some_and(|s| s.code == 2),
                });
            }
        }
    }

    fn spans(&self) -> Vec<Got> {
        self.0.lock().unwrap().clone()
    }
}

fn hex(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

fn text(v: Option<&Any>) -> Option<String> {
    match v? {
        Any::StringValue(s) => Some(s.clone()),
        Any::IntValue(i) => Some(i.to_string()),
        Any::BoolValue(b) => Some(b.to_string()),
        Any::DoubleValue(d) => Some(d.to_string()),
        _ => None,
    }
}

/// An OTLP/HTTP collector on loopback: `POST /v1/traces` with a protobuf
/// `ExportTraceServiceRequest`. Its base URL, and what it got.
async fn http_collector() -> (String, Collected) {
    async fn receive(
        State(got): State<Collected>,
        headers: http::HeaderMap,
        body: Bytes,
    ) -> (
        http::StatusCode,
        [(http::HeaderName, &'static str); 1],
        Vec<u8>,
    ) {
        let protobuf = headers
            .get(http::header::CONTENT_TYPE)
            .is_some_and(|v| v == "application/x-protobuf");
        let ct = [(http::header::CONTENT_TYPE, "application/x-protobuf")];
        match ExportTraceServiceRequest::decode(body) {
            Ok(request) if protobuf => {
                got.take(request);
                let ok = ExportTraceServiceResponse::default().encode_to_vec();
                (http::StatusCode::OK, ct, ok)
            }
            _ => (http::StatusCode::BAD_REQUEST, ct, Vec::new()),
        }
    }
    let got = Collected::default();
    let app = axum::Router::new()
        .route("/v1/traces", post(receive))
        .with_state(got.clone());
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    tokio::spawn(async move { axum::serve(listener, app).await });
    (format!("http://{addr}"), got)
}

/// An OTLP/gRPC collector on loopback: the generated `TraceService`,
/// served over HTTP/2 by hyper.
async fn grpc_collector() -> (String, Collected) {
    #[derive(Clone)]
    struct Receiver(Collected);
    #[tonic::async_trait]
    impl TraceService for Receiver {
        async fn export(
            &self,
            request: tonic::Request<ExportTraceServiceRequest>,
        ) -> Result<tonic::Response<ExportTraceServiceResponse>, tonic::Status> {
            self.0.take(request.into_inner());
            Ok(tonic::Response::new(ExportTraceServiceResponse::default()))
        }
    }
    let got = Collected::default();
    let service = TraceServiceServer::new(Receiver(got.clone()));
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    tokio::spawn(async move {
        loop {
            let Ok((stream, _)) = listener.accept().await else {
                return;
            };
            let service = hyper_util::service::TowerToHyperService::new(service.clone());
            tokio::spawn(async move {
                let _ = hyper_util::server::conn::auto::Builder::new(
                    hyper_util::rt::TokioExecutor::new(),
                )
                .http2_only()
                .serve_connection(hyper_util::rt::TokioIo::new(stream), service)
                .await;
            });
        }
    });
    (format!("http://{addr}"), got)
}

fn config_file(dir: &tempfile::TempDir) -> std::path::PathBuf {
    let path = dir.path().join("mcpod.toml");
    let toml = format!(
        "{}\n[auth]\ndisabled = true\n[bots.bot1]\ntarget = \"demo\"\nallow_local_stdio = true\n",
        demo_target("demo", "")
    );
    std::fs::write(&path, toml).unwrap();
    path
}

/// The `traceparent` a client sends: version 00, sampled.
fn traceparent(trace_id: &str, parent: &str) -> String {
    format!("00-{trace_id}-{parent}-01")
}

/// Calls through `gw` as both eras and checks what the backend saw; gives
/// the span id the backend got for the modern call.
async fn calls(gw: &Gateway) -> String {
    let tp = traceparent(TRACE_ID, PARENT_ID);
    // Modern: the demo's `meta` tool returns the _meta it received.
    let r = gw
        .modern_with(
            "demo",
            json!(1),
            "tools/call",
            json!({"name":"meta","arguments":{}}),
            &[("traceparent", &tp), ("tracestate", TRACESTATE)],
        )
        .await;
    assert_eq!(r.status, 200, "{}", r.body);
    let meta: Value = serde_json::from_str(&r.text()).unwrap();
    let got = meta["traceparent"].as_str().expect("traceparent in _meta");
    let parts: Vec<&str> = got.split('-').collect();
    assert_eq!(parts.len(), 4, "{got}");
    assert_eq!(parts[0], "00");
    assert_eq!(parts[1], TRACE_ID, "the backend joins the client's trace");
    assert_ne!(parts[2], PARENT_ID, "the gateway's own span is the parent");
    assert_eq!(parts[3], "01", "sampled, as the client asked");
    assert_eq!(meta["tracestate"], TRACESTATE);
    let backend_parent = parts[2].to_owned();

    // Legacy, in a session: a tool the backend refuses (an error span).
    let sid = gw.initialize("demo").await;
    let legacy_tp = traceparent("0af7651916cd43dd8448eb211c80319c", "b7ad6b7169203331");
    let r = gw
        .post(
            "/mcp/demo",
            &[
                ("mcp-session-id", &sid),
                ("mcp-protocol-version", "2025-06-18"),
                ("traceparent", &legacy_tp),
            ],
            &common::call(json!(2), "no_such_tool", json!({})),
        )
        .await;
    assert_eq!(r.status, 200, "{}", r.body);
    assert!(r.code().is_some(), "{}", r.body);
    let r = gw
        .legacy("demo", &sid, common::call(json!(3), "meta", json!({})))
        .await;
    let meta: Value = serde_json::from_str(&r.text()).unwrap();
    let untraced = meta["traceparent"].as_str().expect("traceparent in _meta");
    assert!(
        !untraced.contains(TRACE_ID),
        "a request without traceparent starts a trace of its own: {untraced}"
    );

    // The Memoh route, in a trace of its own.
    let memoh_tp = traceparent(MEMOH_TRACE_ID, PARENT_ID);
    let r = gw
        .post_raw(
            "/bots/bot1/container/fs-mcp",
            &[("content-type", "application/json"), ("traceparent", &memoh_tp)],
            r#"{"jsonrpc":"2.0","id":4,"method":"tools/call","params":{"name":"meta","arguments":{}}}"#,
        )
        .await;
    assert_eq!(r.status, 200, "{}", r.body);
    let meta: Value = serde_json::from_str(&r.text()).unwrap();
    assert!(
        meta["traceparent"]
            .as_str()
            .is_some_and(|t| t.contains(MEMOH_TRACE_ID)),
        "{meta}"
    );
    // A server the bot starts itself (mcp-stdio), in a trace of its own.
    let create = json!({"name":"own","command":common::DEMO,"args":["demo-server"]});
    let r = gw
        .post_raw(
            "/bots/bot1/mcp-stdio",
            &[("content-type", "application/json")],
            create.to_string(),
        )
        .await;
    assert_eq!(r.status, 200, "{}", r.body);
    let url = r.json()["url"].as_str().unwrap().to_owned();
    let stdio_tp = traceparent(STDIO_TRACE_ID, PARENT_ID);
    let r = gw
        .post_raw(
            &url,
            &[("content-type", "application/json"), ("traceparent", &stdio_tp)],
            r#"{"jsonrpc":"2.0","id":5,"method":"tools/call","params":{"name":"meta","arguments":{}}}"#,
        )
        .await;
    assert_eq!(r.status, 200, "{}", r.body);
    let meta: Value = serde_json::from_str(&r.text()).unwrap();
    assert!(
        meta["traceparent"]
            .as_str()
            .is_some_and(|t| t.contains(STDIO_TRACE_ID)),
        "{meta}"
    );
    backend_parent
}

fn find<'a>(spans: &'a [Got], what: &str, f: impl Fn(&Got) -> bool) -> &'a Got {
    spans
        .iter()
        .find(|s| f(s))
        .unwrap_or_else(|| panic!("no {what} among {spans:#?}"))
}

/// The spans of [`calls`]: a server span per request, continuing the
/// client's trace, with the MCP attributes; a client span per backend
/// call under it, whose id the backend got.
fn check(spans: &[Got], backend_parent: &str) {
    assert!(spans.iter().all(|s| s.service == "mcpod-under-test"));
    let server = find(spans, "modern server span", |s| {
        s.trace_id == TRACE_ID && s.kind == SpanKind::Server as i32
    });
    assert_eq!(server.name, "tools/call meta");
    assert_eq!(
        server.parent_id, PARENT_ID,
        "the client's span is the parent"
    );
    let a = &server.attributes;
    assert_eq!(a["mcp.method.name"], "tools/call");
    assert_eq!(a["gen_ai.tool.name"], "meta");
    assert_eq!(a["gen_ai.operation.name"], "execute_tool");
    assert_eq!(a["mcp.protocol.version"], "2026-07-28");
    assert_eq!(a["jsonrpc.request.id"], "1");
    assert_eq!(a["mcpod.target"], "demo");
    assert_eq!(a["mcpod.era"], "modern");
    assert_eq!(a["mcpod.outcome"], "ok");
    assert_eq!(a["http.request.method"], "POST");
    assert_eq!(a["http.route"], "/mcp/{target}");
    assert!(!a.contains_key("error.type"));
    assert!(!server.error_status);

    let client = find(spans, "modern backend span", |s| {
        s.trace_id == TRACE_ID && s.kind == SpanKind::Client as i32
    });
    assert_eq!(client.name, "tools/call meta");
    assert_eq!(client.parent_id, server.span_id);
    assert_eq!(
        client.span_id, backend_parent,
        "the backend got this span's id"
    );
    let a = &client.attributes;
    assert_eq!(a["mcp.method.name"], "tools/call");
    assert_eq!(a["gen_ai.tool.name"], "meta");
    assert_eq!(a["mcpod.target"], "demo");
    assert_eq!(a["network.transport"], "pipe");
    assert_eq!(a["mcpod.outcome"], "ok");
    assert!(a.contains_key("mcp.protocol.version"), "{a:?}");

    let legacy = "0af7651916cd43dd8448eb211c80319c";
    let failed = find(spans, "legacy server span", |s| {
        s.trace_id == legacy && s.kind == SpanKind::Server as i32
    });
    assert_eq!(failed.name, "tools/call no_such_tool");
    assert_eq!(failed.parent_id, "b7ad6b7169203331");
    let a = &failed.attributes;
    assert_eq!(a["mcpod.era"], "legacy");
    assert_eq!(a["mcp.protocol.version"], "2025-06-18");
    assert!(a["mcp.session.id"].len() >= 16, "{a:?}");
    assert_eq!(a["mcpod.outcome"], "error");
    assert_eq!(a["error.type"], "error");
    assert!(failed.error_status);
    let memoh = find(spans, "Memoh server span", |s| {
        s.trace_id == MEMOH_TRACE_ID && s.kind == SpanKind::Server as i32
    });
    assert_eq!(memoh.parent_id, PARENT_ID);
    assert_eq!(
        memoh.attributes["http.route"],
        "/bots/{bot_id}/container/fs-mcp"
    );
    assert_eq!(memoh.attributes["mcp.method.name"], "tools/call");
    assert_eq!(memoh.attributes["mcpod.outcome"], "ok");
    let memoh_call = find(spans, "Memoh backend span", |s| {
        s.trace_id == MEMOH_TRACE_ID && s.kind == SpanKind::Client as i32
    });
    assert_eq!(memoh_call.parent_id, memoh.span_id);
    assert_eq!(memoh_call.attributes["gen_ai.tool.name"], "meta");

    let stdio = find(spans, "mcp-stdio server span", |s| {
        s.trace_id == STDIO_TRACE_ID && s.kind == SpanKind::Server as i32
    });
    assert_eq!(stdio.parent_id, PARENT_ID);
    assert_eq!(
        stdio.attributes["http.route"],
        "/bots/{bot_id}/mcp-stdio/{connection_id}"
    );
    assert_eq!(stdio.attributes["mcp.method.name"], "tools/call");
    assert_eq!(stdio.attributes["mcpod.outcome"], "ok");
    let stdio_call = find(spans, "mcp-stdio backend span", |s| {
        s.trace_id == STDIO_TRACE_ID && s.kind == SpanKind::Client as i32
    });
    assert_eq!(stdio_call.parent_id, stdio.span_id);
    assert_eq!(stdio_call.attributes["gen_ai.tool.name"], "meta");

    let failed_call = find(spans, "legacy backend span", |s| {
        s.trace_id == legacy && s.kind == SpanKind::Client as i32
    });
    assert_eq!(failed_call.parent_id, failed.span_id);
    assert_eq!(failed_call.attributes["error.type"], "error");
}

async fn exports_over(protocol: &str, collector: (String, Collected)) {
    let (endpoint, got) = collector;
    let dir = tempfile::tempdir().unwrap();
    let served = Served::start(
        &config_file(&dir),
        &[
            ("OTEL_EXPORTER_OTLP_ENDPOINT", &endpoint),
            ("OTEL_EXPORTER_OTLP_PROTOCOL", protocol),
            ("OTEL_SERVICE_NAME", "mcpod-under-test"),
            // Nothing leaves before the shutdown's flush.
            ("OTEL_BSP_SCHEDULE_DELAY", "600000"),
        ],
    )
    .await;
    let backend_parent = calls(&served.gateway).await;
    served.stop().await;
    // The process has exited: what it flushed at shutdown is all there is.
    check(&got.spans(), &backend_parent);
}

#[tokio::test]
async fn spans_reach_an_otlp_http_collector_continuing_the_clients_trace() {
    exports_over("http/protobuf", http_collector().await).await;
}

#[tokio::test]
async fn spans_reach_an_otlp_grpc_collector_continuing_the_clients_trace() {
    exports_over("grpc", grpc_collector().await).await;
}

#[tokio::test]
async fn off_by_default_the_backend_gets_no_trace_context() {
    let gw = Gateway::start(&demo_target("demo", "")).await;
    let tp = traceparent(TRACE_ID, PARENT_ID);
    let r = tokio::time::timeout(
        Duration::from_secs(30),
        gw.modern_with(
            "demo",
            json!(1),
            "tools/call",
            json!({"name":"meta","arguments":{}}),
            &[("traceparent", &tp)],
        ),
    )
    .await
    .unwrap();
    let meta: Value = serde_json::from_str(&r.text()).unwrap();
    assert!(meta.get("traceparent").is_none(), "{meta}");
    assert!(meta.get("tracestate").is_none(), "{meta}");
    gw.shutdown().await;
}

#[tokio::test]
async fn otel_sdk_disabled_wins_over_an_endpoint() {
    let (endpoint, got) = http_collector().await;
    let dir = tempfile::tempdir().unwrap();
    let served = Served::start(
        &config_file(&dir),
        &[
            ("OTEL_EXPORTER_OTLP_ENDPOINT", &endpoint),
            ("OTEL_SDK_DISABLED", "true"),
        ],
    )
    .await;
    let r = served
        .gateway
        .modern_with(
            "demo",
            json!(1),
            "tools/call",
            json!({"name":"meta","arguments":{}}),
            &[("traceparent", &traceparent(TRACE_ID, PARENT_ID))],
        )
        .await;
    let meta: Value = serde_json::from_str(&r.text()).unwrap();
    assert!(meta.get("traceparent").is_none(), "{meta}");
    served.stop().await;
    assert!(got.spans().is_empty());
}

//! `mcpod-loadgen http` against a small in-process Streamable HTTP server
//! that answers in JSON and in SSE, checks the MCP headers, and can lie.

use std::collections::HashSet;
use std::convert::Infallible;
use std::net::SocketAddr;
use std::process::Output;
use std::sync::{Arc, Mutex};

use bytes::Bytes;
use http::{Method, Request, Response, StatusCode};
use http_body_util::{BodyExt, Full};
use hyper::body::Incoming;
use hyper::server::conn::http1;
use hyper::service::service_fn;
use hyper_util::rt::TokioIo;
use serde_json::{Value, json};
use tokio::net::TcpListener;

#[derive(Default)]
struct Seen {
    sessions: HashSet<String>,
    initialized: usize,
    deleted: usize,
    calls: u64,
    json_replies: u64,
    sse_replies: u64,
}

#[derive(Clone)]
struct Fake {
    seen: Arc<Mutex<Seen>>,
    /// Answer every n-th call with the wrong text.
    lie_every: Option<u64>,
    /// Close the connection after every response.
    close: bool,
}

fn reply(status: StatusCode, content_type: &str, body: String) -> Response<Full<Bytes>> {
    let mut response = Response::new(Full::new(Bytes::from(body)));
    *response.status_mut() = status;
    if !content_type.is_empty() {
        response.headers_mut().insert(
            http::header::CONTENT_TYPE,
            content_type.parse().expect("content type"),
        );
    }
    response
}

fn bad(message: &str) -> Response<Full<Bytes>> {
    reply(
        StatusCode::BAD_REQUEST,
        "application/json",
        json!({"jsonrpc":"2.0","id":null,"error":{"code":-32600,"message":message}}).to_string(),
    )
}

impl Fake {
    async fn handle(self, request: Request<Incoming>) -> Result<Response<Full<Bytes>>, Infallible> {
        let close = self.close;
        let mut response = self.answer(request).await;
        if close {
            response
                .headers_mut()
                .insert(http::header::CONNECTION, "close".parse().expect("header"));
        }
        Ok(response)
    }

    async fn answer(self, request: Request<Incoming>) -> Response<Full<Bytes>> {
        let header = |name: &str| {
            request
                .headers()
                .get(name)
                .and_then(|v| v.to_str().ok())
                .map(str::to_owned)
        };
        let session = header("mcp-session-id");
        let version = header("mcp-protocol-version");
        let method_header = header("mcp-method");
        let name_header = header("mcp-name");
        let accept = header("accept").unwrap_or_default();
        let http_method = request.method().clone();
        let body = match request.into_body().collect().await {
            Ok(body) => body.to_bytes(),
            Err(_) => return bad("unreadable body"),
        };
        let mut seen = self.seen.lock().expect("lock");
        if http_method == Method::DELETE {
            return match session {
                Some(s) if seen.sessions.contains(&s) => {
                    seen.deleted += 1;
                    reply(StatusCode::OK, "", String::new())
                }
                _ => reply(StatusCode::NOT_FOUND, "", String::new()),
            };
        }
        if !(accept.contains("application/json") && accept.contains("text/event-stream")) {
            return bad("Accept must list both types");
        }
        let Ok(message) = serde_json::from_slice::<Value>(&body) else {
            return bad("not JSON");
        };
        let id = message["id"].clone();
        match message["method"].as_str() {
            Some("initialize") => {
                if session.is_some() {
                    return bad("initialize inside a session");
                }
                let new = format!("session-{}", seen.sessions.len());
                seen.sessions.insert(new.clone());
                let mut response = reply(
                    StatusCode::OK,
                    "application/json",
                    json!({"jsonrpc":"2.0","id":id,"result":{
                        "protocolVersion": message["params"]["protocolVersion"],
                        "capabilities":{},"serverInfo":{"name":"fake","version":"0"}}})
                    .to_string(),
                );
                response
                    .headers_mut()
                    .insert("mcp-session-id", new.parse().expect("header"));
                response
            }
            Some("notifications/initialized") => {
                if !session.is_some_and(|s| seen.sessions.contains(&s)) {
                    return bad("unknown session");
                }
                seen.initialized += 1;
                reply(StatusCode::ACCEPTED, "", String::new())
            }
            Some("tools/call") => {
                let params = &message["params"];
                let modern = params["_meta"]["io.modelcontextprotocol/protocolVersion"].as_str();
                match modern {
                    Some(v) => {
                        if version.as_deref() != Some(v)
                            || method_header.as_deref() != Some("tools/call")
                            || name_header.as_deref() != Some("echo")
                        {
                            return bad("modern headers missing or wrong");
                        }
                    }
                    None => {
                        if !session.is_some_and(|s| seen.sessions.contains(&s)) {
                            return bad("unknown session");
                        }
                        if version.as_deref() != Some("2025-11-25") {
                            return bad("MCP-Protocol-Version missing");
                        }
                    }
                }
                seen.calls += 1;
                let lie = self.lie_every.is_some_and(|n| seen.calls % n == 0);
                let text = if lie {
                    "a lie".to_owned()
                } else {
                    params["arguments"]["text"]
                        .as_str()
                        .unwrap_or_default()
                        .to_owned()
                };
                let mut result = json!({"content":[{"type":"text","text":text}]});
                if modern.is_some() {
                    result["resultType"] = json!("complete");
                }
                let response = json!({"jsonrpc":"2.0","id":id,"result":result}).to_string();
                if seen.calls % 2 == 0 {
                    seen.json_replies += 1;
                    reply(StatusCode::OK, "application/json", response)
                } else {
                    seen.sse_replies += 1;
                    let progress = json!({"jsonrpc":"2.0","method":"notifications/progress",
                        "params":{"progressToken":1,"progress":1}});
                    reply(
                        StatusCode::OK,
                        "text/event-stream",
                        format!(
                            "event: message\ndata: {progress}\n\n: ping\n\nevent: message\r\ndata: {response}\r\n\r\n"
                        ),
                    )
                }
            }
            _ => bad("unexpected method"),
        }
    }
}

async fn serve(fake: Fake) -> SocketAddr {
    let listener = TcpListener::bind("127.0.0.1:0").await.expect("bind");
    let addr = listener.local_addr().expect("addr");
    tokio::spawn(async move {
        loop {
            let Ok((stream, _)) = listener.accept().await else {
                return;
            };
            let fake = fake.clone();
            tokio::spawn(async move {
                let service = service_fn(move |request| fake.clone().handle(request));
                let _ = http1::Builder::new()
                    .serve_connection(TokioIo::new(stream), service)
                    .await;
            });
        }
    });
    addr
}

async fn loadgen(args: &[&str]) -> Output {
    tokio::process::Command::new(env!("CARGO_BIN_EXE_mcpod-loadgen"))
        .args(args)
        .output()
        .await
        .expect("mcpod-loadgen runs")
}

fn result_of(output: &Output) -> Value {
    let stdout = String::from_utf8_lossy(&output.stdout);
    serde_json::from_str(stdout.trim()).unwrap_or_else(|e| {
        panic!(
            "stdout is not one JSON result ({e}): {stdout}\nstderr: {}",
            String::from_utf8_lossy(&output.stderr)
        )
    })
}

fn fake(lie_every: Option<u64>) -> Fake {
    Fake {
        seen: Arc::default(),
        lie_every,
        close: false,
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn legacy_clients_hold_one_session_each_and_read_json_and_sse() {
    let server = fake(None);
    let addr = serve(server.clone()).await;
    let url = format!("http://{addr}/mcp");
    let output = loadgen(&["http", &url, "-c", "3", "-n", "300", "-w", "0", "--json"]).await;
    let result = result_of(&output);
    assert!(output.status.success(), "{result}");
    assert_eq!(result["ok"], 300, "{result}");
    assert_eq!(result["errors"], 0, "{result}");
    assert_eq!(result["era"], "legacy", "{result}");
    assert_eq!(result["connections"], 3, "{result}");
    assert_eq!(result["sessions"], 3, "{result}");
    let seen = server.seen.lock().expect("lock");
    assert_eq!(seen.sessions.len(), 3, "one session per virtual client");
    assert_eq!(seen.initialized, 3);
    assert_eq!(seen.deleted, 3, "sessions are ended with DELETE");
    assert_eq!(seen.calls, 300);
    assert!(seen.json_replies > 0 && seen.sse_replies > 0);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn modern_clients_send_the_2026_headers_and_no_session() {
    let server = fake(None);
    let addr = serve(server.clone()).await;
    let url = format!("http://{addr}/mcp");
    let output = loadgen(&[
        "http", &url, "--era", "modern", "-c", "2", "-n", "100", "-w", "0", "--json",
    ])
    .await;
    let result = result_of(&output);
    assert!(output.status.success(), "{result}");
    assert_eq!(result["ok"], 100, "{result}");
    assert_eq!(result["era"], "modern", "{result}");
    assert_eq!(result["connections"], 2, "{result}");
    assert_eq!(result["sessions"], 0, "{result}");
    let seen = server.seen.lock().expect("lock");
    assert!(seen.sessions.is_empty());
    assert_eq!(seen.calls, 100);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn wrong_echoes_are_counted_and_fail_the_run() {
    let server = fake(Some(10));
    let addr = serve(server.clone()).await;
    let url = format!("http://{addr}/mcp");
    let output = loadgen(&["http", &url, "-c", "1", "-n", "100", "-w", "0", "--json"]).await;
    let result = result_of(&output);
    assert_eq!(output.status.code(), Some(1), "{result}");
    assert_eq!(result["errors"], 10, "{result}");
    assert_eq!(result["ok"], 90, "{result}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_unreachable_endpoint_is_a_setup_error() {
    // Bind then drop, so the port is very likely closed.
    let addr = {
        let listener = TcpListener::bind("127.0.0.1:0").await.expect("bind");
        listener.local_addr().expect("addr")
    };
    let url = format!("http://{addr}/mcp");
    let output = loadgen(&["http", &url, "-n", "1", "--timeout", "2s"]).await;
    assert_eq!(output.status.code(), Some(2));
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(stderr.contains("connect"), "{stderr}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_rejected_request_fails_the_run_with_its_status() {
    // The fake rejects a legacy call whose version header is not 2025-11-25.
    let server = fake(None);
    let addr = serve(server.clone()).await;
    let url = format!("http://{addr}/mcp");
    let output = loadgen(&[
        "http",
        &url,
        "--protocol-version",
        "2025-06-18",
        "-n",
        "5",
        "-w",
        "0",
        "--json",
    ])
    .await;
    let result = result_of(&output);
    assert_eq!(output.status.code(), Some(1), "{result}");
    assert_eq!(result["errors"], 5, "{result}");
    assert!(
        result["error_messages"]
            .to_string()
            .contains("HTTP status 400"),
        "{result}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_server_closing_connections_costs_reconnects_not_errors() {
    let server = Fake {
        close: true,
        ..fake(None)
    };
    let addr = serve(server.clone()).await;
    let url = format!("http://{addr}/mcp");
    let output = loadgen(&["http", &url, "-c", "2", "-n", "50", "-w", "0", "--json"]).await;
    let result = result_of(&output);
    assert!(output.status.success(), "{result}");
    assert_eq!(result["ok"], 50, "{result}");
    assert_eq!(
        result["sessions"], 2,
        "sessions outlive connections: {result}"
    );
    assert!(
        result["connections"].as_u64().is_some_and(|n| n > 50),
        "{result}"
    );
    assert_eq!(server.seen.lock().expect("lock").deleted, 2);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_floor_server_passes_every_check_in_both_eras() {
    use tokio::io::AsyncBufReadExt;
    let mut floor = tokio::process::Command::new(env!("CARGO_BIN_EXE_mcpod-loadgen"))
        .args(["floor-server", "--listen", "127.0.0.1:0", "--threads", "1"])
        .stdout(std::process::Stdio::piped())
        .kill_on_drop(true)
        .spawn()
        .expect("floor-server starts");
    let stdout = floor.stdout.take().expect("piped stdout");
    let mut first = String::new();
    tokio::io::BufReader::new(stdout)
        .read_line(&mut first)
        .await
        .expect("a line");
    let addr = first
        .trim()
        .strip_prefix("listening on ")
        .unwrap_or_else(|| panic!("unexpected first line {first:?}"))
        .to_owned();
    let url = format!("http://{addr}/mcp");
    for era in ["legacy", "modern"] {
        let output = loadgen(&[
            "http", &url, "--era", era, "-c", "4", "-n", "400", "-w", "0", "--json",
        ])
        .await;
        let result = result_of(&output);
        assert!(output.status.success(), "{result}");
        assert_eq!(result["ok"], 400, "{result}");
    }
    floor.kill().await.expect("floor-server stops");
}

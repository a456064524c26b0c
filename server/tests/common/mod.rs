//! Test harness: a gateway in-process on 127.0.0.1:0 whose targets run the
//! built `mcpod demo-server`, and a small HTTP client for both MCP eras.

#![allow(dead_code, unreachable_pub, missing_docs, clippy::unwrap_used)]

use std::time::Duration;

pub mod issuer;

use mcpod_server::config::RawConfig;
use reqwest::header::{HeaderMap, HeaderName, HeaderValue};
use serde_json::{Value, json};

pub const DEMO: &str = env!("CARGO_BIN_EXE_mcpod");
pub const TOKEN: &str = "test-token-0123456789abcdef";
pub const MODERN: &str = "2026-07-28";

/// A TOML target section running the demo server.
pub fn demo_target(name: &str, extra: &str) -> String {
    format!("[targets.{name}]\ncommand = \"{DEMO}\"\nargs = [\"demo-server\"]\n{extra}\n")
}

pub struct Gateway {
    pub server: Option<mcpod_server::Server>,
    pub base: String,
    pub http: reqwest::Client,
}

impl Gateway {
    /// A gateway from TOML (targets added by the caller); auth disabled
    /// unless the TOML has an [auth] section.
    pub async fn start(toml: &str) -> Gateway {
        let toml = if toml.contains("[auth]") {
            toml.to_owned()
        } else {
            format!("{toml}\n[auth]\ndisabled = true\n")
        };
        let raw = RawConfig::from_toml(&toml).unwrap();
        let config = raw.validate().unwrap();
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let server = mcpod_server::spawn(config, listener).unwrap();
        let base = format!("http://{}", server.addr());
        Gateway {
            server: Some(server),
            base,
            http: reqwest::Client::builder()
                .timeout(Duration::from_secs(30))
                .build()
                .unwrap(),
        }
    }

    /// The default: one shared target `demo` (auto era).
    pub async fn demo() -> Gateway {
        Self::start(&demo_target("demo", "")).await
    }

    pub fn url(&self, path: &str) -> String {
        format!("{}{path}", self.base)
    }

    pub async fn shutdown(mut self) {
        if let Some(s) = self.server.take() {
            s.shutdown().await;
        }
    }

    /// A raw POST.
    pub async fn post_raw(
        &self,
        path: &str,
        headers: &[(&str, &str)],
        body: impl Into<reqwest::Body>,
    ) -> Reply {
        let mut req = self.http.post(self.url(path)).body(body);
        for (k, v) in headers {
            req = req.header(*k, *v);
        }
        Reply::from(req.send().await.unwrap()).await
    }

    /// A JSON-RPC POST with standard JSON headers plus `headers`.
    pub async fn post(&self, path: &str, headers: &[(&str, &str)], body: &Value) -> Reply {
        let mut all = vec![
            ("content-type", "application/json"),
            ("accept", "application/json, text/event-stream"),
        ];
        all.extend_from_slice(headers);
        self.post_raw(path, &all, body.to_string()).await
    }

    /// Legacy initialize; returns the session id.
    pub async fn initialize(&self, target: &str) -> String {
        let r = self
            .post(
                &format!("/mcp/{target}"),
                &[],
                &json!({"jsonrpc":"2.0","id":0,"method":"initialize","params":{
                    "protocolVersion":"2025-06-18","capabilities":{"roots":{}},
                    "clientInfo":{"name":"test","version":"1"}}}),
            )
            .await;
        assert_eq!(r.status, 200, "{}", r.body);
        let sid = r.header("mcp-session-id").expect("session id");
        let n = self
            .post(
                &format!("/mcp/{target}"),
                &[("mcp-session-id", &sid)],
                &json!({"jsonrpc":"2.0","method":"notifications/initialized"}),
            )
            .await;
        assert_eq!(n.status, 202);
        sid
    }

    /// A legacy request in a session.
    pub async fn legacy(&self, target: &str, sid: &str, body: Value) -> Reply {
        self.post(&format!("/mcp/{target}"), &[("mcp-session-id", sid)], &body)
            .await
    }

    /// A modern request with correct headers and `_meta`.
    pub async fn modern(&self, target: &str, id: Value, method: &str, params: Value) -> Reply {
        self.modern_with(target, id, method, params, &[]).await
    }

    /// [`Gateway::modern`] with more headers (e.g. `traceparent`).
    pub async fn modern_with(
        &self,
        target: &str,
        id: Value,
        method: &str,
        mut params: Value,
        extra: &[(&str, &str)],
    ) -> Reply {
        let name = params
            .get("name")
            .or_else(|| params.get("uri"))
            .and_then(|v| v.as_str())
            .map(str::to_owned);
        params["_meta"]["io.modelcontextprotocol/protocolVersion"] = json!(MODERN);
        params["_meta"]["io.modelcontextprotocol/clientCapabilities"] = json!({});
        let mut headers = vec![("mcp-protocol-version", MODERN), ("mcp-method", method)];
        if let Some(n) = &name {
            headers.push(("mcp-name", n));
        }
        headers.extend_from_slice(extra);
        self.post(
            &format!("/mcp/{target}"),
            &headers,
            &json!({"jsonrpc":"2.0","id":id,"method":method,"params":params}),
        )
        .await
    }
}

/// The `mcpod serve` binary run as a child process on a config file (for
/// what lives outside one gateway in a test process: signals, the process's
/// telemetry export), served on a free loopback port.
pub struct Served {
    pub child: tokio::process::Child,
    pub gateway: Gateway,
    /// Where its stderr (the log) goes: beside the config file.
    pub log: std::path::PathBuf,
}

impl Served {
    /// `mcpod serve --config <config> --listen 127.0.0.1:<free>` with `env`
    /// added, ready (its `/readyz` answered 200) when this returns; its
    /// log goes to `<config>.log`.
    pub async fn start(config: &std::path::Path, env: &[(&str, &str)]) -> Served {
        let port = {
            let l = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
            l.local_addr().unwrap().port()
        };
        let log = config.with_extension("log");
        let mut cmd = tokio::process::Command::new(DEMO);
        cmd.arg("serve")
            .arg("--config")
            .arg(config)
            .args(["--listen", &format!("127.0.0.1:{port}")])
            .env_remove("MCPOD_CONFIG")
            .stdout(std::process::Stdio::null())
            .stderr(std::fs::File::create(&log).unwrap())
            .kill_on_drop(true);
        for var in [
            "OTEL_EXPORTER_OTLP_ENDPOINT",
            "OTEL_EXPORTER_OTLP_PROTOCOL",
            "OTEL_SERVICE_NAME",
            "OTEL_SDK_DISABLED",
        ] {
            cmd.env_remove(var);
        }
        for (k, v) in env {
            cmd.env(k, v);
        }
        let child = cmd.spawn().unwrap();
        let gateway = Gateway {
            server: None,
            base: format!("http://127.0.0.1:{port}"),
            http: reqwest::Client::builder()
                .timeout(Duration::from_secs(30))
                .build()
                .unwrap(),
        };
        let ready = gateway.url("/readyz");
        eventually(
            Duration::from_secs(20),
            "the gateway answers /readyz",
            || {
                let req = gateway.http.get(&ready).send();
                async move { req.await.ok().filter(|r| r.status() == 200).map(|_| ()) }
            },
        )
        .await;
        Served {
            child,
            gateway,
            log,
        }
    }

    /// Its log so far.
    pub fn log(&self) -> String {
        std::fs::read_to_string(&self.log).unwrap()
    }

    /// Sends `signal` (e.g. `"HUP"`, `"TERM"`) to the gateway.
    pub fn signal(&self, signal: &str) {
        let pid = self.child.id().unwrap().to_string();
        let status = std::process::Command::new("kill")
            .args([&format!("-{signal}"), &pid])
            .status()
            .unwrap();
        assert!(status.success(), "kill -{signal} {pid}");
    }

    /// SIGTERM, then waits for a successful exit.
    pub async fn stop(mut self) {
        self.signal("TERM");
        let status = tokio::time::timeout(Duration::from_secs(30), self.child.wait())
            .await
            .expect("the gateway did not stop within 30 s")
            .unwrap();
        assert!(status.success(), "{status:?}");
    }
}

/// A tools/call body.
pub fn call(id: Value, tool: &str, args: Value) -> Value {
    json!({"jsonrpc":"2.0","id":id,"method":"tools/call","params":{"name":tool,"arguments":args}})
}

#[derive(Debug)]
pub struct Reply {
    pub status: u16,
    pub headers: HeaderMap,
    pub body: String,
}

impl Reply {
    pub async fn from(r: reqwest::Response) -> Reply {
        let status = r.status().as_u16();
        let headers = r.headers().clone();
        let body = r.text().await.unwrap();
        Reply {
            status,
            headers,
            body,
        }
    }

    pub fn header(&self, name: &str) -> Option<String> {
        self.headers
            .get(HeaderName::from_bytes(name.as_bytes()).unwrap())
            .map(|v: &HeaderValue| v.to_str().unwrap().to_owned())
    }

    pub fn is_sse(&self) -> bool {
        self.header("content-type")
            .is_some_and(|c| c.starts_with("text/event-stream"))
    }

    /// The JSON messages of the reply (one for JSON, each non-empty `data:`
    /// for SSE).
    pub fn messages(&self) -> Vec<Value> {
        if self.is_sse() {
            self.body
                .lines()
                .filter_map(|l| l.strip_prefix("data: "))
                .filter(|d| !d.is_empty()) // a priming event: an id, no message
                .map(|d| serde_json::from_str(d).unwrap())
                .collect()
        } else {
            vec![serde_json::from_str(&self.body).unwrap_or_else(|e| panic!("{e}: {}", self.body))]
        }
    }

    /// The last message (the response).
    pub fn json(&self) -> Value {
        self.messages().pop().unwrap()
    }

    /// The JSON-RPC error code, if an error.
    pub fn code(&self) -> Option<i64> {
        self.json()["error"]["code"].as_i64()
    }

    /// The first text content of a tools/call result.
    pub fn text(&self) -> String {
        let v = self.json();
        v["result"]["content"][0]["text"]
            .as_str()
            .unwrap_or_else(|| panic!("no text in {v}"))
            .to_owned()
    }
}

/// Reads SSE `data:` messages from a streaming response until `until`
/// says stop (or the stream ends).
pub async fn read_events(
    resp: &mut reqwest::Response,
    mut until: impl FnMut(&[Value]) -> bool,
) -> Vec<Value> {
    let mut buf = String::new();
    let mut out = Vec::new();
    loop {
        let chunk = match tokio::time::timeout(Duration::from_secs(20), resp.chunk()).await {
            Ok(Ok(Some(c))) => c,
            _ => break,
        };
        buf.push_str(std::str::from_utf8(&chunk).unwrap());
        while let Some(end) = buf.find("\n\n") {
            let event: String = buf.drain(..end + 2).collect();
            for line in event.lines() {
                if let Some(d) = line.strip_prefix("data: ").filter(|d| !d.is_empty()) {
                    out.push(serde_json::from_str(d).unwrap());
                }
            }
        }
        if until(&out) {
            break;
        }
    }
    out
}

/// The demo's `stats` tool, through the gateway as a modern client.
pub async fn stats(gw: &Gateway, target: &str) -> Value {
    let r = gw
        .modern(
            target,
            json!("stats"),
            "tools/call",
            json!({"name":"stats","arguments":{}}),
        )
        .await;
    serde_json::from_str(&r.text()).unwrap()
}

/// The value of the `/metrics` line that starts with `series` (name and
/// labels, e.g. `mcpod_streams_open{target="demo"}`), read with `token`
/// when auth is on.
pub async fn metric(gw: &Gateway, series: &str, token: Option<&str>) -> u64 {
    let mut req = gw.http.get(gw.url("/metrics"));
    if let Some(t) = token {
        req = req.header("authorization", format!("Bearer {t}"));
    }
    let text = req.send().await.unwrap().text().await.unwrap();
    let prefix = format!("{series} ");
    text.lines()
        .find_map(|l| l.strip_prefix(&prefix))
        .unwrap_or_else(|| panic!("no {series} in {text}"))
        .trim()
        .parse()
        .unwrap()
}

/// Polls `check` until it gives `Some`, failing with `what` after
/// `within`: a test waits on the condition itself, re-checked every few
/// milliseconds, never on a fixed sleep.
pub async fn eventually<T, F, Fut>(within: Duration, what: &str, mut check: F) -> T
where
    F: FnMut() -> Fut,
    Fut: std::future::Future<Output = Option<T>>,
{
    let until = std::time::Instant::now() + within;
    loop {
        if let Some(v) = check().await {
            return v;
        }
        assert!(
            std::time::Instant::now() < until,
            "not within {within:?}: {what}"
        );
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
}

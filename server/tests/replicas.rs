//! Several `mcpod` replicas behind a real HAProxy (Debian's `haproxy`
//! package), on loopback: three `mcpod serve` processes started and
//! stopped by each test, on free ports, sharing one session key, running
//! the demo server; HAProxy with the kit's `ops/haproxy/haproxy.cfg`
//! (addresses and check intervals set for the test) in front of them.
//!
//! Opt-in (`--features replica-tests`): without `haproxy` on PATH they fail
//! loudly. `scripts/test.sh` installs it and runs them.

#![cfg(feature = "replica-tests")]
#![allow(clippy::unwrap_used)]

mod common;

use std::collections::BTreeMap;
use std::io::Write as _;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant};

use common::{DEMO, MODERN, TOKEN, eventually};
use parking_lot::Mutex;
use serde_json::{Value, json};

/// One test at a time: each runs four processes and HAProxy on two cores.
static SERIAL: tokio::sync::Mutex<()> = tokio::sync::Mutex::const_new(());

/// A second token, for a principal of its own.
const OTHER_TOKEN: &str = "another-test-token-0123456789";
/// How long a stopping replica keeps serving with `/readyz` at 503.
const DRAIN: &str = "1500ms";

fn haproxy_bin() -> PathBuf {
    std::env::var_os("PATH")
        .iter()
        .flat_map(std::env::split_paths)
        .map(|dir| dir.join("haproxy"))
        .find(|p| p.is_file())
        .unwrap_or_else(|| {
            panic!(
                "`haproxy` is not on PATH: these tests need Debian's `haproxy` package \
                 (apt-get install haproxy; scripts/test.sh installs it)"
            )
        })
}

fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

fn write(path: &Path, bytes: &[u8]) {
    std::fs::File::create(path)
        .unwrap()
        .write_all(bytes)
        .unwrap();
}

/// One `mcpod serve` process.
struct Replica {
    name: String,
    port: u16,
    config: PathBuf,
    log: PathBuf,
    child: Option<Child>,
}

impl Replica {
    fn new(dir: &Path, name: &str, key: &Path) -> Replica {
        let port = free_port();
        let config = dir.join(format!("{name}.toml"));
        let toml = format!(
            r#"listen = "127.0.0.1:{port}"
[auth]
tokens = ["{TOKEN}", "{OTHER_TOKEN}"]
[limits]
shutdown_drain = "{DRAIN}"
shutdown_grace = "20s"
[sessions]
key_file = "{key}"
[targets.demo]
command = "{DEMO}"
args = ["demo-server"]
[targets.old]
command = "{DEMO}"
args = ["demo-server", "--legacy-only"]
"#,
            key = key.display()
        );
        write(&config, toml.as_bytes());
        Replica {
            name: name.to_owned(),
            port,
            config,
            log: dir.join(format!("{name}.log")),
            child: None,
        }
    }

    fn start(&mut self) {
        let log = std::fs::OpenOptions::new()
            .create(true)
            .append(true)
            .open(&self.log)
            .unwrap();
        let child = Command::new(DEMO)
            .arg("serve")
            .arg("--config")
            .arg(&self.config)
            .env_remove("MCPOD_SESSION_KEY_FILE")
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(log)
            .spawn()
            .unwrap();
        self.child = Some(child);
    }

    fn base(&self) -> String {
        format!("http://127.0.0.1:{}", self.port)
    }

    /// SIGTERM: the gateway drains and stops.
    fn terminate(&self) {
        let pid = self.child.as_ref().unwrap().id();
        let status = Command::new("kill")
            .args(["-TERM", &pid.to_string()])
            .status()
            .unwrap();
        assert!(status.success());
    }

    /// SIGKILL, at once.
    fn kill(&mut self) {
        if let Some(mut c) = self.child.take() {
            let _ = c.kill();
            let _ = c.wait();
        }
    }

    /// Waits for the process to exit; its status.
    async fn exited(&mut self, within: Duration) -> std::process::ExitStatus {
        let child = self.child.as_mut().unwrap();
        let status = eventually(within, "the replica to exit", || {
            let s = child.try_wait().unwrap();
            async move { s }
        })
        .await;
        self.child = None;
        status
    }

    fn logs(&self) -> String {
        std::fs::read_to_string(&self.log).unwrap_or_default()
    }
}

impl Drop for Replica {
    fn drop(&mut self) {
        self.kill();
    }
}

/// HAProxy in front of the replicas, and its stats page.
struct Balancer {
    port: u16,
    stats_port: u16,
    child: Child,
}

impl Drop for Balancer {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// The kit's config with the test's addresses, faster health checks (a
/// check every 200 ms, down after 2 failures, up after 1 success) and a
/// stats page to see what HAProxy thinks.
fn haproxy_config(port: u16, stats_port: u16, replicas: &[Replica]) -> String {
    let kit = std::fs::read_to_string(
        Path::new(env!("CARGO_MANIFEST_DIR")).join("../ops/haproxy/haproxy.cfg"),
    )
    .unwrap();
    let mut out = String::new();
    let mut servers_written = false;
    for line in kit.lines() {
        let t = line.trim();
        if t.starts_with("log /dev/log") {
            continue; // no syslog here
        } else if t == "bind :8080" {
            out.push_str(&format!("    bind 127.0.0.1:{port}\n"));
        } else if t.starts_with("default-server ") {
            assert!(t.contains("inter 2s fall 2 rise 2"), "the kit changed: {t}");
            out.push_str(&format!(
                "    {}\n",
                t.replace("inter 2s fall 2 rise 2", "inter 200ms fall 2 rise 1")
            ));
        } else if t.starts_with("server mcpod") {
            if !servers_written {
                for r in replicas {
                    out.push_str(&format!("    server {} 127.0.0.1:{}\n", r.name, r.port));
                }
                servers_written = true;
            }
        } else {
            out.push_str(line);
            out.push('\n');
        }
    }
    assert!(servers_written, "the kit has no server lines");
    out.push_str(&format!(
        "\nlisten stats\n    bind 127.0.0.1:{stats_port}\n    stats enable\n    stats uri /stats\n"
    ));
    out
}

/// A client of the balancer (and of each replica, directly).
#[derive(Clone)]
struct Client {
    http: reqwest::Client,
}

/// One HTTP answer: its status, its session header and its last JSON
/// message (`Value::Null` when there is none).
#[derive(Debug)]
struct Answer {
    status: u16,
    session: Option<String>,
    body: String,
    json: Value,
}

impl Client {
    fn new() -> Client {
        Client {
            http: reqwest::Client::builder()
                .timeout(Duration::from_secs(30))
                .build()
                .unwrap(),
        }
    }

    async fn post(
        &self,
        url: &str,
        headers: &[(&str, &str)],
        body: &Value,
    ) -> Result<Answer, String> {
        let mut req = self
            .http
            .post(url)
            .header("content-type", "application/json")
            .header("accept", "application/json, text/event-stream")
            .bearer_auth(TOKEN)
            .body(body.to_string());
        for (k, v) in headers {
            req = req.header(*k, *v);
        }
        let r = req.send().await.map_err(|e| {
            if e.is_timeout() {
                "timed out".to_owned()
            } else {
                format!("transport: {e}")
            }
        })?;
        let status = r.status().as_u16();
        let session = r
            .headers()
            .get("mcp-session-id")
            .map(|v| v.to_str().unwrap().to_owned());
        let body = r.text().await.map_err(|e| format!("body: {e}"))?;
        let json = body
            .lines()
            .filter_map(|l| l.strip_prefix("data: "))
            .rfind(|d| !d.is_empty())
            .map(str::to_owned)
            .or_else(|| Some(body.clone()))
            .and_then(|d| serde_json::from_str(&d).ok())
            .unwrap_or(Value::Null);
        Ok(Answer {
            status,
            session,
            body,
            json,
        })
    }

    /// A legacy `initialize` on `base`; the session id.
    async fn initialize(&self, base: &str, target: &str) -> String {
        let a = self
            .post(
                &format!("{base}/mcp/{target}"),
                &[],
                &json!({"jsonrpc":"2.0","id":0,"method":"initialize","params":{
                    "protocolVersion":"2025-06-18","capabilities":{"roots":{}},
                    "clientInfo":{"name":"replicas-test","version":"1"}}}),
            )
            .await
            .unwrap();
        assert_eq!(a.status, 200, "{}", a.body);
        let sid = a.session.expect("a session id");
        let n = self
            .post(
                &format!("{base}/mcp/{target}"),
                &[("mcp-session-id", &sid)],
                &json!({"jsonrpc":"2.0","method":"notifications/initialized"}),
            )
            .await
            .unwrap();
        assert_eq!(n.status, 202, "{}", n.body);
        sid
    }

    /// A `tools/call` in legacy session `sid`.
    async fn legacy_call(
        &self,
        base: &str,
        sid: &str,
        id: u64,
        tool: &str,
        args: Value,
    ) -> Result<Answer, String> {
        let body = json!({"jsonrpc":"2.0","id":id,"method":"tools/call",
            "params":{"name":tool,"arguments":args}});
        self.post(
            &format!("{base}/mcp/demo"),
            &[
                ("mcp-session-id", sid),
                ("mcp-protocol-version", "2025-06-18"),
            ],
            &body,
        )
        .await
    }

    /// A 2026-07-28 `tools/call`.
    async fn modern_call(
        &self,
        base: &str,
        target: &str,
        id: u64,
        tool: &str,
        mut params: Value,
    ) -> Result<Answer, String> {
        params["name"] = json!(tool);
        params["_meta"]["io.modelcontextprotocol/protocolVersion"] = json!(MODERN);
        params["_meta"]["io.modelcontextprotocol/clientCapabilities"] =
            json!({"roots":{},"elicitation":{},"sampling":{}});
        self.post(
            &format!("{base}/mcp/{target}"),
            &[
                ("mcp-protocol-version", MODERN),
                ("mcp-method", "tools/call"),
                ("mcp-name", tool),
            ],
            &json!({"jsonrpc":"2.0","id":id,"method":"tools/call","params":params}),
        )
        .await
    }

    /// The value of a `/metrics` series on `base`.
    async fn metric(&self, base: &str, series: &str) -> u64 {
        let text = self
            .http
            .get(format!("{base}/metrics"))
            .bearer_auth(TOKEN)
            .send()
            .await
            .unwrap()
            .text()
            .await
            .unwrap();
        let prefix = format!("{series} ");
        text.lines()
            .find_map(|l| l.strip_prefix(&prefix))
            .unwrap_or_else(|| panic!("no {series} in {text}"))
            .trim()
            .parse()
            .unwrap()
    }

    async fn ready(&self, base: &str) -> bool {
        self.http
            .get(format!("{base}/readyz"))
            .send()
            .await
            .is_ok_and(|r| r.status() == 200)
    }
}

/// Whether a tool call answered with its result (not an error).
fn called(a: &Result<Answer, String>) -> Result<(), String> {
    match a {
        Err(e) => Err(e.clone()),
        Ok(a) if a.status != 200 => Err(format!(
            "HTTP {}: {}",
            a.status,
            a.body.chars().take(160).collect::<String>()
        )),
        Ok(a) if a.json["result"].is_object() && a.json["result"]["isError"] != true => Ok(()),
        Ok(a) => Err(format!(
            "JSON-RPC: {}",
            a.body.chars().take(160).collect::<String>()
        )),
    }
}

/// Three replicas and HAProxy.
struct Cluster {
    dir: tempfile::TempDir,
    replicas: Vec<Replica>,
    balancer: Balancer,
    client: Client,
}

impl Cluster {
    async fn start() -> Cluster {
        let haproxy = haproxy_bin();
        let dir = tempfile::tempdir().unwrap();
        let key = dir.path().join("session.key");
        let mut bytes = [0u8; 32];
        getrandom(&mut bytes);
        write(&key, &bytes);
        let mut replicas: Vec<Replica> = (1..=3)
            .map(|i| Replica::new(dir.path(), &format!("mcpod{i}"), &key))
            .collect();
        for r in &mut replicas {
            r.start();
        }
        let client = Client::new();
        for r in &replicas {
            let base = r.base();
            let c = client.clone();
            eventually(Duration::from_secs(30), "a replica to be ready", || {
                let (c, base) = (c.clone(), base.clone());
                async move { c.ready(&base).await.then_some(()) }
            })
            .await;
        }
        let port = free_port();
        let stats_port = free_port();
        let cfg = dir.path().join("haproxy.cfg");
        write(&cfg, haproxy_config(port, stats_port, &replicas).as_bytes());
        let check = Command::new(&haproxy)
            .args(["-c", "-q", "-f"])
            .arg(&cfg)
            .output()
            .unwrap();
        assert!(
            check.status.success(),
            "haproxy -c: {}",
            String::from_utf8_lossy(&check.stderr)
        );
        let log = std::fs::File::create(dir.path().join("haproxy.log")).unwrap();
        let child = Command::new(&haproxy)
            .args(["-db", "-f"])
            .arg(&cfg)
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(log)
            .spawn()
            .unwrap();
        let cluster = Cluster {
            dir,
            replicas,
            balancer: Balancer {
                port,
                stats_port,
                child,
            },
            client,
        };
        for r in &cluster.replicas {
            cluster.until_state(&r.name, "UP").await;
        }
        cluster
    }

    fn lb(&self) -> String {
        format!("http://127.0.0.1:{}", self.balancer.port)
    }

    /// What HAProxy's stats say of each server of `mcpod`: `UP`, `DOWN`, ...
    async fn states(&self) -> BTreeMap<String, String> {
        let Ok(r) = self
            .client
            .http
            .get(format!(
                "http://127.0.0.1:{}/stats;csv",
                self.balancer.stats_port
            ))
            .send()
            .await
        else {
            return BTreeMap::new();
        };
        let text = r.text().await.unwrap_or_default();
        let mut lines = text.lines();
        let header: Vec<&str> = lines
            .next()
            .unwrap_or_default()
            .trim_start_matches("# ")
            .split(',')
            .collect();
        let col = |name: &str| header.iter().position(|h| *h == name);
        let (Some(px), Some(sv), Some(st)) = (col("pxname"), col("svname"), col("status")) else {
            return BTreeMap::new();
        };
        lines
            .map(|l| l.split(',').collect::<Vec<_>>())
            .filter(|f| f.get(px) == Some(&"mcpod"))
            .filter_map(|f| Some((f.get(sv)?.to_string(), f.get(st)?.to_string())))
            .collect()
    }

    /// Waits until HAProxy says `server` is `state` (its status starts so:
    /// `UP`, `DOWN`, also `DOWN 1/2` counts as on its way down, not down).
    async fn until_state(&self, server: &str, state: &str) -> Instant {
        let what = format!("HAProxy to see {server} {state}; {}", self.logs());
        eventually(Duration::from_secs(30), &what, || async {
            let states = self.states().await;
            (states.get(server).map(String::as_str) == Some(state)).then(Instant::now)
        })
        .await
    }

    fn logs(&self) -> String {
        let haproxy =
            std::fs::read_to_string(self.dir.path().join("haproxy.log")).unwrap_or_default();
        self.replicas
            .iter()
            .map(|r| format!("--- {} ---\n{}", r.name, r.logs()))
            .chain([format!("--- haproxy ---\n{haproxy}")])
            .collect::<Vec<_>>()
            .join("\n")
    }
}

fn getrandom(buf: &mut [u8]) {
    use std::io::Read as _;
    std::fs::File::open("/dev/urandom")
        .unwrap()
        .read_exact(buf)
        .unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_legacy_session_spread_round_robin_is_served_by_every_replica() {
    let _serial = SERIAL.lock().await;
    let cluster = Cluster::start().await;
    let c = &cluster.client;
    let lb = cluster.lb();
    let sid = c.initialize(&lb, "demo").await;
    for i in 1..=12 {
        let text = format!("hello {i}");
        let a = c
            .legacy_call(&lb, &sid, i, "echo", json!({"text": text}))
            .await;
        called(&a).unwrap_or_else(|e| panic!("call {i}: {e}\n{}", cluster.logs()));
        let a = a.unwrap();
        assert_eq!(a.json["id"], i);
        assert_eq!(a.json["result"]["content"][0]["text"], text);
    }
    // Each replica served some of them: the session is on every one,
    // re-created from its id where it was not made.
    for r in &cluster.replicas {
        let n = c.metric(&r.base(), "mcpod_sessions{target=\"demo\"}").await;
        assert_eq!(n, 1, "{} has {n} sessions of target demo", r.name);
    }
    // The gateway answers `ping` and `tools/list` of the session anywhere.
    for id in 100..106 {
        let a = c
            .post(
                &format!("{lb}/mcp/demo"),
                &[("mcp-session-id", &sid)],
                &json!({"jsonrpc":"2.0","id":id,"method":"tools/list"}),
            )
            .await
            .unwrap();
        assert_eq!(a.status, 200, "{}", a.body);
        assert!(a.json["result"]["tools"].is_array(), "{}", a.body);
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn request_states_a_modern_backend_made_work_anywhere_and_parked_calls_stay_put() {
    let _serial = SERIAL.lock().await;
    let cluster = Cluster::start().await;
    let c = &cluster.client;
    let (one, two) = (cluster.replicas[0].base(), cluster.replicas[1].base());
    let ask = json!({"arguments":{"kind":"roots"}});
    let retry = |asked: &Answer| {
        let result = &asked.json["result"];
        assert_eq!(result["resultType"], "input_required", "{}", asked.body);
        let key = result["inputRequests"]
            .as_object()
            .unwrap()
            .keys()
            .next()
            .unwrap();
        let mut params = json!({"arguments":{"kind":"roots"},
            "requestState": result["requestState"], "inputResponses": {}});
        params["inputResponses"][key] = json!({"roots": [{"uri": "file:///r", "name": "r"}]});
        params
    };
    // A modern backend's own requestState: forwarded by any replica.
    let asked = c
        .modern_call(&one, "demo", 1, "ask", ask.clone())
        .await
        .unwrap();
    let done = c.modern_call(&two, "demo", 2, "ask", retry(&asked)).await;
    called(&done).unwrap();
    assert!(done.unwrap().body.contains("file:///r"));
    // A call of a legacy backend parked on one replica: another refuses the
    // retry with a clear error; the replica that holds it resumes it.
    let asked = c
        .modern_call(&one, "old", 3, "ask", ask.clone())
        .await
        .unwrap();
    let params = retry(&asked);
    let elsewhere = c
        .modern_call(&two, "old", 4, "ask", params.clone())
        .await
        .unwrap();
    assert_eq!(elsewhere.status, 400, "{}", elsewhere.body);
    assert_eq!(
        elsewhere.json["error"]["code"], -32602,
        "{}",
        elsewhere.body
    );
    let message = elsewhere.json["error"]["message"].as_str().unwrap();
    assert!(message.contains("another replica"), "{message}");
    let resumed = c.modern_call(&one, "old", 5, "ask", params).await;
    called(&resumed).unwrap();
    assert!(resumed.unwrap().body.contains("file:///r"));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_sdk_client_keeps_its_legacy_session_across_the_replicas() {
    use rmcp::ServiceExt;
    use rmcp::model::{CallToolRequestParams, ClientConfig, ProtocolVersion};
    use rmcp::transport::StreamableHttpClientTransport;
    use rmcp::transport::streamable_http_client::StreamableHttpClientTransportConfig;
    let _serial = SERIAL.lock().await;
    let cluster = Cluster::start().await;
    // The official Rust SDK, told not to initialize again on a 404: every
    // request must be served in the one session it made.
    let config =
        StreamableHttpClientTransportConfig::with_uri(format!("{}/mcp/demo", cluster.lb()))
            .auth_header(TOKEN)
            .reinit_on_expired_session(false);
    let client = ClientConfig::default()
        .with_protocol_version(ProtocolVersion::LATEST_WITH_INITIALIZE)
        .serve(StreamableHttpClientTransport::from_config(config))
        .await
        .unwrap();
    for i in 0..9 {
        let mut args = serde_json::Map::new();
        args.insert("text".into(), json!(format!("sdk {i}")));
        let result = client
            .call_tool(CallToolRequestParams::new("echo").with_arguments(args))
            .await
            .unwrap_or_else(|e| panic!("call {i}: {e}\n{}", cluster.logs()));
        let v = serde_json::to_value(&result).unwrap();
        assert_eq!(v["content"][0]["text"], format!("sdk {i}"));
    }
    let tools = client.list_all_tools().await.unwrap();
    assert!(tools.iter().any(|t| t.name == "echo"));
    for r in &cluster.replicas {
        let n = cluster
            .client
            .metric(&r.base(), "mcpod_sessions{target=\"demo\"}")
            .await;
        assert_eq!(n, 1, "{} has {n} sessions of target demo", r.name);
    }
    client.cancel().await.unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn tampered_foreign_keyed_or_other_principals_session_ids_get_404() {
    let _serial = SERIAL.lock().await;
    let cluster = Cluster::start().await;
    let c = &cluster.client;
    let lb = cluster.lb();
    let sid = c.initialize(&lb, "demo").await;
    // A gateway with a key of its own: its ids are foreign to the others.
    let key = cluster.dir.path().join("foreign.key");
    let mut bytes = [0u8; 32];
    getrandom(&mut bytes);
    write(&key, &bytes);
    let mut foreign = Replica::new(cluster.dir.path(), "foreign", &key);
    foreign.start();
    let base = foreign.base();
    eventually(
        Duration::from_secs(30),
        "the foreign gateway to be ready",
        || {
            let (c, base) = (c.clone(), base.clone());
            async move { c.ready(&base).await.then_some(()) }
        },
    )
    .await;
    let foreign_sid = c.initialize(&foreign.base(), "demo").await;
    assert!(
        called(
            &c.legacy_call(
                &foreign.base(),
                &foreign_sid,
                1,
                "echo",
                json!({"text":"x"})
            )
            .await
        )
        .is_ok()
    );
    let mut tampered = sid.clone().into_bytes();
    let i = tampered.len() / 2;
    tampered[i] = if tampered[i] == b'A' { b'B' } else { b'A' };
    let tampered = String::from_utf8(tampered).unwrap();
    let random = "0123456789abcdef0123456789abcdef".to_owned();
    for (what, id) in [
        ("tampered", &tampered),
        ("foreign-keyed", &foreign_sid),
        ("random", &random),
    ] {
        // On every replica (round robin), for POST, GET and DELETE.
        for n in 0..3 {
            let a = c
                .legacy_call(&lb, id, n, "echo", json!({"text":"x"}))
                .await
                .unwrap();
            assert_eq!(a.status, 404, "{what} id, POST {n}: {}", a.body);
            let get = c
                .http
                .get(format!("{lb}/mcp/demo"))
                .bearer_auth(TOKEN)
                .header("accept", "text/event-stream")
                .header("mcp-session-id", id.as_str())
                .send()
                .await
                .unwrap();
            assert_eq!(get.status(), 404, "{what} id, GET {n}");
            let del = c
                .http
                .delete(format!("{lb}/mcp/demo"))
                .bearer_auth(TOKEN)
                .header("mcp-session-id", id.as_str())
                .send()
                .await
                .unwrap();
            assert_eq!(del.status(), 404, "{what} id, DELETE {n}");
        }
    }
    // The session's id, presented with another token, or on another
    // target: as if it did not exist, on every replica.
    for n in 0..3 {
        let other = c
            .http
            .post(format!("{lb}/mcp/demo"))
            .bearer_auth(OTHER_TOKEN)
            .header("content-type", "application/json")
            .header("accept", "application/json, text/event-stream")
            .header("mcp-session-id", sid.as_str())
            .body(json!({"jsonrpc":"2.0","id":n,"method":"tools/list"}).to_string())
            .send()
            .await
            .unwrap();
        assert_eq!(other.status(), 404, "another token's request {n}");
        let a = c
            .post(
                &format!("{lb}/mcp/old"),
                &[("mcp-session-id", &sid)],
                &json!({"jsonrpc":"2.0","id":n,"method":"tools/list"}),
            )
            .await
            .unwrap();
        assert_eq!(a.status, 404, "another target, {n}: {}", a.body);
    }
    // The session itself still works everywhere.
    for n in 0..3 {
        called(
            &c.legacy_call(&lb, &sid, 10 + n, "echo", json!({"text":"y"}))
                .await,
        )
        .unwrap();
    }
    drop(foreign);
}

/// What a load worker saw: calls made, and each failure with when it was
/// started and why it failed.
#[derive(Default)]
struct Tally {
    made: u64,
    failed: Vec<(Instant, String)>,
}

/// What [`load`] gives back: the 2026-07-28 callers' tally, the legacy
/// callers' tally, and the callers.
type Load = (
    Arc<Mutex<Tally>>,
    Arc<Mutex<Tally>>,
    Vec<tokio::task::JoinHandle<()>>,
);

/// Runs calls of both eras through the balancer until `stop`: a stateless
/// caller for each of `modern` and a legacy caller with a session of its
/// own for each of `legacy`, each calling `sleep` for that many
/// milliseconds, one call after the other, so some are always in flight.
fn load(cluster: &Cluster, modern: &[u64], legacy: &[u64], stop: &Arc<AtomicBool>) -> Load {
    let modern_tally = Arc::new(Mutex::new(Tally::default()));
    let legacy_tally = Arc::new(Mutex::new(Tally::default()));
    let mut tasks = Vec::new();
    for &ms in modern {
        let (c, lb, stop, tally) = (
            cluster.client.clone(),
            cluster.lb(),
            stop.clone(),
            modern_tally.clone(),
        );
        tasks.push(tokio::spawn(async move {
            let mut id = 0;
            while !stop.load(Ordering::Relaxed) {
                id += 1;
                let at = Instant::now();
                let a = c
                    .modern_call(&lb, "demo", id, "sleep", json!({"arguments":{"ms": ms}}))
                    .await;
                let mut t = tally.lock();
                t.made += 1;
                if let Err(e) = called(&a) {
                    t.failed.push((at, e));
                }
            }
        }));
    }
    for &ms in legacy {
        let (c, lb, stop, tally) = (
            cluster.client.clone(),
            cluster.lb(),
            stop.clone(),
            legacy_tally.clone(),
        );
        tasks.push(tokio::spawn(async move {
            let sid = c.initialize(&lb, "demo").await;
            let mut id = 0;
            while !stop.load(Ordering::Relaxed) {
                id += 1;
                let at = Instant::now();
                let a = c
                    .legacy_call(&lb, &sid, id, "sleep", json!({"ms": ms}))
                    .await;
                let mut t = tally.lock();
                t.made += 1;
                if let Err(e) = called(&a) {
                    t.failed.push((at, e));
                }
            }
        }));
    }
    (modern_tally, legacy_tally, tasks)
}

/// The short calls of the load's callers (ms), stateless and legacy.
const SHORT_MODERN: [u64; 4] = [20, 30, 40, 50];
const SHORT_LEGACY: [u64; 4] = [25, 35, 45, 55];
/// A call longer than the drain.
const LONG_MS: u64 = 2500;

/// Failures by reason, for the figures.
fn reasons(failed: &[(Instant, String)]) -> BTreeMap<String, usize> {
    let mut out = BTreeMap::new();
    for (_, why) in failed {
        *out.entry(why.clone()).or_insert(0) += 1;
    }
    out
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_replica_killed_under_load_loses_only_what_it_held() {
    let _serial = SERIAL.lock().await;
    let mut cluster = Cluster::start().await;
    let c = cluster.client.clone();
    // A call parked for client input on mcpod1 (a legacy backend asking a
    // stateless client: `input_required`, the call held on that replica).
    let first = cluster.replicas[0].base();
    let asked = c
        .modern_call(
            &first,
            "old",
            1,
            "ask",
            json!({"arguments":{"kind":"roots"}}),
        )
        .await
        .unwrap();
    assert_eq!(
        asked.json["result"]["resultType"], "input_required",
        "{}",
        asked.body
    );
    let state = asked.json["result"]["requestState"]
        .as_str()
        .unwrap()
        .to_owned();
    let key = asked.json["result"]["inputRequests"]
        .as_object()
        .unwrap()
        .keys()
        .next()
        .unwrap()
        .clone();

    let stop = Arc::new(AtomicBool::new(false));
    let (modern, legacy, tasks) = load(&cluster, &SHORT_MODERN, &SHORT_LEGACY, &stop);
    eventually(Duration::from_secs(30), "load to get going", || async {
        (modern.lock().made > 20 && legacy.lock().made > 20).then_some(())
    })
    .await;
    let killed = Instant::now();
    cluster.replicas[0].kill();
    let noticed = cluster.until_state("mcpod1", "DOWN").await;
    // Load runs on the other two for a while.
    let (m0, l0) = (modern.lock().made, legacy.lock().made);
    eventually(
        Duration::from_secs(30),
        "load to go on after the kill",
        || async { (modern.lock().made > m0 + 40 && legacy.lock().made > l0 + 40).then_some(()) },
    )
    .await;

    // The retry of the call parked on the dead replica: a clear error at
    // once, not a hang.
    let asked_at = Instant::now();
    let mut params = json!({"arguments":{"kind":"roots"},"requestState": state,
        "inputResponses": {}});
    params["inputResponses"][&key] = json!({"roots": []});
    let retry = c
        .modern_call(&cluster.lb(), "old", 2, "ask", params)
        .await
        .unwrap();
    let retry_took = asked_at.elapsed();
    assert_eq!(retry.json["id"], 2, "{}", retry.body);
    let message = retry.json["error"]["message"].as_str().unwrap_or_default();
    assert!(
        message.contains("another replica") && message.contains("start the request again"),
        "{}",
        retry.body
    );
    assert!(retry_took < Duration::from_secs(5), "{retry_took:?}");

    stop.store(true, Ordering::Relaxed);
    for t in tasks {
        t.await.unwrap();
    }
    let (modern, legacy) = (modern.lock(), legacy.lock());
    // Calls started once HAProxy had seen the replica down.
    let late = |t: &Tally| t.failed.iter().filter(|(at, _)| *at > noticed).count();
    println!(
        "replica killed under load: HAProxy saw it down {:?} after the kill; \
         2026-07-28 calls: {} made, {} failed ({} after that) {:?}; \
         legacy calls: {} made, {} failed ({} after that) {:?}; \
         retry of the call parked there: HTTP {} in {retry_took:?}",
        noticed - killed,
        modern.made,
        modern.failed.len(),
        late(&modern),
        reasons(&modern.failed),
        legacy.made,
        legacy.failed.len(),
        late(&legacy),
        reasons(&legacy.failed),
        retry.status,
    );
    assert_eq!(late(&modern), 0, "{:?}", modern.failed);
    assert_eq!(late(&legacy), 0, "{:?}", legacy.failed);
    // Only calls in flight on the killed replica may have failed (at most
    // one per caller), and at once — the balancer's 502, or the connection
    // closed by it — not by the client's timeout (a hang).
    for (tally, callers) in [(&*modern, 4), (&*legacy, 4)] {
        assert!(tally.failed.len() <= callers, "{:?}", tally.failed);
        for (_, why) in &tally.failed {
            assert!(
                why.starts_with("HTTP 502") || why.starts_with("transport: "),
                "{why}"
            );
        }
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_rolling_restart_under_load_loses_no_call() {
    let _serial = SERIAL.lock().await;
    let mut cluster = Cluster::start().await;
    let stop = Arc::new(AtomicBool::new(false));
    // Besides the short calls, one caller of each era whose calls (2.5 s)
    // outlast the drain: those in flight on a replica when its listener
    // closes finish within the grace.
    let long = |short: &[u64]| [short, &[LONG_MS]].concat();
    let (modern, legacy, tasks) = load(&cluster, &long(&SHORT_MODERN), &long(&SHORT_LEGACY), &stop);
    eventually(Duration::from_secs(30), "load to get going", || async {
        (modern.lock().made > 20 && legacy.lock().made > 20).then_some(())
    })
    .await;
    let started = Instant::now();
    let mut steps = Vec::new();
    for i in 0..cluster.replicas.len() {
        let name = cluster.replicas[i].name.clone();
        let base = cluster.replicas[i].base();
        let in_flight = cluster
            .client
            .metric(&base, "mcpod_calls_in_flight{target=\"demo\"}")
            .await;
        let t0 = Instant::now();
        cluster.replicas[i].terminate();
        // Draining: not ready, still serving.
        let c = cluster.client.clone();
        eventually(Duration::from_secs(5), "/readyz to answer 503", || async {
            let r = c.http.get(format!("{base}/readyz")).send().await.ok()?;
            (r.status() == 503).then_some(())
        })
        .await;
        let direct = c
            .modern_call(
                &base,
                "demo",
                1,
                "echo",
                json!({"arguments":{"text":"draining"}}),
            )
            .await;
        called(&direct).unwrap_or_else(|e| panic!("{name} draining: {e}"));
        let down = cluster.until_state(&name, "DOWN").await;
        let status = cluster.replicas[i].exited(Duration::from_secs(60)).await;
        assert!(
            status.success(),
            "{name} exited with {status}\n{}",
            cluster.logs()
        );
        let exited = Instant::now();
        cluster.replicas[i].start();
        let up = cluster.until_state(&name, "UP").await;
        steps.push(format!(
            "{name}: {in_flight} calls in flight at SIGTERM; down in HAProxy after {:?}, \
             exited after {:?}, up again after {:?}",
            down - t0,
            exited - t0,
            up - t0
        ));
        // Some load on the restarted one before the next goes.
        let (m0, l0) = (modern.lock().made, legacy.lock().made);
        eventually(Duration::from_secs(30), "load to go on", || async {
            (modern.lock().made > m0 + 30 && legacy.lock().made > l0 + 30).then_some(())
        })
        .await;
    }
    let took = started.elapsed();
    stop.store(true, Ordering::Relaxed);
    for t in tasks {
        t.await.unwrap();
    }
    let (modern, legacy) = (modern.lock(), legacy.lock());
    println!(
        "rolling restart of 3 replicas under load (5 stateless + 5 legacy callers, \
         sleep calls of 20-55 ms and of 2.5 s) in {took:?}: 2026-07-28 calls: {} made, \
         {} failed {:?}; legacy calls: {} made, {} failed {:?}\n  {}",
        modern.made,
        modern.failed.len(),
        reasons(&modern.failed),
        legacy.made,
        legacy.failed.len(),
        reasons(&legacy.failed),
        steps.join("\n  ")
    );
    assert!(
        modern.failed.is_empty() && legacy.failed.is_empty(),
        "calls failed: {:?} {:?}\n{}",
        modern.failed,
        legacy.failed,
        cluster.logs()
    );
}

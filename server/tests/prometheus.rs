//! The operator kit in `ops/` against a real Prometheus (Debian's
//! `prometheus` package: `prometheus` and `promtool`).
//!
//! A gateway with auth on serves calls of both eras; a Prometheus started
//! from the example `ops/prometheus/prometheus.yml` (bearer token and all,
//! only its interval, target and paths changed) scrapes it every second with
//! `ops/prometheus/mcpod.rules.yml` loaded. Its HTTP API must return the
//! calls' series and the recorded ones, every rule must evaluate cleanly,
//! and every expression in the rules and in `ops/grafana/mcpod.json` must
//! name only metrics the gateway exports. `promtool` checks the rules, the
//! example config and the gateway's `/metrics` output.
//!
//! Without the Prometheus tools these tests fail, saying how to get them;
//! so they run only with the `ops-tests` feature, as the test command does
//! (it installs the package).

#![cfg(feature = "ops-tests")]
#![allow(clippy::unwrap_used)]

mod common;

use std::collections::BTreeSet;
use std::io::Write as _;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use common::{Gateway, TOKEN, call, demo_target};
use reqwest::header::{AUTHORIZATION, HeaderMap, HeaderValue};
use serde_json::{Value, json};

fn ops() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../ops")
}

/// A Prometheus tool on `PATH`, or a failure that says where it comes from.
fn tool(name: &str) -> PathBuf {
    std::env::var_os("PATH")
        .iter()
        .flat_map(std::env::split_paths)
        .map(|dir| dir.join(name))
        .find(|p| p.is_file())
        .unwrap_or_else(|| {
            panic!(
                "`{name}` is not on PATH: these tests need Debian's `prometheus` package \
                 (apt-get install prometheus; scripts/test.sh installs it)"
            )
        })
}

/// Runs `promtool` with `args` (and `stdin`); fails with its output unless
/// it succeeds.
fn promtool(args: &[&str], stdin: Option<&str>) {
    let mut child = Command::new(tool("promtool"))
        .args(args)
        .stdin(if stdin.is_some() {
            Stdio::piped()
        } else {
            Stdio::null()
        })
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    if let Some(input) = stdin {
        child
            .stdin
            .take()
            .unwrap()
            .write_all(input.as_bytes())
            .unwrap();
    }
    let out = child.wait_with_output().unwrap();
    let text = format!(
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(
        out.status.success(),
        "promtool {args:?}: {}\n{text}",
        out.status
    );
    if args.first() == Some(&"check") && args.get(1) == Some(&"metrics") {
        // Lint findings are printed even when they do not fail the run.
        assert!(text.trim().is_empty(), "promtool check metrics: {text}");
    }
}

/// A port free on loopback now (taken again by whoever binds it first).
fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

/// A gateway with auth on, its client sending the token.
async fn gateway() -> Gateway {
    let toml = format!(
        "[auth]\ntokens = [\"{TOKEN}\"]\n{}",
        demo_target("demo", "")
    );
    let mut gw = Gateway::start(&toml).await;
    let mut headers = HeaderMap::new();
    headers.insert(
        AUTHORIZATION,
        HeaderValue::from_str(&format!("Bearer {TOKEN}")).unwrap(),
    );
    gw.http = reqwest::Client::builder()
        .default_headers(headers)
        .timeout(Duration::from_secs(30))
        .build()
        .unwrap();
    gw
}

/// Calls of both eras: modern `tools/list`, `tools/call` (one of them to an
/// unknown tool, a backend error); a legacy session with `initialize`, a
/// `tools/call`, and its end (`DELETE`).
async fn calls(gw: &Gateway, round: u64) {
    let r = gw
        .modern("demo", json!(round), "tools/list", json!({}))
        .await;
    assert_eq!(r.status, 200, "{}", r.body);
    let r = gw
        .modern(
            "demo",
            json!(round),
            "tools/call",
            json!({"name":"echo","arguments":{"text":"hi"}}),
        )
        .await;
    assert_eq!(r.text(), "hi");
    let r = gw
        .modern(
            "demo",
            json!(round),
            "tools/call",
            json!({"name":"no-such-tool","arguments":{}}),
        )
        .await;
    assert!(r.code().is_some(), "{}", r.body);
    let sid = gw.initialize("demo").await;
    let r = gw
        .legacy(
            "demo",
            &sid,
            call(json!(round), "echo", json!({"text":"hi"})),
        )
        .await;
    assert_eq!(r.text(), "hi");
    let end = gw
        .http
        .delete(gw.url("/mcp/demo"))
        .header("mcp-session-id", &sid)
        .send()
        .await
        .unwrap();
    assert!(end.status().is_success(), "{}", end.status());
}

/// The gateway's `/metrics` body.
async fn scrape(gw: &Gateway) -> String {
    let r = gw.http.get(gw.url("/metrics")).send().await.unwrap();
    assert_eq!(r.status(), 200);
    r.text().await.unwrap()
}

/// Every series name the exposition holds (a histogram's `_bucket`, `_sum`,
/// `_count` too).
fn exported(metrics: &str) -> BTreeSet<String> {
    let mut names = BTreeSet::new();
    for line in metrics.lines() {
        let Some(rest) = line.strip_prefix("# TYPE ") else {
            continue;
        };
        let (name, kind) = rest.split_once(' ').unwrap();
        names.insert(name.to_owned());
        if kind == "histogram" {
            for suffix in ["_bucket", "_sum", "_count"] {
                names.insert(format!("{name}{suffix}"));
            }
        }
    }
    names
}

/// The identifiers of a PromQL expression (metric, label and function
/// names; string literals skipped).
fn identifiers(expr: &str) -> Vec<String> {
    let mut out = Vec::new();
    let mut chars = expr.chars().peekable();
    while let Some(c) = chars.next() {
        if c == '"' || c == '\'' {
            while let Some(d) = chars.next() {
                if d == '\\' {
                    chars.next();
                } else if d == c {
                    break;
                }
            }
        } else if c.is_ascii_alphabetic() || c == '_' || c == ':' {
            let mut id = c.to_string();
            while let Some(&d) = chars.peek() {
                if d.is_ascii_alphanumeric() || d == '_' || d == ':' {
                    id.push(d);
                    chars.next();
                } else {
                    break;
                }
            }
            out.push(id);
        } else if c.is_ascii_digit() {
            // A number or a duration (`5m`): not a name.
            while chars.peek().is_some_and(|d| d.is_ascii_alphanumeric()) {
                chars.next();
            }
        }
    }
    out
}

/// The names in `expr` that are neither exported nor recorded.
fn unknown_names(
    expr: &str,
    exported: &BTreeSet<String>,
    recorded: &BTreeSet<String>,
) -> Vec<String> {
    identifiers(expr)
        .into_iter()
        .filter(|id| {
            if id.contains(':') {
                !recorded.contains(id)
            } else {
                id.starts_with("mcpod_") && !exported.contains(id)
            }
        })
        .collect()
}

/// A Prometheus of its own: temporary config and storage, a loopback port.
struct Prometheus {
    child: Child,
    base: String,
    http: reqwest::Client,
    dir: tempfile::TempDir,
}

impl Prometheus {
    /// Starts one scraping `gateway` (host:port) every second, from the
    /// example config; returns once its API answers.
    async fn start(gateway: &str) -> Prometheus {
        let mut dir = tempfile::tempdir().unwrap();
        let example = std::fs::read_to_string(ops().join("prometheus/prometheus.yml")).unwrap();
        let token = dir.path().join("mcpod.token");
        std::fs::write(&token, format!("{TOKEN}\n")).unwrap();
        let mut config = example.clone();
        for (from, to) in [
            ("scrape_interval: 15s", "scrape_interval: 1s".to_owned()),
            (
                "evaluation_interval: 15s",
                "evaluation_interval: 1s".to_owned(),
            ),
            (
                "/etc/prometheus/mcpod.token",
                token.to_str().unwrap().to_owned(),
            ),
            ("127.0.0.1:8080", gateway.to_owned()),
        ] {
            assert!(
                config.contains(from),
                "ops/prometheus/prometheus.yml no longer has `{from}`: update this test"
            );
            config = config.replace(from, &to);
        }
        let config_file = dir.path().join("prometheus.yml");
        std::fs::write(&config_file, config).unwrap();
        // `rule_files` is relative to the config: the rules sit beside it.
        std::fs::copy(
            ops().join("prometheus/mcpod.rules.yml"),
            dir.path().join("mcpod.rules.yml"),
        )
        .unwrap();
        promtool(&["check", "config", config_file.to_str().unwrap()], None);

        let http = reqwest::Client::builder()
            .timeout(Duration::from_secs(10))
            .build()
            .unwrap();
        // The port may be taken between finding it and binding it: retry.
        for _ in 0..3 {
            let port = free_port();
            let log = std::fs::File::create(dir.path().join("prometheus.log")).unwrap();
            let child = Command::new(tool("prometheus"))
                .arg(format!("--config.file={}", config_file.display()))
                .arg(format!(
                    "--storage.tsdb.path={}",
                    dir.path().join("data").display()
                ))
                .arg(format!("--web.listen-address=127.0.0.1:{port}"))
                .stdin(Stdio::null())
                .stdout(log.try_clone().unwrap())
                .stderr(log)
                .spawn()
                .unwrap();
            let mut p = Prometheus {
                child,
                base: format!("http://127.0.0.1:{port}"),
                http: http.clone(),
                dir,
            };
            let deadline = Instant::now() + Duration::from_secs(60);
            loop {
                if let Some(status) = p.child.try_wait().unwrap() {
                    eprintln!("prometheus exited ({status}):\n{}", p.log());
                    break;
                }
                let ready = p.http.get(format!("{}/-/ready", p.base)).send().await;
                if ready.is_ok_and(|r| r.status().is_success()) {
                    return p;
                }
                assert!(
                    Instant::now() < deadline,
                    "prometheus not ready in 60 s:\n{}",
                    p.log()
                );
                tokio::time::sleep(Duration::from_millis(100)).await;
            }
            // Dropping the process took the directory along: take it back.
            dir = std::mem::replace(&mut p.dir, tempfile::tempdir().unwrap());
        }
        panic!("prometheus did not start (see the logs above)");
    }

    fn log(&self) -> String {
        std::fs::read_to_string(self.dir.path().join("prometheus.log")).unwrap_or_default()
    }

    /// `GET /api/v1/{path}` with `query`; its `data` (a failure unless the
    /// status is `success`).
    async fn api(&self, path: &str, query: &[(&str, &str)]) -> Value {
        let r = self
            .http
            .get(format!("{}/api/v1/{path}", self.base))
            .query(query)
            .send()
            .await
            .unwrap();
        let body: Value = r.json().await.unwrap();
        assert_eq!(body["status"], "success", "{path} {query:?}: {body}");
        body["data"].clone()
    }

    /// An instant query's result vector.
    async fn query(&self, q: &str) -> Vec<Value> {
        self.api("query", &[("query", q)]).await["result"]
            .as_array()
            .unwrap()
            .clone()
    }

    /// Polls `q` until `done` holds for its result; fails after 60 s with
    /// the last result.
    async fn wait_for(&self, q: &str, done: impl Fn(&[Value]) -> bool) -> Vec<Value> {
        let deadline = Instant::now() + Duration::from_secs(60);
        loop {
            let result = self.query(q).await;
            if done(&result) {
                return result;
            }
            assert!(
                Instant::now() < deadline,
                "`{q}` did not get there in 60 s; last result: {result:?}\nprometheus log:\n{}",
                self.log()
            );
            tokio::time::sleep(Duration::from_millis(200)).await;
        }
    }

    /// Stops it (SIGTERM, SIGKILL if it lingers) and waits for it.
    fn stop(&mut self) {
        if self.child.try_wait().unwrap().is_some() {
            return;
        }
        let pid = nix::unistd::Pid::from_raw(self.child.id() as i32);
        let _ = nix::sys::signal::kill(pid, nix::sys::signal::Signal::SIGTERM);
        let deadline = Instant::now() + Duration::from_secs(10);
        while self.child.try_wait().unwrap().is_none() {
            if Instant::now() > deadline {
                let _ = self.child.kill();
                let _ = self.child.wait();
                return;
            }
            std::thread::sleep(Duration::from_millis(50));
        }
    }
}

impl Drop for Prometheus {
    fn drop(&mut self) {
        self.stop();
    }
}

/// The value of the sample of `result` whose labels include `labels`.
fn value(result: &[Value], labels: &[(&str, &str)]) -> Option<f64> {
    result
        .iter()
        .find(|s| labels.iter().all(|(k, v)| s["metric"][*k] == *v))
        .map(|s| s["value"][1].as_str().unwrap().parse().unwrap())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn prometheus_scrapes_the_gateway_with_the_kits_rules_and_dashboard() {
    let rules = ops().join("prometheus/mcpod.rules.yml");
    promtool(&["check", "rules", rules.to_str().unwrap()], None);

    let gw = gateway().await;
    // /metrics needs the token when auth is on.
    let anonymous = reqwest::get(gw.url("/metrics")).await.unwrap();
    assert_eq!(anonymous.status(), 401);
    calls(&gw, 1).await;
    let metrics = scrape(&gw).await;
    promtool(&["check", "metrics"], Some(&metrics));
    let exported = exported(&metrics);
    for name in [
        "mcpod_calls_limit",
        "mcpod_sessions_limit",
        "mcpod_streams_limit",
        "mcpod_connections_limit",
    ] {
        assert!(exported.contains(name), "{name} not exported:\n{metrics}");
    }

    let authority = gw.base.strip_prefix("http://").unwrap().to_owned();
    let mut prom = Prometheus::start(&authority).await;
    let ok = |method: &'static str, n: f64| {
        move |r: &[Value]| {
            value(
                r,
                &[("target", "demo"), ("method", method), ("outcome", "ok")],
            ) == Some(n)
        }
    };
    // Both eras' calls arrive: `initialize` is legacy only, `tools/list`
    // here modern only.
    prom.wait_for("mcpod_requests_total", ok("tools/call", 2.0))
        .await;
    let result = prom.query("mcpod_requests_total").await;
    assert_eq!(
        value(&result, &[("method", "initialize"), ("outcome", "ok")]),
        Some(1.0)
    );
    assert_eq!(
        value(&result, &[("method", "tools/list"), ("outcome", "ok")]),
        Some(1.0)
    );
    assert_eq!(
        value(&result, &[("method", "tools/call"), ("outcome", "error")]),
        Some(1.0)
    );
    // Scraped with the bearer token of the example config.
    let up = prom.query("up{job=\"mcpod\"}").await;
    assert_eq!(value(&up, &[("instance", &authority)]), Some(1.0));

    // More calls after the first scrapes, so rates are not zero.
    calls(&gw, 2).await;
    prom.wait_for("mcpod_requests_total", ok("tools/call", 4.0))
        .await;
    prom.wait_for("target:mcpod_requests:rate5m{target=\"demo\"}", |r| {
        value(r, &[]).is_some_and(|v| v > 0.0)
    })
    .await;
    let ratio = prom
        .wait_for(
            "target:mcpod_requests_errors:ratio_rate5m{target=\"demo\"}",
            |r| value(r, &[]).is_some_and(|v| v > 0.0),
        )
        .await;
    assert!(value(&ratio, &[]).unwrap() < 1.0, "{ratio:?}");
    for saturation in [
        "target:mcpod_calls_saturation:ratio",
        "target:mcpod_sessions_saturation:ratio",
        "target:mcpod_streams_saturation:ratio",
        "instance:mcpod_connections_saturation:ratio",
    ] {
        let r = prom.wait_for(saturation, |r| !r.is_empty()).await;
        let v = value(&r, &[]).unwrap();
        assert!((0.0..1.0).contains(&v), "{saturation}: {r:?}");
    }

    // Every rule evaluated, none with an error; their expressions name
    // only exported or recorded series.
    let deadline = Instant::now() + Duration::from_secs(60);
    let all_rules = loop {
        let groups = prom.api("rules", &[]).await["groups"].clone();
        let all: Vec<Value> = groups
            .as_array()
            .unwrap()
            .iter()
            .flat_map(|g| g["rules"].as_array().unwrap().clone())
            .collect();
        if all.iter().all(|r| r["health"] != "unknown") {
            break all;
        }
        assert!(
            Instant::now() < deadline,
            "rules not evaluated in 60 s: {all:?}"
        );
        tokio::time::sleep(Duration::from_millis(200)).await;
    };
    assert!(
        all_rules.iter().any(|r| r["type"] == "alerting"),
        "no alerts loaded: {all_rules:?}"
    );
    for r in &all_rules {
        assert_eq!(r["health"], "ok", "{r}");
    }
    let recorded: BTreeSet<String> = all_rules
        .iter()
        .filter(|r| r["type"] == "recording")
        .map(|r| r["name"].as_str().unwrap().to_owned())
        .collect();
    for r in &all_rules {
        let expr = r["query"].as_str().unwrap();
        let unknown = unknown_names(expr, &exported, &recorded);
        assert!(
            unknown.is_empty(),
            "rule {}: {unknown:?} not exported",
            r["name"]
        );
    }

    // The dashboard: Grafana JSON with a `${DS_PROMETHEUS}` input, its
    // expressions naming only exported series, each valid PromQL, each
    // panel with data here.
    let text = std::fs::read_to_string(ops().join("grafana/mcpod.json")).unwrap();
    let dash: Value = serde_json::from_str(&text).unwrap();
    assert_eq!(dash["__inputs"][0]["name"], "DS_PROMETHEUS");
    assert_eq!(dash["__inputs"][0]["pluginId"], "prometheus");
    for var in dash["templating"]["list"].as_array().unwrap() {
        let q = var["definition"].as_str().unwrap();
        let unknown = unknown_names(q, &exported, &recorded);
        assert!(
            unknown.is_empty(),
            "variable {}: {unknown:?} not exported",
            var["name"]
        );
    }
    let panels: Vec<&Value> = dash["panels"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|p| p["type"] != "row")
        .collect();
    assert!(panels.len() >= 9, "{} panels", panels.len());
    for panel in panels {
        let title = panel["title"].as_str().unwrap();
        assert_eq!(panel["datasource"]["uid"], "${DS_PROMETHEUS}", "{title}");
        let mut series = 0;
        for target in panel["targets"].as_array().unwrap() {
            let expr = target["expr"].as_str().unwrap();
            let unknown = unknown_names(expr, &exported, &recorded);
            assert!(
                unknown.is_empty(),
                "panel {title}: {unknown:?} not exported"
            );
            let q = expr
                .replace("$__rate_interval", "1m")
                .replace("$instance", ".*")
                .replace("$target", ".*");
            series += prom.query(&q).await.len();
        }
        assert!(series > 0, "panel {title}: no data");
    }

    prom.stop();
    gw.shutdown().await;
}

#[test]
fn identifiers_skip_strings_and_durations() {
    let ids = identifiers(
        r#"sum by (target) (rate(mcpod_requests_total{outcome=~"a:b|c"}[5m])) / target:x:rate5m"#,
    );
    assert_eq!(
        ids,
        [
            "sum",
            "by",
            "target",
            "rate",
            "mcpod_requests_total",
            "outcome",
            "target:x:rate5m"
        ]
    );
}

//! What a child process gets of the gateway: never its `MCPOD_*`
//! variables (its tokens), whether it is a configured target or a bot's
//! `mcp-stdio` server; and what a bot may start (fields, command, cwd,
//! user), each checked on real child processes.
//!
//! The gateway runs as its own process here, started with
//! `MCPOD_AUTH_TOKENS` and another `MCPOD_*` secret in its environment,
//! the way an operator would start it.

#![allow(clippy::unwrap_used, missing_docs)]

mod common;

use std::collections::BTreeMap;
use std::process::Stdio;
use std::time::Duration;

use common::{DEMO, Gateway, TOKEN, demo_target};
use serde_json::{Value, json};

/// A secret of the gateway's environment, named for this test process.
fn secret_name() -> String {
    format!("MCPOD_TEST_SECRET_{}", std::process::id())
}

const SECRET: &str = "do-not-leak-0123456789";
const PLAIN: (&str, &str) = ("ISOLATION_TEST_PLAIN", "plain");

/// The `mcpod` binary serving `config`, with the secrets in its
/// environment; stopped with SIGTERM when dropped.
struct Spawned {
    gw: Gateway,
    child: tokio::process::Child,
    _dir: tempfile::TempDir,
}

impl Spawned {
    async fn start(config: &str) -> Spawned {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("mcpod.toml");
        std::fs::write(&path, config).unwrap();
        let port = std::net::TcpListener::bind("127.0.0.1:0")
            .unwrap()
            .local_addr()
            .unwrap()
            .port();
        let child = tokio::process::Command::new(DEMO)
            .arg("serve")
            .arg("--config")
            .arg(&path)
            .args(["--listen", &format!("127.0.0.1:{port}")])
            .env("MCPOD_AUTH_TOKENS", TOKEN)
            .env(secret_name(), SECRET)
            .env(PLAIN.0, PLAIN.1)
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .kill_on_drop(true)
            .spawn()
            .unwrap();
        let gw = Gateway {
            server: None,
            base: format!("http://127.0.0.1:{port}"),
            http: reqwest::Client::builder()
                .timeout(Duration::from_secs(30))
                .build()
                .unwrap(),
        };
        let mut up = false;
        for _ in 0..200 {
            if let Ok(r) = gw.http.get(gw.url("/healthz")).send().await
                && r.status() == 200
            {
                up = true;
                break;
            }
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
        assert!(up, "the gateway did not come up");
        Spawned {
            gw,
            child,
            _dir: dir,
        }
    }

    async fn stop(mut self) {
        let pid = self.child.id().unwrap();
        nix_kill(pid);
        let status = tokio::time::timeout(Duration::from_secs(20), self.child.wait())
            .await
            .unwrap()
            .unwrap();
        assert!(status.success(), "{status:?}");
    }
}

fn nix_kill(pid: u32) {
    let ok = std::process::Command::new("kill")
        .args(["-TERM", &pid.to_string()])
        .status()
        .unwrap()
        .success();
    assert!(ok);
}

fn bearer() -> String {
    format!("Bearer {TOKEN}")
}

/// A tool call as a 2026-07-28 client with the global token; its text.
async fn modern_tool(gw: &Gateway, target: &str, tool: &str, args: Value) -> String {
    let auth = bearer();
    let r = gw
        .post(
            &format!("/mcp/{target}"),
            &[
                ("authorization", &auth),
                ("mcp-protocol-version", common::MODERN),
                ("mcp-method", "tools/call"),
                ("mcp-name", tool),
            ],
            &json!({"jsonrpc":"2.0","id":1,"method":"tools/call","params":{
                "name": tool, "arguments": args,
                "_meta": {"io.modelcontextprotocol/protocolVersion": common::MODERN,
                          "io.modelcontextprotocol/clientCapabilities": {}}}}),
        )
        .await;
    assert_eq!(r.status, 200, "{}", r.body);
    r.text()
}

/// A tool call on a Memoh `mcp-stdio` connection; its text.
async fn memoh_tool(gw: &Gateway, url: &str, tool: &str, args: Value, auth: bool) -> String {
    let bearer = bearer();
    let mut headers = vec![];
    if auth {
        headers.push(("authorization", bearer.as_str()));
    }
    let r = gw
        .post(
            url,
            &headers,
            &json!({"jsonrpc":"2.0","id":1,"method":"tools/call","params":{"name": tool, "arguments": args}}),
        )
        .await;
    assert_eq!(r.status, 200, "{}", r.body);
    r.text()
}

/// A process's environment as the kernel recorded it at exec.
fn environ(pid: u64) -> BTreeMap<String, String> {
    let raw = std::fs::read(format!("/proc/{pid}/environ")).unwrap();
    raw.split(|b| *b == 0)
        .filter(|e| !e.is_empty())
        .map(|e| {
            let e = String::from_utf8_lossy(e);
            let (k, v) = e.split_once('=').unwrap_or((&e, ""));
            (k.to_owned(), v.to_owned())
        })
        .collect()
}

fn pid_of(stats: &str) -> u64 {
    serde_json::from_str::<Value>(stats).unwrap()["pid"]
        .as_u64()
        .unwrap()
}

/// What the demo's `env` tool says of the gateway's secrets.
fn env_args() -> Value {
    json!({"names": ["MCPOD_AUTH_TOKENS", secret_name(), PLAIN.0, "PATH"], "prefix": "MCPOD_"})
}

fn assert_no_mcpod(env: &BTreeMap<String, String>) {
    let leaked: Vec<&String> = env
        .keys()
        .filter(|k| k.to_ascii_uppercase().starts_with("MCPOD_"))
        .collect();
    assert!(
        leaked.is_empty(),
        "the gateway's variables leaked: {leaked:?}"
    );
    assert!(
        !env.values()
            .any(|v| v.contains(SECRET) || v.contains(TOKEN)),
        "a secret leaked under another name: {env:?}"
    );
}

#[tokio::test]
async fn configured_targets_never_inherit_the_gateways_mcpod_variables() {
    let spawned = Spawned::start(&format!(
        "{}{}",
        demo_target("inherit", "env = { CONFIGURED = \"yes\" }"),
        demo_target("clear", "env = { CONFIGURED = \"yes\" }\nenv_clear = true"),
    ))
    .await;
    let gw = &spawned.gw;

    // env_clear = false: everything of the gateway's but its MCPOD_* ones.
    let pid = pid_of(&modern_tool(gw, "inherit", "stats", json!({})).await);
    let env = environ(pid);
    assert_no_mcpod(&env);
    assert_eq!(
        env.get(PLAIN.0).map(String::as_str),
        Some(PLAIN.1),
        "{env:?}"
    );
    assert_eq!(env.get("CONFIGURED").map(String::as_str), Some("yes"));
    assert!(env.contains_key("PATH"), "{env:?}");
    let seen: Value =
        serde_json::from_str(&modern_tool(gw, "inherit", "env", env_args()).await).unwrap();
    assert_eq!(
        seen,
        json!({"MCPOD_AUTH_TOKENS": null, secret_name(): null, PLAIN.0: PLAIN.1, "PATH": env["PATH"]}),
        "what the server itself sees"
    );

    // env_clear = true: only what the target sets.
    let pid = pid_of(&modern_tool(gw, "clear", "stats", json!({})).await);
    let env = environ(pid);
    assert_eq!(env.keys().collect::<Vec<_>>(), ["CONFIGURED"], "{env:?}");
    spawned.stop().await;
}

#[tokio::test]
async fn mcp_stdio_servers_get_the_allowlist_and_their_own_env_only() {
    let spawned = Spawned::start(&format!(
        "{}[bots.bot1]\ntarget = \"demo\"\nallow_local_stdio = true\n",
        demo_target("demo", ""),
    ))
    .await;
    let gw = &spawned.gw;
    let auth = bearer();
    let r = gw
        .post(
            "/bots/bot1/mcp-stdio",
            &[("authorization", &auth)],
            &json!({"name": "mine", "command": DEMO, "args": ["demo-server"],
                    "env": {"REQUESTED": "by-the-bot"}}),
        )
        .await;
    assert_eq!(r.status, 200, "{}", r.body);
    let url = r.json()["url"].as_str().unwrap().to_owned();

    let pid = pid_of(&memoh_tool(gw, &url, "stats", json!({}), true).await);
    let env = environ(pid);
    assert_no_mcpod(&env);
    let allowed = ["PATH", "HOME", "LANG", "LC_ALL", "LC_CTYPE", "TZ", "TMPDIR"];
    let beyond: Vec<&String> = env
        .keys()
        .filter(|k| !allowed.contains(&k.as_str()) && *k != "REQUESTED")
        .collect();
    assert!(beyond.is_empty(), "beyond the allowlist: {beyond:?}");
    assert_eq!(env.get("REQUESTED").map(String::as_str), Some("by-the-bot"));
    assert!(env.contains_key("PATH"), "{env:?}");
    let seen: Value =
        serde_json::from_str(&memoh_tool(gw, &url, "env", env_args(), true).await).unwrap();
    assert_eq!(
        seen,
        json!({"MCPOD_AUTH_TOKENS": null, secret_name(): null, PLAIN.0: null, "PATH": env["PATH"]})
    );
    spawned.stop().await;
}

async fn create(gw: &Gateway, bot: &str, body: Value) -> common::Reply {
    gw.post(&format!("/bots/{bot}/mcp-stdio"), &[], &body).await
}

#[tokio::test]
async fn mcp_stdio_refuses_fields_it_does_not_know_and_the_gateways_names() {
    let gw = Gateway::start(&format!(
        "{}[bots.bot1]\ntarget = \"demo\"\nallow_local_stdio = true\n",
        demo_target("demo", "")
    ))
    .await;
    let r = create(
        &gw,
        "bot1",
        json!({"command": DEMO, "args": ["demo-server"], "env_clear": true}),
    )
    .await;
    assert_eq!(r.status, 400, "{}", r.body);
    let m = r.json()["message"].as_str().unwrap().to_owned();
    assert!(m.contains("unknown field `env_clear`"), "{m}");
    let r = create(
        &gw,
        "bot1",
        json!({"command": DEMO, "args": ["demo-server"], "env": {"MCPOD_AUTH_TOKENS": "x"}}),
    )
    .await;
    assert_eq!(r.status, 400, "{}", r.body);
    assert!(r.body.contains("MCPOD_AUTH_TOKENS"), "{}", r.body);
    // The contract's five fields are still taken.
    let r = create(
        &gw,
        "bot1",
        json!({"name": "x", "command": DEMO, "args": ["demo-server"], "env": {"A": "1"}, "cwd": "/"}),
    )
    .await;
    assert_eq!(r.status, 200, "{}", r.body);
    gw.shutdown().await;
}

#[tokio::test]
async fn a_bots_cwd_root_and_command_allowlist_bound_what_it_starts() {
    let dir = tempfile::tempdir().unwrap();
    let root = dir.path().join("root");
    std::fs::create_dir_all(root.join("sub")).unwrap();
    std::fs::create_dir_all(dir.path().join("other")).unwrap();
    std::os::unix::fs::symlink(dir.path().join("other"), root.join("escape")).unwrap();
    let canon = std::fs::canonicalize(&root).unwrap();
    let gw = Gateway::start(&format!(
        "{}[bots.jailed]\ntarget = \"demo\"\nallow_local_stdio = true\n\
         stdio_cwd_root = \"{}\"\nstdio_commands = [\"{DEMO}\"]\n",
        demo_target("demo", ""),
        root.display()
    ))
    .await;
    let other = dir.path().join("other");
    for cwd in ["/", other.to_str().unwrap(), "escape", "..", "sub/../.."] {
        let r = create(
            &gw,
            "jailed",
            json!({"command": DEMO, "args": ["demo-server"], "cwd": cwd}),
        )
        .await;
        assert_eq!(r.status, 403, "{cwd}: {}", r.body);
        assert!(
            r.body.contains("outside this bot's stdio_cwd_root"),
            "{}",
            r.body
        );
    }
    let r = create(
        &gw,
        "jailed",
        json!({"command": DEMO, "args": ["demo-server"], "cwd": "missing"}),
    )
    .await;
    assert_eq!(r.status, 400, "{}", r.body);
    for command in ["/bin/cat", "mcpod", "sh"] {
        let r = create(&gw, "jailed", json!({"command": command})).await;
        assert_eq!(r.status, 403, "{command}: {}", r.body);
        assert!(r.body.contains("not allowed"), "{}", r.body);
    }
    // PATH would choose which program an allowed name runs.
    let r = create(
        &gw,
        "jailed",
        json!({"command": DEMO, "args": ["demo-server"], "env": {"PATH": "/tmp"}}),
    )
    .await;
    assert_eq!(r.status, 403, "{}", r.body);

    // Inside the root it starts, there; with no cwd, at the root.
    for (cwd, want) in [(Some("sub"), canon.join("sub")), (None, canon.clone())] {
        let mut body = json!({"command": DEMO, "args": ["demo-server"]});
        if let Some(cwd) = cwd {
            body["cwd"] = json!(cwd);
        }
        let r = create(&gw, "jailed", body).await;
        assert_eq!(r.status, 200, "{}", r.body);
        let url = r.json()["url"].as_str().unwrap().to_owned();
        let pid = pid_of(&memoh_tool(&gw, &url, "stats", json!({}), false).await);
        let at = std::fs::read_link(format!("/proc/{pid}/cwd")).unwrap();
        assert_eq!(at, want);
    }
    gw.shutdown().await;
}

fn running_as_root() -> bool {
    std::fs::read_to_string("/proc/self/status")
        .unwrap()
        .lines()
        .any(|l| l.starts_with("Uid:") && l.split_whitespace().nth(2) == Some("0"))
}

#[tokio::test]
async fn a_bots_stdio_servers_run_as_its_uid_and_gid() {
    let gw = Gateway::start(&format!(
        "{}[bots.nobody]\ntarget = \"demo\"\nallow_local_stdio = true\n\
         stdio_uid = 65534\nstdio_gid = 65534\n",
        demo_target("demo", "")
    ))
    .await;
    let r = create(
        &gw,
        "nobody",
        json!({"command": DEMO, "args": ["demo-server"]}),
    )
    .await;
    if !running_as_root() {
        // Without the privilege to change users it must not start at all.
        assert_eq!(r.status, 500, "{}", r.body);
        gw.shutdown().await;
        return;
    }
    assert_eq!(r.status, 200, "{}", r.body);
    let url = r.json()["url"].as_str().unwrap().to_owned();
    let pid = pid_of(&memoh_tool(&gw, &url, "stats", json!({}), false).await);
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).unwrap();
    let field = |name: &str| {
        status
            .lines()
            .find_map(|l| l.strip_prefix(name))
            .unwrap()
            .split_whitespace()
            .collect::<Vec<_>>()
    };
    assert_eq!(field("Uid:"), ["65534"; 4], "{status}");
    assert_eq!(field("Gid:"), ["65534"; 4], "{status}");
    assert!(field("Groups:").is_empty(), "{status}");
    gw.shutdown().await;
}

//! `mcpod bot create|start|stop|delete|ls` against a real containerd, and
//! the README's path: a bot made from a rootfs directory, reached through
//! the gateway.
//!
//! Needs a real containerd and the static demo server (see `ctd/mod.rs`);
//! behind the `containerd-tests` feature, and never skipped silently.

#![cfg(feature = "containerd-tests")]
#![allow(clippy::unwrap_used, missing_docs)]

mod common;
mod ctd;

use std::process::Command;

use common::{Gateway, call};
use serde_json::json;

struct Out {
    ok: bool,
    stdout: String,
    stderr: String,
}

fn mcpod(env: &ctd::Env, args: &[&str]) -> Out {
    mcpod_in(env, env.tmp.path(), args)
}

/// `mcpod bot ARGS --socket … --namespace …`, run in `cwd`.
fn mcpod_in(env: &ctd::Env, cwd: &std::path::Path, args: &[&str]) -> Out {
    let mut cmd = Command::new(common::DEMO);
    cmd.arg("bot")
        .args(args)
        .arg("--socket")
        .arg(&env.socket)
        .arg("--namespace")
        .arg(&env.namespace)
        .current_dir(cwd);
    run(cmd)
}

fn run(mut cmd: Command) -> Out {
    let out = cmd.env_remove("MCPOD_CONFIG").output().unwrap();
    Out {
        ok: out.status.success(),
        stdout: String::from_utf8_lossy(&out.stdout).into_owned(),
        stderr: String::from_utf8_lossy(&out.stderr).into_owned(),
    }
}

fn row<'a>(ls: &'a str, container: &str) -> Option<&'a str> {
    ls.lines()
        .find(|l| l.split_whitespace().next() == Some(container))
}

#[tokio::test]
async fn bot_subcommands_manage_a_container_the_gateway_serves() {
    let env = ctd::Env::new("cli").await;
    let rootfs = env.rootfs.to_str().unwrap().to_owned();
    let data = env.tmp.path().join("data-mia");
    let out = mcpod(
        &env,
        &[
            "create",
            "mia",
            "--rootfs",
            &rootfs,
            "--data-dir",
            data.to_str().unwrap(),
        ],
    );
    assert!(out.ok, "{}{}", out.stdout, out.stderr);
    assert!(out.stdout.contains("mcp-mia"), "{}", out.stdout);
    assert!(data.is_dir(), "the data directory is created");

    let ls = mcpod(&env, &["ls"]);
    assert!(ls.ok, "{}", ls.stderr);
    let line = row(&ls.stdout, "mcp-mia").unwrap_or_else(|| panic!("{}", ls.stdout));
    assert!(line.contains(" mia ") && line.contains("running"), "{line}");

    // The gateway serves it on the Memoh route.
    let gw = Gateway::start(&env.section("serve_bots = true")).await;
    let r = gw
        .post(
            "/bots/mia/container/fs-mcp",
            &[],
            &call(json!(1), "echo", json!({"text":"hello from mia"})),
        )
        .await;
    assert_eq!(r.text(), "hello from mia");
    gw.shutdown().await;

    let out = mcpod(&env, &["stop", "mia", "--grace", "1"]);
    assert!(out.ok, "{}{}", out.stdout, out.stderr);
    let ls = mcpod(&env, &["ls"]);
    let line = row(&ls.stdout, "mcp-mia").unwrap_or_else(|| panic!("{}", ls.stdout));
    // `stop` deletes the task: the container shows as stopped, not as "-".
    let cols: Vec<&str> = line.split_whitespace().collect();
    assert_eq!(cols, ["mcp-mia", "mia", "stopped", "-"], "{line}");
    assert!(ls.stdout.starts_with("CONTAINER"), "{}", ls.stdout);

    let out = mcpod(&env, &["start", "mia"]);
    assert!(out.ok, "{}{}", out.stdout, out.stderr);
    assert!(out.stdout.contains("running"), "{}", out.stdout);

    // Errors are clear and fail the command.
    let out = mcpod(&env, &["start", "ghost"]);
    assert!(!out.ok);
    assert!(out.stderr.contains("container not found"), "{}", out.stderr);
    let out = mcpod(&env, &["create", "mia", "--rootfs", &rootfs]);
    assert!(!out.ok);
    assert!(out.stderr.contains("already exists"), "{}", out.stderr);
    let out = mcpod(&env, &["create", "x", "--rootfs", "/nonexistent/rootfs"]);
    assert!(!out.ok);
    assert!(out.stderr.contains("rootfs"), "{}", out.stderr);

    // A relative --rootfs is taken from the current directory; the
    // container records the absolute path.
    let out = mcpod_in(
        &env,
        env.tmp.path(),
        &["create", "rel", "--rootfs", "rootfs", "--no-start"],
    );
    assert!(out.ok, "{}{}", out.stdout, out.stderr);
    let abs = std::fs::canonicalize(&env.rootfs).unwrap();
    assert!(out.stdout.contains(abs.to_str().unwrap()), "{}", out.stdout);
    let spec = env
        .client
        .get_container("mcp-rel")
        .await
        .unwrap()
        .spec
        .unwrap();
    let spec: serde_json::Value = serde_json::from_slice(&spec.value).unwrap();
    assert_eq!(spec["root"]["path"], abs.to_str().unwrap());
    let ls = mcpod(&env, &["ls"]);
    let line = row(&ls.stdout, "mcp-rel").unwrap_or_else(|| panic!("{}", ls.stdout));
    assert!(line.contains(" stopped "), "never started: {line}");
    let out = mcpod_in(
        &env,
        env.tmp.path(),
        &["create", "rel2", "--rootfs", "no-such-dir"],
    );
    assert!(!out.ok);
    assert!(
        out.stderr.contains("rootfs no-such-dir") && out.stderr.contains("existing directory"),
        "{}",
        out.stderr
    );
    assert!(mcpod(&env, &["delete", "rel"]).ok);

    let out = mcpod(&env, &["delete", "mia"]);
    assert!(out.ok, "{}{}", out.stdout, out.stderr);
    let ls = mcpod(&env, &["ls"]);
    assert!(row(&ls.stdout, "mcp-mia").is_none(), "{}", ls.stdout);
    assert!(env.client.list_containers(&[]).await.unwrap().is_empty());
    env.cleanup().await;
}

#[test]
fn an_unreachable_containerd_is_named_once_with_a_hint() {
    for args in [
        vec!["ls"],
        vec!["ls", "--socket", "/nonexistent/containerd.sock"],
    ] {
        let mut cmd = Command::new(common::DEMO);
        cmd.arg("bot").args(&args);
        let out = run(cmd);
        assert!(!out.ok);
        let socket = args
            .get(2)
            .copied()
            .unwrap_or("/run/containerd/containerd.sock");
        if std::path::Path::new(socket).exists() {
            continue; // a system containerd is there
        }
        let first = out.stderr.lines().next().unwrap_or_default();
        assert_eq!(
            first,
            format!(
                "mcpod bot: cannot connect to containerd at {socket}: \
                 no such socket (is containerd running, and listening there?)"
            ),
            "{}",
            out.stderr
        );
        assert_eq!(
            out.stderr.matches("cannot connect").count(),
            1,
            "{}",
            out.stderr
        );
        assert!(out.stderr.contains("--socket"), "{}", out.stderr);
    }
}

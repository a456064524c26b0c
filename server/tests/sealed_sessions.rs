//! Sealed legacy session ids between gateways sharing `[sessions]
//! key_file`, in-process: a session made on one is served by another,
//! within that one's session limits; an ended session is not re-created
//! where it ended; `per_session` targets and gateways without a key keep
//! their sessions to themselves; rotation keeps old ids working.

#![allow(clippy::unwrap_used)]

mod common;

use std::io::Write as _;
use std::path::{Path, PathBuf};

use common::{Gateway, call, demo_target};
use serde_json::json;

fn key(dir: &Path, name: &str) -> PathBuf {
    use std::io::Read as _;
    let mut bytes = [0u8; 32];
    std::fs::File::open("/dev/urandom")
        .unwrap()
        .read_exact(&mut bytes)
        .unwrap();
    let path = dir.join(name);
    std::fs::File::create(&path)
        .unwrap()
        .write_all(&bytes)
        .unwrap();
    path
}

fn sessions(key: &Path, old: &[&Path]) -> String {
    let old: Vec<String> = old
        .iter()
        .map(|p| format!("{:?}", p.display().to_string()))
        .collect();
    format!(
        "[sessions]\nkey_file = {:?}\nold_key_files = [{}]\n",
        key.display().to_string(),
        old.join(", ")
    )
}

async fn echo(gw: &Gateway, target: &str, sid: &str, id: u64) -> u16 {
    let r = gw
        .legacy(target, sid, call(json!(id), "echo", json!({"text": "hi"})))
        .await;
    if r.status == 200 {
        assert_eq!(r.text(), "hi", "{}", r.body);
    }
    r.status
}

#[tokio::test]
async fn a_session_made_on_one_gateway_is_served_by_another_with_the_key() {
    let dir = tempfile::tempdir().unwrap();
    let k = key(dir.path(), "k");
    let conf = format!("{}{}", demo_target("demo", ""), sessions(&k, &[]));
    let a = Gateway::start(&conf).await;
    let b = Gateway::start(&conf).await;
    let sid = a.initialize("demo").await;
    assert!(sid.starts_with("mcpod-s1."), "{sid}");
    assert_eq!(echo(&b, "demo", &sid, 1).await, 200);
    assert_eq!(echo(&a, "demo", &sid, 2).await, 200);
    // B's session answers what the gateway answers itself, and opens a GET
    // stream.
    let r = b
        .legacy(
            "demo",
            &sid,
            json!({"jsonrpc":"2.0","id":3,"method":"ping"}),
        )
        .await;
    assert_eq!(r.status, 200, "{}", r.body);
    let get = b
        .http
        .get(b.url("/mcp/demo"))
        .header("accept", "text/event-stream")
        .header("mcp-session-id", &sid)
        .send()
        .await
        .unwrap();
    assert_eq!(get.status(), 200);
    drop(get);
    // Ended on B: B does not re-create it; A, which cannot know, still
    // serves it until it expires.
    let del = b
        .http
        .delete(b.url("/mcp/demo"))
        .header("mcp-session-id", &sid)
        .send()
        .await
        .unwrap();
    assert_eq!(del.status(), 200);
    assert_eq!(echo(&b, "demo", &sid, 4).await, 404);
    assert_eq!(echo(&a, "demo", &sid, 5).await, 200);
    a.shutdown().await;
    b.shutdown().await;
}

#[tokio::test]
async fn re_creating_a_session_respects_the_session_limits() {
    let dir = tempfile::tempdir().unwrap();
    let k = key(dir.path(), "k");
    let keys = sessions(&k, &[]);
    let a = Gateway::start(&format!("{}{keys}", demo_target("demo", ""))).await;
    let b = Gateway::start(&format!(
        "[limits]\nmax_sessions_per_target = 1\n{}{keys}",
        demo_target("demo", "")
    ))
    .await;
    let first = a.initialize("demo").await;
    let second = a.initialize("demo").await;
    assert_eq!(echo(&b, "demo", &first, 1).await, 200);
    // B has its one session: the second is refused as a new one would be.
    let r = b
        .legacy(
            "demo",
            &second,
            call(json!(2), "echo", json!({"text": "hi"})),
        )
        .await;
    assert_eq!(r.status, 503, "{}", r.body);
    assert!(r.header("retry-after").is_some());
    assert_eq!(echo(&a, "demo", &second, 3).await, 200);
    a.shutdown().await;
    b.shutdown().await;
}

#[tokio::test]
async fn per_session_targets_and_gateways_without_the_key_keep_sessions_to_themselves() {
    let dir = tempfile::tempdir().unwrap();
    let k = key(dir.path(), "k");
    let conf = format!(
        "{}{}{}",
        demo_target("demo", ""),
        demo_target("own", "sharing = \"per_session\""),
        sessions(&k, &[])
    );
    let a = Gateway::start(&conf).await;
    let b = Gateway::start(&conf).await;
    // A per_session backend lives in its gateway: a random id, 404 elsewhere.
    let own = a.initialize("own").await;
    assert!(!own.starts_with("mcpod-s1."), "{own}");
    assert_eq!(echo(&a, "own", &own, 1).await, 200);
    assert_eq!(echo(&b, "own", &own, 2).await, 404);
    // A sealed id of the shared target, on the per_session one: 404.
    let shared = a.initialize("demo").await;
    assert_eq!(echo(&b, "own", &shared, 3).await, 404);
    // Without a key: random ids, known to their gateway only.
    let plain = Gateway::start(&demo_target("demo", "")).await;
    let sid = plain.initialize("demo").await;
    assert_eq!(sid.len(), 32, "{sid}");
    assert_eq!(echo(&b, "demo", &sid, 4).await, 404);
    assert_eq!(echo(&plain, "demo", &shared, 5).await, 404);
    for gw in [a, b, plain] {
        gw.shutdown().await;
    }
}

#[tokio::test]
async fn after_a_key_rotation_ids_sealed_with_the_old_key_still_work() {
    let dir = tempfile::tempdir().unwrap();
    let old = key(dir.path(), "old");
    let new = key(dir.path(), "new");
    let before = Gateway::start(&format!(
        "{}{}",
        demo_target("demo", ""),
        sessions(&old, &[])
    ))
    .await;
    let rotated = Gateway::start(&format!(
        "{}{}",
        demo_target("demo", ""),
        sessions(&new, &[&old])
    ))
    .await;
    let dropped = Gateway::start(&format!(
        "{}{}",
        demo_target("demo", ""),
        sessions(&new, &[])
    ))
    .await;
    let sid = before.initialize("demo").await;
    assert_eq!(echo(&rotated, "demo", &sid, 1).await, 200);
    assert_eq!(echo(&dropped, "demo", &sid, 2).await, 404);
    let fresh = rotated.initialize("demo").await;
    assert_eq!(echo(&dropped, "demo", &fresh, 3).await, 200);
    for gw in [before, rotated, dropped] {
        gw.shutdown().await;
    }
}

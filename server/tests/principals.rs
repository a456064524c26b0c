//! What one client may do to another's requests: ids in flight are unique
//! per legacy session, so a cancellation names exactly one call.

#![allow(clippy::unwrap_used, missing_docs)]

mod common;

use std::sync::Arc;
use std::time::{Duration, Instant};

use common::{Gateway, call, demo_target, stats};
use serde_json::json;

#[tokio::test]
async fn a_second_request_with_an_id_in_flight_is_refused_and_a_cancel_names_the_first() {
    let gw = Arc::new(Gateway::start(&demo_target("demo", "era = \"legacy\"")).await);
    let sid = gw.initialize("demo").await;
    let first = {
        let (gw, sid) = (gw.clone(), sid.clone());
        tokio::spawn(async move {
            gw.legacy("demo", &sid, call(json!(7), "sleep", json!({"ms": 20_000})))
                .await
        })
    };
    // Wait until the first call is with the backend.
    let until = Instant::now() + Duration::from_secs(10);
    while stats(&gw, "demo").await["in_flight"].as_u64().unwrap_or(0) == 0 {
        assert!(Instant::now() < until, "the first call never reached the backend");
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    // The same id again, in the same session: -32600, and nothing sent.
    let second = gw
        .legacy("demo", &sid, call(json!(7), "echo", json!({"text": "twin"})))
        .await;
    assert_eq!(second.status, 400, "{}", second.body);
    assert_eq!(second.code(), Some(-32600), "{}", second.body);
    assert_eq!(second.json()["id"], 7);
    assert!(second.body.contains("already in use"), "{}", second.body);
    // Another session may use id 7 at the same time.
    let other = gw.initialize("demo").await;
    let r = gw
        .legacy("demo", &other, call(json!(7), "echo", json!({"text": "mine"})))
        .await;
    assert_eq!(r.text(), "mine");
    // The cancellation names the first call, which ends at once.
    let cancel = gw
        .legacy(
            "demo",
            &sid,
            json!({"jsonrpc":"2.0","method":"notifications/cancelled","params":{"requestId":7}}),
        )
        .await;
    assert_eq!(cancel.status, 202);
    let ended = tokio::time::timeout(Duration::from_secs(10), first)
        .await
        .expect("the cancelled call did not end")
        .unwrap();
    assert_eq!(ended.json()["id"], 7, "{}", ended.body);
    assert!(ended.json()["error"].is_object(), "{}", ended.body);
    // Id 7 is free again.
    let again = gw
        .legacy("demo", &sid, call(json!(7), "echo", json!({"text": "free"})))
        .await;
    assert_eq!(again.text(), "free");
}

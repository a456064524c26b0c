//! Every error path of `/mcp/{target}`: HTTP status and JSON-RPC code.

#![allow(clippy::unwrap_used, missing_docs)]

mod common;

use common::{Gateway, MODERN, call, demo_target};
use serde_json::json;

const M: &str = "/mcp/demo";

fn modern_headers(method: &str) -> Vec<(&str, &str)> {
    vec![("mcp-protocol-version", MODERN), ("mcp-method", method)]
}

fn meta() -> serde_json::Value {
    json!({"io.modelcontextprotocol/protocolVersion": MODERN, "io.modelcontextprotocol/clientCapabilities": {}})
}

#[tokio::test]
async fn malformed_bodies_and_headers() {
    let gw = Gateway::start(&format!(
        "[limits]\nmax_body_bytes = 4096\n{}",
        demo_target("demo", "")
    ))
    .await;
    let json_headers = [("content-type", "application/json")];
    type Case<'a> = (&'a str, Vec<(&'a str, &'a str)>, String, u16, Option<i64>);
    let cases: Vec<Case<'_>> = vec![
        (
            "not json",
            json_headers.to_vec(),
            "{nope".into(),
            400,
            Some(-32700),
        ),
        (
            "batch",
            json_headers.to_vec(),
            r#"[{"jsonrpc":"2.0","id":1,"method":"ping"}]"#.into(),
            400,
            Some(-32600),
        ),
        (
            "not an object",
            json_headers.to_vec(),
            "42".into(),
            400,
            Some(-32600),
        ),
        (
            "jsonrpc 1.0",
            json_headers.to_vec(),
            r#"{"jsonrpc":"1.0","id":1,"method":"ping"}"#.into(),
            400,
            Some(-32600),
        ),
        (
            "no method",
            json_headers.to_vec(),
            r#"{"jsonrpc":"2.0","id":1}"#.into(),
            400,
            Some(-32600),
        ),
        (
            "empty method",
            json_headers.to_vec(),
            r#"{"jsonrpc":"2.0","id":1,"method":""}"#.into(),
            400,
            Some(-32601),
        ),
        (
            "wrong content type",
            vec![("content-type", "text/plain")],
            r#"{"jsonrpc":"2.0","id":1,"method":"ping"}"#.into(),
            415,
            Some(-32600),
        ),
        (
            "no content type",
            vec![],
            r#"{"jsonrpc":"2.0","id":1,"method":"ping"}"#.into(),
            415,
            Some(-32600),
        ),
        (
            "too large",
            json_headers.to_vec(),
            format!(
                r#"{{"jsonrpc":"2.0","id":1,"method":"x","params":{{"p":"{}"}}}}"#,
                "x".repeat(5000)
            ),
            413,
            Some(-32600),
        ),
        (
            "legacy without session",
            json_headers.to_vec(),
            r#"{"jsonrpc":"2.0","id":1,"method":"tools/list"}"#.into(),
            400,
            Some(-32600),
        ),
    ];
    for (name, headers, body, status, code) in cases {
        let r = gw.post_raw(M, &headers, body).await;
        assert_eq!(r.status, status, "{name}: {}", r.body);
        assert_eq!(
            r.header("content-type").as_deref(),
            Some("application/json"),
            "{name}"
        );
        assert_eq!(r.code(), code, "{name}: {}", r.body);
    }
    let unknown = gw
        .post(
            M,
            &[("mcp-session-id", "0000")],
            &json!({"jsonrpc":"2.0","id":1,"method":"tools/list"}),
        )
        .await;
    assert_eq!((unknown.status, unknown.code()), (404, Some(-32001)));
    let no_target = gw
        .post(
            "/mcp/nope",
            &[],
            &json!({"jsonrpc":"2.0","id":1,"method":"ping"}),
        )
        .await;
    assert_eq!(no_target.status, 404);
    gw.shutdown().await;
}

#[tokio::test]
async fn accept_and_notifications() {
    let gw = Gateway::demo().await;
    let sid = gw.initialize("demo").await;
    let r = gw
        .post_raw(
            M,
            &[
                ("content-type", "application/json"),
                ("accept", "text/html"),
                ("mcp-session-id", &sid),
            ],
            call(json!(1), "echo", json!({"text":"x"})).to_string(),
        )
        .await;
    assert_eq!((r.status, r.code()), (406, Some(-32600)));
    // Only SSE accepted: the answer comes as an event stream.
    let r = gw
        .post_raw(
            M,
            &[
                ("content-type", "application/json"),
                ("accept", "text/event-stream"),
                ("mcp-session-id", &sid),
            ],
            call(json!(1), "echo", json!({"text":"x"})).to_string(),
        )
        .await;
    assert_eq!(r.status, 200);
    assert!(r.is_sse());
    assert_eq!(r.text(), "x");
    // A notification: 202, empty body (both eras).
    let n = gw
        .legacy(
            "demo",
            &sid,
            json!({"jsonrpc":"2.0","method":"notifications/roots/list_changed"}),
        )
        .await;
    assert_eq!((n.status, n.body.as_str()), (202, ""));
    let n = gw
        .post(M, &modern_headers("notifications/roots/list_changed"), &json!({"jsonrpc":"2.0","method":"notifications/roots/list_changed","params":{"_meta":meta()}}))
        .await;
    assert_eq!((n.status, n.body.as_str()), (202, ""));
    // GET on a legacy session without Accept: text/event-stream.
    let g = gw
        .http
        .get(gw.url(M))
        .header("mcp-session-id", &sid)
        .header("accept", "application/json")
        .send()
        .await
        .unwrap();
    assert_eq!(g.status(), 406);
    // Legacy GET without a session: 400.
    let g = gw
        .http
        .get(gw.url(M))
        .header("mcp-protocol-version", "2025-06-18")
        .send()
        .await
        .unwrap();
    assert_eq!(g.status(), 400);
    gw.shutdown().await;
}

#[tokio::test]
async fn modern_header_rules() {
    let gw = Gateway::demo().await;
    let body = |method: &str, params: serde_json::Value| json!({"jsonrpc":"2.0","id":9,"method":method,"params":params});
    let echo = json!({"name":"echo","arguments":{"text":"x"},"_meta":meta()});

    // _meta version differs from the header.
    let mut other = echo.clone();
    other["_meta"]["io.modelcontextprotocol/protocolVersion"] = json!("2025-11-25");
    let r = gw
        .post(
            M,
            &[
                ("mcp-protocol-version", MODERN),
                ("mcp-method", "tools/call"),
                ("mcp-name", "echo"),
            ],
            &body("tools/call", other),
        )
        .await;
    assert_eq!((r.status, r.code()), (400, Some(-32020)), "{}", r.body);
    assert_eq!(r.json()["id"], 9);

    // _meta version but no header.
    let r = gw
        .post(
            M,
            &[("mcp-method", "tools/call"), ("mcp-name", "echo")],
            &body("tools/call", echo.clone()),
        )
        .await;
    assert_eq!((r.status, r.code()), (400, Some(-32020)), "{}", r.body);

    // Unsupported version: -32022 with data.supported and data.requested.
    let mut future = echo.clone();
    future["_meta"]["io.modelcontextprotocol/protocolVersion"] = json!("2099-01-01");
    let r = gw
        .post(
            M,
            &[
                ("mcp-protocol-version", "2099-01-01"),
                ("mcp-method", "tools/call"),
                ("mcp-name", "echo"),
            ],
            &body("tools/call", future),
        )
        .await;
    assert_eq!((r.status, r.code()), (400, Some(-32022)), "{}", r.body);
    let v = r.json();
    assert!(
        v["error"]["data"]["supported"]
            .as_array()
            .unwrap()
            .contains(&json!(MODERN))
    );
    assert_eq!(v["error"]["data"]["requested"], "2099-01-01");

    // Mcp-Method missing, mismatched; Mcp-Name missing, mismatched, bad base64.
    for headers in [
        vec![("mcp-protocol-version", MODERN), ("mcp-name", "echo")],
        vec![
            ("mcp-protocol-version", MODERN),
            ("mcp-method", "tools/list"),
            ("mcp-name", "echo"),
        ],
        vec![
            ("mcp-protocol-version", MODERN),
            ("mcp-method", "tools/call"),
        ],
        vec![
            ("mcp-protocol-version", MODERN),
            ("mcp-method", "tools/call"),
            ("mcp-name", "add"),
        ],
        vec![
            ("mcp-protocol-version", MODERN),
            ("mcp-method", "tools/call"),
            ("mcp-name", "=?base64?***?="),
        ],
        vec![
            ("mcp-protocol-version", MODERN),
            ("mcp-method", "tools/call"),
            ("mcp-name", "=?base64?YWRk?="),
        ],
    ] {
        let r = gw
            .post(M, &headers, &body("tools/call", echo.clone()))
            .await;
        assert_eq!(
            (r.status, r.code()),
            (400, Some(-32020)),
            "{headers:?}: {}",
            r.body
        );
    }

    // Unknown method: 404 + -32601.
    let r = gw
        .post(
            M,
            &modern_headers("ping"),
            &body("ping", json!({"_meta":meta()})),
        )
        .await;
    assert_eq!((r.status, r.code()), (404, Some(-32601)), "{}", r.body);

    // A modern client's GET and DELETE: 405.
    let g = gw
        .http
        .get(gw.url(M))
        .header("mcp-protocol-version", MODERN)
        .send()
        .await
        .unwrap();
    assert_eq!(g.status(), 405);
    assert_eq!(g.headers()["allow"], "POST");
    let d = gw
        .http
        .delete(gw.url(M))
        .header("mcp-protocol-version", MODERN)
        .send()
        .await
        .unwrap();
    assert_eq!(d.status(), 405);
    gw.shutdown().await;
}

#[tokio::test]
async fn limits_answer_429_and_503_with_json_rpc_errors() {
    let gw = Gateway::start(&format!(
        "[limits]\nmax_calls_per_session = 1\nmax_sessions_per_target = 2\n{}{}",
        demo_target("demo", ""),
        demo_target("narrow", "max_calls_in_flight = 1"),
    ))
    .await;
    let sid = gw.initialize("demo").await;
    let slow = gw.legacy("demo", &sid, call(json!(1), "sleep", json!({"ms": 1500})));
    let second = async {
        tokio::time::sleep(std::time::Duration::from_millis(400)).await;
        gw.legacy("demo", &sid, call(json!(2), "echo", json!({"text":"x"})))
            .await
    };
    let (first, second) = tokio::join!(slow, second);
    assert_eq!(first.text(), "slept 1500 ms");
    assert_eq!(
        (second.status, second.code()),
        (429, Some(-32000)),
        "{}",
        second.body
    );
    assert_eq!(second.json()["id"], 2);
    assert!(second.header("retry-after").is_some());

    // Sessions per target.
    gw.initialize("demo").await;
    let r = gw
        .post(M, &[], &json!({"jsonrpc":"2.0","id":1,"method":"initialize","params":{"protocolVersion":"2025-06-18","capabilities":{},"clientInfo":{"name":"t","version":"1"}}}))
        .await;
    assert_eq!((r.status, r.code()), (503, Some(-32000)), "{}", r.body);

    // Calls in flight per target.
    let slow = gw.modern(
        "narrow",
        json!(1),
        "tools/call",
        json!({"name":"sleep","arguments":{"ms":1500}}),
    );
    let second = async {
        tokio::time::sleep(std::time::Duration::from_millis(400)).await;
        gw.modern(
            "narrow",
            json!(2),
            "tools/call",
            json!({"name":"echo","arguments":{"text":"x"}}),
        )
        .await
    };
    let (first, second) = tokio::join!(slow, second);
    assert_eq!(first.status, 200);
    assert_eq!(
        (second.status, second.code()),
        (503, Some(-32000)),
        "{}",
        second.body
    );
    gw.shutdown().await;
}

#[tokio::test]
async fn calls_past_their_deadline_end_with_a_timeout_error() {
    let gw = Gateway::start(&demo_target("demo", "call_timeout = \"300ms\"")).await;
    let sid = gw.initialize("demo").await;
    let r = gw
        .legacy(
            "demo",
            &sid,
            call(json!("slow"), "sleep", json!({"ms": 5000})),
        )
        .await;
    assert_eq!(r.status, 200);
    assert_eq!(r.json()["id"], "slow");
    assert_eq!(r.code(), Some(-32001), "{}", r.body);
    // The backend was told to stop, and the next call is served.
    let r = gw
        .legacy("demo", &sid, call(json!(2), "echo", json!({"text":"next"})))
        .await;
    assert_eq!(r.text(), "next");
    gw.shutdown().await;
}

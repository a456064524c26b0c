//! One test (at least) per rule of the core, including each fault of the
//! system mcpod re-creates that a protocol core can have.
#![allow(clippy::unwrap_used)]

mod common;

use std::time::Duration;

use common::*;
use mcpod_core::{
    CloseReason, Config, Deadline, EndReason, Era, EraMode, Event, Outcome, PeerFault,
    RequestOptions, Route, SendError,
};
use serde_json::{Value, json};

fn ended(events: &[Event]) -> Vec<(mcpod_core::CallId, EndReason, Value)> {
    events
        .iter()
        .filter_map(|e| match e {
            Event::CallEnded {
                call,
                reason,
                frame,
            } => Some((
                *call,
                reason.clone(),
                serde_json::from_slice(frame).unwrap(),
            )),
            _ => None,
        })
        .collect()
}

// --- 2/3. Envelope and correlation with id rewriting -------------------------

#[test]
fn two_callers_with_the_same_id_get_their_own_answers() {
    let mut h = Harness::legacy_ready();
    let a = h
        .call(
            "1",
            "tools/call",
            Some(r#"{"name":"echo","arguments":{"text":"a"}}"#),
        )
        .unwrap();
    let b = h
        .call(
            "1",
            "tools/call",
            Some(r#"{"name":"echo","arguments":{"text":"b"}}"#),
        )
        .unwrap();
    let rx = h.take_rx();
    let (ida, idb) = (rx[0]["id"].clone(), rx[1]["id"].clone());
    assert_ne!(ida, idb, "backend ids collide");
    // The handshake used backend id 1; callers' id 1 must not be confused with it.
    assert_ne!(ida, json!(1));
    // Answer out of order.
    h.backend_says(&format!(
        r#"{{"jsonrpc":"2.0","id":{idb},"result":{{"text":"b"}}}}"#
    ));
    h.backend_says(&format!(
        r#"{{"jsonrpc":"2.0","id":{ida},"result":{{"text":"a"}}}}"#
    ));
    let ev = h.take_events();
    assert_eq!(
        response_for(&ev, a).unwrap(),
        r#"{"jsonrpc":"2.0","id":1,"result":{"text":"a"}}"#
    );
    assert_eq!(
        response_for(&ev, b).unwrap(),
        r#"{"jsonrpc":"2.0","id":1,"result":{"text":"b"}}"#
    );
}

#[test]
fn caller_ids_come_back_byte_exact_and_payloads_untouched() {
    let mut h = Harness::legacy_ready();
    for id in [
        "1",
        "\"1\"",
        "1152921504606846977",
        "1.5",
        "\"ü\\u00fc\"",
        "-7",
        "1e400",
    ] {
        let call = h.call(id, "x", None).unwrap();
        let bid = h.take_rx()[0]["id"].clone();
        let payload = r#"{"n":1.50,"big":123456789012345678901234567890,"s":"é"}"#;
        let error = r#"{"code":-32000,"message":"boom","data":{"keep":[1,2.0]}}"#;
        h.backend_says(&format!(
            r#"{{"jsonrpc":"2.0","id":{bid},"result":{payload}}}"#
        ));
        let got = response_for(&h.take_events(), call).unwrap();
        assert_eq!(
            got,
            format!(r#"{{"jsonrpc":"2.0","id":{id},"result":{payload}}}"#)
        );
        let call = h.call(id, "x", None).unwrap();
        let bid = h.take_rx()[0]["id"].clone();
        h.backend_says(&format!(
            r#"{{"jsonrpc":"2.0","id":{bid},"error":{error}}}"#
        ));
        let ev = h.take_events();
        let got = response_for(&ev, call).unwrap();
        assert_eq!(
            got,
            format!(r#"{{"jsonrpc":"2.0","id":{id},"error":{error}}}"#)
        );
        assert!(matches!(&ev[0], Event::Response { is_error: true, .. }));
    }
}

#[test]
fn invalid_caller_ids_are_refused() {
    let mut h = Harness::legacy_ready();
    for id in ["null", "{}", "[1]", "true"] {
        assert_eq!(h.call(id, "x", None), Err(SendError::InvalidId));
    }
}

#[test]
fn request_params_are_forwarded_raw_on_one_line() {
    let mut h = Harness::legacy_ready();
    h.call(
        "1",
        "tools/call",
        Some("{\n \"name\": \"echo\",\n \"arguments\": {\"text\": \"a\\nb\"}\n}"),
    )
    .unwrap();
    let rx = h.take_rx();
    assert_eq!(rx[0]["params"]["arguments"]["text"], "a\nb");
}

#[test]
fn progress_tokens_are_rewritten_and_routed_to_their_owner() {
    let mut h = Harness::legacy_ready();
    let p = r#"{"name":"progress","_meta":{"progressToken":"t"}}"#;
    let a = h.call("1", "tools/call", Some(p)).unwrap();
    let b = h.call("2", "tools/call", Some(p)).unwrap();
    let rx = h.take_rx();
    let (ta, tb) = (
        rx[0]["params"]["_meta"]["progressToken"].clone(),
        rx[1]["params"]["_meta"]["progressToken"].clone(),
    );
    assert_ne!(ta, tb, "progress tokens collide at the backend");
    assert_eq!(rx[0]["params"]["name"], "progress");
    h.backend_says(&format!(
        r#"{{"jsonrpc":"2.0","method":"notifications/progress","params":{{"progressToken":{tb},"progress":1,"total":2}}}}"#
    ));
    let ev = h.take_events();
    match &ev[..] {
        [
            Event::Notification {
                route: Route::Call(c),
                frame,
                ..
            },
        ] => {
            assert_eq!(*c, b);
            assert_eq!(
                std::str::from_utf8(frame).unwrap(),
                r#"{"jsonrpc":"2.0","method":"notifications/progress","params":{"progressToken":"t","progress":1,"total":2}}"#
            );
        }
        other => panic!("{other:?}"),
    }
    // Progress for an ended call is dropped, not misrouted.
    h.session.cancel(a, None, h.now);
    h.drain();
    h.take_events();
    h.backend_says(&format!(
        r#"{{"jsonrpc":"2.0","method":"notifications/progress","params":{{"progressToken":{ta},"progress":1}}}}"#
    ));
    assert!(h.take_events().is_empty());
    assert_eq!(h.session.stats().orphan_notifications, 1);
}

#[test]
fn responses_to_unknown_ids_are_dropped_and_counted() {
    let mut h = Harness::legacy_ready();
    h.backend_says(r#"{"jsonrpc":"2.0","id":999,"result":{}}"#);
    h.backend_says(r#"{"jsonrpc":"2.0","id":"init-1","result":{}}"#);
    assert_eq!(h.session.stats().unknown_responses, 2);
    assert!(
        h.take_events()
            .iter()
            .all(|e| matches!(e, Event::PeerFault(PeerFault::UnknownResponse(_))))
    );
}

// --- 1. Framing through the session ------------------------------------------

#[test]
fn garbage_and_oversize_lines_are_reported_and_skipped() {
    let mut h = Harness::new(Config {
        era_mode: EraMode::Legacy,
        max_frame_len: 256,
        ..Config::default()
    });
    h.take_rx();
    h.backend_says("this is not json");
    h.backend_says(&"x".repeat(1000));
    h.session.handle_input(b"\xff\xfe\n[1,2]\n", h.now);
    h.drain();
    h.backend_says(&format!(
        r#"{{"jsonrpc":"2.0","id":1,"result":{INIT_RESULT}}}"#
    ));
    let ev = h.take_events();
    let faults = ev
        .iter()
        .filter(|e| matches!(e, Event::PeerFault(_)))
        .count();
    assert_eq!(faults, 4, "{ev:?}");
    assert!(
        matches!(ev.last(), Some(Event::Ready(_))),
        "session did not survive garbage"
    );
    assert_eq!(h.session.stats().bad_frames, 4);
}

/// A legacy backend, ready, with a small frame limit.
fn small_frames(limit: usize) -> Harness {
    let mut h = Harness::new(Config {
        era_mode: EraMode::Legacy,
        max_frame_len: limit,
        ..Config::default()
    });
    let init = h.take_rx();
    h.backend_says(&format!(
        r#"{{"jsonrpc":"2.0","id":{},"result":{INIT_RESULT}}}"#,
        init[0]["id"]
    ));
    h.take_rx();
    h.take_events();
    h
}

#[test]
fn an_oversize_response_ends_its_call_at_once_and_the_backend_keeps_working() {
    let mut h = small_frames(1024);
    let big = h.call("\"big\"", "tools/call", None).unwrap();
    let other = h.call("7", "tools/call", None).unwrap();
    let rx = h.take_rx();
    let (big_bid, other_bid) = (rx[0]["id"].clone(), rx[1]["id"].clone());
    // Only the head of the answer has arrived: the call ends already.
    let head = format!(
        r#"{{"jsonrpc":"2.0","id":{big_bid},"result":{{"content":[{{"type":"text","text":""#
    );
    h.session.handle_input(head.as_bytes(), h.now);
    h.session.handle_input(&[b'x'; 2000], h.now);
    h.drain();
    let ev = h.take_events();
    let ends = ended(&ev);
    assert_eq!(ends.len(), 1, "{ev:?}");
    let (call, reason, frame) = &ends[0];
    assert_eq!(*call, big);
    assert_eq!(*reason, EndReason::ResponseTooLarge { limit: 1024 });
    assert_eq!(frame["id"], "big");
    assert_eq!(frame["error"]["code"], -32000);
    assert_eq!(
        frame["error"]["message"],
        "the backend's reply was larger than the 1024-byte limit"
    );
    assert!(ev.iter().any(|e| matches!(
        e,
        Event::PeerFault(PeerFault::Frame(mcpod_core::FrameError::Oversize {
            id: Some(_),
            ..
        }))
    )));
    // The backend answered: it is not told to cancel.
    assert!(h.take_rx().is_empty());
    assert_eq!(h.session.calls_in_flight(), 1);
    // The rest of the line is skipped; the next answer is read as usual.
    h.session.handle_input(&[b'x'; 5000], h.now);
    h.backend_says(r#""}]}}"#);
    h.backend_says(&format!(
        r#"{{"jsonrpc":"2.0","id":{other_bid},"result":{{}}}}"#
    ));
    assert_eq!(
        response_for(&h.take_events(), other).unwrap(),
        r#"{"jsonrpc":"2.0","id":7,"result":{}}"#
    );
    assert_eq!(h.session.stats().bad_frames, 1);
}

#[test]
fn an_oversize_response_with_its_id_last_ends_its_call_when_the_line_ends() {
    let mut h = small_frames(256);
    let call = h.call("1", "tools/call", None).unwrap();
    let bid = h.take_rx()[0]["id"].clone();
    // The TypeScript SDK writes `result` first, the id last.
    let line = format!(
        r#"{{"result":{{"id":999,"text":"{}"}},"jsonrpc":"2.0","id":{bid}}}"#,
        "y".repeat(1000)
    );
    let (a, b) = line.as_bytes().split_at(600);
    h.session.handle_input(a, h.now);
    h.drain();
    assert!(ended(&h.take_events()).is_empty(), "not known yet");
    h.session.handle_input(b, h.now);
    h.session.handle_input(b"\n", h.now);
    h.drain();
    let ends = ended(&h.take_events());
    assert_eq!(ends.len(), 1);
    assert_eq!(ends[0].0, call);
    assert_eq!(ends[0].1, EndReason::ResponseTooLarge { limit: 256 });
}

#[test]
fn an_oversize_line_naming_no_open_call_is_only_reported() {
    let mut h = small_frames(256);
    let call = h.call("1", "tools/call", None).unwrap();
    let bid = h.take_rx()[0]["id"].as_u64().unwrap();
    let pad = "z".repeat(500);
    for line in [
        // An id never issued, a server request with our call's number, a
        // notification, an id that is the caller's own.
        format!(r#"{{"jsonrpc":"2.0","id":{},"result":"{pad}"}}"#, bid + 100),
        format!(
            r#"{{"jsonrpc":"2.0","id":{bid},"method":"sampling/createMessage","params":"{pad}"}}"#
        ),
        format!(r#"{{"jsonrpc":"2.0","method":"notifications/message","params":"{pad}"}}"#),
        format!(r#"{{"jsonrpc":"2.0","id":"1","result":"{pad}"}}"#),
    ] {
        h.backend_says(&line);
    }
    let ev = h.take_events();
    assert!(ended(&ev).is_empty(), "{ev:?}");
    assert_eq!(ev.len(), 4, "{ev:?}");
    assert_eq!(h.session.calls_in_flight(), 1);
    h.backend_says(&format!(r#"{{"jsonrpc":"2.0","id":{bid},"result":{{}}}}"#));
    assert!(response_for(&h.take_events(), call).is_some());
}

#[test]
fn an_oversize_handshake_result_fails_the_handshake_at_once() {
    let mut h = Harness::new(Config {
        era_mode: EraMode::Legacy,
        max_frame_len: 64,
        ..Config::default()
    });
    let queued = h.call("1", "tools/list", None).unwrap();
    let init = h.take_rx();
    h.backend_says(&format!(
        r#"{{"jsonrpc":"2.0","id":{},"result":{{"instructions":"{}"}}}}"#,
        init[0]["id"],
        "i".repeat(100)
    ));
    let ev = h.take_events();
    let ends = ended(&ev);
    assert_eq!(ends.len(), 1);
    assert_eq!(ends[0].0, queued);
    match h.session.close_reason() {
        Some(CloseReason::HandshakeFailed(why)) => {
            assert!(why.contains("larger than the 64-byte limit"), "{why}")
        }
        other => panic!("{other:?}"),
    }
}

#[test]
fn timeouts_beyond_the_clock_mean_none_and_never_panic() {
    let mut h = Harness::new(Config {
        era_mode: EraMode::Legacy,
        handshake_timeout: Duration::MAX,
        default_call_timeout: Duration::MAX,
        ..Config::default()
    });
    assert_eq!(h.session.poll_timeout(), None);
    h.call("1", "m", None).unwrap();
    h.call_with(
        "2",
        "m",
        None,
        RequestOptions {
            deadline: Deadline::After(Duration::MAX),
            ..Default::default()
        },
    )
    .unwrap();
    assert_eq!(h.session.poll_timeout(), None);
    assert_eq!(h.session.calls_in_flight(), 2);
}

#[test]
fn input_split_anywhere_gives_the_same_result() {
    let mut h = Harness::legacy_ready();
    let call = h.call("\"x\"", "m", None).unwrap();
    let bid = h.take_rx()[0]["id"].clone();
    let line = format!("{{\"jsonrpc\":\"2.0\",\"id\":{bid},\"result\":{{\"a\":\"b\"}}}}\r\n");
    for byte in line.as_bytes() {
        h.session.handle_input(std::slice::from_ref(byte), h.now);
    }
    h.drain();
    assert_eq!(
        response_for(&h.take_events(), call).unwrap(),
        r#"{"jsonrpc":"2.0","id":"x","result":{"a":"b"}}"#
    );
}

// --- 4. Era detection and the handshake --------------------------------------

#[test]
fn auto_mode_takes_a_discover_result_as_modern() {
    let mut h = Harness::modern_ready();
    let info = h.session.backend_info().unwrap().clone();
    assert_eq!(info.era, Era::Modern);
    assert_eq!(info.protocol_version, "2026-07-28");
    assert_eq!(
        info.server_info.as_ref().unwrap().get(),
        r#"{"name":"modern","version":"2"}"#
    );
    // A legacy-style caller's request gets the modern `_meta` it lacks.
    h.call("1", "tools/list", None).unwrap();
    h.call(
        "2",
        "tools/call",
        Some(r#"{"name":"echo","_meta":{"progressToken":5}}"#),
    )
    .unwrap();
    let rx = h.take_rx();
    assert_eq!(
        rx[0]["params"]["_meta"]["io.modelcontextprotocol/protocolVersion"],
        "2026-07-28"
    );
    assert_eq!(
        rx[1]["params"]["_meta"]["io.modelcontextprotocol/protocolVersion"],
        "2026-07-28"
    );
    assert!(rx[1]["params"]["_meta"]["io.modelcontextprotocol/clientCapabilities"].is_object());
    assert_ne!(rx[1]["params"]["_meta"]["progressToken"], json!(5));
    // A modern caller's own `_meta` is left as it is.
    h.call("3", "tools/list", Some(r#"{"_meta":{"io.modelcontextprotocol/protocolVersion":"2026-07-28","io.modelcontextprotocol/clientCapabilities":{"x":1}}}"#)).unwrap();
    let rx = h.take_rx();
    assert_eq!(
        rx[0]["params"]["_meta"]["io.modelcontextprotocol/clientCapabilities"],
        json!({"x":1})
    );
}

#[test]
fn auto_mode_falls_back_to_initialize_on_any_other_error() {
    for code in [-32601, -32600, -32002, -1] {
        let mut h = Harness::new(Config::default());
        let probe = h.take_rx();
        h.backend_says(&format!(
            r#"{{"jsonrpc":"2.0","id":{},"error":{{"code":{code},"message":"no"}}}}"#,
            probe[0]["id"]
        ));
        let rx = h.take_rx();
        assert_eq!(rx[0]["method"], "initialize", "code {code}");
        assert_eq!(rx[0]["params"]["protocolVersion"], "2025-11-25");
        assert_eq!(rx[0]["params"]["clientInfo"]["name"], "mcpod");
        h.backend_says(&format!(
            r#"{{"jsonrpc":"2.0","id":{},"result":{INIT_RESULT}}}"#,
            rx[0]["id"]
        ));
        assert_eq!(h.take_rx()[0]["method"], "notifications/initialized");
        assert_eq!(h.session.backend_info().unwrap().era, Era::Legacy);
    }
}

#[test]
fn auto_mode_falls_back_after_the_probe_timeout_but_takes_a_late_discover_result() {
    let mut h = Harness::new(Config {
        probe_timeout: Duration::from_secs(2),
        ..Config::default()
    });
    let probe = h.take_rx();
    h.advance(Duration::from_millis(1999));
    assert!(h.take_rx().is_empty());
    h.advance(Duration::from_millis(1));
    let rx = h.take_rx();
    assert_eq!(rx[0]["method"], "initialize");
    // A slow modern server: its discover result comes after all (and it
    // will refuse the handshake, which it saw after the probe).
    h.backend_says(&format!(
        r#"{{"jsonrpc":"2.0","id":{},"result":{DISCOVER_RESULT}}}"#,
        probe[0]["id"]
    ));
    assert_eq!(h.session.backend_info().unwrap().era, Era::Modern);
    h.backend_says(&format!(
        r#"{{"jsonrpc":"2.0","id":{},"error":{{"code":-32600,"message":"this connection serves 2026-07-28"}}}}"#,
        rx[0]["id"]
    ));
    assert_eq!(h.session.stats().late_responses, 1);
    assert_eq!(h.session.backend_info().unwrap().era, Era::Modern);
}

#[test]
fn a_refused_fallback_waits_for_the_late_probe_then_fails_only_without_it() {
    for probe_answers in [true, false] {
        let mut h = Harness::new(Config {
            probe_timeout: Duration::from_secs(2),
            handshake_timeout: Duration::from_secs(5),
            ..Config::default()
        });
        let probe = h.take_rx();
        h.advance(Duration::from_secs(2));
        let init = h.take_rx();
        assert_eq!(init[0]["method"], "initialize");
        h.backend_says(&format!(
            r#"{{"jsonrpc":"2.0","id":{},"error":{{"code":-32600,"message":"this connection serves 2026-07-28"}}}}"#,
            init[0]["id"]
        ));
        assert!(
            h.session.backend_info().is_none(),
            "still waiting for the probe"
        );
        assert!(h.session.poll_timeout().is_some());
        if probe_answers {
            h.advance(Duration::from_secs(1));
            h.backend_says(&format!(
                r#"{{"jsonrpc":"2.0","id":{},"result":{DISCOVER_RESULT}}}"#,
                probe[0]["id"]
            ));
            assert_eq!(h.session.backend_info().unwrap().era, Era::Modern);
        } else {
            h.advance(Duration::from_secs(5));
            assert!(h.session.backend_info().is_none());
            assert!(h.take_rx().is_empty(), "no second initialize");
            let closed = h
                .take_events()
                .iter()
                .any(|e| format!("{e:?}").contains("server/discover timed out"));
            assert!(closed, "the handshake failed, saying why");
        }
    }
}

#[test]
fn unsupported_version_error_reprobes_in_the_backends_terms_and_never_falls_back() {
    let mut h = Harness::new(Config::default());
    let probe = h.take_rx();
    h.backend_says(&format!(
        r#"{{"jsonrpc":"2.0","id":{},"error":{{"code":-32022,"message":"unsupported","data":{{"supported":["2027-01-01"],"requested":"2026-07-28"}}}}}}"#,
        probe[0]["id"]
    ));
    let rx = h.take_rx();
    assert_eq!(rx[0]["method"], "server/discover");
    assert_eq!(
        rx[0]["params"]["_meta"]["io.modelcontextprotocol/protocolVersion"],
        "2027-01-01"
    );
    // A second -32022 fails the session rather than falling back to legacy.
    h.backend_says(&format!(
        r#"{{"jsonrpc":"2.0","id":{},"error":{{"code":-32022,"message":"unsupported","data":{{"supported":["2028-01-01"]}}}}}}"#,
        rx[0]["id"]
    ));
    assert!(h.take_rx().is_empty());
    assert!(matches!(
        h.session.close_reason(),
        Some(CloseReason::HandshakeFailed(_))
    ));
}

#[test]
fn modern_mode_does_not_fall_back() {
    let mut h = Harness::new(Config {
        era_mode: EraMode::Modern,
        ..Config::default()
    });
    let probe = h.take_rx();
    h.backend_says(&format!(
        r#"{{"jsonrpc":"2.0","id":{},"error":{{"code":-32601,"message":"no"}}}}"#,
        probe[0]["id"]
    ));
    assert!(h.take_rx().is_empty());
    assert!(matches!(
        h.session.close_reason(),
        Some(CloseReason::HandshakeFailed(_))
    ));
}

#[test]
fn calls_before_ready_are_queued_then_sent_and_failed_handshake_fails_them() {
    let mut h = Harness::new(Config {
        era_mode: EraMode::Legacy,
        ..Config::default()
    });
    let init = h.take_rx();
    let a = h.call("1", "tools/list", None).unwrap();
    h.session
        .send_notification("notifications/roots/list_changed", None)
        .unwrap();
    assert!(
        h.take_rx().is_empty(),
        "sent before the handshake completed"
    );
    h.backend_says(&format!(
        r#"{{"jsonrpc":"2.0","id":{},"result":{INIT_RESULT}}}"#,
        init[0]["id"]
    ));
    let rx = h.take_rx();
    let methods: Vec<_> = rx
        .iter()
        .map(|m| m["method"].as_str().unwrap().to_owned())
        .collect();
    assert_eq!(
        methods,
        [
            "notifications/initialized",
            "tools/list",
            "notifications/roots/list_changed"
        ]
    );
    h.backend_says(&format!(
        r#"{{"jsonrpc":"2.0","id":{},"result":{{}}}}"#,
        rx[1]["id"]
    ));
    assert!(response_for(&h.take_events(), a).is_some());

    let mut h = Harness::new(Config {
        era_mode: EraMode::Legacy,
        ..Config::default()
    });
    let init = h.take_rx();
    let b = h.call("1", "tools/list", None).unwrap();
    h.backend_says(&format!(
        r#"{{"jsonrpc":"2.0","id":{},"error":{{"code":-32603,"message":"bad"}}}}"#,
        init[0]["id"]
    ));
    let ev = ended(&h.take_events());
    assert_eq!(ev.len(), 1);
    assert_eq!(ev[0].0, b);
    assert!(
        matches!(&ev[0].1, EndReason::BackendClosed(CloseReason::HandshakeFailed(m)) if m.contains("bad"))
    );
    assert_eq!(ev[0].2["id"], json!(1));
    assert!(matches!(h.call("2", "x", None), Err(SendError::Closed(_))));
}

#[test]
fn the_gateway_never_reinitializes_a_running_backend() {
    let mut h = Harness::legacy_ready();
    assert_eq!(
        h.call(
            "1",
            "initialize",
            Some(r#"{"protocolVersion":"2025-06-18"}"#)
        ),
        Err(SendError::Reserved("initialize"))
    );
    h.session
        .send_notification("notifications/initialized", None)
        .unwrap();
    h.drain();
    assert!(
        h.take_rx().is_empty(),
        "duplicate initialize traffic reached the backend"
    );
}

#[test]
fn initialize_timeout_fails_the_session_without_cancelling_initialize() {
    let mut h = Harness::new(Config {
        era_mode: EraMode::Legacy,
        handshake_timeout: Duration::from_secs(5),
        ..Config::default()
    });
    h.take_rx();
    let a = h.call("1", "tools/list", None).unwrap();
    h.advance(Duration::from_secs(5));
    assert!(h.take_rx().is_empty(), "initialize must never be cancelled");
    let ev = ended(&h.take_events());
    assert_eq!(ev[0].0, a);
    assert!(matches!(
        h.session.close_reason(),
        Some(CloseReason::HandshakeFailed(_))
    ));
}

// --- 5. Deadlines and cancellation -------------------------------------------

#[test]
fn a_timed_out_call_ends_once_tells_the_backend_and_drops_the_late_answer() {
    let mut h = Harness::legacy_ready();
    let call = h
        .call_with(
            "\"q\"",
            "tools/call",
            None,
            RequestOptions {
                deadline: Deadline::After(Duration::from_secs(10)),
                ..Default::default()
            },
        )
        .unwrap();
    let bid = h.take_rx()[0]["id"].clone();
    assert_eq!(
        h.session.poll_timeout(),
        Some(h.now + Duration::from_secs(10))
    );
    h.advance(Duration::from_secs(10));
    let ev = ended(&h.take_events());
    assert_eq!(ev.len(), 1);
    assert_eq!((ev[0].0, ev[0].1.clone()), (call, EndReason::TimedOut));
    assert_eq!(ev[0].2["id"], "q");
    assert_eq!(ev[0].2["error"]["code"], -32001);
    let rx = h.take_rx();
    assert_eq!(rx[0]["method"], "notifications/cancelled");
    assert_eq!(rx[0]["params"]["requestId"], bid);
    h.backend_says(&format!(r#"{{"jsonrpc":"2.0","id":{bid},"result":{{}}}}"#));
    assert!(
        h.take_events()
            .iter()
            .all(|e| matches!(e, Event::PeerFault(PeerFault::LateResponse(_))))
    );
    assert_eq!(h.session.stats().late_responses, 1);
    // A spurious timeout does nothing.
    h.session.handle_timeout(h.now);
    h.drain();
    assert!(h.take_events().is_empty() && h.take_rx().is_empty());
}

#[test]
fn default_deadline_comes_from_config_and_never_means_never() {
    let mut h = Harness::legacy_ready();
    h.call("1", "a", None).unwrap();
    assert_eq!(
        h.session.poll_timeout(),
        Some(h.now + Config::default().default_call_timeout)
    );
    let mut h = Harness::legacy_ready();
    h.call_with(
        "1",
        "subscriptions/listen",
        None,
        RequestOptions {
            deadline: Deadline::Never,
            ..Default::default()
        },
    )
    .unwrap();
    assert_eq!(h.session.poll_timeout(), None);
}

#[test]
fn cancel_tells_the_backend_with_its_own_id_and_ends_the_call_once() {
    let mut h = Harness::legacy_ready();
    let call = h.call("7", "tools/call", None).unwrap();
    let bid = h.take_rx()[0]["id"].clone();
    assert!(!h.session.has_events(), "the call's start was drained");
    assert!(h.session.cancel(call, Some("client went away"), h.now));
    assert!(!h.session.cancel(call, None, h.now), "cancelled twice");
    // A driver that did not cancel learns it must drain.
    assert!(h.session.has_events());
    h.drain();
    assert!(!h.session.has_events());
    let rx = h.take_rx();
    assert_eq!(rx.len(), 1);
    assert_eq!(
        rx[0]["params"],
        json!({"requestId": bid, "reason": "client went away"})
    );
    let ev = ended(&h.take_events());
    assert_eq!(ev.len(), 1);
    assert_eq!(ev[0].1, EndReason::Cancelled);
    assert_eq!(h.session.calls_in_flight(), 0);
    assert_eq!(h.session.poll_timeout(), None);
}

#[test]
fn cancelling_a_queued_call_sends_nothing() {
    let mut h = Harness::new(Config {
        era_mode: EraMode::Legacy,
        ..Config::default()
    });
    let init = h.take_rx();
    let call = h.call("1", "a", None).unwrap();
    assert!(h.session.cancel(call, None, h.now));
    h.backend_says(&format!(
        r#"{{"jsonrpc":"2.0","id":{},"result":{INIT_RESULT}}}"#,
        init[0]["id"]
    ));
    let rx = h.take_rx();
    assert_eq!(rx.len(), 1, "{rx:?}");
    assert_eq!(rx[0]["method"], "notifications/initialized");
}

#[test]
fn callers_cancel_by_call_not_by_notification() {
    let mut h = Harness::legacy_ready();
    let r = h
        .session
        .send_notification("notifications/cancelled", Some(&raw(r#"{"requestId":1}"#)));
    assert_eq!(r, Err(SendError::UseCancel));
}

// --- 6. Server→client traffic -------------------------------------------------

#[test]
fn server_requests_are_surfaced_routed_and_answered_with_the_servers_id() {
    let mut h = Harness::legacy_ready();
    let call = h.call("1", "tools/call", None).unwrap();
    h.take_rx();
    h.backend_says(r#"{"jsonrpc":"2.0","id":"srv-1","method":"roots/list","params":{"x":1}}"#);
    let ev = h.take_events();
    let Some(Event::ServerRequest(req)) = ev.first() else {
        panic!("{ev:?}")
    };
    assert_eq!(req.method, "roots/list");
    assert_eq!(
        req.route,
        Route::Call(call),
        "the only call in flight owns it"
    );
    assert_eq!(req.params.as_ref().unwrap().get(), r#"{"x":1}"#);
    h.session
        .respond(req.id, Outcome::Result(&raw(r#"{"roots":[]}"#)), h.now)
        .unwrap();
    h.drain();
    assert_eq!(
        h.take_rx()[0],
        json!({"jsonrpc":"2.0","id":"srv-1","result":{"roots":[]}})
    );
    assert_eq!(
        h.session
            .respond(req.id, Outcome::Result(&raw("{}")), h.now),
        Err(SendError::UnknownServerRequest(req.id)),
        "answered twice"
    );
    // With two calls in flight, neither waiting, and no request just before,
    // the owner is ambiguous.
    h.call("2", "tools/call", None).unwrap();
    h.advance(Duration::from_millis(100));
    h.backend_says(r#"{"jsonrpc":"2.0","id":5,"method":"sampling/createMessage"}"#);
    let ev = h.take_events();
    let Some(Event::ServerRequest(req)) = ev.first() else {
        panic!("{ev:?}")
    };
    assert_eq!(req.route, Route::Broadcast);
    h.session
        .respond(
            req.id,
            Outcome::Error {
                code: -1,
                message: "no",
                data: Some(&raw("[1]")),
            },
            h.now,
        )
        .unwrap();
    h.drain();
    let rx = h.take_rx();
    assert_eq!(
        rx.last().unwrap(),
        &json!({"jsonrpc":"2.0","id":5,"error":{"code":-1,"message":"no","data":[1]}})
    );
}

#[test]
fn ping_is_answered_by_the_core_and_withdrawn_requests_are_reported() {
    let mut h = Harness::legacy_ready();
    h.backend_says(r#"{"jsonrpc":"2.0","id":"p","method":"ping"}"#);
    assert_eq!(
        h.take_rx()[0],
        json!({"jsonrpc":"2.0","id":"p","result":{}})
    );
    assert!(h.take_events().is_empty());
    h.backend_says(r#"{"jsonrpc":"2.0","id":9,"method":"elicitation/create"}"#);
    let Some(Event::ServerRequest(req)) = h.take_events().pop() else {
        panic!()
    };
    h.backend_says(
        r#"{"jsonrpc":"2.0","method":"notifications/cancelled","params":{"requestId":9}}"#,
    );
    assert!(matches!(h.take_events()[..], [Event::ServerRequestCancelled(id)] if id == req.id));
    assert_eq!(h.session.server_requests_pending(), 0);
}

#[test]
fn server_requests_beyond_the_bound_are_refused_to_the_backend() {
    let mut h = Harness::new(Config {
        era_mode: EraMode::Legacy,
        max_server_requests: 1,
        ..Config::default()
    });
    let init = h.take_rx();
    h.backend_says(&format!(
        r#"{{"jsonrpc":"2.0","id":{},"result":{INIT_RESULT}}}"#,
        init[0]["id"]
    ));
    h.take_rx();
    h.backend_says(r#"{"jsonrpc":"2.0","id":1,"method":"roots/list"}"#);
    h.backend_says(r#"{"jsonrpc":"2.0","id":2,"method":"roots/list"}"#);
    let rx = h.take_rx();
    assert_eq!(rx.len(), 1);
    assert_eq!(rx[0]["id"], 2);
    assert_eq!(rx[0]["error"]["code"], -32603);
}

#[test]
fn notifications_are_broadcast_or_routed_to_their_subscription() {
    let mut h = Harness::modern_ready();
    for line in [
        r#"{"jsonrpc":"2.0","method":"notifications/tools/list_changed"}"#,
        r#"{"jsonrpc":"2.0","method":"notifications/message","params":{"level":"info","data":"x"}}"#,
        r#"{"jsonrpc":"2.0","method":"notifications/resources/updated","params":{"uri":"a"}}"#,
    ] {
        h.backend_says(line);
        let ev = h.take_events();
        assert!(
            matches!(&ev[..], [Event::Notification { route: Route::Broadcast, frame, .. }] if frame == line.as_bytes()),
            "{ev:?}"
        );
    }
    let listen = h
        .call_with(
            "\"sub-a\"",
            "subscriptions/listen",
            Some(r#"{"notifications":{"toolsListChanged":true}}"#),
            RequestOptions {
                deadline: Deadline::Never,
                ..Default::default()
            },
        )
        .unwrap();
    let bid = h.take_rx()[0]["id"].clone();
    h.backend_says(&format!(
        r#"{{"jsonrpc":"2.0","method":"notifications/tools/list_changed","params":{{"_meta":{{"io.modelcontextprotocol/subscriptionId":{bid}}}}}}}"#
    ));
    let ev = h.take_events();
    match &ev[..] {
        [
            Event::Notification {
                route: Route::Call(c),
                frame,
                ..
            },
        ] => {
            assert_eq!(*c, listen);
            assert_eq!(
                std::str::from_utf8(frame).unwrap(),
                r#"{"jsonrpc":"2.0","method":"notifications/tools/list_changed","params":{"_meta":{"io.modelcontextprotocol/subscriptionId":"sub-a"}}}"#
            );
        }
        other => panic!("{other:?}"),
    }
}

// --- 7. Closing ---------------------------------------------------------------

#[test]
fn eof_ends_every_open_call_exactly_once_and_closing_is_sticky() {
    let mut h = Harness::legacy_ready();
    let calls: Vec<_> = (0..5)
        .map(|i| h.call(&i.to_string(), "a", None).unwrap())
        .collect();
    h.session.handle_eof(h.now);
    h.session.handle_eof(h.now);
    h.session.close(h.now);
    h.drain();
    let ev = h.take_events();
    let ended = ended(&ev);
    let mut ids: Vec<_> = ended.iter().map(|e| e.0).collect();
    ids.sort();
    assert_eq!(ids, calls);
    assert!(ended.iter().all(
        |e| matches!(e.1, EndReason::BackendClosed(CloseReason::Eof))
            && e.2["error"]["code"] == -32000
    ));
    assert_eq!(
        ev.iter().filter(|e| matches!(e, Event::Closed(_))).count(),
        1
    );
    assert_eq!(
        h.call("9", "a", None),
        Err(SendError::Closed(CloseReason::Eof))
    );
    assert!(h.session.send_notification("x", None).is_err());
    h.backend_says(r#"{"jsonrpc":"2.0","id":2,"result":{}}"#);
    assert!(h.take_events().is_empty());
    assert_eq!(h.session.poll_timeout(), None);
}

#[test]
fn local_close_discards_unsent_output() {
    let mut h = Harness::legacy_ready();
    let id = raw("1");
    h.session
        .send_request(
            mcpod_core::Request {
                id: &id,
                method: "a",
                params: None,
            },
            RequestOptions::default(),
            h.now,
        )
        .unwrap();
    h.session.close(h.now);
    h.drain();
    assert!(h.take_rx().is_empty());
}

// --- 8. Bounds ----------------------------------------------------------------

#[test]
fn calls_in_flight_are_bounded() {
    let mut h = Harness::new(Config {
        era_mode: EraMode::Legacy,
        max_calls_in_flight: 2,
        ..Config::default()
    });
    let init = h.take_rx();
    h.backend_says(&format!(
        r#"{{"jsonrpc":"2.0","id":{},"result":{INIT_RESULT}}}"#,
        init[0]["id"]
    ));
    h.call("1", "a", None).unwrap();
    h.call("2", "a", None).unwrap();
    assert_eq!(h.call("3", "a", None), Err(SendError::TooManyCalls(2)));
}

#[test]
fn a_backend_that_does_not_read_gets_a_clear_error_not_unbounded_memory() {
    let mut h = Harness::new(Config {
        era_mode: EraMode::Legacy,
        max_queued_output: 1024,
        ..Config::default()
    });
    let init = h.take_rx();
    h.backend_says(&format!(
        r#"{{"jsonrpc":"2.0","id":{},"result":{INIT_RESULT}}}"#,
        init[0]["id"]
    ));
    h.take_rx();
    // Nobody drains poll_transmit now: the backend is not reading.
    let params = raw(&format!(r#"{{"text":"{}"}}"#, "x".repeat(300)));
    let id = raw("1");
    let mut refused = None;
    for _ in 0..100 {
        let r = h.session.send_request(
            mcpod_core::Request {
                id: &id,
                method: "a",
                params: Some(&params),
            },
            RequestOptions::default(),
            h.now,
        );
        if let Err(e) = r {
            refused = Some(e);
            break;
        }
    }
    assert!(matches!(refused, Some(SendError::BackendNotReading(n)) if n >= 1024));
    assert!(h.session.queued_output() < 1024 + 400);
}

#[test]
fn the_not_ready_queue_is_bounded() {
    let mut h = Harness::new(Config {
        era_mode: EraMode::Legacy,
        max_queued_before_ready: 2,
        ..Config::default()
    });
    h.call("1", "a", None).unwrap();
    h.session.send_notification("n", None).unwrap();
    assert_eq!(h.call("3", "a", None), Err(SendError::NotReadyQueueFull(2)));
    assert_eq!(
        h.session.send_notification("n", None),
        Err(SendError::NotReadyQueueFull(2))
    );
}

#[test]
fn a_log_message_goes_to_the_only_call_in_flight_else_to_everyone() {
    let mut h = Harness::legacy_ready();
    let log = r#"{"jsonrpc":"2.0","method":"notifications/message","params":{"level":"info","data":"x"}}"#;
    let only = h.call("1", "tools/call", None).unwrap();
    h.backend_says(log);
    let ev = h.take_events();
    assert!(
        matches!(&ev[..], [Event::Notification { route: Route::Call(c), .. }] if *c == only),
        "{ev:?}"
    );
    h.call("2", "tools/call", None).unwrap();
    h.backend_says(log);
    let ev = h.take_events();
    assert!(
        matches!(
            &ev[..],
            [Event::Notification {
                route: Route::Broadcast,
                ..
            }]
        ),
        "{ev:?}"
    );
}

#[test]
fn a_modern_backend_ends_a_listen_stream_with_cancelled() {
    let mut h = Harness::modern_ready();
    let listen = h
        .call_with(
            "\"sub\"",
            "subscriptions/listen",
            Some(r#"{"notifications":{"toolsListChanged":true}}"#),
            RequestOptions {
                deadline: Deadline::Never,
                ..Default::default()
            },
        )
        .unwrap();
    let bid = h.take_rx()[0]["id"].clone();
    h.backend_says(&format!(
        r#"{{"jsonrpc":"2.0","method":"notifications/cancelled","params":{{"requestId":{bid},"reason":"shutting down"}}}}"#
    ));
    let ev = ended(&h.take_events());
    assert_eq!(ev.len(), 1);
    assert_eq!(ev[0].0, listen);
    assert_eq!(ev[0].1, EndReason::EndedByBackend("shutting down".into()));
    assert_eq!(ev[0].2["id"], "sub");
    assert!(
        h.take_rx().is_empty(),
        "the backend must not be told to cancel what it ended"
    );
    assert_eq!(h.session.calls_in_flight(), 0);
}

#[test]
fn a_legacy_backends_cancelled_only_withdraws_its_own_requests() {
    let mut h = Harness::legacy_ready();
    let call = h.call("1", "tools/call", None).unwrap();
    let bid = h.take_rx()[0]["id"].clone();
    h.backend_says(&format!(
        r#"{{"jsonrpc":"2.0","method":"notifications/cancelled","params":{{"requestId":{bid}}}}}"#
    ));
    assert!(h.take_events().is_empty());
    assert_eq!(h.session.calls_in_flight(), 1);
    h.backend_says(&format!(r#"{{"jsonrpc":"2.0","id":{bid},"result":{{}}}}"#));
    assert!(response_for(&h.take_events(), call).is_some());
}

// --- Owners: one id space per client, attribution by owner -------------------

fn owned(owner: u64) -> RequestOptions {
    RequestOptions {
        owner: Some(mcpod_core::Owner(owner)),
        ..Default::default()
    }
}

#[test]
fn an_owner_cannot_have_two_calls_in_flight_with_one_id() {
    let mut h = Harness::legacy_ready();
    h.call_with("7", "tools/call", None, owned(1)).unwrap();
    assert_eq!(
        h.call_with("7", "tools/call", None, owned(1)),
        Err(SendError::DuplicateId("7".into()))
    );
    // Another owner, or the same id spelled as a string, is another call.
    h.call_with("7", "tools/call", None, owned(2)).unwrap();
    h.call_with(r#""7""#, "tools/call", None, owned(1)).unwrap();
    // Once the first call ends, its id is free again.
    let first = h.take_rx()[0]["id"].clone();
    h.backend_says(&format!(
        r#"{{"jsonrpc":"2.0","id":{first},"result":{{}}}}"#
    ));
    h.call_with("7", "tools/call", None, owned(1)).unwrap();
}

#[test]
fn cancel_caller_ends_that_owners_call_and_tells_the_backend() {
    let mut h = Harness::legacy_ready();
    let a = h.call_with("1", "tools/call", None, owned(1)).unwrap();
    let b = h.call_with("1", "tools/call", None, owned(2)).unwrap();
    h.take_rx();
    assert!(
        !h.session
            .cancel_caller(mcpod_core::Owner(3), "1", None, h.now)
    );
    assert!(
        h.session
            .cancel_caller(mcpod_core::Owner(2), " 1 ", Some("user"), h.now)
    );
    h.drain();
    let rx = h.take_rx();
    assert_eq!(rx[0]["method"], "notifications/cancelled");
    assert_eq!(rx[0]["params"]["requestId"], b.backend_id());
    assert_eq!(rx[0]["params"]["reason"], "user");
    let ends = ended(&h.take_events());
    assert_eq!(ends.len(), 1);
    assert_eq!((ends[0].0, ends[0].1.clone()), (b, EndReason::Cancelled));
    assert_eq!(ends[0].2["error"]["code"], -32800);
    assert_eq!(h.session.calls_in_flight(), 1, "{a} is still open");
    assert!(
        !h.session
            .cancel_caller(mcpod_core::Owner(2), "1", None, h.now),
        "ended once"
    );
}

#[test]
fn unrouted_traffic_goes_to_the_only_owner_with_calls_in_flight() {
    let mut h = Harness::legacy_ready();
    // An ownerless call (a stateless client) and two calls of owner 1.
    h.call("11", "tools/call", None).unwrap();
    h.call_with("12", "tools/call", None, owned(1)).unwrap();
    h.call_with("13", "tools/call", None, owned(1)).unwrap();
    h.backend_says(r#"{"jsonrpc":"2.0","id":"s1","method":"roots/list"}"#);
    h.backend_says(r#"{"jsonrpc":"2.0","method":"notifications/message","params":{"level":"info","data":"x"}}"#);
    let ev = h.take_events();
    assert!(
        matches!(&ev[0], Event::ServerRequest(r) if r.route == Route::Owner(mcpod_core::Owner(1))),
        "{ev:?}"
    );
    assert!(
        matches!(
            &ev[1],
            Event::Notification {
                route: Route::Owner(mcpod_core::Owner(1)),
                ..
            }
        ),
        "{ev:?}"
    );
    // A second owner makes it ambiguous.
    h.call_with("14", "tools/call", None, owned(2)).unwrap();
    h.backend_says(r#"{"jsonrpc":"2.0","id":"s2","method":"roots/list"}"#);
    let ev = h.take_events();
    assert!(
        matches!(&ev[0], Event::ServerRequest(r) if r.route == Route::Broadcast),
        "{ev:?}"
    );
}

// --- The 2026-07-28 envelope in the backend's terms ----------------------------

#[test]
fn a_legacy_backend_never_sees_the_envelope_keys_but_every_other_meta_key() {
    let mut h = Harness::legacy_ready();
    h.call(
        "1",
        "tools/call",
        Some(r#"{"name":"x","_meta":{"io.modelcontextprotocol/protocolVersion":"2026-07-28","io.modelcontextprotocol/clientCapabilities":{},"io.modelcontextprotocol/clientInfo":{"name":"c","version":"1"},"io.modelcontextprotocol/logLevel":"debug","progressToken":"t","traceparent":"00-ab-cd-01","vendor/x":[1.50]},"arguments":{"a":"io.modelcontextprotocol/protocolVersion"}}"#),
    )
    .unwrap();
    let sent = h.take_rx().pop().unwrap();
    let meta = &sent["params"]["_meta"];
    assert_eq!(
        meta.as_object().unwrap().keys().collect::<Vec<_>>(),
        ["progressToken", "traceparent", "vendor/x"]
    );
    assert_eq!(
        sent["params"]["arguments"]["a"],
        "io.modelcontextprotocol/protocolVersion"
    );
    // A `_meta` of envelope keys only goes away entirely.
    h.call(
        "2",
        "tools/list",
        Some(r#"{"_meta":{"io.modelcontextprotocol/protocolVersion":"2026-07-28","io.modelcontextprotocol/clientCapabilities":{}},"cursor":"c1"}"#),
    )
    .unwrap();
    let sent = h.take_rx().pop().unwrap();
    assert_eq!(sent["params"], json!({"cursor":"c1"}));
}

#[test]
fn a_modern_backend_gets_the_callers_envelope_or_one_filled_in() {
    let mut h = Harness::modern_ready();
    // The caller's own capabilities and info are kept; the version added.
    h.call(
        "1",
        "tools/list",
        Some(r#"{"_meta":{"io.modelcontextprotocol/clientCapabilities":{"sampling":{}},"io.modelcontextprotocol/clientInfo":{"name":"c","version":"1"}}}"#),
    )
    .unwrap();
    let meta = h.take_rx().pop().unwrap()["params"]["_meta"].clone();
    assert_eq!(
        meta["io.modelcontextprotocol/protocolVersion"],
        "2026-07-28"
    );
    assert_eq!(
        meta["io.modelcontextprotocol/clientCapabilities"],
        json!({"sampling":{}})
    );
    assert_eq!(meta["io.modelcontextprotocol/clientInfo"]["name"], "c");
    // A version without capabilities gets the configured ones.
    h.call(
        "2",
        "tools/list",
        Some(r#"{"_meta":{"io.modelcontextprotocol/protocolVersion":"2026-07-28"}}"#),
    )
    .unwrap();
    let meta = h.take_rx().pop().unwrap()["params"]["_meta"].clone();
    assert!(
        meta["io.modelcontextprotocol/clientCapabilities"].is_object(),
        "{meta}"
    );
}

#[test]
fn a_call_waiting_on_a_question_cannot_be_the_one_asking_the_next() {
    let mut h = Harness::legacy_ready();
    let parked = h.call("1", "tools/call", None).unwrap();
    h.backend_says(r#"{"jsonrpc":"2.0","id":"q1","method":"elicitation/create"}"#);
    let ev = h.take_events();
    assert!(matches!(&ev[0], Event::ServerRequest(r) if r.route == Route::Call(parked)));
    // Another call starts while the first waits for its answer: the next
    // question, after the burst window, is the new call's.
    let fresh = h.call("2", "tools/call", None).unwrap();
    h.advance(Duration::from_millis(100));
    h.backend_says(r#"{"jsonrpc":"2.0","id":"q2","method":"elicitation/create"}"#);
    let ev = h.take_events();
    assert!(
        matches!(&ev[0], Event::ServerRequest(r) if r.route == Route::Call(fresh)),
        "{ev:?}"
    );
    // Questions sent together go to the call that got the first of them.
    h.backend_says(r#"{"jsonrpc":"2.0","id":"q3","method":"sampling/createMessage"}"#);
    let ev = h.take_events();
    assert!(
        matches!(&ev[0], Event::ServerRequest(r) if r.route == Route::Call(fresh)),
        "{ev:?}"
    );
}

#[test]
fn a_listen_stream_never_takes_traffic_that_names_no_call() {
    let mut h = Harness::modern_ready();
    h.call_with(
        r#""listen""#,
        "subscriptions/listen",
        Some(r#"{"notifications":{"toolsListChanged":true}}"#),
        RequestOptions {
            deadline: Deadline::Never,
            ..Default::default()
        },
    )
    .unwrap();
    let call = h.call("7", "tools/call", None).unwrap();
    h.backend_says(r#"{"jsonrpc":"2.0","method":"notifications/message","params":{"level":"info","data":"x"}}"#);
    let ev = h.take_events();
    assert!(
        matches!(&ev[0], Event::Notification { route: Route::Call(c), .. } if *c == call),
        "the call, not the listen: {ev:?}"
    );
}

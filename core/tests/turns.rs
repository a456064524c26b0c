//! Asking calls ([`RequestOptions::may_ask`]) on a shared legacy backend:
//! they take turns, so that a server request with several calls in flight
//! belongs to the one asking call that runs; everything else proceeds.
#![allow(clippy::unwrap_used)]

mod common;

use std::time::Duration;

use common::*;
use mcpod_core::{
    CallId, Config, Deadline, EndReason, Event, Outcome, Owner, RequestOptions, Route, SendError,
    ServerRequest,
};
use serde_json::Value;

fn asking(owner: u64) -> RequestOptions {
    RequestOptions {
        owner: Some(Owner(owner)),
        may_ask: true,
        ..Default::default()
    }
}

fn plain(owner: u64) -> RequestOptions {
    RequestOptions {
        owner: Some(Owner(owner)),
        ..Default::default()
    }
}

/// The backend ids of the requests (not notifications) the backend got.
fn sent_ids(rx: &[Value]) -> Vec<u64> {
    rx.iter()
        .filter(|m| m.get("method").is_some() && m.get("id").is_some())
        .map(|m| m["id"].as_u64().unwrap())
        .collect()
}

fn ids(calls: &[CallId]) -> Vec<u64> {
    calls.iter().map(|c| c.backend_id()).collect()
}

/// The backend asks a question (a fresh id each time).
fn ask(h: &mut Harness, n: u32) -> ServerRequest {
    h.backend_says(&format!(
        r#"{{"jsonrpc":"2.0","id":"q{n}","method":"sampling/createMessage","params":{{"n":{n}}}}}"#
    ));
    let mut requests: Vec<ServerRequest> = h
        .take_events()
        .into_iter()
        .filter_map(|e| match e {
            Event::ServerRequest(r) => Some(r),
            _ => None,
        })
        .collect();
    assert_eq!(requests.len(), 1, "{requests:?}");
    requests.remove(0)
}

fn answer(h: &mut Harness, req: &ServerRequest) {
    h.session
        .respond(req.id, Outcome::Result(&raw(r#"{"ok":true}"#)), h.now)
        .unwrap();
    h.drain();
}

/// The backend answers call `call`.
fn finish(h: &mut Harness, call: CallId) {
    h.backend_says(&format!(
        r#"{{"jsonrpc":"2.0","id":{},"result":{{}}}}"#,
        call.backend_id()
    ));
}

fn answers_to_questions(rx: &[Value]) -> Vec<String> {
    rx.iter()
        .filter(|m| m.get("result").is_some() || m.get("error").is_some())
        .map(|m| m["id"].as_str().unwrap().to_owned())
        .collect()
}

fn ends(events: &[Event]) -> Vec<(CallId, EndReason)> {
    events
        .iter()
        .filter_map(|e| match e {
            Event::CallEnded { call, reason, .. } => Some((*call, reason.clone())),
            _ => None,
        })
        .collect()
}

#[test]
fn asking_calls_take_turns_while_other_calls_proceed() {
    let mut h = Harness::legacy_ready();
    let a = h.call_with("1", "tools/call", None, asking(1)).unwrap();
    let b = h.call_with("1", "tools/call", None, asking(2)).unwrap();
    let x = h.call_with("2", "tools/call", None, plain(1)).unwrap();
    let y = h.call("3", "tools/list", None).unwrap();
    assert_eq!(sent_ids(&h.take_rx()), ids(&[a, x, y]), "b waits its turn");
    assert_eq!(h.session.calls_waiting_for_turn(), 1);
    assert_eq!(h.session.calls_in_flight(), 4);
    // Other calls end without touching the turn.
    finish(&mut h, x);
    finish(&mut h, y);
    assert!(sent_ids(&h.take_rx()).is_empty());
    // The running asking call ends: the next one is sent.
    finish(&mut h, a);
    assert_eq!(sent_ids(&h.take_rx()), ids(&[b]));
    assert_eq!(h.session.calls_waiting_for_turn(), 0);
    assert!(response_for(&h.take_events(), a).is_some());
}

#[test]
fn a_question_with_several_calls_in_flight_goes_to_the_asking_call_that_runs() {
    // Without the flag, a question with several calls in flight, none
    // waiting, belongs to nobody in particular.
    let mut h = Harness::legacy_ready();
    for n in 1..=3 {
        h.call_with("1", "tools/call", None, plain(n)).unwrap();
    }
    h.advance(Duration::from_millis(100));
    assert_eq!(ask(&mut h, 1).route, Route::Broadcast);

    // With it, the one asking call that runs takes it, among any number
    // of other calls, and any number of asking calls waiting their turn.
    let mut h = Harness::legacy_ready();
    h.call_with("1", "tools/call", None, plain(1)).unwrap();
    let a = h.call_with("2", "tools/call", None, asking(2)).unwrap();
    h.call_with("3", "tools/call", None, plain(3)).unwrap();
    for n in 4..10 {
        h.call_with("4", "tools/call", None, asking(n)).unwrap();
    }
    h.call("5", "tools/list", None).unwrap();
    assert_eq!(ask(&mut h, 1).route, Route::Call(a));
}

#[test]
fn the_turn_passes_on_while_the_running_call_waits_for_an_answer() {
    let config = Config::default();
    let burst = config.burst_window;
    let mut h = Harness::legacy_ready_with(config);
    let other = h.call_with("9", "tools/call", None, plain(9)).unwrap();
    let a = h.call_with("1", "tools/call", None, asking(1)).unwrap();
    let b = h.call_with("1", "tools/call", None, asking(2)).unwrap();
    h.take_rx();
    let qa = ask(&mut h, 1);
    assert_eq!(qa.route, Route::Call(a));
    // Within the burst window more questions may come from a: b waits.
    assert_eq!(h.session.poll_timeout(), Some(h.now + burst));
    let qa2 = ask(&mut h, 2);
    assert_eq!(qa2.route, Route::Call(a), "sent together");
    assert!(sent_ids(&h.take_rx()).is_empty());
    // Once it is over, a waits for its answers, and b runs.
    h.advance(burst);
    assert_eq!(sent_ids(&h.take_rx()), ids(&[b]));
    let qb = ask(&mut h, 3);
    assert_eq!(qb.route, Route::Call(b), "a waits: it cannot be asking");
    // A question while both wait goes by the older rules: here the only
    // call not waiting.
    h.advance(burst);
    assert_eq!(ask(&mut h, 4).route, Route::Call(other));
}

#[test]
fn the_answer_that_lets_a_call_run_again_waits_for_the_running_one_to_ask_or_end() {
    let config = Config::default();
    let burst = config.burst_window;
    let mut h = Harness::legacy_ready_with(config);
    h.call_with("9", "tools/call", None, plain(9)).unwrap();
    let a = h.call_with("1", "tools/call", None, asking(1)).unwrap();
    let b = h.call_with("1", "tools/call", None, asking(2)).unwrap();
    let c = h.call_with("1", "tools/call", None, asking(3)).unwrap();
    h.take_rx();
    let qa = ask(&mut h, 1);
    h.advance(burst);
    assert_eq!(sent_ids(&h.take_rx()), ids(&[b]));
    // a's answer comes while b runs: held, so only one asking call runs.
    answer(&mut h, &qa);
    assert!(h.take_rx().is_empty());
    assert_eq!(h.session.answers_held(), 1);
    assert_eq!(
        h.session.server_requests_pending(),
        0,
        "answered for the caller"
    );
    // b asks: once its burst window is over, a gets its answer and runs
    // (an answer goes before a call that has not started).
    let qb = ask(&mut h, 2);
    assert_eq!(qb.route, Route::Call(b));
    assert!(h.take_rx().is_empty());
    h.advance(burst);
    assert_eq!(answers_to_questions(&h.take_rx()), ["q1"]);
    assert_eq!(h.session.answers_held(), 0);
    assert_eq!(ask(&mut h, 3).route, Route::Call(a), "a runs, b waits");
    // a ends while b still waits for its answer: the turn goes to c, and
    // b's answer now waits for c.
    finish(&mut h, a);
    assert_eq!(sent_ids(&h.take_rx()), ids(&[c]));
    answer(&mut h, &qb);
    assert!(h.take_rx().is_empty());
    finish(&mut h, c);
    assert_eq!(answers_to_questions(&h.take_rx()), ["q2"]);
}

#[test]
fn a_held_answer_goes_out_when_the_running_call_ends_or_after_answer_hold() {
    let config = Config::default();
    let (burst, hold) = (config.burst_window, config.answer_hold);
    let mut h = Harness::legacy_ready_with(config);
    let a = h.call_with("1", "tools/call", None, asking(1)).unwrap();
    let b = h.call_with("1", "tools/call", None, asking(2)).unwrap();
    let qa = ask(&mut h, 1);
    h.advance(burst);
    answer(&mut h, &qa);
    assert_eq!(h.session.answers_held(), 1);
    // b ends without asking: a's answer goes out.
    finish(&mut h, b);
    assert_eq!(answers_to_questions(&h.take_rx()), ["q1"]);
    finish(&mut h, a);

    // b runs and never asks: after `answer_hold` from when it began to run,
    // a's answer goes out anyway (a backend that works on one call at a
    // time would never get to b). Two asking calls run then: a question is
    // ambiguous, and refused rather than given to the wrong one.
    let a = h.call_with("2", "tools/call", None, asking(1)).unwrap();
    let b = h.call_with("2", "tools/call", None, asking(2)).unwrap();
    h.take_rx();
    let qa = ask(&mut h, 2);
    h.advance(burst);
    assert_eq!(sent_ids(&h.take_rx()), ids(&[b]));
    answer(&mut h, &qa);
    assert_eq!(h.session.poll_timeout(), Some(h.now + hold));
    h.advance(hold - Duration::from_millis(1));
    assert!(h.take_rx().is_empty());
    h.advance(Duration::from_millis(1));
    assert_eq!(answers_to_questions(&h.take_rx()), ["q2"]);
    h.advance(burst);
    assert_eq!(ask(&mut h, 3).route, Route::Broadcast);
    finish(&mut h, a);
    finish(&mut h, b);
    assert_eq!(h.session.calls_in_flight(), 0);
}

#[test]
fn a_held_answer_of_a_call_that_ends_goes_to_the_backend_at_once() {
    let config = Config::default();
    let burst = config.burst_window;
    let mut h = Harness::legacy_ready_with(config);
    let a = h.call_with("1", "tools/call", None, asking(1)).unwrap();
    h.call_with("1", "tools/call", None, asking(2)).unwrap();
    let qa = ask(&mut h, 1);
    h.advance(burst);
    answer(&mut h, &qa);
    h.take_rx();
    assert!(h.session.cancel(a, None, h.now));
    h.drain();
    let rx = h.take_rx();
    assert_eq!(answers_to_questions(&rx), ["q1"]);
    assert_eq!(rx.last().unwrap()["method"], "notifications/cancelled");
    assert_eq!(h.session.answers_held(), 0);
    assert_eq!(ends(&h.take_events()), [(a, EndReason::Cancelled)]);
}

#[test]
fn queued_asking_calls_keep_their_deadlines_and_end_exactly_once() {
    let mut h = Harness::legacy_ready();
    let a = h.call_with("1", "tools/call", None, asking(1)).unwrap();
    let soon = RequestOptions {
        deadline: Deadline::After(Duration::from_millis(100)),
        ..asking(2)
    };
    let b = h.call_with("1", "tools/call", None, soon).unwrap();
    let c = h.call_with("1", "tools/call", None, asking(3)).unwrap();
    let d = h.call_with("1", "tools/call", None, asking(4)).unwrap();
    h.take_rx();
    assert_eq!(h.session.calls_waiting_for_turn(), 3);
    // Cancelling a queued call ends it once; the backend never heard of it.
    assert!(h.session.cancel(c, Some("user"), h.now));
    assert!(!h.session.cancel(c, None, h.now), "ended once");
    assert!(
        !h.session.cancel_caller(Owner(3), "1", None, h.now),
        "and gone from its owner's ids"
    );
    h.drain();
    assert!(h.take_rx().is_empty());
    assert_eq!(ends(&h.take_events()), [(c, EndReason::Cancelled)]);
    // A queued call's deadline runs: it times out where it waits.
    h.advance(Duration::from_millis(100));
    assert!(h.take_rx().is_empty());
    let ended = h.take_events();
    assert_eq!(ends(&ended), [(b, EndReason::TimedOut)]);
    let Some(Event::CallEnded { frame, .. }) = ended.first() else {
        panic!("{ended:?}")
    };
    let frame: Value = serde_json::from_slice(frame).unwrap();
    assert_eq!(frame["id"], 1);
    assert_eq!(frame["error"]["code"], -32001);
    assert_eq!(h.session.calls_waiting_for_turn(), 1);
    // The turn goes to the one left.
    finish(&mut h, a);
    assert_eq!(sent_ids(&h.take_rx()), ids(&[d]));
    // EOF ends the running one once.
    h.session.handle_eof(h.now);
    h.drain();
    assert_eq!(
        ends(&h.take_events())
            .into_iter()
            .map(|(c, _)| c)
            .collect::<Vec<_>>(),
        [d]
    );
}

#[test]
fn eof_ends_the_queued_asking_calls_too() {
    let mut h = Harness::legacy_ready();
    let calls: Vec<CallId> = (1..=3)
        .map(|n| h.call_with("1", "tools/call", None, asking(n)).unwrap())
        .collect();
    h.session.handle_eof(h.now);
    h.drain();
    let mut ended: Vec<CallId> = ends(&h.take_events()).into_iter().map(|(c, _)| c).collect();
    ended.sort();
    assert_eq!(ended, calls);
    assert_eq!(h.session.calls_waiting_for_turn(), 0);
    assert_eq!(h.session.poll_timeout(), None);
}

#[test]
fn owners_take_turns_so_one_clients_many_calls_do_not_starve_another() {
    let mut h = Harness::legacy_ready();
    let first = h.call_with("0", "tools/call", None, asking(1)).unwrap();
    let mine: Vec<CallId> = (1..=3)
        .map(|n| {
            h.call_with(&n.to_string(), "tools/call", None, asking(1))
                .unwrap()
        })
        .collect();
    let theirs = h.call_with("1", "tools/call", None, asking(2)).unwrap();
    let stateless = h
        .call_with(
            "1",
            "tools/call",
            None,
            RequestOptions {
                may_ask: true,
                ..Default::default()
            },
        )
        .unwrap();
    h.take_rx();
    let mut order = Vec::new();
    let mut running = first;
    for _ in 0..5 {
        finish(&mut h, running);
        let sent = sent_ids(&h.take_rx());
        assert_eq!(sent.len(), 1, "{sent:?}");
        order.push(sent[0]);
        running = [&mine[..], &[theirs, stateless]]
            .concat()
            .into_iter()
            .find(|c| c.backend_id() == sent[0])
            .unwrap();
    }
    assert_eq!(order, ids(&[mine[0], theirs, stateless, mine[1], mine[2]]));
}

#[test]
fn the_queue_of_asking_calls_is_bounded() {
    let mut h = Harness::legacy_ready_with(Config {
        max_queued_asking: 2,
        ..Config::default()
    });
    for n in 1..=3 {
        h.call_with("1", "tools/call", None, asking(n)).unwrap();
    }
    assert_eq!(
        h.call_with("1", "tools/call", None, asking(4)),
        Err(SendError::AskingQueueFull(2))
    );
    // Calls that do not ask are not held, and not refused.
    h.call_with("1", "tools/call", None, plain(4)).unwrap();
}

#[test]
fn asking_calls_queued_before_the_handshake_take_turns_after_it() {
    let mut h = Harness::new(Config {
        era_mode: mcpod_core::EraMode::Legacy,
        ..Config::default()
    });
    let init = h.take_rx();
    let a = h.call_with("1", "tools/call", None, asking(1)).unwrap();
    let b = h.call_with("1", "tools/call", None, asking(2)).unwrap();
    let x = h.call_with("2", "tools/call", None, plain(1)).unwrap();
    h.backend_says(&format!(
        r#"{{"jsonrpc":"2.0","id":{},"result":{INIT_RESULT}}}"#,
        init[0]["id"]
    ));
    assert_eq!(sent_ids(&h.take_rx()), ids(&[x, a]));
    finish(&mut h, a);
    assert_eq!(sent_ids(&h.take_rx()), ids(&[b]));
}

#[test]
fn a_modern_backend_gets_asking_calls_at_once() {
    let mut h = Harness::modern_ready();
    let calls: Vec<CallId> = (1..=3)
        .map(|n| h.call_with("1", "tools/call", None, asking(n)).unwrap())
        .collect();
    assert_eq!(sent_ids(&h.take_rx()), ids(&calls));
    assert_eq!(h.session.calls_waiting_for_turn(), 0);
}

#[test]
fn a_spurious_timeout_changes_nothing() {
    let mut h = Harness::legacy_ready();
    h.call_with("1", "tools/call", None, asking(1)).unwrap();
    h.call_with("1", "tools/call", None, asking(2)).unwrap();
    ask(&mut h, 1);
    h.take_rx();
    let due = h.session.poll_timeout().unwrap();
    h.session.handle_timeout(h.now);
    h.drain();
    assert!(h.take_rx().is_empty());
    assert_eq!(h.session.poll_timeout(), Some(due));
}

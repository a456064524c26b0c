//! Invariants, checked over random inputs against simple models.
#![allow(clippy::unwrap_used)]

mod common;

use std::collections::HashMap;
use std::time::Duration;

use common::*;
use mcpod_core::{CallId, Deadline, Event, Framer, RequestOptions, SendError};
use proptest::prelude::*;
use serde_json::Value;

fn decode_all(max: usize, chunks: &[&[u8]]) -> Vec<Result<Vec<u8>, mcpod_core::FrameError>> {
    let mut framer = Framer::new(max);
    let mut out = Vec::new();
    for chunk in chunks {
        framer.decode(chunk, |f| out.push(f.map(<[u8]>::to_vec)));
    }
    out
}

fn line() -> impl Strategy<Value = Vec<u8>> {
    prop_oneof![
        4 => proptest::collection::vec(any::<u8>().prop_filter("no newline", |b| *b != b'\n'), 0..40),
        1 => Just(b"\r".to_vec()),
        1 => proptest::collection::vec(Just(b'x'), 60..120), // over the limit below
    ]
}

proptest! {
    #[test]
    fn any_chunking_yields_the_same_frames(
        lines in proptest::collection::vec(line(), 0..20),
        cuts in proptest::collection::vec(any::<prop::sample::Index>(), 0..10),
    ) {
        let mut stream = Vec::new();
        for l in &lines {
            stream.extend_from_slice(l);
            stream.push(b'\n');
        }
        let whole = decode_all(64, &[&stream]);
        let mut points: Vec<usize> = cuts.iter().map(|c| c.index(stream.len() + 1)).collect();
        points.sort_unstable();
        let mut chunks = Vec::new();
        let mut last = 0;
        for p in points {
            chunks.push(&stream[last..p]);
            last = p;
        }
        chunks.push(&stream[last..]);
        prop_assert_eq!(decode_all(64, &chunks), whole.clone());
        // And the frames are exactly the non-blank lines within the limit.
        let expected: Vec<_> = lines
            .iter()
            .map(|l| l.strip_suffix(b"\r").unwrap_or(l).to_vec())
            .filter(|l| !l.iter().all(u8::is_ascii_whitespace) || l.len() > 64)
            .map(|l| if l.len() > 64 { Err(mcpod_core::FrameError::Oversize { limit: 64, id: None }) } else { Ok(l) })
            .collect();
        prop_assert_eq!(whole, expected);
    }
}

fn json_number() -> impl Strategy<Value = String> {
    (
        any::<bool>(),
        "[1-9][0-9]{0,40}|0",
        proptest::option::of("[0-9]{1,10}"),
        proptest::option::of(("[eE]", "[+-]?", "[0-9]{1,3}")),
    )
        .prop_map(|(neg, int, frac, exp)| {
            let mut s = String::new();
            if neg {
                s.push('-');
            }
            s.push_str(&int);
            if let Some(f) = frac {
                s.push('.');
                s.push_str(&f);
            }
            if let Some((e, sign, d)) = exp {
                s.push_str(&e);
                s.push_str(&sign);
                s.push_str(&d);
            }
            s
        })
}

fn caller_id() -> impl Strategy<Value = String> {
    prop_oneof![
        json_number(),
        any::<String>().prop_map(|s| serde_json::to_string(&s).unwrap()),
        // Hand-escaped strings keep their spelling too.
        "[a-z]{0,5}".prop_map(|s| format!("\"\\u00e9{s}\\n\"")),
        Just("1".to_owned()),
        Just("\"1\"".to_owned()),
    ]
}

proptest! {
    #[test]
    fn caller_ids_of_any_shape_come_back_byte_exact(id in caller_id()) {
        let mut h = Harness::legacy_ready();
        let call = h.call(&id, "m", None).unwrap();
        let bid = h.take_rx()[0]["id"].clone();
        h.backend_says(&format!(r#"{{"jsonrpc":"2.0","id":{bid},"result":{{}}}}"#));
        prop_assert_eq!(response_for(&h.take_events(), call).unwrap(), format!(r#"{{"jsonrpc":"2.0","id":{id},"result":{{}}}}"#));
    }
}

/// Any JSON value, with strings full of the bytes that end strings and
/// containers.
fn json_value() -> impl Strategy<Value = Value> {
    let leaf = prop_oneof![
        Just(Value::Null),
        any::<bool>().prop_map(Value::Bool),
        any::<i64>().prop_map(Value::from),
        r#"[a-z"\\{}\[\],: \n\u{e9}]{0,12}"#.prop_map(Value::String),
    ];
    leaf.prop_recursive(3, 24, 4, |inner| {
        prop_oneof![
            proptest::collection::vec(inner.clone(), 0..4).prop_map(Value::Array),
            proptest::collection::vec((r#"id|result|method|[a-z"{}]{0,6}"#, inner), 0..4)
                .prop_map(|kv| Value::Object(kv.into_iter().collect())),
        ]
    })
}

/// A JSON-RPC message as one object's text, its top-level keys in any
/// order, with extra keys: a response, an error, a request or a
/// notification.
fn message_text() -> impl Strategy<Value = String> {
    let extras = proptest::collection::vec(("[a-z]{3,7}|idx|i", json_value()), 0..3);
    (0..4u8, caller_id(), json_value(), extras)
        .prop_flat_map(|(kind, id, value, extras)| {
            let value = value.to_string();
            let mut entries = vec![r#""jsonrpc":"2.0""#.to_owned()];
            match kind {
                0 => entries.extend([format!(r#""id":{id}"#), format!(r#""result":{value}"#)]),
                1 => entries.extend([
                    format!(r#""id":{id}"#),
                    format!(r#""error":{{"code":-1,"message":"m","data":{value}}}"#),
                ]),
                2 => entries.extend([
                    format!(r#""id":{id}"#),
                    r#""method":"m""#.to_owned(),
                    format!(r#""params":{value}"#),
                ]),
                _ => entries.extend([r#""method":"m""#.to_owned(), format!(r#""params":{value}"#)]),
            }
            for (key, value) in extras {
                if !["jsonrpc", "id", "result", "error", "method", "params"].contains(&key.as_str())
                {
                    entries.push(format!("{}:{value}", Value::String(key)));
                }
            }
            Just(entries).prop_shuffle()
        })
        .prop_map(|entries| format!("{{{}}}", entries.join(" ,\n")))
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 1024, ..ProptestConfig::default() })]

    /// The streaming scanner finds exactly the id the full parser finds for
    /// a response (and none for anything else), in any chunking; once it
    /// says the outcome is known, the rest never changes it.
    #[test]
    fn the_response_id_scanner_agrees_with_the_parser(
        text in message_text(),
        cuts in proptest::collection::vec(any::<prop::sample::Index>(), 0..6),
    ) {
        use mcpod_core::envelope::ResponseIdScanner;
        use mcpod_core::Message;
        let expected = match Message::parse(text.as_bytes()) {
            Ok(Message::Response { id, .. }) | Ok(Message::Error { id: Some(id), .. }) => {
                Some(id.get().to_owned())
            }
            Ok(_) => None,
            Err(e) => return Err(TestCaseError::reject(format!("not a message: {e}"))),
        };
        let bytes = text.as_bytes();
        let mut points: Vec<usize> = cuts.iter().map(|c| c.index(bytes.len() + 1)).collect();
        points.sort_unstable();
        points.push(bytes.len());
        let mut scan = ResponseIdScanner::new();
        let mut last = 0;
        let mut early = None;
        for p in points {
            if scan.push(&bytes[last..p]) && early.is_none() {
                early = Some(scan.finish().map(|id| id.as_json().to_owned()));
            }
            last = p;
        }
        let got = scan.finish().map(|id| id.as_json().to_owned());
        prop_assert_eq!(&got, &expected, "{}", text);
        if let Some(early) = early {
            prop_assert_eq!(early, expected);
        }
    }
}

#[derive(Debug, Clone)]
enum Op {
    Submit {
        id: u8,
        timeout_ms: Option<u64>,
    },
    Answer {
        pick: prop::sample::Index,
        error: bool,
    },
    AnswerAgain {
        pick: prop::sample::Index,
    },
    Garbage,
    /// An answer over the frame limit (its call must end at once).
    Oversize {
        pick: prop::sample::Index,
        id_last: bool,
    },
    Cancel {
        pick: prop::sample::Index,
    },
    Advance {
        ms: u64,
    },
    Eof,
}

fn op() -> impl Strategy<Value = Op> {
    prop_oneof![
        6 => (0u8..4, proptest::option::of(1u64..50)).prop_map(|(id, timeout_ms)| Op::Submit { id, timeout_ms }),
        6 => (any::<prop::sample::Index>(), any::<bool>()).prop_map(|(pick, error)| Op::Answer { pick, error }),
        2 => any::<prop::sample::Index>().prop_map(|pick| Op::AnswerAgain { pick }),
        1 => Just(Op::Garbage),
        2 => (any::<prop::sample::Index>(), any::<bool>()).prop_map(|(pick, id_last)| Op::Oversize { pick, id_last }),
        2 => any::<prop::sample::Index>().prop_map(|pick| Op::Cancel { pick }),
        2 => (1u64..30).prop_map(|ms| Op::Advance { ms }),
        1 => Just(Op::Eof),
    ]
}

/// The model: which calls are open, with the caller id and backend id each
/// must be answered with.
#[derive(Default)]
struct Model {
    open: HashMap<CallId, (String, Value)>,
    /// Every backend id ever issued, in order (answered or not).
    issued: Vec<Value>,
    ended: u64,
}

impl Model {
    fn absorb(&mut self, h: &mut Harness) -> Result<(), TestCaseError> {
        for msg in h.take_rx() {
            if msg.get("id").is_some() && msg.get("method").is_some() {
                self.issued.push(msg["id"].clone());
            }
        }
        for e in h.take_events() {
            match e {
                Event::Response { call, frame, .. } => {
                    let (caller_id, backend_id) = self.open.remove(&call).ok_or_else(|| {
                        TestCaseError::fail(format!("{call} answered twice or never opened"))
                    })?;
                    let text = String::from_utf8(frame).unwrap();
                    prop_assert!(
                        text.starts_with(&format!(r#"{{"jsonrpc":"2.0","id":{caller_id},"#)),
                        "{text}"
                    );
                    let v: Value = serde_json::from_str(&text).unwrap();
                    let payload = if v.get("result").is_some() {
                        &v["result"]["for"]
                    } else {
                        &v["error"]["data"]["for"]
                    };
                    prop_assert_eq!(
                        payload,
                        &backend_id,
                        "a caller received another caller's response"
                    );
                    self.ended += 1;
                }
                Event::CallEnded { call, frame, .. } => {
                    let (caller_id, _) = self.open.remove(&call).ok_or_else(|| {
                        TestCaseError::fail(format!("{call} ended twice or never opened"))
                    })?;
                    let v: Value = serde_json::from_slice(&frame).unwrap();
                    prop_assert_eq!(
                        v["id"].to_string(),
                        serde_json::from_str::<Value>(&caller_id)
                            .unwrap()
                            .to_string()
                    );
                    self.ended += 1;
                }
                _ => {}
            }
        }
        Ok(())
    }
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 512, ..ProptestConfig::default() })]

    #[test]
    fn every_call_ends_exactly_once_with_its_own_answer(ops in proptest::collection::vec(op(), 1..60)) {
        let ids = ["1", "\"1\"", "\"a\"", "18446744073709551617"];
        let mut h = Harness::legacy_ready_with(mcpod_core::Config { max_frame_len: 256, ..Default::default() });
        let mut model = Model::default();
        let mut submitted = 0u64;
        for op in ops {
            match op {
                Op::Submit { id, timeout_ms } => {
                    let deadline = timeout_ms.map_or(Deadline::Default, |ms| Deadline::After(Duration::from_millis(ms)));
                    match h.call_with(ids[id as usize], "tools/call", None, RequestOptions { deadline, ..Default::default() }) {
                        Ok(call) => {
                            submitted += 1;
                            let bid = h.last_backend_id();
                            model.open.insert(call, (ids[id as usize].to_owned(), bid));
                        }
                        Err(SendError::Closed(_)) => {}
                        Err(e) => prop_assert!(false, "unexpected refusal {e}"),
                    }
                }
                Op::Answer { pick, .. } | Op::AnswerAgain { pick } if !model.issued.is_empty() => {
                    let error = matches!(op, Op::Answer { error: true, .. });
                    let bid = model.issued[pick.index(model.issued.len())].clone();
                    let line = if error {
                        format!(r#"{{"jsonrpc":"2.0","id":{bid},"error":{{"code":-1,"message":"m","data":{{"for":{bid}}}}}}}"#)
                    } else {
                        format!(r#"{{"jsonrpc":"2.0","id":{bid},"result":{{"for":{bid}}}}}"#)
                    };
                    h.backend_says(&line);
                }
                Op::Answer { .. } | Op::AnswerAgain { .. } => {}
                Op::Garbage => h.backend_says("{\"jsonrpc\":\"2.0\",\"id\":"),
                Op::Oversize { pick, id_last } if !model.issued.is_empty() => {
                    let bid = model.issued[pick.index(model.issued.len())].clone();
                    let pad = "p".repeat(300);
                    h.backend_says(&if id_last {
                        format!(r#"{{"result":{{"pad":"{pad}"}},"jsonrpc":"2.0","id":{bid}}}"#)
                    } else {
                        format!(r#"{{"jsonrpc":"2.0","id":{bid},"result":{{"pad":"{pad}"}}}}"#)
                    });
                }
                Op::Oversize { .. } => {}
                Op::Cancel { pick } => {
                    let open: Vec<CallId> = { let mut v: Vec<_> = model.open.keys().copied().collect(); v.sort(); v };
                    if !open.is_empty() {
                        let call = open[pick.index(open.len())];
                        prop_assert!(h.session.cancel(call, None, h.now));
                        h.drain();
                    }
                }
                Op::Advance { ms } => h.advance(Duration::from_millis(ms)),
                Op::Eof => {
                    h.session.handle_eof(h.now);
                    h.drain();
                }
            }
            // Learn backend ids of calls sent this step before checking events.
            model.absorb(&mut h)?;
            prop_assert_eq!(h.session.calls_in_flight(), model.open.len());
        }
        h.session.handle_eof(h.now);
        h.drain();
        model.absorb(&mut h)?;
        prop_assert!(model.open.is_empty(), "calls left hanging: {:?}", model.open.keys().collect::<Vec<_>>());
        prop_assert_eq!(model.ended, submitted);
    }
}

#[derive(Debug, Clone)]
enum TurnOp {
    Submit {
        asks: bool,
        owner: u8,
        timeout_ms: Option<u64>,
    },
    /// The backend answers one of the calls it was sent.
    Answer {
        pick: prop::sample::Index,
    },
    /// The backend asks the client something.
    Question,
    /// The client answers one of the questions it was given.
    Reply {
        pick: prop::sample::Index,
    },
    Cancel {
        pick: prop::sample::Index,
    },
    Advance {
        ms: u64,
    },
}

fn turn_op() -> impl Strategy<Value = TurnOp> {
    prop_oneof![
        6 => (any::<bool>(), 0u8..3, proptest::option::of(1u64..400))
            .prop_map(|(asks, owner, timeout_ms)| TurnOp::Submit { asks, owner, timeout_ms }),
        4 => any::<prop::sample::Index>().prop_map(|pick| TurnOp::Answer { pick }),
        4 => Just(TurnOp::Question),
        4 => any::<prop::sample::Index>().prop_map(|pick| TurnOp::Reply { pick }),
        1 => any::<prop::sample::Index>().prop_map(|pick| TurnOp::Cancel { pick }),
        3 => (1u64..80).prop_map(|ms| TurnOp::Advance { ms }),
    ]
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 512, ..ProptestConfig::default() })]

    /// With calls that ask taking turns: every call ends exactly once, the
    /// calls held for their turn are exactly the asking calls not sent, no
    /// answer is held forever, and once the backend answers what it was
    /// sent, every call — queued ones included — ends.
    #[test]
    fn asking_calls_take_turns_and_every_call_still_ends_exactly_once(
        ops in proptest::collection::vec(turn_op(), 1..80),
    ) {
        use mcpod_core::{Config, Outcome, Owner, ServerRequestId};
        let config = Config::default();
        let hold = config.answer_hold + config.burst_window;
        let mut h = Harness::legacy_ready_with(config);
        let mut open: HashMap<CallId, bool> = HashMap::new();
        let mut sent: Vec<u64> = Vec::new();
        let mut questions: Vec<ServerRequestId> = Vec::new();
        let mut ended = 0u64;
        let mut submitted = 0u64;
        let mut next_question = 0u64;
        let absorb = |h: &mut Harness, open: &mut HashMap<CallId, bool>, sent: &mut Vec<u64>, questions: &mut Vec<ServerRequestId>, ended: &mut u64| -> Result<(), TestCaseError> {
            for msg in h.take_rx() {
                if let (Some(id), Some(_)) = (msg["id"].as_u64(), msg.get("method")) {
                    sent.push(id);
                }
            }
            for e in h.take_events() {
                match e {
                    Event::Response { call, .. } | Event::CallEnded { call, .. } => {
                        prop_assert!(open.remove(&call).is_some(), "{} ended twice", call);
                        sent.retain(|&id| id != call.backend_id());
                        *ended += 1;
                    }
                    Event::ServerRequest(r) => questions.push(r.id),
                    _ => {}
                }
            }
            Ok(())
        };
        for op in ops {
            match op {
                TurnOp::Submit { asks, owner, timeout_ms } => {
                    let opts = RequestOptions {
                        owner: Some(Owner(u64::from(owner))),
                        may_ask: asks,
                        deadline: timeout_ms.map_or(Deadline::Default, |ms| Deadline::After(Duration::from_millis(ms))),
                    };
                    let id = format!("{submitted}");
                    match h.call_with(&id, "tools/call", None, opts) {
                        Ok(call) => {
                            submitted += 1;
                            open.insert(call, asks);
                        }
                        Err(e) => prop_assert!(false, "unexpected refusal {e}"),
                    }
                }
                TurnOp::Answer { pick } if !sent.is_empty() => {
                    let id = sent[pick.index(sent.len())];
                    h.backend_says(&format!(r#"{{"jsonrpc":"2.0","id":{id},"result":{{}}}}"#));
                }
                TurnOp::Question => {
                    next_question += 1;
                    h.backend_says(&format!(r#"{{"jsonrpc":"2.0","id":"q{next_question}","method":"elicitation/create"}}"#));
                }
                TurnOp::Reply { pick } if !questions.is_empty() => {
                    let q = questions.remove(pick.index(questions.len()));
                    let answered = h.session.respond(q, Outcome::Result(&raw("{}")), h.now);
                    prop_assert!(answered.is_ok(), "{:?}", answered);
                    h.drain();
                }
                TurnOp::Cancel { pick } if !open.is_empty() => {
                    let mut calls: Vec<CallId> = open.keys().copied().collect();
                    calls.sort();
                    prop_assert!(h.session.cancel(calls[pick.index(calls.len())], None, h.now));
                    h.drain();
                }
                TurnOp::Answer { .. } | TurnOp::Reply { .. } | TurnOp::Cancel { .. } => {}
                TurnOp::Advance { ms } => h.advance(Duration::from_millis(ms)),
            }
            absorb(&mut h, &mut open, &mut sent, &mut questions, &mut ended)?;
            prop_assert_eq!(h.session.calls_in_flight(), open.len());
            let queued = open.iter().filter(|(c, asks)| **asks && !sent.contains(&c.backend_id())).count();
            prop_assert_eq!(h.session.calls_waiting_for_turn(), queued);
        }
        // No answer is held past the hold (and the burst window before it).
        h.advance(hold);
        absorb(&mut h, &mut open, &mut sent, &mut questions, &mut ended)?;
        prop_assert_eq!(h.session.answers_held(), 0);
        // Liveness: the backend answering everything it was sent ends every
        // call, the queued ones after their turn.
        for _ in 0..=submitted {
            if open.is_empty() {
                break;
            }
            for id in sent.clone() {
                h.backend_says(&format!(r#"{{"jsonrpc":"2.0","id":{id},"result":{{}}}}"#));
            }
            h.advance(hold);
            absorb(&mut h, &mut open, &mut sent, &mut questions, &mut ended)?;
        }
        prop_assert!(open.is_empty(), "calls never sent: {:?}", open.keys().collect::<Vec<_>>());
        prop_assert_eq!(ended, submitted);
    }
}

//! A session driven by an arbitrary sequence of operations and arbitrary
//! backend bytes: no panic, every call ends exactly once, every response
//! carries its caller's id, and after EOF nothing is left open.
#![no_main]

use std::collections::HashMap;
use std::time::{Duration, Instant};

use libfuzzer_sys::fuzz_target;
use mcpod_core::{
    CallId, Config, Deadline, EraMode, Event, Message, Request, RequestOptions, Session,
};
use serde_json::value::RawValue;

const IDS: [&str; 4] = ["1", "\"1\"", "\"é\"", "18446744073709551617"];

fuzz_target!(|data: &[u8]| {
    let mut now = Instant::now();
    let era_mode = match data.first().copied().unwrap_or(0) % 3 {
        0 => EraMode::Auto,
        1 => EraMode::Legacy,
        _ => EraMode::Modern,
    };
    let config = Config {
        era_mode,
        max_frame_len: 512,
        max_calls_in_flight: 16,
        max_queued_output: 4096,
        ..Config::default()
    };
    let mut session = Session::new(config, now);
    let mut open: HashMap<CallId, &str> = HashMap::new();
    let mut out = Vec::new();
    let mut i = 1;
    while i < data.len() {
        let op = data[i];
        i += 1;
        match op % 6 {
            0 => {
                let id = RawValue::from_string(IDS[(op / 6) as usize % 4].to_owned()).unwrap();
                let deadline = if op & 0x80 != 0 {
                    Deadline::After(Duration::from_millis(op as u64))
                } else {
                    Deadline::Default
                };
                if let Ok(call) = session.send_request(
                    Request {
                        id: &id,
                        method: "tools/call",
                        params: None,
                    },
                    RequestOptions {
                        deadline,
                        ..Default::default()
                    },
                    now,
                ) {
                    assert!(open.insert(call, IDS[(op / 6) as usize % 4]).is_none());
                }
            }
            1 | 2 => {
                // Backend bytes: a length-prefixed slice of the input.
                let len = (op as usize / 6).min(data.len() - i);
                session.handle_input(&data[i..i + len], now);
                i += len;
            }
            3 => {
                let mut calls: Vec<_> = open.keys().copied().collect();
                calls.sort();
                if let Some(call) = calls.get(op as usize / 6 % calls.len().max(1)) {
                    session.cancel(*call, None, now);
                }
            }
            4 => {
                now += Duration::from_millis(op as u64 * 10);
                session.handle_timeout(now);
            }
            _ => {
                // A well-formed answer to a recent backend id, to reach deep states.
                // The result reads as an initialize and a discover result too.
                let line = format!(
                    "{{\"jsonrpc\":\"2.0\",\"id\":{},\"result\":{{\"protocolVersion\":\"2025-11-25\",\"capabilities\":{{}},\"supportedVersions\":[\"2026-07-28\"]}}}}\n",
                    op / 6
                );
                session.handle_input(line.as_bytes(), now);
            }
        }
        out.clear();
        while session.poll_transmit(&mut out) {}
        while let Some(event) = session.poll_event() {
            match event {
                Event::Response { call, frame, .. } => {
                    let caller = open.remove(&call).expect("answered twice or never opened");
                    // The backend's own layout is kept; only the id is the caller's.
                    match Message::parse(&frame) {
                        Ok(Message::Response { id, .. })
                        | Ok(Message::Error { id: Some(id), .. }) => {
                            assert_eq!(id.get(), caller)
                        }
                        other => panic!("response frame is not a response: {other:?}"),
                    }
                }
                Event::CallEnded { call, .. } => {
                    open.remove(&call).expect("ended twice or never opened");
                }
                _ => {}
            }
        }
        assert_eq!(session.calls_in_flight(), open.len());
    }
    session.handle_eof(now);
    while let Some(event) = session.poll_event() {
        if let Event::CallEnded { call, .. } | Event::Response { call, .. } = event {
            open.remove(&call).expect("ended twice");
        }
    }
    assert!(open.is_empty(), "calls left hanging after EOF");
});

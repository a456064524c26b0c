//! A scripted backend for driving a `Session` on virtual time.
#![allow(dead_code, unreachable_pub, missing_docs, clippy::unwrap_used)]

use std::time::{Duration, Instant};

use mcpod_core::{CallId, Config, EraMode, Event, Request, RequestOptions, SendError, Session};
use serde_json::Value;
use serde_json::value::RawValue;

pub struct Harness {
    pub session: Session,
    pub now: Instant,
    /// Lines the backend has received, parsed.
    pub backend_rx: Vec<Value>,
    pub events: Vec<Event>,
}

pub fn raw(json: &str) -> Box<RawValue> {
    RawValue::from_string(json.to_owned()).unwrap()
}

pub const INIT_RESULT: &str = r#"{"protocolVersion":"2025-11-25","capabilities":{"tools":{}},"serverInfo":{"name":"scripted","version":"1"},"instructions":"hi"}"#;
pub const DISCOVER_RESULT: &str = r#"{"supportedVersions":["2026-07-28"],"capabilities":{"tools":{}},"_meta":{"io.modelcontextprotocol/serverInfo":{"name":"modern","version":"2"}},"resultType":"complete"}"#;

impl Harness {
    pub fn new(config: Config) -> Self {
        let now = Instant::now();
        let mut h = Harness {
            session: Session::new(config, now),
            now,
            backend_rx: Vec::new(),
            events: Vec::new(),
        };
        h.drain();
        h
    }

    /// A legacy backend that has completed the handshake.
    pub fn legacy_ready() -> Self {
        Self::legacy_ready_with(Config::default())
    }

    /// A legacy backend that has completed the handshake, with `config`
    /// (its era mode set to legacy).
    pub fn legacy_ready_with(config: Config) -> Self {
        let mut h = Self::new(Config {
            era_mode: EraMode::Legacy,
            ..config
        });
        let init = h.take_rx();
        assert_eq!(init[0]["method"], "initialize");
        h.backend_says(&format!(
            r#"{{"jsonrpc":"2.0","id":{},"result":{INIT_RESULT}}}"#,
            init[0]["id"]
        ));
        let rx = h.take_rx();
        assert_eq!(rx[0]["method"], "notifications/initialized");
        assert!(matches!(h.events.remove(0), Event::Ready(_)));
        h
    }

    /// A modern backend found by the probe.
    pub fn modern_ready() -> Self {
        let mut h = Self::new(Config::default());
        let probe = h.take_rx();
        assert_eq!(probe[0]["method"], "server/discover");
        h.backend_says(&format!(
            r#"{{"jsonrpc":"2.0","id":{},"result":{DISCOVER_RESULT}}}"#,
            probe[0]["id"]
        ));
        assert!(matches!(h.events.remove(0), Event::Ready(_)));
        h
    }

    /// Drains transmit and events, as a driver must after every mutation.
    pub fn drain(&mut self) {
        let mut out = Vec::new();
        while self.session.poll_transmit(&mut out) {}
        for line in out.split(|b| *b == b'\n').filter(|l| !l.is_empty()) {
            assert!(!line.contains(&b'\n'));
            self.backend_rx
                .push(serde_json::from_slice(line).expect("session wrote invalid JSON"));
        }
        while let Some(e) = self.session.poll_event() {
            self.events.push(e);
        }
    }

    pub fn take_rx(&mut self) -> Vec<Value> {
        std::mem::take(&mut self.backend_rx)
    }

    pub fn take_events(&mut self) -> Vec<Event> {
        std::mem::take(&mut self.events)
    }

    pub fn backend_says(&mut self, line: &str) {
        let mut bytes = line.as_bytes().to_vec();
        bytes.push(b'\n');
        self.session.handle_input(&bytes, self.now);
        self.drain();
    }

    pub fn call(
        &mut self,
        id: &str,
        method: &str,
        params: Option<&str>,
    ) -> Result<CallId, SendError> {
        self.call_with(id, method, params, RequestOptions::default())
    }

    pub fn call_with(
        &mut self,
        id: &str,
        method: &str,
        params: Option<&str>,
        opts: RequestOptions,
    ) -> Result<CallId, SendError> {
        let id = raw(id);
        let params = params.map(raw);
        let r = self.session.send_request(
            Request {
                id: &id,
                method,
                params: params.as_deref(),
            },
            opts,
            self.now,
        );
        self.drain();
        r
    }

    pub fn advance(&mut self, by: Duration) {
        self.now += by;
        if let Some(at) = self.session.poll_timeout() {
            if at <= self.now {
                self.session.handle_timeout(self.now);
            }
        }
        self.drain();
    }

    /// The backend id the session used for the last request it sent.
    pub fn last_backend_id(&self) -> Value {
        self.backend_rx.last().unwrap()["id"].clone()
    }
}

/// The response frame for a call among events, as text.
pub fn response_for(events: &[Event], call: CallId) -> Option<String> {
    events.iter().find_map(|e| match e {
        Event::Response { call: c, frame, .. } if *c == call => {
            Some(String::from_utf8(frame.clone()).unwrap())
        }
        _ => None,
    })
}

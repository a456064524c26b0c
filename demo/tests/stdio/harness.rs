//! A real `mcpod-demo` child process and the official MCP schemas.

use std::io::{BufRead, BufReader, Write};
use std::process::{Child, ChildStdin, Command, ExitStatus, Stdio};
use std::sync::mpsc::{self, Receiver, RecvTimeoutError};

use std::thread;
use std::time::{Duration, Instant};

use serde_json::{Value, json};

/// How long any single expected message may take.
pub(crate) const PATIENCE: Duration = Duration::from_secs(5);

/// The modern revision.
pub(crate) const MODERN: &str = "2026-07-28";
/// The latest legacy revision.
pub(crate) const LEGACY: &str = "2025-11-25";

/// A running server, its stdin, and the lines of its stdout.
pub(crate) struct Server {
    child: Child,
    stdin: Option<ChildStdin>,
    lines: Receiver<String>,
    /// The revision whose schema every received message is checked against.
    pub(crate) rev: &'static str,
}

impl Server {
    /// Starts the binary with `args`; received messages are validated against `rev`.
    pub(crate) fn start(rev: &'static str, args: &[&str]) -> Self {
        let mut child = Command::new(env!("CARGO_BIN_EXE_mcpod-demo"))
            .args(args)
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::null())
            .spawn()
            .expect("spawn mcpod-demo");
        let stdout = child.stdout.take().expect("stdout");
        let (tx, lines) = mpsc::channel();
        thread::spawn(move || {
            for line in BufReader::new(stdout).lines() {
                let Ok(line) = line else { return };
                if tx.send(line).is_err() {
                    return;
                }
            }
        });
        let stdin = child.stdin.take();
        Self {
            child,
            stdin,
            lines,
            rev,
        }
    }

    /// A legacy server that has completed the handshake at `rev`.
    pub(crate) fn initialized(rev: &'static str) -> Self {
        let mut server = Self::start(rev, &[]);
        let reply = server.request(
            "0",
            "initialize",
            json!({
                "protocolVersion": rev,
                "capabilities": { "roots": {}, "sampling": {}, "elicitation": {} },
                "clientInfo": { "name": "mcpod-demo-tests", "version": "0" },
            }),
        );
        server.expect_result(&reply, "InitializeResult");
        assert_eq!(reply["result"]["protocolVersion"], rev);
        server.send(r#"{"jsonrpc":"2.0","method":"notifications/initialized"}"#);
        server
    }

    /// Writes one line (a newline is added).
    pub(crate) fn send(&mut self, line: &str) {
        let stdin = self.stdin.as_mut().expect("stdin open");
        stdin.write_all(line.as_bytes()).expect("write");
        stdin.write_all(b"\n").expect("write");
        stdin.flush().expect("flush");
    }

    /// Writes a JSON message.
    pub(crate) fn send_json(&mut self, message: &Value) {
        self.send(&message.to_string());
    }

    /// The next stdout line, unchecked.
    pub(crate) fn recv_raw(&mut self) -> String {
        match self.lines.recv_timeout(PATIENCE) {
            Ok(line) => line,
            Err(RecvTimeoutError::Timeout) => panic!("no message within {PATIENCE:?}"),
            Err(RecvTimeoutError::Disconnected) => panic!("server closed stdout"),
        }
    }

    /// The next message, validated against `JSONRPCMessage` of [`Server::rev`].
    pub(crate) fn recv(&mut self) -> Value {
        let line = self.recv_raw();
        let message: Value =
            serde_json::from_str(&line).unwrap_or_else(|e| panic!("not JSON ({e}): {line}"));
        assert_valid(self.rev, "JSONRPCMessage", &message);
        message
    }

    /// Sends a request with the raw JSON id `id` and returns the next message.
    pub(crate) fn request(&mut self, id: &str, method: &str, params: Value) -> Value {
        self.send(&format!(
            r#"{{"jsonrpc":"2.0","id":{id},"method":"{method}","params":{params}}}"#
        ));
        let reply = self.recv();
        assert_eq!(
            reply["id"],
            serde_json::from_str::<Value>(id).expect("id"),
            "{reply}"
        );
        reply
    }

    /// A legacy `tools/call`.
    pub(crate) fn call(&mut self, id: &str, tool: &str, arguments: Value) -> Value {
        let reply = self.request(
            id,
            "tools/call",
            json!({ "name": tool, "arguments": arguments }),
        );
        self.expect_result(&reply, "CallToolResult");
        reply
    }

    /// Asserts `reply` is a success response whose result is a valid `def`.
    pub(crate) fn expect_result(&self, reply: &Value, def: &str) {
        assert!(reply.get("result").is_some(), "expected a result: {reply}");
        assert_valid(self.rev, result_envelope(self.rev), reply);
        assert_valid(self.rev, def, &reply["result"]);
    }

    /// Asserts `reply` is a valid error response with `code`; returns the error object.
    pub(crate) fn expect_error(&self, reply: &Value, code: i64) -> Value {
        assert_eq!(reply["error"]["code"], code, "{reply}");
        assert_valid(self.rev, error_envelope(self.rev), reply);
        reply["error"].clone()
    }

    /// Asserts nothing arrives on stdout for `quiet`.
    pub(crate) fn expect_silence(&mut self, quiet: Duration) {
        match self.lines.recv_timeout(quiet) {
            Ok(line) => panic!("unexpected message: {line}"),
            Err(RecvTimeoutError::Timeout | RecvTimeoutError::Disconnected) => {}
        }
    }

    /// Closes the server's stdin (EOF).
    pub(crate) fn close_stdin(&mut self) {
        self.stdin = None;
    }

    /// Waits for the process to exit, failing after `limit`.
    pub(crate) fn wait_exit(&mut self, limit: Duration) -> ExitStatus {
        let deadline = Instant::now() + limit;
        loop {
            if let Some(status) = self.child.try_wait().expect("try_wait") {
                return status;
            }
            assert!(
                Instant::now() < deadline,
                "server still running after {limit:?}"
            );
            thread::sleep(Duration::from_millis(5));
        }
    }

    /// True once stdout is closed and drained.
    pub(crate) fn stdout_closed(&mut self) -> bool {
        matches!(
            self.lines.recv_timeout(PATIENCE),
            Err(RecvTimeoutError::Disconnected)
        )
    }
}

impl Drop for Server {
    fn drop(&mut self) {
        if let Ok(None) = self.child.try_wait() {
            let _ = self.child.kill();
        }
        let _ = self.child.wait();
    }
}

/// `_meta` of a modern request.
pub(crate) fn modern_meta() -> Value {
    json!({
        "io.modelcontextprotocol/protocolVersion": MODERN,
        "io.modelcontextprotocol/clientCapabilities": {},
        "io.modelcontextprotocol/clientInfo": { "name": "mcpod-demo-tests", "version": "0" },
    })
}

/// The text of the first content block of a tool result.
pub(crate) fn text_of(reply: &Value) -> &str {
    reply["result"]["content"][0]["text"]
        .as_str()
        .unwrap_or_else(|| panic!("no text content: {reply}"))
}

pub(crate) use mcpod_schema::{error_envelope, result_envelope, validator};

/// Panics unless `instance` validates against `def` of revision `rev`.
pub(crate) fn assert_valid(rev: &str, def: &str, instance: &Value) {
    let errors = mcpod_schema::errors(rev, def, instance);
    assert!(
        errors.is_empty(),
        "not a valid {rev} {def}: {}\n{instance}",
        errors.join("; ")
    );
}

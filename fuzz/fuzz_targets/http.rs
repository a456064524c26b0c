//! Arbitrary bytes as one client connection to the gateway's routes: no
//! panic, no hang (the harness bounds each connection), and whatever the
//! gateway writes back starts with an HTTP status line (1.1, or 1.0 to a
//! 1.0 request).

#![no_main]

use std::sync::LazyLock;

use libfuzzer_sys::fuzz_target;
use mcpod_server::fuzzing::Harness;

static HARNESS: LazyLock<Harness> =
    LazyLock::new(|| Harness::new().expect("the fuzzing gateway starts"));

fuzz_target!(|data: &[u8]| {
    let out = HARNESS.connection(data);
    if !out.is_empty() {
        assert!(
            out.starts_with(b"HTTP/1.1 ") || out.starts_with(b"HTTP/1.0 "),
            "not a status line: {:?}",
            String::from_utf8_lossy(&out[..out.len().min(120)])
        );
    }
});

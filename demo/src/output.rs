//! The single writer every outbound message goes through.
//!
//! Each message is encoded into one buffer first, then written with one
//! `write_all` and flushed while the lock is held, so lines from the reading
//! thread and from worker threads never interleave.

use std::io::{self, Write};
use std::sync::Mutex;

use crate::call::lock;

/// A mutex-protected sink for complete, newline-terminated messages.
pub(crate) struct Outbox {
    sink: Mutex<Box<dyn Write + Send>>,
}

impl Outbox {
    pub(crate) fn new(sink: Box<dyn Write + Send>) -> Self {
        Self {
            sink: Mutex::new(sink),
        }
    }

    /// Writes one complete line (which must end in `\n`) and flushes it.
    pub(crate) fn send(&self, line: &[u8]) -> io::Result<()> {
        let mut sink = lock(&self.sink);
        sink.write_all(line)?;
        sink.flush()
    }

    /// Like [`Outbox::send`] for messages whose loss only needs logging
    /// (sent from worker threads, or as side effects of a tool).
    pub(crate) fn emit(&self, line: &[u8]) {
        if let Err(e) = self.send(line) {
            eprintln!("mcpod-demo: cannot write to stdout: {e}");
        }
    }
}

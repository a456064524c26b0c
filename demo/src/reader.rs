//! Newline-delimited input with a hard bound on line length.
//!
//! Strips a trailing `\r`, never rescans bytes already seen, and after an
//! oversize line recovers at the next `\n`.

use std::io::{self, BufRead};

/// One item read from the input.
#[derive(Debug, PartialEq, Eq)]
pub(crate) enum Line<'a> {
    /// A complete line, without its line ending.
    Data(&'a [u8]),
    /// A line longer than the bound; its bytes were discarded.
    TooLong,
    /// The input is closed.
    Eof,
}

/// Reads lines of at most `max` bytes from a [`BufRead`].
pub(crate) struct LineReader<R> {
    inner: R,
    max: usize,
    buf: Vec<u8>,
}

impl<R: BufRead> LineReader<R> {
    pub(crate) fn new(inner: R, max: usize) -> Self {
        Self {
            inner,
            max,
            buf: Vec::with_capacity(4096),
        }
    }

    /// The next line; a final line without `\n` is still returned before [`Line::Eof`].
    pub(crate) fn next_line(&mut self) -> io::Result<Line<'_>> {
        self.buf.clear();
        let mut oversize = false;
        loop {
            let available = match self.inner.fill_buf() {
                Ok(bytes) => bytes,
                Err(e) if e.kind() == io::ErrorKind::Interrupted => continue,
                Err(e) => return Err(e),
            };
            if available.is_empty() {
                return Ok(if oversize {
                    Line::TooLong
                } else if self.buf.is_empty() {
                    Line::Eof
                } else {
                    Line::Data(strip_cr(&self.buf))
                });
            }
            let newline = available.iter().position(|&b| b == b'\n');
            let chunk = &available[..newline.unwrap_or(available.len())];
            if !oversize {
                if self.buf.len() + chunk.len() > self.max {
                    oversize = true;
                    self.buf.clear();
                } else {
                    self.buf.extend_from_slice(chunk);
                }
            }
            let used = newline.map_or(available.len(), |i| i + 1);
            self.inner.consume(used);
            if newline.is_some() {
                return Ok(if oversize {
                    Line::TooLong
                } else {
                    Line::Data(strip_cr(&self.buf))
                });
            }
        }
    }
}

fn strip_cr(line: &[u8]) -> &[u8] {
    line.strip_suffix(b"\r").unwrap_or(line)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn collect(input: &[u8], max: usize, capacity: usize) -> Vec<Option<Vec<u8>>> {
        let mut reader = LineReader::new(io::BufReader::with_capacity(capacity, input), max);
        let mut out = Vec::new();
        loop {
            match reader.next_line().expect("in-memory read") {
                Line::Data(d) => out.push(Some(d.to_vec())),
                Line::TooLong => out.push(None),
                Line::Eof => return out,
            }
        }
    }

    #[test]
    fn any_chunking_yields_the_same_lines() {
        let input = b"one\r\ntwo\n\nthis-line-is-too-long\nfour";
        let want = vec![
            Some(b"one".to_vec()),
            Some(b"two".to_vec()),
            Some(Vec::new()),
            None,
            Some(b"four".to_vec()),
        ];
        for capacity in 1..=input.len() {
            assert_eq!(collect(input, 8, capacity), want, "capacity {capacity}");
        }
    }

    #[test]
    fn empty_input_is_eof() {
        assert!(collect(b"", 8, 4).is_empty());
    }
}

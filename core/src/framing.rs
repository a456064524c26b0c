//! Newline-delimited framing of a byte stream.
//!
//! MCP's stdio transport carries one JSON-RPC message per line. [`Framer`]
//! cuts an arbitrarily chunked byte stream into lines without ever scanning a
//! byte twice, strips a trailing `\r`, skips blank lines, and enforces a
//! maximum frame length: an oversize line is reported once and discarded up
//! to the next `\n`, after which framing carries on. The report carries the
//! line's JSON-RPC response id when it can be read from the line's bytes
//! as they pass (in constant memory, see
//! [`ResponseIdScanner`]), so the call
//! it answers can be ended at once.
//!
//! [`CappedLines`] does the same for free-form text such as a backend's
//! stderr: lines are cut at a cap (the cut bytes counted) instead of
//! refused, so a log line of any length costs bounded memory.

use thiserror::Error;

use crate::envelope::{Id, ResponseIdScanner};

/// Default maximum frame length: 8 MiB, room for tool results carrying images.
pub const DEFAULT_MAX_FRAME_LEN: usize = 8 * 1024 * 1024;

/// A line that could not be delivered as a frame.
#[derive(Debug, Clone, PartialEq, Eq, Error)]
#[non_exhaustive]
pub enum FrameError {
    /// A line grew past the configured limit; its bytes are discarded up
    /// to the next newline.
    #[error(
        "frame exceeds the maximum length of {limit} bytes; discarded up to the next newline{}",
        id.as_ref().map(|id| format!(" (a response to id {id})")).unwrap_or_default()
    )]
    Oversize {
        /// The limit in force.
        limit: usize,
        /// The id of the JSON-RPC response the line was, when it could be
        /// read from the line's bytes ([`ResponseIdScanner`]).
        id: Option<Id>,
    },
}

/// Splits a byte stream into newline-delimited frames.
///
/// An oversize line is reported once, with [`FrameError::Oversize`]: as
/// soon as its bytes show whether it is a JSON-RPC response and to which
/// id, at the latest when the line ends; its bytes are scanned as they pass
/// and never kept.
///
/// ```
/// use mcpod_core::Framer;
/// let mut framer = Framer::new(1024);
/// let mut frames = Vec::new();
/// for chunk in [&b"{\"a\":1}\r\n{\"b\""[..], b":2}\n"] {
///     framer.decode(chunk, |frame| frames.push(frame.unwrap().to_vec()));
/// }
/// assert_eq!(frames, vec![b"{\"a\":1}".to_vec(), b"{\"b\":2}".to_vec()]);
/// ```
#[derive(Debug)]
pub struct Framer {
    /// Bytes of an incomplete line; never contains `\n`.
    partial: Vec<u8>,
    /// Discarding the rest of an oversize line.
    discarding: bool,
    /// Reading the id of the oversize line being discarded, until its
    /// report is made.
    scan: Option<ResponseIdScanner>,
    max_frame_len: usize,
}

impl Framer {
    /// A framer that rejects lines longer than `max_frame_len` bytes
    /// (excluding the newline).
    pub fn new(max_frame_len: usize) -> Self {
        Self {
            partial: Vec::new(),
            discarding: false,
            scan: None,
            max_frame_len,
        }
    }

    /// The configured maximum frame length.
    pub fn max_frame_len(&self) -> usize {
        self.max_frame_len
    }

    /// Bytes of an incomplete line currently held.
    pub fn buffered(&self) -> usize {
        self.partial.len()
    }

    /// Feeds `input` and hands every complete frame to `on_frame`, in order.
    /// A trailing incomplete line is kept for the next call. Frames exclude
    /// the `\n` and a trailing `\r`; blank lines are skipped. Each input
    /// byte of a frame is scanned once (the bytes of an oversize line are
    /// also read for its id, until that is known).
    pub fn decode(
        &mut self,
        mut input: &[u8],
        mut on_frame: impl FnMut(Result<&[u8], FrameError>),
    ) {
        while !input.is_empty() {
            let newline = memchr::memchr(b'\n', input);
            if self.discarding {
                let (part, rest) = match newline {
                    Some(pos) => (&input[..pos], Some(&input[pos + 1..])),
                    None => (input, None),
                };
                self.scan_discarded(part, rest.is_some(), &mut on_frame);
                match rest {
                    None => return,
                    Some(rest) => {
                        input = rest;
                        self.discarding = false;
                        continue;
                    }
                }
            }
            let Some(pos) = newline else {
                // Incomplete line: keep it, unless that makes it oversize.
                if self.partial.len() + input.len() > self.max_frame_len + 1 {
                    self.start_discarding(input, false, &mut on_frame);
                } else {
                    self.partial.extend_from_slice(input);
                }
                return;
            };
            let line = &input[..pos];
            input = &input[pos + 1..];
            // +1 tolerates the `\r` of a `\r\n` ending on a maximal line.
            if self.partial.len() + line.len() > self.max_frame_len + 1 {
                self.start_discarding(line, true, &mut on_frame);
                continue;
            }
            if self.partial.is_empty() {
                self.emit(line, &mut on_frame);
            } else {
                let mut partial = std::mem::take(&mut self.partial);
                partial.extend_from_slice(line);
                self.emit(&partial, &mut on_frame);
                partial.clear();
                self.partial = partial;
            }
        }
    }

    fn emit(&self, line: &[u8], on_frame: &mut impl FnMut(Result<&[u8], FrameError>)) {
        let frame = line.strip_suffix(b"\r").unwrap_or(line);
        if frame.len() > self.max_frame_len {
            let mut scan = ResponseIdScanner::new();
            scan.push(frame);
            on_frame(Err(self.oversize(&scan)));
        } else if !frame.iter().all(u8::is_ascii_whitespace) {
            on_frame(Ok(frame));
        }
    }

    /// The line held in `partial` and continued by `more` is oversize:
    /// reads what it can of its id and drops its bytes; `ended`: `more`
    /// reaches the end of the line. Reports it now if its id is known (or
    /// the line is over), else once the rest shows it.
    fn start_discarding(
        &mut self,
        more: &[u8],
        ended: bool,
        on_frame: &mut impl FnMut(Result<&[u8], FrameError>),
    ) {
        let mut scan = ResponseIdScanner::new();
        let known = scan.push(&self.partial) || scan.push(more);
        // Give the memory back: a one-off huge line must not pin it.
        self.partial = Vec::new();
        self.discarding = !ended;
        if known || ended {
            on_frame(Err(self.oversize(&scan)));
        } else {
            self.scan = Some(scan);
        }
    }

    /// More of the oversize line being discarded; `ended`: the line ends
    /// after `part`.
    fn scan_discarded(
        &mut self,
        part: &[u8],
        ended: bool,
        on_frame: &mut impl FnMut(Result<&[u8], FrameError>),
    ) {
        let Some(scan) = self.scan.as_mut() else {
            return; // already reported
        };
        if scan.push(part) || ended {
            if let Some(scan) = self.scan.take() {
                on_frame(Err(self.oversize(&scan)));
            }
        }
    }

    fn oversize(&self, scan: &ResponseIdScanner) -> FrameError {
        FrameError::Oversize {
            limit: self.max_frame_len,
            id: scan.finish(),
        }
    }
}

/// Splits free-form text (a backend's stderr) into lines of at most `cap`
/// bytes each, counting the bytes cut from longer lines; a trailing `\r` is
/// stripped. Memory stays at the cap, whatever the line lengths.
///
/// ```
/// use mcpod_core::framing::CappedLines;
/// let mut lines = CappedLines::new(4);
/// let mut out = Vec::new();
/// lines.push(b"ok\r\nloooong\npart", |line, cut| out.push((line.to_vec(), cut)));
/// lines.finish(|line, cut| out.push((line.to_vec(), cut)));
/// assert_eq!(out, [(b"ok".to_vec(), 0), (b"looo".to_vec(), 3), (b"part".to_vec(), 0)]);
/// ```
#[derive(Debug)]
pub struct CappedLines {
    cap: usize,
    line: Vec<u8>,
    cut: usize,
}

impl CappedLines {
    /// A splitter keeping at most `cap` bytes of each line.
    pub fn new(cap: usize) -> Self {
        CappedLines {
            cap,
            line: Vec::new(),
            cut: 0,
        }
    }

    /// Feeds bytes; `emit(line, cut_bytes)` is called for each complete line.
    pub fn push(&mut self, mut bytes: &[u8], mut emit: impl FnMut(&[u8], usize)) {
        while !bytes.is_empty() {
            let (part, rest, end) = match memchr::memchr(b'\n', bytes) {
                Some(i) => (&bytes[..i], &bytes[i + 1..], true),
                None => (bytes, &[][..], false),
            };
            let room = self.cap.saturating_sub(self.line.len());
            let keep = part.len().min(room);
            self.line.extend_from_slice(&part[..keep]);
            self.cut += part.len() - keep;
            if end {
                self.emit(&mut emit);
            }
            bytes = rest;
        }
    }

    /// Emits a last line that had no newline, if any.
    pub fn finish(&mut self, mut emit: impl FnMut(&[u8], usize)) {
        if !self.line.is_empty() || self.cut > 0 {
            self.emit(&mut emit);
        }
    }

    /// Bytes of the current line held now (at most the cap).
    pub fn buffered(&self) -> usize {
        self.line.len()
    }

    fn emit(&mut self, emit: &mut impl FnMut(&[u8], usize)) {
        let line = match self.line.last() {
            Some(b'\r') if self.cut == 0 => &self.line[..self.line.len() - 1],
            _ => &self.line[..],
        };
        emit(line, self.cut);
        self.line.clear();
        self.cut = 0;
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn frames(framer: &mut Framer, chunks: &[&[u8]]) -> Vec<Result<Vec<u8>, FrameError>> {
        let mut out = Vec::new();
        for chunk in chunks {
            framer.decode(chunk, |frame| out.push(frame.map(<[u8]>::to_vec)));
        }
        out
    }

    #[test]
    fn splits_lines_and_strips_carriage_return() {
        let mut f = Framer::new(64);
        let got = frames(&mut f, &[b"a\r\nb\n\nc", b"d\n"]);
        assert_eq!(
            got,
            vec![Ok(b"a".to_vec()), Ok(b"b".to_vec()), Ok(b"cd".to_vec())]
        );
        assert_eq!(f.buffered(), 0);
    }

    #[test]
    fn oversize_line_is_reported_once_and_framing_recovers() {
        let mut f = Framer::new(4);
        let got = frames(&mut f, &[b"abc", b"defgh", b"ijk\nok\n"]);
        assert_eq!(
            got,
            vec![
                Err(FrameError::Oversize { limit: 4, id: None }),
                Ok(b"ok".to_vec())
            ]
        );
    }

    #[test]
    fn oversize_complete_line_in_one_chunk_is_skipped() {
        let mut f = Framer::new(4);
        let got = frames(&mut f, &[b"abcdefgh\nok\n"]);
        assert_eq!(
            got,
            vec![
                Err(FrameError::Oversize { limit: 4, id: None }),
                Ok(b"ok".to_vec())
            ]
        );
    }

    fn oversize(id: Option<&str>) -> Result<Vec<u8>, FrameError> {
        Err(FrameError::Oversize {
            limit: 32,
            id: id.map(|id| Id::parse(id).unwrap()),
        })
    }

    #[test]
    fn an_oversize_response_is_reported_with_its_id_before_it_ends() {
        let mut f = Framer::new(32);
        let head = br#"{"jsonrpc":"2.0","id":42,"result":{"content":[{"text":""#;
        // The head alone shows the id: reported at once, the rest unseen.
        assert_eq!(frames(&mut f, &[head]), vec![oversize(Some("42"))]);
        let rest = [b'x'; 1000];
        assert_eq!(
            frames(&mut f, &[&rest, b"\"}]}}\n{}\n"]),
            vec![Ok(b"{}".to_vec())]
        );
    }

    #[test]
    fn an_id_after_a_huge_result_is_found_when_the_line_ends() {
        let mut f = Framer::new(32);
        let big = "y".repeat(500);
        let line =
            format!(r#"{{"result":{{"text":"{big}","id":"inner"}},"jsonrpc":"2.0","id":"a\"b"}}"#);
        let (a, b) = line.as_bytes().split_at(100);
        assert_eq!(frames(&mut f, &[a]), vec![]);
        assert_eq!(
            frames(&mut f, &[b, b"\n"]),
            vec![oversize(Some(r#""a\"b""#))]
        );
        // A whole line in one chunk, too.
        assert_eq!(
            frames(&mut f, &[line.as_bytes(), b"\n"]),
            vec![oversize(Some(r#""a\"b""#))]
        );
    }

    #[test]
    fn oversize_lines_that_are_not_responses_have_no_id() {
        let mut f = Framer::new(32);
        let request = format!(
            r#"{{"jsonrpc":"2.0","id":1,"method":"sampling/createMessage","params":{{"t":"{}"}}}}"#,
            "z".repeat(100)
        );
        let notification = format!(
            r#"{{"jsonrpc":"2.0","method":"n","params":"{}"}}"#,
            "z".repeat(100)
        );
        let null_id = format!(
            r#"{{"jsonrpc":"2.0","id":null,"error":{{"code":1,"message":"{}"}}}}"#,
            "z".repeat(100)
        );
        for line in [request, notification, null_id, "[".repeat(100)] {
            let got = frames(&mut f, &[line.as_bytes(), b"\n"]);
            assert_eq!(got, vec![oversize(None)], "{line}");
        }
    }

    #[test]
    fn an_oversize_line_gives_its_memory_back() {
        let mut f = Framer::new(1 << 16);
        let chunk = vec![b'x'; 1 << 15];
        for _ in 0..3 {
            f.decode(&chunk, |_| {});
        }
        assert!(f.partial.capacity() < 1024, "{}", f.partial.capacity());
    }

    #[test]
    fn line_of_exactly_the_limit_passes_with_crlf() {
        let mut f = Framer::new(4);
        let got = frames(&mut f, &[b"ab", b"cd\r\n"]);
        assert_eq!(got, vec![Ok(b"abcd".to_vec())]);
    }

    #[test]
    fn partial_memory_is_bounded_by_the_limit() {
        let mut f = Framer::new(1000);
        let chunk = [b'x'; 300];
        for _ in 0..100 {
            f.decode(&chunk, |_| {});
            assert!(f.buffered() <= 1001);
        }
    }
    fn lines(cap: usize, chunks: &[&[u8]]) -> Vec<(String, usize)> {
        let mut out = Vec::new();
        let mut split = CappedLines::new(cap);
        for chunk in chunks {
            split.push(chunk, |l, cut| {
                out.push((String::from_utf8_lossy(l).into_owned(), cut))
            });
        }
        split.finish(|l, cut| out.push((String::from_utf8_lossy(l).into_owned(), cut)));
        out
    }

    #[test]
    fn capped_lines_split_across_chunks() {
        assert_eq!(
            lines(100, &[b"ab", b"c\r\nd", b"e\n", b"tail"]),
            vec![("abc".into(), 0), ("de".into(), 0), ("tail".into(), 0)]
        );
    }

    #[test]
    fn capped_lines_cut_long_lines_and_recover() {
        let long = vec![b'x'; 10_000];
        let out = lines(4, &[&long, &long, b"\nok\n"]);
        assert_eq!(out, vec![("xxxx".into(), 19_996), ("ok".into(), 0)]);
    }

    #[test]
    fn capped_lines_memory_stays_at_the_cap() {
        let mut split = CappedLines::new(16);
        let chunk = vec![b'y'; 1 << 20];
        for _ in 0..4 {
            split.push(&chunk, |_, _| panic!("no newline yet"));
        }
        assert!(split.line.capacity() < 1024);
        assert_eq!(split.cut, (4 << 20) - 16);
    }
}

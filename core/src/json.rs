//! Writing JSON-RPC frames and editing them in place.
//!
//! Payloads are copied as raw JSON text; only the few spans mcpod must change
//! (ids, progress tokens, subscription ids, a request's `_meta`) are touched.

use std::borrow::Cow;
use std::fmt;
use std::ops::Range;

use serde::Deserialize;
use serde::de::{Deserializer, MapAccess, Visitor};
use serde_json::value::RawValue;

/// Appends `s` as a JSON string literal.
pub(crate) fn push_str_literal(out: &mut Vec<u8>, s: &str) {
    if s.bytes().all(|b| b >= 0x20 && b != b'"' && b != b'\\') {
        out.push(b'"');
        out.extend_from_slice(s.as_bytes());
        out.push(b'"');
    } else {
        // Writing to a Vec cannot fail.
        let _ = serde_json::to_writer(&mut *out, s);
    }
}

/// Appends raw JSON, turning any newline (insignificant whitespace in valid
/// JSON: string contents cannot hold a raw newline) into a space so the
/// frame stays on one line.
pub(crate) fn push_raw(out: &mut Vec<u8>, raw: &str) {
    let start = out.len();
    out.extend_from_slice(raw.as_bytes());
    if memchr::memchr2(b'\n', b'\r', raw.as_bytes()).is_some() {
        for b in &mut out[start..] {
            if *b == b'\n' || *b == b'\r' {
                *b = b' ';
            }
        }
    }
}

/// Appends a decimal integer.
pub(crate) fn push_u64(out: &mut Vec<u8>, mut n: u64) {
    let mut buf = [0u8; 20];
    let mut i = buf.len();
    loop {
        i -= 1;
        buf[i] = b'0' + (n % 10) as u8;
        n /= 10;
        if n == 0 {
            break;
        }
    }
    out.extend_from_slice(&buf[i..]);
}

/// Appends a request line to the backend.
pub(crate) fn push_request(out: &mut Vec<u8>, id: u64, method: &str, params: Option<&str>) {
    push_call_line(out, Some(id), method, params);
}

/// Appends a notification line.
pub(crate) fn push_notification(out: &mut Vec<u8>, method: &str, params: Option<&str>) {
    push_call_line(out, None, method, params);
}

fn push_call_line(out: &mut Vec<u8>, id: Option<u64>, method: &str, params: Option<&str>) {
    out.extend_from_slice(b"{\"jsonrpc\":\"2.0\",");
    if let Some(id) = id {
        out.extend_from_slice(b"\"id\":");
        push_u64(out, id);
        out.push(b',');
    }
    out.extend_from_slice(b"\"method\":");
    push_str_literal(out, method);
    if let Some(params) = params {
        out.extend_from_slice(b",\"params\":");
        push_raw(out, params);
    }
    out.extend_from_slice(b"}\n");
}

/// Appends a success response (no trailing newline).
pub(crate) fn push_result(out: &mut Vec<u8>, id_json: &str, result: &str) {
    out.extend_from_slice(b"{\"jsonrpc\":\"2.0\",\"id\":");
    out.extend_from_slice(id_json.as_bytes());
    out.extend_from_slice(b",\"result\":");
    push_raw(out, result);
    out.push(b'}');
}

/// Appends an error response (no trailing newline).
pub(crate) fn push_error(
    out: &mut Vec<u8>,
    id_json: &str,
    code: i64,
    message: &str,
    data: Option<&str>,
) {
    out.extend_from_slice(b"{\"jsonrpc\":\"2.0\",\"id\":");
    out.extend_from_slice(id_json.as_bytes());
    out.extend_from_slice(b",\"error\":{\"code\":");
    out.extend_from_slice(code.to_string().as_bytes());
    out.extend_from_slice(b",\"message\":");
    push_str_literal(out, message);
    if let Some(data) = data {
        out.extend_from_slice(b",\"data\":");
        push_raw(out, data);
    }
    out.extend_from_slice(b"}}");
}

/// A JSON-RPC error response frame with the given id, code and message.
///
/// `id_json` must be valid JSON (an id, or `null`).
pub fn error_frame(id_json: &str, code: i64, message: &str, data: Option<&RawValue>) -> Vec<u8> {
    let mut out = Vec::with_capacity(64 + message.len());
    push_error(&mut out, id_json, code, message, data.map(RawValue::get));
    out
}

/// A JSON-RPC success response frame.
pub fn result_frame(id_json: &str, result: &RawValue) -> Vec<u8> {
    let mut out = Vec::with_capacity(32 + id_json.len() + result.get().len());
    push_result(&mut out, id_json, result.get());
    out
}

/// The byte range of `inner` within `outer`; `inner` must borrow from it.
pub(crate) fn span_in(outer: &[u8], inner: &str) -> Range<usize> {
    let start = inner.as_ptr() as usize - outer.as_ptr() as usize;
    start..start + inner.len()
}

/// `frame` with `range` replaced by `with`.
pub(crate) fn splice(frame: &[u8], range: Range<usize>, with: &str) -> Vec<u8> {
    let mut out = Vec::with_capacity(frame.len() - range.len() + with.len());
    out.extend_from_slice(&frame[..range.start]);
    out.extend_from_slice(with.as_bytes());
    out.extend_from_slice(&frame[range.end..]);
    out
}

/// The entries of a JSON object in their original order, values raw.
pub(crate) struct Entries<'a>(pub(crate) Vec<(Cow<'a, str>, &'a RawValue)>);

impl<'de: 'a, 'a> Deserialize<'de> for Entries<'a> {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        struct V<'a>(std::marker::PhantomData<&'a ()>);
        impl<'de: 'a, 'a> Visitor<'de> for V<'a> {
            type Value = Entries<'a>;
            fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str("a JSON object")
            }
            fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<Self::Value, A::Error> {
                let mut entries = Vec::new();
                while let Some(key) = map.next_key::<Cow<'de, str>>()? {
                    let value: &'de RawValue = map.next_value()?;
                    entries.push((key, value));
                }
                Ok(Entries(entries))
            }
        }
        d.deserialize_map(V(std::marker::PhantomData))
    }
}

impl Entries<'_> {
    pub(crate) fn get(&self, key: &str) -> Option<&RawValue> {
        self.0.iter().find(|(k, _)| k == key).map(|(_, v)| *v)
    }
}

/// Writes an object from entries, with `replace` applied and `extra`
/// appended.
pub(crate) fn push_object(
    out: &mut Vec<u8>,
    entries: &[(Cow<'_, str>, &RawValue)],
    edits: &[(&str, &str)],
) {
    out.push(b'{');
    let mut first = true;
    let mut sep = |out: &mut Vec<u8>| {
        if !std::mem::take(&mut first) {
            out.push(b',');
        }
    };
    for (key, value) in entries {
        sep(out);
        push_str_literal(out, key);
        out.push(b':');
        match edits.iter().find(|(k, _)| k == key) {
            Some((_, v)) => push_raw(out, v),
            None => push_raw(out, value.get()),
        }
    }
    for (key, value) in edits {
        if !entries.iter().any(|(k, _)| k == key) {
            sep(out);
            push_str_literal(out, key);
            out.push(b':');
            push_raw(out, value);
        }
    }
    out.push(b'}');
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn push_object_replaces_in_place_and_appends_missing() {
        let e: Entries<'_> = serde_json::from_str(r#"{"b":1,"a":{"x":[1,2]},"c":"\n"}"#).unwrap();
        let mut out = Vec::new();
        push_object(&mut out, &e.0, &[("a", "2"), ("z", "true")]);
        assert_eq!(out, br#"{"b":1,"a":2,"c":"\n","z":true}"#);
    }

    #[test]
    fn raw_newlines_become_spaces() {
        let mut out = Vec::new();
        push_raw(&mut out, "{\n  \"a\": \"x\\ny\"\r\n}");
        assert_eq!(out, b"{   \"a\": \"x\\ny\"  }");
    }

    #[test]
    fn string_literals_are_escaped() {
        let mut out = Vec::new();
        push_str_literal(&mut out, "a\"b\\c\u{1}");
        assert_eq!(out, br#""a\"b\\c\u0001""#);
    }
}

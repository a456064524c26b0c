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
    result_frame_text(id_json, result.get())
}

/// [`result_frame`] around JSON text the caller built from parsed values
/// (an [`edit_object`] of a result), not checked again.
///
/// `result` must be valid JSON.
pub fn result_frame_text(id_json: &str, result: &str) -> Vec<u8> {
    let mut out = Vec::with_capacity(32 + id_json.len() + result.len());
    push_result(&mut out, id_json, result);
    out
}

/// A JSON-RPC request frame (no trailing newline), for requests the gateway
/// sends to a client with an id of its own choosing.
///
/// `id_json` must be a valid JSON id.
pub fn request_frame(id_json: &str, method: &str, params: Option<&RawValue>) -> Vec<u8> {
    let mut out = Vec::with_capacity(48 + method.len() + params.map_or(0, |p| p.get().len()));
    out.extend_from_slice(b"{\"jsonrpc\":\"2.0\",\"id\":");
    out.extend_from_slice(id_json.as_bytes());
    out.extend_from_slice(b",\"method\":");
    push_str_literal(&mut out, method);
    if let Some(params) = params {
        out.extend_from_slice(b",\"params\":");
        push_raw(&mut out, params.get());
    }
    out.push(b'}');
    out
}

/// A JSON-RPC notification frame (no trailing newline). `params`, when
/// given, must be a JSON object's text (e.g. from [`object`]).
pub fn notification_frame(method: &str, params: Option<&str>) -> Vec<u8> {
    let mut out = Vec::with_capacity(48 + method.len() + params.map_or(0, str::len));
    push_notification(&mut out, method, params);
    out.pop(); // the newline
    out
}

/// A response or error frame with its id replaced by `id_json`; every
/// other byte is kept. `None` if `frame` is not a response.
pub fn readdress(frame: &[u8], id_json: &str) -> Option<Vec<u8>> {
    let id = match crate::envelope::Message::parse(frame).ok()? {
        crate::envelope::Message::Response { id, .. } => id,
        crate::envelope::Message::Error { id: Some(id), .. } => id,
        _ => return None,
    };
    Some(splice(frame, span_in(frame, id.get()), id_json))
}

/// Raw JSON of a value built by the caller (plain data always serializes;
/// a value that does not becomes `null`).
pub fn to_raw<T: serde::Serialize + ?Sized>(value: &T) -> Box<RawValue> {
    serde_json::value::to_raw_value(value).unwrap_or_else(|_| RawValue::NULL.to_owned())
}

/// `s` as a JSON string literal.
pub fn string(s: &str) -> String {
    let mut out = Vec::with_capacity(s.len() + 2);
    push_str_literal(&mut out, s);
    String::from_utf8(out).unwrap_or_default()
}

/// A JSON object from `(key, raw JSON value)` pairs, in order.
pub fn object(entries: &[(&str, &str)]) -> String {
    let mut out = Vec::with_capacity(entries.iter().map(|(k, v)| k.len() + v.len() + 4).sum());
    push_object(&mut out, &[], entries);
    String::from_utf8(out).unwrap_or_default()
}

/// The JSON object `object` with the keys in `set` given new raw values
/// (in place where present, appended otherwise) and the keys in `remove`
/// left out; every other entry is copied byte for byte, in order. `None`
/// if `object` is not a JSON object.
pub fn edit_object(object: &str, set: &[(&str, &str)], remove: &[&str]) -> Option<String> {
    let entries: Entries<'_> = serde_json::from_str(object).ok()?;
    let kept: Vec<(Cow<'_, str>, &RawValue)> = entries
        .0
        .into_iter()
        .filter(|(k, _)| !remove.contains(&k.as_ref()))
        .collect();
    let mut out = Vec::with_capacity(
        object.len()
            + set
                .iter()
                .map(|(k, v)| k.len() + v.len() + 4)
                .sum::<usize>(),
    );
    push_object(&mut out, &kept, set);
    String::from_utf8(out).ok()
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
    #[test]
    fn frames_for_clients() {
        let params = RawValue::from_string(r#"{"a":1}"#.into()).unwrap();
        assert_eq!(
            request_frame("\"g-1\"", "roots/list", Some(&params)),
            br#"{"jsonrpc":"2.0","id":"g-1","method":"roots/list","params":{"a":1}}"#
        );
        assert_eq!(
            notification_frame("n", Some(&object(&[("x", "true")]))),
            br#"{"jsonrpc":"2.0","method":"n","params":{"x":true}}"#
        );
        assert_eq!(
            notification_frame("n", None),
            br#"{"jsonrpc":"2.0","method":"n"}"#
        );
    }

    #[test]
    fn readdress_keeps_every_other_byte() {
        assert_eq!(
            readdress(br#"{"jsonrpc":"2.0","id":1,"result":{"a":1.50}}"#, "\"r\"").unwrap(),
            br#"{"jsonrpc":"2.0","id":"r","result":{"a":1.50}}"#
        );
        assert_eq!(
            readdress(
                br#"{"id":1,"jsonrpc":"2.0","error":{"code":-1,"message":"m","data":[1]}}"#,
                "2"
            )
            .unwrap(),
            br#"{"id":2,"jsonrpc":"2.0","error":{"code":-1,"message":"m","data":[1]}}"#
        );
        assert!(readdress(br#"{"jsonrpc":"2.0","method":"n"}"#, "1").is_none());
    }

    #[test]
    fn edit_object_sets_and_removes_keys() {
        let got = edit_object(
            r#"{"a":1, "b":{"x":[1.0]},"c":2}"#,
            &[("c", "3"), ("d", "\"y\"")],
            &["a"],
        );
        assert_eq!(got.as_deref(), Some(r#"{"b":{"x":[1.0]},"c":3,"d":"y"}"#));
        assert_eq!(edit_object("[1]", &[], &[]), None);
        assert_eq!(string("a\"b"), r#""a\"b""#);
    }
}

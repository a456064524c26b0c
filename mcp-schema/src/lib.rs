//! # mcpod-schema
//!
//! The official JSON schemas of each MCP revision (`2025-03-26` …
//! `2026-07-28`, the files beside this crate), compiled on demand into
//! validators of one definition each, for tests that check what a server
//! or the gateway sent against the revision in use.
//!
//! ```
//! let reply = serde_json::json!({"jsonrpc": "2.0", "id": 1, "result": {"tools": []}});
//! let errors = mcpod_schema::errors("2025-11-25", mcpod_schema::result_envelope("2025-11-25"), &reply);
//! assert!(errors.is_empty(), "{errors:?}");
//! ```

#![forbid(unsafe_code)]
#![warn(missing_docs)]

use std::collections::HashMap;
use std::sync::{Arc, Mutex, OnceLock};

use serde_json::{Value, json};

/// The revisions whose schemas are here.
pub const REVISIONS: &[&str] = &["2025-03-26", "2025-06-18", "2025-11-25", "2026-07-28"];

fn text(rev: &str) -> Option<&'static str> {
    Some(match rev {
        "2025-03-26" => include_str!("../2025-03-26.json"),
        "2025-06-18" => include_str!("../2025-06-18.json"),
        "2025-11-25" => include_str!("../2025-11-25.json"),
        "2026-07-28" => include_str!("../2026-07-28.json"),
        _ => return None,
    })
}

/// Whether `rev`'s schema is draft-07 (`definitions`) rather than 2020-12
/// (`$defs`).
fn uses_draft7(rev: &str) -> bool {
    matches!(rev, "2025-03-26" | "2025-06-18")
}

/// The name of a successful response's definition in `rev`.
pub fn result_envelope(rev: &str) -> &'static str {
    if uses_draft7(rev) {
        "JSONRPCResponse"
    } else {
        "JSONRPCResultResponse"
    }
}

/// The name of an error response's definition in `rev`.
pub fn error_envelope(rev: &str) -> &'static str {
    if uses_draft7(rev) {
        "JSONRPCError"
    } else {
        "JSONRPCErrorResponse"
    }
}

type Cache = HashMap<(String, String), Arc<jsonschema::Validator>>;

/// The compiled validator for definition `def` of revision `rev`.
///
/// # Panics
/// If `rev` is not one of [`REVISIONS`] or has no such definition (a
/// mistake in the test asking).
pub fn validator(rev: &str, def: &str) -> Arc<jsonschema::Validator> {
    static CACHE: OnceLock<Mutex<Cache>> = OnceLock::new();
    let cache = CACHE.get_or_init(Mutex::default);
    let key = (rev.to_owned(), def.to_owned());
    if let Some(v) = cache.lock().unwrap_or_else(|e| e.into_inner()).get(&key) {
        return Arc::clone(v);
    }
    let source = text(rev).unwrap_or_else(|| panic!("no schema for revision {rev}"));
    let file: Value = serde_json::from_str(source).unwrap_or_else(|e| panic!("{rev}: {e}"));
    let (defs_key, pointer) = if uses_draft7(rev) {
        ("definitions", format!("#/definitions/{def}"))
    } else {
        ("$defs", format!("#/$defs/{def}"))
    };
    let defs = file[defs_key].clone();
    assert!(defs.get(def).is_some(), "{rev} has no definition {def}");
    let schema = json!({ "$schema": file["$schema"], "$ref": pointer, defs_key: defs });
    let compiled = Arc::new(
        jsonschema::validator_for(&schema)
            .unwrap_or_else(|e| panic!("schema {rev}/{def} does not compile: {e}")),
    );
    cache
        .lock()
        .unwrap_or_else(|e| e.into_inner())
        .insert(key, Arc::clone(&compiled));
    compiled
}

/// What is wrong with `instance` as a `def` of revision `rev` (empty:
/// valid).
pub fn errors(rev: &str, def: &str, instance: &Value) -> Vec<String> {
    validator(rev, def)
        .iter_errors(instance)
        .map(|e| format!("{e} at {}", e.instance_path))
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_revision_compiles_and_tells_good_from_bad() {
        for rev in REVISIONS {
            // 2026-07-28 results say what kind of result they are.
            let ok = json!({"jsonrpc": "2.0", "id": 1, "result": {"resultType": "complete"}});
            assert!(errors(rev, result_envelope(rev), &ok).is_empty(), "{rev}");
            let bad = json!({"jsonrpc": "2.0", "id": {}, "result": {}});
            assert!(!errors(rev, result_envelope(rev), &bad).is_empty(), "{rev}");
        }
    }
}

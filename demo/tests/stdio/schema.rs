//! The schema checks can fail: replies that break the schema are rejected.

use serde_json::json;

use crate::harness::validator;

#[test]
fn validation_rejects_replies_that_break_the_schema() {
    let cases = [
        // CallToolResult without content.
        ("2025-11-25", "CallToolResult", json!({ "isError": true })),
        // Modern results must say resultType.
        ("2026-07-28", "CallToolResult", json!({ "content": [] })),
        // Modern lists must carry cache hints.
        (
            "2026-07-28",
            "ListToolsResult",
            json!({ "tools": [], "resultType": "complete" }),
        ),
        // A tool's inputSchema must be an object schema.
        (
            "2025-06-18",
            "ListToolsResult",
            json!({ "tools": [{ "name": "x", "inputSchema": { "type": "string" } }] }),
        ),
        // -32022 needs data.supported.
        (
            "2026-07-28",
            "UnsupportedProtocolVersionError",
            json!({ "jsonrpc": "2.0", "id": 1, "error": { "code": -32022, "message": "x", "data": { "requested": "y" } } }),
        ),
        // Ids are strings or integers, never null.
        (
            "2025-03-26",
            "JSONRPCError",
            json!({ "jsonrpc": "2.0", "id": null, "error": { "code": -32700, "message": "x" } }),
        ),
        (
            "2025-11-25",
            "InitializeResult",
            json!({ "protocolVersion": "2025-11-25", "capabilities": {} }),
        ),
    ];
    for (rev, def, instance) in cases {
        assert!(
            !validator(rev, def).is_valid(&instance),
            "{rev} {def} accepted {instance}"
        );
    }
}

#[test]
fn validation_accepts_well_formed_replies() {
    let ok = json!({ "content": [{ "type": "text", "text": "hi" }], "resultType": "complete" });
    assert!(validator("2026-07-28", "CallToolResult").is_valid(&ok));
}

//! Resources (`demo://hello`, `demo://server-info`) and prompts (`greet`).

use std::borrow::Cow;

use serde::Deserialize;
use serde_json::value::RawValue;
use serde_json::{Value, json};

use crate::envelope::{RpcError, code};
use crate::era::{self, Era, LEGACY_VERSIONS, MODERN_VERSIONS};
use crate::server::parse_params;
use crate::{SERVER_NAME, SERVER_VERSION};

const HELLO_URI: &str = "demo://hello";
const INFO_URI: &str = "demo://server-info";
const HELLO_TEXT: &str = "Hello from mcpod-demo!";

/// `resources/list`.
pub(crate) fn list_resources(era: Era) -> Value {
    era::cacheable(
        era,
        json!({ "resources": [
            {
                "uri": HELLO_URI,
                "name": "hello",
                "title": "Hello",
                "description": "A fixed greeting, as plain text.",
                "mimeType": "text/plain",
            },
            {
                "uri": INFO_URI,
                "name": "server-info",
                "title": "Server information",
                "description": "Name, version and supported protocol revisions of this server, as JSON.",
                "mimeType": "application/json",
            },
        ]}),
    )
}

/// `resources/templates/list`: this server has no templates.
pub(crate) fn list_resource_templates(era: Era) -> Value {
    era::cacheable(era, json!({ "resourceTemplates": [] }))
}

#[derive(Deserialize)]
struct ReadParams<'a> {
    #[serde(borrow)]
    uri: Cow<'a, str>,
}

/// `resources/read`.
pub(crate) fn read_resource(era: Era, params: Option<&RawValue>) -> Result<Value, RpcError> {
    let ReadParams { uri } = parse_params(params)?;
    let (mime, text) = match uri.as_ref() {
        HELLO_URI => ("text/plain", HELLO_TEXT.to_owned()),
        INFO_URI => (
            "application/json",
            json!({
                "name": SERVER_NAME,
                "version": SERVER_VERSION,
                "legacyVersions": LEGACY_VERSIONS,
                "modernVersions": MODERN_VERSIONS,
            })
            .to_string(),
        ),
        other => {
            // Legacy revisions name -32002 "resource not found"; 2026-07-28
            // reserves that range differently, so modern callers get -32602.
            let code = match era {
                Era::Legacy => code::RESOURCE_NOT_FOUND,
                Era::Modern => code::INVALID_PARAMS,
            };
            let mut error = RpcError::new(code, format!("resource not found: {other}"));
            error.data = Some(json!({ "uri": other }));
            return Err(error);
        }
    };
    Ok(era::cacheable(
        era,
        json!({ "contents": [{ "uri": uri, "mimeType": mime, "text": text }] }),
    ))
}

/// `prompts/list`.
pub(crate) fn list_prompts(era: Era) -> Value {
    era::cacheable(
        era,
        json!({ "prompts": [{
            "name": "greet",
            "title": "Greet someone",
            "description": "Asks the model to greet a person by name.",
            "arguments": [{
                "name": "name",
                "description": "Who to greet.",
                "required": true,
            }],
        }]}),
    )
}

#[derive(Deserialize)]
struct GetPromptParams<'a> {
    #[serde(borrow)]
    name: Cow<'a, str>,
    #[serde(default)]
    arguments: Option<GreetArguments>,
}

#[derive(Deserialize)]
struct GreetArguments {
    #[serde(default)]
    name: Option<String>,
}

/// `prompts/get`.
pub(crate) fn get_prompt(params: Option<&RawValue>) -> Result<Value, RpcError> {
    let GetPromptParams { name, arguments } = parse_params(params)?;
    if name != "greet" {
        return Err(RpcError::invalid_params(format!("unknown prompt: {name}")));
    }
    let who = arguments
        .and_then(|a| a.name)
        .ok_or_else(|| RpcError::invalid_params("prompt greet needs the argument name"))?;
    Ok(json!({
        "description": "Greet someone by name.",
        "messages": [{
            "role": "user",
            "content": { "type": "text", "text": format!("Please greet {who} warmly.") },
        }],
    }))
}

//! Which tool arguments a 2026-07-28 client mirrors into `Mcp-Param-*`
//! headers (SEP-2243): those whose input schema property carries
//! `x-mcp-header`. Learnt per backend from the `tools/list` results that
//! pass through the gateway, or fetched when a call names a tool not seen
//! yet; the front end checks the headers against the body with them.

use std::collections::HashMap;
use std::time::Duration;

use mcpod_core::json::{object, string};
use mcpod_tokio::{CallItem, Deadline, OwnedRequest, RequestOptions};
use parking_lot::Mutex;
use serde::Deserialize;
use serde_json::value::RawValue;

use crate::targets::Backend;

/// Pages of `tools/list` fetched at most when learning the headers.
const MAX_PAGES: usize = 32;
/// How long fetching one page may take.
const PAGE_TIMEOUT: Duration = Duration::from_secs(10);

/// One argument mirrored into a header.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct HeaderParam {
    /// The argument's name in `params.arguments`.
    pub(crate) argument: String,
    /// The header's name after `Mcp-Param-`.
    pub(crate) header: String,
}

/// The header-mirrored arguments of a backend's tools.
#[derive(Debug, Default)]
pub(crate) struct ToolHeaders {
    /// Tool name → its header params (tools without any are absent).
    known: Mutex<Option<HashMap<String, Vec<HeaderParam>>>>,
}

#[derive(Deserialize)]
struct ToolsPage {
    #[serde(default)]
    tools: Vec<Tool>,
    #[serde(rename = "nextCursor", default)]
    next_cursor: Option<String>,
}

#[derive(Deserialize)]
struct Tool {
    name: String,
    #[serde(rename = "inputSchema", default)]
    input_schema: Option<Schema>,
}

#[derive(Deserialize)]
struct Schema {
    #[serde(default)]
    properties: HashMap<String, Property>,
}

#[derive(Deserialize)]
struct Property {
    #[serde(rename = "x-mcp-header", default)]
    header: Option<String>,
}

fn params_of(tool: Tool) -> (String, Vec<HeaderParam>) {
    let mut params: Vec<HeaderParam> = tool
        .input_schema
        .map(|s| s.properties)
        .unwrap_or_default()
        .into_iter()
        .filter_map(|(argument, p)| {
            Some(HeaderParam {
                argument,
                header: p.header?,
            })
        })
        .collect();
    params.sort_by(|a, b| a.argument.cmp(&b.argument));
    (tool.name, params)
}

impl ToolHeaders {
    /// Learns from a `tools/list` result (one page).
    pub(crate) fn note_result(&self, result: &str) {
        let Ok(page) = serde_json::from_str::<ToolsPage>(result) else {
            return;
        };
        let mut known = self.known.lock();
        let map = known.get_or_insert_with(HashMap::new);
        for tool in page.tools {
            let (name, params) = params_of(tool);
            if params.is_empty() {
                map.remove(&name);
            } else {
                map.insert(name, params);
            }
        }
    }

    fn lookup(&self, tool: &str) -> Option<Vec<HeaderParam>> {
        let known = self.known.lock();
        let map = known.as_ref()?;
        Some(map.get(tool).cloned().unwrap_or_default())
    }

    /// The header params of `tool`, fetching the backend's tool list when
    /// nothing is known yet.
    pub(crate) async fn of(&self, backend: &Backend, tool: &str) -> Vec<HeaderParam> {
        if let Some(params) = self.lookup(tool) {
            return params;
        }
        self.fetch(backend).await;
        self.lookup(tool).unwrap_or_default()
    }

    async fn fetch(&self, backend: &Backend) {
        let mut cursor: Option<String> = None;
        let mut all = HashMap::new();
        for page in 0..MAX_PAGES {
            let params = cursor
                .as_ref()
                .map(|c| object(&[("cursor", &string(c))]))
                .and_then(|p| RawValue::from_string(p).ok());
            let id = RawValue::from_string(string(&format!("mcpod-tools-{page}")))
                .unwrap_or_else(|_| RawValue::NULL.to_owned());
            let opts = RequestOptions {
                deadline: Deadline::After(PAGE_TIMEOUT),
                ..RequestOptions::default()
            };
            let Ok(call) = backend
                .upstream
                .call(OwnedRequest::new(id, "tools/list", params), opts)
                .await
            else {
                return;
            };
            let Some(CallItem::Response {
                frame,
                is_error: false,
            }) = call.finish().await
            else {
                return;
            };
            let Ok(mcpod_core::Message::Response { result, .. }) =
                mcpod_core::Message::parse(&frame)
            else {
                return;
            };
            let Ok(page) = serde_json::from_str::<ToolsPage>(result.get()) else {
                return;
            };
            for tool in page.tools {
                let (name, params) = params_of(tool);
                if !params.is_empty() {
                    all.insert(name, params);
                }
            }
            match page.next_cursor {
                Some(next) if !next.is_empty() => cursor = Some(next),
                _ => break,
            }
        }
        *self.known.lock() = Some(all);
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;

    #[test]
    fn learns_header_params_from_a_tools_list_page() {
        let headers = ToolHeaders::default();
        assert!(headers.lookup("t").is_none(), "nothing known yet");
        headers.note_result(
            r#"{"tools":[{"name":"t","inputSchema":{"type":"object","properties":{"region":{"type":"string","x-mcp-header":"Region"},"q":{"type":"string"}}}},{"name":"plain","inputSchema":{"type":"object"}}]}"#,
        );
        assert_eq!(
            headers.lookup("t").unwrap(),
            vec![HeaderParam {
                argument: "region".into(),
                header: "Region".into()
            }]
        );
        assert_eq!(headers.lookup("plain").unwrap(), vec![]);
        assert_eq!(headers.lookup("unknown").unwrap(), vec![]);
    }
}

//! CORS on the MCP routes and the protected resource metadata, for browser
//! clients (an MCP Inspector web UI) from the Origins the guard allows —
//! and for no others.
//!
//! A preflight (`OPTIONS` with `Origin` and `Access-Control-Request-Method`)
//! from an allowed Origin is answered here with 204, before any route: it
//! needs no bearer token (browsers send none), and its answer is the same
//! for every target name, known or not, so it tells nothing. Responses to
//! an allowed Origin name it in `Access-Control-Allow-Origin` and expose the
//! headers a client must read. The Origin is echoed, never `*`, and no
//! credentials are allowed: clients send their token in `Authorization`,
//! not as a cookie. A foreign Origin never gets here: the guard refuses it.

use std::sync::Arc;

use axum::extract::{Request, State};
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};
use http::{HeaderMap, HeaderValue, Method, StatusCode, header};

use super::app::App;

/// Methods of the MCP routes.
const ALLOW_METHODS: &str = "GET, POST, DELETE";

/// Request headers an MCP client sends (plus any `Mcp-Param-*` a preflight
/// asks for: their names depend on the tool).
const ALLOW_HEADERS: &str = "Content-Type, Authorization, Mcp-Session-Id, MCP-Protocol-Version, \
                             Mcp-Method, Mcp-Name, Last-Event-ID, Accept";

/// Response headers a browser client must be able to read.
const EXPOSE_HEADERS: &str = "Mcp-Session-Id, MCP-Protocol-Version, WWW-Authenticate";

/// How long a browser may cache a preflight, in seconds.
const MAX_AGE: &str = "3600";

/// Prefix of the SEP-2243 parameter headers.
const PARAM_PREFIX: &str = "mcp-param-";

/// Answers preflights and marks responses on the MCP routes for allowed
/// Origins; other routes and requests without an allowed Origin pass
/// untouched (but for `Vary: Origin` on the MCP routes).
pub(super) async fn cors(State(app): State<Arc<App>>, request: Request, next: Next) -> Response {
    let path = request.uri().path();
    if !is_mcp_path(path) && !super::resource::is_metadata_path(path) {
        return next.run(request).await;
    }
    let origin = request
        .headers()
        .get(header::ORIGIN)
        .filter(|o| app.guard.origin_allowed(o))
        .cloned();
    let Some(origin) = origin else {
        let mut response = next.run(request).await;
        vary(response.headers_mut(), "Origin");
        return response;
    };
    if request.method() == Method::OPTIONS
        && request
            .headers()
            .contains_key(header::ACCESS_CONTROL_REQUEST_METHOD)
    {
        return preflight(origin, request.headers());
    }
    let mut response = next.run(request).await;
    let headers = response.headers_mut();
    headers.insert(header::ACCESS_CONTROL_ALLOW_ORIGIN, origin);
    headers.insert(
        header::ACCESS_CONTROL_EXPOSE_HEADERS,
        HeaderValue::from_static(EXPOSE_HEADERS),
    );
    vary(headers, "Origin");
    response
}

/// `/mcp/{target}`, `/mcp/{target}/sse`, `/mcp/{target}/messages`.
fn is_mcp_path(path: &str) -> bool {
    let Some(rest) = path.strip_prefix("/mcp/") else {
        return false;
    };
    let (target, tail) = match rest.split_once('/') {
        Some((target, tail)) => (target, Some(tail)),
        None => (rest, None),
    };
    !target.is_empty() && matches!(tail, None | Some("sse" | "messages"))
}

fn preflight(origin: HeaderValue, request: &HeaderMap) -> Response {
    let mut response = StatusCode::NO_CONTENT.into_response();
    let headers = response.headers_mut();
    headers.insert(header::ACCESS_CONTROL_ALLOW_ORIGIN, origin);
    headers.insert(
        header::ACCESS_CONTROL_ALLOW_METHODS,
        HeaderValue::from_static(ALLOW_METHODS),
    );
    headers.insert(header::ACCESS_CONTROL_ALLOW_HEADERS, allow_headers(request));
    headers.insert(
        header::ACCESS_CONTROL_MAX_AGE,
        HeaderValue::from_static(MAX_AGE),
    );
    vary(headers, "Origin, Access-Control-Request-Headers");
    response
}

/// The fixed list, plus the `Mcp-Param-*` names the preflight asks for.
fn allow_headers(request: &HeaderMap) -> HeaderValue {
    let mut list = ALLOW_HEADERS.to_owned();
    for asked in request.get_all(header::ACCESS_CONTROL_REQUEST_HEADERS) {
        let Ok(asked) = asked.to_str() else { continue };
        for name in asked.split(',').map(str::trim) {
            let is_param = name
                .get(..PARAM_PREFIX.len())
                .is_some_and(|p| p.eq_ignore_ascii_case(PARAM_PREFIX));
            if is_param && name.len() > PARAM_PREFIX.len() && is_token(name) {
                list.push_str(", ");
                list.push_str(name);
            }
        }
    }
    HeaderValue::from_str(&list).unwrap_or_else(|_| HeaderValue::from_static(ALLOW_HEADERS))
}

/// An HTTP token (RFC 9110 §5.6.2): what a header name may be.
fn is_token(s: &str) -> bool {
    s.bytes()
        .all(|b| b.is_ascii_alphanumeric() || b"!#$%&'*+-.^_`|~".contains(&b))
}

fn vary(headers: &mut HeaderMap, value: &'static str) {
    headers.append(header::VARY, HeaderValue::from_static(value));
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn mcp_paths() {
        for yes in ["/mcp/demo", "/mcp/x/sse", "/mcp/x/messages"] {
            assert!(is_mcp_path(yes), "{yes}");
        }
        for no in [
            "/mcp/",
            "/mcp",
            "/mcp/x/y",
            "/mcp/x/sse/more",
            "/bots/b/container/fs-mcp",
            "/metrics",
        ] {
            assert!(!is_mcp_path(no), "{no}");
        }
    }

    #[test]
    fn parameter_headers_asked_for_are_allowed() {
        let mut h = HeaderMap::new();
        h.insert(
            header::ACCESS_CONTROL_REQUEST_HEADERS,
            HeaderValue::from_static("content-type, mcp-param-region, x-other, mcp-param-, a b"),
        );
        let v = allow_headers(&h);
        let v = v.to_str().unwrap();
        assert!(v.starts_with(ALLOW_HEADERS), "{v}");
        assert!(v.ends_with(", mcp-param-region"), "{v}");
        assert!(!v.contains("x-other"), "{v}");
        assert_eq!(allow_headers(&HeaderMap::new()), ALLOW_HEADERS);
    }
}

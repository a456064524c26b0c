//! DNS-rebinding protection: the `Origin` allow-list and, on loopback
//! listeners, the check of the authority a request is addressed to — its
//! *effective* authority, the same for HTTP/1.1 and HTTP/2: the request
//! target's authority when it has one (HTTP/2 `:authority`, an HTTP/1.1
//! absolute-form target), else `Host`. A missing (HTTP/1.1) or duplicate
//! `Host` is refused for every listener, as RFC 9112 §3.2 requires.

use http::{HeaderMap, HeaderValue, StatusCode, Uri, Version, header};

use crate::web::errors::{ApiError, INVALID_REQUEST, SERVER_ERROR};

/// Which `Origin` and `Host` values are accepted.
#[derive(Debug, Clone)]
pub(crate) struct HostGuard {
    allowed_origins: Vec<String>,
    any_origin: bool,
    allowed_hosts: Vec<String>,
    loopback_listener: bool,
}

/// The parts of a request the guard looks at.
#[derive(Debug, Clone, Copy)]
pub(crate) struct Addressed<'a> {
    /// Its HTTP version.
    pub(crate) version: Version,
    /// Its target (with an authority for HTTP/2 and absolute-form HTTP/1.1).
    pub(crate) uri: &'a Uri,
    /// Its header fields.
    pub(crate) headers: &'a HeaderMap,
}

impl HostGuard {
    /// A guard from the config's lists.
    pub(crate) fn new(
        allowed_origins: &[String],
        allowed_hosts: &[String],
        loopback_listener: bool,
    ) -> Self {
        HostGuard {
            any_origin: allowed_origins.iter().any(|o| o == "*"),
            allowed_origins: allowed_origins
                .iter()
                .map(|o| o.trim_end_matches('/').to_ascii_lowercase())
                .collect(),
            allowed_hosts: allowed_hosts
                .iter()
                .map(|h| h.to_ascii_lowercase())
                .collect(),
            loopback_listener,
        }
    }

    /// Checks a request's authority and `Origin`.
    ///
    /// The request must name one authority (400 otherwise). An `Origin`
    /// (when present) must be allowed ([`HostGuard::origin_allowed`]). On a
    /// loopback listener the effective authority must name a loopback host
    /// or an allowed host.
    pub(crate) fn check(&self, request: Addressed<'_>) -> Result<(), ApiError> {
        let authority = effective_authority(request)?;
        if let Some(origin) = request.headers.get(header::ORIGIN)
            && !self.origin_allowed(origin)
        {
            return Err(ApiError::new(
                StatusCode::FORBIDDEN,
                SERVER_ERROR,
                format!("origin `{}` is not allowed", normalize_origin(origin)),
            ));
        }
        if self.loopback_listener
            && let Some(authority) = authority
        {
            let name = host_name(&authority);
            let ok = is_loopback_name(name)
                || self
                    .allowed_hosts
                    .iter()
                    .any(|a| a == name || *a == authority);
            if !ok {
                return Err(ApiError::new(
                    StatusCode::FORBIDDEN,
                    SERVER_ERROR,
                    format!(
                        "host `{authority}` is not allowed on a loopback listener (see allowed_hosts)"
                    ),
                ));
            }
        }
        Ok(())
    }

    /// Whether a browser `Origin` is allowed: in the allow-list (`"*"`:
    /// any), or a loopback origin while the listener is loopback.
    pub(crate) fn origin_allowed(&self, origin: &HeaderValue) -> bool {
        let origin = normalize_origin(origin);
        self.any_origin
            || self.allowed_origins.contains(&origin)
            || (self.loopback_listener && origin_is_loopback(&origin))
    }
}

fn normalize_origin(origin: &HeaderValue) -> String {
    origin
        .to_str()
        .map(|o| o.trim().trim_end_matches('/').to_ascii_lowercase())
        .unwrap_or_default()
}

fn bad_authority(message: impl Into<String>) -> ApiError {
    ApiError::bad_request(INVALID_REQUEST, message)
}

/// The authority a request is addressed to, lowercased and without
/// userinfo; `None` for an HTTP/1.0 request without `Host` (nothing to
/// rebind). 400 for a request that names none, or more than one.
fn effective_authority(request: Addressed<'_>) -> Result<Option<String>, ApiError> {
    let mut hosts = request.headers.get_all(header::HOST).iter();
    let host = hosts.next();
    if hosts.next().is_some() {
        return Err(bad_authority("more than one Host header"));
    }
    let host = host.map(host_value).transpose()?;
    if let Some(target) = request.uri.authority() {
        let target = target.as_str();
        // Userinfo is no part of the host (RFC 9110 §4.2.4).
        let target = target
            .rsplit_once('@')
            .map_or(target, |(_, h)| h)
            .to_ascii_lowercase();
        if request.version == Version::HTTP_11 && host.is_none() {
            return Err(bad_authority("an HTTP/1.1 request needs a Host header"));
        }
        // HTTP/1.1: the target's authority wins and Host is ignored (RFC
        // 9112 §3.2.2). HTTP/2: a Host naming another host than `:authority`
        // makes the request malformed (RFC 9113 §8.3.1), and one of the two
        // would go unchecked.
        if request.version >= Version::HTTP_2
            && let Some(host) = &host
            && host_name(host) != host_name(&target)
        {
            return Err(bad_authority(format!(
                "the Host header `{host}` differs from the request's authority `{target}`"
            )));
        }
        return Ok(Some(target));
    }
    match host {
        Some(host) => Ok(Some(host)),
        None if request.version <= Version::HTTP_10 => Ok(None),
        None if request.version == Version::HTTP_11 => {
            Err(bad_authority("an HTTP/1.1 request needs a Host header"))
        }
        None => Err(bad_authority(
            "the request names no authority (neither :authority nor Host)",
        )),
    }
}

/// A `Host` value, lowercased: `host[:port]`, nothing else (400).
fn host_value(value: &HeaderValue) -> Result<String, ApiError> {
    let invalid = || bad_authority("the Host header is not a valid host[:port]");
    let text = value.to_str().map_err(|_| invalid())?.trim();
    if text.is_empty() || text.contains('@') {
        return Err(invalid());
    }
    text.parse::<http::uri::Authority>()
        .map_err(|_| invalid())?;
    // The parser takes any port text; a port is digits.
    let port = match text.strip_prefix('[') {
        Some(rest) => match rest.split_once(']') {
            Some((_, "")) => None,
            Some((_, after)) => Some(after.strip_prefix(':').ok_or_else(invalid)?),
            None => return Err(invalid()),
        },
        None => text.split_once(':').map(|(_, port)| port),
    };
    if port.is_some_and(|p| p.is_empty() || !p.bytes().all(|b| b.is_ascii_digit())) {
        return Err(invalid());
    }
    Ok(text.to_ascii_lowercase())
}

/// The host part of a `Host` value (`name`, `name:port`, `[v6]:port`).
fn host_name(host: &str) -> &str {
    if let Some(rest) = host.strip_prefix('[') {
        return rest.split(']').next().unwrap_or("");
    }
    match host.rsplit_once(':') {
        Some((name, port)) if port.bytes().all(|b| b.is_ascii_digit()) => name,
        _ => host,
    }
}

fn is_loopback_name(name: &str) -> bool {
    name == "localhost"
        || name.ends_with(".localhost")
        || name
            .parse::<std::net::IpAddr>()
            .is_ok_and(|ip| ip.is_loopback())
}

fn origin_is_loopback(origin: &str) -> bool {
    let rest = origin
        .strip_prefix("http://")
        .or_else(|| origin.strip_prefix("https://"));
    rest.is_some_and(|r| is_loopback_name(host_name(r)))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn h(origin: Option<&str>, host: &str) -> HeaderMap {
        let mut m = HeaderMap::new();
        m.insert(header::HOST, HeaderValue::from_str(host).unwrap());
        if let Some(o) = origin {
            m.insert(header::ORIGIN, HeaderValue::from_str(o).unwrap());
        }
        m
    }

    /// An HTTP/1.1 request in origin form with these headers.
    fn check(g: &HostGuard, headers: &HeaderMap) -> Result<(), ApiError> {
        let uri = Uri::from_static("/mcp/demo");
        g.check(Addressed {
            version: Version::HTTP_11,
            uri: &uri,
            headers,
        })
    }

    fn status(g: &HostGuard, version: Version, uri: &str, headers: &HeaderMap) -> u16 {
        let uri: Uri = uri.parse().unwrap();
        match g.check(Addressed {
            version,
            uri: &uri,
            headers,
        }) {
            Ok(()) => 200,
            Err(e) => e.status.as_u16(),
        }
    }

    #[test]
    fn origins() {
        let g = HostGuard::new(&["https://app.example.com".into()], &[], true);
        assert!(check(&g, &h(None, "127.0.0.1:8080")).is_ok());
        assert!(check(&g, &h(Some("https://app.example.com"), "localhost:8080")).is_ok());
        assert!(check(&g, &h(Some("http://localhost:3000"), "localhost")).is_ok());
        assert_eq!(
            check(&g, &h(Some("https://evil.example"), "127.0.0.1"))
                .unwrap_err()
                .status,
            StatusCode::FORBIDDEN
        );
        let any = HostGuard::new(&["*".into()], &[], false);
        assert!(check(&any, &h(Some("https://evil.example"), "x")).is_ok());
        let public = HostGuard::new(&[], &[], false);
        assert!(check(&public, &h(Some("http://localhost:1"), "mcp.example.com")).is_err());
    }

    #[test]
    fn hosts_on_loopback() {
        let g = HostGuard::new(&[], &["gw.internal".into()], true);
        for ok in [
            "localhost",
            "127.0.0.1:8080",
            "[::1]:80",
            "gw.internal:8080",
            "a.localhost",
        ] {
            assert!(check(&g, &h(None, ok)).is_ok(), "{ok}");
        }
        for bad in ["evil.example", "evil.example:8080", "10.0.0.1"] {
            assert!(check(&g, &h(None, bad)).is_err(), "{bad}");
        }
        let public = HostGuard::new(&[], &[], false);
        assert!(check(&public, &h(None, "evil.example")).is_ok());
    }

    #[test]
    fn the_effective_authority_is_checked() {
        let g = HostGuard::new(&[], &[], true);
        let local = h(None, "127.0.0.1:8080");
        let none = HeaderMap::new();
        // The target's authority wins over Host (HTTP/1.1 absolute form).
        let evil = "http://evil.example/mcp/demo";
        assert_eq!(status(&g, Version::HTTP_11, evil, &local), 403);
        assert_eq!(
            status(&g, Version::HTTP_11, "http://localhost:1/x", &local),
            200
        );
        assert_eq!(
            status(
                &g,
                Version::HTTP_11,
                "http://evil.example@127.0.0.1/",
                &local
            ),
            200,
            "userinfo is no part of the host"
        );
        assert_eq!(
            status(
                &g,
                Version::HTTP_11,
                "http://127.0.0.1@evil.example/",
                &local
            ),
            403
        );
        // HTTP/2: `:authority`, with or without a Host that agrees.
        assert_eq!(status(&g, Version::HTTP_2, evil, &none), 403);
        assert_eq!(
            status(&g, Version::HTTP_2, "http://127.0.0.1:8080/", &none),
            200
        );
        assert_eq!(
            status(&g, Version::HTTP_2, "http://127.0.0.1:8080/", &local),
            200
        );
        assert_eq!(
            status(&g, Version::HTTP_2, "http://localhost/", &local),
            400
        );
        assert_eq!(status(&g, Version::HTTP_2, "/mcp/demo", &local), 200);
        assert_eq!(status(&g, Version::HTTP_2, "/mcp/demo", &none), 400);
        // Missing, duplicate and malformed Host: 400 on every listener.
        let public = HostGuard::new(&[], &[], false);
        let mut two = local.clone();
        two.append(header::HOST, HeaderValue::from_static("evil.example"));
        for g in [&g, &public] {
            assert_eq!(status(g, Version::HTTP_11, "/mcp/demo", &none), 400);
            assert_eq!(status(g, Version::HTTP_11, evil, &none), 400);
            assert_eq!(status(g, Version::HTTP_11, "/mcp/demo", &two), 400);
            for bad in [
                "",
                "a b",
                "user@127.0.0.1",
                "127.0.0.1:x",
                "::1",
                "[::1]x",
                "h:",
            ] {
                assert_eq!(
                    status(g, Version::HTTP_11, "/", &h(None, bad)),
                    400,
                    "{bad:?}"
                );
            }
            assert_eq!(status(g, Version::HTTP_10, "/mcp/demo", &none), 200);
        }
    }
}

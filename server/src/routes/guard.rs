//! DNS-rebinding protection: the `Origin` allow-list and, on loopback
//! listeners, the `Host` check.

use http::{HeaderMap, StatusCode, header};

use crate::web::errors::{ApiError, SERVER_ERROR};

/// Which `Origin` and `Host` values are accepted.
#[derive(Debug, Clone)]
pub(crate) struct HostGuard {
    allowed_origins: Vec<String>,
    any_origin: bool,
    allowed_hosts: Vec<String>,
    loopback_listener: bool,
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

    /// Checks a request's `Origin` and `Host`.
    ///
    /// An `Origin` (when present) must be in the allow-list, or be a
    /// loopback origin while the listener is loopback. On a loopback
    /// listener the `Host` must name a loopback host or an allowed host.
    pub(crate) fn check(&self, headers: &HeaderMap) -> Result<(), ApiError> {
        if let Some(origin) = headers.get(header::ORIGIN) {
            let origin = origin
                .to_str()
                .map(|o| o.trim().trim_end_matches('/').to_ascii_lowercase())
                .unwrap_or_default();
            let allowed = self.any_origin
                || self.allowed_origins.contains(&origin)
                || (self.loopback_listener && origin_is_loopback(&origin));
            if !allowed {
                return Err(ApiError::new(
                    StatusCode::FORBIDDEN,
                    SERVER_ERROR,
                    format!("origin `{origin}` is not allowed"),
                ));
            }
        }
        if self.loopback_listener {
            let host = headers
                .get(header::HOST)
                .and_then(|h| h.to_str().ok())
                .map(|h| h.trim().to_ascii_lowercase());
            let ok = match &host {
                // HTTP/1.0 without Host: nothing to rebind.
                None => true,
                Some(h) => {
                    let name = host_name(h);
                    is_loopback_name(name) || self.allowed_hosts.iter().any(|a| a == name || a == h)
                }
            };
            if !ok {
                return Err(ApiError::new(
                    StatusCode::FORBIDDEN,
                    SERVER_ERROR,
                    format!(
                        "host `{}` is not allowed on a loopback listener (see allowed_hosts)",
                        host.unwrap_or_default()
                    ),
                ));
            }
        }
        Ok(())
    }
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
    use http::HeaderValue;

    fn h(origin: Option<&str>, host: &str) -> HeaderMap {
        let mut m = HeaderMap::new();
        m.insert(header::HOST, HeaderValue::from_str(host).unwrap());
        if let Some(o) = origin {
            m.insert(header::ORIGIN, HeaderValue::from_str(o).unwrap());
        }
        m
    }

    #[test]
    fn origins() {
        let g = HostGuard::new(&["https://app.example.com".into()], &[], true);
        assert!(g.check(&h(None, "127.0.0.1:8080")).is_ok());
        assert!(
            g.check(&h(Some("https://app.example.com"), "localhost:8080"))
                .is_ok()
        );
        assert!(
            g.check(&h(Some("http://localhost:3000"), "localhost"))
                .is_ok()
        );
        assert_eq!(
            g.check(&h(Some("https://evil.example"), "127.0.0.1"))
                .unwrap_err()
                .status,
            StatusCode::FORBIDDEN
        );
        let any = HostGuard::new(&["*".into()], &[], false);
        assert!(any.check(&h(Some("https://evil.example"), "x")).is_ok());
        let public = HostGuard::new(&[], &[], false);
        assert!(
            public
                .check(&h(Some("http://localhost:1"), "mcp.example.com"))
                .is_err()
        );
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
            assert!(g.check(&h(None, ok)).is_ok(), "{ok}");
        }
        for bad in ["evil.example", "evil.example:8080", "10.0.0.1"] {
            assert!(g.check(&h(None, bad)).is_err(), "{bad}");
        }
        let public = HostGuard::new(&[], &[], false);
        assert!(public.check(&h(None, "evil.example")).is_ok());
    }
}

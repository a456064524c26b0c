//! `[auth.oauth]` and `[targets.NAME.auth.oauth]`: the gateway as an OAuth
//! 2.1 resource server (MCP authorization), validated.

use std::path::PathBuf;
use std::time::Duration;

use serde::Deserialize;

use super::duration::RawDuration;
use super::error::{ConfigError, invalid};

/// The asymmetric JWS algorithms an access token may be signed with.
/// Symmetric ones (`HS*`) are never accepted: a JWKS holds public keys,
/// and a key published to verify must not be usable to sign.
pub const ALGORITHMS: &[&str] = &[
    "RS256", "RS384", "RS512", "PS256", "PS384", "PS512", "ES256", "ES384", "EdDSA",
];

/// Scopes in `required_scopes`, at most.
pub(super) const MAX_REQUIRED_SCOPES: usize = 64;

/// The longest `leeway`: clocks that disagree by more are broken.
pub(super) const MAX_LEEWAY: Duration = Duration::from_secs(300);

/// `[auth.oauth]` or `[targets.NAME.auth.oauth]` as written.
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawOAuth {
    /// The authorization server's issuer identifier (the `iss` claim, and
    /// the `authorization_servers` entry of the resource metadata).
    pub issuer: Option<String>,
    /// The `aud` the tokens must carry (RFC 8707: this resource's URI):
    /// one value or a list, any of which is accepted.
    pub audience: Option<OneOrMany>,
    /// The JWS algorithms accepted (default `["RS256", "ES256"]`).
    pub algorithms: Option<Vec<String>>,
    /// Where the issuer's JWKS is fetched from (`https://`, or `http://`
    /// for a loopback host).
    pub jwks_url: Option<String>,
    /// A JWKS on disk, instead of `jwks_url`.
    pub jwks_file: Option<PathBuf>,
    /// Scopes every token must carry (403 `insufficient_scope` otherwise).
    pub required_scopes: Option<Vec<String>>,
    /// Clock skew allowed on `exp` and `nbf` (default 30 s).
    pub leeway: Option<RawDuration>,
}

/// A string, or a list of strings.
#[derive(Debug, Clone, Deserialize)]
#[serde(untagged)]
pub enum OneOrMany {
    /// One value.
    One(String),
    /// Several.
    Many(Vec<String>),
}

/// `[targets.NAME.auth]` as written.
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawTargetAuth {
    /// Which credentials the target accepts: `"tokens"` (static bearer
    /// tokens) and/or `"oauth"` (default: each that is configured for it).
    pub methods: Option<Vec<String>>,
    /// `[targets.NAME.auth.oauth]`: the target's own issuer (replacing
    /// `[auth.oauth]`).
    pub oauth: Option<RawOAuth>,
}

/// Where the issuer's signing keys come from.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum JwksSource {
    /// Fetched over HTTP(S), cached, fetched again for an unknown `kid`.
    Url(String),
    /// Read from a file (again for an unknown `kid`).
    File(PathBuf),
}

/// One issuer's settings, validated.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct OAuthConfig {
    /// The expected `iss`.
    pub issuer: String,
    /// The accepted `aud` values.
    pub audience: Vec<String>,
    /// The accepted algorithms (a subset of [`ALGORITHMS`]).
    pub algorithms: Vec<String>,
    /// The signing keys.
    pub jwks: JwksSource,
    /// Scopes every token must carry.
    pub required_scopes: Vec<String>,
    /// Clock skew allowed.
    pub leeway: Duration,
}

/// The credentials a target accepts.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct AuthMethods {
    /// Static bearer tokens (its own, or the global ones).
    pub tokens: bool,
    /// OAuth access tokens (its own issuer, or `[auth.oauth]`).
    pub oauth: bool,
}

fn is_loopback_host(url: &str) -> bool {
    let rest = url.split_once("://").map_or(url, |(_, r)| r);
    let authority = rest.split(['/', '?', '#']).next().unwrap_or("");
    let host = authority.rsplit_once('@').map_or(authority, |(_, h)| h);
    let host = if let Some(v6) = host.strip_prefix('[') {
        v6.split(']').next().unwrap_or("")
    } else {
        host.split(':').next().unwrap_or("")
    };
    host == "localhost"
        || host
            .parse::<std::net::IpAddr>()
            .is_ok_and(|ip| ip.is_loopback())
}

fn check_url(key: &str, url: &str) -> Result<(), ConfigError> {
    let ok = url.starts_with("https://") || (url.starts_with("http://") && is_loopback_host(url));
    if !ok || url.len() > 2048 || url.chars().any(|c| c.is_whitespace() || c.is_control()) {
        return Err(invalid(
            key,
            format!("`{url}` is not an https:// URL (http:// is allowed for loopback hosts only)"),
        ));
    }
    Ok(())
}

impl OAuthConfig {
    /// Validates `raw`, found at `key` (`auth.oauth` or
    /// `targets.NAME.auth.oauth`).
    pub fn from_raw(key: &str, raw: RawOAuth) -> Result<OAuthConfig, ConfigError> {
        let issuer = raw
            .issuer
            .filter(|i| !i.trim().is_empty())
            .ok_or_else(|| invalid(format!("{key}.issuer"), "missing (the `iss` of the tokens)"))?;
        check_url(&format!("{key}.issuer"), &issuer)?;
        let audience = match raw.audience {
            None => {
                return Err(invalid(
                    format!("{key}.audience"),
                    "missing (the `aud` the tokens must carry: this resource's URI)",
                ));
            }
            Some(OneOrMany::One(a)) => vec![a],
            Some(OneOrMany::Many(a)) => a,
        };
        if audience.is_empty() || audience.len() > 16 {
            return Err(invalid(format!("{key}.audience"), "give 1 to 16 values"));
        }
        for (i, a) in audience.iter().enumerate() {
            if a.trim().is_empty() || a.len() > 2048 {
                return Err(invalid(
                    format!("{key}.audience[{i}]"),
                    "must not be empty (at most 2048 characters)",
                ));
            }
        }
        let algorithms = raw
            .algorithms
            .unwrap_or_else(|| vec!["RS256".to_owned(), "ES256".to_owned()]);
        if algorithms.is_empty() {
            return Err(invalid(
                format!("{key}.algorithms"),
                "no algorithms given: no token could pass",
            ));
        }
        for (i, a) in algorithms.iter().enumerate() {
            if !ALGORITHMS.contains(&a.as_str()) {
                return Err(invalid(
                    format!("{key}.algorithms[{i}]"),
                    format!(
                        "`{a}` is not accepted (one of {}; symmetric HS* and `none` never are)",
                        ALGORITHMS.join(", ")
                    ),
                ));
            }
        }
        let jwks = match (raw.jwks_url, raw.jwks_file) {
            (Some(url), None) => {
                check_url(&format!("{key}.jwks_url"), &url)?;
                JwksSource::Url(url)
            }
            (None, Some(path)) => {
                if !path.is_absolute() {
                    return Err(invalid(
                        format!("{key}.jwks_file"),
                        format!("`{}` is not an absolute path", path.display()),
                    ));
                }
                JwksSource::File(path)
            }
            (Some(_), Some(_)) => {
                return Err(invalid(
                    format!("{key}.jwks_file"),
                    "give jwks_url or jwks_file, not both",
                ));
            }
            (None, None) => {
                return Err(invalid(
                    format!("{key}.jwks_url"),
                    "missing (or jwks_file): where the issuer's signing keys are",
                ));
            }
        };
        let required_scopes = raw.required_scopes.unwrap_or_default();
        if required_scopes.len() > MAX_REQUIRED_SCOPES {
            return Err(invalid(
                format!("{key}.required_scopes"),
                format!("at most {MAX_REQUIRED_SCOPES} scopes"),
            ));
        }
        for (i, s) in required_scopes.iter().enumerate() {
            // RFC 6749 scope-token: %x21 / %x23-5B / %x5D-7E.
            let ok = !s.is_empty()
                && s.len() <= 256
                && s.bytes()
                    .all(|b| b.is_ascii_graphic() && b != b'"' && b != b'\\');
            if !ok {
                return Err(invalid(
                    format!("{key}.required_scopes[{i}]"),
                    "a scope is printable ASCII without spaces, `\"` or `\\`",
                ));
            }
        }
        let leeway_key = format!("{key}.leeway");
        let leeway = raw
            .leeway
            .map(|l| l.parse(&leeway_key))
            .transpose()?
            .unwrap_or(Duration::from_secs(30));
        if leeway > MAX_LEEWAY {
            return Err(invalid(leeway_key, "at most 5 minutes"));
        }
        Ok(OAuthConfig {
            issuer,
            audience,
            algorithms,
            jwks,
            required_scopes,
            leeway,
        })
    }
}

impl AuthMethods {
    /// Reads `[targets.NAME.auth] methods`, given what is configured for
    /// the target (its own or the global tokens; its own or the global
    /// issuer).
    pub(super) fn from_raw(
        key: &str,
        methods: Option<&[String]>,
        has_tokens: bool,
        has_oauth: bool,
    ) -> Result<AuthMethods, ConfigError> {
        let Some(methods) = methods else {
            return Ok(AuthMethods {
                tokens: has_tokens,
                oauth: has_oauth,
            });
        };
        let key = format!("{key}.auth.methods");
        let mut chosen = AuthMethods {
            tokens: false,
            oauth: false,
        };
        for (i, m) in methods.iter().enumerate() {
            match m.as_str() {
                "tokens" if has_tokens => chosen.tokens = true,
                "oauth" if has_oauth => chosen.oauth = true,
                "tokens" => {
                    return Err(invalid(
                        format!("{key}[{i}]"),
                        "no tokens are configured for this target (its own or auth.tokens)",
                    ));
                }
                "oauth" => {
                    return Err(invalid(
                        format!("{key}[{i}]"),
                        "no issuer is configured for this target (auth.oauth or its own)",
                    ));
                }
                other => {
                    return Err(invalid(
                        format!("{key}[{i}]"),
                        format!("`{other}`: expected \"tokens\" or \"oauth\""),
                    ));
                }
            }
        }
        if !chosen.tokens && !chosen.oauth {
            return Err(invalid(key, "empty: no client could get in"));
        }
        Ok(chosen)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn loopback_hosts() {
        assert!(is_loopback_host("http://127.0.0.1:9/jwks"));
        assert!(is_loopback_host("http://localhost/jwks"));
        assert!(is_loopback_host("http://[::1]:80/"));
        assert!(!is_loopback_host("http://127.0.0.1.example.com/"));
        assert!(!is_loopback_host("http://example.com/"));
    }
}

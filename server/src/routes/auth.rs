//! Bearer-token auth: static tokens, compared in constant time, and OAuth
//! access tokens ([`super::oauth`]), with the challenges of RFC 6750 and
//! RFC 9728.

use std::collections::BTreeMap;

use http::{HeaderMap, HeaderValue, StatusCode, header};
use subtle::ConstantTimeEq;

use super::oauth::{Refusal, Verifier};
use crate::ids::{Identity, Principal};
use crate::web::errors::{ApiError, SERVER_ERROR};

/// The tokens one route accepts (borrowed from the config: checking a
/// request copies nothing).
#[derive(Debug, Clone, Copy)]
pub(crate) enum TokenSet<'a> {
    /// Auth is disabled (loopback listeners only; checked at config load).
    Disabled,
    /// Any of these tokens (`names`: the names of named ones, by token).
    Tokens(&'a [String], &'a BTreeMap<String, String>),
}

/// Who passed a route's check.
#[derive(Debug, Clone)]
pub(crate) struct Authorized {
    /// Whose sessions, quotas and parked calls these are.
    pub(crate) principal: Principal,
    /// What policies see of them.
    pub(crate) identity: Identity,
}

impl Authorized {
    fn anonymous() -> Authorized {
        Authorized {
            principal: Principal::anonymous(),
            identity: Identity::default(),
        }
    }
}

/// What one route accepts: static tokens, OAuth access tokens of one
/// issuer, or both; and where its protected resource metadata is, for the
/// challenge of a refusal.
#[derive(Debug, Clone, Copy)]
pub(crate) struct Gate<'a> {
    /// Static tokens (`None`: not accepted here).
    pub(crate) tokens: Option<TokenSet<'a>>,
    /// The issuer whose access tokens are accepted here.
    pub(crate) oauth: Option<&'a Verifier>,
    /// The absolute URL of the route's resource metadata.
    pub(crate) metadata: Option<&'a str>,
}

impl TokenSet<'_> {
    /// The caller if `presented` is one of the tokens.
    fn matching(&self, presented: &str) -> Option<Authorized> {
        let TokenSet::Tokens(tokens, names) = self else {
            return Some(Authorized::anonymous());
        };
        let mut ok = subtle::Choice::from(0u8);
        for token in tokens.iter() {
            ok |= token.as_bytes().ct_eq(presented.as_bytes());
        }
        bool::from(ok).then(|| Authorized {
            principal: Principal::of_token(presented),
            identity: Identity {
                token: names.get(presented).cloned(),
                ..Identity::default()
            },
        })
    }
}

impl Gate<'_> {
    /// Checks the request's bearer token against what the route accepts.
    pub(crate) async fn check(&self, headers: &HeaderMap) -> Result<Authorized, ApiError> {
        if matches!(self.tokens, Some(TokenSet::Disabled)) {
            return Ok(Authorized::anonymous());
        }
        let Some(oauth) = self.oauth else {
            let Some(presented) = bearer(headers) else {
                return Err(unauthorized(
                    "missing bearer token",
                    HeaderValue::from_static(r#"Bearer realm="mcpod""#),
                ));
            };
            return self
                .tokens
                .and_then(|t| t.matching(presented))
                .ok_or_else(|| {
                    unauthorized(
                        "invalid bearer token",
                        HeaderValue::from_static(r#"Bearer realm="mcpod", error="invalid_token""#),
                    )
                });
        };
        let Some(presented) = bearer(headers) else {
            return Err(self.challenge(oauth, None, "missing bearer token"));
        };
        if let Some(tokens) = self.tokens {
            if let Some(ok) = tokens.matching(presented) {
                return Ok(ok);
            }
        }
        match oauth.verify(presented).await {
            Ok((principal, identity)) => Ok(Authorized {
                principal,
                identity,
            }),
            Err(Refusal::Invalid(why)) => Err(self.challenge(oauth, Some("invalid_token"), &why)),
            Err(Refusal::Scope(missing)) => Err(self.insufficient_scope(oauth, &missing)),
        }
    }

    /// 401 with a `Bearer` challenge that points at the resource metadata
    /// and names the required scopes.
    fn challenge(&self, oauth: &Verifier, error: Option<&str>, why: &str) -> ApiError {
        let mut parts = Vec::new();
        if let Some(url) = self.metadata {
            parts.push(format!("resource_metadata=\"{}\"", quoted(url)));
        }
        let scopes = &oauth.config().required_scopes;
        if !scopes.is_empty() {
            parts.push(format!("scope=\"{}\"", quoted(&scopes.join(" "))));
        }
        if let Some(error) = error {
            parts.push(format!("error=\"{error}\""));
            parts.push(format!("error_description=\"{}\"", quoted(why)));
        }
        let value = if parts.is_empty() {
            "Bearer".to_owned()
        } else {
            format!("Bearer {}", parts.join(", "))
        };
        let value =
            HeaderValue::from_str(&value).unwrap_or_else(|_| HeaderValue::from_static("Bearer"));
        unauthorized(why, value)
    }

    /// 403 `insufficient_scope`, naming every scope the route needs.
    fn insufficient_scope(&self, oauth: &Verifier, missing: &[String]) -> ApiError {
        let mut value = format!(
            "Bearer error=\"insufficient_scope\", scope=\"{}\"",
            quoted(&oauth.config().required_scopes.join(" "))
        );
        if let Some(url) = self.metadata {
            value.push_str(&format!(", resource_metadata=\"{}\"", quoted(url)));
        }
        let message = format!("the token lacks the scopes {}", missing.join(" "));
        value.push_str(&format!(", error_description=\"{}\"", quoted(&message)));
        let value = HeaderValue::from_str(&value)
            .unwrap_or_else(|_| HeaderValue::from_static("Bearer error=\"insufficient_scope\""));
        ApiError::new(StatusCode::FORBIDDEN, SERVER_ERROR, message)
            .with_header(header::WWW_AUTHENTICATE, value)
    }
}

/// `text` fit for a quoted-string of a challenge: printable ASCII, without
/// `"` and `\\`.
fn quoted(text: &str) -> String {
    text.chars()
        .map(|c| match c {
            '"' | '\\' => '\'',
            c if c.is_ascii_graphic() || c == ' ' => c,
            _ => '?',
        })
        .collect()
}

fn bearer(headers: &HeaderMap) -> Option<&str> {
    let value = headers.get(header::AUTHORIZATION)?.to_str().ok()?.trim();
    let (scheme, token) = value.split_once(' ')?;
    scheme
        .eq_ignore_ascii_case("bearer")
        .then(|| token.trim())
        .filter(|t| !t.is_empty())
}

fn unauthorized(message: &str, challenge: HeaderValue) -> ApiError {
    ApiError::new(StatusCode::UNAUTHORIZED, SERVER_ERROR, message)
        .with_header(header::WWW_AUTHENTICATE, challenge)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn headers(auth: Option<&str>) -> HeaderMap {
        let mut h = HeaderMap::new();
        if let Some(a) = auth {
            h.insert(header::AUTHORIZATION, HeaderValue::from_str(a).unwrap());
        }
        h
    }

    fn check(gate: Gate<'_>, auth: Option<&str>) -> Result<Authorized, ApiError> {
        tokio::runtime::Builder::new_current_thread()
            .build()
            .unwrap()
            .block_on(gate.check(&headers(auth)))
    }

    #[test]
    fn bearer_tokens() {
        let tokens = vec![
            "a-very-long-token-1".to_owned(),
            "another-long-token-2".to_owned(),
        ];
        let mut names = BTreeMap::new();
        names.insert("another-long-token-2".to_owned(), "ci".to_owned());
        let gate = Gate {
            tokens: Some(TokenSet::Tokens(&tokens, &names)),
            oauth: None,
            metadata: None,
        };
        let one = check(gate, Some("Bearer a-very-long-token-1")).unwrap();
        assert_eq!(one.identity.token, None);
        let two = check(gate, Some("bearer another-long-token-2")).unwrap();
        assert_eq!(two.identity.token.as_deref(), Some("ci"));
        assert_ne!(one.principal, two.principal);
        let e = check(gate, Some("Bearer nope")).unwrap_err();
        assert_eq!(e.status, StatusCode::UNAUTHORIZED);
        assert!(e.headers.iter().any(|(k, _)| k == header::WWW_AUTHENTICATE));
        assert!(check(gate, None).is_err());
        assert!(check(gate, Some("Basic a-very-long-token-1")).is_err());
        let off = Gate {
            tokens: Some(TokenSet::Disabled),
            oauth: None,
            metadata: None,
        };
        assert!(check(off, None).unwrap().principal.is_anonymous());
    }

    #[test]
    fn challenge_values_stay_quoted_strings() {
        assert_eq!(quoted("a \"b\" \\ c\n"), "a 'b' ' c?");
    }
}

//! Bearer-token auth, compared in constant time.

use http::{HeaderMap, HeaderValue, StatusCode, header};
use subtle::ConstantTimeEq;

use crate::ids::Principal;
use crate::web::errors::{ApiError, SERVER_ERROR};

/// The tokens one route accepts (borrowed from the config: checking a
/// request copies nothing).
#[derive(Debug, Clone, Copy)]
pub(crate) enum TokenSet<'a> {
    /// Auth is disabled (loopback listeners only; checked at config load).
    Disabled,
    /// Any of these tokens.
    Tokens(&'a [String]),
}

impl TokenSet<'_> {
    /// Checks the request's `Authorization: Bearer …` header; the caller's
    /// principal if it passes.
    ///
    /// Every configured token is compared (in constant time for equal
    /// lengths), so the time taken does not tell which one nearly matched.
    pub(crate) fn check(&self, headers: &HeaderMap) -> Result<Principal, ApiError> {
        let TokenSet::Tokens(tokens) = self else {
            return Ok(Principal::anonymous());
        };
        let Some(presented) = bearer(headers) else {
            return Err(unauthorized(
                "missing bearer token",
                r#"Bearer realm="mcpod""#,
            ));
        };
        let mut ok = subtle::Choice::from(0u8);
        for token in tokens.iter() {
            ok |= token.as_bytes().ct_eq(presented.as_bytes());
        }
        if bool::from(ok) {
            Ok(Principal::of_token(presented))
        } else {
            Err(unauthorized(
                "invalid bearer token",
                r#"Bearer realm="mcpod", error="invalid_token""#,
            ))
        }
    }
}

fn bearer(headers: &HeaderMap) -> Option<&str> {
    let value = headers.get(header::AUTHORIZATION)?.to_str().ok()?.trim();
    let (scheme, token) = value.split_once(' ')?;
    scheme
        .eq_ignore_ascii_case("bearer")
        .then(|| token.trim())
        .filter(|t| !t.is_empty())
}

fn unauthorized(message: &str, challenge: &'static str) -> ApiError {
    ApiError::new(StatusCode::UNAUTHORIZED, SERVER_ERROR, message).with_header(
        header::WWW_AUTHENTICATE,
        HeaderValue::from_static(challenge),
    )
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

    #[test]
    fn bearer_tokens() {
        let tokens = vec![
            "a-very-long-token-1".to_owned(),
            "another-long-token-2".to_owned(),
        ];
        let set = TokenSet::Tokens(&tokens);
        assert!(
            set.check(&headers(Some("Bearer a-very-long-token-1")))
                .is_ok()
        );
        assert!(
            set.check(&headers(Some("bearer another-long-token-2")))
                .is_ok()
        );
        let e = set.check(&headers(Some("Bearer nope"))).unwrap_err();
        assert_eq!(e.status, StatusCode::UNAUTHORIZED);
        assert!(e.headers.iter().any(|(k, _)| k == header::WWW_AUTHENTICATE));
        assert!(set.check(&headers(None)).is_err());
        assert!(
            set.check(&headers(Some("Basic a-very-long-token-1")))
                .is_err()
        );
        assert!(TokenSet::Disabled.check(&headers(None)).is_ok());
    }
}

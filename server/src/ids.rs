//! Identifiers: random ones (session ids, connection ids, request-state
//! tokens), and the [`Principal`] a request was made by.

use std::sync::OnceLock;

use hmac::{Hmac, Mac};
use rand::RngCore;
use sha2::Sha256;

/// Who made a request, as far as the gateway can tell: a keyed hash of
/// the bearer token it presented (never the token itself), or anyone when
/// auth is off. Sessions, their streams and parked calls are bound to
/// theirs; another principal is answered as if they did not exist.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub(crate) enum Principal {
    /// Every caller, when auth is off.
    Anonymous,
    /// The holder of one token: `token:` and 32 hex digits of its HMAC.
    Token(Box<str>),
    /// The subject of OAuth access tokens: `oauth:` and 32 hex digits of
    /// the HMAC of the issuer and the `sub` claim, so every token the
    /// issuer gives one subject (refreshed, other scopes) is one principal.
    Subject(Box<str>),
}

impl Principal {
    /// Every caller, when auth is off.
    pub(crate) fn anonymous() -> Principal {
        Principal::Anonymous
    }

    /// The holder of `token`: HMAC-SHA256 of it under a key made when the
    /// process starts, so the id tells nothing of the token.
    pub(crate) fn of_token(token: &str) -> Principal {
        Principal::Token(format!("token:{}", keyed_hash(&[token.as_bytes()])).into())
    }

    /// The subject `subject` of the issuer `issuer`: HMAC-SHA256 of both
    /// under the same process key, so the id tells neither and stays of one
    /// size however long a subject is.
    pub(crate) fn of_subject(issuer: &str, subject: &str) -> Principal {
        let id = keyed_hash(&[issuer.as_bytes(), b"\0", subject.as_bytes()]);
        Principal::Subject(format!("oauth:{id}").into())
    }

    /// Whether it is every caller's (auth off).
    pub(crate) fn is_anonymous(&self) -> bool {
        matches!(self, Principal::Anonymous)
    }

    /// Its text, for keys and MACs.
    pub(crate) fn as_str(&self) -> &str {
        match self {
            Principal::Anonymous => "anonymous",
            Principal::Token(id) | Principal::Subject(id) => id,
        }
    }
}

/// 32 hex digits of HMAC-SHA256 of `parts` (concatenated) under a key
/// made when the process starts.
fn keyed_hash(parts: &[&[u8]]) -> String {
    static KEY: OnceLock<[u8; 32]> = OnceLock::new();
    let key = KEY.get_or_init(|| {
        let mut k = [0u8; 32];
        rand::rng().fill_bytes(&mut k);
        k
    });
    let Ok(mut mac) = Hmac::<Sha256>::new_from_slice(key) else {
        return String::new(); // any key length is accepted by HMAC
    };
    for part in parts {
        mac.update(part);
    }
    hex(&mac.finalize().into_bytes()[..16])
}

/// What a request's credentials say of its caller, for the target's
/// policy: the static token's name, or an OAuth token's subject and
/// scopes. Nothing for anyone (auth off) or an unnamed token.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub(crate) struct Identity {
    /// The `name` of the static token presented, if it has one.
    pub(crate) token: Option<String>,
    /// The `sub` claim of the OAuth access token presented.
    pub(crate) subject: Option<String>,
    /// Its scopes (`scope`, space-separated, or `scp`).
    pub(crate) scopes: Vec<String>,
}

/// `bytes` random bytes as lowercase hex (`bytes * 2` digits).
pub(crate) fn random_hex(bytes: usize) -> String {
    let mut buf = vec![0u8; bytes];
    rand::rng().fill_bytes(&mut buf);
    hex(&buf)
}

/// A random (version 4) UUID in its usual text form.
pub(crate) fn uuid_v4() -> String {
    let mut b = [0u8; 16];
    rand::rng().fill_bytes(&mut b);
    b[6] = (b[6] & 0x0f) | 0x40;
    b[8] = (b[8] & 0x3f) | 0x80;
    let h = hex(&b);
    format!(
        "{}-{}-{}-{}-{}",
        &h[0..8],
        &h[8..12],
        &h[12..16],
        &h[16..20],
        &h[20..32]
    )
}

/// `bytes` as lowercase hex.
pub(crate) fn hex(bytes: &[u8]) -> String {
    const DIGITS: &[u8; 16] = b"0123456789abcdef";
    let mut out = String::with_capacity(bytes.len() * 2);
    for b in bytes {
        out.push(char::from(DIGITS[usize::from(b >> 4)]));
        out.push(char::from(DIGITS[usize::from(b & 0x0f)]));
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn shapes() {
        let h = random_hex(16);
        assert_eq!(h.len(), 32);
        assert!(h.bytes().all(|b| b.is_ascii_hexdigit()));
        assert_ne!(h, random_hex(16));
        let u = uuid_v4();
        assert_eq!(u.len(), 36);
        assert_eq!(&u[14..15], "4");
        assert!(matches!(&u[19..20], "8" | "9" | "a" | "b"));
    }
}

//! Identifiers: random ones (session ids, connection ids, request-state
//! tokens), the [`Principal`] a request was made by, and sealed tokens
//! ([`Sealer`]: what a replica hands out for another to read back).

mod seal;

pub(crate) use seal::{MAX_OLD_KEYS, SealKey, Sealer, Unsealed, unix_now};

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
    /// The holder of one token: `token:` and 32 hex digits of its HMAC
    /// (the id, for logs and keys), and the token's fingerprint (for
    /// sealed tokens only, see [`Principal::seal_tag`]).
    Token(Box<str>, [u8; 16]),
    /// The subject of OAuth access tokens: `oauth:` and 32 hex digits of
    /// the HMAC of the issuer and the `sub` claim, so every token the
    /// issuer gives one subject (refreshed, other scopes) is one principal;
    /// and the fingerprint of both (for sealed tokens only).
    Subject(Box<str>, [u8; 16]),
}

impl Principal {
    /// Every caller, when auth is off.
    pub(crate) fn anonymous() -> Principal {
        Principal::Anonymous
    }

    /// The holder of `token`: HMAC-SHA256 of it under a key made when the
    /// process starts, so the id tells nothing of the token.
    pub(crate) fn of_token(token: &str) -> Principal {
        Principal::Token(
            format!("token:{}", keyed_hash(&[token.as_bytes()])).into(),
            fingerprint(&[b"token\0", token.as_bytes()]),
        )
    }

    /// The subject `subject` of the issuer `issuer`: HMAC-SHA256 of both
    /// under the same process key, so the id tells neither and stays of one
    /// size however long a subject is.
    pub(crate) fn of_subject(issuer: &str, subject: &str) -> Principal {
        let parts: [&[u8]; 3] = [issuer.as_bytes(), b"\0", subject.as_bytes()];
        let id = keyed_hash(&parts);
        Principal::Subject(
            format!("oauth:{id}").into(),
            fingerprint(&[b"oauth\0", issuer.as_bytes(), b"\0", subject.as_bytes()]),
        )
    }

    /// What names the principal inside a sealed token, the same in every
    /// replica (the id of [`Principal::as_str`] is keyed per process):
    /// `anonymous`, or 32 hex digits of a SHA-256 of the token (or of the
    /// issuer and subject). It is only ever written inside sealed
    /// (encrypted) tokens, never in the clear.
    pub(crate) fn seal_tag(&self) -> String {
        match self {
            Principal::Anonymous => "anonymous".to_owned(),
            Principal::Token(_, fingerprint) | Principal::Subject(_, fingerprint) => {
                hex(fingerprint)
            }
        }
    }

    /// Whether it is every caller's (auth off).
    pub(crate) fn is_anonymous(&self) -> bool {
        matches!(self, Principal::Anonymous)
    }

    /// Its text, for keys and MACs.
    pub(crate) fn as_str(&self) -> &str {
        match self {
            Principal::Anonymous => "anonymous",
            Principal::Token(id, _) | Principal::Subject(id, _) => id,
        }
    }
}

/// The first 16 bytes of SHA-256 of `parts` (concatenated), under a label
/// of its own.
fn fingerprint(parts: &[&[u8]]) -> [u8; 16] {
    use sha2::Digest as _;
    let mut hasher = Sha256::new().chain_update(b"mcpod principal fingerprint\0");
    for part in parts {
        hasher.update(part);
    }
    let digest = hasher.finalize();
    let mut out = [0u8; 16];
    out.copy_from_slice(&digest[..16]);
    out
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

    #[test]
    fn seal_tags_name_the_token_alike_everywhere_and_differ_between_tokens() {
        let a = Principal::of_token("token-a-0123456789");
        assert_eq!(
            a.seal_tag(),
            Principal::of_token("token-a-0123456789").seal_tag()
        );
        assert_ne!(
            a.seal_tag(),
            Principal::of_token("token-b-0123456789").seal_tag()
        );
        assert_eq!(a.seal_tag().len(), 32);
        assert!(!a.seal_tag().contains("token-a"));
        assert_eq!(Principal::anonymous().seal_tag(), "anonymous");
    }

    #[test]
    fn seal_tags_name_an_oauth_subject_alike_everywhere_and_apart_from_tokens() {
        let a = Principal::of_subject("https://issuer.example", "alice");
        assert_eq!(
            a.seal_tag(),
            Principal::of_subject("https://issuer.example", "alice").seal_tag()
        );
        assert_ne!(
            a.seal_tag(),
            Principal::of_subject("https://issuer.example", "bob").seal_tag()
        );
        assert_ne!(
            a.seal_tag(),
            Principal::of_subject("https://other.example", "alice").seal_tag()
        );
        // A static token spelling the same bytes is another principal.
        assert_ne!(
            a.seal_tag(),
            Principal::of_token("https://issuer.example\0alice").seal_tag()
        );
        assert_eq!(a.seal_tag().len(), 32);
    }
}

//! Sealed tokens: small payloads encrypted and authenticated
//! (XChaCha20-Poly1305, RustCrypto's `chacha20poly1305`) under a key the
//! replicas of a deployment share, written as base64url text. A token
//! carries its expiry; a token of one purpose (a session id) does not open
//! as another (a `requestState`); old keys still open the tokens they
//! sealed while those live (key rotation).

use std::fmt;

use base64::Engine as _;
use base64::engine::general_purpose::{STANDARD, URL_SAFE_NO_PAD};
use chacha20poly1305::aead::{Aead, KeyInit, Payload};
use chacha20poly1305::{XChaCha20Poly1305, XNonce};
use rand::RngCore;

/// Bytes of a key.
pub(crate) const KEY_BYTES: usize = 32;
/// Bytes of a nonce (random per token: XChaCha's 192 bits never repeat in
/// practice).
const NONCE_BYTES: usize = 24;
/// Bytes of the expiry in front of the payload.
const EXPIRY_BYTES: usize = 8;
/// Old keys accepted at most, beside the current one.
pub(crate) const MAX_OLD_KEYS: usize = 8;

/// A 32-byte key. Its `Debug` never shows it.
#[derive(Clone, PartialEq, Eq)]
pub(crate) struct SealKey([u8; KEY_BYTES]);

impl fmt::Debug for SealKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("SealKey(redacted)")
    }
}

impl SealKey {
    /// A fresh random key (a process that shares its tokens with no other).
    pub(crate) fn random() -> SealKey {
        let mut k = [0u8; KEY_BYTES];
        rand::rng().fill_bytes(&mut k);
        SealKey(k)
    }

    /// The key in a key file: exactly 32 bytes, or (surrounding whitespace
    /// trimmed) 64 hex digits or the base64 of 32 bytes.
    pub(crate) fn from_file_bytes(bytes: &[u8]) -> Result<SealKey, String> {
        if let Ok(raw) = <[u8; KEY_BYTES]>::try_from(bytes) {
            return Ok(SealKey(raw));
        }
        let text = std::str::from_utf8(bytes)
            .map_err(|_| "not 32 bytes, 64 hex digits or base64 of 32 bytes".to_owned())?
            .trim();
        let decoded = if text.len() == 2 * KEY_BYTES && text.bytes().all(|b| b.is_ascii_hexdigit())
        {
            (0..KEY_BYTES)
                .map(|i| u8::from_str_radix(&text[2 * i..2 * i + 2], 16))
                .collect::<Result<Vec<u8>, _>>()
                .map_err(|e| e.to_string())?
        } else {
            STANDARD
                .decode(text)
                .or_else(|_| URL_SAFE_NO_PAD.decode(text.trim_end_matches('=')))
                .map_err(|_| {
                    format!(
                        "holds {} bytes that are not a key: expected 32 random bytes, 64 hex digits \
                         or the base64 of 32 bytes (e.g. `head -c 32 /dev/urandom > key`)",
                        bytes.len()
                    )
                })?
        };
        <[u8; KEY_BYTES]>::try_from(decoded.as_slice())
            .map(SealKey)
            .map_err(|_| format!("decodes to {} bytes, not 32", decoded.len()))
    }
}

/// Why a token did not open.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Unsealed {
    /// Not sealed by any key accepted here for this purpose, or altered.
    Bad,
    /// Authentic, but past its expiry.
    Expired,
}

/// Seals and opens tokens under the current key; opens those of the old
/// keys too.
pub(crate) struct Sealer {
    current: XChaCha20Poly1305,
    old: Vec<XChaCha20Poly1305>,
}

impl fmt::Debug for Sealer {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Sealer")
            .field("old_keys", &self.old.len())
            .finish_non_exhaustive()
    }
}

impl Sealer {
    /// Seals under `current`, opens under it and `old` (the first
    /// [`MAX_OLD_KEYS`] of them).
    pub(crate) fn new(current: &SealKey, old: &[SealKey]) -> Sealer {
        Sealer {
            current: XChaCha20Poly1305::new((&current.0).into()),
            old: old
                .iter()
                .take(MAX_OLD_KEYS)
                .map(|k| XChaCha20Poly1305::new((&k.0).into()))
                .collect(),
        }
    }

    /// `payload` sealed for `purpose`, valid until `expires` (seconds since
    /// the Unix epoch): base64url text without padding.
    pub(crate) fn seal(&self, purpose: &[u8], payload: &[u8], expires: u64) -> String {
        let mut nonce = [0u8; NONCE_BYTES];
        rand::rng().fill_bytes(&mut nonce);
        let mut plain = Vec::with_capacity(EXPIRY_BYTES + payload.len());
        plain.extend_from_slice(&expires.to_be_bytes());
        plain.extend_from_slice(payload);
        let sealed = self
            .current
            .encrypt(
                XNonce::from_slice(&nonce),
                Payload {
                    msg: &plain,
                    aad: purpose,
                },
            )
            // Encryption fails only for messages beyond 2^38 bytes.
            .unwrap_or_default();
        let mut out = Vec::with_capacity(NONCE_BYTES + sealed.len());
        out.extend_from_slice(&nonce);
        out.extend_from_slice(&sealed);
        URL_SAFE_NO_PAD.encode(out)
    }

    /// The payload of `token` sealed for `purpose`, if a key accepted here
    /// sealed it and it has not expired at `now` (seconds since the Unix
    /// epoch).
    pub(crate) fn open(&self, purpose: &[u8], token: &str, now: u64) -> Result<Vec<u8>, Unsealed> {
        let bytes = URL_SAFE_NO_PAD.decode(token).map_err(|_| Unsealed::Bad)?;
        if bytes.len() < NONCE_BYTES {
            return Err(Unsealed::Bad);
        }
        let (nonce, sealed) = bytes.split_at(NONCE_BYTES);
        let nonce = XNonce::from_slice(nonce);
        let plain = std::iter::once(&self.current)
            .chain(&self.old)
            .find_map(|key| {
                key.decrypt(
                    nonce,
                    Payload {
                        msg: sealed,
                        aad: purpose,
                    },
                )
                .ok()
            })
            .ok_or(Unsealed::Bad)?;
        let (expiry, payload) = plain
            .split_first_chunk::<EXPIRY_BYTES>()
            .ok_or(Unsealed::Bad)?;
        if u64::from_be_bytes(*expiry) <= now {
            return Err(Unsealed::Expired);
        }
        Ok(payload.to_vec())
    }
}

/// Seconds since the Unix epoch, now.
pub(crate) fn unix_now() -> u64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.as_secs())
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;

    const NOW: u64 = 1_800_000_000;

    #[test]
    fn round_trip() {
        let k = SealKey::random();
        let s = Sealer::new(&k, &[]);
        let t = s.seal(b"p", b"hello", NOW + 60);
        assert!(
            t.bytes()
                .all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_')
        );
        assert_eq!(s.open(b"p", &t, NOW).unwrap(), b"hello");
        // Every token differs (random nonce), even of the same payload.
        assert_ne!(t, s.seal(b"p", b"hello", NOW + 60));
    }

    #[test]
    fn tampered_tokens_and_other_purposes_do_not_open() {
        let s = Sealer::new(&SealKey::random(), &[]);
        let t = s.seal(b"session", b"payload", NOW + 60);
        assert_eq!(s.open(b"input", &t, NOW), Err(Unsealed::Bad));
        let mut bytes = URL_SAFE_NO_PAD.decode(&t).unwrap();
        for i in [0, NONCE_BYTES, bytes.len() - 1] {
            bytes[i] ^= 1;
            let forged = URL_SAFE_NO_PAD.encode(&bytes);
            assert_eq!(
                s.open(b"session", &forged, NOW),
                Err(Unsealed::Bad),
                "byte {i}"
            );
            bytes[i] ^= 1;
        }
        assert_eq!(
            s.open(b"session", &t[..t.len() - 2], NOW),
            Err(Unsealed::Bad)
        );
        assert_eq!(s.open(b"session", "", NOW), Err(Unsealed::Bad));
        assert_eq!(s.open(b"session", "not base64!", NOW), Err(Unsealed::Bad));
        assert_eq!(s.open(b"session", "abcd", NOW), Err(Unsealed::Bad));
    }

    #[test]
    fn another_key_does_not_open() {
        let s = Sealer::new(&SealKey::random(), &[]);
        let foreign = Sealer::new(&SealKey::random(), &[]);
        let t = foreign.seal(b"p", b"x", NOW + 60);
        assert_eq!(s.open(b"p", &t, NOW), Err(Unsealed::Bad));
    }

    #[test]
    fn rotation_old_keys_open_until_dropped() {
        let old = SealKey::random();
        let new = SealKey::random();
        let before = Sealer::new(&old, &[]);
        let t_old = before.seal(b"p", b"old", NOW + 60);
        let rotated = Sealer::new(&new, std::slice::from_ref(&old));
        assert_eq!(rotated.open(b"p", &t_old, NOW).unwrap(), b"old");
        // New tokens are sealed with the new key: the old-only replica
        // does not open them, a replica already rotated does.
        let t_new = rotated.seal(b"p", b"new", NOW + 60);
        assert_eq!(before.open(b"p", &t_new, NOW), Err(Unsealed::Bad));
        assert_eq!(
            Sealer::new(&new, &[]).open(b"p", &t_new, NOW).unwrap(),
            b"new"
        );
        // Once the old key is dropped, its tokens are refused.
        assert_eq!(
            Sealer::new(&new, &[]).open(b"p", &t_old, NOW),
            Err(Unsealed::Bad)
        );
    }

    #[test]
    fn expiry() {
        let s = Sealer::new(&SealKey::random(), &[]);
        let t = s.seal(b"p", b"x", NOW + 10);
        assert!(s.open(b"p", &t, NOW + 9).is_ok());
        assert_eq!(s.open(b"p", &t, NOW + 10), Err(Unsealed::Expired));
        assert_eq!(s.open(b"p", &t, NOW + 1000), Err(Unsealed::Expired));
    }

    #[test]
    fn key_files() {
        let raw = [7u8; 32];
        let k = SealKey::from_file_bytes(&raw).unwrap();
        assert_eq!(k, SealKey([7u8; 32]));
        let hex = "07".repeat(32);
        assert_eq!(
            SealKey::from_file_bytes(format!("{hex}\n").as_bytes()).unwrap(),
            k
        );
        let b64 = STANDARD.encode(raw);
        assert_eq!(
            SealKey::from_file_bytes(format!(" {b64}\n").as_bytes()).unwrap(),
            k
        );
        assert!(SealKey::from_file_bytes(b"short").is_err());
        assert!(SealKey::from_file_bytes(&[1u8; 31]).is_err());
        assert!(SealKey::from_file_bytes(STANDARD.encode([1u8; 16]).as_bytes()).is_err());
        assert_eq!(format!("{k:?}"), "SealKey(redacted)");
    }
}

//! Access tokens one verifier accepted lately, so a client's next request
//! with the same token skips the signature check. An entry lasts until
//! the token expires (its `exp` plus the leeway) or for [`MAX_HOLD`],
//! whichever comes first, and only while the issuer's keys are the ones it
//! was checked against (the JWKS's generation: a read of the keys, say
//! after a rotation, has every token checked again). Only accepted tokens
//! are kept, under their SHA-256, at most [`MAX_TOKENS`]; time is an
//! argument (unix seconds).

use std::collections::HashMap;

use parking_lot::Mutex;
use sha2::{Digest, Sha256};

use crate::ids::{Identity, Principal};

/// The longest an accepted token is taken on trust without checking its
/// signature again.
pub(crate) const MAX_HOLD: u64 = 60;
/// Tokens kept, at most.
pub(crate) const MAX_TOKENS: usize = 4096;

struct Entry {
    /// The first second the token is no longer taken on trust.
    until: u64,
    /// The generation of the keys it was checked against.
    keys: u64,
    principal: Principal,
    identity: Identity,
}

/// See the module docs.
#[derive(Default)]
pub(crate) struct VerifiedTokens {
    entries: Mutex<HashMap<[u8; 32], Entry>>,
}

impl std::fmt::Debug for VerifiedTokens {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("VerifiedTokens")
            .field("held", &self.entries.lock().len())
            .finish()
    }
}

fn digest(token: &str) -> [u8; 32] {
    Sha256::digest(token.as_bytes()).into()
}

impl VerifiedTokens {
    /// What `token` was accepted as, if it still may be taken on trust at
    /// `now` with the keys of generation `keys`.
    pub(crate) fn get(&self, token: &str, now: u64, keys: u64) -> Option<(Principal, Identity)> {
        let key = digest(token);
        let mut entries = self.entries.lock();
        match entries.get(&key) {
            Some(e) if now < e.until && e.keys == keys => {
                Some((e.principal.clone(), e.identity.clone()))
            }
            Some(_) => {
                entries.remove(&key);
                None
            }
            None => None,
        }
    }

    /// `token` was accepted at `now` as `principal`/`identity`, checked
    /// against the keys of generation `keys`; it may be used up to
    /// `expires` (unix seconds, leeway included).
    pub(crate) fn put(
        &self,
        token: &str,
        (principal, identity): (&Principal, &Identity),
        keys: u64,
        expires: u64,
        now: u64,
    ) {
        let until = expires.min(now.saturating_add(MAX_HOLD));
        if until <= now {
            return;
        }
        let mut entries = self.entries.lock();
        if entries.len() >= MAX_TOKENS {
            entries.retain(|_, e| now < e.until);
            if entries.len() >= MAX_TOKENS {
                // All still fresh: start over rather than grow.
                entries.clear();
            }
        }
        entries.insert(
            digest(token),
            Entry {
                until,
                keys,
                principal: principal.clone(),
                identity: identity.clone(),
            },
        );
    }

    /// Tokens held now.
    #[cfg(test)]
    pub(crate) fn held(&self) -> usize {
        self.entries.lock().len()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn who(sub: &str) -> (Principal, Identity) {
        let identity = Identity {
            token: None,
            subject: Some(sub.to_owned()),
            scopes: vec!["read".to_owned()],
        };
        (Principal::of_subject("https://issuer", sub), identity)
    }

    #[test]
    fn a_token_is_trusted_until_it_expires_or_the_hold_ends() {
        let cache = VerifiedTokens::default();
        let (p, i) = who("alice");
        cache.put("t1", (&p, &i), 1, 1_000 + 10, 1_000);
        assert_eq!(cache.get("t1", 1_009, 1), Some((p.clone(), i.clone())));
        assert_eq!(cache.get("t1", 1_010, 1), None, "expired");
        assert_eq!(cache.held(), 0, "an expired entry is dropped when seen");

        cache.put("t2", (&p, &i), 1, 1_000_000, 1_000);
        assert!(cache.get("t2", 1_000 + MAX_HOLD - 1, 1).is_some());
        assert_eq!(
            cache.get("t2", 1_000 + MAX_HOLD, 1),
            None,
            "held at most MAX_HOLD"
        );
        assert_eq!(cache.get("other", 1_000, 1), None);
    }

    #[test]
    fn new_keys_have_every_token_checked_again() {
        let cache = VerifiedTokens::default();
        let (p, i) = who("carol");
        cache.put("t", (&p, &i), 3, 5_000, 1_000);
        assert!(cache.get("t", 1_001, 3).is_some());
        assert_eq!(cache.get("t", 1_001, 4), None);
    }

    #[test]
    fn an_expired_token_is_not_kept_and_the_cache_stays_bounded() {
        let cache = VerifiedTokens::default();
        let (p, i) = who("bob");
        cache.put("late", (&p, &i), 1, 1_000, 1_000);
        assert_eq!(cache.held(), 0);
        for n in 0..MAX_TOKENS + 10 {
            cache.put(&format!("t{n}"), (&p, &i), 1, 5_000, 1_000);
        }
        assert!(cache.held() <= MAX_TOKENS);
    }
}

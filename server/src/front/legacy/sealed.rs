//! Sealed session ids: with a key shared by the replicas (`[sessions]
//! key_file`), a legacy session's id carries what any replica needs to
//! serve the session on a shared target — the target, the negotiated
//! revision, the client's `capabilities` and `clientInfo`, the principal
//! (as its seal tag), when it was made — sealed with authenticated
//! encryption ([`Sealer`]), so a replica that does not know the session
//! re-creates it from its id alone. A tampered, foreign-keyed or expired id,
//! or one of another target or principal, opens as nothing: 404, and the
//! client initializes again.
//!
//! What the id cannot carry stays with the replica that has it: the
//! session's log level and resource subscriptions (they change after the
//! id is given out), its GET streams and their replay, the server requests
//! its backend sent, and its calls' SSE replies.

use std::borrow::Cow;
use std::time::Duration;

use mcpod_core::LEGACY_VERSIONS;
use serde::{Deserialize, Serialize};
use serde_json::value::RawValue;

use crate::bridge::ClientHello;
use crate::ids::{Principal, Sealer, Unsealed};

/// What a sealed id starts with (random ids are hex digits only).
pub(super) const PREFIX: &str = "mcpod-s1.";
/// What a session id is sealed for (a `requestState` does not open as one).
const PURPOSE: &[u8] = b"mcpod session v1";
/// The longest sealed id handed out; a session whose hello would not fit
/// (even with `clientInfo` cut to its name and version) gets a random id,
/// known to its replica only.
pub(super) const MAX_ID_LEN: usize = 2048;

#[derive(Serialize, Deserialize)]
struct Payload<'a> {
    /// The target.
    #[serde(borrow)]
    t: Cow<'a, str>,
    /// The negotiated revision.
    #[serde(borrow)]
    v: Cow<'a, str>,
    /// The principal's seal tag.
    #[serde(borrow)]
    p: Cow<'a, str>,
    /// The client's `capabilities`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    c: Option<Box<RawValue>>,
    /// Its `clientInfo`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    i: Option<Box<RawValue>>,
    /// When the session was made (seconds since the Unix epoch).
    iat: u64,
}

/// A session id that opens on every replica sharing `sealer`'s key until
/// `max_age` after `now`; `None` when it would be longer than
/// [`MAX_ID_LEN`].
pub(super) fn seal(
    sealer: &Sealer,
    max_age: Duration,
    now: u64,
    target: &str,
    version: &str,
    principal: &Principal,
    hello: &ClientHello,
) -> Option<String> {
    let tag = principal.seal_tag();
    let attempt = |info: Option<Box<RawValue>>| {
        let payload = Payload {
            t: target.into(),
            v: version.into(),
            p: tag.as_str().into(),
            c: hello.capabilities.clone(),
            i: info,
            iat: now,
        };
        let bytes = serde_json::to_vec(&payload).ok()?;
        let id = format!(
            "{PREFIX}{}",
            sealer.seal(PURPOSE, &bytes, now.saturating_add(max_age.as_secs()))
        );
        (id.len() <= MAX_ID_LEN).then_some(id)
    };
    attempt(hello.client_info.clone()).or_else(|| attempt(short_info(hello)))
}

/// `clientInfo` cut to its `name` and `version`.
fn short_info(hello: &ClientHello) -> Option<Box<RawValue>> {
    #[derive(Serialize, Deserialize)]
    struct Short<'a> {
        #[serde(borrow, default, skip_serializing_if = "Option::is_none")]
        name: Option<Cow<'a, str>>,
        #[serde(borrow, default, skip_serializing_if = "Option::is_none")]
        version: Option<Cow<'a, str>>,
    }
    let info = hello.client_info.as_deref()?;
    let short: Short<'_> = serde_json::from_str(info.get()).ok()?;
    let cut = Short {
        name: short.name.as_deref().map(|n| Cow::Borrowed(prefix(n, 128))),
        version: short
            .version
            .as_deref()
            .map(|v| Cow::Borrowed(prefix(v, 64))),
    };
    RawValue::from_string(serde_json::to_string(&cut).ok()?).ok()
}

/// The longest prefix of `s` of at most `max` bytes that ends on a
/// character boundary.
fn prefix(s: &str, max: usize) -> &str {
    let mut end = max.min(s.len());
    while !s.is_char_boundary(end) {
        end -= 1;
    }
    &s[..end]
}

/// A session re-created from its id.
#[derive(Debug)]
pub(super) struct Opened {
    /// Its revision.
    pub(super) version: &'static str,
    /// Its client's hello.
    pub(super) hello: ClientHello,
}

/// Why an id does not name a session this replica can re-create.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum Refused {
    /// Not a sealed id (a random one, of the replica that made it).
    NotSealed,
    /// Altered, or sealed under a key not accepted here.
    Bad,
    /// Past `max_age`.
    Expired,
    /// Of another target, or another principal (as good as unknown).
    NotYours,
}

/// The session `id` names, if `sealer` opens it at `now` and it is
/// `principal`'s, on `target`.
pub(super) fn open(
    sealer: &Sealer,
    id: &str,
    now: u64,
    target: &str,
    principal: &Principal,
) -> Result<Opened, Refused> {
    let sealed = id.strip_prefix(PREFIX).ok_or(Refused::NotSealed)?;
    if id.len() > MAX_ID_LEN {
        return Err(Refused::Bad);
    }
    let bytes = sealer.open(PURPOSE, sealed, now).map_err(|e| match e {
        Unsealed::Bad => Refused::Bad,
        Unsealed::Expired => Refused::Expired,
    })?;
    let payload: Payload<'_> = serde_json::from_slice(&bytes).map_err(|_| Refused::Bad)?;
    if payload.t != target || payload.p != principal.seal_tag() {
        return Err(Refused::NotYours);
    }
    let version = LEGACY_VERSIONS
        .iter()
        .find(|v| **v == payload.v)
        .copied()
        .ok_or(Refused::Bad)?;
    Ok(Opened {
        version,
        hello: ClientHello {
            capabilities: payload.c,
            client_info: payload.i,
        },
    })
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;
    use crate::ids::SealKey;

    const NOW: u64 = 1_800_000_000;

    fn hello(info: &str) -> ClientHello {
        ClientHello {
            capabilities: Some(RawValue::from_string(r#"{"roots":{}}"#.into()).unwrap()),
            client_info: Some(RawValue::from_string(info.into()).unwrap()),
        }
    }

    #[test]
    fn an_id_opens_on_a_replica_with_the_key_for_its_target_and_principal() {
        let key = SealKey::random();
        let a = Sealer::new(&key, &[]);
        let b = Sealer::new(&key, &[]);
        let p = Principal::of_token("token-0123456789abcdef");
        let h = hello(r#"{"name":"c","version":"1"}"#);
        let max_age = Duration::from_secs(60);
        let id = seal(&a, max_age, NOW, "demo", "2025-06-18", &p, &h).unwrap();
        assert!(id.starts_with(PREFIX));
        assert!(id.bytes().all(|b| b.is_ascii_graphic()));
        assert!(!id.contains("demo"), "the payload is encrypted: {id}");
        let o = open(&b, &id, NOW + 1, "demo", &p).unwrap();
        assert_eq!(o.version, "2025-06-18");
        assert_eq!(o.hello.capabilities.unwrap().get(), r#"{"roots":{}}"#);
        assert_eq!(
            o.hello.client_info.unwrap().get(),
            r#"{"name":"c","version":"1"}"#
        );
        assert_eq!(
            open(&b, &id, NOW + 1, "other", &p).unwrap_err(),
            Refused::NotYours
        );
        let q = Principal::of_token("token-of-someone-else");
        assert_eq!(
            open(&b, &id, NOW + 1, "demo", &q).unwrap_err(),
            Refused::NotYours
        );
        assert_eq!(
            open(&b, &id, NOW + 60, "demo", &p).unwrap_err(),
            Refused::Expired
        );
        let foreign = Sealer::new(&SealKey::random(), &[]);
        assert_eq!(
            open(&foreign, &id, NOW, "demo", &p).unwrap_err(),
            Refused::Bad
        );
        let mut tampered = id.clone().into_bytes();
        let i = PREFIX.len() + 30;
        tampered[i] = if tampered[i] == b'x' { b'y' } else { b'x' };
        let tampered = String::from_utf8(tampered).unwrap();
        assert_eq!(
            open(&b, &tampered, NOW, "demo", &p).unwrap_err(),
            Refused::Bad
        );
        assert_eq!(
            open(&b, &"ab".repeat(16), NOW, "demo", &p).unwrap_err(),
            Refused::NotSealed
        );
    }

    #[test]
    fn a_large_client_info_is_cut_to_name_and_version() {
        let s = Sealer::new(&SealKey::random(), &[]);
        let p = Principal::anonymous();
        let big = format!(
            r#"{{"name":"c","version":"2","description":"{}"}}"#,
            "x".repeat(4000)
        );
        let id = seal(
            &s,
            Duration::from_secs(60),
            NOW,
            "demo",
            "2025-11-25",
            &p,
            &hello(&big),
        )
        .unwrap();
        assert!(id.len() <= MAX_ID_LEN);
        let o = open(&s, &id, NOW, "demo", &p).unwrap();
        assert_eq!(
            o.hello.client_info.unwrap().get(),
            r#"{"name":"c","version":"2"}"#
        );
        // Capabilities too large to carry: no sealed id at all.
        let huge = ClientHello {
            capabilities: Some(
                RawValue::from_string(format!(r#"{{"x":"{}"}}"#, "y".repeat(4000))).unwrap(),
            ),
            client_info: None,
        };
        assert!(
            seal(
                &s,
                Duration::from_secs(60),
                NOW,
                "demo",
                "2025-11-25",
                &p,
                &huge
            )
            .is_none()
        );
    }
}

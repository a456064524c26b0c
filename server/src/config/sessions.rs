//! `[sessions]`: the key that seals legacy session ids (and the
//! `requestState` of parked calls) so that any replica sharing it can
//! serve them, with the old keys of a rotation.

use std::path::Path;
use std::time::Duration;

use super::duration::RawDuration;
use super::error::{ConfigError, invalid};
use super::raw::RawSessions;
use crate::ids::{MAX_OLD_KEYS, SealKey};

/// Default lifetime of a sealed session id.
pub const DEFAULT_SESSION_MAX_AGE: Duration = Duration::from_secs(24 * 3600);

/// `[sessions]`, validated.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SessionsConfig {
    /// How long a sealed session id is accepted after its `initialize`
    /// (any replica answers 404 after it: the client initializes again).
    pub max_age: Duration,
    /// The keys, if a key file is configured; `None`: random session ids
    /// known to this process only (a single replica).
    pub(crate) keys: Option<SessionKeys>,
}

impl Default for SessionsConfig {
    fn default() -> Self {
        SessionsConfig {
            max_age: DEFAULT_SESSION_MAX_AGE,
            keys: None,
        }
    }
}

impl SessionsConfig {
    /// Whether session ids are sealed (a key file is configured).
    pub fn sealed(&self) -> bool {
        self.keys.is_some()
    }
}

/// The current key and the old ones still accepted.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct SessionKeys {
    /// Seals new ids, opens them.
    pub(crate) current: SealKey,
    /// Open the ids they sealed (until those expire or the key is removed).
    pub(crate) old: Vec<SealKey>,
}

fn read_key(key: &str, path: &Path) -> Result<SealKey, ConfigError> {
    let bytes = std::fs::read(path)
        .map_err(|e| invalid(key, format!("cannot read {}: {e}", path.display())))?;
    SealKey::from_file_bytes(&bytes)
        .map_err(|why| invalid(key, format!("{}: {why}", path.display())))
}

pub(super) fn validate_sessions(raw: RawSessions) -> Result<SessionsConfig, ConfigError> {
    let max_age = raw
        .max_age
        .map(|d: RawDuration| d.parse("sessions.max_age"))
        .transpose()?
        .unwrap_or(DEFAULT_SESSION_MAX_AGE);
    if max_age.is_zero() {
        return Err(invalid("sessions.max_age", "must be above zero"));
    }
    let old_files = raw.old_key_files.unwrap_or_default();
    let Some(current) = raw.key_file else {
        if !old_files.is_empty() {
            return Err(invalid(
                "sessions.old_key_files",
                "old keys are accepted beside a current one: set sessions.key_file too",
            ));
        }
        return Ok(SessionsConfig {
            max_age,
            keys: None,
        });
    };
    if old_files.len() > MAX_OLD_KEYS {
        return Err(invalid(
            "sessions.old_key_files",
            format!("at most {MAX_OLD_KEYS} old keys, not {}", old_files.len()),
        ));
    }
    let current = read_key("sessions.key_file", &current)?;
    let mut old = Vec::with_capacity(old_files.len());
    for (i, path) in old_files.iter().enumerate() {
        let k = read_key(&format!("sessions.old_key_files[{i}]"), path)?;
        if k == current {
            return Err(invalid(
                format!("sessions.old_key_files[{i}]"),
                format!(
                    "{} holds the current key (sessions.key_file)",
                    path.display()
                ),
            ));
        }
        old.push(k);
    }
    Ok(SessionsConfig {
        max_age,
        keys: Some(SessionKeys { current, old }),
    })
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use std::io::Write as _;
    use std::path::PathBuf;

    use super::*;

    fn key_file(dir: &tempfile::TempDir, name: &str, bytes: &[u8]) -> PathBuf {
        let p = dir.path().join(name);
        std::fs::File::create(&p).unwrap().write_all(bytes).unwrap();
        p
    }

    #[test]
    fn keys_are_read_and_bad_ones_refused_naming_the_key() {
        let dir = tempfile::tempdir().unwrap();
        let a = key_file(&dir, "a", &[1u8; 32]);
        let b = key_file(&dir, "b", "02".repeat(32).as_bytes());
        let bad = key_file(&dir, "bad", b"too short");
        let ok = validate_sessions(RawSessions {
            key_file: Some(a.clone()),
            old_key_files: Some(vec![b.clone()]),
            max_age: Some(RawDuration::Text("2h".into())),
        })
        .unwrap();
        assert!(ok.sealed());
        assert_eq!(ok.max_age, Duration::from_secs(7200));
        assert_eq!(ok.keys.as_ref().unwrap().old.len(), 1);
        let e = validate_sessions(RawSessions {
            key_file: Some(bad.clone()),
            ..RawSessions::default()
        })
        .unwrap_err();
        assert!(e.to_string().starts_with("sessions.key_file: "), "{e}");
        let e = validate_sessions(RawSessions {
            key_file: Some(a.clone()),
            old_key_files: Some(vec![b.clone(), bad]),
            ..RawSessions::default()
        })
        .unwrap_err();
        assert!(
            e.to_string().starts_with("sessions.old_key_files[1]: "),
            "{e}"
        );
        let e = validate_sessions(RawSessions {
            key_file: Some(dir.path().join("missing")),
            ..RawSessions::default()
        })
        .unwrap_err();
        assert!(e.to_string().contains("cannot read"), "{e}");
        let e = validate_sessions(RawSessions {
            old_key_files: Some(vec![b]),
            ..RawSessions::default()
        })
        .unwrap_err();
        assert!(e.to_string().starts_with("sessions.old_key_files: "), "{e}");
        let e = validate_sessions(RawSessions {
            key_file: Some(a.clone()),
            old_key_files: Some(vec![a]),
            ..RawSessions::default()
        })
        .unwrap_err();
        assert!(e.to_string().contains("current key"), "{e}");
        assert!(!validate_sessions(RawSessions::default()).unwrap().sealed());
    }
}

//! Who owns an exec'd process: the instance id in its exec id, and an owner
//! lock in its FIFO directory that lives exactly as long as a live mcpod
//! holds the process.
//!
//! Ownership cannot be decided by pid: mcpods in different PID namespaces
//! share one containerd namespace. It is decided through the file system
//! instead, which every mcpod on one FIFO root must share with containerd's
//! shim anyway (the shim opens the FIFOs by path): each process's FIFO
//! directory holds a file `owner` (namespace, container, instance) on which
//! the mcpod that exec'd it holds an exclusive `flock(2)`. The kernel drops
//! the lock when that mcpod dies, whatever its PID namespace, so "the lock
//! is free" means "no live mcpod owns this process".
//!
//! The lock is taken before `Tasks.Exec` (so a process never shows in
//! `ListPids` unowned) and released only after its FIFO directory is gone —
//! or, when the process's fate could not be learned, with the directory
//! left in place for a reaper to find.

use std::fs::File;
use std::io::{Read, Write};
use std::os::unix::fs::OpenOptionsExt;
use std::path::Path;
use std::sync::OnceLock;
use std::sync::atomic::{AtomicU64, Ordering};

use nix::fcntl::{Flock, FlockArg};

use crate::error::{Error, Result};

/// Prefix of every exec id made by mcpod.
pub(crate) const EXEC_ID_PREFIX: &str = "mcpod.";
/// Name of the owner file in a FIFO directory.
pub(crate) const OWNER_FILE: &str = "owner";
const OWNER_TMP: &str = "owner.tmp";

/// This process's instance id: 16 random hex digits, fixed for its life.
///
/// It is part of every exec id this process makes (see [`new_exec_id`]) and
/// of the owner file of every FIFO directory, so logs and reapers can tell
/// whose a process is. It is random rather than a pid, as pids mean nothing
/// across PID namespaces.
pub fn instance_id() -> &'static str {
    static ID: OnceLock<String> = OnceLock::new();
    ID.get_or_init(|| format!("{:016x}", random_u64()))
}

fn random_u64() -> u64 {
    let mut bytes = [0u8; 8];
    if File::open("/dev/urandom")
        .and_then(|mut f| f.read_exact(&mut bytes))
        .is_ok()
    {
        return u64::from_le_bytes(bytes);
    }
    // No /dev/urandom: the std hasher's per-process random keys, over the time and pid.
    use std::hash::{BuildHasher, Hasher};
    let mut h = std::collections::hash_map::RandomState::new().build_hasher();
    h.write_u128(
        std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map(|d| d.as_nanos())
            .unwrap_or(0),
    );
    h.write_u32(std::process::id());
    h.finish()
}

static EXEC_COUNTER: AtomicU64 = AtomicU64::new(0);

/// A fresh exec id: `mcpod.<instance id>.<counter>` (see [`instance_id`]),
/// valid for containerd and unique across processes and their restarts.
pub fn new_exec_id() -> String {
    let n = EXEC_COUNTER.fetch_add(1, Ordering::Relaxed);
    format!("{EXEC_ID_PREFIX}{}.{n}", instance_id())
}

/// Whether an exec id was made by mcpod (this version's
/// `mcpod.<instance>.<n>`, or an older `mcpod.<pid>.<nanos>.<n>`).
pub(crate) fn is_mcpod_exec_id(exec_id: &str) -> bool {
    exec_id.starts_with(EXEC_ID_PREFIX) && crate::client::is_valid_identifier(exec_id)
}

/// The instance that made an exec id of this version's form, if it is one.
pub fn exec_id_instance(exec_id: &str) -> Option<&str> {
    let rest = exec_id.strip_prefix(EXEC_ID_PREFIX)?;
    let (instance, n) = rest.split_once('.')?;
    let hex = instance.len() == 16 && instance.bytes().all(|b| b.is_ascii_hexdigit());
    (hex && !n.is_empty() && n.bytes().all(|b| b.is_ascii_digit())).then_some(instance)
}

/// What an owner file says.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub(crate) struct Owner {
    pub(crate) namespace: String,
    pub(crate) container_id: String,
    pub(crate) instance: String,
}

impl Owner {
    fn render(&self) -> String {
        format!(
            "namespace={}\ncontainer={}\ninstance={}\npid={}\n",
            self.namespace,
            self.container_id,
            self.instance,
            std::process::id()
        )
    }

    fn parse(text: &str) -> Owner {
        let mut o = Owner::default();
        for line in text.lines() {
            match line.split_once('=') {
                Some(("namespace", v)) => o.namespace = v.to_owned(),
                Some(("container", v)) => o.container_id = v.to_owned(),
                Some(("instance", v)) => o.instance = v.to_owned(),
                _ => {}
            }
        }
        o
    }
}

/// A held owner lock; dropping it releases the lock (closing the file).
#[derive(Debug)]
pub(crate) struct OwnerLock {
    _file: Flock<File>,
}

/// Writes `dir/owner` and takes its lock, atomically for observers: the
/// file is written and locked under a temporary name, then renamed (the
/// lock stays with the file), so no one ever sees an unlocked owner file of
/// a live process.
pub(crate) fn claim(dir: &Path, owner: &Owner) -> Result<OwnerLock> {
    let tmp = dir.join(OWNER_TMP);
    let file = File::options()
        .write(true)
        .create_new(true)
        .mode(0o600)
        .open(&tmp)
        .map_err(|e| Error::io(format!("creating owner file {}", tmp.display()), e))?;
    let mut lock = Flock::lock(file, FlockArg::LockExclusiveNonblock).map_err(|(_, errno)| {
        Error::io(
            format!("locking owner file {}", tmp.display()),
            errno.into(),
        )
    })?;
    lock.write_all(owner.render().as_bytes())
        .map_err(|e| Error::io(format!("writing owner file {}", tmp.display()), e))?;
    let path = dir.join(OWNER_FILE);
    std::fs::rename(&tmp, &path).map_err(|e| {
        Error::io(
            format!("renaming {} to {}", tmp.display(), path.display()),
            e,
        )
    })?;
    Ok(OwnerLock { _file: lock })
}

/// What probing a FIFO directory's owner found.
#[derive(Debug)]
pub(crate) enum Probe {
    /// A live mcpod holds the lock.
    Live,
    /// Nobody holds it; now we do (keep it while reaping).
    Free(OwnerLock, Owner),
    /// The directory exists without an owner file (an older mcpod's, or not ours).
    NoOwner,
    /// There is no such directory.
    NoDir,
}

/// Probes `dir`'s owner lock without blocking.
pub(crate) fn probe(dir: &Path) -> Probe {
    let path = dir.join(OWNER_FILE);
    let file = match File::open(&path) {
        Ok(f) => f,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
            return if dir.is_dir() {
                Probe::NoOwner
            } else {
                Probe::NoDir
            };
        }
        // Unreadable: assume someone owns it rather than reap what we cannot see.
        Err(_) => return Probe::Live,
    };
    match Flock::lock(file, FlockArg::LockExclusiveNonblock) {
        Ok(mut lock) => {
            let mut text = String::new();
            if lock.read_to_string(&mut text).is_err() {
                text.clear();
            }
            Probe::Free(OwnerLock { _file: lock }, Owner::parse(&text))
        }
        // EWOULDBLOCK: held. Any other failure: assume it is held rather
        // than reap what we cannot check.
        Err(_) => Probe::Live,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn exec_ids_carry_the_instance() {
        let a = new_exec_id();
        let b = new_exec_id();
        assert_ne!(a, b);
        assert!(crate::client::is_valid_identifier(&a), "{a}");
        assert!(a.len() <= 76);
        assert!(is_mcpod_exec_id(&a));
        assert_eq!(exec_id_instance(&a), Some(instance_id()));
        assert!(is_mcpod_exec_id("mcpod.1234.18eb051eaa4703b3.7"));
        assert_eq!(exec_id_instance("mcpod.1234.18eb051eaa4703b3.7"), None);
        for other in ["bench-ctr-1", "mcpodx.1.2", "mcpod..1", "mcpod.1/2"] {
            assert!(!is_mcpod_exec_id(other), "{other}");
        }
    }

    #[test]
    fn the_lock_tells_live_owners_from_dead_ones() {
        let tmp = tempfile::tempdir().unwrap_or_else(|e| panic!("{e}"));
        let dir = tmp.path().join("x");
        assert!(matches!(probe(&dir), Probe::NoDir));
        std::fs::create_dir(&dir).unwrap_or_else(|e| panic!("{e}"));
        assert!(matches!(probe(&dir), Probe::NoOwner));
        let owner = Owner {
            namespace: "ns".into(),
            container_id: "mcp-a".into(),
            instance: instance_id().into(),
        };
        let held = claim(&dir, &owner).unwrap_or_else(|e| panic!("{e}"));
        // Held, even when probed from this same process (another open file).
        assert!(matches!(probe(&dir), Probe::Live));
        assert!(!dir.join(OWNER_TMP).exists());
        drop(held);
        match probe(&dir) {
            Probe::Free(lock, found) => {
                assert_eq!(found, owner);
                // While one reaper holds it, others see it as taken.
                assert!(matches!(probe(&dir), Probe::Live));
                drop(lock);
            }
            other => panic!("{other:?}"),
        }
    }
}

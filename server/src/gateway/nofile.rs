//! The open-file limit: raised to its hard limit at start, and the default
//! connection limit derived from it, leaving room for backends.

use nix::sys::resource::{Resource, getrlimit, setrlimit};
use tracing::{debug, warn};

/// The most connections the default allows, whatever the file limit: past
/// this, memory rather than descriptors is what runs out.
const MOST_CONNECTIONS: u64 = 65_536;

/// Raises the soft `RLIMIT_NOFILE` to the hard limit; the soft limit now in
/// force.
pub(super) fn raise() -> u64 {
    match getrlimit(Resource::RLIMIT_NOFILE) {
        Ok((soft, hard)) if soft < hard => match setrlimit(Resource::RLIMIT_NOFILE, hard, hard) {
            Ok(()) => {
                debug!(from = soft, to = hard, "raised the open-file limit");
                hard
            }
            Err(e) => {
                warn!(soft, hard, error = %e, "could not raise the open-file limit");
                soft
            }
        },
        Ok((soft, _)) => soft,
        Err(e) => {
            warn!(error = %e, "could not read the open-file limit; assuming 1024");
            1024
        }
    }
}

/// The connection limit for `nofile` open files: three quarters of them
/// (at least 64 are kept for backends, pipes, containerd FIFOs, logs),
/// between 16 and [`MOST_CONNECTIONS`].
pub(super) fn default_max_connections(nofile: u64) -> usize {
    let reserve = (nofile / 4).max(64);
    let n = nofile.saturating_sub(reserve).clamp(16, MOST_CONNECTIONS);
    usize::try_from(n).unwrap_or(usize::MAX)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_default_leaves_a_quarter_of_the_files_for_backends() {
        assert_eq!(default_max_connections(1024), 768);
        assert_eq!(default_max_connections(20_000), 15_000);
        assert_eq!(default_max_connections(100), 36);
        assert_eq!(default_max_connections(10), 16);
        assert_eq!(default_max_connections(u64::MAX), 65_536);
    }

    #[test]
    fn raising_never_lowers_the_limit() {
        let (soft, _) = getrlimit(Resource::RLIMIT_NOFILE).unwrap_or((0, 0));
        assert!(raise() >= soft);
    }
}

//! [`UpstreamConfig`]: what an upstream can be tuned by.

use std::time::Duration;

/// Everything an [`Upstream`](crate::Upstream) can be tuned by.
#[derive(Debug, Clone)]
pub struct UpstreamConfig {
    /// The protocol session's own settings (era mode, timeouts, bounds).
    pub core: mcpod_core::Config,
    /// A name for logs (e.g. the target's name).
    pub name: String,
    /// How long a backend gets to exit after its stdin is closed, and again
    /// after it is asked to terminate, before it is killed.
    pub shutdown_grace: Duration,
    /// The delay before restarting a backend that died after a short life.
    pub restart_backoff_min: Duration,
    /// The longest delay between restarts. Each quick death doubles the
    /// delay up to this; a backend that ran longer than this resets it.
    pub restart_backoff_max: Duration,
    /// Longest stderr line logged; the rest of a longer line is counted and
    /// dropped (stderr is always drained, whatever its line lengths).
    pub stderr_line_cap: usize,
    /// Notifications and server requests buffered per call for a caller
    /// that is slow to read its [`CallStream`](crate::CallStream); more are dropped (server
    /// requests go to [`Upstream::subscribe`](crate::Upstream::subscribe) instead).
    pub call_buffer: usize,
    /// Events buffered per [`UpstreamEvents`](crate::UpstreamEvents) receiver; a receiver that
    /// falls further behind skips the oldest.
    pub event_buffer: usize,
    /// Size of the buffer the backend's output is read into.
    pub read_buffer: usize,
}

impl Default for UpstreamConfig {
    fn default() -> Self {
        UpstreamConfig {
            core: mcpod_core::Config::default(),
            name: "upstream".into(),
            shutdown_grace: Duration::from_secs(3),
            restart_backoff_min: Duration::from_millis(100),
            restart_backoff_max: Duration::from_secs(10),
            stderr_line_cap: 8 * 1024,
            call_buffer: 256,
            event_buffer: 1024,
            read_buffer: 64 * 1024,
        }
    }
}

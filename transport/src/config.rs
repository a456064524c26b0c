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
    /// The first delay before restarting a backend that keeps dying young.
    ///
    /// A death is *quick* when the backend ran less than
    /// [`restart_backoff_max`](Self::restart_backoff_max). After the first
    /// quick death the next operation starts a new backend at once; after
    /// the second in a row it waits this long, and each further one doubles
    /// the wait, never beyond `restart_backoff_max`. A backend that ran at
    /// least `restart_backoff_max` clears the count.
    ///
    /// While a wait runs, the operations that arrive fail at once, with
    /// [`UpstreamError::Restarting`](crate::UpstreamError::Restarting) and
    /// the time left (or, after a failed start, the same
    /// [`UpstreamError::SpawnFailed`](crate::UpstreamError::SpawnFailed)),
    /// instead of waiting in a queue; the ones already waiting for a
    /// backend when it died go to the next one.
    pub restart_backoff_min: Duration,
    /// The cap on the delay between restarts (see
    /// [`restart_backoff_min`](Self::restart_backoff_min)): no wait is ever
    /// longer, whatever the number of deaths (if it is below
    /// `restart_backoff_min`, that is the cap).
    pub restart_backoff_max: Duration,
    /// Operations that may wait for a backend to start (sent while none
    /// runs: during its start, or on their way when it died), in the
    /// supervisor's channel and again in its backlog; beyond that they fail
    /// at once with
    /// [`SendError::NotReadyQueueFull`](mcpod_core::SendError::NotReadyQueueFull).
    /// Once a backend runs, its session's own bounds apply
    /// ([`mcpod_core::Config::max_queued_before_ready`] and the others).
    pub max_queued_commands: usize,
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
            max_queued_commands: 1024,
            stderr_line_cap: 8 * 1024,
            call_buffer: 256,
            event_buffer: 1024,
            read_buffer: 64 * 1024,
        }
    }
}

//! Session configuration, with the defaults a gateway wants.

use std::time::Duration;

use crate::framing::DEFAULT_MAX_FRAME_LEN;

/// The newest legacy revision, offered in `initialize`.
pub const LATEST_LEGACY_VERSION: &str = "2025-11-25";
/// The modern revision offered in `server/discover`.
pub const LATEST_MODERN_VERSION: &str = "2026-07-28";
/// Every legacy revision mcpod knows, oldest first.
pub const LEGACY_VERSIONS: &[&str] = &["2024-11-05", "2025-03-26", "2025-06-18", "2025-11-25"];
/// Every modern revision mcpod knows, oldest first.
pub const MODERN_VERSIONS: &[&str] = &["2026-07-28"];

/// How the session finds the backend's era.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum EraMode {
    /// Probe with `server/discover`; fall back to `initialize` on any other
    /// error or after [`Config::probe_timeout`].
    #[default]
    Auto,
    /// Skip the probe: run the `initialize` handshake.
    Legacy,
    /// Skip the fallback: `server/discover` must succeed.
    Modern,
}

/// Everything a [`Session`](crate::Session) can be tuned by.
#[derive(Debug, Clone)]
pub struct Config {
    /// Longest backend line accepted, in bytes.
    pub max_frame_len: usize,
    /// How the backend's era is found.
    pub era_mode: EraMode,
    /// How long `server/discover` may take before the backend is taken as
    /// legacy (in [`EraMode::Auto`]).
    pub probe_timeout: Duration,
    /// How long the `initialize` handshake (or a forced-modern discovery)
    /// may take before the session fails.
    pub handshake_timeout: Duration,
    /// Deadline of a call that names none. This and the two timeouts above
    /// may be anything: one too long for the clock (`Duration::MAX`) is
    /// no timeout.
    pub default_call_timeout: Duration,
    /// `clientInfo` sent to the backend.
    pub client_name: String,
    /// `clientInfo.version` sent to the backend.
    pub client_version: String,
    /// Client capabilities (a JSON object) declared to the backend.
    pub client_capabilities: String,
    /// Revision offered in `initialize`.
    pub legacy_version: String,
    /// Revision offered in `server/discover`.
    pub modern_version: String,
    /// Calls open at once (queued or sent); more is [`SendError::TooManyCalls`](crate::SendError::TooManyCalls).
    pub max_calls_in_flight: usize,
    /// Bytes queued for the backend and not yet taken by `poll_transmit`;
    /// more is [`SendError::BackendNotReading`](crate::SendError::BackendNotReading).
    pub max_queued_output: usize,
    /// Messages queued while the backend is not ready yet.
    pub max_queued_before_ready: usize,
    /// Server→client requests awaiting an answer; more are refused with an
    /// error to the backend.
    pub max_server_requests: usize,
    /// Answer the backend's `ping` requests inside the core.
    pub answer_ping: bool,
    /// A server request that comes within this long after one given to a
    /// call goes to the same call when several are in flight (a server
    /// asking several things at once sends them together).
    pub burst_window: Duration,
    /// Asking calls ([`RequestOptions::may_ask`](crate::RequestOptions::may_ask))
    /// waiting for their turn; more are refused with
    /// [`SendError::AskingQueueFull`](crate::SendError::AskingQueueFull).
    pub max_queued_asking: usize,
    /// How long the answer that lets an asking call run again may be held
    /// back while another asking call runs. Past it the answer goes to the
    /// backend anyway — two asking calls then run, and a question no rule
    /// can place is refused — because a backend that works on one call at
    /// a time would otherwise never get to the running one.
    pub answer_hold: Duration,
}

impl Default for Config {
    fn default() -> Self {
        Self {
            max_frame_len: DEFAULT_MAX_FRAME_LEN,
            era_mode: EraMode::Auto,
            probe_timeout: Duration::from_secs(3),
            handshake_timeout: Duration::from_secs(30),
            default_call_timeout: Duration::from_secs(60),
            client_name: "mcpod".into(),
            client_version: env!("CARGO_PKG_VERSION").into(),
            client_capabilities: r#"{"roots":{"listChanged":true},"sampling":{},"elicitation":{}}"#
                .into(),
            legacy_version: LATEST_LEGACY_VERSION.into(),
            modern_version: LATEST_MODERN_VERSION.into(),
            max_calls_in_flight: 4096,
            max_queued_output: 16 * 1024 * 1024,
            max_queued_before_ready: 1024,
            max_server_requests: 256,
            answer_ping: true,
            burst_window: Duration::from_millis(50),
            max_queued_asking: 1024,
            answer_hold: Duration::from_secs(1),
        }
    }
}

//! [`Context`]: what every front end is handed by the routes.

use std::sync::Arc;
use std::time::Duration;

use tokio_util::sync::CancellationToken;
use tokio_util::task::TaskTracker;

use crate::bridge::Inputs;
use crate::config::SessionsConfig;
use crate::ids::{SealKey, Sealer};
use crate::metrics::Metrics;

/// The state the front ends share.
#[derive(Debug, Clone)]
pub(crate) struct Context {
    /// Request counters.
    pub(crate) metrics: Arc<Metrics>,
    /// Stateless clients' calls parked for `input_required` round trips.
    pub(crate) inputs: Arc<Inputs>,
    /// Seals legacy session ids, when the replicas share a key
    /// (`[sessions] key_file`); `None`: ids are random, known here only.
    pub(crate) seal: Option<Arc<Sealer>>,
    /// How long a sealed session id is accepted after its `initialize`.
    pub(crate) session_max_age: Duration,
    /// Cancelled when the gateway starts to shut down: `/readyz` answers
    /// 503 from then on, while requests are still served for the drain.
    pub(crate) draining: CancellationToken,
    /// Cancelled at shutdown: long-lived streams end.
    pub(crate) shutdown: CancellationToken,
    /// Calls that run on without their connection (a legacy session's SSE
    /// reply whose client went away, to resume it): waited for at shutdown
    /// like the connections.
    pub(crate) calls: TaskTracker,
}

impl Context {
    /// A fresh context for the `[sessions]` of the config.
    pub(crate) fn new(sessions: &SessionsConfig) -> Self {
        let seal = sessions
            .keys
            .as_ref()
            .map(|k| Arc::new(Sealer::new(&k.current, &k.old)));
        // Parked calls' states are sealed with the shared key too, so a
        // replica recognises another's; without one, with a key of this
        // process.
        let input_seal = seal
            .clone()
            .unwrap_or_else(|| Arc::new(Sealer::new(&SealKey::random(), &[])));
        Context {
            metrics: Arc::default(),
            inputs: Arc::new(Inputs::new(input_seal)),
            seal,
            session_max_age: sessions.max_age,
            draining: CancellationToken::new(),
            shutdown: CancellationToken::new(),
            calls: TaskTracker::new(),
        }
    }
}

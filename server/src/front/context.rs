//! [`Context`]: what every front end is handed by the routes.

use std::sync::Arc;

use tokio_util::sync::CancellationToken;
use tokio_util::task::TaskTracker;

use crate::bridge::Inputs;
use crate::metrics::Metrics;

/// The state the front ends share.
#[derive(Debug, Clone)]
pub(crate) struct Context {
    /// Request counters.
    pub(crate) metrics: Arc<Metrics>,
    /// Stateless clients' calls parked for `input_required` round trips.
    pub(crate) inputs: Arc<Inputs>,
    /// Cancelled at shutdown: long-lived streams end.
    pub(crate) shutdown: CancellationToken,
    /// Calls that run on without their connection (a legacy session's SSE
    /// reply whose client went away, to resume it): waited for at shutdown
    /// like the connections.
    pub(crate) calls: TaskTracker,
}

impl Context {
    /// A fresh context.
    pub(crate) fn new() -> Self {
        Context {
            metrics: Arc::default(),
            inputs: Arc::default(),
            shutdown: CancellationToken::new(),
            calls: TaskTracker::new(),
        }
    }
}

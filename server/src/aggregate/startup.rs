//! The check an aggregate gets once its members are ready: every page of
//! their tool, prompt and template lists read, and names that collide
//! after prefixing refused — the aggregate then answers nothing but that
//! error (naming both items), never a list where one shadows the other.

use std::sync::Arc;
use std::time::Duration;

use tracing::{error, info};

use crate::bridge::{self, Caller, Inputs};
use crate::metrics::Metrics;

use super::fanout::{Asking, whole};
use super::members::Aggregate;
use super::merge::{Part, merge};
use super::names::LISTS;

/// How long the check waits for the members to be ready at first.
const READY_WAIT: Duration = Duration::from_secs(30);

/// Checks `aggregate`'s names across its members; a collision is kept as
/// the aggregate's refusal, and logged.
pub(crate) async fn check_names(
    aggregate: Arc<Aggregate>,
    inputs: Arc<Inputs>,
    metrics: Arc<Metrics>,
) {
    for index in 0..aggregate.len() {
        if let Some((_, target)) = aggregate.member(index) {
            let _ = bridge::ready(&target.shared_upstream(), READY_WAIT).await;
        }
    }
    let ask = Asking {
        id: mcpod_core::json::to_raw("mcpod-aggregate-check"),
        params: None,
        caller: Caller::Detached,
        inputs,
        identity: None,
        metrics,
    };
    for (method, key, prefixed) in LISTS.iter().copied().filter(|(_, _, p)| *p) {
        let parts: Vec<(usize, Part)> = whole(&aggregate, method, &ask).await;
        if let Err(collision) = merge(key, prefixed, &aggregate.named(), parts) {
            let why = format!("aggregate `{}`: {collision} ({method})", aggregate.name());
            error!(aggregate = aggregate.name(), %collision, method, "names collide: the aggregate refuses every request");
            aggregate.refuse(why);
            return;
        }
    }
    info!(
        aggregate = aggregate.name(),
        "aggregate's names checked: no collisions"
    );
}

//! An aggregate's request to several members at once: each member's part
//! within `member_timeout`; a member down, busy, failing or slow is left
//! out (logged, counted) while the others answer.

use std::sync::Arc;
use std::time::Duration;

use mcpod_tokio::{Deadline, OwnedRequest, RequestOptions};
use serde_json::Value;
use serde_json::value::RawValue;
use tracing::warn;

use crate::bridge::{self, Caller, Exchange, Inputs, Slots};
use crate::config::Access;
use crate::ids::Identity;
use crate::metrics::{MemberOutcome, Metrics};
use crate::targets::Target;

use super::cursor::Resume;
use super::members::Aggregate;
use super::merge::Part;
use super::names;

/// Most pages read of one member when the whole of a list is needed.
pub(crate) const MAX_PAGES: usize = 64;

/// What an aggregate asks of its members, for one client request.
#[derive(Debug, Clone)]
pub(crate) struct Asking {
    /// The client's request id (each member's call answers it).
    pub(crate) id: Box<RawValue>,
    /// The client's params (`_meta` and all); the cursor is set per member.
    pub(crate) params: Option<Box<RawValue>>,
    /// The client, as the members' exchanges see it.
    pub(crate) caller: Caller,
    /// Parked calls (a member's list may not ask, but the place needs it).
    pub(crate) inputs: Arc<Inputs>,
    /// Who asks: each member's own policy filters its part (`None`: the
    /// gateway itself, which sees everything).
    pub(crate) identity: Option<Identity>,
    /// Where the member requests are counted.
    pub(crate) metrics: Arc<Metrics>,
}

/// The params of a member's page: the client's, with `cursor` set to the
/// member's own (or taken out, for its first page).
fn page_params(params: Option<&RawValue>, cursor: Option<&str>) -> Option<Box<RawValue>> {
    let object = params.map_or("{}", RawValue::get);
    let quoted = cursor.map(|c| Value::String(c.to_owned()).to_string());
    let set: Vec<(&str, &str)> = quoted.iter().map(|q| ("cursor", q.as_str())).collect();
    let edited = mcpod_core::json::edit_object(object, &set, &["cursor"])?;
    RawValue::from_string(edited).ok()
}

/// One member's result for `method`, or why there is none.
async fn ask_member(
    target: &Target,
    method: &str,
    params: Option<Box<RawValue>>,
    ask: &Asking,
    timeout: Duration,
) -> Result<Value, String> {
    let backend = target.shared_backend();
    bridge::ready(&backend.upstream, timeout)
        .await
        .map_err(|e| format!("not ready: {e:?}"))?;
    let slot = target
        .try_call_slot()
        .ok_or_else(|| "at its limit of calls in flight".to_owned())?;
    let mut place = bridge::place(target, backend, &ask.inputs);
    place.access = match &ask.identity {
        Some(who) => Access::of(target.config.policy.as_ref(), who.clone()),
        None => Access::all(),
    };
    let request = OwnedRequest::new(ask.id.clone(), method, params);
    let opts = RequestOptions {
        deadline: Deadline::After(timeout),
        ..RequestOptions::default()
    };
    let mut exchange = Exchange::start(
        place,
        ask.caller.clone(),
        request,
        opts,
        Slots::new(slot, None),
    )
    .await
    .map_err(|e| e.to_string())?;
    let end = exchange.finish().await;
    match mcpod_core::Message::parse(&end.frame) {
        Ok(mcpod_core::Message::Response { result, .. }) => {
            serde_json::from_str(result.get()).map_err(|e| e.to_string())
        }
        Ok(mcpod_core::Message::Error { error, .. }) => Err(format!("answered {}", error.get())),
        _ => Err("answered something other than a response".to_owned()),
    }
}

/// One member's page of list `method` (`key`: its items), within the
/// aggregate's `member_timeout`; counted, and logged when left out.
async fn member_page(
    aggregate: &Aggregate,
    (index, cursor): Resume,
    method: &str,
    ask: &Asking,
) -> (usize, Part) {
    let Some((member, target)) = aggregate.member(index) else {
        return (index, Part::Omitted);
    };
    let timeout = aggregate.config.member_timeout;
    let params = page_params(ask.params.as_deref(), cursor.as_deref());
    let asked = tokio::time::timeout(timeout, ask_member(target, method, params, ask, timeout));
    let (outcome, part) = match asked.await {
        Ok(Ok(result)) => {
            let (key, _) = names::list_of(method).unwrap_or(("items", false));
            let items = match result.get(key) {
                Some(Value::Array(items)) => items.clone(),
                _ => Vec::new(),
            };
            let next = result
                .get("nextCursor")
                .and_then(Value::as_str)
                .map(str::to_owned);
            (MemberOutcome::Ok, Part::Listed { items, next })
        }
        Ok(Err(why)) => {
            warn!(aggregate = aggregate.name(), member = %member.target, method, %why, "member left out of a list");
            (MemberOutcome::Omitted, Part::Omitted)
        }
        Err(_) => {
            warn!(aggregate = aggregate.name(), member = %member.target, method, ?timeout, "member slower than member_timeout, left out of a list");
            (MemberOutcome::Omitted, Part::Omitted)
        }
    };
    ask.metrics
        .members
        .record(aggregate.name(), &member.target, outcome);
    if let Part::Listed { items, .. } = &part {
        note_listed(aggregate, index, method, items);
    }
    (index, part)
}

/// Remembers the URIs and templates a member listed, for routing.
fn note_listed(aggregate: &Aggregate, index: usize, method: &str, items: &[Value]) {
    match method {
        "resources/list" => aggregate.note_uris(
            index,
            items
                .iter()
                .filter_map(|i| i.get("uri").and_then(Value::as_str)),
        ),
        "resources/templates/list" => aggregate.note_templates(
            index,
            items
                .iter()
                .filter_map(|i| i.get("uriTemplate").and_then(Value::as_str)),
        ),
        _ => {}
    }
}

/// A page of list `method` from the members `resumes` names, at once.
pub(crate) async fn page(
    aggregate: &Aggregate,
    method: &str,
    resumes: Vec<Resume>,
    ask: &Asking,
) -> Vec<(usize, Part)> {
    futures::future::join_all(
        resumes
            .into_iter()
            .map(|resume| member_page(aggregate, resume, method, ask)),
    )
    .await
}

/// Every page of list `method` of every member (at most [`MAX_PAGES`]
/// each): what start-time checks and URI routing read.
pub(crate) async fn whole(aggregate: &Aggregate, method: &str, ask: &Asking) -> Vec<(usize, Part)> {
    let mut parts: Vec<(usize, Part)> = Vec::new();
    let mut resumes: Vec<Resume> = (0..aggregate.len()).map(|i| (i, None)).collect();
    for _ in 0..MAX_PAGES {
        if resumes.is_empty() {
            break;
        }
        let got = page(aggregate, method, std::mem::take(&mut resumes), ask).await;
        for (index, part) in got {
            match part {
                Part::Listed { items, next } => {
                    if let Some(next) = &next {
                        resumes.push((index, Some(next.clone())));
                    }
                    match parts.iter_mut().find(|(i, _)| *i == index) {
                        Some((_, Part::Listed { items: all, .. })) => all.extend(items),
                        _ => parts.push((index, Part::Listed { items, next: None })),
                    }
                }
                Part::Omitted => {
                    parts.retain(|(i, _)| *i != index);
                    parts.push((index, Part::Omitted));
                }
            }
        }
    }
    parts
}

/// Each member's backend info, within `member_timeout` (`None`: not ready).
pub(crate) async fn discoveries(
    aggregate: &Aggregate,
    metrics: &Metrics,
) -> Vec<Option<Arc<mcpod_core::BackendInfo>>> {
    let timeout = aggregate.config.member_timeout;
    futures::future::join_all((0..aggregate.len()).map(|i| async move {
        let (member, target) = aggregate.member(i)?;
        let ready = bridge::ready(&target.shared_upstream(), timeout).await;
        let outcome = if ready.is_ok() {
            MemberOutcome::Ok
        } else {
            warn!(aggregate = aggregate.name(), member = %member.target, "member not ready, left out of the discovery");
            MemberOutcome::Omitted
        };
        metrics.members.record(aggregate.name(), &member.target, outcome);
        ready.ok()
    }))
    .await
}

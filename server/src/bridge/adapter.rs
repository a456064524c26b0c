//! [`Adapter`]: what the gateway has asked of one backend on behalf of its
//! clients, kept with the backend — the log level a legacy backend is at
//! (the most verbose anyone wants), the resources subscribed at a legacy
//! backend (counted, so one client's unsubscribe does not end another's),
//! and, on a modern backend, the gateway's own `subscriptions/listen`
//! carrying the union of what its legacy sessions want.

use std::collections::{BTreeMap, HashMap};
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

use mcpod_core::json::{object, string};
use mcpod_core::{Era, Owner};
use mcpod_tokio::{CallItem, Deadline, OwnedRequest, RequestOptions};
use parking_lot::Mutex;
use serde_json::value::RawValue;
use tracing::{debug, warn};

use super::logging::LogLevel;
use super::tool_headers::ToolHeaders;
use crate::targets::Backend;

/// How long a gateway-made request to a backend may take.
const OWN_CALL_TIMEOUT: Duration = Duration::from_secs(30);
/// The pause before the gateway's listen is opened again after it ended.
const RELISTEN_DELAY: Duration = Duration::from_secs(1);
/// How long a client's subscribe waits for the backend to acknowledge the
/// widened listen (a backend that never acknowledges still gets it).
const LISTEN_ACK_WAIT: Duration = Duration::from_secs(5);

static NEXT_OWN_ID: AtomicU64 = AtomicU64::new(1);
static NEXT_PARTY: AtomicU64 = AtomicU64::new(1);

/// Who wants a log level.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub(crate) enum Party {
    /// A legacy session.
    Session(Owner),
    /// One stateless client's call.
    Call(u64),
}

impl Party {
    /// A party for one call.
    pub(crate) fn call() -> Party {
        Party::Call(NEXT_PARTY.fetch_add(1, Ordering::Relaxed))
    }
}

/// A backend's refusal of a request the gateway made for a client: its
/// JSON-RPC error, to give the client.
#[derive(Debug, Clone)]
pub(crate) struct Refused {
    /// The error code.
    pub(crate) code: i64,
    /// The message.
    pub(crate) message: String,
    /// Raw `data`.
    pub(crate) data: Option<Box<RawValue>>,
}

#[derive(Debug, Default)]
struct Levels {
    wanted: HashMap<Party, LogLevel>,
    /// What the backend was last set to.
    at: Option<LogLevel>,
}

#[derive(Debug, Default)]
struct Listen {
    /// Legacy sessions attached (the listen runs while there are any).
    sessions: usize,
    /// The filter of the listen running now, and its number.
    running: Option<(u64, String)>,
    next: u64,
    /// The newest listen the backend acknowledged: older ones end then.
    acked: u64,
}

/// Per-backend state of the bridge (see the module docs).
#[derive(Debug, Default)]
pub(crate) struct Adapter {
    levels: Mutex<Levels>,
    /// Resource URIs clients subscribed to, with how many want each.
    subscribed: Mutex<BTreeMap<String, usize>>,
    listen: Mutex<Listen>,
    /// Woken when a listen is acknowledged.
    listen_acked: tokio::sync::Notify,
    /// One change of level or subscription at a time, in order.
    ops: tokio::sync::Mutex<()>,
    /// The tools' header-mirrored arguments (SEP-2243).
    pub(crate) tool_headers: ToolHeaders,
}

impl Adapter {
    /// The adapter of `backend`.
    pub(crate) fn of(backend: &Backend) -> Arc<Adapter> {
        backend.attachment(Adapter::default)
    }

    /// `party` wants log messages at `level` (`None`: it no longer wants
    /// any). A legacy backend is set to the most verbose level anyone
    /// wants, when that changes; nobody wanting any leaves it as it is.
    pub(crate) async fn want_level(
        &self,
        backend: &Backend,
        party: Party,
        level: Option<LogLevel>,
    ) -> Result<(), Refused> {
        let _one_at_a_time = self.ops.lock().await;
        let target = {
            let mut levels = self.levels.lock();
            match level {
                Some(l) => levels.wanted.insert(party, l),
                None => levels.wanted.remove(&party),
            };
            let most = levels.wanted.values().min().copied();
            most.filter(|m| levels.at != Some(*m))
        };
        let Some(target) = target else {
            return Ok(());
        };
        if !backend_is(backend, Era::Legacy) {
            return Ok(()); // a modern backend takes the level per request
        }
        let params = object(&[("level", &string(target.name()))]);
        own_call(backend, "logging/setLevel", Some(&params)).await?;
        self.levels.lock().at = Some(target);
        Ok(())
    }

    /// A client subscribes to `uri`: the first subscriber's subscription
    /// goes to a legacy backend; a modern backend's gateway listen is
    /// widened.
    pub(crate) async fn subscribe(
        self: &Arc<Self>,
        backend: &Arc<Backend>,
        uri: &str,
    ) -> Result<(), Refused> {
        let _one_at_a_time = self.ops.lock().await;
        let first = {
            let mut subs = self.subscribed.lock();
            let n = subs.entry(uri.to_owned()).or_default();
            *n += 1;
            *n == 1
        };
        if !first {
            return Ok(());
        }
        if backend_is(backend, Era::Legacy) {
            let params = object(&[("uri", &string(uri))]);
            if let Err(e) = own_call(backend, "resources/subscribe", Some(&params)).await {
                self.release_uri(uri);
                return Err(e);
            }
        } else if let Some(number) = self.sync_listen(backend) {
            // Answered once the backend listens for `uri`, so an update
            // right after the client's subscribe reaches it.
            self.until_acknowledged(number).await;
        }
        Ok(())
    }

    /// A client unsubscribes from `uri` (or goes away while subscribed):
    /// the last one's unsubscribe goes to a legacy backend.
    pub(crate) async fn unsubscribe(
        self: &Arc<Self>,
        backend: &Arc<Backend>,
        uri: &str,
    ) -> Result<(), Refused> {
        let _one_at_a_time = self.ops.lock().await;
        if !self.release_uri(uri) {
            return Ok(());
        }
        if backend_is(backend, Era::Legacy) {
            let params = object(&[("uri", &string(uri))]);
            own_call(backend, "resources/unsubscribe", Some(&params)).await?;
        } else if let Some(number) = self.sync_listen(backend) {
            // Answered once the narrower listen replaced the old one.
            self.until_acknowledged(number).await;
        }
        Ok(())
    }

    /// Counts one subscriber of `uri` less; whether it was the last.
    fn release_uri(&self, uri: &str) -> bool {
        let mut subs = self.subscribed.lock();
        match subs.get_mut(uri) {
            Some(n) if *n > 1 => {
                *n -= 1;
                false
            }
            Some(_) => {
                subs.remove(uri);
                true
            }
            None => false,
        }
    }

    /// A legacy session attached to (or left) a modern backend: the
    /// gateway's listen runs while any is attached.
    pub(crate) fn session_attached(self: &Arc<Self>, backend: &Arc<Backend>, attached: bool) {
        {
            let mut listen = self.listen.lock();
            if attached {
                listen.sessions += 1;
            } else {
                listen.sessions = listen.sessions.saturating_sub(1);
            }
        }
        if !backend_is(backend, Era::Legacy) {
            self.sync_listen(backend);
        }
    }

    /// Waits (at most [`LISTEN_ACK_WAIT`]) until listen `number`, or a newer
    /// one, has been acknowledged by the backend.
    async fn until_acknowledged(&self, number: u64) {
        let wait = async {
            loop {
                let acked = self.listen_acked.notified();
                tokio::pin!(acked);
                acked.as_mut().enable();
                if self.listen.lock().acked >= number {
                    return;
                }
                acked.await;
            }
        };
        if tokio::time::timeout(LISTEN_ACK_WAIT, wait).await.is_err() {
            debug!(
                number,
                "the backend did not acknowledge the gateway's listen"
            );
        }
    }

    /// Listen `number` was acknowledged: it takes over from older ones.
    fn acknowledged(&self, number: u64) {
        {
            let mut listen = self.listen.lock();
            listen.acked = listen.acked.max(number);
        }
        self.listen_acked.notify_waiters();
    }

    /// Whether listen `number` should end: no listen is wanted, or a newer
    /// one was acknowledged (until then the old one goes on, so a change of
    /// filter loses nothing).
    fn superseded(&self, number: u64) -> bool {
        let listen = self.listen.lock();
        match &listen.running {
            Some((n, _)) if *n == number => false,
            None => true,
            Some(_) => listen.acked > number,
        }
    }

    /// The filter the gateway's listen needs now (`None`: no listen).
    fn wanted_filter(&self) -> Option<String> {
        if self.listen.lock().sessions == 0 {
            return None;
        }
        let uris: Vec<String> = self.subscribed.lock().keys().map(|u| string(u)).collect();
        let uris = format!("[{}]", uris.join(","));
        Some(object(&[
            ("toolsListChanged", "true"),
            ("promptsListChanged", "true"),
            ("resourcesListChanged", "true"),
            ("resourceSubscriptions", &uris),
        ]))
    }

    /// Opens the gateway's listen with the filter needed now if it differs
    /// from the running one (the new one opens before the old one ends, so
    /// a change of filter loses nothing), or ends it when none is needed.
    /// The number of the listen opened, if one was.
    fn sync_listen(self: &Arc<Self>, backend: &Arc<Backend>) -> Option<u64> {
        let wanted = self.wanted_filter();
        let number = {
            let mut listen = self.listen.lock();
            if listen.running.as_ref().map(|(_, f)| f) == wanted.as_ref() {
                return None;
            }
            let Some(filter) = wanted else {
                listen.running = None; // the running task sees it and stops
                return None;
            };
            listen.next += 1;
            let n = listen.next;
            listen.running = Some((n, filter));
            n
        };
        let adapter = Arc::downgrade(self);
        let backend = Arc::downgrade(backend);
        tokio::spawn(async move {
            run_listen(adapter, backend, number).await;
        });
        Some(number)
    }

    fn current_listen(&self, number: u64) -> Option<String> {
        match &self.listen.lock().running {
            Some((n, filter)) if *n == number => Some(filter.clone()),
            _ => None,
        }
    }
}

/// The gateway's listen number `number`, until another replaces it or the
/// backend goes away; opened again after a pause when the backend ends it.
async fn run_listen(
    adapter: std::sync::Weak<Adapter>,
    backend: std::sync::Weak<Backend>,
    number: u64,
) {
    loop {
        let (Some(a), Some(b)) = (adapter.upgrade(), backend.upgrade()) else {
            return;
        };
        let Some(filter) = a.current_listen(number) else {
            return;
        };
        let params = object(&[("notifications", &filter)]);
        let Ok(params) = RawValue::from_string(params) else {
            return;
        };
        let request = OwnedRequest::new(own_id(), "subscriptions/listen", Some(params));
        let opts = RequestOptions {
            deadline: Deadline::Never,
            ..RequestOptions::default()
        };
        let mut stream = match b.upstream.call(request, opts).await {
            Ok(s) => s,
            Err(e) => {
                debug!(target = %b.name(), error = %e, "the gateway's listen could not start");
                drop((a, b));
                tokio::time::sleep(RELISTEN_DELAY).await;
                continue;
            }
        };
        let upstream = b.upstream.clone();
        drop((a, b));
        loop {
            // Checked at each item and when idle: a newer listen, once
            // acknowledged, replaces this one (dropping the stream cancels
            // it at the backend).
            let item = tokio::select! {
                item = stream.next() => item,
                () = tokio::time::sleep(RELISTEN_DELAY) => {
                    match adapter.upgrade() {
                        Some(a) if a.current_listen(number).is_some() => continue,
                        _ => return,
                    }
                }
            };
            match adapter.upgrade() {
                Some(a) if !a.superseded(number) => {}
                _ => return,
            }
            match item {
                Some(CallItem::Notification { method, frame }) => {
                    if method == "notifications/subscriptions/acknowledged" {
                        if let Some(a) = adapter.upgrade() {
                            a.acknowledged(number);
                        }
                        continue;
                    }
                    let Some(b) = backend.upgrade() else { return };
                    let frame = super::translate::without_subscription_tag(frame);
                    b.deliver_notification(&method, &frame, None);
                }
                Some(CallItem::ServerRequest { key, method, .. }) => {
                    let Some(b) = backend.upgrade() else { return };
                    b.answer_from_config(key, &method).await;
                }
                Some(_) | None => break,
            }
        }
        if upstream.status().closed {
            return;
        }
        warn!("the gateway's listen to a backend ended; opening it again");
        tokio::time::sleep(RELISTEN_DELAY).await;
    }
}

fn backend_is(backend: &Backend, era: Era) -> bool {
    backend
        .upstream
        .backend_info()
        .is_some_and(|i| i.era == era)
}

fn own_id() -> Box<RawValue> {
    let n = NEXT_OWN_ID.fetch_add(1, Ordering::Relaxed);
    RawValue::from_string(string(&format!("mcpod-{n}")))
        .unwrap_or_else(|_| RawValue::NULL.to_owned())
}

/// A request the gateway itself makes of a backend.
async fn own_call(backend: &Backend, method: &str, params: Option<&str>) -> Result<(), Refused> {
    let params = params.and_then(|p| RawValue::from_string(p.to_owned()).ok());
    let request = OwnedRequest::new(own_id(), method, params);
    let opts = RequestOptions {
        deadline: Deadline::After(OWN_CALL_TIMEOUT),
        ..RequestOptions::default()
    };
    let refused = |message: String| Refused {
        code: mcpod_core::envelope::INTERNAL_ERROR,
        message,
        data: None,
    };
    let stream = backend
        .upstream
        .call(request, opts)
        .await
        .map_err(|e| refused(e.to_string()))?;
    match stream.finish().await {
        Some(CallItem::Response {
            is_error: false, ..
        }) => Ok(()),
        Some(CallItem::Response { frame, .. }) => {
            let error = match mcpod_core::Message::parse(&frame) {
                Ok(mcpod_core::Message::Error { error, .. }) => {
                    mcpod_core::envelope::ErrorObject::parse(error).map(|e| Refused {
                        code: e.code,
                        message: e.message.into_owned(),
                        data: e.data.map(|d| d.to_owned()),
                    })
                }
                _ => None,
            };
            Err(error.unwrap_or_else(|| refused(format!("the backend refused {method}"))))
        }
        Some(CallItem::Ended { reason, .. }) => Err(refused(reason.to_string())),
        _ => Err(refused(format!("no answer to {method}"))),
    }
}

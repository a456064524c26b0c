//! `subscriptions/listen` (2026-07-28) served by the gateway for a legacy
//! backend: the client gets an acknowledgement of what can be honoured,
//! then the backend's list-changed notifications, tagged with the
//! subscription id, until it goes away.

use std::sync::Arc;

use mcpod_core::{BackendInfo, Owner};
use mcpod_tokio::ServerRequestKey;
use serde::{Deserialize, Serialize};
use serde_json::value::RawValue;
use tokio::sync::mpsc;

use tracing::debug;

use super::adapter::Adapter;
use crate::targets::{Backend, Member};

/// Notifications buffered for a listener that reads slowly.
const LISTEN_BUFFER: usize = 64;

/// Which notification types a `subscriptions/listen` opted in to (the ones
/// the gateway can honour for a legacy backend).
#[derive(Debug, Clone, Default, PartialEq, Eq, Deserialize, Serialize)]
#[serde(rename_all = "camelCase")]
pub(crate) struct ListenFilter {
    /// `notifications/tools/list_changed`.
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub(crate) tools_list_changed: bool,
    /// `notifications/prompts/list_changed`.
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub(crate) prompts_list_changed: bool,
    /// `notifications/resources/list_changed`.
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub(crate) resources_list_changed: bool,
    /// `notifications/resources/updated` for these URIs.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub(crate) resource_subscriptions: Vec<String>,
}

impl ListenFilter {
    fn wants(&self, method: &str) -> bool {
        match method {
            "notifications/tools/list_changed" => self.tools_list_changed,
            "notifications/prompts/list_changed" => self.prompts_list_changed,
            "notifications/resources/list_changed" => self.resources_list_changed,
            _ => false,
        }
    }

    /// What of `self` the backend can honour: the list changes its
    /// capabilities announce, and resource updates if it takes
    /// subscriptions.
    pub(crate) fn honoured(self, info: &BackendInfo) -> ListenFilter {
        #[derive(Deserialize, Default)]
        struct Caps {
            #[serde(default)]
            tools: Option<ListChanged>,
            #[serde(default)]
            prompts: Option<ListChanged>,
            #[serde(default)]
            resources: Option<ListChanged>,
        }
        #[derive(Deserialize, Default)]
        #[serde(rename_all = "camelCase")]
        struct ListChanged {
            #[serde(default)]
            list_changed: bool,
            #[serde(default)]
            subscribe: bool,
        }
        let caps: Caps = serde_json::from_str(info.capabilities.get()).unwrap_or_default();
        let has = |c: &Option<ListChanged>| c.as_ref().is_some_and(|c| c.list_changed);
        ListenFilter {
            tools_list_changed: self.tools_list_changed && has(&caps.tools),
            prompts_list_changed: self.prompts_list_changed && has(&caps.prompts),
            resources_list_changed: self.resources_list_changed && has(&caps.resources),
            resource_subscriptions: if caps.resources.as_ref().is_some_and(|r| r.subscribe) {
                self.resource_subscriptions
            } else {
                Vec::new()
            },
        }
    }
}

/// A notification tagged with a subscription id, with extra params.
fn tagged(method: &str, subscription: &str, extra: &[(&str, &str)]) -> Vec<u8> {
    use mcpod_core::json::{notification_frame, object};
    let meta = object(&[(mcpod_core::meta::SUBSCRIPTION_ID, subscription)]);
    let mut params = vec![(mcpod_core::meta::META, meta.as_str())];
    params.extend_from_slice(extra);
    notification_frame(method, Some(&object(&params)))
}

/// `frame` (a backend notification) tagged with `subscription`: its params
/// kept, `_meta` gaining the subscription id.
fn tag(frame: &[u8], subscription: &str) -> Option<Vec<u8>> {
    use mcpod_core::json::{edit_object, notification_frame};
    let mcpod_core::Message::Notification { method, params } =
        mcpod_core::Message::parse(frame).ok()?
    else {
        return None;
    };
    let params = params.map_or("{}", |p| p.get());
    #[derive(Deserialize)]
    struct WithMeta<'a> {
        #[serde(rename = "_meta", borrow)]
        meta: Option<&'a RawValue>,
    }
    let meta = serde_json::from_str::<WithMeta<'_>>(params).ok()?.meta;
    let meta = match meta {
        Some(m) => edit_object(
            m.get(),
            &[(mcpod_core::meta::SUBSCRIPTION_ID, subscription)],
            &[],
        )?,
        None => mcpod_core::json::object(&[(mcpod_core::meta::SUBSCRIPTION_ID, subscription)]),
    };
    let params = edit_object(params, &[(mcpod_core::meta::META, &meta)], &[])?;
    Some(notification_frame(&method, Some(&params)))
}

/// The `uri` of a `notifications/resources/updated` frame.
fn updated_uri(frame: &[u8]) -> Option<String> {
    #[derive(Deserialize)]
    struct Frame {
        params: Option<Params>,
    }
    #[derive(Deserialize)]
    struct Params {
        uri: Option<String>,
    }
    serde_json::from_slice::<Frame>(frame).ok()?.params?.uri
}

/// One client's listen stream.
#[derive(Debug)]
pub(crate) struct Listener {
    /// The listen request's id (the subscription id), as JSON.
    subscription: String,
    filter: ListenFilter,
    tx: mpsc::Sender<Vec<u8>>,
    backend: Arc<Backend>,
}

/// An open listen: the acknowledgement to send first, and the tagged
/// notifications after it. Dropping it detaches the listener.
#[derive(Debug)]
pub(crate) struct Listening {
    /// `notifications/subscriptions/acknowledged` with what is honoured.
    pub(crate) ack: Vec<u8>,
    /// The notifications.
    pub(crate) rx: mpsc::Receiver<Vec<u8>>,
    /// Keeps the listener attached.
    pub(crate) guard: Arc<Listener>,
}

/// Opens a listen for request `id` on a legacy `backend`: the resources it
/// asks about are subscribed at the backend (counted with every other
/// subscriber's) until the listen ends.
pub(crate) async fn listen(
    backend: &Arc<Backend>,
    info: &BackendInfo,
    id: &RawValue,
    asked: ListenFilter,
) -> Listening {
    let mut filter = asked.honoured(info);
    let adapter = Adapter::of(backend);
    let mut subscribed = Vec::new();
    for uri in std::mem::take(&mut filter.resource_subscriptions) {
        match adapter.subscribe(backend, &uri).await {
            Ok(()) => subscribed.push(uri),
            Err(e) => debug!(uri, message = %e.message, "the backend refused a subscription"),
        }
    }
    filter.resource_subscriptions = subscribed;
    let subscription = id.get().to_owned();
    let filter_json = serde_json::to_string(&filter).unwrap_or_else(|_| "{}".into());
    let ack = tagged(
        "notifications/subscriptions/acknowledged",
        &subscription,
        &[("notifications", &filter_json)],
    );
    let (tx, rx) = mpsc::channel(LISTEN_BUFFER);
    let listener = Arc::new(Listener {
        subscription,
        filter,
        tx,
        backend: backend.clone(),
    });
    let member: Arc<dyn Member> = listener.clone();
    backend.attach(Arc::downgrade(&member));
    Listening {
        ack,
        rx,
        guard: listener,
    }
}

impl Drop for Listener {
    fn drop(&mut self) {
        let uris = std::mem::take(&mut self.filter.resource_subscriptions);
        if uris.is_empty() {
            return;
        }
        let backend = self.backend.clone();
        tokio::spawn(async move {
            let adapter = Adapter::of(&backend);
            for uri in uris {
                let _ = adapter.unsubscribe(&backend, &uri).await;
            }
        });
    }
}

impl Member for Listener {
    fn owner(&self) -> Option<Owner> {
        None
    }

    fn notify(&self, method: &str, frame: &[u8]) -> bool {
        let wanted = match method {
            "notifications/resources/updated" => updated_uri(frame)
                .is_some_and(|uri| self.filter.resource_subscriptions.contains(&uri)),
            _ => self.filter.wants(method),
        };
        if !wanted {
            return false;
        }
        let tagged = tag(frame, &self.subscription)
            .unwrap_or_else(|| tagged(method, &self.subscription, &[]));
        self.tx.try_send(tagged).is_ok()
    }

    fn offer(&self, _: &Backend, _: ServerRequestKey, _: &str, _: Option<&RawValue>) -> bool {
        false
    }

    fn withdraw(&self, _: ServerRequestKey) {}
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;

    #[test]
    fn listen_honours_only_what_the_backend_has() {
        let raw = |s: &str| RawValue::from_string(s.to_owned()).unwrap();
        let info = BackendInfo {
            era: mcpod_core::Era::Legacy,
            protocol_version: "2025-06-18".into(),
            supported_versions: vec!["2025-06-18".into()],
            capabilities: raw(r#"{"tools":{"listChanged":true},"prompts":{}}"#),
            server_info: None,
            instructions: None,
            result: raw("{}"),
        };
        let asked = ListenFilter {
            tools_list_changed: true,
            prompts_list_changed: true,
            resources_list_changed: true,
            resource_subscriptions: vec!["a://b".into()],
        };
        let got = asked.honoured(&info);
        assert!(got.tools_list_changed);
        assert!(!got.prompts_list_changed, "prompts has no listChanged");
        assert!(!got.resources_list_changed);
        assert!(
            got.resource_subscriptions.is_empty(),
            "no resources.subscribe"
        );
    }

    #[test]
    fn a_backend_notification_keeps_its_params_when_tagged() {
        let f = br#"{"jsonrpc":"2.0","method":"notifications/resources/updated","params":{"uri":"a://b","_meta":{"k":1}}}"#;
        let v: serde_json::Value = serde_json::from_slice(&tag(f, "7").unwrap()).unwrap();
        assert_eq!(v["params"]["uri"], "a://b");
        assert_eq!(v["params"]["_meta"]["k"], 1);
        assert_eq!(
            v["params"]["_meta"]["io.modelcontextprotocol/subscriptionId"],
            7
        );
        assert_eq!(updated_uri(f).as_deref(), Some("a://b"));
    }

    #[test]
    fn tagged_notifications_carry_the_subscription() {
        let frame = tagged("n/x", "\"sub-1\"", &[("notifications", "{\"a\":true}")]);
        let v: serde_json::Value = serde_json::from_slice(&frame).unwrap();
        assert_eq!(
            v["params"]["_meta"]["io.modelcontextprotocol/subscriptionId"],
            "sub-1"
        );
        assert_eq!(v["params"]["notifications"]["a"], true);
    }
}

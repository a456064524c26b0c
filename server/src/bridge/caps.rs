//! [`ClientCaps`]: which server→client requests a client said it can
//! answer.

use serde::Deserialize;
use serde_json::value::RawValue;

/// Which server requests a client can answer, from its capabilities object
/// (a legacy client's `initialize`, a 2026-07-28 client's
/// `_meta["io.modelcontextprotocol/clientCapabilities"]`).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub(crate) struct ClientCaps {
    /// `roots`.
    pub(crate) roots: bool,
    /// `sampling`.
    pub(crate) sampling: bool,
    /// `elicitation`.
    pub(crate) elicitation: bool,
}

impl ClientCaps {
    /// Reads a capabilities object (raw JSON).
    pub(crate) fn from_raw(caps: Option<&RawValue>) -> ClientCaps {
        #[derive(Deserialize)]
        struct Keys<'a> {
            #[serde(borrow, default)]
            roots: Option<&'a RawValue>,
            #[serde(borrow, default)]
            sampling: Option<&'a RawValue>,
            #[serde(borrow, default)]
            elicitation: Option<&'a RawValue>,
        }
        let present = |v: Option<&RawValue>| v.is_some_and(|v| v.get() != "null");
        caps.and_then(|c| serde_json::from_str::<Keys<'_>>(c.get()).ok())
            .map(|k| ClientCaps {
                roots: present(k.roots),
                sampling: present(k.sampling),
                elicitation: present(k.elicitation),
            })
            .unwrap_or_default()
    }

    /// Whether the client can answer `method`.
    pub(crate) fn can_answer(&self, method: &str) -> bool {
        match method {
            "roots/list" => self.roots,
            "sampling/createMessage" => self.sampling,
            "elicitation/create" => self.elicitation,
            _ => false,
        }
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;

    #[test]
    fn reads_what_a_client_can_answer() {
        let raw = RawValue::from_string(r#"{"roots":{},"sampling":null}"#.into()).unwrap();
        let caps = ClientCaps::from_raw(Some(&raw));
        assert!(caps.can_answer("roots/list"));
        assert!(!caps.can_answer("sampling/createMessage"));
        assert!(!caps.can_answer("ping"));
        assert_eq!(ClientCaps::from_raw(None), ClientCaps::default());
    }
}

//! [`Clients`]: containerd connections, shared by the backends that reach
//! containerd the same way.

use std::collections::HashMap;
use std::path::PathBuf;
use std::sync::Arc;

use parking_lot::Mutex;

use mcpod_containerd::{Bots, Client, Error as CtdError};
use tokio::sync::OnceCell;

use crate::config::ContainerdSettings;

/// What makes two settings share a connection.
type ConnectionKey = (PathBuf, String, PathBuf);

/// containerd connections, each made on first use and shared by every
/// backend that reaches the same containerd the same way (socket,
/// namespace, FIFO root).
#[derive(Debug, Clone, Default)]
pub(crate) struct Clients {
    connections: Arc<Mutex<HashMap<ConnectionKey, Arc<OnceCell<Client>>>>>,
}

impl Clients {
    /// The connection for `settings`.
    pub(crate) async fn client(&self, settings: &ContainerdSettings) -> Result<Client, CtdError> {
        let key = (
            settings.socket.clone(),
            settings.namespace.clone(),
            settings.fifo_root.clone(),
        );
        let cell = self.connections.lock().entry(key).or_default().clone();
        cell.get_or_try_init(|| Client::connect(settings.client_config()))
            .await
            .cloned()
    }

    /// Bot containers reached with `settings`.
    pub(crate) async fn bots(&self, settings: &ContainerdSettings) -> Result<Bots, CtdError> {
        Ok(Bots::new(
            self.client(settings).await?,
            settings.bot_config(),
        ))
    }

    #[cfg(test)]
    fn connections(&self) -> usize {
        self.connections.lock().len()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn settings_that_reach_containerd_alike_share_one_connection() {
        let clients = Clients::default();
        let dir = tempfile::tempdir().unwrap_or_else(|e| panic!("{e}"));
        let mut a = ContainerdSettings {
            socket: dir.path().join("absent.sock"),
            ..ContainerdSettings::default()
        };
        // Connecting fails (no daemon there), but the slot is made once per key.
        let _ = clients.client(&a).await;
        let mut same = a.clone();
        same.exec.command = "/bin/other".into();
        let _ = clients.client(&same).await;
        assert_eq!(clients.connections(), 1);
        a.namespace = "other".into();
        let _ = clients.client(&a).await;
        assert_eq!(clients.connections(), 2);
    }
}

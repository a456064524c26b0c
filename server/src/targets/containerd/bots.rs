//! Bot containers served without configuration, and the container checks
//! that give the Memoh routes their status codes.
//!
//! [`BotContainers`] keeps one [`Target`] per bot: one shared session (one
//! exec'd server) per bot container. The first call for a bot checks the
//! container and makes the target once, however many calls race for it
//! (a single-flight cell per bot); errors are not cached. Whenever a bot's
//! backend is not running — never started, died, stopped for idleness —
//! the next call checks the container again before a new process is
//! exec'd, so a deleted or relabelled container answers 404 / 403 instead
//! of being served from a stale cache.

use std::collections::HashMap;
use std::sync::Arc;

use parking_lot::Mutex;
use std::time::Duration;

use http::StatusCode;
use mcpod_containerd::{BotId, Error as CtdError};
use tokio::sync::OnceCell;
use tracing::info;

use super::clients::Clients;
use crate::config::{
    BackendSpec, ContainerdBackend, ContainerdSettings, Limits, Sharing, TargetConfig,
};
use crate::targets::target::{Registry, Target};

/// Why a bot's container cannot serve a request, with its HTTP status.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct BotRefusal {
    /// The status.
    pub(crate) status: StatusCode,
    /// The `message` of the echo-style body.
    pub(crate) message: String,
}

impl BotRefusal {
    /// The status and message for a containerd error: an invalid bot id →
    /// 400; no container → 404 "container not found"; another bot's label →
    /// 403 "bot mismatch"; no label (refused) → 403; task not running or
    /// containerd unreachable → 503; anything else → 502.
    pub(crate) fn from_error(e: &CtdError) -> BotRefusal {
        let (status, message) = match e {
            CtdError::InvalidBotId { .. } => (StatusCode::BAD_REQUEST, e.to_string()),
            CtdError::NotFound { .. } => (StatusCode::NOT_FOUND, "container not found".to_owned()),
            CtdError::BotMismatch { .. } => (StatusCode::FORBIDDEN, "bot mismatch".to_owned()),
            CtdError::Unlabelled { .. } => (
                StatusCode::FORBIDDEN,
                "container has no bot label (unlabelled containers are refused)".to_owned(),
            ),
            CtdError::TaskNotRunning { .. }
            | CtdError::Connect { .. }
            | CtdError::Timeout { .. } => (StatusCode::SERVICE_UNAVAILABLE, e.to_string()),
            _ if e.rpc_code() == Some(tonic::Code::Unavailable) => {
                (StatusCode::SERVICE_UNAVAILABLE, e.to_string())
            }
            _ => (StatusCode::BAD_GATEWAY, e.to_string()),
        };
        BotRefusal { status, message }
    }

    /// The refusal behind a backend start failure, when containerd refused
    /// the bot's container (see [`BotRefusal::from_error`]).
    pub(crate) fn of_spawn_error(e: &std::io::Error) -> Option<BotRefusal> {
        e.get_ref()?
            .downcast_ref::<CtdError>()
            .map(BotRefusal::from_error)
    }

    /// Whether the container is gone or no longer this bot's (so a cached
    /// session for it must go).
    fn container_gone(&self) -> bool {
        matches!(self.status, StatusCode::NOT_FOUND | StatusCode::FORBIDDEN)
    }
}

/// For a containerd target: when no backend process runs for it, checks
/// that the bot's container exists, belongs to the bot and may be used.
/// Other targets pass.
pub(crate) async fn check_target(target: &Target) -> Result<(), BotRefusal> {
    let BackendSpec::Containerd(backend) = &target.config.backend else {
        return Ok(());
    };
    if target.shared_upstream().status().alive {
        return Ok(());
    }
    check_container(target.clients(), backend).await
}

async fn check_container(clients: &Clients, backend: &ContainerdBackend) -> Result<(), BotRefusal> {
    let bots = clients
        .bots(&backend.settings)
        .await
        .map_err(|e| BotRefusal::from_error(&e))?;
    bots.find(&backend.bot)
        .await
        .map(|_| ())
        .map_err(|e| BotRefusal::from_error(&e))
}

/// Every bot with a container, served on the Memoh routes (`[containerd]
/// serve_bots = true`).
#[derive(Debug)]
pub(crate) struct BotContainers {
    settings: ContainerdSettings,
    limits: Limits,
    clients: Clients,
    sessions: Mutex<HashMap<String, Arc<OnceCell<Arc<Target>>>>>,
}

impl BotContainers {
    /// The registry for `settings`, connecting through `clients`.
    pub(crate) fn new(settings: ContainerdSettings, limits: Limits, clients: Clients) -> Self {
        BotContainers {
            settings,
            limits,
            clients,
            sessions: Mutex::new(HashMap::new()),
        }
    }

    /// Bots served from their containers now.
    pub(crate) fn count(&self) -> usize {
        self.sessions.lock().len()
    }

    /// The backend of a bot.
    fn backend(&self, bot_id: &str) -> ContainerdBackend {
        ContainerdBackend {
            bot: bot_id.to_owned(),
            settings: self.settings.clone(),
        }
    }

    /// The name a bot's target goes by in logs and metrics.
    fn target_name(bot_id: &str) -> String {
        format!("bot:{bot_id}")
    }

    fn target_config(&self, bot_id: &str) -> TargetConfig {
        TargetConfig {
            name: Self::target_name(bot_id),
            backend: BackendSpec::Containerd(self.backend(bot_id)),
            era: mcpod_core::EraMode::Auto,
            call_timeout: Duration::from_secs(60),
            sharing: Sharing::Shared,
            tokens: None,
            auth_methods: crate::config::AuthMethods {
                tokens: true,
                oauth: false,
            },
            oauth: None,
            policy: None,
            roots: None,
            max_calls_in_flight: self.limits.max_calls_per_target,
            shutdown_grace: Duration::from_secs(3),
            restart_backoff: crate::config::DEFAULT_RESTART_BACKOFF,
            asking_tools: Vec::new(),
            broadcast_logs: false,
        }
    }

    /// The bot's target (its one shared session), made on first use after
    /// its container checked out; checked again whenever its backend is not
    /// running. A configured target that execs the same command in the
    /// same container is that session: it is used instead of a second one.
    pub(crate) async fn target(
        &self,
        configured: &Registry,
        bot_id: &str,
    ) -> Result<Arc<Target>, BotRefusal> {
        BotId::parse(bot_id).map_err(|e| BotRefusal::from_error(&e))?;
        let same = configured.all().find(|t| match &t.config.backend {
            BackendSpec::Containerd(c) => {
                c.bot == bot_id
                    && c.settings.same_connection(&self.settings)
                    && c.settings.container_prefix == self.settings.container_prefix
                    && c.settings.exec == self.settings.exec
            }
            _ => false,
        });
        if let Some(target) = same {
            check_target(target).await?;
            return Ok(target.clone());
        }
        let cell = self
            .sessions
            .lock()
            .entry(bot_id.to_owned())
            .or_default()
            .clone();
        let mut fresh = false;
        let made = cell
            .get_or_try_init(|| async {
                check_container(&self.clients, &self.backend(bot_id)).await?;
                fresh = true;
                let target = Target::new(
                    self.target_config(bot_id),
                    self.limits.clone(),
                    self.clients.clone(),
                );
                info!(bot = bot_id, "bot container session created");
                Ok::<_, BotRefusal>(target)
            })
            .await;
        let target = match made {
            Ok(t) => t.clone(),
            Err(refusal) => {
                self.forget(bot_id, &cell);
                return Err(refusal);
            }
        };
        if !fresh && !target.shared_upstream().status().alive {
            if let Err(refusal) = check_container(&self.clients, &self.backend(bot_id)).await {
                if refusal.container_gone() && self.forget(bot_id, &cell) {
                    info!(bot = bot_id, status = %refusal.status, "bot container gone; session dropped");
                    let stale = target.clone();
                    tokio::spawn(async move { stale.close().await });
                }
                return Err(refusal);
            }
        }
        Ok(target)
    }

    /// Removes the bot's entry if it is still `cell`; returns whether it did.
    fn forget(&self, bot_id: &str, cell: &Arc<OnceCell<Arc<Target>>>) -> bool {
        let mut sessions = self.sessions.lock();
        match sessions.get(bot_id) {
            Some(c) if Arc::ptr_eq(c, cell) => {
                sessions.remove(bot_id);
                true
            }
            _ => false,
        }
    }

    /// Closes every bot's session (at shutdown).
    pub(crate) async fn close_all(&self) {
        let all: Vec<Arc<OnceCell<Arc<Target>>>> =
            self.sessions.lock().drain().map(|(_, c)| c).collect();
        for cell in all {
            if let Some(target) = cell.get() {
                target.close().await;
            }
        }
    }
}

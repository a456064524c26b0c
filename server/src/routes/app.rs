//! [`App`]: the state every handler shares.

use std::net::SocketAddr;
use std::sync::Arc;

use http::HeaderMap;

use super::auth::TokenSet;
use super::guard::HostGuard;
use crate::config::Config;
use crate::front::Context;
use crate::front::legacy::Sessions;
use crate::front::memoh::StdioConnections;
use crate::ids::Principal;
use crate::targets::{BotContainers, Registry};
use crate::web::errors::ApiError;

/// Everything the handlers share.
#[derive(Debug)]
pub(crate) struct App {
    /// The configuration.
    pub(crate) config: Config,
    /// The targets.
    pub(crate) targets: Registry,
    /// Host/Origin checks.
    pub(crate) guard: HostGuard,
    /// What the front ends share (metrics, parked calls, shutdown).
    pub(crate) ctx: Context,
    /// Legacy sessions, per target.
    pub(crate) sessions: Arc<Sessions>,
    /// Memoh `mcp-stdio` connections.
    pub(crate) stdio: StdioConnections,
    /// Bots served from their containers without configuration
    /// (`[containerd] serve_bots = true`).
    pub(crate) bot_containers: Option<BotContainers>,
}

impl App {
    /// The state for `config`, listening on `addr`.
    pub(crate) fn new(config: Config, addr: SocketAddr) -> Result<Arc<App>, std::io::Error> {
        // The config was checked against `listen`; the listener actually
        // given may differ (tests, embedding).
        if config.auth.disabled && !addr.ip().is_loopback() {
            return Err(std::io::Error::new(
                std::io::ErrorKind::InvalidInput,
                format!(
                    "auth.disabled: auth may only be disabled on a loopback listener, not {addr}"
                ),
            ));
        }
        let guard = HostGuard::new(
            &config.allowed_origins,
            &config.allowed_hosts,
            addr.ip().is_loopback(),
        );
        let targets = Registry::new(&config.targets, &config.limits);
        let bot_containers = config
            .containerd
            .as_ref()
            .filter(|c| c.serve_bots)
            .map(|c| {
                BotContainers::new(c.clone(), config.limits.clone(), targets.clients().clone())
            });
        Ok(Arc::new(App {
            sessions: Arc::new(Sessions::new(&targets)),
            targets,
            guard,
            ctx: Context::new(&config.sessions),
            stdio: StdioConnections::default(),
            bot_containers,
            config,
        }))
    }

    /// The tokens a route needs, given its own (if any).
    fn tokens<'a>(&'a self, own: Option<&'a Vec<String>>) -> TokenSet<'a> {
        if self.config.auth.disabled {
            return TokenSet::Disabled;
        }
        TokenSet::Tokens(own.unwrap_or(&self.config.auth.tokens))
    }

    /// Checks the request's bearer token against a route's own tokens, or
    /// the global ones.
    pub(crate) fn authorize(
        &self,
        own: Option<&Vec<String>>,
        headers: &HeaderMap,
    ) -> Result<Principal, ApiError> {
        self.tokens(own).check(headers)
    }
}

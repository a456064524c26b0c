//! [`App`]: the state every handler shares.

use std::net::SocketAddr;
use std::sync::Arc;

use http::HeaderMap;

use super::auth::TokenSet;
use super::guard::HostGuard;
use crate::config::Config;
use crate::front::Context;
use crate::front::legacy::{SessionStore, Sessions};
use crate::front::memoh::StdioConnections;
use crate::ids::Principal;
use crate::targets::{BotContainers, Registry, Target};
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
    pub(crate) stdio: Arc<StdioConnections>,
    /// Bots served from their containers without configuration
    /// (`[containerd] serve_bots = true`).
    pub(crate) bot_containers: Option<Arc<BotContainers>>,
    /// The address the gateway listens on.
    addr: SocketAddr,
}

/// What a reload leaves behind: targets changed or removed, to drain and
/// close, and the legacy sessions they had.
#[derive(Debug)]
pub(crate) struct Retired {
    /// The target as it was.
    pub(crate) target: Arc<Target>,
    /// Its legacy sessions.
    pub(crate) sessions: Option<SessionStore>,
}

impl App {
    /// The state for `config`, listening on `addr`.
    pub(crate) fn new(config: Config, addr: SocketAddr) -> Result<Arc<App>, std::io::Error> {
        let guard = Self::guard_for(&config, addr)?;
        let targets = Registry::new(&config.targets, &config.limits);
        let bot_containers = config
            .containerd
            .as_ref()
            .filter(|c| c.serve_bots)
            .map(|c| {
                Arc::new(BotContainers::new(
                    c.clone(),
                    config.limits.clone(),
                    targets.clients().clone(),
                ))
            });
        Ok(Arc::new(App {
            sessions: Arc::new(Sessions::new(&targets)),
            targets,
            guard,
            ctx: Context::new(),
            stdio: Arc::default(),
            bot_containers,
            config,
            addr,
        }))
    }

    /// The Host/Origin guard of `config` on `addr`, refusing auth off on a
    /// listener that is not loopback.
    fn guard_for(config: &Config, addr: SocketAddr) -> Result<HostGuard, std::io::Error> {
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
        Ok(HostGuard::new(
            &config.allowed_origins,
            &config.allowed_hosts,
            addr.ip().is_loopback(),
        ))
    }

    /// The state for a reloaded `config`: tokens, origins, hosts, limits
    /// and bots from it at once; each target whose backend settings did
    /// not change kept as it is (its backends, legacy sessions and calls
    /// untouched); changed and removed ones given back to be drained. What
    /// the gateway shares across configs (metrics, parked calls, the
    /// shutdown signal, stdio connections, bot containers) carries over.
    pub(crate) fn reloaded(
        &self,
        config: Config,
    ) -> Result<(Arc<App>, Vec<Retired>), std::io::Error> {
        let guard = Self::guard_for(&config, self.addr)?;
        let (targets, retired) = self.targets.carry(&config.targets, &config.limits);
        let (sessions, mut left) = self
            .sessions
            .carry(&targets, |name| targets.kept(&self.targets, name));
        let retired = retired
            .into_iter()
            .map(|target| {
                let at = left.iter().position(|(name, _)| name == target.name());
                Retired {
                    sessions: at.map(|i| left.swap_remove(i).1),
                    target,
                }
            })
            .collect();
        let app = App {
            config,
            targets,
            guard,
            ctx: self.ctx.clone(),
            sessions: Arc::new(sessions),
            stdio: self.stdio.clone(),
            bot_containers: self.bot_containers.clone(),
            addr: self.addr,
        };
        Ok((Arc::new(app), retired))
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

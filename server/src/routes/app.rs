//! [`App`]: the state every handler shares.

use std::collections::HashMap;
use std::net::SocketAddr;
use std::sync::Arc;

use http::HeaderMap;

use super::auth::{Authorized, Gate, TokenSet};
use super::guard::HostGuard;
use super::oauth::Verifier;
use crate::config::{Config, TargetConfig};
use crate::front::Context;
use crate::front::legacy::Sessions;
use crate::front::memoh::StdioConnections;
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
    /// The `[auth.oauth]` issuer's verifier.
    pub(crate) oauth: Option<Verifier>,
    /// The verifiers of targets with their own issuer, by target.
    pub(crate) target_oauth: HashMap<String, Verifier>,
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
        let invalid = |key: String, e: String| {
            std::io::Error::new(std::io::ErrorKind::InvalidInput, format!("{key}: {e}"))
        };
        let oauth = config
            .auth
            .oauth
            .as_ref()
            .map(|o| Verifier::new(o).map_err(|e| invalid("auth.oauth".to_owned(), e)))
            .transpose()?;
        let mut target_oauth = HashMap::new();
        for (name, t) in &config.targets {
            if let Some(o) = &t.oauth {
                let key = format!("targets.{name}.auth.oauth");
                target_oauth.insert(name.clone(), Verifier::new(o).map_err(|e| invalid(key, e))?);
            }
        }
        Ok(Arc::new(App {
            oauth,
            target_oauth,
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
        TokenSet::Tokens(
            own.unwrap_or(&self.config.auth.tokens),
            &self.config.auth.token_names,
        )
    }

    /// Checks the request's bearer token against a route's own tokens, or
    /// the global ones, or an access token of the `[auth.oauth]` issuer
    /// (`metadata`: the absolute URL of the resource metadata, for the
    /// challenge).
    pub(crate) async fn authorize(
        &self,
        own: Option<&Vec<String>>,
        headers: &HeaderMap,
        metadata: Option<&str>,
    ) -> Result<Authorized, ApiError> {
        let gate = Gate {
            tokens: Some(self.tokens(own)),
            oauth: self.oauth.as_ref(),
            metadata,
        };
        gate.check(headers).await
    }

    /// The issuer whose access tokens `target` accepts, if it accepts any.
    pub(crate) fn verifier_of(&self, target: &TargetConfig) -> Option<&Verifier> {
        if !target.auth_methods.oauth {
            return None;
        }
        self.target_oauth.get(&target.name).or(self.oauth.as_ref())
    }

    /// Checks the request's credentials against what `target` accepts
    /// (`metadata`: the absolute URL of its resource metadata).
    pub(crate) async fn authorize_target(
        &self,
        target: &TargetConfig,
        headers: &HeaderMap,
        metadata: Option<&str>,
    ) -> Result<Authorized, ApiError> {
        let tokens = if self.config.auth.disabled {
            Some(TokenSet::Disabled)
        } else {
            target
                .auth_methods
                .tokens
                .then(|| self.tokens(target.tokens.as_ref()))
        };
        let gate = Gate {
            tokens,
            oauth: self.verifier_of(target),
            metadata,
        };
        gate.check(headers).await
    }
}

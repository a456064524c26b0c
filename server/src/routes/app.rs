//! [`App`]: the state every handler shares.

use std::collections::HashMap;
use std::net::SocketAddr;
use std::sync::Arc;

use http::HeaderMap;

use super::auth::{Authorized, Gate, TokenSet};
use super::guard::HostGuard;
use super::oauth::Verifier;
use crate::aggregate::Aggregate;
use crate::config::{AggregateConfig, AuthMethods, Config, TargetConfig};
use crate::front::Context;
use crate::front::legacy::{SessionStore, Sessions};
use crate::front::memoh::StdioConnections;
use crate::targets::{BotContainers, Registry, Target};
use crate::web::errors::ApiError;

/// Everything the handlers share.
#[derive(Debug)]
pub(crate) struct App {
    /// The configuration.
    pub(crate) config: Config,
    /// The targets.
    pub(crate) targets: Registry,
    /// The aggregates, over the targets in force.
    pub(crate) aggregates: HashMap<String, Arc<Aggregate>>,
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
    /// The `[auth.oauth]` issuer's verifier.
    pub(crate) oauth: Option<Verifier>,
    /// The verifiers of targets with their own issuer, by target.
    pub(crate) target_oauth: HashMap<String, Verifier>,
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
        let aggregates = Aggregate::all(&config.aggregates, &targets);
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
        let (oauth, target_oauth) = Self::verifiers(&config)?;
        Ok(Arc::new(App {
            oauth,
            target_oauth,
            sessions: Arc::new(Sessions::new(&targets)),
            targets,
            aggregates,
            guard,
            ctx: Context::new(&config.sessions),
            stdio: Arc::default(),
            bot_containers,
            config,
            addr,
        }))
    }

    /// The verifiers of `config`'s issuers: the `[auth.oauth]` one, and
    /// those of targets with their own.
    fn verifiers(
        config: &Config,
    ) -> Result<(Option<Verifier>, HashMap<String, Verifier>), std::io::Error> {
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
        let own = config
            .targets
            .iter()
            .map(|(name, t)| (name, t.oauth.as_ref()))
            .chain(
                config
                    .aggregates
                    .iter()
                    .map(|(name, a)| (name, a.oauth.as_ref())),
            );
        for (name, oauth) in own {
            if let Some(o) = oauth {
                let key = format!("targets.{name}.auth.oauth");
                target_oauth.insert(name.clone(), Verifier::new(o).map_err(|e| invalid(key, e))?);
            }
        }
        Ok((oauth, target_oauth))
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
        let (oauth, target_oauth) = Self::verifiers(&config)?;
        let (targets, retired) = self.targets.carry(&config.targets, &config.limits);
        // Aggregates hold no backends: they are made again over the
        // targets in force (kept members keep their backends and calls).
        let aggregates = Aggregate::all(&config.aggregates, &targets);
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
            aggregates,
            guard,
            ctx: self.ctx.clone(),
            sessions: Arc::new(sessions),
            stdio: self.stdio.clone(),
            bot_containers: self.bot_containers.clone(),
            oauth,
            target_oauth,
            addr: self.addr,
        };
        Ok((Arc::new(app), retired))
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
    /// challenge; built only where OAuth is on, not on every request).
    pub(crate) async fn authorize(
        &self,
        own: Option<&Vec<String>>,
        headers: &HeaderMap,
        metadata: impl FnOnce() -> Option<String>,
    ) -> Result<Authorized, ApiError> {
        let oauth = self.oauth.as_ref();
        let metadata = oauth.and_then(|_| metadata());
        let gate = Gate {
            tokens: Some(self.tokens(own)),
            oauth,
            metadata: metadata.as_deref(),
        };
        gate.check(headers).await
    }

    /// The issuer whose access tokens `target` accepts, if it accepts any.
    pub(crate) fn verifier_of<'a>(&self, target: impl Into<Guarded<'a>>) -> Option<&Verifier> {
        let target = target.into();
        if !target.auth_methods.oauth {
            return None;
        }
        self.target_oauth.get(target.name).or(self.oauth.as_ref())
    }

    /// Checks the request's credentials against what `target` (a target
    /// or an aggregate) accepts (`metadata`: the absolute URL of its
    /// resource metadata, built only where the target accepts OAuth).
    pub(crate) async fn authorize_target<'a>(
        &self,
        target: impl Into<Guarded<'a>>,
        headers: &HeaderMap,
        metadata: impl FnOnce() -> Option<String>,
    ) -> Result<Authorized, ApiError> {
        let target = target.into();
        let tokens = if self.config.auth.disabled {
            Some(TokenSet::Disabled)
        } else {
            target
                .auth_methods
                .tokens
                .then(|| self.tokens(target.tokens))
        };
        let oauth = self.verifier_of(target);
        let metadata = oauth.and_then(|_| metadata());
        let gate = Gate {
            tokens,
            oauth,
            metadata: metadata.as_deref(),
        };
        gate.check(headers).await
    }
}

/// What guards a route of `/mcp/{name}`: its own tokens and the methods
/// it accepts (a target's or an aggregate's).
#[derive(Debug, Clone, Copy)]
pub(crate) struct Guarded<'a> {
    name: &'a str,
    tokens: Option<&'a Vec<String>>,
    auth_methods: AuthMethods,
}

impl<'a> From<&'a TargetConfig> for Guarded<'a> {
    fn from(t: &'a TargetConfig) -> Self {
        Guarded {
            name: &t.name,
            tokens: t.tokens.as_ref(),
            auth_methods: t.auth_methods,
        }
    }
}

impl<'a> From<&'a AggregateConfig> for Guarded<'a> {
    fn from(a: &'a AggregateConfig) -> Self {
        Guarded {
            name: &a.name,
            tokens: a.tokens.as_ref(),
            auth_methods: a.auth_methods,
        }
    }
}

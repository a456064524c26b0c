//! Turning a target's backend spec into a supervised [`Upstream`]: the seam
//! where each target kind becomes a running backend. A new kind adds an arm
//! here.

use mcpod_tokio::{ProcessSpec, Upstream, UpstreamConfig};

use super::containerd::clients::Clients;
use super::containerd::connector;
use crate::config::{
    BackendSpec, InheritEnv, ProcessBackend, STDIO_ENV_ALLOWLIST, TargetConfig, WITHHELD_ENV_PREFIX,
};

/// Starts the supervisor of `backend` (nothing runs until the first call).
pub(super) fn launch(backend: &BackendSpec, clients: &Clients, config: UpstreamConfig) -> Upstream {
    match backend {
        BackendSpec::Process(p) => mcpod_tokio::spawn_process(process_spec(p), config),
        BackendSpec::Containerd(c) => connector::launch(c, clients, config),
    }
}

/// What a local backend runs with. The gateway's `MCPOD_*` variables
/// (its tokens among them) are withheld from every child, whatever else
/// it inherits; a containerd exec gets the container's environment, never
/// the gateway's.
fn process_spec(p: &ProcessBackend) -> ProcessSpec {
    let mut spec = ProcessSpec::new(&p.command)
        .args(p.args.iter().map(String::as_str))
        .withhold(WITHHELD_ENV_PREFIX);
    spec = match p.inherit_env {
        InheritEnv::All => spec,
        InheritEnv::Allowlist => spec.inherit_only(STDIO_ENV_ALLOWLIST.iter().copied()),
        InheritEnv::Nothing => spec.env_clear(),
    };
    for (k, v) in &p.env {
        spec = spec.env(k, v);
    }
    if let Some(cwd) = &p.cwd {
        spec = spec.cwd(cwd);
    }
    if let Some(u) = p.user {
        spec = spec.user(u.uid, u.gid);
    }
    spec
}

/// The upstream configuration for a target.
pub(super) fn upstream_config(target: &TargetConfig, name: String) -> UpstreamConfig {
    let mut config = UpstreamConfig {
        name,
        shutdown_grace: target.shutdown_grace,
        restart_backoff_min: target.restart_backoff.0,
        restart_backoff_max: target.restart_backoff.1,
        ..UpstreamConfig::default()
    };
    config.core.era_mode = target.era;
    config.core.default_call_timeout = target.call_timeout;
    config.core.max_calls_in_flight = config
        .core
        .max_calls_in_flight
        .max(target.max_calls_in_flight);
    config
}

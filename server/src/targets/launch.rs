//! Turning a target's backend spec into a supervised [`Upstream`]: the seam
//! where each target kind becomes a running backend. A new kind adds an arm
//! here.

use mcpod_tokio::{ProcessSpec, Upstream, UpstreamConfig};

use super::containerd::clients::Clients;
use super::containerd::connector;
use crate::config::{BackendSpec, TargetConfig};

/// Starts the supervisor of `backend` (nothing runs until the first call).
pub(super) fn launch(backend: &BackendSpec, clients: &Clients, config: UpstreamConfig) -> Upstream {
    match backend {
        BackendSpec::Process(p) => {
            let mut spec = ProcessSpec::new(&p.command).args(p.args.iter().map(String::as_str));
            if p.env_clear {
                spec = spec.env_clear();
            }
            for (k, v) in &p.env {
                spec = spec.env(k, v);
            }
            if let Some(cwd) = &p.cwd {
                spec = spec.cwd(cwd);
            }
            mcpod_tokio::spawn_process(spec, config)
        }
        BackendSpec::Containerd(c) => connector::launch(c, clients, config),
    }
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

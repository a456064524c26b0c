//! Structured logs through `tracing`: human-readable or JSON lines on
//! stderr. `RUST_LOG`, when set, overrides the configured level. With
//! `[telemetry]` on, the spans of the `telemetry` module also go to the
//! OTLP exporter (a layer of their own, apart from the log filter).

use tracing_subscriber::layer::SubscriberExt;
use tracing_subscriber::util::SubscriberInitExt;
use tracing_subscriber::{EnvFilter, Layer, Registry};

use crate::config::{LogConfig, LogFormat, TelemetryConfig};
use crate::telemetry::Telemetry;

/// Installs the global subscriber (once; later calls do nothing), with the
/// OTLP export when `telemetry` asks for it. Call it inside the Tokio
/// runtime: the exporter runs on it. A failure to set the export up is
/// reported and the gateway runs without it.
pub(crate) fn init(config: &LogConfig, telemetry: &TelemetryConfig) -> Option<Telemetry> {
    let filter = std::env::var("RUST_LOG")
        .ok()
        .and_then(|v| EnvFilter::try_new(v).ok())
        .or_else(|| EnvFilter::try_new(&config.level).ok())
        .unwrap_or_else(|| EnvFilter::new("info"));
    let fmt = tracing_subscriber::fmt::layer().with_writer(std::io::stderr);
    let fmt: Box<dyn Layer<Registry> + Send + Sync> = match config.format {
        LogFormat::Human => fmt.with_filter(filter).boxed(),
        LogFormat::Json => fmt
            .json()
            .with_current_span(true)
            .with_filter(filter)
            .boxed(),
    };
    let mut layers = vec![fmt];
    let mut failed = None;
    let running = match &telemetry.export {
        Some(export) => match Telemetry::start::<Registry>(export) {
            Ok((running, layer)) => {
                layers.push(layer);
                Some((running, export))
            }
            Err(e) => {
                failed = Some(e);
                None
            }
        },
        None => None,
    };
    let _ = tracing_subscriber::registry().with(layers).try_init();
    if let Some(e) = failed {
        tracing::error!(error = %e, "telemetry off");
    }
    running.map(|(running, export)| {
        tracing::info!(
            endpoint = %export.traces_url(),
            protocol = export.protocol.as_str(),
            service = %export.service_name,
            sample_ratio = export.sample_ratio,
            "exporting spans over OTLP"
        );
        running
    })
}

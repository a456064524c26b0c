//! [`Telemetry`]: the tracer provider exporting over OTLP, the `tracing`
//! layer that feeds it, and the switch the request path reads.

use std::sync::atomic::{AtomicBool, Ordering};

use opentelemetry::KeyValue;
use opentelemetry::trace::TracerProvider as _;
use opentelemetry_otlp::WithExportConfig;
use opentelemetry_sdk::Resource;
use opentelemetry_sdk::trace::span_processor_with_async_runtime::BatchSpanProcessor;
use opentelemetry_sdk::trace::{Sampler, SdkTracerProvider};
use tracing_subscriber::Layer;
use tracing_subscriber::registry::LookupSpan;

use crate::config::{OtlpExport, OtlpProtocol};

/// The `tracing` target of the telemetry spans: the only ones exported.
pub(crate) const TARGET: &str = "mcpod_server::telemetry";

/// Whether spans are exported: set once when [`Telemetry::start`] succeeds.
static ENABLED: AtomicBool = AtomicBool::new(false);

/// Whether spans are exported (one relaxed load: the request path asks
/// before building any span of this module).
pub(crate) fn enabled() -> bool {
    ENABLED.load(Ordering::Relaxed)
}

/// The running export; [`Telemetry::shutdown`] flushes what is queued.
#[derive(Debug)]
pub(crate) struct Telemetry {
    provider: SdkTracerProvider,
}

impl Telemetry {
    /// Builds the exporter for `export` and the `tracing` layer that turns
    /// this module's spans into OpenTelemetry spans. Needs a Tokio runtime
    /// (the batch processor and the exporters run on it).
    pub(crate) fn start<S>(
        export: &OtlpExport,
    ) -> Result<(Telemetry, Box<dyn Layer<S> + Send + Sync>), String>
    where
        S: tracing::Subscriber + for<'a> LookupSpan<'a> + Send + Sync,
    {
        let url = export.traces_url();
        let exporter = match export.protocol {
            OtlpProtocol::Grpc => opentelemetry_otlp::SpanExporter::builder()
                .with_tonic()
                .with_endpoint(url.clone())
                .build(),
            OtlpProtocol::HttpProtobuf => opentelemetry_otlp::SpanExporter::builder()
                .with_http()
                .with_protocol(opentelemetry_otlp::Protocol::HttpBinary)
                .with_endpoint(url.clone())
                .build(),
        }
        .map_err(|e| format!("telemetry: cannot export to {url}: {e}"))?;
        let processor =
            BatchSpanProcessor::builder(exporter, opentelemetry_sdk::runtime::Tokio).build();
        let resource = Resource::builder()
            .with_service_name(export.service_name.clone())
            .with_attribute(KeyValue::new("service.version", env!("CARGO_PKG_VERSION")))
            .build();
        let provider = SdkTracerProvider::builder()
            .with_span_processor(processor)
            .with_sampler(Sampler::ParentBased(Box::new(Sampler::TraceIdRatioBased(
                export.sample_ratio,
            ))))
            .with_resource(resource)
            .build();
        let tracer = provider.tracer("mcpod");
        let layer = tracing_opentelemetry::layer()
            .with_tracer(tracer)
            .with_location(false)
            .with_threads(false)
            .with_tracked_inactivity(false)
            .with_filter(tracing_subscriber::filter::filter_fn(|meta| {
                meta.is_span() && meta.target() == TARGET
            }));
        ENABLED.store(true, Ordering::Relaxed);
        Ok((Telemetry { provider }, Box::new(layer)))
    }

    /// Exports what is still queued and stops. Call it off the runtime's
    /// workers (it blocks until the batch processor, running on the
    /// runtime, has flushed).
    pub(crate) fn shutdown(self) {
        ENABLED.store(false, Ordering::Relaxed);
        if let Err(e) = self.provider.shutdown() {
            tracing::warn!(error = %e, "telemetry: flushing spans at shutdown failed");
        }
    }
}

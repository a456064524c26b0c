//! `[telemetry]`: OpenTelemetry trace export over OTLP, and the standard
//! `OTEL_*` environment variables that set (and alone turn on) it.

use serde::Deserialize;

use super::error::{ConfigError, invalid};

/// The default service name of exported spans (`service.name`).
pub const DEFAULT_SERVICE_NAME: &str = "mcpod";

/// `[telemetry]` as written.
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawTelemetry {
    /// The OTLP collector's endpoint (`OTEL_EXPORTER_OTLP_ENDPOINT`); set,
    /// it turns export on.
    pub otlp_endpoint: Option<String>,
    /// `"grpc"` or `"http/protobuf"` (`OTEL_EXPORTER_OTLP_PROTOCOL`).
    pub protocol: Option<String>,
    /// `service.name` of the spans (`OTEL_SERVICE_NAME`).
    pub service_name: Option<String>,
    /// The share of new traces recorded, 0.0 to 1.0 (a trace the client
    /// continues keeps its caller's decision).
    pub sample_ratio: Option<f64>,
}

/// The wire protocol of OTLP export.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum OtlpProtocol {
    /// OTLP/gRPC (port 4317 by convention).
    Grpc,
    /// OTLP/HTTP with protobuf bodies (port 4318 by convention); spans go
    /// to `{endpoint}/v1/traces`.
    HttpProtobuf,
}

impl OtlpProtocol {
    /// The name the config and `OTEL_EXPORTER_OTLP_PROTOCOL` use.
    pub fn as_str(self) -> &'static str {
        match self {
            OtlpProtocol::Grpc => "grpc",
            OtlpProtocol::HttpProtobuf => "http/protobuf",
        }
    }
}

/// Where and how spans are exported, when they are.
#[derive(Debug, Clone, PartialEq)]
pub struct OtlpExport {
    /// The collector's endpoint, e.g. `http://127.0.0.1:4317`.
    pub endpoint: String,
    /// The protocol.
    pub protocol: OtlpProtocol,
    /// `service.name`.
    pub service_name: String,
    /// The share of new traces recorded.
    pub sample_ratio: f64,
}

/// `[telemetry]`, validated: `None` when export is off (the default).
#[derive(Debug, Clone, Default, PartialEq)]
pub struct TelemetryConfig {
    /// The export, if on.
    pub export: Option<OtlpExport>,
}

impl RawTelemetry {
    /// Applies the standard OpenTelemetry variables over the file's values:
    /// `OTEL_EXPORTER_OTLP_ENDPOINT`, `OTEL_EXPORTER_OTLP_PROTOCOL`,
    /// `OTEL_SERVICE_NAME`, and `OTEL_SDK_DISABLED=true`, which turns export
    /// off whatever else says.
    pub(crate) fn apply_env(&mut self, var: &impl Fn(&str) -> Option<String>) {
        let set = |name: &str| var(name).filter(|v| !v.trim().is_empty());
        if let Some(v) = set("OTEL_EXPORTER_OTLP_ENDPOINT") {
            self.otlp_endpoint = Some(v);
        }
        if let Some(v) = set("OTEL_EXPORTER_OTLP_PROTOCOL") {
            self.protocol = Some(v);
        }
        if let Some(v) = set("OTEL_SERVICE_NAME") {
            self.service_name = Some(v);
        }
        if set("OTEL_SDK_DISABLED").is_some_and(|v| v.trim().eq_ignore_ascii_case("true")) {
            self.otlp_endpoint = None;
        }
    }

    /// Checks the section.
    pub(crate) fn validate(self) -> Result<TelemetryConfig, ConfigError> {
        let protocol = match self.protocol.as_deref().map(str::trim) {
            None | Some("http/protobuf") => OtlpProtocol::HttpProtobuf,
            Some("grpc") => OtlpProtocol::Grpc,
            Some(other) => {
                return Err(invalid(
                    "telemetry.protocol",
                    format!("`{other}`: expected \"grpc\" or \"http/protobuf\""),
                ));
            }
        };
        let sample_ratio = self.sample_ratio.unwrap_or(1.0);
        if !(0.0..=1.0).contains(&sample_ratio) {
            return Err(invalid(
                "telemetry.sample_ratio",
                format!("{sample_ratio} is not between 0.0 and 1.0"),
            ));
        }
        let service_name = self
            .service_name
            .unwrap_or_else(|| DEFAULT_SERVICE_NAME.to_owned());
        if service_name.trim().is_empty() {
            return Err(invalid("telemetry.service_name", "must not be empty"));
        }
        let Some(endpoint) = self.otlp_endpoint else {
            return Ok(TelemetryConfig { export: None });
        };
        let endpoint = endpoint.trim().to_owned();
        let uri: http::Uri = endpoint.parse().map_err(|e| {
            invalid(
                "telemetry.otlp_endpoint",
                format!("`{endpoint}` is not a URL: {e}"),
            )
        })?;
        if !matches!(uri.scheme_str(), Some("http" | "https")) || uri.host().is_none() {
            return Err(invalid(
                "telemetry.otlp_endpoint",
                format!("`{endpoint}` is not an http:// or https:// URL with a host"),
            ));
        }
        Ok(TelemetryConfig {
            export: Some(OtlpExport {
                endpoint,
                protocol,
                service_name,
                sample_ratio,
            }),
        })
    }
}

impl OtlpExport {
    /// Where spans are sent: for OTLP/HTTP the endpoint is a base URL (as
    /// `OTEL_EXPORTER_OTLP_ENDPOINT` is) and spans go to its `/v1/traces`;
    /// OTLP/gRPC uses it as it is.
    pub fn traces_url(&self) -> String {
        match self.protocol {
            OtlpProtocol::Grpc => self.endpoint.clone(),
            OtlpProtocol::HttpProtobuf => {
                let base = self.endpoint.trim_end_matches('/');
                if base.ends_with("/v1/traces") {
                    base.to_owned()
                } else {
                    format!("{base}/v1/traces")
                }
            }
        }
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;

    fn env<'a>(vars: &'a [(&'a str, &'a str)]) -> impl Fn(&str) -> Option<String> + 'a {
        move |k| {
            vars.iter()
                .find(|(n, _)| *n == k)
                .map(|(_, v)| (*v).to_owned())
        }
    }

    #[test]
    fn off_by_default_and_on_by_the_variables_alone() {
        assert_eq!(RawTelemetry::default().validate().unwrap().export, None);
        let mut raw = RawTelemetry::default();
        raw.apply_env(&env(&[
            ("OTEL_EXPORTER_OTLP_ENDPOINT", "http://127.0.0.1:4318/"),
            ("OTEL_SERVICE_NAME", "edge"),
        ]));
        let export = raw.validate().unwrap().export.unwrap();
        assert_eq!(export.traces_url(), "http://127.0.0.1:4318/v1/traces");
        assert_eq!(export.protocol, OtlpProtocol::HttpProtobuf);
        assert_eq!(export.service_name, "edge");
        assert_eq!(export.sample_ratio, 1.0);
    }

    #[test]
    fn the_variables_override_the_file_and_sdk_disabled_turns_it_off() {
        let mut raw = RawTelemetry {
            otlp_endpoint: Some("http://collector:4317".into()),
            protocol: Some("grpc".into()),
            ..RawTelemetry::default()
        };
        let mut changed = raw.clone();
        changed.apply_env(&env(&[("OTEL_EXPORTER_OTLP_PROTOCOL", "http/protobuf")]));
        let export = changed.validate().unwrap().export.unwrap();
        assert_eq!(export.protocol, OtlpProtocol::HttpProtobuf);
        assert_eq!(export.traces_url(), "http://collector:4317/v1/traces");
        raw.apply_env(&env(&[("OTEL_SDK_DISABLED", "true")]));
        assert_eq!(raw.validate().unwrap().export, None);
    }

    #[test]
    fn bad_values_name_the_key() {
        let bad = |raw: RawTelemetry| raw.validate().unwrap_err().to_string();
        let e = bad(RawTelemetry {
            protocol: Some("http/json".into()),
            ..RawTelemetry::default()
        });
        assert!(e.starts_with("telemetry.protocol:"), "{e}");
        let e = bad(RawTelemetry {
            sample_ratio: Some(1.5),
            ..RawTelemetry::default()
        });
        assert!(e.starts_with("telemetry.sample_ratio:"), "{e}");
        let e = bad(RawTelemetry {
            otlp_endpoint: Some("localhost:4317".into()),
            ..RawTelemetry::default()
        });
        assert!(e.starts_with("telemetry.otlp_endpoint:"), "{e}");
    }
}

//! Where and how spans are exported: `config.tracing` with the
//! `OTEL_EXPORTER_OTLP_*` variables filling in what it leaves unset (the
//! OpenTelemetry rule: code or file config wins over the environment).

use std::time::Duration;

use http::{HeaderName, HeaderValue, Uri};

use crate::config::{OtlpProtocol, TracingConfig};

/// Default OTLP/HTTP traces path.
pub const DEFAULT_PATH: &str = "/v1/traces";
/// The OTLP/gRPC method.
pub const GRPC_PATH: &str = "/opentelemetry.proto.collector.trace.v1.TraceService/Export";

/// A setting from the environment that cannot be honoured.
#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum EnvError {
    #[error("{var}={value:?}: expected `grpc` or `http/protobuf` (OTLP/JSON is not supported)")]
    Protocol { var: &'static str, value: String },
    #[error("{var}: invalid OTLP endpoint URL (expected e.g. `http://collector:4318`)")]
    Endpoint { var: &'static str },
    #[error("{var}: expected `name=value` pairs separated by commas")]
    Headers { var: &'static str },
    #[error("{var}={value:?}: expected a timeout in milliseconds")]
    Timeout { var: &'static str, value: String },
    #[error("the OTLP endpoint {0} is not a valid URL")]
    Url(String),
}

/// Everything the exporter needs; compared on reload to keep a running
/// exporter when nothing changed.
#[derive(Debug, Clone, PartialEq)]
pub struct ExportSettings {
    pub protocol: OtlpProtocol,
    /// The full URL requests go to.
    pub url: Uri,
    /// Marked sensitive: `Debug` never shows them.
    pub headers: Vec<(HeaderName, HeaderValue)>,
    pub timeout: Duration,
    /// `service.name` and the other resource attributes.
    pub resource: Vec<(String, String)>,
}

/// Resolve `cfg` against the environment `env`.
pub fn resolve(
    cfg: &TracingConfig,
    env: &dyn Fn(&str) -> Option<String>,
) -> Result<ExportSettings, EnvError> {
    let get = |names: [&'static str; 2]| {
        names
            .into_iter()
            .find_map(|n| env(n).filter(|v| !v.trim().is_empty()).map(|v| (n, v)))
    };
    let protocol = match cfg.otlp_protocol {
        Some(p) => p,
        None => match get([
            "OTEL_EXPORTER_OTLP_TRACES_PROTOCOL",
            "OTEL_EXPORTER_OTLP_PROTOCOL",
        ]) {
            None => OtlpProtocol::Grpc,
            Some((_, v)) if v.trim() == "grpc" => OtlpProtocol::Grpc,
            Some((_, v)) if v.trim() == "http/protobuf" => OtlpProtocol::Http,
            Some((var, value)) => return Err(EnvError::Protocol { var, value }),
        },
    };
    let signal_path = match protocol {
        OtlpProtocol::Grpc => GRPC_PATH,
        OtlpProtocol::Http => cfg.path.as_deref().unwrap_or(DEFAULT_PATH),
    };
    let join = |base: &str| format!("{}{}", base.trim_end_matches('/'), signal_path);
    let url = match &cfg.otlp_endpoint {
        Some(e) => join(e),
        None => match env("OTEL_EXPORTER_OTLP_TRACES_ENDPOINT").filter(|v| !v.trim().is_empty()) {
            // The signal's own variable is the full URL (for gRPC, the host).
            Some(v) if protocol == OtlpProtocol::Http => v.trim().to_string(),
            Some(v) => join(v.trim()),
            None => match env("OTEL_EXPORTER_OTLP_ENDPOINT").filter(|v| !v.trim().is_empty()) {
                Some(v) => join(v.trim()),
                None => join(match protocol {
                    OtlpProtocol::Grpc => "http://localhost:4317",
                    OtlpProtocol::Http => "http://localhost:4318",
                }),
            },
        },
    };
    let url: Uri = url
        .parse()
        .ok()
        .filter(|u: &Uri| matches!(u.scheme_str(), Some("http" | "https")) && u.host().is_some())
        .ok_or_else(|| EnvError::Url(redact_url(&url)))?;

    let mut headers: Vec<(HeaderName, HeaderValue)> = Vec::new();
    let mut put = |name: HeaderName, mut value: HeaderValue| {
        value.set_sensitive(true);
        headers.retain(|(n, _)| *n != name);
        headers.push((name, value));
    };
    for var in [
        "OTEL_EXPORTER_OTLP_HEADERS",
        "OTEL_EXPORTER_OTLP_TRACES_HEADERS",
    ] {
        if let Some(v) = env(var) {
            for (n, v) in parse_env_headers(&v).ok_or(EnvError::Headers { var })? {
                put(n, v);
            }
        }
    }
    for (n, v) in &cfg.headers {
        // Checked when the config was decoded.
        if let (Ok(n), Ok(v)) = (
            HeaderName::from_bytes(n.as_bytes()),
            HeaderValue::from_str(v.expose()),
        ) {
            put(n, v);
        }
    }

    let timeout = match get([
        "OTEL_EXPORTER_OTLP_TRACES_TIMEOUT",
        "OTEL_EXPORTER_OTLP_TIMEOUT",
    ]) {
        None => Duration::from_secs(10),
        Some((var, value)) => match value.trim().parse::<u64>() {
            Ok(ms) if ms > 0 => Duration::from_millis(ms),
            _ => return Err(EnvError::Timeout { var, value }),
        },
    };

    let mut resource: Vec<(String, String)> = env("OTEL_RESOURCE_ATTRIBUTES")
        .map(|v| {
            v.split(',')
                .filter_map(|kv| kv.split_once('='))
                .map(|(k, v)| (k.trim().to_string(), percent_decode(v.trim())))
                .filter(|(k, _)| !k.is_empty())
                .collect()
        })
        .unwrap_or_default();
    let service = env("OTEL_SERVICE_NAME")
        .filter(|s| !s.trim().is_empty())
        .or_else(|| {
            resource
                .iter()
                .find(|(k, _)| k == "service.name")
                .map(|(_, v)| v.clone())
        })
        .unwrap_or_else(|| "sluice".to_string());
    resource.retain(|(k, _)| k != "service.name");
    resource.insert(0, ("service.name".into(), service));
    resource.push((
        "service.version".into(),
        env!("CARGO_PKG_VERSION").to_string(),
    ));
    Ok(ExportSettings {
        protocol,
        url,
        headers,
        timeout,
        resource,
    })
}

/// `name=value,name2=value2`, values percent-encoded (the spec's format).
fn parse_env_headers(s: &str) -> Option<Vec<(HeaderName, HeaderValue)>> {
    let mut out = Vec::new();
    for part in s.split(',').map(str::trim).filter(|p| !p.is_empty()) {
        let (n, v) = part.split_once('=')?;
        let n = HeaderName::from_bytes(n.trim().as_bytes()).ok()?;
        let v = HeaderValue::from_str(&percent_decode(v.trim())).ok()?;
        out.push((n, v));
    }
    Some(out)
}

fn percent_decode(s: &str) -> String {
    let b = s.as_bytes();
    let mut out = Vec::with_capacity(b.len());
    let mut i = 0;
    while i < b.len() {
        if b[i] == b'%' && i + 2 < b.len() {
            if let Ok(x) = u8::from_str_radix(&s[i + 1..i + 3], 16) {
                out.push(x);
                i += 3;
                continue;
            }
        }
        out.push(b[i]);
        i += 1;
    }
    String::from_utf8_lossy(&out).into_owned()
}

/// A URL for an error message: no user info, no query.
fn redact_url(u: &str) -> String {
    let no_query = u.split('?').next().unwrap_or(u);
    match no_query.split_once("://") {
        Some((scheme, rest)) => match rest.split_once('@') {
            Some((_, host)) => format!("{scheme}://<redacted>@{host}"),
            None => no_query.to_string(),
        },
        None => "<invalid>".to_string(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::config::{Secret, TraceFields};

    fn cfg() -> TracingConfig {
        TracingConfig {
            otlp_endpoint: None,
            otlp_protocol: None,
            path: None,
            headers: Vec::new(),
            random_sampling: 1.0,
            client_sampling: 1.0,
            fields: TraceFields::default(),
            content: None,
        }
    }

    fn env<'a>(vars: &'a [(&'a str, &'a str)]) -> impl Fn(&str) -> Option<String> + 'a {
        move |n| {
            vars.iter()
                .find(|(k, _)| *k == n)
                .map(|(_, v)| v.to_string())
        }
    }

    #[test]
    fn defaults_are_grpc_on_localhost() {
        let s = resolve(&cfg(), &env(&[])).unwrap();
        assert_eq!(s.protocol, OtlpProtocol::Grpc);
        assert_eq!(
            s.url.to_string(),
            format!("http://localhost:4317{GRPC_PATH}")
        );
        assert_eq!(s.resource[0], ("service.name".into(), "sluice".into()));
    }

    #[test]
    fn environment_fills_in_and_config_wins() {
        let vars = [
            ("OTEL_EXPORTER_OTLP_PROTOCOL", "http/protobuf"),
            ("OTEL_EXPORTER_OTLP_ENDPOINT", "http://c:4318/"),
            (
                "OTEL_EXPORTER_OTLP_HEADERS",
                "x-a=1,authorization=Bearer%20env",
            ),
            ("OTEL_EXPORTER_OTLP_TIMEOUT", "2500"),
            ("OTEL_SERVICE_NAME", "gw"),
        ];
        let s = resolve(&cfg(), &env(&vars)).unwrap();
        assert_eq!(s.url.to_string(), "http://c:4318/v1/traces");
        assert_eq!(s.timeout, Duration::from_millis(2500));
        assert_eq!(s.headers[1].1, "Bearer env");
        assert_eq!(s.resource[0].1, "gw");
        let mut c = cfg();
        c.otlp_protocol = Some(OtlpProtocol::Http);
        c.otlp_endpoint = Some("https://x.example/api/otel".into());
        c.headers = vec![("authorization".into(), Secret::new("Basic cfg"))];
        let s = resolve(&c, &env(&vars)).unwrap();
        assert_eq!(s.url.to_string(), "https://x.example/api/otel/v1/traces");
        assert_eq!(s.headers.len(), 2);
        assert_eq!(s.headers[1].1, "Basic cfg");
        // Sensitive: a Debug print never shows it.
        assert!(!format!("{s:?}").contains("Basic cfg"));
        let traces = [
            ("OTEL_EXPORTER_OTLP_TRACES_ENDPOINT", "http://t:4318/custom"),
            ("OTEL_EXPORTER_OTLP_PROTOCOL", "http/protobuf"),
        ];
        let s = resolve(&cfg(), &env(&traces)).unwrap();
        assert_eq!(s.url.to_string(), "http://t:4318/custom");
    }

    #[test]
    fn unusable_environment_is_an_error() {
        let e = resolve(
            &cfg(),
            &env(&[("OTEL_EXPORTER_OTLP_PROTOCOL", "http/json")]),
        );
        assert!(matches!(e, Err(EnvError::Protocol { .. })));
        let e = resolve(&cfg(), &env(&[("OTEL_EXPORTER_OTLP_TIMEOUT", "soon")]));
        assert!(matches!(e, Err(EnvError::Timeout { .. })));
    }
}

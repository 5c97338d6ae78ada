//! The top-level `config:` section: process-wide settings, in agentgateway's
//! place and spelling (`config: {tracing: ..., adminAddr: ..., ...}`).
//!
//! Decoded: `tracing`, `adminAddr` (the admin listener, as `admin.address`),
//! `statsAddr` (a listener serving only `GET /metrics`) and `readinessAddr`
//! (a listener serving only `GET /healthz/ready`). agentgateway's other keys are known by
//! name so that a config written for agentgateway gets "not supported yet"
//! instead of a misleading "unknown key"; to support one, move it from
//! [`NOT_YET`] into the match in [`decode_global`] and add its field to
//! [`GlobalConfig`].

use serde::Serialize;

use std::net::SocketAddr;

use super::decode::{as_map, get, string};
use super::error::Diags;
use super::suggest::hint;
use super::telemetry::{decode_tracing, TracingConfig};
use super::tree::{join_key, Node};

/// `config:`; every field is optional and defaults to "off".
#[derive(Clone, Debug, Default, PartialEq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct GlobalConfig {
    /// `config.tracing`: OpenTelemetry export of request traces.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub tracing: Option<TracingConfig>,
    /// `config.adminAddr`: the admin listener's address (`admin.address`).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub admin_addr: Option<SocketAddr>,
    /// `config.statsAddr`: serves `GET /metrics` only.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub stats_addr: Option<SocketAddr>,
    /// `config.readinessAddr`: serves `GET /healthz/ready` only.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub readiness_addr: Option<SocketAddr>,
    /// `config.modelCatalog`: model prices, for each request's cost
    /// (decoded by `decode.rs`, which knows the file's directory).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub model_catalog: Option<super::catalog::ModelCatalog>,
}

/// Keys Sluice decodes under `config:`.
const SUPPORTED: &[&str] = &[
    "tracing",
    "adminAddr",
    "statsAddr",
    "readinessAddr",
    "modelCatalog",
];

/// agentgateway's other `config:` keys (its `RawConfig`): refused by name.
const NOT_YET: &[&str] = &[
    "additionalTrustDomains",
    "backend",
    "caAddress",
    "caAuthToken",
    "clusterId",
    "connectionMinTerminationDeadline",
    "connectionTerminationDeadline",
    "customFunctions",
    "database",
    "dns",
    "enableIpv6",
    "gateway",
    "hbone",
    "histograms",
    "localXdsPath",
    "logging",
    "mcp",
    "metrics",
    "namespace",
    "network",
    "sensitiveHeaders",
    "serviceAccount",
    "session",
    "skipValidateTrustDomain",
    "spiffe",
    "standardAttributes",
    "storage",
    "trustDomain",
    "workerThreads",
    "xdsAddress",
    "xdsAuthToken",
];

pub(crate) fn decode_global(d: &mut Diags, node: &Node, path: &str) -> Option<GlobalConfig> {
    let m = as_map(d, node, path)?;
    let mut out = GlobalConfig::default();
    let mut ok = true;
    for (k, _) in m {
        let name = k.name.as_str();
        let kp = join_key(path, name);
        if SUPPORTED.contains(&name) {
            continue;
        }
        ok = false;
        if NOT_YET.contains(&name) {
            d.error(
                &k.loc,
                &kp,
                format!(
                    "`{path}.{name}` is not supported yet by Sluice (supported under `{path}`: {})",
                    SUPPORTED
                        .iter()
                        .map(|k| format!("`{k}`"))
                        .collect::<Vec<_>>()
                        .join(", ")
                ),
            );
        } else {
            d.error(
                &k.loc,
                &kp,
                format!("unknown key `{name}`{}", hint(name, SUPPORTED)),
            );
        }
    }
    if let Some(n) = get(m, "tracing") {
        match decode_tracing(d, n, &join_key(path, "tracing")) {
            Some(t) => out.tracing = Some(t),
            None => ok = false,
        }
    }
    for (key, slot) in [
        ("adminAddr", &mut out.admin_addr),
        ("statsAddr", &mut out.stats_addr),
        ("readinessAddr", &mut out.readiness_addr),
    ] {
        if let Some(n) = get(m, key) {
            match socket_addr(d, n, &join_key(path, key)) {
                Some(a) => *slot = Some(a),
                None => ok = false,
            }
        }
    }
    ok.then_some(out)
}

/// `ip:port`, as agentgateway writes these addresses (`127.0.0.1:15000`).
fn socket_addr(d: &mut Diags, n: &Node, path: &str) -> Option<SocketAddr> {
    let s = string(d, n, path)?;
    match s.parse() {
        Ok(a) => Some(a),
        Err(_) => {
            d.error(
                &n.loc,
                path,
                format!(
                    "invalid socket address {}: expected e.g. `127.0.0.1:15020`",
                    n.shown()
                ),
            );
            None
        }
    }
}

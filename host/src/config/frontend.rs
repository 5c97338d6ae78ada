//! agentgateway's top-level `frontendPolicies:` (listener-side settings).
//!
//! Only `http.maxBufferSize` is decoded: it is the largest request (or
//! response) body the gateway buffers, which is Sluice's per-request body
//! cap (`Limits::max_buffered_body`; the process-wide `limits.bodyBufferBudget`
//! still bounds all buffered bodies together). A body over it is refused
//! with 413 in the client's error shape. Every other key agentgateway has is
//! refused by name ("not supported yet").

use super::decode::{as_map, check_keys, get, integer};
use super::error::Diags;
use super::tree::{join_key, Node};

/// `frontendPolicies`, decoded.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct FrontendPolicies {
    /// `http.maxBufferSize` in bytes.
    pub max_buffer_size: Option<usize>,
}

const TOP_LATER: &[&str] = &[
    "tls",
    "tcp",
    "networkAuthorization",
    "networkExtAuthz",
    "proxy",
    "proxyProtocol",
    "connect",
    "accessLog",
    "logging",
    "tracing",
];
const HTTP_LATER: &[&str] = &[
    "http1MaxHeaders",
    "http1IdleTimeout",
    "http1HeaderCase",
    "http2WindowSize",
    "http2ConnectionWindowSize",
    "http2FrameSize",
    "http2MaxHeaderSize",
    "http2KeepaliveInterval",
    "http2KeepaliveTimeout",
    "maxConnectionDuration",
];

/// Smallest `maxBufferSize` accepted: below it no request body fits.
const MIN_BUFFER: i128 = 1024;

fn refuse_later(d: &mut Diags, node: &Node, path: &str, later: &[&str], known: &[&str]) -> bool {
    let Some(m) = as_map(d, node, path) else {
        return false;
    };
    let before = d.errors.len();
    for (k, _) in m {
        if later.contains(&k.name.as_str()) {
            d.error(
                &k.loc,
                &join_key(path, &k.name),
                format!("`{path}.{}` is not supported yet by Sluice", k.name),
            );
        }
    }
    let rest: Vec<_> = m
        .iter()
        .filter(|(k, _)| !later.contains(&k.name.as_str()))
        .cloned()
        .collect();
    check_keys(d, &rest, path, known);
    d.errors.len() == before
}

pub(crate) fn decode_frontend(d: &mut Diags, node: &Node, path: &str) -> Option<FrontendPolicies> {
    let mut ok = refuse_later(d, node, path, TOP_LATER, &["http"]);
    let m = as_map(d, node, path)?;
    let mut out = FrontendPolicies::default();
    if let Some(h) = get(m, "http") {
        let hp = join_key(path, "http");
        ok &= refuse_later(d, h, &hp, HTTP_LATER, &["maxBufferSize"]);
        if let Some(n) = as_map(d, h, &hp).and_then(|hm| get(hm, "maxBufferSize")) {
            let p = join_key(&hp, "maxBufferSize");
            match integer(d, n, &p) {
                Some(v) if (MIN_BUFFER..=(1 << 32)).contains(&v) => {
                    out.max_buffer_size = usize::try_from(v).ok()
                }
                Some(_) => {
                    d.error(
                        &n.loc,
                        &p,
                        format!(
                            "maxBufferSize {} must be between {MIN_BUFFER} and 4294967296 bytes",
                            n.shown()
                        ),
                    );
                    ok = false;
                }
                None => ok = false,
            }
        }
    }
    ok.then_some(out)
}

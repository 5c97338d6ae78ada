//! `policies.retry`, `backends[].policies` and their `health`: what lets a
//! route with several backends ride out a failing one.
//!
//! Every key here either does what agentgateway documents or is refused
//! at load with "not supported yet": a key that is accepted and ignored
//! would silently change where traffic goes.

use super::decode::{as_list, as_map, check_keys, duration, get, integer, Ctx};
use super::policies::{decode_backend_auth, decode_backend_tls};
use super::tree::{join_index, join_key, Node};
use super::types::{BackendPolicies, Eviction, Health, Retry};

/// Keys of agentgateway's `LocalBackendPolicies` Sluice does not implement.
const LATER_BACKEND_POLICIES: &[&str] = &[
    "requestHeaderModifier",
    "responseHeaderModifier",
    "transformations",
    "http",
    "tcp",
    "backendTunnel",
    "requestRedirect",
    "extAuthz",
    "authorization",
    "mcpAuthorization",
    "mcpGuardrails",
    "ai",
    "a2a",
    "inferenceRouting",
];

/// `backends[].policies` or a group provider's `policies`.
pub(crate) fn decode_backend_policies(
    ctx: &mut Ctx,
    node: &Node,
    path: &str,
) -> Option<BackendPolicies> {
    let m = as_map(ctx.d, node, path)?;
    let mut out = BackendPolicies::default();
    // Unknown keys are reported (with a suggestion) by `check_keys` below.
    let mut ok = true;
    for (k, v) in m {
        let p = join_key(path, &k.name);
        match k.name.as_str() {
            "backendAuth" => {
                out.backend_auth = decode_backend_auth(ctx, v, &p, &mut out.pass_headers);
                ok &= out.backend_auth.is_some();
            }
            "backendTLS" => {
                out.backend_tls = decode_backend_tls(ctx, v, &p);
                ok &= out.backend_tls.is_some();
            }
            "health" => {
                out.health = decode_health(ctx, v, &p);
                ok &= out.health.is_some();
            }
            name if LATER_BACKEND_POLICIES.contains(&name) => {
                ctx.d.error(
                    &k.loc,
                    &p,
                    "this backend policy is not supported yet (supported here: backendAuth, backendTLS, health)",
                );
                ok = false;
            }
            _ => {}
        }
    }
    let mut allowed = vec!["backendAuth", "backendTLS", "health"];
    allowed.extend(LATER_BACKEND_POLICIES);
    check_keys(ctx.d, m, path, &allowed);
    ok.then_some(out)
}

/// `health: {eviction: {duration, consecutiveFailures}}`.
fn decode_health(ctx: &mut Ctx, node: &Node, path: &str) -> Option<Health> {
    let m = as_map(ctx.d, node, path)?;
    if let Some((k, _)) = m.iter().find(|(k, _)| k.name == "unhealthyExpression") {
        ctx.d.error(
            &k.loc,
            &join_key(path, "unhealthyExpression"),
            "`unhealthyExpression` (CEL) is not supported yet: without it a connection failure, a timeout or a 5xx counts as a failure",
        );
        return None;
    }
    check_keys(ctx.d, m, path, &["eviction"]);
    let mut out = Health::default();
    if let Some(n) = get(m, "eviction") {
        out.eviction = Some(decode_eviction(ctx, n, &join_key(path, "eviction"))?);
    }
    Some(out)
}

fn decode_eviction(ctx: &mut Ctx, node: &Node, path: &str) -> Option<Eviction> {
    let m = as_map(ctx.d, node, path)?;
    for later in ["restoreHealth", "healthThreshold"] {
        if let Some((k, _)) = m.iter().find(|(k, _)| k.name == later) {
            ctx.d.error(
                &k.loc,
                &join_key(path, later),
                format!("`{later}` is not supported yet: a backend is evicted after `consecutiveFailures` failures in a row and returns whole after `duration`"),
            );
            return None;
        }
    }
    check_keys(ctx.d, m, path, &["duration", "consecutiveFailures"]);
    let mut out = Eviction {
        duration: None,
        consecutive_failures: 1,
    };
    if let Some(n) = get(m, "duration") {
        out.duration = Some(duration(ctx.d, n, &join_key(path, "duration"))?);
    }
    if let Some(n) = get(m, "consecutiveFailures") {
        let p = join_key(path, "consecutiveFailures");
        match integer(ctx.d, n, &p)? {
            v @ 1..=1000 => out.consecutive_failures = v as u32,
            _ => {
                ctx.d
                    .error(&n.loc, &p, "expected a whole number from 1 to 1000");
                return None;
            }
        }
    }
    Some(out)
}

/// `retry: {attempts, backoff, codes}`.
pub(crate) fn decode_retry(ctx: &mut Ctx, node: &Node, path: &str) -> Option<Retry> {
    let m = as_map(ctx.d, node, path)?;
    for later in ["precondition", "condition"] {
        if let Some((k, _)) = m.iter().find(|(k, _)| k.name == later) {
            ctx.d.error(
                &k.loc,
                &join_key(path, later),
                format!("retry `{later}` (CEL) is not supported yet: retries follow `codes` and connection failures"),
            );
            return None;
        }
    }
    check_keys(ctx.d, m, path, &["attempts", "backoff", "codes"]);
    let mut out = Retry {
        attempts: 1,
        backoff: None,
        codes: Vec::new(),
    };
    let mut ok = true;
    if let Some(n) = get(m, "attempts") {
        let p = join_key(path, "attempts");
        match integer(ctx.d, n, &p) {
            Some(v @ 1..=255) => out.attempts = v as u8,
            Some(_) => {
                ctx.d.error(
                    &n.loc,
                    &p,
                    "expected 1 to 255 (the total number of calls, the first one included)",
                );
                ok = false;
            }
            None => ok = false,
        }
    }
    if let Some(n) = get(m, "backoff") {
        out.backoff = duration(ctx.d, n, &join_key(path, "backoff"));
        ok &= out.backoff.is_some();
    }
    match get(m, "codes") {
        Some(n) => {
            let p = join_key(path, "codes");
            for (i, c) in as_list(ctx.d, n, &p).unwrap_or_default().iter().enumerate() {
                let cp = join_index(&p, i);
                match integer(ctx.d, c, &cp) {
                    Some(v @ 100..=599) => out.codes.push(v as u16),
                    Some(_) => {
                        ctx.d
                            .error(&c.loc, &cp, "expected an HTTP status (100 to 599)");
                        ok = false;
                    }
                    None => ok = false,
                }
            }
        }
        None => {
            ctx.d.error(
                &node.loc,
                path,
                "missing required key `codes` (e.g. `codes: [429, 500, 502, 503, 504]`)",
            );
            ok = false;
        }
    }
    ok.then_some(out)
}

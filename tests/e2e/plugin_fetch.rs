//! Plugin `fetch`: what the config names is reached whatever it resolves to;
//! what it does not name stays out of reach.
//!
//! The config is trusted: jwt-auth's issuer and key URLs and a declared
//! plugin's `fetchHosts` are reached even when their name resolves to
//! loopback (an in-cluster or corporate IdP), by the same rule as an IP
//! literal. A host nobody granted, a redirect and a URL built from request
//! data stay refused, and every refusal or failure says why in the log and
//! in `GET /plugins`.

use crate::common::*;
use crate::hardening::{claude, raw, route, MSG};
use crate::hot_swap::{plugins, row};
use crate::plugin_jwt_auth::{claims, public_jwk, sign, Idp, TEST_RSA_KEY_1};
use serde_json::json;
use sluice::policy::testing;
use sluice_testkit::{ClosedPort, FakeUpstream, Gateway, Script};
use std::time::Duration;

fn jwt_auth_wasm() -> std::path::PathBuf {
    testing::workspace_dir()
        .join("target/plugins/wasm32-wasip2/release/sluice_plugin_jwt_auth.wasm")
}

/// A route to `up` whose policies are `policies` (indented under `policies:`).
fn route_with(up: &FakeUpstream, policies: &str) -> String {
    route("claude", "/claude", up, false, 0)
        .replace("  policies:\n", &format!("  policies:\n{policies}"))
}

fn jwt_policy(issuer: &str) -> String {
    format!("    auth:\n      jwt:\n        issuer: {issuer}\n        audiences: [agentgateway]\n")
}

/// One request with a valid token for `issuer`; the status.
async fn status_for(gw: &Gateway, issuer: &str) -> u16 {
    let token = format!("Bearer {}", sign(TEST_RSA_KEY_1, "k1", &claims(issuer)));
    let mut h = claude("localhost");
    h.push(("authorization", &token));
    raw(gw.addr(4060), "POST", "/claude/v1/messages", &h, MSG)
        .await
        .status
}

/// Start with the declared jwt-auth granted `grants`, issuer `issuer`;
/// answer one request with a valid token.
async fn declared_status(up: &FakeUpstream, issuer: &str, grants: &str) -> u16 {
    let dir = tempfile::tempdir().unwrap();
    let wasm = dir.path().join("jwt-auth.wasm");
    std::fs::copy(jwt_auth_wasm(), &wasm).expect("bundled jwt-auth built");
    let yaml = format!(
        "plugins:\n- name: jwt-auth\n  path: {wasm}\n{grants}binds:\n- port: 4060\nroutes:\n{}",
        route_with(up, &jwt_policy(issuer)),
        wasm = wasm.display(),
    );
    let cfg = write(dir.path(), "sluice.yaml", &yaml);
    let gw = gateway(&[&cfg], &[4060], &[], &[]).await;
    status_for(&gw, issuer).await
}

/// Plugin `name`'s `lastError` in `GET /plugins` ("" when none).
async fn last_error(gw: &Gateway, name: &str) -> String {
    let report = plugins(gw).await;
    row(&report, name)["lastError"]
        .as_str()
        .unwrap_or_default()
        .to_owned()
}

fn idp_hits(idp: &Idp) -> usize {
    idp.hits("/.well-known/openid-configuration") + idp.hits("/jwks.json")
}

/// An IdP whose issuer is `http://localhost:PORT`.
async fn localhost_idp() -> Idp {
    let keys = json!({"keys": [public_jwk(TEST_RSA_KEY_1, "k1")]});
    let idp = Idp::plain_named(keys, "localhost").await;
    assert!(idp.issuer.starts_with("http://localhost:"));
    idp
}

/// The gateway with the bundled jwt-auth on a route to `up`, for `issuer`.
async fn bundled_jwt(up: &FakeUpstream, issuer: &str) -> (Gateway, tempfile::TempDir) {
    let dir = tempfile::tempdir().unwrap();
    let yaml = format!(
        "binds:\n- port: 4060\nroutes:\n{}",
        route_with(up, &jwt_policy(issuer))
    );
    let cfg = write(dir.path(), "sluice.yaml", &yaml);
    (gateway(&[&cfg], &[4060], &[], &[]).await, dir)
}

#[tokio::test]
async fn the_bundled_jwt_policy_reaches_an_issuer_named_localhost() {
    let idp = localhost_idp().await;
    let up = FakeUpstream::plain().await;
    let (gw, _dir) = bundled_jwt(&up, &idp.issuer).await;
    assert_eq!(status_for(&gw, &idp.issuer).await, 200, "{}", gw.logs());
    assert_eq!(idp.hits("/jwks.json"), 1);
    assert_eq!(up.requests().len(), 1);
}

#[tokio::test]
async fn a_declared_plugin_fetches_only_granted_hosts_by_name_or_address() {
    let idp = localhost_idp().await;
    let up = FakeUpstream::plain().await;
    let port = idp.addr.port();

    // No grant: the IdP is never contacted.
    assert_ne!(declared_status(&up, &idp.issuer, "").await, 200);
    assert_eq!(idp_hits(&idp), 0);

    // A grant for another port of the same name: still nothing.
    let grant = format!("  fetchHosts: ['localhost:{}']\n", port.wrapping_add(1));
    assert_ne!(declared_status(&up, &idp.issuer, &grant).await, 200);
    assert_eq!(idp_hits(&idp), 0);

    // The name the operator granted, though it resolves to loopback.
    let grant = format!("  fetchHosts: ['localhost:{port}']\n");
    assert_eq!(declared_status(&up, &idp.issuer, &grant).await, 200);
    assert_eq!(idp.hits("/jwks.json"), 1);

    // The address itself, granted as such: the same rule.
    let by_address = Idp::plain(json!({"keys": [public_jwk(TEST_RSA_KEY_1, "k1")]})).await;
    let grant = format!("  fetchHosts: ['127.0.0.1:{}']\n", by_address.addr.port());
    assert_eq!(declared_status(&up, &by_address.issuer, &grant).await, 200);
    assert_eq!(by_address.hits("/jwks.json"), 1);
}

/// The fetch-probe fixture fetches the URL in `x-fetch` and reports the
/// outcome upstream in `x-fetched`.
struct Probe {
    gw: Gateway,
    up: FakeUpstream,
    _dir: tempfile::TempDir,
}

impl Probe {
    async fn start(operator_grants: &str, plugin_asks: &str) -> Probe {
        let up = FakeUpstream::plain().await;
        let dir = tempfile::tempdir().unwrap();
        let wasm = testing::fixture("fetch-probe").display().to_string();
        let yaml = format!(
            "plugins:\n- name: probe\n  path: {wasm}\n  fetchHosts: {operator_grants}\nbinds:\n- port: 4060\nroutes:\n{}",
            route_with(&up, &format!("    probe: {{hosts: {plugin_asks}}}\n")),
        );
        let cfg = write(dir.path(), "sluice.yaml", &yaml);
        let gw = gateway(&[&cfg], &[4060], &[], &[]).await;
        Probe { gw, up, _dir: dir }
    }

    /// Ask the plugin to fetch `url`; what it reported.
    async fn fetch(&self, url: &str) -> String {
        let mut h = claude("localhost");
        h.push(("x-fetch", url));
        let r = raw(self.gw.addr(4060), "POST", "/claude/v1/messages", &h, MSG).await;
        assert_eq!(r.status, 200, "{}", self.gw.logs());
        let last = self
            .up
            .last_request()
            .expect("the request reached upstream");
        assert_eq!(last.header("x-fetch"), None);
        last.header("x-fetched").unwrap_or_default().to_owned()
    }
}

#[tokio::test]
async fn what_the_operator_did_not_name_stays_out_of_reach() {
    // `secret` stands for an internal service; `named` is the granted host,
    // and redirects to `secret`.
    let secret = FakeUpstream::plain().await;
    let named = FakeUpstream::plain().await;
    named.set_script(
        Script::text("")
            .status(302, "")
            .header("location", format!("http://{}/admin", secret.addr())),
    );
    let named_port = named.addr().port();
    let granted = format!("['localhost:{named_port}']");
    let p = Probe::start(
        &granted,
        &format!("['localhost:{named_port}', '{}']", secret.addr()),
    )
    .await;

    // The granted name, reached though it resolves to loopback; its
    // redirect is handed to the plugin, never followed.
    assert_eq!(
        p.fetch(&format!("http://localhost:{named_port}/jwks"))
            .await,
        "302"
    );
    assert_eq!(named.requests().len(), 1);

    // What the plugin asked for but the operator did not grant, a URL built
    // from request data, and tricks that dress one host as another.
    for url in [
        format!("http://{}/admin", secret.addr()),
        format!("http://localhost:{named_port}@{}/admin", secret.addr()),
        format!("http://127.0.0.1:{named_port}/jwks"),
        format!("http://localhost.:{named_port}/jwks"),
        "http://169.254.169.254/latest/meta-data".to_string(),
        format!("file:///etc/passwd#localhost:{named_port}"),
    ] {
        let outcome = p.fetch(&url).await;
        assert!(
            outcome.starts_with("error: fetch refused"),
            "{url}: {outcome}"
        );
    }
    assert_eq!(
        secret.requests().len(),
        0,
        "the internal service was reached"
    );
    assert_eq!(named.requests().len(), 1);

    // The refusal is logged with its rule, and shown in GET /plugins.
    p.gw.wait_for_log("plugin fetch refused", Duration::from_secs(5))
        .await
        .unwrap();
    assert!(
        p.gw.logs()
            .contains(&format!("host `{}` is not granted", secret.addr().ip())),
        "{}",
        p.gw.logs()
    );
    let last = last_error(&p.gw, "probe").await;
    assert!(last.starts_with("fetch refused: "), "{last}");
}

#[tokio::test]
async fn a_failed_fetch_logs_its_cause_and_shows_it_in_the_plugins_report() {
    // A port nothing listens on, reached by a name.
    let closed = ClosedPort::new();
    let port = closed.addr().port();
    let grant = format!("['localhost:{port}']");
    let p = Probe::start(&grant, &grant).await;
    let outcome = p.fetch(&format!("http://localhost:{port}/jwks")).await;
    assert!(outcome.starts_with("error:"), "{outcome}");
    assert!(
        outcome.to_ascii_lowercase().contains("connection refused"),
        "the cause is lost: {outcome}"
    );
    assert!(outcome.contains(&format!("127.0.0.1:{port}")), "{outcome}");
    p.gw.wait_for_log("plugin fetch failed", Duration::from_secs(5))
        .await
        .unwrap();
    let logs = p.gw.logs();
    let line = logs
        .lines()
        .find(|l| l.contains("plugin fetch failed"))
        .unwrap();
    assert!(line.contains("WARN"), "{line}");
    assert!(
        line.to_ascii_lowercase().contains("connection refused"),
        "{line}"
    );
    let last = last_error(&p.gw, "probe").await;
    assert!(
        last.to_ascii_lowercase().contains("connection refused"),
        "{last}"
    );
    assert!(row(&plugins(&p.gw).await, "probe")["lastErrorAt"].is_string());
}

#[tokio::test]
async fn an_unreachable_issuer_is_a_503_with_its_cause_in_the_log() {
    let closed = ClosedPort::new();
    let port = closed.addr().port();
    let issuer = format!("http://localhost:{port}");
    let up = FakeUpstream::plain().await;
    let (gw, _dir) = bundled_jwt(&up, &issuer).await;
    let token = format!("Bearer {}", sign(TEST_RSA_KEY_1, "k1", &claims(&issuer)));
    let mut h = claude("localhost");
    h.push(("authorization", &token));
    let r = raw(gw.addr(4060), "POST", "/claude/v1/messages", &h, MSG).await;
    assert_eq!(r.status, 503);
    assert!(
        !r.body.to_ascii_lowercase().contains("connection refused"),
        "the client learns no details: {}",
        r.body
    );
    gw.wait_for_log("plugin fetch failed", Duration::from_secs(5))
        .await
        .unwrap();
    let last = last_error(&gw, "jwt-auth").await;
    assert!(
        last.to_ascii_lowercase().contains("connection refused"),
        "{last}"
    );
    assert_eq!(up.requests().len(), 0);
}

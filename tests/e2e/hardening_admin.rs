//! The admin API as an attacker sees it: cross-site requests, filesystem
//! probes, an open network address, literal secrets in `GET /config`.

use crate::common::*;
use crate::hardening::raw;
use sluice::policy::testing;
use sluice_testkit::{FakeUpstream, Gateway};
use std::path::Path;

const ADMIN_TOKEN: &str = "admin-token-0123456789abcdef";

/// A gateway whose route runs declared plugin `gate` (the deny fixture);
/// `spare`, declared but unused, carries `plugin_config` (YAML, indent 4).
async fn start(dir: &Path, admin: &str, plugin_config: &str) -> (Gateway, FakeUpstream) {
    let up = FakeUpstream::plain().await;
    let gate = dir.join("gate.wasm");
    std::fs::copy(testing::fixture("deny"), &gate).unwrap();
    let yaml = format!(
        "{admin}plugins:\n- name: gate\n  path: {gate}\n- name: spare\n  path: {gate}\n  config:\n{plugin_config}binds:\n- port: 4060\nroutes:\n- name: claude\n  policies:\n    gate: {{message: blocked}}\n  backends:\n  - ai:\n      name: claude\n      provider:\n        anthropic: {{}}\n      hostOverride: http://{addr}\n",
        gate = gate.display(),
        addr = up.addr()
    );
    let cfg = write(dir, "sluice.yaml", &yaml);
    let gw = gateway(&[&cfg], &[4060], &[], &[("ADMIN_TOKEN", ADMIN_TOKEN)]).await;
    (gw, up)
}

fn admin_addr(gw: &Gateway) -> std::net::SocketAddr {
    gw.admin_addr().expect("admin announced")
}

#[tokio::test]
async fn cross_site_and_filesystem_probing_reloads_are_refused() {
    let dir = tempfile::tempdir().unwrap();
    let (gw, _up) = start(dir.path(), "", "    message: hi\n").await;
    let a = admin_addr(&gw);
    let allow = testing::fixture("header-rewrite").display().to_string();
    let body = format!(r#"{{"path": "{allow}"}}"#);
    let host = [("host", "127.0.0.1")];

    // The issue's attack: a simple (preflight-free) cross-site POST.
    let r = raw(
        a,
        "POST",
        "/plugins/gate/reload",
        &[
            host[0],
            ("content-type", "text/plain"),
            ("origin", "http://evil.example"),
        ],
        &body,
    )
    .await;
    assert_eq!(r.status, 403, "{r:?}");
    // Same without Origin, but not JSON.
    let r = raw(
        a,
        "POST",
        "/plugins/gate/reload",
        &[host[0], ("content-type", "text/plain")],
        &body,
    )
    .await;
    assert_eq!(r.status, 415, "{r:?}");
    let r = raw(a, "POST", "/config/reload", &host, "").await;
    assert_eq!(r.status, 415, "{r:?}");
    // JSON with an Origin is still a web page.
    let r = raw(
        a,
        "POST",
        "/plugins/gate/reload",
        &[
            host[0],
            ("content-type", "application/json"),
            ("origin", "null"),
        ],
        &body,
    )
    .await;
    assert_eq!(r.status, 403, "{r:?}");
    // A rebinding page reading the config.
    let r = raw(a, "GET", "/config", &[("host", "evil.example:15000")], "").await;
    assert_eq!(r.status, 421, "{r:?}");

    // A file outside the plugin's directory: refused, and the answer is the
    // same whether the file exists or not.
    let json = [host[0], ("content-type", "application/json")];
    let outside = raw(a, "POST", "/plugins/gate/reload", &json, &body).await;
    assert_eq!(outside.status, 403, "{outside:?}");
    let probe = |p: &str| format!(r#"{{"path": "{p}"}}"#);
    let exists = raw(
        a,
        "POST",
        "/plugins/gate/reload",
        &json,
        &probe("/etc/passwd"),
    )
    .await;
    let missing = raw(
        a,
        "POST",
        "/plugins/gate/reload",
        &json,
        &probe("/root/.ssh/id_nope"),
    )
    .await;
    let sneaky = format!("{}/../../../etc/passwd", dir.path().display());
    let dotdot = raw(a, "POST", "/plugins/gate/reload", &json, &probe(&sneaky)).await;
    for r in [&exists, &missing, &dotdot] {
        assert_eq!(r.status, 403, "{r:?}");
        assert_eq!(r.body, outside.body, "answers must not differ");
    }
    assert!(!exists.body.contains("passwd"), "{}", exists.body);

    // The plugin still blocks (nothing was swapped).
    let r = raw(
        gw.addr(4060),
        "POST",
        "/v1/messages",
        &crate::hardening::claude("localhost"),
        crate::hardening::MSG,
    )
    .await;
    assert_eq!(r.status, 403, "{r:?}");

    // Inside the plugin's own directory, a JSON reload from loopback works.
    let inside = dir.path().join("v2.wasm");
    std::fs::copy(&allow, &inside).unwrap();
    let r = raw(
        a,
        "POST",
        "/plugins/gate/reload",
        &json,
        &probe(&inside.display().to_string()),
    )
    .await;
    assert_ne!(r.status, 403, "{r:?}");
    assert_ne!(r.status, 415, "{r:?}");
}

#[tokio::test]
async fn literal_secrets_in_plugin_config_are_redacted_from_get_config() {
    let dir = tempfile::tempdir().unwrap();
    let (gw, _up) = start(
        dir.path(),
        "",
        "    message: hi\n    clientSecret: literal-s3cret-value\n    apiKey: literal-api-key-value\n    key: header:x-user\n",
    )
    .await;
    let r = raw(
        admin_addr(&gw),
        "GET",
        "/config",
        &[("host", "localhost:15000")],
        "",
    )
    .await;
    assert_eq!(r.status, 200, "{r:?}");
    assert!(!r.body.contains("literal-s3cret-value"), "{}", r.body);
    assert!(!r.body.contains("literal-api-key-value"), "{}", r.body);
    assert!(
        r.body.contains("header:x-user"),
        "non-secret `key` stays: {}",
        r.body
    );
    assert!(r.body.contains("\"message\": \"hi\""), "{}", r.body);
}

#[tokio::test]
async fn an_admin_token_is_required_when_configured() {
    let dir = tempfile::tempdir().unwrap();
    let (gw, _up) = start(
        dir.path(),
        "admin:\n  token: $ADMIN_TOKEN\n",
        "    message: hi\n",
    )
    .await;
    let a = admin_addr(&gw);
    let r = raw(a, "GET", "/config", &[("host", "localhost")], "").await;
    assert_eq!(r.status, 401, "{r:?}");
    let wrong = raw(
        a,
        "GET",
        "/config",
        &[("host", "localhost"), ("authorization", "Bearer nope")],
        "",
    )
    .await;
    assert_eq!(wrong.status, 401);
    let bearer = format!("Bearer {ADMIN_TOKEN}");
    let r = raw(
        a,
        "GET",
        "/config",
        &[("host", "localhost"), ("authorization", &bearer)],
        "",
    )
    .await;
    assert_eq!(r.status, 200, "{r:?}");
    assert!(
        !r.body.contains(ADMIN_TOKEN),
        "the token itself is redacted"
    );
    // Liveness probes need no token.
    assert_eq!(
        raw(a, "GET", "/healthz", &[("host", "localhost")], "")
            .await
            .status,
        200
    );
}

#[tokio::test]
async fn a_non_loopback_admin_without_a_token_does_not_start() {
    let dir = tempfile::tempdir().unwrap();
    // In the config: a config error with file, line and key.
    let cfg = write(
        dir.path(),
        "open.yaml",
        "admin:\n  address: 0.0.0.0:15000\nbinds:\n- port: 4060\nroutes:\n- backends:\n  - host: 127.0.0.1:9\n",
    );
    let out = sluice_testkit::gateway::run(Path::new(BIN), &["validate", "--config", &cfg], &[]);
    let err =
        String::from_utf8_lossy(&out.stderr).to_string() + &String::from_utf8_lossy(&out.stdout);
    assert!(!out.status.success(), "{err}");
    assert!(
        err.contains("open.yaml:2:")
            && err.contains("admin.address")
            && err.contains("admin.token"),
        "{err}"
    );

    // On the command line: refused before listening.
    let ok = write(
        dir.path(),
        "ok.yaml",
        "binds:\n- port: 4060\nroutes:\n- backends:\n  - host: 127.0.0.1:9\n",
    );
    let r = Gateway::start(
        Path::new(BIN),
        &[
            "--admin",
            "0.0.0.0:0",
            "--config",
            &ok,
            "--port-map",
            "4060=0",
        ],
        &[],
    )
    .await;
    let e = r.err().expect("must not start");
    assert!(
        e.contains("not loopback") && e.contains("admin.token"),
        "{e}"
    );
}

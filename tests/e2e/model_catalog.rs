//! `config.modelCatalog` through the real binary: each request's cost, with
//! cache reads and writes at their own rates, in the access log
//! (`cost_usd`) and `sluice_cost_usd_total`; a file source re-read on
//! `POST /config/reload`.

use std::time::Duration;

use sluice_testkit::client::TestClient;
use sluice_testkit::metrics::metric;
use sluice_testkit::{FakeUpstream, Script};

use crate::common::*;
use crate::hardening::raw;

fn config(up: &FakeUpstream) -> String {
    let addr = up.addr();
    format!(
        r#"config:
  modelCatalog:
  - file: prices.json
  - inline:
      providers:
        anthropic:
          models:
            claude-sonnet-4-5:
              rates: {{input: "3", output: "15", cacheRead: "0.3", cacheWrite: "3.75"}}
              tiers:
              - contextOver: 1000000
                rates: {{input: "6"}}
binds:
- port: 4060
routes:
- name: priced
  matches:
  - path: {{pathPrefix: /claude}}
  policies:
    urlRewrite: {{path: {{prefix: /}}}}
  backends:
  - ai: {{name: claude, provider: {{anthropic: {{}}}}, hostOverride: 'http://{addr}'}}
"#
    )
}

async fn send(gw: &sluice_testkit::Gateway, model: &str) {
    let body = format!(
        r#"{{"model":"{model}","max_tokens":8,"messages":[{{"role":"user","content":"hi"}}]}}"#
    );
    let headers = [
        ("host", "localhost"),
        ("content-type", "application/json"),
        ("anthropic-version", "2023-06-01"),
    ];
    let r = raw(
        gw.addr(4060),
        "POST",
        "/claude/v1/messages",
        &headers,
        &body,
    )
    .await;
    assert_eq!(r.status, 200, "{}", r.body);
}

async fn cost_metric(gw: &sluice_testkit::Gateway, model: &str) -> Option<f64> {
    let text = TestClient::new()
        .get(&gw.admin_url("/metrics"))
        .await
        .text();
    metric(
        &text,
        "sluice_cost_usd_total",
        &[("route", "priced"), ("model", model)],
    )
}

fn close(a: f64, b: f64) -> bool {
    (a - b).abs() < 1e-9
}

/// The `cost_usd=` of the `n`th access line (1-based).
fn logged_cost(gw: &sluice_testkit::Gateway, n: usize) -> Option<f64> {
    let logs = gw.logs();
    let line = logs
        .lines()
        .filter(|l| l.contains("sluice::access"))
        .nth(n - 1)?;
    let v = line.split("cost_usd=").nth(1)?.split_whitespace().next()?;
    v.parse().ok()
}

#[tokio::test]
async fn cost_with_cache_tokens_in_log_and_metrics() {
    let up = FakeUpstream::plain().await;
    let dir = tempfile::tempdir().unwrap();
    // The file prices haiku; the inline source prices sonnet.
    let prices = write(
        dir.path(),
        "prices.json",
        r#"{"providers": {"anthropic": {"models": {"claude-haiku-4-5": {"rates": {"input": "1", "output": "5"}}}}}}"#,
    );
    let cfg = write(dir.path(), "sluice.yaml", &config(&up));
    let gw = gateway(&[&cfg], &[4060], &[], &[]).await;

    // 1000 uncached in, 20000 cache reads, 4000 cache writes, 500 out:
    // 1000*3 + 20000*0.3 + 4000*3.75 + 500*15 = 3000+6000+15000+7500 = 31500 /1e6.
    up.set_script(
        Script::default()
            .tokens(1000, 500)
            .cache_tokens(20_000, 4_000),
    );
    send(&gw, "claude-sonnet-4-5").await;
    wait_access_lines(&gw, 1, Duration::from_secs(10)).await;
    let want = 0.0315;
    let got = logged_cost(&gw, 1).unwrap_or_else(|| panic!("no cost_usd in\n{}", gw.logs()));
    assert!(close(got, want), "logged {got}, want {want}");
    assert!(close(
        cost_metric(&gw, "claude-sonnet-4-5").await.unwrap(),
        want
    ));

    // A second request adds up in the counter.
    send(&gw, "claude-sonnet-4-5").await;
    wait_access_lines(&gw, 2, Duration::from_secs(10)).await;
    assert!(close(
        cost_metric(&gw, "claude-sonnet-4-5").await.unwrap(),
        2.0 * want
    ));

    // The file's model: 1000*1 + 500*5 (cache tokens unpriced there: input rate).
    up.set_script(Script::default().tokens(1000, 500).cache_tokens(1000, 0));
    send(&gw, "claude-haiku-4-5").await;
    wait_access_lines(&gw, 3, Duration::from_secs(10)).await;
    assert!(close(logged_cost(&gw, 3).unwrap(), (2000.0 + 2500.0) / 1e6));

    // An unpriced model has no cost at all (not 0).
    send(&gw, "claude-opus-4-1").await;
    wait_access_lines(&gw, 4, Duration::from_secs(10)).await;
    assert_eq!(logged_cost(&gw, 4), None);
    assert_eq!(cost_metric(&gw, "claude-opus-4-1").await, None);

    // The file changes; a config reload re-reads it.
    std::fs::write(
        &prices,
        r#"{"providers": {"anthropic": {"models": {"claude-haiku-4-5": {"rates": {"input": "2", "output": "10"}}}}}}"#,
    )
    .unwrap();
    let r = TestClient::new()
        .post_json(
            &gw.admin_url("/config/reload"),
            &h(&[]),
            &serde_json::json!({}),
        )
        .await;
    assert!(r.status < 300, "reload: {} {}", r.status, r.text());
    up.set_script(Script::default().tokens(1000, 500));
    send(&gw, "claude-haiku-4-5").await;
    wait_access_lines(&gw, 5, Duration::from_secs(10)).await;
    assert!(close(logged_cost(&gw, 5).unwrap(), (2000.0 + 5000.0) / 1e6));
}

#[tokio::test]
async fn a_bad_catalog_is_refused_at_load() {
    let up = FakeUpstream::plain().await;
    let dir = tempfile::tempdir().unwrap();
    write(
        dir.path(),
        "prices.json",
        r#"{"providers": {"anthropic": {"models": {"m": {"rates": {"input": "-1"}}}}}}"#,
    );
    let cfg = write(dir.path(), "sluice.yaml", &config(&up));
    let err = try_gateway(&[&cfg], &[4060], &[], &[])
        .await
        .err()
        .expect("a negative rate must be refused");
    assert!(
        err.contains("modelCatalog") && err.contains("non-negative"),
        "{err}"
    );
}

/// The request span carries the cost (`sluice.cost_usd`) and the API key's
/// identity (`enduser.id`, `sluice.team`).
#[tokio::test]
async fn trace_carries_cost_user_and_team() {
    use sluice_testkit::otlp::{Attr, Collector};
    let up = FakeUpstream::plain().await;
    let col = Collector::start().await;
    let dir = tempfile::tempdir().unwrap();
    write(dir.path(), "prices.json", r#"{"providers": {}}"#);
    let cfg = config(&up)
        .replace(
            "config:\n",
            &format!(
                "config:\n  tracing:\n    otlpEndpoint: {}\n    otlpProtocol: http\n    randomSampling: true\n",
                col.url()
            ),
        )
        .replace(
            "  policies:\n    urlRewrite",
            "  policies:\n    apiKey:\n      mode: strict\n      keys:\n      - key: sk-traced-key-1\n        metadata: {user: alice, team: platform}\n    urlRewrite",
        );
    let cfg = write(dir.path(), "sluice.yaml", &cfg);
    let gw = gateway(&[&cfg], &[4060], &[], &[]).await;
    up.set_script(
        Script::default()
            .tokens(1000, 500)
            .cache_tokens(20_000, 4_000),
    );
    let body = r#"{"model":"claude-sonnet-4-5","max_tokens":8,"messages":[{"role":"user","content":"hi"}]}"#;
    let headers = [
        ("host", "localhost"),
        ("content-type", "application/json"),
        ("anthropic-version", "2023-06-01"),
        ("authorization", "Bearer sk-traced-key-1"),
    ];
    let r = raw(gw.addr(4060), "POST", "/claude/v1/messages", &headers, body).await;
    assert_eq!(r.status, 200, "{}", r.body);
    let spans = col
        .wait_for("the server span", Duration::from_secs(15), |s| {
            s.iter().any(|x| x.kind == 2)
        })
        .await
        .unwrap();
    let server = spans.iter().find(|s| s.kind == 2).unwrap();
    assert_eq!(server.str("enduser.id"), Some("alice"));
    assert_eq!(server.str("sluice.team"), Some("platform"));
    match server.attr("sluice.cost_usd") {
        Some(Attr::Float(c)) => assert!(close(*c, 0.0315), "{c}"),
        other => panic!("sluice.cost_usd: {other:?}"),
    }
    assert!(!gw.logs().contains("sk-traced-key-1"), "the key was logged");
    // The team's metrics.
    let text = TestClient::new()
        .get(&gw.admin_url("/metrics"))
        .await
        .text();
    let team = [("route", "priced"), ("team", "platform")];
    assert_eq!(
        metric(&text, "sluice_team_requests_total", &team),
        Some(1.0)
    );
    assert!(close(
        metric(&text, "sluice_team_cost_usd_total", &team).unwrap(),
        0.0315
    ));
}

/// A catalog file is watched like a config file: a change reprices new
/// requests without any reload call.
#[tokio::test]
async fn a_changed_catalog_file_is_reloaded_live() {
    let up = FakeUpstream::plain().await;
    let dir = tempfile::tempdir().unwrap();
    let prices = |input: u32| {
        format!(
            r#"{{"providers": {{"anthropic": {{"models": {{"claude-haiku-4-5": {{"rates": {{"input": "{input}"}}}}}}}}}}}}"#
        )
    };
    let file = write(dir.path(), "prices.json", &prices(1));
    let cfg = write(dir.path(), "sluice.yaml", &config(&up));
    let gw = gateway(&[&cfg], &[4060], &[], &[]).await;
    up.set_script(Script::default().tokens(1_000_000, 0));
    send(&gw, "claude-haiku-4-5").await;
    wait_access_lines(&gw, 1, Duration::from_secs(10)).await;
    assert!(close(logged_cost(&gw, 1).unwrap(), 1.0));

    std::fs::write(&file, prices(4)).unwrap();
    let t0 = std::time::Instant::now();
    let mut n = 1;
    loop {
        assert!(
            t0.elapsed() < Duration::from_secs(10),
            "the new price was not picked up\n{}",
            gw.logs()
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
        send(&gw, "claude-haiku-4-5").await;
        n += 1;
        wait_access_lines(&gw, n, Duration::from_secs(10)).await;
        if close(logged_cost(&gw, n).unwrap(), 4.0) {
            break;
        }
    }
}

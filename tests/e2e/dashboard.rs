//! The Grafana dashboard (`config/grafana/sluice.json`) queries only metrics
//! the gateway really exports: every metric name in every panel's queries
//! has samples in a `/metrics` scrape of the binary under traffic (served,
//! refused by a rate limit, reloaded, traced).

use crate::common::*;
use serde_json::json;
use sluice_testkit::client::TestClient;
use sluice_testkit::FakeUpstream;
use std::collections::BTreeSet;
use std::time::Duration;

/// Metric names in a PromQL expression: identifiers of ours, not labels
/// or functions.
fn metric_names(expr: &str) -> Vec<String> {
    let mut out = Vec::new();
    let mut cur = String::new();
    let mut in_braces = false;
    // Inside `by (...)` / `without (...)`: label names.
    let mut in_grouping = false;
    for c in expr.chars().chain(std::iter::once(' ')) {
        if c.is_ascii_alphanumeric() || c == '_' || c == ':' {
            cur.push(c);
            continue;
        }
        if cur == "by" || cur == "without" {
            in_grouping = true;
        }
        if !in_braces && !in_grouping && (cur.starts_with("sluice_") || cur.starts_with("gen_ai_"))
        {
            out.push(std::mem::take(&mut cur));
        }
        cur.clear();
        match c {
            '{' => in_braces = true,
            '}' => in_braces = false,
            ')' => in_grouping = false,
            _ => {}
        }
    }
    out
}

#[tokio::test]
async fn every_dashboard_metric_is_in_a_real_scrape() {
    let text = std::fs::read_to_string(config("grafana/sluice.json")).unwrap();
    let dash: serde_json::Value = serde_json::from_str(&text).unwrap();
    let mut wanted = BTreeSet::new();
    for p in dash["panels"].as_array().unwrap() {
        let targets = p["targets"].as_array().unwrap();
        assert!(!targets.is_empty(), "panel {} has no query", p["title"]);
        for t in targets {
            let names = metric_names(t["expr"].as_str().unwrap());
            assert!(!names.is_empty(), "no metric in {}", t["expr"]);
            wanted.extend(names);
        }
    }

    let up = FakeUpstream::plain().await;
    let col = sluice_testkit::otlp::Collector::start().await;
    let dir = tempfile::tempdir().unwrap();
    let serving = serving(dir.path(), up.addr());
    let limit = write(
        dir.path(),
        "limit.yaml",
        "- name: limit-claude\n  matches:\n  - path:\n      pathPrefix: /claude\n  policies:\n    rateLimit:\n      requestsPerHour: 2\n      actions:\n      - reject: true\n        errorCode: 429\n",
    );
    let tracing = write(
        dir.path(),
        "tracing.yaml",
        &format!(
            "config:\n  tracing:\n    otlpEndpoint: {}\n    otlpProtocol: http\n    randomSampling: true\n",
            col.url()
        ),
    );
    let gw = gateway(&[&serving, &limit, &tracing], &[4060], &[], &[]).await;
    let c = TestClient::new();
    let body = json!({"model": "claude-sonnet-4-5", "max_tokens": 64, "stream": true,
                      "messages": [{"role": "user", "content": "hi"}]});
    let mut statuses = Vec::new();
    for _ in 0..3 {
        let r = c
            .post_json(
                &gw.url(4060, "/claude/v1/messages"),
                &h(&[("x-api-key", "k"), ("anthropic-version", "2023-06-01")]),
                &body,
            )
            .await;
        statuses.push(r.status);
    }
    assert_eq!(statuses, vec![200, 200, 429]);
    gw.send_signal_hup().unwrap();
    gw.wait_for_log("config reloaded", Duration::from_secs(15))
        .await
        .unwrap();
    wait_access_lines(&gw, 3, Duration::from_secs(15)).await;
    col.wait_for("exported spans", Duration::from_secs(15), |s| !s.is_empty())
        .await
        .unwrap();

    let scrape = c.get(&gw.admin_url("/metrics")).await.text();
    let missing: Vec<_> = wanted
        .iter()
        .filter(|name| {
            !scrape
                .lines()
                .any(|l| l.starts_with(&format!("{name}{{")) || l.starts_with(&format!("{name} ")))
        })
        .collect();
    assert!(
        missing.is_empty(),
        "dashboard metrics absent from /metrics: {missing:?}\n{scrape}"
    );
}

#[test]
fn metric_names_skip_labels_and_functions() {
    assert_eq!(
        metric_names(
            r#"histogram_quantile(0.95, sum by (le, route) (rate(sluice_ttfb_seconds_bucket{route="sluice_x"}[5m])))"#
        ),
        vec!["sluice_ttfb_seconds_bucket".to_string()]
    );
    assert_eq!(
        metric_names("sum by (gen_ai_token_type) (rate(gen_ai_client_token_usage_sum[5m]))"),
        vec!["gen_ai_client_token_usage_sum".to_string()]
    );
}

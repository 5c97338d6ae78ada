//! agentgateway's LLM mode (`llm:`) through the real binary: the body's
//! `model` picks the provider. agentgateway's own examples run verbatim
//! (`config/agentgateway/`): their upstreams are the real provider hosts,
//! which `--resolve` pins to a TLS fake trusted through `SSL_CERT_FILE`, so
//! the files need no test-only `baseUrl`. Their fixed probe ports
//! (`readinessAddr`, `statsAddr`) are remapped with `--port-map` like a bind's.

use crate::common::*;
use serde_json::{json, Value};
use sluice_testkit::client::TestClient;
use sluice_testkit::gateway::run;
use sluice_testkit::Gateway;
use std::net::SocketAddr;
use std::path::Path;
use std::time::Duration;

const BASIC: &str = "agentgateway/llm-basic.yaml";
const COST: &str = "agentgateway/llm-cost-routing.yaml";
const JSON: &[(&str, &str)] = &[("content-type", "application/json")];
const ANTHROPIC: &[(&str, &str)] = &[
    ("content-type", "application/json"),
    ("anthropic-version", "2023-06-01"),
];

async fn basic(p: &Provider) -> Gateway {
    let ca = p.ca.display().to_string();
    gateway(
        &[&config(BASIC)],
        &[4000, 19001, 19002],
        &p.pins(),
        &[
            ("SSL_CERT_FILE", &ca),
            ("ANTHROPIC_API_KEY", ANTHROPIC_KEY),
            ("OPENAI_API_KEY", OPENAI_KEY),
        ],
    )
    .await
}

/// The address a `SLUICE_<what> addr=...` line announced.
fn announced(gw: &Gateway, what: &str) -> SocketAddr {
    let prefix = format!("SLUICE_{what} addr=");
    gw.stdout_lines()
        .iter()
        .find_map(|l| l.strip_prefix(&prefix).map(|a| a.trim().parse().unwrap()))
        .unwrap_or_else(|| panic!("no {prefix} line: {:?}", gw.stdout_lines()))
}

fn chat(model: &str) -> Value {
    json!({"model": model, "messages": [{"role": "user", "content": "hi"}]})
}

fn message(model: &str) -> Value {
    json!({"model": model, "max_tokens": 16, "messages": [{"role": "user", "content": "hi"}]})
}

#[test]
fn both_examples_validate_unchanged() {
    for f in [BASIC, COST] {
        let out = run(
            Path::new(BIN),
            &["validate", "--config", &config(f)],
            &[
                ("ANTHROPIC_API_KEY", ANTHROPIC_KEY),
                ("OPENAI_API_KEY", OPENAI_KEY),
            ],
        );
        let text = String::from_utf8_lossy(&out.stdout).into_owned();
        assert!(out.status.success(), "{f}: {text}");
        assert!(!text.contains(OPENAI_KEY), "{text}");
    }
    // The copies are agentgateway's files byte for byte.
    let basic = std::fs::read_to_string(config(BASIC)).unwrap();
    assert!(basic.contains("model: llmRequest.model.stripPrefix(\"anthropic/\")"));
}

#[tokio::test]
async fn llm_basic_picks_the_provider_by_model() {
    let p = Provider::tls().await;
    let gw = basic(&p).await;
    let c = TestClient::new();
    let url = |path: &str| gw.url(4000, path);

    // `smart` → OpenAI, its `params.model` and key.
    let r = c
        .post_json(&url("/v1/chat/completions"), JSON, &chat("smart"))
        .await;
    assert_eq!(r.status, 200, "{}", r.text());
    let got = p.upstream.last_request().unwrap();
    assert_eq!(got.path_and_query(), "/v1/chat/completions");
    assert_eq!(got.json()["model"], "gpt-5.5");
    assert_eq!(
        got.header("authorization"),
        Some(format!("Bearer {OPENAI_KEY}").as_str())
    );

    // `anthropic/<model>` → Anthropic, the prefix stripped by CEL.
    let r = c
        .post_json(
            &url("/v1/messages"),
            ANTHROPIC,
            &message("anthropic/claude-sonnet-4-5"),
        )
        .await;
    assert_eq!(r.status, 200, "{}", r.text());
    let got = p.upstream.last_request().unwrap();
    assert_eq!(got.path_and_query(), "/v1/messages");
    assert_eq!(got.json()["model"], "claude-sonnet-4-5");
    assert_eq!(got.header("x-api-key"), Some(ANTHROPIC_KEY));
    assert!(got.header("authorization").is_none());

    // Hostile: the prefix twice comes off once, like agentgateway's stripPrefix.
    let r = c
        .post_json(
            &url("/v1/messages"),
            ANTHROPIC,
            &message("anthropic/anthropic/claude-x"),
        )
        .await;
    assert_eq!(r.status, 200, "{}", r.text());
    assert_eq!(
        p.upstream.last_request().unwrap().json()["model"],
        "anthropic/claude-x"
    );

    // count_tokens goes the same way.
    let r = c
        .post_json(
            &url("/v1/messages/count_tokens"),
            ANTHROPIC,
            &json!({"model": "anthropic/claude-x", "messages": [{"role": "user", "content": "hi"}]}),
        )
        .await;
    assert_eq!(r.status, 200, "{}", r.text());
    assert_eq!(
        p.upstream.last_request().unwrap().path_and_query(),
        "/v1/messages/count_tokens"
    );

    // Responses, embeddings and streams go the same way.
    for (path, body) in [
        ("/v1/responses", json!({"model": "smart", "input": "hi"})),
        ("/v1/embeddings", json!({"model": "smart", "input": ["hi"]})),
    ] {
        let r = c.post_json(&url(path), JSON, &body).await;
        assert_eq!(r.status, 200, "{path}: {}", r.text());
        let got = p.upstream.last_request().unwrap();
        assert_eq!(got.path_and_query(), path);
        assert_eq!(got.json()["model"], "gpt-5.5");
    }
    let mut streamed = chat("smart");
    streamed["stream"] = json!(true);
    let r = c
        .post_json(&url("/v1/chat/completions"), JSON, &streamed)
        .await;
    assert_eq!(r.status, 200, "{}", r.text());
    assert!(
        r.header("content-type")
            .unwrap()
            .starts_with("text/event-stream"),
        "{:?}",
        r.headers
    );
    assert!(r.text().contains("data: [DONE]"), "{}", r.text());

    // A model whose provider speaks another format gets the request
    // translated (Messages → Chat), and the answer back in Anthropic's.
    let r = c
        .post_json(&url("/v1/messages"), ANTHROPIC, &message("smart"))
        .await;
    assert_eq!(r.status, 200, "{}", r.text());
    assert_eq!(r.json()["type"], "message", "{}", r.text());
    let got = p.upstream.last_request().unwrap();
    assert_eq!(got.path_and_query(), "/v1/chat/completions");
    assert_eq!(got.json()["model"], "gpt-5.5");
}

#[tokio::test]
async fn unknown_models_get_model_not_found_in_the_clients_shape() {
    let p = Provider::tls().await;
    let gw = basic(&p).await;
    let c = TestClient::new();
    let url = |path: &str| gw.url(4000, path);

    // Names are case-sensitive, as in agentgateway.
    let r = c
        .post_json(&url("/v1/chat/completions"), JSON, &chat("Smart"))
        .await;
    assert_eq!(r.status, 404, "{}", r.text());
    let v = r.json();
    assert_eq!(v["error"]["code"], "model_not_found", "{v}");
    assert_eq!(v["error"]["type"], "invalid_request_error", "{v}");
    assert_eq!(v["error"]["message"], "Model not found", "{v}");

    let r = c
        .post_json(
            &url("/v1/messages"),
            ANTHROPIC,
            &message("Anthropic/claude"),
        )
        .await;
    assert_eq!(r.status, 404, "{}", r.text());
    let v = r.json();
    assert_eq!(v["type"], "error", "{v}");
    assert_eq!(v["error"]["type"], "not_found_error", "{v}");

    // No model at all: 400.
    let r = c
        .post_json(&url("/v1/chat/completions"), JSON, &json!({"messages": []}))
        .await;
    assert_eq!(r.status, 400, "{}", r.text());
    assert_eq!(r.json()["error"]["code"], "missing_model");
    assert!(p.upstream.requests().is_empty(), "nothing went upstream");
}

#[tokio::test]
async fn hostile_bodies_are_read_one_way() {
    let p = Provider::tls().await;
    let gw = basic(&p).await;
    let c = TestClient::new();
    let url = gw.url(4000, "/v1/chat/completions");

    // Two `model` keys: which would the provider read? Refused.
    let dup = br#"{"model":"smart","model":"anthropic/claude","messages":[]}"#.to_vec();
    let r = c.post_bytes(&url, JSON, dup.clone()).await;
    assert_eq!(r.status, 400, "{}", r.text());
    // Also on a path of no known API format (passthrough).
    let r = c.post_bytes(&gw.url(4000, "/v1/other"), JSON, dup).await;
    assert_eq!(r.status, 400, "{}", r.text());
    assert_eq!(r.json()["error"]["code"], "invalid_request_body");
    // The same key spelled with an escape is the same key.
    let esc = br#"{"model":"Smart","mod\u0065l":"smart","messages":[]}"#.to_vec();
    let r = c.post_bytes(&url, JSON, esc).await;
    assert_eq!(r.status, 400, "{}", r.text());
    assert!(p.upstream.requests().is_empty());

    // An escaped key alone is the model, for the gateway as for the provider.
    let one = br#"{"mod\u0065l":"smart","messages":[{"role":"user","content":"hi"}]}"#.to_vec();
    let r = c.post_bytes(&url, JSON, one).await;
    assert_eq!(r.status, 200, "{}", r.text());
    assert_eq!(
        p.upstream.last_request().unwrap().json()["model"],
        "gpt-5.5"
    );

    // Over `frontendPolicies.http.maxBufferSize` (20 MiB): 413, client's shape.
    let mut big = br#"{"model":"smart","messages":[{"role":"user","content":""#.to_vec();
    big.extend(std::iter::repeat_n(b'a', 21 << 20));
    big.extend(br#""}]}"#);
    let r = c.post_bytes(&url, JSON, big.clone()).await;
    assert_eq!(r.status, 413, "{}", r.text());
    assert!(r.json()["error"]["message"].is_string(), "{}", r.text());
    let r = c
        .post_bytes(&gw.url(4000, "/v1/messages"), ANTHROPIC, big)
        .await;
    assert_eq!(r.status, 413, "{}", r.text());
    assert_eq!(r.json()["type"], "error", "{}", r.text());
    assert_eq!(p.upstream.requests().len(), 1);
}

#[tokio::test]
async fn models_are_listed_from_the_config_and_probes_answer() {
    let p = Provider::tls().await;
    let gw = basic(&p).await;
    let c = TestClient::new();

    let r = c.get(&gw.url(4000, "/v1/models")).await;
    assert_eq!(r.status, 200, "{}", r.text());
    let v = r.json();
    assert_eq!(v["object"], "list");
    let ids: Vec<&str> = v["data"]
        .as_array()
        .unwrap()
        .iter()
        .map(|m| m["id"].as_str().unwrap())
        .collect();
    assert_eq!(ids, ["smart", "anthropic/*"]);
    assert_eq!(v["data"][0]["object"], "model");

    let r = c
        .get_with(
            &gw.url(4000, "/v1/models"),
            &[("anthropic-version", "2023-06-01")],
        )
        .await;
    let v = r.json();
    assert_eq!(v["has_more"], false, "{v}");
    assert_eq!(v["first_id"], "smart", "{v}");
    assert_eq!(v["last_id"], "anthropic/*", "{v}");
    assert_eq!(v["data"][0]["type"], "model", "{v}");
    assert!(v["data"][0]["created_at"].as_str().unwrap().ends_with('Z'));
    assert!(p.upstream.requests().is_empty());

    // statsAddr: /metrics only; readinessAddr: /healthz/ready only.
    let stats = announced(&gw, "STATS");
    let r = c.get(&format!("http://{stats}/metrics")).await;
    assert_eq!(r.status, 200);
    assert!(r.text().contains("# EOF"), "{}", r.text());
    assert_eq!(c.get(&format!("http://{stats}/config")).await.status, 404);
    let page = c
        .get_with(
            &format!("http://{stats}/metrics"),
            &[("origin", "https://evil.example")],
        )
        .await;
    assert_eq!(page.status, 403);
    let ready = announced(&gw, "READINESS");
    assert_eq!(
        c.get(&format!("http://{ready}/healthz/ready")).await.status,
        200
    );
    assert_eq!(c.get(&format!("http://{ready}/metrics")).await.status, 404);
}

async fn cost(p: &Provider) -> Gateway {
    let ca = p.ca.display().to_string();
    gateway(
        &[&config(COST)],
        &[4000],
        &p.pins(),
        &[("SSL_CERT_FILE", &ca)],
    )
    .await
}

#[tokio::test]
async fn cost_routing_picks_the_tier_by_condition() {
    let p = Provider::tls().await;
    let gw = cost(&p).await;
    let c = TestClient::new();
    let url = gw.url(4000, "/v1/chat/completions");
    let cases = [
        (json!({}), "economy-model", "gpt-4o-mini"),
        (json!({"max_tokens": 1024}), "economy-model", "gpt-4o-mini"),
        (json!({"max_tokens": 2000}), "balanced-model", "gpt-4o"),
        (json!({"max_tokens": 9000}), "premium-model", "gpt-4o"),
        // An explicit tier wins over the budget.
        (
            json!({"max_tokens": 9000, "metadata": {"cost_tier": "economy"}}),
            "economy-model",
            "gpt-4o-mini",
        ),
        (
            json!({"max_tokens": 10, "metadata": {"cost_tier": "balanced"}}),
            "balanced-model",
            "gpt-4o",
        ),
        (
            json!({"max_tokens": 10, "metadata": {"cost_tier": "gold"}}),
            "premium-model",
            "gpt-4o",
        ),
    ];
    for (i, (extra, backend, served)) in cases.iter().enumerate() {
        let mut body = chat("smart-model");
        for (k, v) in extra.as_object().unwrap() {
            body[k] = v.clone();
        }
        let r = c.post_json(&url, JSON, &body).await;
        assert_eq!(r.status, 200, "{body}: {}", r.text());
        let got = p.upstream.last_request().unwrap();
        assert_eq!(got.json()["model"], *served, "{body}");
        // baseUrl https://api.openai.com/v1 keeps the /v1 path.
        assert_eq!(got.path_and_query(), "/v1/chat/completions");
        assert_eq!(got.header("authorization"), Some("Bearer replace-me"));
        wait_access_lines(&gw, i + 1, Duration::from_secs(10)).await;
        let line = gw
            .logs()
            .lines()
            .filter(|l| l.contains("sluice::access"))
            .nth(i)
            .unwrap()
            .to_string();
        // One `llm` route; the model entry is the backend.
        assert!(line.contains(" route=llm "), "{body}: {line}");
        assert!(
            line.contains(&format!(" backend={backend} ")),
            "{body}: {line}"
        );
        assert!(
            line.contains("requested_model=\"smart-model\"")
                || line.contains("requested_model=smart-model"),
            "{line}"
        );
    }

    // Internal models are reachable only through the virtual one.
    let r = c.post_json(&url, JSON, &chat("economy-model")).await;
    assert_eq!(r.status, 404, "{}", r.text());
    let r = c.get(&gw.url(4000, "/v1/models")).await;
    let ids: Vec<String> = r.json()["data"]
        .as_array()
        .unwrap()
        .iter()
        .map(|m| m["id"].as_str().unwrap().to_string())
        .collect();
    assert_eq!(ids, ["smart-model"]);
}

/// Send a chat for `model`; the model and credential the upstream got.
async fn served(
    c: &TestClient,
    up: &sluice_testkit::FakeUpstream,
    url: &str,
    model: &str,
) -> (String, String) {
    let r = c.post_json(url, JSON, &chat(model)).await;
    assert_eq!(r.status, 200, "{model}: {}", r.text());
    let got = up.last_request().unwrap();
    (
        got.json()["model"].as_str().unwrap().to_string(),
        got.header("authorization").unwrap().to_string(),
    )
}

/// Weighted and failover virtual models, `llm.policies` as a policy layer,
/// `baseUrl` to a plain fake.
#[tokio::test]
async fn weighted_failover_and_shared_policies() {
    let up = sluice_testkit::FakeUpstream::plain().await;
    let dir = tempfile::tempdir().unwrap();
    let cfg = write(
        dir.path(),
        "llm.yaml",
        &format!(
            r#"
llm:
  port: 4000
  models:
  - name: a
    provider: openAI
    params: {{model: model-a, apiKey: key-a, baseUrl: "{url}/v1"}}
  - name: b
    provider: openAI
    visibility: internal
    params: {{model: model-b, apiKey: key-b, baseUrl: "{url}/v1"}}
  - name: "*-mini"
    provider: openAI
    params: {{apiKey: key-mini, baseUrl: "{url}/v1"}}
  - name: "*"
    provider: openAI
    params: {{model: catch-all, apiKey: key-any, baseUrl: "{url}/v1"}}
  virtualModels:
  - name: only-b
    routing: {{weighted: {{targets: [{{model: a, weight: 0}}, {{model: b, weight: 3}}]}}}}
  - name: ha
    routing: {{failover: {{targets: [{{model: a, priority: 2}}, {{model: b, priority: 1}}]}}}}
  policies:
    localRateLimit:
    - maxTokens: 5
      tokensPerFill: 1
      fillInterval: 1h
"#,
            url = up.url()
        ),
    );
    let gw = gateway(&[&cfg], &[4000], &[], &[]).await;
    let c = TestClient::new();
    let url = gw.url(4000, "/v1/chat/completions");
    for _ in 0..2 {
        assert_eq!(
            served(&c, &up, &url, "only-b").await,
            ("model-b".into(), "Bearer key-b".into())
        );
    }
    // Failover: the lowest priority first.
    assert_eq!(served(&c, &up, &url, "ha").await.0, "model-b");
    // `*suffix` beats `*`; the client's model is kept without `params.model`.
    assert_eq!(
        served(&c, &up, &url, "gpt-4o-mini").await,
        ("gpt-4o-mini".into(), "Bearer key-mini".into())
    );
    // `b` is internal: its own name falls to `*`.
    assert_eq!(served(&c, &up, &url, "b").await.0, "catch-all");
    assert_eq!(
        up.last_request().unwrap().path_and_query(),
        "/v1/chat/completions"
    );
    // The shared rate limit (5 requests) applies to every model on the port.
    let r = c.post_json(&url, JSON, &chat("a")).await;
    assert_eq!(r.status, 429, "{}", r.text());
    // Policies decide before the model router answers anything itself.
    let r = c.get(&gw.url(4000, "/v1/models")).await;
    assert_eq!(r.status, 429, "{}", r.text());
    let r = c.post_json(&url, JSON, &json!({"messages": []})).await;
    assert_eq!(r.status, 429, "{}", r.text());
}

/// A failover virtual model: the next target on no connection, 429 or 5xx,
/// never on a client error; the client sees one answer.
#[tokio::test]
async fn failover_tries_the_next_target_before_answering() {
    let up = sluice_testkit::FakeUpstream::plain().await;
    let closed = sluice_testkit::ClosedPort::new();
    let dir = tempfile::tempdir().unwrap();
    let cfg = write(
        dir.path(),
        "llm.yaml",
        &format!(
            r#"
llm:
  port: 4000
  models:
  - name: primary
    provider: openAI
    params: {{model: model-primary, apiKey: key-p, baseUrl: "{url}/v1"}}
  - name: backup
    provider: openAI
    params: {{model: model-backup, apiKey: key-b, baseUrl: "{url}/v1"}}
  - name: gone
    provider: openAI
    params: {{apiKey: key-g, baseUrl: "http://{closed}/v1"}}
  virtualModels:
  - name: ha
    routing: {{failover: {{targets: [{{model: backup, priority: 1}}, {{model: primary, priority: 0}}]}}}}
  - name: ha-dead
    routing: {{failover: {{targets: [{{model: gone, priority: 0}}, {{model: backup, priority: 1}}]}}}}
"#,
            url = up.url(),
            closed = closed.addr()
        ),
    );
    let gw = gateway(&[&cfg], &[4000], &[], &[]).await;
    let c = TestClient::new();
    let url = gw.url(4000, "/v1/chat/completions");

    assert_eq!(served(&c, &up, &url, "ha").await.0, "model-primary");
    for status in [503, 429] {
        up.clear();
        up.queue_script(sluice_testkit::Script::text("x").status(status, "{\"error\":{}}"));
        let got = served(&c, &up, &url, "ha").await;
        assert_eq!(
            got,
            ("model-backup".into(), "Bearer key-b".into()),
            "{status}"
        );
        let models: Vec<String> = up
            .requests()
            .iter()
            .map(|r| r.json()["model"].as_str().unwrap().to_string())
            .collect();
        assert_eq!(models, ["model-primary", "model-backup"], "{status}");
    }
    // A client error is the client's: no second attempt.
    up.clear();
    up.queue_script(sluice_testkit::Script::text("x").status(400, "{\"error\":{}}"));
    let r = c.post_json(&url, JSON, &chat("ha")).await;
    assert_eq!(r.status, 400, "{}", r.text());
    assert_eq!(up.requests().len(), 1);
    // No connection at all.
    up.clear();
    assert_eq!(served(&c, &up, &url, "ha-dead").await.0, "model-backup");
}

/// `readinessAddr` says 503 as soon as the gateway drains, while a request
/// is still in flight, and the probe listener keeps answering meanwhile.
#[tokio::test]
async fn readiness_turns_503_while_draining() {
    let up = sluice_testkit::FakeUpstream::plain().await;
    up.set_script(sluice_testkit::Script::text("slow").response_delay(Duration::from_secs(3)));
    let dir = tempfile::tempdir().unwrap();
    let cfg = write(
        dir.path(),
        "llm.yaml",
        &format!(
            "config:\n  readinessAddr: 127.0.0.1:19001\nllm:\n  port: 4000\n  models:\n  - name: '*'\n    provider: openAI\n    params: {{baseUrl: '{}'}}\n",
            up.url()
        ),
    );
    let mut gw = gateway(&[&cfg], &[4000, 19001], &[], &[]).await;
    let ready = format!("http://{}/healthz/ready", announced(&gw, "READINESS"));
    let c = TestClient::new();
    assert_eq!(c.get(&ready).await.status, 200);

    let url = gw.url(4000, "/v1/chat/completions");
    let slow = {
        let c = c.clone();
        tokio::spawn(async move { c.post_json(&url, JSON, &chat("m")).await })
    };
    up.wait_for_requests(1, Duration::from_secs(10))
        .await
        .unwrap();
    gw.send_signal_term().unwrap();
    let t0 = std::time::Instant::now();
    loop {
        let r = c.reqwest().get(&ready).send().await;
        if r.as_ref().is_ok_and(|r| r.status() == 503) {
            break;
        }
        assert!(
            t0.elapsed() < Duration::from_secs(2),
            "still {r:?}\n{}",
            gw.logs()
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    // The in-flight request still completes.
    let r = tokio::time::timeout(Duration::from_secs(10), slow)
        .await
        .unwrap()
        .unwrap();
    assert_eq!(r.status, 200, "{}", r.text());
    assert!(gw.wait_exit(Duration::from_secs(10)).await.is_some());
}

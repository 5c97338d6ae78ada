//! OpenTelemetry traces through the real binary, into a real OTLP receiver
//! (`sluice_testkit::otlp::Collector`, decoding the protobuf it is sent).

use crate::common::*;
use serde_json::json;
use sluice_testkit::client::TestClient;
use sluice_testkit::otlp::{Attr, Collector, ReceivedSpan};
use sluice_testkit::{ClosedPort, FakeUpstream, Gateway, Script};
use std::time::{Duration, Instant};

const WAIT: Duration = Duration::from_secs(15);

fn tracing_yaml(endpoint: &str, protocol: &str, extra: &str) -> String {
    format!(
        "config:\n  tracing:\n    otlpEndpoint: {endpoint}\n    otlpProtocol: {protocol}\n    randomSampling: true\n{extra}"
    )
}

/// Serving file + transformations layer (policy spans) + tracing file.
async fn traced_gateway(
    dir: &std::path::Path,
    up: &FakeUpstream,
    tracing: &str,
    envs: &[(&str, &str)],
) -> Gateway {
    let serving = serving(dir, up.addr());
    let t = write(dir, "tracing.yaml", tracing);
    gateway(
        &[&serving, &config("transformations.yaml"), &t],
        &[4060],
        &[],
        envs,
    )
    .await
}

/// A traced gateway on the guide's routes, its upstream and its collector.
struct Traced {
    up: FakeUpstream,
    col: Collector,
    gw: Gateway,
    _dir: tempfile::TempDir,
}

impl Traced {
    /// Exporting over `protocol` (`http` or `grpc`), every request sampled.
    async fn start(protocol: &str) -> Traced {
        let up = FakeUpstream::plain().await;
        let col = Collector::start().await;
        let dir = tempfile::tempdir().unwrap();
        let yaml = tracing_yaml(&col.url(), protocol, "");
        let gw = traced_gateway(dir.path(), &up, &yaml, &[]).await;
        Traced {
            up,
            col,
            gw,
            _dir: dir,
        }
    }
}

fn messages_body() -> serde_json::Value {
    json!({"model": "claude-sonnet-4-5", "max_tokens": 512, "temperature": 0.25,
           "stream": true, "messages": [{"role": "user", "content": "hi"}]})
}

async fn send(gw: &Gateway, extra: &[(&str, &str)]) -> sluice_testkit::Resp {
    let mut headers = vec![("x-api-key", "k"), ("anthropic-version", "2023-06-01")];
    headers.extend_from_slice(extra);
    let r = tokio::time::timeout(
        Duration::from_secs(10),
        TestClient::new().post_json(
            &gw.url(4060, "/claude/v1/messages"),
            &h(&headers),
            &messages_body(),
        ),
    )
    .await
    .expect("request answered within 10 s");
    assert_eq!(r.status, 200, "{}", r.text());
    r
}

fn one(spans: &[ReceivedSpan], kind: i32) -> &ReceivedSpan {
    let v: Vec<_> = spans.iter().filter(|s| s.kind == kind).collect();
    assert_eq!(v.len(), 1, "one span of kind {kind}: {spans:#?}");
    v[0]
}

async fn metric(gw: &Gateway, name: &str) -> f64 {
    let text = TestClient::new()
        .get(&gw.admin_url("/metrics"))
        .await
        .text();
    sluice_testkit::metrics::metric(&text, name, &[]).unwrap_or(0.0)
}

#[tokio::test]
async fn request_span_tree_with_genai_attributes_over_http() {
    let Traced { up, col, gw, _dir } = Traced::start("http").await;
    let answer = send(&gw, &[]).await.text();

    let spans = col
        .wait_for("server, client and policy spans", WAIT, |s| {
            s.iter().any(|x| x.kind == 2) && s.iter().any(|x| x.kind == 3)
        })
        .await
        .unwrap();
    let server = one(&spans, 2);
    let client = one(&spans, 3);
    assert_eq!(server.parent_span_id, "", "a root span");
    assert_eq!(server.transport, "http");
    assert_eq!(server.str("sluice.route"), Some("claude-agent"));
    assert_eq!(server.str("sluice.listener"), Some("default"));
    assert_eq!(server.int("http.response.status_code"), Some(200));
    assert_eq!(server.str("client.address"), Some("127.0.0.1"));
    assert!(server
        .str("sluice.request_id")
        .is_some_and(|s| !s.is_empty()));
    assert_eq!(server.resource["service.name"].as_str(), Some("sluice"));

    assert_eq!(client.trace_id, server.trace_id);
    assert_eq!(client.parent_span_id, server.span_id);
    assert_eq!(client.name, "chat claude-sonnet-4-5");
    assert_eq!(client.str("gen_ai.operation.name"), Some("chat"));
    assert_eq!(client.str("gen_ai.provider.name"), Some("anthropic"));
    assert_eq!(
        client.str("gen_ai.request.model"),
        Some("claude-sonnet-4-5")
    );
    assert!(client.str("gen_ai.response.model").is_some());
    assert_eq!(client.int("gen_ai.request.max_tokens"), Some(512));
    assert_eq!(
        client.attr("gen_ai.request.temperature"),
        Some(&sluice_testkit::otlp::Attr::Float(0.25))
    );
    assert_eq!(
        client.attr("gen_ai.request.stream"),
        Some(&sluice_testkit::otlp::Attr::Bool(true))
    );
    assert_eq!(client.int("gen_ai.usage.input_tokens"), Some(11));
    assert_eq!(client.int("gen_ai.usage.output_tokens"), Some(7));
    assert_eq!(client.str("server.address"), Some("127.0.0.1"));
    assert_eq!(client.int("server.port"), Some(up.addr().port().into()));
    assert!(client.attr("gen_ai.response.time_to_first_chunk").is_some());
    assert!(client.attr("error.type").is_none());
    // From the streamed answer: `message_start.message.id`, `message_delta`'s stop reason.
    let id = client
        .str("gen_ai.response.id")
        .expect("gen_ai.response.id");
    assert!(
        id.starts_with("msg_") && answer.contains(&format!("\"id\":\"{id}\"")),
        "{id} not in {answer}"
    );
    assert_eq!(
        client.attr("gen_ai.response.finish_reasons"),
        Some(&Attr::List(vec![Attr::Str("end_turn".into())]))
    );
    // No content by default.
    assert!(spans
        .iter()
        .all(|s| !s.attrs.keys().any(|k| k.contains("messages"))));

    let policy: Vec<_> = spans.iter().filter(|s| s.kind == 1).collect();
    assert!(!policy.is_empty(), "policy spans: {spans:#?}");
    for p in &policy {
        assert_eq!(p.trace_id, server.trace_id);
        assert_eq!(p.parent_span_id, server.span_id);
        assert_eq!(p.str("sluice.policy.plugin"), Some("transform"));
        assert_eq!(p.str("sluice.policy.hash").map(str::len), Some(64));
        assert_eq!(p.str("sluice.policy.outcome"), Some("continue"));
        assert!(p.int("sluice.policy.guest_us").is_some());
        assert!(p.int("sluice.policy.host_wait_us").is_some());
    }
    assert!(policy
        .iter()
        .any(|p| p.str("sluice.policy.hook") == Some("request_headers")));

    // The upstream got the client span's context; the access log names it.
    let upr = up.last_request().unwrap();
    let tp = upr
        .header("traceparent")
        .expect("traceparent sent upstream");
    assert_eq!(tp, format!("00-{}-{}-01", server.trace_id, client.span_id));
    wait_access_lines(&gw, 1, WAIT).await;
    let logs = gw.logs();
    let line = logs.lines().find(|l| l.contains("sluice::access")).unwrap();
    assert!(line.contains(&server.trace_id), "{line}");
    assert!(line.contains(&server.span_id), "{line}");
}

/// A whole (JSON) OpenAI chat answer: its `id` and `choices[].finish_reason`.
#[tokio::test]
async fn json_openai_answer_gives_response_id_and_finish_reasons() {
    let Traced {
        up: _up,
        col,
        gw,
        _dir,
    } = Traced::start("http").await;
    let r = tokio::time::timeout(
        Duration::from_secs(10),
        TestClient::new().post_json(
            &gw.url(4060, "/codex/v1/chat/completions"),
            &h(&[("authorization", "Bearer k")]),
            &json!({"model": "gpt-4o", "messages": [{"role": "user", "content": "hi"}]}),
        ),
    )
    .await
    .expect("answered within 10 s");
    assert_eq!(r.status, 200, "{}", r.text());
    let id = r.json()["id"].as_str().unwrap().to_string();
    let spans = col
        .wait_for("client span", WAIT, |s| s.iter().any(|x| x.kind == 3))
        .await
        .unwrap();
    let client = one(&spans, 3);
    assert_eq!(client.str("gen_ai.provider.name"), Some("openai"));
    assert_eq!(client.str("gen_ai.response.id"), Some(id.as_str()));
    assert_eq!(
        client.attr("gen_ai.response.finish_reasons"),
        Some(&Attr::List(vec![Attr::Str("stop".into())]))
    );
}

#[tokio::test]
async fn incoming_traceparent_is_continued_and_untraced_requests_export_nothing() {
    let up = FakeUpstream::plain().await;
    let col = Collector::start().await;
    let dir = tempfile::tempdir().unwrap();
    // randomSampling off (agentgateway's default): only callers' traces.
    let yaml = format!(
        "config:\n  tracing:\n    otlpEndpoint: {}\n    otlpProtocol: http\n",
        col.url()
    );
    let gw = traced_gateway(dir.path(), &up, &yaml, &[]).await;
    send(&gw, &[]).await;
    let tid = "4bf92f3577b34da6a3ce929d0e0e4736";
    let sid = "00f067aa0ba902b7";
    send(
        &gw,
        &[
            ("traceparent", &format!("00-{tid}-{sid}-01")),
            ("tracestate", "congo=t61rcWkgMzE"),
        ],
    )
    .await;
    let spans = col
        .wait_for("the continued trace", WAIT, |s| {
            s.iter().any(|x| x.kind == 2) && s.iter().any(|x| x.kind == 3)
        })
        .await
        .unwrap();
    assert!(spans.iter().all(|s| s.trace_id == tid), "{spans:#?}");
    let server = one(&spans, 2);
    assert_eq!(server.parent_span_id, sid);
    assert_eq!(server.trace_state, "congo=t61rcWkgMzE");
    let upr = up.last_request().unwrap();
    let tp = upr.header("traceparent").unwrap();
    assert!(
        tp.starts_with(&format!("00-{tid}-")) && !tp.contains(sid),
        "{tp}"
    );
    assert_eq!(upr.header("tracestate"), Some("congo=t61rcWkgMzE"));
}

#[tokio::test]
async fn spans_export_over_grpc() {
    let Traced {
        up: _up,
        col,
        gw,
        _dir,
    } = Traced::start("grpc").await;
    send(&gw, &[]).await;
    let spans = col
        .wait_for("a client span over gRPC", WAIT, |s| {
            s.iter().any(|x| x.kind == 3)
        })
        .await
        .unwrap();
    assert!(spans.iter().all(|s| s.transport == "grpc"));
    assert_eq!(one(&spans, 3).int("gen_ai.usage.output_tokens"), Some(7));
}

/// Requests keep their speed while the collector is down; drops are
/// counted; the outage is logged once.
#[tokio::test]
async fn collector_down_never_slows_requests_and_drops_are_counted() {
    let up = FakeUpstream::plain().await;
    let closed = ClosedPort::new();
    let dir = tempfile::tempdir().unwrap();
    let endpoint = format!("http://{}", closed.addr());
    let gw = traced_gateway(dir.path(), &up, &tracing_yaml(&endpoint, "http", ""), &[]).await;
    for _ in 0..20 {
        let t0 = Instant::now();
        send(&gw, &[]).await;
        assert!(
            t0.elapsed() < Duration::from_secs(2),
            "slowed: {:?}",
            t0.elapsed()
        );
    }
    let t0 = Instant::now();
    while metric(&gw, "sluice_otel_spans_dropped_total").await < 1.0 {
        assert!(t0.elapsed() < WAIT, "no drops counted\n{}", gw.logs());
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    gw.wait_for_log("OTLP collector unavailable", WAIT)
        .await
        .unwrap();
    // Later failed exports do not log again.
    send(&gw, &[]).await;
    let before = metric(&gw, "sluice_otel_spans_dropped_total").await;
    let t0 = Instant::now();
    while metric(&gw, "sluice_otel_spans_dropped_total").await <= before {
        assert!(t0.elapsed() < WAIT, "second batch not dropped");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    assert_eq!(gw.logs().matches("OTLP collector unavailable").count(), 1);
}

#[tokio::test]
async fn collector_answering_503_then_recovering() {
    let up = FakeUpstream::plain().await;
    let col = Collector::start().await;
    col.fail_with(Some(503));
    let dir = tempfile::tempdir().unwrap();
    let gw = traced_gateway(dir.path(), &up, &tracing_yaml(&col.url(), "http", ""), &[]).await;
    for _ in 0..5 {
        let t0 = Instant::now();
        send(&gw, &[]).await;
        assert!(t0.elapsed() < Duration::from_secs(2));
    }
    col.wait_for_exports(1, WAIT).await.unwrap();
    gw.wait_for_log("OTLP collector unavailable", WAIT)
        .await
        .unwrap();
    let t0 = Instant::now();
    while metric(&gw, "sluice_otel_spans_dropped_total").await < 1.0 {
        assert!(t0.elapsed() < WAIT, "no drops counted");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    col.fail_with(None);
    send(&gw, &[]).await;
    col.wait_for("spans after recovery", WAIT, |s| {
        s.iter().any(|x| x.kind == 3)
    })
    .await
    .unwrap();
    gw.wait_for_log("OTLP collector reachable again", WAIT)
        .await
        .unwrap();
}

#[tokio::test]
async fn env_headers_and_fields_reach_the_collector() {
    let up = FakeUpstream::plain().await;
    let col = Collector::start().await;
    let dir = tempfile::tempdir().unwrap();
    let extra = "    headers:\n      x-tenant: $TENANT\n    fields:\n      add:\n        span.name: '\"gateway\"'\n        team: 'request.headers[\"x-team\"]'\n        provider: llm.provider\n      remove: [gen_ai.request.temperature]\n";
    let gw = traced_gateway(
        dir.path(),
        &up,
        &tracing_yaml(&col.url(), "http", extra),
        &[
            ("TENANT", "acme-secret-tenant"),
            (
                "OTEL_EXPORTER_OTLP_HEADERS",
                "authorization=Bearer%20env-token",
            ),
            ("OTEL_SERVICE_NAME", "edge-gw"),
        ],
    )
    .await;
    send(&gw, &[("x-team", "blue")]).await;
    let spans = col
        .wait_for("client span", WAIT, |s| s.iter().any(|x| x.kind == 3))
        .await
        .unwrap();
    let headers = col.last_headers();
    let get = |n: &str| {
        headers
            .iter()
            .find(|(k, _)| k == n)
            .map(|(_, v)| v.as_str())
    };
    assert_eq!(get("x-tenant"), Some("acme-secret-tenant"));
    assert_eq!(get("authorization"), Some("Bearer env-token"));
    let server = one(&spans, 2);
    assert_eq!(server.name, "gateway");
    assert_eq!(server.str("team"), Some("blue"));
    assert_eq!(server.str("provider"), Some("anthropic"));
    assert_eq!(server.resource["service.name"].as_str(), Some("edge-gw"));
    assert!(one(&spans, 3).attr("gen_ai.request.temperature").is_none());
    // The header value is a secret: GET /config redacts it.
    let cfg = TestClient::new().get(&gw.admin_url("/config")).await.text();
    assert!(!cfg.contains("acme-secret-tenant"), "{cfg}");
    assert!(cfg.contains("tracing"), "{cfg}");
}

#[tokio::test]
async fn reload_switches_collectors_and_refuses_a_bad_tracing_config() {
    let up = FakeUpstream::plain().await;
    let a = Collector::start().await;
    let b = Collector::start().await;
    let dir = tempfile::tempdir().unwrap();
    let gw = traced_gateway(dir.path(), &up, &tracing_yaml(&a.url(), "http", ""), &[]).await;
    send(&gw, &[]).await;
    a.wait_for("a span at A", WAIT, |s| s.iter().any(|x| x.kind == 3))
        .await
        .unwrap();

    write(
        dir.path(),
        "tracing.yaml",
        &tracing_yaml(&b.url(), "grpc", ""),
    );
    gw.send_signal_hup().unwrap();
    gw.wait_for_log("config reloaded", WAIT).await.unwrap();
    send(&gw, &[]).await;
    b.wait_for("a span at B", WAIT, |s| s.iter().any(|x| x.kind == 3))
        .await
        .unwrap();

    write(
        dir.path(),
        "tracing.yaml",
        &format!(
            "config:\n  tracing:\n    otlpEndpoint: {}\n    randomSampling: 'request.headers[\"x\"] == \"y\"'\n",
            a.url()
        ),
    );
    gw.send_signal_hup().unwrap();
    gw.wait_for_log("config reload refused", WAIT)
        .await
        .unwrap();
    assert!(gw.logs().contains("randomSampling"), "{}", gw.logs());
    send(&gw, &[]).await;
    b.wait_for("a second trace at B", WAIT, |s| {
        s.iter().filter(|x| x.kind == 3).count() >= 2
    })
    .await
    .unwrap();
}

/// `content` on: the answer content is the masked text the client got,
/// never the address the upstream sent; the prompt is recorded too.
#[tokio::test]
async fn content_opt_in_records_the_masked_answer_only() {
    let up = FakeUpstream::plain().await;
    up.set_script(Script::text("Write to bob@example.com today."));
    let col = Collector::start().await;
    let dir = tempfile::tempdir().unwrap();
    let serving = serving(dir.path(), up.addr());
    let mask = write(
        dir.path(),
        "mask.yaml",
        "- name: mask-all\n  policies:\n    outputFilter: {maskPatterns: [email]}\n",
    );
    let t = write(
        dir.path(),
        "tracing.yaml",
        &tracing_yaml(&col.url(), "http", "    content:\n      enabled: true\n"),
    );
    let gw = gateway(&[&serving, &mask, &t], &[4060], &[], &[]).await;
    let answer = send(&gw, &[]).await.text();
    assert!(
        answer.contains("<EMAIL>") && !answer.contains("bob@example.com"),
        "{answer}"
    );
    let spans = col
        .wait_for("client span", WAIT, |s| s.iter().any(|x| x.kind == 3))
        .await
        .unwrap();
    let client = one(&spans, 3);
    let out = client
        .str("gen_ai.output.messages")
        .expect("gen_ai.output.messages");
    let out: serde_json::Value = serde_json::from_str(out).unwrap();
    assert_eq!(out[0]["role"], "assistant");
    assert_eq!(
        out[0]["parts"][0]["content"], "Write to <EMAIL> today.",
        "{out}"
    );
    assert_eq!(out[0]["finish_reason"], "end_turn");
    let input: serde_json::Value =
        serde_json::from_str(client.str("gen_ai.input.messages").expect("input")).unwrap();
    assert_eq!(input[0]["content"], "hi", "{input}");
    for s in &spans {
        for v in s.attrs.values() {
            assert!(!format!("{v:?}").contains("bob@"), "{s:#?}");
        }
    }
}

/// A masking layer that matches `/claude` only passes the config check (its
/// path is resolved per request), but a `/codex` request, which no masking
/// policy ran on, records no content at all.
#[tokio::test]
async fn content_is_not_recorded_where_no_masking_ran() {
    let up = FakeUpstream::plain().await;
    up.set_script(Script::text("Write to bob@example.com today."));
    let col = Collector::start().await;
    let dir = tempfile::tempdir().unwrap();
    let serving = serving(dir.path(), up.addr());
    let t = write(
        dir.path(),
        "tracing.yaml",
        &tracing_yaml(&col.url(), "http", "    content:\n      enabled: true\n"),
    );
    let gw = gateway(
        &[&serving, &config("output-filter.yaml"), &t],
        &[4060],
        &[],
        &[],
    )
    .await;
    let r = TestClient::new()
        .post_json(
            &gw.url(4060, "/codex/v1/chat/completions"),
            &h(&[("authorization", "Bearer k")]),
            &json!({"model": "gpt-4o", "messages": [{"role": "user", "content": "hi"}]}),
        )
        .await;
    assert_eq!(r.status, 200, "{}", r.text());
    let spans = col
        .wait_for("client span", WAIT, |s| s.iter().any(|x| x.kind == 3))
        .await
        .unwrap();
    let client = one(&spans, 3);
    assert!(
        client.attr("gen_ai.output.messages").is_none(),
        "{client:#?}"
    );
    assert!(
        client.attr("gen_ai.input.messages").is_none(),
        "{client:#?}"
    );
}

/// `content` without masking on every route, and without
/// `allowUnmasked: true`, is refused naming file, line and key.
#[test]
fn validate_refuses_content_without_masking() {
    let dir = tempfile::tempdir().unwrap();
    let serving = serving(dir.path(), "127.0.0.1:9".parse().unwrap());
    let tracing = |extra: &str| {
        write(
            dir.path(),
            "tracing.yaml",
            &format!(
                "config:\n  tracing:\n    otlpEndpoint: http://c:4317\n    content:\n      enabled: true\n{extra}"
            ),
        )
    };
    let validate = |files: &[&str]| {
        let mut args = vec!["validate"];
        for f in files {
            args.extend(["--config", f]);
        }
        let out = sluice_testkit::gateway::run(std::path::Path::new(BIN), &args, &[]);
        (
            out.status.success(),
            format!(
                "{}{}",
                String::from_utf8_lossy(&out.stdout),
                String::from_utf8_lossy(&out.stderr)
            ),
        )
    };
    let t = tracing("");
    let (ok, text) = validate(&[&serving, &t]);
    assert!(!ok, "{text}");
    assert!(
        text.contains(&format!("{t}:5:7: config.tracing.content:"))
            && text.contains("claude-agent")
            && text.contains("allowUnmasked"),
        "{text}"
    );
    let t = tracing("      allowUnmasked: true\n");
    let (ok, text) = validate(&[&serving, &t]);
    assert!(ok, "{text}");
}

/// SIGTERM right after a request: its spans, still waiting for their batch,
/// are sent before the process exits.
#[tokio::test]
async fn sigterm_flushes_queued_spans() {
    let Traced {
        up: _up,
        col,
        mut gw,
        _dir,
    } = Traced::start("http").await;
    send(&gw, &[]).await;
    wait_access_lines(&gw, 1, WAIT).await;
    gw.send_signal_term().unwrap();
    let status = gw.wait_exit(WAIT).await.expect("exited after SIGTERM");
    assert!(status.success(), "{status:?}\n{}", gw.logs());
    let spans = col.spans();
    assert!(
        spans.iter().any(|x| x.kind == 3) && spans.iter().any(|x| x.kind == 2),
        "spans lost at shutdown: {spans:#?}\n{}",
        gw.logs()
    );
}

#[test]
fn validate_names_file_line_and_key_of_refused_tracing_keys() {
    let dir = tempfile::tempdir().unwrap();
    let f = write(
        dir.path(),
        "t.yaml",
        "binds:\n- port: 4060\nconfig:\n  workerThreads: 2\n  tracing:\n    otlpEndpoint: http://c:4317\n    fields:\n      add:\n        x: 'llm.prompt.map('\n",
    );
    let out = sluice_testkit::gateway::run(
        std::path::Path::new(BIN),
        &["validate", "--config", &f],
        &[],
    );
    let text = String::from_utf8_lossy(&out.stdout);
    assert!(!out.status.success(), "{text}");
    assert!(
        text.contains(&format!("{f}:4:3: config.workerThreads:"))
            && text.contains("not supported yet"),
        "{text}"
    );
    assert!(
        text.contains(&format!("{f}:9:12: config.tracing.fields.add.x:"))
            && text.contains("invalid CEL expression"),
        "{text}"
    );
}

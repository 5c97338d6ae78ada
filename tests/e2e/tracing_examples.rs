//! agentgateway's own tracing examples (`examples/llm-telemetry/tracing/`,
//! copied unchanged into `config/agentgateway/tracing/`): they validate,
//! and their CEL fields, `flattenRecursive(llm.prompt)` included, reach a
//! real OTLP receiver, holding only what output masking let through.

use crate::common::*;
use serde_json::json;
use sluice_testkit::client::TestClient;
use sluice_testkit::gcp::FakeGemini;
use sluice_testkit::otlp::{Collector, ReceivedSpan};
use sluice_testkit::Script;
use std::time::Duration;

const EXAMPLES: [&str; 4] = ["langfuse", "openllmetry", "otel", "phoenix"];

fn example(name: &str) -> String {
    std::fs::read_to_string(format!(
        "{}/../config/agentgateway/tracing/{name}.yaml",
        env!("CARGO_MANIFEST_DIR")
    ))
    .unwrap()
}

#[test]
fn agentgateway_tracing_examples_validate_unchanged() {
    for name in EXAMPLES {
        let path = format!(
            "{}/../config/agentgateway/tracing/{name}.yaml",
            env!("CARGO_MANIFEST_DIR")
        );
        let out = sluice_testkit::gateway::run(
            std::path::Path::new(BIN),
            &["validate", "--config", &path],
            &[("GEMINI_API_KEY", "g")],
        );
        let text = String::from_utf8_lossy(&out.stdout);
        assert!(out.status.success(), "{name}: {text}");
        assert!(text.contains("ok: 1 bind(s)"), "{name}: {text}");
    }
}

/// The Langfuse example, with only its addresses changed (the collector,
/// and the Gemini fake as the backend's host), beside an email-masking
/// policy layer when `mask`.
async fn langfuse(
    mask: bool,
) -> (
    FakeGemini,
    Collector,
    sluice_testkit::Gateway,
    tempfile::TempDir,
) {
    let gemini = FakeGemini::start("g-key").await;
    gemini.set_script(Script::text("Mail bob@example.com now."));
    let col = Collector::start().await;
    let yaml = example("langfuse")
        .replace("https://us.cloud.langfuse.com/api/public/otel", &col.url())
        .replace(
            "                  name: gemini\n",
            &format!(
                "                  name: gemini\n                  hostOverride: 'http://{}'\n",
                gemini.addr()
            ),
        );
    assert!(yaml.contains("hostOverride"), "the example changed shape");
    let dir = tempfile::tempdir().unwrap();
    let mut files = vec![write(dir.path(), "langfuse.yaml", &yaml)];
    if mask {
        files.push(write(
            dir.path(),
            "mask.yaml",
            "- name: mask\n  policies:\n    outputFilter: {maskPatterns: [email]}\n",
        ));
    }
    let files: Vec<&str> = files.iter().map(String::as_str).collect();
    let gw = gateway(&files, &[3000], &[], &[("GEMINI_API_KEY", "g-key")]).await;
    (gemini, col, gw, dir)
}

async fn chat(gw: &sluice_testkit::Gateway) -> String {
    let r = tokio::time::timeout(
        Duration::from_secs(10),
        TestClient::new().post_json(
            &gw.url(3000, "/v1/chat/completions"),
            &h(&[("authorization", "Bearer client")]),
            &json!({"model": "gpt-4o", "messages": [{"role": "user", "content": "hi there"}]}),
        ),
    )
    .await
    .expect("answered within 10 s");
    assert_eq!(r.status, 200, "{}", r.text());
    r.text()
}

async fn server_span(col: &Collector) -> ReceivedSpan {
    let spans = col
        .wait_for("server span", Duration::from_secs(15), |s| {
            s.iter().any(|x| x.kind == 2)
        })
        .await
        .unwrap();
    spans.into_iter().find(|x| x.kind == 2).unwrap()
}

#[tokio::test]
async fn langfuse_example_exports_its_fields_without_unmasked_content() {
    let (_g, col, gw, _dir) = langfuse(false).await;
    let answer = chat(&gw).await;
    assert!(answer.contains("bob@example.com"), "{answer}");
    let s = server_span(&col).await;
    assert_eq!(s.name, "openai.chat", "{s:#?}");
    assert_eq!(s.str("gen_ai.system"), Some("gcp.gemini"), "{s:#?}");
    assert!(s.int("gen_ai.usage.prompt_tokens").is_some(), "{s:#?}");
    // No output masking on this route: the prompt and the answer are not
    // recorded, though the example asks for them.
    for (k, v) in &s.attrs {
        assert!(
            !k.starts_with("gen_ai.prompt") && !k.starts_with("gen_ai.completion"),
            "{k} recorded on an unmasked route: {v:?}"
        );
    }
}

#[tokio::test]
async fn langfuse_example_records_flattened_masked_content() {
    let (_g, col, gw, _dir) = langfuse(true).await;
    let answer = chat(&gw).await;
    assert!(
        answer.contains("<EMAIL>") && !answer.contains("bob@"),
        "{answer}"
    );
    let s = server_span(&col).await;
    assert_eq!(s.str("gen_ai.prompt.0.role"), Some("user"), "{s:#?}");
    assert_eq!(s.str("gen_ai.prompt.0.content"), Some("hi there"), "{s:#?}");
    assert_eq!(
        s.str("gen_ai.completion.0.role"),
        Some("assistant"),
        "{s:#?}"
    );
    assert_eq!(
        s.str("gen_ai.completion.0.content"),
        Some("Mail <EMAIL> now."),
        "{s:#?}"
    );
    for v in s.attrs.values() {
        assert!(!format!("{v:?}").contains("bob@"), "{s:#?}");
    }
}

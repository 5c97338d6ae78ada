//! Claude Code through a `bedrock` backend: Anthropic Messages in, SigV4
//! signed InvokeModel / InvokeModelWithResponseStream / CountTokens out, and
//! Bedrock's event-stream answers back as Anthropic SSE, event by event.
//! The fake recomputes every signature with the test's keys.

use crate::common::*;
use serde_json::json;
use sluice_testkit::client::bodies::{self, claude_code_headers, claude_code_request_with};
use sluice_testkit::client::TestClient;
use sluice_testkit::upstream::bedrock::{BedrockOp, BedrockScript, FakeBedrock};
use sluice_testkit::Gateway;
use std::time::Duration;

const AKID: &str = "AKIDSLUICETEST";
const SECRET: &str = "wJalrXUtnFEMI/K7MDENG/bPxRfiCYEXAMPLEKEY";
const MODEL: &str = "us.anthropic.claude-sonnet-4-5-20250929-v1:0";

/// `/claude` to Bedrock with the environment's credentials, behind the
/// guide's output masking layer.
fn route(fake: &FakeBedrock, auth: &str) -> String {
    format!(
        "binds:\n- port: 4060\nroutes:
- name: claude-bedrock
  matches:
  - path: {{pathPrefix: /claude}}
  policies:
    urlRewrite: {{path: {{prefix: /}}}}
    backendAuth: {auth}
  backends:
  - ai:
      name: bedrock
      provider: {{bedrock: {{region: us-east-1, model: '{MODEL}'}}}}
      hostOverride: 'http://{}'
",
        fake.addr()
    )
}

async fn start(
    fake: &FakeBedrock,
    auth: &str,
    env: &[(&str, &str)],
) -> (Gateway, tempfile::TempDir) {
    let dir = tempfile::tempdir().unwrap();
    let r = write(dir.path(), "bedrock.yaml", &route(fake, auth));
    let gw = gateway(&[&r, &config("output-filter.yaml")], &[4060], &[], env).await;
    (gw, dir)
}

fn headers() -> Vec<(String, String)> {
    let mut h = claude_code_headers();
    // What a client might send to steer or forge the upstream's auth.
    h.push(("x-api-key".into(), "client-key".into()));
    h.push(("x-amz-date".into(), "20000101T000000Z".into()));
    h.push(("x-amz-security-token".into(), "forged".into()));
    h
}

#[tokio::test]
async fn claude_code_streams_through_bedrock_masked_event_by_event() {
    let fake = FakeBedrock::start(AKID, SECRET).await;
    fake.set_script(
        BedrockScript::default()
            .deltas(["Mail bob@exam", "ple.com", " now"])
            .cache_tokens(90, 5)
            .event_delay(Duration::from_millis(30)),
    );
    let env = [
        ("AWS_ACCESS_KEY_ID", AKID),
        ("AWS_SECRET_ACCESS_KEY", SECRET),
    ];
    let (gw, _dir) = start(&fake, "{aws: {}}", &env).await;
    let url = gw.url(4060, &format!("/claude{}", bodies::CLAUDE_CODE_PATH));
    let stream = TestClient::new()
        .stream_sse_full(&url, &headers(), &claude_code_request_with("Who?"))
        .await;
    assert_eq!(
        stream.status,
        200,
        "{}",
        String::from_utf8_lossy(&stream.raw)
    );
    assert!(stream.error.is_none(), "{:?}", stream.error);
    assert!(stream
        .header("content-type")
        .is_some_and(|c| c.starts_with("text/event-stream")));
    let names = stream.names();
    assert_eq!(
        names.first().map(String::as_str),
        Some("message_start"),
        "{names:?}"
    );
    assert_eq!(
        names.last().map(String::as_str),
        Some("message_stop"),
        "{names:?}"
    );
    let text: String = stream
        .events
        .iter()
        .filter(|(_, e)| e.event.as_deref() == Some("content_block_delta"))
        .filter_map(|(_, e)| e.json()["delta"]["text"].as_str().map(str::to_string))
        .collect();
    assert_eq!(text, "Mail <EMAIL> now", "masking holds through Bedrock");
    let all: String = stream.events.iter().map(|(_, e)| e.data.clone()).collect();
    assert!(!all.contains("invocationMetrics"), "{all}");
    // Event by event: the events reached the client spread as they were sent.
    let first = stream.events.first().unwrap().0;
    let last = stream.events.last().unwrap().0;
    assert!(
        last.duration_since(first) >= Duration::from_millis(60),
        "held back"
    );

    let req = fake.last_request().unwrap();
    assert!(req.signature_ok(), "{:?}", req.signature);
    assert_eq!(req.op, BedrockOp::InvokeStream);
    assert_eq!(req.model_id.as_deref(), Some(MODEL), "the backend's model");
    assert_eq!(req.query, None, "Claude Code's ?beta=true is not Bedrock's");
    assert!(
        req.header("x-api-key").is_none(),
        "the client's key stays here"
    );
    assert_ne!(req.header("x-amz-security-token"), Some("forged"));
    let body = req.json();
    assert_eq!(body["anthropic_version"], "bedrock-2023-05-31");
    assert!(body.get("model").is_none() && body.get("stream").is_none());
    assert!(
        body["messages"][0].to_string().contains("Who?"),
        "the prompt went as sent"
    );
    gw.wait_for_log("cache_read_tokens=90", Duration::from_secs(10))
        .await
        .unwrap();
    assert!(
        gw.logs().contains("aws.bedrock"),
        "provider label in the access log"
    );
}

#[tokio::test]
async fn whole_answers_token_counts_and_errors_in_anthropics_shape() {
    let fake = FakeBedrock::start(AKID, SECRET).await;
    fake.set_script(BedrockScript::default().deltas(["hello"]).count_tokens(42));
    let auth = format!("{{aws: {{accessKeyId: {AKID}, secretAccessKey: '{SECRET}'}}}}");
    let (gw, _dir) = start(&fake, &auth, &[]).await;
    let c = TestClient::new();
    let mut body = claude_code_request_with("Hi");
    body["stream"] = json!(false);
    let r = c
        .post_json(&gw.url(4060, "/claude/v1/messages"), &headers(), &body)
        .await;
    assert_eq!(r.status, 200, "{}", r.text());
    let v = r.json();
    assert_eq!(v["type"], "message", "{v}");
    assert_eq!(fake.last_request().unwrap().op, BedrockOp::Invoke);

    let r = c
        .post_json(
            &gw.url(4060, "/claude/v1/messages/count_tokens"),
            &headers(),
            &body,
        )
        .await;
    assert_eq!(r.status, 200, "{}", r.text());
    assert_eq!(r.json(), json!({"input_tokens": 42}));
    let req = fake.last_request().unwrap();
    assert!(req.signature_ok());
    assert_eq!(req.op, BedrockOp::CountTokens);
    assert!(req.anthropic_body()["messages"][0]
        .to_string()
        .contains("Hi"));

    fake.set_script(BedrockScript::default().throttle());
    let r = c
        .post_json(&gw.url(4060, "/claude/v1/messages"), &headers(), &body)
        .await;
    assert_eq!(r.status, 429, "{}", r.text());
    let v = r.json();
    assert_eq!(v["type"], "error", "{v}");
    assert_eq!(v["error"]["type"], "rate_limit_error", "{v}");

    // A mid-stream exception ends the stream with Anthropic's error event.
    fake.set_script(
        BedrockScript::default()
            .deltas(["a", "b", "c"])
            .exception_after(3, "modelStreamErrorException", "boom"),
    );
    let stream = c
        .stream_sse_full(
            &gw.url(4060, "/claude/v1/messages"),
            &headers(),
            &claude_code_request_with("Hi"),
        )
        .await;
    assert_eq!(stream.status, 200);
    assert_eq!(
        stream.names().last().map(String::as_str),
        Some("error"),
        "{:?}",
        stream.names()
    );
}

#[tokio::test]
async fn a_wrong_secret_or_missing_credentials_are_clear_errors() {
    let fake = FakeBedrock::start(AKID, SECRET).await;
    let auth = format!("{{aws: {{accessKeyId: {AKID}, secretAccessKey: not-the-secret}}}}");
    let (gw, _dir) = start(&fake, &auth, &[]).await;
    let mut body = claude_code_request_with("Hi");
    body["stream"] = json!(false);
    let r = TestClient::new()
        .post_json(&gw.url(4060, "/claude/v1/messages"), &headers(), &body)
        .await;
    assert_eq!(r.status, 403, "{}", r.text());
    assert_eq!(r.json()["type"], "error");
    assert!(!gw.logs().contains("not-the-secret"), "a secret was logged");

    // `aws: {}` without the environment's keys: refused at start, by name.
    let dir = tempfile::tempdir().unwrap();
    let cfg = write(dir.path(), "b.yaml", &route(&fake, "{aws: {}}"));
    let err = match try_gateway(&[&cfg], &[4060], &[], &[]).await {
        Ok(_) => panic!("started without AWS credentials"),
        Err(e) => e,
    };
    assert!(err.contains("AWS_ACCESS_KEY_ID"), "{err}");
}

#[tokio::test]
async fn the_model_list_comes_from_the_config_for_a_provider_without_one() {
    let fake = FakeBedrock::start(AKID, SECRET).await;
    let env = [
        ("AWS_ACCESS_KEY_ID", AKID),
        ("AWS_SECRET_ACCESS_KEY", SECRET),
    ];
    let dir = tempfile::tempdir().unwrap();
    let text = route(&fake, "{aws: {}}").replace(
        "    backendAuth: {aws: {}}\n",
        "    backendAuth: {aws: {}}\n    ai:\n      modelAliases: {sonnet: x, 'claude-*': y}\n",
    );
    let r = write(dir.path(), "bedrock.yaml", &text);
    let gw = gateway(&[&r], &[4060], &[], &env).await;
    let c = TestClient::new();
    let r = c
        .get_with(
            &gw.url(4060, "/claude/v1/models"),
            &[("anthropic-version", "2023-06-01")],
        )
        .await;
    assert_eq!(r.status, 200, "{}", r.text());
    let v = r.json();
    let ids: Vec<&str> = v["data"]
        .as_array()
        .unwrap()
        .iter()
        .filter_map(|m| m["id"].as_str())
        .collect();
    assert_eq!(ids, [MODEL, "sonnet"], "{v}");
    assert_eq!(v["data"][0]["type"], "model");
    let r = c.get(&gw.url(4060, "/claude/v1/models")).await;
    assert_eq!(r.json()["object"], "list");
    assert!(fake.requests().is_empty(), "Bedrock was not asked");
}

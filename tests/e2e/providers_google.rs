//! Claude Code through Vertex AI (Claude models by `rawPredict` and
//! `streamRawPredict`, authenticated by a service account whose `token_uri`
//! the test serves), Chat Completions for Gemini models on Vertex and on the
//! Gemini API, and Azure OpenAI's deployment paths. Google's error envelope
//! comes back in the client's own shape.

use crate::common::*;
use serde_json::json;
use sluice_testkit::client::bodies::{self, claude_code_headers, claude_code_request_with};
use sluice_testkit::client::TestClient;
use sluice_testkit::gcp::{FakeGemini, FakeTokenEndpoint, FakeVertex};
use sluice_testkit::{FakeUpstream, Gateway};

struct Vertex {
    tokens: FakeTokenEndpoint,
    vertex: FakeVertex,
    gw: Gateway,
    _dir: tempfile::TempDir,
}

async fn vertex() -> Vertex {
    let tokens = FakeTokenEndpoint::start().await;
    let vertex = FakeVertex::start(&tokens).await;
    let dir = tempfile::tempdir().unwrap();
    let sa = tokens.write_service_account(dir.path());
    let cfg = format!(
        "binds:\n- port: 4060\nroutes:
- name: claude-vertex
  matches:
  - path: {{pathPrefix: /claude}}
  policies:
    urlRewrite: {{path: {{prefix: /}}}}
    backendAuth: {{gcp: {{credential: {{file: '{}'}}}}}}
  backends:
  - ai:
      name: vertex
      provider: {{vertex: {{projectId: proj-1, region: us-east5}}}}
      hostOverride: 'http://{}'
",
        sa.display(),
        vertex.addr()
    );
    let r = write(dir.path(), "vertex.yaml", &cfg);
    let gw = gateway(&[&r], &[4060], &[], &[]).await;
    Vertex {
        tokens,
        vertex,
        gw,
        _dir: dir,
    }
}

#[tokio::test]
async fn claude_code_through_vertex_with_a_service_account() {
    let v = vertex().await;
    let mut headers = claude_code_headers();
    headers.push(("x-api-key".into(), "client-key".into()));
    let url =
        v.gw.url(4060, &format!("/claude{}", bodies::CLAUDE_CODE_PATH));
    let mut body = claude_code_request_with("Hi");
    body["model"] = json!("claude-sonnet-4-5-20250929");
    let c = TestClient::new();
    for _ in 0..2 {
        let stream = c.stream_sse_full(&url, &headers, &body).await;
        assert_eq!(
            stream.status,
            200,
            "{}",
            String::from_utf8_lossy(&stream.raw)
        );
        assert_eq!(
            stream.names().last().map(String::as_str),
            Some("message_stop")
        );
    }
    let seen = v.vertex.authorized_requests(&v.tokens);
    assert_eq!(seen.len(), 2, "both went with an issued token");
    assert_eq!(
        v.tokens.issued_count(),
        1,
        "one token exchange, then cached"
    );
    let req = seen.last().unwrap();
    assert_eq!(
        req.path_and_query(),
        "/v1/projects/proj-1/locations/us-east5/publishers/anthropic/models/claude-sonnet-4-5@20250929:streamRawPredict"
    );
    assert!(
        req.header("x-api-key").is_none(),
        "the client's key stays here"
    );
    let sent = req.json();
    assert_eq!(sent["anthropic_version"], "vertex-2023-10-16");
    assert!(sent.get("model").is_none());
    assert_eq!(sent["stream"], true);

    // Token counting, and a Chat Completions request for a Claude model
    // (Vertex serves Claude only in Anthropic's format): refused here.
    let r = c
        .post_json(
            &v.gw.url(4060, "/claude/v1/messages/count_tokens"),
            &headers,
            &body,
        )
        .await;
    assert_eq!(r.status, 200, "{}", r.text());
    assert!(v
        .vertex
        .last_request()
        .unwrap()
        .path_and_query()
        .ends_with("/count-tokens:rawPredict"));
    let before = v.vertex.requests().len();
    let r = c
        .post_json(
            &v.gw.url(4060, "/claude/v1/chat/completions"),
            &[("content-type", "application/json")],
            &json!({"model": "claude-sonnet-4-5", "messages": [{"role": "user", "content": "hi"}]}),
        )
        .await;
    assert_eq!(r.status, 400, "{}", r.text());
    assert!(
        r.json()["error"]["message"].is_string(),
        "OpenAI's shape: {}",
        r.text()
    );
    assert_eq!(v.vertex.requests().len(), before);
}

#[tokio::test]
async fn a_token_endpoint_that_fails_is_a_clear_503_and_no_request() {
    let v = vertex().await;
    v.tokens.fail_next(500, "backend_error");
    let mut body = claude_code_request_with("Hi");
    body["stream"] = json!(false);
    body["model"] = json!("claude-sonnet-4-5");
    let r = TestClient::new()
        .post_json(
            &v.gw.url(4060, "/claude/v1/messages"),
            &claude_code_headers(),
            &body,
        )
        .await;
    assert_eq!(r.status, 503, "{}", r.text());
    assert_eq!(r.json()["type"], "error");
    assert!(v.vertex.requests().is_empty());
    assert!(
        !v.gw.logs().contains("BEGIN PRIVATE KEY"),
        "key material logged"
    );
}

#[tokio::test]
async fn gemini_and_azure_chat_completions() {
    let gemini = FakeGemini::start("g-key").await;
    let azure = FakeUpstream::plain().await;
    let dir = tempfile::tempdir().unwrap();
    let cfg = format!(
        "binds:\n- port: 4060\nroutes:
- name: gemini
  matches:
  - path: {{pathPrefix: /gemini}}
  policies:
    urlRewrite: {{path: {{prefix: /}}}}
    backendAuth: {{key: $GEMINI_KEY}}
  backends:
  - ai: {{name: g, provider: {{gemini: {{model: gemini-2.5-flash}}}}, hostOverride: 'http://{}'}}
- name: azure
  matches:
  - path: {{pathPrefix: /azure}}
  policies:
    urlRewrite: {{path: {{prefix: /}}}}
    backendAuth: {{key: az-key}}
  backends:
  - ai: {{name: a, provider: {{azure: {{resourceName: acme, resourceType: openAI, apiVersion: 2024-10-21}}}}, hostOverride: 'http://{}'}}
",
        gemini.addr(),
        azure.addr()
    );
    let r = write(dir.path(), "g.yaml", &cfg);
    let gw = gateway(&[&r], &[4060], &[], &[("GEMINI_KEY", "g-key")]).await;
    let c = TestClient::new();
    let chat = json!({"model": "gpt-4o", "messages": [{"role": "user", "content": "hi"}]});
    let auth = [("authorization", "Bearer client-token")];

    let r = c
        .post_json(&gw.url(4060, "/gemini/v1/chat/completions"), &auth, &chat)
        .await;
    assert_eq!(r.status, 200, "{}", r.text());
    let req = gemini.last_request().unwrap();
    assert_eq!(req.path_and_query(), "/v1beta/openai/chat/completions");
    assert_eq!(req.header("authorization"), Some("Bearer g-key"));
    assert_eq!(req.json()["model"], "gemini-2.5-flash");
    // Claude Code's format is not Gemini's: translated to Chat Completions
    // (its stray `system`-role message is refused first, as Anthropic would).
    let before = gemini.requests().len();
    let mut cc = claude_code_request_with("hi");
    let r = c
        .post_json(
            &gw.url(4060, "/gemini/v1/messages"),
            &claude_code_headers(),
            &cc,
        )
        .await;
    assert_eq!(r.status, 400, "{}", r.text());
    assert_eq!(r.json()["type"], "error");
    assert_eq!(gemini.requests().len(), before);
    cc["messages"].as_array_mut().unwrap().truncate(1);
    let r = c
        .post_json(
            &gw.url(4060, "/gemini/v1/messages"),
            &claude_code_headers(),
            &cc,
        )
        .await;
    assert_eq!(r.status, 200, "{}", r.text());
    assert!(r.text().contains("event: message_stop"), "{}", r.text());
    let req = gemini.last_request().unwrap();
    assert_eq!(req.path_and_query(), "/v1beta/openai/chat/completions");
    assert_eq!(req.json()["model"], "gemini-2.5-flash");
    assert_eq!(req.json()["reasoning_effort"], "high");

    let r = c
        .post_json(&gw.url(4060, "/azure/v1/chat/completions"), &auth, &chat)
        .await;
    assert_eq!(r.status, 200, "{}", r.text());
    let req = azure.last_request().unwrap();
    assert_eq!(
        req.path_and_query(),
        "/openai/deployments/gpt-4o/chat/completions?api-version=2024-10-21"
    );
    assert_eq!(req.header("api-key"), Some("az-key"));
    assert!(
        req.header("authorization").is_none(),
        "the client's token stays here"
    );
    // A deployment name that would leave its path segment: refused.
    let r = c
        .post_json(
            &gw.url(4060, "/azure/v1/chat/completions"),
            &auth,
            &json!({"model": "../../admin", "messages": []}),
        )
        .await;
    assert_eq!(r.status, 400, "{}", r.text());
}

/// Azure with an Entra ID app secret (agentgateway's
/// `azure.explicitConfig.clientSecret`): a client-credentials token from the
/// authority (`AZURE_AUTHORITY_HOST`, as the Azure SDKs read it), cached,
/// sent as the bearer; the client's own credential never.
#[tokio::test]
async fn azure_with_an_entra_app_secret() {
    use sluice_testkit::gcp::{TEST_AZURE_CLIENT_ID, TEST_AZURE_CLIENT_SECRET, TEST_AZURE_TENANT};
    let tokens = FakeTokenEndpoint::start().await;
    let azure = FakeUpstream::plain().await;
    let dir = tempfile::tempdir().unwrap();
    let route = |secret: &str| {
        format!(
            "binds:\n- port: 4060\nroutes:
- name: azure
  policies:
    backendAuth:
      azure:
        explicitConfig:
          clientSecret: {{tenant_id: {TEST_AZURE_TENANT}, client_id: {TEST_AZURE_CLIENT_ID}, client_secret: {secret}}}
  backends:
  - ai: {{name: a, provider: {{azure: {{resourceName: acme, resourceType: openAI}}}}, hostOverride: 'http://{}'}}
",
            azure.addr()
        )
    };
    let authority = format!("http://{}", tokens.addr());
    let env = [("AZURE_AUTHORITY_HOST", authority.as_str())];
    let cfg = write(dir.path(), "a.yaml", &route(TEST_AZURE_CLIENT_SECRET));
    let gw = gateway(&[&cfg], &[4060], &[], &env).await;
    let c = TestClient::new();
    let chat = json!({"model": "gpt-4o", "messages": [{"role": "user", "content": "hi"}]});
    let auth = [("authorization", "Bearer client-token")];
    for _ in 0..2 {
        let r = c
            .post_json(&gw.url(4060, "/v1/chat/completions"), &auth, &chat)
            .await;
        assert_eq!(r.status, 200, "{}", r.text());
    }
    let req = azure.last_request().unwrap();
    assert_eq!(req.path_and_query(), "/openai/v1/chat/completions");
    let token = req
        .header("authorization")
        .and_then(|v| v.strip_prefix("Bearer "))
        .unwrap()
        .to_string();
    assert!(
        tokens.is_valid(&token),
        "an Entra token the authority issued"
    );
    assert_eq!(tokens.issued_count(), 1, "cached");
    assert!(req.header("api-key").is_none());
    assert!(
        !gw.logs().contains(TEST_AZURE_CLIENT_SECRET),
        "the secret was logged"
    );

    // A wrong secret: no token, a 503, nothing sent.
    let before = azure.requests().len();
    let cfg = write(dir.path(), "b.yaml", &route("wrong-secret"));
    let gw = gateway(&[&cfg], &[4060], &[], &env).await;
    let r = c
        .post_json(&gw.url(4060, "/v1/chat/completions"), &auth, &chat)
        .await;
    assert_eq!(r.status, 503, "{}", r.text());
    assert!(r.json()["error"]["message"].is_string());
    assert_eq!(azure.requests().len(), before);
}

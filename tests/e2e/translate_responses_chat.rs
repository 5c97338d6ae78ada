//! OpenAI Responses → Chat Completions through the real binary, for a
//! backend that speaks Chat alone (Gemini's OpenAI-compatible endpoint):
//! the request goes Responses → Messages → Chat, the answer back.

use crate::common::*;
use serde_json::{json, Value};
use sluice_testkit::client::TestClient;
use sluice_testkit::gcp::FakeGemini;
use sluice_testkit::Script;

#[tokio::test]
async fn translate_responses_to_chat_on_gemini() {
    let gemini = FakeGemini::start("g-key").await;
    let dir = tempfile::tempdir().unwrap();
    let cfg = format!(
        "binds:\n- port: 4060\nroutes:
- name: gemini
  matches:
  - path: {{pathPrefix: /gemini}}
  policies:
    urlRewrite: {{path: {{prefix: /}}}}
    backendAuth: {{key: g-key}}
  backends:
  - ai: {{name: g, provider: {{gemini: {{model: gemini-2.5-flash}}}}, hostOverride: 'http://{}'}}
",
        gemini.addr()
    );
    let cfg = write(dir.path(), "g.yaml", &cfg);
    let gw = gateway(&[&cfg], &[4060], &[], &[]).await;
    let c = TestClient::new();
    let url = gw.url(4060, "/gemini/v1/responses");
    let auth = [("authorization", "Bearer client")];
    let body = json!({"model": "gpt-5", "instructions": "Be brief.", "input": "hi",
        "reasoning": {"effort": "high"}});

    gemini.set_script(Script::text("Hello from Gemini.").tokens(9, 4));
    let r = c.post_json(&url, &auth, &body).await;
    assert_eq!(r.status, 200, "{}", r.text());
    let v = r.json();
    assert_eq!(v["object"], "response");
    assert_eq!(v["output"][0]["content"][0]["text"], "Hello from Gemini.");
    assert_eq!(v["usage"]["input_tokens"], 9);
    let req = gemini.last_request().unwrap();
    assert_eq!(req.path_and_query(), "/v1beta/openai/chat/completions");
    let b = req.json();
    assert_eq!(b["model"], "gemini-2.5-flash");
    assert_eq!(b["reasoning_effort"], "high");
    assert!(b.get("max_completion_tokens").is_none(), "{b}");
    assert_eq!(
        b["messages"],
        json!([{"role": "system", "content": "Be brief."}, {"role": "user", "content": "hi"}])
    );

    let mut streamed = body.clone();
    streamed["stream"] = json!(true);
    streamed["max_output_tokens"] = json!(500);
    gemini.set_script(Script::default().deltas(["Hel", "lo"]));
    let st = c.stream_sse_full(&url, &auth, &streamed).await;
    assert_eq!(st.status, 200, "{}", String::from_utf8_lossy(&st.raw));
    let evs: Vec<Value> = st.events.iter().map(|(_, e)| e.json()).collect();
    let text: String = evs
        .iter()
        .filter(|e| e["type"] == "response.output_text.delta")
        .map(|e| e["delta"].as_str().unwrap().to_owned())
        .collect();
    assert_eq!(text, "Hello");
    assert_eq!(evs.last().unwrap()["type"], "response.completed");
    assert_eq!(
        gemini.last_request().unwrap().json()["max_completion_tokens"],
        500
    );

    gemini.set_script(Script::default().status(
        503,
        r#"{"error":{"message":"busy","type":"server_error","param":null,"code":null}}"#,
    ));
    let r = c.post_json(&url, &auth, &body).await;
    assert_eq!(r.status, 503, "{}", r.text());
    assert_eq!(r.json()["error"]["message"], "busy");
}

//! JSON bodies: every text the client receives (or, for `maskRequest`, the
//! model reads) goes through the SDK walker (`sluice_sdk::ai::walk`): answer
//! text, thinking, tool-use input string values, OpenAI tool-call
//! `arguments` (decoded, masked, re-encoded), refusals, Responses output
//! items and reasoning summaries. Ids, signatures, encrypted reasoning and
//! the other skip-listed fields are never rewritten, so nothing opaque is
//! corrupted.

use serde_json::Value;
use sluice_sdk::ai;

use crate::masker::Masker;

/// Mask every text of `v` in place; whether anything changed.
pub fn mask_value(m: &Masker, v: &mut Value) -> bool {
    let mut changed = false;
    ai::for_each_text_mut(v, &mut |s: &mut String| {
        if let std::borrow::Cow::Owned(o) = m.mask(s) {
            *s = o;
            changed = true;
        }
    });
    changed
}

/// Rewrite the texts of `body`; `None` when nothing changed (or the body is
/// not JSON), so untouched bodies are passed as they came.
pub fn rewrite(body: &[u8], m: &Masker) -> Option<Vec<u8>> {
    let mut v: Value = serde_json::from_slice(body).ok()?;
    if mask_value(m, &mut v) {
        serde_json::to_vec(&v).ok()
    } else {
        None
    }
}

/// Whether any text of `body` matches the masker's rules.
pub fn any_text(body: &[u8], m: &Masker) -> bool {
    let Ok(v) = serde_json::from_slice::<Value>(body) else {
        return false;
    };
    let mut hit = false;
    ai::for_each_text(&v, &mut |s| hit = hit || m.is_match(s));
    hit
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::masker::Rule;
    use serde_json::json;
    use sluice_sdk::pii::Builtin;

    fn email() -> Masker {
        Masker::new(vec![Rule::builtin(Builtin::Email)]).unwrap()
    }

    fn rw(v: Value) -> Value {
        serde_json::from_slice(&rewrite(v.to_string().as_bytes(), &email()).unwrap()).unwrap()
    }

    #[test]
    fn anthropic_answer_every_text() {
        let v = rw(
            json!({"id": "msg_a", "content": [{"type": "text", "text": "hi a@b.io"},
                {"type": "tool_use", "id": "t", "name": "Write", "input": {"content": "to a@b.io", "n": 1}},
                {"type": "thinking", "thinking": "mail a@b.io", "signature": "a@b.io"}],
                "usage": {"input_tokens": 1}}),
        );
        assert_eq!(v["content"][0]["text"], "hi <EMAIL>");
        assert_eq!(v["content"][1]["input"]["content"], "to <EMAIL>");
        assert_eq!(v["content"][1]["input"]["n"], 1);
        assert_eq!(v["content"][2]["thinking"], "mail <EMAIL>");
        assert_eq!(v["content"][2]["signature"], "a@b.io");
        assert_eq!(v["id"], "msg_a");
    }

    #[test]
    fn openai_answers_every_text() {
        let v = rw(
            json!({"id": "c", "choices": [{"index": 0, "message": {"role": "assistant",
                "content": "a@b.io", "refusal": "no a@b.io",
                "tool_calls": [{"id": "call", "function": {"name": "f", "arguments": "{\"to\":\"a@b.io\"}"}}]}}]}),
        );
        let msg = &v["choices"][0]["message"];
        assert_eq!(msg["content"], "<EMAIL>");
        assert_eq!(msg["refusal"], "no <EMAIL>");
        let args: Value = serde_json::from_str(
            msg["tool_calls"][0]["function"]["arguments"]
                .as_str()
                .unwrap(),
        )
        .unwrap();
        assert_eq!(args, json!({"to": "<EMAIL>"}));
        let v = rw(json!({"id": "resp_1", "output": [
                {"type": "reasoning", "id": "r", "summary": [{"type": "summary_text", "text": "s a@b.io"}], "encrypted_content": "a@b.io"},
                {"type": "message", "id": "m", "content": [{"type": "output_text", "text": "t a@b.io", "annotations": []}]},
                {"type": "function_call", "arguments": "{\"q\":\"a@b.io\"}", "call_id": "c"}]}));
        assert_eq!(v["output"][0]["summary"][0]["text"], "s <EMAIL>");
        assert_eq!(v["output"][0]["encrypted_content"], "a@b.io");
        assert_eq!(v["output"][1]["content"][0]["text"], "t <EMAIL>");
        assert_eq!(v["output"][2]["arguments"], "{\"q\":\"<EMAIL>\"}");
    }

    #[test]
    fn key_order_is_kept_and_untouched_bodies_pass() {
        let body = br#"{"z":1,"content":[{"type":"text","text":"a@b.io"}],"a":2}"#;
        assert_eq!(
            rewrite(body, &email()).unwrap(),
            br#"{"z":1,"content":[{"type":"text","text":"<EMAIL>"}],"a":2}"#
        );
        assert!(rewrite(b"not json", &email()).is_none());
        assert!(rewrite(br#"{"content":[{"type":"text","text":"X"}]}"#, &email()).is_none());
        assert!(any_text(
            br#"{"input":[{"type":"function_call_output","output":"a@b.io"}]}"#,
            &email()
        ));
    }
}

//! The prompt text a model sees, inside the request body shapes clients send.
//!
//! - Anthropic Messages: `system` (string or text blocks), `messages[].content`
//!   (string or blocks: `text`, and `tool_result` whose `content` is a string
//!   or text blocks — tool output is read by the model too).
//! - OpenAI Chat Completions: `messages[].content` (string or parts with `text`).
//! - OpenAI Responses: `instructions`, `input` (string, or items whose
//!   `content` is a string or `input_text`/`output_text` parts, and
//!   `function_call_output` items' `output`).
//! - Legacy completions / embeddings: `prompt`, `input` strings or string lists.
//!
//! Images, tool-call arguments, thinking blocks and other fields are not
//! prompt text and are not visited.

use crate::json::Json;

/// Call `f` on every prompt string, mutably (masking rewrites in place).
pub fn for_each_text(root: &mut Json, f: &mut dyn FnMut(&mut String)) {
    let Json::Object(fields) = root else { return };
    for (k, v) in fields.iter_mut() {
        match k.as_str() {
            "system" | "instructions" | "input" | "prompt" => container(v, f),
            "messages" => {
                if let Json::Array(msgs) = v {
                    for m in msgs {
                        if let Some(c) = m.get_mut("content") {
                            container(c, f);
                        }
                    }
                }
            }
            _ => {}
        }
    }
}

/// A string, a block, or a list of strings and blocks.
fn container(v: &mut Json, f: &mut dyn FnMut(&mut String)) {
    match v {
        Json::String(s) => f(s),
        Json::Array(items) => items.iter_mut().for_each(|i| container(i, f)),
        Json::Object(_) => block(v, f),
        _ => {}
    }
}

fn block(v: &mut Json, f: &mut dyn FnMut(&mut String)) {
    let Json::Object(fields) = v else { return };
    // Text parts/blocks carry `text`; message items and tool results carry
    // `content`; Responses function call outputs carry `output`.
    if let Some((_, Json::String(t))) = fields.iter_mut().find(|(k, _)| k == "text") {
        return f(t);
    }
    for (k, val) in fields.iter_mut() {
        match (k.as_str(), val) {
            ("content", c) => container(c, f),
            ("output", Json::String(s)) => f(s),
            _ => {}
        }
    }
}

/// Every prompt string, copied.
pub fn texts(root: &mut Json) -> Vec<String> {
    let mut out = Vec::new();
    for_each_text(root, &mut |s| out.push(s.clone()));
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    fn get(body: &str) -> Vec<String> {
        texts(&mut Json::parse(body.as_bytes()).unwrap())
    }

    #[test]
    fn anthropic() {
        assert_eq!(
            get(r#"{"model":"m","system":"S","messages":[{"role":"user","content":"hi"}]}"#),
            ["S", "hi"]
        );
        assert_eq!(
            get(
                r#"{"system":[{"type":"text","text":"S1"},{"type":"text","text":"S2"}],
              "messages":[{"role":"user","content":[{"type":"text","text":"a"},
                {"type":"image","source":{"type":"base64","data":"xx"}},
                {"type":"tool_result","tool_use_id":"t","content":[{"type":"text","text":"out"}]},
                {"type":"tool_result","tool_use_id":"u","content":"plain"}]},
               {"role":"assistant","content":[{"type":"thinking","thinking":"hmm"},
                {"type":"tool_use","id":"t","name":"x","input":{"text":"arg"}}]}]}"#
            ),
            ["S1", "S2", "a", "out", "plain"]
        );
    }

    #[test]
    fn openai_chat_and_responses() {
        assert_eq!(
            get(r#"{"messages":[{"role":"system","content":"sys"},
              {"role":"user","content":[{"type":"text","text":"q"},{"type":"image_url","image_url":{"url":"u"}}]},
              {"role":"assistant","content":null,"tool_calls":[]},
              {"role":"tool","tool_call_id":"c","content":"result"}]}"#),
            ["sys", "q", "result"]
        );
        assert_eq!(
            get(r#"{"instructions":"I","input":"just text"}"#),
            ["I", "just text"]
        );
        assert_eq!(
            get(
                r#"{"input":[{"type":"message","role":"user","content":[{"type":"input_text","text":"q"}]},
              {"role":"assistant","content":[{"type":"output_text","text":"a"}]},
              {"type":"function_call","arguments":"{}"},
              {"type":"function_call_output","call_id":"c","output":"o"}]}"#
            ),
            ["q", "a", "o"]
        );
        assert_eq!(get(r#"{"input":["e1","e2"],"model":"emb"}"#), ["e1", "e2"]);
    }
}

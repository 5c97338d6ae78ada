//! Value maps between the formats: finish reasons, usage, reasoning effort.

use serde_json::{json, Value};

/// OpenAI Chat `finish_reason` → Anthropic `stop_reason`.
pub fn stop_reason(finish_reason: Option<&str>) -> &'static str {
    match finish_reason {
        Some("length") => "max_tokens",
        Some("tool_calls") | Some("function_call") => "tool_use",
        Some("content_filter") => "refusal",
        _ => "end_turn",
    }
}

/// OpenAI Chat `usage` → Anthropic `usage`. OpenAI counts cached tokens
/// inside `prompt_tokens`; Anthropic's `input_tokens` excludes them.
pub fn usage(u: &Value) -> Value {
    let n = |v: &Value| v.as_u64().unwrap_or(0);
    let prompt = n(&u["prompt_tokens"]);
    let cached = n(&u["prompt_tokens_details"]["cached_tokens"]);
    json!({
        "input_tokens": prompt.saturating_sub(cached),
        "cache_creation_input_tokens": 0,
        "cache_read_input_tokens": cached,
        "output_tokens": n(&u["completion_tokens"]),
    })
}

/// Anthropic `thinking.budget_tokens` → OpenAI `reasoning_effort`.
pub fn reasoning_effort(budget_tokens: u64) -> &'static str {
    match budget_tokens {
        0..4096 => "low",
        4096..16384 => "medium",
        _ => "high",
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn cached_tokens_move_out_of_the_input() {
        let u = usage(&json!({"prompt_tokens": 100, "completion_tokens": 5,
            "prompt_tokens_details": {"cached_tokens": 60}}));
        assert_eq!(u["input_tokens"], 40);
        assert_eq!(u["cache_read_input_tokens"], 60);
        assert_eq!(u["output_tokens"], 5);
        assert_eq!(usage(&json!({}))["input_tokens"], 0);
    }

    #[test]
    fn finish_reasons_and_budgets_map() {
        assert_eq!(stop_reason(Some("stop")), "end_turn");
        assert_eq!(stop_reason(Some("length")), "max_tokens");
        assert_eq!(stop_reason(Some("tool_calls")), "tool_use");
        assert_eq!(stop_reason(Some("content_filter")), "refusal");
        assert_eq!(stop_reason(None), "end_turn");
        assert_eq!(reasoning_effort(1024), "low");
        assert_eq!(reasoning_effort(8000), "medium");
        assert_eq!(reasoning_effort(32000), "high");
    }
}

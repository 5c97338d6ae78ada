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

/// Anthropic requires `max_tokens`; OpenAI requests may leave it out.
pub const DEFAULT_MAX_TOKENS: u64 = 32_000;

/// Anthropic `stop_reason` → OpenAI Chat `finish_reason`.
pub fn finish_reason(stop_reason: Option<&str>) -> &'static str {
    match stop_reason {
        Some("max_tokens") | Some("model_context_window_exceeded") => "length",
        Some("tool_use") => "tool_calls",
        Some("refusal") => "content_filter",
        _ => "stop",
    }
}

/// Anthropic `usage` → Chat `usage` (cached tokens inside `prompt_tokens`).
pub fn chat_usage(u: &Value) -> Value {
    let r = responses_usage(u);
    json!({
        "prompt_tokens": r["input_tokens"],
        "completion_tokens": r["output_tokens"],
        "total_tokens": r["total_tokens"],
        "prompt_tokens_details": {"cached_tokens": r["input_tokens_details"]["cached_tokens"]},
    })
}

/// OpenAI `reasoning.effort` → an Anthropic thinking budget (before the
/// `max_tokens` cap); `None` for an effort this gateway does not know.
pub fn thinking_budget(effort: &str) -> Option<u64> {
    Some(match effort {
        "minimal" => 1024,
        "low" => 2048,
        "medium" => 8192,
        "high" => 24576,
        "xhigh" => 32768,
        _ => return None,
    })
}

/// Anthropic `stop_reason` → whether a Responses answer is complete, and
/// why not.
pub fn incomplete_reason(stop_reason: Option<&str>) -> Option<&'static str> {
    match stop_reason {
        Some("max_tokens") | Some("model_context_window_exceeded") => Some("max_output_tokens"),
        Some("refusal") => Some("content_filter"),
        _ => None,
    }
}

/// Anthropic `usage` → Responses `usage`. Anthropic's `input_tokens`
/// excludes cache reads and writes; OpenAI's includes them.
pub fn responses_usage(u: &Value) -> Value {
    let n = |v: &Value| v.as_u64().unwrap_or(0);
    let read = n(&u["cache_read_input_tokens"]);
    let input = n(&u["input_tokens"]) + read + n(&u["cache_creation_input_tokens"]);
    let output = n(&u["output_tokens"]);
    json!({
        "input_tokens": input,
        "input_tokens_details": {"cached_tokens": read},
        "output_tokens": output,
        "output_tokens_details": {"reasoning_tokens": 0},
        "total_tokens": input + output,
    })
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

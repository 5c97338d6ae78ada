//! Request bodies and headers shaped like the real agents' (see `shared/reference/clients.md`).
//!
//! Gateways break on details real clients rely on: a query string on `/v1/messages?beta=true`,
//! a `"role":"system"` message inside `messages`, a long `anthropic-beta` list, ~50 KB bodies,
//! `Accept: application/json` on a streaming call. These builders reproduce those details so
//! e2e tests meet them without installing Claude Code or Codex.

use serde_json::{json, Value};

/// The Claude Code version these shapes were recorded from.
pub const CLAUDE_CODE_VERSION: &str = "2.1.332";
/// The Codex version these shapes were recorded from.
pub const CODEX_VERSION: &str = "0.171.0";
/// Session id used in Claude Code headers and metadata.
pub const CLAUDE_SESSION_ID: &str = "5f0c2a3e-7d41-4c8e-9b1a-2e6f4d8c0a17";
/// Session/thread id used in Codex headers.
pub const CODEX_SESSION_ID: &str = "0199a4c2-6e1b-7f30-8d52-3b9e1f7a4c60";
/// The `anthropic-beta` list Claude Code sends (forward it, never hard-code it in the gateway).
pub const CLAUDE_CODE_BETAS: &str = "claude-code-20250219,interleaved-thinking-2025-05-14,context-management-2025-06-27,fine-grained-tool-streaming-2025-05-14,prompt-caching-scope-2026-01-05,effort-2025-11-24";

/// Deterministic filler prose of about `len` bytes (no PII, no secrets).
fn filler(topic: &str, len: usize) -> String {
    const WORDS: &[&str] = &[
        "Use",
        "the",
        "tool",
        "only",
        "when",
        "it",
        "is",
        "needed;",
        "prefer",
        "reading",
        "files",
        "before",
        "editing",
        "them,",
        "keep",
        "changes",
        "small,",
        "and",
        "explain",
        "what",
        "you",
        "did.",
        "Never",
        "guess",
        "paths:",
        "list",
        "directories",
        "first.",
    ];
    let mut s = format!("{topic}: ");
    let mut i = 0;
    while s.len() < len {
        s.push_str(WORDS[i % WORDS.len()]);
        s.push(' ');
        i += 1;
    }
    s
}

fn claude_tool(name: &str, props: &[(&str, &str)], len: usize) -> Value {
    let mut properties = serde_json::Map::new();
    for (p, ty) in props {
        properties.insert(
            (*p).to_string(),
            json!({"type": ty, "description": filler(p, 120)}),
        );
    }
    let required: Vec<&str> = props.iter().take(1).map(|(p, _)| *p).collect();
    json!({
        "name": name,
        "description": filler(name, len),
        "input_schema": {
            "type": "object",
            "properties": properties,
            "required": required,
            "additionalProperties": false,
            "$schema": "http://json-schema.org/draft-07/schema#"
        }
    })
}

/// A Claude Code `/v1/messages` body (~50 KB): `stream: true`, `max_tokens: 128000`,
/// `thinking`, `context_management`, `output_config`, `metadata.user_id`, 3 system blocks with
/// `cache_control`, 12 tools and a `"role":"system"` message inside `messages`.
/// The last user message is "Reply with exactly: pong"; use [`claude_code_request_with`] to
/// set your own (e.g. to plant PII).
pub fn claude_code_request() -> Value {
    claude_code_request_with("Reply with exactly: pong")
}

/// [`claude_code_request`] with the last user message set to `prompt`.
pub fn claude_code_request_with(prompt: &str) -> Value {
    let tools: Vec<Value> = [
        (
            "Task",
            &[
                ("description", "string"),
                ("prompt", "string"),
                ("subagent_type", "string"),
            ][..],
        ),
        (
            "Bash",
            &[
                ("command", "string"),
                ("timeout", "number"),
                ("description", "string"),
            ][..],
        ),
        ("Glob", &[("pattern", "string"), ("path", "string")][..]),
        (
            "Grep",
            &[
                ("pattern", "string"),
                ("path", "string"),
                ("glob", "string"),
            ][..],
        ),
        ("ExitPlanMode", &[("plan", "string")][..]),
        (
            "Read",
            &[
                ("file_path", "string"),
                ("offset", "number"),
                ("limit", "number"),
            ][..],
        ),
        (
            "Edit",
            &[
                ("file_path", "string"),
                ("old_string", "string"),
                ("new_string", "string"),
            ][..],
        ),
        (
            "Write",
            &[("file_path", "string"), ("content", "string")][..],
        ),
        (
            "NotebookEdit",
            &[("notebook_path", "string"), ("new_source", "string")][..],
        ),
        ("WebFetch", &[("url", "string"), ("prompt", "string")][..]),
        ("TodoWrite", &[("todos", "array")][..]),
        (
            "WebSearch",
            &[("query", "string"), ("allowed_domains", "array")][..],
        ),
    ]
    .iter()
    .map(|(name, props)| claude_tool(name, props, 2600))
    .collect();
    json!({
        "model": "claude-sonnet-4-5-20250929",
        "messages": [
            {"role": "user", "content": [
                {"type": "text", "text": format!("<system-reminder>\n{}\n</system-reminder>", filler("context", 1500))},
                {"type": "text", "text": prompt, "cache_control": {"type": "ephemeral"}}
            ]},
            {"role": "system", "content": "The user is working in /home/dev/project on Linux."},
        ],
        "system": [
            {"type": "text", "text": "x-anthropic-billing-header: cc_version=2.1.332; cc_entrypoint=sdk-cli",
             "cache_control": {"type": "ephemeral"}},
            {"type": "text", "text": "You are Claude Code, Anthropic's official CLI for Claude.",
             "cache_control": {"type": "ephemeral"}},
            {"type": "text", "text": filler("Instructions", 9000),
             "cache_control": {"type": "ephemeral"}}
        ],
        "tools": tools,
        "metadata": {"user_id": format!(
            "user_3c9a1f0e8b7d6c5a4e3f2d1c0b9a8e7f6d5c4b3a2e1f0d9c8b7a6e5f4d3c2b1a_account__session_{CLAUDE_SESSION_ID}")},
        "max_tokens": 128000,
        "thinking": {"type": "enabled", "budget_tokens": 31999},
        "context_management": {"edits": [{"type": "clear_thinking_20251015", "keep": "all"}]},
        "output_config": {"effort": "high"},
        "stream": true
    })
}

fn owned(h: &[(&str, &str)]) -> Vec<(String, String)> {
    h.iter()
        .map(|(k, v)| (k.to_string(), v.to_string()))
        .collect()
}

/// Claude Code's request headers, without auth: add `("x-api-key", KEY)` or
/// `("authorization", "Bearer TOKEN")` (never both, as the real client).
pub fn claude_code_headers() -> Vec<(String, String)> {
    let ua = format!("claude-cli/{CLAUDE_CODE_VERSION} (external, cli)");
    let mut h = owned(&[
        ("accept", "application/json"),
        ("accept-encoding", "gzip, deflate, br, zstd"),
        ("anthropic-beta", CLAUDE_CODE_BETAS),
        ("anthropic-dangerous-direct-browser-access", "true"),
        ("anthropic-version", "2023-06-01"),
        ("content-type", "application/json"),
        ("x-app", "cli"),
        ("X-Claude-Code-Session-Id", CLAUDE_SESSION_ID),
        ("X-Stainless-Arch", "x64"),
        ("X-Stainless-Lang", "js"),
        ("X-Stainless-OS", "Linux"),
        ("X-Stainless-Package-Version", "0.70.0"),
        ("X-Stainless-Retry-Count", "0"),
        ("X-Stainless-Runtime", "node"),
        ("X-Stainless-Runtime-Version", "v22.19.0"),
        ("X-Stainless-Timeout", "600"),
    ]);
    h.push(("User-Agent".into(), ua));
    h
}

/// The path Claude Code posts to under its base URL (note the query string).
pub const CLAUDE_CODE_PATH: &str = "/v1/messages?beta=true";

fn codex_tool(name: &str, props: &[&str], len: usize) -> Value {
    let mut properties = serde_json::Map::new();
    for p in props {
        properties.insert(
            (*p).to_string(),
            json!({"type": "string", "description": filler(p, 100)}),
        );
    }
    json!({
        "type": "function",
        "name": name,
        "description": filler(name, len),
        "strict": false,
        "parameters": {"type": "object", "properties": properties,
                       "required": props.iter().take(1).collect::<Vec<_>>(),
                       "additionalProperties": false}
    })
}

/// A Codex `POST …/responses` body (~40 KB): `stream: true`, `store: false`, `input` items,
/// 9 tools, `reasoning`, `include: ["reasoning.encrypted_content"]`, `prompt_cache_key`.
pub fn codex_request() -> Value {
    codex_request_with("Reply with exactly: pong")
}

/// [`codex_request`] with the user turn set to `prompt`.
pub fn codex_request_with(prompt: &str) -> Value {
    let tools: Vec<Value> = [
        ("shell", &["command", "workdir", "timeout_ms"][..]),
        ("apply_patch", &["input"][..]),
        ("update_plan", &["plan", "explanation"][..]),
        ("view_image", &["path"][..]),
        ("list_mcp_resources", &["server", "cursor"][..]),
        ("read_mcp_resource", &["server", "uri"][..]),
        ("web_search", &["query"][..]),
        ("read_file", &["path", "offset", "limit"][..]),
        ("list_dir", &["path", "depth"][..]),
    ]
    .iter()
    .map(|(n, p)| codex_tool(n, p, 2400))
    .collect();
    json!({
        "model": "gpt-5-codex",
        "instructions": filler("You are Codex, a coding agent", 12000),
        "input": [
            {"type": "message", "role": "developer", "content": [
                {"type": "input_text", "text": filler("<permissions instructions>", 2500)}]},
            {"type": "message", "role": "user", "content": [
                {"type": "input_text", "text": filler("<environment_context>", 800)}]},
            {"type": "message", "role": "user", "content": [
                {"type": "input_text", "text": prompt}]}
        ],
        "tools": tools,
        "tool_choice": "auto",
        "parallel_tool_calls": false,
        "reasoning": {"effort": "medium", "summary": "auto"},
        "store": false,
        "stream": true,
        "include": ["reasoning.encrypted_content"],
        "prompt_cache_key": CODEX_SESSION_ID
    })
}

/// Codex's request headers, without auth: add `("authorization", "Bearer KEY")`.
pub fn codex_headers() -> Vec<(String, String)> {
    let meta = json!({"turn_id": "1", "sandbox": "workspace-write", "cwd": "/home/dev/project"})
        .to_string();
    let mut h = owned(&[
        ("accept", "text/event-stream"),
        ("accept-encoding", "zstd,gzip"),
        ("content-type", "application/json"),
        ("originator", "codex_exec"),
        ("session-id", CODEX_SESSION_ID),
        ("thread-id", CODEX_SESSION_ID),
        (
            "x-client-request-id",
            "0199a4c2-6e1b-7f30-8d52-3b9e1f7a4c61",
        ),
        ("x-codex-window-id", "1"),
        ("x-codex-beta-features", "unified_exec,apply_patch_freeform"),
    ]);
    h.push(("x-codex-turn-metadata".into(), meta));
    h.push((
        "user-agent".into(),
        format!("codex_exec/{CODEX_VERSION} (Debian 12.0.0; x86_64) unknown"),
    ));
    h
}

/// The path Codex posts to under its base URL `…/v1`.
pub const CODEX_PATH: &str = "/v1/responses";

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn claude_code_body_shape() {
        let b = claude_code_request();
        let len = b.to_string().len();
        assert!((45_000..60_000).contains(&len), "len {len}");
        assert_eq!(b["tools"].as_array().unwrap().len(), 12);
        assert_eq!(b["system"].as_array().unwrap().len(), 3);
        assert!(b["system"]
            .as_array()
            .unwrap()
            .iter()
            .all(|s| s["cache_control"].is_object()));
        assert!(b["messages"]
            .as_array()
            .unwrap()
            .iter()
            .any(|m| m["role"] == "system"));
        assert_eq!(b["max_tokens"], 128000);
        assert_eq!(b["stream"], true);
    }

    #[test]
    fn codex_body_shape() {
        let b = codex_request();
        let len = b.to_string().len();
        assert!((35_000..50_000).contains(&len), "len {len}");
        assert_eq!(b["tools"].as_array().unwrap().len(), 9);
        assert_eq!(b["store"], false);
        assert!(codex_headers()
            .iter()
            .any(|(k, v)| k == "originator" && v == "codex_exec"));
    }
}

//! Google's error envelope, `{"error": {"code", "message", "status"}}`
//! (sometimes wrapped in a one-element array), re-shaped for the client.
//!
//! Why: a client speaking Anthropic Messages through Vertex (Claude Code)
//! parses errors in Anthropic's shape; one speaking OpenAI Chat through
//! Gemini parses OpenAI's. Google answers gateway-level failures (a bad
//! token, a quota, an unknown model) in its own shape, so the gateway
//! converts those. Errors already in the client's shape (Vertex passes
//! Anthropic's own model errors through) are kept as they are.

use serde_json::{json, Value};

/// A Google error, read.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct GoogleError {
    pub code: Option<u16>,
    pub message: String,
    /// The canonical status name (`INVALID_ARGUMENT`, `UNAUTHENTICATED`, ...).
    pub status: Option<String>,
}

/// Reads Google's envelope, bare or in a one-element array.
pub fn parse(body: &[u8]) -> Option<GoogleError> {
    let v: Value = serde_json::from_slice(body).ok()?;
    let v = match v {
        Value::Array(mut items) if items.len() == 1 => items.pop()?,
        other => other,
    };
    let e = v.get("error")?.as_object()?;
    // OpenAI's envelope also has `error.message`; Google's always has an
    // integer `code` or a `status` name, OpenAI's a string or null `code`.
    let code = e.get("code").and_then(Value::as_u64).map(|c| c as u16);
    let status = e.get("status").and_then(Value::as_str).map(str::to_string);
    if code.is_none() && status.is_none() {
        return None;
    }
    Some(GoogleError {
        code,
        message: e
            .get("message")
            .and_then(Value::as_str)
            .unwrap_or_default()
            .to_string(),
        status,
    })
}

/// Anthropic's `error.type` for a Google status name or HTTP status.
pub fn anthropic_type(status_name: Option<&str>, http: u16) -> &'static str {
    match status_name {
        Some("INVALID_ARGUMENT" | "FAILED_PRECONDITION" | "OUT_OF_RANGE") => {
            "invalid_request_error"
        }
        Some("UNAUTHENTICATED") => "authentication_error",
        Some("PERMISSION_DENIED") => "permission_error",
        Some("NOT_FOUND") => "not_found_error",
        Some("RESOURCE_EXHAUSTED") => "rate_limit_error",
        Some("UNAVAILABLE") => "overloaded_error",
        Some(_) => "api_error",
        None => match http {
            400 | 422 => "invalid_request_error",
            401 => "authentication_error",
            403 => "permission_error",
            404 => "not_found_error",
            413 => "request_too_large",
            429 => "rate_limit_error",
            503 | 529 => "overloaded_error",
            _ => "api_error",
        },
    }
}

/// OpenAI's `error.type` for an Anthropic-style category.
fn openai_type(anthropic: &str) -> &'static str {
    match anthropic {
        "invalid_request_error" | "not_found_error" | "request_too_large" => {
            "invalid_request_error"
        }
        "authentication_error" => "authentication_error",
        "permission_error" => "permission_error",
        "rate_limit_error" => "rate_limit_error",
        _ => "server_error",
    }
}

fn is_anthropic_envelope(v: &Value) -> bool {
    v.get("type").and_then(Value::as_str) == Some("error")
        && v["error"].get("type").and_then(Value::as_str).is_some()
}

fn is_openai_envelope(v: &Value) -> bool {
    v["error"].get("message").and_then(Value::as_str).is_some()
        && v["error"].get("status").is_none()
        && !v["error"].get("code").is_some_and(Value::is_u64)
}

fn fallback_message(http: u16) -> String {
    let reason = http::StatusCode::from_u16(http)
        .ok()
        .and_then(|s| s.canonical_reason())
        .unwrap_or("error");
    format!("upstream answered HTTP {http} ({reason})")
}

/// The error answer `body` (HTTP `http`) in Anthropic's envelope
/// `{"type":"error","error":{"type","message"}}`. An Anthropic envelope is
/// returned unchanged.
pub fn to_anthropic(http: u16, body: &[u8]) -> Value {
    if let Ok(v) = serde_json::from_slice::<Value>(body) {
        if is_anthropic_envelope(&v) {
            return v;
        }
    }
    let (kind, message) = match parse(body) {
        Some(g) => (
            anthropic_type(g.status.as_deref(), g.code.unwrap_or(http)),
            g.message,
        ),
        None => (anthropic_type(None, http), fallback_message(http)),
    };
    json!({"type": "error", "error": {"type": kind, "message": message}})
}

/// The error answer `body` in OpenAI's envelope
/// `{"error":{"message","type","param","code"}}`; `code` keeps Google's
/// status name. An OpenAI envelope is returned unchanged.
pub fn to_openai(http: u16, body: &[u8]) -> Value {
    if let Ok(v) = serde_json::from_slice::<Value>(body) {
        if is_openai_envelope(&v) {
            return v;
        }
    }
    let (kind, message, code) = match parse(body) {
        Some(g) => (
            openai_type(anthropic_type(g.status.as_deref(), g.code.unwrap_or(http))),
            g.message,
            g.status.map(Value::String).unwrap_or(Value::Null),
        ),
        None => (
            openai_type(anthropic_type(None, http)),
            fallback_message(http),
            Value::Null,
        ),
    };
    json!({"error": {"message": message, "type": kind, "param": null, "code": code}})
}

#[cfg(test)]
mod tests {
    use super::*;

    const UNAUTH: &str = r#"{"error":{"code":401,"message":"Request had invalid authentication credentials.","status":"UNAUTHENTICATED"}}"#;

    #[test]
    fn reads_bare_and_listed_envelopes() {
        let g = parse(UNAUTH.as_bytes()).unwrap();
        assert_eq!(g.code, Some(401));
        assert_eq!(g.status.as_deref(), Some("UNAUTHENTICATED"));
        let listed = format!("[{UNAUTH}]");
        assert_eq!(parse(listed.as_bytes()), Some(g));
        assert!(parse(br#"{"error":{"message":"x","type":"y","code":null}}"#).is_none());
        assert!(parse(b"<html>").is_none());
    }

    #[test]
    fn maps_into_anthropics_envelope() {
        let v = to_anthropic(401, UNAUTH.as_bytes());
        assert_eq!(v["type"], "error");
        assert_eq!(v["error"]["type"], "authentication_error");
        assert_eq!(
            v["error"]["message"],
            "Request had invalid authentication credentials."
        );
        let quota =
            br#"{"error":{"code":429,"message":"Quota exceeded","status":"RESOURCE_EXHAUSTED"}}"#;
        assert_eq!(
            to_anthropic(429, quota)["error"]["type"],
            "rate_limit_error"
        );
        let bad = br#"{"error":{"code":400,"message":"m","status":"INVALID_ARGUMENT"}}"#;
        assert_eq!(
            to_anthropic(400, bad)["error"]["type"],
            "invalid_request_error"
        );
        let gone = br#"{"error":{"code":404,"message":"m","status":"NOT_FOUND"}}"#;
        assert_eq!(to_anthropic(404, gone)["error"]["type"], "not_found_error");
        assert_eq!(to_anthropic(503, b"")["error"]["type"], "overloaded_error");
        assert_eq!(to_anthropic(500, b"oops")["error"]["type"], "api_error");
    }

    #[test]
    fn keeps_an_anthropic_envelope() {
        let a = br#"{"type":"error","error":{"type":"overloaded_error","message":"Overloaded"}}"#;
        assert_eq!(
            to_anthropic(529, a),
            serde_json::from_slice::<Value>(a).unwrap()
        );
    }

    #[test]
    fn maps_into_openais_envelope() {
        let v = to_openai(401, UNAUTH.as_bytes());
        assert_eq!(v["error"]["type"], "authentication_error");
        assert_eq!(v["error"]["code"], "UNAUTHENTICATED");
        assert!(v["error"]["message"]
            .as_str()
            .unwrap()
            .contains("credentials"));
        let listed = format!(
            "[{}]",
            r#"{"error":{"code":400,"message":"bad","status":"INVALID_ARGUMENT"}}"#
        );
        assert_eq!(
            to_openai(400, listed.as_bytes())["error"]["type"],
            "invalid_request_error"
        );
        let o =
            br#"{"error":{"message":"m","type":"invalid_request_error","param":null,"code":"x"}}"#;
        assert_eq!(
            to_openai(400, o),
            serde_json::from_slice::<Value>(o).unwrap()
        );
        assert_eq!(to_openai(502, b"")["error"]["type"], "server_error");
    }
}

//! Bedrock's errors in Anthropic's error envelope, so a client speaking
//! Anthropic Messages (Claude Code) reads them as it reads Anthropic's own:
//! `{"type":"error","error":{"type":...,"message":...}}`.
//!
//! Bedrock names the error in the `x-amzn-errortype` header
//! (`ThrottlingException:http://internal.amazon.com/coral/...`) and puts
//! the text in the body's `message` (sometimes `Message`). Streams name it
//! in the frame's `:exception-type` header (`throttlingException`). Both
//! spellings map through [`anthropic_error_type`]; unknown names fall back
//! on the HTTP status.

use http::{HeaderMap, StatusCode};
use serde::Deserialize;
use serde_json::json;

/// A non-2xx Bedrock answer rewritten for the client (same status).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct MappedError {
    pub status: StatusCode,
    /// The Anthropic error envelope (JSON).
    pub body: Vec<u8>,
}

/// The Anthropic error type for a Bedrock error name (either case of the
/// first letter, with or without the `:namespace` suffix), else for the
/// status.
pub fn anthropic_error_type(aws_name: Option<&str>, status: StatusCode) -> &'static str {
    let name = aws_name
        .map(|n| n.split(':').next().unwrap_or(n).trim())
        .unwrap_or("");
    let lower = name.to_ascii_lowercase();
    match lower.as_str() {
        "throttlingexception" | "servicequotaexceededexception" | "toomanyrequestsexception" => {
            "rate_limit_error"
        }
        "serviceunavailableexception" | "modelnotreadyexception" => "overloaded_error",
        "validationexception" | "serializationexception" => "invalid_request_error",
        "accessdeniedexception" => "permission_error",
        "unrecognizedclientexception"
        | "invalidsignatureexception"
        | "expiredtokenexception"
        | "incompletesignatureexception"
        | "missingauthenticationtokenexception" => "authentication_error",
        "resourcenotfoundexception" => "not_found_error",
        "internalserverexception"
        | "modelstreamerrorexception"
        | "modelerrorexception"
        | "modeltimeoutexception" => "api_error",
        _ => by_status(status),
    }
}

fn by_status(status: StatusCode) -> &'static str {
    match status.as_u16() {
        400 | 422 => "invalid_request_error",
        401 => "authentication_error",
        403 => "permission_error",
        404 => "not_found_error",
        413 => "request_too_large",
        429 => "rate_limit_error",
        503 | 529 => "overloaded_error",
        _ => "api_error",
    }
}

#[derive(Deserialize, Default)]
struct AwsErrorBody {
    #[serde(alias = "Message")]
    message: Option<String>,
}

/// The Anthropic envelope for `error_type` and `message`.
pub fn envelope(error_type: &str, message: &str) -> Vec<u8> {
    json!({"type": "error", "error": {"type": error_type, "message": message}})
        .to_string()
        .into_bytes()
}

/// A non-2xx Bedrock answer (`status`, its headers, its body) as the
/// Anthropic error envelope with the status kept. A body that is not
/// Bedrock's JSON keeps its text as the message (truncated to 1 KiB) so the
/// client still sees what went wrong.
pub fn map_error_answer(status: StatusCode, headers: &HeaderMap, body: &[u8]) -> MappedError {
    let aws_name = headers
        .get("x-amzn-errortype")
        .and_then(|v| v.to_str().ok());
    let error_type = anthropic_error_type(aws_name, status);
    let parsed: AwsErrorBody = serde_json::from_slice(body).unwrap_or_default();
    let message = match parsed.message {
        Some(m) => m,
        None if body.is_empty() => format!(
            "Bedrock answered {status}{}",
            aws_name
                .map(|n| format!(" ({})", n.split(':').next().unwrap_or(n)))
                .unwrap_or_default()
        ),
        None => {
            let text = String::from_utf8_lossy(body);
            let mut end = text.len().min(1024);
            while !text.is_char_boundary(end) {
                end -= 1;
            }
            text[..end].to_string()
        }
    };
    MappedError {
        status,
        body: envelope(error_type, &message),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::Value;

    fn map(status: u16, errtype: Option<&str>, body: &[u8]) -> (u16, Value) {
        let mut h = HeaderMap::new();
        if let Some(t) = errtype {
            h.insert("x-amzn-errortype", t.parse().unwrap());
        }
        let m = map_error_answer(StatusCode::from_u16(status).unwrap(), &h, body);
        (m.status.as_u16(), serde_json::from_slice(&m.body).unwrap())
    }

    #[test]
    fn throttling_becomes_rate_limit_with_status_kept() {
        let (s, v) = map(
            429,
            Some("ThrottlingException:http://internal.amazon.com/coral/com.amazon.bedrock/"),
            br#"{"message":"Too many requests, please wait before trying again."}"#,
        );
        assert_eq!(s, 429);
        assert_eq!(
            v,
            json!({"type":"error","error":{"type":"rate_limit_error",
                   "message":"Too many requests, please wait before trying again."}})
        );
    }

    #[test]
    fn names_win_over_status_and_status_is_the_fallback() {
        assert_eq!(
            map(400, Some("ValidationException"), b"{}").1["error"]["type"],
            "invalid_request_error"
        );
        assert_eq!(
            map(403, Some("AccessDeniedException:x"), b"{}").1["error"]["type"],
            "permission_error"
        );
        assert_eq!(
            map(403, Some("InvalidSignatureException"), b"{}").1["error"]["type"],
            "authentication_error"
        );
        assert_eq!(
            map(503, Some("ServiceUnavailableException"), b"{}").1["error"]["type"],
            "overloaded_error"
        );
        assert_eq!(
            map(424, Some("ModelErrorException"), b"{}").1["error"]["type"],
            "api_error"
        );
        assert_eq!(map(404, None, b"").1["error"]["type"], "not_found_error");
        assert_eq!(
            map(500, Some("SomethingNew"), b"").1["error"]["type"],
            "api_error"
        );
        assert_eq!(
            map(400, Some("ServiceQuotaExceededException"), b"").1["error"]["type"],
            "rate_limit_error"
        );
    }

    #[test]
    fn messages_from_either_spelling_or_raw_text() {
        assert_eq!(
            map(400, None, br#"{"Message":"bad"}"#).1["error"]["message"],
            "bad"
        );
        assert_eq!(
            map(502, None, b"<html>gateway</html>").1["error"]["message"],
            "<html>gateway</html>"
        );
        assert_eq!(
            map(429, Some("ThrottlingException:http://x"), b"").1["error"]["message"],
            "Bedrock answered 429 Too Many Requests (ThrottlingException)"
        );
        let long = "é".repeat(1000);
        let m = map(500, None, long.as_bytes()).1["error"]["message"]
            .as_str()
            .unwrap()
            .len();
        assert!(m <= 1024, "{m}");
    }

    #[test]
    fn stream_exception_names_map_too() {
        let ok = StatusCode::OK;
        assert_eq!(
            anthropic_error_type(Some("throttlingException"), ok),
            "rate_limit_error"
        );
        assert_eq!(
            anthropic_error_type(Some("modelStreamErrorException"), ok),
            "api_error"
        );
        assert_eq!(
            anthropic_error_type(Some("validationException"), ok),
            "invalid_request_error"
        );
        assert_eq!(
            anthropic_error_type(Some("internalServerException"), ok),
            "api_error"
        );
        assert_eq!(
            anthropic_error_type(Some("serviceUnavailableException"), ok),
            "overloaded_error"
        );
    }
}

//! Error responses in the provider's own JSON shape.
//!
//! Clients (Claude Code, Codex, the SDKs) parse gateway errors with the same code
//! that parses provider errors, so an error from Sluice must look like one from
//! Anthropic or OpenAI: the right status, the right JSON envelope and a type the
//! client knows how to react to (a `rate_limit_error` makes the SDKs back off).

use bytes::Bytes;
use http::{header, HeaderValue, Response, StatusCode};

/// Which error envelope to use.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ErrorShape {
    /// `{"type":"error","error":{"type":..,"message":..}}`
    Anthropic,
    /// `{"error":{"message":..,"type":..,"param":null,"code":..}}`
    OpenAi,
}

impl From<crate::provider::Family> for ErrorShape {
    /// The envelope of a provider family's answers.
    fn from(f: crate::provider::Family) -> Self {
        match f {
            crate::provider::Family::Anthropic => ErrorShape::Anthropic,
            crate::provider::Family::OpenAi => ErrorShape::OpenAi,
        }
    }
}

impl ErrorShape {
    /// Guess the shape for a request no route claimed, from what the client sent.
    pub fn guess(path: &str, headers: &http::HeaderMap) -> Self {
        if headers.contains_key("anthropic-version")
            || headers.contains_key("x-api-key")
            || path.contains("/messages")
            || path.starts_with("/claude")
        {
            ErrorShape::Anthropic
        } else {
            ErrorShape::OpenAi
        }
    }
}

/// The error type name a provider uses for a status, when none is given.
pub fn default_error_type(shape: ErrorShape, status: u16) -> &'static str {
    match (shape, status) {
        (_, 400) => "invalid_request_error",
        (ErrorShape::Anthropic, 401) => "authentication_error",
        (ErrorShape::OpenAi, 401) => "invalid_api_key",
        (ErrorShape::Anthropic, 403) => "permission_error",
        (ErrorShape::OpenAi, 403) => "permission_denied",
        (ErrorShape::Anthropic, 404) => "not_found_error",
        (ErrorShape::OpenAi, 404) => "not_found",
        (ErrorShape::Anthropic, 413) => "request_too_large",
        (ErrorShape::OpenAi, 413) => "request_too_large",
        (ErrorShape::Anthropic, 429) => "rate_limit_error",
        (ErrorShape::OpenAi, 429) => "rate_limit_exceeded",
        (ErrorShape::Anthropic, 504) => "timeout_error",
        (ErrorShape::OpenAi, 504) => "timeout",
        (ErrorShape::Anthropic, 529) => "overloaded_error",
        (ErrorShape::Anthropic, _) => "api_error",
        (ErrorShape::OpenAi, _) => "server_error",
    }
}

/// Render the JSON body of an error.
pub fn error_body(shape: ErrorShape, status: u16, error_type: &str, message: &str) -> Bytes {
    let ty = if error_type.is_empty() {
        default_error_type(shape, status)
    } else {
        error_type
    };
    let v = match shape {
        ErrorShape::Anthropic => serde_json::json!({
            "type": "error",
            "error": {"type": ty, "message": message},
        }),
        ErrorShape::OpenAi => serde_json::json!({
            "error": {"message": message, "type": ty, "param": null, "code": ty},
        }),
    };
    Bytes::from(serde_json::to_vec(&v).expect("JSON values always serialize"))
}

/// A complete error response.
pub fn error_response<B>(
    shape: ErrorShape,
    status: u16,
    error_type: &str,
    message: &str,
    into_body: impl FnOnce(Bytes) -> B,
) -> Response<B> {
    let body = error_body(shape, status, error_type, message);
    let mut resp = Response::new(into_body(body));
    *resp.status_mut() = StatusCode::from_u16(status).unwrap_or(StatusCode::INTERNAL_SERVER_ERROR);
    resp.headers_mut().insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static("application/json"),
    );
    resp
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn anthropic_shape() {
        let b = error_body(ErrorShape::Anthropic, 429, "", "slow down");
        let v: serde_json::Value = serde_json::from_slice(&b).unwrap();
        assert_eq!(v["type"], "error");
        assert_eq!(v["error"]["type"], "rate_limit_error");
        assert_eq!(v["error"]["message"], "slow down");
    }

    #[test]
    fn openai_shape() {
        let b = error_body(ErrorShape::OpenAi, 502, "", "upstream refused");
        let v: serde_json::Value = serde_json::from_slice(&b).unwrap();
        assert_eq!(v["error"]["message"], "upstream refused");
        assert_eq!(v["error"]["type"], "server_error");
    }

    #[test]
    fn guess_from_headers() {
        let mut h = http::HeaderMap::new();
        assert_eq!(
            ErrorShape::guess("/v1/chat/completions", &h),
            ErrorShape::OpenAi
        );
        h.insert("anthropic-version", HeaderValue::from_static("2023-06-01"));
        assert_eq!(ErrorShape::guess("/x", &h), ErrorShape::Anthropic);
    }
}

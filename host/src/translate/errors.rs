//! An OpenAI error answer in Anthropic's envelope, with Anthropic's status.
//!
//! Why the status changes: Anthropic clients back off on 529
//! `overloaded_error`, which is what OpenAI's 503 means. Headers
//! (`Retry-After`) pass through untouched.

use crate::provider::whole::Whole;
use crate::provider::Transcode;
use crate::proxy::errors::{error_body, ErrorShape};
use http::StatusCode;
use serde_json::Value;

/// The Anthropic status for an upstream OpenAI status.
fn anthropic_status(s: StatusCode) -> StatusCode {
    match s.as_u16() {
        503 => StatusCode::from_u16(529).expect("529 is a valid status"),
        _ => s,
    }
}

/// Sets the client's status and returns the body rewriter.
pub fn to_anthropic(status: &mut StatusCode) -> Box<dyn Transcode> {
    *status = anthropic_status(*status);
    let code = status.as_u16();
    Box::new(Whole::new(move |b: &[u8]| Ok(rewrite(code, b))))
}

/// An Anthropic error answer in OpenAI's envelope; 529 (overloaded)
/// becomes the 503 OpenAI clients back off on.
pub fn to_openai(status: &mut StatusCode) -> Box<dyn Transcode> {
    if status.as_u16() == 529 {
        *status = StatusCode::SERVICE_UNAVAILABLE;
    }
    let code = status.as_u16();
    Box::new(Whole::new(move |b: &[u8]| {
        Ok(rewrite_as(ErrorShape::OpenAi, code, b))
    }))
}

fn rewrite(status: u16, body: &[u8]) -> Vec<u8> {
    rewrite_as(ErrorShape::Anthropic, status, body)
}

fn rewrite_as(shape: ErrorShape, status: u16, body: &[u8]) -> Vec<u8> {
    let parsed: Option<Value> = serde_json::from_slice(body).ok();
    let message = parsed
        .as_ref()
        .and_then(|v| {
            v["error"]["message"]
                .as_str()
                .or_else(|| v["message"].as_str())
        })
        .map(str::to_string)
        .unwrap_or_else(|| {
            let text = String::from_utf8_lossy(body);
            let t: String = text.chars().take(512).collect();
            if t.trim().is_empty() {
                format!("the upstream answered {status}")
            } else {
                t
            }
        });
    error_body(shape, status, "", &message).to_vec()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn run(status: u16, body: &str) -> (u16, Value) {
        let mut s = StatusCode::from_u16(status).unwrap();
        let mut t = to_anthropic(&mut s);
        assert!(t.push(body.as_bytes()).unwrap().is_empty());
        let out = t.finish().unwrap();
        (s.as_u16(), serde_json::from_slice(&out).unwrap())
    }

    #[test]
    fn anthropic_errors_take_openai_types_and_statuses() {
        let ant = r#"{"type":"error","error":{"type":"overloaded_error","message":"Overloaded"}}"#;
        let mut s = StatusCode::from_u16(529).unwrap();
        let mut t = to_openai(&mut s);
        t.push(ant.as_bytes()).unwrap();
        let v: Value = serde_json::from_slice(&t.finish().unwrap()).unwrap();
        assert_eq!(s, 503);
        assert_eq!(v["error"]["message"], "Overloaded");
        assert!(v.get("type").is_none());
    }

    #[test]
    fn openai_errors_take_anthropic_types_and_statuses() {
        let oai =
            r#"{"error":{"message":"slow down","type":"requests","code":"rate_limit_exceeded"}}"#;
        let (s, v) = run(429, oai);
        assert_eq!(s, 429);
        assert_eq!(v["type"], "error");
        assert_eq!(v["error"]["type"], "rate_limit_error");
        assert_eq!(v["error"]["message"], "slow down");
        assert_eq!(run(503, oai), (529, run(529, oai).1));
        assert_eq!(run(503, oai).1["error"]["type"], "overloaded_error");
        assert_eq!(run(400, oai).1["error"]["type"], "invalid_request_error");
        assert_eq!(run(401, oai).1["error"]["type"], "authentication_error");
        assert_eq!(
            run(500, "<html>oops</html>").1["error"]["message"],
            "<html>oops</html>"
        );
    }
}

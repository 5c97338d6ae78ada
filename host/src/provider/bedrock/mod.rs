//! AWS Bedrock: Anthropic Messages through InvokeModel,
//! InvokeModelWithResponseStream and CountTokens (issue 21, section 2).
//!
//! Building blocks the provider seam wires together, in request order:
//! - [`default_origin`] and [`Operation::path`]: where a request goes;
//! - [`body`]: the client's Anthropic body rewritten for Bedrock, and the
//!   CountTokens answer rewritten back;
//! - [`sign`]: SigV4, applied after every header is final;
//! - [`eventstream`]: a streamed answer (AWS event-stream binary) turned
//!   back into Anthropic SSE, event by event;
//! - [`errors`]: a non-2xx Bedrock answer in Anthropic's error envelope.
//!
//! Usage needs no Bedrock-specific reader: InvokeModel answers with the
//! Anthropic message JSON itself (`usage` with `input_tokens`,
//! `output_tokens`, `cache_creation_input_tokens`,
//! `cache_read_input_tokens`), and each stream chunk carries one Anthropic
//! event (`message_start.message.usage`, `message_delta.usage`). Bedrock
//! adds `amazon-bedrock-invocationMetrics` to the last stream event; the
//! transcoder removes it from what the client sees and keeps it readable
//! ([`eventstream::EventStreamToSse::invocation_metrics`]).

mod api;
pub mod body;
pub mod errors;
pub mod eventstream;
pub mod sign;

#[cfg(test)]
mod fake_tests;

use percent_encoding::{utf8_percent_encode, AsciiSet, NON_ALPHANUMERIC};

use crate::config::AiKind;

pub use api::Bedrock;
pub use body::{
    anthropic_betas, count_tokens_answer, map_count_tokens, map_messages, supported_betas,
    BodyError, Mapped, BEDROCK_BETAS,
};
pub use errors::{map_error_answer, MappedError};
pub use eventstream::{EventStreamToSse, InvocationMetrics, StreamError};
pub use sign::{sign, AwsCredentials, SignError, BEDROCK_SERVICE};

/// The content type of a Bedrock streamed answer: the response to hand to
/// [`EventStreamToSse`] (and answer the client as `text/event-stream`).
pub const EVENTSTREAM_CONTENT_TYPE: &str = "application/vnd.amazon.eventstream";

/// The longest model id accepted: Bedrock's documented `modelId` limit.
const MAX_MODEL_ID_LEN: usize = 2048;

/// A `bedrock` provider setting or a request's model that cannot be used.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ConfigError {
    #[error("bedrock region {0:?} is not an AWS region name (like us-east-1)")]
    BadRegion(String),
    #[error("bedrock model id is empty")]
    EmptyModel,
    #[error("bedrock model id is longer than {MAX_MODEL_ID_LEN} bytes")]
    ModelTooLong,
    #[error("bedrock model id contains whitespace or a control character")]
    BadModelChar,
}

/// Checks an AWS region name: lower-case letters and digits in
/// dash-separated parts (`us-east-1`, `us-gov-west-1`, `eu-central-2`).
/// Why so strict: the region becomes part of the upstream host name, so a
/// dot or slash in it would point the gateway (and its credentials)
/// somewhere else.
pub fn validate_region(region: &str) -> Result<(), ConfigError> {
    let bad = || ConfigError::BadRegion(region.to_string());
    let parts: Vec<&str> = region.split('-').collect();
    if region.len() > 32 || parts.len() < 3 {
        return Err(bad());
    }
    let part_ok = |p: &&str| {
        !p.is_empty()
            && p.bytes()
                .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit())
    };
    let last_is_number = parts
        .last()
        .is_some_and(|p| !p.is_empty() && p.bytes().all(|b| b.is_ascii_digit()));
    if !parts.iter().all(part_ok)
        || !last_is_number
        || !parts[0].bytes().all(|b| b.is_ascii_lowercase())
    {
        return Err(bad());
    }
    Ok(())
}

/// Checks a model id (a foundation model id, an inference profile id or an
/// ARN): any text without whitespace or control characters, since it is
/// sent as one percent-encoded path segment.
pub fn validate_model(model: &str) -> Result<(), ConfigError> {
    if model.is_empty() {
        return Err(ConfigError::EmptyModel);
    }
    if model.len() > MAX_MODEL_ID_LEN {
        return Err(ConfigError::ModelTooLong);
    }
    if model.chars().any(|c| c.is_whitespace() || c.is_control()) {
        return Err(ConfigError::BadModelChar);
    }
    Ok(())
}

/// `bedrock-runtime.{region}.amazonaws.com:443`, the origin (TLS) every
/// Bedrock runtime call goes to unless the backend names another host.
pub fn default_origin(region: &str) -> Result<String, ConfigError> {
    validate_region(region)?;
    Ok(format!("bedrock-runtime.{region}.amazonaws.com:443"))
}

/// The host name alone, for TLS SNI and certificate checks.
pub fn default_host(region: &str) -> Result<String, ConfigError> {
    validate_region(region)?;
    Ok(format!("bedrock-runtime.{region}.amazonaws.com"))
}

/// The Bedrock runtime operation a client request maps to.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Operation {
    /// `POST /model/{modelId}/invoke`: a whole Anthropic message JSON.
    Invoke,
    /// `POST /model/{modelId}/invoke-with-response-stream`: event-stream.
    InvokeStream,
    /// `POST /model/{modelId}/count-tokens`.
    CountTokens,
}

/// Everything but RFC 3986's unreserved characters is escaped: ARNs and
/// inference-profile ids hold `:` and `/`, which must stay inside one path
/// segment (`arn%3Aaws%3Abedrock...%2F...`), as AWS's SDKs send them.
const SEGMENT: &AsciiSet = &NON_ALPHANUMERIC
    .remove(b'-')
    .remove(b'_')
    .remove(b'.')
    .remove(b'~');

impl Operation {
    /// The operation for a client request of `kind`, `stream` being the
    /// body's `stream` flag; `None` for kinds Bedrock does not serve here
    /// (everything but Anthropic Messages and token counting).
    pub fn for_kind(kind: AiKind, stream: bool) -> Option<Operation> {
        match kind {
            AiKind::Messages if stream => Some(Operation::InvokeStream),
            AiKind::Messages => Some(Operation::Invoke),
            AiKind::AnthropicTokenCount => Some(Operation::CountTokens),
            _ => None,
        }
    }

    /// The request path for `model_id` (validated, then encoded as a
    /// single path segment).
    pub fn path(self, model_id: &str) -> Result<String, ConfigError> {
        validate_model(model_id)?;
        let model = utf8_percent_encode(model_id, SEGMENT);
        let action = match self {
            Operation::Invoke => "invoke",
            Operation::InvokeStream => "invoke-with-response-stream",
            Operation::CountTokens => "count-tokens",
        };
        Ok(format!("/model/{model}/{action}"))
    }

    /// Whether the answer is an event stream for [`EventStreamToSse`].
    pub fn streams(self) -> bool {
        self == Operation::InvokeStream
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn regions() {
        for ok in [
            "us-east-1",
            "us-gov-west-1",
            "eu-central-2",
            "ap-southeast-4",
        ] {
            assert_eq!(validate_region(ok), Ok(()), "{ok}");
        }
        for bad in [
            "",
            "us-east",
            "US-EAST-1",
            "us-east-1.evil.com",
            "us-east-1/x",
            "us--1",
            "1-east-1",
            "us-east-1 ",
            "us-east-x",
        ] {
            assert!(validate_region(bad).is_err(), "{bad:?}");
        }
        assert_eq!(
            default_origin("eu-west-3").unwrap(),
            "bedrock-runtime.eu-west-3.amazonaws.com:443"
        );
        assert!(default_origin("evil.com/").is_err());
    }

    #[test]
    fn paths_encode_the_model_as_one_segment() {
        assert_eq!(
            Operation::Invoke
                .path("anthropic.claude-3-5-sonnet-20241022-v2:0")
                .unwrap(),
            "/model/anthropic.claude-3-5-sonnet-20241022-v2%3A0/invoke"
        );
        assert_eq!(
            Operation::InvokeStream
                .path("arn:aws:bedrock:us-east-1:123456789012:inference-profile/us.anthropic.claude-sonnet-4-20250514-v1:0")
                .unwrap(),
            "/model/arn%3Aaws%3Abedrock%3Aus-east-1%3A123456789012%3Ainference-profile%2Fus.anthropic.claude-sonnet-4-20250514-v1%3A0/invoke-with-response-stream"
        );
        assert_eq!(
            Operation::CountTokens.path("a/../b?c#d%").unwrap(),
            "/model/a%2F..%2Fb%3Fc%23d%25/count-tokens"
        );
        assert_eq!(Operation::Invoke.path(""), Err(ConfigError::EmptyModel));
        assert_eq!(
            Operation::Invoke.path("a b"),
            Err(ConfigError::BadModelChar)
        );
        assert_eq!(
            Operation::Invoke.path(&"m".repeat(2049)),
            Err(ConfigError::ModelTooLong)
        );
    }

    #[test]
    fn operations_for_kinds() {
        assert_eq!(
            Operation::for_kind(AiKind::Messages, true),
            Some(Operation::InvokeStream)
        );
        assert_eq!(
            Operation::for_kind(AiKind::Messages, false),
            Some(Operation::Invoke)
        );
        assert_eq!(
            Operation::for_kind(AiKind::AnthropicTokenCount, true),
            Some(Operation::CountTokens)
        );
        assert_eq!(Operation::for_kind(AiKind::Completions, false), None);
        assert!(Operation::InvokeStream.streams() && !Operation::Invoke.streams());
    }
}

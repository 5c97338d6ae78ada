//! The Bedrock provider behind the seam: Anthropic Messages and token
//! counting through InvokeModel, InvokeModelWithResponseStream and
//! CountTokens, answers back in Anthropic's formats.

use super::{
    anthropic_betas, count_tokens_answer, default_origin, map_count_tokens, map_error_answer,
    map_messages, supported_betas, BodyError, ConfigError, EventStreamToSse, Operation,
    StreamError, BEDROCK_BETAS, EVENTSTREAM_CONTENT_TYPE,
};
use crate::config::{AiKind, Provider};
use crate::provider::whole::Whole;
use crate::provider::{Api, Family, Outgoing, ProviderError, Transcode, TranscodeError};
use bytes::Bytes;
use http::header::{HeaderMap, HeaderValue, ACCEPT_ENCODING, CONTENT_TYPE};
use http::StatusCode;

#[derive(Debug)]
pub struct Bedrock {
    region: String,
    origin: String,
    /// `bedrock.model`: a model id, inference profile or ARN.
    model: Option<String>,
}

impl Bedrock {
    pub fn new(region: &str, model: Option<String>) -> Result<Self, ConfigError> {
        Ok(Bedrock {
            origin: default_origin(region)?,
            region: region.to_string(),
            model,
        })
    }

    /// The signing region when `backendAuth.aws` names none.
    pub fn region(&self) -> &str {
        &self.region
    }
}

impl Api for Bedrock {
    fn provider(&self) -> Provider {
        Provider::Bedrock
    }
    fn family(&self, _kind: AiKind) -> Family {
        Family::Anthropic
    }
    fn speaks(&self, kind: AiKind) -> bool {
        matches!(kind, AiKind::Messages | AiKind::AnthropicTokenCount)
    }
    fn default_origin(&self) -> String {
        self.origin.clone()
    }
    fn needs_body(&self, _kind: AiKind) -> bool {
        true
    }
    fn shape(&self, out: &mut Outgoing) -> Result<(), ProviderError> {
        let body = out.body.as_deref().unwrap_or_default();
        let (betas, dropped) = supported_betas(&anthropic_betas(&out.headers), BEDROCK_BETAS);
        if !dropped.is_empty() {
            tracing::debug!(
                ?dropped,
                "anthropic-beta flags Bedrock does not take, dropped"
            );
        }
        let mapped = match out.kind {
            AiKind::AnthropicTokenCount => map_count_tokens(body, &betas, self.model.as_deref()),
            _ => map_messages(body, &betas, self.model.as_deref()),
        }
        .map_err(|e| match e {
            BodyError::BadCountAnswer(_) => ProviderError::Internal(e.to_string()),
            _ => ProviderError::BadRequest(e.to_string()),
        })?;
        out.model = Some(mapped.model_id);
        out.stream = mapped.stream;
        out.body = Some(Bytes::from(mapped.body));
        out.headers.remove("anthropic-beta");
        out.headers.remove("anthropic-version");
        out.headers
            .insert(CONTENT_TYPE, HeaderValue::from_static("application/json"));
        // The transcoder reads the answer: ask for it unencoded.
        out.headers.remove(ACCEPT_ENCODING);
        Ok(())
    }
    fn path(&self, out: &Outgoing) -> Result<Option<String>, ProviderError> {
        let op = Operation::for_kind(out.kind, out.stream).ok_or_else(|| {
            ProviderError::BadRequest("Bedrock serves Anthropic Messages and token counting".into())
        })?;
        let model = out.model.as_deref().unwrap_or_default();
        op.path(model)
            .map(Some)
            .map_err(|e| ProviderError::BadRequest(e.to_string()))
    }
    fn transcoder(
        &self,
        kind: AiKind,
        status: u16,
        headers: &mut HeaderMap,
    ) -> Option<Box<dyn Transcode>> {
        let json = HeaderValue::from_static("application/json");
        if status >= 400 {
            let (st, h) = (
                StatusCode::from_u16(status).unwrap_or(StatusCode::BAD_GATEWAY),
                headers.clone(),
            );
            headers.insert(CONTENT_TYPE, json);
            return Some(Box::new(Whole::new(move |b: &[u8]| {
                Ok(map_error_answer(st, &h, b).body)
            })));
        }
        let streamed = headers
            .get(CONTENT_TYPE)
            .and_then(|v| v.to_str().ok())
            .is_some_and(|v| v.starts_with(EVENTSTREAM_CONTENT_TYPE));
        if streamed {
            headers.insert(
                CONTENT_TYPE,
                HeaderValue::from_static("text/event-stream; charset=utf-8"),
            );
            return Some(Box::new(Sse(EventStreamToSse::new())));
        }
        if kind == AiKind::AnthropicTokenCount {
            return Some(Box::new(Whole::new(|b: &[u8]| {
                count_tokens_answer(b).map_err(|e| TranscodeError(e.to_string()))
            })));
        }
        None
    }
}

/// Event-stream frames into SSE; a broken stream ends with Anthropic's
/// error event, as a provider's own broken stream would.
struct Sse(EventStreamToSse);

impl Transcode for Sse {
    fn push(&mut self, bytes: &[u8]) -> Result<Vec<u8>, TranscodeError> {
        Ok(self.0.push(bytes).unwrap_or_else(|e| ended(&e)))
    }
    fn finish(&mut self) -> Result<Vec<u8>, TranscodeError> {
        Ok(self.0.finish().unwrap_or_else(|e| ended(&e)))
    }
}

fn ended(e: &StreamError) -> Vec<u8> {
    tracing::warn!(error = %e, "Bedrock stream not readable; ended with an error event");
    e.sse_event()
}

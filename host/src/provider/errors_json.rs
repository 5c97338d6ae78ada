//! Error answers a provider writes in an envelope its clients do not read
//! (Google's `{"error":{"code","status"}}`), rewritten into the family's.

use super::vertex::google_error;
use super::whole::Whole;
use super::{Family, Transcode};
use http::header::{HeaderMap, HeaderValue, CONTENT_TYPE};

/// A transcoder that rewrites an error answer (status ≥ 400) from Google's
/// envelope into `family`'s; an answer already in it passes unchanged.
pub fn google(family: Family, status: u16, headers: &mut HeaderMap) -> Option<Box<dyn Transcode>> {
    if status < 400 {
        return None;
    }
    headers.insert(CONTENT_TYPE, HeaderValue::from_static("application/json"));
    Some(Box::new(Whole::new(move |b: &[u8]| {
        let v = match family {
            Family::Anthropic => google_error::to_anthropic(status, b),
            Family::OpenAi => google_error::to_openai(status, b),
        };
        Ok(serde_json::to_vec(&v).unwrap_or_default())
    })))
}

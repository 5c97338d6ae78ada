//! Builders for header edits and immediate responses, plus header lookups.

use crate::bindings::sluice::policy::types as wit;
use crate::{BodyAction, Headers, HeadersAction, ImmediateResponse, ResponseHeadersAction};

/// First value of header `name` (case-insensitive).
pub fn header<'a>(headers: &'a Headers, name: &str) -> Option<&'a str> {
    headers
        .iter()
        .find(|(k, _)| k.eq_ignore_ascii_case(name))
        .map(|(_, v)| v.as_str())
}

/// Every value of header `name` (case-insensitive), in order.
pub fn header_all<'a>(headers: &'a Headers, name: &'a str) -> impl Iterator<Item = &'a str> + 'a {
    headers
        .iter()
        .filter(move |(k, _)| k.eq_ignore_ascii_case(name))
        .map(|(_, v)| v.as_str())
}

/// Header edits, applied by the host in the order remove, set, add.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct HeaderOps {
    set: Headers,
    add: Headers,
    remove: Vec<String>,
}

impl HeaderOps {
    pub fn new() -> Self {
        Self::default()
    }
    /// Replace every value of `name`.
    pub fn set(mut self, name: impl Into<String>, value: impl Into<String>) -> Self {
        self.set
            .push((name.into().to_ascii_lowercase(), value.into()));
        self
    }
    /// Append a value of `name`.
    pub fn add(mut self, name: impl Into<String>, value: impl Into<String>) -> Self {
        self.add
            .push((name.into().to_ascii_lowercase(), value.into()));
        self
    }
    /// Remove every value of `name`.
    pub fn remove(mut self, name: impl Into<String>) -> Self {
        self.remove.push(name.into().to_ascii_lowercase());
        self
    }
    pub fn is_empty(&self) -> bool {
        self.set.is_empty() && self.add.is_empty() && self.remove.is_empty()
    }
    /// `continue` with these edits (request headers).
    pub fn proceed(self) -> HeadersAction {
        HeadersAction::Continue(self.into())
    }
    /// Apply these edits and ask for the request body.
    pub fn need_body(self) -> HeadersAction {
        HeadersAction::NeedBody(self.into())
    }
    /// `continue` with these edits (response headers).
    pub fn proceed_response(self) -> ResponseHeadersAction {
        ResponseHeadersAction::Continue(self.into())
    }
}

impl From<HeaderOps> for wit::HeaderOps {
    fn from(o: HeaderOps) -> Self {
        wit::HeaderOps {
            set: o.set,
            add: o.add,
            remove: o.remove,
        }
    }
}

/// An immediate response: `Respond::status(429).message("slow down").error_type("rate_limit_error")`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Respond {
    status: u16,
    headers: Headers,
    message: String,
    error_type: String,
    body: Option<Vec<u8>>,
}

impl Respond {
    pub fn status(status: u16) -> Self {
        Respond {
            status,
            headers: Vec::new(),
            message: String::new(),
            error_type: String::new(),
            body: None,
        }
    }
    /// The message the host wraps in the provider's error JSON.
    pub fn message(mut self, message: impl Into<String>) -> Self {
        self.message = message.into();
        self
    }
    /// The error type, e.g. `rate_limit_error`; empty derives it from the status.
    pub fn error_type(mut self, error_type: impl Into<String>) -> Self {
        self.error_type = error_type.into();
        self
    }
    pub fn header(mut self, name: impl Into<String>, value: impl Into<String>) -> Self {
        self.headers
            .push((name.into().to_ascii_lowercase(), value.into()));
        self
    }
    /// A raw body sent as is (the message is then ignored).
    pub fn body(mut self, body: impl Into<Vec<u8>>) -> Self {
        self.body = Some(body.into());
        self
    }
    pub fn build(self) -> ImmediateResponse {
        ImmediateResponse {
            status: self.status,
            headers: self.headers,
            message: self.message,
            error_type: self.error_type,
            body: self.body,
        }
    }
}

impl From<Respond> for ImmediateResponse {
    fn from(r: Respond) -> Self {
        r.build()
    }
}
impl From<Respond> for HeadersAction {
    fn from(r: Respond) -> Self {
        HeadersAction::Respond(r.build())
    }
}
impl From<Respond> for BodyAction {
    fn from(r: Respond) -> Self {
        BodyAction::Respond(r.build())
    }
}
impl From<Respond> for ResponseHeadersAction {
    fn from(r: Respond) -> Self {
        ResponseHeadersAction::Respond(r.build())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn header_lookup_is_case_insensitive() {
        let h: Headers = vec![("X-A".into(), "1".into()), ("x-a".into(), "2".into())];
        assert_eq!(header(&h, "x-a"), Some("1"));
        assert_eq!(header_all(&h, "X-A").collect::<Vec<_>>(), ["1", "2"]);
    }

    #[test]
    fn respond_builds() {
        let r = Respond::status(429)
            .message("m")
            .error_type("rate_limit_error")
            .header("Retry-After", "1")
            .build();
        assert_eq!(r.status, 429);
        assert_eq!(
            r.headers,
            vec![("retry-after".to_string(), "1".to_string())]
        );
    }
}

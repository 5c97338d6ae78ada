//! Builders for header edits and immediate responses, plus header lookups.

use crate::bindings::sluice::policy::types as wit;
use crate::header_set::{check, is_sendable, NoValue, OnMissing, Unset};
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
///
/// Every method follows the set rule of [`crate::header_set`]: a header this
/// policy sets never keeps a value someone else sent. A value a header
/// cannot carry (control characters, non-ASCII) is never handed to the host,
/// which would refuse the whole edit list and so fail the plugin (and, with
/// `failureMode: open`, leave the client's headers in place).
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
    /// Replace every value of `name`. A value a header cannot carry
    /// ([`is_sendable`]) removes the header instead; an empty value is sent
    /// as given (use [`HeaderOps::set_or_remove`] for computed values).
    pub fn set(mut self, name: impl Into<String>, value: impl Into<String>) -> Self {
        let name = name.into().to_ascii_lowercase();
        let value = value.into();
        if is_sendable(&value) {
            self.set.push((name, value));
        } else {
            self.remove.push(name);
        }
        self
    }
    /// Append a value of `name` (after whatever is there, the client's
    /// values included). A value a header cannot carry adds nothing.
    pub fn add(mut self, name: impl Into<String>, value: impl Into<String>) -> Self {
        let value = value.into();
        if is_sendable(&value) {
            self.add.push((name.into().to_ascii_lowercase(), value));
        }
        self
    }
    /// Remove every value of `name`.
    pub fn remove(mut self, name: impl Into<String>) -> Self {
        self.remove.push(name.into().to_ascii_lowercase());
        self
    }
    /// Set `name` to a computed value, or remove it when there is none:
    /// `None`, empty, or not [`is_sendable`]. The safe default for any value
    /// derived from a request (a claim, a header, a lookup): the header never
    /// keeps the value the client sent.
    pub fn set_or_remove<S: Into<String>>(self, name: impl Into<String>, value: Option<S>) -> Self {
        let value = value.map(Into::into).ok_or(NoValue::Missing(String::new()));
        match self.set_value(name, value, OnMissing::Remove) {
            Ok(ops) => ops,
            Err(_) => unreachable!("OnMissing::Remove never refuses"),
        }
    }
    /// Set `name` to `value` once [`check`]ed; when there is no value,
    /// remove the header ([`OnMissing::Remove`]) or return the [`Unset`]
    /// to refuse with ([`OnMissing::Reject`]).
    pub fn set_value(
        self,
        name: impl Into<String>,
        value: Result<String, NoValue>,
        on_missing: OnMissing,
    ) -> Result<Self, Unset> {
        self.checked(name.into(), value, on_missing, Self::set, Self::remove)
    }
    /// Append `value` once [`check`]ed; when there is none, add nothing
    /// ([`OnMissing::Remove`]) or return the [`Unset`] ([`OnMissing::Reject`]).
    pub fn add_value(
        self,
        name: impl Into<String>,
        value: Result<String, NoValue>,
        on_missing: OnMissing,
    ) -> Result<Self, Unset> {
        self.checked(name.into(), value, on_missing, Self::add, |ops, _| ops)
    }
    /// The rule [`HeaderOps::set_value`] and [`HeaderOps::add_value`] share:
    /// a usable value is applied with `apply`, none is `missing` or refused.
    fn checked(
        self,
        name: String,
        value: Result<String, NoValue>,
        on_missing: OnMissing,
        apply: fn(Self, String, String) -> Self,
        missing: fn(Self, String) -> Self,
    ) -> Result<Self, Unset> {
        let name = name.to_ascii_lowercase();
        match (value.and_then(check), on_missing) {
            (Ok(v), _) => Ok(apply(self, name, v)),
            (Err(_), OnMissing::Remove) => Ok(missing(self, name)),
            (Err(why), OnMissing::Reject) => Err(Unset { header: name, why }),
        }
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

    fn wit(o: HeaderOps) -> wit::HeaderOps {
        o.into()
    }

    #[test]
    fn set_never_keeps_the_old_value() {
        let o = wit(HeaderOps::new()
            .set("X-A", "ok")
            .set("x-b", "a\r\nx-admin: 1")
            .set_or_remove("x-c", Some("c"))
            .set_or_remove("x-d", None::<String>)
            .set_or_remove("x-e", Some(""))
            .set_or_remove("x-f", Some("josé")));
        assert_eq!(
            o.set,
            [("x-a".into(), "ok".into()), ("x-c".into(), "c".into())]
        );
        assert_eq!(o.remove, ["x-b", "x-d", "x-e", "x-f"]);
    }

    #[test]
    fn a_failed_add_adds_nothing() {
        let o = wit(HeaderOps::new()
            .add("x-a", "1")
            .add("x-a", "bad\n")
            .add_value("x-a", Err(NoValue::Empty), OnMissing::Remove)
            .unwrap()
            .add_value("x-a", Ok("2".into()), OnMissing::Reject)
            .unwrap());
        assert_eq!(
            o.add,
            [("x-a".into(), "1".into()), ("x-a".into(), "2".into())]
        );
        assert!(o.remove.is_empty() && o.set.is_empty());
    }

    #[test]
    fn reject_returns_what_to_refuse_with() {
        let missing = Err(NoValue::Missing("request.auth.claims.email".into()));
        let u = HeaderOps::new()
            .set_value("X-User", missing.clone(), OnMissing::Reject)
            .unwrap_err();
        assert_eq!(u.header, "x-user");
        let u = HeaderOps::new()
            .add_value("x-user", Ok("\u{7f}".into()), OnMissing::Reject)
            .unwrap_err();
        assert_eq!(u.why, NoValue::Unsafe);
        let o = wit(HeaderOps::new()
            .set_value("x-user", missing, OnMissing::Remove)
            .unwrap());
        assert_eq!(o.remove, ["x-user"]);
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

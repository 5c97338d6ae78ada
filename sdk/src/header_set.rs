//! The set rule: a header a policy is told to `set` never reaches the
//! upstream (or, on the response side, the client) carrying a value that
//! the client (or the upstream) sent.
//!
//! A `set` is the operator's promise about a header, typically an identity
//! (`X-Authenticated-User: $(request.auth.claims.email)`). When the value
//! cannot be computed for a request (a template variable is missing or empty,
//! a CEL expression fails or yields `null`, the text has a character a header
//! cannot carry) the old value must not survive, or a client that sends
//! `X-Authenticated-User: ceo@yourcompany.com` with a token lacking `email`
//! picks its own identity. So:
//!
//! - `set` with no value **removes** the header (every value, any case);
//! - `add` appends to what is there (the client's values included: use `set`
//!   for anything an upstream trusts); with no value it adds nothing;
//! - with [`OnMissing::Reject`] (`onMissing: reject` in the bundled
//!   plugins' config) either refuses the request instead ([`Unset`]).
//!
//! The helpers are on [`crate::HeaderOps`]: `set_or_remove`, `set_value`,
//! `add_value`; plain `set`/`add` follow the same rule for values a header
//! cannot carry.

use std::fmt;
use std::str::FromStr;

use serde::Deserialize;

use crate::Respond;

/// Why a header a policy sets has no value to send for this request.
///
/// The reasons never include the value itself: it may be a secret or the
/// attacker's text, and they end up in logs.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum NoValue {
    /// A template variable (named) had no value, or an expression yielded
    /// `null`.
    #[error("`{0}` has no value")]
    Missing(String),
    /// The value is empty (or only whitespace).
    #[error("the value is empty")]
    Empty,
    /// The value has a character a header cannot carry: a control character
    /// (CR/LF would split the header), DEL, or a non-ASCII character.
    #[error("the value has a character a header cannot carry")]
    Unsafe,
    /// The expression computing the value failed.
    #[error("the expression failed: {0}")]
    Failed(String),
}

/// Whether `value` can be sent as a header value as is: every byte is a
/// horizontal tab or visible ASCII/space (what the host's HTTP stack accepts;
/// anything else would make the host refuse the whole edit).
pub fn is_sendable(value: &str) -> bool {
    value
        .bytes()
        .all(|b| b == b'\t' || (b' '..=b'~').contains(&b))
}

/// `value` if it can be sent as a computed header value: not empty nor
/// whitespace only, and [`is_sendable`].
pub fn check(value: String) -> Result<String, NoValue> {
    if value.trim().is_empty() {
        Err(NoValue::Empty)
    } else if !is_sendable(&value) {
        Err(NoValue::Unsafe)
    } else {
        Ok(value)
    }
}

/// What a policy does with a `set` or `add` whose value it cannot compute
/// (config key `onMissing`).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum OnMissing {
    /// `set` removes the header, `add` adds nothing; the request goes on.
    #[default]
    Remove,
    /// The request (or response) is refused; see [`Unset`].
    Reject,
}

/// An `onMissing` value that is neither `remove` nor `reject`.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("`{0}` is not an onMissing value (expected remove or reject)")]
pub struct UnknownOnMissing(pub String);

impl FromStr for OnMissing {
    type Err = UnknownOnMissing;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        match s {
            "remove" => Ok(OnMissing::Remove),
            "reject" => Ok(OnMissing::Reject),
            other => Err(UnknownOnMissing(other.to_owned())),
        }
    }
}

impl fmt::Display for OnMissing {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            OnMissing::Remove => "remove",
            OnMissing::Reject => "reject",
        })
    }
}

/// A header that had to be set (or added) under [`OnMissing::Reject`] but
/// has no value: the policy refuses with [`Unset::refuse_request`] or
/// [`Unset::refuse_response`].
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("header `{header}` could not be set: {why}")]
pub struct Unset {
    /// The header's (lowercase) name.
    pub header: String,
    pub why: NoValue,
}

impl Unset {
    /// The refusal on the request side: **403** in the client's error shape
    /// (`permission_error` / `permission_denied`).
    ///
    /// Why 403: the request is well formed (not 400) and the gateway works
    /// (not 500, which would page the operator and make Claude Code and the
    /// SDKs retry a request that fails the same way every time). What is
    /// missing is almost always about who is asking (the token has no
    /// `email` claim, the client did not send the header the route copies),
    /// and the route's config says such a request may not go upstream:
    /// that is a refusal to this client, which SDKs do not retry.
    /// The message names the header, never a value.
    pub fn refuse_request(&self) -> Respond {
        Respond::status(403).message(format!(
            "request refused: header `{}` has no value for this request",
            self.header
        ))
    }

    /// The refusal on the response side: **502** in the client's error shape
    /// (`api_error` / `server_error`).
    ///
    /// Why 502: the client did nothing wrong (not 4xx); the upstream's answer
    /// lacks what the route needs to build the response it promises, which
    /// is what "bad gateway" means, and a retry may well succeed.
    pub fn refuse_response(&self) -> Respond {
        Respond::status(502).message(format!(
            "response refused: header `{}` has no value for this response",
            self.header
        ))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn check_refuses_empty_and_unsafe_values() {
        assert_eq!(check("a@b.c".into()), Ok("a@b.c".into()));
        assert_eq!(check("a b\tc~".into()), Ok("a b\tc~".into()));
        assert_eq!(check(String::new()), Err(NoValue::Empty));
        assert_eq!(check("  \t".into()), Err(NoValue::Empty));
        for bad in [
            "a\r\nx-admin: 1",
            "a\nb",
            "a\0b",
            "a\x7fb",
            "josé@x",
            "a\x01",
        ] {
            assert_eq!(check(bad.into()), Err(NoValue::Unsafe), "{bad:?}");
        }
    }

    #[test]
    fn on_missing_parses_two_values_only() {
        assert_eq!("remove".parse::<OnMissing>(), Ok(OnMissing::Remove));
        assert_eq!("reject".parse::<OnMissing>(), Ok(OnMissing::Reject));
        let e = "refuse".parse::<OnMissing>().unwrap_err();
        assert!(e.to_string().contains("remove or reject"), "{e}");
        assert_eq!(OnMissing::default(), OnMissing::Remove);
        assert!(serde_json::from_str::<OnMissing>("\"Reject\"").is_err());
        assert_eq!(
            serde_json::from_str::<OnMissing>("\"reject\"").unwrap(),
            OnMissing::Reject
        );
    }

    #[test]
    fn refusals_name_the_header_not_the_value() {
        let u = Unset {
            header: "x-authenticated-user".into(),
            why: NoValue::Missing("request.auth.claims.email".into()),
        };
        let r = u.refuse_request().build();
        assert_eq!(r.status, 403);
        assert!(r.message.contains("x-authenticated-user"), "{}", r.message);
        assert_eq!(u.refuse_response().build().status, 502);
        assert!(u.to_string().contains("request.auth.claims.email"));
    }
}

//! `$(...)` templates in header values: the one engine of every bundled
//! plugin (`transform`'s header modifiers, `jwt-auth`'s `onSuccess`), and of
//! any plugin that wants the same syntax.
//!
//! ```text
//! X-Authenticated-User: \\$(request.auth.claims.email)
//! X-Info: user=$(request.auth.sub) route=$(route.name)
//! ```
//!
//! - Everything outside `$(...)` is literal text; a `$` not followed by `(`
//!   is literal too.
//! - Backslashes right before `$(` are dropped: the guide writes
//!   `\\$(request.id)` in YAML (a shell-escaping habit carried into the
//!   file), so the value arrives with literal backslashes, and `\$(` and
//!   `\\$(` must mean what `$(` means.
//! - Spaces inside the parentheses are ignored: `$( request.id )`.
//! - Variable names are checked when the config loads ([`Template::parse`]),
//!   so a typo fails at startup instead of sending an empty header.
//!
//! Rendering is all or nothing: when any variable is missing or empty (a
//! claim the token does not carry, a header the client did not send), the
//! template has no value ([`NoValue::Missing`]) rather than a half-filled
//! one, so `user=` never reaches an upstream that would read it as an
//! identity. What a policy then does with the header is the set rule of
//! [`crate::header_set`]: a `set` removes it, an `add` adds nothing.

use std::fmt;

use serde_json::{Map, Value};

use crate::header_set::NoValue;

/// A template variable.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub enum Var {
    /// `request.id`
    RequestId,
    /// `request.path`
    RequestPath,
    /// `request.method`
    RequestMethod,
    /// `request.header.<name>` or `request.headers.<name>` (stored lowercase).
    RequestHeader(String),
    /// `request.auth.claims.<name>`: a claim by exact top-level name, else
    /// by dotted path into nested objects (see [`claim`]).
    Claim(String),
    /// `request.auth.claims`: every claim, as JSON text.
    Claims,
    /// `request.auth.sub`
    Sub,
    /// `request.auth.iss`
    Iss,
    /// `route.name`
    RouteName,
    /// `backend.name`
    BackendName,
    /// `apiKey.<name>` (or `apiKey.metadata`): the request attribute the
    /// `apiKey` policy set from the matched key's metadata.
    ApiKey(String),
}

impl fmt::Display for Var {
    /// The variable as written in a template (for logs and errors).
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Var::RequestId => f.write_str("request.id"),
            Var::RequestPath => f.write_str("request.path"),
            Var::RequestMethod => f.write_str("request.method"),
            Var::RequestHeader(h) => write!(f, "request.header.{h}"),
            Var::Claim(c) => write!(f, "request.auth.claims.{c}"),
            Var::Claims => f.write_str("request.auth.claims"),
            Var::Sub => f.write_str("request.auth.sub"),
            Var::Iss => f.write_str("request.auth.iss"),
            Var::RouteName => f.write_str("route.name"),
            Var::BackendName => f.write_str("backend.name"),
            Var::ApiKey(n) => write!(f, "apiKey.{n}"),
        }
    }
}

/// The variable names accepted in `$(...)`, for error messages.
pub const KNOWN: &str = "request.id, request.path, request.method, request.header.<name>, \
request.auth.sub, request.auth.iss, request.auth.claims, request.auth.claims.<name>, \
route.name, backend.name";

/// Why a template could not be parsed.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum TemplateError {
    #[error("unclosed `$(` in {0:?}")]
    Unclosed(String),
    #[error("unknown template variable `$({0})`; known: {KNOWN}")]
    Unknown(String),
    #[error("`$({name})`: missing {what} name")]
    NoName { name: String, what: &'static str },
}

#[derive(Debug, Clone, PartialEq, Eq)]
enum Part {
    Lit(String),
    Var(Var),
}

/// A parsed header value: literal text and variables.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Template {
    parts: Vec<Part>,
}

/// Where a template's variables are looked up. `None` (or an empty string)
/// means the variable has no value for this request.
pub trait Lookup {
    fn get(&self, var: &Var) -> Option<String>;
}

impl Template {
    /// Parse a header value; unknown variables and an unclosed `$(` are errors.
    pub fn parse(text: &str) -> Result<Template, TemplateError> {
        let mut parts = Vec::new();
        let mut lit = String::new();
        let mut rest = text;
        while let Some(pos) = rest.find("$(") {
            // Drop the escaping backslashes in front of `$(` (module doc).
            lit.push_str(rest[..pos].trim_end_matches('\\'));
            let after = &rest[pos + 2..];
            let end = after
                .find(')')
                .ok_or_else(|| TemplateError::Unclosed(text.to_owned()))?;
            let var = parse_var(after[..end].trim())?;
            if !lit.is_empty() {
                parts.push(Part::Lit(std::mem::take(&mut lit)));
            }
            parts.push(Part::Var(var));
            rest = &after[end + 1..];
        }
        lit.push_str(rest);
        if !lit.is_empty() {
            parts.push(Part::Lit(lit));
        }
        Ok(Template { parts })
    }

    /// The variables used, in order.
    pub fn vars(&self) -> impl Iterator<Item = &Var> {
        self.parts.iter().filter_map(|p| match p {
            Part::Var(v) => Some(v),
            Part::Lit(_) => None,
        })
    }

    /// The (lowercase) request header names this template copies: what a
    /// plugin declares in `reads_headers`.
    pub fn headers(&self) -> impl Iterator<Item = &str> {
        self.vars().filter_map(|v| match v {
            Var::RequestHeader(h) => Some(h.as_str()),
            _ => None,
        })
    }

    /// Whether the template is literal text only (it always renders).
    pub fn is_literal(&self) -> bool {
        self.vars().next().is_none()
    }

    /// The value, or [`NoValue::Missing`] naming the first variable that is
    /// missing or empty (see the module doc). The text is not checked for
    /// header safety here: that is [`crate::header_set::check`]'s job, done
    /// by the `HeaderOps` helpers.
    pub fn render(&self, lookup: &dyn Lookup) -> Result<String, NoValue> {
        let mut out = String::new();
        for p in &self.parts {
            match p {
                Part::Lit(s) => out.push_str(s),
                Part::Var(v) => match lookup.get(v) {
                    Some(value) if !value.is_empty() => out.push_str(&value),
                    _ => return Err(NoValue::Missing(v.to_string())),
                },
            }
        }
        Ok(out)
    }
}

fn parse_var(name: &str) -> Result<Var, TemplateError> {
    let named = |rest: &str, what: &'static str| {
        if rest.is_empty() {
            Err(TemplateError::NoName {
                name: name.to_owned(),
                what,
            })
        } else {
            Ok(rest.to_owned())
        }
    };
    Ok(match name {
        "request.id" => Var::RequestId,
        "request.path" => Var::RequestPath,
        "request.method" => Var::RequestMethod,
        "request.auth.sub" => Var::Sub,
        "request.auth.iss" => Var::Iss,
        "request.auth.claims" => Var::Claims,
        "route.name" => Var::RouteName,
        "backend.name" => Var::BackendName,
        _ => {
            if let Some(rest) = name.strip_prefix("request.auth.claims.") {
                Var::Claim(named(rest, "claim")?)
            } else if let Some(rest) = name.strip_prefix("apiKey.") {
                Var::ApiKey(named(rest, "apiKey attribute")?)
            } else if let Some(rest) = name
                .strip_prefix("request.header.")
                .or_else(|| name.strip_prefix("request.headers."))
            {
                Var::RequestHeader(named(rest, "header")?.to_ascii_lowercase())
            } else {
                return Err(TemplateError::Unknown(name.to_owned()));
            }
        }
    })
}

/// A claim by its exact top-level name (names such as
/// `https://example.com/roles` contain dots), else by dotted path into
/// nested objects (`org.id`).
pub fn claim<'a>(claims: &'a Map<String, Value>, name: &str) -> Option<&'a Value> {
    if let Some(v) = claims.get(name) {
        return Some(v);
    }
    let mut parts = name.split('.');
    let mut cur = claims.get(parts.next()?)?;
    for p in parts {
        cur = cur.as_object()?.get(p)?;
    }
    Some(cur)
}

/// A claim value as header or attribute text: strings as they are, anything
/// else as JSON (`7`, `["a","b"]`, `null`).
pub fn value_text(v: &Value) -> String {
    match v {
        Value::String(s) => s.clone(),
        other => other.to_string(),
    }
}

#[cfg(test)]
#[path = "template_tests.rs"]
mod tests;

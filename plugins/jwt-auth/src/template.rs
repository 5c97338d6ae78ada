//! `$(...)` templates in `onSuccess` header values.
//!
//! The guide writes `X-Authenticated-User: \\$(request.auth.claims.email)`:
//! the backslashes are a YAML/shell escaping habit, so any backslashes right
//! before `$(` are dropped and the rest is read as a template. Names are
//! checked when the config is loaded, so a typo fails at startup instead of
//! silently sending an empty header.

use serde_json::{Map, Value};

/// One piece of a parsed template.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Part {
    Lit(String),
    /// A claim, by top-level name or dotted path into nested objects.
    Claim(String),
    /// Every claim, as JSON text.
    Claims,
    Sub,
    Iss,
    RequestId,
    Header(String),
    Path,
    Method,
    Route,
}

/// A parsed template: literal text and variables.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Template(pub Vec<Part>);

/// What a template is rendered against.
pub struct Scope<'a> {
    pub claims: &'a Map<String, Value>,
    pub request_id: &'a str,
    pub route: &'a str,
    pub path: &'a str,
    pub method: &'a str,
    pub headers: &'a [(String, String)],
}

/// The variable names accepted in `$(...)`, for error messages.
pub const KNOWN: &str = "request.auth.claims.<name>, request.auth.claims, request.auth.sub, \
request.auth.iss, request.id, request.header.<name>, request.path, request.method, route.name";

impl Template {
    pub fn parse(text: &str) -> Result<Template, String> {
        let mut parts = Vec::new();
        let mut lit = String::new();
        let mut rest = text;
        while let Some(at) = rest.find("$(") {
            let before = rest[..at].trim_end_matches('\\');
            lit.push_str(before);
            let after = &rest[at + 2..];
            let close = after
                .find(')')
                .ok_or_else(|| format!("unterminated `$(` in `{text}`"))?;
            let name = after[..close].trim();
            if !lit.is_empty() {
                parts.push(Part::Lit(std::mem::take(&mut lit)));
            }
            parts.push(variable(name)?);
            rest = &after[close + 1..];
        }
        lit.push_str(rest);
        if !lit.is_empty() {
            parts.push(Part::Lit(lit));
        }
        Ok(Template(parts))
    }

    /// Header names whose values this template copies.
    pub fn headers(&self) -> impl Iterator<Item = &str> {
        self.0.iter().filter_map(|p| match p {
            Part::Header(h) => Some(h.as_str()),
            _ => None,
        })
    }

    /// Render, dropping control characters so a claim can't split a header.
    pub fn render(&self, s: &Scope) -> String {
        let mut out = String::new();
        for p in &self.0 {
            match p {
                Part::Lit(t) => out.push_str(t),
                Part::Claim(name) => {
                    if let Some(v) = claim(s.claims, name) {
                        out.push_str(&value_text(v));
                    }
                }
                Part::Claims => out.push_str(&Value::Object(s.claims.clone()).to_string()),
                Part::Sub => push_str_claim(&mut out, s.claims, "sub"),
                Part::Iss => push_str_claim(&mut out, s.claims, "iss"),
                Part::RequestId => out.push_str(s.request_id),
                Part::Header(h) => {
                    if let Some((_, v)) = s.headers.iter().find(|(k, _)| k.eq_ignore_ascii_case(h))
                    {
                        out.push_str(v);
                    }
                }
                Part::Path => out.push_str(s.path),
                Part::Method => out.push_str(s.method),
                Part::Route => out.push_str(s.route),
            }
        }
        out.retain(|c| c == '\t' || !c.is_control());
        out
    }
}

fn push_str_claim(out: &mut String, claims: &Map<String, Value>, name: &str) {
    if let Some(v) = claims.get(name) {
        out.push_str(&value_text(v));
    }
}

/// Claim values as attribute/header text: strings as-is, the rest as JSON.
pub fn value_text(v: &Value) -> String {
    match v {
        Value::String(s) => s.clone(),
        other => other.to_string(),
    }
}

/// A claim by its exact top-level name (names such as
/// `https://example.com/roles` contain dots), else by dotted path.
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

fn variable(name: &str) -> Result<Part, String> {
    let non_empty = |rest: &str, what: &str| {
        if rest.is_empty() {
            Err(format!("`$({name})` names no {what}"))
        } else {
            Ok(rest.to_owned())
        }
    };
    Ok(match name {
        "request.auth.claims" => Part::Claims,
        "request.auth.sub" => Part::Sub,
        "request.auth.iss" => Part::Iss,
        "request.id" => Part::RequestId,
        "request.path" => Part::Path,
        "request.method" => Part::Method,
        "route.name" => Part::Route,
        _ => {
            if let Some(rest) = name.strip_prefix("request.auth.claims.") {
                Part::Claim(non_empty(rest, "claim")?)
            } else if let Some(rest) = name
                .strip_prefix("request.header.")
                .or_else(|| name.strip_prefix("request.headers."))
            {
                Part::Header(non_empty(rest, "header")?.to_ascii_lowercase())
            } else {
                return Err(format!(
                    "unknown template variable `$({name})`; known: {KNOWN}"
                ));
            }
        }
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn scope_with<'a>(
        claims: &'a Map<String, Value>,
        headers: &'a [(String, String)],
    ) -> Scope<'a> {
        Scope {
            claims,
            request_id: "req-1",
            route: "claude-agent",
            path: "/claude/v1/messages",
            method: "POST",
            headers,
        }
    }

    #[test]
    fn guide_escapes_are_templates() {
        for text in [
            r"\\$(request.auth.claims.email)",
            r"\$(request.auth.claims.email)",
            "$(request.auth.claims.email)",
            "$( request.auth.claims.email )",
        ] {
            let t = Template::parse(text).unwrap();
            assert_eq!(t.0, vec![Part::Claim("email".into())], "{text}");
        }
    }

    #[test]
    fn renders_every_variable() {
        let c = json!({"email": "a@b.c", "sub": "u1", "iss": "https://i", "n": 5,
            "org": {"id": "o1"}, "https://x.io/roles": ["r"]});
        let claims = c.as_object().unwrap();
        let headers = vec![("x-team".to_string(), "blue".to_string())];
        let s = scope_with(claims, &headers);
        let t = Template::parse(
            "u=$(request.auth.claims.email) s=$(request.auth.sub) i=$(request.auth.iss) \
             n=$(request.auth.claims.n) o=$(request.auth.claims.org.id) \
             r=$(request.auth.claims.https://x.io/roles) id=$(request.id) \
             h=$(request.header.X-Team) m=$(request.method) p=$(request.path) rt=$(route.name) \
             missing=[$(request.auth.claims.nope)]",
        )
        .unwrap();
        assert_eq!(
            t.render(&s),
            "u=a@b.c s=u1 i=https://i n=5 o=o1 r=[\"r\"] id=req-1 h=blue m=POST \
             p=/claude/v1/messages rt=claude-agent missing=[]"
        );
        let all = Template::parse("$(request.auth.claims)")
            .unwrap()
            .render(&s);
        assert_eq!(serde_json::from_str::<Value>(&all).unwrap(), c);
    }

    #[test]
    fn unknown_and_malformed_are_errors() {
        let e = Template::parse("$(request.auth.claim.email)").unwrap_err();
        assert!(e.contains("unknown template variable"), "{e}");
        assert!(Template::parse("$(request.auth.claims.email").is_err());
        assert!(Template::parse("$(request.auth.claims.)").is_err());
        assert!(Template::parse("$(request.header.)").is_err());
        // A `$` without `(` is literal.
        assert_eq!(
            Template::parse("cost $5").unwrap().0,
            vec![Part::Lit("cost $5".into())]
        );
    }

    #[test]
    fn control_characters_are_dropped() {
        let c = json!({"email": "a@b.c\r\nX-Evil: 1"});
        let s = scope_with(c.as_object().unwrap(), &[]);
        let t = Template::parse("$(request.auth.claims.email)").unwrap();
        assert_eq!(t.render(&s), "a@b.cX-Evil: 1");
    }
}

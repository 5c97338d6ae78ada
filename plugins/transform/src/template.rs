//! `$(...)` templates in header values, e.g. `$(request.auth.claims.email)`.
//!
//! The guide writes them as `\\$(request.id)` in YAML (a shell-escaping habit
//! carried into the file), so the value arrives with two literal backslashes;
//! `\$(` and `\\$(` are therefore read as the start of a template, exactly
//! like `$(`. Everything outside `$(...)` is literal text.
//!
//! Rendering: a variable that is missing or empty (a claim the token does
//! not carry, a request header the client did not send) makes the whole
//! header be skipped rather than sent half-filled or empty, so an upstream
//! never mistakes `X-Authenticated-User: ` for an authenticated identity.

/// A template variable.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Var {
    RequestId,
    RequestPath,
    RequestMethod,
    /// `request.header.<name>` (stored lowercase).
    RequestHeader(String),
    /// `request.auth.claims.<name>`, read from attribute `auth.claims.<name>`.
    Claim(String),
    /// `request.auth.sub`, read from attribute `auth.sub`.
    Sub,
    RouteName,
    BackendName,
}

#[derive(Debug, Clone, PartialEq, Eq)]
enum Part {
    Lit(String),
    Var(Var),
}

/// A parsed header value.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Template {
    parts: Vec<Part>,
}

/// Where a template's variables are looked up.
pub trait Lookup {
    fn get(&self, var: &Var) -> Option<String>;
}

impl Template {
    /// Parse a header value; unknown variables and unclosed `$(` are errors.
    pub fn parse(text: &str) -> Result<Template, String> {
        let mut parts = Vec::new();
        let mut lit = String::new();
        let mut rest = text;
        while let Some(pos) = rest.find("$(") {
            // Drop the escaping backslashes in front of `$(`.
            let before = rest[..pos].trim_end_matches('\\');
            lit.push_str(before);
            let after = &rest[pos + 2..];
            let end = after
                .find(')')
                .ok_or_else(|| format!("unclosed `$(` in {text:?}"))?;
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

    /// The variables used.
    pub fn vars(&self) -> impl Iterator<Item = &Var> {
        self.parts.iter().filter_map(|p| match p {
            Part::Var(v) => Some(v),
            Part::Lit(_) => None,
        })
    }

    /// The value, or `None` when a variable is missing or empty (the header
    /// is then not set; see the module doc).
    pub fn render(&self, lookup: &dyn Lookup) -> Option<String> {
        let mut out = String::new();
        for p in &self.parts {
            match p {
                Part::Lit(s) => out.push_str(s),
                Part::Var(v) => {
                    let value = lookup.get(v).filter(|s| !s.is_empty())?;
                    out.push_str(&value);
                }
            }
        }
        Some(out)
    }
}

fn parse_var(name: &str) -> Result<Var, String> {
    let nonempty = |rest: &str, what: &str| {
        if rest.is_empty() {
            Err(format!("`$({name})`: missing {what} name"))
        } else {
            Ok(rest.to_owned())
        }
    };
    Ok(match name {
        "request.id" => Var::RequestId,
        "request.path" => Var::RequestPath,
        "request.method" => Var::RequestMethod,
        "request.auth.sub" => Var::Sub,
        "route.name" => Var::RouteName,
        "backend.name" => Var::BackendName,
        _ => {
            if let Some(rest) = name.strip_prefix("request.auth.claims.") {
                Var::Claim(nonempty(rest, "claim")?)
            } else if let Some(rest) = name.strip_prefix("request.header.") {
                Var::RequestHeader(nonempty(rest, "header")?.to_ascii_lowercase())
            } else if let Some(rest) = name.strip_prefix("request.headers.") {
                Var::RequestHeader(nonempty(rest, "header")?.to_ascii_lowercase())
            } else {
                return Err(format!(
                    "unknown template variable `$({name})`; known: request.id, request.path, \
                     request.method, request.header.<name>, request.auth.sub, \
                     request.auth.claims.<name>, route.name, backend.name"
                ));
            }
        }
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::collections::HashMap;

    struct M(HashMap<&'static str, &'static str>);
    impl Lookup for M {
        fn get(&self, var: &Var) -> Option<String> {
            let key = match var {
                Var::RequestId => "id".to_string(),
                Var::Claim(c) => format!("claim:{c}"),
                Var::RequestHeader(h) => format!("header:{h}"),
                other => format!("{other:?}"),
            };
            self.0.get(key.as_str()).map(|s| s.to_string())
        }
    }

    fn lookup() -> M {
        M(HashMap::from([
            ("id", "req-1"),
            ("claim:email", "a@b.c"),
            ("header:x-user", "bob"),
            ("RouteName", "r"),
        ]))
    }

    #[test]
    fn plain_and_escaped_forms_are_the_same_template() {
        for text in [
            "$(request.id)",
            "\\$(request.id)",
            "\\\\$(request.id)",
            " $( request.id )",
        ] {
            let t = Template::parse(text).unwrap();
            let expect = if text.starts_with(' ') {
                " req-1"
            } else {
                "req-1"
            };
            assert_eq!(t.render(&lookup()).as_deref(), Some(expect), "{text}");
        }
    }

    #[test]
    fn literals_and_mixed() {
        let t = Template::parse("user=$(request.auth.claims.email);r=$(route.name)!").unwrap();
        assert_eq!(t.render(&lookup()).as_deref(), Some("user=a@b.c;r=r!"));
        let t = Template::parse("1.2").unwrap();
        assert_eq!(t.render(&lookup()).as_deref(), Some("1.2"));
        let t = Template::parse("$(request.header.X-User)").unwrap();
        assert_eq!(t.render(&lookup()).as_deref(), Some("bob"));
    }

    #[test]
    fn missing_variable_skips_the_header() {
        let t = Template::parse("\\\\$(request.auth.claims.phone)").unwrap();
        assert_eq!(t.render(&lookup()), None);
        let t = Template::parse("Bearer $(request.auth.sub)").unwrap();
        assert_eq!(t.render(&lookup()), None);
    }

    #[test]
    fn bad_templates_are_rejected() {
        assert!(Template::parse("$(request.nope)")
            .unwrap_err()
            .contains("unknown template variable"));
        assert!(Template::parse("$(foo.bar)").is_err());
        assert!(Template::parse("$(request.id")
            .unwrap_err()
            .contains("unclosed"));
        assert!(Template::parse("$(request.auth.claims.)").is_err());
    }
}

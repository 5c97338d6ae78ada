//! The engine's tests: the union of what the two plugin copies it replaces
//! tested, plus the all-or-nothing rendering every plugin now shares.

use super::*;
use serde_json::json;
use std::collections::HashMap;

/// Variables by their template name (`request.id`, `request.header.x-user`).
struct M(HashMap<String, String>);

impl Lookup for M {
    fn get(&self, var: &Var) -> Option<String> {
        self.0.get(&var.to_string()).cloned()
    }
}

fn lookup() -> M {
    M([
        ("request.id", "req-1"),
        ("request.path", "/claude/v1/messages"),
        ("request.method", "POST"),
        ("request.auth.claims.email", "a@b.c"),
        ("request.auth.sub", "u1"),
        ("request.auth.iss", "https://i"),
        ("request.header.x-user", "bob"),
        ("request.header.x-empty", ""),
        ("route.name", "claude-agent"),
        ("backend.name", "anthropic"),
        ("apiKey.user", "alice"),
    ]
    .into_iter()
    .map(|(k, v)| (k.to_owned(), v.to_owned()))
    .collect())
}

fn render(text: &str) -> Result<String, NoValue> {
    Template::parse(text).unwrap().render(&lookup())
}

#[test]
fn plain_and_escaped_forms_are_the_same_template() {
    // The guide's YAML `\\$(...)` arrives with two literal backslashes.
    for text in [
        "$(request.auth.claims.email)",
        r"\$(request.auth.claims.email)",
        r"\\$(request.auth.claims.email)",
        "$( request.auth.claims.email )",
    ] {
        let t = Template::parse(text).unwrap();
        assert_eq!(t, Template::parse("$(request.auth.claims.email)").unwrap());
        assert_eq!(t.vars().collect::<Vec<_>>(), [&Var::Claim("email".into())]);
        assert_eq!(t.render(&lookup()).as_deref(), Ok("a@b.c"), "{text}");
    }
    assert_eq!(render(r" \\$(request.id)").as_deref(), Ok(" req-1"));
}

#[test]
fn every_variable_and_literal_text() {
    assert_eq!(
        render(
            "id=$(request.id) p=$(request.path) m=$(request.method) u=$(request.auth.claims.email) \
             s=$(request.auth.sub) i=$(request.auth.iss) h=$(request.header.X-User) \
             hs=$(request.headers.x-user) r=$(route.name) b=$(backend.name) k=$(apiKey.user)"
        )
        .as_deref(),
        Ok("id=req-1 p=/claude/v1/messages m=POST u=a@b.c s=u1 i=https://i h=bob hs=bob \
            r=claude-agent b=anthropic k=alice")
    );
    assert_eq!(
        Template::parse("$(apiKey.team)")
            .unwrap()
            .vars()
            .collect::<Vec<_>>(),
        [&Var::ApiKey("team".into())]
    );
    assert!(Template::parse("$(apiKey.)").is_err());
    assert_eq!(render("1.2").as_deref(), Ok("1.2"));
    assert_eq!(render("cost $5, (x)").as_deref(), Ok("cost $5, (x)"));
    assert!(Template::parse("1.2").unwrap().is_literal());
    assert!(!Template::parse("$(request.id)").unwrap().is_literal());
}

#[test]
fn a_missing_or_empty_variable_leaves_no_value() {
    let missing = |var: &str| Err(NoValue::Missing(var.into()));
    assert_eq!(
        render(r"\\$(request.auth.claims.phone)"),
        missing("request.auth.claims.phone")
    );
    // Never half-filled: no `user=` for an upstream to trust.
    assert_eq!(
        render("user=$(request.auth.claims.phone) r=$(route.name)"),
        missing("request.auth.claims.phone")
    );
    assert_eq!(
        render("$(request.header.x-empty)"),
        missing("request.header.x-empty")
    );
    assert_eq!(
        render("$(request.header.x-absent)"),
        missing("request.header.x-absent")
    );
}

#[test]
fn header_names_are_lowercased_and_listed() {
    let t =
        Template::parse("$(request.header.X-Team)/$(request.headers.X-Org) $(request.id)").unwrap();
    assert_eq!(t.headers().collect::<Vec<_>>(), ["x-team", "x-org"]);
}

#[test]
fn bad_templates_are_rejected_with_a_reason() {
    let e = Template::parse("$(request.auth.claim.email)").unwrap_err();
    assert!(matches!(e, TemplateError::Unknown(_)));
    assert!(e.to_string().contains("unknown template variable"), "{e}");
    assert!(e.to_string().contains("request.auth.claims.<name>"), "{e}");
    assert!(Template::parse("$(foo.bar)").is_err());
    let e = Template::parse("$(request.id").unwrap_err();
    assert!(e.to_string().contains("unclosed"), "{e}");
    for empty in ["$(request.auth.claims.)", "$(request.header.)", "$()"] {
        assert!(Template::parse(empty).is_err(), "{empty}");
    }
}

#[test]
fn rendering_does_not_clean_values() {
    // Control characters are the set rule's business (`header_set::check`
    // refuses them): the engine never silently rewrites an identity.
    let m = M([(
        "request.auth.claims.email".to_owned(),
        "a@b.c\r\nx-admin: 1".to_owned(),
    )]
    .into_iter()
    .collect());
    let v = Template::parse("$(request.auth.claims.email)")
        .unwrap()
        .render(&m)
        .unwrap();
    assert_eq!(
        crate::header_set::check(v),
        Err(crate::header_set::NoValue::Unsafe)
    );
}

#[test]
fn claims_by_exact_name_then_dotted_path() {
    let c = json!({"email": "a@b.c", "n": 5, "org": {"id": "o1"},
        "https://x.io/roles": ["r"], "a.b": "flat", "a": {"b": "nested"}});
    let claims = c.as_object().unwrap();
    let text = |name: &str| claim(claims, name).map(value_text);
    assert_eq!(text("email").as_deref(), Some("a@b.c"));
    assert_eq!(text("n").as_deref(), Some("5"));
    assert_eq!(text("org.id").as_deref(), Some("o1"));
    assert_eq!(text("https://x.io/roles").as_deref(), Some(r#"["r"]"#));
    assert_eq!(text("a.b").as_deref(), Some("flat"), "exact name first");
    assert_eq!(text("org.nope"), None);
    assert_eq!(text("email.x"), None);
}

#[test]
fn variables_print_as_written() {
    for text in [
        "request.id",
        "request.path",
        "request.method",
        "request.header.x-a",
        "request.auth.claims.email",
        "request.auth.claims",
        "request.auth.sub",
        "request.auth.iss",
        "route.name",
        "backend.name",
    ] {
        let t = Template::parse(&format!("$({text})")).unwrap();
        assert_eq!(t.vars().next().unwrap().to_string(), text);
    }
}

//! agentgateway's `ai.promptGuard` config, parsed once for every plugin that
//! implements a side of it (input-validation: `request`; output-mask:
//! `response`, and `request` mask guards when it also guards responses).
//!
//! ```yaml
//! promptGuard:
//!   request:                     # or response; a list of guards, or one guard
//!   - regex:
//!       action: reject           # or mask (the default, as in agentgateway)
//!       rules:                   # each: builtin, or pattern/regex (+ name, replacement)
//!       - builtin: email         # email, phone, ssn, creditCard, ipAddress, caSin
//!       - pattern: "key-[0-9]+"
//!         name: api key          # masks read <API_KEY>
//!       builtins: [ssn]          # Kubernetes CRD spellings
//!       matches: ["secret-\\d+"]
//!     rejection: {status: 403, body: "...", headers: {set: {x-reason: pii}}}
//! ```
//!
//! Regex syntax is checked by the plugin that compiles it; everything else
//! (shape, names, builtins, statuses) is checked here, with the key path.

use serde_json::{Map, Value};

use crate::config::{kind, list, object, only_keys, status, string, Path, Result};
use crate::pii::{Builtin, BUILTIN_NAMES};

/// What a guard does with a match.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum GuardAction {
    /// Replace each match (agentgateway's default).
    Mask,
    /// Refuse the request, or a JSON response, with the guard's rejection.
    Reject,
}

/// One pattern of a guard.
#[derive(Debug, Clone, PartialEq)]
pub enum GuardRule {
    /// A built-in detector (`ipAddress` stands for two).
    Builtin {
        /// As written in the config.
        name: String,
        builtins: &'static [Builtin],
    },
    /// A user regex.
    Pattern {
        pattern: String,
        name: Option<String>,
        replacement: Option<String>,
        /// Where it was written, for regex compile errors.
        at: Path,
    },
}

impl GuardRule {
    /// The mask text: the explicit replacement, `<NAME>` from a rule name,
    /// or `<MASKED>`.
    pub fn replacement(&self) -> String {
        match self {
            GuardRule::Builtin { builtins, .. } => builtins[0].mask().to_owned(),
            GuardRule::Pattern {
                replacement: Some(r),
                ..
            } => r.clone(),
            GuardRule::Pattern { name, .. } => default_replacement(name.as_deref()),
        }
    }
}

/// `<NAME>` from a rule name, `<MASKED>` without one.
pub fn default_replacement(name: Option<&str>) -> String {
    match name {
        Some(n) if !n.trim().is_empty() => {
            let n: String = n
                .trim()
                .chars()
                .map(|c| {
                    if c.is_alphanumeric() {
                        c.to_ascii_uppercase()
                    } else {
                        '_'
                    }
                })
                .collect();
            format!("<{n}>")
        }
        _ => "<MASKED>".to_owned(),
    }
}

/// A guard's `rejection`.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Rejection {
    /// `None`: the implementing plugin's default.
    pub status: Option<u16>,
    pub body: Option<String>,
    /// Lowercase names.
    pub headers: Vec<(String, String)>,
}

/// One `regex` guard.
#[derive(Debug, Clone, PartialEq)]
pub struct Guard {
    pub at: Path,
    pub action: GuardAction,
    pub rules: Vec<GuardRule>,
    pub rejection: Option<Rejection>,
}

/// The whole `promptGuard` block.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct PromptGuard {
    pub request: Vec<Guard>,
    pub response: Vec<Guard>,
}

/// Guard types agentgateway knows that the bundled plugins do not implement.
const OTHER_GUARDS: [&str; 6] = [
    "webhook",
    "openAIModeration",
    "bedrockGuardrails",
    "googleModelArmor",
    "azureContentSafety",
    "moderation",
];

/// Parse a `promptGuard` block found at `at`.
pub fn parse(v: &Value, at: impl Into<Path>) -> Result<PromptGuard> {
    let at = at.into();
    let m = object(v, &at)?;
    only_keys(m, &at, &["request", "response"])?;
    let mut pg = PromptGuard::default();
    for (side, out) in [("request", &mut pg.request), ("response", &mut pg.response)] {
        let Some(v) = m.get(side).filter(|v| !v.is_null()) else {
            continue;
        };
        let here = at.key(side);
        let guards: Vec<(Path, &Value)> = match v {
            Value::Object(_) => vec![(here.clone(), v)],
            Value::Array(_) => list(v, &here)?,
            other => {
                return Err(here.error(format!("must be a list of guards, got {}", kind(other))))
            }
        };
        for (gat, g) in guards {
            out.push(guard(g, gat)?);
        }
    }
    Ok(pg)
}

fn guard(v: &Value, at: Path) -> Result<Guard> {
    let g = object(v, &at)?;
    if let Some(other) = OTHER_GUARDS.iter().find(|k| g.contains_key(**k)) {
        return Err(at
            .key(other)
            .error("this guard type is not supported by sluice (only `regex` guards are)"));
    }
    only_keys(g, &at, &["regex", "rejection"])?;
    let rat = at.key("regex");
    let regex = object(
        g.get("regex")
            .ok_or_else(|| at.error("a guard needs `regex`"))?,
        &rat,
    )?;
    only_keys(regex, &rat, &["action", "rules", "builtins", "matches"])?;
    let (action, mut rejection) = match regex.get("action") {
        None | Some(Value::Null) => (GuardAction::Mask, None),
        Some(v) => action(v, rat.key("action"))?,
    };
    if let Some(r) = g.get("rejection") {
        rejection = Some(parse_rejection(r, at.key("rejection"))?);
    }
    let mut rules = Vec::new();
    if let Some(v) = regex.get("rules") {
        for (p, item) in list(v, rat.key("rules"))? {
            let r = object(item, &p)?;
            match r.get("builtin") {
                Some(b) => {
                    only_keys(r, &p, &["builtin", "name"])?;
                    rules.push(builtin(b, p.key("builtin"))?);
                }
                None => rules.push(pattern(r, &p)?),
            }
        }
    }
    if let Some(v) = regex.get("builtins") {
        for (p, item) in list(v, rat.key("builtins"))? {
            rules.push(builtin(item, p)?);
        }
    }
    if let Some(v) = regex.get("matches") {
        for (p, item) in list(v, rat.key("matches"))? {
            match item {
                Value::String(s) => rules.push(GuardRule::Pattern {
                    pattern: nonempty(s, &p)?,
                    name: None,
                    replacement: None,
                    at: p,
                }),
                other => rules.push(pattern(object(other, &p)?, &p)?),
            }
        }
    }
    if rules.is_empty() {
        return Err(rat.error("has no patterns (give `builtins`, `rules` or `matches`)"));
    }
    Ok(Guard {
        at,
        action,
        rules,
        rejection,
    })
}

/// `mask`, `reject`, or the older `{mask: {}}` / `{reject: {response: ...}}`.
fn action(v: &Value, at: Path) -> Result<(GuardAction, Option<Rejection>)> {
    match v {
        Value::String(s) if s.eq_ignore_ascii_case("mask") => Ok((GuardAction::Mask, None)),
        Value::String(s) if s.eq_ignore_ascii_case("reject") => Ok((GuardAction::Reject, None)),
        Value::Object(o) if o.len() == 1 && o.contains_key("mask") => Ok((GuardAction::Mask, None)),
        Value::Object(o) if o.len() == 1 && o.contains_key("reject") => {
            let r = &o["reject"];
            let rej = match r.get("response") {
                Some(resp) => Some(parse_rejection(resp, at.key("reject").key("response"))?),
                None => None,
            };
            Ok((GuardAction::Reject, rej))
        }
        Value::String(s) => Err(at.error(format!("must be `mask` or `reject`, got `{s}`"))),
        other => Err(at.error(format!("must be `mask` or `reject`, got {}", kind(other)))),
    }
}

fn nonempty(s: &str, at: &Path) -> Result<String> {
    if s.is_empty() {
        return Err(at.error("must not be empty (it would match everything)"));
    }
    Ok(s.to_owned())
}

fn builtin(v: &Value, at: Path) -> Result<GuardRule> {
    let name = string(v, &at)?;
    let builtins = Builtin::parse(name).ok_or_else(|| {
        at.error(format!(
            "unknown builtin `{name}` (built-in patterns: {BUILTIN_NAMES})"
        ))
    })?;
    Ok(GuardRule::Builtin {
        name: name.to_owned(),
        builtins,
    })
}

/// `{pattern|regex: "...", name?: "...", replacement?: "..."}`.
fn pattern(r: &Map<String, Value>, at: &Path) -> Result<GuardRule> {
    only_keys(r, at, &["pattern", "regex", "name", "replacement"])?;
    let (key, pat) = match (r.get("pattern"), r.get("regex")) {
        (Some(p), None) => ("pattern", p),
        (None, Some(p)) => ("regex", p),
        (Some(_), Some(_)) => return Err(at.error("give `pattern` or `regex`, not both")),
        (None, None) => return Err(at.error("a rule needs exactly one of `builtin`, `pattern`")),
    };
    let pat_at = at.key(key);
    let pattern = nonempty(string(pat, &pat_at)?, &pat_at)?;
    let opt = |k: &str| -> Result<Option<String>> {
        match r.get(k) {
            None | Some(Value::Null) => Ok(None),
            Some(v) => string(v, at.key(k)).map(|s| Some(s.to_owned())),
        }
    };
    Ok(GuardRule::Pattern {
        pattern,
        name: opt("name")?,
        replacement: opt("replacement")?,
        at: pat_at,
    })
}

/// `{status?, body?, headers?: {set?, add?}}`; headers as a map or a list
/// of `{name, value}`.
fn parse_rejection(v: &Value, at: Path) -> Result<Rejection> {
    let m = object(v, &at)?;
    only_keys(m, &at, &["status", "body", "headers"])?;
    let mut r = Rejection::default();
    if let Some(s) = m.get("status") {
        r.status = Some(status(s, at.key("status"), 400..=599)?);
    }
    match m.get("body") {
        None | Some(Value::Null) => {}
        Some(v) => r.body = Some(string(v, at.key("body"))?.to_owned()),
    }
    if let Some(h) = m.get("headers") {
        let hat = at.key("headers");
        let hm = object(h, &hat)?;
        only_keys(hm, &hat, &["set", "add"])?;
        for op in ["set", "add"] {
            let Some(pairs) = hm.get(op) else { continue };
            let oat = hat.key(op);
            match pairs {
                Value::Object(p) => {
                    for (k, v) in p {
                        let v = string(v, oat.key(k))?;
                        r.headers.push((k.to_ascii_lowercase(), v.to_owned()));
                    }
                }
                Value::Array(_) => {
                    for (p, item) in list(pairs, &oat)? {
                        let o = object(item, &p)?;
                        only_keys(o, &p, &["name", "value"])?;
                        let get = |k: &str| -> Result<&str> {
                            string(o.get(k).unwrap_or(&Value::Null), p.key(k))
                        };
                        r.headers
                            .push((get("name")?.to_ascii_lowercase(), get("value")?.to_owned()));
                    }
                }
                other => {
                    return Err(oat.error(format!(
                        "must be a map of header: value, got {}",
                        kind(other)
                    )))
                }
            }
        }
    }
    Ok(r)
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn err(v: Value) -> String {
        parse(&v, "promptGuard").unwrap_err().to_string()
    }

    #[test]
    fn every_shape() {
        let pg = parse(&json!({
            "request": [
                {"regex": {"action": "reject", "rules": [{"pattern": "SSN"}, {"builtin": "email"}]},
                 "rejection": {"status": 403, "body": "{\"error\":{\"message\":\"no\"}}",
                               "headers": {"set": {"X-Reason": "pii"}, "add": [{"name": "x-a", "value": "b"}]}}},
                {"regex": {"builtins": ["ssn", "ipAddress"], "matches": ["secret-\\d+", {"pattern": "k-\\d+", "name": "api key"}]}}],
            "response": {"regex": {"action": {"reject": {"response": {"status": 451, "body": "no"}}}, "rules": [{"builtin": "phoneNumber"}]}}
        }), "promptGuard").unwrap();
        assert_eq!(pg.request.len(), 2);
        let g = &pg.request[0];
        assert_eq!(g.action, GuardAction::Reject);
        assert_eq!(g.at.as_str(), "promptGuard.request[0]");
        let rej = g.rejection.as_ref().unwrap();
        assert_eq!(rej.status, Some(403));
        assert_eq!(
            rej.headers,
            [
                ("x-reason".into(), "pii".into()),
                ("x-a".into(), "b".into())
            ]
        );
        // No action: agentgateway masks.
        assert_eq!(pg.request[1].action, GuardAction::Mask);
        assert_eq!(pg.request[1].rules.len(), 4);
        assert_eq!(pg.request[1].rules[3].replacement(), "<API_KEY>");
        assert_eq!(pg.request[1].rules[0].replacement(), "<SSN>");
        assert_eq!(pg.response[0].action, GuardAction::Reject);
        assert_eq!(pg.response[0].rejection.as_ref().unwrap().status, Some(451));
        assert_eq!(pg.response[0].at.as_str(), "promptGuard.response");
    }

    #[test]
    fn errors_name_the_key() {
        for (v, needle) in [
            (
                json!({"request": [{"webhook": {}}]}),
                "promptGuard.request[0].webhook",
            ),
            (
                json!({"request": [{"regex": {"action": "log", "rules": [{"builtin": "ssn"}]}}]}),
                "promptGuard.request[0].regex.action",
            ),
            (
                json!({"request": [{"regex": {"rules": [{"builtin": "iban"}]}}]}),
                "iban",
            ),
            (
                json!({"request": [{"regex": {"rules": []}}]}),
                "no patterns",
            ),
            (
                json!({"request": [{"regex": {"rules": [{"pattern": ""}]}}]}),
                "rules[0].pattern",
            ),
            (
                json!({"request": [{"regex": {"rules": [{"builtin": "ssn"}]}, "rejection": {"code": 1}}]}),
                "rejection.code",
            ),
            (
                json!({"request": [{"regex": {"rules": [{"builtin": "ssn"}]}, "rejection": {"status": 200}}]}),
                "rejection.status",
            ),
            (
                json!({"request": [{"regex": {"rules": [{"builtin": "ssn"}]}, "rejection": {"headers": {"remove": ["x"]}}}]}),
                "headers.remove",
            ),
            (
                json!({"response": [{"regex": {"builtins": ["Foo"]}}]}),
                "promptGuard.response[0].regex.builtins[0]",
            ),
            (json!({"other": []}), "promptGuard.other"),
            (json!({"request": 3}), "promptGuard.request"),
        ] {
            let e = err(v.clone());
            assert!(e.contains(needle), "{v}: {e}");
        }
    }
}

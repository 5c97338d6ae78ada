//! Config parsing and matching: the guide's `inputValidation` and
//! agentgateway's `ai.promptGuard.request` regex guards.

use std::borrow::Cow;

use regex::{Regex, RegexBuilder};
use serde_json::Value;
use sluice_sdk::ai::{normalize, normalize_keep_case};
use sluice_sdk::config::{self as cfg, object, Path};
use sluice_sdk::pii::Builtin;
use sluice_sdk::prompt_guard::{self, GuardAction, GuardRule};

/// What a matching rule does.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Action {
    Reject,
    /// Replace each match in the prompt text with the rule's placeholder.
    Mask,
}

/// Accepted matches of a built-in detector in `text`: regex candidates that
/// pass the SDK's validator (boundaries, Luhn, ranges).
fn builtin_matches(b: Builtin, re: &Regex, text: &str) -> Vec<(usize, usize)> {
    let mut out = Vec::new();
    let mut pos = 0;
    while pos <= text.len() {
        let Some(m) = re.find_at(text, pos) else {
            break;
        };
        let prev = text[..m.start()].chars().next_back();
        match b.accept(text, m.start(), m.end(), prev) {
            Some(end) if end > m.start() => {
                out.push((m.start(), end));
                pos = end;
            }
            _ => pos = m.start() + text[m.start()..].chars().next().map_or(1, char::len_utf8),
        }
    }
    out
}

#[derive(Debug, Clone)]
pub enum Matcher {
    /// Normalised (lowercase, single spaces) text, matched as a substring.
    Literal(String),
    Regex(Regex),
    Builtin(Builtin, Regex),
}

impl Matcher {
    fn builtin(b: Builtin) -> Matcher {
        Matcher::Builtin(
            b,
            Regex::new(b.pattern()).expect("built-in patterns compile"),
        )
    }
}

/// Where a rule looks.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Scope {
    /// The guide's `inputValidation`: all prompt text joined and normalised
    /// (`sluice_sdk::ai::normalize`: NFKC, case folded, format characters
    /// removed, whitespace collapsed), so a phrase split across lines, blocks
    /// or messages, or spelled with look-alikes, still matches.
    Joined,
    /// agentgateway's `promptGuard`: each prompt string normalised without
    /// case folding, patterns case-sensitive as written.
    Each,
}

/// The refusal a rule answers with.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Rejection {
    pub status: u16,
    /// A plain message the host wraps in the provider's error JSON.
    pub message: Option<String>,
    /// A raw body (agentgateway's `rejection.body` when it is JSON).
    pub body: Option<String>,
    pub headers: Vec<(String, String)>,
}

#[derive(Debug, Clone)]
pub struct Rule {
    /// E.g. `input rule 2 ("ignore previous instructions")`.
    pub label: String,
    pub matcher: Matcher,
    pub action: Action,
    pub scope: Scope,
    pub rejection: Rejection,
    /// What a masking regex match becomes (`<MASKED>`, `<NAME>`, or the
    /// rule's `replacement`).
    pub replacement: String,
}

#[derive(Debug, Clone)]
pub struct Settings {
    pub max_body: Option<u64>,
    pub rules: Vec<Rule>,
}

/// Text prepared once per request for the `Joined` rules.
pub struct Prepared {
    /// All texts joined with newlines, normalised and case folded.
    pub lowered: String,
}

impl Prepared {
    pub fn new<S: AsRef<str>>(texts: &[S]) -> Prepared {
        let joined: Vec<&str> = texts.iter().map(AsRef::as_ref).collect();
        Prepared {
            lowered: normalize(&joined.join("\n")),
        }
    }
}

impl Rule {
    fn matches_one(&self, text: &str) -> bool {
        let text = normalize_keep_case(text);
        match &self.matcher {
            Matcher::Literal(n) => normalize(&text).contains(n.as_str()),
            Matcher::Regex(re) => re.is_match(&text),
            Matcher::Builtin(b, re) => !builtin_matches(*b, re, &text).is_empty(),
        }
    }

    /// Does the rule fire on this request's prompt texts?
    pub fn matches<S: AsRef<str>>(&self, texts: &[S], prepared: &Prepared) -> bool {
        match (self.scope, &self.matcher) {
            (Scope::Joined, Matcher::Literal(n)) => prepared.lowered.contains(n.as_str()),
            (Scope::Joined, Matcher::Regex(re)) => re.is_match(&prepared.lowered),
            _ => texts.iter().any(|t| self.matches_one(t.as_ref())),
        }
    }

    fn mask_raw<'t>(&self, text: &'t str) -> Cow<'t, str> {
        match &self.matcher {
            Matcher::Builtin(b, re) => {
                let found = builtin_matches(*b, re, text);
                if found.is_empty() {
                    return Cow::Borrowed(text);
                }
                let mut out = String::with_capacity(text.len());
                let mut last = 0;
                for (s, e) in found {
                    out.push_str(&text[last..s]);
                    out.push_str(b.mask());
                    last = e;
                }
                out.push_str(&text[last..]);
                Cow::Owned(out)
            }
            Matcher::Regex(re) => re.replace_all(text, regex::NoExpand(&self.replacement)),
            Matcher::Literal(_) => Cow::Borrowed(text),
        }
    }

    /// Mask every match in `text`; `None` when nothing changed. A match that
    /// only shows after normalisation (fullwidth digits, zero-width
    /// characters inside) masks the normalised text.
    pub fn mask(&self, text: &str) -> Option<String> {
        if let Cow::Owned(s) = self.mask_raw(text) {
            if s != text {
                return Some(s);
            }
        }
        let normalized = normalize_keep_case(text);
        if normalized == text {
            return None;
        }
        match self.mask_raw(&normalized) {
            Cow::Owned(s) if s != normalized => Some(s),
            _ => None,
        }
    }
}

const IV_KEYS: &str = "maxRequestBodySize, blockPatterns, blockRegex, status, message";

/// Parse the JSON the host hands over: `{"inputValidation": ..}` and/or
/// `{"promptGuard": ..}`; a bare inputValidation body (a direct `plugins:`
/// attachment) is accepted too.
pub fn parse(config: &Value) -> Result<Settings, String> {
    let obj = match config {
        Value::Object(o) => o,
        Value::Null => {
            return Ok(Settings {
                max_body: None,
                rules: vec![],
            })
        }
        other => {
            return Err(format!(
                "input-validation: config must be an object, got {other}"
            ))
        }
    };
    let mut s = Settings {
        max_body: None,
        rules: vec![],
    };
    if obj.contains_key("inputValidation") || obj.contains_key("promptGuard") {
        for (k, v) in obj {
            match k.as_str() {
                "inputValidation" => parse_input_validation(v, "inputValidation", &mut s)?,
                "promptGuard" => parse_prompt_guard(v, "promptGuard", &mut s)?,
                other => {
                    return Err(format!(
                        "unknown key `{other}` (input-validation handles `inputValidation` and `promptGuard`)"
                    ))
                }
            }
        }
    } else {
        parse_input_validation(config, "inputValidation", &mut s)?;
    }
    Ok(s)
}

/// The items of a list (`null` is an empty list).
fn list<'a>(v: &'a Value, at: &str) -> Result<Vec<&'a Value>, String> {
    Ok(cfg::list(v, at)?.into_iter().map(|(_, v)| v).collect())
}

fn status(v: &Value, at: &str) -> Result<u16, String> {
    Ok(cfg::status(v, at, 400..=599)?)
}

fn compile(src: &str, case_insensitive: bool, at: &str) -> Result<Regex, String> {
    if src.is_empty() {
        return Err(format!(
            "`{at}` must not be empty (it would match everything)"
        ));
    }
    RegexBuilder::new(src)
        .case_insensitive(case_insensitive)
        .size_limit(1 << 20)
        .build()
        .map_err(|e| format!("`{at}` is not a valid regex: {e}"))
}

fn parse_input_validation(v: &Value, at: &str, s: &mut Settings) -> Result<(), String> {
    let obj = object(v, at)?;
    let mut rejection = Rejection {
        status: 400,
        message: None,
        body: None,
        headers: vec![],
    };
    // Status and message first: they apply to every rule of the block.
    for (k, val) in obj {
        let here = format!("{at}.{k}");
        match k.as_str() {
            "status" | "errorCode" => rejection.status = status(val, &here)?,
            "message" => {
                rejection.message = Some(
                    val.as_str()
                        .ok_or_else(|| format!("`{here}` must be a string"))?
                        .to_owned(),
                )
            }
            "maxRequestBodySize" | "blockPatterns" | "blockRegex" => {}
            _ => return Err(format!("unknown key `{here}` (expected {IV_KEYS})")),
        }
    }
    let first = s.rules.len();
    let mut add = |matcher: Matcher, shown: String| {
        let n = s.rules.len() - first + 1;
        s.rules.push(Rule {
            label: format!("input rule {n} ({shown})"),
            matcher,
            action: Action::Reject,
            scope: Scope::Joined,
            rejection: rejection.clone(),
            replacement: String::new(),
        });
    };
    if let Some(p) = obj.get("blockPatterns") {
        for (i, item) in list(p, &format!("{at}.blockPatterns"))?
            .into_iter()
            .enumerate()
        {
            let here = format!("{at}.blockPatterns[{i}]");
            match item {
                Value::String(text) => {
                    let n = normalize(text);
                    if n.is_empty() {
                        return Err(format!(
                            "`{here}` must not be empty (it would block everything)"
                        ));
                    }
                    add(Matcher::Literal(n), format!("{text:?}"));
                }
                Value::Object(o) if o.len() == 1 => {
                    let (k, val) = o.iter().next().unwrap();
                    let src = val
                        .as_str()
                        .ok_or_else(|| format!("`{here}.{k}` must be a string"))?;
                    match k.as_str() {
                        "regex" | "pattern" => add(
                            Matcher::Regex(compile(src, true, &format!("{here}.{k}"))?),
                            format!("regex {src:?}"),
                        ),
                        _ => {
                            return Err(format!(
                                "unknown key `{here}.{k}` (expected a string or {{regex: ...}})"
                            ))
                        }
                    }
                }
                _ => return Err(format!("`{here}` must be a string or {{regex: ...}}")),
            }
        }
    }
    if let Some(p) = obj.get("blockRegex") {
        for (i, item) in list(p, &format!("{at}.blockRegex"))?
            .into_iter()
            .enumerate()
        {
            let here = format!("{at}.blockRegex[{i}]");
            let src = item
                .as_str()
                .ok_or_else(|| format!("`{here}` must be a string"))?;
            add(
                Matcher::Regex(compile(src, true, &here)?),
                format!("regex {src:?}"),
            );
        }
    }
    if let Some(size) = obj.get("maxRequestBodySize") {
        let here = Path::root(at).key("maxRequestBodySize");
        let n = cfg::size(size, &here)?;
        if n == 0 {
            return Err(format!("`{here}`: must be larger than 0"));
        }
        s.max_body = Some(s.max_body.map_or(n, |m| m.min(n)));
    }
    Ok(())
}

/// agentgateway's `promptGuard`, parsed by the SDK (`sluice_sdk::prompt_guard`);
/// this plugin implements its `request` guards.
fn parse_prompt_guard(v: &Value, at: &str, s: &mut Settings) -> Result<(), String> {
    let pg = prompt_guard::parse(v, at)?;
    let mut n = 0;
    for g in pg.request {
        let action = match g.action {
            GuardAction::Reject => Action::Reject,
            GuardAction::Mask => Action::Mask,
        };
        let rejection = rejection(g.rejection.as_ref());
        for rule in &g.rules {
            let replacement = rule.replacement();
            let found: Vec<(Matcher, String)> = match rule {
                GuardRule::Builtin { name, builtins } => builtins
                    .iter()
                    .map(|b| (Matcher::builtin(*b), format!("builtin {name}")))
                    .collect(),
                GuardRule::Pattern { pattern, at, .. } => vec![(
                    Matcher::Regex(compile(pattern, false, at.as_str())?),
                    format!("pattern {pattern:?}"),
                )],
            };
            for (matcher, shown) in found {
                n += 1;
                s.rules.push(Rule {
                    label: format!("promptGuard rule {n} ({shown})"),
                    matcher,
                    action,
                    scope: Scope::Each,
                    rejection: rejection.clone(),
                    replacement: replacement.clone(),
                });
            }
        }
    }
    Ok(())
}

/// A guard's rejection: a JSON body is sent as is; plain text is wrapped by
/// the host in the provider's error shape, which clients parse.
fn rejection(r: Option<&prompt_guard::Rejection>) -> Rejection {
    let mut out = Rejection {
        status: 400,
        message: None,
        body: None,
        headers: vec![],
    };
    let Some(r) = r else { return out };
    if let Some(st) = r.status {
        out.status = st;
    }
    if let Some(body) = &r.body {
        if serde_json::from_str::<Value>(body).is_ok_and(|v| v.is_object()) {
            out.body = Some(body.clone());
        } else {
            out.message = Some(body.trim().to_owned());
        }
    }
    out.headers = r.headers.clone();
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn rules(cfg: Value) -> Vec<Rule> {
        parse(&cfg).unwrap().rules
    }

    fn fires(rule: &Rule, text: &str) -> bool {
        rule.matches(&[text], &Prepared::new(&[text]))
    }

    #[test]
    fn guide_form() {
        let s = parse(&json!({"inputValidation": {"maxRequestBodySize": "1MB",
            "blockPatterns": ["ignore previous instructions", "bypass system prompt"]}}))
        .unwrap();
        // `1MB` is decimal (sluice_sdk::units): 1,000,000 bytes.
        assert_eq!(s.max_body, Some(1_000_000));
        assert_eq!(s.rules.len(), 2);
        assert_eq!(s.rules[1].label, r#"input rule 2 ("bypass system prompt")"#);
        assert_eq!(s.rules[0].rejection.status, 400);
        assert!(fires(
            &s.rules[0],
            "Please IGNORE   previous\n\tInstructions now"
        ));
        assert!(fires(&s.rules[0], "ignore\u{200b} previous instructions"));
        assert!(!fires(&s.rules[0], "ignore the previous instructions"));
    }

    #[test]
    fn look_alikes_and_invisible_characters_fire() {
        let s = parse(
            &json!({"inputValidation": {"blockPatterns": ["ignore previous instructions"],
            "blockRegex": ["jail\\s*break"]}}),
        )
        .unwrap();
        for text in [
            "ｉｇｎｏｒｅ previous instructions",
            "ＩＧＮＯＲＥ　ＰＲＥＶＩＯＵＳ　ＩＮＳＴＲＵＣＴＩＯＮＳ",
            "ig\u{200b}nore previ\u{2060}ous instruc\u{ad}tions",
            "ignore\u{a0}previous\u{2003}instructions",
        ] {
            assert!(fires(&s.rules[0], text), "{text:?}");
        }
        assert!(fires(&s.rules[1], "ＪＡＩＬ\u{200d}BREAK"));
        // promptGuard builtins see fullwidth digits, and mask them.
        let r = rules(
            json!({"promptGuard": {"request": [{"regex": {"action": "mask", "rules": [{"builtin": "ssn"}]}}]}}),
        );
        assert!(fires(&r[0], "ssn １２３-４５-６７８９"));
        assert_eq!(
            r[0].mask("ssn １２３-４５-６７８９").as_deref(),
            Some("ssn <SSN>")
        );
    }

    #[test]
    fn joined_text_catches_split_phrases() {
        let r =
            &rules(json!({"inputValidation": {"blockPatterns": ["ignore previous instructions"]}}))
                [0];
        let texts = ["please ignore previous", "instructions"];
        assert!(r.matches(&texts, &Prepared::new(&texts)));
    }

    #[test]
    fn regex_rules() {
        let r = rules(
            json!({"inputValidation": {"blockPatterns": [{"regex": "disregard\\s+(all|any) rules"}],
            "blockRegex": ["jail ?break"], "status": 403}}),
        );
        assert_eq!(r.len(), 2);
        assert!(fires(&r[0], "DISREGARD all rules"));
        assert!(fires(&r[1], "a JailBreak"));
        assert_eq!(r[1].label, r#"input rule 2 (regex "jail ?break")"#);
        assert_eq!(r[1].rejection.status, 403);
    }

    #[test]
    fn prompt_guard_forms() {
        let s = parse(&json!({"promptGuard": {"request": [
            {"regex": {"action": "reject", "rules": [{"pattern": "SSN"}, {"builtin": "email"}]},
             "rejection": {"status": 403, "body": "{\"error\":{\"message\":\"no\"}}"}},
            {"regex": {"action": "Mask", "builtins": ["ssn", "creditCard", "phoneNumber"], "matches": ["secret-\\d+"]}}
        ], "response": [{"regex": {"action": "mask", "rules": [{"builtin": "email"}]}}]}}))
        .unwrap();
        assert_eq!(s.rules.len(), 6);
        assert_eq!(s.rules[0].label, r#"promptGuard rule 1 (pattern "SSN")"#);
        assert_eq!(s.rules[1].label, "promptGuard rule 2 (builtin email)");
        assert_eq!(s.rules[0].rejection.status, 403);
        assert!(s.rules[0].rejection.body.is_some());
        assert_eq!(s.rules[2].action, Action::Mask);
        // Patterns are case-sensitive as written, like agentgateway's.
        assert!(fires(&s.rules[0], "my SSN"));
        assert!(!fires(&s.rules[0], "my ssn"));
        // A single guard object instead of a list; no action masks, as in
        // agentgateway (one promptGuard parser for both sides: the SDK's).
        let s =
            parse(&json!({"promptGuard": {"request": {"regex": {"rules": [{"builtin": "ssn"}]}}}}))
                .unwrap();
        assert_eq!(s.rules[0].action, Action::Mask);
        // Only a response section: nothing to do on requests.
        let s = parse(
            &json!({"promptGuard": {"response": [{"regex": {"rules": [{"builtin": "email"}]}}]}}),
        )
        .unwrap();
        assert!(s.rules.is_empty() && s.max_body.is_none());
    }

    #[test]
    fn builtins_mask() {
        let r = |b: &str| {
            rules(json!({"promptGuard": {"request": [{"regex": {"action": "mask", "rules": [{"builtin": b}]}}]}}))
                .remove(0)
        };
        assert_eq!(
            r("email")
                .mask("mail bob.smith@example.co.uk now")
                .as_deref(),
            Some("mail <EMAIL> now")
        );
        assert_eq!(
            r("ssn").mask("ssn 123-45-6789.").as_deref(),
            Some("ssn <SSN>.")
        );
        assert_eq!(
            r("phone")
                .mask("call (555) 123-4567 or +1 555.123.4567")
                .as_deref(),
            Some("call <PHONE> or <PHONE>")
        );
        // 4111 1111 1111 1111 passes Luhn; 4111 1111 1111 1112 does not.
        assert_eq!(
            r("creditCard").mask("card 4111 1111 1111 1111").as_deref(),
            Some("card <CREDIT_CARD>")
        );
        assert_eq!(r("creditCard").mask("order 4111 1111 1111 1112"), None);
        assert_eq!(r("email").mask("nothing here"), None);
        let custom = rules(
            json!({"promptGuard": {"request": [{"regex": {"action": "mask", "rules": [{"pattern": "key-[0-9]+"}]}}]}}),
        );
        assert_eq!(
            custom[0].mask("use key-123").as_deref(),
            Some("use <MASKED>")
        );
    }

    #[test]
    fn validation_errors_name_the_key() {
        for (cfg, needle) in [
            (
                json!({"inputValidation": {"maxRequestBodySize": "1PB"}}),
                "inputValidation.maxRequestBodySize",
            ),
            (
                json!({"inputValidation": {"blockPatterns": "x"}}),
                "inputValidation.blockPatterns",
            ),
            (
                json!({"inputValidation": {"blockPatterns": [""]}}),
                "blockPatterns[0]",
            ),
            (
                json!({"inputValidation": {"blockPatterns": [{"regex": "("}]}}),
                "blockPatterns[0].regex",
            ),
            (
                json!({"inputValidation": {"blockPatterns": [{"glob": "x"}]}}),
                "blockPatterns[0].glob",
            ),
            (
                json!({"inputValidation": {"blockRegex": ["a", 3]}}),
                "blockRegex[1]",
            ),
            (
                json!({"inputValidation": {"maxBody": 1}}),
                "inputValidation.maxBody",
            ),
            (
                json!({"inputValidation": {"status": 200}}),
                "inputValidation.status",
            ),
            (json!({"inputValidation": {}, "x": 1}), "`x`"),
            (
                json!({"promptGuard": {"request": [{"webhook": {}}]}}),
                "not supported",
            ),
            (
                json!({"promptGuard": {"request": [{"regex": {"action": "log", "rules": [{"builtin": "ssn"}]}}]}}),
                "action",
            ),
            (
                json!({"promptGuard": {"request": [{"regex": {"rules": [{"builtin": "iban"}]}}]}}),
                "iban",
            ),
            (
                json!({"promptGuard": {"request": [{"regex": {"rules": []}}]}}),
                "no patterns",
            ),
            (
                json!({"promptGuard": {"request": [{"regex": {"rules": [{"pattern": "["}]}}]}}),
                "rules[0].pattern",
            ),
            (
                json!({"promptGuard": {"request": [{"regex": {"rules": [{"builtin": "ssn"}]}, "rejection": {"code": 1}}]}}),
                "rejection.code",
            ),
            (json!({"promptGuard": {"other": []}}), "promptGuard.other"),
            (json!([1]), "object"),
        ] {
            let err = match parse(&cfg) {
                Ok(_) => panic!("{cfg} was accepted"),
                Err(e) => e,
            };
            assert!(err.contains(needle), "{cfg}: {err}");
        }
    }
}

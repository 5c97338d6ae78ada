//! Config: the guide's `outputFilter` and agentgateway's `ai.promptGuard`,
//! turned into a [`Plan`] of maskers.
//!
//! Both shapes are parsed by hand from JSON so every error names the exact key
//! (`outputFilter.maskPatterns[2].regex: invalid regex: ...`): the message is
//! what the operator sees at startup.
//!
//! ```yaml
//! outputFilter:
//!   maskPatterns: [email, phone, ssn, creditCard, ipAddress,
//!                  {regex: "sk-[A-Za-z0-9]{20,}", replacement: "<SECRET>"}]
//!   customPatterns: [{regex: "...", replacement: "..."}]
//!   maskRequest: true          # also mask prompts before they leave
//! promptGuard:                 # agentgateway `ai.promptGuard`
//!   response:
//!   - regex:
//!       action: mask           # the default; or reject (JSON responses get the rejection)
//!       builtins: [email, ssn] # or rules: [{builtin: email}, {pattern: "...", name: X}]
//!     rejection: {status: 403, body: "...", headers: {set: {...}}}
//!   request: [...]             # only its `mask` regex guards are used here
//! ```

use serde::Deserialize;
use serde_json::{Map, Value};

use sluice_sdk::config::{kind, object, only_keys};
use sluice_sdk::pii::{Builtin, BUILTIN_NAMES};

use crate::masker::{Masker, Rule};

/// The attachment's config as the host passes it: keyed by the YAML key(s).
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
pub struct Config {
    #[serde(default)]
    pub output_filter: Option<Value>,
    #[serde(default)]
    pub prompt_guard: Option<Value>,
}

/// A rule before compilation.
#[derive(Debug, Clone, PartialEq)]
pub enum RuleSpec {
    Builtin(Builtin),
    Custom {
        pattern: String,
        replacement: String,
    },
}

/// What a `reject` response guard answers.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Rejection {
    pub status: u16,
    /// A raw body; `None` lets the host wrap `message` in the provider's error JSON.
    pub body: Option<String>,
    pub headers: Vec<(String, String)>,
}

impl Default for Rejection {
    fn default() -> Self {
        Rejection {
            status: 403,
            body: None,
            headers: Vec::new(),
        }
    }
}

/// Rule specs by side, before compilation (cheap to check in `validate`).
#[derive(Debug, Default, Clone, PartialEq)]
pub struct Specs {
    /// Masked in responses.
    pub response: Vec<RuleSpec>,
    /// Rejecting a JSON response (masked in streams, which cannot be recalled).
    pub response_reject: Vec<RuleSpec>,
    pub rejection: Option<Rejection>,
    /// Masked in requests.
    pub request: Vec<RuleSpec>,
}

/// Compiled maskers.
#[derive(Debug)]
pub struct Plan {
    /// Response text masking (stream masking also covers the reject rules).
    pub response: Option<Masker>,
    /// JSON responses matching these are replaced by the rejection.
    pub reject: Option<(Masker, Rejection)>,
    pub request: Option<Masker>,
}

const DEFAULT_PATTERNS: [Builtin; 3] = [Builtin::Email, Builtin::Phone, Builtin::Ssn];

impl Specs {
    pub fn parse(config: &Config) -> Result<Specs, String> {
        let mut specs = Specs::default();
        if let Some(of) = &config.output_filter {
            parse_output_filter(of, &mut specs)?;
        }
        if let Some(pg) = &config.prompt_guard {
            parse_prompt_guard(pg, &mut specs)?;
        }
        dedup(&mut specs.response);
        dedup(&mut specs.response_reject);
        dedup(&mut specs.request);
        Ok(specs)
    }

    pub fn compile(&self) -> Result<Plan, String> {
        let masker = |specs: &[RuleSpec]| -> Result<Option<Masker>, String> {
            if specs.is_empty() {
                return Ok(None);
            }
            let rules = specs
                .iter()
                .map(|s| match s {
                    RuleSpec::Builtin(b) => Ok(Rule::builtin(*b)),
                    RuleSpec::Custom {
                        pattern,
                        replacement,
                    } => Rule::custom(pattern, replacement.clone()),
                })
                .collect::<Result<Vec<_>, _>>()?;
            Masker::new(rules).map(Some)
        };
        let mut stream = self.response.clone();
        stream.extend(self.response_reject.iter().cloned());
        dedup(&mut stream);
        Ok(Plan {
            response: masker(&stream)?,
            reject: masker(&self.response_reject)?
                .map(|m| (m, self.rejection.clone().unwrap_or_default())),
            request: masker(&self.request)?,
        })
    }
}

fn dedup(v: &mut Vec<RuleSpec>) {
    let mut seen = Vec::new();
    v.retain(|r| {
        if seen.contains(r) {
            false
        } else {
            seen.push(r.clone());
            true
        }
    });
}

fn builtins(name: &Value, path: &str) -> Result<&'static [Builtin], String> {
    let s = name
        .as_str()
        .ok_or_else(|| format!("`{path}` must be a pattern name, got {}", kind(name)))?;
    Builtin::parse(s).ok_or_else(|| {
        format!("`{path}`: unknown pattern `{s}` (built-in patterns: {BUILTIN_NAMES})")
    })
}

/// `<NAME>` from a rule name, `<MASKED>` without one.
fn default_replacement(name: Option<&str>) -> String {
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

/// `{regex|pattern: "...", replacement?: "...", name?: "..."}`.
fn custom(v: &Value, path: &str) -> Result<RuleSpec, String> {
    let m = object(v, path)?;
    only_keys(m, path, &["regex", "pattern", "replacement", "name"])?;
    let (key, pat) = match (m.get("regex"), m.get("pattern")) {
        (Some(r), None) => ("regex", r),
        (None, Some(p)) => ("pattern", p),
        (Some(_), Some(_)) => return Err(format!("`{path}`: give `regex` or `pattern`, not both")),
        (None, None) => return Err(format!("`{path}`: a custom pattern needs `regex`")),
    };
    let pattern = pat
        .as_str()
        .ok_or_else(|| format!("`{path}.{key}` must be a string"))?
        .to_owned();
    let name = match m.get("name") {
        None | Some(Value::Null) => None,
        Some(Value::String(s)) => Some(s.as_str()),
        Some(other) => {
            return Err(format!(
                "`{path}.name` must be a string, got {}",
                kind(other)
            ))
        }
    };
    let replacement = match m.get("replacement") {
        None | Some(Value::Null) => default_replacement(name),
        Some(Value::String(s)) => s.clone(),
        Some(other) => {
            return Err(format!(
                "`{path}.replacement` must be a string, got {}",
                kind(other)
            ))
        }
    };
    Rule::custom(&pattern, replacement.clone()).map_err(|e| format!("`{path}.{key}`: {e}"))?;
    Ok(RuleSpec::Custom {
        pattern,
        replacement,
    })
}

fn parse_output_filter(v: &Value, specs: &mut Specs) -> Result<(), String> {
    let empty = Map::new();
    let m = match v {
        Value::Null => &empty,
        v => object(v, "outputFilter")?,
    };
    only_keys(
        m,
        "outputFilter",
        &["maskPatterns", "customPatterns", "maskRequest"],
    )?;
    let mut rules = Vec::new();
    match m.get("maskPatterns") {
        None | Some(Value::Null) => {
            rules.extend(DEFAULT_PATTERNS.iter().map(|b| RuleSpec::Builtin(*b)))
        }
        Some(Value::Array(items)) => {
            for (i, item) in items.iter().enumerate() {
                let path = format!("outputFilter.maskPatterns[{i}]");
                match item {
                    Value::Object(_) => rules.push(custom(item, &path)?),
                    _ => rules.extend(builtins(item, &path)?.iter().map(|b| RuleSpec::Builtin(*b))),
                }
            }
        }
        Some(other) => {
            return Err(format!(
                "`outputFilter.maskPatterns` must be a list, got {}",
                kind(other)
            ))
        }
    }
    match m.get("customPatterns") {
        None | Some(Value::Null) => {}
        Some(Value::Array(items)) => {
            for (i, item) in items.iter().enumerate() {
                rules.push(custom(item, &format!("outputFilter.customPatterns[{i}]"))?);
            }
        }
        Some(other) => {
            return Err(format!(
                "`outputFilter.customPatterns` must be a list, got {}",
                kind(other)
            ))
        }
    }
    let mask_request = match m.get("maskRequest") {
        None | Some(Value::Null) => false,
        Some(Value::Bool(b)) => *b,
        Some(other) => {
            return Err(format!(
                "`outputFilter.maskRequest` must be true or false, got {}",
                kind(other)
            ))
        }
    };
    if mask_request {
        specs.request.extend(rules.iter().cloned());
    }
    specs.response.extend(rules);
    Ok(())
}

/// Guard types agentgateway knows that this plugin does not implement.
const OTHER_GUARDS: [&str; 6] = [
    "webhook",
    "openAIModeration",
    "bedrockGuardrails",
    "googleModelArmor",
    "azureContentSafety",
    "moderation",
];

#[derive(Debug, PartialEq)]
enum Action {
    Mask,
    Reject,
}

fn parse_prompt_guard(v: &Value, specs: &mut Specs) -> Result<(), String> {
    let m = object(v, "promptGuard")?;
    only_keys(m, "promptGuard", &["request", "response"])?;
    if let Some(resp) = m.get("response").filter(|v| !v.is_null()) {
        for (path, guard) in guards(resp, "promptGuard.response")? {
            let g = object(guard, &path)?;
            if let Some(other) = OTHER_GUARDS.iter().find(|k| g.contains_key(**k)) {
                return Err(format!(
                    "`{path}.{other}`: not supported by the output-mask plugin (it implements `regex` guards)"
                ));
            }
            only_keys(g, &path, &["regex", "rejection"])?;
            let regex = g
                .get("regex")
                .ok_or_else(|| format!("`{path}`: a guard needs `regex`"))?;
            let (action, rules, old_rejection) = regex_guard(regex, &format!("{path}.regex"))?;
            match action {
                Action::Mask => specs.response.extend(rules),
                Action::Reject => {
                    specs.response_reject.extend(rules);
                    let rej = match g.get("rejection") {
                        Some(r) => Some(rejection(r, &format!("{path}.rejection"))?),
                        None => old_rejection,
                    };
                    if specs.rejection.is_none() {
                        specs.rejection = rej;
                    }
                }
            }
        }
    }
    // The request side belongs to the prompt-guard request policy; here only
    // its `mask` regex guards are used (prompts masked before they leave), and
    // only when this attachment also guards responses.
    if !specs.response.is_empty() || !specs.response_reject.is_empty() {
        if let Some(req) = m.get("request").filter(|v| !v.is_null()) {
            for (path, guard) in guards(req, "promptGuard.request")? {
                // Errors here are the request policy's to report.
                let Some(regex) = guard.get("regex") else {
                    continue;
                };
                if let Ok((Action::Mask, rules, _)) = regex_guard(regex, &format!("{path}.regex")) {
                    specs.request.extend(rules);
                }
            }
        }
    }
    Ok(())
}

/// A guard list (`- regex: ...`) or a single guard (the older `regex: ...`).
fn guards<'a>(v: &'a Value, path: &str) -> Result<Vec<(String, &'a Value)>, String> {
    match v {
        Value::Array(items) => Ok(items
            .iter()
            .enumerate()
            .map(|(i, g)| (format!("{path}[{i}]"), g))
            .collect()),
        Value::Object(_) => Ok(vec![(path.to_owned(), v)]),
        other => Err(format!(
            "`{path}` must be a list of guards, got {}",
            kind(other)
        )),
    }
}

/// `{action, rules?, builtins?, matches?}` → action, rules, and the old-style
/// `action: {reject: {response: {...}}}` rejection if any.
fn regex_guard(
    v: &Value,
    path: &str,
) -> Result<(Action, Vec<RuleSpec>, Option<Rejection>), String> {
    let m = object(v, path)?;
    only_keys(m, path, &["action", "rules", "builtins", "matches"])?;
    let mut old_rejection = None;
    let action = match m.get("action") {
        // agentgateway's default action is `mask`.
        None | Some(Value::Null) => Action::Mask,
        Some(Value::String(s)) if s.eq_ignore_ascii_case("mask") => Action::Mask,
        Some(Value::String(s)) if s.eq_ignore_ascii_case("reject") => Action::Reject,
        Some(Value::Object(o)) if o.len() == 1 && o.contains_key("mask") => Action::Mask,
        Some(Value::Object(o)) if o.len() == 1 && o.contains_key("reject") => {
            let r = &o["reject"];
            if let Some(resp) = r.get("response") {
                old_rejection = Some(rejection(resp, &format!("{path}.action.reject.response"))?);
            }
            Action::Reject
        }
        Some(other) => {
            return Err(format!(
                "`{path}.action` must be `mask` or `reject`, got {}",
                match other {
                    Value::String(s) => format!("`{s}`"),
                    v => kind(v).to_owned(),
                }
            ))
        }
    };
    let mut rules = Vec::new();
    if let Some(list) = m.get("rules") {
        let items = list
            .as_array()
            .ok_or_else(|| format!("`{path}.rules` must be a list"))?;
        for (i, item) in items.iter().enumerate() {
            let p = format!("{path}.rules[{i}]");
            let r = object(item, &p)?;
            if let Some(b) = r.get("builtin") {
                only_keys(r, &p, &["builtin", "name"])?;
                rules.extend(
                    builtins(b, &format!("{p}.builtin"))?
                        .iter()
                        .map(|b| RuleSpec::Builtin(*b)),
                );
            } else {
                rules.push(custom(item, &p)?);
            }
        }
    }
    if let Some(list) = m.get("builtins") {
        let items = list
            .as_array()
            .ok_or_else(|| format!("`{path}.builtins` must be a list"))?;
        for (i, item) in items.iter().enumerate() {
            rules.extend(
                builtins(item, &format!("{path}.builtins[{i}]"))?
                    .iter()
                    .map(|b| RuleSpec::Builtin(*b)),
            );
        }
    }
    if let Some(list) = m.get("matches") {
        let items = list
            .as_array()
            .ok_or_else(|| format!("`{path}.matches` must be a list"))?;
        for (i, item) in items.iter().enumerate() {
            let p = format!("{path}.matches[{i}]");
            match item {
                Value::String(s) => {
                    let item = serde_json::json!({ "pattern": s });
                    rules.push(custom(&item, &p)?);
                }
                other => rules.push(custom(other, &p)?),
            }
        }
    }
    if rules.is_empty() {
        return Err(format!(
            "`{path}` has no patterns (give `builtins`, `rules` or `matches`)"
        ));
    }
    Ok((action, rules, old_rejection))
}

/// `{status?, body?, headers?: {set?, add?}}`.
fn rejection(v: &Value, path: &str) -> Result<Rejection, String> {
    let m = object(v, path)?;
    only_keys(m, path, &["status", "body", "headers"])?;
    let mut r = Rejection::default();
    if let Some(s) = m.get("status") {
        r.status = s
            .as_u64()
            .and_then(|s| u16::try_from(s).ok())
            .filter(|s| (100..=599).contains(s))
            .ok_or_else(|| format!("`{path}.status` must be an HTTP status code"))?;
    }
    match m.get("body") {
        None | Some(Value::Null) => {}
        Some(Value::String(s)) => r.body = Some(s.clone()),
        Some(other) => {
            return Err(format!(
                "`{path}.body` must be a string, got {}",
                kind(other)
            ))
        }
    }
    if let Some(h) = m.get("headers") {
        let h = object(h, &format!("{path}.headers"))?;
        only_keys(h, &format!("{path}.headers"), &["set", "add", "remove"])?;
        for op in ["set", "add"] {
            if let Some(pairs) = h.get(op) {
                let pairs = object(pairs, &format!("{path}.headers.{op}"))?;
                for (k, v) in pairs {
                    let v = v
                        .as_str()
                        .ok_or_else(|| format!("`{path}.headers.{op}.{k}` must be a string"))?;
                    r.headers.push((k.to_ascii_lowercase(), v.to_owned()));
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

    fn specs(v: Value) -> Result<Specs, String> {
        let c: Config = serde_json::from_value(v).map_err(|e| e.to_string())?;
        Specs::parse(&c)
    }

    #[test]
    fn guide_output_filter() {
        let s =
            specs(json!({"outputFilter": {"maskPatterns": ["email", "phone", "ssn"]}})).unwrap();
        assert_eq!(
            s.response,
            vec![
                RuleSpec::Builtin(Builtin::Email),
                RuleSpec::Builtin(Builtin::Phone),
                RuleSpec::Builtin(Builtin::Ssn)
            ]
        );
        assert!(s.request.is_empty());
        assert!(s.compile().unwrap().response.is_some());
    }

    #[test]
    fn custom_and_extra_builtins() {
        let s = specs(json!({"outputFilter": {
            "maskPatterns": ["creditCard", "ipAddress", {"regex": "sk-[a-z]+", "replacement": "<SECRET>"}],
            "customPatterns": [{"pattern": "ACME-[0-9]+", "name": "acme id"}],
            "maskRequest": true}}))
        .unwrap();
        assert_eq!(s.response.len(), 5);
        assert_eq!(s.request, s.response);
        assert_eq!(
            s.response[4],
            RuleSpec::Custom {
                pattern: "ACME-[0-9]+".into(),
                replacement: "<ACME_ID>".into()
            }
        );
        let plan = s.compile().unwrap();
        assert_eq!(
            plan.response.unwrap().mask("key sk-abc, 10.1.2.3"),
            "key <SECRET>, <IP_ADDRESS>"
        );
    }

    #[test]
    fn errors_name_the_key() {
        let e =
            specs(json!({"outputFilter": {"maskPatterns": ["email", "passport"]}})).unwrap_err();
        assert!(
            e.contains("outputFilter.maskPatterns[1]") && e.contains("passport"),
            "{e}"
        );
        let e = specs(json!({"outputFilter": {"maskPatterns": [{"regex": "("}]}})).unwrap_err();
        assert!(
            e.contains("outputFilter.maskPatterns[0].regex") && e.contains("invalid regex"),
            "{e}"
        );
        let e = specs(json!({"outputFilter": {"maskPaterns": ["email"]}})).unwrap_err();
        assert!(e.contains("outputFilter.maskPaterns"), "{e}");
        let e = specs(json!({"outputFilter": {"maskRequest": "yes"}})).unwrap_err();
        assert!(e.contains("maskRequest"), "{e}");
        let e = specs(json!({"promptGuard": {"response": [{"regex": {"action": "block", "builtins": ["email"]}}]}}))
            .unwrap_err();
        assert!(e.contains("promptGuard.response[0].regex.action"), "{e}");
        let e = specs(json!({"promptGuard": {"foo": 1}})).unwrap_err();
        assert!(e.contains("promptGuard.foo"), "{e}");
        let e = specs(json!({"promptGuard": {"response": [{"webhook": {"target": "x"}}]}}))
            .unwrap_err();
        assert!(e.contains("promptGuard.response[0].webhook"), "{e}");
        let e = specs(json!({"promptGuard": {"response": [{"regex": {"action": "mask", "builtins": ["Foo"]}}]}}))
            .unwrap_err();
        assert!(
            e.contains("promptGuard.response[0].regex.builtins[0]"),
            "{e}"
        );
        let e = serde_json::from_value::<Config>(json!({"outputFilters": {}})).unwrap_err();
        assert!(e.to_string().contains("outputFilters"));
    }

    #[test]
    fn prompt_guard_shapes() {
        // Standalone list form with builtins and rules.
        let s = specs(json!({"promptGuard": {"response": [
            {"regex": {"action": "mask", "builtins": ["email", "CreditCard"]}},
            {"regex": {"action": "Mask", "rules": [{"builtin": "ssn"}, {"pattern": "secret-[0-9]+", "name": "Secret"}]}}
        ]}}))
        .unwrap();
        assert_eq!(s.response.len(), 4);
        assert!(s.request.is_empty());
        // No action: agentgateway masks by default.
        let s = specs(json!({"promptGuard": {"response": [{"regex": {"rules": [{"builtin": "phoneNumber"}]}}]}}))
            .unwrap();
        assert_eq!(s.response, vec![RuleSpec::Builtin(Builtin::Phone)]);
        // Kubernetes `matches`, single guard object.
        let s = specs(json!({"promptGuard": {"response": {"regex": {"action": "Mask", "matches": ["x-[0-9]+"]}}}}))
            .unwrap();
        assert_eq!(s.response.len(), 1);
        // Reject with the old nested form.
        let s = specs(json!({"promptGuard": {"response": {"regex": {
            "action": {"reject": {"response": {"body": "no", "status": 451}}},
            "rules": [{"builtin": "email"}]}}}}))
        .unwrap();
        assert_eq!(s.rejection.as_ref().unwrap().status, 451);
        let plan = s.compile().unwrap();
        assert!(plan.reject.is_some() && plan.response.is_some());
    }

    #[test]
    fn request_only_prompt_guard_does_nothing() {
        let s = specs(json!({"promptGuard": {"request": [
            {"regex": {"action": "mask", "builtins": ["email"]}},
            {"webhook": {"target": {"host": "x"}}}
        ]}}))
        .unwrap();
        assert_eq!(s, Specs::default());
        // With a response section, request mask guards apply to prompts.
        let s = specs(json!({"promptGuard": {
            "request": [{"regex": {"action": "mask", "builtins": ["ssn"]}},
                        {"regex": {"action": "reject", "builtins": ["email"]}}],
            "response": [{"regex": {"action": "mask", "builtins": ["email"]}}]}}))
        .unwrap();
        assert_eq!(s.request, vec![RuleSpec::Builtin(Builtin::Ssn)]);
    }
}

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
use sluice_sdk::prompt_guard::{self, default_replacement, Guard, GuardAction, GuardRule};

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

/// agentgateway's `promptGuard`, parsed by the SDK (`sluice_sdk::prompt_guard`);
/// this plugin implements its `response` guards, and its `request` mask
/// guards when the same attachment also guards responses.
fn parse_prompt_guard(v: &Value, specs: &mut Specs) -> Result<(), String> {
    let pg = prompt_guard::parse(v, "promptGuard")?;
    let compile = |g: &Guard| -> Result<Vec<RuleSpec>, String> {
        let mut out = Vec::new();
        for r in &g.rules {
            match r {
                GuardRule::Builtin { builtins, .. } => {
                    out.extend(builtins.iter().map(|b| RuleSpec::Builtin(*b)))
                }
                GuardRule::Pattern { pattern, at, .. } => {
                    let replacement = r.replacement();
                    Rule::custom(pattern, replacement.clone())
                        .map_err(|e| format!("`{at}`: {e}"))?;
                    out.push(RuleSpec::Custom {
                        pattern: pattern.clone(),
                        replacement,
                    });
                }
            }
        }
        Ok(out)
    };
    for g in &pg.response {
        let rules = compile(g)?;
        match g.action {
            GuardAction::Mask => specs.response.extend(rules),
            GuardAction::Reject => {
                specs.response_reject.extend(rules);
                if specs.rejection.is_none() {
                    specs.rejection = g.rejection.as_ref().map(|r| Rejection {
                        status: r.status.unwrap_or(403),
                        body: r.body.clone(),
                        headers: r.headers.clone(),
                    });
                }
            }
        }
    }
    if !specs.response.is_empty() || !specs.response_reject.is_empty() {
        for g in pg.request.iter().filter(|g| g.action == GuardAction::Mask) {
            specs.request.extend(compile(g)?);
        }
    }
    Ok(())
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
            {"regex": {"action": "mask", "builtins": ["email"]}}
        ]}}))
        .unwrap();
        assert_eq!(s, Specs::default());
        // One parser for both sides: an unsupported guard anywhere is refused.
        let e =
            specs(json!({"promptGuard": {"request": [{"webhook": {"target": {"host": "x"}}}]}}))
                .unwrap_err();
        assert!(e.contains("promptGuard.request[0].webhook"), "{e}");
        // With a response section, request mask guards apply to prompts.
        let s = specs(json!({"promptGuard": {
            "request": [{"regex": {"action": "mask", "builtins": ["ssn"]}},
                        {"regex": {"action": "reject", "builtins": ["email"]}}],
            "response": [{"regex": {"action": "mask", "builtins": ["email"]}}]}}))
        .unwrap();
        assert_eq!(s.request, vec![RuleSpec::Builtin(Builtin::Ssn)]);
    }
}

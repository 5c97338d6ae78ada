//! Reading `authorization: {rules: [...]}`, exactly agentgateway's shape
//! (`$defs.RuleSet` / `RuleSerde` in its schema):
//!
//! ```yaml
//! authorization:
//!   rules:
//!   - 'jwt.sub == "alice"'                       # a plain string is an allow rule
//!   - allow: 'llm.requestModel.startsWith("claude-haiku")'
//!   - deny: 'llm.requestModel == "claude-opus-4"'
//!   - require: 'has(jwt.team)'
//! ```
//!
//! Anything else (an unknown key beside `rules`, a rule object with two
//! modes or a misspelt one, a non-string expression) is refused when the
//! config loads, naming the key, so `sluice validate` shows it instead of a
//! rule that silently never matches.

use serde_json::Value;

use crate::check::{self, CheckError};
use crate::rule::{Mode, Rule};

/// The policy key this plugin answers to.
pub const KEY: &str = "authorization";

/// Why a config is refused. Every message names the offending key path.
#[derive(Debug, thiserror::Error)]
pub enum ConfigError {
    #[error("`{KEY}` must be an object with `rules`")]
    NotObject,
    #[error("unknown key `{KEY}.{0}` (expected rules)")]
    UnknownKey(String),
    #[error("`{KEY}.rules` is required")]
    MissingRules,
    #[error("`{KEY}.rules` must be a list of rules")]
    RulesNotList,
    #[error("`{KEY}.rules[{0}]` must be a CEL string or one of {{allow: ...}}, {{deny: ...}}, {{require: ...}}")]
    RuleShape(usize),
    #[error("`{KEY}.rules[{index}]`: unknown key `{key}` (expected exactly one of allow, deny, require)")]
    UnknownMode { index: usize, key: String },
    #[error("`{KEY}.rules[{0}]` must have exactly one of allow, deny, require")]
    ModeCount(usize),
    #[error("`{KEY}.rules[{index}].{mode}` must be a CEL expression (string)")]
    NotString { index: usize, mode: Mode },
    #[error("`{KEY}.rules[{index}]{at}`: invalid CEL: {reason}")]
    Syntax {
        index: usize,
        at: String,
        reason: String,
    },
    #[error("`{KEY}.rules[{index}]{at}`: {source}")]
    Check {
        index: usize,
        at: String,
        source: CheckError,
    },
}

/// The parsed policy: its rules in config order.
#[derive(Debug, Default)]
pub struct Config {
    pub rules: Vec<Rule>,
}

impl Config {
    /// Whether any rule reads the request body (`llm`, `llmRequest`).
    pub fn needs_body(&self) -> bool {
        self.rules.iter().any(|r| r.uses.body)
    }

    /// Whether any rule reads `llmRequest` (the whole body).
    pub fn needs_llm_request(&self) -> bool {
        self.rules.iter().any(|r| r.uses.llm_request)
    }
}

/// Parse the attachment's config (`{"authorization": {...}}`).
pub fn parse(v: &Value) -> Result<Config, ConfigError> {
    let inner = match v {
        Value::Object(o) => o.get(KEY).unwrap_or(v),
        _ => return Err(ConfigError::NotObject),
    };
    let Value::Object(set) = inner else {
        return Err(ConfigError::NotObject);
    };
    if let Some(k) = set.keys().find(|k| *k != "rules") {
        return Err(ConfigError::UnknownKey(k.clone()));
    }
    let rules = match set.get("rules") {
        None => return Err(ConfigError::MissingRules),
        Some(Value::Array(a)) => a,
        Some(_) => return Err(ConfigError::RulesNotList),
    };
    let rules = rules
        .iter()
        .enumerate()
        .map(|(i, r)| rule(i, r))
        .collect::<Result<_, _>>()?;
    Ok(Config { rules })
}

fn rule(index: usize, v: &Value) -> Result<Rule, ConfigError> {
    let (mode, source, at) = match v {
        Value::String(s) => (Mode::Allow, s, String::new()),
        Value::Object(o) => {
            if let Some(k) = o.keys().find(|k| Mode::parse(k).is_none()) {
                return Err(ConfigError::UnknownMode {
                    index,
                    key: k.clone(),
                });
            }
            let mut entries = o.iter();
            let (Some((k, v)), None) = (entries.next(), entries.next()) else {
                return Err(ConfigError::ModeCount(index));
            };
            let mode = Mode::parse(k).expect("checked above");
            let Value::String(s) = v else {
                return Err(ConfigError::NotString { index, mode });
            };
            (mode, s, format!(".{mode}"))
        }
        _ => return Err(ConfigError::RuleShape(index)),
    };
    let program = crate::rule::compile(source).map_err(|reason| ConfigError::Syntax {
        index,
        at: at.clone(),
        reason,
    })?;
    let uses = check::check(&program.expression().expr).map_err(|source| ConfigError::Check {
        index,
        at,
        source,
    })?;
    Ok(Rule {
        index,
        mode,
        source: source.clone(),
        program,
        uses,
    })
}

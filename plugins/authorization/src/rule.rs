//! One compiled rule, the CEL environment rules run in, and agentgateway's
//! decision over a rule list.

use std::fmt;
use std::sync::{Arc, OnceLock};

use cel::{Context, Env, ExecutionError, Program, Value};

use crate::check::Uses;

/// How a rule counts (agentgateway's `RuleTypeSerde`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Mode {
    /// The request is allowed when any allow rule is true; once allow rules
    /// exist, a request none of them allows is refused.
    Allow,
    /// The request is refused when the rule is true.
    Deny,
    /// The request is refused unless the rule is true.
    Require,
}

impl Mode {
    pub fn parse(key: &str) -> Option<Mode> {
        match key {
            "allow" => Some(Mode::Allow),
            "deny" => Some(Mode::Deny),
            "require" => Some(Mode::Require),
            _ => None,
        }
    }
}

impl fmt::Display for Mode {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            Mode::Allow => "allow",
            Mode::Deny => "deny",
            Mode::Require => "require",
        })
    }
}

/// A rule as configured, compiled once per instance.
pub struct Rule {
    /// Position in `rules`, for logs (the expression itself may hold
    /// values an operator would rather not see in request logs).
    pub index: usize,
    pub mode: Mode,
    pub source: String,
    pub program: Program,
    /// What the rule reads (decides whether the body is needed).
    pub uses: Uses,
}

impl fmt::Debug for Rule {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "rules[{}].{}: {}", self.index, self.mode, self.source)
    }
}

/// The environment: CEL's standard library plus the `strings` and `lists`
/// extensions (`lowerAscii`, `trim`, `split`, `join`, `distinct`, ...), the
/// parts of agentgateway's library a model or claim rule needs. Built once
/// per instance: registering the overloads is the expensive part.
pub fn env() -> Arc<Env> {
    static ENV: OnceLock<Arc<Env>> = OnceLock::new();
    ENV.get_or_init(|| {
        let mut env = Env::stdlib();
        // Fixed extensions on a fresh environment cannot clash.
        env.add_extension(cel::extensions::strings)
            .expect("strings extension");
        env.add_extension(cel::extensions::lists)
            .expect("lists extension");
        Arc::new(env)
    })
    .clone()
}

/// Compile `source` in [`env`]; the error is the parser's message.
pub fn compile(source: &str) -> Result<Program, String> {
    env().compile(source).map_err(|e| e.to_string())
}

/// How one rule came out on one request.
#[derive(Debug, Clone, PartialEq)]
pub enum Outcome {
    True,
    False,
    /// The expression failed (a missing claim, no model, a type error).
    /// Never counted as a match for `allow`/`require`; see [`decide`] for
    /// `deny`.
    Error(String),
}

impl Rule {
    pub fn eval(&self, ctx: &Context<'_, '_>) -> Outcome {
        match self.program.execute(ctx) {
            Ok(Value::Bool(true)) => Outcome::True,
            Ok(Value::Bool(false)) => Outcome::False,
            Ok(_) => Outcome::Error("did not evaluate to a bool".to_owned()),
            Err(e) => Outcome::Error(describe(&e)),
        }
    }
}

/// An evaluation error for the log, without request data: many CEL errors
/// carry the values involved (a header, a claim), so only names that come
/// from the rule itself, and types, are kept.
fn describe(e: &ExecutionError) -> String {
    match e {
        ExecutionError::NoSuchKey(k) if is_name(k) => format!("no key `{k}`"),
        ExecutionError::NoSuchKey(_) => "a key it reads is missing".to_owned(),
        ExecutionError::UndeclaredReference(r) if is_name(r) => format!("`{r}` is not set"),
        ExecutionError::UnexpectedType { got, want } => format!("got a {got}, wanted a {want}"),
        ExecutionError::NoSuchOverload(o) => format!("no overload of `{}`", o.function()),
        _ => "a value it reads has the wrong type or shape".to_owned(),
    }
}

/// A short identifier-like key (what a rule spells), as opposed to data.
fn is_name(s: &str) -> bool {
    s.len() <= 64
        && s.chars()
            .all(|c| c.is_ascii_alphanumeric() || matches!(c, '_' | '-' | '.'))
}

/// The verdict on one request.
#[derive(Debug, Clone, PartialEq)]
pub enum Verdict {
    Allowed,
    /// Refused, with the rule that decided (index and why), for the log.
    Refused(String),
}

/// agentgateway's `RuleSets::validate`, with one deliberate difference:
///
/// 1. no rules: allowed;
/// 2. any `deny` true: refused. **A `deny` that fails to evaluate also
///    refuses** (agentgateway lets it pass, and warns in its schema that
///    "expression failures fail to deny"): a deny rule a client can dodge
///    by leaving out what it reads is a rule a client walks around. Write
///    `has(jwt.group) && jwt.group == "x"` to deny only when present;
/// 3. any `require` not true (false or failed): refused;
/// 4. any `allow` true: allowed;
/// 5. otherwise allowed only if there are no `allow` rules (a deny list),
///    refused if there are (an allow list nobody matched).
pub fn decide(rules: &[Rule], eval: impl Fn(&Rule) -> Outcome) -> Verdict {
    let outcomes: Vec<(&Rule, Outcome)> = rules.iter().map(|r| (r, eval(r))).collect();
    let of = |mode: Mode| outcomes.iter().filter(move |(r, _)| r.mode == mode);
    for (r, o) in of(Mode::Deny) {
        match o {
            Outcome::True => return Verdict::Refused(format!("rules[{}] denies", r.index)),
            Outcome::Error(e) => {
                return Verdict::Refused(format!(
                    "rules[{}] (deny) failed to evaluate, refusing: {e}",
                    r.index
                ))
            }
            Outcome::False => {}
        }
    }
    for (r, o) in of(Mode::Require) {
        match o {
            Outcome::True => {}
            Outcome::False => {
                return Verdict::Refused(format!("rules[{}] (require) is false", r.index))
            }
            Outcome::Error(e) => {
                return Verdict::Refused(format!("rules[{}] (require) failed: {e}", r.index))
            }
        }
    }
    let mut allows = of(Mode::Allow).peekable();
    if allows.peek().is_none() {
        return Verdict::Allowed;
    }
    if allows.clone().any(|(_, o)| *o == Outcome::True) {
        return Verdict::Allowed;
    }
    let why: Vec<String> = allows
        .filter_map(|(r, o)| match o {
            Outcome::Error(e) => Some(format!("rules[{}] failed: {e}", r.index)),
            _ => None,
        })
        .collect();
    Verdict::Refused(if why.is_empty() {
        "no allow rule matched".to_owned()
    } else {
        format!("no allow rule matched ({})", why.join("; "))
    })
}

//! CEL for the `llm:` mode's model routing: `models[].transformation.model`
//! and `virtualModels[].routing.conditional.targets[].when`.
//!
//! Why in the host and not a policy: these expressions decide *where* a
//! request goes (which provider, which model), which is routing; the host
//! owns routing, and a policy only decides about a request already routed.
//!
//! agentgateway's names are kept so its configs run unchanged: the variable
//! `llmRequest` is the request's JSON body, and two of its functions:
//! - `s.stripPrefix(p)`: `s` without the leading `p` (unchanged without it);
//! - `default(x, fallback)`: `x`, or `fallback` when `x` names a member that
//!   is missing. It is a macro: `default(a.b.c, f)` becomes
//!   `a.?b.?c.orValue(f)`, so a missing member anywhere along the path
//!   yields the fallback instead of an error. For any other expression `x`
//!   it is `x` itself.

use std::sync::{Arc, OnceLock};

use cel::common::ast::{operators, CallExpr, Expr, IdedExpr, LiteralValue};
use cel::common::types::{
    self, CelBool, CelDouble, CelInt, CelList, CelMap, CelMapKey, CelNull, CelString, CelUInt,
};
use cel::common::value::{CowVal, Val};
use cel::parser::{Macro, MacroExprHelper, ParseError};
use cel::{Context, Env, ExecutionError, Program, Value};
use std::collections::HashMap;

/// A compiled expression failed to compile or to evaluate.
#[derive(Debug, thiserror::Error)]
pub enum CelError {
    #[error("invalid CEL expression: {0}")]
    Compile(String),
    #[error("CEL evaluation failed: {0}")]
    Eval(String),
    /// The value itself is not shown: it may come from the request.
    #[error("the expression must give a {expected}, it gave another type")]
    Type { expected: &'static str },
}

fn env() -> Arc<Env> {
    static ENV: OnceLock<Arc<Env>> = OnceLock::new();
    ENV.get_or_init(|| Arc::new(build_env())).clone()
}

fn build_env() -> Env {
    let mut env = Env::stdlib();
    // Fixed names on a fresh environment cannot clash.
    env.add_member_overload(
        "stripPrefix",
        "llm_string_strip_prefix",
        types::STRING_TYPE,
        vec![types::STRING_TYPE],
        strip_prefix,
    )
    .expect("stripPrefix(string)");
    env.add_macro(Macro::global("default", 2, default_macro))
        .expect("default macro");
    env
}

fn strip_prefix<'b, 'v>(args: Vec<CowVal<'b, 'v>>) -> Result<CowVal<'b, 'v>, ExecutionError> {
    let (Some(s), Some(p)) = (
        args[0].downcast_ref::<CelString>(),
        args[1].downcast_ref::<CelString>(),
    ) else {
        return Err(ExecutionError::function_error(
            "stripPrefix",
            "expects strings",
        ));
    };
    let out = s.inner().strip_prefix(p.inner()).unwrap_or(s.inner());
    Ok(CowVal::owned(CelString::from(out.to_string())))
}

/// `default(x, f)` → `x'.orValue(f)`, `x'` being `x` with each member
/// selection made optional; `x` itself when it is not a selection.
fn default_macro(
    helper: &mut MacroExprHelper<'_>,
    _target: &mut Option<IdedExpr>,
    args: &mut Vec<IdedExpr>,
) -> Result<Option<IdedExpr>, ParseError> {
    let fallback = args.pop().expect("two args");
    let value = args.pop().expect("two args");
    if !matches!(value.expr, Expr::Select(ref s) if !s.test) {
        return Ok(Some(value));
    }
    let optional = optional_chain(helper, value);
    Ok(Some(helper.next_expr(Expr::Call(CallExpr {
        func_name: "orValue".to_string(),
        target: Some(Box::new(optional)),
        args: vec![fallback],
    }))))
}

/// `a.b.c` → `a.?b.?c`.
fn optional_chain(helper: &mut MacroExprHelper<'_>, e: IdedExpr) -> IdedExpr {
    match e.expr {
        Expr::Select(s) if !s.test => {
            let operand = optional_chain(helper, *s.operand);
            let field = helper.next_expr(Expr::Literal(LiteralValue::String(s.field.into())));
            helper.next_expr(Expr::Call(CallExpr {
                func_name: operators::OPT_SELECT.to_string(),
                target: None,
                args: vec![operand, field],
            }))
        }
        other => IdedExpr {
            id: e.id,
            expr: other,
        },
    }
}

/// A compiled expression and its source (for messages).
pub struct LlmExpr {
    program: Program,
    source: String,
}

impl std::fmt::Debug for LlmExpr {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_tuple("LlmExpr").field(&self.source).finish()
    }
}

impl LlmExpr {
    pub fn compile(source: &str) -> Result<LlmExpr, CelError> {
        let program = env()
            .compile(source)
            .map_err(|e| CelError::Compile(e.to_string()))?;
        Ok(LlmExpr {
            program,
            source: source.to_owned(),
        })
    }

    pub fn source(&self) -> &str {
        &self.source
    }

    fn eval_with<R>(
        &self,
        req: &LlmRequest<'_>,
        read: impl FnOnce(&dyn Val) -> Option<R>,
        expected: &'static str,
    ) -> Result<R, CelError> {
        let mut ctx = Context::with_env(env());
        ctx.add_variable_as_val("llmRequest", req.0.clone());
        let out = Value::resolve_val(self.program.expression(), &ctx)
            .map_err(|e| CelError::Eval(e.to_string()))?;
        read(&*out).ok_or(CelError::Type { expected })
    }

    /// Evaluate to a boolean (`when`).
    pub fn eval_bool(&self, req: &LlmRequest<'_>) -> Result<bool, CelError> {
        self.eval_with(
            req,
            |v| v.downcast_ref::<CelBool>().map(|b| *b.inner()),
            "boolean",
        )
    }

    /// Evaluate to a string (`transformation.model`).
    pub fn eval_string(&self, req: &LlmRequest<'_>) -> Result<String, CelError> {
        self.eval_with(
            req,
            |v| v.downcast_ref::<CelString>().map(|s| s.inner().to_string()),
            "string",
        )
    }
}

/// The request body as `llmRequest`, built once per request and shared by
/// every expression that reads it; its strings are borrowed, not copied.
pub struct LlmRequest<'a>(Box<dyn Val + 'a>);

impl<'a> LlmRequest<'a> {
    pub fn new(body: &'a serde_json::Value) -> Self {
        LlmRequest(json_val(body))
    }
}

/// A JSON value as CEL reads it; strings are borrowed, not copied.
pub(crate) fn json_val(v: &serde_json::Value) -> Box<dyn Val + '_> {
    use serde_json::Value as J;
    match v {
        J::Null => Box::new(CelNull),
        J::Bool(b) => Box::new(CelBool::from(*b)),
        J::Number(n) => match (n.as_i64(), n.as_u64()) {
            (Some(i), _) => Box::new(CelInt::from(i)),
            (None, Some(u)) => Box::new(CelUInt::from(u)),
            _ => Box::new(CelDouble::from(n.as_f64().unwrap_or(f64::NAN))),
        },
        J::String(s) => Box::new(CelString::from(s.as_str())),
        J::Array(a) => Box::new(CelList::from(a.iter().map(json_val).collect::<Vec<_>>())),
        J::Object(o) => Box::new(CelMap::from(
            o.iter()
                .map(|(k, v)| (CelMapKey::from(k.as_str()), json_val(v)))
                .collect::<HashMap<_, _>>(),
        )),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    /// Evaluate against a body given by value (tests only).
    trait Eval {
        fn b(&self, v: serde_json::Value) -> Result<bool, CelError>;
        fn s(&self, v: serde_json::Value) -> Result<String, CelError>;
    }

    impl Eval for LlmExpr {
        fn b(&self, v: serde_json::Value) -> Result<bool, CelError> {
            self.eval_bool(&LlmRequest::new(&v))
        }
        fn s(&self, v: serde_json::Value) -> Result<String, CelError> {
            self.eval_string(&LlmRequest::new(&v))
        }
    }

    const TIER: &str = r#"default(llmRequest.metadata.cost_tier, "") == "economy" || (default(llmRequest.metadata.cost_tier, "") == "" && default(llmRequest.max_tokens, 1024) <= 1024)"#;

    #[test]
    fn strip_prefix_as_agentgateway_does() {
        let e = LlmExpr::compile(r#"llmRequest.model.stripPrefix("anthropic/")"#).unwrap();
        let got = e.s(json!({"model": "anthropic/claude-x"})).unwrap();
        assert_eq!(got, "claude-x");
        let got = e.s(json!({"model": "claude-y"})).unwrap();
        assert_eq!(got, "claude-y");
        // Only one prefix comes off.
        let got = e.s(json!({"model": "anthropic/anthropic/z"})).unwrap();
        assert_eq!(got, "anthropic/z");
    }

    #[test]
    fn default_covers_missing_members_at_any_depth() {
        let e = LlmExpr::compile(TIER).unwrap();
        assert!(e.b(json!({"model": "m"})).unwrap());
        assert!(e.b(json!({"max_tokens": 1024})).unwrap());
        assert!(!e.b(json!({"max_tokens": 1025})).unwrap());
        assert!(e
            .b(json!({"max_tokens": 9000, "metadata": {"cost_tier": "economy"}}))
            .unwrap());
        assert!(!e
            .b(json!({"max_tokens": 10, "metadata": {"cost_tier": "premium"}}))
            .unwrap());
        assert!(e.b(json!({"metadata": {}})).unwrap());
    }

    #[test]
    fn every_json_type_reads_as_cel() {
        let e = LlmExpr::compile(
            r#"llmRequest.n == 1 && llmRequest.f > 0.5 && llmRequest.l[0].x == "y" && llmRequest.z == null && llmRequest.t && size(llmRequest.l) == 1"#,
        )
        .unwrap();
        let v = json!({"n": 1, "f": 0.7, "l": [{"x": "y"}], "z": null, "t": true});
        assert!(e.b(v).unwrap());
    }

    #[test]
    fn errors_are_reported_not_panics() {
        assert!(matches!(
            LlmExpr::compile("llmRequest.model ==").unwrap_err(),
            CelError::Compile(_)
        ));
        let e = LlmExpr::compile("llmRequest.model").unwrap();
        assert!(e.s(json!({})).is_err());
        assert!(e.b(json!({"model": "x"})).is_err());
    }
}

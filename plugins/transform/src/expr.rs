//! CEL expressions: the environment (standard library plus the guide's
//! `json`, `toJson` and `filterKeys`), compilation, and evaluation against a
//! request or response.
//!
//! Expressions are compiled once, when the plugin instance is configured; a
//! request only builds a small variable map (borrowing the body, not copying
//! it) and walks the compiled tree.

use std::collections::HashMap;
use std::sync::{Arc, OnceLock};

use cel::common::ast::{
    operators, CallExpr, ComprehensionExpr, Expr, IdedExpr, ListExpr, LiteralValue,
};
use cel::common::types::{self, CelBytes, CelInt, CelMap, CelMapKey, CelString};
use cel::common::value::{CowVal, Val};
use cel::parser::{Macro, MacroExprHelper, ParseError};
use cel::{Context, Env, ExecutionError, Program};

use crate::json::{self, JsonObject};

/// The shared environment: building it registers a few hundred overloads, so
/// it is built once per instance and shared by every expression.
fn env() -> Arc<Env> {
    static ENV: OnceLock<Arc<Env>> = OnceLock::new();
    ENV.get_or_init(|| Arc::new(build_env())).clone()
}

fn build_env() -> Env {
    let mut env = Env::stdlib();
    // Registration of fixed names on a fresh environment cannot clash.
    env.add_overload("json", "json_string", vec![types::STRING_TYPE], json_fn)
        .expect("json(string)");
    env.add_overload("json", "json_bytes", vec![types::BYTES_TYPE], json_fn)
        .expect("json(bytes)");
    env.add_overload("toJson", "to_json_dyn", vec![types::DYN_TYPE], to_json_fn)
        .expect("toJson(dyn)");
    env.add_overload(
        FILTER_KEYS_FN,
        "filter_keys_map_list",
        vec![types::MAP_TYPE, types::LIST_TYPE],
        filter_keys_fn,
    )
    .expect("@filterKeys");
    env.add_macro(Macro::receiver("filterKeys", 2, filter_keys_macro))
        .expect("filterKeys macro");
    env
}

/// The internal function `filterKeys` expands to. The `@` keeps it out of
/// reach of expressions, which cannot spell it.
const FILTER_KEYS_FN: &str = "@filterKeys";

fn json_fn<'b, 'v>(args: Vec<CowVal<'b, 'v>>) -> Result<CowVal<'b, 'v>, ExecutionError> {
    let text: &str = if let Some(s) = args[0].downcast_ref::<CelString>() {
        s.inner()
    } else if let Some(b) = args[0].downcast_ref::<CelBytes>() {
        std::str::from_utf8(b.inner())
            .map_err(|e| ExecutionError::function_error("json", format!("invalid UTF-8: {e}")))?
    } else {
        return Err(ExecutionError::function_error(
            "json",
            "expects a string or bytes",
        ));
    };
    json::parse(text)
        .map(CowVal::from)
        .map_err(|e| ExecutionError::function_error("json", format!("invalid JSON: {e}")))
}

fn to_json_fn<'b, 'v>(args: Vec<CowVal<'b, 'v>>) -> Result<CowVal<'b, 'v>, ExecutionError> {
    json::to_json(&*args[0])
        .map(|s| CowVal::owned(CelString::from(s)))
        .map_err(|e| ExecutionError::function_error("toJson", e))
}

/// `@filterKeys(map, keptKeys)`: the map restricted to `keptKeys`, in the
/// map's own order.
fn filter_keys_fn<'b, 'v>(args: Vec<CowVal<'b, 'v>>) -> Result<CowVal<'b, 'v>, ExecutionError> {
    let kept = &args[1];
    let keep = |k: &dyn Val| -> bool {
        kept.as_container()
            .and_then(|c| c.contains(k).ok())
            .unwrap_or(false)
    };
    if let Some(o) = args[0].downcast_ref::<JsonObject>() {
        return Ok(CowVal::owned(
            o.retain(|k| keep(&CelString::from(k) as &dyn Val)),
        ));
    }
    if let Some(m) = args[0].downcast_ref::<CelMap>() {
        let map: HashMap<CelMapKey<'v>, Box<dyn Val + 'v>> = m
            .inner()
            .iter()
            .filter(|(k, _)| keep(k.inner()))
            .map(|(k, v)| (k.clone(), v.clone()))
            .collect();
        return Ok(CowVal::owned(CelMap::from(map)));
    }
    Err(ExecutionError::function_error(
        "filterKeys",
        "expects a map",
    ))
}

/// `m.filterKeys(k, pred)` expands to
/// `cel.bind(@fk_m, m, @filterKeys(@fk_m, @fk_m.filter(k, pred)))`: the map is
/// evaluated once, the standard `filter` comprehension picks the keys (in any
/// order), and `@filterKeys` keeps those entries in the map's own order.
fn filter_keys_macro(
    helper: &mut MacroExprHelper<'_>,
    target: &mut Option<IdedExpr>,
    args: &mut Vec<IdedExpr>,
) -> Result<Option<IdedExpr>, ParseError> {
    let var = match &args[0].expr {
        Expr::Ident(name) => name.clone(),
        _ => return Err(helper.new_error(
            args[0].id,
            "filterKeys: the first argument must be a simple name, as in filterKeys(k, k != \"x\")",
        )),
    };
    let pred = args.pop().expect("two args");
    let var_expr = args.pop().expect("two args");
    let target = target.take().expect("receiver macro");
    const M: &str = "@fk_m";
    const KEYS: &str = "@fk_keys";

    let ident =
        |helper: &mut MacroExprHelper<'_>, n: &str| helper.next_expr(Expr::Ident(n.to_string()));
    // [] + [k] when pred, over the keys of @fk_m
    let init = helper.next_expr(Expr::List(ListExpr::new(Vec::new())));
    let cond = helper.next_expr(Expr::Literal(LiteralValue::Boolean(true.into())));
    let acc = ident(helper, KEYS);
    let one = helper.next_expr(Expr::List(ListExpr::new(vec![var_expr])));
    let appended = helper.next_expr(Expr::Call(CallExpr {
        func_name: operators::ADD.to_string(),
        target: None,
        args: vec![acc, one],
    }));
    let acc2 = ident(helper, KEYS);
    let step = helper.next_expr(Expr::Call(CallExpr {
        func_name: operators::CONDITIONAL.to_string(),
        target: None,
        args: vec![pred, appended, acc2],
    }));
    let range = ident(helper, M);
    let result = ident(helper, KEYS);
    let keys = helper.next_expr(Expr::Comprehension(Box::new(ComprehensionExpr {
        iter_range: range,
        iter_var: var,
        iter_var2: None,
        accu_var: KEYS.to_string(),
        accu_init: init,
        loop_cond: cond,
        loop_step: step,
        result,
    })));
    let m = ident(helper, M);
    let call = helper.next_expr(Expr::Call(CallExpr {
        func_name: FILTER_KEYS_FN.to_string(),
        target: None,
        args: vec![m, keys],
    }));
    // bind @fk_m = target in call
    let empty = helper.next_expr(Expr::List(ListExpr::new(Vec::new())));
    let never = helper.next_expr(Expr::Literal(LiteralValue::Boolean(false.into())));
    let step = ident(helper, M);
    Ok(Some(helper.next_expr(Expr::Comprehension(Box::new(
        ComprehensionExpr {
            iter_range: empty,
            iter_var: "#unused".to_string(),
            iter_var2: None,
            accu_var: M.to_string(),
            accu_init: target,
            loop_cond: never,
            loop_step: step,
            result: call,
        },
    )))))
}

/// A compiled expression and its source (for messages).
pub struct Expression {
    program: Program,
    source: String,
}

impl std::fmt::Debug for Expression {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_tuple("Expression").field(&self.source).finish()
    }
}

impl Expression {
    /// Compile `source`; the error names the problem (position included).
    pub fn compile(source: &str) -> Result<Expression, String> {
        let program = env().compile(source).map_err(|e| e.to_string())?;
        Ok(Expression {
            program,
            source: source.to_owned(),
        })
    }

    pub fn source(&self) -> &str {
        &self.source
    }

    /// Whether the expression mentions variable `root` (e.g. `response`).
    pub fn references(&self, root: &str) -> bool {
        self.program.references().has_variable(root)
    }

    /// Evaluate against `vars`, rendering the result as bytes: a string or
    /// bytes result as is, anything else as JSON (`toJson`).
    pub fn eval_bytes(&self, vars: &Vars<'_>) -> Result<Vec<u8>, String> {
        self.eval_with(vars, |v| {
            if let Some(s) = v.downcast_ref::<CelString>() {
                Ok(s.inner().as_bytes().to_vec())
            } else if let Some(b) = v.downcast_ref::<CelBytes>() {
                Ok(b.inner().to_vec())
            } else {
                json::to_json(v).map(String::into_bytes)
            }
        })
    }

    /// Evaluate to a header value: strings as is, numbers and booleans as
    /// their text, `null` as absent (`Ok(None)`), anything else as JSON.
    pub fn eval_string(&self, vars: &Vars<'_>) -> Result<Option<String>, String> {
        self.eval_with(vars, |v| {
            if let Some(s) = v.downcast_ref::<CelString>() {
                Ok(Some(s.inner().to_owned()))
            } else if v.get_type() == &types::NULL_TYPE {
                Ok(None)
            } else if let Some(b) = v.downcast_ref::<CelBytes>() {
                Ok(Some(String::from_utf8_lossy(b.inner()).into_owned()))
            } else {
                json::to_json(v).map(Some)
            }
        })
    }

    fn eval_with<R>(
        &self,
        vars: &Vars<'_>,
        render: impl FnOnce(&dyn Val) -> Result<R, String>,
    ) -> Result<R, String> {
        let mut ctx = Context::with_env(env());
        for (name, v) in vars.roots() {
            ctx.add_variable_as_val(name, v);
        }
        let out =
            cel::Value::resolve_val(self.program.expression(), &ctx).map_err(|e| e.to_string())?;
        render(&*out)
    }
}

/// What an expression can see. Strings are borrowed from the request/response
/// (the body included), so binding them costs no copy.
#[derive(Default)]
pub struct Vars<'a> {
    pub request_id: &'a str,
    pub method: &'a str,
    pub path: &'a str,
    /// Lowercase names; repeated names joined with `, `.
    pub request_headers: Option<&'a [(String, String)]>,
    pub request_body: Option<&'a str>,
    /// `auth.claims` attribute (JSON object text), if any.
    pub claims: Option<String>,
    pub sub: Option<String>,
    pub route: &'a str,
    pub backend: &'a str,
    pub response_status: Option<u16>,
    pub response_headers: Option<&'a [(String, String)]>,
    pub response_body: Option<&'a str>,
}

type Boxed<'a> = Box<dyn Val + 'a>;

fn s<'a>(v: &'a str) -> Boxed<'a> {
    Box::new(CelString::from(v))
}

fn map<'a>(entries: Vec<(&'a str, Boxed<'a>)>) -> Boxed<'a> {
    let m: HashMap<CelMapKey<'a>, Boxed<'a>> = entries
        .into_iter()
        .map(|(k, v)| (CelMapKey::from(k), v))
        .collect();
    Box::new(CelMap::from(m))
}

fn headers_map(h: &[(String, String)]) -> Boxed<'_> {
    let mut m: HashMap<CelMapKey<'_>, Boxed<'_>> = HashMap::with_capacity(h.len());
    for (k, v) in merge_headers(h) {
        m.insert(CelMapKey::from(k), Box::new(CelString::from(v)));
    }
    Box::new(CelMap::from(m))
}

/// Lowercase names, repeated names joined with `, ` (HTTP list semantics).
pub fn merge_headers(h: &[(String, String)]) -> Vec<(String, String)> {
    let mut out: Vec<(String, String)> = Vec::with_capacity(h.len());
    for (k, v) in h {
        let k = k.to_ascii_lowercase();
        match out.iter_mut().find(|(n, _)| *n == k) {
            Some((_, existing)) => {
                existing.push_str(", ");
                existing.push_str(v);
            }
            None => out.push((k, v.clone())),
        }
    }
    out
}

impl<'a> Vars<'a> {
    fn roots(&self) -> Vec<(&'static str, Boxed<'_>)> {
        let claims: Boxed<'_> = match self.claims.as_deref().map(json::parse) {
            Some(Ok(v)) if v.get_type() == &types::MAP_TYPE => v,
            _ => map(Vec::new()),
        };
        let mut auth = vec![("claims", claims)];
        if let Some(sub) = &self.sub {
            auth.push(("sub", s(sub)));
        }
        let mut request = vec![
            ("id", s(self.request_id)),
            ("method", s(self.method)),
            ("path", s(self.path)),
            ("auth", map(auth)),
        ];
        if let Some(h) = self.request_headers {
            request.push(("headers", headers_map(h)));
        }
        if let Some(b) = self.request_body {
            request.push(("body", s(b)));
        }
        let mut roots = vec![
            ("request", map(request)),
            ("route", map(vec![("name", s(self.route))])),
            ("backend", map(vec![("name", s(self.backend))])),
        ];
        if let Some(status) = self.response_status {
            let mut response = vec![("status", Box::new(CelInt::from(status as i64)) as Boxed<'_>)];
            if let Some(h) = self.response_headers {
                response.push(("headers", headers_map(h)));
            }
            if let Some(b) = self.response_body {
                response.push(("body", s(b)));
            }
            roots.push(("response", map(response)));
        }
        roots
    }
}

//! CEL for `config.tracing.fields.add`: agentgateway's trace fields.
//!
//! Why real CEL: agentgateway's own tracing examples (Langfuse,
//! OpenLLMetry, Phoenix) map the prompt and the answer into the attribute
//! names those tools read with expressions such as
//! `flattenRecursive(llm.prompt.map(c, {"message": c}))`. A gateway that
//! takes its config language must evaluate them, not refuse them.
//!
//! The variables are agentgateway's names, filled in by the tracer when the
//! request is over: `llm` (`provider`, `requestModel`, `responseModel`,
//! `streaming`, the token counts, and `prompt`/`completion` when content may
//! be recorded for the request), `request` (`method`, `path`, `headers`),
//! `response` (`code`), `source` (`address`) and `jwt` (the claims).
//! `flatten(x)` and `flattenRecursive(x)` spread a list or map into one
//! attribute per member (`key.0`, `key.0.role`, ...), as agentgateway does.

use std::collections::HashMap;
use std::sync::{Arc, OnceLock};

use cel::common::functions::Function;
use cel::common::types::{self, CelMap, CelMapKey};
use cel::common::value::CowVal;
use cel::objects::Key;
use cel::{Context, Env, ExecutionError, Program, Value};
use serde_json::Value as Json;

use crate::llm_cel::{json_val, CelError};

/// The marker keys `flatten`/`flattenRecursive` wrap their argument in;
/// [`attributes`] unwraps them into one attribute per member.
const FLATTEN: &str = "$_meta_flatten";
const FLATTEN_RECURSIVE: &str = "$_meta_flatten_recursive";

fn env() -> Arc<Env> {
    static ENV: OnceLock<Arc<Env>> = OnceLock::new();
    ENV.get_or_init(|| {
        let mut env = Env::stdlib();
        // Fixed names on a fresh environment cannot clash.
        for (name, id, f) in [
            ("flatten", "trace_flatten", flatten as Function),
            (
                "flattenRecursive",
                "trace_flatten_recursive",
                flatten_recursive,
            ),
            (
                "flatten_recursive",
                "trace_flatten_recursive_old",
                flatten_recursive,
            ),
        ] {
            env.add_overload(name, id, vec![types::DYN_TYPE], f)
                .expect("flatten overloads");
        }
        Arc::new(env)
    })
    .clone()
}

fn wrap<'b, 'v>(
    marker: &'static str,
    mut args: Vec<CowVal<'b, 'v>>,
) -> Result<CowVal<'b, 'v>, ExecutionError> {
    let v = args
        .pop()
        .ok_or_else(|| ExecutionError::function_error("flatten", "expects one argument"))?;
    let mut m = HashMap::with_capacity(1);
    m.insert(CelMapKey::from(marker), v.into_owned());
    Ok(CowVal::owned(CelMap::from(m)))
}

fn flatten<'b, 'v>(args: Vec<CowVal<'b, 'v>>) -> Result<CowVal<'b, 'v>, ExecutionError> {
    wrap(FLATTEN, args)
}

fn flatten_recursive<'b, 'v>(args: Vec<CowVal<'b, 'v>>) -> Result<CowVal<'b, 'v>, ExecutionError> {
    wrap(FLATTEN_RECURSIVE, args)
}

/// A compiled `fields.add` expression.
pub struct TraceExpr {
    program: Program,
    source: String,
    content: bool,
}

impl std::fmt::Debug for TraceExpr {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_tuple("TraceExpr").field(&self.source).finish()
    }
}

impl TraceExpr {
    pub fn compile(source: &str) -> Result<TraceExpr, CelError> {
        let program = env()
            .compile(source)
            .map_err(|e| CelError::Compile(e.to_string()))?;
        // Conservative on purpose: a false positive only captures text that
        // the masking rule then decides about; a false negative would leave
        // a field the operator asked for empty.
        let content = source.contains("prompt") || source.contains("completion");
        Ok(TraceExpr {
            program,
            source: source.to_owned(),
            content,
        })
    }

    pub fn source(&self) -> &str {
        &self.source
    }

    /// Whether the expression may read `llm.prompt` or `llm.completion`.
    pub fn reads_content(&self) -> bool {
        self.content
    }

    /// Whether the expression may read `request.headers`.
    pub fn reads_headers(&self) -> bool {
        self.source.contains("headers")
    }

    /// Evaluate against `vars` (each a top-level variable); `None` when the
    /// expression fails (a missing member, say) or gives null, as
    /// agentgateway leaves such a field out.
    pub fn eval(&self, vars: &[(&str, &Json)]) -> Option<Value> {
        let mut ctx = Context::with_env(env());
        for (name, v) in vars {
            ctx.add_variable_as_val(*name, json_val(v));
        }
        match self.program.execute(&ctx) {
            Ok(Value::Null) => None,
            Ok(v) => Some(v),
            Err(e) => {
                tracing::trace!(expression = %self.source, error = %e, "trace field left out");
                None
            }
        }
    }
}

/// A scalar span attribute value.
#[derive(Clone, Debug, PartialEq)]
pub enum Scalar {
    Str(String),
    Int(i64),
    Float(f64),
    Bool(bool),
}

/// The attributes `key: v` gives: one, or one per member when `v` is a
/// `flatten`/`flattenRecursive` result. Lists and maps that are not
/// flattened become their JSON text, as agentgateway records them.
pub fn attributes(key: &str, v: &Value, out: &mut Vec<(String, Scalar)>) {
    spread(key.to_string(), v, false, out);
}

fn spread(key: String, v: &Value, recursive: bool, out: &mut Vec<(String, Scalar)>) {
    if let Some((inner, rec)) = flattened(v) {
        members(&key, inner, rec, out);
        return;
    }
    match v {
        Value::List(_) | Value::Map(_) if recursive => members(&key, v, true, out),
        Value::Null => {}
        Value::Int(i) => out.push((key, Scalar::Int(*i))),
        Value::UInt(u) => out.push((key, Scalar::Int(i64::try_from(*u).unwrap_or(i64::MAX)))),
        Value::Float(f) => out.push((key, Scalar::Float(*f))),
        Value::Bool(b) => out.push((key, Scalar::Bool(*b))),
        Value::String(s) => out.push((key, Scalar::Str(s.to_string()))),
        other => out.push((key, Scalar::Str(to_json(other).to_string()))),
    }
}

fn members(key: &str, v: &Value, recursive: bool, out: &mut Vec<(String, Scalar)>) {
    match v {
        Value::List(l) => {
            for (i, m) in l.iter().enumerate() {
                spread(format!("{key}.{i}"), m, recursive, out);
            }
        }
        Value::Map(m) => {
            let mut entries: Vec<_> = m.map.iter().collect();
            entries.sort_by_key(|(k, _)| key_text(k));
            for (k, m) in entries {
                spread(format!("{key}.{}", key_text(k)), m, recursive, out);
            }
        }
        other => spread(key.to_string(), other, recursive, out),
    }
}

/// `Some((argument, recursive))` when `v` is what `flatten*` returned.
fn flattened(v: &Value) -> Option<(&Value, bool)> {
    let Value::Map(m) = v else { return None };
    if m.map.len() != 1 {
        return None;
    }
    let (Key::String(k), inner) = m.map.iter().next()? else {
        return None;
    };
    match k.as_str() {
        FLATTEN => Some((inner, false)),
        FLATTEN_RECURSIVE => Some((inner, true)),
        _ => None,
    }
}

fn key_text(k: &Key) -> String {
    match k {
        Key::Int(i) => i.to_string(),
        Key::Uint(u) => u.to_string(),
        Key::Bool(b) => b.to_string(),
        Key::String(s) => s.to_string(),
    }
}

fn to_json(v: &Value) -> Json {
    match v {
        Value::List(l) => Json::Array(l.iter().map(to_json).collect()),
        Value::Map(m) => Json::Object(
            m.map
                .iter()
                .map(|(k, v)| (key_text(k), to_json(v)))
                .collect(),
        ),
        Value::Int(i) => (*i).into(),
        Value::UInt(u) => (*u).into(),
        Value::Float(f) => serde_json::Number::from_f64(*f).map_or(Json::Null, Json::Number),
        Value::String(s) => Json::String(s.to_string()),
        Value::Bool(b) => Json::Bool(*b),
        Value::Null => Json::Null,
        Value::Bytes(b) => Json::String(String::from_utf8_lossy(b).into_owned()),
        other => Json::String(format!("{other:?}")),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn run(expr: &str, llm: Json) -> Vec<(String, Scalar)> {
        let e = TraceExpr::compile(expr).unwrap();
        let mut out = Vec::new();
        if let Some(v) = e.eval(&[("llm", &llm)]) {
            attributes("k", &v, &mut out);
        }
        out
    }

    #[test]
    fn agentgateway_examples_flatten_prompt_and_completion() {
        let llm = json!({
            "prompt": [{"role": "user", "content": "hi"}],
            "completion": ["hello"],
        });
        let got = run(
            "flattenRecursive(llm.prompt.map(c, {\"message\": c}))",
            llm.clone(),
        );
        assert_eq!(
            got,
            vec![
                ("k.0.message.content".into(), Scalar::Str("hi".into())),
                ("k.0.message.role".into(), Scalar::Str("user".into())),
            ]
        );
        let got = run(
            r#"flattenRecursive(llm.completion.map(c, {"role":"assistant", "content": c}))"#,
            llm.clone(),
        );
        assert_eq!(
            got,
            vec![
                ("k.0.content".into(), Scalar::Str("hello".into())),
                ("k.0.role".into(), Scalar::Str("assistant".into())),
            ]
        );
        // `flatten` spreads one level; deeper values stay JSON.
        let got = run("flatten(llm.prompt)", llm.clone());
        assert_eq!(got.len(), 1);
        assert_eq!(got[0].0, "k.0");
        assert!(matches!(&got[0].1, Scalar::Str(s) if s.contains("\"role\"")));
        assert!(TraceExpr::compile("flattenRecursive(llm.prompt)")
            .unwrap()
            .reads_content());
    }

    #[test]
    fn scalars_missing_members_and_errors() {
        assert_eq!(
            run("llm.inputTokens + 1", json!({"inputTokens": 4})),
            vec![("k".into(), Scalar::Int(5))]
        );
        assert_eq!(
            run("'\"x\"'", json!({})),
            vec![("k".into(), Scalar::Str("\"x\"".into()))]
        );
        // A missing member leaves the field out; nothing panics.
        assert!(run("llm.prompt", json!({})).is_empty());
        assert!(run("llm.x == null ? null : 1", json!({"x": null})).is_empty());
        assert!(matches!(
            TraceExpr::compile("llm.(").unwrap_err(),
            CelError::Compile(_)
        ));
        assert!(!TraceExpr::compile("llm.provider").unwrap().reads_content());
    }
}

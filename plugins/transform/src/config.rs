//! Config parsing: the guide's and agentgateway's forms, into one model.
//!
//! Accepted keys (any subset, as the host hands them over):
//!
//! ```yaml
//! requestHeaderModifier:            # values: strings with $(...) templates
//!   set: {X-Gateway-Version: "1.2", X-Request-ID: \\$(request.id)}
//!   add: [{name: X-A, value: b}]     # Gateway API list form works too
//!   remove: [X-Internal]
//!   onMissing: remove                # or reject; see below
//! responseHeaderModifier: {add: {X-Gateway-Processed: "true"}}
//! transformations:
//!   request:
//!     body: toJson(json(request.body).filterKeys(k, k != "context_management"))  # CEL
//!     headers:                       # guide's form: values are $(...) templates
//!       set: {X-Authenticated-User: \\$(request.auth.claims.email)}
//!     set: {x-user: 'request.headers["x-user"]'}   # agentgateway's flat form: values are CEL
//!     add: {...}                     # CEL
//!     remove: [x-secret]
//!   response: {headers: {...}, set: {...}, add: {...}, remove: [...], body: <CEL>}
//!   # onMissing under transformations.<side> covers that side's CEL and
//!   # `headers:` edits; a `headers:` block may override it with its own.
//! ```
//!
//! `onMissing` says what a `set`/`add` does when its value cannot be
//! computed for a request (a template variable missing or empty, a CEL
//! expression failing or yielding `null`, a value a header cannot carry):
//! `remove` (default: a `set` removes the header, so a client-sent value
//! never survives it, and an `add` adds nothing) or `reject` (the request is
//! refused with 403, a response replaced by a 502; see
//! [`sluice_sdk::header_set::Unset`]). Any other value is a config error.
//!
//! The rule telling templates from CEL is positional: values under a
//! `*HeaderModifier` or a `headers:` block are template strings; values of
//! `set`/`add` directly under `transformations.request`/`.response` are CEL
//! expressions, as in agentgateway. Bodies are always CEL.

use serde_json::{Map, Value};
use sluice_sdk::config::object;
use sluice_sdk::header_set::OnMissing;
use sluice_sdk::template::Template;

use crate::expr::Expression;

/// One `set` or `add`: the (lowercase) header name, its value (a template or
/// CEL), and what to do when the value cannot be computed.
#[derive(Debug)]
pub struct Edit<V> {
    pub name: String,
    pub value: V,
    pub on_missing: OnMissing,
}

/// Header edits of one kind of value (templates or CEL).
#[derive(Debug)]
pub struct Edits<V> {
    pub set: Vec<Edit<V>>,
    pub add: Vec<Edit<V>>,
    pub remove: Vec<String>,
}

impl<V> Default for Edits<V> {
    fn default() -> Self {
        Edits {
            set: Vec::new(),
            add: Vec::new(),
            remove: Vec::new(),
        }
    }
}

impl<V> Edits<V> {
    pub fn is_empty(&self) -> bool {
        self.set.is_empty() && self.add.is_empty() && self.remove.is_empty()
    }
}

/// Everything for one direction.
#[derive(Debug, Default)]
pub struct Side {
    /// Template-valued edits (`*HeaderModifier`, `transformations.*.headers`).
    pub templates: Edits<Template>,
    /// CEL-valued `set`/`add` (agentgateway's flat form); removals are in `templates.remove`.
    pub cel: Edits<Expression>,
    pub body: Option<Expression>,
}

impl Side {
    pub fn has_header_edits(&self) -> bool {
        !self.templates.is_empty() || !self.cel.is_empty()
    }
}

#[derive(Debug, Default)]
pub struct Config {
    pub request: Side,
    pub response: Side,
}

/// Parse and check the whole config; the error names the offending key.
pub fn parse(v: &Value) -> Result<Config, String> {
    let obj = match v {
        Value::Null => return Ok(Config::default()),
        Value::Object(o) => o,
        _ => return Err("transform config must be an object".into()),
    };
    let mut cfg = Config::default();
    for (key, val) in obj {
        match key.as_str() {
            "requestHeaderModifier" => {
                template_edits(val, key, OnMissing::default(), &mut cfg.request.templates)?;
            }
            "responseHeaderModifier" => {
                template_edits(val, key, OnMissing::default(), &mut cfg.response.templates)?;
            }
            "transformations" => {
                let t = object(val, key)?;
                for (dir, v) in t {
                    let path = format!("transformations.{dir}");
                    let side = match dir.as_str() {
                        "request" => &mut cfg.request,
                        "response" => &mut cfg.response,
                        _ => return Err(format!("unknown key `{path}` (expected request, response)")),
                    };
                    transformation(v, &path, side)?;
                }
            }
            other => {
                return Err(format!(
                    "unknown key `{other}` (expected requestHeaderModifier, responseHeaderModifier, transformations)"
                ))
            }
        }
    }
    Ok(cfg)
}

/// The block's `onMissing` (else `inherited`); an unknown value is an error.
fn on_missing(
    block: &Map<String, Value>,
    path: &str,
    inherited: OnMissing,
) -> Result<OnMissing, String> {
    match block.get("onMissing") {
        None => Ok(inherited),
        Some(Value::String(s)) => s.parse().map_err(|e| format!("`{path}.onMissing`: {e}")),
        Some(_) => Err(format!("`{path}.onMissing` must be remove or reject")),
    }
}

fn transformation(v: &Value, path: &str, side: &mut Side) -> Result<(), String> {
    let block = object(v, path)?;
    let side_rule = on_missing(block, path, OnMissing::default())?;
    for (key, val) in block {
        let p = format!("{path}.{key}");
        match key.as_str() {
            "body" => {
                let src = val
                    .as_str()
                    .ok_or_else(|| format!("`{p}` must be a CEL expression (string)"))?;
                let e = Expression::compile(src).map_err(|e| format!("`{p}`: invalid CEL: {e}"))?;
                side.body = Some(e);
            }
            "headers" => template_edits(val, &p, side_rule, &mut side.templates)?,
            "onMissing" => {}
            "set" | "add" => {
                for (name, value) in pairs(val, &p)? {
                    let src = value
                        .as_str()
                        .ok_or_else(|| format!("`{p}.{name}` must be a CEL expression (string)"))?;
                    let e = Expression::compile(src)
                        .map_err(|e| format!("`{p}.{name}`: invalid CEL: {e}"))?;
                    let list = if key == "set" {
                        &mut side.cel.set
                    } else {
                        &mut side.cel.add
                    };
                    list.push(Edit {
                        name,
                        value: e,
                        on_missing: side_rule,
                    });
                }
            }
            "remove" => side.templates.remove.extend(names(val, &p)?),
            _ => {
                return Err(format!(
                    "unknown key `{p}` (expected body, headers, set, add, remove, onMissing)"
                ))
            }
        }
    }
    Ok(())
}

fn template_edits(
    v: &Value,
    path: &str,
    inherited: OnMissing,
    edits: &mut Edits<Template>,
) -> Result<(), String> {
    let block = object(v, path)?;
    let rule = on_missing(block, path, inherited)?;
    for (key, val) in block {
        let p = format!("{path}.{key}");
        match key.as_str() {
            "set" | "add" => {
                for (name, value) in pairs(val, &p)? {
                    let text = scalar_text(&value)
                        .ok_or_else(|| format!("`{p}.{name}` must be a string"))?;
                    let t = Template::parse(&text).map_err(|e| format!("`{p}.{name}`: {e}"))?;
                    let list = if key == "set" {
                        &mut edits.set
                    } else {
                        &mut edits.add
                    };
                    list.push(Edit {
                        name,
                        value: t,
                        on_missing: rule,
                    });
                }
            }
            "remove" => edits.remove.extend(names(val, &p)?),
            "onMissing" => {}
            _ => {
                return Err(format!(
                    "unknown key `{p}` (expected set, add, remove, onMissing)"
                ))
            }
        }
    }
    Ok(())
}

/// A YAML scalar as header text: `X-Gateway-Version: 1.2` unquoted arrives
/// as a number and is meant as the text `1.2`.
fn scalar_text(v: &Value) -> Option<String> {
    match v {
        Value::String(s) => Some(s.clone()),
        Value::Number(n) => Some(n.to_string()),
        Value::Bool(b) => Some(b.to_string()),
        _ => None,
    }
}

/// `{name: value}` or `[{name, value}]`, names checked and lowercased.
fn pairs(v: &Value, path: &str) -> Result<Vec<(String, Value)>, String> {
    let raw: Vec<(String, Value)> = match v {
        Value::Object(o) => o.iter().map(|(k, v)| (k.clone(), v.clone())).collect(),
        Value::Array(items) => items
            .iter()
            .enumerate()
            .map(|(i, item)| {
                let o = item
                    .as_object()
                    .ok_or_else(|| format!("`{path}[{i}]` must be {{name, value}}"))?;
                if let Some(k) = o.keys().find(|k| *k != "name" && *k != "value") {
                    return Err(format!(
                        "unknown key `{path}[{i}].{k}` (expected name, value)"
                    ));
                }
                let name = o
                    .get("name")
                    .and_then(Value::as_str)
                    .ok_or_else(|| format!("`{path}[{i}].name` must be a string"))?;
                let value = o
                    .get("value")
                    .cloned()
                    .ok_or_else(|| format!("`{path}[{i}].value` is missing"))?;
                Ok((name.to_owned(), value))
            })
            .collect::<Result<_, String>>()?,
        Value::Null => Vec::new(),
        _ => return Err(format!("`{path}` must be a map of header names to values")),
    };
    raw.into_iter()
        .map(|(name, value)| Ok((header_name(&name, path)?, value)))
        .collect()
}

/// `[name, ...]` (a single name is accepted too).
fn names(v: &Value, path: &str) -> Result<Vec<String>, String> {
    match v {
        Value::String(s) => Ok(vec![header_name(s, path)?]),
        Value::Array(items) => items
            .iter()
            .map(|i| {
                i.as_str()
                    .ok_or_else(|| format!("`{path}` must be a list of header names"))
                    .and_then(|s| header_name(s, path))
            })
            .collect(),
        Value::Null => Ok(Vec::new()),
        _ => Err(format!("`{path}` must be a list of header names")),
    }
}

/// An HTTP token (RFC 9110), lowercased as the contract wants.
fn header_name(name: &str, path: &str) -> Result<String, String> {
    let ok = !name.is_empty()
        && name
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b"!#$%&'*+-.^_`|~".contains(&b));
    if ok {
        Ok(name.to_ascii_lowercase())
    } else {
        Err(format!("`{path}`: invalid header name {name:?}"))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn guide_transformations_yaml() {
        let c = parse(&json!({
            "requestHeaderModifier": {"set": {"X-Gateway-Version": "1.2", "X-Request-ID": "\\\\$(request.id)"}},
            "responseHeaderModifier": {"add": {"X-Gateway-Processed": "true"}}
        }))
        .unwrap();
        assert_eq!(c.request.templates.set.len(), 2);
        assert_eq!(c.request.templates.set[0].name, "x-gateway-version");
        assert_eq!(c.request.templates.set[0].on_missing, OnMissing::Remove);
        assert_eq!(c.response.templates.add[0].name, "x-gateway-processed");
        assert!(c.request.body.is_none());
    }

    #[test]
    fn guide_production_transformations() {
        let c = parse(&json!({"transformations": {"request": {
            "body": "toJson(json(request.body).filterKeys(k, k != \"context_management\"))",
            "headers": {"set": {"X-Authenticated-User": "\\\\$(request.auth.claims.email)", "X-Gateway-Source": "claude-code"}}
        }}}))
        .unwrap();
        assert!(c.request.body.is_some());
        assert_eq!(c.request.templates.set.len(), 2);
        assert!(c.request.cel.is_empty());
    }

    #[test]
    fn agentgateway_flat_and_list_forms() {
        let c = parse(&json!({
            "requestHeaderModifier": {"set": [{"name": "X-A", "value": "a"}], "add": [{"name": "x-b", "value": 2}], "remove": ["x-c"]},
            "transformations": {"request": {"set": {"x-user": "request.headers[\"x-user\"]"}, "add": [{"name": "x-m", "value": "request.method"}], "remove": ["x-d"]},
                                "response": {"set": {"x-status": "string(response.status)"}, "body": "response.body"}}
        }))
        .unwrap();
        assert_eq!(c.request.templates.add[0].name, "x-b");
        assert_eq!(c.request.templates.remove, ["x-c", "x-d"]);
        assert_eq!(c.request.cel.set[0].name, "x-user");
        assert_eq!(c.request.cel.add[0].name, "x-m");
        assert_eq!(c.response.cel.set.len(), 1);
        assert!(c.response.body.is_some());
    }

    #[test]
    fn on_missing_per_block_and_side() {
        let c = parse(&json!({
            "requestHeaderModifier": {"onMissing": "reject", "set": {"x-a": "$(request.id)"}},
            "responseHeaderModifier": {"set": {"x-b": "1"}},
            "transformations": {
                "request": {"onMissing": "reject", "set": {"x-c": "request.method"},
                            "headers": {"add": {"x-d": "d"}}},
                "response": {"onMissing": "reject", "headers": {"onMissing": "remove", "set": {"x-e": "e"}}}
            }
        }))
        .unwrap();
        let rules = |e: &[Edit<Template>]| e.iter().map(|e| e.on_missing).collect::<Vec<_>>();
        assert_eq!(rules(&c.request.templates.set), [OnMissing::Reject]);
        assert_eq!(rules(&c.request.templates.add), [OnMissing::Reject]);
        assert_eq!(c.request.cel.set[0].on_missing, OnMissing::Reject);
        assert_eq!(
            rules(&c.response.templates.set),
            [OnMissing::Remove, OnMissing::Remove]
        );
    }

    #[test]
    fn errors_name_the_key() {
        let cases = [
            (json!({"rateLimit": {}}), "unknown key `rateLimit`"),
            (
                json!({"requestHeaderModifier": {"put": {}}}),
                "requestHeaderModifier.put",
            ),
            (
                json!({"requestHeaderModifier": {"set": {"X": "$(request.nope)"}}}),
                "requestHeaderModifier.set.x",
            ),
            (
                json!({"requestHeaderModifier": {"set": {"bad name": "v"}}}),
                "invalid header name",
            ),
            (
                json!({"transformations": {"request": {"body": "json(("}}}),
                "transformations.request.body",
            ),
            (
                json!({"transformations": {"request": {"body": 5}}}),
                "transformations.request.body",
            ),
            (
                json!({"transformations": {"request": {"set": {"x": "a +"}}}}),
                "transformations.request.set.x",
            ),
            (
                json!({"transformations": {"upstream": {}}}),
                "transformations.upstream",
            ),
            (
                json!({"transformations": {"request": {"headers": {"set": {"x": {"a": 1}}}}}}),
                "must be a string",
            ),
            (
                json!({"transformations": {"request": {"body": "x.filterKeys(\"k\", true)"}}}),
                "simple name",
            ),
            (
                json!({"requestHeaderModifier": {"onMissing": "refuse", "set": {"x": "a"}}}),
                "`requestHeaderModifier.onMissing`: `refuse` is not an onMissing value",
            ),
            (
                json!({"transformations": {"request": {"onMissing": true}}}),
                "transformations.request.onMissing",
            ),
            (
                json!({"transformations": {"response": {"headers": {"onMissing": "Reject"}}}}),
                "transformations.response.headers.onMissing",
            ),
        ];
        for (cfg, want) in cases {
            let err = parse(&cfg).unwrap_err();
            assert!(err.contains(want), "{cfg}: {err}");
        }
    }
}

//! Config parsing: the guide's and agentgateway's forms, into one model.
//!
//! Accepted keys (any subset, as the host hands them over):
//!
//! ```yaml
//! requestHeaderModifier:            # values: strings with $(...) templates
//!   set: {X-Gateway-Version: "1.2", X-Request-ID: \\$(request.id)}
//!   add: [{name: X-A, value: b}]     # Gateway API list form works too
//!   remove: [X-Internal]
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
//! ```
//!
//! The rule telling templates from CEL is positional: values under a
//! `*HeaderModifier` or a `headers:` block are template strings; values of
//! `set`/`add` directly under `transformations.request`/`.response` are CEL
//! expressions, as in agentgateway. Bodies are always CEL.

use serde_json::Value;
use sluice_sdk::config::object;

use crate::expr::Expression;
use crate::template::Template;

/// Header edits of one kind of value (templates or CEL).
#[derive(Debug)]
pub struct Edits<V> {
    pub set: Vec<(String, V)>,
    pub add: Vec<(String, V)>,
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
                template_edits(val, key, &mut cfg.request.templates)?;
            }
            "responseHeaderModifier" => {
                template_edits(val, key, &mut cfg.response.templates)?;
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

fn transformation(v: &Value, path: &str, side: &mut Side) -> Result<(), String> {
    for (key, val) in object(v, path)? {
        let p = format!("{path}.{key}");
        match key.as_str() {
            "body" => {
                let src = val
                    .as_str()
                    .ok_or_else(|| format!("`{p}` must be a CEL expression (string)"))?;
                let e = Expression::compile(src).map_err(|e| format!("`{p}`: invalid CEL: {e}"))?;
                side.body = Some(e);
            }
            "headers" => template_edits(val, &p, &mut side.templates)?,
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
                    list.push((name, e));
                }
            }
            "remove" => side.templates.remove.extend(names(val, &p)?),
            _ => {
                return Err(format!(
                    "unknown key `{p}` (expected body, headers, set, add, remove)"
                ))
            }
        }
    }
    Ok(())
}

fn template_edits(v: &Value, path: &str, edits: &mut Edits<Template>) -> Result<(), String> {
    for (key, val) in object(v, path)? {
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
                    list.push((name, t));
                }
            }
            "remove" => edits.remove.extend(names(val, &p)?),
            _ => return Err(format!("unknown key `{p}` (expected set, add, remove)")),
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
        assert_eq!(c.request.templates.set[0].0, "x-gateway-version");
        assert_eq!(c.response.templates.add[0].0, "x-gateway-processed");
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
        assert_eq!(c.request.templates.add[0].0, "x-b");
        assert_eq!(c.request.templates.remove, ["x-c", "x-d"]);
        assert_eq!(c.request.cel.set[0].0, "x-user");
        assert_eq!(c.request.cel.add[0].0, "x-m");
        assert_eq!(c.response.cel.set.len(), 1);
        assert!(c.response.body.is_some());
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
        ];
        for (cfg, want) in cases {
            let err = parse(&cfg).unwrap_err();
            assert!(err.contains(want), "{cfg}: {err}");
        }
    }
}

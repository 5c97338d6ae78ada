//! What every request translator needs to read a JSON body and build an
//! Anthropic conversation: the object type, the 400 for a malformed body,
//! and the turn builder that merges consecutive blocks of one role.

use std::collections::HashSet;

use serde_json::{json, Map, Value};

use super::fields::TranslateError;

pub(super) type Obj = Map<String, Value>;

pub(super) fn invalid(msg: impl Into<String>) -> TranslateError {
    TranslateError::Invalid(msg.into())
}

/// `v` as an object, or a 400 naming `what`.
pub(super) fn obj<'a>(v: &'a Value, what: &str) -> Result<&'a Obj, TranslateError> {
    v.as_object()
        .ok_or_else(|| invalid(format!("`{what}` must be an object")))
}

/// An Anthropic conversation being built from another format's items.
#[derive(Default)]
pub(super) struct Turns {
    pub system: Vec<Value>,
    pub messages: Vec<Value>,
    /// Tool call ids issued so far: a result must answer one of them.
    pub issued: HashSet<String>,
}

impl Turns {
    /// Consecutive blocks of one role merge into one Anthropic turn (the
    /// Messages API wants turns to alternate).
    pub fn push(&mut self, role: &str, block: Value) {
        if let Some(last) = self.messages.last_mut() {
            if last["role"] == role {
                if let Some(c) = last["content"].as_array_mut() {
                    c.push(block);
                    return;
                }
            }
        }
        self.messages
            .push(json!({"role": role, "content": [block]}));
    }
}

/// An OpenAI function tool's `{name, description, parameters}` as an
/// Anthropic tool (a missing schema is an empty object schema). The
/// caller has already refused the keys it cannot carry.
pub(super) fn anthropic_tool(f: &Obj) -> Value {
    let mut tool = json!({"name": f.get("name").cloned().unwrap_or_default(),
        "input_schema": f.get("parameters").cloned().unwrap_or_else(|| json!({"type": "object"}))});
    if let Some(d) = f.get("description") {
        tool["description"] = d.clone();
    }
    tool
}

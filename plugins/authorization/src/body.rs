//! The request body as rules read it: one JSON object, read strictly.
//!
//! The host already decodes `Content-Encoding` and holds JSON kinds
//! (`messages`, `completions`, ...) to strict JSON before any policy runs.
//! This reading repeats the one check that decides what `model` means,
//! because routes with a `passthrough` kind skip the host's: an object
//! that repeats a key, at any depth, is not read at all, so a client
//! cannot show this policy one `model` and the provider another. Escapes
//! are decoded as the provider decodes them (`"mod\u0065l"` is `model`).

use std::collections::HashSet;
use std::fmt;

use serde::de::{DeserializeSeed, Deserializer, MapAccess, SeqAccess, Visitor};
use serde_json::{Map, Value};

/// What the rules can know from the body.
#[derive(Debug, Default, Clone, PartialEq)]
pub struct LlmBody {
    /// The whole body (`llmRequest`), when it is one strict JSON object.
    pub request: Option<Value>,
    /// Its `model`, when that is a string (`llm.requestModel`).
    pub model: Option<String>,
    /// Its `stream` is `true` (`llm.streaming`).
    pub streaming: bool,
}

/// Read `body`; anything but one strict JSON object yields nothing, and a
/// rule that reads `llm.requestModel` then fails (see `rule::decide`).
pub fn read(body: &[u8]) -> LlmBody {
    let Some(Value::Object(o)) = strict(body) else {
        return LlmBody::default();
    };
    LlmBody {
        model: o.get("model").and_then(Value::as_str).map(str::to_owned),
        streaming: o.get("stream") == Some(&Value::Bool(true)),
        request: Some(Value::Object(o)),
    }
}

/// `body` as JSON if it is exactly one value with no key repeated in any
/// object (trailing data, bad UTF-8 or a repeated key: `None`).
pub fn strict(body: &[u8]) -> Option<Value> {
    let mut de = serde_json::Deserializer::from_slice(body);
    let v = Strict.deserialize(&mut de).ok()?;
    de.end().ok()?;
    Some(v)
}

/// A `serde_json::Value` seed that refuses repeated keys.
struct Strict;

impl<'de> DeserializeSeed<'de> for Strict {
    type Value = Value;
    fn deserialize<D: Deserializer<'de>>(self, d: D) -> Result<Value, D::Error> {
        d.deserialize_any(self)
    }
}

impl<'de> Visitor<'de> for Strict {
    type Value = Value;

    fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("JSON")
    }
    fn visit_bool<E>(self, v: bool) -> Result<Value, E> {
        Ok(Value::Bool(v))
    }
    fn visit_i64<E>(self, v: i64) -> Result<Value, E> {
        Ok(v.into())
    }
    fn visit_u64<E>(self, v: u64) -> Result<Value, E> {
        Ok(v.into())
    }
    fn visit_f64<E>(self, v: f64) -> Result<Value, E> {
        Ok(serde_json::Number::from_f64(v).map_or(Value::Null, Value::Number))
    }
    fn visit_str<E>(self, v: &str) -> Result<Value, E> {
        Ok(Value::String(v.to_owned()))
    }
    fn visit_string<E>(self, v: String) -> Result<Value, E> {
        Ok(Value::String(v))
    }
    fn visit_unit<E>(self) -> Result<Value, E> {
        Ok(Value::Null)
    }
    fn visit_seq<A: SeqAccess<'de>>(self, mut seq: A) -> Result<Value, A::Error> {
        let mut out = Vec::new();
        while let Some(v) = seq.next_element_seed(Strict)? {
            out.push(v);
        }
        Ok(Value::Array(out))
    }
    fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<Value, A::Error> {
        let mut out = Map::new();
        let mut seen = HashSet::new();
        while let Some(k) = map.next_key::<String>()? {
            if !seen.insert(k.clone()) {
                return Err(serde::de::Error::custom("repeated key"));
            }
            let v = map.next_value_seed(Strict)?;
            out.insert(k, v);
        }
        Ok(Value::Object(out))
    }
}

//! Order-preserving JSON values for CEL.
//!
//! The `cel` crate's own maps are `HashMap`s: a request body that went through
//! them would come back with its keys shuffled, which changes what prompt
//! caching sees and breaks byte-level expectations of clients. So `json()`
//! does not build a CEL map. It returns a [`JsonObject`]: a CEL `map` whose
//! entries are kept in document order, with each member's value kept as its
//! original JSON text ([`RawValue`]). Members are only converted to CEL values
//! when an expression looks at them (`.model`, `["x"]`), and `toJson` writes
//! untouched members back byte for byte. That makes the guide's
//! `toJson(json(request.body).filterKeys(k, k != "context_management"))`
//! both faithful (order and nested values intact) and cheap: the 50 KB body is
//! scanned once and nothing below the top level is ever materialised.

use std::any::Any;
use std::fmt::Write as _;
use std::sync::Arc;

use cel::common::traits::{Container, Indexer, Iterable, Iterator as CelIterator, Sizer};
use cel::common::types::{
    self, CelBool, CelBytes, CelDouble, CelInt, CelList, CelMap, CelNull, CelString, CelUInt, Type,
};
use cel::common::value::{CowVal, StaticVal, Val};
use cel::ExecutionError;
use serde::de::{Deserialize, Deserializer, MapAccess, Visitor};
use serde_json::value::RawValue;

/// One member: the key (already a CEL string, so iteration lends it out) and
/// the value's original JSON text.
type Entry = (CelString<'static>, Box<RawValue>);

/// A JSON object as an ordered CEL `map`. Cloning shares the entries.
#[derive(Debug, Clone)]
pub struct JsonObject(Arc<Vec<Entry>>);

impl JsonObject {
    /// The members, in document order.
    pub fn entries(&self) -> &[Entry] {
        &self.0
    }

    /// The last member named `key` (JSON parsers keep the last duplicate).
    fn find(&self, key: &str) -> Option<&RawValue> {
        self.0
            .iter()
            .rev()
            .find(|(k, _)| k.inner() == key)
            .map(|(_, v)| &**v)
    }

    /// The members whose key satisfies `keep`, order unchanged.
    pub fn retain(&self, mut keep: impl FnMut(&str) -> bool) -> JsonObject {
        JsonObject(Arc::new(
            self.0
                .iter()
                .filter(|(k, _)| keep(k.inner()))
                .map(|(k, v)| (k.clone(), v.clone()))
                .collect(),
        ))
    }
}

/// Deserializes a JSON object into ordered entries, values left raw.
struct Entries(Vec<Entry>);

impl<'de> Deserialize<'de> for Entries {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        struct V;
        impl<'de> Visitor<'de> for V {
            type Value = Entries;
            fn expecting(&self, f: &mut std::fmt::Formatter) -> std::fmt::Result {
                f.write_str("a JSON object")
            }
            fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<Entries, A::Error> {
                let mut out = Vec::with_capacity(map.size_hint().unwrap_or(16));
                while let Some((k, v)) = map.next_entry::<String, Box<RawValue>>()? {
                    out.push((CelString::from(k), v));
                }
                Ok(Entries(out))
            }
        }
        d.deserialize_map(V)
    }
}

/// `json(text)`: parse JSON text into a CEL value (objects lazily, see the
/// module doc; arrays as lists; integers as `int` when they fit, else
/// `uint`/`double`).
pub fn parse(text: &str) -> Result<Box<dyn Val + 'static>, String> {
    match text.trim_start().as_bytes().first() {
        Some(b'{') => serde_json::from_str::<Entries>(text)
            .map(|e| Box::new(JsonObject(Arc::new(e.0))) as Box<dyn Val>)
            .map_err(|e| e.to_string()),
        Some(_) => {
            let raw: Box<RawValue> = serde_json::from_str(text).map_err(|e| e.to_string())?;
            from_raw(&raw)
        }
        None => Err("empty input is not JSON".into()),
    }
}

/// Convert one raw JSON value to a CEL value.
fn from_raw(raw: &RawValue) -> Result<Box<dyn Val + 'static>, String> {
    let text = raw.get();
    let err = |e: serde_json::Error| e.to_string();
    Ok(match text.as_bytes().first() {
        Some(b'{') => parse(text)?,
        Some(b'[') => {
            let items: Vec<Box<RawValue>> = serde_json::from_str(text).map_err(err)?;
            let vals = items
                .iter()
                .map(|r| from_raw(r))
                .collect::<Result<Vec<_>, _>>()?;
            Box::new(CelList::from(vals))
        }
        Some(b'"') => Box::new(CelString::from(
            serde_json::from_str::<String>(text).map_err(err)?,
        )),
        Some(b't') => Box::new(CelBool::from(true)),
        Some(b'f') => Box::new(CelBool::from(false)),
        Some(b'n') => Box::new(CelNull),
        _ => {
            let n: serde_json::Number = serde_json::from_str(text).map_err(err)?;
            if let Some(i) = n.as_i64() {
                Box::new(CelInt::from(i))
            } else if let Some(u) = n.as_u64() {
                Box::new(CelUInt::from(u))
            } else {
                Box::new(CelDouble::from(n.as_f64().unwrap_or(f64::NAN)))
            }
        }
    })
}

/// `toJson(value)`: compact JSON text. A [`JsonObject`]'s members are written
/// back as they were read; plain CEL maps (whose order is unknown) are
/// written with sorted keys so the output is at least deterministic.
pub fn to_json(v: &dyn Val) -> Result<String, String> {
    let mut out = String::new();
    write(v, &mut out)?;
    Ok(out)
}

fn write_str(s: &str, out: &mut String) {
    // Serializing a &str to JSON cannot fail.
    out.push_str(&serde_json::to_string(s).unwrap_or_default());
}

fn write(v: &dyn Val, out: &mut String) -> Result<(), String> {
    if let Some(o) = v.downcast_ref::<JsonObject>() {
        out.reserve(
            2 + o
                .entries()
                .iter()
                .map(|(k, r)| k.inner().len() + r.get().len() + 4)
                .sum::<usize>(),
        );
        out.push('{');
        for (i, (k, raw)) in o.entries().iter().enumerate() {
            if i > 0 {
                out.push(',');
            }
            write_str(k.inner(), out);
            out.push(':');
            out.push_str(raw.get());
        }
        out.push('}');
    } else if let Some(s) = v.downcast_ref::<CelString>() {
        write_str(s.inner(), out);
    } else if let Some(b) = v.downcast_ref::<CelBool>() {
        out.push_str(if *b.inner() { "true" } else { "false" });
    } else if let Some(i) = v.downcast_ref::<CelInt>() {
        let _ = write!(out, "{}", i.inner());
    } else if let Some(u) = v.downcast_ref::<CelUInt>() {
        let _ = write!(out, "{}", u.inner());
    } else if let Some(d) = v.downcast_ref::<CelDouble>() {
        let f = *d.inner();
        if !f.is_finite() {
            return Err(format!("cannot represent {f} in JSON"));
        }
        out.push_str(&serde_json::to_string(&f).map_err(|e| e.to_string())?);
    } else if v.downcast_ref::<CelNull>().is_some() {
        out.push_str("null");
    } else if let Some(m) = v.downcast_ref::<CelMap>() {
        let mut entries: Vec<(String, &dyn Val)> = m
            .inner()
            .iter()
            .map(|(k, v)| key_text(k.inner()).map(|k| (k, &**v)))
            .collect::<Result<_, _>>()?;
        entries.sort_by(|a, b| a.0.cmp(&b.0));
        out.push('{');
        for (i, (k, v)) in entries.into_iter().enumerate() {
            if i > 0 {
                out.push(',');
            }
            write_str(&k, out);
            out.push(':');
            write(v, out)?;
        }
        out.push('}');
    } else if v.get_type() == &types::LIST_TYPE {
        let it = v
            .as_iterable()
            .ok_or_else(|| "list is not iterable".to_string())?;
        let mut items = it.iter();
        out.push('[');
        let mut first = true;
        while let Some(item) = items.next() {
            if !first {
                out.push(',');
            }
            first = false;
            write(item, out)?;
        }
        out.push(']');
    } else if v.downcast_ref::<CelBytes>().is_some() {
        return Err("cannot convert bytes to JSON (decode them to a string first)".into());
    } else {
        return Err(format!(
            "cannot convert a value of type {} to JSON",
            v.get_type().name()
        ));
    }
    Ok(())
}

/// A map key as JSON object member name.
fn key_text(k: &dyn Val) -> Result<String, String> {
    if let Some(s) = k.downcast_ref::<CelString>() {
        Ok(s.inner().to_owned())
    } else {
        to_json(k)
    }
}

impl Val for JsonObject {
    fn get_type(&self) -> &Type {
        &types::MAP_TYPE
    }
    fn cel_type() -> &'static Type {
        &types::MAP_TYPE
    }
    fn as_container(&self) -> Option<&dyn Container> {
        Some(self)
    }
    fn as_indexer<'b, 'v>(&'b self) -> Option<&'b (dyn Indexer + 'v)>
    where
        Self: 'v,
    {
        Some(self)
    }
    fn into_indexer<'v>(self: Box<Self>) -> Option<Box<dyn Indexer + 'v>>
    where
        Self: 'v,
    {
        Some(self)
    }
    fn as_iterable<'b, 'v>(&'b self) -> Option<&'b (dyn Iterable + 'v)>
    where
        Self: 'v,
    {
        Some(self)
    }
    fn as_sizer(&self) -> Option<&dyn Sizer> {
        Some(self)
    }
    fn equals(&self, other: &dyn Val) -> bool {
        other.downcast_ref::<JsonObject>().is_some_and(|o| {
            o.0.len() == self.0.len()
                && self
                    .0
                    .iter()
                    .all(|(k, v)| o.find(k.inner()).is_some_and(|ov| ov.get() == v.get()))
        })
    }
    fn clone_as_boxed<'v>(&self) -> Box<dyn Val + 'v>
    where
        Self: 'v,
    {
        Box::new(self.clone())
    }
    fn as_any(&self) -> Option<&dyn Any> {
        Some(self)
    }
}

impl StaticVal for JsonObject {}

impl Indexer for JsonObject {
    fn get<'b, 'v>(&'b self, idx: &dyn Val) -> Result<CowVal<'b, 'v>, ExecutionError>
    where
        Self: 'v,
    {
        let key =
            idx.downcast_ref::<CelString>()
                .ok_or_else(|| ExecutionError::UnexpectedType {
                    got: idx.get_type().name().to_owned(),
                    want: "string".to_owned(),
                })?;
        let raw = self
            .find(key.inner())
            .ok_or_else(|| ExecutionError::no_such_key(key.inner()))?;
        let v = from_raw(raw).map_err(|e| ExecutionError::function_error("json", e))?;
        Ok(CowVal::from(v))
    }

    fn steal<'v>(self: Box<Self>, idx: &dyn Val) -> Result<Box<dyn Val + 'v>, ExecutionError>
    where
        Self: 'v,
    {
        self.get(idx).map(CowVal::into_owned)
    }
}

impl Container for JsonObject {
    fn contains(&self, value: &dyn Val) -> Result<bool, ExecutionError> {
        Ok(value
            .downcast_ref::<CelString>()
            .is_some_and(|k| self.find(k.inner()).is_some()))
    }
}

impl Sizer for JsonObject {
    fn size(&self) -> CelInt {
        CelInt::from(self.0.len() as i64)
    }
}

impl Iterable for JsonObject {
    fn iter<'b, 'v>(&'b self) -> Box<dyn CelIterator<'b, 'v> + 'b>
    where
        Self: 'v,
    {
        Box::new(Keys {
            entries: &self.0,
            next: 0,
        })
    }
}

/// Iterates a [`JsonObject`]'s keys in document order.
struct Keys<'b> {
    entries: &'b [Entry],
    next: usize,
}

impl<'b, 'v> CelIterator<'b, 'v> for Keys<'b> {
    fn next(&mut self) -> Option<&'b (dyn Val + 'v)> {
        let (k, _) = self.entries.get(self.next)?;
        self.next += 1;
        Some(k as &dyn Val)
    }
}

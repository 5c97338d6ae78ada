//! Typed helpers for reading a plugin's JSON config by hand, with errors
//! that name the key path (`inputValidation.blockPatterns[2].regex`): the
//! message is what the operator sees at startup, next to the file and line
//! the host adds.
//!
//! ```
//! use sluice_sdk::config::{self, Path};
//! let v = serde_json::json!({"limits": {"maxBody": "1MB", "every": "30s"}});
//! let root = Path::root("myPolicy");
//! let m = config::object(&v, &root).unwrap();
//! let limits = root.key("limits");
//! let l = config::object(&m["limits"], &limits).unwrap();
//! config::only_keys(l, &limits, &["maxBody", "every"]).unwrap();
//! assert_eq!(config::size(&l["maxBody"], &limits.key("maxBody")).unwrap(), 1_000_000);
//! let err = config::only_keys(l, &limits, &["maxBody"]).unwrap_err();
//! assert_eq!(err.to_string(), "unknown key `myPolicy.limits.every` (expected one of: maxBody)");
//! ```

use std::fmt;
use std::time::Duration;

use serde_json::{Map, Value};

/// A key path inside a plugin's config, e.g. `outputFilter.maskPatterns[2]`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Path(String);

impl Path {
    /// The top key (the YAML key the plugin answers to), or `""`.
    pub fn root(name: &str) -> Path {
        Path(name.to_owned())
    }
    /// `self.key`.
    pub fn key(&self, key: &str) -> Path {
        if self.0.is_empty() {
            Path(key.to_owned())
        } else {
            Path(format!("{}.{key}", self.0))
        }
    }
    /// `self[i]`.
    pub fn index(&self, i: usize) -> Path {
        Path(format!("{}[{i}]", self.0))
    }
    pub fn as_str(&self) -> &str {
        &self.0
    }
    /// An error at this path.
    pub fn error(&self, message: impl Into<String>) -> ConfigError {
        ConfigError {
            path: self.clone(),
            message: message.into(),
        }
    }
}

impl From<&str> for Path {
    fn from(s: &str) -> Path {
        Path(s.to_owned())
    }
}

impl From<&String> for Path {
    fn from(s: &String) -> Path {
        Path(s.clone())
    }
}

impl From<String> for Path {
    fn from(s: String) -> Path {
        Path(s)
    }
}

impl From<&Path> for Path {
    fn from(p: &Path) -> Path {
        p.clone()
    }
}

impl fmt::Display for Path {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

/// A config error: where, and what is wrong.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{}", render(.path, .message))]
pub struct ConfigError {
    pub path: Path,
    pub message: String,
}

fn render(path: &Path, message: &str) -> String {
    if message.starts_with("unknown key") {
        message.to_owned()
    } else {
        format!("`{path}`: {message}")
    }
}

impl From<ConfigError> for String {
    fn from(e: ConfigError) -> String {
        e.to_string()
    }
}

pub type Result<T> = std::result::Result<T, ConfigError>;

/// How a value reads in an error: "a string", "a list", ...
pub fn kind(v: &Value) -> &'static str {
    match v {
        Value::Null => "nothing",
        Value::Bool(_) => "a boolean",
        Value::Number(_) => "a number",
        Value::String(_) => "a string",
        Value::Array(_) => "a list",
        Value::Object(_) => "a mapping",
    }
}

/// A mapping.
pub fn object(v: &Value, at: impl Into<Path>) -> Result<&Map<String, Value>> {
    let at = &at.into();
    v.as_object()
        .ok_or_else(|| at.error(format!("must be a mapping, got {}", kind(v))))
}

/// A mapping, or nothing (`null` reads as an empty mapping).
pub fn object_or_empty(v: &Value, at: impl Into<Path>) -> Result<Option<&Map<String, Value>>> {
    let at = &at.into();
    match v {
        Value::Null => Ok(None),
        v => object(v, at).map(Some),
    }
}

/// A list (`null` reads as an empty list), with each item's path.
pub fn list(v: &Value, at: impl Into<Path>) -> Result<Vec<(Path, &Value)>> {
    let at = &at.into();
    match v {
        Value::Array(a) => Ok(a
            .iter()
            .enumerate()
            .map(|(i, x)| (at.index(i), x))
            .collect()),
        Value::Null => Ok(Vec::new()),
        other => Err(at.error(format!("must be a list, got {}", kind(other)))),
    }
}

/// A string.
pub fn string(v: &Value, at: impl Into<Path>) -> Result<&str> {
    let at = &at.into();
    v.as_str()
        .ok_or_else(|| at.error(format!("must be a string, got {}", kind(v))))
}

/// A boolean.
pub fn boolean(v: &Value, at: impl Into<Path>) -> Result<bool> {
    let at = &at.into();
    v.as_bool()
        .ok_or_else(|| at.error(format!("must be true or false, got {}", kind(v))))
}

/// Refuse keys outside `allowed`.
pub fn only_keys(m: &Map<String, Value>, at: impl Into<Path>, allowed: &[&str]) -> Result<()> {
    let at = &at.into();
    match m.keys().find(|k| !allowed.contains(&k.as_str())) {
        Some(k) => Err(at.key(k).error(format!(
            "unknown key `{}` (expected one of: {})",
            at.key(k),
            allowed.join(", ")
        ))),
        None => Ok(()),
    }
}

/// An HTTP status code in `range` (a number or a numeric string).
pub fn status(v: &Value, at: impl Into<Path>, range: std::ops::RangeInclusive<u16>) -> Result<u16> {
    let at = &at.into();
    let code = v
        .as_u64()
        .or_else(|| v.as_str().and_then(|s| s.trim().parse().ok()))
        .and_then(|c| u16::try_from(c).ok())
        .ok_or_else(|| at.error("must be an HTTP status code"))?;
    if !range.contains(&code) {
        return Err(at.error(format!(
            "must be a status from {} to {}, got {code}",
            range.start(),
            range.end()
        )));
    }
    Ok(code)
}

/// A byte size: a whole number of bytes, or a string in the
/// [`crate::units`] grammar (`1MB` = 1,000,000 bytes, `1MiB` = 1,048,576).
pub fn size(v: &Value, at: impl Into<Path>) -> Result<u64> {
    let at = &at.into();
    match v {
        Value::Number(n) => n
            .as_u64()
            .ok_or_else(|| at.error(format!("expected a whole number of bytes, got {n}"))),
        Value::String(s) => crate::units::parse_size(s).map_err(|e| at.error(e.to_string())),
        other => Err(at.error(format!("expected a size such as 1MB, got {}", kind(other)))),
    }
}

/// A duration: a string in the [`crate::units`] grammar (`30s`, `5m`), or,
/// when `seconds_number` is set, a plain YAML number of seconds.
pub fn duration(v: &Value, at: impl Into<Path>, seconds_number: bool) -> Result<Duration> {
    let at = &at.into();
    match v {
        Value::Number(n) if seconds_number => n
            .as_u64()
            .map(Duration::from_secs)
            .ok_or_else(|| at.error(format!("expected a whole number of seconds, got {n}"))),
        Value::String(s) => crate::units::parse_duration(s).map_err(|e| at.error(e.to_string())),
        other => Err(at.error(format!(
            "expected a duration such as 30s, got {}",
            kind(other)
        ))),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn errors_name_the_path() {
        let p = Path::root("outputFilter").key("maskPatterns").index(2);
        assert_eq!(p.as_str(), "outputFilter.maskPatterns[2]");
        assert_eq!(
            object(&json!(3), &p).unwrap_err().to_string(),
            "`outputFilter.maskPatterns[2]`: must be a mapping, got a number"
        );
        assert_eq!(
            list(&json!("x"), Path::root("a")).unwrap_err().to_string(),
            "`a`: must be a list, got a string"
        );
        let m = json!({"x": 1, "y": 2});
        let e = only_keys(m.as_object().unwrap(), Path::root("p"), &["x"]).unwrap_err();
        assert_eq!(e.to_string(), "unknown key `p.y` (expected one of: x)");
        assert_eq!(e.path.as_str(), "p.y");
        assert_eq!(Path::root("").key("k").as_str(), "k");
    }

    #[test]
    fn typed_values() {
        let at = Path::root("k");
        assert_eq!(size(&json!("1MB"), &at), Ok(1_000_000));
        assert_eq!(size(&json!("1MiB"), &at), Ok(1_048_576));
        assert_eq!(size(&json!(42), &at), Ok(42));
        assert!(size(&json!(-1), &at).is_err());
        assert!(size(&json!("1XB"), &at)
            .unwrap_err()
            .to_string()
            .starts_with("`k`: "));
        assert_eq!(
            duration(&json!("1h30m"), &at, false),
            Ok(Duration::from_secs(5400))
        );
        assert_eq!(duration(&json!(30), &at, true), Ok(Duration::from_secs(30)));
        assert!(duration(&json!(30), &at, false).is_err());
        assert_eq!(status(&json!("403"), &at, 400..=599), Ok(403));
        assert!(status(&json!(200), &at, 400..=599).is_err());
        assert_eq!(list(&Value::Null, &at).unwrap().len(), 0);
        assert_eq!(string(&json!("s"), &at), Ok("s"));
        assert!(boolean(&json!("yes"), &at).is_err());
    }
}

//! Diagnostics: where a problem is (`Location`), what it is (`ConfigError`,
//! `ConfigWarning`) and the collector every decoding stage pushes into, so
//! `sluice validate` can print every problem at once instead of the first.

use std::fmt;
use std::sync::Arc;

/// A position in a config file. `line`/`column` are 1-based; `line == 0`
/// means "the file as a whole" (e.g. it could not be read).
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
pub struct Location {
    pub file: Arc<str>,
    pub line: usize,
    pub column: usize,
}

impl Location {
    pub fn new(file: Arc<str>, line: usize, column: usize) -> Self {
        Location { file, line, column }
    }

    /// The whole file, no particular position.
    pub fn file(file: Arc<str>) -> Self {
        Location {
            file,
            line: 0,
            column: 0,
        }
    }
}

impl fmt::Display for Location {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        if self.line == 0 {
            write!(f, "{}", self.file)
        } else {
            write!(f, "{}:{}:{}", self.file, self.line, self.column)
        }
    }
}

/// Serialized as the `file:line:col` string.
impl serde::Serialize for Location {
    fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.collect_str(self)
    }
}

fn path_prefix(key_path: &str) -> String {
    if key_path.is_empty() {
        String::new()
    } else {
        format!("{key_path}: ")
    }
}

/// One problem in the configuration. Messages never contain secret values.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
#[error("{location}: {}{message}", path_prefix(.key_path))]
pub struct ConfigError {
    pub location: Location,
    /// e.g. `routes[0].policies.rateLimit`; empty for file-level problems.
    pub key_path: String,
    pub message: String,
}

/// Every problem found while loading; `Display` prints one per line.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
pub struct ConfigErrors(pub Vec<ConfigError>);

impl fmt::Display for ConfigErrors {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        for (i, e) in self.0.iter().enumerate() {
            if i > 0 {
                writeln!(f)?;
            }
            write!(f, "{e}")?;
        }
        Ok(())
    }
}

/// Something suspicious that still loads (e.g. a duplicate mapping key).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ConfigWarning {
    pub location: Location,
    pub key_path: String,
    pub message: String,
}

impl fmt::Display for ConfigWarning {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "{}: {}{}",
            self.location,
            path_prefix(&self.key_path),
            self.message
        )
    }
}

/// Collector shared by all loading stages.
#[derive(Default, Debug)]
pub(crate) struct Diags {
    pub errors: Vec<ConfigError>,
    pub warnings: Vec<ConfigWarning>,
}

impl Diags {
    pub fn error(&mut self, location: &Location, key_path: &str, message: impl Into<String>) {
        self.errors.push(ConfigError {
            location: location.clone(),
            key_path: key_path.to_string(),
            message: message.into(),
        });
    }

    pub fn warn(&mut self, location: &Location, key_path: &str, message: impl Into<String>) {
        let w = ConfigWarning {
            location: location.clone(),
            key_path: key_path.to_string(),
            message: message.into(),
        };
        tracing::warn!(target: "sluice::config", "{w}");
        self.warnings.push(w);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn display_formats() {
        let loc = Location::new("a.yaml".into(), 3, 5);
        let e = ConfigError {
            location: loc.clone(),
            key_path: "routes[0].policies".into(),
            message: "boom".into(),
        };
        assert_eq!(e.to_string(), "a.yaml:3:5: routes[0].policies: boom");
        let e2 = ConfigError {
            location: Location::file("b.yaml".into()),
            key_path: String::new(),
            message: "cannot read".into(),
        };
        assert_eq!(e2.to_string(), "b.yaml: cannot read");
        let all = ConfigErrors(vec![e, e2]);
        assert_eq!(all.to_string().lines().count(), 2);
    }
}

//! Fields a translation cannot carry: refused or dropped, as the route says.

use crate::config::UnsupportedFields;

/// A request that cannot be translated; the client gets a 400 naming why.
#[derive(Debug, thiserror::Error)]
pub enum TranslateError {
    #[error(
        "`{0}` has no equivalent in the backend's API format; the route refuses it \
         (`ai.translation.unsupportedFields: drop` drops such fields instead)"
    )]
    Unsupported(String),
    #[error("{0}")]
    Invalid(String),
}

/// The route's rule for untranslatable fields, and what it dropped so far.
#[derive(Debug)]
pub struct Fields {
    mode: UnsupportedFields,
    dropped: Vec<String>,
}

impl Fields {
    pub fn new(mode: UnsupportedFields) -> Self {
        Fields {
            mode,
            dropped: Vec::new(),
        }
    }

    /// `name` cannot be carried: an error when refused, else noted.
    pub fn unsupported(&mut self, name: impl Into<String>) -> Result<(), TranslateError> {
        let name = name.into();
        match self.mode {
            UnsupportedFields::Reject => Err(TranslateError::Unsupported(name)),
            UnsupportedFields::Drop => {
                if !self.dropped.contains(&name) {
                    tracing::debug!(field = %name, "translation dropped a field");
                    self.dropped.push(name);
                }
                Ok(())
            }
        }
    }

    pub fn into_dropped(self) -> Vec<String> {
        self.dropped
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn refuses_by_default_and_names_each_dropped_field_once() {
        let mut f = Fields::new(UnsupportedFields::default());
        let e = f.unsupported("top_k").unwrap_err();
        assert!(e.to_string().contains("`top_k`"), "{e}");
        let mut f = Fields::new(UnsupportedFields::Drop);
        f.unsupported("top_k").unwrap();
        f.unsupported("top_k").unwrap();
        f.unsupported("service_tier").unwrap();
        assert_eq!(f.into_dropped(), ["top_k", "service_tier"]);
    }
}

//! Body edits shared by providers: the backend's model override.
//!
//! Why here and not in a plugin: which model a backend serves is routing
//! (the config's `provider.<name>.model`), decided before any upstream is
//! chosen, and the same for every provider whose body names the model.

use super::{Outgoing, ProviderError};
use bytes::Bytes;
use serde_json::Value;

/// Put `out.model` into the body's top-level `model` when it differs from
/// what the client sent. Key order and every other member are kept.
pub fn put_model(out: &mut Outgoing) -> Result<(), ProviderError> {
    let (Some(model), Some(body)) = (out.model.as_deref(), out.body.as_ref()) else {
        return Ok(());
    };
    if let Some(b) = with_model(body, model)? {
        out.body = Some(b);
    }
    Ok(())
}

/// `body` with its top-level `model` set to `model`; `None` when it already
/// is, or the body is not a JSON object (nothing to rewrite).
pub fn with_model(body: &[u8], model: &str) -> Result<Option<Bytes>, ProviderError> {
    let Ok(mut v) = serde_json::from_slice::<Value>(body) else {
        return Ok(None);
    };
    let Some(obj) = v.as_object_mut() else {
        return Ok(None);
    };
    if obj.get("model").and_then(Value::as_str) == Some(model) {
        return Ok(None);
    }
    obj.insert("model".into(), Value::String(model.to_string()));
    serde_json::to_vec(&v)
        .map(|b| Some(Bytes::from(b)))
        .map_err(|e| ProviderError::Internal(format!("re-encoding the body: {e}")))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::config::AiKind;

    fn out(body: &str, model: Option<&str>) -> Outgoing {
        Outgoing {
            kind: AiKind::Messages,
            path: "/v1/messages".into(),
            query: None,
            headers: Default::default(),
            body: Some(Bytes::from(body.to_string())),
            model: model.map(str::to_string),
            stream: false,
        }
    }

    #[test]
    fn the_override_replaces_the_clients_model_and_keeps_the_rest() {
        let mut o = out(
            r#"{"max_tokens":5,"model":"claude-x","messages":[]}"#,
            Some("m2"),
        );
        put_model(&mut o).unwrap();
        assert_eq!(
            o.body.unwrap(),
            r#"{"max_tokens":5,"model":"m2","messages":[]}"#
        );
        let mut o = out(r#"{"messages":[]}"#, Some("m2"));
        put_model(&mut o).unwrap();
        assert_eq!(o.body.unwrap(), r#"{"messages":[],"model":"m2"}"#);
    }

    #[test]
    fn no_override_or_same_model_keeps_every_byte() {
        let raw = r#"{ "model" : "m",  "x":1}"#;
        let mut o = out(raw, Some("m"));
        put_model(&mut o).unwrap();
        assert_eq!(o.body.unwrap(), raw);
        let mut o = out(raw, None);
        put_model(&mut o).unwrap();
        assert_eq!(o.body.unwrap(), raw);
    }
}

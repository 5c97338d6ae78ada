//! Per-key `/v1/models`: a key with `allowedModels` sees only the models it
//! may call. The `api-key` plugin lets a listing through and leaves the
//! key's patterns in `apiKey.allowedModels`; the host filters whichever
//! list answers (from the config or from the upstream) by them.

use std::collections::HashMap;

use bytes::Bytes;
use serde_json::Value;

/// agentgateway's model pattern (`*` matches any run of characters), the
/// one `ai.modelAliases` uses.
use crate::config::wildcard_match;

/// The attribute the `api-key` plugin publishes a restricted key's
/// patterns in (a JSON list).
pub const ALLOWED_ATTR: &str = "apiKey.allowedModels";

/// The request's model patterns: `None` when unrestricted. An attribute
/// that is not a list of strings restricts to nothing (fail closed).
pub fn patterns(attrs: &HashMap<String, String>) -> Option<Vec<String>> {
    let raw = attrs.get(ALLOWED_ATTR)?;
    serde_json::from_str::<Option<Vec<String>>>(raw).unwrap_or(Some(Vec::new()))
}

/// `body` (an OpenAI or Anthropic model listing) with only the `data`
/// entries whose `id` a pattern allows; Anthropic's `first_id`/`last_id`
/// follow. `None` when the body is not a listing (the caller refuses it
/// rather than pass an unfiltered list).
pub fn filter_listing(body: &[u8], patterns: &[String]) -> Option<Bytes> {
    let mut v: Value = serde_json::from_slice(body).ok()?;
    let data = v.get_mut("data")?.as_array_mut()?;
    data.retain(|m| {
        m.get("id")
            .and_then(Value::as_str)
            .is_some_and(|id| patterns.iter().any(|p| wildcard_match(p, id)))
    });
    let first = data.first().and_then(|m| m.get("id")).cloned();
    let last = data.last().and_then(|m| m.get("id")).cloned();
    let o = v.as_object_mut()?;
    if o.contains_key("first_id") {
        o.insert("first_id".into(), first.unwrap_or(Value::Null));
    }
    if o.contains_key("last_id") {
        o.insert("last_id".into(), last.unwrap_or(Value::Null));
    }
    serde_json::to_vec(&v).ok().map(Bytes::from)
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn patterns_from_the_attribute() {
        let mut a = HashMap::new();
        assert_eq!(patterns(&a), None);
        a.insert(ALLOWED_ATTR.to_string(), r#"["gpt-*"]"#.to_string());
        assert_eq!(patterns(&a), Some(vec!["gpt-*".to_string()]));
        a.insert(ALLOWED_ATTR.to_string(), "garbage".to_string());
        assert_eq!(patterns(&a), Some(vec![]));
        a.insert(ALLOWED_ATTR.to_string(), "null".to_string());
        assert_eq!(patterns(&a), None);
    }

    #[test]
    fn listings_are_filtered() {
        let p = vec!["claude-sonnet-*".to_string(), "gpt-5".to_string()];
        let anthropic = json!({"data": [{"id": "claude-opus-4-1"}, {"id": "claude-sonnet-4-5"},
            {"id": "gpt-5"}], "has_more": false, "first_id": "claude-opus-4-1", "last_id": "gpt-5"});
        let out: Value =
            serde_json::from_slice(&filter_listing(anthropic.to_string().as_bytes(), &p).unwrap())
                .unwrap();
        assert_eq!(
            out,
            json!({"data": [{"id": "claude-sonnet-4-5"}, {"id": "gpt-5"}], "has_more": false,
                "first_id": "claude-sonnet-4-5", "last_id": "gpt-5"})
        );
        let openai = json!({"object": "list", "data": [{"id": "gpt-4o"}, {"no": "id"}]});
        let out: Value =
            serde_json::from_slice(&filter_listing(openai.to_string().as_bytes(), &p).unwrap())
                .unwrap();
        assert_eq!(out, json!({"object": "list", "data": []}));
        assert!(filter_listing(b"[1]", &p).is_none());
        assert!(filter_listing(b"{\"data\": 1}", &p).is_none());
        assert!(
            wildcard_match("a*b*c", "aXbYc")
                && !wildcard_match("a*b", "ab-")
                && wildcard_match("*", "")
        );
    }
}

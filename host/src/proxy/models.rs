//! `/v1/models` answered from the config, for a route whose backends cannot
//! list models themselves (Bedrock, Vertex and Azure have no listing in the
//! client's format): the models the route serves (each backend's `model`)
//! and the alias names clients may ask for, in the client's own format.
//!
//! Why after the request policies: a listing says what a client may call,
//! so it is answered only once the route's auth and other request policies
//! have let the request through, exactly where an upstream would be called.

use super::snapshot::RouteEntry;
use bytes::Bytes;
use serde_json::{json, Value};

/// The model names `route` serves, in config order, without repeats.
pub fn names(route: &RouteEntry) -> Vec<String> {
    let mut out: Vec<String> = Vec::new();
    let backends = route.backends.all().filter_map(|c| c.target.model.clone());
    for n in backends.chain(route.aliases.names().map(str::to_string)) {
        if !out.contains(&n) {
            out.push(n);
        }
    }
    out
}

/// The listing body: Anthropic's shape for a client that sent
/// `anthropic-version`, OpenAI's otherwise.
pub fn listing(names: &[String], anthropic: bool) -> Bytes {
    let v: Value = if anthropic {
        let data: Vec<Value> = names
            .iter()
            .map(|n| json!({"type": "model", "id": n, "display_name": n, "created_at": "1970-01-01T00:00:00Z"}))
            .collect();
        json!({
            "data": data,
            "has_more": false,
            "first_id": names.first(),
            "last_id": names.last(),
        })
    } else {
        let data: Vec<Value> = names
            .iter()
            .map(|n| json!({"id": n, "object": "model", "created": 0, "owned_by": "sluice"}))
            .collect();
        json!({"object": "list", "data": data})
    };
    Bytes::from(serde_json::to_vec(&v).unwrap_or_default())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn both_shapes() {
        let names = vec!["a".to_string(), "b".to_string()];
        let v: Value = serde_json::from_slice(&listing(&names, true)).unwrap();
        assert_eq!(v["data"][1]["id"], "b");
        assert_eq!(v["data"][0]["type"], "model");
        assert_eq!(
            (v["first_id"].as_str(), v["last_id"].as_str()),
            (Some("a"), Some("b"))
        );
        let v: Value = serde_json::from_slice(&listing(&names, false)).unwrap();
        assert_eq!(v["object"], "list");
        assert_eq!(v["data"][0]["object"], "model");
        let v: Value = serde_json::from_slice(&listing(&[], true)).unwrap();
        assert_eq!(v["data"], json!([]));
    }
}

//! Server-Sent Event helpers: the host frames events, these read and rebuild them.

use serde_json::Value;

use crate::SseEvent;

/// Convenience methods on [`SseEvent`].
pub trait SseEventExt {
    /// `data` parsed as JSON, if it is JSON.
    fn json(&self) -> Option<Value>;
    /// The event name, falling back to the JSON `type` field of `data`.
    fn kind(&self) -> Option<String>;
    /// Replace `data` with serialized JSON.
    fn with_json(self, data: &Value) -> SseEvent;
}

impl SseEventExt for SseEvent {
    fn json(&self) -> Option<Value> {
        serde_json::from_str(&self.data).ok()
    }
    fn kind(&self) -> Option<String> {
        self.event.clone().or_else(|| {
            self.json()
                .and_then(|v| v.get("type").and_then(Value::as_str).map(str::to_owned))
        })
    }
    fn with_json(mut self, data: &Value) -> SseEvent {
        self.data = data.to_string();
        self
    }
}

/// Build an event with an optional `event:` name and JSON data.
pub fn event(name: Option<&str>, data: &Value) -> SseEvent {
    SseEvent {
        event: name.map(str::to_owned),
        data: data.to_string(),
        id: None,
    }
}

/// The OpenAI stream terminator `data: [DONE]`.
pub fn is_done(ev: &SseEvent) -> bool {
    ev.data.trim() == "[DONE]"
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn kind_from_data() {
        let ev = event(None, &serde_json::json!({"type": "message_stop"}));
        assert_eq!(ev.kind().as_deref(), Some("message_stop"));
        assert!(!is_done(&ev));
    }
}

//! `get-attr`/`set-attr`: the request's attribute map, moved into the store
//! for one hook call (empty in `validate`/`init`). Size-capped.

use super::HostState;

const MAX_ATTRS: usize = 256;
const MAX_VALUE: usize = 64 * 1024;

pub fn get(s: &HostState, key: &str) -> Option<String> {
    s.call.attrs.get(key).cloned()
}

pub fn set(s: &mut HostState, key: String, value: String) {
    if value.len() > MAX_VALUE {
        tracing::warn!(
            plugin = &*s.plugin,
            key,
            "attribute value too large; ignored"
        );
        return;
    }
    if s.call.attrs.len() >= MAX_ATTRS && !s.call.attrs.contains_key(&key) {
        tracing::warn!(plugin = &*s.plugin, key, "too many attributes; ignored");
        return;
    }
    s.call.attrs.insert(key, value);
}

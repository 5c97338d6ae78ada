//! Top-level `plugins:` declarations (Wasm components and their limits).
//!
//! Exists separately because declarations from *every* file must be known
//! before any route is decoded: a policy key may name a plugin declared in
//! another `--config` file.

use std::collections::HashSet;

use super::decode::{
    as_list, as_map, check_keys, duration, file_path, get, nonempty, one_of, string, Ctx,
};
use super::policies::{reserved_policy_keys, BUNDLED_PLUGINS};
use super::tree::{join_index, join_key, Node};
use super::types::{FailureMode, PluginDecl};
use super::units::parse_size;

const DECL_KEYS: &[&str] = &[
    "name",
    "path",
    "config",
    "memoryLimit",
    "deadline",
    "failureMode",
    "fetchHosts",
];

/// Decode one file's `plugins:` list. `seen` holds names declared so far
/// (across files) to report duplicates.
pub(crate) fn decode_plugin_decls(
    ctx: &mut Ctx,
    node: &Node,
    seen: &mut HashSet<String>,
) -> Vec<PluginDecl> {
    let mut out = Vec::new();
    let Some(items) = as_list(ctx.d, node, "plugins") else {
        return out;
    };
    for (i, item) in items.iter().enumerate() {
        let p = join_index("plugins", i);
        if let Some(decl) = decode_decl(ctx, item, &p, seen) {
            out.push(decl);
        }
    }
    out
}

fn valid_name(s: &str) -> bool {
    !s.is_empty()
        && s.bytes()
            .all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_')
}

fn decode_decl(
    ctx: &mut Ctx,
    node: &Node,
    path: &str,
    seen: &mut HashSet<String>,
) -> Option<PluginDecl> {
    let m = as_map(ctx.d, node, path)?;
    check_keys(ctx.d, m, path, DECL_KEYS);
    let name = match get(m, "name") {
        Some(n) => {
            let np = join_key(path, "name");
            let s = nonempty(ctx.d, n, &np)?;
            if !valid_name(&s) {
                ctx.d.error(
                    &n.loc,
                    &np,
                    format!(
                        "invalid plugin name {}: use letters, digits, `-` and `_`",
                        n.shown()
                    ),
                );
                return None;
            }
            if reserved_policy_keys().any(|k| k == s) {
                ctx.d.error(
                    &n.loc,
                    &np,
                    format!(
                        "plugin name `{s}` collides with a built-in policy key; pick another name"
                    ),
                );
                return None;
            }
            if !seen.insert(s.clone()) {
                ctx.d
                    .error(&n.loc, &np, format!("plugin `{s}` is declared twice"));
                return None;
            }
            Some(s)
        }
        None => {
            ctx.d.error(&node.loc, path, "missing required key `name`");
            None
        }
    };
    let plugin_path = match get(m, "path") {
        Some(n) => file_path(ctx, n, &join_key(path, "path")),
        None => {
            let bundled = name
                .as_deref()
                .is_some_and(|n| BUNDLED_PLUGINS.contains(&n));
            let why = if bundled {
                " (even when overriding a bundled plugin)"
            } else {
                ""
            };
            ctx.d.error(
                &node.loc,
                path,
                format!("missing required key `path` (the plugin's .wasm file){why}"),
            );
            None
        }
    };
    let mut secret_pointers = Vec::new();
    let config = get(m, "config")
        .map(|n| n.to_json("", &mut secret_pointers))
        .unwrap_or(serde_json::Value::Null);
    let mut ok = true;
    let memory_limit = match get(m, "memoryLimit") {
        Some(n) => {
            let p = join_key(path, "memoryLimit");
            string(ctx.d, n, &p).and_then(|s| match parse_size(&s) {
                Ok(v) => Some(v),
                Err(e) => {
                    ctx.d.error(&n.loc, &p, e);
                    ok = false;
                    None
                }
            })
        }
        None => None,
    };
    let deadline = match get(m, "deadline") {
        Some(n) => {
            let d = duration(ctx.d, n, &join_key(path, "deadline"));
            ok &= d.is_some();
            d
        }
        None => None,
    };
    let failure_mode = match get(m, "failureMode") {
        Some(n) => one_of(
            ctx.d,
            n,
            &join_key(path, "failureMode"),
            &[("closed", FailureMode::Closed), ("open", FailureMode::Open)],
        )?,
        None => FailureMode::Closed,
    };
    let fetch_hosts = decode_fetch_hosts(ctx, m, path, &mut ok);
    if !ok {
        return None;
    }
    Some(PluginDecl {
        name: name?,
        path: plugin_path?,
        config,
        memory_limit,
        deadline,
        failure_mode,
        fetch_hosts,
        location: node.loc.clone(),
        secret_pointers,
    })
}

/// `fetchHosts: [api.example.com, "127.0.0.1:9000"]`: `host` or `host:port`.
fn decode_fetch_hosts(
    ctx: &mut Ctx,
    m: &[(super::tree::Key, Node)],
    path: &str,
    ok: &mut bool,
) -> Vec<String> {
    let mut out = Vec::new();
    let Some(n) = get(m, "fetchHosts") else {
        return out;
    };
    let p = join_key(path, "fetchHosts");
    let Some(items) = as_list(ctx.d, n, &p) else {
        *ok = false;
        return out;
    };
    for (i, item) in items.iter().enumerate() {
        let ip = join_index(&p, i);
        let Some(h) = nonempty(ctx.d, item, &ip) else {
            *ok = false;
            continue;
        };
        let h = h.trim().to_ascii_lowercase();
        if h.contains("://") || h.contains('/') || h.contains('@') {
            ctx.d.error(
                &item.loc,
                &ip,
                format!(
                    "fetch host {} must be a host or host:port, without scheme or path",
                    item.shown()
                ),
            );
            *ok = false;
            continue;
        }
        out.push(h);
    }
    out
}

//! `policies:` blocks: host-handled policies and plugin attachments.
//!
//! Exists because policies are where the host-owned model ends and
//! plugin-owned config begins: `urlRewrite`, `backendAuth`, `backendTLS`,
//! `timeout`, `ai.routes` and the host overrides are decoded here; keys like
//! `rateLimit` or `transformations` become [`PluginAttachment`]s carrying
//! their subtree verbatim as JSON (never interpreted: `maxRequestBodySize:
//! 1MB` stays the string `"1MB"`).

use indexmap::IndexMap;

use super::decode::{
    as_list, as_map, boolean, check_keys, duration, file_path, get, host_port, nonempty, string,
    url_path, Ctx,
};
use super::error::{Diags, Location};
use super::suggest::hint;
use super::tree::{escape_pointer, join_index, join_key, Key, Kind, Node};
use super::types::*;

/// Plugins shipped with Sluice.
pub const BUNDLED_PLUGINS: &[&str] = &[
    "rate-limit",
    "jwt-auth",
    "input-validation",
    "output-mask",
    "transform",
];

/// Policy keys whose subtree is handed to a bundled plugin.
pub const PLUGIN_KEYS: &[(&str, &str)] = &[
    ("rateLimit", "rate-limit"),
    ("localRateLimit", "rate-limit"),
    ("auth", "jwt-auth"),
    ("jwtAuth", "jwt-auth"),
    ("inputValidation", "input-validation"),
    ("outputFilter", "output-mask"),
    ("requestHeaderModifier", "transform"),
    ("responseHeaderModifier", "transform"),
    ("transformations", "transform"),
];

/// Policy keys the host itself handles.
pub const HOST_KEYS: &[&str] = &[
    "urlRewrite",
    "backendAuth",
    "backendTLS",
    "timeout",
    "ai",
    "hostOverride",
    "pathPrefix",
    "pathOverride",
];

/// Every key name with a fixed meaning inside `policies` (plus `plugins`).
pub fn reserved_policy_keys() -> impl Iterator<Item = &'static str> {
    HOST_KEYS
        .iter()
        .copied()
        .chain(PLUGIN_KEYS.iter().map(|(k, _)| *k))
        .chain(std::iter::once("plugins"))
}

/// `hostOverride` / `pathPrefix` / `pathOverride` read from one mapping.
#[derive(Default, Clone)]
pub(crate) struct HostOverrides {
    pub host_override: Option<(String, Location)>,
    pub path_prefix: Option<(String, Location)>,
    pub path_override: Option<(String, Location)>,
}

impl HostOverrides {
    pub fn read(&mut self, d: &mut Diags, m: &[(Key, Node)], path: &str) {
        for (k, v) in m {
            let p = join_key(path, &k.name);
            match k.name.as_str() {
                "hostOverride" => {
                    self.host_override = host_port(d, v, &p, true).map(|s| (s, k.loc.clone()))
                }
                "pathPrefix" => self.path_prefix = url_path(d, v, &p).map(|s| (s, k.loc.clone())),
                "pathOverride" => {
                    self.path_override = url_path(d, v, &p).map(|s| (s, k.loc.clone()))
                }
                _ => {}
            }
        }
    }

    /// Merge route-level (`self`) with `policies`-level values; giving the
    /// same one in both places is an error.
    pub fn combine(self, d: &mut Diags, other: HostOverrides, path: &str) -> HostOverrides {
        fn pick(
            d: &mut Diags,
            a: Option<(String, Location)>,
            b: Option<(String, Location)>,
            path: &str,
            name: &str,
        ) -> Option<(String, Location)> {
            match (a, b) {
                (Some(a), Some(b)) => {
                    d.error(
                        &b.1,
                        &join_key(&join_key(path, "policies"), name),
                        format!(
                            "`{name}` is given both at route level (line {}) and under `policies`; keep one",
                            a.1.line
                        ),
                    );
                    Some(a)
                }
                (a, b) => a.or(b),
            }
        }
        HostOverrides {
            host_override: pick(
                d,
                self.host_override,
                other.host_override,
                path,
                "hostOverride",
            ),
            path_prefix: pick(d, self.path_prefix, other.path_prefix, path, "pathPrefix"),
            path_override: pick(
                d,
                self.path_override,
                other.path_override,
                path,
                "pathOverride",
            ),
        }
    }

    pub fn first_location(&self) -> Option<Location> {
        [&self.host_override, &self.path_prefix, &self.path_override]
            .into_iter()
            .flatten()
            .map(|(_, l)| l.clone())
            .min_by_key(|l| (l.line, l.column))
    }
}

pub(crate) fn decode_backend_auth(
    d: &mut Diags,
    node: &Node,
    path: &str,
    pass_headers: &mut Vec<String>,
) -> Option<BackendAuth> {
    let m = as_map(d, node, path)?;
    check_keys(d, m, path, &["key", "passthrough", "passHeaders"]);
    if let Some(n) = get(m, "passHeaders") {
        *pass_headers = decode_pass_headers(d, n, &join_key(path, "passHeaders"));
        if get(m, "key").is_none() {
            d.error(
                &n.loc,
                &join_key(path, "passHeaders"),
                "`passHeaders` only applies with `key` (passthrough forwards every header)",
            );
        }
    }
    match (get(m, "key"), get(m, "passthrough")) {
        (Some(k), None) => {
            nonempty(d, k, &join_key(path, "key")).map(|s| BackendAuth::Key(Secret::new(s)))
        }
        (None, Some(p)) => {
            let pp = join_key(path, "passthrough");
            let pm = as_map(d, p, &pp)?;
            check_keys(d, pm, &pp, &[]);
            Some(BackendAuth::Passthrough)
        }
        _ => {
            d.error(
                &node.loc,
                path,
                "expected exactly one of `key: <api key>` or `passthrough: {}`",
            );
            None
        }
    }
}

fn decode_url_rewrite(d: &mut Diags, node: &Node, path: &str) -> Option<UrlRewrite> {
    let m = as_map(d, node, path)?;
    check_keys(d, m, path, &["path", "authority"]);
    let mut out = UrlRewrite::default();
    if let Some(n) = get(m, "path") {
        let p = join_key(path, "path");
        let pm = as_map(d, n, &p)?;
        check_keys(d, pm, &p, &["prefix", "full"]);
        out.path = match (get(pm, "prefix"), get(pm, "full")) {
            (Some(v), None) => Some(PathRewrite::Prefix(url_path(
                d,
                v,
                &join_key(&p, "prefix"),
            )?)),
            (None, Some(v)) => Some(PathRewrite::Full(url_path(d, v, &join_key(&p, "full"))?)),
            _ => {
                d.error(&n.loc, &p, "expected exactly one of `prefix` or `full`");
                return None;
            }
        };
    }
    if let Some(n) = get(m, "authority") {
        let p = join_key(path, "authority");
        out.authority = match &n.kind {
            Kind::Map(am) => {
                check_keys(d, am, &p, &["full"]);
                match get(am, "full") {
                    Some(v) => Some(nonempty(d, v, &join_key(&p, "full"))?),
                    None => {
                        d.error(&n.loc, &p, "missing required key `full`");
                        return None;
                    }
                }
            }
            _ => Some(nonempty(d, n, &p)?),
        };
    }
    Some(out)
}

fn decode_backend_tls(ctx: &mut Ctx, node: &Node, path: &str) -> Option<BackendTls> {
    let m = as_map(ctx.d, node, path)?;
    check_keys(ctx.d, m, path, &["root", "insecure"]);
    let mut out = BackendTls::default();
    if let Some(n) = get(m, "root") {
        out.root = Some(file_path(ctx, n, &join_key(path, "root"))?);
    }
    if let Some(n) = get(m, "insecure") {
        out.insecure = boolean(ctx.d, n, &join_key(path, "insecure"))?;
    }
    Some(out)
}

fn decode_timeouts(d: &mut Diags, node: &Node, path: &str) -> Option<Timeouts> {
    let m = as_map(d, node, path)?;
    check_keys(
        d,
        m,
        path,
        &["requestTimeout", "backendRequestTimeout", "connectTimeout"],
    );
    let mut out = Timeouts::default();
    let mut ok = true;
    for (k, v) in m {
        let p = join_key(path, &k.name);
        let slot = match k.name.as_str() {
            "requestTimeout" => &mut out.request_timeout,
            "backendRequestTimeout" => &mut out.backend_request_timeout,
            "connectTimeout" => &mut out.connect_timeout,
            _ => continue,
        };
        *slot = duration(d, v, &p);
        ok &= slot.is_some();
    }
    ok.then_some(out)
}

/// Attachments being built for one `policies` block.
struct Attachments {
    list: Vec<PluginAttachment>,
    /// Parallel to `list`: may later keys for the same plugin merge into it?
    mergeable: Vec<bool>,
}

impl Attachments {
    /// Add `{json_key: subtree}` to the block's attachment for `plugin`.
    fn add_keyed(
        &mut self,
        plugin: &str,
        yaml_key: &str,
        json_key: &str,
        key_loc: &Location,
        node: &Node,
    ) {
        let mut secrets = Vec::new();
        let value = node.to_json(&format!("/{}", escape_pointer(json_key)), &mut secrets);
        let pos = self
            .list
            .iter()
            .zip(&self.mergeable)
            .position(|(a, m)| *m && a.plugin == plugin);
        match pos {
            Some(i) => {
                let a = &mut self.list[i];
                if let serde_json::Value::Object(o) = &mut a.config {
                    o.insert(json_key.to_string(), value);
                }
                a.keys.push(yaml_key.to_string());
                a.secret_pointers.extend(secrets);
            }
            None => {
                let mut o = serde_json::Map::new();
                o.insert(json_key.to_string(), value);
                self.list.push(PluginAttachment {
                    plugin: plugin.to_string(),
                    config: serde_json::Value::Object(o),
                    keys: vec![yaml_key.to_string()],
                    location: key_loc.clone(),
                    secret_pointers: secrets,
                });
                self.mergeable.push(true);
            }
        }
    }

    fn add_whole(&mut self, plugin: &str, yaml_key: String, loc: &Location, node: Option<&Node>) {
        let mut secrets = Vec::new();
        let config = node
            .map(|n| n.to_json("", &mut secrets))
            .unwrap_or(serde_json::Value::Null);
        self.list.push(PluginAttachment {
            plugin: plugin.to_string(),
            config,
            keys: vec![yaml_key],
            location: loc.clone(),
            secret_pointers: secrets,
        });
        self.mergeable.push(false);
    }
}

/// Decode a `policies` mapping. Returns the policies and any host overrides
/// (`hostOverride`/`pathPrefix`/`pathOverride`) found in it.
pub(crate) fn decode_policies(ctx: &mut Ctx, node: &Node, path: &str) -> (Policies, HostOverrides) {
    let mut pol = Policies::default();
    let mut ov = HostOverrides::default();
    let Some(m) = as_map(ctx.d, node, path) else {
        return (pol, ov);
    };
    ov.read(ctx.d, m, path);
    let mut att = Attachments {
        list: Vec::new(),
        mergeable: Vec::new(),
    };
    for (k, v) in m {
        let p = join_key(path, &k.name);
        match k.name.as_str() {
            "hostOverride" | "pathPrefix" | "pathOverride" => {}
            "urlRewrite" => pol.url_rewrite = decode_url_rewrite(ctx.d, v, &p),
            "backendAuth" => {
                pol.backend_auth = decode_backend_auth(ctx.d, v, &p, &mut pol.pass_headers)
            }
            "backendTLS" => pol.backend_tls = decode_backend_tls(ctx, v, &p),
            "timeout" => pol.timeout = decode_timeouts(ctx.d, v, &p),
            "ai" => pol.ai = decode_ai(ctx.d, v, &p, &mut att),
            "plugins" => decode_plugin_list(ctx, v, &p, &mut att),
            name => {
                if let Some((_, plugin)) = PLUGIN_KEYS.iter().find(|(key, _)| *key == name) {
                    att.add_keyed(plugin, name, name, &k.loc, v);
                } else if ctx.declared.contains(name) {
                    att.add_whole(name, name.to_string(), &k.loc, Some(v));
                } else {
                    let mut known: Vec<&str> = reserved_policy_keys().collect();
                    known.extend(ctx.declared.iter().map(String::as_str));
                    ctx.d.error(
                        &k.loc,
                        &p,
                        format!(
                            "unknown policy `{name}`{}",
                            super::suggest::did_you_mean(name, &known)
                                .map(|c| format!("; did you mean `{c}`?"))
                                .unwrap_or_else(|| {
                                    " (not a built-in policy nor a declared plugin)".into()
                                })
                        ),
                    );
                }
            }
        }
    }
    pol.attachments = att.list;
    (pol, ov)
}

fn decode_ai(d: &mut Diags, node: &Node, path: &str, att: &mut Attachments) -> Option<AiPolicy> {
    let m = as_map(d, node, path)?;
    check_keys(d, m, path, &["routes", "promptGuard"]);
    let mut out = AiPolicy::default();
    if let Some(n) = get(m, "routes") {
        let rp = join_key(path, "routes");
        if let Some(rm) = as_map(d, n, &rp) {
            let mut routes = IndexMap::new();
            for (k, v) in rm {
                let p = join_key(&rp, &k.name);
                if k.name != "*" && !k.name.starts_with('/') {
                    d.error(
                        &k.loc,
                        &p,
                        format!(
                            "AI route key `{}` must be a path suffix starting with `/`, or `*`",
                            k.name
                        ),
                    );
                    continue;
                }
                if let Some(kind) = super::decode::one_of(d, v, &p, &AiKind::ALL) {
                    routes.insert(k.name.clone(), kind);
                }
            }
            out.routes = routes;
        }
    }
    if let Some((k, pg)) = m.iter().find(|(k, _)| k.name == "promptGuard") {
        let (req, resp) = match &pg.kind {
            Kind::Map(pm) => (get(pm, "request").is_some(), get(pm, "response").is_some()),
            _ => (false, false),
        };
        let both = !req && !resp;
        if req || both {
            att.add_keyed(
                "input-validation",
                "ai.promptGuard",
                "promptGuard",
                &k.loc,
                pg,
            );
        }
        if resp || both {
            att.add_keyed("output-mask", "ai.promptGuard", "promptGuard", &k.loc, pg);
        }
    }
    Some(out)
}

fn decode_plugin_list(ctx: &mut Ctx, node: &Node, path: &str, att: &mut Attachments) {
    let Some(items) = as_list(ctx.d, node, path) else {
        return;
    };
    for (i, item) in items.iter().enumerate() {
        let p = join_index(path, i);
        let Some(m) = as_map(ctx.d, item, &p) else {
            continue;
        };
        check_keys(ctx.d, m, &p, &["name", "config"]);
        let Some(name_node) = get(m, "name") else {
            ctx.d.error(&item.loc, &p, "missing required key `name`");
            continue;
        };
        let np = join_key(&p, "name");
        let Some(name) = string(ctx.d, name_node, &np) else {
            continue;
        };
        if !ctx.declared.contains(&name) && !BUNDLED_PLUGINS.contains(&name.as_str()) {
            let mut known: Vec<&str> = BUNDLED_PLUGINS.to_vec();
            known.extend(ctx.declared.iter().map(String::as_str));
            ctx.d.error(
                &name_node.loc,
                &np,
                format!(
                    "plugin `{name}` is not declared in the top-level `plugins:` list{}",
                    hint(&name, &known)
                ),
            );
            continue;
        }
        att.add_whole(&name, join_index("plugins", i), &item.loc, get(m, "config"));
    }
}

/// `backendAuth.passHeaders: [OpenAI-Organization]`: billing headers the
/// client may still choose when the gateway injects its key.
fn decode_pass_headers(d: &mut Diags, node: &Node, path: &str) -> Vec<String> {
    let mut out = Vec::new();
    let Some(items) = super::decode::as_list(d, node, path) else {
        return out;
    };
    for (i, item) in items.iter().enumerate() {
        let ip = super::tree::join_index(path, i);
        let Some(h) = nonempty(d, item, &ip) else {
            continue;
        };
        let h = h.trim().to_ascii_lowercase();
        if !crate::proxy::billing::is_billing_header(&h) {
            d.error(
                &item.loc,
                &ip,
                format!(
                    "{} is not a billing header the gateway drops (expected e.g. `OpenAI-Organization`, `OpenAI-Project`, `anthropic-workspace-id`)",
                    item.shown()
                ),
            );
            continue;
        }
        out.push(h);
    }
    out
}

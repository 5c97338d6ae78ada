//! Tree → resolved types, collecting every error instead of stopping.
//!
//! Exists to keep validation in one place: each `decode_*` function checks
//! the keys it owns (unknown keys get a "did you mean"), converts values,
//! and reports problems with the node's location and key path. Policies and
//! plugin attachments live in `policies.rs`.

use std::collections::HashSet;
use std::net::{IpAddr, SocketAddr};
use std::path::{Path, PathBuf};
use std::time::Duration;

use super::error::{Diags, Location};
use super::policies::{decode_policies, HostOverrides};
use super::state::decode_state;
use super::suggest::hint;
use super::tree::{join_index, join_key, Key, Kind, Node, Typed};
use super::types::*;
use super::units::parse_duration;

/// Per-file decoding context.
pub(crate) struct Ctx<'a> {
    pub d: &'a mut Diags,
    /// Directory of the file being decoded (relative paths resolve here).
    pub dir: PathBuf,
    /// Names of plugins declared in any file's top-level `plugins:`.
    pub declared: &'a HashSet<String>,
}

// ---------------------------------------------------------------------------
// Generic helpers
// ---------------------------------------------------------------------------

/// A TCP port: an integer from 0 to 65535.
pub(crate) fn port_number(d: &mut Diags, n: &Node, p: &str) -> Option<u16> {
    match integer(d, n, p).map(u16::try_from) {
        Some(Ok(v)) => Some(v),
        Some(Err(_)) => {
            d.error(
                &n.loc,
                p,
                format!("port {} is out of range (0-65535)", n.shown()),
            );
            None
        }
        None => None,
    }
}

pub(crate) fn expected(d: &mut Diags, node: &Node, path: &str, what: &str) {
    d.error(
        &node.loc,
        path,
        format!("expected {what}, found {}", node.type_name()),
    );
}

/// The node as a mapping (null counts as an empty mapping).
pub(crate) fn as_map<'n>(d: &mut Diags, node: &'n Node, path: &str) -> Option<&'n [(Key, Node)]> {
    match &node.kind {
        Kind::Map(m) => Some(m),
        _ if node.is_null() => Some(&[]),
        _ => {
            expected(d, node, path, "a mapping");
            None
        }
    }
}

/// The node as a list (null counts as an empty list).
pub(crate) fn as_list<'n>(d: &mut Diags, node: &'n Node, path: &str) -> Option<&'n [Node]> {
    match &node.kind {
        Kind::Seq(s) => Some(s),
        _ if node.is_null() => Some(&[]),
        _ => {
            expected(d, node, path, "a list");
            None
        }
    }
}

/// Report keys of `entries` that are not in `known`.
pub(crate) fn check_keys(d: &mut Diags, entries: &[(Key, Node)], path: &str, known: &[&str]) {
    for (k, _) in entries {
        if !known.contains(&k.name.as_str()) {
            d.error(
                &k.loc,
                &join_key(path, &k.name),
                format!("unknown key `{}`{}", k.name, hint(&k.name, known)),
            );
        }
    }
}

pub(crate) fn get<'n>(entries: &'n [(Key, Node)], name: &str) -> Option<&'n Node> {
    entries.iter().find(|(k, _)| k.name == name).map(|(_, v)| v)
}

pub(crate) fn get_key<'n>(entries: &'n [(Key, Node)], name: &str) -> Option<&'n Key> {
    entries.iter().find(|(k, _)| k.name == name).map(|(k, _)| k)
}

/// A string value. Plain numbers are accepted as their text; null, lists and
/// mappings are not.
pub(crate) fn string(d: &mut Diags, node: &Node, path: &str) -> Option<String> {
    match &node.kind {
        Kind::Scalar(s) if !node.is_null() => Some(s.text.clone()),
        _ => {
            expected(d, node, path, "a string");
            None
        }
    }
}

/// A non-empty string.
pub(crate) fn nonempty(d: &mut Diags, node: &Node, path: &str) -> Option<String> {
    let s = string(d, node, path)?;
    if s.trim().is_empty() {
        d.error(&node.loc, path, "must not be empty");
        return None;
    }
    Some(s)
}

/// Text of a scalar usable as a number/bool (env-expanded values included).
fn scalar_text(node: &Node) -> Option<&str> {
    match &node.kind {
        Kind::Scalar(s) if s.secret => Some(s.text.trim()),
        Kind::Scalar(s) if s.plain => Some(s.text.as_str()),
        _ => None,
    }
}

pub(crate) fn integer(d: &mut Diags, node: &Node, path: &str) -> Option<i128> {
    if let Kind::Scalar(s) = &node.kind {
        if let Typed::Int(i) = s.typed() {
            return Some(i);
        }
        if s.secret {
            if let Ok(i) = s.text.trim().parse::<i128>() {
                return Some(i);
            }
        }
    }
    expected(d, node, path, "an integer");
    None
}

pub(crate) fn boolean(d: &mut Diags, node: &Node, path: &str) -> Option<bool> {
    match scalar_text(node) {
        Some("true" | "True" | "TRUE") => Some(true),
        Some("false" | "False" | "FALSE") => Some(false),
        _ => {
            expected(d, node, path, "a boolean (true or false)");
            None
        }
    }
}

pub(crate) fn duration(d: &mut Diags, node: &Node, path: &str) -> Option<Duration> {
    let s = string(d, node, path)?;
    match parse_duration(&s) {
        Ok(v) => Some(v),
        Err(e) => {
            d.error(&node.loc, path, format!("{}: {e}", node.shown()));
            None
        }
    }
}

/// One of a fixed set of names.
pub(crate) fn one_of<T: Copy>(
    d: &mut Diags,
    node: &Node,
    path: &str,
    options: &[(&str, T)],
) -> Option<T> {
    let s = string(d, node, path)?;
    if let Some((_, v)) = options.iter().find(|(n, _)| *n == s) {
        return Some(*v);
    }
    let names: Vec<&str> = options.iter().map(|(n, _)| *n).collect();
    let list = names
        .iter()
        .map(|n| format!("`{n}`"))
        .collect::<Vec<_>>()
        .join(", ");
    // No hint for secrets: even a suggestion says something about the value.
    let dym = match super::suggest::did_you_mean(&s, &names) {
        Some(c) if !node.has_secret() => format!("; did you mean `{c}`?"),
        _ => String::new(),
    };
    d.error(
        &node.loc,
        path,
        format!(
            "invalid value {}: expected one of {list}{dym}",
            node.shown()
        ),
    );
    None
}

/// A path relative to the config file's directory.
pub(crate) fn file_path(ctx: &mut Ctx, node: &Node, path: &str) -> Option<PathBuf> {
    let s = nonempty(ctx.d, node, path)?;
    Some(resolve(&ctx.dir, &s))
}

pub(crate) fn resolve(dir: &Path, p: &str) -> PathBuf {
    let p = Path::new(p);
    if p.is_absolute() {
        p.to_path_buf()
    } else {
        dir.join(p)
    }
}

/// `host:port` or `http(s)://host:port`; returns it as written.
pub(crate) fn host_port(
    d: &mut Diags,
    node: &Node,
    path: &str,
    allow_scheme: bool,
) -> Option<String> {
    let s = nonempty(d, node, path)?;
    let rest = if allow_scheme {
        s.strip_prefix("http://")
            .or_else(|| s.strip_prefix("https://"))
            .unwrap_or(&s)
    } else {
        &s
    };
    let rest = rest.strip_suffix('/').unwrap_or(rest);
    let ok = match rest.rsplit_once(':') {
        Some((host, port)) => {
            !host.is_empty() && !host.contains('/') && port.parse::<u16>().is_ok_and(|p| p > 0)
        }
        None => false,
    };
    if !ok {
        let form = if allow_scheme {
            "`host:port` (optionally with an `http://` or `https://` scheme)"
        } else {
            "`host:port`"
        };
        d.error(
            &node.loc,
            path,
            format!("invalid address {}: expected {form}", node.shown()),
        );
        return None;
    }
    Some(s)
}

/// A URL path: must start with `/`.
pub(crate) fn url_path(d: &mut Diags, node: &Node, path: &str) -> Option<String> {
    let s = string(d, node, path)?;
    if !s.starts_with('/') {
        d.error(
            &node.loc,
            path,
            format!("{} must start with `/`", node.shown()),
        );
        return None;
    }
    Some(s)
}

fn regex_str(d: &mut Diags, node: &Node, path: &str) -> Option<String> {
    let s = string(d, node, path)?;
    if let Err(e) = regex::Regex::new(&s) {
        // regex errors are multi-line drawings; keep the last line only.
        let text = e.to_string();
        let last = text.lines().last().unwrap_or_default().trim();
        let detail = if node.has_secret() {
            String::new()
        } else {
            format!(" {}: {}", node.shown(), last.trim_start_matches("error: "))
        };
        d.error(&node.loc, path, format!("invalid regex{detail}"));
        return None;
    }
    Some(s)
}

// ---------------------------------------------------------------------------
// Top level
// ---------------------------------------------------------------------------

pub(crate) const TOP_KEYS: &[&str] = &[
    "binds",
    "listeners",
    "routes",
    "plugins",
    "admin",
    "state",
    "limits",
    "include",
    "config",
    "llm",
    "frontendPolicies",
];

/// A route entry before listener scoping and naming are resolved.
pub(crate) struct RawRoute {
    pub route: Route,
    /// Key path of the entry, e.g. `routes[2]`.
    pub path: String,
    /// For routes nested under a listener: (bind port if nested in a bind, listener name).
    pub scope: Option<(Option<u16>, String)>,
}

/// Everything one file contributes.
#[derive(Default)]
pub(crate) struct FileParts {
    pub binds: Vec<(Bind, Location)>,
    pub listeners: Vec<Listener>,
    pub routes: Vec<RawRoute>,
    pub admin: Option<(Admin, Location)>,
    pub state: Option<(StateConfig, Location)>,
    pub limits: Option<(super::limits::Limits, Location)>,
    pub global: Option<(super::global::GlobalConfig, Location)>,
    pub llm: Option<(super::llm::LlmConfig, Location)>,
    pub frontend: Option<(super::frontend::FrontendPolicies, Location)>,
    /// Whether this file sets `admin.address` (for `config.adminAddr`).
    pub admin_address_set: bool,
}

pub(crate) fn decode_file(ctx: &mut Ctx, root: &Node, next_index: &mut usize) -> FileParts {
    let mut parts = FileParts::default();
    match &root.kind {
        Kind::Seq(items) => {
            decode_routes_list(ctx, items, "routes", None, next_index, &mut parts.routes);
        }
        Kind::Map(entries) => {
            check_keys(ctx.d, entries, "", TOP_KEYS);
            if let Some(n) = get(entries, "binds") {
                if let Some(items) = as_list(ctx.d, n, "binds") {
                    for (i, b) in items.iter().enumerate() {
                        let p = join_index("binds", i);
                        if let Some(bind) = decode_bind(ctx, b, &p, next_index, &mut parts.routes) {
                            parts.binds.push((bind, b.loc.clone()));
                        }
                    }
                }
            }
            if let Some(n) = get(entries, "listeners") {
                if let Some(items) = as_list(ctx.d, n, "listeners") {
                    for (i, l) in items.iter().enumerate() {
                        let p = join_index("listeners", i);
                        if let Some(l) =
                            decode_listener(ctx, l, &p, None, next_index, &mut parts.routes)
                        {
                            parts.listeners.push(l);
                        }
                    }
                }
            }
            if let Some(n) = get(entries, "routes") {
                if let Some(items) = as_list(ctx.d, n, "routes") {
                    decode_routes_list(ctx, items, "routes", None, next_index, &mut parts.routes);
                }
            }
            if let Some(n) = get(entries, "limits") {
                if let Some(l) = super::limits::decode_limits(ctx.d, n, "limits") {
                    parts.limits = Some((l, n.loc.clone()));
                }
            }
            if let Some(n) = get(entries, "llm") {
                if let Some(l) = super::llm::decode_llm(ctx, n, "llm", next_index) {
                    parts.llm = Some((l, n.loc.clone()));
                }
            }
            if let Some(n) = get(entries, "frontendPolicies") {
                if let Some(f) = super::frontend::decode_frontend(ctx.d, n, "frontendPolicies") {
                    parts.frontend = Some((f, n.loc.clone()));
                }
            }
            if let Some(n) = get(entries, "admin") {
                parts.admin_address_set =
                    matches!(&n.kind, Kind::Map(m) if get(m, "address").is_some());
                if let Some(a) = decode_admin(ctx, n, "admin") {
                    parts.admin = Some((a, n.loc.clone()));
                }
            }
            if let Some(n) = get(entries, "state") {
                if let Some(s) = decode_state(ctx.d, n, "state") {
                    parts.state = Some((s, n.loc.clone()));
                }
            }
            if let Some(n) = get(entries, "config") {
                if let Some(mut g) = super::global::decode_global(ctx.d, n, "config") {
                    g.model_catalog = super::catalog::decode(ctx, n);
                    parts.global = Some((g, n.loc.clone()));
                }
            }
            // `plugins` and `include` are handled by mod.rs before this.
        }
        _ if root.is_null() => {}
        _ => expected(
            ctx.d,
            root,
            "",
            "a mapping (binds/listeners/routes/...) or a list of routes",
        ),
    }
    parts
}

fn decode_admin(ctx: &mut Ctx, node: &Node, path: &str) -> Option<Admin> {
    let m = as_map(ctx.d, node, path)?;
    check_keys(ctx.d, m, path, &["address", "token", "pluginDirs"]);
    let mut admin = Admin::default();
    decode_admin_access(ctx, m, path, &mut admin);
    let d = &mut *ctx.d;
    if let Some(n) = get(m, "address") {
        let p = join_key(path, "address");
        let s = string(d, n, &p)?;
        match s.parse::<SocketAddr>() {
            Ok(a) => admin.address = a,
            Err(_) => {
                d.error(
                    &n.loc,
                    &p,
                    format!(
                        "invalid socket address {}: expected e.g. `127.0.0.1:15000`",
                        n.shown()
                    ),
                );
                return None;
            }
        }
        if !admin.address.ip().is_loopback() && admin.token.is_none() {
            d.error(
                &n.loc,
                &p,
                format!(
                    "admin address {} is not loopback: set `admin.token` (e.g. `$SLUICE_ADMIN_TOKEN`) \
                     so the admin API is not open to the network",
                    admin.address
                ),
            );
            return None;
        }
    }
    Some(admin)
}

// ---------------------------------------------------------------------------
// Binds and listeners
// ---------------------------------------------------------------------------

fn decode_bind(
    ctx: &mut Ctx,
    node: &Node,
    path: &str,
    next_index: &mut usize,
    routes: &mut Vec<RawRoute>,
) -> Option<Bind> {
    let m = as_map(ctx.d, node, path)?;
    check_keys(ctx.d, m, path, &["port", "address", "listeners", "limits"]);
    let limits = match get(m, "limits") {
        Some(n) => super::limits::decode_bind_limits(ctx.d, n, &join_key(path, "limits"))
            .unwrap_or_default(),
        None => Default::default(),
    };
    let port = match get(m, "port") {
        Some(n) => port_number(ctx.d, n, &join_key(path, "port")),
        None => {
            ctx.d.error(&node.loc, path, "missing required key `port`");
            None
        }
    };
    let mut address = IpAddr::from([127, 0, 0, 1]);
    if let Some(n) = get(m, "address") {
        let p = join_key(path, "address");
        if let Some(s) = string(ctx.d, n, &p) {
            match s.parse() {
                Ok(a) => address = a,
                Err(_) => ctx.d.error(
                    &n.loc,
                    &p,
                    format!(
                        "invalid IP address {}: expected e.g. `127.0.0.1` or `::`",
                        n.shown()
                    ),
                ),
            }
        }
    }
    let mut listeners = Vec::new();
    if let Some(n) = get(m, "listeners") {
        let lp = join_key(path, "listeners");
        if let Some(items) = as_list(ctx.d, n, &lp) {
            for (i, l) in items.iter().enumerate() {
                let p = join_index(&lp, i);
                if let Some(l) = decode_listener(ctx, l, &p, Some(port), next_index, routes) {
                    listeners.push(l);
                }
            }
        }
    }
    Some(Bind {
        port: port?,
        address,
        listeners,
        limits,
    })
}

/// `bind_port`: `Some(port)` when nested in a bind (`Some(None)` if that
/// bind's port was invalid), `None` for top-level listeners.
fn decode_listener(
    ctx: &mut Ctx,
    node: &Node,
    path: &str,
    bind_port: Option<Option<u16>>,
    next_index: &mut usize,
    routes: &mut Vec<RawRoute>,
) -> Option<Listener> {
    let m = as_map(ctx.d, node, path)?;
    check_keys(
        ctx.d,
        m,
        path,
        &[
            "name",
            "protocol",
            "tls",
            "hostname",
            "routes",
            "allowedOrigins",
            "auth",
        ],
    );
    let name = match get(m, "name") {
        Some(n) => nonempty(ctx.d, n, &join_key(path, "name")),
        None => Some("default".to_string()),
    };
    let protocol = match get(m, "protocol") {
        Some(n) => one_of(
            ctx.d,
            n,
            &join_key(path, "protocol"),
            &[("HTTP", Protocol::Http), ("HTTPS", Protocol::Https)],
        ),
        None => Some(Protocol::Http),
    };
    let mut tls = None;
    if let Some(n) = get(m, "tls") {
        let p = join_key(path, "tls");
        if let Some(tm) = as_map(ctx.d, n, &p) {
            check_keys(ctx.d, tm, &p, &["cert", "key"]);
            let cert = match get(tm, "cert") {
                Some(c) => file_path(ctx, c, &join_key(&p, "cert")),
                None => {
                    ctx.d.error(&n.loc, &p, "missing required key `cert`");
                    None
                }
            };
            let key = match get(tm, "key") {
                Some(k) => file_path(ctx, k, &join_key(&p, "key")),
                None => {
                    ctx.d.error(&n.loc, &p, "missing required key `key`");
                    None
                }
            };
            if let (Some(cert), Some(key)) = (cert, key) {
                tls = Some(TlsFiles { cert, key });
            }
        }
    }
    match (protocol, &tls, get(m, "tls")) {
        (Some(Protocol::Https), None, None) => ctx.d.error(
            &node.loc,
            path,
            "protocol HTTPS requires `tls: {cert, key}`",
        ),
        (Some(Protocol::Http), _, Some(t)) => ctx.d.error(
            &t.loc,
            &join_key(path, "tls"),
            "`tls` given but protocol is HTTP; set `protocol: HTTPS`",
        ),
        _ => {}
    }
    let hostname = get(m, "hostname").and_then(|n| nonempty(ctx.d, n, &join_key(path, "hostname")));
    let (allowed_origins, auth_keys) = decode_listener_access(ctx.d, m, path);
    if let Some(n) = get(m, "routes") {
        let p = join_key(path, "routes");
        if let Some(items) = as_list(ctx.d, n, &p) {
            let scope = name.clone().map(|l| (bind_port.flatten(), l));
            decode_routes_list(ctx, items, &p, scope, next_index, routes);
        }
    }
    Some(Listener {
        name: name?,
        protocol: protocol?,
        tls,
        hostname: hostname.map(|h| h.to_ascii_lowercase()),
        allowed_origins,
        auth_keys,
    })
}

/// `admin.token` (a secret) and `admin.pluginDirs` (relative to the file).
fn decode_admin_access(ctx: &mut Ctx, m: &[(Key, Node)], path: &str, admin: &mut Admin) {
    if let Some(n) = get(m, "token") {
        let p = join_key(path, "token");
        if let Some(t) = nonempty(ctx.d, n, &p) {
            if t.len() < 16 {
                ctx.d.error(
                    &n.loc,
                    &p,
                    "admin token is too short (use at least 16 characters, e.g. `openssl rand -hex 32`)",
                );
            } else {
                admin.token = Some(Secret::new(t));
            }
        }
    }
    if let Some(n) = get(m, "pluginDirs") {
        let p = join_key(path, "pluginDirs");
        if let Some(items) = as_list(ctx.d, n, &p) {
            for (i, item) in items.iter().enumerate() {
                if let Some(dir) = file_path(ctx, item, &join_index(&p, i)) {
                    admin.plugin_dirs.push(dir);
                }
            }
        }
    }
}

/// `listeners[].allowedOrigins` and `listeners[].auth.keys`.
fn decode_listener_access(
    d: &mut Diags,
    m: &[(Key, Node)],
    path: &str,
) -> (Vec<String>, Vec<Secret>) {
    let mut origins = Vec::new();
    if let Some(n) = get(m, "allowedOrigins") {
        let p = join_key(path, "allowedOrigins");
        if let Some(items) = as_list(d, n, &p) {
            for (i, item) in items.iter().enumerate() {
                let ip = join_index(&p, i);
                if let Some(o) = nonempty(d, item, &ip) {
                    let o = o.trim_end_matches('/').to_ascii_lowercase();
                    if o != "*" && !(o.starts_with("http://") || o.starts_with("https://")) {
                        d.error(
                            &item.loc,
                            &ip,
                            format!(
                                "origin {} must be `*` or a scheme and host like `https://app.example.com`",
                                item.shown()
                            ),
                        );
                    } else {
                        origins.push(o);
                    }
                }
            }
        }
    }
    let mut keys = Vec::new();
    if let Some(n) = get(m, "auth") {
        let p = join_key(path, "auth");
        if let Some(am) = as_map(d, n, &p) {
            check_keys(d, am, &p, &["keys"]);
            match get(am, "keys") {
                Some(kn) => {
                    let kp = join_key(&p, "keys");
                    if let Some(items) = as_list(d, kn, &kp) {
                        for (i, item) in items.iter().enumerate() {
                            if let Some(k) = nonempty(d, item, &join_index(&kp, i)) {
                                keys.push(Secret::new(k));
                            }
                        }
                        if items.is_empty() {
                            d.error(&kn.loc, &kp, "list at least one key, or drop `auth`");
                        }
                    }
                }
                None => d.error(&n.loc, &p, "missing required key `keys`"),
            }
        }
    }
    (origins, keys)
}

// ---------------------------------------------------------------------------
// Routes
// ---------------------------------------------------------------------------

const ROUTE_KEYS: &[&str] = &[
    "name",
    "matches",
    "policies",
    "backends",
    "hostOverride",
    "pathPrefix",
    "pathOverride",
    "backendAuth",
];

fn decode_routes_list(
    ctx: &mut Ctx,
    items: &[Node],
    path: &str,
    scope: Option<(Option<u16>, String)>,
    next_index: &mut usize,
    out: &mut Vec<RawRoute>,
) {
    for (i, r) in items.iter().enumerate() {
        let p = join_index(path, i);
        let index = *next_index;
        *next_index += 1;
        if let Some(mut raw) = decode_route(ctx, r, &p, index) {
            raw.scope = scope.clone();
            out.push(raw);
        }
    }
}

fn decode_route(ctx: &mut Ctx, node: &Node, path: &str, index: usize) -> Option<RawRoute> {
    let m = as_map(ctx.d, node, path)?;
    check_keys(ctx.d, m, path, ROUTE_KEYS);
    let mut ok = true;
    let name = match get(m, "name") {
        Some(n) => nonempty(ctx.d, n, &join_key(path, "name")).unwrap_or_else(|| {
            ok = false;
            String::new()
        }),
        None => format!("route-{index}"),
    };

    let mut matches = Vec::new();
    if let Some(n) = get(m, "matches") {
        let mp = join_key(path, "matches");
        if let Some(items) = as_list(ctx.d, n, &mp) {
            for (i, mn) in items.iter().enumerate() {
                match decode_match(ctx.d, mn, &join_index(&mp, i)) {
                    Some(x) => matches.push(x),
                    None => ok = false,
                }
            }
        }
    }

    // Route-level quirks (guide patterns 1 and 2).
    let mut route_level = HostOverrides::default();
    route_level.read(ctx.d, m, path);
    let route_auth = get(m, "backendAuth").map(|n| (get_key(m, "backendAuth").cloned(), n));

    let (mut policies, pol_overrides) = match get(m, "policies") {
        Some(n) => decode_policies(ctx, n, &join_key(path, "policies")),
        None => (Policies::default(), HostOverrides::default()),
    };
    let overrides = route_level.combine(ctx.d, pol_overrides, path);

    if let Some((key, n)) = route_auth {
        let p = join_key(path, "backendAuth");
        if policies.backend_auth.is_some() {
            let loc = key.map(|k| k.loc).unwrap_or_else(|| n.loc.clone());
            ctx.d.error(
                &loc,
                &p,
                "`backendAuth` is given both at route level and under `policies`; keep one",
            );
        } else {
            policies.backend_auth =
                super::policies::decode_backend_auth(ctx, n, &p, &mut policies.pass_headers);
        }
    }

    let mut backends = Vec::new();
    if let Some(n) = get(m, "backends") {
        let bp = join_key(path, "backends");
        if let Some(items) = as_list(ctx.d, n, &bp) {
            for (i, bn) in items.iter().enumerate() {
                match decode_backend(ctx, bn, &join_index(&bp, i), &name) {
                    Some(b) => backends.push(b),
                    None => ok = false,
                }
            }
        }
    }

    // Route/policy-level overrides apply to every ai backend (backend-level wins).
    if backends.is_empty() {
        if let Some(loc) = overrides.first_location() {
            ctx.d.warn(
                &loc,
                path,
                "`hostOverride`/`pathPrefix`/`pathOverride` have no effect on a route without backends",
            );
        }
    }
    for b in &mut backends {
        let members: Vec<&mut AiBackend> = match &mut b.kind {
            Backend::Ai(ai) => vec![ai],
            Backend::Groups(groups) => groups.iter_mut().flatten().collect(),
            Backend::Host(_) => Vec::new(),
        };
        for ai in members {
            if ai.host_override.is_none() {
                ai.host_override = overrides.host_override.clone().map(|(v, _)| v);
            }
            if ai.path_prefix.is_none() {
                ai.path_prefix = overrides.path_prefix.clone().map(|(v, _)| v);
            }
            if ai.path_override.is_none() {
                ai.path_override = overrides.path_override.clone().map(|(v, _)| v);
            }
        }
    }
    check_backend_names(ctx.d, &backends, node, path);

    // Even a route with errors is kept (the load fails anyway) so that
    // duplicate names are still reported.
    if !ok && name.is_empty() {
        return None;
    }
    Some(RawRoute {
        route: Route {
            name,
            matches,
            policies,
            backends,
            listener: None,
            location: node.loc.clone(),
            index,
        },
        path: path.to_string(),
        scope: None,
    })
}

fn decode_match(d: &mut Diags, node: &Node, path: &str) -> Option<Match> {
    let m = as_map(d, node, path)?;
    check_keys(d, m, path, &["path", "headers", "method"]);
    let mut out = Match::default();
    let mut ok = true;
    if let Some(n) = get(m, "path") {
        let p = join_key(path, "path");
        out.path = decode_path_match(d, n, &p);
        ok &= out.path.is_some();
    }
    if let Some(n) = get(m, "headers") {
        let hp = join_key(path, "headers");
        if let Some(items) = as_list(d, n, &hp) {
            for (i, h) in items.iter().enumerate() {
                match decode_header_match(d, h, &join_index(&hp, i)) {
                    Some(h) => out.headers.push(h),
                    None => ok = false,
                }
            }
        }
    }
    if let Some(n) = get(m, "method") {
        let p = join_key(path, "method");
        match string(d, n, &p) {
            Some(s) if !s.is_empty() && s.bytes().all(|b| b.is_ascii_alphabetic()) => {
                out.method = Some(s.to_ascii_uppercase())
            }
            Some(_) => {
                d.error(&n.loc, &p, format!("invalid HTTP method {}", n.shown()));
                ok = false;
            }
            None => ok = false,
        }
    }
    ok.then_some(out)
}

fn decode_path_match(d: &mut Diags, node: &Node, path: &str) -> Option<PathMatch> {
    let m = as_map(d, node, path)?;
    const KINDS: &[&str] = &["pathPrefix", "exact", "regex"];
    check_keys(d, m, path, KINDS);
    let present: Vec<&(Key, Node)> = m
        .iter()
        .filter(|(k, _)| KINDS.contains(&k.name.as_str()))
        .collect();
    if present.len() != 1 {
        if m.len() == present.len() {
            d.error(
                &node.loc,
                path,
                "expected exactly one of `pathPrefix`, `exact`, `regex`",
            );
        }
        return None;
    }
    let (k, v) = present[0];
    let p = join_key(path, &k.name);
    match k.name.as_str() {
        "pathPrefix" => url_path(d, v, &p).map(PathMatch::Prefix),
        "exact" => url_path(d, v, &p).map(PathMatch::Exact),
        _ => regex_str(d, v, &p).map(PathMatch::Regex),
    }
}

fn decode_header_match(d: &mut Diags, node: &Node, path: &str) -> Option<HeaderMatch> {
    let m = as_map(d, node, path)?;
    check_keys(d, m, path, &["name", "value"]);
    let name = match get(m, "name") {
        Some(n) => nonempty(d, n, &join_key(path, "name")),
        None => {
            d.error(&node.loc, path, "missing required key `name`");
            None
        }
    };
    let value = match get(m, "value") {
        Some(n) => {
            let vp = join_key(path, "value");
            let vm = as_map(d, n, &vp)?;
            check_keys(d, vm, &vp, &["exact", "regex"]);
            match (get(vm, "exact"), get(vm, "regex")) {
                (Some(e), None) => string(d, e, &join_key(&vp, "exact")).map(ValueMatch::Exact),
                (None, Some(r)) => regex_str(d, r, &join_key(&vp, "regex")).map(ValueMatch::Regex),
                _ => {
                    d.error(&n.loc, &vp, "expected exactly one of `exact`, `regex`");
                    None
                }
            }
        }
        None => {
            d.error(&node.loc, path, "missing required key `value`");
            None
        }
    };
    Some(HeaderMatch {
        name: name?,
        value: value?,
    })
}

// ---------------------------------------------------------------------------
// Backends
// ---------------------------------------------------------------------------

/// Each backend of a route is known by its name: in the access log, the
/// metrics, `GET /backends` and the health state that outlives a reload.
/// Two with one name could not be told apart, and a route whose weights
/// are all zero could serve nothing.
fn check_backend_names(d: &mut Diags, backends: &[RouteBackend], node: &Node, path: &str) {
    let mut seen = HashSet::new();
    for b in backends {
        let names: Vec<&str> = match &b.kind {
            Backend::Ai(ai) => vec![ai.name.as_str()],
            Backend::Host(h) => vec![h.as_str()],
            Backend::Groups(g) => g.iter().flatten().map(|a| a.name.as_str()).collect(),
        };
        for n in names {
            if !seen.insert(n) {
                d.error(
                    &node.loc,
                    &join_key(path, "backends"),
                    format!("two backends of this route are named `{n}`: give each `ai` backend its own `name`"),
                );
            }
        }
    }
    if !backends.is_empty() && backends.iter().all(|b| b.weight == 0) {
        d.error(
            &node.loc,
            &join_key(path, "backends"),
            "every backend has `weight: 0`: the route could serve nothing",
        );
    }
}

/// One `backends` entry: `ai` (one provider or priority `groups`) or
/// `host`, with its `weight` and its own `policies`.
fn decode_backend(
    ctx: &mut Ctx,
    node: &Node,
    path: &str,
    route_name: &str,
) -> Option<RouteBackend> {
    let m = as_map(ctx.d, node, path)?;
    check_keys(ctx.d, m, path, &["ai", "host", "weight", "policies"]);
    let mut weight = 1;
    if let Some(n) = get(m, "weight") {
        let p = join_key(path, "weight");
        match integer(ctx.d, n, &p)? {
            w @ 0..=1_000_000 => weight = w as u32,
            _ => {
                ctx.d
                    .error(&n.loc, &p, "expected a whole number from 0 to 1000000");
                return None;
            }
        }
    }
    let policies = match get(m, "policies") {
        Some(n) => super::resilience::decode_backend_policies(ctx, n, &join_key(path, "policies")),
        None => Some(BackendPolicies::default()),
    };
    let kind = match (get(m, "ai"), get(m, "host")) {
        (Some(ai), None) => {
            let ap = join_key(path, "ai");
            match &ai.kind {
                Kind::Map(am) if get(am, "groups").is_some() => {
                    decode_groups(ctx, ai, &ap).map(Backend::Groups)
                }
                _ => decode_ai_backend(ctx, ai, &ap, route_name, false).map(Backend::Ai),
            }
        }
        (None, Some(h)) => host_port(ctx.d, h, &join_key(path, "host"), false).map(Backend::Host),
        (Some(_), Some(_)) => {
            ctx.d.error(
                &node.loc,
                path,
                "a backend is either `ai` or `host`, not both",
            );
            None
        }
        (None, None) => {
            if m.iter()
                .all(|(k, _)| ["ai", "host", "weight", "policies"].contains(&k.name.as_str()))
            {
                ctx.d.error(
                    &node.loc,
                    path,
                    "expected a backend: `ai: {...}` or `host: host:port`",
                );
            }
            None
        }
    };
    Some(RouteBackend {
        weight,
        kind: kind?,
        policies: policies?,
    })
}

/// `ai: {groups: [{providers: [...]}, ...]}`: each provider needs its `name`.
fn decode_groups(ctx: &mut Ctx, node: &Node, path: &str) -> Option<Vec<Vec<AiBackend>>> {
    let m = as_map(ctx.d, node, path)?;
    check_keys(ctx.d, m, path, &["groups"]);
    let gp = join_key(path, "groups");
    let items = as_list(ctx.d, get(m, "groups")?, &gp)?;
    if items.is_empty() {
        ctx.d.error(&node.loc, &gp, "expected at least one group");
        return None;
    }
    let mut groups = Vec::new();
    let mut ok = true;
    for (i, g) in items.iter().enumerate() {
        let p = join_index(&gp, i);
        let Some(gm) = as_map(ctx.d, g, &p) else {
            ok = false;
            continue;
        };
        check_keys(ctx.d, gm, &p, &["providers"]);
        let pp = join_key(&p, "providers");
        let Some(list) = get(gm, "providers").and_then(|n| as_list(ctx.d, n, &pp)) else {
            ctx.d.error(&g.loc, &p, "missing required key `providers`");
            ok = false;
            continue;
        };
        if list.is_empty() {
            ctx.d.error(&g.loc, &pp, "expected at least one provider");
            ok = false;
        }
        let mut group = Vec::new();
        for (j, n) in list.iter().enumerate() {
            match decode_ai_backend(ctx, n, &join_index(&pp, j), "", true) {
                Some(b) => group.push(b),
                None => ok = false,
            }
        }
        groups.push(group);
    }
    ok.then_some(groups)
}

/// An `ai` backend (agentgateway's `LocalNamedAIProvider`). A group member
/// (`named`) must have a `name` and may carry its own `policies`.
fn decode_ai_backend(
    ctx: &mut Ctx,
    node: &Node,
    path: &str,
    route_name: &str,
    named: bool,
) -> Option<AiBackend> {
    let m = as_map(ctx.d, node, path)?;
    let mut keys = vec![
        "name",
        "provider",
        "hostOverride",
        "pathOverride",
        "pathPrefix",
    ];
    if named {
        keys.push("policies");
    }
    check_keys(ctx.d, m, path, &keys);
    let name = match get(m, "name") {
        Some(n) => nonempty(ctx.d, n, &join_key(path, "name")),
        None if named => {
            ctx.d.error(&node.loc, path, "missing required key `name`");
            None
        }
        None => Some(route_name.to_string()),
    };
    let provider = match get(m, "provider") {
        Some(n) => decode_provider(ctx.d, n, &join_key(path, "provider")),
        None => {
            ctx.d.error(
                &node.loc,
                path,
                "missing required key `provider` (e.g. `anthropic: {}`, `openAI: {}`, `bedrock: {region}`)",
            );
            None
        }
    };
    let policies = match get(m, "policies").filter(|_| named) {
        Some(n) => super::resilience::decode_backend_policies(ctx, n, &join_key(path, "policies")),
        None => Some(BackendPolicies::default()),
    };
    let mut ov = HostOverrides::default();
    ov.read(ctx.d, m, path);
    let (provider, model, params) = provider?;
    Some(AiBackend {
        name: name?,
        provider,
        model,
        params: Box::new(params),
        host_override: ov.host_override.map(|(v, _)| v),
        path_prefix: ov.path_prefix.map(|(v, _)| v),
        path_override: ov.path_override.map(|(v, _)| v),
        policies: Box::new(policies?),
    })
}

fn decode_provider(
    d: &mut Diags,
    node: &Node,
    path: &str,
) -> Option<(Provider, Option<String>, ProviderParams)> {
    let m = as_map(d, node, path)?;
    let names: Vec<&str> = Provider::ALL.iter().map(|(n, _)| *n).collect();
    const LATER: &[&str] = &["copilot", "custom"];
    for (k, _) in m {
        if LATER.contains(&k.name.as_str()) {
            d.error(
                &k.loc,
                &join_key(path, &k.name),
                "this provider is not supported yet (supported: anthropic, openAI, gemini, vertex, bedrock, azure)",
            );
            return None;
        }
    }
    check_keys(d, m, path, &names);
    if m.len() != 1 {
        if m.is_empty() {
            d.error(
                &node.loc,
                path,
                "expected exactly one provider: `anthropic`, `openAI`, `gemini`, `vertex`, `bedrock` or `azure`",
            );
        } else if m.iter().all(|(k, _)| names.contains(&k.name.as_str())) {
            d.error(
                &node.loc,
                path,
                "expected exactly one provider, found several",
            );
        }
        return None;
    }
    let (k, v) = &m[0];
    let provider = Provider::ALL
        .iter()
        .find(|(n, _)| *n == k.name)
        .map(|(_, p)| *p)?;
    let p = join_key(path, &k.name);
    let pm = as_map(d, v, &p)?;
    // Each provider's keys, as agentgateway's schema has them: (allowed, required).
    let (allowed, required): (&[&str], &[&str]) = match provider {
        Provider::Anthropic | Provider::OpenAi | Provider::Gemini => (&["model"], &[]),
        Provider::Vertex => (&["model", "region", "projectId"], &["projectId"]),
        Provider::Bedrock => (
            &["model", "region", "guardrailIdentifier", "guardrailVersion"],
            &["region"],
        ),
        Provider::Azure => (
            &[
                "model",
                "resourceName",
                "resourceType",
                "apiVersion",
                "projectName",
            ],
            &["resourceName", "resourceType"],
        ),
    };
    check_keys(d, pm, &p, allowed);
    let mut ok = true;
    for r in required {
        if get(pm, r).is_none() {
            d.error(&v.loc, &p, format!("missing required key `{r}`"));
            ok = false;
        }
    }
    let mut params = ProviderParams::default();
    let mut model = None;
    for (key, val) in pm {
        let kp = join_key(&p, &key.name);
        let slot = match key.name.as_str() {
            "model" => &mut model,
            "region" => &mut params.region,
            "projectId" => &mut params.project_id,
            "resourceName" => &mut params.resource_name,
            "apiVersion" => &mut params.api_version,
            "projectName" => &mut params.project_name,
            "resourceType" => {
                let t = nonempty(d, val, &kp);
                match t.as_deref() {
                    Some("openAI" | "foundry" | "aiServices") => params.resource_type = t,
                    Some(other) => {
                        d.error(
                            &val.loc,
                            &kp,
                            format!("unknown resourceType {other:?} (expected `openAI`, `foundry` or `aiServices`)"),
                        );
                        ok = false;
                    }
                    None => ok = false,
                }
                continue;
            }
            "guardrailIdentifier" | "guardrailVersion" => {
                d.error(
                    &key.loc,
                    &kp,
                    "Bedrock guardrails are not supported yet: attach a Wasm policy instead",
                );
                ok = false;
                continue;
            }
            _ => continue,
        };
        match nonempty(d, val, &kp) {
            Some(x) => *slot = Some(x),
            None => ok = false,
        }
    }
    ok.then_some((provider, model, params))
}

//! Configuration: loading the agentgateway-style YAML.
//!
//! Public entry points are [`load`], [`load_with_env`] and [`load_str`]. The
//! pipeline is: read every file (following `include:`) → build a marked YAML
//! tree with duplicate keys merged and env vars expanded (`tree`, `env`) →
//! decode plugin declarations from all files (`plugins`) → decode each file
//! into binds/listeners/routes (`decode`, `policies`) → resolve cross-file
//! things here (listener fan-out, route names, layers). Every problem is
//! collected; a load either returns a full [`Loaded`] or every error found.

mod catalog;
mod decode;
mod env;
mod error;
mod frontend;
mod global;
mod limits;
pub mod llm;
mod model_aliases;
pub use model_aliases::wildcard_match;
mod plugins;
mod policies;
mod resilience;
mod state;
mod suggest;
mod telemetry;
mod tree;
mod types;
mod units;

#[cfg(test)]
mod props;
#[cfg(test)]
mod tests;
#[cfg(test)]
mod tests_llm;
#[cfg(test)]
mod tests_providers;

use std::collections::{HashMap, HashSet};
use std::path::{Path, PathBuf};
use std::sync::Arc;

pub use catalog::{Catalog, ModelCatalog, ModelPrices, ProviderPrices, Rates, Tier};
pub use error::{ConfigError, ConfigErrors, ConfigWarning, Location};
pub use global::GlobalConfig;
pub use limits::{BindLimits, Limits};
pub use model_aliases::{AliasError, ModelAliases};
pub use policies::{BUNDLED_PLUGINS, HOST_KEYS, PLUGIN_KEYS};
pub use telemetry::{FieldExpr, FieldVar, OtlpProtocol, TraceFields, TracingConfig};
pub use types::*;

use decode::{as_list, get, nonempty, Ctx, FileParts};
use error::Diags;
use tree::{join_index, Kind, Node};

/// A successfully loaded configuration plus the warnings produced on the way.
#[derive(Debug, Clone)]
pub struct Loaded {
    pub config: Config,
    pub warnings: Vec<ConfigWarning>,
}

/// Load and merge config files, expanding `$VARS` from the process environment.
pub fn load(paths: &[PathBuf]) -> Result<Loaded, ConfigErrors> {
    load_with_env(paths, &|name| std::env::var(name).ok())
}

/// Load and merge config files with an explicit environment.
pub fn load_with_env(
    paths: &[PathBuf],
    env: &dyn Fn(&str) -> Option<String>,
) -> Result<Loaded, ConfigErrors> {
    let mut diags = Diags::default();
    let mut loader = FileLoader::new(env);
    for p in paths {
        loader.load_path(p, None, &mut diags);
    }
    finish(loader.files, &mut diags)
}

/// Load a single config given as text (`name` is used in locations and to
/// resolve relative paths). Mainly for tests.
pub fn load_str(
    name: &str,
    text: &str,
    env: &dyn Fn(&str) -> Option<String>,
) -> Result<Loaded, ConfigErrors> {
    let mut diags = Diags::default();
    let mut loader = FileLoader::new(env);
    loader.load_text(PathBuf::from(name), text, &mut diags);
    finish(loader.files, &mut diags)
}

/// A plugin's own config from a standalone YAML (or JSON) file, converted to
/// JSON exactly like the config of an attachment (`sluice plugin check/run`).
pub fn load_plugin_config(
    path: &Path,
    env: &dyn Fn(&str) -> Option<String>,
) -> Result<serde_json::Value, ConfigErrors> {
    let file: Arc<str> = path.display().to_string().into();
    let mut diags = Diags::default();
    let text = match std::fs::read_to_string(path) {
        Ok(t) => t,
        Err(e) => {
            diags.error(&Location::file(file), "", format!("cannot read: {e}"));
            return Err(ConfigErrors(diags.errors));
        }
    };
    match tree::parse(&file, &text, env, &mut diags) {
        Some(root) if diags.errors.is_empty() => Ok(root.to_json("", &mut Vec::new())),
        _ => Err(ConfigErrors(diags.errors)),
    }
}

/// One parsed file.
struct SourceFile {
    path: PathBuf,
    dir: PathBuf,
    root: Node,
}

struct FileLoader<'a> {
    env: &'a dyn Fn(&str) -> Option<String>,
    files: Vec<SourceFile>,
    /// Canonical paths of files loaded so far (cycles and double loads).
    seen: HashSet<PathBuf>,
}

impl<'a> FileLoader<'a> {
    fn new(env: &'a dyn Fn(&str) -> Option<String>) -> Self {
        FileLoader {
            env,
            files: Vec::new(),
            seen: HashSet::new(),
        }
    }

    /// `from`: the `include:` entry that asked for this file, if any.
    fn load_path(&mut self, path: &Path, from: Option<(&Location, &str)>, diags: &mut Diags) {
        let canonical = std::fs::canonicalize(path).unwrap_or_else(|_| path.to_path_buf());
        let (loc, key_path) = match from {
            Some((l, k)) => (l.clone(), k.to_string()),
            None => (
                Location::file(path.display().to_string().into()),
                String::new(),
            ),
        };
        if self.seen.contains(&canonical) {
            diags.error(
                &loc,
                &key_path,
                format!(
                    "`{}` is loaded more than once (include cycle or repeated --config)",
                    path.display()
                ),
            );
            return;
        }
        match std::fs::read_to_string(path) {
            Ok(text) => {
                self.seen.insert(canonical);
                self.load_text(path.to_path_buf(), &text, diags);
            }
            Err(e) => diags.error(
                &loc,
                &key_path,
                format!("cannot read config file `{}`: {e}", path.display()),
            ),
        }
    }

    fn load_text(&mut self, path: PathBuf, text: &str, diags: &mut Diags) {
        let name: Arc<str> = path.display().to_string().into();
        let dir = path.parent().map(Path::to_path_buf).unwrap_or_default();
        let Some(root) = tree::parse(&name, text, self.env, diags) else {
            return;
        };
        let includes = collect_includes(&root, &dir, diags);
        self.files.push(SourceFile { path, dir, root });
        for (p, loc, key_path) in includes {
            self.load_path(&p, Some((&loc, &key_path)), diags);
        }
    }
}

fn collect_includes(
    root: &Node,
    dir: &Path,
    diags: &mut Diags,
) -> Vec<(PathBuf, Location, String)> {
    let Kind::Map(entries) = &root.kind else {
        return Vec::new();
    };
    let Some(node) = get(entries, "include") else {
        return Vec::new();
    };
    let mut out = Vec::new();
    // `include: other.yaml` is accepted as a one-element list.
    let items: Vec<&Node> = match &node.kind {
        Kind::Scalar(_) if !node.is_null() => vec![node],
        _ => as_list(diags, node, "include")
            .map(|l| l.iter().collect())
            .unwrap_or_default(),
    };
    for (i, item) in items.into_iter().enumerate() {
        let kp = join_index("include", i);
        if let Some(s) = nonempty(diags, item, &kp) {
            out.push((decode::resolve(dir, &s), item.loc.clone(), kp));
        }
    }
    out
}

fn collect_secrets(node: &Node, out: &mut Vec<Secret>) {
    match &node.kind {
        Kind::Scalar(s) if s.secret => {
            if !out.iter().any(|x| x.expose() == s.text) {
                out.push(Secret::new(s.text.clone()));
            }
        }
        Kind::Scalar(_) => {}
        Kind::Seq(items) => items.iter().for_each(|n| collect_secrets(n, out)),
        Kind::Map(entries) => entries.iter().for_each(|(_, n)| collect_secrets(n, out)),
    }
}

fn finish(files: Vec<SourceFile>, diags: &mut Diags) -> Result<Loaded, ConfigErrors> {
    let mut config = Config {
        binds: Vec::new(),
        routes: Vec::new(),
        layers: Vec::new(),
        plugins: Vec::new(),
        admin: Admin::default(),
        state: StateConfig::default(),
        limits: Limits::default(),
        global: GlobalConfig::default(),
        llm: None,
        sources: files.iter().map(|f| f.path.clone()).collect(),
        secret_values: Vec::new(),
    };
    for f in &files {
        collect_secrets(&f.root, &mut config.secret_values);
    }

    // 1. Plugin declarations from every file.
    let mut seen = HashSet::new();
    let empty = HashSet::new();
    for f in &files {
        if let Kind::Map(entries) = &f.root.kind {
            if let Some(n) = get(entries, "plugins") {
                let mut ctx = Ctx {
                    d: diags,
                    dir: f.dir.clone(),
                    declared: &empty,
                };
                config
                    .plugins
                    .extend(plugins::decode_plugin_decls(&mut ctx, n, &mut seen));
            }
        }
    }
    let declared: HashSet<String> = config.plugins.iter().map(|p| p.name.clone()).collect();

    // 2. Each file's binds, listeners, routes.
    let mut all = FileParts::default();
    let mut next_index = 0;
    for f in &files {
        let mut ctx = Ctx {
            d: diags,
            dir: f.dir.clone(),
            declared: &declared,
        };
        let parts = decode::decode_file(&mut ctx, &f.root, &mut next_index);
        all.binds.extend(parts.binds);
        all.listeners.extend(parts.listeners);
        all.routes.extend(parts.routes);
        set_once(diags, &mut all.admin, parts.admin, "admin");
        set_once(diags, &mut all.state, parts.state, "state");
        set_once(diags, &mut all.limits, parts.limits, "limits");
        set_once(diags, &mut all.global, parts.global, "config");
        set_once(diags, &mut all.llm, parts.llm, "llm");
        set_once(diags, &mut all.frontend, parts.frontend, "frontendPolicies");
        all.admin_address_set |= parts.admin_address_set;
    }
    if let Some((a, _)) = all.admin {
        config.admin = a;
    }
    if let Some((s, _)) = all.state {
        config.state = s;
    }
    if let Some((l, _)) = all.limits {
        config.limits = l;
    }
    if let Some((g, loc)) = all.global.take() {
        apply_admin_addr(&mut config, &g, all.admin_address_set, &loc, diags);
        config.global = g;
    }
    if let Some((f, _)) = all.frontend {
        if let Some(n) = f.max_buffer_size {
            config.limits.max_buffered_body = n;
        }
    }
    let llm = all.llm.take();

    // 3. Binds: top-level listeners apply to every bind; default listener.
    let mut addrs: HashMap<(std::net::IpAddr, u16), Location> = HashMap::new();
    for (mut bind, loc) in all.binds {
        if bind.port != 0 {
            if let Some(first) = addrs.get(&(bind.address, bind.port)) {
                diags.error(
                    &loc,
                    "binds",
                    format!(
                        "duplicate bind {}:{} (first at {first})",
                        bind.address, bind.port
                    ),
                );
            } else {
                addrs.insert((bind.address, bind.port), loc.clone());
            }
        }
        bind.listeners.extend(all.listeners.iter().cloned());
        if bind.listeners.is_empty() {
            bind.listeners.push(Listener::default_http());
        }
        let mut names = HashSet::new();
        for l in &bind.listeners {
            if !names.insert(l.name.clone()) {
                diags.error(
                    &loc,
                    "binds",
                    format!(
                        "bind port {} has two listeners named `{}`; name them apart",
                        bind.port, l.name
                    ),
                );
            }
        }
        config.binds.push(bind);
    }

    // 4. Routes: unique names, listener scope, routes vs layers.
    let mut names: HashMap<String, Location> = HashMap::new();
    for raw in all.routes {
        let mut route = raw.route;
        if let Some(first) = names.get(&route.name) {
            diags.error(
                &route.location,
                &raw.path,
                format!("duplicate route name `{}` (first at {first})", route.name),
            );
            continue;
        }
        names.insert(route.name.clone(), route.location.clone());
        route.listener = raw
            .scope
            .map(|(port, listener)| ListenerRef { port, listener });
        if route.backends.is_empty() {
            config.layers.push(route);
        } else {
            config.routes.push(route);
        }
    }

    if let Some((l, loc)) = llm {
        add_llm(&mut config, l, &loc, &addrs, &names, diags);
    }

    check_trace_content(&config, diags);

    if !diags.errors.is_empty() {
        // Report in reading order: file load order, then line, then column.
        let order: HashMap<String, usize> = config
            .sources
            .iter()
            .enumerate()
            .map(|(i, p)| (p.display().to_string(), i))
            .collect();
        let mut errors = std::mem::take(&mut diags.errors);
        errors.sort_by_key(|e| {
            let file = order.get(&*e.location.file).copied().unwrap_or(usize::MAX);
            (file, e.location.line, e.location.column)
        });
        return Err(ConfigErrors(errors));
    }
    Ok(Loaded {
        config,
        warnings: std::mem::take(&mut diags.warnings),
    })
}

/// The bundled plugin that masks answers (`outputFilter`).
pub const OUTPUT_MASK: &str = "output-mask";

/// `config.tracing.content` without `allowUnmasked` needs every route to
/// mask its answers: `outputFilter` on the route, or on a policy layer that
/// can apply to it. A layer counts whatever its path matches (they are
/// resolved per request); the proxy checks again per request and records
/// no content where no masking ran.
///
/// `fields.add` expressions that read the prompt or the answer
/// (agentgateway's tracing examples) follow the same rule per request, but
/// are not refused: the operator wrote them, and where no masking runs they
/// are left out of the trace, which a warning names.
fn check_trace_content(config: &Config, diags: &mut Diags) {
    let Some(t) = config.global.tracing.as_ref() else {
        return;
    };
    let allow = t.content.as_ref().is_some_and(|c| c.allow_unmasked);
    let fields: Vec<&str> = t
        .fields
        .add
        .iter()
        .filter(|(_, e)| matches!(e, FieldExpr::Cel(c) if c.0.reads_content()))
        .map(|(k, _)| k.as_str())
        .collect();
    if allow || (t.content.is_none() && fields.is_empty()) {
        return;
    }
    let unmasked = unmasked_routes(config);
    if unmasked.is_empty() {
        return;
    }
    let names = unmasked
        .iter()
        .map(|n| format!("`{n}`"))
        .collect::<Vec<_>>()
        .join(", ");
    if let Some(c) = &t.content {
        diags.error(
            &c.location,
            "config.tracing.content",
            format!(
                "recording prompt and answer content needs output masking on every route; \
                 route(s) {names} run no `outputFilter` (output-mask): add one, or set \
                 `allowUnmasked: true` to record unmasked answers"
            ),
        );
    } else {
        let Some(loc) = &t.fields.location else {
            return;
        };
        diags.warn(
            loc,
            "config.tracing.fields.add",
            format!(
                "{} read(s) the prompt or the answer (`llm.prompt`, `llm.completion`), which \
                 are recorded only where output masking runs: route(s) {names} run no \
                 `outputFilter`, so their traces leave these fields out (set \
                 `config.tracing.content: {{enabled: true, allowUnmasked: true}}` to record \
                 unmasked text)",
                fields
                    .iter()
                    .map(|f| format!("`{f}`"))
                    .collect::<Vec<_>>()
                    .join(", ")
            ),
        );
    }
}

/// Routes no `outputFilter` can apply to: none on the route, none on a
/// policy layer of its listener.
fn unmasked_routes(config: &Config) -> Vec<&str> {
    let masks = |r: &Route| {
        r.policies
            .attachments
            .iter()
            .any(|a| a.plugin == OUTPUT_MASK)
    };
    config
        .routes
        .iter()
        .filter(|r| {
            !masks(r)
                && !config.layers.iter().any(|l| {
                    masks(l)
                        && (l.listener.is_none()
                            || r.listener.is_none()
                            || l.listener == r.listener)
                })
        })
        .map(|r| r.name.as_str())
        .collect()
}

/// `config.adminAddr` is the admin listener's address, agentgateway's
/// spelling of `admin.address`: both set and different is an error (which
/// one would an operator expect?); the same non-loopback rule applies.
fn apply_admin_addr(
    config: &mut Config,
    g: &GlobalConfig,
    address_set: bool,
    loc: &Location,
    diags: &mut Diags,
) {
    let Some(a) = g.admin_addr else {
        return;
    };
    if address_set && config.admin.address != a {
        diags.error(
            loc,
            "config.adminAddr",
            format!(
                "`config.adminAddr` ({a}) and `admin.address` ({}) disagree; set one of them",
                config.admin.address
            ),
        );
        return;
    }
    if !a.ip().is_loopback() && config.admin.token.is_none() {
        diags.error(
            loc,
            "config.adminAddr",
            format!(
                "admin address {a} is not loopback: set `admin.token` (e.g. `$SLUICE_ADMIN_TOKEN`) \
                 so the admin API is not open to the network"
            ),
        );
        return;
    }
    config.admin.address = a;
}

/// `llm:` joins the routing mode's pieces: a bind on its port with one
/// listener (`llm`), a route per model and a policy layer, all scoped to
/// that listener. Route names are `llm/<model>`, so they cannot clash with
/// another file's routes unless named so on purpose (reported).
fn add_llm(
    config: &mut Config,
    l: llm::LlmConfig,
    loc: &Location,
    addrs: &HashMap<(std::net::IpAddr, u16), Location>,
    names: &HashMap<String, Location>,
    diags: &mut Diags,
) {
    let address = std::net::IpAddr::from([127, 0, 0, 1]);
    if let Some(b) = config.binds.iter().find(|b| b.port == l.port) {
        let first = addrs
            .get(&(b.address, b.port))
            .map(|l| l.to_string())
            .unwrap_or_default();
        diags.error(
            loc,
            "llm.port",
            format!(
                "`llm.port` {} is also a bind's port (at {first}); the LLM mode needs its own port",
                l.port
            ),
        );
        return;
    }
    for r in l.models.iter().map(|m| &m.route).chain(&l.policies) {
        if let Some(first) = names.get(&r.name) {
            diags.error(
                &r.location,
                "llm",
                format!("route name `{}` is also used at {first}", r.name),
            );
        }
    }
    let mut listener = Listener::default_http();
    listener.name = llm::LLM_LISTENER.into();
    config.binds.push(Bind {
        port: l.port,
        address,
        listeners: vec![listener],
        limits: Default::default(),
    });
    config
        .routes
        .extend(l.models.iter().map(|m| m.route.clone()));
    if let Some(p) = &l.policies {
        config.layers.push(p.clone());
    }
    config.llm = Some(l);
}

/// `admin:`/`state:` may appear in several files: the later one wins, with a warning.
fn set_once<T>(
    diags: &mut Diags,
    slot: &mut Option<(T, Location)>,
    new: Option<(T, Location)>,
    what: &str,
) {
    if let Some((v, loc)) = new {
        if let Some((_, first)) = slot {
            diags.warn(
                &loc,
                what,
                format!("`{what}` is also set at {first}; this later value wins"),
            );
        }
        *slot = Some((v, loc));
    }
}

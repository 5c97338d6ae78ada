//! `sluice plugin check`: does this component work in the gateway?
//!
//! Checks, in order: it is a component (not a core module); it compiles; it
//! exports `sluice:policy/policy@0.1.0` and imports nothing the gateway does
//! not offer; `validate` accepts the config; `init` succeeds. Prints what an
//! operator and a plugin author want to know about it.

use std::path::Path;
use std::process::ExitCode;

use serde::Serialize;
use wasmtime::component::types::ComponentItem;

use super::load::{self, hook_names};

/// The contract this gateway speaks.
pub const CONTRACT: &str = "sluice:policy/policy@0.1.0";
const WORLD: &str = "sluice:policy/policy-plugin@0.1.0";

#[derive(Debug, Default, Serialize)]
pub struct CheckReport {
    pub file: String,
    pub size_bytes: usize,
    /// Milliseconds to compile (no cache) and link.
    pub compile_ms: u128,
    pub world: String,
    /// Exported interfaces and their functions.
    pub exports: Vec<(String, Vec<String>)>,
    pub imports: Vec<String>,
    /// `config FILE` or `{}`.
    pub config: String,
    pub validate: String,
    pub hooks: Vec<&'static str>,
    pub fetch_hosts: Vec<String>,
    pub ok: bool,
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub problems: Vec<String>,
}

fn item_names(engine: &wasmtime::Engine, item: &ComponentItem) -> Vec<String> {
    match item {
        ComponentItem::ComponentInstance(i) => {
            i.exports(engine).map(|(n, _)| n.to_owned()).collect()
        }
        _ => Vec::new(),
    }
}

/// A wrong export, explained: another contract version, or none at all.
fn contract_problem(exports: &[(String, Vec<String>)]) -> Option<String> {
    if exports.iter().any(|(n, _)| n == CONTRACT) {
        return None;
    }
    let other = exports
        .iter()
        .find(|(n, _)| n.starts_with("sluice:policy/policy@"));
    Some(match other {
        Some((n, _)) => format!(
            "it exports `{n}`, but this gateway speaks `{CONTRACT}`: rebuild it against this gateway's wit/"
        ),
        None => format!(
            "it does not export `{CONTRACT}`: it was not built for world `{WORLD}` (exports: {})",
            if exports.is_empty() {
                "none".to_string()
            } else {
                exports.iter().map(|(n, _)| n.as_str()).collect::<Vec<_>>().join(", ")
            }
        ),
    })
}

pub fn check(file: &Path, config: Option<&Path>, json: bool) -> anyhow::Result<ExitCode> {
    let mut rep = CheckReport {
        file: file.display().to_string(),
        config: config
            .map(|p| p.display().to_string())
            .unwrap_or_else(|| "{} (no --config given)".into()),
        ..CheckReport::default()
    };
    let bytes =
        std::fs::read(file).map_err(|e| anyhow::anyhow!("reading {}: {e}", file.display()))?;
    rep.size_bytes = bytes.len();
    if let Err(e) = load::kind_of(&bytes) {
        rep.problems.push(e);
        return finish(rep, json);
    }
    // Compile without the disk cache, so the time shown is the real one.
    let engine = crate::policy::PolicyRuntime::new(
        crate::policy::RuntimeOptions {
            disk_cache: false,
            ..Default::default()
        },
        std::sync::Arc::new(crate::policy::MemoryState::new()),
    )?;
    let started = std::time::Instant::now();
    let component = match wasmtime::component::Component::new(engine.engine(), &bytes) {
        Ok(c) => c,
        Err(e) => {
            rep.problems.push(format!("not a valid component: {e:#}"));
            return finish(rep, json);
        }
    };
    rep.compile_ms = started.elapsed().as_millis();
    let ty = component.component_type();
    let e = engine.engine();
    rep.exports = ty
        .exports(e)
        .map(|(n, item)| (n.to_owned(), item_names(e, &item.ty)))
        .collect();
    rep.imports = ty.imports(e).map(|(n, _)| n.to_owned()).collect();
    if let Some(p) = contract_problem(&rep.exports) {
        rep.problems.push(p);
        return finish(rep, json);
    }
    rep.world = WORLD.into();
    drop(component);

    // Link, validate and init through the runtime, as the gateway does.
    let cfg = load::config(config)?;
    let loaded = match load::load(file, false) {
        Ok(l) => l,
        Err(e) => {
            rep.problems.push(format!("{e:#}"));
            return finish(rep, json);
        }
    };
    match loaded.runtime.attach(&loaded.plugin, &cfg) {
        Ok(att) => {
            rep.validate = "ok".into();
            rep.hooks = hook_names(att.hooks());
            rep.fetch_hosts = att.fetch_hosts().to_vec();
        }
        Err(err) => {
            let msg = err.to_string();
            rep.validate = msg.clone();
            // Without a config, `{}` being refused says nothing about the
            // component: report it, but do not fail.
            if config.is_some() || !matches!(err, crate::policy::PolicyError::InvalidConfig { .. })
            {
                rep.problems.push(msg);
            }
        }
    }
    finish(rep, json)
}

fn finish(mut rep: CheckReport, json: bool) -> anyhow::Result<ExitCode> {
    rep.ok = rep.problems.is_empty();
    if json {
        println!("{}", serde_json::to_string_pretty(&rep)?);
    } else {
        print_text(&rep);
    }
    Ok(if rep.ok {
        ExitCode::SUCCESS
    } else {
        ExitCode::FAILURE
    })
}

fn print_text(r: &CheckReport) {
    println!("file: {}", r.file);
    println!(
        "size: {} bytes ({:.1} MiB)",
        r.size_bytes,
        r.size_bytes as f64 / (1 << 20) as f64
    );
    if r.compile_ms > 0 {
        println!(
            "compile: {} ms (no cache; load: {})",
            r.compile_ms,
            load_avg()
        );
    }
    if !r.world.is_empty() {
        println!("world: {} (ok)", r.world);
    }
    for (name, funcs) in &r.exports {
        println!("export: {name} ({})", funcs.join(", "));
    }
    for name in &r.imports {
        println!("import: {name}");
    }
    if !r.validate.is_empty() {
        println!("config: {}", r.config);
        println!("validate + init: {}", r.validate);
    }
    if !r.hooks.is_empty() {
        println!("hooks: {}", r.hooks.join(", "));
        println!(
            "fetch hosts: {}",
            if r.fetch_hosts.is_empty() {
                "none".to_string()
            } else {
                r.fetch_hosts.join(", ")
            }
        );
    }
    for p in &r.problems {
        println!("error: {p}");
    }
    println!("{}", if r.ok { "ok" } else { "FAILED" });
}

fn load_avg() -> String {
    std::fs::read_to_string("/proc/loadavg")
        .map(|s| s.split_whitespace().take(3).collect::<Vec<_>>().join(" "))
        .unwrap_or_else(|_| "?".into())
}

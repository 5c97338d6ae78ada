//! Glue used by [`crate::export_policy!`]; not part of the public API.

use std::cell::RefCell;
use std::thread::LocalKey;

use crate::{InitResult, Policy};

/// Parse a JSON config, naming the offending key on error.
pub fn parse_config<P: Policy>(config: &str) -> Result<P::Config, String> {
    let text = if config.trim().is_empty() {
        "{}"
    } else {
        config
    };
    let de = &mut serde_json::Deserializer::from_str(text);
    serde_path_to_error::deserialize(de).map_err(|e| {
        let path = e.path().to_string();
        let inner = e.into_inner();
        if path.is_empty() || path == "." {
            format!("invalid config: {inner}")
        } else {
            format!("invalid config at `{path}`: {inner}")
        }
    })
}

pub fn validate<P: Policy>(config: &str) -> Result<(), String> {
    let cfg = parse_config::<P>(config)?;
    P::validate(&cfg)
}

/// Route panic messages to the host log (stderr goes nowhere), so a trap is
/// reported with its cause, tagged with plugin and request id.
#[cfg(target_arch = "wasm32")]
fn install_panic_hook() {
    static ONCE: std::sync::Once = std::sync::Once::new();
    ONCE.call_once(|| {
        std::panic::set_hook(Box::new(|info| {
            crate::host::error(&format!("panic: {info}"));
        }))
    });
}
#[cfg(not(target_arch = "wasm32"))]
fn install_panic_hook() {}

pub fn init<P: Policy>(
    cell: &'static LocalKey<RefCell<Option<P>>>,
    config: &str,
) -> Result<InitResult, String> {
    install_panic_hook();
    let cfg = parse_config::<P>(config)?;
    P::validate(&cfg)?;
    let policy = P::new(cfg)?;
    if let Some(names) = policy.reads_headers() {
        crate::host::read_headers(&names);
    }
    let result = InitResult {
        hooks: policy.hooks(),
        fetch_hosts: policy.fetch_hosts(),
    };
    cell.with(|c| *c.borrow_mut() = Some(policy));
    Ok(result)
}

pub fn with<P: Policy, R>(
    cell: &'static LocalKey<RefCell<Option<P>>>,
    f: impl FnOnce(&P) -> R,
) -> R {
    cell.with(|c| {
        let guard = c.borrow();
        // The host always calls `init` first; a hook before it is a host bug,
        // and trapping is the safe answer.
        let policy = guard.as_ref().expect("sluice: hook called before init");
        f(policy)
    })
}

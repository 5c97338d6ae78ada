//! Loading a component file and a plugin config for the workbench.

use std::path::Path;
use std::sync::Arc;

use anyhow::{bail, Context};

use super::record::{Recorder, RecordingState};
use crate::policy::{FailureMode, Limits, Plugin, PolicyError, PolicyRuntime, RuntimeOptions};

pub(crate) struct Loaded {
    pub runtime: PolicyRuntime,
    pub plugin: Arc<Plugin>,
    pub name: String,
    pub recorder: Recorder,
}

/// What the first bytes say the file is.
pub(crate) fn kind_of(bytes: &[u8]) -> Result<(), String> {
    match bytes.get(..8) {
        Some([0, b'a', b's', b'm', 1, 0, 0, 0]) => Err(
            "this is a core WebAssembly module, not a component: build for wasm32-wasip2, \
             or wrap it with `wasm-tools component new` (and the WASI adapter)"
                .into(),
        ),
        Some([0, b'a', b's', b'm', _, _, 1, 0]) => Ok(()),
        _ => Err("not a WebAssembly file (no `\\0asm` header)".into()),
    }
}

/// Read and compile `file`; `disk_cache`: use the gateway's compile cache.
pub(crate) fn load(file: &Path, disk_cache: bool) -> anyhow::Result<Loaded> {
    let bytes = std::fs::read(file).with_context(|| format!("reading {}", file.display()))?;
    if let Err(e) = kind_of(&bytes) {
        bail!("{}: {e}", file.display());
    }
    let name = file
        .file_stem()
        .map(|s| s.to_string_lossy().into_owned())
        .unwrap_or_else(|| "plugin".into());
    let recorder = Recorder::global();
    let state = Arc::new(RecordingState::new(recorder.clone()));
    let runtime = PolicyRuntime::new(
        RuntimeOptions {
            disk_cache,
            ..RuntimeOptions::default()
        },
        state,
    )?;
    let plugin = match runtime.load_plugin(&name, &bytes, Limits::default(), FailureMode::Closed) {
        Ok(p) => p,
        Err(e @ PolicyError::Contract { .. }) => {
            bail!("{}: {e}", file.display())
        }
        Err(e) => bail!("{}: {e}", file.display()),
    };
    Ok(Loaded {
        runtime,
        plugin,
        name,
        recorder,
    })
}

/// The plugin config from `--config FILE`, or `{}`.
pub(crate) fn config(path: Option<&Path>) -> anyhow::Result<serde_json::Value> {
    match path {
        None => Ok(serde_json::json!({})),
        Some(p) => crate::config::load_plugin_config(p, &|name| std::env::var(name).ok())
            .map_err(|e| anyhow::anyhow!("{e}")),
    }
}

/// Hook names as in the WIT `hooks` flags.
pub(crate) fn hook_names(h: crate::policy::Hooks) -> Vec<&'static str> {
    use crate::policy::Hooks;
    [
        (Hooks::REQUEST_HEADERS, "request-headers"),
        (Hooks::REQUEST_BODY, "request-body"),
        (Hooks::RESPONSE_HEADERS, "response-headers"),
        (Hooks::RESPONSE_BODY, "response-body"),
        (Hooks::RESPONSE_EVENTS, "response-events"),
        (Hooks::COMPLETE, "complete"),
    ]
    .into_iter()
    .filter(|(f, _)| h.contains(*f))
    .map(|(_, n)| n)
    .collect()
}

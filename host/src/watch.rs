//! Watching the config files and declared plugin files, to hot-reload them.
//!
//! Why parent directories: editors and build tools often write a new file
//! and rename it over the old one, which replaces the inode a file watch
//! would follow. Watching the directory and matching the file's path sees
//! both in-place writes and rename-overs. Events are debounced (a build or
//! a save is several events), and a half-written file at worst produces a
//! refused reload, after which the next event retries: the old version keeps
//! serving meanwhile.

use crate::app::Gateway;
use notify::{EventKind, RecursiveMode, Watcher};
use std::collections::HashSet;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;

/// Quiet time after the last event before reloading.
pub const DEBOUNCE: Duration = Duration::from_millis(50);

/// `p` as the watcher reports it: absolute, with its directory canonical.
fn normal(p: &Path) -> PathBuf {
    let abs = std::path::absolute(p).unwrap_or_else(|_| p.to_path_buf());
    match (abs.parent(), abs.file_name()) {
        (Some(dir), Some(file)) => std::fs::canonicalize(dir)
            .unwrap_or_else(|_| dir.to_path_buf())
            .join(file),
        _ => abs,
    }
}

/// What is watched right now.
struct Targets {
    configs: Vec<PathBuf>,
    plugins: Vec<(String, PathBuf)>,
}

async fn targets(gw: &Gateway) -> Targets {
    let (configs, plugins) = gw.hot.watched(gw).await;
    Targets {
        configs: configs.iter().map(|p| normal(p)).collect(),
        plugins: plugins.into_iter().map(|(n, p)| (n, normal(&p))).collect(),
    }
}

/// Watch exactly the parent directories of `t`'s files.
fn rewatch(w: &mut impl Watcher, dirs: &mut HashSet<PathBuf>, t: &Targets) {
    let want: HashSet<PathBuf> = t
        .configs
        .iter()
        .chain(t.plugins.iter().map(|(_, p)| p))
        .filter_map(|p| p.parent().map(Path::to_path_buf))
        .collect();
    for d in dirs.difference(&want) {
        let _ = w.unwatch(d);
    }
    for d in want.difference(dirs) {
        if let Err(e) = w.watch(d, RecursiveMode::NonRecursive) {
            tracing::warn!(dir = %d.display(), error = %e, "cannot watch directory");
        }
    }
    *dirs = want;
}

/// Start watching; reloads run through [`crate::reload::HotSwap`] like the
/// admin endpoint's. A watcher that cannot start is logged, not fatal.
pub fn spawn(gw: Arc<Gateway>) {
    let (tx, mut rx) = tokio::sync::mpsc::unbounded_channel::<PathBuf>();
    let watcher =
        notify::recommended_watcher(move |res: notify::Result<notify::Event>| match res {
            Ok(ev) => {
                if matches!(
                    ev.kind,
                    EventKind::Create(_) | EventKind::Modify(_) | EventKind::Remove(_)
                ) {
                    for p in ev.paths {
                        let _ = tx.send(p);
                    }
                }
            }
            Err(e) => tracing::warn!(error = %e, "file watch error"),
        });
    let mut watcher = match watcher {
        Ok(w) => w,
        Err(e) => {
            tracing::warn!(error = %e, "cannot start the file watcher; reload with SIGHUP or the admin endpoint");
            return;
        }
    };
    tokio::spawn(async move {
        let mut dirs = HashSet::new();
        let mut t = targets(&gw).await;
        rewatch(&mut watcher, &mut dirs, &t);
        while let Some(first) = rx.recv().await {
            let mut changed = HashSet::from([normal(&first)]);
            loop {
                match tokio::time::timeout(DEBOUNCE, rx.recv()).await {
                    Ok(Some(p)) => {
                        changed.insert(normal(&p));
                    }
                    Ok(None) => return,
                    Err(_) => break,
                }
            }
            if t.configs.iter().any(|c| changed.contains(c)) {
                tracing::info!("config file changed: reloading the config");
                gw.hot.reload_config(&gw).await;
            } else {
                for (name, p) in &t.plugins {
                    if changed.contains(p) {
                        tracing::info!(plugin = %name, path = %p.display(), "plugin file changed: reloading");
                        let _ = gw.hot.reload_plugin(&gw, name, None).await;
                    }
                }
            }
            t = targets(&gw).await;
            rewatch(&mut watcher, &mut dirs, &t);
        }
    });
}

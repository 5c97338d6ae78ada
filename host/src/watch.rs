//! Watching the config files and declared plugin files, to hot-reload them.
//!
//! Why parent directories: editors and build tools often write a new file
//! and rename it over the old one, which replaces the inode a file watch
//! would follow. Watching the directory and matching the file's path sees
//! both in-place writes and rename-overs.
//!
//! Why events are filtered *before* debouncing: a watched directory often
//! holds files that change all the time (the gateway's own log, an access
//! log, a build's scratch files). If those kept the debounce open, a busy
//! neighbour would postpone every reload for as long as it stays busy. Only
//! events for the watched paths reach the debouncer.
//!
//! Why the debounce has an upper bound: a build writes a file in several
//! steps and the reload should wait for the last one, but a file that keeps
//! changing (a slow build, a test rewriting it in a loop) must still reload
//! within [`MAX_DELAY`] of its first event. A half-written file at worst
//! produces a refused reload, after which the next event retries: the old
//! version keeps serving meanwhile.

use crate::reload::HotSwap;
use notify::{EventKind, RecursiveMode, Watcher};
use parking_lot::RwLock;
use std::collections::HashSet;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;
use tokio::time::Instant;

/// Quiet time after the last event before reloading.
pub const DEBOUNCE: Duration = Duration::from_millis(50);

/// Longest wait between a watched file's first event and its reload, however
/// often it keeps changing.
pub const MAX_DELAY: Duration = Duration::from_secs(1);

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

impl Targets {
    /// Every watched file, as the watcher reports paths.
    fn files(&self) -> HashSet<PathBuf> {
        self.configs
            .iter()
            .chain(self.plugins.iter().map(|(_, p)| p))
            .cloned()
            .collect()
    }
}

async fn targets(hot: &HotSwap) -> Targets {
    let (configs, plugins) = hot.watched().await;
    Targets {
        configs: configs.iter().map(|p| normal(p)).collect(),
        plugins: plugins.into_iter().map(|(n, p)| (n, normal(&p))).collect(),
    }
}

/// Watch exactly the parent directories of `t`'s files, and let exactly
/// `t`'s files through the event filter.
fn rewatch(
    w: &mut impl Watcher,
    dirs: &mut HashSet<PathBuf>,
    files: &RwLock<HashSet<PathBuf>>,
    t: &Targets,
) {
    let wanted_files = t.files();
    let want: HashSet<PathBuf> = wanted_files
        .iter()
        .filter_map(|p| p.parent().map(Path::to_path_buf))
        .collect();
    *files.write() = wanted_files;
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

/// Collects the watched paths that change until they have been quiet for
/// [`DEBOUNCE`], or until [`MAX_DELAY`] after `first`, whichever is sooner.
/// `None` when the watcher has gone away.
async fn settle(
    first: PathBuf,
    rx: &mut tokio::sync::mpsc::UnboundedReceiver<PathBuf>,
) -> Option<(HashSet<PathBuf>, Duration)> {
    let started = Instant::now();
    let deadline = started + MAX_DELAY;
    tracing::info!(path = %first.display(), "watched file changed; reloading once writes settle");
    let mut changed = HashSet::from([first]);
    loop {
        let quiet_until = (Instant::now() + DEBOUNCE).min(deadline);
        match tokio::time::timeout_at(quiet_until, rx.recv()).await {
            Ok(Some(p)) => {
                changed.insert(p);
            }
            Ok(None) => return None,
            Err(_) => break,
        }
    }
    let waited = started.elapsed();
    if waited >= MAX_DELAY {
        tracing::info!(
            waited_ms = waited.as_millis() as u64,
            "watched file still changing; reloading anyway after the longest wait"
        );
    }
    Some((changed, waited))
}

/// Start watching; reloads run through [`crate::reload::HotSwap`] like the
/// admin endpoint's. A watcher that cannot start is logged, not fatal.
///
/// The first watches are in place when this returns, so a file written
/// right after the gateway says it is ready is seen (a watch added later by
/// the spawned task missed such a write on a busy machine, and the new
/// version never served).
pub async fn spawn(hot: Arc<HotSwap>) {
    let (tx, mut rx) = tokio::sync::mpsc::unbounded_channel::<PathBuf>();
    let files: Arc<RwLock<HashSet<PathBuf>>> = Arc::default();
    let filter = files.clone();
    let watcher =
        notify::recommended_watcher(move |res: notify::Result<notify::Event>| match res {
            Ok(ev) => {
                if matches!(
                    ev.kind,
                    EventKind::Create(_) | EventKind::Modify(_) | EventKind::Remove(_)
                ) {
                    // Paths arrive as <watched dir>/<name>, and the watched
                    // dirs are canonical, so a set lookup is enough: no
                    // syscalls for the events of busy neighbours.
                    let watched = filter.read();
                    for p in ev.paths {
                        if watched.contains(&p) {
                            let _ = tx.send(p);
                        }
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
    let mut dirs = HashSet::new();
    let mut t = targets(&hot).await;
    rewatch(&mut watcher, &mut dirs, &files, &t);
    tokio::spawn(async move {
        while let Some(first) = rx.recv().await {
            let Some((changed, waited)) = settle(first, &mut rx).await else {
                return;
            };
            let waited_ms = waited.as_millis() as u64;
            if t.configs.iter().any(|c| changed.contains(c)) {
                tracing::info!(waited_ms, "config file changed: reloading the config");
                hot.reload_config().await;
            } else {
                for (name, p) in &t.plugins {
                    if changed.contains(p) {
                        tracing::info!(plugin = %name, path = %p.display(), waited_ms, "plugin file changed: reloading");
                        let _ = hot.reload_plugin(name, None).await;
                    }
                }
            }
            t = targets(&hot).await;
            rewatch(&mut watcher, &mut dirs, &files, &t);
        }
    });
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn a_steady_stream_of_events_still_settles_after_the_longest_wait() {
        let (tx, mut rx) = tokio::sync::mpsc::unbounded_channel();
        let p = PathBuf::from("/w/plugin.wasm");
        let feeder = {
            let p = p.clone();
            tokio::spawn(async move {
                // An event every 5 ms, far longer than MAX_DELAY.
                loop {
                    if tx.send(p.clone()).is_err() {
                        return;
                    }
                    tokio::time::sleep(Duration::from_millis(5)).await;
                }
            })
        };
        // Without the upper bound this never returns; 20 s tells the two apart.
        let (changed, waited) =
            tokio::time::timeout(Duration::from_secs(20), settle(p.clone(), &mut rx))
                .await
                .expect("the debounce never settled under a steady stream of events")
                .unwrap();
        assert!(changed.contains(&p));
        assert!(waited >= MAX_DELAY, "{waited:?}");
        feeder.abort();
    }

    #[tokio::test]
    async fn a_quiet_file_settles_after_the_debounce() {
        let (tx, mut rx) = tokio::sync::mpsc::unbounded_channel();
        let p = PathBuf::from("/w/sluice.yaml");
        tx.send(p.clone()).unwrap();
        let (changed, waited) = settle(p.clone(), &mut rx).await.unwrap();
        assert_eq!(changed.len(), 1);
        assert!(waited >= DEBOUNCE, "{waited:?}");
        drop(tx);
    }
}

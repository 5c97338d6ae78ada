//! Saving the memory ledger's settled spend to `<state.memory.path>/budgets.json`,
//! so one gateway without Redis keeps its spend across a restart.
//!
//! Written whole, to a temporary file renamed over the old one, so a crash
//! mid-write leaves the previous file intact. Saved at most once a second
//! while spend changes, and at shutdown: a crash loses at most the last
//! second of settled spend.

use std::collections::HashMap;
use std::path::{Path, PathBuf};

use serde::{Deserialize, Serialize};

/// The file's name under `state.memory.path`.
pub const FILE: &str = "budgets.json";

#[derive(Debug, Default, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
struct Saved {
    version: u32,
    budgets: HashMap<String, SavedBudget>,
}

#[derive(Debug, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
struct SavedBudget {
    settled: u64,
    resets_at_ms: u64,
}

/// Why the file could not be read or written.
#[derive(Debug, thiserror::Error)]
pub enum PersistError {
    #[error("{path}: {source}")]
    Io {
        path: PathBuf,
        source: std::io::Error,
    },
    #[error("{path}: not a budgets file: {source}")]
    Format {
        path: PathBuf,
        source: serde_json::Error,
    },
}

/// The saved spend in `dir`; empty when there is no file yet.
pub fn load(dir: &Path) -> Result<HashMap<String, (u64, u64)>, PersistError> {
    let path = dir.join(FILE);
    let text = match std::fs::read(&path) {
        Ok(t) => t,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(HashMap::new()),
        Err(source) => return Err(PersistError::Io { path, source }),
    };
    let saved: Saved =
        serde_json::from_slice(&text).map_err(|source| PersistError::Format { path, source })?;
    Ok(saved
        .budgets
        .into_iter()
        .map(|(k, b)| (k, (b.settled, b.resets_at_ms)))
        .collect())
}

/// Replace the file in `dir` with `spend`, atomically.
pub fn save(dir: &Path, spend: HashMap<String, (u64, u64)>) -> Result<(), PersistError> {
    let io = |path: &Path| {
        let path = path.to_owned();
        move |source| PersistError::Io { path, source }
    };
    std::fs::create_dir_all(dir).map_err(io(dir))?;
    let saved = Saved {
        version: 1,
        budgets: spend
            .into_iter()
            .map(|(k, (settled, resets_at_ms))| {
                (
                    k,
                    SavedBudget {
                        settled,
                        resets_at_ms,
                    },
                )
            })
            .collect(),
    };
    let text = serde_json::to_vec(&saved).expect("plain data serializes");
    let path = dir.join(FILE);
    let tmp = dir.join(format!(".{FILE}.{}.tmp", std::process::id()));
    std::fs::write(&tmp, text).map_err(io(&tmp))?;
    std::fs::rename(&tmp, &path).map_err(io(&path))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn round_trip_and_missing_file() {
        let dir = std::env::temp_dir().join(format!("sluice-budgets-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&dir);
        assert!(load(&dir).unwrap().is_empty());
        let spend = HashMap::from([("budget:key:a".to_owned(), (42, 7))]);
        save(&dir, spend.clone()).unwrap();
        assert_eq!(load(&dir).unwrap(), spend);
        std::fs::write(dir.join(FILE), b"nope").unwrap();
        assert!(matches!(load(&dir), Err(PersistError::Format { .. })));
        std::fs::remove_dir_all(&dir).unwrap();
    }
}

//! `keys.json` under `state.memory.path`: the runtime keys of a gateway
//! without Redis, so they survive a restart. Written whole, atomically
//! (a temporary file in the same directory, synced, then renamed over).

use std::io::Write;
use std::path::{Path, PathBuf};

use super::record::KeyRecord;
use super::KeyError;

/// The file's name inside `state.memory.path`.
pub const FILE: &str = "keys.json";

pub fn path_in(dir: &Path) -> PathBuf {
    dir.join(FILE)
}

/// The records in `file`; none when it does not exist yet.
pub fn load(file: &Path) -> Result<Vec<KeyRecord>, KeyError> {
    match std::fs::read(file) {
        Ok(bytes) => serde_json::from_slice(&bytes)
            .map_err(|e| KeyError::Corrupt(format!("{}: {e}", file.display()))),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(Vec::new()),
        Err(e) => Err(KeyError::Persist(format!("{}: {e}", file.display()))),
    }
}

pub fn save(file: &Path, records: &[KeyRecord]) -> Result<(), KeyError> {
    let err = |e: std::io::Error| KeyError::Persist(format!("{}: {e}", file.display()));
    let dir = file.parent().unwrap_or(Path::new("."));
    std::fs::create_dir_all(dir).map_err(err)?;
    let tmp = dir.join(format!(".{FILE}.{}.tmp", std::process::id()));
    let body = serde_json::to_vec_pretty(records).map_err(|e| KeyError::Corrupt(e.to_string()))?;
    {
        let mut f = std::fs::OpenOptions::new()
            .write(true)
            .create(true)
            .truncate(true)
            .open(&tmp)
            .map_err(err)?;
        restrict(&f);
        f.write_all(&body).map_err(err)?;
        f.sync_all().map_err(err)?;
    }
    std::fs::rename(&tmp, file).map_err(err)?;
    // The rename itself must reach the disk before the answer says "saved".
    if let Ok(d) = std::fs::File::open(dir) {
        let _ = d.sync_all();
    }
    Ok(())
}

/// Owner-only: the file holds key digests and metadata.
fn restrict(f: &std::fs::File) {
    use std::os::unix::fs::PermissionsExt;
    let _ = f.set_permissions(std::fs::Permissions::from_mode(0o600));
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn round_trip_and_missing_file() {
        let dir = tempfile::tempdir().unwrap();
        let file = path_in(&dir.path().join("nested"));
        assert!(load(&file).unwrap().is_empty());
        let r = KeyRecord {
            id: "key_a".into(),
            hash: format!("sha256:{}", "0".repeat(64)),
            metadata: Default::default(),
            allowed_models: Some(vec!["gpt-*".into()]),
            budgets: vec![],
            created: 1,
            rotated: None,
            revoked: Some(2),
        };
        save(&file, std::slice::from_ref(&r)).unwrap();
        assert_eq!(load(&file).unwrap(), vec![r]);
        // No temporary file is left behind.
        let names: Vec<_> = std::fs::read_dir(file.parent().unwrap())
            .unwrap()
            .map(|e| e.unwrap().file_name())
            .collect();
        assert_eq!(names, vec![std::ffi::OsString::from(FILE)]);
        std::fs::write(&file, b"{not json").unwrap();
        assert!(matches!(load(&file), Err(KeyError::Corrupt(_))));
    }
}

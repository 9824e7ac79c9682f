//! Small files written durably, and directory syncs, so a crash never leaves a half-written
//! signature or a rename that did not happen.

use std::fs::File;
use std::io::{self, Write};
use std::path::{Path, PathBuf};

use crate::VaultError;

/// Writes a small file durably: content to `<path>.tmp`, fsync, rename, directory fsync.
pub fn write_synced(path: &Path, content: &[u8]) -> Result<(), VaultError> {
    let mut temporary = path.as_os_str().to_owned();
    temporary.push(".tmp");
    let temporary = PathBuf::from(temporary);
    let write = || -> io::Result<()> {
        let mut file = File::create(&temporary)?;
        file.write_all(content)?;
        file.sync_all()?;
        std::fs::rename(&temporary, path)
    };
    write().map_err(|source| {
        let _ = std::fs::remove_file(&temporary);
        VaultError::Write {
            path: path.to_path_buf(),
            source,
        }
    })?;
    sync_directory(path);
    Ok(())
}

/// fsyncs the directory holding `path` (after a create or rename in it).
pub fn sync_directory(path: &Path) {
    let directory = path
        .parent()
        .filter(|d| !d.as_os_str().is_empty())
        .unwrap_or(Path::new("."));
    if let Ok(directory) = File::open(directory) {
        let _ = directory.sync_all();
    }
}

/// `<path><suffix>`, e.g. `call.mp4.age.partial`.
pub fn with_suffix(path: &Path, suffix: &str) -> PathBuf {
    let mut name = path.as_os_str().to_owned();
    name.push(suffix);
    PathBuf::from(name)
}

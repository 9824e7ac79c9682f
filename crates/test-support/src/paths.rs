//! Where things are: the workspace, its media, the build, scratch directories.

use std::path::{Path, PathBuf};

/// The workspace root.
pub fn workspace() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .parent()
        .and_then(Path::parent)
        .expect("crates/test-support is two levels below the workspace")
        .to_path_buf()
}

/// A real media file fetched by `scripts/fetch-media.sh`.
pub fn media(name: &str) -> PathBuf {
    let path = workspace().join("media").join(name);
    assert!(
        path.exists(),
        "{} is missing: run scripts/fetch-media.sh",
        path.display()
    );
    path
}

/// `target/<profile>/` of the running test binary.
pub fn target_dir() -> PathBuf {
    let exe = std::env::current_exe().unwrap();
    exe.parent().unwrap().parent().unwrap().to_path_buf()
}

/// A built binary or example in the target directory (`cargo build --bins --examples`).
pub fn built(relative: &str) -> PathBuf {
    let path = target_dir().join(relative);
    assert!(
        path.exists(),
        "{} is missing: run `cargo build --workspace --bins --examples`",
        path.display()
    );
    path
}

/// An empty directory for one test, unique to this process.
pub fn scratch(name: &str) -> PathBuf {
    scratch_in(&std::env::temp_dir(), name).unwrap()
}

/// An empty directory for one test under `base`, unique to this process.
pub fn scratch_in(base: &Path, name: &str) -> std::io::Result<PathBuf> {
    let dir = base.join(format!("gst-vcc-{name}-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir)?;
    Ok(dir)
}

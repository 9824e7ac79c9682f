//! Any bytes given to the header parser, the chunk reader and chunk-by-chunk recovery (what
//! `encryptedfilesrc` and `vcc-vault recover` run on damaged files) must give an error or
//! data, never a panic.
//!
//!   cd crates/vault/fuzz && cargo fuzz run open_and_recover
#![no_main]

use std::io::Read;
use std::path::{Path, PathBuf};
use std::sync::OnceLock;

use libfuzzer_sys::fuzz_target;
use vault::keys::{self, Unlock};
use vault::read;

/// An X25519 identity file (not a passphrase: scrypt stanzas would make each run slow).
fn identity() -> &'static PathBuf {
    static PATH: OnceLock<PathBuf> = OnceLock::new();
    PATH.get_or_init(|| {
        let (text, _) = keys::generate_identity();
        let path = std::env::temp_dir().join(format!("fuzz-identity-{}.txt", std::process::id()));
        std::fs::write(&path, text).unwrap();
        path
    })
}

fuzz_target!(|data: &[u8]| {
    let unlock = Unlock::IdentityFile(identity().clone());
    if let Ok(mut reader) = read::open_reader(data, Path::new("fuzz.age"), &unlock) {
        let mut plain = Vec::new();
        let _ = reader.read_to_end(&mut plain);
    }
    let path = std::env::temp_dir().join(format!("fuzz-input-{}.age", std::process::id()));
    if std::fs::write(&path, data).is_ok() {
        let _ = read::recover(&path, &unlock, &mut std::io::sink(), None);
    }
});

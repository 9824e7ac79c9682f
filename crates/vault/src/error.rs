//! What can go wrong, in words that say what to do.

use std::io;
use std::path::PathBuf;

#[derive(Debug, thiserror::Error)]
pub enum VaultError {
    #[error("cannot read {what} '{path}': {source}")]
    Read {
        what: &'static str,
        path: PathBuf,
        source: io::Error,
    },
    #[error("{0}")]
    BadRecipient(String),
    #[error("no recipients: set recipients or recipients-file (or a passphrase, for tests only)")]
    NoRecipients,
    #[error("identity file '{path}' holds no usable age identity: {message}")]
    BadIdentity { path: PathBuf, message: String },
    #[error("'{path}' is not an age file or its header is damaged: {message}")]
    BadHeader { path: PathBuf, message: String },
    #[error("'{path}' has been tampered with: its header MAC does not match")]
    HeaderTampered { path: PathBuf },
    #[error(
        "wrong key: no identity in '{identity}' can decrypt '{path}' (it was encrypted to \
         other recipients, or its header was modified)"
    )]
    WrongKey { path: PathBuf, identity: String },
    #[error("cannot decrypt '{path}': {message}")]
    Decrypt { path: PathBuf, message: String },
    #[error(
        "'{path}' is damaged at plaintext byte {offset} (chunk {chunk}): {kind}; \
         the {offset} bytes before it are intact"
    )]
    Damaged {
        path: PathBuf,
        offset: u64,
        chunk: u64,
        kind: Damage,
    },
    #[error("signing key '{path}': {message}")]
    SigningKey { path: PathBuf, message: String },
    #[error("signature check of '{path}' failed: {message}")]
    Signature { path: PathBuf, message: String },
    #[error("key vault '{path}': {message}")]
    KeyVault { path: PathBuf, message: String },
    #[error(
        "'{path}' is encrypted to customer key {key_id}: give the key vault that holds it \
         (--key-vault)"
    )]
    NeedsKeyVault { path: PathBuf, key_id: String },
    #[error(
        "key erased: the customer key {key_id} of '{path}' was destroyed on {erased_utc} \
         (crypto-shredding); the recording can no longer be decrypted by anyone"
    )]
    KeyErased {
        path: PathBuf,
        key_id: String,
        erased_utc: String,
    },
    #[error("the customer key {key_id} of '{path}' is not in the key vault '{vault}'")]
    KeyUnknown {
        path: PathBuf,
        key_id: String,
        vault: PathBuf,
    },
    #[error("write to '{path}' failed: {source}")]
    Write { path: PathBuf, source: io::Error },
}

/// What is wrong at a damaged place of a file.
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize)]
#[serde(rename_all = "kebab-case")]
pub enum Damage {
    /// The file ends before its final chunk (crash, copy cut short, truncation).
    Truncated,
    /// The damaged chunk is the file's physical last one: the file was cut inside it (what a
    /// crash leaves) or that chunk was modified; authentication cannot tell which.
    TruncatedOrTamperedEnd,
    /// A chunk fails authentication (modified bytes).
    Tampered,
}

impl std::fmt::Display for Damage {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(match self {
            Damage::Truncated => "the file is truncated",
            Damage::TruncatedOrTamperedEnd => {
                "the last chunk of the file fails authentication (truncated, e.g. by a crash, or modified)"
            }
            Damage::Tampered => "a chunk fails authentication (modified or corrupted bytes)",
        })
    }
}

//! What happens to gst-vcc recordings after the call, free of GStreamer.
//!
//! - [`recording`]: a finished recording on disk (ciphertext, manifest, their signatures),
//!   verified before anything leaves the machine, and its place in a bucket;
//! - [`policy`]: the retention policy (TOML) mapping tenant/queue/direction to a period and
//!   an S3 Object Lock mode;
//! - [`store`]: the S3 connection (standard AWS configuration: `AWS_ENDPOINT_URL`,
//!   `AWS_ACCESS_KEY_ID`, profiles, with overrides);
//! - [`archive`]: upload with Content-MD5 per part, read back and compare before the local
//!   copy may go, resume after a crash;
//! - [`calls`]: an archived call: find it, fetch its manifests, legal hold, deletion;
//! - [`index`]: the SQLite search index of signed manifests;
//! - [`audit`]: the signed, hash-chained audit log.
//!
//! See README.md for the guarantees, the threat model and what is not done yet.

pub mod archive;
pub mod audit;
pub mod calls;
pub mod index;
pub mod policy;
pub mod recording;
pub mod store;

use std::path::PathBuf;

#[derive(Debug, thiserror::Error)]
pub enum LifecycleError {
    #[error(transparent)]
    Vault(#[from] vault::VaultError),
    #[error("cannot read {what} '{path}': {source}")]
    Io {
        what: &'static str,
        path: PathBuf,
        source: std::io::Error,
    },
    #[error("policy '{path}': {message}")]
    Policy { path: PathBuf, message: String },
    #[error("manifest '{path}': {message}")]
    Manifest { path: PathBuf, message: String },
    #[error("{0}")]
    Key(String),
    /// The object store refused or failed a request; `what` names the request and object.
    #[error("{what}: {message}")]
    Store { what: String, message: String },
    /// The object in the bucket is not what was uploaded.
    #[error("{key} in bucket {bucket}: {message}")]
    Mismatch {
        bucket: String,
        key: String,
        message: String,
    },
}

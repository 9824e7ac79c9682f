//! The recording vault format, free of GStreamer.
//!
//! Recordings are standard **age** files (X25519 recipients; scrypt passphrase only for
//! tests/dev), so `age -d -i key.txt f.age` decrypts them without our code; detached
//! signatures are standard **minisign** signatures (`minisign -V -p vcc.pub -m f.age`) whose
//! trusted comment binds the file to its name, call, content hash and recipients.
//!
//! - [`writer`]: [`writer::AgeWriter`] writes a recording so that after every checkpoint the
//!   file on disk is a complete age file (the chunk being filled is written as the final one
//!   and rewritten when it grows): a crash loses at most the time since the last checkpoint,
//!   whatever the bitrate;
//! - [`read`]: decryption, seeking, and recovery of damaged or cut files chunk by chunk,
//!   reporting the holes;
//! - [`keys`]: recipients, identities and signing keys, with errors that never echo key
//!   material;
//! - [`sign`]: signatures and what they bind;
//! - [`durable`]: small files written durably, directory syncs;
//! - [`key_vault`]: per-customer keys kept encrypted to the organisation, destroyed to erase
//!   a customer's recordings from write-once archives (crypto-shredding).

pub mod checkpoint;
pub mod durable;
pub mod error;
mod header;
pub mod key_vault;
pub mod keys;
pub mod read;
pub mod sign;
pub mod writer;

pub use error::{Damage, VaultError};

/// age encrypts the payload in chunks of this many plaintext bytes (plus a 16-byte tag).
pub const CHUNK_SIZE: u64 = 64 * 1024;
/// Bytes of one full encrypted chunk.
pub const ENCRYPTED_CHUNK_SIZE: u64 = CHUNK_SIZE + 16;

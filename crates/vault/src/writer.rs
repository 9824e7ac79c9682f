//! Writing a recording that survives a crash at any bitrate.
//!
//! age encrypts in 64 KiB chunks and marks the last one; the `age` crate's writer holds the
//! chunk being filled in memory until it is full, so an audio-only recording (6 KB/s of Opus)
//! kept up to 10 s of media out of the file, and a crash lost all of it. [`AgeWriter`] writes
//! the same standard format, but at every [`AgeWriter::checkpoint`] it also writes the chunk
//! being filled *as the final chunk* and fsyncs: the file on disk is then a complete age
//! file (`age -d` decrypts it) holding everything up to the checkpoint. When more data comes,
//! that chunk is rewritten in place, longer, and marked final again at the next checkpoint;
//! once full it is rewritten as an ordinary chunk. No padding, no format of our own.
//!
//! The bytes before the chunk being filled never change again: [`Checkpoint`] gives their
//! length and SHA-256, which signed checkpoints can prove.

use std::fs::File;
use std::io;
use std::os::unix::fs::FileExt;

use age_core::format::FileKey;
use chacha20poly1305::aead::{Aead, KeyInit};
use chacha20poly1305::{ChaCha20Poly1305, Key, Nonce};
use rand::RngCore;
use sha2::{Digest, Sha256};

use crate::keys::Protection;
use crate::{CHUNK_SIZE, ENCRYPTED_CHUNK_SIZE, VaultError, header};

/// Full chunks kept in memory between checkpoints before they are written anyway (the file
/// then ends without its final chunk until the next checkpoint; recovery still reads it).
const MAX_PENDING_CHUNKS: usize = 16;

/// What a checkpoint made durable.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Checkpoint {
    /// Plaintext bytes in the file.
    pub plaintext_bytes: u64,
    /// Ciphertext bytes that never change again (header and full chunks).
    pub stable_bytes: u64,
    /// Hex SHA-256 of those bytes.
    pub stable_sha256: String,
    /// Ciphertext bytes of the final chunk written after them.
    pub tail_bytes: u64,
    /// Hex SHA-256 of the whole file as it is now (stable bytes and final chunk).
    pub file_sha256: String,
    /// Plaintext bytes in the final chunk, and their keyed MAC (see [`tail_mac`]): the tail
    /// is rewritten as the recording goes on, so only someone who can decrypt can prove it.
    pub tail_plaintext_bytes: u64,
    pub tail_mac: String,
}

/// The MAC of a final chunk's plaintext that signed checkpoints carry: HMAC-SHA-256 keyed
/// by a key derived from the file's payload key, so it proves the tail to whoever can
/// decrypt and tells nothing about the plaintext to anyone else.
pub(crate) fn tail_mac(payload_key: &[u8; 32], plaintext: &[u8]) -> String {
    use hmac::{Hmac, Mac};
    let key = age_core::primitives::hkdf(&[], b"gst-vcc checkpoint tail", payload_key);
    let mut mac = <Hmac<Sha256> as Mac>::new_from_slice(&key).expect("any key length");
    mac.update(plaintext);
    hex(mac.finalize().into_bytes())
}

/// What the finished file is.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Finished {
    pub plaintext_bytes: u64,
    pub ciphertext_bytes: u64,
    /// Hex SHA-256 of the whole file.
    pub sha256: String,
}

/// Writes an age file, positionally, so that the chunk being filled can be rewritten.
pub struct AgeWriter {
    file: File,
    cipher: ChaCha20Poly1305,
    payload_key: [u8; 32],
    /// Header text and nonce.
    payload_start: u64,
    /// Full chunks written as non-final.
    committed: u64,
    /// Full chunks not written yet.
    pending: Vec<Vec<u8>>,
    /// The chunk being filled.
    buffer: Vec<u8>,
    /// SHA-256 of the header and the committed chunks.
    stable_hash: Sha256,
    plaintext_bytes: u64,
    /// Whether anything was written since the last checkpoint.
    dirty: bool,
}

fn hex(digest: impl AsRef<[u8]>) -> String {
    digest
        .as_ref()
        .iter()
        .map(|byte| format!("{byte:02x}"))
        .collect()
}

impl AgeWriter {
    /// Starts an age file in `file` (empty, opened for writing) for `protection`; writes and
    /// syncs the header, so even an empty recording is a valid file after its first
    /// checkpoint.
    pub fn create(file: File, protection: &Protection) -> Result<AgeWriter, VaultError> {
        let recipients = protection.age_recipients()?;
        let file_key = FileKey::init_with_mut(|key| rand::rngs::OsRng.fill_bytes(key));
        let mut stanzas = Vec::new();
        for recipient in &recipients {
            let (wrapped, _labels) = recipient
                .wrap_file_key(&file_key)
                .map_err(|e| VaultError::BadRecipient(format!("cannot encrypt to it: {e}")))?;
            stanzas.extend(wrapped);
        }
        if let Protection::Customer(key) = protection {
            // Names the key (not secret; covered by the header MAC): decryption finds it in
            // the key vault, or says it was erased.
            stanzas.push(age_core::format::Stanza {
                tag: crate::key_vault::KEY_STANZA.into(),
                args: vec![key.key_id.clone()],
                body: Vec::new(),
            });
        }
        let mut nonce = [0u8; 16];
        rand::rngs::OsRng.fill_bytes(&mut nonce);
        let mut start = header::write(&file_key, &stanzas);
        start.extend_from_slice(&nonce);
        let key = header::payload_key(&file_key, &nonce);
        let cipher = ChaCha20Poly1305::new(Key::from_slice(&key));
        let write_error = |source| VaultError::Write {
            path: "<recording>".into(),
            source,
        };
        file.write_all_at(&start, 0).map_err(write_error)?;
        let mut stable_hash = Sha256::new();
        stable_hash.update(&start);
        Ok(AgeWriter {
            file,
            cipher,
            payload_key: key,
            payload_start: start.len() as u64,
            committed: 0,
            pending: Vec::new(),
            buffer: Vec::with_capacity(CHUNK_SIZE as usize),
            stable_hash,
            plaintext_bytes: 0,
            dirty: true,
        })
    }

    /// Plaintext bytes written so far.
    pub fn plaintext_bytes(&self) -> u64 {
        self.plaintext_bytes
    }

    /// Whether anything was written since the last checkpoint.
    pub fn is_dirty(&self) -> bool {
        self.dirty
    }

    pub fn write(&mut self, mut data: &[u8]) -> io::Result<()> {
        self.plaintext_bytes += data.len() as u64;
        self.dirty |= !data.is_empty();
        while !data.is_empty() {
            if self.buffer.len() == CHUNK_SIZE as usize {
                // More data after a full chunk: it is not the last one.
                let full =
                    std::mem::replace(&mut self.buffer, Vec::with_capacity(CHUNK_SIZE as usize));
                self.pending.push(full);
            }
            let room = CHUNK_SIZE as usize - self.buffer.len();
            let take = room.min(data.len());
            self.buffer.extend_from_slice(&data[..take]);
            data = &data[take..];
        }
        if self.pending.len() >= MAX_PENDING_CHUNKS {
            self.commit_pending()?;
        }
        Ok(())
    }

    /// Makes everything written so far durable as a complete age file.
    pub fn checkpoint(&mut self) -> io::Result<Checkpoint> {
        self.commit_pending()?;
        let tail = self.encrypt(self.committed, &self.buffer, true)?;
        let tail_at = self.payload_start + self.committed * ENCRYPTED_CHUNK_SIZE;
        self.file.write_all_at(&tail, tail_at)?;
        self.file.set_len(tail_at + tail.len() as u64)?;
        self.file.sync_data()?;
        self.dirty = false;
        let mut whole = self.stable_hash.clone();
        whole.update(&tail);
        Ok(Checkpoint {
            plaintext_bytes: self.plaintext_bytes,
            stable_bytes: tail_at,
            stable_sha256: hex(self.stable_hash.clone().finalize()),
            tail_bytes: tail.len() as u64,
            file_sha256: hex(whole.finalize()),
            tail_plaintext_bytes: self.buffer.len() as u64,
            tail_mac: tail_mac(&self.payload_key, &self.buffer),
        })
    }

    /// Writes the final chunk, syncs, and returns the file.
    pub fn finish(mut self) -> io::Result<(File, Finished)> {
        let checkpoint = self.checkpoint()?;
        self.file.sync_all()?;
        Ok((
            self.file,
            Finished {
                plaintext_bytes: checkpoint.plaintext_bytes,
                ciphertext_bytes: checkpoint.stable_bytes + checkpoint.tail_bytes,
                sha256: checkpoint.file_sha256,
            },
        ))
    }

    fn commit_pending(&mut self) -> io::Result<()> {
        for chunk in std::mem::take(&mut self.pending) {
            let sealed = self.encrypt(self.committed, &chunk, false)?;
            let at = self.payload_start + self.committed * ENCRYPTED_CHUNK_SIZE;
            self.file.write_all_at(&sealed, at)?;
            self.stable_hash.update(&sealed);
            self.committed += 1;
        }
        Ok(())
    }

    fn encrypt(&self, index: u64, plaintext: &[u8], last: bool) -> io::Result<Vec<u8>> {
        self.cipher
            .encrypt(&chunk_nonce(index, last), plaintext)
            .map_err(|_| io::Error::other("chunk encryption failed"))
    }
}

/// The STREAM nonce of chunk `index`: 11-byte big-endian counter, then the last-chunk flag.
pub(crate) fn chunk_nonce(index: u64, last: bool) -> Nonce {
    let mut nonce = [0u8; 12];
    nonce[3..11].copy_from_slice(&index.to_be_bytes());
    nonce[11] = last as u8;
    *Nonce::from_slice(&nonce)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::keys::{Recipient, Unlock};
    use age::secrecy::ExposeSecret;
    use std::io::Read;
    use std::path::{Path, PathBuf};

    fn temp(name: &str) -> PathBuf {
        let dir = std::env::temp_dir().join(format!("vault-writer-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        dir.join(name)
    }

    fn keys() -> (PathBuf, Protection) {
        let identity = age::x25519::Identity::generate();
        let path = temp(&format!("key-{}.txt", identity.to_public()));
        std::fs::write(&path, identity.to_string().expose_secret()).unwrap();
        let public = identity.to_public();
        let protection = Protection::Recipients(vec![Recipient {
            text: public.to_string(),
            key: public,
        }]);
        (path, protection)
    }

    fn decrypt_with_age_crate(path: &Path, key: &Path) -> Vec<u8> {
        let mut reader = crate::read::open(path, &Unlock::IdentityFile(key.to_path_buf())).unwrap();
        let mut out = Vec::new();
        reader.read_to_end(&mut out).unwrap();
        out
    }

    fn payload(len: usize) -> Vec<u8> {
        (0..len).map(|i| (i * 31 % 251) as u8).collect()
    }

    #[test]
    fn after_each_checkpoint_the_file_is_a_complete_age_file() {
        let (key, protection) = keys();
        let path = temp("checkpoints.age");
        let file = File::create(&path).unwrap();
        let mut writer = AgeWriter::create(file, &protection).unwrap();
        let data = payload(3 * CHUNK_SIZE as usize + 1234);
        let mut written = 0;
        // Small writes, as an audio-only recording makes; a checkpoint now and then.
        for (i, piece) in data.chunks(5000).enumerate() {
            writer.write(piece).unwrap();
            written += piece.len();
            if i % 7 == 0 {
                let checkpoint = writer.checkpoint().unwrap();
                assert_eq!(checkpoint.plaintext_bytes, written as u64);
                assert_eq!(decrypt_with_age_crate(&path, &key), data[..written]);
                let bytes = std::fs::read(&path).unwrap();
                assert_eq!(
                    bytes.len() as u64,
                    checkpoint.stable_bytes + checkpoint.tail_bytes
                );
                assert_eq!(
                    hex(Sha256::digest(&bytes[..checkpoint.stable_bytes as usize])),
                    checkpoint.stable_sha256
                );
                assert_eq!(hex(Sha256::digest(&bytes)), checkpoint.file_sha256);
            }
        }
        let (_, finished) = writer.finish().unwrap();
        assert_eq!(decrypt_with_age_crate(&path, &key), data);
        let bytes = std::fs::read(&path).unwrap();
        assert_eq!(finished.ciphertext_bytes, bytes.len() as u64);
        assert_eq!(finished.sha256, hex(Sha256::digest(&bytes)));
    }

    #[test]
    fn exact_chunk_multiples_and_empty_files_are_valid() {
        let (key, protection) = keys();
        for len in [0, CHUNK_SIZE as usize, 2 * CHUNK_SIZE as usize] {
            let path = temp(&format!("exact-{len}.age"));
            let mut writer = AgeWriter::create(File::create(&path).unwrap(), &protection).unwrap();
            writer.write(&payload(len)).unwrap();
            writer.checkpoint().unwrap();
            assert_eq!(decrypt_with_age_crate(&path, &key), payload(len), "{len}");
            writer.finish().unwrap();
            assert_eq!(decrypt_with_age_crate(&path, &key), payload(len), "{len}");
        }
    }

    #[test]
    fn a_passphrase_file_decrypts() {
        let path = temp("passphrase.age");
        let protection = Protection::Passphrase("correct horse".into());
        let mut writer = AgeWriter::create(File::create(&path).unwrap(), &protection).unwrap();
        writer.write(b"secret call").unwrap();
        writer.finish().unwrap();
        let mut reader =
            crate::read::open(&path, &Unlock::Passphrase("correct horse".into())).unwrap();
        let mut out = Vec::new();
        reader.read_to_end(&mut out).unwrap();
        assert_eq!(out, b"secret call");
    }
}

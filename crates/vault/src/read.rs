//! Reading recordings: decryption with seeking (the `age` crate's reader, for playback), and
//! recovery of damaged or cut files chunk by chunk, which keeps every chunk that
//! authenticates and reports the holes.

use std::fs::File;
use std::io::{self, BufReader, Read, Seek, Write};
use std::os::unix::fs::FileExt;
use std::path::{Path, PathBuf};

use chacha20poly1305::aead::{Aead, KeyInit};
use chacha20poly1305::{ChaCha20Poly1305, Key};

use crate::keys::Unlock;
use crate::writer::chunk_nonce;
use crate::{CHUNK_SIZE, Damage, ENCRYPTED_CHUNK_SIZE, VaultError, header};

/// A decrypted view of a recording: `Read + Seek` over the plaintext.
pub type PlainReader<R = BufReader<File>> = age::stream::StreamReader<R>;

/// Opens `path` for decryption; header problems, wrong keys and tampered headers are told
/// apart in the error.
pub fn open(path: &Path, unlock: &Unlock) -> Result<PlainReader, VaultError> {
    let file = File::open(path).map_err(|source| VaultError::Read {
        what: "recording",
        path: path.to_path_buf(),
        source,
    })?;
    open_reader(BufReader::new(file), path, unlock)
}

/// As [`open`], over any reader (`path` names it in messages).
pub fn open_reader<R: Read>(
    reader: R,
    path: &Path,
    unlock: &Unlock,
) -> Result<PlainReader<R>, VaultError> {
    let path = path.to_path_buf();
    let decryptor = age::Decryptor::new(reader).map_err(|e| VaultError::BadHeader {
        path: path.clone(),
        message: e.to_string(),
    })?;
    let identities = unlock.identities()?;
    decryptor
        .decrypt(identities.iter().map(|i| i.as_ref() as &dyn age::Identity))
        .map_err(|error| match error {
            age::DecryptError::NoMatchingKeys | age::DecryptError::DecryptionFailed => {
                VaultError::WrongKey {
                    path,
                    identity: unlock.describe(),
                }
            }
            age::DecryptError::InvalidMac => VaultError::HeaderTampered { path },
            age::DecryptError::InvalidHeader | age::DecryptError::UnknownFormat => {
                VaultError::BadHeader {
                    path,
                    message: error.to_string(),
                }
            }
            other => VaultError::Decrypt {
                path,
                message: other.to_string(),
            },
        })
}

/// Byte offset where the encrypted payload starts (after the header and the 16-byte nonce).
fn payload_start(path: &Path) -> Option<u64> {
    let mut head = Vec::new();
    File::open(path)
        .ok()?
        .take(header::MAX_HEADER as u64)
        .read_to_end(&mut head)
        .ok()?;
    header::parse(&head).ok().map(|h| h.len as u64 + 16)
}

/// Classifies a read error of the plaintext stream at `offset`.
pub fn damage_at(path: &Path, offset: u64, error: &io::Error) -> VaultError {
    let chunk = offset / CHUNK_SIZE;
    let physical_chunks =
        std::fs::metadata(path)
            .ok()
            .zip(payload_start(path))
            .map(|(metadata, start)| {
                metadata
                    .len()
                    .saturating_sub(start)
                    .div_ceil(ENCRYPTED_CHUNK_SIZE)
            });
    let kind = match physical_chunks {
        _ if error.kind() == io::ErrorKind::UnexpectedEof => Damage::Truncated,
        Some(count) if chunk >= count => Damage::Truncated,
        Some(count) if chunk + 1 == count => Damage::TruncatedOrTamperedEnd,
        _ => Damage::Tampered,
    };
    VaultError::Damaged {
        path: path.to_path_buf(),
        offset,
        chunk,
        kind,
    }
}

/// The plaintext size of an opened recording. A file cut short (or with a modified final
/// chunk) fails here, reported at its last chunk.
pub fn plaintext_size<R: Read + Seek>(reader: &mut R, path: &Path) -> Result<u64, VaultError> {
    reader.seek(io::SeekFrom::End(0)).map_err(|error| {
        let last_chunk = std::fs::metadata(path)
            .ok()
            .zip(payload_start(path))
            .map(|(m, start)| m.len().saturating_sub(start).div_ceil(ENCRYPTED_CHUNK_SIZE))
            .unwrap_or(1)
            .saturating_sub(1);
        damage_at(path, last_chunk * CHUNK_SIZE, &error)
    })
}

/// Reads `out.len()` bytes (or up to the end) of the plaintext at `offset`.
pub fn read_at<R: Read + Seek>(
    reader: &mut R,
    path: &Path,
    offset: u64,
    out: &mut [u8],
) -> Result<usize, VaultError> {
    reader
        .seek(io::SeekFrom::Start(offset))
        .map_err(|e| damage_at(path, offset, &e))?;
    let mut filled = 0;
    while filled < out.len() {
        match reader.read(&mut out[filled..]) {
            Ok(0) => break,
            Ok(n) => filled += n,
            Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
            Err(e) => return Err(damage_at(path, offset + filled as u64, &e)),
        }
    }
    Ok(filled)
}

/// A part of the plaintext that could not be recovered.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize)]
pub struct Hole {
    /// Chunk index.
    pub chunk: u64,
    /// Where it is in the plaintext, and how long.
    pub plaintext_offset: u64,
    pub bytes: u64,
    pub kind: Damage,
}

/// What recovery could save.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize)]
pub struct Recovery {
    /// Plaintext bytes that authenticated and were written.
    pub recovered_bytes: u64,
    /// Plaintext bytes written in total (holes inside the file are zero-filled so that what
    /// follows stays at its place: a media demuxer finds the boxes after a hole).
    pub written_bytes: u64,
    /// Damaged or missing parts, in order.
    pub holes: Vec<Hole>,
    /// Whether the final chunk was found and authentic (the file is whole).
    pub complete: bool,
}

impl Recovery {
    pub fn describe_holes(&self) -> String {
        self.holes
            .iter()
            .map(|hole| {
                format!(
                    "chunk {} (plaintext bytes {}..{}): {}",
                    hole.chunk,
                    hole.plaintext_offset,
                    hole.plaintext_offset + hole.bytes,
                    hole.kind
                )
            })
            .collect::<Vec<_>>()
            .join("; ")
    }
}

/// The payload of an age file, opened for chunk-by-chunk reading.
struct Payload {
    file: File,
    cipher: ChaCha20Poly1305,
    key: [u8; 32],
    start: u64,
    len: u64,
}

fn open_payload(path: &Path, unlock: &Unlock) -> Result<Payload, VaultError> {
    let read_error = |source| VaultError::Read {
        what: "recording",
        path: path.to_path_buf(),
        source,
    };
    let file = File::open(path).map_err(read_error)?;
    let len = file.metadata().map_err(read_error)?.len();
    let mut head = vec![0u8; (header::MAX_HEADER as u64).min(len) as usize];
    let read = file.read_at(&mut head, 0).map_err(read_error)?;
    head.truncate(read);
    let parsed = header::parse(&head).map_err(|message| VaultError::BadHeader {
        path: path.to_path_buf(),
        message,
    })?;
    let nonce: [u8; 16] = head
        .get(parsed.len..parsed.len + 16)
        .and_then(|n| n.try_into().ok())
        .ok_or_else(|| VaultError::BadHeader {
            path: path.to_path_buf(),
            message: "the file ends inside its header".into(),
        })?;
    let identities = unlock.identities()?;
    let file_key = identities
        .iter()
        .find_map(|identity| identity.unwrap_stanzas(&parsed.stanzas))
        .ok_or_else(|| VaultError::WrongKey {
            path: path.to_path_buf(),
            identity: unlock.describe(),
        })?
        .map_err(|_| VaultError::WrongKey {
            path: path.to_path_buf(),
            identity: unlock.describe(),
        })?;
    if !parsed.verify(&head, &file_key) {
        return Err(VaultError::HeaderTampered {
            path: path.to_path_buf(),
        });
    }
    let key = header::payload_key(&file_key, &nonce);
    Ok(Payload {
        file,
        cipher: ChaCha20Poly1305::new(Key::from_slice(&key)),
        key,
        start: parsed.len as u64 + 16,
        len,
    })
}

/// Decrypts every chunk of `path` that authenticates into `output`, skipping damaged ones
/// (zero-filled, reported as holes) and stopping at the final chunk or the end of the file.
/// `plaintext_limit`: write only the first bytes of the plaintext (the part signed
/// checkpoints prove, see `crate::checkpoint`).
pub fn recover(
    path: &Path,
    unlock: &Unlock,
    output: &mut impl Write,
    plaintext_limit: Option<u64>,
) -> Result<Recovery, VaultError> {
    let payload = open_payload(path, unlock)?;
    let end = payload.len;
    let limit = plaintext_limit.unwrap_or(u64::MAX);
    let write_error = |source| VaultError::Write {
        path: PathBuf::from("<output>"),
        source,
    };
    let mut recovery = Recovery {
        recovered_bytes: 0,
        written_bytes: 0,
        holes: Vec::new(),
        complete: false,
    };
    let mut pending_zeros = 0u64;
    let mut sealed = vec![0u8; ENCRYPTED_CHUNK_SIZE as usize];
    let mut index = 0u64;
    loop {
        let at = payload.start + index * ENCRYPTED_CHUNK_SIZE;
        if index * CHUNK_SIZE >= limit {
            break;
        }
        if at >= end {
            if !recovery.complete {
                recovery.holes.push(Hole {
                    chunk: index,
                    plaintext_offset: index * CHUNK_SIZE,
                    bytes: 0,
                    kind: Damage::Truncated,
                });
            }
            break;
        }
        let available = (end - at).min(ENCRYPTED_CHUNK_SIZE) as usize;
        let read = payload
            .file
            .read_at(&mut sealed[..available], at)
            .map_err(|source| VaultError::Read {
                what: "recording",
                path: path.to_path_buf(),
                source,
            })?;
        let chunk = &sealed[..read];
        let is_physical_last = at + read as u64 >= end;
        let opened = if read == ENCRYPTED_CHUNK_SIZE as usize {
            payload
                .cipher
                .decrypt(&chunk_nonce(index, false), chunk)
                .map(|plain| (plain, false))
                .or_else(|_| {
                    payload
                        .cipher
                        .decrypt(&chunk_nonce(index, true), chunk)
                        .map(|plain| (plain, true))
                })
        } else {
            payload
                .cipher
                .decrypt(&chunk_nonce(index, true), chunk)
                .map(|plain| (plain, true))
        };
        match opened {
            Ok((mut plain, last)) => {
                let room = limit - index * CHUNK_SIZE;
                let cut = (plain.len() as u64) > room;
                plain.truncate(room.min(plain.len() as u64) as usize);
                if pending_zeros > 0 {
                    write_zeros(output, pending_zeros).map_err(write_error)?;
                    recovery.written_bytes += pending_zeros;
                    pending_zeros = 0;
                }
                output.write_all(&plain).map_err(write_error)?;
                recovery.recovered_bytes += plain.len() as u64;
                recovery.written_bytes += plain.len() as u64;
                if last && !cut {
                    recovery.complete = true;
                    break;
                }
                if cut {
                    break;
                }
            }
            Err(_) => {
                let kind = if is_physical_last {
                    Damage::TruncatedOrTamperedEnd
                } else {
                    Damage::Tampered
                };
                recovery.holes.push(Hole {
                    chunk: index,
                    plaintext_offset: index * CHUNK_SIZE,
                    bytes: CHUNK_SIZE.min((read as u64).saturating_sub(16)),
                    kind,
                });
                // Zeros only if something intact follows; a damaged end is left out.
                pending_zeros += CHUNK_SIZE;
                if is_physical_last {
                    break;
                }
            }
        }
        index += 1;
    }
    Ok(recovery)
}

/// The keyed MAC (as signed checkpoints carry) of the first `bytes` plaintext bytes of the
/// chunk at ciphertext offset `at`, which is the chunk being filled when the checkpoint was
/// signed: it may have grown since (or been completed), so it is read as final or not.
/// `None` if that chunk does not decrypt or is shorter.
pub fn chunk_prefix_mac(
    path: &Path,
    unlock: &Unlock,
    at: u64,
    bytes: u64,
) -> Result<Option<String>, VaultError> {
    let payload = open_payload(path, unlock)?;
    if at < payload.start || !(at - payload.start).is_multiple_of(ENCRYPTED_CHUNK_SIZE) {
        return Ok(None);
    }
    let index = (at - payload.start) / ENCRYPTED_CHUNK_SIZE;
    let available = payload.len.saturating_sub(at).min(ENCRYPTED_CHUNK_SIZE) as usize;
    let mut sealed = vec![0u8; available];
    let read = payload
        .file
        .read_at(&mut sealed, at)
        .map_err(|source| VaultError::Read {
            what: "recording",
            path: path.to_path_buf(),
            source,
        })?;
    sealed.truncate(read);
    let plain = [true, false].into_iter().find_map(|last| {
        payload
            .cipher
            .decrypt(&chunk_nonce(index, last), &*sealed)
            .ok()
    });
    Ok(plain
        .filter(|plain| plain.len() as u64 >= bytes)
        .map(|plain| crate::writer::tail_mac(&payload.key, &plain[..bytes as usize])))
}

fn write_zeros(output: &mut impl Write, count: u64) -> io::Result<()> {
    let zeros = [0u8; 8192];
    let mut left = count;
    while left > 0 {
        let n = left.min(zeros.len() as u64) as usize;
        output.write_all(&zeros[..n])?;
        left -= n as u64;
    }
    Ok(())
}

/// Decrypts a whole recording into `output`, which only appears (renamed from
/// `<output>.part`) if every chunk authenticated: a failure leaves nothing that would block a
/// retry. Returns the plaintext size.
pub fn decrypt_to(path: &Path, unlock: &Unlock, output: &Path) -> Result<u64, VaultError> {
    let mut reader = open(path, unlock)?;
    let temporary = crate::durable::with_suffix(output, ".part");
    let write_error = |source| VaultError::Write {
        path: output.to_path_buf(),
        source,
    };
    if output.exists() {
        return Err(write_error(io::Error::new(
            io::ErrorKind::AlreadyExists,
            "it exists; remove it or choose another output",
        )));
    }
    let mut out = io::BufWriter::new(File::create(&temporary).map_err(write_error)?);
    let mut buffer = vec![0u8; CHUNK_SIZE as usize];
    let mut bytes = 0u64;
    let result = loop {
        match reader.read(&mut buffer) {
            Ok(0) => break Ok(()),
            Ok(n) => {
                if let Err(e) = out.write_all(&buffer[..n]) {
                    break Err(write_error(e));
                }
                bytes += n as u64;
            }
            Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
            Err(e) => break Err(damage_at(path, bytes, &e)),
        }
    };
    let result = result.and_then(|()| {
        out.flush().map_err(write_error)?;
        out.get_ref().sync_all().map_err(write_error)?;
        std::fs::rename(&temporary, output).map_err(write_error)
    });
    if result.is_err() {
        let _ = std::fs::remove_file(&temporary);
    }
    result.map(|()| bytes)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::keys::{Protection, Recipient};
    use crate::writer::AgeWriter;
    use age::secrecy::ExposeSecret;

    fn temp(name: &str) -> PathBuf {
        let dir = std::env::temp_dir().join(format!("vault-read-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        dir.join(name)
    }

    fn keys() -> (Unlock, Protection) {
        let identity = age::x25519::Identity::generate();
        let path = temp(&format!("key-{}.txt", identity.to_public()));
        std::fs::write(&path, identity.to_string().expose_secret()).unwrap();
        let public = identity.to_public();
        (
            Unlock::IdentityFile(path),
            Protection::Recipients(vec![Recipient {
                text: public.to_string(),
                key: public,
            }]),
        )
    }

    fn payload(len: usize) -> Vec<u8> {
        (0..len).map(|i| (i * 31 % 251) as u8).collect()
    }

    fn encrypted(name: &str, protection: &Protection, data: &[u8]) -> PathBuf {
        let path = temp(name);
        let mut writer = AgeWriter::create(File::create(&path).unwrap(), protection).unwrap();
        writer.write(data).unwrap();
        writer.finish().unwrap();
        path
    }

    #[test]
    fn round_trip_and_seek() {
        let (unlock, protection) = keys();
        let data = payload(300_000);
        let path = encrypted("round.age", &protection, &data);
        let mut reader = open(&path, &unlock).unwrap();
        let mut out = vec![0u8; 1000];
        assert_eq!(
            read_at(&mut reader, &path, 200_000, &mut out).unwrap(),
            1000
        );
        assert_eq!(out, data[200_000..201_000]);
        assert_eq!(plaintext_size(&mut reader, &path).unwrap(), 300_000);
    }

    #[test]
    fn wrong_key_is_named() {
        let (_, protection) = keys();
        let (other, _) = keys();
        let path = encrypted("wrong.age", &protection, b"secret");
        let error = open(&path, &other).err().unwrap();
        assert!(matches!(error, VaultError::WrongKey { .. }), "{error}");
        let error = recover(&path, &other, &mut Vec::new(), None).unwrap_err();
        assert!(matches!(error, VaultError::WrongKey { .. }), "{error}");
    }

    #[test]
    fn recovery_skips_a_damaged_chunk_and_keeps_the_rest() {
        let (unlock, protection) = keys();
        let data = payload(5 * CHUNK_SIZE as usize + 100);
        let path = encrypted("flip.age", &protection, &data);
        let mut bytes = std::fs::read(&path).unwrap();
        let start = bytes.len() - (data.len() + 6 * 16);
        // A flipped bit in chunk 1.
        bytes[start + ENCRYPTED_CHUNK_SIZE as usize + 500] ^= 1;
        std::fs::write(&path, &bytes).unwrap();
        let mut out = Vec::new();
        let recovery = recover(&path, &unlock, &mut out, None).unwrap();
        assert_eq!(recovery.recovered_bytes, data.len() as u64 - CHUNK_SIZE);
        assert!(recovery.complete);
        assert_eq!(recovery.holes.len(), 1);
        assert_eq!(recovery.holes[0].chunk, 1);
        assert_eq!(recovery.holes[0].kind, Damage::Tampered);
        // Everything else is where it was; the hole is zeros.
        assert_eq!(out.len(), data.len());
        assert_eq!(out[..CHUNK_SIZE as usize], data[..CHUNK_SIZE as usize]);
        assert!(
            out[CHUNK_SIZE as usize..2 * CHUNK_SIZE as usize]
                .iter()
                .all(|&b| b == 0)
        );
        assert_eq!(
            out[2 * CHUNK_SIZE as usize..],
            data[2 * CHUNK_SIZE as usize..]
        );
        assert!(recovery.describe_holes().contains("chunk 1"));
        // Full decryption refuses it, and leaves no output behind.
        let target = temp("flip.out");
        let _ = std::fs::remove_file(&target);
        assert!(decrypt_to(&path, &unlock, &target).is_err());
        assert!(!target.exists() && !crate::durable::with_suffix(&target, ".part").exists());
    }

    #[test]
    fn a_truncated_file_recovers_its_intact_prefix() {
        let (unlock, protection) = keys();
        let data = payload(5 * CHUNK_SIZE as usize);
        let path = encrypted("truncated.age", &protection, &data);
        let bytes = std::fs::read(&path).unwrap();
        std::fs::write(&path, &bytes[..bytes.len() - 100_000]).unwrap();
        let mut out = Vec::new();
        let recovery = recover(&path, &unlock, &mut out, None).unwrap();
        assert_eq!(recovery.recovered_bytes, 3 * CHUNK_SIZE);
        assert!(!recovery.complete);
        assert_eq!(out, data[..3 * CHUNK_SIZE as usize]);
        let last = recovery.holes.last().unwrap();
        assert!(matches!(
            last.kind,
            Damage::TruncatedOrTamperedEnd | Damage::Truncated
        ));
    }

    #[test]
    fn a_damaged_header_leaves_no_decrypted_file() {
        let (unlock, protection) = keys();
        let path = encrypted("header.age", &protection, &payload(1000));
        let mut bytes = std::fs::read(&path).unwrap();
        bytes[0] = b'X';
        std::fs::write(&path, &bytes).unwrap();
        let target = temp("header.out");
        let _ = std::fs::remove_file(&target);
        let error = decrypt_to(&path, &unlock, &target).unwrap_err();
        assert!(matches!(error, VaultError::BadHeader { .. }), "{error}");
        assert!(
            !target.exists(),
            "a retry is not blocked by an empty output"
        );
    }
}

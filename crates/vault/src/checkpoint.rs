//! Signatures that survive a crash: while recording, every few seconds a *signed checkpoint*
//! is appended to a sidecar (`<recording>.checkpoints`, JSON lines): how many ciphertext
//! bytes never change again and their SHA-256, the keyed MAC of the chunk being filled (see
//! `crate::writer`), the plaintext size and the running time, the call. After a crash the
//! final signature is missing, but the checkpoints prove how much of the `.partial` file is
//! authentic: [`verify_partial`] with the public key proves the stable bytes; with an
//! identity it proves the chunk being filled too. A byte changed inside a proven part is
//! detected (the newest checkpoint covering it no longer matches).

use std::fs::{File, OpenOptions};
use std::io::{self, BufRead, BufReader, Read, Write};
use std::path::{Path, PathBuf};

use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};

use crate::VaultError;
use crate::keys::Unlock;
use crate::writer::Checkpoint;

/// What one signed checkpoint says.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct CheckpointRecord {
    #[serde(rename = "gst-vcc-checkpoint")]
    pub version: u32,
    /// The recording's final name (without `.partial`).
    pub file: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub call_id: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub segment: Option<u64>,
    /// 0, 1, 2... in the order they were made.
    pub sequence: u64,
    pub wall_time_utc: String,
    /// Running time of the last media written, ns.
    pub running_time_ns: Option<u64>,
    pub plaintext_bytes: u64,
    pub stable_bytes: u64,
    pub stable_sha256: String,
    pub tail_plaintext_bytes: u64,
    pub tail_mac: String,
}

impl CheckpointRecord {
    pub const VERSION: u32 = 1;

    pub fn new(
        file: &str,
        call_id: Option<String>,
        segment: Option<u64>,
        sequence: u64,
        running_time_ns: Option<u64>,
        checkpoint: &Checkpoint,
        wall_time_utc: String,
    ) -> CheckpointRecord {
        CheckpointRecord {
            version: CheckpointRecord::VERSION,
            file: file.to_string(),
            call_id,
            segment,
            sequence,
            wall_time_utc,
            running_time_ns,
            plaintext_bytes: checkpoint.plaintext_bytes,
            stable_bytes: checkpoint.stable_bytes,
            stable_sha256: checkpoint.stable_sha256.clone(),
            tail_plaintext_bytes: checkpoint.tail_plaintext_bytes,
            tail_mac: checkpoint.tail_mac.clone(),
        }
    }
}

/// One line of the sidecar: the record and the minisign signature of its JSON.
#[derive(Debug, Clone, Serialize, Deserialize)]
struct SignedLine {
    checkpoint: String,
    signature: String,
}

/// The sidecar of a recording (given as its final name or its `.partial`).
pub fn sidecar_path(recording: &Path) -> PathBuf {
    let name = recording.as_os_str().to_string_lossy();
    let name = name.strip_suffix(".partial").unwrap_or(&name);
    PathBuf::from(format!("{name}.checkpoints"))
}

/// Signs `record` and appends it to the sidecar, synced.
pub fn append(
    sidecar: &Path,
    record: &CheckpointRecord,
    key: &minisign::SecretKey,
) -> Result<(), VaultError> {
    let json = serde_json::to_string(record).expect("checkpoint serialises");
    let signature = crate::sign::sign_bytes(json.as_bytes(), key, "gst-vcc checkpoint")?;
    let line = serde_json::to_string(&SignedLine {
        checkpoint: json,
        signature,
    })
    .expect("line serialises");
    let write = || -> io::Result<()> {
        let mut file = OpenOptions::new().create(true).append(true).open(sidecar)?;
        file.write_all(line.as_bytes())?;
        file.write_all(b"\n")?;
        file.sync_data()
    };
    write().map_err(|source| VaultError::Write {
        path: sidecar.to_path_buf(),
        source,
    })
}

/// How much of a crashed recording its checkpoints prove.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Proof {
    /// The newest checkpoint whose bytes match the file.
    pub checkpoint: Option<CheckpointRecord>,
    /// Ciphertext bytes proven authentic (from the start of the file).
    pub proven_ciphertext_bytes: u64,
    /// Plaintext bytes proven: the stable chunks, and with an identity the chunk being
    /// filled up to what that checkpoint signed.
    pub proven_plaintext_bytes: u64,
    /// Whether the chunk being filled was proven too (needs an identity).
    pub tail_proven: bool,
    /// Checkpoints that are signed but no longer match the file: the file was modified
    /// within the bytes they cover.
    pub modified: Vec<String>,
    /// Lines of the sidecar whose signature fails.
    pub forged_lines: usize,
}

fn sha256_prefix(path: &Path, bytes: u64) -> io::Result<Option<String>> {
    let mut file = File::open(path)?;
    if file.metadata()?.len() < bytes {
        return Ok(None);
    }
    let mut hasher = Sha256::new();
    let mut left = bytes;
    let mut buffer = vec![0u8; 1 << 16];
    while left > 0 {
        let n = file.read(&mut buffer[..left.min(1 << 16) as usize])?;
        if n == 0 {
            return Ok(None);
        }
        hasher.update(&buffer[..n]);
        left -= n as u64;
    }
    Ok(Some(
        hasher
            .finalize()
            .iter()
            .map(|b| format!("{b:02x}"))
            .collect(),
    ))
}

/// Checks the signed checkpoints of `recording` (a `.partial` left by a crash) against the
/// minisign `public_key`, and with `unlock` also the chunk being filled.
pub fn verify_partial(
    recording: &Path,
    public_key: &Path,
    unlock: Option<&Unlock>,
) -> Result<Proof, VaultError> {
    let sidecar = sidecar_path(recording);
    let signature_error = |message: String| VaultError::Signature {
        path: recording.to_path_buf(),
        message,
    };
    let key = minisign::PublicKey::from_file(public_key)
        .map_err(|e| signature_error(format!("public key '{}': {e}", public_key.display())))?;
    let file = File::open(&sidecar).map_err(|source| VaultError::Read {
        what: "checkpoints",
        path: sidecar.clone(),
        source,
    })?;
    let name = recording
        .file_name()
        .map(|n| n.to_string_lossy().into_owned())
        .unwrap_or_default();
    let name = name.strip_suffix(".partial").unwrap_or(&name).to_string();
    let mut records = Vec::new();
    let mut forged_lines = 0;
    for line in BufReader::new(file).lines() {
        let Ok(line) = line else { break };
        // A line cut by the crash, or one that fails its signature, proves nothing.
        let Ok(signed) = serde_json::from_str::<SignedLine>(&line) else {
            continue;
        };
        if crate::sign::verify_bytes(signed.checkpoint.as_bytes(), &signed.signature, &key).is_err()
        {
            forged_lines += 1;
            continue;
        }
        let Ok(record) = serde_json::from_str::<CheckpointRecord>(&signed.checkpoint) else {
            continue;
        };
        if record.file != name {
            return Err(signature_error(format!(
                "its checkpoints are for '{}' (renamed or swapped)",
                record.file
            )));
        }
        records.push(record);
    }
    let read_error = |source| VaultError::Read {
        what: "recording",
        path: recording.to_path_buf(),
        source,
    };
    let mut proof = Proof {
        checkpoint: None,
        proven_ciphertext_bytes: 0,
        proven_plaintext_bytes: 0,
        tail_proven: false,
        modified: Vec::new(),
        forged_lines,
    };
    // The newest checkpoint that still matches; newer ones that do not, while the file is
    // long enough to hold what they cover, were modified.
    for record in records.iter().rev() {
        match sha256_prefix(recording, record.stable_bytes).map_err(read_error)? {
            Some(hash) if hash == record.stable_sha256 => {
                let stable_plaintext = record.plaintext_bytes - record.tail_plaintext_bytes;
                proof.proven_ciphertext_bytes = record.stable_bytes;
                proof.proven_plaintext_bytes = stable_plaintext;
                if let Some(unlock) = unlock {
                    let mac = crate::read::chunk_prefix_mac(
                        recording,
                        unlock,
                        record.stable_bytes,
                        record.tail_plaintext_bytes,
                    )?;
                    if mac.as_deref() == Some(record.tail_mac.as_str()) {
                        proof.tail_proven = true;
                        proof.proven_plaintext_bytes = record.plaintext_bytes;
                    } else if mac.is_some() || record.tail_plaintext_bytes > 0 {
                        // The chunk being filled then is not what it was: modified (or cut).
                        proof.modified.push(format!(
                            "checkpoint {}: the chunk at byte {} does not hold what was signed",
                            record.sequence, record.stable_bytes
                        ));
                    }
                }
                proof.checkpoint = Some(record.clone());
                break;
            }
            Some(_) => proof.modified.push(format!(
                "checkpoint {}: its first {} bytes were modified",
                record.sequence, record.stable_bytes
            )),
            // The file is shorter than this checkpoint covers: cut, not modified.
            None => (),
        }
    }
    Ok(proof)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::CHUNK_SIZE;
    use crate::keys::{Protection, Recipient, generate_signing_keys, load_signing_key};
    use crate::writer::AgeWriter;
    use age::secrecy::ExposeSecret;

    fn temp(name: &str) -> PathBuf {
        let dir = std::env::temp_dir().join(format!("vault-checkpoint-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        dir.join(name)
    }

    struct Keys {
        secret: minisign::SecretKey,
        public: PathBuf,
        unlock: Unlock,
        protection: Protection,
    }

    fn keys(name: &str) -> Keys {
        let (secret, public) = generate_signing_keys().unwrap();
        let (key_path, public_path) = (temp(&format!("{name}.key")), temp(&format!("{name}.pub")));
        std::fs::write(&key_path, secret).unwrap();
        std::fs::write(&public_path, public).unwrap();
        let identity = age::x25519::Identity::generate();
        let identity_path = temp(&format!("{name}-identity.txt"));
        std::fs::write(&identity_path, identity.to_string().expose_secret()).unwrap();
        let public_age = identity.to_public();
        Keys {
            secret: load_signing_key(&key_path).unwrap(),
            public: public_path,
            unlock: Unlock::IdentityFile(identity_path),
            protection: Protection::Recipients(vec![Recipient {
                text: public_age.to_string(),
                key: public_age,
            }]),
        }
    }

    fn payload(len: usize) -> Vec<u8> {
        (0..len).map(|i| (i * 31 % 251) as u8).collect()
    }

    /// A recording "crashed" after `signed` checkpoints of `step` bytes each and `extra`
    /// bytes more (made durable but not signed); returns the partial's path.
    fn crashed(name: &str, keys: &Keys, step: usize, signed: usize, extra: usize) -> PathBuf {
        let partial = temp(&format!("{name}.mp4.age.partial"));
        let _ = std::fs::remove_file(&partial);
        let _ = std::fs::remove_file(sidecar_path(&partial));
        let mut writer =
            AgeWriter::create(File::create(&partial).unwrap(), &keys.protection).unwrap();
        let data = payload(step * signed + extra);
        for (sequence, piece) in data[..step * signed].chunks(step).enumerate() {
            writer.write(piece).unwrap();
            let made = writer.checkpoint().unwrap();
            let record = CheckpointRecord::new(
                &format!("{name}.mp4.age"),
                Some("call-1".into()),
                None,
                sequence as u64,
                Some(sequence as u64 * 5_000_000_000),
                &made,
                "2026-12-01T00:00:00Z".into(),
            );
            append(&sidecar_path(&partial), &record, &keys.secret).unwrap();
        }
        writer.write(&data[step * signed..]).unwrap();
        writer.checkpoint().unwrap();
        // The process dies: no finish.
        partial
    }

    fn flip(path: &Path, at: u64) {
        let mut bytes = std::fs::read(path).unwrap();
        bytes[at as usize] ^= 0x40;
        std::fs::write(path, bytes).unwrap();
    }

    #[test]
    fn checkpoints_prove_all_but_what_came_after_the_last() {
        let keys = keys("prove");
        // 7 checkpoints of 30000 bytes: the last one is inside the fourth chunk.
        let partial = crashed("prove", &keys, 30_000, 7, 12_345);
        let public_only = verify_partial(&partial, &keys.public, None).unwrap();
        let last = public_only.checkpoint.clone().unwrap();
        assert_eq!(last.sequence, 6);
        assert_eq!(last.plaintext_bytes, 210_000);
        assert!(!public_only.tail_proven);
        assert_eq!(public_only.proven_plaintext_bytes, 3 * CHUNK_SIZE);
        assert!(public_only.modified.is_empty());
        let with_identity = verify_partial(&partial, &keys.public, Some(&keys.unlock)).unwrap();
        assert!(with_identity.tail_proven);
        assert_eq!(with_identity.proven_plaintext_bytes, 210_000);
        // Recovery cut at the proof gives exactly the signed plaintext.
        let mut out = Vec::new();
        crate::read::recover(
            &partial,
            &keys.unlock,
            &mut out,
            Some(with_identity.proven_plaintext_bytes),
        )
        .unwrap();
        assert_eq!(out, payload(210_000 + 12_345)[..210_000]);
    }

    #[test]
    fn a_byte_changed_inside_the_proven_part_is_detected() {
        let keys = keys("modified");
        // In a completed chunk: the newest checkpoint no longer matches.
        let partial = crashed("stable", &keys, 30_000, 7, 100);
        flip(&partial, 100_000);
        let proof = verify_partial(&partial, &keys.public, None).unwrap();
        assert!(!proof.modified.is_empty(), "{proof:?}");
        assert!(proof.proven_plaintext_bytes < CHUNK_SIZE * 2);
        // In the chunk being filled: only an identity can tell.
        let partial = crashed("tail", &keys, 30_000, 7, 100);
        let size = std::fs::metadata(&partial).unwrap().len();
        flip(&partial, size - 200);
        assert!(
            verify_partial(&partial, &keys.public, None)
                .unwrap()
                .modified
                .is_empty()
        );
        let proof = verify_partial(&partial, &keys.public, Some(&keys.unlock)).unwrap();
        assert!(!proof.modified.is_empty(), "{proof:?}");
        assert!(!proof.tail_proven);
    }

    #[test]
    fn forged_lines_and_renamed_recordings_prove_nothing() {
        let keys = keys("forged");
        let other = self::keys("other");
        let partial = crashed("forged", &keys, 20_000, 3, 0);
        let proof = verify_partial(&partial, &other.public, None).unwrap();
        assert_eq!(proof.checkpoint, None);
        assert_eq!(proof.forged_lines, 3);
        // A cut last line (the crash came while appending) is skipped.
        let mut sidecar = std::fs::read(sidecar_path(&partial)).unwrap();
        sidecar.extend_from_slice(b"{\"checkpoint\":\"{\\\"gst-vcc");
        std::fs::write(sidecar_path(&partial), sidecar).unwrap();
        let proof = verify_partial(&partial, &keys.public, None).unwrap();
        assert_eq!(proof.checkpoint.unwrap().sequence, 2);
        // Renamed together with its sidecar.
        let renamed = temp("renamed.mp4.age.partial");
        std::fs::copy(&partial, &renamed).unwrap();
        std::fs::copy(sidecar_path(&partial), sidecar_path(&renamed)).unwrap();
        let error = verify_partial(&renamed, &keys.public, None)
            .unwrap_err()
            .to_string();
        assert!(error.contains("renamed"), "{error}");
    }
}

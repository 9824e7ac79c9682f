//! The recording vault format, free of GStreamer: files are standard **age** files (X25519
//! recipients; scrypt passphrase only for tests/dev), so `age -d -i key.txt f.age` decrypts
//! them without our code; detached signatures are standard **minisign** signatures
//! (`minisign -V -p vcc.pub -m f.age`), proving the media server produced the file.

use std::fs::File;
use std::io::{self, BufReader, Read, Seek, Write};
use std::path::{Path, PathBuf};
use std::str::FromStr;
use std::time::{Duration, Instant};

use age::secrecy::SecretString;

/// age encrypts the payload in chunks of this many plaintext bytes (plus a 16-byte tag).
pub const CHUNK_SIZE: u64 = 64 * 1024;

#[derive(Debug, thiserror::Error)]
pub enum VaultError {
    #[error("cannot read {what} '{path}': {source}")]
    Read {
        what: &'static str,
        path: PathBuf,
        source: io::Error,
    },
    #[error(
        "invalid recipient '{recipient}': {message} (expected an age X25519 public key, age1...)"
    )]
    BadRecipient { recipient: String, message: String },
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
    #[error("write to '{path}' failed: {source}")]
    Write { path: PathBuf, source: io::Error },
}

/// What is wrong at the damaged place of a file.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
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

/// Parses recipients given inline (separated by commas, spaces or newlines) and/or in a
/// recipients file (one per line, `#` comments), as `age -R` reads them.
pub fn parse_recipients(
    inline: &str,
    file: Option<&Path>,
) -> Result<Vec<age::x25519::Recipient>, VaultError> {
    let mut text = inline.replace(',', "\n");
    if let Some(path) = file {
        let content = std::fs::read_to_string(path).map_err(|source| VaultError::Read {
            what: "recipients file",
            path: path.to_path_buf(),
            source,
        })?;
        text.push('\n');
        text.push_str(&content);
    }
    text.lines()
        .filter(|line| !line.trim_start().starts_with('#'))
        .flat_map(str::split_whitespace)
        .map(|recipient| {
            age::x25519::Recipient::from_str(recipient).map_err(|message| {
                VaultError::BadRecipient {
                    recipient: recipient.to_string(),
                    message: message.to_string(),
                }
            })
        })
        .collect()
}

/// How a recording is encrypted.
pub enum Protection {
    Recipients(Vec<age::x25519::Recipient>),
    /// scrypt passphrase: for tests and development only (slow by design, and whoever can
    /// write recordings could read them).
    Passphrase(String),
}

/// Starts an age stream writing to `output`.
pub fn encrypt<W: Write>(
    protection: &Protection,
    output: W,
) -> Result<age::stream::StreamWriter<W>, VaultError> {
    let encryptor = match protection {
        Protection::Recipients(recipients) if recipients.is_empty() => {
            return Err(VaultError::NoRecipients);
        }
        Protection::Recipients(recipients) => {
            age::Encryptor::with_recipients(recipients.iter().map(|r| r as &dyn age::Recipient))
                .map_err(|e| VaultError::BadRecipient {
                    recipient: String::new(),
                    message: e.to_string(),
                })?
        }
        Protection::Passphrase(passphrase) => {
            age::Encryptor::with_user_passphrase(SecretString::from(passphrase.clone()))
        }
    };
    encryptor
        .wrap_output(output)
        .map_err(|source| VaultError::Write {
            path: PathBuf::from("<output>"),
            source,
        })
}

/// How a recording is decrypted.
pub enum Unlock {
    IdentityFile(PathBuf),
    Passphrase(String),
}

impl Unlock {
    fn identities(&self) -> Result<Vec<Box<dyn age::Identity + Send + Sync>>, VaultError> {
        match self {
            Unlock::IdentityFile(path) => {
                let file =
                    age::IdentityFile::from_file(path.display().to_string()).map_err(|source| {
                        VaultError::Read {
                            what: "identity file",
                            path: path.clone(),
                            source,
                        }
                    })?;
                let identities = file
                    .into_identities()
                    .map_err(|e| VaultError::BadIdentity {
                        path: path.clone(),
                        message: e.to_string(),
                    })?;
                if identities.is_empty() {
                    return Err(VaultError::BadIdentity {
                        path: path.clone(),
                        message: "the file is empty".into(),
                    });
                }
                Ok(identities)
            }
            Unlock::Passphrase(passphrase) => {
                let mut identity =
                    age::scrypt::Identity::new(SecretString::from(passphrase.clone()));
                identity.set_max_work_factor(22);
                Ok(vec![Box::new(identity)])
            }
        }
    }

    fn describe(&self) -> String {
        match self {
            Unlock::IdentityFile(path) => path.display().to_string(),
            Unlock::Passphrase(_) => "the passphrase".into(),
        }
    }
}

/// A decrypted view of a recording: `Read + Seek` over the plaintext.
pub type PlainReader = age::stream::StreamReader<BufReader<File>>;

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
) -> Result<age::stream::StreamReader<R>, VaultError> {
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
        .take(1 << 20)
        .read_to_end(&mut head)
        .ok()?;
    let mac_line = head.windows(5).position(|w| w == b"\n--- ")? + 1;
    let end_of_header = mac_line + head[mac_line..].iter().position(|b| *b == b'\n')? + 1;
    Some(end_of_header as u64 + 16)
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
                    .div_ceil(CHUNK_SIZE + 16)
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
            .map(|(m, start)| m.len().saturating_sub(start).div_ceil(CHUNK_SIZE + 16))
            .unwrap_or(1)
            .saturating_sub(1);
        damage_at(path, last_chunk * CHUNK_SIZE, &error)
    })
}

/// Reads `len` bytes (or up to the end) of the plaintext at `offset`.
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

/// What `recover` could save.
#[derive(Debug)]
pub struct Recovery {
    /// Plaintext bytes written to the output.
    pub bytes: u64,
    /// `None` if the whole file decrypted; else why and where it stopped.
    pub damage: Option<VaultError>,
}

/// Decrypts as much of `path` as authenticates into `output`: the whole file, or for a
/// truncated (crashed) or damaged file, every intact chunk before the damage.
pub fn recover(
    path: &Path,
    unlock: &Unlock,
    output: &mut impl Write,
) -> Result<Recovery, VaultError> {
    let mut reader = open(path, unlock)?;
    let mut buffer = vec![0u8; CHUNK_SIZE as usize];
    let mut bytes = 0u64;
    loop {
        match reader.read(&mut buffer) {
            Ok(0) => {
                return Ok(Recovery {
                    bytes,
                    damage: None,
                });
            }
            Ok(n) => {
                output
                    .write_all(&buffer[..n])
                    .map_err(|source| VaultError::Write {
                        path: PathBuf::from("<output>"),
                        source,
                    })?;
                bytes += n as u64;
            }
            Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
            Err(e) => {
                return Ok(Recovery {
                    bytes,
                    damage: Some(damage_at(path, bytes, &e)),
                });
            }
        }
    }
}

/// A file writer that fsyncs at most every `interval` of wall time (age hands it whole
/// 64 KiB chunks), so a crash loses at most the last interval and the chunk being filled.
pub struct SyncingFile {
    file: File,
    interval: Option<Duration>,
    last_sync: Instant,
}

impl SyncingFile {
    /// `interval` `None`: sync only in `finish`.
    pub fn new(file: File, interval: Option<Duration>) -> Self {
        SyncingFile {
            file,
            interval,
            last_sync: Instant::now(),
        }
    }

    /// Flushes and fsyncs everything, returning the file.
    pub fn finish(mut self) -> io::Result<File> {
        self.file.flush()?;
        self.file.sync_all()?;
        Ok(self.file)
    }
}

impl Write for SyncingFile {
    fn write(&mut self, data: &[u8]) -> io::Result<usize> {
        let written = self.file.write(data)?;
        if let Some(interval) = self.interval
            && self.last_sync.elapsed() >= interval
        {
            self.file.sync_data()?;
            self.last_sync = Instant::now();
        }
        Ok(written)
    }

    fn flush(&mut self) -> io::Result<()> {
        self.file.flush()
    }
}

/// Path of the detached minisign signature of `path`.
pub fn signature_path(path: &Path) -> PathBuf {
    let mut name = path.as_os_str().to_owned();
    name.push(".minisig");
    PathBuf::from(name)
}

/// Loads an unencrypted minisign secret key (as `minisign -G -W` or `vcc-vault keygen` make).
pub fn load_signing_key(path: &Path) -> Result<minisign::SecretKey, VaultError> {
    let text = std::fs::read_to_string(path).map_err(|source| VaultError::Read {
        what: "signing key",
        path: path.to_path_buf(),
        source,
    })?;
    let key_box =
        minisign::SecretKeyBox::from_string(&text).map_err(|e| VaultError::SigningKey {
            path: path.to_path_buf(),
            message: e.to_string(),
        })?;
    key_box
        .into_unencrypted_secret_key()
        .map_err(|e| VaultError::SigningKey {
            path: path.to_path_buf(),
            message: format!("{e} (the media server needs a key without password: minisign -G -W)"),
        })
}

/// Writes `<path>.minisig`, a minisign signature of the file's bytes.
pub fn sign_file(
    path: &Path,
    key: &minisign::SecretKey,
    trusted_comment: &str,
) -> Result<PathBuf, VaultError> {
    let file = File::open(path).map_err(|source| VaultError::Read {
        what: "file to sign",
        path: path.to_path_buf(),
        source,
    })?;
    let signature = minisign::sign(
        None,
        key,
        BufReader::new(file),
        Some(trusted_comment),
        Some("gst-vcc recording signature"),
    )
    .map_err(|e| VaultError::SigningKey {
        path: path.to_path_buf(),
        message: e.to_string(),
    })?;
    let signature_file = signature_path(path);
    write_synced(&signature_file, signature.to_string().as_bytes())?;
    Ok(signature_file)
}

/// Verifies `<path>.minisig` against the minisign public key file `public_key`.
pub fn verify_file(path: &Path, public_key: &Path) -> Result<(), VaultError> {
    let signature_error = |message: String| VaultError::Signature {
        path: path.to_path_buf(),
        message,
    };
    let key = minisign::PublicKey::from_file(public_key)
        .map_err(|e| signature_error(format!("public key '{}': {e}", public_key.display())))?;
    let signature_file = signature_path(path);
    let signature = minisign::SignatureBox::from_file(&signature_file)
        .map_err(|e| signature_error(format!("'{}': {e}", signature_file.display())))?;
    let file = File::open(path).map_err(|source| VaultError::Read {
        what: "signed file",
        path: path.to_path_buf(),
        source,
    })?;
    minisign::verify(&key, &signature, BufReader::new(file), true, false, false)
        .map_err(|e| signature_error(e.to_string()))
}

/// Writes a small file durably (content, then fsync).
pub fn write_synced(path: &Path, content: &[u8]) -> Result<(), VaultError> {
    let write = || -> io::Result<()> {
        let mut file = File::create(path)?;
        file.write_all(content)?;
        file.sync_all()
    };
    write().map_err(|source| VaultError::Write {
        path: path.to_path_buf(),
        source,
    })
}

/// A new age X25519 identity: (the identity file text, its public key).
pub fn generate_identity() -> (String, String) {
    use age::secrecy::ExposeSecret;
    let identity = age::x25519::Identity::generate();
    let public = identity.to_public().to_string();
    let text = format!(
        "# created: by vcc-vault keygen\n# public key: {public}\n{}\n",
        identity.to_string().expose_secret()
    );
    (text, public)
}

/// A new unencrypted minisign key pair: (secret key file text, public key file text).
pub fn generate_signing_keys() -> Result<(String, String), String> {
    let pair = minisign::KeyPair::generate_unencrypted_keypair().map_err(|e| e.to_string())?;
    let secret = pair
        .sk
        .to_box(Some("gst-vcc media server signing key"))
        .map_err(|e| e.to_string())?
        .to_string();
    let public = pair.pk.to_box().map_err(|e| e.to_string())?.to_string();
    Ok((secret, public))
}

#[cfg(test)]
mod tests {
    use super::*;
    use age::secrecy::ExposeSecret;

    fn temp(name: &str) -> PathBuf {
        let dir = std::env::temp_dir().join(format!("cryptfile-unit-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        dir.join(name)
    }

    fn keys() -> (PathBuf, age::x25519::Recipient) {
        let identity = age::x25519::Identity::generate();
        let path = temp(&format!("key-{}.txt", identity.to_public()));
        std::fs::write(&path, identity.to_string().expose_secret()).unwrap();
        (path, identity.to_public())
    }

    fn encrypt_to(path: &Path, recipient: &age::x25519::Recipient, data: &[u8]) {
        let file = File::create(path).unwrap();
        let mut writer = encrypt(&Protection::Recipients(vec![recipient.clone()]), file).unwrap();
        writer.write_all(data).unwrap();
        writer.finish().unwrap();
    }

    fn payload(len: usize) -> Vec<u8> {
        (0..len).map(|i| (i * 31 % 251) as u8).collect()
    }

    #[test]
    fn round_trip_and_seek() {
        let (key, recipient) = keys();
        let path = temp("round.age");
        let data = payload(300_000);
        encrypt_to(&path, &recipient, &data);
        let mut reader = open(&path, &Unlock::IdentityFile(key)).unwrap();
        let mut out = vec![0u8; 1000];
        assert_eq!(
            read_at(&mut reader, &path, 200_000, &mut out).unwrap(),
            1000
        );
        assert_eq!(out, data[200_000..201_000]);
        assert_eq!(read_at(&mut reader, &path, 5, &mut out).unwrap(), 1000);
        assert_eq!(out, data[5..1005]);
    }

    #[test]
    fn wrong_key_is_named() {
        let (_, recipient) = keys();
        let (other_key, _) = keys();
        let path = temp("wrong.age");
        encrypt_to(&path, &recipient, b"secret");
        let error = open(&path, &Unlock::IdentityFile(other_key)).err().unwrap();
        assert!(matches!(error, VaultError::WrongKey { .. }), "{error}");
        assert!(error.to_string().starts_with("wrong key"));
    }

    #[test]
    fn tampering_is_located() {
        let (key, recipient) = keys();
        let path = temp("tamper.age");
        let data = payload(3 * CHUNK_SIZE as usize + 100);
        encrypt_to(&path, &recipient, &data);
        let original = std::fs::read(&path).unwrap();
        let header_len = original.len() - data.len() - 4 * 16;
        let unlock = Unlock::IdentityFile(key);
        // A byte in the header's MAC-covered stanza.
        let mut bytes = original.clone();
        bytes[30] ^= 1;
        std::fs::write(&path, &bytes).unwrap();
        let error = open(&path, &unlock).err().expect("header tamper detected");
        assert!(
            matches!(
                error,
                VaultError::HeaderTampered { .. }
                    | VaultError::BadHeader { .. }
                    | VaultError::WrongKey { .. }
            ),
            "{error}"
        );
        // A byte in the middle chunk (chunk 1).
        let mut bytes = original.clone();
        bytes[header_len + CHUNK_SIZE as usize + 16 + 500] ^= 1;
        std::fs::write(&path, &bytes).unwrap();
        let recovery = recover(&path, &unlock, &mut Vec::new()).unwrap();
        assert_eq!(recovery.bytes, CHUNK_SIZE);
        let damage = recovery.damage.unwrap().to_string();
        assert!(
            damage.contains("chunk 1") && damage.contains("authentication"),
            "{damage}"
        );
        // A byte in the last chunk.
        let mut bytes = original.clone();
        let last = bytes.len() - 20;
        bytes[last] ^= 1;
        std::fs::write(&path, &bytes).unwrap();
        let recovery = recover(&path, &unlock, &mut Vec::new()).unwrap();
        assert_eq!(recovery.bytes, 3 * CHUNK_SIZE);
        let damage = recovery.damage.unwrap().to_string();
        assert!(
            damage.contains("chunk 3") && damage.contains("last chunk"),
            "{damage}"
        );
    }

    #[test]
    fn truncated_file_recovers_its_intact_prefix() {
        let (key, recipient) = keys();
        let path = temp("truncated.age");
        let data = payload(5 * CHUNK_SIZE as usize);
        encrypt_to(&path, &recipient, &data);
        let bytes = std::fs::read(&path).unwrap();
        std::fs::write(&path, &bytes[..bytes.len() - 100_000]).unwrap();
        let mut out = Vec::new();
        let recovery = recover(&path, &Unlock::IdentityFile(key), &mut out).unwrap();
        assert!(recovery.bytes >= 3 * CHUNK_SIZE, "{}", recovery.bytes);
        assert_eq!(out, data[..recovery.bytes as usize]);
        let damage = recovery.damage.unwrap();
        assert!(
            matches!(
                damage,
                VaultError::Damaged {
                    kind: Damage::Truncated | Damage::TruncatedOrTamperedEnd,
                    ..
                }
            ),
            "{damage}"
        );
    }

    #[test]
    fn signatures_verify_and_detect_changes() {
        let (secret, public) = generate_signing_keys().unwrap();
        let key_path = temp("sign.key");
        let public_path = temp("sign.pub");
        std::fs::write(&key_path, secret).unwrap();
        std::fs::write(&public_path, public).unwrap();
        let path = temp("signed.bin");
        std::fs::write(&path, payload(10_000)).unwrap();
        let key = load_signing_key(&key_path).unwrap();
        sign_file(&path, &key, "call-id:42").unwrap();
        verify_file(&path, &public_path).unwrap();
        let mut bytes = std::fs::read(&path).unwrap();
        bytes[5000] ^= 1;
        std::fs::write(&path, bytes).unwrap();
        assert!(verify_file(&path, &public_path).is_err());
    }

    #[test]
    fn recipients_parse_inline_and_from_file() {
        let (_, first) = keys();
        let (_, second) = keys();
        let file = temp("recipients.txt");
        std::fs::write(&file, format!("# archive\n{second}\n")).unwrap();
        let parsed = parse_recipients(&format!("{first}"), Some(&file)).unwrap();
        assert_eq!(parsed.len(), 2);
        let error = parse_recipients("age1notakey", None).unwrap_err();
        assert!(error.to_string().contains("age1notakey"));
        assert!(
            parse_recipients("", Some(Path::new("/nonexistent/r.txt")))
                .unwrap_err()
                .to_string()
                .contains("/nonexistent/r.txt")
        );
    }
}

//! Signatures: standard minisign detached signatures (`<file>.minisig`, `minisign -V`
//! verifies them) whose *trusted comment* — signed together with the content — binds the
//! signature to what it is about: the file's name, size and SHA-256, the call, the
//! recipients' key fingerprints, and for a manifest the recording it describes. A recording
//! renamed together with its signature, or a manifest swapped in with its own signature from
//! another call, no longer verifies.

use std::fs::File;
use std::io::{self, BufReader, Read, Seek};
use std::path::{Path, PathBuf};

use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};

use crate::VaultError;

/// What a signature is about, as written in its trusted comment (compact JSON).
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Binding {
    /// Format version of the comment.
    #[serde(rename = "gst-vcc")]
    pub version: u32,
    /// `recording`, `manifest` or `checkpoint`.
    pub kind: String,
    /// The signed file's name (without directory).
    pub file: String,
    pub bytes: u64,
    /// Hex SHA-256 of the signed bytes.
    pub sha256: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub call_id: Option<String>,
    /// Fingerprints of the age recipients the recording is encrypted to.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub recipients: Vec<String>,
    /// For a manifest: the name and SHA-256 of the recording it describes.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub recording: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub recording_sha256: Option<String>,
    /// For a segment of a rotating recording: its index, and the SHA-256 of the file of the
    /// segment before (a chain a verifier walks).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub segment: Option<u64>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub previous_sha256: Option<String>,
}

impl Binding {
    pub const VERSION: u32 = 1;

    pub fn new(kind: &str) -> Binding {
        Binding {
            version: Binding::VERSION,
            kind: kind.to_string(),
            ..Default::default()
        }
    }
}

/// Path of the detached minisign signature of `path`.
pub fn signature_path(path: &Path) -> PathBuf {
    crate::durable::with_suffix(path, ".minisig")
}

fn file_name(path: &Path) -> String {
    path.file_name()
        .map(|name| name.to_string_lossy().into_owned())
        .unwrap_or_default()
}

/// Reads `reader` to its end, hashing: (bytes, hex SHA-256).
fn hash_reader(mut reader: impl Read) -> io::Result<(u64, String)> {
    let mut hasher = Sha256::new();
    let mut buffer = vec![0u8; 1 << 16];
    let mut bytes = 0u64;
    loop {
        match reader.read(&mut buffer) {
            Ok(0) => break,
            Ok(n) => {
                hasher.update(&buffer[..n]);
                bytes += n as u64;
            }
            Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
            Err(e) => return Err(e),
        }
    }
    Ok((
        bytes,
        hasher
            .finalize()
            .iter()
            .map(|b| format!("{b:02x}"))
            .collect(),
    ))
}

/// Hex SHA-256 and size of a file.
pub fn sha256_file(path: &Path) -> Result<(u64, String), VaultError> {
    let file = File::open(path).map_err(|source| VaultError::Read {
        what: "file",
        path: path.to_path_buf(),
        source,
    })?;
    hash_reader(BufReader::new(file)).map_err(|source| VaultError::Read {
        what: "file",
        path: path.to_path_buf(),
        source,
    })
}

/// Writes `<path>.minisig`: a minisign signature of the file whose trusted comment is
/// `binding` completed with the file's name, size and SHA-256.
pub fn sign_file(
    path: &Path,
    key: &minisign::SecretKey,
    mut binding: Binding,
) -> Result<Binding, VaultError> {
    let (bytes, sha256) = sha256_file(path)?;
    binding.file = file_name(path);
    binding.bytes = bytes;
    binding.sha256 = sha256;
    let comment = serde_json::to_string(&binding).expect("binding serialises");
    let file = File::open(path).map_err(|source| VaultError::Read {
        what: "file to sign",
        path: path.to_path_buf(),
        source,
    })?;
    let signature = minisign::sign(
        None,
        key,
        BufReader::new(file),
        Some(&comment),
        Some("gst-vcc signature"),
    )
    .map_err(|e| VaultError::SigningKey {
        path: path.to_path_buf(),
        message: e.to_string(),
    })?;
    crate::durable::write_synced(&signature_path(path), signature.to_string().as_bytes())?;
    Ok(binding)
}

/// Signs `bytes` (a checkpoint line, say) and returns the minisign signature text.
pub fn sign_bytes(
    bytes: &[u8],
    key: &minisign::SecretKey,
    comment: &str,
) -> Result<String, VaultError> {
    minisign::sign(
        None,
        key,
        io::Cursor::new(bytes),
        Some(comment),
        Some("gst-vcc signature"),
    )
    .map(|signature| signature.to_string())
    .map_err(|e| VaultError::SigningKey {
        path: PathBuf::from("<signing key>"),
        message: e.to_string(),
    })
}

fn load_public_key(public_key: &Path) -> Result<minisign::PublicKey, String> {
    minisign::PublicKey::from_file(public_key)
        .map_err(|e| format!("public key '{}': {e}", public_key.display()))
}

/// Verifies that the signature text `signature` signs `bytes` with `public_key`; returns its
/// trusted comment.
pub fn verify_bytes(
    bytes: &[u8],
    signature: &str,
    public_key: &minisign::PublicKey,
) -> Result<String, String> {
    let signature = minisign::SignatureBox::from_string(signature).map_err(|e| e.to_string())?;
    minisign::verify(
        public_key,
        &signature,
        io::Cursor::new(bytes),
        true,
        false,
        false,
    )
    .map_err(|e| e.to_string())?;
    signature.trusted_comment().map_err(|e| e.to_string())
}

/// Verifies `<path>.minisig` against the minisign public key file `public_key`, reading the
/// content from `file` (already open: what is verified is what will be read), and checks the
/// binding against the file's name, size and hash. The file is left at its start.
pub fn verify_open(file: &mut File, path: &Path, public_key: &Path) -> Result<Binding, VaultError> {
    let signature_error = |message: String| VaultError::Signature {
        path: path.to_path_buf(),
        message,
    };
    let key = load_public_key(public_key).map_err(signature_error)?;
    let signature_file = signature_path(path);
    let signature = minisign::SignatureBox::from_file(&signature_file)
        .map_err(|e| signature_error(format!("'{}': {e}", signature_file.display())))?;
    let read_error = |source| VaultError::Read {
        what: "signed file",
        path: path.to_path_buf(),
        source,
    };
    file.rewind().map_err(read_error)?;
    let mut tee = HashingReader::new(BufReader::new(&mut *file));
    minisign::verify(&key, &signature, &mut tee, true, false, false)
        .map_err(|e| signature_error(e.to_string()))?;
    let (bytes, sha256) = tee.finish();
    file.rewind().map_err(read_error)?;
    let comment = signature
        .trusted_comment()
        .map_err(|e| signature_error(e.to_string()))?;
    let binding: Binding = serde_json::from_str(&comment).map_err(|_| {
        signature_error(format!(
            "its trusted comment does not say which file it signs ('{comment}'): an unbound \
             signature is not accepted"
        ))
    })?;
    let name = file_name(path);
    let name = name.strip_suffix(".partial").unwrap_or(&name);
    if binding.file != name {
        return Err(signature_error(format!(
            "it signs '{}', not '{name}' (renamed or swapped with its signature)",
            binding.file
        )));
    }
    if binding.bytes != bytes || binding.sha256 != sha256 {
        return Err(signature_error(format!(
            "its comment says {} bytes with SHA-256 {}, the file has {bytes} bytes with {sha256}",
            binding.bytes, binding.sha256
        )));
    }
    Ok(binding)
}

/// [`verify_open`] on a file by path.
pub fn verify_file(path: &Path, public_key: &Path) -> Result<Binding, VaultError> {
    let mut file = File::open(path).map_err(|source| VaultError::Read {
        what: "signed file",
        path: path.to_path_buf(),
        source,
    })?;
    verify_open(&mut file, path, public_key)
}

/// Verifies a manifest's signature and that it describes `recording` (by name and SHA-256,
/// whose own signature is checked too). Returns the manifest's binding.
pub fn verify_manifest(
    manifest: &Path,
    recording: &Path,
    public_key: &Path,
) -> Result<Binding, VaultError> {
    let recording_binding = verify_file(recording, public_key)?;
    let binding = verify_file(manifest, public_key)?;
    let error = |message: String| VaultError::Signature {
        path: manifest.to_path_buf(),
        message,
    };
    if binding.kind != "manifest" {
        return Err(error(format!(
            "it is signed as a {}, not a manifest",
            binding.kind
        )));
    }
    if binding.recording.as_deref() != Some(recording_binding.file.as_str())
        || binding.recording_sha256.as_deref() != Some(recording_binding.sha256.as_str())
    {
        return Err(error(format!(
            "it describes recording '{}' ({}), not '{}' ({}): a manifest of another recording",
            binding.recording.as_deref().unwrap_or("?"),
            binding.recording_sha256.as_deref().unwrap_or("?"),
            recording_binding.file,
            recording_binding.sha256
        )));
    }
    if binding.call_id != recording_binding.call_id {
        return Err(error("it names another call than the recording".into()));
    }
    Ok(binding)
}

/// Verifies the files of a rotating recording as one chain: every signature and binding,
/// segments 0..n each once, each naming the SHA-256 of the one before, all of one call.
/// Returns the bindings in segment order; the error names a missing, repeated or reordered
/// segment.
pub fn verify_chain(files: &[PathBuf], public_key: &Path) -> Result<Vec<Binding>, VaultError> {
    let mut bindings = Vec::new();
    for file in files {
        let binding = verify_file(file, public_key)?;
        let segment = binding.segment.ok_or_else(|| VaultError::Signature {
            path: file.clone(),
            message: "it is not a segment of a rotating recording".into(),
        })?;
        bindings.push((segment, file.clone(), binding));
    }
    bindings.sort_by_key(|(segment, _, _)| *segment);
    let chain_error = |path: &Path, message: String| VaultError::Signature {
        path: path.to_path_buf(),
        message,
    };
    for (position, (segment, file, binding)) in bindings.iter().enumerate() {
        if *segment != position as u64 {
            return Err(chain_error(
                file,
                if *segment < position as u64 {
                    format!("segment {segment} appears twice")
                } else {
                    format!("segment {position} is missing (this is segment {segment})")
                },
            ));
        }
        if position == 0 {
            if binding.previous_sha256.is_some() {
                return Err(chain_error(
                    file,
                    "the first segment names a previous one: the chain starts earlier".into(),
                ));
            }
            continue;
        }
        let (_, previous_file, previous) = &bindings[position - 1];
        if binding.previous_sha256.as_deref() != Some(previous.sha256.as_str()) {
            return Err(chain_error(
                file,
                format!(
                    "segment {segment} does not follow '{}' (it names {} as the segment before): reordered or replaced",
                    previous_file.display(),
                    binding.previous_sha256.as_deref().unwrap_or("none")
                ),
            ));
        }
        if binding.call_id != previous.call_id {
            return Err(chain_error(
                file,
                format!("segment {segment} belongs to another call"),
            ));
        }
    }
    Ok(bindings
        .into_iter()
        .map(|(_, _, binding)| binding)
        .collect())
}

/// A reader that hashes what passes through it.
struct HashingReader<R> {
    inner: R,
    hasher: Sha256,
    bytes: u64,
}

impl<R: Read> HashingReader<R> {
    fn new(inner: R) -> Self {
        HashingReader {
            inner,
            hasher: Sha256::new(),
            bytes: 0,
        }
    }

    fn finish(self) -> (u64, String) {
        (
            self.bytes,
            self.hasher
                .finalize()
                .iter()
                .map(|b| format!("{b:02x}"))
                .collect(),
        )
    }
}

impl<R: Read> Read for HashingReader<R> {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        let n = self.inner.read(buf)?;
        self.hasher.update(&buf[..n]);
        self.bytes += n as u64;
        Ok(n)
    }
}

/// minisign asks for `Seek` but reads front to back only: a seek would break the hash.
impl<R: Read> Seek for HashingReader<R> {
    fn seek(&mut self, pos: io::SeekFrom) -> io::Result<u64> {
        match pos {
            io::SeekFrom::Current(0) => Ok(self.bytes),
            _ => Err(io::Error::new(
                io::ErrorKind::Unsupported,
                "a hashing reader reads front to back",
            )),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::keys::{generate_signing_keys, load_signing_key};

    fn temp(name: &str) -> PathBuf {
        let dir = std::env::temp_dir().join(format!("vault-sign-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        dir.join(name)
    }

    fn signing_keys(name: &str) -> (minisign::SecretKey, PathBuf) {
        let (secret, public) = generate_signing_keys().unwrap();
        let (key_path, public_path) = (temp(&format!("{name}.key")), temp(&format!("{name}.pub")));
        std::fs::write(&key_path, secret).unwrap();
        std::fs::write(&public_path, public).unwrap();
        (load_signing_key(&key_path).unwrap(), public_path)
    }

    fn recording_binding(call: &str) -> Binding {
        Binding {
            call_id: Some(call.into()),
            recipients: vec!["0123456789abcdef".into()],
            ..Binding::new("recording")
        }
    }

    #[test]
    fn signatures_verify_and_detect_changes() {
        let (key, public) = signing_keys("verify");
        let path = temp("signed.bin");
        std::fs::write(&path, vec![7u8; 10_000]).unwrap();
        let binding = sign_file(&path, &key, recording_binding("c-1")).unwrap();
        assert_eq!(verify_file(&path, &public).unwrap(), binding);
        assert_eq!(binding.file, "signed.bin");
        let mut bytes = std::fs::read(&path).unwrap();
        bytes[5000] ^= 1;
        std::fs::write(&path, bytes).unwrap();
        assert!(verify_file(&path, &public).is_err());
    }

    #[test]
    fn a_renamed_recording_and_a_swapped_manifest_are_refused() {
        let (key, public) = signing_keys("swap");
        let a = temp("call-a.mp4.age");
        let b = temp("call-b.mp4.age");
        std::fs::write(&a, b"recording a").unwrap();
        std::fs::write(&b, b"recording b").unwrap();
        let a_binding = sign_file(&a, &key, recording_binding("a")).unwrap();
        let b_binding = sign_file(&b, &key, recording_binding("b")).unwrap();
        let manifest_of = |recording: &Binding, path: &Path| {
            std::fs::write(path, format!("{{\"call\":\"{:?}\"}}", recording.call_id)).unwrap();
            let binding = Binding {
                call_id: recording.call_id.clone(),
                recording: Some(recording.file.clone()),
                recording_sha256: Some(recording.sha256.clone()),
                ..Binding::new("manifest")
            };
            sign_file(path, &key, binding).unwrap();
        };
        let (manifest_a, manifest_b) = (temp("call-a.json"), temp("call-b.json"));
        manifest_of(&a_binding, &manifest_a);
        manifest_of(&b_binding, &manifest_b);
        verify_manifest(&manifest_a, &a, &public).unwrap();
        // B's manifest and signature put next to recording A.
        let error = verify_manifest(&manifest_b, &a, &public)
            .unwrap_err()
            .to_string();
        assert!(error.contains("another recording"), "{error}");
        // Recording A renamed to C together with its signature.
        let c = temp("call-c.mp4.age");
        std::fs::copy(&a, &c).unwrap();
        std::fs::copy(signature_path(&a), signature_path(&c)).unwrap();
        let error = verify_file(&c, &public).unwrap_err().to_string();
        assert!(error.contains("renamed"), "{error}");
    }

    #[test]
    fn an_unbound_signature_is_refused() {
        let (key, public) = signing_keys("legacy");
        let path = temp("legacy.bin");
        std::fs::write(&path, b"data").unwrap();
        let signature = sign_bytes(b"data", &key, "file:legacy.bin plaintext-bytes:4").unwrap();
        std::fs::write(signature_path(&path), signature).unwrap();
        let error = verify_file(&path, &public).unwrap_err().to_string();
        assert!(error.contains("unbound"), "{error}");
    }
}

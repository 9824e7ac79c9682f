//! The customer key vault: erasure of a customer's recordings from write-once storage by
//! crypto-shredding.
//!
//! A recording made with a key vault is encrypted to its customer's own age key **only**
//! (the organisation's keys cannot open it), and names that key in its header (a
//! `vcc-customer-key <key id>` stanza, covered by the header MAC). The customer's secret key
//! is kept in the vault, itself age-encrypted to the organisation's recipients, so the media
//! server (which holds only public keys) can add keys but never read them. Destroying a
//! customer's key makes every copy of their recordings, in any archive, undecryptable, while
//! retention and legal hold keep the objects.
//!
//! Layout of the vault directory (plain files, written durably, safe for many media servers
//! writing at once on one file system):
//!
//! ```text
//! vault.json                   format and a random salt
//! customers/<customer id>      "<key id> <age1 recipient>": the key of a customer
//! keys/<key id>.age            the customer's AGE-SECRET-KEY, encrypted to the organisation
//! erased/<key id>.json         tombstone: when the key was destroyed
//! ```
//!
//! A customer id is HMAC-SHA-256(salt, reference): the vault does not hold references in the
//! clear (a reference guessed can be tested against it, as against the manifests, which hold
//! it in the clear). See the lifecycle README for the threat model (copies and backups of
//! the vault hold the keys until they are gone too).

use std::fs::{self, File};
use std::io::{self, Read, Write};
use std::path::{Path, PathBuf};

use age::secrecy::ExposeSecret;
use hmac::{Hmac, Mac};
use rand::RngCore;
use sha2::Sha256;

use crate::keys::{Recipient, Unlock};
use crate::{VaultError, durable, header};

/// The header stanza that names a recording's customer key.
pub const KEY_STANZA: &str = "vcc-customer-key";
const FORMAT: &str = "gst-vcc key vault 1";

/// A customer's key, as a recording is encrypted to it.
#[derive(Clone)]
pub struct CustomerKey {
    pub key_id: String,
    pub recipient: age::x25519::Recipient,
}

/// What the vault knows of a key.
pub enum Lookup {
    Found(age::x25519::Identity),
    Erased { erased_utc: String },
    Unknown,
}

pub struct KeyVault {
    dir: PathBuf,
    salt: Vec<u8>,
}

fn hex(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

fn unhex(text: &str) -> Option<Vec<u8>> {
    if !text.len().is_multiple_of(2) {
        return None;
    }
    (0..text.len())
        .step_by(2)
        .map(|i| u8::from_str_radix(text.get(i..i + 2)?, 16).ok())
        .collect()
}

/// Whether `key_id` is one the vault makes (32 hex digits): ids read from a recording's
/// header are checked before they name a file.
pub fn valid_key_id(key_id: &str) -> bool {
    key_id.len() == 32
        && key_id
            .bytes()
            .all(|b| b.is_ascii_hexdigit() && !b.is_ascii_uppercase())
}

impl KeyVault {
    fn error(&self, message: impl std::fmt::Display) -> VaultError {
        VaultError::KeyVault {
            path: self.dir.clone(),
            message: message.to_string(),
        }
    }

    /// Opens the vault at `dir`, which must exist.
    pub fn open(dir: &Path) -> Result<KeyVault, VaultError> {
        let vault_error = |message: String| VaultError::KeyVault {
            path: dir.to_path_buf(),
            message,
        };
        let text = fs::read_to_string(dir.join("vault.json"))
            .map_err(|e| vault_error(format!("not a key vault (vault.json: {e})")))?;
        let json: serde_json::Value = serde_json::from_str(&text)
            .map_err(|e| vault_error(format!("vault.json is not JSON: {e}")))?;
        if json["format"] != FORMAT {
            return Err(vault_error(format!("vault.json is not '{FORMAT}'")));
        }
        let salt = json["salt"]
            .as_str()
            .and_then(unhex)
            .filter(|salt| salt.len() == 32)
            .ok_or_else(|| vault_error("vault.json has no 32-byte salt".into()))?;
        Ok(KeyVault {
            dir: dir.to_path_buf(),
            salt,
        })
    }

    /// Opens the vault at `dir`, creating it (mode 0700) if there is none.
    pub fn open_or_create(dir: &Path) -> Result<KeyVault, VaultError> {
        if !dir.join("vault.json").exists() {
            let write = |source| VaultError::Write {
                path: dir.to_path_buf(),
                source,
            };
            for sub in ["customers", "keys", "erased"] {
                fs::create_dir_all(dir.join(sub)).map_err(write)?;
            }
            use std::os::unix::fs::PermissionsExt;
            fs::set_permissions(dir, fs::Permissions::from_mode(0o700)).map_err(write)?;
            let mut salt = [0u8; 32];
            rand::rngs::OsRng.fill_bytes(&mut salt);
            let json = serde_json::json!({"format": FORMAT, "salt": hex(&salt)});
            // Two servers creating the vault at once: the first one's salt stays.
            create_exclusive(&dir.join("vault.json"), json.to_string().as_bytes())
                .or_else(|e| {
                    if e.kind() == io::ErrorKind::AlreadyExists {
                        Ok(())
                    } else {
                        Err(e)
                    }
                })
                .map_err(write)?;
        }
        KeyVault::open(dir)
    }

    /// How the vault names the customer `reference` (a keyed hash).
    pub fn customer_id(&self, reference: &str) -> String {
        let mut mac = Hmac::<Sha256>::new_from_slice(&self.salt).expect("any key length");
        mac.update(reference.trim().as_bytes());
        hex(&mac.finalize().into_bytes())
    }

    fn pointer(&self, reference: &str) -> PathBuf {
        self.dir.join("customers").join(self.customer_id(reference))
    }

    fn key_file(&self, key_id: &str) -> PathBuf {
        self.dir.join("keys").join(format!("{key_id}.age"))
    }

    fn tombstone(&self, key_id: &str) -> PathBuf {
        self.dir.join("erased").join(format!("{key_id}.json"))
    }

    /// The key id and recipient of `reference`'s current key, if any.
    pub fn customer_key(&self, reference: &str) -> Result<Option<CustomerKey>, VaultError> {
        let path = self.pointer(reference);
        let text = match fs::read_to_string(&path) {
            Ok(text) => text,
            Err(e) if e.kind() == io::ErrorKind::NotFound => return Ok(None),
            Err(e) => return Err(self.error(format!("cannot read '{}': {e}", path.display()))),
        };
        let mut parts = text.split_whitespace();
        let (Some(key_id), Some(recipient)) = (parts.next(), parts.next()) else {
            return Err(self.error(format!("'{}' is damaged", path.display())));
        };
        let recipient = recipient
            .parse::<age::x25519::Recipient>()
            .map_err(|_| self.error(format!("'{}' holds no age recipient", path.display())))?;
        if !valid_key_id(key_id) {
            return Err(self.error(format!("'{}' holds no key id", path.display())));
        }
        Ok(Some(CustomerKey {
            key_id: key_id.to_string(),
            recipient,
        }))
    }

    /// The key `reference`'s recordings are encrypted to: the existing one, or a new one
    /// (its secret encrypted to `organisation` and written before it is used).
    pub fn key_for(
        &self,
        reference: &str,
        organisation: &[Recipient],
    ) -> Result<CustomerKey, VaultError> {
        if reference.trim().is_empty() {
            return Err(self.error("a customer reference is needed to choose the key"));
        }
        if organisation.is_empty() {
            return Err(VaultError::NoRecipients);
        }
        if let Some(key) = self.customer_key(reference)? {
            return Ok(key);
        }
        let identity = age::x25519::Identity::generate();
        let mut id = [0u8; 16];
        rand::rngs::OsRng.fill_bytes(&mut id);
        let key_id = hex(&id);
        let sealed = seal(identity.to_string().expose_secret(), organisation)?;
        let key_file = self.key_file(&key_id);
        durable::write_synced(&key_file, &sealed)?;
        let recipient = identity.to_public();
        let pointer = self.pointer(reference);
        match create_exclusive(&pointer, format!("{key_id} {recipient}\n").as_bytes()) {
            Ok(()) => {
                durable::sync_directory(&pointer);
                Ok(CustomerKey { key_id, recipient })
            }
            // Another recording of the customer made the key first: use that one.
            Err(e) if e.kind() == io::ErrorKind::AlreadyExists => {
                let _ = fs::remove_file(&key_file);
                self.customer_key(reference)?
                    .ok_or_else(|| self.error("the customer's key vanished while it was made"))
            }
            Err(source) => {
                let _ = fs::remove_file(&key_file);
                Err(VaultError::Write {
                    path: pointer,
                    source,
                })
            }
        }
    }

    /// The identity of key `key_id`, opened with the organisation's `unlock`.
    pub fn identity(&self, key_id: &str, unlock: &Unlock) -> Result<Lookup, VaultError> {
        if !valid_key_id(key_id) {
            return Ok(Lookup::Unknown);
        }
        // A tombstone wins over a key file an interrupted erasure left.
        if let Ok(text) = fs::read_to_string(self.tombstone(key_id)) {
            let erased_utc = serde_json::from_str::<serde_json::Value>(&text)
                .ok()
                .and_then(|json| json["erased_utc"].as_str().map(str::to_string))
                .unwrap_or_else(|| "an unknown time".into());
            return Ok(Lookup::Erased { erased_utc });
        }
        let path = self.key_file(key_id);
        let sealed = match fs::read(&path) {
            Ok(sealed) => sealed,
            Err(e) if e.kind() == io::ErrorKind::NotFound => return Ok(Lookup::Unknown),
            Err(e) => return Err(self.error(format!("cannot read '{}': {e}", path.display()))),
        };
        let text = open_sealed(&sealed, &path, unlock)?;
        let identity = text
            .trim()
            .parse::<age::x25519::Identity>()
            .map_err(|_| self.error(format!("'{}' holds no age identity", path.display())))?;
        Ok(Lookup::Found(identity))
    }

    /// Destroys `reference`'s key (tombstone first, so an interrupted erasure is finished by
    /// a rerun and never reads as a live key). `None`: the customer has no key.
    pub fn erase(&self, reference: &str, erased_utc: &str) -> Result<Option<String>, VaultError> {
        let pointer = self.pointer(reference);
        let Some(key) = self.customer_key(reference)? else {
            return Ok(None);
        };
        let tombstone = serde_json::json!({
            "key_id": key.key_id,
            "customer_id": self.customer_id(reference),
            "erased_utc": erased_utc,
        });
        let tombstone_path = self.tombstone(&key.key_id);
        if !tombstone_path.exists() {
            durable::write_synced(&tombstone_path, tombstone.to_string().as_bytes())?;
        }
        let key_file = self.key_file(&key.key_id);
        shred(&key_file).map_err(|source| VaultError::Write {
            path: key_file.clone(),
            source,
        })?;
        durable::sync_directory(&key_file);
        match fs::remove_file(&pointer) {
            Ok(()) => durable::sync_directory(&pointer),
            Err(e) if e.kind() == io::ErrorKind::NotFound => (),
            Err(source) => {
                return Err(VaultError::Write {
                    path: pointer,
                    source,
                });
            }
        }
        Ok(Some(key.key_id))
    }
}

/// Creates `path` with `content` unless it exists (atomically: written aside, then linked).
fn create_exclusive(path: &Path, content: &[u8]) -> io::Result<()> {
    let mut suffix = [0u8; 8];
    rand::rngs::OsRng.fill_bytes(&mut suffix);
    let aside = durable::with_suffix(path, &format!(".{}.tmp", hex(&suffix)));
    let result = (|| {
        let mut file = File::options().write(true).create_new(true).open(&aside)?;
        file.write_all(content)?;
        file.sync_all()?;
        fs::hard_link(&aside, path)
    })();
    let _ = fs::remove_file(&aside);
    result
}

/// Overwrites the file with zeros, syncs, and removes it (best effort against the disk:
/// copy-on-write file systems and backups keep old blocks; see the README).
fn shred(path: &Path) -> io::Result<()> {
    let length = match fs::metadata(path) {
        Ok(metadata) => metadata.len(),
        Err(e) if e.kind() == io::ErrorKind::NotFound => return Ok(()),
        Err(e) => return Err(e),
    };
    let mut file = File::options().write(true).open(path)?;
    file.write_all(&vec![0u8; length as usize])?;
    file.sync_all()?;
    fs::remove_file(path)
}

fn seal(secret: &str, organisation: &[Recipient]) -> Result<Vec<u8>, VaultError> {
    let failed = |e: &dyn std::fmt::Display| VaultError::BadRecipient(format!("cannot seal: {e}"));
    let encryptor =
        age::Encryptor::with_recipients(organisation.iter().map(|r| &r.key as &dyn age::Recipient))
            .map_err(|e| failed(&e))?;
    let mut sealed = Vec::new();
    let mut writer = encryptor.wrap_output(&mut sealed).map_err(|e| failed(&e))?;
    writer
        .write_all(secret.as_bytes())
        .map_err(|e| failed(&e))?;
    writer.finish().map_err(|e| failed(&e))?;
    Ok(sealed)
}

fn open_sealed(sealed: &[u8], path: &Path, unlock: &Unlock) -> Result<String, VaultError> {
    let mut reader = crate::read::open_reader(sealed, path, unlock)?;
    let mut text = String::new();
    reader
        .read_to_string(&mut text)
        .map_err(|e| VaultError::Decrypt {
            path: path.to_path_buf(),
            message: e.to_string(),
        })?;
    Ok(text)
}

/// The customer key id named in the header of the recording at `path`, if any.
pub fn recording_key_id(path: &Path) -> Result<Option<String>, VaultError> {
    let mut head = Vec::new();
    File::open(path)
        .and_then(|file| file.take(header::MAX_HEADER as u64).read_to_end(&mut head))
        .map_err(|source| VaultError::Read {
            what: "recording",
            path: path.to_path_buf(),
            source,
        })?;
    let header = header::parse(&head).map_err(|message| VaultError::BadHeader {
        path: path.to_path_buf(),
        message,
    })?;
    Ok(header
        .stanzas
        .iter()
        .find(|stanza| stanza.tag == KEY_STANZA)
        .and_then(|stanza| stanza.args.first())
        .filter(|id| valid_key_id(id))
        .cloned())
}

/// How to decrypt the recording at `path`: with `unlock` if it is encrypted to the
/// organisation, or with its customer's key from `vault` (opened with `unlock`). A
/// destroyed key is told as such.
pub fn unlock_recording(
    path: &Path,
    unlock: Unlock,
    vault: Option<&Path>,
) -> Result<Unlock, VaultError> {
    let Some(key_id) = recording_key_id(path)? else {
        return Ok(unlock);
    };
    let Some(vault_dir) = vault else {
        return Err(VaultError::NeedsKeyVault {
            path: path.to_path_buf(),
            key_id,
        });
    };
    match KeyVault::open(vault_dir)?.identity(&key_id, &unlock)? {
        Lookup::Found(identity) => Ok(Unlock::Key {
            identity,
            description: format!("customer key {key_id} of the key vault"),
        }),
        Lookup::Erased { erased_utc } => Err(VaultError::KeyErased {
            path: path.to_path_buf(),
            key_id,
            erased_utc,
        }),
        Lookup::Unknown => Err(VaultError::KeyUnknown {
            path: path.to_path_buf(),
            key_id,
            vault: vault_dir.to_path_buf(),
        }),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::keys::{Protection, parse_recipients};
    use crate::writer::AgeWriter;

    fn scratch(name: &str) -> PathBuf {
        let dir = std::env::temp_dir().join(format!("vault-keys-{name}-{}", std::process::id()));
        let _ = fs::remove_dir_all(&dir);
        fs::create_dir_all(&dir).unwrap();
        dir
    }

    fn organisation(dir: &Path) -> (Vec<Recipient>, Unlock) {
        let identity = age::x25519::Identity::generate();
        fs::write(dir.join("org.txt"), identity.to_string().expose_secret()).unwrap();
        let recipients = parse_recipients(&identity.to_public().to_string(), None).unwrap();
        (recipients, Unlock::IdentityFile(dir.join("org.txt")))
    }

    fn record(path: &Path, key: &CustomerKey, content: &[u8]) {
        let file = File::create(path).unwrap();
        let mut writer = AgeWriter::create(file, &Protection::Customer(key.clone())).unwrap();
        writer.write(content).unwrap();
        writer.finish().unwrap();
    }

    #[test]
    fn a_customer_key_opens_only_through_the_vault_until_erased() {
        let dir = scratch("erase");
        let (org, unlock) = organisation(&dir);
        let vault = KeyVault::open_or_create(&dir.join("vault")).unwrap();
        let key = vault.key_for("CUST-42", &org).unwrap();
        assert_eq!(vault.key_for(" CUST-42 ", &org).unwrap().key_id, key.key_id);
        let other = vault.key_for("CUST-7", &org).unwrap();
        assert_ne!(other.key_id, key.key_id);
        let recording = dir.join("call.age");
        record(&recording, &key, b"card number spoken here");

        assert_eq!(
            recording_key_id(&recording).unwrap(),
            Some(key.key_id.clone())
        );
        // The organisation's key alone does not open it.
        let error = crate::read::decrypt_to(&recording, &unlock, &dir.join("x")).unwrap_err();
        assert!(matches!(error, VaultError::WrongKey { .. }), "{error}");
        let error = unlock_recording(&recording, Unlock::IdentityFile(dir.join("org.txt")), None)
            .err()
            .unwrap();
        assert!(error.to_string().contains("key vault"), "{error}");
        // Through the vault it does.
        let opened = unlock_recording(&recording, unlock, Some(&dir.join("vault"))).unwrap();
        crate::read::decrypt_to(&recording, &opened, &dir.join("plain")).unwrap();
        assert_eq!(
            fs::read(dir.join("plain")).unwrap(),
            b"card number spoken here"
        );
        // The vault holds no secret in the clear.
        for entry in fs::read_dir(dir.join("vault/keys")).unwrap() {
            let text = fs::read(entry.unwrap().path()).unwrap();
            assert!(!String::from_utf8_lossy(&text).contains("AGE-SECRET-KEY"));
        }

        assert_eq!(
            vault.erase("CUST-42", "2026-12-01T12:00:00Z").unwrap(),
            Some(key.key_id.clone())
        );
        assert_eq!(
            vault.erase("CUST-42", "later").unwrap(),
            None,
            "already erased"
        );
        let unlock = Unlock::IdentityFile(dir.join("org.txt"));
        let error = unlock_recording(&recording, unlock, Some(&dir.join("vault")))
            .err()
            .unwrap();
        assert!(matches!(error, VaultError::KeyErased { .. }), "{error}");
        assert!(error.to_string().contains("key erased"), "{error}");
        assert!(
            error.to_string().contains("2026-12-01T12:00:00Z"),
            "{error}"
        );
        // The other customer's key is untouched; a new call of the erased one gets a new key.
        let unlock = Unlock::IdentityFile(dir.join("org.txt"));
        assert!(matches!(
            vault.identity(&other.key_id, &unlock).unwrap(),
            Lookup::Found(_)
        ));
        assert_ne!(vault.key_for("CUST-42", &org).unwrap().key_id, key.key_id);
        fs::remove_dir_all(dir).unwrap();
    }

    #[test]
    fn hostile_key_ids_and_damaged_vaults_are_refused() {
        assert!(!valid_key_id("../../../etc/passwd"));
        assert!(!valid_key_id("ABCDEF0123456789abcdef0123456789"));
        assert!(valid_key_id("abcdef0123456789abcdef0123456789"));
        let dir = scratch("hostile");
        let error = KeyVault::open(&dir).err().unwrap();
        assert!(error.to_string().contains("not a key vault"), "{error}");
        fs::write(dir.join("vault.json"), "{\"format\":\"other\"}").unwrap();
        assert!(KeyVault::open(&dir).is_err());
        fs::remove_dir_all(dir).unwrap();
    }

    #[test]
    fn concurrent_first_recordings_of_a_customer_share_one_key() {
        let dir = scratch("race");
        let (org, _) = organisation(&dir);
        KeyVault::open_or_create(&dir.join("vault")).unwrap();
        let ids: Vec<String> = std::thread::scope(|scope| {
            let handles: Vec<_> = (0..8)
                .map(|_| {
                    let org = org.clone();
                    let path = dir.join("vault");
                    scope.spawn(move || {
                        KeyVault::open(&path)
                            .unwrap()
                            .key_for("CUST-1", &org)
                            .unwrap()
                            .key_id
                    })
                })
                .collect();
            handles.into_iter().map(|h| h.join().unwrap()).collect()
        });
        assert!(ids.iter().all(|id| id == &ids[0]), "{ids:?}");
        assert_eq!(fs::read_dir(dir.join("vault/keys")).unwrap().count(), 1);
        fs::remove_dir_all(dir).unwrap();
    }
}

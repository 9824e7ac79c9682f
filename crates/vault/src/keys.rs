//! Keys: age recipients (public keys the media server encrypts to), age identities (secret
//! keys that decrypt, kept off the media server), and minisign signing keys. Errors name the
//! file and line but never echo what looks like key material.

use std::path::{Path, PathBuf};
use std::str::FromStr;

use age::secrecy::{ExposeSecret, SecretString};
use sha2::{Digest, Sha256};

use crate::VaultError;

/// An age recipient the recording is encrypted to, with the text it was given as.
#[derive(Clone)]
pub struct Recipient {
    pub key: age::x25519::Recipient,
    pub text: String,
}

impl std::fmt::Debug for Recipient {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "Recipient({})", self.text)
    }
}

impl Recipient {
    /// A short, stable name for the key: the first 16 hex digits of the SHA-256 of its
    /// `age1...` text (what signatures and manifests cite).
    pub fn fingerprint(&self) -> String {
        fingerprint(&self.text)
    }
}

/// The fingerprint of an `age1...` public key text.
pub fn fingerprint(text: &str) -> String {
    Sha256::digest(text.trim().as_bytes())
        .iter()
        .take(8)
        .map(|byte| format!("{byte:02x}"))
        .collect()
}

/// What a token that is not a recipient looks like, without echoing it: key material must
/// not end up in logs.
fn describe_bad_token(token: &str) -> String {
    if token.starts_with("AGE-SECRET-KEY-") {
        "an age identity (a SECRET key), not a recipient: give its public key (age-keygen -y \
         key.txt), and keep the identity off the media server"
            .to_string()
    } else if token.starts_with("age1") {
        format!("a malformed age public key ({} characters)", token.len())
    } else {
        format!(
            "not an age public key (expected age1..., got {} characters starting '{}')",
            token.len(),
            token.chars().take(4).collect::<String>()
        )
    }
}

/// Parses recipients given inline (separated by commas, spaces or newlines) and/or in a
/// recipients file (one per line, `#` comments), as `age -R` reads them. An empty file is an
/// error: encrypting to nobody is never what was meant.
pub fn parse_recipients(inline: &str, file: Option<&Path>) -> Result<Vec<Recipient>, VaultError> {
    let mut sources: Vec<(String, String)> = vec![("recipients".into(), inline.replace(',', "\n"))];
    if let Some(path) = file {
        let content = std::fs::read_to_string(path).map_err(|source| VaultError::Read {
            what: "recipients file",
            path: path.to_path_buf(),
            source,
        })?;
        sources.push((format!("recipients file '{}'", path.display()), content));
    }
    let mut recipients = Vec::new();
    for (name, text) in &sources {
        let before = recipients.len();
        for (number, line) in text.lines().enumerate() {
            if line.trim_start().starts_with('#') {
                continue;
            }
            for token in line.split_whitespace() {
                let key = age::x25519::Recipient::from_str(token).map_err(|_| {
                    VaultError::BadRecipient(format!(
                        "{name}, line {}: {}",
                        number + 1,
                        describe_bad_token(token)
                    ))
                })?;
                recipients.push(Recipient {
                    key,
                    text: token.to_string(),
                });
            }
        }
        if name != "recipients" && recipients.len() == before {
            return Err(VaultError::BadRecipient(format!(
                "{name} holds no recipient (one age public key, age1..., per line)"
            )));
        }
    }
    if recipients.is_empty() {
        return Err(VaultError::NoRecipients);
    }
    Ok(recipients)
}

/// How a recording is encrypted.
#[derive(Clone)]
pub enum Protection {
    Recipients(Vec<Recipient>),
    /// scrypt passphrase: for tests and development only (slow by design, and whoever can
    /// write recordings could read them).
    Passphrase(String),
    /// A customer's own key from the key vault, and only that (crypto-shredding): the header
    /// names it.
    Customer(crate::key_vault::CustomerKey),
}

impl Protection {
    /// The age recipients that wrap the file key.
    pub fn age_recipients(&self) -> Result<Vec<Box<dyn age::Recipient + Send>>, VaultError> {
        match self {
            Protection::Recipients(recipients) if recipients.is_empty() => {
                Err(VaultError::NoRecipients)
            }
            Protection::Recipients(recipients) => Ok(recipients
                .iter()
                .map(|r| Box::new(r.key.clone()) as Box<dyn age::Recipient + Send>)
                .collect()),
            Protection::Passphrase(passphrase) => Ok(vec![Box::new(age::scrypt::Recipient::new(
                SecretString::from(passphrase.clone()),
            ))]),
            Protection::Customer(key) => Ok(vec![Box::new(key.recipient.clone())]),
        }
    }

    /// Fingerprints of the recipients (empty for a passphrase).
    pub fn fingerprints(&self) -> Vec<String> {
        match self {
            Protection::Recipients(recipients) => {
                recipients.iter().map(Recipient::fingerprint).collect()
            }
            Protection::Passphrase(_) => Vec::new(),
            Protection::Customer(key) => vec![fingerprint(&key.recipient.to_string())],
        }
    }
}

/// How a recording is decrypted.
pub enum Unlock {
    IdentityFile(PathBuf),
    Passphrase(String),
    /// A key already opened (a customer's, from the key vault).
    Key {
        identity: age::x25519::Identity,
        description: String,
    },
}

impl Unlock {
    pub fn identities(&self) -> Result<Vec<Box<dyn age::Identity + Send + Sync>>, VaultError> {
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
                        message: "the file holds no AGE-SECRET-KEY line".into(),
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
            Unlock::Key { identity, .. } => Ok(vec![Box::new(identity.clone())]),
        }
    }

    pub fn describe(&self) -> String {
        match self {
            Unlock::IdentityFile(path) => path.display().to_string(),
            Unlock::Passphrase(_) => "the passphrase".into(),
            Unlock::Key { description, .. } => description.clone(),
        }
    }
}

/// Loads an unencrypted minisign secret key (as `minisign -G -W` or `vcc-vault keygen` make).
pub fn load_signing_key(path: &Path) -> Result<minisign::SecretKey, VaultError> {
    let text = std::fs::read_to_string(path).map_err(|source| VaultError::Read {
        what: "signing key",
        path: path.to_path_buf(),
        source,
    })?;
    let key_box =
        minisign::SecretKeyBox::from_string(&text).map_err(|_| VaultError::SigningKey {
            path: path.to_path_buf(),
            message: "not a minisign secret key file".into(),
        })?;
    key_box
        .into_unencrypted_secret_key()
        .map_err(|_| VaultError::SigningKey {
            path: path.to_path_buf(),
            message: "cannot use it without a password (the media server needs a key without \
                      password: minisign -G -W, or vcc-vault keygen)"
                .into(),
        })
}

/// A new age X25519 identity: (the identity file text, its public key).
pub fn generate_identity() -> (String, String) {
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

    fn temp(name: &str) -> PathBuf {
        let dir = std::env::temp_dir().join(format!("vault-keys-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        dir.join(name)
    }

    #[test]
    fn recipients_parse_inline_and_from_file() {
        let first = age::x25519::Identity::generate().to_public();
        let second = age::x25519::Identity::generate().to_public();
        let file = temp("recipients.txt");
        std::fs::write(&file, format!("# archive\n{second}\n")).unwrap();
        let parsed = parse_recipients(&first.to_string(), Some(&file)).unwrap();
        assert_eq!(parsed.len(), 2);
        assert_eq!(parsed[1].fingerprint().len(), 16);
        let error = parse_recipients("age1notakey", None)
            .unwrap_err()
            .to_string();
        assert!(error.contains("malformed"), "{error}");
        assert!(
            parse_recipients("", Some(Path::new("/nonexistent/r.txt")))
                .unwrap_err()
                .to_string()
                .contains("/nonexistent/r.txt")
        );
    }

    #[test]
    fn an_empty_recipients_file_is_an_error() {
        let file = temp("empty.txt");
        std::fs::write(&file, "# nobody\n\n").unwrap();
        let error = parse_recipients("", Some(&file)).unwrap_err().to_string();
        assert!(error.contains("holds no recipient"), "{error}");
        assert!(matches!(
            parse_recipients("", None),
            Err(VaultError::NoRecipients)
        ));
    }

    #[test]
    fn a_secret_key_given_as_recipient_is_never_echoed() {
        let (identity_text, _) = generate_identity();
        let file = temp("identity-as-recipients.txt");
        std::fs::write(&file, &identity_text).unwrap();
        let error = parse_recipients("", Some(&file)).unwrap_err().to_string();
        let secret = identity_text
            .lines()
            .find(|l| l.starts_with("AGE-SECRET-KEY-"))
            .unwrap();
        assert!(!error.contains(secret), "{error}");
        assert!(!error.contains(&secret[15..25]), "{error}");
        assert!(error.contains("SECRET key"), "{error}");
        assert!(error.contains("line 3"), "{error}");
    }
}

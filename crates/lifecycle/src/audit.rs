//! The audit log: who did what with which recording, append-only, hash-chained and signed.
//!
//! One JSON object per line:
//! `{"seq":N,"time_utc":…,"os_user":…,"key_id":…,"action":…,"target":…,"details":{…},
//! "prev_sha256":…,"sig":…}` where `prev_sha256` is the SHA-256 of the line before (64 zeros
//! for the first) and `sig` a minisign signature (base64) of the line's bytes up to `,"sig"`
//! plus `}`. Each append rewrites `<log>.head`, a signed line naming the number of lines and
//! the last line's hash, so that cutting lines off the end is detected too.
//!
//! [`verify`] detects any edited line (signature), removed or reordered line (sequence,
//! chain) and removed tail (head). An attacker holding the audit signing key can rewrite the
//! whole log: keep that key apart from the people audited (see README.md).

use std::fs::File;
use std::io::{Read, Seek, SeekFrom, Write};
use std::path::{Path, PathBuf};

use base64::Engine;
use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};

use crate::LifecycleError;

const GENESIS: &str = "0000000000000000000000000000000000000000000000000000000000000000";
/// A line is never longer than this (details are bounded by the callers).
const MAX_LINE: u64 = 64 * 1024;

/// One entry, without its signature, in its signed field order.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
pub struct Entry {
    pub seq: u64,
    pub time_utc: String,
    pub os_user: String,
    /// Id of the minisign key that signed the entry.
    pub key_id: String,
    /// `decrypt`, `recover`, `archive`, `hold`, `release`, `delete`, `search`, `export`...
    pub action: String,
    /// The recording, call or query acted on.
    pub target: String,
    pub details: std::collections::BTreeMap<String, String>,
    pub prev_sha256: String,
}

#[derive(Serialize, Deserialize)]
struct Head {
    lines: u64,
    last_sha256: String,
}

fn io_error<'a>(
    what: &'static str,
    path: &'a Path,
) -> impl Fn(std::io::Error) -> LifecycleError + 'a {
    move |source| LifecycleError::Io {
        what,
        path: path.to_path_buf(),
        source,
    }
}

fn head_path(log: &Path) -> PathBuf {
    let mut name = log.as_os_str().to_owned();
    name.push(".head");
    PathBuf::from(name)
}

fn hex_sha256(bytes: &[u8]) -> String {
    Sha256::digest(bytes)
        .iter()
        .map(|byte| format!("{byte:02x}"))
        .collect()
}

fn os_user() -> String {
    std::env::var("USER")
        .or_else(|_| std::env::var("LOGNAME"))
        .unwrap_or_else(|_| format!("uid {}", unsafe_free_uid()))
}

fn unsafe_free_uid() -> String {
    std::fs::read_to_string("/proc/self/status")
        .ok()
        .and_then(|status| {
            status
                .lines()
                .find(|line| line.starts_with("Uid:"))
                .and_then(|line| line.split_whitespace().nth(1).map(str::to_string))
        })
        .unwrap_or_else(|| "?".into())
}

/// Now, RFC 3339 UTC.
pub fn now_utc() -> String {
    let now = time::OffsetDateTime::now_utc();
    now.format(&time::format_description::well_known::Rfc3339)
        .unwrap_or_default()
}

/// `"{…}"` + signature -> the line `{…,"sig":"…"}`.
fn signed_line(json: &str, key: &minisign::SecretKey) -> Result<String, LifecycleError> {
    let signature = vault::sign::sign_bytes(json.as_bytes(), key, "gst-vcc audit")?;
    let sig = base64::engine::general_purpose::STANDARD.encode(signature);
    Ok(format!(
        "{},\"sig\":\"{sig}\"}}",
        json.strip_suffix('}').expect("a JSON object")
    ))
}

/// The signed bytes and the signature of a line, if it has the form [`signed_line`] writes.
fn split_signed(line: &str) -> Option<(String, String)> {
    const FIELD: &str = ",\"sig\":\"";
    let at = line.rfind(FIELD)?;
    let sig = line[at + FIELD.len()..].strip_suffix("\"}")?;
    let signature = base64::engine::general_purpose::STANDARD.decode(sig).ok()?;
    Some((
        format!("{}}}", &line[..at]),
        String::from_utf8(signature).ok()?,
    ))
}

/// The audit log at `path`, appended to with `key`.
pub struct AuditLog {
    path: PathBuf,
    key: minisign::SecretKey,
    key_id: String,
}

impl AuditLog {
    /// `key` is the minisign secret key file that signs entries, `public_key` its public
    /// half (to name the key in each entry).
    pub fn open(path: &Path, key: &Path) -> Result<AuditLog, LifecycleError> {
        let secret = vault::keys::load_signing_key(key)?;
        let key_id = key_id_of(&secret);
        Ok(AuditLog {
            path: path.to_path_buf(),
            key: secret,
            key_id,
        })
    }

    /// Appends one entry (durably: the line and the head are synced before this returns).
    /// Concurrent appenders (several `vcc-vault` processes) take turns on a file lock.
    pub fn append(
        &self,
        action: &str,
        target: &str,
        details: &[(&str, String)],
    ) -> Result<Entry, LifecycleError> {
        let io = io_error("audit log", &self.path);
        let mut file = File::options()
            .read(true)
            .append(true)
            .create(true)
            .open(&self.path)
            .map_err(&io)?;
        file.lock().map_err(&io)?;
        let (lines, last) = last_line(&mut file, &self.path)?;
        let (seq, prev_sha256) = match &last {
            Some(line) => {
                let entry: Entry =
                    serde_json::from_str(line).map_err(|e| LifecycleError::Manifest {
                        path: self.path.clone(),
                        message: format!("its last line is not an audit entry: {e}"),
                    })?;
                (entry.seq + 1, hex_sha256(line.as_bytes()))
            }
            None => (0, GENESIS.to_string()),
        };
        debug_assert_eq!(seq, lines);
        let entry = Entry {
            seq,
            time_utc: now_utc(),
            os_user: os_user(),
            key_id: self.key_id.clone(),
            action: action.to_string(),
            target: target.to_string(),
            details: details
                .iter()
                .map(|(name, value)| (name.to_string(), value.clone()))
                .collect(),
            prev_sha256,
        };
        let json = serde_json::to_string(&entry).expect("entries serialise");
        let line = signed_line(&json, &self.key)?;
        file.write_all(format!("{line}\n").as_bytes())
            .and_then(|_| file.sync_all())
            .map_err(&io)?;
        let head = serde_json::to_string(&Head {
            lines: seq + 1,
            last_sha256: hex_sha256(line.as_bytes()),
        })
        .expect("heads serialise");
        let head_line = signed_line(&head, &self.key)?;
        vault::durable::write_synced(&head_path(&self.path), head_line.as_bytes())?;
        Ok(entry)
    }
}

fn key_id_of(key: &minisign::SecretKey) -> String {
    minisign::PublicKey::from_secret_key(key)
        .map(|public| {
            public
                .keynum()
                .iter()
                .rev()
                .map(|byte| format!("{byte:02X}"))
                .collect()
        })
        .unwrap_or_default()
}

/// (number of lines, the last line) of the log, reading only its tail when it is long.
fn last_line(file: &mut File, path: &Path) -> Result<(u64, Option<String>), LifecycleError> {
    let io = io_error("audit log", path);
    let length = file.seek(SeekFrom::End(0)).map_err(&io)?;
    if length == 0 {
        return Ok((0, None));
    }
    let start = length.saturating_sub(MAX_LINE);
    file.seek(SeekFrom::Start(start)).map_err(&io)?;
    let mut tail = String::new();
    file.read_to_string(&mut tail).map_err(&io)?;
    let last = tail
        .trim_end_matches('\n')
        .rsplit('\n')
        .next()
        .unwrap_or_default()
        .to_string();
    let entry: Entry = serde_json::from_str(&last).map_err(|e| LifecycleError::Manifest {
        path: path.to_path_buf(),
        message: format!("its last line is not an audit entry ({e}): run vcc-vault audit verify"),
    })?;
    Ok((entry.seq + 1, Some(last)))
}

/// What [`verify`] found.
#[derive(Debug, Serialize)]
pub struct Verification {
    pub lines: u64,
    /// Problems, each naming the line (1-based); empty if the log is intact.
    pub problems: Vec<String>,
}

/// Checks every line's signature, the sequence, the hash chain and the head.
pub fn verify(log: &Path, public_key: &Path) -> Result<Verification, LifecycleError> {
    let public = minisign::PublicKey::from_file(public_key)
        .map_err(|e| LifecycleError::Key(format!("public key '{}': {e}", public_key.display())))?;
    let text = std::fs::read_to_string(log).map_err(io_error("audit log", log))?;
    let mut problems = Vec::new();
    let mut prev = GENESIS.to_string();
    let mut lines = 0u64;
    for (number, line) in text.lines().enumerate() {
        let number = number + 1;
        lines += 1;
        let signed = split_signed(line)
            .filter(|(bytes, signature)| {
                vault::sign::verify_bytes(bytes.as_bytes(), signature, &public).is_ok()
            })
            .map(|(bytes, _)| bytes);
        match signed.and_then(|bytes| serde_json::from_str::<Entry>(&bytes).ok()) {
            None => problems.push(format!(
                "line {number}: its signature does not verify (edited, or signed by another key)"
            )),
            Some(entry) => {
                if entry.seq != number as u64 - 1 {
                    problems.push(format!(
                        "line {number}: entry {} where entry {} belongs (lines removed or reordered)",
                        entry.seq,
                        number - 1
                    ));
                }
                if entry.prev_sha256 != prev {
                    problems.push(format!(
                        "line {number}: it does not follow the line before (chain broken)"
                    ));
                }
            }
        }
        prev = hex_sha256(line.as_bytes());
    }
    match std::fs::read_to_string(head_path(log)) {
        Err(_) => problems.push(format!(
            "{} is missing: lines cut off the end cannot be ruled out",
            head_path(log).display()
        )),
        Ok(head) => {
            let verified = split_signed(head.trim_end())
                .filter(|(bytes, signature)| {
                    vault::sign::verify_bytes(bytes.as_bytes(), signature, &public).is_ok()
                })
                .and_then(|(bytes, _)| serde_json::from_str::<Head>(&bytes).ok());
            match verified {
                None => problems.push("the head's signature does not verify".into()),
                Some(head) if head.lines != lines || head.last_sha256 != prev => {
                    problems.push(format!(
                        "the head says {} lines ending with another line: lines were removed \
                         from or added at the end ({lines} now)",
                        head.lines
                    ))
                }
                Some(_) => (),
            }
        }
    }
    Ok(Verification { lines, problems })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn setup(name: &str) -> (PathBuf, PathBuf, PathBuf) {
        let dir =
            std::env::temp_dir().join(format!("lifecycle-audit-{name}-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&dir);
        std::fs::create_dir_all(&dir).unwrap();
        let (secret, public) = vault::keys::generate_signing_keys().unwrap();
        std::fs::write(dir.join("audit.key"), secret).unwrap();
        std::fs::write(dir.join("audit.pub"), public).unwrap();
        let log = dir.join("audit.jsonl");
        let audit = AuditLog::open(&log, &dir.join("audit.key")).unwrap();
        for (action, target) in [
            ("decrypt", "c-1.mp4.age"),
            ("hold", "acme/c-1"),
            ("search", "agent=alice"),
            ("release", "acme/c-1"),
        ] {
            audit
                .append(action, target, &[("reason", "case 4711".into())])
                .unwrap();
        }
        (dir.clone(), log, dir.join("audit.pub"))
    }

    fn problems(log: &Path, public: &Path) -> Vec<String> {
        verify(log, public).unwrap().problems
    }

    #[test]
    fn an_intact_log_verifies() {
        let (dir, log, public) = setup("intact");
        let result = verify(&log, &public).unwrap();
        assert_eq!(result.lines, 4);
        assert!(result.problems.is_empty(), "{:?}", result.problems);
        let first: Entry = serde_json::from_str(
            &split_signed(
                std::fs::read_to_string(&log)
                    .unwrap()
                    .lines()
                    .next()
                    .unwrap(),
            )
            .unwrap()
            .0,
        )
        .unwrap();
        assert_eq!(first.action, "decrypt");
        assert_eq!(first.prev_sha256, GENESIS);
        assert_eq!(first.key_id.len(), 16);
        std::fs::remove_dir_all(dir).unwrap();
    }

    #[test]
    fn edited_removed_reordered_and_cut_lines_are_detected() {
        let (dir, log, public) = setup("tamper");
        let original = std::fs::read_to_string(&log).unwrap();
        let lines: Vec<&str> = original.lines().collect();
        let write = |lines: &[&str]| {
            std::fs::write(
                &log,
                lines.iter().map(|l| format!("{l}\n")).collect::<String>(),
            )
            .unwrap()
        };
        // Edited: another target.
        let edited = lines[1].replace("acme/c-1", "acme/c-2");
        write(&[lines[0], &edited, lines[2], lines[3]]);
        let found = problems(&log, &public);
        assert!(
            found.iter().any(|p| p.starts_with("line 2: its signature")),
            "{found:?}"
        );
        // Removed from the middle.
        write(&[lines[0], lines[2], lines[3]]);
        let found = problems(&log, &public);
        assert!(
            found
                .iter()
                .any(|p| p.contains("line 2: entry 2 where entry 1")),
            "{found:?}"
        );
        // Reordered.
        write(&[lines[0], lines[2], lines[1], lines[3]]);
        assert!(!problems(&log, &public).is_empty());
        // Cut off the end.
        write(&lines[..3]);
        let found = problems(&log, &public);
        assert!(
            found.iter().any(|p| p.contains("the head says 4 lines")),
            "{found:?}"
        );
        // A line signed by another key.
        write(&lines);
        assert!(problems(&log, &public).is_empty());
        let (secret, _) = vault::keys::generate_signing_keys().unwrap();
        std::fs::write(dir.join("other.key"), secret).unwrap();
        let other = AuditLog::open(&log, &dir.join("other.key")).unwrap();
        other.append("erase", "acme/c-1", &[]).unwrap();
        let found = problems(&log, &public);
        assert!(
            found.iter().any(|p| p.starts_with("line 5: its signature")),
            "{found:?}"
        );
        std::fs::remove_dir_all(dir).unwrap();
    }
}

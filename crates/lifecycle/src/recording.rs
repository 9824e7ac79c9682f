//! A finished recording on local disk as the recorder leaves it, and where it goes in a bucket.
//!
//! `<name>.age` (the ciphertext), `<name>.age.minisig`, `<name>.age.json` (the manifest) and
//! `<name>.age.json.minisig`. In the bucket they keep their names under a prefix a person can
//! browse: `<tenant>/<yyyy>/<mm>/<dd>/<call-id>/`, the date being the call's start (UTC).

use std::path::{Path, PathBuf};

use vault::sign;

use crate::LifecycleError;

/// The four files of one recording, checked: both signatures verify and the manifest
/// describes this recording.
#[derive(Debug, Clone)]
pub struct LocalRecording {
    pub recording: PathBuf,
    /// Size and hex SHA-256 of the recording (from its verified signature).
    pub bytes: u64,
    pub sha256: String,
    pub manifest: PathBuf,
    pub call: CallFields,
    /// Start of the call, `YYYY-MM-DDTHH:MM:SS...Z`.
    pub started_utc: String,
}

/// The manifest's call metadata.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct CallFields {
    pub call_id: String,
    pub agent_id: Option<String>,
    pub customer_reference: Option<String>,
    pub queue: Option<String>,
    pub direction: Option<String>,
}

impl LocalRecording {
    /// Opens the recording at `recording` with its signatures and manifest beside it, and
    /// verifies them with the organisation's public key: a tampered or swapped file is
    /// refused before anything is uploaded.
    pub fn open(recording: &Path, public_key: &Path) -> Result<LocalRecording, LifecycleError> {
        let manifest = manifest_path(recording);
        let binding = sign::verify_file(recording, public_key)?;
        sign::verify_manifest(&manifest, recording, public_key)?;
        let text = std::fs::read(&manifest).map_err(|source| LifecycleError::Io {
            what: "manifest",
            path: manifest.clone(),
            source,
        })?;
        let json: serde_json::Value =
            serde_json::from_slice(&text).map_err(|e| LifecycleError::Manifest {
                path: manifest.clone(),
                message: e.to_string(),
            })?;
        let invalid = |message: &str| LifecycleError::Manifest {
            path: manifest.clone(),
            message: message.to_string(),
        };
        let call = &json["call"];
        let text_field = |name: &str| {
            call[name]
                .as_str()
                .filter(|value| !value.is_empty())
                .map(str::to_string)
        };
        let call_id = text_field("call_id").ok_or_else(|| invalid("it has no call.call_id"))?;
        let started_utc = json["started_utc"]
            .as_str()
            .filter(|started| is_utc_timestamp(started))
            .ok_or_else(|| invalid("it has no started_utc (a recording that never started)"))?
            .to_string();
        Ok(LocalRecording {
            recording: recording.to_path_buf(),
            bytes: binding.bytes,
            sha256: binding.sha256,
            manifest,
            call: CallFields {
                call_id,
                agent_id: text_field("agent_id"),
                customer_reference: text_field("customer_reference"),
                queue: text_field("queue"),
                direction: text_field("direction"),
            },
            started_utc,
        })
    }

    /// The four local files, the recording first.
    pub fn files(&self) -> [PathBuf; 4] {
        [
            self.recording.clone(),
            sign::signature_path(&self.recording),
            self.manifest.clone(),
            sign::signature_path(&self.manifest),
        ]
    }

    /// The bucket prefix of this recording (ends with `/`).
    pub fn prefix(&self, tenant: &str) -> Result<String, LifecycleError> {
        let date = &self.started_utc;
        Ok(format!(
            "{}/{}/{}/{}/{}/",
            key_component("tenant", tenant)?,
            &date[0..4],
            &date[5..7],
            &date[8..10],
            key_component("call id", &self.call.call_id)?
        ))
    }
}

/// `<recording>.json`.
pub fn manifest_path(recording: &Path) -> PathBuf {
    let mut name = recording.as_os_str().to_owned();
    name.push(".json");
    PathBuf::from(name)
}

fn is_utc_timestamp(text: &str) -> bool {
    let bytes = text.as_bytes();
    bytes.len() >= 20
        && bytes[..10].iter().enumerate().all(|(i, b)| {
            if i == 4 || i == 7 {
                *b == b'-'
            } else {
                b.is_ascii_digit()
            }
        })
        && bytes[10] == b'T'
        && text.ends_with('Z')
}

/// One `/`-free component of an object key: letters, digits and `-_.@+=`, not `.` or `..`,
/// at most 128 bytes. A call id is chosen by the integrator or the caller: anything else
/// could escape the tenant's prefix or make keys a person cannot read.
pub fn key_component(what: &str, value: &str) -> Result<String, LifecycleError> {
    let allowed = |c: char| c.is_ascii_alphanumeric() || "-_.@+=".contains(c);
    if value.is_empty()
        || value.len() > 128
        || value == "."
        || value == ".."
        || !value.chars().all(allowed)
    {
        return Err(LifecycleError::Key(format!(
            "{what} {value:?} cannot be part of an object key (1-128 of A-Z a-z 0-9 - _ . @ + =)"
        )));
    }
    Ok(value.to_string())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn key_components_cannot_escape_or_confuse_the_layout() {
        for bad in ["", ".", "..", "a/b", "a b", "x\u{0}", "ü", &"x".repeat(129)] {
            assert!(key_component("call id", bad).is_err(), "{bad:?}");
        }
        assert_eq!(
            key_component("call id", "call-2026.12_01@x").unwrap(),
            "call-2026.12_01@x"
        );
    }

    #[test]
    fn the_prefix_is_tenant_date_call() {
        let recording = LocalRecording {
            recording: PathBuf::from("/r/call.mp4.age"),
            bytes: 1,
            sha256: String::new(),
            manifest: PathBuf::from("/r/call.mp4.age.json"),
            call: CallFields {
                call_id: "c-42".into(),
                ..Default::default()
            },
            started_utc: "2026-12-01T17:58:45.123Z".into(),
        };
        assert_eq!(recording.prefix("acme").unwrap(), "acme/2026/12/01/c-42/");
        assert!(is_utc_timestamp("2026-12-01T17:58:45Z"));
        assert!(!is_utc_timestamp("2026-1-01T17:58:45Z"));
    }
}

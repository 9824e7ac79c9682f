//! Recordings as encryptedfilesink leaves them, made with the vault library (no GStreamer).

#![allow(dead_code)]

use std::path::{Path, PathBuf};

use vault::keys::{self, Protection};
use vault::sign::{self, Binding};

pub struct Keys {
    pub dir: PathBuf,
    pub public: PathBuf,
    pub secret: minisign::SecretKey,
    pub recipient: String,
}

pub fn keys(dir: &Path) -> Keys {
    let (identity, recipient) = keys::generate_identity();
    std::fs::write(dir.join("key.txt"), identity).unwrap();
    let (secret, public) = keys::generate_signing_keys().unwrap();
    std::fs::write(dir.join("vcc.key"), secret).unwrap();
    std::fs::write(dir.join("vcc.pub"), public).unwrap();
    Keys {
        dir: dir.to_path_buf(),
        public: dir.join("vcc.pub"),
        secret: keys::load_signing_key(&dir.join("vcc.key")).unwrap(),
        recipient,
    }
}

/// The call metadata of a test recording.
pub struct Call {
    pub call_id: String,
    pub agent_id: String,
    pub customer_reference: String,
    pub queue: String,
    pub started_utc: String,
}

impl Call {
    pub fn new(call_id: &str) -> Call {
        Call {
            call_id: call_id.to_string(),
            agent_id: "agent-7".into(),
            customer_reference: "CUST-1".into(),
            queue: "payments".into(),
            started_utc: "2026-12-01T17:58:45.123Z".into(),
        }
    }
}

/// A finished recording as encryptedfilesink leaves it: an age file of `bytes` of
/// (incompressible) media, its manifest, both signed.
pub fn recording(keys: &Keys, call: &Call, bytes: usize) -> PathBuf {
    let call_id = call.call_id.as_str();
    let path = keys.dir.join(format!("{call_id}.mp4.age"));
    let recipients = keys::parse_recipients(&keys.recipient, None).unwrap();
    let mut writer = vault::writer::AgeWriter::create(
        std::fs::File::create(&path).unwrap(),
        &Protection::Recipients(recipients),
    )
    .unwrap();
    let mut state = 0x9e37_79b9_7f4a_7c15u64;
    let mut media = vec![0u8; bytes];
    for byte in &mut media {
        state ^= state << 13;
        state ^= state >> 7;
        state ^= state << 17;
        *byte = state as u8;
    }
    writer.write(&media).unwrap();
    writer.finish().unwrap();
    let signed = sign::sign_file(
        &path,
        &keys.secret,
        Binding {
            call_id: Some(call_id.to_string()),
            ..Binding::new("recording")
        },
    )
    .unwrap();
    let manifest = lifecycle::recording::manifest_path(&path);
    let json = serde_json::json!({
        "format": "gst-vcc-recording/1",
        "call": {"call_id": call_id, "agent_id": call.agent_id,
                 "customer_reference": call.customer_reference,
                 "queue": call.queue, "direction": "inbound", "tags": {}},
        "started_utc": call.started_utc,
        "recorded_duration_ns": 315_000_000_000u64,
        "ended_utc": "2026-12-01T18:04:00.000Z",
        "complete": true,
        "output": {"container": "mp4", "bytes": bytes, "sha256": null},
    });
    std::fs::write(&manifest, serde_json::to_vec_pretty(&json).unwrap()).unwrap();
    sign::sign_file(
        &manifest,
        &keys.secret,
        Binding {
            call_id: Some(call_id.to_string()),
            recording: Some(signed.file.clone()),
            recording_sha256: Some(signed.sha256.clone()),
            ..Binding::new("manifest")
        },
    )
    .unwrap();
    path
}

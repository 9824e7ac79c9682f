//! The recording's JSON manifest: who the call was, when it was recorded, every pause and
//! resume, the streams, and the SHA-256 of the output bytes. No GStreamer types.
//!
//! It is rewritten atomically (temporary file + rename) at the start, at every pause/resume,
//! every few seconds while recording and at the end, so after a crash it still lists
//! everything up to a few seconds before the crash, with `"complete": false`. It says
//! `"complete": true` only once the sink has taken every byte and the end of the stream.
//!
//! Texts set by integrators and callers (pause reasons, metadata) are bounded so that a
//! manifest stays small whatever they send: see [`bounded`].

use std::fs::{self, File};
use std::io::Write;
use std::path::{Path, PathBuf};

use serde::Serialize;
use sha2::{Digest, Sha256};

/// Call metadata set by the integrator.
#[derive(Debug, Clone, Default, Serialize, PartialEq)]
pub struct CallMetadata {
    pub call_id: Option<String>,
    pub agent_id: Option<String>,
    pub customer_reference: Option<String>,
    pub direction: Option<String>,
    pub queue: Option<String>,
    /// Free tags as given by the integrator.
    pub tags: serde_json::Map<String, serde_json::Value>,
}

/// One pause or resume.
#[derive(Debug, Clone, Serialize, PartialEq)]
pub struct ManifestEvent {
    /// `"pause"` or `"resume"`.
    pub action: &'static str,
    /// Running time at which all streams switched.
    pub running_time_ns: u64,
    /// Where that is in the recording.
    pub recording_time_ns: u64,
    /// Running time at which it was asked for (live: the clock's; otherwise the main stream's
    /// next buffer). `running_time_ns` is later where the switch waited: for the recording to
    /// start, or for a keyframe to resume encoded video on.
    pub requested_running_time_ns: u64,
    pub wall_time_utc: String,
    pub reason: String,
}

/// A span of running time that was not recorded.
#[derive(Debug, Clone, Serialize, PartialEq)]
pub struct PausedSpan {
    pub start_running_time_ns: u64,
    pub end_running_time_ns: u64,
    pub duration_ns: u64,
}

/// What one input stream contributed.
#[derive(Debug, Clone, Default, Serialize, PartialEq)]
pub struct StreamRecord {
    pub pad: String,
    /// `"video"` or `"audio"`.
    pub kind: &'static str,
    pub input_caps: String,
    /// `"passthrough"` (recorded without re-encoding), `"encode"` or `"transcode"`.
    pub handling: &'static str,
    pub recorded_codec: String,
    pub caps_changes: u32,
    pub buffers_in: u64,
    pub buffers_recorded: u64,
    /// First recording time of this stream's output.
    pub first_recording_time_ns: Option<u64>,
    /// End (time + duration) of this stream's last output buffer.
    pub end_recording_time_ns: Option<u64>,
    /// Spans this stream alone was paused (masked) in.
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub masked_spans: Vec<MaskedSpanRecord>,
    /// Spans masked because DTMF tones were heard (the digits are never recorded).
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub dtmf_masked_spans: Vec<MaskedSpanRecord>,
}

/// A span of one stream that was masked.
#[derive(Debug, Clone, Default, Serialize, PartialEq)]
pub struct MaskedSpanRecord {
    pub start_running_time_ns: u64,
    /// `None` while still masked.
    pub end_running_time_ns: Option<u64>,
    pub reason: String,
}

impl StreamRecord {
    /// The record for a new run of the same stream: what describes the stream is kept, the
    /// counts and times start again.
    pub fn restarted(&self) -> StreamRecord {
        StreamRecord {
            pad: self.pad.clone(),
            kind: self.kind,
            input_caps: self.input_caps.clone(),
            handling: self.handling,
            recorded_codec: self.recorded_codec.clone(),
            ..Default::default()
        }
    }

    /// Notes an output buffer spanning `start..end` of recording time.
    pub fn note_output(&mut self, start: u64, end: u64) {
        self.buffers_recorded += 1;
        self.first_recording_time_ns.get_or_insert(start);
        self.end_recording_time_ns = Some(self.end_recording_time_ns.unwrap_or(0).max(end));
    }
}

/// The output bytes: size and hash of what the sink accepted.
#[derive(Debug, Clone, Default, Serialize, PartialEq)]
pub struct OutputRecord {
    pub container: String,
    /// Bytes the sink accepted.
    pub bytes: u64,
    /// Hex SHA-256 of every accepted byte, set at the end.
    pub sha256: Option<String>,
    /// Why the output is not complete, if the sink refused data or the end of the stream.
    pub error: Option<String>,
}

#[derive(Debug, Clone, Default, Serialize, PartialEq)]
pub struct Manifest {
    pub format: &'static str,
    pub call: CallMetadata,
    pub pause_mode: &'static str,
    pub started_utc: Option<String>,
    pub ended_utc: Option<String>,
    /// When this version of the manifest was written.
    pub updated_utc: Option<String>,
    /// False until the recording ended normally (EOS) and the sink accepted all of it.
    pub complete: bool,
    /// Recording time 0 in running time.
    pub origin_running_time_ns: Option<u64>,
    pub recorded_duration_ns: u64,
    pub paused_duration_ns: u64,
    pub events: Vec<ManifestEvent>,
    pub paused_spans: Vec<PausedSpan>,
    pub streams: Vec<StreamRecord>,
    pub output: OutputRecord,
    /// Set when the recording rotates into segments: which one this is, and the chain.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub segment: Option<SegmentRecord>,
}

/// One segment of a rotating recording.
#[derive(Debug, Clone, Default, Serialize, PartialEq)]
pub struct SegmentRecord {
    pub index: usize,
    pub start_running_time_ns: u64,
    /// Set once the next segment started.
    pub end_running_time_ns: Option<u64>,
    /// SHA-256 of the previous segment's output (what its manifest says), `None` for the
    /// first: a verifier walks the chain.
    pub previous_output_sha256: Option<String>,
}

/// At most this many bytes of a pause/resume reason are kept.
pub const MAX_REASON_BYTES: usize = 256;
/// At most this many bytes of a metadata value (call id, agent, tags...) are kept.
pub const MAX_FIELD_BYTES: usize = 1024;
/// At most this many free tags are kept.
pub const MAX_TAGS: usize = 64;

/// `text` cut to at most `limit` bytes at a character boundary, and whether it was cut.
pub fn bounded(text: &str, limit: usize) -> (String, bool) {
    if text.len() <= limit {
        return (text.to_string(), false);
    }
    let mut end = limit;
    while !text.is_char_boundary(end) {
        end -= 1;
    }
    (text[..end].to_string(), true)
}

impl Manifest {
    pub const FORMAT: &'static str = "gst-vcc-recording-manifest/1";

    pub fn to_json(&self) -> String {
        serde_json::to_string_pretty(self).expect("manifest serialises")
    }

    /// Replaces `path` with this manifest atomically; `durable` also fsyncs file and directory.
    pub fn write_atomically(&self, path: &Path, durable: bool) -> std::io::Result<()> {
        write_atomically(path, &self.to_json(), durable)
    }
}

/// Replaces `path` with `json` atomically (temporary file + rename); `durable` also fsyncs
/// file and directory.
pub fn write_atomically(path: &Path, json: &str, durable: bool) -> std::io::Result<()> {
    let mut temporary = PathBuf::from(path);
    temporary.as_mut_os_string().push(".tmp");
    let result = (|| {
        let mut file = File::create(&temporary)?;
        file.write_all(json.as_bytes())?;
        file.write_all(b"\n")?;
        if durable {
            file.sync_all()?;
        }
        drop(file);
        fs::rename(&temporary, path)
    })();
    if result.is_err() {
        // A full disk leaves no half-written temporary behind.
        let _ = fs::remove_file(&temporary);
    }
    result?;
    if durable {
        let directory = path
            .parent()
            .filter(|p| !p.as_os_str().is_empty())
            .unwrap_or(Path::new("."));
        File::open(directory)?.sync_all()?;
    }
    Ok(())
}

/// Counts and hashes the output bytes in order.
#[derive(Default, Clone)]
pub struct OutputHasher {
    hasher: Sha256,
    bytes: u64,
}

impl OutputHasher {
    pub fn update(&mut self, data: &[u8]) {
        self.hasher.update(data);
        self.bytes += data.len() as u64;
    }

    pub fn bytes(&self) -> u64 {
        self.bytes
    }

    /// Hex digest of everything so far.
    pub fn hex_digest(&self) -> String {
        self.hasher
            .clone()
            .finalize()
            .iter()
            .map(|byte| format!("{byte:02x}"))
            .collect()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn hasher_matches_known_digest() {
        let mut hasher = OutputHasher::default();
        hasher.update(b"a");
        hasher.update(b"bc");
        assert_eq!(hasher.bytes(), 3);
        assert_eq!(
            hasher.hex_digest(),
            "ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad"
        );
    }

    #[test]
    fn texts_are_bounded_at_character_boundaries() {
        assert_eq!(bounded("short", 10), ("short".to_string(), false));
        let (cut, was_cut) = bounded("ääää", 5);
        assert!(was_cut);
        assert_eq!(cut, "ää");
    }

    #[test]
    fn manifest_is_replaced_atomically() {
        let directory =
            std::env::temp_dir().join(format!("recordmux-manifest-{}", std::process::id()));
        fs::create_dir_all(&directory).unwrap();
        let path = directory.join("call.json");
        let mut manifest = Manifest {
            format: Manifest::FORMAT,
            pause_mode: "cut",
            ..Default::default()
        };
        manifest.call.call_id = Some("c-1".into());
        manifest.write_atomically(&path, false).unwrap();
        manifest.complete = true;
        manifest.write_atomically(&path, true).unwrap();
        let read: serde_json::Value =
            serde_json::from_str(&fs::read_to_string(&path).unwrap()).unwrap();
        assert_eq!(read["call"]["call_id"], "c-1");
        assert_eq!(read["complete"], true);
        assert!(!directory.join("call.json.tmp").exists());
        fs::remove_dir_all(directory).unwrap();
    }
}

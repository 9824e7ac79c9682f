//! `export`: a recording decrypted, cut to a time range, with spans redacted (black video,
//! silence), as MP4, WebM or WAV, with a signed export manifest that cites the source.
//!
//! The only command of `vcc-vault` that uses GStreamer: `encryptedfilesrc` (signature checked
//! before any byte is decrypted) ! `qtdemux` ! decoders; the cut and the redactions are applied
//! to the decoded frames and samples by pad probes; `recordmux` encodes and writes MP4/WebM,
//! `wavenc` the WAV.

use std::path::{Path, PathBuf};
use std::sync::Arc;

use clap::Args;
use gst::prelude::*;
use vault::sign::{self, Binding};

#[derive(Args)]
pub struct ExportArgs {
    /// The encrypted recording (its .minisig beside it).
    pub recording: PathBuf,
    /// The age identity that decrypts it.
    #[arg(long)]
    identity: PathBuf,
    /// The key vault of a recording encrypted to its customer's key.
    #[arg(long)]
    key_vault: Option<PathBuf>,
    /// The organisation's minisign public key (the recording's signature is checked first).
    #[arg(long)]
    key: PathBuf,
    /// Start of the export, seconds into the recording.
    #[arg(long, default_value_t = 0.0)]
    from: f64,
    /// End of the export, seconds into the recording (default: its end).
    #[arg(long)]
    to: Option<f64>,
    /// A span to blank, `START-END` in seconds of the recording (repeatable).
    #[arg(long, value_parser = parse_span)]
    redact: Vec<(f64, f64)>,
    #[arg(long, value_parser = ["mp4", "webm", "wav"], default_value = "mp4")]
    format: String,
    /// The export (never overwritten); its manifest goes to <output>.json.
    #[arg(short, long)]
    output: PathBuf,
    /// minisign secret key that signs the export and its manifest.
    #[arg(long)]
    signing_key: Option<PathBuf>,
}

impl ExportArgs {
    /// For the audit log.
    pub fn describe(&self) -> String {
        format!(
            "{} -> {} ({} s..{} s, {} redactions)",
            self.recording.display(),
            self.output.display(),
            self.from,
            self.to.map_or("end".into(), |to| to.to_string()),
            self.redact.len()
        )
    }
}

fn parse_span(text: &str) -> Result<(f64, f64), String> {
    let (start, end) = text
        .split_once('-')
        .ok_or_else(|| format!("{text:?}: give START-END in seconds, e.g. 12.5-20"))?;
    let number = |s: &str| {
        s.trim()
            .parse::<f64>()
            .ok()
            .filter(|v| v.is_finite() && *v >= 0.0)
            .ok_or_else(|| format!("{text:?}: {s:?} is not a time in seconds"))
    };
    let (start, end) = (number(start)?, number(end)?);
    if end <= start {
        return Err(format!("{text:?}: the end is not after the start"));
    }
    Ok((start, end))
}

/// What the probes apply, in nanoseconds of the recording's timeline.
struct Cut {
    from: u64,
    to: u64,
    redact: Vec<(u64, u64)>,
}

impl Cut {
    fn keeps(&self, at: u64) -> bool {
        at >= self.from && at < self.to
    }

    fn redacted(&self, at: u64) -> bool {
        self.redact
            .iter()
            .any(|(start, end)| at >= *start && at < *end)
    }
}

fn ns(seconds: f64) -> u64 {
    (seconds * 1e9).round() as u64
}

/// Stream time of a buffer at `pad`.
fn stream_time(pad: &gst::Pad, pts: gst::ClockTime) -> Option<u64> {
    let segment = pad.sticky_event::<gst::event::Segment>(0)?;
    let segment = segment.segment().downcast_ref::<gst::ClockTime>()?;
    segment.to_stream_time(pts).map(gst::ClockTime::nseconds)
}

/// Drops video frames outside the cut; blanks (I420 black) those in a redaction.
fn video_probe(cut: Arc<Cut>) -> impl Fn(&gst::Pad, &mut gst::PadProbeInfo) -> gst::PadProbeReturn {
    move |pad, info| {
        let Some(gst::PadProbeData::Buffer(buffer)) = &mut info.data else {
            return gst::PadProbeReturn::Ok;
        };
        let Some(at) = buffer.pts().and_then(|pts| stream_time(pad, pts)) else {
            return gst::PadProbeReturn::Drop;
        };
        if !cut.keeps(at) {
            return gst::PadProbeReturn::Drop;
        }
        if cut.redacted(at) {
            let Some(info) = pad
                .current_caps()
                .and_then(|caps| gst_video::VideoInfo::from_caps(&caps).ok())
            else {
                return gst::PadProbeReturn::Drop;
            };
            let buffer = buffer.make_mut();
            let Ok(mut map) = buffer.map_writable() else {
                return gst::PadProbeReturn::Drop;
            };
            // I420: luma 16 (black), chroma 128.
            let luma = info.offset()[1].min(map.len());
            map[..luma].fill(16);
            map[luma..].fill(128);
        }
        gst::PadProbeReturn::Ok
    }
}

/// Drops audio outside the cut; silences (S16LE) the samples in a redaction, sample by sample.
fn audio_probe(cut: Arc<Cut>) -> impl Fn(&gst::Pad, &mut gst::PadProbeInfo) -> gst::PadProbeReturn {
    move |pad, info| {
        let Some(gst::PadProbeData::Buffer(buffer)) = &mut info.data else {
            return gst::PadProbeReturn::Ok;
        };
        let Some(start) = buffer.pts().and_then(|pts| stream_time(pad, pts)) else {
            return gst::PadProbeReturn::Drop;
        };
        let Some(info) = pad
            .current_caps()
            .and_then(|caps| gst_audio::AudioInfo::from_caps(&caps).ok())
        else {
            return gst::PadProbeReturn::Drop;
        };
        let frame_bytes = info.bpf() as usize;
        let rate = u64::from(info.rate());
        let frames = buffer.size() / frame_bytes.max(1);
        let end = start + frames as u64 * 1_000_000_000 / rate.max(1);
        if end <= cut.from || start >= cut.to {
            return gst::PadProbeReturn::Drop;
        }
        let touched = cut.redact.iter().any(|(a, b)| *a < end && *b > start);
        if touched {
            let buffer = buffer.make_mut();
            let Ok(mut map) = buffer.map_writable() else {
                return gst::PadProbeReturn::Drop;
            };
            for (index, frame) in map.chunks_exact_mut(frame_bytes).enumerate() {
                if cut.redacted(start + index as u64 * 1_000_000_000 / rate) {
                    frame.fill(0);
                }
            }
        }
        gst::PadProbeReturn::Ok
    }
}

/// The recording's streams, from its signed manifest (`<recording>.json`), or both.
fn has_streams(recording: &Path) -> (bool, bool) {
    let manifest = lifecycle::recording::manifest_path(recording);
    let Ok(text) = std::fs::read(&manifest) else {
        return (true, true);
    };
    let json: serde_json::Value = serde_json::from_slice(&text).unwrap_or_default();
    let kinds: Vec<&str> = json["streams"]
        .as_array()
        .map(|streams| streams.iter().filter_map(|s| s["kind"].as_str()).collect())
        .unwrap_or_default();
    if kinds.is_empty() {
        return (true, true);
    }
    (kinds.contains(&"video"), kinds.contains(&"audio"))
}

fn quote(path: &Path) -> String {
    format!("\"{}\"", path.display().to_string().replace('"', "\\\""))
}

pub fn export(args: ExportArgs) -> Result<(), String> {
    if args.output.exists() {
        return Err(format!(
            "'{}' exists; remove it or choose another output",
            args.output.display()
        ));
    }
    let to = args.to.unwrap_or(f64::MAX / 4.0);
    if to <= args.from {
        return Err("--to is not after --from".into());
    }
    // Checked before anything is decrypted (encryptedfilesrc checks it again while reading).
    let source = sign::verify_file(&args.recording, &args.key).map_err(|e| e.to_string())?;
    gst::init().map_err(|e| format!("GStreamer: {e}"))?;
    gstcryptfile::plugin_register_static()
        .and_then(|_| gstrecordmux::plugin_register_static())
        .map_err(|e| format!("gst-vcc elements: {e}"))?;
    let (video, audio) = has_streams(&args.recording);
    let video = video && args.format != "wav";
    let partial = vault::durable::with_suffix(&args.output, ".partial");
    // recordmux writes fragmented MP4 (`.mp4.age`) or Matroska/WebM (`.mkv.age`, `.webm.age`).
    let name = args.recording.to_string_lossy().to_lowercase();
    let demuxer = if name.ends_with(".mkv.age") || name.ends_with(".webm.age") {
        "matroskademux"
    } else {
        "qtdemux"
    };
    // A destroyed customer key is said before anything is built.
    vault::key_vault::unlock_recording(
        &args.recording,
        vault::keys::Unlock::IdentityFile(args.identity.clone()),
        args.key_vault.as_deref(),
    )
    .map_err(|e| format!("{e}; nothing exported"))?;
    let input = format!(
        "encryptedfilesrc location={} identity={} verify-key={}{} ! {demuxer} name=demux",
        quote(&args.recording),
        quote(&args.identity),
        quote(&args.key),
        args.key_vault
            .as_ref()
            .map(|vault| format!(" key-vault={}", quote(vault)))
            .unwrap_or_default()
    );
    let mut branches = Vec::new();
    if args.format == "wav" {
        if !audio {
            return Err(format!("'{}' has no audio", args.recording.display()));
        }
        branches.push(format!(
            "demux.audio_0 ! queue ! decodebin ! audioconvert ! audio/x-raw,format=S16LE \
             ! identity name=atap ! wavenc ! filesink location={}",
            quote(&partial)
        ));
    } else {
        branches.push(format!(
            "recordmux name=rec container={} ! filesink location={}",
            args.format,
            quote(&partial)
        ));
        if video {
            branches.push(
                "demux.video_0 ! queue ! decodebin ! videoconvert ! video/x-raw,format=I420 \
                 ! identity name=vtap ! rec.video_0"
                    .into(),
            );
        }
        if audio {
            branches.push(
                "demux.audio_0 ! queue ! decodebin ! audioconvert ! audio/x-raw,format=S16LE \
                 ! identity name=atap ! rec.audio_0"
                    .into(),
            );
        }
    }
    let description = format!("{input} {}", branches.join(" "));
    let pipeline = gst::parse::launch(&description)
        .map_err(|e| format!("export pipeline: {e}"))?
        .downcast::<gst::Pipeline>()
        .map_err(|_| "export pipeline is not a pipeline".to_string())?;
    let cut = Arc::new(Cut {
        from: ns(args.from),
        to: ns(to),
        redact: args.redact.iter().map(|(a, b)| (ns(*a), ns(*b))).collect(),
    });
    if let Some(tap) = pipeline.by_name("vtap") {
        tap.static_pad("src")
            .expect("identity has a src pad")
            .add_probe(gst::PadProbeType::BUFFER, video_probe(cut.clone()));
    }
    if let Some(tap) = pipeline.by_name("atap") {
        tap.static_pad("src")
            .expect("identity has a src pad")
            .add_probe(gst::PadProbeType::BUFFER, audio_probe(cut.clone()));
    }
    let result = run_to_eos(&pipeline);
    let _ = pipeline.set_state(gst::State::Null);
    if let Err(error) = result {
        let _ = std::fs::remove_file(&partial);
        return Err(format!(
            "export of '{}' failed: {error}",
            args.recording.display()
        ));
    }
    std::fs::rename(&partial, &args.output)
        .map_err(|e| format!("cannot write '{}': {e}", args.output.display()))?;
    write_manifest(&args, &source, to)
}

fn run_to_eos(pipeline: &gst::Pipeline) -> Result<(), String> {
    pipeline
        .set_state(gst::State::Playing)
        .map_err(|_| first_error(pipeline).unwrap_or_else(|| "cannot start".into()))?;
    let bus = pipeline.bus().expect("a pipeline has a bus");
    for message in bus.iter_timed(gst::ClockTime::NONE) {
        match message.view() {
            gst::MessageView::Eos(_) => return Ok(()),
            gst::MessageView::Error(error) => {
                return Err(format!(
                    "{}{}",
                    error.error(),
                    error
                        .debug()
                        .map(|debug| format!(" ({debug})"))
                        .unwrap_or_default()
                ));
            }
            _ => (),
        }
    }
    Err("the pipeline stopped without an end".into())
}

fn first_error(pipeline: &gst::Pipeline) -> Option<String> {
    let bus = pipeline.bus()?;
    let message = bus.timed_pop_filtered(gst::ClockTime::ZERO, &[gst::MessageType::Error])?;
    match message.view() {
        gst::MessageView::Error(error) => Some(error.error().to_string()),
        _ => None,
    }
}

/// `<output>.json`: the source (name, SHA-256, call), the cut, the redactions, the output's
/// SHA-256; signed with the output when a signing key is given.
fn write_manifest(args: &ExportArgs, source: &Binding, to: f64) -> Result<(), String> {
    let (bytes, sha256) = sign::sha256_file(&args.output).map_err(|e| e.to_string())?;
    let manifest_path = lifecycle::recording::manifest_path(&args.output);
    let manifest = serde_json::json!({
        "format": "gst-vcc-export/1",
        "source": {
            "file": source.file,
            "bytes": source.bytes,
            "sha256": source.sha256,
            "call_id": source.call_id,
        },
        "from_s": args.from,
        "to_s": args.to.map(|_| to),
        "redactions": args.redact.iter().map(|(a, b)| serde_json::json!({"start_s": a, "end_s": b})).collect::<Vec<_>>(),
        "redaction": "video black (I420 16/128), audio silence, sample-accurate",
        "output": {"file": args.output.file_name().map(|n| n.to_string_lossy().into_owned()), "format": args.format, "bytes": bytes, "sha256": sha256},
        "exported_utc": lifecycle::audit::now_utc(),
    });
    vault::durable::write_synced(
        &manifest_path,
        serde_json::to_string_pretty(&manifest)
            .expect("manifest serialises")
            .as_bytes(),
    )
    .map_err(|e| e.to_string())?;
    if let Some(key) = &args.signing_key {
        let key = vault::keys::load_signing_key(key).map_err(|e| e.to_string())?;
        let signed = sign::sign_file(
            &args.output,
            &key,
            Binding {
                call_id: source.call_id.clone(),
                ..Binding::new("export")
            },
        )
        .map_err(|e| e.to_string())?;
        sign::sign_file(
            &manifest_path,
            &key,
            Binding {
                call_id: source.call_id.clone(),
                recording: Some(signed.file),
                recording_sha256: Some(signed.sha256),
                ..Binding::new("manifest")
            },
        )
        .map_err(|e| e.to_string())?;
    }
    println!(
        "{}",
        serde_json::to_string(&manifest).expect("manifest serialises")
    );
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn spans_parse_or_say_why_not() {
        assert_eq!(parse_span("12.5-20").unwrap(), (12.5, 20.0));
        assert!(parse_span("20-12").unwrap_err().contains("not after"));
        assert!(parse_span("x-2").unwrap_err().contains("not a time"));
        assert!(parse_span("5").unwrap_err().contains("START-END"));
    }

    #[test]
    fn the_cut_keeps_and_redacts_by_recording_time() {
        let cut = Cut {
            from: ns(1.0),
            to: ns(5.0),
            redact: vec![(ns(2.0), ns(3.0))],
        };
        assert!(!cut.keeps(ns(0.5)) && cut.keeps(ns(1.0)) && !cut.keeps(ns(5.0)));
        assert!(cut.redacted(ns(2.5)) && !cut.redacted(ns(3.0)));
    }
}

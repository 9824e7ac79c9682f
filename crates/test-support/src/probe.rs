//! What ffprobe and ffmpeg (Debian's `ffmpeg`) say of a recording.

use std::collections::BTreeMap;
use std::path::Path;
use std::process::Command;

use sha2::{Digest, Sha256};

/// Per stream type (`video`/`audio`): (first pts, end of the last packet, packet count) in
/// seconds. Fragmented MP4 packets carry no duration in ffprobe's view: the last packet lasts
/// as long as the one before it.
pub fn packet_spans(path: &Path) -> BTreeMap<String, (f64, f64, usize)> {
    let output = Command::new("ffprobe")
        .args([
            "-v",
            "error",
            "-show_entries",
            "packet=codec_type,pts_time",
            "-of",
            "csv=p=0",
        ])
        .arg(path)
        .output()
        .expect("ffprobe runs (package ffmpeg)");
    let mut times: BTreeMap<String, Vec<f64>> = BTreeMap::new();
    for line in String::from_utf8_lossy(&output.stdout).lines() {
        let mut fields = line.split(',');
        if let (Some(kind), Some(Ok(pts))) = (fields.next(), fields.next().map(str::parse::<f64>)) {
            times.entry(kind.to_string()).or_default().push(pts);
        }
    }
    times
        .into_iter()
        .map(|(kind, mut pts)| {
            pts.sort_by(f64::total_cmp);
            let last = pts[pts.len() - 1];
            let step = if pts.len() > 1 {
                last - pts[pts.len() - 2]
            } else {
                0.0
            };
            (kind, (pts[0], last + step, pts.len()))
        })
        .collect()
}

/// ffprobe's CSV lines of `entries` (e.g. `packet=pts_time,flags`) for the streams `select`ed.
pub fn ffprobe_csv(path: &Path, select: &str, entries: &str) -> Vec<String> {
    let output = Command::new("ffprobe")
        .args(["-v", "error", "-select_streams", select])
        .args(["-show_entries", entries, "-of", "csv=p=0"])
        .arg(path)
        .output()
        .unwrap();
    String::from_utf8_lossy(&output.stdout)
        .lines()
        .map(str::to_string)
        .collect()
}

/// (pts seconds, keyframe) of every video packet.
pub fn video_packets(path: &Path) -> Vec<(f64, bool)> {
    ffprobe_csv(path, "v", "packet=pts_time,flags")
        .iter()
        .filter_map(|line| {
            let (pts, flags) = line.split_once(',')?;
            Some((pts.parse().ok()?, flags.starts_with('K')))
        })
        .collect()
}

/// (pts, dts) in seconds of every packet of the streams `select`ed (`"a"`, `"v"`), in file
/// order.
pub fn packet_times(path: &Path, select: &str) -> Vec<(f64, f64)> {
    ffprobe_csv(path, select, "packet=pts_time,dts_time")
        .iter()
        .filter_map(|line| {
            let (pts, dts) = line.split_once(',')?;
            Some((pts.parse().ok()?, dts.parse().ok()?))
        })
        .collect()
}

/// Per stream type: (start time, duration) in seconds from ffprobe's stream entries.
pub fn stream_times(path: &Path) -> Vec<(String, f64, f64)> {
    let output = Command::new("ffprobe")
        .args([
            "-v",
            "error",
            "-show_entries",
            "stream=codec_type,start_time,duration",
            "-of",
            "csv=p=0",
        ])
        .arg(path)
        .output()
        .unwrap();
    String::from_utf8_lossy(&output.stdout)
        .lines()
        .filter_map(|line| {
            let mut fields = line.split(',');
            let kind = fields.next()?.to_string();
            let start = fields.next()?.parse().ok()?;
            let duration = fields.next()?.parse().unwrap_or(f64::NAN);
            Some((kind, start, duration))
        })
        .collect()
}

/// ffmpeg decoding the video of `path` to per-frame checksums: (frames, ok, errors).
pub fn decode_video(path: &Path) -> (usize, bool, String) {
    let output = Command::new("ffmpeg")
        .args(["-v", "error", "-i"])
        .arg(path)
        .args(["-map", "0:v", "-f", "framemd5", "-"])
        .output()
        .unwrap();
    let frames = String::from_utf8_lossy(&output.stdout)
        .lines()
        .filter(|line| line.starts_with("0,"))
        .count();
    let errors = String::from_utf8_lossy(&output.stderr).into_owned();
    (frames, output.status.success(), errors)
}

/// Decoded video frames, ignoring decoder complaints (a killed recording ends mid-fragment).
pub fn count_frames(path: &Path) -> usize {
    decode_video(path).0
}

/// Decodes every stream; fails on any decoder error. Returns the number of video frames.
pub fn decode_all(path: &Path) -> usize {
    let (frames, ok, errors) = decode_video(path);
    assert!(
        ok && errors.trim().is_empty(),
        "{}: {errors}",
        path.display()
    );
    let audio = Command::new("ffmpeg")
        .args(["-v", "error", "-i"])
        .arg(path)
        .args(["-map", "0:a?", "-f", "null", "-"])
        .output()
        .unwrap();
    let errors = String::from_utf8_lossy(&audio.stderr);
    assert!(
        audio.status.success() && errors.trim().is_empty(),
        "{}: {errors}",
        path.display()
    );
    frames
}

/// Mean luma of the frame at `seconds` (decoded and scaled to 32x24 gray).
pub fn luma_at(path: &Path, seconds: f64) -> f64 {
    let output = Command::new("ffmpeg")
        .args(["-v", "error", "-ss", &format!("{seconds}"), "-i"])
        .arg(path)
        .args([
            "-frames:v",
            "1",
            "-vf",
            "scale=32:24",
            "-pix_fmt",
            "gray",
            "-f",
            "rawvideo",
            "-",
        ])
        .output()
        .unwrap();
    assert_eq!(
        output.stdout.len(),
        32 * 24,
        "{}",
        String::from_utf8_lossy(&output.stderr)
    );
    output.stdout.iter().map(|&v| v as f64).sum::<f64>() / output.stdout.len() as f64
}

/// The decoded audio of `path` (first audio stream, or stream `index` of the audio
/// streams), mono 48 kHz, as samples in -1..1.
pub fn audio_samples(path: &Path, index: usize) -> Vec<f64> {
    let output = Command::new("ffmpeg")
        .args(["-v", "error", "-i"])
        .arg(path)
        .args(["-map", &format!("0:a:{index}")])
        .args(["-ac", "1", "-ar", "48000", "-f", "s16le", "-"])
        .output()
        .unwrap();
    output
        .stdout
        .chunks_exact(2)
        .map(|pair| i16::from_le_bytes([pair[0], pair[1]]) as f64 / 32768.0)
        .collect()
}

/// RMS (0..1) of the decoded audio between `from` and `to` seconds.
pub fn audio_rms(path: &Path, from: f64, to: f64) -> f64 {
    rms(&audio_samples(path, 0), from, to)
}

/// RMS of 48 kHz `samples` between `from` and `to` seconds.
pub fn rms(samples: &[f64], from: f64, to: f64) -> f64 {
    let start = ((from * 48000.0) as usize).min(samples.len());
    let end = ((to * 48000.0) as usize).min(samples.len());
    let window = &samples[start..end];
    if window.is_empty() {
        return 0.0;
    }
    (window.iter().map(|v| v * v).sum::<f64>() / window.len() as f64).sqrt()
}

/// Per stream type: duration in seconds from ffprobe.
pub fn stream_durations(path: &Path) -> Vec<(String, f64)> {
    stream_times(path)
        .into_iter()
        .map(|(kind, _, duration)| (kind, duration))
        .collect()
}

/// Decoded video frames of a media file (ffmpeg); fails on decoder errors.
pub fn decoded_frames(path: &Path) -> usize {
    let (frames, ok, errors) = decode_video(path);
    assert!(ok && errors.trim().is_empty(), "{errors}");
    frames
}

/// Hex SHA-256 of a file.
pub fn sha256_of(path: &Path) -> String {
    let bytes = std::fs::read(path).unwrap_or_else(|e| panic!("{}: {e}", path.display()));
    Sha256::digest(bytes)
        .iter()
        .map(|byte| format!("{byte:02x}"))
        .collect()
}

/// A JSON file (a manifest), parsed.
pub fn read_json(path: &Path) -> serde_json::Value {
    let text = std::fs::read_to_string(path).unwrap_or_else(|e| panic!("{}: {e}", path.display()));
    serde_json::from_str(&text).unwrap_or_else(|e| panic!("{}: {e}", path.display()))
}

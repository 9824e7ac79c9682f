//! End to end against real browsers: Debian's chromium, headless, with a fake camera fed
//! from a real clip of a person (y4m), driven by playwright-core (tests/e2e/webrtc_peer.mjs),
//! calling the `webrtc_agent` example WHIP-style:
//! - one call with a pause: signatures checked with `minisign`, decrypted with `age`, its
//!   duration, paused interval and frames checked, the background replaced and the face kept;
//! - a 720p camera: how far the browser ramps up, the preview's frame rate and latency (a
//!   white frame every 2 s), printed as JSON;
//! - ten calls at once: ten recordings, each pause acknowledged once applied.

mod common;

use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::Duration;

use common::*;

const WIDTH: usize = 352;
const HEIGHT: usize = 288;
const CALL_SECONDS: f64 = 10.0;
const PAUSE_AT: f64 = 4.0;
const RESUME_AT: f64 = 6.0;
const TOKEN: &str = "test-token-0123456789abcdef";

/// Regions of the carphone frame, as fractions (x0, y0, x1, y1): the face, and the striped
/// sunshade on the left (background).
const FACE: (f64, f64, f64, f64) = (0.37, 0.30, 0.55, 0.50);
const BACKGROUND: (f64, f64, f64, f64) = (0.03, 0.38, 0.22, 0.65);

/// Every frame of `path` as RGB at WIDTH x HEIGHT.
fn rgb_frames(path: &Path) -> Vec<Vec<u8>> {
    let output = Command::new("ffmpeg")
        .args(["-v", "error", "-i"])
        .arg(path)
        .args(["-map", "0:v", "-vf", &format!("scale={WIDTH}:{HEIGHT}")])
        .args(["-pix_fmt", "rgb24", "-f", "rawvideo", "-"])
        .output()
        .unwrap();
    assert!(output.status.success());
    output
        .stdout
        .chunks_exact(WIDTH * HEIGHT * 3)
        .map(<[u8]>::to_vec)
        .collect()
}

/// Mean absolute difference of two frames inside `region`.
fn region_difference(a: &[u8], b: &[u8], region: (f64, f64, f64, f64)) -> f64 {
    let (x0, y0, x1, y1) = (
        (region.0 * WIDTH as f64) as usize,
        (region.1 * HEIGHT as f64) as usize,
        (region.2 * WIDTH as f64) as usize,
        (region.3 * HEIGHT as f64) as usize,
    );
    let mut sum = 0u64;
    for y in y0..y1 {
        let row = (y * WIDTH + x0) * 3..(y * WIDTH + x1) * 3;
        sum += a[row.clone()]
            .iter()
            .zip(&b[row])
            .map(|(&p, &q)| p.abs_diff(q) as u64)
            .sum::<u64>();
    }
    sum as f64 / ((x1 - x0) * (y1 - y0) * 3) as f64
}

/// The fake camera: the carphone clip (a person talking in a car) as y4m at `size` and `fps`
/// (Chrome loops it).
fn camera_clip(dir: &Path, (width, height): (usize, usize), fps: u32) -> PathBuf {
    let clip = dir.join(format!("camera-{width}x{height}.y4m"));
    let status = Command::new("ffmpeg")
        .args(["-v", "error", "-i"])
        .arg(media("carphone.mp4"))
        .args([
            "-vf",
            &format!("scale={width}:{height},setsar=1,fps={fps}"),
            "-pix_fmt",
            "yuv420p",
        ])
        .arg(&clip)
        .status()
        .unwrap();
    assert!(status.success());
    clip
}

/// webrtc_agent on a free port with keys and the test's token in `dir`.
fn start_agent(dir: &Path, extra: &[&str]) -> (ChildGuard, u16) {
    start_webrtc_agent(dir, TOKEN, extra)
}

/// Runs tests/e2e/webrtc_peer.mjs with `options` (agent and token added); its JSON.
fn run_peer(port: u16, mut options: serde_json::Value, limit: Duration) -> serde_json::Value {
    let e2e = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/e2e");
    assert!(
        e2e.join("node_modules/playwright-core").exists(),
        "run `npm ci` in tests/e2e (scripts/test.sh does)"
    );
    options["agent"] = format!("http://127.0.0.1:{port}/").into();
    options["token"] = TOKEN.into();
    let mut peer = ChildGuard::spawn(
        Command::new("node")
            .arg(e2e.join("webrtc_peer.mjs"))
            .arg(options.to_string())
            .stdout(Stdio::piped()),
    );
    // Read while it runs: ten calls' JSON is more than a pipe holds.
    let mut stdout = peer.0.stdout.take().unwrap();
    let reader = std::thread::spawn(move || {
        let mut text = String::new();
        std::io::Read::read_to_string(&mut stdout, &mut text).map(|_| text)
    });
    assert!(peer.wait_for(limit), "the browser peer failed");
    let text = reader.join().unwrap().unwrap();
    serde_json::from_str(&text).expect("peer prints JSON")
}

#[test]
fn browser_call_is_processed_sent_back_and_recorded_with_a_pause() {
    let _machine = one_browser_at_a_time();
    let dir = scratch("e2e-webrtc");
    let clip = camera_clip(&dir, (WIDTH, HEIGHT), 30);
    let recording = dir.join("calls/e2e-webrtc.mp4.age");
    let (mut agent, port) = start_agent(
        &dir,
        &[
            "--once",
            "--effect",
            "solid",
            // Recorded at the camera's size, so recorded and camera frames compare pixel by
            // pixel (the default, sd, letterboxes this 11:9 camera into 640x360).
            "--video-preset",
            "passthrough",
        ],
    );
    let result = run_peer(
        port,
        serde_json::json!({
            "call_id": "e2e-webrtc",
            "clip": clip,
            "seconds": CALL_SECONDS,
            "pauses": [[PAUSE_AT, RESUME_AT]],
        }),
        Duration::from_secs(120),
    );
    assert!(agent.wait_for(Duration::from_secs(30)), "agent failed");
    let result = &result["calls"][0];
    // Pause and resume were acknowledged once applied, with their running time.
    for ack in result["acks"].as_array().unwrap() {
        assert_eq!(ack["status"], 200, "{ack}");
        assert_eq!(ack["applied"], true, "{ack}");
        assert!(ack["transition"]["running_time_ns"].is_u64(), "{ack}");
    }

    // The agent's preview: the processed video came back to the browser.
    let preview = &result["preview"];
    assert!(
        preview["frames_decoded"].as_u64().unwrap() >= 100,
        "{preview}"
    );

    // Signatures with the standard tool, then decryption with the standard tool.
    let manifest_path = dir.join("calls/e2e-webrtc.mp4.age.json");
    for file in [&recording, &manifest_path] {
        assert_signed(&dir.join("vcc.pub"), file);
    }
    let plain = dir.join("call.mp4");
    assert_eq!(result["ended"]["finished"], true, "{}", result["ended"]);
    age_decrypt(&dir.join("key.txt"), &recording, &plain);

    // Duration and the paused interval.
    let manifest = &result["ended"]["manifest"];
    assert_eq!(manifest["complete"], true);
    assert_eq!(manifest["call"]["call_id"], "e2e-webrtc");
    let events = manifest["events"].as_array().unwrap();
    assert_eq!(events.len(), 2, "{manifest}");
    assert_eq!(events[0]["reason"], "customer reads card number");
    let paused_s = manifest["paused_duration_ns"].as_u64().unwrap() as f64 / 1e9;
    assert!(
        (paused_s - (RESUME_AT - PAUSE_AT)).abs() < 0.5,
        "paused {paused_s} s"
    );
    let recorded_s = manifest["recorded_duration_ns"].as_u64().unwrap() as f64 / 1e9;
    assert!(
        (recorded_s - (CALL_SECONDS - (RESUME_AT - PAUSE_AT))).abs() < 1.5,
        "recorded {recorded_s} s"
    );
    let durations = stream_durations(&plain);
    eprintln!("recorded {recorded_s:.3} s, paused {paused_s:.3} s, streams {durations:?}");
    assert_eq!(durations.len(), 2, "{durations:?}");
    for (kind, duration) in &durations {
        assert!(
            // Measured 0.00-0.03 s; a heavily loaded machine lets video lag at the end.
            (duration - recorded_s).abs() < 0.5,
            "{kind} lasts {duration} s, manifest says {recorded_s} s"
        );
    }
    let frames = decoded_frames(&plain);
    assert!(frames as f64 >= recorded_s * 20.0, "{frames} frames");
    assert_eq!(
        manifest["output"]["sha256"].as_str().unwrap(),
        String::from_utf8_lossy(
            &Command::new("sha256sum")
                .arg(&plain)
                .output()
                .unwrap()
                .stdout
        )
        .split_whitespace()
        .next()
        .unwrap()
    );

    // Content: a recorded frame matches some camera frame on the face and differs from that
    // same camera frame on the background (replaced by the solid colour). Frames in fast
    // motion match less well after two lossy encodes, so the face is judged on the median.
    let camera = rgb_frames(&clip);
    let recorded = rgb_frames(&plain);
    let mut faces = Vec::new();
    let mut backgrounds = Vec::new();
    for frame in recorded.iter().step_by(recorded.len() / 12) {
        let (face, best) = camera
            .iter()
            .map(|input| (region_difference(frame, input, FACE), input))
            .min_by(|a, b| a.0.total_cmp(&b.0))
            .unwrap();
        let background = region_difference(frame, best, BACKGROUND);
        eprintln!("face difference {face:.1}, background difference {background:.1}");
        assert!(
            background > face + 10.0,
            "the background was not replaced: {background} (face {face})"
        );
        faces.push(face);
        backgrounds.push(background);
    }
    let median = |values: &mut Vec<f64>| {
        values.sort_by(f64::total_cmp);
        values[values.len() / 2]
    };
    let (face, background) = (median(&mut faces), median(&mut backgrounds));
    assert!(
        face < 10.0,
        "the face does not match the camera: median {face}"
    );
    assert!(
        background > 40.0,
        "the background was not replaced: median {background}"
    );
    std::fs::remove_dir_all(dir).unwrap();
}

/// Browser tests take the machine: one at a time (the test harness runs tests in parallel).
static BROWSER: std::sync::Mutex<()> = std::sync::Mutex::new(());

fn one_browser_at_a_time() -> std::sync::MutexGuard<'static, ()> {
    BROWSER
        .lock()
        .unwrap_or_else(|poisoned| poisoned.into_inner())
}

/// Median of `values` (sorted in place).
fn median(values: &mut [f64]) -> f64 {
    values.sort_by(f64::total_cmp);
    values[values.len() / 2]
}

fn end_of(stream: &serde_json::Value) -> f64 {
    stream["end_recording_time_ns"].as_u64().unwrap() as f64 / 1e9
}

/// The streams' ends per the manifest (recording time, s) and the recording's duration.
fn stream_ends(summary: &serde_json::Value) -> (Vec<f64>, f64) {
    let manifest = &summary["manifest"];
    let recorded_s = manifest["recorded_duration_ns"].as_u64().unwrap() as f64 / 1e9;
    let ends = manifest["streams"]
        .as_array()
        .unwrap()
        .iter()
        .map(end_of)
        .collect();
    (ends, recorded_s)
}

/// The recorder's streams end together, within `tolerance_s`, per the manifest (drained to the
/// same end time), and the file holds what the manifest says.
fn assert_streams_end_together(dir: &Path, summary: &serde_json::Value, tolerance_s: f64) {
    let (ends, recorded_s) = stream_ends(summary);
    for end in &ends {
        assert!(
            (end - recorded_s).abs() < tolerance_s,
            "stream ends {ends:?}, recorded {recorded_s}"
        );
    }
    assert_file_matches_manifest(dir, summary);
}

/// The decrypted file holds what the manifest says: each stream's packets, all of them, the
/// last where the manifest says the stream ends.
fn assert_file_matches_manifest(dir: &Path, summary: &serde_json::Value) {
    let streams = summary["manifest"]["streams"].as_array().unwrap();
    let recording = PathBuf::from(summary["recording"].as_str().unwrap());
    let plain = dir.join(format!(
        "{}.mp4",
        recording.file_name().unwrap().to_string_lossy()
    ));
    age_decrypt(&dir.join("key.txt"), &recording, &plain);
    assert_eq!(stream_durations(&plain).len(), 2);
    for stream in streams {
        let kind = stream["kind"].as_str().unwrap();
        let packets = packet_times(&plain, &kind[..1]);
        assert_eq!(
            packets.len() as u64,
            stream["buffers_recorded"].as_u64().unwrap(),
            "{kind} packets in the file, buffers in the manifest"
        );
        // The manifest's end is the last packet's time plus its duration (20 ms of Opus, a
        // frame's duration if the video had one).
        let last = packets.iter().map(|(pts, _)| *pts).fold(0.0, f64::max);
        let end = end_of(stream);
        assert!(
            last <= end + 0.001 && last > end - 0.25,
            "the last {kind} packet is at {last} s in the file, the manifest says {kind} ends at {end} s"
        );
    }
}

/// A default call with a 1280x720 camera: the browser ramps up (transport-wide congestion
/// control, a start bitrate in the answer), the agent blurs and records (sd) while it cannot
/// keep up with every frame, and the preview stays live: a white flash of 200 ms drawn every
/// 2 s into the camera comes back within a second and no later at the end than at the start
/// (frames are dropped, never queued). Prints JSON.
#[test]
fn browser_720p_call_ramps_up_and_the_preview_stays_live() {
    let _machine = one_browser_at_a_time();
    let dir = scratch("e2e-webrtc-720p");
    let clip = camera_clip(&dir, (1280, 720), 30);
    let (mut agent, port) = start_agent(&dir, &["--once", "--effect", "blur"]);
    let seconds = 20;
    let result = run_peer(
        port,
        serde_json::json!({ "clip": clip, "seconds": seconds, "pauses": [[5, 9]], "flash": true }),
        Duration::from_secs(180),
    );
    assert!(agent.wait_for(Duration::from_secs(30)), "agent failed");
    let call = &result["calls"][0];
    let samples = call["samples"].as_array().unwrap();
    let widest = samples
        .iter()
        .filter_map(|s| {
            s["sent"]["width"]
                .as_u64()
                .map(|w| (w, s["t"].as_u64().unwrap()))
        })
        .max_by_key(|&(width, t)| (width, std::cmp::Reverse(t)))
        .unwrap();
    let preview_fps: Vec<f64> = samples
        .iter()
        .filter_map(|s| s["preview"]["fps"].as_f64())
        .collect();
    let mut latencies: Vec<f64> = call["flash_latency_ms"]
        .as_array()
        .unwrap()
        .iter()
        .filter_map(|v| v.as_f64())
        .collect();
    let report = serde_json::json!({
        "camera": "1280x720 at 30 fps",
        "sent_widest": { "width": widest.0, "first_at_s": widest.1 },
        "sent_by_second": samples.iter().map(|s| format!("{}x{}", s["sent"]["width"], s["sent"]["height"])).collect::<Vec<_>>(),
        "bandwidth_estimate_bps": samples.last().unwrap()["bandwidth_estimate_bps"],
        "preview_fps_mean": preview_fps.iter().sum::<f64>() / preview_fps.len().max(1) as f64,
        "preview_frames_decoded": call["preview"]["frames_decoded"],
        "flash_latency_ms": latencies,
        "flashes_sent": seconds / 2,
    });
    println!("{}", serde_json::to_string_pretty(&report).unwrap());
    // Beyond what loss-based estimation gave (320x180-480x270 for the whole call).
    assert!(widest.0 >= 960, "{report}");
    assert!(latencies.len() >= 5, "flashes came back: {report}");
    // Frames are dropped, never queued: a queue fed 30 fps and drained at 10-15 fps is a
    // second further behind every two seconds; the latency may rise a little when the browser
    // switches to 1280x720 mid-call (measured: 170 ms at 960x540, 280-440 ms at 720p), but
    // not by half a second.
    let (first, last) = (&latencies[..3], &latencies[latencies.len() - 3..]);
    let mean = |values: &[f64]| values.iter().sum::<f64>() / values.len() as f64;
    assert!(mean(last) <= mean(first) + 500.0, "{report}");
    // A queued pipeline (9-10 fps processed of 30 sent) is seconds behind within the call;
    // the bound leaves room for a loaded 2-core CI machine (its median was 468 ms there,
    // ~300 ms here) without letting a queue through. Absolute speed is the benches' job.
    let median_latency = median(&mut latencies);
    assert!(median_latency <= 1000.0, "{report}");
    assert!(
        call["preview"]["frames_decoded"].as_u64().unwrap() >= 100,
        "{report}"
    );
    assert_eq!(call["ended"]["finished"], true);
    // Guards against the queued video lost at the end (found: video ended 2.1-3.2 s before
    // the audio). Not tighter: a jitter buffer starved by the 720p ramp stamps audio back in
    // time, recordmux then plays those packets after the ones before (no speech dropped), and
    // the audio can end up to a few hundred ms later (0.30 s seen once).
    assert_streams_end_together(&dir, &call["ended"], 0.6);
    std::fs::remove_dir_all(dir).unwrap();
}

/// Ten browser calls at once (small camera so two cores cope): ten recordings, each with its
/// own pause acknowledged once applied, none overwriting another.
#[test]
fn ten_concurrent_browser_calls_record_separately() {
    let _machine = one_browser_at_a_time();
    let dir = scratch("e2e-webrtc-ten");
    let clip = camera_clip(&dir, (320, 240), 15);
    let calls = 10;
    let (mut agent, port) = start_agent(
        &dir,
        &[
            "--max-calls",
            "10",
            "--effect",
            "solid",
            "--video-preset",
            "passthrough",
            // Ten Chromium pages starve each other on two cores: one connected and then sent
            // nothing for 10 s (CI), the agent rightly ended it and the page's resume was
            // refused. Inactivity is tested on its own (webrtc_agent_control); here every call
            // must last.
            "--inactivity-timeout",
            "30",
        ],
    );
    let result = run_peer(
        port,
        serde_json::json!({
            "call_id": "ten", "calls": calls, "clip": clip, "seconds": 10, "pauses": [[3, 6]],
        }),
        Duration::from_secs(240),
    );
    let results = result["calls"].as_array().unwrap();
    assert_eq!(results.len(), calls);
    let mut recordings = std::collections::BTreeSet::new();
    let mut summary = Vec::new();
    for call in results {
        let ended = &call["ended"];
        assert_eq!(ended["finished"], true, "{ended}");
        let manifest = &ended["manifest"];
        // Each request is applied: acknowledged with its running time (200), or, when ten
        // browsers starve the machine past the 5 s apply timeout, answered 202 (queued) and
        // applied later. The pause span is exactly what was acknowledged or applied.
        let span = &manifest["paused_spans"][0];
        let events = manifest["events"].as_array().unwrap();
        assert_eq!(events.len(), 2, "{manifest}");
        for ((ack, event), edge) in call["acks"]
            .as_array()
            .unwrap()
            .iter()
            .zip(events)
            .zip(["start_running_time_ns", "end_running_time_ns"])
        {
            assert_eq!(ack["action"], event["action"], "{ack} {event}");
            let applied = match ack["status"].as_u64() {
                Some(200) => ack["transition"]["running_time_ns"].clone(),
                Some(202) => {
                    assert_eq!(ack["applied"], false, "{ack}");
                    event["running_time_ns"].clone()
                }
                _ => panic!("{ack}"),
            };
            // On failure, everything needed to tell the agent's ack from recordmux's timeline.
            assert_eq!(
                span[edge], applied,
                "{edge}: ack {ack}; acks {}; manifest {manifest}",
                call["acks"]
            );
        }
        // Ten Chromium pages take most of the two cores here: the preview comes back, slowly.
        assert!(
            call["preview"]["frames_decoded"].as_u64().unwrap_or(0) >= 1,
            "call {}: no preview came back: {}",
            manifest["call"]["call_id"],
            call["samples"]
        );
        summary.push(serde_json::json!({
            "call_id": manifest["call"]["call_id"],
            "connect_ms": call["connect_ms"],
            "pause_answer_ms": call["acks"][0]["answer_ms"],
            "preview_frames_decoded": call["preview"]["frames_decoded"],
            "video_frames_recorded": manifest["streams"][0]["buffers_recorded"],
            "stream_ends_s": stream_ends(ended).0,
        }));
        recordings.insert(ended["recording"].as_str().unwrap().to_string());
        // Ten browsers starve the agent (video at ~1.5 fps in bursts, calls even ended for
        // 10 s without media): a stream's last media can come seconds before the call's end
        // (2.3 to 6.7 s seen, either stream), which says how starved the inputs were, not how
        // the recorder drains (the single-call tests hold 0.25 and 0.6 s). What must hold is
        // that the manifest says where each stream ends and the file matches it; the ends are
        // in the printed summary.
        assert_file_matches_manifest(&dir, ended);
    }
    println!("{}", serde_json::to_string_pretty(&summary).unwrap());
    assert_eq!(recordings.len(), calls, "{recordings:?}");
    agent.0.kill().ok();
    std::fs::remove_dir_all(dir).unwrap();
}

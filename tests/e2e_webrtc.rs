//! End to end against a real browser: Debian's chromium, headless, with a fake camera fed
//! from a real clip of a person (y4m), driven by playwright-core (tests/e2e/webrtc_peer.mjs),
//! calls the `webrtc_agent` example WHIP-style, stays 10 s, and has the agent pause and resume
//! the recording once. Then the test checks the signatures with `minisign`, decrypts the
//! recording with `age`, and asserts its duration, the paused interval, that every frame
//! decodes, and that in decoded frames the background differs from the camera input while the
//! face matches it.

mod common;

use std::net::TcpListener;
use std::path::Path;
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

fn free_tcp_port() -> u16 {
    TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

#[test]
fn browser_call_is_processed_sent_back_and_recorded_with_a_pause() {
    let dir = scratch("e2e-webrtc");
    let e2e = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/e2e");
    assert!(
        e2e.join("node_modules/playwright-core").exists(),
        "run `npm ci` in tests/e2e (scripts/test.sh does)"
    );
    write_keys(&dir);
    // The fake camera: the carphone clip (a person talking in a car) at CIF, as y4m.
    let clip = dir.join("camera.y4m");
    let status = Command::new("ffmpeg")
        .args(["-v", "error", "-i"])
        .arg(media("carphone.mp4"))
        .args([
            "-vf",
            &format!("scale={WIDTH}:{HEIGHT},setsar=1"),
            "-pix_fmt",
            "yuv420p",
        ])
        .arg(&clip)
        .status()
        .unwrap();
    assert!(status.success());

    let port = free_tcp_port();
    let token_file = dir.join("token");
    std::fs::write(&token_file, TOKEN).unwrap();
    let recording = dir.join("calls/e2e-webrtc.mp4.age");
    let mut agent = ChildGuard::spawn(
        Command::new(example("webrtc_agent"))
            .args(["--port", &port.to_string(), "--once", "--effect", "solid"])
            // Recorded at the camera's size, so recorded and camera frames compare pixel by
            // pixel (the default, sd, letterboxes this 11:9 camera into 640x360).
            .args(["--video-preset", "passthrough"])
            .arg("--token-file")
            .arg(&token_file)
            .arg("--output-dir")
            .arg(dir.join("calls"))
            .arg("--recipients-file")
            .arg(dir.join("recipient.txt"))
            .arg("--signing-key")
            .arg(dir.join("vcc.key"))
            .stdout(Stdio::null())
            .stderr(Stdio::piped()),
    );
    agent.wait_for_stderr_line("listening", Duration::from_secs(60));

    let options = serde_json::json!({
        "agent": format!("http://127.0.0.1:{port}/"),
        "token": TOKEN,
        "call_id": "e2e-webrtc",
        "clip": clip,
        "seconds": CALL_SECONDS,
        "pauses": [[PAUSE_AT, RESUME_AT]],
    });
    let mut peer = ChildGuard::spawn(
        Command::new("node")
            .arg(e2e.join("webrtc_peer.mjs"))
            .arg(options.to_string())
            .stdout(Stdio::piped()),
    );
    assert!(
        peer.wait_for(Duration::from_secs(120)),
        "the browser peer failed"
    );
    let result: serde_json::Value =
        serde_json::from_reader(peer.0.stdout.take().unwrap()).expect("peer prints JSON");
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
        let status = Command::new("minisign")
            .args(["-Vq", "-p"])
            .arg(dir.join("vcc.pub"))
            .arg("-m")
            .arg(file)
            .status()
            .expect("minisign runs (package minisign)");
        assert!(status.success(), "signature of {}", file.display());
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

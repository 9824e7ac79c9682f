//! Helpers shared by the workspace-level end-to-end tests: real media, child processes that
//! are always cleaned up, an ffmpeg RTP sender (as a SIP media server sends) and a GStreamer
//! RTP receiver that counts what arrived.

#![allow(dead_code)]

use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};

use gst::prelude::*;

pub mod vault_cli;

// Each test crate uses some of these.
#[allow(unused_imports)]
pub use test_support::paths::{media, scratch, target_dir};
#[allow(unused_imports)]
pub use test_support::probe::{decoded_frames, packet_times, stream_durations};
#[allow(unused_imports)]
pub use test_support::process::{ChildGuard, free_tcp_port, free_udp_port};

/// A built example binary (`cargo test --all-targets` builds them).
pub fn example(name: &str) -> PathBuf {
    test_support::paths::built(&format!("examples/{name}"))
}

/// Writes a key set like `vcc-vault keygen` into `dir`: key.txt (age identity), recipient.txt,
/// vcc.key and vcc.pub (minisign).
pub fn write_keys(dir: &Path) {
    let (identity, recipient) = vault::keys::generate_identity();
    let (secret, public) = vault::keys::generate_signing_keys().unwrap();
    for (name, content) in [
        ("key.txt", identity),
        ("recipient.txt", recipient),
        ("vcc.key", secret),
        ("vcc.pub", public),
    ] {
        std::fs::write(dir.join(name), content).unwrap();
    }
}

/// The recipients and signing-key flags the examples take, for the keys `write_keys` wrote.
pub fn key_args(dir: &Path) -> [std::ffi::OsString; 4] {
    [
        "--recipients-file".into(),
        dir.join("recipient.txt").into(),
        "--signing-key".into(),
        dir.join("vcc.key").into(),
    ]
}

/// `file` carries a valid minisign signature (`<file>.minisig`) by `public_key`, checked with
/// the standard `minisign` tool.
pub fn assert_signed(public_key: &Path, file: &Path) {
    let status = Command::new("minisign")
        .args(["-Vq", "-p"])
        .arg(public_key)
        .arg("-m")
        .arg(file)
        .status()
        .expect("minisign runs (package minisign)");
    assert!(status.success(), "signature of {}", file.display());
}

/// The webrtc_agent example on a free port, with keys (`write_keys`) and the API token `token`
/// in `dir`, recording encrypted and signed into `dir/calls`; returns once it listens.
pub fn start_webrtc_agent(dir: &Path, token: &str, extra: &[&str]) -> (ChildGuard, u16) {
    write_keys(dir);
    let port = free_tcp_port();
    let token_file = dir.join("token");
    std::fs::write(&token_file, token).unwrap();
    let mut agent = ChildGuard::spawn(
        Command::new(example("webrtc_agent"))
            .args(["--port", &port.to_string()])
            .arg("--token-file")
            .arg(&token_file)
            .arg("--output-dir")
            .arg(dir.join("calls"))
            .args(key_args(dir))
            .args(extra)
            .stdout(Stdio::null())
            .stderr(Stdio::piped()),
    );
    agent.wait_for_stderr_line("listening", std::time::Duration::from_secs(60));
    (agent, port)
}

/// Decrypts `input` to `output` with the standard `age` tool and the identity `key`.
pub fn age_decrypt(key: &Path, input: &Path, output: &Path) {
    let status = Command::new("age")
        .args(["-d", "-i"])
        .arg(key)
        .arg("-o")
        .arg(output)
        .arg(input)
        .status()
        .expect("age runs (package age)");
    assert!(
        status.success(),
        "age could not decrypt {}",
        input.display()
    );
}

/// ffmpeg sending `clip` as H.264 RTP (payload 96) and a tone as PCMU RTP (payload 0) in real
/// time for `seconds`, like a SIP media server; SRTP (AES_CM_128_HMAC_SHA1_80) with
/// `srtp_key` (base64 key+salt, as in SDP `a=crypto`).
pub fn ffmpeg_rtp_sender(
    clip: &Path,
    video_port: u16,
    audio_port: u16,
    seconds: u32,
    srtp_key: Option<&str>,
) -> ChildGuard {
    let looped = seconds > 4;
    let seconds = seconds.to_string();
    let (scheme, srtp) = match srtp_key {
        Some(key) => (
            "srtp",
            vec![
                "-srtp_out_suite",
                "AES_CM_128_HMAC_SHA1_80",
                "-srtp_out_params",
                key,
            ],
        ),
        None => ("rtp", Vec::new()),
    };
    let tone = "sine=frequency=440:sample_rate=8000";
    ChildGuard::spawn(
        Command::new("ffmpeg")
            .args(["-v", "error", "-re"])
            // Calls longer than the 4 s clip loop it.
            .args(if looped {
                &["-stream_loop", "-1"][..]
            } else {
                &[][..]
            })
            .args(["-t", &seconds, "-i"])
            .arg(clip)
            .args(["-f", "lavfi", "-t", &seconds, "-i", tone])
            .args(["-map", "0:v", "-c:v", "libx264", "-preset", "veryfast"])
            .args(["-tune", "zerolatency", "-profile:v", "baseline", "-g", "30"])
            .args(["-f", "rtp", "-payload_type", "96"])
            .args(&srtp)
            .arg(format!("{scheme}://127.0.0.1:{video_port}?pkt_size=1200"))
            .args([
                "-map",
                "1:a",
                "-c:a",
                "pcm_mulaw",
                "-ar",
                "8000",
                "-ac",
                "1",
            ])
            .args(["-f", "rtp", "-payload_type", "0"])
            .args(&srtp)
            .arg(format!("{scheme}://127.0.0.1:{audio_port}"))
            .stdout(Stdio::null()),
    )
}

/// Receives H.264 + PCMU RTP (or SRTP with `srtp_key`, base64) and counts decoded video frames
/// and audio samples.
pub struct RtpReceiver {
    pipeline: gst::Pipeline,
    pub frames: Arc<AtomicU64>,
    pub audio_samples: Arc<AtomicU64>,
}

impl RtpReceiver {
    pub fn start(video_port: u16, audio_port: u16, srtp_key: Option<&str>) -> RtpReceiver {
        let (protocol, decrypt) = match srtp_key {
            Some(_) => ("application/x-srtp", "! srtpdec"),
            None => ("application/x-rtp", ""),
        };
        let pipeline = gst::parse::launch(&format!(
            "udpsrc port={video_port} caps=\"{protocol},media=video,clock-rate=90000,encoding-name=H264,payload=96\" \
               {decrypt} ! rtpjitterbuffer latency=100 ! rtph264depay ! h264parse ! avdec_h264 \
               ! fakesink name=video signal-handoffs=true sync=false \
             udpsrc port={audio_port} caps=\"{protocol},media=audio,clock-rate=8000,encoding-name=PCMU,payload=0\" \
               {decrypt} ! rtpjitterbuffer latency=100 ! rtppcmudepay ! mulawdec ! fakesink name=audio signal-handoffs=true sync=false"
        ))
        .unwrap()
        .downcast::<gst::Pipeline>()
        .unwrap();
        if let Some(key) = srtp_key {
            let key = srtp_key_caps(key);
            for element in pipeline.iterate_elements().into_iter().flatten() {
                if element.factory().is_some_and(|f| f.name() == "srtpdec") {
                    let key = key.clone();
                    element.connect("request-key", false, move |_| Some(key.to_value()));
                }
            }
        }
        let frames = Arc::new(AtomicU64::new(0));
        let audio_samples = Arc::new(AtomicU64::new(0));
        {
            let frames = frames.clone();
            pipeline
                .by_name("video")
                .unwrap()
                .connect("handoff", false, move |_| {
                    frames.fetch_add(1, Ordering::Relaxed);
                    None
                });
        }
        {
            let audio_samples = audio_samples.clone();
            pipeline
                .by_name("audio")
                .unwrap()
                .connect("handoff", false, move |values| {
                    let buffer = values[1].get::<gst::Buffer>().unwrap();
                    audio_samples.fetch_add(buffer.size() as u64 / 2, Ordering::Relaxed);
                    None
                });
        }
        pipeline.set_state(gst::State::Playing).unwrap();
        RtpReceiver {
            pipeline,
            frames,
            audio_samples,
        }
    }
}

/// What srtpdec needs for a stream keyed with `key` (base64 key+salt, AES_CM_128_HMAC_SHA1_80).
fn srtp_key_caps(key: &str) -> gst::Caps {
    use base64::Engine;
    let key = base64::engine::general_purpose::STANDARD
        .decode(key)
        .unwrap();
    gst::Caps::builder("application/x-srtp")
        .field("srtp-key", gst::Buffer::from_slice(key))
        .field("srtp-cipher", "aes-128-icm")
        .field("srtp-auth", "hmac-sha1-80")
        .field("srtcp-cipher", "aes-128-icm")
        .field("srtcp-auth", "hmac-sha1-80")
        .build()
}

impl Drop for RtpReceiver {
    fn drop(&mut self) {
        let _ = self.pipeline.set_state(gst::State::Null);
    }
}

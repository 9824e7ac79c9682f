//! End to end against a real RTP peer: ffmpeg sends H.264 + PCMU RTP or SRTP (as a SIP media
//! server does) to the `rtp_gateway` example, which blurs the background, forwards RTP and records the
//! call encrypted. The test receives the forwarded RTP and checks frames and audio arrived,
//! then decrypts the recording with the standard `age` tool and checks it.

mod common;

use std::process::{Command, Stdio};
use std::sync::atomic::Ordering;
use std::time::Duration;

use common::*;

/// SRTP master key+salt (AES_CM_128_HMAC_SHA1_80, base64 as in SDP `a=crypto`): one per leg.
const SRTP_IN_KEY: &str = "aW5ib3VuZCBsZWcgU1JUUCBrZXkgKyBzYWx0ISEh";
const SRTP_OUT_KEY: &str = "b3V0Ym91bmQgbGVnIFNSVFAga2V5IGFuZCBzYWx0";

#[test]
fn rtp_gateway_forwards_and_records_a_sip_call() {
    sip_call("e2e-rtp", None);
}

#[test]
fn rtp_gateway_with_srtp_on_both_legs() {
    sip_call("e2e-srtp", Some((SRTP_IN_KEY, SRTP_OUT_KEY)));
}

/// A call through the gateway; `srtp` gives the (incoming, outgoing) keys.
fn sip_call(name: &str, srtp: Option<(&str, &str)>) {
    gst::init().unwrap();
    let dir = scratch(name);
    write_keys(&dir);
    let recording = dir.join("call.mp4.age");
    let ports: Vec<u16> = (0..4).map(|_| free_udp_port()).collect();

    let receiver = RtpReceiver::start(ports[2], ports[3], srtp.map(|(_, out)| out));
    let mut command = Command::new(example("rtp_gateway"));
    if let Some((incoming, outgoing)) = srtp {
        command.args(["--srtp-in-key", incoming, "--srtp-out-key", outgoing]);
    }
    let mut gateway = ChildGuard::spawn(
        command
            .args(["--video-port", &ports[0].to_string()])
            .args(["--audio-port", &ports[1].to_string()])
            .args(["--forward-video-port", &ports[2].to_string()])
            .args(["--forward-audio-port", &ports[3].to_string()])
            .args(["--idle-timeout", "2", "--call-id", name])
            .arg("--output")
            .arg(&recording)
            .arg("--recipients-file")
            .arg(dir.join("recipient.txt"))
            .stdout(Stdio::piped())
            .stderr(Stdio::piped()),
    );
    // Wait until the gateway listens before the call starts.
    gateway.wait_for_stderr_line("listening", Duration::from_secs(60));

    let mut sender = ffmpeg_rtp_sender(
        &media("carphone.mp4"),
        ports[0],
        ports[1],
        4,
        srtp.map(|(incoming, _)| incoming),
    );
    assert!(sender.wait_for(Duration::from_secs(60)), "ffmpeg failed");
    // No more RTP: the gateway ends the call after its idle timeout and finalises the file.
    assert!(gateway.wait_for(Duration::from_secs(60)), "gateway failed");
    let manifest: serde_json::Value =
        serde_json::from_reader(gateway.0.stdout.take().unwrap()).expect("manifest on stdout");

    let frames = receiver.frames.load(Ordering::Relaxed);
    let samples = receiver.audio_samples.load(Ordering::Relaxed);
    assert!(frames >= 90, "only {frames} forwarded video frames arrived");
    assert!(
        samples >= 3 * 8000,
        "only {samples} forwarded audio samples arrived"
    );
    drop(receiver);

    // The recording: decrypt with the standard tool, decode every frame, durations.
    let plain = dir.join("call.mp4");
    age_decrypt(&dir.join("key.txt"), &recording, &plain);
    assert!(decoded_frames(&plain) >= 90);
    let durations = stream_durations(&plain);
    assert_eq!(durations.len(), 2, "{durations:?}");
    for (kind, duration) in &durations {
        assert!((duration - 4.0).abs() < 0.5, "{kind} lasts {duration} s");
    }
    assert_eq!(manifest["complete"], true);
    assert_eq!(manifest["call"]["call_id"], name);
    assert_eq!(
        manifest["streams"][1]["handling"], "transcode",
        "PCMU becomes Opus"
    );
    std::fs::remove_dir_all(dir).unwrap();
}

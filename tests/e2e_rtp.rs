//! End to end against a real RTP peer: ffmpeg sends H.264 + PCMU RTP or SRTP (as a SIP media
//! server does) to the `rtp_gateway` example, which blurs the background, forwards RTP and records the
//! call encrypted. The test receives the forwarded RTP and checks frames and audio arrived,
//! then decrypts the recording with the standard `age` tool and checks it.

mod common;

use std::process::{Command, Stdio};
use std::sync::atomic::Ordering;
use std::time::Duration;

use gst::prelude::*;

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
    let manifest = manifest_line(&mut gateway);

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

/// The manifest from the gateway's JSON lines on stdout (after it exited).
fn manifest_line(gateway: &mut ChildGuard) -> serde_json::Value {
    let mut stdout = String::new();
    std::io::Read::read_to_string(&mut gateway.0.stdout.take().unwrap(), &mut stdout).unwrap();
    stdout
        .lines()
        .filter_map(|line| serde_json::from_str::<serde_json::Value>(line).ok())
        .find(|line| line["event"] == "manifest")
        .map(|line| line["manifest"].clone())
        .unwrap_or_else(|| panic!("no manifest on stdout: {stdout}"))
}

/// Counts the RTP packets arriving on `port` by payload type.
fn count_payload_types(
    port: u16,
) -> (
    std::sync::Arc<std::sync::Mutex<std::collections::BTreeMap<u8, u64>>>,
    std::thread::JoinHandle<()>,
) {
    let socket = std::net::UdpSocket::bind(("127.0.0.1", port)).unwrap();
    socket
        .set_read_timeout(Some(Duration::from_secs(8)))
        .unwrap();
    let counts = std::sync::Arc::new(std::sync::Mutex::new(std::collections::BTreeMap::new()));
    let thread_counts = counts.clone();
    let thread = std::thread::spawn(move || {
        let mut packet = [0u8; 2048];
        while let Ok(n) = socket.recv(&mut packet) {
            if n >= 12 {
                *thread_counts
                    .lock()
                    .unwrap()
                    .entry(packet[1] & 0x7f)
                    .or_insert(0) += 1;
            }
        }
    });
    (counts, thread)
}

#[test]
fn telephone_events_are_forwarded_but_never_recorded() {
    // A caller types a digit on the keypad: the SIP side sends it as RFC 4733 telephone
    // events (payload 101, by GStreamer's rtpdtmfsrc) on the audio port, next to silent PCMU.
    gst::init().unwrap();
    let dir = scratch("e2e-dtmf");
    write_keys(&dir);
    let recording = dir.join("call.mp4.age");
    let ports: Vec<u16> = (0..4).map(|_| free_udp_port()).collect();
    let (forwarded, counter) = count_payload_types(ports[3]);
    let mut gateway = ChildGuard::spawn(
        Command::new(example("rtp_gateway"))
            .args(["--video-port", &ports[0].to_string()])
            .args(["--audio-port", &ports[1].to_string()])
            .args(["--forward-video-port", &ports[2].to_string()])
            .args(["--forward-audio-port", &ports[3].to_string()])
            .args(["--idle-timeout", "2", "--call-id", "dtmf"])
            .arg("--output")
            .arg(&recording)
            .arg("--recipients-file")
            .arg(dir.join("recipient.txt"))
            .stdout(Stdio::piped())
            .stderr(Stdio::piped()),
    );
    gateway.wait_for_stderr_line("listening", Duration::from_secs(60));
    let sender = gst::parse::launch(&format!(
        "videotestsrc is-live=true num-buffers=120 ! video/x-raw,width=320,height=240,framerate=30/1 \
           ! x264enc tune=zerolatency key-int-max=30 ! rtph264pay pt=96 config-interval=-1 \
           ! udpsink host=127.0.0.1 port={} \
         audiotestsrc is-live=true wave=silence num-buffers=200 samplesperbuffer=160 \
           ! audio/x-raw,rate=8000,channels=1 ! mulawenc ! rtppcmupay pt=0 ! rtpdtmfmux name=mux \
           ! udpsink host=127.0.0.1 port={} \
         rtpdtmfsrc name=dtmf pt=101 clock-rate=8000 ! mux.",
        ports[0], ports[1]
    ))
    .unwrap();
    sender.set_state(gst::State::Playing).unwrap();
    let dtmf = sender
        .downcast_ref::<gst::Bin>()
        .unwrap()
        .by_name("dtmf")
        .unwrap()
        .static_pad("src")
        .unwrap();
    let event = |start: bool| {
        let mut structure = gst::Structure::builder("dtmf-event")
            .field("type", 1i32)
            .field("method", 1i32)
            .field("start", start);
        if start {
            structure = structure.field("number", 5i32).field("volume", 10i32);
        }
        gst::event::CustomUpstream::new(structure.build())
    };
    std::thread::sleep(Duration::from_millis(1000));
    assert!(dtmf.send_event(event(true)));
    std::thread::sleep(Duration::from_millis(1500));
    assert!(dtmf.send_event(event(false)));
    let _ = sender
        .bus()
        .unwrap()
        .timed_pop_filtered(gst::ClockTime::from_seconds(30), &[gst::MessageType::Eos]);
    sender.set_state(gst::State::Null).unwrap();
    assert!(gateway.wait_for(Duration::from_secs(60)), "gateway failed");
    counter.join().unwrap();
    let forwarded = forwarded.lock().unwrap().clone();
    assert!(
        forwarded.get(&0).copied().unwrap_or(0) > 100,
        "{forwarded:?}"
    );
    assert!(
        forwarded.get(&101).copied().unwrap_or(0) > 10,
        "telephone events reach the next hop: {forwarded:?}"
    );
    let plain = dir.join("call.mp4");
    age_decrypt(&dir.join("key.txt"), &recording, &plain);
    let audio = test_support::probe::audio_samples(&plain, 0);
    let loudest = audio.iter().fold(0.0f64, |max, v| max.max(v.abs()));
    // Telephone events decoded as PCMU would be loud noise; the call itself is silence.
    assert!(loudest < 0.01, "the recording holds {loudest} peaks");
    assert!(
        audio.len() > 3 * 48000,
        "the audio was recorded: {} samples",
        audio.len()
    );
    std::fs::remove_dir_all(dir).unwrap();
}

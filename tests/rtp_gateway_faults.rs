//! rtp_gateway under hostile RTP on 127.0.0.1: blind packets that used to end the call,
//! spoofed audio from another source, a garbage trickle after the call hung up, and a minute
//! of mixed garbage while a real call (ffmpeg) goes on with two PCI pauses given on stdin.

mod common;

use std::io::{BufRead, BufReader, Write};
use std::net::UdpSocket;
use std::process::{Command, Stdio};
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use common::*;
use gst::prelude::*;

/// An RTP packet.
fn rtp(pt: u8, ssrc: u32, seq: u16, payload: &[u8]) -> Vec<u8> {
    let mut packet = vec![0x80, pt, (seq >> 8) as u8, seq as u8, 0, 0, 0x10, 0];
    packet.extend_from_slice(&ssrc.to_be_bytes());
    packet.extend_from_slice(payload);
    packet
}

/// The probe's packet: 33 bytes, payload type 96, an MTAP16 NAL (type 26).
fn blind_mtap(seq: u16) -> Vec<u8> {
    let mut payload = vec![26u8];
    payload.resize(21, 0x5a);
    rtp(96, 0xdead_beef, seq, &payload)
}

/// A little xorshift: garbage that differs packet to packet, the same every run.
struct Noise(u64);

impl Noise {
    fn next(&mut self) -> u64 {
        self.0 ^= self.0 << 13;
        self.0 ^= self.0 >> 7;
        self.0 ^= self.0 << 17;
        self.0
    }

    fn bytes(&mut self, len: usize) -> Vec<u8> {
        (0..len).map(|_| self.next() as u8).collect()
    }

    /// One packet of mixed garbage: random bytes, wrong payload types, bad H.264, well-formed
    /// H.264 and loud PCMU from a stranger (never in sequence: a stranger is never learnt).
    fn garbage(&mut self) -> (Vec<u8>, bool) {
        let seq = self.next() as u16;
        let ssrc = self.next() as u32;
        let to_video = self.next().is_multiple_of(2);
        let packet = match self.next() % 6 {
            0 => {
                let len = 1 + (self.next() % 300) as usize;
                self.bytes(len)
            }
            1 => blind_mtap(seq),
            2 => rtp(97 + (self.next() % 20) as u8, ssrc, seq, &self.bytes(100)),
            3 => rtp(96, ssrc, seq, &[0x65, 0x88, 0x84, 0x21, 0xa0]),
            4 => rtp(0, ssrc, seq, &[0u8; 160]),
            _ => {
                let mut stap = vec![24u8, 0, 200];
                stap.extend(self.bytes(20));
                rtp(96, ssrc, seq, &stap)
            }
        };
        (packet, to_video)
    }
}

struct Gateway {
    process: ChildGuard,
    lines: Arc<Mutex<Vec<serde_json::Value>>>,
    reader: Option<std::thread::JoinHandle<()>>,
}

impl Gateway {
    /// The gateway on `ports` (video in, audio in, video out, audio out), stdin piped for
    /// control, stdout's JSON lines collected.
    fn start(dir: &std::path::Path, ports: &[u16], call_id: &str) -> Gateway {
        write_keys(dir);
        let mut process = ChildGuard::spawn(
            Command::new(example("rtp_gateway"))
                .args(["--video-port", &ports[0].to_string()])
                .args(["--audio-port", &ports[1].to_string()])
                .args(["--forward-video-port", &ports[2].to_string()])
                .args(["--forward-audio-port", &ports[3].to_string()])
                .args(["--idle-timeout", "2", "--call-id", call_id])
                .arg("--output")
                .arg(dir.join("call.mp4.age"))
                .args(key_args(dir))
                .stdin(Stdio::piped())
                .stdout(Stdio::piped())
                .stderr(Stdio::piped()),
        );
        process.wait_for_stderr_line("listening", Duration::from_secs(60));
        let lines: Arc<Mutex<Vec<serde_json::Value>>> = Arc::default();
        let stdout = process.0.stdout.take().unwrap();
        let reader = {
            let lines = lines.clone();
            std::thread::spawn(move || {
                for line in BufReader::new(stdout).lines().map_while(Result::ok) {
                    if let Ok(value) = serde_json::from_str(&line) {
                        lines.lock().unwrap().push(value);
                    }
                }
            })
        };
        Gateway {
            process,
            lines,
            reader: Some(reader),
        }
    }

    fn command(&mut self, line: &str) {
        let stdin = self.process.0.stdin.as_mut().unwrap();
        writeln!(stdin, "{line}").unwrap();
        stdin.flush().unwrap();
    }

    /// Waits for the `count`-th line of `event`.
    fn wait_event(&self, event: &str, count: usize) -> serde_json::Value {
        let start = Instant::now();
        loop {
            let found = self
                .lines
                .lock()
                .unwrap()
                .iter()
                .filter(|line| line["event"] == event)
                .nth(count - 1)
                .cloned();
            if let Some(line) = found {
                return line;
            }
            assert!(
                start.elapsed() < Duration::from_secs(10),
                "no {event} #{count}"
            );
            std::thread::sleep(Duration::from_millis(20));
        }
    }

    /// After the gateway exited: every JSON line it printed.
    fn finish(&mut self) -> Vec<serde_json::Value> {
        self.reader.take().unwrap().join().unwrap();
        self.lines.lock().unwrap().clone()
    }
}

fn event<'a>(lines: &'a [serde_json::Value], name: &str) -> &'a serde_json::Value {
    lines
        .iter()
        .find(|line| line["event"] == name)
        .unwrap_or_else(|| panic!("no {name} line in {lines:?}"))
}

#[test]
fn blind_packets_spoofed_audio_and_a_garbage_trickle_neither_end_enter_nor_prolong_the_call() {
    gst::init().unwrap();
    let dir = scratch("gateway-hostile");
    let ports: Vec<u16> = (0..4).map(|_| free_udp_port()).collect();
    let mut gateway = Gateway::start(&dir, &ports, "hostile");
    // The real call: 8 s of video and silent PCMU (so any spoofed sound would show).
    let sender = gst::parse::launch(&format!(
        "videotestsrc is-live=true num-buffers=240 ! video/x-raw,width=320,height=240,framerate=30/1 \
           ! x264enc tune=zerolatency key-int-max=30 ! rtph264pay pt=96 config-interval=-1 \
           ! udpsink host=127.0.0.1 port={} \
         audiotestsrc is-live=true wave=silence num-buffers=400 samplesperbuffer=160 \
           ! audio/x-raw,rate=8000,channels=1 ! mulawenc ! rtppcmupay pt=0 \
           ! udpsink host=127.0.0.1 port={}",
        ports[0], ports[1]
    ))
    .unwrap();
    sender.set_state(gst::State::Playing).unwrap();
    let call_over = Arc::new(AtomicBool::new(false));
    let gateway_gone = Arc::new(AtomicBool::new(false));
    let attacker = {
        let (call_over, gateway_gone) = (call_over.clone(), gateway_gone.clone());
        let (video, audio) = (ports[0], ports[1]);
        std::thread::spawn(move || {
            let socket = UdpSocket::bind("127.0.0.1:0").unwrap();
            std::thread::sleep(Duration::from_secs(1));
            // The blind probe that ended calls.
            for seq in 0..5000u16 {
                let _ = socket.send_to(&blind_mtap(seq), ("127.0.0.1", video));
                if seq % 100 == 0 {
                    std::thread::sleep(Duration::from_millis(2));
                }
            }
            // Loud PCMU in sequence from another source, while the call's audio is live.
            for seq in 0..250u16 {
                let _ = socket.send_to(&rtp(0, 0x5eed, seq, &[0u8; 160]), ("127.0.0.1", audio));
                std::thread::sleep(Duration::from_millis(20));
            }
            // Garbage for the rest of the call (1000 packets/s, ten times its media rate) and
            // after it, as a trickle until the gateway gave up on the call. Not unpaced: a
            // flood as fast as a core sends starves a 2-core machine running two of these
            // tests (CI lost a second of the call's own video to it), which measures the CPU,
            // not whether garbage ends or prolongs a call.
            let mut noise = Noise(0x9e37_79b9_7f4a_7c15);
            while !gateway_gone.load(Ordering::Relaxed) {
                let (packet, to_video) = noise.garbage();
                let port = if to_video { video } else { audio };
                let _ = socket.send_to(&packet, ("127.0.0.1", port));
                let pause = if call_over.load(Ordering::Relaxed) {
                    50
                } else {
                    1
                };
                std::thread::sleep(Duration::from_millis(pause));
            }
        })
    };
    let _ = sender
        .bus()
        .unwrap()
        .timed_pop_filtered(gst::ClockTime::from_seconds(30), &[gst::MessageType::Eos]);
    sender.set_state(gst::State::Null).unwrap();
    call_over.store(true, Ordering::Relaxed);
    let hung_up = Instant::now();
    // The idle timeout (2 s) counts valid media only: the trickle does not keep the call.
    assert!(
        gateway.process.wait_for(Duration::from_secs(30)),
        "gateway failed"
    );
    let ended_after = hung_up.elapsed();
    gateway_gone.store(true, Ordering::Relaxed);
    attacker.join().unwrap();
    assert!(
        ended_after < Duration::from_secs(8),
        "ended {ended_after:?} after the hang-up"
    );
    let lines = gateway.finish();
    let guard = event(&lines, "guard");
    eprintln!("{guard}");
    assert!(
        guard["video"]["refused"]["payload"].as_u64().unwrap() >= 100,
        "{guard}"
    );
    assert!(
        guard["audio"]["refused"]["source"].as_u64().unwrap() >= 100,
        "{guard}"
    );
    assert_eq!(guard["video"]["latches"], 1, "{guard}");
    assert_eq!(guard["audio"]["latches"], 1, "{guard}");
    let manifest = &event(&lines, "manifest")["manifest"];
    assert_eq!(manifest["complete"], true, "{manifest}");

    // Signed and complete; the spoofed sound never reached it; the whole call is in it.
    let recording = dir.join("call.mp4.age");
    assert_signed(&dir.join("vcc.pub"), &recording);
    let plain = dir.join("call.mp4");
    age_decrypt(&dir.join("key.txt"), &recording, &plain);
    let audio = test_support::probe::audio_samples(&plain, 0);
    let loudest = audio.iter().fold(0.0f64, |max, v| max.max(v.abs()));
    assert!(loudest < 0.01, "spoofed audio was recorded: peak {loudest}");
    for (kind, duration) in stream_durations(&plain) {
        assert!((duration - 8.0).abs() < 0.6, "{kind} lasts {duration} s");
    }
    assert!(decoded_frames(&plain) >= 200);
    std::fs::remove_dir_all(dir).unwrap();
}

#[test]
fn a_minute_of_garbage_while_a_call_with_pci_pauses_goes_on() {
    gst::init().unwrap();
    let dir = scratch("gateway-garbage-minute");
    let ports: Vec<u16> = (0..4).map(|_| free_udp_port()).collect();
    let mut gateway = Gateway::start(&dir, &ports, "garbage-minute");
    let receiver = RtpReceiver::start(ports[2], ports[3], None);
    let seconds = 62;
    let mut sender = ffmpeg_rtp_sender(&media("carphone.mp4"), ports[0], ports[1], seconds, None);
    let stop = Arc::new(AtomicBool::new(false));
    let sent = Arc::new(AtomicU64::new(0));
    let attacker = {
        let (stop, sent) = (stop.clone(), sent.clone());
        let (video, audio) = (ports[0], ports[1]);
        std::thread::spawn(move || {
            let socket = UdpSocket::bind("127.0.0.1:0").unwrap();
            let mut noise = Noise(0x2545_f491_4f6c_dd1d);
            std::thread::sleep(Duration::from_millis(500));
            let start = Instant::now();
            // ~1000 packets a second for 60 s.
            while !stop.load(Ordering::Relaxed) && start.elapsed() < Duration::from_secs(60) {
                for _ in 0..10 {
                    let (packet, to_video) = noise.garbage();
                    let port = if to_video { video } else { audio };
                    let _ = socket.send_to(&packet, ("127.0.0.1", port));
                    sent.fetch_add(1, Ordering::Relaxed);
                }
                std::thread::sleep(Duration::from_millis(10));
            }
        })
    };
    // Two PCI pauses, acknowledged with the running time recordmux applied them at.
    let mut acks = Vec::new();
    let call_start = Instant::now();
    for (at, command, event, count) in [
        (10, "pause customer reads card number", "paused", 1),
        (18, "resume", "resumed", 1),
        (35, "pause security code", "paused", 2),
        (41, "resume", "resumed", 2),
    ] {
        std::thread::sleep(Duration::from_secs(at).saturating_sub(call_start.elapsed()));
        gateway.command(command);
        acks.push(gateway.wait_event(event, count));
    }
    assert!(sender.wait_for(Duration::from_secs(120)), "ffmpeg failed");
    stop.store(true, Ordering::Relaxed);
    attacker.join().unwrap();
    assert!(
        gateway.process.wait_for(Duration::from_secs(60)),
        "gateway failed"
    );
    let lines = gateway.finish();
    let guard = event(&lines, "guard");
    eprintln!(
        "garbage sent: {}, guard: {guard}",
        sent.load(Ordering::Relaxed)
    );
    let refused = |kind: &str| -> u64 {
        guard[kind]["refused"]
            .as_object()
            .unwrap()
            .values()
            .map(|v| v.as_u64().unwrap())
            .sum()
    };
    assert!(refused("video") + refused("audio") >= 30_000, "{guard}");
    assert_eq!(guard["video"]["latches"], 1, "{guard}");

    // The pauses in the manifest are exactly those acknowledged.
    let manifest = &event(&lines, "manifest")["manifest"];
    assert_eq!(manifest["complete"], true);
    let spans = manifest["paused_spans"].as_array().unwrap();
    assert_eq!(spans.len(), 2, "{manifest}");
    for (span, pair) in spans.iter().zip(acks.chunks(2)) {
        assert_eq!(span["start_running_time_ns"], pair[0]["running_time_ns"]);
        assert_eq!(span["end_running_time_ns"], pair[1]["running_time_ns"]);
    }
    let paused_s = manifest["paused_duration_ns"].as_u64().unwrap() as f64 / 1e9;
    assert!((paused_s - 14.0).abs() < 1.0, "paused {paused_s} s");
    // The call was forwarded and recorded throughout: the recording plays fully.
    let frames = receiver.frames.load(Ordering::Relaxed);
    assert!(
        frames as f64 >= 0.9 * 30.0 * seconds as f64,
        "{frames} frames forwarded"
    );
    drop(receiver);
    let plain = dir.join("call.mp4");
    age_decrypt(&dir.join("key.txt"), &dir.join("call.mp4.age"), &plain);
    let recorded_s = manifest["recorded_duration_ns"].as_u64().unwrap() as f64 / 1e9;
    assert!(
        (recorded_s - (seconds as f64 - paused_s)).abs() < 1.5,
        "recorded {recorded_s} s"
    );
    for (kind, duration) in stream_durations(&plain) {
        assert!(
            (duration - recorded_s).abs() < 0.5,
            "{kind} lasts {duration} s of {recorded_s}"
        );
    }
    let decoded = decoded_frames(&plain);
    assert!(
        decoded as f64 >= 0.9 * 30.0 * recorded_s,
        "{decoded} frames decode"
    );
    std::fs::remove_dir_all(dir).unwrap();
}

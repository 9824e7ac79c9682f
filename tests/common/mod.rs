//! Helpers shared by the workspace-level end-to-end tests: real media, child processes that
//! are always cleaned up, an ffmpeg RTP sender (as a SIP media server sends) and a GStreamer
//! RTP receiver that counts what arrived.

#![allow(dead_code)]

use std::io::{BufRead, BufReader};
use std::net::UdpSocket;
use std::os::unix::process::CommandExt;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, mpsc};
use std::time::{Duration, Instant};

use gst::prelude::*;

/// A real media file fetched by `scripts/fetch-media.sh`.
pub fn media(name: &str) -> PathBuf {
    let path = Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("media")
        .join(name);
    assert!(
        path.exists(),
        "{} is missing: run scripts/fetch-media.sh",
        path.display()
    );
    path
}

/// A built example binary (`cargo test --all-targets` builds them).
pub fn example(name: &str) -> PathBuf {
    let path = target_dir().join("examples").join(name);
    assert!(
        path.exists(),
        "{} is missing: run `cargo build --examples`",
        path.display()
    );
    path
}

/// `target/<profile>/`.
pub fn target_dir() -> PathBuf {
    let exe = std::env::current_exe().unwrap();
    exe.parent().unwrap().parent().unwrap().to_path_buf()
}

pub fn scratch(name: &str) -> PathBuf {
    let dir = std::env::temp_dir().join(format!("gst-vcc-{name}-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir).unwrap();
    dir
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

/// A UDP port nobody uses right now.
pub fn free_udp_port() -> u16 {
    UdpSocket::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

/// A child process in its own process group, killed with everything it started (a browser,
/// say) when dropped, so a failing test leaves nothing behind.
pub struct ChildGuard(pub Child);

impl ChildGuard {
    pub fn spawn(command: &mut Command) -> ChildGuard {
        ChildGuard(
            command
                .process_group(0)
                .spawn()
                .unwrap_or_else(|err| panic!("{command:?}: {err}")),
        )
    }

    /// Echoes the child's stderr (piped) to ours and waits at most `limit` for a line starting
    /// with `prefix` (e.g. a server saying it listens).
    pub fn wait_for_stderr_line(&mut self, prefix: &'static str, limit: Duration) {
        let stderr = self.0.stderr.take().expect("stderr is piped");
        let (found, seen) = mpsc::channel();
        std::thread::spawn(move || {
            for line in BufReader::new(stderr).lines().map_while(Result::ok) {
                eprintln!("[child] {line}");
                if line.starts_with(prefix) {
                    let _ = found.send(());
                }
            }
        });
        seen.recv_timeout(limit)
            .unwrap_or_else(|_| panic!("no '{prefix}' line within {limit:?}"));
    }

    /// Waits at most `limit` for the process to exit by itself; returns its success.
    pub fn wait_for(&mut self, limit: Duration) -> bool {
        let start = Instant::now();
        while start.elapsed() < limit {
            if let Some(status) = self.0.try_wait().unwrap() {
                return status.success();
            }
            std::thread::sleep(Duration::from_millis(100));
        }
        panic!("process did not exit within {limit:?}");
    }
}

impl Drop for ChildGuard {
    fn drop(&mut self) {
        // Even if the child exited, what it started may live on in its group.
        // SAFETY: a plain syscall on the process group this guard created.
        unsafe { libc::killpg(self.0.id() as libc::pid_t, libc::SIGKILL) };
        let _ = self.0.wait();
    }
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
            .args(["-v", "error", "-re", "-t", &seconds, "-i"])
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

/// Decoded video frames of a media file (ffmpeg); fails on decoder errors.
pub fn decoded_frames(path: &Path) -> usize {
    let output = Command::new("ffmpeg")
        .args(["-v", "error", "-i"])
        .arg(path)
        .args(["-map", "0:v", "-f", "framemd5", "-"])
        .output()
        .unwrap();
    let errors = String::from_utf8_lossy(&output.stderr);
    assert!(
        output.status.success() && errors.trim().is_empty(),
        "{errors}"
    );
    String::from_utf8_lossy(&output.stdout)
        .lines()
        .filter(|line| line.starts_with("0,"))
        .count()
}

/// Per stream type: duration in seconds from ffprobe.
pub fn stream_durations(path: &Path) -> Vec<(String, f64)> {
    let output = Command::new("ffprobe")
        .args([
            "-v",
            "error",
            "-show_entries",
            "stream=codec_type,duration",
            "-of",
            "csv=p=0",
        ])
        .arg(path)
        .output()
        .unwrap();
    String::from_utf8_lossy(&output.stdout)
        .lines()
        .filter_map(|line| {
            let (kind, duration) = line.split_once(',')?;
            Some((kind.to_string(), duration.parse().ok()?))
        })
        .collect()
}

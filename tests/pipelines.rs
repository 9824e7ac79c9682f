//! Runs every file in pipelines/ (devices replaced by test sources, placeholders filled), so
//! that none of them can rot. A new pipeline file without a case here fails the test.

mod common;

use std::path::{Path, PathBuf};
use std::process::Command;
use std::sync::atomic::Ordering;
use std::time::Duration;

use gst::prelude::*;

fn pipelines_dir() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("pipelines")
}

fn description(name: &str, substitutions: &[(&str, String)]) -> String {
    let text = std::fs::read_to_string(pipelines_dir().join(name)).unwrap();
    let mut description: String = text
        .lines()
        .filter(|line| !line.trim_start().starts_with('#'))
        .collect::<Vec<_>>()
        .join(" ");
    for (from, to) in substitutions {
        assert!(description.contains(from), "{name} has no {from}");
        description = description.replace(from, to);
    }
    description
}

fn run(description: &str) {
    gst::init().unwrap();
    gstvcc::register().unwrap();
    let pipeline = gst::parse::launch(description).unwrap_or_else(|e| panic!("{e}: {description}"));
    let bus = pipeline.bus().unwrap();
    pipeline.set_state(gst::State::Playing).unwrap();
    let message = bus
        .timed_pop_filtered(
            gst::ClockTime::from_seconds(120),
            &[gst::MessageType::Eos, gst::MessageType::Error],
        )
        .expect("pipeline finishes in time");
    pipeline.set_state(gst::State::Null).unwrap();
    if let gst::MessageView::Error(error) = message.view() {
        panic!("{}: {description}", error.error());
    }
}

fn stream_frames(path: &Path) -> String {
    let output = Command::new("ffprobe")
        .args(["-v", "error", "-count_frames", "-show_entries"])
        .args(["stream=codec_type,nb_read_frames", "-of", "compact=nk=1"])
        .arg(path)
        .output()
        .expect("ffprobe");
    String::from_utf8_lossy(&output.stdout).into_owned()
}

#[test]
fn every_pipeline_file_runs() {
    let dir = std::env::temp_dir().join(format!("gst-vcc-pipelines-{}", std::process::id()));
    std::fs::create_dir_all(dir.join("keys")).unwrap();
    common::write_keys(&dir.join("keys"));
    let keys = dir.join("keys").display().to_string();
    let mut covered = Vec::new();

    run(&description(
        "agent-camera-blur-rtp.pipeline",
        &[("v4l2src", "videotestsrc num-buffers=30 pattern=ball".into())],
    ));
    covered.push("agent-camera-blur-rtp.pipeline");

    // A call-like input file: video and audio.
    let input = dir.join("input.mp4");
    run(&format!(
        "videotestsrc num-buffers=60 ! video/x-raw,width=320,height=240,framerate=30/1 ! x264enc ! mux. \
         audiotestsrc num-buffers=100 ! audioconvert ! avenc_aac ! mux. mp4mux name=mux ! filesink location={}",
        input.display()
    ));
    let recording = dir.join("call.mp4.age");
    run(&description(
        "record-encrypted.pipeline",
        &[
            ("@INPUT@", input.display().to_string()),
            ("@KEYS@", keys.clone()),
            ("@OUTPUT@", recording.display().to_string()),
        ],
    ));
    covered.push("record-encrypted.pipeline");
    let manifest_path = PathBuf::from(format!("{}.json", recording.display()));
    let manifest: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(&manifest_path).unwrap()).unwrap();
    assert_eq!(manifest["complete"], true, "{manifest}");
    assert_eq!(manifest["call"]["call_id"], "demo-call");
    assert!(PathBuf::from(format!("{}.minisig", manifest_path.display())).exists());

    // The long-call pipeline, its segment length shortened to 1 s of a 2 s input: two or
    // more chained segments that verify as a chain.
    let long_call = dir.join("long");
    run(&description(
        "record-long-call-rotating.pipeline",
        &[
            (
                "max-segment-duration=600000000000",
                "max-segment-duration=1000000000".into(),
            ),
            ("@INPUT@", input.display().to_string()),
            ("@KEYS@", keys.clone()),
            ("@OUTPUT@", long_call.display().to_string()),
        ],
    ));
    covered.push("record-long-call-rotating.pipeline");
    let segments: Vec<PathBuf> = (0..10)
        .map(|i| PathBuf::from(format!("{}-{i:03}.mp4.age", long_call.display())))
        .take_while(|path| path.exists())
        .collect();
    assert!(segments.len() >= 2, "{segments:?}");
    let manifests: Vec<String> = (0..segments.len())
        .map(|i| format!("{}-{i:03}.json", long_call.display()))
        .collect();
    let mut verify = Command::new(test_support::paths::built("vcc-vault"));
    verify
        .args(["verify", "--chain", "--key"])
        .arg(format!("{keys}/vcc.pub"))
        .args(&segments);
    for manifest in &manifests {
        verify.args(["--manifest", manifest]);
    }
    let output = verify.output().unwrap();
    assert!(
        output.status.success(),
        "{}",
        String::from_utf8_lossy(&output.stderr)
    );
    let first: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(&manifests[0]).unwrap()).unwrap();
    assert_eq!(first["call"]["call_id"], "demo-long-call", "{first}");

    let export = dir.join("export.mp4");
    run(&description(
        "export-encrypted.pipeline",
        &[
            ("@INPUT@", recording.display().to_string()),
            ("@KEYS@", keys.clone()),
            ("@OUTPUT@", export.display().to_string()),
        ],
    ));
    covered.push("export-encrypted.pipeline");
    let streams = stream_frames(&export);
    assert!(streams.contains("video|60"), "{streams}");
    assert!(streams.contains("audio|"), "{streams}");

    let webm = dir.join("export.webm");
    run(&description(
        "export-webm.pipeline",
        &[
            ("@INPUT@", recording.display().to_string()),
            ("@KEYS@", keys.clone()),
            ("@OUTPUT@", webm.display().to_string()),
        ],
    ));
    covered.push("export-webm.pipeline");
    let streams = stream_frames(&webm);
    assert!(streams.contains("video|60"), "{streams}");
    assert!(streams.contains("audio|"), "{streams}");

    let wav = dir.join("voice.wav");
    run(&description(
        "export-audio-wav.pipeline",
        &[
            ("@INPUT@", recording.display().to_string()),
            ("@KEYS@", keys.clone()),
            ("@OUTPUT@", wav.display().to_string()),
        ],
    ));
    covered.push("export-audio-wav.pipeline");
    let streams = stream_frames(&wav);
    assert!(
        streams.contains("|audio|") && !streams.contains("video"),
        "{streams}"
    );

    // SIP leg: real RTP from ffmpeg in, RTP out to a receiver; ends with EOS like `-e` on Ctrl-C.
    let ports: Vec<u16> = (0..4).map(|_| common::free_udp_port()).collect();
    let receiver = common::RtpReceiver::start(ports[2], ports[3], None);
    let sip = description(
        "sip-rtp-blur-rtp.pipeline",
        &[
            ("port=5004", format!("port={}", ports[0])),
            ("port=5006", format!("port={}", ports[1])),
            ("port=5008", format!("port={}", ports[2])),
            ("port=5010", format!("port={}", ports[3])),
        ],
    );
    let pipeline = gst::parse::launch(&sip).unwrap();
    pipeline.set_state(gst::State::Playing).unwrap();
    let mut sender =
        common::ffmpeg_rtp_sender(&common::media("carphone.mp4"), ports[0], ports[1], 3, None);
    assert!(sender.wait_for(Duration::from_secs(60)));
    std::thread::sleep(Duration::from_millis(500));
    pipeline.send_event(gst::event::Eos::new());
    let message = pipeline
        .bus()
        .unwrap()
        .timed_pop_filtered(
            gst::ClockTime::from_seconds(30),
            &[gst::MessageType::Eos, gst::MessageType::Error],
        )
        .expect("SIP pipeline ends");
    pipeline.set_state(gst::State::Null).unwrap();
    assert_eq!(message.type_(), gst::MessageType::Eos, "{message:?}");
    let frames = receiver.frames.load(Ordering::Relaxed);
    assert!(frames >= 60, "{frames} forwarded frames");
    assert!(receiver.audio_samples.load(Ordering::Relaxed) >= 2 * 8000);
    covered.push("sip-rtp-blur-rtp.pipeline");

    let mut files: Vec<String> = std::fs::read_dir(pipelines_dir())
        .unwrap()
        .map(|entry| entry.unwrap().file_name().to_string_lossy().into_owned())
        .filter(|name| name.ends_with(".pipeline"))
        .collect();
    files.sort();
    covered.sort();
    assert_eq!(files, covered, "every pipeline file needs a case here");
    std::fs::remove_dir_all(&dir).ok();
}

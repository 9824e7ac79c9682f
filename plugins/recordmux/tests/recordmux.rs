//! `recordmux` end to end: real encoders and muxers, scripted pauses, and the results checked
//! with ffprobe/ffmpeg (durations, sync, keyframes, black frames, silence) and against the
//! manifest.

use std::path::{Path, PathBuf};
use std::process::Command;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use gst::prelude::*;
use test_support::probe::{
    audio_rms, count_frames, decode_all, luma_at, packet_spans, read_json as manifest, sha256_of,
    video_packets,
};

const FRAME_NS: f64 = 1e9 / 30.0;
/// Opus packs 20 ms frames: a cut can round the audio up by that much.
const OPUS_FRAME_S: f64 = 0.020;

fn init() {
    gst::init().unwrap();
    gstrecordmux::plugin_register_static().unwrap();
}

fn scratch(name: &str) -> PathBuf {
    test_support::paths::scratch(&format!("recordmux-{name}"))
}

/// A/V test sources: `seconds` of 320x240@30 moving video and a 48 kHz sine, through
/// `identity name=vtap` (where the test scripts its pauses) into `rec`.
fn av_sources(seconds: u32) -> String {
    format!(
        "videotestsrc num-buffers={} pattern=smpte horizontal-speed=4 ! video/x-raw,width=320,height=240,framerate=30/1 ! \
         identity name=vtap ! rec.video_0 \
         audiotestsrc num-buffers={} samplesperbuffer=960 freq=440 volume=0.5 ! audio/x-raw,rate=48000,channels=1 ! rec.audio_0",
        seconds * 30,
        // 20 ms buffers: rarely aligned with the 33.3 ms video frames.
        seconds * 50
    )
}

/// The pipeline's EOS or first error, waiting at most `seconds`.
fn end_message(pipeline: &impl IsA<gst::Element>, seconds: u64) -> gst::Message {
    pipeline
        .bus()
        .unwrap()
        .timed_pop_filtered(
            gst::ClockTime::from_seconds(seconds),
            &[gst::MessageType::Eos, gst::MessageType::Error],
        )
        .unwrap_or_else(|| panic!("the pipeline did not end within {seconds} s"))
}

struct Run {
    messages: Vec<gst::Structure>,
    /// (pts in ns of the frame before which the signal was emitted, recording wanted).
    switches: Vec<(u64, bool)>,
}

/// Runs `description` to EOS. `toggles` are (media time in ms at `vtap`, recording wanted):
/// the signal is emitted from the video streaming thread just before that buffer reaches
/// recordmux, so the switch lands exactly on that frame.
fn run(description: &str, toggles: &[(u64, bool)], prepare: impl FnOnce(&gst::Bin)) -> Run {
    init();
    let pipeline = gst::parse::launch(description)
        .unwrap()
        .downcast::<gst::Pipeline>()
        .unwrap();
    let rec = pipeline.by_name("rec").unwrap();
    prepare(pipeline.upcast_ref());
    let switches = Arc::new(Mutex::new(Vec::new()));
    if let Some(tap) = pipeline.by_name("vtap") {
        let pending = Arc::new(Mutex::new(toggles.to_vec()));
        let rec = rec.clone();
        let switches = switches.clone();
        tap.static_pad("src").unwrap().add_probe(
            gst::PadProbeType::BUFFER | gst::PadProbeType::BUFFER_LIST,
            move |pad, info| {
                let pts = match &info.data {
                    Some(gst::PadProbeData::Buffer(buffer)) => buffer.pts(),
                    Some(gst::PadProbeData::BufferList(list)) => list.get(0).and_then(|b| b.pts()),
                    _ => None,
                }
                .unwrap();
                // Encoders offset their timestamps (x264enc by 1000 h): compare running time.
                let segment = pad.sticky_event::<gst::event::Segment>(0).unwrap();
                let segment = segment.segment().downcast_ref::<gst::ClockTime>().unwrap();
                let pts = segment.to_running_time(pts).unwrap();
                let mut pending = pending.lock().unwrap();
                while pending.first().is_some_and(|(at, _)| *at <= pts.mseconds()) {
                    let (at, recording) = pending.remove(0);
                    let signal = if recording { "resume" } else { "pause" };
                    rec.emit_by_name::<()>(signal, &[&format!("scripted at {at} ms")]);
                    switches.lock().unwrap().push((pts.nseconds(), recording));
                }
                gst::PadProbeReturn::Ok
            },
        );
    }
    pipeline.set_state(gst::State::Playing).unwrap();
    let bus = pipeline.bus().unwrap();
    let mut messages = Vec::new();
    loop {
        let message = bus
            .timed_pop(gst::ClockTime::from_seconds(60))
            .expect("pipeline finishes in time");
        match message.view() {
            gst::MessageView::Eos(_) => break,
            gst::MessageView::Error(err) => {
                pipeline.set_state(gst::State::Null).unwrap();
                panic!("{} ({:?})", err.error(), err.debug());
            }
            gst::MessageView::Element(element) => {
                messages.push(element.structure().unwrap().to_owned())
            }
            _ => (),
        }
    }
    pipeline.set_state(gst::State::Null).unwrap();
    let switches = switches.lock().unwrap().clone();
    Run { messages, switches }
}

/// Seconds recorded out of `total_s` when recording starts as `initially` and switches as
/// the run did.
fn recorded_seconds(initially: bool, switches: &[(u64, bool)], total_s: f64) -> f64 {
    let total = (total_s * 1e9) as u64;
    let mut since = initially.then_some(0);
    let mut recorded = 0;
    for &(at, recording) in switches {
        match (recording, since) {
            (false, Some(start)) => {
                recorded += at - start;
                since = None;
            }
            (true, None) => since = Some(at),
            _ => (),
        }
    }
    if let Some(start) = since {
        recorded += total - start;
    }
    recorded as f64 / 1e9
}

/// Both streams cover `expected_s` seconds from 0, within a frame (and an Opus frame).
fn assert_av_duration(path: &Path, expected_s: f64) {
    let spans = packet_spans(path);
    let video = spans["video"];
    let audio = spans["audio"];
    let frame = FRAME_NS / 1e9;
    assert!(video.0.abs() < 1e-3, "video starts at {}", video.0);
    assert!(audio.0.abs() < 0.03, "audio starts at {}", audio.0);
    assert!(
        (video.1 - expected_s).abs() <= frame + 1e-3,
        "video ends at {} not {expected_s}",
        video.1
    );
    assert!(
        (audio.1 - expected_s).abs() <= frame + OPUS_FRAME_S + 1e-3,
        "audio ends at {} not {expected_s}",
        audio.1
    );
    assert!(
        (audio.1 - video.1).abs() <= frame + OPUS_FRAME_S,
        "A/V out of sync: audio {} video {}",
        audio.1,
        video.1
    );
}

/// The manifest agrees with the file: hash, size, recorded duration, stream ends.
fn assert_manifest_matches(
    manifest: &serde_json::Value,
    file: &Path,
    recorded_s: f64,
    timeline_s: f64,
) {
    assert_eq!(manifest["complete"], true);
    assert_eq!(manifest["output"]["sha256"], sha256_of(file));
    assert_eq!(
        manifest["output"]["bytes"],
        std::fs::metadata(file).unwrap().len()
    );
    let said = manifest["recorded_duration_ns"].as_u64().unwrap() as f64 / 1e9;
    // Audio may run an Opus frame past the last video frame.
    assert!(
        (said - recorded_s).abs() < OPUS_FRAME_S,
        "manifest says {said} s recorded, not {recorded_s}"
    );
    for stream in manifest["streams"].as_array().unwrap() {
        let end = stream["end_recording_time_ns"].as_u64().unwrap() as f64 / 1e9;
        assert!(
            (end - timeline_s).abs() <= FRAME_NS / 1e9 + 1e-3,
            "{stream}"
        );
    }
}

/// A recording of `seconds` of the A/V test sources through `recordmux <properties>` into MP4
/// with a manifest, pausing/resuming as `toggles` say.
struct Recorded {
    dir: PathBuf,
    file: PathBuf,
    manifest: serde_json::Value,
    run: Run,
    /// Seconds recorded according to the switches the run made.
    recorded_s: f64,
}

fn record_av(name: &str, properties: &str, seconds: u32, toggles: &[(u64, bool)]) -> Recorded {
    let dir = scratch(name);
    let (file, json) = (dir.join("call.mp4"), dir.join("call.json"));
    let run = run(
        &format!(
            "recordmux name=rec {properties} manifest-location={} ! filesink location={} {}",
            json.display(),
            file.display(),
            av_sources(seconds)
        ),
        toggles,
        |_| (),
    );
    let initially = !properties.contains("recording=false");
    let recorded_s = recorded_seconds(initially, &run.switches, seconds as f64);
    Recorded {
        manifest: manifest(&json),
        dir,
        file,
        run,
        recorded_s,
    }
}

impl Recorded {
    fn remove(self) {
        std::fs::remove_dir_all(self.dir).unwrap();
    }
}

#[test]
fn cut_mode_one_pause() {
    let recording = record_av(
        "cut1",
        "call-id=c-1 agent-id=agent-7 direction=inbound queue=billing \
         extra-tags=\"tags,campaign=spring\"",
        10,
        &[(3000, false), (5000, true)],
    );
    let (file, manifest, run, recorded) = (
        &recording.file,
        &recording.manifest,
        &recording.run,
        recording.recorded_s,
    );
    assert!((recorded - 8.0).abs() < 0.04);
    assert_av_duration(file, recorded);
    assert_eq!(decode_all(file), 240);
    assert_manifest_matches(manifest, file, recorded, recorded);
    // Upstream negotiated the branch's own format at once: no conversion, no renegotiation.
    for stream in manifest["streams"].as_array().unwrap() {
        assert_eq!(stream["caps_changes"], 0, "{stream}");
    }
    assert!(
        manifest["streams"][0]["input_caps"]
            .as_str()
            .unwrap()
            .contains("format=(string)I420")
    );
    assert_eq!(manifest["call"]["call_id"], "c-1");
    assert_eq!(manifest["call"]["queue"], "billing");
    assert_eq!(manifest["call"]["tags"]["campaign"], "spring");
    let events = manifest["events"].as_array().unwrap();
    assert_eq!(events.len(), 2);
    assert_eq!(events[0]["action"], "pause");
    assert_eq!(events[0]["running_time_ns"], run.switches[0].0);
    assert_eq!(events[0]["reason"], "scripted at 3000 ms");
    assert_eq!(events[1]["action"], "resume");
    assert_eq!(events[1]["running_time_ns"], run.switches[1].0);
    assert_eq!(events[1]["recording_time_ns"], run.switches[0].0);
    assert_eq!(
        manifest["paused_spans"][0]["duration_ns"],
        run.switches[1].0 - run.switches[0].0
    );
    // Bus messages for each switch.
    let names: Vec<&str> = run.messages.iter().map(|m| m.name().as_str()).collect();
    assert_eq!(
        names,
        [
            "recordmux-paused",
            "recordmux-resumed",
            "recordmux-manifest"
        ]
    );
    // Container tags carry the call metadata.
    let tags = Command::new("ffprobe")
        .args(["-v", "error", "-show_entries", "format_tags", "-of", "json"])
        .arg(file)
        .output()
        .unwrap();
    let tags = String::from_utf8_lossy(&tags.stdout);
    assert!(
        tags.contains("call c-1") && tags.contains("agent-7"),
        "{tags}"
    );
    // The tone continues right after the cut: no silence inserted.
    assert!(audio_rms(file, 2.9, 3.1) > 0.2);
    recording.remove();
}

#[test]
fn mask_mode_blanks_but_keeps_the_timeline() {
    let recording = record_av("mask", "pause-mode=mask", 8, &[(3000, false), (5000, true)]);
    let (file, manifest) = (&recording.file, &recording.manifest);
    assert_av_duration(file, 8.0);
    assert_eq!(decode_all(file), 240);
    assert_manifest_matches(manifest, file, recording.recorded_s, 8.0);
    assert_eq!(
        manifest["events"][1]["recording_time_ns"],
        recording.run.switches[1].0
    );
    assert!(luma_at(file, 4.0) < 20.0, "paused video is black");
    assert!(luma_at(file, 2.0) > 40.0, "recorded video is not");
    assert!(audio_rms(file, 3.2, 4.8) < 0.01, "paused audio is silent");
    assert!(audio_rms(file, 1.0, 2.8) > 0.2, "recorded audio is not");
    assert!(audio_rms(file, 5.2, 7.5) > 0.2, "recorded audio is not");
    recording.remove();
}

fn toggles(count: usize, every_ms: u64) -> Vec<(u64, bool)> {
    (0..count)
        .map(|i| (500 + i as u64 * every_ms, i % 2 == 1))
        .collect()
}

fn toggled_recording(mode: &str, count: usize, every_ms: u64, seconds: u32) {
    let toggles = toggles(count, every_ms);
    let recording = record_av(
        &format!("toggles-{mode}-{count}"),
        &format!(
            "pause-mode={mode} \
             video-encoder=\"x264enc speed-preset=ultrafast tune=zerolatency key-int-max=30\""
        ),
        seconds,
        &toggles,
    );
    assert_eq!(recording.run.switches.len(), count);
    let recorded = recording.recorded_s;
    let timeline = if mode == "cut" {
        recorded
    } else {
        seconds as f64
    };
    assert_av_duration(&recording.file, timeline);
    assert_manifest_matches(&recording.manifest, &recording.file, recorded, timeline);
    assert_eq!(
        recording.manifest["events"].as_array().unwrap().len(),
        count
    );
    decode_all(&recording.file);
    recording.remove();
}

#[test]
fn ten_toggles_cut() {
    toggled_recording("cut", 10, 700, 10);
}

#[test]
fn ten_toggles_mask() {
    toggled_recording("mask", 10, 700, 10);
}

#[test]
fn thousand_toggles_cut() {
    // A switch every 70 ms (about two frames): the worst case for cutting audio.
    toggled_recording("cut", 1000, 70, 72);
}

#[test]
fn thousand_toggles_mask() {
    toggled_recording("mask", 1000, 70, 72);
}

#[test]
fn eos_while_paused() {
    let recording = record_av("eos-paused", "", 5, &[(3000, false)]);
    let recorded = recording.recorded_s;
    assert_av_duration(&recording.file, recorded);
    assert_manifest_matches(&recording.manifest, &recording.file, recorded, recorded);
    let span = &recording.manifest["paused_spans"][0];
    assert_eq!(span["start_running_time_ns"], recording.run.switches[0].0);
    assert!(span["end_running_time_ns"].as_u64().unwrap() >= 4_960_000_000);
    recording.remove();
}

#[test]
fn paused_before_the_first_buffer() {
    let recording = record_av("pre-paused", "recording=false", 5, &[(2000, true)]);
    let (manifest, recorded) = (&recording.manifest, recording.recorded_s);
    assert_av_duration(&recording.file, recorded);
    assert_manifest_matches(manifest, &recording.file, recorded, recorded);
    assert_eq!(manifest["events"][0]["action"], "pause");
    assert_eq!(manifest["events"][0]["running_time_ns"], 0);
    assert_eq!(manifest["events"][1]["action"], "resume");
    assert_eq!(
        manifest["events"][1]["running_time_ns"],
        recording.run.switches[0].0
    );
    recording.remove();
}

fn encoded_passthrough(block_keyframe_requests: bool) -> serde_json::Value {
    let dir = scratch(&format!("passthrough-{block_keyframe_requests}"));
    let (file, json) = (dir.join("call.mp4"), dir.join("call.json"));
    // A 3 s GOP: without a forced keyframe, a resume at 2 s would wait until 3 s.
    let description = format!(
        "recordmux name=rec manifest-location={} ! filesink location={} \
         videotestsrc num-buffers=150 pattern=ball ! video/x-raw,width=320,height=240,framerate=30/1 ! \
         x264enc tune=zerolatency key-int-max=90 ! h264parse ! identity name=vtap ! rec.video_0 \
         audiotestsrc num-buffers=250 samplesperbuffer=960 ! audio/x-raw,rate=48000 ! opusenc ! rec.audio_0",
        json.display(),
        file.display()
    );
    run(&description, &[(1000, false), (2000, true)], |pipeline| {
        if block_keyframe_requests {
            let tap = pipeline.by_name("vtap").unwrap();
            tap.static_pad("src").unwrap().add_probe(
                gst::PadProbeType::EVENT_UPSTREAM,
                |_, info| match info.event().map(|e| e.type_()) {
                    Some(gst::EventType::CustomUpstream) => {
                        info.data = None;
                        gst::PadProbeReturn::Handled
                    }
                    _ => gst::PadProbeReturn::Ok,
                },
            );
        }
    });
    let manifest = manifest(&json);
    assert_eq!(manifest["streams"][0]["handling"], "passthrough");
    assert_eq!(manifest["streams"][1]["handling"], "passthrough");
    let resume_s = manifest["events"][1]["running_time_ns"].as_u64().unwrap() as f64 / 1e9;
    let resumed_at_recording_s =
        manifest["events"][1]["recording_time_ns"].as_u64().unwrap() as f64 / 1e9;
    assert!((resumed_at_recording_s - 1.0).abs() < 1e-3);
    // The first packet after the cut is a keyframe.
    let packets = video_packets(&file);
    let after = packets
        .iter()
        .find(|(pts, _)| (*pts - resumed_at_recording_s).abs() < 1e-3)
        .expect("a packet at the resume point");
    assert!(after.1, "resume on a keyframe: {packets:?}");
    let recorded = 5.0 - (resume_s - 1.0);
    assert_av_duration(&file, recorded);
    assert_manifest_matches(&manifest, &file, recorded, recorded);
    decode_all(&file);
    std::fs::remove_dir_all(dir).unwrap();
    manifest
}

#[test]
fn encoded_resume_forces_a_keyframe() {
    let manifest = encoded_passthrough(false);
    let resume = manifest["events"][1]["running_time_ns"].as_u64().unwrap();
    // The encoder answered the force-key-unit request within a few frames.
    assert!(resume < 2_200_000_000, "resumed at {resume}");
}

#[test]
fn encoded_resume_waits_for_the_next_keyframe() {
    let manifest = encoded_passthrough(true);
    // Nobody honoured the request: the next keyframe of the 3 s GOP.
    assert_eq!(manifest["events"][1]["running_time_ns"], 3_000_000_000u64);
    assert_eq!(
        manifest["events"][1]["requested_running_time_ns"],
        2_000_000_000u64
    );
}

#[test]
fn caps_changes_do_not_break_the_recording() {
    for (container, encoded) in [
        ("mp4", false),
        ("mp4", true),
        ("matroska", true),
        ("matroska", false),
    ] {
        let dir = scratch(&format!("caps-{container}-{encoded}"));
        let file = dir.join("call.rec");
        let encode = if encoded {
            "x264enc tune=zerolatency key-int-max=30 ! "
        } else {
            ""
        };
        // Chromium lowers the resolution mid-call: 640x360 then 320x180.
        run(
            &format!(
                "recordmux name=rec container={container} ! filesink location={} \
                 concat name=c ! identity name=vtap ! rec.video_0 \
                 videotestsrc num-buffers=60 ! video/x-raw,format=I420,width=640,height=360,framerate=30/1 ! {encode}c. \
                 videotestsrc num-buffers=60 pattern=ball ! video/x-raw,format=I420,width=320,height=180,framerate=30/1 ! {encode}c.",
                file.display()
            ),
            &[],
            |_| (),
        );
        assert_eq!(decode_all(&file), 120, "{container} encoded={encoded}");
        let spans = packet_spans(&file);
        assert!((spans["video"].1 - 4.0).abs() < 0.04, "{spans:?}");
        std::fs::remove_dir_all(dir).unwrap();
    }
}

#[test]
fn matroska_and_webm_containers() {
    for (container, extra) in [("matroska", ""), ("webm", "")] {
        let dir = scratch(container);
        let file = dir.join("call.rec");
        run(
            &format!(
                "recordmux name=rec container={container} {extra} ! filesink location={} {}",
                file.display(),
                av_sources(4)
            ),
            &[(1000, false), (2000, true)],
            |_| (),
        );
        let spans = packet_spans(&file);
        assert!(
            (spans["video"].1 - 3.0).abs() < 0.04,
            "{container}: {spans:?}"
        );
        assert!(
            (spans["audio"].1 - 3.0).abs() < 0.06,
            "{container}: {spans:?}"
        );
        assert_eq!(decode_all(&file), 90);
        std::fs::remove_dir_all(dir).unwrap();
    }
}

#[test]
fn killed_recording_decodes_up_to_the_last_fragment() {
    let dir = scratch("sigkill");
    let (file, json) = (dir.join("call.mp4"), dir.join("call.json"));
    let target = std::env::current_exe()
        .unwrap()
        .parent()
        .unwrap()
        .parent()
        .unwrap()
        .to_path_buf();
    assert!(
        target.join("libgstrecordmux.so").exists(),
        "run `cargo build --workspace` first"
    );
    let mut child = Command::new("gst-launch-1.0")
        .args(["-q", "recordmux", "name=rec"])
        .arg(format!("manifest-location={}", json.display()))
        .args(["!", "filesink"])
        .arg(format!("location={}", file.display()))
        .args(
            "videotestsrc is-live=true pattern=ball ! video/x-raw,width=320,height=240,framerate=30/1 ! rec.video_0 \
             audiotestsrc is-live=true ! audio/x-raw,rate=48000 ! rec.audio_0"
                .split_whitespace(),
        )
        .env("GST_PLUGIN_PATH", &target)
        .spawn()
        .unwrap();
    std::thread::sleep(Duration::from_secs(6));
    child.kill().unwrap(); // SIGKILL
    child.wait().unwrap();
    let frames = count_frames(&file);
    assert!(frames >= 60, "only {frames} frames survived");
    let spans = packet_spans(&file);
    assert!(
        (spans["audio"].1 - spans["video"].1).abs() < 1.0,
        "{spans:?}"
    );
    let manifest = manifest(&json);
    assert_eq!(manifest["complete"], false);
    assert!(manifest["started_utc"].is_string());
    // Rewritten while recording: it says how much was recorded until a few seconds before
    // the kill, not what it said at the start.
    let recorded = manifest["recorded_duration_ns"].as_u64().unwrap() as f64 / 1e9;
    assert!(
        recorded >= 3.0,
        "the manifest says only {recorded} s were recorded"
    );
    std::fs::remove_dir_all(dir).unwrap();
}

/// gst-launch-1.0 with the plugins of this build.
fn gst_launch(description: &str) -> test_support::process::ChildGuard {
    let target = test_support::paths::target_dir();
    assert!(
        target.join("libgstrecordmux.so").exists(),
        "run `cargo build --workspace` first"
    );
    test_support::process::ChildGuard::spawn(
        Command::new("gst-launch-1.0")
            .args(["-q", "-e"])
            .args(description.split_whitespace())
            .env("GST_PLUGIN_PATH", &target),
    )
}

#[test]
fn live_h264_passthrough_with_raw_audio_records_and_ends_on_eos() {
    // Found deadlocking in 11 of 12 runs: the encoder's allocation query waited in the muxer,
    // which waited for the audio, which waited for the video.
    for run in 0..4 {
        let dir = scratch(&format!("live-h264-{run}"));
        let file = dir.join("x.mp4");
        let mut child = gst_launch(&format!(
            "videotestsrc is-live=true ! x264enc tune=zerolatency ! queue ! rec.video_0 \
             audiotestsrc is-live=true ! queue ! rec.audio_0 \
             recordmux name=rec ! filesink location={}",
            file.display()
        ));
        std::thread::sleep(Duration::from_secs(3));
        child.signal(libc::SIGINT);
        assert!(
            child.wait_for(Duration::from_secs(20)),
            "run {run}: gst-launch did not end on EOS"
        );
        let spans = packet_spans(&file);
        assert!(spans["video"].1 > 1.5, "run {run}: {spans:?}");
        assert!(spans["audio"].1 > 1.5, "run {run}: {spans:?}");
        decode_all(&file);
        std::fs::remove_dir_all(dir).unwrap();
    }
}

#[test]
fn h264_with_b_frames_keeps_its_timestamps_and_av_sync() {
    for container in ["mp4", "matroska"] {
        let dir = scratch(&format!("bframes-{container}"));
        let (file, json) = (dir.join("call.rec"), dir.join("call.json"));
        run(
            &format!(
                "recordmux name=rec container={container} manifest-location={} ! filesink location={} \
                 videotestsrc num-buffers=150 pattern=ball ! video/x-raw,width=320,height=240,framerate=30/1 ! \
                 x264enc bframes=2 b-adapt=false key-int-max=30 ! identity name=vtap ! rec.video_0 \
                 audiotestsrc num-buffers=250 samplesperbuffer=960 ! audio/x-raw,rate=48000 ! rec.audio_0",
                json.display(),
                file.display()
            ),
            &[(1000, false), (2000, true)],
            |_| (),
        );
        let streams = test_support::probe::stream_times(&file);
        let start = |kind: &str| {
            streams
                .iter()
                .find(|(k, _, _)| k == kind)
                .map(|(_, start, _)| *start)
                .unwrap()
        };
        // Found as a duration of 1431655 s; and shown 66 ms after the audio.
        let spans = packet_spans(&file);
        assert!(spans["video"].1 < 10.0, "{container}: {spans:?}");
        if container == "mp4" {
            let video = streams.iter().find(|(kind, _, _)| kind == "video").unwrap();
            assert!(video.2 < 10.0, "{container}: video lasts {} s", video.2);
        }
        assert!(
            (start("video") - start("audio")).abs() < 0.025,
            "{container}: video starts at {} and audio at {}",
            start("video"),
            start("audio")
        );
        let manifest = manifest(&json);
        let recorded = manifest["recorded_duration_ns"].as_u64().unwrap() as f64 / 1e9;
        assert!((recorded - 4.0).abs() < 0.2, "{recorded}");
        let frames = decode_all(&file);
        assert!(
            (110..=120).contains(&frames),
            "{container}: {frames} frames"
        );
        std::fs::remove_dir_all(dir).unwrap();
    }
}

#[test]
fn audio_stamped_by_a_starved_jitter_buffer_is_recorded_in_order() {
    // After an RTP jitter buffer an audio buffer's DTS is its arrival time. Kept as a decode
    // reordering, it became composition offsets of up to 1.4 s in ten starved WebRTC calls:
    // the audio shown that much later than the video, with holes. The same jitter buffer,
    // starved, stamped packets up to 1.5 s back in time: the file's audio went backwards.
    let dir = scratch("arrival-dts");
    let file = dir.join("call.mp4");
    let seen = Arc::new(Mutex::new((0usize, 0u64)));
    let tapped = seen.clone();
    run(
        &format!(
            "recordmux name=rec ! filesink location={} \
             videotestsrc num-buffers=90 ! video/x-raw,width=320,height=240,framerate=30/1 ! rec.video_0 \
             audiotestsrc num-buffers=150 samplesperbuffer=960 ! audio/x-raw,rate=48000 ! opusenc ! \
             identity name=atap ! rec.audio_0",
            file.display()
        ),
        &[],
        |bin| {
            // Arrival: from 0.5 s after the PTS to 1.4 s before it, never going back.
            let jitter_ms = [0i64, 300, 1400, -500, 40, 900];
            let tap = bin.by_name("atap").unwrap();
            tap.static_pad("src")
                .unwrap()
                .add_probe(gst::PadProbeType::BUFFER, move |_, info| {
                    if let Some(gst::PadProbeData::Buffer(buffer)) = &mut info.data
                        && let Some(pts) = buffer.pts()
                    {
                        let mut seen = tapped.lock().unwrap();
                        let (count, last) = &mut *seen;
                        let jitter = jitter_ms[*count % jitter_ms.len()] * 1_000_000;
                        *count += 1;
                        let arrival = (pts.nseconds() as i64 - jitter).max(*last as i64) as u64;
                        *last = arrival;
                        let buffer = buffer.make_mut();
                        buffer.set_dts(gst::ClockTime::from_nseconds(arrival));
                        // From packet 80 on, stamped 100 ms back (a resync).
                        if *count > 80 {
                            buffer.set_pts(pts - gst::ClockTime::from_mseconds(100));
                        }
                    }
                    gst::PadProbeReturn::Ok
                });
        },
    );
    let packets = test_support::probe::packet_times(&file, "a");
    assert_eq!(
        packets.len(),
        seen.lock().unwrap().0,
        "every packet is recorded"
    );
    for (pts, dts) in &packets {
        assert!(
            (pts - dts).abs() < 0.001,
            "audio packet at pts {pts} has dts {dts}"
        );
    }
    // In order and without holes. (ffmpeg shows the first packet without Opus' pre-skip.)
    for pair in packets[1..].windows(2) {
        let step = pair[1].0 - pair[0].0;
        assert!(
            (step - OPUS_FRAME_S).abs() < 0.001,
            "audio packets at {:?} then {:?}",
            pair[0],
            pair[1]
        );
    }
    let streams = test_support::probe::stream_times(&file);
    let audio = streams.iter().find(|(kind, _, _)| kind == "audio").unwrap();
    assert!(audio.1.abs() < 0.025, "{streams:?}");
    std::fs::remove_dir_all(dir).unwrap();
}

#[test]
fn audio_starting_after_the_video_stays_in_sync_in_mp4() {
    // mp4mux 1.22 starts every fragmented track at 0; recordmux puts the audio back at 0.5 s.
    let dir = scratch("late-audio");
    let file = dir.join("call.mp4");
    run(
        &format!(
            "recordmux name=rec ! filesink location={} \
             videotestsrc num-buffers=90 ! video/x-raw,width=320,height=240,framerate=30/1 ! rec.video_0 \
             audiotestsrc num-buffers=100 samplesperbuffer=960 timestamp-offset=500000000 ! audio/x-raw,rate=48000 ! rec.audio_0",
            file.display()
        ),
        &[],
        |_| (),
    );
    let streams = test_support::probe::stream_times(&file);
    let audio = streams.iter().find(|(kind, _, _)| kind == "audio").unwrap();
    assert!((audio.1 - 0.5).abs() < 0.025, "{streams:?}");
    assert!(luma_at(&file, 0.1) > 20.0);
    std::fs::remove_dir_all(dir).unwrap();
}

/// The pipeline stops (an error elsewhere, or an application stopping without EOS) while
/// the sink took every byte so far: the manifest's last word says the recording did not
/// finish (found: a full disk failing encryptedfilesink's checkpoint first stopped the
/// pipeline before any buffer was refused, and the manifest kept its periodic state).
#[test]
fn a_pipeline_stopped_without_eos_leaves_a_manifest_that_says_so() {
    init();
    let dir = scratch("stopped-without-eos");
    let json = dir.join("call.json");
    let pipeline = gst::parse::launch(&format!(
        "recordmux name=rec manifest-location={} ! fakesink name=sink signal-handoffs=true \
         videotestsrc is-live=true ! video/x-raw,width=320,height=240,framerate=30/1 ! rec.video_0 \
         audiotestsrc is-live=true samplesperbuffer=960 ! audio/x-raw,rate=48000,channels=1 ! rec.audio_0",
        json.display(),
    ))
    .unwrap()
    .downcast::<gst::Pipeline>()
    .unwrap();
    let (bytes_out, got_bytes) = std::sync::mpsc::sync_channel(1);
    pipeline
        .by_name("sink")
        .unwrap()
        .connect("handoff", false, move |_| {
            let _ = bytes_out.try_send(());
            None
        });
    pipeline.set_state(gst::State::Playing).unwrap();
    got_bytes.recv_timeout(Duration::from_secs(30)).unwrap();
    std::thread::sleep(Duration::from_millis(500));
    pipeline.set_state(gst::State::Null).unwrap();
    let stopped = manifest(&json);
    assert_eq!(stopped["complete"], false, "{stopped}");
    let error = stopped["output"]["error"].as_str().unwrap_or_default();
    assert!(error.contains("did not finish"), "{stopped}");
    // A new run of the same element starts a fresh manifest: the error was that run's.
    std::fs::remove_file(&json).unwrap();
    while got_bytes.try_recv().is_ok() {}
    pipeline.set_state(gst::State::Playing).unwrap();
    got_bytes.recv_timeout(Duration::from_secs(30)).unwrap();
    pipeline.send_event(gst::event::Eos::new());
    let message = end_message(&pipeline, 60);
    assert!(matches!(message.view(), gst::MessageView::Eos(_)));
    pipeline.set_state(gst::State::Null).unwrap();
    let manifest = manifest(&json);
    assert_eq!(manifest["complete"], true, "{manifest}");
    assert!(manifest["output"]["error"].is_null(), "{manifest}");
    std::fs::remove_dir_all(dir).unwrap();
}

#[test]
fn a_sink_that_refuses_data_makes_the_manifest_say_so() {
    // As encryptedfilesink on a full disk: the manifest must not say complete with a hash
    // of bytes that never reached the file.
    init();
    let dir = scratch("sink-refuses");
    let json = dir.join("call.json");
    let pipeline = gst::parse::launch(&format!(
        "recordmux name=rec manifest-location={} ! identity error-after=3 ! fakesink {}",
        json.display(),
        av_sources(3)
    ))
    .unwrap();
    pipeline.set_state(gst::State::Playing).unwrap();
    let message = end_message(&pipeline, 60);
    assert!(matches!(message.view(), gst::MessageView::Error(_)));
    pipeline.set_state(gst::State::Null).unwrap();
    let manifest = manifest(&json);
    assert_eq!(manifest["complete"], false, "{manifest}");
    assert!(manifest["output"]["sha256"].is_null());
    let error = manifest["output"]["error"].as_str().unwrap();
    assert!(error.contains("refused"), "{error}");
    std::fs::remove_dir_all(dir).unwrap();
}

#[test]
fn a_stalled_camera_does_not_stop_the_audio_recording() {
    // A live call whose video stops without EOS (the customer's camera is muted): the audio
    // goes on being recorded instead of waiting for the video forever.
    init();
    let dir = scratch("stalled-video");
    let (file, json) = (dir.join("call.mkv"), dir.join("call.json"));
    let pipeline = gst::parse::launch(&format!(
        "recordmux name=rec container=matroska manifest-location={} ! filesink location={} \
         videotestsrc is-live=true ! video/x-raw,width=160,height=120,framerate=30/1 ! valve name=camera drop-mode=forward-sticky-events ! rec.video_0 \
         audiotestsrc is-live=true samplesperbuffer=480 ! audio/x-raw,rate=48000 ! queue max-size-time=5000000000 ! rec.audio_0",
        json.display(),
        file.display()
    ))
    .unwrap()
    .downcast::<gst::Pipeline>()
    .unwrap();
    pipeline.set_state(gst::State::Playing).unwrap();
    std::thread::sleep(Duration::from_secs(1));
    pipeline
        .by_name("camera")
        .unwrap()
        .set_property("drop", true);
    std::thread::sleep(Duration::from_secs(4));
    pipeline.send_event(gst::event::Eos::new());
    let message = end_message(&pipeline, 20);
    assert!(
        matches!(message.view(), gst::MessageView::Eos(_)),
        "{message:?}"
    );
    pipeline.set_state(gst::State::Null).unwrap();
    let spans = packet_spans(&file);
    assert!(spans["video"].1 < 1.5, "{spans:?}");
    assert!(
        spans["audio"].1 > 4.0,
        "audio kept being recorded: {spans:?}"
    );
    assert_eq!(manifest(&json)["complete"], true);
    std::fs::remove_dir_all(dir).unwrap();
}

#[test]
fn formats_the_container_cannot_hold_are_transcoded() {
    // VP8 (WebRTC) and G.711 µ-law (SIP) into MP4: decoded and encoded to H.264 + Opus.
    let dir = scratch("transcode");
    let (file, json) = (dir.join("call.mp4"), dir.join("call.json"));
    run(
        &format!(
            "recordmux name=rec manifest-location={} ! filesink location={} \
             videotestsrc num-buffers=90 ! video/x-raw,width=320,height=240,framerate=30/1 ! vp8enc deadline=1 ! \
             identity name=vtap ! rec.video_0 \
             audiotestsrc num-buffers=150 samplesperbuffer=160 ! audio/x-raw,rate=8000,channels=1 ! mulawenc ! rec.audio_0",
            json.display(),
            file.display()
        ),
        &[(1000, false), (2000, true)],
        |_| (),
    );
    let manifest = manifest(&json);
    for stream in manifest["streams"].as_array().unwrap() {
        assert_eq!(stream["handling"], "transcode", "{stream}");
    }
    assert_eq!(manifest["streams"][0]["recorded_codec"], "video/x-h264");
    assert_eq!(manifest["streams"][1]["recorded_codec"], "audio/x-opus");
    let recorded = manifest["recorded_duration_ns"].as_u64().unwrap() as f64 / 1e9;
    assert!((recorded - 2.0).abs() < 0.05, "{recorded}");
    assert_av_duration(&file, recorded);
    decode_all(&file);
    std::fs::remove_dir_all(dir).unwrap();
}

#[test]
fn encoders_are_configurable() {
    let dir = scratch("aac");
    let file = dir.join("call.mp4");
    run(
        &format!(
            "recordmux name=rec audio-encoder=\"avenc_aac bitrate=96000\" \
             video-encoder=\"x264enc speed-preset=ultrafast key-int-max=15\" ! filesink location={} \
             videotestsrc num-buffers=90 ! video/x-raw,width=320,height=240,framerate=30/1 ! identity name=vtap ! rec.video_0 \
             audiotestsrc num-buffers=130 ! audio/x-raw,rate=44100,channels=2 ! rec.audio_0",
            file.display(),
        ),
        &[(1000, false), (1500, true)],
        |_| (),
    );
    let output = Command::new("ffprobe")
        .args([
            "-v",
            "error",
            "-show_entries",
            "stream=codec_name",
            "-of",
            "csv=p=0",
        ])
        .arg(&file)
        .output()
        .unwrap();
    assert_eq!(String::from_utf8_lossy(&output.stdout), "h264\naac\n");
    decode_all(&file);
    std::fs::remove_dir_all(dir).unwrap();
}

/// Runs `description` and returns the error message it must end with.
fn run_expecting_error(description: &str) -> String {
    init();
    let pipeline = gst::parse::launch(description).unwrap();
    let _ = pipeline.set_state(gst::State::Playing);
    let message = end_message(&pipeline, 60);
    pipeline.set_state(gst::State::Null).unwrap();
    match message.view() {
        gst::MessageView::Error(err) => err.error().to_string(),
        _ => panic!("expected an error, got {message:?}"),
    }
}

#[test]
fn bad_settings_give_clear_errors() {
    let error = run_expecting_error(&format!(
        "recordmux name=rec video-encoder=\"no-such-encoder\" ! fakesink {}",
        av_sources(1)
    ));
    assert!(
        error.contains("cannot build video encoder") && error.contains("no-such-encoder"),
        "{error}"
    );
    let error = run_expecting_error(&format!(
        "recordmux name=rec video-encoder=\"x264enc ! fakesink\" ! fakesink {}",
        av_sources(1)
    ));
    assert!(error.contains("the encoder has no output pad"), "{error}");
    let error = run_expecting_error(&format!(
        "recordmux name=rec manifest-location=/nonexistent-dir/call.json ! fakesink {}",
        av_sources(1)
    ));
    assert!(
        error.contains("cannot write manifest '/nonexistent-dir/call.json'"),
        "{error}"
    );
}

/// The Matroska files of `dir` whose names start with `prefix`, in name order, demuxed.
fn demuxed_parts(dir: &Path, prefix: &str) -> Vec<(PathBuf, test_support::demux::Streams)> {
    let mut files: Vec<PathBuf> = std::fs::read_dir(dir)
        .unwrap()
        .map(|entry| entry.unwrap().path())
        .filter(|path| {
            let name = path.file_name().unwrap().to_string_lossy().into_owned();
            name.starts_with(prefix) && name.ends_with(".mkv")
        })
        .collect();
    files.sort();
    files
        .into_iter()
        .map(|path| {
            let streams = test_support::demux::matroska(&std::fs::read(&path).unwrap());
            (path, streams)
        })
        .collect()
}

#[test]
fn rotating_segments_add_up_to_the_unsplit_recording() {
    // Raw media kept raw (identity "encoders") in Matroska: every frame and sample can be
    // compared. A pause from 1.6 s to 2.4 s spans the boundary at 2 s.
    let dir = scratch("rotation-sum");
    let sources = "videotestsrc num-buffers=100 pattern=ball ! \
         video/x-raw,format=I420,width=64,height=48,framerate=25/1 ! identity name=vtap ! rec.video_0 \
         audiotestsrc num-buffers=100 samplesperbuffer=320 wave=saw freq=123 ! \
         audio/x-raw,format=S16LE,rate=8000,channels=1 ! rec.audio_0";
    let common = "container=matroska video-encoder=identity audio-encoder=identity call-id=rot-1";
    let toggles = [(1600, false), (2400, true)];
    run(
        &format!(
            "recordmux name=rec {common} manifest-location={dir}/whole.json ! filesink location={dir}/whole.mkv {sources}",
            dir = dir.display()
        ),
        &toggles,
        |_| (),
    );
    run(
        &format!(
            "recordmux name=rec {common} max-segment-duration=1000000000 manifest-location={dir}/part-%02d.json \
             ! multifilesink next-file=key-unit-event location={dir}/part-%02d.mkv {sources}",
            dir = dir.display()
        ),
        &toggles,
        |_| (),
    );
    let whole = &demuxed_parts(&dir, "whole")[0].1;
    let parts = demuxed_parts(&dir, "part-");
    assert_eq!(parts.len(), 4, "a segment a second of call time");
    let frames: Vec<&[u8]> = parts
        .iter()
        .flat_map(|(_, streams)| streams.video.iter().map(|s| s.data.as_slice()))
        .collect();
    let whole_frames: Vec<&[u8]> = whole.video.iter().map(|s| s.data.as_slice()).collect();
    assert_eq!(frames.len(), whole_frames.len(), "frames over all segments");
    assert!(frames == whole_frames, "the same frames in the same order");
    let samples: Vec<u8> = parts
        .iter()
        .flat_map(|(_, streams)| streams.audio.iter().flat_map(|s| s.data.clone()))
        .collect();
    let whole_samples: Vec<u8> = whole.audio.iter().flat_map(|s| s.data.clone()).collect();
    assert_eq!(
        samples.len(),
        whole_samples.len(),
        "samples over all segments"
    );
    assert!(
        samples == whole_samples,
        "the same samples in the same order"
    );
    // Each file starts at 0.
    for (path, streams) in &parts {
        assert_eq!(streams.video[0].pts, 0, "{}", path.display());
    }
    // The manifests chain, and the pause across the boundary is in both.
    let mut previous_sha: Option<String> = None;
    for (index, (path, _)) in parts.iter().enumerate() {
        let manifest = manifest(&dir.join(format!("part-{index:02}.json")));
        assert_eq!(manifest["complete"], true);
        assert_eq!(manifest["call"]["call_id"], "rot-1");
        assert_eq!(manifest["segment"]["index"], index);
        assert_eq!(manifest["output"]["sha256"], sha256_of(path));
        assert_eq!(
            manifest["segment"]["previous_output_sha256"].as_str(),
            previous_sha.as_deref()
        );
        previous_sha = manifest["output"]["sha256"].as_str().map(str::to_string);
        let spans = manifest["paused_spans"].as_array().unwrap();
        let expected: &[(u64, u64)] = match index {
            1 => &[(1_600_000_000, 2_000_000_000)],
            2 => &[(2_000_000_000, 2_400_000_000)],
            _ => &[],
        };
        let actual: Vec<(u64, u64)> = spans
            .iter()
            .map(|span| {
                (
                    span["start_running_time_ns"].as_u64().unwrap(),
                    span["end_running_time_ns"].as_u64().unwrap(),
                )
            })
            .collect();
        assert_eq!(actual, expected, "segment {index}: {manifest}");
    }
    std::fs::remove_dir_all(dir).unwrap();
}

#[test]
fn absurd_segment_limits_are_clamped_with_a_warning() {
    init();
    let rec = gst::ElementFactory::make("recordmux").build().unwrap();
    rec.set_property("max-segment-duration", 5u64);
    assert_eq!(rec.property::<u64>("max-segment-duration"), 1_000_000_000);
    rec.set_property("max-segment-duration", u64::MAX);
    assert_eq!(
        rec.property::<u64>("max-segment-duration"),
        24 * 3600 * 1_000_000_000
    );
    rec.set_property("max-segment-bytes", 1u64);
    assert_eq!(rec.property::<u64>("max-segment-bytes"), 64 * 1024);
    rec.set_property("max-segment-bytes", 0u64);
    assert_eq!(rec.property::<u64>("max-segment-bytes"), 0, "0: no limit");
}

#[test]
fn one_stream_paused_alone_is_masked_while_the_others_record() {
    // The customer's audio (audio_1) paused from 1 s to 2 s, by signal; the agent's audio
    // (audio_0) and the video go on; then the agent's paused from 3 s to 3.5 s through its
    // pad's `recording` property.
    init();
    let dir = scratch("stream-pause");
    let (file, json) = (dir.join("call.mkv"), dir.join("call.json"));
    let pipeline = gst::parse::launch(&format!(
        "recordmux name=rec container=matroska manifest-location={} ! filesink location={} \
         videotestsrc num-buffers=120 ! video/x-raw,width=160,height=120,framerate=30/1 ! identity name=vtap ! rec.video_0 \
         audiotestsrc num-buffers=200 samplesperbuffer=960 freq=440 volume=0.5 ! audio/x-raw,rate=48000,channels=1 ! rec.audio_0 \
         audiotestsrc num-buffers=200 samplesperbuffer=960 freq=880 volume=0.5 ! audio/x-raw,rate=48000,channels=1 ! rec.audio_1",
        json.display(),
        file.display()
    ))
    .unwrap()
    .downcast::<gst::Pipeline>()
    .unwrap();
    let rec = pipeline.by_name("rec").unwrap();
    let tap = pipeline.by_name("vtap").unwrap();
    {
        let rec = rec.clone();
        let done = Arc::new(Mutex::new(Vec::<u64>::new()));
        tap.static_pad("src")
            .unwrap()
            .add_probe(gst::PadProbeType::BUFFER, move |_, info| {
                let pts = info.buffer().unwrap().pts().unwrap().mseconds();
                let mut done = done.lock().unwrap();
                for at in [1000u64, 2000, 3000, 3500] {
                    if pts >= at && !done.contains(&at) {
                        done.push(at);
                        match at {
                            1000 => assert!(rec.emit_by_name::<bool>(
                                "pause-stream",
                                &[&"audio_1", &"customer reads card"]
                            )),
                            2000 => assert!(rec.emit_by_name::<bool>(
                                "resume-stream",
                                &[&"audio_1", &"card done"]
                            )),
                            3000 => rec
                                .static_pad("audio_0")
                                .unwrap()
                                .set_property("recording", false),
                            _ => rec
                                .static_pad("audio_0")
                                .unwrap()
                                .set_property("recording", true),
                        }
                    }
                }
                gst::PadProbeReturn::Ok
            });
    }
    pipeline.set_state(gst::State::Playing).unwrap();
    let message = end_message(&pipeline, 60);
    assert!(
        matches!(message.view(), gst::MessageView::Eos(_)),
        "{message:?}"
    );
    assert!(!rec.emit_by_name::<bool>("pause-stream", &[&"audio_9", &""]));
    pipeline.set_state(gst::State::Null).unwrap();
    let agent = test_support::probe::audio_samples(&file, 0);
    let customer = test_support::probe::audio_samples(&file, 1);
    let rms = test_support::probe::rms;
    assert!(rms(&customer, 1.05, 1.95) < 0.001, "customer masked");
    assert!(rms(&agent, 1.05, 1.95) > 0.2, "agent recorded meanwhile");
    assert!(rms(&customer, 0.1, 0.95) > 0.2 && rms(&customer, 2.05, 2.9) > 0.2);
    assert!(rms(&agent, 3.05, 3.45) < 0.001, "agent masked");
    assert!(
        rms(&customer, 3.05, 3.45) > 0.2,
        "customer recorded meanwhile"
    );
    // Masking does not cut: every stream keeps the whole timeline.
    let spans = packet_spans(&file);
    assert!((spans["video"].1 - 4.0).abs() < 0.05, "{spans:?}");
    let manifest = manifest(&json);
    assert_eq!(manifest["paused_duration_ns"], 0);
    let streams = manifest["streams"].as_array().unwrap();
    let customer_spans = streams[2]["masked_spans"].as_array().unwrap();
    assert_eq!(customer_spans.len(), 1, "{manifest}");
    assert_eq!(customer_spans[0]["reason"], "customer reads card");
    let start = customer_spans[0]["start_running_time_ns"].as_u64().unwrap();
    let end = customer_spans[0]["end_running_time_ns"].as_u64().unwrap();
    assert!((start as i64 - 1_000_000_000).abs() < 25_000_000, "{start}");
    assert!((end as i64 - 2_000_000_000).abs() < 25_000_000, "{end}");
    assert_eq!(streams[1]["masked_spans"][0]["reason"], "pad property");
    std::fs::remove_dir_all(dir).unwrap();
}

/// (width, height) of every decoded video frame.
fn frame_sizes(path: &Path) -> Vec<(u32, u32)> {
    test_support::probe::ffprobe_csv(path, "v", "frame=width,height")
        .iter()
        .filter_map(|line| {
            let mut fields = line.split(',');
            Some((fields.next()?.parse().ok()?, fields.next()?.parse().ok()?))
        })
        .collect()
}

#[test]
fn a_quality_preset_keeps_one_size_through_a_resolution_ramp() {
    // A WebRTC call that starts at 320x180 while the browser's bandwidth estimate ramps up,
    // then reaches the camera's 1280x720: with video-preset=hd the whole recording is 720p.
    for encoded in [false, true] {
        let dir = scratch(&format!("preset-{encoded}"));
        let file = dir.join("call.mp4");
        let encode = if encoded {
            "x264enc tune=zerolatency key-int-max=30 speed-preset=ultrafast ! "
        } else {
            ""
        };
        run(
            &format!(
                "recordmux name=rec video-preset=hd ! filesink location={} \
                 concat name=c ! identity name=vtap ! rec.video_0 \
                 videotestsrc num-buffers=60 ! video/x-raw,format=I420,width=320,height=180,framerate=30/1 ! {encode}c. \
                 videotestsrc num-buffers=60 pattern=ball ! video/x-raw,format=I420,width=1280,height=720,framerate=30/1 ! {encode}c.",
                file.display()
            ),
            &[],
            |_| (),
        );
        let sizes = frame_sizes(&file);
        assert_eq!(sizes.len(), 120, "encoded={encoded}");
        assert!(
            sizes.iter().all(|&size| size == (1280, 720)),
            "encoded={encoded}: {:?}",
            sizes.iter().collect::<std::collections::BTreeSet<_>>()
        );
        decode_all(&file);
        // Letterboxed, not stretched: the 16:9 input fills the frame.
        assert!(luma_at(&file, 0.5) > 40.0);
        std::fs::remove_dir_all(dir).unwrap();
    }
}

/// 8 kHz mono S16 audio as a SIP call carries it: a 440 Hz "voice" with DTMF digits 5 at
/// 1.0-1.2 s and 9 at 2.0-2.3 s, written as a WAV file.
fn dtmf_call(path: &Path) {
    let rate = 8000.0;
    let mut samples: Vec<i16> = Vec::new();
    let mut add = |seconds: f64, tone: Option<(f64, f64)>| {
        for _ in 0..(seconds * rate) as usize {
            let t = samples.len() as f64 / rate;
            let v = match tone {
                Some((a, b)) => {
                    0.3 * ((2.0 * std::f64::consts::PI * a * t).sin()
                        + (2.0 * std::f64::consts::PI * b * t).sin())
                        / 2.0
                }
                None => 0.25 * (2.0 * std::f64::consts::PI * 440.0 * t).sin(),
            };
            samples.push((v * 32767.0) as i16);
        }
    };
    add(1.0, None);
    add(0.2, Some((770.0, 1336.0)));
    add(0.8, None);
    add(0.3, Some((852.0, 1477.0)));
    add(1.2, None);
    let data: Vec<u8> = samples.iter().flat_map(|s| s.to_le_bytes()).collect();
    let mut wav = Vec::new();
    wav.extend_from_slice(b"RIFF");
    wav.extend_from_slice(&(36 + data.len() as u32).to_le_bytes());
    wav.extend_from_slice(b"WAVEfmt ");
    wav.extend_from_slice(&16u32.to_le_bytes());
    wav.extend_from_slice(&[1, 0, 1, 0]);
    wav.extend_from_slice(&8000u32.to_le_bytes());
    wav.extend_from_slice(&16000u32.to_le_bytes());
    wav.extend_from_slice(&[2, 0, 16, 0]);
    wav.extend_from_slice(b"data");
    wav.extend_from_slice(&(data.len() as u32).to_le_bytes());
    wav.extend_from_slice(&data);
    std::fs::write(path, wav).unwrap();
}

/// Power (relative to a full-scale sine, ~0.25) of `frequency` in 48 kHz `samples`.
fn tone_power(samples: &[f64], frequency: f64) -> f64 {
    let omega = 2.0 * std::f64::consts::PI * frequency / 48000.0;
    let coefficient = 2.0 * omega.cos();
    let (mut s1, mut s2) = (0.0, 0.0);
    for &x in samples {
        let s0 = x + coefficient * s1 - s2;
        s2 = s1;
        s1 = s0;
    }
    (s1 * s1 + s2 * s2 - coefficient * s1 * s2) / (samples.len() * samples.len()) as f64
}

#[test]
fn dtmf_tones_are_masked_and_never_recorded() {
    init();
    let dir = scratch("dtmf");
    let (wav, file, json) = (
        dir.join("call.wav"),
        dir.join("call.mp4"),
        dir.join("call.json"),
    );
    dtmf_call(&wav);
    let pipeline = gst::parse::launch(&format!(
        "filesrc location={} ! wavparse ! recordmux name=rec dtmf-mask=true manifest-location={} \
         ! filesink location={}",
        wav.display(),
        json.display(),
        file.display()
    ))
    .unwrap();
    pipeline.set_state(gst::State::Playing).unwrap();
    let mut digits_posted = 0;
    let mut masked_messages = 0;
    for message in pipeline
        .bus()
        .unwrap()
        .iter_timed(gst::ClockTime::from_seconds(60))
    {
        match message.view() {
            gst::MessageView::Eos(_) => break,
            gst::MessageView::Error(err) => panic!("{}", err.error()),
            gst::MessageView::Element(element) => match element.structure().map(|s| s.name()) {
                Some(name) if name == "dtmf-event" => digits_posted += 1,
                Some(name) if name == "recordmux-dtmf-masked" => masked_messages += 1,
                _ => (),
            },
            _ => (),
        }
    }
    pipeline.set_state(gst::State::Null).unwrap();
    assert_eq!(digits_posted, 0, "the digits never reach the bus");
    assert_eq!(masked_messages, 2, "dtmfdetect heard both digits");
    let manifest = manifest(&json);
    let spans = manifest["streams"][0]["dtmf_masked_spans"]
        .as_array()
        .unwrap();
    let spans: Vec<(f64, f64)> = spans
        .iter()
        .map(|span| {
            (
                span["start_running_time_ns"].as_u64().unwrap() as f64 / 1e9,
                span["end_running_time_ns"].as_u64().unwrap() as f64 / 1e9,
            )
        })
        .collect();
    for (tone_start, tone_end) in [(1.0, 1.2), (2.0, 2.3)] {
        assert!(
            spans
                .iter()
                .any(|(start, end)| *start <= tone_start && *end >= tone_end),
            "tone {tone_start}..{tone_end} not covered: {spans:?}"
        );
    }
    let masked: f64 = spans.iter().map(|(start, end)| end - start).sum();
    assert!(masked < 0.5 + 1.0, "masking is tight: {spans:?}");
    let audio = test_support::probe::audio_samples(&file, 0);
    let window = |from: f64, to: f64| &audio[(from * 48000.0) as usize..(to * 48000.0) as usize];
    // Measured: no tone energy at 697-1633 Hz in the masked spans.
    for (start, end) in &spans {
        let masked = window(start + 0.01, end - 0.01);
        for frequency in [697.0, 770.0, 852.0, 941.0, 1209.0, 1336.0, 1477.0, 1633.0] {
            let power = tone_power(masked, frequency);
            assert!(power < 1e-5, "{frequency} Hz in {start}..{end}: {power}");
        }
    }
    // The voice around the tones is kept.
    assert!(test_support::probe::rms(&audio, 0.2, 0.8) > 0.1);
    assert!(test_support::probe::rms(&audio, 1.5, 1.8) > 0.1);
    // Without the mask, the same measurement finds the tone: it is not vacuous.
    let unmasked = dir.join("unmasked.mp4");
    run(
        &format!(
            "filesrc location={} ! wavparse ! recordmux name=rec ! filesink location={}",
            wav.display(),
            unmasked.display()
        ),
        &[],
        |_| (),
    );
    let audio = test_support::probe::audio_samples(&unmasked, 0);
    let tone = &audio[(1.05 * 48000.0) as usize..(1.15 * 48000.0) as usize];
    assert!(
        tone_power(tone, 770.0) > 1e-3,
        "{}",
        tone_power(tone, 770.0)
    );
    std::fs::remove_dir_all(dir).unwrap();
}

/// A call that ends before any media arrived (a WebRTC call whose ICE never connected): EOS
/// on every pad finishes an empty recording with a complete manifest.
#[test]
fn a_recording_without_media_finishes_at_eos() {
    init();
    let dir = scratch("no-media");
    let output = dir.join("empty.mp4");
    let manifest_path = dir.join("empty.mp4.json");
    let pipeline = gst::parse::launch(&format!(
        "recordmux name=rec manifest-location={} ! filesink location={} async=false",
        manifest_path.display(),
        output.display()
    ))
    .unwrap()
    .downcast::<gst::Pipeline>()
    .unwrap();
    let rec = pipeline.by_name("rec").unwrap();
    let pads = [
        rec.request_pad_simple("video_%u").unwrap(),
        rec.request_pad_simple("audio_%u").unwrap(),
    ];
    pipeline.set_state(gst::State::Playing).unwrap();
    std::thread::sleep(Duration::from_millis(200));
    for pad in &pads {
        assert!(pad.send_event(gst::event::Eos::new()));
    }
    let message = end_message(&pipeline, 10);
    assert_eq!(message.type_(), gst::MessageType::Eos, "{message:?}");
    pipeline.set_state(gst::State::Null).unwrap();
    let manifest = manifest(&manifest_path);
    assert_eq!(manifest["complete"], true, "{manifest}");
    assert_eq!(manifest["recorded_duration_ns"], 0, "{manifest}");
    std::fs::remove_dir_all(dir).unwrap();
}

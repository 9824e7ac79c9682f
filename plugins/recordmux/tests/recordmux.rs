//! `recordmux` end to end: real encoders and muxers, scripted pauses, and the results checked
//! with ffprobe/ffmpeg (durations, sync, keyframes, black frames, silence) and against the
//! manifest.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use gst::prelude::*;

const FRAME_NS: f64 = 1e9 / 30.0;
/// Opus packs 20 ms frames: a cut can round the audio up by that much.
const OPUS_FRAME_S: f64 = 0.020;

fn init() {
    gst::init().unwrap();
    gstrecordmux::plugin_register_static().unwrap();
}

fn scratch(name: &str) -> PathBuf {
    let dir = std::env::temp_dir().join(format!("recordmux-test-{}-{name}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir).unwrap();
    dir
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
            .timed_pop(gst::ClockTime::from_seconds(240))
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

/// Per stream type ("video"/"audio"): (first pts, end of the last packet, packet count) in
/// seconds. Fragmented MP4 packets carry no duration in ffprobe's view: the last packet lasts
/// as long as the one before it.
fn packet_spans(path: &Path) -> BTreeMap<String, (f64, f64, usize)> {
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

/// ffmpeg decoding the video of `path` to per-frame checksums: (frames, ok, errors).
fn decode_video(path: &Path) -> (usize, bool, String) {
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
fn count_frames(path: &Path) -> usize {
    decode_video(path).0
}

/// Decodes every stream; fails on any decoder error. Returns the number of video frames.
fn decode_all(path: &Path) -> usize {
    let (frames, ok, errors) = decode_video(path);
    assert!(ok && errors.trim().is_empty(), "{errors}");
    let audio = Command::new("ffmpeg")
        .args(["-v", "error", "-i"])
        .arg(path)
        .args(["-map", "0:a?", "-f", "null", "-"])
        .output()
        .unwrap();
    let errors = String::from_utf8_lossy(&audio.stderr);
    assert!(
        audio.status.success() && errors.trim().is_empty(),
        "{errors}"
    );
    frames
}

fn manifest(path: &Path) -> serde_json::Value {
    serde_json::from_str(&std::fs::read_to_string(path).unwrap()).unwrap()
}

fn sha256_of(path: &Path) -> String {
    let output = Command::new("sha256sum").arg(path).output().unwrap();
    String::from_utf8_lossy(&output.stdout)
        .split_whitespace()
        .next()
        .unwrap()
        .to_string()
}

/// Mean luma of the frame at `seconds` (decoded and scaled to 32x24 gray).
fn luma_at(path: &Path, seconds: f64) -> f64 {
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

/// RMS (0..1) of the decoded audio between `from` and `to` seconds.
fn audio_rms(path: &Path, from: f64, to: f64) -> f64 {
    let output = Command::new("ffmpeg")
        .args(["-v", "error", "-i"])
        .arg(path)
        .args([
            "-map", "0:a", "-ac", "1", "-ar", "48000", "-f", "s16le", "-",
        ])
        .output()
        .unwrap();
    let samples: Vec<f64> = output
        .stdout
        .chunks_exact(2)
        .map(|pair| i16::from_le_bytes([pair[0], pair[1]]) as f64 / 32768.0)
        .collect();
    let window = &samples[(from * 48000.0) as usize..((to * 48000.0) as usize).min(samples.len())];
    (window.iter().map(|v| v * v).sum::<f64>() / window.len() as f64).sqrt()
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

/// (pts seconds, keyframe) of every video packet.
fn video_packets(path: &Path) -> Vec<(f64, bool)> {
    let output = Command::new("ffprobe")
        .args([
            "-v",
            "error",
            "-select_streams",
            "v",
            "-show_entries",
            "packet=pts_time,flags",
            "-of",
            "csv=p=0",
        ])
        .arg(path)
        .output()
        .unwrap();
    String::from_utf8_lossy(&output.stdout)
        .lines()
        .filter_map(|line| {
            let (pts, flags) = line.split_once(',')?;
            Some((pts.parse().ok()?, flags.starts_with('K')))
        })
        .collect()
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
    let message = pipeline
        .bus()
        .unwrap()
        .timed_pop_filtered(
            gst::ClockTime::from_seconds(60),
            &[gst::MessageType::Eos, gst::MessageType::Error],
        )
        .expect("pipeline ends");
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

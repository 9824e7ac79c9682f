//! Deterministic element tests of `recordmux`, as gst-plugins-rs tests togglerecord and
//! fmp4mux: synthetic raw buffers at exact timestamps pushed into the request pads with
//! `gst_check::Harness`, recorded into Matroska without encoding (identity "encoders"), and
//! the output demuxed to check every retimed timestamp, every cut sample and every black
//! frame. The live path runs on a `TestClock`.

use std::path::PathBuf;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use gst::prelude::*;
use gst_check::Harness;
use test_support::demux::{self, Streams};

const FRAME_NS: u64 = 40_000_000;
const WIDTH: usize = 64;
const HEIGHT: usize = 48;
const RATE: u64 = 8000;
/// Audio buffers of 30 ms: they never line up with the 40 ms frames.
const AUDIO_SAMPLES: u64 = 240;
/// Audio pushed with 40 frames: whole 30 ms buffers up to 1.6 s, i.e. 1.59 s.
const AUDIO_END: u64 = 53 * AUDIO_SAMPLES;
const MS: u64 = 1_000_000;

fn init() {
    gst::init().unwrap();
    let _ = gstrecordmux::plugin_register_static();
}

/// The luma a synthetic frame carries: which frame it was.
fn frame_luma(index: u64) -> u8 {
    40 + (index % 200) as u8
}

/// Sample value of the audio at sample `index`: which sample it was.
fn sample_value(index: u64) -> i16 {
    (index % 30_000) as i16 + 1
}

struct Recorder {
    element: gst::Element,
    video: Harness,
    audio: Harness,
    manifest: PathBuf,
    dir: PathBuf,
    /// Next audio sample to push.
    audio_position: u64,
    messages: Arc<Mutex<Vec<gst::Message>>>,
}

impl Recorder {
    /// recordmux into Matroska with raw media kept raw; `live`: the harnesses say live and
    /// the element runs on a TestClock.
    fn new(name: &str, properties: &[(&str, &str)], live: bool) -> Recorder {
        init();
        let dir = test_support::paths::scratch(&format!("recordmux-element-{name}"));
        let manifest = dir.join("call.json");
        let element = gst::ElementFactory::make("recordmux")
            .property_from_str("container", "matroska")
            .property("video-encoder", "identity")
            .property("audio-encoder", "identity")
            .property("manifest-location", manifest.to_str().unwrap())
            .build()
            .unwrap();
        for (property, value) in properties {
            element.set_property_from_str(property, value);
        }
        let bus = gst::Bus::new();
        let messages = Arc::new(Mutex::new(Vec::new()));
        {
            let messages = messages.clone();
            bus.set_sync_handler(move |_, message| {
                messages.lock().unwrap().push(message.clone());
                gst::BusSyncReply::Drop
            });
        }
        element.set_bus(Some(&bus));
        let mut video = Harness::with_element(&element, Some("video_%u"), Some("src"));
        let mut audio = Harness::with_element(&element, Some("audio_%u"), None);
        for harness in [&video, &audio] {
            harness.srcpad().unwrap().add_probe(
                gst::PadProbeType::QUERY_UPSTREAM,
                move |_, info| {
                    if let Some(query) = info.query_mut()
                        && let gst::QueryViewMut::Latency(latency) = query.view_mut()
                    {
                        latency.set(live, gst::ClockTime::ZERO, gst::ClockTime::NONE);
                        return gst::PadProbeReturn::Handled;
                    }
                    gst::PadProbeReturn::Ok
                },
            );
        }
        if live {
            video.use_testclock();
        }
        video.set_src_caps_str(&format!(
            "video/x-raw,format=I420,width={WIDTH},height={HEIGHT},framerate=25/1"
        ));
        audio.set_src_caps_str(&format!(
            "audio/x-raw,format=S16LE,layout=interleaved,rate={RATE},channels=1"
        ));
        video.play();
        Recorder {
            element,
            video,
            audio,
            manifest,
            dir,
            audio_position: 0,
            messages,
        }
    }

    fn push_frame(&mut self, index: u64) {
        let mut data = vec![128u8; WIDTH * HEIGHT * 3 / 2];
        data[..WIDTH * HEIGHT].fill(frame_luma(index));
        let mut buffer = gst::Buffer::from_mut_slice(data);
        {
            let buffer = buffer.get_mut().unwrap();
            buffer.set_pts(gst::ClockTime::from_nseconds(index * FRAME_NS));
            buffer.set_duration(gst::ClockTime::from_nseconds(FRAME_NS));
        }
        assert!(self.video.push(buffer).is_ok());
    }

    /// Pushes audio up to running time `until` (whole buffers only).
    fn push_audio_until(&mut self, until: u64) {
        while (self.audio_position + AUDIO_SAMPLES) * 1_000_000_000 / RATE <= until {
            let data: Vec<u8> = (self.audio_position..self.audio_position + AUDIO_SAMPLES)
                .flat_map(|index| sample_value(index).to_le_bytes())
                .collect();
            let mut buffer = gst::Buffer::from_mut_slice(data);
            {
                let buffer = buffer.get_mut().unwrap();
                buffer.set_pts(gst::ClockTime::from_nseconds(
                    self.audio_position * 1_000_000_000 / RATE,
                ));
                buffer.set_duration(gst::ClockTime::from_nseconds(
                    AUDIO_SAMPLES * 1_000_000_000 / RATE,
                ));
            }
            assert!(self.audio.push(buffer).is_ok());
            self.audio_position += AUDIO_SAMPLES;
        }
    }

    /// Pushes `frames` video frames with the audio that goes with them, calling `before` for
    /// each frame index first (where a test pauses/resumes).
    fn push_media(&mut self, frames: u64, mut before: impl FnMut(&gst::Element, u64)) {
        for index in 0..frames {
            before(&self.element, index);
            self.push_frame(index);
            self.push_audio_until((index + 1) * FRAME_NS);
        }
    }

    /// Ends both inputs and returns the demuxed recording and the manifest.
    fn finish(mut self) -> (Streams, serde_json::Value, Vec<gst::Message>) {
        assert!(self.video.push_event(gst::event::Eos::new()));
        assert!(self.audio.push_event(gst::event::Eos::new()));
        let mut bytes = Vec::new();
        while let Some(buffer) = self.video.pull_until_eos().expect("output until EOS") {
            bytes.extend_from_slice(&buffer.map_readable().unwrap());
        }
        let manifest = test_support::probe::read_json(&self.manifest);
        let messages = self.messages.lock().unwrap().clone();
        let _ = std::fs::remove_dir_all(&self.dir);
        (demux::matroska(&bytes), manifest, messages)
    }
}

fn pause(element: &gst::Element, reason: &str) {
    element.emit_by_name::<()>("pause", &[&reason]);
}

fn resume(element: &gst::Element, reason: &str) {
    element.emit_by_name::<()>("resume", &[&reason]);
}

fn luma(sample: &demux::Sample) -> u8 {
    sample.data[WIDTH * HEIGHT / 2]
}

fn audio_values(streams: &Streams) -> Vec<i16> {
    streams
        .audio
        .iter()
        .flat_map(|sample| {
            sample
                .data
                .chunks_exact(2)
                .map(|pair| i16::from_le_bytes([pair[0], pair[1]]))
                .collect::<Vec<_>>()
        })
        .collect()
}

/// The expected recording of 40 frames with the span of frames 10..20 cut: frames 0..10
/// and 20..40 back to back, audio samples of 0..400 ms and 800..1600 ms.
fn assert_cut_recording(streams: &Streams) {
    let kept: Vec<u64> = (0..10).chain(20..40).collect();
    assert_eq!(streams.video.len(), kept.len());
    for (position, (sample, frame)) in streams.video.iter().zip(&kept).enumerate() {
        assert_eq!(sample.pts, position as u64 * FRAME_NS, "frame {frame}");
        assert_eq!(luma(sample), frame_luma(*frame), "frame {frame}");
    }
    let expected: Vec<i16> = (0..3200).chain(6400..AUDIO_END).map(sample_value).collect();
    let values = audio_values(streams);
    assert_eq!(values.len(), expected.len(), "samples recorded");
    assert!(values == expected, "the cut is at the exact samples");
    // Audio buffers follow each other without gap or overlap.
    let mut next = 0;
    for sample in &streams.audio {
        assert_eq!(sample.pts, next);
        next += (sample.data.len() as u64 / 2) * 1_000_000_000 / RATE;
    }
}

fn assert_events(manifest: &serde_json::Value, expected: &[(&str, u64)]) {
    let events = manifest["events"].as_array().unwrap();
    let actual: Vec<(&str, u64)> = events
        .iter()
        .map(|event| {
            (
                event["action"].as_str().unwrap(),
                event["running_time_ns"].as_u64().unwrap(),
            )
        })
        .collect();
    assert_eq!(actual, expected, "{manifest}");
}

#[test]
fn cut_mode_retimes_frames_and_cuts_audio_at_the_sample() {
    let mut recorder = Recorder::new("cut", &[], false);
    recorder.push_media(40, |element, index| match index {
        10 => pause(element, "card number"),
        20 => resume(element, "card done"),
        _ => (),
    });
    let (streams, manifest, _) = recorder.finish();
    assert_cut_recording(&streams);
    assert_events(&manifest, &[("pause", 400 * MS), ("resume", 800 * MS)]);
    assert_eq!(manifest["complete"], true);
    assert_eq!(manifest["recorded_duration_ns"], 1200 * MS);
    assert_eq!(manifest["events"][0]["reason"], "card number");
}

#[test]
fn mask_mode_blanks_frames_and_silences_samples_on_the_call_timeline() {
    let mut recorder = Recorder::new("mask", &[("pause-mode", "mask")], false);
    recorder.push_media(40, |element, index| match index {
        10 => pause(element, "card number"),
        20 => resume(element, "card done"),
        _ => (),
    });
    let (streams, manifest, _) = recorder.finish();
    assert_eq!(streams.video.len(), 40);
    for (index, sample) in streams.video.iter().enumerate() {
        let index = index as u64;
        assert_eq!(sample.pts, index * FRAME_NS);
        let expected = if (10..20).contains(&index) {
            16
        } else {
            frame_luma(index)
        };
        assert_eq!(luma(sample), expected, "frame {index}");
        if (10..20).contains(&index) {
            // Chroma is neutral too: a black frame, not a dark picture.
            assert!(sample.data[WIDTH * HEIGHT..].iter().all(|&v| v == 128));
        }
    }
    let values = audio_values(&streams);
    assert_eq!(values.len() as u64, AUDIO_END);
    for (index, value) in values.iter().enumerate() {
        let expected = if (3200..6400).contains(&index) {
            0
        } else {
            sample_value(index as u64)
        };
        assert_eq!(*value, expected, "sample {index}");
    }
    assert_eq!(manifest["recorded_duration_ns"], 1200 * MS);
}

#[test]
fn live_requests_made_while_the_media_lags_are_applied_at_their_running_times() {
    // The agent pauses at 400 ms and resumes at 800 ms of the clock, while the pipeline lags
    // so that no media of that time has reached the recorder yet: both must apply, each at
    // its own running time.
    let mut recorder = Recorder::new("live-lag", &[], true);
    recorder
        .video
        .set_time(gst::ClockTime::from_mseconds(400))
        .unwrap();
    pause(&recorder.element, "card number");
    recorder
        .video
        .set_time(gst::ClockTime::from_mseconds(800))
        .unwrap();
    resume(&recorder.element, "card done");
    recorder
        .video
        .set_time(gst::ClockTime::from_seconds(10))
        .unwrap();
    recorder.push_media(40, |_, _| ());
    let (streams, manifest, _) = recorder.finish();
    assert_cut_recording(&streams);
    assert_events(&manifest, &[("pause", 400 * MS), ("resume", 800 * MS)]);
    assert_eq!(manifest["events"][0]["requested_running_time_ns"], 400 * MS);
}

#[test]
fn live_pause_in_the_middle_of_a_frame_cuts_audio_at_its_exact_time() {
    // Requests at 410 ms and 790 ms: audio switches there; frames are recorded if captured
    // (their timestamp) while recording.
    let mut recorder = Recorder::new("live-mid-frame", &[], true);
    recorder
        .video
        .set_time(gst::ClockTime::from_mseconds(410))
        .unwrap();
    pause(&recorder.element, "card number");
    recorder
        .video
        .set_time(gst::ClockTime::from_mseconds(790))
        .unwrap();
    resume(&recorder.element, "card done");
    recorder
        .video
        .set_time(gst::ClockTime::from_seconds(10))
        .unwrap();
    recorder.push_media(40, |_, _| ());
    let (streams, manifest, _) = recorder.finish();
    assert_events(&manifest, &[("pause", 410 * MS), ("resume", 790 * MS)]);
    // Frame 10 (captured at 400 ms) is recorded; 11..19 (440..760 ms) are not; 20 is.
    let frames: Vec<u8> = streams.video.iter().map(luma).collect();
    let expected: Vec<u8> = (0..=10).chain(20..40).map(frame_luma).collect();
    assert_eq!(frames, expected);
    // Audio: samples of 0..410 ms and 790..1600 ms (8 samples a millisecond).
    let expected: Vec<i16> = (0..3280).chain(6320..AUDIO_END).map(sample_value).collect();
    assert!(audio_values(&streams) == expected);
}

#[test]
fn a_long_reason_is_bounded_with_a_warning() {
    let mut recorder = Recorder::new("long-reason", &[], false);
    let reason = "x".repeat(5_000_000);
    recorder.push_media(10, |element, index| match index {
        3 => pause(element, &reason),
        6 => resume(element, "done"),
        _ => (),
    });
    let (_, manifest, messages) = recorder.finish();
    assert_eq!(manifest["events"][0]["reason"].as_str().unwrap().len(), 256);
    let warned = messages.iter().any(|message| match message.view() {
        gst::MessageView::Warning(warning) => warning.error().to_string().contains("reason cut"),
        _ => false,
    });
    assert!(warned, "a warning says the reason was cut");
}

#[test]
fn a_repeated_request_is_ignored_and_every_other_kept_in_order() {
    let mut recorder = Recorder::new("repeats", &[], false);
    recorder.push_media(40, |element, index| match index {
        10 => {
            pause(element, "first");
            pause(element, "again");
        }
        20 => {
            resume(element, "back");
            resume(element, "back again");
        }
        _ => (),
    });
    let (streams, manifest, _) = recorder.finish();
    assert_cut_recording(&streams);
    assert_events(&manifest, &[("pause", 400 * MS), ("resume", 800 * MS)]);
}

#[test]
fn properties_pads_and_toggles_from_many_threads_do_not_deadlock() {
    init();
    let pipeline = gst::parse::launch(
        "recordmux name=rec container=matroska ! fakesink sync=false \
         videotestsrc is-live=true ! video/x-raw,width=64,height=48,framerate=50/1 ! rec.video_0 \
         audiotestsrc is-live=true samplesperbuffer=160 ! audio/x-raw,rate=8000 ! rec.audio_0",
    )
    .unwrap()
    .downcast::<gst::Pipeline>()
    .unwrap();
    let rec = pipeline.by_name("rec").unwrap();
    pipeline.set_state(gst::State::Playing).unwrap();
    let stop = Arc::new(std::sync::atomic::AtomicBool::new(false));
    let mut workers = Vec::new();
    {
        let (rec, stop) = (rec.clone(), stop.clone());
        workers.push(std::thread::spawn(move || {
            let mut i = 0u32;
            while !stop.load(std::sync::atomic::Ordering::Relaxed) {
                rec.set_property("call-id", format!("call-{i}"));
                rec.set_property_from_str(
                    "container",
                    if i.is_multiple_of(2) {
                        "mp4"
                    } else {
                        "matroska"
                    },
                );
                rec.set_property_from_str("extra-tags", &format!("tags,n={i}"));
                let _ = rec.property::<bool>("recording");
                let _ = rec.property::<Option<String>>("manifest-location");
                i += 1;
            }
        }));
    }
    {
        let (rec, stop) = (rec.clone(), stop.clone());
        workers.push(std::thread::spawn(move || {
            while !stop.load(std::sync::atomic::Ordering::Relaxed) {
                for template in ["video_%u", "audio_%u"] {
                    if let Some(pad) = rec.request_pad_simple(template) {
                        rec.release_request_pad(&pad);
                    }
                }
            }
        }));
    }
    {
        let (rec, stop) = (rec.clone(), stop.clone());
        workers.push(std::thread::spawn(move || {
            let mut recording = true;
            while !stop.load(std::sync::atomic::Ordering::Relaxed) {
                recording = !recording;
                rec.set_property("recording", recording);
                std::thread::sleep(Duration::from_millis(3));
            }
        }));
    }
    std::thread::sleep(Duration::from_secs(3));
    stop.store(true, std::sync::atomic::Ordering::Relaxed);
    for worker in workers {
        worker.join().unwrap();
    }
    pipeline.send_event(gst::event::Eos::new());
    let message = pipeline
        .bus()
        .unwrap()
        .timed_pop_filtered(
            gst::ClockTime::from_seconds(20),
            &[gst::MessageType::Eos, gst::MessageType::Error],
        )
        .expect("the recording ends after the stress, no deadlock");
    assert!(
        matches!(message.view(), gst::MessageView::Eos(_)),
        "{message:?}"
    );
    pipeline.set_state(gst::State::Null).unwrap();
}

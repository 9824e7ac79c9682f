//! Races of segment rotation, forced into their worst order by holding one stream's thread
//! at a chosen point while another runs (no sleeps: each hold waits for the event it needs).

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::mpsc;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use gst::prelude::*;

const HOLD: Duration = Duration::from_secs(10);

fn init() {
    gst::init().unwrap();
    let _ = gstrecordmux::plugin_register_static();
}

fn is_video(pad: &gst::Pad) -> bool {
    pad.current_caps()
        .and_then(|caps| caps.structure(0).map(|s| s.name().starts_with("video/")))
        .unwrap_or(false)
}

/// The CI hang of the long-call pipeline: the video ends before the cut to segment 2 while the
/// audio, which goes on, prepares segment 2. The audio took the list of streams still going
/// (the video among them), then the video's end left the head, found no segment-2 tail to end,
/// and the audio gave the video a segment-2 tail afterwards: segment 2's muxer waited for the
/// video forever and the recording never finished.
#[test]
fn a_stream_ending_while_the_next_segment_is_prepared_does_not_hold_it() {
    init();
    let dir = test_support::paths::scratch("recordmux-segment-race");
    // 1.6 s of video (every frame a keyframe: identity "encoder"), 3 s of audio, 1 s
    // segments: segment 1 starts at 1 s, segment 2 (at 2 s) is the audio's alone. The audio
    // "encoder" buffers (as real encoders do) so that the audio can run past segment 1's
    // muxer, which waits for the video.
    let pipeline = gst::parse::launch(&format!(
        "videotestsrc num-buffers=40 ! video/x-raw,format=I420,width=64,height=48,framerate=25/1 ! rec.video_0 \
         audiotestsrc num-buffers=300 samplesperbuffer=80 ! audio/x-raw,format=S16LE,rate=8000,channels=1 ! rec.audio_0 \
         recordmux name=rec container=matroska video-encoder=identity audio-encoder=\"queue max-size-buffers=0 max-size-bytes=0 max-size-time=0 ! identity\" call-id=race \
           max-segment-duration=1000000000 manifest-location={dir}/part-%02d.json \
         ! multifilesink next-file=key-unit-event location={dir}/part-%02d.mkv",
        dir = dir.display()
    ))
    .unwrap()
    .downcast::<gst::Pipeline>()
    .unwrap();
    let rec = pipeline
        .by_name("rec")
        .unwrap()
        .downcast::<gst::Bin>()
        .unwrap();

    // The worst order, step by step:
    // (1) the video's EOS is held at the end of its head (before recordmux's own probe
    //     there), after the video moved to segment 1;
    // (2) the audio's split to segment 2 waits at the end of its head for (1), then prepares
    //     segment 2 with the video still going;
    // (3) once segment 2's muxer exists (the list of streams taken), the video's EOS goes on
    //     and the preparation waits until it has left the head (reached segment 1's muxer).
    let (eos_holding, eos_holding_rx) = mpsc::channel::<()>();
    let (release_eos, release_eos_rx) = mpsc::channel::<()>();
    let (video_done, video_done_rx) = mpsc::channel::<()>();
    let eos_holding = Arc::new(Mutex::new(eos_holding));
    let eos_holding_rx = Arc::new(Mutex::new(eos_holding_rx));
    let release_eos = Arc::new(Mutex::new(release_eos));
    let release_eos_rx = Arc::new(Mutex::new(release_eos_rx));
    let video_done = Arc::new(Mutex::new(video_done));
    let video_done_rx = Arc::new(Mutex::new(video_done_rx));
    // Each step that happened (else the race was not forced).
    let steps = Arc::new([
        AtomicBool::new(false),
        AtomicBool::new(false),
        AtomicBool::new(false),
    ]);
    let forced = steps.clone();
    rec.connect_deep_element_added(move |_, _, element| {
        let factory = element.factory().map(|f| f.name().to_string());
        if factory.as_deref() == Some("queue") {
            let (eos_holding, release_eos_rx) = (eos_holding.clone(), release_eos_rx.clone());
            let (eos_holding_rx, steps) = (eos_holding_rx.clone(), steps.clone());
            element.static_pad("src").unwrap().add_probe(
                gst::PadProbeType::EVENT_DOWNSTREAM,
                move |pad, info| {
                    let Some(event) = info.event() else {
                        return gst::PadProbeReturn::Ok;
                    };
                    let split_2 = event.structure().is_some_and(|s| {
                        s.name() == "recordmux-split" && s.get::<u32>("segment") == Ok(2)
                    });
                    if event.type_() == gst::EventType::Eos && is_video(pad) {
                        let _ = eos_holding.lock().unwrap().send(());
                        let held = release_eos_rx.lock().unwrap().recv_timeout(HOLD);
                        steps[0].store(held.is_ok(), Ordering::SeqCst);
                    } else if split_2 && !is_video(pad) {
                        let waited = eos_holding_rx.lock().unwrap().recv_timeout(HOLD);
                        steps[1].store(waited.is_ok(), Ordering::SeqCst);
                    }
                    gst::PadProbeReturn::Ok
                },
            );
        }
        match element.name().as_str() {
            "muxer1" => {
                let video_done = video_done.clone();
                element.connect_pad_added(move |_, pad| {
                    if !pad.name().starts_with("video") {
                        return;
                    }
                    let video_done = video_done.clone();
                    pad.add_probe(gst::PadProbeType::EVENT_DOWNSTREAM, move |_, info| {
                        if matches!(info.event().map(|e| e.type_()), Some(gst::EventType::Eos)) {
                            let _ = video_done.lock().unwrap().send(());
                        }
                        gst::PadProbeReturn::Ok
                    });
                });
            }
            "muxer2" => {
                let _ = release_eos.lock().unwrap().send(());
                let reached = video_done_rx.lock().unwrap().recv_timeout(HOLD);
                steps[2].store(reached.is_ok(), Ordering::SeqCst);
            }
            _ => (),
        }
    });

    pipeline.set_state(gst::State::Playing).unwrap();
    let message = pipeline.bus().unwrap().timed_pop_filtered(
        gst::ClockTime::from_seconds(30),
        &[gst::MessageType::Eos, gst::MessageType::Error],
    );
    pipeline.set_state(gst::State::Null).unwrap();
    let forced: Vec<bool> = forced.iter().map(|b| b.load(Ordering::SeqCst)).collect();
    assert_eq!(forced, [true; 3], "the race was not forced (steps 1 to 3)");
    let message = message.expect("the recording finishes (segment 2 waited for the video)");
    assert_eq!(message.type_(), gst::MessageType::Eos, "{message:?}");
    for index in 0..3 {
        let manifest = test_support::probe::read_json(&dir.join(format!("part-{index:02}.json")));
        assert_eq!(manifest["complete"], true, "segment {index}: {manifest}");
        assert_eq!(manifest["segment"]["index"], index);
    }
    let last = test_support::demux::matroska(&std::fs::read(dir.join("part-02.mkv")).unwrap());
    assert!(last.video.is_empty(), "no video after 1.6 s");
    assert!(!last.audio.is_empty(), "the audio from 2 s on");
    std::fs::remove_dir_all(dir).unwrap();
}

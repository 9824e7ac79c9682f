//! What the CLI benches share.

use std::time::Instant;

use gst::prelude::*;

/// Plays `pipeline` to EOS and returns the wall time it took in seconds; panics on an error.
#[allow(dead_code)] // not every bench plays a pipeline to its end
pub fn play_to_eos(pipeline: &gst::Element) -> f64 {
    let bus = pipeline.bus().unwrap();
    let start = Instant::now();
    pipeline.set_state(gst::State::Playing).unwrap();
    let message = bus
        .timed_pop_filtered(
            gst::ClockTime::from_seconds(600),
            &[gst::MessageType::Eos, gst::MessageType::Error],
        )
        .unwrap();
    let elapsed = start.elapsed().as_secs_f64();
    pipeline.set_state(gst::State::Null).unwrap();
    assert_eq!(message.type_(), gst::MessageType::Eos, "{message:?}");
    elapsed
}

/// The real carphone clip (media/, from scripts/fetch-media.sh) at `width` x `height` RGBA,
/// frame by frame: motion as a call has it, for the automatic inference interval.
#[allow(dead_code)] // the backgroundfx benches only
pub fn carphone_clip(width: usize, height: usize) -> Vec<Vec<u8>> {
    gst::init().unwrap();
    let clip = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("media/carphone.mp4");
    let pipeline = gst::parse::launch(&format!(
        "filesrc location={} ! decodebin ! videoconvert ! videoscale ! \
         video/x-raw,format=RGBA,width={width},height={height},pixel-aspect-ratio=1/1 ! \
         appsink name=sink sync=false",
        clip.display()
    ))
    .expect("run scripts/fetch-media.sh first")
    .downcast::<gst::Pipeline>()
    .unwrap();
    let sink = pipeline
        .by_name("sink")
        .unwrap()
        .downcast::<gst_app::AppSink>()
        .unwrap();
    pipeline.set_state(gst::State::Playing).unwrap();
    let mut frames = Vec::new();
    while let Ok(sample) = sink.pull_sample() {
        let buffer = sample.buffer().unwrap().map_readable().unwrap();
        frames.push(buffer.as_slice()[..width * height * 4].to_vec());
    }
    pipeline.set_state(gst::State::Null).unwrap();
    frames
}

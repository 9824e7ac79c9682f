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
    test_support::pipeline::rgba_frames(&test_support::paths::media("carphone.mp4"), width, height)
}

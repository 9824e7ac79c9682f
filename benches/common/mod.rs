//! What the CLI benches share.

use std::time::Instant;

use gst::prelude::*;

/// Plays `pipeline` to EOS and returns the wall time it took in seconds; panics on an error.
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

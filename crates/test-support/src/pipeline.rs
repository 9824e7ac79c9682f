//! Real media through GStreamer: frames decoded for processing tests and benches.

use std::path::Path;

use gst::prelude::*;

/// Plays `launch` (a gst-launch line ending in `appsink name=sink`) to its end and hands
/// every sample to `each`; panics on a pipeline error.
pub fn pull_all(launch: &str, mut each: impl FnMut(&gst::Sample)) {
    gst::init().unwrap();
    let pipeline = gst::parse::launch(launch)
        .unwrap_or_else(|error| panic!("{launch}: {error}"))
        .downcast::<gst::Pipeline>()
        .unwrap();
    let sink = pipeline
        .by_name("sink")
        .expect("an appsink named sink")
        .downcast::<gst_app::AppSink>()
        .unwrap();
    pipeline.set_state(gst::State::Playing).unwrap();
    while let Ok(sample) = sink.pull_sample() {
        each(&sample);
    }
    let error = pipeline
        .bus()
        .unwrap()
        .pop_filtered(&[gst::MessageType::Error]);
    pipeline.set_state(gst::State::Null).unwrap();
    assert!(error.is_none(), "{launch}: {error:?}");
}

/// Every frame of the video at `path`, as RGBA at `width` x `height` (square pixels).
pub fn rgba_frames(path: &Path, width: usize, height: usize) -> Vec<Vec<u8>> {
    let mut frames = Vec::new();
    pull_all(
        &format!(
            "filesrc location={} ! decodebin ! videoconvert ! videoscale ! \
             video/x-raw,format=RGBA,width={width},height={height},pixel-aspect-ratio=1/1 ! \
             appsink name=sink sync=false",
            path.display()
        ),
        |sample| {
            let buffer = sample.buffer().unwrap().map_readable().unwrap();
            frames.push(buffer.as_slice()[..width * height * 4].to_vec());
        },
    );
    frames
}

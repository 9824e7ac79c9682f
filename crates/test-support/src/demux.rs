//! A recording's streams as buffers: the bytes of a Matroska file demuxed by GStreamer, so a
//! test can check exact timestamps and sample values of raw video (I420) and audio (S16).

use gst::prelude::*;

/// One demuxed buffer: presentation time (ns) and payload.
#[derive(Debug, Clone)]
pub struct Sample {
    pub pts: u64,
    pub data: Vec<u8>,
}

/// The streams of a Matroska recording.
#[derive(Debug, Default)]
pub struct Streams {
    pub video: Vec<Sample>,
    pub audio: Vec<Sample>,
}

/// Demuxes Matroska `bytes` (video and audio streams, any number of each; the first of each
/// kind is returned).
pub fn matroska(bytes: &[u8]) -> Streams {
    gst::init().unwrap();
    let pipeline = gst::Pipeline::new();
    let src = gst_app::AppSrc::builder()
        .caps(&gst::Caps::new_empty_simple("video/x-matroska"))
        .format(gst::Format::Bytes)
        .build();
    let demux = gst::ElementFactory::make("matroskademux").build().unwrap();
    pipeline.add_many([src.upcast_ref(), &demux]).unwrap();
    src.link(&demux).unwrap();
    let collected = std::sync::Arc::new(std::sync::Mutex::new(Streams::default()));
    let pipeline_weak = pipeline.downgrade();
    let sink_collected = collected.clone();
    demux.connect_pad_added(move |_, pad| {
        let Some(pipeline) = pipeline_weak.upgrade() else {
            return;
        };
        let video = pad.name().starts_with("video");
        let first = {
            let streams = sink_collected.lock().unwrap();
            if video {
                streams.video.is_empty()
            } else {
                streams.audio.is_empty()
            }
        };
        let collected = sink_collected.clone();
        let sink = gst_app::AppSink::builder()
            .sync(false)
            .callbacks(
                gst_app::AppSinkCallbacks::builder()
                    .new_sample(move |sink| {
                        let sample = sink.pull_sample().map_err(|_| gst::FlowError::Eos)?;
                        let buffer = sample.buffer().ok_or(gst::FlowError::Error)?;
                        let segment = sample
                            .segment()
                            .and_then(|s| s.downcast_ref::<gst::ClockTime>().cloned());
                        let pts = buffer
                            .pts()
                            .and_then(|pts| segment.as_ref()?.to_running_time(pts))
                            .map_or(0, gst::ClockTime::nseconds);
                        let data = buffer.map_readable().unwrap().to_vec();
                        if first {
                            let mut streams = collected.lock().unwrap();
                            let list = if video {
                                &mut streams.video
                            } else {
                                &mut streams.audio
                            };
                            list.push(Sample { pts, data });
                        }
                        Ok(gst::FlowSuccess::Ok)
                    })
                    .build(),
            )
            .build();
        pipeline.add(&sink).unwrap();
        sink.sync_state_with_parent().unwrap();
        pad.link(&sink.static_pad("sink").unwrap()).unwrap();
    });
    pipeline.set_state(gst::State::Playing).unwrap();
    src.push_buffer(gst::Buffer::from_slice(bytes.to_vec()))
        .unwrap();
    src.end_of_stream().unwrap();
    let bus = pipeline.bus().unwrap();
    let message = bus
        .timed_pop_filtered(
            gst::ClockTime::from_seconds(30),
            &[gst::MessageType::Eos, gst::MessageType::Error],
        )
        .expect("demuxing ends");
    if let gst::MessageView::Error(err) = message.view() {
        panic!("cannot demux: {} ({:?})", err.error(), err.debug());
    }
    pipeline.set_state(gst::State::Null).unwrap();
    std::mem::take(&mut *collected.lock().unwrap())
}

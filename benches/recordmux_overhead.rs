//! What recordmux costs on top of the plain muxer it wraps, in one run, as JSON: the same
//! pre-encoded call (H.264 + Opus, recorded without re-encoding) muxed to fragmented MP4 by
//! `mp4mux` alone, by `recordmux`, and by `recordmux` with a pause/resume every second.
//!
//!   cargo bench --bench recordmux_overhead -- [--seconds N]

mod common;

use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};

use gst::prelude::*;

fn run(description: &str, toggle_every_frames: Option<u64>) -> f64 {
    let pipeline = gst::parse::launch(description)
        .unwrap()
        .downcast::<gst::Pipeline>()
        .unwrap();
    if let Some(every) = toggle_every_frames {
        let recorder = pipeline.by_name("mux").unwrap();
        let frames = Arc::new(AtomicU64::new(0));
        pipeline
            .by_name("vtap")
            .unwrap()
            .static_pad("src")
            .unwrap()
            .add_probe(gst::PadProbeType::BUFFER, move |_, _| {
                let frame = frames.fetch_add(1, Ordering::Relaxed) + 1;
                if frame.is_multiple_of(every) {
                    let signal = if (frame / every) % 2 == 1 {
                        "pause"
                    } else {
                        "resume"
                    };
                    recorder.emit_by_name::<()>(signal, &[&"bench"]);
                }
                gst::PadProbeReturn::Ok
            });
    }
    common::play_to_eos(pipeline.upcast_ref())
}

fn median(mut values: Vec<f64>) -> f64 {
    values.sort_by(f64::total_cmp);
    values[values.len() / 2]
}

fn main() {
    gst::init().unwrap();
    gstvcc::register().unwrap();
    let args: Vec<String> = std::env::args().collect();
    let mut seconds: u64 = if args.iter().any(|a| a == "--bench") {
        120
    } else {
        10
    };
    if let Some(i) = args.iter().position(|a| a == "--seconds") {
        seconds = args[i + 1].parse().expect("--seconds N");
    }
    let dir = std::env::temp_dir().join(format!("recordmux-bench-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    // Encode the call once: 640x360 30 fps H.264 and 48 kHz Opus, as WebRTC delivers them.
    let source = dir.join("call.mkv");
    run(
        &format!(
            "matroskamux name=m ! filesink location={} \
             videotestsrc num-buffers={} pattern=ball ! video/x-raw,width=640,height=360,framerate=30/1 \
               ! x264enc speed-preset=ultrafast tune=zerolatency key-int-max=30 ! h264parse ! m. \
             audiotestsrc num-buffers={} samplesperbuffer=960 ! audio/x-raw,rate=48000 ! opusenc ! m.",
            source.display(),
            seconds * 30,
            seconds * 50
        ),
        None,
    );
    let input = format!(
        "filesrc location={} ! matroskademux name=d d.video_0 ! queue ! h264parse ! identity name=vtap ! mux.video_0 \
         d.audio_0 ! queue ! opusparse ! mux.audio_0",
        source.display()
    );
    let plain =
        format!("mp4mux name=mux fragment-duration=1000 streamable=true ! fakesink {input}");
    let recordmux = format!("recordmux name=mux ! fakesink {input}");
    let (mut plain_runs, mut recordmux_runs, mut toggling_runs) = (vec![], vec![], vec![]);
    for _ in 0..3 {
        plain_runs.push(run(&plain, None));
        recordmux_runs.push(run(&recordmux, None));
        toggling_runs.push(run(&recordmux, Some(30)));
    }
    let (plain, recordmux, toggling) = (
        median(plain_runs),
        median(recordmux_runs),
        median(toggling_runs),
    );
    let result = serde_json::json!({
        "bench": "recordmux_overhead",
        "media_seconds": seconds,
        "input": "640x360 30 fps H.264 + 48 kHz Opus, passthrough, fragmented MP4",
        "mp4mux_seconds": plain,
        "recordmux_seconds": recordmux,
        "recordmux_pause_every_second_seconds": toggling,
        "recordmux_vs_mp4mux": recordmux / plain,
        "recordmux_toggling_vs_mp4mux": toggling / plain,
        "recordmux_realtime_factor": seconds as f64 / recordmux,
    });
    println!("{}", serde_json::to_string_pretty(&result).unwrap());
    std::fs::remove_dir_all(dir).ok();
}

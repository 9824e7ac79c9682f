//! Stream density of `backgroundfx`: how many live 30 fps calls one process on this machine
//! can blur at once. N pipelines `appsrc (the real carphone clip, 30 fps timestamps, looped)
//! ! backgroundfx effect=blur ! fakesink sync=true` run together for a few seconds; N
//! passes when every stream renders >= 29.5 frames per second. The largest passing N is
//! found by doubling, then bisection, for each size and inference interval (1 and
//! automatic). Prints one JSON document on stdout.
//!
//!   cargo bench --bench density -- [--seconds S] [--sizes 640x360,1280x720] [--max N]

mod common;

use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};

use gst::prelude::*;

const FPS: u64 = 30;
const PASS_FPS: f64 = 29.5;

struct Stream {
    pipeline: gst::Pipeline,
    rendered: Arc<AtomicU64>,
}

fn start_stream(frames: &Arc<Vec<Vec<u8>>>, width: usize, height: usize, interval: u32) -> Stream {
    let pipeline = gst::parse::launch(&format!(
        "appsrc name=src is-live=true format=time \
           caps=video/x-raw,format=RGBA,width={width},height={height},framerate={FPS}/1 \
         ! backgroundfx effect=blur inference-interval={interval} \
         ! fakesink name=sink sync=true"
    ))
    .unwrap()
    .downcast::<gst::Pipeline>()
    .unwrap();
    let source = pipeline
        .by_name("src")
        .unwrap()
        .downcast::<gst_app::AppSrc>()
        .unwrap();
    // One frame queued at most: the source is paced by the stream, as a camera or decoder is.
    source.set_max_bytes((width * height * 4) as u64);
    let frames = frames.clone();
    let mut index = 0u64;
    source.set_callbacks(
        gst_app::AppSrcCallbacks::builder()
            .need_data(move |source, _| {
                let frame = &frames[(index % frames.len() as u64) as usize];
                let mut buffer = gst::Buffer::from_mut_slice(frame.clone());
                {
                    let buffer = buffer.get_mut().unwrap();
                    buffer.set_pts(gst::ClockTime::SECOND * index / FPS);
                    buffer.set_duration(gst::ClockTime::SECOND / FPS);
                }
                index += 1;
                let _ = source.push_buffer(buffer);
            })
            .build(),
    );
    let rendered = Arc::new(AtomicU64::new(0));
    let counter = rendered.clone();
    pipeline
        .by_name("sink")
        .unwrap()
        .static_pad("sink")
        .unwrap()
        .add_probe(gst::PadProbeType::BUFFER, move |_, _| {
            counter.fetch_add(1, Ordering::Relaxed);
            gst::PadProbeReturn::Ok
        });
    pipeline.set_state(gst::State::Playing).unwrap();
    Stream { pipeline, rendered }
}

/// Runs `count` streams together; returns the slowest stream's rendered fps, measured after
/// a second of warm-up (model load, first frames).
fn slowest_fps(
    count: usize,
    frames: &Arc<Vec<Vec<u8>>>,
    size: (usize, usize),
    interval: u32,
    seconds: f64,
) -> f64 {
    let streams: Vec<Stream> = (0..count)
        .map(|_| start_stream(frames, size.0, size.1, interval))
        .collect();
    std::thread::sleep(Duration::from_secs(1));
    let before: Vec<u64> = streams
        .iter()
        .map(|s| s.rendered.load(Ordering::Relaxed))
        .collect();
    let start = Instant::now();
    std::thread::sleep(Duration::from_secs_f64(seconds));
    let elapsed = start.elapsed().as_secs_f64();
    let slowest = streams
        .iter()
        .zip(&before)
        .map(|(s, b)| (s.rendered.load(Ordering::Relaxed) - b) as f64 / elapsed)
        .fold(f64::INFINITY, f64::min);
    for stream in &streams {
        if let Some(bus) = stream.pipeline.bus()
            && let Some(error) = bus.pop_filtered(&[gst::MessageType::Error])
        {
            panic!("a stream failed: {error:?}");
        }
        stream.pipeline.set_state(gst::State::Null).unwrap();
    }
    slowest
}

fn main() {
    let args: Vec<String> = std::env::args().collect();
    let value = |name: &str| {
        args.iter()
            .position(|a| a == name)
            .map(|i| args[i + 1].clone())
    };
    // Under `cargo test --all-targets` (no --bench): a short smoke pass.
    let smoke = !args.iter().any(|a| a == "--bench");
    let seconds: f64 =
        value("--seconds").map_or(if smoke { 0.5 } else { 5.0 }, |s| s.parse().unwrap());
    let max: usize = value("--max").map_or(if smoke { 2 } else { 64 }, |s| s.parse().unwrap());
    let sizes: Vec<(usize, usize)> = value("--sizes")
        .unwrap_or_else(|| {
            if smoke {
                "320x180".into()
            } else {
                "640x360,1280x720".into()
            }
        })
        .split(',')
        .map(|s| {
            let (w, h) = s.split_once('x').expect("WxH");
            (w.parse().unwrap(), h.parse().unwrap())
        })
        .collect();
    gst::init().unwrap();
    gstbackgroundfx::plugin_register_static().unwrap();
    let mut results = Vec::new();
    for &size in &sizes {
        let frames = Arc::new(common::carphone_clip(size.0, size.1));
        for interval in [1u32, 0] {
            let mut trials = Vec::new();
            let passes = |n: usize, trials: &mut Vec<serde_json::Value>| {
                let fps = slowest_fps(n, &frames, size, interval, seconds);
                eprintln!(
                    "{}x{} interval {interval}: {n} streams, slowest {fps:.1} fps",
                    size.0, size.1
                );
                trials.push(
                    serde_json::json!({ "streams": n, "slowest_fps": (fps * 10.0).round() / 10.0 }),
                );
                fps >= PASS_FPS
            };
            // Doubling finds a failing count, bisection the largest passing one.
            let (mut good, mut bad) = (0usize, None);
            let mut n = 1;
            while n <= max {
                if passes(n, &mut trials) {
                    good = n;
                    n *= 2;
                } else {
                    bad = Some(n);
                    break;
                }
            }
            if let Some(mut bad) = bad {
                while bad - good > 1 {
                    let middle = (good + bad) / 2;
                    if passes(middle, &mut trials) {
                        good = middle;
                    } else {
                        bad = middle;
                    }
                }
            }
            results.push(serde_json::json!({
                "width": size.0,
                "height": size.1,
                "effect": "blur",
                "inference_interval": interval,
                "max_streams_at_29_5_fps": good,
                "capped_at": if bad.is_none() { Some(max) } else { None },
                "trials": trials,
            }));
        }
    }
    let report = serde_json::json!({
        "benchmark": "backgroundfx density",
        "cores": std::thread::available_parallelism().map(|n| n.get()).unwrap_or(1),
        "source": "carphone clip, live 30 fps, fakesink sync=true",
        "target": "1280x720 blur, inference-interval=0: >= 10 streams",
        "results": results,
    });
    println!("{}", serde_json::to_string_pretty(&report).unwrap());
}

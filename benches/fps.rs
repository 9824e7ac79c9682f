//! CLI benchmark of `backgroundfx`'s processing: frames per second on ONE core (a rayon
//! pool of one thread) for each frame size, effect and inference interval, with the time
//! of each stage. Intervals 1 and 3 run on the frames the Python peers use (carphone and
//! astronaut from tests/data/parity, scaled to each size); the automatic interval (0) runs
//! on the real carphone clip and on an "agent at a desk" clip (a real portrait with small
//! motion and noise). Prints one JSON document on stdout. `benches/run.sh` adds the Python
//! peers measured in the same run and the ratios.
//!
//!   cargo bench --bench fps -- [--seconds S] [--sizes 640x360,1280x720] [--only blur-1-stills]
//!
//! `--only effect-interval-content` runs one case per size (for a profiler).

mod common;

use std::path::Path;

use common::carphone_clip;
use std::time::{Duration, Instant};

use gstbackgroundfx::layout::{FrameMut, PixelLayout};
use gstbackgroundfx::processor::{Effect, Params, Processor};
use gstbackgroundfx::segmenter::{Segmenter, shipped_model_path};

fn frames(width: usize, height: usize) -> Vec<Vec<u8>> {
    let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/data/parity");
    ["carphone000", "carphone060", "astronaut"]
        .iter()
        .map(|name| {
            let image = image::open(dir.join(format!("{name}_256x144.png")))
                .unwrap()
                .to_rgba8();
            image::imageops::resize(
                &image,
                width as u32,
                height as u32,
                image::imageops::FilterType::Triangle,
            )
            .into_raw()
        })
        .collect()
}

/// An agent at a desk: a real portrait that sways by up to 2 pixels, with sensor noise.
fn desk_clip(width: usize, height: usize) -> Vec<Vec<u8>> {
    let still = &frames(width, height)[2];
    (0..90)
        .map(|i| {
            let shift = (2.0 * (i as f64 / 12.0).sin()).round() as isize;
            let mut frame = vec![0u8; still.len()];
            for y in 0..height {
                for x in 0..width {
                    let from = (x as isize - shift).clamp(0, width as isize - 1) as usize;
                    for c in 0..4 {
                        let noise = ((x * 7 + y * 13 + i * 31 + c) % 5) as u8;
                        frame[(y * width + x) * 4 + c] =
                            still[(y * width + from) * 4 + c].saturating_add(noise);
                    }
                }
            }
            frame
        })
        .collect()
}

/// Bytes of the carphone clip at 640x360 after backgroundfx `effect` and x264 at a constant
/// quantizer of 26: what each effect saves on the wire.
fn encoded_bytes(effect: &str) -> u64 {
    gst::init().unwrap();
    gstbackgroundfx::plugin_register_static().unwrap();
    let clip = test_support::paths::media("carphone.mp4");
    let picture =
        Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/data/parity/astronaut_256x256.png");
    let mut bytes = 0;
    test_support::pipeline::pull_all(
        &format!(
            "filesrc location={} ! decodebin ! videoconvert ! videoscale ! \
             video/x-raw,format=RGBA,width=640,height=360,pixel-aspect-ratio=1/1 ! \
             backgroundfx effect={effect} picture={} ! videoconvert ! \
             x264enc pass=quant quantizer=26 speed-preset=medium threads=1 ! appsink name=sink sync=false",
            clip.display(),
            picture.display()
        ),
        |sample| bytes += sample.buffer().unwrap().size() as u64,
    );
    bytes
}

fn measure(mut step: impl FnMut(usize), seconds: f64) -> f64 {
    for i in 0..5 {
        step(i);
    }
    let budget = Duration::from_secs_f64(seconds);
    let start = Instant::now();
    let mut count = 0;
    while start.elapsed() < budget {
        step(count);
        count += 1;
    }
    count as f64 / start.elapsed().as_secs_f64()
}

fn main() {
    let mut seconds = 2.0;
    let mut sizes = vec![(640, 360), (1280, 720), (1920, 1080)];
    let args: Vec<String> = std::env::args().collect();
    // `cargo bench` passes --bench; under `cargo test --all-targets` it is absent: then run a
    // short smoke pass so the benchmark cannot rot, without spending CI minutes.
    if !args.iter().any(|a| a == "--bench") {
        seconds = 0.05;
        sizes = vec![(320, 180)];
    }
    let mut only: Option<String> = None;
    let mut i = 1;
    while i < args.len() {
        match args[i].as_str() {
            "--seconds" => {
                seconds = args[i + 1].parse().expect("--seconds S");
                i += 1;
            }
            "--only" => {
                only = Some(args[i + 1].to_lowercase());
                i += 1;
            }
            "--sizes" => {
                sizes = args[i + 1]
                    .split(',')
                    .map(|s| {
                        let (w, h) = s.split_once('x').expect("WxH");
                        (w.parse().unwrap(), h.parse().unwrap())
                    })
                    .collect();
                i += 1;
            }
            _ => {} // cargo bench passes --bench
        }
        i += 1;
    }
    if args.iter().any(|a| a == "--encoded-size") {
        let plain = encoded_bytes("none");
        let effects: Vec<serde_json::Value> = ["blur", "solid", "picture"]
            .iter()
            .map(|effect| {
                let bytes = encoded_bytes(effect);
                serde_json::json!({
                    "effect": effect,
                    "bytes": bytes,
                    "saving": ((1.0 - bytes as f64 / plain as f64) * 1000.0).round() / 1000.0,
                })
            })
            .collect();
        let report = serde_json::json!({
            "clip": "carphone 640x360, x264 constant quantizer 26",
            "none_bytes": plain,
            "effects": effects,
        });
        println!("{}", serde_json::to_string_pretty(&report).unwrap());
        return;
    }
    let pool = rayon::ThreadPoolBuilder::new()
        .num_threads(1)
        .build()
        .unwrap();
    let layout = PixelLayout::RGBA;
    let mut segmenter =
        Segmenter::from_file(shipped_model_path("selfie_segmentation_landscape.onnx")).unwrap();
    let model_size = (segmenter.width(), segmenter.height());
    let mut person = vec![0.0f32; model_size.0 * model_size.1];
    let model_fps = measure(
        |_| segmenter.run(|input| input.fill(0.5), &mut person).unwrap(),
        seconds,
    );
    let picture = image::open(
        Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/data/parity/astronaut_256x256.png"),
    )
    .unwrap()
    .to_rgba8();
    let mut results = Vec::new();
    for &(width, height) in &sizes {
        // Frames are processed in place again and again (like a still camera): copying a
        // fresh frame in each time would measure memcpy, not the filter.
        let stills = frames(width, height);
        let clips = [
            ("carphone", carphone_clip(width, height)),
            ("desk", desk_clip(width, height)),
        ];
        for effect in [Effect::Blur, Effect::Solid, Effect::Picture] {
            let cases = [
                (1u32, "stills"),
                (3, "stills"),
                (0, "carphone"),
                (0, "desk"),
            ];
            for (interval, content) in cases {
                let case = format!("{effect:?}-{interval}-{content}").to_lowercase();
                if only.as_ref().is_some_and(|only| *only != case) {
                    continue;
                }
                let mut work = match content {
                    "stills" => stills.clone(),
                    name => clips.iter().find(|(n, _)| *n == name).unwrap().1.clone(),
                };
                let params = Params {
                    effect,
                    inference_interval: interval,
                    ..Params::default()
                };
                let mut processor = Processor::new(layout, width, height, model_size);
                processor.set_picture(Some(&picture), Default::default(), params.colour);
                let fps = pool.install(|| {
                    measure(
                        |i| {
                            let index = i % work.len();
                            let mut frame = FrameMut {
                                layout,
                                width,
                                height,
                                planes: [&mut work[index], &mut [], &mut []],
                                strides: [width * 4, 0, 0],
                            };
                            processor.process(&mut frame, &params, Some(&mut segmenter));
                        },
                        seconds,
                    )
                });
                let stages = processor.stats().mean_ms();
                let round = |ms: f64| (ms * 1000.0).round() / 1000.0;
                let stats = processor.stats();
                eprintln!(
                    "{width}x{height} {effect:?} interval {interval} {content}: {fps:.1} fps, {} inferences / {} frames, ms: input {:.3} inference {:.3} refine {:.3} background {:.3} composite {:.3}",
                    stats.inferences,
                    stats.frames,
                    stages[0],
                    stages[1],
                    stages[2],
                    stages[3],
                    stages[4]
                );
                results.push(serde_json::json!({
                    "stage_ms": {
                        "model_input": round(stages[0]),
                        "inference": round(stages[1]),
                        "mask_refinement": round(stages[2]),
                        "background": round(stages[3]),
                        "composite": round(stages[4]),
                        "not_inference": round(stages[0] + stages[2] + stages[3] + stages[4]),
                    },
                    "width": width,
                    "height": height,
                    "effect": format!("{effect:?}").to_lowercase(),
                    "inference_interval": interval,
                    "content": content,
                    "inferred_share": (stats.inferences as f64 / stats.frames.max(1) as f64 * 1000.0).round() / 1000.0,
                    "fps_per_core": (fps * 10.0).round() / 10.0,
                }));
            }
        }
    }
    let report = serde_json::json!({
        "benchmark": "backgroundfx",
        "threads": 1,
        "format": "RGBA",
        "model": "selfie_segmentation_landscape.onnx (256x144)",
        "model_only_fps": (model_fps * 10.0).round() / 10.0,
        "model_only_ms": ((1000.0 / model_fps) * 1000.0).round() / 1000.0,
        "results": results,
    });
    println!("{}", serde_json::to_string_pretty(&report).unwrap());
}

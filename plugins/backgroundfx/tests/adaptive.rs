//! Automatic inference (`inference-interval=0`) against inference on every frame, on the
//! real carphone clip (`media/carphone.mp4`, fetched by `scripts/fetch-media.sh`): the
//! person masks must agree (IoU) while the model runs on far fewer frames.

use gstbackgroundfx::layout::{FrameMut, PixelLayout};
use gstbackgroundfx::processor::{Effect, Params, Processor};
use gstbackgroundfx::segmenter::{Segmenter, shipped_model_path};

const WIDTH: usize = 640;
const HEIGHT: usize = 360;

/// Every frame of the clip as RGBA at WIDTH x HEIGHT.
fn carphone_frames() -> Vec<Vec<u8>> {
    let frames = test_support::pipeline::rgba_frames(
        &test_support::paths::media("carphone.mp4"),
        WIDTH,
        HEIGHT,
    );
    assert!(frames.len() > 60, "decoded {} frames", frames.len());
    frames
}

/// The person masks (alpha >= 128) of every frame with these inference settings, and the
/// number of inferences.
fn masks(frames: &[Vec<u8>], inference_interval: u32) -> (Vec<Vec<bool>>, u64) {
    let mut segmenter =
        Segmenter::from_file(shipped_model_path("selfie_segmentation_landscape.onnx")).unwrap();
    let model_size = (segmenter.width(), segmenter.height());
    let mut processor = Processor::new(PixelLayout::RGBA, WIDTH, HEIGHT, model_size);
    let params = Params {
        effect: Effect::Solid,
        inference_interval,
        ..Params::default()
    };
    let masks = frames
        .iter()
        .map(|frame| {
            let mut data = frame.clone();
            let mut frame = FrameMut {
                layout: PixelLayout::RGBA,
                width: WIDTH,
                height: HEIGHT,
                planes: [&mut data, &mut [], &mut []],
                strides: [WIDTH * 4, 0, 0],
            };
            processor.process(&mut frame, &params, Some(&mut segmenter));
            processor.alpha().iter().map(|&a| a >= 128).collect()
        })
        .collect();
    (masks, processor.stats().inferences)
}

fn iou(a: &[bool], b: &[bool]) -> f64 {
    let both = a.iter().zip(b).filter(|(a, b)| **a && **b).count();
    let either = a.iter().zip(b).filter(|(a, b)| **a || **b).count();
    if either == 0 {
        1.0
    } else {
        both as f64 / either as f64
    }
}

#[test]
fn automatic_inference_keeps_the_mask_of_per_frame_inference_on_carphone() {
    let frames = carphone_frames();
    let (every, every_count) = masks(&frames, 1);
    let (automatic, automatic_count) = masks(&frames, 0);
    assert_eq!(every_count, frames.len() as u64);
    let ious: Vec<f64> = every
        .iter()
        .zip(&automatic)
        .map(|(a, b)| iou(a, b))
        .collect();
    let mean = ious.iter().sum::<f64>() / ious.len() as f64;
    let worst = ious.iter().cloned().fold(1.0, f64::min);
    println!(
        "{} frames: automatic ran the model {automatic_count} times; IoU mean {mean:.4}, worst {worst:.4}",
        frames.len()
    );
    assert!(mean >= 0.97, "mean IoU {mean}");
    assert!(worst >= 0.90, "worst IoU {worst}");
    // Not a disguised "every frame": the clip moves, but not on every frame.
    assert!(
        automatic_count * 10 <= frames.len() as u64 * 8,
        "{automatic_count} inferences for {} frames",
        frames.len()
    );
}

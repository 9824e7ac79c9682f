//! Criterion benchmark of the per-frame stages of `backgroundfx` at 1280x720 on one
//! thread: the model alone, and the whole processing per effect.

use std::path::Path;

use criterion::{Criterion, criterion_group, criterion_main};
use gstbackgroundfx::layout::{FrameMut, PixelLayout};
use gstbackgroundfx::processor::{Effect, Params, Processor};
use gstbackgroundfx::segmenter::{Segmenter, shipped_model_path};

fn bench(c: &mut Criterion) {
    let (width, height) = (1280usize, 720usize);
    let layout = PixelLayout::RGBA;
    let frame = image::open(
        Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/data/parity/carphone060_256x144.png"),
    )
    .unwrap()
    .to_rgba8();
    let original = image::imageops::resize(
        &frame,
        width as u32,
        height as u32,
        image::imageops::FilterType::Triangle,
    )
    .into_raw();
    let mut segmenter =
        Segmenter::from_file(shipped_model_path("selfie_segmentation_landscape.onnx")).unwrap();
    let model_size = (segmenter.width(), segmenter.height());
    let pool = rayon::ThreadPoolBuilder::new()
        .num_threads(1)
        .build()
        .unwrap();
    let mut person = vec![0.0f32; model_size.0 * model_size.1];
    c.bench_function("model 256x144", |b| {
        b.iter(|| segmenter.run(|input| input.fill(0.5), &mut person).unwrap())
    });
    for effect in [Effect::Blur, Effect::Solid] {
        let params = Params {
            effect,
            ..Params::default()
        };
        let mut processor = Processor::new(layout, width, height, model_size);
        let mut work = original.clone();
        c.bench_function(&format!("frame 1280x720 {effect:?}"), |b| {
            b.iter(|| {
                pool.install(|| {
                    work.copy_from_slice(&original);
                    let mut frame = FrameMut {
                        layout,
                        width,
                        height,
                        planes: [&mut work, &mut [], &mut []],
                        strides: [width * 4, 0, 0],
                    };
                    processor.process(&mut frame, &params, Some(&mut segmenter));
                })
            })
        });
    }
}

criterion_group! {
    name = benches;
    config = Criterion::default().sample_size(20);
    targets = bench
}
criterion_main!(benches);

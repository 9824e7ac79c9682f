//! Renders every backgroundfx effect on real frames into PNGs so a person can look at them:
//!
//!   cargo run --release --example gallery -- [output dir, default target/gallery]
//!
//! Frames: carphone (a person in a car) and astronaut, from tests/data/parity, at 768x432.

use std::path::{Path, PathBuf};

use gstbackgroundfx::layout::{FrameMut, PixelLayout};
use gstbackgroundfx::picture::Fit;
use gstbackgroundfx::processor::{Effect, Params, Processor};
use gstbackgroundfx::segmenter::{Segmenter, shipped_model_path};

fn main() -> Result<(), Box<dyn std::error::Error>> {
    let out: PathBuf = std::env::args()
        .nth(1)
        .unwrap_or_else(|| "target/gallery".into())
        .into();
    std::fs::create_dir_all(&out)?;
    let data = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/data/parity");
    let (width, height) = (768usize, 432usize);
    let layout = PixelLayout::RGBA;
    let mut segmenter =
        Segmenter::from_file(shipped_model_path("selfie_segmentation_landscape.onnx"))?;
    let picture = image::open(data.join("astronaut_256x256.png"))?.to_rgba8();
    let cases: [(&str, Params); 4] = [
        ("blur", Params::default()),
        (
            "solid",
            Params {
                effect: Effect::Solid,
                ..Params::default()
            },
        ),
        (
            "picture",
            Params {
                effect: Effect::Picture,
                ..Params::default()
            },
        ),
        (
            "alpha",
            Params {
                effect: Effect::None,
                alpha_output: true,
                ..Params::default()
            },
        ),
    ];
    for frame_name in ["carphone000", "carphone060", "astronaut"] {
        let source = image::open(data.join(format!("{frame_name}_256x144.png")))?.to_rgba8();
        let source = image::imageops::resize(
            &source,
            width as u32,
            height as u32,
            image::imageops::FilterType::CatmullRom,
        );
        source.save(out.join(format!("{frame_name}_input.png")))?;
        for (effect_name, params) in &cases {
            let mut processor = Processor::new(
                layout,
                width,
                height,
                (segmenter.width(), segmenter.height()),
            );
            processor.set_picture(Some(&picture), Fit::Cover, params.colour);
            let mut pixels = source.clone().into_raw();
            let mut frame = FrameMut {
                layout,
                width,
                height,
                planes: [&mut pixels, &mut [], &mut []],
                strides: [width * 4, 0, 0],
            };
            let (_, error) = processor.process(&mut frame, params, Some(&mut segmenter));
            if let Some(error) = error {
                return Err(error.into());
            }
            let path = out.join(format!("{frame_name}_{effect_name}.png"));
            image::RgbaImage::from_raw(width as u32, height as u32, pixels)
                .expect("buffer size")
                .save(&path)?;
            println!("{}", path.display());
        }
    }
    Ok(())
}

//! The converted ONNX models, run by tract, must match the original TFLite models run by
//! the reference runtime (see models/convert/make_reference.py) on real frames:
//! max-abs difference <= 1e-3 and IoU >= 0.99 of the person masks at 0.5.

use std::path::{Path, PathBuf};

use gstbackgroundfx::segmenter::{Segmenter, shipped_model_path};

fn test_data(name: &str) -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("../../tests/data")
        .join(name)
}

fn load_input(path: &Path) -> (usize, usize, Vec<u8>) {
    let image = image::open(path)
        .unwrap_or_else(|e| panic!("{}: {e}", path.display()))
        .to_rgb8();
    (
        image.width() as usize,
        image.height() as usize,
        image.into_raw(),
    )
}

fn load_reference(path: &Path) -> Vec<f32> {
    let image = image::open(path)
        .unwrap_or_else(|e| panic!("{}: {e}", path.display()))
        .to_luma16();
    image.pixels().map(|p| p.0[0] as f32 / 65535.0).collect()
}

fn check_model(model_file: &str, suffix: &str, size: &str) {
    let mut segmenter = Segmenter::from_file(shipped_model_path(model_file)).unwrap();
    let mut checked = 0;
    for frame in ["carphone000", "carphone060", "astronaut"] {
        let stem = format!("{frame}_{size}");
        let (width, height, rgb) = load_input(&test_data(&format!("parity/{stem}.png")));
        assert_eq!((width, height), (segmenter.width(), segmenter.height()));
        let reference = load_reference(&test_data(&format!("parity/{stem}_{suffix}.png")));
        let mut person = vec![0.0; width * height];
        segmenter
            .run(
                |input| {
                    let plane = width * height;
                    for (i, pixel) in rgb.chunks_exact(3).enumerate() {
                        for c in 0..3 {
                            input[c * plane + i] = pixel[c] as f32 / 255.0;
                        }
                    }
                },
                &mut person,
            )
            .unwrap();
        let max_abs = person
            .iter()
            .zip(&reference)
            .map(|(a, b)| (a - b).abs())
            .fold(0.0f32, f32::max);
        let (mut intersection, mut union) = (0usize, 0usize);
        for (a, b) in person.iter().zip(&reference) {
            intersection += usize::from(*a > 0.5 && *b > 0.5);
            union += usize::from(*a > 0.5 || *b > 0.5);
        }
        let iou = intersection as f64 / union.max(1) as f64;
        eprintln!("{stem} {suffix}: max-abs {max_abs:.2e}, IoU {iou:.5}");
        assert!(max_abs <= 1e-3, "{stem}: max-abs {max_abs}");
        assert!(iou >= 0.99, "{stem}: IoU {iou}");
        // A real frame of a person: the mask is neither empty nor everything.
        let person_fraction = intersection as f64 / person.len() as f64;
        assert!(
            (0.2..0.8).contains(&person_fraction),
            "{stem}: {person_fraction}"
        );
        checked += 1;
    }
    assert_eq!(checked, 3);
}

#[test]
fn landscape_model_matches_reference_runtime() {
    check_model("selfie_segmentation_landscape.onnx", "landscape", "256x144");
}

#[test]
fn general_model_matches_reference_runtime() {
    check_model("selfie_segmentation.onnx", "general", "256x256");
}

#[test]
fn model_with_vector_shapes_is_rejected_with_its_name() {
    let path = test_data("models/vector_model.onnx");
    let error = Segmenter::from_file(&path).unwrap_err().to_string();
    assert!(error.contains("vector_model.onnx"), "{error}");
    assert!(
        error.contains("does not look like a segmentation model"),
        "{error}"
    );
}

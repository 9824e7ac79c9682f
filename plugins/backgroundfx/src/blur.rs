//! The blurred background: a blur of the background only, `blur(colour * weight) /
//! blur(weight)` with weight = (1 - person)^4, so person pixels do not bleed into it (no
//! halo around the person).
//!
//! A blur this strong (sigma ~1/20 of the frame height) does not need the full resolution:
//! each plane is area-downscaled to a work size where sigma is ~3 pixels, blurred there
//! with three box passes, and bilinearly upscaled back: horizontally here, to the plane's
//! width at the work height (`resample::RowUpscaler`; the downscale is
//! `fast_image_resize`'s), vertically by the composite on the fly, only where the
//! background shows. The cost hardly depends on the frame size, and no full-size
//! background is ever written.
//!
//! The frame is already area-downscaled once per frame, to the model's input size. When the
//! work size is no larger than that (every strength from about 21 up at 16:9), the work
//! plane is downscaled from that small plane instead of from the frame: the frame is read
//! once, not twice. An area average of area averages is not quite the direct one; after
//! the blur, where the background shows, the two differ by at most a couple of levels
//! (tested).

use fast_image_resize as fir;

use crate::boxfilter::{BoxScratch, box_mean};
use crate::composite::{PlaneBackground, RowLerp, composite_plane};
use crate::layout::{FrameMut, PixelLayout, plane_size};
use crate::plane::{self, OwnedPlane, Plane};
use crate::resample::{LinearTable, MapResizer, RowUpscaler};

/// Background weight never reaches zero, so a pixel deep inside the person still gets a
/// defined (plain) blur; near an edge background pixels outweigh person pixels ~500:1.
const MIN_BACKGROUND_WEIGHT: f32 = 0.002;
/// Box radius at the work resolution; the work size is chosen to make it so.
const WORK_RADIUS: f32 = 3.0;
const PASSES: usize = 3;

/// Blur sigma in frame pixels for `strength` 1..=100 (100 = 1/10 of the frame height).
pub fn sigma_px(strength: u32, frame_height: usize) -> f32 {
    strength.clamp(1, 100) as f32 / 1000.0 * frame_height as f32
}

struct BlurredPlane {
    /// The frame plane at work size.
    work: OwnedPlane,
    /// `channels + 1` values per work pixel: premultiplied colour and the weight.
    weighted: Vec<f32>,
    /// The result at the plane's width and the work height.
    columns: OwnedPlane,
    /// From the work width to the plane's width.
    upscaler: RowUpscaler,
    /// For each row of the plane, the two rows of `columns` it is interpolated between.
    rows: Vec<RowLerp>,
}

/// Per-stream blur buffers for one frame geometry and blur strength.
pub struct BlurredBackground {
    strength: u32,
    work_width: usize,
    work_height: usize,
    /// The work planes are downscaled from the model-input planes, not from the frame.
    from_model_input: bool,
    radius: usize,
    weights: Vec<f32>,
    mask_to_work: MapResizer,
    planes: Vec<BlurredPlane>,
    scratch: BoxScratch,
}

impl BlurredBackground {
    pub fn new(
        layout: PixelLayout,
        width: usize,
        height: usize,
        model_size: (usize, usize),
        strength: u32,
    ) -> Self {
        let sigma = sigma_px(strength, height);
        let work_height = ((height as f32 * WORK_RADIUS / sigma).round() as usize).clamp(8, height);
        let work_width = (width * work_height).div_ceil(height).clamp(1, width);
        // Three passes of radius r as before the work size was adaptive: sigma (in work
        // pixels) rounded, so the look of every strength is unchanged.
        let radius = ((sigma * work_height as f32 / height as f32).round() as usize).max(1);
        let planes = layout
            .planes()
            .iter()
            .map(|shape| {
                let (pw, ph) = plane_size(*shape, width, height);
                let channels = shape.channels;
                BlurredPlane {
                    work: OwnedPlane::new(work_width, work_height, channels),
                    weighted: vec![0.0; work_width * work_height * (channels + 1)],
                    columns: OwnedPlane::new(pw, work_height, channels),
                    upscaler: RowUpscaler::new(work_width, pw),
                    rows: row_lerps(work_height, ph),
                }
            })
            .collect();
        BlurredBackground {
            strength,
            work_width,
            work_height,
            from_model_input: work_width <= model_size.0 && work_height <= model_size.1,
            radius,
            weights: vec![1.0; work_width * work_height],
            mask_to_work: MapResizer::new(model_size.0, model_size.1, work_width, work_height),
            planes,
            scratch: BoxScratch::default(),
        }
    }

    pub fn strength(&self) -> u32 {
        self.strength
    }

    pub fn work_size(&self) -> (usize, usize) {
        (self.work_width, self.work_height)
    }

    /// Whether the work planes come from the model-input planes rather than the frame.
    pub fn uses_model_input(&self) -> bool {
        self.from_model_input
    }

    /// Blurs every plane of the frame. `small` is the frame's planes at the model's input
    /// size (this frame's: [`ModelInput::planes`](crate::model_input::ModelInput::planes)).
    /// `person` is the model-resolution person mask, or `None` when there is none (then the
    /// whole frame is blurred alike).
    pub fn render(
        &mut self,
        resizer: &mut fir::Resizer,
        frame: &FrameMut,
        small: &[OwnedPlane],
        person: Option<&[f32]>,
    ) {
        match person {
            Some(person) => {
                self.mask_to_work.resize(person, &mut self.weights);
                // (1 - person)^4: a work pixel is an average of many frame pixels, so one
                // on the person's edge mixes person colour in; it must weigh little.
                for weight in &mut self.weights {
                    let background = 1.0 - *weight;
                    let squared = background * background;
                    *weight = (squared * squared).max(MIN_BACKGROUND_WEIGHT);
                }
            }
            None => self.weights.fill(1.0),
        }
        let (width, height, radius) = (self.work_width, self.work_height, self.radius);
        for (index, blurred) in self.planes.iter_mut().enumerate() {
            let source = match self.from_model_input {
                true => small[index].as_plane(),
                false => frame.plane(index),
            };
            plane::resize(
                resizer,
                source,
                &mut blurred.work.as_plane_mut(),
                plane::AREA,
            );
            let work = Work {
                weights: &self.weights,
                width,
                height,
                radius,
            };
            let scratch = &mut self.scratch;
            match source.channels {
                4 => weighted_blur::<4, 5>(blurred, &work, scratch),
                2 => weighted_blur::<2, 3>(blurred, &work, scratch),
                _ => weighted_blur::<1, 2>(blurred, &work, scratch),
            }
            let BlurredPlane {
                work,
                columns,
                upscaler,
                ..
            } = blurred;
            let (work, mut columns) = (work.as_plane(), columns.as_plane_mut());
            for (row, out) in work.rows().zip(columns.rows_mut()) {
                match source.channels {
                    4 => upscaler.upscale::<4>(row, out),
                    2 => upscaler.upscale::<2>(row, out),
                    _ => upscaler.upscale::<1>(row, out),
                }
            }
        }
    }

    /// The blurred background of plane `index`, for the composite.
    pub fn background(&self, index: usize) -> PlaneBackground<'_> {
        let plane = &self.planes[index];
        PlaneBackground::Lerp {
            rows: plane.columns.as_plane(),
            table: &plane.rows,
        }
    }

    /// The blurred background of plane `index` at the plane's full size, as the composite
    /// shows it where the alpha is 0 (for tests).
    pub fn full_plane(&self, index: usize) -> OwnedPlane {
        let plane = &self.planes[index];
        let (width, height) = (plane.columns.width, plane.rows.len());
        let mut out = OwnedPlane::new(width, height, plane.columns.channels);
        let transparent = vec![0u8; width * height];
        composite_plane(
            &mut out.as_plane_mut(),
            1,
            Plane::packed(&transparent, width, height, 1),
            self.background(index),
            None,
        );
        out
    }
}

/// Bilinear rows (half-pixel centres, as `fast_image_resize`'s) from `source` to `target`
/// rows, with 8-bit weights.
fn row_lerps(source: usize, target: usize) -> Vec<RowLerp> {
    let table = LinearTable::new(source, target);
    (0..target)
        .map(|t| RowLerp {
            top: table.index[t],
            bottom: table.next[t],
            weight: (table.weight[t] * 256.0).round() as u16,
        })
        .collect()
}

/// The work-size geometry and weights every plane of a frame is blurred with.
struct Work<'a> {
    weights: &'a [f32],
    width: usize,
    height: usize,
    radius: usize,
}

/// Blurs `plane.work` in place, weighted; `SLOTS` = `CHANNELS` + 1.
fn weighted_blur<const CHANNELS: usize, const SLOTS: usize>(
    plane: &mut BlurredPlane,
    work: &Work,
    scratch: &mut BoxScratch,
) {
    let Work {
        weights,
        width,
        height,
        radius,
    } = *work;
    for ((slots, colour), &weight) in plane
        .weighted
        .chunks_exact_mut(SLOTS)
        .zip(plane.work.data.chunks_exact(CHANNELS))
        .zip(weights)
    {
        for c in 0..CHANNELS {
            slots[c] = colour[c] as f32 * weight;
        }
        slots[CHANNELS] = weight;
    }
    for _ in 0..PASSES {
        box_mean::<SLOTS>(&mut plane.weighted, width, height, radius, scratch);
    }
    for (slots, colour) in plane
        .weighted
        .chunks_exact(SLOTS)
        .zip(plane.work.data.chunks_exact_mut(CHANNELS))
    {
        let inverse = 1.0 / slots[CHANNELS];
        for c in 0..CHANNELS {
            colour[c] = (slots[c] * inverse + 0.5).min(255.0) as u8;
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::model_input::ModelInput;

    /// The frame's planes at `model` size, as the processor hands them to the blur.
    fn small_planes(frame: &FrameMut, model: (usize, usize)) -> Vec<OwnedPlane> {
        let mut input = ModelInput::new(frame.layout, model.0, model.1);
        let mut guide = vec![0.0; model.0 * model.1];
        input.sample(&mut fir::Resizer::new(), frame, &mut guide);
        input.planes().to_vec()
    }

    fn blur_of(frame: &OwnedPlane, person: &[f32], model: (usize, usize)) -> OwnedPlane {
        let layout = PixelLayout::I420;
        let (w, h) = (frame.width, frame.height);
        let mut blur = BlurredBackground::new(layout, w, h, model, 50);
        let mut luma = frame.data.clone();
        let (mut u, mut v) = (vec![128u8; w * h / 4], vec![128u8; w * h / 4]);
        let frame = FrameMut {
            layout,
            width: w,
            height: h,
            planes: [&mut luma, &mut u, &mut v],
            strides: [w, w / 2, w / 2],
        };
        let small = small_planes(&frame, model);
        blur.render(&mut fir::Resizer::new(), &frame, &small, Some(person));
        blur.full_plane(0)
    }

    #[test]
    fn the_person_does_not_bleed_into_the_blurred_background() {
        // Left half background (10), right half a bright person (250) the mask knows.
        let (w, h) = (320, 180);
        let mut frame = OwnedPlane::new(w, h, 1);
        for row in frame.data.chunks_exact_mut(w) {
            for (x, value) in row.iter_mut().enumerate() {
                *value = if x < w / 2 { 10 } else { 250 };
            }
        }
        let model = (32, 18);
        let person: Vec<f32> = (0..model.0 * model.1)
            .map(|i| if i % model.0 < model.0 / 2 { 0.0 } else { 1.0 })
            .collect();
        let blurred = blur_of(&frame, &person, model);
        for y in [0, h / 2, h - 1] {
            // Up to the person's edge (the composite shows the person from there on).
            for x in 0..w / 2 - 2 {
                let value = blurred.data[y * w + x];
                assert!(value.abs_diff(10) <= 3, "x={x} y={y}: {value} has a halo");
            }
        }
    }

    #[test]
    fn a_uniform_background_blurs_and_keeps_its_mean() {
        let (w, h) = (320, 180);
        let mut frame = OwnedPlane::new(w, h, 1);
        for (i, value) in frame.data.iter_mut().enumerate() {
            *value = if (i / 8 + i / w / 8) % 2 == 0 { 0 } else { 200 };
        }
        let model = (32, 18);
        let blurred = blur_of(&frame, &vec![0.0; model.0 * model.1], model);
        let centre = blurred.data[(h / 2) * w + w / 2];
        assert!(
            centre.abs_diff(100) <= 8,
            "8px checkerboard averages out: {centre}"
        );
    }

    #[test]
    fn rows_interpolated_on_the_fly_match_a_full_bilinear_upscale() {
        // What the composite shows against what a full-size bilinear upscale of the blurred
        // work plane (the former background plane) gives.
        let (w, h) = (640, 360);
        let mut data: Vec<u8> = (0..w * h)
            .map(|i| ((i % w) * 255 / w) as u8 ^ (((i / w) / 24 % 2) * 90) as u8)
            .collect();
        let (mut u, mut v) = (vec![128u8; w * h / 4], vec![128u8; w * h / 4]);
        let frame = FrameMut {
            layout: PixelLayout::I420,
            width: w,
            height: h,
            planes: [&mut data, &mut u, &mut v],
            strides: [w, w / 2, w / 2],
        };
        let model = (256, 144);
        let mut blur = BlurredBackground::new(PixelLayout::I420, w, h, model, 50);
        let mut resizer = fir::Resizer::new();
        let small = small_planes(&frame, model);
        let person = vec![0.0; model.0 * model.1];
        blur.render(&mut resizer, &frame, &small, Some(&person));
        let shown = blur.full_plane(0);
        let mut full = OwnedPlane::new(w, h, 1);
        plane::resize(
            &mut resizer,
            blur.planes[0].work.as_plane(),
            &mut full.as_plane_mut(),
            plane::BILINEAR,
        );
        let worst = shown
            .data
            .iter()
            .zip(&full.data)
            .map(|(a, b)| a.abs_diff(*b))
            .max()
            .unwrap();
        assert!(worst <= 2, "differs by up to {worst}");
    }

    #[test]
    fn the_work_size_follows_the_strength_not_the_frame_size() {
        let model = (256, 144);
        let small = BlurredBackground::new(PixelLayout::RGBA, 640, 360, model, 50);
        let large = BlurredBackground::new(PixelLayout::RGBA, 1920, 1080, model, 50);
        assert_eq!(small.work_size(), large.work_size());
        let slight = BlurredBackground::new(PixelLayout::RGBA, 640, 360, model, 5);
        assert!(slight.work_size().1 > small.work_size().1);
    }

    #[test]
    fn the_blur_from_the_model_input_matches_the_blur_from_the_frame() {
        // A person-sized bright block on a textured background, in RGBA.
        let (w, h) = (640, 360);
        let mut data = vec![0u8; w * h * 4];
        for (i, pixel) in data.chunks_exact_mut(4).enumerate() {
            let (x, y) = (i % w, i / w);
            let texture = ((x / 5 + y / 7) % 2 * 120 + x * 100 / w) as u8;
            let person = (260..380).contains(&x) && y > 80;
            pixel.copy_from_slice(&match person {
                true => [240, 200, 180, 255],
                false => [texture, texture / 2, 255 - texture, 255],
            });
        }
        let frame = FrameMut {
            layout: PixelLayout::RGBA,
            width: w,
            height: h,
            planes: [&mut data, &mut [], &mut []],
            strides: [w * 4, 0, 0],
        };
        let model = (256, 144);
        let person: Vec<f32> = (0..model.0 * model.1)
            .map(|i| {
                let (x, y) = (i % model.0, i / model.0);
                ((104..152).contains(&x) && y > 32) as u8 as f32
            })
            .collect();
        let small = small_planes(&frame, model);
        let mut resizer = fir::Resizer::new();
        let mut blurred = [true, false].map(|from_model_input| {
            let mut blur = BlurredBackground::new(PixelLayout::RGBA, w, h, model, 50);
            assert!(blur.uses_model_input());
            blur.from_model_input = from_model_input;
            blur.render(&mut resizer, &frame, &small, Some(&person));
            blur.full_plane(0)
        });
        let [from_small, from_frame] = &mut blurred;
        // Where the composite shows the background: away from the person's block.
        let shown = |i: usize| {
            let (x, y) = (i / 4 % w, i / 4 / w);
            !((250..390).contains(&x) && y >= 70)
        };
        let differences: Vec<u8> = from_small
            .data
            .iter()
            .zip(&from_frame.data)
            .enumerate()
            .filter(|(i, _)| shown(*i))
            .map(|(_, (a, b))| a.abs_diff(*b))
            .collect();
        let worst = *differences.iter().max().unwrap();
        let mean = differences.iter().map(|&d| d as f64).sum::<f64>() / differences.len() as f64;
        assert!(
            worst <= 3 && mean <= 0.5,
            "differs by up to {worst}, {mean:.2} on average"
        );
        // A weak blur needs more than the model input has: it reads the frame.
        assert!(!BlurredBackground::new(PixelLayout::RGBA, w, h, model, 10).uses_model_input());
    }
}

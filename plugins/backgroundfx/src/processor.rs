//! The per-stream background-effect pipeline, free of GStreamer: segmentation, mask
//! refinement, background and composite, with every buffer allocated once per frame size.

use crate::composite::{self, Fit, PlaneBackground, PreparedPicture};
use crate::layout::{FrameMut, PixelLayout, plane_size};
use crate::refine::{AlphaCurve, AlphaUpsampler, GuidedFilter, TemporalFilter};
use crate::resample::{Downsampler, LinearTable, MapResizer, luma};
use crate::segmenter::{ModelError, Segmenter};

#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum Effect {
    /// Leave the frame untouched (alpha output still applies).
    None,
    #[default]
    Blur,
    Solid,
    Picture,
}

/// Everything a caller may change between any two frames.
#[derive(Debug, Clone, PartialEq)]
pub struct Params {
    pub effect: Effect,
    /// 1..=100: blur sigma as a share of the frame height (100 = 1/10 of the height).
    pub blur_strength: u32,
    /// Solid background colour, also the letterbox colour of `Fit::Contain`.
    pub colour: [u8; 3],
    pub threshold: f32,
    pub edge_band: f32,
    pub temporal_smoothing: f32,
    /// Run the model every N frames; reuse the mask (re-fitted to each frame's edges) in between.
    pub inference_interval: u32,
    /// When there is no usable mask, replace the whole frame instead of showing it raw.
    pub fail_closed: bool,
    /// Write the person alpha into the frame's alpha channel (formats with alpha only).
    pub alpha_output: bool,
}

impl Default for Params {
    fn default() -> Self {
        Params {
            effect: Effect::Blur,
            blur_strength: 50,
            colour: [0, 120, 60],
            threshold: 0.5,
            edge_band: 0.4,
            temporal_smoothing: 0.6,
            inference_interval: 1,
            fail_closed: true,
            alpha_output: false,
        }
    }
}

/// What happened to the mask of the last frame.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum MaskSource {
    /// The model ran on this frame.
    Inferred,
    /// The previous mask was reused (inference interval), refitted to this frame.
    Reused,
    /// No usable mask; the frame was handled per `fail_closed`.
    Unavailable,
    /// Nothing was done (effect none without alpha output).
    Skipped,
}

/// Guided filter radius in model pixels and regularisation (luma in [0, 1]).
const GUIDE_RADIUS: usize = 2;
const GUIDE_EPSILON: f32 = 2e-3;
/// Blur work resolution: about this many rows, whatever the frame height.
const BLUR_WORK_ROWS: usize = 180;
const BLUR_PASSES: usize = 3;

struct BlurPlane {
    sampler: Downsampler,
    work: Vec<f32>,
    columns: LinearTable,
    rows: LinearTable,
}

/// Per-stream state. Create one per frame geometry (`Processor::new` again on caps change).
pub struct Processor {
    layout: PixelLayout,
    width: usize,
    height: usize,
    model_width: usize,
    model_height: usize,
    model_sampler: Downsampler,
    model_input: Vec<f32>,
    guide: Vec<f32>,
    mask: Vec<f32>,
    mask_valid: bool,
    frames_since_inference: u32,
    temporal: TemporalFilter,
    guided: GuidedFilter,
    upsampler: AlphaUpsampler,
    alpha: Vec<u8>,
    curve: (f32, f32, AlphaCurve),
    work_width: usize,
    work_height: usize,
    work_weight: Vec<f32>,
    mask_to_work: MapResizer,
    blur_planes: Vec<BlurPlane>,
    blur_scratch: Vec<f32>,
    picture: Option<PreparedPicture>,
}

impl Processor {
    /// `model_size` is the segmenter's input size (width, height).
    pub fn new(
        layout: PixelLayout,
        width: usize,
        height: usize,
        model_size: (usize, usize),
    ) -> Self {
        let (model_width, model_height) = model_size;
        let downscale = (height as f32 / BLUR_WORK_ROWS as f32)
            .round()
            .clamp(1.0, 8.0) as usize;
        let work_width = width.div_ceil(downscale).max(1);
        let work_height = height.div_ceil(downscale).max(1);
        let blur_planes = layout
            .planes()
            .iter()
            .map(|shape| {
                let (pw, ph) = plane_size(*shape, width, height);
                BlurPlane {
                    sampler: Downsampler::new(pw, ph, work_width, work_height),
                    work: vec![0.0; work_width * work_height * (shape.channels + 1)],
                    columns: LinearTable::new(work_width, pw),
                    rows: LinearTable::new(work_height, ph),
                }
            })
            .collect();
        let params = Params::default();
        Processor {
            layout,
            width,
            height,
            model_width,
            model_height,
            model_sampler: Downsampler::new(width, height, model_width, model_height),
            model_input: vec![0.0; 3 * model_width * model_height],
            guide: vec![0.0; model_width * model_height],
            mask: vec![0.0; model_width * model_height],
            mask_valid: false,
            frames_since_inference: 0,
            temporal: TemporalFilter::default(),
            guided: GuidedFilter::new(model_width, model_height),
            upsampler: AlphaUpsampler::new(model_width, model_height, width, height),
            alpha: vec![0; width * height],
            curve: (
                params.threshold,
                params.edge_band,
                AlphaCurve::new(params.threshold, params.edge_band),
            ),
            work_width,
            work_height,
            work_weight: vec![0.0; work_width * work_height],
            mask_to_work: MapResizer::new(model_width, model_height, work_width, work_height),
            blur_planes,
            blur_scratch: Vec::new(),
            picture: None,
        }
    }

    pub fn layout(&self) -> PixelLayout {
        self.layout
    }

    pub fn size(&self) -> (usize, usize) {
        (self.width, self.height)
    }

    pub fn model_size(&self) -> (usize, usize) {
        (self.model_width, self.model_height)
    }

    /// Forget the temporal history (after a seek, flush or discontinuity).
    pub fn reset(&mut self) {
        self.temporal.reset();
        self.mask_valid = false;
        self.frames_since_inference = 0;
    }

    /// Sets (or clears) the background picture, prepared for this frame geometry.
    pub fn set_picture(&mut self, picture: Option<&image::RgbaImage>, fit: Fit, fill: [u8; 3]) {
        self.picture = picture.map(|picture| {
            composite::prepare_picture(picture, fit, fill, self.layout, self.width, self.height)
        });
    }

    pub fn has_picture(&self) -> bool {
        self.picture.is_some()
    }

    /// The full-resolution person alpha of the last processed frame (row-major bytes).
    pub fn alpha(&self) -> &[u8] {
        &self.alpha
    }

    /// Processes one frame in place. `segmenter` is `None` when no model could be loaded.
    /// Returns where the mask came from, and the inference error if the model failed.
    pub fn process(
        &mut self,
        frame: &mut FrameMut,
        params: &Params,
        segmenter: Option<&mut Segmenter>,
    ) -> (MaskSource, Option<ModelError>) {
        debug_assert_eq!(
            (frame.width, frame.height, frame.layout),
            (self.width, self.height, self.layout)
        );
        if params.effect == Effect::None && !params.alpha_output {
            return (MaskSource::Skipped, None);
        }
        let (source, error) = self.update_mask(frame, params, segmenter);
        if source == MaskSource::Unavailable && !params.fail_closed {
            return (source, error);
        }
        self.render_alpha(frame, params, source);
        self.composite(frame, params);
        (source, error)
    }

    fn update_mask(
        &mut self,
        frame: &FrameMut,
        params: &Params,
        segmenter: Option<&mut Segmenter>,
    ) -> (MaskSource, Option<ModelError>) {
        self.model_sampler
            .model_input(frame, &mut self.model_input, &mut self.guide);
        let interval = params.inference_interval.max(1);
        let due = !self.mask_valid || self.frames_since_inference + 1 >= interval;
        if !due {
            self.frames_since_inference += 1;
            return (MaskSource::Reused, None);
        }
        let Some(segmenter) = segmenter else {
            self.mask_valid = false;
            return (MaskSource::Unavailable, None);
        };
        let input = &self.model_input;
        match segmenter.run(|tensor| tensor.copy_from_slice(input), &mut self.mask) {
            Ok(()) => {
                self.temporal
                    .apply(&mut self.mask, params.temporal_smoothing);
                self.mask_valid = true;
                self.frames_since_inference = 0;
                (MaskSource::Inferred, None)
            }
            Err(error) => {
                self.mask_valid = false;
                self.temporal.reset();
                (MaskSource::Unavailable, Some(error))
            }
        }
    }

    fn render_alpha(&mut self, frame: &FrameMut, params: &Params, source: MaskSource) {
        if source == MaskSource::Unavailable {
            self.alpha.fill(0);
            return;
        }
        self.guided
            .compute(&self.guide, &self.mask, GUIDE_RADIUS, GUIDE_EPSILON);
        if (self.curve.0, self.curve.1) != (params.threshold, params.edge_band) {
            self.curve = (
                params.threshold,
                params.edge_band,
                AlphaCurve::new(params.threshold, params.edge_band),
            );
        }
        let plane = &*frame.planes[0];
        let stride = frame.strides[0];
        match self.layout {
            PixelLayout::Packed {
                red, green, blue, ..
            } => self.upsampler.render(
                &self.guided.coefficients,
                &self.curve.2,
                |y, x| {
                    let p = &plane[y * stride + x * 4..][..4];
                    luma(p[red], p[green], p[blue])
                },
                &mut self.alpha,
            ),
            PixelLayout::I420 | PixelLayout::Nv12 => self.upsampler.render(
                &self.guided.coefficients,
                &self.curve.2,
                |y, x| plane[y * stride + x],
                &mut self.alpha,
            ),
        }
    }

    fn prepare_blur(&mut self, frame: &FrameMut, params: &Params) {
        self.mask_to_work.resize(&self.mask, &mut self.work_weight);
        if !self.mask_valid {
            self.work_weight.fill(1.0);
        }
        // sigma as a share of the frame height; 3 box passes of radius r ~ sigma r.
        let sigma_full = params.blur_strength.clamp(1, 100) as f32 / 1000.0 * self.height as f32;
        let sigma_work = sigma_full * self.work_height as f32 / self.height as f32;
        let radius = (sigma_work.round() as usize).max(1);
        for (index, (plane, shape)) in self
            .blur_planes
            .iter_mut()
            .zip(self.layout.planes())
            .enumerate()
        {
            let channels = shape.channels;
            plane.sampler.plane_with_weight_slot(
                frame.planes[index],
                frame.strides[index],
                channels,
                &mut plane.work,
            );
            for (pixel, person) in plane
                .work
                .chunks_exact_mut(channels + 1)
                .zip(&self.work_weight)
            {
                let background = 1.0 - person;
                pixel[channels] = background * background;
            }
            composite::weighted_blur(
                &mut plane.work,
                self.work_width,
                self.work_height,
                channels,
                radius,
                BLUR_PASSES,
                &mut self.blur_scratch,
            );
        }
    }

    fn composite(&mut self, frame: &mut FrameMut, params: &Params) {
        if params.effect == Effect::Blur {
            self.prepare_blur(frame, params);
        }
        let alpha_byte = match self.layout {
            PixelLayout::Packed {
                alpha: Some(alpha), ..
            } if params.alpha_output => Some(alpha),
            _ => None,
        };
        let solid = self.layout.colour_values(params.colour);
        for (index, shape) in self.layout.planes().iter().enumerate() {
            let background = match params.effect {
                Effect::None => PlaneBackground::Keep,
                Effect::Solid => PlaneBackground::Solid(solid[index]),
                Effect::Picture => match &self.picture {
                    Some(picture) => PlaneBackground::Image {
                        data: &picture.planes[index],
                        stride: picture.strides[index],
                    },
                    None => PlaneBackground::Solid(solid[index]),
                },
                Effect::Blur => {
                    let plane = &self.blur_planes[index];
                    PlaneBackground::Blurred {
                        work: &plane.work,
                        work_width: self.work_width,
                        columns: &plane.columns,
                        rows: &plane.rows,
                    }
                }
            };
            composite::composite_plane(
                frame.planes[index],
                frame.strides[index],
                *shape,
                self.width,
                self.height,
                &self.alpha,
                &background,
                alpha_byte,
            );
        }
    }
}

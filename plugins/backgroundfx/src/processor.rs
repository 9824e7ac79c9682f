//! The per-stream background-effect pipeline, free of GStreamer: model input, segmentation
//! (every N frames, or when the picture changed), mask refinement, background and
//! composite, with every buffer allocated once per frame size.

use std::time::Instant;

use fast_image_resize as fir;

use crate::blur::BlurredBackground;
use crate::composite::{self, PlaneBackground};
use crate::layout::{FrameMut, PixelLayout, plane_size};
use crate::model_input::ModelInput;
use crate::picture::{self, Fit, PreparedPicture};
use crate::plane::Plane;
use crate::refine::{AlphaCurve, AlphaUpsampler, GuidedFilter, TemporalFilter};
use crate::resample::luma_row;
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
    /// Run the model every N frames; reuse the mask (re-fitted to each frame's edges) in
    /// between. 0 = automatic: run it when the picture changed, and at least every
    /// `max_inference_interval` frames.
    pub inference_interval: u32,
    /// The longest a mask is reused in automatic mode, in frames.
    pub max_inference_interval: u32,
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
            max_inference_interval: 10,
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
    /// The previous mask was reused (inference interval, or automatic mode and the picture
    /// did not change), refitted to this frame.
    Reused,
    /// No usable mask; the frame was handled per `fail_closed`.
    Unavailable,
    /// Nothing was done (effect none without alpha output).
    Skipped,
}

/// Time spent per stage and what happened to the masks, since the processor was created.
/// Cheap enough to keep always on (a few clock reads per frame).
#[derive(Debug, Clone, Copy, Default, PartialEq)]
pub struct Stats {
    pub frames: u64,
    pub inferences: u64,
    pub reused_masks: u64,
    pub unavailable_masks: u64,
    /// Seconds in each stage, summed over all frames.
    pub model_input_s: f64,
    pub inference_s: f64,
    pub refine_s: f64,
    pub background_s: f64,
    pub composite_s: f64,
}

impl Stats {
    /// Adds the counts and times of `other` (a processor replaced on a caps change).
    pub fn add(&mut self, other: &Stats) {
        self.frames += other.frames;
        self.inferences += other.inferences;
        self.reused_masks += other.reused_masks;
        self.unavailable_masks += other.unavailable_masks;
        self.model_input_s += other.model_input_s;
        self.inference_s += other.inference_s;
        self.refine_s += other.refine_s;
        self.background_s += other.background_s;
        self.composite_s += other.composite_s;
    }

    /// Mean milliseconds per frame of (model input, inference, refinement, background,
    /// composite); inference is averaged over all frames, not only those that ran it.
    pub fn mean_ms(&self) -> [f64; 5] {
        let frames = self.frames.max(1) as f64;
        [
            self.model_input_s,
            self.inference_s,
            self.refine_s,
            self.background_s,
            self.composite_s,
        ]
        .map(|s| s * 1000.0 / frames)
    }
}

/// Guided filter radius in model pixels and regularisation (luma in [0, 1]).
const GUIDE_RADIUS: usize = 2;
const GUIDE_EPSILON: f32 = 2e-3;
/// Automatic inference: a model pixel whose luma moved by more than this since the last
/// inference has changed...
const CHANGE_LEVEL: f32 = 18.0 / 255.0;
/// ...and the model runs again when this share of the pixels has changed.
const CHANGED_SHARE: f32 = 0.05;

/// Per-stream state. Create one per frame geometry (`Processor::new` again on caps change).
pub struct Processor {
    layout: PixelLayout,
    width: usize,
    height: usize,
    model_width: usize,
    model_height: usize,
    resizer: fir::Resizer,
    model_input: ModelInput,
    guide: Vec<f32>,
    /// The guide of the frame the mask was inferred on (automatic inference compares to it).
    inferred_guide: Vec<f32>,
    mask: Vec<f32>,
    mask_valid: bool,
    frames_since_inference: u32,
    temporal: TemporalFilter,
    guided: GuidedFilter,
    upsampler: AlphaUpsampler,
    alpha: Vec<u8>,
    curve: (f32, f32, AlphaCurve),
    blur: Option<BlurredBackground>,
    /// One row of the solid colour per plane, and the colour it was made for.
    solid_rows: (Option<[u8; 3]>, Vec<Vec<u8>>),
    picture: Option<PreparedPicture>,
    stats: Stats,
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
        let params = Params::default();
        Processor {
            layout,
            width,
            height,
            model_width,
            model_height,
            resizer: fir::Resizer::new(),
            model_input: ModelInput::new(layout, model_width, model_height),
            guide: vec![0.0; model_width * model_height],
            inferred_guide: vec![0.0; model_width * model_height],
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
            blur: None,
            solid_rows: (None, Vec::new()),
            picture: None,
            stats: Stats::default(),
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

    pub fn stats(&self) -> &Stats {
        &self.stats
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
            picture::prepare_picture(picture, fit, fill, self.layout, self.width, self.height)
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
        self.stats.frames += 1;
        let (source, error) = self.update_mask(frame, params, segmenter);
        match source {
            MaskSource::Inferred => self.stats.inferences += 1,
            MaskSource::Reused => self.stats.reused_masks += 1,
            _ => self.stats.unavailable_masks += 1,
        }
        if source == MaskSource::Unavailable && !params.fail_closed {
            return (source, error);
        }
        let start = Instant::now();
        self.render_alpha(frame, params, source);
        let rendered = Instant::now();
        self.stats.refine_s += (rendered - start).as_secs_f64();
        self.prepare_background(frame, params);
        let prepared = Instant::now();
        self.stats.background_s += (prepared - rendered).as_secs_f64();
        self.composite(frame, params);
        self.stats.composite_s += prepared.elapsed().as_secs_f64();
        (source, error)
    }

    /// Whether the model must run on this frame.
    fn inference_due(&self, params: &Params) -> bool {
        if !self.mask_valid {
            return true;
        }
        let next = self.frames_since_inference + 1;
        if params.inference_interval > 0 {
            return next >= params.inference_interval;
        }
        if next >= params.max_inference_interval.max(1) {
            return true;
        }
        let changed = self
            .guide
            .iter()
            .zip(&self.inferred_guide)
            .filter(|(now, then)| (*now - *then).abs() > CHANGE_LEVEL)
            .count();
        changed as f32 > CHANGED_SHARE * self.guide.len() as f32
    }

    fn update_mask(
        &mut self,
        frame: &FrameMut,
        params: &Params,
        segmenter: Option<&mut Segmenter>,
    ) -> (MaskSource, Option<ModelError>) {
        let start = Instant::now();
        self.model_input
            .sample(&mut self.resizer, frame, &mut self.guide);
        // The frame difference of automatic inference counts as model input.
        let due = self.inference_due(params);
        let sampled = Instant::now();
        self.stats.model_input_s += (sampled - start).as_secs_f64();
        if !due {
            self.frames_since_inference += 1;
            return (MaskSource::Reused, None);
        }
        let Some(segmenter) = segmenter else {
            self.mask_valid = false;
            return (MaskSource::Unavailable, None);
        };
        let input = &self.model_input;
        let result = segmenter.run(|tensor| input.fill(tensor), &mut self.mask);
        let inferred = Instant::now();
        self.stats.inference_s += (inferred - sampled).as_secs_f64();
        match result {
            Ok(()) => {
                // Temporal smoothing is part of the mask refinement.
                self.temporal
                    .apply(&mut self.mask, params.temporal_smoothing);
                self.stats.refine_s += inferred.elapsed().as_secs_f64();
                self.inferred_guide.copy_from_slice(&self.guide);
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
        let plane = frame.plane(0);
        match self.layout {
            PixelLayout::Packed {
                red, green, blue, ..
            } => self.upsampler.render(
                &self.guided.coefficients,
                &self.curve.2,
                |y, span, out| {
                    let pixels = &plane.row(y)[span.start * 4..span.end * 4];
                    luma_row(pixels, [red, green, blue], out);
                },
                &mut self.alpha,
            ),
            PixelLayout::I420 | PixelLayout::Nv12 => self.upsampler.render(
                &self.guided.coefficients,
                &self.curve.2,
                |y, span, out| out.copy_from_slice(&plane.row(y)[span]),
                &mut self.alpha,
            ),
        }
    }

    /// The blurred frame or the solid rows, whichever the effect needs.
    fn prepare_background(&mut self, frame: &FrameMut, params: &Params) {
        match params.effect {
            Effect::Blur => {
                let strength = params.blur_strength.clamp(1, 100);
                if self.blur.as_ref().is_none_or(|b| b.strength() != strength) {
                    self.blur = Some(BlurredBackground::new(
                        self.layout,
                        self.width,
                        self.height,
                        (self.model_width, self.model_height),
                        strength,
                    ));
                }
                let person = self.mask_valid.then_some(&self.mask[..]);
                let blur = self.blur.as_mut().expect("created above");
                blur.render(&mut self.resizer, frame, self.model_input.planes(), person);
            }
            Effect::Solid | Effect::Picture if self.solid_rows.0 != Some(params.colour) => {
                let values = self.layout.colour_values(params.colour);
                let rows = self
                    .layout
                    .planes()
                    .iter()
                    .enumerate()
                    .map(|(index, shape)| {
                        let (width, _) = plane_size(*shape, self.width, self.height);
                        values[index][..shape.channels].repeat(width)
                    })
                    .collect();
                self.solid_rows = (Some(params.colour), rows);
            }
            _ => {}
        }
    }

    fn composite(&mut self, frame: &mut FrameMut, params: &Params) {
        let alpha_byte = match self.layout {
            PixelLayout::Packed {
                alpha: Some(alpha), ..
            } if params.alpha_output => Some(alpha),
            _ => None,
        };
        let alpha = Plane::packed(&self.alpha, self.width, self.height, 1);
        for (index, shape) in self.layout.planes().iter().enumerate() {
            let solid = || PlaneBackground::Row(&self.solid_rows.1[index]);
            let background = match params.effect {
                Effect::None => PlaneBackground::Keep,
                Effect::Solid => solid(),
                Effect::Picture => match &self.picture {
                    Some(picture) => PlaneBackground::Image(picture.planes[index].as_plane()),
                    None => solid(),
                },
                Effect::Blur => match &self.blur {
                    Some(blur) => blur.background(index),
                    None => PlaneBackground::Keep,
                },
            };
            composite::composite_plane(
                &mut frame.plane_mut(index),
                shape.subsampling,
                alpha,
                background,
                alpha_byte,
            );
        }
    }
}

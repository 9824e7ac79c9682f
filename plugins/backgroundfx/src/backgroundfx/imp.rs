//! GStreamer glue for `backgroundfx`: properties, caps, state changes. The work is done by
//! `crate::processor::Processor` and `crate::segmenter::Segmenter`.
//!
//! Locks: `settings` and `state` are never held together — the settings are cloned (a
//! snapshot) and released before `state` is taken. The process-wide plan cache
//! (`segmenter::PLANS`) is taken only inside `Segmenter::from_bytes`, possibly while `state`
//! is held, never the other way round; the model loader thread takes neither element lock.

use std::path::PathBuf;
use std::sync::{LazyLock, Mutex, MutexGuard};

use gst::glib;
use gst::prelude::*;
use gst::subclass::prelude::*;
use gst_base::subclass::prelude::*;
use gst_video::prelude::*;
use gst_video::subclass::prelude::*;

use super::{Effect, PictureFit};
use crate::layout::{FrameMut, PixelLayout};
use crate::picture::Fit;
use crate::processor::{self, MaskSource, Params, Processor, Stats};
use crate::segmenter::{ModelError, Segmenter};

static CAT: LazyLock<gst::DebugCategory> = LazyLock::new(|| {
    gst::DebugCategory::new(
        "backgroundfx",
        gst::DebugColorFlags::empty(),
        Some("Person segmentation and background replacement"),
    )
});

/// The landscape model shipped in `models/`, built into the plugin so that the element
/// works wherever the `.so` is copied.
static BUILTIN_MODEL: &[u8] =
    include_bytes!("../../../../models/selfie_segmentation_landscape.onnx");
const BUILTIN_MODEL_NAME: &str = "built-in selfie_segmentation_landscape.onnx";

const MAX_INFERENCE_INTERVAL: u32 = 30;

#[derive(Debug, Clone, PartialEq)]
struct Settings {
    effect: Effect,
    blur_strength: u32,
    color: u32,
    picture: Option<PathBuf>,
    picture_fit: PictureFit,
    model: Option<PathBuf>,
    threshold: f32,
    edge_band: f32,
    temporal_smoothing: f32,
    inference_interval: u32,
    max_inference_interval: u32,
    fail_closed: bool,
    alpha_output: bool,
}

impl Default for Settings {
    fn default() -> Self {
        let params = Params::default();
        Settings {
            effect: Effect::Blur,
            blur_strength: params.blur_strength,
            color: 0xff00_0000
                | (params.colour[0] as u32) << 16
                | (params.colour[1] as u32) << 8
                | params.colour[2] as u32,
            picture: None,
            picture_fit: PictureFit::Cover,
            model: None,
            threshold: params.threshold,
            edge_band: params.edge_band,
            temporal_smoothing: params.temporal_smoothing,
            inference_interval: params.inference_interval,
            max_inference_interval: params.max_inference_interval,
            fail_closed: params.fail_closed,
            alpha_output: params.alpha_output,
        }
    }
}

impl Settings {
    fn params(&self) -> Params {
        Params {
            effect: match self.effect {
                Effect::None => processor::Effect::None,
                Effect::Blur => processor::Effect::Blur,
                Effect::Solid => processor::Effect::Solid,
                Effect::Picture => processor::Effect::Picture,
            },
            blur_strength: self.blur_strength,
            colour: self.rgb(),
            threshold: self.threshold,
            edge_band: self.edge_band,
            temporal_smoothing: self.temporal_smoothing,
            inference_interval: self.inference_interval,
            max_inference_interval: self.max_inference_interval,
            fail_closed: self.fail_closed,
            alpha_output: self.alpha_output,
        }
    }

    fn rgb(&self) -> [u8; 3] {
        [
            (self.color >> 16) as u8,
            (self.color >> 8) as u8,
            self.color as u8,
        ]
    }

    fn fit(&self) -> Fit {
        match self.picture_fit {
            PictureFit::Cover => Fit::Cover,
            PictureFit::Contain => Fit::Contain,
            PictureFit::Stretch => Fit::Stretch,
        }
    }

    fn passthrough(&self) -> bool {
        self.effect == Effect::None && !self.alpha_output
    }
}

/// The loaded model, keyed by the `model` property it was loaded for.
struct LoadedModel {
    source: Option<PathBuf>,
    segmenter: Option<Segmenter>,
}

/// A model being loaded off the streaming thread.
struct PendingModel {
    source: Option<PathBuf>,
    handle: std::thread::JoinHandle<Result<Segmenter, ModelError>>,
}

/// The decoded picture, keyed by its path, and what it was last prepared for.
struct LoadedPicture {
    path: PathBuf,
    image: image::RgbaImage,
}

#[derive(Default)]
struct State {
    model: Option<LoadedModel>,
    pending_model: Option<PendingModel>,
    picture: Option<LoadedPicture>,
    /// (picture path, fit, colour) the processor's picture was prepared with.
    prepared_picture: Option<(PathBuf, Fit, [u8; 3])>,
    processor: Option<Processor>,
    info: Option<gst_video::VideoInfo>,
    warned_inference: bool,
    /// A picture path that failed to load while streaming: not retried every frame.
    failed_picture: Option<PathBuf>,
    /// Statistics of the processors replaced since start (caps changes).
    earlier_stats: Stats,
}

#[derive(Default)]
pub struct BackgroundFx {
    settings: Mutex<Settings>,
    state: Mutex<State>,
}

fn lock<T>(mutex: &Mutex<T>) -> MutexGuard<'_, T> {
    mutex
        .lock()
        .unwrap_or_else(|poisoned| poisoned.into_inner())
}

fn load_picture(path: &PathBuf) -> Result<image::RgbaImage, String> {
    let reader = image::ImageReader::open(path)
        .map_err(|e| format!("cannot read picture '{}': {e}", path.display()))?
        .with_guessed_format()
        .map_err(|e| format!("cannot read picture '{}': {e}", path.display()))?;
    let decoded = reader
        .decode()
        .map_err(|e| format!("cannot decode picture '{}': {e}", path.display()))?;
    Ok(decoded.to_rgba8())
}

fn layout_for(format: gst_video::VideoFormat) -> Option<PixelLayout> {
    use gst_video::VideoFormat as F;
    let packed = |red, green, blue, alpha| {
        Some(PixelLayout::Packed {
            red,
            green,
            blue,
            alpha,
        })
    };
    match format {
        F::Rgba => packed(0, 1, 2, Some(3)),
        F::Bgra => packed(2, 1, 0, Some(3)),
        F::Argb => packed(1, 2, 3, Some(0)),
        F::Abgr => packed(3, 2, 1, Some(0)),
        F::Rgbx => packed(0, 1, 2, None),
        F::Bgrx => packed(2, 1, 0, None),
        F::Xrgb => packed(1, 2, 3, None),
        F::Xbgr => packed(3, 2, 1, None),
        F::I420 => Some(PixelLayout::I420),
        F::Nv12 => Some(PixelLayout::Nv12),
        _ => None,
    }
}

const FORMATS: &[gst_video::VideoFormat] = {
    use gst_video::VideoFormat as F;
    &[
        F::Rgba,
        F::Bgra,
        F::Argb,
        F::Abgr,
        F::Rgbx,
        F::Bgrx,
        F::Xrgb,
        F::Xbgr,
        F::I420,
        F::Nv12,
    ]
};

impl BackgroundFx {
    /// Loads the model named by the settings unless it is already loaded. A model that
    /// cannot be loaded leaves no segmenter: frames are then handled per `fail-closed` (the
    /// whole frame replaced, or passed through), and the stream goes on, so this is a
    /// WARNING with a `backgroundfx-model-unavailable` element message, never an ERROR (an
    /// element that posts an error must stop the stream).
    ///
    /// At start (`wait`) the model is loaded at once. While streaming, a changed `model`
    /// is loaded and optimised on a thread of its own; the old model keeps working until
    /// the new one is ready (loading takes ~100 ms, a frame has ~33 ms).
    fn ensure_model(&self, state: &mut State, settings: &Settings, wait: bool) {
        if let Some(loaded) = &state.model
            && loaded.source == settings.model
        {
            state.pending_model = None;
            return;
        }
        let load = |source: Option<PathBuf>| match &source {
            Some(path) => Segmenter::from_file(path),
            None => Segmenter::from_bytes(BUILTIN_MODEL, BUILTIN_MODEL_NAME),
        };
        if wait {
            let result = load(settings.model.clone());
            self.install_model(state, settings, result);
            return;
        }
        match state.pending_model.take() {
            Some(pending) if pending.source == settings.model && pending.handle.is_finished() => {
                let result = pending.handle.join().unwrap_or_else(|_| {
                    Err(ModelError::Inference("the model loader crashed".into()))
                });
                self.install_model(state, settings, result);
            }
            Some(pending) if pending.source == settings.model => {
                state.pending_model = Some(pending);
            }
            // Nothing pending, or a load for a model no longer wanted (it finishes alone).
            _ => {
                let source = settings.model.clone();
                let spawned = std::thread::Builder::new()
                    .name("backgroundfx-model".into())
                    .spawn({
                        let source = source.clone();
                        move || load(source)
                    });
                match spawned {
                    Ok(handle) => {
                        gst::debug!(
                            CAT,
                            imp = self,
                            "loading model {source:?} in the background"
                        );
                        state.pending_model = Some(PendingModel { source, handle });
                    }
                    Err(error) => {
                        let result = Err(ModelError::Inference(format!(
                            "cannot start the model loader: {error}"
                        )));
                        self.install_model(state, settings, result);
                    }
                }
            }
        }
    }

    fn install_model(
        &self,
        state: &mut State,
        settings: &Settings,
        result: Result<Segmenter, ModelError>,
    ) {
        let segmenter = match result {
            Ok(segmenter) => {
                gst::info!(
                    CAT,
                    imp = self,
                    "loaded model {} ({}x{})",
                    segmenter.path().display(),
                    segmenter.width(),
                    segmenter.height()
                );
                Some(segmenter)
            }
            Err(error) => {
                let consequence = if settings.fail_closed {
                    "the whole frame is replaced (fail-closed)"
                } else {
                    "frames pass through unprocessed (fail-closed=false)"
                };
                gst::element_imp_warning!(
                    self,
                    gst::ResourceError::OpenRead,
                    ("{error}; {consequence}")
                );
                let structure = gst::Structure::builder("backgroundfx-model-unavailable")
                    .field(
                        "model",
                        settings
                            .model
                            .as_ref()
                            .map(|p| p.display().to_string())
                            .unwrap_or_else(|| BUILTIN_MODEL_NAME.into()),
                    )
                    .field("error", error.to_string())
                    .field("fail-closed", settings.fail_closed)
                    .build();
                let _ = self.obj().post_message(
                    gst::message::Element::builder(structure)
                        .src(&*self.obj())
                        .build(),
                );
                None
            }
        };
        state.model = Some(LoadedModel {
            source: settings.model.clone(),
            segmenter,
        });
    }

    /// Loads the picture if its path changed. At start-up a failure is returned (the state
    /// change fails); while streaming it is posted as a warning and the old picture stays.
    fn ensure_picture(&self, state: &mut State, settings: &Settings) -> Result<(), String> {
        let Some(path) = &settings.picture else {
            state.picture = None;
            return Ok(());
        };
        if state.picture.as_ref().is_some_and(|p| &p.path == path)
            || state.failed_picture.as_ref() == Some(path)
        {
            return Ok(());
        }
        let image = load_picture(path)?;
        gst::info!(
            CAT,
            imp = self,
            "loaded picture {} ({}x{})",
            path.display(),
            image.width(),
            image.height()
        );
        state.picture = Some(LoadedPicture {
            path: path.clone(),
            image,
        });
        Ok(())
    }

    fn ensure_processor(&self, state: &mut State, settings: &Settings) {
        let Some(info) = state.info.clone() else {
            return;
        };
        let model_size = state
            .model
            .as_ref()
            .and_then(|m| m.segmenter.as_ref())
            .map(|s| (s.width(), s.height()))
            .or_else(|| state.processor.as_ref().map(|p| p.model_size()))
            .unwrap_or((256, 144));
        let rebuild = state
            .processor
            .as_ref()
            .is_none_or(|p| p.model_size() != model_size);
        if rebuild {
            let Some(layout) = layout_for(info.format()) else {
                return;
            };
            if let Some(old) = &state.processor {
                state.earlier_stats.add(old.stats());
            }
            state.processor = Some(Processor::new(
                layout,
                info.width() as usize,
                info.height() as usize,
                model_size,
            ));
            state.prepared_picture = None;
        }
        let wanted = state
            .picture
            .as_ref()
            .map(|p| (p.path.clone(), settings.fit(), settings.rgb()));
        if wanted != state.prepared_picture {
            let processor = state.processor.as_mut().expect("created above");
            processor.set_picture(
                state.picture.as_ref().map(|p| &p.image),
                settings.fit(),
                settings.rgb(),
            );
            state.prepared_picture = wanted;
        }
    }

    fn stats(&self) -> gst::Structure {
        let state = lock(&self.state);
        let mut stats = state.earlier_stats;
        if let Some(processor) = &state.processor {
            stats.add(processor.stats());
        }
        drop(state);
        let [model_input, inference, refine, background, composite] = stats.mean_ms();
        gst::Structure::builder("backgroundfx-stats")
            .field("frames", stats.frames)
            .field("inferences", stats.inferences)
            .field("reused-masks", stats.reused_masks)
            .field("unavailable-masks", stats.unavailable_masks)
            .field("model-input-ms", model_input)
            .field("inference-ms", inference)
            .field("refine-ms", refine)
            .field("background-ms", background)
            .field("composite-ms", composite)
            .build()
    }

    fn clamped<T: PartialOrd + Copy + std::fmt::Debug>(
        &self,
        name: &str,
        value: T,
        low: T,
        high: T,
    ) -> T {
        let clamped = if value < low {
            low
        } else if value > high {
            high
        } else {
            value
        };
        if clamped != value {
            gst::warning!(
                CAT,
                imp = self,
                "{name}={value:?} is outside {low:?}..={high:?}, using {clamped:?}"
            );
        }
        clamped
    }
}

#[glib::object_subclass]
impl ObjectSubclass for BackgroundFx {
    const NAME: &'static str = "GstBackgroundFx";
    type Type = super::BackgroundFx;
    type ParentType = gst_video::VideoFilter;
}

impl ObjectImpl for BackgroundFx {
    fn properties() -> &'static [glib::ParamSpec] {
        static PROPERTIES: LazyLock<Vec<glib::ParamSpec>> = LazyLock::new(|| {
            let defaults = Settings::default();
            let changeable = glib::ParamFlags::READWRITE | gst::PARAM_FLAG_MUTABLE_PLAYING;
            vec![
                glib::ParamSpecEnum::builder_with_default("effect", defaults.effect)
                    .nick("Effect")
                    .blurb("What replaces the background around the person")
                    .flags(changeable)
                    .build(),
                glib::ParamSpecUInt::builder("blur-strength")
                    .nick("Blur strength")
                    .blurb("Background blur, 1 (slight) to 100 (blur sigma = 1/10 of the frame height); out-of-range values are clamped")
                    .default_value(defaults.blur_strength)
                    .flags(changeable)
                    .build(),
                glib::ParamSpecUInt::builder("color")
                    .nick("Color")
                    .blurb("Background colour for effect=solid and the letterbox of picture-fit=contain, as 0xAARRGGBB (alpha ignored: the background is opaque)")
                    .default_value(defaults.color)
                    .flags(changeable)
                    .build(),
                glib::ParamSpecString::builder("picture")
                    .nick("Picture")
                    .blurb("PNG or JPEG file for effect=picture; its transparency shows the color. Unreadable at start: the state change fails")
                    .flags(changeable)
                    .build(),
                glib::ParamSpecEnum::builder_with_default("picture-fit", defaults.picture_fit)
                    .nick("Picture fit")
                    .blurb("How the picture is fitted to the frame")
                    .flags(changeable)
                    .build(),
                glib::ParamSpecString::builder("model")
                    .nick("Model")
                    .blurb("Segmentation model (.onnx, input [1,3,H,W] RGB 0..1, output [1,1,H,W] person probability); unset: the built-in MediaPipe landscape model")
                    .flags(changeable)
                    .build(),
                glib::ParamSpecFloat::builder("threshold")
                    .nick("Threshold")
                    .blurb("Person probability at which a pixel counts as half person")
                    .minimum(f32::MIN)
                    .maximum(f32::MAX)
                    .default_value(defaults.threshold)
                    .flags(changeable)
                    .build(),
                glib::ParamSpecFloat::builder("edge-band")
                    .nick("Edge band")
                    .blurb("Width of the soft edge in probability around the threshold (0 = hard edge, 1 = softest)")
                    .minimum(f32::MIN)
                    .maximum(f32::MAX)
                    .default_value(defaults.edge_band)
                    .flags(changeable)
                    .build(),
                glib::ParamSpecFloat::builder("temporal-smoothing")
                    .nick("Temporal smoothing")
                    .blurb("0 = none; up to 1 = uncertain mask pixels keep their previous value (against flicker); confident pixels always follow at once")
                    .minimum(f32::MIN)
                    .maximum(f32::MAX)
                    .default_value(defaults.temporal_smoothing)
                    .flags(changeable)
                    .build(),
                glib::ParamSpecUInt::builder("inference-interval")
                    .nick("Inference interval")
                    .blurb("Run the model every N frames (1..30); in between, the last mask is re-fitted to each frame's edges. 0 = automatic: run it when the picture changed (a cheap low-resolution difference), and at least every max-inference-interval frames")
                    .default_value(defaults.inference_interval)
                    .flags(changeable)
                    .build(),
                glib::ParamSpecUInt::builder("max-inference-interval")
                    .nick("Maximum inference interval")
                    .blurb("With inference-interval=0: the most frames a mask is reused while the picture does not change (1..30)")
                    .default_value(defaults.max_inference_interval)
                    .flags(changeable)
                    .build(),
                glib::ParamSpecBoxed::builder::<gst::Structure>("stats")
                    .nick("Statistics")
                    .blurb("Since start: frames, inferences, reused-masks, unavailable-masks, and the mean milliseconds per frame of each stage (model-input-ms, inference-ms, refine-ms, background-ms, composite-ms)")
                    .read_only()
                    .build(),
                glib::ParamSpecBoolean::builder("fail-closed")
                    .nick("Fail closed")
                    .blurb("When no mask is available (model missing or failing), replace the whole frame instead of passing the raw room through")
                    .default_value(defaults.fail_closed)
                    .flags(changeable)
                    .build(),
                glib::ParamSpecBoolean::builder("alpha-output")
                    .nick("Alpha output")
                    .blurb("Write the person mask into the alpha channel (RGBA/BGRA/ARGB/ABGR): person opaque, background transparent, for downstream compositors")
                    .default_value(defaults.alpha_output)
                    .flags(changeable)
                    .build(),
            ]
        });
        PROPERTIES.as_ref()
    }

    fn set_property(&self, _id: usize, value: &glib::Value, pspec: &glib::ParamSpec) {
        let mut settings = lock(&self.settings);
        match pspec.name() {
            "effect" => settings.effect = value.get().expect("type checked upstream"),
            "blur-strength" => {
                settings.blur_strength = self.clamped("blur-strength", value.get().unwrap(), 1, 100)
            }
            "color" => settings.color = value.get().expect("type checked upstream"),
            "picture" => {
                settings.picture = value
                    .get::<Option<String>>()
                    .expect("type checked upstream")
                    .filter(|s| !s.is_empty())
                    .map(PathBuf::from)
            }
            "picture-fit" => settings.picture_fit = value.get().expect("type checked upstream"),
            "model" => {
                settings.model = value
                    .get::<Option<String>>()
                    .expect("type checked upstream")
                    .filter(|s| !s.is_empty())
                    .map(PathBuf::from)
            }
            "threshold" => {
                settings.threshold = self.clamped("threshold", value.get().unwrap(), 0.0, 1.0)
            }
            "edge-band" => {
                settings.edge_band = self.clamped("edge-band", value.get().unwrap(), 0.0, 1.0)
            }
            "temporal-smoothing" => {
                settings.temporal_smoothing =
                    self.clamped("temporal-smoothing", value.get().unwrap(), 0.0, 1.0)
            }
            "inference-interval" => {
                settings.inference_interval = self.clamped(
                    "inference-interval",
                    value.get().unwrap(),
                    0,
                    MAX_INFERENCE_INTERVAL,
                )
            }
            "max-inference-interval" => {
                settings.max_inference_interval = self.clamped(
                    "max-inference-interval",
                    value.get().unwrap(),
                    1,
                    MAX_INFERENCE_INTERVAL,
                )
            }
            "fail-closed" => settings.fail_closed = value.get().expect("type checked upstream"),
            "alpha-output" => settings.alpha_output = value.get().expect("type checked upstream"),
            other => unreachable!("unknown property {other}"),
        }
        gst::debug!(CAT, imp = self, "set {} = {:?}", pspec.name(), value);
        let passthrough = settings.passthrough();
        drop(settings);
        self.obj().set_passthrough(passthrough);
    }

    fn property(&self, _id: usize, pspec: &glib::ParamSpec) -> glib::Value {
        if pspec.name() == "stats" {
            return self.stats().to_value();
        }
        let settings = lock(&self.settings);
        let path_value =
            |path: &Option<PathBuf>| path.as_ref().map(|p| p.display().to_string()).to_value();
        match pspec.name() {
            "effect" => settings.effect.to_value(),
            "blur-strength" => settings.blur_strength.to_value(),
            "color" => settings.color.to_value(),
            "picture" => path_value(&settings.picture),
            "picture-fit" => settings.picture_fit.to_value(),
            "model" => path_value(&settings.model),
            "threshold" => settings.threshold.to_value(),
            "edge-band" => settings.edge_band.to_value(),
            "temporal-smoothing" => settings.temporal_smoothing.to_value(),
            "inference-interval" => settings.inference_interval.to_value(),
            "max-inference-interval" => settings.max_inference_interval.to_value(),
            "fail-closed" => settings.fail_closed.to_value(),
            "alpha-output" => settings.alpha_output.to_value(),
            other => unreachable!("unknown property {other}"),
        }
    }
}

impl GstObjectImpl for BackgroundFx {}

impl ElementImpl for BackgroundFx {
    fn metadata() -> Option<&'static gst::subclass::ElementMetadata> {
        static METADATA: LazyLock<gst::subclass::ElementMetadata> = LazyLock::new(|| {
            gst::subclass::ElementMetadata::new(
                "Background effects",
                "Filter/Effect/Video",
                "Finds the person with a segmentation network and blurs or replaces the background",
                "gst-vcc developers",
            )
        });
        Some(&*METADATA)
    }

    fn pad_templates() -> &'static [gst::PadTemplate] {
        static PAD_TEMPLATES: LazyLock<Vec<gst::PadTemplate>> = LazyLock::new(|| {
            let caps = gst_video::VideoCapsBuilder::new()
                .format_list(FORMATS.iter().copied())
                .width_range(16..=16384)
                .height_range(16..=16384)
                .build();
            vec![
                gst::PadTemplate::new(
                    "src",
                    gst::PadDirection::Src,
                    gst::PadPresence::Always,
                    &caps,
                )
                .expect("valid template"),
                gst::PadTemplate::new(
                    "sink",
                    gst::PadDirection::Sink,
                    gst::PadPresence::Always,
                    &caps,
                )
                .expect("valid template"),
            ]
        });
        PAD_TEMPLATES.as_ref()
    }
}

impl BaseTransformImpl for BackgroundFx {
    const MODE: gst_base::subclass::BaseTransformMode =
        gst_base::subclass::BaseTransformMode::AlwaysInPlace;
    const PASSTHROUGH_ON_SAME_CAPS: bool = false;
    const TRANSFORM_IP_ON_PASSTHROUGH: bool = false;

    fn start(&self) -> Result<(), gst::ErrorMessage> {
        let settings = lock(&self.settings).clone();
        let mut state = lock(&self.state);
        *state = State::default();
        self.ensure_picture(&mut state, &settings)
            .map_err(|message| gst::error_msg!(gst::ResourceError::OpenRead, ("{message}")))?;
        self.ensure_model(&mut state, &settings, true);
        drop(state);
        self.obj().set_passthrough(settings.passthrough());
        Ok(())
    }

    fn stop(&self) -> Result<(), gst::ErrorMessage> {
        // Releases the model, the picture and all per-stream buffers.
        *lock(&self.state) = State::default();
        Ok(())
    }

    fn sink_event(&self, event: gst::Event) -> bool {
        if let gst::EventView::FlushStop(_) = event.view()
            && let Some(processor) = lock(&self.state).processor.as_mut()
        {
            processor.reset();
        }
        self.parent_sink_event(event)
    }
}

impl VideoFilterImpl for BackgroundFx {
    fn set_info(
        &self,
        incaps: &gst::Caps,
        in_info: &gst_video::VideoInfo,
        _outcaps: &gst::Caps,
        _out_info: &gst_video::VideoInfo,
    ) -> Result<(), gst::LoggableError> {
        gst::debug!(CAT, imp = self, "new caps {incaps}");
        if layout_for(in_info.format()).is_none() {
            return Err(gst::loggable_error!(
                CAT,
                "unsupported format {:?}",
                in_info.format()
            ));
        }
        let settings = lock(&self.settings).clone();
        let mut state = lock(&self.state);
        // A caps change (e.g. the browser lowering the resolution) rebuilds every buffer.
        state.info = Some(in_info.clone());
        if let Some(old) = state.processor.take() {
            state.earlier_stats.add(old.stats());
        }
        self.ensure_processor(&mut state, &settings);
        Ok(())
    }

    fn transform_frame_ip(
        &self,
        frame: &mut gst_video::VideoFrameRef<&mut gst::BufferRef>,
    ) -> Result<gst::FlowSuccess, gst::FlowError> {
        let settings = lock(&self.settings).clone();
        let params = settings.params();
        if settings.passthrough() {
            return Ok(gst::FlowSuccess::Ok);
        }
        let mut state = lock(&self.state);
        self.ensure_model(&mut state, &settings, false);
        if let Err(message) = self.ensure_picture(&mut state, &settings) {
            gst::element_imp_warning!(
                self,
                gst::ResourceError::OpenRead,
                ("{message}; keeping the previous background picture")
            );
            // Do not retry (and warn) every frame.
            state.failed_picture = settings.picture.clone();
        }
        self.ensure_processor(&mut state, &settings);
        let State {
            model, processor, ..
        } = &mut *state;
        let Some(processor) = processor.as_mut() else {
            gst::element_imp_error!(self, gst::CoreError::Negotiation, ("no caps negotiated"));
            return Err(gst::FlowError::NotNegotiated);
        };
        if frame.buffer().flags().contains(gst::BufferFlags::DISCONT) {
            processor.reset();
        }
        let layout = processor.layout();
        let (width, height) = processor.size();
        let strides = frame.plane_stride();
        let stride_of = |i: usize| strides.get(i).copied().unwrap_or(0).max(0) as usize;
        let strides = [stride_of(0), stride_of(1), stride_of(2)];
        let [p0, p1, p2, _] = frame.planes_data_mut();
        let mut frame_data = FrameMut {
            layout,
            width,
            height,
            planes: [p0, p1, p2],
            strides,
        };
        if let Err(problem) = frame_data.validate() {
            gst::element_imp_error!(
                self,
                gst::StreamError::Format,
                ("frame does not match its caps: {problem}")
            );
            return Err(gst::FlowError::Error);
        }
        let segmenter = model.as_mut().and_then(|m| m.segmenter.as_mut());
        let (source, error) = processor.process(&mut frame_data, &params, segmenter);
        gst::trace!(CAT, imp = self, "mask {source:?}");
        if let Some(error) = error {
            if !state.warned_inference {
                gst::element_imp_warning!(
                    self,
                    gst::StreamError::Failed,
                    ("{error}; fail-closed={}", settings.fail_closed)
                );
                state.warned_inference = true;
            }
        } else if source == MaskSource::Inferred {
            state.warned_inference = false;
        }
        Ok(gst::FlowSuccess::Ok)
    }
}

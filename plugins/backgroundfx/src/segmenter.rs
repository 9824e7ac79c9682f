//! Person segmentation with an ONNX model run by tract, on the CPU, on one thread.
//!
//! Any model with one image-like input `[1, 3, H, W]` (RGB, values in `[0, 1]`) and one
//! image-like output `[1, 1, H, W]` (person probability in `[0, 1]`) can be loaded; the
//! shipped ones are in `models/` (see `models/README.md`). This module knows nothing of
//! GStreamer: it turns a planar RGB tensor into a person-probability map.

use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex, Weak};

use tract_onnx::prelude::*;
use tract_onnx::tract_core::plan::SimpleState;

use crate::depthwise_layout::depthwise_channel_last;

/// Smallest and largest model input side we accept: outside this range the file is not a
/// segmentation model for video frames (or is a mistake that would eat all memory).
const MIN_SIDE: usize = 16;
const MAX_SIDE: usize = 2048;

#[derive(Debug, thiserror::Error)]
pub enum ModelError {
    #[error("cannot read model '{path}': {source}")]
    Io {
        path: PathBuf,
        source: std::io::Error,
    },
    #[error("model '{path}' is not a usable ONNX model: {message}")]
    Invalid { path: PathBuf, message: String },
    #[error(
        "model '{path}' does not look like a segmentation model: {message} \
         (expected input [1,3,H,W] and output [1,1,H,W])"
    )]
    NotImageLike { path: PathBuf, message: String },
    #[error("inference failed: {0}")]
    Inference(String),
}

type Plan = TypedSimplePlan;
type State = SimpleState<TypedFact, Box<dyn TypedOp>>;

/// A loaded, optimised model: one per model per process, shared by every element.
struct SharedPlan {
    bytes: Vec<u8>,
    width: usize,
    height: usize,
    plan: Arc<Plan>,
}

/// The plans loaded in this process. Entries are weak: a plan goes when its last
/// segmenter does (a media server that stops all calls frees the model).
static PLANS: Mutex<Vec<Weak<SharedPlan>>> = Mutex::new(Vec::new());

/// The shared plan for these model bytes, loading and optimising it if no live segmenter
/// holds one. The lock is not held while optimising: of two first loads at once, the one
/// registered first is shared and the other's plan is dropped, so there is never more than
/// one plan per model.
fn shared_plan(bytes: &[u8], path: &Path) -> Result<Arc<SharedPlan>, ModelError> {
    let find = || {
        let mut plans = PLANS
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner());
        plans.retain(|plan| plan.strong_count() > 0);
        plans
            .iter()
            .filter_map(Weak::upgrade)
            .find(|plan| plan.bytes == bytes)
    };
    if let Some(plan) = find() {
        return Ok(plan);
    }
    let (width, height, plan) = optimise(bytes, path)?;
    let plan = Arc::new(SharedPlan {
        bytes: bytes.to_vec(),
        width,
        height,
        plan,
    });
    let mut plans = PLANS
        .lock()
        .unwrap_or_else(|poisoned| poisoned.into_inner());
    plans.retain(|plan| plan.strong_count() > 0);
    if let Some(registered) = plans
        .iter()
        .filter_map(Weak::upgrade)
        .find(|registered| registered.bytes == bytes)
    {
        return Ok(registered);
    }
    plans.push(Arc::downgrade(&plan));
    Ok(plan)
}

fn optimise(bytes: &[u8], path: &Path) -> Result<(usize, usize, Arc<Plan>), ModelError> {
    let invalid = |message: String| ModelError::Invalid {
        path: path.to_path_buf(),
        message,
    };
    // tract can panic on some malformed graphs instead of returning an error; a bad file
    // must never take the streaming thread down, so a panic becomes an ordinary error.
    let loaded = std::panic::catch_unwind(|| load_typed(bytes))
        .map_err(|_| invalid("the ONNX loader crashed on this file".into()))?;
    let model = loaded.map_err(|error| invalid(format!("{error:#}")))?;
    let (width, height) = check_image_like(&model).map_err(|message| ModelError::NotImageLike {
        path: path.to_path_buf(),
        message,
    })?;
    let plan = std::panic::catch_unwind(std::panic::AssertUnwindSafe(
        || -> TractResult<Arc<Plan>> {
            let model = model.into_decluttered()?;
            // Faster where it applies; a model it cannot handle (an error, or a panic in
            // tract's layout code) is optimised as it is.
            let changed = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| {
                depthwise_channel_last(model.clone())
            }));
            let model = match changed {
                Ok(Ok((changed, _))) => changed,
                _ => model,
            };
            model.into_optimized()?.into_runnable()
        },
    ))
    .map_err(|_| invalid("the optimiser crashed on this model".into()))?
    .map_err(|error| invalid(format!("{error:#}")))?;
    Ok((width, height, plan))
}

/// A segmentation model ready to run: the process-wide optimised plan and this stream's
/// own execution state and input tensor.
pub struct Segmenter {
    path: PathBuf,
    shared: Arc<SharedPlan>,
    state: State,
    /// The input, filled in place every inference (the plan holds it only while running).
    input: Arc<Tensor>,
}

impl std::fmt::Debug for Segmenter {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Segmenter")
            .field("path", &self.path)
            .field("width", &self.width())
            .field("height", &self.height())
            .finish()
    }
}

impl Segmenter {
    /// Loads and optimises the model at `path`. Every failure names the file and the problem.
    pub fn from_file(path: impl AsRef<Path>) -> Result<Self, ModelError> {
        let path = path.as_ref().to_path_buf();
        let bytes = std::fs::read(&path).map_err(|source| ModelError::Io {
            path: path.clone(),
            source,
        })?;
        Self::from_bytes(&bytes, path)
    }

    /// Loads a model from memory; `path` is only used in messages. The optimised plan is
    /// shared with every other segmenter of the same model in the process.
    pub fn from_bytes(bytes: &[u8], path: impl Into<PathBuf>) -> Result<Self, ModelError> {
        let path = path.into();
        let shared = shared_plan(bytes, &path)?;
        let inference = |error: TractError| ModelError::Inference(format!("{error:#}"));
        let state = SimpleState::new(&shared.plan).map_err(inference)?;
        let input = Tensor::zero::<f32>(&[1, 3, shared.height, shared.width]).map_err(inference)?;
        Ok(Segmenter {
            path,
            shared,
            state,
            input: Arc::new(input),
        })
    }

    /// Whether two segmenters run the very same optimised plan.
    pub fn shares_plan_with(&self, other: &Segmenter) -> bool {
        Arc::ptr_eq(&self.shared, &other.shared)
    }

    pub fn path(&self) -> &Path {
        &self.path
    }

    /// Model input width in pixels.
    pub fn width(&self) -> usize {
        self.shared.width
    }

    /// Model input height in pixels.
    pub fn height(&self) -> usize {
        self.shared.height
    }

    /// Runs the model. `fill_input` receives the planar input (R plane, then G, then B;
    /// `3 * width * height` values in `[0, 1]`) to fill; the person probability of every
    /// model pixel is written row-major into `person` (`width * height` values).
    pub fn run(
        &mut self,
        fill_input: impl FnOnce(&mut [f32]),
        person: &mut [f32],
    ) -> Result<(), ModelError> {
        let plane = self.width() * self.height();
        if person.len() != plane {
            return Err(ModelError::Inference(format!(
                "output buffer holds {} values, the model produces {plane}",
                person.len()
            )));
        }
        // The state let go of the input at the end of the last run: it is ours again.
        let Some(input) = Arc::get_mut(&mut self.input) else {
            return Err(ModelError::Inference("input tensor still in use".into()));
        };
        let mut view = input
            .to_plain_array_view_mut::<f32>()
            .map_err(|error| ModelError::Inference(format!("{error:#}")))?;
        let Some(slice) = view.as_slice_mut() else {
            return Err(ModelError::Inference(
                "input tensor is not contiguous".into(),
            ));
        };
        fill_input(slice);
        let input = self.input.clone().into_tvalue();
        let outputs = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| {
            self.state.run(tvec!(input))
        }))
        .map_err(|_| ModelError::Inference("tract panicked".into()))?
        .map_err(|error| ModelError::Inference(format!("{error:#}")))?;
        let output = outputs[0]
            .to_plain_array_view::<f32>()
            .map_err(|error| ModelError::Inference(format!("{error:#}")))?;
        let Some(output) = output.as_slice() else {
            return Err(ModelError::Inference(
                "output tensor is not contiguous".into(),
            ));
        };
        if output.len() != plane {
            return Err(ModelError::Inference(format!(
                "model produced {} values, expected {plane}",
                output.len()
            )));
        }
        person.copy_from_slice(output);
        Ok(())
    }
}

fn load_typed(bytes: &[u8]) -> TractResult<TypedModel> {
    let mut reader = bytes;
    tract_onnx::onnx().model_for_read(&mut reader)?.into_typed()
}

/// Returns (width, height) when the model maps [1,3,H,W] to [1,1,H,W].
fn check_image_like(model: &TypedModel) -> Result<(usize, usize), String> {
    if model.inputs.len() != 1 || model.outputs.len() != 1 {
        return Err(format!(
            "it has {} inputs and {} outputs, expected one of each",
            model.inputs.len(),
            model.outputs.len()
        ));
    }
    let concrete = |fact: &TypedFact, what: &str| -> Result<Vec<usize>, String> {
        if fact.datum_type != f32::datum_type() {
            return Err(format!("{what} is {:?}, expected f32", fact.datum_type));
        }
        fact.shape
            .as_concrete()
            .map(|dims| dims.to_vec())
            .ok_or_else(|| format!("{what} shape {:?} is not fixed", fact.shape))
    };
    let input_fact = model.input_fact(0).map_err(|e| e.to_string())?;
    let output_fact = model.output_fact(0).map_err(|e| e.to_string())?;
    let input = concrete(input_fact, "input")?;
    let output = concrete(output_fact, "output")?;
    let [1, 3, height, width] = input[..] else {
        return Err(format!("input shape is {input:?}"));
    };
    if output[..] != [1, 1, height, width] {
        return Err(format!("output shape is {output:?} for input {input:?}"));
    }
    let sane = MIN_SIDE..=MAX_SIDE;
    if !sane.contains(&width) || !sane.contains(&height) {
        return Err(format!(
            "input size {width}x{height} is outside {MIN_SIDE}..{MAX_SIDE}"
        ));
    }
    Ok((width, height))
}

/// Path of a model shipped in the repository's `models/` folder, for tests and examples.
pub fn shipped_model_path(file_name: &str) -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("../../models")
        .join(file_name)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn landscape() -> PathBuf {
        shipped_model_path("selfie_segmentation_landscape.onnx")
    }

    #[test]
    fn loads_shipped_models_with_their_sizes() {
        let segmenter = Segmenter::from_file(landscape()).unwrap();
        assert_eq!((segmenter.width(), segmenter.height()), (256, 144));
        let general = Segmenter::from_file(shipped_model_path("selfie_segmentation.onnx")).unwrap();
        assert_eq!((general.width(), general.height()), (256, 256));
    }

    #[test]
    fn segmenters_of_one_model_share_one_plan_and_keep_their_own_state() {
        let mut first = Segmenter::from_file(landscape()).unwrap();
        let mut second = Segmenter::from_file(landscape()).unwrap();
        assert!(first.shares_plan_with(&second));
        let general = Segmenter::from_file(shipped_model_path("selfie_segmentation.onnx")).unwrap();
        assert!(!first.shares_plan_with(&general));
        let (mut a, mut b) = (vec![0.0; 256 * 144], vec![0.0; 256 * 144]);
        first.run(|input| input.fill(0.2), &mut a).unwrap();
        second.run(|input| input.fill(0.8), &mut b).unwrap();
        first.run(|input| input.fill(0.2), &mut b).unwrap();
        assert_eq!(a, b, "one state's run does not disturb another's");
    }

    #[test]
    fn concurrent_first_loads_end_with_one_plan() {
        // Elements starting at once all optimise (the lock is not held meanwhile); one plan
        // must stay. (Two stayed alive, and this module's sharing test failed in parallel.)
        let segmenters: Vec<Segmenter> = std::thread::scope(|scope| {
            let loads: Vec<_> = (0..4)
                .map(|_| scope.spawn(|| Segmenter::from_file(landscape()).unwrap()))
                .collect();
            loads.into_iter().map(|load| load.join().unwrap()).collect()
        });
        for segmenter in &segmenters[1..] {
            assert!(segmenters[0].shares_plan_with(segmenter));
        }
    }

    #[test]
    fn output_is_a_probability_map() {
        let mut segmenter = Segmenter::from_file(landscape()).unwrap();
        let mut person = vec![-1.0; 256 * 144];
        segmenter.run(|input| input.fill(0.5), &mut person).unwrap();
        assert!(person.iter().all(|p| (0.0..=1.0).contains(p)));
    }

    #[test]
    fn missing_file_names_the_file() {
        let error = Segmenter::from_file("/nonexistent/model.onnx").unwrap_err();
        let text = error.to_string();
        assert!(matches!(error, ModelError::Io { .. }));
        assert!(text.contains("/nonexistent/model.onnx"), "{text}");
        assert!(text.contains("No such file"), "{text}");
    }

    #[test]
    fn truncated_model_is_invalid() {
        let bytes = std::fs::read(landscape()).unwrap();
        let error = Segmenter::from_bytes(&bytes[..bytes.len() / 2], "half.onnx").unwrap_err();
        assert!(matches!(error, ModelError::Invalid { .. }), "{error}");
        assert!(error.to_string().contains("half.onnx"));
    }

    #[test]
    fn non_onnx_file_is_invalid() {
        let error =
            Segmenter::from_bytes(b"\x89PNG\r\n\x1a\nnot a model", "picture.png").unwrap_err();
        assert!(matches!(error, ModelError::Invalid { .. }), "{error}");
        assert!(error.to_string().contains("picture.png"));
    }

    #[test]
    fn wrong_output_buffer_is_an_error_not_a_panic() {
        let mut segmenter = Segmenter::from_file(landscape()).unwrap();
        let mut person = vec![0.0; 10];
        assert!(segmenter.run(|_| {}, &mut person).is_err());
    }
}

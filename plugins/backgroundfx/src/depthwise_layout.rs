//! Depthwise convolutions channel-last, before tract optimises a model.
//!
//! tract 0.23 runs a depthwise convolution in NCHW with a loop along each output row (its
//! vectorised row kernel exists for wasm only; on x86 the loop is unrolled scalar code, and a
//! stride of 2 makes its reads strided); in NHWC its loop runs over the channels of each tap,
//! contiguous, which the compiler vectorises. tract knows how to move a graph to NHWC
//! (`change_axes`: the layout change travels through the neighbouring ops and cancels where
//! it can), but its optimiser only asks for it on machines with a hand-written channel-last
//! kernel (wasm today), so on x86 the shipped models stayed NCHW. This asks for it on the
//! depthwise convolutions where the channel-last loop is the longer one (more channels than
//! output columns), with the model's input and output locked: the tensor our code fills and
//! reads keeps its layout, and a change that cannot travel without touching them is not made.
//!
//! Measured on the landscape model, one core: depthwise convolutions 2.0 -> 1.2 ms per
//! inference; the output is the same to 1e-7 (another summation order). Moving the three
//! with fewer channels than columns too (the encoder's stride-2 16 x 36x64, the decoder's
//! 24 x 18x32 and 16 x 36x64) was 2-3 % slower over the whole model (`profile_model --versus-every-depthwise`,
//! `benches/results/inference-profile-2026-12-03b.txt`): their rows are long, and their
//! neighbours (the squeeze-excitation mean and scale) are slower channel-last in tract.

use tract_onnx::prelude::*;
use tract_onnx::tract_core::ops::change_axes::{AxisChange, AxisOp};
use tract_onnx::tract_core::ops::cnn::Conv;
use tract_onnx::tract_core::optim::change_axes::change_axes;

/// The shape of a depthwise convolution, for the choice of its layout.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct DepthwiseGeometry {
    pub channels: usize,
    pub output_width: usize,
}

/// The element's choice: channel-last where its loop (over the channels) is longer than the
/// NCHW one (along an output row).
pub fn worth_moving(geometry: DepthwiseGeometry) -> bool {
    geometry.channels > geometry.output_width
}

/// `model` (decluttered) with its depthwise convolutions channel-last where
/// [`worth_moving`] says so and the change can be made, and how many layout changes were
/// made. Inputs and outputs keep their shapes.
pub fn depthwise_channel_last(model: TypedModel) -> TractResult<(TypedModel, usize)> {
    depthwise_channel_last_where(model, worth_moving)
}

/// [`depthwise_channel_last`] with another choice of which convolutions to move.
pub fn depthwise_channel_last_where(
    mut model: TypedModel,
    choose: impl Fn(DepthwiseGeometry) -> bool,
) -> TractResult<(TypedModel, usize)> {
    let mut tried = std::collections::HashSet::new();
    let mut changes = 0;
    loop {
        // Taken anew each time: decluttering renumbers the nodes, the interface's included.
        let mut locked: Vec<OutletId> = model.input_outlets()?.to_vec();
        locked.extend(model.output_outlets()?.iter().copied());
        let mut patch = None;
        for node in &model.nodes {
            let Some(conv) = node.op_as::<Conv>() else {
                continue;
            };
            let format = conv.pool_spec.data_format;
            let depthwise = conv.group > 1 && conv.group == conv.input_channels();
            // By name: decluttering renumbers the nodes after each change.
            if !depthwise || format.c_is_last() || !tried.insert(node.name.clone()) {
                continue;
            }
            let output = model.outlet_fact(OutletId::new(node.id, 0))?;
            let output_width = format
                .shape(output.shape.to_tvec())?
                .hw_dims()
                .last()
                .and_then(|width| width.as_i64())
                .and_then(|width| usize::try_from(width).ok());
            let Some(output_width) = output_width else {
                continue;
            };
            let geometry = DepthwiseGeometry {
                channels: conv.input_channels(),
                output_width,
            };
            if !choose(geometry) {
                continue;
            }
            let rank = model.outlet_fact(node.inputs[0])?.rank();
            let channel_axis = usize::from(format.has_n());
            let change = AxisChange {
                outlet: node.inputs[0],
                op: AxisOp::Move(channel_axis, rank - 1),
            };
            if let Some((found, _)) =
                change_axes(&model, &change, &locked, &[], &mut Default::default())?
            {
                patch = Some(found);
                break;
            }
        }
        let Some(patch) = patch else {
            return Ok((model, changes));
        };
        patch.apply(&mut model)?;
        model = model.into_decluttered()?;
        changes += 1;
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::segmenter::shipped_model_path;

    fn run(model: TypedModel, input: &Tensor) -> Vec<f32> {
        let plan = model.into_optimized().unwrap().into_runnable().unwrap();
        let output = plan.run(tvec!(input.clone().into_tvalue())).unwrap();
        output[0]
            .to_plain_array_view::<f32>()
            .unwrap()
            .iter()
            .copied()
            .collect()
    }

    #[test]
    fn the_shipped_model_goes_channel_last_with_the_same_output_and_interface() {
        let path = shipped_model_path("selfie_segmentation_landscape.onnx");
        let model = tract_onnx::onnx()
            .model_for_path(&path)
            .unwrap()
            .into_typed()
            .unwrap()
            .into_decluttered()
            .unwrap();
        let (changed, changes) = depthwise_channel_last(model.clone()).unwrap();
        assert!(changes >= 5, "only {changes} layout changes");
        let (_, every) = depthwise_channel_last_where(model.clone(), |_| true).unwrap();
        assert!(
            every > changes,
            "{every} changes moving every one, {changes} by choice"
        );
        for (a, b) in [
            (model.input_fact(0), changed.input_fact(0)),
            (model.output_fact(0), changed.output_fact(0)),
        ] {
            assert_eq!(a.unwrap().shape, b.unwrap().shape);
        }
        // A smooth picture: a bright blob on a darker ground.
        let (h, w) = (144, 256);
        let input = tract_ndarray::Array4::from_shape_fn((1, 3, h, w), |(_, c, y, x)| {
            let (x, y) = (x as f32 / w as f32, y as f32 / h as f32);
            let blob = (-((x - 0.5).powi(2) * 8.0 + (y - 0.6).powi(2) * 6.0)).exp();
            (0.2 + 0.6 * blob + 0.05 * c as f32).min(1.0)
        })
        .into_tensor();
        let (before, after) = (run(model, &input), run(changed, &input));
        let worst = before
            .iter()
            .zip(&after)
            .map(|(a, b)| (a - b).abs())
            .fold(0.0f32, f32::max);
        assert!(worst < 1e-5, "outputs differ by {worst}");
    }
}

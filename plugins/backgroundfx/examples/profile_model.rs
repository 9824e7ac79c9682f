//! Where tract spends a segmentation model's inference, operator by operator (the evidence
//! behind the inference figures in benches/results): run on one core for per-core numbers.
//!
//!   taskset -c 1 cargo run --release -p gst-plugin-backgroundfx --example profile_model \
//!       [model.onnx] [--nodes] [--versus other.onnx | --versus-every-depthwise]
//!
//! The model is optimised as the element does it (depthwise convolutions channel-last
//! first). `--nodes` also lists the slowest nodes one by one, with their output shapes.
//! `--versus` times the other model optimised the plain way (`into_optimized` alone, as
//! before the layout change) against this one, in alternating batches in one process: on a
//! shared machine whose speed drifts within minutes, only such a comparison is fair.
//! `--versus-every-depthwise` times the same model with every depthwise convolution moved
//! channel-last (the element's choice leaves the ones with fewer channels than columns).

use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Instant;

use tract_onnx::prelude::*;
use tract_onnx::tract_core::plan::{SimpleState, eval};

use gstbackgroundfx::depthwise_layout::{depthwise_channel_last, depthwise_channel_last_where};
use gstbackgroundfx::segmenter::shipped_model_path;

fn plan_as_the_element_does(path: &Path) -> TractResult<Arc<TypedSimplePlan>> {
    let model = tract_onnx::onnx()
        .model_for_path(path)?
        .into_typed()?
        .into_decluttered()?;
    let (model, changes) = depthwise_channel_last(model)?;
    println!("{changes} layout changes to channel-last depthwise convolutions");
    model.into_optimized()?.into_runnable()
}

fn every_depthwise_plan(path: &Path) -> TractResult<Arc<TypedSimplePlan>> {
    let model = tract_onnx::onnx()
        .model_for_path(path)?
        .into_typed()?
        .into_decluttered()?;
    let (model, changes) = depthwise_channel_last_where(model, |_| true)?;
    println!("{changes} layout changes moving every depthwise convolution");
    model.into_optimized()?.into_runnable()
}

fn plain_plan(path: &Path) -> TractResult<Arc<TypedSimplePlan>> {
    tract_onnx::onnx()
        .model_for_path(path)?
        .into_optimized()?
        .into_runnable()
}

fn zero_input(plan: &TypedSimplePlan) -> TractResult<Arc<Tensor>> {
    let shape = plan
        .model()
        .input_fact(0)?
        .shape
        .as_concrete()
        .unwrap()
        .to_vec();
    Ok(Arc::new(Tensor::zero::<f32>(&shape)?))
}

/// Alternating batches of 10 runs, 60 each: (min, median) ms per run of each plan.
fn versus(plans: [&Arc<TypedSimplePlan>; 2]) -> TractResult<[(f64, f64); 2]> {
    let mut states = [SimpleState::new(plans[0])?, SimpleState::new(plans[1])?];
    let inputs = [zero_input(plans[0])?, zero_input(plans[1])?];
    let mut times = [Vec::new(), Vec::new()];
    for round in 0..61 {
        for i in 0..2 {
            let start = Instant::now();
            for _ in 0..10 {
                states[i].run(tvec!(inputs[i].clone().into_tvalue()))?;
            }
            if round > 0 {
                times[i].push(start.elapsed().as_secs_f64() * 100.0);
            }
        }
    }
    Ok(times.map(|mut t| {
        t.sort_by(f64::total_cmp);
        (t[0], t[t.len() / 2])
    }))
}

fn main() -> TractResult<()> {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let per_node = args.iter().any(|a| a == "--nodes");
    let other = args
        .iter()
        .position(|a| a == "--versus")
        .map(|i| PathBuf::from(&args[i + 1]));
    let path = args
        .iter()
        .enumerate()
        .find(|(i, a)| !a.starts_with("--") && (*i == 0 || args[i - 1] != "--versus"))
        .map(|(_, a)| PathBuf::from(a))
        .unwrap_or(shipped_model_path("selfie_segmentation_landscape.onnx"));
    let plan = plan_as_the_element_does(&path)?;
    let every_depthwise = args.iter().any(|a| a == "--versus-every-depthwise");
    if other.is_some() || every_depthwise {
        let (old, label) = match &other {
            Some(other) => (plain_plan(other)?, format!("{} (plain)", other.display())),
            None => (
                every_depthwise_plan(&path)?,
                format!("{} (every depthwise channel-last)", path.display()),
            ),
        };
        let [(old_min, old_median), (new_min, new_median)] = versus([&old, &plan])?;
        println!("{label}: min {old_min:.3} ms, median {old_median:.3} ms");
        println!(
            "{} (as the element): min {new_min:.3} ms, median {new_median:.3} ms",
            path.display()
        );
        println!(
            "ratio: {:.2} (min), {:.2} (median)",
            new_min / old_min,
            new_median / old_median
        );
        return Ok(());
    }
    let mut state = SimpleState::new(&plan)?;
    let shared = zero_input(&plan)?;
    for _ in 0..20 {
        state.run(tvec!(shared.clone().into_tvalue()))?;
    }
    let n = 200;
    let t = Instant::now();
    for _ in 0..n {
        state.run(tvec!(shared.clone().into_tvalue()))?;
    }
    println!(
        "run: {:.3} ms",
        t.elapsed().as_secs_f64() * 1000.0 / n as f64
    );
    let mut by_op: HashMap<String, (f64, usize)> = HashMap::new();
    let mut by_node: HashMap<usize, f64> = HashMap::new();
    for _ in 0..n {
        state.run_plan_with_eval(
            tvec!(shared.clone().into_tvalue()),
            |ctx, st, node, inputs| {
                let t = Instant::now();
                let r = eval(ctx, st, node, inputs);
                let e = by_op.entry(node.op().name().to_string()).or_default();
                e.0 += t.elapsed().as_secs_f64();
                e.1 += 1;
                *by_node.entry(node.id).or_default() += t.elapsed().as_secs_f64();
                r
            },
        )?;
    }
    let mut v: Vec<_> = by_op.into_iter().collect();
    v.sort_by(|a, b| b.1.0.total_cmp(&a.1.0));
    for (name, (s, c)) in v.iter().take(15) {
        // Per run: the op's total time and how many nodes of it the plan has.
        println!(
            "{name:30} {:.3} ms/run ({} nodes)",
            s * 1000.0 / n as f64,
            c / n
        );
    }
    if per_node {
        let mut nodes: Vec<_> = by_node.into_iter().collect();
        nodes.sort_by(|a, b| b.1.total_cmp(&a.1));
        println!();
        for (id, s) in nodes.iter().take(40) {
            let node = plan.model().node(*id);
            let shape = format!("{:?}", plan.model().outlet_fact((*id).into())?.shape);
            println!(
                "{:.3} ms  {:24} {:40} {}",
                s * 1000.0 / n as f64,
                node.op().name(),
                shape,
                node.name
            );
        }
    }
    Ok(())
}

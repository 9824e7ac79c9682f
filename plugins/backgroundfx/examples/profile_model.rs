//! Where tract spends a segmentation model's inference, operator by operator (the evidence
//! behind the inference figures in benches/results): run on one core for per-core numbers.
//!
//!   taskset -c 1 cargo run --release -p gst-plugin-backgroundfx --example profile_model [model.onnx] [--nodes]
//!
//! `--nodes` also lists the slowest nodes one by one, with their output shapes.

use std::collections::HashMap;
use std::time::Instant;
use tract_onnx::prelude::*;
use tract_onnx::tract_core::plan::{SimpleState, eval};
fn main() -> TractResult<()> {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let per_node = args.iter().any(|a| a == "--nodes");
    let path = args
        .iter()
        .find(|a| !a.starts_with("--"))
        .map(std::path::PathBuf::from)
        .unwrap_or(gstbackgroundfx::segmenter::shipped_model_path(
            "selfie_segmentation_landscape.onnx",
        ));
    let model = tract_onnx::onnx().model_for_path(&path)?.into_typed()?;
    let plan = model.into_optimized()?.into_runnable()?;
    let mut state = SimpleState::new(&plan)?;
    let shape = [1usize, 3, 144, 256];
    let shared = std::sync::Arc::new(Tensor::zero::<f32>(&shape)?);
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
                let name = node.op().name().to_string();
                let e = by_op.entry(name).or_default();
                e.0 += t.elapsed().as_secs_f64();
                *by_node.entry(node.id).or_default() += t.elapsed().as_secs_f64();
                e.1 += 1;
                r
            },
        )?;
    }
    let mut v: Vec<_> = by_op.into_iter().collect();
    v.sort_by(|a, b| b.1.0.partial_cmp(&a.1.0).unwrap());
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
        nodes.sort_by(|a, b| b.1.partial_cmp(&a.1).unwrap());
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

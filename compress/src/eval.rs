//! Measuring an ONNX file on sprig-runtime: accuracy, latency, arena.

use sprig_models::datasets::ImageSet;
use sprig_runtime::{Interpreter, Model, PlanOptions};
use std::time::Instant;

/// What one model measured on sprig-runtime.
#[derive(Debug, Clone, serde::Serialize)]
pub struct RuntimeStats {
    /// Top-1 accuracy on the evaluation set (0..1).
    pub top1: f64,
    /// Median latency of one inference, microseconds.
    pub median_us: f64,
    /// Arena bytes the plan needs on a device without optimized kernels (an MCU): the figure
    /// that says whether a model fits.
    pub arena_bytes: usize,
    /// Arena bytes on this host, whose optimized kernels keep repacked weights in it.
    pub host_arena_bytes: usize,
    /// Liveness lower bound of the working part.
    pub arena_lower_bound_bytes: usize,
    /// Steps after fusion.
    pub steps: usize,
}

/// Index of the largest value.
pub fn argmax(v: &[f32]) -> usize {
    v.iter()
        .enumerate()
        .fold((0, f32::NEG_INFINITY), |(bi, bv), (i, &x)| {
            if x > bv {
                (i, x)
            } else {
                (bi, bv)
            }
        })
        .0
}

/// The arena `model` needs with the portable kernels only (what a Cortex-M plans).
pub fn portable_arena_bytes(model: &Model<'_>) -> crate::Result<usize> {
    portable_arena_bytes_with(model, PlanOptions::default())
}

/// [`portable_arena_bytes`] for a plan made with `opts`.
pub fn portable_arena_bytes_with(model: &Model<'_>, opts: PlanOptions) -> crate::Result<usize> {
    let was_portable = !sprig_runtime::kernels::optimized_allowed();
    sprig_runtime::kernels::set_portable_only(true);
    let bytes = model.arena_bytes_with(opts);
    sprig_runtime::kernels::set_portable_only(was_portable);
    Ok(bytes?)
}

/// Runs every image of `data` through `onnx` on sprig-runtime, then times `runs` inferences.
pub fn evaluate(onnx: &[u8], data: &ImageSet, runs: usize) -> crate::Result<RuntimeStats> {
    evaluate_with(onnx, data, runs, PlanOptions::default())
}

/// [`evaluate`] with the model planned with `opts` (e.g. half-precision arithmetic).
pub fn evaluate_with(
    onnx: &[u8],
    data: &ImageSet,
    runs: usize,
    opts: PlanOptions,
) -> crate::Result<RuntimeStats> {
    let model = Model::parse(onnx)?;
    let device_arena = portable_arena_bytes_with(&model, opts)?;
    let mut arena = vec![0u8; model.arena_bytes_with(opts)?];
    let mut it = Interpreter::new_with(&model, &mut arena, opts)?;
    let report = it.arena_report();
    let mut correct = 0usize;
    for i in 0..data.len() {
        it.set_input_f32(0, data.image(i))?;
        it.invoke()?;
        let out = it.output(0)?;
        let logits = out
            .as_f32()
            .ok_or_else(|| crate::Error::Invalid("model output is not float32".into()))?;
        correct += (argmax(logits) == data.labels[i] as usize) as usize;
    }
    it.set_input_f32(0, data.image(0))?;
    let mut times = Vec::with_capacity(runs);
    for _ in 0..runs {
        let t = Instant::now();
        it.invoke()?;
        times.push(t.elapsed().as_secs_f64() * 1e6);
    }
    times.sort_by(|a, b| a.total_cmp(b));
    Ok(RuntimeStats {
        top1: correct as f64 / data.len().max(1) as f64,
        median_us: times.get(times.len() / 2).copied().unwrap_or(0.0),
        arena_bytes: device_arena,
        host_arena_bytes: report.total,
        arena_lower_bound_bytes: report.working_lower_bound,
        steps: report.steps,
    })
}

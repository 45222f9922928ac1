//! sprig-runtime against tract and onnxruntime on the same .onnx files, batch 1, one thread,
//! measured in one run (three interleaved rounds). Prints a Markdown table with ratios (README
//! shows its output).
//!
//! cargo bench -p sprig-runtime --bench compare
//! (onnxruntime through .venv/bin/python or $SPRIG_PYTHON; "n/a" when it is not available;
//! x86_64 host only)

#[cfg(not(target_arch = "x86_64"))]
fn main() {
    eprintln!("the comparison against tract and onnxruntime runs on the x86_64 host");
}

#[cfg(target_arch = "x86_64")]
fn main() {
    host::main()
}

#[cfg(target_arch = "x86_64")]
mod host {

    use sprig_runtime::{Interpreter, Model};
    use std::path::{Path, PathBuf};
    use std::time::Instant;
    use tract_onnx::prelude::*;

    /// Timed runs per engine per round.
    const RUNS: usize = 150;
    /// Rounds, engines interleaved, so a burst of load on this shared machine hits all three
    /// rather than one; each figure is the median of the per-round medians.
    const ROUNDS: usize = 3;

    fn median(mut v: Vec<f64>) -> f64 {
        v.sort_by(|a, b| a.total_cmp(b));
        v[v.len() / 2]
    }

    fn time(mut f: impl FnMut()) -> f64 {
        for _ in 0..20 {
            f();
        }
        median(
            (0..RUNS)
                .map(|_| {
                    let t = Instant::now();
                    f();
                    t.elapsed().as_secs_f64() * 1e6
                })
                .collect(),
        )
    }

    fn input_values(n: usize) -> Vec<f32> {
        (0..n).map(|i| (i % 251) as f32 / 251.0).collect()
    }

    fn tract_model(path: &Path) -> std::sync::Arc<TypedSimplePlan> {
        tract_onnx::onnx()
            .model_for_path(path)
            .unwrap()
            .into_optimized()
            .unwrap()
            .into_runnable()
            .unwrap()
    }

    fn ort(path: &Path, root: &Path) -> Option<f64> {
        let py = std::env::var_os("SPRIG_PYTHON")
            .map(PathBuf::from)
            .unwrap_or_else(|| root.join(".venv/bin/python"));
        let out = std::process::Command::new(py)
            .arg(root.join("bench/ort_time.py"))
            .arg(path)
            .arg(RUNS.to_string())
            .output()
            .ok()?;
        String::from_utf8_lossy(&out.stdout).trim().parse().ok()
    }

    pub fn main() {
        let root = Path::new(env!("CARGO_MANIFEST_DIR"))
            .parent()
            .unwrap()
            .to_path_buf();
        let models = [
            (
                "digits CNN (666 params) f32",
                "tests/fixtures/digits_student.f32.onnx",
            ),
            (
                "digits CNN (666 params) int8",
                "boards/cortex-m/models/digits_int8.onnx",
            ),
            (
                "Fashion-MNIST CNN (106k params) f32",
                "bench/models/fashion_cnn.f32.onnx",
            ),
            (
                "Fashion-MNIST CNN (106k params) int8",
                "bench/models/fashion_cnn.int8.onnx",
            ),
            (
                "ResNet-20 CIFAR shape (272k params) f32",
                "bench/models/resnet20.f32.onnx",
            ),
            (
                "ResNet-20 CIFAR shape (272k params) int8",
                "bench/models/resnet20.int8.onnx",
            ),
            (
                "DenseNet-BC shape (101k params) f32",
                "bench/models/densenet_bc.f32.onnx",
            ),
            (
                "DenseNet-BC shape (101k params) int8",
                "bench/models/densenet_bc.int8.onnx",
            ),
            (
                "GRU trajectory (14k params) f32",
                "bench/models/gru_traj.f32.onnx",
            ),
            (
                "GRU trajectory (14k params) int8 decoder",
                "bench/models/gru_traj.int8.onnx",
            ),
        ];
        println!("| model | sprig µs | tract µs | onnxruntime µs | sprig / tract | sprig / onnxruntime | arena bytes | working / liveness bound |");
        println!("|---|---:|---:|---:|---:|---:|---:|---:|");
        for (label, rel) in models {
            let path = root.join(rel);
            let Ok(bytes) = std::fs::read(&path) else {
                eprintln!("skipping {label}: {} missing (cargo run --release -p sprig-compress --example bench_models)", path.display());
                continue;
            };
            let dims: Vec<usize> = {
                let m = Model::parse(&bytes).unwrap();
                m.inputs()
                    .next()
                    .unwrap()
                    .unwrap()
                    .shape
                    .unwrap()
                    .dims()
                    .iter()
                    .map(|&d| d as usize)
                    .collect()
            };
            let model = Model::parse(&bytes).unwrap();
            let mut arena_buf = vec![0u8; model.arena_bytes().unwrap()];
            let mut it = Interpreter::new(&model, &mut arena_buf).unwrap();
            it.set_input_f32(0, &input_values(dims.iter().product()))
                .unwrap();
            let r = it.arena_report();
            let (arena, working, bound) = (r.total, r.working, r.working_lower_bound);
            let tm = tract_model(&path);
            let x: Tensor = tract_ndarray::ArrayD::from_shape_vec(
                dims.clone(),
                input_values(dims.iter().product()),
            )
            .unwrap()
            .into();
            let (mut ss, mut ts, mut os) = (Vec::new(), Vec::new(), Vec::new());
            for _ in 0..ROUNDS {
                ss.push(time(|| it.invoke().unwrap()));
                ts.push(time(|| {
                    tm.run(tvec!(x.clone().into())).unwrap();
                }));
                if let Some(o) = ort(&path, &root) {
                    os.push(o);
                }
            }
            let (s, t) = (median(ss), median(ts));
            let o = (os.len() == ROUNDS).then(|| median(os));
            let fmt = |v: Option<f64>| v.map(|v| format!("{v:.1}")).unwrap_or_else(|| "n/a".into());
            println!(
                "| {label} | {s:.1} | {t:.1} | {} | {:.2} | {} | {arena} | {:.2} |",
                fmt(o),
                s / t,
                o.map(|o| format!("{:.2}", s / o))
                    .unwrap_or_else(|| "n/a".into()),
                working as f64 / bound.max(1) as f64
            );
        }
    }
}

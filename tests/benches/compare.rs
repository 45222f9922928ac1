//! sprig-runtime against tract and onnxruntime on the same .onnx files, batch 1, one thread,
//! measured in one run. Prints a Markdown table with ratios (README shows its output).
//!
//! cargo bench -p sprig-tests --bench compare
//! (onnxruntime through .venv/bin/python or $SPRIG_PYTHON; "n/a" when it is not available)

use sprig_runtime::{Interpreter, Model};
use std::path::{Path, PathBuf};
use std::time::Instant;
use tract_onnx::prelude::*;

const RUNS: usize = 300;

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

fn sprig(bytes: &[u8]) -> (f64, usize, usize, usize) {
    let model = Model::parse(bytes).unwrap();
    let mut arena = vec![0u8; model.arena_bytes().unwrap()];
    let mut it = Interpreter::new(&model, &mut arena).unwrap();
    let n = it.input_info(0).unwrap().2.numel();
    it.set_input_f32(0, &input_values(n)).unwrap();
    let r = it.arena_report();
    (
        time(|| it.invoke().unwrap()),
        r.total,
        r.working,
        r.working_lower_bound,
    )
}

fn tract(path: &Path, dims: &[usize]) -> f64 {
    let model = tract_onnx::onnx()
        .model_for_path(path)
        .unwrap()
        .into_optimized()
        .unwrap()
        .into_runnable()
        .unwrap();
    let x: Tensor =
        tract_ndarray::ArrayD::from_shape_vec(dims.to_vec(), input_values(dims.iter().product()))
            .unwrap()
            .into();
    time(|| {
        model.run(tvec!(x.clone().into())).unwrap();
    })
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

fn main() {
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
        let (s, arena, working, bound) = sprig(&bytes);
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
        let t = tract(&path, &dims);
        let o = ort(&path, &root);
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

//! Criterion benchmarks of one `invoke` (batch 1, one thread) on the benchmark models, each
//! beside tract-onnx running the same file, so criterion's report shows both in one run. The
//! table with onnxruntime and the ratios is `cargo bench -p sprig-runtime --bench compare`.
//!
//! cargo bench -p sprig-runtime --bench invoke        (x86_64 host only)

#[cfg(not(target_arch = "x86_64"))]
fn main() {
    eprintln!("the criterion benchmarks run on the x86_64 host");
}

#[cfg(target_arch = "x86_64")]
fn main() {
    host::main()
}

#[cfg(target_arch = "x86_64")]
mod host {
    use criterion::Criterion;
    use sprig_runtime::{Interpreter, Model};
    use std::path::Path;
    use std::time::Duration;
    use tract_onnx::prelude::*;

    const MODELS: &[&str] = &[
        "boards/cortex-m/models/digits_int8.onnx",
        "bench/models/fashion_cnn.f32.onnx",
        "bench/models/fashion_cnn.int8.onnx",
        "bench/models/resnet20.f32.onnx",
        "bench/models/resnet20.int8.onnx",
        "bench/models/densenet_bc.f32.onnx",
        "bench/models/densenet_bc.int8.onnx",
        "bench/models/gru_traj.f32.onnx",
        "bench/models/gru_traj.int8.onnx",
    ];

    fn input_values(n: usize) -> Vec<f32> {
        (0..n).map(|i| (i % 251) as f32 / 251.0).collect()
    }

    pub fn main() {
        let root = Path::new(env!("CARGO_MANIFEST_DIR")).parent().unwrap();
        let mut c = Criterion::default()
            .warm_up_time(Duration::from_millis(500))
            .measurement_time(Duration::from_secs(2))
            .sample_size(30)
            .configure_from_args();
        for rel in MODELS {
            let path = root.join(rel);
            let name = path.file_stem().unwrap().to_string_lossy().to_string();
            let bytes = std::fs::read(&path).unwrap();
            let model = Model::parse(&bytes).unwrap();
            let mut arena = vec![0u8; model.arena_bytes().unwrap()];
            let mut it = Interpreter::new(&model, &mut arena).unwrap();
            let (_, _, shape) = it.input_info(0).unwrap();
            let dims: Vec<usize> = shape.dims().iter().map(|&d| d as usize).collect();
            it.set_input_f32(0, &input_values(shape.numel())).unwrap();
            let tract = tract_onnx::onnx()
                .model_for_path(&path)
                .unwrap()
                .into_optimized()
                .unwrap()
                .into_runnable()
                .unwrap();
            let x: Tensor = tract_ndarray::ArrayD::from_shape_vec(
                dims.clone(),
                input_values(dims.iter().product()),
            )
            .unwrap()
            .into();
            let mut g = c.benchmark_group(&name);
            g.bench_function("sprig", |b| b.iter(|| it.invoke().unwrap()));
            g.bench_function("tract", |b| {
                b.iter(|| tract.run(tvec!(x.clone().into())).unwrap())
            });
            g.finish();
        }
        c.final_summary();
    }
}

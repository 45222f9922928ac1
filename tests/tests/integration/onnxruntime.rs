//! onnxruntime (PyPI, in the venv tests/run.sh makes at .venv) is the reference: sprig's own int8
//! export and models quantized by onnxruntime's `quantize_static` (QDQ, per-tensor and
//! per-channel) must agree with it within one output quantization step, with the same argmax;
//! the float model within 1e-4 relative. onnx's checker must accept sprig's export.

use crate::support::{python, repo};
use sprig_models::datasets::digits;
use sprig_runtime::{Interpreter, Model};
use std::path::{Path, PathBuf};
use std::process::Command;

fn tmp(name: &str) -> PathBuf {
    let d = std::env::temp_dir().join(format!("sprig-ort-{}", std::process::id()));
    std::fs::create_dir_all(&d).unwrap();
    d.join(name)
}

/// 120 held-out digits as raw f32.
fn samples() -> PathBuf {
    let (_, test) = digits().split(0.2, 0);
    let p = tmp("samples.f32");
    let bytes: Vec<u8> = (0..120)
        .flat_map(|i| {
            test.image(i)
                .iter()
                .flat_map(|v| v.to_le_bytes())
                .collect::<Vec<_>>()
        })
        .collect();
    std::fs::write(&p, bytes).unwrap();
    p
}

fn py(args: &[&std::ffi::OsStr]) {
    let out = Command::new(python())
        .arg(repo().join("tests/ort_reference.py"))
        .args(args)
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "ort_reference.py failed: {}",
        String::from_utf8_lossy(&out.stderr)
    );
}

fn ort_outputs(model: &Path, samples: &Path) -> Vec<f32> {
    let out = tmp(&format!(
        "{}.out",
        model.file_name().unwrap().to_string_lossy()
    ));
    py(&[
        "run".as_ref(),
        model.as_os_str(),
        samples.as_os_str(),
        out.as_os_str(),
    ]);
    std::fs::read(out)
        .unwrap()
        .chunks_exact(4)
        .map(|c| f32::from_le_bytes(c.try_into().unwrap()))
        .collect()
}

fn sprig_outputs(model: &[u8], samples: &Path) -> Vec<f32> {
    let m = Model::parse(model).unwrap();
    let mut arena = vec![0u8; m.arena_bytes().unwrap()];
    let mut it = Interpreter::new(&m, &mut arena).unwrap();
    let per = it.input_mut(0).unwrap().len();
    let mut out = Vec::new();
    for img in std::fs::read(samples).unwrap().chunks_exact(per) {
        it.set_input(0, img).unwrap();
        it.invoke().unwrap();
        out.extend_from_slice(it.output(0).unwrap().as_f32().unwrap());
    }
    out
}

/// Scale of the DequantizeLinear that produces the graph output.
fn output_step(model: &[u8]) -> f32 {
    let m = Model::parse(model).unwrap();
    let out = m.outputs().next().unwrap().unwrap().name;
    for n in m.nodes() {
        let n = n.unwrap();
        if n.outputs.first() == Some(&out) && n.op_type == "DequantizeLinear" {
            return m
                .initializer(n.input(1).unwrap())
                .unwrap()
                .unwrap()
                .f32_at(0)
                .unwrap();
        }
    }
    panic!("output is not produced by DequantizeLinear");
}

fn argmax(v: &[f32]) -> usize {
    v.iter()
        .enumerate()
        .fold((0, f32::MIN), |b, (i, &x)| if x > b.1 { (i, x) } else { b })
        .0
}

fn compare_int8(model_path: &Path) {
    let samples = samples();
    let bytes = std::fs::read(model_path).unwrap();
    let step = output_step(&bytes);
    let (want, got) = (
        ort_outputs(model_path, &samples),
        sprig_outputs(&bytes, &samples),
    );
    assert_eq!(want.len(), got.len());
    let worst = want
        .iter()
        .zip(&got)
        .map(|(a, b)| (a - b).abs())
        .fold(0f32, f32::max);
    assert!(
        worst <= step * 1.0001,
        "{}: max |sprig − ort| = {worst}, one step = {step}",
        model_path.display()
    );
    for (i, (w, g)) in want.chunks(10).zip(got.chunks(10)).enumerate() {
        assert_eq!(
            argmax(w),
            argmax(g),
            "{}: sample {i} argmax differs",
            model_path.display()
        );
    }
    println!(
        "{}: max diff {worst:.5} (step {step:.5}) over {} outputs",
        model_path.display(),
        want.len()
    );
}

#[test]
fn sprig_int8_export_agrees_with_onnxruntime_and_passes_the_checker() {
    let model = repo().join("boards/cortex-m/models/digits_int8.onnx");
    let check = Command::new(python())
        .args([
            "-c",
            "import onnx,sys; onnx.checker.check_model(onnx.load(sys.argv[1]), full_check=True)",
        ])
        .arg(&model)
        .output()
        .unwrap();
    assert!(
        check.status.success(),
        "onnx checker: {}",
        String::from_utf8_lossy(&check.stderr)
    );
    compare_int8(&model);
}

#[test]
fn onnxruntime_quantized_models_run_on_sprig() {
    let f32_model = repo().join("tests/fixtures/digits_student.f32.onnx");
    let samples = samples();
    for mode in ["per-tensor", "per-channel"] {
        let q = tmp(&format!("ort_{mode}.onnx"));
        py(&[
            "quantize".as_ref(),
            f32_model.as_os_str(),
            samples.as_os_str(),
            q.as_os_str(),
            mode.as_ref(),
        ]);
        compare_int8(&q);
        // Every Q/DQ pair around Conv, Gemm, MaxPool and Flatten is fused: 8 int8 steps remain.
        let bytes = std::fs::read(&q).unwrap();
        let steps = Model::parse(&bytes)
            .unwrap()
            .arena_report::<512, 256>()
            .unwrap()
            .steps;
        assert_eq!(steps, 8, "{mode}: {steps} steps after fusion");
    }
}

#[test]
fn float_model_agrees_with_onnxruntime() {
    let model = repo().join("tests/fixtures/digits_student.f32.onnx");
    let samples = samples();
    let (want, got) = (
        ort_outputs(&model, &samples),
        sprig_outputs(&std::fs::read(&model).unwrap(), &samples),
    );
    for (a, b) in got.iter().zip(&want) {
        assert!((a - b).abs() <= 1e-4 * b.abs().max(1.0), "{a} vs {b}");
    }
}

/// Seeded uniform [-1, 1) inputs for `model` (raw f32), `n` samples.
fn random_samples(model: &[u8], n: usize, name: &str) -> PathBuf {
    let m = Model::parse(model).unwrap();
    let numel = m.inputs().next().unwrap().unwrap().shape.unwrap().numel();
    let mut s = 0x2545f4914f6cdd1du64;
    let bytes: Vec<u8> = (0..n * numel)
        .flat_map(|_| {
            s ^= s << 13;
            s ^= s >> 7;
            s ^= s << 17;
            ((s >> 40) as f32 / (1u64 << 23) as f32 - 1.0).to_le_bytes()
        })
        .collect();
    let p = tmp(name);
    std::fs::write(&p, bytes).unwrap();
    p
}

/// The benchmark models from `bench/make_models.py` (DenseNet-BC shape: int8 Concat, average
/// pooling; GRU trajectory predictor) on 8 random inputs: int8 within one output step of
/// onnxruntime, float32 within 1e-4 relative.
#[test]
fn benchmark_models_agree_with_onnxruntime() {
    for name in ["densenet_bc", "gru_traj"] {
        for kind in ["f32", "int8"] {
            let path = repo().join(format!("bench/models/{name}.{kind}.onnx"));
            let bytes = std::fs::read(&path).unwrap();
            let samples = random_samples(&bytes, 8, &format!("{name}.{kind}.samples"));
            let (want, got) = (
                ort_outputs(&path, &samples),
                sprig_outputs(&bytes, &samples),
            );
            assert_eq!(want.len(), got.len());
            let scale = want.iter().fold(0f32, |m, v| m.max(v.abs()));
            let tol = if kind == "int8" {
                output_step(&bytes) * 1.0001
            } else {
                1e-4 * scale.max(1.0)
            };
            let worst = want
                .iter()
                .zip(&got)
                .map(|(a, b)| (a - b).abs())
                .fold(0f32, f32::max);
            println!("{name}.{kind}: max |sprig − ort| = {worst:.6} (allowed {tol:.6})");
            assert!(worst <= tol, "{name}.{kind}: max diff {worst} > {tol}");
        }
    }
}

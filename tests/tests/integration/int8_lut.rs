//! `DQ → element-wise op → Q` as one 256-entry lookup table (`Op::QLut`): for every op the
//! fusion covers, on int8 and uint8, over all 256 input codes, the fused plan's output is
//! bit-identical to the float path's (the same graph with the op's float result also a graph
//! output, which sprig cannot fuse), the same from a frozen plan, and within one output step
//! of onnxruntime. Cases come from
//! `tests/lut_cases.py`.

use crate::support::{f32s, generated_cases, onnx_files};
use sprig_runtime::{Interpreter, Model};
use std::path::Path;

/// Output 0 of `model` on `x`, the plan's step count, the op families it uses, and output 1
/// when there is one (the float model's op result).
fn run(model: &Path, x: &[f32], freeze: bool) -> (Vec<f32>, usize, Vec<&'static str>, Vec<f32>) {
    let bytes = std::fs::read(model).unwrap();
    let m = Model::parse(&bytes).unwrap();
    let steps = m.arena_report::<64, 32>().unwrap().steps;
    let mut arena = vec![0u8; m.arena_bytes().unwrap()];
    let mut it = Interpreter::new(&m, &mut arena).unwrap();
    it.set_input_f32(0, x).unwrap();
    it.invoke().unwrap();
    let y = it.output(0).unwrap().as_f32().unwrap().to_vec();
    if freeze {
        // A frozen plan (what a microcontroller loads) gives the same bits.
        let plan = it.freeze(&bytes).unwrap();
        let mut arena2 = vec![0u8; m.arena_bytes().unwrap()];
        let mut thawed = Interpreter::new_frozen(&bytes, &plan, &mut arena2).unwrap();
        thawed.set_input_f32(0, x).unwrap();
        thawed.invoke().unwrap();
        let t = thawed.output(0).unwrap().as_f32().unwrap().to_vec();
        assert_eq!(
            t.iter().map(|v| v.to_bits()).collect::<Vec<_>>(),
            y.iter().map(|v| v.to_bits()).collect::<Vec<_>>(),
            "{}: frozen plan differs",
            model.display()
        );
    }
    let f = match it.output_count() {
        2 => it.output(1).unwrap().as_f32().unwrap().to_vec(),
        _ => Vec::new(),
    };
    (y, steps, it.op_features().to_vec(), f)
}

/// Runs every case in `dir`: the fused plan (3 steps: Q, the 8-bit step, DQ) against the float
/// path (5 steps) bit for bit, and against onnxruntime within one output step (NaN float results
/// left out). Returns (cases, outputs compared, outputs one step away, NaN results).
fn check_cases(dir: &Path, family: &str) -> (usize, usize, usize, usize) {
    let mut cases = onnx_files(dir);
    cases.retain(|p| !p.to_string_lossy().ends_with(".float.onnx"));
    let (mut off_by_one, mut total, mut nan) = (0, 0, 0);
    for case in &cases {
        let stem = case.file_stem().unwrap().to_string_lossy().to_string();
        let x = f32s(&dir.join(format!("{stem}.x.f32")));
        let (fused, fused_steps, features, _) = run(case, &x, true);
        let (float, float_steps, _, f) = run(&dir.join(format!("{stem}.float.onnx")), &x, false);
        assert!(
            features.contains(&family) && fused_steps == 3,
            "{stem}: not fused ({fused_steps} steps, families {features:?})"
        );
        assert_eq!(float_steps, 5, "{stem}: float path");
        // Tables of the trigonometric, Mish and Gelu ops come with float-ops' libm functions,
        // and the plan says so (a firmware built from op_features() can compute them).
        let op = stem.split('_').next().unwrap_or("");
        if let Some(i) = sprig_runtime::ops::LUT_OPS.iter().position(|&n| n == op) {
            assert_eq!(
                features.contains(&"float-ops"),
                i >= sprig_runtime::ops::LUT_OPS_WITHOUT_FLOAT_OPS,
                "{stem}: families {features:?}"
            );
        }
        let bits = |v: &[f32]| v.iter().map(|f| f.to_bits()).collect::<Vec<_>>();
        assert_eq!(
            bits(&fused),
            bits(&float),
            "{stem}: 8-bit step differs from the float path"
        );
        let want = f32s(&dir.join(format!("{stem}.y0.f32")));
        let step = f32s(&dir.join(format!("{stem}.step.f32")))[0];
        assert_eq!(fused.len(), want.len(), "{stem}: output length");
        for (i, (g, w)) in fused.iter().zip(&want).enumerate() {
            // Quantizing NaN (Log, Sqrt of a negative) is not specified for 8-bit types:
            // sprig gives the zero point, onnxruntime the lowest code.
            if f[i].is_nan() {
                nan += 1;
                continue;
            }
            let d = (g - w).abs();
            assert!(
                d <= step * 1.0001,
                "{stem}[{i}]: sprig {g}, onnxruntime {w}"
            );
            off_by_one += usize::from(d > 0.0);
            total += 1;
        }
    }
    (cases.len(), total, off_by_one, nan)
}

#[test]
fn int8_lookup_tables_and_layout_steps_equal_the_float_path_and_onnxruntime() {
    let (dir, _) = generated_cases("lut_cases.py");
    let (cases, total, off, nan) = check_cases(&dir, "int8-lut");
    assert_eq!(cases, 76, "expected 38 ops (Gelu twice) × int8/uint8");
    println!(
        "int8 lookup tables: {total} outputs against onnxruntime, {off} one step away; \
         {nan} NaN results left out"
    );
    let (cases, total, off, _) = check_cases(&dir.join("layout"), "layout-ops");
    assert_eq!(cases, 26, "expected 13 layout cases × int8/uint8");
    println!("int8 layout steps: {total} outputs against onnxruntime, {off} one step away");
    let _ = std::fs::remove_dir_all(&dir);
}

//! ONNX's integer operators (QLinearConv, QLinearMatMul, ConvInteger, MatMulInteger) against
//! onnxruntime on cases from `tests/qoperator_cases.py`: the symmetric-int8-weight cases run
//! sprig's fused int8 layer (optimized kernels), the others the integer reference kernel.
//! 8-bit outputs may differ by one quantization step where onnxruntime's float32
//! requantization and sprig's exact fixed-point one round a near-tie differently; int32 outputs
//! must be identical. The uint8-activation × int8-weight cases take ONNX's reference evaluator
//! as the answer: onnxruntime's AVX2 kernels without VNNI saturate pairs of those products in
//! int16 (up to 28 steps off on such a CPU; see tests/qoperator_cases.py). Dynamically quantized files (`tests/dynamic_quant_cases.py`, written by
//! onnxruntime's `quantize_dynamic`) add DynamicQuantizeLinear and run-time zero points.

use crate::support::{check_cases_against_onnxruntime, generated_cases};
use sprig_runtime::{DType, Interpreter, Model};

#[test]
fn integer_operators_match_onnxruntime() {
    let (dir, cases) = generated_cases("qoperator_cases.py");
    assert_eq!(cases.len(), 9, "expected 9 generated cases");
    let (mut total, mut off_by_one) = (0usize, 0usize);
    for case in &cases {
        let stem = case.file_stem().unwrap().to_string_lossy().to_string();
        let bytes = std::fs::read(case).unwrap();
        let model = Model::parse(&bytes).unwrap();
        let mut arena = vec![0u8; model.arena_bytes().unwrap()];
        let mut it = Interpreter::new(&model, &mut arena)
            .unwrap_or_else(|e| panic!("{stem}: plan refused: {e}"));
        it.set_input(
            0,
            &std::fs::read(dir.join(format!("{stem}.x.bin"))).unwrap(),
        )
        .unwrap();
        it.invoke().unwrap();
        let got = it.output(0).unwrap();
        let want = std::fs::read(dir.join(format!("{stem}.y.bin"))).unwrap();
        assert_eq!(got.data.len(), want.len(), "{stem}: output bytes");
        match got.dtype {
            DType::I32 => assert_eq!(got.data, want.as_slice(), "{stem}: int32 output differs"),
            DType::U8 | DType::I8 => {
                let signed = got.dtype == DType::I8;
                let v = |b: u8| if signed { b as i8 as i32 } else { b as i32 };
                for (i, (&g, &w)) in got.data.iter().zip(&want).enumerate() {
                    let d = (v(g) - v(w)).abs();
                    assert!(
                        d <= 1,
                        "{stem}[{i}]: sprig {} vs onnxruntime {}",
                        v(g),
                        v(w)
                    );
                    off_by_one += d as usize;
                }
                total += want.len();
            }
            t => panic!("{stem}: unexpected output type {t:?}"),
        }
    }
    eprintln!("8-bit outputs: {off_by_one} of {total} one step away from onnxruntime");
    assert!(
        off_by_one * 100 <= total,
        "{off_by_one} of {total} 8-bit outputs differ by a step (more than 1%)"
    );
    let _ = std::fs::remove_dir_all(&dir);
}

#[test]
fn dynamically_quantized_models_match_onnxruntime() {
    let (dir, cases) = generated_cases("dynamic_quant_cases.py");
    assert_eq!(cases.len(), 4, "expected 4 generated cases");
    // Integer products are exact and the float rescaling runs in the same order, so the
    // outputs agree to float32 rounding (identical with onnxruntime 1.32).
    check_cases_against_onnxruntime(&dir, &cases, 1e-6);
}

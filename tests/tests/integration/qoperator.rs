//! ONNX's integer operators (QLinearConv, QLinearMatMul, ConvInteger, MatMulInteger) against
//! onnxruntime on cases from `tests/qoperator_cases.py`: the symmetric-int8-weight cases run
//! sprig's fused int8 layer (optimized kernels), the others the integer reference kernel.
//! 8-bit outputs may differ by one quantization step where onnxruntime's float32
//! requantization and sprig's exact fixed-point one round a near-tie differently; int32 outputs
//! must be identical.

use crate::support::repo;
use sprig_runtime::{DType, Interpreter, Model};
use std::path::PathBuf;
use std::process::Command;

#[test]
fn integer_operators_match_onnxruntime() {
    let dir = std::env::temp_dir().join(format!("sprig-qoperator-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let python = std::env::var_os("SPRIG_PYTHON")
        .map(PathBuf::from)
        .unwrap_or_else(|| repo().join(".venv/bin/python"));
    let out = Command::new(&python)
        .arg(repo().join("tests/qoperator_cases.py"))
        .arg(&dir)
        .output()
        .unwrap_or_else(|e| panic!("{}: {e} (run ./tests/run.sh first)", python.display()));
    assert!(
        out.status.success(),
        "qoperator_cases.py failed: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    let mut cases: Vec<_> = std::fs::read_dir(&dir)
        .unwrap()
        .flatten()
        .map(|e| e.path())
        .filter(|p| p.extension().is_some_and(|e| e == "onnx"))
        .collect();
    cases.sort();
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

//! float16 models (`tests/float16_cases.py`): float16 weights, inputs and outputs, or float32
//! I/O around a float16 body with Casts. sprig computes them in float32 (f16 values widened at
//! plan time, `Cast` to float16 rounding to f16), so it agrees with the float16 reference within
//! float16 rounding.

use crate::support::{f32s, repo};
use sprig_runtime::{DType, Interpreter, Model};
use std::path::PathBuf;
use std::process::Command;

#[test]
fn float16_models_agree_with_the_reference() {
    let dir = std::env::temp_dir().join(format!("sprig-f16-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let python = std::env::var_os("SPRIG_PYTHON")
        .map(PathBuf::from)
        .unwrap_or_else(|| repo().join(".venv/bin/python"));
    let out = Command::new(&python)
        .arg(repo().join("tests/float16_cases.py"))
        .arg(&dir)
        .output()
        .unwrap_or_else(|e| panic!("{}: {e} (run ./tests/run.sh first)", python.display()));
    assert!(
        out.status.success(),
        "float16_cases.py failed: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    for name in ["f16_io", "f16_keep_io"] {
        let bytes = std::fs::read(dir.join(format!("{name}.onnx"))).unwrap();
        let model = Model::parse(&bytes).unwrap();
        let mut arena = vec![0u8; model.arena_bytes().unwrap()];
        let mut it = Interpreter::new(&model, &mut arena).unwrap();
        // float16 inputs and outputs are exchanged as float32.
        assert_eq!(it.input_info(0).unwrap().1, DType::F32);
        it.set_input_f32(0, &f32s(&dir.join(format!("{name}.x.f32"))))
            .unwrap();
        it.invoke().unwrap();
        let got = it.output(0).unwrap();
        let got = got.as_f32().unwrap();
        let want = f32s(&dir.join(format!("{name}.y.f32")));
        assert_eq!(got.len(), want.len());
        for (i, (g, w)) in got.iter().zip(&want).enumerate() {
            // A few float16 ulps (2^-10 relative).
            assert!(
                (g - w).abs() <= 3e-3 * w.abs().max(1.0),
                "{name}[{i}]: sprig {g}, reference {w}"
            );
        }
        let worst = got
            .iter()
            .zip(&want)
            .map(|(g, w)| (g - w).abs())
            .fold(0f32, f32::max);
        println!("{name}: max |sprig − reference| = {worst:.5}");
    }
    let _ = std::fs::remove_dir_all(&dir);
}

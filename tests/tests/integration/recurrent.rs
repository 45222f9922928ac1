//! RNN, GRU and LSTM beyond ONNX's node tests — bidirectional, reverse, `sequence_lens`, initial
//! states, peepholes, `linear_before_reset`, batch-first layout, non-default activations and
//! several outputs of one node — against onnxruntime (onnx's reference implementation for
//! layout 1, which onnxruntime refuses). Cases come from `tests/recurrent_cases.py`.

use crate::support::{f32s, generated_cases, run_f32};

#[test]
fn recurrent_layers_match_onnxruntime() {
    let (dir, cases) = generated_cases("recurrent_cases.py");
    assert_eq!(cases.len(), 8, "expected 8 generated cases");
    for case in &cases {
        let stem = case.file_stem().unwrap().to_string_lossy().to_string();
        let x = f32s(&dir.join(format!("{stem}.x.f32")));
        let outputs = run_f32(&std::fs::read(case).unwrap(), &x, &stem);
        assert!(!outputs.is_empty());
        for (k, got) in outputs.iter().enumerate() {
            let want = f32s(&dir.join(format!("{stem}.y{k}.f32")));
            assert_eq!(got.len(), want.len(), "{stem} output {k}: length");
            for (i, (g, w)) in got.iter().zip(&want).enumerate() {
                assert!(
                    (g - w).abs() <= 1e-5 + 1e-4 * w.abs(),
                    "{stem} output {k}[{i}]: sprig {g}, reference {w}"
                );
            }
        }
    }
    let _ = std::fs::remove_dir_all(&dir);
}

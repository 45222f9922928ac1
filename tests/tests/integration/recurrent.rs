//! RNN, GRU and LSTM beyond ONNX's node tests — bidirectional, reverse, `sequence_lens`, initial
//! states, peepholes, `linear_before_reset`, batch-first layout, non-default activations and
//! several outputs of one node — against onnxruntime (onnx's reference implementation for
//! layout 1, which onnxruntime refuses). Cases come from `tests/recurrent_cases.py`.

use crate::support::{f32s, generated_cases};
use sprig_runtime::{Interpreter, Model};

#[test]
fn recurrent_layers_match_onnxruntime() {
    let (dir, cases) = generated_cases("recurrent_cases.py");
    assert_eq!(cases.len(), 8, "expected 8 generated cases");
    for case in &cases {
        let stem = case.file_stem().unwrap().to_string_lossy().to_string();
        let bytes = std::fs::read(case).unwrap();
        let model = Model::parse(&bytes).unwrap();
        let mut arena = vec![0u8; model.arena_bytes().unwrap()];
        let mut it = Interpreter::new(&model, &mut arena)
            .unwrap_or_else(|e| panic!("{stem}: plan refused: {e}"));
        it.set_input_f32(0, &f32s(&dir.join(format!("{stem}.x.f32"))))
            .unwrap();
        it.invoke().unwrap();
        assert!(it.output_count() >= 1);
        for k in 0..it.output_count() {
            let want = f32s(&dir.join(format!("{stem}.y{k}.f32")));
            let got = it.output(k).unwrap();
            let got = got.as_f32().unwrap();
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

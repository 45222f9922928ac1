//! Blocks of mobile architectures built from the ops sprig's own exports do not use (HardSwish,
//! squeeze-excite with ReduceMean and HardSigmoid, reflect Pad, PRelu, DepthToSpace as
//! PixelShuffle, LogSoftmax, Split, Resize, ConvTranspose, opset-18 axes inputs, ...) against onnxruntime: the ops as
//! exporters chain them, where ONNX's node tests check one node at a time. Cases come from
//! `tests/mobile_cases.py`.

use crate::support::{f32s, generated_cases};
use sprig_runtime::{Interpreter, Model};

#[test]
fn mobile_blocks_match_onnxruntime() {
    let (dir, cases) = generated_cases("mobile_cases.py");
    assert_eq!(cases.len(), 6, "expected 6 generated cases");
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
        let want = f32s(&dir.join(format!("{stem}.y0.f32")));
        let got = it.output(0).unwrap();
        let got = got.as_f32().unwrap();
        assert_eq!(got.len(), want.len(), "{stem}: output length");
        let worst = got
            .iter()
            .zip(&want)
            .map(|(g, w)| (g - w).abs() / (1.0 + w.abs()))
            .fold(0f32, f32::max);
        println!(
            "{stem}: {} outputs, max relative difference from onnxruntime {worst:.2e}",
            got.len()
        );
        assert!(
            worst <= 1e-5,
            "{stem}: sprig differs from onnxruntime by {worst}"
        );
    }
    let _ = std::fs::remove_dir_all(&dir);
}

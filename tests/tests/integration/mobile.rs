//! Blocks of mobile architectures built from the ops sprig's own exports do not use (HardSwish,
//! squeeze-excite with ReduceMean and HardSigmoid, reflect Pad, PRelu, DepthToSpace as
//! PixelShuffle, LogSoftmax, Split, Resize, ConvTranspose, opset-18 axes inputs, a pre-norm
//! transformer block with LayerNormalization and self-attention, InstanceNormalization and
//! GlobalMaxPool, an attention mask built with comparisons, Not/And/Or/Xor and Where, Mish,
//! opset-20 Gelu, Sin and Cos, a classifier's top-5 with TopK, ...) against onnxruntime: the ops as exporters chain them, where ONNX's node
//! tests check one node at a time. Cases come from `tests/mobile_cases.py`.

use crate::support::{f32s, generated_cases, run_f32};

#[test]
fn mobile_blocks_match_onnxruntime() {
    let (dir, cases) = generated_cases("mobile_cases.py");
    assert_eq!(cases.len(), 13, "expected 13 generated cases");
    for case in &cases {
        let stem = case.file_stem().unwrap().to_string_lossy().to_string();
        let x = f32s(&dir.join(format!("{stem}.x.f32")));
        let outputs = run_f32(&std::fs::read(case).unwrap(), &x, &stem);
        let got = &outputs[0];
        let want = f32s(&dir.join(format!("{stem}.y0.f32")));
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

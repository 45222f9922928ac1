//! Blocks of mobile architectures built from the ops sprig's own exports do not use (HardSwish,
//! squeeze-excite with ReduceMean and HardSigmoid, reflect Pad, PRelu, DepthToSpace as
//! PixelShuffle, LogSoftmax, Split, Resize, ConvTranspose, opset-18 axes inputs, a pre-norm
//! transformer block with LayerNormalization and self-attention, InstanceNormalization and
//! GlobalMaxPool, an attention mask built with comparisons, Not/And/Or/Xor and Where, Mish,
//! opset-20 Gelu, Sin and Cos, a classifier's top-5 with TopK, ...) against onnxruntime: the ops as exporters chain them, where ONNX's node
//! tests check one node at a time. Cases come from `tests/mobile_cases.py`.

use crate::support::{check_cases_against_onnxruntime, generated_cases};

#[test]
fn mobile_blocks_match_onnxruntime() {
    let (dir, cases) = generated_cases("mobile_cases.py");
    assert_eq!(cases.len(), 13, "expected 13 generated cases");
    check_cases_against_onnxruntime(&dir, &cases, 1e-5);
}

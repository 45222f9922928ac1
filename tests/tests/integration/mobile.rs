//! Blocks of mobile architectures built from the ops sprig's own exports do not use (HardSwish,
//! squeeze-excite with ReduceMean and HardSigmoid, reflect Pad, PRelu, DepthToSpace as
//! PixelShuffle, LogSoftmax, Split, Resize, ConvTranspose, opset-18 axes inputs, a pre-norm
//! transformer block with LayerNormalization and self-attention, InstanceNormalization and
//! GlobalMaxPool, an attention mask built with comparisons, Not/And/Or/Xor and Where, Mish,
//! opset-20 Gelu, Sin and Cos, a classifier's top-5 with TopK, LRN and MeanVarianceNormalization,
//! index plumbing with CumSum, OneHot, GatherND, ScatterND, EyeLike and ReverseSequence,
//! attention written with Einsum, GridSample flow warps, on-device losses, a keyword-spotting
//! model with its audio front end (window, STFT, mel filterbank), torchaudio's 400-point
//! mel spectrogram and opset-20 DFTs, ...)
//! against onnxruntime: the ops as exporters chain them, where ONNX's node
//! tests check one node at a time. Cases come from `tests/mobile_cases.py`.

use crate::support::{check_cases_against_onnxruntime, generated_cases};

#[test]
fn mobile_blocks_match_onnxruntime() {
    let (dir, cases) = generated_cases("mobile_cases.py");
    assert_eq!(cases.len(), 24, "expected 24 generated cases");
    // The blocks of `extra-ops` and `signal-ops` ops say so, which is what a firmware for them
    // is built with.
    for case in &cases {
        let bytes = std::fs::read(case).unwrap();
        let model = sprig_runtime::Model::parse(&bytes).unwrap();
        let mut arena = vec![0u8; model.arena_bytes().unwrap()];
        let it = sprig_runtime::Interpreter::new(&model, &mut arena).unwrap();
        let name = case.file_stem().unwrap().to_string_lossy();
        let extra = [
            "caffe_norms",
            "index_arithmetic",
            "einsum_attention",
            "flow_warp",
            "classifier_loss",
        ]
        .iter()
        .any(|c| name.starts_with(c));
        assert_eq!(it.op_features().contains(&"extra-ops"), extra, "{name}");
        let signal = [
            "kws_frontend",
            "kws_frontend_small",
            "mel_spectrogram_400",
            "stft_400",
            "dft_opset20",
        ]
        .contains(&name.as_ref());
        assert_eq!(it.op_features().contains(&"signal-ops"), signal, "{name}");
        // Windows and mel matrices read nothing: computed once when planned, never a step.
        let constant_step = |op: &str| op.ends_with("Window") || op == "MelWeightMatrix";
        for i in 0..it.step_count() {
            assert!(
                !constant_step(it.step_op(i)),
                "{name}: {} left as a step",
                it.step_op(i)
            );
        }
        // Recomputed on every invoke instead (PlanOptions::recompute_constants), they give the
        // same bits.
        if name.starts_with("kws_frontend") {
            let x = std::fs::read(dir.join(format!("{name}.x.f32"))).unwrap();
            let run = |recompute: bool| {
                let opts = sprig_runtime::PlanOptions {
                    recompute_constants: recompute,
                    ..Default::default()
                };
                let mut arena = vec![0u8; model.arena_bytes_with(opts).unwrap()];
                let mut it =
                    sprig_runtime::Interpreter::new_with(&model, &mut arena, opts).unwrap();
                let steps: Vec<_> = (0..it.step_count()).map(|i| it.step_op(i)).collect();
                it.set_input(0, &x).unwrap();
                it.invoke().unwrap();
                (it.output(0).unwrap().data.to_vec(), steps)
            };
            let ((once, _), (every, steps)) = (run(false), run(true));
            assert_eq!(once, every, "{name}");
            assert!(steps.iter().any(|s| constant_step(s)), "{name}: {steps:?}");
        }
    }
    check_cases_against_onnxruntime(&dir, &cases, 1e-5);
}

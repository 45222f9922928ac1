//! The optimized kernels (AVX2, AVX-512 VNNI, Arm dotprod) and the portable ones give the same
//! bytes, and switching between them with `set_portable_only` never breaks an interpreter
//! planned before the switch. Its own test binary: the switch is process-wide.

use sprig_runtime::kernels::{kernel_set, set_portable_only};
use sprig_runtime::{Interpreter, Model};
use std::path::Path;

fn outputs(model: &Model<'_>, plan_portable: bool, run_portable: bool) -> Vec<Vec<u8>> {
    set_portable_only(plan_portable);
    let mut arena = vec![0u8; model.arena_bytes().unwrap()];
    let mut it = Interpreter::new(model, &mut arena).unwrap();
    set_portable_only(run_portable);
    let n = it.input_info(0).unwrap().2.numel();
    (0..4)
        .map(|s| {
            let x: Vec<f32> = (0..n)
                .map(|i| ((i * 7 + s * 13) % 97) as f32 / 97.0)
                .collect();
            it.set_input_f32(0, &x).unwrap();
            it.invoke().unwrap();
            let out = it.output(0).unwrap();
            out.as_f32()
                .unwrap()
                .iter()
                .flat_map(|v| v.to_le_bytes())
                .collect()
        })
        .collect()
}

#[test]
fn optimized_and_portable_kernels_agree_bit_for_bit_across_switches() {
    let root = Path::new(env!("CARGO_MANIFEST_DIR")).join("..");
    for rel in [
        "bench/models/fashion_cnn.int8.onnx",
        "bench/models/resnet20.int8.onnx",
    ] {
        let bytes = std::fs::read(root.join(rel)).unwrap();
        let model = Model::parse(&bytes).unwrap();
        set_portable_only(false);
        let fast_set = kernel_set();
        let fast_arena = model.arena_bytes().unwrap();
        set_portable_only(true);
        assert_eq!(kernel_set(), "portable");
        let portable_arena = model.arena_bytes().unwrap();
        assert!(
            portable_arena <= fast_arena,
            "{rel}: portable arena {portable_arena} > {fast_set} arena {fast_arena}"
        );
        let reference = outputs(&model, true, true);
        for (plan, run) in [(false, false), (false, true), (true, false)] {
            assert_eq!(
                outputs(&model, plan, run),
                reference,
                "{rel}: planned portable={plan}, run portable={run} ({fast_set})"
            );
        }
        eprintln!("{rel}: {fast_set} arena {fast_arena} B, portable {portable_arena} B");
    }
    set_portable_only(false);
}

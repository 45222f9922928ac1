//! Shape arithmetic as exporters write it (`x.view(x.size(0), -1)`, a computed channel
//! shuffle, an upsample to a computed size, `expand_as`, Range indices reversed by a Slice),
//! folded at plan time by sprig-runtime: every output, float or int64, equals onnxruntime's,
//! a frozen plan gives the same bytes, and none of the shape chain runs per inference; chains
//! that cannot be resolved (an index past the rank, a division by zero, a Range too long to
//! fold) are refused at plan time with the reason. Cases come from `tests/shape_cases.py`.

use crate::support::{f32s, files_with_extension, generated_cases};
use sprig_runtime::{Interpreter, Model};

/// Every output's bytes, and the step op names.
fn run(bytes: &[u8], x: &[f32], frozen: Option<&[u8]>) -> (Vec<Vec<u8>>, Vec<&'static str>) {
    let m = Model::parse(bytes).unwrap();
    let mut arena = vec![0u8; m.arena_bytes().unwrap()];
    let mut it = match frozen {
        Some(plan) => Interpreter::new_frozen(bytes, plan, &mut arena).unwrap(),
        None => Interpreter::new(&m, &mut arena).unwrap(),
    };
    it.set_input_f32(0, x).unwrap();
    it.invoke().unwrap();
    let outs = (0..it.output_count())
        .map(|k| it.output(k).unwrap().data.to_vec())
        .collect();
    let ops = (0..it.step_count()).map(|i| it.step_op(i)).collect();
    (outs, ops)
}

#[test]
fn shape_chains_fold_at_plan_time_and_match_onnxruntime() {
    let (dir, cases) = generated_cases("shape_cases.py");
    assert_eq!(cases.len(), 8, "expected 8 generated cases");
    let mut frozen = 0;
    for case in &cases {
        let stem = case.file_stem().unwrap().to_string_lossy().to_string();
        let bytes = std::fs::read(case).unwrap();
        let x = f32s(&dir.join(format!("{stem}.x.f32")));
        let (outs, ops) = run(&bytes, &x, None);
        for (k, got) in outs.iter().enumerate() {
            let want = std::fs::read(dir.join(format!("{stem}.y{k}.bin"))).unwrap();
            assert_eq!(got.len(), want.len(), "{stem} output {k}: byte length");
            if k == 0 {
                // Float results: rounding may differ in the last bits (MatMul order).
                let (g, w) = (f32s_of(got), f32s_of(&want));
                let worst = g
                    .iter()
                    .zip(&w)
                    .map(|(a, b)| (a - b).abs() / (1.0 + b.abs()))
                    .fold(0f32, f32::max);
                assert!(worst <= 1e-6, "{stem}: differs from onnxruntime by {worst}");
            } else {
                assert_eq!(got, &want, "{stem} output {k}: int64 values differ");
            }
        }
        // Nothing of the shape chain is a step.
        for op in &ops {
            assert!(
                !matches!(
                    *op,
                    "Shape" | "Size" | "ConstantOfShape" | "Range" | "Equal" | "Where" | "Concat"
                ),
                "{stem}: {op} runs per inference ({ops:?})"
            );
        }
        if stem.starts_with("flatten_view") {
            assert_eq!(ops.len(), 2, "{stem}: Reshape and MatMul only, got {ops:?}");
        }
        // A frozen plan (int8 and data-movement plans only) carries the folded values in its
        // persistent image: the three cases without float steps check it.
        if matches!(
            stem.as_str(),
            "reversed_channels" | "upsample_to_size" | "upsample_scale_factor"
        ) {
            let m = Model::parse(&bytes).unwrap();
            let mut arena = vec![0u8; m.arena_bytes().unwrap()];
            let it = Interpreter::new(&m, &mut arena).unwrap();
            let plan = it.freeze(&bytes).unwrap();
            let (thawed, _) = run(&bytes, &x, Some(&plan));
            assert_eq!(thawed, outs, "{stem}: frozen plan differs");
            frozen += 1;
        }
        println!(
            "{stem}: {} outputs equal onnxruntime's; steps {ops:?}",
            outs.len()
        );
    }
    assert_eq!(frozen, 3, "frozen-plan cases");
    // Chains that cannot be resolved are refused when the plan is made, with the reason.
    let bad = files_with_extension(&dir, "bad");
    assert_eq!(bad.len(), 3, "expected 3 refused cases");
    for case in &bad {
        let why = std::fs::read_to_string(case.with_extension("why")).unwrap();
        let bytes = std::fs::read(case).unwrap();
        let m = Model::parse(&bytes).unwrap();
        let err = m
            .arena_bytes()
            .err()
            .unwrap_or_else(|| panic!("{}: planned, expected a refusal", case.display()));
        assert!(
            err.to_string().contains(&why),
            "{}: {err} does not say {why:?}",
            case.display()
        );
        println!("{}: refused: {err}", case.display());
    }
    let _ = std::fs::remove_dir_all(&dir);
}

fn f32s_of(b: &[u8]) -> Vec<f32> {
    b.chunks_exact(4)
        .map(|c| f32::from_le_bytes([c[0], c[1], c[2], c[3]]))
        .collect()
}

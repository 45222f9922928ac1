//! Hostile model files: truncations and random mutations of real models must give typed errors,
//! never a panic, and an arena one byte too small must be refused. (A bounded in-process fuzz
//! loop: deterministic, so any failure reproduces from its seed.)

use crate::support::repo;
use sprig_runtime::{Error, Interpreter, Model, PlanOptions};

fn seeds() -> Vec<Vec<u8>> {
    let root = repo();
    let mut v = vec![
        std::fs::read(root.join("boards/cortex-m/models/digits_int8.onnx")).unwrap(),
        // A float16 model: the half-precision plan's code paths.
        std::fs::read(root.join("tests/fixtures/digits_demo.f16.onnx")).unwrap(),
    ];
    for t in [
        "test_conv_with_strides_padding",
        "test_gemm_all_attributes",
        "test_maxpool_2d_pads",
        "test_softmax_axis_1",
        "test_transpose_all_permutations_3",
        "test_dequantizelinear_axis",
    ] {
        if let Ok(b) = std::fs::read(format!(
            "/usr/share/libonnx-testdata/data/node/{t}/model.onnx"
        )) {
            v.push(b);
        }
    }
    v
}

/// Parses, plans and (for small plans) runs a model, widened and with half-precision
/// arithmetic; any outcome but a panic is fine (the first error is returned).
fn exercise(bytes: &[u8]) -> Result<(), Error> {
    let widened = exercise_with(bytes, PlanOptions::default());
    let half = exercise_with(
        bytes,
        PlanOptions {
            half_arithmetic: true,
            ..Default::default()
        },
    );
    widened.and(half)
}

fn exercise_with(bytes: &[u8], opts: PlanOptions) -> Result<(), Error> {
    let model = Model::parse(bytes)?;
    let need = model.arena_bytes_with(opts)?;
    if need > 1 << 20 {
        return Ok(());
    }
    let mut arena = vec![0u8; need];
    let mut it = Interpreter::new_with(&model, &mut arena, opts)?;
    it.invoke()?;
    for i in 0..it.output_count() {
        it.output(i)?;
    }
    Ok(())
}

struct Rng(u64);
impl Rng {
    fn next(&mut self) -> u64 {
        self.0 ^= self.0 << 13;
        self.0 ^= self.0 >> 7;
        self.0 ^= self.0 << 17;
        self.0
    }
}

#[test]
fn every_truncation_is_a_typed_error() {
    for s in seeds() {
        for len in 0..s.len() {
            let r = exercise(&s[..len]);
            if len == 0 {
                assert!(r.is_err(), "an empty file must be refused");
            }
        }
    }
}

#[test]
fn random_mutations_never_panic() {
    let seeds = seeds();
    let mut rng = Rng(0x9e3779b97f4a7c15);
    let mut refused = 0;
    let n = 20_000;
    for _ in 0..n {
        let mut b = seeds[(rng.next() as usize) % seeds.len()].clone();
        for _ in 0..1 + rng.next() % 4 {
            let at = (rng.next() as usize) % b.len().max(1);
            match rng.next() % 4 {
                0 => b[at] = rng.next() as u8,
                1 => b[at] ^= 1 << (rng.next() % 8),
                2 => b.insert(at, rng.next() as u8),
                _ => {
                    b.remove(at);
                }
            }
        }
        refused += exercise(&b).is_err() as usize;
    }
    // Most mutations must be caught; some land in data bytes and are valid models.
    assert!(
        refused > n / 10,
        "only {refused} of {n} mutated files were refused"
    );
}

/// The fuzz target's checked-in seed corpus and every input it once crashed on
/// (runtime/fuzz/regressions): each must parse, plan and run or give a typed error.
#[test]
fn fuzz_corpus_and_regressions_replay() {
    let fuzz = repo().join("runtime/fuzz");
    let mut n = 0;
    for dir in ["corpus/parse_plan", "regressions"] {
        for entry in std::fs::read_dir(fuzz.join(dir)).unwrap() {
            let path = entry.unwrap().path();
            if path.extension().is_some_and(|e| e == "md") {
                continue;
            }
            let _ = exercise(&std::fs::read(&path).unwrap());
            n += 1;
        }
    }
    assert!(n >= 100, "only {n} fuzz corpus files found");
}

#[test]
fn small_arena_is_refused_with_sizes() {
    let all = seeds();
    let b = &all[0];
    let model = Model::parse(b).unwrap();
    let need = model.arena_bytes().unwrap();
    let mut arena = vec![0u8; need - 16];
    match Interpreter::new(&model, &mut arena) {
        Err(Error::ArenaTooSmall { needed, given }) => {
            assert_eq!((needed, given), (need, need - 16))
        }
        Err(e) => panic!("wrong error {e}"),
        Ok(_) => {
            // The 15 bytes of alignment slack may be unused when the buffer happens to be
            // aligned; one more byte short must fail regardless.
            let mut arena = vec![0u8; need - 32];
            assert!(matches!(
                Interpreter::new(&model, &mut arena),
                Err(Error::ArenaTooSmall { .. })
            ));
        }
    };
}

#[test]
fn graph_cycle_and_undefined_tensor_are_reported() {
    // Node reading its own output: the name is not defined when the node is read.
    let mut b = Vec::new();
    let mut node = Vec::new();
    for (f, s) in [(1u8, "y"), (2, "y"), (4, "Relu")] {
        node.push((f << 3) | 2);
        node.push(s.len() as u8);
        node.extend_from_slice(s.as_bytes());
    }
    let mut out_vi = vec![0x0a, 1, b'y'];
    let mut graph = vec![0x0a, node.len() as u8];
    graph.extend_from_slice(&node);
    graph.push(0x62);
    graph.push(out_vi.len() as u8);
    graph.append(&mut out_vi);
    b.extend_from_slice(&[0x42, 2, 0x10, 13]); // opset_import { version: 13 }
    b.push(0x3a);
    b.push(graph.len() as u8);
    b.extend_from_slice(&graph);
    let model = Model::parse(&b).unwrap();
    match model.arena_bytes() {
        Err(Error::UndefinedTensor { name }) => assert_eq!(name.as_str(), "y"),
        other => panic!("expected UndefinedTensor, got {other:?}"),
    }
}

/// Plans `model` and, when that works, feeds it `CASE.in<k>.bin` and invokes it: the stage
/// that failed ("plan" or "invoke") and its error message, if any.
fn plan_and_invoke(
    model: &Model,
    dir: &std::path::Path,
    name: &str,
) -> Result<(), (&'static str, String)> {
    let at = |stage: &'static str| move |e: Error| (stage, e.to_string());
    let n = model.arena_bytes().map_err(at("plan"))?;
    let mut arena = vec![0u8; n];
    let mut it = Interpreter::new(model, &mut arena).map_err(at("plan"))?;
    for k in 0..it.input_count() {
        let feed = std::fs::read(dir.join(format!("{name}.in{k}.bin")))
            .unwrap_or_else(|_| panic!("{name}: planned, but it should not be"));
        it.set_input(k, &feed).map_err(at("invoke"))?;
    }
    it.invoke().map_err(at("invoke"))
}

/// Wrong parameters in a model file (`tests/invalid_cases.py`: Einsum equations, index tuple
/// shapes, OneHot depth, CumSum axis, ...) are refused when planned, and out-of-range run-time
/// indices when invoked, each with an error whose message says what was wrong.
#[test]
fn invalid_op_parameters_give_named_errors() {
    let (dir, cases) = crate::support::generated_cases("invalid_cases.py");
    assert_eq!(cases.len(), 29, "expected 29 generated cases");
    for case in &cases {
        let name = case.file_stem().unwrap().to_string_lossy().to_string();
        let want = std::fs::read_to_string(case.with_extension("want")).unwrap();
        let (want_stage, text) = want.split_once(": ").unwrap();
        let bytes = std::fs::read(case).unwrap();
        let model = Model::parse(&bytes).unwrap();
        let Err((stage, err)) = plan_and_invoke(&model, &dir, &name) else {
            panic!("{name}: ran without an error");
        };
        assert_eq!(stage, want_stage, "{name}: refused at {stage}: {err}");
        assert!(
            err.contains(text),
            "{name}: expected `{text}` in the error, got `{err}`"
        );
        println!("{name}: {err}");
    }
    let _ = std::fs::remove_dir_all(&dir);
}

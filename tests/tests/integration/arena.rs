//! The arena target: every benchmark and fixture model plans its working memory within 1.1× of
//! the liveness lower bound (the most bytes live at one step, which no plan can beat).

use crate::support::repo;
use sprig_runtime::Model;
use std::path::PathBuf;

/// Every ONNX file among the benchmark, firmware and fixture models.
fn models() -> Vec<PathBuf> {
    let root = repo();
    ["bench/models", "boards/cortex-m/models", "tests/fixtures"]
        .iter()
        .flat_map(|dir| std::fs::read_dir(root.join(dir)).unwrap().flatten())
        .map(|e| e.path())
        .filter(|p| p.extension().is_some_and(|x| x == "onnx"))
        .collect()
}

#[test]
fn working_arena_is_within_ten_percent_of_the_liveness_bound() {
    let mut n = 0;
    for p in models() {
        let bytes = std::fs::read(&p).unwrap();
        let r = Model::parse(&bytes)
            .unwrap()
            .arena_report::<512, 256>()
            .unwrap();
        let ratio = r.working as f64 / r.working_lower_bound.max(1) as f64;
        println!(
            "{}: working {} / bound {} = {ratio:.3}",
            p.display(),
            r.working,
            r.working_lower_bound
        );
        assert!(
            ratio <= 1.1,
            "{}: working arena {ratio:.3}× the bound",
            p.display()
        );
        n += 1;
    }
    assert!(n >= 10, "only {n} models found");
}

/// `InterpreterWith::new_in` (the tables built in a caller's slot — a `static` on a
/// microcontroller) plans exactly what `new` does: the same arena layout and, on the same input,
/// the same output bytes, for every benchmark and fixture model.
#[test]
fn planning_in_place_equals_planning_on_the_stack() {
    use sprig_runtime::{Interpreter, InterpreterWith};
    use std::mem::MaybeUninit;
    let mut n = 0;
    for p in models() {
        let bytes = std::fs::read(&p).unwrap();
        let model = Model::parse(&bytes).unwrap();
        let run = |it: &mut InterpreterWith<'_, '_, 512, 256>| {
            for i in 0..it.input_count() {
                let x = it.input_mut(i).unwrap();
                for (k, b) in x.iter_mut().enumerate() {
                    *b = (k * 7 % 61) as u8 & 0x3f; // small finite values in any dtype
                }
            }
            it.invoke().unwrap();
            (it.arena_report(), it.output(0).unwrap().data.to_vec())
        };
        let size = model.arena_bytes().unwrap();
        let (mut a1, mut a2) = (vec![0u8; size], vec![0u8; size]);
        let on_stack = run(&mut Interpreter::new(&model, &mut a1).unwrap());
        let mut slot = Box::new(MaybeUninit::uninit());
        let in_place = run(Interpreter::new_in(&mut slot, &model, &mut a2).unwrap());
        assert_eq!(on_stack.0, in_place.0, "{}", p.display());
        assert_eq!(on_stack.1, in_place.1, "{}", p.display());
        n += 1;
    }
    assert!(n >= 10, "only {n} models found");
}

//! tract-onnx is the in-Rust oracle: the same files give the same answers in tract and in
//! sprig-runtime (float within 1e-4 relative, int8 within one output quantization step).

use crate::support::repo;
use sprig_models::datasets::digits;
use sprig_runtime::{Interpreter, Model};
use tract_onnx::prelude::*;

fn both(rel: &str) -> (Vec<f32>, Vec<f32>) {
    let path = repo().join(rel);
    let bytes = std::fs::read(&path).unwrap();
    let model = Model::parse(&bytes).unwrap();
    let mut arena = vec![0u8; model.arena_bytes().unwrap()];
    let mut it = Interpreter::new(&model, &mut arena).unwrap();
    let tract = tract_onnx::onnx()
        .model_for_path(&path)
        .unwrap()
        .into_optimized()
        .unwrap()
        .into_runnable()
        .unwrap();
    let (_, test) = digits().split(0.2, 0);
    let (mut s, mut t) = (Vec::new(), Vec::new());
    for i in 0..50 {
        it.set_input_f32(0, test.image(i)).unwrap();
        it.invoke().unwrap();
        s.extend_from_slice(it.output(0).unwrap().as_f32().unwrap());
        let x: Tensor = tract_ndarray::Array4::from_shape_vec((1, 1, 8, 8), test.image(i).to_vec())
            .unwrap()
            .into();
        let y = tract.run(tvec!(x.into())).unwrap();
        t.extend(y[0].to_plain_array_view::<f32>().unwrap().iter().copied());
    }
    (s, t)
}

#[test]
fn float_model_matches_tract() {
    let (s, t) = both("tests/fixtures/digits_student.f32.onnx");
    for (a, b) in s.iter().zip(&t) {
        assert!((a - b).abs() <= 1e-4 * b.abs().max(1.0), "{a} vs {b}");
    }
}

#[test]
fn int8_model_matches_tract_within_one_step() {
    let rel = "boards/cortex-m/models/digits_int8.onnx";
    let bytes = std::fs::read(repo().join(rel)).unwrap();
    let step = Model::parse(&bytes)
        .unwrap()
        .initializer("out_scale")
        .unwrap()
        .unwrap()
        .f32_at(0)
        .unwrap();
    let (s, t) = both(rel);
    let worst = s
        .iter()
        .zip(&t)
        .map(|(a, b)| (a - b).abs())
        .fold(0f32, f32::max);
    assert!(
        worst <= step * 1.0001,
        "max |sprig − tract| = {worst}, one step = {step}"
    );
}

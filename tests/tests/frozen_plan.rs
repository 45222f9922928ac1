//! Frozen plans (`sprig_runtime::frozen`): a plan made on the host, stored as bytes and loaded
//! without the model's graph, computes the same bytes as planning on the device, and any damage
//! to the plan or a plan for another model is a typed error. Its own test binary: plans for a
//! device are made with the portable kernels (`set_portable_only`, process-wide).

use sprig_runtime::kernels::set_portable_only;
use sprig_runtime::{Error, Interpreter, Model};
use std::path::Path;

fn read(rel: &str) -> Vec<u8> {
    std::fs::read(Path::new(env!("CARGO_MANIFEST_DIR")).join("..").join(rel)).unwrap()
}

/// Output bytes of `it` on `n` deterministic inputs.
fn run(it: &mut Interpreter<'_, '_>, n: usize) -> Vec<Vec<u8>> {
    let len = it.input_info(0).unwrap().2.numel();
    (0..n)
        .map(|s| {
            let x: Vec<f32> = (0..len)
                .map(|i| (((i * 31 + s * 17) % 101) as f32 / 50.0) - 1.0)
                .collect();
            it.set_input_f32(0, &x).unwrap();
            it.invoke().unwrap();
            it.output(0).unwrap().data.to_vec()
        })
        .collect()
}

/// Plans `bytes` on the "device" and from its frozen plan; returns the plan.
fn freeze_and_compare(rel: &str) -> Vec<u8> {
    set_portable_only(true);
    let bytes = read(rel);
    let model = Model::parse(&bytes).unwrap();
    let mut arena = vec![0u8; model.arena_bytes().unwrap()];
    let mut planned = Interpreter::new(&model, &mut arena).unwrap();
    let plan = planned.freeze(&bytes).unwrap();
    let want = run(&mut planned, 6);
    let report = planned.arena_report();
    drop(planned);

    let mut arena2 = vec![0xa5u8; report.total];
    let mut thawed = Interpreter::new_frozen(&bytes, &plan, &mut arena2).unwrap();
    assert_eq!(thawed.arena_report(), report, "{rel}");
    assert_eq!(thawed.step_count(), report.steps);
    assert_eq!(
        run(&mut thawed, 6),
        want,
        "{rel}: frozen plan computes other bytes"
    );
    eprintln!(
        "{rel}: {} steps, plan {} B, arena {} B",
        report.steps,
        plan.len(),
        report.total
    );
    plan
}

#[test]
fn frozen_plans_compute_what_planning_on_the_device_computes() {
    // Conv + MaxPool + Gemm (the Cortex-M demo model), a larger CNN, int8 residual Adds and
    // average pooling, int8 Concats.
    for rel in [
        "boards/cortex-m/models/digits_int8.onnx",
        "bench/models/fashion_cnn.int8.onnx",
        "bench/models/resnet20.int8.onnx",
        "bench/models/densenet_bc.int8.onnx",
    ] {
        freeze_and_compare(rel);
    }
}

#[test]
fn a_float_plan_is_not_frozen() {
    set_portable_only(true);
    let bytes = read("tests/fixtures/digits_student.f32.onnx");
    let model = Model::parse(&bytes).unwrap();
    let mut arena = vec![0u8; model.arena_bytes().unwrap()];
    let it = Interpreter::new(&model, &mut arena).unwrap();
    match it.freeze(&bytes) {
        Err(Error::BadPlan { what }) => assert!(what.contains("float"), "{what}"),
        other => panic!("froze a float plan: {other:?}"),
    }
}

#[test]
fn a_quantize_with_run_time_parameters_is_not_frozen() {
    // ONNX's QuantizeLinear node test: scale and zero point are graph inputs, read when the
    // step runs; a frozen plan holds constant parameters only.
    let bytes =
        std::fs::read("/usr/share/libonnx-testdata/data/node/test_quantizelinear/model.onnx")
            .expect("Debian libonnx-testdata (./tests/run.sh installs it)");
    let model = Model::parse(&bytes).unwrap();
    let mut arena = vec![0u8; model.arena_bytes().unwrap()];
    let it = Interpreter::new(&model, &mut arena).unwrap();
    match it.freeze(&bytes) {
        Err(Error::BadPlan { what }) => assert!(what.contains("run time"), "{what}"),
        other => panic!("froze a run-time Quantize: {other:?}"),
    }
}

#[test]
fn damaged_plans_and_plans_for_another_model_are_refused() {
    let rel = "boards/cortex-m/models/digits_int8.onnx";
    let plan = freeze_and_compare(rel);
    let bytes = read(rel);
    let mut arena = vec![0u8; 1 << 16];
    let refused = |m: &[u8], p: &[u8], arena: &mut [u8]| match Interpreter::new_frozen(m, p, arena)
    {
        Err(Error::BadPlan { what }) => what,
        Err(e) => panic!("other error: {e}"),
        Ok(_) => panic!("accepted"),
    };
    // Another model: one weight byte changed.
    let mut other = bytes.clone();
    let last = other.len() - 40;
    other[last] ^= 1;
    assert!(refused(&other, &plan, &mut arena).contains("another model"));
    // Every single-byte change and every truncation of the plan.
    for i in 0..plan.len() {
        let mut p = plan.clone();
        p[i] ^= 0x40;
        refused(&bytes, &p, &mut arena);
        refused(&bytes, &plan[..i], &mut arena);
    }
    // Too small an arena is the usual typed error.
    let need = Model::parse(&bytes).unwrap().arena_bytes().unwrap();
    assert!(matches!(
        Interpreter::new_frozen(&bytes, &plan, &mut arena[..need / 2]),
        Err(Error::ArenaTooSmall { .. })
    ));
}

/// The plan with `f` applied to its body and the body hash made right again, so the checks
/// behind the hash see the change.
fn rehashed(plan: &[u8], f: impl FnOnce(&mut Vec<u8>)) -> Vec<u8> {
    let mut body = plan[17..].to_vec();
    f(&mut body);
    let mut p = plan[..13].to_vec();
    p.extend_from_slice(&sprig_runtime::frozen::fnv1a(&body).to_le_bytes());
    p.extend_from_slice(&body);
    p
}

#[test]
fn inconsistent_plans_behind_a_valid_hash_never_panic() {
    // Every byte of the body changed three ways: each plan is refused with a typed error, or
    // (a changed value the kernels tolerate, such as a zero point) runs to a result or an error.
    let rel = "boards/cortex-m/models/digits_int8.onnx";
    let plan = freeze_and_compare(rel);
    let bytes = read(rel);
    let mut arena = vec![0u8; 1 << 16];
    let (mut refused, mut ran) = (0, 0);
    for i in 0..plan.len() - 17 {
        for flip in [0x01u8, 0x80, 0xff] {
            let p = rehashed(&plan, |b| b[i] ^= flip);
            match Interpreter::new_frozen(&bytes, &p, &mut arena) {
                Err(_) => refused += 1,
                Ok(mut it) => {
                    ran += 1;
                    if let Ok(x) = it.input_mut(0) {
                        x.fill(0x3f);
                    }
                    let _ = it.invoke();
                }
            }
        }
    }
    eprintln!("{refused} refused, {ran} ran");
    assert!(refused > 0 && ran > 0);
    // A body cut short or grown, with its hash right, is refused too.
    assert!(Interpreter::new_frozen(
        &bytes,
        &rehashed(&plan, |b| b.truncate(b.len() - 1)),
        &mut arena
    )
    .is_err());
    assert!(Interpreter::new_frozen(&bytes, &rehashed(&plan, |b| b.push(0)), &mut arena).is_err());
}

#[test]
fn the_firmware_default_plan_is_what_sprig_freeze_makes_of_its_model() {
    // boards/cortex-m builds its profile firmware with this plan when no other is given; a
    // change to the planner or the format must come with a new one (`sprig freeze
    // boards/cortex-m/models/digits_int8.onnx`).
    let model = read("boards/cortex-m/models/digits_int8.onnx");
    let plan = sprig_compress::freeze::freeze(&model).unwrap();
    assert!(
        plan.bytes == read("boards/cortex-m/models/digits_int8.plan"),
        "boards/cortex-m/models/digits_int8.plan is stale: run `sprig freeze boards/cortex-m/models/digits_int8.onnx`"
    );
}

/// The `frozen_plan` fuzz target's seed corpus, with every body it once crashed on
/// (`regression-*`), replayed as the target does: each must give a typed error or a result.
/// The conv zero-point one (a plan with an input zero point far outside int8 that overflowed
/// the reference convolution's products) is now refused when the plan loads.
#[test]
fn frozen_plan_fuzz_corpus_and_regressions_replay() {
    let model = read("boards/cortex-m/models/digits_int8.onnx");
    let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("../runtime/fuzz/corpus/frozen_plan");
    let mut n = 0;
    for entry in std::fs::read_dir(&dir).unwrap() {
        let path = entry.unwrap().path();
        let body = std::fs::read(&path).unwrap();
        let mut plan = Vec::new();
        plan.extend_from_slice(sprig_runtime::frozen::MAGIC);
        plan.push(sprig_runtime::frozen::VERSION);
        plan.extend_from_slice(&(model.len() as u32).to_le_bytes());
        plan.extend_from_slice(&sprig_runtime::frozen::fnv1a(&model).to_le_bytes());
        plan.extend_from_slice(&sprig_runtime::frozen::fnv1a(&body).to_le_bytes());
        plan.extend_from_slice(&body);
        let mut arena = vec![0u8; 1 << 16];
        let name = path.file_name().unwrap().to_string_lossy().into_owned();
        match Interpreter::new_frozen(&model, &plan, &mut arena) {
            Ok(_) if name.contains("zero-point") => panic!("{name} loads"),
            Ok(mut it) => {
                if let Ok(x) = it.input_mut(0) {
                    x.fill(0x3f);
                }
                let _ = it.invoke();
            }
            Err(Error::BadPlan { what }) if name.contains("zero-point") => {
                assert!(what.contains("zero point"), "{name}: {what}")
            }
            Err(e) if name.contains("zero-point") => panic!("{name}: {e}"),
            Err(_) => {}
        }
        n += 1;
    }
    assert!(n >= 4, "only {n} frozen-plan corpus files found");
}

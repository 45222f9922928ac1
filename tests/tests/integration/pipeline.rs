//! Train → export → run on sprig-runtime, on a small seeded digits subset: the float export
//! reproduces candle's logits, and the int8 QDQ export keeps the float model's predictions.

use candle_core::{Device, Tensor};
use sprig_compress::distill::{KdLoss, KdTerm};
use sprig_compress::eval::{argmax, evaluate};
use sprig_compress::export::{export_f32, export_int8};
use sprig_compress::quantize::calibrate;
use sprig_compress::train::{accuracy, train, Run, TrainConfig};
use sprig_models::arch::ArchSpec;
use sprig_models::datasets::digits;
use sprig_runtime::{Interpreter, Model};

#[test]
fn f32_and_int8_exports_agree_with_candle() {
    let (train_set, test_set) = digits().split(0.2, 3);
    let spec = ArchSpec::small_cnn("s", (1, 8, 8), 4, 8, None, 10);
    let cfg = TrainConfig {
        epochs: 15,
        progress: false,
        seed: 5,
        ..Default::default()
    };
    let t = train(&spec, &train_set, &cfg, Run::default(), "s").unwrap();
    let float_acc = accuracy(&t.model, &test_set).unwrap();
    assert!(float_acc > 0.8, "float accuracy {float_acc}");

    // f32: logits equal candle's within 1e-4 relative.
    let f32_onnx = export_f32(&spec, &t.model.weights().unwrap());
    let model = Model::parse(&f32_onnx).unwrap();
    let mut arena = vec![0u8; model.arena_bytes().unwrap()];
    let mut it = Interpreter::new(&model, &mut arena).unwrap();
    for i in 0..20 {
        let x = Tensor::from_slice(test_set.image(i), (1, 1, 8, 8), &Device::Cpu).unwrap();
        let want = t
            .model
            .forward_features(&x)
            .unwrap()
            .0
            .flatten_all()
            .unwrap()
            .to_vec1::<f32>()
            .unwrap();
        it.set_input_f32(0, test_set.image(i)).unwrap();
        it.invoke().unwrap();
        let got = it.output(0).unwrap().as_f32().unwrap().to_vec();
        for (a, b) in got.iter().zip(&want) {
            assert!(
                (a - b).abs() <= 1e-4 * b.abs().max(1.0),
                "sample {i}: {a} vs {b}"
            );
        }
    }

    // int8: 8 steps after fusion, no float op left between Q and DQ, accuracy within 2 points.
    let acts = calibrate(&t.model, &train_set, &Device::Cpu).unwrap();
    let q = export_int8(&spec, &t.model.weights().unwrap(), &acts);
    let stats = evaluate(&q, &test_set, 3).unwrap();
    assert_eq!(stats.steps, 8, "QDQ patterns were not all fused");
    assert!(
        stats.top1 >= float_acc - 0.02,
        "int8 {} vs float {}",
        stats.top1,
        float_acc
    );
    let _ = argmax(&[0.0]);
}

#[test]
fn distillation_moves_the_student_towards_the_teacher() {
    let (train_set, test_set) = digits().split(0.2, 4);
    let cfg = TrainConfig {
        epochs: 12,
        progress: false,
        seed: 9,
        ..Default::default()
    };
    let teacher_spec = ArchSpec::small_cnn("t", (1, 8, 8), 16, 32, Some(64), 10);
    let student_spec = ArchSpec::small_cnn("s", (1, 8, 8), 4, 8, None, 10);
    let teacher = train(&teacher_spec, &train_set, &cfg, Run::default(), "t").unwrap();
    let alone = train(&student_spec, &train_set, &cfg, Run::default(), "s").unwrap();
    let kd = train(
        &student_spec,
        &train_set,
        &cfg,
        Run {
            kd: &[KdTerm {
                loss: KdLoss::Hinton { temperature: 4.0 },
                weight: 1.0,
                teacher: 0,
                student_layer: 2,
                teacher_layer: 3,
            }],
            ce_weight: Some(0.0),
            teachers: &[&teacher.model],
            ..Default::default()
        },
        "kd",
    )
    .unwrap();
    // Agreement with the teacher's predictions on held-out images.
    let agree = |m: &sprig_models::arch::CnnModel| {
        let x =
            Tensor::from_slice(&test_set.images, (test_set.len(), 1, 8, 8), &Device::Cpu).unwrap();
        let t = teacher
            .model
            .forward_features(&x)
            .unwrap()
            .0
            .argmax(1)
            .unwrap()
            .to_vec1::<u32>()
            .unwrap();
        let s = m
            .forward_features(&x)
            .unwrap()
            .0
            .argmax(1)
            .unwrap()
            .to_vec1::<u32>()
            .unwrap();
        t.iter().zip(&s).filter(|(a, b)| a == b).count() as f64 / t.len() as f64
    };
    let (a_alone, a_kd) = (agree(&alone.model), agree(&kd.model));
    assert!(
        a_kd > a_alone,
        "agreement with teacher: KD {a_kd:.3} vs alone {a_alone:.3}"
    );
}

/// Gradual magnitude pruning to 80% during training keeps the sparsity to the end, and the
/// pruned int8 export keeps most of the accuracy on sprig-runtime.
#[test]
fn gradual_pruning_reaches_80_percent_and_keeps_accuracy() {
    use sprig_compress::prune::{GradualSchedule, Scope};
    let (train_set, test_set) = digits().split(0.2, 3);
    let spec = ArchSpec::small_cnn("pruned", (1, 8, 8), 16, 32, None, 10);
    let steps = train_set.len().div_ceil(32) * 20;
    let cfg = TrainConfig {
        epochs: 20,
        progress: false,
        seed: 5,
        prune: Some((
            GradualSchedule::new(0.0, 0.8, steps / 10, steps * 7 / 10, 10).unwrap(),
            Scope::PerLayer,
        )),
        ..Default::default()
    };
    let t = train(&spec, &train_set, &cfg, Run::default(), "pruned").unwrap();
    let w = t.model.weights().unwrap();
    let (mut zeros, mut total) = (0usize, 0usize);
    for lw in &w {
        if let sprig_models::arch::LayerWeights::Conv { w, .. }
        | sprig_models::arch::LayerWeights::Dense { w, .. } = lw
        {
            zeros += w.iter().filter(|x| **x == 0.0).count();
            total += w.len();
        }
    }
    let sparsity = zeros as f64 / total as f64;
    assert!(sparsity >= 0.79, "sparsity {sparsity}");
    let acc = accuracy(&t.model, &test_set).unwrap();
    assert!(acc > 0.85, "pruned float accuracy {acc}");
    eprintln!("80%-pruned digits CNN: sparsity {sparsity:.3}, float top-1 {acc:.4}");
}

/// A teacher that remembers every batch it is shown.
struct Spy<'a> {
    inner: &'a sprig_models::arch::CnnModel,
    seen: std::cell::RefCell<Vec<Vec<f32>>>,
}

impl sprig_compress::teacher::Teacher for Spy<'_> {
    fn layout(&self) -> sprig_compress::teacher::TeacherLayout {
        self.inner.layout()
    }
    fn forward_features(&self, x: &Tensor) -> candle_core::Result<(Tensor, Vec<Tensor>)> {
        let rows = x.flatten_from(1)?.to_vec2::<f32>()?;
        self.seen.borrow_mut().extend(rows);
        self.inner.forward_features(x)
    }
}

/// Function matching (`kd_mixup`): the teacher is shown blends `λ·a + (1 − λ)·b` of two
/// training images of the batch — the very inputs the student trains on — not the images
/// themselves; runs without distillation ignore `kd_mixup`; seeded runs repeat exactly.
#[test]
fn function_matching_shows_the_teacher_blends_of_the_batch() {
    use sprig_compress::teacher::Teacher;
    let (all, _) = digits().split(0.2, 5);
    // One batch of 8 images per epoch: every blend is of two images of this set.
    let train_set = all.subset(&(0..8).collect::<Vec<_>>());
    let cfg = TrainConfig {
        epochs: 3,
        batch: 8,
        progress: false,
        seed: 2,
        kd_mixup: Some(1.0),
        ..Default::default()
    };
    let teacher_spec = ArchSpec::small_cnn("t", (1, 8, 8), 4, 8, None, 10);
    let student_spec = ArchSpec::small_cnn("s", (1, 8, 8), 2, 4, None, 10);
    let teacher = train(&teacher_spec, &train_set, &cfg, Run::default(), "t").unwrap();
    let without = TrainConfig {
        kd_mixup: None,
        ..cfg.clone()
    };
    let plain_t = train(&teacher_spec, &train_set, &without, Run::default(), "t").unwrap();
    assert_eq!(
        teacher.model.weights().unwrap(),
        plain_t.model.weights().unwrap(),
        "kd_mixup changed a run without distillation"
    );
    let kd_terms = [KdTerm {
        loss: KdLoss::Hinton { temperature: 1.0 },
        weight: 1.0,
        teacher: 0,
        student_layer: 2,
        teacher_layer: 2,
    }];
    let distil = || {
        let spy = Spy {
            inner: &teacher.model,
            seen: Default::default(),
        };
        let run = Run {
            kd: &kd_terms,
            ce_weight: Some(0.0),
            teachers: &[&spy as &dyn Teacher],
            ..Default::default()
        };
        let t = train(&student_spec, &train_set, &cfg, run, "kd").unwrap();
        (t.model.weights().unwrap(), spy.seen.into_inner())
    };
    let (w1, seen) = distil();
    assert_eq!(seen.len(), 3 * 8, "one batch of 8 per epoch");
    let images: Vec<&[f32]> = (0..8).map(|i| train_set.image(i)).collect();
    let mut blended = 0;
    for (k, row) in seen.iter().enumerate() {
        // The best λ for each pair (a, b) by least squares; the row must be one such blend.
        let fits = images
            .iter()
            .flat_map(|a| images.iter().map(move |b| (*a, *b)));
        let best = fits
            .map(|(a, b)| {
                let d: Vec<f32> = a.iter().zip(b).map(|(p, q)| p - q).collect();
                let r: Vec<f32> = row.iter().zip(b).map(|(p, q)| p - q).collect();
                let dd: f32 = d.iter().map(|v| v * v).sum();
                let lam = if dd > 0.0 {
                    d.iter().zip(&r).map(|(p, q)| p * q).sum::<f32>() / dd
                } else {
                    1.0
                };
                let err = r
                    .iter()
                    .zip(&d)
                    .map(|(q, p)| (q - lam * p).abs())
                    .fold(0.0f32, f32::max);
                (err, lam)
            })
            .fold((f32::MAX, 0.0), |m, x| if x.0 < m.0 { x } else { m });
        assert!(
            best.0 < 1e-4,
            "teacher input {k} is no blend of two batch images"
        );
        assert!(
            (-1e-4..=1.0001).contains(&best.1),
            "λ {} outside [0, 1]",
            best.1
        );
        if !images.iter().any(|im| im == &row.as_slice()) {
            blended += 1;
        }
    }
    // A random permutation leaves about one image per batch paired with itself.
    assert!(
        blended >= 12,
        "only {blended} of 24 teacher inputs were real blends"
    );
    let (w2, seen2) = distil();
    assert_eq!((w1, seen), (w2, seen2), "a seeded run repeats exactly");
}

//! The compress pipeline on tiny seeded digits subsets: every distillation loss decreases while
//! it trains; every recipe path (prune only, QAT only, KD only, all combined) runs end to end and
//! its int8 file passes onnx's checker, agrees with onnxruntime within one output step and keeps
//! its float model's accuracy; QAT's fake-quant model is what sprig-runtime computes; a run
//! stopped mid-way resumes to exactly the result of an uninterrupted one.

use crate::support::{python, repo};
use candle_core::Device;
use sprig_compress::distill::{KdLoss, KdTerm};
use sprig_compress::export::export_int8;
use sprig_compress::pipeline::{self, Goal, Options, Report};
use sprig_compress::quantize::{calibrate_ranges, ActQuant};
use sprig_compress::recipe::Plan;
use sprig_compress::train::{logits, train, QatConfig, Run, TrainConfig};
use sprig_models::arch::ArchSpec;
use sprig_models::datasets::{digits, ImageSet};
use sprig_runtime::{Interpreter, Model};
use std::path::{Path, PathBuf};
use std::process::Command;

fn tmp(name: &str) -> PathBuf {
    let d = std::env::temp_dir().join(format!("sprig-compress-{}-{name}", std::process::id()));
    let _ = std::fs::remove_dir_all(&d);
    std::fs::create_dir_all(&d).unwrap();
    d
}

fn subset(set: &ImageSet, n: usize) -> ImageSet {
    set.subset(&(0..n.min(set.len())).collect::<Vec<_>>())
}

const BASE: &str = r#"
name = "tiny"
seed = 3
[data]
dataset = "digits"
train_limit = 500
test_limit = 150
[train]
epochs = 12
batch = 32
[[teacher]]
name = "teacher"
arch = { family = "small-cnn", c1 = 16, c2 = 32, hidden = 64 }
[student]
name = "student"
arch = { family = "small-cnn", c1 = 8, c2 = 16 }
"#;

const KD: &str = r#"
[distill]
ce_weight = 0.3
[[distill.loss]]
kind = "hinton"
weight = 0.7
[[distill.loss]]
kind = "activation-boundary"
weight = 0.05
student_layer = "conv2"
teacher_layer = "conv2"
"#;

const PRUNE: &str = "
[prune]
sparsity = 0.8
start_epoch = 2
end_epoch = 8
every_steps = 4
structured = 0.5
structured_epochs = 3
";

const QAT: &str = "
[quantize]
mode = \"qat\"
epochs = 2
freeze_observers_after = 1
calib_samples = 128
";

fn run_recipe(
    src: &str,
    out: &Path,
    resume: bool,
    stop_after: Option<usize>,
) -> Result<Report, String> {
    let recipe = Plan::peek(src, "test.toml").unwrap();
    let (tr, te) = pipeline::load_data(
        &recipe.data.dataset,
        recipe.data.train_limit,
        recipe.data.test_limit,
    )
    .unwrap();
    let plan = Plan::parse(src, "test.toml", tr.chw, tr.classes, tr.len()).unwrap();
    let opts = Options {
        out: out.to_path_buf(),
        resume,
        quiet: true,
        latency_runs: 3,
        stop_after,
        teacher_cache_mb: 256,
    };
    pipeline::run(&plan, &tr, &te, Goal::Compress, &opts).map_err(|e| e.to_string())
}

/// onnx's full checker accepts the file, and onnxruntime's outputs on `samples` are within one
/// output quantization step of sprig-runtime's.
fn check_with_onnxruntime(model: &Path, samples: &ImageSet) {
    let check = Command::new(python())
        .args([
            "-c",
            "import onnx,sys; onnx.checker.check_model(onnx.load(sys.argv[1]), full_check=True)",
        ])
        .arg(model)
        .output()
        .unwrap();
    assert!(
        check.status.success(),
        "onnx checker: {}",
        String::from_utf8_lossy(&check.stderr)
    );
    let dir = model.parent().unwrap();
    let (x, y) = (dir.join("samples.f32"), dir.join("ort.f32"));
    let raw: Vec<u8> = samples
        .images
        .iter()
        .flat_map(|v| v.to_le_bytes())
        .collect();
    std::fs::write(&x, raw).unwrap();
    let o = Command::new(python())
        .arg(repo().join("tests/ort_reference.py"))
        .arg("run")
        .args([model, &x, &y])
        .output()
        .unwrap();
    assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
    let ort: Vec<f32> = std::fs::read(&y)
        .unwrap()
        .chunks_exact(4)
        .map(|c| f32::from_le_bytes(c.try_into().unwrap()))
        .collect();
    let bytes = std::fs::read(model).unwrap();
    let (sprig, step) = run_sprig(&bytes, samples);
    let worst = ort
        .iter()
        .zip(&sprig)
        .map(|(a, b)| (a - b).abs())
        .fold(0f32, f32::max);
    assert_eq!(ort.len(), sprig.len());
    assert!(
        worst <= step * 1.0001,
        "{}: |ort − sprig| {worst} > step {step}",
        model.display()
    );
}

/// sprig-runtime's outputs for every image, concatenated.
fn outputs(bytes: &[u8], set: &ImageSet) -> Vec<f32> {
    outputs_with(bytes, set, sprig_runtime::PlanOptions::default())
}

/// [`outputs`] with plan options (half-precision arithmetic).
fn outputs_with(bytes: &[u8], set: &ImageSet, opts: sprig_runtime::PlanOptions) -> Vec<f32> {
    let m = Model::parse(bytes).unwrap();
    let mut arena = vec![0u8; m.arena_bytes_with(opts).unwrap()];
    let mut it = Interpreter::new_with(&m, &mut arena, opts).unwrap();
    let mut out = Vec::new();
    for i in 0..set.len() {
        it.set_input_f32(0, set.image(i)).unwrap();
        it.invoke().unwrap();
        out.extend_from_slice(it.output(0).unwrap().as_f32().unwrap());
    }
    out
}

/// sprig-runtime's outputs for every image, and the output quantization step.
fn run_sprig(bytes: &[u8], set: &ImageSet) -> (Vec<f32>, f32) {
    let out = outputs(bytes, set);
    let m = Model::parse(bytes).unwrap();
    let name = m.outputs().next().unwrap().unwrap().name;
    let step = m
        .nodes()
        .map(|n| n.unwrap())
        .find(|n| n.outputs.first() == Some(&name))
        .map(|n| {
            m.initializer(n.input(1).unwrap())
                .unwrap()
                .unwrap()
                .f32_at(0)
                .unwrap()
        })
        .unwrap();
    (out, step)
}

fn row<'a>(r: &'a Report, model: &str) -> &'a pipeline::Row {
    r.rows.iter().find(|x| x.model == model).unwrap_or_else(|| {
        panic!(
            "no row '{model}' in {:?}",
            r.rows.iter().map(|x| &x.model).collect::<Vec<_>>()
        )
    })
}

#[test]
fn every_recipe_path_exports_checked_int8() {
    let (_, test) = digits().split(0.2, 0);
    let samples = subset(&test, 40);
    for (tag, extra) in [
        ("prune", PRUNE.to_string()),
        ("qat", QAT.to_string()),
        ("kd", KD.to_string()),
        ("all", format!("{KD}{PRUNE}{QAT}")),
    ] {
        let out = tmp(tag);
        let r = run_recipe(&format!("{BASE}{extra}"), &out, false, None).unwrap();
        for f in [
            "report.md",
            "report.json",
            "training_curves.png",
            "accuracy_vs_size.png",
        ] {
            assert!(out.join(f).exists(), "{tag}: {f} missing");
        }
        let student = row(&r, "student f32");
        assert!(
            student.top1 > 0.6,
            "{tag}: student alone {:.3}",
            student.top1
        );
        match tag {
            "prune" => {
                let p = row(&r, "student pruned f32");
                let sparsity = 1.0 - p.nonzeros as f64 / p.params as f64;
                assert!(sparsity > 0.75, "{tag}: sparsity {sparsity:.3}");
                assert!(out.join("accuracy_vs_sparsity.png").exists());
                // Structured: half the filters removed, really smaller, still accurate.
                let slim = row(&r, "student, 50% filters removed f32");
                assert!(
                    slim.params < student.params * 6 / 10,
                    "{} vs {}",
                    slim.params,
                    student.params
                );
                assert!(slim.file_bytes < student.file_bytes * 6 / 10);
                assert!(slim.top1 > 0.5, "slim {:.3}", slim.top1);
            }
            "kd" => {
                let kd = row(&r, "student + KD f32");
                assert!(kd.top1 > 0.6, "{tag}: distilled {:.3}", kd.top1);
                assert!(kd.teacher_agreement.unwrap() > 0.6);
            }
            _ => {}
        }
        if tag == "qat" || tag == "all" {
            let int8 = r.rows.last().unwrap();
            assert!(
                int8.file.ends_with("tiny.int8.onnx"),
                "{tag}: {}",
                int8.file
            );
            // QAT keeps the float model's accuracy (tiny data: within 3 points).
            let float = if tag == "all" {
                row(&r, "student + KD pruned f32")
            } else {
                student
            };
            assert!(
                int8.top1 >= float.top1 - 0.03,
                "{tag}: int8 {:.3} vs float {:.3}",
                int8.top1,
                float.top1
            );
            if tag == "all" {
                assert!(
                    1.0 - int8.nonzeros as f64 / int8.params as f64 > 0.75,
                    "all: sparsity lost in QAT"
                );
            }
            check_with_onnxruntime(&out.join("tiny.int8.onnx"), &samples);
            check_with_onnxruntime(&out.join("student.int8.onnx"), &samples);
        }
    }
}

#[test]
fn a_stopped_run_resumes_to_the_same_result() {
    let src = format!("{BASE}{KD}{PRUNE}{QAT}")
        .replace("train_limit = 500", "train_limit = 200")
        .replace("epochs = 12", "epochs = 6")
        .replace("end_epoch = 8", "end_epoch = 4");
    let (a, b) = (tmp("straight"), tmp("resumed"));
    run_recipe(&src, &a, false, None).unwrap();
    let err = run_recipe(&src, &b, false, Some(2))
        .unwrap_err()
        .to_string();
    assert!(
        err.contains("stopped after 2 of 6 epochs") && err.contains("--resume"),
        "{err}"
    );
    // Without --resume an unfinished checkpoint is not continued: it stops again at epoch 2.
    assert!(run_recipe(&src, &b, false, Some(2)).is_err());
    // Each process continues two more epochs; then everything finishes.
    while run_recipe(&src, &b, true, Some(2)).is_err() {}
    for f in [
        "tiny.int8.onnx",
        "tiny.f32.onnx",
        "teacher.f32.onnx",
        "student-kd.f32.onnx",
    ] {
        assert_eq!(
            std::fs::read(a.join(f)).unwrap(),
            std::fs::read(b.join(f)).unwrap(),
            "{f} differs after resume"
        );
    }
}

#[test]
fn qat_model_is_what_sprig_runtime_computes() {
    let (train_set, test) = digits().split(0.2, 1);
    let (train_set, test) = (subset(&train_set, 400), subset(&test, 100));
    let spec = ArchSpec::small_cnn("q", (1, 8, 8), 8, 16, None, 10);
    let cfg = TrainConfig {
        epochs: 5,
        progress: false,
        seed: 2,
        ..Default::default()
    };
    let float = train(&spec, &train_set, &cfg, Run::default(), "f").unwrap();
    let qcfg = TrainConfig {
        epochs: 2,
        lr: 3e-4,
        ..cfg
    };
    let ranges = calibrate_ranges(&float.model, &subset(&train_set, 200), &Device::Cpu).unwrap();
    let calibrated = ranges.iter().map(|&(lo, hi)| ActQuant::from_range(lo, hi));
    let calibrated: Vec<ActQuant> = calibrated.collect();
    // Observed ranges (asymmetric, symmetric) and learned step sizes.
    for (symmetric, lsq) in [(false, false), (true, false), (false, true)] {
        let q = train(
            &spec,
            &train_set,
            &qcfg,
            Run {
                init: Some(&float),
                qat: Some(QatConfig {
                    symmetric,
                    freeze_observers_after: 1,
                    initial_ranges: if lsq { ranges.clone() } else { vec![] },
                    lsq,
                }),
                ..Default::default()
            },
            "qat",
        )
        .unwrap();
        let fq = q.fake_quant.as_ref().unwrap();
        let acts = fq.act_quants();
        if symmetric {
            assert!(acts.iter().all(|a| a.zero_point == 0));
        }
        if lsq {
            // The scales moved away from calibration; the zero points stayed.
            let moved = acts
                .iter()
                .zip(&calibrated)
                .filter(|(a, c)| (a.scale / c.scale - 1.0).abs() > 1e-3)
                .count();
            assert!(
                moved > acts.len() / 2,
                "{moved} of {} scales learned",
                acts.len()
            );
            assert!(acts
                .iter()
                .zip(&calibrated)
                .all(|(a, c)| a.zero_point == c.zero_point));
        }
        let bytes = export_int8(&spec, &q.model.weights().unwrap(), &acts);
        let (got, step) = run_sprig(&bytes, &test);
        let want: Vec<f32> = logits(&q.model, &test, Some(fq)).unwrap().concat();
        let diffs: Vec<f32> = want
            .iter()
            .zip(&got)
            .map(|(a, b)| (a - b).abs() / step)
            .collect();
        let within_one = diffs.iter().filter(|d| **d <= 1.0001).count() as f64 / diffs.len() as f64;
        let worst = diffs.iter().fold(0f32, |a, &b| a.max(b));
        // Float accumulation order and bias rounding may move a value across a rounding
        // boundary; the result stays within one output step almost everywhere.
        assert!(
            within_one >= 0.99,
            "symmetric={symmetric} lsq={lsq}: {within_one:.4} within one step, worst {worst}"
        );
        assert!(
            worst <= 3.0,
            "symmetric={symmetric} lsq={lsq}: worst {worst} steps"
        );
    }
}

#[test]
fn every_distillation_loss_decreases_while_it_trains() {
    let (train_set, _) = digits().split(0.2, 2);
    let train_set = subset(&train_set, 400);
    let cfg = TrainConfig {
        epochs: 5,
        progress: false,
        seed: 4,
        ..Default::default()
    };
    let tspec = ArchSpec::small_cnn("t", (1, 8, 8), 16, 32, Some(64), 10);
    let sspec = ArchSpec::small_cnn("s", (1, 8, 8), 4, 8, None, 10);
    let teacher = train(&tspec, &train_set, &cfg, Run::default(), "t").unwrap();
    // Weighted layers: conv1 0, conv2 1, fc (student: logits 2; teacher: hidden 2, logits 3).
    let conv2 = (1, 1);
    let cases = [
        (KdLoss::Hinton { temperature: 4.0 }, (2, 3)),
        (KdLoss::FitNets, conv2),
        (KdLoss::Attention, conv2),
        (KdLoss::ActivationBoundary { margin: 1.0 }, conv2),
        (KdLoss::RkdDistance, (2, 3)),
        (KdLoss::RkdAngle, (2, 3)),
        (KdLoss::AreaRkd { grid: 2 }, conv2),
    ];
    for (loss, (s, t)) in cases {
        let term = KdTerm {
            loss,
            weight: 1.0,
            teacher: 0,
            student_layer: s,
            teacher_layer: t,
        };
        let run = Run {
            kd: std::slice::from_ref(&term),
            teachers: &[&teacher.model],
            ..Default::default()
        };
        let h = train(&sspec, &train_set, &cfg, run, loss.name())
            .unwrap()
            .history;
        let (first, last) = (h[0].kd_loss, h[h.len() - 1].kd_loss);
        assert!(
            last < first * 0.9,
            "{}: KD loss {first:.5} → {last:.5}",
            loss.name()
        );
    }
    // An ensemble of two teachers (different seeds): Hinton KD on their averaged probabilities.
    let cfg2 = TrainConfig {
        seed: 8,
        ..cfg.clone()
    };
    let teacher2 = train(&tspec, &train_set, &cfg2, Run::default(), "t2").unwrap();
    let term = KdTerm {
        loss: KdLoss::Hinton { temperature: 4.0 },
        weight: 1.0,
        teacher: 0,
        student_layer: 2,
        teacher_layer: 3,
    };
    let run = Run {
        kd: std::slice::from_ref(&term),
        teachers: &[&teacher.model, &teacher2.model],
        ..Default::default()
    };
    let h = train(&sspec, &train_set, &cfg, run, "ensemble")
        .unwrap()
        .history;
    let (first, last) = (h[0].kd_loss, h[h.len() - 1].kd_loss);
    assert!(
        last < first * 0.9,
        "ensemble: KD loss {first:.5} → {last:.5}"
    );
}

/// ResNet with batch norm: trains, folds batch norm without changing its function, and its int8
/// QDQ export (residual Adds with both inputs dequantized) agrees with onnxruntime within one
/// output step and with the fake-quant model it was fine-tuned as.
#[test]
fn resnet_folds_batch_norm_and_exports_int8_residual_adds() {
    bn_net_folds_and_exports_int8(ArchSpec::resnet("r8", (1, 8, 8), 1, 8, 10), 6, 1);
}

/// The same for the MobileNetV2-style net: depthwise convolutions (ONNX `group`), linear
/// bottlenecks and residual Adds without ReLU. Its 24 requantizations (ResNet-8's: 12) pile up
/// one-step rounding differences between integer requantization and the float simulation —
/// measured: 78% of outputs within 1 step, 94% within 2, 98.7% within 3, the same class on
/// 119 of 120 — so here the bound is three steps.
#[test]
fn mobilenet_folds_batch_norm_and_exports_int8_depthwise() {
    bn_net_folds_and_exports_int8(ArchSpec::mobilenet_v2("mnv2", (1, 8, 8), 8, 10), 10, 3);
}

/// The same for DenseNet-BC: bottleneck layers whose Concat has both inputs dequantized and
/// its own quantization point, and 2×2 average-pool transitions.
#[test]
fn densenet_folds_batch_norm_and_exports_int8_concats() {
    bn_net_folds_and_exports_int8(ArchSpec::densenet_bc("dn", (1, 8, 8), 10, 6, 10), 10, 2);
}

/// Trains `spec` for `epochs`, checks the folded float export, then QAT and the int8 export:
/// onnxruntime agrees, and 97% of sprig-runtime's outputs are within `steps` output steps of
/// the fake-quant model.
fn bn_net_folds_and_exports_int8(spec: ArchSpec, epochs: usize, steps: usize) {
    use sprig_compress::export::export_f32;
    use sprig_compress::train::fold_bn;
    let name = spec.name.clone();
    let (train_set, test) = digits().split(0.2, 5);
    let (train_set, test) = (subset(&train_set, 600), subset(&test, 120));
    let cfg = TrainConfig {
        epochs,
        progress: false,
        seed: 1,
        ..Default::default()
    };
    let float = train(&spec, &train_set, &cfg, Run::default(), &name).unwrap();
    let float_logits = logits(&float.model, &test, None).unwrap();
    let acc = |l: &[Vec<f32>]| {
        l.iter()
            .zip(&test.labels)
            .filter(|(v, y)| sprig_compress::eval::argmax(v) == **y as usize)
            .count() as f64
            / test.len() as f64
    };
    assert!(
        acc(&float_logits) > 0.7,
        "{name} float top-1 {}",
        acc(&float_logits)
    );
    // Folded f32 export on sprig-runtime = candle in inference mode.
    let f32_onnx = export_f32(&spec, &float.model.weights().unwrap());
    let m = Model::parse(&f32_onnx).unwrap();
    let mut arena = vec![0u8; m.arena_bytes().unwrap()];
    let mut it = Interpreter::new(&m, &mut arena).unwrap();
    for (i, want) in float_logits.iter().enumerate().take(30) {
        it.set_input_f32(0, test.image(i)).unwrap();
        it.invoke().unwrap();
        for (a, b) in it.output(0).unwrap().as_f32().unwrap().iter().zip(want) {
            assert!(
                (a - b).abs() <= 1e-3 * b.abs().max(1.0),
                "sample {i}: {a} vs {b}"
            );
        }
    }
    // QAT on the folded model, int8 export.
    let folded = fold_bn(&float).unwrap();
    let qcfg = TrainConfig {
        epochs: 2,
        lr: 3e-4,
        ..cfg
    };
    let q = train(
        &spec.folded(),
        &train_set,
        &qcfg,
        Run {
            init: Some(&folded),
            qat: Some(QatConfig {
                symmetric: false,
                freeze_observers_after: 1,
                initial_ranges: vec![],
                lsq: false,
            }),
            ..Default::default()
        },
        "qat",
    )
    .unwrap();
    let fq = q.fake_quant.as_ref().unwrap();
    let bytes = export_int8(
        &spec.folded(),
        &q.model.weights().unwrap(),
        &fq.act_quants(),
    );
    let out = tmp(&name);
    let path = out.join(format!("{name}.int8.onnx"));
    std::fs::write(&path, &bytes).unwrap();
    check_with_onnxruntime(&path, &subset(&test, 40));
    let (got, step) = run_sprig(&bytes, &test);
    let want: Vec<f32> = logits(&q.model, &test, Some(fq)).unwrap().concat();
    let within = want
        .iter()
        .zip(&got)
        .filter(|(a, b)| (*a - *b).abs() <= steps as f32 * step * 1.0001)
        .count() as f64
        / want.len() as f64;
    let argmax = sprig_compress::eval::argmax;
    let same_class = want
        .chunks(10)
        .zip(got.chunks(10))
        .filter(|(a, b)| argmax(a) == argmax(b))
        .count();
    assert!(
        same_class as f64 >= 0.97 * test.len() as f64,
        "{name}: int8 and fake-quant predictions agree on {same_class} of {}",
        test.len()
    );
    assert!(
        within >= 0.97,
        "{name}: {within:.4} of outputs within {steps} step(s) of the fake-quant model"
    );
    let int8_acc = acc(&got.chunks(10).map(|c| c.to_vec()).collect::<Vec<_>>());
    assert!(
        int8_acc >= acc(&float_logits) - 0.05,
        "int8 {int8_acc} vs float {}",
        acc(&float_logits)
    );
}

/// `sprig quantize`: post-training quantization of a float ONNX file (a plain CNN and a ResNet
/// with residual Adds) passes onnx's checker, agrees with onnxruntime within one output step,
/// fuses completely on sprig-runtime and keeps the float accuracy; calibration images of the
/// wrong shape are refused by name.
#[test]
fn post_training_quantization_of_float_onnx() {
    use sprig_compress::export::export_f32;
    use sprig_compress::ptq::quantize_onnx;
    let (train_set, test) = digits().split(0.2, 0);
    let calib = subset(&train_set, 200);
    let out = tmp("ptq");
    let cnn = std::fs::read(repo().join("tests/fixtures/digits_student.f32.onnx")).unwrap();
    let spec = ArchSpec::resnet("r8", (1, 8, 8), 1, 8, 10);
    let cfg = TrainConfig {
        epochs: 4,
        progress: false,
        seed: 1,
        ..Default::default()
    };
    let r = train(&spec, &subset(&train_set, 600), &cfg, Run::default(), "r8").unwrap();
    let resnet = export_f32(&spec, &r.model.weights().unwrap());
    for (name, float) in [("cnn", cnn), ("resnet", resnet)] {
        let (q, summary) = quantize_onnx(&float, &calib, false).unwrap();
        let path = out.join(format!("{name}.int8.onnx"));
        std::fs::write(&path, &q).unwrap();
        check_with_onnxruntime(&path, &subset(&test, 40));
        let f = sprig_compress::eval::evaluate(&float, &test, 1).unwrap();
        let i = sprig_compress::eval::evaluate(&q, &test, 1).unwrap();
        assert!(
            i.top1 >= f.top1 - 0.02,
            "{name}: int8 {:.4} vs float {:.4}",
            i.top1,
            f.top1
        );
        if name == "cnn" {
            assert_eq!(summary.weights_quantized, 3);
            assert_eq!(i.steps, 8, "every QDQ pattern fused");
        } else {
            // conv1, 3 blocks (2 convs each + 2 shortcut convs), fc.
            assert_eq!(summary.weights_quantized, 1 + 6 + 2 + 1);
        }
    }
    let wrong = ImageSet {
        images: vec![0.0; 2 * 28 * 28],
        labels: vec![0, 1],
        chw: (1, 28, 28),
        classes: 10,
    };
    let float = std::fs::read(repo().join("tests/fixtures/digits_student.f32.onnx")).unwrap();
    let e = quantize_onnx(&float, &wrong, false)
        .unwrap_err()
        .to_string();
    assert!(
        e.contains("calibration images are 1×28×28 but the model input 'input' is [1, 1, 8, 8]"),
        "{e}"
    );
}

/// `sprig quantize` on MobileNetV3-style float models from another exporter
/// (`tests/mobile_cases.py`: Pad, HardSwish, squeeze-excite with ReduceMean and HardSigmoid):
/// the QDQ file passes onnx's checker, agrees with onnxruntime within one output step and with
/// the float model within a tenth of its output range; on sprig-runtime the HardSwish and
/// HardSigmoid layers run as int8 lookup tables, the spatial ReduceMeans as int8 average pools
/// and the squeeze-excite Mul as an int8 Mul: no float kernel is needed, and a frozen plan of
/// it computes the same outputs. A reflect Pad runs on the 8-bit codes; a
/// constant Pad gets its own quantization (int8 zeros would be code 0, not the zero point).
#[test]
fn post_training_quantization_of_a_mobilenet_v3_block() {
    use sprig_compress::ptq::quantize_onnx;
    let (dir, _) = crate::support::generated_cases("mobile_cases.py");
    let (train_set, test) = digits().split(0.2, 0);
    let test = subset(&test, 40);
    for mode in ["reflect", "constant"] {
        let float =
            std::fs::read(dir.join(format!("mobilenet_v3_digits_{mode}_pad.onnx"))).unwrap();
        let (q, summary) = quantize_onnx(&float, &subset(&train_set, 200), false).unwrap();
        let path = tmp("ptq-mobilenet-v3").join(format!("mobilenet_v3_{mode}.int8.onnx"));
        let i = check_ptq_file(&float, &q, &path, &test);
        // The 3×3 conv, the depthwise conv, the two squeeze-excite convs and the Gemm.
        assert_eq!(summary.weights_quantized, 5);
        let m = Model::parse(&q).unwrap();
        let mut arena = vec![0u8; m.arena_bytes().unwrap()];
        let it = sprig_runtime::Interpreter::new(&m, &mut arena).unwrap();
        let names: Vec<&str> = (0..it.step_count()).map(|i| it.step_op(i)).collect();
        let count = |op: &str| names.iter().filter(|&&n| n == op).count();
        assert_eq!(count("QLinearHardSwish"), 2, "{names:?}");
        assert_eq!(count("QLinearHardSigmoid"), 1, "{names:?}");
        // Both spatial ReduceMeans (squeeze-excite, keeping dims; the head, dropping them) run
        // as int8 global average pools.
        assert_eq!(count("QLinearAveragePool"), 2, "{names:?}");
        assert_eq!(count("ReduceMean"), 0, "{names:?}");
        // The squeeze-excite scale is an int8 Mul: the whole block runs without float kernels.
        assert_eq!(count("QLinearMul"), 1, "{names:?}");
        assert!(
            !it.op_features().contains(&"float-ops"),
            "{mode}: {names:?}"
        );
        // A frozen plan (portable kernels, as for a microcontroller) computes the same bytes.
        drop(it);
        sprig_runtime::kernels::set_portable_only(true);
        let mut arena2 = vec![0u8; m.arena_bytes().unwrap()];
        let planned = sprig_runtime::Interpreter::new(&m, &mut arena2).unwrap();
        sprig_runtime::kernels::set_portable_only(false);
        let plan = planned.freeze(&q).unwrap();
        drop(planned);
        let mut arena3 = vec![0u8; m.arena_bytes().unwrap()];
        let mut thawed = sprig_runtime::Interpreter::new_frozen(&q, &plan, &mut arena3).unwrap();
        let mut frozen_out = Vec::new();
        for k in 0..test.len() {
            thawed.set_input_f32(0, test.image(k)).unwrap();
            thawed.invoke().unwrap();
            frozen_out.extend_from_slice(thawed.output(0).unwrap().as_f32().unwrap());
        }
        assert_eq!(frozen_out, i, "{mode}: frozen plan");
        // In the QDQ file a reflect Pad reads the int8 tensor itself; a constant Pad reads
        // the dequantized one and has its own Quantize after it (sprig-runtime then fuses it
        // with the zero point's code as the pad value when the parameters come out equal).
        let nodes: Vec<_> = m.nodes().map(|n| n.unwrap()).collect();
        let pad = nodes.iter().find(|n| n.op_type == "Pad").unwrap();
        let producer = nodes
            .iter()
            .find(|n| n.outputs.first() == pad.inputs.first())
            .unwrap();
        let want = if mode == "constant" {
            "DequantizeLinear"
        } else {
            "QuantizeLinear"
        };
        assert_eq!(producer.op_type, want, "{mode}: the Pad's input");
    }
    let _ = std::fs::remove_dir_all(&dir);
}

/// Writes the quantized model `q` to `path`, checks that onnxruntime agrees with sprig-runtime
/// on it, and that its outputs on `test` stay within a tenth of the float model's output range;
/// returns the int8 outputs.
fn check_ptq_file(float: &[u8], q: &[u8], path: &Path, test: &ImageSet) -> Vec<f32> {
    std::fs::write(path, q).unwrap();
    check_with_onnxruntime(path, test);
    let (f, i) = (outputs(float, test), outputs(q, test));
    let range = f.iter().fold(0f32, |m, v| m.max(v.abs()));
    let worst = f
        .iter()
        .zip(&i)
        .map(|(a, b)| (a - b).abs())
        .fold(0f32, f32::max);
    assert!(
        worst <= 0.1 * range,
        "{}: int8 {worst} from float (range {range})",
        path.display()
    );
    i
}

/// `sprig quantize` on a classifier that flattens with `x.view(x.size(0), -1)` (Shape →
/// Gather → Unsqueeze → Concat → Reshape, int64): only float activations get Q/DQ pairs, the
/// shape chain stays int64 (the int8 plan folds it), onnxruntime runs the file, and the int8
/// outputs stay near the float ones.
#[test]
fn post_training_quantization_leaves_shape_arithmetic_alone() {
    use sprig_compress::ptq::quantize_onnx;
    let (dir, _) = crate::support::generated_cases("shape_cases.py");
    let float = std::fs::read(dir.join("ptq/view_classifier.onnx")).unwrap();
    let (train_set, test) = digits().split(0.2, 0);
    let test = subset(&test, 40);
    let (q, summary) = quantize_onnx(&float, &subset(&train_set, 200), false).unwrap();
    assert_eq!(summary.weights_quantized, 2);
    // The input, the conv's Relu and the logits: not the int64 shape vectors.
    assert_eq!(summary.activations_quantized, 3);
    check_ptq_file(
        &float,
        &q,
        &tmp("ptq-view").join("view_classifier.int8.onnx"),
        &test,
    );
    let _ = std::fs::remove_dir_all(&dir);
}

/// Float16 export: half-precision weights (under 60% of the float32 file), onnx's checker passes, onnxruntime
/// and tract agree with sprig-runtime, and the predictions stay those of the
/// float32 file — for a ResNet (residual Adds), the MobileNetV2-style net (depthwise `group`) and
/// DenseNet-BC (Concat, AveragePool). The same holds with sprig's half-precision arithmetic
/// (`PlanOptions::half_arithmetic`), which keeps the weights as f16 in the arena.
#[test]
fn float16_export_keeps_the_float32_predictions() {
    use sprig_compress::export::{export_f16, export_f32};
    let (train_set, test) = digits().split(0.2, 3);
    let (train_set, test) = (subset(&train_set, 400), subset(&test, 60));
    let out = tmp("f16");
    for spec in [
        ArchSpec::resnet("r8", (1, 8, 8), 1, 8, 10),
        ArchSpec::mobilenet_v2("mnv2", (1, 8, 8), 8, 10),
        ArchSpec::densenet_bc("dn", (1, 8, 8), 10, 6, 10),
    ] {
        let cfg = TrainConfig {
            epochs: 3,
            progress: false,
            seed: 2,
            ..Default::default()
        };
        let r = train(&spec, &train_set, &cfg, Run::default(), &spec.name).unwrap();
        let w = r.model.weights().unwrap();
        let (f32_bytes, f16_bytes) = (export_f32(&spec, &w), export_f16(&spec, &w));
        // The weights halve; node and name bytes do not (a fifth of these tiny files).
        assert!(
            (f16_bytes.len() as f64) < 0.6 * f32_bytes.len() as f64,
            "{}: f16 {} bytes vs f32 {}",
            spec.name,
            f16_bytes.len(),
            f32_bytes.len()
        );
        let path = out.join(format!("{}.f16.onnx", spec.name));
        std::fs::write(&path, &f16_bytes).unwrap();
        let (half, full) = (outputs(&f16_bytes, &test), outputs(&f32_bytes, &test));
        let close = |a: &[f32], b: &[f32], tol: f32| {
            a.iter()
                .zip(b)
                .map(|(x, y)| (x - y).abs() / y.abs().max(1.0))
                .fold(0f32, f32::max)
                <= tol
        };
        assert!(close(&half, &full, 2e-2), "{}: f16 vs f32", spec.name);
        let argmax = sprig_compress::eval::argmax;
        let same = half
            .chunks(10)
            .zip(full.chunks(10))
            .filter(|(a, b)| argmax(a) == argmax(b))
            .count();
        assert!(
            same >= test.len() - 1,
            "{}: {same} of {} same class",
            spec.name,
            test.len()
        );
        // onnx checker + onnxruntime (whose CPU kernels compute these float16 models in
        // float32: it agrees with sprig's widened plan within ~2e-6).
        let check = Command::new(python())
            .args([
                "-c",
                "import onnx,sys; onnx.checker.check_model(onnx.load(sys.argv[1]), full_check=True)",
            ])
            .arg(&path)
            .output()
            .unwrap();
        assert!(
            check.status.success(),
            "{}",
            String::from_utf8_lossy(&check.stderr)
        );
        let (x, y) = (out.join("samples.f32"), out.join("ort.f32"));
        let raw: Vec<u8> = test.images.iter().flat_map(|v| v.to_le_bytes()).collect();
        std::fs::write(&x, raw).unwrap();
        let o = Command::new(python())
            .arg(repo().join("tests/ort_reference.py"))
            .arg("run")
            .args([&path, &x, &y])
            .output()
            .unwrap();
        assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
        let ort: Vec<f32> = std::fs::read(&y)
            .unwrap()
            .chunks_exact(4)
            .map(|c| f32::from_le_bytes(c.try_into().unwrap()))
            .collect();
        assert!(
            close(&half, &ort, 2e-2),
            "{}: sprig vs onnxruntime",
            spec.name
        );
        // Half-precision arithmetic: f16 multiply-accumulate, f16 weights in the arena.
        let opts = sprig_runtime::PlanOptions {
            half_arithmetic: true,
            ..Default::default()
        };
        let h16 = outputs_with(&f16_bytes, &test, opts);
        assert!(
            close(&h16, &ort, 2e-2),
            "{}: half vs onnxruntime",
            spec.name
        );
        assert!(
            h16 != half,
            "{}: half arithmetic changed nothing",
            spec.name
        );
        let same16 = h16
            .chunks(10)
            .zip(full.chunks(10))
            .filter(|(a, b)| argmax(a) == argmax(b))
            .count();
        assert!(
            same16 >= test.len() - 1,
            "{}: half arithmetic: {same16} of {} same class",
            spec.name,
            test.len()
        );
        let m16 = Model::parse(&f16_bytes).unwrap();
        let persistent = |o| m16.arena_report_with::<512, 256>(o).unwrap().persistent;
        let (p16, p32) = (persistent(opts), persistent(Default::default()));
        assert!(
            (p16 as f64) < 0.6 * p32 as f64,
            "{}: half weights {p16} bytes vs widened {p32}",
            spec.name
        );
        println!(
            "{}: half arithmetic max |Δ| vs onnxruntime {:.2e} (widened {:.2e}); weights {p16} vs {p32} bytes",
            spec.name,
            h16.iter().zip(&ort).map(|(a, b)| (a - b).abs()).fold(0f32, f32::max),
            half.iter().zip(&ort).map(|(a, b)| (a - b).abs()).fold(0f32, f32::max),
        );
        // tract.
        use tract_onnx::prelude::*;
        let tract = tract_onnx::onnx()
            .model_for_path(&path)
            .unwrap()
            .into_optimized()
            .unwrap()
            .into_runnable()
            .unwrap();
        let mut t = Vec::new();
        for i in 0..test.len() {
            let x: Tensor =
                tract_ndarray::Array4::from_shape_vec((1, 1, 8, 8), test.image(i).to_vec())
                    .unwrap()
                    .into();
            let y = tract.run(tvec!(x.into())).unwrap();
            t.extend(y[0].to_plain_array_view::<f32>().unwrap().iter().copied());
        }
        assert!(close(&half, &t, 2e-2), "{}: sprig vs tract", spec.name);
    }
}

/// Frozen ONNX and privileged teachers (one test binary with this file: each binary links the
/// whole training stack, which costs CI time).
mod teachers;

/// Every recipe in `recipes/` is one the CLI accepts: keys, layer names, connectable feature
/// pairs, schedules (checked on a few images of its dataset; nothing trains).
#[test]
fn every_shipped_recipe_is_valid() {
    let dir = repo().join("recipes");
    let mut names: Vec<PathBuf> = std::fs::read_dir(&dir)
        .unwrap()
        .map(|e| e.unwrap().path())
        .filter(|p| p.extension().is_some_and(|x| x == "toml"))
        .collect();
    names.sort();
    assert!(names.len() >= 5, "{names:?}");
    for path in names {
        let origin = path.display().to_string();
        let src = std::fs::read_to_string(&path).unwrap();
        if sprig_compress::traj_pipeline::is_trajectory_recipe(&src) {
            sprig_compress::traj_pipeline::parse(&src, &origin).unwrap_or_else(|e| panic!("{e}"));
            continue;
        }
        let mut data = Plan::peek(&src, &origin)
            .unwrap_or_else(|e| panic!("{e}"))
            .data;
        data.train_limit = Some(600);
        data.test_limit = Some(10);
        let (tr, _) = pipeline::load_recipe_data(&data).unwrap_or_else(|e| panic!("{origin}: {e}"));
        Plan::parse(&src, &origin, tr.chw, tr.classes, tr.len()).unwrap_or_else(|e| panic!("{e}"));
    }
}

//! Teachers beyond a model sprig trains in the same run: a float ONNX model run frozen through
//! tract, with intermediate activations picked by ONNX tensor name, and a privileged teacher
//! that reads input channels the deployed student never sees. Tiny seeded digits subsets.

use sprig_compress::pipeline::{self, Goal, Options, Report};
use sprig_compress::recipe::Plan;
use sprig_compress::teacher::{OnnxTeacher, Teacher};
use sprig_compress::train::{image_batch, train, Run, TrainConfig};
use sprig_models::arch::ArchSpec;
use sprig_runtime::Model;
use std::path::{Path, PathBuf};

fn tmp(name: &str) -> PathBuf {
    let d = std::env::temp_dir().join(format!("sprig-teachers-{}-{name}", std::process::id()));
    let _ = std::fs::remove_dir_all(&d);
    std::fs::create_dir_all(&d).unwrap();
    d
}

fn run_recipe(src: &str, out: &Path, goal: Goal) -> Result<Report, String> {
    run_recipe_with(src, out, goal, 256)
}

fn run_recipe_with(
    src: &str,
    out: &Path,
    goal: Goal,
    teacher_cache_mb: usize,
) -> Result<Report, String> {
    let recipe = Plan::peek(src, "test.toml").map_err(|e| e.to_string())?;
    let (tr, te) = pipeline::load_recipe_data(&recipe.data).map_err(|e| e.to_string())?;
    let plan =
        Plan::parse(src, "test.toml", tr.chw, tr.classes, tr.len()).map_err(|e| e.to_string())?;
    let opts = Options {
        out: out.to_path_buf(),
        resume: false,
        quiet: true,
        latency_runs: 3,
        stop_after: None,
        teacher_cache_mb,
    };
    pipeline::run(&plan, &tr, &te, goal, &opts).map_err(|e| e.to_string())
}

fn row<'r>(r: &'r Report, starts: &str) -> &'r pipeline::Row {
    r.rows
        .iter()
        .find(|x| x.model.starts_with(starts))
        .unwrap_or_else(|| {
            panic!(
                "no row '{starts}…' in {:?}",
                r.rows.iter().map(|x| &x.model).collect::<Vec<_>>()
            )
        })
}

/// The two runs' distilled students agree on top-1 and on agreement with the teacher within
/// 0.02 (float rounding carried through training).
fn assert_same_kd_student(a: &Report, b: &Report) {
    let (ka, kb) = (row(a, "student + KD"), row(b, "student + KD"));
    assert!(
        (ka.top1 - kb.top1).abs() <= 0.02,
        "KD student {} vs {}",
        ka.top1,
        kb.top1
    );
    let (ga, gb) = (ka.teacher_agreement.unwrap(), kb.teacher_agreement.unwrap());
    assert!((ga - gb).abs() <= 0.02, "agreement {ga} vs {gb}");
}

/// A digits teacher trained and exported by sprig, then loaded back as a frozen ONNX teacher.
/// Returns the file and the name of the second convolution's output tensor.
fn exported_teacher(dir: &Path) -> (PathBuf, String, sprig_compress::train::Trained) {
    let (tr, _) = pipeline::load_data("digits", Some(500), Some(10)).unwrap();
    let spec = ArchSpec::small_cnn("teacher", tr.chw, 16, 32, Some(64), tr.classes);
    let cfg = TrainConfig {
        epochs: 8,
        progress: false,
        seed: 5,
        ..Default::default()
    };
    let t = train(&spec, &tr, &cfg, Run::default(), "teacher").unwrap();
    let bytes = sprig_compress::export::export_f32(&spec, &t.model.weights().unwrap());
    let path = dir.join("teacher.onnx");
    std::fs::write(&path, &bytes).unwrap();
    let model = Model::parse(&bytes).unwrap();
    let convs: Vec<String> = model
        .nodes()
        .map(|n| n.unwrap())
        .filter(|n| n.op_type == "Conv")
        .map(|n| n.outputs[0].to_string())
        .collect();
    assert_eq!(convs.len(), 2);
    (path, convs[1].clone(), t)
}

#[test]
fn onnx_teacher_gives_the_logits_and_named_features_of_its_model() {
    let dir = tmp("same");
    let (path, conv2, t) = exported_teacher(&dir);
    let onnx = OnnxTeacher::load(&path, (1, 8, 8), std::slice::from_ref(&conv2)).unwrap();
    let layout = onnx.layout();
    assert_eq!(layout.outputs, 10);
    assert_eq!(layout.shapes, vec![(32, 4, 4)]);
    let (_, te) = pipeline::load_data("digits", Some(10), Some(70)).unwrap();
    // A batch size the model was never told about (the batch dimension is symbolic).
    let x = image_batch(&te, &(0..70).collect::<Vec<_>>()).unwrap();
    let (lo, fo) = onnx.forward_features(&x).unwrap();
    let (lc, fc) = t.model.forward_features(&x).unwrap();
    let diff = |a: &candle_core::Tensor, b: &candle_core::Tensor| {
        (a - b)
            .unwrap()
            .abs()
            .unwrap()
            .max_all()
            .unwrap()
            .to_scalar::<f32>()
            .unwrap()
    };
    assert_eq!(lo.dims(), &[70, 10]);
    assert!(diff(&lo, &lc) < 1e-4, "logits differ by {}", diff(&lo, &lc));
    // sprig's conv2 feature is the pre-activation convolution output: the Conv node's output.
    assert_eq!(fo[0].dims(), fc[1].dims());
    assert!(
        diff(&fo[0], &fc[1]) < 1e-4,
        "feature differs by {}",
        diff(&fo[0], &fc[1])
    );

    let err = OnnxTeacher::load(&path, (1, 8, 8), &["no_such_tensor".into()]).unwrap_err();
    assert!(
        err.to_string().contains("no tensor named 'no_such_tensor'"),
        "{err}"
    );
    let err = OnnxTeacher::load(&dir.join("missing.onnx"), (1, 8, 8), &[]).unwrap_err();
    assert!(err.to_string().contains("missing.onnx"), "{err}");
    std::fs::write(dir.join("junk.onnx"), b"not a model").unwrap();
    let err = OnnxTeacher::load(&dir.join("junk.onnx"), (1, 8, 8), &[]).unwrap_err();
    assert!(err.to_string().contains("junk.onnx"), "{err}");
}

/// A trained teacher distilled into a small student with Hinton KD and a FitNets hint.
const TRAINED: &str = r#"
name = "trained-teacher"
seed = 3
[data]
dataset = "digits"
train_limit = 500
test_limit = 150
[train]
epochs = 10
batch = 32
[[teacher]]
name = "teacher"
arch = { family = "small-cnn", c1 = 16, c2 = 32, hidden = 64 }
[student]
name = "student"
arch = { family = "small-cnn", c1 = 4, c2 = 8 }
[distill]
ce_weight = 0.3
[[distill.loss]]
kind = "hinton"
weight = 0.7
[[distill.loss]]
kind = "fitnets"
weight = 0.5
student_layer = "conv2"
teacher_layer = "conv2"
"#;

#[test]
fn distilling_from_the_exported_onnx_file_matches_distilling_from_the_model() {
    let dir = tmp("recipe");
    let trained = TRAINED;
    let a = run_recipe(trained, &dir.join("a"), Goal::Distill).unwrap();
    // The same teacher, now the file the first run exported, its conv2 picked by tensor name.
    let file = dir.join("a/teacher.f32.onnx");
    let bytes = std::fs::read(&file).unwrap();
    let model = Model::parse(&bytes).unwrap();
    let conv2 = model
        .nodes()
        .map(|n| n.unwrap())
        .filter(|n| n.op_type == "Conv")
        .nth(1)
        .unwrap()
        .outputs[0]
        .to_string();
    let frozen = trained
        .replace(
            "name = \"teacher\"\narch = { family = \"small-cnn\", c1 = 16, c2 = 32, hidden = 64 }",
            &format!(
                "name = \"frozen\"\nonnx = \"{}\"\nfeatures = [\"{conv2}\"]",
                file.display()
            ),
        )
        .replace(
            "teacher_layer = \"conv2\"",
            &format!("teacher_layer = \"{conv2}\""),
        );
    assert_ne!(frozen, trained);
    let b = run_recipe(&frozen, &dir.join("b"), Goal::Distill).unwrap();
    for r in a.rows.iter().chain(&b.rows) {
        eprintln!("{} {:.3} {:?}", r.model, r.top1, r.teacher_agreement);
    }
    // The file measured as it is: the accuracy and size of the model it came from.
    let (ta, tb) = (row(&a, "teacher"), row(&b, "frozen"));
    assert_eq!(tb.top1, ta.top1);
    assert_eq!(tb.params, ta.params);
    assert_eq!(tb.nonzeros, ta.nonzeros);
    assert_eq!(tb.file_bytes, ta.file_bytes);
    // Same student alone (nothing changed) and, through tract instead of candle, the same
    // distillation up to float rounding carried through 10 epochs.
    assert_eq!(row(&a, "student f32").top1, row(&b, "student f32").top1);
    assert_same_kd_student(&a, &b);

    // Named problems before any training.
    let bad = |from: &str, to: &str| {
        let src = frozen.replacen(from, to, 1);
        assert_ne!(src, frozen);
        run_recipe(&src, &dir.join("bad"), Goal::Distill).unwrap_err()
    };
    let e = bad(
        &format!("teacher_layer = \"{conv2}\""),
        "teacher_layer = \"fc9\"",
    );
    assert!(
        e.contains("teacher_layer 'fc9' does not exist in frozen") && e.contains(&conv2),
        "{e}"
    );
    let e = bad("features = [", "features = [\"ghost\", ");
    assert!(
        e.contains("teacher 'frozen'") && e.contains("no tensor named 'ghost'"),
        "{e}"
    );
    let e = bad(
        "onnx = ",
        "arch = { family = \"small-cnn\", c1 = 4, c2 = 8 }\nonnx = ",
    );
    assert!(
        e.contains("teacher 'frozen' needs exactly one of arch or onnx"),
        "{e}"
    );
    let e = bad("kind = \"fitnets\"", "kind = \"area-rkd\"\ngrid = 3");
    assert!(
        e.contains("cannot connect student to frozen") && e.contains("grid 3"),
        "{e}"
    );
}

#[test]
fn a_privileged_teacher_sees_channels_the_deployed_student_does_not() {
    let dir = tmp("privileged");
    let recipe = r#"
name = "privileged"
seed = 2
[data]
dataset = "digits"
train_limit = 600
test_limit = 200
privileged = "clean"
[train]
epochs = 30
batch = 32
[[teacher]]
name = "teacher"
privileged = true
arch = { family = "small-cnn", c1 = 16, c2 = 32, hidden = 64 }
[student]
name = "student"
arch = { family = "small-cnn", c1 = 8, c2 = 16 }
[distill]
ce_weight = 0.3
[[distill.loss]]
kind = "hinton"
weight = 0.7
"#;
    let out = dir.join("out");
    let report = run_recipe(recipe, &out, Goal::Distill).unwrap();
    let input_dims = |file: &str| {
        let bytes = std::fs::read(out.join(file)).unwrap();
        let m = Model::parse(&bytes).unwrap();
        let i = m.inputs().next().unwrap().unwrap();
        i.shape.unwrap().dims().to_vec()
    };
    // The teacher reads the degraded view and the clean image; every student file only the
    // deployable view.
    assert_eq!(input_dims("teacher.f32.onnx"), [1u32, 2, 8, 8]);
    assert_eq!(input_dims("student.f32.onnx"), [1u32, 1, 8, 8]);
    assert_eq!(input_dims("student-kd.f32.onnx"), [1u32, 1, 8, 8]);
    let teacher = row(&report, "teacher");
    let alone = row(&report, "student f32");
    let kd = row(&report, "student + KD");
    for r in &report.rows {
        eprintln!("{} {:.3} {:?}", r.model, r.top1, r.teacher_agreement);
    }
    // The clean channel is worth something: the teacher beats the student that cannot see it.
    assert!(
        teacher.top1 > alone.top1 + 0.02,
        "teacher {} vs student {}",
        teacher.top1,
        alone.top1
    );
    assert!(kd.teacher_agreement.is_some());

    let e = run_recipe(
        &recipe.replace("privileged = \"clean\"\n", ""),
        &dir.join("bad"),
        Goal::Distill,
    )
    .unwrap_err();
    assert!(
        e.contains("teacher 'teacher' is privileged but [data] has no privileged channels"),
        "{e}"
    );
    let e = run_recipe(
        &recipe.replace("privileged = \"clean\"", "privileged = \"sar\""),
        &dir.join("bad"),
        Goal::Distill,
    )
    .unwrap_err();
    assert!(e.contains("data.privileged 'sar'"), "{e}");
}

/// Without augmentation the pipeline remembers the teacher's outputs after one pass over the
/// training images instead of running it every step; the student it trains is the one running
/// the teacher trains, up to the float rounding of a different batch composition.
#[test]
fn remembering_the_teachers_outputs_trains_the_same_student() {
    let dir = tmp("cache");
    let a = run_recipe_with(TRAINED, &dir.join("a"), Goal::Distill, 256).unwrap();
    let b = run_recipe_with(TRAINED, &dir.join("b"), Goal::Distill, 0).unwrap();
    assert_eq!(row(&a, "teacher").top1, row(&b, "teacher").top1);
    assert_same_kd_student(&a, &b);
}

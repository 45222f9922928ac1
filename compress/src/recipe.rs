//! Recipes: one TOML file names the dataset, the teacher(s), the student, the distillation
//! losses with weights and layer pairs, the optimizer and schedule, pruning and quantization.
//! Everything is checked when the file is read — unknown keys, layer names that do not exist,
//! features that cannot be connected, bad schedules — and the error names the key and line,
//! before any training starts.

use crate::distill::{connect_error, KdLoss, KdTerm};
use crate::optim::{OptimizerKind, Schedule};
use crate::prune::{GradualSchedule, Scope};
use crate::teacher::{OnnxTeacher, Teacher, TeacherLayout};
use crate::train::TrainConfig;
use serde::{Deserialize, Serialize};
use sprig_models::arch::ArchSpec;
use std::sync::Arc;
use toml::Spanned;

/// A recipe as written.
#[derive(Debug, Clone, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub struct Recipe {
    /// Names the output files.
    pub name: String,
    /// Seed of every run.
    #[serde(default)]
    pub seed: u64,
    /// The dataset.
    pub data: DataSection,
    /// Default training settings of every model.
    #[serde(default)]
    pub train: TrainSection,
    /// Teachers (`[[teacher]]`, several make an ensemble).
    #[serde(default)]
    pub teacher: Vec<ModelSection>,
    /// The deployable model.
    pub student: ModelSection,
    /// Distillation objective.
    pub distill: Option<DistillSection>,
    /// Gradual magnitude pruning.
    pub prune: Option<PruneSection>,
    /// Int8 quantization.
    pub quantize: Option<QuantizeSection>,
}

/// `[data]`.
#[derive(Debug, Clone, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub struct DataSection {
    /// `KIND[:PATH]`: digits, mnist:DIR, fashion-mnist:DIR, cifar10:DIR.
    pub dataset: String,
    /// Use only the first N training images (seeded order).
    pub train_limit: Option<usize>,
    /// Use only the first N test images.
    pub test_limit: Option<usize>,
    /// `"clean"`: the student and every deployed model see a degraded view of each image (half
    /// the resolution, seeded noise) while the clean image is an extra input channel only
    /// `privileged = true` teachers see — learning using privileged information, the
    /// EO+SAR → EO setting with a better sensor that is there in training only.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub privileged: Option<String>,
}

/// `[train]`: hyper-parameters (each model may override epochs and lr).
#[derive(Debug, Clone, Deserialize, Serialize)]
#[serde(deny_unknown_fields, default)]
pub struct TrainSection {
    /// Epochs.
    pub epochs: usize,
    /// Batch size.
    pub batch: usize,
    /// `adamw` or `sgd`.
    pub optimizer: String,
    /// Peak learning rate.
    pub lr: f64,
    /// SGD momentum.
    pub momentum: f64,
    /// Weight decay.
    pub weight_decay: f64,
    /// `cosine` or `step`.
    pub schedule: String,
    /// Step schedule: epochs between decays.
    pub step_epochs: usize,
    /// Step schedule: decay factor.
    pub gamma: f64,
    /// Random-shift augmentation in pixels (random crop with padding).
    pub augment_shift: usize,
    /// Random horizontal flips (natural images such as CIFAR-10; not digits or letters).
    /// Left out of the stage fingerprint when off, so older checkpoints stay valid.
    #[serde(skip_serializing_if = "std::ops::Not::not")]
    pub augment_flip: bool,
    /// Mixup α (each image blended with another of its batch, λ ~ Beta(α, α)); 0 = off.
    /// Left out of the stage fingerprint when off, so older checkpoints stay valid.
    #[serde(skip_serializing_if = "is_zero")]
    pub mixup: f64,
}

fn is_zero(v: &f64) -> bool {
    *v == 0.0
}

impl Default for TrainSection {
    fn default() -> Self {
        TrainSection {
            epochs: 20,
            batch: 32,
            optimizer: "adamw".into(),
            lr: 3e-3,
            momentum: 0.9,
            weight_decay: 1e-4,
            schedule: "cosine".into(),
            step_epochs: 10,
            gamma: 0.1,
            augment_shift: 0,
            augment_flip: false,
            mixup: 0.0,
        }
    }
}

/// `[student]` / `[[teacher]]`.
#[derive(Debug, Clone, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub struct ModelSection {
    /// Label in reports and file names.
    pub name: String,
    /// Architecture (a teacher may give `onnx` instead).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub arch: Option<ArchSection>,
    /// Teachers only: a frozen float ONNX model run through tract instead of a trained `arch`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub onnx: Option<String>,
    /// ONNX teachers: tensor names the feature losses may use as `teacher_layer`.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub features: Vec<String>,
    /// Teachers only: sees the privileged channels of `[data] privileged` too.
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub privileged: bool,
    /// Overrides `[train] epochs`.
    pub epochs: Option<usize>,
    /// Overrides `[train] lr`.
    pub lr: Option<f64>,
    /// Overrides `[train] mixup` (this model's runs without distillation).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub mixup: Option<f64>,
    /// Overrides `[train] augment_shift`: e.g. a teacher trained with random crops for a
    /// student that trains without them.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub augment_shift: Option<usize>,
    /// Overrides `[train] augment_flip`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub augment_flip: Option<bool>,
}

/// `arch = { family = "small-cnn", c1 = .., c2 = .., hidden = .. }`,
/// `arch = { family = "resnet", depth = 8|20|56|.., width = 16 }`,
/// `arch = { family = "mobilenetv2", width = 16 }` or
/// `arch = { family = "densenet-bc", depth = 10|16|..|100, growth = 12 }`.
#[derive(Debug, Clone, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub struct ArchSection {
    /// `small-cnn`: conv(c1)–pool–conv(c2)–pool–[dense(hidden)]–dense(classes);
    /// `resnet`: ResNet-CIFAR of `depth` = 6n + 2 layers and base `width`;
    /// `mobilenetv2`: inverted residual blocks with depthwise convolutions, base `width`;
    /// `densenet-bc`: three dense blocks of (`depth` − 4)/6 bottleneck layers, `growth` rate.
    pub family: String,
    /// small-cnn: first conv width.
    pub c1: Option<usize>,
    /// small-cnn: second conv width.
    pub c2: Option<usize>,
    /// small-cnn: optional hidden dense layer.
    pub hidden: Option<usize>,
    /// resnet: depth 6n + 2 (8, 14, 20, 32, 44, 56, …); densenet-bc: 6n + 4 (10, 16, …, 100).
    pub depth: Option<usize>,
    /// resnet: channels of the first stage (16 in the paper).
    pub width: Option<usize>,
    /// densenet-bc: channels each bottleneck layer adds (k; 12 in the paper).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub growth: Option<usize>,
}

/// `[distill]`.
#[derive(Debug, Clone, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub struct DistillSection {
    /// Weight of the hard-label cross-entropy (α in Hinton's objective).
    #[serde(default = "one")]
    pub ce_weight: f64,
    /// Mixup α of the distilling runs only (function matching: the teacher labels the very
    /// blend the student sees); `[train] mixup` when absent.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub mixup: Option<f64>,
    /// The losses (`[[distill.loss]]`).
    pub loss: Vec<LossSection>,
}

fn one() -> f64 {
    1.0
}

/// `[[distill.loss]]`.
#[derive(Debug, Clone, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub struct LossSection {
    /// hinton, fitnets, attention, activation-boundary, rkd-distance, rkd-angle, area-rkd.
    pub kind: Spanned<String>,
    /// Weight in the total loss.
    #[serde(default = "one")]
    pub weight: f64,
    /// Which teacher (by name; the first when absent).
    pub teacher: Option<Spanned<String>>,
    /// Student layer (conv1, conv2, fc1, …).
    pub student_layer: Option<Spanned<String>>,
    /// Teacher layer.
    pub teacher_layer: Option<Spanned<String>>,
    /// Hinton temperature.
    pub temperature: Option<f64>,
    /// Activation-boundary margin.
    pub margin: Option<f64>,
    /// Area-wise RKD grid.
    pub grid: Option<usize>,
}

/// `[prune]`.
#[derive(Debug, Clone, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub struct PruneSection {
    /// Final sparsity s_f in [0, 1).
    pub sparsity: f64,
    /// Initial sparsity s_i.
    #[serde(default)]
    pub initial: f64,
    /// Epoch at which pruning starts.
    #[serde(default)]
    pub start_epoch: usize,
    /// Epoch by which the final sparsity is reached.
    pub end_epoch: usize,
    /// Steps between mask updates (Δt).
    #[serde(default = "ten")]
    pub every_steps: usize,
    /// Schedule exponent.
    #[serde(default = "three")]
    pub exponent: f64,
    /// `global` or `per-layer`.
    #[serde(default = "global")]
    pub scope: String,
    /// Extra sparsities for the accuracy-vs-sparsity curve (distilled, float).
    #[serde(default)]
    pub sweep: Vec<f64>,
    /// Structured pruning: the fraction of filters/hidden units removed from every prunable
    /// layer of the (distilled) student, which is then fine-tuned.
    pub structured: Option<f64>,
    /// Fine-tuning epochs after structured pruning.
    #[serde(default = "three_epochs")]
    pub structured_epochs: usize,
}

fn three_epochs() -> usize {
    3
}

fn ten() -> usize {
    10
}
fn three() -> f64 {
    3.0
}
fn global() -> String {
    "global".into()
}

/// `[quantize]`.
#[derive(Debug, Clone, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub struct QuantizeSection {
    /// `qat` (fake-quant fine-tuning) or `ptq` (calibration only).
    pub mode: String,
    /// QAT epochs.
    #[serde(default = "five")]
    pub epochs: usize,
    /// QAT learning rate.
    #[serde(default = "qat_lr")]
    pub lr: f64,
    /// Observers freeze after this many QAT epochs.
    pub freeze_observers_after: Option<usize>,
    /// Zero point 0 on activations (TensorRT).
    #[serde(default)]
    pub symmetric: bool,
    /// Learned step sizes (LSQ) for the activation scales instead of frozen observers.
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub lsq: bool,
    /// Calibration images.
    #[serde(default = "calib")]
    pub calib_samples: usize,
}

fn five() -> usize {
    5
}
fn qat_lr() -> f64 {
    3e-4
}
fn calib() -> usize {
    256
}

/// A teacher of a plan.
#[derive(Debug, Clone)]
#[allow(clippy::large_enum_variant)] // a few per run
pub enum TeacherPlan {
    /// A sprig architecture the pipeline trains first.
    Train(ArchSpec, TrainConfig),
    /// A frozen float ONNX model, run through tract.
    Onnx(Arc<OnnxTeacher>),
}

impl TeacherPlan {
    /// Its layers, feature shapes and outputs.
    pub fn layout(&self) -> TeacherLayout {
        match self {
            TeacherPlan::Train(spec, _) => TeacherLayout::of(spec),
            TeacherPlan::Onnx(t) => t.layout(),
        }
    }
}

/// A checked recipe, ready to run.
#[derive(Debug, Clone)]
pub struct Plan {
    /// The recipe as written.
    pub recipe: Recipe,
    /// Teachers, in recipe order.
    pub teachers: Vec<TeacherPlan>,
    /// Student architecture and training settings.
    pub student: (ArchSpec, TrainConfig),
    /// Cross-entropy weight and KD terms (empty without `[distill]`).
    pub kd: (f64, Vec<KdTerm>),
    /// Pruning schedule in steps, and its scope.
    pub prune: Option<(GradualSchedule, Scope)>,
    /// Quantization settings.
    pub quantize: Option<QuantizeSection>,
}

/// A recipe problem, with the line it is on.
fn at(src: &str, origin: &str, span: std::ops::Range<usize>, msg: String) -> crate::Error {
    let line = src[..span.start.min(src.len())].matches('\n').count() + 1;
    crate::Error::Invalid(format!("{origin}:{line}: {msg}"))
}

fn bad(origin: &str, msg: String) -> crate::Error {
    crate::Error::Invalid(format!("{origin}: {msg}"))
}

/// A mixup α is 0 (off) or a positive finite number; `key` names it in the error.
fn check_mixup(origin: &str, key: &str, alpha: f64) -> crate::Result<()> {
    if alpha >= 0.0 && alpha.is_finite() {
        Ok(())
    } else {
        Err(bad(
            origin,
            format!("{key} {alpha} must be 0 (off) or a positive α"),
        ))
    }
}

fn arch(
    a: &ArchSection,
    name: &str,
    input: (usize, usize, usize),
    classes: usize,
    origin: &str,
) -> crate::Result<ArchSpec> {
    let need = |v: Option<usize>, key: &str| {
        v.filter(|v| *v > 0)
            .ok_or_else(|| bad(origin, format!("{name}: {} needs {key} ≥ 1", a.family)))
    };
    let unused = |keys: &[(&str, bool)]| -> crate::Result<()> {
        match keys.iter().find(|k| k.1) {
            Some((k, _)) => Err(bad(origin, format!("{name}: {} has no '{k}'", a.family))),
            None => Ok(()),
        }
    };
    match a.family.as_str() {
        "small-cnn" => {
            unused(&[
                ("depth", a.depth.is_some()),
                ("width", a.width.is_some()),
                ("growth", a.growth.is_some()),
            ])?;
            let (c1, c2) = (need(a.c1, "c1")?, need(a.c2, "c2")?);
            if a.hidden == Some(0) {
                return Err(bad(origin, format!("{name}: hidden must be at least 1")));
            }
            if input.1 < 4 || input.2 < 4 {
                return Err(bad(
                    origin,
                    format!("{name}: small-cnn needs images of at least 4×4"),
                ));
            }
            Ok(ArchSpec::small_cnn(name, input, c1, c2, a.hidden, classes))
        }
        "resnet" => {
            unused(&[
                ("c1", a.c1.is_some()),
                ("c2", a.c2.is_some()),
                ("hidden", a.hidden.is_some()),
                ("growth", a.growth.is_some()),
            ])?;
            let depth = need(a.depth, "depth")?;
            if depth < 8 || (depth - 2) % 6 != 0 {
                return Err(bad(
                    origin,
                    format!("{name}: resnet depth {depth} is not 6n + 2 (8, 14, 20, …)"),
                ));
            }
            let width = a.width.unwrap_or(16);
            Ok(ArchSpec::resnet(
                name,
                input,
                (depth - 2) / 6,
                width.max(1),
                classes,
            ))
        }
        "mobilenetv2" => {
            unused(&[
                ("c1", a.c1.is_some()),
                ("c2", a.c2.is_some()),
                ("hidden", a.hidden.is_some()),
                ("depth", a.depth.is_some()),
                ("growth", a.growth.is_some()),
            ])?;
            let width = a.width.unwrap_or(16);
            if width < 4 {
                return Err(bad(
                    origin,
                    format!("{name}: mobilenetv2 width {width} is below 4"),
                ));
            }
            if input.1 < 4 || input.2 < 4 {
                return Err(bad(
                    origin,
                    format!("{name}: mobilenetv2 needs images of at least 4×4"),
                ));
            }
            Ok(ArchSpec::mobilenet_v2(name, input, width, classes))
        }
        "densenet-bc" => {
            unused(&[
                ("c1", a.c1.is_some()),
                ("c2", a.c2.is_some()),
                ("hidden", a.hidden.is_some()),
                ("width", a.width.is_some()),
            ])?;
            let depth = need(a.depth, "depth")?;
            if depth < 10 || (depth - 4) % 6 != 0 {
                return Err(bad(
                    origin,
                    format!("{name}: densenet-bc depth {depth} is not 6n + 4 (10, 16, 22, …)"),
                ));
            }
            if input.1 < 4 || input.2 < 4 {
                return Err(bad(
                    origin,
                    format!("{name}: densenet-bc needs images of at least 4×4"),
                ));
            }
            let growth = need(a.growth.or(Some(12)), "growth")?;
            Ok(ArchSpec::densenet_bc(name, input, depth, growth, classes))
        }
        other => Err(bad(
            origin,
            format!(
                "{name}: unknown arch family '{other}' (expected small-cnn, resnet, mobilenetv2 \
                 or densenet-bc)"
            ),
        )),
    }
}

fn train_config(
    t: &TrainSection,
    m: &ModelSection,
    seed: u64,
    origin: &str,
) -> crate::Result<TrainConfig> {
    let optimizer = match t.optimizer.as_str() {
        "adamw" => OptimizerKind::AdamW,
        "sgd" => OptimizerKind::Sgd {
            momentum: t.momentum,
        },
        o => {
            return Err(bad(
                origin,
                format!("train.optimizer '{o}' (expected adamw or sgd)"),
            ))
        }
    };
    let schedule = match t.schedule.as_str() {
        "cosine" => Schedule::Cosine,
        "step" => Schedule::Step {
            every_epochs: t.step_epochs.max(1),
            gamma: t.gamma,
        },
        o => {
            return Err(bad(
                origin,
                format!("train.schedule '{o}' (expected cosine or step)"),
            ))
        }
    };
    let epochs = m.epochs.unwrap_or(t.epochs);
    let lr = m.lr.unwrap_or(t.lr);
    let mixup = m.mixup.unwrap_or(t.mixup);
    check_mixup(origin, &format!("{}: mixup", m.name), mixup)?;
    if epochs == 0 || t.batch == 0 || !(lr > 0.0 && lr.is_finite()) {
        return Err(bad(
            origin,
            format!("{}: epochs, batch and lr must be positive", m.name),
        ));
    }
    Ok(TrainConfig {
        epochs,
        batch: t.batch,
        lr,
        schedule,
        optimizer,
        weight_decay: t.weight_decay,
        augment_shift: m.augment_shift.unwrap_or(t.augment_shift),
        augment_flip: m.augment_flip.unwrap_or(t.augment_flip),
        mixup,
        kd_mixup: None,
        seed,
        progress: true,
        prune: None,
    })
}

impl Plan {
    /// Parses and checks `src` for images of `input` shape with `classes` classes and
    /// `train_len` training images (pruning epochs become steps). `origin` names the file in
    /// errors.
    pub fn parse(
        src: &str,
        origin: &str,
        input: (usize, usize, usize),
        classes: usize,
        train_len: usize,
    ) -> crate::Result<Self> {
        let recipe = Self::peek(src, origin)?;
        Self::check(recipe, src, origin, input, classes, train_len)
    }

    /// Reads only the dataset part, so the caller can load the data before [`Plan::parse`].
    pub fn peek(src: &str, origin: &str) -> crate::Result<Recipe> {
        toml::from_str(src).map_err(|e| match e.span() {
            Some(span) => at(src, origin, span, e.message().to_string()),
            None => bad(origin, e.message().to_string()),
        })
    }

    fn check(
        recipe: Recipe,
        src: &str,
        origin: &str,
        input: (usize, usize, usize),
        classes: usize,
        train_len: usize,
    ) -> crate::Result<Self> {
        let mut names = std::collections::HashSet::new();
        for m in recipe.teacher.iter().chain([&recipe.student]) {
            if !names.insert(m.name.clone()) {
                return Err(bad(origin, format!("two models are named '{}'", m.name)));
            }
        }
        // With privileged data the loaded images carry the deployable view and the privileged
        // channels side by side; only privileged teachers read the latter.
        let deploy = match recipe.data.privileged.as_deref() {
            None => input,
            Some("clean") => (input.0 / 2, input.1, input.2),
            Some(other) => {
                return Err(bad(
                    origin,
                    format!("data.privileged '{other}' (expected clean)"),
                ))
            }
        };
        let mut teachers = Vec::new();
        for t in &recipe.teacher {
            if t.privileged && recipe.data.privileged.is_none() {
                return Err(bad(
                    origin,
                    format!(
                        "teacher '{}' is privileged but [data] has no privileged channels",
                        t.name
                    ),
                ));
            }
            let chw = if t.privileged { input } else { deploy };
            teachers.push(match (&t.arch, &t.onnx) {
                (Some(a), None) if t.features.is_empty() => TeacherPlan::Train(
                    arch(a, &t.name, chw, classes, origin)?,
                    train_config(&recipe.train, t, recipe.seed, origin)?,
                ),
                (Some(_), None) => {
                    return Err(bad(
                        origin,
                        format!(
                            "teacher '{}': features name tensors of an onnx teacher; a trained arch's layers are named by the losses",
                            t.name
                        ),
                    ))
                }
                (None, Some(path)) => {
                    let model = OnnxTeacher::load(std::path::Path::new(path), chw, &t.features)
                        .map_err(|e| bad(origin, format!("teacher '{}': {e}", t.name)))?
                        .named(&t.name);
                    if model.layout().outputs != classes {
                        return Err(bad(
                            origin,
                            format!(
                                "teacher '{}': {path} has {} outputs, the dataset {classes} classes",
                                t.name,
                                model.layout().outputs
                            ),
                        ));
                    }
                    TeacherPlan::Onnx(Arc::new(model))
                }
                _ => {
                    return Err(bad(
                        origin,
                        format!("teacher '{}' needs exactly one of arch or onnx", t.name),
                    ))
                }
            });
        }
        let s = &recipe.student;
        let Some(student_arch) = s
            .arch
            .as_ref()
            .filter(|_| s.onnx.is_none() && s.features.is_empty() && !s.privileged)
        else {
            return Err(bad(
                origin,
                format!(
                    "student '{}' needs an arch (and no onnx, features or privileged)",
                    s.name
                ),
            ));
        };
        let mut student = (
            arch(student_arch, &s.name, deploy, classes, origin)?,
            train_config(&recipe.train, s, recipe.seed, origin)?,
        );
        let mut terms = Vec::new();
        let mut ce_weight = 1.0;
        if let Some(d) = &recipe.distill {
            if teachers.is_empty() {
                return Err(bad(
                    origin,
                    "[distill] needs at least one [[teacher]]".into(),
                ));
            }
            if d.loss.is_empty() {
                return Err(bad(origin, "[distill] has no [[distill.loss]]".into()));
            }
            ce_weight = d.ce_weight;
            if let Some(a) = d.mixup {
                check_mixup(origin, "distill.mixup", a)?;
            }
            student.1.kd_mixup = d.mixup;
            for l in &d.loss {
                terms.push(kd_term(l, src, origin, &student.0, &recipe, &teachers)?);
            }
        }
        let steps_per_epoch = train_len.div_ceil(student.1.batch.max(1)).max(1);
        let prune = match &recipe.prune {
            Some(p) => {
                let scope = match p.scope.as_str() {
                    "global" => Scope::Global,
                    "per-layer" => Scope::PerLayer,
                    o => {
                        return Err(bad(
                            origin,
                            format!("prune.scope '{o}' (expected global or per-layer)"),
                        ))
                    }
                };
                if p.end_epoch > student.1.epochs {
                    return Err(bad(
                        origin,
                        format!(
                            "prune.end_epoch {} is after the student's last epoch {}",
                            p.end_epoch, student.1.epochs
                        ),
                    ));
                }
                if let Some(a) = p.structured {
                    if !(0.0..1.0).contains(&a) {
                        return Err(bad(
                            origin,
                            format!("prune.structured {a} is outside [0, 1)"),
                        ));
                    }
                }
                for s in &p.sweep {
                    if !(0.0..1.0).contains(s) {
                        return Err(bad(
                            origin,
                            format!("prune.sweep: sparsity {s} is outside [0, 1)"),
                        ));
                    }
                }
                let mut g = GradualSchedule::new(
                    p.initial,
                    p.sparsity,
                    p.start_epoch * steps_per_epoch,
                    p.end_epoch * steps_per_epoch,
                    p.every_steps,
                )
                .map_err(|e| bad(origin, format!("[prune]: {e}")))?;
                g.exponent = p.exponent;
                Some((g, scope))
            }
            None => None,
        };
        if let Some(q) = &recipe.quantize {
            if !matches!(q.mode.as_str(), "qat" | "ptq") {
                return Err(bad(
                    origin,
                    format!("quantize.mode '{}' (expected qat or ptq)", q.mode),
                ));
            }
            if q.calib_samples == 0 || (q.mode == "qat" && q.epochs == 0) {
                return Err(bad(
                    origin,
                    "quantize: calib_samples and QAT epochs must be at least 1".into(),
                ));
            }
        }
        Ok(Plan {
            teachers,
            student,
            kd: (ce_weight, terms),
            prune,
            quantize: recipe.quantize.clone(),
            recipe,
        })
    }
}

fn kd_term(
    l: &LossSection,
    src: &str,
    origin: &str,
    student: &ArchSpec,
    recipe: &Recipe,
    teachers: &[TeacherPlan],
) -> crate::Result<KdTerm> {
    let kind = l.kind.get_ref().as_str();
    let loss = match kind {
        "hinton" => KdLoss::Hinton {
            temperature: l.temperature.unwrap_or(4.0),
        },
        "fitnets" => KdLoss::FitNets,
        "attention" => KdLoss::Attention,
        "activation-boundary" => KdLoss::ActivationBoundary {
            margin: l.margin.unwrap_or(1.0),
        },
        "rkd-distance" => KdLoss::RkdDistance,
        "rkd-angle" => KdLoss::RkdAngle,
        "area-rkd" => KdLoss::AreaRkd {
            grid: l.grid.unwrap_or(2),
        },
        other => {
            return Err(at(
                src,
                origin,
                l.kind.span(),
                format!("unknown distillation loss '{other}' (expected hinton, fitnets, attention, activation-boundary, rkd-distance, rkd-angle or area-rkd)"),
            ))
        }
    };
    let teacher = match &l.teacher {
        Some(t) => recipe
            .teacher
            .iter()
            .position(|m| &m.name == t.get_ref())
            .ok_or_else(|| {
                at(
                    src,
                    origin,
                    t.span(),
                    format!(
                        "teacher '{}' is not a [[teacher]] of this recipe",
                        t.get_ref()
                    ),
                )
            })?,
        None => 0,
    };
    let tlayout = teachers[teacher].layout();
    let layer = |key: &str,
                 v: &Option<Spanned<String>>,
                 model: &str,
                 names: &[String]|
     -> crate::Result<usize> {
        match v {
            Some(n) => names.iter().position(|x| x == n.get_ref()).ok_or_else(|| {
                at(
                    src,
                    origin,
                    n.span(),
                    format!(
                        "{key} '{}' does not exist in {} (its layers: {})",
                        n.get_ref(),
                        model,
                        names.join(", ")
                    ),
                )
            }),
            None if matches!(loss, KdLoss::Hinton { .. }) => Ok(names.len().saturating_sub(1)),
            None => Err(at(
                src,
                origin,
                l.kind.span(),
                format!("{kind} needs {key}"),
            )),
        }
    };
    let term = KdTerm {
        loss,
        weight: l.weight,
        teacher,
        student_layer: layer(
            "student_layer",
            &l.student_layer,
            &student.name,
            &student.layer_names(),
        )?,
        teacher_layer: layer(
            "teacher_layer",
            &l.teacher_layer,
            &tlayout.name,
            &tlayout.layers,
        )?,
    };
    if let Some(e) = connect_error(&term, student, &tlayout) {
        let span = l
            .student_layer
            .as_ref()
            .map(|s| s.span())
            .unwrap_or(l.kind.span());
        return Err(at(
            src,
            origin,
            span,
            format!("cannot connect {} to {}: {e}", student.name, tlayout.name),
        ));
    }
    Ok(term)
}

#[cfg(test)]
mod tests {
    use super::*;

    const GOOD: &str = r#"
name = "t"
[data]
dataset = "digits"
[[teacher]]
name = "big"
arch = { family = "small-cnn", c1 = 8, c2 = 16, hidden = 32 }
[student]
name = "small"
arch = { family = "small-cnn", c1 = 2, c2 = 4 }
[distill]
ce_weight = 0.3
[[distill.loss]]
kind = "hinton"
[[distill.loss]]
kind = "activation-boundary"
student_layer = "conv2"
teacher_layer = "conv2"
"#;

    fn parse(src: &str) -> crate::Result<Plan> {
        Plan::parse(src, "r.toml", (1, 8, 8), 10, 1000)
    }

    #[test]
    fn a_good_recipe_becomes_a_plan() {
        let p = parse(GOOD).unwrap();
        assert_eq!(p.kd.1.len(), 2);
        assert_eq!(p.kd.1[1].student_layer, 1);
        assert_eq!(p.kd.0, 0.3);
    }

    /// Every recipe shipped in `recipes/` is valid for its dataset's shape (image channels
    /// doubled by `[data] privileged`); trajectory recipes by their own rules.
    #[test]
    fn shipped_recipes_parse() {
        let dir = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("../recipes");
        let mut n = 0;
        for e in std::fs::read_dir(&dir).unwrap() {
            let path = e.unwrap().path();
            let src = std::fs::read_to_string(&path).unwrap();
            if crate::traj_pipeline::is_trajectory_recipe(&src) {
                crate::traj_pipeline::parse(&src, &path.display().to_string())
                    .unwrap_or_else(|e| panic!("{e}"));
                n += 1;
                continue;
            }
            let r = Plan::peek(&src, "r.toml").unwrap();
            let hw = if r.data.dataset.starts_with("digits") {
                8
            } else {
                28
            };
            let c = if r.data.privileged.is_some() { 2 } else { 1 };
            Plan::parse(&src, &path.display().to_string(), (c, hw, hw), 10, 60000)
                .unwrap_or_else(|e| panic!("{e}"));
            n += 1;
        }
        assert!(n >= 3);
    }

    #[test]
    fn errors_name_the_key_and_line() {
        let e = |s: String| parse(&s).unwrap_err().to_string();
        let unknown = e(GOOD.replace("ce_weight = 0.3", "ce_wieght = 0.3"));
        assert!(
            unknown.contains("ce_wieght") && unknown.starts_with("r.toml:12:"),
            "{unknown}"
        );
        let layer = e(GOOD.replace("student_layer = \"conv2\"", "student_layer = \"conv9\""));
        assert!(
            layer.starts_with("r.toml:17:")
                && layer.contains("student_layer 'conv9' does not exist in small"),
            "{layer}"
        );
        // fc1 (1×1 features) cannot be connected to a conv layer by activation boundary.
        let shape = e(GOOD.replace("student_layer = \"conv2\"", "student_layer = \"fc1\""));
        assert!(
            shape.contains("cannot connect small to big") && shape.contains("H×W"),
            "{shape}"
        );
        let kind = e(GOOD.replace("kind = \"hinton\"", "kind = \"hintn\""));
        assert!(
            kind.starts_with("r.toml:14:") && kind.contains("'hintn'"),
            "{kind}"
        );
        let sparsity = e(format!("{GOOD}[prune]\nsparsity = 1.2\nend_epoch = 5\n"));
        assert!(
            sparsity.contains("target sparsity 1.2 is outside [0, 1)"),
            "{sparsity}"
        );
        let order = e(format!(
            "{GOOD}[prune]\nsparsity = 0.5\nstart_epoch = 4\nend_epoch = 2\n"
        ));
        assert!(order.contains("not after its start"), "{order}");
        let teacher = e(GOOD.replace("kind = \"hinton\"", "kind = \"hinton\"\nteacher = \"huge\""));
        assert!(
            teacher.contains("teacher 'huge' is not a [[teacher]]"),
            "{teacher}"
        );
    }

    /// `[train] mixup` reaches every model, `[distill] mixup` only the distilling runs, and a
    /// negative or non-finite α is refused by name.
    #[test]
    fn mixup_from_a_recipe() {
        let p = parse(&GOOD.replace("ce_weight = 0.3", "ce_weight = 0.3\nmixup = 0.4")).unwrap();
        assert_eq!((p.student.1.mixup, p.student.1.kd_mixup), (0.0, Some(0.4)));
        let TeacherPlan::Train(_, tcfg) = &p.teachers[0] else {
            panic!("a trained teacher");
        };
        assert_eq!((tcfg.mixup, tcfg.kd_mixup), (0.0, None));
        let p = parse(&GOOD.replace("[[teacher]]", "[train]\nmixup = 1.0\n[[teacher]]")).unwrap();
        assert_eq!((p.student.1.mixup, p.student.1.kd_mixup), (1.0, None));
        let e = |s: String| parse(&s).unwrap_err().to_string();
        let neg = e(GOOD.replace("ce_weight = 0.3", "ce_weight = 0.3\nmixup = -1.0"));
        assert!(neg.contains("distill.mixup -1 must be 0"), "{neg}");
        let nan = e(GOOD.replace("[[teacher]]", "[train]\nmixup = nan\n[[teacher]]"));
        assert!(nan.contains("big: mixup NaN must be 0"), "{nan}");
        let own =
            parse(&GOOD.replace("c1 = 2, c2 = 4 }", "c1 = 2, c2 = 4 }\nmixup = 0.5")).unwrap();
        assert_eq!((own.student.1.mixup, own.student.1.kd_mixup), (0.5, None));
    }

    /// A model's own `augment_shift` / `augment_flip` override `[train]` for that model only.
    #[test]
    fn augmentation_per_model() {
        let teacher_aug = GOOD.replace("[[teacher]]", "[train]\naugment_shift = 1\n[[teacher]]");
        let p = parse(&teacher_aug.replace(
            "c1 = 2, c2 = 4 }",
            "c1 = 2, c2 = 4 }\naugment_shift = 0\naugment_flip = true",
        ))
        .unwrap();
        let TeacherPlan::Train(_, tcfg) = &p.teachers[0] else {
            panic!("a trained teacher");
        };
        assert_eq!((tcfg.augment_shift, tcfg.augment_flip), (1, false));
        assert_eq!(
            (p.student.1.augment_shift, p.student.1.augment_flip),
            (0, true)
        );
        let bad = parse(&GOOD.replace("c1 = 2, c2 = 4 }", "c1 = 2, c2 = 4 }\naugment_flip = 1"))
            .unwrap_err()
            .to_string();
        assert!(
            bad.contains("r.toml:11") && bad.contains("boolean"),
            "{bad}"
        );
    }

    /// DenseNet-BC from a recipe: depth and growth reach the architecture, and its bottleneck
    /// layers are named blocks the losses can pick; bad depths and foreign keys are named.
    #[test]
    fn densenet_bc_from_a_recipe() {
        // The student's conv2 (4×4) distils from the second dense block's first layer.
        let dn = |arch: &str| {
            GOOD.replace(
                r#"arch = { family = "small-cnn", c1 = 8, c2 = 16, hidden = 32 }"#,
                arch,
            )
            .replace(r#"teacher_layer = "conv2""#, r#"teacher_layer = "block3""#)
        };
        let p = parse(&dn(
            r#"arch = { family = "densenet-bc", depth = 16, growth = 6 }"#,
        ))
        .unwrap();
        let TeacherPlan::Train(spec, _) = &p.teachers[0] else {
            panic!("a trained teacher");
        };
        assert_eq!(spec, &ArchSpec::densenet_bc("big", (1, 8, 8), 16, 6, 10));
        assert_eq!(
            p.kd.1[1].teacher_layer, 4,
            "conv1 block1 block2 conv2 block3"
        );
        let e = |s: String| parse(&s).unwrap_err().to_string();
        let depth = e(dn(r#"arch = { family = "densenet-bc", depth = 12 }"#));
        assert!(
            depth.contains("densenet-bc depth 12 is not 6n + 4"),
            "{depth}"
        );
        let key = e(dn(
            r#"arch = { family = "densenet-bc", depth = 10, width = 3 }"#,
        ));
        assert!(key.contains("big: densenet-bc has no 'width'"), "{key}");
    }
}

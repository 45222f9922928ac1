//! Running a recipe: `sprig train` (teachers and the student alone), `sprig distill` (plus the
//! distilled student) and `sprig compress` (plus pruning, quantization and all combined) — each
//! model a checkpointed stage, every result exported to ONNX and measured on sprig-runtime, then
//! the report (Markdown, JSON, PNG plots) in the research's format: parameters, non-zeros, file
//! bytes, arena bytes, latency and accuracy per model.

use crate::distill::KdTerm;
use crate::eval::{argmax, evaluate};
use crate::export::{export_f16, export_f32, export_int8};
use crate::plot::{chart_png, Series};
use crate::quantize::{calibrate_ranges, ActQuant};
use crate::recipe::{DataSection, Plan, TeacherPlan};
use crate::structured::prune_channels;
use crate::teacher::{OnnxTeacher, Teacher};
use crate::teacher_cache::{features_read, CachedTeacher};
use crate::train::{
    fold_bn, image_batch, logits, train, Checkpointing, EpochLog, QatConfig, Run, TrainConfig,
    Trained,
};
use candle_core::Device;
use serde::Serialize;
use serde_json::json;
use sprig_models::arch::{ArchSpec, CnnModel, LayerWeights};
use sprig_models::datasets::{load_spec, shuffle, ImageSet, Split};
use std::path::{Path, PathBuf};

/// How far to go.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Goal {
    /// Teachers and the student alone, float.
    Train,
    /// Plus the distilled student.
    Distill,
    /// Plus pruning, quantization and everything combined.
    Compress,
}

/// Run options from the command line.
#[derive(Debug, Clone)]
pub struct Options {
    /// Output folder.
    pub out: PathBuf,
    /// Continue unfinished checkpoints.
    pub resume: bool,
    /// No progress bars.
    pub quiet: bool,
    /// Timed inferences per model on sprig-runtime.
    pub latency_runs: usize,
    /// Stop every stage after this many epochs of this process (tests simulate a kill).
    pub stop_after: Option<usize>,
    /// Memory for remembered teacher outputs, MiB (0: run the teachers every step); see
    /// [`crate::teacher_cache`].
    pub teacher_cache_mb: usize,
}

/// One model of the report.
#[derive(Debug, Clone, Serialize)]
pub struct Row {
    /// What it is (teacher, student, pruned, …).
    pub model: String,
    /// The ONNX file, relative to the output folder.
    pub file: String,
    /// Parameters.
    pub params: usize,
    /// Non-zero parameters.
    pub nonzeros: usize,
    /// ONNX file bytes.
    pub file_bytes: usize,
    /// sprig-runtime arena bytes on a device without optimized kernels (what an MCU plans).
    pub arena_bytes: usize,
    /// sprig-runtime median latency, µs.
    pub latency_us: f64,
    /// Top-1 in candle (the fake-quantized model for QAT rows).
    pub candle_top1: Option<f64>,
    /// Top-1 of the ONNX file on sprig-runtime.
    pub top1: f64,
    /// Test-set agreement with the first teacher's predictions.
    pub teacher_agreement: Option<f64>,
}

/// Everything a run measured.
#[derive(Debug, Clone, Serialize)]
pub struct Report {
    /// Recipe name.
    pub name: String,
    /// Dataset spec.
    pub dataset: String,
    /// Training images.
    pub train_images: usize,
    /// Test images.
    pub test_images: usize,
    /// The models.
    pub rows: Vec<Row>,
    /// (sparsity, sprig-runtime top-1) of the distilled student pruned to each sparsity.
    pub sparsity_curve: Vec<(f64, f64)>,
    /// Per-stage training history.
    pub curves: Vec<(String, Vec<EpochLog>)>,
}

/// Loads the recipe's dataset with its limits (the first N of a seeded shuffle).
pub fn load_data(
    dataset: &str,
    train_limit: Option<usize>,
    test_limit: Option<usize>,
) -> crate::Result<(ImageSet, ImageSet)> {
    let take = |set: ImageSet, limit: Option<usize>, seed: u64| match limit {
        Some(n) if n < set.len() => {
            let mut idx: Vec<usize> = (0..set.len()).collect();
            shuffle(&mut idx, seed);
            set.subset(&idx[..n])
        }
        _ => set,
    };
    Ok((
        take(load_spec(dataset, Split::Train)?, train_limit, 11),
        take(load_spec(dataset, Split::Test)?, test_limit, 12),
    ))
}

/// [`load_data`] for a recipe's `[data]`, with its privileged channels when it has them.
pub fn load_recipe_data(data: &DataSection) -> crate::Result<(ImageSet, ImageSet)> {
    let (train, test) = load_data(&data.dataset, data.train_limit, data.test_limit)?;
    Ok(match data.privileged.as_deref() {
        Some(_) => (
            train.with_privileged_clean(PRIVILEGED_NOISE, 21),
            test.with_privileged_clean(PRIVILEGED_NOISE, 22),
        ),
        None => (train, test),
    })
}

/// Noise of the degraded (deployable) view of `[data] privileged = "clean"`.
const PRIVILEGED_NOISE: f32 = 0.2;

struct Ctx<'a> {
    plan: &'a Plan,
    /// Training data with every channel (training narrows each model's input to its own).
    train: &'a ImageSet,
    /// The deployable view of the test set.
    test: &'a ImageSet,
    /// The test set with privileged channels, for privileged teachers.
    full_test: &'a ImageSet,
    opts: &'a Options,
    rows: Vec<Row>,
    curves: Vec<(String, Vec<EpochLog>)>,
    teacher_preds: Option<Vec<usize>>,
}

fn nonzeros(w: &[LayerWeights]) -> usize {
    w.iter()
        .flat_map(|l| l.values())
        .map(|v| v.iter().filter(|x| **x != 0.0).count())
        .sum()
}

impl<'a> Ctx<'a> {
    fn fingerprint(&self, stage: &str, parts: serde_json::Value) -> String {
        let r = &self.plan.recipe;
        json!({"stage": stage, "data": r.data, "train": r.train, "seed": r.seed, "parts": parts})
            .to_string()
    }

    fn stage(
        &mut self,
        stage: &str,
        spec: &ArchSpec,
        cfg: &TrainConfig,
        mut run: Run,
        parts: serde_json::Value,
    ) -> crate::Result<Trained> {
        run.checkpoint = Some(Checkpointing {
            dir: self.opts.out.join("ckpt"),
            stage: stage.into(),
            fingerprint: self.fingerprint(stage, parts),
            resume: self.opts.resume,
            stop_after: self.opts.stop_after,
        });
        let mut cfg = cfg.clone();
        cfg.progress = !self.opts.quiet;
        let t = train(spec, self.train, &cfg, run, stage)?;
        if t.history.len() < cfg.epochs {
            return Err(crate::Error::Invalid(format!(
                "stage {stage} stopped after {} of {} epochs; run again with --resume",
                t.history.len(),
                cfg.epochs
            )));
        }
        self.curves.push((stage.into(), t.history.clone()));
        Ok(t)
    }

    /// Exports, measures on sprig-runtime and records one row; returns the file bytes.
    fn measure(
        &mut self,
        label: &str,
        file: &str,
        t: &Trained,
        acts: Option<Vec<ActQuant>>,
    ) -> crate::Result<Vec<u8>> {
        let spec = &t.model.spec;
        let w = t.model.weights()?;
        let bytes = match &acts {
            Some(a) => export_int8(spec, &w, a),
            None => export_f32(spec, &w),
        };
        crate::write_file(&self.opts.out.join(file), &bytes)?;
        let test = self.test_for(spec.input.0);
        let stats = evaluate(&bytes, test, self.opts.latency_runs)?;
        let fq = t.fake_quant.as_ref().filter(|_| acts.is_some());
        let candle_logits = logits(&t.model, test, fq)?;
        let preds: Vec<usize> = candle_logits.iter().map(|l| argmax(l)).collect();
        let candle_top1 = (acts.is_none() || fq.is_some()).then(|| {
            preds
                .iter()
                .zip(&test.labels)
                .filter(|(p, y)| **p == **y as usize)
                .count() as f64
                / test.len().max(1) as f64
        });
        let teacher_agreement = self.teacher_preds.as_ref().map(|tp| {
            tp.iter().zip(&preds).filter(|(a, b)| a == b).count() as f64 / tp.len().max(1) as f64
        });
        self.rows.push(Row {
            model: label.into(),
            file: file.into(),
            params: spec.param_count(),
            nonzeros: nonzeros(&w),
            file_bytes: bytes.len(),
            arena_bytes: stats.arena_bytes,
            latency_us: stats.median_us,
            candle_top1,
            top1: stats.top1,
            teacher_agreement,
        });
        Ok(bytes)
    }

    /// The test set a model with `channels` input channels reads.
    fn test_for(&self, channels: usize) -> &'a ImageSet {
        if channels == self.test.chw.0 {
            self.test
        } else {
            self.full_test
        }
    }

    /// Measures a frozen ONNX teacher: on sprig-runtime when it runs the file, else through
    /// tract (no latency then). Returns its test-set predictions.
    fn measure_onnx_teacher(
        &mut self,
        label: &str,
        path: &str,
        t: &OnnxTeacher,
    ) -> crate::Result<Vec<usize>> {
        let bytes = crate::read_file(Path::new(path))?;
        let test = self.test_for(t.layout().input_channels);
        let mut preds = Vec::with_capacity(test.len());
        let idx: Vec<usize> = (0..test.len()).collect();
        for chunk in idx.chunks(256) {
            let x = image_batch(test, chunk)?;
            let l = t.forward_features(&x)?.0.to_vec2::<f32>()?;
            preds.extend(l.iter().map(|l| argmax(l)));
        }
        let tract_top1 = preds
            .iter()
            .zip(&test.labels)
            .filter(|(p, y)| **p == **y as usize)
            .count() as f64
            / test.len().max(1) as f64;
        // (parameters, non-zeros) over the float initializers.
        let (params, nonzeros) = sprig_runtime::Model::parse(&bytes)
            .ok()
            .map(|m| {
                let mut counts = (0usize, 0usize);
                for t in m.initializers().filter_map(|t| t.ok()) {
                    counts.0 += t.shape.numel();
                    let _ = t.for_each_f32(|_, v| counts.1 += (v != 0.0) as usize);
                }
                counts
            })
            .unwrap_or((0, 0));
        let stats = evaluate(&bytes, test, self.opts.latency_runs).ok();
        self.rows.push(Row {
            model: label.into(),
            file: path.into(),
            params,
            nonzeros,
            file_bytes: bytes.len(),
            arena_bytes: stats.as_ref().map_or(0, |s| s.arena_bytes),
            latency_us: stats.as_ref().map_or(f64::NAN, |s| s.median_us),
            // The reference top-1 here is tract's (the file has no candle model).
            candle_top1: Some(tract_top1),
            top1: stats.as_ref().map_or(tract_top1, |s| s.top1),
            teacher_agreement: None,
        });
        Ok(preds)
    }

    /// Top-1 of a float model on sprig-runtime without recording a row (sweep points).
    fn top1_only(&self, t: &Trained) -> crate::Result<f64> {
        let bytes = export_f32(&t.model.spec, &t.model.weights()?);
        Ok(evaluate(&bytes, self.test_for(t.model.spec.input.0), 0)?.top1)
    }

    /// Int8 activation quantization of `from`: QAT fine-tuning (with the KD `terms` when
    /// given) ending in its observers' ranges, or calibration ranges (PTQ).
    fn quantize(
        &mut self,
        stage: &str,
        from: &Trained,
        terms: &[KdTerm],
        teachers: &[&dyn Teacher],
    ) -> crate::Result<(Trained, Vec<ActQuant>)> {
        let q = self.plan.quantize.clone().expect("called with [quantize]");
        let folded = fold_bn(from)?;
        let from = &folded;
        let n = q.calib_samples.min(self.train.len());
        let calib = self
            .train
            .subset(&(0..n).collect::<Vec<_>>())
            .channels(0, from.model.spec.input.0);
        let ranges = calibrate_ranges(&from.model, &calib, &Device::Cpu)?;
        if q.mode == "ptq" {
            let acts = ranges
                .iter()
                .map(|&(lo, hi)| {
                    if q.symmetric {
                        ActQuant::symmetric(lo, hi)
                    } else {
                        ActQuant::from_range(lo, hi)
                    }
                })
                .collect();
            // PTQ changes no weight: the same model, quantized at export.
            let mut cfg = self.plan.student.1.clone();
            cfg.epochs = 0;
            let same = train(
                &from.model.spec,
                self.train,
                &cfg,
                Run {
                    init: Some(from),
                    ..Default::default()
                },
                stage,
            )?;
            return Ok((same, acts));
        }
        let mut cfg = self.plan.student.1.clone();
        cfg.epochs = q.epochs;
        cfg.lr = q.lr;
        cfg.prune = None;
        let run = Run {
            kd: terms,
            ce_weight: (!terms.is_empty()).then_some(self.plan.kd.0),
            teachers: if terms.is_empty() { &[] } else { teachers },
            init: Some(from),
            qat: Some(QatConfig {
                symmetric: q.symmetric,
                freeze_observers_after: q
                    .freeze_observers_after
                    .unwrap_or(q.epochs.saturating_sub(1).max(1)),
                initial_ranges: ranges,
                lsq: q.lsq,
            }),
            checkpoint: None,
        };
        let r = &self.plan.recipe;
        let parts = json!({"quantize": q, "kd": !terms.is_empty(), "distill": r.distill,
            "prune": r.prune, "teacher": r.teacher, "student": r.student});
        let spec = from.model.spec.clone();
        let t = self.stage(stage, &spec, &cfg, run, parts)?;
        let acts = t
            .fake_quant
            .as_ref()
            .expect("QAT keeps its observers")
            .act_quants();
        Ok((t, acts))
    }
}

/// A teacher ready for distillation.
#[allow(clippy::large_enum_variant)] // a few per run
enum HeldTeacher {
    Trained(Trained),
    Onnx(std::sync::Arc<OnnxTeacher>),
}

/// Runs `plan` up to `goal`, writing the ONNX files, checkpoints and the report under
/// `opts.out`.
pub fn run(
    plan: &Plan,
    train_set: &ImageSet,
    test_set: &ImageSet,
    goal: Goal,
    opts: &Options,
) -> crate::Result<Report> {
    let r = &plan.recipe;
    // Deployed models read the first channels; privileged teachers all of them.
    let deploy = plan.student.0.input.0;
    let view = (deploy < test_set.chw.0).then(|| test_set.channels(0, deploy));
    let mut ctx = Ctx {
        plan,
        train: train_set,
        test: view.as_ref().unwrap_or(test_set),
        full_test: test_set,
        opts,
        rows: Vec::new(),
        curves: Vec::new(),
        teacher_preds: None,
    };
    let mut teachers = Vec::new();
    for (i, tp) in plan.teachers.iter().enumerate() {
        let name = &r.teacher[i].name;
        let label = if name.contains("teacher") {
            format!("{name} f32")
        } else {
            format!("{name} (teacher) f32")
        };
        let held = match tp {
            TeacherPlan::Train(spec, cfg) => {
                let parts = json!({"teacher": r.teacher[i]});
                let t = ctx.stage(name, spec, cfg, Run::default(), parts)?;
                ctx.measure(&label, &format!("{name}.f32.onnx"), &t, None)?;
                if i == 0 {
                    let preds = logits(&t.model, ctx.test_for(spec.input.0), None)?;
                    ctx.teacher_preds = Some(preds.iter().map(|l| argmax(l)).collect());
                }
                // A frozen teacher needs no batch statistics: folded into its convolutions,
                // batch norm costs nothing in the forward passes distillation makes every step.
                HeldTeacher::Trained(if spec.has_bn() { fold_bn(&t)? } else { t })
            }
            TeacherPlan::Onnx(t) => {
                let path = r.teacher[i].onnx.clone().unwrap_or_default();
                let preds = ctx.measure_onnx_teacher(&label, &path, t)?;
                if i == 0 {
                    ctx.teacher_preds = Some(preds);
                }
                HeldTeacher::Onnx(t.clone())
            }
        };
        teachers.push(held);
    }
    let frozen: Vec<&dyn Teacher> = teachers
        .iter()
        .map(|t| match t {
            HeldTeacher::Trained(t) => &t.model as &dyn Teacher,
            HeldTeacher::Onnx(t) => t.as_ref() as &dyn Teacher,
        })
        .collect();
    let (spec, cfg) = &plan.student;
    let sname = r.student.name.clone();
    let (ce, terms) = (plan.kd.0, plan.kd.1.as_slice());
    // Without augmentation or mixup every distillation epoch shows the teachers the same
    // images: their outputs are remembered after the first pass instead of recomputed (the
    // budget split between the teachers).
    let augmenting = cfg.augment_shift > 0 || cfg.augment_flip || cfg.mixup_alpha(true) > 0.0;
    let caches: Vec<CachedTeacher> =
        if opts.teacher_cache_mb > 0 && !augmenting && !terms.is_empty() {
            let budget = (opts.teacher_cache_mb << 20) / frozen.len().max(1);
            frozen
                .iter()
                .enumerate()
                .map(|(k, t)| {
                    CachedTeacher::new(*t, features_read(terms, k), budget, train_set, cfg.batch)
                })
                .collect()
        } else {
            Vec::new()
        };
    let trefs: Vec<&dyn Teacher> = if caches.is_empty() {
        frozen.clone()
    } else {
        caches.iter().map(|c| c as &dyn Teacher).collect()
    };
    let with_kd = || Run {
        kd: terms,
        ce_weight: Some(ce),
        teachers: &trefs,
        ..Default::default()
    };
    let kd_parts = json!({"student": r.student, "teacher": r.teacher, "distill": r.distill});

    let alone = ctx.stage(
        &sname,
        spec,
        cfg,
        Run::default(),
        json!({"student": r.student}),
    )?;
    ctx.measure(
        &format!("{sname} f32"),
        &format!("{sname}.f32.onnx"),
        &alone,
        None,
    )?;
    let mut sparsity_curve = Vec::new();
    if goal == Goal::Compress {
        if let Some(prune) = plan.prune {
            let c = TrainConfig {
                prune: Some(prune),
                ..cfg.clone()
            };
            let parts = json!({"student": r.student, "prune": r.prune});
            let t = ctx.stage(&format!("{sname}-pruned"), spec, &c, Run::default(), parts)?;
            ctx.measure(
                &format!("{sname} pruned f32"),
                &format!("{sname}-pruned.f32.onnx"),
                &t,
                None,
            )?;
        }
        if plan.quantize.is_some() {
            let (t, acts) = ctx.quantize(&format!("{sname}-int8"), &alone, &[], &[])?;
            ctx.measure(
                &format!("{sname} int8"),
                &format!("{sname}.int8.onnx"),
                &t,
                Some(acts),
            )?;
        }
    }
    let distilled = if goal != Goal::Train && !terms.is_empty() {
        let t = ctx.stage(
            &format!("{sname}-kd"),
            spec,
            cfg,
            with_kd(),
            kd_parts.clone(),
        )?;
        ctx.measure(
            &format!("{sname} + KD f32"),
            &format!("{sname}-kd.f32.onnx"),
            &t,
            None,
        )?;
        Some(t)
    } else {
        None
    };
    if goal == Goal::Compress {
        // Everything combined: KD (when the recipe has it) + pruning, then int8 with KD.
        let mut combined = None;
        if let Some(prune) = plan.prune {
            let tag = if terms.is_empty() {
                "pruned"
            } else {
                "kd-pruned"
            };
            let start = distilled.as_ref().unwrap_or(&alone);
            sparsity_curve.push((0.0, ctx.top1_only(start)?));
            let mut sparsities = vec![prune.0.target];
            sparsities.extend(
                r.prune
                    .as_ref()
                    .map(|p| p.sweep.clone())
                    .unwrap_or_default(),
            );
            for (k, &s) in sparsities.iter().enumerate() {
                let mut sched = prune.0;
                sched.target = s;
                sched.initial = sched.initial.min(s);
                let c = TrainConfig {
                    prune: Some((sched, prune.1)),
                    ..cfg.clone()
                };
                let parts = json!({"kd": kd_parts, "prune": r.prune, "sparsity": s});
                let stage = if k == 0 {
                    format!("{sname}-{tag}")
                } else {
                    format!("{sname}-{tag}-{:.0}", 100.0 * s)
                };
                let t = ctx.stage(&stage, spec, &c, with_kd(), parts)?;
                sparsity_curve.push((s, ctx.top1_only(&t)?));
                if k == 0 {
                    if !terms.is_empty() {
                        ctx.measure(
                            &format!("{sname} + KD pruned f32"),
                            &format!("{stage}.f32.onnx"),
                            &t,
                            None,
                        )?;
                    }
                    combined = Some(t);
                }
            }
            sparsity_curve.sort_by(|a, b| a.0.total_cmp(&b.0));
        }
        if let Some(amount) = r.prune.as_ref().and_then(|p| p.structured) {
            let start = distilled.as_ref().unwrap_or(&alone);
            let folded = fold_bn(start)?;
            let (slim_spec, slim_w) =
                prune_channels(&folded.model.spec, &folded.model.weights()?, amount)?;
            let vars = candle_nn::VarMap::new();
            let vb =
                candle_nn::VarBuilder::from_varmap(&vars, candle_core::DType::F32, &Device::Cpu);
            let slim = Trained::new(CnnModel::new(&slim_spec, vb)?, vars);
            sprig_models::arch::load_folded(&slim_spec, &slim_w, &slim.vars)?;
            let c = TrainConfig {
                epochs: r.prune.as_ref().map_or(3, |p| p.structured_epochs),
                ..cfg.clone()
            };
            let run = Run {
                init: Some(&slim),
                ..with_kd()
            };
            let parts = json!({"kd": kd_parts, "structured": amount, "prune": r.prune});
            let pct = (100.0 * amount).round();
            let stage = format!("{sname}-slim{pct}");
            let t = ctx.stage(&stage, &slim_spec, &c, run, parts)?;
            let what = if terms.is_empty() { "" } else { " + KD" };
            ctx.measure(
                &format!("{sname}{what}, {pct}% filters removed f32"),
                &format!("{stage}.f32.onnx"),
                &t,
                None,
            )?;
            if plan.quantize.is_some() {
                let (q, acts) = ctx.quantize(&format!("{stage}-int8"), &t, terms, &trefs)?;
                ctx.measure(
                    &format!("{sname}{what}, {pct}% filters removed, int8"),
                    &format!("{stage}.int8.onnx"),
                    &q,
                    Some(acts),
                )?;
            }
        }
        let base = combined.as_ref().or(distilled.as_ref()).unwrap_or(&alone);
        let base_weights = base.model.weights()?;
        crate::write_file(
            &opts.out.join(format!("{}.f32.onnx", r.name)),
            &export_f32(spec, &base_weights),
        )?;
        crate::write_file(
            &opts.out.join(format!("{}.f16.onnx", r.name)),
            &export_f16(spec, &base_weights),
        )?;
        if plan.quantize.is_some() {
            let (t, acts) = ctx.quantize(&format!("{sname}-all-int8"), base, terms, &trefs)?;
            let label = match (terms.is_empty(), plan.prune.is_some()) {
                (false, true) => "KD + pruned + int8 (all combined)",
                (false, false) => "KD + int8",
                (true, true) => "pruned + int8",
                (true, false) => "int8",
            };
            ctx.measure(
                &format!("{sname} {label}"),
                &format!("{}.int8.onnx", r.name),
                &t,
                Some(acts),
            )?;
        }
    }
    let report = Report {
        name: r.name.clone(),
        dataset: r.data.dataset.clone(),
        train_images: train_set.len(),
        test_images: test_set.len(),
        rows: ctx.rows,
        sparsity_curve,
        curves: ctx.curves,
    };
    write_report(&report, &opts.out)?;
    if !opts.quiet {
        for (c, t) in caches.iter().zip(&r.teacher) {
            let st = c.stats();
            if st.hits + st.misses > 0 {
                eprintln!(
                    "teacher {}: {} images remembered ({:.0} MB{}), {:.1}% of the distillation samples answered from memory",
                    t.name,
                    st.images,
                    st.bytes as f64 / 1e6,
                    if st.full { ", budget full: --teacher-cache-mb" } else { "" },
                    100.0 * st.hits as f64 / (st.hits + st.misses) as f64
                );
            }
        }
    }
    Ok(report)
}

/// The report's table as Markdown, with the headline ratios of the last row against the first.
pub fn markdown(report: &Report) -> String {
    let mut s = String::from(
        "| model | params | non-zeros | file bytes | arena bytes | latency (µs) | top-1 candle | top-1 sprig-runtime | agrees with teacher |\n|---|---:|---:|---:|---:|---:|---:|---:|---:|\n",
    );
    let pct = |v: Option<f64>| {
        v.map(|a| format!("{:.2}%", 100.0 * a))
            .unwrap_or_else(|| "—".into())
    };
    for r in &report.rows {
        s += &format!(
            "| {} | {} | {} | {} | {} | {:.1} | {} | {:.2}% | {} |\n",
            r.model,
            r.params,
            r.nonzeros,
            r.file_bytes,
            r.arena_bytes,
            r.latency_us,
            pct(r.candle_top1),
            100.0 * r.top1,
            pct(r.teacher_agreement)
        );
    }
    if let (Some(first), Some(last)) = (report.rows.first(), report.rows.last()) {
        if report.rows.len() > 1 {
            s += &format!(
                "\n{} vs {}: {:.1}× smaller file, {:.1}× lower latency, top-1 {:+.2} points.\n",
                last.model,
                first.model,
                first.file_bytes as f64 / last.file_bytes.max(1) as f64,
                first.latency_us / last.latency_us.max(1e-9),
                100.0 * (last.top1 - first.top1)
            );
        }
    }
    if !report.sparsity_curve.is_empty() {
        s += "\n| sparsity | top-1 sprig-runtime |\n|---:|---:|\n";
        for (sp, a) in &report.sparsity_curve {
            s += &format!("| {:.0}% | {:.2}% |\n", 100.0 * sp, 100.0 * a);
        }
    }
    s
}

/// Writes `report.md`, `report.json` and the PNG plots.
pub fn write_report(report: &Report, out: &Path) -> crate::Result<()> {
    let md = format!(
        "# {}\n\nDataset {}: {} training / {} test images. Latency: median single-image inference on sprig-runtime, this machine.\n\n{}\nPlots: training_curves.png, accuracy_vs_size.png{}.\n",
        report.name,
        report.dataset,
        report.train_images,
        report.test_images,
        markdown(report),
        if report.sparsity_curve.is_empty() { "" } else { ", accuracy_vs_sparsity.png" }
    );
    crate::write_file(&out.join("report.md"), md.as_bytes())?;
    let js = serde_json::to_vec_pretty(report).map_err(|e| crate::Error::Invalid(e.to_string()))?;
    crate::write_file(&out.join("report.json"), &js)?;
    let curves: Vec<Series> = report
        .curves
        .iter()
        .map(|(n, h)| {
            (
                n.clone(),
                h.iter().map(|e| (e.epoch as f64, e.loss)).collect(),
            )
        })
        .collect();
    chart_png(
        &out.join("training_curves.png"),
        "training loss",
        "epoch",
        "loss",
        &curves,
        false,
    )?;
    let size: Vec<Series> = report
        .rows
        .iter()
        .map(|r| {
            (
                r.model.clone(),
                vec![(r.file_bytes as f64 / 1024.0, 100.0 * r.top1)],
            )
        })
        .collect();
    chart_png(
        &out.join("accuracy_vs_size.png"),
        "accuracy vs model size",
        "ONNX file (KiB)",
        "top-1 on sprig-runtime (%)",
        &size,
        true,
    )?;
    if !report.sparsity_curve.is_empty() {
        let pts = vec![(
            "pruned student".to_string(),
            report
                .sparsity_curve
                .iter()
                .map(|(s, a)| (100.0 * s, 100.0 * a))
                .collect(),
        )];
        chart_png(
            &out.join("accuracy_vs_sparsity.png"),
            "accuracy vs sparsity",
            "sparsity (%)",
            "top-1 on sprig-runtime (%)",
            &pts,
            false,
        )?;
    }
    Ok(())
}

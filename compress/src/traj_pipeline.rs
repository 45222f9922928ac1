//! Trajectory recipes: `sprig compress --recipe R.toml` for a file with a `[trajectory]` table
//! trains the GRU teacher, the MLP student alone and distilled (output + hidden-state KD),
//! prunes the distilled student gradually while it trains, exports every student to int8 QDQ
//! ONNX and reports ADE/FDE (and alerts, given a scene and zones) of every stage against
//! constant velocity — the hazard models from a recipe, as the classifier pipeline does it for
//! images.

use crate::hazard::{
    evaluate_annotations, parse_zones, AnyPredictor, HazardMetrics, MIN_WARNING_S,
};
use crate::prune::GradualSchedule;
use crate::train::Trained;
use crate::traj_ckpt::StageStore;
use crate::trajectory::*;
use sprig_models::predictors::student_mlp;
use sprig_models::predictors::GruTeacher;
use sprig_models::trajectory::{
    load_annotations, load_windows, simulate_walkers, tracks, windows, Annotation, Frame, TrajSplit,
};
use sprig_runtime::hazard::AlertPolicy;
use std::path::{Path, PathBuf};

/// A trajectory recipe file: everything under `[trajectory]`.
#[derive(Debug, Clone, serde::Deserialize)]
#[serde(deny_unknown_fields)]
pub struct TrajRecipeFile {
    /// The recipe.
    pub trajectory: TrajRecipe,
}

/// What to train and how (see recipes/hazard-walkers.toml, commented key by key).
#[derive(Debug, Clone, serde::Deserialize)]
#[serde(deny_unknown_fields)]
pub struct TrajRecipe {
    /// Output folder name under `out/`.
    pub name: String,
    /// `simulated` (seeded walkers, as the demo trains on) or `eth-ucy:SCENE_DIR` (its
    /// `train/` files to train on, its `test/` files to test on).
    pub data: String,
    /// Simulated recordings to train on (60 walkers for 240 s each).
    #[serde(default = "default_sim_recordings")]
    pub sim_recordings: usize,
    /// GRU teacher width.
    #[serde(default = "default_hidden")]
    pub teacher_hidden: usize,
    /// MLP student width (16 → h → h → 24).
    #[serde(default = "default_hidden")]
    pub student_hidden: usize,
    /// Passes over the training windows.
    #[serde(default = "default_epochs")]
    pub epochs: usize,
    /// Peak learning rate (AdamW, cosine decay).
    #[serde(default = "default_lr")]
    pub lr: f64,
    /// Windows per step.
    #[serde(default = "default_batch")]
    pub batch: usize,
    /// Seed of initialisation, shuffling, rotation and the simulated walkers.
    #[serde(default)]
    pub seed: u64,
    /// The models' coordinate frame: `world` (random rotations in training) or `heading`
    /// (every window turned so its last observed step points along +x; random mirror images
    /// in training). Recorded in the exported files; the runtime decodes either.
    #[serde(default = "default_frame")]
    pub frame: String,
    /// Output and hidden-state distillation weights.
    #[serde(default)]
    pub distill: TrajDistill,
    /// Gradual pruning of the distilled student.
    pub prune: Option<TrajPrune>,
    /// Alerts on an annotated scene with zones.
    pub hazard: Option<TrajHazard>,
}

/// `L = E(s, y) + output·E(s, t) + hidden·MSE(R·h_s, h_t)`.
#[derive(Debug, Clone, Copy, serde::Deserialize)]
#[serde(deny_unknown_fields)]
pub struct TrajDistill {
    /// Weight of matching the teacher's predicted path.
    pub output: f64,
    /// Weight of matching its hidden state through a learned map.
    pub hidden: f64,
}

impl Default for TrajDistill {
    fn default() -> Self {
        TrajDistill {
            output: 1.0,
            hidden: 1.0,
        }
    }
}

/// Zhu & Gupta gradual magnitude pruning, in epochs.
#[derive(Debug, Clone, Copy, serde::Deserialize)]
#[serde(deny_unknown_fields)]
pub struct TrajPrune {
    /// Final sparsity of every weight matrix, in [0, 1).
    pub sparsity: f64,
    /// Epoch pruning starts.
    #[serde(default)]
    pub start_epoch: usize,
    /// Epoch the target is reached (the rest fine-tunes with the masks).
    pub end_epoch: usize,
    /// Steps between mask updates.
    #[serde(default = "default_every")]
    pub every: usize,
}

/// An annotated scene (`FRAME ID X Y` lines) and a zone file.
#[derive(Debug, Clone, serde::Deserialize)]
#[serde(deny_unknown_fields)]
pub struct TrajHazard {
    /// The scene's annotation file (or, for eth-ucy data, omit it: the test files are used).
    pub scene: Option<PathBuf>,
    /// Zones TOML.
    pub zones: PathBuf,
}

fn default_sim_recordings() -> usize {
    12
}
fn default_hidden() -> usize {
    64
}
fn default_frame() -> String {
    "world".into()
}
fn default_epochs() -> usize {
    6
}
fn default_lr() -> f64 {
    4e-3
}
fn default_batch() -> usize {
    128
}
fn default_every() -> usize {
    20
}

/// True when `src` is a trajectory recipe (a top-level `[trajectory]` table).
pub fn is_trajectory_recipe(src: &str) -> bool {
    toml::from_str::<toml::Table>(src).is_ok_and(|t| t.contains_key("trajectory"))
}

/// Parses and checks a trajectory recipe; errors name the file and line, before any training.
pub fn parse(src: &str, origin: &str) -> crate::Result<TrajRecipe> {
    let f: TrajRecipeFile = toml::from_str(src).map_err(|e| {
        let line = e
            .span()
            .map(|s| src[..s.start.min(src.len())].matches('\n').count() + 1);
        crate::Error::Invalid(match line {
            Some(l) => format!("{origin}:{l}: {}", e.message()),
            None => format!("{origin}: {}", e.message()),
        })
    })?;
    let r = f.trajectory;
    let bad = |m: String| Err(crate::Error::Invalid(format!("{origin}: [trajectory] {m}")));
    if r.data != "simulated" && !r.data.starts_with("eth-ucy:") {
        return bad(format!(
            "data '{}' (expected simulated or eth-ucy:SCENE_DIR)",
            r.data
        ));
    }
    if Frame::parse(&r.frame).is_none() {
        return bad(format!("frame '{}' (expected world or heading)", r.frame));
    }
    for (k, v) in [
        ("epochs", r.epochs),
        ("batch", r.batch),
        ("teacher_hidden", r.teacher_hidden),
        ("student_hidden", r.student_hidden),
        ("sim_recordings", r.sim_recordings),
    ] {
        if v == 0 {
            return bad(format!("{k} must be at least 1"));
        }
    }
    if !(r.lr > 0.0 && r.lr.is_finite()) {
        return bad(format!("lr {} must be positive", r.lr));
    }
    if let Some(p) = r.prune {
        if p.end_epoch > r.epochs {
            return bad(format!(
                "prune.end_epoch {} is after the last epoch ({})",
                p.end_epoch, r.epochs
            ));
        }
        // Sparsity range and start/end order, checked as the classifier's schedules are.
        GradualSchedule::new(0.0, p.sparsity, p.start_epoch, p.end_epoch, p.every.max(1))
            .map_err(|e| crate::Error::Invalid(format!("{origin}: [trajectory.prune]: {e}")))?;
    }
    if r.hazard.as_ref().is_some_and(|h| h.scene.is_none()) && r.data == "simulated" {
        return bad("hazard.scene is needed with simulated data".into());
    }
    Ok(r)
}

/// One stage of the report.
#[derive(Debug, Clone, serde::Serialize)]
pub struct TrajRow {
    /// Stage label.
    pub model: String,
    /// Trainable parameters of the exported model (None for constant velocity, the teacher).
    pub params: Option<usize>,
    /// Of those, non-zero.
    pub nonzeros: Option<usize>,
    /// ONNX file bytes.
    pub file_bytes: Option<usize>,
    /// Mean displacement error over the test windows, m.
    pub ade: f64,
    /// Final displacement error, m.
    pub fde: f64,
    /// Alert figures on the recipe's scene (when it has one).
    pub hazard: Option<HazardMetrics>,
}

/// Everything a trajectory recipe run produced.
#[derive(Debug, Clone, serde::Serialize)]
pub struct TrajReport {
    /// Recipe name.
    pub name: String,
    /// Training and test windows.
    pub train_windows: usize,
    /// Test windows.
    pub test_windows: usize,
    /// One row per stage.
    pub rows: Vec<TrajRow>,
}

fn simulated(seed: u64, recordings: usize) -> Vec<Window> {
    (0..recordings as u64)
        .flat_map(|s| {
            windows(&tracks(&simulate_walkers(
                seed * 1000 + 100 + s,
                60,
                600,
                20.0,
                12.0,
            )))
        })
        .collect()
}

/// Runs `r`, writing the int8 students, `<name>.int8.onnx` (the last stage), `report.md` and
/// `report.json` to `out`.
pub fn run(r: &TrajRecipe, out: &Path, quiet: bool) -> crate::Result<TrajReport> {
    std::fs::create_dir_all(out)
        .map_err(|e| crate::Error::Invalid(format!("{}: {e}", out.display())))?;
    let scene_dir = r.data.strip_prefix("eth-ucy:").map(PathBuf::from);
    let (train, test_files) = match &scene_dir {
        Some(dir) => (
            load_windows(dir, TrajSplit::Train)?,
            sprig_models::trajectory::split_files(dir, TrajSplit::Test)?,
        ),
        None => (simulated(r.seed, r.sim_recordings), Vec::new()),
    };
    // The scene alerts are counted on: the recipe's, or the eth-ucy test files.
    let scenes: Vec<Vec<Annotation>> = match (&r.hazard, &scene_dir) {
        (Some(TrajHazard { scene: Some(s), .. }), _) => vec![load_annotations(s)?],
        (_, Some(_)) => test_files
            .iter()
            .map(|f| load_annotations(f))
            .collect::<Result<_, _>>()?,
        // Held-out walkers: other seeds than the training recordings.
        (_, None) => vec![simulate_walkers(r.seed * 1000 + 99, 60, 600, 20.0, 12.0)],
    };
    let test: Vec<Window> = scenes.iter().flat_map(|a| windows(&tracks(a))).collect();
    let zones = match &r.hazard {
        Some(h) => {
            let text = std::fs::read_to_string(&h.zones)
                .map_err(|e| crate::Error::Invalid(format!("{}: {e}", h.zones.display())))?;
            Some(parse_zones(&text, &h.zones)?)
        }
        None => None,
    };
    if !quiet {
        println!(
            "{}: {} training windows, {} test windows{}",
            r.data,
            train.len(),
            test.len(),
            zones
                .as_ref()
                .map_or(String::new(), |z| format!(", {} zones", z.len()))
        );
    }
    let steps_per_epoch = train.len().div_ceil(r.batch);
    let cfg = TrajTrainConfig {
        epochs: r.epochs,
        batch: r.batch,
        lr: r.lr,
        seed: r.seed,
        rotate: true,
        frame: Frame::parse(&r.frame).unwrap_or_default(),
        progress: !quiet,
        prune: None,
    };
    let frame = cfg.frame;
    // Finished stages of an earlier run with the same settings are reused (crate::traj_ckpt).
    let store = StageStore::new(out);
    let reused = |stage: &str| println!("{stage}: reused from {}", out.join("ckpt").display());
    // The world frame keeps the fingerprint it had before frames existed (old checkpoints stay
    // reusable).
    let frame_fp = match frame {
        Frame::World => String::new(),
        Frame::Heading => " frame=heading".into(),
    };
    let common = format!(
        "data={} windows={} sim={} seed={} epochs={} lr={} batch={}{frame_fp}",
        r.data,
        train.len(),
        r.sim_recordings,
        r.seed,
        r.epochs,
        r.lr,
        r.batch
    );
    let fp_teacher = format!("{common} teacher_hidden={}", r.teacher_hidden);
    let teacher = match store.teacher("teacher", &fp_teacher, r.teacher_hidden)? {
        Some(t) => {
            reused("teacher");
            t
        }
        None => {
            let t = train_teacher(&train, r.teacher_hidden, &cfg, "trajectory teacher")?;
            store.save("teacher", &fp_teacher, &t.vars)?;
            t
        }
    };
    let spec = student_mlp("traj-student", r.student_hidden);
    let kd = TrajKd {
        output: r.distill.output,
        hidden: r.distill.hidden,
    };
    let with_teacher = Some((&teacher.model, r.teacher_hidden, kd));
    let fp_student = format!("{common} student_hidden={}", r.student_hidden);
    let fp_kd = format!("{fp_student} | {fp_teacher} | {:?}", r.distill);
    let stage = |name: &str,
                 fp: &str,
                 cfg: &TrajTrainConfig,
                 teacher: Option<(&GruTeacher, usize, TrajKd)>,
                 label: &str|
     -> crate::Result<Trained> {
        if let Some(m) = store.student(name, fp, &spec)? {
            reused(name);
            return Ok(m);
        }
        let m = train_student(&spec, &train, cfg, teacher, label)?;
        store.save(name, fp, &m.vars)?;
        Ok(m)
    };
    let mut stages = vec![
        (
            "student",
            stage("student", &fp_student, &cfg, None, "trajectory student")?,
        ),
        (
            "student-kd",
            stage(
                "student-kd",
                &fp_kd,
                &cfg,
                with_teacher,
                "trajectory student + KD",
            )?,
        ),
    ];
    if let Some(p) = r.prune {
        let schedule = GradualSchedule::new(
            0.0,
            p.sparsity,
            p.start_epoch * steps_per_epoch,
            (p.end_epoch * steps_per_epoch).max(p.start_epoch * steps_per_epoch + 1),
            p.every.max(1),
        )?;
        let pruned_cfg = TrajTrainConfig {
            prune: Some(schedule),
            ..cfg.clone()
        };
        stages.push((
            "student-kd-pruned",
            stage(
                "student-kd-pruned",
                &format!("{fp_kd} | {p:?}"),
                &pruned_cfg,
                with_teacher,
                "trajectory student + KD, pruned",
            )?,
        ));
    }

    let policy = AlertPolicy::default();
    let hazard = |p: &mut AnyPredictor| -> crate::Result<Option<HazardMetrics>> {
        match &zones {
            Some(z) => Ok(Some(evaluate_annotations(
                p,
                &scenes,
                z,
                policy,
                MIN_WARNING_S,
            )?)),
            None => Ok(None),
        }
    };
    let mut rows = Vec::new();
    let (ade, fde) = ade_fde(&test, &predict_cv(&test));
    rows.push(TrajRow {
        model: "constant velocity".into(),
        params: None,
        nonzeros: None,
        file_bytes: None,
        ade,
        fde,
        hazard: hazard(&mut AnyPredictor::load("cv")?)?,
    });
    let (ade, fde) = ade_fde(&test, &predict_teacher(&teacher.model, &test, frame)?);
    rows.push(TrajRow {
        model: format!("teacher GRU {} (float)", r.teacher_hidden),
        params: None,
        nonzeros: None,
        file_bytes: None,
        ade,
        fde,
        hazard: None,
    });
    let calib = &train[..train.len().min(2000)];
    let mut last = Vec::new();
    for (file, m) in &stages {
        let w = m.model.weights()?;
        let values = w.iter().flat_map(|l| l.values());
        let (params, nonzeros) = values.fold((0, 0), |(n, z), v| {
            (n + v.len(), z + v.iter().filter(|x| **x != 0.0).count())
        });
        let (fa, ff) = ade_fde(&test, &predict_student(&m.model, &test, frame)?);
        let label = file
            .replace("student-kd-pruned", "student + KD, pruned")
            .replace("student-kd", "student + KD");
        rows.push(TrajRow {
            model: format!("{label} f32"),
            params: Some(params),
            nonzeros: Some(nonzeros),
            file_bytes: None,
            ade: fa,
            fde: ff,
            hazard: None,
        });
        let int8 = export_student_int8(m, calib, frame)?;
        crate::write_file(&out.join(format!("{file}.int8.onnx")), &int8)?;
        let (ia, iff) = ade_fde(&test, &predict_runtime(&int8, &test)?);
        rows.push(TrajRow {
            model: format!("{label} int8 (sprig-runtime)"),
            params: Some(params),
            nonzeros: Some(nonzeros),
            file_bytes: Some(int8.len()),
            ade: ia,
            fde: iff,
            hazard: hazard(&mut AnyPredictor::from_bytes(int8.clone(), file)?)?,
        });
        last = int8;
    }
    crate::write_file(&out.join(format!("{}.int8.onnx", r.name)), &last)?;
    let report = TrajReport {
        name: r.name.clone(),
        train_windows: train.len(),
        test_windows: test.len(),
        rows,
    };
    crate::write_file(&out.join("report.md"), markdown(&report).as_bytes())?;
    let json = serde_json::to_string_pretty(&report)
        .map_err(|e| crate::Error::Invalid(format!("report.json: {e}")))?;
    crate::write_file(&out.join("report.json"), json.as_bytes())?;
    Ok(report)
}

/// The report as a Markdown table.
pub fn markdown(r: &TrajReport) -> String {
    let mut s = format!(
        "# {} ({} training, {} test windows; 8 → 12 steps)\n\n| model | params | non-zeros | file bytes | ADE m | FDE m | precision | recall | mean lead s | false alerts/min |\n|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|\n",
        r.name, r.train_windows, r.test_windows
    );
    let opt = |v: Option<usize>| v.map_or("—".into(), |v| v.to_string());
    for row in &r.rows {
        let h = |f: fn(&HazardMetrics) -> f64, p: usize| {
            row.hazard
                .as_ref()
                .map_or("—".into(), |m| format!("{:.p$}", f(m)))
        };
        s += &format!(
            "| {} | {} | {} | {} | {:.3} | {:.3} | {} | {} | {} | {} |\n",
            row.model,
            opt(row.params),
            opt(row.nonzeros),
            opt(row.file_bytes),
            row.ade,
            row.fde,
            h(|m| m.precision, 2),
            h(|m| m.recall, 2),
            h(|m| m.mean_lead_time_s, 1),
            h(|m| m.false_alerts_per_min, 1),
        );
    }
    s
}

//! Training on candle: seeded initialisation, AdamW or SGD-momentum with cosine or step decay,
//! cross-entropy plus any distillation objective ([`crate::distill`]), gradual pruning,
//! quantization-aware fine-tuning ([`crate::qat`]) and per-epoch checkpoints that a killed run
//! resumes from exactly.

use crate::distill::{Distiller, KdTerm};
use crate::optim::{Optim, OptimizerKind, Schedule};
use crate::qat::FakeQuant;
use crate::teacher::{Teacher, TeacherLayout};
use candle_core::{DType, Device, Tensor, D};
use candle_nn::{loss, VarBuilder, VarMap};
use indicatif::{ProgressBar, ProgressStyle};
use sprig_models::arch::{ArchSpec, CnnModel, ForwardHooks, NoHooks};
use sprig_models::datasets::{shuffle, ImageSet, Rng};
use std::collections::HashMap;
use std::path::PathBuf;

/// Training settings.
#[derive(Debug, Clone)]
pub struct TrainConfig {
    /// Passes over the training set.
    pub epochs: usize,
    /// Samples per step.
    pub batch: usize,
    /// Peak learning rate.
    pub lr: f64,
    /// Learning-rate schedule.
    pub schedule: Schedule,
    /// Update rule.
    pub optimizer: OptimizerKind,
    /// Weight decay (decoupled for AdamW, L2 for SGD).
    pub weight_decay: f64,
    /// Random shifts of up to this many pixels (random crop with zero padding); 0 = off.
    pub augment_shift: usize,
    /// Random horizontal flips (half the images, mirrored left to right).
    pub augment_flip: bool,
    /// Mixup (Zhang et al. 2018): every image blended with another of its batch, weight
    /// λ ~ Beta(α, α), and its hard-label loss blended the same way; α = 0 is off.
    pub mixup: f64,
    /// The mixup α of runs that distil (`None`: [`TrainConfig::mixup`]). Mixup there is
    /// *function matching* (Beyer et al. 2022): every teacher labels the very blend the
    /// student sees, so the student is taught the teacher's function between the training
    /// images, not just its (memorised, near one-hot) answers on them.
    pub kd_mixup: Option<f64>,
    /// Seed for initialisation, shuffling and augmentation.
    pub seed: u64,
    /// Show a progress bar.
    pub progress: bool,
    /// Gradual magnitude pruning during training (masks kept to the end).
    pub prune: Option<(crate::prune::GradualSchedule, crate::prune::Scope)>,
}

impl Default for TrainConfig {
    fn default() -> Self {
        TrainConfig {
            epochs: 20,
            batch: 32,
            lr: 3e-3,
            schedule: Schedule::Cosine,
            optimizer: OptimizerKind::AdamW,
            weight_decay: 1e-4,
            augment_shift: 0,
            augment_flip: false,
            mixup: 0.0,
            kd_mixup: None,
            seed: 0,
            progress: true,
            prune: None,
        }
    }
}

impl TrainConfig {
    /// The mixup α a run uses: [`TrainConfig::kd_mixup`] when it distils (if set), else
    /// [`TrainConfig::mixup`].
    pub fn mixup_alpha(&self, distilling: bool) -> f64 {
        match self.kd_mixup {
            Some(a) if distilling => a,
            _ => self.mixup,
        }
    }
}

/// What one epoch did (for training curves and the report).
#[derive(Debug, Clone, PartialEq, serde::Serialize, serde::Deserialize)]
pub struct EpochLog {
    /// 1-based epoch.
    pub epoch: usize,
    /// Mean training loss.
    pub loss: f64,
    /// Mean distillation part of the loss (0 without distillation).
    pub kd_loss: f64,
    /// Training accuracy (0..1) of the batches as they were trained.
    pub train_top1: f64,
    /// Learning rate at the end of the epoch.
    pub lr: f64,
    /// Weight sparsity after the epoch.
    pub sparsity: f64,
    /// Training throughput.
    pub images_per_s: f64,
}

/// A trained model, its parameters and how training went.
pub struct Trained {
    /// The module.
    pub model: CnnModel,
    /// Its variables (plus any distillation connectors, `kd_*`).
    pub vars: VarMap,
    /// One entry per epoch.
    pub history: Vec<EpochLog>,
    /// The fake-quantization state when trained with QAT: its ranges are the export's.
    pub fake_quant: Option<FakeQuant>,
}

impl Trained {
    /// A model trained elsewhere, without history.
    pub fn new(model: CnnModel, vars: VarMap) -> Self {
        Trained {
            model,
            vars,
            history: Vec::new(),
            fake_quant: None,
        }
    }

    /// Fraction of zero weights.
    pub fn sparsity(&self) -> candle_core::Result<f64> {
        crate::prune::Pruner::keep_zeros(&self.vars)?.sparsity()
    }
}

/// Quantization-aware training settings.
#[derive(Debug, Clone)]
pub struct QatConfig {
    /// Zero point 0 on activations (TensorRT) instead of asymmetric.
    pub symmetric: bool,
    /// Observers stop updating after this many epochs (the rest fine-tunes on frozen ranges).
    pub freeze_observers_after: usize,
    /// Starting ranges per quantization point (from calibration), if any.
    pub initial_ranges: Vec<(f32, f32)>,
    /// Learn the activation scales (LSQ), starting from `initial_ranges`.
    pub lsq: bool,
}

/// Where a run keeps its per-epoch checkpoint.
#[derive(Debug, Clone)]
pub struct Checkpointing {
    /// Folder of the checkpoint files.
    pub dir: PathBuf,
    /// File stem (`<stage>.ckpt.safetensors` + `<stage>.ckpt.json`).
    pub stage: String,
    /// Identifies the settings the run was started with; a checkpoint with another
    /// fingerprint is never resumed.
    pub fingerprint: String,
    /// Continue an unfinished checkpoint (a finished one is always reused).
    pub resume: bool,
    /// Stop after this many epochs of this process (tests simulate a killed run with it).
    pub stop_after: Option<usize>,
}

/// Everything about one training run besides the data and the hyper-parameters.
#[derive(Default)]
pub struct Run<'a> {
    /// Distillation terms (empty = plain cross-entropy).
    pub kd: &'a [KdTerm],
    /// Weight of the cross-entropy (1 when `None`).
    pub ce_weight: Option<f64>,
    /// The teachers the terms refer to.
    pub teachers: &'a [&'a dyn Teacher],
    /// Start from these weights (fine-tuning) instead of a fresh initialisation; their zeros
    /// are kept as pruning masks when `cfg.prune` is `None`.
    pub init: Option<&'a Trained>,
    /// Fake quantization during training.
    pub qat: Option<QatConfig>,
    /// Per-epoch checkpoints.
    pub checkpoint: Option<Checkpointing>,
}

/// One progress bar per training run, a tick per epoch (hidden when `show` is false).
pub(crate) fn epoch_bar(epochs: usize, show: bool, label: &str) -> ProgressBar {
    let pb = if show {
        ProgressBar::new(epochs as u64)
    } else {
        ProgressBar::hidden()
    };
    pb.set_style(
        ProgressStyle::with_template("{prefix:>22} [{bar:30}] epoch {pos}/{len} {msg}")
            .expect("valid template")
            .progress_chars("=> "),
    );
    pb.set_prefix(label.to_string());
    pb
}

/// Kaiming-uniform initialisation from our own seeded generator (candle's CPU RNG cannot be
/// seeded), so every run with the same seed trains the same model.
pub(crate) fn seeded_init(vars: &VarMap, seed: u64) -> candle_core::Result<()> {
    seeded_init_matching(vars, seed, |_| true)
}

/// [`seeded_init`] of the variables whose names pass `keep`.
fn seeded_init_matching(
    vars: &VarMap,
    seed: u64,
    keep: impl Fn(&str) -> bool,
) -> candle_core::Result<()> {
    let data = vars.data().lock().expect("var map lock");
    let mut names: Vec<&String> = data.keys().filter(|n| keep(n)).collect();
    names.sort();
    let mut rng = Rng(seed ^ 0x5eed);
    for name in names {
        let var = &data[name];
        let shape = var.shape().clone();
        let dims = shape.dims();
        let n = shape.elem_count();
        let batch_norm_scale = name.contains("_bn.") && name.ends_with("weight");
        let vals: Vec<f32> = if name.ends_with("bias") || name.ends_with("running_mean") {
            vec![0.0; n]
        } else if batch_norm_scale || name.ends_with("running_var") {
            vec![1.0; n]
        } else {
            let fan_in: usize = dims[1..].iter().product::<usize>().max(1);
            let bound = (6.0 / fan_in as f64).sqrt();
            (0..n)
                .map(|_| ((rng.unit() * 2.0 - 1.0) * bound) as f32)
                .collect()
        };
        var.set(&Tensor::from_vec(vals, dims, var.device())?)?;
    }
    Ok(())
}

/// Training-time image augmentation.
#[derive(Debug, Clone, Copy)]
struct Augment {
    /// Random shift of up to this many pixels (random crop of the zero-padded image).
    shift: usize,
    /// Mirror half the images left to right.
    flip: bool,
}

/// One mixup draw for a batch: each sample's partner (another position of the same batch) and
/// its own weight λ ~ Beta(α, α); sample i becomes `λ_i·x_i + (1 − λ_i)·x_partner(i)`.
struct MixDraw {
    partner: Tensor,
    partner_labels: Tensor,
    lambda: Tensor,
    lambda_host: Vec<f32>,
}

impl MixDraw {
    fn new(y: &Tensor, alpha: f64, rng: &mut Rng) -> candle_core::Result<Self> {
        let n = y.dim(0)?;
        let mut perm: Vec<u32> = (0..n as u32).collect();
        for i in (1..n).rev() {
            perm.swap(i, rng.below(i + 1));
        }
        let lambda_host: Vec<f32> = (0..n).map(|_| beta_symmetric(rng, alpha) as f32).collect();
        let partner = Tensor::from_vec(perm, n, y.device())?;
        Ok(MixDraw {
            partner_labels: y.index_select(&partner, 0)?,
            lambda: Tensor::from_vec(lambda_host.clone(), n, y.device())?,
            partner,
            lambda_host,
        })
    }

    /// The blended images.
    fn mix(&self, x: &Tensor) -> candle_core::Result<Tensor> {
        let n = x.dim(0)?;
        let lam = self.lambda.reshape((n, 1, 1, 1))?;
        let other = x.index_select(&self.partner, 0)?;
        x.broadcast_mul(&lam)? + other.broadcast_mul(&(1.0 - &lam)?)?
    }

    /// The label a blend mostly shows (for training accuracy).
    fn dominant_labels(&self, y: &Tensor) -> candle_core::Result<Vec<u32>> {
        let (a, b) = (y.to_vec1::<u32>()?, self.partner_labels.to_vec1::<u32>()?);
        Ok(self
            .lambda_host
            .iter()
            .zip(a.iter().zip(b))
            .map(|(l, (a, b))| if *l >= 0.5 { *a } else { b })
            .collect())
    }
}

/// Cross-entropy against blended one-hot labels:
/// `mean_i −(λ_i·log p_i[y_i] + (1 − λ_i)·log p_i[y'_i])` (mixup's hard-label loss).
fn mixed_cross_entropy(
    logits: &Tensor,
    y: &Tensor,
    y_partner: &Tensor,
    lambda: &Tensor,
) -> candle_core::Result<Tensor> {
    let logp = candle_nn::ops::log_softmax(logits, D::Minus1)?;
    let pick = |t: &Tensor| logp.gather(&t.unsqueeze(1)?, 1)?.squeeze(1);
    let mixed = ((pick(y)? * lambda)? + (pick(y_partner)? * (1.0 - lambda)?)?)?;
    mixed.mean_all()?.neg()
}

/// A Beta(α, α) draw: X / (X + Y) of two Gamma(α) draws.
fn beta_symmetric(rng: &mut Rng, alpha: f64) -> f64 {
    let (a, b) = (gamma(rng, alpha), gamma(rng, alpha));
    if a + b > 0.0 {
        a / (a + b)
    } else {
        0.5
    }
}

/// A Gamma(k, 1) draw (Marsaglia & Tsang 2000; k < 1 through Gamma(k + 1)·U^(1/k)).
fn gamma(rng: &mut Rng, k: f64) -> f64 {
    if k < 1.0 {
        let u = 1.0 - rng.unit(); // (0, 1]
        return gamma(rng, k + 1.0) * u.powf(1.0 / k);
    }
    let d = k - 1.0 / 3.0;
    let c = 1.0 / (9.0 * d).sqrt();
    loop {
        // Box–Muller standard normal.
        let (u1, u2) = (1.0 - rng.unit(), rng.unit());
        let x = (-2.0 * u1.ln()).sqrt() * (std::f64::consts::TAU * u2).cos();
        let v = (1.0 + c * x).powi(3);
        if v <= 0.0 {
            continue;
        }
        let u = 1.0 - rng.unit();
        if u.ln() < 0.5 * x * x + d - d * v + d * v.ln() {
            return d * v;
        }
    }
}

/// The first `c` channels of an image batch — the deployable view when the data also carries
/// privileged channels.
pub(crate) fn first_channels(x: &Tensor, c: usize) -> candle_core::Result<Tensor> {
    if x.dim(1)? == c {
        Ok(x.clone())
    } else {
        x.narrow(1, 0, c)
    }
}

/// The images `idx` of `data` as one `[N, C, H, W]` batch, without augmentation.
pub fn image_batch(data: &ImageSet, idx: &[usize]) -> candle_core::Result<Tensor> {
    Ok(batch_tensors(data, idx, None, &Device::Cpu)?.0)
}

fn batch_tensors(
    data: &ImageSet,
    idx: &[usize],
    aug: Option<(Augment, &mut Rng)>,
    dev: &Device,
) -> candle_core::Result<(Tensor, Tensor)> {
    let (c, h, w) = data.chw;
    let n = data.image_len();
    let mut xs = Vec::with_capacity(idx.len() * n);
    let mut ys = Vec::with_capacity(idx.len());
    let mut aug = aug.filter(|(a, _)| a.shift > 0 || a.flip);
    for &i in idx {
        let img = data.image(i);
        match aug.as_mut() {
            Some((a, rng)) => {
                // Random crop of the zero-padded image = a shift by (dy, dx) in [−s, s]. The
                // flip draw comes after the shift's, and only when flips are on, so shift-only
                // runs see the same random sequence as before flips existed.
                let s = a.shift as i64;
                let dy = rng.below(2 * a.shift + 1) as i64 - s;
                let dx = rng.below(2 * a.shift + 1) as i64 - s;
                let flip = a.flip && rng.below(2) == 1;
                for ch in 0..c {
                    for y in 0..h as i64 {
                        for x in 0..w as i64 {
                            let x = if flip { w as i64 - 1 - x } else { x };
                            let (sy, sx) = (y + dy, x + dx);
                            let inside = sy >= 0 && sx >= 0 && sy < h as i64 && sx < w as i64;
                            xs.push(if inside {
                                img[ch * h * w + sy as usize * w + sx as usize]
                            } else {
                                0.0
                            });
                        }
                    }
                }
            }
            None => xs.extend_from_slice(img),
        }
        ys.push(data.labels[i] as u32);
    }
    Ok((
        Tensor::from_vec(xs, (idx.len(), c, h, w), dev)?,
        Tensor::from_vec(ys, idx.len(), dev)?,
    ))
}

/// The JSON half of a checkpoint.
#[derive(serde::Serialize, serde::Deserialize)]
struct CheckpointState {
    fingerprint: String,
    epochs_done: usize,
    step: usize,
    optimizer_steps: usize,
    history: Vec<EpochLog>,
    fake_quant: Option<FakeQuant>,
}

fn ckpt_paths(c: &Checkpointing) -> (PathBuf, PathBuf) {
    (
        c.dir.join(format!("{}.ckpt.safetensors", c.stage)),
        c.dir.join(format!("{}.ckpt.json", c.stage)),
    )
}

/// Reads a checkpoint if there is one to continue from.
fn load_checkpoint(
    c: &Checkpointing,
) -> crate::Result<Option<(CheckpointState, HashMap<String, Tensor>)>> {
    let (st, js) = ckpt_paths(c);
    if !js.exists() || !st.exists() {
        return Ok(None);
    }
    let state: CheckpointState = serde_json::from_slice(&crate::read_file(&js)?)
        .map_err(|e| crate::Error::Invalid(format!("{}: {e}", js.display())))?;
    if state.fingerprint != c.fingerprint {
        return Ok(None);
    }
    let tensors = candle_core::safetensors::load(&st, &Device::Cpu)
        .map_err(|e| crate::Error::Invalid(format!("{}: {e}", st.display())))?;
    Ok(Some((state, tensors)))
}

/// Writes both checkpoint files atomically (tensors first, so a JSON that exists always
/// describes complete tensors).
fn save_checkpoint(
    c: &Checkpointing,
    state: &CheckpointState,
    tensors: &HashMap<String, Tensor>,
) -> crate::Result<()> {
    let (st, js) = ckpt_paths(c);
    std::fs::create_dir_all(&c.dir).map_err(|err| crate::Error::Io {
        path: c.dir.clone(),
        err,
    })?;
    let tmp = st.with_extension("tmp~");
    candle_core::safetensors::save(tensors, &tmp)?;
    std::fs::rename(&tmp, &st).map_err(|err| crate::Error::Io {
        path: st.clone(),
        err,
    })?;
    let json =
        serde_json::to_vec_pretty(state).map_err(|e| crate::Error::Invalid(e.to_string()))?;
    crate::write_file(&js, &json)
}

fn var_tensors(vars: &VarMap) -> HashMap<String, Tensor> {
    let data = vars.data().lock().expect("var map lock");
    data.iter()
        .map(|(n, v)| (n.clone(), v.as_tensor().clone()))
        .collect()
}

fn load_vars(vars: &VarMap, tensors: &HashMap<String, Tensor>) -> crate::Result<()> {
    let data = vars.data().lock().expect("var map lock");
    for (name, var) in data.iter() {
        let t = tensors
            .get(name)
            .ok_or_else(|| crate::Error::Invalid(format!("checkpoint has no variable '{name}'")))?;
        if t.shape() != var.shape() {
            return Err(crate::Error::Invalid(format!(
                "checkpoint variable '{name}' has shape {:?}, the model needs {:?}",
                t.dims(),
                var.dims()
            )));
        }
        var.set(t)?;
    }
    Ok(())
}

/// Trains `spec` on `data` as `run` describes.
pub fn train(
    spec: &ArchSpec,
    data: &ImageSet,
    cfg: &TrainConfig,
    run: Run,
    label: &str,
) -> crate::Result<Trained> {
    if run.qat.is_some() && spec.has_bn() {
        return Err(crate::Error::Invalid(format!(
            "{label}: quantization-aware training runs on the batch-norm-folded model (see fold_bn)"
        )));
    }
    let short = std::iter::once(spec.input.0)
        .chain(run.teachers.iter().map(|t| t.layout().input_channels))
        .find(|&c| c > data.chw.0);
    if let Some(c) = short {
        return Err(crate::Error::Invalid(format!(
            "{label}: a model reads {c} input channels, the data has {}",
            data.chw.0
        )));
    }
    let dev = Device::Cpu;
    let vars = VarMap::new();
    let vb = VarBuilder::from_varmap(&vars, DType::F32, &dev);
    let model = CnnModel::new(spec, vb.clone())?;
    match run.init {
        Some(init) => load_vars(&vars, &var_tensors(&init.vars))?,
        None => seeded_init(&vars, cfg.seed)?,
    }
    let layouts: Vec<TeacherLayout> = run.teachers.iter().map(|t| t.layout()).collect();
    let distiller = Distiller::new(
        run.ce_weight.unwrap_or(1.0),
        run.kd,
        spec,
        &layouts,
        vb.clone(),
    )?;
    seeded_init_matching(&vars, cfg.seed.wrapping_add(1), |n| n.starts_with("kd_"))?;
    let mut fq = match run.qat.as_ref() {
        Some(q) => {
            let mut f = FakeQuant::new(spec, q.symmetric);
            if !q.initial_ranges.is_empty() {
                f.seed_ranges(&q.initial_ranges);
            }
            // The learned scales are model variables: created before the optimizer sees them.
            if q.lsq {
                f.attach_lsq(&vars)?;
            }
            Some(f)
        }
        None => None,
    };
    let mut opt = Optim::new(&vars, cfg.optimizer, cfg.weight_decay)?;
    let mut pruner = match (cfg.prune, run.init) {
        (Some((sched, scope)), _) => Some(crate::prune::Pruner::new(&vars, sched, scope)),
        (None, Some(_)) => Some(crate::prune::Pruner::keep_zeros(&vars)?),
        (None, None) => None,
    };
    let steps_per_epoch = data.len().div_ceil(cfg.batch);
    let total = steps_per_epoch * cfg.epochs;
    let mixup = cfg.mixup_alpha(!distiller.is_plain());
    let mut history = Vec::new();
    let mut first_epoch = 0;
    let mut step = 0usize;
    if let Some(c) = &run.checkpoint {
        if let Some((state, tensors)) = load_checkpoint(c)? {
            let finished = state.epochs_done >= cfg.epochs;
            if finished || c.resume {
                load_vars(&vars, &tensors)?;
                opt.restore(&tensors, state.optimizer_steps)?;
                if let Some(p) = pruner.as_mut() {
                    p.restore_masks(&tensors);
                }
                if let (Some(f), Some(saved)) = (fq.as_mut(), state.fake_quant) {
                    *f = saved;
                    if f.lsq {
                        // Re-binds the scales to the restored variables.
                        f.attach_lsq(&vars)?;
                    }
                }
                first_epoch = state.epochs_done;
                step = state.step;
                history = state.history;
                if !finished && cfg.progress {
                    eprintln!(
                        "{label}: resuming after epoch {first_epoch} of {}",
                        cfg.epochs
                    );
                }
            }
        }
    }
    let pb = epoch_bar(cfg.epochs, cfg.progress && first_epoch < cfg.epochs, label);
    pb.set_position(first_epoch as u64);
    let mut idx: Vec<usize> = (0..data.len()).collect();
    for (ran, epoch) in (first_epoch..cfg.epochs).enumerate() {
        if run
            .checkpoint
            .as_ref()
            .and_then(|c| c.stop_after)
            .is_some_and(|n| ran >= n)
        {
            break;
        }
        let start = std::time::Instant::now();
        idx.sort_unstable();
        let epoch_seed = cfg.seed.wrapping_mul(1000).wrapping_add(epoch as u64);
        shuffle(&mut idx, epoch_seed);
        let mut aug_rng = Rng(epoch_seed ^ 0xa5a5);
        // Its own stream, so runs without mixup draw exactly what they drew before it existed.
        let mut mix_rng = Rng(epoch_seed ^ 0x313d_1ab5);
        if let (Some(f), Some(q)) = (fq.as_mut(), run.qat.as_ref()) {
            f.observing = epoch < q.freeze_observers_after;
        }
        let (mut loss_sum, mut kd_sum, mut correct) = (0.0f64, 0.0f64, 0usize);
        let mut lr = cfg.lr;
        for chunk in idx.chunks(cfg.batch) {
            lr = cfg.schedule.lr(cfg.lr, step, total, steps_per_epoch);
            let aug = Augment {
                shift: cfg.augment_shift,
                flip: cfg.augment_flip,
            };
            let (x_all, y) = batch_tensors(data, chunk, Some((aug, &mut aug_rng)), &dev)?;
            let draw = (mixup > 0.0)
                .then(|| MixDraw::new(&y, mixup, &mut mix_rng))
                .transpose()?;
            let x_all = match &draw {
                Some(d) => d.mix(&x_all)?,
                None => x_all,
            };
            let x = first_channels(&x_all, spec.input.0)?;
            let hooks: &mut dyn ForwardHooks = match fq.as_mut() {
                Some(f) => f,
                None => &mut NoHooks,
            };
            let student = model.forward_t(&x, true, hooks)?;
            let ce = match &draw {
                Some(d) => mixed_cross_entropy(&student.0, &y, &d.partner_labels, &d.lambda)?,
                None => loss::cross_entropy(&student.0, &y)?,
            };
            let mut l = (ce * distiller.ce_weight)?;
            if !distiller.is_plain() {
                let teachers = run
                    .teachers
                    .iter()
                    .zip(&layouts)
                    .map(|(t, l)| t.forward_features(&first_channels(&x_all, l.input_channels)?))
                    .collect::<candle_core::Result<Vec<_>>>()?;
                if let Some(kd) = distiller.kd_loss(&student, &teachers)? {
                    kd_sum += kd.to_scalar::<f32>()? as f64 * chunk.len() as f64;
                    l = (l + kd)?;
                }
            }
            opt.backward_step(&l, lr)?;
            if let Some(p) = pruner.as_mut() {
                p.after_step(step)?;
            }
            loss_sum += l.to_scalar::<f32>()? as f64 * chunk.len() as f64;
            let pred = student.0.argmax(D::Minus1)?.to_vec1::<u32>()?;
            let shown = match &draw {
                Some(d) => d.dominant_labels(&y)?,
                None => y.to_vec1::<u32>()?,
            };
            correct += pred.iter().zip(shown).filter(|(a, b)| **a == *b).count();
            step += 1;
        }
        let sparsity = match &pruner {
            Some(p) => p.sparsity()?,
            None => 0.0,
        };
        let log = EpochLog {
            epoch: epoch + 1,
            loss: loss_sum / data.len().max(1) as f64,
            kd_loss: kd_sum / data.len().max(1) as f64,
            train_top1: correct as f64 / data.len().max(1) as f64,
            lr,
            sparsity,
            images_per_s: data.len() as f64 / start.elapsed().as_secs_f64(),
        };
        pb.set_message(format!(
            "loss {:.4} acc {:.1}% {:.0} img/s{}",
            log.loss,
            100.0 * log.train_top1,
            log.images_per_s,
            if cfg.prune.is_some() {
                format!(" sparsity {:.0}%", 100.0 * sparsity)
            } else {
                String::new()
            }
        ));
        history.push(log);
        pb.inc(1);
        if let Some(c) = &run.checkpoint {
            let mut tensors = var_tensors(&vars);
            let (opt_state, optimizer_steps) = opt.state();
            tensors.extend(opt_state);
            if let Some(p) = &pruner {
                tensors.extend(p.masks_state());
            }
            let state = CheckpointState {
                fingerprint: c.fingerprint.clone(),
                epochs_done: epoch + 1,
                step,
                optimizer_steps,
                history: history.clone(),
                fake_quant: fq.clone(),
            };
            save_checkpoint(c, &state, &tensors)?;
        }
    }
    pb.finish();
    if let Some(f) = fq.as_mut() {
        f.observing = false;
    }
    Ok(Trained {
        model,
        vars,
        history,
        fake_quant: fq,
    })
}

/// The model with batch norm folded into its convolutions (same function in inference mode):
/// the starting point of quantization-aware training, whose batch-norm statistics are thereby
/// frozen.
pub fn fold_bn(t: &Trained) -> crate::Result<Trained> {
    let spec = t.model.spec.folded();
    let vars = VarMap::new();
    let model = CnnModel::new(
        &spec,
        VarBuilder::from_varmap(&vars, DType::F32, &Device::Cpu),
    )?;
    sprig_models::arch::load_folded(&spec, &t.model.weights()?, &vars)?;
    Ok(Trained {
        model,
        vars,
        history: t.history.clone(),
        fake_quant: None,
    })
}

/// Logits of a model on `data` (in its fake-quantized form when `fq` is given).
pub fn logits(
    model: &CnnModel,
    data: &ImageSet,
    fq: Option<&FakeQuant>,
) -> crate::Result<Vec<Vec<f32>>> {
    let dev = Device::Cpu;
    let idx: Vec<usize> = (0..data.len()).collect();
    let mut out = Vec::with_capacity(data.len());
    for chunk in idx.chunks(256) {
        let (x, _) = batch_tensors(data, chunk, None, &dev)?;
        let l = match fq {
            Some(f) => {
                let mut f = f.clone();
                f.observing = false;
                model.forward_with(&x, &mut f)?.0
            }
            None => model.forward_features(&x)?.0,
        };
        out.extend(l.to_vec2::<f32>()?);
    }
    Ok(out)
}

/// Top-1 accuracy of a candle model on `data` (float reference).
pub fn accuracy(model: &CnnModel, data: &ImageSet) -> crate::Result<f64> {
    let dev = Device::Cpu;
    let mut correct = 0usize;
    let idx: Vec<usize> = (0..data.len()).collect();
    for chunk in idx.chunks(256) {
        let (x, y) = batch_tensors(data, chunk, None, &dev)?;
        let pred = model
            .forward_features(&x)?
            .0
            .argmax(D::Minus1)?
            .to_vec1::<u32>()?;
        correct += pred
            .iter()
            .zip(y.to_vec1::<u32>()?)
            .filter(|(a, b)| **a == *b)
            .count();
    }
    Ok(correct as f64 / data.len().max(1) as f64)
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Beta(α, α) draws lie in [0, 1] with mean ½ and variance 1/(4(2α + 1)) — for α = 1 the
    /// uniform's 1/12 — whether α is below or above 1 (the two Gamma branches).
    #[test]
    fn beta_draws_have_the_beta_moments() {
        for alpha in [0.2, 1.0, 4.0] {
            let mut rng = Rng(7);
            let n = 40_000;
            let v: Vec<f64> = (0..n).map(|_| beta_symmetric(&mut rng, alpha)).collect();
            assert!(v.iter().all(|x| (0.0..=1.0).contains(x)));
            let mean = v.iter().sum::<f64>() / n as f64;
            let var = v.iter().map(|x| (x - mean).powi(2)).sum::<f64>() / n as f64;
            let want = 1.0 / (4.0 * (2.0 * alpha + 1.0));
            assert!((mean - 0.5).abs() < 0.01, "α {alpha}: mean {mean}");
            assert!(
                (var - want).abs() < 0.05 * want,
                "α {alpha}: var {var}, want {want}"
            );
        }
    }

    /// Mixup's blend and loss by hand: λ = 1 is plain cross-entropy on the image itself, and
    /// the loss is linear in λ between the two labels' cross-entropies.
    #[test]
    fn mixup_blends_images_and_labels() {
        let dev = Device::Cpu;
        let y = Tensor::new(&[0u32, 1, 2], &dev).unwrap();
        let d = MixDraw::new(&y, 1.0, &mut Rng(3)).unwrap();
        let partner = d.partner.to_vec1::<u32>().unwrap();
        let mut sorted = partner.clone();
        sorted.sort_unstable();
        assert_eq!(sorted, [0, 1, 2], "partners are a permutation of the batch");
        assert_eq!(d.partner_labels.to_vec1::<u32>().unwrap(), partner);
        let x = Tensor::new(&[1.0f32, 10.0, 100.0], &dev)
            .unwrap()
            .reshape((3, 1, 1, 1))
            .unwrap();
        let mixed = d
            .mix(&x)
            .unwrap()
            .flatten_all()
            .unwrap()
            .to_vec1::<f32>()
            .unwrap();
        let xs = [1.0f32, 10.0, 100.0];
        for i in 0..3 {
            let l = d.lambda_host[i];
            let want = l * xs[i] + (1.0 - l) * xs[partner[i] as usize];
            assert!(
                (mixed[i] - want).abs() < 1e-4,
                "{i}: {} vs {want}",
                mixed[i]
            );
        }
        let logits = Tensor::new(
            &[[2.0f32, 0.0, -1.0], [0.5, 0.5, 0.0], [-1.0, 3.0, 1.0]],
            &dev,
        )
        .unwrap();
        let yb = Tensor::new(&[1u32, 2, 0], &dev).unwrap();
        let ce = |lam: f32| {
            let lam = Tensor::new(&[lam; 3], &dev).unwrap();
            mixed_cross_entropy(&logits, &y, &yb, &lam)
                .unwrap()
                .to_scalar::<f32>()
                .unwrap()
        };
        let plain = |t: &Tensor| {
            loss::cross_entropy(&logits, t)
                .unwrap()
                .to_scalar::<f32>()
                .unwrap()
        };
        assert!((ce(1.0) - plain(&y)).abs() < 1e-6);
        assert!((ce(0.0) - plain(&yb)).abs() < 1e-6);
        assert!((ce(0.25) - (0.25 * plain(&y) + 0.75 * plain(&yb))).abs() < 1e-6);
    }

    /// Flipped images are exact mirrors, unflipped ones untouched, and both occur.
    #[test]
    fn flip_augmentation_mirrors_about_half_the_images() {
        let (c, h, w) = (2, 3, 4);
        let n = 40;
        let images: Vec<f32> = (0..n * c * h * w).map(|i| i as f32).collect();
        let data = ImageSet {
            images,
            labels: vec![0; n],
            chw: (c, h, w),
            classes: 10,
        };
        let idx: Vec<usize> = (0..n).collect();
        let aug = Augment {
            shift: 0,
            flip: true,
        };
        let (x, _) = batch_tensors(&data, &idx, Some((aug, &mut Rng(5))), &Device::Cpu).unwrap();
        let x = x.flatten_all().unwrap().to_vec1::<f32>().unwrap();
        let mut flipped = 0;
        for (i, out) in x.chunks(c * h * w).enumerate() {
            let img = data.image(i);
            let mirror: Vec<f32> = img
                .chunks(w)
                .flat_map(|row| row.iter().rev().copied())
                .collect();
            if out == mirror.as_slice() {
                flipped += 1;
            } else {
                assert_eq!(out, img, "image {i} is neither itself nor its mirror");
            }
        }
        assert!((10..=30).contains(&flipped), "{flipped} of {n} flipped");
    }
}

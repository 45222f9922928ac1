//! Trajectory models on candle: the GRU teacher, the MLP student with output and hidden-state
//! distillation, int8 export with the decode convention recorded in the file, and ADE/FDE of
//! every stage (candle float, and the exported model on sprig-runtime).

use crate::train::{seeded_init, Trained};
use candle_core::{DType, Device, Module, Tensor};
use candle_nn::{Optimizer, VarBuilder, VarMap};
use sprig_models::arch::{ArchSpec, CnnModel};
use sprig_models::datasets::{shuffle, ImageSet, Rng};
use sprig_models::predictors::GruTeacher;
use sprig_models::trajectory::{
    constant_velocity, decode, encode, encode_in, Frame, OBS, PRED, WINDOW,
};
use sprig_runtime::hazard::{predict::DECODE_KEY, Decode, ModelPredictor, Point, Predictor};

/// A 20-step window, absolute positions.
pub type Window = [[f32; 2]; WINDOW];
/// 12 predicted positions.
pub type Path12 = [[f32; 2]; PRED];

/// Training settings for trajectory models.
#[derive(Debug, Clone)]
pub struct TrajTrainConfig {
    /// Passes over the windows.
    pub epochs: usize,
    /// Windows per step.
    pub batch: usize,
    /// Peak learning rate (cosine decay).
    pub lr: f64,
    /// Seed for initialisation, shuffling and augmentation.
    pub seed: u64,
    /// Augmentation: in the world frame a random rotation of every window about its last
    /// observed point; in the heading frame a random mirror image.
    pub rotate: bool,
    /// The coordinate frame the model sees (recorded in the exported file).
    pub frame: Frame,
    /// Show a progress bar.
    pub progress: bool,
    /// Gradual magnitude pruning of the student's weights (schedule in optimizer steps).
    pub prune: Option<crate::prune::GradualSchedule>,
}

impl Default for TrajTrainConfig {
    fn default() -> Self {
        TrajTrainConfig {
            epochs: 12,
            batch: 128,
            lr: 2e-3,
            seed: 0,
            rotate: true,
            frame: Frame::World,
            progress: true,
            prune: None,
        }
    }
}

/// Trajectory distillation weights: `L = E(s, y) + β·E(s, t) + γ·MSE(R·h_s, h_t)` (E: mean
/// Euclidean distance per point, [`euclidean_loss`]), with
/// `R` a learned linear map from the student's last hidden layer to the teacher's decoder
/// hidden state (hidden-state KD in the FitNets manner).
#[derive(Debug, Clone, Copy)]
pub struct TrajKd {
    /// Weight β of matching the teacher's prediction.
    pub output: f64,
    /// Weight γ of matching the teacher's hidden state.
    pub hidden: f64,
}

/// Mean Euclidean distance between two `[B, 24]` tensors of 12 (x, y) points: the training
/// loss, because it is what ADE measures (squared error chases the rare sharp turns and
/// generalises worse across scenes).
pub fn euclidean_loss(a: &Tensor, b: &Tensor) -> candle_core::Result<Tensor> {
    let n = a.dim(0)?;
    ((a - b)?
        .reshape((n, PRED, 2))?
        .sqr()?
        .sum(candle_core::D::Minus1)?
        + 1e-6)?
        .sqrt()?
        .mean_all()
}

/// A trained GRU teacher.
pub struct Teacher {
    /// The module.
    pub model: GruTeacher,
    /// Its variables.
    pub vars: VarMap,
}

fn batch(
    windows: &[Window],
    idx: &[usize],
    frame: Frame,
    rng: Option<&mut Rng>,
    dev: &Device,
) -> candle_core::Result<(Tensor, Tensor)> {
    let mut xs = Vec::with_capacity(idx.len() * 2 * OBS);
    let mut ys = Vec::with_capacity(idx.len() * 2 * PRED);
    let mut rng = rng;
    for &i in idx {
        let (x, y) = match (frame, rng.as_deref_mut()) {
            (Frame::World, Some(r)) => {
                encode(&windows[i], (r.unit() * std::f64::consts::TAU) as f32)
            }
            (Frame::World, None) => encode(&windows[i], 0.0),
            (Frame::Heading, r) => encode_in(&windows[i], frame, r.is_some_and(|r| r.unit() < 0.5)),
        };
        xs.extend_from_slice(&x);
        ys.extend_from_slice(&y);
    }
    Ok((
        Tensor::from_vec(xs, (idx.len(), 2 * OBS), dev)?,
        Tensor::from_vec(ys, (idx.len(), 2 * PRED), dev)?,
    ))
}

/// Shared loop: `step(x, y)` returns the loss of one batch.
fn run_epochs(
    windows: &[Window],
    cfg: &TrajTrainConfig,
    vars: &VarMap,
    label: &str,
    mut loss_of: impl FnMut(&Tensor, &Tensor) -> candle_core::Result<Tensor>,
    mut after_step: impl FnMut(usize) -> candle_core::Result<()>,
) -> crate::Result<()> {
    if windows.is_empty() {
        return Err(crate::Error::Invalid(format!(
            "{label}: no training windows (tracks need at least {WINDOW} consecutive steps)"
        )));
    }
    let dev = Device::Cpu;
    let mut opt = candle_nn::AdamW::new(
        vars.all_vars(),
        candle_nn::ParamsAdamW {
            lr: cfg.lr,
            weight_decay: 1e-4,
            ..Default::default()
        },
    )?;
    let total = (windows.len().div_ceil(cfg.batch) * cfg.epochs) as f64;
    let pb = crate::train::epoch_bar(cfg.epochs, cfg.progress, label);
    let mut idx: Vec<usize> = (0..windows.len()).collect();
    let mut rng = Rng(cfg.seed ^ 0x000a_119e);
    let mut step = 0usize;
    let start = std::time::Instant::now();
    for epoch in 0..cfg.epochs {
        shuffle(
            &mut idx,
            cfg.seed.wrapping_mul(7919).wrapping_add(epoch as u64),
        );
        let mut loss_sum = 0.0f64;
        for chunk in idx.chunks(cfg.batch) {
            opt.set_learning_rate(
                cfg.lr * 0.5 * (1.0 + (std::f64::consts::PI * step as f64 / total).cos()),
            );
            let (x, y) = batch(
                windows,
                chunk,
                cfg.frame,
                cfg.rotate.then_some(&mut rng),
                &dev,
            )?;
            let l = loss_of(&x, &y)?;
            opt.backward_step(&l)?;
            after_step(step)?;
            loss_sum += l.to_scalar::<f32>()? as f64 * chunk.len() as f64;
            step += 1;
        }
        pb.set_message(format!(
            "loss {:.4} {:.0} windows/s",
            loss_sum / windows.len() as f64,
            (windows.len() * (epoch + 1)) as f64 / start.elapsed().as_secs_f64()
        ));
        pb.inc(1);
    }
    pb.finish();
    Ok(())
}

/// Trains the GRU teacher on residuals to constant velocity.
pub fn train_teacher(
    windows: &[Window],
    hidden: usize,
    cfg: &TrajTrainConfig,
    label: &str,
) -> crate::Result<Teacher> {
    let dev = Device::Cpu;
    let vars = VarMap::new();
    let model = GruTeacher::new(hidden, VarBuilder::from_varmap(&vars, DType::F32, &dev))?;
    seeded_init(&vars, cfg.seed)?;
    run_epochs(
        windows,
        cfg,
        &vars,
        label,
        |x, y| euclidean_loss(&model.forward_features(x)?.0, y),
        |_| Ok(()),
    )?;
    Ok(Teacher { model, vars })
}

/// Trains an MLP student, with distillation from `teacher` when given.
pub fn train_student(
    spec: &ArchSpec,
    windows: &[Window],
    cfg: &TrajTrainConfig,
    teacher: Option<(&GruTeacher, usize, TrajKd)>,
    label: &str,
) -> crate::Result<Trained> {
    let dev = Device::Cpu;
    let vars = VarMap::new();
    let vb = VarBuilder::from_varmap(&vars, DType::F32, &dev);
    let model = CnnModel::new(spec, vb.clone())?;
    let student_hidden = spec.shapes()[spec.layers.len() - 2].0;
    let regressor = match teacher {
        Some((_, teacher_hidden, _)) => Some(candle_nn::linear(
            student_hidden,
            teacher_hidden,
            vb.pp("kd_regressor"),
        )?),
        None => None,
    };
    seeded_init(&vars, cfg.seed)?;
    // The learned map of hidden-state KD (`kd_…`) is not pruned: it is not exported.
    let mut pruner = cfg
        .prune
        .map(|s| crate::prune::Pruner::new(&vars, s, crate::prune::Scope::PerLayer));
    let loss = |x: &Tensor, y: &Tensor| {
        let x4 = x.reshape((x.dim(0)?, 1, 1, 2 * OBS))?;
        let (s, feats) = model.forward_features(&x4)?;
        let mut l = euclidean_loss(&s, y)?;
        if let (Some((t, _, kd)), Some(reg)) = (teacher, &regressor) {
            let (t_out, t_hidden) = t.forward_features(x)?;
            l = (l + (euclidean_loss(&s, &t_out.detach())? * kd.output)?)?;
            let h = &feats[feats.len() - 2];
            let hint = candle_nn::loss::mse(&reg.forward(h)?, &t_hidden.detach())?;
            l = (l + (hint * kd.hidden)?)?;
        }
        Ok(l)
    };
    run_epochs(windows, cfg, &vars, label, loss, |step| match &mut pruner {
        Some(p) => p.after_step(step),
        None => Ok(()),
    })?;
    Ok(Trained::new(model, vars))
}

fn predict_batched(
    windows: &[Window],
    frame: Frame,
    f: impl Fn(&Tensor) -> candle_core::Result<Tensor>,
) -> crate::Result<Vec<Path12>> {
    let dev = Device::Cpu;
    let idx: Vec<usize> = (0..windows.len()).collect();
    let mut out = Vec::with_capacity(windows.len());
    for chunk in idx.chunks(1024) {
        let (x, _) = batch(windows, chunk, frame, None, &dev)?;
        let r = f(&x)?.to_vec2::<f32>()?;
        for (&i, r) in chunk.iter().zip(&r) {
            // Back from the frame relative to the last observed point to world coordinates.
            let o = windows[i][OBS - 1];
            let rel = decode(&relative(&windows[i])[..OBS], r, frame);
            out.push(rel.map(|p| [p[0] + o[0], p[1] + o[1]]));
        }
    }
    Ok(out)
}

fn relative(w: &Window) -> Window {
    let o = w[OBS - 1];
    w.map(|p| [p[0] - o[0], p[1] - o[1]])
}

/// The teacher's predictions (world coordinates); `frame` is the one it was trained in.
pub fn predict_teacher(
    t: &GruTeacher,
    windows: &[Window],
    frame: Frame,
) -> crate::Result<Vec<Path12>> {
    predict_batched(windows, frame, |x| Ok(t.forward_features(x)?.0))
}

/// A float student's predictions (world coordinates); `frame` is the one it was trained in.
pub fn predict_student(
    m: &CnnModel,
    windows: &[Window],
    frame: Frame,
) -> crate::Result<Vec<Path12>> {
    predict_batched(windows, frame, |x| {
        m.forward(&x.reshape((x.dim(0)?, 1, 1, 2 * OBS))?)
    })
}

/// Constant-velocity predictions.
pub fn predict_cv(windows: &[Window]) -> Vec<Path12> {
    windows
        .iter()
        .map(|w| std::array::from_fn(|k| constant_velocity(&w[..OBS], k + 1)))
        .collect()
}

/// A model file's predictions on sprig-runtime, through the same predictor the device uses.
pub fn predict_runtime(onnx: &[u8], windows: &[Window]) -> crate::Result<Vec<Path12>> {
    let model = sprig_runtime::Model::parse(onnx)?;
    let mut arena = vec![0u8; model.arena_bytes()?];
    let mut it = sprig_runtime::Interpreter::new(&model, &mut arena)?;
    let mut p = ModelPredictor::new(&mut it, Decode::of(&model))?;
    let mut future = [Point::zeros(); PRED];
    windows
        .iter()
        .map(|w| {
            let obs: [Point; OBS] = std::array::from_fn(|i| Point::new(w[i][0], w[i][1]));
            p.predict(&obs, &mut future)?;
            Ok(future.map(|p| [p.x, p.y]))
        })
        .collect()
}

/// Mean ADE and FDE (m).
pub fn ade_fde(windows: &[Window], preds: &[Path12]) -> (f64, f64) {
    let n = windows.len().max(1) as f64;
    let (a, f) = windows
        .iter()
        .zip(preds)
        .map(|(w, p)| sprig_models::trajectory::ade_fde(w, p))
        .fold((0.0, 0.0), |(a, f), (x, y)| (a + x, f + y));
    (a / n, f / n)
}

/// Appends a `metadata_props` entry to a serialized ModelProto (a repeated field may follow
/// the others on the wire).
pub fn with_metadata(mut model: Vec<u8>, key: &str, value: &str) -> Vec<u8> {
    let mut entry = crate::pb::Msg::new();
    entry.str(1, key).str(2, value);
    let mut field = crate::pb::Msg::new();
    field.msg(14, &entry);
    model.extend_from_slice(&field.0);
    model
}

/// Int8 QDQ export of a student trained in `frame`, calibrated on `calib` windows, marked as
/// predicting residuals to constant velocity in that frame.
pub fn export_student_int8(m: &Trained, calib: &[Window], frame: Frame) -> crate::Result<Vec<u8>> {
    let mut images = Vec::with_capacity(calib.len() * 2 * OBS);
    for w in calib {
        images.extend_from_slice(&encode_in(w, frame, false).0);
    }
    let set = ImageSet {
        images,
        labels: vec![0; calib.len()],
        chw: (1, 1, 2 * OBS),
        classes: 1,
    };
    let acts = crate::quantize::calibrate(&m.model, &set, &Device::Cpu)?;
    let bytes = crate::export::export_int8(&m.model.spec, &m.model.weights()?, &acts);
    Ok(with_metadata(bytes, DECODE_KEY, frame.decode_key()))
}

/// Float32 export of a student with the same metadata.
pub fn export_student_f32(m: &Trained, frame: Frame) -> crate::Result<Vec<u8>> {
    let bytes = crate::export::export_f32(&m.model.spec, &m.model.weights()?);
    Ok(with_metadata(bytes, DECODE_KEY, frame.decode_key()))
}

//! Training on candle: seeded initialisation, AdamW with cosine decay, cross-entropy, and
//! Hinton knowledge distillation from a teacher.

use candle_core::{DType, Device, Tensor, D};
use candle_nn::{loss, ops, Optimizer, VarBuilder, VarMap};
use indicatif::{ProgressBar, ProgressStyle};
use sprig_models::arch::{ArchSpec, CnnModel};
use sprig_models::datasets::{shuffle, ImageSet, Rng};

/// Hinton KD: `α·CE + (1−α)·T²·KL(softmax(t/T) ‖ softmax(s/T))`.
#[derive(Debug, Clone, Copy)]
pub struct HintonKd {
    /// Weight of the hard-label cross-entropy.
    pub alpha: f64,
    /// Softening temperature.
    pub temperature: f64,
}

/// Training settings.
#[derive(Debug, Clone)]
pub struct TrainConfig {
    /// Passes over the training set.
    pub epochs: usize,
    /// Samples per step.
    pub batch: usize,
    /// Peak learning rate (cosine decay to 0).
    pub lr: f64,
    /// Decoupled weight decay.
    pub weight_decay: f64,
    /// Seed for initialisation and shuffling.
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
            weight_decay: 1e-4,
            seed: 0,
            progress: true,
            prune: None,
        }
    }
}

/// A trained model and its parameters.
pub struct Trained {
    /// The module.
    pub model: CnnModel,
    /// Its variables.
    pub vars: VarMap,
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

/// The KD loss term `T²·KL(p_t ‖ p_s)` averaged over the batch.
pub fn kd_loss(
    student_logits: &Tensor,
    teacher_logits: &Tensor,
    t: f64,
) -> candle_core::Result<Tensor> {
    let pt = ops::softmax(&(teacher_logits / t)?, D::Minus1)?;
    let log_pt = ops::log_softmax(&(teacher_logits / t)?, D::Minus1)?;
    let log_ps = ops::log_softmax(&(student_logits / t)?, D::Minus1)?;
    let kl = (pt * (log_pt - log_ps)?)?.sum(D::Minus1)?.mean_all()?;
    kl * (t * t)
}

/// Kaiming-uniform initialisation from our own seeded generator (candle's CPU RNG cannot be
/// seeded), so every run with the same seed trains the same model.
pub(crate) fn seeded_init(vars: &VarMap, seed: u64) -> candle_core::Result<()> {
    let data = vars.data().lock().expect("var map lock");
    let mut names: Vec<&String> = data.keys().collect();
    names.sort();
    let mut rng = Rng(seed ^ 0x5eed);
    for name in names {
        let var = &data[name];
        let shape = var.shape().clone();
        let dims = shape.dims();
        let n = shape.elem_count();
        let vals: Vec<f32> = if name.ends_with("bias") {
            vec![0.0; n]
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

fn batch_tensors(
    data: &ImageSet,
    idx: &[usize],
    dev: &Device,
) -> candle_core::Result<(Tensor, Tensor)> {
    let (c, h, w) = data.chw;
    let n = data.image_len();
    let mut xs = Vec::with_capacity(idx.len() * n);
    let mut ys = Vec::with_capacity(idx.len());
    for &i in idx {
        xs.extend_from_slice(data.image(i));
        ys.push(data.labels[i] as u32);
    }
    Ok((
        Tensor::from_vec(xs, (idx.len(), c, h, w), dev)?,
        Tensor::from_vec(ys, idx.len(), dev)?,
    ))
}

/// Trains `spec` on `data`, optionally distilling from `teacher`.
pub fn train(
    spec: &ArchSpec,
    data: &ImageSet,
    cfg: &TrainConfig,
    teacher: Option<(&CnnModel, HintonKd)>,
    label: &str,
) -> crate::Result<Trained> {
    let dev = Device::Cpu;
    let vars = VarMap::new();
    let model = CnnModel::new(spec, VarBuilder::from_varmap(&vars, DType::F32, &dev))?;
    seeded_init(&vars, cfg.seed)?;
    let mut opt = candle_nn::AdamW::new(
        vars.all_vars(),
        candle_nn::ParamsAdamW {
            lr: cfg.lr,
            weight_decay: cfg.weight_decay,
            ..Default::default()
        },
    )?;
    let mut pruner = cfg
        .prune
        .map(|(sched, scope)| crate::prune::Pruner::new(&vars, sched, scope));
    let steps_per_epoch = data.len().div_ceil(cfg.batch);
    let total = (steps_per_epoch * cfg.epochs) as f64;
    let pb = epoch_bar(cfg.epochs, cfg.progress, label);
    let mut idx: Vec<usize> = (0..data.len()).collect();
    let mut step = 0usize;
    let start = std::time::Instant::now();
    for epoch in 0..cfg.epochs {
        shuffle(
            &mut idx,
            cfg.seed.wrapping_mul(1000).wrapping_add(epoch as u64),
        );
        let (mut loss_sum, mut correct) = (0.0f64, 0usize);
        for chunk in idx.chunks(cfg.batch) {
            let lr = cfg.lr * 0.5 * (1.0 + (std::f64::consts::PI * step as f64 / total).cos());
            opt.set_learning_rate(lr);
            let (x, y) = batch_tensors(data, chunk, &dev)?;
            let logits = model.forward_features(&x)?.0;
            let ce = loss::cross_entropy(&logits, &y)?;
            let l = match teacher {
                Some((t, kd)) => {
                    let tl = t.forward_features(&x)?.0.detach();
                    ((ce * kd.alpha)?
                        + (kd_loss(&logits, &tl, kd.temperature)? * (1.0 - kd.alpha))?)?
                }
                None => ce,
            };
            opt.backward_step(&l)?;
            if let Some(p) = pruner.as_mut() {
                p.after_step(step)?;
            }
            loss_sum += l.to_scalar::<f32>()? as f64 * chunk.len() as f64;
            let pred = logits.argmax(D::Minus1)?.to_vec1::<u32>()?;
            correct += pred
                .iter()
                .zip(y.to_vec1::<u32>()?)
                .filter(|(a, b)| **a == *b)
                .count();
            step += 1;
        }
        let seen = data.len() * (epoch + 1);
        let sparsity = match &pruner {
            Some(p) => format!(" sparsity {:.0}%", 100.0 * p.sparsity()?),
            None => String::new(),
        };
        pb.set_message(format!(
            "loss {:.4} acc {:.1}% {:.0} img/s{sparsity}",
            loss_sum / data.len() as f64,
            100.0 * correct as f64 / data.len() as f64,
            seen as f64 / start.elapsed().as_secs_f64()
        ));
        pb.inc(1);
    }
    pb.finish();
    Ok(Trained { model, vars })
}

/// Top-1 accuracy of a candle model on `data` (float reference).
pub fn accuracy(model: &CnnModel, data: &ImageSet) -> crate::Result<f64> {
    let dev = Device::Cpu;
    let mut correct = 0usize;
    let idx: Vec<usize> = (0..data.len()).collect();
    for chunk in idx.chunks(256) {
        let (x, y) = batch_tensors(data, chunk, &dev)?;
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

    #[test]
    fn kd_loss_matches_hand_computed_value() {
        let dev = Device::Cpu;
        let s = Tensor::new(&[[1.0f32, 0.0]], &dev).unwrap();
        let t = Tensor::new(&[[0.0f32, 1.0]], &dev).unwrap();
        // T = 2: p_t = softmax([0, .5]), p_s = softmax([.5, 0]); KL = (p1-p0)·(0.5)·... computed below.
        let p0 = 1.0 / (1.0 + 0.5f64.exp());
        let p1 = 1.0 - p0;
        let kl = p0 * (p0 / p1).ln() + p1 * (p1 / p0).ln();
        let got = kd_loss(&s, &t, 2.0).unwrap().to_scalar::<f32>().unwrap() as f64;
        assert!(
            (got - 4.0 * kl).abs() < 1e-5,
            "got {got}, want {}",
            4.0 * kl
        );
    }
}

//! Optimizers and learning-rate schedules whose whole state can be written to a checkpoint and
//! read back, so a killed run resumes exactly where it stopped (candle's own optimizers keep
//! their moments private).

use candle_core::{Tensor, Var};
use candle_nn::VarMap;
use std::collections::HashMap;

/// Which update rule.
#[derive(Debug, Clone, Copy, PartialEq)]
pub enum OptimizerKind {
    /// SGD with heavy-ball momentum and L2 weight decay.
    Sgd {
        /// Momentum (0.9 is usual).
        momentum: f64,
    },
    /// AdamW (decoupled weight decay), β = (0.9, 0.999), ε = 1e-8.
    AdamW,
}

/// Learning rate as a function of progress.
#[derive(Debug, Clone, Copy, PartialEq)]
pub enum Schedule {
    /// Cosine decay from the peak to 0 over the run.
    Cosine,
    /// Multiply by `gamma` every `every_epochs` epochs.
    Step {
        /// Epochs between decays.
        every_epochs: usize,
        /// Decay factor.
        gamma: f64,
    },
}

impl Schedule {
    /// The rate at `step` of `total` steps (`steps_per_epoch` per epoch) for peak `lr`.
    pub fn lr(&self, lr: f64, step: usize, total: usize, steps_per_epoch: usize) -> f64 {
        match *self {
            Schedule::Cosine => {
                lr * 0.5 * (1.0 + (std::f64::consts::PI * step as f64 / total.max(1) as f64).cos())
            }
            Schedule::Step {
                every_epochs,
                gamma,
            } => {
                let epoch = step / steps_per_epoch.max(1);
                lr * gamma.powi((epoch / every_epochs.max(1)) as i32)
            }
        }
    }
}

/// An optimizer over every variable of a [`VarMap`], state keyed by variable name.
pub struct Optim {
    kind: OptimizerKind,
    weight_decay: f64,
    vars: Vec<(String, Var)>,
    /// First moment (momentum buffer for SGD), per variable.
    m: Vec<Tensor>,
    /// Second moment (AdamW only).
    v: Vec<Tensor>,
    t: usize,
}

const BETA1: f64 = 0.9;
const BETA2: f64 = 0.999;
const EPS: f64 = 1e-8;

impl Optim {
    /// Zero state for every variable in `vars`.
    pub fn new(vars: &VarMap, kind: OptimizerKind, weight_decay: f64) -> candle_core::Result<Self> {
        let data = vars.data().lock().expect("var map lock");
        let mut named: Vec<(String, Var)> =
            data.iter().map(|(n, v)| (n.clone(), v.clone())).collect();
        named.sort_by(|a, b| a.0.cmp(&b.0));
        let zeros = |v: &Var| v.as_tensor().zeros_like();
        let m = named
            .iter()
            .map(|(_, v)| zeros(v))
            .collect::<Result<_, _>>()?;
        let v = named
            .iter()
            .map(|(_, v)| zeros(v))
            .collect::<Result<_, _>>()?;
        Ok(Optim {
            kind,
            weight_decay,
            vars: named,
            m,
            v,
            t: 0,
        })
    }

    /// Back-propagates `loss` and applies one update at rate `lr`.
    pub fn backward_step(&mut self, loss: &Tensor, lr: f64) -> candle_core::Result<()> {
        let grads = loss.backward()?;
        self.t += 1;
        for (i, (_, var)) in self.vars.iter().enumerate() {
            let Some(g) = grads.get(var.as_tensor()) else {
                continue;
            };
            let theta = var.as_tensor();
            match self.kind {
                OptimizerKind::Sgd { momentum } => {
                    let g = (g + (theta * self.weight_decay)?)?;
                    let m = ((&self.m[i] * momentum)? + g)?;
                    var.set(&(theta - (&m * lr)?)?)?;
                    // Detached: a stored moment must not keep this step's graph alive.
                    self.m[i] = m.detach();
                }
                OptimizerKind::AdamW => {
                    let m = ((&self.m[i] * BETA1)? + (g * (1.0 - BETA1))?)?;
                    let v = ((&self.v[i] * BETA2)? + (g.sqr()? * (1.0 - BETA2))?)?;
                    let m_hat = (&m / (1.0 - BETA1.powi(self.t as i32)))?;
                    let v_hat = (&v / (1.0 - BETA2.powi(self.t as i32)))?;
                    let update = (m_hat / (v_hat.sqrt()? + EPS)?)?;
                    let decayed = (theta * (1.0 - lr * self.weight_decay))?;
                    var.set(&(decayed - (update * lr)?)?)?;
                    self.m[i] = m.detach();
                    self.v[i] = v.detach();
                }
            }
        }
        Ok(())
    }

    /// The state as named tensors (`opt.m.<var>`, `opt.v.<var>`) plus the step count.
    pub fn state(&self) -> (HashMap<String, Tensor>, usize) {
        let mut out = HashMap::new();
        for (i, (name, _)) in self.vars.iter().enumerate() {
            out.insert(format!("opt.m.{name}"), self.m[i].clone());
            out.insert(format!("opt.v.{name}"), self.v[i].clone());
        }
        (out, self.t)
    }

    /// Restores a state written by [`Optim::state`]; a missing or misshapen entry is an error.
    pub fn restore(&mut self, state: &HashMap<String, Tensor>, t: usize) -> crate::Result<()> {
        for (i, (name, var)) in self.vars.iter().enumerate() {
            for (key, slot) in [("m", &mut self.m[i]), ("v", &mut self.v[i])] {
                let k = format!("opt.{key}.{name}");
                let tensor = state.get(&k).ok_or_else(|| {
                    crate::Error::Invalid(format!("checkpoint has no optimizer state '{k}'"))
                })?;
                if tensor.shape() != var.shape() {
                    return Err(crate::Error::Invalid(format!(
                        "checkpoint '{k}' has shape {:?}, the model needs {:?}",
                        tensor.dims(),
                        var.dims()
                    )));
                }
                *slot = tensor.clone();
            }
        }
        self.t = t;
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use candle_core::{DType, Device};

    #[test]
    fn adamw_first_step_moves_by_lr_times_sign() {
        // With bias correction, the first AdamW step is lr·g/(|g| + ε) ≈ lr·sign(g), plus decay.
        let vars = VarMap::new();
        let dev = Device::Cpu;
        let x = vars
            .get((2,), "x", candle_nn::Init::Const(1.0), DType::F32, &dev)
            .unwrap();
        let mut opt = Optim::new(&vars, OptimizerKind::AdamW, 0.1).unwrap();
        let loss = (x.clone() * Tensor::new(&[3.0f32, -2.0], &dev).unwrap())
            .unwrap()
            .sum_all()
            .unwrap();
        opt.backward_step(&loss, 0.01).unwrap();
        let got = x.to_vec1::<f32>().unwrap();
        let decayed = 1.0 - 0.01 * 0.1;
        assert!((got[0] - (decayed - 0.01)).abs() < 1e-6, "{got:?}");
        assert!((got[1] - (decayed + 0.01)).abs() < 1e-6, "{got:?}");
    }

    #[test]
    fn sgd_momentum_accumulates() {
        let vars = VarMap::new();
        let dev = Device::Cpu;
        let x = vars
            .get((1,), "x", candle_nn::Init::Const(0.0), DType::F32, &dev)
            .unwrap();
        let mut opt = Optim::new(&vars, OptimizerKind::Sgd { momentum: 0.5 }, 0.0).unwrap();
        for _ in 0..2 {
            let loss = (x.clone() * 2.0).unwrap().sum_all().unwrap();
            opt.backward_step(&loss, 0.1).unwrap();
        }
        // m1 = 2, x1 = −0.2; m2 = 0.5·2 + 2 = 3, x2 = −0.2 − 0.3 = −0.5.
        assert!((x.to_vec1::<f32>().unwrap()[0] + 0.5).abs() < 1e-6);
    }

    #[test]
    fn schedules() {
        let c = Schedule::Cosine;
        assert_eq!(c.lr(1.0, 0, 100, 10), 1.0);
        assert!((c.lr(1.0, 50, 100, 10) - 0.5).abs() < 1e-12);
        let s = Schedule::Step {
            every_epochs: 2,
            gamma: 0.1,
        };
        assert_eq!(s.lr(1.0, 19, 100, 10), 1.0);
        assert!((s.lr(1.0, 20, 100, 10) - 0.1).abs() < 1e-12);
    }
}

//! Trajectory predictor architectures (8 observed → 12 predicted steps; input and target as in
//! [`crate::trajectory::encode`]).
//!
//! - [`GruTeacher`]: a GRU encoder over the observed steps (position and displacement per step)
//!   and an MLP decoder from its last hidden state to all 12 future steps at once. Trained and
//!   run in candle only (it is the teacher).
//! - [`student_mlp`]: a small MLP as an [`ArchSpec`], so the classifier path's calibration,
//!   int8 QDQ export and runtime evaluation apply to it unchanged.

use crate::arch::{ArchSpec, LayerSpec};
use crate::trajectory::{OBS, PRED};
use candle_core::{Module, Result, Tensor, D};
use candle_nn::rnn::{GRUConfig, GRU, RNN};
use candle_nn::{Linear, VarBuilder};

/// GRU encoder + MLP decoder.
pub struct GruTeacher {
    gru: GRU,
    dec1: Linear,
    dec2: Linear,
}

impl GruTeacher {
    /// A teacher with `hidden` units in the GRU and the decoder.
    pub fn new(hidden: usize, vb: VarBuilder) -> Result<Self> {
        Ok(GruTeacher {
            gru: candle_nn::rnn::gru(4, hidden, GRUConfig::default(), vb.pp("gru"))?,
            dec1: candle_nn::linear(hidden, hidden, vb.pp("dec1"))?,
            dec2: candle_nn::linear(hidden, 2 * PRED, vb.pp("dec2"))?,
        })
    }

    /// `x`: `[B, 16]` → (prediction `[B, 24]`, decoder hidden features `[B, hidden]` before
    /// the ReLU, the target of hidden-state distillation).
    pub fn forward_features(&self, x: &Tensor) -> Result<(Tensor, Tensor)> {
        let b = x.dim(0)?;
        let pos = x.reshape((b, OBS, 2))?;
        let prev = Tensor::cat(&[pos.narrow(1, 0, 1)?, pos.narrow(1, 0, OBS - 1)?], 1)?;
        let feats = Tensor::cat(&[&pos, &(&pos - &prev)?], D::Minus1)?;
        let states = self.gru.seq(&feats)?;
        let h = states.last().expect("OBS > 0").h().clone();
        let z = self.dec1.forward(&h)?;
        Ok((self.dec2.forward(&z.relu()?)?, z))
    }
}

/// The student MLP: 16 → `hidden` → `hidden` → 24 (ReLU between), input shaped `[N, 1, 1, 16]`.
pub fn student_mlp(name: &str, hidden: usize) -> ArchSpec {
    ArchSpec {
        name: name.into(),
        input: (1, 1, 2 * OBS),
        layers: vec![
            LayerSpec::Flatten,
            LayerSpec::Dense {
                out: hidden,
                relu: true,
            },
            LayerSpec::Dense {
                out: hidden,
                relu: true,
            },
            LayerSpec::Dense {
                out: 2 * PRED,
                relu: false,
            },
        ],
    }
}

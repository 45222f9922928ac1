//! Trajectory predictors: 8 observed positions (0.4 s apart) in, 12 future positions out, in
//! world metres. The constant-velocity baseline and any ONNX model on the runtime share one trait.

use super::{Point, OBS_STEPS, PRED_STEPS};
use crate::error::{Error, Result};
use crate::interp::InterpreterWith;
use crate::onnx::Model;
use crate::tensor::DType;

/// Metadata key sprig's exporter sets on trajectory models (see [`Decode`]).
pub const DECODE_KEY: &str = "sprig.trajectory.output";

/// Predicts future positions from observed ones.
pub trait Predictor {
    /// `observed` oldest first; writes `future[i]` = position `i + 1` steps ahead.
    fn predict(
        &mut self,
        observed: &[Point; OBS_STEPS],
        future: &mut [Point; PRED_STEPS],
    ) -> Result<()>;
}

/// A borrowed predictor predicts too (so one model can serve several pipelines in turn).
impl<P: Predictor + ?Sized> Predictor for &mut P {
    fn predict(
        &mut self,
        observed: &[Point; OBS_STEPS],
        future: &mut [Point; PRED_STEPS],
    ) -> Result<()> {
        (**self).predict(observed, future)
    }
}

/// Constant velocity from the last observed step: a strong baseline on ETH/UCY
/// (Schöller et al. 2020).
#[derive(Debug, Clone, Copy, Default)]
pub struct ConstantVelocity;

fn extrapolate(observed: &[Point; OBS_STEPS], k: usize) -> Point {
    let last = observed[OBS_STEPS - 1];
    last + (last - observed[OBS_STEPS - 2]) * k as f32
}

impl Predictor for ConstantVelocity {
    fn predict(
        &mut self,
        observed: &[Point; OBS_STEPS],
        future: &mut [Point; PRED_STEPS],
    ) -> Result<()> {
        for (i, f) in future.iter_mut().enumerate() {
            *f = extrapolate(observed, i + 1);
        }
        Ok(())
    }
}

/// What a trajectory model's output means.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Decode {
    /// Future positions relative to the last observed one (the plain convention).
    Offsets,
    /// Corrections to the constant-velocity extrapolation (metadata value `residual-cv`):
    /// the model learns only what constant velocity gets wrong, which keeps its int8 output range
    /// small.
    ResidualToConstantVelocity,
}

impl Decode {
    /// The convention recorded in the model's metadata (default [`Decode::Offsets`]).
    pub fn of(model: &Model<'_>) -> Self {
        match model.metadata(DECODE_KEY) {
            Some("residual-cv") => Decode::ResidualToConstantVelocity,
            _ => Decode::Offsets,
        }
    }
}

/// A trajectory model on the runtime. Input: `OBS_STEPS × 2` f32 values, the observed positions
/// relative to the last observed one (any shape with 16 elements); output: `PRED_STEPS × 2` f32.
/// It borrows the interpreter, so on an MCU the interpreter's tables stay where they were
/// planned instead of being moved (copied) into the pipeline.
pub struct ModelPredictor<'i, 'm, 'a, const T: usize, const N: usize> {
    it: &'i mut InterpreterWith<'m, 'a, T, N>,
    decode: Decode,
}

impl<'i, 'm, 'a, const T: usize, const N: usize> ModelPredictor<'i, 'm, 'a, T, N> {
    /// Wraps a planned interpreter after checking its input and output sizes.
    pub fn new(it: &'i mut InterpreterWith<'m, 'a, T, N>, decode: Decode) -> Result<Self> {
        let (name, dt, shape) = it.input_info(0)?;
        if dt != DType::F32 || shape.numel() != 2 * OBS_STEPS {
            return Err(Error::ShapeMismatch {
                node: crate::error::Name::new(name),
                what: "a trajectory model takes 16 f32 values (8 observed x, y)",
            });
        }
        let out = it.output(0)?;
        if out.as_f32().map(<[f32]>::len) != Some(2 * PRED_STEPS) {
            return Err(Error::ShapeMismatch {
                node: crate::error::Name::new("output 0"),
                what: "a trajectory model returns 24 f32 values (12 predicted x, y)",
            });
        }
        Ok(ModelPredictor { it, decode })
    }
}

impl<const T: usize, const N: usize> Predictor for ModelPredictor<'_, '_, '_, T, N> {
    fn predict(
        &mut self,
        observed: &[Point; OBS_STEPS],
        future: &mut [Point; PRED_STEPS],
    ) -> Result<()> {
        let last = observed[OBS_STEPS - 1];
        let mut x = [0f32; 2 * OBS_STEPS];
        for (i, p) in observed.iter().enumerate() {
            x[2 * i] = p.x - last.x;
            x[2 * i + 1] = p.y - last.y;
        }
        self.it.set_input_f32(0, &x)?;
        self.it.invoke()?;
        let out = self.it.output(0)?;
        let y = out.as_f32().ok_or(Error::BadIo {
            what: "trajectory output is not f32",
        })?;
        for (i, f) in future.iter_mut().enumerate() {
            let d = Point::new(y[2 * i], y[2 * i + 1]);
            *f = match self.decode {
                Decode::Offsets => last + d,
                Decode::ResidualToConstantVelocity => extrapolate(observed, i + 1) + d,
            };
        }
        Ok(())
    }
}

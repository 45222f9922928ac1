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
    /// The same corrections in the heading frame (metadata value `residual-cv-heading`): input
    /// and output are rotated so the last observed step points along +x, which makes the model
    /// orientation-free by construction. A pedestrian whose last step is shorter than
    /// [`MIN_HEADING_STEP_M`] keeps the world frame.
    ResidualToConstantVelocityHeading,
}

/// Below this last-step length (m) the heading is undefined (as in `sprig_models::trajectory`).
pub const MIN_HEADING_STEP_M: f32 = 1e-3;

/// `(cos, sin)` of the rotation from world axes into the heading frame: by division, not
/// trigonometry, so it matches the training side's inputs bit for bit.
fn heading_rotation(observed: &[Point; OBS_STEPS]) -> (f32, f32) {
    let v = observed[OBS_STEPS - 1] - observed[OBS_STEPS - 2];
    let len = crate::kernels::sqrt(v.x * v.x + v.y * v.y);
    if len < MIN_HEADING_STEP_M {
        (1.0, 0.0)
    } else {
        (v.x / len, -v.y / len)
    }
}

impl Decode {
    /// The convention recorded in the model's metadata (default [`Decode::Offsets`]).
    pub fn of(model: &Model<'_>) -> Self {
        match model.metadata(DECODE_KEY) {
            Some("residual-cv") => Decode::ResidualToConstantVelocity,
            Some("residual-cv-heading") => Decode::ResidualToConstantVelocityHeading,
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
        let heading = self.decode == Decode::ResidualToConstantVelocityHeading;
        let (c, s) = if heading {
            heading_rotation(observed)
        } else {
            (1.0, 0.0)
        };
        let mut x = [0f32; 2 * OBS_STEPS];
        for (i, p) in observed.iter().enumerate() {
            let (dx, dy) = (p.x - last.x, p.y - last.y);
            (x[2 * i], x[2 * i + 1]) = if heading {
                (c * dx - s * dy, s * dx + c * dy)
            } else {
                (dx, dy)
            };
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
                Decode::ResidualToConstantVelocityHeading => {
                    // Back from the heading frame: the inverse rotation.
                    let back = Point::new(c * d.x + s * d.y, c * d.y - s * d.x);
                    extrapolate(observed, i + 1) + back
                }
            };
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn heading_rotation_turns_the_last_step_onto_x_and_keeps_still_pedestrians_in_world_axes() {
        let mut obs = [Point::zeros(); OBS_STEPS];
        for (i, p) in obs.iter_mut().enumerate() {
            *p = Point::new(2.0 - 0.3 * i as f32, 1.0 + 0.4 * i as f32);
        }
        let (c, s) = heading_rotation(&obs);
        let v = obs[OBS_STEPS - 1] - obs[OBS_STEPS - 2];
        // The rotation (c, s) applied to the last step gives (|v|, 0).
        let turned = (c * v.x - s * v.y, s * v.x + c * v.y);
        assert!(
            (turned.0 - 0.5).abs() < 1e-6 && turned.1.abs() < 1e-6,
            "{turned:?}"
        );
        let still = [Point::new(3.0, 4.0); OBS_STEPS];
        assert_eq!(heading_rotation(&still), (1.0, 0.0));
    }
}

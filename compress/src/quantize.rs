//! Post-training quantization: per-channel symmetric weights, per-tensor asymmetric activations
//! calibrated from min/max over a calibration set (DESIGN §3).

use candle_core::{Device, Tensor};
use sprig_models::arch::{CnnModel, ForwardHooks};
use sprig_models::datasets::ImageSet;

/// Per-tensor activation quantization (int8, asymmetric).
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct ActQuant {
    /// Scale.
    pub scale: f32,
    /// Zero point.
    pub zero_point: i8,
}

impl ActQuant {
    /// Covers [min, max] (widened to include 0) with 256 levels.
    pub fn from_range(min: f32, max: f32) -> Self {
        let (min, max) = (min.min(0.0), max.max(0.0));
        let scale = ((max - min) / 255.0).max(1e-8);
        let zp = (-128.0 - min / scale).round().clamp(-128.0, 127.0) as i8;
        ActQuant {
            scale,
            zero_point: zp,
        }
    }

    /// Zero point 0 covering ±max(|min|, |max|) with 255 levels (TensorRT's convention).
    pub fn symmetric(min: f32, max: f32) -> Self {
        let m = min.abs().max(max.abs());
        ActQuant {
            scale: (m / 127.0).max(1e-8),
            zero_point: 0,
        }
    }
}

/// Int8 symmetric per-output-channel weights in [-127, 127].
#[derive(Debug, Clone)]
pub struct WeightQuant {
    /// Quantized values, same layout as the float weights.
    pub values: Vec<i8>,
    /// One scale per output channel.
    pub scales: Vec<f32>,
}

impl WeightQuant {
    /// Quantizes `w` whose first axis has `oc` channels.
    pub fn per_channel(w: &[f32], oc: usize) -> Self {
        let per = w.len() / oc.max(1);
        let mut values = Vec::with_capacity(w.len());
        let mut scales = Vec::with_capacity(oc);
        for c in 0..oc {
            let row = &w[c * per..(c + 1) * per];
            let m = row.iter().fold(0f32, |a, &v| a.max(v.abs()));
            let s = if m > 0.0 { m / 127.0 } else { 1.0 };
            scales.push(s);
            values.extend(
                row.iter()
                    .map(|&v| (v / s).round().clamp(-127.0, 127.0) as i8),
            );
        }
        WeightQuant { values, scales }
    }
}

/// Activation ranges from `calib`: the input and the output (after activation) of every weighted
/// layer, as [`crate::export::export_int8`] expects them.
pub fn calibrate(model: &CnnModel, calib: &ImageSet, dev: &Device) -> crate::Result<Vec<ActQuant>> {
    Ok(calibrate_ranges(model, calib, dev)?
        .into_iter()
        .map(|(lo, hi)| ActQuant::from_range(lo, hi))
        .collect())
}

/// Records each quantization point's min and max during a forward pass.
struct RangeRecorder(Vec<(f32, f32)>);

impl ForwardHooks for RangeRecorder {
    fn activation(&mut self, p: usize, a: Tensor) -> candle_core::Result<Tensor> {
        let (lo, hi) = (
            a.min_all()?.to_scalar::<f32>()?,
            a.max_all()?.to_scalar::<f32>()?,
        );
        if self.0.len() <= p {
            self.0.resize(p + 1, (f32::MAX, f32::MIN));
        }
        let r = &mut self.0[p];
        *r = (r.0.min(lo), r.1.max(hi));
        Ok(a)
    }
}

/// Per-point (min, max) activation ranges over `calib`, in `ArchSpec::quant_points` order
/// (the input, then every quantization point; ranges after a ReLU start at 0).
pub fn calibrate_ranges(
    model: &CnnModel,
    calib: &ImageSet,
    dev: &Device,
) -> crate::Result<Vec<(f32, f32)>> {
    let (c, h, w) = calib.chw;
    let mut rec = RangeRecorder(Vec::new());
    for chunk in calib.images.chunks(256 * c * h * w) {
        let x = Tensor::from_slice(chunk, (chunk.len() / (c * h * w), c, h, w), dev)?;
        model.forward_with(&x, &mut rec)?;
    }
    let relu = model.spec.quant_points();
    Ok(rec
        .0
        .into_iter()
        .zip(relu)
        .map(|((lo, hi), after_relu)| (if after_relu { 0.0 } else { lo }, hi))
        .collect())
}

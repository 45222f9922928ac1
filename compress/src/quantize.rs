//! Post-training quantization: per-channel symmetric weights, per-tensor asymmetric activations
//! calibrated from min/max over a calibration set (DESIGN §3).

use candle_core::{Device, Tensor};
use sprig_models::arch::{CnnModel, LayerSpec};
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

/// Per-point (min, max) activation ranges over `calib`, in export order (see [`calibrate`]).
pub fn calibrate_ranges(
    model: &CnnModel,
    calib: &ImageSet,
    dev: &Device,
) -> crate::Result<Vec<(f32, f32)>> {
    calibrate_impl(model, calib, dev)
}

/// Activation ranges from `calib`: the input and the output (after activation) of every weighted
/// layer, as [`crate::export::export_int8`] expects them.
pub fn calibrate(model: &CnnModel, calib: &ImageSet, dev: &Device) -> crate::Result<Vec<ActQuant>> {
    Ok(calibrate_impl(model, calib, dev)?
        .into_iter()
        .map(|(lo, hi)| ActQuant::from_range(lo, hi))
        .collect())
}

fn calibrate_impl(
    model: &CnnModel,
    calib: &ImageSet,
    dev: &Device,
) -> crate::Result<Vec<(f32, f32)>> {
    let (c, h, w) = calib.chw;
    let x = Tensor::from_slice(&calib.images, (calib.len(), c, h, w), dev)?;
    let (_, feats) = model.forward_features(&x)?;
    let mut out = Vec::new();
    let (imin, imax) = calib
        .images
        .iter()
        .fold((f32::MAX, f32::MIN), |(a, b), &v| (a.min(v), b.max(v)));
    out.push((imin, imax));
    let relus: Vec<bool> = model
        .spec
        .layers
        .iter()
        .filter_map(|l| match *l {
            LayerSpec::Conv { relu, .. } | LayerSpec::Dense { relu, .. } => Some(relu),
            _ => None,
        })
        .collect();
    for (f, relu) in feats.iter().zip(relus) {
        let v = f.flatten_all()?.to_vec1::<f32>()?;
        let (mut lo, hi) = v
            .iter()
            .fold((f32::MAX, f32::MIN), |(a, b), &x| (a.min(x), b.max(x)));
        if relu {
            lo = 0.0;
        }
        out.push((lo, hi));
    }
    Ok(out)
}

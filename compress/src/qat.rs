//! Quantization-aware training: fake quantization inserted through the model's
//! [`ForwardHooks`] with a straight-through estimator — weights int8 symmetric per output
//! channel, activations int8 per tensor at exactly the points the int8 export quantizes, with
//! EMA min/max observers that can be frozen. The ranges the observers end with are the ones the
//! exported QDQ file uses, so sprig-runtime reproduces the fake-quant model up to rounding.

use crate::quantize::ActQuant;
use candle_core::{Result, Tensor};
use sprig_models::arch::{ArchSpec, ForwardHooks};

/// Running min/max of one activation.
#[derive(Debug, Clone, Copy, serde::Serialize, serde::Deserialize)]
struct Observer {
    min: f32,
    max: f32,
    seen: bool,
}

/// The fake-quantization state of one model.
#[derive(Debug, Clone, serde::Serialize, serde::Deserialize)]
pub struct FakeQuant {
    observers: Vec<Observer>,
    /// Whether each quantization point follows a ReLU (its range then starts at 0).
    after_relu: Vec<bool>,
    /// EMA factor of the observers (new = m·old + (1 − m)·batch).
    pub momentum: f32,
    /// Observers update while true; freeze them for the last fine-tuning steps.
    pub observing: bool,
    /// Zero point 0 on every activation (what TensorRT expects).
    pub symmetric: bool,
}

impl FakeQuant {
    /// Unobserved state for `spec`'s quantization points.
    pub fn new(spec: &ArchSpec, symmetric: bool) -> Self {
        let after_relu = spec.quant_points();
        FakeQuant {
            observers: vec![
                Observer {
                    min: 0.0,
                    max: 0.0,
                    seen: false
                };
                after_relu.len()
            ],
            after_relu,
            momentum: 0.99,
            observing: true,
            symmetric,
        }
    }

    /// Seeds every observer from calibration ranges (as post-training quantization computes
    /// them), so fine-tuning starts from the PTQ model.
    pub fn seed_ranges(&mut self, ranges: &[(f32, f32)]) {
        for (o, &(lo, hi)) in self.observers.iter_mut().zip(ranges) {
            *o = Observer {
                min: lo,
                max: hi,
                seen: true,
            };
        }
    }

    /// The activation quantization at every point, in export order.
    pub fn act_quants(&self) -> Vec<ActQuant> {
        (0..self.observers.len()).map(|p| self.quant(p)).collect()
    }

    fn quant(&self, p: usize) -> ActQuant {
        let o = self.observers[p];
        let lo = if self.after_relu[p] { 0.0 } else { o.min };
        if self.symmetric {
            ActQuant::symmetric(lo, o.max)
        } else {
            ActQuant::from_range(lo, o.max)
        }
    }
}

/// `x + (q(x) − x).detach()`: forward the quantized value, backward the identity.
fn straight_through(x: &Tensor, q: &Tensor) -> Result<Tensor> {
    x + (q - x)?.detach()
}

/// Int8 symmetric per-output-channel fake quantization of `w` (axis 0), as
/// [`crate::quantize::WeightQuant::per_channel`] quantizes for export.
pub fn fake_quant_weight(w: &Tensor) -> Result<Tensor> {
    let oc = w.dim(0)?;
    let flat = w.detach().reshape((oc, ()))?;
    let max = flat.abs()?.max_keepdim(1)?;
    // All-zero (pruned) channels: scale 1, so they stay exactly zero.
    let scale = (max.eq(0.0)?.where_cond(&max.ones_like()?, &(&max / 127.0)?))?;
    let q = flat
        .broadcast_div(&scale)?
        .round()?
        .clamp(-127f32, 127f32)?
        .broadcast_mul(&scale)?
        .reshape(w.shape())?;
    straight_through(w, &q)
}

impl ForwardHooks for FakeQuant {
    fn weight(&mut self, _j: usize, w: &Tensor) -> Result<Tensor> {
        fake_quant_weight(w)
    }

    fn activation(&mut self, p: usize, a: Tensor) -> Result<Tensor> {
        if self.observing {
            let lo = a.min_all()?.to_scalar::<f32>()?;
            let hi = a.max_all()?.to_scalar::<f32>()?;
            let o = &mut self.observers[p];
            if o.seen {
                let m = self.momentum;
                o.min = m * o.min + (1.0 - m) * lo;
                o.max = m * o.max + (1.0 - m) * hi;
            } else {
                *o = Observer {
                    min: lo,
                    max: hi,
                    seen: true,
                };
            }
        }
        let q = self.quant(p);
        let (s, z) = (q.scale as f64, q.zero_point as f64);
        let deq = ((a.affine(1.0 / s, z)?.round()?.clamp(-128f32, 127f32)? - z)? * s)?;
        straight_through(&a, &deq)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use candle_core::Device;

    #[test]
    fn weight_fake_quant_matches_export_quantization() {
        let dev = Device::Cpu;
        let w: Vec<f32> = (0..24)
            .map(|i| ((i * 37 % 11) as f32 - 5.0) * 0.013)
            .collect();
        let t = Tensor::from_vec(w.clone(), (3, 8), &dev).unwrap();
        let got = fake_quant_weight(&t)
            .unwrap()
            .flatten_all()
            .unwrap()
            .to_vec1::<f32>()
            .unwrap();
        let wq = crate::quantize::WeightQuant::per_channel(&w, 3);
        for (i, g) in got.iter().enumerate() {
            let want = wq.values[i] as f32 * wq.scales[i / 8];
            assert!((g - want).abs() < 1e-7, "{i}: {g} vs {want}");
        }
    }

    #[test]
    fn gradient_passes_straight_through() {
        let dev = Device::Cpu;
        let w = candle_core::Var::from_vec(vec![0.3f32, -0.7, 0.05, 0.9], (2, 2), &dev).unwrap();
        let loss = (fake_quant_weight(w.as_tensor()).unwrap() * 2.0)
            .unwrap()
            .sum_all()
            .unwrap();
        let g = loss.backward().unwrap();
        let gw = g.get(w.as_tensor()).unwrap().flatten_all().unwrap();
        assert_eq!(gw.to_vec1::<f32>().unwrap(), vec![2.0; 4]);
    }

    #[test]
    fn activations_snap_to_the_export_grid() {
        let spec = ArchSpec::small_cnn("t", (1, 8, 8), 2, 2, None, 3);
        let mut fq = FakeQuant::new(&spec, false);
        let dev = Device::Cpu;
        let a = Tensor::new(&[-1.0f32, -0.31, 0.0, 0.77, 2.0], &dev).unwrap();
        let out = fq.activation(0, a).unwrap().to_vec1::<f32>().unwrap();
        let q = ActQuant::from_range(-1.0, 2.0);
        for v in out {
            let k = v / q.scale + q.zero_point as f32;
            assert!((k - k.round()).abs() < 1e-3, "{v} is not on the grid");
        }
        fq.observing = false;
        let wide = Tensor::new(&[10.0f32], &dev).unwrap();
        let clipped = fq.activation(0, wide).unwrap().to_vec1::<f32>().unwrap()[0];
        assert!(
            (clipped - 2.0).abs() < q.scale,
            "frozen range clips: {clipped}"
        );
    }
}

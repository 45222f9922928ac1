//! Quantization-aware training: fake quantization inserted through the model's
//! [`ForwardHooks`] with a straight-through estimator — weights int8 symmetric per output
//! channel, activations int8 per tensor at exactly the points the int8 export quantizes, with
//! EMA min/max observers that can be frozen. The ranges the observers end with are the ones the
//! exported QDQ file uses, so sprig-runtime reproduces the fake-quant model up to rounding.
//!
//! Optionally the activation scales are learned instead (LSQ, Esser et al., ICLR 2020): each is
//! a model variable initialised from the calibrated range and trained through the quantizer,
//! whose gradient with respect to the scale is round(x/s) − x/s inside the range and the clip
//! level outside it, scaled by 1/√(N·Q_P) (N activations per sample, Q_P = 127).

use crate::quantize::ActQuant;
use candle_core::{DType, Device, Result, Tensor};
use candle_nn::{Init, VarMap};
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
    /// Learned step sizes (LSQ) instead of observed ranges.
    #[serde(default)]
    pub lsq: bool,
    /// LSQ: the zero points, fixed where calibration put them.
    #[serde(default)]
    lsq_zero_points: Vec<i8>,
    /// LSQ: the learned scales, variables `lsq.act<p>` of the model (see
    /// [`FakeQuant::attach_lsq`]).
    #[serde(skip)]
    lsq_scales: Vec<Tensor>,
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
            lsq: false,
            lsq_zero_points: Vec::new(),
            lsq_scales: Vec::new(),
        }
    }

    /// Turns on learned step sizes: one scale variable per quantization point in `vars`
    /// (created from the current ranges, or kept when `vars` already has it — a resumed run),
    /// which the optimizer then trains with the model. Call after seeding the ranges.
    pub fn attach_lsq(&mut self, vars: &VarMap) -> Result<()> {
        if let Some(p) = self.observers.iter().position(|o| !o.seen) {
            candle_core::bail!(
                "learned step sizes start from calibrated ranges, but quantization point {p} has none"
            )
        }
        self.lsq = true;
        self.lsq_scales.clear();
        let n = self.observers.len();
        if self.lsq_zero_points.len() != n {
            self.lsq_zero_points = (0..n).map(|p| self.quant(p).zero_point).collect();
        }
        for p in 0..n {
            let init = Init::Const(self.quant(p).scale as f64);
            let s = vars.get((), &format!("lsq.act{p}"), init, DType::F32, &Device::Cpu)?;
            self.lsq_scales.push(s);
        }
        Ok(())
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
        if let Some(s) = self.lsq_scales.get(p) {
            let scale = s.to_scalar::<f32>().map(f32::abs).unwrap_or(1.0).max(1e-8);
            return ActQuant {
                scale,
                zero_point: self.lsq_zero_points[p],
            };
        }
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

/// LSQ fake quantization of `a` with the learned scale `s` and zero point `z`: the value is
/// `(clamp(round(a/s) + z, −128, 127) − z)·s`; the gradient reaches `a` straight through inside
/// the range and `s` as LSQ prescribes.
fn lsq_fake_quant(a: &Tensor, s: &Tensor, z: i8) -> Result<Tensor> {
    let per_sample = if a.rank() > 1 {
        a.elem_count() / a.dim(0)?.max(1)
    } else {
        a.elem_count()
    };
    let g = 1.0 / ((per_sample.max(1) * 127) as f64).sqrt();
    // Same value as s; gradient scaled by g.
    let sg = (((s * g)? - (s * g)?.detach())? + s.detach())?;
    let v = a.broadcast_div(&sg)?;
    let v = (&v + (v.round()? - &v)?.detach())?;
    let z = z as f64;
    let q = (v + z)?.clamp(-128f32, 127f32)?;
    (q - z)?.broadcast_mul(&sg)
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
        if let Some(s) = self.lsq_scales.get(p) {
            return lsq_fake_quant(&a, s, self.lsq_zero_points[p]);
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

    /// The LSQ scale gradient: g·Σ(round(x/s) − x/s) inside the range, g·(clip level − z)
    /// outside; the input gradient passes inside the range only.
    #[test]
    fn lsq_gradients_follow_the_paper() {
        let dev = Device::Cpu;
        let s = candle_core::Var::new(0.1f32, &dev).unwrap();
        let x = candle_core::Var::new(&[0.234f32, -0.051, 13.0, -0.3], &dev).unwrap();
        let z = 3i8;
        let y = lsq_fake_quant(x.as_tensor(), s.as_tensor(), z).unwrap();
        let yv = y.to_vec1::<f32>().unwrap();
        // round(2.34) = 2 → 0.2; round(−0.51) = −1 → −0.1; 130 + 3 clips to 127 → 12.4.
        for (got, want) in yv.iter().zip([0.2f32, -0.1, 12.4, -0.3]) {
            assert!((got - want).abs() < 1e-5, "{got} vs {want}");
        }
        let grads = y.sum_all().unwrap().backward().unwrap();
        let g = 1.0 / (4.0f64 * 127.0).sqrt();
        let want_s = g * ((2.0 - 2.34) + (-1.0 + 0.51) + (127.0 - 3.0) + (-3.0 + 3.0));
        let got_s = grads
            .get(s.as_tensor())
            .unwrap()
            .to_scalar::<f32>()
            .unwrap();
        assert!((got_s as f64 - want_s).abs() < 1e-4, "{got_s} vs {want_s}");
        let gx = grads.get(x.as_tensor()).unwrap().to_vec1::<f32>().unwrap();
        assert_eq!(gx, vec![1.0, 1.0, 0.0, 1.0]);
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

//! Batch normalisation in training mode over N×C×H×W (statistics per channel over N·H·W), as one
//! forward pass and one fused backward pass instead of candle's transposes and a dozen
//! element-wise ops.
//!
//! Backward, with x̂ = (x − μ)/σ, M = N·H·W:
//! dβ = Σ dy, dγ = Σ dy·x̂, dx = γ/(σ·M) · (M·dy − dβ − x̂·dγ).

use super::{f32_slice, par_chunks_mut, par_ranges};
use candle_core::{bail, CpuStorage, CustomOp1, CustomOp3, Layout, Result, Shape, Tensor, Var};

/// N, C, H·W of an N×C×H×W (or N×C) layout.
fn dims(l: &Layout) -> Result<(usize, usize, usize)> {
    match *l.dims() {
        [n, c] => Ok((n, c, 1)),
        [n, c, h, w] => Ok((n, c, h * w)),
        ref d => bail!("sprig batch_norm: expected an N×C or N×C×H×W tensor, got {d:?}"),
    }
}

/// Per-channel sums over N·H·W of `f(x)` for two element functions at once: each plane summed
/// in f32 (vectorised), the planes accumulated in f64.
fn channel_sums(
    n: usize,
    c: usize,
    f: impl Fn(usize, usize) -> (f32, f32) + Sync,
) -> Vec<(f64, f64)> {
    par_ranges(c, c, |r| {
        let ch = r.start;
        (0..n).fold((0f64, 0f64), |(a, b), i| {
            let (pa, pb) = f(i, ch);
            (a + pa as f64, b + pb as f64)
        })
    })
}

/// Σ(x − k) and Σ(x − k)² of one plane. Shifting by a value `k` near the mean keeps the
/// one-pass variance E[(x−k)²] − E[x−k]² from cancelling when the mean is large.
fn plane_moments(p: &[f32], k: f32) -> (f32, f32) {
    // Eight lanes let the compiler vectorise the reduction.
    let (mut s, mut q) = ([0f32; 8], [0f32; 8]);
    let mut it = p.chunks_exact(8);
    for ch in &mut it {
        for l in 0..8 {
            let v = ch[l] - k;
            s[l] += v;
            q[l] += v * v;
        }
    }
    let (mut s, mut q) = (s.iter().sum::<f32>(), q.iter().sum::<f32>());
    for &v in it.remainder() {
        s += v - k;
        q += (v - k) * (v - k);
    }
    (s, q)
}

/// Σdy and Σdy·(x − k) of one plane.
fn plane_grad_sums(x: &[f32], dy: &[f32], k: f32) -> (f32, f32) {
    let (mut s, mut q) = ([0f32; 8], [0f32; 8]);
    let (mut xi, mut gi) = (x.chunks_exact(8), dy.chunks_exact(8));
    for (xc, gc) in (&mut xi).zip(&mut gi) {
        for l in 0..8 {
            s[l] += gc[l];
            q[l] += gc[l] * (xc[l] - k);
        }
    }
    let (mut s, mut q) = (s.iter().sum::<f32>(), q.iter().sum::<f32>());
    for (&xv, &g) in xi.remainder().iter().zip(gi.remainder()) {
        s += g;
        q += g * (xv - k);
    }
    (s, q)
}

/// Each channel's first value: the shift for [`plane_moments`] and [`plane_grad_sums`].
fn shifts(x: &[f32], c: usize, hw: usize) -> Vec<f32> {
    (0..c)
        .map(|ch| x.get(ch * hw).copied().unwrap_or(0.0))
        .collect()
}

/// Per-channel mean and biased variance.
fn stats(x: &[f32], n: usize, c: usize, hw: usize) -> Vec<(f64, f64)> {
    let m = (n * hw) as f64;
    let k = shifts(x, c, hw);
    channel_sums(n, c, |i, ch| {
        plane_moments(&x[(i * c + ch) * hw..(i * c + ch + 1) * hw], k[ch])
    })
    .into_iter()
    .zip(&k)
    .map(|((s, q), &k)| {
        let shifted_mean = s / m;
        (
            k as f64 + shifted_mean,
            (q / m - shifted_mean * shifted_mean).max(0.0),
        )
    })
    .collect()
}

/// The batch statistics as a 2×C tensor (mean row, biased variance row).
struct BnStats;

/// y = γ·(x − μ)/√(σ² + ε) + β with batch statistics; inputs (x, γ, β).
struct BnTrain {
    eps: f64,
}

/// Gradients packed in one vector: dx (N·C·H·W), dγ (C), dβ (C); inputs (x, γ, dy).
struct BnTrainGrad {
    eps: f64,
}

impl CustomOp1 for BnStats {
    fn name(&self) -> &'static str {
        "sprig-batch-norm-stats"
    }
    fn cpu_fwd(&self, s: &CpuStorage, l: &Layout) -> Result<(CpuStorage, Shape)> {
        let (n, c, hw) = dims(l)?;
        let st = stats(f32_slice(self.name(), s, l)?, n, c, hw);
        let out = st
            .iter()
            .map(|s| s.0 as f32)
            .chain(st.iter().map(|s| s.1 as f32))
            .collect();
        Ok((CpuStorage::F32(out), Shape::from((2, c))))
    }
}

impl CustomOp3 for BnTrain {
    fn name(&self) -> &'static str {
        "sprig-batch-norm"
    }
    fn cpu_fwd(
        &self,
        s1: &CpuStorage,
        l1: &Layout,
        s2: &CpuStorage,
        l2: &Layout,
        s3: &CpuStorage,
        l3: &Layout,
    ) -> Result<(CpuStorage, Shape)> {
        let (n, c, hw) = dims(l1)?;
        let x = f32_slice(self.name(), s1, l1)?;
        let (gamma, beta) = (
            f32_slice(self.name(), s2, l2)?,
            f32_slice(self.name(), s3, l3)?,
        );
        if gamma.len() != c || beta.len() != c {
            bail!(
                "sprig batch_norm: {c} channels but {} weights and {} biases",
                gamma.len(),
                beta.len()
            )
        }
        // y = a·x + b per channel.
        let ab: Vec<(f32, f32)> = stats(x, n, c, hw)
            .iter()
            .zip(gamma.iter().zip(beta))
            .map(|(&(mean, var), (&g, &b))| {
                let a = g as f64 / (var + self.eps).sqrt();
                (a as f32, (b as f64 - mean * a) as f32)
            })
            .collect();
        let mut y = vec![0f32; x.len()];
        if c * hw > 0 {
            par_chunks_mut(&mut y, c * hw, |i, yi| {
                for (ch, &(a, b)) in ab.iter().enumerate() {
                    let xs = &x[(i * c + ch) * hw..(i * c + ch + 1) * hw];
                    for (o, &v) in yi[ch * hw..(ch + 1) * hw].iter_mut().zip(xs) {
                        *o = a * v + b;
                    }
                }
            });
        }
        Ok((CpuStorage::F32(y), l1.shape().clone()))
    }
    fn bwd(
        &self,
        x: &Tensor,
        gamma: &Tensor,
        beta: &Tensor,
        _res: &Tensor,
        grad: &Tensor,
    ) -> Result<(Option<Tensor>, Option<Tensor>, Option<Tensor>)> {
        let (len, c) = (x.elem_count(), x.dim(1)?);
        let op = BnTrainGrad { eps: self.eps };
        let packed = x.apply_op3_no_bwd(gamma, &grad.contiguous()?, &op)?;
        let part = |track: bool, at: usize, n: usize| -> Result<Option<Tensor>> {
            Ok(if track {
                Some(packed.narrow(0, at, n)?)
            } else {
                None
            })
        };
        Ok((
            part(x.track_op(), 0, len)?
                .map(|t| t.reshape(x.shape()))
                .transpose()?,
            part(gamma.track_op(), len, c)?,
            part(beta.track_op(), len + c, c)?,
        ))
    }
}

impl CustomOp3 for BnTrainGrad {
    fn name(&self) -> &'static str {
        "sprig-batch-norm-grad"
    }
    fn cpu_fwd(
        &self,
        s1: &CpuStorage,
        l1: &Layout,
        s2: &CpuStorage,
        l2: &Layout,
        s3: &CpuStorage,
        l3: &Layout,
    ) -> Result<(CpuStorage, Shape)> {
        let (n, c, hw) = dims(l1)?;
        let x = f32_slice(self.name(), s1, l1)?;
        let gamma = f32_slice(self.name(), s2, l2)?;
        let dy = f32_slice(self.name(), s3, l3)?;
        let m = (n * hw) as f64;
        let st = stats(x, n, c, hw);
        let plane = |i: usize, ch: usize| (i * c + ch) * hw..(i * c + ch + 1) * hw;
        let k = shifts(x, c, hw);
        let grad_sums = channel_sums(n, c, |i, ch| {
            plane_grad_sums(&x[plane(i, ch)], &dy[plane(i, ch)], k[ch])
        });
        // Per channel: dγ, dβ, and dx = A·dy + B·x + C, expanded from
        // γ/(σ·M)·(M·dy − dβ − x̂·dγ) with x̂ = (x − μ)/σ.
        let sums: Vec<(f64, f64, [f32; 3])> = st
            .iter()
            .zip(&grad_sums)
            .zip(gamma)
            .zip(&k)
            .map(|(((&(mean, var), &(sdy, sdyx)), &g), &k)| {
                // Σdy·(x − μ) = Σdy·(x − k) − (μ − k)·Σdy.
                let istd = 1.0 / (var + self.eps).sqrt();
                let (db, dg) = (sdy, (sdyx - (mean - k as f64) * sdy) * istd);
                let k = g as f64 * istd / m;
                let b = -k * istd * dg;
                (
                    dg,
                    db,
                    [(k * m) as f32, b as f32, (-k * db - b * mean) as f32],
                )
            })
            .collect();
        let mut out = vec![0f32; x.len() + 2 * c];
        let (dx, rest) = out.split_at_mut(x.len());
        if c * hw > 0 {
            par_chunks_mut(dx, c * hw, |i, dxi| {
                for (ch, &(_, _, [a, b, k])) in sums.iter().enumerate() {
                    let r = plane(i, ch);
                    for ((o, &xv), &g) in dxi[ch * hw..(ch + 1) * hw]
                        .iter_mut()
                        .zip(&x[r.clone()])
                        .zip(&dy[r])
                    {
                        *o = a * g + b * xv + k;
                    }
                }
            });
        }
        for (ch, &(dg, db, _)) in sums.iter().enumerate() {
            rest[ch] = dg as f32;
            rest[c + ch] = db as f32;
        }
        let len = out.len();
        Ok((CpuStorage::F32(out), Shape::from(len)))
    }
}

/// Batch norm in training mode: normalises `x` (N×C×H×W or N×C) with its batch statistics,
/// scales by `gamma` and shifts by `beta` (differentiable in all three), and moves the running
/// statistics towards the batch's: `r ← (1 − momentum)·r + momentum·batch`, the variance
/// unbiased (×M/(M − 1)) — exactly what candle's `BatchNorm::forward_train` does.
#[allow(clippy::too_many_arguments)]
pub fn batch_norm_train(
    x: &Tensor,
    gamma: &Tensor,
    beta: &Tensor,
    running_mean: &Tensor,
    running_var: &Tensor,
    momentum: f64,
    eps: f64,
) -> Result<Tensor> {
    let x = x.contiguous()?;
    let st = x.apply_op1_no_bwd(&BnStats)?;
    let m = (x.elem_count() / x.dim(1)?) as f64;
    let (mean, var) = (st.get(0)?, st.get(1)?);
    let unbiased = (var * (m / (m - 1.0).max(1.0)))?;
    for (r, batch) in [(running_mean, mean), (running_var, unbiased)] {
        // `Var::from_tensor` of a variable shares its storage, so this writes the model's
        // running statistics in place.
        let r = Var::from_tensor(r)?;
        r.set(&((r.as_tensor() * (1.0 - momentum))? + (batch * momentum)?)?)?;
    }
    x.apply_op3(&gamma.contiguous()?, &beta.contiguous()?, BnTrain { eps })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::train_ops::test_util::max_diff;
    use candle_core::{DType, Device, ModuleT};
    use candle_nn::{VarBuilder, VarMap};

    /// A large mean with a tiny spread (where E[x²] − E[x]² cancels) still gives the variance
    /// a two-pass f64 computation gives.
    #[test]
    fn variance_survives_a_large_mean() {
        let (n, c, hw) = (4, 2, 50);
        let x: Vec<f32> = (0..n * c * hw)
            .map(|i| 1000.0 + ((i * 7919) % 101) as f32 * 1e-3)
            .collect();
        for (ch, (mean, var)) in stats(&x, n, c, hw).into_iter().enumerate() {
            let v: Vec<f64> = (0..n)
                .flat_map(|i| &x[(i * c + ch) * hw..(i * c + ch + 1) * hw])
                .map(|&v| v as f64)
                .collect();
            let m = v.iter().sum::<f64>() / v.len() as f64;
            let want = v.iter().map(|x| (x - m).powi(2)).sum::<f64>() / v.len() as f64;
            assert!((mean - m).abs() < 1e-4, "{mean} vs {m}");
            assert!((var - want).abs() < 1e-3 * want, "{var} vs {want}");
        }
    }

    /// Output, all three gradients and the running statistics equal candle's BatchNorm.
    #[test]
    fn matches_candle_batch_norm_training() {
        for dims in [vec![4usize, 3, 5, 6], vec![8, 5]] {
            let dev = Device::Cpu;
            let c = dims[1];
            let map = |seed: u64| {
                let vars = VarMap::new();
                let vb = VarBuilder::from_varmap(&vars, DType::F32, &dev);
                let bn = candle_nn::batch_norm(c, 1e-5, vb).unwrap();
                // Non-trivial γ, β and running statistics.
                for (name, data) in vars.data().lock().unwrap().iter() {
                    let n = data.elem_count();
                    let v: Vec<f32> = (0..n)
                        .map(|i| {
                            0.5 + ((i as u64 * 31 + seed + name.len() as u64) % 7) as f32 * 0.25
                        })
                        .collect();
                    data.set(&Tensor::from_vec(v, n, &dev).unwrap()).unwrap();
                }
                (vars, bn)
            };
            let (vars_a, bn_a) = map(1);
            let (vars_b, bn_b) = map(1);
            let len: usize = dims.iter().product();
            let xv: Vec<f32> = (0..len)
                .map(|i| ((i * 37) % 101) as f32 * 0.03 - 1.2)
                .collect();
            let x = Var::from_vec(xv, dims.as_slice(), &dev).unwrap();
            let (g, b) = bn_a.weight_and_bias().unwrap();
            let ours =
                batch_norm_train(&x, g, b, bn_a.running_mean(), bn_a.running_var(), 0.1, 1e-5)
                    .unwrap();
            let theirs = bn_b.forward_t(&x, true).unwrap();
            assert!(max_diff(&ours, &theirs) < 1e-5);
            for name in ["running_mean", "running_var"] {
                let a = vars_a.data().lock().unwrap()[name].as_tensor().clone();
                let b = vars_b.data().lock().unwrap()[name].as_tensor().clone();
                assert!(max_diff(&a, &b) < 1e-5, "{name}");
            }
            let r: Vec<f32> = (0..len).map(|i| ((i * 13) % 17) as f32 - 8.0).collect();
            let r = Tensor::from_vec(r, dims.as_slice(), &dev).unwrap();
            let ga = (ours * &r).unwrap().sum_all().unwrap().backward().unwrap();
            let gb = (theirs * &r)
                .unwrap()
                .sum_all()
                .unwrap()
                .backward()
                .unwrap();
            let (gb_w, gb_b) = bn_b.weight_and_bias().unwrap();
            for (what, a, b) in [
                ("x", x.as_tensor(), x.as_tensor()),
                ("gamma", g, gb_w),
                ("beta", b, gb_b),
            ] {
                let d = max_diff(ga.get(a).unwrap(), gb.get(b).unwrap());
                assert!(d < 1e-3, "{what} gradient differs by {d} for {dims:?}");
            }
        }
    }
}

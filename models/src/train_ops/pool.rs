//! 2×2 max pooling, stride 2 (odd trailing rows/columns dropped, as candle and PyTorch do).
//! The backward pass sends each output gradient to the first maximum of its window, found again
//! from the input rather than stored.

use super::{f32_slice, par_chunks_mut};
use candle_core::{bail, CpuStorage, CustomOp1, CustomOp2, Layout, Result, Shape, Tensor};

/// Index (within the image plane) of the first maximum of window (oy, ox).
#[inline]
fn argmax(plane: &[f32], w: usize, oy: usize, ox: usize) -> usize {
    let i = 2 * oy * w + 2 * ox;
    let mut best = i;
    for j in [i + 1, i + w, i + w + 1] {
        if plane[j] > plane[best] {
            best = j;
        }
    }
    best
}

fn dims(l: &Layout) -> Result<(usize, usize, usize)> {
    let &[n, c, h, w] = l.dims() else {
        bail!(
            "sprig max_pool2x2: expected a 4-D tensor, got {:?}",
            l.dims()
        )
    };
    Ok((n * c, h, w))
}

struct MaxPool2;
struct MaxPool2Grad;

impl CustomOp1 for MaxPool2 {
    fn name(&self) -> &'static str {
        "sprig-max-pool-2x2"
    }
    fn cpu_fwd(&self, s: &CpuStorage, l: &Layout) -> Result<(CpuStorage, Shape)> {
        let x = f32_slice(self.name(), s, l)?;
        let (planes, h, w) = dims(l)?;
        let (oh, ow) = (h / 2, w / 2);
        let mut out = vec![0f32; planes * oh * ow];
        if oh * ow > 0 {
            par_chunks_mut(&mut out, oh * ow, |p, o| {
                let plane = &x[p * h * w..(p + 1) * h * w];
                for oy in 0..oh {
                    for ox in 0..ow {
                        o[oy * ow + ox] = plane[argmax(plane, w, oy, ox)];
                    }
                }
            });
        }
        let d = l.dims();
        Ok((CpuStorage::F32(out), Shape::from((d[0], d[1], oh, ow))))
    }
    fn bwd(&self, x: &Tensor, _res: &Tensor, grad: &Tensor) -> Result<Option<Tensor>> {
        Ok(Some(
            x.apply_op2_no_bwd(&grad.contiguous()?, &MaxPool2Grad)?,
        ))
    }
}

impl CustomOp2 for MaxPool2Grad {
    fn name(&self) -> &'static str {
        "sprig-max-pool-2x2-grad"
    }
    fn cpu_fwd(
        &self,
        s1: &CpuStorage,
        l1: &Layout,
        s2: &CpuStorage,
        l2: &Layout,
    ) -> Result<(CpuStorage, Shape)> {
        let x = f32_slice(self.name(), s1, l1)?;
        let gout = f32_slice(self.name(), s2, l2)?;
        let (planes, h, w) = dims(l1)?;
        let (oh, ow) = (h / 2, w / 2);
        let mut gx = vec![0f32; planes * h * w];
        if h * w > 0 {
            par_chunks_mut(&mut gx, h * w, |p, g| {
                let plane = &x[p * h * w..(p + 1) * h * w];
                let go = &gout[p * oh * ow..(p + 1) * oh * ow];
                for oy in 0..oh {
                    for ox in 0..ow {
                        g[argmax(plane, w, oy, ox)] += go[oy * ow + ox];
                    }
                }
            });
        }
        Ok((CpuStorage::F32(gx), l1.shape().clone()))
    }
}

/// 2×2 max pooling with stride 2 of an N×C×H×W tensor; differentiable. Same values as candle's
/// `max_pool2d(2)`; the gradient goes to the first maximum of each window (PyTorch's choice).
pub fn max_pool2x2(x: &Tensor) -> Result<Tensor> {
    x.contiguous()?.apply_op1(MaxPool2)
}

#[cfg(test)]
mod tests {
    use super::*;
    use candle_core::{Device, Var};

    /// Values equal candle's `max_pool2d(2)`; the gradient equals the definition (each output's
    /// gradient on its window's maximum). candle's own max-pool gradient is a quarter of that
    /// (it divides by the window size), so it is not the reference here.
    #[test]
    fn matches_candle_max_pool_and_the_gradient_definition() {
        for (n, c, h, w) in [(2, 3, 6, 6), (1, 2, 7, 5), (3, 1, 2, 2)] {
            let len = n * c * h * w;
            // Distinct values: no ties, so every rule for ties agrees.
            let v: Vec<f32> = (0..len).map(|i| ((i * 7919) % len) as f32 * 0.01).collect();
            let x = Var::from_vec(v.clone(), (n, c, h, w), &Device::Cpu).unwrap();
            let ours = max_pool2x2(&x).unwrap();
            let theirs = x.max_pool2d(2).unwrap();
            let a = ours.flatten_all().unwrap().to_vec1::<f32>().unwrap();
            let b = theirs.flatten_all().unwrap().to_vec1::<f32>().unwrap();
            assert_eq!(a, b);
            let (oh, ow) = (h / 2, w / 2);
            let r: Vec<f32> = (0..a.len()).map(|i| i as f32 + 1.0).collect();
            let mut expected = vec![0f32; len];
            for p in 0..n * c {
                for oy in 0..oh {
                    for ox in 0..ow {
                        let win = [0, 1, w, w + 1].map(|d| p * h * w + 2 * oy * w + 2 * ox + d);
                        let best = *win.iter().max_by(|&&i, &&j| v[i].total_cmp(&v[j])).unwrap();
                        expected[best] += r[(p * oh + oy) * ow + ox];
                    }
                }
            }
            let r = Tensor::from_vec(r, theirs.dims(), &Device::Cpu).unwrap();
            let g = (ours * &r).unwrap().sum_all().unwrap().backward().unwrap();
            let got = g.get(x.as_tensor()).unwrap().flatten_all().unwrap();
            assert_eq!(got.to_vec1::<f32>().unwrap(), expected);
        }
    }
}

//! ReLU with a one-pass backward (candle's builds a zero tensor, compares, converts and
//! multiplies: four passes and three temporaries).

use super::{f32_slice, par_chunks_mut};
use candle_core::{CpuStorage, CustomOp1, CustomOp2, Layout, Result, Shape, Tensor};

/// Elements per parallel piece: large enough that the hand-off costs nothing.
const PIECE: usize = 1 << 15;

struct Relu;
/// dL/dx = dL/dy where y > 0; inputs (y, dL/dy).
struct ReluGrad;

impl CustomOp1 for Relu {
    fn name(&self) -> &'static str {
        "sprig-relu"
    }
    fn cpu_fwd(&self, s: &CpuStorage, l: &Layout) -> Result<(CpuStorage, Shape)> {
        let x = f32_slice(self.name(), s, l)?;
        let mut y = vec![0f32; x.len()];
        par_chunks_mut(&mut y, PIECE, |i, out| {
            for (o, &v) in out.iter_mut().zip(&x[i * PIECE..]) {
                *o = v.max(0.0);
            }
        });
        Ok((CpuStorage::F32(y), l.shape().clone()))
    }
    fn bwd(&self, _x: &Tensor, res: &Tensor, grad: &Tensor) -> Result<Option<Tensor>> {
        Ok(Some(res.apply_op2_no_bwd(&grad.contiguous()?, &ReluGrad)?))
    }
}

impl CustomOp2 for ReluGrad {
    fn name(&self) -> &'static str {
        "sprig-relu-grad"
    }
    fn cpu_fwd(
        &self,
        s1: &CpuStorage,
        l1: &Layout,
        s2: &CpuStorage,
        l2: &Layout,
    ) -> Result<(CpuStorage, Shape)> {
        let (y, dy) = (
            f32_slice(self.name(), s1, l1)?,
            f32_slice(self.name(), s2, l2)?,
        );
        let mut dx = vec![0f32; y.len()];
        par_chunks_mut(&mut dx, PIECE, |i, out| {
            let r = i * PIECE..i * PIECE + out.len();
            for ((o, &yv), &g) in out.iter_mut().zip(&y[r.clone()]).zip(&dy[r]) {
                *o = if yv > 0.0 { g } else { 0.0 };
            }
        });
        Ok((CpuStorage::F32(dx), l1.shape().clone()))
    }
}

/// max(x, 0), differentiable (gradient 0 at 0, as in PyTorch).
pub fn relu(x: &Tensor) -> Result<Tensor> {
    x.contiguous()?.apply_op1(Relu)
}

#[cfg(test)]
mod tests {
    use super::*;
    use candle_core::{Device, Var};

    #[test]
    fn matches_candle_relu_and_its_gradient_away_from_zero() {
        let n = 3 * PIECE + 17;
        let v: Vec<f32> = (0..n).map(|i| ((i * 7919) % 1001) as f32 - 500.5).collect();
        let x = Var::from_vec(v, n, &Device::Cpu).unwrap();
        let r: Vec<f32> = (0..n).map(|i| (i % 13) as f32).collect();
        let r = Tensor::from_vec(r, n, &Device::Cpu).unwrap();
        let (ours, theirs) = (relu(&x).unwrap(), x.relu().unwrap());
        let flat = |t: &Tensor| t.to_vec1::<f32>().unwrap();
        assert_eq!(flat(&ours), flat(&theirs));
        let go = (&ours * &r).unwrap().sum_all().unwrap().backward().unwrap();
        let gt = (&theirs * &r)
            .unwrap()
            .sum_all()
            .unwrap()
            .backward()
            .unwrap();
        assert_eq!(flat(go.get(&x).unwrap()), flat(gt.get(&x).unwrap()));
    }
}

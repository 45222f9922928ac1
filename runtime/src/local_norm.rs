//! Two normalizations of float32 tensors that older and Caffe-born models use:
//!
//! - `LRN` (local response normalization across channels, AlexNet/GoogLeNet):
//!   `y = x / (bias + alpha/size · Σ x²)^beta`, the sum over the `size` channels around each
//!   one (`floor((size−1)/2)` before, `ceil((size−1)/2)` after, clipped at the ends).
//! - `MeanVarianceNormalization` over any set of axes (default N, H, W: per channel):
//!   `y = (x − mean) / (sqrt(var) + 1e-9)`, ONNX's function body. The variance is two-pass
//!   (mean of squared deviations) rather than the body's `E[x²] − E[x]²`: the same value,
//!   without its cancellation for inputs with a large mean.

// The step types are part of every build (the step table names them); the kernels run only
// with extra-ops.
#![cfg_attr(not(feature = "extra-ops"), allow(dead_code, unused_imports))]

use crate::error::Result;
use crate::kernels::size_mismatch;
use crate::onnx::Node;
use crate::ops::{input, shape_err, unsupported, Op, Prep, MAX_STEP_INPUTS};
use crate::prepare::{axis, only_attrs};
use crate::tensor::{DType, Shape, MAX_RANK};

/// One LRN step over `outer × channels × inner` values.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Lrn {
    /// Product of the dims before the channel axis (the batch).
    pub outer: usize,
    /// Channels (axis 1).
    pub channels: usize,
    /// Product of the spatial dims.
    pub inner: usize,
    /// Channels summed over.
    pub size: usize,
    /// Scale of the sum (ONNX divides it by `size`).
    pub alpha: f32,
    /// Exponent.
    pub beta: f32,
    /// Added before the power.
    pub bias: f32,
}

/// Plans an `LRN` or `MeanVarianceNormalization` node (one step, float32).
#[inline(never)] // keeps its locals out of prepare_node's frame (MCU stacks)
pub(crate) fn prepare_local_norm<const T: usize, const N: usize>(
    p: &Prep<'_, '_, T, N>,
    node: &Node<'_>,
    ins: &mut heapless::Vec<u16, MAX_STEP_INPUTS>,
) -> Result<(Op, DType, Shape)> {
    let (x, t) = input(p.g, node, 0)?;
    let _ = ins.push(x);
    if t.dtype != DType::F32 {
        return Err(unsupported(node, "element type (this op runs on float32)"));
    }
    let s = t.shape;
    let r = s.rank();
    if node.op_type == "LRN" {
        only_attrs(node, &["alpha", "beta", "bias", "size"])?;
        if r < 2 {
            return Err(shape_err(node, "input must be N×C×spatial"));
        }
        let size = node.attr_i("size", 0)?;
        if size < 1 {
            return Err(shape_err(node, "size must be at least 1"));
        }
        let op = Op::Lrn(Lrn {
            outer: s.dim(0),
            channels: s.dim(1),
            inner: s.dims()[2..].iter().map(|&v| v as usize).product(),
            size: size as usize,
            alpha: node.attr_f("alpha", 1e-4)?,
            beta: node.attr_f("beta", 0.75)?,
            bias: node.attr_f("bias", 1.0)?,
        });
        return Ok((op, DType::F32, s));
    }
    only_attrs(node, &["axes"])?;
    let mut buf = [0i64; MAX_RANK];
    let axes: &[i64] = match node.attr_ints("axes", &mut buf)? {
        Some(n) => &buf[..n],
        None => &[0, 2, 3],
    };
    let mut mask = 0u8;
    for &a in axes {
        let a = axis(node, a, r)?;
        if mask & (1 << a) != 0 {
            return Err(shape_err(node, "axes repeat an axis"));
        }
        mask |= 1 << a;
    }
    Ok((
        Op::Mvn {
            shape: s,
            axes: mask,
        },
        DType::F32,
        s,
    ))
}

/// LRN (see the module doc).
#[inline(never)] // one body, not copied into eval (MCU flash)
pub fn lrn(l: &Lrn, x: &[f32], y: &mut [f32]) -> Result<()> {
    let (c, inner) = (l.channels, l.inner);
    if x.len() != l.outer * c * inner || y.len() != x.len() {
        return Err(size_mismatch());
    }
    let (before, after) = ((l.size - 1) / 2, l.size / 2);
    let scale = l.alpha / l.size as f32;
    for n in 0..l.outer {
        let at = n * c * inner;
        let (x, y) = (&x[at..at + c * inner], &mut y[at..at + c * inner]);
        for ch in 0..c {
            let (lo, hi) = (ch.saturating_sub(before), (ch + after).min(c - 1));
            for i in 0..inner {
                let sum: f32 = (lo..=hi).map(|j| x[j * inner + i] * x[j * inner + i]).sum();
                let v = x[ch * inner + i];
                y[ch * inner + i] = v / libm::powf(l.bias + scale * sum, l.beta);
            }
        }
    }
    Ok(())
}

/// Calls `f` with the element offset of every position of `shape` on the axes in `mask` (the
/// others held at 0), in row-major order, added to `base`.
fn walk(
    shape: &Shape,
    stride: &[usize; MAX_RANK],
    mask: u8,
    base: usize,
    mut f: impl FnMut(usize),
) {
    let r = shape.rank();
    let mut idx = [0usize; MAX_RANK];
    if (0..r).any(|a| mask & (1 << a) != 0 && shape.dim(a) == 0) {
        return;
    }
    loop {
        f(base + (0..r).map(|a| idx[a] * stride[a]).sum::<usize>());
        let mut a = r;
        loop {
            if a == 0 {
                return;
            }
            a -= 1;
            if mask & (1 << a) == 0 {
                continue;
            }
            idx[a] += 1;
            if idx[a] < shape.dim(a) {
                break;
            }
            idx[a] = 0;
        }
    }
}

/// MeanVarianceNormalization over the axes in `mask` (see the module doc).
#[inline(never)] // one body, not copied into eval (MCU flash)
pub fn mvn(shape: &Shape, mask: u8, x: &[f32], y: &mut [f32]) -> Result<()> {
    let r = shape.rank();
    if x.len() != shape.numel() || y.len() != x.len() || r > MAX_RANK {
        return Err(size_mismatch());
    }
    let mut stride = [0usize; MAX_RANK];
    let mut s = 1;
    for a in (0..r).rev() {
        stride[a] = s;
        s *= shape.dim(a);
    }
    let keep = !mask & ((1u16 << r) - 1) as u8;
    let count: usize = (0..r)
        .filter(|&a| mask & (1 << a) != 0)
        .map(|a| shape.dim(a))
        .product();
    let n = count as f32;
    walk(shape, &stride, keep, 0, |base| {
        let mut sum = 0.0f32;
        walk(shape, &stride, mask, base, |i| sum += x[i]);
        let mean = sum / n;
        let mut dev = 0.0f32;
        walk(shape, &stride, mask, base, |i| {
            dev += (x[i] - mean) * (x[i] - mean)
        });
        let inv = 1.0 / (libm::sqrtf(dev / n) + 1e-9);
        walk(shape, &stride, mask, base, |i| y[i] = (x[i] - mean) * inv);
    });
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn lrn_matches_the_formula_by_hand() {
        // 1 × 3 channels × 1: size 2 sums channel c and c+1 (ceil(1/2) = 1 after, 0 before).
        let l = Lrn {
            outer: 1,
            channels: 3,
            inner: 1,
            size: 2,
            alpha: 0.5,
            beta: 0.5,
            bias: 1.0,
        };
        let x = [1.0f32, 2.0, 3.0];
        let mut y = [0.0f32; 3];
        lrn(&l, &x, &mut y).unwrap();
        // c0: 1/sqrt(1 + 0.25·(1+4)); c1: 2/sqrt(1 + 0.25·(4+9)); c2: 3/sqrt(1 + 0.25·9).
        let want = [
            1.0 / 2.25f32.sqrt(),
            2.0 / 4.25f32.sqrt(),
            3.0 / 3.25f32.sqrt(),
        ];
        for (a, b) in y.iter().zip(want) {
            assert!((a - b).abs() < 1e-6, "{y:?} vs {want:?}");
        }
    }

    #[test]
    fn mvn_normalizes_each_channel_over_the_other_axes() {
        // 2 × 2 × 1 × 2, axes N, H, W: channel 0 holds 1, 3, 5, 7; channel 1 holds 10 four times.
        let shape = Shape::new(&[2, 2, 1, 2], "x").unwrap();
        let x = [1.0f32, 3.0, 10.0, 10.0, 5.0, 7.0, 10.0, 10.0];
        let mut y = [0.0f32; 8];
        mvn(&shape, 0b1101, &x, &mut y).unwrap();
        let sd = 5.0f32.sqrt(); // deviations −3, −1, 1, 3
        let want = [-3.0 / sd, -1.0 / sd, 0.0, 0.0, 1.0 / sd, 3.0 / sd, 0.0, 0.0];
        for (a, b) in y.iter().zip(want) {
            assert!((a - b).abs() < 1e-6, "{y:?} vs {want:?}");
        }
    }
}

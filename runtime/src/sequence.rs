//! Ops that run along one axis in order:
//!
//! - `CumSum` (float32, int32, int64): running sums, optionally `exclusive` (each position
//!   gets the sum of those before it) and/or `reverse` (summing from the end). Transformers
//!   exported from PyTorch build position ids with it (`mask.cumsum(1)`). The axis must be a
//!   constant: the plan lays out the loops once. Integer sums wrap, as in onnxruntime.
//! - `ReverseSequence`: for every batch entry, the first `sequence_lens[b]` steps along the
//!   time axis reversed and the rest left in place (bidirectional RNN plumbing). The lengths
//!   are run-time data; one outside `0..=time` is an error at invoke.

// The step types are part of every build (the step table names them); planning and the
// kernels only with extra-ops.
#![cfg_attr(not(feature = "extra-ops"), allow(dead_code, unused_imports))]

use crate::error::{Error, Result};
use crate::kernels::size_mismatch;
use crate::onnx::Node;
use crate::ops::{input, shape_err, unsupported, Op, Prep, MAX_STEP_INPUTS};
use crate::prepare::{axis, only_attrs};
use crate::tensor::{DType, Shape};

/// Plans a `CumSum` or `ReverseSequence` node (one step).
#[inline(never)] // keeps its locals out of prepare_node's frame (MCU stacks)
pub(crate) fn prepare_sequence<const T: usize, const N: usize>(
    p: &Prep<'_, '_, T, N>,
    node: &Node<'_>,
    ins: &mut heapless::Vec<u16, MAX_STEP_INPUTS>,
) -> Result<(Op, DType, Shape)> {
    let (x, t) = input(p.g, node, 0)?;
    let _ = ins.push(x);
    let s = t.shape;
    let r = s.rank();
    let split = |ax: usize| {
        let d = s.dims();
        (
            d[..ax].iter().map(|&v| v as usize).product::<usize>(),
            s.dim(ax),
            d[ax + 1..].iter().map(|&v| v as usize).product::<usize>(),
        )
    };
    if node.op_type == "CumSum" {
        only_attrs(node, &["exclusive", "reverse"])?;
        if !matches!(t.dtype, DType::F32 | DType::I32 | DType::I64) {
            return Err(unsupported(
                node,
                "element type (CumSum runs on float32, int32 and int64)",
            ));
        }
        let a = p.g.konst(node.input(1)).ok_or_else(|| {
            unsupported(node, "axis computed at run time (bake it into the model)")
        })?;
        if a.shape.numel() != 1 {
            return Err(shape_err(node, "axis must hold one value"));
        }
        if r == 0 {
            return Err(shape_err(node, "input must have rank >= 1"));
        }
        let ax = axis(node, a.i64_at(0)?, r)?;
        let (outer, len, inner) = split(ax);
        let op = Op::CumSum {
            outer,
            len,
            inner,
            exclusive: node.attr_i("exclusive", 0)? != 0,
            reverse: node.attr_i("reverse", 0)? != 0,
        };
        return Ok((op, t.dtype, s));
    }
    only_attrs(node, &["batch_axis", "time_axis"])?;
    let (l, tl) = input(p.g, node, 1)?;
    let _ = ins.push(l);
    let (b, tm) = (node.attr_i("batch_axis", 1)?, node.attr_i("time_axis", 0)?);
    if r < 2 || !matches!((b, tm), (0, 1) | (1, 0)) {
        return Err(shape_err(
            node,
            "input needs rank >= 2 and batch_axis, time_axis must be 0 and 1",
        ));
    }
    let (batch, time) = if tm == 0 {
        (s.dim(1), s.dim(0))
    } else {
        (s.dim(0), s.dim(1))
    };
    if tl.dtype != DType::I64 || tl.shape.rank() != 1 || tl.shape.dim(0) != batch {
        return Err(shape_err(
            node,
            "sequence_lens must be int64 with one length per batch entry",
        ));
    }
    let op = Op::ReverseSequence {
        batch,
        time,
        inner: s.dims()[2..].iter().map(|&v| v as usize).product(),
        time_major: tm == 0,
    };
    Ok((op, t.dtype, s))
}

/// The element arithmetic CumSum needs.
pub trait RunningSum: Copy + Default {
    /// `self + v` (wrapping for integers).
    fn plus(self, v: Self) -> Self;
}
impl RunningSum for f32 {
    fn plus(self, v: f32) -> f32 {
        self + v
    }
}
impl RunningSum for i32 {
    fn plus(self, v: i32) -> i32 {
        self.wrapping_add(v)
    }
}
impl RunningSum for i64 {
    fn plus(self, v: i64) -> i64 {
        self.wrapping_add(v)
    }
}

/// CumSum over `outer × len × inner` values along the middle axis (see the module doc).
#[inline(never)] // one body, not copied into eval (MCU flash)
pub fn cumsum<E: RunningSum>(
    (outer, len, inner): (usize, usize, usize),
    exclusive: bool,
    reverse: bool,
    x: &[E],
    y: &mut [E],
) -> Result<()> {
    if x.len() != outer * len * inner || y.len() != x.len() {
        return Err(size_mismatch());
    }
    for o in 0..outer {
        for i in 0..inner {
            let at = |j: usize| (o * len + if reverse { len - 1 - j } else { j }) * inner + i;
            let mut acc = E::default();
            for j in 0..len {
                let v = x[at(j)];
                if exclusive {
                    y[at(j)] = acc;
                    acc = acc.plus(v);
                } else {
                    acc = acc.plus(v);
                    y[at(j)] = acc;
                }
            }
        }
    }
    Ok(())
}

/// ReverseSequence for `esize`-byte elements, `batch × time × inner` or (`time_major`)
/// `time × batch × inner` (see the module doc).
#[inline(never)] // one body, not copied into eval (MCU flash)
pub fn reverse_sequence(
    esize: usize,
    (batch, time, inner): (usize, usize, usize),
    time_major: bool,
    x: &[u8],
    lens: &[u8],
    y: &mut [u8],
) -> Result<()> {
    let row = inner * esize;
    if x.len() != batch * time * row || y.len() != x.len() || lens.len() != batch * 8 {
        return Err(size_mismatch());
    }
    let at = |b: usize, t: usize| if time_major { t * batch + b } else { b * time + t } * row;
    for (b, c) in lens.chunks_exact(8).enumerate() {
        let n = i64::from_le_bytes([c[0], c[1], c[2], c[3], c[4], c[5], c[6], c[7]]);
        if !(0..=time as i64).contains(&n) {
            return Err(Error::BadIo {
                what: "ReverseSequence length outside the time axis",
            });
        }
        let n = n as usize;
        for t in 0..time {
            let from = if t < n { n - 1 - t } else { t };
            y[at(b, t)..at(b, t) + row].copy_from_slice(&x[at(b, from)..at(b, from) + row]);
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::vec;
    use std::vec::Vec;

    #[test]
    fn cumsum_inclusive_exclusive_and_reversed() {
        let x = [1.0f32, 2.0, 3.0, 4.0, 5.0, 6.0]; // 2 × 3, along axis 1
        let mut y = [0.0f32; 6];
        cumsum((2, 3, 1), false, false, &x, &mut y).unwrap();
        assert_eq!(y, [1., 3., 6., 4., 9., 15.]);
        cumsum((2, 3, 1), true, false, &x, &mut y).unwrap();
        assert_eq!(y, [0., 1., 3., 0., 4., 9.]);
        cumsum((2, 3, 1), false, true, &x, &mut y).unwrap();
        assert_eq!(y, [6., 5., 3., 15., 11., 6.]);
        cumsum((2, 3, 1), true, true, &x, &mut y).unwrap();
        assert_eq!(y, [5., 3., 0., 11., 6., 0.]);
        // Along axis 0 (inner 3), and integer sums wrap.
        cumsum((1, 2, 3), false, false, &x, &mut y).unwrap();
        assert_eq!(y, [1., 2., 3., 5., 7., 9.]);
        let mut yi = [0i32; 2];
        cumsum((1, 2, 1), false, false, &[i32::MAX, 1], &mut yi).unwrap();
        assert_eq!(yi, [i32::MAX, i32::MIN]);
    }

    #[test]
    fn reverse_sequence_reverses_each_prefix() {
        // batch 2 × time 3, lengths 2 and 3.
        let x: Vec<u8> = (0..6).collect();
        let lens: Vec<u8> = [2i64, 3].iter().flat_map(|v| v.to_le_bytes()).collect();
        let mut y = vec![0u8; 6];
        reverse_sequence(1, (2, 3, 1), false, &x, &lens, &mut y).unwrap();
        assert_eq!(y, [1, 0, 2, 5, 4, 3]);
        // The same data time-major: element (t, b) at t·2 + b.
        reverse_sequence(1, (2, 3, 1), true, &x, &lens, &mut y).unwrap();
        assert_eq!(y, [2, 5, 0, 3, 4, 1]);
        let long: Vec<u8> = [4i64, 0].iter().flat_map(|v| v.to_le_bytes()).collect();
        assert!(reverse_sequence(1, (2, 3, 1), false, &x, &long, &mut y).is_err());
    }
}

//! `TopK`: the `k` largest (or smallest) values along an axis, and their indices. A classifier's
//! top-5 or a detector's best boxes, at the end of a float graph.
//!
//! Selection works in the output itself, so there is no scratch memory: for every run along the
//! axis the output slots hold the best entries found so far, best first, and each further
//! element is inserted by shifting the worse ones down (O(len·k), which suits the small `k` of
//! these uses). Equal values keep their order along the axis, so the lower index comes first
//! as ONNX requires, and NaN counts as the largest value (as in NumPy's and PyTorch's sorts).
//! One node gives one step per requested output; each step repeats the selection.

// The step type is part of every build (the step table names it); planning and the kernel only
// with float-ops.
#![cfg_attr(not(feature = "float-ops"), allow(dead_code, unused_imports))]

use crate::error::{Error, Result};
use crate::onnx::Node;
use crate::ops::{input, push_step, shape_err, unsupported, Op, Prep, Step};
use crate::prepare::{axis, make_step, only_attrs};
use crate::tensor::{DType, Shape, MAX_RANK};

/// One TopK step: data `outer × len × inner`, output `outer × k × inner`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct TopK {
    /// Product of the dims before the axis.
    pub outer: usize,
    /// Length of the axis.
    pub len: usize,
    /// Product of the dims after the axis.
    pub inner: usize,
    /// Entries kept per run.
    pub k: usize,
    /// The largest values (else the smallest).
    pub largest: bool,
    /// This step writes the indices (int64) rather than the values (float32).
    pub indices: bool,
}

/// Plans a `TopK` node: one step per requested output (values, indices).
#[cfg(feature = "float-ops")]
pub(crate) fn prepare_topk<const T: usize, const N: usize>(
    p: &mut Prep<'_, '_, T, N>,
    node: &Node<'_>,
    idx: u16,
    steps: &mut heapless::Vec<Step, N>,
) -> Result<()> {
    let (x, xt) = input(p.g, node, 0)?;
    if xt.dtype != DType::F32 {
        return Err(unsupported(node, "element type (this op runs on float32)"));
    }
    let s = xt.shape;
    let rank = s.rank();
    if rank == 0 {
        return Err(shape_err(node, "input must have rank >= 1"));
    }
    // k: an attribute before opset 10, then a one-element int64 input fixed at plan time.
    let k = if p.g.opset < 10 {
        only_attrs(node, &["axis", "k"])?;
        node.attr_i("k", -1)?
    } else {
        only_attrs(node, &["axis", "largest", "sorted"])?;
        let Some(name) = node.input(1) else {
            return Err(shape_err(node, "input K is missing"));
        };
        let konst =
            p.g.int_konst(Some(name))
                .ok_or_else(|| unsupported(node, "non-constant K input"))?;
        if konst.shape().numel() != 1 {
            return Err(shape_err(node, "K must hold one value"));
        }
        let mut k = 0;
        konst.for_each_i64(|_, v| k = v)?;
        k
    };
    let ax = axis(node, node.attr_i("axis", -1)?, rank)?;
    let len = s.dim(ax);
    if k < 1 || k as u64 > len as u64 {
        return Err(shape_err(node, "K must be between 1 and the axis length"));
    }
    let dims = s.dims();
    let base = TopK {
        outer: dims[..ax].iter().map(|&v| v as usize).product(),
        len,
        inner: dims[ax + 1..].iter().map(|&v| v as usize).product(),
        k: k as usize,
        largest: node.attr_i("largest", 1)? != 0,
        indices: false,
    };
    let mut d = [0i64; MAX_RANK];
    for (i, v) in d.iter_mut().enumerate().take(rank) {
        *v = if i == ax { k } else { i64::from(dims[i]) };
    }
    let mut added = 0;
    for (slot, &name) in node.outputs.iter().enumerate() {
        if name.is_empty() {
            continue;
        }
        let indices = match slot {
            0 => false,
            1 => true,
            _ => return Err(unsupported(node, "number of outputs")),
        };
        let dtype = if indices { DType::I64 } else { DType::F32 };
        let out = p.type_output(name, dtype, Shape::new(&d[..rank], name)?)?;
        let step = make_step(idx, Op::TopK(TopK { indices, ..base }), &[x], out)?;
        push_step(steps, step)?;
        added += 1;
    }
    if added == 0 {
        return Err(unsupported(node, "number of outputs"));
    }
    Ok(())
}

/// True when `a` goes before `b`: larger (or smaller) first, NaN the largest; ties keep the
/// earlier one first because a new element only moves ahead of strictly worse ones.
fn before(a: f32, b: f32, largest: bool) -> bool {
    if largest {
        (a.is_nan() && !b.is_nan()) || a > b
    } else {
        (b.is_nan() && !a.is_nan()) || a < b
    }
}

/// The output slots of one run: `k` entries `inner` apart, each holding an index along the axis
/// while the selection runs.
trait Slots {
    fn get(&self, slot: usize) -> usize;
    fn set(&mut self, slot: usize, index: usize);
}

/// Float32 output seen as 32-bit words: indices are parked in the slots while the selection
/// runs, then replaced by the bits of their values.
struct ValueSlots<'a> {
    y: &'a mut [u32],
    at: usize,
    inner: usize,
}

impl Slots for ValueSlots<'_> {
    fn get(&self, slot: usize) -> usize {
        self.y[self.at + slot * self.inner] as usize
    }
    fn set(&mut self, slot: usize, index: usize) {
        self.y[self.at + slot * self.inner] = index as u32;
    }
}

/// Int64 output, little-endian bytes.
struct IndexSlots<'a> {
    y: &'a mut [u8],
    at: usize,
    inner: usize,
}

impl Slots for IndexSlots<'_> {
    fn get(&self, slot: usize) -> usize {
        let o = (self.at + slot * self.inner) * 8;
        let mut b = [0u8; 8];
        b.copy_from_slice(&self.y[o..o + 8]);
        i64::from_le_bytes(b) as usize
    }
    fn set(&mut self, slot: usize, index: usize) {
        let o = (self.at + slot * self.inner) * 8;
        self.y[o..o + 8].copy_from_slice(&(index as i64).to_le_bytes());
    }
}

/// Selects the best `t.k` of the run at `x[at + j·inner]`, `j < t.len`, into `slots`.
fn select(t: &TopK, x: &[f32], at: usize, slots: &mut impl Slots) {
    let value = |j: usize| x[at + j * t.inner];
    let mut filled = 0usize;
    for j in 0..t.len {
        let v = value(j);
        if filled == t.k && !before(v, value(slots.get(t.k - 1)), t.largest) {
            continue;
        }
        // The first slot holding a strictly worse entry; the ones from there on move down.
        let mut pos = filled.min(t.k - 1);
        while pos > 0 && before(v, value(slots.get(pos - 1)), t.largest) {
            pos -= 1;
        }
        let last = filled.min(t.k - 1);
        let mut s = last;
        while s > pos {
            let prev = slots.get(s - 1);
            slots.set(s, prev);
            s -= 1;
        }
        slots.set(pos, j);
        filled = (filled + 1).min(t.k);
    }
}

/// Runs one TopK step: `y` is float32 values or little-endian int64 indices (`t.indices`).
#[cfg(feature = "float-ops")]
pub fn top_k(t: &TopK, x: &[f32], y: &mut [u8]) -> Result<()> {
    let out = t
        .outer
        .checked_mul(t.k)
        .and_then(|v| v.checked_mul(t.inner));
    let ok = t
        .outer
        .checked_mul(t.len)
        .and_then(|v| v.checked_mul(t.inner))
        == Some(x.len())
        && t.k >= 1
        && t.k <= t.len
        && t.len <= u32::MAX as usize
        && out.and_then(|n| n.checked_mul(if t.indices { 8 } else { 4 })) == Some(y.len());
    if !ok {
        return Err(Error::BadIo {
            what: "TopK buffer sizes",
        });
    }
    for o in 0..t.outer {
        for i in 0..t.inner {
            let at_x = o * t.len * t.inner + i;
            let at_y = o * t.k * t.inner + i;
            if t.indices {
                let mut slots = IndexSlots {
                    y: &mut *y,
                    at: at_y,
                    inner: t.inner,
                };
                select(t, x, at_x, &mut slots);
            } else {
                let words: &mut [u32] =
                    bytemuck::try_cast_slice_mut(&mut *y).map_err(|_| Error::BadIo {
                        what: "misaligned float buffer",
                    })?;
                let mut slots = ValueSlots {
                    y: words,
                    at: at_y,
                    inner: t.inner,
                };
                select(t, x, at_x, &mut slots);
                for s in 0..t.k {
                    let j = slots.get(s);
                    slots.y[at_y + s * t.inner] = x[at_x + j * t.inner].to_bits();
                }
            }
        }
    }
    Ok(())
}

#[cfg(all(test, feature = "float-ops"))]
mod tests {
    use super::*;
    use std::{vec, vec::Vec};

    fn run(
        x: &[f32],
        outer: usize,
        len: usize,
        inner: usize,
        k: usize,
        largest: bool,
    ) -> (Vec<f32>, Vec<i64>) {
        let t = TopK {
            outer,
            len,
            inner,
            k,
            largest,
            indices: false,
        };
        let mut v = vec![0u8; outer * k * inner * 4];
        top_k(&t, x, &mut v).unwrap();
        let mut ix = vec![0u8; outer * k * inner * 8];
        top_k(&TopK { indices: true, ..t }, x, &mut ix).unwrap();
        (
            v.chunks_exact(4)
                .map(|c| f32::from_le_bytes(c.try_into().unwrap()))
                .collect(),
            ix.chunks_exact(8)
                .map(|c| i64::from_le_bytes(c.try_into().unwrap()))
                .collect(),
        )
    }

    /// Against a sort of (value, index) pairs, over runs with many ties, along inner axes too.
    #[test]
    fn matches_a_stable_sort() {
        let mut seed = 7u32;
        for case in 0..200 {
            let (outer, len, inner) = (1 + case % 3, 1 + case % 9, 1 + case % 4);
            let k = 1 + (case * 7) % len;
            let largest = case % 2 == 0;
            let x: Vec<f32> = (0..outer * len * inner)
                .map(|_| {
                    seed = seed.wrapping_mul(1_103_515_245).wrapping_add(12_345);
                    ((seed >> 16) % 5) as f32 - 2.0
                })
                .collect();
            let (v, ix) = run(&x, outer, len, inner, k, largest);
            for o in 0..outer {
                for i in 0..inner {
                    let mut pairs: Vec<(f32, usize)> = (0..len)
                        .map(|j| (x[(o * len + j) * inner + i], j))
                        .collect();
                    // Stable: equal values keep the lower index first.
                    pairs.sort_by(|a, b| {
                        let c = a.0.partial_cmp(&b.0).unwrap();
                        if largest {
                            c.reverse()
                        } else {
                            c
                        }
                    });
                    for (s, want) in pairs.iter().take(k).enumerate() {
                        let at = (o * k + s) * inner + i;
                        assert_eq!((v[at], ix[at] as usize), *want, "case {case}");
                    }
                }
            }
        }
    }

    #[test]
    fn nan_is_the_largest() {
        let x = [1.0, f32::NAN, 3.0, -1.0];
        let (v, ix) = run(&x, 1, 4, 1, 2, true);
        assert!(v[0].is_nan() && v[1] == 3.0);
        assert_eq!(ix, [1, 2]);
        let (v, ix) = run(&x, 1, 4, 1, 2, false);
        assert_eq!((v, ix), (vec![-1.0, 1.0], vec![3, 0]));
    }

    #[test]
    fn wrong_buffer_sizes_are_errors() {
        let t = TopK {
            outer: 1,
            len: 4,
            inner: 1,
            k: 2,
            largest: true,
            indices: true,
        };
        assert!(top_k(&t, &[0.0; 4], &mut [0u8; 8]).is_err());
        assert!(top_k(&t, &[0.0; 3], &mut [0u8; 16]).is_err());
        assert!(top_k(&TopK { k: 5, ..t }, &[0.0; 4], &mut [0u8; 40]).is_err());
    }
}

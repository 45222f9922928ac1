//! Tensors of one value with another placed by position:
//!
//! - `OneHot`: `depth` entries along a new axis, `on` where the entry equals the index and
//!   `off` elsewhere (class ids into masks or embedding selectors). Indices may be int64,
//!   int32 or float32 (truncated) and negative (counted from `depth`); one outside
//!   `[-depth, depth)` gives all `off`, as ONNX specifies. `depth` must be a constant (it sets
//!   the output shape); `values = [off, on]` may be run-time data of any element type.
//! - `EyeLike`: a 2-D identity (ones on diagonal `k`) shaped like its input.

// The step types are part of every build (the step table names them); planning and the
// kernels only with extra-ops.
#![cfg_attr(not(feature = "extra-ops"), allow(dead_code, unused_imports))]

use crate::error::Result;
use crate::kernels::size_mismatch;
use crate::onnx::Node;
use crate::ops::{input, shape_err, unsupported, Op, Prep, MAX_STEP_INPUTS};
use crate::prepare::only_attrs;
use crate::tensor::{DType, Shape, MAX_RANK};

/// Plans a `OneHot` or `EyeLike` node (one step).
#[inline(never)] // keeps its locals out of prepare_node's frame (MCU stacks)
pub(crate) fn prepare_one_hot<const T: usize, const N: usize>(
    p: &Prep<'_, '_, T, N>,
    node: &Node<'_>,
    ins: &mut heapless::Vec<u16, MAX_STEP_INPUTS>,
    out_name: &str,
) -> Result<(Op, DType, Shape)> {
    let (x, t) = input(p.g, node, 0)?;
    let _ = ins.push(x);
    if node.op_type == "EyeLike" {
        only_attrs(node, &["dtype", "k"])?;
        if t.shape.rank() != 2 {
            return Err(shape_err(node, "input must be 2-D"));
        }
        let dtype = match node.attr_i("dtype", -1)? {
            -1 => t.dtype,
            d => DType::from_onnx(d, out_name)
                .map_err(|_| unsupported(node, "dtype"))?
                .computed(),
        };
        let op = Op::EyeLike {
            rows: t.shape.dim(0),
            cols: t.shape.dim(1),
            k: node.attr_i("k", 0)?,
        };
        return Ok((op, dtype, t.shape));
    }
    only_attrs(node, &["axis"])?;
    if !matches!(t.dtype, DType::I64 | DType::I32 | DType::F32) {
        return Err(unsupported(
            node,
            "indices type (OneHot takes int64, int32 or float32)",
        ));
    }
    let depth = p
        .g
        .konst(node.input(1))
        .ok_or_else(|| unsupported(node, "depth computed at run time (bake it into the model)"))?;
    if depth.shape.numel() != 1 {
        return Err(shape_err(node, "depth must hold one value"));
    }
    let depth = depth.i64_at(0)?;
    let (v, tv) = input(p.g, node, 2)?;
    let _ = ins.push(v);
    if depth < 1 || depth > u32::MAX as i64 || tv.shape.numel() != 2 {
        return Err(shape_err(
            node,
            "depth must be at least 1 and values must hold [off, on]",
        ));
    }
    let r = t.shape.rank();
    if r + 1 > MAX_RANK {
        return Err(unsupported(node, "output rank above the maximum"));
    }
    let a = node.attr_i("axis", -1)?;
    let ax = match a {
        a if a < 0 && a >= -(r as i64) - 1 => (a + r as i64 + 1) as usize,
        a if a >= 0 && a <= r as i64 => a as usize,
        _ => return Err(shape_err(node, "axis out of range")),
    };
    let mut d = [0i64; MAX_RANK];
    for (o, slot) in d[..r + 1].iter_mut().enumerate() {
        *slot = match o.cmp(&ax) {
            core::cmp::Ordering::Less => t.shape.dim(o) as i64,
            core::cmp::Ordering::Equal => depth,
            core::cmp::Ordering::Greater => t.shape.dim(o - 1) as i64,
        };
    }
    let dims = t.shape.dims();
    let op = Op::OneHot {
        outer: dims[..ax].iter().map(|&v| v as usize).product(),
        depth: depth as usize,
        inner: dims[ax..].iter().map(|&v| v as usize).product(),
        indices: t.dtype,
    };
    Ok((op, tv.dtype, Shape::new(&d[..r + 1], out_name)?))
}

/// OneHot: output `outer × depth × inner` of `esize`-byte elements from indices `outer ×
/// inner` (`indices` their type) and `values = [off, on]` (see the module doc).
#[inline(never)] // one body, not copied into eval (MCU flash)
pub fn one_hot(
    esize: usize,
    (outer, depth, inner): (usize, usize, usize),
    indices: DType,
    idx: &[u8],
    values: &[u8],
    y: &mut [u8],
) -> Result<()> {
    let isz = indices.size();
    if esize == 0
        || idx.len() != outer * inner * isz
        || values.len() != 2 * esize
        || y.len() != outer * depth * inner * esize
    {
        return Err(size_mismatch());
    }
    let (off, on) = values.split_at(esize);
    for c in y.chunks_exact_mut(esize) {
        c.copy_from_slice(off);
    }
    for (k, c) in idx.chunks_exact(isz).enumerate() {
        let v = match indices {
            DType::I64 => i64::from_le_bytes([c[0], c[1], c[2], c[3], c[4], c[5], c[6], c[7]]),
            DType::I32 => i32::from_le_bytes([c[0], c[1], c[2], c[3]]) as i64,
            // Truncated toward zero; NaN and infinities land outside any depth.
            _ => {
                let f = f32::from_le_bytes([c[0], c[1], c[2], c[3]]);
                if f.is_finite() {
                    f as i64
                } else {
                    i64::MIN
                }
            }
        };
        let d = depth as i64;
        let v = if v < 0 { v.saturating_add(d) } else { v };
        if (0..d).contains(&v) {
            let (o, i) = (k / inner.max(1), k % inner.max(1));
            let at = ((o * depth + v as usize) * inner + i) * esize;
            y[at..at + esize].copy_from_slice(on);
        }
    }
    Ok(())
}

/// EyeLike: `rows × cols` zeros with `one` (an element's bytes) at `(i, i + k)`.
#[inline(never)] // one body, not copied into eval (MCU flash)
pub fn eye_like(rows: usize, cols: usize, k: i64, one: &[u8], y: &mut [u8]) -> Result<()> {
    let es = one.len();
    if y.len() != rows * cols * es {
        return Err(size_mismatch());
    }
    y.fill(0);
    for i in 0..rows {
        let j = i as i64 + k;
        if (0..cols as i64).contains(&j) {
            let at = (i * cols + j as usize) * es;
            y[at..at + es].copy_from_slice(one);
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
    fn one_hot_places_on_values_and_skips_out_of_range() {
        // Indices [1, -1, 3] (int64), depth 3, on the last axis; values int32 [off 0, on 7].
        let idx: Vec<u8> = [1i64, -1, 3].iter().flat_map(|v| v.to_le_bytes()).collect();
        let values: Vec<u8> = [0i32, 7].iter().flat_map(|v| v.to_le_bytes()).collect();
        let mut y = vec![0xffu8; 9 * 4];
        one_hot(4, (3, 3, 1), DType::I64, &idx, &values, &mut y).unwrap();
        let got: Vec<i32> = y
            .chunks_exact(4)
            .map(|c| i32::from_le_bytes([c[0], c[1], c[2], c[3]]))
            .collect();
        assert_eq!(got, [0, 7, 0, 0, 0, 7, 0, 0, 0]);
        // Axis 0 (outer 1, inner 3): entry d of index k at d·3 + k; float indices truncate.
        let idx: Vec<u8> = [1.7f32, -0.5, 2.0]
            .iter()
            .flat_map(|v| v.to_le_bytes())
            .collect();
        let mut y = vec![0u8; 9];
        one_hot(1, (1, 3, 3), DType::F32, &idx, &[0, 1], &mut y).unwrap();
        assert_eq!(y, [0, 1, 0, 1, 0, 0, 0, 0, 1]);
    }

    #[test]
    fn eye_like_puts_ones_on_diagonal_k() {
        let mut y = vec![9u8; 6];
        eye_like(2, 3, 1, &[1], &mut y).unwrap();
        assert_eq!(y, [0, 1, 0, 0, 0, 1]);
        eye_like(2, 3, -1, &[1], &mut y).unwrap();
        assert_eq!(y, [0, 0, 0, 1, 0, 0]);
    }
}

//! `GatherND` and `ScatterND`: index tuples that address whole slices of a tensor. What
//! TensorFlow exports `tf.gather_nd`/`tf.scatter_nd` and PyTorch's advanced indexing
//! (`x[idx0, idx1]`, `x[idx] = v`) as.
//!
//! The last axis of the (int64) indices holds `k` coordinates into the data's leading axes; each
//! tuple picks the slice of everything after them (`slice` elements, contiguous in row-major
//! order), so the kernels copy whole slices. `batch_dims` (GatherND only) pairs the first axes
//! of data and indices: tuples of batch `i` index into batch `i` of the data. The indices are
//! run-time data, so a coordinate outside its axis is an error at invoke, never a wild read.

// The step types are part of every build (the step table names them); planning and the
// kernels only with extra-ops.
#![cfg_attr(not(feature = "extra-ops"), allow(dead_code, unused_imports))]

use crate::error::{Error, Result};
use crate::kernels::size_mismatch;
use crate::onnx::Node;
use crate::ops::{input, shape_err, unsupported, Op, Prep, ScatterReduction, MAX_STEP_INPUTS};
use crate::prepare::only_attrs;
use crate::tensor::{DType, Shape, MAX_RANK};

/// Plans a `GatherND` or `ScatterND` node (one step).
#[inline(never)] // keeps its locals out of prepare_node's frame (MCU stacks)
pub(crate) fn prepare_index_nd<const T: usize, const N: usize>(
    p: &Prep<'_, '_, T, N>,
    node: &Node<'_>,
    ins: &mut heapless::Vec<u16, MAX_STEP_INPUTS>,
    out_name: &str,
) -> Result<(Op, DType, Shape)> {
    let gather = node.op_type == "GatherND";
    only_attrs(
        node,
        if gather {
            &["batch_dims"]
        } else {
            &["reduction"]
        },
    )?;
    let (x, t) = input(p.g, node, 0)?;
    let (ix, ti) = input(p.g, node, 1)?;
    let _ = ins.push(x);
    let _ = ins.push(ix);
    if ti.dtype != DType::I64 {
        return Err(shape_err(node, "indices must be int64"));
    }
    let (r, q) = (t.shape.rank(), ti.shape.rank());
    let b = if gather {
        usize::try_from(node.attr_i("batch_dims", 0)?)
            .map_err(|_| shape_err(node, "batch_dims must not be negative"))?
    } else {
        0
    };
    if q == 0 || r == 0 || b >= q.min(r) {
        return Err(shape_err(
            node,
            "indices need rank >= 1 and batch_dims below both ranks",
        ));
    }
    let k = ti.shape.dim(q - 1);
    if k == 0 || k > r - b {
        return Err(shape_err(
            node,
            "the indices' last axis must hold 1 to rank(data) - batch_dims coordinates",
        ));
    }
    if (0..b).any(|a| ti.shape.dim(a) != t.shape.dim(a)) {
        return Err(shape_err(node, "the batch axes of data and indices differ"));
    }
    // Tuples' shape (indices without their last axis), then the slice's (data after the
    // indexed axes): GatherND's output and ScatterND's updates.
    let rank = q - 1 + r - b - k;
    if rank > MAX_RANK {
        return Err(unsupported(node, "output rank above the maximum"));
    }
    let mut d = [0i64; MAX_RANK];
    for (o, a) in (0..q - 1).enumerate() {
        d[o] = ti.shape.dim(a) as i64;
    }
    for (o, a) in (b + k..r).enumerate() {
        d[q - 1 + o] = t.shape.dim(a) as i64;
    }
    let tuples = Shape::new(&d[..rank], out_name)?;
    if gather {
        let op = Op::GatherNd {
            data: t.shape,
            k: k as u8,
            batch_dims: b as u8,
        };
        return Ok((op, t.dtype, tuples));
    }
    let (u, tu) = input(p.g, node, 2)?;
    let _ = ins.push(u);
    if tu.dtype != t.dtype || tu.shape.dims() != tuples.dims() {
        return Err(shape_err(
            node,
            "updates must have the shape indices[:-1] + data[k:] and data's type",
        ));
    }
    let reduction = crate::prepare::scatter_reduction(node, t.dtype)?;
    Ok((
        Op::ScatterNd {
            k: k as u8,
            reduction,
        },
        t.dtype,
        t.shape,
    ))
}

/// Calls `f(t, at)` for every index tuple `t` (int64, `k` per tuple, negative counted from the
/// end) with the element offset in `data` of the slice it addresses; tuples are split evenly
/// over the `batch_dims` leading axes. A coordinate outside its axis stops with `what`.
fn for_each_slice(
    data: &Shape,
    batch_dims: usize,
    k: usize,
    idx: &[u8],
    what: &'static str,
    mut f: impl FnMut(usize, usize),
) -> Result<()> {
    let r = data.rank();
    if k == 0 || batch_dims + k > r || !idx.len().is_multiple_of(8 * k) {
        return Err(size_mismatch());
    }
    let dims = data.dims();
    let batches: usize = dims[..batch_dims].iter().map(|&v| v as usize).product();
    let per_batch: usize = dims[batch_dims..].iter().map(|&v| v as usize).product();
    let tuples = idx.len() / (8 * k);
    // (Zero batches hold no tuples.)
    if !tuples.is_multiple_of(batches) {
        return Err(size_mismatch());
    }
    let per = tuples / batches.max(1);
    let mut stride = [0usize; MAX_RANK];
    let mut s = 1;
    for a in (0..r).rev() {
        stride[a] = s;
        s *= data.dim(a);
    }
    for (t, tuple) in idx.chunks_exact(8 * k).enumerate() {
        let mut at = (t / per.max(1)) * per_batch;
        for (j, c) in tuple.chunks_exact(8).enumerate() {
            let n = data.dim(batch_dims + j) as i64;
            let v = i64::from_le_bytes([c[0], c[1], c[2], c[3], c[4], c[5], c[6], c[7]]);
            let v = if v < 0 { v + n } else { v };
            if !(0..n).contains(&v) {
                return Err(Error::BadIo { what });
            }
            at += v as usize * stride[batch_dims + j];
        }
        f(t, at);
    }
    Ok(())
}

/// GatherND for `esize`-byte elements: output slice `t` is the `data` slice that index tuple `t`
/// addresses (see the module doc).
#[inline(never)] // one body, not copied into eval (MCU flash)
pub fn gather_nd(
    esize: usize,
    data: &Shape,
    k: usize,
    batch_dims: usize,
    idx: &[u8],
    x: &[u8],
    y: &mut [u8],
) -> Result<()> {
    let slice = data.dims()[(batch_dims + k).min(data.rank())..]
        .iter()
        .map(|&v| v as usize)
        .product::<usize>()
        * esize;
    let tuples = idx.len() / (8 * k.max(1));
    if x.len() != data.numel() * esize || y.len() != tuples * slice {
        return Err(size_mismatch());
    }
    for_each_slice(
        data,
        batch_dims,
        k,
        idx,
        "GatherND index out of range",
        |t, at| y[t * slice..(t + 1) * slice].copy_from_slice(&x[at * esize..at * esize + slice]),
    )
}

/// ScatterND: `y` is `x` (shape `data`), then update slice `t` goes to the slice index tuple `t`
/// addresses, combined by `reduction` (float32 for any but `None`). Updates apply in order, so
/// with duplicate tuples and no reduction the last one wins.
#[allow(clippy::too_many_arguments)]
#[inline(never)] // one body, not copied into eval (MCU flash)
pub fn scatter_nd(
    esize: usize,
    data: &Shape,
    k: usize,
    reduction: ScatterReduction,
    x: &[u8],
    idx: &[u8],
    upd: &[u8],
    y: &mut [u8],
) -> Result<()> {
    let slice = data.dims()[k.min(data.rank())..]
        .iter()
        .map(|&v| v as usize)
        .product::<usize>()
        * esize;
    let tuples = idx.len() / (8 * k.max(1));
    if x.len() != data.numel() * esize
        || y.len() != x.len()
        || upd.len() != tuples * slice
        || (reduction != ScatterReduction::None && esize != 4)
    {
        return Err(size_mismatch());
    }
    y.copy_from_slice(x);
    for_each_slice(data, 0, k, idx, "ScatterND index out of range", |t, at| {
        let u = &upd[t * slice..(t + 1) * slice];
        let dst = &mut y[at * esize..at * esize + slice];
        crate::kernels::combine_update(reduction, dst, u);
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::vec;
    use std::vec::Vec;

    fn bytes_i64(v: &[i64]) -> Vec<u8> {
        v.iter().flat_map(|x| x.to_le_bytes()).collect()
    }
    fn bytes_f32(v: &[f32]) -> Vec<u8> {
        v.iter().flat_map(|x| x.to_le_bytes()).collect()
    }
    fn f32s(b: &[u8]) -> Vec<f32> {
        b.chunks_exact(4)
            .map(|c| f32::from_le_bytes([c[0], c[1], c[2], c[3]]))
            .collect()
    }

    #[test]
    fn gather_nd_picks_rows_and_elements_with_batches() {
        // data 2×2×2 = 0..8; batch_dims 1, one coordinate per tuple: row of each batch.
        let data = Shape::new(&[2, 2, 2], "d").unwrap();
        let x = bytes_f32(&[0., 1., 2., 3., 4., 5., 6., 7.]);
        let mut y = vec![0u8; 4 * 4];
        gather_nd(4, &data, 1, 1, &bytes_i64(&[1, 0]), &x, &mut y).unwrap();
        assert_eq!(f32s(&y), [2., 3., 4., 5.]);
        // No batches, full coordinates (negative counts from the end): single elements.
        let mut y = vec![0u8; 4 * 2];
        gather_nd(4, &data, 3, 0, &bytes_i64(&[1, -1, 0, 0, 1, 1]), &x, &mut y).unwrap();
        assert_eq!(f32s(&y), [6., 3.]);
        // Out of range is an error, not a read.
        let err = gather_nd(4, &data, 3, 0, &bytes_i64(&[2, 0, 0, 0, 0, 0]), &x, &mut y);
        assert!(matches!(err, Err(Error::BadIo { .. })));
    }

    #[test]
    fn scatter_nd_writes_and_reduces_slices_in_order() {
        let data = Shape::new(&[3, 2], "d").unwrap();
        let x = bytes_f32(&[1., 1., 2., 2., 3., 3.]);
        let idx = bytes_i64(&[2, 0, 2]);
        let upd = bytes_f32(&[10., 20., 30., 40., 50., 60.]);
        let mut y = vec![0u8; x.len()];
        scatter_nd(4, &data, 1, ScatterReduction::None, &x, &idx, &upd, &mut y).unwrap();
        assert_eq!(f32s(&y), [30., 40., 2., 2., 50., 60.]);
        scatter_nd(4, &data, 1, ScatterReduction::Add, &x, &idx, &upd, &mut y).unwrap();
        assert_eq!(f32s(&y), [31., 41., 2., 2., 63., 83.]);
        scatter_nd(4, &data, 1, ScatterReduction::Max, &x, &idx, &upd, &mut y).unwrap();
        assert_eq!(f32s(&y), [30., 40., 2., 2., 50., 60.]);
        let bad = bytes_i64(&[3, 0, 2]);
        let err = scatter_nd(4, &data, 1, ScatterReduction::None, &x, &bad, &upd, &mut y);
        assert!(matches!(err, Err(Error::BadIo { .. })));
    }
}

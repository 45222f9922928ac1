//! ONNX's integer operators (the "QOperator" format): `QLinearConv`, `QLinearMatMul`,
//! `ConvInteger` and `MatMulInteger`.
//!
//! A `QLinearConv` (or `QLinearMatMul` with a constant 2-D right side) with symmetric int8
//! weights is exactly the fused int8 layer the QDQ path builds, so it becomes the same
//! [`QLinear`] step and runs the optimized kernels. Everything else — uint8 or asymmetric
//! weights, weights computed at run time, batched products, int32 outputs — runs the integer
//! reference kernel here: Σ (x − zx)(w − zw) in int32, then the bias and (for the QLinear ops)
//! the same fixed-point requantization.

// The types are part of every build (the step table names them); the planning and kernel code
// only with the feature.
#![cfg_attr(not(feature = "integer-ops"), allow(dead_code, unused_imports))]

use crate::error::{Error, Result};
use crate::graph::NONE;
use crate::onnx::Node;
use crate::ops::{input, shape_err, unsupported, Fill, Op, Prep, QLinear, Step, Window};
use crate::prepare::{conv_window, make_step, window_out_shape};
use crate::quant::{Requant, RequantTable};
use crate::tensor::{DType, Shape, MAX_RANK};

/// Geometry of an integer product.
#[derive(Debug, Clone, Copy, PartialEq)]
pub enum IntGeom {
    /// Convolution; weights `oc × c/group × kh × kw`.
    Conv(Window),
    /// Batched matrix product `[batch] m×k · k×n` (a batch stride of 0 broadcasts).
    MatMul {
        /// Batch count.
        batch: usize,
        /// Rows of A.
        m: usize,
        /// Reduction length.
        k: usize,
        /// Columns of B.
        n: usize,
        /// Elements between batches of A (0: shared).
        a_batch_stride: usize,
        /// Elements between batches of B (0: shared).
        b_batch_stride: usize,
    },
}

impl IntGeom {
    /// Output channels (conv) or columns (matmul): the axis weight zero points, biases and
    /// requantization run along.
    pub fn channels(&self) -> usize {
        match self {
            IntGeom::Conv(w) => w.oc,
            IntGeom::MatMul { n, .. } => *n,
        }
    }
}

/// 8-bit output of a QLinear op.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Out8 {
    /// Persist offset of the per-channel [`Requant`] pairs.
    pub requant: usize,
    /// Output zero point.
    pub zy: i32,
    /// uint8 rather than int8.
    pub unsigned: bool,
}

/// A planned integer product with arbitrary zero points.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct IntLinear {
    /// Geometry.
    pub geom: IntGeom,
    /// x (A) is uint8 rather than int8.
    pub x_unsigned: bool,
    /// w (B) is uint8 rather than int8.
    pub w_unsigned: bool,
    /// x zero point (the constant, or the last value read from the step's third input).
    pub zx: i32,
    /// The x zero point is a tensor computed at run time (the step's third input), as after
    /// `DynamicQuantizeLinear` in onnxruntime's dynamically quantized files.
    pub zx_input: bool,
    /// The weight zero point is a one-element tensor read at run time (the step's input after
    /// the x zero point's); `zw` then holds zeros.
    pub zw_input: bool,
    /// Persist offset of one i32 weight zero point per channel.
    pub zw: usize,
    /// Persist offset of one i32 bias per channel (usize::MAX: none).
    pub bias: usize,
    /// 8-bit requantized output; `None` for the int32 output of ConvInteger/MatMulInteger.
    pub out8: Option<Out8>,
}

fn konst_scalar_f32<const T: usize, const N: usize>(
    p: &Prep<'_, '_, T, N>,
    node: &Node<'_>,
    i: usize,
) -> Result<f32> {
    let k =
        p.g.konst(node.input(i))
            .ok_or_else(|| unsupported(node, "non-constant scale"))?;
    if k.shape.numel() != 1 {
        return Err(unsupported(node, "per-row scale of the left input"));
    }
    let s = k.f32_at(0)?;
    if !(s.is_finite() && s > 0.0) {
        return Err(shape_err(node, "scale must be positive and finite"));
    }
    Ok(s)
}

impl IntLinear {
    /// The zero points read at run time from the step's inputs after x and w (`ins`): this
    /// step with its x zero point set, and the weight zero point (one value), if any.
    pub fn with_input_zero_points(mut self, ins: &[&[u8]]) -> Result<(Self, Option<i32>)> {
        let one = |b: Option<&&[u8]>, unsigned: bool| match b {
            Some(&&[v]) => Ok(elem(&[v], 0, unsigned)),
            _ => Err(Error::BadIo {
                what: "integer op zero point is not one 8-bit value",
            }),
        };
        let mut at = 0;
        if self.zx_input {
            self.zx = one(ins.get(at), self.x_unsigned)?;
            at += 1;
        }
        let zw = match self.zw_input {
            true => Some(one(ins.get(at), self.w_unsigned)?),
            false => None,
        };
        Ok((self, zw))
    }
}

/// The x zero point of ConvInteger/MatMulInteger: a constant (0 when absent), or a one-element
/// tensor computed at run time, returned as its id.
fn x_zero_point<const T: usize, const N: usize>(
    p: &Prep<'_, '_, T, N>,
    node: &Node<'_>,
    want: DType,
) -> Result<(i32, u16)> {
    if node.input(2).is_none() || p.g.konst(node.input(2)).is_some() {
        return Ok((konst_zp(p, node, 2, want)?, NONE));
    }
    let (id, t) = input(p.g, node, 2)?;
    if t.dtype != want {
        return Err(shape_err(node, "zero point type differs from its tensor's"));
    }
    if t.shape.numel() != 1 {
        return Err(unsupported(node, "per-row zero point of the left input"));
    }
    Ok((0, id))
}

/// A constant zero point (0 when absent); must be scalar.
fn konst_zp<const T: usize, const N: usize>(
    p: &Prep<'_, '_, T, N>,
    node: &Node<'_>,
    i: usize,
    want: DType,
) -> Result<i32> {
    let Some(name) = node.input(i) else {
        return Ok(0);
    };
    let k =
        p.g.konst(Some(name))
            .ok_or_else(|| unsupported(node, "non-constant zero point"))?;
    if k.dtype != want {
        return Err(shape_err(node, "zero point type differs from its tensor's"));
    }
    if k.shape.numel() != 1 {
        return Err(unsupported(node, "per-row zero point of the left input"));
    }
    Ok(k.i64_at(0)? as i32)
}

fn int8_type(node: &Node<'_>, t: DType) -> Result<bool> {
    match t {
        DType::U8 => Ok(true),
        DType::I8 => Ok(false),
        _ => Err(unsupported(node, "element type (uint8 or int8 expected)")),
    }
}

/// Checks a per-channel constant (weight zero point or scale): one value, or one per channel.
fn per_channel_len(node: &Node<'_>, len: usize, channels: usize) -> Result<()> {
    if len == 1 || len == channels {
        Ok(())
    } else {
        Err(shape_err(
            node,
            "weight scale/zero point length is neither 1 nor the channel count",
        ))
    }
}

/// Plans one of the four integer ops.
#[inline(never)] // keeps this frame off the planner's stack on MCUs
pub(crate) fn prepare_intop<const T: usize, const N: usize>(
    p: &mut Prep<'_, '_, T, N>,
    node: &Node<'_>,
    idx: u16,
) -> Result<Step> {
    let qlinear = node.op_type.starts_with("QLinear");
    let conv = node.op_type.contains("Conv");
    if node.outputs.len() != 1 {
        return Err(unsupported(node, "number of outputs"));
    }
    // Input positions: QLinear ops interleave scale and zero point after each tensor.
    let (xi, wi) = if qlinear { (0, 3) } else { (0, 1) };
    let (x_id, xt) = input(p.g, node, xi)?;
    let (w_id, wt) = input(p.g, node, wi)?;
    let x_unsigned = int8_type(node, xt.dtype)?;
    let w_unsigned = int8_type(node, wt.dtype)?;
    // QLinear ops take constant zero points only; the integer ops also a run-time one.
    let (zx, zx_id) = if qlinear {
        (konst_zp(p, node, 2, xt.dtype)?, NONE)
    } else {
        x_zero_point(p, node, xt.dtype)?
    };
    let zw_name = node.input(if qlinear { 5 } else { 3 });
    let (geom, out_shape) = if conv {
        let win = conv_window(node, &xt.shape, &wt.shape)?;
        (IntGeom::Conv(win), window_out_shape(&xt.shape, &win, node)?)
    } else {
        matmul_geom(node, &xt.shape, &wt.shape)?
    };
    let ch = geom.channels();
    // ConvInteger/MatMulInteger also take a one-element weight zero point computed at run time.
    let zw_run = match zw_name.filter(|n| !qlinear && !n.is_empty() && p.g.konst(Some(n)).is_none())
    {
        Some(_) => {
            let (id, t) = input(p.g, node, 3)?;
            if t.dtype != wt.dtype {
                return Err(shape_err(node, "zero point type differs from its tensor's"));
            }
            if t.shape.numel() != 1 {
                return Err(unsupported(
                    node,
                    "non-constant per-channel weight zero point",
                ));
            }
            id
        }
        None => NONE,
    };
    let zw_k = match zw_name.filter(|_| zw_run == NONE) {
        Some(n) => {
            let k =
                p.g.konst(Some(n))
                    .ok_or_else(|| unsupported(node, "non-constant zero point"))?;
            if k.dtype != wt.dtype {
                return Err(shape_err(node, "zero point type differs from its tensor's"));
            }
            per_channel_len(node, k.shape.numel(), ch)?;
            Some(k)
        }
        None => None,
    };
    let mut zw_all_zero = true;
    if let Some(k) = zw_k {
        k.for_each_i64(|_, v| zw_all_zero &= v == 0)?;
    }
    let (mut sx, mut sy, mut sw, mut zy, mut y_unsigned) = (0.0, 0.0, NONE, 0, false);
    let mut bias = NONE;
    if qlinear {
        sx = konst_scalar_f32(p, node, 1)?;
        let swk =
            p.g.konst(node.input(4))
                .ok_or_else(|| unsupported(node, "non-constant scale"))?;
        per_channel_len(node, swk.shape.numel(), ch)?;
        for i in 0..swk.shape.numel() {
            let s = swk.f32_at(i)?;
            if !(s.is_finite() && s > 0.0) {
                return Err(shape_err(node, "scale must be positive and finite"));
            }
        }
        sw = p.g.find(node.input(4).unwrap_or("")).unwrap_or(NONE);
        sy = konst_scalar_f32(p, node, 6)?;
        let ydt = match node.input(7) {
            Some(n) => p.g.konst(Some(n)).map_or(DType::U8, |k| k.dtype),
            None => DType::U8,
        };
        y_unsigned = int8_type(node, ydt)?;
        zy = konst_zp(p, node, 7, ydt)?;
        if let Some(bn) = node.input(8).filter(|_| conv) {
            let id =
                p.g.find(bn)
                    .ok_or_else(|| shape_err(node, "undefined bias"))?;
            match p.g.t(id).konst {
                Some(k) if k.dtype == DType::I32 && k.shape.numel() == ch => bias = id,
                _ => return Err(shape_err(node, "bias must be a constant int32 of length M")),
            }
        }
    }
    let y_id = p.g.find(node.outputs[0]).ok_or(Error::InvalidModel {
        reason: "node output not in the graph",
    })?;
    let w_const = p.g.t(w_id).konst.filter(|k| k.raw().is_some());
    // The fused int8 layer: symmetric int8 weights known at plan time, x and y alike.
    if qlinear && !w_unsigned && zw_all_zero && w_const.is_some() && x_unsigned == y_unsigned {
        let (win, w_stride_oc, w_stride_k) = match geom {
            IntGeom::Conv(win) => (Some(win), win.c / win.group * win.kh * win.kw, 1),
            IntGeom::MatMul {
                batch,
                m,
                k,
                n,
                b_batch_stride: 0,
                ..
            } => (Some(Window::fully_connected(batch * m, k, n)), 1, n),
            _ => (None, 0, 0),
        };
        if let Some(win) = win {
            let (act_min, act_max) = if x_unsigned { (0, 255) } else { (-128, 127) };
            let mut lin = QLinear {
                win,
                zx,
                zy,
                act_min,
                act_max,
                bias: p.reserve_n(win.oc, 4)?,
                requant: p.reserve_n(win.oc, 8)?,
                packed: 0,
                packed_len: 0,
                w_stride_oc,
                w_stride_k,
                unsigned: x_unsigned,
            };
            lin.packed_len = crate::kernels::qconv_packed_bytes(&lin);
            if lin.packed_len > 0 {
                lin.packed = p.reserve(lin.packed_len)?;
            }
            p.fill(Fill::QLinear {
                w: w_id,
                bias,
                bias_scale: NONE,
                sx,
                sw,
                sy,
                p: lin,
            })?;
            set_output(
                p,
                y_id,
                if x_unsigned { DType::U8 } else { DType::I8 },
                out_shape,
            )?;
            let mut step = make_step(idx, Op::QConv(lin), &[x_id, w_id], y_id)?;
            step.scratch = crate::kernels::qconv_scratch_bytes(&lin);
            return Ok(step);
        }
    }
    let out8 = if qlinear {
        Some(Out8 {
            requant: p.reserve_n(ch, 8)?,
            zy,
            unsigned: y_unsigned,
        })
    } else {
        None
    };
    let il = IntLinear {
        geom,
        x_unsigned,
        w_unsigned,
        zx,
        zx_input: zx_id != NONE,
        zw_input: zw_run != NONE,
        zw: p.reserve_n(ch, 4)?,
        bias: if bias == NONE {
            usize::MAX
        } else {
            p.reserve_n(ch, 4)?
        },
        out8,
    };
    let zw_id = match zw_run {
        NONE => zw_name.and_then(|n| p.g.find(n)).unwrap_or(NONE),
        _ => NONE, // read at run time; the persisted zeros are not used
    };
    p.fill(Fill::IntLinear {
        zw: zw_id,
        bias,
        sx,
        sw,
        sy,
        p: il,
    })?;
    let ydt = match out8 {
        Some(o) if o.unsigned => DType::U8,
        Some(_) => DType::I8,
        None => DType::I32,
    };
    set_output(p, y_id, ydt, out_shape)?;
    // Inputs: x, w, then the run-time zero points present, x's first.
    let mut ins = [x_id, w_id, NONE, NONE];
    let mut n = 2;
    for id in [zx_id, zw_run] {
        if id != NONE {
            ins[n] = id;
            n += 1;
        }
    }
    make_step(idx, Op::IntLinear(il), &ins[..n], y_id)
}

fn set_output<const T: usize, const N: usize>(
    p: &mut Prep<'_, '_, T, N>,
    id: u16,
    dtype: DType,
    shape: Shape,
) -> Result<()> {
    let o = p.g.t_mut(id)?;
    o.dtype = dtype;
    o.shape = shape;
    o.known = true;
    Ok(())
}

fn matmul_geom(node: &Node<'_>, a: &Shape, b: &Shape) -> Result<(IntGeom, Shape)> {
    if a.rank() < 2 || b.rank() < 2 {
        return Err(unsupported(node, "integer MatMul of a vector"));
    }
    let (m, k) = (a.dim(a.rank() - 2), a.dim(a.rank() - 1));
    let (k2, n) = (b.dim(b.rank() - 2), b.dim(b.rank() - 1));
    if k != k2 {
        return Err(shape_err(node, "inner dimensions differ"));
    }
    let ba = &a.dims()[..a.rank() - 2];
    let bb = &b.dims()[..b.rank() - 2];
    let (batch_dims, a_stride, b_stride) = if ba == bb {
        (ba, m * k, k * n)
    } else if bb.is_empty() {
        (ba, m * k, 0)
    } else if ba.is_empty() {
        (bb, 0, k * n)
    } else {
        return Err(unsupported(
            node,
            "MatMul broadcasting between different batch shapes",
        ));
    };
    let batch: usize = batch_dims.iter().map(|&d| d as usize).product();
    let mut d = [0i64; MAX_RANK];
    for (i, &v) in batch_dims.iter().enumerate() {
        d[i] = v as i64;
    }
    let r = batch_dims.len();
    d[r] = m as i64;
    d[r + 1] = n as i64;
    Ok((
        IntGeom::MatMul {
            batch: batch.max(1),
            m,
            k,
            n,
            a_batch_stride: a_stride,
            b_batch_stride: b_stride,
        },
        Shape::new(&d[..r + 2], node.outputs.first().copied().unwrap_or(""))?,
    ))
}

/// Writes the zero points, biases and requantization constants of an [`IntLinear`] step.
pub(crate) fn fill_int_linear(
    p: &IntLinear,
    zw: Option<crate::onnx::TensorView<'_>>,
    bias: Option<crate::onnx::TensorView<'_>>,
    scales: Option<(f32, crate::onnx::TensorView<'_>, f32)>,
    persist: &mut [u8],
) -> Result<()> {
    let put = crate::interp::put_i32;
    let ch = p.geom.channels();
    for c in 0..ch {
        let z = match zw {
            Some(k) => k.i64_at(if k.shape.numel() > 1 { c } else { 0 })? as i32,
            None => 0,
        };
        put(persist, p.zw, c, z)?;
        if let Some(b) = bias {
            put(persist, p.bias, c, b.i64_at(c)? as i32)?;
        }
        if let (Some(o), Some((sx, sw, sy))) = (p.out8, scales) {
            let s = sw.f32_at(if sw.shape.numel() > 1 { c } else { 0 })?;
            let r = Requant::from_f64(sx as f64 * s as f64 / sy as f64);
            put(persist, o.requant, 2 * c, r.multiplier)?;
            put(persist, o.requant, 2 * c + 1, r.shift)?;
        }
    }
    Ok(())
}

#[inline]
fn elem(b: &[u8], i: usize, unsigned: bool) -> i32 {
    let v = b[i];
    if unsigned {
        v as i32
    } else {
        v as i8 as i32
    }
}

/// The integer reference kernel: int32 accumulators Σ (x − zx)(w − zw\[c\]) + bias\[c\], written as
/// int32 or requantized to 8 bits.
#[allow(clippy::needless_range_loop)] // indices shared by x, w, the zero points and y
pub fn int_linear(
    p: &IntLinear,
    x: &[u8],
    w: &[u8],
    zw: &[i32],
    bias: Option<&[i32]>,
    rq: Option<RequantTable<'_>>,
    y: &mut [u8],
) -> Result<()> {
    let ch = p.geom.channels();
    let bad = Error::BadIo {
        what: "integer op buffers differ from the plan",
    };
    // One weight zero point per channel, or one for all (read at run time).
    if (zw.len() != ch && zw.len() != 1)
        || bias.is_some_and(|b| b.len() != ch)
        || rq.is_some_and(|r| r.len() != ch)
    {
        return Err(bad);
    }
    let out_len = match p.geom {
        IntGeom::Conv(win) => win.n * win.oc * win.oh * win.ow,
        IntGeom::MatMul { batch, m, n, .. } => batch * m * n,
    };
    let esize = if p.out8.is_some() { 1 } else { 4 };
    if y.len() != out_len * esize {
        return Err(bad);
    }
    let mut emit = |i: usize, c: usize, acc: i32| {
        let acc = acc.wrapping_add(bias.map_or(0, |b| b[c]));
        match (p.out8, rq) {
            (Some(o), Some(r)) => {
                let (lo, hi) = if o.unsigned { (0, 255) } else { (-128, 127) };
                y[i] = o.zy.saturating_add(r.get(c).apply(acc)).clamp(lo, hi) as u8;
            }
            _ => y[4 * i..4 * i + 4].copy_from_slice(&acc.to_le_bytes()),
        }
    };
    match p.geom {
        IntGeom::Conv(win) => {
            let cpg = win.c / win.group;
            let opg = win.oc / win.group;
            let per_oc = cpg * win.kh * win.kw;
            if x.len() != win.n * win.c * win.h * win.w || w.len() != win.oc * per_oc {
                return Err(bad);
            }
            for n in 0..win.n {
                for oc in 0..win.oc {
                    let g = oc / opg;
                    for oy in 0..win.oh {
                        for ox in 0..win.ow {
                            let mut acc = 0i32;
                            for ic in 0..cpg {
                                let xbase = (n * win.c + g * cpg + ic) * win.h * win.w;
                                for ky in 0..win.kh {
                                    let iy = (oy * win.sh + ky * win.dh) as isize - win.pt as isize;
                                    for kx in 0..win.kw {
                                        let ix =
                                            (ox * win.sw + kx * win.dw) as isize - win.pl as isize;
                                        // Padding reads as the zero point: contributes nothing.
                                        if iy < 0
                                            || iy >= win.h as isize
                                            || ix < 0
                                            || ix >= win.w as isize
                                        {
                                            continue;
                                        }
                                        let xv = elem(
                                            x,
                                            xbase + iy as usize * win.w + ix as usize,
                                            p.x_unsigned,
                                        ) - p.zx;
                                        let wv = elem(
                                            w,
                                            oc * per_oc + (ic * win.kh + ky) * win.kw + kx,
                                            p.w_unsigned,
                                        ) - zw[oc % zw.len()];
                                        acc = acc.wrapping_add(xv.wrapping_mul(wv));
                                    }
                                }
                            }
                            emit(((n * win.oc + oc) * win.oh + oy) * win.ow + ox, oc, acc);
                        }
                    }
                }
            }
        }
        IntGeom::MatMul {
            batch,
            m,
            k,
            n,
            a_batch_stride,
            b_batch_stride,
        } => {
            let a_need = (batch - 1) * a_batch_stride + m * k;
            let b_need = (batch - 1) * b_batch_stride + k * n;
            if batch == 0 || x.len() < a_need || w.len() < b_need {
                return Err(bad);
            }
            for bi in 0..batch {
                let (ab, bb) = (bi * a_batch_stride, bi * b_batch_stride);
                for i in 0..m {
                    for j in 0..n {
                        let mut acc = 0i32;
                        for kk in 0..k {
                            let av = elem(x, ab + i * k + kk, p.x_unsigned) - p.zx;
                            let bv = elem(w, bb + kk * n + j, p.w_unsigned) - zw[j % zw.len()];
                            acc = acc.wrapping_add(av.wrapping_mul(bv));
                        }
                        emit((bi * m + i) * n + j, j, acc);
                    }
                }
            }
        }
    }
    Ok(())
}

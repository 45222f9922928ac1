//! QDQ pattern fusion (DESIGN §3): `DQ → Conv/Gemm/MatMul → [Relu|Clip] → Q`,
//! `DQ, DQ → Add → [Relu] → Q` and `DQ, … → Concat → Q` become single int8 steps. Anything that does not match exactly
//! falls back to the float path (DQ, float op, Q), which computes the same function, only slower.

use crate::error::Result;
use crate::graph::{Graph, NONE};
use crate::onnx::Node;
use crate::ops::*;
use crate::prepare::{
    conv_window, make_step, pool_window, prepare_node, reshape_like, unary_op, window_out_shape,
};
use crate::quant::Requant;
use crate::tensor::{DType, Shape};

/// A dequantized activation: the int8/uint8 tensor behind a DequantizeLinear with per-tensor
/// constant parameters.
struct QAct {
    id: u16,
    scale: f32,
    zp: i32,
    unsigned: bool,
}

fn producer<'m, const T: usize, const N: usize>(
    g: &Graph<'m, T, N>,
    name: Option<&str>,
    op: &str,
) -> Result<Option<Node<'m>>> {
    let Some(id) = name.and_then(|n| g.find(n)) else {
        return Ok(None);
    };
    let t = g.t(id);
    if t.producer == NONE || t.is_output {
        return Ok(None);
    }
    let n = g.node(t.producer)?;
    Ok(if n.op_type == op && n.domain.is_empty() {
        Some(n)
    } else {
        None
    })
}

/// Per-tensor scale and zero point from constant inputs 1 and 2 of a Q/DQ node.
fn scalar_qparams<const T: usize, const N: usize>(
    g: &Graph<'_, T, N>,
    n: &Node<'_>,
) -> Result<Option<(f32, i32, DType)>> {
    let Some(s) = g.konst(n.input(1)) else {
        return Ok(None);
    };
    if s.shape.numel() != 1 {
        return Ok(None);
    }
    let (zp, dt) = match n.input(2) {
        Some(z) => match g.konst(Some(z)) {
            Some(z) if z.shape.numel() == 1 => (z.i64_at(0)? as i32, z.dtype),
            _ => return Ok(None),
        },
        None => (0, DType::U8),
    };
    let scale = s.f32_at(0)?;
    if scale.is_nan() || scale <= 0.0 || !scale.is_finite() {
        return Ok(None);
    }
    Ok(Some((scale, zp, dt)))
}

fn dq_act<const T: usize, const N: usize>(
    g: &Graph<'_, T, N>,
    name: Option<&str>,
) -> Result<Option<QAct>> {
    let Some(dq) = producer(g, name, "DequantizeLinear")? else {
        return Ok(None);
    };
    let Some((scale, zp, _)) = scalar_qparams(g, &dq)? else {
        return Ok(None);
    };
    let Some(id) = dq.input(0).and_then(|n| g.find(n)) else {
        return Ok(None);
    };
    let t = g.t(id);
    if !t.known || t.konst.is_some() || !matches!(t.dtype, DType::I8 | DType::U8) {
        return Ok(None);
    }
    Ok(Some(QAct {
        id,
        scale,
        zp,
        unsigned: t.dtype == DType::U8,
    }))
}

/// True when a DequantizeLinear zero point is absent or all zeros (symmetric weights and bias).
fn zero_point_is_zero<const T: usize, const N: usize>(
    g: &Graph<'_, T, N>,
    name: Option<&str>,
) -> Result<bool> {
    let mut zero = true;
    if let Some(z) = g.konst(name) {
        z.for_each_i64(|_, v| zero &= v == 0)?;
    }
    Ok(zero)
}

/// The sole consumer of `name` when it is a plain intermediate tensor.
fn sole_consumer<'m, const T: usize, const N: usize>(
    g: &Graph<'m, T, N>,
    name: &str,
) -> Result<Option<(u16, Node<'m>)>> {
    let Some(id) = g.find(name) else {
        return Ok(None);
    };
    let t = g.t(id);
    if t.uses != 1 || t.is_output || t.consumer == NONE {
        return Ok(None);
    }
    Ok(Some((t.consumer, g.node(t.consumer)?)))
}

/// Follows `[Relu|Clip] → QuantizeLinear` after a float result. Returns the absorbed node
/// indices, the Q node and the activation bounds.
#[allow(clippy::type_complexity)]
fn tail<'m, const T: usize, const N: usize>(
    g: &Graph<'m, T, N>,
    out: &str,
) -> Result<Option<(heapless::Vec<u16, 2>, Node<'m>, bool, Option<(f32, f32)>)>> {
    let mut absorbed = heapless::Vec::new();
    let Some((mut i, mut n)) = sole_consumer(g, out)? else {
        return Ok(None);
    };
    let (mut relu, mut clip) = (false, None);
    if n.op_type == "Relu" || (n.op_type == "Clip" && g.opset >= 11) {
        if n.op_type == "Relu" {
            relu = true;
        } else {
            let lo = match n.input(1) {
                Some(x) => match g.konst(Some(x)) {
                    Some(k) => k.f32_at(0)?,
                    None => return Ok(None),
                },
                None => f32::NEG_INFINITY,
            };
            let hi = match n.input(2) {
                Some(x) => match g.konst(Some(x)) {
                    Some(k) => k.f32_at(0)?,
                    None => return Ok(None),
                },
                None => f32::INFINITY,
            };
            clip = Some((lo, hi));
        }
        let _ = absorbed.push(i);
        let Some(next) = n.outputs.first().copied() else {
            return Ok(None);
        };
        let Some((j, m)) = sole_consumer(g, next)? else {
            return Ok(None);
        };
        i = j;
        n = m;
    }
    if n.op_type != "QuantizeLinear" || n.outputs.len() != 1 {
        return Ok(None);
    }
    let _ = absorbed.push(i);
    Ok(Some((absorbed, n, relu, clip)))
}

/// The `→ Q` after an op that takes no fused activation (Concat, pooling, reshapes): the
/// absorbed Q node, its per-tensor scale, zero point and type, and its output tensor.
#[allow(clippy::type_complexity)]
fn plain_q_tail<const T: usize, const N: usize>(
    g: &Graph<'_, T, N>,
    out: &str,
) -> Result<Option<(heapless::Vec<u16, 2>, f32, i32, DType, u16)>> {
    let Some((absorbed, q, relu, clip)) = tail(g, out)? else {
        return Ok(None);
    };
    if relu || clip.is_some() || absorbed.len() != 1 {
        return Ok(None);
    }
    let Some((sy, zy, ydt)) = scalar_qparams(g, &q)? else {
        return Ok(None);
    };
    let Some(y_id) = g.find(q.outputs[0]) else {
        return Ok(None);
    };
    Ok(Some((absorbed, sy, zy, ydt, y_id)))
}

/// `DQ → node → Q` around a one-input node: the dequantized 8-bit input and the Q tail
/// (absorbed nodes, output scale, zero point, type and tensor).
#[allow(clippy::type_complexity)]
fn dq_node_q<const T: usize, const N: usize>(
    g: &Graph<'_, T, N>,
    node: &Node<'_>,
) -> Result<Option<(QAct, (heapless::Vec<u16, 2>, f32, i32, DType, u16))>> {
    let Some(x) = dq_act(g, node.input(0))? else {
        return Ok(None);
    };
    Ok(plain_q_tail(g, node.outputs[0])?.map(|t| (x, t)))
}

/// [`dq_node_q`] with the same scale, zero point and signedness on both sides (data movement,
/// which runs on the codes as they are).
#[allow(clippy::type_complexity)]
fn dq_node_q_same<const T: usize, const N: usize>(
    g: &Graph<'_, T, N>,
    node: &Node<'_>,
) -> Result<Option<(QAct, (heapless::Vec<u16, 2>, DType, u16))>> {
    Ok(
        dq_node_q(g, node)?.and_then(|(x, (absorbed, sy, zy, ydt, y_id))| {
            (sy == x.scale && zy == x.zp && (ydt == DType::U8) == x.unsigned)
                .then_some((x, (absorbed, ydt, y_id)))
        }),
    )
}

/// Types the fused step's output tensor.
fn set_output<const T: usize, const N: usize>(
    p: &mut Prep<'_, '_, T, N>,
    y_id: u16,
    dtype: DType,
    shape: Shape,
) -> Result<()> {
    let y = p.g.t_mut(y_id)?;
    y.dtype = dtype;
    y.shape = shape;
    y.known = true;
    Ok(())
}

/// Tries to fuse the pattern centred on `node`. On success returns the step and the nodes it
/// absorbed (to be skipped).
#[inline(never)] // keeps this large frame off the caller's stack on MCUs
pub fn try_fuse<const T: usize, const N: usize>(
    p: &mut Prep<'_, '_, T, N>,
    node: &Node<'_>,
    idx: u16,
) -> Result<Option<(Step, heapless::Vec<u16, 2>)>> {
    if !node.domain.is_empty() || node.outputs.len() != 1 {
        return Ok(None);
    }
    match node.op_type {
        "Conv" | "Gemm" | "MatMul" => fuse_linear(p, node, idx),
        // Families a build leaves out are not fused (and their code drops out); the plain
        // step then needs float-ops, or the plan refuses the node.
        "Add" | "Mul" if cfg!(feature = "int8-residual") => fuse_add(p, node, idx),
        "Concat" if cfg!(feature = "int8-concat") => fuse_concat(p, node, idx),
        "AveragePool" | "GlobalAveragePool" | "ReduceMean" if cfg!(feature = "int8-avgpool") => {
            fuse_avgpool(p, node, idx)
        }
        "MaxPool" | "Flatten" | "Reshape" | "Squeeze" | "Unsqueeze" | "Identity" => {
            fuse_passthrough(p, node, idx)
        }
        "Transpose" | "Slice" | "Gather" | "Pad" | "Tile" | "Expand" | "DepthToSpace"
        | "SpaceToDepth" | "Resize" | "Upsample"
            if cfg!(feature = "layout-ops") =>
        {
            fuse_layout(p, node, idx)
        }
        op if cfg!(feature = "int8-lut") && LUT_OPS.contains(&op) => fuse_lut(p, node, idx),
        _ => Ok(None),
    }
}

fn fuse_linear<const T: usize, const N: usize>(
    p: &mut Prep<'_, '_, T, N>,
    node: &Node<'_>,
    idx: u16,
) -> Result<Option<(Step, heapless::Vec<u16, 2>)>> {
    let g = &*p.g;
    let Some(x) = dq_act(g, node.input(0))? else {
        return Ok(None);
    };
    // Weight: DQ of a constant int8 tensor stored raw, symmetric.
    let Some(dqw) = producer(g, node.input(1), "DequantizeLinear")? else {
        return Ok(None);
    };
    let Some(w_id) = dqw.input(0).and_then(|n| g.find(n)) else {
        return Ok(None);
    };
    let Some(wk) = g.t(w_id).konst else {
        return Ok(None);
    };
    if wk.dtype != DType::I8 || wk.raw().is_none() {
        return Ok(None);
    }
    if !zero_point_is_zero(g, dqw.input(2))? {
        return Ok(None);
    }
    let Some(sw_id) = dqw.input(1).and_then(|n| g.find(n)) else {
        return Ok(None);
    };
    let Some(swk) = g.t(sw_id).konst else {
        return Ok(None);
    };
    let xs = g.t(x.id).shape;
    let ws = wk.shape;
    // Geometry and which weight axis holds output channels.
    let (win, out_shape, oc_axis, w_stride_oc, w_stride_k) = match node.op_type {
        "Conv" => {
            let w = conv_window(node, &xs, &ws)?;
            let per_oc = w.c / w.group * w.kh * w.kw;
            (w, window_out_shape(&xs, &w, node)?, 0usize, per_oc, 1usize)
        }
        "Gemm" => {
            if node.attr_i("transA", 0)? != 0
                || node.attr_f("alpha", 1.0)? != 1.0
                || node.attr_f("beta", 1.0)? != 1.0
                || xs.rank() != 2
                || ws.rank() != 2
            {
                return Ok(None);
            }
            let tb = node.attr_i("transB", 0)? != 0;
            let (k, n) = if tb {
                (ws.dim(1), ws.dim(0))
            } else {
                (ws.dim(0), ws.dim(1))
            };
            if k != xs.dim(1) {
                return Ok(None);
            }
            let win = Window::fully_connected(xs.dim(0), k, n);
            let (axis, so, sk) = if tb { (0, k, 1) } else { (1, 1, n) };
            (
                win,
                Shape::from_usize(&[xs.dim(0), n], node.outputs[0])?,
                axis,
                so,
                sk,
            )
        }
        _ => {
            // MatMul with a constant 2-D right side: rows of the input are independent.
            if ws.rank() != 2 || xs.rank() < 2 || xs.dim(xs.rank() - 1) != ws.dim(0) {
                return Ok(None);
            }
            let (k, n) = (ws.dim(0), ws.dim(1));
            let rows = xs.numel() / k.max(1);
            let win = Window::fully_connected(rows, k, n);
            let mut d = [0usize; crate::tensor::MAX_RANK];
            for (i, &v) in xs.dims().iter().enumerate() {
                d[i] = v as usize;
            }
            d[xs.rank() - 1] = n;
            (
                win,
                Shape::from_usize(&d[..xs.rank()], node.outputs[0])?,
                1,
                1,
                n,
            )
        }
    };
    // Weight scales: one, or one per output channel on the right axis.
    let nsw = swk.shape.numel();
    if nsw != 1 {
        let ax = dqw.attr_i("axis", 1)?;
        let ax = if ax < 0 { ax + ws.rank() as i64 } else { ax };
        if nsw != win.oc || ax != oc_axis as i64 {
            return Ok(None);
        }
    }
    // Bias: DQ of a constant int32 (scale given), or a float constant, or none.
    let (mut bias, mut bias_scale) = (NONE, NONE);
    if let Some(bn) = node.input(2) {
        if let Some(dqb) = producer(g, Some(bn), "DequantizeLinear")? {
            let Some(b) = dqb.input(0).and_then(|n| g.find(n)) else {
                return Ok(None);
            };
            let Some(bs) = dqb.input(1).and_then(|n| g.find(n)) else {
                return Ok(None);
            };
            let (Some(bk), Some(bsk)) = (g.t(b).konst, g.t(bs).konst) else {
                return Ok(None);
            };
            if bk.dtype != DType::I32
                || bk.shape.numel() != win.oc
                || !(bsk.shape.numel() == 1 || bsk.shape.numel() == win.oc)
            {
                return Ok(None);
            }
            if !zero_point_is_zero(g, dqb.input(2))? {
                return Ok(None);
            }
            bias = b;
            bias_scale = bs;
        } else if let Some(id) = g.find(bn) {
            match g.t(id).konst {
                Some(k) if k.dtype == DType::F32 && k.shape.numel() == win.oc => bias = id,
                _ => return Ok(None),
            }
        } else {
            return Ok(None);
        }
    }
    let Some((absorbed, q, relu, clip)) = tail(g, node.outputs[0])? else {
        return Ok(None);
    };
    let Some((sy, zy, ydt)) = scalar_qparams(g, &q)? else {
        return Ok(None);
    };
    if (ydt == DType::U8) != x.unsigned || !(ydt == DType::U8 || ydt == DType::I8) {
        return Ok(None);
    }
    let Some(y_id) = g.find(q.outputs[0]) else {
        return Ok(None);
    };
    let (act_min, act_max) = act_range(relu, clip, sy, zy, x.unsigned);
    let mut lin = QLinear {
        win,
        zx: x.zp,
        zy,
        act_min,
        act_max,
        bias: p.reserve(win.oc * 4)?,
        requant: p.reserve(win.oc * 8)?,
        packed: 0,
        packed_len: 0,
        w_stride_oc,
        w_stride_k,
        unsigned: x.unsigned,
    };
    // This CPU's optimized kernel streams its weights in its own layout: packed once here.
    lin.packed_len = crate::kernels::qconv_packed_bytes(&lin);
    if lin.packed_len > 0 {
        lin.packed = p.reserve(lin.packed_len)?;
    }
    p.fill(Fill::QLinear {
        w: w_id,
        bias,
        bias_scale,
        sx: x.scale,
        sw: sw_id,
        sy,
        p: lin,
    })?;
    let y = p.g.t_mut(y_id)?;
    y.dtype = ydt;
    y.shape = out_shape;
    y.known = true;
    let mut step = make_step(idx, Op::QConv(lin), &[x.id, w_id], y_id)?;
    // The im2row kernel needs one output row of input patches as i16.
    step.scratch = crate::kernels::qconv_scratch_bytes(&lin);
    Ok(Some((step, absorbed)))
}

/// `DQ, DQ → Add|Mul → [Relu|Clip] → Q` (residual connections, squeeze-excite scales).
fn fuse_add<const T: usize, const N: usize>(
    p: &mut Prep<'_, '_, T, N>,
    node: &Node<'_>,
    idx: u16,
) -> Result<Option<(Step, heapless::Vec<u16, 2>)>> {
    let g = &*p.g;
    let (Some(a), Some(b)) = (dq_act(g, node.input(0))?, dq_act(g, node.input(1))?) else {
        return Ok(None);
    };
    if a.unsigned != b.unsigned {
        return Ok(None);
    }
    let Some(bc) = broadcast(&g.t(a.id).shape, &g.t(b.id).shape) else {
        return Ok(None);
    };
    let Some((absorbed, q, relu, clip)) = tail(g, node.outputs[0])? else {
        return Ok(None);
    };
    let Some((sy, zy, ydt)) = scalar_qparams(g, &q)? else {
        return Ok(None);
    };
    if (ydt == DType::U8) != a.unsigned {
        return Ok(None);
    }
    let Some(y_id) = g.find(q.outputs[0]) else {
        return Ok(None);
    };
    let (act_min, act_max) = act_range(relu, clip, sy, zy, a.unsigned);
    if node.op_type == "Mul" {
        let qm = QMul {
            bc,
            za: a.zp,
            zb: b.zp,
            zy,
            m: Requant::from_f64(a.scale as f64 * b.scale as f64 / sy as f64),
            act_min,
            act_max,
            unsigned: a.unsigned,
        };
        set_output(p, y_id, ydt, bc.out)?;
        return Ok(Some((
            make_step(idx, Op::QMul(qm), &[a.id, b.id], y_id)?,
            absorbed,
        )));
    }
    // TFLite's scheme: both inputs to a common fixed-point scale with 20 bits of headroom.
    let twice_max = 2.0 * (a.scale.max(b.scale) as f64);
    let qa = QAdd {
        bc,
        za: a.zp,
        zb: b.zp,
        zy,
        ma: Requant::from_f64(a.scale as f64 / twice_max),
        mb: Requant::from_f64(b.scale as f64 / twice_max),
        my: Requant::from_f64(twice_max / ((1u64 << 20) as f64 * sy as f64)),
        act_min,
        act_max,
        unsigned: a.unsigned,
    };
    let y = p.g.t_mut(y_id)?;
    y.dtype = ydt;
    y.shape = bc.out;
    y.known = true;
    Ok(Some((
        make_step(idx, Op::QAdd(qa), &[a.id, b.id], y_id)?,
        absorbed,
    )))
}

/// `DQ → MaxPool|Flatten|Reshape|Squeeze|Unsqueeze|Identity → Q` with the same scale and zero
/// point on both sides (how onnxruntime's quantizer wraps them): these commute with a monotonic
/// quantization, so the op runs directly on the int8 tensor.
fn fuse_passthrough<const T: usize, const N: usize>(
    p: &mut Prep<'_, '_, T, N>,
    node: &Node<'_>,
    idx: u16,
) -> Result<Option<(Step, heapless::Vec<u16, 2>)>> {
    let g = &*p.g;
    let Some((x, (absorbed, _, y_id))) = dq_node_q_same(g, node)? else {
        return Ok(None);
    };
    let xs = g.t(x.id).shape;
    let xdt = g.t(x.id).dtype;
    let (op, shape) = if node.op_type == "MaxPool" {
        if node.outputs.len() != 1 {
            return Ok(None);
        }
        let win = pool_window(node, &xs)?;
        (Op::MaxPool(win), window_out_shape(&xs, &win, node)?)
    } else {
        (Op::Copy, reshape_like(p, node, &xs)?)
    };
    set_output(p, y_id, xdt, shape)?;
    Ok(Some((make_step(idx, op, &[x.id], y_id)?, absorbed)))
}

/// `DQ → Transpose|Slice|Gather|Pad|Tile|Expand|DepthToSpace|SpaceToDepth|Resize (nearest) → Q`
/// with equal parameters: data movement, so it runs on the 8-bit codes as they are (the step
/// the float path would run, on the int8 tensor; constant padding writes the pad value's code).
fn fuse_layout<const T: usize, const N: usize>(
    p: &mut Prep<'_, '_, T, N>,
    node: &Node<'_>,
    idx: u16,
) -> Result<Option<(Step, heapless::Vec<u16, 2>)>> {
    let g = &*p.g;
    let Some((x, (absorbed, ydt, y_id))) = dq_node_q_same(g, node)? else {
        return Ok(None);
    };
    // The float step (geometry from the dequantized tensor, which has x's shape), moved onto
    // the 8-bit tensors.
    let Ok(mut step) = prepare_node(p, node, idx) else {
        return Ok(None);
    };
    // Linear resizing computes new values: the float path requantizes them.
    if matches!(
        step.op,
        Op::Resize {
            mode: ResizeMode::Linear,
            ..
        }
    ) {
        return Ok(None);
    }
    if let Op::Pad { value, .. } = &mut step.op {
        let v = f32::from_le_bytes([value[0], value[1], value[2], value[3]]);
        let one = QParams {
            scales: 0,
            zps: 0,
            axis_len: 1,
            inner: 1,
        };
        let mut code = [0u8; 1];
        crate::kernels::quantize(&one, &[x.scale], &[x.zp], ydt, &[v], &mut code)?;
        *value = [code[0], 0, 0, 0, 0, 0, 0, 0];
    }
    let shape = p.g.t(step.out).shape;
    step.ins[0] = x.id;
    step.out = y_id;
    set_output(p, y_id, ydt, shape)?;
    Ok(Some((step, absorbed)))
}

/// `DQ → element-wise op → Q` (HardSwish, Sigmoid, Tanh, …): one 256-entry table lookup per
/// element, computed at plan time from the float path's own kernels.
fn fuse_lut<const T: usize, const N: usize>(
    p: &mut Prep<'_, '_, T, N>,
    node: &Node<'_>,
    idx: u16,
) -> Result<Option<(Step, heapless::Vec<u16, 2>)>> {
    let g = &*p.g;
    let Some((x, (absorbed, sy, zy, ydt, y_id))) = dq_node_q(g, node)? else {
        return Ok(None);
    };
    let Some(name) = LUT_OPS.iter().position(|&n| n == node.op_type) else {
        return Ok(None);
    };
    if name >= crate::ops::LUT_OPS_WITHOUT_FLOAT_OPS && !cfg!(feature = "float-ops") {
        return Ok(None);
    }
    // Attributes the op does not take are left for the float path to refuse.
    let Ok(f) = unary_op(node) else {
        return Ok(None);
    };
    if !matches!(ydt, DType::I8 | DType::U8) {
        return Ok(None);
    }
    let (xs, unsigned_out) = (g.t(x.id).shape, ydt == DType::U8);
    let at = p.reserve(256)?;
    p.fill(Fill::Lut {
        at,
        spec: LutSpec {
            f,
            sx: x.scale,
            zx: x.zp,
            sy,
            zy,
            unsigned_in: x.unsigned,
            unsigned_out,
        },
    })?;
    set_output(p, y_id, ydt, xs)?;
    let op = Op::QLut {
        table: at,
        unsigned: x.unsigned,
        name: name as u8,
    };
    Ok(Some((make_step(idx, op, &[x.id], y_id)?, absorbed)))
}

/// `DQ, DQ, … → Concat → Q` (DenseNet): the inputs stay int8 and are rescaled to the output's
/// quantization while they are copied.
fn fuse_concat<const T: usize, const N: usize>(
    p: &mut Prep<'_, '_, T, N>,
    node: &Node<'_>,
    idx: u16,
) -> Result<Option<(Step, heapless::Vec<u16, 2>)>> {
    let g = &*p.g;
    let k = node.inputs.len();
    if k == 0 || k > MAX_QCONCAT_INPUTS {
        return Ok(None);
    }
    let mut acts: heapless::Vec<QAct, MAX_QCONCAT_INPUTS> = heapless::Vec::new();
    for i in 0..k {
        let Some(a) = dq_act(g, node.input(i))? else {
            return Ok(None);
        };
        let _ = acts.push(a);
    }
    let unsigned = acts[0].unsigned;
    if acts.iter().any(|a| a.unsigned != unsigned) {
        return Ok(None);
    }
    let Some((absorbed, sy, zy, ydt, y_id)) = plain_q_tail(g, node.outputs[0])? else {
        return Ok(None);
    };
    if (ydt == DType::U8) != unsigned {
        return Ok(None);
    }
    // Geometry as the float Concat has it.
    let s0 = g.t(acts[0].id).shape;
    let r = s0.rank();
    let ax = node.attr_i("axis", 1)?;
    let ax = if ax < 0 { ax + r as i64 } else { ax };
    if ax < 0 || ax >= r as i64 {
        return Ok(None);
    }
    let ax = ax as usize;
    let mut total = 0usize;
    for a in &acts {
        let t = g.t(a.id).shape;
        if t.rank() != r || (0..r).any(|d| d != ax && t.dim(d) != s0.dim(d)) {
            return Ok(None);
        }
        total += t.dim(ax);
    }
    let mut d = [0usize; crate::tensor::MAX_RANK];
    for (i, v) in s0.dims().iter().enumerate() {
        d[i] = *v as usize;
    }
    d[ax] = total;
    let outer: usize = d[..ax].iter().product();
    let inner: usize = d[ax + 1..r].iter().product();
    let mut inputs = [(0, Requant::default()); MAX_QCONCAT_INPUTS];
    let mut ids: heapless::Vec<u16, MAX_QCONCAT_INPUTS> = heapless::Vec::new();
    for (slot, a) in inputs.iter_mut().zip(&acts) {
        *slot = if a.scale == sy && a.zp == zy {
            (a.zp, Requant::default()) // multiplier 0: copy
        } else {
            (a.zp, Requant::from_f64(a.scale as f64 / sy as f64))
        };
        let _ = ids.push(a.id);
    }
    let qc = QConcat {
        outer,
        inner,
        zy,
        inputs,
        unsigned,
    };
    let shape = Shape::from_usize(&d[..r], node.outputs[0])?;
    set_output(p, y_id, ydt, shape)?;
    Ok(Some((
        make_step(idx, Op::QConcat(qc), &ids, y_id)?,
        absorbed,
    )))
}

/// For a ReduceMean over exactly axes 2 and 3 of a rank-4 input: whether it keeps the reduced
/// dimensions. `None` for any other ReduceMean.
fn spatial_mean<const T: usize, const N: usize>(
    g: &Graph<'_, T, N>,
    node: &Node<'_>,
    rank: usize,
) -> Result<Option<bool>> {
    let mut axes = [0i64; 8];
    let n = match node.input(1) {
        Some(a) => {
            let Some(k) = g.konst(Some(a)) else {
                return Ok(None);
            };
            let mut n = 0;
            k.for_each_i64(|i, v| {
                if let Some(slot) = axes.get_mut(i) {
                    *slot = v;
                    n += 1;
                }
            })?;
            n
        }
        None => match node.attr_ints("axes", &mut axes) {
            Ok(Some(n)) => n,
            _ => return Ok(None),
        },
    };
    let mut set = [false; 4];
    for &a in &axes[..n] {
        let a = if a < 0 { a + rank as i64 } else { a };
        match usize::try_from(a) {
            Ok(a @ 2..=3) if rank == 4 => set[a] = true,
            _ => return Ok(None),
        }
    }
    if n != 2 || !set[2] || !set[3] {
        return Ok(None);
    }
    Ok(Some(node.attr_i("keepdims", 1)? != 0))
}

/// `DQ → AveragePool|GlobalAveragePool|ReduceMean (spatial) → Q` when every window lies inside the unpadded input
/// (the usual 2×2/stride-2 transition and global pooling): the sum stays integer and one
/// requantization divides by the window size. Padded or partial windows use the float path.
fn fuse_avgpool<const T: usize, const N: usize>(
    p: &mut Prep<'_, '_, T, N>,
    node: &Node<'_>,
    idx: u16,
) -> Result<Option<(Step, heapless::Vec<u16, 2>)>> {
    let g = &*p.g;
    let Some((x, (absorbed, sy, zy, ydt, y_id))) = dq_node_q(g, node)? else {
        return Ok(None);
    };
    if (ydt == DType::U8) != x.unsigned {
        return Ok(None);
    }
    let xs = g.t(x.id).shape;
    // ReduceMean over the two spatial axes (how PyTorch exports `x.mean((2, 3))`) is a global
    // average pool; `keepdims = 0` only drops the 1×1.
    let keep = match node.op_type {
        "ReduceMean" => match spatial_mean(g, node, xs.rank())? {
            Some(keep) => keep,
            None => return Ok(None),
        },
        _ => true,
    };
    let (win, shape) = if node.op_type != "AveragePool" {
        if xs.rank() != 4 {
            return Ok(None);
        }
        let (h, w) = (xs.dim(2), xs.dim(3));
        let win = Window {
            n: xs.dim(0),
            c: xs.dim(1),
            h,
            w,
            oc: xs.dim(1),
            oh: 1,
            ow: 1,
            kh: h,
            kw: w,
            sh: 1,
            sw: 1,
            pt: 0,
            pl: 0,
            dh: 1,
            dw: 1,
            group: 1,
        };
        let dims = [win.n, win.c, 1, 1];
        let shape = Shape::from_usize(&dims[..if keep { 4 } else { 2 }], node.outputs[0])?;
        (win, shape)
    } else {
        let mut pads = [0i64; 8];
        let padded = node.attr_ints("pads", &mut pads)?.is_some() && pads.iter().any(|&v| v != 0);
        let auto = node.attr_s("auto_pad")?.unwrap_or(b"NOTSET");
        if padded || !(auto == b"NOTSET" || auto == b"VALID" || auto.is_empty()) {
            return Ok(None);
        }
        let win = pool_window(node, &xs)?;
        (win, window_out_shape(&xs, &win, node)?)
    };
    // Every window whole and inside the input (no ceil-mode overhang, no dilation).
    let inside =
        |o: usize, s: usize, k: usize, d: usize, n: usize| d == 1 && o > 0 && (o - 1) * s + k <= n;
    if !inside(win.oh, win.sh, win.kh, win.dh, win.h)
        || !inside(win.ow, win.sw, win.kw, win.dw, win.w)
    {
        return Ok(None);
    }
    let count = (win.kh * win.kw) as f64;
    // Σ over a window of (x − zx) must fit i32: 255 per element.
    if count * 255.0 > i32::MAX as f64 {
        return Ok(None);
    }
    let qp = QAvgPool {
        win,
        zx: x.zp,
        zy,
        rq: Requant::from_f64(x.scale as f64 / (sy as f64 * count)),
        unsigned: x.unsigned,
    };
    set_output(p, y_id, ydt, shape)?;
    Ok(Some((
        make_step(idx, Op::QAvgPool(qp), &[x.id], y_id)?,
        absorbed,
    )))
}

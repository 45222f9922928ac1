//! Shape inference and attribute handling for every plain (unfused) op.

use crate::error::{Error, Name, Result};
use crate::onnx::Node;
use crate::ops::*;
use crate::tensor::{DType, Shape, MAX_RANK};

type Out = (Op, DType, Shape);

pub(crate) fn make_step(node_idx: u16, op: Op, ins: &[u16], out: u16) -> Result<Step> {
    let mut s = Step {
        node: node_idx,
        op,
        ins: [0; MAX_STEP_INPUTS],
        n_in: ins.len() as u8,
        scratch: 0,
        scratch_at: 0,
        round_f16: false,
        out,
    };
    s.ins
        .get_mut(..ins.len())
        .ok_or(Error::CapacityExceeded {
            what: "inputs of one step",
            capacity: MAX_STEP_INPUTS,
        })?
        .copy_from_slice(ins);
    Ok(s)
}

/// Refuses a node with an attribute outside `allowed` (one the op would silently ignore).
pub(crate) fn only_attrs(node: &Node<'_>, allowed: &[&str]) -> Result<()> {
    for a in node.attr_names() {
        let a = a?;
        if !allowed.contains(&a) {
            return Err(Error::Unsupported {
                node: node.label(),
                what: "attribute",
            });
        }
    }
    Ok(())
}

/// The element-wise function of a unary float op, with its attributes (ONNX defaults).
pub(crate) fn unary_op(node: &Node<'_>) -> Result<Unary> {
    Ok(match node.op_type {
        "Relu" => Unary::Relu,
        "Sigmoid" => Unary::Sigmoid,
        "Tanh" => Unary::Tanh,
        "Abs" => Unary::Abs,
        "Neg" => Unary::Neg,
        "Exp" => Unary::Exp,
        "Sqrt" => Unary::Sqrt,
        "LeakyRelu" => Unary::LeakyRelu(node.attr_f("alpha", 0.01)?),
        "HardSigmoid" => Unary::HardSigmoid(node.attr_f("alpha", 0.2)?, node.attr_f("beta", 0.5)?),
        "HardSwish" => Unary::HardSwish,
        "Elu" => Unary::Elu(node.attr_f("alpha", 1.0)?),
        "Celu" => {
            let a = node.attr_f("alpha", 1.0)?;
            if a == 0.0 {
                return Err(unsupported(node, "alpha = 0"));
            }
            Unary::Celu(a)
        }
        "Selu" => Unary::Selu(
            node.attr_f("alpha", 1.673_263_2)?,
            node.attr_f("gamma", 1.050_701)?,
        ),
        "Softplus" => Unary::Softplus,
        "Softsign" => Unary::Softsign,
        "ThresholdedRelu" => Unary::ThresholdedRelu(node.attr_f("alpha", 1.0)?),
        "Reciprocal" => Unary::Reciprocal,
        "Floor" => Unary::Floor,
        "Ceil" => Unary::Ceil,
        "Round" => Unary::Round,
        "Sign" => Unary::Sign,
        "Log" => Unary::Log,
        "Erf" => Unary::Erf,
        "Sin" => Unary::Sin,
        "Cos" => Unary::Cos,
        "Tan" => Unary::Tan,
        "Asin" => Unary::Asin,
        "Acos" => Unary::Acos,
        "Atan" => Unary::Atan,
        "Sinh" => Unary::Sinh,
        "Cosh" => Unary::Cosh,
        "Asinh" => Unary::Asinh,
        "Acosh" => Unary::Acosh,
        "Atanh" => Unary::Atanh,
        "Shrink" => Unary::Shrink(node.attr_f("lambd", 0.5)?, node.attr_f("bias", 0.0)?),
        "Mish" => Unary::Mish,
        "Gelu" => match node.attr_s("approximate")? {
            None | Some(b"none") => Unary::Gelu(false),
            Some(b"tanh") => Unary::Gelu(true),
            Some(_) => return Err(unsupported(node, "Gelu approximate value")),
        },
        _ => return Err(unsupported(node, "op")),
    })
}

#[cfg(feature = "float-ops")]
fn f32_input<const T: usize, const N: usize>(
    p: &Prep<'_, '_, T, N>,
    node: &Node<'_>,
    i: usize,
) -> Result<(u16, Shape)> {
    let (id, t) = input(p.g, node, i)?;
    if t.dtype != DType::F32 {
        return Err(unsupported(node, "element type (this op runs on float32)"));
    }
    Ok((id, t.shape))
}

pub(crate) fn axis(node: &Node<'_>, a: i64, rank: usize) -> Result<usize> {
    let r = rank as i64;
    if a < -r || a >= r.max(1) {
        return Err(shape_err(node, "axis out of range"));
    }
    Ok(if a < 0 { (a + r) as usize } else { a as usize })
}

fn ints<const L: usize>(node: &Node<'_>, name: &str) -> Result<Option<heapless::Vec<i64, L>>> {
    let mut buf = [0i64; L];
    Ok(node
        .attr_ints(name, &mut buf)?
        .map(|n| buf[..n].iter().copied().collect()))
}

/// The axis of GatherElements or ScatterElements and whether the indices are int64 (else
/// int32): data and indices share one rank of at least 1, and off the axis an index position is
/// also a data position.
fn elements_axis(
    node: &Node<'_>,
    data: &Shape,
    ti: &crate::graph::TensorInfo<'_>,
) -> Result<(usize, bool)> {
    let wide = match ti.dtype {
        DType::I64 => true,
        DType::I32 => false,
        _ => return Err(shape_err(node, "indices must be int64 or int32")),
    };
    let r = data.rank();
    if r == 0 || ti.shape.rank() != r {
        return Err(shape_err(
            node,
            "data and indices must have one rank, at least 1",
        ));
    }
    let ax = axis(node, node.attr_i("axis", 0)?, r)?;
    if (0..r).any(|a| a != ax && ti.shape.dim(a) > data.dim(a)) {
        return Err(shape_err(node, "indices larger than data off the axis"));
    }
    Ok((ax, wide))
}

/// The `reduction` of ScatterElements or ScatterND on data of type `dtype`: none (any type),
/// or add, mul, max, min (float32 only).
pub(crate) fn scatter_reduction(node: &Node<'_>, dtype: DType) -> Result<ScatterReduction> {
    let reduction = match node.attr_s("reduction")? {
        None | Some(b"none") => ScatterReduction::None,
        Some(b"add") => ScatterReduction::Add,
        Some(b"mul") => ScatterReduction::Mul,
        Some(b"max") => ScatterReduction::Max,
        Some(b"min") => ScatterReduction::Min,
        Some(_) => return Err(unsupported(node, "reduction")),
    };
    if reduction != ScatterReduction::None && dtype != DType::F32 {
        return Err(unsupported(node, "reduction on a type other than float32"));
    }
    Ok(reduction)
}

/// Reads a constant 1-D int64 input (Reshape's shape, Squeeze's axes in opset 13+).
pub(crate) fn const_ints<const T: usize, const N: usize>(
    p: &Prep<'_, '_, T, N>,
    node: &Node<'_>,
    i: usize,
) -> Result<Option<heapless::Vec<i64, MAX_RANK>>> {
    let Some(name) = node.input(i) else {
        return Ok(None);
    };
    let k =
        p.g.int_konst(Some(name))
            .ok_or_else(|| unsupported(node, "non-constant shape/axes input"))?;
    if k.shape().numel() > MAX_RANK {
        return Err(Error::BadDimension {
            name: Name::new(name),
        });
    }
    let mut v = heapless::Vec::new();
    k.for_each_i64(|_, x| {
        let _ = v.push(x);
    })?;
    Ok(Some(v))
}

/// `Split`: one `Slice` step per requested output (a step has one output).
pub(crate) fn prepare_split<const T: usize, const N: usize>(
    p: &mut Prep<'_, '_, T, N>,
    node: &Node<'_>,
    idx: u16,
    steps: &mut heapless::Vec<Step, N>,
) -> Result<()> {
    if !cfg!(feature = "layout-ops") {
        return Err(unsupported(
            node,
            "layout op (sprig-runtime built without feature layout-ops)",
        ));
    }
    only_attrs(node, &["axis", "split", "num_outputs"])?;
    let (x, t) = input(p.g, node, 0)?;
    let r = t.shape.rank();
    let ax = axis(node, node.attr_i("axis", 0)?, r)?;
    let dim = t.shape.dim(ax) as i64;
    let n_out = node.outputs.len();
    if n_out == 0 || n_out > MAX_SPLIT_OUTPUTS {
        return Err(unsupported(node, "number of outputs"));
    }
    // Part sizes: listed (attribute before opset 13, then a constant input), or equal parts
    // with a smaller last one.
    let mut parts = [0i64; MAX_SPLIT_OUTPUTS];
    let listed = if p.g.opset < 13 {
        node.attr_ints("split", &mut parts)?
    } else {
        match node.input(1) {
            Some(n) => {
                let k =
                    p.g.int_konst(Some(n))
                        .ok_or_else(|| unsupported(node, "non-constant split input"))?;
                if k.shape().numel() > MAX_SPLIT_OUTPUTS {
                    return Err(shape_err(node, "more parts than outputs"));
                }
                k.for_each_i64(|i, v| {
                    if let Some(slot) = parts.get_mut(i) {
                        *slot = v;
                    }
                })?;
                Some(k.shape().numel())
            }
            None => None,
        }
    };
    match listed {
        Some(n) => {
            if n != n_out
                || parts[..n].iter().any(|&v| v < 0)
                || parts[..n].iter().try_fold(0i64, |t, &v| t.checked_add(v)) != Some(dim)
            {
                return Err(shape_err(node, "split sizes do not add up to the axis"));
            }
        }
        None => {
            let k = n_out as i64;
            let each = (dim + k - 1) / k;
            if p.g.opset < 18 && dim % k != 0 {
                return Err(shape_err(node, "axis does not split into equal parts"));
            }
            let mut left = dim;
            for v in parts.iter_mut().take(n_out) {
                *v = each.min(left);
                left -= *v;
            }
        }
    }
    let mut start = 0i64;
    for (k, &name) in node.outputs.iter().enumerate() {
        let len = parts[k];
        let first = start;
        start += len;
        if name.is_empty() {
            continue;
        }
        let mut d = [0i64; MAX_RANK];
        for (a, v) in d.iter_mut().enumerate().take(r) {
            *v = t.shape.dim(a) as i64;
        }
        d[ax] = len;
        let mut starts = [0u32; MAX_RANK];
        starts[ax] = first as u32;
        let op = Op::Slice {
            in_shape: t.shape,
            starts,
            steps: [1; MAX_RANK],
        };
        let out = p.type_output(name, t.dtype, Shape::new(&d[..r], name)?)?;
        push_step(steps, make_step(idx, op, &[x], out)?)?;
    }
    Ok(())
}

/// The most outputs a `Split` may have.
pub const MAX_SPLIT_OUTPUTS: usize = 16;

/// Why a float32 op is refused by a build without the `float-ops` feature (int8-only
/// firmware leaves the float kernels out of flash).
const NO_FLOAT_OPS: &str = "float32 computation (sprig-runtime built without feature float-ops)";

/// Float32-only ops a build without `float-ops` refuses with [`NO_FLOAT_OPS`] (besides those
/// listed in `prepare_node`'s own arm). The lookup-table ops among them repeat the end of
/// `LUT_OPS` on purpose: reading that table here would link all its names into every build
/// without float-ops (216 B of Cortex-M flash).
#[cfg(not(feature = "float-ops"))]
const FLOAT_ONLY_OPS: &[&str] = &[
    "GlobalMaxPool",
    "LayerNormalization",
    "InstanceNormalization",
    "Sin",
    "Cos",
    "Tan",
    "Asin",
    "Acos",
    "Atan",
    "Sinh",
    "Cosh",
    "Asinh",
    "Acosh",
    "Atanh",
    "Shrink",
    "Mish",
    "Gelu",
    "Hardmax",
];

/// Prepares one node as a plain step. Returns the step; sets its output's type and shape.
#[inline(never)] // keeps this large frame off the caller's stack on MCUs
pub fn prepare_node<const T: usize, const N: usize>(
    p: &mut Prep<'_, '_, T, N>,
    node: &Node<'_>,
    idx: u16,
) -> Result<Step> {
    if !node.domain.is_empty() && node.domain != "ai.onnx" {
        return Err(Error::UnsupportedOp {
            op: Name::new(node.op_type),
            node: node.label(),
        });
    }
    #[cfg(feature = "integer-ops")]
    if matches!(
        node.op_type,
        "QLinearConv" | "QLinearMatMul" | "ConvInteger" | "MatMulInteger"
    ) {
        return crate::intop::prepare_intop(p, node, idx);
    }
    #[cfg(not(feature = "integer-ops"))]
    if matches!(
        node.op_type,
        "QLinearConv" | "QLinearMatMul" | "ConvInteger" | "MatMulInteger" | "DynamicQuantizeLinear"
    ) {
        return Err(unsupported(
            node,
            "integer op (sprig-runtime built without feature integer-ops)",
        ));
    }
    if node.outputs.len() != 1 {
        if node.op_type == "BatchNormalization"
            || node.op_type == "MaxPool"
            || node.op_type == "Dropout"
        {
            // Optional extra outputs (training statistics, indices) are not supported.
            if node.outputs.iter().skip(1).any(|o| !o.is_empty()) {
                return Err(unsupported(node, "optional second output"));
            }
        } else {
            return Err(unsupported(node, "number of outputs"));
        }
    }
    // MaxPool/BatchNormalization/Dropout pass the check above with zero outputs too.
    let Some(&out_name) = node.outputs.first() else {
        return Err(unsupported(node, "number of outputs"));
    };
    let out_id = p.g.find(out_name).ok_or_else(|| Error::UndefinedTensor {
        name: Name::new(out_name),
    })?;
    let mut ins: heapless::Vec<u16, MAX_STEP_INPUTS> = heapless::Vec::new();
    let (op, dtype, shape): Out = match node.op_type {
        #[cfg(feature = "float-ops")]
        "Relu" | "Sigmoid" | "Tanh" | "Abs" | "Neg" | "Exp" | "Sqrt" | "LeakyRelu"
        | "HardSigmoid" | "HardSwish" | "Elu" | "Celu" | "Selu" | "Softplus" | "Softsign"
        | "ThresholdedRelu" | "Reciprocal" | "Floor" | "Ceil" | "Round" | "Sign" | "Log"
        | "Erf" | "Sin" | "Cos" | "Tan" | "Asin" | "Acos" | "Atan" | "Sinh" | "Cosh" | "Asinh"
        | "Acosh" | "Atanh" | "Shrink" | "Mish" | "Gelu" => {
            let (x, s) = f32_input(p, node, 0)?;
            let _ = ins.push(x);
            (Op::Unary(unary_op(node)?), DType::F32, s)
        }
        #[cfg(feature = "float-ops")]
        "Cast" => {
            only_attrs(node, &["to", "saturate"])?;
            let (x, t) = input(p.g, node, 0)?;
            let to = DType::from_onnx(node.attr_i("to", 0)?, node.outputs[0])
                .map_err(|_| unsupported(node, "Cast target type"))?;
            let _ = ins.push(x);
            match (t.dtype, to) {
                (DType::F32, DType::F32) => (Op::Copy, DType::F32, t.shape),
                (DType::F32, DType::F16) => (Op::Unary(Unary::RoundF16), DType::F32, t.shape),
                (from, to) if from == to => (Op::Copy, to, t.shape),
                // Between float32, int64, int32, int8, uint8 and bool (float16 is computed as
                // float32, so it is never the source here).
                (from, to) => (Op::Convert { from, to }, to.computed(), t.shape),
            }
        }
        #[cfg(feature = "float-ops")]
        "Clip" => 'clip: {
            let (x, s) = f32_input(p, node, 0)?;
            let _ = ins.push(x);
            let (mut lo, mut hi) = (f32::NEG_INFINITY, f32::INFINITY);
            if p.g.opset < 11 {
                lo = node.attr_f("min", lo)?;
                hi = node.attr_f("max", hi)?;
            } else {
                let bound = |i: usize| node.input(i).filter(|n| !n.is_empty());
                let konst = |i: usize| bound(i).map(|n| p.g.konst(Some(n)));
                if matches!(konst(1), Some(None)) || matches!(konst(2), Some(None)) {
                    // A bound computed at run time: both bounds become step inputs.
                    let (mut min_at, mut max_at) = (0, 0);
                    for (i, at) in [(1, &mut min_at), (2, &mut max_at)] {
                        if bound(i).is_some() {
                            let (id, t) = input(p.g, node, i)?;
                            if t.dtype != DType::F32 || t.shape.numel() != 1 {
                                return Err(shape_err(node, "min and max must be one float32"));
                            }
                            let _ = ins.push(id);
                            *at = (ins.len() - 1) as u8;
                        }
                    }
                    break 'clip (Op::ClipInputs { min_at, max_at }, DType::F32, s);
                }
                if let Some(k) = konst(1).flatten() {
                    lo = k.f32_at(0)?;
                }
                if let Some(k) = konst(2).flatten() {
                    hi = k.f32_at(0)?;
                }
            }
            (Op::Unary(Unary::Clip(lo, hi)), DType::F32, s)
        }
        // Integer tensors: index and mask arithmetic, computed exactly (src/logic.rs).
        #[cfg(feature = "logic-ops")]
        "Add" | "Sub" | "Mul" | "Div" | "Mod" | "Max" | "Min"
            if crate::logic::int_input(p.g, node) =>
        {
            crate::logic::prepare_int_binary(p, node, &mut ins)?
        }
        #[cfg(feature = "float-ops")]
        "Add" | "Sub" | "Mul" | "Div" | "Pow" | "Mod" => {
            let (a, sa) = f32_input(p, node, 0)?;
            let (b, sb) = f32_input(p, node, 1)?;
            if p.g.opset < 7 {
                return Err(unsupported(node, "legacy broadcast attribute (opset < 7)"));
            }
            let bc =
                broadcast(&sa, &sb).ok_or_else(|| shape_err(node, "shapes do not broadcast"))?;
            let _ = ins.push(a);
            let _ = ins.push(b);
            let mut k = Binary::of(node.op_type).ok_or_else(|| unsupported(node, "op"))?;
            if k == Binary::Mod {
                // ONNX: a floating-point Mod must ask for fmod semantics.
                if node.attr_i("fmod", 0)? == 0 {
                    return Err(shape_err(node, "Mod on floats needs fmod = 1"));
                }
                k = Binary::Fmod;
            }
            (Op::Binary(k, bc), DType::F32, bc.out)
        }
        #[cfg(feature = "float-ops")]
        "Max" | "Min" | "Sum" | "Mean" => {
            let (a, sa) = f32_input(p, node, 0)?;
            let _ = ins.push(a);
            let k = Binary::of(node.op_type).ok_or_else(|| unsupported(node, "op"))?;
            match node.inputs.len() {
                // The maximum, minimum, sum or mean of one tensor is that tensor.
                1 => (Op::Copy, DType::F32, sa),
                2 => {
                    let (b, sb) = f32_input(p, node, 1)?;
                    let bc = broadcast(&sa, &sb)
                        .ok_or_else(|| shape_err(node, "shapes do not broadcast"))?;
                    let _ = ins.push(b);
                    (Op::Binary(k, bc), DType::F32, bc.out)
                }
                // More: one step that folds the inputs into the output in order.
                n => {
                    let mut out = sa;
                    for i in 1..n {
                        let (b, sb) = f32_input(p, node, i)?;
                        out = broadcast(&out, &sb)
                            .ok_or_else(|| shape_err(node, "shapes do not broadcast"))?
                            .out;
                        ins.push(b)
                            .map_err(|_| unsupported(node, "number of inputs"))?;
                    }
                    (Op::Variadic(k), DType::F32, out)
                }
            }
        }
        #[cfg(feature = "float-ops")]
        "PRelu" => {
            let (x, sx) = f32_input(p, node, 0)?;
            let (slope, ss) = f32_input(p, node, 1)?;
            if p.g.opset < 7 {
                return Err(unsupported(node, "legacy slope broadcast (opset < 7)"));
            }
            // The slope broadcasts to X, never the other way.
            let bc = broadcast(&sx, &ss)
                .filter(|bc| bc.out == sx)
                .ok_or_else(|| shape_err(node, "slope does not broadcast to the input's shape"))?;
            let _ = ins.push(x);
            let _ = ins.push(slope);
            (Op::Binary(Binary::PRelu, bc), DType::F32, sx)
        }
        "Dropout" => {
            // Inference: the identity. Training mode (a constant true input) is refused.
            let (x, t) = input(p.g, node, 0)?;
            let _ = ins.push(x);
            if node.attr_i("is_test", 1)? == 0 {
                return Err(unsupported(node, "training mode"));
            }
            if let Some(n) = node.input(2) {
                let mut on = true;
                p.g.konst(Some(n))
                    .ok_or_else(|| unsupported(node, "non-constant training_mode"))?
                    .for_each_i64(|_, v| on = v != 0)?;
                if on {
                    return Err(unsupported(node, "training mode"));
                }
            }
            (Op::Copy, t.dtype, t.shape)
        }
        "Identity" | "Reshape" | "Flatten" | "Squeeze" | "Unsqueeze" => {
            let (x, t) = input(p.g, node, 0)?;
            let _ = ins.push(x);
            let s = reshape_like(p, node, &t.shape)?;
            (Op::Copy, t.dtype, s)
        }
        #[cfg(feature = "float-ops")]
        "Conv" | "ConvTranspose" => {
            let transposed = node.op_type == "ConvTranspose";
            let (x, sx) = f32_input(p, node, 0)?;
            let (w, sw) = f32_input(p, node, 1)?;
            let _ = ins.push(x);
            let _ = ins.push(w);
            let win = if transposed {
                conv_transpose_window(node, &sx, &sw)?
            } else {
                conv_window(node, &sx, &sw)?
            };
            if let Some(bn) = node.input(2) {
                let (b, sb) = f32_input(p, node, 2)?;
                if sb.numel() != win.oc || bn.is_empty() {
                    return Err(shape_err(node, "bias length differs from output channels"));
                }
                let _ = ins.push(b);
            }
            let op = if transposed {
                Op::ConvTranspose(win)
            } else {
                Op::Conv(win)
            };
            (op, DType::F32, window_out_shape(&sx, &win, node)?)
        }
        #[cfg(feature = "float-ops")]
        "Gemm" => {
            only_attrs(node, &["alpha", "beta", "transA", "transB"])?;
            let (a, sa) = f32_input(p, node, 0)?;
            let (b, sb) = f32_input(p, node, 1)?;
            if sa.rank() != 2 || sb.rank() != 2 {
                return Err(shape_err(node, "Gemm inputs must be 2-D"));
            }
            let trans_a = node.attr_i("transA", 0)? != 0;
            let trans_b = node.attr_i("transB", 0)? != 0;
            let (m, k) = if trans_a {
                (sa.dim(1), sa.dim(0))
            } else {
                (sa.dim(0), sa.dim(1))
            };
            let (k2, n) = if trans_b {
                (sb.dim(1), sb.dim(0))
            } else {
                (sb.dim(0), sb.dim(1))
            };
            if k != k2 {
                return Err(shape_err(node, "inner dimensions differ"));
            }
            let out = Shape::from_usize(&[m, n], out_name)?;
            let _ = ins.push(a);
            let _ = ins.push(b);
            let mut c = None;
            if node.input(2).is_some() {
                let (cid, sc) = f32_input(p, node, 2)?;
                let bc = broadcast(&out, &sc)
                    .filter(|bc| bc.out == out)
                    .ok_or_else(|| shape_err(node, "C does not broadcast to the output"))?;
                c = Some(bc);
                let _ = ins.push(cid);
            }
            let alpha = node.attr_f("alpha", 1.0)?;
            let beta = node.attr_f("beta", 1.0)?;
            (
                Op::Gemm {
                    m,
                    k,
                    n,
                    trans_a,
                    trans_b,
                    alpha,
                    beta,
                    c,
                },
                DType::F32,
                out,
            )
        }
        #[cfg(feature = "float-ops")]
        "MatMul" => {
            let (a, sa) = f32_input(p, node, 0)?;
            let (b, sb) = f32_input(p, node, 1)?;
            let _ = ins.push(a);
            let _ = ins.push(b);
            let (op, s) = matmul_shape(node, &sa, &sb, out_name)?;
            (op, DType::F32, s)
        }
        "MaxPool" | "AveragePool" => {
            let (x, t) = input(p.g, node, 0)?;
            let is_max = node.op_type == "MaxPool";
            if !(t.dtype == DType::F32
                || (is_max && (t.dtype == DType::I8 || t.dtype == DType::U8)))
            {
                return Err(unsupported(node, "element type"));
            }
            if t.dtype == DType::F32 && !cfg!(feature = "float-ops") {
                return Err(unsupported(node, NO_FLOAT_OPS));
            }
            let _ = ins.push(x);
            let win = pool_window(node, &t.shape)?;
            let s = window_out_shape(&t.shape, &win, node)?;
            let op = if is_max {
                Op::MaxPool(win)
            } else {
                Op::AveragePool {
                    win,
                    count_include_pad: node.attr_i("count_include_pad", 0)? != 0,
                }
            };
            (op, t.dtype, s)
        }
        #[cfg(feature = "float-ops")]
        "GlobalAveragePool" => {
            let (x, s) = f32_input(p, node, 0)?;
            let _ = ins.push(x);
            if s.rank() < 3 {
                return Err(shape_err(node, "input must be N×C×spatial"));
            }
            let hw: usize = s.dims()[2..].iter().map(|&d| d as usize).product();
            let mut o = [1i64; MAX_RANK];
            o[0] = s.dim(0) as i64;
            o[1] = s.dim(1) as i64;
            (
                Op::GlobalAveragePool {
                    nc: s.dim(0) * s.dim(1),
                    hw,
                },
                DType::F32,
                Shape::new(&o[..s.rank()], out_name)?,
            )
        }
        #[cfg(feature = "logic-ops")]
        "Equal" | "Greater" | "GreaterOrEqual" | "Less" | "LessOrEqual" | "Not" | "And" | "Or"
        | "Xor" | "Where" | "IsNaN" | "IsInf" => {
            crate::logic::prepare_logic(p, node, &mut ins, out_name)?
        }
        #[cfg(not(feature = "logic-ops"))]
        "Equal" | "Greater" | "GreaterOrEqual" | "Less" | "LessOrEqual" | "Not" | "And" | "Or"
        | "Xor" | "Where" | "IsNaN" | "IsInf" => {
            return Err(Error::FamilyNotBuilt {
                feature: "logic-ops",
            })
        }
        #[cfg(feature = "extra-ops")]
        "GatherND" | "ScatterND" => crate::index_nd::prepare_index_nd(p, node, &mut ins, out_name)?,
        #[cfg(feature = "extra-ops")]
        "OneHot" | "EyeLike" => crate::one_hot::prepare_one_hot(p, node, &mut ins, out_name)?,
        #[cfg(feature = "extra-ops")]
        "ReverseSequence" | "CumSum" => crate::sequence::prepare_sequence(p, node, &mut ins)?,
        #[cfg(feature = "extra-ops")]
        "GridSample" => crate::grid_sample::prepare_grid_sample(p, node, &mut ins, out_name)?,
        #[cfg(feature = "extra-ops")]
        "Einsum" => crate::einsum::prepare_einsum(p, node, &mut ins, out_name)?,
        #[cfg(feature = "extra-ops")]
        "LRN" | "MeanVarianceNormalization" => {
            crate::local_norm::prepare_local_norm(p, node, &mut ins)?
        }
        #[cfg(not(feature = "signal-ops"))]
        "DFT" | "STFT" | "HannWindow" | "HammingWindow" | "BlackmanWindow" | "MelWeightMatrix" => {
            return Err(Error::FamilyNotBuilt {
                feature: "signal-ops",
            })
        }
        #[cfg(not(feature = "extra-ops"))]
        "GatherND"
        | "ScatterND"
        | "OneHot"
        | "EyeLike"
        | "ReverseSequence"
        | "CumSum"
        | "GridSample"
        | "Einsum"
        | "LRN"
        | "MeanVarianceNormalization"
        | "NegativeLogLikelihoodLoss"
        | "SoftmaxCrossEntropyLoss" => {
            return Err(Error::FamilyNotBuilt {
                feature: "extra-ops",
            })
        }
        // The maximum over every spatial position of each N×C map (keeping their axes as 1s).
        #[cfg(feature = "float-ops")]
        "GlobalMaxPool" => {
            let (x, s) = f32_input(p, node, 0)?;
            let _ = ins.push(x);
            if s.rank() < 3 {
                return Err(shape_err(node, "input must be N×C×spatial"));
            }
            let mut o = [1i64; MAX_RANK];
            o[0] = s.dim(0) as i64;
            o[1] = s.dim(1) as i64;
            (
                Op::Reduce {
                    kind: Reduce::Max,
                    in_shape: s,
                    axes: (((1u16 << s.rank()) - 1) & !3) as u8,
                },
                DType::F32,
                Shape::new(&o[..s.rank()], out_name)?,
            )
        }
        #[cfg(feature = "float-ops")]
        "ArgMax" | "ArgMin" => {
            let (x, s) = f32_input(p, node, 0)?;
            let _ = ins.push(x);
            only_attrs(node, &["axis", "keepdims", "select_last_index"])?;
            let rank = s.rank();
            if rank == 0 {
                return Err(shape_err(node, "input must have rank >= 1"));
            }
            let ax = axis(node, node.attr_i("axis", 0)?, rank)?;
            let len = s.dim(ax);
            if len == 0 {
                return Err(shape_err(node, "the reduced axis is empty"));
            }
            let keep = node.attr_i("keepdims", 1)? != 0;
            let mut d = [0i64; MAX_RANK];
            let mut n = 0;
            for i in 0..rank {
                if i != ax || keep {
                    d[n] = if i == ax { 1 } else { s.dim(i) as i64 };
                    n += 1;
                }
            }
            let dims = s.dims();
            (
                Op::ArgExtreme {
                    outer: dims[..ax].iter().map(|&v| v as usize).product(),
                    len,
                    inner: dims[ax + 1..].iter().map(|&v| v as usize).product(),
                    max: node.op_type == "ArgMax",
                    last: node.attr_i("select_last_index", 0)? != 0,
                },
                DType::I64,
                Shape::new(&d[..n], out_name)?,
            )
        }
        #[cfg(feature = "float-ops")]
        "Softmax" | "LogSoftmax" | "Hardmax" => {
            let log = node.op_type == "LogSoftmax";
            let (x, s) = f32_input(p, node, 0)?;
            let _ = ins.push(x);
            let default_axis = if p.g.opset >= 13 { -1 } else { 1 };
            if s.rank() == 0 {
                return Err(shape_err(
                    node,
                    "(Log)Softmax/Hardmax input must have rank >= 1",
                ));
            }
            let ax = axis(node, node.attr_i("axis", default_axis)?, s.rank())?;
            let d = s.dims();
            let outer: usize = d[..ax].iter().map(|&v| v as usize).product();
            let (len, inner) = if p.g.opset >= 13 {
                let inner: usize = d[ax + 1..].iter().map(|&v| v as usize).product();
                (s.dim(ax), inner)
            } else {
                // Before opset 13 these ops flatten to 2-D at `axis`.
                (s.numel() / outer.max(1), 1)
            };
            let op = if node.op_type == "Hardmax" {
                Op::Hardmax { outer, len, inner }
            } else {
                Op::Softmax {
                    outer,
                    len,
                    inner,
                    log,
                }
            };
            (op, DType::F32, s)
        }
        #[cfg(feature = "float-ops")]
        "ReduceSum" | "ReduceMean" | "ReduceMax" | "ReduceMin" | "ReduceProd" | "ReduceL1"
        | "ReduceL2" | "ReduceLogSum" | "ReduceLogSumExp" | "ReduceSumSquare" => {
            let (x, s) = f32_input(p, node, 0)?;
            let _ = ins.push(x);
            only_attrs(node, &["axes", "keepdims", "noop_with_empty_axes"])?;
            let kind = match node.op_type {
                "ReduceSum" => Reduce::Sum,
                "ReduceMean" => Reduce::Mean,
                "ReduceMax" => Reduce::Max,
                "ReduceMin" => Reduce::Min,
                "ReduceProd" => Reduce::Prod,
                "ReduceL1" => Reduce::L1,
                "ReduceL2" => Reduce::L2,
                "ReduceLogSum" => Reduce::LogSum,
                "ReduceLogSumExp" => Reduce::LogSumExp,
                _ => Reduce::SumSquare,
            };
            // Axes: an attribute, or (ReduceSum from opset 13, all from 18) a constant input.
            let listed = match node.input(1) {
                Some(_) => const_ints(p, node, 1)?,
                None => ints::<MAX_RANK>(node, "axes")?,
            };
            let rank = s.rank();
            let mut mask = 0u8;
            match listed.as_deref() {
                Some(a) if !a.is_empty() => {
                    for &v in a {
                        let ax = axis(node, v, rank)?;
                        if mask & (1 << ax) != 0 {
                            return Err(shape_err(node, "an axis is listed twice"));
                        }
                        mask |= 1 << ax;
                    }
                }
                // No axes: all of them, unless `noop_with_empty_axes` asks for the input as is.
                _ if node.attr_i("noop_with_empty_axes", 0)? != 0 => {}
                _ => mask = ((1u16 << rank) - 1) as u8,
            }
            let keep = node.attr_i("keepdims", 1)? != 0;
            let mut d = [0i64; MAX_RANK];
            let mut n = 0;
            for i in 0..rank {
                if mask & (1 << i) == 0 {
                    d[n] = s.dim(i) as i64;
                    n += 1;
                } else if keep {
                    d[n] = 1;
                    n += 1;
                }
            }
            (
                Op::Reduce {
                    kind,
                    in_shape: s,
                    axes: mask,
                },
                DType::F32,
                Shape::new(&d[..n], out_name)?,
            )
        }
        #[cfg(feature = "float-ops")]
        "BatchNormalization" => {
            let (x, s) = f32_input(p, node, 0)?;
            let _ = ins.push(x);
            if node.attr_i("training_mode", 0)? != 0 {
                return Err(unsupported(node, "training_mode"));
            }
            let c = s.dim(1);
            for i in 1..5 {
                let (id, si) = f32_input(p, node, i)?;
                if si.numel() != c {
                    return Err(shape_err(node, "parameter length differs from channels"));
                }
                let _ = ins.push(id);
            }
            let inner: usize = s
                .dims()
                .get(2..)
                .unwrap_or(&[])
                .iter()
                .map(|&d| d as usize)
                .product();
            (
                Op::BatchNorm {
                    c,
                    inner,
                    n: s.dim(0),
                    eps: node.attr_f("epsilon", 1e-5)?,
                },
                DType::F32,
                s,
            )
        }
        "Concat" => {
            let (first, t0) = input(p.g, node, 0)?;
            if t0.shape.rank() == 0 {
                return Err(shape_err(node, "Concat inputs must have rank >= 1"));
            }
            let ax = axis(node, node.attr_i("axis", 1)?, t0.shape.rank())?;
            let mut total = 0usize;
            for i in 0..node.inputs.len() {
                let (id, t) = input(p.g, node, i)?;
                if t.dtype != t0.dtype || t.shape.rank() != t0.shape.rank() {
                    return Err(shape_err(node, "inputs differ in type or rank"));
                }
                for a in 0..t.shape.rank() {
                    if a != ax && t.shape.dim(a) != t0.shape.dim(a) {
                        return Err(shape_err(node, "inputs differ outside the concat axis"));
                    }
                }
                total += t.shape.dim(ax);
                let _ = ins.push(id);
            }
            let _ = first;
            let mut d = [0i64; MAX_RANK];
            for (i, v) in t0.shape.dims().iter().enumerate() {
                d[i] = *v as i64;
            }
            d[ax] = total as i64;
            let outer: usize = t0.shape.dims()[..ax].iter().map(|&v| v as usize).product();
            let inner: usize = t0.shape.dims()[ax + 1..]
                .iter()
                .map(|&v| v as usize)
                .product();
            (
                Op::Concat { outer, inner },
                t0.dtype,
                Shape::new(&d[..t0.shape.rank()], out_name)?,
            )
        }
        "Slice" if cfg!(feature = "layout-ops") => {
            let (x, t) = input(p.g, node, 0)?;
            let _ = ins.push(x);
            let r = t.shape.rank();
            // Opset 10 moved starts/ends/axes/steps from attributes to (here: constant) inputs.
            let optional = |i: usize| -> Result<Option<heapless::Vec<i64, MAX_RANK>>> {
                match node.input(i) {
                    None | Some("") => Ok(None),
                    Some(_) => const_ints(p, node, i),
                }
            };
            let (starts, ends, axes, steps) = if p.g.opset < 10 {
                (
                    ints::<MAX_RANK>(node, "starts")?,
                    ints::<MAX_RANK>(node, "ends")?,
                    ints::<MAX_RANK>(node, "axes")?,
                    None,
                )
            } else {
                (optional(1)?, optional(2)?, optional(3)?, optional(4)?)
            };
            let starts = starts.ok_or_else(|| shape_err(node, "missing starts"))?;
            let ends = ends.ok_or_else(|| shape_err(node, "missing ends"))?;
            if ends.len() != starts.len()
                || axes.as_ref().is_some_and(|a| a.len() != starts.len())
                || steps.as_ref().is_some_and(|s| s.len() != starts.len())
            {
                return Err(shape_err(
                    node,
                    "starts, ends, axes and steps differ in length",
                ));
            }
            let mut first = [0u32; MAX_RANK];
            let mut step = [1i32; MAX_RANK];
            let mut d = [0i64; MAX_RANK];
            for (a, v) in d.iter_mut().enumerate().take(r) {
                *v = t.shape.dim(a) as i64;
            }
            let mut seen = [false; MAX_RANK];
            for i in 0..starts.len() {
                let a = match &axes {
                    Some(ax) => axis(node, ax[i], r)?,
                    None if i < r => i,
                    None => return Err(shape_err(node, "more starts than input axes")),
                };
                if seen[a] {
                    return Err(shape_err(node, "an axis is sliced twice"));
                }
                seen[a] = true;
                let st = steps.as_ref().map_or(1, |s| s[i]);
                if st == 0 || st.unsigned_abs() > i32::MAX as u64 {
                    return Err(shape_err(node, "step is 0 or out of range"));
                }
                let dim = t.shape.dim(a) as i64;
                let wrap = |v: i64| if v < 0 { v.saturating_add(dim) } else { v };
                let (s0, e0) = (wrap(starts[i]), wrap(ends[i]));
                let (s0, e0) = if st > 0 {
                    (s0.clamp(0, dim), e0.clamp(0, dim))
                } else {
                    (s0.clamp(0, (dim - 1).max(0)), e0.clamp(-1, dim - 1))
                };
                let len = if st > 0 {
                    (e0 - s0 + st - 1).max(0) / st
                } else {
                    (s0 - e0 + (-st) - 1).max(0) / (-st)
                };
                first[a] = s0 as u32;
                step[a] = st as i32;
                d[a] = len;
            }
            (
                Op::Slice {
                    in_shape: t.shape,
                    starts: first,
                    steps: step,
                },
                t.dtype,
                Shape::new(&d[..r], out_name)?,
            )
        }
        "Pad" if cfg!(feature = "layout-ops") => {
            let (x, t) = input(p.g, node, 0)?;
            let _ = ins.push(x);
            only_attrs(node, &["mode", "pads", "value"])?;
            let r = t.shape.rank();
            let mode = match node.attr_s("mode")?.unwrap_or(b"constant") {
                b"constant" => PadMode::Constant,
                b"reflect" => PadMode::Reflect,
                b"edge" => PadMode::Edge,
                b"wrap" => PadMode::Wrap,
                _ => return Err(unsupported(node, "Pad mode")),
            };
            // Pads (begins, then ends) for every axis, or (opset 18) for the listed axes.
            let mut raw = [0i64; 2 * MAX_RANK];
            let n = if p.g.opset < 11 {
                node.attr_ints("pads", &mut raw)?
                    .ok_or_else(|| shape_err(node, "missing pads"))?
            } else {
                let k =
                    p.g.int_konst(node.input(1))
                        .ok_or_else(|| unsupported(node, "non-constant pads input"))?;
                if k.shape().numel() > 2 * MAX_RANK {
                    return Err(shape_err(node, "more pads than axes"));
                }
                k.for_each_i64(|i, v| {
                    if let Some(r) = raw.get_mut(i) {
                        *r = v;
                    }
                })?;
                k.shape().numel()
            };
            let axes = match node.input(3) {
                Some(_) => const_ints(p, node, 3)?,
                None => None,
            };
            let listed = axes.as_ref().map_or(r, |a| a.len());
            if n != 2 * listed {
                return Err(shape_err(
                    node,
                    "pads length is not twice the number of axes",
                ));
            }
            let mut begin = [0i32; MAX_RANK];
            let mut d = [0i64; MAX_RANK];
            for (a, v) in d.iter_mut().enumerate().take(r) {
                *v = t.shape.dim(a) as i64;
            }
            let mut seen = [false; MAX_RANK];
            for i in 0..listed {
                let a = match &axes {
                    Some(ax) => axis(node, ax[i], r)?,
                    None => i,
                };
                if seen[a] {
                    return Err(shape_err(node, "an axis is padded twice"));
                }
                seen[a] = true;
                let (b, e) = (raw[i], raw[i + listed]);
                let len = d[a].checked_add(b).and_then(|v| v.checked_add(e));
                match (len, i32::try_from(b)) {
                    (Some(len), Ok(b)) if len >= 0 => {
                        begin[a] = b;
                        d[a] = len;
                    }
                    _ => return Err(shape_err(node, "pads make a negative or huge dimension")),
                }
                if mode != PadMode::Constant && t.shape.dim(a) == 0 && d[a] > 0 {
                    return Err(shape_err(
                        node,
                        "edge, reflect or wrap padding of an empty axis",
                    ));
                }
            }
            // The fill value, as the element's little-endian bytes (zero when absent).
            let mut value = [0u8; 8];
            let fill = if p.g.opset < 11 {
                node.attr("value")?
                    .is_some()
                    .then(|| node.attr_f("value", 0.0))
                    .transpose()?
                    .map(|v| (Some(v), None))
            } else {
                match node.input(2) {
                    Some(n) => {
                        let k =
                            p.g.konst(Some(n))
                                .ok_or_else(|| unsupported(node, "non-constant pad value"))?;
                        if k.shape.numel() != 1 {
                            return Err(shape_err(node, "pad value must be one element"));
                        }
                        if t.dtype == DType::F32 {
                            Some((Some(k.f32_at(0)?), None))
                        } else {
                            let mut v = 0i64;
                            k.for_each_i64(|_, x| v = x)?;
                            Some((None, Some(v)))
                        }
                    }
                    None => None,
                }
            };
            match (fill, t.dtype) {
                (None, _) => {}
                (Some((Some(f), _)), DType::F32) => value[..4].copy_from_slice(&f.to_le_bytes()),
                (Some((None, Some(v))), dt) if dt != DType::F32 => {
                    value.copy_from_slice(&v.to_le_bytes())
                }
                _ => return Err(unsupported(node, "pad value type")),
            }
            (
                Op::Pad {
                    in_shape: t.shape,
                    begin,
                    mode,
                    value,
                },
                t.dtype,
                Shape::new(&d[..r], out_name)?,
            )
        }
        "Resize" | "Upsample" if cfg!(feature = "layout-ops") => {
            let (x, t) = input(p.g, node, 0)?;
            let _ = ins.push(x);
            let r = t.shape.rank();
            let upsample = node.op_type == "Upsample";
            if upsample {
                only_attrs(node, &["mode", "scales"])?;
            } else {
                only_attrs(
                    node,
                    &[
                        "mode",
                        "coordinate_transformation_mode",
                        "nearest_mode",
                        "cubic_coeff_a",
                        "exclude_outside",
                        "extrapolation_value",
                        "antialias",
                        "axes",
                        "keep_aspect_ratio_policy",
                    ],
                )?;
                if node.attr_i("antialias", 0)? != 0 {
                    return Err(unsupported(node, "antialias"));
                }
                if let Some(k) = node.attr_s("keep_aspect_ratio_policy")? {
                    if k != b"stretch" {
                        return Err(unsupported(node, "keep_aspect_ratio_policy"));
                    }
                }
            }
            let coord = match (upsample, node.attr_s("coordinate_transformation_mode")?) {
                (true, _) => ResizeCoord::Asymmetric,
                (false, None | Some(b"half_pixel")) => ResizeCoord::HalfPixel,
                (false, Some(b"pytorch_half_pixel")) => ResizeCoord::PytorchHalfPixel,
                (false, Some(b"align_corners")) => ResizeCoord::AlignCorners,
                (false, Some(b"asymmetric")) => ResizeCoord::Asymmetric,
                (false, Some(b"tf_half_pixel_for_nn")) => ResizeCoord::TfHalfPixelForNn,
                _ => return Err(unsupported(node, "coordinate_transformation_mode")),
            };
            let mode = match (node.attr_s("mode")?.unwrap_or(b"nearest"), upsample) {
                (b"nearest", true) => ResizeMode::NearestFloor,
                (b"nearest", false) => match node.attr_s("nearest_mode")? {
                    None | Some(b"round_prefer_floor") => ResizeMode::NearestRoundPreferFloor,
                    Some(b"round_prefer_ceil") => ResizeMode::NearestRoundPreferCeil,
                    Some(b"floor") => ResizeMode::NearestFloor,
                    Some(b"ceil") => ResizeMode::NearestCeil,
                    _ => return Err(unsupported(node, "nearest_mode")),
                },
                (b"linear" | b"bilinear", _) => ResizeMode::Linear,
                _ => return Err(unsupported(node, "mode (nearest and linear are supported)")),
            };
            if mode == ResizeMode::Linear && t.dtype != DType::F32 {
                return Err(unsupported(node, "linear resize of a non-float tensor"));
            }
            // Axes the scales or sizes list (opset 18), else all of them.
            let axes = ints::<MAX_RANK>(node, "axes")?;
            let listed = axes.as_ref().map_or(r, |a| a.len());
            let mut which = [0usize; MAX_RANK];
            for (i, w) in which.iter_mut().enumerate().take(listed) {
                *w = match &axes {
                    Some(a) => axis(node, a[i], r)?,
                    None => i,
                };
            }
            // Scales (Upsample: input 1, or the attribute before opset 9; Resize: input 2, or
            // input 1 at opset 10), else sizes (Resize: input 3).
            let konst_len = |i: usize| {
                node.input(i)
                    .map(|n| p.g.int_konst(Some(n)).map(|k| k.shape().numel()))
            };
            let scales_at = if upsample || p.g.opset < 11 { 1 } else { 2 };
            let mut scales = [1f32; MAX_RANK];
            let mut d = [0i64; MAX_RANK];
            for (a, v) in d.iter_mut().enumerate().take(r) {
                *v = t.shape.dim(a) as i64;
            }
            let mut given = [0f32; MAX_RANK];
            let from_scales = if upsample && p.g.opset < 9 {
                let mut raw = [0f32; MAX_RANK];
                let n = node
                    .attr("scales")?
                    .map(|a| a.floats(&mut raw))
                    .transpose()?
                    .ok_or_else(|| shape_err(node, "missing scales"))?;
                if n != listed {
                    return Err(shape_err(node, "one scale per axis"));
                }
                given[..n].copy_from_slice(&raw[..n]);
                true
            } else {
                match konst_len(scales_at) {
                    Some(None) => return Err(unsupported(node, "non-constant scales")),
                    Some(Some(n)) if n > 0 => {
                        if n != listed {
                            return Err(shape_err(node, "one scale per axis"));
                        }
                        let k =
                            p.g.konst(node.input(scales_at))
                                .ok_or_else(|| unsupported(node, "non-constant scales"))?;
                        k.for_each_f32(|i, v| {
                            if let Some(g) = given.get_mut(i) {
                                *g = v;
                            }
                        })?;
                        true
                    }
                    _ => false,
                }
            };
            if from_scales {
                for i in 0..listed {
                    let (a, sc) = (which[i], given[i]);
                    let out = libm::floor(t.shape.dim(a) as f64 * sc as f64);
                    if !(sc > 0.0 && sc.is_finite() && out <= u32::MAX as f64) {
                        return Err(shape_err(node, "scales must be positive and finite"));
                    }
                    scales[a] = sc;
                    d[a] = out as i64;
                }
            } else {
                if upsample {
                    return Err(shape_err(node, "missing scales"));
                }
                let k = match konst_len(3) {
                    Some(Some(n)) if n == listed => p.g.int_konst(node.input(3)),
                    Some(None) => return Err(unsupported(node, "non-constant sizes")),
                    _ => return Err(shape_err(node, "needs scales or one size per axis")),
                }
                .ok_or_else(|| unsupported(node, "non-constant sizes"))?;
                let mut sizes = [0i64; MAX_RANK];
                k.for_each_i64(|i, v| {
                    if let Some(s) = sizes.get_mut(i) {
                        *s = v;
                    }
                })?;
                for i in 0..listed {
                    let (a, n) = (which[i], sizes[i]);
                    if !(0..=u32::MAX as i64).contains(&n) {
                        return Err(shape_err(node, "sizes must be non-negative"));
                    }
                    scales[a] = n as f32 / t.shape.dim(a).max(1) as f32;
                    d[a] = n;
                }
            }
            if mode == ResizeMode::Linear
                && (0..r)
                    .filter(|&a| d[a] != t.shape.dim(a) as i64 || scales[a] != 1.0)
                    .count()
                    > 3
            {
                return Err(unsupported(node, "linear resize of more than three axes"));
            }
            (
                Op::Resize {
                    in_shape: t.shape,
                    scales,
                    mode,
                    coord,
                },
                t.dtype,
                Shape::new(&d[..r], out_name)?,
            )
        }
        "Tile" | "Expand" if cfg!(feature = "layout-ops") => {
            let (x, t) = input(p.g, node, 0)?;
            let _ = ins.push(x);
            let k =
                p.g.int_konst(node.input(1))
                    .ok_or_else(|| unsupported(node, "non-constant repeats or shape input"))?;
            let mut want = [0i64; MAX_RANK];
            let n = k.shape().numel();
            if n > MAX_RANK {
                return Err(Error::BadDimension {
                    name: Name::new(out_name),
                });
            }
            k.for_each_i64(|i, v| {
                if let Some(w) = want.get_mut(i) {
                    *w = v;
                }
            })?;
            let r = t.shape.rank();
            let mut src = [1i64; MAX_RANK];
            let mut d = [0i64; MAX_RANK];
            let out_rank = if node.op_type == "Tile" {
                if n != r {
                    return Err(shape_err(
                        node,
                        "repeats length differs from the input rank",
                    ));
                }
                for a in 0..r {
                    src[a] = t.shape.dim(a) as i64;
                    d[a] = src[a]
                        .checked_mul(want[a])
                        .filter(|_| want[a] >= 0)
                        .ok_or_else(|| shape_err(node, "negative or huge repeats"))?;
                }
                r
            } else {
                // Expand broadcasts both ways: the output is the broadcast of the input's shape
                // and the requested one, right-aligned.
                let out_rank = r.max(n);
                for a in 0..out_rank {
                    let di = (a + r)
                        .checked_sub(out_rank)
                        .map_or(1, |i| t.shape.dim(i) as i64);
                    let dw = (a + n).checked_sub(out_rank).map_or(1, |i| want[i]);
                    src[a] = di;
                    d[a] = match (di, dw) {
                        (x, y) if x == y || y == 1 => x,
                        (1, y) if y >= 0 => y,
                        _ => return Err(shape_err(node, "shape does not broadcast")),
                    };
                }
                out_rank
            };
            (
                Op::Tile {
                    in_shape: Shape::new(&src[..out_rank], out_name)?,
                },
                t.dtype,
                Shape::new(&d[..out_rank], out_name)?,
            )
        }
        "Trilu" if cfg!(feature = "layout-ops") => {
            only_attrs(node, &["upper"])?;
            let (x, t) = input(p.g, node, 0)?;
            let _ = ins.push(x);
            let r = t.shape.rank();
            if r < 2 {
                return Err(shape_err(node, "input must have rank >= 2"));
            }
            // k: a constant, or an int64 scalar read when the step runs (it moves no shape).
            let (k, k_input) = match node.input(1).filter(|n| !n.is_empty()) {
                None => (0, false),
                Some(n) => match p.g.int_konst(Some(n)) {
                    Some(kc) => {
                        if kc.shape().numel() != 1 {
                            return Err(shape_err(node, "k must hold one value"));
                        }
                        let mut k = 0;
                        kc.for_each_i64(|_, v| k = v)?;
                        (k, false)
                    }
                    None => {
                        let (kid, kt) = input(p.g, node, 1)?;
                        if kt.dtype != DType::I64 || kt.shape.numel() != 1 {
                            return Err(shape_err(node, "k must be one int64"));
                        }
                        let _ = ins.push(kid);
                        (0, true)
                    }
                },
            };
            (
                Op::Trilu {
                    rows: t.shape.dim(r - 2),
                    cols: t.shape.dim(r - 1),
                    upper: node.attr_i("upper", 1)? != 0,
                    k,
                    k_input,
                },
                t.dtype,
                t.shape,
            )
        }
        "DepthToSpace" | "SpaceToDepth" if cfg!(feature = "layout-ops") => {
            // A transpose of a 6-D view of the NCHW input.
            let (x, t) = input(p.g, node, 0)?;
            let _ = ins.push(x);
            only_attrs(node, &["blocksize", "mode"])?;
            if t.shape.rank() != 4 {
                return Err(shape_err(node, "input must be NCHW (rank 4)"));
            }
            let bs = node.attr_i("blocksize", 0)?;
            let (n, c, h, w) = (
                t.shape.dim(0) as i64,
                t.shape.dim(1) as i64,
                t.shape.dim(2) as i64,
                t.shape.dim(3) as i64,
            );
            if !(1..=65_535).contains(&bs) {
                return Err(shape_err(node, "blocksize must be positive"));
            }
            let (view, perm, out): ([i64; 6], [u8; 6], [i64; 4]) = if node.op_type == "DepthToSpace"
            {
                if c % (bs * bs) != 0 {
                    return Err(shape_err(node, "channels not divisible by blocksize²"));
                }
                let oc = c / (bs * bs);
                let out = [n, oc, h * bs, w * bs];
                match node.attr_s("mode")?.unwrap_or(b"DCR") {
                    b"DCR" => ([n, bs, bs, oc, h, w], [0, 3, 4, 1, 5, 2], out),
                    b"CRD" => ([n, oc, bs, bs, h, w], [0, 1, 4, 2, 5, 3], out),
                    _ => return Err(unsupported(node, "DepthToSpace mode")),
                }
            } else {
                if h % bs != 0 || w % bs != 0 {
                    return Err(shape_err(
                        node,
                        "height or width not divisible by blocksize",
                    ));
                }
                (
                    [n, c, h / bs, bs, w / bs, bs],
                    [0, 3, 5, 1, 2, 4],
                    [n, c * bs * bs, h / bs, w / bs],
                )
            };
            let mut p8 = [0u8; MAX_RANK];
            p8[..6].copy_from_slice(&perm);
            (
                Op::Transpose {
                    in_shape: Shape::new(&view, out_name)?,
                    perm: p8,
                },
                t.dtype,
                Shape::new(&out, out_name)?,
            )
        }
        "Gather" if cfg!(feature = "layout-ops") => {
            let (x, t) = input(p.g, node, 0)?;
            let (ix, ti) = input(p.g, node, 1)?;
            let _ = ins.push(x);
            let _ = ins.push(ix);
            let wide = match ti.dtype {
                DType::I64 => true,
                DType::I32 => false,
                _ => return Err(shape_err(node, "indices must be int64 or int32")),
            };
            let r = t.shape.rank();
            if r == 0 {
                return Err(shape_err(node, "data must have rank >= 1"));
            }
            let ax = axis(node, node.attr_i("axis", 0)?, r)?;
            let ri = ti.shape.rank();
            if r - 1 + ri > MAX_RANK {
                return Err(unsupported(node, "output rank above the maximum"));
            }
            let mut d = [0i64; MAX_RANK];
            let mut k = 0;
            for a in 0..ax {
                d[k] = t.shape.dim(a) as i64;
                k += 1;
            }
            for a in 0..ri {
                d[k] = ti.shape.dim(a) as i64;
                k += 1;
            }
            for a in ax + 1..r {
                d[k] = t.shape.dim(a) as i64;
                k += 1;
            }
            let dims = t.shape.dims();
            (
                Op::Gather {
                    outer: dims[..ax].iter().map(|&v| v as usize).product(),
                    axis_len: t.shape.dim(ax),
                    inner: dims[ax + 1..].iter().map(|&v| v as usize).product(),
                    indices: ti.shape.numel(),
                    wide,
                },
                t.dtype,
                Shape::new(&d[..k], out_name)?,
            )
        }
        "GatherElements" if cfg!(feature = "layout-ops") => {
            only_attrs(node, &["axis"])?;
            let (x, t) = input(p.g, node, 0)?;
            let (ix, ti) = input(p.g, node, 1)?;
            let _ = ins.push(x);
            let _ = ins.push(ix);
            let (ax, wide) = elements_axis(node, &t.shape, &ti)?;
            (
                Op::GatherElements {
                    data: t.shape,
                    axis: ax as u8,
                    wide,
                },
                t.dtype,
                ti.shape,
            )
        }
        "ScatterElements" | "Scatter" if cfg!(feature = "layout-ops") => {
            only_attrs(node, &["axis", "reduction"])?;
            let (x, t) = input(p.g, node, 0)?;
            let (ix, ti) = input(p.g, node, 1)?;
            let (u, tu) = input(p.g, node, 2)?;
            let _ = ins.push(x);
            let _ = ins.push(ix);
            let _ = ins.push(u);
            let (ax, wide) = elements_axis(node, &t.shape, &ti)?;
            if tu.dtype != t.dtype || tu.shape.dims() != ti.shape.dims() {
                return Err(shape_err(
                    node,
                    "updates must match indices in shape and data in type",
                ));
            }
            let reduction = scatter_reduction(node, t.dtype)?;
            (
                Op::ScatterElements {
                    indices: ti.shape,
                    axis: ax as u8,
                    wide,
                    reduction,
                },
                t.dtype,
                t.shape,
            )
        }
        "Transpose" if cfg!(feature = "layout-ops") => {
            let (x, t) = input(p.g, node, 0)?;
            let _ = ins.push(x);
            let r = t.shape.rank();
            let mut perm = [0u8; MAX_RANK];
            match ints::<MAX_RANK>(node, "perm")? {
                Some(v) => {
                    if v.len() != r {
                        return Err(shape_err(node, "perm length differs from rank"));
                    }
                    let mut seen = [false; MAX_RANK];
                    for (i, &a) in v.iter().enumerate() {
                        let a = axis(node, a, r)?;
                        if seen[a] {
                            return Err(shape_err(node, "perm repeats an axis"));
                        }
                        seen[a] = true;
                        perm[i] = a as u8;
                    }
                }
                None => (0..r).for_each(|i| perm[i] = (r - 1 - i) as u8),
            }
            let mut d = [0i64; MAX_RANK];
            for i in 0..r {
                d[i] = t.shape.dim(perm[i] as usize) as i64;
            }
            (
                Op::Transpose {
                    in_shape: t.shape,
                    perm,
                },
                t.dtype,
                Shape::new(&d[..r], out_name)?,
            )
        }
        #[cfg(not(feature = "float-ops"))]
        op if FLOAT_ONLY_OPS.contains(&op) => {
            return Err(unsupported(node, NO_FLOAT_OPS));
        }
        #[cfg(not(feature = "float-ops"))]
        "Relu" | "Sigmoid" | "Tanh" | "Abs" | "Neg" | "Exp" | "Sqrt" | "LeakyRelu"
        | "HardSigmoid" | "HardSwish" | "Elu" | "Celu" | "Selu" | "Softplus" | "Softsign"
        | "ThresholdedRelu" | "Reciprocal" | "Floor" | "Ceil" | "Round" | "Sign" | "Log"
        | "Erf" | "Cast" | "Clip" | "Add" | "Sub" | "Mul" | "Div" | "Pow" | "Mod" | "Max"
        | "Min" | "Sum" | "Mean" | "PRelu" | "Conv" | "Gemm" | "MatMul" | "GlobalAveragePool"
        | "Softmax" | "LogSoftmax" | "ArgMax" | "ArgMin" | "TopK" | "BatchNormalization"
        | "ConvTranspose" | "ReduceSum" | "ReduceMean" | "ReduceMax" | "ReduceMin"
        | "ReduceProd" | "ReduceL1" | "ReduceL2" | "ReduceLogSum" | "ReduceLogSumExp"
        | "ReduceSumSquare" => {
            return Err(unsupported(node, NO_FLOAT_OPS));
        }
        "Slice" | "Gather" | "GatherElements" | "ScatterElements" | "Scatter" | "Transpose"
        | "Pad" | "Tile" | "Expand" | "DepthToSpace" | "SpaceToDepth" | "Resize" | "Upsample"
        | "Trilu" => {
            return Err(unsupported(
                node,
                "layout op (sprig-runtime built without feature layout-ops)",
            ));
        }
        "QuantizeLinear" | "DequantizeLinear" => {
            let quantize = node.op_type == "QuantizeLinear";
            let (x, t) = input(p.g, node, 0)?;
            let _ = ins.push(x);
            let scale = input(p.g, node, 1)?.0;
            let zp = match node.input(2).filter(|n| !n.is_empty()) {
                Some(_) => Some(input(p.g, node, 2)?.0),
                None => None,
            };
            // Parameters computed at run time (dynamic quantization written out as ops).
            let from_inputs =
                p.g.t(scale).konst.is_none() || zp.is_some_and(|z| p.g.t(z).konst.is_none());
            if node.attr_i("block_size", 0)? != 0 {
                return Err(unsupported(node, "blocked quantization"));
            }
            let st = *p.g.t(scale);
            let zdt = zp.map(|z| p.g.t(z).dtype);
            let axis_len = st.shape.numel();
            let (inner, axis_len) = if st.shape.rank() == 0 || axis_len == 1 && st.shape.rank() <= 1
            {
                (1, 1)
            } else {
                if st.shape.rank() != 1 || p.g.opset < 13 {
                    return Err(unsupported(node, "scale shape"));
                }
                if t.shape.rank() == 0 {
                    return Err(shape_err(
                        node,
                        "per-axis scales need an input of rank >= 1",
                    ));
                }
                let ax = axis(node, node.attr_i("axis", 1)?, t.shape.rank())?;
                if t.shape.dim(ax) != axis_len {
                    return Err(shape_err(node, "scale length differs from the axis size"));
                }
                (
                    t.shape.dims()[ax + 1..]
                        .iter()
                        .map(|&v| v as usize)
                        .product(),
                    axis_len,
                )
            };
            if let Some(z) = zp {
                if p.g.t(z).shape.numel() != axis_len {
                    return Err(shape_err(
                        node,
                        "zero point length differs from scale length",
                    ));
                }
            }
            let q = if from_inputs {
                // Part of dynamic quantization, so of its family: a firmware without it does
                // not carry the run-time path.
                if !cfg!(feature = "integer-ops") {
                    return Err(unsupported(
                        node,
                        "non-constant scale or zero point (sprig-runtime built without feature integer-ops)",
                    ));
                }
                if axis_len != 1 || st.dtype != DType::F32 {
                    return Err(unsupported(
                        node,
                        "non-constant scale that is per-axis or not float32",
                    ));
                }
                // The kernel reads the zero point as the quantized tensor's type.
                if !quantize && zdt.is_some_and(|z| z != t.dtype) {
                    return Err(shape_err(node, "zero point type differs from the input's"));
                }
                let _ = ins.push(scale);
                if let Some(z) = zp {
                    let _ = ins.push(z);
                }
                QParams {
                    scales: QParams::FROM_INPUTS,
                    zps: QParams::FROM_INPUTS,
                    axis_len,
                    inner,
                }
            } else {
                let q = QParams {
                    scales: p.reserve(axis_len * 4)?,
                    zps: p.reserve(axis_len * 4)?,
                    axis_len,
                    inner,
                };
                p.fill(Fill::QParams {
                    scale,
                    zp: zp.unwrap_or(u16::MAX),
                    q,
                })?;
                q
            };
            if quantize {
                if t.dtype != DType::F32 {
                    return Err(unsupported(
                        node,
                        "input type (QuantizeLinear takes float32)",
                    ));
                }
                let out = match zdt {
                    None | Some(DType::U8) => DType::U8,
                    Some(DType::I8) => DType::I8,
                    _ => return Err(unsupported(node, "zero point type")),
                };
                (Op::Quantize { q, out }, out, t.shape)
            } else {
                if !matches!(t.dtype, DType::I8 | DType::U8 | DType::I32) {
                    return Err(unsupported(node, "input type"));
                }
                (Op::Dequantize { q, input: t.dtype }, DType::F32, t.shape)
            }
        }
        _ => {
            return Err(Error::UnsupportedOp {
                op: Name::new(node.op_type),
                node: node.label(),
            })
        }
    };
    let o = p.g.t_mut(out_id)?;
    o.dtype = dtype;
    o.shape = shape;
    o.known = true;
    let mut st = make_step(idx, op, &ins, out_id)?;
    if let Op::Conv(w) = op {
        st.scratch = crate::kernels::conv_f32_scratch_bytes(&w);
    }
    Ok(st)
}

pub(crate) fn reshape_like<const T: usize, const N: usize>(
    p: &Prep<'_, '_, T, N>,
    node: &Node<'_>,
    s: &Shape,
) -> Result<Shape> {
    let name = node.outputs[0];
    let r = s.rank();
    let numel = s.numel();
    match node.op_type {
        "Identity" => Ok(*s),
        "Flatten" => {
            let a = node.attr_i("axis", 1)?;
            let a = if a < 0 { a + r as i64 } else { a };
            if a < 0 || a > r as i64 {
                return Err(shape_err(node, "axis out of range"));
            }
            let outer: usize = s.dims()[..a as usize].iter().map(|&v| v as usize).product();
            Shape::from_usize(&[outer, numel / outer.max(1)], name)
        }
        "Reshape" => {
            if node.attr_i("allowzero", 0)? != 0 {
                return Err(unsupported(node, "allowzero"));
            }
            let want = const_ints(p, node, 1)?.ok_or_else(|| shape_err(node, "missing shape"))?;
            let mut d = [0i64; MAX_RANK];
            let mut infer = None;
            let mut known = 1usize;
            for (i, &v) in want.iter().enumerate() {
                d[i] = match v {
                    0 => s
                        .dims()
                        .get(i)
                        .map(|&x| x as i64)
                        .ok_or_else(|| shape_err(node, "0 in shape past the input rank"))?,
                    -1 if infer.is_none() => {
                        infer = Some(i);
                        1
                    }
                    v if v > 0 => v,
                    _ => return Err(shape_err(node, "invalid shape value")),
                };
                known = known
                    .checked_mul(d[i] as usize)
                    .ok_or(Error::BadDimension {
                        name: Name::new(name),
                    })?;
            }
            if let Some(i) = infer {
                if known == 0 || !numel.is_multiple_of(known) {
                    return Err(shape_err(node, "cannot infer the -1 dimension"));
                }
                d[i] = (numel / known) as i64;
            } else if known != numel {
                return Err(shape_err(node, "element count changes"));
            }
            Shape::new(&d[..want.len()], name)
        }
        "Squeeze" | "Unsqueeze" => {
            let axes = if p.g.opset >= 13 {
                const_ints(p, node, 1)?
            } else {
                ints::<MAX_RANK>(node, "axes")?
            };
            let squeeze = node.op_type == "Squeeze";
            let out_rank = if squeeze {
                r - axes
                    .as_ref()
                    .map(|a| a.len())
                    .unwrap_or_else(|| s.dims().iter().filter(|&&d| d == 1).count())
                    .min(r)
            } else {
                r + axes.as_ref().map(|a| a.len()).unwrap_or(0)
            };
            if out_rank > MAX_RANK {
                return Err(Error::BadDimension {
                    name: Name::new(name),
                });
            }
            let mut marked = [false; MAX_RANK];
            let space = if squeeze { r } else { out_rank };
            match &axes {
                Some(a) => {
                    for &x in a {
                        let x = axis(node, x, space)?;
                        if marked[x] || (squeeze && s.dim(x) != 1) {
                            return Err(shape_err(node, "bad axes"));
                        }
                        marked[x] = true;
                    }
                }
                None if squeeze => (0..r).for_each(|i| marked[i] = s.dim(i) == 1),
                None => return Err(shape_err(node, "Unsqueeze needs axes")),
            }
            let mut d = [0i64; MAX_RANK];
            let mut n = 0;
            if squeeze {
                for (i, _) in marked.iter().enumerate().take(r).filter(|(_, m)| !**m) {
                    d[n] = s.dim(i) as i64;
                    n += 1;
                }
            } else {
                let mut src = 0;
                for (i, m) in marked.iter().enumerate().take(out_rank) {
                    d[i] = if *m {
                        1
                    } else {
                        src += 1;
                        s.dim(src - 1) as i64
                    };
                }
                n = out_rank;
            }
            Shape::new(&d[..n], name)
        }
        _ => Err(Error::UnsupportedOp {
            op: Name::new(node.op_type),
            node: node.label(),
        }),
    }
}

#[cfg(feature = "float-ops")]
fn matmul_shape(node: &Node<'_>, a: &Shape, b: &Shape, name: &str) -> Result<(Op, Shape)> {
    if a.rank() == 0 || b.rank() == 0 {
        return Err(shape_err(node, "MatMul of a scalar"));
    }
    let (m, k) = if a.rank() == 1 {
        (1, a.dim(0))
    } else {
        (a.dim(a.rank() - 2), a.dim(a.rank() - 1))
    };
    let (k2, n) = if b.rank() == 1 {
        (b.dim(0), 1)
    } else {
        (b.dim(b.rank() - 2), b.dim(b.rank() - 1))
    };
    if k != k2 {
        return Err(shape_err(node, "inner dimensions differ"));
    }
    let ba = if a.rank() > 2 {
        &a.dims()[..a.rank() - 2]
    } else {
        &[][..]
    };
    let bb = if b.rank() > 2 {
        &b.dims()[..b.rank() - 2]
    } else {
        &[][..]
    };
    let pa: usize = ba.iter().map(|&d| d as usize).product();
    let pb: usize = bb.iter().map(|&d| d as usize).product();
    // Supported batching: equal batch dims, or one side without batch dims.
    let (batch, batch_dims) = if ba == bb || bb.is_empty() {
        (pa, ba)
    } else if ba.is_empty() {
        (pb, bb)
    } else {
        return Err(unsupported(
            node,
            "MatMul broadcasting between different batch shapes",
        ));
    };
    let mut d = [0i64; MAX_RANK];
    let mut r = 0;
    for &x in batch_dims {
        d[r] = x as i64;
        r += 1;
    }
    if a.rank() > 1 {
        d[r] = m as i64;
        r += 1;
    }
    if b.rank() > 1 {
        d[r] = n as i64;
        r += 1;
    }
    let a_batch_stride = if ba.is_empty() { 0 } else { m * k };
    let b_batch_stride = if bb.is_empty() { 0 } else { k * n };
    Ok((
        Op::MatMul {
            batch: batch.max(1),
            m,
            k,
            n,
            a_batch_stride,
            b_batch_stride,
        },
        Shape::new(&d[..r], name)?,
    ))
}

/// Kernel/stride/pad/dilation attributes shared by Conv and the pools.
fn window_attrs(node: &Node<'_>, spatial: &[u32], kernel: &[i64], win: &mut Window) -> Result<()> {
    let nd = spatial.len();
    if nd == 0 || nd > 2 || kernel.len() != nd {
        return Err(unsupported(node, "only 1-D and 2-D windows"));
    }
    let strides = ints::<4>(node, "strides")?.unwrap_or_else(|| (0..nd).map(|_| 1).collect());
    let dil = ints::<4>(node, "dilations")?.unwrap_or_else(|| (0..nd).map(|_| 1).collect());
    let mut pads = ints::<8>(node, "pads")?.unwrap_or_else(|| (0..2 * nd).map(|_| 0).collect());
    if strides.len() != nd || dil.len() != nd || pads.len() != 2 * nd {
        return Err(shape_err(node, "strides/dilations/pads length"));
    }
    if strides
        .iter()
        .chain(dil.iter())
        .any(|&v| !(1..=65535).contains(&v))
        || kernel.iter().any(|&v| !(1..=65535).contains(&v))
        || pads.iter().any(|&v| !(0..=65535).contains(&v))
    {
        return Err(shape_err(
            node,
            "kernel, stride, dilation or pad out of range",
        ));
    }
    let auto = node.attr_s("auto_pad")?.unwrap_or(b"NOTSET");
    let ceil = node.attr_i("ceil_mode", 0)? != 0;
    let mut out = [0usize; 2];
    for i in 0..nd {
        let inp = spatial[i] as i64;
        let ek = (kernel[i] - 1) * dil[i] + 1;
        match auto {
            b"NOTSET" | b"" => {}
            b"VALID" => {
                pads[i] = 0;
                pads[i + nd] = 0;
            }
            b"SAME_UPPER" | b"SAME_LOWER" => {
                let o = (inp + strides[i] - 1) / strides[i];
                let total = ((o - 1) * strides[i] + ek - inp).max(0);
                let small = total / 2;
                let (b, e) = if auto == b"SAME_UPPER" {
                    (small, total - small)
                } else {
                    (total - small, small)
                };
                pads[i] = b;
                pads[i + nd] = e;
            }
            _ => return Err(unsupported(node, "auto_pad value")),
        }
        let span = inp + pads[i] + pads[i + nd] - ek;
        if span < 0 {
            return Err(shape_err(node, "window larger than the padded input"));
        }
        let mut o = if ceil {
            (span + strides[i] - 1) / strides[i] + 1
        } else {
            span / strides[i] + 1
        };
        if ceil && (o - 1) * strides[i] >= inp + pads[i] {
            o -= 1; // the last window must start inside the input or left padding
        }
        out[i] = o as usize;
    }
    let (k_h, k_w, s_h, s_w, d_h, d_w, p_t, p_l, o_h, o_w) = if nd == 1 {
        (
            1, kernel[0], 1, strides[0], 1, dil[0], 0, pads[0], 1, out[0],
        )
    } else {
        (
            kernel[0], kernel[1], strides[0], strides[1], dil[0], dil[1], pads[0], pads[1], out[0],
            out[1],
        )
    };
    win.kh = k_h as usize;
    win.kw = k_w as usize;
    win.sh = s_h as usize;
    win.sw = s_w as usize;
    win.dh = d_h as usize;
    win.dw = d_w as usize;
    win.pt = p_t as usize;
    win.pl = p_l as usize;
    win.oh = o_h;
    win.ow = o_w;
    Ok(())
}

fn base_window(node: &Node<'_>, x: &Shape) -> Result<Window> {
    if x.rank() != 3 && x.rank() != 4 {
        return Err(unsupported(node, "input rank (1-D and 2-D only)"));
    }
    let (h, w) = if x.rank() == 3 {
        (1, x.dim(2))
    } else {
        (x.dim(2), x.dim(3))
    };
    Ok(Window {
        n: x.dim(0),
        c: x.dim(1),
        h,
        w,
        group: 1,
        ..Window::default()
    })
}

/// Conv geometry from the input and weight shapes and attributes.
pub fn conv_window(node: &Node<'_>, x: &Shape, w: &Shape) -> Result<Window> {
    let mut win = base_window(node, x)?;
    if w.rank() != x.rank() {
        return Err(shape_err(node, "weight rank differs from input rank"));
    }
    let group = node.attr_i("group", 1)?;
    if group < 1 || win.c % group as usize != 0 || !w.dim(0).is_multiple_of(group as usize) {
        return Err(shape_err(node, "group does not divide the channels"));
    }
    win.group = group as usize;
    win.oc = w.dim(0);
    if w.dim(1) * win.group != win.c {
        return Err(shape_err(
            node,
            "weight input channels differ from input channels / group",
        ));
    }
    let kernel: heapless::Vec<i64, 2> = w.dims()[2..].iter().map(|&d| d as i64).collect();
    if let Some(ks) = ints::<4>(node, "kernel_shape")? {
        if ks.as_slice() != kernel.as_slice() {
            return Err(shape_err(node, "kernel_shape differs from the weight"));
        }
    }
    window_attrs(node, &x.dims()[2..], &kernel, &mut win)?;
    Ok(win)
}

/// ConvTranspose geometry: output size from `output_shape` or from strides, kernel, dilation,
/// `output_padding` and pads (ONNX's formulas, `auto_pad` included).
#[cfg(feature = "float-ops")]
fn conv_transpose_window(node: &Node<'_>, x: &Shape, w: &Shape) -> Result<Window> {
    only_attrs(
        node,
        &[
            "auto_pad",
            "dilations",
            "group",
            "kernel_shape",
            "output_padding",
            "output_shape",
            "pads",
            "strides",
        ],
    )?;
    let mut win = base_window(node, x)?;
    if w.rank() != x.rank() {
        return Err(shape_err(node, "weight rank differs from input rank"));
    }
    let group = node.attr_i("group", 1)?;
    if group < 1 || win.c % group as usize != 0 || w.dim(0) != win.c {
        return Err(shape_err(
            node,
            "weight channels or group do not match the input",
        ));
    }
    win.group = group as usize;
    win.oc = w.dim(1) * win.group;
    let sp = x.rank() - 2;
    let kernel: heapless::Vec<i64, 2> = w.dims()[2..].iter().map(|&d| d as i64).collect();
    if let Some(ks) = ints::<4>(node, "kernel_shape")? {
        if ks.as_slice() != kernel.as_slice() {
            return Err(shape_err(node, "kernel_shape differs from the weight"));
        }
    }
    let get = |name: &str, default: i64| -> Result<[i64; 4]> {
        let mut v = [default; 4];
        if let Some(a) = ints::<4>(node, name)? {
            if a.len() != sp && !(name == "pads" && a.len() == 2 * sp) {
                return Err(shape_err(
                    node,
                    "attribute length differs from the spatial rank",
                ));
            }
            v[..a.len()].copy_from_slice(&a);
        }
        Ok(v)
    };
    let (strides, dil, out_pad, pads) = (
        get("strides", 1)?,
        get("dilations", 1)?,
        get("output_padding", 0)?,
        get("pads", 0)?,
    );
    let mut shape_given = [0i64; 4];
    let given = match ints::<4>(node, "output_shape")? {
        // The spatial sizes, or (as some exporters write it) the whole output shape.
        Some(o) if o.len() == sp || o.len() == sp + 2 => {
            shape_given[..sp].copy_from_slice(&o[o.len() - sp..]);
            true
        }
        Some(_) => return Err(shape_err(node, "output_shape length")),
        None => false,
    };
    let auto = node.attr_s("auto_pad")?.unwrap_or(b"NOTSET");
    let ins: [usize; 2] = if sp == 1 {
        [x.dim(2), 0]
    } else {
        [x.dim(2), x.dim(3)]
    };
    let mut out = [1usize; 2];
    let mut begin = [0usize; 2];
    for i in 0..sp {
        let (n, k, s, d, op) = (ins[i] as i64, kernel[i], strides[i], dil[i], out_pad[i]);
        if !(1..=65_535).contains(&s) || !(1..=65_535).contains(&d) || op < 0 || op >= s.max(d) {
            return Err(shape_err(
                node,
                "strides, dilations or output_padding out of range",
            ));
        }
        // Every index the kernel forms stays below 2^31 (32-bit targets included).
        let full = s * (n - 1) + op + (k - 1) * d + 1;
        if k < 1 || full > i32::MAX as i64 {
            return Err(shape_err(node, "kernel or output too large"));
        }
        let (o, pb) = if given || matches!(auto, b"SAME_UPPER" | b"SAME_LOWER") {
            let o = if given { shape_given[i] } else { n * s };
            // ONNX: SAME_UPPER puts the smaller half first, anything else the larger half
            // (halves rounded down: a negative total, an output_shape beyond the convolution's
            // reach, leaves outputs that only get the bias).
            let total = full.saturating_sub(o);
            let pb = if auto == b"SAME_UPPER" {
                total.div_euclid(2)
            } else {
                total - total.div_euclid(2)
            };
            if pb < 0 {
                return Err(unsupported(node, "output_shape that pads the start"));
            }
            (o, pb)
        } else {
            let (pb, pe) = match auto {
                b"VALID" => (0, 0),
                b"NOTSET" | b"" => (pads[i], pads[i + sp]),
                _ => return Err(unsupported(node, "auto_pad value")),
            };
            if pb < 0 || pe < 0 {
                return Err(shape_err(node, "negative pads"));
            }
            (full.saturating_sub(pb).saturating_sub(pe), pb)
        };
        if o < 1 || o > u32::MAX as i64 {
            return Err(shape_err(node, "output size out of range"));
        }
        out[i] = o as usize;
        begin[i] = pb as usize;
    }
    let at = |v: [i64; 4], i: usize| v[i] as usize;
    if sp == 1 {
        (win.oh, win.ow, win.kh, win.kw) = (1, out[0], 1, kernel[0] as usize);
        (win.sh, win.sw, win.dh, win.dw, win.pt, win.pl) =
            (1, at(strides, 0), 1, at(dil, 0), 0, begin[0]);
    } else {
        (win.oh, win.ow, win.kh, win.kw) = (out[0], out[1], kernel[0] as usize, kernel[1] as usize);
        (win.sh, win.sw, win.dh, win.dw) = (at(strides, 0), at(strides, 1), at(dil, 0), at(dil, 1));
        (win.pt, win.pl) = (begin[0], begin[1]);
    }
    Ok(win)
}

pub(crate) fn pool_window(node: &Node<'_>, x: &Shape) -> Result<Window> {
    let mut win = base_window(node, x)?;
    win.oc = win.c;
    let kernel =
        ints::<4>(node, "kernel_shape")?.ok_or_else(|| shape_err(node, "kernel_shape missing"))?;
    if node.op_type == "MaxPool" && node.attr_i("storage_order", 0)? != 0 {
        return Err(unsupported(node, "storage_order"));
    }
    window_attrs(node, &x.dims()[2..], &kernel, &mut win)?;
    Ok(win)
}

/// N×OC×OH×OW (or N×OC×OW for 1-D).
pub fn window_out_shape(x: &Shape, win: &Window, node: &Node<'_>) -> Result<Shape> {
    let name = node.outputs.first().copied().unwrap_or("");
    if x.rank() == 3 {
        Shape::from_usize(&[win.n, win.oc, win.ow], name)
    } else {
        Shape::from_usize(&[win.n, win.oc, win.oh, win.ow], name)
    }
}

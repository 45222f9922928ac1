//! Plan-time evaluation of shape arithmetic.
//!
//! Exporters write `x.view(x.size(0), -1)` as `Shape → Gather → Unsqueeze → Concat → Reshape`,
//! and build Expand, Tile, Resize and Slice arguments the same way. Shapes are static here, so
//! every value in such a chain is known before the first inference: the plan computes it once
//! (this module) and the consumer reads it like a constant (see
//! [`crate::graph::Graph::int_konst`]). Nothing of it runs per inference, and a model whose
//! shape chain cannot be resolved is refused at plan time, never during `invoke`.
//!
//! Only small vectors are folded (at most [`MAX_RANK`] elements, the size of a shape): integers,
//! and float32 for the sizes PyTorch computes as `floor(float(h) * scale)`, in float32
//! arithmetic like the kernels'. A node with a larger value, a float16 one, or an input only
//! known at run time is left to the normal operator path.

use crate::error::{Error, Name, Result};
use crate::graph::{Folded, FoldedValue};
use crate::onnx::Node;
use crate::ops::{shape_err, unsupported, Prep};
use crate::prepare::{const_ints, reshape_like};
use crate::tensor::{DType, Shape, MAX_RANK};

/// Ops folded when their inputs are known at plan time. `Shape`, `Size` and
/// `ConstantOfShape` always are (shapes are static); the others only on small constant
/// vectors — with a run-time input, `Equal`, `Where` and `Range` are refused.
pub const FOLDED_OPS: &[&str] = &[
    "Shape",
    "Size",
    "ConstantOfShape",
    "Range",
    "Equal",
    "Where",
    "Gather",
    "Concat",
    "Slice",
    "Cast",
    "Identity",
    "Reshape",
    "Flatten",
    "Squeeze",
    "Unsqueeze",
    "Add",
    "Sub",
    "Mul",
    "Div",
    "Neg",
    "Abs",
    "Floor",
    "Ceil",
    "Round",
    "Max",
    "Min",
];

/// A small integer tensor known at plan time.
#[derive(Clone, Copy)]
struct Val {
    dtype: DType,
    shape: Shape,
    v: [i64; MAX_RANK],
}

impl Val {
    fn len(&self) -> usize {
        self.shape.numel()
    }

    fn vector(dtype: DType, values: &[i64], name: &str) -> Result<Self> {
        let mut v = [0i64; MAX_RANK];
        v[..values.len()].copy_from_slice(values);
        Ok(Val {
            dtype,
            shape: Shape::new(&[values.len() as i64], name)?,
            v,
        })
    }
}

fn is_int(d: DType) -> bool {
    matches!(
        d,
        DType::I64 | DType::I32 | DType::I8 | DType::U8 | DType::Bool
    )
}

/// A float32 value as stored in a [`Val`].
fn bits(x: f32) -> i64 {
    x.to_bits() as i64
}

/// The float32 value stored as `v`.
fn fl(v: i64) -> f32 {
    f32::from_bits(v as u32)
}

/// Wraps `v` to the range of `d` (what storing it in a tensor of that type does).
fn wrap(d: DType, v: i64) -> i64 {
    match d {
        DType::I32 => v as i32 as i64,
        DType::I8 => v as i8 as i64,
        DType::U8 => v as u8 as i64,
        DType::Bool => (v != 0) as i64,
        _ => v,
    }
}

/// Input `i` of `node` as a small integer value, if it is one.
fn small<const T: usize, const N: usize>(
    p: &Prep<'_, '_, T, N>,
    node: &Node<'_>,
    i: usize,
) -> Result<Option<Val>> {
    let Some(name) = node.input(i) else {
        return Ok(None);
    };
    let Some(id) = p.g.find(name) else {
        return Ok(None);
    };
    let t = p.g.t(id);
    // float32 too (PyTorch computes interpolation sizes as float), but not float16 values,
    // which half-precision plans round differently.
    let float = t.dtype == DType::F32 && !t.half;
    if !t.known || !(is_int(t.dtype) || float) || t.shape.numel() > MAX_RANK {
        return Ok(None);
    }
    let mut v = [0i64; MAX_RANK];
    if let Some(k) = t.konst {
        if float {
            k.for_each_f32(|j, x| {
                if let Some(slot) = v.get_mut(j) {
                    *slot = bits(x);
                }
            })?;
        } else {
            k.for_each_i64(|j, x| {
                if let Some(slot) = v.get_mut(j) {
                    *slot = x;
                }
            })?;
        }
    } else if let Some(FoldedValue::Small { values, .. }) = p.g.folded(id) {
        v = values;
    } else {
        return Ok(None);
    }
    Ok(Some(Val {
        dtype: t.dtype,
        shape: t.shape,
        v,
    }))
}

/// All inputs of `node` as small integer values, or `None` if any is not one.
fn all_small<const T: usize, const N: usize>(
    p: &Prep<'_, '_, T, N>,
    node: &Node<'_>,
) -> Result<Option<heapless::Vec<Val, MAX_RANK>>> {
    let mut out = heapless::Vec::new();
    if node.inputs.len() > MAX_RANK {
        return Ok(None);
    }
    for i in 0..node.inputs.len() {
        match small(p, node, i)? {
            Some(v) => {
                let _ = out.push(v);
            }
            None => return Ok(None),
        }
    }
    Ok(Some(out))
}

/// Element `i` of `x` broadcast to `len` elements (rank 0/1 operands only).
fn at(x: &Val, i: usize) -> i64 {
    if x.len() == 1 {
        x.v[0]
    } else {
        x.v[i]
    }
}

/// Broadcast length of rank-0/1 operands, or `None` when they do not broadcast.
fn broadcast(xs: &[Val]) -> Option<(usize, usize)> {
    let mut len = 1;
    let mut rank = 0;
    for x in xs {
        if x.shape.rank() > 1 {
            return None;
        }
        rank = rank.max(x.shape.rank());
        match (len, x.len()) {
            (_, 1) => {}
            (1, n) => len = n,
            (a, b) if a == b => {}
            _ => return None,
        }
    }
    Some((len, rank))
}

/// Folds `node` if it computes a small value from values known at plan time:
/// registers the output's type, shape and value and returns `true`; `false` leaves the node to
/// [`crate::prepare::prepare_node`].
pub(crate) fn try_fold<const T: usize, const N: usize>(
    p: &mut Prep<'_, '_, T, N>,
    node: &Node<'_>,
    idx: u16,
) -> Result<bool> {
    if !(node.domain.is_empty() || node.domain == "ai.onnx")
        || node.outputs.len() != 1
        || !FOLDED_OPS.contains(&node.op_type)
    {
        return Ok(false);
    }
    if !cfg!(feature = "shape-ops") {
        // Ops that exist only to compute shapes name the feature; the rest take the
        // normal path (e.g. a Concat of constants as a step).
        return match node.op_type {
            "Shape" | "Size" | "ConstantOfShape" => Err(Error::FamilyNotBuilt {
                feature: "shape-ops",
            }),
            _ => Ok(false),
        };
    }
    let out_name = node.outputs[0];
    let out_id = p.g.find(out_name).ok_or_else(|| Error::UndefinedTensor {
        name: Name::new(out_name),
    })?;
    let result = match node.op_type {
        "Shape" | "Size" => {
            let (_, t) = crate::ops::input(p.g, node, 0)?;
            let dims = t.shape.dims();
            if node.op_type == "Size" {
                let mut v = [0i64; MAX_RANK];
                v[0] = t.shape.numel() as i64;
                Val {
                    dtype: DType::I64,
                    shape: Shape::SCALAR,
                    v,
                }
            } else {
                let r = dims.len() as i64;
                let clamp = |a: i64| (if a < 0 { a + r } else { a }).clamp(0, r) as usize;
                let start = clamp(node.attr_i("start", 0)?);
                let end = clamp(node.attr_i("end", r)?).max(start);
                let mut v = [0i64; MAX_RANK];
                for (k, &d) in dims[start..end].iter().enumerate() {
                    v[k] = d as i64;
                }
                Val::vector(DType::I64, &v[..end - start], out_name)?
            }
        }
        "ConstantOfShape" => return constant_of_shape(p, node, idx, out_id),
        _ => {
            let Some(xs) = all_small(p, node)? else {
                return Ok(false);
            };
            let Some(v) = fold_values(p, node, &xs)? else {
                return Ok(false);
            };
            v
        }
    };
    register(p, out_id, result.dtype, result.shape)?;
    push(
        p,
        out_id,
        FoldedValue::Small {
            len: result.len() as u8,
            values: result.v,
        },
    )?;
    Ok(true)
}

/// The value of a folded op on small inputs `xs` (`None`: not foldable).
fn fold_values<const T: usize, const N: usize>(
    p: &Prep<'_, '_, T, N>,
    node: &Node<'_>,
    xs: &[Val],
) -> Result<Option<Val>> {
    let out_name = node.outputs[0];
    let Some(x) = xs.first().copied() else {
        return Ok(None);
    };
    Ok(Some(match node.op_type {
        "Identity" | "Reshape" | "Flatten" | "Squeeze" | "Unsqueeze" => Val {
            shape: reshape_like(p, node, &x.shape)?,
            ..x
        },
        "Cast" => {
            let to = match DType::from_onnx(node.attr_i("to", 0)?, out_name)? {
                d if is_int(d) || d == DType::F32 => d,
                _ => return Ok(None),
            };
            let mut v = x.v;
            for e in v.iter_mut() {
                *e = match (x.dtype, to) {
                    (DType::F32, DType::F32) => *e,
                    // Truncation toward zero (saturating; NaN gives 0).
                    (DType::F32, _) => wrap(to, fl(*e) as i64),
                    (_, DType::F32) => bits(*e as f32),
                    _ => wrap(to, *e),
                };
            }
            Val { dtype: to, v, ..x }
        }
        "Floor" | "Ceil" | "Round" => {
            if x.dtype != DType::F32 {
                return Ok(None);
            }
            let mut v = x.v;
            for e in v.iter_mut() {
                let f = fl(*e);
                *e = bits(match node.op_type {
                    "Floor" => libm::floorf(f),
                    "Ceil" => libm::ceilf(f),
                    // Halves to even, as ONNX's Round.
                    _ => libm::rintf(f),
                });
            }
            Val { v, ..x }
        }
        "Neg" | "Abs" => {
            let mut v = x.v;
            for e in v.iter_mut() {
                *e = match (x.dtype, node.op_type) {
                    (DType::F32, "Neg") => bits(-fl(*e)),
                    (DType::F32, _) => bits(fl(*e).abs()),
                    (_, "Neg") => wrap(x.dtype, e.wrapping_neg()),
                    _ => wrap(x.dtype, e.wrapping_abs()),
                };
            }
            Val { v, ..x }
        }
        "Gather" => {
            let Some(ix) = xs.get(1) else {
                return Err(shape_err(node, "a required input is missing"));
            };
            if x.shape.rank() != 1 || ix.shape.rank() > 1 {
                return Ok(None);
            }
            let a = node.attr_i("axis", 0)?;
            if a != 0 && a != -1 {
                return Err(shape_err(node, "axis out of range"));
            }
            let n = x.len() as i64;
            let mut v = [0i64; MAX_RANK];
            for (k, slot) in v.iter_mut().enumerate().take(ix.len()) {
                let i = ix.v[k];
                let i = if i < 0 { i + n } else { i };
                if !(0..n).contains(&i) {
                    return Err(shape_err(node, "index out of range"));
                }
                *slot = x.v[i as usize];
            }
            Val {
                shape: ix.shape,
                v,
                ..x
            }
        }
        "Concat" => {
            let a = node.attr_i("axis", 0)?;
            if a != 0 && a != -1 {
                return Err(shape_err(node, "axis out of range"));
            }
            let total: usize = xs.iter().map(Val::len).sum();
            if total > MAX_RANK {
                return Ok(None);
            }
            let mut v = [0i64; MAX_RANK];
            let mut k = 0;
            for y in xs {
                if y.shape.rank() != 1 || y.dtype != x.dtype {
                    return Err(shape_err(node, "inputs must be 1-D of one type"));
                }
                v[k..k + y.len()].copy_from_slice(&y.v[..y.len()]);
                k += y.len();
            }
            Val::vector(x.dtype, &v[..total], out_name)?
        }
        "Slice" => return slice(p, node, &x).map(Some),
        "Range" if x.dtype == DType::F32 => return Ok(None),
        "Range" => {
            let [s, l, d] = [0, 1, 2].map(|i| xs.get(i).map_or(0, |y| y.v[0]));
            if xs.len() != 3 || xs.iter().any(|y| y.len() != 1) {
                return Err(shape_err(node, "start, limit and delta must be scalars"));
            }
            if d == 0 {
                return Err(shape_err(node, "delta must not be zero"));
            }
            // ceil((limit - start) / delta), at least 0.
            let span = l.saturating_sub(s);
            let n = if (span > 0) != (d > 0) || span == 0 {
                0
            } else {
                let (q, r) = (span / d, span % d);
                q + (r != 0) as i64
            };
            if n as usize > MAX_RANK {
                return Ok(None);
            }
            let mut v = [0i64; MAX_RANK];
            for (k, slot) in v.iter_mut().enumerate().take(n as usize) {
                *slot = wrap(x.dtype, s.wrapping_add(d.wrapping_mul(k as i64)));
            }
            Val::vector(x.dtype, &v[..n as usize], out_name)?
        }
        "Where" => {
            let (Some(a), Some(b)) = (xs.get(1), xs.get(2)) else {
                return Err(shape_err(node, "a required input is missing"));
            };
            let Some((len, rank)) = broadcast(xs) else {
                return Ok(None);
            };
            if a.dtype != b.dtype {
                return Err(shape_err(node, "X and Y differ in type"));
            }
            let mut v = [0i64; MAX_RANK];
            for (i, slot) in v.iter_mut().enumerate().take(len) {
                *slot = if at(&x, i) != 0 { at(a, i) } else { at(b, i) };
            }
            shaped(a.dtype, rank, len, v, out_name)?
        }
        "Add" | "Sub" | "Mul" | "Div" | "Max" | "Min" | "Equal" => {
            let Some(b) = xs.get(1) else {
                return Err(shape_err(node, "a required input is missing"));
            };
            if xs.len() != 2 {
                return Ok(None);
            }
            if b.dtype != x.dtype {
                return Err(shape_err(node, "inputs differ in type"));
            }
            let Some((len, rank)) = broadcast(xs) else {
                return Ok(None);
            };
            let dtype = if node.op_type == "Equal" {
                DType::Bool
            } else {
                x.dtype
            };
            let mut v = [0i64; MAX_RANK];
            for (i, slot) in v.iter_mut().enumerate().take(len) {
                let (l, r) = (at(&x, i), at(b, i));
                if x.dtype == DType::F32 {
                    let (l, r) = (fl(l), fl(r));
                    *slot = match node.op_type {
                        "Add" => bits(l + r),
                        "Sub" => bits(l - r),
                        "Mul" => bits(l * r),
                        "Div" => bits(l / r),
                        "Max" => bits(l.max(r)),
                        "Min" => bits(l.min(r)),
                        _ => (l == r) as i64,
                    };
                    continue;
                }
                *slot = wrap(
                    dtype,
                    match node.op_type {
                        "Add" => l.wrapping_add(r),
                        "Sub" => l.wrapping_sub(r),
                        "Mul" => l.wrapping_mul(r),
                        "Div" => l
                            .checked_div(r)
                            .ok_or_else(|| shape_err(node, "integer division by zero"))?,
                        "Max" => l.max(r),
                        "Min" => l.min(r),
                        _ => (l == r) as i64,
                    },
                );
            }
            shaped(dtype, rank, len, v, out_name)?
        }
        _ => return Ok(None),
    }))
}

/// A rank-0 or rank-1 value of `len` elements.
fn shaped(dtype: DType, rank: usize, len: usize, v: [i64; MAX_RANK], name: &str) -> Result<Val> {
    let shape = if rank == 0 {
        Shape::SCALAR
    } else {
        Shape::new(&[len as i64], name)?
    };
    Ok(Val { dtype, shape, v })
}

/// `Slice` of a 1-D value (ONNX's clamping rules; starts/ends/axes/steps constant).
fn slice<const T: usize, const N: usize>(
    p: &Prep<'_, '_, T, N>,
    node: &Node<'_>,
    x: &Val,
) -> Result<Val> {
    if x.shape.rank() != 1 {
        return Err(unsupported(
            node,
            "plan-time Slice of a value of rank above 1",
        ));
    }
    let get = |i: usize, attr: &str| -> Result<Option<i64>> {
        let v = if p.g.opset < 10 {
            let mut b = [0i64; MAX_RANK];
            node.attr_ints(attr, &mut b)?.map(|n| {
                let mut v = heapless::Vec::<i64, MAX_RANK>::new();
                let _ = v.extend_from_slice(&b[..n]);
                v
            })
        } else {
            const_ints(p, node, i)?
        };
        match v.as_deref() {
            None => Ok(None),
            Some([one]) => Ok(Some(*one)),
            Some(_) => Err(shape_err(node, "one axis expected for a 1-D value")),
        }
    };
    let start = get(1, "starts")?.ok_or_else(|| shape_err(node, "missing starts"))?;
    let end = get(2, "ends")?.ok_or_else(|| shape_err(node, "missing ends"))?;
    if let Some(a) = get(3, "axes")? {
        if a != 0 && a != -1 {
            return Err(shape_err(node, "axis out of range"));
        }
    }
    let step = if p.g.opset < 10 { None } else { get(4, "")? }.unwrap_or(1);
    if step == 0 {
        return Err(shape_err(node, "step must not be zero"));
    }
    let n = x.len() as i64;
    if n == 0 {
        return Val::vector(x.dtype, &[], node.outputs[0]);
    }
    let norm = |v: i64| if v < 0 { v.saturating_add(n) } else { v };
    let (lo, hi) = if step > 0 { (0, n) } else { (-1, n - 1) };
    let (mut i, end) = (norm(start).clamp(lo.max(0), hi), norm(end).clamp(lo, hi));
    let mut v = [0i64; MAX_RANK];
    let mut k = 0;
    while (step > 0 && i < end) || (step < 0 && i > end) {
        v[k] = x.v[i as usize];
        k += 1;
        i = i.saturating_add(step);
    }
    Val::vector(x.dtype, &v[..k], node.outputs[0])
}

/// `ConstantOfShape`: small integer results are kept as values (they often feed Expand or
/// Concat); anything else becomes a persistent constant filled once from the `value`
/// attribute.
fn constant_of_shape<const T: usize, const N: usize>(
    p: &mut Prep<'_, '_, T, N>,
    node: &Node<'_>,
    idx: u16,
    out_id: u16,
) -> Result<bool> {
    let Some(dims) = small(p, node, 0)? else {
        return Err(unsupported(node, "non-constant shape input"));
    };
    if dims.shape.rank() != 1 {
        return Err(shape_err(node, "the shape input must be 1-D"));
    }
    let out_name = node.outputs[0];
    let shape = Shape::new(&dims.v[..dims.len()], out_name)?;
    let value = match node.attr("value")? {
        Some(a) => Some(a.tensor().ok_or_else(|| node.bad_attr("value"))??),
        None => None,
    };
    let (dtype, fill) = match value {
        None => (DType::F32, 0),
        Some(v) => {
            if v.shape.numel() != 1 {
                return Err(shape_err(node, "value must hold one element"));
            }
            (
                v.dtype.computed(),
                if is_int(v.dtype) { v.i64_at(0)? } else { 0 },
            )
        }
    };
    register(p, out_id, dtype, shape)?;
    let folded = if is_int(dtype) && shape.numel() <= MAX_RANK {
        FoldedValue::Small {
            len: shape.numel() as u8,
            values: [fill; MAX_RANK],
        }
    } else {
        FoldedValue::Splat { node: idx }
    };
    push(p, out_id, folded)?;
    Ok(true)
}

/// Gives the folded output its type and shape, like a prepared step's output.
fn register<const T: usize, const N: usize>(
    p: &mut Prep<'_, '_, T, N>,
    out_id: u16,
    dtype: DType,
    shape: Shape,
) -> Result<()> {
    let o = p.g.t_mut(out_id)?;
    o.dtype = dtype;
    o.shape = shape;
    o.known = true;
    Ok(())
}

/// Records a folded value.
fn push<const T: usize, const N: usize>(
    p: &mut Prep<'_, '_, T, N>,
    id: u16,
    value: FoldedValue,
) -> Result<()> {
    p.g.folded
        .push(Folded { id, value })
        .map_err(|_| Error::CapacityExceeded {
            what: "plan-time shape values",
            capacity: crate::graph::MAX_FOLDED,
        })
}

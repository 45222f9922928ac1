//! Comparisons, boolean logic and integer arithmetic on run-time tensors (feature `logic-ops`):
//! `Equal`, `Greater`, `GreaterOrEqual`, `Less`, `LessOrEqual`, `Not`, `And`, `Or`, `Xor`,
//! `Where`, and `Add`/`Sub`/`Mul`/`Div`/`Max`/`Min` on integer tensors, with numpy broadcasting. Masks in attention blocks, thresholds in post-processing and `Where`-based
//! clamps are built from these. (Comparisons of small shape vectors are folded at plan time
//! instead, by `fold`.)
//!
//! Booleans are one byte, 0 or 1, as ONNX stores them. Comparisons take any numeric element
//! type (both inputs the same) and treat NaN as unordered (every comparison with it is false).
//! The steps carry no broadcast strides: they are computed from the input shapes when the step
//! runs (a few operations per call), which keeps the step table small.

// The types are part of every build (the step table names them); planning and kernels only
// with the feature.
#![cfg_attr(not(feature = "logic-ops"), allow(dead_code, unused_imports))]

use crate::error::{Error, Result};
use crate::kernels::{load_num, Num};
use crate::onnx::Node;
use crate::ops::{
    broadcast, input, shape_err, unsupported, Binary, Broadcast, Op, Prep, MAX_STEP_INPUTS,
};
use crate::tensor::{DType, Shape, MAX_RANK};

/// A comparison: `y = a ⋄ b`, boolean out.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[allow(missing_docs)]
pub enum Cmp {
    Equal,
    Greater,
    GreaterOrEqual,
    Less,
    LessOrEqual,
}

/// Boolean logic on boolean tensors.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[allow(missing_docs)]
pub enum Logic {
    Not,
    And,
    Or,
    Xor,
}

/// What `IsNaN` / `IsInf` look for.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Class {
    /// NaN.
    Nan,
    /// Infinities of the signs asked for (`detect_positive`, `detect_negative`).
    Inf {
        /// +∞ counts.
        positive: bool,
        /// −∞ counts.
        negative: bool,
    },
}

/// `y = x is NaN` or `x is ±∞` for float32 `x`, bool out.
pub fn classify(c: Class, x: &[u8], y: &mut [u8]) -> Result<()> {
    if x.len() != y.len() * 4 {
        return Err(size_mismatch());
    }
    for (o, b) in y.iter_mut().zip(x.chunks_exact(4)) {
        let v = f32::from_le_bytes([b[0], b[1], b[2], b[3]]);
        *o = match c {
            Class::Nan => v.is_nan(),
            Class::Inf { positive, negative } => {
                (positive && v == f32::INFINITY) || (negative && v == f32::NEG_INFINITY)
            }
        } as u8;
    }
    Ok(())
}

/// Plans one comparison, logic or `Where` node: its op, output type and shape.
#[cfg(feature = "logic-ops")]
pub(crate) fn prepare_logic<const T: usize, const N: usize>(
    p: &Prep<'_, '_, T, N>,
    node: &Node<'_>,
    ins: &mut heapless::Vec<u16, MAX_STEP_INPUTS>,
    out_name: &str,
) -> Result<(Op, DType, Shape)> {
    if matches!(node.op_type, "IsNaN" | "IsInf") {
        crate::prepare::only_attrs(node, &["detect_positive", "detect_negative"])?;
        let (x, t) = input(p.g, node, 0)?;
        if t.dtype != DType::F32 {
            return Err(unsupported(node, "element type (this op runs on float32)"));
        }
        let _ = ins.push(x);
        let c = if node.op_type == "IsNaN" {
            Class::Nan
        } else {
            Class::Inf {
                positive: node.attr_i("detect_positive", 1)? != 0,
                negative: node.attr_i("detect_negative", 1)? != 0,
            }
        };
        return Ok((Op::Classify(c), DType::Bool, t.shape));
    }
    crate::prepare::only_attrs(node, &[])?;
    let arity = match node.op_type {
        "Not" => 1,
        "Where" => 3,
        _ => 2,
    };
    if node.inputs.len() != arity {
        return Err(unsupported(node, "number of inputs"));
    }
    let mut types = [DType::Bool; 3];
    let mut shape = Shape::SCALAR;
    for (i, ty) in types.iter_mut().enumerate().take(arity) {
        let (id, t) = input(p.g, node, i)?;
        *ty = t.dtype;
        shape = if i == 0 {
            t.shape
        } else {
            broadcast(&shape, &t.shape)
                .ok_or_else(|| shape_err(node, "input shapes do not broadcast"))?
                .out
        };
        let _ = ins.push(id);
    }
    let bool_in = |n: usize| types[..n].iter().all(|&d| d == DType::Bool);
    let (op, dtype) = match node.op_type {
        "Not" | "And" | "Or" | "Xor" => {
            if !bool_in(arity) {
                return Err(unsupported(
                    node,
                    "element type (logic ops take bool tensors)",
                ));
            }
            let l = match node.op_type {
                "Not" => Logic::Not,
                "And" => Logic::And,
                "Or" => Logic::Or,
                _ => Logic::Xor,
            };
            (Op::Logic(l), DType::Bool)
        }
        "Where" => {
            if types[0] != DType::Bool || types[1] != types[2] {
                return Err(unsupported(
                    node,
                    "element types (a bool condition and two values of one type)",
                ));
            }
            (Op::Where, types[1])
        }
        _ => {
            if types[0] != types[1] || (types[0] == DType::Bool && node.op_type != "Equal") {
                return Err(unsupported(
                    node,
                    "element types (both inputs of one numeric type)",
                ));
            }
            let c = match node.op_type {
                "Equal" => Cmp::Equal,
                "Greater" => Cmp::Greater,
                "GreaterOrEqual" => Cmp::GreaterOrEqual,
                "Less" => Cmp::Less,
                _ => Cmp::LessOrEqual,
            };
            (Op::Compare(c), DType::Bool)
        }
    };
    let mut d = [0i64; MAX_RANK];
    for (i, v) in d.iter_mut().enumerate().take(shape.rank()) {
        *v = shape.dim(i) as i64;
    }
    Ok((op, dtype, Shape::new(&d[..shape.rank()], out_name)?))
}

/// True when input 0 of `node` is an integer tensor: its arithmetic is `int_binary`'s.
#[cfg(feature = "logic-ops")]
pub(crate) fn int_input<const T: usize, const N: usize>(
    g: &crate::graph::Graph<'_, T, N>,
    node: &Node<'_>,
) -> bool {
    node.input(0).and_then(|n| g.find(n)).is_some_and(|id| {
        matches!(
            g.t(id).dtype,
            DType::I64 | DType::I32 | DType::I8 | DType::U8
        )
    })
}

/// Plans Add, Sub, Mul, Div, Mod, Max or Min on two integer tensors of one type.
#[cfg(feature = "logic-ops")]
pub(crate) fn prepare_int_binary<const T: usize, const N: usize>(
    p: &Prep<'_, '_, T, N>,
    node: &Node<'_>,
    ins: &mut heapless::Vec<u16, MAX_STEP_INPUTS>,
) -> Result<(Op, DType, Shape)> {
    crate::prepare::only_attrs(
        node,
        if node.op_type == "Mod" {
            &["fmod"]
        } else {
            &[]
        },
    )?;
    if node.inputs.len() != 2 {
        return Err(unsupported(
            node,
            "number of inputs (integer arithmetic takes two)",
        ));
    }
    let (a, ta) = input(p.g, node, 0)?;
    let (b, tb) = input(p.g, node, 1)?;
    if ta.dtype != tb.dtype {
        return Err(unsupported(
            node,
            "element types (both inputs of one integer type)",
        ));
    }
    let bc = broadcast(&ta.shape, &tb.shape)
        .ok_or_else(|| shape_err(node, "input shapes do not broadcast"))?;
    let _ = ins.push(a);
    let _ = ins.push(b);
    let k = match Binary::of(node.op_type).ok_or_else(|| unsupported(node, "op"))? {
        Binary::Mod if node.attr_i("fmod", 0)? != 0 => Binary::Fmod,
        k => k,
    };
    Ok((Op::IntBinary(k), ta.dtype, bc.out))
}

/// Integer `y[o] = a[i] ⋄ b[j]` over the broadcast `bc`, computed in i64 and stored in
/// `dtype`: Add, Sub and Mul wrap in the element type (as numpy and onnxruntime do), Div
/// truncates toward zero and refuses a zero divisor with an error.
pub fn int_binary(
    k: Binary,
    dtype: DType,
    bc: &Broadcast,
    a: &[u8],
    b: &[u8],
    y: &mut [u8],
) -> Result<()> {
    let es = dtype.size();
    if !matches!(dtype, DType::I64 | DType::I32 | DType::I8 | DType::U8)
        || y.len() != bc.out.numel() * es
    {
        return Err(size_mismatch());
    }
    let mut err = None;
    crate::kernels::for_each_broadcast(bc, |o, i, j| {
        let (Some(Num::I(u)), Some(Num::I(v))) = (load_num(dtype, a, i), load_num(dtype, b, j))
        else {
            err = Some(size_mismatch());
            return;
        };
        let r = match k {
            Binary::Add => u.wrapping_add(v),
            Binary::Sub => u.wrapping_sub(v),
            Binary::Mul => u.wrapping_mul(v),
            Binary::Div if v == 0 => {
                err = Some(Error::BadIo {
                    what: "integer division by zero",
                });
                return;
            }
            Binary::Div => u.wrapping_div(v),
            Binary::Mod | Binary::Fmod if v == 0 => {
                err = Some(Error::BadIo {
                    what: "integer modulo by zero",
                });
                return;
            }
            // Computed in i64, where every loaded value fits: wrapping_rem only wraps for
            // i64::MIN % -1, whose remainder is 0 either way.
            Binary::Fmod => u.wrapping_rem(v),
            Binary::Mod => {
                let r = u.wrapping_rem(v);
                if r != 0 && (r < 0) != (v < 0) {
                    r + v
                } else {
                    r
                }
            }
            Binary::Max => u.max(v),
            Binary::Min => u.min(v),
            _ => {
                err = Some(size_mismatch());
                return;
            }
        };
        let out = &mut y[o * es..o * es + es];
        match dtype {
            DType::I64 => out.copy_from_slice(&r.to_le_bytes()),
            DType::I32 => out.copy_from_slice(&(r as i32).to_le_bytes()),
            _ => out[0] = r as u8,
        }
    });
    err.map_or(Ok(()), Err)
}

fn size_mismatch() -> Error {
    Error::BadIo {
        what: "buffer size does not match the plan",
    }
}

/// `y[o] = a[i] ⋄ b[j]` over the broadcast `bc`, for inputs of element type `dtype`.
pub fn compare(
    c: Cmp,
    dtype: DType,
    bc: &Broadcast,
    a: &[u8],
    b: &[u8],
    y: &mut [u8],
) -> Result<()> {
    let n = bc.out.numel();
    if y.len() != n || dtype == DType::F16 {
        return Err(size_mismatch());
    }
    let mut bad = false;
    crate::kernels::for_each_broadcast(bc, |o, i, j| {
        let (Some(u), Some(v)) = (
            crate::kernels::load_num(dtype, a, i),
            crate::kernels::load_num(dtype, b, j),
        ) else {
            bad = true;
            return;
        };
        y[o] = match c {
            Cmp::Equal => u == v,
            Cmp::Greater => u > v,
            Cmp::GreaterOrEqual => u >= v,
            Cmp::Less => u < v,
            Cmp::LessOrEqual => u <= v,
        } as u8;
    });
    if bad {
        return Err(size_mismatch());
    }
    Ok(())
}

/// Boolean logic: `Not` reads `a` only (with `bc` the identity over it).
pub fn logic(l: Logic, bc: &Broadcast, a: &[u8], b: &[u8], y: &mut [u8]) -> Result<()> {
    if y.len() != bc.out.numel() {
        return Err(size_mismatch());
    }
    let mut bad = false;
    crate::kernels::for_each_broadcast(bc, |o, i, j| {
        let u = a.get(i).map(|&v| v != 0);
        let v = if l == Logic::Not {
            Some(false)
        } else {
            b.get(j).map(|&v| v != 0)
        };
        let (Some(u), Some(v)) = (u, v) else {
            bad = true;
            return;
        };
        y[o] = match l {
            Logic::Not => !u,
            Logic::And => u && v,
            Logic::Or => u || v,
            Logic::Xor => u ^ v,
        } as u8;
    });
    if bad {
        return Err(size_mismatch());
    }
    Ok(())
}

/// `Where`: `y[o] = cond[c] ? x[i] : z[j]` with all three broadcast to `out`; `es` is the
/// value type's size in bytes.
#[allow(clippy::too_many_arguments)]
pub fn where_select(
    out: &Shape,
    shapes: [&Shape; 3],
    es: usize,
    cond: &[u8],
    x: &[u8],
    z: &[u8],
    y: &mut [u8],
) -> Result<()> {
    let st = [
        crate::kernels::strides_into(shapes[0], out).ok_or_else(size_mismatch)?,
        crate::kernels::strides_into(shapes[1], out).ok_or_else(size_mismatch)?,
        crate::kernels::strides_into(shapes[2], out).ok_or_else(size_mismatch)?,
    ];
    let n = out.numel();
    if y.len() != n * es
        || cond.len() != shapes[0].numel()
        || x.len() != shapes[1].numel() * es
        || z.len() != shapes[2].numel() * es
    {
        return Err(size_mismatch());
    }
    let r = out.rank();
    let mut idx = [0usize; MAX_RANK];
    let mut at = [0usize; 3];
    for o in 0..n {
        let src = if cond.get(at[0]).is_some_and(|&c| c != 0) {
            x.get(at[1] * es..at[1] * es + es)
        } else {
            z.get(at[2] * es..at[2] * es + es)
        };
        y[o * es..o * es + es].copy_from_slice(src.ok_or_else(size_mismatch)?);
        // Next multi-index, last axis fastest.
        let mut ax = r;
        while ax > 0 {
            ax -= 1;
            idx[ax] += 1;
            for (a, s) in at.iter_mut().zip(&st) {
                *a += s[ax] as usize;
            }
            if idx[ax] < out.dim(ax) {
                break;
            }
            for (a, s) in at.iter_mut().zip(&st) {
                *a -= s[ax] as usize * idx[ax];
            }
            idx[ax] = 0;
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn shape(d: &[i64]) -> Shape {
        Shape::new(d, "t").unwrap()
    }

    fn f32_bytes(v: &[f32]) -> alloc::vec::Vec<u8> {
        v.iter().flat_map(|x| x.to_le_bytes()).collect()
    }

    #[test]
    fn comparisons_broadcast_and_treat_nan_as_unordered() {
        let bc = broadcast(&shape(&[2, 3]), &shape(&[3])).unwrap();
        let a = f32_bytes(&[1.0, 2.0, f32::NAN, 3.0, 0.0, -1.0]);
        let b = f32_bytes(&[2.0, 2.0, 2.0]);
        let mut y = [9u8; 6];
        compare(Cmp::GreaterOrEqual, DType::F32, &bc, &a, &b, &mut y).unwrap();
        assert_eq!(y, [0, 1, 0, 1, 0, 0]);
        compare(Cmp::Less, DType::F32, &bc, &a, &b, &mut y).unwrap();
        assert_eq!(y, [1, 0, 0, 0, 1, 1]);
        compare(Cmp::Equal, DType::F32, &bc, &a, &b, &mut y).unwrap();
        assert_eq!(y, [0, 1, 0, 0, 0, 0]);
        // int64 compares exactly, beyond f32's 24-bit mantissa.
        let big = (1i64 << 40) + 1;
        let bc1 = broadcast(&shape(&[1]), &shape(&[1])).unwrap();
        let mut one = [9u8; 1];
        let (x, z) = (big.to_le_bytes(), (big - 1).to_le_bytes());
        compare(Cmp::Greater, DType::I64, &bc1, &x, &z, &mut one).unwrap();
        assert_eq!(one, [1]);
        // A short input is an error, not a panic.
        assert!(compare(Cmp::Less, DType::F32, &bc, &a[..20], &b, &mut y).is_err());
    }

    #[test]
    fn classify_finds_nan_and_the_infinities_asked_for() {
        let x = f32_bytes(&[f32::NAN, f32::INFINITY, f32::NEG_INFINITY, 1.0]);
        let mut y = [9u8; 4];
        classify(Class::Nan, &x, &mut y).unwrap();
        assert_eq!(y, [1, 0, 0, 0]);
        let neg = Class::Inf {
            positive: false,
            negative: true,
        };
        classify(neg, &x, &mut y).unwrap();
        assert_eq!(y, [0, 0, 1, 0]);
        assert!(classify(Class::Nan, &x[..12], &mut y).is_err());
    }

    #[test]
    fn logic_ops_follow_their_truth_tables() {
        let bc = broadcast(&shape(&[4]), &shape(&[4])).unwrap();
        let (a, b) = ([0u8, 0, 1, 1], [0u8, 1, 0, 1]);
        let mut y = [9u8; 4];
        for (l, want) in [
            (Logic::And, [0, 0, 0, 1]),
            (Logic::Or, [0, 1, 1, 1]),
            (Logic::Xor, [0, 1, 1, 0]),
            (Logic::Not, [1, 1, 0, 0]),
        ] {
            logic(l, &bc, &a, &b, &mut y).unwrap();
            assert_eq!(y, want, "{l:?}");
        }
    }

    /// Mod takes the divisor's sign, Fmod the dividend's; Python's `%` and C's `fmod` on the
    /// four sign combinations, i64::MIN % -1 (0, no overflow) and a zero divisor.
    #[test]
    fn integer_mod_follows_the_divisor_and_fmod_the_dividend() {
        let ints =
            |v: &[i64]| -> alloc::vec::Vec<u8> { v.iter().flat_map(|x| x.to_le_bytes()).collect() };
        let bc = broadcast(&shape(&[5]), &shape(&[5])).unwrap();
        let a = ints(&[7, -7, 7, -7, i64::MIN]);
        let b = ints(&[3, 3, -3, -3, -1]);
        let mut y = [0u8; 40];
        for (k, want) in [
            (Binary::Mod, [1i64, 2, -2, -1, 0]),
            (Binary::Fmod, [1, -1, 1, -1, 0]),
        ] {
            int_binary(k, DType::I64, &bc, &a, &b, &mut y).unwrap();
            assert_eq!(y, *ints(&want), "{k:?}");
        }
        let zero = int_binary(
            Binary::Mod,
            DType::I64,
            &bc,
            &a,
            &ints(&[1, 2, 0, 4, 5]),
            &mut y,
        );
        assert!(matches!(zero, Err(Error::BadIo { what }) if what.contains("modulo by zero")));
        // uint8 values are loaded as non-negative.
        let bc = broadcast(&shape(&[2]), &shape(&[1])).unwrap();
        let mut u = [0u8; 2];
        int_binary(Binary::Mod, DType::U8, &bc, &[250, 7], &[6], &mut u).unwrap();
        assert_eq!(u, [4, 1]);
    }

    #[test]
    fn integer_arithmetic_wraps_truncates_and_refuses_zero_divisors() {
        let bc = broadcast(&shape(&[3]), &shape(&[1])).unwrap();
        let mut y = [0u8; 3];
        int_binary(Binary::Add, DType::U8, &bc, &[200, 1, 255], &[100], &mut y).unwrap();
        assert_eq!(y, [44, 101, 99]);
        let a: alloc::vec::Vec<u8> = [-7i64, 7, i64::MIN]
            .iter()
            .flat_map(|v| v.to_le_bytes())
            .collect();
        let mut w = [0u8; 24];
        int_binary(
            Binary::Div,
            DType::I64,
            &bc,
            &a,
            &2i64.to_le_bytes(),
            &mut w,
        )
        .unwrap();
        let got: alloc::vec::Vec<i64> = w
            .chunks_exact(8)
            .map(|c| i64::from_le_bytes(c.try_into().unwrap()))
            .collect();
        assert_eq!(got, [-3, 3, i64::MIN / 2]);
        int_binary(Binary::Min, DType::I8, &bc, &[0x80, 5, 0xff], &[0], &mut y).unwrap();
        assert_eq!(y.map(|v| v as i8), [-128, 0, -1]);
        let zero = int_binary(
            Binary::Div,
            DType::I64,
            &bc,
            &a,
            &0i64.to_le_bytes(),
            &mut w,
        );
        assert!(matches!(zero, Err(Error::BadIo { what }) if what.contains("zero")));
        assert!(int_binary(
            Binary::Add,
            DType::F32,
            &bc,
            &[0; 12],
            &[0; 4],
            &mut w[..12]
        )
        .is_err());
    }

    #[test]
    fn where_picks_per_element_across_three_broadcasts() {
        // cond [2,1], x [1,3], z scalar -> [2,3].
        let out = shape(&[2, 3]);
        let (c, xs, zs) = (shape(&[2, 1]), shape(&[1, 3]), shape(&[]));
        let x = f32_bytes(&[1.0, 2.0, 3.0]);
        let z = f32_bytes(&[-7.0]);
        let mut y = [0u8; 24];
        where_select(&out, [&c, &xs, &zs], 4, &[1, 0], &x, &z, &mut y).unwrap();
        assert_eq!(y.to_vec(), f32_bytes(&[1.0, 2.0, 3.0, -7.0, -7.0, -7.0]));
        assert!(crate::kernels::strides_into(&shape(&[3, 1]), &out).is_none());
        assert!(where_select(&out, [&c, &xs, &zs], 4, &[1], &x, &z, &mut y).is_err());
    }
}

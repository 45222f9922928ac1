//! `DynamicQuantizeLinear`: float32 → uint8 with a scale and zero point taken from the tensor's
//! own range at run time. onnxruntime's `quantize_dynamic` puts one in front of every
//! `MatMulInteger`/`ConvInteger` it writes (which then read that zero point as an input), so
//! this op and a run-time left zero point in [`crate::intop`] run its files.
//!
//! As ONNX specifies: the range is widened to include 0, `scale = (max − min) / 255`,
//! `zero_point = round(clamp(−min / scale, 0, 255))` and `y = saturate(round(x / scale) + zp)`,
//! rounding half to even. As onnxruntime does where the spec is silent: NaN elements are left
//! out of the range (and quantize to 0), and an all-zero tensor gets scale 1.
//!
//! One node gives one step per requested output (y, y_scale, y_zero_point); each step makes its
//! own pass over x for the range, so no step reads another's output.

// The step type is part of every build (the step table names it); planning and the kernel only
// with integer-ops.
#![cfg_attr(not(feature = "integer-ops"), allow(dead_code, unused_imports))]

use crate::error::{Error, Result};
use crate::onnx::Node;
use crate::ops::{input, push_step, unsupported, Op, Prep, Step};
use crate::prepare::{make_step, only_attrs};
use crate::quant::round_ties_even;
use crate::tensor::{DType, Shape};

/// Which output of the node a step writes.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum DynQuant {
    /// `y`: x quantized to uint8, x's shape.
    Quantized,
    /// `y_scale`: float32 scalar.
    Scale,
    /// `y_zero_point`: uint8 scalar.
    ZeroPoint,
}

/// Plans a `DynamicQuantizeLinear` node: one step per requested output.
#[cfg(feature = "integer-ops")]
pub(crate) fn prepare_dynquant<const T: usize, const N: usize>(
    p: &mut Prep<'_, '_, T, N>,
    node: &Node<'_>,
    idx: u16,
    steps: &mut heapless::Vec<Step, N>,
) -> Result<()> {
    only_attrs(node, &[])?;
    let (x, xt) = input(p.g, node, 0)?;
    if xt.dtype != DType::F32 {
        return Err(unsupported(node, "element type (float32 expected)"));
    }
    let mut added = 0;
    for (slot, &name) in node.outputs.iter().enumerate() {
        if name.is_empty() {
            continue;
        }
        let (part, dtype, shape) = match slot {
            0 => (DynQuant::Quantized, DType::U8, xt.shape),
            1 => (DynQuant::Scale, DType::F32, Shape::new(&[], name)?),
            2 => (DynQuant::ZeroPoint, DType::U8, Shape::new(&[], name)?),
            _ => return Err(unsupported(node, "number of outputs")),
        };
        let out = p.type_output(name, dtype, shape)?;
        push_step(steps, make_step(idx, Op::DynQuant(part), &[x], out)?)?;
        added += 1;
    }
    if added == 0 {
        return Err(unsupported(node, "number of outputs"));
    }
    Ok(())
}

/// The scale and zero point of `x`: its range widened to include 0, over 255 steps.
pub fn params(x: &[f32]) -> (f32, u8) {
    // `f32::min`/`max` skip NaN, as onnxruntime's range does.
    let (lo, hi) = x
        .iter()
        .fold((0.0f32, 0.0f32), |(lo, hi), &v| (lo.min(v), hi.max(v)));
    let scale = if hi == lo { 1.0 } else { (hi - lo) / 255.0 };
    let zp = round_ties_even((-lo / scale).clamp(0.0, 255.0));
    // NaN (an infinite range gives inf/inf) saturates to 0 like a quantized NaN.
    (scale, if zp.is_nan() { 0 } else { zp as u8 })
}

/// Writes one output of `DynamicQuantizeLinear(x)` into `y` (its little-endian bytes).
pub fn dynamic_quantize(part: DynQuant, x: &[f32], y: &mut [u8]) -> Result<()> {
    let (scale, zp) = params(x);
    let bad = Error::BadIo {
        what: "DynamicQuantizeLinear buffers differ from the plan",
    };
    match part {
        DynQuant::Quantized => {
            if y.len() != x.len() {
                return Err(bad);
            }
            let z = zp as f32;
            for (o, &v) in y.iter_mut().zip(x) {
                let r = round_ties_even(v / scale) + z;
                *o = if r.is_nan() {
                    0
                } else {
                    r.clamp(0.0, 255.0) as u8
                };
            }
        }
        DynQuant::Scale if y.len() == 4 => y.copy_from_slice(&scale.to_le_bytes()),
        DynQuant::ZeroPoint if y.len() == 1 => y[0] = zp,
        _ => return Err(bad),
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn run(x: &[f32]) -> (std::vec::Vec<u8>, f32, u8) {
        let mut y = std::vec![0u8; x.len()];
        dynamic_quantize(DynQuant::Quantized, x, &mut y).unwrap();
        let mut s = [0u8; 4];
        dynamic_quantize(DynQuant::Scale, x, &mut s).unwrap();
        let mut z = [0u8; 1];
        dynamic_quantize(DynQuant::ZeroPoint, x, &mut z).unwrap();
        (y, f32::from_le_bytes(s), z[0])
    }

    #[test]
    fn positive_range_starts_at_zero() {
        // Hand-computed: scale 6/255, zero point 0, y = round(x·42.5) with ties to even
        // (42.5 → 42, 127.5 → 128, 212.5 → 212).
        let (y, s, z) = run(&[1.0, 2.0, 3.0, 4.0, 5.0, 6.0]);
        assert_eq!(s, 6.0 / 255.0);
        assert_eq!(z, 0);
        assert_eq!(y, [42, 85, 128, 170, 212, 255]);
    }

    #[test]
    fn negative_range_puts_zero_at_255() {
        let (y, s, z) = run(&[-1.0, -2.0, -3.0, 0.0]);
        assert_eq!((s, z), (3.0 / 255.0, 255));
        assert_eq!(y, [170, 85, 0, 255]);
    }

    #[test]
    fn all_zero_nan_and_infinity_do_not_fail() {
        assert_eq!(run(&[0.0; 3]), (std::vec![0, 0, 0], 1.0, 0));
        // NaN is out of the range and quantizes to 0; 1 / (2/255) is 127.49999 in float32
        // (onnxruntime gives the same three values).
        let (y, s, z) = run(&[f32::NAN, 1.0, 2.0]);
        assert_eq!((y, s, z), (std::vec![0, 127, 255], 2.0 / 255.0, 0));
        let (y, s, _) = run(&[f32::INFINITY, 1.0]);
        assert_eq!((y, s), (std::vec![0, 0], f32::INFINITY));
    }

    #[test]
    fn wrong_buffer_sizes_are_errors() {
        assert!(dynamic_quantize(DynQuant::Quantized, &[1.0], &mut [0u8; 2]).is_err());
        assert!(dynamic_quantize(DynQuant::Scale, &[1.0], &mut [0u8; 3]).is_err());
        assert!(dynamic_quantize(DynQuant::ZeroPoint, &[1.0], &mut []).is_err());
    }
}

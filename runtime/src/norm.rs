//! Normalization over the trailing axes of float32 tensors: ONNX `LayerNormalization`
//! (opset 17; what PyTorch exports `nn.LayerNorm` as from opset 17 on, in place of the
//! ReduceMean/Sub/Pow/Sqrt/Div chain) and `InstanceNormalization`.
//!
//! Both normalize `rows` independent runs of `len` values: `y = (x − mean) / sqrt(var + eps)`,
//! then `y · scale + bias`. They differ only in where scale and bias are read: LayerNormalization
//! indexes them by position in the run (they broadcast over the normalized axes), Instance-
//! Normalization by the run's channel. The statistics are two-pass in float32 (mean, then the
//! mean of squared deviations), which keeps the variance non-negative and accurate for inputs
//! with a large mean, where `E[x²] − E[x]²` cancels.
//!
//! LayerNormalization's optional `Mean` and `InvStdDev` outputs are steps of their own (one
//! output per step, as for recurrent layers); exported models rarely ask for them.

// The types are part of every build (the step table names them); planning and the kernel only
// with float-ops.
#![cfg_attr(not(feature = "float-ops"), allow(dead_code, unused_imports))]

use crate::error::{Error, Result};
use crate::onnx::Node;
use crate::ops::{input, push_step, shape_err, unsupported, Op, Prep, Step};
use crate::prepare::make_step;
use crate::tensor::{DType, Shape, MAX_RANK};

/// What a normalization step writes.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum NormOutput {
    /// The normalized, scaled and shifted values (`rows × len`).
    Y,
    /// Each run's mean (`rows`).
    Mean,
    /// Each run's `1 / sqrt(var + eps)` (`rows`).
    InvStdDev,
}

/// One normalization step: `rows` runs of `len` values. Inputs: X, then (for `Y`) scale and
/// an optional bias.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Norm {
    /// Independent runs normalized separately.
    pub rows: usize,
    /// Values per run.
    pub len: usize,
    /// Added to the variance before the square root.
    pub eps: f32,
    /// Channels when scale and bias are per run (InstanceNormalization: run `r` uses entry
    /// `r mod channels`); 0 when they are per position in the run (LayerNormalization: value
    /// `j` uses entry `j mod scale_len`, a trailing-axes broadcast).
    pub channels: usize,
    /// Length of the scale input.
    pub scale_len: usize,
    /// Length of the bias input; 0 when there is none.
    pub bias_len: usize,
    /// What the step writes.
    pub output: NormOutput,
}

/// Plans a `LayerNormalization` or `InstanceNormalization` node: one step per requested output.
#[cfg(feature = "float-ops")]
pub(crate) fn prepare_norm<const T: usize, const N: usize>(
    p: &mut Prep<'_, '_, T, N>,
    node: &Node<'_>,
    idx: u16,
    steps: &mut heapless::Vec<Step, N>,
) -> Result<()> {
    let layer = node.op_type == "LayerNormalization";
    let (x, xt) = input(p.g, node, 0)?;
    if xt.dtype != DType::F32 {
        return Err(unsupported(node, "element type (this op runs on float32)"));
    }
    let s = xt.shape;
    let rank = s.rank();
    let dims = s.dims();
    let (ax, channels) = if layer {
        crate::prepare::only_attrs(node, &["axis", "epsilon", "stash_type"])?;
        if node.attr_i("stash_type", 1)? != 1 {
            return Err(unsupported(node, "stash_type other than float32"));
        }
        let a = node.attr_i("axis", -1)?;
        let r = rank as i64;
        if rank == 0 || a < -r || a >= r {
            return Err(shape_err(node, "axis out of range"));
        }
        (if a < 0 { (a + r) as usize } else { a as usize }, 0)
    } else {
        crate::prepare::only_attrs(node, &["epsilon"])?;
        if rank < 3 {
            return Err(shape_err(node, "input must be N×C×spatial"));
        }
        (2, s.dim(1))
    };
    let rows: usize = dims[..ax].iter().map(|&d| d as usize).product();
    let len: usize = dims[ax..].iter().map(|&d| d as usize).product();
    if len == 0 {
        return Err(shape_err(node, "the normalized axes are empty"));
    }
    let mut affine: heapless::Vec<u16, 2> = heapless::Vec::new();
    let mut lens = [0usize; 2];
    for (k, slot) in lens.iter_mut().enumerate() {
        let i = k + 1;
        if node.input(i).is_none() {
            if i == 1 || !layer {
                return Err(shape_err(node, "a required input is missing"));
            }
            continue;
        }
        let (id, t) = input(p.g, node, i)?;
        if t.dtype != DType::F32 {
            return Err(unsupported(node, "element type (this op runs on float32)"));
        }
        let fits = if layer {
            broadcasts_over(t.shape.dims(), &dims[ax..])
        } else {
            t.shape.rank() == 1 && t.shape.numel() == channels
        };
        if !fits {
            return Err(shape_err(
                node,
                if layer {
                    "scale or bias does not broadcast over the normalized axes"
                } else {
                    "scale or bias length differs from channels"
                },
            ));
        }
        *slot = t.shape.numel();
        let _ = affine.push(id);
    }
    let base = Norm {
        rows,
        len,
        eps: node.attr_f("epsilon", 1e-5)?,
        channels,
        scale_len: lens[0],
        bias_len: lens[1],
        output: NormOutput::Y,
    };
    let mut added = 0;
    for (k, &name) in node.outputs.iter().enumerate() {
        if name.is_empty() {
            continue;
        }
        let output = match (k, layer) {
            (0, _) => NormOutput::Y,
            (1, true) => NormOutput::Mean,
            (2, true) => NormOutput::InvStdDev,
            _ => return Err(unsupported(node, "number of outputs")),
        };
        // Statistics keep the input's rank with the normalized axes as 1s.
        let mut d = [0i64; MAX_RANK];
        for (i, v) in d.iter_mut().enumerate().take(rank) {
            *v = if output == NormOutput::Y || i < ax {
                i64::from(dims[i])
            } else {
                1
            };
        }
        let out = p.type_output(name, DType::F32, Shape::new(&d[..rank], name)?)?;
        let mut ins: heapless::Vec<u16, 3> = heapless::Vec::new();
        let _ = ins.push(x);
        if output == NormOutput::Y {
            let _ = ins.extend_from_slice(&affine);
        }
        push_step(
            steps,
            make_step(idx, Op::Norm(Norm { output, ..base }), &ins, out)?,
        )?;
        added += 1;
    }
    if added == 0 {
        return Err(unsupported(node, "number of outputs"));
    }
    Ok(())
}

/// True when a tensor of shape `b` broadcasts over `d` with its position in `d` found as
/// `j mod numel(b)`: `b` without its leading 1s is a suffix of `d`.
fn broadcasts_over(b: &[u32], d: &[u32]) -> bool {
    let first = b.iter().position(|&v| v != 1).unwrap_or(b.len());
    let b = &b[first..];
    b.len() <= d.len() && d[d.len() - b.len()..] == *b
}

/// Runs one normalization step. `scale` and `bias` are empty for the statistics outputs, and
/// `bias` is empty when the node has none.
pub fn normalize(n: &Norm, x: &[f32], scale: &[f32], bias: &[f32], y: &mut [f32]) -> Result<()> {
    let total = n.rows.checked_mul(n.len);
    let stats = n.output != NormOutput::Y;
    let ok = total == Some(x.len())
        && n.len > 0
        && if stats {
            y.len() == n.rows
        } else {
            y.len() == x.len()
                && scale.len() == n.scale_len
                && bias.len() == n.bias_len
                && n.scale_len > 0
                && (n.channels == 0
                    || (n.scale_len == n.channels && (n.bias_len == 0 || n.bias_len == n.channels)))
        };
    if !ok {
        return Err(Error::BadIo {
            what: "buffer size does not match the plan",
        });
    }
    let inv_len = 1.0 / n.len as f32;
    for (r, run) in x.chunks_exact(n.len).enumerate() {
        let mean = run.iter().sum::<f32>() * inv_len;
        let var = run.iter().map(|&v| (v - mean) * (v - mean)).sum::<f32>() * inv_len;
        let inv = 1.0 / crate::kernels::sqrt(var + n.eps);
        match n.output {
            NormOutput::Mean => y[r] = mean,
            NormOutput::InvStdDev => y[r] = inv,
            NormOutput::Y => {
                let out = &mut y[r * n.len..(r + 1) * n.len];
                if n.channels > 0 {
                    let c = r % n.channels;
                    let (g, b) = (scale[c], bias.get(c).copied().unwrap_or(0.0));
                    for (o, &v) in out.iter_mut().zip(run) {
                        *o = (v - mean) * inv * g + b;
                    }
                } else {
                    for (j, (o, &v)) in out.iter_mut().zip(run).enumerate() {
                        let b = if n.bias_len > 0 {
                            bias[j % n.bias_len]
                        } else {
                            0.0
                        };
                        *o = (v - mean) * inv * scale[j % n.scale_len] + b;
                    }
                }
            }
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn norm(rows: usize, len: usize, channels: usize, scale_len: usize, bias_len: usize) -> Norm {
        Norm {
            rows,
            len,
            eps: 0.0,
            channels,
            scale_len,
            bias_len,
            output: NormOutput::Y,
        }
    }

    #[test]
    fn layer_norm_matches_hand_computed_values() {
        // Run [1, 2, 3, 6]: mean 3, variance (4 + 1 + 0 + 9) / 4 = 3.5.
        let x = [1.0, 2.0, 3.0, 6.0, 5.0, 5.0, 5.0, 5.0];
        let mut y = [0.0; 8];
        let n = norm(2, 4, 0, 2, 1);
        normalize(&n, &x, &[1.0, 2.0], &[0.5], &mut y).unwrap();
        let s = 1.0 / 3.5f32.sqrt();
        let want = [-2.0 * s + 0.5, -2.0 * s + 0.5, 0.5, 6.0 * s + 0.5];
        for (a, b) in y[..4].iter().zip(want) {
            assert!((a - b).abs() < 1e-6, "{a} vs {b}");
        }
        // A constant run with eps = 0 divides by zero: inf * 0 = NaN, as 1/sqrt(0) does in
        // onnxruntime; with eps > 0 it is exactly the bias.
        assert!(y[4].is_nan());
        let mut y2 = [0.0; 8];
        normalize(&Norm { eps: 1e-5, ..n }, &x, &[1.0, 2.0], &[0.5], &mut y2).unwrap();
        assert_eq!(&y2[4..], &[0.5; 4]);
        let mut m = [0.0; 2];
        let stats = Norm {
            output: NormOutput::Mean,
            ..n
        };
        normalize(&stats, &x, &[], &[], &mut m).unwrap();
        assert_eq!(m, [3.0, 5.0]);
        let mut inv = [0.0; 2];
        let stats = Norm {
            output: NormOutput::InvStdDev,
            eps: 0.5,
            ..n
        };
        normalize(&stats, &x, &[], &[], &mut inv).unwrap();
        assert!((inv[0] - 0.5).abs() < 1e-7 && (inv[1] - 2f32.sqrt()).abs() < 1e-6);
    }

    #[test]
    fn instance_norm_reads_scale_and_bias_by_channel() {
        // N = 2, C = 2, two values per map: every run is [a, b] -> [-1, 1] before the affine.
        let x = [0.0, 2.0, 10.0, 30.0, -1.0, 1.0, 7.0, 9.0];
        let mut y = [0.0; 8];
        normalize(&norm(4, 2, 2, 2, 2), &x, &[1.0, 3.0], &[0.0, 1.0], &mut y).unwrap();
        assert_eq!(y, [-1.0, 1.0, -2.0, 4.0, -1.0, 1.0, -2.0, 4.0]);
    }

    #[test]
    fn sizes_that_differ_from_the_plan_are_errors() {
        let mut y = [0.0; 4];
        let n = norm(1, 4, 0, 4, 0);
        assert!(normalize(&n, &[0.0; 3], &[1.0; 4], &[], &mut y).is_err());
        assert!(normalize(&n, &[0.0; 4], &[1.0; 3], &[], &mut y).is_err());
        assert!(normalize(&n, &[0.0; 4], &[1.0; 4], &[1.0], &mut y).is_err());
        assert!(normalize(&norm(1, 0, 0, 1, 0), &[], &[1.0], &[], &mut []).is_err());
    }

    #[test]
    fn broadcast_rule_is_a_trailing_suffix() {
        assert!(broadcasts_over(&[4, 5], &[3, 4, 5]));
        assert!(broadcasts_over(&[1, 5], &[4, 5]));
        assert!(broadcasts_over(&[1], &[4, 5]));
        assert!(!broadcasts_over(&[4, 1], &[4, 5]));
        assert!(!broadcasts_over(&[2, 4, 5], &[4, 5]));
    }
}

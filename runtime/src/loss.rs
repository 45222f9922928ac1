//! `NegativeLogLikelihoodLoss` and `SoftmaxCrossEntropyLoss` on float32: a model's loss
//! computed on the device (drift monitoring, on-device evaluation against labels), as
//! PyTorch exports `F.nll_loss` and `F.cross_entropy`.
//!
//! Input `N × C × d…` (class scores or, for NLL, log-probabilities), targets `N × d…` (int64
//! or int32), optional per-class weights `C`. Each position loses `−w[t] · v[t]`, where `v` is
//! the input (NLL) or its log-softmax over C (cross-entropy, computed per position as
//! `x − max − ln Σ e^(x − max)`, no scratch); a target equal to `ignore_index` loses 0 with
//! weight 0. Reduction `none` keeps the positions, `sum` adds them, `mean` divides the sum by
//! the sum of the weights (the count of positions not ignored when unweighted), as ONNX's
//! reference does. Targets are run-time data: one outside `0..C` that is not ignored is an
//! error at invoke. Cross-entropy's optional `log_prob` output is a LogSoftmax step.

// The step type is part of every build (the step table names it); planning and the kernel only
// with extra-ops.
#![cfg_attr(not(feature = "extra-ops"), allow(dead_code, unused_imports))]

use crate::error::{Error, Result};
use crate::onnx::Node;
use crate::ops::{input, push_step, shape_err, unsupported, Op, Prep, Step};
use crate::prepare::{make_step, only_attrs};
use crate::tensor::{DType, Shape};

/// How the per-position losses are combined.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum LossReduction {
    /// One loss per position (the targets' shape).
    None,
    /// Their sum (a scalar).
    Sum,
    /// Their weighted mean (a scalar).
    Mean,
}

/// One loss step.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Loss {
    /// Batch.
    pub n: usize,
    /// Classes.
    pub c: usize,
    /// Positions per batch entry (the product of the dims after C).
    pub inner: usize,
    /// Combination.
    pub reduction: LossReduction,
    /// Targets equal to this lose nothing.
    pub ignore_index: Option<i64>,
    /// A weight input (the step's third) is present.
    pub weighted: bool,
    /// Log-softmax the input over C first (SoftmaxCrossEntropyLoss).
    pub softmax: bool,
    /// Targets are int64 (else int32).
    pub wide: bool,
}

/// Plans a `NegativeLogLikelihoodLoss` or `SoftmaxCrossEntropyLoss` node: the loss step, and
/// for cross-entropy's `log_prob` output a LogSoftmax step.
#[inline(never)] // keeps its locals out of the planner's frame (MCU stacks)
pub(crate) fn prepare_loss<const T: usize, const N: usize>(
    p: &mut Prep<'_, '_, T, N>,
    node: &Node<'_>,
    idx: u16,
    steps: &mut heapless::Vec<Step, N>,
) -> Result<()> {
    only_attrs(node, &["ignore_index", "reduction"])?;
    let softmax = node.op_type == "SoftmaxCrossEntropyLoss";
    let (x, xt) = input(p.g, node, 0)?;
    let (t, tt) = input(p.g, node, 1)?;
    if xt.dtype != DType::F32 {
        return Err(unsupported(node, "element type (this op runs on float32)"));
    }
    let wide = match tt.dtype {
        DType::I64 => true,
        DType::I32 => false,
        _ => return Err(shape_err(node, "targets must be int64 or int32")),
    };
    let (s, ts) = (xt.shape, tt.shape);
    let r = s.rank();
    if r < 2
        || ts.rank() != r - 1
        || ts.dim(0) != s.dim(0)
        || (2..r).any(|a| ts.dim(a - 1) != s.dim(a))
    {
        return Err(shape_err(node, "input must be N×C×d… and targets N×d…"));
    }
    let c = s.dim(1);
    let mut ins = heapless::Vec::<u16, 3>::new();
    let _ = ins.push(x);
    let _ = ins.push(t);
    let weighted = node.input(2).is_some_and(|n| !n.is_empty());
    if weighted {
        let (w, wt) = input(p.g, node, 2)?;
        if wt.dtype != DType::F32 || wt.shape.rank() != 1 || wt.shape.dim(0) != c {
            return Err(shape_err(
                node,
                "weights must be float32 with one per class",
            ));
        }
        let _ = ins.push(w);
    }
    let reduction = match node.attr_s("reduction")? {
        None | Some(b"mean") => LossReduction::Mean,
        Some(b"sum") => LossReduction::Sum,
        Some(b"none") => LossReduction::None,
        Some(_) => return Err(unsupported(node, "reduction")),
    };
    let ignore_index = match node.attr("ignore_index")? {
        Some(_) => Some(node.attr_i("ignore_index", 0)?),
        None => None,
    };
    let loss = Loss {
        n: s.dim(0),
        c,
        inner: s.dims()[2..].iter().map(|&v| v as usize).product(),
        reduction,
        ignore_index,
        weighted,
        softmax,
        wide,
    };
    let mut written = 0;
    for (slot, &name) in node.outputs.iter().enumerate() {
        if name.is_empty() {
            continue;
        }
        let (op, shape) = match slot {
            0 if reduction == LossReduction::None => (Op::Loss(loss), ts),
            0 => (Op::Loss(loss), Shape::SCALAR),
            1 if softmax => {
                let log_softmax = Op::Softmax {
                    outer: loss.n,
                    len: c,
                    inner: loss.inner,
                    log: true,
                };
                (log_softmax, s)
            }
            _ => return Err(unsupported(node, "number of outputs")),
        };
        let out = p.type_output(name, DType::F32, shape)?;
        let step_ins = if slot == 0 { &ins[..] } else { &ins[..1] };
        push_step(steps, make_step(idx, op, step_ins, out)?)?;
        written += 1;
    }
    if written == 0 {
        return Err(unsupported(node, "number of outputs"));
    }
    Ok(())
}

/// The loss (see the module doc): `x` is `n × c × inner`, `targets` `n × inner` (int64 when
/// `l.wide`, else int32), `weight` the per-class weights when `l.weighted`.
#[inline(never)] // one body, not copied into eval (MCU flash)
pub fn loss(
    l: &Loss,
    x: &[f32],
    targets: &[u8],
    weight: Option<&[f32]>,
    y: &mut [f32],
) -> Result<()> {
    let (c, inner) = (l.c, l.inner);
    let tsize = if l.wide { 8 } else { 4 };
    let positions = l.n * inner;
    let out_len = if l.reduction == LossReduction::None {
        positions
    } else {
        1
    };
    if x.len() != positions * c
        || targets.len() != positions * tsize
        || y.len() != out_len
        || weight.is_some_and(|w| w.len() != c)
        || weight.is_some() != l.weighted
    {
        return Err(crate::kernels::size_mismatch());
    }
    let (mut total, mut weights) = (0.0f32, 0.0f32);
    for (k, b) in targets.chunks_exact(tsize).enumerate() {
        let t = if l.wide {
            i64::from_le_bytes([b[0], b[1], b[2], b[3], b[4], b[5], b[6], b[7]])
        } else {
            i32::from_le_bytes([b[0], b[1], b[2], b[3]]) as i64
        };
        let (lost, w) = if l.ignore_index == Some(t) {
            (0.0, 0.0)
        } else {
            if !(0..c as i64).contains(&t) {
                return Err(Error::BadIo {
                    what: "loss target outside the classes",
                });
            }
            let (n, i) = (k / inner, k % inner);
            let at = |class: usize| x[(n * c + class) * inner + i];
            let mut v = at(t as usize);
            if l.softmax {
                let max = (0..c).map(at).fold(f32::NEG_INFINITY, f32::max);
                let sum: f32 = (0..c).map(|j| libm::expf(at(j) - max)).sum();
                v = v - max - libm::logf(sum);
            }
            let w = weight.map_or(1.0, |w| w[t as usize]);
            (-v * w, w)
        };
        match l.reduction {
            LossReduction::None => y[k] = lost,
            _ => {
                total += lost;
                weights += w;
            }
        }
    }
    match l.reduction {
        LossReduction::None => {}
        LossReduction::Sum => y[0] = total,
        LossReduction::Mean => y[0] = total / weights,
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn targets(v: &[i64]) -> std::vec::Vec<u8> {
        v.iter().flat_map(|t| t.to_le_bytes()).collect()
    }

    #[test]
    fn nll_reductions_weights_and_ignored_targets() {
        // N = 3, C = 2: inputs are log-probabilities.
        let x = [-0.5f32, -1.0, -2.0, -0.25, -0.75, -3.0];
        let mut l = Loss {
            n: 3,
            c: 2,
            inner: 1,
            reduction: LossReduction::None,
            ignore_index: Some(-1),
            weighted: false,
            softmax: false,
            wide: true,
        };
        let t = targets(&[1, 0, -1]);
        let mut y = [0.0f32; 3];
        loss(&l, &x, &t, None, &mut y).unwrap();
        assert_eq!(y, [1.0, 2.0, 0.0]);
        l.reduction = LossReduction::Mean;
        let mut m = [0.0f32];
        loss(&l, &x, &t, None, &mut m).unwrap();
        assert_eq!(m, [1.5]); // two positions count
        l.weighted = true;
        loss(&l, &x, &t, Some(&[3.0, 1.0]), &mut m).unwrap();
        assert_eq!(m, [(1.0 + 6.0) / 4.0]);
        l.reduction = LossReduction::Sum;
        loss(&l, &x, &t, Some(&[3.0, 1.0]), &mut m).unwrap();
        assert_eq!(m, [7.0]);
        // A target outside the classes is an error, not a read.
        assert!(loss(&l, &x, &targets(&[1, 2, 0]), Some(&[3.0, 1.0]), &mut m).is_err());
    }

    #[test]
    fn cross_entropy_is_nll_of_log_softmax() {
        // Two classes with scores 0 and ln 3: probabilities 1/4 and 3/4.
        let x = [0.0f32, 3.0f32.ln()];
        let l = Loss {
            n: 1,
            c: 2,
            inner: 1,
            reduction: LossReduction::Sum,
            ignore_index: None,
            weighted: false,
            softmax: true,
            wide: false,
        };
        let mut y = [0.0f32];
        loss(&l, &x, &0i32.to_le_bytes(), None, &mut y).unwrap();
        assert!((y[0] - 4.0f32.ln()).abs() < 1e-6, "{y:?}");
    }
}

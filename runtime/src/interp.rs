//! The interpreter: plans a model into one caller-given arena once, then runs it any number of
//! times without allocating.

use core::mem::MaybeUninit;
use core::ptr::addr_of_mut;

use crate::error::{Error, Name, Result};
use crate::fuse::try_fuse;
use crate::graph::{Graph, Loc, NONE};
use crate::kernels as k;
use crate::onnx::Model;
use crate::ops::{Fill, Op, Prep, Step, MAX_STEP_INPUTS};
use crate::planner::{GreedyPlanner, MemoryPlanner, ALIGN};
use crate::prepare::prepare_node;
use crate::quant::{Requant, RequantTable};
use crate::tensor::{DType, Shape};

/// Default interpreter: up to 512 tensors and 256 nodes (host, Jetson).
pub type Interpreter<'m, 'a> = InterpreterWith<'m, 'a, 512, 256>;

/// How a model is planned.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
#[cfg_attr(feature = "defmt", derive(defmt::Format))]
pub struct PlanOptions {
    /// Compute the float16 part of the model (tensors that are float16 in the file) in half
    /// precision — f16 multiply-accumulate in convolutions and Gemm, every other result rounded
    /// to f16 — instead of widening it to float32: the f16 path for CPUs with float16
    /// arithmetic (see [`crate::half_ops`]; the aarch64 FP16 kernels are bit-exact with the
    /// portable ones). float32 and int8 parts of a model are unchanged. Off by default.
    pub half_arithmetic: bool,
    /// Recompute constant steps (spectral windows, mel matrices: steps with nothing to read)
    /// on every invoke instead of once into the persistent area when the plan is made. Off by
    /// default; on trades time for RAM where the constant would otherwise stay resident (the
    /// small audio front end of README: arena 12,447 → 8,287 B, 31% more instructions on a
    /// Cortex-M4).
    pub recompute_constants: bool,
}

/// Sizes of a plan, computed by [`plan_into`].
#[derive(Debug, Clone, Copy, Default)]
pub(crate) struct Sizes {
    pub(crate) persist: usize,
    pub(crate) work: usize,
    pub(crate) lower_bound: usize,
}

impl Sizes {
    pub(crate) fn needed(&self) -> usize {
        self.persist + self.work + ALIGN - 1
    }

    /// The persistent and working parts of `arena`, from its first ALIGN-aligned byte.
    pub(crate) fn split<'x>(&self, arena: &'x mut [u8]) -> Result<(&'x mut [u8], &'x mut [u8])> {
        let given = arena.len();
        let pad = arena.as_ptr().align_offset(ALIGN).min(ALIGN);
        if given < pad + self.persist + self.work {
            return Err(Error::ArenaTooSmall {
                needed: self.needed(),
                given,
            });
        }
        Ok(arena[pad..pad + self.persist + self.work].split_at_mut(self.persist))
    }

    pub(crate) fn report(&self, steps: usize) -> ArenaReport {
        ArenaReport {
            total: self.needed(),
            persistent: self.persist,
            working: self.work,
            working_lower_bound: self.lower_bound,
            steps,
        }
    }
}

/// Sizes a plan needs, known before any arena exists.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[cfg_attr(feature = "defmt", derive(defmt::Format))]
pub struct ArenaReport {
    /// Bytes to give [`InterpreterWith::new`] (persistent + working + alignment slack).
    pub total: usize,
    /// Precomputed constants (copied f32 weights, int32 biases, requantization tables).
    pub persistent: usize,
    /// Planned activations.
    pub working: usize,
    /// The most bytes of activations live at one step: no plan's working part can be smaller.
    pub working_lower_bound: usize,
    /// Steps after fusion.
    pub steps: usize,
}

/// Plans `model` into tables the caller owns (filled in place: on a microcontroller these
/// tables are most of the stack, so they must not be built here and then moved).
/// The op families a build may leave out, each with whether this build has it.
pub const OP_FAMILIES: [(&str, bool); 13] = [
    ("float-ops", cfg!(feature = "float-ops")),
    ("layout-ops", cfg!(feature = "layout-ops")),
    ("int8-residual", cfg!(feature = "int8-residual")),
    ("int8-concat", cfg!(feature = "int8-concat")),
    ("int8-avgpool", cfg!(feature = "int8-avgpool")),
    ("recurrent", cfg!(feature = "recurrent")),
    ("integer-ops", cfg!(feature = "integer-ops")),
    ("uint8", cfg!(feature = "uint8")),
    ("int8-lut", cfg!(feature = "int8-lut")),
    ("shape-ops", cfg!(feature = "shape-ops")),
    ("logic-ops", cfg!(feature = "logic-ops")),
    ("extra-ops", cfg!(feature = "extra-ops")),
    ("signal-ops", cfg!(feature = "signal-ops")),
];

/// Which of [`OP_FAMILIES`] the steps use.
fn families_used<const T: usize, const N: usize>(
    g: &Graph<'_, T, N>,
    steps: &[Step],
) -> [bool; 13] {
    let mut used = [false; 13];
    // Values folded at plan time (a build without the family refuses them in `fold`).
    used[9] = !g.folded.is_empty();
    used[12] = g.hoisted_signal;
    for s in steps {
        let family = match s.op {
            Op::Unary(_)
            | Op::Binary(..)
            | Op::Conv(_)
            | Op::ConvF16(_)
            | Op::ConvTranspose(_)
            | Op::Gemm { .. }
            | Op::GemmF16 { .. }
            | Op::MatMul { .. }
            | Op::AveragePool { .. }
            | Op::GlobalAveragePool { .. }
            | Op::Softmax { .. }
            | Op::ArgExtreme { .. }
            | Op::Reduce { .. }
            | Op::Norm(_)
            | Op::TopK(_)
            | Op::Convert { .. }
            | Op::Variadic(_)
            | Op::Hardmax { .. }
            | Op::ClipInputs { .. }
            | Op::BatchNorm { .. } => Some(0),
            Op::MaxPool(_) if g.t(s.out).dtype == DType::F32 => Some(0),
            Op::Slice { .. }
            | Op::Gather { .. }
            | Op::GatherElements { .. }
            | Op::ScatterElements { .. }
            | Op::Transpose { .. }
            | Op::Pad { .. }
            | Op::Tile { .. }
            | Op::Trilu { .. } => Some(1),
            Op::GatherNd { .. }
            | Op::ScatterNd { .. }
            | Op::ReverseSequence { .. }
            | Op::OneHot { .. }
            | Op::EyeLike { .. }
            | Op::Lrn(_)
            | Op::Mvn { .. }
            | Op::CumSum { .. }
            | Op::Einsum(_)
            | Op::GridSample(_)
            | Op::Loss(_) => Some(11),
            Op::Dft(_) | Op::Stft(_) | Op::WindowFn { .. } | Op::MelWeights(_) => Some(12),
            Op::Resize {
                mode: crate::ops::ResizeMode::Linear,
                ..
            } => Some(0),
            Op::Resize { .. } => Some(1),
            Op::QAdd(_) | Op::QMul(_) => Some(2),
            Op::QConcat(_) => Some(3),
            Op::QAvgPool(_) => Some(4),
            Op::Rnn(_) => Some(5),
            Op::IntLinear(_) | Op::DynQuant(_) => Some(6),
            // Trigonometric, Mish and Gelu tables are computed with float-ops' libm functions.
            Op::QLut { name, .. } if name as usize >= crate::ops::LUT_OPS_WITHOUT_FLOAT_OPS => {
                used[0] = true;
                Some(8)
            }
            Op::QLut { .. } => Some(8),
            Op::Compare(_) | Op::Logic(_) | Op::Where | Op::IntBinary(_) | Op::Classify(_) => {
                Some(10)
            }
            _ => None,
        };
        if let Some(f) = family {
            used[f] = true;
        }
        // Unsigned 8-bit activations (onnxruntime's default QUInt8) instead of int8.
        if s.inputs()
            .iter()
            .chain([&s.out])
            .any(|&t| g.t(t).dtype == DType::U8)
        {
            used[7] = true;
        }
    }
    used
}

/// The half-arithmetic pass ([`PlanOptions::half_arithmetic`]): marks which float results are
/// float16 in the model (propagated from float16 inputs and initializers; a `Cast` decides for
/// itself), turns their convolutions, Gemms and MatMuls with constant weights into the f16
/// kernels and
/// has every other float16 result rounded to f16.
#[cfg(feature = "float-ops")]
fn plan_half<const T: usize, const N: usize>(
    g: &mut Graph<'_, T, N>,
    steps: &mut heapless::Vec<Step, N>,
) -> Result<()> {
    use crate::ops::Unary;
    for s in steps.iter_mut() {
        if g.t(s.out).dtype != DType::F32 {
            continue;
        }
        let half = match s.op {
            Op::Unary(Unary::RoundF16) => true,
            // Cast to float32 (a copy here), or any other op on float32 data.
            _ if g.node(s.node)?.op_type == "Cast" => false,
            _ => s.inputs().first().is_some_and(|&i| g.t(i).half),
        };
        g.t_mut(s.out)?.half = half;
        if !half {
            continue;
        }
        // A constant, read by this step only, that can be stored as f16.
        let own = |g: &Graph<'_, T, N>, pos: usize| {
            s.inputs().get(pos).is_some_and(|&i| {
                let t = g.t(i);
                t.konst.is_some() && t.uses == 1 && t.loc == Loc::None
            })
        };
        let bias_ok = s.n_in < 3 || own(g, 2);
        let op = match s.op {
            Op::Conv(w) if own(g, 1) && bias_ok => Some(Op::ConvF16(w)),
            Op::Gemm {
                m,
                k,
                n,
                trans_a: false,
                trans_b,
                alpha,
                beta,
                c,
            } if alpha == 1.0
                && beta == 1.0
                && own(g, 1)
                && bias_ok
                // C, if any, is one value per output column.
                && c.is_none_or(|_| s.n_in == 3 && g.t(s.ins[2]).shape.numel() == n) =>
            {
                Some(Op::GemmF16 { m, k, n, trans_b })
            }
            // A · constant 2-D B (the float16 export writes dense layers as MatMul + Add).
            Op::MatMul {
                batch,
                m,
                k,
                n,
                a_batch_stride,
                b_batch_stride: 0,
            } if own(g, 1)
                && g.t(s.ins[1]).shape.numel() == k * n
                && (batch == 1 || a_batch_stride == m * k) =>
            {
                Some(Op::GemmF16 {
                    m: batch * m,
                    k,
                    n,
                    trans_b: false,
                })
            }
            _ => None,
        };
        match op {
            Some(op) => {
                s.op = op;
                for &i in &s.ins[1..s.n_in as usize] {
                    g.t_mut(i)?.dtype = DType::F16;
                }
                s.scratch = match op {
                    Op::ConvF16(w) => crate::half_ops::conv_scratch_bytes(&w),
                    _ => 0,
                };
            }
            // Max, ReLU, reshapes and copies of f16 values are f16 values already.
            None => {
                s.round_f16 = !matches!(
                    s.op,
                    Op::Copy
                        | Op::MaxPool(_)
                        | Op::Concat { .. }
                        | Op::Unary(Unary::Relu | Unary::Abs | Unary::Neg | Unary::RoundF16)
                )
            }
        }
    }
    Ok(())
}

/// Without the float kernels there is no float16 part to compute.
#[cfg(not(feature = "float-ops"))]
fn plan_half<const T: usize, const N: usize>(
    _: &mut Graph<'_, T, N>,
    _: &mut heapless::Vec<Step, N>,
) -> Result<()> {
    Ok(())
}

#[inline(never)] // keeps this large frame off the caller's stack on MCUs
fn plan_into<'m, const T: usize, const N: usize>(
    model: &Model<'m>,
    g: &mut Graph<'m, T, N>,
    steps: &mut heapless::Vec<Step, N>,
    fills: &mut heapless::Vec<Fill, N>,
    opts: PlanOptions,
) -> Result<Sizes> {
    g.load(model)?;
    steps.clear();
    fills.clear();
    let mut absorbed = [false; N];
    let mut persist = 0usize;
    for idx in 0..g.nodes.len() {
        if absorbed[idx] {
            continue;
        }
        let node = g.node(idx as u16)?;
        if node.op_type == "Constant" && node.domain.is_empty() {
            let v = node
                .attr("value")?
                .and_then(|a| a.tensor())
                .ok_or_else(|| node.bad_attr("Constant without a tensor value"))??;
            let id =
                g.find(node.outputs.first().copied().unwrap_or(""))
                    .ok_or(Error::InvalidModel {
                        reason: "Constant without output",
                    })?;
            let t = g.t_mut(id)?;
            t.konst = Some(v);
            t.half = v.dtype == DType::F16;
            t.dtype = v.dtype.computed();
            t.shape = v.shape;
            t.known = true;
            continue;
        }
        let mut prep = Prep {
            g: &mut *g,
            persist,
            fills: &mut *fills,
        };
        #[cfg(feature = "recurrent")]
        if matches!(node.op_type, "RNN" | "GRU" | "LSTM") && node.domain.is_empty() {
            // One step per requested output.
            crate::rnn::prepare_rnn(&mut prep, &node, idx as u16, steps)?;
            persist = prep.persist;
            continue;
        }
        #[cfg(feature = "float-ops")]
        if matches!(node.op_type, "LayerNormalization" | "InstanceNormalization")
            && node.domain.is_empty()
        {
            // One step per requested output.
            crate::norm::prepare_norm(&mut prep, &node, idx as u16, steps)?;
            persist = prep.persist;
            continue;
        }
        #[cfg(feature = "float-ops")]
        if node.op_type == "TopK" && node.domain.is_empty() {
            // One step per requested output.
            crate::topk::prepare_topk(&mut prep, &node, idx as u16, steps)?;
            persist = prep.persist;
            continue;
        }
        #[cfg(feature = "extra-ops")]
        if matches!(
            node.op_type,
            "NegativeLogLikelihoodLoss" | "SoftmaxCrossEntropyLoss"
        ) && node.domain.is_empty()
        {
            // The loss, and cross-entropy's log-probabilities as a step of their own.
            crate::loss::prepare_loss(&mut prep, &node, idx as u16, steps)?;
            persist = prep.persist;
            continue;
        }
        #[cfg(feature = "signal-ops")]
        if matches!(
            node.op_type,
            "DFT" | "STFT" | "HannWindow" | "HammingWindow" | "BlackmanWindow" | "MelWeightMatrix"
        ) && node.domain.is_empty()
        {
            // A transform's step carries its scratch (frame and twiddle table).
            crate::signal::prepare_signal(&mut prep, &node, idx as u16, steps)?;
            persist = prep.persist;
            continue;
        }
        #[cfg(feature = "integer-ops")]
        if node.op_type == "DynamicQuantizeLinear" && node.domain.is_empty() {
            // One step per requested output.
            crate::dynquant::prepare_dynquant(&mut prep, &node, idx as u16, steps)?;
            persist = prep.persist;
            continue;
        }
        if node.op_type == "Split" && node.domain.is_empty() {
            // One step per output.
            crate::prepare::prepare_split(&mut prep, &node, idx as u16, steps)?;
            persist = prep.persist;
            continue;
        }
        if crate::fold::try_fold(&mut prep, &node, idx as u16)? {
            continue;
        }
        let step = match try_fuse(&mut prep, &node, idx as u16)? {
            Some((step, gone)) => {
                for i in gone {
                    if let Some(a) = absorbed.get_mut(i as usize) {
                        *a = true;
                    }
                }
                step
            }
            None => prepare_node(&mut prep, &node, idx as u16)?,
        };
        persist = prep.persist;
        crate::ops::push_step(steps, step)?;
    }
    // Every graph output must be computed by a step.
    for &o in &g.outputs {
        let t = g.t(o);
        if !t.known || t.konst.is_some() || t.is_input {
            return Err(Error::Unsupported {
                node: Name::new(t.name),
                what: "graph output that is an input or a constant",
            });
        }
    }
    // Dead-step elimination: weight DequantizeLinear nodes behind fused steps, unused branches.
    for o in g.outputs.clone() {
        g.t_mut(o)?.needed = true;
    }
    let mut keep = [false; N];
    for (si, s) in steps.iter().enumerate().rev() {
        if g.t(s.out).needed {
            keep[si] = true;
            for &i in s.inputs() {
                g.t_mut(i)?.needed = true;
            }
        }
    }
    // Compact in place (a second step table would double the stack on small MCUs).
    let mut si = 0;
    steps.retain(|_| {
        si += 1;
        keep[si - 1]
    });
    // A family this build left out refuses the plan here, before anything runs.
    for (used, (name, built)) in families_used(g, steps).iter().zip(OP_FAMILIES) {
        if *used && !built {
            return Err(Error::FamilyNotBuilt { feature: name });
        }
    }
    if opts.half_arithmetic {
        plan_half(g, steps)?;
    }
    // Steps with nothing to read (spectral windows, mel matrices) are constants: computed once
    // into the persistent area when the interpreter is made, not on every invoke.
    #[cfg(feature = "signal-ops")]
    let mut si = 0;
    #[cfg(feature = "signal-ops")]
    while si < steps.len() {
        let s = steps[si];
        let fill = match s.op {
            _ if s.round_f16 || opts.recompute_constants => None,
            Op::WindowFn {
                kind,
                size,
                periodic,
            } => Some(Fill::Window {
                at: persist,
                kind,
                size,
                periodic,
            }),
            Op::MelWeights(m) => Some(Fill::Mel { at: persist, m }),
            _ => None,
        };
        match fill {
            Some(f) => {
                persist = place_persistent(g, fills, persist, s.out, f)?;
                g.hoisted_signal = true;
                steps.remove(si);
            }
            None => si += 1,
        }
    }
    // Constant inputs: int8 weights of fused ops stay in the model bytes; everything else is
    // copied (aligned, converted) into the persistent area once.
    for s in steps.iter_mut() {
        for pos in 0..s.n_in as usize {
            let i = s.ins[pos];
            let t = *g.t(i);
            if cfg!(feature = "shape-ops") && t.konst.is_none() && g.folded(i).is_some() {
                persist = place_folded(g, fills, persist, i)?;
                continue;
            }
            let Some(kv) = t.konst else { continue };
            if t.loc != Loc::None {
                continue;
            }
            let at = persist;
            let fill = match (&mut s.op, pos, kv.raw()) {
                (Op::QConv(_), 1, Some(raw)) => {
                    g.t_mut(i)?.loc = Loc::Model(raw);
                    continue;
                }
                // Half weights: stored as f16 (the step's tensor type), each output channel's
                // (or column's) weights contiguous per k for the vector kernels.
                #[cfg(feature = "float-ops")]
                (Op::ConvF16(_) | Op::GemmF16 { .. }, 1, _) => {
                    let (rows, cols) = match s.op {
                        Op::ConvF16(w) => {
                            (w.oc / w.group.max(1), w.c / w.group.max(1) * w.kh * w.kw)
                        }
                        Op::GemmF16 {
                            k,
                            n,
                            trans_b: true,
                            ..
                        } => (n, k),
                        // Already [k][n]: a transpose of 1 × (k·n) blocks is a copy.
                        _ => (1, t.shape.numel()),
                    };
                    Fill::ConstTransposed {
                        id: i,
                        at,
                        rows,
                        cols,
                    }
                }
                // Recurrent weights the plan keeps transposed (see `RnnSpec::w_pre`).
                #[cfg(feature = "recurrent")]
                (Op::Rnn(r), 1 | 2, _) if (pos == 1 && r.w_pre) || (pos == 2 && r.r_pre) => {
                    Fill::ConstTransposed {
                        id: i,
                        at,
                        rows: r.cell.gates() * r.hidden,
                        cols: if pos == 1 { r.input } else { r.hidden },
                    }
                }
                #[cfg(feature = "float-ops")]
                (
                    Op::Gemm {
                        trans_a: false,
                        trans_b: tb @ true,
                        k,
                        n,
                        ..
                    },
                    1,
                    _,
                ) if t.dtype == DType::F32 && g.t(i).uses == 1 => {
                    *tb = false;
                    Fill::ConstTransposed {
                        id: i,
                        at,
                        rows: *n,
                        cols: *k,
                    }
                }
                _ => Fill::Const { id: i, at },
            };
            persist = place_persistent(g, fills, persist, i, fill)?;
        }
    }
    // Folded values the caller reads as outputs.
    for o in g.outputs.clone() {
        if cfg!(feature = "shape-ops") && g.folded(o).is_some() {
            persist = place_folded(g, fills, persist, o)?;
        }
    }
    // Lifetimes in step indices.
    for i in g.inputs.clone() {
        g.t_mut(i)?.first = 0;
    }
    for (si, s) in steps.iter().enumerate() {
        let si = si as u16;
        for &i in s.inputs() {
            let t = g.t_mut(i)?;
            if t.konst.is_none() {
                t.last = t.last.max(si);
            }
        }
        let o = g.t_mut(s.out)?;
        o.first = o.first.min(si);
        o.last = o.last.max(si);
    }
    let end = steps.len() as u16;
    for o in g.outputs.clone() {
        g.t_mut(o)?.last = end;
    }
    let mut planner = GreedyPlanner::<T>::default();
    let mut ids: heapless::Vec<(u16, usize), T> = heapless::Vec::new();
    for (id, t) in g.tensors.iter().enumerate() {
        if t.konst.is_none() && t.first != u16::MAX && (t.needed || t.is_input) {
            let b = planner.add_buffer(t.bytes(), t.first, t.last)?;
            let _ = ids.push((id as u16, b));
        }
    }
    let mut scratch_ids: heapless::Vec<(usize, usize), N> = heapless::Vec::new();
    for (si, s) in steps.iter().enumerate() {
        if s.scratch > 0 {
            let b = planner.add_buffer(s.scratch, si as u16, si as u16)?;
            let _ = scratch_ids.push((si, b));
        }
    }
    let work = planner.plan()?;
    let lower_bound = planner.lower_bound();
    for &(id, b) in &ids {
        g.t_mut(id)?.loc = Loc::Work(planner.offset(b));
    }
    for &(si, b) in &scratch_ids {
        if let Some(s) = steps.get_mut(si) {
            s.scratch_at = planner.offset(b);
        }
    }
    let persist = (persist + ALIGN - 1) & !(ALIGN - 1);
    Ok(Sizes {
        persist,
        work,
        lower_bound,
    })
}

/// Gives folded tensor `id` persistent bytes (once), filled with its value in
/// `Interpreter::new`; returns the new end of the persistent area.
fn place_folded<const T: usize, const N: usize>(
    g: &mut Graph<'_, T, N>,
    fills: &mut heapless::Vec<Fill, N>,
    persist: usize,
    id: u16,
) -> Result<usize> {
    if g.t(id).loc != Loc::None {
        return Ok(persist);
    }
    place_persistent(g, fills, persist, id, Fill::Folded { id, at: persist })
}

/// Stores tensor `id` at `persist` (the end of the persistent area so far), written by `fill`
/// in `Interpreter::new`; returns the new end, `ALIGN`ed.
fn place_persistent<const T: usize, const N: usize>(
    g: &mut Graph<'_, T, N>,
    fills: &mut heapless::Vec<Fill, N>,
    persist: usize,
    id: u16,
    fill: Fill,
) -> Result<usize> {
    let overflow = || Error::InvalidModel {
        reason: "constant sizes overflow",
    };
    let size = g
        .t(id)
        .bytes()
        .checked_add(ALIGN - 1)
        .ok_or_else(overflow)?
        & !(ALIGN - 1);
    fills.push(fill).map_err(|_| Error::CapacityExceeded {
        what: "prepared constants",
        capacity: N,
    })?;
    g.t_mut(id)?.loc = Loc::Persist(persist);
    persist.checked_add(size).ok_or_else(overflow)
}

impl<'m> Model<'m> {
    /// Plans the model without an arena and reports the bytes it needs.
    pub fn arena_report<const T: usize, const N: usize>(&self) -> Result<ArenaReport> {
        self.arena_report_with::<T, N>(PlanOptions::default())
    }

    /// [`Model::arena_report`] for a plan made with `opts`.
    pub fn arena_report_with<const T: usize, const N: usize>(
        &self,
        opts: PlanOptions,
    ) -> Result<ArenaReport> {
        let mut g = Graph::<T, N>::empty();
        let mut steps = heapless::Vec::new();
        let mut fills = heapless::Vec::new();
        let sizes = plan_into(self, &mut g, &mut steps, &mut fills, opts)?;
        Ok(sizes.report(steps.len()))
    }

    /// Arena bytes [`Interpreter::new`] needs for this model (default capacities).
    pub fn arena_bytes(&self) -> Result<usize> {
        self.arena_bytes_with(PlanOptions::default())
    }

    /// Arena bytes [`InterpreterWith::new_with`] needs with `opts` (default capacities).
    pub fn arena_bytes_with(&self, opts: PlanOptions) -> Result<usize> {
        Ok(self.arena_report_with::<512, 256>(opts)?.total)
    }
}

/// A read-only view of an input or output tensor.
#[derive(Debug, Clone, Copy)]
pub struct TensorRef<'x> {
    /// Tensor name.
    pub name: &'x str,
    /// Element type.
    pub dtype: DType,
    /// Shape.
    pub shape: Shape,
    /// Little-endian element bytes.
    pub data: &'x [u8],
}

impl<'x> TensorRef<'x> {
    /// The elements as f32 when the tensor is float32.
    pub fn as_f32(&self) -> Option<&'x [f32]> {
        if self.dtype == DType::F32 {
            bytemuck::try_cast_slice(self.data).ok()
        } else {
            None
        }
    }
}

/// Called around each step by [`InterpreterWith::invoke_with`] (profiling).
pub trait StepObserver {
    /// Whether `before` and `after` are called at all. The node name is parsed out of the model
    /// for each call, which in a small model costs as much as the kernels, so a plain
    /// [`InterpreterWith::invoke`] (the `()` observer) skips it.
    const OBSERVES: bool = true;
    /// Before step `index` (op type and node name from the model).
    fn before(&mut self, index: usize, op_type: &str, node: &str);
    /// After step `index`.
    fn after(&mut self, index: usize);
}

impl StepObserver for () {
    const OBSERVES: bool = false;
    fn before(&mut self, _: usize, _: &str, _: &str) {}
    fn after(&mut self, _: usize) {}
}

/// Runs a planned model in a caller-given arena; `T` tensors and `N` nodes at most (fixed
/// tables, so no heap is needed).
pub struct InterpreterWith<'m, 'a, const T: usize, const N: usize> {
    pub(crate) g: Graph<'m, T, N>,
    pub(crate) steps: heapless::Vec<Step, N>,
    pub(crate) persist: &'a mut [u8],
    pub(crate) work: &'a mut [u8],
    pub(crate) report: ArenaReport,
}

fn bytes_of<'p>(loc: Loc<'_>, len: usize, persist: &'p [u8]) -> Result<&'p [u8]> {
    match loc {
        Loc::Persist(at) => persist.get(at..at + len).ok_or(Error::BadIo {
            what: "constant outside the arena",
        }),
        _ => Err(Error::BadIo {
            what: "tensor has no storage",
        }),
    }
}

impl<'m, 'a, const T: usize, const N: usize> InterpreterWith<'m, 'a, T, N> {
    /// Plans `model` into `arena`: shape inference, fusion, constants, tensor offsets. All the
    /// work that does not depend on input values happens here, once.
    #[inline(never)] // keeps this large frame off the caller's stack on MCUs
    pub fn new(model: &Model<'m>, arena: &'a mut [u8]) -> Result<Self> {
        Self::new_with(model, arena, PlanOptions::default())
    }

    /// [`InterpreterWith::new`] with plan options (e.g. half-precision arithmetic).
    #[inline(never)]
    pub fn new_with(model: &Model<'m>, arena: &'a mut [u8], opts: PlanOptions) -> Result<Self> {
        let mut me = InterpreterWith {
            g: Graph::empty(),
            steps: heapless::Vec::new(),
            persist: &mut [],
            work: &mut [],
            report: Sizes::default().report(0),
        };
        me.plan(model, arena, opts)?;
        Ok(me)
    }

    /// [`InterpreterWith::new`] with the interpreter's tables built directly in `slot` — a
    /// `static` on a microcontroller — instead of on the stack and moved: its tensor and node
    /// tables grow with the model (tens of KB for a hundred nodes), and the linker then counts
    /// them in RAM like the arena, so a model that does not fit fails to link instead of
    /// overflowing the stack at run time.
    #[inline(never)]
    pub fn new_in<'s>(
        slot: &'s mut MaybeUninit<Self>,
        model: &Model<'m>,
        arena: &'a mut [u8],
    ) -> Result<&'s mut Self> {
        let me = Self::empty_in(slot);
        me.plan(model, arena, PlanOptions::default())?;
        Ok(me)
    }

    /// An interpreter with empty tables built in `slot` (for [`InterpreterWith::new_in`] and
    /// [`InterpreterWith::new_frozen_in`]), without a large temporary on the stack.
    #[allow(unsafe_code)] // field-wise initialisation of a MaybeUninit (see SAFETY below)
    pub(crate) fn empty_in(slot: &mut MaybeUninit<Self>) -> &mut Self {
        let p = slot.as_mut_ptr();
        // SAFETY: every field is written before the reference is made; the heapless tables
        // only set their lengths, their buffers stay uninitialised (no large temporary).
        unsafe {
            addr_of_mut!((*p).g.tensors).write(heapless::Vec::new());
            addr_of_mut!((*p).g.nodes).write(heapless::Vec::new());
            addr_of_mut!((*p).g.inputs).write(heapless::Vec::new());
            addr_of_mut!((*p).g.outputs).write(heapless::Vec::new());
            addr_of_mut!((*p).g.opset).write(0);
            addr_of_mut!((*p).g.folded).write(heapless::Vec::new());
            addr_of_mut!((*p).g.hoisted_signal).write(false);
            addr_of_mut!((*p).steps).write(heapless::Vec::new());
            addr_of_mut!((*p).persist).write(&mut []);
            addr_of_mut!((*p).work).write(&mut []);
            addr_of_mut!((*p).report).write(Sizes::default().report(0));
            slot.assume_init_mut()
        }
    }

    /// Fills the (empty) tables from `model` and lays the arena out.
    #[inline(never)]
    fn plan(&mut self, model: &Model<'m>, arena: &'a mut [u8], opts: PlanOptions) -> Result<()> {
        let mut fills = heapless::Vec::new();
        let sizes = plan_into(model, &mut self.g, &mut self.steps, &mut fills, opts)?;
        let (persist, work) = sizes.split(arena)?;
        for f in fills.iter() {
            fill(&self.g, f, persist)?;
        }
        self.persist = persist;
        self.work = work;
        self.report = sizes.report(self.steps.len());
        Ok(())
    }

    /// Sizes of the plan.
    pub fn arena_report(&self) -> ArenaReport {
        self.report
    }

    /// Number of graph inputs the caller must fill.
    pub fn input_count(&self) -> usize {
        self.g.inputs.len()
    }

    /// Number of graph outputs.
    pub fn output_count(&self) -> usize {
        self.g.outputs.len()
    }

    /// Number of steps after fusion.
    pub fn step_count(&self) -> usize {
        self.steps.len()
    }

    /// The op type of step `i` (a fused step reports its main op, e.g. `QLinearConv`).
    pub fn step_op(&self, i: usize) -> &'static str {
        match self.steps.get(i).map(|s| s.op) {
            Some(Op::QConv(_)) => "QLinearConv",
            Some(Op::QAdd(_)) => "QLinearAdd",
            Some(Op::QMul(_)) => "QLinearMul",
            Some(op) => crate::ops::op_name(&op),
            None => "",
        }
    }

    /// The op-family features of sprig-runtime this plan uses ([`OP_FAMILIES`] order:
    /// `float-ops`, `layout-ops`, `int8-residual`, `int8-concat`, `int8-avgpool`, `recurrent`,
    /// `integer-ops`, `uint8`, `int8-lut`, `shape-ops`, `logic-ops`, `extra-ops`, `signal-ops`). A firmware built with just
    /// these runs the model with
    /// the same outputs and leaves every other family's code out of flash — int8 convolutions
    /// and dense layers, Quantize/Dequantize, MaxPool, Concat and reshapes are always built. An
    /// int8 QDQ model whose layers all fuse needs no `float-ops`.
    pub fn op_features(&self) -> heapless::Vec<&'static str, 13> {
        families_used(&self.g, &self.steps)
            .iter()
            .zip(OP_FAMILIES)
            .filter(|(used, _)| **used)
            .map(|(_, (name, _))| name)
            .collect()
    }

    /// Name, type and shape of input `i`.
    pub fn input_info(&self, i: usize) -> Result<(&'m str, DType, Shape)> {
        let id = *self.g.inputs.get(i).ok_or(Error::BadIo {
            what: "input index out of range",
        })?;
        let t = self.g.t(id);
        Ok((t.name, t.dtype, t.shape))
    }

    /// Mutable bytes of input `i`, to fill before [`InterpreterWith::invoke`]. Fill it before
    /// every invoke: the plan reuses an input's arena bytes once its last reader has run.
    pub fn input_mut(&mut self, i: usize) -> Result<&mut [u8]> {
        let id = *self.g.inputs.get(i).ok_or(Error::BadIo {
            what: "input index out of range",
        })?;
        let t = *self.g.t(id);
        match t.loc {
            Loc::Work(at) => self.work.get_mut(at..at + t.bytes()).ok_or(Error::BadIo {
                what: "input outside the arena",
            }),
            _ => Err(Error::BadIo {
                what: "input is not used by the graph",
            }),
        }
    }

    /// Copies raw little-endian bytes into input `i` (length must match exactly).
    pub fn set_input(&mut self, i: usize, bytes: &[u8]) -> Result<()> {
        let dst = self.input_mut(i)?;
        if dst.len() != bytes.len() {
            return Err(Error::BadIo {
                what: "input byte length differs from the input's shape",
            });
        }
        dst.copy_from_slice(bytes);
        Ok(())
    }

    /// Copies f32 values into float input `i`.
    pub fn set_input_f32(&mut self, i: usize, values: &[f32]) -> Result<()> {
        self.set_input(i, bytemuck::cast_slice(values))
    }

    /// Output `i` after [`InterpreterWith::invoke`].
    pub fn output(&self, i: usize) -> Result<TensorRef<'_>> {
        let id = *self.g.outputs.get(i).ok_or(Error::BadIo {
            what: "output index out of range",
        })?;
        let t = self.g.t(id);
        let data = match t.loc {
            Loc::Work(at) => self.work.get(at..at + t.bytes()).ok_or(Error::BadIo {
                what: "output outside the arena",
            })?,
            // A value the plan computed ahead of time (an exported shape vector).
            Loc::Persist(at) => self.persist.get(at..at + t.bytes()).ok_or(Error::BadIo {
                what: "output outside the arena",
            })?,
            _ => {
                return Err(Error::BadIo {
                    what: "output has no storage",
                })
            }
        };
        Ok(TensorRef {
            name: t.name,
            dtype: t.dtype,
            shape: t.shape,
            data,
        })
    }

    /// Runs every step once.
    pub fn invoke(&mut self) -> Result<()> {
        self.invoke_with(&mut ())
    }

    /// Runs every step, calling `obs` around each (for per-op timing).
    pub fn invoke_with<O: StepObserver>(&mut self, obs: &mut O) -> Result<()> {
        for si in 0..self.steps.len() {
            let s = self.steps[si];
            if O::OBSERVES {
                // A frozen plan keeps no node table: its steps have no node names.
                let name = self.g.node(s.node).map_or("", |n| n.name);
                obs.before(si, self.step_op(si), name);
            }
            self.run_step(&s)?;
            if O::OBSERVES {
                obs.after(si);
            }
        }
        Ok(())
    }

    fn run_step(&mut self, s: &Step) -> Result<()> {
        let out = self.g.t(s.out);
        let Loc::Work(o_at) = out.loc else {
            return Err(Error::BadIo {
                what: "step output has no storage",
            });
        };
        let out_r = o_at..o_at + out.bytes();
        let scratch_r = s.scratch_at..s.scratch_at + s.scratch;
        let (y, scratch, segs) = carve(self.work, out_r, scratch_r)?;
        let persist: &[u8] = self.persist;
        let mut ins: [&[u8]; MAX_STEP_INPUTS] = [&[]; MAX_STEP_INPUTS];
        for (slot, &id) in ins.iter_mut().zip(s.inputs()) {
            let t = self.g.t(id);
            let len = t.bytes();
            *slot = match t.loc {
                Loc::Model(b) => b,
                Loc::Persist(_) => bytes_of(t.loc, len, persist)?,
                Loc::Work(at) => segs
                    .iter()
                    .find(|(base, seg)| at >= *base && at + len <= base + seg.len())
                    .map(|(base, seg)| &seg[at - base..at - base + len])
                    .ok_or(Error::BadIo {
                        what: "input overlaps the output or scratch",
                    })?,
                Loc::None => {
                    return Err(Error::BadIo {
                        what: "input has no storage",
                    })
                }
            };
        }
        let n_in = s.n_in as usize;
        eval(&s.op, &ins[..n_in], &self.g, s, persist, y, scratch)?;
        #[cfg(feature = "float-ops")]
        if s.round_f16 {
            crate::half_ops::round_all(f32s_mut(y)?);
        }
        Ok(())
    }
}

/// Splits the working arena into the mutable output, the mutable scratch (may be empty) and the
/// read-only rest (three segments with their base offsets), so inputs can be borrowed while the
/// kernel writes — without unsafe code. The planner guarantees output and scratch are disjoint.
#[allow(clippy::type_complexity)]
fn carve(
    work: &mut [u8],
    out: core::ops::Range<usize>,
    scratch: core::ops::Range<usize>,
) -> Result<(&mut [u8], &mut [u8], [(usize, &[u8]); 3])> {
    let bad = Error::BadIo {
        what: "step buffers outside the arena or overlapping",
    };
    if out.end > work.len()
        || scratch.end > work.len()
        || (!scratch.is_empty() && out.start < scratch.end && scratch.start < out.end)
    {
        return Err(bad);
    }
    if scratch.is_empty() {
        let (lo, rest) = work.split_at_mut(out.start);
        let (y, hi) = rest.split_at_mut(out.len());
        return Ok((y, &mut [], [(0, lo), (out.end, hi), (usize::MAX, &[])]));
    }
    let (first, second, swapped) = if out.start <= scratch.start {
        (out, scratch, false)
    } else {
        (scratch, out, true)
    };
    let (lo, rest) = work.split_at_mut(first.start);
    let (a, rest) = rest.split_at_mut(first.len());
    let (mid, rest) = rest.split_at_mut(second.start - first.end);
    let (b, hi) = rest.split_at_mut(second.len());
    let segs = [(0, &*lo), (first.end, &*mid), (second.end, &*hi)];
    Ok(if swapped { (b, a, segs) } else { (a, b, segs) })
}

/// The per-tensor scale and zero point of a Quantize/Dequantize step that reads them from its
/// inputs (`zp` absent: 0); `zdt` is the zero point's element type.
#[cfg(feature = "integer-ops")]
fn run_time_qparams<'a>(
    scale: &'a [u8],
    zp: Option<&[u8]>,
    zdt: DType,
) -> Result<(&'a [f32], [i32; 1])> {
    let bad = Error::BadIo {
        what: "run-time scale or zero point is not one value",
    };
    let z = match (zp, zdt) {
        (None, _) => 0,
        (Some(&[b]), DType::U8) => i32::from(b),
        (Some(&[b]), DType::I8) => i32::from(b as i8),
        (Some(&[a, b, c, d]), DType::I32) => i32::from_le_bytes([a, b, c, d]),
        _ => return Err(bad),
    };
    let sc = f32s(scale)?;
    if sc.len() != 1 {
        return Err(bad);
    }
    Ok((sc, [z]))
}

fn f32s(b: &[u8]) -> Result<&[f32]> {
    bytemuck::try_cast_slice(b).map_err(|_| Error::BadIo {
        what: "misaligned float buffer",
    })
}

fn f32s_mut(b: &mut [u8]) -> Result<&mut [f32]> {
    bytemuck::try_cast_slice_mut(b).map_err(|_| Error::BadIo {
        what: "misaligned float buffer",
    })
}

#[cfg(feature = "float-ops")]
fn f16s(b: &[u8]) -> Result<&[u16]> {
    bytemuck::try_cast_slice(b).map_err(|_| Error::BadIo {
        what: "misaligned float16 buffer",
    })
}

/// Integer buffers viewed as their element type (arena offsets keep them aligned).
fn typed<E: bytemuck::Pod>(b: &[u8]) -> Result<&[E]> {
    bytemuck::try_cast_slice(b).map_err(|_| Error::BadIo {
        what: "misaligned integer buffer",
    })
}

fn typed_mut<E: bytemuck::Pod>(b: &mut [u8]) -> Result<&mut [E]> {
    bytemuck::try_cast_slice_mut(b).map_err(|_| Error::BadIo {
        what: "misaligned integer buffer",
    })
}

fn i32s(b: &[u8]) -> Result<&[i32]> {
    bytemuck::try_cast_slice(b).map_err(|_| Error::BadIo {
        what: "misaligned int buffer",
    })
}

fn persist_slice(persist: &[u8], at: usize, len: usize) -> Result<&[u8]> {
    persist.get(at..at + len).ok_or(Error::BadIo {
        what: "constant outside the arena",
    })
}

/// A float32 step in a build without the float kernels (plans refuse these first).
#[cfg(not(feature = "float-ops"))]
fn no_float_ops() -> Error {
    Error::FamilyNotBuilt {
        feature: "float-ops",
    }
}

/// Refuses a step whose op family this build left out (`feature` off): the check is a
/// compile-time constant, so the family's kernels drop out of the binary with it.
#[inline(always)]
fn built(on: bool, feature: &'static str) -> Result<()> {
    if on {
        Ok(())
    } else {
        Err(Error::FamilyNotBuilt { feature })
    }
}

#[inline(never)] // one body per interpreter, measurable on its own in a firmware image
fn eval<const T: usize, const N: usize>(
    op: &Op,
    ins: &[&[u8]],
    g: &Graph<'_, T, N>,
    s: &Step,
    persist: &[u8],
    y: &mut [u8],
    scratch: &mut [u8],
) -> Result<()> {
    let get = |i: usize| {
        ins.get(i).copied().ok_or(Error::BadIo {
            what: "missing step input",
        })
    };
    match *op {
        Op::Copy => {
            let x = get(0)?;
            if x.len() != y.len() {
                return Err(Error::BadIo {
                    what: "reshape size differs",
                });
            }
            y.copy_from_slice(x);
            Ok(())
        }
        #[cfg(feature = "float-ops")]
        Op::Unary(u) => k::unary(u, f32s(get(0)?)?, f32s_mut(y)?),
        #[cfg(feature = "float-ops")]
        Op::Binary(b, bc) => k::binary(b, &bc, f32s(get(0)?)?, f32s(get(1)?)?, f32s_mut(y)?),
        #[cfg(feature = "float-ops")]
        Op::Conv(w) => {
            let b = if ins.len() > 2 {
                Some(f32s(get(2)?)?)
            } else {
                None
            };
            if s.scratch > 0 {
                k::conv_f32_rows(&w, f32s(get(0)?)?, f32s(get(1)?)?, b, f32s_mut(y)?, scratch)
            } else {
                k::conv_f32(&w, f32s(get(0)?)?, f32s(get(1)?)?, b, f32s_mut(y)?)
            }
        }
        #[cfg(feature = "float-ops")]
        Op::ConvTranspose(w) => {
            let b = if ins.len() > 2 {
                Some(f32s(get(2)?)?)
            } else {
                None
            };
            k::conv_transpose_f32(&w, f32s(get(0)?)?, f32s(get(1)?)?, b, f32s_mut(y)?)
        }
        #[cfg(feature = "float-ops")]
        Op::ConvF16(w) => {
            let b = if ins.len() > 2 {
                Some(f16s(get(2)?)?)
            } else {
                None
            };
            crate::half_ops::conv(&w, f32s(get(0)?)?, f16s(get(1)?)?, b, f32s_mut(y)?, scratch)
        }
        #[cfg(feature = "float-ops")]
        Op::GemmF16 { m, k: kk, n, .. } => {
            let c = if ins.len() > 2 {
                Some(f16s(get(2)?)?)
            } else {
                None
            };
            crate::half_ops::gemm(m, kk, n, f32s(get(0)?)?, f16s(get(1)?)?, c, f32s_mut(y)?)
        }
        #[cfg(feature = "float-ops")]
        Op::Gemm {
            m,
            k: kk,
            n,
            trans_a,
            trans_b,
            alpha,
            beta,
            c,
        } => {
            let cv = match c {
                Some(bc) => Some((bc, f32s(get(2)?)?)),
                None => None,
            };
            let cv = cv.as_ref().map(|(b, v)| (b, *v));
            if !trans_a && !trans_b {
                k::gemm_f32_rows(
                    m,
                    kk,
                    n,
                    alpha,
                    beta,
                    cv,
                    f32s(get(0)?)?,
                    f32s(get(1)?)?,
                    f32s_mut(y)?,
                )
            } else {
                k::gemm_f32(
                    m,
                    kk,
                    n,
                    trans_a,
                    trans_b,
                    alpha,
                    beta,
                    cv,
                    f32s(get(0)?)?,
                    f32s(get(1)?)?,
                    f32s_mut(y)?,
                )
            }
        }
        #[cfg(feature = "float-ops")]
        Op::MatMul {
            batch,
            m,
            k: kk,
            n,
            a_batch_stride,
            b_batch_stride,
        } => k::matmul_f32(
            batch,
            m,
            kk,
            n,
            a_batch_stride,
            b_batch_stride,
            f32s(get(0)?)?,
            f32s(get(1)?)?,
            f32s_mut(y)?,
        ),
        Op::MaxPool(w) => match g.t(s.out).dtype {
            DType::I8 => k::maxpool::<i8>(
                &w,
                i8::MIN,
                bytemuck::cast_slice(get(0)?),
                bytemuck::cast_slice_mut(y),
            ),
            DType::U8 => {
                built(cfg!(feature = "uint8"), "uint8")?;
                k::maxpool::<u8>(&w, 0, get(0)?, y)
            }
            #[cfg(feature = "float-ops")]
            _ => k::maxpool::<f32>(&w, f32::NEG_INFINITY, f32s(get(0)?)?, f32s_mut(y)?),
            #[cfg(not(feature = "float-ops"))]
            _ => Err(no_float_ops()),
        },
        #[cfg(not(feature = "float-ops"))]
        Op::Unary(_)
        | Op::Binary(..)
        | Op::Conv(_)
        | Op::ConvF16(_)
        | Op::ConvTranspose(_)
        | Op::Gemm { .. }
        | Op::GemmF16 { .. }
        | Op::MatMul { .. }
        | Op::AveragePool { .. }
        | Op::GlobalAveragePool { .. }
        | Op::Softmax { .. }
        | Op::ArgExtreme { .. }
        | Op::Reduce { .. }
        | Op::Norm(_)
        | Op::TopK(_)
        | Op::Convert { .. }
        | Op::Variadic(_)
        | Op::Hardmax { .. }
        | Op::ClipInputs { .. }
        | Op::BatchNorm { .. } => Err(no_float_ops()),
        #[cfg(feature = "float-ops")]
        Op::Hardmax { outer, len, inner } => {
            k::hardmax(outer, len, inner, f32s(get(0)?)?, f32s_mut(y)?)
        }
        #[cfg(feature = "float-ops")]
        Op::Variadic(k) => {
            let out = g.t(s.out).shape;
            let y = f32s_mut(y)?;
            for (i, x) in ins.iter().enumerate() {
                let shape = g.t(s.ins[i]).shape;
                k::variadic_step(k, i == 0, &out, &shape, f32s(x)?, y)?;
            }
            if k == crate::ops::Binary::Mean {
                k::mean_finish(ins.len(), y);
            }
            Ok(())
        }
        #[cfg(feature = "float-ops")]
        Op::Convert { from, to } => k::convert(from, to, get(0)?, y),
        #[cfg(feature = "float-ops")]
        Op::TopK(t) => crate::topk::top_k(&t, f32s(get(0)?)?, y),
        #[cfg(feature = "float-ops")]
        Op::Norm(n) => {
            let (scale, bias) = match (n.output, ins.len()) {
                (crate::norm::NormOutput::Y, 3) => (f32s(get(1)?)?, f32s(get(2)?)?),
                (crate::norm::NormOutput::Y, _) => (f32s(get(1)?)?, &[][..]),
                _ => (&[][..], &[][..]),
            };
            crate::norm::normalize(&n, f32s(get(0)?)?, scale, bias, f32s_mut(y)?)
        }
        #[cfg(feature = "float-ops")]
        Op::AveragePool {
            win,
            count_include_pad,
        } => k::avgpool(&win, count_include_pad, f32s(get(0)?)?, f32s_mut(y)?),
        #[cfg(feature = "float-ops")]
        Op::GlobalAveragePool { nc, hw } => k::global_avg(nc, hw, f32s(get(0)?)?, f32s_mut(y)?),
        #[cfg(feature = "float-ops")]
        Op::Softmax {
            outer,
            len,
            inner,
            log,
        } => k::softmax(outer, len, inner, log, f32s(get(0)?)?, f32s_mut(y)?),
        #[cfg(feature = "float-ops")]
        Op::ArgExtreme {
            outer,
            len,
            inner,
            max,
            last,
        } => k::arg_extreme(outer, len, inner, max, last, f32s(get(0)?)?, y),
        #[cfg(feature = "float-ops")]
        Op::Reduce {
            kind,
            in_shape,
            axes,
        } => k::reduce(kind, &in_shape, axes, f32s(get(0)?)?, f32s_mut(y)?),
        #[cfg(feature = "float-ops")]
        Op::BatchNorm { c, inner, n, eps } => k::batchnorm(
            n,
            c,
            inner,
            eps,
            f32s(get(0)?)?,
            f32s(get(1)?)?,
            f32s(get(2)?)?,
            f32s(get(3)?)?,
            f32s(get(4)?)?,
            f32s_mut(y)?,
        ),
        Op::Concat { outer, inner } => {
            let esize = g.t(s.out).dtype.size();
            let mut off = 0usize;
            for o in 0..outer {
                for x in ins.iter() {
                    let axis_len = x.len() / (outer * inner * esize).max(1);
                    let chunk = axis_len * inner * esize;
                    let src = x.get(o * chunk..(o + 1) * chunk).ok_or(Error::BadIo {
                        what: "concat input size",
                    })?;
                    let dst = y.get_mut(off..off + chunk).ok_or(Error::BadIo {
                        what: "concat output size",
                    })?;
                    dst.copy_from_slice(src);
                    off += chunk;
                }
            }
            Ok(())
        }
        Op::Slice {
            in_shape,
            starts,
            steps,
        } => {
            built(cfg!(feature = "layout-ops"), "layout-ops")?;
            k::slice(
                g.t(s.out).dtype.size(),
                &in_shape,
                &starts,
                &steps,
                &g.t(s.out).shape,
                get(0)?,
                y,
            )
        }
        Op::Gather {
            outer,
            axis_len,
            inner,
            indices,
            wide,
        } => {
            built(cfg!(feature = "layout-ops"), "layout-ops")?;
            k::gather(
                g.t(s.out).dtype.size(),
                k::GatherDims {
                    outer,
                    axis_len,
                    inner,
                    indices,
                },
                get(1)?,
                wide,
                get(0)?,
                y,
            )
        }
        Op::GatherElements { data, axis, wide } => {
            built(cfg!(feature = "layout-ops"), "layout-ops")?;
            let out = g.t(s.out);
            k::gather_elements(
                out.dtype.size(),
                &data,
                axis as usize,
                &out.shape,
                get(1)?,
                wide,
                get(0)?,
                y,
            )
        }
        Op::ScatterElements {
            indices,
            axis,
            wide,
            reduction,
        } => {
            built(cfg!(feature = "layout-ops"), "layout-ops")?;
            let out = g.t(s.out);
            k::scatter_elements(
                &k::ScatterDims {
                    esize: out.dtype.size(),
                    data: out.shape,
                    indices,
                    axis: axis as usize,
                    wide,
                    reduction,
                },
                get(0)?,
                get(1)?,
                get(2)?,
                y,
            )
        }
        Op::GatherNd {
            data,
            k,
            batch_dims,
        } => {
            built(cfg!(feature = "extra-ops"), "extra-ops")?;
            let es = g.t(s.out).dtype.size();
            let (k, b) = (k as usize, batch_dims as usize);
            crate::index_nd::gather_nd(es, &data, k, b, get(1)?, get(0)?, y)
        }
        Op::ScatterNd { k, reduction } => {
            built(cfg!(feature = "extra-ops"), "extra-ops")?;
            let out = g.t(s.out);
            crate::index_nd::scatter_nd(
                out.dtype.size(),
                &out.shape,
                k as usize,
                reduction,
                get(0)?,
                get(1)?,
                get(2)?,
                y,
            )
        }
        Op::ReverseSequence {
            batch,
            time,
            inner,
            time_major,
        } => {
            built(cfg!(feature = "extra-ops"), "extra-ops")?;
            let es = g.t(s.out).dtype.size();
            let dims = (batch, time, inner);
            crate::sequence::reverse_sequence(es, dims, time_major, get(0)?, get(1)?, y)
        }
        Op::OneHot {
            outer,
            depth,
            inner,
            indices,
        } => {
            built(cfg!(feature = "extra-ops"), "extra-ops")?;
            let es = g.t(s.out).dtype.size();
            let dims = (outer, depth, inner);
            crate::one_hot::one_hot(es, dims, indices, get(0)?, get(1)?, y)
        }
        Op::EyeLike { rows, cols, k } => {
            built(cfg!(feature = "extra-ops"), "extra-ops")?;
            let one: &[u8] = match g.t(s.out).dtype {
                DType::F32 => &[0, 0, 0x80, 0x3f],
                DType::I64 => &[1, 0, 0, 0, 0, 0, 0, 0],
                DType::I32 => &[1, 0, 0, 0],
                _ => &[1],
            };
            crate::one_hot::eye_like(rows, cols, k, one, y)
        }
        Op::Loss(l) => {
            built(cfg!(feature = "extra-ops"), "extra-ops")?;
            let w = if l.weighted {
                Some(f32s(get(2)?)?)
            } else {
                None
            };
            crate::loss::loss(&l, f32s(get(0)?)?, get(1)?, w, f32s_mut(y)?)
        }
        Op::Dft(_) | Op::Stft(_) | Op::WindowFn { .. } | Op::MelWeights(_) => {
            built(cfg!(feature = "signal-ops"), "signal-ops")?;
            crate::signal::eval(op, ins, y, scratch)
        }
        Op::GridSample(gs) => {
            built(cfg!(feature = "extra-ops"), "extra-ops")?;
            crate::grid_sample::grid_sample(&gs, f32s(get(0)?)?, f32s(get(1)?)?, f32s_mut(y)?)
        }
        Op::Einsum(e) => {
            built(cfg!(feature = "extra-ops"), "extra-ops")?;
            let n = (e.operands as usize).min(2);
            let mut shapes = [crate::tensor::Shape::SCALAR; 2];
            let mut xs: [&[f32]; 2] = [&[], &[]];
            for i in 0..n {
                shapes[i] = g.t(s.ins[i]).shape;
                xs[i] = f32s(get(i)?)?;
            }
            crate::einsum::einsum(&e, &shapes[..n], &xs[..n], f32s_mut(y)?)
        }
        Op::Lrn(l) => {
            built(cfg!(feature = "extra-ops"), "extra-ops")?;
            crate::local_norm::lrn(&l, f32s(get(0)?)?, f32s_mut(y)?)
        }
        Op::Mvn { shape, axes } => {
            built(cfg!(feature = "extra-ops"), "extra-ops")?;
            crate::local_norm::mvn(&shape, axes, f32s(get(0)?)?, f32s_mut(y)?)
        }
        Op::CumSum {
            outer,
            len,
            inner,
            exclusive,
            reverse,
        } => {
            built(cfg!(feature = "extra-ops"), "extra-ops")?;
            let dims = (outer, len, inner);
            let x = get(0)?;
            match g.t(s.out).dtype {
                DType::F32 => {
                    crate::sequence::cumsum(dims, exclusive, reverse, f32s(x)?, f32s_mut(y)?)
                }
                DType::I32 => crate::sequence::cumsum(
                    dims,
                    exclusive,
                    reverse,
                    typed::<i32>(x)?,
                    typed_mut::<i32>(y)?,
                ),
                _ => crate::sequence::cumsum(
                    dims,
                    exclusive,
                    reverse,
                    typed::<i64>(x)?,
                    typed_mut::<i64>(y)?,
                ),
            }
        }
        Op::QLut { table, .. } => {
            built(cfg!(feature = "int8-lut"), "int8-lut")?;
            k::lut(persist_slice(persist, table, 256)?, get(0)?, y)
        }
        Op::Pad {
            in_shape,
            begin,
            mode,
            value,
        } => {
            built(cfg!(feature = "layout-ops"), "layout-ops")?;
            let out = g.t(s.out);
            k::pad(
                out.dtype.size(),
                &in_shape,
                &begin,
                mode,
                &value,
                &out.shape,
                get(0)?,
                y,
            )
        }
        Op::Resize {
            in_shape,
            scales,
            mode,
            coord,
        } => {
            let out = g.t(s.out);
            if mode == crate::ops::ResizeMode::Linear {
                built(cfg!(feature = "float-ops"), "float-ops")?;
                k::resize_linear(
                    &in_shape,
                    &scales,
                    coord,
                    &out.shape,
                    f32s(get(0)?)?,
                    f32s_mut(y)?,
                )
            } else {
                built(cfg!(feature = "layout-ops"), "layout-ops")?;
                k::resize_nearest_any(
                    out.dtype.size(),
                    &in_shape,
                    &scales,
                    mode,
                    coord,
                    &out.shape,
                    get(0)?,
                    y,
                )
            }
        }
        #[cfg(feature = "float-ops")]
        Op::ClipInputs { min_at, max_at } => {
            let bound = |at: u8, none: f32| match at {
                0 => Ok(none),
                _ => f32s(get(at as usize)?)?
                    .first()
                    .copied()
                    .ok_or(Error::BadIo {
                        what: "Clip bound is empty",
                    }),
            };
            let clip = crate::ops::Unary::Clip(
                bound(min_at, f32::NEG_INFINITY)?,
                bound(max_at, f32::INFINITY)?,
            );
            k::unary(clip, f32s(get(0)?)?, f32s_mut(y)?)
        }
        Op::Trilu {
            rows,
            cols,
            upper,
            k,
            k_input,
        } => {
            built(cfg!(feature = "layout-ops"), "layout-ops")?;
            let k = if k_input {
                match get(1)? {
                    &[a, b, c, d, e, f, g, h] => i64::from_le_bytes([a, b, c, d, e, f, g, h]),
                    _ => {
                        return Err(Error::BadIo {
                            what: "Trilu k is not one int64",
                        })
                    }
                }
            } else {
                k
            };
            let esize = g.t(s.out).dtype.size();
            k::trilu(esize, rows, cols, upper, k, get(0)?, y)
        }
        Op::Tile { in_shape } => {
            built(cfg!(feature = "layout-ops"), "layout-ops")?;
            let out = g.t(s.out);
            k::tile(out.dtype.size(), &in_shape, &out.shape, get(0)?, y)
        }
        Op::Transpose { in_shape, perm } => {
            built(cfg!(feature = "layout-ops"), "layout-ops")?;
            k::transpose(g.t(s.out).dtype.size(), &in_shape, &perm, get(0)?, y)
        }
        #[cfg(feature = "integer-ops")]
        Op::Quantize { q, out } if q.from_inputs() => {
            let (sc, zp) = run_time_qparams(get(1)?, ins.get(2).copied(), out)?;
            k::quantize(&q, sc, &zp, out, f32s(get(0)?)?, y)
        }
        Op::Quantize { q, out } => {
            let sc = f32s(persist_slice(persist, q.scales, q.axis_len * 4)?)?;
            let zp = i32s(persist_slice(persist, q.zps, q.axis_len * 4)?)?;
            k::quantize(&q, sc, zp, out, f32s(get(0)?)?, y)
        }
        #[cfg(feature = "integer-ops")]
        Op::Dequantize { q, input } if q.from_inputs() => {
            let (sc, zp) = run_time_qparams(get(1)?, ins.get(2).copied(), input)?;
            k::dequantize(&q, sc, &zp, input, get(0)?, f32s_mut(y)?)
        }
        Op::Dequantize { q, input } => {
            let sc = f32s(persist_slice(persist, q.scales, q.axis_len * 4)?)?;
            let zp = i32s(persist_slice(persist, q.zps, q.axis_len * 4)?)?;
            k::dequantize(&q, sc, zp, input, get(0)?, f32s_mut(y)?)
        }
        Op::QConv(p) => {
            let bias = i32s(persist_slice(persist, p.bias, p.win.oc * 4)?)?;
            let rq_raw = i32s(persist_slice(persist, p.requant, p.win.oc * 8)?)?;
            let rq = RequantTable(rq_raw);
            let w: &[i8] = bytemuck::cast_slice(get(1)?);
            let x = get(0)?;
            if s.scratch > 0 {
                let packed = persist_slice(persist, p.packed, p.packed_len)?;
                if p.unsigned {
                    built(cfg!(feature = "uint8"), "uint8")?;
                    k::qconv_im2row::<u8>(&p, x, w, bias, packed, rq, y, scratch)
                } else {
                    k::qconv_im2row::<i8>(
                        &p,
                        bytemuck::cast_slice(x),
                        w,
                        bias,
                        packed,
                        rq,
                        bytemuck::cast_slice_mut(y),
                        scratch,
                    )
                }
            } else if p.unsigned {
                built(cfg!(feature = "uint8"), "uint8")?;
                k::qconv_ref::<u8>(&p, x, w, bias, rq, y)
            } else {
                k::qconv_ref::<i8>(
                    &p,
                    bytemuck::cast_slice(x),
                    w,
                    bias,
                    rq,
                    bytemuck::cast_slice_mut(y),
                )
            }
        }
        Op::QMul(p) => {
            built(cfg!(feature = "int8-residual"), "int8-residual")?;
            if p.unsigned {
                built(cfg!(feature = "uint8"), "uint8")?;
                k::qmul::<u8>(&p, get(0)?, get(1)?, y)
            } else {
                k::qmul::<i8>(
                    &p,
                    bytemuck::cast_slice(get(0)?),
                    bytemuck::cast_slice(get(1)?),
                    bytemuck::cast_slice_mut(y),
                )
            }
        }
        Op::QAdd(p) => {
            built(cfg!(feature = "int8-residual"), "int8-residual")?;
            if p.unsigned {
                built(cfg!(feature = "uint8"), "uint8")?;
                k::qadd::<u8>(&p, get(0)?, get(1)?, y)
            } else {
                k::qadd::<i8>(
                    &p,
                    bytemuck::cast_slice(get(0)?),
                    bytemuck::cast_slice(get(1)?),
                    bytemuck::cast_slice_mut(y),
                )
            }
        }
        Op::QAvgPool(a) => {
            built(cfg!(feature = "int8-avgpool"), "int8-avgpool")?;
            if a.unsigned {
                built(cfg!(feature = "uint8"), "uint8")?;
                k::qavgpool::<u8>(&a, get(0)?, y)
            } else {
                k::qavgpool::<i8>(
                    &a,
                    bytemuck::cast_slice(get(0)?),
                    bytemuck::cast_slice_mut(y),
                )
            }
        }
        Op::QConcat(c) => {
            built(cfg!(feature = "int8-concat"), "int8-concat")?;
            let mut xs: [&[u8]; crate::ops::MAX_QCONCAT_INPUTS] =
                [&[]; crate::ops::MAX_QCONCAT_INPUTS];
            let n = ins.len().min(xs.len());
            xs[..n].copy_from_slice(&ins[..n]);
            if c.unsigned {
                built(cfg!(feature = "uint8"), "uint8")?;
                k::qconcat::<u8>(&c, &xs[..n], y)
            } else {
                let mut xi: [&[i8]; crate::ops::MAX_QCONCAT_INPUTS] =
                    [&[]; crate::ops::MAX_QCONCAT_INPUTS];
                for (d, s) in xi.iter_mut().zip(&xs[..n]) {
                    *d = bytemuck::cast_slice(s);
                }
                k::qconcat::<i8>(&c, &xi[..n], bytemuck::cast_slice_mut(y))
            }
        }
        #[cfg(not(feature = "integer-ops"))]
        Op::IntLinear(_) | Op::DynQuant(_) => Err(Error::UnsupportedOp {
            op: crate::error::Name::new("integer op (feature integer-ops)"),
            node: crate::error::Name::new(""),
        }),
        #[cfg(not(feature = "logic-ops"))]
        Op::Compare(_) | Op::Logic(_) | Op::Where | Op::IntBinary(_) | Op::Classify(_) => {
            Err(Error::FamilyNotBuilt {
                feature: "logic-ops",
            })
        }
        #[cfg(feature = "logic-ops")]
        Op::Compare(c) => {
            let (a, b) = (g.t(s.ins[0]), g.t(s.ins[1]));
            let bc = crate::ops::broadcast(&a.shape, &b.shape).ok_or(Error::BadIo {
                what: "input shapes do not broadcast",
            })?;
            crate::logic::compare(c, a.dtype, &bc, get(0)?, get(1)?, y)
        }
        #[cfg(feature = "logic-ops")]
        Op::Classify(c) => crate::logic::classify(c, get(0)?, y),
        #[cfg(feature = "logic-ops")]
        Op::IntBinary(b) => {
            let (x, z) = (g.t(s.ins[0]), g.t(s.ins[1]));
            let bc = crate::ops::broadcast(&x.shape, &z.shape).ok_or(Error::BadIo {
                what: "input shapes do not broadcast",
            })?;
            crate::logic::int_binary(b, x.dtype, &bc, get(0)?, get(1)?, y)
        }
        #[cfg(feature = "logic-ops")]
        Op::Logic(l) => {
            let a = g.t(s.ins[0]).shape;
            let b = if l == crate::logic::Logic::Not {
                a
            } else {
                g.t(s.ins[1]).shape
            };
            let bc = crate::ops::broadcast(&a, &b).ok_or(Error::BadIo {
                what: "input shapes do not broadcast",
            })?;
            let second = if l == crate::logic::Logic::Not {
                &[][..]
            } else {
                get(1)?
            };
            crate::logic::logic(l, &bc, get(0)?, second, y)
        }
        #[cfg(feature = "logic-ops")]
        Op::Where => {
            let [c, x, z] = [0, 1, 2].map(|i| g.t(s.ins[i]));
            crate::logic::where_select(
                &g.t(s.out).shape,
                [&c.shape, &x.shape, &z.shape],
                x.dtype.size(),
                get(0)?,
                get(1)?,
                get(2)?,
                y,
            )
        }
        #[cfg(not(feature = "recurrent"))]
        Op::Rnn(_) => Err(Error::UnsupportedOp {
            op: crate::error::Name::new("recurrent op (feature recurrent)"),
            node: crate::error::Name::new(""),
        }),
        #[cfg(feature = "integer-ops")]
        Op::DynQuant(part) => crate::dynquant::dynamic_quantize(part, f32s(get(0)?)?, y),
        #[cfg(feature = "integer-ops")]
        Op::IntLinear(l) => {
            let ch = l.geom.channels();
            let zw = i32s(persist_slice(persist, l.zw, ch * 4)?)?;
            let bias = if l.bias == usize::MAX {
                None
            } else {
                Some(i32s(persist_slice(persist, l.bias, ch * 4)?)?)
            };
            let rq = match l.out8 {
                Some(o) => Some(RequantTable(i32s(persist_slice(
                    persist,
                    o.requant,
                    ch * 8,
                )?)?)),
                None => None,
            };
            let (l, zw_run) = l.with_input_zero_points(ins.get(2..).unwrap_or(&[]))?;
            let zw_one = [zw_run.unwrap_or(0)];
            let zw = if zw_run.is_some() { &zw_one[..] } else { zw };
            crate::intop::int_linear(&l, get(0)?, get(1)?, zw, bias, rq, y)
        }
        #[cfg(feature = "recurrent")]
        Op::Rnn(r) => {
            let inputs =
                crate::rnn::RnnInputs::from_step(&r, |i| f32s(get(i)?), |i| i32s(get(i)?))?;
            crate::rnn::rnn_f32(&r, &inputs, f32s_mut(y)?, f32s_mut(scratch)?)
        }
    }
}

fn put_f32(persist: &mut [u8], at: usize, i: usize, v: f32) -> Result<()> {
    persist
        .get_mut(at + 4 * i..at + 4 * i + 4)
        .ok_or(Error::BadIo {
            what: "fill outside the arena",
        })?
        .copy_from_slice(&v.to_le_bytes());
    Ok(())
}

/// Stores `v` (a float16 value, or rounded to one) as f16 bits at element `i`.
#[cfg(any(feature = "float-ops", feature = "recurrent"))]
fn put_f16(persist: &mut [u8], at: usize, i: usize, v: f32) -> Result<()> {
    persist
        .get_mut(at + 2 * i..at + 2 * i + 2)
        .ok_or(Error::BadIo {
            what: "fill outside the arena",
        })?
        .copy_from_slice(&half::f16::from_f32(v).to_bits().to_le_bytes());
    Ok(())
}

pub(crate) fn put_i32(persist: &mut [u8], at: usize, i: usize, v: i32) -> Result<()> {
    persist
        .get_mut(at + 4 * i..at + 4 * i + 4)
        .ok_or(Error::BadIo {
            what: "fill outside the arena",
        })?
        .copy_from_slice(&v.to_le_bytes());
    Ok(())
}

/// Writes one prepared constant into the persistent area.
#[inline(never)] // keeps this large frame off the caller's stack on MCUs
/// Writes folded tensor `id`'s value at `at` (little-endian, in the tensor's type).
#[cfg(feature = "shape-ops")]
fn fill_folded<const T: usize, const N: usize>(
    g: &Graph<'_, T, N>,
    id: u16,
    at: usize,
    persist: &mut [u8],
) -> Result<()> {
    let t = g.t(id);
    let es = t.dtype.size();
    let bad = || Error::BadIo {
        what: "fill outside the arena",
    };
    let dst = persist.get_mut(at..at + t.bytes()).ok_or_else(bad)?;
    // One element's bytes, repeated (a splat) or one by one (a vector).
    let mut one = [0u8; 8];
    match g.folded(id) {
        Some(crate::graph::FoldedValue::Small { len, values }) => {
            for (d, v) in dst
                .chunks_exact_mut(es)
                .zip(values.iter().take(len as usize))
            {
                d.copy_from_slice(&v.to_le_bytes()[..es]);
            }
            return Ok(());
        }
        Some(crate::graph::FoldedValue::Splat { node }) => {
            let node = g.node(node)?;
            match node.attr("value")?.and_then(|a| a.tensor()).transpose()? {
                None => {}
                Some(v) if t.dtype == DType::F32 => {
                    one[..4].copy_from_slice(&v.f32_at(0)?.to_le_bytes());
                }
                Some(v) => one[..es].copy_from_slice(&v.i64_at(0)?.to_le_bytes()[..es]),
            }
        }
        None => {
            return Err(Error::BadIo {
                what: "folded fill of a tensor without a value",
            })
        }
    }
    for d in dst.chunks_exact_mut(es) {
        d.copy_from_slice(&one[..es]);
    }
    Ok(())
}

// Never inlined: `plan` calls it after planning, and inlined its frame would add to the
// planning path's deepest stack (plan → plan_into → prepare_node) on microcontrollers.
#[inline(never)]
fn fill<const T: usize, const N: usize>(
    g: &Graph<'_, T, N>,
    f: &Fill,
    persist: &mut [u8],
) -> Result<()> {
    match *f {
        #[cfg(not(feature = "integer-ops"))]
        Fill::IntLinear { .. } => Err(Error::BadIo {
            what: "integer ops are not compiled in",
        }),
        #[cfg(feature = "integer-ops")]
        Fill::IntLinear {
            zw,
            bias,
            sx,
            sw,
            sy,
            p,
        } => {
            let k = |id: u16| if id == NONE { None } else { g.t(id).konst };
            let scales = k(sw).map(|w| (sx, w, sy));
            crate::intop::fill_int_linear(&p, k(zw), k(bias), scales, persist)
        }
        #[cfg(feature = "shape-ops")]
        Fill::Folded { id, at } => fill_folded(g, id, at, persist),
        #[cfg(not(feature = "shape-ops"))]
        Fill::Folded { .. } => Err(Error::FamilyNotBuilt {
            feature: "shape-ops",
        }),
        Fill::Const { id, at } => {
            let t = g.t(id);
            let kv = t.konst.ok_or(Error::BadIo {
                what: "constant fill of a non-constant",
            })?;
            let len = t.bytes();
            let dst = persist.get_mut(at..at + len).ok_or(Error::BadIo {
                what: "fill outside the arena",
            })?;
            match kv.raw() {
                Some(raw) if raw.len() == len && kv.dtype == t.dtype => dst.copy_from_slice(raw),
                // Kept as float16 (half-arithmetic weights) whatever the file's encoding.
                #[cfg(feature = "float-ops")]
                _ if t.dtype == DType::F16 => {
                    let mut res = Ok(());
                    kv.for_each_f32(|i, v| {
                        if res.is_ok() {
                            res = put_f16(dst, 0, i, v);
                        }
                    })?;
                    res?;
                }
                #[cfg(feature = "float-ops")]
                _ if kv.dtype == DType::F16 => {
                    // float16 constants are widened to float32 once, here.
                    let mut res = Ok(());
                    kv.for_each_f32(|i, v| {
                        if res.is_ok() {
                            res = put_f32(dst, 0, i, v);
                        }
                    })?;
                    res?;
                }
                _ => {
                    let es = t.dtype.size();
                    let mut err = None;
                    kv.for_each_i64(|i, v| {
                        let bytes = v.to_le_bytes();
                        match dst.get_mut(i * es..(i + 1) * es) {
                            Some(d) => d.copy_from_slice(&bytes[..es]),
                            None => {
                                err = Some(Error::BadInitializer {
                                    name: Name::new(t.name),
                                })
                            }
                        }
                    })?;
                    if t.dtype == DType::F32 || t.dtype == DType::F16 {
                        // float_data is stored raw; any other representation is unusual.
                        return Err(Error::BadInitializer {
                            name: Name::new(t.name),
                        });
                    }
                    if let Some(e) = err {
                        return Err(e);
                    }
                }
            }
            Ok(())
        }
        #[cfg(not(any(feature = "float-ops", feature = "recurrent")))]
        Fill::ConstTransposed { .. } => Err(Error::FamilyNotBuilt {
            feature: "float-ops",
        }),
        #[cfg(any(feature = "float-ops", feature = "recurrent"))]
        Fill::ConstTransposed { id, at, rows, cols } => {
            let kv = g.t(id).konst.ok_or(Error::BadIo {
                what: "constant fill of a non-constant",
            })?;
            // float16 storage for half-arithmetic weights, float32 otherwise.
            let put = if g.t(id).dtype == DType::F16 {
                put_f16
            } else {
                put_f32
            };
            let mut res = Ok(());
            // Several rows × cols blocks (a bidirectional layer's W) are transposed one by one.
            let block = (rows * cols).max(1);
            kv.for_each_f32(|i, v| {
                let (b, i) = (i / block, i % block);
                let (r, c) = (i / cols.max(1), i % cols.max(1));
                if res.is_ok() {
                    res = put(persist, at, b * block + c * rows + r, v);
                }
            })?;
            res
        }
        Fill::Lut { at, spec } => {
            let table = persist.get_mut(at..at + 256).ok_or(Error::BadIo {
                what: "lookup table",
            })?;
            k::lut_table(&spec, table)
        }
        #[cfg(not(feature = "signal-ops"))]
        Fill::Window { .. } | Fill::Mel { .. } => Err(Error::FamilyNotBuilt {
            feature: "signal-ops",
        }),
        #[cfg(feature = "signal-ops")]
        Fill::Window {
            at,
            kind,
            size,
            periodic,
        } => {
            let bytes = size as usize * 4;
            let y = persist.get_mut(at..at + bytes).ok_or(Error::BadIo {
                what: "window outside the arena",
            })?;
            crate::signal::window(kind, periodic, f32s_mut(y)?)
        }
        #[cfg(feature = "signal-ops")]
        Fill::Mel { at, m } => {
            let bytes = m.bins() * m.mels as usize * 4;
            let y = persist.get_mut(at..at + bytes).ok_or(Error::BadIo {
                what: "mel matrix outside the arena",
            })?;
            crate::signal::mel_weights(&m, f32s_mut(y)?)
        }
        Fill::QParams { scale, zp, q } => {
            let s = g.t(scale).konst.ok_or(Error::BadIo { what: "scale" })?;
            let mut res = Ok(());
            s.for_each_f32(|i, v| {
                if i < q.axis_len && res.is_ok() {
                    res = put_f32(persist, q.scales, i, v);
                }
            })?;
            res?;
            for i in 0..q.axis_len {
                put_i32(persist, q.zps, i, 0)?;
            }
            if zp != NONE {
                let z = g.t(zp).konst.ok_or(Error::BadIo { what: "zero point" })?;
                let mut res = Ok(());
                z.for_each_i64(|i, v| {
                    if i < q.axis_len && res.is_ok() {
                        res = put_i32(persist, q.zps, i, v as i32);
                    }
                })?;
                res?;
            }
            Ok(())
        }
        Fill::QLinear {
            w,
            bias,
            bias_scale,
            sx,
            sw,
            sy,
            p,
        } => {
            let wk = g
                .t(w)
                .konst
                .and_then(|k| k.raw())
                .ok_or(Error::BadIo { what: "weights" })?;
            let wv: &[i8] = bytemuck::cast_slice(wk);
            let swk = g.t(sw).konst.ok_or(Error::BadIo {
                what: "weight scale",
            })?;
            let per_oc = swk.shape.numel() > 1;
            let red = p.win.c / p.win.group * p.win.kh * p.win.kw;
            for oc in 0..p.win.oc {
                let s_w = swk.f32_at(if per_oc { oc } else { 0 })? as f64;
                let mut sum: i64 = 0;
                for r in 0..red {
                    sum += *wv.get(oc * p.w_stride_oc + r * p.w_stride_k).ok_or(
                        Error::BadInitializer {
                            name: Name::new(g.t(w).name),
                        },
                    )? as i64;
                }
                let acc_scale = sx as f64 * s_w;
                let b_real = if bias == NONE {
                    0.0
                } else {
                    let bk = g.t(bias).konst.ok_or(Error::BadIo { what: "bias" })?;
                    if bias_scale == NONE && bk.dtype == DType::I32 {
                        // QLinearConv's bias: int32 already in accumulator units.
                        bk.i64_at(oc)? as f64 * acc_scale
                    } else if bias_scale == NONE {
                        bk.f32_at(oc)? as f64
                    } else {
                        let bs = g
                            .t(bias_scale)
                            .konst
                            .ok_or(Error::BadIo { what: "bias scale" })?;
                        let s = bs.f32_at(if bs.shape.numel() > 1 { oc } else { 0 })? as f64;
                        bk.i64_at(oc)? as f64 * s
                    }
                };
                let bq = if acc_scale > 0.0 {
                    crate::quant::round_half_away((b_real / acc_scale).clamp(-2.0e9, 2.0e9))
                } else {
                    0
                };
                let bq = bq - p.zx as i64 * sum;
                put_i32(
                    persist,
                    p.bias,
                    oc,
                    bq.clamp(i32::MIN as i64, i32::MAX as i64) as i32,
                )?;
                let r = Requant::from_f64(acc_scale / sy as f64);
                put_i32(persist, p.requant, 2 * oc, r.multiplier)?;
                put_i32(persist, p.requant, 2 * oc + 1, r.shift)?;
            }
            if p.packed_len > 0 {
                // Reserved after the biases, so the two regions split cleanly.
                if p.packed < p.bias + p.win.oc * 4 || p.packed > persist.len() {
                    return Err(Error::BadIo {
                        what: "packed weights before the biases",
                    });
                }
                let (head, tail) = persist.split_at_mut(p.packed);
                let bias_bytes = head
                    .get(p.bias..p.bias + p.win.oc * 4)
                    .ok_or(Error::BadIo { what: "bias" })?;
                let out = tail.get_mut(..p.packed_len).ok_or(Error::BadIo {
                    what: "fill outside the arena",
                })?;
                crate::kernels::qconv_pack(&p, wv, i32s(bias_bytes)?, out)?;
            }
            Ok(())
        }
    }
}

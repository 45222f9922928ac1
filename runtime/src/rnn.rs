//! Recurrent layers on float32: ONNX `RNN`, `GRU` and `LSTM` (trajectory encoders/decoders).
//!
//! One node becomes one step per requested output (`Y`, `Y_h`, `Y_c`), each running the whole
//! recurrence: the plan keeps one output per step, and a model that asks for several outputs of
//! one recurrent node is rare (the extra cost is one more pass over a small layer). The state
//! (`h`, `c`) and the gate pre-activations live in the step's scratch, so nothing is allocated.
//!
//! Supported: forward, reverse and bidirectional; `layout` 0 and 1; optional bias, initial
//! states, peepholes and `sequence_lens` (steps past a batch entry's length give zeros in `Y`);
//! `linear_before_reset`; activations Sigmoid, Tanh and Relu. Refused at plan time with a typed
//! error: `clip`, `input_forget`, activations with alpha/beta, non-float32 weights.

// The types are part of every build (the step table names them); the planning and kernel code
// only with the feature.
#![cfg_attr(not(feature = "recurrent"), allow(dead_code, unused_imports))]

use crate::error::{Error, Result};
use crate::kernels::unary_one;
use crate::onnx::Node;
use crate::ops::{input, shape_err, unsupported, Op, Prep, Step, Unary};
use crate::prepare::make_step;
use crate::tensor::{DType, Shape};

/// Which recurrent cell.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Cell {
    /// Elman RNN: h = f(W·x + R·h + b).
    Rnn,
    /// Gated recurrent unit (gates z, r, h).
    Gru,
    /// Long short-term memory (gates i, o, f, c).
    Lstm,
}

impl Cell {
    /// Gate blocks stacked in W and R.
    pub fn gates(self) -> usize {
        match self {
            Cell::Rnn => 1,
            Cell::Gru => 3,
            Cell::Lstm => 4,
        }
    }

    /// Activation functions per direction (f; f, g; f, g, h).
    fn activations(self) -> usize {
        match self {
            Cell::Rnn => 1,
            Cell::Gru => 2,
            Cell::Lstm => 3,
        }
    }
}

/// An activation function of a cell (one byte, so the step table stays small on MCUs).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Act {
    /// 1 / (1 + e^−x).
    Sigmoid,
    /// tanh x.
    Tanh,
    /// max(x, 0).
    Relu,
}

impl Act {
    #[inline(always)]
    fn apply(self, x: f32) -> f32 {
        match self {
            Act::Sigmoid => sigmoid(x),
            Act::Tanh => unary_one(Unary::Tanh, x),
            Act::Relu => x.max(0.0),
        }
    }

    /// In place over a slice; one loop per function, so the sigmoid's vectorizes.
    #[inline(always)]
    fn apply_all(self, xs: &mut [f32]) {
        match self {
            Act::Sigmoid => xs.iter_mut().for_each(|v| *v = sigmoid(*v)),
            Act::Tanh => xs.iter_mut().for_each(|v| *v = unary_one(Unary::Tanh, *v)),
            Act::Relu => xs.iter_mut().for_each(|v| *v = v.max(0.0)),
        }
    }
}

/// 1 / (1 + e^−x), branch-free so loops over gates vectorize: e^−x as 2^k·p(r) in f32 with
/// Cody–Waite reduction and a degree-6 polynomial (|r| ≤ ln2/2; a few ulp). x is clamped to
/// ±87: above, the result is 1 in f32 anyway; below, it stays at e^-87 (about 1.6e-38) instead of going subnormal.
#[inline(always)]
fn sigmoid(x: f32) -> f32 {
    const ROUND: f32 = 12_582_912.0; // 1.5·2^23: adding and subtracting it rounds to an integer
    const LN2_HI: f32 = 0.693_145_75;
    const LN2_LO: f32 = 1.428_606_8e-6;
    let e = (-x).clamp(-87.0, 87.0);
    let k = (e * core::f32::consts::LOG2_E + ROUND) - ROUND;
    let r = (e - k * LN2_HI) - k * LN2_LO;
    let p = 1.0
        + r * (1.0
            + r * (0.5
                + r * (1.0 / 6.0 + r * (1.0 / 24.0 + r * (1.0 / 120.0 + r * (1.0 / 720.0))))));
    let scale = f32::from_bits(((k as i32 + 127) as u32) << 23);
    1.0 / (1.0 + p * scale)
}

/// Which output a step writes.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum RnnOutput {
    /// Every step's hidden state.
    Y,
    /// The last hidden state.
    Yh,
    /// The last cell state (LSTM).
    Yc,
}

/// A planned recurrent step.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct RnnSpec {
    /// The cell.
    pub cell: Cell,
    /// The output this step writes.
    pub output: RnnOutput,
    /// Time steps.
    pub seq: usize,
    /// Batch size.
    pub batch: usize,
    /// Input features.
    pub input: usize,
    /// Hidden size.
    pub hidden: usize,
    /// 1, or 2 for bidirectional.
    pub dirs: usize,
    /// Single direction running backwards in time.
    pub reverse: bool,
    /// `layout = 1`: batch before time in X, Y and the states.
    pub batch_first: bool,
    /// GRU: apply the reset gate after the recurrent product.
    pub linear_before_reset: bool,
    /// Activations per direction, in the spec's order (unused slots are Relu).
    pub acts: [Act; 6],
    /// W is a constant the plan stores transposed (input × gates·hidden per direction), so
    /// invoke reads it as is; otherwise the kernel transposes it into scratch.
    pub w_pre: bool,
    /// The same for R.
    pub r_pre: bool,
    /// Positions of the optional inputs among the step inputs (0 = absent):
    /// bias, sequence_lens, initial_h, initial_c, peepholes.
    pub slots: [u8; 5],
}

const B: usize = 0;
const LENS: usize = 1;
const H0: usize = 2;
const C0: usize = 3;
const P: usize = 4;

impl RnnSpec {
    /// Scratch bytes a step needs: h and c per direction and batch, one time step's gates, two
    /// hidden-sized temporaries, and W and R of one direction transposed.
    pub fn scratch_bytes(&self) -> Option<usize> {
        let state = self
            .dirs
            .checked_mul(self.batch)?
            .checked_mul(self.hidden)?;
        let gh = self.cell.gates().checked_mul(self.hidden)?;
        let cols =
            if self.w_pre { 0 } else { self.input } + if self.r_pre { 0 } else { self.hidden };
        let weights = cols.checked_mul(gh)?;
        state
            .checked_mul(2)?
            .checked_add(gh)?
            .checked_add(2 * self.hidden)?
            .checked_add(weights)?
            .checked_mul(4)
    }

    fn act(&self, dir: usize, k: usize) -> Act {
        self.acts[dir * self.cell.activations() + k]
    }

    /// Offset of (time, dir, batch) in Y, in elements.
    fn y_at(&self, t: usize, d: usize, b: usize) -> usize {
        let i = if self.batch_first {
            (b * self.seq + t) * self.dirs + d
        } else {
            (t * self.dirs + d) * self.batch + b
        };
        i * self.hidden
    }

    /// Offset of (dir, batch) in Y_h, Y_c and the initial states, in elements.
    fn state_at(&self, d: usize, b: usize) -> usize {
        let i = if self.batch_first {
            b * self.dirs + d
        } else {
            d * self.batch + b
        };
        i * self.hidden
    }

    /// Offset of (time, batch) in X, in elements.
    fn x_at(&self, t: usize, b: usize) -> usize {
        let i = if self.batch_first {
            b * self.seq + t
        } else {
            t * self.batch + b
        };
        i * self.input
    }
}

fn parse_act(node: &Node<'_>, name: &[u8]) -> Result<Act> {
    let eq = |s: &str| name.eq_ignore_ascii_case(s.as_bytes());
    if eq("Sigmoid") {
        Ok(Act::Sigmoid)
    } else if eq("Tanh") {
        Ok(Act::Tanh)
    } else if eq("Relu") {
        Ok(Act::Relu)
    } else {
        Err(unsupported(
            node,
            "activation function (Sigmoid, Tanh and Relu are supported)",
        ))
    }
}

/// Checks an f32 input's shape and adds it to the step inputs.
fn push_f32<const T: usize, const N: usize>(
    p: &Prep<'_, '_, T, N>,
    node: &Node<'_>,
    i: usize,
    want: &[usize],
    ins: &mut heapless::Vec<u16, 8>,
    what: &'static str,
) -> Result<u8> {
    let (id, t) = input(p.g, node, i)?;
    if t.dtype != DType::F32 {
        return Err(unsupported(
            node,
            "element type (recurrent layers run on float32)",
        ));
    }
    if t.shape.dims().len() != want.len()
        || t.shape
            .dims()
            .iter()
            .zip(want)
            .any(|(&a, &b)| a as usize != b)
    {
        return Err(shape_err(node, what));
    }
    let pos = ins.len() as u8;
    ins.push(id)
        .map_err(|_| shape_err(node, "too many inputs"))?;
    Ok(pos)
}

/// Plans an `RNN`, `GRU` or `LSTM` node: appends one step per requested output.
#[inline(never)] // keeps this frame off the planner's stack on MCUs
pub(crate) fn prepare_rnn<const T: usize, const N: usize>(
    p: &mut Prep<'_, '_, T, N>,
    node: &Node<'_>,
    idx: u16,
    steps: &mut heapless::Vec<Step, N>,
) -> Result<()> {
    let cell = match node.op_type {
        "RNN" => Cell::Rnn,
        "GRU" => Cell::Gru,
        _ => Cell::Lstm,
    };
    for a in node.attr_names() {
        let a = a?;
        let ok = matches!(a, "activations" | "direction" | "hidden_size" | "layout")
            || (cell == Cell::Gru && a == "linear_before_reset")
            || (cell == Cell::Lstm && a == "input_forget");
        if !ok {
            return Err(unsupported(
                node,
                "attribute (clip and activation alpha/beta are not supported)",
            ));
        }
    }
    if node.attr_i("input_forget", 0)? != 0 {
        return Err(unsupported(node, "input_forget"));
    }
    let (dirs, reverse) = match node.attr_s("direction")?.unwrap_or(b"forward") {
        b"forward" => (1, false),
        b"reverse" => (1, true),
        b"bidirectional" => (2, false),
        _ => return Err(unsupported(node, "direction")),
    };
    let batch_first = match node.attr_i("layout", 0)? {
        0 => false,
        1 => true,
        _ => return Err(unsupported(node, "layout")),
    };
    let (x_id, xt) = input(p.g, node, 0)?;
    if xt.dtype != DType::F32 || xt.shape.rank() != 3 {
        return Err(shape_err(node, "X must be a 3-D float32 tensor"));
    }
    let (seq, batch, in_feat) = if batch_first {
        (xt.shape.dim(1), xt.shape.dim(0), xt.shape.dim(2))
    } else {
        (xt.shape.dim(0), xt.shape.dim(1), xt.shape.dim(2))
    };
    let (r_id, rt) = input(p.g, node, 2)?;
    let hidden = match node.attr_i("hidden_size", -1)? {
        -1 if rt.shape.rank() == 3 => rt.shape.dim(2),
        h if h > 0 && h <= u32::MAX as i64 => h as usize,
        _ => return Err(shape_err(node, "hidden_size")),
    };
    let g = cell.gates();
    let mut ins: heapless::Vec<u16, 8> = heapless::Vec::new();
    let _ = ins.push(x_id);
    push_f32(
        p,
        node,
        1,
        &[dirs, g * hidden, in_feat],
        &mut ins,
        "W shape",
    )?;
    push_f32(p, node, 2, &[dirs, g * hidden, hidden], &mut ins, "R shape")?;
    let mut slots = [0u8; 5];
    if node.input(3).is_some() {
        slots[B] = push_f32(p, node, 3, &[dirs, 2 * g * hidden], &mut ins, "B shape")?;
    }
    if node.input(4).is_some() {
        let (id, t) = input(p.g, node, 4)?;
        if t.dtype != DType::I32 || t.shape.dims() != [batch as u32] {
            return Err(shape_err(
                node,
                "sequence_lens must be int32 of length batch",
            ));
        }
        slots[LENS] = ins.len() as u8;
        let _ = ins.push(id);
    }
    let state: [usize; 3] = if batch_first {
        [batch, dirs, hidden]
    } else {
        [dirs, batch, hidden]
    };
    if node.input(5).is_some() {
        slots[H0] = push_f32(p, node, 5, &state, &mut ins, "initial_h shape")?;
    }
    if cell == Cell::Lstm {
        if node.input(6).is_some() {
            slots[C0] = push_f32(p, node, 6, &state, &mut ins, "initial_c shape")?;
        }
        if node.input(7).is_some() {
            slots[P] = push_f32(p, node, 7, &[dirs, 3 * hidden], &mut ins, "P shape")?;
        }
    }
    let per_dir = cell.activations();
    let mut acts = [Act::Relu; 6];
    let defaults = [Act::Sigmoid, Act::Tanh, Act::Tanh];
    for d in 0..dirs {
        for k in 0..per_dir {
            acts[d * per_dir + k] = if cell == Cell::Rnn {
                Act::Tanh
            } else {
                defaults[k]
            };
        }
    }
    if let Some(a) = node.attr("activations")? {
        let mut n = 0;
        a.for_each_string(|s| {
            let slot = acts
                .get_mut(n)
                .filter(|_| n < per_dir * dirs)
                .ok_or_else(|| shape_err(node, "more activations than the cell uses"))?;
            *slot = parse_act(node, s)?;
            n += 1;
            Ok(())
        })?;
        if n != per_dir * dirs {
            return Err(shape_err(node, "activations count differs from the cell's"));
        }
    }
    // Constant weights read by this node only are transposed once, at plan time.
    let plan_transposed = |id: u16| {
        let t = p.g.t(id);
        t.konst.is_some() && t.dtype == DType::F32 && t.uses == 1
    };
    let w_id = ins[1];
    let (w_pre, r_pre) = (plan_transposed(w_id), plan_transposed(r_id));
    let base = RnnSpec {
        cell,
        output: RnnOutput::Y,
        seq,
        batch,
        input: in_feat,
        hidden,
        dirs,
        reverse,
        batch_first,
        linear_before_reset: node.attr_i("linear_before_reset", 0)? != 0,
        acts,
        w_pre,
        r_pre,
        slots,
    };
    let mut added = 0;
    for (k, &name) in node.outputs.iter().enumerate() {
        if name.is_empty() {
            continue;
        }
        let (output, dims) = match (k, batch_first) {
            (0, false) => (RnnOutput::Y, [seq, dirs, batch, hidden]),
            (0, true) => (RnnOutput::Y, [batch, seq, dirs, hidden]),
            (1, _) => (RnnOutput::Yh, [state[0], state[1], state[2], 0]),
            (2, _) if cell == Cell::Lstm => (RnnOutput::Yc, [state[0], state[1], state[2], 0]),
            _ => return Err(unsupported(node, "number of outputs")),
        };
        let rank = if output == RnnOutput::Y { 4 } else { 3 };
        let shape = Shape::from_usize(&dims[..rank], name)?;
        let out = p.type_output(name, DType::F32, shape)?;
        let spec = RnnSpec { output, ..base };
        let mut st = make_step(idx, Op::Rnn(spec), &ins, out)?;
        st.scratch = spec.scratch_bytes().ok_or(Error::BadDimension {
            name: crate::error::Name::new(name),
        })?;
        crate::ops::push_step(steps, st)?;
        added += 1;
    }
    if added == 0 {
        return Err(unsupported(node, "recurrent node without outputs"));
    }
    Ok(())
}

/// The inputs of one recurrent step, typed.
pub struct RnnInputs<'a> {
    /// X.
    pub x: &'a [f32],
    /// W: dirs × gates·hidden × input.
    pub w: &'a [f32],
    /// R: dirs × gates·hidden × hidden.
    pub r: &'a [f32],
    /// B: dirs × 2·gates·hidden (W biases then R biases).
    pub b: Option<&'a [f32]>,
    /// Valid time steps per batch entry.
    pub lens: Option<&'a [i32]>,
    /// Initial hidden state.
    pub h0: Option<&'a [f32]>,
    /// Initial cell state (LSTM).
    pub c0: Option<&'a [f32]>,
    /// Peepholes i, o, f (LSTM).
    pub p: Option<&'a [f32]>,
}

impl<'a> RnnInputs<'a> {
    /// Picks the inputs out of a step's input list by the spec's slots.
    pub fn from_step(
        s: &RnnSpec,
        f32_in: impl Fn(usize) -> Result<&'a [f32]>,
        i32_in: impl Fn(usize) -> Result<&'a [i32]>,
    ) -> Result<Self> {
        let opt = |k: usize| match s.slots[k] {
            0 => Ok(None),
            i => f32_in(i as usize).map(Some),
        };
        Ok(RnnInputs {
            x: f32_in(0)?,
            w: f32_in(1)?,
            r: f32_in(2)?,
            b: opt(B)?,
            lens: match s.slots[LENS] {
                0 => None,
                i => Some(i32_in(i as usize)?),
            },
            h0: opt(H0)?,
            c0: opt(C0)?,
            p: opt(P)?,
        })
    }
}

fn bad(what: &'static str) -> Error {
    Error::BadIo { what }
}

/// Runs the recurrence and writes the step's output (float32): the portable kernel, compiled
/// for AVX2 when the CPU has it (same code and order of operations, so bit-identical).
pub fn rnn_f32(s: &RnnSpec, i: &RnnInputs<'_>, y: &mut [f32], scratch: &mut [f32]) -> Result<()> {
    #[cfg(all(target_arch = "x86_64", feature = "std"))]
    if crate::simd::has_avx2() {
        return crate::simd::rnn_f32_avx2(s, i, y, scratch);
    }
    rnn_f32_portable(s, i, y, scratch)
}

/// The portable recurrence (see [`rnn_f32`]).
#[inline(always)]
pub fn rnn_f32_portable(
    s: &RnnSpec,
    i: &RnnInputs<'_>,
    y: &mut [f32],
    scratch: &mut [f32],
) -> Result<()> {
    let (hs, g) = (s.hidden, s.cell.gates());
    let gh = g * hs;
    let state = s.dirs * s.batch * hs;
    let out_len = match s.output {
        RnnOutput::Y => s.seq * state,
        _ => state,
    };
    if y.len() != out_len
        || i.x.len() != s.seq * s.batch * s.input
        || i.w.len() != s.dirs * gh * s.input
        || i.r.len() != s.dirs * gh * hs
        || scratch.len() < scratch_floats(s)
    {
        return Err(bad("recurrent step buffers differ from the plan"));
    }
    let (h_all, rest) = scratch.split_at_mut(state);
    let (c_all, rest) = rest.split_at_mut(state);
    let (gates, rest) = rest.split_at_mut(gh);
    let (hrec, rest) = rest.split_at_mut(hs);
    let (tmp, rest) = rest.split_at_mut(hs);
    let (wt_buf, rest) = rest.split_at_mut(if s.w_pre { 0 } else { s.input * gh });
    let rt_buf = &mut rest[..if s.r_pre { 0 } else { hs * gh }];
    if s.output == RnnOutput::Y {
        y.fill(0.0); // steps past a sequence length stay zero
    }
    for d in 0..s.dirs {
        let backwards = s.reverse || d == 1;
        // Transposed weights: the products become axpy updates of all gates at once
        // (contiguous, vectorizable, and summed in the same order by every build).
        let w_d = &i.w[d * gh * s.input..][..gh * s.input];
        let wt: &[f32] = if s.w_pre {
            w_d
        } else {
            transpose(w_d, gh, s.input, wt_buf);
            wt_buf
        };
        let r_d = &i.r[d * gh * hs..][..gh * hs];
        let rt: &[f32] = if s.r_pre {
            r_d
        } else {
            transpose(r_d, gh, hs, rt_buf);
            rt_buf
        };
        let bias = i.b.map(|b| &b[d * 2 * gh..][..2 * gh]);
        for b in 0..s.batch {
            let len = match i.lens {
                Some(l) => {
                    let v = *l
                        .get(b)
                        .ok_or(bad("sequence_lens shorter than the batch"))?;
                    usize::try_from(v)
                        .ok()
                        .filter(|&v| v <= s.seq)
                        .ok_or(bad("sequence_lens value outside 0..=seq_length"))?
                }
                None => s.seq,
            };
            let at = s.state_at(d, b);
            let h = &mut h_all[at..at + hs];
            let c = &mut c_all[at..at + hs];
            match i.h0 {
                Some(v) => h.copy_from_slice(&v[at..at + hs]),
                None => h.fill(0.0),
            }
            match i.c0 {
                Some(v) => c.copy_from_slice(&v[at..at + hs]),
                None => c.fill(0.0),
            }
            for step in 0..len {
                let t = if backwards { len - 1 - step } else { step };
                let x = &i.x[s.x_at(t, b)..][..s.input];
                // Input part of every gate, with the input biases.
                match bias {
                    Some(bv) => gates.copy_from_slice(&bv[..gh]),
                    None => gates.fill(0.0),
                }
                gemv_t(gates, x, wt, gh);
                // Recurrent part: all gates, except GRU's h gate, which needs the reset gate
                // first (kept apart in `hrec`).
                let direct = if s.cell == Cell::Gru { 2 * hs } else { gh };
                if let Some(bv) = bias {
                    for (gv, &r) in gates[..direct].iter_mut().zip(&bv[gh..gh + direct]) {
                        *gv += r;
                    }
                }
                gemv_t(&mut gates[..direct], h, rt, gh);
                match s.cell {
                    Cell::Rnn => {
                        s.act(d, 0).apply_all(&mut gates[..hs]);
                        h.copy_from_slice(&gates[..hs]);
                    }
                    Cell::Gru => {
                        let (f, gfn) = (s.act(d, 0), s.act(d, 1));
                        f.apply_all(&mut gates[..2 * hs]);
                        match bias {
                            Some(bv) => hrec.copy_from_slice(&bv[gh + 2 * hs..]),
                            None => hrec.fill(0.0),
                        }
                        // linear_before_reset: r∘(Rh·h + Rbh); otherwise Rh·(r∘h) + Rbh.
                        let src: &[f32] = if s.linear_before_reset {
                            h
                        } else {
                            for j in 0..hs {
                                tmp[j] = gates[hs + j] * h[j];
                            }
                            tmp
                        };
                        gemv_t(hrec, src, &rt[2 * hs..], gh);
                        for j in 0..hs {
                            let rec = if s.linear_before_reset {
                                gates[hs + j] * hrec[j]
                            } else {
                                hrec[j]
                            };
                            let cand = gfn.apply(gates[2 * hs + j] + rec);
                            let z = gates[j];
                            h[j] = (1.0 - z) * cand + z * h[j];
                        }
                    }
                    Cell::Lstm => {
                        let peep = i.p.map(|p| &p[d * 3 * hs..][..3 * hs]);
                        for j in 0..hs {
                            let pk = |k: usize| peep.map_or(0.0, |p| p[k * hs + j]);
                            let ig = s.act(d, 0).apply(gates[j] + pk(0) * c[j]);
                            let fg = s.act(d, 0).apply(gates[2 * hs + j] + pk(2) * c[j]);
                            let cand = s.act(d, 1).apply(gates[3 * hs + j]);
                            c[j] = fg * c[j] + ig * cand;
                            let og = s.act(d, 0).apply(gates[hs + j] + pk(1) * c[j]);
                            h[j] = og * s.act(d, 2).apply(c[j]);
                        }
                    }
                }
                if s.output == RnnOutput::Y {
                    y[s.y_at(t, d, b)..][..hs].copy_from_slice(h);
                }
            }
            match s.output {
                RnnOutput::Y => {}
                RnnOutput::Yh => y[at..at + hs].copy_from_slice(h),
                RnnOutput::Yc => y[at..at + hs].copy_from_slice(c),
            }
        }
    }
    Ok(())
}

/// Floats of scratch a step needs (see [`RnnSpec::scratch_bytes`]).
fn scratch_floats(s: &RnnSpec) -> usize {
    let gh = s.cell.gates() * s.hidden;
    let cols = if s.w_pre { 0 } else { s.input } + if s.r_pre { 0 } else { s.hidden };
    2 * s.dirs * s.batch * s.hidden + gh + 2 * s.hidden + cols * gh
}

/// acc[j] += Σₖ v[k]·m[k·stride + j]: a product with a transposed matrix, 32 outputs at a time
/// held in registers while k runs (each output still sums k in order, so every build agrees).
#[inline(always)]
fn gemv_t(acc: &mut [f32], v: &[f32], m: &[f32], stride: usize) {
    const B: usize = 32;
    let mut j0 = 0;
    while j0 < acc.len() {
        let n = B.min(acc.len() - j0);
        if n == B {
            let mut a = [0.0f32; B];
            a.copy_from_slice(&acc[j0..j0 + B]);
            for (k, &vk) in v.iter().enumerate() {
                let row = &m[k * stride + j0..][..B];
                for l in 0..B {
                    a[l] += vk * row[l];
                }
            }
            acc[j0..j0 + B].copy_from_slice(&a);
        } else {
            for (k, &vk) in v.iter().enumerate() {
                let row = &m[k * stride + j0..][..n];
                for (o, &r) in acc[j0..j0 + n].iter_mut().zip(row) {
                    *o += vk * r;
                }
            }
        }
        j0 += n;
    }
}

/// `m` (rows × cols, row-major) transposed into `out` (cols × rows).
fn transpose(m: &[f32], rows: usize, cols: usize, out: &mut [f32]) {
    for r in 0..rows {
        for c in 0..cols {
            out[c * rows + r] = m[r * cols + c];
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn fast_sigmoid_is_accurate_and_saturates() {
        for i in -40_000..40_000 {
            let x = i as f32 * 0.0025;
            let want = 1.0 / (1.0 + (-(x as f64)).exp());
            let got = sigmoid(x) as f64;
            if x > -87.0 {
                assert!(
                    ((got - want) / want).abs() < 1e-6,
                    "sigmoid({x}) = {got}, want {want}"
                );
            } else {
                // Clamped at e^-87 instead of a subnormal.
                assert!(got <= 2e-38, "sigmoid({x}) = {got}");
            }
        }
        assert_eq!(sigmoid(200.0), 1.0);
        assert!(sigmoid(-200.0) <= 2e-38);
        assert!(sigmoid(f32::NAN).is_nan());
    }
}

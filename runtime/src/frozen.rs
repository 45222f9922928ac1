//! Frozen plans: an interpreter's plan made once on the host and stored as bytes beside the
//! model, so a microcontroller runs the model without the ONNX reader, the QDQ fusion pass,
//! shape inference and the memory planner — about 20 KB of flash it would otherwise carry to do
//! the same work at every boot.
//!
//! The plan holds the step list, the tensor table (type, shape, where each tensor's bytes are),
//! the arena layout, and the persistent part of the arena as the host filled it (int32 biases,
//! requantization tables, quantization parameters). Weights are not copied: steps read them from
//! the ONNX file in place, by offset, as an on-device plan does. The plan records the length and
//! an FNV-1a hash of the model it was made from, and a hash of itself: a plan loaded against
//! another model, or a damaged one, is refused with [`Error::BadPlan`].
//!
//! Everything read from a plan is checked before it runs (tensor ids, every offset and length
//! against the model and the arena, each op's geometry against its tensors' sizes), so a plan
//! cannot make the runtime panic or touch memory outside its buffers.
//!
//! Only the int8 core is frozen: the steps a fully quantized model runs on a microcontroller
//! (int8 convolution and dense layers, Quantize/Dequantize, MaxPool, int8 Add, Concat and
//! AveragePool, int8 lookup tables of element-wise ops, data movement (Transpose, Slice, Gather,
//! Pad, Tile, Resize) and reshapes). A plan with other steps (float, GatherElements,
//! ScatterElements, integer and logic ops) is refused by [`InterpreterWith::freeze`]; plan it
//! on the device instead.
//!
//! Layout (little endian, version 1): `"SPLN"`, version u8, model length u32, model FNV-1a
//! u32, plan-body FNV-1a u32, then the body: persistent bytes u32, working bytes u32, working
//! lower bound u32, tensor count u16, step count u16, input count u8, output count u8; the
//! tensors; input ids; output ids; the steps; the persistent image.

use core::mem::MaybeUninit;

use crate::error::{Error, Result};
#[cfg(feature = "alloc")]
use crate::graph::NONE;
use crate::graph::{Graph, Loc, TensorInfo};
use crate::interp::{InterpreterWith, Sizes};
use crate::ops::{
    Broadcast, Op, PadMode, QAdd, QAvgPool, QConcat, QLinear, QMul, QParams, ResizeCoord,
    ResizeMode, Step, Window,
};
use crate::ops::{MAX_QCONCAT_INPUTS, MAX_STEP_INPUTS};
use crate::quant::Requant;
use crate::tensor::{DType, Shape, MAX_RANK};

/// First bytes of a frozen plan.
pub const MAGIC: &[u8; 4] = b"SPLN";
/// Format version this build reads and writes.
pub const VERSION: u8 = 1;
const HEADER: usize = 4 + 1 + 4 + 4 + 4;

fn bad(what: &'static str) -> Error {
    Error::BadPlan { what }
}

/// 32-bit FNV-1a: binds a plan to its model and detects damage (not an authenticity check).
pub fn fnv1a(bytes: &[u8]) -> u32 {
    bytes.iter().fold(0x811c_9dc5u32, |h, &b| {
        (h ^ b as u32).wrapping_mul(0x0100_0193)
    })
}

/// Reads plan fields; every read is bounds-checked.
struct Reader<'b> {
    b: &'b [u8],
    at: usize,
}

impl<'b> Reader<'b> {
    fn take(&mut self, n: usize) -> Result<&'b [u8]> {
        let end = self.at.checked_add(n).ok_or(bad("truncated"))?;
        let s = self.b.get(self.at..end).ok_or(bad("truncated"))?;
        self.at = end;
        Ok(s)
    }
    fn u8(&mut self) -> Result<u8> {
        Ok(self.take(1)?[0])
    }
    fn u16(&mut self) -> Result<u16> {
        let s = self.take(2)?;
        Ok(u16::from_le_bytes([s[0], s[1]]))
    }
    fn u32(&mut self) -> Result<u32> {
        let s = self.take(4)?;
        Ok(u32::from_le_bytes([s[0], s[1], s[2], s[3]]))
    }
}

#[cfg(feature = "alloc")]
type Writer = alloc::vec::Vec<u8>;

/// A value with a fixed wire encoding.
trait Wire: Sized {
    #[cfg(feature = "alloc")]
    fn put(&self, w: &mut Writer);
    fn get(r: &mut Reader<'_>) -> Result<Self>;
}

impl Wire for usize {
    #[cfg(feature = "alloc")]
    fn put(&self, w: &mut Writer) {
        w.extend_from_slice(&(*self as u32).to_le_bytes());
    }
    fn get(r: &mut Reader<'_>) -> Result<Self> {
        Ok(r.u32()? as usize)
    }
}

impl Wire for u32 {
    #[cfg(feature = "alloc")]
    fn put(&self, w: &mut Writer) {
        w.extend_from_slice(&self.to_le_bytes());
    }
    fn get(r: &mut Reader<'_>) -> Result<Self> {
        r.u32()
    }
}

impl Wire for i32 {
    #[cfg(feature = "alloc")]
    fn put(&self, w: &mut Writer) {
        w.extend_from_slice(&self.to_le_bytes());
    }
    fn get(r: &mut Reader<'_>) -> Result<Self> {
        Ok(r.u32()? as i32)
    }
}

impl Wire for bool {
    #[cfg(feature = "alloc")]
    fn put(&self, w: &mut Writer) {
        w.push(*self as u8);
    }
    fn get(r: &mut Reader<'_>) -> Result<Self> {
        match r.u8()? {
            0 => Ok(false),
            1 => Ok(true),
            _ => Err(bad("flag other than 0 or 1")),
        }
    }
}

impl Wire for DType {
    #[cfg(feature = "alloc")]
    fn put(&self, w: &mut Writer) {
        w.push(self.onnx_code() as u8);
    }
    fn get(r: &mut Reader<'_>) -> Result<Self> {
        DType::from_onnx(r.u8()? as i64, "").map_err(|_| bad("element type"))
    }
}

impl Wire for Shape {
    #[cfg(feature = "alloc")]
    fn put(&self, w: &mut Writer) {
        w.push(self.rank() as u8);
        for d in self.dims() {
            d.put(w);
        }
    }
    fn get(r: &mut Reader<'_>) -> Result<Self> {
        let rank = r.u8()? as usize;
        if rank > MAX_RANK {
            return Err(bad("rank"));
        }
        let mut d = [0i64; MAX_RANK];
        for v in d.iter_mut().take(rank) {
            *v = r.u32()? as i64;
        }
        Shape::new(&d[..rank], "").map_err(|_| bad("shape"))
    }
}

impl<const K: usize> Wire for [u32; K] {
    #[cfg(feature = "alloc")]
    fn put(&self, w: &mut Writer) {
        for v in self {
            v.put(w);
        }
    }
    fn get(r: &mut Reader<'_>) -> Result<Self> {
        let mut a = [0u32; K];
        for v in a.iter_mut() {
            *v = r.u32()?;
        }
        Ok(a)
    }
}

impl<const K: usize> Wire for [(i32, Requant); K] {
    #[cfg(feature = "alloc")]
    fn put(&self, w: &mut Writer) {
        for (z, q) in self {
            z.put(w);
            q.put(w);
        }
    }
    fn get(r: &mut Reader<'_>) -> Result<Self> {
        let mut a = [(0, Requant::default()); K];
        for v in a.iter_mut() {
            *v = (i32::get(r)?, Requant::get(r)?);
        }
        Ok(a)
    }
}

/// `Wire` for a struct, field by field in declaration order.
macro_rules! wire_struct {
    ($t:ident { $($f:ident),* $(,)? }) => {
        impl Wire for $t {
            #[cfg(feature = "alloc")]
            fn put(&self, w: &mut Writer) {
                $( self.$f.put(w); )*
            }
            fn get(r: &mut Reader<'_>) -> Result<Self> {
                Ok($t { $( $f: Wire::get(r)?, )* })
            }
        }
    };
}

wire_struct!(Requant { multiplier, shift });
wire_struct!(Window {
    n,
    c,
    h,
    w,
    oc,
    oh,
    ow,
    kh,
    kw,
    sh,
    sw,
    pt,
    pl,
    dh,
    dw,
    group
});
wire_struct!(QParams {
    scales,
    zps,
    axis_len,
    inner
});
wire_struct!(Broadcast { out, a, b, same });
wire_struct!(QLinear {
    win,
    zx,
    zy,
    act_min,
    act_max,
    bias,
    requant,
    packed,
    packed_len,
    w_stride_oc,
    w_stride_k,
    unsigned,
});
wire_struct!(QAdd {
    bc,
    za,
    zb,
    zy,
    ma,
    mb,
    my,
    act_min,
    act_max,
    unsigned
});
wire_struct!(QMul {
    bc,
    za,
    zb,
    zy,
    m,
    act_min,
    act_max,
    unsigned
});
wire_struct!(QConcat {
    outer,
    inner,
    zy,
    inputs,
    unsigned
});
wire_struct!(QAvgPool {
    win,
    zx,
    zy,
    rq,
    unsigned
});

// Op tags.
const COPY: u8 = 0;
const MAXPOOL: u8 = 1;
const QUANTIZE: u8 = 2;
const DEQUANTIZE: u8 = 3;
const QCONV: u8 = 4;
const QADD: u8 = 5;
const QCONCAT: u8 = 6;
const QAVGPOOL: u8 = 7;
const CONCAT: u8 = 8;
const QLUT: u8 = 9;
const TRANSPOSE: u8 = 10;
const SLICE: u8 = 11;
const PAD: u8 = 12;
const TILE: u8 = 13;
const GATHER: u8 = 14;
const RESIZE: u8 = 15;
const QMUL: u8 = 16;

/// Per-axis small integers as u32 words (permutations, begins, steps).
#[cfg(feature = "alloc")]
fn put_axes<V: Copy>(w: &mut Writer, v: &[V; MAX_RANK], f: impl Fn(V) -> u32) {
    for &x in v {
        f(x).put(w);
    }
}

fn get_axes<V: Default + Copy>(
    r: &mut Reader<'_>,
    f: impl Fn(u32) -> Option<V>,
) -> Result<[V; MAX_RANK]> {
    let mut a = [V::default(); MAX_RANK];
    for v in a.iter_mut() {
        *v = f(r.u32()?).ok_or(bad("axis value"))?;
    }
    Ok(a)
}

#[cfg(feature = "alloc")]
fn put_op(op: &Op, w: &mut Writer) -> Result<()> {
    match op {
        Op::Copy => w.push(COPY),
        Op::MaxPool(win) => {
            w.push(MAXPOOL);
            win.put(w);
        }
        Op::Quantize { q, .. } | Op::Dequantize { q, .. } if q.from_inputs() => {
            return Err(bad(
                "a Quantize/Dequantize whose scale or zero point is computed at run time: \
                 frozen plans hold constant ones only; plan this model on the device",
            ))
        }
        Op::Quantize { q, out } => {
            w.push(QUANTIZE);
            q.put(w);
            out.put(w);
        }
        Op::Dequantize { q, input } => {
            w.push(DEQUANTIZE);
            q.put(w);
            input.put(w);
        }
        Op::QConv(p) => {
            if p.packed_len > 0 {
                return Err(bad(
                    "the plan packs weights for this CPU's kernels: plan with portable kernels \
                     (kernels::set_portable_only) before freezing",
                ));
            }
            w.push(QCONV);
            p.put(w);
        }
        Op::QAdd(p) => {
            w.push(QADD);
            p.put(w);
        }
        Op::QMul(p) => {
            w.push(QMUL);
            p.put(w);
        }
        Op::QConcat(p) => {
            w.push(QCONCAT);
            p.put(w);
        }
        Op::QAvgPool(p) => {
            w.push(QAVGPOOL);
            p.put(w);
        }
        Op::Concat { outer, inner } => {
            w.push(CONCAT);
            outer.put(w);
            inner.put(w);
        }
        Op::QLut {
            table,
            unsigned,
            name,
        } => {
            w.push(QLUT);
            table.put(w);
            unsigned.put(w);
            (*name as u32).put(w);
        }
        Op::Transpose { in_shape, perm } => {
            w.push(TRANSPOSE);
            in_shape.put(w);
            put_axes(w, perm, u32::from);
        }
        Op::Slice {
            in_shape,
            starts,
            steps,
        } => {
            w.push(SLICE);
            in_shape.put(w);
            starts.put(w);
            put_axes(w, steps, |v| v as u32);
        }
        Op::Pad {
            in_shape,
            begin,
            mode,
            value,
        } => {
            w.push(PAD);
            in_shape.put(w);
            put_axes(w, begin, |v| v as u32);
            w.push(*mode as u8);
            w.extend_from_slice(value);
        }
        Op::Tile { in_shape } => {
            w.push(TILE);
            in_shape.put(w);
        }
        Op::Resize {
            in_shape,
            scales,
            mode,
            coord,
        } => {
            w.push(RESIZE);
            in_shape.put(w);
            put_axes(w, scales, f32::to_bits);
            w.push(*mode as u8);
            w.push(*coord as u8);
        }
        Op::Gather {
            outer,
            axis_len,
            inner,
            indices,
            wide,
        } => {
            w.push(GATHER);
            outer.put(w);
            axis_len.put(w);
            inner.put(w);
            indices.put(w);
            wide.put(w);
        }
        _ => {
            return Err(bad(
                "a step frozen plans do not hold (a float step, index ops such as GatherElements, \
                 ScatterND or OneHot, Trilu, integer or logic ops): only int8 plans (int8 layers, Quantize/Dequantize, \
                 MaxPool, Concat, lookup tables, data movement, reshapes) are frozen; plan this \
                 model on the device",
            ))
        }
    }
    Ok(())
}

fn get_op(r: &mut Reader<'_>) -> Result<Op> {
    Ok(match r.u8()? {
        COPY => Op::Copy,
        MAXPOOL => Op::MaxPool(Window::get(r)?),
        QUANTIZE => Op::Quantize {
            q: QParams::get(r)?,
            out: DType::get(r)?,
        },
        DEQUANTIZE => Op::Dequantize {
            q: QParams::get(r)?,
            input: DType::get(r)?,
        },
        QCONV => Op::QConv(QLinear::get(r)?),
        QADD => Op::QAdd(QAdd::get(r)?),
        QMUL => Op::QMul(QMul::get(r)?),
        QCONCAT => Op::QConcat(QConcat::get(r)?),
        QAVGPOOL => Op::QAvgPool(QAvgPool::get(r)?),
        CONCAT => Op::Concat {
            outer: usize::get(r)?,
            inner: usize::get(r)?,
        },
        TRANSPOSE => Op::Transpose {
            in_shape: Shape::get(r)?,
            perm: get_axes(r, |v| u8::try_from(v).ok())?,
        },
        SLICE => Op::Slice {
            in_shape: Shape::get(r)?,
            starts: Wire::get(r)?,
            steps: get_axes(r, |v| Some(v as i32))?,
        },
        PAD => Op::Pad {
            in_shape: Shape::get(r)?,
            begin: get_axes(r, |v| Some(v as i32))?,
            mode: match r.u8()? {
                0 => PadMode::Constant,
                1 => PadMode::Reflect,
                2 => PadMode::Edge,
                3 => PadMode::Wrap,
                _ => return Err(bad("pad mode")),
            },
            value: {
                let b = r.take(8)?;
                [b[0], b[1], b[2], b[3], b[4], b[5], b[6], b[7]]
            },
        },
        TILE => Op::Tile {
            in_shape: Shape::get(r)?,
        },
        RESIZE => Op::Resize {
            in_shape: Shape::get(r)?,
            scales: get_axes(r, |v| Some(f32::from_bits(v)))?,
            mode: match r.u8()? {
                0 => ResizeMode::NearestRoundPreferFloor,
                1 => ResizeMode::NearestRoundPreferCeil,
                2 => ResizeMode::NearestFloor,
                3 => ResizeMode::NearestCeil,
                4 => ResizeMode::Linear,
                _ => return Err(bad("resize mode")),
            },
            coord: match r.u8()? {
                0 => ResizeCoord::HalfPixel,
                1 => ResizeCoord::PytorchHalfPixel,
                2 => ResizeCoord::AlignCorners,
                3 => ResizeCoord::Asymmetric,
                4 => ResizeCoord::TfHalfPixelForNn,
                _ => return Err(bad("resize coordinates")),
            },
        },
        GATHER => Op::Gather {
            outer: usize::get(r)?,
            axis_len: usize::get(r)?,
            inner: usize::get(r)?,
            indices: usize::get(r)?,
            wide: bool::get(r)?,
        },
        QLUT => Op::QLut {
            table: usize::get(r)?,
            unsigned: bool::get(r)?,
            name: u8::try_from(u32::get(r)?).map_err(|_| bad("lookup op name"))?,
        },
        _ => return Err(bad("unknown op")),
    })
}

// Tensor locations.
const LOC_NONE: u8 = 0;
const LOC_MODEL: u8 = 1;
const LOC_PERSIST: u8 = 2;
const LOC_WORK: u8 = 3;

/// Byte offset of `part` inside `whole`, when it lies there.
#[cfg(feature = "alloc")]
fn offset_in(whole: &[u8], part: &[u8]) -> Option<usize> {
    let (w, p) = (whole.as_ptr() as usize, part.as_ptr() as usize);
    (p >= w && p + part.len() <= w + whole.len()).then(|| p - w)
}

impl<'m, 'a, const T: usize, const N: usize> InterpreterWith<'m, 'a, T, N> {
    /// This plan as bytes for [`InterpreterWith::new_frozen_in`]. `model` must be the bytes the
    /// plan was made from. Refused for plans with float steps or weights packed for this CPU's
    /// optimized kernels (plan with [`crate::kernels::set_portable_only`] for a device).
    #[cfg(feature = "alloc")]
    pub fn freeze(&self, model: &[u8]) -> Result<alloc::vec::Vec<u8>> {
        let (g, steps) = (&self.g, &self.steps);
        // Only the tensors steps and the caller touch, renumbered densely.
        let mut ids = alloc::vec![NONE; g.tensors.len()];
        let mut order: alloc::vec::Vec<u16> = alloc::vec::Vec::new();
        let used = g
            .inputs
            .iter()
            .chain(g.outputs.iter())
            .chain(steps.iter().flat_map(|s| s.inputs().iter().chain([&s.out])));
        for &id in used {
            let slot = ids.get_mut(id as usize).ok_or(bad("tensor id"))?;
            if *slot == NONE {
                *slot = order.len() as u16;
                order.push(id);
            }
        }
        let new_id = |id: u16| ids[id as usize];
        let mut b = Writer::new();
        self.report.persistent.put(&mut b);
        self.report.working.put(&mut b);
        self.report.working_lower_bound.put(&mut b);
        b.extend_from_slice(&(order.len() as u16).to_le_bytes());
        b.extend_from_slice(&(steps.len() as u16).to_le_bytes());
        b.push(g.inputs.len() as u8);
        b.push(g.outputs.len() as u8);
        for &id in &order {
            let t = g.t(id);
            t.dtype.put(&mut b);
            t.shape.put(&mut b);
            let (tag, at) = match t.loc {
                Loc::None => (LOC_NONE, 0),
                Loc::Model(bytes) => (
                    LOC_MODEL,
                    offset_in(model, bytes).ok_or(bad("weights outside the model given"))?,
                ),
                Loc::Persist(at) => (LOC_PERSIST, at),
                Loc::Work(at) => (LOC_WORK, at),
            };
            b.push(tag);
            at.put(&mut b);
            let name = offset_in(model, t.name.as_bytes()).unwrap_or(0);
            let len = if name == 0 { 0 } else { t.name.len() };
            name.put(&mut b);
            len.put(&mut b);
        }
        for &id in g.inputs.iter().chain(g.outputs.iter()) {
            b.extend_from_slice(&new_id(id).to_le_bytes());
        }
        for s in steps.iter() {
            if s.round_f16 {
                return Err(bad("a half-arithmetic plan"));
            }
            b.extend_from_slice(&s.node.to_le_bytes());
            put_op(&s.op, &mut b)?;
            b.push(s.n_in);
            for &i in s.inputs() {
                b.extend_from_slice(&new_id(i).to_le_bytes());
            }
            b.extend_from_slice(&new_id(s.out).to_le_bytes());
            s.scratch.put(&mut b);
            s.scratch_at.put(&mut b);
        }
        b.extend_from_slice(self.persist);
        let mut out = Writer::with_capacity(HEADER + b.len());
        out.extend_from_slice(MAGIC);
        out.push(VERSION);
        out.extend_from_slice(&(model.len() as u32).to_le_bytes());
        out.extend_from_slice(&fnv1a(model).to_le_bytes());
        out.extend_from_slice(&fnv1a(&b).to_le_bytes());
        out.extend_from_slice(&b);
        Ok(out)
    }

    /// [`InterpreterWith::new_in`] from a frozen plan ([`InterpreterWith::freeze`]) instead of
    /// the model's graph: no ONNX parsing, fusion or planning on the device. `model` is the ONNX
    /// file the plan was made from (its weights are read in place); the plan's persistent
    /// bytes are copied into `arena`.
    #[inline(never)]
    pub fn new_frozen_in<'s>(
        slot: &'s mut MaybeUninit<Self>,
        model: &'m [u8],
        plan: &[u8],
        arena: &'a mut [u8],
    ) -> Result<&'s mut Self> {
        let me = Self::empty_in(slot);
        me.thaw(model, plan, arena)?;
        Ok(me)
    }

    /// [`InterpreterWith::new_frozen_in`] returning the interpreter by value (host tests).
    pub fn new_frozen(model: &'m [u8], plan: &[u8], arena: &'a mut [u8]) -> Result<Self> {
        let mut slot = MaybeUninit::uninit();
        Self::new_frozen_in(&mut slot, model, plan, arena)?;
        // SAFETY: `new_frozen_in` initialised every field before it returned Ok.
        #[allow(unsafe_code)]
        Ok(unsafe { slot.assume_init() })
    }

    fn thaw(&mut self, model: &'m [u8], plan: &[u8], arena: &'a mut [u8]) -> Result<()> {
        let mut r = Reader { b: plan, at: 0 };
        if r.take(4)? != MAGIC {
            return Err(bad("not a frozen plan (magic)"));
        }
        if r.u8()? != VERSION {
            return Err(bad("format version"));
        }
        if r.u32()? as usize != model.len() || r.u32()? != fnv1a(model) {
            return Err(bad("made for another model (length or hash differs)"));
        }
        let body_hash = r.u32()?;
        if fnv1a(plan.get(HEADER..).unwrap_or(&[])) != body_hash {
            return Err(bad("damaged (hash differs)"));
        }
        let sizes = Sizes {
            persist: usize::get(&mut r)?,
            work: usize::get(&mut r)?,
            lower_bound: usize::get(&mut r)?,
        };
        let (nt, ns) = (r.u16()? as usize, r.u16()? as usize);
        let (ni, no) = (r.u8()? as usize, r.u8()? as usize);
        if nt > T || ns > N {
            return Err(Error::CapacityExceeded {
                what: if nt > T { "tensors" } else { "steps" },
                capacity: if nt > T { T } else { N },
            });
        }
        let g = &mut self.g;
        for _ in 0..nt {
            let dtype = DType::get(&mut r)?;
            let shape = Shape::get(&mut r)?;
            let tag = r.u8()?;
            let at = usize::get(&mut r)?;
            let bytes = shape.numel().checked_mul(dtype.size()).ok_or(bad("size"))?;
            let end = at.checked_add(bytes).ok_or(bad("offset"))?;
            let loc = match tag {
                LOC_NONE => Loc::None,
                LOC_MODEL => Loc::Model(model.get(at..end).ok_or(bad("weights past the model"))?),
                LOC_PERSIST if end <= sizes.persist => Loc::Persist(at),
                LOC_WORK if end <= sizes.work => Loc::Work(at),
                _ => return Err(bad("tensor outside the arena")),
            };
            let (name_at, name_len) = (usize::get(&mut r)?, usize::get(&mut r)?);
            let name = name_at
                .checked_add(name_len)
                .and_then(|e| model.get(name_at..e))
                .and_then(|b| core::str::from_utf8(b).ok())
                .ok_or(bad("tensor name"))?;
            let mut t = TensorInfo::new(name);
            t.dtype = dtype;
            t.shape = shape;
            t.known = true;
            t.loc = loc;
            g.tensors.push(t).map_err(|_| bad("tensors"))?;
        }
        let id = |r: &mut Reader<'_>| -> Result<u16> {
            let i = r.u16()?;
            if (i as usize) < nt {
                Ok(i)
            } else {
                Err(bad("tensor id"))
            }
        };
        for k in 0..ni + no {
            let i = id(&mut r)?;
            let list = if k < ni {
                &mut g.inputs
            } else {
                &mut g.outputs
            };
            list.push(i)
                .map_err(|_| bad("too many inputs or outputs"))?;
            if g.tensors[i as usize].loc == Loc::None {
                return Err(bad("graph input or output without storage"));
            }
        }
        for _ in 0..ns {
            let node = r.u16()?;
            let op = get_op(&mut r)?;
            let n_in = r.u8()?;
            if n_in as usize > MAX_STEP_INPUTS {
                return Err(bad("step inputs"));
            }
            let mut ins = [0u16; MAX_STEP_INPUTS];
            for v in ins.iter_mut().take(n_in as usize) {
                *v = id(&mut r)?;
            }
            let s = Step {
                node,
                op,
                ins,
                n_in,
                out: id(&mut r)?,
                scratch: usize::get(&mut r)?,
                scratch_at: usize::get(&mut r)?,
                round_f16: false,
            };
            check_step(g, &s, &sizes)?;
            self.steps.push(s).map_err(|_| bad("steps"))?;
        }
        let image = r.take(sizes.persist)?;
        if r.at != plan.len() {
            return Err(bad("trailing bytes"));
        }
        let (persist, work) = sizes.split(arena)?;
        persist.copy_from_slice(image);
        check_constants(&self.steps, persist)?;
        self.persist = persist;
        self.work = work;
        self.report = sizes.report(self.steps.len());
        Ok(())
    }
}

/// A window whose loops cannot divide by zero or overflow.
fn window_ok(w: &Window) -> bool {
    let dims = [w.n, w.c, w.h, w.w, w.oc, w.oh, w.ow, w.kh, w.kw];
    let pos = [w.kh, w.kw, w.sh, w.sw, w.dh, w.dw, w.group];
    let prod = |v: &[usize]| {
        v.iter()
            .try_fold(1usize, |a, &d| a.checked_mul(d))
            .is_some_and(|n| n <= u32::MAX as usize)
    };
    pos.iter().all(|&v| v >= 1)
        && dims.iter().all(|&v| (1..=u32::MAX as usize).contains(&v))
        && w.c.is_multiple_of(w.group)
        && w.oc.is_multiple_of(w.group)
        && prod(&[w.n, w.c, w.h, w.w])
        && prod(&[w.n, w.oc, w.oh, w.ow])
        && prod(&[w.oc, w.c, w.kh, w.kw])
        && prod(&[w.oh, w.sh])
        && prod(&[w.ow, w.sw])
        && prod(&[w.kh, w.dh])
        && prod(&[w.kw, w.dw])
        && w.pt <= u32::MAX as usize
        && w.pl <= u32::MAX as usize
}

fn requant_ok(q: &Requant) -> bool {
    (-64..=64).contains(&q.shift)
}

/// The value range of an int8 or uint8 tensor.
fn q_range(unsigned: bool) -> core::ops::RangeInclusive<i32> {
    if unsigned {
        0..=255
    } else {
        -128..=127
    }
}

/// Zero points and the fused activation's clamp inside the tensors' integer range, as every
/// plan made from an ONNX file has them: the kernels' arithmetic is sized for that range.
fn zero_points_ok(op: &Op) -> bool {
    let clamp_ok = |lo: i32, hi: i32, u: bool| {
        let r = q_range(u);
        r.contains(&lo) && r.contains(&hi) && lo <= hi
    };
    match op {
        Op::QConv(p) => {
            let r = q_range(p.unsigned);
            r.contains(&p.zx) && r.contains(&p.zy) && clamp_ok(p.act_min, p.act_max, p.unsigned)
        }
        Op::QAdd(p) => {
            let r = q_range(p.unsigned);
            [p.za, p.zb, p.zy].iter().all(|z| r.contains(z))
                && clamp_ok(p.act_min, p.act_max, p.unsigned)
        }
        Op::QMul(p) => {
            let r = q_range(p.unsigned);
            [p.za, p.zb, p.zy].iter().all(|z| r.contains(z))
                && clamp_ok(p.act_min, p.act_max, p.unsigned)
        }
        Op::QConcat(p) => {
            let r = q_range(p.unsigned);
            r.contains(&p.zy) && p.inputs.iter().all(|(z, _)| r.contains(z))
        }
        Op::QAvgPool(p) => {
            let r = q_range(p.unsigned);
            r.contains(&p.zx) && r.contains(&p.zy)
        }
        _ => true,
    }
}

/// Checks one decoded step against its tensors and the arena, so the kernels' own size checks
/// see consistent geometry (the on-device planner guarantees this by construction).
fn check_step<const T: usize, const N: usize>(
    g: &Graph<'_, T, N>,
    s: &Step,
    sizes: &Sizes,
) -> Result<()> {
    let out = g.t(s.out);
    if !matches!(out.loc, Loc::Work(_)) {
        return Err(bad("step output outside the working arena"));
    }
    if s.inputs().iter().any(|&i| g.t(i).loc == Loc::None) {
        return Err(bad("step input without storage"));
    }
    if s.scratch_at
        .checked_add(s.scratch)
        .is_none_or(|e| e > sizes.work)
    {
        return Err(bad("scratch outside the arena"));
    }
    let elems = |i: usize| s.inputs().get(i).map(|&t| g.t(t).shape.numel());
    let y = out.shape.numel();
    // Pooling reads kh·kw inputs per output: bounded, so a plan cannot make one step run for
    // minutes (2^28 reads is far above any pooling layer a microcontroller runs).
    let pool_work_ok = |w: &Window| {
        [w.n, w.c, w.oh, w.ow, w.kh, w.kw]
            .iter()
            .try_fold(1usize, |a, &d| a.checked_mul(d))
            .is_some_and(|n| n <= 1 << 28)
    };
    // Concat loops over `outer` blocks of the output: a whole number of them, at least one
    // element each.
    let blocks_ok = |outer: usize, inner: usize| {
        outer > 0
            && inner > 0
            && outer
                .checked_mul(inner)
                .is_some_and(|b| b <= y && y.is_multiple_of(b))
    };
    let ok = match s.op {
        Op::Copy => s.n_in == 1,
        Op::MaxPool(w) => s.n_in == 1 && window_ok(&w) && pool_work_ok(&w),
        Op::Quantize { q, .. } | Op::Dequantize { q, .. } => {
            s.n_in == 1
                && q.inner > 0
                && q.axis_len > 0
                && q.axis_len.checked_mul(4).is_some_and(|b| {
                    q.scales.checked_add(b).is_some_and(|e| e <= sizes.persist)
                        && q.zps.checked_add(b).is_some_and(|e| e <= sizes.persist)
                })
        }
        Op::QConv(p) => {
            let w = g.t(s.ins[1]);
            s.n_in == 2
                && window_ok(&p.win)
                && p.packed_len == 0
                && matches!(w.dtype, DType::I8)
                // Every weight once per output channel, as the planner lays them out.
                && p.win.c / p.win.group * p.win.kh * p.win.kw * p.win.oc == w.shape.numel()
                && p.act_min <= p.act_max
                && p.win.oc.checked_mul(8).is_some_and(|b| {
                    p.bias
                        .checked_add(b / 2)
                        .is_some_and(|e| e <= sizes.persist)
                        && p.requant.checked_add(b).is_some_and(|e| e <= sizes.persist)
                })
                && (p.w_stride_oc <= u32::MAX as usize && p.w_stride_k <= u32::MAX as usize)
        }
        Op::QMul(p) => {
            let r = p.bc.out.rank();
            s.n_in == 2
                && y == p.bc.out.numel()
                && p.act_min <= p.act_max
                && requant_ok(&p.m)
                && (!p.bc.same || (elems(0) == Some(y) && elems(1) == Some(y)))
                && p.bc.a[..r]
                    .iter()
                    .chain(&p.bc.b[..r])
                    .all(|&v| v < (1 << 24))
        }
        Op::QAdd(p) => {
            let r = p.bc.out.rank();
            s.n_in == 2
                && y == p.bc.out.numel()
                && p.act_min <= p.act_max
                && [p.ma, p.mb, p.my].iter().all(requant_ok)
                && (!p.bc.same || (elems(0) == Some(y) && elems(1) == Some(y)))
                && p.bc.a[..r]
                    .iter()
                    .chain(&p.bc.b[..r])
                    .all(|&v| v < (1 << 24))
        }
        Op::QConcat(p) => {
            (s.n_in as usize) <= MAX_QCONCAT_INPUTS
                && p.inputs.iter().all(|(_, q)| requant_ok(q))
                && blocks_ok(p.outer, 1)
        }
        Op::QAvgPool(p) => {
            window_ok(&p.win) && pool_work_ok(&p.win) && requant_ok(&p.rq) && s.n_in == 1
        }
        Op::Concat { outer, inner } => blocks_ok(outer, inner),
        Op::Transpose { in_shape, perm } => {
            let r = in_shape.rank();
            let mut seen = [false; MAX_RANK];
            s.n_in == 1
                && elems(0) == Some(in_shape.numel())
                && y == in_shape.numel()
                && perm[..r].iter().all(|&a| {
                    let fresh = (a as usize) < r && !seen[a as usize];
                    if fresh {
                        seen[a as usize] = true;
                    }
                    fresh
                })
        }
        Op::Slice {
            in_shape,
            starts,
            steps,
        } => {
            // Every index the kernel reads lies inside the input: first and last per axis.
            let r = in_shape.rank();
            s.n_in == 1
                && elems(0) == Some(in_shape.numel())
                && out.shape.rank() == r
                && (y == 0
                    || (0..r).all(|a| {
                        let (dim, od) = (in_shape.dim(a) as i64, out.shape.dim(a) as i64);
                        let first = starts[a] as i64;
                        let last = first + (od - 1) * steps[a] as i64;
                        steps[a] != 0 && (0..dim).contains(&first) && (0..dim).contains(&last)
                    }))
        }
        Op::Pad { in_shape, .. } | Op::Tile { in_shape } | Op::Resize { in_shape, .. } => {
            s.n_in == 1 && elems(0) == Some(in_shape.numel()) && out.shape.rank() == in_shape.rank()
        }
        Op::Gather {
            outer,
            axis_len,
            inner,
            indices,
            wide,
        } => {
            let isz = if wide { DType::I64 } else { DType::I32 };
            s.n_in == 2
                && g.t(s.ins[1]).dtype == isz
                && elems(1) == Some(indices)
                && outer
                    .checked_mul(axis_len)
                    .and_then(|v| v.checked_mul(inner))
                    .is_some_and(|v| elems(0) == Some(v))
                && outer
                    .checked_mul(indices)
                    .and_then(|v| v.checked_mul(inner))
                    .is_some_and(|v| v == y)
        }
        Op::QLut { table, name, .. } => {
            s.n_in == 1
                && elems(0) == Some(y)
                && (name as usize) < crate::ops::LUT_OPS.len()
                && table.checked_add(256).is_some_and(|e| e <= sizes.persist)
        }
        _ => false,
    };
    if !ok {
        Err(bad("step geometry"))
    } else if !zero_points_ok(&s.op) {
        Err(bad(
            "zero point or activation clamp outside the int8/uint8 range",
        ))
    } else {
        Ok(())
    }
}

/// The requantization tables in the persistent image, checked like the step fields.
fn check_constants(steps: &[Step], persist: &[u8]) -> Result<()> {
    for s in steps {
        if let Op::QConv(p) = s.op {
            for oc in 0..p.win.oc {
                let at = p.requant + 8 * oc + 4;
                let b = persist.get(at..at + 4).ok_or(bad("requant table"))?;
                let shift = i32::from_le_bytes([b[0], b[1], b[2], b[3]]);
                if !(-64..=64).contains(&shift) {
                    return Err(bad("requant shift"));
                }
            }
        }
    }
    Ok(())
}

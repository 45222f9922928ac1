//! Portable reference kernels. Pure functions over slices whose lengths the plan guarantees;
//! each checks them once on entry and returns an error instead of indexing out of bounds.
//! The int8 kernels use integer arithmetic only.

use crate::error::{Error, Result};
use crate::ops::{
    Binary, Broadcast, LutSpec, PadMode, QAdd, QLinear, QMul, QParams, Reduce, ResizeCoord,
    ResizeMode, Unary, Window,
};
use crate::quant::RequantTable;
use crate::tensor::{DType, Shape, MAX_RANK};

/// The error of a kernel handed buffers whose sizes differ from its step's plan.
pub(crate) fn size_mismatch() -> Error {
    Error::BadIo {
        what: "buffer size does not match the plan",
    }
}

fn check(ok: bool) -> Result<()> {
    if ok {
        Ok(())
    } else {
        Err(size_mismatch())
    }
}

static PORTABLE_ONLY: core::sync::atomic::AtomicBool = core::sync::atomic::AtomicBool::new(false);

/// Restricts this process to the portable kernels (`true`) or lets it pick optimized ones by
/// CPU (`false`, the default). For side-by-side timing, and to size the arena of a device that
/// has no optimized kernels (they want repacked weights and more scratch). Results are the
/// same either way, and interpreters planned before a switch keep working after it.
pub fn set_portable_only(on: bool) {
    PORTABLE_ONLY.store(on, core::sync::atomic::Ordering::Relaxed);
}

/// Optimized kernels may be picked (see [`set_portable_only`]).
pub fn optimized_allowed() -> bool {
    !PORTABLE_ONLY.load(core::sync::atomic::Ordering::Relaxed)
}

/// Which optimized kernel set this build picks on this CPU ("avx2+vnni", "avx2", "neon+dotprod",
/// "arm-dsp" or "portable"): the results are the same either way, only the speed differs.
pub fn kernel_set() -> &'static str {
    #[cfg(all(feature = "std", target_arch = "x86_64"))]
    if crate::simd::has_avx2() {
        return if crate::int8_avx2::has_vnni() {
            "avx2+vnni"
        } else {
            "avx2"
        };
    }
    #[cfg(all(feature = "std", target_arch = "aarch64"))]
    if crate::int8_neon::has_dotprod() {
        return "neon+dotprod";
    }
    #[cfg(all(target_arch = "arm", feature = "arm-dsp"))]
    if optimized_allowed() {
        return "arm-dsp";
    }
    "portable"
}

/// An 8-bit quantized element type.
pub trait Q8: Copy + bytemuck::Pod {
    /// The type's value range.
    const RANGE: (i32, i32);
    /// Widens to i32.
    fn get(self) -> i32;
    /// Narrows an already clamped i32.
    fn put(v: i32) -> Self;
    /// A 0..256 index of the value (its bit pattern), for lookup tables.
    #[inline]
    fn index(self) -> usize {
        bytemuck::cast::<Self, u8>(self) as usize
    }
    /// The value whose bit pattern is `i` (inverse of [`Q8::index`]).
    #[inline]
    fn from_index(i: usize) -> i32 {
        bytemuck::cast::<u8, Self>(i as u8).get()
    }
}

impl Q8 for i8 {
    const RANGE: (i32, i32) = (-128, 127);
    #[inline]
    fn get(self) -> i32 {
        self as i32
    }
    #[inline]
    fn put(v: i32) -> Self {
        v as i8
    }
}

impl Q8 for u8 {
    const RANGE: (i32, i32) = (0, 255);
    #[inline]
    fn get(self) -> i32 {
        self as i32
    }
    #[inline]
    fn put(v: i32) -> Self {
        v as u8
    }
}

#[inline]
fn exp(x: f32) -> f32 {
    libm_exp(x)
}

/// `exp` without libm: range reduction to 2^k·e^r with a degree-7 polynomial (< 2 ulp on the
/// range softmax and sigmoid use).
#[inline]
fn libm_exp(x: f32) -> f32 {
    if x.is_nan() {
        return x;
    }
    if x > 88.72 {
        return f32::INFINITY;
    }
    if x < -103.9 {
        return 0.0;
    }
    exp_f64(x as f64) as f32
}

/// e^x in f64 for x in [-104, 89] (the range f32 results need): range reduction to 2^k·e^r.
#[inline(always)]
fn exp_f64(xd: f64) -> f64 {
    // 1.5·2^52: adding and subtracting it rounds an f64 to an integer (ties to even).
    const ROUND: f64 = 6_755_399_441_055_744.0;
    let k = (xd * core::f64::consts::LOG2_E + ROUND) - ROUND;
    let r = xd - k * core::f64::consts::LN_2;
    // Taylor series to r^7 (|r| ≤ ln2/2: truncation below 6e-9 relative, far under an f32
    // ulp), Horner form.
    const INV_FACT: [f64; 8] = [
        1.0,
        1.0,
        1.0 / 2.0,
        1.0 / 6.0,
        1.0 / 24.0,
        1.0 / 120.0,
        1.0 / 720.0,
        1.0 / 5040.0,
    ];
    let mut p = INV_FACT[7];
    for &c in INV_FACT[..7].iter().rev() {
        p = p * r + c;
    }
    // 2^k for k in [-150, 128] is a normal f64.
    let scale = f64::from_bits(((1023 + k as i64) as u64) << 52);
    p * scale
}

/// Correctly rounded f32 square root without libm (the hazard predictor's heading uses it too).
pub(crate) fn sqrt(x: f32) -> f32 {
    if x < 0.0 || x.is_nan() {
        return f32::NAN;
    }
    if x == 0.0 || x.is_infinite() {
        return x;
    }
    // Newton iterations from a bit-level estimate, in f64 for a correctly rounded f32 result.
    let xd = x as f64;
    let mut g = f64::from_bits((xd.to_bits() >> 1) + (1023u64 << 51));
    for _ in 0..6 {
        g = 0.5 * (g + xd / g);
    }
    g as f32
}

#[inline]
fn tanh(x: f32) -> f32 {
    if x > 10.0 {
        return 1.0;
    }
    if x < -10.0 {
        return -1.0;
    }
    if x.abs() < 1e-4 {
        return x;
    }
    // In f64 throughout: e − 1 keeps its precision for small x.
    let e = exp_f64(2.0 * x as f64);
    ((e - 1.0) / (e + 1.0)) as f32
}

/// Element-wise unary op.
pub fn unary(u: Unary, x: &[f32], y: &mut [f32]) -> Result<()> {
    check(x.len() == y.len())?;
    for (o, &v) in y.iter_mut().zip(x) {
        *o = unary_one(u, v);
    }
    Ok(())
}

/// One element of a unary op (also the activations of the recurrent cells).
#[inline(always)]
pub fn unary_one(u: Unary, v: f32) -> f32 {
    match u {
        Unary::Relu => {
            if v > 0.0 {
                v
            } else {
                0.0
            }
        }
        Unary::Sigmoid => {
            if v >= 0.0 {
                1.0 / (1.0 + exp(-v))
            } else {
                let e = exp(v);
                e / (1.0 + e)
            }
        }
        Unary::Tanh => tanh(v),
        Unary::Abs => v.abs(),
        Unary::Neg => -v,
        Unary::Exp => exp(v),
        Unary::Sqrt => sqrt(v),
        Unary::LeakyRelu(a) => {
            if v >= 0.0 {
                v
            } else {
                a * v
            }
        }
        Unary::RoundF16 => half::f16::from_f32(v).to_f32(),
        Unary::HardSigmoid(a, b) => (a * v + b).clamp(0.0, 1.0),
        Unary::HardSwish => v * (v / 6.0 + 0.5).clamp(0.0, 1.0),
        Unary::Elu(a) => {
            if v > 0.0 {
                v
            } else {
                a * libm::expm1f(v)
            }
        }
        Unary::Celu(a) => {
            if v > 0.0 {
                v
            } else {
                a * libm::expm1f(v / a)
            }
        }
        Unary::Selu(a, g) => {
            if v > 0.0 {
                g * v
            } else {
                g * a * libm::expm1f(v)
            }
        }
        // ln(1 + eˣ) = max(x, 0) + ln(1 + e^−|x|): no overflow for large x.
        Unary::Softplus => v.max(0.0) + libm::log1pf(exp(-v.abs())),
        Unary::Softsign => v / (1.0 + v.abs()),
        Unary::ThresholdedRelu(a) => {
            if v > a {
                v
            } else {
                0.0
            }
        }
        Unary::Reciprocal => 1.0 / v,
        Unary::Floor => libm::floorf(v),
        Unary::Ceil => libm::ceilf(v),
        Unary::Round => libm::rintf(v),
        Unary::Sign => {
            if v > 0.0 {
                1.0
            } else if v < 0.0 {
                -1.0
            } else {
                v
            }
        }
        Unary::Log => libm::logf(v),
        Unary::Erf => libm::erff(v),
        #[cfg(feature = "float-ops")]
        Unary::Sin => libm::sinf(v),
        #[cfg(feature = "float-ops")]
        Unary::Cos => libm::cosf(v),
        #[cfg(feature = "float-ops")]
        Unary::Tan => libm::tanf(v),
        #[cfg(feature = "float-ops")]
        Unary::Asin => libm::asinf(v),
        #[cfg(feature = "float-ops")]
        Unary::Acos => libm::acosf(v),
        #[cfg(feature = "float-ops")]
        Unary::Atan => libm::atanf(v),
        #[cfg(feature = "float-ops")]
        Unary::Sinh => libm::sinhf(v),
        #[cfg(feature = "float-ops")]
        Unary::Cosh => libm::coshf(v),
        #[cfg(feature = "float-ops")]
        Unary::Asinh => libm::asinhf(v),
        #[cfg(feature = "float-ops")]
        Unary::Acosh => libm::acoshf(v),
        #[cfg(feature = "float-ops")]
        Unary::Atanh => libm::atanhf(v),
        #[cfg(feature = "float-ops")]
        Unary::Shrink(l, b) => {
            if v < -l {
                v + b
            } else if v > l {
                v - b
            } else {
                0.0
            }
        }
        #[cfg(feature = "float-ops")]
        Unary::Mish => v * tanh(v.max(0.0) + libm::log1pf(exp(-v.abs()))),
        #[cfg(feature = "float-ops")]
        Unary::Gelu(false) => 0.5 * v * (1.0 + libm::erff(v * core::f32::consts::FRAC_1_SQRT_2)),
        #[cfg(feature = "float-ops")]
        Unary::Gelu(true) => {
            // √(2/π) · (x + 0.044715 x³)
            let k = 0.797_884_6 * (v + 0.044_715 * v * v * v);
            0.5 * v * (1.0 + tanh(k))
        }
        Unary::Clip(lo, hi) => {
            // min(max(v, lo), hi): `hi` everywhere when lo > hi, as ONNX specifies; NaN stays.
            let v = if v < lo { lo } else { v };
            if v > hi {
                hi
            } else {
                v
            }
        }
        // Only planned with float-ops (see LUT_OPS_WITHOUT_FLOAT_OPS).
        #[cfg(not(feature = "float-ops"))]
        _ => f32::NAN,
    }
}

/// Walks a broadcast, calling `f(out_index, a_index, b_index)`.
pub fn for_each_broadcast(bc: &Broadcast, mut f: impl FnMut(usize, usize, usize)) {
    let n = bc.out.numel();
    if bc.same {
        (0..n).for_each(|i| f(i, i, i));
        return;
    }
    let r = bc.out.rank();
    let mut idx = [0usize; MAX_RANK];
    let (mut ia, mut ib) = (0usize, 0usize);
    for o in 0..n {
        f(o, ia, ib);
        // Increment the multi-index from the last axis.
        let mut ax = r;
        while ax > 0 {
            ax -= 1;
            idx[ax] += 1;
            ia += bc.a[ax] as usize;
            ib += bc.b[ax] as usize;
            if idx[ax] < bc.out.dim(ax) {
                break;
            }
            ia -= bc.a[ax] as usize * idx[ax];
            ib -= bc.b[ax] as usize * idx[ax];
            idx[ax] = 0;
        }
    }
}

fn broadcast_fits(bc: &Broadcast, a: usize, b: usize, y: usize) -> bool {
    let r = bc.out.rank();
    let last = |s: &[u32; MAX_RANK]| {
        (0..r)
            .map(|i| s[i] as usize * bc.out.dim(i).saturating_sub(1))
            .sum::<usize>()
    };
    y == bc.out.numel() && (bc.out.numel() == 0 || (last(&bc.a) < a && last(&bc.b) < b))
}

/// Element `i` of little-endian bytes of type `dtype`, widened exactly (`None` past the end,
/// or for float16, which is computed as float32).
pub(crate) fn load_num(dtype: DType, b: &[u8], i: usize) -> Option<Num> {
    let at = |n: usize| b.get(i * n..i * n + n);
    Some(match dtype {
        DType::F32 => Num::F(f32::from_le_bytes(at(4)?.try_into().ok()?)),
        DType::I64 => Num::I(i64::from_le_bytes(at(8)?.try_into().ok()?)),
        DType::I32 => Num::I(i32::from_le_bytes(at(4)?.try_into().ok()?).into()),
        DType::I8 => Num::I((*b.get(i)? as i8).into()),
        DType::U8 | DType::Bool => Num::I((*b.get(i)?).into()),
        DType::F16 => return None,
    })
}

/// A numeric element: integers exactly as i64, floats as f32 (comparisons, casts).
#[derive(Debug, Clone, Copy, PartialEq, PartialOrd)]
pub(crate) enum Num {
    /// A float32 value.
    F(f32),
    /// An integer or bool value.
    I(i64),
}

/// `Cast` between numeric types (`to` may be float16: stored as float32 rounded to f16).
/// Float to integer truncates toward zero and saturates at the target's range, NaN giving 0
/// (Rust's `as`; ONNX leaves out-of-range values undefined); integer to narrower integer wraps,
/// as numpy and onnxruntime do; to bool is `!= 0` (NaN is true).
pub fn convert(from: DType, to: DType, x: &[u8], y: &mut [u8]) -> Result<()> {
    let (fs, ts) = (from.computed().size(), to.computed().size());
    let n = x.len() / fs;
    check(x.len() == n * fs && y.len() == n * ts && from != DType::F16)?;
    for (i, out) in y.chunks_exact_mut(ts).enumerate() {
        let v = load_num(from, x, i).ok_or(Error::BadIo {
            what: "buffer size does not match the plan",
        })?;
        let f = |v: Num| match v {
            Num::F(f) => f,
            Num::I(i) => i as f32,
        };
        let int = |v: Num| match v {
            Num::F(f) => f as i64,
            Num::I(i) => i,
        };
        match to {
            DType::F32 => out.copy_from_slice(&f(v).to_le_bytes()),
            DType::F16 => out.copy_from_slice(&half::f16::from_f32(f(v)).to_f32().to_le_bytes()),
            DType::I64 => out.copy_from_slice(&int(v).to_le_bytes()),
            DType::I32 => out.copy_from_slice(
                &match v {
                    Num::F(f) => f as i32,
                    Num::I(i) => i as i32,
                }
                .to_le_bytes(),
            ),
            DType::I8 => {
                out[0] = match v {
                    Num::F(f) => f as i8 as u8,
                    Num::I(i) => i as i8 as u8,
                }
            }
            DType::U8 => {
                out[0] = match v {
                    Num::F(f) => f as u8,
                    Num::I(i) => i as u8,
                }
            }
            DType::Bool => out[0] = (v != Num::F(0.0) && v != Num::I(0)) as u8,
        }
    }
    Ok(())
}

/// Strides (in elements) of a tensor of shape `s` read at every index of `out` (0 along the
/// axes it is broadcast over); `None` when `s` does not broadcast to `out`.
pub fn strides_into(s: &Shape, out: &Shape) -> Option<[u32; MAX_RANK]> {
    let (r, k) = (out.rank(), s.rank());
    if k > r {
        return None;
    }
    let mut st = [0u32; MAX_RANK];
    let mut stride = 1u32;
    for i in (0..r).rev() {
        let d = if i + k >= r { s.dim(i + k - r) } else { 1 };
        if d == out.dim(i) && d != 1 {
            st[i] = stride;
        } else if d != 1 {
            return None;
        }
        stride = stride.checked_mul(d as u32)?;
    }
    Some(st)
}

/// One input of a Max/Min/Sum/Mean with more than two inputs: `y = x` broadcast (`first`),
/// else `y = y ⋄ x` element-wise (Sum and Mean add; Mean divides by the count afterwards in
/// [`mean_finish`]).
pub fn variadic_step(
    k: Binary,
    first: bool,
    out: &Shape,
    shape: &Shape,
    x: &[f32],
    y: &mut [f32],
) -> Result<()> {
    let st = strides_into(shape, out).ok_or(Error::BadIo {
        what: "input shapes do not broadcast",
    })?;
    let bc = Broadcast {
        out: *out,
        a: [0; MAX_RANK],
        b: st,
        same: false,
    };
    check(broadcast_fits(&bc, 1, x.len(), y.len()))?;
    for_each_broadcast(&bc, |o, _, j| {
        let (u, v) = (y[o], x[j]);
        y[o] = match k {
            _ if first => v,
            Binary::Max if u.is_nan() || v.is_nan() => f32::NAN,
            Binary::Max => u.max(v),
            Binary::Min if u.is_nan() || v.is_nan() => f32::NAN,
            Binary::Min => u.min(v),
            _ => u + v,
        };
    });
    Ok(())
}

/// The last step of a Mean of `n` inputs: the sum divided by `n`.
pub fn mean_finish(n: usize, y: &mut [f32]) {
    let inv = n as f32;
    y.iter_mut().for_each(|v| *v /= inv);
}

/// `Hardmax` along an axis of length `len` with `inner` elements after it: 1.0 at the first
/// maximum (NaN counts as the largest, as in `arg_extreme`), 0.0 elsewhere.
pub fn hardmax(outer: usize, len: usize, inner: usize, x: &[f32], y: &mut [f32]) -> Result<()> {
    let n = outer.checked_mul(len).and_then(|v| v.checked_mul(inner));
    check(n == Some(x.len()) && y.len() == x.len())?;
    y.fill(0.0);
    for o in 0..outer {
        for i in 0..inner {
            let at = |k: usize| (o * len + k) * inner + i;
            let mut best = 0;
            for k in 1..len {
                let (v, b) = (x[at(k)], x[at(best)]);
                if !b.is_nan() && (v > b || v.is_nan()) {
                    best = k;
                }
            }
            if len > 0 {
                y[at(best)] = 1.0;
            }
        }
    }
    Ok(())
}

/// Element-wise binary op with broadcasting.
pub fn binary(k: Binary, bc: &Broadcast, a: &[f32], b: &[f32], y: &mut [f32]) -> Result<()> {
    check(broadcast_fits(bc, a.len(), b.len(), y.len()))?;
    for_each_broadcast(bc, |o, i, j| {
        let (u, v) = (a[i], b[j]);
        y[o] = match k {
            Binary::Add => u + v,
            Binary::Sub => u - v,
            Binary::Mul => u * v,
            Binary::Div => u / v,
            Binary::Pow => libm::powf(u, v),
            Binary::Max if u.is_nan() || v.is_nan() => f32::NAN,
            Binary::Max => u.max(v),
            Binary::Min if u.is_nan() || v.is_nan() => f32::NAN,
            Binary::Min => u.min(v),
            Binary::Mean => (u + v) / 2.0,
            Binary::PRelu => {
                if u < 0.0 {
                    v * u
                } else {
                    u
                }
            }
            Binary::Fmod => libm::fmodf(u, v),
            // Planned only for integers (ONNX requires fmod = 1 on floats); kept total here.
            Binary::Mod => {
                let r = libm::fmodf(u, v);
                if r != 0.0 && (r < 0.0) != (v < 0.0) {
                    r + v
                } else {
                    r
                }
            }
        };
    });
    Ok(())
}

fn window_sizes(w: &Window) -> (usize, usize, usize) {
    (
        w.n * w.c * w.h * w.w,
        w.oc * (w.c / w.group.max(1)) * w.kh * w.kw,
        w.n * w.oc * w.oh * w.ow,
    )
}

/// Float transposed convolution (NCHW, weights `C × OC/group × KH × KW`), as the scatter of
/// every input element through the kernel: `y[oc, iy·sh + ky·dh − pt, ix·sw + kx·dw − pl] +=
/// x[ic, iy, ix] · w[ic, oc mod (OC/group), ky, kx]`, starting from the bias.
pub fn conv_transpose_f32(
    p: &Window,
    x: &[f32],
    w: &[f32],
    b: Option<&[f32]>,
    y: &mut [f32],
) -> Result<()> {
    let g = p.group.max(1);
    let (cpg, opg) = (p.c / g, p.oc / g);
    check(
        p.c == cpg * g
            && p.oc == opg * g
            && x.len() == p.n * p.c * p.h * p.w
            && w.len() == p.c * opg * p.kh * p.kw
            && y.len() == p.n * p.oc * p.oh * p.ow
            && b.is_none_or(|b| b.len() == p.oc),
    )?;
    for n in 0..p.n {
        for oc in 0..p.oc {
            let bias = b.map_or(0.0, |b| b[oc]);
            let at = (n * p.oc + oc) * p.oh * p.ow;
            y[at..at + p.oh * p.ow].fill(bias);
        }
        for c in 0..p.c {
            let grp = c / cpg.max(1);
            for iy in 0..p.h {
                for ix in 0..p.w {
                    let v = x[((n * p.c + c) * p.h + iy) * p.w + ix];
                    for og in 0..opg {
                        let oc = grp * opg + og;
                        let wbase = (c * opg + og) * p.kh * p.kw;
                        let ybase = (n * p.oc + oc) * p.oh * p.ow;
                        for ky in 0..p.kh {
                            let oy = (iy * p.sh + ky * p.dh) as isize - p.pt as isize;
                            if oy < 0 || oy as usize >= p.oh {
                                continue;
                            }
                            for kx in 0..p.kw {
                                let ox = (ix * p.sw + kx * p.dw) as isize - p.pl as isize;
                                if ox < 0 || ox as usize >= p.ow {
                                    continue;
                                }
                                y[ybase + oy as usize * p.ow + ox as usize] +=
                                    v * w[wbase + ky * p.kw + kx];
                            }
                        }
                    }
                }
            }
        }
    }
    Ok(())
}

/// Float convolution (direct, NCHW).
pub fn conv_f32(p: &Window, x: &[f32], w: &[f32], b: Option<&[f32]>, y: &mut [f32]) -> Result<()> {
    let (nx, nw, ny) = window_sizes(p);
    check(x.len() == nx && w.len() == nw && y.len() == ny && b.is_none_or(|b| b.len() == p.oc))?;
    let cpg = p.c / p.group;
    let opg = p.oc / p.group;
    for n in 0..p.n {
        for oc in 0..p.oc {
            let g = oc / opg;
            let bias = b.map_or(0.0, |b| b[oc]);
            for oy in 0..p.oh {
                for ox in 0..p.ow {
                    let mut acc = bias;
                    for ic in 0..cpg {
                        let c = g * cpg + ic;
                        let xbase = (n * p.c + c) * p.h * p.w;
                        let wbase = (oc * cpg + ic) * p.kh * p.kw;
                        for ky in 0..p.kh {
                            let iy = (oy * p.sh + ky * p.dh) as isize - p.pt as isize;
                            for kx in 0..p.kw {
                                let ix = (ox * p.sw + kx * p.dw) as isize - p.pl as isize;
                                // Padding is an explicit 0.0 so the optimized kernel, which
                                // gathers padded patches, adds exactly the same terms.
                                let xv =
                                    if iy < 0 || iy >= p.h as isize || ix < 0 || ix >= p.w as isize
                                    {
                                        0.0
                                    } else {
                                        x[xbase + iy as usize * p.w + ix as usize]
                                    };
                                acc += xv * w[wbase + ky * p.kw + kx];
                            }
                        }
                    }
                    y[((n * p.oc + oc) * p.oh + oy) * p.ow + ox] = acc;
                }
            }
        }
    }
    Ok(())
}

/// Scratch bytes [`conv_f32_rows`] needs: one output row of patches.
pub fn conv_f32_scratch_bytes(p: &Window) -> usize {
    p.c / p.group.max(1) * p.kh * p.kw * p.ow * 4
}

/// Optimized float convolution: gathers each output row's patches (k-major), then adds
/// `w[oc,k] · patch[k][·]` across the row — vectorizable, and the same terms in the same order
/// per output as [`conv_f32`], so the results are bit-identical (tested).
pub fn conv_f32_rows(
    p: &Window,
    x: &[f32],
    w: &[f32],
    b: Option<&[f32]>,
    y: &mut [f32],
    scratch: &mut [u8],
) -> Result<()> {
    #[cfg(all(feature = "std", target_arch = "x86_64"))]
    if crate::simd::has_avx2() {
        return crate::simd::conv_f32_rows_avx2(p, x, w, b, y, scratch);
    }
    conv_f32_rows_portable(p, x, w, b, y, scratch)
}

/// The portable body of [`conv_f32_rows`].
#[doc(hidden)]
#[inline(always)]
pub fn conv_f32_rows_portable(
    p: &Window,
    x: &[f32],
    w: &[f32],
    b: Option<&[f32]>,
    y: &mut [f32],
    scratch: &mut [u8],
) -> Result<()> {
    let (nx, nw, ny) = window_sizes(p);
    let cpg = p.c / p.group;
    let opg = p.oc / p.group;
    let kk = cpg * p.kh * p.kw;
    let ow = p.ow;
    check(
        x.len() == nx
            && w.len() == nw
            && y.len() == ny
            && b.is_none_or(|b| b.len() == p.oc)
            && scratch.len() >= kk * ow * 4,
    )?;
    let cols: &mut [f32] =
        bytemuck::try_cast_slice_mut(&mut scratch[..kk * ow * 4]).map_err(|_| Error::BadIo {
            what: "misaligned scratch",
        })?;
    for n in 0..p.n {
        for g in 0..p.group {
            for oy in 0..p.oh {
                let mut k = 0;
                for ic in 0..cpg {
                    let xbase = (n * p.c + g * cpg + ic) * p.h * p.w;
                    for ky in 0..p.kh {
                        let iy = (oy * p.sh + ky * p.dh) as isize - p.pt as isize;
                        let row_ok = iy >= 0 && iy < p.h as isize;
                        for kx in 0..p.kw {
                            let dst = &mut cols[k * ow..(k + 1) * ow];
                            for (ox, d) in dst.iter_mut().enumerate() {
                                let ix = (ox * p.sw + kx * p.dw) as isize - p.pl as isize;
                                *d = if row_ok && ix >= 0 && ix < p.w as isize {
                                    x[xbase + iy as usize * p.w + ix as usize]
                                } else {
                                    0.0
                                };
                            }
                            k += 1;
                        }
                    }
                }
                let rows = ConvRows {
                    w,
                    b,
                    cols,
                    kk,
                    ow,
                    // y index of (oc, this output row, column 0) is base + oc·stride.
                    base: (n * p.oc * p.oh + oy) * ow,
                    stride: p.oh * ow,
                };
                let (mut oc, end) = (g * opg, (g + 1) * opg);
                // Register tiles of 4 channels (then 1) × 16, 8, 4, then 1 columns.
                while oc + 4 <= end {
                    rows.tiles::<4>(oc, y)?;
                    oc += 4;
                }
                for r in oc..end {
                    rows.tiles::<1>(r, y)?;
                }
            }
        }
    }
    Ok(())
}

/// One output row of a grouped convolution as a product: `y[oc][x] = bias[oc] +
/// Σ_k w[oc·kk + k] · cols[k·ow + x]`, each sum taken in k order from the bias (as
/// [`conv_f32`] takes it), so every blocking below gives the same bits. The sums stay in
/// registers over all of k; accumulating across a row in memory instead reloads and stores
/// the row for every k.
struct ConvRows<'a> {
    w: &'a [f32],
    b: Option<&'a [f32]>,
    cols: &'a [f32],
    kk: usize,
    ow: usize,
    base: usize,
    stride: usize,
}

impl ConvRows<'_> {
    /// Channels `oc..oc + R`, columns from `x0` in blocks of `W`. Returns the first column
    /// it left.
    #[inline(always)]
    fn tile<const R: usize, const W: usize>(
        &self,
        oc: usize,
        mut x0: usize,
        y: &mut [f32],
    ) -> Result<usize> {
        let bad = || Error::BadIo {
            what: "convolution tile outside its buffers",
        };
        while x0 + W <= self.ow {
            let mut acc = [[0f32; W]; R];
            for (r, a) in acc.iter_mut().enumerate() {
                *a = [self.b.map_or(0.0, |b| b[oc + r]); W];
            }
            for k in 0..self.kk {
                let at = k * self.ow + x0;
                let c: &[f32; W] = self
                    .cols
                    .get(at..at + W)
                    .and_then(|s| s.try_into().ok())
                    .ok_or_else(bad)?;
                for (r, a) in acc.iter_mut().enumerate() {
                    let wv = self.w[(oc + r) * self.kk + k];
                    for (v, &cv) in a.iter_mut().zip(c) {
                        *v += cv * wv;
                    }
                }
            }
            for (r, a) in acc.iter().enumerate() {
                let at = self.base + (oc + r) * self.stride + x0;
                y.get_mut(at..at + W).ok_or_else(bad)?.copy_from_slice(a);
            }
            x0 += W;
        }
        Ok(x0)
    }

    /// Channels `oc..oc + R`, the whole row: tiles of 16, 8, 4, then 1 columns where vector
    /// registers hold them (x86-64, aarch64); of 4, then 1 on microcontrollers, whose 32
    /// single-precision registers a 4 × 16 tile would overflow (and whose flash the extra
    /// tile shapes would cost).
    #[inline(always)]
    fn tiles<const R: usize>(&self, oc: usize, y: &mut [f32]) -> Result<()> {
        #[cfg(any(target_arch = "x86_64", target_arch = "aarch64"))]
        let x0 = {
            let x0 = self.tile::<R, 16>(oc, 0, y)?;
            self.tile::<R, 8>(oc, x0, y)?
        };
        #[cfg(not(any(target_arch = "x86_64", target_arch = "aarch64")))]
        let x0 = 0;
        let x0 = self.tile::<R, 4>(oc, x0, y)?;
        self.tile::<R, 1>(oc, x0, y)?;
        Ok(())
    }
}

/// Columns from `j0` of one Gemm output row in blocks of `W`: `y[j] = Σ_l a[l] · b[l·n + j]`
/// summed in registers in l order. Returns the first column it left.
#[inline(always)]
fn gemm_tile<const W: usize>(
    arow: &[f32],
    b: &[f32],
    n: usize,
    mut j0: usize,
    yrow: &mut [f32],
) -> Result<usize> {
    let bad = || Error::BadIo {
        what: "gemm tile outside its buffers",
    };
    while j0 + W <= n {
        let mut acc = [0f32; W];
        for (l, &av) in arow.iter().enumerate() {
            let at = l * n + j0;
            let bl: &[f32; W] = b
                .get(at..at + W)
                .and_then(|s| s.try_into().ok())
                .ok_or_else(bad)?;
            for (v, &bv) in acc.iter_mut().zip(bl) {
                *v += av * bv;
            }
        }
        yrow.get_mut(j0..j0 + W)
            .ok_or_else(bad)?
            .copy_from_slice(&acc);
        j0 += W;
    }
    Ok(j0)
}

/// Optimized Gemm for `transA = transB = 0` (the exporter's weights are transposed once at plan
/// time to get here): each output row accumulates `a[i,l] · b[l,·]` across the row, then
/// `beta·C + alpha·acc` — the same operations in the same order as [`gemm_f32`].
#[allow(clippy::too_many_arguments)]
pub fn gemm_f32_rows(
    m: usize,
    k: usize,
    n: usize,
    alpha: f32,
    beta: f32,
    c: Option<(&Broadcast, &[f32])>,
    a: &[f32],
    b: &[f32],
    y: &mut [f32],
) -> Result<()> {
    #[cfg(all(feature = "std", target_arch = "x86_64"))]
    if crate::simd::has_avx2() {
        return crate::simd::gemm_f32_rows_avx2(m, k, n, alpha, beta, c, a, b, y);
    }
    gemm_f32_rows_portable(m, k, n, alpha, beta, c, a, b, y)
}

/// The portable body of [`gemm_f32_rows`].
#[doc(hidden)]
#[inline(always)]
#[allow(clippy::too_many_arguments)]
pub fn gemm_f32_rows_portable(
    m: usize,
    k: usize,
    n: usize,
    alpha: f32,
    beta: f32,
    c: Option<(&Broadcast, &[f32])>,
    a: &[f32],
    b: &[f32],
    y: &mut [f32],
) -> Result<()> {
    check(a.len() == m * k && b.len() == k * n && y.len() == m * n)?;
    if let Some((bc, cv)) = c {
        check(broadcast_fits(bc, m * n, cv.len(), m * n))?;
    }
    for i in 0..m {
        let arow = &a[i * k..(i + 1) * k];
        let yrow = &mut y[i * n..(i + 1) * n];
        // Blocks of 32, 8 (vector hosts; 4 on microcontrollers), then 1 columns summed in
        // registers over all of k: every sum in l order from 0.0, so the same bits.
        #[cfg(any(target_arch = "x86_64", target_arch = "aarch64"))]
        let j0 = {
            let j0 = gemm_tile::<32>(arow, b, n, 0, yrow)?;
            gemm_tile::<8>(arow, b, n, j0, yrow)?
        };
        #[cfg(not(any(target_arch = "x86_64", target_arch = "aarch64")))]
        let j0 = gemm_tile::<4>(arow, b, n, 0, yrow)?;
        gemm_tile::<1>(arow, b, n, j0, yrow)?;
    }
    match c {
        Some((bc, cv)) => for_each_broadcast(bc, |o, _, j| y[o] = beta * cv[j] + alpha * y[o]),
        None => y.iter_mut().for_each(|v| *v = 0.0 + alpha * *v),
    }
    Ok(())
}

/// Reference int8 convolution / fully connected layer with per-channel requantization.
/// Padding reads as the input zero point, so `bias` already holds `bias − zx·Σw`.
pub fn qconv_ref<T: Q8>(
    p: &QLinear,
    x: &[T],
    w: &[i8],
    bias: &[i32],
    rq: RequantTable<'_>,
    y: &mut [T],
) -> Result<()> {
    let win = &p.win;
    let (nx, _, ny) = window_sizes(win);
    let cpg = win.c / win.group;
    let opg = win.oc / win.group;
    let last_w = (win.oc.saturating_sub(1)) * p.w_stride_oc
        + (cpg * win.kh * win.kw).saturating_sub(1) * p.w_stride_k;
    check(
        x.len() == nx
            && y.len() == ny
            && bias.len() == win.oc
            && rq.len() == win.oc
            && (win.oc == 0 || last_w < w.len()),
    )?;
    for n in 0..win.n {
        for oc in 0..win.oc {
            let g = oc / opg;
            let wbase = oc * p.w_stride_oc;
            for oy in 0..win.oh {
                for ox in 0..win.ow {
                    let mut acc: i32 = bias[oc];
                    for ic in 0..cpg {
                        let xbase = (n * win.c + g * cpg + ic) * win.h * win.w;
                        for ky in 0..win.kh {
                            let iy = (oy * win.sh + ky * win.dh) as isize - win.pt as isize;
                            for kx in 0..win.kw {
                                let ix = (ox * win.sw + kx * win.dw) as isize - win.pl as isize;
                                let xv = if iy < 0
                                    || iy >= win.h as isize
                                    || ix < 0
                                    || ix >= win.w as isize
                                {
                                    p.zx
                                } else {
                                    x[xbase + iy as usize * win.w + ix as usize].get()
                                };
                                let wv = w
                                    [wbase + ((ic * win.kh + ky) * win.kw + kx) * p.w_stride_k]
                                    as i32;
                                acc = acc.wrapping_add(xv.wrapping_mul(wv));
                            }
                        }
                    }
                    y[((n * win.oc + oc) * win.oh + oy) * win.ow + ox] =
                        T::put(p.output(acc, rq.get(oc)));
                }
            }
        }
    }
    Ok(())
}

/// Reductions shorter than this (first convolutions: 9 or 27 taps) are computed pixel-parallel
/// (weights broadcast over an output row); longer ones as dot products over the reduction axis.
const SHORT_REDUCTION: usize = 32;

/// Scratch bytes [`qconv_im2row`] needs for `p` on this CPU (0 when it does not apply and the
/// reference kernel runs instead): enough for the portable kernel and for the optimized one the
/// CPU gets, whichever runs.
pub fn qconv_scratch_bytes(p: &QLinear) -> usize {
    if p.w_stride_k != 1 {
        return 0;
    }
    #[allow(unused_mut)]
    let mut fast = 0;
    #[cfg(all(feature = "std", target_arch = "x86_64"))]
    if crate::simd::has_avx2() {
        fast = crate::int8_avx2::scratch_bytes(p).unwrap_or(0);
    }
    #[cfg(all(feature = "std", target_arch = "aarch64"))]
    if crate::int8_neon::has_dotprod() {
        fast = crate::int8_neon::scratch_bytes(p).unwrap_or(0);
    }
    fast.max(im2row_scratch_bytes(p))
}

/// Bytes of plan-time packed weights the optimized kernel for `p` reads on this CPU (0 = it
/// reads the model's weights as they are). The planner reserves them in the persistent arena
/// and fills them once with [`qconv_pack`].
pub fn qconv_packed_bytes(p: &QLinear) -> usize {
    if p.w_stride_k != 1 {
        return 0;
    }
    #[cfg(all(feature = "std", target_arch = "x86_64"))]
    if crate::simd::has_avx2() {
        return crate::int8_avx2::packed_bytes(p);
    }
    #[cfg(all(feature = "std", target_arch = "aarch64"))]
    if crate::int8_neon::has_dotprod() {
        return crate::int8_neon::packed_bytes(p);
    }
    0
}

/// Packs `w` and the adjusted `bias` for this CPU's kernel into `out` ([`qconv_packed_bytes`]).
pub fn qconv_pack(p: &QLinear, w: &[i8], bias: &[i32], out: &mut [u8]) -> Result<()> {
    if out.is_empty() {
        return Ok(());
    }
    #[cfg(all(feature = "std", target_arch = "x86_64"))]
    if crate::simd::has_avx2() {
        return crate::int8_avx2::pack(p, w, bias, out);
    }
    #[cfg(all(feature = "std", target_arch = "aarch64"))]
    if crate::int8_neon::has_dotprod() {
        return crate::int8_neon::pack(p, w, bias, out);
    }
    let _ = (p, w, bias);
    Ok(())
}

/// Scratch bytes a plan reserves for the im2row kernels: the portable one's
/// (`portable_scratch_bytes`); on a Cortex-M, and in a plan made with portable kernels only
/// (what [`crate::frozen`] plans for a device), at least what the Cortex-M DSP kernel needs.
pub fn im2row_scratch_bytes(p: &QLinear) -> usize {
    let portable = portable_scratch_bytes(p);
    if cfg!(all(target_arch = "arm", feature = "arm-dsp")) || !optimized_allowed() {
        portable.max(crate::int8_dsp::scratch_bytes(p))
    } else {
        portable
    }
}

/// Scratch bytes of the portable im2row kernel: one output row of patches as i16, plus an i32
/// accumulator row.
fn portable_scratch_bytes(p: &QLinear) -> usize {
    let k = p.win.c / p.win.group.max(1) * p.win.kh * p.win.kw;
    acc_bytes(p.win.ow) + k * p.win.ow * 2
}

fn acc_bytes(ow: usize) -> usize {
    (ow * 4 + 15) & !15
}

/// Optimized int8 convolution / fully connected layer. Each output row's input patches are
/// gathered once (i16, padding as the zero point); then wide rows accumulate
/// `acc[ox] += w[oc,k] · patch[k][ox]` (weights broadcast over pixels, zero weights skipped so
/// pruning pays off) and narrow rows take contiguous dot products. Both loops vectorize on every
/// target. Same integer arithmetic as [`qconv_ref`], so results are bit-identical (tested).
///
/// On x86_64 with `std`, the same code compiled for AVX2 is picked at run time when the CPU has
/// it (the integer arithmetic is identical, so so are the results).
#[allow(clippy::too_many_arguments)]
pub fn qconv_im2row<T: Q8>(
    p: &QLinear,
    x: &[T],
    w: &[i8],
    bias: &[i32],
    packed: &[u8],
    rq: RequantTable<'_>,
    y: &mut [T],
    scratch: &mut [u8],
) -> Result<()> {
    // The optimized kernels run when this CPU has them and the plan packed their weights.
    let _ = packed;
    #[cfg(all(feature = "std", target_arch = "x86_64"))]
    if crate::simd::has_avx2() {
        // The plan may have been made with other kernels allowed (see `set_portable_only`):
        // take the fast path only when its packed weights and scratch are there.
        if crate::int8_avx2::scratch_bytes(p).is_some_and(|b| scratch.len() >= b)
            && packed.len() >= crate::int8_avx2::packed_bytes(p)
        {
            return crate::int8_avx2::qconv(p, x, w, bias, packed, rq, y, scratch);
        }
        return crate::simd::qconv_im2row_avx2(p, x, w, bias, rq, y, scratch);
    }
    #[cfg(all(feature = "std", target_arch = "aarch64"))]
    if crate::int8_neon::has_dotprod() && crate::int8_neon::gemv_applies(p) {
        return crate::int8_neon::gemv(p, x, w, bias, rq, y);
    }
    #[cfg(all(feature = "std", target_arch = "aarch64"))]
    if crate::int8_neon::has_dotprod()
        && crate::int8_neon::scratch_bytes(p).is_some_and(|b| scratch.len() >= b)
        && !packed.is_empty()
        && packed.len() >= crate::int8_neon::packed_bytes(p)
    {
        return crate::int8_neon::qconv(p, x, packed, rq, y, scratch);
    }
    #[cfg(all(target_arch = "arm", feature = "arm-dsp"))]
    if optimized_allowed() && scratch.len() >= crate::int8_dsp::scratch_bytes(p) {
        return crate::int8_dsp::qconv(p, x, w, bias, rq, y, scratch);
    }
    qconv_im2row_body(p, x, w, bias, rq, y, scratch)
}

/// The portable body, for the per-target wrappers in `simd`.
#[doc(hidden)]
#[inline(always)]
pub fn qconv_im2row_portable<T: Q8>(
    p: &QLinear,
    x: &[T],
    w: &[i8],
    bias: &[i32],
    rq: RequantTable<'_>,
    y: &mut [T],
    scratch: &mut [u8],
) -> Result<()> {
    qconv_im2row_body(p, x, w, bias, rq, y, scratch)
}

/// The buffer sizes an im2row-style kernel (contiguous weight rows) checks before it runs.
pub(crate) fn check_im2row_args<T: Q8>(
    p: &QLinear,
    x: &[T],
    w: &[i8],
    bias: &[i32],
    rq: RequantTable<'_>,
    y: &[T],
) -> Result<()> {
    let win = &p.win;
    let (nx, _, ny) = window_sizes(win);
    let kk = win.c / win.group.max(1) * win.kh * win.kw;
    let last_w = win.oc.saturating_sub(1) * p.w_stride_oc + kk;
    check(
        p.w_stride_k == 1
            && win.group > 0
            && x.len() == nx
            && y.len() == ny
            && bias.len() == win.oc
            && rq.len() == win.oc
            && (win.oc == 0 || last_w <= w.len()),
    )
}

#[inline(always)]
fn qconv_im2row_body<T: Q8>(
    p: &QLinear,
    x: &[T],
    w: &[i8],
    bias: &[i32],
    rq: RequantTable<'_>,
    y: &mut [T],
    scratch: &mut [u8],
) -> Result<()> {
    check_im2row_args(p, x, w, bias, rq, y)?;
    check(scratch.len() >= portable_scratch_bytes(p))?;
    let win = &p.win;
    let cpg = win.c / win.group;
    let opg = win.oc / win.group;
    let kk = cpg * win.kh * win.kw;
    let ow = win.ow;
    let (acc, cols) = scratch.split_at_mut(acc_bytes(ow));
    let acc: &mut [i32] =
        bytemuck::try_cast_slice_mut(&mut acc[..ow * 4]).map_err(|_| Error::BadIo {
            what: "misaligned scratch",
        })?;
    let cols: &mut [i16] =
        bytemuck::try_cast_slice_mut(&mut cols[..kk * ow * 2]).map_err(|_| Error::BadIo {
            what: "misaligned scratch",
        })?;
    let wide = kk < SHORT_REDUCTION && ow > 1;
    let zx = p.zx as i16;
    for n in 0..win.n {
        for g in 0..win.group {
            for oy in 0..win.oh {
                // Gather: wide rows store patch[k][ox], narrow rows patch[ox][k].
                let mut k = 0;
                for ic in 0..cpg {
                    let xbase = (n * win.c + g * cpg + ic) * win.h * win.w;
                    for ky in 0..win.kh {
                        let iy = (oy * win.sh + ky * win.dh) as isize - win.pt as isize;
                        let row_ok = iy >= 0 && iy < win.h as isize;
                        for kx in 0..win.kw {
                            for ox in 0..ow {
                                let ix = (ox * win.sw + kx * win.dw) as isize - win.pl as isize;
                                let v = if row_ok && ix >= 0 && ix < win.w as isize {
                                    x[xbase + iy as usize * win.w + ix as usize].get() as i16
                                } else {
                                    zx
                                };
                                cols[if wide { k * ow + ox } else { ox * kk + k }] = v;
                            }
                            k += 1;
                        }
                    }
                }
                let ocs = g * opg..(g + 1) * opg;
                if wide {
                    for oc in ocs {
                        let wrow = &w[oc * p.w_stride_oc..oc * p.w_stride_oc + kk];
                        acc.iter_mut().for_each(|a| *a = bias[oc]);
                        for (k, &wv) in wrow.iter().enumerate() {
                            if wv == 0 {
                                continue;
                            }
                            let wv = wv as i32;
                            for (a, &c) in acc.iter_mut().zip(&cols[k * ow..(k + 1) * ow]) {
                                *a = a.wrapping_add(wv * c as i32);
                            }
                        }
                        let r = rq.get(oc);
                        let yrow = ((n * win.oc + oc) * win.oh + oy) * ow;
                        for (o, &a) in y[yrow..yrow + ow].iter_mut().zip(acc.iter()) {
                            *o = T::put(p.output(a, r));
                        }
                    }
                } else {
                    for oc in ocs {
                        let wrow = &w[oc * p.w_stride_oc..oc * p.w_stride_oc + kk];
                        let r = rq.get(oc);
                        let yrow = ((n * win.oc + oc) * win.oh + oy) * ow;
                        for ox in 0..ow {
                            let s = dot_i16_i8(&cols[ox * kk..(ox + 1) * kk], wrow);
                            y[yrow + ox] = T::put(p.output(bias[oc].wrapping_add(s), r));
                        }
                    }
                }
            }
        }
    }
    Ok(())
}

/// Σ a·b with i32 accumulation, written so it vectorizes (pmaddwd on x86, smlal on Arm).
#[inline]
fn dot_i16_i8(a: &[i16], b: &[i8]) -> i32 {
    a.iter()
        .zip(b)
        .fold(0i32, |s, (&x, &w)| s.wrapping_add(x as i32 * w as i32))
}

/// int8 Add with both inputs rescaled: the AVX2 kernel for same-shape inputs where the CPU has
/// it, else [`qadd_ref`] (bit-identical).
pub fn qadd<T: Q8>(p: &QAdd, a: &[T], b: &[T], y: &mut [T]) -> Result<()> {
    #[cfg(all(feature = "std", target_arch = "x86_64"))]
    if p.bc.same && crate::simd::has_avx2() && crate::int8_avx2::qadd_same_shape(p, a, b, y) {
        return Ok(());
    }
    qadd_ref(p, a, b, y)
}

/// Reference int8 Add with both inputs rescaled (TFLite scheme).
pub fn qadd_ref<T: Q8>(p: &QAdd, a: &[T], b: &[T], y: &mut [T]) -> Result<()> {
    check(broadcast_fits(&p.bc, a.len(), b.len(), y.len()))?;
    for_each_broadcast(&p.bc, |o, i, j| {
        y[o] = T::put(p.output(a[i].get(), b[j].get()));
    });
    Ok(())
}

/// Int8 element-wise Mul (reference kernel; see [`QMul`]).
pub fn qmul<T: Q8>(p: &QMul, a: &[T], b: &[T], y: &mut [T]) -> Result<()> {
    check(broadcast_fits(&p.bc, a.len(), b.len(), y.len()))?;
    for_each_broadcast(&p.bc, |o, i, j| {
        y[o] = T::put(p.output(a[i].get(), b[j].get()));
    });
    Ok(())
}

/// Gemm: Y = alpha·A'·B' + beta·C.
#[allow(clippy::too_many_arguments)]
pub fn gemm_f32(
    m: usize,
    k: usize,
    n: usize,
    ta: bool,
    tb: bool,
    alpha: f32,
    beta: f32,
    c: Option<(&Broadcast, &[f32])>,
    a: &[f32],
    b: &[f32],
    y: &mut [f32],
) -> Result<()> {
    check(a.len() == m * k && b.len() == k * n && y.len() == m * n)?;
    if let Some((bc, cv)) = c {
        check(broadcast_fits(bc, m * n, cv.len(), m * n))?;
        for_each_broadcast(bc, |o, _, j| y[o] = beta * cv[j]);
    } else {
        y.iter_mut().for_each(|v| *v = 0.0);
    }
    for i in 0..m {
        for j in 0..n {
            let mut acc = 0.0f32;
            for l in 0..k {
                let av = if ta { a[l * m + i] } else { a[i * k + l] };
                let bv = if tb { b[j * k + l] } else { b[l * n + j] };
                acc += av * bv;
            }
            y[i * n + j] += alpha * acc;
        }
    }
    Ok(())
}

/// Batched matrix product.
#[allow(clippy::too_many_arguments)]
pub fn matmul_f32(
    batch: usize,
    m: usize,
    k: usize,
    n: usize,
    sa: usize,
    sb: usize,
    a: &[f32],
    b: &[f32],
    y: &mut [f32],
) -> Result<()> {
    check(
        y.len() == batch * m * n
            && a.len() >= (batch - 1) * sa + m * k
            && b.len() >= (batch - 1) * sb + k * n,
    )?;
    for bi in 0..batch {
        let (a, b) = (&a[bi * sa..], &b[bi * sb..]);
        let y = &mut y[bi * m * n..(bi + 1) * m * n];
        if k == 0 {
            // No products: zeros (and nothing to split into rows).
            y.fill(0.0);
            continue;
        }
        // Row by row: y_i = Σ_l a_il·b_l, each b_l a contiguous row, so the adds run along j
        // (vectorized) instead of striding down a column of b. Every y_ij still adds its k
        // products in order l = 0, 1, … from 0.0: the same bits as the dot-product form
        // ([`matmul_f32_ref`]).
        for (yrow, arow) in y.chunks_exact_mut(n.max(1)).zip(a.chunks_exact(k)) {
            yrow.fill(0.0);
            for (&av, brow) in arow.iter().zip(b.chunks_exact(n.max(1))) {
                for (o, &bv) in yrow.iter_mut().zip(brow) {
                    *o += av * bv;
                }
            }
        }
    }
    Ok(())
}

/// [`matmul_f32`] by its definition, one dot product per output (the reference it is tested
/// against bit for bit).
#[cfg(test)]
#[allow(clippy::too_many_arguments)]
pub fn matmul_f32_ref(
    batch: usize,
    m: usize,
    k: usize,
    n: usize,
    sa: usize,
    sb: usize,
    a: &[f32],
    b: &[f32],
    y: &mut [f32],
) {
    for bi in 0..batch {
        let (a, b) = (&a[bi * sa..], &b[bi * sb..]);
        let y = &mut y[bi * m * n..(bi + 1) * m * n];
        for i in 0..m {
            for j in 0..n {
                let mut acc = 0.0f32;
                for l in 0..k {
                    acc += a[i * k + l] * b[l * n + j];
                }
                y[i * n + j] = acc;
            }
        }
    }
}

/// Max pooling for any ordered element type.
pub fn maxpool<T: Copy + PartialOrd>(p: &Window, lowest: T, x: &[T], y: &mut [T]) -> Result<()> {
    check(x.len() == p.n * p.c * p.h * p.w && y.len() == p.n * p.c * p.oh * p.ow)?;
    // Fast path: 2×2 windows, stride 2, no padding (the common CNN pooling) — no bounds tests
    // in the loop. Same result as the general loop below.
    if p.kh == 2
        && p.kw == 2
        && p.sh == 2
        && p.sw == 2
        && p.dh == 1
        && p.dw == 1
        && p.pt == 0
        && p.pl == 0
        && 2 * p.oh <= p.h
        && 2 * p.ow <= p.w
        && p.oh * p.ow > 0
    {
        let (h, w) = (p.h, p.w);
        for (xb, yb) in x.chunks_exact(h * w).zip(y.chunks_exact_mut(p.oh * p.ow)) {
            for (oy, yrow) in yb.chunks_exact_mut(p.ow).enumerate() {
                let r0 = &xb[2 * oy * w..2 * oy * w + 2 * p.ow];
                let r1 = &xb[(2 * oy + 1) * w..(2 * oy + 1) * w + 2 * p.ow];
                for ((o, a), b) in yrow
                    .iter_mut()
                    .zip(r0.chunks_exact(2))
                    .zip(r1.chunks_exact(2))
                {
                    // The general loop's fold, written out (a loop over the four stays a loop
                    // on a Cortex-M at opt-level "z").
                    *o = max_or_nan(
                        max_or_nan(max_or_nan(max_or_nan(lowest, a[0]), a[1]), b[0]),
                        b[1],
                    );
                }
            }
        }
        return Ok(());
    }
    for nc in 0..p.n * p.c {
        let xb = &x[nc * p.h * p.w..];
        for oy in 0..p.oh {
            for ox in 0..p.ow {
                let mut m = lowest;
                for ky in 0..p.kh {
                    let iy = (oy * p.sh + ky * p.dh) as isize - p.pt as isize;
                    if iy < 0 || iy >= p.h as isize {
                        continue;
                    }
                    for kx in 0..p.kw {
                        let ix = (ox * p.sw + kx * p.dw) as isize - p.pl as isize;
                        if ix < 0 || ix >= p.w as isize {
                            continue;
                        }
                        m = max_or_nan(m, xb[iy as usize * p.w + ix as usize]);
                    }
                }
                y[(nc * p.oh + oy) * p.ow + ox] = m;
            }
        }
    }
    Ok(())
}

/// `v` if it is above `m` or NaN (NaN propagates, as in onnxruntime), else `m`: one step of
/// max pooling.
#[inline(always)]
fn max_or_nan<T: Copy + PartialOrd>(m: T, v: T) -> T {
    #[allow(clippy::eq_op)]
    let nan = v != v;
    if v > m || nan {
        v
    } else {
        m
    }
}

/// Average pooling.
pub fn avgpool(p: &Window, include_pad: bool, x: &[f32], y: &mut [f32]) -> Result<()> {
    check(x.len() == p.n * p.c * p.h * p.w && y.len() == p.n * p.c * p.oh * p.ow)?;
    for nc in 0..p.n * p.c {
        let xb = &x[nc * p.h * p.w..];
        for oy in 0..p.oh {
            for ox in 0..p.ow {
                let (mut s, mut cnt) = (0.0f32, 0usize);
                let mut padded_cnt = 0usize;
                for ky in 0..p.kh {
                    let iy = (oy * p.sh + ky * p.dh) as isize - p.pt as isize;
                    for kx in 0..p.kw {
                        let ix = (ox * p.sw + kx * p.dw) as isize - p.pl as isize;
                        // Positions past the explicit end padding (ceil mode) never count.
                        if iy < p.h as isize + p.pt as isize && ix < p.w as isize + p.pl as isize {
                            padded_cnt += 1;
                        }
                        if iy < 0 || iy >= p.h as isize || ix < 0 || ix >= p.w as isize {
                            continue;
                        }
                        s += xb[iy as usize * p.w + ix as usize];
                        cnt += 1;
                    }
                }
                let d = if include_pad { padded_cnt } else { cnt };
                y[(nc * p.oh + oy) * p.ow + ox] = if d == 0 { 0.0 } else { s / d as f32 };
            }
        }
    }
    Ok(())
}

/// Global average pooling over the spatial dims.
pub fn global_avg(nc: usize, hw: usize, x: &[f32], y: &mut [f32]) -> Result<()> {
    check(x.len() == nc * hw && y.len() == nc)?;
    for (i, o) in y.iter_mut().enumerate() {
        let s: f32 = x[i * hw..(i + 1) * hw].iter().sum();
        *o = s / hw.max(1) as f32;
    }
    Ok(())
}

/// `ArgMax` (`max`) or `ArgMin` along an axis of length `len` with `inner` elements after it:
/// the index of the first extreme value (the last with `last`, ONNX's `select_last_index`)
/// written as little-endian int64 into `y`. A NaN counts as the extreme, as in `ReduceMax`.
pub fn arg_extreme(
    outer: usize,
    len: usize,
    inner: usize,
    max: bool,
    last: bool,
    x: &[f32],
    y: &mut [u8],
) -> Result<()> {
    check(len > 0 && x.len() == outer * len * inner && y.len() == outer * inner * 8)?;
    if y.is_empty() {
        return Ok(());
    }
    for (o, row) in y.chunks_exact_mut(inner * 8).enumerate() {
        for (i, out) in row.chunks_exact_mut(8).enumerate() {
            let at = |k: usize| x[(o * len + k) * inner + i];
            let mut best = 0;
            for k in 1..len {
                let (v, b) = (at(k), at(best));
                let better = if b.is_nan() {
                    false
                } else if v.is_nan() {
                    true
                } else if max {
                    v > b || (last && v == b)
                } else {
                    v < b || (last && v == b)
                };
                if better {
                    best = k;
                }
            }
            out.copy_from_slice(&(best as i64).to_le_bytes());
        }
    }
    Ok(())
}

/// Softmax (or, with `log`, LogSoftmax) along an axis of length `len` with `inner` elements
/// after it.
pub fn softmax(
    outer: usize,
    len: usize,
    inner: usize,
    log: bool,
    x: &[f32],
    y: &mut [f32],
) -> Result<()> {
    check(x.len() == outer * len * inner && y.len() == x.len())?;
    for o in 0..outer {
        for i in 0..inner {
            let at = |j: usize| (o * len + j) * inner + i;
            let mut m = f32::NEG_INFINITY;
            for j in 0..len {
                m = m.max(x[at(j)]);
            }
            let mut s = 0.0f32;
            for j in 0..len {
                let e = exp(x[at(j)] - m);
                y[at(j)] = e;
                s += e;
            }
            if log {
                // x − max − ln Σ: exact for the largest inputs, no log of an underflowed e^(x − max).
                let ls = libm::logf(s);
                for j in 0..len {
                    y[at(j)] = x[at(j)] - m - ls;
                }
            } else {
                for j in 0..len {
                    y[at(j)] /= s;
                }
            }
        }
    }
    Ok(())
}

/// A `Reduce*` op over the axes whose bits are set in `axes`. For each output element the
/// reduced elements are walked by their multi-index (a reference kernel: reductions are rare
/// and small in edge models, a global average pool being the usual one).
pub fn reduce(kind: Reduce, shape: &Shape, axes: u8, x: &[f32], y: &mut [f32]) -> Result<()> {
    let rank = shape.rank();
    // Reduced axes that form one run (the last axis, channels, spatial axes …): the input is
    // outer × reduced × inner, walked with strides instead of index arithmetic per element.
    // Each output folds its items in the same order: the same bits as the general walk.
    let (lo, run) = (axes.trailing_zeros() as usize, axes.count_ones() as usize);
    if axes != 0 && lo + run <= rank && axes >> lo == (1u16 << run).wrapping_sub(1) as u8 {
        let dims = |r: core::ops::Range<usize>| r.map(|ax| shape.dim(ax)).product::<usize>();
        let (outer, n_red, inner) = (dims(0..lo), dims(lo..lo + run), dims(lo + run..rank));
        check(x.len() == outer * n_red * inner && y.len() == outer * inner)?;
        if n_red == 0 || inner == 0 {
            // Empty sets (identities) or no outputs: the general walk handles them.
            return reduce_general(kind, shape, axes, x, y);
        }
        for (xs, ys) in x.chunks_exact(n_red * inner).zip(y.chunks_exact_mut(inner)) {
            for (i, out) in ys.iter_mut().enumerate() {
                *out = reduce_one(kind, n_red, |k| xs[k * inner + i]);
            }
        }
        return Ok(());
    }
    reduce_general(kind, shape, axes, x, y)
}

/// [`reduce`] for any set of axes, each element's offset worked out from its index (the
/// reference the one-run walk is tested against bit for bit).
pub fn reduce_general(
    kind: Reduce,
    shape: &Shape,
    axes: u8,
    x: &[f32],
    y: &mut [f32],
) -> Result<()> {
    let rank = shape.rank();
    let mut stride = [0usize; MAX_RANK];
    let (mut total, mut n_red) = (1usize, 1usize);
    for ax in (0..rank).rev() {
        stride[ax] = total;
        total *= shape.dim(ax);
        if axes & (1 << ax) != 0 {
            n_red *= shape.dim(ax);
        }
    }
    check(x.len() == total && y.len() * n_red == total)?;
    // The offset of the k-th element of a set of axes (row-major over those axes).
    let offset = |mut k: usize, reduced: bool| {
        let mut off = 0;
        for ax in (0..rank).rev() {
            if (axes & (1 << ax) != 0) == reduced {
                let d = shape.dim(ax);
                off += (k % d) * stride[ax];
                k /= d;
            }
        }
        off
    };
    for (o, out) in y.iter_mut().enumerate() {
        let base = offset(o, false);
        *out = reduce_one(kind, n_red, |k| x[base + offset(k, true)]);
    }
    Ok(())
}

/// One output of a reduction over the `n` items `at(0), at(1), …`, folded in that order.
#[inline(always)] // each walk gets its own copy with its indexing inlined
fn reduce_one(kind: Reduce, n: usize, at: impl Fn(usize) -> f32) -> f32 {
    let mut items = (0..n).map(&at);
    match kind {
        Reduce::Sum => items.sum(),
        Reduce::Mean => items.sum::<f32>() / n as f32,
        Reduce::Max => items.fold(
            f32::NEG_INFINITY,
            |m, v| if v > m || v.is_nan() { v } else { m },
        ),
        Reduce::Min => items.fold(
            f32::INFINITY,
            |m, v| if v < m || v.is_nan() { v } else { m },
        ),
        Reduce::Prod => items.product(),
        Reduce::L1 => items.map(f32::abs).sum(),
        Reduce::L2 => sqrt(items.map(|v| v * v).sum()),
        Reduce::LogSum => libm::logf(items.sum()),
        Reduce::LogSumExp => {
            let m = items.by_ref().fold(f32::NEG_INFINITY, f32::max);
            if m.is_infinite() {
                // All −∞ (or an empty set): ln 0; any +∞: +∞.
                m
            } else {
                let s: f32 = (0..n).map(|k| exp(at(k) - m)).sum();
                m + libm::logf(s)
            }
        }
        Reduce::SumSquare => items.map(|v| v * v).sum(),
    }
}

/// Inference batch normalization.
#[allow(clippy::too_many_arguments)]
pub fn batchnorm(
    n: usize,
    c: usize,
    inner: usize,
    eps: f32,
    x: &[f32],
    scale: &[f32],
    bias: &[f32],
    mean: &[f32],
    var: &[f32],
    y: &mut [f32],
) -> Result<()> {
    check(
        x.len() == n * c * inner
            && y.len() == x.len()
            && scale.len() == c
            && bias.len() == c
            && mean.len() == c
            && var.len() == c,
    )?;
    for b in 0..n {
        for ch in 0..c {
            let k = scale[ch] / sqrt(var[ch] + eps);
            let off = bias[ch] - mean[ch] * k;
            let base = (b * c + ch) * inner;
            for i in 0..inner {
                y[base + i] = x[base + i] * k + off;
            }
        }
    }
    Ok(())
}

/// Shape of a Gather: data `outer × axis_len × inner`, `indices` index values.
#[derive(Debug, Clone, Copy)]
pub struct GatherDims {
    /// Product of the dims before the axis.
    pub outer: usize,
    /// Length of the gathered axis.
    pub axis_len: usize,
    /// Product of the dims after the axis.
    pub inner: usize,
    /// Number of indices.
    pub indices: usize,
}

/// Gather along an axis for `esize`-byte elements. Indices (little-endian int64 when `wide`,
/// else int32) may be negative (counted from the end); one outside the axis is an error, since
/// indices can be run-time data.
pub fn gather(
    esize: usize,
    d: GatherDims,
    idx: &[u8],
    wide: bool,
    x: &[u8],
    y: &mut [u8],
) -> Result<()> {
    let isz = if wide { 8 } else { 4 };
    let row = d.inner * esize;
    check(idx.len() == d.indices * isz)?;
    check(x.len() == d.outer * d.axis_len * row && y.len() == d.outer * d.indices * row)?;
    for (j, c) in idx.chunks_exact(isz).enumerate() {
        let v = if wide {
            i64::from_le_bytes([c[0], c[1], c[2], c[3], c[4], c[5], c[6], c[7]])
        } else {
            i32::from_le_bytes([c[0], c[1], c[2], c[3]]) as i64
        };
        let n = d.axis_len as i64;
        let v = if v < 0 { v + n } else { v };
        if !(0..n).contains(&v) {
            return Err(Error::BadIo {
                what: "Gather index out of range",
            });
        }
        for o in 0..d.outer {
            let src = (o * d.axis_len + v as usize) * row;
            let dst = (o * d.indices + j) * row;
            y[dst..dst + row].copy_from_slice(&x[src..src + row]);
        }
    }
    Ok(())
}

/// Walks the indices of GatherElements/ScatterElements (shape `idx_shape`, int64 when `wide`
/// else int32, negative counted from the end) and calls `f(k, at)` with the row-major position
/// in `data` of element `k`: its own multi-index with the `axis` coordinate from index `k`. An
/// index outside the axis stops the walk with `what` (indices can be run-time data).
fn for_each_element_position(
    data: &Shape,
    axis: usize,
    idx_shape: &Shape,
    idx: &[u8],
    wide: bool,
    what: &'static str,
    mut f: impl FnMut(usize, usize),
) -> Result<()> {
    let isz = if wide { 8 } else { 4 };
    check(
        idx_shape.rank() == data.rank()
            && axis < data.rank()
            && (0..data.rank()).all(|a| a == axis || idx_shape.dim(a) <= data.dim(a))
            && idx.len() == idx_shape.numel() * isz,
    )?;
    let stride = strides_of(data);
    let n = data.dim(axis) as i64;
    let mut m = [0usize; MAX_RANK];
    for (k, c) in idx.chunks_exact(isz).enumerate() {
        let v = if wide {
            i64::from_le_bytes([c[0], c[1], c[2], c[3], c[4], c[5], c[6], c[7]])
        } else {
            i32::from_le_bytes([c[0], c[1], c[2], c[3]]) as i64
        };
        let v = if v < 0 { v + n } else { v };
        if !(0..n).contains(&v) {
            return Err(Error::BadIo { what });
        }
        let at: usize = (0..data.rank())
            .map(|a| if a == axis { v as usize } else { m[a] } * stride[a])
            .sum();
        f(k, at);
        next_index(&mut m, idx_shape);
    }
    Ok(())
}

/// GatherElements for `esize`-byte elements: output element `o` (a multi-index over
/// `idx_shape`, the shape of the indices and the output) reads `x` (shape `data`) at `o` with its
/// `axis` coordinate replaced by the index at `o`. Indices (little-endian int64 when `wide`, else
/// int32) may be negative (counted from the end); one outside the axis is an error, since
/// indices can be run-time data.
#[allow(clippy::too_many_arguments)]
pub fn gather_elements(
    esize: usize,
    data: &Shape,
    axis: usize,
    idx_shape: &Shape,
    idx: &[u8],
    wide: bool,
    x: &[u8],
    y: &mut [u8],
) -> Result<()> {
    check(x.len() == data.numel() * esize && y.len() == idx_shape.numel() * esize)?;
    for_each_element_position(
        data,
        axis,
        idx_shape,
        idx,
        wide,
        "GatherElements index out of range",
        |k, at| y[k * esize..(k + 1) * esize].copy_from_slice(&x[at * esize..(at + 1) * esize]),
    )
}

/// Geometry of a ScatterElements step.
#[derive(Debug, Clone, Copy)]
pub struct ScatterDims {
    /// Bytes per element of data, updates and output.
    pub esize: usize,
    /// Shape of data and output.
    pub data: Shape,
    /// Shape of the indices and the updates.
    pub indices: Shape,
    /// The scattered axis.
    pub axis: usize,
    /// Indices are int64 (else int32).
    pub wide: bool,
    /// How an update combines with the value there.
    pub reduction: crate::ops::ScatterReduction,
}

/// ScatterElements: `y` is `x`, then update `k` (a multi-index over the indices' shape) goes to
/// its own position with the `axis` coordinate replaced by index `k` (negative counts from the
/// end; out of range is an error), combined by `d.reduction` (float32 for any but `None`).
/// Updates apply in order, so with duplicate indices and no reduction the last one wins.
pub fn scatter_elements(
    d: &ScatterDims,
    x: &[u8],
    idx: &[u8],
    upd: &[u8],
    y: &mut [u8],
) -> Result<()> {
    use crate::ops::ScatterReduction as R;
    let es = d.esize;
    check(
        upd.len() == d.indices.numel() * es
            && x.len() == d.data.numel() * es
            && y.len() == x.len()
            && (d.reduction == R::None || es == 4),
    )?;
    y.copy_from_slice(x);
    let what = "ScatterElements index out of range";
    for_each_element_position(&d.data, d.axis, &d.indices, idx, d.wide, what, |k, at| {
        combine_update(
            d.reduction,
            &mut y[at * es..(at + 1) * es],
            &upd[k * es..(k + 1) * es],
        )
    })
}

/// Writes update bytes `u` over `dst` (`None`), or combines them element by element as float32
/// (ScatterElements' and ScatterND's reductions; the caller checks the type).
pub(crate) fn combine_update(reduction: crate::ops::ScatterReduction, dst: &mut [u8], u: &[u8]) {
    use crate::ops::ScatterReduction as R;
    if reduction == R::None {
        dst.copy_from_slice(u);
        return;
    }
    for (d, u) in dst.chunks_exact_mut(4).zip(u.chunks_exact(4)) {
        let f = |b: &[u8]| f32::from_le_bytes([b[0], b[1], b[2], b[3]]);
        let (old, new) = (f(d), f(u));
        let r = match reduction {
            R::Add => old + new,
            R::Mul => old * new,
            R::Max => old.max(new),
            R::Min => old.min(new),
            R::None => new,
        };
        d.copy_from_slice(&r.to_le_bytes());
    }
}

/// Copies a strided window (`starts`, `steps` per axis; `out` the planned output shape) of
/// `esize`-byte elements.
pub fn slice(
    esize: usize,
    in_shape: &Shape,
    starts: &[u32; MAX_RANK],
    steps: &[i32; MAX_RANK],
    out: &Shape,
    x: &[u8],
    y: &mut [u8],
) -> Result<()> {
    let r = in_shape.rank();
    let n = out.numel();
    check(out.rank() == r && x.len() == in_shape.numel() * esize && y.len() == n * esize)?;
    let mut stride = [0isize; MAX_RANK];
    let mut s = 1isize;
    for a in (0..r).rev() {
        stride[a] = s;
        s *= in_shape.dim(a) as isize;
    }
    let mut idx = [0usize; MAX_RANK];
    for o in 0..n {
        let mut src = 0isize;
        for a in 0..r {
            src += (starts[a] as isize + idx[a] as isize * steps[a] as isize) * stride[a];
        }
        let src = usize::try_from(src).map_err(|_| Error::BadIo {
            what: "slice index",
        })?;
        let from = x.get(src * esize..(src + 1) * esize).ok_or(Error::BadIo {
            what: "slice index",
        })?;
        y[o * esize..(o + 1) * esize].copy_from_slice(from);
        let mut a = r;
        while a > 0 {
            a -= 1;
            idx[a] += 1;
            if idx[a] < out.dim(a) {
                break;
            }
            idx[a] = 0;
        }
    }
    Ok(())
}

/// The table of a `DQ → f → Q` lookup step: entry `b` (an 8-bit code's bit pattern) is what the
/// float path computes for that code — [`dequantize`], [`unary`], [`quantize`], the same
/// functions, so the lookup is bit-identical to the steps it replaces.
pub fn lut_table(spec: &LutSpec, table: &mut [u8]) -> Result<()> {
    check(table.len() == 256)?;
    let codes: [u8; 256] = core::array::from_fn(|b| b as u8);
    let one = QParams {
        scales: 0,
        zps: 0,
        axis_len: 1,
        inner: 256,
    };
    let dt = |u: bool| if u { DType::U8 } else { DType::I8 };
    let (mut xf, mut yf) = ([0f32; 256], [0f32; 256]);
    let p = spec;
    dequantize(&one, &[p.sx], &[p.zx], dt(p.unsigned_in), &codes, &mut xf)?;
    unary(p.f, &xf, &mut yf)?;
    quantize(&one, &[p.sy], &[p.zy], dt(p.unsigned_out), &yf, table)
}

/// A lookup step: `y[i] = table[x[i]]` (8-bit codes by bit pattern).
pub fn lut(table: &[u8], x: &[u8], y: &mut [u8]) -> Result<()> {
    check(table.len() == 256 && x.len() == y.len())?;
    for (o, &v) in y.iter_mut().zip(x) {
        *o = table[v as usize];
    }
    Ok(())
}

/// Row-major strides of a shape, in elements.
fn strides_of(shape: &Shape) -> [usize; MAX_RANK] {
    let mut stride = [0usize; MAX_RANK];
    let mut s = 1;
    for a in (0..shape.rank()).rev() {
        stride[a] = s;
        s *= shape.dim(a);
    }
    stride
}

/// Steps a row-major multi-index over `out` by one element.
fn next_index(idx: &mut [usize; MAX_RANK], out: &Shape) {
    let mut a = out.rank();
    while a > 0 {
        a -= 1;
        idx[a] += 1;
        if idx[a] < out.dim(a) {
            return;
        }
        idx[a] = 0;
    }
}

/// Copies elements of `esize` bytes from `x` (shape `in_shape`) to `y` (shape `out`, same rank):
/// output multi-index `o` takes input element `src(o)` (a row-major index into `x`), or `fill`
/// where `src` gives `None`. The data-movement kernels (Pad, Tile, nearest Resize) differ only
/// in `src`.
fn copy_by_index(
    esize: usize,
    in_shape: &Shape,
    out: &Shape,
    fill: &[u8],
    x: &[u8],
    y: &mut [u8],
    mut src: impl FnMut(&[usize; MAX_RANK], &[usize; MAX_RANK]) -> Option<usize>,
) -> Result<()> {
    check(
        out.rank() == in_shape.rank()
            && x.len() == in_shape.numel() * esize
            && y.len() == out.numel() * esize,
    )?;
    let stride = strides_of(in_shape);
    let mut idx = [0usize; MAX_RANK];
    for o in y.chunks_exact_mut(esize) {
        match src(&idx, &stride) {
            Some(at) => {
                o.copy_from_slice(x.get(at * esize..(at + 1) * esize).ok_or(Error::BadIo {
                    what: "data movement index",
                })?)
            }
            None => o.copy_from_slice(
                fill.get(..esize)
                    .ok_or(Error::BadIo { what: "fill value" })?,
            ),
        }
        next_index(&mut idx, out);
    }
    Ok(())
}

/// `Pad` on elements of `esize` bytes (any type): see [`crate::ops::Op::Pad`].
#[allow(clippy::too_many_arguments)]
pub fn pad(
    esize: usize,
    in_shape: &Shape,
    begin: &[i32; MAX_RANK],
    mode: PadMode,
    value: &[u8],
    out: &Shape,
    x: &[u8],
    y: &mut [u8],
) -> Result<()> {
    let r = in_shape.rank();
    copy_by_index(esize, in_shape, out, value, x, y, |idx, stride| {
        let mut at = 0usize;
        for a in 0..r {
            let d = in_shape.dim(a) as i64;
            let mut i = idx[a] as i64 - begin[a] as i64;
            if i < 0 || i >= d {
                i = match mode {
                    _ if d == 0 => return None,
                    PadMode::Constant => return None,
                    PadMode::Edge => i.clamp(0, d - 1),
                    PadMode::Wrap => i.rem_euclid(d),
                    PadMode::Reflect if d == 1 => 0,
                    PadMode::Reflect => {
                        let period = 2 * (d - 1);
                        let k = i.rem_euclid(period);
                        if k >= d {
                            period - k
                        } else {
                            k
                        }
                    }
                };
            }
            at += i as usize * stride[a];
        }
        Some(at)
    })
}

/// The input coordinate an output index of `Resize` samples along one axis.
fn resize_coord(c: ResizeCoord, o: usize, scale: f32, in_len: usize, out_len: usize) -> f32 {
    let o = o as f32;
    match c {
        ResizeCoord::HalfPixel => (o + 0.5) / scale - 0.5,
        ResizeCoord::PytorchHalfPixel if out_len > 1 => (o + 0.5) / scale - 0.5,
        ResizeCoord::PytorchHalfPixel => 0.0,
        // The resized length is in · scale before rounding down (as ONNX's reference has it).
        ResizeCoord::AlignCorners if out_len > 1 => {
            o * (in_len as f32 - 1.0) / (in_len as f32 * scale - 1.0)
        }
        ResizeCoord::AlignCorners => 0.0,
        ResizeCoord::Asymmetric => o / scale,
        ResizeCoord::TfHalfPixelForNn => (o + 0.5) / scale,
    }
}

/// The nearest input index to coordinate `x` (clamped into the axis).
fn resize_nearest(mode: ResizeMode, x: f32, in_len: usize) -> usize {
    let f = libm::floorf(x);
    let i = match mode {
        ResizeMode::NearestFloor => f,
        ResizeMode::NearestCeil => libm::ceilf(x),
        ResizeMode::NearestRoundPreferCeil if x - f >= 0.5 => f + 1.0,
        ResizeMode::NearestRoundPreferFloor if x - f > 0.5 => f + 1.0,
        _ => f,
    };
    // NaN (a degenerate scale) and negatives land on 0.
    if i >= in_len as f32 {
        in_len.saturating_sub(1)
    } else if i > 0.0 {
        i as usize
    } else {
        0
    }
}

/// `Resize` with a nearest mode on elements of `esize` bytes (any type).
#[allow(clippy::too_many_arguments)]
pub fn resize_nearest_any(
    esize: usize,
    in_shape: &Shape,
    scales: &[f32; MAX_RANK],
    mode: ResizeMode,
    coord: ResizeCoord,
    out: &Shape,
    x: &[u8],
    y: &mut [u8],
) -> Result<()> {
    let r = in_shape.rank();
    check((0..r).all(|a| in_shape.dim(a) > 0 || out.dim(a) == 0))?;
    copy_by_index(esize, in_shape, out, &[], x, y, |idx, stride| {
        let mut at = 0;
        for a in 0..r {
            let (n, m) = (in_shape.dim(a), out.dim(a));
            let i = if n == m && scales[a] == 1.0 {
                idx[a]
            } else {
                resize_nearest(mode, resize_coord(coord, idx[a], scales[a], n, m), n)
            };
            at += i * stride[a];
        }
        Some(at)
    })
}

/// Linear `Resize` of float32 data: along each resized axis (at most 3) the two neighbours of
/// the coordinate clamped into the axis, weighted by distance.
pub fn resize_linear(
    in_shape: &Shape,
    scales: &[f32; MAX_RANK],
    coord: ResizeCoord,
    out: &Shape,
    x: &[f32],
    y: &mut [f32],
) -> Result<()> {
    let r = in_shape.rank();
    let resized = |a: usize| in_shape.dim(a) != out.dim(a) || scales[a] != 1.0;
    let mut axes = [0usize; 3];
    let mut k = 0;
    for a in 0..r {
        if resized(a) {
            check(k < 3)?;
            axes[k] = a;
            k += 1;
        }
    }
    check(
        out.rank() == r
            && x.len() == in_shape.numel()
            && y.len() == out.numel()
            && (0..r).all(|a| in_shape.dim(a) > 0 || out.dim(a) == 0),
    )?;
    let stride = strides_of(in_shape);
    let mut idx = [0usize; MAX_RANK];
    for o in y.iter_mut() {
        let mut base = 0;
        for a in 0..r {
            if !resized(a) {
                base += idx[a] * stride[a];
            }
        }
        // Per resized axis: offsets of the two neighbours and their weights.
        let mut nb = [(0usize, 0usize, 1f32, 0f32); 3];
        for (j, &a) in axes[..k].iter().enumerate() {
            let n = in_shape.dim(a);
            let c = resize_coord(coord, idx[a], scales[a], n, out.dim(a));
            let c = if c > 0.0 { c.min((n - 1) as f32) } else { 0.0 };
            let i0 = libm::floorf(c) as usize;
            let i1 = (i0 + 1).min(n - 1);
            let w1 = c - i0 as f32;
            nb[j] = (i0 * stride[a], i1 * stride[a], 1.0 - w1, w1);
        }
        let mut acc = 0f32;
        for corner in 0..(1usize << k) {
            let (mut at, mut w) = (base, 1f32);
            for (j, &(o0, o1, w0, w1)) in nb[..k].iter().enumerate() {
                if corner & (1 << j) == 0 {
                    at += o0;
                    w *= w0;
                } else {
                    at += o1;
                    w *= w1;
                }
            }
            acc += w * *x.get(at).ok_or(Error::BadIo {
                what: "resize index",
            })?;
        }
        *o = acc;
        next_index(&mut idx, out);
    }
    Ok(())
}

/// `Tile` and `Expand` on elements of `esize` bytes: output index `o` reads `o mod in_dim`
/// per axis.
pub fn tile(esize: usize, in_shape: &Shape, out: &Shape, x: &[u8], y: &mut [u8]) -> Result<()> {
    let r = in_shape.rank();
    check((0..r).all(|a| in_shape.dim(a) > 0 || out.dim(a) == 0))?;
    copy_by_index(esize, in_shape, out, &[], x, y, |idx, stride| {
        Some((0..r).map(|a| idx[a] % in_shape.dim(a) * stride[a]).sum())
    })
}

/// Trilu on `esize`-byte elements: every `rows × cols` matrix of `x` keeps the elements with
/// `j − i ≥ k` (`upper`) or `j − i ≤ k` and zeroes the others (all-zero bytes are 0 in
/// every element type). Each row is one kept run of columns and one zeroed run.
pub fn trilu(
    esize: usize,
    rows: usize,
    cols: usize,
    upper: bool,
    k: i64,
    x: &[u8],
    y: &mut [u8],
) -> Result<()> {
    let row = cols * esize;
    check(x.len() == y.len() && (row == 0 || x.len().is_multiple_of((rows * row).max(1))))?;
    if row == 0 {
        return Ok(());
    }
    for (i, (yr, xr)) in y.chunks_mut(row).zip(x.chunks(row)).enumerate() {
        // The diagonal's column in this row, clamped to [0, cols]; saturating for any k.
        let d = ((i % rows.max(1)) as i64).saturating_add(k);
        let at = |c: i64| c.clamp(0, cols as i64) as usize * esize;
        let (keep_from, keep_to) = if upper {
            (at(d), row)
        } else {
            (0, at(d.saturating_add(1)))
        };
        yr.fill(0);
        yr[keep_from..keep_to.max(keep_from)]
            .copy_from_slice(&xr[keep_from..keep_to.max(keep_from)]);
    }
    Ok(())
}

/// Transposes bytes of `esize`-byte elements.
pub fn transpose(
    esize: usize,
    in_shape: &Shape,
    perm: &[u8; MAX_RANK],
    x: &[u8],
    y: &mut [u8],
) -> Result<()> {
    let r = in_shape.rank();
    let n = in_shape.numel();
    check(x.len() == n * esize && y.len() == x.len())?;
    let mut in_strides = [0usize; MAX_RANK];
    let mut s = 1;
    for i in (0..r).rev() {
        in_strides[i] = s;
        s *= in_shape.dim(i);
    }
    let mut out_dims = [0usize; MAX_RANK];
    let mut src_strides = [0usize; MAX_RANK];
    for i in 0..r {
        out_dims[i] = in_shape.dim(perm[i] as usize);
        src_strides[i] = in_strides[perm[i] as usize];
    }
    let mut idx = [0usize; MAX_RANK];
    let mut src = 0usize;
    for o in 0..n {
        y[o * esize..(o + 1) * esize].copy_from_slice(&x[src * esize..(src + 1) * esize]);
        let mut ax = r;
        while ax > 0 {
            ax -= 1;
            idx[ax] += 1;
            src += src_strides[ax];
            if idx[ax] < out_dims[ax] {
                break;
            }
            src -= src_strides[ax] * idx[ax];
            idx[ax] = 0;
        }
    }
    Ok(())
}

/// QuantizeLinear: y = saturate(round_half_even(x / scale) + zp).
pub fn quantize(
    q: &QParams,
    scales: &[f32],
    zps: &[i32],
    out: DType,
    x: &[f32],
    y: &mut [u8],
) -> Result<()> {
    check(
        x.len() == y.len() && scales.len() == q.axis_len && zps.len() == q.axis_len && q.inner > 0,
    )?;
    let (lo, hi) = if out == DType::I8 {
        (-128, 127)
    } else {
        (0, 255)
    };
    // One scale and zero point per run of `inner` elements (the whole tensor when there is
    // one): no index arithmetic per element, and a branch-free loop the compiler vectorizes.
    let run = run_length(q, x.len());
    for (c, (ys, xs)) in y.chunks_mut(run).zip(x.chunks(run)).enumerate() {
        let a = c % q.axis_len;
        let (s, z) = (scales[a], zps[a]);
        for (o, &v) in ys.iter_mut().zip(xs) {
            let t = v / s;
            let q = round_ties_even_small(t).wrapping_add(z).clamp(lo, hi);
            // NaN quantizes to code 0.
            *o = (q & -(!t.is_nan() as i32)) as u8;
        }
    }
    Ok(())
}

/// Elements sharing one scale and zero point in a row: `inner`, or all `len` of a per-tensor
/// quantization (whose plan says `inner = 1`).
fn run_length(q: &QParams, len: usize) -> usize {
    if q.axis_len == 1 {
        len.max(1)
    } else {
        q.inner
    }
}

/// Round half to even for values that are then saturated to 8 bits: inputs beyond ±2^22 are
/// first clamped there (far outside any 8-bit range, so the saturated result is the same), and
/// adding 1.5·2^23 rounds the rest exactly as IEEE round-to-nearest-even does, into [2^23, 2^24]
/// where a float's mantissa bits are the integer: the result is read off the bits, without
/// branches or a float-to-integer conversion (whose saturating semantics keep loops scalar).
/// Equal to [`round_ties_even`] on that range (tested). NaN gives garbage; callers test it.
#[inline(always)]
fn round_ties_even_small(x: f32) -> i32 {
    const MAGIC: f32 = 12_582_912.0;
    let x = x.clamp(-4_194_304.0, 4_194_304.0);
    ((x + MAGIC).to_bits() as i32).wrapping_sub(MAGIC.to_bits() as i32)
}

/// DequantizeLinear: y = (x − zp) · scale.
pub fn dequantize(
    q: &QParams,
    scales: &[f32],
    zps: &[i32],
    input: DType,
    x: &[u8],
    y: &mut [f32],
) -> Result<()> {
    check(
        x.len() == y.len() * input.size()
            && scales.len() == q.axis_len
            && zps.len() == q.axis_len
            && q.inner > 0,
    )?;
    let run = run_length(q, y.len());
    for (c, ys) in y.chunks_mut(run).enumerate() {
        let a = c % q.axis_len;
        let (s, z) = (scales[a], zps[a] as f32);
        let at = c * run * input.size();
        let xs = x
            .get(at..at + ys.len() * input.size())
            .ok_or(Error::BadIo {
                what: "buffer size does not match the plan",
            })?;
        match input {
            DType::I8 => ys
                .iter_mut()
                .zip(xs)
                .for_each(|(o, &v)| *o = (v as i8 as f32 - z) * s),
            DType::U8 => ys
                .iter_mut()
                .zip(xs)
                .for_each(|(o, &v)| *o = (v as f32 - z) * s),
            _ => ys.iter_mut().zip(xs.chunks_exact(4)).for_each(|(o, v)| {
                *o = (i32::from_le_bytes([v[0], v[1], v[2], v[3]]) as f32 - z) * s
            }),
        }
    }
    Ok(())
}

/// Fused int8 Concat: each input rescaled to the output's quantization (or copied when it
/// already has it), chunk by chunk along the axis.
pub fn qconcat<T: Q8>(p: &crate::ops::QConcat, ins: &[&[T]], y: &mut [T]) -> Result<()> {
    let (lo, hi) = T::RANGE;
    let mut off = 0usize;
    for o in 0..p.outer {
        for (x, &(zx, rq)) in ins.iter().zip(&p.inputs) {
            let chunk = x.len() / p.outer.max(1);
            let src = x.get(o * chunk..(o + 1) * chunk);
            let dst = y.get_mut(off..off + chunk);
            let (Some(src), Some(dst)) = (src, dst) else {
                return Err(Error::BadIo {
                    what: "concat buffers differ from the plan",
                });
            };
            if rq.multiplier == 0 {
                dst.copy_from_slice(src);
            } else {
                // An 8-bit input has 256 values: rescale each once, then look them up.
                let mut lut = [T::put(0); 256];
                for (i, e) in lut.iter_mut().enumerate() {
                    let v = T::from_index(i);
                    *e = T::put(p.zy.saturating_add(rq.apply(v - zx)).clamp(lo, hi));
                }
                for (d, s) in dst.iter_mut().zip(src) {
                    *d = lut[T::index(*s)];
                }
            }
            off += chunk;
        }
    }
    check(off == y.len())
}

/// Fused int8 average pool over whole windows (see [`crate::ops::QAvgPool`]). Small windows
/// (sums spanning under 1,024 values, e.g. 2×2) requantize through a table built per call;
/// larger ones (global pooling) requantize each sum.
#[inline(never)] // the table stays in this frame, off the interpreter's
pub fn qavgpool<T: Q8>(p: &crate::ops::QAvgPool, x: &[T], y: &mut [T]) -> Result<()> {
    let w = &p.win;
    check(x.len() == w.n * w.c * w.h * w.w && y.len() == w.n * w.c * w.oh * w.ow)?;
    let (lo, hi) = T::RANGE;
    let count = (w.kh * w.kw) as i32;
    let out = |sum: i32| T::put(p.zy.saturating_add(p.rq.apply(sum)).clamp(lo, hi));
    const TABLE: usize = 1024;
    let span = count as usize * (hi - lo) as usize;
    let mut table = [T::put(0); TABLE];
    let use_table = span < TABLE;
    if use_table {
        // Index Σ (x − lo) ∈ [0, span] stands for the sum Σ (x − zx) = index + count·(lo − zx).
        for (i, e) in table.iter_mut().enumerate().take(span + 1) {
            *e = out(i as i32 + count * (lo - p.zx));
        }
    }
    for (xp, yp) in x
        .chunks_exact((w.h * w.w).max(1))
        .zip(y.chunks_exact_mut((w.oh * w.ow).max(1)))
        .take(w.n * w.c)
    {
        if use_table && (w.kh, w.kw, w.sh, w.sw) == (2, 2, 2, 2) {
            // The DenseNet/ResNet transition: pairs of rows, pairs of columns.
            for (oy, yr) in yp.chunks_exact_mut(w.ow.max(1)).enumerate() {
                let r0 = &xp[2 * oy * w.w..][..2 * w.ow];
                let r1 = &xp[(2 * oy + 1) * w.w..][..2 * w.ow];
                for ((o, a), b) in yr
                    .iter_mut()
                    .zip(r0.chunks_exact(2))
                    .zip(r1.chunks_exact(2))
                {
                    let idx = a[0].get() + a[1].get() + b[0].get() + b[1].get() - 4 * lo;
                    *o = table[idx as usize];
                }
            }
            continue;
        }
        for oy in 0..w.oh {
            for ox in 0..w.ow {
                let mut idx = 0i32;
                for ky in 0..w.kh {
                    let row = &xp[(oy * w.sh + ky) * w.w + ox * w.sw..][..w.kw];
                    for v in row {
                        idx += v.get() - lo;
                    }
                }
                yp[oy * w.ow + ox] = if use_table {
                    table[idx as usize]
                } else {
                    out(idx + count * (lo - p.zx))
                };
            }
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn indices(y: &[u8]) -> [i64; 2] {
        [0, 1].map(|i| i64::from_le_bytes(y[i * 8..i * 8 + 8].try_into().unwrap()))
    }

    /// ONNX's own example (axis 1 of a 2 × 2), negative indices, int32 indices along axis 0 of
    /// a 3 × 3 with a smaller output, and an index past the axis refused.
    #[test]
    fn gather_elements_reads_along_the_axis() {
        let sh = |d: &[i64]| Shape::new(d, "t").unwrap();
        let bytes =
            |v: &[f32]| -> alloc::vec::Vec<u8> { v.iter().flat_map(|x| x.to_le_bytes()).collect() };
        let i64s =
            |v: &[i64]| -> alloc::vec::Vec<u8> { v.iter().flat_map(|x| x.to_le_bytes()).collect() };
        let mut y = [0u8; 16];
        let (x, ix) = (bytes(&[1.0, 2.0, 3.0, 4.0]), i64s(&[0, 0, 1, -2]));
        gather_elements(4, &sh(&[2, 2]), 1, &sh(&[2, 2]), &ix, true, &x, &mut y).unwrap();
        assert_eq!(y[..], bytes(&[1.0, 1.0, 4.0, 3.0])[..]);
        let x9 = bytes(&[1.0, 2.0, 3.0, 4.0, 5.0, 6.0, 7.0, 8.0, 9.0]);
        let ix32: alloc::vec::Vec<u8> = [1i32, 2, 0, 2, 0, 0]
            .iter()
            .flat_map(|v| v.to_le_bytes())
            .collect();
        let mut y6 = [0u8; 24];
        gather_elements(4, &sh(&[3, 3]), 0, &sh(&[2, 3]), &ix32, false, &x9, &mut y6).unwrap();
        assert_eq!(y6[..], bytes(&[4.0, 8.0, 3.0, 7.0, 2.0, 3.0])[..]);
        let past = gather_elements(
            4,
            &sh(&[2, 2]),
            1,
            &sh(&[2, 2]),
            &i64s(&[0, 2, 0, 0]),
            true,
            &x,
            &mut y,
        );
        assert!(matches!(past, Err(Error::BadIo { what }) if what.contains("out of range")));
    }

    /// ONNX's example of ScatterElements along axis 1, duplicate indices added with
    /// `reduction = add`, and an index past the axis refused.
    #[test]
    fn scatter_elements_writes_along_the_axis() {
        use crate::ops::ScatterReduction as R;
        let sh = |d: &[i64]| Shape::new(d, "t").unwrap();
        let f =
            |v: &[f32]| -> alloc::vec::Vec<u8> { v.iter().flat_map(|x| x.to_le_bytes()).collect() };
        let i =
            |v: &[i64]| -> alloc::vec::Vec<u8> { v.iter().flat_map(|x| x.to_le_bytes()).collect() };
        let dims = |reduction| ScatterDims {
            esize: 4,
            data: sh(&[1, 5]),
            indices: sh(&[1, 2]),
            axis: 1,
            wide: true,
            reduction,
        };
        let x = f(&[1.0, 2.0, 3.0, 4.0, 5.0]);
        let mut y = [0u8; 20];
        scatter_elements(&dims(R::None), &x, &i(&[1, -2]), &f(&[1.1, 2.1]), &mut y).unwrap();
        assert_eq!(y[..], f(&[1.0, 1.1, 3.0, 2.1, 5.0])[..]);
        scatter_elements(&dims(R::Add), &x, &i(&[1, 1]), &f(&[1.1, 2.1]), &mut y).unwrap();
        assert_eq!(y[..], f(&[1.0, 2.0 + 1.1 + 2.1, 3.0, 4.0, 5.0])[..]);
        let past = scatter_elements(&dims(R::None), &x, &i(&[5, 0]), &f(&[0.0, 0.0]), &mut y);
        assert!(matches!(past, Err(Error::BadIo { what }) if what.contains("out of range")));
    }

    /// Float Mod (fmod = 1) keeps the dividend's sign, as C's fmod and onnxruntime do.
    #[test]
    fn float_fmod_keeps_the_dividend_sign() {
        let s = Shape::new(&[4], "t").unwrap();
        let bc = crate::ops::broadcast(&s, &s).unwrap();
        let mut y = [0.0f32; 4];
        binary(
            Binary::Fmod,
            &bc,
            &[5.5, -5.5, 5.5, -5.5],
            &[2.0, 2.0, -2.0, -2.0],
            &mut y,
        )
        .unwrap();
        assert_eq!(y, [1.5, -1.5, 1.5, -1.5]);
        binary(
            Binary::Mod,
            &bc,
            &[5.5, -5.5, 5.5, -5.5],
            &[2.0, 2.0, -2.0, -2.0],
            &mut y,
        )
        .unwrap();
        assert_eq!(y, [1.5, 0.5, -0.5, -1.5]);
    }

    #[test]
    fn hardmax_marks_the_first_maximum_per_run() {
        // 2 × 3, axis 1 (inner 1): ties go to the first; NaN wins.
        let x = [1.0, 3.0, 3.0, 0.0, f32::NAN, 9.0];
        let mut y = [7.0; 6];
        hardmax(2, 3, 1, &x, &mut y).unwrap();
        assert_eq!(y, [0.0, 1.0, 0.0, 0.0, 1.0, 0.0]);
        // axis 0 of the same 2 × 3 (outer 1, len 2, inner 3).
        hardmax(1, 2, 3, &x, &mut y).unwrap();
        assert_eq!(y, [1.0, 0.0, 0.0, 0.0, 1.0, 1.0]);
        assert!(hardmax(1, 4, 2, &x, &mut y).is_err());
    }

    #[test]
    fn variadic_steps_fold_three_broadcast_inputs() {
        let out = Shape::new(&[2, 2], "y").unwrap();
        let (row, col, all) = (
            Shape::new(&[2], "r").unwrap(),
            Shape::new(&[2, 1], "c").unwrap(),
            Shape::new(&[2, 2], "a").unwrap(),
        );
        let mut y = [0f32; 4];
        variadic_step(Binary::Add, true, &out, &row, &[1.0, 2.0], &mut y).unwrap();
        variadic_step(Binary::Add, false, &out, &col, &[10.0, 20.0], &mut y).unwrap();
        variadic_step(Binary::Add, false, &out, &all, &[0.5; 4], &mut y).unwrap();
        assert_eq!(y, [11.5, 12.5, 21.5, 22.5]);
        mean_finish(3, &mut y);
        assert_eq!(y[0], 11.5 / 3.0);
        let mut m = [0f32; 4];
        variadic_step(Binary::Max, true, &out, &row, &[1.0, f32::NAN], &mut m).unwrap();
        variadic_step(Binary::Max, false, &out, &col, &[0.0, 5.0], &mut m).unwrap();
        assert_eq!((m[0], m[2]), (1.0, 5.0));
        assert!(m[1].is_nan() && m[3].is_nan());
        // An input that does not broadcast to the output is an error.
        assert!(variadic_step(
            Binary::Max,
            false,
            &out,
            &Shape::new(&[3], "z").unwrap(),
            &[0.0; 3],
            &mut m
        )
        .is_err());
    }

    #[test]
    fn convert_truncates_saturates_wraps_and_tests_nonzero() {
        use alloc::vec::Vec;
        let f: Vec<u8> = [2.7f32, -2.7, 300.0, -1e10, f32::NAN, 0.0, -0.0]
            .iter()
            .flat_map(|v| v.to_le_bytes())
            .collect();
        let mut y = [0u8; 7];
        convert(DType::F32, DType::I8, &f, &mut y).unwrap();
        assert_eq!(y.map(|b| b as i8), [2, -2, 127, -128, 0, 0, 0]);
        convert(DType::F32, DType::U8, &f, &mut y).unwrap();
        assert_eq!(y, [2, 0, 255, 0, 0, 0, 0]);
        convert(DType::F32, DType::Bool, &f, &mut y).unwrap();
        assert_eq!(y, [1, 1, 1, 1, 1, 0, 0]);
        // int64 -> int8 wraps (numpy, onnxruntime); -> float32 rounds to nearest.
        let w: Vec<u8> = [300i64, -129, (1 << 24) + 1]
            .iter()
            .flat_map(|v| v.to_le_bytes())
            .collect();
        let mut b = [0u8; 3];
        convert(DType::I64, DType::I8, &w, &mut b).unwrap();
        assert_eq!(b.map(|v| v as i8), [44, 127, 1]);
        let mut fl = [0u8; 12];
        convert(DType::I64, DType::F32, &w, &mut fl).unwrap();
        let got: Vec<f32> = fl
            .chunks_exact(4)
            .map(|c| f32::from_le_bytes(c.try_into().unwrap()))
            .collect();
        assert_eq!(got, [300.0, -129.0, 16_777_216.0]);
        // bool -> float32 is 0/1; a wrong output size is an error.
        convert(DType::Bool, DType::F32, &[1, 0, 1], &mut fl).unwrap();
        assert_eq!(&fl[..4], &1f32.to_le_bytes());
        assert_eq!(&fl[4..8], &0f32.to_le_bytes());
        assert!(convert(DType::Bool, DType::F32, &[1, 0], &mut fl).is_err());
    }

    #[test]
    fn arg_extreme_ties_and_nan() {
        // Two rows of four along the last axis: ties at 1 and 3, then a NaN at 2.
        let x = [0.0, 5.0, 1.0, 5.0, 1.0, 9.0, f32::NAN, 9.0];
        let mut y = [0u8; 16];
        arg_extreme(2, 4, 1, true, false, &x, &mut y).unwrap();
        assert_eq!(indices(&y), [1, 2]);
        arg_extreme(2, 4, 1, true, true, &x, &mut y).unwrap();
        assert_eq!(indices(&y), [3, 2]);
        arg_extreme(2, 4, 1, false, false, &x, &mut y).unwrap();
        assert_eq!(indices(&y), [0, 2]);
        // Along the first axis of a 4 × 2 view: columns (0, 1, 1, NaN) and (5, 5, 9, 9).
        arg_extreme(1, 4, 2, true, false, &x, &mut y).unwrap();
        assert_eq!(indices(&y), [3, 2]);
        // A wrong output size is a typed error, not a panic.
        assert!(arg_extreme(2, 4, 1, true, false, &x, &mut y[..8]).is_err());
    }

    /// `Pad` of u8 elements (any element type takes the same byte path).
    fn pad_u8(
        x: &[u8],
        in_dims: &[i64],
        begin: &[i32],
        out_dims: &[i64],
        mode: PadMode,
    ) -> [u8; 18] {
        let (si, so) = (
            Shape::new(in_dims, "x").unwrap(),
            Shape::new(out_dims, "y").unwrap(),
        );
        let mut b = [0i32; MAX_RANK];
        b[..begin.len()].copy_from_slice(begin);
        let mut y = [0u8; 18];
        pad(1, &si, &b, mode, &[9], &so, x, &mut y[..so.numel()]).unwrap();
        y
    }

    #[test]
    fn pad_modes_match_numpy_including_pads_longer_than_the_axis() {
        // Expected values from numpy.pad([1, 2, 3], (4, 5), mode).
        let x = [1u8, 2, 3];
        let y = pad_u8(&x, &[3], &[4], &[12], PadMode::Reflect);
        assert_eq!(y[..12], [1, 2, 3, 2, 1, 2, 3, 2, 1, 2, 3, 2]);
        let y = pad_u8(&x, &[3], &[4], &[12], PadMode::Wrap);
        assert_eq!(y[..12], [3, 1, 2, 3, 1, 2, 3, 1, 2, 3, 1, 2]);
        let y = pad_u8(&x, &[3], &[4], &[12], PadMode::Edge);
        assert_eq!(y[..12], [1, 1, 1, 1, 1, 2, 3, 3, 3, 3, 3, 3]);
        // numpy.pad(arange(6).reshape(2, 3), ((1, 0), (2, 1)), "reflect").
        let x2 = [0u8, 1, 2, 3, 4, 5];
        let y = pad_u8(&x2, &[2, 3], &[1, 2], &[3, 6], PadMode::Reflect);
        assert_eq!(
            y[..18],
            [5, 4, 3, 4, 5, 4, 2, 1, 0, 1, 2, 1, 5, 4, 3, 4, 5, 4]
        );
        // Negative pads crop; constant mode fills with the value: pads (-1, 1) on [1, 2, 3].
        let y = pad_u8(&x, &[3], &[-1], &[3], PadMode::Constant);
        assert_eq!(y[..3], [2, 3, 9]);
    }

    #[test]
    fn tile_and_expand_repeat_by_index_modulo() {
        let (si, so) = (
            Shape::new(&[1, 2], "x").unwrap(),
            Shape::new(&[2, 4], "y").unwrap(),
        );
        let mut y = [0u8; 8];
        tile(1, &si, &so, &[7, 8], &mut y).unwrap();
        assert_eq!(y, [7, 8, 7, 8, 7, 8, 7, 8]);
        assert!(tile(1, &si, &so, &[7], &mut y).is_err());
    }

    #[test]
    fn qmul_matches_the_exact_rounded_product() {
        // Every pair of int8 codes, against round_half_even(sa·sb/sy·(a − za)(b − zb)) + zy in
        // f64: one step at most (the Q31 multiplier on a near-tie), exact almost always.
        let (sa, sb, sy, za, zb, zy) = (0.043f64, 0.0071f64, 0.0093f64, -7, 12, -3);
        let shape = Shape::new(&[1], "x").unwrap();
        let p = QMul {
            bc: crate::ops::broadcast(&shape, &shape).unwrap(),
            za,
            zb,
            zy,
            m: crate::quant::Requant::from_f64(sa * sb / sy),
            act_min: -128,
            act_max: 127,
            unsigned: false,
        };
        let (mut exact, mut total) = (0, 0);
        for a in -128..=127 {
            for b in -128..=127 {
                let want =
                    (sa * sb / sy * ((a - za) * (b - zb)) as f64).round_ties_even() as i32 + zy;
                let got = p.output(a, b);
                assert!(
                    (got - want.clamp(-128, 127)).abs() <= 1,
                    "{a}·{b}: {got} vs {want}"
                );
                exact += usize::from(got == want.clamp(-128, 127));
                total += 1;
            }
        }
        assert!(exact * 1000 >= total * 999, "{exact} of {total} exact");
    }

    #[test]
    fn matmul_rows_equal_the_dot_products_bit_for_bit() {
        use std::vec;
        use std::vec::Vec;
        // (batch, m, k, n), batch strides as a broadcast B (sb = 0) or packed ones.
        for (batch, m, k, n, shared_b) in [
            (1, 7, 257, 40, false),
            (3, 4, 5, 6, true),
            (2, 1, 9, 1, false),
            (2, 3, 0, 4, false),
            (1, 3, 4, 0, false),
            (1, 33, 17, 65, false),
        ] {
            let (sa, sb) = (m * k, if shared_b { 0 } else { k * n });
            let seed = |len: usize, s: usize| -> Vec<f32> {
                (0..len)
                    .map(|i| ((i * 7919 + s) % 1009) as f32 / 97.0 - 5.0)
                    .collect()
            };
            let a = seed(batch * sa, 1);
            let b = seed(if shared_b { k * n } else { batch * sb }, 2);
            let (mut fast, mut dot) = (vec![f32::NAN; batch * m * n], vec![0f32; batch * m * n]);
            matmul_f32(batch, m, k, n, sa, sb, &a, &b, &mut fast).unwrap();
            matmul_f32_ref(batch, m, k, n, sa, sb, &a, &b, &mut dot);
            let bits = |v: &[f32]| v.iter().map(|f| f.to_bits()).collect::<Vec<_>>();
            assert_eq!(bits(&fast), bits(&dot), "{batch}x{m}x{k}x{n}");
        }
    }

    #[test]
    fn reduce_mean_over_spatial_axes_is_the_global_average_pool_bit_for_bit() {
        // PyTorch exports `x.mean((2, 3))` as ReduceMean: it must equal GlobalAveragePool.
        let shape = Shape::new(&[2, 3, 4, 5], "x").unwrap();
        let x: std::vec::Vec<f32> = (0..120)
            .map(|i| ((i * 37 % 101) as f32 - 50.0) / 7.0)
            .collect();
        let (mut a, mut b) = ([0f32; 6], [0f32; 6]);
        reduce(Reduce::Mean, &shape, 0b1100, &x, &mut a).unwrap();
        global_avg(6, 20, &x, &mut b).unwrap();
        assert_eq!(a.map(f32::to_bits), b.map(f32::to_bits));
    }

    #[test]
    fn one_run_reductions_equal_the_general_walk_bit_for_bit() {
        use std::vec;
        use std::vec::Vec;
        use Reduce::*;
        let kinds = [
            Sum, Mean, Max, Min, Prod, L1, L2, LogSum, LogSumExp, SumSquare,
        ];
        let dims: [&[usize]; 6] = [
            &[7],
            &[3, 5],
            &[2, 3, 4],
            &[2, 3, 4, 5],
            &[1, 9, 1, 3],
            &[2, 0, 3],
        ];
        let mut tested = 0;
        for (case, d) in dims.into_iter().enumerate() {
            let as_i64: Vec<i64> = d.iter().map(|&v| v as i64).collect();
            let shape = Shape::new(&as_i64, "x").unwrap();
            let total: usize = d.iter().product();
            let mut x: std::vec::Vec<f32> = (0..total)
                .map(|i| ((i * 37 + case * 11) % 23) as f32 / 4.0 - 2.5)
                .collect();
            if total > 5 {
                (x[3], x[5]) = (f32::NAN, f32::NEG_INFINITY);
            }
            // Every run of axes (the fast walk) and one split set (the general walk only).
            let rank = d.len();
            for lo in 0..rank {
                for hi in lo + 1..=rank {
                    let axes = ((1u16 << hi) - (1u16 << lo)) as u8;
                    let outputs = total / d[lo..hi].iter().product::<usize>().max(1);
                    let outputs = if d[lo..hi].contains(&0) {
                        d.iter()
                            .enumerate()
                            .filter(|(a, _)| !(lo..hi).contains(a))
                            .map(|(_, v)| v)
                            .product()
                    } else {
                        outputs
                    };
                    for kind in kinds {
                        let (mut fast, mut general) =
                            (vec![0.5f32; outputs], vec![-0.5f32; outputs]);
                        reduce(kind, &shape, axes, &x, &mut fast).unwrap();
                        reduce_general(kind, &shape, axes, &x, &mut general).unwrap();
                        let bits = |v: &[f32]| v.iter().map(|f| f.to_bits()).collect::<Vec<_>>();
                        assert_eq!(bits(&fast), bits(&general), "{kind:?} {d:?} axes {axes:#b}");
                        tested += 1;
                    }
                }
            }
        }
        assert!(tested > 200, "{tested}");
    }

    #[test]
    fn reduce_walks_inner_and_outer_axes_and_propagates_nan() {
        // 2 × 3 × 2, reduce axis 1: y[i][k] = op over j of x[i][j][k].
        let shape = Shape::new(&[2, 3, 2], "x").unwrap();
        let mut x: [f32; 12] = core::array::from_fn(|v| v as f32);
        let mut y = [0f32; 4];
        reduce(Reduce::Sum, &shape, 0b010, &x, &mut y).unwrap();
        assert_eq!(y, [6.0, 9.0, 24.0, 27.0]);
        reduce(Reduce::Max, &shape, 0b010, &x, &mut y).unwrap();
        assert_eq!(y, [4.0, 5.0, 10.0, 11.0]);
        x[2] = f32::NAN;
        reduce(Reduce::Min, &shape, 0b010, &x, &mut y).unwrap();
        assert!(y[0].is_nan() && y[1] == 1.0);
        // Log-sum-exp of large values does not overflow: ln(2·e^100) = 100 + ln 2.
        let big = Shape::new(&[2], "b").unwrap();
        let mut one = [0f32; 1];
        reduce(Reduce::LogSumExp, &big, 0b1, &[100.0, 100.0], &mut one).unwrap();
        assert!((one[0] - (100.0 + core::f32::consts::LN_2)).abs() < 1e-4);
        // A wrongly sized output is an error, not a panic.
        assert!(reduce(Reduce::Sum, &shape, 0b010, &x, &mut [0f32; 3]).is_err());
    }

    #[test]
    fn log_softmax_stays_finite_where_softmax_underflows() {
        let x = [0.0f32, 200.0];
        let mut y = [0f32; 2];
        softmax(1, 2, 1, true, &x, &mut y).unwrap();
        assert_eq!(y, [-200.0, 0.0]);
        softmax(1, 2, 1, false, &x, &mut y).unwrap();
        assert_eq!(y, [0.0, 1.0]);
    }

    #[test]
    fn new_unary_functions_match_hand_computed_values() {
        let u = |f, v| unary_one(f, v);
        assert_eq!(u(Unary::HardSigmoid(0.2, 0.5), 1.0), 0.7);
        assert_eq!(u(Unary::HardSwish, 6.0), 6.0);
        assert_eq!(u(Unary::HardSwish, -3.0), 0.0);
        assert_eq!(u(Unary::Softsign, 3.0), 0.75);
        assert_eq!(u(Unary::ThresholdedRelu(1.0), 1.0), 0.0);
        assert_eq!(u(Unary::Round, 2.5), 2.0); // half to even
        assert_eq!(u(Unary::Round, -1.5), -2.0);
        assert_eq!(u(Unary::Sign, -0.5), -1.0);
        // Softplus of a large input is the input (no overflow to inf).
        assert_eq!(u(Unary::Softplus, 1000.0), 1000.0);
        assert!((u(Unary::Softplus, 0.0) - core::f32::consts::LN_2).abs() < 1e-7);
        assert!((u(Unary::Elu(1.0), -1.0) - (-0.632_120_56)).abs() < 1e-7);
    }

    #[test]
    fn gather_picks_rows_wraps_negatives_and_refuses_bad_indices() {
        // Data 2 × 3 (outer 1, axis 2, inner 3), f32 as bytes; indices [1, -2] (int64).
        let x: [f32; 6] = [1.0, 2.0, 3.0, 4.0, 5.0, 6.0];
        let xb: [u8; 24] = bytemuck::cast(x);
        let idx: [u8; 16] = bytemuck::cast([1i64, -2]);
        let mut y = [0u8; 24];
        let d = GatherDims {
            outer: 1,
            axis_len: 2,
            inner: 3,
            indices: 2,
        };
        gather(4, d, &idx, true, &xb, &mut y).unwrap();
        let yf: [f32; 6] = bytemuck::cast(y);
        assert_eq!(yf, [4.0, 5.0, 6.0, 1.0, 2.0, 3.0]);
        let bad: [u8; 16] = bytemuck::cast([2i64, 0]);
        assert!(gather(4, d, &bad, true, &xb, &mut y).is_err());
        let bad32: [u8; 8] = bytemuck::cast([0i32, -3]);
        assert!(gather(4, d, &bad32, false, &xb, &mut y).is_err());
    }
    use crate::quant::{round_ties_even, Requant};

    struct Lcg(u64);
    impl Lcg {
        fn next(&mut self) -> u32 {
            self.0 = self
                .0
                .wrapping_mul(6364136223846793005)
                .wrapping_add(1442695040888963407);
            (self.0 >> 33) as u32
        }
        fn range(&mut self, lo: usize, hi: usize) -> usize {
            lo + self.next() as usize % (hi - lo + 1)
        }
    }

    fn floats(rng: &mut Lcg, n: usize) -> std::vec::Vec<f32> {
        (0..n)
            .map(|_| (rng.next() as f32 / u32::MAX as f32 - 0.5) * 4.0)
            .collect()
    }

    #[test]
    fn f32_conv_rows_are_bit_exact_with_the_reference() {
        let mut rng = Lcg(99);
        for case in 0..200 {
            let group = [1, 1, 2][rng.range(0, 2)];
            // Up to 9 channels per group and 40 columns: the 4-channel × 16/8-column register
            // tiles, the channels and columns they leave, and rows narrower than a tile.
            let (c, oc) = (group * rng.range(1, 4), group * rng.range(1, 9));
            let (kh, kw) = (rng.range(1, 3), rng.range(1, 3));
            let (sh, sw) = (rng.range(1, 2), rng.range(1, 2));
            let (h, w) = (rng.range(kh, 9), rng.range(kw, 40));
            let (pt, pl) = (rng.range(0, 1), rng.range(0, 1));
            let (oh, ow) = ((h + 2 * pt - kh) / sh + 1, (w + 2 * pl - kw) / sw + 1);
            let win = Window {
                n: 1,
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
                dh: 1,
                dw: 1,
                group,
            };
            let x = floats(&mut rng, c * h * w);
            let wt = floats(&mut rng, oc * c / group * kh * kw);
            let b = floats(&mut rng, oc);
            let (mut y1, mut y2) = (std::vec![0f32; oc * oh * ow], std::vec![0f32; oc * oh * ow]);
            conv_f32(&win, &x, &wt, Some(&b), &mut y1).unwrap();
            let mut scratch = std::vec![0u128; conv_f32_scratch_bytes(&win).div_ceil(16)];
            conv_f32_rows(
                &win,
                &x,
                &wt,
                Some(&b),
                &mut y2,
                bytemuck::cast_slice_mut(&mut scratch),
            )
            .unwrap();
            let mut y3 = std::vec![0f32; oc * oh * ow];
            conv_f32_rows_portable(
                &win,
                &x,
                &wt,
                Some(&b),
                &mut y3,
                bytemuck::cast_slice_mut(&mut scratch),
            )
            .unwrap();
            let bits = |v: &[f32]| v.iter().map(|f| f.to_bits()).collect::<std::vec::Vec<_>>();
            assert_eq!(bits(&y1), bits(&y2), "case {case}");
            assert_eq!(bits(&y1), bits(&y3), "case {case} (portable)");
        }
    }

    #[test]
    fn f32_gemm_rows_are_bit_exact_with_the_reference() {
        let mut rng = Lcg(5);
        for _ in 0..100 {
            // Up to 80 columns: the 32- and 8-column register tiles and the rest.
            let (m, k, n) = (rng.range(1, 4), rng.range(1, 40), rng.range(1, 80));
            let (a, b, cvec) = (
                floats(&mut rng, m * k),
                floats(&mut rng, k * n),
                floats(&mut rng, n),
            );
            let bc = crate::ops::broadcast(
                &Shape::from_usize(&[m, n], "y").unwrap(),
                &Shape::from_usize(&[n], "c").unwrap(),
            )
            .unwrap();
            let (mut y1, mut y2) = (std::vec![0f32; m * n], std::vec![0f32; m * n]);
            gemm_f32(
                m,
                k,
                n,
                false,
                false,
                0.7,
                1.3,
                Some((&bc, &cvec)),
                &a,
                &b,
                &mut y1,
            )
            .unwrap();
            gemm_f32_rows(m, k, n, 0.7, 1.3, Some((&bc, &cvec)), &a, &b, &mut y2).unwrap();
            let mut y3 = std::vec![0f32; m * n];
            gemm_f32_rows_portable(m, k, n, 0.7, 1.3, Some((&bc, &cvec)), &a, &b, &mut y3).unwrap();
            let bits = |v: &[f32]| v.iter().map(|f| f.to_bits()).collect::<std::vec::Vec<_>>();
            assert_eq!(bits(&y1), bits(&y2));
            assert_eq!(bits(&y1), bits(&y3), "portable");
        }
    }

    #[test]
    fn maxpool_2x2_fast_path_matches_a_naive_max() {
        let mut rng = Lcg(7);
        for _ in 0..50 {
            let (c, h, w) = (rng.range(1, 4), rng.range(2, 13), rng.range(2, 13));
            let win = Window {
                n: 1,
                c,
                h,
                w,
                oc: c,
                oh: h / 2,
                ow: w / 2,
                kh: 2,
                kw: 2,
                sh: 2,
                sw: 2,
                dh: 1,
                dw: 1,
                pt: 0,
                pl: 0,
                group: 1,
            };
            let x: std::vec::Vec<i8> = (0..c * h * w).map(|_| rng.next() as i8).collect();
            let mut y = std::vec![0i8; c * (h / 2) * (w / 2)];
            maxpool(&win, i8::MIN, &x, &mut y).unwrap();
            for ch in 0..c {
                for oy in 0..h / 2 {
                    for ox in 0..w / 2 {
                        let at = |yy: usize, xx: usize| x[(ch * h + yy) * w + xx];
                        let want = at(2 * oy, 2 * ox)
                            .max(at(2 * oy, 2 * ox + 1))
                            .max(at(2 * oy + 1, 2 * ox))
                            .max(at(2 * oy + 1, 2 * ox + 1));
                        assert_eq!(y[(ch * (h / 2) + oy) * (w / 2) + ox], want);
                    }
                }
            }
        }
    }

    #[test]
    fn portable_im2row_is_bit_exact_too() {
        // The dispatching test above runs the AVX2 build where the CPU has it; this one pins the
        // portable build of the same kernel.
        let mut rng = Lcg(11);
        for _ in 0..100 {
            let (c, oc, h, w) = (
                rng.range(1, 40),
                rng.range(1, 6),
                rng.range(1, 6),
                rng.range(1, 12),
            );
            let win = Window {
                n: 1,
                c,
                h,
                w,
                oc,
                oh: h,
                ow: w,
                kh: 1,
                kw: 1,
                sh: 1,
                sw: 1,
                dh: 1,
                dw: 1,
                pt: 0,
                pl: 0,
                group: 1,
            };
            let p = QLinear {
                win,
                zx: 3,
                zy: -2,
                act_min: -128,
                act_max: 127,
                bias: 0,
                requant: 0,
                packed: 0,
                packed_len: 0,
                w_stride_oc: c,
                w_stride_k: 1,
                unsigned: false,
            };
            let x: std::vec::Vec<i8> = (0..c * h * w).map(|_| rng.next() as i8).collect();
            let wt: std::vec::Vec<i8> = (0..oc * c).map(|_| rng.next() as i8).collect();
            let bias: std::vec::Vec<i32> = (0..oc).map(|_| rng.next() as i32 % 999).collect();
            let rq: std::vec::Vec<i32> = (0..oc)
                .flat_map(|_| {
                    let r = Requant::from_f64(0.003);
                    [r.multiplier, r.shift]
                })
                .collect();
            let mut y1 = std::vec![0i8; oc * h * w];
            let mut y2 = y1.clone();
            qconv_ref(&p, &x, &wt, &bias, RequantTable(&rq), &mut y1).unwrap();
            let mut scratch = std::vec![0u128; im2row_scratch_bytes(&p).div_ceil(16)];
            qconv_im2row_portable(
                &p,
                &x,
                &wt,
                &bias,
                RequantTable(&rq),
                &mut y2,
                bytemuck::cast_slice_mut(&mut scratch),
            )
            .unwrap();
            assert_eq!(y1, y2);
        }
    }

    #[test]
    fn im2row_conv_is_bit_exact_with_the_reference() {
        let mut rng = Lcg(42);
        for case in 0..300 {
            let group = [1, 1, 2, 4][rng.range(0, 3)];
            let c = group * rng.range(1, 4);
            let oc = group * rng.range(1, 4);
            let (kh, kw) = (rng.range(1, 3), rng.range(1, 3));
            let (sh, sw, dh, dw) = (rng.range(1, 2), rng.range(1, 2), 1, rng.range(1, 2));
            let (h, w) = (rng.range(kh, 9), rng.range((kw - 1) * dw + 1, 24));
            let (pt, pl) = (rng.range(0, 1), rng.range(0, 2));
            let oh = (h + 2 * pt - ((kh - 1) * dh + 1)) / sh + 1;
            let ow = (w + 2 * pl - ((kw - 1) * dw + 1)) / sw + 1;
            let win = Window {
                n: rng.range(1, 2),
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
                group,
            };
            let kk = c / group * kh * kw;
            let p = QLinear {
                win,
                zx: rng.range(0, 40) as i32 - 20,
                zy: rng.range(0, 20) as i32 - 10,
                act_min: -128 + rng.range(0, 100) as i32,
                act_max: 127,
                bias: 0,
                requant: 0,
                packed: 0,
                packed_len: 0,
                w_stride_oc: kk,
                w_stride_k: 1,
                unsigned: false,
            };
            let x: std::vec::Vec<i8> = (0..win.n * c * h * w).map(|_| rng.next() as i8).collect();
            let wt: std::vec::Vec<i8> = (0..oc * kk).map(|_| (rng.next() % 255) as i8).collect();
            let bias: std::vec::Vec<i32> = (0..oc).map(|_| rng.next() as i32 % 5000).collect();
            let rq: std::vec::Vec<i32> = (0..oc)
                .flat_map(|_| {
                    let r = Requant::from_f64(0.0005 + (rng.next() % 1000) as f64 * 1e-5);
                    [r.multiplier, r.shift]
                })
                .collect();
            let mut y1 = std::vec![0i8; win.n * oc * oh * ow];
            let mut y2 = y1.clone();
            qconv_ref(&p, &x, &wt, &bias, RequantTable(&rq), &mut y1).unwrap();
            // u128 storage keeps the scratch 16-byte aligned, as the planner does.
            let mut scratch = std::vec![0u128; qconv_scratch_bytes(&p).div_ceil(16)];
            qconv_im2row(
                &p,
                &x,
                &wt,
                &bias,
                &[],
                RequantTable(&rq),
                &mut y2,
                bytemuck::cast_slice_mut(&mut scratch),
            )
            .unwrap();
            assert_eq!(y1, y2, "case {case}: {win:?}");
        }
    }

    #[test]
    fn clip_is_min_of_max_and_keeps_nan() {
        let c = |v, lo, hi| unary_one(Unary::Clip(lo, hi), v);
        assert_eq!(c(5.0, -1.0, 2.0), 2.0);
        assert_eq!(c(-5.0, -1.0, 2.0), -1.0);
        // min > max: every value becomes max (ONNX), whichever side it was on.
        assert_eq!(c(-5.0, 3.0, 1.0), 1.0);
        assert_eq!(c(2.0, 3.0, 1.0), 1.0);
        assert!(c(f32::NAN, 0.0, 1.0).is_nan());
    }

    #[test]
    fn trilu_keeps_one_side_of_diagonal_k() {
        // Two 3×4 matrices of bytes 1..=24.
        let x: std::vec::Vec<u8> = (1..=24).collect();
        let mut y = [0u8; 24];
        let run = |upper, k, y: &mut [u8]| trilu(1, 3, 4, upper, k, &x, y).unwrap();
        run(true, 1, &mut y);
        // Upper with k = 1: row i keeps columns j ≥ i + 1.
        assert_eq!(
            y[..12],
            [0, 2, 3, 4, 0, 0, 7, 8, 0, 0, 0, 12],
            "upper, k = 1"
        );
        assert_eq!(y[12..], [0, 14, 15, 16, 0, 0, 19, 20, 0, 0, 0, 24]);
        run(false, -1, &mut y);
        // Lower with k = −1: row i keeps columns j ≤ i − 1.
        assert_eq!(
            y[..12],
            [0, 0, 0, 0, 5, 0, 0, 0, 9, 10, 0, 0],
            "lower, k = -1"
        );
        // Extreme k never overflows: everything or nothing is kept.
        run(true, i64::MIN, &mut y);
        assert_eq!(y[..], x[..]);
        run(false, i64::MAX, &mut y);
        assert_eq!(y[..], x[..]);
        run(true, i64::MAX, &mut y);
        assert_eq!(y, [0; 24]);
        // Wider elements are zeroed whole.
        let wide: std::vec::Vec<u8> = [1i64, 2, 3, 4]
            .iter()
            .flat_map(|v| v.to_le_bytes())
            .collect();
        let mut out = [0xffu8; 32];
        trilu(8, 2, 2, false, 0, &wide, &mut out).unwrap();
        let got: std::vec::Vec<i64> = out
            .chunks(8)
            .map(|c| i64::from_le_bytes(c.try_into().unwrap()))
            .collect();
        assert_eq!(got, [1, 0, 3, 4]);
        assert!(trilu(1, 3, 4, true, 0, &x, &mut y[..23]).is_err());
    }

    /// The loop reads rounded values off float bits; it must equal ONNX's definition
    /// `saturate(round_half_even(x / scale) + zero_point)` written plainly (NaN to code 0).
    #[test]
    fn quantize_equals_the_plain_definition() {
        let mut rng = Lcg(9);
        let mut x: std::vec::Vec<f32> = std::vec![
            f32::NAN,
            f32::INFINITY,
            f32::NEG_INFINITY,
            1e30,
            -1e30,
            0.0,
            -0.0,
            0.125,
            -0.375
        ];
        x.extend((0..4000).map(|i| (rng.next() as i32 as f32) / (1u32 << (i % 28)) as f32));
        x.extend((0..4000).map(|_| (rng.next() % 2001) as f32 * 0.25 - 250.0));
        x.truncate(8000);
        for (out, lo, hi) in [(DType::I8, -128.0f32, 127.0f32), (DType::U8, 0.0, 255.0)] {
            for (scales, zps, inner) in [
                (std::vec![0.25f32], std::vec![3i32], 8000usize),
                (
                    std::vec![0.1, 1.0, 0.003, 2.5],
                    std::vec![0, -7, 100, 1],
                    500,
                ),
            ] {
                let zps: std::vec::Vec<i32> = zps
                    .iter()
                    .map(|&z| {
                        if out == DType::U8 {
                            z.rem_euclid(256)
                        } else {
                            z
                        }
                    })
                    .collect();
                let q = QParams {
                    scales: 0,
                    zps: 0,
                    axis_len: scales.len(),
                    inner,
                };
                let mut got = std::vec![0u8; x.len()];
                quantize(&q, &scales, &zps, out, &x, &mut got).unwrap();
                for (i, (&v, &g)) in x.iter().zip(&got).enumerate() {
                    let a = i / inner % scales.len();
                    let r = round_ties_even(v / scales[a]);
                    let want = if r.is_nan() {
                        0
                    } else {
                        (r + zps[a] as f32).clamp(lo, hi) as i32 as u8
                    };
                    assert_eq!(g, want, "{v} / {} + {} as {out:?}", scales[a], zps[a]);
                }
            }
        }
    }

    #[test]
    fn branch_free_rounding_equals_round_ties_even() {
        let mut rng = Lcg(5);
        let specials = [
            0.5f32,
            1.5,
            2.5,
            -0.5,
            -1.5,
            -2.5,
            127.5,
            -128.5,
            4_194_303.5,
            0.0,
            -0.0,
        ];
        let wide: std::vec::Vec<f32> = (0..100_000)
            .map(|_| (rng.next() as i32 as f32) / 1024.0)
            .collect();
        let quarters: std::vec::Vec<f32> = (0..100_000)
            .map(|_| (rng.next() % 2000) as f32 * 0.25 - 250.0)
            .collect();
        for x in specials.into_iter().chain(wide).chain(quarters) {
            assert_eq!(round_ties_even_small(x) as f32, round_ties_even(x), "{x}");
        }
        assert_eq!(round_ties_even_small(1e30), 4_194_304);
        assert_eq!(round_ties_even_small(-1e30), -4_194_304);
    }

    #[test]
    fn exp_sqrt_tanh_are_accurate() {
        for i in -200..200 {
            let x = i as f32 * 0.37;
            let want = (x as f64).exp();
            let got = exp(x) as f64;
            if want < 1e37 {
                assert!(
                    ((got - want) / want).abs() < 1e-6,
                    "exp({x}) = {got}, want {want}"
                );
            }
            let t = tanh(x / 10.0) as f64;
            assert!((t - (x as f64 / 10.0).tanh()).abs() < 1e-6);
        }
        for i in 1..500 {
            let x = i as f32 * 1.7;
            assert_eq!(sqrt(x), x.sqrt());
        }
    }

    #[test]
    fn qconcat_lookup_equals_the_per_element_formula() {
        let mut rng = Lcg(7);
        for case in 0..200 {
            let outer = rng.range(1, 3);
            let lens = [rng.range(1, 40), rng.range(1, 40)];
            let xs: std::vec::Vec<std::vec::Vec<i8>> = lens
                .iter()
                .map(|&l| (0..outer * l).map(|_| rng.next() as u8 as i8).collect())
                .collect();
            let mut inputs = [(0, Requant::default()); crate::ops::MAX_QCONCAT_INPUTS];
            for slot in inputs.iter_mut().take(2) {
                let m = (rng.next() % 4000) as f64 / 1000.0 + 0.01;
                *slot = ((rng.next() % 256) as i32 - 128, Requant::from_f64(m));
            }
            if case % 5 == 0 {
                inputs[1].1 = Requant::default(); // copy path
            }
            let p = crate::ops::QConcat {
                outer,
                inner: 1,
                zy: (rng.next() % 256) as i32 - 128,
                inputs,
                unsigned: false,
            };
            let mut y = std::vec![0i8; outer * (lens[0] + lens[1])];
            let ins: [&[i8]; 2] = [&xs[0], &xs[1]];
            qconcat(&p, &ins, &mut y).unwrap();
            let mut k = 0;
            for o in 0..outer {
                for (i, x) in xs.iter().enumerate() {
                    for &v in &x[o * lens[i]..(o + 1) * lens[i]] {
                        let (zx, rq) = p.inputs[i];
                        let want = if rq.multiplier == 0 {
                            v as i32
                        } else {
                            (p.zy + rq.apply(v as i32 - zx)).clamp(-128, 127)
                        };
                        assert_eq!(y[k] as i32, want, "case {case}");
                        k += 1;
                    }
                }
            }
        }
    }

    #[test]
    fn qavgpool_matches_a_float_average() {
        let mut rng = Lcg(9);
        for case in 0..100 {
            let (h, w) = (rng.range(2, 9), rng.range(2, 9));
            let (mut kh, mut kw) = (rng.range(1, h), rng.range(1, w));
            let (mut sh, mut sw) = (rng.range(1, 3), rng.range(1, 3));
            if case % 4 == 0 {
                // The 2×2 / stride-2 fast path.
                (kh, kw, sh, sw) = (2, 2, 2, 2);
            }
            let win = crate::ops::Window {
                n: 1,
                c: 2,
                h,
                w,
                oc: 2,
                oh: (h - kh) / sh + 1,
                ow: (w - kw) / sw + 1,
                kh,
                kw,
                sh,
                sw,
                pt: 0,
                pl: 0,
                dh: 1,
                dw: 1,
                group: 1,
            };
            let (sx, sy, zx, zy) = (0.05f64, 0.04f64, 3, 250);
            let p = crate::ops::QAvgPool {
                win,
                zx,
                zy,
                rq: Requant::from_f64(sx / (sy * (kh * kw) as f64)),
                unsigned: true,
            };
            let x: std::vec::Vec<u8> = (0..2 * h * w).map(|_| rng.next() as u8).collect();
            let mut y = std::vec![0u8; 2 * win.oh * win.ow];
            qavgpool(&p, &x, &mut y).unwrap();
            for c in 0..2 {
                for oy in 0..win.oh {
                    for ox in 0..win.ow {
                        let mut sum = 0.0f64;
                        for ky in 0..kh {
                            for kx in 0..kw {
                                let v = x[c * h * w + (oy * sh + ky) * w + ox * sw + kx];
                                sum += (v as i32 - zx) as f64 * sx;
                            }
                        }
                        let want = ((sum / (kh * kw) as f64) / sy).round() + zy as f64;
                        let got = y[(c * win.oh + oy) * win.ow + ox] as f64;
                        assert!(
                            (got - want.clamp(0.0, 255.0)).abs() <= 1.0,
                            "{got} vs {want}"
                        );
                    }
                }
            }
        }
    }
}

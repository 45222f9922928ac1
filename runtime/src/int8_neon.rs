//! aarch64 int8 convolution and fully connected layers on the `sdot` instruction (Armv8.2 dot
//! product: Jetson Xavier's Carmel, Cortex-A55/A76 and later), picked at run time when the CPU
//! has it. Fully connected layers are rows of 16-byte dot products, four outputs per pass
//! ([`gemv`]).
//!
//! The direct kernel of [`crate::quad`]'s layout: `sdot` multiplies four signed input channels
//! by four weights per 32-bit lane, so uint8 inputs are stored −128 and the bias corrected. A
//! block is 4 output channels × 4 vectors of 4 output pixels (16 accumulators of the 32 vector
//! registers). Requantization is in double precision where [`Requant::exact_f64`] proves it
//! equal to [`crate::quant::Requant::apply`], else that scalar code. Integer sums are
//! exact and wrap like the reference, so the results are bit-identical to
//! [`crate::kernels::qconv_ref`] (tested under `qemu-aarch64 -cpu cortex-a76`).
//!
//! `sdot` is written as inline assembly: its intrinsic (`vdotq_s32`) is not stable Rust yet.
#![allow(unsafe_code)]

use crate::error::{Error, Result};
use crate::kernels::Q8;
use crate::ops::QLinear;
use crate::quad::{self, Quads, MAX_KW};
use crate::quant::{Requant, RequantTable};
use core::arch::aarch64::*;

/// Output pixels per vector (four i32 lanes).
const LANES: usize = 4;
/// Vectors per block.
const VB: usize = 4;
/// Output channels per block.
const OCB: usize = 4;
/// Weight rows (outputs) per pass of [`gemv`]: one input load serves four.
const ROWS: usize = 4;

/// The CPU has the dot-product instructions (cached by std after the first call) and
/// optimized kernels are allowed ([`crate::kernels::set_portable_only`]).
pub fn has_dotprod() -> bool {
    crate::kernels::optimized_allowed() && cpu_has_dotprod()
}

/// The CPU has the dot-product instructions, whatever `set_portable_only` says.
fn cpu_has_dotprod() -> bool {
    std::arch::is_aarch64_feature_detected!("dotprod")
}

fn applies(p: &QLinear) -> bool {
    let w = &p.win;
    p.w_stride_k == 1
        && w.group == 1
        // Empty or degenerate windows stay with the reference kernel.
        && ![w.n, w.c, w.oc, w.h, w.w, w.oh, w.ow, w.kh, w.kw].contains(&0)
        && w.sh >= 1
        && w.sw >= 1
        && w.dh >= 1
        && w.dw >= 1
        && w.kw <= MAX_KW
        // Fully connected layers (one pixel) take `gemv`.
        && w.oh * w.ow > 1
}

fn align16(b: usize) -> usize {
    (b + 15) & !15
}

/// Scratch bytes the kernel needs for `p` while it runs (the padded input), or `None` when it
/// does not apply.
pub fn scratch_bytes(p: &QLinear) -> Option<usize> {
    applies(p).then(|| align16(Quads::new(p, LANES).input_bytes() + 16))
}

/// Bytes of weights packed at plan time (see [`pack`]): the quad-packed weights, then one
/// adjusted i32 bias per output channel; 0 when the kernel does not apply.
pub fn packed_bytes(p: &QLinear) -> usize {
    if !applies(p) {
        return 0;
    }
    align16(Quads::new(p, LANES).weight_words(p, OCB) * 4) + p.win.oc * 4
}

/// The input offset that makes uint8 inputs signed for `sdot`.
fn offset(p: &QLinear) -> i32 {
    if p.unsigned {
        -128
    } else {
        0
    }
}

/// Packs `w` and `bias` into `out` (at least [`packed_bytes`] long) once, at plan time.
pub fn pack(p: &QLinear, w: &[i8], bias: &[i32], out: &mut [u8]) -> Result<()> {
    if !applies(p) {
        return Ok(());
    }
    let win = &p.win;
    let g = Quads::new(p, LANES);
    let words = g.weight_words(p, OCB);
    if out.len() < packed_bytes(p)
        || bias.len() != win.oc
        || (win.oc - 1) * p.w_stride_oc + win.c * win.kh * win.kw > w.len()
    {
        return Err(bad("packed weight sizes"));
    }
    let (wb, bb) = out.split_at_mut(align16(words * 4));
    let wq: &mut [i32] =
        bytemuck::try_cast_slice_mut(&mut wb[..words * 4]).map_err(|_| bad("misaligned"))?;
    let badj: &mut [i32] =
        bytemuck::try_cast_slice_mut(&mut bb[..win.oc * 4]).map_err(|_| bad("misaligned"))?;
    quad::pack_weights(p, &g, w, bias, offset(p), wq, badj);
    Ok(())
}

fn bad(what: &'static str) -> Error {
    Error::BadIo { what }
}

/// Runs `p`. Call only when [`has_dotprod`] is true and [`scratch_bytes`] is `Some`;
/// `packed` holds what [`pack`] wrote.
pub fn qconv<T: Q8>(
    p: &QLinear,
    x: &[T],
    packed: &[u8],
    rq: RequantTable<'_>,
    y: &mut [T],
    scratch: &mut [u8],
) -> Result<()> {
    let win = &p.win;
    let ok = applies(p)
        && x.len() == win.n * win.c * win.h * win.w
        && y.len() == win.n * win.oc * win.oh * win.ow
        && rq.len() == win.oc
        && packed.len() >= packed_bytes(p)
        && scratch_bytes(p).is_some_and(|b| scratch.len() >= b);
    if !ok {
        return Err(bad("kernel buffer sizes"));
    }
    let words = Quads::new(p, LANES).weight_words(p, OCB);
    let at = align16(words * 4);
    let wq: &[i32] =
        bytemuck::try_cast_slice(&packed[..words * 4]).map_err(|_| bad("misaligned"))?;
    let badj: &[i32] =
        bytemuck::try_cast_slice(&packed[at..at + win.oc * 4]).map_err(|_| bad("misaligned"))?;
    debug_assert!(cpu_has_dotprod());
    // SAFETY: the caller checked `has_dotprod()`; the inner loop's raw loads are checked once
    // per row of taps against the padded input and packed weights.
    unsafe { direct(p, x, wq, badj, rq, y, scratch) }
}

/// Fully connected layers (one output pixel of a 1 × 1 input), which [`gemv`] runs.
pub fn gemv_applies(p: &QLinear) -> bool {
    let w = &p.win;
    p.w_stride_k == 1
        && w.group == 1
        && [w.h, w.w, w.kh, w.kw, w.oh, w.ow] == [1; 6]
        && w.pt + w.pl == 0
        && w.n * w.c * w.oc > 0
}

/// A fully connected layer on `sdot`, reading the weights where they are: four outputs per
/// pass, each a row of 16-byte dot products against the same input load (uint8 inputs flipped
/// to signed by their top bit, and `128 · Σw` added back, a second `sdot` against ones), the
/// inputs past the last 16 one by one, then the four requantized together (double precision
/// where [`Requant::exact_f64`] allows it). Bit-identical with [`crate::kernels::qconv_ref`]
/// (wrapping sums in any order).
pub fn gemv<T: Q8>(
    p: &QLinear,
    x: &[T],
    w: &[i8],
    bias: &[i32],
    rq: RequantTable<'_>,
    y: &mut [T],
) -> Result<()> {
    crate::kernels::check_im2row_args(p, x, w, bias, rq, y)?;
    if !gemv_applies(p) || !cpu_has_dotprod() {
        return Err(bad("not a fully connected layer on a dotprod CPU"));
    }
    // SAFETY: the CPU has dotprod (checked above); every load is of 16 bytes at an offset
    // below the row's last full 16 (rows are `c` long within `w`, checked by
    // `check_im2row_args`; inputs `c` long per image).
    unsafe { gemv_dot(p, x, w, bias, rq, y) };
    Ok(())
}

#[target_feature(enable = "neon,dotprod")]
unsafe fn gemv_dot<T: Q8>(
    p: &QLinear,
    x: &[T],
    w: &[i8],
    bias: &[i32],
    rq: RequantTable<'_>,
    y: &mut [T],
) {
    let (c, oc, stride) = (p.win.c, p.win.oc, p.w_stride_oc);
    let full = c / 16 * 16;
    let flip = vdupq_n_u8(if p.unsigned { 0x80 } else { 0 });
    let ones = vdupq_n_s8(1);
    for (xs, ys) in x.chunks_exact(c).zip(y.chunks_exact_mut(oc)) {
        let xb: &[u8] = bytemuck::cast_slice(xs);
        for o in (0..oc).step_by(ROWS) {
            let rows = (oc - o).min(ROWS);
            // A last pass of fewer rows repeats its last row in the spare lanes (not stored).
            // SAFETY: rows start below `oc · stride` and `(oc − 1) · stride + c ≤ w.len()`
            // (`check_im2row_args`), so each is `c` bytes within `w`.
            let row: [&[i8]; ROWS] = core::array::from_fn(|j| {
                let r = (o + j.min(rows - 1)) * stride;
                core::slice::from_raw_parts(w.as_ptr().add(r), c)
            });
            let (mut acc, mut wsum) = ([vdupq_n_s32(0); ROWS], [vdupq_n_s32(0); ROWS]);
            for k in (0..full).step_by(16) {
                let xv = vreinterpretq_s8_u8(veorq_u8(vld1q_u8(xb.as_ptr().add(k)), flip));
                for j in 0..ROWS {
                    let wv = vld1q_s8(row[j].as_ptr().add(k));
                    acc[j] = sdot(acc[j], xv, wv);
                    if p.unsigned {
                        wsum[j] = sdot(wsum[j], ones, wv);
                    }
                }
            }
            // Lane j of the pairwise sums is row j's total; 128 · Σw puts the flip back.
            let total =
                |v: [int32x4_t; ROWS]| vpaddq_s32(vpaddq_s32(v[0], v[1]), vpaddq_s32(v[2], v[3]));
            let mut dots = vaddq_s32(total(acc), vshlq_n_s32::<7>(total(wsum)));
            if full < c {
                let mut tail = [0i32; ROWS];
                for (t, r) in tail.iter_mut().zip(&row).take(rows) {
                    for (v, &wv) in xs[full..].iter().zip(&r[full..]) {
                        *t = t.wrapping_add(v.get() * wv as i32);
                    }
                }
                dots = vaddq_s32(dots, vld1q_s32(tail.as_ptr()));
            }
            let out = &mut ys[o..o + rows];
            let mut lanes = [0i32; ROWS];
            // Four whole rows: bias and requantization constants as vectors.
            if let (Some(b), Some(q)) = (bias.get(o..o + ROWS), rq.0.get(2 * o..2 * (o + ROWS))) {
                let a = vaddq_s32(dots, vld1q_s32(b.as_ptr()));
                let mq = vld2q_s32(q.as_ptr()); // (multipliers, shifts)
                if let Some((lo, hi)) = exact_scales(mq.0, mq.1) {
                    vst1q_s32(lanes.as_mut_ptr(), requant_f64(p, a, lo, hi));
                    for (d, &l) in out.iter_mut().zip(&lanes) {
                        *d = T::put(l);
                    }
                    continue;
                }
            }
            vst1q_s32(lanes.as_mut_ptr(), dots);
            for (j, (d, &l)) in out.iter_mut().zip(&lanes).enumerate() {
                *d = T::put(p.output(l.wrapping_add(bias[o + j]), rq.get(o + j)));
            }
        }
    }
}

/// [`Requant::exact_f64`] of four (multiplier, shift) lanes as two f64 pairs, or `None`
/// unless every shift is in [`crate::quant::F64_EXACT_SHIFTS`].
#[inline]
#[target_feature(enable = "neon")]
unsafe fn exact_scales(m: int32x4_t, shift: int32x4_t) -> Option<(float64x2_t, float64x2_t)> {
    let (lo, hi) = (
        *crate::quant::F64_EXACT_SHIFTS.start(),
        *crate::quant::F64_EXACT_SHIFTS.end(),
    );
    if vminvq_s32(shift) < lo || vmaxvq_s32(shift) > hi {
        return None;
    }
    // 2^(shift − 31) as the bits of an f64: exponent 1023 + shift − 31, no mantissa.
    let e = vaddq_s32(shift, vdupq_n_s32(1023 - 31));
    let pow = |e: int64x2_t| vreinterpretq_f64_s64(vshlq_n_s64::<52>(e));
    let mlo = vcvtq_f64_s64(vmovl_s32(vget_low_s32(m)));
    let mhi = vcvtq_f64_s64(vmovl_high_s32(m));
    Some((
        vmulq_f64(mlo, pow(vmovl_s32(vget_low_s32(e)))),
        vmulq_f64(mhi, pow(vmovl_high_s32(e))),
    ))
}

/// `acc += Σ₄ a·b` per 32-bit lane.
#[target_feature(enable = "neon,dotprod")]
#[inline]
unsafe fn sdot(mut acc: int32x4_t, a: int8x16_t, b: int8x16_t) -> int32x4_t {
    core::arch::asm!(
        "sdot {acc:v}.4s, {a:v}.16b, {b:v}.16b",
        acc = inout(vreg) acc,
        a = in(vreg) a,
        b = in(vreg) b,
        options(pure, nomem, nostack)
    );
    acc
}

/// Requantizes 4 accumulators (`bias` not yet added) to `p.output` and stores the first
/// `y.len()`: in double precision (two lanes per instruction) when `scale` (the caller's
/// [`Requant::exact_f64`] of `r`, once per channel) allows it, else value by value.
#[inline]
#[target_feature(enable = "neon")]
unsafe fn store4<T: Q8>(
    p: &QLinear,
    bias: i32,
    r: Requant,
    scale: Option<f64>,
    acc: int32x4_t,
    y: &mut [T],
) {
    let a = vaddq_s32(acc, vdupq_n_s32(bias));
    let mut lanes = [0i32; LANES];
    if let Some(scale) = scale {
        let s = vdupq_n_f64(scale);
        vst1q_s32(lanes.as_mut_ptr(), requant_f64(p, a, s, s));
        for (d, l) in y.iter_mut().zip(lanes) {
            *d = T::put(l);
        }
    } else {
        vst1q_s32(lanes.as_mut_ptr(), a);
        for (d, l) in y.iter_mut().zip(lanes) {
            *d = T::put(p.output(l, r));
        }
    }
}

/// Requantizes four sums (bias added) in double precision, lanes 0–1 scaled by `lo` and
/// 2–3 by `hi` (each a [`Requant::exact_f64`]), then adds `p.zy` and clamps.
#[inline]
#[target_feature(enable = "neon")]
unsafe fn requant_f64(p: &QLinear, a: int32x4_t, lo: float64x2_t, hi: float64x2_t) -> int32x4_t {
    // fcvtns rounds to nearest, ties to even.
    let l = vcvtnq_s64_f64(vmulq_f64(vcvtq_f64_s64(vmovl_s32(vget_low_s32(a))), lo));
    let h = vcvtnq_s64_f64(vmulq_f64(vcvtq_f64_s64(vmovl_high_s32(a)), hi));
    let v = vaddq_s32(vcombine_s32(vmovn_s64(l), vmovn_s64(h)), vdupq_n_s32(p.zy));
    vminq_s32(vmaxq_s32(v, vdupq_n_s32(p.act_min)), vdupq_n_s32(p.act_max))
}

/// [`quad::interleave4`] on NEON (every aarch64 CPU has it): its four-way interleaving store
/// writes 16 columns of quads per step; the same bytes.
pub fn interleave4_neon(rows: [&[u8]; 4], shift: u8, dst: &mut [u8]) {
    let n = dst.len() / 4;
    if rows.iter().any(|r| r.len() < n) {
        return quad::interleave4(rows, shift, dst);
    }
    let whole = n / 16 * 16;
    // SAFETY: NEON is part of aarch64; every load reads 16 bytes at column i + 16 ≤ n of a row
    // of at least n bytes, every store 64 bytes at 4·i + 64 ≤ 4·n ≤ dst.len().
    unsafe {
        let k = vdupq_n_u8(shift);
        let at = |r: &[u8], i: usize| vaddq_u8(vld1q_u8(r.as_ptr().add(i)), k);
        for i in (0..whole).step_by(16) {
            let v = uint8x16x4_t(
                at(rows[0], i),
                at(rows[1], i),
                at(rows[2], i),
                at(rows[3], i),
            );
            vst4q_u8(dst.as_mut_ptr().add(4 * i), v);
        }
    }
    let tail: [&[u8]; 4] = core::array::from_fn(|j| &rows[j][whole..]);
    quad::interleave4(tail, shift, &mut dst[4 * whole..4 * n]);
}

#[target_feature(enable = "neon,dotprod")]
unsafe fn direct<T: Q8>(
    p: &QLinear,
    x: &[T],
    wq: &[i32],
    badj: &[i32],
    rq: RequantTable<'_>,
    y: &mut [T],
    scratch: &mut [u8],
) -> Result<()> {
    let win = &p.win;
    let g = Quads::new(p, LANES);
    let taps = win.kh * win.kw;
    let off = offset(p);
    let xq = &mut scratch[..g.input_bytes()];
    let plane_in = win.c * win.h * win.w;
    let plane_out = win.oh * win.ow;
    let vectors = g.vectors(p);
    let koff = g.tap_offsets(p);
    let stride_oc = g.cq * taps;
    // A tap's input sits at (row offset of the vector's first pixel) + q·qs + ky·ks + koff[kx]:
    // offsets grow with every index, so one check of the farthest load per block of vectors
    // covers all of them.
    let qs = g.hq * g.wq * 4;
    let ks = win.dh * g.wq * 4;
    let reach = (g.cq - 1) * qs + (win.kh - 1) * ks + koff[win.kw - 1] + 4 * LANES;
    for n in 0..win.n {
        quad::pad_input(
            p,
            &g,
            &x[n * plane_in..(n + 1) * plane_in],
            off,
            xq,
            interleave4_neon,
        );
        let yn = &mut y[n * win.oc * plane_out..(n + 1) * win.oc * plane_out];
        for ob in (0..win.oc).step_by(OCB) {
            let Some(wblock) = wq.get(ob * stride_oc..(ob + OCB) * stride_oc) else {
                return Err(bad("kernel geometry"));
            };
            for v in (0..vectors).step_by(VB) {
                let pos: [(usize, usize); VB] = g.vector_origins(p, v);
                let base: [usize; VB] =
                    core::array::from_fn(|i| g.row_offset(p, 0, 0, pos[i].0, pos[i].1));
                if base.iter().copied().max().unwrap_or(0) + reach > xq.len() {
                    return Err(bad("kernel geometry"));
                }
                let mut acc = [[vdupq_n_s32(0); VB]; OCB];
                for q in 0..g.cq {
                    for ky in 0..win.kh {
                        let o = q * qs + ky * ks;
                        let rows: [*const i8; VB] =
                            core::array::from_fn(|i| xq.as_ptr().add(base[i] + o) as *const i8);
                        // Weight (j, q, ky, kx) is below OCB·stride_oc = wblock.len().
                        let wk = wblock.as_ptr().add(q * taps + ky * win.kw);
                        for (kx, &ko) in koff[..win.kw].iter().enumerate() {
                            let a: [int8x16_t; VB] =
                                core::array::from_fn(|i| vld1q_s8(rows[i].add(ko)));
                            for (j, accj) in acc.iter_mut().enumerate() {
                                let b =
                                    vreinterpretq_s8_s32(vld1q_dup_s32(wk.add(j * stride_oc + kx)));
                                for i in 0..VB {
                                    accj[i] = sdot(accj[i], a[i], b);
                                }
                            }
                        }
                    }
                }
                for (j, accj) in acc.iter().enumerate().take(win.oc - ob) {
                    let oc = ob + j;
                    let (b, rqo) = (badj[oc], rq.get(oc));
                    let scale = rqo.exact_f64();
                    for i in 0..VB.min(vectors - v) {
                        let (oy, ox) = pos[i];
                        let start = (oc * win.oh + oy) * win.ow + ox;
                        let n = (win.ow - ox).min(LANES);
                        store4(p, b, rqo, scale, accj[i], &mut yn[start..start + n]);
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
    use crate::kernels::qconv_ref;
    use crate::ops::Window;
    use std::vec::Vec;

    fn next(s: &mut u64) -> u32 {
        *s = s
            .wrapping_mul(6364136223846793005)
            .wrapping_add(1442695040888963407);
        (*s >> 33) as u32
    }

    /// A random quantized layer over `win`: zero points, fused clamp, and weight rows `kk`
    /// long with a gap of up to `max_gap` bytes between them.
    fn random_qlinear(
        r: &mut impl FnMut(usize, usize) -> usize,
        win: Window,
        unsigned: bool,
        kk: usize,
        max_gap: usize,
    ) -> QLinear {
        let lo = if unsigned { 0 } else { -128 };
        let zy = lo + r(0, 60) as i32;
        QLinear {
            win,
            zx: lo + r(0, 255) as i32,
            zy,
            act_min: if r(0, 1) == 0 { lo } else { zy },
            act_max: lo + 255 - r(0, 3) as i32,
            bias: 0,
            requant: 0,
            packed: 0,
            packed_len: 0,
            w_stride_oc: kk + r(0, max_gap),
            w_stride_k: 1,
            unsigned,
        }
    }

    /// Random weights, biases and per-channel requantization (multipliers near `ms`) for `p`.
    fn random_params(
        r: &mut impl FnMut(usize, usize) -> usize,
        p: &QLinear,
        ms: &[f64],
    ) -> (Vec<i8>, Vec<i32>, Vec<i32>) {
        let oc = p.win.oc;
        let wt: Vec<i8> = (0..oc * p.w_stride_oc)
            .map(|_| r(0, 255) as u8 as i8)
            .collect();
        let bias: Vec<i32> = (0..oc).map(|_| r(0, 200_000) as i32 - 100_000).collect();
        let rq: Vec<i32> = (0..oc)
            .flat_map(|_| {
                let m = ms[r(0, ms.len() - 1)];
                let q = Requant::from_f64(m * (1.0 + r(0, 999) as f64 * 1e-3));
                [q.multiplier, q.shift]
            })
            .collect();
        (wt, bias, rq)
    }

    fn run<T: Q8 + PartialEq + core::fmt::Debug>(seed: &mut u64, unsigned: bool, case: usize) {
        let mut r = |lo: usize, hi: usize| lo + next(seed) as usize % (hi - lo + 1);
        let (kh, kw, dh, dw, sh, sw) = (r(1, 4), r(1, 4), r(1, 2), r(1, 2), r(1, 3), r(1, 3));
        let (c, oc) = (r(1, 19), r(1, 11));
        let (h, w) = (r((kh - 1) * dh + 1, 12), r((kw - 1) * dw + 1, 30));
        let (pt, pl, pb, pr) = (r(0, 2), r(0, 2), r(0, 2), r(0, 2));
        let win = Window {
            n: r(1, 2),
            c,
            h,
            w,
            oc,
            oh: (h + pt + pb - ((kh - 1) * dh + 1)) / sh + 1,
            ow: (w + pl + pr - ((kw - 1) * dw + 1)) / sw + 1,
            kh,
            kw,
            sh,
            sw,
            pt,
            pl,
            dh,
            dw,
            group: 1,
        };
        let p = random_qlinear(&mut r, win, unsigned, c * kh * kw, 2);
        let lo = if unsigned { 0 } else { -128 };
        let x: Vec<T> = (0..win.n * c * h * w)
            .map(|_| T::put(lo + r(0, 255) as i32))
            .collect();
        let ms = [2e-5, 6.2e-5, 1e-4, 3e-3, 0.02, 0.37, 0.999, 1.7];
        let (wt, bias, rq) = random_params(&mut r, &p, &ms);
        if !applies(&p) {
            return; // a one-pixel output: the portable kernel's job
        }
        let mut want = std::vec![T::put(0); win.n * oc * win.oh * win.ow];
        let mut got = want.clone();
        qconv_ref(&p, &x, &wt, &bias, RequantTable(&rq), &mut want).unwrap();
        let mut scratch = std::vec![0u128; scratch_bytes(&p).unwrap().div_ceil(16)];
        let mut packed = std::vec![0u128; packed_bytes(&p).div_ceil(16)];
        let packed: &mut [u8] = bytemuck::cast_slice_mut(&mut packed);
        pack(&p, &wt, &bias, packed).unwrap();
        let s: &mut [u8] = bytemuck::cast_slice_mut(&mut scratch);
        qconv(&p, &x, packed, RequantTable(&rq), &mut got, s).unwrap();
        assert_eq!(want, got, "case {case}: {win:?}");
    }

    /// Fully connected layers of every length around the 16-byte step, batches, both input
    /// types, weight rows with a gap between them.
    #[test]
    fn gemv_is_bit_exact_with_the_reference() {
        if !has_dotprod() {
            std::eprintln!("no dotprod on this CPU: nothing to compare");
            return;
        }
        let mut seed = 5u64;
        for case in 0..400 {
            let mut r = |lo: usize, hi: usize| lo + next(&mut seed) as usize % (hi - lo + 1);
            let unsigned = case % 2 == 1;
            let (n, c, oc) = (
                r(1, 3),
                if case < 64 { case + 1 } else { r(1, 300) },
                r(1, 13),
            );
            let win = Window {
                n,
                c,
                h: 1,
                w: 1,
                oc,
                oh: 1,
                ow: 1,
                kh: 1,
                kw: 1,
                sh: 1,
                sw: 1,
                pt: 0,
                pl: 0,
                dh: 1,
                dw: 1,
                group: 1,
            };
            let p = random_qlinear(&mut r, win, unsigned, c, 5);
            assert!(gemv_applies(&p) && !applies(&p));
            let xb: Vec<u8> = (0..n * c).map(|_| r(0, 255) as u8).collect();
            let (wt, bias, rq) = random_params(&mut r, &p, &[2e-5, 1e-4, 3e-3, 0.02, 0.37, 1.7]);
            let rq = RequantTable(&rq);
            if unsigned {
                let (mut want, mut got) = (std::vec![0u8; n * oc], std::vec![0u8; n * oc]);
                qconv_ref(&p, &xb, &wt, &bias, rq, &mut want).unwrap();
                gemv(&p, &xb, &wt, &bias, rq, &mut got).unwrap();
                assert_eq!(want, got, "case {case}: n {n} c {c} oc {oc}");
            } else {
                let xs: &[i8] = bytemuck::cast_slice(&xb);
                let (mut want, mut got) = (std::vec![0i8; n * oc], std::vec![0i8; n * oc]);
                qconv_ref(&p, xs, &wt, &bias, rq, &mut want).unwrap();
                gemv(&p, xs, &wt, &bias, rq, &mut got).unwrap();
                assert_eq!(want, got, "case {case}: n {n} c {c} oc {oc}");
            }
        }
    }

    /// The vector scales equal [`Requant::exact_f64`] lane by lane, and are refused whenever
    /// one lane's shift is outside its range.
    #[test]
    fn exact_scales_equal_exact_f64() {
        let cases = crate::quant::exact_f64_cases();
        let mut rs: Vec<Requant> = cases.iter().map(|c| c.0).collect();
        rs.dedup();
        let mut quads: Vec<[Requant; 4]> =
            rs.windows(4).map(|q| [q[0], q[1], q[2], q[3]]).collect();
        // One shift out of range, in each lane, among three in range.
        for shift in [i32::MIN, -31, -14, 0, 1, i32::MAX] {
            for lane in 0..4 {
                let mut q = quads[lane * 7];
                q[lane] = Requant {
                    multiplier: 1 << 30,
                    shift,
                };
                quads.push(q);
            }
        }
        for q in quads {
            let want: Option<Vec<u64>> =
                q.iter().map(|r| r.exact_f64().map(f64::to_bits)).collect();
            let pairs: Vec<i32> = q.iter().flat_map(|r| [r.multiplier, r.shift]).collect();
            // SAFETY: NEON is part of every aarch64 CPU; `pairs` holds eight i32.
            let got = unsafe {
                let mq = vld2q_s32(pairs.as_ptr());
                exact_scales(mq.0, mq.1).map(|(lo, hi)| {
                    let mut v = [0f64; 4];
                    vst1q_f64(v.as_mut_ptr(), lo);
                    vst1q_f64(v.as_mut_ptr().add(2), hi);
                    v.map(f64::to_bits).to_vec()
                })
            };
            assert_eq!(want, got, "{q:?}");
        }
    }

    #[test]
    fn sdot_kernel_is_bit_exact_with_the_reference() {
        if !has_dotprod() {
            std::eprintln!("no dotprod on this CPU: nothing to compare");
            return;
        }
        let mut seed = 9u64;
        for case in 0..300 {
            if case % 2 == 0 {
                run::<i8>(&mut seed, false, case);
            } else {
                run::<u8>(&mut seed, true, case);
            }
        }
    }

    #[test]
    fn neon_interleave_equals_the_portable_one() {
        let mut state = 5u32;
        let mut next = move || {
            state ^= state << 13;
            state ^= state >> 17;
            state ^= state << 5;
            state
        };
        for n in [0usize, 1, 15, 16, 17, 32, 47, 100] {
            let rows: std::vec::Vec<std::vec::Vec<u8>> = (0..4)
                .map(|_| {
                    (0..n + (next() % 3) as usize)
                        .map(|_| next() as u8)
                        .collect()
                })
                .collect();
            let rows: [&[u8]; 4] = core::array::from_fn(|j| rows[j].as_slice());
            for shift in [0u8, 128] {
                let (mut want, mut got) = (std::vec![0u8; 4 * n + 1], std::vec![0u8; 4 * n + 1]);
                quad::interleave4(rows, shift, &mut want);
                interleave4_neon(rows, shift, &mut got);
                assert_eq!(want, got, "n {n} shift {shift}");
            }
        }
    }
}

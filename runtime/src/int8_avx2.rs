//! x86_64 AVX2 int8 kernels, picked at run time when the CPU has AVX2.
//!
//! Two shapes cover almost every int8 layer of a small CNN:
//! - **direct** (convolutions with one group): the input is padded once per image into channel
//!   pairs of i16 (`[c/2][row][col][2]`, columns split into stride phases), so every tap of 8
//!   consecutive output pixels is one contiguous 32-byte load and `vpmaddwd` multiplies two
//!   input channels at once; a block of 4 output channels × two 8-pixel vectors keeps 8
//!   accumulators in registers. No im2col matrix.
//! - **gemv** (fully connected layers): four weight rows share each 16-element load of the input.
//!
//! Plus the residual int8 Add of same-shape inputs. Requantization is vectorized (one 64-bit
//! product and one half-to-even rounding per value, exactly [`Requant::apply`]); multipliers of
//! 1 or more fall back to the scalar code. Integer sums are exact and wrap like the reference,
//! so results are bit-identical to [`crate::kernels::qconv_ref`] and
//! [`crate::kernels::qadd_ref`] (tested on random shapes and values).
#![allow(unsafe_code)]

use crate::error::{Error, Result};
use crate::kernels::Q8;
use crate::ops::{QAdd, QLinear};
use crate::quad::{self, Quads, MAX_KW};
use crate::quant::{Requant, RequantTable};
use core::arch::x86_64::*;

/// i32 lanes per vector: output pixels per vector.
const LANES: usize = 8;
/// Input elements per gemv step (16 i16 lanes).
const PX: usize = 16;
/// Output channels per block.
const OCB: usize = 4;
/// Vectors per block in the VNNI kernel: 4 × 4 accumulators, which AVX-512's 32 vector
/// registers hold.
const VNNI_VB: usize = 4;

/// Which AVX2 kernel runs a layer.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Path {
    Direct,
    /// The direct kernel on 4-way `vpdpbusd` (AVX-512 VNNI on 256-bit vectors).
    DirectVnni,
    Gemv,
}

fn path(p: &QLinear) -> Option<Path> {
    let w = &p.win;
    // Empty or degenerate windows (the geometry below subtracts 1 from them) stay with the
    // reference kernel.
    if p.w_stride_k != 1
        || w.group != 1
        || [w.n, w.c, w.oc, w.h, w.w, w.oh, w.ow, w.kh, w.kw].contains(&0)
    {
        return None;
    }
    if w.h == 1 && w.w == 1 && w.kh == 1 && w.kw == 1 && w.oh == 1 && w.ow == 1 {
        return Some(Path::Gemv);
    }
    if !(w.sh >= 1 && w.sw >= 1 && w.dh >= 1 && w.dw >= 1 && w.kw <= MAX_KW) {
        return None;
    }
    Some(if has_vnni() {
        Path::DirectVnni
    } else {
        Path::Direct
    })
}

/// Geometry of the direct kernel's padded input. With a column stride `sw` each padded row is
/// split into `sw` phases (column `c` goes to phase `c % sw`, position `c / sw`), so the taps of
/// consecutive output pixels are consecutive in one phase whatever the stride.
struct Padded {
    /// Channel pairs.
    cp: usize,
    /// Padded rows: every row a tap reads.
    hq: usize,
    /// Columns per phase: whole 8-pixel vectors plus the kernel's reach.
    wph: usize,
    /// Columns per padded row (`sw` phases).
    wq: usize,
}

fn padded(p: &QLinear) -> Padded {
    let w = &p.win;
    let wph = w.ow.div_ceil(LANES) * LANES + (w.kw - 1) * w.dw / w.sw;
    Padded {
        cp: w.c.div_ceil(2),
        hq: (w.oh - 1) * w.sh + (w.kh - 1) * w.dh + 1,
        wph,
        wq: wph * w.sw,
    }
}

fn align32(b: usize) -> usize {
    (b + 31) & !31
}

/// Scratch bytes the AVX2 kernel needs for `p` while it runs (the padded input), or `None`
/// when it does not apply.
pub fn scratch_bytes(p: &QLinear) -> Option<usize> {
    Some(path_scratch(path(p)?, p))
}

fn path_scratch(path: Path, p: &QLinear) -> usize {
    let w = &p.win;
    match path {
        Path::Gemv => align32(w.c.div_ceil(PX) * PX * 2),
        Path::Direct => {
            let g = padded(p);
            align32(g.cp * g.hq * g.wq * 4)
        }
        Path::DirectVnni => align32(Quads::new(p, LANES).input_bytes()),
    }
}

/// Words of packed weights of a direct path.
fn weight_words(path: Path, p: &QLinear) -> usize {
    let w = &p.win;
    match path {
        Path::Gemv => 0,
        Path::Direct => w.oc.div_ceil(OCB) * OCB * padded(p).cp * w.kh * w.kw,
        Path::DirectVnni => Quads::new(p, LANES).weight_words(p, OCB),
    }
}

/// Bytes of weights packed at plan time (see [`pack`]) the kernel for `p` reads: the packed
/// weights, then one i32 bias per output channel. 0 when it reads the model's weights as they
/// are (gemv) or does not apply.
pub fn packed_bytes(p: &QLinear) -> usize {
    match path(p) {
        None | Some(Path::Gemv) => 0,
        Some(path) => align32(weight_words(path, p) * 4) + p.win.oc * 4,
    }
}

/// Packs `w` and `bias` into `out` (at least [`packed_bytes`] long) once, when the model is
/// planned: the layout the kernel streams through, so `invoke` does not redo it.
pub fn pack(p: &QLinear, w: &[i8], bias: &[i32], out: &mut [u8]) -> Result<()> {
    match path(p) {
        Some(path @ (Path::Direct | Path::DirectVnni)) => pack_path(path, p, w, bias, out),
        _ => Ok(()),
    }
}

fn pack_path(path: Path, p: &QLinear, w: &[i8], bias: &[i32], out: &mut [u8]) -> Result<()> {
    let win = &p.win;
    let words = weight_words(path, p);
    if out.len() < align32(words * 4) + win.oc * 4
        || bias.len() != win.oc
        || (win.oc - 1) * p.w_stride_oc + win.c * win.kh * win.kw > w.len()
    {
        return Err(Error::BadIo {
            what: "packed weight sizes",
        });
    }
    let (wb, bb) = out.split_at_mut(align32(words * 4));
    let wq: &mut [i32] =
        bytemuck::try_cast_slice_mut(&mut wb[..words * 4]).map_err(|_| misaligned())?;
    let badj: &mut [i32] =
        bytemuck::try_cast_slice_mut(&mut bb[..win.oc * 4]).map_err(|_| misaligned())?;
    if path == Path::DirectVnni {
        let off = if p.unsigned { 0 } else { 128 };
        quad::pack_weights(p, &Quads::new(p, LANES), w, bias, off, wq, badj);
    } else {
        pack_weights(p, &padded(p), w, wq);
        badj.copy_from_slice(bias);
    }
    Ok(())
}

/// Splits packed bytes into weights and biases.
fn unpack<'a>(path: Path, p: &QLinear, packed: &'a [u8]) -> Result<(&'a [i32], &'a [i32])> {
    let words = weight_words(path, p);
    let wq = packed.get(..words * 4).ok_or_else(misaligned)?;
    let at = align32(words * 4);
    let bq = packed.get(at..at + p.win.oc * 4).ok_or_else(misaligned)?;
    Ok((
        bytemuck::try_cast_slice(wq).map_err(|_| misaligned())?,
        bytemuck::try_cast_slice(bq).map_err(|_| misaligned())?,
    ))
}

/// The CPU has AVX-512 VNNI with 256-bit vectors (cached by std after the first call).
pub fn has_vnni() -> bool {
    crate::simd::has_avx2() && cpu_has_vnni()
}

/// The CPU has AVX-512 VNNI and VL, whatever `set_portable_only` says.
fn cpu_has_vnni() -> bool {
    std::is_x86_feature_detected!("avx512vnni") && std::is_x86_feature_detected!("avx512vl")
}

fn misaligned() -> Error {
    Error::BadIo {
        what: "misaligned scratch",
    }
}

/// Runs `p` with the AVX2 kernel. Call only when the CPU has AVX2 and [`scratch_bytes`] is
/// `Some`; `packed` holds what [`pack`] wrote, `scratch` [`scratch_bytes`].
#[allow(clippy::too_many_arguments)]
pub fn qconv<T: Q8>(
    p: &QLinear,
    x: &[T],
    w: &[i8],
    bias: &[i32],
    packed: &[u8],
    rq: RequantTable<'_>,
    y: &mut [T],
    scratch: &mut [u8],
) -> Result<()> {
    match path(p) {
        Some(path) => run(path, p, x, w, bias, packed, rq, y, scratch),
        None => Err(misaligned()),
    }
}

#[allow(clippy::too_many_arguments)]
fn run<T: Q8>(
    path: Path,
    p: &QLinear,
    x: &[T],
    w: &[i8],
    bias: &[i32],
    packed: &[u8],
    rq: RequantTable<'_>,
    y: &mut [T],
    scratch: &mut [u8],
) -> Result<()> {
    debug_assert!(crate::simd::cpu_has_avx2() && (path != Path::DirectVnni || cpu_has_vnni()));
    let win = &p.win;
    let kk = win.c * win.kh * win.kw;
    let ok = (win.oc == 0 || (win.oc - 1) * p.w_stride_oc + kk <= w.len())
        && x.len() == win.n * win.c * win.h * win.w
        && y.len() == win.n * win.oc * win.oh * win.ow
        && bias.len() == win.oc
        && rq.len() == win.oc
        && scratch.len() >= path_scratch(path, p);
    if !ok {
        return Err(Error::BadIo {
            what: "kernel buffer sizes",
        });
    }
    // SAFETY: the CPU has AVX2, and VNNI for that path (`path` checks, the caller checked
    // `has_avx2()`); loads and stores in the kernels go through bounds-checked slices, except
    // the direct kernels' inner loops, which check the whole row of taps they read once before
    // reading it.
    unsafe {
        match path {
            Path::Gemv => gemv(p, x, w, bias, rq, y, scratch),
            Path::Direct => {
                let (wq, bq) = unpack(path, p, packed)?;
                direct(p, x, wq, bq, rq, y, scratch)
            }
            Path::DirectVnni => {
                let (wq, bq) = unpack(path, p, packed)?;
                direct_vnni(p, x, wq, bq, rq, y, scratch)
            }
        }
    }
}

/// Packs weight pairs `(w[oc][2i][ky][kx], w[oc][2i+1][ky][kx])` as one i32 of two i16 each,
/// the operand `vpmaddwd` multiplies against a channel pair; rows past `oc` are zero.
fn pack_weights(p: &QLinear, g: &Padded, w: &[i8], out: &mut [i32]) {
    let win = &p.win;
    let taps = win.kh * win.kw;
    let rows = win.oc.div_ceil(OCB) * OCB;
    out[..rows * g.cp * taps].fill(0);
    for oc in 0..win.oc {
        let wrow = &w[oc * p.w_stride_oc..oc * p.w_stride_oc + win.c * taps];
        for icp in 0..g.cp {
            for t in 0..taps {
                let lo = wrow[2 * icp * taps + t] as i16 as u16 as u32;
                let hi = if 2 * icp + 1 < win.c {
                    wrow[(2 * icp + 1) * taps + t] as i16 as u16 as u32
                } else {
                    0
                };
                out[(oc * g.cp + icp) * taps + t] = (lo | hi << 16) as i32;
            }
        }
    }
}

/// Copies image `x` (`c × h × w`) into the padded pair-interleaved layout; padding and the
/// phantom channel of an odd count read as the input zero point.
fn pad_input<T: Q8>(p: &QLinear, g: &Padded, x: &[T], xq: &mut [i16]) {
    let win = &p.win;
    xq.fill(p.zx as i16);
    for ic in 0..win.c {
        // Rows and columns no tap reads (past the last window) are skipped; `get` keeps a wrong
        // geometry from panicking all the same.
        for iy in 0..win.h.min(g.hq.saturating_sub(win.pt)) {
            let base = ((ic / 2) * g.hq + iy + win.pt) * g.wq;
            let Some(src) = x.get((ic * win.h + iy) * win.w..(ic * win.h + iy + 1) * win.w) else {
                return;
            };
            if win.sw == 1 {
                let cols = win.w.min(g.wq.saturating_sub(win.pl));
                if let Some(dst) = xq.get_mut((base + win.pl) * 2..(base + win.pl + cols) * 2) {
                    for (d, s) in dst.chunks_exact_mut(2).zip(src) {
                        d[ic & 1] = s.get() as i16;
                    }
                }
            } else {
                for (ix, s) in src.iter().enumerate() {
                    let c = ix + win.pl;
                    let pos = c / win.sw;
                    if pos < g.wph {
                        if let Some(d) =
                            xq.get_mut((base + (c % win.sw) * g.wph + pos) * 2 + (ic & 1))
                        {
                            *d = s.get() as i16;
                        }
                    }
                }
            }
        }
    }
}

#[target_feature(enable = "avx2")]
unsafe fn direct<T: Q8>(
    p: &QLinear,
    x: &[T],
    wq: &[i32],
    bias: &[i32],
    rq: RequantTable<'_>,
    y: &mut [T],
    scratch: &mut [u8],
) -> Result<()> {
    let win = &p.win;
    let g = padded(p);
    let taps = win.kh * win.kw;
    let xq: &mut [i16] = bytemuck::try_cast_slice_mut(&mut scratch[..g.cp * g.hq * g.wq * 4])
        .map_err(|_| misaligned())?;
    let plane_in = win.c * win.h * win.w;
    let plane_out = win.oh * win.ow;
    // Output pixels go in 8-lane vectors, each a run of one output row; a block takes two
    // consecutive vectors, which on narrow maps (ow ≤ 8) are two rows.
    let per_row = win.ow.div_ceil(LANES);
    let vectors = win.oh * per_row;
    let at = |v: usize| (v / per_row, v % per_row * LANES);
    // Tap kx reads phase (kx·dw) % sw at position (kx·dw) / sw: its i16 offset in a padded row.
    let mut koff = [0usize; MAX_KW];
    for (kx, o) in koff.iter_mut().enumerate().take(win.kw) {
        *o = ((kx * win.dw % win.sw) * g.wph + kx * win.dw / win.sw) * 2;
    }
    for n in 0..win.n {
        pad_input(p, &g, &x[n * plane_in..(n + 1) * plane_in], xq);
        let yn = &mut y[n * win.oc * plane_out..(n + 1) * win.oc * plane_out];
        for ob in (0..win.oc).step_by(OCB) {
            let wblock = &wq[ob * g.cp * taps..(ob + OCB) * g.cp * taps];
            let stride_oc = g.cp * taps;
            for v in (0..vectors).step_by(2) {
                let second = v + 1 < vectors;
                let (oy0, ox0) = at(v);
                let (oy1, ox1) = at(if second { v + 1 } else { v });
                let mut acc = [_mm256_setzero_si256(); 2 * OCB];
                for icp in 0..g.cp {
                    for ky in 0..win.kh {
                        let row = |oy: usize| (icp * g.hq + oy * win.sh + ky * win.dh) * g.wq;
                        let (r0, r1) = ((row(oy0) + ox0) * 2, (row(oy1) + ox1) * 2);
                        let wt = icp * taps + ky * win.kw;
                        // One check per row of taps instead of one per load: every load below
                        // reads 16 i16 at r + koff[kx] ≤ r + koff[kw − 1], and every weight
                        // index is below (OCB − 1)·stride_oc + wt + kw ≤ wblock.len().
                        if r0.max(r1) + koff[win.kw - 1] + 2 * LANES > xq.len()
                            || (OCB - 1) * stride_oc + wt + win.kw > wblock.len()
                        {
                            return Err(misaligned());
                        }
                        let (x0, x1) = (xq.as_ptr().add(r0), xq.as_ptr().add(r1));
                        let wk = wblock.as_ptr().add(wt);
                        for (kx, &off) in koff[..win.kw].iter().enumerate() {
                            let a0 = _mm256_loadu_si256(x0.add(off).cast());
                            let a1 = _mm256_loadu_si256(x1.add(off).cast());
                            for j in 0..OCB {
                                let b = _mm256_set1_epi32(*wk.add(j * stride_oc + kx));
                                acc[2 * j] = _mm256_add_epi32(acc[2 * j], _mm256_madd_epi16(a0, b));
                                acc[2 * j + 1] =
                                    _mm256_add_epi32(acc[2 * j + 1], _mm256_madd_epi16(a1, b));
                            }
                        }
                    }
                }
                for j in 0..OCB.min(win.oc - ob) {
                    let oc = ob + j;
                    let (b, r) = (bias[oc], rq.get(oc));
                    let at0 = (oc * win.oh + oy0) * win.ow + ox0;
                    let n0 = (win.ow - ox0).min(LANES);
                    store8(p, b, r, acc[2 * j], &mut yn[at0..at0 + n0]);
                    if second {
                        let at1 = (oc * win.oh + oy1) * win.ow + ox1;
                        let n1 = (win.ow - ox1).min(LANES);
                        store8(p, b, r, acc[2 * j + 1], &mut yn[at1..at1 + n1]);
                    }
                }
            }
        }
    }
    Ok(())
}

/// The direct kernel on VNNI: four input channels per `vpdpbusd` (unsigned inputs, so int8
/// inputs are stored +128 and the bias corrected; see [`crate::quad`]).
#[target_feature(enable = "avx2,avx512f,avx512vl,avx512vnni")]
unsafe fn direct_vnni<T: Q8>(
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
    let off = if p.unsigned { 0 } else { 128 };
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
            interleave4_sse2,
        );
        let yn = &mut y[n * win.oc * plane_out..(n + 1) * win.oc * plane_out];
        for ob in (0..win.oc).step_by(OCB) {
            let Some(wblock) = wq.get(ob * stride_oc..(ob + OCB) * stride_oc) else {
                return Err(misaligned());
            };
            for v in (0..vectors).step_by(VNNI_VB) {
                let pos: [(usize, usize); VNNI_VB] = g.vector_origins(p, v);
                let base: [usize; VNNI_VB] =
                    core::array::from_fn(|i| g.row_offset(p, 0, 0, pos[i].0, pos[i].1));
                if base.iter().copied().max().unwrap_or(0) + reach > xq.len() {
                    return Err(misaligned());
                }
                let mut acc = [[_mm256_setzero_si256(); VNNI_VB]; OCB];
                for q in 0..g.cq {
                    for ky in 0..win.kh {
                        let o = q * qs + ky * ks;
                        let rows: [*const u8; VNNI_VB] =
                            core::array::from_fn(|i| xq.as_ptr().add(base[i] + o));
                        // Weight (j, q, ky, kx) is below OCB·stride_oc = wblock.len().
                        let wk = wblock.as_ptr().add(q * taps + ky * win.kw);
                        for (kx, &ko) in koff[..win.kw].iter().enumerate() {
                            let a: [__m256i; VNNI_VB] = core::array::from_fn(|i| {
                                _mm256_loadu_si256(rows[i].add(ko).cast())
                            });
                            for (j, accj) in acc.iter_mut().enumerate() {
                                let b = _mm256_set1_epi32(*wk.add(j * stride_oc + kx));
                                for i in 0..VNNI_VB {
                                    accj[i] = _mm256_dpbusd_epi32(accj[i], a[i], b);
                                }
                            }
                        }
                    }
                }
                for (j, accj) in acc.iter().enumerate().take(win.oc - ob) {
                    let oc = ob + j;
                    let (b, r) = (badj[oc], rq.get(oc));
                    let scale = r.exact_f64();
                    for i in 0..VNNI_VB.min(vectors - v) {
                        let (oy, ox) = pos[i];
                        let start = (oc * win.oh + oy) * win.ow + ox;
                        let n = (win.ow - ox).min(LANES);
                        store8_vl(p, b, r, scale, accj[i], &mut yn[start..start + n]);
                    }
                }
            }
        }
    }
    Ok(())
}

/// [`quad::interleave4`] on SSE2 (every x86_64 CPU has it): 16 columns per step, two rounds of
/// byte and 16-bit unpacks; the same bytes.
pub fn interleave4_sse2(rows: [&[u8]; 4], shift: u8, dst: &mut [u8]) {
    let n = dst.len() / 4;
    if rows.iter().any(|r| r.len() < n) {
        return quad::interleave4(rows, shift, dst);
    }
    let whole = n / 16 * 16;
    // SAFETY: SSE2 is part of x86_64; every load reads 16 bytes at column i + 16 ≤ n of a row
    // of at least n bytes, every store 64 bytes at 4·i + 64 ≤ 4·n ≤ dst.len().
    unsafe {
        let k = _mm_set1_epi8(shift as i8);
        let at = |r: &[u8], i: usize| _mm_add_epi8(_mm_loadu_si128(r.as_ptr().add(i).cast()), k);
        for i in (0..whole).step_by(16) {
            let (a, b, c, d) = (
                at(rows[0], i),
                at(rows[1], i),
                at(rows[2], i),
                at(rows[3], i),
            );
            let (ab_lo, ab_hi) = (_mm_unpacklo_epi8(a, b), _mm_unpackhi_epi8(a, b));
            let (cd_lo, cd_hi) = (_mm_unpacklo_epi8(c, d), _mm_unpackhi_epi8(c, d));
            let out = dst.as_mut_ptr().add(4 * i);
            _mm_storeu_si128(out.cast(), _mm_unpacklo_epi16(ab_lo, cd_lo));
            _mm_storeu_si128(out.add(16).cast(), _mm_unpackhi_epi16(ab_lo, cd_lo));
            _mm_storeu_si128(out.add(32).cast(), _mm_unpacklo_epi16(ab_hi, cd_hi));
            _mm_storeu_si128(out.add(48).cast(), _mm_unpackhi_epi16(ab_hi, cd_hi));
        }
    }
    let tail: [&[u8]; 4] = core::array::from_fn(|j| &rows[j][whole..]);
    quad::interleave4(tail, shift, &mut dst[4 * whole..4 * n]);
}

#[target_feature(enable = "avx2")]
unsafe fn gemv<T: Q8>(
    p: &QLinear,
    x: &[T],
    w: &[i8],
    bias: &[i32],
    rq: RequantTable<'_>,
    y: &mut [T],
    scratch: &mut [u8],
) -> Result<()> {
    let win = &p.win;
    let k = win.c;
    let kv = k / PX * PX;
    let xs: &mut [i16] =
        bytemuck::try_cast_slice_mut(&mut scratch[..kv * 2]).map_err(|_| misaligned())?;
    for n in 0..win.n {
        let xn = &x[n * k..(n + 1) * k];
        for (d, s) in xs.iter_mut().zip(xn) {
            *d = s.get() as i16;
        }
        let mut oc = 0;
        while oc < win.oc {
            let rows = OCB.min(win.oc - oc);
            let mut acc = [_mm256_setzero_si256(); OCB];
            let mut tail = [0i32; OCB];
            for j in 0..rows {
                let wr = &w[(oc + j) * p.w_stride_oc..(oc + j) * p.w_stride_oc + k];
                for i in kv..k {
                    tail[j] = tail[j].wrapping_add(xn[i].get() * wr[i] as i32);
                }
            }
            for i in (0..kv).step_by(PX) {
                let xv = _mm256_loadu_si256(xs[i..i + PX].as_ptr().cast());
                for (j, a) in acc.iter_mut().enumerate().take(rows) {
                    let at = (oc + j) * p.w_stride_oc + i;
                    let wv = _mm256_cvtepi8_epi16(_mm_loadu_si128(w[at..at + PX].as_ptr().cast()));
                    *a = _mm256_add_epi32(*a, _mm256_madd_epi16(xv, wv));
                }
            }
            for j in 0..rows {
                let s = hsum(acc[j])
                    .wrapping_add(tail[j])
                    .wrapping_add(bias[oc + j]);
                y[n * win.oc + oc + j] = T::put(p.output(s, rq.get(oc + j)));
            }
            oc += rows;
        }
    }
    Ok(())
}

#[target_feature(enable = "avx2")]
unsafe fn hsum(v: __m256i) -> i32 {
    let s = _mm_add_epi32(_mm256_castsi256_si128(v), _mm256_extracti128_si256(v, 1));
    let s = _mm_add_epi32(s, _mm_shuffle_epi32(s, 0b01_00_11_10));
    let s = _mm_add_epi32(s, _mm_shuffle_epi32(s, 0b10_11_00_01));
    _mm_cvtsi128_si32(s)
}

/// Whether [`requant8`] computes `r` exactly: multipliers below 1 (shift ≤ 0) keep every result
/// within i32, and a right shift of at most 61 keeps its bias trick exact.
fn vector_exact(r: Requant) -> bool {
    (-30..=0).contains(&r.shift)
}

/// Narrows 8 lanes already clamped to the output type's range and stores the first `y.len()`.
#[inline]
#[target_feature(enable = "avx2")]
unsafe fn narrow_store8<T: Q8>(p: &QLinear, v: __m256i, y: &mut [T]) {
    narrow_store8_bytes(p.unsigned, v, bytemuck::cast_slice_mut(y))
}

#[inline]
#[target_feature(enable = "avx2")]
unsafe fn narrow_store8_bytes(unsigned: bool, v: __m256i, y: &mut [u8]) {
    // packs interleaves per 128-bit lane: [v0..v3 v0..v3 | v4..v7 v4..v7] as i16.
    let w16 = _mm256_packs_epi32(v, v);
    let w16 = _mm_unpacklo_epi64(
        _mm256_castsi256_si128(w16),
        _mm256_extracti128_si256(w16, 1),
    );
    let bytes = if unsigned {
        _mm_packus_epi16(w16, w16)
    } else {
        _mm_packs_epi16(w16, w16)
    };
    store_bytes8(bytes, y);
}

/// Requantizes 8 accumulators (`bias` not yet added) and stores the first `y.len()`.
#[inline]
#[target_feature(enable = "avx2")]
unsafe fn store8<T: Q8>(p: &QLinear, bias: i32, r: Requant, a: __m256i, y: &mut [T]) {
    let a = _mm256_add_epi32(a, _mm256_set1_epi32(bias));
    if vector_exact(r) {
        narrow_store8(p, requant8(a, r, p), y);
    } else {
        let mut acc = [0i32; LANES];
        _mm256_storeu_si256(acc.as_mut_ptr().cast(), a);
        for (d, a) in y.iter_mut().zip(acc) {
            *d = T::put(p.output(a, r));
        }
    }
}

/// [`store8`] on AVX-512VL CPUs (the VNNI path): double-precision requantization where `scale`
/// (the caller's [`Requant::exact_f64`] of `r`, once per channel) allows it, else 64-bit
/// arithmetic shifts; the same results. The lanes end within the output type's range, so
/// AVX-512's truncating narrow is exact.
#[inline]
#[target_feature(enable = "avx2,avx512f,avx512vl")]
unsafe fn store8_vl<T: Q8>(
    p: &QLinear,
    bias: i32,
    r: Requant,
    scale: Option<f64>,
    a: __m256i,
    y: &mut [T],
) {
    let a = _mm256_add_epi32(a, _mm256_set1_epi32(bias));
    let v = if let Some(scale) = scale {
        _mm256_min_epi32(
            _mm256_max_epi32(requant8_f64(a, scale, p.zy), _mm256_set1_epi32(p.act_min)),
            _mm256_set1_epi32(p.act_max),
        )
    } else if vector_exact(r) {
        clamp_zero_point(requant8_raw_vl(a, r), p.zy, p.act_min, p.act_max)
    } else {
        let mut acc = [0i32; LANES];
        _mm256_storeu_si256(acc.as_mut_ptr().cast(), a);
        for (d, a) in y.iter_mut().zip(acc) {
            *d = T::put(p.output(a, r));
        }
        return;
    };
    store_bytes8(_mm256_cvtepi32_epi8(v), bytemuck::cast_slice_mut(y));
}

/// `zy + round_half_even(x · scale)` on 8 lanes in double precision: `zy +
/// Requant::apply(x)` for every value an 8-bit output can tell apart, given a
/// [`Requant::exact_f64`] scale (which says why). Four instructions where the 64-bit integer
/// path takes fifteen.
#[inline]
#[target_feature(enable = "avx2,avx512f")]
unsafe fn requant8_f64(x: __m256i, scale: f64, zy: i32) -> __m256i {
    let v = _mm512_mul_pd(_mm512_cvtepi32_pd(x), _mm512_set1_pd(scale));
    let r = _mm512_cvt_roundpd_epi32::<{ _MM_FROUND_TO_NEAREST_INT | _MM_FROUND_NO_EXC }>(v);
    // The zero point goes on after the rounding: added before, an odd one would turn a tie
    // the other way (0.5 → 0, but 0.5 − 3 → −2, not −3).
    _mm256_add_epi32(r, _mm256_set1_epi32(zy))
}

/// Stores the low `y.len()` (at most 8) bytes of `v`.
#[inline]
#[target_feature(enable = "avx2")]
unsafe fn store_bytes8(v: __m128i, y: &mut [u8]) {
    if y.len() == LANES {
        _mm_storel_epi64(y.as_mut_ptr().cast(), v);
    } else {
        let mut out = [0u8; 16];
        _mm_storeu_si128(out.as_mut_ptr().cast(), v);
        let n = y.len().min(LANES);
        y[..n].copy_from_slice(&out[..n]);
    }
}

/// [`requant8_raw`] with AVX-512VL's arithmetic 64-bit shift (no bias needed).
#[inline]
#[target_feature(enable = "avx2,avx512f,avx512vl")]
unsafe fn requant8_raw_vl(x: __m256i, r: Requant) -> __m256i {
    let right = (31 - r.shift) as i64;
    let m = _mm256_set1_epi32(r.multiplier);
    let count = _mm_set_epi64x(0, right);
    let half_m1 = _mm256_set1_epi64x((1i64 << (right - 1)) - 1);
    let one = _mm256_set1_epi64x(1);
    let round = |prod: __m256i| {
        let odd = _mm256_and_si256(_mm256_sra_epi64(prod, count), one);
        _mm256_sra_epi64(
            _mm256_add_epi64(_mm256_add_epi64(prod, half_m1), odd),
            count,
        )
    };
    let even = round(_mm256_mul_epi32(x, m));
    let odd = round(_mm256_mul_epi32(_mm256_srli_epi64(x, 32), m));
    _mm256_blend_epi32(even, _mm256_slli_epi64(odd, 32), 0b1010_1010)
}

/// [`Requant::apply`] on 8 lanes when [`vector_exact`] holds:
/// `round_half_even(x · m / 2^right)` with `right = 31 − shift ∈ [31, 61]`. The product gets
/// 2^62 added so the logical shifts AVX2 has act as arithmetic ones (2^62 / 2^right is even, so
/// the parity that decides ties is unchanged).
#[inline]
#[target_feature(enable = "avx2")]
unsafe fn requant8_raw(x: __m256i, r: Requant) -> __m256i {
    let right = (31 - r.shift) as i64;
    let m = _mm256_set1_epi32(r.multiplier);
    let count = _mm_set_epi64x(0, right);
    let bias = _mm256_set1_epi64x(1 << 62);
    let half_m1 = _mm256_set1_epi64x((1i64 << (right - 1)) - 1);
    let one = _mm256_set1_epi64x(1);
    let unbias = _mm256_set1_epi64x(1i64 << (62 - right));
    let round = |prod: __m256i| {
        let u = _mm256_add_epi64(prod, bias);
        let odd = _mm256_and_si256(_mm256_srl_epi64(u, count), one);
        let q = _mm256_srl_epi64(_mm256_add_epi64(_mm256_add_epi64(u, half_m1), odd), count);
        _mm256_sub_epi64(q, unbias)
    };
    let even = round(_mm256_mul_epi32(x, m));
    let odd = round(_mm256_mul_epi32(_mm256_srli_epi64(x, 32), m));
    _mm256_blend_epi32(even, _mm256_slli_epi64(odd, 32), 0b1010_1010)
}

/// [`requant8_raw`], then the output zero point and the activation clamp.
#[inline]
#[target_feature(enable = "avx2")]
unsafe fn requant8(x: __m256i, r: Requant, p: &QLinear) -> __m256i {
    clamp_zero_point(requant8_raw(x, r), p.zy, p.act_min, p.act_max)
}

/// `saturating_add(zy, v).clamp(lo, hi)` as `clamp(v, lo − zy, hi − zy) + zy` (exact for
/// 8-bit zero points and clamps).
#[inline]
#[target_feature(enable = "avx2")]
unsafe fn clamp_zero_point(v: __m256i, zy: i32, lo: i32, hi: i32) -> __m256i {
    let v = _mm256_min_epi32(
        _mm256_max_epi32(v, _mm256_set1_epi32(lo - zy)),
        _mm256_set1_epi32(hi - zy),
    );
    _mm256_add_epi32(v, _mm256_set1_epi32(zy))
}

/// int8 Add of two same-shape inputs (residual connections), exactly
/// [`crate::kernels::qadd_ref`]. Returns `false` (and does nothing) when a multiplier is outside
/// what the vector requantization computes exactly, so the caller runs the reference.
pub fn qadd_same_shape<T: Q8>(p: &QAdd, a: &[T], b: &[T], y: &mut [T]) -> bool {
    if !(vector_exact(p.ma) && vector_exact(p.mb) && vector_exact(p.my))
        || a.len() != y.len()
        || b.len() != y.len()
    {
        return false;
    }
    debug_assert!(crate::simd::cpu_has_avx2());
    // SAFETY: the caller checked `has_avx2()`; loads and stores go through slices of 8.
    unsafe {
        qadd_avx2(
            p,
            bytemuck::cast_slice(a),
            bytemuck::cast_slice(b),
            bytemuck::cast_slice_mut(y),
        )
    };
    true
}

#[target_feature(enable = "avx2")]
unsafe fn qadd_avx2(p: &QAdd, a: &[u8], b: &[u8], y: &mut [u8]) {
    let widen = |s: &[u8]| {
        let v = _mm_loadl_epi64(s.as_ptr().cast());
        if p.unsigned {
            _mm256_cvtepu8_epi32(v)
        } else {
            _mm256_cvtepi8_epi32(v)
        }
    };
    let (za, zb) = (_mm256_set1_epi32(p.za), _mm256_set1_epi32(p.zb));
    let n = y.len() / LANES * LANES;
    for i in (0..n).step_by(LANES) {
        let va = requant8_raw(
            _mm256_slli_epi32(_mm256_sub_epi32(widen(&a[i..i + LANES]), za), 20),
            p.ma,
        );
        let vb = requant8_raw(
            _mm256_slli_epi32(_mm256_sub_epi32(widen(&b[i..i + LANES]), zb), 20),
            p.mb,
        );
        // |va|, |vb| < 2^28, so the reference's saturating add is a plain add here.
        let v = requant8_raw(_mm256_add_epi32(va, vb), p.my);
        let v = clamp_zero_point(v, p.zy, p.act_min, p.act_max);
        narrow_store8_bytes(p.unsigned, v, &mut y[i..i + LANES]);
    }
    let get = |v: u8| if p.unsigned { v as i32 } else { v as i8 as i32 };
    for i in n..y.len() {
        y[i] = p.output(get(a[i]), get(b[i])) as u8;
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::kernels::qconv_ref;
    use crate::ops::Window;
    use std::vec::Vec;

    struct Rng(u64);
    impl Rng {
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

    /// One random layer through the AVX2 kernel and the reference; `fc` picks a fully connected
    /// shape (gemv), otherwise a convolution (direct).
    fn check<T: Q8 + PartialEq + core::fmt::Debug>(rng: &mut Rng, fc: bool, case: usize) {
        let (c, oc) = if fc {
            (rng.range(1, 300), rng.range(1, 13))
        } else {
            (rng.range(1, 19), rng.range(1, 11))
        };
        let (kh, kw, dh, dw) = if fc {
            (1, 1, 1, 1)
        } else {
            (
                rng.range(1, 5),
                rng.range(1, 5),
                rng.range(1, 2),
                rng.range(1, 2),
            )
        };
        let (h, w) = if fc {
            (1, 1)
        } else {
            (
                rng.range((kh - 1) * dh + 1, 12),
                rng.range((kw - 1) * dw + 1, 40),
            )
        };
        let (pt, pl, pb, pr) = if fc {
            (0, 0, 0, 0)
        } else {
            (
                rng.range(0, 2),
                rng.range(0, 2),
                rng.range(0, 2),
                rng.range(0, 2),
            )
        };
        let (sh, sw) = if fc {
            (1, 1)
        } else {
            (rng.range(1, 3), rng.range(1, 3))
        };
        let oh = (h + pt + pb - ((kh - 1) * dh + 1)) / sh + 1;
        let ow = (w + pl + pr - ((kw - 1) * dw + 1)) / sw + 1;
        let win = Window {
            n: rng.range(1, 3),
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
            group: 1,
        };
        let kk = c * kh * kw;
        let w_stride_oc = kk + rng.range(0, 3);
        let unsigned = core::mem::size_of::<T>() == 1 && T::put(200).get() == 200;
        let (lo, hi) = if unsigned { (0, 255) } else { (-128, 127) };
        let zy = rng.range(0, 60) as i32 + lo;
        let p = QLinear {
            win,
            zx: rng.range(0, 60) as i32 + lo,
            zy,
            act_min: if rng.next().is_multiple_of(2) { lo } else { zy },
            act_max: hi - rng.range(0, 3) as i32,
            bias: 0,
            requant: 0,
            packed: 0,
            packed_len: 0,
            w_stride_oc,
            w_stride_k: 1,
            unsigned,
        };
        assert!(path(&p).is_some());
        let x: Vec<T> = (0..win.n * c * h * w)
            .map(|_| T::put(rng.range(0, 255) as i32 + lo))
            .collect();
        let wt: Vec<i8> = (0..oc * w_stride_oc).map(|_| rng.next() as i8).collect();
        let bias: Vec<i32> = (0..oc)
            .map(|_| (rng.next() % 200_000) as i32 - 100_000)
            .collect();
        // Multipliers from tiny to above 1 (the scalar fallback), ties included by chance.
        let rq: Vec<i32> = (0..oc)
            .flat_map(|_| {
                let m = [2e-5, 6.2e-5, 1e-4, 3e-3, 0.02, 0.37, 0.999, 1.7][rng.range(0, 7)]
                    * (1.0 + (rng.next() % 1000) as f64 * 1e-3);
                let r = Requant::from_f64(m);
                [r.multiplier, r.shift]
            })
            .collect();
        let mut want = std::vec![T::put(0); win.n * oc * oh * ow];
        let mut got = want.clone();
        qconv_ref(&p, &x, &wt, &bias, RequantTable(&rq), &mut want).unwrap();
        let paths: &[Path] = match path(&p).unwrap() {
            Path::Gemv => &[Path::Gemv],
            _ if has_vnni() => &[Path::Direct, Path::DirectVnni],
            _ => &[Path::Direct],
        };
        for &path in paths {
            let mut scratch = std::vec![0u128; path_scratch(path, &p).div_ceil(16)];
            let mut packed =
                std::vec![0u128; (align32(weight_words(path, &p) * 4) + oc * 4).div_ceil(16)];
            let packed: &mut [u8] = bytemuck::cast_slice_mut(&mut packed);
            if path != Path::Gemv {
                pack_path(path, &p, &wt, &bias, packed).unwrap();
            }
            run(
                path,
                &p,
                &x,
                &wt,
                &bias,
                packed,
                RequantTable(&rq),
                &mut got,
                bytemuck::cast_slice_mut(&mut scratch),
            )
            .unwrap();
            assert_eq!(
                want, got,
                "case {case} {path:?}: {win:?} zx {} zy {zy}",
                p.zx
            );
        }
    }

    #[test]
    fn avx2_kernels_are_bit_exact_with_the_reference() {
        if !crate::simd::has_avx2() {
            std::eprintln!("no AVX2 on this CPU: nothing to compare");
            return;
        }
        let mut rng = Rng(7);
        for case in 0..400 {
            let fc = case % 3 == 0;
            if case % 2 == 0 {
                check::<i8>(&mut rng, fc, case);
            } else {
                check::<u8>(&mut rng, fc, case);
            }
        }
    }

    #[test]
    fn avx2_residual_add_is_bit_exact_with_the_reference() {
        if !crate::simd::has_avx2() {
            return;
        }
        let mut rng = Rng(3);
        for case in 0..300 {
            let len = rng.range(1, 200);
            let shape = crate::Shape::new(&[len as i64], "t").unwrap();
            let unsigned = case % 2 == 1;
            let lo = if unsigned { 0 } else { -128 };
            let (sa, sb) = (
                0.001 + (rng.next() % 1000) as f64 * 1e-4,
                0.001 + (rng.next() % 1000) as f64 * 1e-4,
            );
            let sy = (sa + sb) * (0.2 + (rng.next() % 100) as f64 * 0.01);
            let twice_max = 2.0 * sa.max(sb);
            let zy = lo + rng.range(0, 255) as i32;
            let p = QAdd {
                bc: crate::ops::broadcast(&shape, &shape).unwrap(),
                za: lo + rng.range(0, 255) as i32,
                zb: lo + rng.range(0, 255) as i32,
                zy,
                ma: Requant::from_f64(sa / twice_max),
                mb: Requant::from_f64(sb / twice_max),
                my: Requant::from_f64(twice_max / ((1u64 << 20) as f64 * sy)),
                act_min: if rng.next().is_multiple_of(2) { lo } else { zy },
                act_max: lo + 255,
                unsigned,
            };
            let a: Vec<u8> = (0..len).map(|_| rng.next() as u8).collect();
            let b: Vec<u8> = (0..len).map(|_| rng.next() as u8).collect();
            let (mut want, mut got) = (std::vec![0u8; len], std::vec![0u8; len]);
            if unsigned {
                crate::kernels::qadd_ref(&p, &a, &b, &mut want).unwrap();
                assert!(qadd_same_shape(&p, &a, &b, &mut got));
            } else {
                let (a, b): (&[i8], &[i8]) = (bytemuck::cast_slice(&a), bytemuck::cast_slice(&b));
                crate::kernels::qadd_ref(&p, a, b, bytemuck::cast_slice_mut(&mut want)).unwrap();
                assert!(qadd_same_shape(
                    &p,
                    a,
                    b,
                    bytemuck::cast_slice_mut(&mut got)
                ));
            }
            assert_eq!(want, got, "case {case}");
        }
    }

    #[test]
    fn vector_requantization_equals_the_scalar_one_on_extremes() {
        if !crate::simd::has_avx2() {
            return;
        }
        let p = QLinear {
            win: Window::fully_connected(1, 1, 1),
            zx: 0,
            zy: 0,
            act_min: i32::MIN / 2,
            act_max: i32::MAX / 2,
            bias: 0,
            requant: 0,
            packed: 0,
            packed_len: 0,
            w_stride_oc: 1,
            w_stride_k: 1,
            unsigned: false,
        };
        let xs = [
            i32::MIN,
            i32::MIN + 1,
            -65_536,
            -3,
            -1,
            0,
            1,
            2,
            3,
            1 << 20,
            i32::MAX,
        ];
        for m in [1e-9, 2.4e-5, 0.5, 0.75, 0.999_999_9] {
            let r = Requant::from_f64(m);
            for x in xs {
                // SAFETY: AVX2 checked above.
                let v = unsafe { requant8(_mm256_set1_epi32(x), r, &p) };
                let mut out = [0i32; 8];
                unsafe { _mm256_storeu_si256(out.as_mut_ptr().cast(), v) };
                let want = r.apply(x).clamp(p.act_min, p.act_max);
                assert_eq!(out, [want; 8], "m {m} x {x}");
            }
        }
    }

    #[test]
    fn double_precision_requantization_equals_the_scalar_one() {
        if !has_vnni() {
            std::eprintln!("no AVX-512 on this CPU: nothing to compare");
            return;
        }
        for (r, x) in crate::quant::exact_f64_cases() {
            let scale = r.exact_f64().unwrap();
            for zy in [-128, -3, 0, 77, 255] {
                // SAFETY: VNNI (so AVX-512F) checked above.
                let v = unsafe { requant8_f64(_mm256_set1_epi32(x), scale, zy) };
                let mut out = [0i32; 8];
                unsafe { _mm256_storeu_si256(out.as_mut_ptr().cast(), v) };
                // Equal wherever the rounded product is under 512 in magnitude; beyond, both
                // are at least 512, which every 8-bit output saturates alike.
                let want = zy.saturating_add(r.apply(x));
                let clamp = |v: i32| v.clamp(-512, 512);
                assert_eq!(out.map(clamp), [clamp(want); 8], "{r:?} zy {zy} x {x}");
            }
        }
    }

    #[test]
    fn sse2_interleave_equals_the_portable_one() {
        let mut rng = Rng(5);
        for n in [0usize, 1, 15, 16, 17, 32, 47, 100] {
            let rows: std::vec::Vec<std::vec::Vec<u8>> = (0..4)
                .map(|_| (0..n + rng.range(0, 3)).map(|_| rng.next() as u8).collect())
                .collect();
            let rows: [&[u8]; 4] = core::array::from_fn(|j| rows[j].as_slice());
            for shift in [0u8, 128] {
                let (mut want, mut got) = (std::vec![0u8; 4 * n + 1], std::vec![0u8; 4 * n + 1]);
                quad::interleave4(rows, shift, &mut want);
                interleave4_sse2(rows, shift, &mut got);
                assert_eq!(want, got, "n {n} shift {shift}");
            }
        }
    }
}

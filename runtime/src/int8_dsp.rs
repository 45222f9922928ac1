//! Cortex-M4/M7/M33 (the Armv7E-M DSP extension): the int8 convolution and fully connected
//! kernel, with SMLAD (two 16×16 multiply-accumulates per instruction).
//!
//! Each output row's patches are gathered once as i16 in the order SMLAD wants them: per four
//! taps `x0 x2 x1 x3`, so two word loads give the halfword pairs that SXTB16 splits a weight
//! word into (w0 w2, then w1 w3) and no pairing instruction remains in the inner loop. Pixels go
//! in groups of four, interleaved tap-quad by tap-quad, so one weight word (one load, two
//! SXTB16) serves four pixels: 15 instructions per 16 multiply-accumulates. Pixels past the last
//! full group (and fully connected layers, one pixel) take a one-pixel loop. Taps past the last
//! full quad (a 3×3 depthwise kernel's ninth) make one more quad, its weights zero-padded into
//! a word once per output channel. Weights are read where they are (flash), four at a time
//! (unaligned word loads, which Armv7E-M allows).
//!
//! Integer products summed with wrapping adds, as [`crate::kernels::qconv_ref`] does, so the
//! result is bit-identical: host tests check the layout and the loops (the same code, with the
//! two instructions in plain Rust); the `kernels` firmware checks the instructions under QEMU's
//! Cortex-M4.
//!
//! Picked by `qconv_im2row` when the `arm-dsp` feature is on (the target must have the DSP
//! extension: thumbv7em-*, thumbv8m.main-*).
#![cfg_attr(all(target_arch = "arm", feature = "arm-dsp"), allow(unsafe_code))]

use crate::error::{Error, Result};
use crate::kernels::{check_im2row_args, Q8};
use crate::ops::QLinear;
use crate::quant::{BelowHalf, Requant, RequantTable};

/// Pixels per interleaved group.
const GROUP: usize = 4;

/// Where a row's patches live in the scratch: `quads` tap quads per pixel (the last one padded
/// when the `taps` are not a multiple of four: its padding meets zero weights), for `groups`
/// groups of [`GROUP`] pixels and `singles` pixels after those.
#[derive(Clone, Copy)]
struct Layout {
    taps: usize,
    quads: usize,
    groups: usize,
    singles: usize,
}

impl Layout {
    fn new(p: &QLinear) -> Self {
        let win = &p.win;
        let kk = win.c / win.group.max(1) * win.kh * win.kw;
        Layout {
            taps: kk,
            quads: kk.div_ceil(4),
            groups: win.ow / GROUP,
            singles: win.ow % GROUP,
        }
    }

    /// Halfwords of one group: its quads, four pixels × four taps each.
    fn group_len(&self) -> usize {
        GROUP * 4 * self.quads
    }

    /// Halfwords of one single pixel.
    fn single_len(&self) -> usize {
        4 * self.quads
    }

    fn len(&self) -> usize {
        self.groups * self.group_len() + self.singles * self.single_len()
    }

    /// Halfwords of one padded input row: the columns a row of outputs reads.
    fn row_len(p: &QLinear) -> usize {
        let win = &p.win;
        (win.ow.max(1) - 1) * win.sw + (win.kw.max(1) - 1) * win.dw + 1
    }

    /// Positions of tap `k` in group 0 (pixel 0, and the step between its pixels) and in
    /// single pixel 0.
    #[inline(always)]
    fn tap(&self, k: usize) -> (usize, usize, usize) {
        // x0 x2 x1 x3: the halfword pairs SXTB16 makes of a weight word.
        let slot = [0, 2, 1, 3][k % 4];
        (k / 4 * 4 * GROUP + slot, 4, k / 4 * 4 + slot)
    }
}

/// Scratch bytes of [`qconv`]: one output row's patches and one padded input row.
pub fn scratch_bytes(p: &QLinear) -> usize {
    (Layout::new(p).len() + Layout::row_len(p)) * 2
}

/// int8 convolution / fully connected layer, bit-identical with
/// [`crate::kernels::qconv_ref`]; `scratch` holds [`scratch_bytes`], word-aligned.
#[allow(clippy::too_many_arguments)]
pub fn qconv<T: Q8>(
    p: &QLinear,
    x: &[T],
    w: &[i8],
    bias: &[i32],
    rq: RequantTable<'_>,
    y: &mut [T],
    scratch: &mut [u8],
) -> Result<()> {
    check_im2row_args(p, x, w, bias, rq, y)?;
    let lay = Layout::new(p);
    let misaligned = Error::BadIo {
        what: "misaligned scratch",
    };
    let bytes = scratch.get_mut(..scratch_bytes(p)).ok_or(Error::BadIo {
        what: "buffer size does not match the plan",
    })?;
    if !(bytes.as_ptr() as usize).is_multiple_of(4) {
        return Err(misaligned);
    }
    let halves: &mut [i16] = bytemuck::try_cast_slice_mut(bytes).map_err(|_| misaligned)?;
    let (cols, row) = halves.split_at_mut(lay.len());
    let win = &p.win;
    let (cpg, opg) = (win.c / win.group, win.oc / win.group);
    let kk = cpg * win.kh * win.kw;
    let (gl, sl) = (lay.group_len(), lay.single_len());
    for n in 0..win.n {
        for g in 0..win.group {
            for oy in 0..win.oh {
                gather(p, &lay, x, n * win.c + g * cpg, oy, cols, row)?;
                let (grouped, singles) = cols.split_at(lay.groups * gl);
                for oc in g * opg..(g + 1) * opg {
                    let wrow = &w[oc * p.w_stride_oc..][..kk];
                    let (wq, wt) = wrow.split_at(kk / 4 * 4);
                    // The last, partial quad's weights as one word, zero-padded.
                    let tail = (!wt.is_empty()).then(|| {
                        let mut t = [0u8; 4];
                        for (d, &v) in t.iter_mut().zip(wt) {
                            *d = v as u8;
                        }
                        u32::from_le_bytes(t)
                    });
                    let out = Rescale::new(p, rq.get(oc));
                    let b = bias[oc];
                    let yrow = ((n * win.oc + oc) * win.oh + oy) * win.ow;
                    let yrow = &mut y[yrow..yrow + win.ow];
                    let (y4, y1) = yrow.split_at_mut(lay.groups * GROUP);
                    for (c, o) in grouped.chunks_exact(gl).zip(y4.chunks_exact_mut(GROUP)) {
                        let [a0, a1, a2, a3] = quads4(b, c, wq, tail);
                        o[0] = T::put(out.apply(a0));
                        o[1] = T::put(out.apply(a1));
                        o[2] = T::put(out.apply(a2));
                        o[3] = T::put(out.apply(a3));
                    }
                    for (c, o) in singles.chunks_exact(sl).zip(y1) {
                        *o = T::put(out.apply(quads1(b, c, wq, tail)));
                    }
                }
            }
        }
    }
    Ok(())
}

/// One output channel's [`QLinear::output`] with its requantization constants worked out once
/// ([`BelowHalf`], every real layer's case; the general definition otherwise).
#[derive(Clone, Copy)]
struct Rescale<'a> {
    p: &'a QLinear,
    r: Requant,
    below_half: Option<BelowHalf>,
}

impl<'a> Rescale<'a> {
    #[inline(always)]
    fn new(p: &'a QLinear, r: Requant) -> Self {
        Rescale {
            p,
            r,
            below_half: r.below_half(),
        }
    }

    #[inline(always)]
    fn apply(&self, acc: i32) -> i32 {
        match self.below_half {
            Some(b) => self.p.offset_and_clamp(b.apply(acc)),
            None => self.p.output(acc, self.r),
        }
    }
}

/// Gathers output row `oy`'s patches over input channels `c0..c0 + cpg` of image `n` into
/// `cols` in [`Layout`] order. An input row the taps read only inside of is read in place; any
/// other is first copied into `row` with its padding (the input zero point), so no tap tests
/// bounds per pixel.
fn gather<T: Q8>(
    p: &QLinear,
    lay: &Layout,
    x: &[T],
    c0: usize,
    oy: usize,
    cols: &mut [i16],
    row: &mut [i16],
) -> Result<()> {
    let win = &p.win;
    let zx = p.zx as i16;
    let cpg = win.c / win.group;
    if win.h * win.w * win.kh * win.kw == 1 && win.pt + win.pl == 0 {
        // Fully connected: one pixel, whose patch is the input channels in order.
        let (x, cols) = (&x[c0..c0 + cpg], &mut cols[..lay.single_len()]);
        let (xq, xt) = x.split_at(cpg / 4 * 4);
        let (cq, ct) = cols.split_at_mut(cpg / 4 * 4);
        for (c, v) in cq.chunks_exact_mut(4).zip(xq.chunks_exact(4)) {
            c[0] = v[0].get() as i16;
            c[1] = v[2].get() as i16;
            c[2] = v[1].get() as i16;
            c[3] = v[3].get() as i16;
        }
        for (k, v) in xt.iter().enumerate() {
            ct[[0, 2, 1][k]] = v.get() as i16;
        }
        return Ok(());
    }
    let in_place = win.pl == 0 && row.len() <= win.w;
    let (left, right) = (win.pl.min(row.len()), (win.pl + win.w).min(row.len()));
    let mut k = 0;
    for ic in c0..c0 + cpg {
        for ky in 0..win.kh {
            let iy = (oy * win.sh + ky * win.dh) as isize - win.pt as isize;
            let src = (iy >= 0 && iy < win.h as isize)
                .then(|| &x[(ic * win.h + iy as usize) * win.w..][..win.w]);
            match src {
                Some(src) if in_place => {
                    for kx in 0..win.kw {
                        scatter(lay, k + kx, &src[kx * win.dw..], win.sw, cols, |v| {
                            v.get() as i16
                        })?;
                    }
                }
                _ => {
                    match src {
                        Some(src) => {
                            row[..left].fill(zx);
                            for (d, s) in row[left..right].iter_mut().zip(src) {
                                *d = s.get() as i16;
                            }
                            row[right..].fill(zx);
                        }
                        None => row.fill(zx),
                    }
                    for kx in 0..win.kw {
                        scatter(lay, k + kx, &row[kx * win.dw..], win.sw, cols, |v| v)?;
                    }
                }
            }
            k += win.kw;
        }
    }
    Ok(())
}

/// Puts tap `k` of every pixel (pixel `i` reads `src[i · sw]`) where [`Layout`] keeps it.
#[inline(always)]
fn scatter<V: Copy>(
    lay: &Layout,
    k: usize,
    src: &[V],
    sw: usize,
    cols: &mut [i16],
    get: impl Fn(V) -> i16,
) -> Result<()> {
    let (g0, step, s0) = lay.tap(k);
    let (gl, sl) = (lay.group_len(), lay.single_len());
    let pixels = lay.groups * GROUP + lay.singles;
    if pixels == 0 {
        return Ok(());
    }
    // `qconv` sizes both buffers so that this holds; tested here, it keeps the pointer code
    // below sound on its own.
    if (pixels - 1) * sw >= src.len()
        || k >= lay.taps
        || cols.len() < lay.groups * gl + lay.singles * sl
    {
        return Err(Error::BadIo {
            what: "buffer size does not match the plan",
        });
    }
    #[cfg(all(target_arch = "arm", feature = "arm-dsp"))]
    // SAFETY: pixel i < `pixels` reads src[i · sw] and writes tap k's Layout position for
    // pixel i, all in bounds by the test above.
    unsafe {
        let (mut s, mut d) = (src.as_ptr(), cols.as_mut_ptr().add(g0));
        for _ in 0..lay.groups {
            *d = get(*s);
            *d.add(step) = get(*s.add(sw));
            *d.add(2 * step) = get(*s.add(2 * sw));
            *d.add(3 * step) = get(*s.add(3 * sw));
            (s, d) = (s.add(GROUP * sw), d.add(gl));
        }
        let mut d = cols.as_mut_ptr().add(lay.groups * gl + s0);
        for _ in 0..lay.singles {
            *d = get(*s);
            (s, d) = (s.add(sw), d.add(sl));
        }
    }
    #[cfg(not(all(target_arch = "arm", feature = "arm-dsp")))]
    for i in 0..pixels {
        let (grp, lane) = (i / GROUP, i % GROUP);
        let at = if grp < lay.groups {
            grp * gl + g0 + lane * step
        } else {
            lay.groups * gl + (i - lay.groups * GROUP) * sl + s0
        };
        cols[at] = get(src[i * sw]);
    }
    Ok(())
}

/// One tap quad for four pixels, the body of [`quads4`]'s loop and its tail: the weight word
/// in `{t}` split into halfword pairs (w0 w2, w1 w3), then per pixel one doubleword of
/// patch values (`x0 x2`, `x1 x3`, `{pc}` post-incremented) and two `smlad`s into `{aN}`.
#[cfg(all(target_arch = "arm", feature = "arm-dsp"))]
macro_rules! quad_step4 {
    () => {
        concat!(
            "sxtb16 {w02}, {t}\n",
            "sxtb16 {t}, {t}, ror #8\n",
            "ldrd {x0}, {x1}, [{pc}], #8\n",
            "smlad {a0}, {x0}, {w02}, {a0}\n",
            "smlad {a0}, {x1}, {t}, {a0}\n",
            "ldrd {x0}, {x1}, [{pc}], #8\n",
            "smlad {a1}, {x0}, {w02}, {a1}\n",
            "smlad {a1}, {x1}, {t}, {a1}\n",
            "ldrd {x0}, {x1}, [{pc}], #8\n",
            "smlad {a2}, {x0}, {w02}, {a2}\n",
            "smlad {a2}, {x1}, {t}, {a2}\n",
            "ldrd {x0}, {x1}, [{pc}], #8\n",
            "smlad {a3}, {x0}, {w02}, {a3}\n",
            "smlad {a3}, {x1}, {t}, {a3}",
        )
    };
}

/// [`quad_step4`] for one pixel (accumulator `{a}`), in [`quads1`].
#[cfg(all(target_arch = "arm", feature = "arm-dsp"))]
macro_rules! quad_step1 {
    () => {
        concat!(
            "sxtb16 {w02}, {t}\n",
            "sxtb16 {t}, {t}, ror #8\n",
            "ldrd {x0}, {x1}, [{pc}], #8\n",
            "smlad {a}, {x0}, {w02}, {a}\n",
            "smlad {a}, {x1}, {t}, {a}",
        )
    };
}
/// `bias + Σ` over the tap quads of each of the four interleaved pixels in `cols`
/// (`x0 x2 x1 x3` per pixel per quad) and the weight quads in `w`, then over one more quad of
/// `cols` with the `tail` weight word (the last, partial quad, zero-padded).
#[inline(always)]
fn quads4(bias: i32, cols: &[i16], w: &[i8], tail: Option<u32>) -> [i32; GROUP] {
    let (mut a0, mut a1, mut a2, mut a3) = (bias, bias, bias, bias);
    let n = (w.len() / 4).min(cols.len() / (4 * GROUP));
    let tail = tail.filter(|_| cols.len() >= (n + 1) * 4 * GROUP);
    #[cfg(all(target_arch = "arm", feature = "arm-dsp"))]
    // SAFETY: reads n weight words (unaligned word loads, which Armv7E-M allows) and 4n (4n + 4
    // with a tail) doubleword pixel quads from `cols`, word-aligned (checked by `qconv`), all in
    // bounds (n and the tail are capped by both lengths above); register-only DSP instructions
    // otherwise.
    unsafe {
        let mut pc = cols.as_ptr();
        if n > 0 {
            core::arch::asm!(
                "2:",
                "ldr {t}, [{pw}], #4",
                quad_step4!(),
                "subs {n}, {n}, #1",
                "bne 2b",
                pw = inout(reg) w.as_ptr() => _,
                pc = inout(reg) pc,
                n = inout(reg) n => _,
                t = out(reg) _,
                w02 = out(reg) _,
                x0 = out(reg) _,
                x1 = out(reg) _,
                a0 = inout(reg) a0,
                a1 = inout(reg) a1,
                a2 = inout(reg) a2,
                a3 = inout(reg) a3,
                options(pure, readonly, nostack),
            );
        }
        if let Some(t) = tail {
            core::arch::asm!(
                quad_step4!(),
                pc = inout(reg) pc => _,
                t = inout(reg) t => _,
                w02 = out(reg) _,
                x0 = out(reg) _,
                x1 = out(reg) _,
                a0 = inout(reg) a0,
                a1 = inout(reg) a1,
                a2 = inout(reg) a2,
                a3 = inout(reg) a3,
                options(pure, readonly, nostack),
            );
        }
    }
    #[cfg(not(all(target_arch = "arm", feature = "arm-dsp")))]
    {
        let words = w.chunks_exact(4).take(n).map(bytes).chain(tail);
        for (c, wq) in cols.chunks_exact(4 * GROUP).zip(words) {
            let x: [(u32, u32); GROUP] = core::array::from_fn(|l| {
                (
                    halves(c[4 * l], c[4 * l + 1]),
                    halves(c[4 * l + 2], c[4 * l + 3]),
                )
            });
            a0 = quad(a0, x[0].0, x[0].1, wq);
            a1 = quad(a1, x[1].0, x[1].1, wq);
            a2 = quad(a2, x[2].0, x[2].1, wq);
            a3 = quad(a3, x[3].0, x[3].1, wq);
        }
    }
    [a0, a1, a2, a3]
}

/// `acc + Σ` over the tap quads of one pixel in `cols` (`x0 x2 x1 x3` per quad) and the weight
/// quads in `w`, then the `tail` quad as in [`quads4`].
#[inline(always)]
fn quads1(mut acc: i32, cols: &[i16], w: &[i8], tail: Option<u32>) -> i32 {
    let n = (w.len() / 4).min(cols.len() / 4);
    let tail = tail.filter(|_| cols.len() >= (n + 1) * 4);
    #[cfg(all(target_arch = "arm", feature = "arm-dsp"))]
    // SAFETY: as in `quads4`, for one pixel.
    unsafe {
        let mut pc = cols.as_ptr();
        if n > 0 {
            core::arch::asm!(
                "2:",
                "ldr {t}, [{pw}], #4",
                quad_step1!(),
                "subs {n}, {n}, #1",
                "bne 2b",
                pw = inout(reg) w.as_ptr() => _,
                pc = inout(reg) pc,
                n = inout(reg) n => _,
                t = out(reg) _,
                w02 = out(reg) _,
                x0 = out(reg) _,
                x1 = out(reg) _,
                a = inout(reg) acc,
                options(pure, readonly, nostack),
            );
        }
        if let Some(t) = tail {
            core::arch::asm!(
                quad_step1!(),
                pc = inout(reg) pc => _,
                t = inout(reg) t => _,
                w02 = out(reg) _,
                x0 = out(reg) _,
                x1 = out(reg) _,
                a = inout(reg) acc,
                options(pure, readonly, nostack),
            );
        }
    }
    #[cfg(not(all(target_arch = "arm", feature = "arm-dsp")))]
    {
        let words = w.chunks_exact(4).take(n).map(bytes).chain(tail);
        for (x, wq) in cols.chunks_exact(4).zip(words) {
            acc = quad(acc, halves(x[0], x[1]), halves(x[2], x[3]), wq);
        }
    }
    acc
}

/// SXTB16 and SMLAD in plain Rust: `acc + x0·w0 + x2·w2 + x1·w1 + x3·w3` with the patch
/// halfwords paired as x02 = x0 | x2 << 16, x13 = x1 | x3 << 16 and `w` = w0..w3.
#[cfg(not(all(target_arch = "arm", feature = "arm-dsp")))]
#[inline(always)]
fn quad(acc: i32, x02: u32, x13: u32, w: u32) -> i32 {
    let sxtb16 = |v: u32| (v as u8 as i8 as i32, (v >> 16) as u8 as i8 as i32);
    let (w0, w2) = sxtb16(w);
    let (w1, w3) = sxtb16(w.rotate_right(8));
    let lo = |v: u32| v as u16 as i16 as i32;
    let hi = |v: u32| (v >> 16) as u16 as i16 as i32;
    acc.wrapping_add(lo(x02) * w0)
        .wrapping_add(hi(x02) * w2)
        .wrapping_add(lo(x13) * w1)
        .wrapping_add(hi(x13) * w3)
}

/// `lo | hi << 16` as halfwords (what one word load of two adjacent patch values gives).
#[cfg(not(all(target_arch = "arm", feature = "arm-dsp")))]
#[inline(always)]
fn halves(lo: i16, hi: i16) -> u32 {
    lo as u16 as u32 | (hi as u16 as u32) << 16
}

/// Four weights as one little-endian word (what one word load gives).
#[cfg(not(all(target_arch = "arm", feature = "arm-dsp")))]
#[inline(always)]
fn bytes(v: &[i8]) -> u32 {
    u32::from_le_bytes([v[0] as u8, v[1] as u8, v[2] as u8, v[3] as u8])
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::kernels::qconv_ref;
    use crate::ops::Window;

    /// Random shapes covering every branch of the layout: groups with and without single
    /// pixels after them, one-pixel rows (fully connected), reductions of fewer than four taps,
    /// with and without a tail, grouped and depthwise convolutions, strides and padding;
    /// extreme inputs and weights.
    #[test]
    fn equals_the_reference_kernel() {
        let mut s = 0x1234_5678u32;
        let mut next = move || {
            s ^= s << 13;
            s ^= s >> 17;
            s ^= s << 5;
            s
        };
        let mut range = |lo: usize, hi: usize| lo + next() as usize % (hi - lo + 1);
        let mut seen = [false; 5];
        for case in 0..400 {
            // One case in five fully connected (one pixel, many channels).
            let fc = case % 5 == 4;
            let group = if fc { 1 } else { [1, 1, 2, 3][range(0, 3)] };
            let c = group * if fc { range(1, 80) } else { range(1, 7) };
            let oc = group * range(1, 5);
            let (kh, kw) = if fc {
                (1, 1)
            } else {
                (range(1, 3), range(1, 3))
            };
            let (sh, sw) = (range(1, 2), range(1, 2));
            let (h, w) = if fc {
                (1, 1)
            } else {
                (range(kh, 8), range(kw, 19))
            };
            let (pt, pl) = (range(0, kh - 1), range(0, kw - 1));
            let oh = (h + 2 * pt - kh) / sh + 1;
            let ow = (w + 2 * pl - kw) / sw + 1;
            let win = Window {
                n: range(1, 2),
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
            let kk = c / group * kh * kw;
            let unsigned = case % 2 == 1;
            let (lo, hi) = if unsigned { (0, 255) } else { (-128, 127) };
            let zy = range(0, 255) as i32 + lo;
            let p = QLinear {
                win,
                zx: range(0, 255) as i32 + lo,
                zy,
                act_min: if case % 3 == 0 { zy } else { lo },
                act_max: hi,
                bias: 0,
                requant: 0,
                packed: 0,
                packed_len: 0,
                w_stride_oc: kk + range(0, 2),
                w_stride_k: 1,
                unsigned,
            };
            let lay = Layout::new(&p);
            seen[0] |= lay.groups > 0 && lay.singles > 0;
            seen[1] |= lay.groups == 0;
            seen[2] |= lay.taps < 4;
            seen[3] |= lay.taps > 4 && !lay.taps.is_multiple_of(4);
            seen[4] |= fc && lay.taps > 8 && !lay.taps.is_multiple_of(4);
            let mut byte = || match range(0, 9) {
                0 => 0x80u8,
                1 => 0x7f,
                2 => 0xff,
                _ => range(0, 255) as u8,
            };
            let x: std::vec::Vec<u8> = (0..win.n * c * h * w).map(|_| byte()).collect();
            let wt: std::vec::Vec<i8> = (0..oc * p.w_stride_oc).map(|_| byte() as i8).collect();
            let bias: std::vec::Vec<i32> =
                (0..oc).map(|_| range(0, 40_000) as i32 - 20_000).collect();
            let rq: std::vec::Vec<i32> = (0..oc)
                .flat_map(|_| {
                    // Mostly below ½ (the inline path); also ½ to 1 and above 1 (the general).
                    let m = 1e-4 + range(0, 20_000) as f64 * 1e-5;
                    let r = Requant::from_f64(m * [1.0, 1.0, 1.0, 4.0, 20.0][range(0, 4)]);
                    [r.multiplier, r.shift]
                })
                .collect();
            let rq = RequantTable(&rq);
            let ny = win.n * oc * oh * ow;
            // u32 storage keeps the scratch word-aligned, as the planner does; junk in it (the
            // padding of a partial quad is never written) must not reach the outputs.
            let mut scratch = std::vec![0x7ff1_8001u32; scratch_bytes(&p).div_ceil(4)];
            let scratch: &mut [u8] = bytemuck::cast_slice_mut(&mut scratch);
            if unsigned {
                let (mut a, mut b) = (std::vec![0u8; ny], std::vec![0u8; ny]);
                qconv(&p, &x, &wt, &bias, rq, &mut a, scratch).unwrap();
                qconv_ref(&p, &x, &wt, &bias, rq, &mut b).unwrap();
                assert_eq!(a, b, "case {case}: {win:?}");
            } else {
                let x: &[i8] = bytemuck::cast_slice(&x);
                let (mut a, mut b) = (std::vec![0i8; ny], std::vec![0i8; ny]);
                qconv(&p, x, &wt, &bias, rq, &mut a, scratch).unwrap();
                qconv_ref(&p, x, &wt, &bias, rq, &mut b).unwrap();
                assert_eq!(a, b, "case {case}: {win:?}");
            }
        }
        assert_eq!(
            seen, [true; 5],
            "groups+singles, no group, under 4 taps, quads+partial quad, fc"
        );
    }

    #[test]
    fn short_or_misaligned_scratch_is_an_error() {
        let p = QLinear {
            win: Window {
                n: 1,
                c: 4,
                h: 3,
                w: 5,
                oc: 2,
                oh: 3,
                ow: 5,
                kh: 1,
                kw: 1,
                sh: 1,
                sw: 1,
                pt: 0,
                pl: 0,
                dh: 1,
                dw: 1,
                group: 1,
            },
            zx: 0,
            zy: 0,
            act_min: -128,
            act_max: 127,
            bias: 0,
            requant: 0,
            packed: 0,
            packed_len: 0,
            w_stride_oc: 4,
            w_stride_k: 1,
            unsigned: false,
        };
        let (x, w, bias, rq) = ([1i8; 60], [1i8; 8], [0i32; 2], [1 << 30, 0, 1 << 30, 0]);
        let mut y = [0i8; 30];
        let mut scratch = std::vec![0u32; scratch_bytes(&p) / 4 + 1];
        let bytes: &mut [u8] = bytemuck::cast_slice_mut(&mut scratch);
        let rq = RequantTable(&rq);
        assert!(qconv(&p, &x, &w, &bias, rq, &mut y, &mut bytes[1..]).is_err());
        let short = scratch_bytes(&p) - 2;
        assert!(qconv(&p, &x, &w, &bias, rq, &mut y, &mut bytes[..short]).is_err());
        qconv(&p, &x, &w, &bias, rq, &mut y, bytes).unwrap();
        assert_eq!(y, [2i8; 30], "four taps of 1 · 1 at a multiplier of ½");
    }
}

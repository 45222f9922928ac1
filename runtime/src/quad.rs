//! The data layout of the 4-way dot-product convolution kernels (x86 VNNI `vpdpbusd`, Arm
//! `sdot`): each instruction multiplies four 8-bit inputs by four 8-bit weights and adds the
//! sum to a 32-bit lane, so input channels go in quads.
//!
//! - The input is padded once per image into `[c/4][row][phase][col][4]` bytes, padding and the
//!   phantom channels of a count not divisible by 4 reading as the zero point; with a column
//!   stride `sw` each padded row is split into `sw` phases (column `c` at phase `c % sw`,
//!   position `c / sw`), so the taps of consecutive output pixels are consecutive bytes.
//! - The weights become one i32 of four i8 per (output channel, channel quad, tap).
//! - The instructions want one operand of a fixed signedness (VNNI: unsigned inputs; `sdot`:
//!   signed), so inputs are stored offset by `off` (±128 or 0) and each bias corrects by
//!   `−off·Σw`: Σ w·(x + off) − off·Σw = Σ w·x exactly, even in wrapping i32.
//!
//! Only layout lives here (portable, safe code); the kernels are per target.

use crate::kernels::Q8;
use crate::ops::QLinear;

/// Widest kernel the quad kernels take (their tap offsets live in a fixed array).
pub const MAX_KW: usize = 16;

/// Geometry of the padded, quad-interleaved input.
#[derive(Debug, Clone, Copy)]
pub struct Quads {
    /// Channel quads.
    pub cq: usize,
    /// Padded rows: every row a tap reads.
    pub hq: usize,
    /// Columns per phase: whole vectors of `lanes` pixels plus the kernel's reach.
    pub wph: usize,
    /// Columns per padded row (`sw` phases).
    pub wq: usize,
    /// Output pixels per vector.
    pub lanes: usize,
}

impl Quads {
    /// Layout for `p` with vectors of `lanes` output pixels.
    pub fn new(p: &QLinear, lanes: usize) -> Self {
        let w = &p.win;
        let wph = w.ow.div_ceil(lanes) * lanes + (w.kw - 1) * w.dw / w.sw.max(1);
        Quads {
            cq: w.c.div_ceil(4),
            hq: (w.oh.max(1) - 1) * w.sh + (w.kh - 1) * w.dh + 1,
            wph,
            wq: wph * w.sw.max(1),
            lanes,
        }
    }

    /// Bytes of the padded input of one image.
    pub fn input_bytes(&self) -> usize {
        self.cq * self.hq * self.wq * 4
    }

    /// i32 entries of the packed weights (output channels rounded up to `ocb`).
    pub fn weight_words(&self, p: &QLinear, ocb: usize) -> usize {
        p.win.oc.div_ceil(ocb) * ocb * self.cq * p.win.kh * p.win.kw
    }

    /// Byte offset of tap `kx` within a padded row (its phase and position).
    pub fn tap_offset(&self, p: &QLinear, kx: usize) -> usize {
        let w = &p.win;
        ((kx * w.dw % w.sw) * self.wph + kx * w.dw / w.sw) * 4
    }

    /// Byte offsets of the taps of one kernel row within a padded row (first `kw` entries).
    pub fn tap_offsets(&self, p: &QLinear) -> [usize; MAX_KW] {
        let mut koff = [0usize; MAX_KW];
        for (kx, o) in koff.iter_mut().enumerate().take(p.win.kw) {
            *o = self.tap_offset(p, kx);
        }
        koff
    }

    /// Output pixels (row, column) where vectors `v..v + VB` start: each vector is a run of
    /// `lanes` pixels of one output row; vectors past the last repeat the last (computed, not
    /// stored).
    pub fn vector_origins<const VB: usize>(&self, p: &QLinear, v: usize) -> [(usize, usize); VB] {
        let per_row = p.win.ow.div_ceil(self.lanes).max(1);
        let last = (p.win.oh * per_row).max(1) - 1;
        core::array::from_fn(|i| {
            let v = (v + i).min(last);
            (v / per_row, v % per_row * self.lanes)
        })
    }

    /// Output vectors of one image.
    pub fn vectors(&self, p: &QLinear) -> usize {
        p.win.oh * p.win.ow.div_ceil(self.lanes)
    }

    /// Byte offset of the first input of output pixel (`oy`, `ox`) for channel quad `q` and
    /// kernel row `ky`, tap 0.
    pub fn row_offset(&self, p: &QLinear, q: usize, ky: usize, oy: usize, ox: usize) -> usize {
        let w = &p.win;
        ((q * self.hq + oy * w.sh + ky * w.dh) * self.wq + ox) * 4
    }
}

/// Packs `w` (`oc × c × kh × kw`, row stride `p.w_stride_oc`) as four i8 per i32, laid out
/// `[oc][quad][tap]`, rows past `oc` zero; writes each channel's `−off·Σw` correction added to
/// `bias` into `bias_out`.
pub fn pack_weights(
    p: &QLinear,
    g: &Quads,
    w: &[i8],
    bias: &[i32],
    off: i32,
    out: &mut [i32],
    bias_out: &mut [i32],
) {
    let win = &p.win;
    let taps = win.kh * win.kw;
    out.fill(0);
    for oc in 0..win.oc {
        let Some(wrow) = w.get(oc * p.w_stride_oc..oc * p.w_stride_oc + win.c * taps) else {
            return;
        };
        let sum: i32 = wrow.iter().map(|&v| v as i32).sum();
        if let (Some(b), Some(&b0)) = (bias_out.get_mut(oc), bias.get(oc)) {
            *b = b0.wrapping_sub(off.wrapping_mul(sum));
        }
        for q in 0..g.cq {
            for t in 0..taps {
                let mut bytes = [0u8; 4];
                for (i, b) in bytes.iter_mut().enumerate() {
                    let ic = 4 * q + i;
                    if ic < win.c {
                        *b = wrow[ic * taps + t] as u8;
                    }
                }
                if let Some(o) = out.get_mut((oc * g.cq + q) * taps + t) {
                    *o = i32::from_le_bytes(bytes);
                }
            }
        }
    }
}

/// Copies image `x` (`c × h × w`) into the quad layout, each value stored as `x + off`
/// (wrapping to a byte); padding and phantom channels hold `zx + off`. `interleave` is the
/// target's build of [`interleave4`] (the same bytes): every convolution re-lays its input out
/// this way, and in the common case (stride 1, a whole quad of channels) the interleave is the
/// work; the rest goes value by value.
pub fn pad_input<T: Q8>(
    p: &QLinear,
    g: &Quads,
    x: &[T],
    off: i32,
    xq: &mut [u8],
    interleave: impl Fn([&[u8]; 4], u8, &mut [u8]),
) {
    let win = &p.win;
    let pad = (p.zx + off) as u8;
    xq.fill(pad);
    let plane = win.h * win.w;
    if x.len() < win.c * plane {
        return;
    }
    // Q8 values are bytes: `x + off` wrapped to a byte is the byte plus `off`, wrapping.
    let xb: &[u8] = bytemuck::cast_slice(x);
    let shift = off as u8;
    // Rows no tap reads (past the last window) are skipped.
    let rows = win.h.min(g.hq.saturating_sub(win.pt));
    for q in 0..g.cq {
        for iy in 0..rows {
            let base = ((q * g.hq + iy + win.pt) * g.wq) * 4;
            // The four channels' rows (a phantom channel reads as padding).
            let src: [Option<&[u8]>; 4] = core::array::from_fn(|i| {
                let ic = 4 * q + i;
                (ic < win.c).then(|| &xb[ic * plane + iy * win.w..ic * plane + (iy + 1) * win.w])
            });
            if win.sw == 1 {
                // Stride 1: one run of whole quads, no phase arithmetic.
                let cols = win.w.min(g.wph.saturating_sub(win.pl));
                let Some(dst) = xq.get_mut(base + win.pl * 4..base + (win.pl + cols) * 4) else {
                    return;
                };
                match src {
                    [Some(a), Some(b), Some(c), Some(d)] => {
                        interleave([&a[..cols], &b[..cols], &c[..cols], &d[..cols]], shift, dst)
                    }
                    _ => {
                        for (ix, d) in dst.chunks_exact_mut(4).enumerate() {
                            d.copy_from_slice(&quad_at(&src, ix, shift, pad));
                        }
                    }
                }
            } else {
                // Column ix + pl sits at phase (ix + pl) % sw, position (ix + pl) / sw.
                let (mut phase, mut pos) = (win.pl % win.sw, win.pl / win.sw);
                for ix in 0..win.w {
                    if pos >= g.wph {
                        break;
                    }
                    let at = base + (phase * g.wph + pos) * 4;
                    if let Some(d) = xq.get_mut(at..at + 4) {
                        d.copy_from_slice(&quad_at(&src, ix, shift, pad));
                    }
                    phase += 1;
                    if phase == win.sw {
                        phase = 0;
                        pos += 1;
                    }
                }
            }
        }
    }
}

/// The four bytes of column `ix` of a quad's rows, shifted by `shift`; `pad` for a phantom
/// channel.
#[inline]
fn quad_at(src: &[Option<&[u8]>; 4], ix: usize, shift: u8, pad: u8) -> [u8; 4] {
    core::array::from_fn(|i| src[i].map_or(pad, |r| r[ix].wrapping_add(shift)))
}

/// `dst[4·i + j] = rows[j][i] + shift` (wrapping) for every column `i < dst.len() / 4`: four
/// rows (at least that long) into one run of quads. The portable reference of the per-target
/// builds.
#[inline]
pub fn interleave4(rows: [&[u8]; 4], shift: u8, dst: &mut [u8]) {
    let [a, b, c, d] = rows;
    let n = dst.len() / 4;
    let (a, b, c, d) = (&a[..n], &b[..n], &c[..n], &d[..n]);
    // Adding `shift` to each byte of a word without carries between them: the low seven bits
    // add as usual, the top bit of each byte is an exclusive or.
    let k = u32::from_ne_bytes([shift; 4]);
    let (lo7, hi) = (0x7f7f_7f7fu32, 0x8080_8080u32);
    for (i, q) in dst.chunks_exact_mut(4).enumerate() {
        let v = u32::from_le_bytes([a[i], b[i], c[i], d[i]]);
        let w = ((v & lo7) + (k & lo7)) ^ ((v ^ k) & hi);
        q.copy_from_slice(&w.to_le_bytes());
    }
}

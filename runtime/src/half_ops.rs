//! Half-precision arithmetic: the f16 path for CPUs with float16 arithmetic (Armv8.2-A FP16:
//! Jetson Xavier's Carmel, Cortex-A55/A76 and later).
//!
//! A plan made with [`crate::PlanOptions::half_arithmetic`] computes the float16 part of a model
//! (tensors that are float16 in the ONNX file) as float16 hardware does, instead of widening it
//! to float32: convolutions, Gemm and MatMul by a constant multiply-accumulate with one rounding to f16 per fused
//! multiply-add (FMLA), starting from the bias, in a fixed order; every other float16 op
//! computes in f32 and rounds its result to f16. Weights are kept as f16 in the arena (half the
//! bytes of the widened copy); activations are stored widened, and every value they hold is an
//! f16 value.
//!
//! The kernels here are the portable reference: [`fma`] emulates the fused operation exactly,
//! so the results do not depend on the CPU. The aarch64 FP16 kernel (`half_neon`) runs the
//! same operations in the same order per output and is proven bit-exact with these.
//!
//! Layouts. Convolution weights are stored `[group][k][oc in group]` with
//! `k = (ic·KH + ky)·KW + kx` (an output channel's weights are a column, so eight output
//! channels are one vector load); each output pixel's patch is gathered as f16, padding as
//! explicit +0 terms (as the f32 kernels do). Gemm weights are k × n, row-major.

use crate::error::{Error, Result};
use crate::ops::Window;

/// Which kernels the half path runs on this CPU: "neon-fp16" (aarch64 with FP16 arithmetic)
/// or "portable" — the results are the same bits either way.
pub fn kernel_set() -> &'static str {
    #[cfg(all(feature = "std", target_arch = "aarch64"))]
    if crate::half_neon::has_fp16() {
        return "neon-fp16";
    }
    "portable"
}

/// An IEEE binary16 value as its bits.
pub type F16 = u16;

fn check(ok: bool) -> Result<()> {
    if ok {
        Ok(())
    } else {
        Err(Error::BadIo {
            what: "buffer size does not match the plan",
        })
    }
}

/// Widens an f16 value (exact).
pub fn to_f32(h: F16) -> f32 {
    half::f16::from_bits(h).to_f32()
}

/// Rounds an f32 value to the nearest f16 (ties to even; overflow to infinity), as FCVT does.
pub fn from_f32(v: f32) -> F16 {
    // From f32 every rounding bit is in view, so this conversion is correctly rounded (the
    // crate's f64 conversion is not: it drops the low 32 bits first).
    half::f16::from_f32(v).to_bits()
}

/// Rounds an f64 value to the nearest f16, ties to even, overflow to infinity: correctly
/// rounded for every finite input (written out because no conversion at hand is).
pub fn from_f64(x: f64) -> F16 {
    let sign = ((x.to_bits() >> 48) & 0x8000) as u16;
    let a = f64::from_bits(x.to_bits() & !(1 << 63)); // |x|, also for -0.0
    if a.is_nan() {
        return sign | 0x7e00;
    }
    // 65504 is the largest f16; half an ulp above it (65520) ties to the even neighbour, ∞.
    if a >= 65520.0 {
        return sign | 0x7c00;
    }
    // The f16 quantum at `a`: 2^(e − 10) for normal numbers, 2^−24 below 2^−14.
    let e = ((a.to_bits() >> 52) as i32) - 1023;
    let q = if e < -14 { -24 } else { e - 10 };
    // a / 2^q < 2^11 + 1, exact (a power-of-two scaling inside f64's normal range).
    let m = a * pow2(-q);
    let t = m as u64; // m ≥ 0: truncation is the floor
    let frac = m - t as f64; // exact: the difference of two nearby values with the same quantum
    let r = if frac > 0.5 || (frac == 0.5 && t & 1 == 1) {
        t + 1
    } else {
        t
    };
    if q == -24 {
        // Subnormal (r = 1024 is the smallest normal number, which the same bits encode).
        return sign | r as u16;
    }
    let (r, q) = if r == 2048 { (1024, q + 1) } else { (r, q) };
    let exp = q + 10 + 15;
    if exp >= 31 {
        return sign | 0x7c00;
    }
    sign | ((exp as u16) << 10) | (r as u16 - 1024)
}

/// 2^k for |k| ≤ 1022.
fn pow2(k: i32) -> f64 {
    f64::from_bits(((k + 1023) as u64) << 52)
}

/// `a·b + c` with a single rounding to f16, as a fused multiply-add computes it.
///
/// Why this is exact: the product of two f16 values has at most 22 significant bits, so it is
/// exact in f64; the sum is computed in f64 together with its rounding error (Knuth's TwoSum),
/// and an inexact sum is rounded to odd (its last bit set towards the error). Rounding to odd
/// at 53 bits and then to nearest at 11 bits gives the correctly rounded result (Boldo &
/// Melquiond: any intermediate precision ≥ p + 2 works).
pub fn fma(a: F16, b: F16, c: F16) -> F16 {
    let p = to_f32(a) as f64 * to_f32(b) as f64;
    let c = to_f32(c) as f64;
    let s = p + c;
    if !s.is_finite() {
        return from_f64(s);
    }
    let bb = s - p;
    let err = (p - (s - bb)) + (c - bb);
    let bits = s.to_bits();
    let s = if err != 0.0 && bits & 1 == 0 {
        // The odd neighbour on the side of the exact sum.
        if (err > 0.0) == (s > 0.0) {
            f64::from_bits(bits + 1)
        } else {
            f64::from_bits(bits - 1)
        }
    } else {
        s
    };
    from_f64(s)
}

/// Elements of the weight layout for `p`: `group · k · oc_per_group`.
pub fn conv_weight_len(p: &Window) -> usize {
    p.oc * (p.c / p.group.max(1)) * p.kh * p.kw
}

/// Index of weight `(oc, k)` in the `[group][k][oc in group]` layout.
pub fn conv_weight_index(p: &Window, oc: usize, k: usize) -> usize {
    let g = p.group.max(1);
    let opg = p.oc / g;
    let kk = (p.c / g) * p.kh * p.kw;
    let (grp, o) = (oc / opg.max(1), oc % opg.max(1));
    (grp * kk + k) * opg + o
}

/// Scratch bytes a half convolution needs: one patch of f16 values.
pub fn conv_scratch_bytes(p: &Window) -> usize {
    (p.c / p.group.max(1)) * p.kh * p.kw * 2
}

/// Gathers the patch of output pixel `(n, g, oy, ox)` as f16 values (padding +0).
pub(crate) fn gather_patch(
    p: &Window,
    x: &[f32],
    n: usize,
    grp: usize,
    oy: usize,
    ox: usize,
    patch: &mut [F16],
) {
    let cpg = p.c / p.group;
    let mut k = 0;
    for ic in 0..cpg {
        let xbase = (n * p.c + grp * cpg + ic) * p.h * p.w;
        for ky in 0..p.kh {
            let iy = (oy * p.sh + ky * p.dh) as isize - p.pt as isize;
            for kx in 0..p.kw {
                let ix = (ox * p.sw + kx * p.dw) as isize - p.pl as isize;
                patch[k] = if iy < 0 || iy >= p.h as isize || ix < 0 || ix >= p.w as isize {
                    0
                } else {
                    from_f32(x[xbase + iy as usize * p.w + ix as usize])
                };
                k += 1;
            }
        }
    }
}

/// One convolution output: `bias + Σ_k patch[k]·w[k·stride]`, one fused multiply-add per term
/// in `k` order (`w` starts at the output channel's first weight of its group's layout).
pub(crate) fn conv_output(patch: &[F16], w: &[F16], stride: usize, bias: F16) -> F16 {
    let mut acc = bias;
    for (k, &xv) in patch.iter().enumerate() {
        acc = fma(xv, w[k * stride], acc);
    }
    acc
}

/// One Gemm output: `c + Σ_k row[k]·w[k·n]` (`w` starts at the output's column).
pub(crate) fn gemm_output(row: &[f32], w: &[F16], n: usize, c: F16) -> F16 {
    let mut acc = c;
    for (kk, &av) in row.iter().enumerate() {
        acc = fma(from_f32(av), w[kk * n], acc);
    }
    acc
}

/// Half convolution, NCHW: `y = bias + Σ_k patch[k]·w[k]`, one f16 fused multiply-add per term
/// in `k` order. `w` in the `[group][k][oc]` layout, `b` one f16 per output channel.
pub fn conv(
    p: &Window,
    x: &[f32],
    w: &[F16],
    b: Option<&[F16]>,
    y: &mut [f32],
    scratch: &mut [u8],
) -> Result<()> {
    check_conv(p, x, w, b, y, scratch)?;
    #[cfg(all(feature = "std", target_arch = "aarch64"))]
    if crate::half_neon::has_fp16() {
        return crate::half_neon::conv(p, x, w, b, y, scratch);
    }
    conv_ref(p, x, w, b, y, scratch)
}

pub(crate) fn check_conv(
    p: &Window,
    x: &[f32],
    w: &[F16],
    b: Option<&[F16]>,
    y: &mut [f32],
    scratch: &[u8],
) -> Result<()> {
    check(
        p.group >= 1
            && p.c.is_multiple_of(p.group)
            && p.oc.is_multiple_of(p.group)
            && x.len() == p.n * p.c * p.h * p.w
            && w.len() == conv_weight_len(p)
            && y.len() == p.n * p.oc * p.oh * p.ow
            && b.is_none_or(|b| b.len() == p.oc)
            && scratch.len() >= conv_scratch_bytes(p),
    )
}

/// The portable half convolution (the reference the optimized kernel is tested against).
pub fn conv_ref(
    p: &Window,
    x: &[f32],
    w: &[F16],
    b: Option<&[F16]>,
    y: &mut [f32],
    scratch: &mut [u8],
) -> Result<()> {
    check_conv(p, x, w, b, y, scratch)?;
    let kk = (p.c / p.group) * p.kh * p.kw;
    let opg = p.oc / p.group;
    let patch: &mut [F16] =
        bytemuck::try_cast_slice_mut(&mut scratch[..kk * 2]).map_err(|_| Error::BadIo {
            what: "scratch alignment",
        })?;
    for n in 0..p.n {
        for grp in 0..p.group {
            for oy in 0..p.oh {
                for ox in 0..p.ow {
                    gather_patch(p, x, n, grp, oy, ox, patch);
                    for o in 0..opg {
                        let oc = grp * opg + o;
                        let wo = &w[grp * kk * opg + o..];
                        let acc = conv_output(patch, wo, opg, b.map_or(0, |b| b[oc]));
                        y[((n * p.oc + oc) * p.oh + oy) * p.ow + ox] = to_f32(acc);
                    }
                }
            }
        }
    }
    Ok(())
}

/// Half Gemm: `y[m][n] = c[n] + Σ_k a[m][k]·w[k][n]`, one fused multiply-add per term in `k`
/// order (`c` absent: +0).
pub fn gemm(
    m: usize,
    k: usize,
    n: usize,
    a: &[f32],
    w: &[F16],
    c: Option<&[F16]>,
    y: &mut [f32],
) -> Result<()> {
    check_gemm(m, k, n, a, w, c, y)?;
    #[cfg(all(feature = "std", target_arch = "aarch64"))]
    if crate::half_neon::has_fp16() {
        return crate::half_neon::gemm(m, k, n, a, w, c, y);
    }
    gemm_ref(m, k, n, a, w, c, y)
}

pub(crate) fn check_gemm(
    m: usize,
    k: usize,
    n: usize,
    a: &[f32],
    w: &[F16],
    c: Option<&[F16]>,
    y: &[f32],
) -> Result<()> {
    check(
        a.len() == m * k && w.len() == k * n && y.len() == m * n && c.is_none_or(|c| c.len() == n),
    )
}

/// The portable half Gemm (the reference).
pub fn gemm_ref(
    m: usize,
    k: usize,
    n: usize,
    a: &[f32],
    w: &[F16],
    c: Option<&[F16]>,
    y: &mut [f32],
) -> Result<()> {
    check_gemm(m, k, n, a, w, c, y)?;
    for r in 0..m {
        for col in 0..n {
            let acc = gemm_output(
                &a[r * k..(r + 1) * k],
                &w[col..],
                n,
                c.map_or(0, |c| c[col]),
            );
            y[r * n + col] = to_f32(acc);
        }
    }
    Ok(())
}

/// Rounds every value to f16 (the result of a float16 op computed in f32).
pub fn round_all(y: &mut [f32]) {
    for v in y {
        *v = to_f32(from_f32(*v));
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const ONE: F16 = 0x3c00;

    #[test]
    fn from_f64_rounds_to_nearest_even() {
        // 1 + 2^-11 is the midpoint between 1 and 1 + 2^-10: ties to even (1).
        assert_eq!(from_f64(1.0 + 2f64.powi(-11)), ONE);
        // Just above the midpoint — by less than f32 could see — rounds up.
        assert_eq!(from_f64(1.0 + 2f64.powi(-11) + 2f64.powi(-40)), ONE + 1);
        // 1 + 3·2^-11 is the midpoint above 1 + 2^-10 (odd): ties up to 1 + 2^-9.
        assert_eq!(from_f64(1.0 + 3.0 * 2f64.powi(-11)), ONE + 2);
        assert_eq!(from_f64(-2.0), 0xc000);
        assert_eq!(from_f64(-0.0), 0x8000);
        assert_eq!(from_f64(-1e-300), 0x8000);
        assert_eq!(from_f64(65504.0), 0x7bff);
        assert_eq!(from_f64(65519.99), 0x7bff);
        assert_eq!(from_f64(65520.0), 0x7c00);
        assert_eq!(from_f64(2f64.powi(-24)), 0x0001);
        assert_eq!(from_f64(2f64.powi(-25)), 0x0000); // a tie with 0: even
        assert_eq!(from_f64(1.5 * 2f64.powi(-24)), 0x0002); // a tie between 1 and 2: even
        assert_eq!(from_f64(2f64.powi(-14)), 0x0400); // smallest normal
        assert_eq!(from_f64(2f64.powi(-14) - 2f64.powi(-26)), 0x0400); // rounds up into it
        assert_eq!(from_f64(2047.5 * 2f64.powi(-10)), 0x4000); // carries into the exponent
    }

    #[test]
    fn from_f64_agrees_with_the_f32_conversion() {
        // Every f32 value is an f64 value; the crate's f32 → f16 conversion is correct.
        let mut s = 0x2545_f491_4f6c_dd1du64;
        for _ in 0..200_000 {
            s ^= s << 13;
            s ^= s >> 7;
            s ^= s << 17;
            let v = f32::from_bits((s >> 32) as u32);
            if v.is_nan() {
                continue;
            }
            assert_eq!(from_f64(v as f64), from_f32(v), "{v:e}");
        }
    }

    #[test]
    fn fma_rounds_once() {
        let h = |v: f32| from_f32(v);
        // 1·1 + 2^-11: the exact sum is a midpoint, ties to even.
        assert_eq!(fma(ONE, ONE, h(2f32.powi(-11))), ONE);
        // (1 + 2^-10)² + 2^-11 = 1 + 2^-9 + 2^-11 + 2^-20: just above the midpoint between
        // 1 + 2^-9 and 1 + 2^-9 + 2^-10, so fused it rounds up; rounding the product first would
        // drop the 2^-20 and leave a tie that goes to the even 1 + 2^-9.
        let a = ONE + 1; // 1 + 2^-10
        let c = h(2f32.powi(-11));
        assert_eq!(fma(a, a, c), from_f64(1.0 + 2f64.powi(-9) + 2f64.powi(-10)));
        assert_ne!(fma(a, a, c), ONE + 2);
        // A tiny addend against a product that is itself a midpoint: the addend decides.
        let p_mid = h(1.0 + 2f32.powi(-10)); // (1 + 2^-10)·(1 + 2^-1) = 1.5 + 1.5·2^-10
        let b = h(1.5);
        let tiny = 0x0001; // 2^-24
        assert_eq!(fma(p_mid, b, tiny), from_f64(1.5 + 2f64.powi(-9)));
        assert_eq!(fma(p_mid, b, tiny | 0x8000), from_f64(1.5 + 2f64.powi(-10)));
        assert_eq!(fma(h(300.0), h(300.0), 0), 0x7c00); // 90000 overflows to ∞
    }

    #[test]
    fn conv_is_the_sum_of_its_terms() {
        // 1 input channel 3×3, 2 output channels, 2×2 kernel, no padding.
        let p = Window {
            n: 1,
            c: 1,
            h: 3,
            w: 3,
            oc: 2,
            oh: 2,
            ow: 2,
            kh: 2,
            kw: 2,
            sh: 1,
            sw: 1,
            pt: 0,
            pl: 0,
            dh: 1,
            dw: 1,
            group: 1,
        };
        let x: [f32; 9] = [1., 2., 3., 4., 5., 6., 7., 8., 9.];
        let wf = [[1.0f32, 0.0, 0.0, 1.0], [0.5, 0.5, 0.5, 0.5]];
        let mut w = [0u16; 8];
        for oc in 0..2 {
            for k in 0..4 {
                w[conv_weight_index(&p, oc, k)] = from_f32(wf[oc][k]);
            }
        }
        let b = [from_f32(0.25), from_f32(-1.0)];
        let mut y = [0f32; 8];
        let mut scratch = [0u16; 4];
        conv_ref(
            &p,
            &x,
            &w,
            Some(&b),
            &mut y,
            bytemuck::cast_slice_mut(&mut scratch),
        )
        .unwrap();
        assert_eq!(y, [6.25, 8.25, 12.25, 14.25, 5.0, 7.0, 11.0, 13.0]);
    }
}

//! aarch64 half-precision kernels on the FP16 fused multiply-add (`fmla .8h`, Armv8.2-A FP16:
//! Jetson Xavier's Carmel, Cortex-A55/A76 and later), picked at run time when the CPU has it.
//!
//! Eight outputs per vector — eight output channels of one pixel (convolution) or eight columns
//! of one row (Gemm) — each lane accumulating its own terms in the same order as the portable
//! kernels in [`crate::half_ops`], with the same single rounding per term: the results are
//! bit-identical (tested under `qemu-aarch64 -cpu cortex-a76`). Outputs left over after the
//! last full vector are computed by the portable kernels' own per-output functions.
//!
//! `fmla` on f16 lanes is written as inline assembly: the f16 vector intrinsics are not stable
//! Rust yet.
#![allow(unsafe_code)]

use crate::error::{Error, Result};
use crate::half_ops::{
    check_conv, check_gemm, conv_output, from_f32, gather_patch, gemm_output, to_f32, F16,
};
use crate::ops::Window;
use core::arch::aarch64::*;

/// Lanes per vector.
const L: usize = 8;

/// The CPU has float16 arithmetic (cached by std after the first call) and optimized kernels
/// are allowed ([`crate::kernels::set_portable_only`]).
pub fn has_fp16() -> bool {
    crate::kernels::optimized_allowed() && std::arch::is_aarch64_feature_detected!("fp16")
}

/// `acc + a·b` per f16 lane, rounded once (FMLA).
#[inline]
#[target_feature(enable = "fp16")]
fn fmla(acc: uint16x8_t, a: uint16x8_t, b: uint16x8_t) -> uint16x8_t {
    let mut acc = acc;
    // SAFETY: a register-only instruction; the enclosing target feature guarantees FP16.
    unsafe {
        core::arch::asm!(
            "fmla {acc:v}.8h, {a:v}.8h, {b:v}.8h",
            acc = inout(vreg) acc,
            a = in(vreg) a,
            b = in(vreg) b,
            options(pure, nomem, nostack, preserves_flags),
        );
    }
    acc
}

/// Half convolution (see [`crate::half_ops::conv`]); the caller checked [`has_fp16`].
pub fn conv(
    p: &Window,
    x: &[f32],
    w: &[F16],
    b: Option<&[F16]>,
    y: &mut [f32],
    scratch: &mut [u8],
) -> Result<()> {
    check_conv(p, x, w, b, y, scratch)?;
    // SAFETY: `has_fp16` was true (the only caller checks it).
    unsafe { conv_fp16(p, x, w, b, y, scratch) }
}

#[target_feature(enable = "fp16")]
fn conv_fp16(
    p: &Window,
    x: &[f32],
    w: &[F16],
    b: Option<&[F16]>,
    y: &mut [f32],
    scratch: &mut [u8],
) -> Result<()> {
    let kk = (p.c / p.group) * p.kh * p.kw;
    let opg = p.oc / p.group;
    let patch: &mut [F16] =
        bytemuck::try_cast_slice_mut(&mut scratch[..kk * 2]).map_err(|_| Error::BadIo {
            what: "scratch alignment",
        })?;
    let plane = p.oh * p.ow;
    let mut lanes = [0u16; L];
    for n in 0..p.n {
        for grp in 0..p.group {
            let wg = &w[grp * kk * opg..(grp + 1) * kk * opg];
            for oy in 0..p.oh {
                for ox in 0..p.ow {
                    gather_patch(p, x, n, grp, oy, ox, patch);
                    let out = |oc: usize| ((n * p.oc + oc) * p.oh + oy) * p.ow + ox;
                    let mut o = 0;
                    while o + L <= opg {
                        let oc0 = grp * opg + o;
                        // SAFETY: `check_conv` sized `b` (oc values) and `w` (kk · opg per
                        // group); every load below stays inside them.
                        let mut acc = match b {
                            Some(b) => unsafe { vld1q_u16(b[oc0..oc0 + L].as_ptr()) },
                            None => vdupq_n_u16(0),
                        };
                        for (k, &xv) in patch.iter().enumerate() {
                            let wv =
                                unsafe { vld1q_u16(wg[k * opg + o..k * opg + o + L].as_ptr()) };
                            acc = fmla(acc, vdupq_n_u16(xv), wv);
                        }
                        // SAFETY: `lanes` holds L values.
                        unsafe { vst1q_u16(lanes.as_mut_ptr(), acc) };
                        let at = out(oc0);
                        for (l, &h) in lanes.iter().enumerate() {
                            y[at + l * plane] = to_f32(h);
                        }
                        o += L;
                    }
                    for o in o..opg {
                        let oc = grp * opg + o;
                        let acc = conv_output(patch, &wg[o..], opg, b.map_or(0, |b| b[oc]));
                        y[out(oc)] = to_f32(acc);
                    }
                }
            }
        }
    }
    Ok(())
}

/// Half Gemm (see [`crate::half_ops::gemm`]); the caller checked [`has_fp16`].
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
    // SAFETY: `has_fp16` was true (the only caller checks it).
    unsafe { gemm_fp16(m, k, n, a, w, c, y) };
    Ok(())
}

#[target_feature(enable = "fp16")]
fn gemm_fp16(m: usize, k: usize, n: usize, a: &[f32], w: &[F16], c: Option<&[F16]>, y: &mut [f32]) {
    let mut lanes = [0u16; L];
    for r in 0..m {
        let row = &a[r * k..(r + 1) * k];
        let mut col = 0;
        while col + L <= n {
            // SAFETY: `check_gemm` sized `c` (n values) and `w` (k · n); the loads stay inside.
            let mut acc = match c {
                Some(c) => unsafe { vld1q_u16(c[col..col + L].as_ptr()) },
                None => vdupq_n_u16(0),
            };
            for (kk, &av) in row.iter().enumerate() {
                let wv = unsafe { vld1q_u16(w[kk * n + col..kk * n + col + L].as_ptr()) };
                acc = fmla(acc, vdupq_n_u16(from_f32(av)), wv);
            }
            // SAFETY: `lanes` holds L values.
            unsafe { vst1q_u16(lanes.as_mut_ptr(), acc) };
            for (l, &h) in lanes.iter().enumerate() {
                y[r * n + col + l] = to_f32(h);
            }
            col += L;
        }
        for col in col..n {
            let acc = gemm_output(row, &w[col..], n, c.map_or(0, |c| c[col]));
            y[r * n + col] = to_f32(acc);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::half_ops::{conv_ref, conv_scratch_bytes, gemm_ref};
    use std::vec::Vec;
    use std::{eprintln, println, vec};

    struct Rng(u64);
    impl Rng {
        fn next(&mut self) -> u64 {
            self.0 ^= self.0 << 13;
            self.0 ^= self.0 >> 7;
            self.0 ^= self.0 << 17;
            self.0
        }
        fn below(&mut self, n: usize) -> usize {
            (self.next() % n as u64) as usize
        }
        /// An f16-representable value in about [-2, 2], sometimes tiny or zero.
        fn value(&mut self) -> f32 {
            let v = (self.next() % 4001) as f32 / 1000.0 - 2.0;
            let v = match self.below(10) {
                0 => v * 1e-5,
                1 => 0.0,
                _ => v,
            };
            to_f32(from_f32(v))
        }
    }

    fn f16s(rng: &mut Rng, n: usize) -> Vec<F16> {
        (0..n).map(|_| from_f32(rng.value())).collect()
    }

    #[test]
    fn fp16_kernels_are_bit_exact_with_the_reference() {
        if !std::arch::is_aarch64_feature_detected!("fp16") {
            eprintln!("no FP16 arithmetic on this CPU: nothing to compare");
            return;
        }
        let mut rng = Rng(0x9e37_79b9_7f4a_7c15);
        let mut compared = 0usize;
        for case in 0..120 {
            let group = [1, 1, 1, 2, 4][rng.below(5)];
            let cpg = 1 + rng.below(5);
            let opg = 1 + rng.below(20);
            let (kh, kw) = (1 + rng.below(3), 1 + rng.below(3));
            let (sh, sw) = (1 + rng.below(2), 1 + rng.below(2));
            let (pt, pl) = (rng.below(2), rng.below(2));
            let (h, wd) = (kh + rng.below(6), kw + rng.below(6));
            let oh = (h + 2 * pt - kh) / sh + 1;
            let ow = (wd + 2 * pl - kw) / sw + 1;
            let p = Window {
                n: 1 + rng.below(2),
                c: group * cpg,
                h,
                w: wd,
                oc: group * opg,
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
            let x: Vec<f32> = (0..p.n * p.c * h * wd).map(|_| rng.value()).collect();
            let w = f16s(&mut rng, crate::half_ops::conv_weight_len(&p));
            let b = f16s(&mut rng, p.oc);
            let b = (case % 3 != 0).then_some(&b[..]);
            let ny = p.n * p.oc * oh * ow;
            let mut scratch = vec![0u16; conv_scratch_bytes(&p) / 2 + 8];
            let (mut want, mut got) = (vec![0f32; ny], vec![0f32; ny]);
            conv_ref(
                &p,
                &x,
                &w,
                b,
                &mut want,
                bytemuck::cast_slice_mut(&mut scratch),
            )
            .unwrap();
            conv(
                &p,
                &x,
                &w,
                b,
                &mut got,
                bytemuck::cast_slice_mut(&mut scratch),
            )
            .unwrap();
            let bits = |v: &[f32]| v.iter().map(|f| f.to_bits()).collect::<Vec<_>>();
            assert_eq!(bits(&got), bits(&want), "convolution {case}: {p:?}");
            compared += ny;

            let (m, k, n) = (1 + rng.below(4), 1 + rng.below(300), 1 + rng.below(40));
            let a: Vec<f32> = (0..m * k).map(|_| rng.value()).collect();
            let w = f16s(&mut rng, k * n);
            let c = f16s(&mut rng, n);
            let c = (case % 2 == 0).then_some(&c[..]);
            let (mut want, mut got) = (vec![0f32; m * n], vec![0f32; m * n]);
            gemm_ref(m, k, n, &a, &w, c, &mut want).unwrap();
            gemm(m, k, n, &a, &w, c, &mut got).unwrap();
            assert_eq!(bits(&got), bits(&want), "gemm {case}: {m}×{k}×{n}");
            compared += m * n;
        }
        println!("fp16 kernels: {compared} outputs, all bit-identical to the reference");
    }
}

//! Cortex-M4/M7/M33 (the Armv7E-M DSP extension): the int8 dot products of the im2row kernel
//! with SMLAD, two 16×16 multiply-accumulates per instruction. Four weights are read as one word
//! and split into two pairs of halfwords by SXTB16; the matching patch halfwords are paired by
//! PKHBT/PKHTB once for two output channels ([`dot1x2_i16_i8`]). Integer products summed with wrapping adds, as the reference does, so the result
//! is bit-identical (host tests check the pairing; the firmware checks the instructions under
//! QEMU's Cortex-M4).
//!
//! Built into `dot_i16_i8` when the `arm-dsp` feature is on (the target must have the DSP
//! extension: thumbv7em-*, thumbv8m.main-*); the same pairing runs as plain Rust elsewhere.
#![cfg_attr(all(target_arch = "arm", feature = "arm-dsp"), allow(unsafe_code))]

/// Four taps: `acc + x0·w0 + x1·w1 + x2·w2 + x3·w3` with the patch halfwords paired as
/// x02 = x0 | x2 << 16, x13 = x1 | x3 << 16 (the pairs SXTB16 splits `w` = w0..w3 into).
#[inline(always)]
fn quad(acc: i32, x02: u32, x13: u32, w: u32) -> i32 {
    #[cfg(all(target_arch = "arm", feature = "arm-dsp"))]
    {
        let mut acc = acc;
        // SAFETY: register-only DSP instructions every Armv7E-M core has (the feature's
        // contract); `out` operands never share a register with the inputs.
        unsafe {
            core::arch::asm!(
                "sxtb16 {w02}, {w}",
                "sxtb16 {w13}, {w}, ror #8",
                "smlad {acc}, {x02}, {w02}, {acc}",
                "smlad {acc}, {x13}, {w13}, {acc}",
                w = in(reg) w,
                x02 = in(reg) x02,
                x13 = in(reg) x13,
                w02 = out(reg) _,
                w13 = out(reg) _,
                acc = inout(reg) acc,
                options(pure, nomem, nostack),
            );
        }
        acc
    }
    #[cfg(not(all(target_arch = "arm", feature = "arm-dsp")))]
    {
        // SXTB16 (bytes 0 and 2; then 1 and 3) and SMLAD's two products, in plain Rust.
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
}

/// `lo | hi << 16` as halfwords (one 32-bit load of two adjacent patch values).
#[inline(always)]
fn halves(lo: i16, hi: i16) -> u32 {
    lo as u16 as u32 | (hi as u16 as u32) << 16
}

/// Four weights as one little-endian word (one 32-bit load).
#[inline(always)]
fn bytes(v: &[i8]) -> u32 {
    u32::from_le_bytes([v[0] as u8, v[1] as u8, v[2] as u8, v[3] as u8])
}

/// `[a·w0, a·w1]` (i32, wrapping) over the shortest length: each patch word is read and
/// paired (PKHBT/PKHTB) once for both weight rows, four taps per step; the rest one by one.
#[inline]
pub fn dot1x2_i16_i8(a: &[i16], w: [&[i8]; 2]) -> [i32; 2] {
    let n = a.len().min(w[0].len()).min(w[1].len());
    let (a, w0, w1) = (&a[..n], &w[0][..n], &w[1][..n]);
    let mut acc = [0i32; 2];
    let (aq, q0, q1) = (a.chunks_exact(4), w0.chunks_exact(4), w1.chunks_exact(4));
    let (ar, r0, r1) = (aq.remainder(), q0.remainder(), q1.remainder());
    for ((x, v0), v1) in aq.zip(q0).zip(q1) {
        let (x01, x23) = (halves(x[0], x[1]), halves(x[2], x[3]));
        let (x02, x13) = (
            (x01 & 0xffff) | (x23 << 16),
            (x23 & 0xffff_0000) | (x01 >> 16),
        );
        acc[0] = quad(acc[0], x02, x13, bytes(v0));
        acc[1] = quad(acc[1], x02, x13, bytes(v1));
    }
    for ((&x, &v0), &v1) in ar.iter().zip(r0).zip(r1) {
        acc[0] = acc[0].wrapping_add(x as i32 * v0 as i32);
        acc[1] = acc[1].wrapping_add(x as i32 * v1 as i32);
    }
    acc
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn pairing_equals_the_scalar_dot_product() {
        let mut s = 0x1234_5678u32;
        let mut next = || {
            s ^= s << 13;
            s ^= s >> 17;
            s ^= s << 5;
            s
        };
        for len in 0..70 {
            for _ in 0..50 {
                // Patches are 8-bit values widened to i16; also try the extremes.
                let a: std::vec::Vec<i16> = (0..len)
                    .map(|_| match next() % 8 {
                        0 => -128,
                        1 => 255,
                        _ => (next() % 384) as i16 - 128,
                    })
                    .collect();
                let b: std::vec::Vec<i8> = (0..len).map(|_| next() as u8 as i8).collect();
                let b2: std::vec::Vec<i8> = (0..len).map(|_| next() as u8 as i8).collect();
                let dot = |w: &[i8]| {
                    a.iter()
                        .zip(w)
                        .fold(0i32, |s, (&x, &w)| s.wrapping_add(x as i32 * w as i32))
                };
                assert_eq!(
                    dot1x2_i16_i8(&a, [&b, &b2]),
                    [dot(&b), dot(&b2)],
                    "len {len}"
                );
            }
        }
    }
}

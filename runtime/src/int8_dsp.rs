//! Cortex-M4/M7/M33 (the Armv7E-M DSP extension): the int8 dot product of the im2row kernel with
//! SMLAD, two 16×16 multiply-accumulates per instruction. Four weights are read as one word and
//! split into two pairs of halfwords by SXTB16; the matching patch halfwords are paired by
//! PKHBT/PKHTB. Integer products summed with wrapping adds, as the reference does, so the result
//! is bit-identical (host tests check the pairing; the firmware checks the instructions under
//! QEMU's Cortex-M4).
//!
//! Built into `dot_i16_i8` when the `arm-dsp` feature is on (the target must have the DSP
//! extension: thumbv7em-*, thumbv8m.main-*); the same pairing runs as plain Rust elsewhere.
#![cfg_attr(all(target_arch = "arm", feature = "arm-dsp"), allow(unsafe_code))]

/// Four taps: `acc + x0·w0 + x1·w1 + x2·w2 + x3·w3` with x01 = x0 | x1 << 16,
/// x23 = x2 | x3 << 16 (halfwords) and `w` = w0..w3 (bytes, little-endian).
#[inline(always)]
fn quad(acc: i32, x01: u32, x23: u32, w: u32) -> i32 {
    #[cfg(all(target_arch = "arm", feature = "arm-dsp"))]
    {
        let mut acc = acc;
        // SAFETY: register-only DSP instructions every Armv7E-M core has (the feature's
        // contract); `out` operands never share a register with the inputs.
        unsafe {
            core::arch::asm!(
                "sxtb16 {w02}, {w}",
                "sxtb16 {w13}, {w}, ror #8",
                "pkhbt {x02}, {x01}, {x23}, lsl #16",
                "pkhtb {x13}, {x23}, {x01}, asr #16",
                "smlad {acc}, {x02}, {w02}, {acc}",
                "smlad {acc}, {x13}, {w13}, {acc}",
                w = in(reg) w,
                x01 = in(reg) x01,
                x23 = in(reg) x23,
                w02 = out(reg) _,
                w13 = out(reg) _,
                x02 = out(reg) _,
                x13 = out(reg) _,
                acc = inout(reg) acc,
                options(pure, nomem, nostack),
            );
        }
        acc
    }
    #[cfg(not(all(target_arch = "arm", feature = "arm-dsp")))]
    {
        // The same pairing in plain Rust: SXTB16 (bytes 0 and 2; then 1 and 3), PKHBT/PKHTB,
        // and SMLAD's two products.
        let sxtb16 = |v: u32| (v as u8 as i8 as i32, (v >> 16) as u8 as i8 as i32);
        let (w0, w2) = sxtb16(w);
        let (w1, w3) = sxtb16(w.rotate_right(8));
        let x02 = (x01 & 0xffff) | (x23 << 16);
        let x13 = (x23 & 0xffff_0000) | (x01 >> 16);
        let lo = |v: u32| v as u16 as i16 as i32;
        let hi = |v: u32| (v >> 16) as u16 as i16 as i32;
        acc.wrapping_add(lo(x02) * w0)
            .wrapping_add(hi(x02) * w2)
            .wrapping_add(lo(x13) * w1)
            .wrapping_add(hi(x13) * w3)
    }
}

/// Σ a·b (i32, wrapping) over the shorter length: four taps per `quad`, the rest one by one.
#[inline]
pub fn dot_i16_i8(a: &[i16], b: &[i8]) -> i32 {
    let n = a.len().min(b.len());
    let (a, b) = (&a[..n], &b[..n]);
    let mut acc = 0i32;
    let (aq, bq) = (a.chunks_exact(4), b.chunks_exact(4));
    let (ar, br) = (aq.remainder(), bq.remainder());
    for (x, w) in aq.zip(bq) {
        let half = |v: i16| v as u16 as u32;
        let x01 = half(x[0]) | half(x[1]) << 16;
        let x23 = half(x[2]) | half(x[3]) << 16;
        let w = u32::from_le_bytes([w[0] as u8, w[1] as u8, w[2] as u8, w[3] as u8]);
        acc = quad(acc, x01, x23, w);
    }
    for (&x, &w) in ar.iter().zip(br) {
        acc = acc.wrapping_add(x as i32 * w as i32);
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
                let want = a
                    .iter()
                    .zip(&b)
                    .fold(0i32, |s, (&x, &w)| s.wrapping_add(x as i32 * w as i32));
                assert_eq!(dot_i16_i8(&a, &b), want, "len {len}");
            }
        }
    }
}

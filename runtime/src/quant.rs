//! Integer requantization arithmetic (DESIGN §3): a real multiplier becomes a Q31 fixed-point
//! multiplier and a power-of-two shift at plan time so the int8 kernels run without floating
//! point. Unlike gemmlowp/TFLite, the product is rounded once (half to even), which is what the
//! ONNX operators specify and what onnxruntime computes.

/// A real multiplier `M ≈ multiplier · 2^(shift − 31)`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
#[cfg_attr(feature = "defmt", derive(defmt::Format))]
pub struct Requant {
    /// Q31 mantissa in [2^30, 2^31).
    pub multiplier: i32,
    /// Power-of-two exponent (positive = left shift).
    pub shift: i32,
}

impl Requant {
    /// Decomposes a non-negative real multiplier; 0 (or a non-finite value) gives a multiplier
    /// that maps everything to 0.
    pub fn from_f64(m: f64) -> Self {
        if m.is_nan() || m <= 0.0 || !m.is_finite() {
            return Requant {
                multiplier: 0,
                shift: 0,
            };
        }
        let mut q = m;
        let mut shift = 0i32;
        while q >= 1.0 {
            q /= 2.0;
            shift += 1;
        }
        while q < 0.5 {
            q *= 2.0;
            shift -= 1;
            if shift < -62 {
                return Requant {
                    multiplier: 0,
                    shift: 0,
                };
            }
        }
        let mut q31 = round_half_away(q * 2147483648.0);
        if q31 == 1i64 << 31 {
            q31 /= 2;
            shift += 1;
        }
        Requant {
            multiplier: q31 as i32,
            shift,
        }
    }

    /// `round(x · M)` in integer arithmetic, rounded once and half to even, as ONNX
    /// QuantizeLinear rounds the exact value. (gemmlowp's `SaturatingRoundingDoublingHighMul` +
    /// `RoundingDivideByPOT` rounds twice and lands one step above onnxruntime on ~0.1% of
    /// values just below a half; one 64-bit product and one shift avoids that.)
    ///
    /// Multipliers below ½ (every real layer's) take [`BelowHalf::apply`], the same value in
    /// 32-bit halves; the rest [`Requant::apply_general`].
    #[inline]
    pub fn apply(self, x: i32) -> i32 {
        match self.below_half() {
            Some(b) => b.apply(x),
            None => self.apply_general(x),
        }
    }

    /// This multiplier's [`BelowHalf`] constants, if it is below ½ (a right shift of 32 to 62).
    #[inline]
    pub fn below_half(self) -> Option<BelowHalf> {
        if !(-31..=-1).contains(&self.shift) {
            return None;
        }
        let s = (-1 - self.shift) as u32;
        Some(BelowHalf {
            multiplier: self.multiplier,
            s,
            half_minus_one: (((1u32 << s) as i64) << 31) - 1,
        })
    }

    /// [`Requant::apply`] by its definition, for any shift.
    #[inline]
    pub fn apply_general(self, x: i32) -> i32 {
        let prod = x as i64 * self.multiplier as i64; // |prod| < 2^62
        let right = 31 - self.shift;
        let v = if right <= 0 {
            // M ≥ 2^31 never comes from a real scale ratio; saturate rather than overflow.
            (prod as i128) << (-right).min(64)
        } else if right >= 63 {
            0 // |x · M| < 2^-1: rounds to 0
        } else {
            let q = prod >> right; // floor
            let rem = prod - (q << right);
            let half = 1i64 << (right - 1);
            (q + (rem > half || (rem == half && q & 1 == 1)) as i64) as i128
        };
        v.clamp(i32::MIN as i128, i32::MAX as i128) as i32
    }

    /// This multiplier as one double, `multiplier · 2^(shift − 31)` (exact: a 31-bit mantissa
    /// and a power of two), when vector code may requantize as `round_half_even(x · scale)` in
    /// double precision instead of [`Requant::apply`]'s 64-bit integers: for `shift` in
    /// [`F64_EXACT_SHIFTS`] (multipliers from 2^-14 to below 1, which real layers have).
    ///
    /// Why that is the same for an 8-bit output: while `|x · M| < 2^53` the double product is
    /// exact, so its one rounding is the reference's, ties included; past that the result is at
    /// least 2^(53 − 44) = 512 in magnitude either way (the rounding is monotonic), which every
    /// 8-bit output saturates alike. Below 1, results stay under 2^30, so adding an 8-bit zero
    /// point cannot overflow. The zero point goes on after the rounding: added before, an odd
    /// one would turn a tie the other way (0.5 rounds to 0, −2.5 to −2, not −3).
    #[inline]
    pub fn exact_f64(self) -> Option<f64> {
        if !F64_EXACT_SHIFTS.contains(&self.shift) {
            return None;
        }
        let right = (31 - self.shift) as u64;
        Some(self.multiplier as f64 * f64::from_bits((1023 - right) << 52))
    }
}

/// Exponents for which [`Requant::exact_f64`] holds.
pub const F64_EXACT_SHIFTS: core::ops::RangeInclusive<i32> = -13..=-1;

/// Per-channel requantization constants stored in the arena as (multiplier, shift) i32 pairs.
#[derive(Clone, Copy)]
pub struct RequantTable<'x>(pub &'x [i32]);

/// [`Requant::apply`] for a right shift `r` of 32 to 62 bits (multipliers from 2^-32 to below
/// ½), with its constants worked out once and no variable 64-bit shift (a 32-bit core calls a
/// library routine for each of those: about 60 instructions per output on a Cortex-M4, against
/// 15 here). Half to even as one addition: `⌊(p + 2^(r−1) − 1 + q₀) / 2^r⌋`, with `q₀` the
/// parity of `q = ⌊p / 2^r⌋`, adds one exactly when the remainder is above the half, or equal
/// to it with `q` odd; the division is the high word shifted by `r − 32`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct BelowHalf {
    multiplier: i32,
    /// r − 32.
    s: u32,
    /// 2^(r−1) − 1.
    half_minus_one: i64,
}

impl BelowHalf {
    /// `round(x · M)`, half to even: [`Requant::apply`]'s value.
    #[inline(always)]
    pub fn apply(self, x: i32) -> i32 {
        let prod = x as i64 * self.multiplier as i64; // |prod| ≤ 2^62
        let q_odd = (((prod >> 32) as i32 >> self.s) & 1) as i64;
        (((prod + self.half_minus_one + q_odd) >> 32) as i32) >> self.s
    }
}

impl RequantTable<'_> {
    /// Entry `i` (a multiplier of 0 if out of range).
    #[inline]
    pub fn get(&self, i: usize) -> Requant {
        match (self.0.get(2 * i), self.0.get(2 * i + 1)) {
            (Some(&multiplier), Some(&shift)) => Requant { multiplier, shift },
            _ => Requant::default(),
        }
    }

    /// Number of entries.
    pub fn len(&self) -> usize {
        self.0.len() / 2
    }

    /// No entries.
    pub fn is_empty(&self) -> bool {
        self.0.is_empty()
    }
}

pub(crate) fn round_half_away(x: f64) -> i64 {
    if x >= 0.0 {
        (x + 0.5) as i64
    } else {
        (x - 0.5) as i64
    }
}

/// Round half to even, as ONNX QuantizeLinear specifies (no libm needed).
#[inline]
pub fn round_ties_even(x: f32) -> f32 {
    if x.is_nan() || x.abs() >= 8_388_608.0 {
        return x; // already integral, or NaN
    }
    let i = x as i32;
    let f = x - i as f32;
    let odd = i % 2 != 0;
    let r = if f > 0.5 || (f == 0.5 && odd) {
        i + 1
    } else if f < -0.5 || (f == -0.5 && odd) {
        i - 1
    } else {
        i
    };
    r as f32
}

/// Multipliers at every [`F64_EXACT_SHIFTS`] exponent and inputs to requantize with them:
/// extremes, random values of every magnitude, and exact ties (odd multiples of 2^-shift for
/// M = 2^30, made for each input). For the tests of [`Requant::exact_f64`] here and of the
/// vector kernels that rely on it.
#[cfg(test)]
pub(crate) fn exact_f64_cases() -> std::vec::Vec<(Requant, i32)> {
    let mut seed = 0x2545_f491_4f6c_dd1du64;
    let mut next = || {
        seed ^= seed << 13;
        seed ^= seed >> 7;
        seed ^= seed << 17;
        seed
    };
    let mut xs = std::vec![
        i32::MIN,
        i32::MIN + 1,
        -65_536,
        -3,
        -1,
        0,
        1,
        2,
        3,
        i32::MAX
    ];
    xs.extend((0..3000).map(|i| (next() as i32) >> (i % 31)));
    let mut cases = std::vec::Vec::new();
    for shift in F64_EXACT_SHIFTS {
        // Powers of two and their halves make exact ties common; the rest are random.
        let mut ms = std::vec![1 << 30, 3 << 29, i32::MAX];
        ms.extend((0..8).map(|_| (1 << 30) + (next() as i32 & 0x3fff_ffff)));
        for multiplier in ms {
            let r = Requant { multiplier, shift };
            for &x in &xs {
                cases.push((r, x));
                cases.push((r, (x | 1).wrapping_shl(-shift as u32)));
            }
        }
    }
    cases
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The rule the AVX-512 and NEON kernels rely on, in plain Rust: one double product and one
    /// half-to-even rounding give `apply`'s result wherever an 8-bit output can tell them apart
    /// (under 512 in magnitude), ties and extremes included.
    #[test]
    fn double_precision_rounding_equals_apply_where_exact() {
        assert_eq!(Requant::from_f64(0.999).exact_f64(), None, "shift 0");
        assert_eq!(Requant::from_f64(3e-5).exact_f64(), None, "below 2^-14");
        for (r, x) in exact_f64_cases() {
            let got = (x as f64 * r.exact_f64().unwrap()).round_ties_even() as i64;
            let want = r.apply(x) as i64;
            assert_eq!(got.clamp(-512, 512), want.clamp(-512, 512), "{r:?} x {x}");
        }
    }

    /// [`BelowHalf`] equals the definition for every right shift it takes (32 to 62), and
    /// `apply` does for those and the shifts around them: exact ties of both parities, their
    /// neighbours, extremes and random values.
    #[test]
    fn below_half_path_equals_the_definition() {
        let mut seed = 0x9e37_79b9_7f4a_7c15u64;
        let mut next = || {
            seed ^= seed << 13;
            seed ^= seed >> 7;
            seed ^= seed << 17;
            seed
        };
        let mut checked = 0;
        for shift in -32..=2 {
            assert_eq!(
                r_at(shift).below_half().is_some(),
                (-31..=-1).contains(&shift)
            );
            let mut ms = std::vec![1 << 30, (1 << 30) + 1, 3 << 29, i32::MAX];
            ms.extend((0..6).map(|_| (1 << 30) | (next() as i32 & 0x3fff_ffff)));
            for multiplier in ms {
                let r = Requant { multiplier, shift };
                let mut xs = std::vec![i32::MIN, i32::MIN + 1, -1, 0, 1, i32::MAX];
                xs.extend((0..400).map(|i| (next() as i32) >> (i % 32)));
                // With M = 2^30 and a right shift of r, x = odd · 2^(r−30) is an exact tie.
                let tie_step = 1i64 << (31 - shift - 30).clamp(0, 40);
                for k in -40i64..40 {
                    let t = (2 * k + 1) * tie_step;
                    if let Ok(t) = i32::try_from(t) {
                        xs.extend([t.wrapping_sub(1), t, t.wrapping_add(1)]);
                    }
                }
                for x in xs {
                    if let Some(b) = r.below_half() {
                        assert_eq!(b.apply(x), r.apply_general(x), "{r:?} x {x}");
                        checked += 1;
                    }
                    assert_eq!(r.apply(x), r.apply_general(x), "{r:?} x {x}");
                }
            }
        }
        assert!(checked > 100_000, "{checked}");
        let below = |m: f64, x: i32| Requant::from_f64(m).below_half().unwrap().apply(x);
        assert_eq!(below(0.25, 6), 2, "1.5 → 2");
        assert_eq!(below(0.25, 10), 2, "2.5 → 2");
        assert_eq!(below(0.25, -6), -2, "−1.5 → −2");
        assert_eq!(below(0.25, -10), -2, "−2.5 → −2");
    }

    fn r_at(shift: i32) -> Requant {
        Requant {
            multiplier: 1 << 30,
            shift,
        }
    }

    #[test]
    fn requant_matches_float_rounding() {
        for &m in &[0.5f64, 0.0123, 0.9999, 0.25, 1.5, 3.0e-5] {
            let r = Requant::from_f64(m);
            for x in [-100000i32, -1234, -7, 0, 5, 999, 77777] {
                let want = (x as f64 * m).round() as i64;
                let got = r.apply(x) as i64;
                assert!((want - got).abs() <= 1, "m={m} x={x} want={want} got={got}");
            }
        }
    }

    /// Rounded once: equal to round-half-even of the exact product whenever that product is
    /// not within 1e-6 of a tie (where the Q31 mantissa's own rounding may decide). Before, the
    /// double rounding of gemmlowp gave 1 for 77 · 0.0064712 = 0.4983 (onnxruntime: 0).
    #[test]
    fn requant_rounds_once_like_onnx() {
        let r = Requant::from_f64(0.498_281_613_228_898_4 / 77.0);
        assert_eq!(r.apply(77), 0);
        let mut seed = 0x1234_5678_9abc_def0u64;
        let mut next = || {
            seed ^= seed << 13;
            seed ^= seed >> 7;
            seed ^= seed << 17;
            seed
        };
        for _ in 0..200_000 {
            let m = 1e-6 + (next() % 4_000_000) as f64 * 1e-6;
            let x = (next() % (1 << 25)) as i32 - (1 << 24);
            let r = Requant::from_f64(m);
            let exact = x as f64 * r.multiplier as f64 * 2f64.powi(r.shift - 31);
            if (exact - exact.floor() - 0.5).abs() < 1e-6 || exact.abs() > 2.0e9 {
                continue;
            }
            assert_eq!(r.apply(x) as f64, exact.round(), "m={m} x={x}");
        }
        assert_eq!(Requant::from_f64(0.5).apply(5), 2, "2.5 → 2 (ties to even)");
        assert_eq!(Requant::from_f64(0.5).apply(7), 4, "3.5 → 4");
        assert_eq!(Requant::from_f64(0.5).apply(-5), -2);
    }

    #[test]
    fn ties_to_even() {
        assert_eq!(round_ties_even(2.5), 2.0);
        assert_eq!(round_ties_even(3.5), 4.0);
        assert_eq!(round_ties_even(-2.5), -2.0);
        assert_eq!(round_ties_even(-3.5), -4.0);
        assert_eq!(round_ties_even(-0.4), 0.0);
        assert_eq!(round_ties_even(1.6), 2.0);
    }
}

//! Integer requantization arithmetic (gemmlowp / TFLite conventions, DESIGN §3): a real
//! multiplier becomes a Q31 fixed-point multiplier and a power-of-two shift at plan time so the
//! int8 kernels run without floating point.

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

    /// `round(x · M)` in integer arithmetic: saturating rounding doubling high multiply, then
    /// rounding right shift (TFLite `MultiplyByQuantizedMultiplier`).
    #[inline]
    pub fn apply(self, x: i32) -> i32 {
        let left = if self.shift > 0 {
            self.shift.min(31)
        } else {
            0
        };
        let right = if self.shift > 0 {
            0
        } else {
            (-self.shift).min(31)
        };
        let x = ((x as i64) << left).clamp(i32::MIN as i64, i32::MAX as i64) as i32;
        rounding_divide_by_pot(
            saturating_rounding_doubling_high_mul(x, self.multiplier),
            right,
        )
    }
}

/// Per-channel requantization constants stored in the arena as (multiplier, shift) i32 pairs.
#[derive(Clone, Copy)]
pub struct RequantTable<'x>(pub &'x [i32]);

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

/// gemmlowp `SaturatingRoundingDoublingHighMul`.
#[inline]
pub fn saturating_rounding_doubling_high_mul(a: i32, b: i32) -> i32 {
    if a == i32::MIN && b == i32::MIN {
        return i32::MAX;
    }
    let ab = a as i64 * b as i64;
    let nudge: i64 = if ab >= 0 { 1 << 30 } else { 1 - (1 << 30) };
    ((ab + nudge) / (1i64 << 31)) as i32
}

/// gemmlowp `RoundingDivideByPOT` (round half away from zero).
#[inline]
pub fn rounding_divide_by_pot(x: i32, exponent: i32) -> i32 {
    if exponent <= 0 {
        return x;
    }
    let mask = ((1i64 << exponent) - 1) as i32;
    let remainder = x & mask;
    let threshold = (mask >> 1) + ((x < 0) as i32);
    (x >> exponent) + ((remainder > threshold) as i32)
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

#[cfg(test)]
mod tests {
    use super::*;

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

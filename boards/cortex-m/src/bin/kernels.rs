//! The int8 kernel property test, on the device: random convolutions and fully connected layers
//! (shapes, strides, padding, zero points, requantization, int8 and uint8) through the kernel
//! this firmware runs — im2row with SMLAD dot products (`arm-dsp`) — and through the reference
//! kernel. Every output byte must be equal; prints the count and exits non-zero otherwise.
#![no_std]
#![no_main]

use cortex_m_rt::entry;
use cortex_m_semihosting::{debug, hprintln};
// Text output only (the host parses it); the `defmt` feature is for the hazard firmware.
#[cfg(not(feature = "defmt"))]
use panic_semihosting as _;
// With defmt the panic handler is the library's (a defmt frame, then exit).
#[cfg(feature = "defmt")]
use sprig_cortex_m as _;
use sprig_runtime::kernels::{kernel_set, qconv_im2row, qconv_ref, qconv_scratch_bytes, Q8};
use sprig_runtime::ops::{QLinear, Window};
use sprig_runtime::quant::{Requant, RequantTable};

const CASES: usize = 300;

struct Rng(u32);
impl Rng {
    fn next(&mut self) -> u32 {
        self.0 ^= self.0 << 13;
        self.0 ^= self.0 >> 17;
        self.0 ^= self.0 << 5;
        self.0
    }
    /// Uniform in lo..=hi.
    fn range(&mut self, lo: usize, hi: usize) -> usize {
        lo + self.next() as usize % (hi - lo + 1)
    }
}

/// Buffers for one case, on the stack (no heap on the device).
struct Bufs {
    x: [u8; 1024],
    w: [i8; 1024],
    bias: [i32; 16],
    rq: [i32; 32],
    y_fast: [u8; 1024],
    y_ref: [u8; 1024],
    scratch: [u32; 1024],
}

#[entry]
fn main() -> ! {
    let mut b = Bufs {
        x: [0; 1024],
        w: [0; 1024],
        bias: [0; 16],
        rq: [0; 32],
        y_fast: [0; 1024],
        y_ref: [0; 1024],
        scratch: [0; 1024],
    };
    let mut rng = Rng(0x2545_f491);
    let (mut ran, mut bad) = (0usize, 0usize);
    while ran < CASES {
        match one_case(&mut rng, &mut b) {
            Some(true) => ran += 1,
            Some(false) => {
                ran += 1;
                bad += 1;
            }
            None => {} // shape did not fit the buffers; draw another
        }
    }
    hprintln!(
        "kernels {}: {} random int8 convolutions, {} differ from the reference",
        kernel_set(),
        ran,
        bad
    );
    debug::exit(if bad == 0 {
        debug::EXIT_SUCCESS
    } else {
        debug::EXIT_FAILURE
    });
    loop {
        cortex_m::asm::wfi();
    }
}

/// Draws one layer; `None` when it does not fit, else whether both kernels agreed.
fn one_case(rng: &mut Rng, b: &mut Bufs) -> Option<bool> {
    let fc = rng.next().is_multiple_of(4);
    let (c, h, w) = if fc {
        (rng.range(1, 120), 1, 1)
    } else {
        (rng.range(1, 8), rng.range(1, 8), rng.range(1, 8))
    };
    let group = if !fc && c.is_multiple_of(2) && rng.next().is_multiple_of(4) {
        2
    } else {
        1
    };
    let oc = group * rng.range(1, 8);
    let (kh, kw) = if fc {
        (1, 1)
    } else {
        (rng.range(1, 3), rng.range(1, 3))
    };
    let (sh, sw) = (rng.range(1, 2), rng.range(1, 2));
    let (pt, pl) = if fc {
        (0, 0)
    } else {
        (rng.range(0, 1), rng.range(0, 1))
    };
    let (dh, dw) = (1, 1);
    if h + 2 * pt < kh || w + 2 * pl < kw {
        return None;
    }
    let oh = (h + 2 * pt - kh) / sh + 1;
    let ow = (w + 2 * pl - kw) / sw + 1;
    let win = Window {
        n: 1,
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
        group,
    };
    let unsigned = rng.next().is_multiple_of(2);
    let (nx, nw, ny) = (c * h * w, oc * (c / group) * kh * kw, oc * oh * ow);
    let (lo, hi) = if unsigned { (0, 255) } else { (-128, 127) };
    let zy = rng.range(0, 255) as i32 + lo;
    let mut p = QLinear {
        win,
        zx: rng.range(0, 255) as i32 + lo,
        zy,
        act_min: lo,
        act_max: hi,
        bias: 0,
        requant: 0,
        packed: 0,
        packed_len: 0,
        w_stride_oc: (c / group) * kh * kw,
        w_stride_k: 1,
        unsigned,
    };
    if rng.next().is_multiple_of(3) {
        p.act_min = zy.max(lo); // a fused ReLU
    }
    let scratch_len = qconv_scratch_bytes(&p);
    if nx > b.x.len()
        || nw > b.w.len()
        || ny > b.y_fast.len()
        || oc > b.bias.len()
        || scratch_len > b.scratch.len() * 4
    {
        return None;
    }
    for v in &mut b.x[..nx] {
        *v = rng.next() as u8;
    }
    for v in &mut b.w[..nw] {
        *v = rng.next() as u8 as i8;
    }
    for o in 0..oc {
        b.bias[o] = (rng.next() % 20_001) as i32 - 10_000;
        let m = Requant::from_f64(1e-4 + (rng.next() % 10_000) as f64 * 1e-5);
        b.rq[2 * o] = m.multiplier;
        b.rq[2 * o + 1] = m.shift;
    }
    let rq = RequantTable(&b.rq[..2 * oc]);
    let scratch: &mut [u8] = bytemuck_bytes(&mut b.scratch);
    let (yf, yr) = (&mut b.y_fast[..ny], &mut b.y_ref[..ny]);
    let bias = &b.bias[..oc];
    let w = &b.w[..nw];
    let ok = if unsigned {
        run::<u8>(&p, &b.x[..nx], w, bias, rq, yf, yr, scratch)
    } else {
        run::<i8>(
            &p,
            cast(&b.x[..nx]),
            w,
            bias,
            rq,
            cast_mut(yf),
            cast_mut(yr),
            scratch,
        )
    };
    Some(ok)
}

#[allow(clippy::too_many_arguments)]
fn run<T: Q8 + PartialEq>(
    p: &QLinear,
    x: &[T],
    w: &[i8],
    bias: &[i32],
    rq: RequantTable<'_>,
    y_fast: &mut [T],
    y_ref: &mut [T],
    scratch: &mut [u8],
) -> bool {
    let a = qconv_im2row(p, x, w, bias, &[], rq, y_fast, scratch);
    let b = qconv_ref(p, x, w, bias, rq, y_ref);
    a.is_ok() && b.is_ok() && y_fast == y_ref
}

fn bytemuck_bytes(v: &mut [u32]) -> &mut [u8] {
    // SAFETY: u32 has no padding; any byte pattern is a valid u8; the length is exact.
    unsafe { core::slice::from_raw_parts_mut(v.as_mut_ptr().cast(), v.len() * 4) }
}

fn cast(v: &[u8]) -> &[i8] {
    // SAFETY: i8 and u8 have the same size, alignment and no invalid values.
    unsafe { core::slice::from_raw_parts(v.as_ptr().cast(), v.len()) }
}

fn cast_mut(v: &mut [u8]) -> &mut [i8] {
    // SAFETY: as in `cast`.
    unsafe { core::slice::from_raw_parts_mut(v.as_mut_ptr().cast(), v.len()) }
}

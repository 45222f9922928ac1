//! Per-target builds of the portable kernels, chosen at run time. The code is the same Rust, only
//! compiled with wider vector instructions enabled, so results are bit-identical.
#![allow(unsafe_code)]

use crate::error::Result;
use crate::kernels::{conv_f32_rows_portable, gemm_f32_rows_portable, qconv_im2row_portable, Q8};
use crate::ops::Broadcast;
use crate::ops::QLinear;
use crate::ops::Window;
use crate::quant::RequantTable;

/// The CPU supports AVX2 (cached by std after the first call) and optimized kernels are
/// allowed ([`crate::kernels::set_portable_only`]).
pub fn has_avx2() -> bool {
    crate::kernels::optimized_allowed() && cpu_has_avx2()
}

/// The CPU supports AVX2, whatever [`crate::kernels::set_portable_only`] says: what the
/// `unsafe` calls rely on.
pub fn cpu_has_avx2() -> bool {
    std::is_x86_feature_detected!("avx2")
}

#[target_feature(enable = "avx2")]
fn qconv_avx2_impl<T: Q8>(
    p: &QLinear,
    x: &[T],
    w: &[i8],
    bias: &[i32],
    rq: RequantTable<'_>,
    y: &mut [T],
    scratch: &mut [u8],
) -> Result<()> {
    qconv_im2row_portable(p, x, w, bias, rq, y, scratch)
}

/// [`crate::kernels::qconv_im2row`] compiled for AVX2. Call only when [`has_avx2`] is true.
pub fn qconv_im2row_avx2<T: Q8>(
    p: &QLinear,
    x: &[T],
    w: &[i8],
    bias: &[i32],
    rq: RequantTable<'_>,
    y: &mut [T],
    scratch: &mut [u8],
) -> Result<()> {
    debug_assert!(cpu_has_avx2());
    // SAFETY: the only requirement of a `target_feature` function is that the CPU has the
    // feature; every caller checks `has_avx2()` first.
    unsafe { qconv_avx2_impl(p, x, w, bias, rq, y, scratch) }
}

#[target_feature(enable = "avx2")]
fn conv_f32_avx2_impl(
    p: &Window,
    x: &[f32],
    w: &[f32],
    b: Option<&[f32]>,
    y: &mut [f32],
    scratch: &mut [u8],
) -> Result<()> {
    conv_f32_rows_portable(p, x, w, b, y, scratch)
}

/// [`crate::kernels::conv_f32_rows`] compiled for AVX2 (no FMA: the rounding stays the
/// portable code's). Call only when [`has_avx2`] is true.
pub fn conv_f32_rows_avx2(
    p: &Window,
    x: &[f32],
    w: &[f32],
    b: Option<&[f32]>,
    y: &mut [f32],
    scratch: &mut [u8],
) -> Result<()> {
    debug_assert!(cpu_has_avx2());
    // SAFETY: callers check `has_avx2()` first.
    unsafe { conv_f32_avx2_impl(p, x, w, b, y, scratch) }
}

#[target_feature(enable = "avx2")]
#[allow(clippy::too_many_arguments)]
fn gemm_f32_avx2_impl(
    m: usize,
    k: usize,
    n: usize,
    alpha: f32,
    beta: f32,
    c: Option<(&Broadcast, &[f32])>,
    a: &[f32],
    b: &[f32],
    y: &mut [f32],
) -> Result<()> {
    gemm_f32_rows_portable(m, k, n, alpha, beta, c, a, b, y)
}

/// [`crate::kernels::gemm_f32_rows`] compiled for AVX2 (no FMA). Call only when [`has_avx2`]
/// is true.
#[allow(clippy::too_many_arguments)]
pub fn gemm_f32_rows_avx2(
    m: usize,
    k: usize,
    n: usize,
    alpha: f32,
    beta: f32,
    c: Option<(&Broadcast, &[f32])>,
    a: &[f32],
    b: &[f32],
    y: &mut [f32],
) -> Result<()> {
    debug_assert!(cpu_has_avx2());
    // SAFETY: callers check `has_avx2()` first.
    unsafe { gemm_f32_avx2_impl(m, k, n, alpha, beta, c, a, b, y) }
}

#[cfg(feature = "recurrent")]
#[target_feature(enable = "avx2")]
fn rnn_f32_avx2_impl(
    s: &crate::rnn::RnnSpec,
    i: &crate::rnn::RnnInputs<'_>,
    y: &mut [f32],
    scratch: &mut [f32],
) -> Result<()> {
    crate::rnn::rnn_f32_portable(s, i, y, scratch)
}

/// [`crate::rnn::rnn_f32`] compiled for AVX2 (no FMA). Call only when [`has_avx2`] is true.
#[cfg(feature = "recurrent")]
pub fn rnn_f32_avx2(
    s: &crate::rnn::RnnSpec,
    i: &crate::rnn::RnnInputs<'_>,
    y: &mut [f32],
    scratch: &mut [f32],
) -> Result<()> {
    debug_assert!(cpu_has_avx2());
    // SAFETY: callers check `has_avx2()` first.
    unsafe { rnn_f32_avx2_impl(s, i, y, scratch) }
}

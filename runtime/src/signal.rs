//! Spectral ops on float32 for audio front ends (keyword spotting, sound events: window →
//! `STFT` → power → mel filterbank → log, all inside the model file):
//!
//! - `DFT` (opsets 17 and 20): the discrete Fourier transform along one axis of a real
//!   (`…×1`) or complex (`…×2`, re/im) signal, zero-padded or truncated to `dft_length`;
//!   `onesided` keeps bins `0..=n/2`, `inverse` conjugates and divides by `n`.
//! - `STFT`: frames of `frame_length` samples every `frame_step`, each times an optional
//!   window of the same length, transformed (`onesided` by default): `batch × frames × bins ×
//!   2`. A shorter analysis window is zero-padded to the frame in the model (`Pad`), as
//!   `torch.stft` centres it.
//! - `HannWindow`, `HammingWindow`, `BlackmanWindow`: the cosine-sum windows
//!   `a0 − a1·cos(2πk/N) + a2·cos(4πk/N)`, `N` the size (periodic) or size − 1 (symmetric).
//! - `MelWeightMatrix`: triangular mel filters as ONNX's reference builds them (bin edges
//!   `⌊(dft_length + 1)·hz / sample_rate⌋` of mels spaced evenly between the edge
//!   frequencies), `(dft_length/2 + 1) × num_mel_bins`.
//!
//! Sizes set output shapes, so `dft_length`, DFT's opset-20 `axis`, `frame_step`,
//! `frame_length`, the window sizes and every MelWeightMatrix input must be constants.
//! A power-of-two length runs as an in-place radix-2 FFT; a length whose prime factors are
//! all at most [`MAX_RADIX`] (400 = 4·4·5·5, torchaudio's `n_fft`) as an in-place
//! mixed-radix FFT; any other (up to [`MAX_DIRECT_DFT`]) as a direct DFT over the samples
//! actually there (zero padding is free). Samples are loaded straight into the order the
//! passes want (bit- or digit-reversed), and every method reads one table of `n` twiddles,
//! so the step's scratch is `4·n` floats (the frame and the table) and nothing is allocated.
//! The direct DFT is the reference both FFTs are tested against.

// The step types are part of every build (the step table names them); planning and the
// kernels only with signal-ops.
#![cfg_attr(not(feature = "signal-ops"), allow(dead_code, unused_imports))]

use crate::error::{Error, Result};
use crate::kernels::size_mismatch;
use crate::onnx::Node;
use crate::ops::{input, push_step, shape_err, unsupported, Op, Prep, Step};
use crate::prepare::{const_ints, make_step, only_attrs};
use crate::tensor::{DType, Shape, MAX_RANK};

/// A `DFT` step: the signal is `outer × len × inner × (1|2)`, the output `outer × bins ×
/// inner × 2`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Dft {
    /// Product of the axes before the transformed one.
    pub outer: u32,
    /// Signal length along the transformed axis.
    pub len: u32,
    /// Product of the axes between it and the last.
    pub inner: u32,
    /// The input holds (re, im) pairs (else real values).
    pub complex: bool,
    /// Transform length (`dft_length`).
    pub n: u32,
    /// Output bins: `n`, or `n/2 + 1` one-sided.
    pub bins: u32,
    /// Inverse transform (conjugate twiddles, scaled by `1/n`).
    pub inverse: bool,
}

/// An `STFT` step: the signal is `batch × len × (1|2)`, the optional window `n` values, the
/// output `batch × frames × bins × 2`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Stft {
    /// Batch.
    pub batch: u32,
    /// Signal length.
    pub len: u32,
    /// The signal holds (re, im) pairs.
    pub complex: bool,
    /// Hop between frame starts.
    pub step: u32,
    /// Transform length (`frame_length`).
    pub n: u32,
    /// Frames.
    pub frames: u32,
    /// Output bins per frame.
    pub bins: u32,
    /// A window input (the step's second) multiplies each frame.
    pub windowed: bool,
}

/// Which cosine-sum window.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum WindowKind {
    /// `0.5 − 0.5·cos` (HannWindow).
    Hann,
    /// `25/46 − 21/46·cos` (HammingWindow).
    Hamming,
    /// `0.42 − 0.5·cos + 0.08·cos(2·)` (BlackmanWindow).
    Blackman,
}

impl WindowKind {
    /// The ONNX op name.
    pub fn name(self) -> &'static str {
        match self {
            WindowKind::Hann => "HannWindow",
            WindowKind::Hamming => "HammingWindow",
            WindowKind::Blackman => "BlackmanWindow",
        }
    }
}

/// A `MelWeightMatrix` step (output `(dft/2 + 1) × mels`).
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct MelWeights {
    /// Mel bands.
    pub mels: u32,
    /// DFT length the spectrogram came from.
    pub dft: u32,
    /// Sample rate in Hz.
    pub rate: u32,
    /// Lowest band edge in Hz.
    pub lower_hz: f32,
    /// Highest band edge in Hz.
    pub upper_hz: f32,
}

impl MelWeights {
    /// Spectrogram bins (the output's rows).
    pub fn bins(&self) -> usize {
        self.dft as usize / 2 + 1
    }

    /// Edge `k` of `0..mels + 2` as a spectrogram bin, as ONNX's reference computes it (in
    /// f64: mel = 2595·log10(1 + hz/700), evenly spaced, back to hz, then
    /// `⌊(dft + 1)·hz / rate⌋`).
    pub fn edge(&self, k: usize) -> i64 {
        let mel = |hz: f64| 2595.0 * libm::log1p(hz / 700.0) / core::f64::consts::LN_10;
        let (lo, hi) = (mel(self.lower_hz as f64), mel(self.upper_hz as f64));
        let step = (hi - lo) / (self.mels as f64 + 2.0);
        let m = k as f64 * step + lo;
        let hz = 700.0 * libm::expm1(m / 2595.0 * core::f64::consts::LN_10);
        libm::floor((self.dft as f64 + 1.0) * hz / self.rate as f64) as i64
    }
}

/// Longest transform with a prime factor above [`MAX_RADIX`]: those run as a direct DFT, `n`
/// multiply-adds per bin, so a longer one is refused when planned rather than left to take
/// minutes (pad the frame to a power of two: `dft_length`, or `Pad` before an STFT).
pub const MAX_DIRECT_DFT: usize = 4096;

/// Scratch bytes of a transform of length `n`: the frame and the twiddle table.
pub fn scratch_bytes(n: usize) -> usize {
    n * 4 * core::mem::size_of::<f32>()
}

/// A constant non-negative integer scalar input (a size or a step), if the input is given.
fn const_size<const T: usize, const N: usize>(
    p: &Prep<'_, '_, T, N>,
    node: &Node<'_>,
    i: usize,
    what: &'static str,
) -> Result<Option<i64>> {
    let Some(v) = const_ints(p, node, i).map_err(|_| unsupported(node, what))? else {
        return Ok(None);
    };
    match v.as_slice() {
        [x] => Ok(Some(*x)),
        _ => Err(shape_err(
            node,
            "size, step and axis inputs must hold one value",
        )),
    }
}

/// A constant float scalar input.
fn const_f32<const T: usize, const N: usize>(
    p: &Prep<'_, '_, T, N>,
    node: &Node<'_>,
    i: usize,
) -> Result<f32> {
    let k = p.g.konst(node.input(i)).ok_or_else(|| {
        unsupported(
            node,
            "MelWeightMatrix input computed at run time (bake it into the model)",
        )
    })?;
    if k.shape.numel() != 1 {
        return Err(shape_err(
            node,
            "MelWeightMatrix inputs must hold one value",
        ));
    }
    k.f32_at(0)
}

/// Refuses a transform length the direct DFT would take too long for.
fn check_length(node: &Node<'_>, n: usize) -> Result<()> {
    if too_slow(n) {
        return Err(unsupported(
            node,
            "transform length above 4096 with a prime factor above 31 (pad it to a power of two)",
        ));
    }
    Ok(())
}

/// Refuses an `output_datatype` other than float32.
fn float_output(node: &Node<'_>) -> Result<()> {
    if node.attr_i("output_datatype", 1)? != 1 {
        return Err(unsupported(node, "output_datatype (float32 only)"));
    }
    Ok(())
}

fn u32_of(node: &Node<'_>, v: usize) -> Result<u32> {
    u32::try_from(v).map_err(|_| unsupported(node, "dimension above 2^32"))
}

/// Plans a `DFT`, `STFT`, window or `MelWeightMatrix` node (one step; a transform's step
/// carries its scratch).
#[inline(never)] // keeps its locals out of the planner's frame (MCU stacks)
pub(crate) fn prepare_signal<const T: usize, const N: usize>(
    p: &mut Prep<'_, '_, T, N>,
    node: &Node<'_>,
    idx: u16,
    steps: &mut heapless::Vec<Step, N>,
) -> Result<()> {
    let mut ins = heapless::Vec::<u16, 2>::new();
    let mut scratch = 0;
    let mut d = [0i64; MAX_RANK];
    let (op, rank) = match node.op_type {
        "DFT" => {
            let (x, xt) = input(p.g, node, 0)?;
            let _ = ins.push(x);
            let opset20 = p.g.opset >= 20;
            only_attrs(
                node,
                if opset20 {
                    &["inverse", "onesided"]
                } else {
                    &["axis", "inverse", "onesided"]
                },
            )?;
            if xt.dtype != DType::F32 {
                return Err(unsupported(node, "element type (this op runs on float32)"));
            }
            let s = xt.shape;
            let r = s.rank();
            let c = if r > 0 { s.dim(r - 1) } else { 0 };
            if r < 2 || !(c == 1 || c == 2) {
                return Err(shape_err(
                    node,
                    "input must be …×signal×1 (real) or ×2 (complex)",
                ));
            }
            let axis = if opset20 {
                const_size(
                    p,
                    node,
                    2,
                    "axis computed at run time (bake it into the model)",
                )?
                .unwrap_or(-2)
            } else {
                node.attr_i("axis", 1)?
            };
            let axis = if axis < 0 { axis + r as i64 } else { axis };
            if !(0..r as i64 - 1).contains(&axis) {
                return Err(shape_err(
                    node,
                    "axis out of range (the last axis holds re/im)",
                ));
            }
            let axis = axis as usize;
            let len = s.dim(axis);
            let n = match const_size(
                p,
                node,
                1,
                "dft_length computed at run time (bake it into the model)",
            )? {
                Some(n) if n < 1 => return Err(shape_err(node, "dft_length must be at least 1")),
                Some(n) => usize::try_from(n).map_err(|_| unsupported(node, "dft_length"))?,
                None => len,
            };
            let inverse = node.attr_i("inverse", 0)? != 0;
            let onesided = node.attr_i("onesided", 0)? != 0;
            if inverse && onesided {
                return Err(unsupported(node, "inverse one-sided DFT (irfft)"));
            }
            let bins = if onesided { n / 2 + 1 } else { n };
            let dims = s.dims();
            let dft = Dft {
                outer: u32_of(node, dims[..axis].iter().map(|&v| v as usize).product())?,
                len: u32_of(node, len)?,
                inner: u32_of(
                    node,
                    dims[axis + 1..r - 1].iter().map(|&v| v as usize).product(),
                )?,
                complex: c == 2,
                n: u32_of(node, n)?,
                bins: u32_of(node, bins)?,
                inverse,
            };
            for (o, slot) in d[..r].iter_mut().enumerate() {
                *slot = s.dim(o) as i64;
            }
            d[axis] = bins as i64;
            d[r - 1] = 2;
            check_length(node, n)?;
            scratch = scratch_bytes(n);
            (Op::Dft(dft), r)
        }
        "STFT" => {
            only_attrs(node, &["onesided"])?;
            let (x, xt) = input(p.g, node, 0)?;
            let _ = ins.push(x);
            if xt.dtype != DType::F32 {
                return Err(unsupported(node, "element type (this op runs on float32)"));
            }
            let s = xt.shape;
            if s.rank() != 3 || !(s.dim(2) == 1 || s.dim(2) == 2) {
                return Err(shape_err(
                    node,
                    "signal must be batch×length×1 (real) or ×2 (complex)",
                ));
            }
            let len = s.dim(1);
            let hop = const_size(
                p,
                node,
                1,
                "frame_step computed at run time (bake it into the model)",
            )?
            .ok_or_else(|| shape_err(node, "a required input is missing"))?;
            let window = match node.input(2) {
                Some(_) => {
                    let (w, wt) = input(p.g, node, 2)?;
                    if wt.dtype != DType::F32 || wt.shape.rank() != 1 || wt.shape.dim(0) == 0 {
                        return Err(shape_err(node, "window must be a float32 vector"));
                    }
                    let _ = ins.push(w);
                    Some(wt.shape.dim(0))
                }
                None => None,
            };
            let n = match const_size(
                p,
                node,
                3,
                "frame_length computed at run time (bake it into the model)",
            )? {
                Some(n) if window.is_some_and(|w| w as i64 != n) => {
                    return Err(shape_err(node, "window length must equal frame_length"))
                }
                Some(n) => n,
                None => window.unwrap_or(len) as i64,
            };
            if hop < 1 || n < 1 {
                return Err(shape_err(
                    node,
                    "frame_step and frame_length must be at least 1",
                ));
            }
            let n = usize::try_from(n).map_err(|_| unsupported(node, "frame_length"))?;
            if n > len {
                return Err(shape_err(node, "signal shorter than one frame"));
            }
            let hop = usize::try_from(hop).map_err(|_| unsupported(node, "frame_step"))?;
            let frames = 1 + (len - n) / hop;
            let bins = if node.attr_i("onesided", 1)? != 0 {
                n / 2 + 1
            } else {
                n
            };
            let stft = Stft {
                batch: u32_of(node, s.dim(0))?,
                len: u32_of(node, len)?,
                complex: s.dim(2) == 2,
                step: u32_of(node, hop)?,
                n: u32_of(node, n)?,
                frames: u32_of(node, frames)?,
                bins: u32_of(node, bins)?,
                windowed: window.is_some(),
            };
            d[..4].copy_from_slice(&[s.dim(0) as i64, frames as i64, bins as i64, 2]);
            check_length(node, n)?;
            scratch = scratch_bytes(n);
            (Op::Stft(stft), 4)
        }
        "HannWindow" | "HammingWindow" | "BlackmanWindow" => {
            only_attrs(node, &["output_datatype", "periodic"])?;
            float_output(node)?;
            let size = const_size(
                p,
                node,
                0,
                "window size computed at run time (bake it into the model)",
            )?
            .ok_or_else(|| shape_err(node, "a required input is missing"))?;
            if size < 1 {
                return Err(shape_err(node, "window size must be at least 1"));
            }
            let kind = match node.op_type {
                "HannWindow" => WindowKind::Hann,
                "HammingWindow" => WindowKind::Hamming,
                _ => WindowKind::Blackman,
            };
            let size = u32::try_from(size).map_err(|_| unsupported(node, "window size"))?;
            d[0] = size as i64;
            let periodic = node.attr_i("periodic", 1)? != 0;
            (
                Op::WindowFn {
                    kind,
                    size,
                    periodic,
                },
                1,
            )
        }
        "MelWeightMatrix" => {
            only_attrs(node, &["output_datatype"])?;
            float_output(node)?;
            let int = |i| {
                const_size(
                    p,
                    node,
                    i,
                    "MelWeightMatrix input computed at run time (bake it into the model)",
                )?
                .ok_or_else(|| shape_err(node, "a required input is missing"))
            };
            let (mels, dft, rate) = (int(0)?, int(1)?, int(2)?);
            let (lower_hz, upper_hz) = (const_f32(p, node, 3)?, const_f32(p, node, 4)?);
            let positive = |v: i64| u32::try_from(v).ok().filter(|&v| v > 0);
            let (Some(mels), Some(dft), Some(rate)) =
                (positive(mels), positive(dft), positive(rate))
            else {
                return Err(shape_err(
                    node,
                    "num_mel_bins, dft_length and sample_rate must be positive",
                ));
            };
            // NaN fails both comparisons.
            if !(lower_hz >= 0.0 && upper_hz >= lower_hz && upper_hz.is_finite()) {
                return Err(shape_err(
                    node,
                    "edge frequencies must satisfy 0 <= lower_edge_hertz <= upper_edge_hertz",
                ));
            }
            let m = MelWeights {
                mels,
                dft,
                rate,
                lower_hz,
                upper_hz,
            };
            // Every band's centre must be a spectrogram bin and its right edge at most one
            // past the last (ONNX's reference would index outside the matrix otherwise).
            let bins = m.bins() as i64;
            if m.edge(mels as usize) >= bins || m.edge(mels as usize + 1) > bins {
                return Err(shape_err(
                    node,
                    "mel bands reach past the spectrogram (upper_edge_hertz above sample_rate / 2)",
                ));
            }
            d[..2].copy_from_slice(&[bins, mels as i64]);
            (Op::MelWeights(m), 2)
        }
        _ => return Err(unsupported(node, "op")),
    };
    let name = node
        .outputs
        .first()
        .copied()
        .filter(|n| !n.is_empty())
        .ok_or_else(|| unsupported(node, "number of outputs"))?;
    if node.outputs.len() != 1 {
        return Err(unsupported(node, "number of outputs"));
    }
    let out = p.type_output(name, DType::F32, Shape::new(&d[..rank], name)?)?;
    let mut step = make_step(idx, op, &ins, out)?;
    step.scratch = scratch;
    push_step(steps, step)
}

/// Runs a `DFT`, `STFT`, window or `MelWeightMatrix` step on the interpreter's byte buffers
/// (one out-of-line function, so the interpreter's dispatch gains one arm, not four).
#[inline(never)]
pub fn eval(op: &Op, ins: &[&[u8]], y: &mut [u8], scratch: &mut [u8]) -> Result<()> {
    let misaligned = || Error::BadIo {
        what: "misaligned float buffer",
    };
    let input = |i: usize| -> Result<&[f32]> {
        let b = ins.get(i).copied().ok_or(Error::BadIo {
            what: "missing step input",
        })?;
        bytemuck::try_cast_slice(b).map_err(|_| misaligned())
    };
    let y: &mut [f32] = bytemuck::try_cast_slice_mut(y).map_err(|_| misaligned())?;
    // Empty for windows and mel steps (no scratch planned; its pointer may be unaligned).
    let scratch: &mut [f32] = if scratch.is_empty() {
        &mut []
    } else {
        bytemuck::try_cast_slice_mut(scratch).map_err(|_| misaligned())?
    };
    match *op {
        Op::Dft(d) => dft(&d, input(0)?, y, scratch),
        Op::Stft(s) => {
            let window = if s.windowed { Some(input(1)?) } else { None };
            stft(&s, input(0)?, window, y, scratch)
        }
        Op::WindowFn { kind, periodic, .. } => window(kind, periodic, y),
        Op::MelWeights(m) => mel_weights(&m, y),
        _ => Err(Error::BadIo {
            what: "not a signal step",
        }),
    }
}

/// Fills `tw` (`2n` floats) with `e^(∓2πi·m/n)` for `m` in `0..n` (`+` for the inverse).
fn twiddles(n: usize, inverse: bool, tw: &mut [f32]) {
    let sign = if inverse { 1.0 } else { -1.0 };
    for (m, w) in tw.chunks_exact_mut(2).take(n).enumerate() {
        let (c, s) = cos_sin_turn(m, n);
        w[0] = c;
        w[1] = sign * s;
    }
}

/// `cos` and `sin` of `2π·m/n` in f32, accurate to about one rounding: the quarter turns are
/// split off in integers (`2π·m/n = k·π/2 + θ`, `|θ| ≤ π/4`), so no large f32 angle is ever
/// rounded (that alone would put errors of `|x|·2e-7` on every DFT term), and `θ` needs only
/// short polynomials in f32 (libm's `cosf` computes in f64, soft-float on a Cortex-M4).
/// `n` is at most the transform length, so `9n` fits `usize` (the scratch is `16n` bytes).
pub fn cos_sin_turn(m: usize, n: usize) -> (f32, f32) {
    let m = m % n;
    // Nearest quarter turn: k = round(4m / n), remainder r = 4m − k·n in [−n/2, n/2].
    let k = (8 * m + n) / (2 * n);
    let r = (4 * m) as f32 - (k * n) as f32;
    let theta = core::f32::consts::FRAC_PI_2 * (r / n as f32);
    let (c, s) = cos_sin_small(theta);
    match k % 4 {
        0 => (c, s),
        1 => (-s, c),
        2 => (-c, -s),
        _ => (s, -c),
    }
}

/// `cos θ` and `sin θ` for `|θ| ≤ π/4` by their Taylor series to the `θ¹⁰` and `θ⁹` terms
/// (truncation below 2e-9 there), in Horner form.
fn cos_sin_small(t: f32) -> (f32, f32) {
    let t2 = t * t;
    let c = 1.0
        - t2 / 2.0 * (1.0 - t2 / 12.0 * (1.0 - t2 / 30.0 * (1.0 - t2 / 56.0 * (1.0 - t2 / 90.0))));
    let s = t * (1.0 - t2 / 6.0 * (1.0 - t2 / 20.0 * (1.0 - t2 / 42.0 * (1.0 - t2 / 72.0))));
    (c, s)
}

/// Largest radix of the mixed-radix FFT: a length with a prime factor above it runs as a
/// direct DFT (one butterfly holds `r` complex values on the stack).
pub const MAX_RADIX: usize = 31;

/// Stages a mixed-radix length can have (radix 4 first, so `n < 2³²` needs at most 32).
const MAX_STAGES: usize = 32;

/// How a transform of one length runs, chosen from its factors.
#[derive(Clone, Copy)]
enum Method {
    /// A power of two: radix-2 passes.
    Radix2 { bits: u32 },
    /// Every prime factor at most [`MAX_RADIX`]: one pass per factor, `radices[..stages]`.
    Mixed {
        radices: [u8; MAX_STAGES],
        stages: usize,
    },
    /// A prime factor above [`MAX_RADIX`] (or `n = 1`): the definition, bin by bin.
    Direct,
}

impl Method {
    fn of(n: usize) -> Method {
        if n >= 2 && n.is_power_of_two() {
            return Method::Radix2 {
                bits: n.trailing_zeros(),
            };
        }
        let (mut radices, mut stages, mut rest) = ([0u8; MAX_STAGES], 0, n);
        let mut r = 4;
        while rest > 1 && r <= MAX_RADIX && stages < MAX_STAGES {
            if rest % r == 0 {
                radices[stages] = r as u8;
                stages += 1;
                rest /= r;
            } else {
                // 4, then 2, 3, 5, 7, … (odd candidates; composites never divide by then).
                r = match r {
                    4 => 2,
                    2 => 3,
                    _ => r + 2,
                };
            }
        }
        if n >= 2 && rest == 1 {
            Method::Mixed { radices, stages }
        } else {
            Method::Direct
        }
    }

    /// The work-buffer slots of samples `0, 1, 2, …` in turn for the mixed-radix passes
    /// (digit-reversed) and the direct DFT (natural order); the radix-2 passes take
    /// `reverse_bits` (one instruction on a Cortex-M).
    fn slots(&self) -> Slots {
        let (mut weights, mut radices, mut stages) = ([0usize; MAX_STAGES], [2u8; MAX_STAGES], 0);
        if let Method::Mixed {
            radices: r,
            stages: k,
        } = *self
        {
            // Sample t's last digit (radix of the last pass) picks the block of the last pass,
            // and so on down: the digit of pass s weighs the radices before it.
            stages = k;
            let mut w = 1;
            for (s, &r) in r[..k].iter().enumerate() {
                (weights[k - 1 - s], radices[k - 1 - s]) = (w, r);
                w *= r as usize;
            }
        }
        Slots {
            radices,
            weights,
            digits: [0; MAX_STAGES],
            stages,
            slot: 0,
        }
    }
}

/// A mixed-radix counter over the sample index whose digits, read in reverse, give the slot
/// (`O(1)` per sample, no divisions).
struct Slots {
    /// Radix of each digit, least significant first.
    radices: [u8; MAX_STAGES],
    /// Slot weight of each digit.
    weights: [usize; MAX_STAGES],
    digits: [u8; MAX_STAGES],
    stages: usize,
    slot: usize,
}

impl Iterator for Slots {
    type Item = usize;

    fn next(&mut self) -> Option<usize> {
        let here = self.slot;
        for s in 0..self.stages {
            self.digits[s] += 1;
            if self.digits[s] < self.radices[s] {
                self.slot += self.weights[s];
                break;
            }
            self.digits[s] = 0;
            self.slot -= (self.radices[s] as usize - 1) * self.weights[s];
        }
        if self.stages == 0 {
            self.slot += 1;
        }
        Some(here)
    }
}

/// Whether a length of `n` is refused: too long for the direct DFT its factors leave it to.
fn too_slow(n: usize) -> bool {
    n > MAX_DIRECT_DFT && matches!(Method::of(n), Method::Direct)
}

/// The first `bins` bins of the `n`-point DFT of the `filled` complex samples `load(t)` gives
/// (zeros after them), each handed to `out(k, re, im)`; `buf` (`2n` floats) is the work
/// buffer, `tw` the twiddles.
fn transform(
    buf: &mut [f32],
    tw: &[f32],
    (n, filled, bins): (usize, usize, usize),
    mut load: impl FnMut(usize) -> (f32, f32),
    mut out: impl FnMut(usize, f32, f32),
) {
    let method = Method::of(n);
    let buf = &mut buf[..2 * n];
    let filled = filled.min(n);
    if filled < n {
        buf.fill(0.0);
    }
    let mut put = |t: usize, slot: usize| {
        let (re, im) = load(t);
        (buf[2 * slot], buf[2 * slot + 1]) = (re, im);
    };
    if let Method::Radix2 { bits } = method {
        for t in 0..filled {
            put(t, t.reverse_bits() >> (usize::BITS - bits));
        }
    } else {
        for (t, slot) in (0..filled).zip(method.slots()) {
            put(t, slot);
        }
    }
    match method {
        Method::Radix2 { .. } => radix2_passes(buf, tw, n),
        Method::Mixed { radices, stages } => mixed_passes(buf, tw, n, &radices[..stages]),
        Method::Direct => {
            for k in 0..bins {
                let (re, im) = direct_bin(&buf[..2 * filled], tw, n, k);
                out(k, re, im);
            }
            return;
        }
    }
    for (k, c) in buf.chunks_exact(2).take(bins).enumerate() {
        out(k, c[0], c[1]);
    }
}

/// Bin `k` of the `n`-point DFT of `buf` (its values, zeros after them) by its definition (the
/// reference for the FFTs).
fn direct_bin(buf: &[f32], tw: &[f32], n: usize, k: usize) -> (f32, f32) {
    let (mut re, mut im) = (0.0f32, 0.0f32);
    let mut m = 0;
    for x in buf.chunks_exact(2).take(n) {
        let (wr, wi) = (tw[2 * m], tw[2 * m + 1]);
        re += x[0] * wr - x[1] * wi;
        im += x[0] * wi + x[1] * wr;
        // m = k·t mod n without overflow.
        m += k % n;
        if m >= n {
            m -= n;
        }
    }
    (re, im)
}

/// Radix-2 decimation-in-time passes over `n` (a power of two) complex values stored in
/// bit-reversed order; the result is in natural order.
fn radix2_passes(buf: &mut [f32], tw: &[f32], n: usize) {
    let mut len = 2;
    while len <= n {
        let stride = n / len;
        // Each group's halves as slices, zipped with every stride-th twiddle: no index
        // arithmetic or bounds test per butterfly.
        for group in buf[..2 * n].chunks_exact_mut(2 * len) {
            let (lo, hi) = group.split_at_mut(len);
            let turns = tw.chunks_exact(2).step_by(stride);
            for ((a, b), w) in lo
                .chunks_exact_mut(2)
                .zip(hi.chunks_exact_mut(2))
                .zip(turns)
            {
                let (wr, wi) = (w[0], w[1]);
                let (tr, ti) = (b[0] * wr - b[1] * wi, b[0] * wi + b[1] * wr);
                let (ar, ai) = (a[0], a[1]);
                (a[0], a[1]) = (ar + tr, ai + ti);
                (b[0], b[1]) = (ar - tr, ai - ti);
            }
        }
        len *= 2;
    }
}

/// Mixed-radix decimation-in-time passes over `n` complex values stored in digit-reversed
/// order ([`Method::slot`]); the result is in natural order. Pass `s` of radix `r` joins `r`
/// transforms of length `span` into one of `span·r`: element `q` of each group is turned by
/// `w_(span·r)^(j·q)`, then the group gets an `r`-point DFT (twiddles `w_r^(p·q)`, all read
/// from the one `n`-point table). Radix 4 has its own butterfly (no multiplies but the turns).
fn mixed_passes(buf: &mut [f32], tw: &[f32], n: usize, radices: &[u8]) {
    // A quarter turn, exactly (0, ∓1): −i forward, +i inverse.
    let quarter = if n.is_multiple_of(4) {
        tw[2 * (n / 4) + 1]
    } else {
        0.0
    };
    let mut span = 1;
    for &r in radices {
        let r = r as usize;
        let len = span * r;
        let (turn, rstride) = (n / len, n / r);
        let mut a = [0.0f32; 2 * MAX_RADIX];
        for start in (0..n).step_by(len) {
            for j in 0..span {
                for q in 0..r {
                    let at = 2 * (start + j + q * span);
                    let (xr, xi) = (buf[at], buf[at + 1]);
                    if j == 0 {
                        // Turned by 1 (every element of the first pass).
                        (a[2 * q], a[2 * q + 1]) = (xr, xi);
                        continue;
                    }
                    // j·q·turn < span·r·turn = n: an index into the table as it is.
                    let m = 2 * j * q * turn;
                    let (wr, wi) = (tw[m], tw[m + 1]);
                    a[2 * q] = xr * wr - xi * wi;
                    a[2 * q + 1] = xr * wi + xi * wr;
                }
                if r == 4 {
                    // X_p = Σ_q a_q·(∓i)^(pq): sums and differences, ±i as swaps.
                    let (s0r, s0i) = (a[0] + a[4], a[1] + a[5]);
                    let (d0r, d0i) = (a[0] - a[4], a[1] - a[5]);
                    let (s1r, s1i) = (a[2] + a[6], a[3] + a[7]);
                    let (d1r, d1i) = (a[2] - a[6], a[3] - a[7]);
                    // d1 turned a quarter: (−d1i·w, d1r·w) for w = ∓1.
                    let (er, ei) = (-d1i * quarter, d1r * quarter);
                    let out = [
                        (s0r + s1r, s0i + s1i),
                        (d0r + er, d0i + ei),
                        (s0r - s1r, s0i - s1i),
                        (d0r - er, d0i - ei),
                    ];
                    for (p, (re, im)) in out.into_iter().enumerate() {
                        let at = 2 * (start + j + p * span);
                        buf[at] = re;
                        buf[at + 1] = im;
                    }
                    continue;
                }
                let mut put = |p: usize, re: f32, im: f32| {
                    let at = 2 * (start + j + p * span);
                    buf[at] = re;
                    buf[at + 1] = im;
                };
                if r == 2 {
                    put(0, a[0] + a[2], a[1] + a[3]);
                    put(1, a[0] - a[2], a[1] - a[3]);
                    continue;
                }
                odd_butterfly(&mut a[..2 * r], tw, rstride, put);
            }
        }
        span = len;
    }
}

/// The `r`-point DFT (`r` odd) of the complex values in `a`, each bin handed to `put(p, re,
/// im)`, by the pair symmetry: with `s_q = a_q + a_(r−q)` and `d_q = a_q − a_(r−q)`,
/// `X_p = a_0 + Σ_q (s_q·cos_pq + i·d_q·sin_pq)` and `X_(r−p)` the same with the sine part
/// negated (`q, p` in `1..=(r−1)/2`; `cos`/`sin` the table's `w_r^(pq)`, sign included), a
/// quarter of the multiplies of the definition. `a` is overwritten with the sums and differences.
fn odd_butterfly(a: &mut [f32], tw: &[f32], rstride: usize, mut put: impl FnMut(usize, f32, f32)) {
    let r = a.len() / 2;
    let h = r / 2;
    let (mut x0r, mut x0i) = (a[0], a[1]);
    for q in 1..=h {
        let (lo, hi) = (2 * q, 2 * (r - q));
        let (sr, si) = (a[lo] + a[hi], a[lo + 1] + a[hi + 1]);
        let (dr, di) = (a[lo] - a[hi], a[lo + 1] - a[hi + 1]);
        (a[lo], a[lo + 1], a[hi], a[hi + 1]) = (sr, si, dr, di);
        x0r += sr;
        x0i += si;
    }
    put(0, x0r, x0i);
    for p in 1..=h {
        let (mut cr, mut ci) = (a[0], a[1]);
        let (mut tr, mut ti) = (0.0f32, 0.0f32);
        // m = p·q mod r, stepped.
        let mut m = 0;
        for q in 1..=h {
            m += p;
            if m >= r {
                m -= r;
            }
            let (c, s) = (tw[2 * m * rstride], tw[2 * m * rstride + 1]);
            let (lo, hi) = (2 * q, 2 * (r - q));
            cr += a[lo] * c;
            ci += a[lo + 1] * c;
            // i·d·s = (−d_i·s, d_r·s).
            tr -= a[hi + 1] * s;
            ti += a[hi] * s;
        }
        put(p, cr + tr, ci + ti);
        put(r - p, cr - tr, ci - ti);
    }
}

/// Splits the scratch into the frame (`2n` floats) and the twiddle table (`2n`).
fn split_scratch(n: usize, scratch: &mut [f32]) -> Result<(&mut [f32], &mut [f32])> {
    if scratch.len() < 4 * n {
        return Err(size_mismatch());
    }
    let (buf, rest) = scratch.split_at_mut(2 * n);
    Ok((buf, &mut rest[..2 * n]))
}

/// DFT (see [`Dft`] and the module doc).
#[inline(never)] // one body, not copied into eval (MCU flash)
pub fn dft(d: &Dft, x: &[f32], y: &mut [f32], scratch: &mut [f32]) -> Result<()> {
    let (outer, len, inner) = (d.outer as usize, d.len as usize, d.inner as usize);
    let (n, bins, c) = (d.n as usize, d.bins as usize, 1 + d.complex as usize);
    if n == 0 || x.len() != outer * len * inner * c || y.len() != outer * bins * inner * 2 {
        return Err(size_mismatch());
    }
    let (buf, tw) = split_scratch(n, scratch)?;
    twiddles(n, d.inverse, tw);
    let scale = if d.inverse { 1.0 / n as f32 } else { 1.0 };
    for o in 0..outer {
        for i in 0..inner {
            let load = |t: usize| {
                let at = ((o * len + t) * inner + i) * c;
                (x[at], if c == 2 { x[at + 1] } else { 0.0 })
            };
            transform(buf, tw, (n, len, bins), load, |k, re, im| {
                let at = ((o * bins + k) * inner + i) * 2;
                y[at] = re * scale;
                y[at + 1] = im * scale;
            });
        }
    }
    Ok(())
}

/// STFT (see [`Stft`] and the module doc).
#[inline(never)] // one body, not copied into eval (MCU flash)
pub fn stft(
    s: &Stft,
    x: &[f32],
    window: Option<&[f32]>,
    y: &mut [f32],
    scratch: &mut [f32],
) -> Result<()> {
    let (batch, len, c) = (s.batch as usize, s.len as usize, 1 + s.complex as usize);
    let (n, bins, frames) = (s.n as usize, s.bins as usize, s.frames as usize);
    let hop = s.step as usize;
    // Every frame must lie inside the signal (the planner makes frames = 1 + (len − n) / hop).
    let last_end = frames.checked_sub(1).map(|f| f * hop + n);
    if n == 0
        || last_end.is_none_or(|end| end > len)
        || x.len() != batch * len * c
        || y.len() != batch * frames * bins * 2
        || window.is_some_and(|w| w.len() != n)
        || window.is_some() != s.windowed
    {
        return Err(size_mismatch());
    }
    let (buf, tw) = split_scratch(n, scratch)?;
    twiddles(n, false, tw);
    for b in 0..batch {
        for f in 0..frames {
            let load = |t: usize| {
                let w = window.map_or(1.0, |w| w[t]);
                let at = (b * len + f * hop + t) * c;
                (x[at] * w, if c == 2 { x[at + 1] * w } else { 0.0 })
            };
            transform(buf, tw, (n, n, bins), load, |k, re, im| {
                let at = ((b * frames + f) * bins + k) * 2;
                y[at] = re;
                y[at + 1] = im;
            });
        }
    }
    Ok(())
}

/// A cosine-sum window of `y.len()` values (see [`WindowKind`]); a symmetric window of one
/// value is `[1]`, as PyTorch gives.
#[inline(never)] // one body, not copied into eval (MCU flash)
pub fn window(kind: WindowKind, periodic: bool, y: &mut [f32]) -> Result<()> {
    let size = y.len();
    let period = if periodic {
        size
    } else {
        size.saturating_sub(1)
    };
    let (a0, a1, a2) = match kind {
        WindowKind::Hann => (0.5, 0.5, 0.0),
        WindowKind::Hamming => (25.0 / 46.0, 21.0 / 46.0, 0.0),
        WindowKind::Blackman => (0.42, 0.5, 0.08),
    };
    if period == 0 {
        y.fill(1.0);
        return Ok(());
    }
    for (k, v) in y.iter_mut().enumerate() {
        let (c1, c2) = (cos_sin_turn(k, period).0, cos_sin_turn(2 * k, period).0);
        *v = a0 - a1 * c1 + a2 * c2;
    }
    Ok(())
}

/// MelWeightMatrix: `bins × mels` triangles (see [`MelWeights::edge`]); the planner has
/// checked that every band lies inside the spectrogram.
#[inline(never)] // one body, not copied into eval (MCU flash)
pub fn mel_weights(m: &MelWeights, y: &mut [f32]) -> Result<()> {
    let (bins, mels) = (m.bins(), m.mels as usize);
    if y.len() != bins * mels {
        return Err(size_mismatch());
    }
    y.fill(0.0);
    let mut set = |j: i64, i: usize, v: f32| -> Result<()> {
        let j = usize::try_from(j).map_err(|_| size_mismatch())?;
        *y.get_mut(j * mels + i).ok_or_else(size_mismatch)? = v;
        Ok(())
    };
    // Each edge once (band i spans edges i..=i+2): soft-float f64 on a Cortex-M4.
    let (mut lo, mut mid) = (m.edge(0), m.edge(1));
    for i in 0..mels {
        let hi = m.edge(i + 2);
        if mid == lo {
            set(mid, i, 1.0)?;
        } else {
            for j in lo..=mid {
                set(j, i, (j - lo) as f32 / (mid - lo) as f32)?;
            }
        }
        for j in mid..hi {
            set(j, i, (hi - j) as f32 / (hi - mid) as f32)?;
        }
        (lo, mid) = (mid, hi);
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::vec;
    use std::vec::Vec;

    /// The DFT in f64 by its definition (unscaled, as [`transform`] gives it).
    fn dft_f64(x: &[(f64, f64)], n: usize, inverse: bool) -> Vec<(f64, f64)> {
        let sign = if inverse { 1.0 } else { -1.0 };
        (0..n)
            .map(|k| {
                let mut acc = (0.0, 0.0);
                for (t, &(xr, xi)) in x.iter().take(n).enumerate() {
                    let a = sign * 2.0 * core::f64::consts::PI * ((k * t) % n) as f64 / n as f64;
                    acc.0 += xr * a.cos() - xi * a.sin();
                    acc.1 += xr * a.sin() + xi * a.cos();
                }
                acc
            })
            .collect()
    }

    fn seeded(len: usize, seed: u32) -> Vec<f32> {
        let mut s = seed.wrapping_mul(2654435761).max(1);
        (0..len)
            .map(|_| {
                s ^= s << 13;
                s ^= s >> 17;
                s ^= s << 5;
                (s % 2001) as f32 / 1000.0 - 1.0
            })
            .collect()
    }

    #[test]
    fn ffts_equal_the_direct_dft_within_f32_rounding() {
        // Radix 2; mixed radix with 4, 2, 3, 5, 7, 11, 13, 31 (400 = torchaudio's n_fft);
        // direct (37, 2·37: a prime above MAX_RADIX).
        let lengths = [
            2usize, 4, 8, 16, 64, 256, 512, 3, 6, 10, 12, 15, 30, 62, 100, 400,
        ];
        for n in lengths.into_iter().chain([1001, 3 * 31 * 4, 37, 74]) {
            let kind = match Method::of(n) {
                Method::Radix2 { .. } => 2,
                Method::Mixed { .. } => 1,
                Method::Direct => 0,
            };
            let want = if n.is_power_of_two() {
                2
            } else {
                (n % 37 != 0) as i32
            };
            assert_eq!(kind, want, "method of n={n}");
            let x = seeded(2 * n, n as u32);
            let mut tw = vec![0.0; 2 * n];
            for inverse in [false, true] {
                twiddles(n, inverse, &mut tw);
                let mut buf = vec![f32::NAN; 2 * n];
                let mut fft = vec![0.0f32; 2 * n];
                let load = |t: usize| (x[2 * t], x[2 * t + 1]);
                transform(&mut buf, &tw, (n, n, n), load, |k, re, im| {
                    fft[2 * k] = re;
                    fft[2 * k + 1] = im;
                });
                let exact = dft_f64(
                    &x.chunks(2)
                        .map(|c| (c[0] as f64, c[1] as f64))
                        .collect::<Vec<_>>(),
                    n,
                    inverse,
                );
                for k in 0..n {
                    let (re, im) = direct_bin(&x, &tw, n, k);
                    // Both within a few ulps of the sum's magnitude (√n·|x| here) of f64.
                    let tol = 1e-5 * (n as f32).sqrt() * 4.0;
                    for (got, want) in [(fft[2 * k], exact[k].0), (fft[2 * k + 1], exact[k].1)] {
                        assert!((got as f64 - want).abs() < tol as f64, "fft n={n} k={k}");
                    }
                    for (got, want) in [(re, exact[k].0), (im, exact[k].1)] {
                        assert!((got as f64 - want).abs() < tol as f64, "direct n={n} k={k}");
                    }
                }
            }
        }
    }

    #[test]
    fn turn_cosines_are_within_two_f32_roundings() {
        for n in [1usize, 2, 3, 7, 10, 400, 512, 4096, 44100] {
            for m in (0..3 * n).step_by((n / 97).max(1)) {
                let (c, s) = cos_sin_turn(m, n);
                let a = 2.0 * core::f64::consts::PI * (m % n) as f64 / n as f64;
                assert!((c as f64 - a.cos()).abs() < 1.2e-7, "cos n={n} m={m}");
                assert!((s as f64 - a.sin()).abs() < 1.2e-7, "sin n={n} m={m}");
            }
        }
    }

    #[test]
    fn dft_of_a_ramp_matches_hand_values() {
        // x = 0, 1, 2, 3 (real): X = 6, −2+2i, −2, −2−2i.
        let d = Dft {
            outer: 1,
            len: 4,
            inner: 1,
            complex: false,
            n: 4,
            bins: 4,
            inverse: false,
        };
        let mut y = [0.0; 8];
        let mut scratch = [0.0; 16];
        dft(&d, &[0.0, 1.0, 2.0, 3.0], &mut y, &mut scratch).unwrap();
        let want = [6.0, 0.0, -2.0, 2.0, -2.0, 0.0, -2.0, -2.0];
        for (a, b) in y.iter().zip(want) {
            assert!((a - b).abs() < 1e-6, "{y:?}");
        }
        // Length 3 (direct path), padded to 3 from 2 samples [1, 1]: X = 2, 1 − … e^(−2πi/3).
        let d3 = Dft {
            len: 2,
            n: 3,
            bins: 2,
            ..d
        };
        let mut y3 = [0.0; 4];
        dft(&d3, &[1.0, 1.0], &mut y3, &mut [0.0; 12]).unwrap();
        let (c, s) = (0.5f32, 3f32.sqrt() / 2.0); // 1 + e^(−2πi/3) = 0.5 − 0.866i
        for (a, b) in y3.iter().zip([2.0, 0.0, c, -s]) {
            assert!((a - b).abs() < 1e-6, "{y3:?}");
        }
    }

    #[test]
    fn inverse_undoes_forward() {
        for n in [6usize, 8] {
            let x = seeded(2 * n, 7);
            let fwd = Dft {
                outer: 1,
                len: n as u32,
                inner: 1,
                complex: true,
                n: n as u32,
                bins: n as u32,
                inverse: false,
            };
            let mut spec = vec![0.0; 2 * n];
            let mut scratch = vec![0.0; 4 * n];
            dft(&fwd, &x, &mut spec, &mut scratch).unwrap();
            let mut back = vec![0.0; 2 * n];
            let inv = Dft {
                inverse: true,
                ..fwd
            };
            dft(&inv, &spec, &mut back, &mut scratch).unwrap();
            for (a, b) in back.iter().zip(&x) {
                assert!((a - b).abs() < 1e-5, "n={n}");
            }
        }
    }

    #[test]
    fn stft_frames_are_windowed_transforms() {
        // Signal 0..8, frames of 4 with hop 2 (3 frames), window [0, 1, 1, 0]: each frame's
        // DFT of (0, x1, x2, 0); bin 0 is x1 + x2.
        let s = Stft {
            batch: 1,
            len: 8,
            complex: false,
            step: 2,
            n: 4,
            frames: 3,
            bins: 3,
            windowed: true,
        };
        let x: Vec<f32> = (0..8).map(|v| v as f32).collect();
        let mut y = vec![0.0; 3 * 3 * 2];
        let mut scratch = vec![0.0; 16];
        stft(&s, &x, Some(&[0.0, 1.0, 1.0, 0.0]), &mut y, &mut scratch).unwrap();
        for f in 0..3 {
            let (x1, x2) = ((2 * f + 1) as f32, (2 * f + 2) as f32);
            // X[1] = x1·(−i) + x2·(−1); X[2] = −x1 + x2.
            let want = [x1 + x2, 0.0, -x2, -x1, x2 - x1, 0.0];
            for (a, b) in y[f * 6..f * 6 + 6].iter().zip(want) {
                assert!((a - b).abs() < 1e-5, "frame {f}: {y:?}");
            }
        }
    }

    #[test]
    fn windows_match_their_formulas() {
        let mut y = [0.0; 4];
        window(WindowKind::Hann, true, &mut y).unwrap();
        for (a, b) in y.iter().zip([0.0, 0.5, 1.0, 0.5]) {
            assert!((a - b).abs() < 1e-6, "{y:?}");
        }
        let mut y = [0.0; 3];
        window(WindowKind::Hamming, false, &mut y).unwrap();
        for (a, b) in y.iter().zip([2.0 / 23.0, 1.0, 2.0 / 23.0]) {
            assert!((a - b).abs() < 1e-6, "{y:?}");
        }
        window(WindowKind::Blackman, false, &mut y).unwrap();
        for (a, b) in y.iter().zip([0.0, 1.0, 0.0]) {
            assert!((a - b).abs() < 1e-6, "{y:?}");
        }
        let mut one = [0.0; 1];
        window(WindowKind::Hann, false, &mut one).unwrap();
        assert_eq!(one, [1.0]);
    }

    #[test]
    fn mel_triangles_follow_the_reference_edges() {
        // ONNX's node test: 8 bands, DFT 16, 8192 Hz, 0..4096 Hz. Edges and matrix from ONNX's
        // reference (onnx/reference/ops/op_mel_weight_matrix.py, numpy).
        let m = MelWeights {
            mels: 8,
            dft: 16,
            rate: 8192,
            lower_hz: 0.0,
            upper_hz: 4096.0,
        };
        let edges: Vec<i64> = (0..10).map(|k| m.edge(k)).collect();
        assert_eq!(edges, [0, 0, 0, 1, 1, 2, 3, 4, 5, 6]);
        let mut y = vec![0.0; 9 * 8];
        mel_weights(&m, &mut y).unwrap();
        let mut want = vec![0.0; 9 * 8];
        for (row, col) in [
            (0, 0),
            (0, 1),
            (1, 2),
            (1, 3),
            (2, 4),
            (3, 5),
            (4, 6),
            (5, 7),
        ] {
            want[row * 8 + col] = 1.0;
        }
        assert_eq!(y, want);
        // Wider bands: DFT 64 over 0..4000 Hz at 8000 Hz, 4 bands: each rises to 1 at its
        // centre and falls to 0 at its right edge.
        let m = MelWeights {
            mels: 4,
            dft: 64,
            rate: 8000,
            lower_hz: 0.0,
            upper_hz: 4000.0,
        };
        let mut y = vec![0.0; 33 * 4];
        mel_weights(&m, &mut y).unwrap();
        for i in 0..4 {
            let (lo, mid, hi) = (m.edge(i), m.edge(i + 1), m.edge(i + 2));
            assert!(lo < mid && mid < hi, "band {i}: {lo} {mid} {hi}");
            assert_eq!(y[mid as usize * 4 + i], 1.0);
            assert_eq!(y[lo as usize * 4 + i], 0.0);
            let half = (lo + mid) / 2;
            let want = (half - lo) as f32 / (mid - lo) as f32;
            assert_eq!(y[half as usize * 4 + i], want);
        }
    }
}

//! `GridSample` on float32 images (N×C×H×W, the 2-D form of opsets 16 and 20): every output
//! pixel reads the input at the normalized position the grid gives it (`[-1, 1]` across the
//! image, x then y), as spatial transformers, optical-flow warps and BEV projections export
//! `F.grid_sample`.
//!
//! Modes `bilinear`/`linear`, `nearest` (half to even, as PyTorch) and `bicubic`/`cubic` (Keys,
//! A = −0.75); padding `zeros`, `border` (clamp) and `reflection` (mirror at the image edges,
//! or at the outer pixel centres with `align_corners`). Positions follow ONNX's reference
//! implementation step by step: denormalize, pull an out-of-image position back by the padding
//! rule, then interpolate rows first with each tap read under the same rule. Grid values are
//! run-time data: NaN or huge positions read clamped pixels instead of out of bounds.

// The step type is part of every build (the step table names it); the kernel runs only with
// extra-ops.
#![cfg_attr(not(feature = "extra-ops"), allow(dead_code, unused_imports))]

use crate::error::Result;
use crate::onnx::Node;
use crate::ops::{input, shape_err, unsupported, Op, Prep, MAX_STEP_INPUTS};
use crate::prepare::only_attrs;
use crate::tensor::{DType, Shape};

/// How a position between pixels is read.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Interp {
    /// The nearest pixel (half to even).
    Nearest,
    /// Bilinear: 2×2 taps.
    Linear,
    /// Bicubic: 4×4 taps.
    Cubic,
}

/// What a tap outside the image reads.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Padding {
    /// Zero.
    Zeros,
    /// The nearest edge pixel.
    Border,
    /// The image mirrored at its edges.
    Reflection,
}

/// One GridSample step.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct GridSample {
    /// Batch.
    pub n: usize,
    /// Channels.
    pub c: usize,
    /// Input height and width.
    pub h: usize,
    /// Input width.
    pub w: usize,
    /// Output height.
    pub ho: usize,
    /// Output width.
    pub wo: usize,
    /// Interpolation.
    pub mode: Interp,
    /// Out-of-image taps.
    pub padding: Padding,
    /// `-1` and `1` are the centres of the corner pixels (else their outer edges).
    pub align_corners: bool,
}

/// Plans a `GridSample` node (one step, float32, 4-D).
#[inline(never)] // keeps its locals out of prepare_node's frame (MCU stacks)
pub(crate) fn prepare_grid_sample<const T: usize, const N: usize>(
    p: &Prep<'_, '_, T, N>,
    node: &Node<'_>,
    ins: &mut heapless::Vec<u16, MAX_STEP_INPUTS>,
    out_name: &str,
) -> Result<(Op, DType, Shape)> {
    only_attrs(node, &["align_corners", "mode", "padding_mode"])?;
    let (x, t) = input(p.g, node, 0)?;
    let (gi, tg) = input(p.g, node, 1)?;
    let _ = ins.push(x);
    let _ = ins.push(gi);
    if t.dtype != DType::F32 || tg.dtype != DType::F32 {
        return Err(unsupported(node, "element type (this op runs on float32)"));
    }
    if t.shape.rank() != 4 {
        return Err(unsupported(node, "input rank (GridSample runs on N×C×H×W)"));
    }
    let (s, g) = (t.shape, tg.shape);
    if g.rank() != 4 || g.dim(0) != s.dim(0) || g.dim(3) != 2 {
        return Err(shape_err(node, "grid must be N×H_out×W_out×2"));
    }
    let mode = match node.attr_s("mode")? {
        None if p.g.opset >= 20 => Interp::Linear,
        None | Some(b"bilinear") | Some(b"linear") => Interp::Linear,
        Some(b"nearest") => Interp::Nearest,
        Some(b"bicubic") | Some(b"cubic") => Interp::Cubic,
        Some(_) => return Err(unsupported(node, "mode")),
    };
    let padding = match node.attr_s("padding_mode")? {
        None | Some(b"zeros") => Padding::Zeros,
        Some(b"border") => Padding::Border,
        Some(b"reflection") => Padding::Reflection,
        Some(_) => return Err(unsupported(node, "padding_mode")),
    };
    let op = Op::GridSample(GridSample {
        n: s.dim(0),
        c: s.dim(1),
        h: s.dim(2),
        w: s.dim(3),
        ho: g.dim(1),
        wo: g.dim(2),
        mode,
        padding,
        align_corners: node.attr_i("align_corners", 0)? != 0,
    });
    let out = [s.dim(0), s.dim(1), g.dim(1), g.dim(2)].map(|d| d as i64);
    Ok((op, DType::F32, Shape::new(&out, out_name)?))
}

/// Mirrors `x` into `[lo, hi]` (ONNX's `_gs_reflect`: fold by the nearer edge as often as it
/// takes).
fn reflect(x: f32, lo: f32, hi: f32) -> f32 {
    let range = hi - lo;
    let (d, from, to) = if x < lo {
        (lo - x, lo, hi)
    } else if x > hi {
        (x - hi, hi, lo)
    } else {
        return x;
    };
    let n = (d / range) as i64;
    let r = d - n as f32 * range;
    // An even number of folds leaves the distance measured from the edge crossed.
    let toward = |edge: f32, other: f32| if edge < other { edge + r } else { edge - r };
    if n % 2 == 0 {
        toward(from, to)
    } else {
        toward(to, from)
    }
}

/// One axis of the image: its length and the padding rule's limits.
#[derive(Clone, Copy)]
struct Axis {
    len: usize,
    lo: f32,
    hi: f32,
}

impl Axis {
    fn new(len: usize, align_corners: bool) -> Axis {
        let (lo, hi) = if align_corners {
            (0.0, len as f32 - 1.0)
        } else {
            (-0.5, len as f32 - 0.5)
        };
        Axis { len, lo, hi }
    }

    /// The continuous position of normalized coordinate `g`, pulled into the image by the
    /// padding rule when it falls outside (ONNX's order: denormalize, round for nearest,
    /// then pad).
    fn position(&self, g: f32, align_corners: bool, nearest: bool, padding: Padding) -> f32 {
        let d = self.len as f32;
        let mut x = if align_corners {
            (g + 1.0) / 2.0 * (d - 1.0)
        } else {
            ((g + 1.0) * d - 1.0) / 2.0
        };
        if nearest {
            x = libm::rintf(x);
        }
        if x < self.lo || x > self.hi {
            x = match padding {
                Padding::Zeros => x,
                Padding::Border => x.max(0.0).min(d - 1.0),
                Padding::Reflection => reflect(x, self.lo, self.hi),
            };
        }
        // NaN and positions far outside (run-time data) stay finite and small.
        x.max(-4.0 * d - 8.0).min(4.0 * d + 8.0)
    }

    /// The pixel index tap `i` reads, or None for a zero.
    fn tap(&self, i: i64, padding: Padding) -> Option<usize> {
        let last = self.len as i64 - 1;
        let i = match padding {
            Padding::Zeros => return (0..=last).contains(&i).then_some(i as usize),
            Padding::Border => i,
            Padding::Reflection => reflect(i as f32, self.lo, self.hi) as i64,
        };
        (last >= 0).then(|| i.clamp(0, last) as usize)
    }
}

/// Keys' cubic convolution weights (A = −0.75) for the four taps around fraction `t`.
fn cubic_weights(t: f32) -> [f32; 4] {
    const A: f32 = -0.75;
    let near = |x: f32| ((A + 2.0) * x - (A + 3.0)) * x * x + 1.0;
    let far = |x: f32| ((A * x - 5.0 * A) * x + 8.0 * A) * x - 4.0 * A;
    [far(t + 1.0), near(t), near(1.0 - t), far(2.0 - t)]
}

/// Taps (first index, weights) along one axis for a position.
fn taps(x: f32, mode: Interp) -> (i64, [f32; 4], usize) {
    let x0 = libm::floorf(x);
    let t = x - x0;
    match mode {
        Interp::Nearest => (x as i64, [1.0, 0.0, 0.0, 0.0], 1),
        Interp::Linear => (x0 as i64, [1.0 - t, t, 0.0, 0.0], 2),
        Interp::Cubic => (x0 as i64 - 1, cubic_weights(t), 4),
    }
}

/// GridSample (see the module doc): `x` is N×C×H×W, `grid` N×H_out×W_out×2, `y` N×C×H_out×W_out.
#[inline(never)] // one body, not copied into eval (MCU flash)
pub fn grid_sample(s: &GridSample, x: &[f32], grid: &[f32], y: &mut [f32]) -> Result<()> {
    let (plane, out_plane) = (s.h * s.w, s.ho * s.wo);
    if x.len() != s.n * s.c * plane
        || grid.len() != s.n * out_plane * 2
        || y.len() != s.n * s.c * out_plane
    {
        return Err(crate::kernels::size_mismatch());
    }
    let (ax, ay) = (
        Axis::new(s.w, s.align_corners),
        Axis::new(s.h, s.align_corners),
    );
    let nearest = s.mode == Interp::Nearest;
    for n in 0..s.n {
        for o in 0..out_plane {
            let g = &grid[(n * out_plane + o) * 2..][..2];
            let px = ax.position(g[0], s.align_corners, nearest, s.padding);
            let py = ay.position(g[1], s.align_corners, nearest, s.padding);
            let (x0, wx, kx) = taps(px, s.mode);
            let (y0, wy, ky) = taps(py, s.mode);
            let cols: [Option<usize>; 4] =
                core::array::from_fn(|j| ax.tap(x0 + j as i64, s.padding));
            let rows: [Option<usize>; 4] =
                core::array::from_fn(|j| ay.tap(y0 + j as i64, s.padding));
            for c in 0..s.c {
                let img = &x[(n * s.c + c) * plane..][..plane];
                let mut v = 0.0f32;
                for (row, wr) in rows[..ky].iter().zip(&wy[..ky]) {
                    // Rows first, as ONNX's reference interpolates.
                    let mut r = 0.0f32;
                    if let Some(row) = row {
                        for (col, wc) in cols[..kx].iter().zip(&wx[..kx]) {
                            if let Some(col) = col {
                                r += wc * img[row * s.w + col];
                            }
                        }
                    }
                    v += wr * r;
                }
                y[(n * s.c + c) * out_plane + o] = v;
            }
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn gs(mode: Interp, padding: Padding, align_corners: bool) -> GridSample {
        GridSample {
            n: 1,
            c: 1,
            h: 2,
            w: 2,
            ho: 1,
            wo: 3,
            mode,
            padding,
            align_corners,
        }
    }

    #[test]
    fn corners_centre_and_outside() {
        let x = [1.0f32, 2.0, 3.0, 4.0];
        // (-1,-1), (0,0) and (1.5, 0): with align_corners the corners are pixel centres.
        let grid = [-1.0f32, -1.0, 0.0, 0.0, 1.5, 0.0];
        let mut y = [0.0f32; 3];
        grid_sample(&gs(Interp::Linear, Padding::Zeros, true), &x, &grid, &mut y).unwrap();
        // x = 1.5 → position 1.25: a quarter of a zero column beside column 1.
        assert_eq!(y, [1.0, 2.5, 2.25]);
        grid_sample(
            &gs(Interp::Linear, Padding::Border, true),
            &x,
            &grid,
            &mut y,
        )
        .unwrap();
        assert_eq!(y, [1.0, 2.5, 3.0]);
        // Without align_corners -1 is the outer edge: position -0.5, half a zero row/column.
        grid_sample(
            &gs(Interp::Linear, Padding::Zeros, false),
            &x,
            &grid,
            &mut y,
        )
        .unwrap();
        assert_eq!(y[0], 0.25);
        grid_sample(
            &gs(Interp::Nearest, Padding::Zeros, true),
            &x,
            &grid,
            &mut y,
        )
        .unwrap();
        // Centre 0.5 rounds half to even: pixel (0, 0).
        assert_eq!(y[..2], [1.0, 1.0]);
        // Garbage positions read clamped pixels, never out of bounds.
        let bad = [f32::NAN, f32::INFINITY, -1e30, 3e38, 0.0, f32::NEG_INFINITY];
        for m in [Interp::Nearest, Interp::Linear, Interp::Cubic] {
            for p in [Padding::Zeros, Padding::Border, Padding::Reflection] {
                grid_sample(&gs(m, p, false), &x, &bad, &mut y).unwrap();
            }
        }
    }

    #[test]
    fn reflection_and_cubic_weights() {
        assert_eq!(reflect(-0.75, -0.5, 1.5), -0.25);
        assert_eq!(reflect(2.0, -0.5, 1.5), 1.0);
        assert_eq!(reflect(4.0, -0.5, 1.5), -0.5 + 0.5);
        let w = cubic_weights(0.0);
        assert_eq!(w, [0.0, 1.0, 0.0, 0.0]);
        let s: f32 = cubic_weights(0.3).iter().sum();
        assert!((s - 1.0).abs() < 1e-6);
    }
}

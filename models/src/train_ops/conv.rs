//! 2-D convolution (NCHW input, OIHW weights, zero padding, stride, groups) with its two
//! gradients, each an im2col + packed matrix product per image and group; images are spread
//! over candle's worker threads. A 1×1 stride-1 convolution skips im2col (the image is its own
//! column matrix).

use super::{f32_slice, par_chunks_mut, par_ranges, threads};
use candle_core::{bail, CpuStorage, CustomOp2, CustomOp3, Layout, Result, Shape, Tensor};
use std::cell::RefCell;

/// Shapes of one convolution.
#[derive(Debug, Clone, Copy)]
struct Geom {
    n: usize,
    c: usize,
    h: usize,
    w: usize,
    oc: usize,
    kh: usize,
    kw: usize,
    pad: usize,
    stride: usize,
    groups: usize,
    oh: usize,
    ow: usize,
}

impl Geom {
    fn new(x: &[usize], wt: &[usize], pad: usize, stride: usize, groups: usize) -> Result<Self> {
        let ([n, c, h, w], [oc, cg, kh, kw]) = (x, wt) else {
            bail!("sprig conv2d: expected 4-D input and weight, got {x:?} and {wt:?}")
        };
        let (n, c, h, w, oc, cg, kh, kw) = (*n, *c, *h, *w, *oc, *cg, *kh, *kw);
        if groups == 0 || stride == 0 || c % groups != 0 || oc % groups != 0 || cg != c / groups {
            bail!("sprig conv2d: input {x:?}, weight {wt:?}, groups {groups}, stride {stride} do not fit")
        }
        if h + 2 * pad < kh || w + 2 * pad < kw {
            bail!("sprig conv2d: kernel {kh}x{kw} larger than the padded input {h}x{w} (pad {pad})")
        }
        Ok(Geom {
            n,
            c,
            h,
            w,
            oc,
            kh,
            kw,
            pad,
            stride,
            groups,
            oh: (h + 2 * pad - kh) / stride + 1,
            ow: (w + 2 * pad - kw) / stride + 1,
        })
    }
    /// Input channels per group.
    fn cg(&self) -> usize {
        self.c / self.groups
    }
    /// Output channels per group.
    fn og(&self) -> usize {
        self.oc / self.groups
    }
    /// Rows of the column matrix (= weights per output channel).
    fn kdim(&self) -> usize {
        self.cg() * self.kh * self.kw
    }
    fn npix(&self) -> usize {
        self.oh * self.ow
    }
    /// 1×1, stride 1, no padding: the input already is the column matrix.
    fn pointwise(&self) -> bool {
        self.kh == 1 && self.kw == 1 && self.pad == 0 && self.stride == 1
    }
    fn col_len(&self) -> usize {
        if self.pointwise() {
            0
        } else {
            self.kdim() * self.npix()
        }
    }
    /// The output columns `lo..hi` of kernel column `kx` that read inside the input row.
    fn valid_cols(&self, kx: usize) -> (usize, usize) {
        let (pad, s, ow) = (self.pad, self.stride, self.ow);
        let lo = if pad > kx { (pad - kx).div_ceil(s) } else { 0 }.min(ow);
        let hi = if self.w + pad > kx {
            ((self.w - 1 + pad - kx) / s + 1).min(ow)
        } else {
            0
        };
        (lo, hi.max(lo))
    }
}

/// Column matrix of one image group: row `(ci, ky, kx)`, column `(oy, ox)`.
fn im2col(g: &Geom, x: &[f32], col: &mut [f32]) {
    let (hw, npix, ow) = (g.h * g.w, g.npix(), g.ow);
    for ci in 0..g.cg() {
        let xc = &x[ci * hw..(ci + 1) * hw];
        for ky in 0..g.kh {
            for kx in 0..g.kw {
                let row = ((ci * g.kh + ky) * g.kw + kx) * npix;
                let row = &mut col[row..row + npix];
                let (lo, hi) = g.valid_cols(kx);
                for oy in 0..g.oh {
                    let dst = &mut row[oy * ow..(oy + 1) * ow];
                    let iy = (oy * g.stride + ky) as isize - g.pad as isize;
                    if iy < 0 || iy >= g.h as isize {
                        dst.fill(0.0);
                        continue;
                    }
                    let src = &xc[iy as usize * g.w..(iy as usize + 1) * g.w];
                    dst[..lo].fill(0.0);
                    dst[hi..].fill(0.0);
                    if g.stride == 1 {
                        let s0 = lo + kx - g.pad;
                        dst[lo..hi].copy_from_slice(&src[s0..s0 + hi - lo]);
                    } else {
                        for (ox, d) in dst.iter_mut().enumerate().take(hi).skip(lo) {
                            *d = src[ox * g.stride + kx - g.pad];
                        }
                    }
                }
            }
        }
    }
}

/// The adjoint of [`im2col`]: adds each column-matrix entry back onto the input pixel it came
/// from.
fn col2im(g: &Geom, col: &[f32], x: &mut [f32]) {
    let (hw, npix, ow) = (g.h * g.w, g.npix(), g.ow);
    for ci in 0..g.cg() {
        let xc = &mut x[ci * hw..(ci + 1) * hw];
        for ky in 0..g.kh {
            for kx in 0..g.kw {
                let row = ((ci * g.kh + ky) * g.kw + kx) * npix;
                let row = &col[row..row + npix];
                let (lo, hi) = g.valid_cols(kx);
                for oy in 0..g.oh {
                    let iy = (oy * g.stride + ky) as isize - g.pad as isize;
                    if iy < 0 || iy >= g.h as isize {
                        continue;
                    }
                    let src = &row[oy * ow..(oy + 1) * ow];
                    let dst = &mut xc[iy as usize * g.w..(iy as usize + 1) * g.w];
                    if g.stride == 1 {
                        let d0 = lo + kx - g.pad;
                        for (d, s) in dst[d0..d0 + hi - lo].iter_mut().zip(&src[lo..hi]) {
                            *d += s;
                        }
                    } else {
                        for (ox, s) in src.iter().enumerate().take(hi).skip(lo) {
                            dst[ox * g.stride + kx - g.pad] += s;
                        }
                    }
                }
            }
        }
    }
}

/// A strided view of a matrix: element (i, j) at `data[i·rs + j·cs]`.
#[derive(Clone, Copy)]
struct Mat<'a> {
    data: &'a [f32],
    rs: usize,
    cs: usize,
}

/// `dst (m×n, row stride dst_rs) = [dst +] a (m×k) · b (k×n)` through the `gemm` crate on the
/// calling thread.
#[allow(clippy::too_many_arguments)] // the plain shape of a strided product
fn matmul(m: usize, n: usize, k: usize, dst: &mut [f32], dst_rs: usize, acc: bool, a: Mat, b: Mat) {
    if m == 0 || n == 0 {
        return;
    }
    if k == 0 {
        if !acc {
            (0..m).for_each(|i| dst[i * dst_rs..i * dst_rs + n].fill(0.0));
        }
        return;
    }
    // The raw-pointer product below reads and writes exactly these extents.
    assert!(
        (m - 1) * dst_rs + n <= dst.len(),
        "matmul: destination too short"
    );
    assert!(
        (m - 1) * a.rs + (k - 1) * a.cs < a.data.len(),
        "matmul: lhs too short"
    );
    assert!(
        (k - 1) * b.rs + (n - 1) * b.cs < b.data.len(),
        "matmul: rhs too short"
    );
    // SAFETY: the asserts above bound every index gemm touches; dst does not alias a or b
    // (it is a distinct &mut).
    unsafe {
        gemm::gemm(
            m,
            n,
            k,
            dst.as_mut_ptr(),
            1,
            dst_rs as isize,
            acc,
            a.data.as_ptr(),
            a.cs as isize,
            a.rs as isize,
            b.data.as_ptr(),
            b.cs as isize,
            b.rs as isize,
            1.0,
            1.0,
            false,
            false,
            false,
            gemm::Parallelism::None,
        )
    }
}

thread_local! {
    /// Each worker's column-matrix buffer, kept between calls.
    static SCRATCH: RefCell<Vec<f32>> = const { RefCell::new(Vec::new()) };
}

/// Runs `f` with this thread's scratch buffer of `len` floats (contents unspecified).
fn with_scratch<R>(len: usize, f: impl FnOnce(&mut [f32]) -> R) -> R {
    SCRATCH.with(|s| {
        let mut s = s.borrow_mut();
        if s.len() < len {
            s.resize(len, 0.0);
        }
        f(&mut s[..len])
    })
}

/// out[n] = W · col(x[n]) (+ bias) for every image and group.
fn forward(g: &Geom, x: &[f32], wt: &[f32], bias: Option<&[f32]>) -> Vec<f32> {
    let (og, kdim, npix, chw) = (g.og(), g.kdim(), g.npix(), g.c * g.h * g.w);
    let mut out = vec![0f32; g.n * g.oc * npix];
    par_chunks_mut(&mut out, g.oc * npix, |i, o| {
        // The bias goes in first and the product adds onto it: no separate pass.
        if let Some(b) = bias {
            for (row, &v) in o.chunks_mut(npix).zip(b) {
                row.fill(v);
            }
        }
        with_scratch(g.col_len(), |col| {
            for gi in 0..g.groups {
                let xg = &x[i * chw + gi * g.cg() * g.h * g.w..][..g.cg() * g.h * g.w];
                let b = if g.pointwise() {
                    xg
                } else {
                    im2col(g, xg, col);
                    &col[..]
                };
                let w = Mat {
                    data: &wt[gi * og * kdim..(gi + 1) * og * kdim],
                    rs: kdim,
                    cs: 1,
                };
                let b = Mat {
                    data: b,
                    rs: npix,
                    cs: 1,
                };
                let acc = bias.is_some();
                matmul(og, npix, kdim, &mut o[gi * og * npix..], npix, acc, w, b);
            }
        })
    });
    out
}

/// dL/dx[n] = col2im(Wᵀ · dL/dout[n]).
fn grad_input(g: &Geom, gout: &[f32], wt: &[f32]) -> Vec<f32> {
    let (og, kdim, npix, chw) = (g.og(), g.kdim(), g.npix(), g.c * g.h * g.w);
    let ghw = g.cg() * g.h * g.w;
    let mut gx = vec![0f32; g.n * chw];
    par_chunks_mut(&mut gx, chw, |i, gxi| {
        with_scratch(g.col_len(), |col| {
            for gi in 0..g.groups {
                let wt_t = Mat {
                    data: &wt[gi * og * kdim..(gi + 1) * og * kdim],
                    rs: 1,
                    cs: kdim,
                };
                let go = Mat {
                    data: &gout[(i * g.oc + gi * og) * npix..][..og * npix],
                    rs: npix,
                    cs: 1,
                };
                let dst = &mut gxi[gi * ghw..(gi + 1) * ghw];
                if g.pointwise() {
                    matmul(kdim, npix, og, dst, npix, false, wt_t, go);
                } else {
                    matmul(kdim, npix, og, col, npix, false, wt_t, go);
                    col2im(g, col, dst);
                }
            }
        })
    });
    gx
}

/// dL/dW = Σₙ dL/dout[n] · col(x[n])ᵀ, then (with `bias`) dL/db = Σ dL/dout over images and
/// pixels, in one vector; partial sums per thread.
fn grad_weight(g: &Geom, x: &[f32], gout: &[f32], bias: bool) -> Vec<f32> {
    let (og, kdim, npix, chw) = (g.og(), g.kdim(), g.npix(), g.c * g.h * g.w);
    let len = g.oc * kdim + if bias { g.oc } else { 0 };
    let partials = par_ranges(g.n, threads(), |images| {
        let mut gw = vec![0f32; len];
        with_scratch(g.col_len(), |col| {
            for i in images {
                if bias {
                    let go = &gout[i * g.oc * npix..(i + 1) * g.oc * npix];
                    for (gb, row) in gw[g.oc * kdim..].iter_mut().zip(go.chunks(npix)) {
                        *gb += row.iter().sum::<f32>();
                    }
                }
                for gi in 0..g.groups {
                    let xg = &x[i * chw + gi * g.cg() * g.h * g.w..][..g.cg() * g.h * g.w];
                    let b = if g.pointwise() {
                        xg
                    } else {
                        im2col(g, xg, col);
                        &col[..]
                    };
                    let go = Mat {
                        data: &gout[(i * g.oc + gi * og) * npix..][..og * npix],
                        rs: npix,
                        cs: 1,
                    };
                    let col_t = Mat {
                        data: b,
                        rs: 1,
                        cs: npix,
                    };
                    matmul(
                        og,
                        kdim,
                        npix,
                        &mut gw[gi * og * kdim..],
                        kdim,
                        true,
                        go,
                        col_t,
                    );
                }
            }
        });
        gw
    });
    let mut sum = vec![0f32; len];
    for p in &partials {
        sum.iter_mut().zip(p).for_each(|(s, v)| *s += v);
    }
    sum
}

/// Padding, stride and groups of one convolution.
#[derive(Debug, Clone, Copy)]
struct Conv2d {
    pad: usize,
    stride: usize,
    groups: usize,
}

/// The same convolution with a per-output-channel bias as its third argument.
struct Conv2dBias(Conv2d);

/// dL/dx from (dL/dout, W).
struct Conv2dGradInput(Geom);

/// dL/dW (and dL/db when `.1`) from (x, dL/dout).
struct Conv2dGradWeight(Geom, bool);

impl Conv2d {
    fn geom(&self, x: &[usize], w: &[usize]) -> Result<Geom> {
        Geom::new(x, w, self.pad, self.stride, self.groups)
    }

    /// Gradients for the arguments that need one.
    fn backward(
        &self,
        x: &Tensor,
        w: &Tensor,
        b: Option<&Tensor>,
        grad: &Tensor,
    ) -> Result<(Option<Tensor>, Option<Tensor>, Option<Tensor>)> {
        let g = self.geom(x.dims(), w.dims())?;
        let grad = grad.contiguous()?;
        let gx = if x.track_op() {
            Some(grad.apply_op2_no_bwd(w, &Conv2dGradInput(g))?)
        } else {
            None
        };
        let with_bias = b.is_some_and(Tensor::track_op);
        if !w.track_op() && !with_bias {
            return Ok((gx, None, None));
        }
        let packed = x.apply_op2_no_bwd(&grad, &Conv2dGradWeight(g, with_bias))?;
        let nw = w.elem_count();
        let gw = packed.narrow(0, 0, nw)?.reshape(w.shape())?;
        let gb = if with_bias {
            Some(packed.narrow(0, nw, g.oc)?)
        } else {
            None
        };
        Ok((gx, w.track_op().then_some(gw), gb))
    }

    fn cpu_fwd(
        &self,
        name: &str,
        x: (&CpuStorage, &Layout),
        w: (&CpuStorage, &Layout),
        b: Option<(&CpuStorage, &Layout)>,
    ) -> Result<(CpuStorage, Shape)> {
        let g = self.geom(x.1.dims(), w.1.dims())?;
        let bias = match b {
            Some((s, l)) => {
                let b = f32_slice(name, s, l)?;
                if b.len() != g.oc {
                    bail!("{name}: {} output channels but {} biases", g.oc, b.len())
                }
                Some(b)
            }
            None => None,
        };
        let out = forward(
            &g,
            f32_slice(name, x.0, x.1)?,
            f32_slice(name, w.0, w.1)?,
            bias,
        );
        Ok((CpuStorage::F32(out), Shape::from((g.n, g.oc, g.oh, g.ow))))
    }
}

impl CustomOp2 for Conv2d {
    fn name(&self) -> &'static str {
        "sprig-conv2d"
    }
    fn cpu_fwd(
        &self,
        s1: &CpuStorage,
        l1: &Layout,
        s2: &CpuStorage,
        l2: &Layout,
    ) -> Result<(CpuStorage, Shape)> {
        Conv2d::cpu_fwd(self, self.name(), (s1, l1), (s2, l2), None)
    }
    fn bwd(
        &self,
        x: &Tensor,
        w: &Tensor,
        _res: &Tensor,
        grad: &Tensor,
    ) -> Result<(Option<Tensor>, Option<Tensor>)> {
        let (gx, gw, _) = self.backward(x, w, None, grad)?;
        Ok((gx, gw))
    }
}

impl CustomOp3 for Conv2dBias {
    fn name(&self) -> &'static str {
        "sprig-conv2d-bias"
    }
    fn cpu_fwd(
        &self,
        s1: &CpuStorage,
        l1: &Layout,
        s2: &CpuStorage,
        l2: &Layout,
        s3: &CpuStorage,
        l3: &Layout,
    ) -> Result<(CpuStorage, Shape)> {
        self.0
            .cpu_fwd(self.name(), (s1, l1), (s2, l2), Some((s3, l3)))
    }
    fn bwd(
        &self,
        x: &Tensor,
        w: &Tensor,
        b: &Tensor,
        _res: &Tensor,
        grad: &Tensor,
    ) -> Result<(Option<Tensor>, Option<Tensor>, Option<Tensor>)> {
        self.0.backward(x, w, Some(b), grad)
    }
}

impl CustomOp2 for Conv2dGradInput {
    fn name(&self) -> &'static str {
        "sprig-conv2d-grad-input"
    }
    fn cpu_fwd(
        &self,
        s1: &CpuStorage,
        l1: &Layout,
        s2: &CpuStorage,
        l2: &Layout,
    ) -> Result<(CpuStorage, Shape)> {
        let g = &self.0;
        let gx = grad_input(
            g,
            f32_slice(self.name(), s1, l1)?,
            f32_slice(self.name(), s2, l2)?,
        );
        Ok((CpuStorage::F32(gx), Shape::from((g.n, g.c, g.h, g.w))))
    }
}

impl CustomOp2 for Conv2dGradWeight {
    fn name(&self) -> &'static str {
        "sprig-conv2d-grad-weight"
    }
    fn cpu_fwd(
        &self,
        s1: &CpuStorage,
        l1: &Layout,
        s2: &CpuStorage,
        l2: &Layout,
    ) -> Result<(CpuStorage, Shape)> {
        let gw = grad_weight(
            &self.0,
            f32_slice(self.name(), s1, l1)?,
            f32_slice(self.name(), s2, l2)?,
            self.1,
        );
        let len = gw.len();
        Ok((CpuStorage::F32(gw), Shape::from(len)))
    }
}

/// 2-D convolution of `x` (N×C×H×W) with `w` (O×C/groups×kH×kW) plus an optional bias (O),
/// zero padding `pad` on every side, stride `stride`; differentiable in every argument. Same
/// result as candle's `x.conv2d(w, pad, stride, 1, groups)` (+ bias; f32, CPU).
pub fn conv2d(
    x: &Tensor,
    w: &Tensor,
    bias: Option<&Tensor>,
    pad: usize,
    stride: usize,
    groups: usize,
) -> Result<Tensor> {
    let op = Conv2d {
        pad,
        stride,
        groups,
    };
    let (x, w) = (x.contiguous()?, w.contiguous()?);
    match bias {
        Some(b) => x.apply_op3(&w, &b.contiguous()?, Conv2dBias(op)),
        None => x.apply_op2(&w, op),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::train_ops::test_util::max_diff;
    use candle_core::{Device, Var};

    fn rand(shape: &[usize], seed: u64) -> Tensor {
        // A fixed LCG keeps the cases identical run to run without a rand dependency.
        let n: usize = shape.iter().product();
        let mut s = seed
            .wrapping_mul(6364136223846793005)
            .wrapping_add(1442695040888963407);
        let v: Vec<f32> = (0..n)
            .map(|_| {
                s = s
                    .wrapping_mul(6364136223846793005)
                    .wrapping_add(1442695040888963407);
                ((s >> 40) as f32 / (1u64 << 24) as f32) * 2.0 - 1.0
            })
            .collect();
        Tensor::from_vec(v, shape, &Device::Cpu).unwrap()
    }

    /// Direct-loop convolution and its two gradients for `r` = dL/dout: the definition.
    #[allow(clippy::type_complexity)]
    fn naive(
        x: &Tensor,
        wt: &Tensor,
        r: &Tensor,
        pad: usize,
        stride: usize,
        groups: usize,
    ) -> (Vec<f32>, Vec<f32>, Vec<f32>) {
        let g = Geom::new(x.dims(), wt.dims(), pad, stride, groups).unwrap();
        let v = |t: &Tensor| t.flatten_all().unwrap().to_vec1::<f32>().unwrap();
        let (xv, wv, rv) = (v(x), v(wt), v(r));
        let mut out = vec![0f32; g.n * g.oc * g.npix()];
        let (mut gx, mut gw) = (vec![0f32; xv.len()], vec![0f32; wv.len()]);
        for n in 0..g.n {
            for o in 0..g.oc {
                let grp = o / g.og();
                for oy in 0..g.oh {
                    for ox in 0..g.ow {
                        let oi = ((n * g.oc + o) * g.oh + oy) * g.ow + ox;
                        for ci in 0..g.cg() {
                            let c = grp * g.cg() + ci;
                            for ky in 0..g.kh {
                                for kx in 0..g.kw {
                                    let iy = (oy * stride + ky) as isize - pad as isize;
                                    let ix = (ox * stride + kx) as isize - pad as isize;
                                    if iy < 0 || ix < 0 || iy >= g.h as isize || ix >= g.w as isize
                                    {
                                        continue;
                                    }
                                    let xi =
                                        ((n * g.c + c) * g.h + iy as usize) * g.w + ix as usize;
                                    let wi = ((o * g.cg() + ci) * g.kh + ky) * g.kw + kx;
                                    out[oi] += xv[xi] * wv[wi];
                                    gx[xi] += rv[oi] * wv[wi];
                                    gw[wi] += rv[oi] * xv[xi];
                                }
                            }
                        }
                    }
                }
            }
        }
        (out, gx, gw)
    }

    fn close(a: &[f32], b: &[f32], tol: f32) -> bool {
        a.len() == b.len() && a.iter().zip(b).all(|(x, y)| (x - y).abs() <= tol)
    }

    /// Forward values and both gradients equal the direct-loop definition and candle's conv2d
    /// on shapes covering padding, stride, pointwise, grouped and depthwise cases. (Candle's own
    /// backward fails on the last case — a stride that does not divide the padded input — so
    /// there only the definition is compared.)
    #[test]
    fn matches_the_definition_and_candle_conv2d() {
        let cases = [
            // (n, c, h, w, oc, k, pad, stride, groups)
            (2, 1, 7, 6, 4, 3, 1, 1, 1),
            (3, 5, 9, 9, 6, 3, 1, 2, 1),
            (2, 4, 8, 8, 8, 1, 0, 1, 1),
            (2, 4, 8, 8, 6, 1, 0, 2, 1),
            (2, 6, 7, 7, 6, 3, 1, 1, 6),
            (2, 6, 8, 8, 12, 3, 1, 2, 3),
            (1, 3, 5, 5, 2, 5, 0, 1, 1),
            (2, 2, 6, 5, 3, 3, 2, 3, 1),
        ];
        let v = |t: &Tensor| t.flatten_all().unwrap().to_vec1::<f32>().unwrap();
        for (i, &(n, c, h, w, oc, k, pad, stride, groups)) in cases.iter().enumerate() {
            let x = Var::from_tensor(&rand(&[n, c, h, w], i as u64)).unwrap();
            let wt = Var::from_tensor(&rand(&[oc, c / groups, k, k], 100 + i as u64)).unwrap();
            let bias = Var::from_tensor(&rand(&[oc], 300 + i as u64)).unwrap();
            // Odd cases carry a bias (fused into the product), even ones do not.
            let with_bias = i % 2 == 1;
            let ours = conv2d(&x, &wt, with_bias.then_some(&*bias), pad, stride, groups).unwrap();
            let theirs = x.conv2d(&wt, pad, stride, 1, groups).unwrap();
            let theirs = if with_bias {
                theirs
                    .broadcast_add(&bias.reshape((1, oc, 1, 1)).unwrap())
                    .unwrap()
            } else {
                theirs
            };
            assert_eq!(ours.dims(), theirs.dims(), "case {i}");
            assert!(
                max_diff(&ours, &theirs) < 1e-5,
                "case {i} forward vs candle"
            );
            // A loss that weights every output differently exercises the whole gradient.
            let r = rand(theirs.dims(), 200 + i as u64);
            let (mut out, gx, gw) = naive(&x, &wt, &r, pad, stride, groups);
            let (b, ohw) = (v(&bias), out.len() / n / oc);
            if with_bias {
                out.iter_mut()
                    .enumerate()
                    .for_each(|(j, o)| *o += b[j / ohw % oc]);
            }
            assert!(close(&v(&ours), &out, 1e-5), "case {i} forward");
            let go = (&ours * &r).unwrap().sum_all().unwrap().backward().unwrap();
            assert!(
                close(&v(go.get(&x).unwrap()), &gx, 1e-4),
                "case {i} input gradient"
            );
            assert!(
                close(&v(go.get(&wt).unwrap()), &gw, 1e-4),
                "case {i} weight gradient"
            );
            if let Ok(gt) = (theirs * &r).unwrap().sum_all().unwrap().backward() {
                for (what, t) in [("input", x.as_tensor()), ("weight", wt.as_tensor())] {
                    let d = max_diff(go.get(t).unwrap(), gt.get(t).unwrap());
                    assert!(
                        d < 1e-4,
                        "case {i} {what} gradient differs from candle's by {d}"
                    );
                }
            } else {
                assert_eq!(i, cases.len() - 1, "candle's backward failed on case {i}");
            }
        }
    }

    /// A constant input tensor gets no gradient computed (the first layer's data).
    #[test]
    fn no_gradient_for_constant_input() {
        let x = rand(&[2, 3, 5, 5], 1);
        let wt = Var::from_tensor(&rand(&[4, 3, 3, 3], 2)).unwrap();
        let g = conv2d(&x, &wt, None, 1, 1, 1)
            .unwrap()
            .sum_all()
            .unwrap()
            .backward()
            .unwrap();
        assert!(g.get(&x).is_none());
        assert!(g.get(wt.as_tensor()).is_some());
    }

    #[test]
    fn mismatched_groups_are_refused() {
        let x = rand(&[1, 6, 5, 5], 1);
        let wt = rand(&[4, 4, 3, 3], 2);
        let e = conv2d(&x, &wt, None, 1, 1, 2).unwrap_err().to_string();
        assert!(e.contains("groups"), "{e}");
    }
}

//! The distillation losses, one small function each, on candle tensors (differentiable through
//! the student's inputs; pass teacher tensors detached). Every one has its formula here and a
//! unit test against a hand-computed value.

use candle_core::{DType, Result, Tensor, D};
use candle_nn::ops;

/// Hinton KD (Hinton et al. 2015) from one teacher or an ensemble:
/// `T²·KL(p̄_t ‖ softmax(s/T))` with `p̄_t = mean_k softmax(t_k/T)` (averaged softened
/// probabilities, the compressed-ensemble approach), averaged over the batch. The α·CE part of
/// Hinton's objective is the trainer's cross-entropy weight.
pub fn hinton(student_logits: &Tensor, teacher_logits: &[&Tensor], t: f64) -> Result<Tensor> {
    let mut pt: Option<Tensor> = None;
    for tl in teacher_logits {
        let p = ops::softmax(&(*tl / t)?, D::Minus1)?;
        pt = Some(match pt {
            Some(acc) => (acc + p)?,
            None => p,
        });
    }
    let pt = (pt.ok_or_else(|| candle_core::Error::Msg("Hinton KD without a teacher".into()))?
        / teacher_logits.len() as f64)?;
    let log_pt = (&pt + 1e-12)?.log()?;
    let log_ps = ops::log_softmax(&(student_logits / t)?, D::Minus1)?;
    let kl = (&pt * (log_pt - log_ps)?)?.sum(D::Minus1)?.mean_all()?;
    kl * (t * t)
}

/// FitNets hint loss (Romero et al. 2015): `mean((r − t)²)` between the student's regressed
/// feature `r` (the student feature passed through a learned regressor) and the teacher's hint
/// `t`, same shape.
pub fn fitnets(regressed: &Tensor, teacher: &Tensor) -> Result<Tensor> {
    (regressed - teacher)?.sqr()?.mean_all()
}

/// Spatial attention map of `[B, C, H, W]` features: `Q = Σ_c |A_c|²` flattened to `[B, H·W]`
/// and L2-normalised per sample.
pub fn attention_map(f: &Tensor) -> Result<Tensor> {
    let q = f.sqr()?.sum(1)?.flatten_from(1)?;
    let norm = (q.sqr()?.sum_keepdim(1)?.sqrt()? + 1e-12)?;
    q.broadcast_div(&norm)
}

/// Attention transfer (Zagoruyko & Komodakis 2017):
/// `mean_b ‖Q_s(b) − Q_t(b)‖²` with `Q` from [`attention_map`]. Student and teacher may have
/// different channel counts; H×W must match.
pub fn attention_transfer(student: &Tensor, teacher: &Tensor) -> Result<Tensor> {
    let d = (attention_map(student)? - attention_map(teacher)?)?;
    d.sqr()?.sum(1)?.mean_all()
}

/// Activation-boundary loss (Heo et al. 2019) on pre-activations of equal shape, margin `m`:
/// `mean( ρ·relu(m − s)² + (1 − ρ)·relu(m + s)² )` with `ρ = 1[t > 0]`: the student's neurons
/// must be on the same side of zero as the teacher's, by at least the margin.
pub fn activation_boundary(student: &Tensor, teacher: &Tensor, margin: f64) -> Result<Tensor> {
    let rho = teacher.gt(0.0)?.to_dtype(DType::F32)?;
    let on = (student.affine(-1.0, margin)?.relu()?.sqr()? * &rho)?;
    let off = ((student + margin)?.relu()?.sqr()? * (1.0 - &rho)?)?;
    (on + off)?.mean_all()
}

/// Huber / smooth-L1 with threshold 1: `0.5·d²` for `|d| < 1`, else `|d| − 0.5`, averaged.
pub fn smooth_l1(a: &Tensor, b: &Tensor) -> Result<Tensor> {
    let d = (a - b)?.abs()?;
    let small = d.lt(1.0)?;
    small
        .where_cond(&(d.sqr()? * 0.5)?, &(&d - 0.5)?)?
        .mean_all()
}

/// Pairwise Euclidean distances of rows of `x: [N, F]`, divided by their mean (off-diagonal).
pub fn normalized_distances(x: &Tensor) -> Result<Tensor> {
    let n = x.dim(0)?;
    let sq = x.sqr()?.sum_keepdim(1)?; // [N, 1]
    let gram = x.matmul(&x.t()?)?;
    let d2 = ((sq.broadcast_add(&sq.t()?)? - (gram * 2.0)?)?.relu()? + 1e-12)?;
    let eye = Tensor::eye(n, DType::F32, x.device())?;
    let d = (d2.sqrt()? * (1.0 - &eye)?)?;
    let mean = (d.sum_all()? / ((n * n - n).max(1) as f64))?;
    d.broadcast_div(&(mean + 1e-12)?)
}

/// RKD distance loss (Park et al. 2019): smooth-L1 between the normalised pairwise distance
/// matrices of student and teacher embeddings `[N, F_s]`, `[N, F_t]` (widths may differ).
pub fn rkd_distance(student: &Tensor, teacher: &Tensor) -> Result<Tensor> {
    smooth_l1(
        &normalized_distances(student)?,
        &normalized_distances(teacher)?,
    )
}

/// Angle potentials `cos ∠(x_i − x_j, x_k − x_j)` for all triplets of rows, `[N, N, N]`.
pub fn angles(x: &Tensor) -> Result<Tensor> {
    let n = x.dim(0)?;
    // e[j, i] = normalise(x_i − x_j)
    let diff = x.unsqueeze(0)?.broadcast_sub(&x.unsqueeze(1)?)?; // [j, i, F]
                                                                 // ε inside the root: the i = j differences are zero and √ has no gradient at 0.
    let norm = (diff.sqr()?.sum_keepdim(D::Minus1)? + 1e-12)?.sqrt()?;
    let e = diff.broadcast_div(&norm)?;
    // cos[j, i, k] = e[j, i] · e[j, k]
    let cos = e.matmul(&e.transpose(1, 2)?)?;
    debug_assert_eq!(cos.dims(), &[n, n, n]);
    Ok(cos)
}

/// RKD angle loss (Park et al. 2019): smooth-L1 between student and teacher angle potentials.
pub fn rkd_angle(student: &Tensor, teacher: &Tensor) -> Result<Tensor> {
    smooth_l1(&angles(student)?, &angles(teacher)?)
}

/// Area-wise relational KD: each sample's `[C, H, W]` feature map is average-pooled into a
/// `g × g` grid of areas (vectors of C values); the normalised distance matrix between those
/// areas (as in [`rkd_distance`]) of the student must match the teacher's, per sample.
/// Relations inside one image carry the spatial layout a small student should keep; channel
/// counts may differ, H and W must be multiples of `g`.
pub fn area_wise_rkd(student: &Tensor, teacher: &Tensor, g: usize) -> Result<Tensor> {
    let areas = |f: &Tensor| -> Result<Tensor> {
        let (_, _, h, w) = f.dims4()?;
        // [B, C, g, g] → [B, g·g, C]
        f.avg_pool2d((h / g, w / g))?
            .flatten_from(2)?
            .transpose(1, 2)
    };
    let (s, t) = (areas(student)?, areas(teacher)?);
    let b = s.dim(0)?;
    let mut total = Tensor::zeros((), DType::F32, s.device())?;
    for i in 0..b {
        let l = rkd_distance(&s.get(i)?, &t.get(i)?)?;
        total = (total + l)?;
    }
    total / b.max(1) as f64
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn hinton_matches_hand_computed_value() {
        let dev = candle_core::Device::Cpu;
        let s = Tensor::new(&[[1.0f32, 0.0]], &dev).unwrap();
        let t = Tensor::new(&[[0.0f32, 1.0]], &dev).unwrap();
        // T = 2: p_t = softmax([0, .5]), p_s = softmax([.5, 0]).
        let p0 = 1.0 / (1.0 + 0.5f64.exp());
        let p1 = 1.0 - p0;
        let kl = p0 * (p0 / p1).ln() + p1 * (p1 / p0).ln();
        let got = hinton(&s, &[&t], 2.0).unwrap().to_scalar::<f32>().unwrap() as f64;
        assert!(
            (got - 4.0 * kl).abs() < 1e-5,
            "got {got}, want {}",
            4.0 * kl
        );
        // An ensemble of two opposite teachers averages to uniform: KL(u ‖ p_s) at T = 1.
        let got = hinton(&s, &[&t, &s], 1.0)
            .unwrap()
            .to_scalar::<f32>()
            .unwrap() as f64;
        let q0 = 1.0 / (1.0 + (-1f64).exp());
        let want = 0.5 * (0.5 / q0).ln() + 0.5 * (0.5 / (1.0 - q0)).ln();
        assert!(
            (got - want).abs() < 1e-5,
            "ensemble: got {got}, want {want}"
        );
    }
    use candle_core::Device;

    fn t(v: &[f32], shape: &[usize]) -> Tensor {
        Tensor::from_slice(v, shape, &Device::Cpu).unwrap()
    }
    fn scalar(x: Tensor) -> f64 {
        x.to_scalar::<f32>().unwrap() as f64
    }

    #[test]
    fn fitnets_is_mean_squared_error() {
        // (1−0)² + (2−4)² = 5, over 2 → 2.5
        assert!(
            (scalar(fitnets(&t(&[1.0, 2.0], &[1, 2]), &t(&[0.0, 4.0], &[1, 2])).unwrap()) - 2.5)
                .abs()
                < 1e-6
        );
    }

    #[test]
    fn attention_transfer_by_hand() {
        // One sample, 1×1×2 maps. Student A = [1, 0] → Q = [1, 0]; teacher A = [1, 1] → Q = [1, 1]/√2.
        // ‖[1 − 0.7071, −0.7071]‖² = 0.0858 + 0.5 = 0.5858 = 2 − √2.
        let s = t(&[1.0, 0.0], &[1, 1, 1, 2]);
        let te = t(&[1.0, 1.0], &[1, 1, 1, 2]);
        let got = scalar(attention_transfer(&s, &te).unwrap());
        assert!((got - (2.0 - 2f64.sqrt())).abs() < 1e-5, "{got}");
        // Scale-invariant: a teacher twice as strong gives the same loss.
        let te2 = t(&[2.0, 2.0], &[1, 1, 1, 2]);
        assert!((scalar(attention_transfer(&s, &te2).unwrap()) - got).abs() < 1e-6);
    }

    #[test]
    fn activation_boundary_by_hand() {
        // m = 1. Teacher [+, −, +]; student [0.5, 0.5, 2].
        // on (t>0): relu(1−0.5)² = 0.25, relu(1−2)² = 0; off: relu(1+0.5)² = 2.25. Mean = 2.5/3.
        let got = scalar(
            activation_boundary(&t(&[0.5, 0.5, 2.0], &[3]), &t(&[1.0, -1.0, 3.0], &[3]), 1.0)
                .unwrap(),
        );
        assert!((got - 2.5 / 3.0).abs() < 1e-6, "{got}");
    }

    #[test]
    fn rkd_distance_by_hand() {
        // Teacher: 3 points on a line at 0, 1, 2 → distances 1, 1, 2 (mean 4/3) → normalised
        // [0.75, 0.75, 1.5]. Student: equilateral-like triangle of side 1 → all 1 after
        // normalising. Off-diagonal differences 0.25, 0.25, 0.5 (each twice): smooth-L1 =
        // 2·(0.03125 + 0.03125 + 0.125) / 9 = 0.041667.
        let te = t(&[0.0, 0.0, 1.0, 0.0, 2.0, 0.0], &[3, 2]);
        let s = t(&[0.0, 0.0, 1.0, 0.0, 0.5, 0.866_025_4], &[3, 2]);
        let got = scalar(rkd_distance(&s, &te).unwrap());
        assert!((got - 0.375 / 9.0).abs() < 1e-5, "{got}");
        // Invariant to scale: the same shape, larger, costs nothing.
        let big = (te.clone() * 10.0).unwrap();
        assert!(scalar(rkd_distance(&big, &te).unwrap()) < 1e-6);
    }

    #[test]
    fn rkd_angle_by_hand() {
        // A right angle at the middle point vs a straight line.
        let straight = t(&[0.0, 0.0, 1.0, 0.0, 2.0, 0.0], &[3, 2]);
        let right = t(&[0.0, 0.0, 1.0, 0.0, 1.0, 1.0], &[3, 2]);
        let a = angles(&right).unwrap().to_vec3::<f32>().unwrap();
        assert!(a[1][0][2].abs() < 1e-6, "right angle at point 1");
        let b = angles(&straight).unwrap().to_vec3::<f32>().unwrap();
        assert!((b[1][0][2] + 1.0).abs() < 1e-6, "straight: cos = −1");
        // Per vertex j: j=1 differs by 1 for (0,2) and (2,0) → smooth-L1 0.5 each; j=0 and j=2
        // differ by 1 − 1/√2 for their two off-diagonal pairs → 0.5·(1 − 1/√2)² each. 27 entries.
        let e = 1.0 - 1.0 / 2f64.sqrt();
        let want = (2.0 * 0.5 + 4.0 * 0.5 * e * e) / 27.0;
        let got = scalar(rkd_angle(&right, &straight).unwrap());
        assert!((got - want).abs() < 1e-5, "{got} vs {want}");
    }

    #[test]
    fn area_wise_rkd_compares_layouts_not_channels() {
        // 1 sample, 2×2 grid of areas on 2×2 maps. Student has 1 channel, teacher 3 channels
        // with the same spatial pattern scaled: identical area relations → zero loss.
        let s = t(&[1.0, 2.0, 3.0, 5.0], &[1, 1, 2, 2]);
        let mut tv = Vec::new();
        for k in [1.0f32, 2.0, 3.0] {
            tv.extend([1.0 * k, 2.0 * k, 3.0 * k, 5.0 * k]);
        }
        let te = t(&tv, &[1, 3, 2, 2]);
        assert!(scalar(area_wise_rkd(&s, &te, 2).unwrap()) < 1e-6);
        // A different layout costs something.
        let other = t(&[5.0, 1.0, 2.0, 3.0], &[1, 1, 2, 2]);
        assert!(scalar(area_wise_rkd(&other, &te, 2).unwrap()) > 1e-3);
    }
}

//! `Einsum` on float32: one or two operands, any equation numpy's `einsum` takes — explicit
//! (`bhqd,bhkd->bhqk`) or implicit (`ij,jk`), repeated labels as diagonals (`ii->i`), `...` for
//! broadcast batch axes. What `torch.einsum` in attention and bilinear layers exports to.
//!
//! The equation is resolved once at plan time into *labels*: every distinct letter (and every
//! axis `...` stands for) gets a size, the output's labels numbered first in output order and
//! the summed ones after them. The kernel then runs one odometer over all labels, the summed
//! ones innermost, keeping each operand's offset by adding its stride for the label that moved
//! (the strides of an axis repeated within an operand add up, which is how a diagonal is read;
//! a broadcast axis of size 1 has stride 0). No scratch memory; O(product of all label sizes).

// The step type is part of every build (the step table names it); the kernel runs only with
// extra-ops.
#![cfg_attr(not(feature = "extra-ops"), allow(dead_code, unused_imports))]

use crate::error::Result;
use crate::kernels::size_mismatch;
use crate::onnx::Node;
use crate::ops::{input, shape_err, unsupported, Op, Prep, MAX_STEP_INPUTS};
use crate::prepare::only_attrs;
use crate::tensor::{DType, Shape, MAX_RANK};

/// Most distinct labels (letters plus broadcast axes) an equation may use.
pub const MAX_LABELS: usize = 12;

/// A planned Einsum: which label each operand axis carries and how large each label is.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Einsum {
    /// Distinct labels; the first `out_labels` are the output's axes in order.
    pub labels: u8,
    /// Output rank.
    pub out_labels: u8,
    /// Size of each label.
    pub size: [u32; MAX_LABELS],
    /// Operands (1 or 2).
    pub operands: u8,
    /// The label of each axis of each operand.
    pub axes: [[u8; MAX_RANK]; 2],
}

/// Label id of a letter (0..52); broadcast axes take 52 + their position.
fn letter_id(c: u8) -> Option<u8> {
    match c {
        b'a'..=b'z' => Some(c - b'a' + 26),
        b'A'..=b'Z' => Some(c - b'A'),
        _ => None,
    }
}

const ELLIPSIS_BASE: u8 = 52;

/// One term of the equation: label ids in axis order, with `...` expanded to `ell` axes that
/// end at broadcast position `width` (right-aligned, as numpy broadcasts).
fn expand_term(
    term: &[u8],
    rank: Option<usize>,
    width: usize,
    out: &mut heapless::Vec<u8, MAX_RANK>,
) -> core::result::Result<(), &'static str> {
    let bad = "equation term has an invalid character or more than one '...'";
    let letters = term.iter().filter(|&&c| c != b'.').count();
    let dots = term.len() - letters;
    if dots != 0 && (dots != 3 || term.windows(3).all(|w| w != b"...")) {
        return Err(bad);
    }
    let ell = match rank {
        Some(r) if dots == 3 => r
            .checked_sub(letters)
            .ok_or("term has more labels than axes")?,
        Some(r) if r != letters => {
            return Err("term's label count differs from its operand's rank")
        }
        Some(_) => 0,
        None => width,
    };
    if ell > width {
        return Err("operand has more broadcast axes than the equation's");
    }
    let mut i = 0;
    while i < term.len() {
        if term[i] == b'.' {
            for e in 0..ell {
                out.push(ELLIPSIS_BASE + (width - ell + e) as u8)
                    .map_err(|_| "too many axes")?;
            }
            i += 3;
            continue;
        }
        out.push(letter_id(term[i]).ok_or(bad)?)
            .map_err(|_| "too many axes")?;
        i += 1;
    }
    Ok(())
}

/// Plans an `Einsum` node (one step, float32).
#[inline(never)] // keeps its locals out of prepare_node's frame (MCU stacks)
pub(crate) fn prepare_einsum<const T: usize, const N: usize>(
    p: &Prep<'_, '_, T, N>,
    node: &Node<'_>,
    ins: &mut heapless::Vec<u16, MAX_STEP_INPUTS>,
    out_name: &str,
) -> Result<(Op, DType, Shape)> {
    only_attrs(node, &["equation"])?;
    let n = node.inputs.len();
    if !(1..=2).contains(&n) {
        return Err(unsupported(
            node,
            "number of inputs (Einsum takes one or two here)",
        ));
    }
    let eq = node
        .attr_s("equation")?
        .ok_or_else(|| shape_err(node, "equation is missing"))?;
    let mut buf = [0u8; 64];
    let mut len = 0;
    for &c in eq.iter().filter(|c| !c.is_ascii_whitespace()) {
        *buf.get_mut(len)
            .ok_or_else(|| unsupported(node, "equation longer than 64"))? = c;
        len += 1;
    }
    let eq = &buf[..len];
    let (lhs, rhs) = match eq.windows(2).position(|w| w == b"->") {
        Some(i) => (&eq[..i], Some(&eq[i + 2..])),
        None => (eq, None),
    };
    let fail = |what: &'static str| shape_err(node, what);
    let mut shapes = [Shape::SCALAR; 2];
    let mut terms: [heapless::Vec<u8, MAX_RANK>; 2] = Default::default();
    let mut width = 0;
    let mut k = 0;
    for (i, term) in lhs.split(|&c| c == b',').enumerate() {
        if i >= n {
            return Err(fail("equation has more terms than inputs"));
        }
        let (x, t) = input(p.g, node, i)?;
        if t.dtype != DType::F32 {
            return Err(unsupported(node, "element type (this op runs on float32)"));
        }
        let _ = ins.push(x);
        shapes[i] = t.shape;
        expand_term(term, Some(t.shape.rank()), MAX_RANK, &mut terms[i]).map_err(fail)?;
        let letters = term.iter().filter(|&&c| c != b'.').count();
        width = width.max(t.shape.rank() - letters.min(t.shape.rank()));
        k = i + 1;
    }
    if k != n {
        return Err(fail("equation has fewer terms than inputs"));
    }
    // Re-expand with the real broadcast width (right-aligned broadcast positions).
    for (i, term) in lhs.split(|&c| c == b',').enumerate() {
        terms[i].clear();
        expand_term(term, Some(shapes[i].rank()), width, &mut terms[i]).map_err(fail)?;
    }
    // Each label's size: letters must agree; broadcast axes may be 1.
    let mut size = [0u32; 64];
    let mut seen = [0u8; 64]; // occurrences across all terms
    for i in 0..n {
        for (a, &l) in terms[i].iter().enumerate() {
            let d = shapes[i].dim(a) as u32;
            let s = &mut size[l as usize];
            if seen[l as usize] == 0 {
                *s = d;
            } else if *s != d {
                if l >= ELLIPSIS_BASE && (*s == 1 || d == 1) {
                    *s = (*s).max(d);
                } else {
                    return Err(fail("a label has two different sizes"));
                }
            }
            seen[l as usize] += 1;
        }
    }
    let mut out: heapless::Vec<u8, MAX_RANK> = heapless::Vec::new();
    match rhs {
        Some(r) => {
            expand_term(r, None, width, &mut out).map_err(fail)?;
            for (j, &l) in out.iter().enumerate() {
                if seen[l as usize] == 0 {
                    return Err(fail("output label not in any input"));
                }
                if out[..j].contains(&l) {
                    return Err(fail("output repeats a label"));
                }
            }
        }
        None => {
            // numpy's implicit output: the broadcast axes, then letters used once, in order.
            for l in (ELLIPSIS_BASE..ELLIPSIS_BASE + width as u8).chain(0..ELLIPSIS_BASE) {
                let once = l >= ELLIPSIS_BASE || seen[l as usize] == 1;
                if seen[l as usize] > 0 && once {
                    out.push(l).map_err(|_| unsupported(node, "output rank"))?;
                }
            }
        }
    }
    // Number the labels: output first, then the summed ones.
    let mut order: heapless::Vec<u8, MAX_LABELS> = heapless::Vec::new();
    let too_many = || unsupported(node, "more than 12 distinct labels");
    for &l in out.iter() {
        order.push(l).map_err(|_| too_many())?;
    }
    for term in &terms[..n] {
        for &l in term.iter() {
            if !order.contains(&l) {
                order.push(l).map_err(|_| too_many())?;
            }
        }
    }
    let mut e = Einsum {
        labels: order.len() as u8,
        out_labels: out.len() as u8,
        size: [0; MAX_LABELS],
        operands: n as u8,
        axes: [[0; MAX_RANK]; 2],
    };
    for (j, &l) in order.iter().enumerate() {
        e.size[j] = size[l as usize];
    }
    for (axes, term) in e.axes.iter_mut().zip(&terms[..n]) {
        for (a, l) in term.iter().enumerate() {
            axes[a] = order.iter().position(|o| o == l).unwrap_or(0) as u8;
        }
    }
    let mut d = [0i64; MAX_RANK];
    for (j, slot) in d[..out.len()].iter_mut().enumerate() {
        *slot = e.size[j] as i64;
    }
    Ok((
        Op::Einsum(e),
        DType::F32,
        Shape::new(&d[..out.len()], out_name)?,
    ))
}

/// Each label's stride in an operand of shape `shape` (axes labelled by `axes`): the row-major
/// strides of the axes carrying it, added up (a diagonal), 0 where the axis broadcasts.
fn label_strides(e: &Einsum, axes: &[u8; MAX_RANK], shape: &Shape) -> Result<[usize; MAX_LABELS]> {
    let mut st = [0usize; MAX_LABELS];
    let mut s = 1usize;
    for a in (0..shape.rank()).rev() {
        let l = axes[a] as usize;
        let d = shape.dim(a);
        let size = *e.size.get(l).ok_or_else(size_mismatch)? as usize;
        if d == size {
            st[l] += s;
        } else if d != 1 {
            return Err(size_mismatch());
        }
        s *= d;
    }
    Ok(st)
}

/// Einsum (see the module doc): `x` holds the operands (`shapes` theirs), `y` the output.
#[inline(never)] // one body, not copied into eval (MCU flash)
pub fn einsum(e: &Einsum, shapes: &[Shape], x: &[&[f32]], y: &mut [f32]) -> Result<()> {
    let (nl, no) = (e.labels as usize, e.out_labels as usize);
    let n = e.operands as usize;
    if nl > MAX_LABELS || no > nl || n == 0 || n > 2 || x.len() != n || shapes.len() != n {
        return Err(size_mismatch());
    }
    let mut strides = [[0usize; MAX_LABELS]; 2];
    for i in 0..n {
        if x[i].len() != shapes[i].numel() {
            return Err(size_mismatch());
        }
        strides[i] = label_strides(e, &e.axes[i], &shapes[i])?;
    }
    let size = |l: usize| e.size[l] as usize;
    let outputs: usize = (0..no).map(size).product();
    let summed: usize = (no..nl).map(size).product();
    if y.len() != outputs {
        return Err(size_mismatch());
    }
    if summed == 0 {
        y.fill(0.0);
        return Ok(());
    }
    let mut idx = [0usize; MAX_LABELS];
    let mut off = [0usize; 2];
    for v in y.iter_mut() {
        let mut acc = 0.0f32;
        for _ in 0..summed {
            let mut p = x[0][off[0]];
            if n == 2 {
                p *= x[1][off[1]];
            }
            acc += p;
            // Odometer step over all labels, the last fastest.
            let mut l = nl;
            while l > 0 {
                l -= 1;
                idx[l] += 1;
                if idx[l] < size(l) {
                    for i in 0..n {
                        off[i] += strides[i][l];
                    }
                    break;
                }
                for i in 0..n {
                    off[i] -= strides[i][l] * (size(l) - 1);
                }
                idx[l] = 0;
            }
        }
        *v = acc;
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::vec::Vec;

    fn plan(
        eq_labels: &[&[u8]],
        shapes: &[&[i64]],
        out: &[u8],
        sizes: &[u32],
    ) -> (Einsum, Vec<Shape>) {
        let mut e = Einsum {
            labels: sizes.len() as u8,
            out_labels: out.len() as u8,
            size: [0; MAX_LABELS],
            operands: eq_labels.len() as u8,
            axes: [[0; MAX_RANK]; 2],
        };
        e.size[..sizes.len()].copy_from_slice(sizes);
        for (i, t) in eq_labels.iter().enumerate() {
            e.axes[i][..t.len()].copy_from_slice(t);
        }
        let shapes = shapes.iter().map(|s| Shape::new(s, "x").unwrap()).collect();
        (e, shapes)
    }

    #[test]
    fn matmul_transpose_diagonal_and_broadcast() {
        // ij,jk->ik with labels i=0, k=1, j=2.
        let (e, s) = plan(
            &[&[0, 2], &[2, 1]],
            &[&[2, 3], &[3, 2]],
            &[0, 1],
            &[2, 2, 3],
        );
        let a = [1., 2., 3., 4., 5., 6.];
        let b = [1., 0., 0., 1., 1., 1.];
        let mut y = [0.0f32; 4];
        einsum(&e, &s, &[&a, &b], &mut y).unwrap();
        assert_eq!(y, [4., 5., 10., 11.]);
        // ij->ji (i=1, j=0 in output order j, i).
        let (e, s) = plan(&[&[1, 0]], &[&[2, 3]], &[0, 1], &[3, 2]);
        let mut y = [0.0f32; 6];
        einsum(&e, &s, &[&a], &mut y).unwrap();
        assert_eq!(y, [1., 4., 2., 5., 3., 6.]);
        // ii->i: a diagonal.
        let (e, s) = plan(&[&[0, 0]], &[&[2, 2]], &[0], &[2]);
        let mut y = [0.0f32; 2];
        einsum(&e, &s, &[&[1., 2., 3., 4.]], &mut y).unwrap();
        assert_eq!(y, [1., 4.]);
        // b i, i -> b with b broadcast from size 1 in the second operand (here 2-D × 1-D).
        let (e, s) = plan(&[&[0, 1], &[1]], &[&[2, 3], &[3]], &[0], &[2, 3]);
        let mut y = [0.0f32; 2];
        einsum(&e, &s, &[&a, &[1., 1., 1.]], &mut y).unwrap();
        assert_eq!(y, [6., 15.]);
    }

    #[test]
    fn terms_expand_ellipsis_right_aligned() {
        let mut v = heapless::Vec::<u8, MAX_RANK>::new();
        expand_term(b"...ii", Some(3), 2, &mut v).unwrap();
        assert_eq!(v.as_slice(), &[ELLIPSIS_BASE + 1, 34, 34]);
        v.clear();
        assert!(expand_term(b"i.j", Some(2), 2, &mut v).is_err());
        v.clear();
        assert!(expand_term(b"ij", Some(3), 0, &mut v).is_err());
    }
}

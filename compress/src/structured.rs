//! Structured pruning: whole filters (conv output channels) and hidden units (dense rows) with
//! the smallest L1 norms are removed, and every consumer is cut to match — the next
//! convolution's input channels, or the columns of the dense layer after a flatten — so the
//! exported model is physically smaller and faster, not just sparse. Works on the folded model
//! (batch norm already inside the convolution), so BN needs no separate bookkeeping. Channels
//! that feed a residual sum are kept — both sides of an Add must stay aligned — but a residual
//! block is narrowed inside: its first convolution loses filters and its second the matching
//! input channels, and the sum never sees the difference. A DenseNet layer loses bottleneck
//! filters (its 3×3 reads only the kept ones) and growth filters: the concatenation then
//! carries fewer channels, and every later consumer of it — the following dense layers and the
//! transition convolution, which all read the whole concatenation — drops the matching input
//! channels.

use sprig_models::arch::{ArchSpec, ConvWeights, LayerSpec, LayerWeights};

/// Indices of the `keep` rows of `w` (`rows` rows) with the largest L1 norms, in order.
fn strongest(w: &[f32], rows: usize, keep: usize) -> Vec<usize> {
    let per = w.len() / rows.max(1);
    let mut norms: Vec<(usize, f32)> = (0..rows)
        .map(|r| (r, w[r * per..(r + 1) * per].iter().map(|v| v.abs()).sum()))
        .collect();
    norms.sort_by(|a, b| b.1.total_cmp(&a.1).then(a.0.cmp(&b.0)));
    let mut idx: Vec<usize> = norms[..keep.min(rows)].iter().map(|x| x.0).collect();
    idx.sort_unstable();
    idx
}

/// Rows `rows_kept` of a `[rows, in, k…]` tensor, and of each row only the input channels
/// `in_kept` (each `inner` values long).
fn select(
    w: &[f32],
    rows: usize,
    in_ch: usize,
    rows_kept: &[usize],
    in_kept: &[usize],
) -> Vec<f32> {
    let per_row = w.len() / rows.max(1);
    let inner = per_row / in_ch.max(1);
    let mut out = Vec::with_capacity(rows_kept.len() * in_kept.len() * inner);
    for &r in rows_kept {
        for &c in in_kept {
            let at = r * per_row + c * inner;
            out.extend_from_slice(&w[at..at + inner]);
        }
    }
    out
}

fn pick(v: &[f32], idx: &[usize]) -> Vec<f32> {
    idx.iter().map(|&i| v[i]).collect()
}

/// Whether layer `i`'s output may lose channels: its next weighted consumer must be a plain
/// convolution, a DenseNet layer or a dense layer (through pooling/flatten), never a residual
/// block (whose width is shared with its skip path).
fn prunable(spec: &ArchSpec, i: usize) -> bool {
    for l in &spec.layers[i + 1..] {
        match l {
            LayerSpec::Conv { .. } | LayerSpec::Dense { .. } | LayerSpec::DenseLayer { .. } => {
                return true
            }
            LayerSpec::Residual { .. } | LayerSpec::InvertedResidual { .. } => return false,
            LayerSpec::MaxPool2
            | LayerSpec::AvgPool2
            | LayerSpec::GlobalAvgPool
            | LayerSpec::Flatten => {}
        }
    }
    false
}

/// Removes the fraction `amount` (in [0, 1)) of the filters of every prunable convolution and
/// hidden dense layer of a folded model. Returns the slimmer architecture and its weights.
pub fn prune_channels(
    spec: &ArchSpec,
    weights: &[LayerWeights],
    amount: f64,
) -> crate::Result<(ArchSpec, Vec<LayerWeights>)> {
    if !(0.0..1.0).contains(&amount) {
        return Err(crate::Error::Invalid(format!(
            "structured pruning amount {amount} is outside [0, 1)"
        )));
    }
    if spec.has_bn() {
        return Err(crate::Error::Invalid(
            "structured pruning works on the batch-norm-folded model".into(),
        ));
    }
    let shapes = spec.shapes();
    let mut out_spec = spec.clone();
    let mut out_w = Vec::with_capacity(weights.len());
    // The channels (or, after a flatten, features) of the current activation that survive.
    let mut kept: Vec<usize> = (0..spec.input.0).collect();
    let mut c_in = spec.input.0;
    for (i, (l, w)) in spec.layers.iter().zip(weights).enumerate() {
        let c_out = shapes[i].0;
        match (l, w) {
            (LayerSpec::Conv { .. }, LayerWeights::Conv { w, b })
            | (LayerSpec::Dense { .. }, LayerWeights::Dense { w, b }) => {
                let rows = if prunable(spec, i) {
                    let keep = ((c_out as f64) * (1.0 - amount)).round().max(1.0) as usize;
                    strongest(w, c_out, keep)
                } else {
                    (0..c_out).collect()
                };
                let (w, b) = (select(w, c_out, c_in, &rows, &kept), pick(b, &rows));
                match &mut out_spec.layers[i] {
                    LayerSpec::Conv { out, .. } => {
                        *out = rows.len();
                        out_w.push(LayerWeights::Conv { w, b });
                    }
                    LayerSpec::Dense { out, .. } => {
                        *out = rows.len();
                        out_w.push(LayerWeights::Dense { w, b });
                    }
                    _ => unreachable!("matched Conv or Dense above"),
                }
                kept = rows;
            }
            (LayerSpec::Residual { .. }, LayerWeights::Residual { c1, c2, shortcut }) => {
                // The block keeps its output width (the sum's); inside, the first convolution
                // keeps its strongest filters and the second reads only those.
                let all: Vec<usize> = (0..c_out).collect();
                let mid = c1.b.len();
                let keep = ((mid as f64) * (1.0 - amount)).round().max(1.0) as usize;
                let inner = strongest(&c1.w, mid, keep);
                let c1 = ConvWeights {
                    w: select(&c1.w, mid, c_in, &inner, &kept),
                    b: pick(&c1.b, &inner),
                };
                let c2 = ConvWeights {
                    w: select(&c2.w, c_out, mid, &all, &inner),
                    b: c2.b.clone(),
                };
                let shortcut = shortcut.as_ref().map(|s| ConvWeights {
                    w: select(&s.w, c_out, c_in, &all, &kept),
                    b: s.b.clone(),
                });
                if let LayerSpec::Residual { mid, .. } = &mut out_spec.layers[i] {
                    *mid = inner.len();
                }
                out_w.push(LayerWeights::Residual { c1, c2, shortcut });
                kept = all;
            }
            (LayerSpec::DenseLayer { .. }, LayerWeights::DenseLayer { c1, c2 }) => {
                // Bottleneck: the strongest filters of the 1×1, and the 3×3 reads only those.
                let mid = c1.b.len();
                let keep = ((mid as f64) * (1.0 - amount)).round().max(1.0) as usize;
                let inner = strongest(&c1.w, mid, keep);
                // Growth: the strongest filters of the 3×3, when what follows can narrow too.
                let growth = c2.b.len();
                let new = if prunable(spec, i) {
                    let keep = ((growth as f64) * (1.0 - amount)).round().max(1.0) as usize;
                    strongest(&c2.w, growth, keep)
                } else {
                    (0..growth).collect()
                };
                let c1 = ConvWeights {
                    w: select(&c1.w, mid, c_in, &inner, &kept),
                    b: pick(&c1.b, &inner),
                };
                let c2 = ConvWeights {
                    w: select(&c2.w, growth, mid, &new, &inner),
                    b: pick(&c2.b, &new),
                };
                if let LayerSpec::DenseLayer { mid, growth, .. } = &mut out_spec.layers[i] {
                    (*mid, *growth) = (inner.len(), new.len());
                }
                out_w.push(LayerWeights::DenseLayer { c1, c2 });
                // The concatenation: the surviving input channels, then the new ones.
                kept.extend(new.iter().map(|&r| c_in + r));
            }
            (LayerSpec::InvertedResidual { .. }, w @ LayerWeights::InvertedResidual { .. }) => {
                // Never fed a narrowed input (see `prunable`), and keeps its own width.
                out_w.push(w.clone());
                kept = (0..c_out).collect();
            }
            (LayerSpec::Flatten, _) => {
                let spatial = c_in_spatial(&shapes, i, spec);
                kept = kept
                    .iter()
                    .flat_map(|&c| (c * spatial..(c + 1) * spatial).collect::<Vec<_>>())
                    .collect();
                out_w.push(LayerWeights::None);
            }
            (LayerSpec::MaxPool2 | LayerSpec::AvgPool2 | LayerSpec::GlobalAvgPool, _) => {
                out_w.push(LayerWeights::None)
            }
            _ => {
                return Err(crate::Error::Invalid(format!(
                    "weights do not match layer {i} of {}",
                    spec.name
                )))
            }
        }
        c_in = c_out;
    }
    Ok((out_spec, out_w))
}

/// H·W of the activation entering layer `i`.
fn c_in_spatial(shapes: &[(usize, usize, usize)], i: usize, spec: &ArchSpec) -> usize {
    let s = if i == 0 { spec.input } else { shapes[i - 1] };
    s.1 * s.2
}

#[cfg(test)]
mod tests {
    use super::*;
    use candle_core::{DType, Device, Tensor};
    use candle_nn::{VarBuilder, VarMap};
    use sprig_models::arch::{load_folded, CnnModel};

    /// With the pruned channels' weights set to zero beforehand, removing them changes nothing:
    /// the slim model computes exactly what the full one does.
    #[test]
    fn removing_dead_channels_preserves_the_function() {
        let dev = Device::Cpu;
        let spec = ArchSpec::small_cnn("s", (1, 8, 8), 6, 8, Some(12), 5);
        let vars = VarMap::new();
        let m = CnnModel::new(&spec, VarBuilder::from_varmap(&vars, DType::F32, &dev)).unwrap();
        // Zero the weakest half of every prunable layer so they are the ones removed.
        let mut w = m.weights().unwrap();
        for lw in &mut w {
            if let LayerWeights::Conv { w, b } | LayerWeights::Dense { w, b } = lw {
                let rows = b.len();
                let per = w.len() / rows;
                for r in (0..rows).filter(|r| r % 2 == 1) {
                    w[r * per..(r + 1) * per].iter_mut().for_each(|v| *v = 0.0);
                    b[r] = 0.0;
                }
            }
        }
        load_folded(&spec, &w, &vars).unwrap();
        let (slim, sw) = prune_channels(&spec, &w, 0.5).unwrap();
        assert_eq!(slim.layer_names().len(), 4);
        let widths: Vec<usize> = slim.feature_shapes().iter().map(|s| s.0).collect();
        assert_eq!(
            widths,
            [3, 4, 6, 5],
            "conv1, conv2, hidden halved; classifier kept"
        );
        assert!(slim.param_count() < spec.param_count() / 2);
        same_function(&m, &slim, &sw, 0);
    }

    /// A ResNet's blocks narrow inside (first convolution's filters, second's inputs) while
    /// their outputs and the sums stay; with the removed filters dead, nothing changes.
    #[test]
    fn narrowing_residual_blocks_preserves_the_function() {
        let dev = Device::Cpu;
        let spec = ArchSpec::resnet("r", (1, 8, 8), 1, 4, 3).folded();
        let vars = VarMap::new();
        let m = CnnModel::new(&spec, VarBuilder::from_varmap(&vars, DType::F32, &dev)).unwrap();
        let mut w = m.weights().unwrap();
        for lw in &mut w {
            if let LayerWeights::Residual { c1, .. } = lw {
                let rows = c1.b.len();
                let per = c1.w.len() / rows;
                for r in (0..rows).filter(|r| r % 2 == 0) {
                    c1.w[r * per..(r + 1) * per]
                        .iter_mut()
                        .for_each(|v| *v = 0.0);
                    c1.b[r] = 0.0;
                }
            }
        }
        load_folded(&spec, &w, &vars).unwrap();
        let (slim, sw) = prune_channels(&spec, &w, 0.5).unwrap();
        let mids: Vec<(usize, usize)> = slim
            .layers
            .iter()
            .filter_map(|l| match *l {
                LayerSpec::Residual { out, mid, .. } => Some((out, mid)),
                _ => None,
            })
            .collect();
        assert_eq!(mids, [(4, 2), (8, 4), (16, 8)]);
        assert!(slim.param_count() < spec.param_count() * 6 / 10);
        // Its float export computes the same on sprig-runtime.
        same_function(&m, &slim, &sw, 1);
    }

    /// Half of a DenseNet's filters dead everywhere — stem, transitions, bottlenecks and growth —
    /// are removed: every concatenation narrows and each later layer reads only what is left,
    /// and the slim model (and its float export on sprig-runtime) computes the same.
    #[test]
    fn narrowing_densenet_concatenations_preserves_the_function() {
        let dev = Device::Cpu;
        let spec = ArchSpec::densenet_bc("d", (1, 8, 8), 16, 4, 3).folded();
        let vars = VarMap::new();
        let m = CnnModel::new(&spec, VarBuilder::from_varmap(&vars, DType::F32, &dev)).unwrap();
        let kill_odd_rows = |cw: &mut ConvWeights| {
            let rows = cw.b.len();
            let per = cw.w.len() / rows;
            for r in (0..rows).filter(|r| r % 2 == 1) {
                cw.w[r * per..(r + 1) * per]
                    .iter_mut()
                    .for_each(|v| *v = 0.0);
                cw.b[r] = 0.0;
            }
        };
        let mut w = m.weights().unwrap();
        for lw in &mut w {
            match lw {
                LayerWeights::Conv { w, b } => {
                    let mut cw = ConvWeights {
                        w: w.clone(),
                        b: b.clone(),
                    };
                    kill_odd_rows(&mut cw);
                    (*w, *b) = (cw.w, cw.b);
                }
                LayerWeights::DenseLayer { c1, c2 } => {
                    kill_odd_rows(c1);
                    kill_odd_rows(c2);
                }
                _ => {}
            }
        }
        load_folded(&spec, &w, &vars).unwrap();
        let (slim, sw) = prune_channels(&spec, &w, 0.5).unwrap();
        // stem 8 → 4; each layer: bottleneck 16 → 8, growth 4 → 2, so a block adds 4; each
        // transition 8 → 4 (then its pool).
        let widths: Vec<usize> = slim.shapes().iter().map(|s| s.0).collect();
        assert_eq!(widths[..12], [4, 6, 8, 4, 4, 6, 8, 4, 4, 6, 8, 8]);
        let dense: Vec<(usize, usize)> = slim
            .layers
            .iter()
            .filter_map(|l| match *l {
                LayerSpec::DenseLayer { mid, growth, .. } => Some((mid, growth)),
                _ => None,
            })
            .collect();
        assert_eq!(dense, [(8, 2); 6]);
        assert!(slim.param_count() < spec.param_count() * 4 / 10);
        same_function(&m, &slim, &sw, 4);
    }

    /// The slim model (`slim`, `sw`) computes what `m` does on random images (within 1e-5), and
    /// so does its float export on sprig-runtime for the first `on_runtime` of them.
    fn same_function(m: &CnnModel, slim: &ArchSpec, sw: &[LayerWeights], on_runtime: usize) {
        let dev = Device::Cpu;
        let svars = VarMap::new();
        let sm = CnnModel::new(slim, VarBuilder::from_varmap(&svars, DType::F32, &dev)).unwrap();
        load_folded(slim, sw, &svars).unwrap();
        let x = Tensor::randn(0f32, 1.0, (4, 1, 8, 8), &dev).unwrap();
        let a = m.forward_features(&x).unwrap().0;
        let b = sm.forward_features(&x).unwrap().0;
        let d = (a - &b)
            .unwrap()
            .abs()
            .unwrap()
            .max_all()
            .unwrap()
            .to_scalar::<f32>()
            .unwrap();
        assert!(d < 1e-5, "slim model differs by {d}");
        if on_runtime == 0 {
            return;
        }
        let onnx = crate::export::export_f32(slim, sw);
        let model = sprig_runtime::Model::parse(&onnx).unwrap();
        let mut arena = vec![0u8; model.arena_bytes().unwrap()];
        let mut it = sprig_runtime::Interpreter::new(&model, &mut arena).unwrap();
        for n in 0..on_runtime {
            let xn = x.get(n).unwrap().flatten_all().unwrap();
            it.set_input_f32(0, &xn.to_vec1::<f32>().unwrap()).unwrap();
            it.invoke().unwrap();
            let want = b.get(n).unwrap().to_vec1::<f32>().unwrap();
            for (g, w) in it.output(0).unwrap().as_f32().unwrap().iter().zip(&want) {
                assert!((g - w).abs() < 1e-4, "{g} vs {w}");
            }
        }
    }

    #[test]
    fn bad_amount_is_named() {
        let spec = ArchSpec::small_cnn("s", (1, 8, 8), 2, 2, None, 3);
        let e = prune_channels(&spec, &[], 1.0).unwrap_err().to_string();
        assert!(e.contains("amount 1 is outside [0, 1)"), "{e}");
    }
}

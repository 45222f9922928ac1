//! Remembered teacher outputs. A frozen teacher gives the same outputs for the same image, and
//! without augmentation every epoch of every distillation stage shows it the same images — so
//! the teacher need only run once per image. With a ResNet-20 teacher and a small student, the
//! teacher's forward pass is most of a distillation step.
//!
//! [`CachedTeacher`] runs its teacher over the training set once, in index order, the first
//! time it is asked (a canonical pass: a batch's outputs differ from another batch's in the
//! last bit, so remembering whatever batches training happened to show would make a resumed
//! run differ from an uninterrupted one). It keeps the logits and only the features the
//! distillation terms read, up to a byte budget, and keys each image by its exact input values
//! (a hash to find it, then the full input compared, so a hit is never another image). A batch
//! is answered from memory when every image in it is remembered; otherwise the teacher runs.

use std::cell::RefCell;
use std::collections::HashMap;
use std::hash::{Hash, Hasher};

use candle_core::{DType, Device, Tensor};

use crate::distill::{KdLoss, KdTerm};
use crate::teacher::{Teacher, TeacherLayout};
use crate::train::{first_channels, image_batch};
use sprig_models::datasets::ImageSet;

/// A teacher whose outputs are remembered per input image (see the module doc).
pub struct CachedTeacher<'a> {
    inner: &'a dyn Teacher,
    layout: TeacherLayout,
    /// Feature indices (into [`TeacherLayout::layers`]) that are stored; the others come back
    /// as empty tensors from a remembered batch.
    keep: Vec<usize>,
    budget_bytes: usize,
    /// The images the teacher is run over once, and in batches of how many.
    data: &'a ImageSet,
    batch: usize,
    store: RefCell<Store>,
}

#[derive(Default)]
struct Store {
    /// Input hash → rows with that hash.
    index: HashMap<u64, Vec<usize>>,
    rows: usize,
    input_len: usize,
    inputs: Vec<f32>,
    logits_len: usize,
    logits: Vec<f32>,
    /// Per kept feature: the per-sample dims (after the batch axis) and the values.
    features: Vec<(Vec<usize>, Vec<f32>)>,
    hits: u64,
    misses: u64,
    full: bool,
    filled: bool,
}

/// What a cache did, for the run's log.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct CacheStats {
    /// Images remembered.
    pub images: usize,
    /// Bytes they take.
    pub bytes: usize,
    /// Samples answered from memory.
    pub hits: u64,
    /// Samples the teacher had to run for.
    pub misses: u64,
    /// Whether the budget stopped further images being remembered.
    pub full: bool,
}

/// The teacher features that `terms` read from teacher `k` (Hinton reads only the logits).
pub fn features_read(terms: &[KdTerm], k: usize) -> Vec<usize> {
    let mut v: Vec<usize> = terms
        .iter()
        .filter(|t| t.teacher == k && !matches!(t.loss, KdLoss::Hinton { .. }))
        .map(|t| t.teacher_layer)
        .collect();
    v.sort_unstable();
    v.dedup();
    v
}

fn hash_row(row: &[f32]) -> u64 {
    let mut h = std::collections::hash_map::DefaultHasher::new();
    for v in row {
        v.to_bits().hash(&mut h);
    }
    h.finish()
}

fn same_bits(a: &[f32], b: &[f32]) -> bool {
    a.len() == b.len() && a.iter().zip(b).all(|(x, y)| x.to_bits() == y.to_bits())
}

impl Store {
    fn find(&self, row: &[f32], hash: u64) -> Option<usize> {
        let n = self.input_len;
        self.index
            .get(&hash)?
            .iter()
            .copied()
            .find(|&r| same_bits(&self.inputs[r * n..(r + 1) * n], row))
    }

    fn row_bytes(&self) -> usize {
        4 * (self.input_len
            + self.logits_len
            + self
                .features
                .iter()
                .map(|f| f.0.iter().product::<usize>())
                .sum::<usize>())
    }

    fn bytes(&self) -> usize {
        self.rows * self.row_bytes()
    }
}

impl<'a> CachedTeacher<'a> {
    /// Remembers `inner`'s logits and its features `keep` on the images of `data` (run in
    /// batches of `batch`), for up to `budget_bytes` (inputs included).
    pub fn new(
        inner: &'a dyn Teacher,
        keep: Vec<usize>,
        budget_bytes: usize,
        data: &'a ImageSet,
        batch: usize,
    ) -> Self {
        CachedTeacher {
            layout: inner.layout(),
            inner,
            keep,
            budget_bytes,
            data,
            batch: batch.max(1),
            store: RefCell::new(Store::default()),
        }
    }

    /// Images remembered, bytes used, hits and misses so far.
    pub fn stats(&self) -> CacheStats {
        let s = self.store.borrow();
        CacheStats {
            images: s.rows,
            bytes: s.bytes(),
            hits: s.hits,
            misses: s.misses,
            full: s.full,
        }
    }

    /// The canonical pass: the teacher over `data` in index order, while the budget lasts.
    fn fill(&self) -> candle_core::Result<()> {
        self.store.borrow_mut().filled = true;
        let idx: Vec<usize> = (0..self.data.len()).collect();
        for chunk in idx.chunks(self.batch) {
            let x = first_channels(&image_batch(self.data, chunk)?, self.layout.input_channels)?;
            let out = self.inner.forward_features(&x)?;
            let rows = x.flatten_all()?.to_vec1::<f32>()?;
            if !self.remember(&rows, chunk.len(), &out)? {
                break;
            }
        }
        Ok(())
    }

    /// Adds the images of a computed batch that are not remembered yet; false once the budget
    /// is spent.
    fn remember(
        &self,
        rows: &[f32],
        b: usize,
        out: &(Tensor, Vec<Tensor>),
    ) -> candle_core::Result<bool> {
        let mut s = self.store.borrow_mut();
        if b == 0 {
            return Ok(true);
        }
        let input_len = rows.len() / b;
        let logits = out.0.flatten_all()?.to_vec1::<f32>()?;
        let mut feats = Vec::with_capacity(self.keep.len());
        for &k in &self.keep {
            let t = out.1.get(k).ok_or_else(|| {
                candle_core::Error::Msg(format!("teacher {} has no feature {k}", self.layout.name))
            })?;
            feats.push((t.dims()[1..].to_vec(), t.flatten_all()?.to_vec1::<f32>()?));
        }
        if s.rows == 0 {
            s.input_len = input_len;
            s.logits_len = logits.len() / b;
            s.features = feats.iter().map(|(d, _)| (d.clone(), Vec::new())).collect();
        }
        let row_bytes = s.row_bytes();
        for i in 0..b {
            let row = &rows[i * input_len..(i + 1) * input_len];
            let hash = hash_row(row);
            // A dataset can hold the same image twice: the first copy answers for both.
            if s.find(row, hash).is_some() {
                continue;
            }
            if s.bytes() + row_bytes > self.budget_bytes {
                s.full = true;
                return Ok(false);
            }
            let r = s.rows;
            s.inputs.extend_from_slice(row);
            let l = s.logits_len;
            s.logits.extend_from_slice(&logits[i * l..(i + 1) * l]);
            for (dst, (dims, src)) in s.features.iter_mut().zip(&feats) {
                let n: usize = dims.iter().product();
                dst.1.extend_from_slice(&src[i * n..(i + 1) * n]);
            }
            s.index.entry(hash).or_default().push(r);
            s.rows += 1;
        }
        Ok(true)
    }
}

impl Teacher for CachedTeacher<'_> {
    fn layout(&self) -> TeacherLayout {
        self.layout.clone()
    }

    fn forward_features(&self, x: &Tensor) -> candle_core::Result<(Tensor, Vec<Tensor>)> {
        if !self.store.borrow().filled {
            self.fill()?;
        }
        let b = x.dim(0)?;
        let rows = x.flatten_all()?.to_vec1::<f32>()?;
        let n = rows.len() / b.max(1);
        let hashes: Vec<u64> = (0..b)
            .map(|i| hash_row(&rows[i * n..(i + 1) * n]))
            .collect();
        let found: Vec<Option<usize>> = {
            let s = self.store.borrow();
            let fits = s.rows == 0 || s.input_len == n;
            (0..b)
                .map(|i| {
                    if fits {
                        s.find(&rows[i * n..(i + 1) * n], hashes[i])
                    } else {
                        None
                    }
                })
                .collect()
        };
        if b > 0 && found.iter().all(Option::is_some) {
            let mut s = self.store.borrow_mut();
            s.hits += b as u64;
            let gather = |src: &[f32], len: usize| -> Vec<f32> {
                found
                    .iter()
                    .flat_map(|r| &src[r.unwrap_or(0) * len..][..len])
                    .copied()
                    .collect()
            };
            let logits = Tensor::from_vec(
                gather(&s.logits, s.logits_len),
                (b, s.logits_len),
                &Device::Cpu,
            )?;
            let mut feats = Vec::with_capacity(self.layout.layers.len());
            for k in 0..self.layout.layers.len() {
                match self.keep.iter().position(|&j| j == k) {
                    Some(p) => {
                        let (dims, src) = &s.features[p];
                        let len = dims.iter().product();
                        let mut shape = vec![b];
                        shape.extend_from_slice(dims);
                        feats.push(Tensor::from_vec(gather(src, len), shape, &Device::Cpu)?);
                    }
                    None => feats.push(Tensor::zeros(0, DType::F32, &Device::Cpu)?),
                }
            }
            return Ok((logits, feats));
        }
        self.store.borrow_mut().misses += b as u64;
        self.inner.forward_features(x)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use candle_nn::{VarBuilder, VarMap};
    use sprig_models::arch::{ArchSpec, CnnModel};

    fn model(spec: &ArchSpec) -> (CnnModel, VarMap) {
        let vars = VarMap::new();
        let vb = VarBuilder::from_varmap(&vars, DType::F32, &Device::Cpu);
        (CnnModel::new(spec, vb).unwrap(), vars)
    }

    fn images(chw: (usize, usize, usize), n: usize, seed: u32) -> ImageSet {
        let len = chw.0 * chw.1 * chw.2;
        ImageSet {
            images: (0..(n * len) as u32)
                .map(|i| (i.wrapping_mul(2654435761).wrapping_add(seed) % 1000) as f32 / 1000.0)
                .collect(),
            labels: vec![0; n],
            chw,
            classes: 10,
        }
    }

    fn batch(data: &ImageSet, idx: &[usize]) -> Tensor {
        image_batch(data, idx).unwrap()
    }

    fn max_diff(a: &Tensor, b: &Tensor) -> f32 {
        (a - b)
            .unwrap()
            .abs()
            .unwrap()
            .flatten_all()
            .unwrap()
            .max(0)
            .unwrap()
            .to_scalar()
            .unwrap()
    }

    #[test]
    fn remembered_batches_match_the_teacher_and_keep_only_the_read_features() {
        let (m, _vars) = model(&ArchSpec::small_cnn("t", (1, 8, 8), 4, 6, None, 10));
        let data = images((1, 8, 8), 12, 1);
        let c = CachedTeacher::new(&m, vec![1], usize::MAX, &data, 5);
        // Any order, with a repeat: answered from memory after the one pass over the data.
        let x = batch(&data, &[9, 4, 11, 0, 4, 7]);
        let (lo, fs) = c.forward_features(&x).unwrap();
        let st = c.stats();
        assert_eq!((st.images, st.hits, st.misses, st.full), (12, 6, 0, false));
        assert_eq!(st.bytes, 12 * 4 * (64 + 10 + 6 * 4 * 4));
        let (want_lo, want_fs) = Teacher::forward_features(&m, &x).unwrap();
        assert!(
            max_diff(&lo, &want_lo) < 1e-5,
            "{}",
            max_diff(&lo, &want_lo)
        );
        assert_eq!(fs.len(), want_fs.len());
        assert_eq!(fs[1].dims(), want_fs[1].dims());
        assert!(max_diff(&fs[1], &want_fs[1]) < 1e-5);
        assert_eq!(fs[0].elem_count(), 0, "an unread feature is not stored");
    }

    /// What the pipeline's resume guarantee rests on: an image's remembered outputs are those
    /// of the one canonical pass, whatever batches training shows it in and whenever it asks.
    #[test]
    fn answers_come_from_the_canonical_pass() {
        let (m, _vars) = model(&ArchSpec::resnet("t", (1, 28, 28), 1, 8, 10));
        let data = images((1, 28, 28), 96, 3);
        let order = [70usize, 3, 95, 12, 64, 40, 1, 88, 0, 63];
        let (lo, fs) = {
            let c = CachedTeacher::new(&m, vec![2], usize::MAX, &data, 64);
            c.forward_features(&batch(&data, &[5, 6])).unwrap();
            c.forward_features(&batch(&data, &order)).unwrap()
        };
        // A fresh cache (a resumed run), asked first for the same batch: the same bits.
        let fresh = CachedTeacher::new(&m, vec![2], usize::MAX, &data, 64);
        let (lo2, fs2) = fresh.forward_features(&batch(&data, &order)).unwrap();
        assert_eq!(max_diff(&lo, &lo2), 0.0);
        assert_eq!(max_diff(&fs[2], &fs2[2]), 0.0);
        // And they are the pass's own outputs for those images.
        let (first, _) =
            Teacher::forward_features(&m, &batch(&data, &(0..64).collect::<Vec<_>>())).unwrap();
        assert_eq!(
            max_diff(
                &lo2.narrow(0, 1, 1).unwrap(),
                &first.narrow(0, 3, 1).unwrap()
            ),
            0.0
        );
    }

    #[test]
    fn an_unseen_image_runs_the_teacher_and_the_budget_is_kept() {
        let (m, _vars) = model(&ArchSpec::small_cnn("t", (1, 8, 8), 4, 6, None, 10));
        let data = images((1, 8, 8), 4, 1);
        let c = CachedTeacher::new(&m, vec![], usize::MAX, &data, 4);
        // Three remembered images and one from elsewhere: the teacher runs on the batch.
        let other = images((1, 8, 8), 1, 9);
        let x = Tensor::cat(&[batch(&data, &[0, 1, 2]), batch(&other, &[0])], 0).unwrap();
        let (lo, _) = c.forward_features(&x).unwrap();
        let (want, _) = Teacher::forward_features(&m, &x).unwrap();
        assert_eq!(max_diff(&lo, &want), 0.0);
        assert_eq!(
            (c.stats().hits, c.stats().misses, c.stats().images),
            (0, 4, 4)
        );
        // Room for two images only: they are answered from memory, batches with the others
        // run the teacher, and the budget is never exceeded.
        let per_image = 4 * (64 + 10);
        let small = CachedTeacher::new(&m, vec![], 2 * per_image, &data, 4);
        small.forward_features(&batch(&data, &[1, 0])).unwrap();
        let st = small.stats();
        assert_eq!((st.images, st.hits, st.full), (2, 2, true));
        assert!(st.bytes <= 2 * per_image);
        let x = batch(&data, &[0, 1, 2, 3]);
        let (lo, _) = small.forward_features(&x).unwrap();
        let (want, _) = Teacher::forward_features(&m, &x).unwrap();
        assert_eq!(max_diff(&lo, &want), 0.0);
        assert_eq!(small.stats().misses, 4);
    }
}

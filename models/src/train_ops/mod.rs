//! Training kernels as candle custom ops: convolution (forward, input gradient, weight
//! gradient; any groups, so depthwise too; bias fused), 2×2 max pooling, batch normalisation in
//! training mode and ReLU.
//!
//! Why: candle's CPU convolution backward goes through a transposed convolution and a
//! re-laid-out forward convolution, its max-pool backward through upsampling and masks, and its
//! batch norm through a dozen element-wise passes; a training step of a small CNN spent ~9×
//! PyTorch's time. These ops do im2col + the `gemm` crate's packed matrix product (what candle
//! itself multiplies with) with the batch split across threads, and direct loops for the rest.
//! Each op is checked in its tests against the definition and against candle's own op (values
//! and gradients; candle's max-pool gradient is a quarter of the true one, so there only the
//! definition counts), and [`Kernels::Candle`] keeps candle's path selectable for comparisons
//! (`bench/train_speed.sh`).

mod batch_norm;
mod conv;
mod pool;
mod relu;

pub use batch_norm::batch_norm_train;
pub use conv::conv2d;
pub use pool::max_pool2x2;
pub use relu::relu;

use candle_core::{backend::BackendStorage, bail, CpuStorage, Layout, Result};

/// Which kernels a model trains with.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum Kernels {
    /// sprig's custom ops (this module).
    #[default]
    Sprig,
    /// candle's own tensor ops (the reference the custom ops are tested against).
    Candle,
}

/// The f32 data of a contiguous CPU tensor.
fn f32_slice<'a>(op: &str, s: &'a CpuStorage, l: &Layout) -> Result<&'a [f32]> {
    let CpuStorage::F32(v) = s else {
        bail!("{op}: only f32 tensors are supported, got {:?}", s.dtype())
    };
    match l.contiguous_offsets() {
        Some((a, b)) => Ok(&v[a..b]),
        None => bail!("{op}: the tensor must be contiguous"),
    }
}

/// Calls `f(i, chunk_i)` for every `chunk`-long piece of `data` (a trailing shorter piece
/// included), spread over candle's CPU worker pool.
///
/// Why candle's pool: candle runs its own element-wise ops on a pool of spinning workers; a
/// second pool (rayon's) running these kernels would fight those workers for the same cores —
/// measured here, it made small element-wise backward ops 10–40× slower.
fn par_chunks_mut<F>(data: &mut [f32], chunk: usize, f: F)
where
    F: Fn(usize, &mut [f32]) + Sync,
{
    let chunk = chunk.max(1);
    let (len, count) = (data.len(), data.len().div_ceil(chunk));
    let base = SyncPtr(data.as_mut_ptr());
    candle_core::utils::barrier_pool().execute_chunked(count, |items| {
        for i in items {
            let start = i * chunk;
            let n = chunk.min(len - start);
            // SAFETY: `execute_chunked` hands out disjoint index ranges (a shared cursor), so
            // each chunk index — and with it each sub-slice — is visited by exactly one thread,
            // and `data` stays mutably borrowed until every worker has finished.
            let piece = unsafe { std::slice::from_raw_parts_mut(base.get().add(start), n) };
            f(i, piece);
        }
    });
}

/// `f(range)` on each of at most `parts` near-equal pieces of `0..n`, in parallel; results in
/// piece order.
fn par_ranges<T: Send, F>(n: usize, parts: usize, f: F) -> Vec<T>
where
    F: Fn(std::ops::Range<usize>) -> T + Sync,
{
    let parts = parts.clamp(1, n.max(1));
    let slots: Vec<std::sync::Mutex<Option<T>>> =
        (0..parts).map(|_| std::sync::Mutex::new(None)).collect();
    candle_core::utils::barrier_pool().execute_chunked(parts, |items| {
        for p in items {
            let r = f((p * n / parts)..((p + 1) * n / parts));
            *slots[p].lock().expect("result slot") = Some(r);
        }
    });
    slots
        .into_iter()
        .map(|s| {
            s.into_inner()
                .expect("result slot")
                .expect("every piece ran")
        })
        .collect()
}

/// Threads that run the kernels (candle's workers plus the calling thread).
fn threads() -> usize {
    candle_core::utils::barrier_pool().n_workers() + 1
}

/// A raw pointer the workers may share; each touches only its own disjoint piece.
#[derive(Clone, Copy)]
struct SyncPtr(*mut f32);
// SAFETY: only used by `par_chunks_mut`, whose workers write disjoint pieces.
unsafe impl Sync for SyncPtr {}
unsafe impl Send for SyncPtr {}
impl SyncPtr {
    fn get(self) -> *mut f32 {
        self.0
    }
}

/// Helpers shared by the kernels' tests.
#[cfg(test)]
mod test_util {
    use candle_core::{Tensor, D};

    /// The largest absolute element-wise difference.
    pub fn max_diff(a: &Tensor, b: &Tensor) -> f32 {
        (a - b)
            .unwrap()
            .abs()
            .unwrap()
            .flatten_all()
            .unwrap()
            .max(D::Minus1)
            .unwrap()
            .to_scalar::<f32>()
            .unwrap()
    }
}

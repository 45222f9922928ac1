//! Arena planning: buffers with known sizes and lifetimes (first and last step that touches
//! them) get offsets in one block so buffers that are never live together share bytes. Greedy by
//! size, first fit (as TFLite Micro's greedy planner), plus the liveness lower bound to judge it.

use crate::error::{Error, Result};

/// Offsets are aligned to this many bytes so f32/i32 views of the arena are aligned.
pub const ALIGN: usize = 16;

/// The planner interface the interpreter uses.
pub trait MemoryPlanner {
    /// Registers a buffer live from step `first` to step `last` (inclusive); returns its id.
    fn add_buffer(&mut self, size: usize, first: u16, last: u16) -> Result<usize>;
    /// Assigns offsets; returns the total bytes needed.
    fn plan(&mut self) -> Result<usize>;
    /// Offset of buffer `id` after [`MemoryPlanner::plan`].
    fn offset(&self, id: usize) -> usize;
}

#[derive(Debug, Clone, Copy)]
struct Buf {
    size: usize,
    first: u16,
    last: u16,
    offset: usize,
}

/// Greedy first-fit planner holding at most `N` buffers.
#[derive(Debug)]
pub struct GreedyPlanner<const N: usize> {
    bufs: heapless::Vec<Buf, N>,
}

impl<const N: usize> Default for GreedyPlanner<N> {
    fn default() -> Self {
        GreedyPlanner {
            bufs: heapless::Vec::new(),
        }
    }
}

fn round_up(x: usize) -> Result<usize> {
    x.checked_add(ALIGN - 1)
        .map(|v| v & !(ALIGN - 1))
        .ok_or(Error::InvalidModel {
            reason: "tensor sizes overflow",
        })
}

impl<const N: usize> GreedyPlanner<N> {
    /// First-fit placement in the order `strategy` picks (see [`MemoryPlanner::plan`]);
    /// returns the total bytes.
    fn place(&mut self, strategy: u8) -> Result<usize> {
        let n = self.bufs.len();
        let mut order: heapless::Vec<u16, N> = (0..n as u16).collect();
        let bufs = &self.bufs;
        let span = |b: &Buf| (b.last - b.first) as usize + 1;
        order.sort_unstable_by(|&a, &b| {
            let (a, b) = (&bufs[a as usize], &bufs[b as usize]);
            let key = match strategy {
                0 => b.size.cmp(&a.size),
                1 => span(b).cmp(&span(a)).then(b.size.cmp(&a.size)),
                2 => (b.size.saturating_mul(span(b))).cmp(&a.size.saturating_mul(span(a))),
                _ => a.first.cmp(&b.first).then(b.size.cmp(&a.size)),
            };
            // Ties by earlier first use, then id: a stable, deterministic layout.
            key.then(a.first.cmp(&b.first))
                .then(a.last.cmp(&b.last))
                .then(a.size.cmp(&b.size))
        });
        let mut placed: heapless::Vec<u16, N> = heapless::Vec::new();
        let mut total = 0usize;
        for &id in &order {
            let me = self.bufs[id as usize];
            // Conflicting buffers already placed, by offset.
            let mut conflicts: heapless::Vec<(usize, usize), N> = heapless::Vec::new();
            for &p in &placed {
                let o = &self.bufs[p as usize];
                if o.first <= me.last && me.first <= o.last {
                    let _ = conflicts.push((o.offset, o.offset + o.size));
                }
            }
            conflicts.sort_unstable();
            let mut candidate = 0usize;
            for &(start, end) in &conflicts {
                if candidate.checked_add(me.size).ok_or(Error::InvalidModel {
                    reason: "arena size overflows",
                })? <= start
                {
                    break;
                }
                candidate = candidate.max(end);
            }
            self.bufs[id as usize].offset = candidate;
            total = total.max(candidate.checked_add(me.size).ok_or(Error::InvalidModel {
                reason: "arena size overflows",
            })?);
            let _ = placed.push(id);
        }
        Ok(total)
    }

    /// Largest sum of sizes of buffers live at one step: no plan can use less.
    pub fn lower_bound(&self) -> usize {
        let mut best = 0usize;
        for b in &self.bufs {
            // The maximum is reached at some buffer's first step.
            let t = b.first;
            let live: usize = self
                .bufs
                .iter()
                .filter(|o| o.first <= t && t <= o.last)
                .map(|o| o.size)
                .fold(0, usize::saturating_add);
            best = best.max(live);
        }
        best
    }
}

impl<const N: usize> MemoryPlanner for GreedyPlanner<N> {
    fn add_buffer(&mut self, size: usize, first: u16, last: u16) -> Result<usize> {
        let size = round_up(size)?;
        self.bufs
            .push(Buf {
                size,
                first,
                last: last.max(first),
                offset: 0,
            })
            .map_err(|_| Error::CapacityExceeded {
                what: "arena buffers",
                capacity: N,
            })?;
        Ok(self.bufs.len() - 1)
    }

    fn plan(&mut self) -> Result<usize> {
        // First fit under several orders, keeping the smallest: largest first (TFLite Micro's),
        // longest-lived first (long-lived buffers — DenseNet's growing concatenations — at
        // the bottom), size × lifetime, and first use. Each is a few quadratic passes.
        let mut best: Option<(usize, u8)> = None;
        for strategy in 0..4u8 {
            let total = self.place(strategy)?;
            if best.is_none_or(|(t, _)| total < t) {
                best = Some((total, strategy));
            }
        }
        let (total, strategy) = best.unwrap_or((0, 0));
        let again = self.place(strategy)?;
        debug_assert_eq!(again, total);
        Ok(total)
    }

    fn offset(&self, id: usize) -> usize {
        self.bufs.get(id).map(|b| b.offset).unwrap_or(0)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn disjoint_lifetimes_share_memory() {
        let mut p = GreedyPlanner::<8>::default();
        let a = p.add_buffer(100, 0, 1).unwrap();
        let b = p.add_buffer(100, 1, 2).unwrap();
        let c = p.add_buffer(100, 2, 3).unwrap();
        let total = p.plan().unwrap();
        assert_eq!(total, 224); // two 112-byte slots
        assert_eq!(p.offset(a), p.offset(c));
        assert_ne!(p.offset(a), p.offset(b));
        assert_eq!(p.lower_bound(), 224);
    }

    #[test]
    fn overlapping_buffers_never_overlap_in_memory() {
        let mut p = GreedyPlanner::<32>::default();
        let mut seed = 7u32;
        let mut spec = heapless::Vec::<(usize, u16, u16), 32>::new();
        for _ in 0..32 {
            seed = seed.wrapping_mul(1664525).wrapping_add(1013904223);
            let size = (seed >> 8) as usize % 1000 + 1;
            let first = (seed >> 20) as u16 % 10;
            let last = first + (seed >> 4) as u16 % 5;
            p.add_buffer(size, first, last).unwrap();
            spec.push((round_up(size).unwrap(), first, last)).unwrap();
        }
        let total = p.plan().unwrap();
        for i in 0..32 {
            for j in 0..i {
                let (si, fi, li) = spec[i];
                let (sj, fj, lj) = spec[j];
                if fi <= lj && fj <= li {
                    let (oi, oj) = (p.offset(i), p.offset(j));
                    assert!(
                        oi + si <= oj || oj + sj <= oi,
                        "buffers {i} and {j} overlap"
                    );
                }
            }
            assert!(p.offset(i) + spec[i].0 <= total);
        }
        assert!(total >= p.lower_bound());
    }
}

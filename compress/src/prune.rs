//! Gradual magnitude pruning (Zhu & Gupta 2017): at every `every` steps between `start` and
//! `end`, the weights with the smallest magnitudes are masked to zero so that sparsity follows
//! `s_t = s_f + (s_i − s_f)·(1 − (t − t0)/(n·Δt))^e`; the masks are re-applied after every
//! optimizer step, so pruned weights stay zero through fine-tuning (and QAT).

use candle_core::{DType, Tensor, Var};
use candle_nn::VarMap;

/// When and how far to prune.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct GradualSchedule {
    /// Sparsity at the first pruning step, s_i.
    pub initial: f64,
    /// Final sparsity, s_f, in [0, 1).
    pub target: f64,
    /// First pruning step, t0.
    pub start: usize,
    /// Step at which the target is reached, t0 + n·Δt.
    pub end: usize,
    /// Steps between mask updates, Δt.
    pub every: usize,
    /// The exponent e (3 in the paper).
    pub exponent: f64,
}

/// Which weights compete for the magnitude threshold.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Scope {
    /// Every layer is pruned to the scheduled sparsity on its own.
    PerLayer,
    /// One threshold over all layers' weights.
    Global,
}

impl GradualSchedule {
    /// Validates a schedule: sparsities in [0, 1), initial ≤ target, end after start, every ≥ 1.
    pub fn new(
        initial: f64,
        target: f64,
        start: usize,
        end: usize,
        every: usize,
    ) -> crate::Result<Self> {
        let bad = |m: String| Err(crate::Error::Invalid(format!("pruning schedule: {m}")));
        for (name, v) in [("initial sparsity", initial), ("target sparsity", target)] {
            if !(0.0..1.0).contains(&v) {
                return bad(format!("{name} {v} is outside [0, 1)"));
            }
        }
        if initial > target {
            return bad(format!(
                "initial sparsity {initial} exceeds the target {target}"
            ));
        }
        if end <= start {
            return bad(format!("ends at step {end}, not after its start {start}"));
        }
        if every == 0 {
            return bad("updates every 0 steps".into());
        }
        Ok(GradualSchedule {
            initial,
            target,
            start,
            end,
            every,
            exponent: 3.0,
        })
    }

    /// Scheduled sparsity at `step` (0 before the start, the target after the end; held between
    /// updates).
    pub fn at(&self, step: usize) -> f64 {
        if step < self.start {
            return 0.0;
        }
        if step >= self.end {
            return self.target;
        }
        let t = step - (step - self.start) % self.every; // last update step
        let frac = (t - self.start) as f64 / (self.end - self.start) as f64;
        self.target + (self.initial - self.target) * (1.0 - frac).powf(self.exponent)
    }

    /// Whether masks are recomputed at `step`.
    pub fn updates_at(&self, step: usize) -> bool {
        step >= self.start && step <= self.end && (step - self.start).is_multiple_of(self.every)
    }
}

/// Masks for the weight tensors (names ending in `weight`) of a model's variables.
pub struct Pruner {
    schedule: GradualSchedule,
    scope: Scope,
    weights: Vec<(String, Var)>,
    masks: Vec<Option<Tensor>>,
}

fn threshold(mut mags: Vec<f32>, sparsity: f64) -> f32 {
    let k = ((mags.len() as f64) * sparsity).floor() as usize;
    if k == 0 {
        return f32::NEG_INFINITY;
    }
    mags.sort_by(f32::total_cmp);
    mags[k - 1]
}

impl Pruner {
    /// A pruner over `vars`' weight tensors.
    pub fn new(vars: &VarMap, schedule: GradualSchedule, scope: Scope) -> Self {
        let data = vars.data().lock().expect("var map lock");
        let mut weights: Vec<(String, Var)> = data
            .iter()
            .filter(|(n, v)| n.ends_with("weight") && v.rank() >= 2 && !n.starts_with("kd_"))
            .map(|(n, v)| (n.clone(), v.clone()))
            .collect();
        weights.sort_by(|a, b| a.0.cmp(&b.0));
        let masks = vec![None; weights.len()];
        Pruner {
            schedule,
            scope,
            weights,
            masks,
        }
    }

    /// Call after every optimizer step: recomputes the masks on update steps, then zeroes the
    /// masked weights.
    pub fn after_step(&mut self, step: usize) -> candle_core::Result<()> {
        if self.schedule.updates_at(step) {
            let s = self.schedule.at(step);
            let abs: Vec<Vec<f32>> = self
                .weights
                .iter()
                .map(|(_, v)| v.as_tensor().abs()?.flatten_all()?.to_vec1::<f32>())
                .collect::<candle_core::Result<_>>()?;
            let global = match self.scope {
                Scope::Global => Some(threshold(abs.concat(), s)),
                Scope::PerLayer => None,
            };
            for (i, (_, v)) in self.weights.iter().enumerate() {
                let th = global.unwrap_or_else(|| threshold(abs[i].clone(), s));
                let mask = v.as_tensor().abs()?.gt(th as f64)?.to_dtype(DType::F32)?;
                self.masks[i] = Some(mask);
            }
        }
        for ((_, v), m) in self.weights.iter().zip(&self.masks) {
            if let Some(m) = m {
                v.set(&(v.as_tensor() * m)?)?;
            }
        }
        Ok(())
    }

    /// Keeps the zeros `vars` already has (a pruned model being fine-tuned, e.g. during QAT):
    /// masks are the non-zero pattern, never recomputed.
    pub fn keep_zeros(vars: &VarMap) -> candle_core::Result<Self> {
        // A schedule that never updates: target 0 and start beyond any step.
        let schedule = GradualSchedule {
            initial: 0.0,
            target: 0.0,
            start: usize::MAX - 1,
            end: usize::MAX,
            every: 1,
            exponent: 3.0,
        };
        let mut p = Pruner::new(vars, schedule, Scope::Global);
        for (i, (_, v)) in p.weights.iter().enumerate() {
            p.masks[i] = Some(v.as_tensor().ne(0.0)?.to_dtype(DType::F32)?);
        }
        Ok(p)
    }

    /// The masks as named tensors (`mask.<weight name>`) for a checkpoint.
    pub fn masks_state(&self) -> std::collections::HashMap<String, Tensor> {
        self.weights
            .iter()
            .zip(&self.masks)
            .filter_map(|((n, _), m)| m.as_ref().map(|m| (format!("mask.{n}"), m.clone())))
            .collect()
    }

    /// Restores masks written by [`Pruner::masks_state`] (absent ones stay unset).
    pub fn restore_masks(&mut self, state: &std::collections::HashMap<String, Tensor>) {
        for (i, (n, _)) in self.weights.iter().enumerate() {
            if let Some(m) = state.get(&format!("mask.{n}")) {
                self.masks[i] = Some(m.clone());
            }
        }
    }

    /// Fraction of pruned weights now (zeros over all weight elements).
    pub fn sparsity(&self) -> candle_core::Result<f64> {
        let (mut zeros, mut total) = (0usize, 0usize);
        for (_, v) in &self.weights {
            let w = v.as_tensor().flatten_all()?.to_vec1::<f32>()?;
            zeros += w.iter().filter(|x| **x == 0.0).count();
            total += w.len();
        }
        Ok(zeros as f64 / total.max(1) as f64)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn schedule_follows_the_cubic_formula() {
        let s = GradualSchedule::new(0.0, 0.8, 100, 1100, 100).unwrap();
        assert_eq!(s.at(0), 0.0);
        assert_eq!(s.at(100), 0.0);
        // t = 600: frac 0.5 → 0.8 + (0 − 0.8)·0.125 = 0.7
        assert!((s.at(600) - 0.7).abs() < 1e-12);
        // Held between updates.
        assert_eq!(s.at(650), s.at(600));
        assert_eq!(s.at(5000), 0.8);
        assert!(s.updates_at(300) && !s.updates_at(350) && !s.updates_at(1200));
    }

    #[test]
    fn bad_schedules_are_named_before_training() {
        let e = |r: crate::Result<GradualSchedule>| r.unwrap_err().to_string();
        assert!(e(GradualSchedule::new(0.0, 1.0, 0, 10, 1))
            .contains("target sparsity 1 is outside [0, 1)"));
        assert!(e(GradualSchedule::new(-0.1, 0.5, 0, 10, 1)).contains("initial sparsity"));
        assert!(e(GradualSchedule::new(0.0, 0.5, 10, 10, 1)).contains("not after its start"));
        assert!(e(GradualSchedule::new(0.0, 0.5, 0, 10, 0)).contains("every 0 steps"));
    }

    #[test]
    fn masks_reach_the_target_and_stay() {
        let vars = VarMap::new();
        let dev = candle_core::Device::Cpu;
        let vb = candle_nn::VarBuilder::from_varmap(&vars, DType::F32, &dev);
        let _l1 = candle_nn::linear(10, 20, vb.pp("a")).unwrap();
        let _l2 = candle_nn::linear(20, 5, vb.pp("b")).unwrap();
        for scope in [Scope::PerLayer, Scope::Global] {
            let s = GradualSchedule::new(0.0, 0.75, 0, 4, 1).unwrap();
            let mut p = Pruner::new(&vars, s, scope);
            for step in 0..=4 {
                p.after_step(step).unwrap();
            }
            let sp = p.sparsity().unwrap();
            assert!((sp - 0.75).abs() < 0.01, "{scope:?}: {sp}");
            // A later "optimizer step" that revives weights is masked again.
            for (_, v) in &p.weights {
                v.set(&(v.as_tensor() + 1.0).unwrap()).unwrap();
            }
            p.after_step(5).unwrap();
            assert!((p.sparsity().unwrap() - sp).abs() < 1e-9);
        }
    }
}

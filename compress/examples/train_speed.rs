//! Time of one training step (forward, cross-entropy, backward, SGD-momentum update) of the two
//! reference shapes, with sprig's training kernels and with candle's own ops, on random seeded
//! data. One JSON line per (model, kernels); `bench/train_speed.sh` runs this beside the same
//! models in PyTorch and prints the comparison table.
//!
//! ```sh
//! cargo run --release -p sprig-compress --example train_speed -- --steps 20
//! # options: --batch N, --model cnn|resnet20, --kernels sprig|candle
//! ```

use candle_core::{DType, Device, Tensor};
use candle_nn::{VarBuilder, VarMap};
use sprig_compress::optim::{Optim, OptimizerKind};
use sprig_models::arch::{ArchSpec, CnnModel, NoHooks};
use sprig_models::train_ops::Kernels;
use std::time::Instant;

/// The allocator the `sprig` binary trains with.
#[global_allocator]
static GLOBAL: mimalloc::MiMalloc = mimalloc::MiMalloc;

/// The two shapes of the comparison: the 2-conv CNN (1→32→64, 3×3, 28×28) and ResNet-20 (CIFAR
/// shape, 3×32×32, width 16).
fn shapes() -> Vec<(&'static str, ArchSpec)> {
    vec![
        (
            "cnn",
            ArchSpec::small_cnn("cnn", (1, 28, 28), 32, 64, None, 10),
        ),
        (
            "resnet20",
            ArchSpec::resnet("resnet20", (3, 32, 32), 3, 16, 10),
        ),
    ]
}

fn random(n: usize, seed: u64) -> Vec<f32> {
    let mut s = seed | 1;
    (0..n)
        .map(|_| {
            s ^= s << 13;
            s ^= s >> 7;
            s ^= s << 17;
            (s >> 40) as f32 / (1u64 << 24) as f32 * 2.0 - 1.0
        })
        .collect()
}

fn median(mut v: Vec<f64>) -> f64 {
    v.sort_by(f64::total_cmp);
    v[v.len() / 2]
}

fn main() -> anyhow::Result<()> {
    let args: Vec<String> = std::env::args().collect();
    let flag = |name: &str, default: usize| -> anyhow::Result<usize> {
        match args.iter().position(|a| a == name) {
            Some(i) => Ok(args
                .get(i + 1)
                .ok_or_else(|| anyhow::anyhow!("{name} needs a value"))?
                .parse()?),
            None => Ok(default),
        }
    };
    let (steps, batch) = (flag("--steps", 20)?, flag("--batch", 64)?);
    let only: Option<&str> = args
        .iter()
        .position(|a| a == "--kernels")
        .and_then(|i| args.get(i + 1))
        .map(String::as_str);
    let model_only: Option<&str> = args
        .iter()
        .position(|a| a == "--model")
        .and_then(|i| args.get(i + 1))
        .map(String::as_str);
    let dev = Device::Cpu;
    for (name, spec) in shapes() {
        if model_only.is_some_and(|m| m != name) {
            continue;
        }
        for (label, kernels) in [("sprig", Kernels::Sprig), ("candle", Kernels::Candle)] {
            if only.is_some_and(|o| o != label) {
                continue;
            }
            let vars = VarMap::new();
            let mut model = CnnModel::new(&spec, VarBuilder::from_varmap(&vars, DType::F32, &dev))?;
            model.set_kernels(kernels);
            let mut opt = Optim::new(&vars, OptimizerKind::Sgd { momentum: 0.9 }, 5e-4)?;
            let (c, h, w) = spec.input;
            let x = Tensor::from_vec(random(batch * c * h * w, 7), (batch, c, h, w), &dev)?;
            let y: Vec<u32> = (0..batch as u32).map(|i| i * 7 % 10).collect();
            let y = Tensor::from_vec(y, batch, &dev)?;
            let mut times = Vec::new();
            for step in 0..steps + 3 {
                let t0 = Instant::now();
                let (logits, _) = model.forward_t(&x, true, &mut NoHooks)?;
                let loss = candle_nn::loss::cross_entropy(&logits, &y)?;
                opt.backward_step(&loss, 0.01)?;
                // Three warm-up steps (allocator, thread pool) are not counted.
                if step >= 3 {
                    times.push(t0.elapsed().as_secs_f64() * 1e3);
                }
            }
            let ms = median(times);
            println!(
                "{{\"model\":\"{name}\",\"framework\":\"{label}\",\"batch\":{batch},\"threads\":{},\"step_ms\":{ms:.2},\"images_per_s\":{:.0}}}",
                candle_core::utils::get_num_threads(),
                batch as f64 / ms * 1e3
            );
        }
    }
    Ok(())
}

//! Writes the benchmark models to bench/models/: a ~106k-parameter Fashion-MNIST CNN (1 epoch
//! on 6,000 seeded training images — realistic weights and activation ranges, not a tuned
//! model) as float32 and int8 QDQ ONNX.
//!
//! cargo run --release -p sprig-compress --example bench_models

use candle_core::Device;
use sprig_compress::export::{export_f32, export_int8};
use sprig_compress::quantize::calibrate;
use sprig_compress::train::{accuracy, train, Run, TrainConfig};
use sprig_models::arch::ArchSpec;
use sprig_models::datasets::{load_spec, Split};
use std::path::Path;

fn main() -> Result<(), Box<dyn std::error::Error>> {
    let spec_path = "fashion-mnist:/usr/share/datasets/fashion-mnist";
    let (train_all, test) = (
        load_spec(spec_path, Split::Train)?,
        load_spec(spec_path, Split::Test)?,
    );
    let train_set = train_all.subset(&(0..6000).collect::<Vec<_>>());
    let spec = ArchSpec::small_cnn("fashion_cnn", (1, 28, 28), 16, 32, Some(64), 10);
    println!(
        "{}: {} parameters, {} MACs",
        spec.name,
        spec.param_count(),
        spec.macs()
    );
    let t = train(
        &spec,
        &train_set,
        &TrainConfig {
            epochs: 1,
            batch: 64,
            ..Default::default()
        },
        Run::default(),
        "fashion_cnn",
    )?;
    let test_small = test.subset(&(0..1000).collect::<Vec<_>>());
    println!(
        "float top-1 on 1000 test images: {:.2}%",
        100.0 * accuracy(&t.model, &test_small)?
    );
    let acts = calibrate(
        &t.model,
        &train_set.subset(&(0..256).collect::<Vec<_>>()),
        &Device::Cpu,
    )?;
    let out = Path::new(env!("CARGO_MANIFEST_DIR")).join("../bench/models");
    sprig_compress::write_file(
        &out.join("fashion_cnn.f32.onnx"),
        &export_f32(&spec, &t.model.weights()?),
    )?;
    sprig_compress::write_file(
        &out.join("fashion_cnn.int8.onnx"),
        &export_int8(&spec, &t.model.weights()?, &acts),
    )?;
    println!("wrote {}", out.display());
    Ok(())
}

//! Writes the benchmark models to bench/models/ as float32 and int8 QDQ ONNX: a ~106k-parameter
//! Fashion-MNIST CNN (1 epoch on 6,000 seeded training images) and a ResNet-20-shaped CIFAR
//! model (3×32×32 input, 16/32/64 channels, stride-2 stages, residual adds; 1 epoch on 1,024
//! Fashion-MNIST images padded to 32×32 and repeated over 3 channels, since CIFAR-10 is not on
//! this machine). Realistic weights and activation ranges for timing, not tuned models.
//!
//! cargo run --release -p sprig-compress --example bench_models

use candle_core::Device;
use sprig_compress::export::{export_f32, export_int8};
use sprig_compress::quantize::calibrate;
use sprig_compress::train::{accuracy, fold_bn, train, Run, TrainConfig};
use sprig_models::arch::ArchSpec;
use sprig_models::datasets::{load_spec, ImageSet, Split};
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
    resnet20(&train_all, &out)?;
    println!("wrote {}", out.display());
    Ok(())
}

/// 28×28 grey images as 32×32 RGB: zero border of 2, the grey value in every channel.
fn as_cifar_shape(set: &ImageSet) -> ImageSet {
    let mut images = Vec::with_capacity(set.len() * 3 * 32 * 32);
    for i in 0..set.len() {
        let img = set.image(i);
        for _ in 0..3 {
            for y in 0..32 {
                for x in 0..32 {
                    let inside = (2..30).contains(&y) && (2..30).contains(&x);
                    images.push(if inside {
                        img[(y - 2) * 28 + x - 2]
                    } else {
                        0.0
                    });
                }
            }
        }
    }
    ImageSet {
        images,
        labels: set.labels.clone(),
        chw: (3, 32, 32),
        classes: set.classes,
    }
}

fn resnet20(train_all: &ImageSet, out: &Path) -> Result<(), Box<dyn std::error::Error>> {
    let data = as_cifar_shape(&train_all.subset(&(0..1024).collect::<Vec<_>>()));
    let spec = ArchSpec::resnet("resnet20", (3, 32, 32), 3, 16, 10);
    println!(
        "{}: {} parameters, {} MACs",
        spec.name,
        spec.param_count(),
        spec.macs()
    );
    let t = train(
        &spec,
        &data,
        &TrainConfig {
            epochs: 1,
            batch: 64,
            ..Default::default()
        },
        Run::default(),
        "resnet20",
    )?;
    let folded = fold_bn(&t)?;
    let acts = calibrate(
        &folded.model,
        &data.subset(&(0..128).collect::<Vec<_>>()),
        &Device::Cpu,
    )?;
    let weights = folded.model.weights()?;
    sprig_compress::write_file(
        &out.join("resnet20.f32.onnx"),
        &export_f32(&spec.folded(), &weights),
    )?;
    sprig_compress::write_file(
        &out.join("resnet20.int8.onnx"),
        &export_int8(&spec.folded(), &weights, &acts),
    )?;
    Ok(())
}

//! `sprig demo`: the whole host pipeline on the embedded digits — train a teacher, train a
//! student alone and with Hinton KD, quantize the distilled student to int8 QDQ ONNX, run every
//! model on sprig-runtime and print the size / latency / accuracy table — then the hazard-zone
//! application on the simulated scene that ships with the repository ([`crate::demo_hazard`]).

use crate::eval::{evaluate, RuntimeStats};
use crate::export::{export_f32, export_int8};
use crate::quantize::calibrate;
use crate::train::{accuracy, train, HintonKd, TrainConfig};
use candle_core::Device;
use sprig_models::arch::ArchSpec;
use sprig_models::datasets::digits;
use std::path::Path;

/// One row of the demo table.
#[derive(Debug, Clone, serde::Serialize)]
pub struct Row {
    /// Model label.
    pub model: String,
    /// Parameters.
    pub params: usize,
    /// ONNX file bytes.
    pub file_bytes: usize,
    /// Float accuracy in candle (None for int8).
    pub float_top1: Option<f64>,
    /// Measured on sprig-runtime.
    pub runtime: RuntimeStats,
}

/// Runs the demo, writing ONNX files and `report.md` / `report.json` under `out`.
pub fn run(out: &Path, epochs: usize, quiet: bool) -> crate::Result<Vec<Row>> {
    let data = digits();
    let (train_set, test_set) = data.split(0.2, 0);
    println!(
        "data: scikit-learn digits (embedded), {} train / {} test images of 8x8",
        train_set.len(),
        test_set.len()
    );
    let cfg = TrainConfig {
        epochs,
        progress: !quiet,
        ..Default::default()
    };
    let teacher_spec = ArchSpec::small_cnn("teacher", (1, 8, 8), 32, 64, Some(128), 10);
    let student_spec = ArchSpec::small_cnn("student", (1, 8, 8), 4, 8, None, 10);
    let teacher = train(&teacher_spec, &train_set, &cfg, None, "teacher")?;
    let student = train(&student_spec, &train_set, &cfg, None, "student")?;
    let kd = HintonKd {
        alpha: 0.3,
        temperature: 4.0,
    };
    let distilled = train(
        &student_spec,
        &train_set,
        &cfg,
        Some((&teacher.model, kd)),
        "student + KD",
    )?;
    let calib = train_set.subset(&(0..256.min(train_set.len())).collect::<Vec<_>>());
    let acts = calibrate(&distilled.model, &calib, &Device::Cpu)?;

    let files: Vec<(&str, &ArchSpec, Vec<u8>, Option<f64>)> = vec![
        (
            "teacher f32",
            &teacher_spec,
            export_f32(&teacher_spec, &teacher.model.weights()?),
            Some(accuracy(&teacher.model, &test_set)?),
        ),
        (
            "student f32",
            &student_spec,
            export_f32(&student_spec, &student.model.weights()?),
            Some(accuracy(&student.model, &test_set)?),
        ),
        (
            "student+KD f32",
            &student_spec,
            export_f32(&student_spec, &distilled.model.weights()?),
            Some(accuracy(&distilled.model, &test_set)?),
        ),
        (
            "student+KD int8",
            &student_spec,
            export_int8(&student_spec, &distilled.model.weights()?, &acts),
            None,
        ),
    ];
    let names = [
        "teacher.f32.onnx",
        "student.f32.onnx",
        "student_kd.f32.onnx",
        "student_kd.int8.onnx",
    ];
    let mut rows = Vec::new();
    for ((label, spec, bytes, float_top1), name) in files.into_iter().zip(names) {
        crate::write_file(&out.join(name), &bytes)?;
        let runtime = evaluate(&bytes, &test_set, 200)?;
        rows.push(Row {
            model: label.into(),
            params: spec.param_count(),
            file_bytes: bytes.len(),
            float_top1,
            runtime,
        });
    }
    // A few test images as raw little-endian f32, for the board firmware and its host check.
    let samples: Vec<u8> = (0..8.min(test_set.len()))
        .flat_map(|i| {
            test_set
                .image(i)
                .iter()
                .flat_map(|v| v.to_le_bytes())
                .collect::<Vec<_>>()
        })
        .collect();
    crate::write_file(&out.join("samples.f32"), &samples)?;
    let table = markdown(&rows);
    println!("\n{table}");
    let hazard_rows = crate::demo_hazard::run(out, epochs, quiet)?;
    let hazard_table = crate::demo_hazard::markdown(&hazard_rows);
    println!(
        "files written to {}/ (open them in onnxruntime, tract or Netron)",
        out.display()
    );
    crate::write_file(&out.join("report.md"), format!("# sprig demo\n\nsklearn digits, {} test images; latency = median of 200 single-image runs on sprig-runtime (this machine).\n\n{table}\n## Hazard-zone alerts\n\nSimulated demo scene (scenes/demo), zones in scenes/demo/zones.toml; plot in hazard.png, alerts of the online tracker run in alerts.jsonl.\n\n{hazard_table}", test_set.len()).as_bytes())?;
    crate::write_file(
        &out.join("report.json"),
        serde_json::to_string_pretty(
            &serde_json::json!({"classifier": rows, "hazard": hazard_rows}),
        )
        .map_err(|e| crate::Error::Invalid(e.to_string()))?
        .as_bytes(),
    )?;
    Ok(rows)
}

/// The table as Markdown.
pub fn markdown(rows: &[Row]) -> String {
    let mut s = String::from("| model | params | file bytes | arena bytes | sprig-runtime latency (µs) | top-1 candle | top-1 sprig-runtime |\n|---|---:|---:|---:|---:|---:|---:|\n");
    for r in rows {
        s += &format!(
            "| {} | {} | {} | {} | {:.1} | {} | {:.2}% |\n",
            r.model,
            r.params,
            r.file_bytes,
            r.runtime.arena_bytes,
            r.runtime.median_us,
            r.float_top1
                .map(|a| format!("{:.2}%", 100.0 * a))
                .unwrap_or_else(|| "—".into()),
            100.0 * r.runtime.top1
        );
    }
    s
}

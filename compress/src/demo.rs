//! `sprig demo`: the whole host pipeline on the embedded digits — the recipe in
//! `recipes/digits.toml` (teacher, student alone, pruned, int8, distilled, and distillation +
//! pruning + quantization-aware training combined, each exported to ONNX and measured on
//! sprig-runtime) — then the hazard-zone application on the simulated scene that ships with the
//! repository ([`crate::demo_hazard`]).

use crate::pipeline::{self, Goal, Options, Report};
use crate::recipe::Plan;
use std::path::Path;

/// The recipe the demo runs.
pub const RECIPE: &str = include_str!("../../recipes/digits.toml");

/// Runs the demo, writing ONNX files and `report.md` / `report.json` / plots under `out`.
/// `epochs` overrides the recipe's epochs (pruning ends at 2/3 of them).
pub fn run(out: &Path, epochs: Option<usize>, quiet: bool) -> crate::Result<Report> {
    let recipe = Plan::peek(RECIPE, "recipes/digits.toml")?;
    let (train_set, test_set) = pipeline::load_data(
        &recipe.data.dataset,
        recipe.data.train_limit,
        recipe.data.test_limit,
    )?;
    println!(
        "data: scikit-learn digits (embedded), {} train / {} test images of 8x8",
        train_set.len(),
        test_set.len()
    );
    let mut src = RECIPE.to_string();
    if let Some(e) = epochs {
        let end = (2 * e / 3).max(1);
        src = src
            .replace("epochs = 30", &format!("epochs = {e}"))
            .replace(
                "start_epoch = 3",
                &format!("start_epoch = {}", (e / 10).min(end - 1)),
            )
            .replace("end_epoch = 20", &format!("end_epoch = {end}"));
    }
    let plan = Plan::parse(
        &src,
        "recipes/digits.toml",
        train_set.chw,
        train_set.classes,
        train_set.len(),
    )?;
    let opts = Options {
        out: out.to_path_buf(),
        resume: false,
        quiet,
        latency_runs: 200,
        stop_after: None,
        teacher_cache_mb: 256,
    };
    let report = pipeline::run(&plan, &train_set, &test_set, Goal::Compress, &opts)?;
    let table = pipeline::markdown(&report);
    println!("\n{table}");
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
    let hazard_rows = crate::demo_hazard::run(out, epochs.unwrap_or(30), quiet)?;
    let hazard_table = crate::demo_hazard::markdown(&hazard_rows);
    println!(
        "files written to {}/ (open them in onnxruntime, tract or Netron)",
        out.display()
    );
    let md = String::from_utf8_lossy(&crate::read_file(&out.join("report.md"))?).into_owned();
    crate::write_file(
        &out.join("report.md"),
        format!("{md}\n## Hazard-zone alerts\n\nSimulated demo scene (scenes/demo), zones in scenes/demo/zones.toml; plot in hazard.png, alerts of the online tracker run in alerts.jsonl.\n\n{hazard_table}").as_bytes(),
    )?;
    let js: serde_json::Value =
        serde_json::from_slice(&crate::read_file(&out.join("report.json"))?)
            .map_err(|e| crate::Error::Invalid(e.to_string()))?;
    crate::write_file(
        &out.join("report.json"),
        serde_json::to_string_pretty(&serde_json::json!({"classifier": js, "hazard": hazard_rows}))
            .map_err(|e| crate::Error::Invalid(e.to_string()))?
            .as_bytes(),
    )?;
    Ok(report)
}

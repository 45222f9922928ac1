//! The hazard half of `sprig demo`: trajectory teacher, student and distilled student trained on
//! simulated walkers, the distilled student exported to int8 and run by the device pipeline on
//! the short scene that ships with the repository (scenes/demo, simulated: see
//! compress/examples/make_demo_scene.rs).

use crate::hazard::{
    alert_json, evaluate_annotations, parse_zones, plot_scene, run_stream, trace_scene,
    AnyPredictor, DetectionFormat, HazardMetrics, MIN_WARNING_S,
};
use crate::trajectory::*;
use sprig_models::predictors::student_mlp;
use sprig_models::trajectory::{parse_annotations, simulate_walkers, tracks, windows};
use sprig_runtime::hazard::AlertPolicy;
use std::path::Path;

const SCENE: &str = include_str!("../../scenes/demo/walkers.txt");
const DETECTIONS: &str = include_str!("../../scenes/demo/detections.txt");
const ZONES: &str = include_str!("../../scenes/demo/zones.toml");

/// One row of the hazard table.
#[derive(Debug, Clone, serde::Serialize)]
pub struct HazardRow {
    /// Predictor label.
    pub model: String,
    /// ONNX file bytes (None for constant velocity and float teachers).
    pub file_bytes: Option<usize>,
    /// Figures on the demo scene.
    pub metrics: HazardMetrics,
}

/// Trains, exports, evaluates; returns the table rows and prints alerts of the tracker run.
pub fn run(out: &Path, epochs: usize, quiet: bool) -> crate::Result<Vec<HazardRow>> {
    // Training walkers: other seeds than the shipped scene, so the scene is unseen.
    let train: Vec<Window> = (0..12u64)
        .flat_map(|s| windows(&tracks(&simulate_walkers(100 + s, 60, 600, 20.0, 12.0))))
        .collect();
    let scene = parse_annotations(SCENE, Path::new("scenes/demo/walkers.txt"))?;
    let zones = parse_zones(ZONES, Path::new("scenes/demo/zones.toml"))?;
    println!(
        "\nhazard: {} simulated training windows; demo scene: {} annotations, {} zones",
        train.len(),
        scene.len(),
        zones.len()
    );
    let cfg = TrajTrainConfig {
        epochs: (epochs / 3).max(2),
        lr: 4e-3,
        progress: !quiet,
        ..Default::default()
    };
    let hidden = 64;
    let teacher = train_teacher(&train, hidden, &cfg, "trajectory teacher")?;
    let spec = student_mlp("traj-student", 64);
    let student = train_student(&spec, &train, &cfg, None, "trajectory student")?;
    let kd = TrajKd {
        output: 1.0,
        hidden: 1.0,
    };
    let distilled = train_student(
        &spec,
        &train,
        &cfg,
        Some((&teacher.model, hidden, kd)),
        "trajectory student + KD",
    )?;
    let calib = &train[..train.len().min(2000)];
    let s8 = export_student_int8(&student, calib, cfg.frame)?;
    let kd8 = export_student_int8(&distilled, calib, cfg.frame)?;
    crate::write_file(&out.join("trajectory_student.int8.onnx"), &s8)?;
    crate::write_file(&out.join("trajectory_student_kd.int8.onnx"), &kd8)?;

    let policy = AlertPolicy::default();
    let scenes = [scene.clone()];
    let mut rows = Vec::new();
    let test = windows(&tracks(&scene));
    let (t_ade, t_fde) = ade_fde(&test, &predict_teacher(&teacher.model, &test, cfg.frame)?);
    rows.push(HazardRow {
        model: "teacher GRU (float, ADE/FDE only)".into(),
        file_bytes: None,
        metrics: HazardMetrics {
            ade: t_ade,
            fde: t_fde,
            windows: test.len(),
            ..Default::default()
        },
    });
    for (label, bytes) in [
        ("constant velocity", None),
        ("student int8", Some(&s8)),
        ("student + KD int8", Some(&kd8)),
    ] {
        let mut p = match bytes {
            None => AnyPredictor::load("cv")?,
            Some(b) => AnyPredictor::from_bytes(b.clone(), label)?,
        };
        rows.push(HazardRow {
            model: label.into(),
            file_bytes: bytes.map(Vec::len),
            metrics: evaluate_annotations(&mut p, &scenes, &zones, policy, MIN_WARNING_S)?,
        });
    }
    println!("\n{}", markdown(&rows));

    // The online path a camera would use: anonymous noisy detections → tracker → model.
    let mut alerts = Vec::new();
    let sum = run_stream(
        AnyPredictor::from_bytes(kd8.clone(), "student + KD int8")?,
        &zones,
        std::io::Cursor::new(DETECTIONS),
        DetectionFormat::Points,
        None,
        AlertPolicy::default(),
        |a| alerts.push(alert_json(a, &zones)),
    )?;
    println!(
        "online pipeline on noisy anonymous detections (tracker, 64 tracks): {} frames, {} alerts; first ones:",
        sum.frames, sum.alerts
    );
    for a in alerts.iter().take(3) {
        println!("  {a}");
    }
    crate::write_file(&out.join("alerts.jsonl"), alerts.join("\n").as_bytes())?;
    let mut p = AnyPredictor::from_bytes(kd8, "student + KD int8")?;
    let trace = trace_scene(&mut p, scene, &zones, None, AlertPolicy::default())?;
    plot_scene(
        &out.join("hazard.png"),
        &format!(
            "demo scene — {} alerts (student + KD int8)",
            trace.alerts.len()
        ),
        &trace,
        &zones,
    )?;
    Ok(rows)
}

/// The hazard table as Markdown.
pub fn markdown(rows: &[HazardRow]) -> String {
    let mut s = String::from("| trajectory model | file bytes | ADE m | FDE m | precision | recall | mean lead s | false alerts/min |\n|---|---:|---:|---:|---:|---:|---:|---:|\n");
    for r in rows {
        let m = &r.metrics;
        let alerts = m.alerts > 0 || m.entries > 0;
        let f = |v: f64, p: usize| {
            if alerts {
                format!("{v:.p$}")
            } else {
                "—".into()
            }
        };
        s += &format!(
            "| {} | {} | {:.3} | {:.3} | {} | {} | {} | {} |\n",
            r.model,
            r.file_bytes.map_or("—".into(), |b| b.to_string()),
            m.ade,
            m.fde,
            f(m.precision, 2),
            f(m.recall, 2),
            f(m.mean_lead_time_s, 1),
            f(m.false_alerts_per_min, 1)
        );
    }
    s
}

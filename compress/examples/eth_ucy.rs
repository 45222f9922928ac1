//! ETH/UCY leave-one-out benchmark of the hazard application (the README tables).
//!
//! Per held-out scene: trains a GRU teacher, an MLP student alone and with output + hidden-state
//! distillation (all on the other scenes' train files), exports both students to int8 QDQ ONNX
//! (`out/eth-ucy/<scene>/`), then measures ADE/FDE of every stage beside constant velocity, and
//! the hazard-alert metrics of the device pipeline on the scene's zones
//! (`scenes/eth-ucy/<scene>.toml`), under the default alert policy and under the policy chosen
//! on the other four scenes (leave-one-scene-out, so the held-out scene never tunes its own).
//!
//! `cargo run --release -p sprig-compress --example eth_ucy -- [DATA_ROOT] [SCENE...]`
//! (DATA_ROOT defaults to ../shared/datasets/eth-ucy).

use sprig_compress::hazard::{
    evaluate, load_zones, sweep_policies, AnyPredictor, HazardMetrics, SweepPoint, MIN_WARNING_S,
};
use sprig_compress::trajectory::*;
use sprig_models::predictors::student_mlp;
use sprig_models::trajectory::{load_windows, split_files, TrajSplit};
use sprig_runtime::hazard::AlertPolicy;
use std::path::PathBuf;

const STAGES: [&str; 6] = [
    "constant velocity",
    "teacher (GRU, float)",
    "student (MLP, float)",
    "student (int8, sprig-runtime)",
    "student + KD (float)",
    "student + KD (int8, sprig-runtime)",
];
const HAZARD: [&str; 3] = ["constant velocity", "student (int8)", "student + KD (int8)"];

fn main() -> anyhow::Result<()> {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let root = PathBuf::from(
        args.first()
            .cloned()
            .unwrap_or("../shared/datasets/eth-ucy".into()),
    );
    let scenes: Vec<String> = if args.len() > 1 {
        args[1..].to_vec()
    } else {
        ["eth", "hotel", "univ", "zara1", "zara2"]
            .map(String::from)
            .to_vec()
    };
    let cfg = TrajTrainConfig {
        epochs: 16,
        ..Default::default()
    };
    let teacher_hidden = 128;
    let kd = TrajKd {
        output: 1.0,
        hidden: 1.0,
    };
    let spec = student_mlp("traj-student", 64);
    let mut ade: Vec<Vec<(f64, f64)>> = vec![Vec::new(); STAGES.len()];
    let mut hz: Vec<Vec<HazardMetrics>> = vec![Vec::new(); HAZARD.len()];
    // Per predictor, per scene: the whole policy grid.
    let mut sweeps: Vec<Vec<Vec<SweepPoint>>> = vec![Vec::new(); HAZARD.len()];
    let started = std::time::Instant::now();
    for scene in &scenes {
        let dir = root.join(scene);
        let train = load_windows(&dir, TrajSplit::Train)?;
        let test = load_windows(&dir, TrajSplit::Test)?;
        eprintln!(
            "{scene}: {} train windows, {} test windows",
            train.len(),
            test.len()
        );
        let teacher = train_teacher(&train, teacher_hidden, &cfg, &format!("{scene} teacher"))?;
        let student = train_student(&spec, &train, &cfg, None, &format!("{scene} student"))?;
        let kd_student = train_student(
            &spec,
            &train,
            &cfg,
            Some((&teacher.model, teacher_hidden, kd)),
            &format!("{scene} student + KD"),
        )?;
        let calib = &train[..train.len().min(4000)];
        let out = PathBuf::from("out/eth-ucy").join(scene);
        let s8 = export_student_int8(&student, calib)?;
        let kd8 = export_student_int8(&kd_student, calib)?;
        sprig_compress::write_file(&out.join("student.int8.onnx"), &s8)?;
        sprig_compress::write_file(&out.join("student_kd.int8.onnx"), &kd8)?;
        let preds = [
            predict_cv(&test),
            predict_teacher(&teacher.model, &test)?,
            predict_student(&student.model, &test)?,
            predict_runtime(&s8, &test)?,
            predict_student(&kd_student.model, &test)?,
            predict_runtime(&kd8, &test)?,
        ];
        for (i, p) in preds.iter().enumerate() {
            ade[i].push(ade_fde(&test, p));
        }
        let zones = load_zones(&PathBuf::from(format!("scenes/eth-ucy/{scene}.toml")))?;
        let files = split_files(&dir, TrajSplit::Test)?;
        let mut predictors = [
            AnyPredictor::load("cv")?,
            AnyPredictor::from_bytes(s8, "student int8")?,
            AnyPredictor::from_bytes(kd8, "student + KD int8")?,
        ];
        for (i, p) in predictors.iter_mut().enumerate() {
            hz[i].push(evaluate(
                p,
                &files,
                &zones,
                AlertPolicy::default(),
                MIN_WARNING_S,
            )?);
            sweeps[i].push(sweep_policies(
                p,
                &files,
                &zones,
                AlertPolicy::default().rearm,
                MIN_WARNING_S,
            )?);
        }
    }
    let n = scenes.len() as f64;
    println!("### ADE / FDE (m), 8 → 12 steps, leave-one-out\n");
    println!("| model | {} | average |", scenes.join(" | "));
    println!("|---|{}---|", "---|".repeat(scenes.len()));
    for (i, name) in STAGES.iter().enumerate() {
        let cells: Vec<String> = ade[i]
            .iter()
            .map(|(a, f)| format!("{a:.3} / {f:.3}"))
            .collect();
        let (sa, sf) = ade[i]
            .iter()
            .fold((0.0, 0.0), |(x, y), (a, f)| (x + a, y + f));
        println!(
            "| {name} | {} | **{:.3} / {:.3}** |",
            cells.join(" | "),
            sa / n,
            sf / n
        );
    }
    println!(
        "\n### Hazard alerts (precision / recall / mean lead time s / false alerts per min)\n"
    );
    println!("| predictor | {} | average |", scenes.join(" | "));
    println!("|---|{}---|", "---|".repeat(scenes.len()));
    for (i, name) in HAZARD.iter().enumerate() {
        let cells: Vec<String> = hz[i]
            .iter()
            .map(|m| {
                format!(
                    "{:.2} / {:.2} / {:.1} / {:.1}",
                    m.precision, m.recall, m.mean_lead_time_s, m.false_alerts_per_min
                )
            })
            .collect();
        print_hazard_row(name, &cells, &hz[i].iter().collect::<Vec<_>>());
    }
    println!(
        "\n### Hazard alerts, policy chosen on the other scenes (confirm / horizon s: precision / recall / mean lead time s / false alerts per min)\n"
    );
    println!("| predictor | {} | average |", scenes.join(" | "));
    println!("|---|{}---|", "---|".repeat(scenes.len()));
    for (i, name) in HAZARD.iter().enumerate() {
        let chosen: Vec<&SweepPoint> = (0..scenes.len())
            .map(|held| &sweeps[i][held][choose_policy(&sweeps[i], held)])
            .collect();
        let cells: Vec<String> = chosen
            .iter()
            .map(|p| {
                let m = &p.metrics;
                format!(
                    "{} / {:.1}: {:.2} / {:.2} / {:.1} / {:.1}",
                    p.confirm,
                    p.horizon_s,
                    m.precision,
                    m.recall,
                    m.mean_lead_time_s,
                    m.false_alerts_per_min
                )
            })
            .collect();
        let metrics: Vec<&HazardMetrics> = chosen.iter().map(|p| &p.metrics).collect();
        print_hazard_row(name, &cells, &metrics);
    }
    let entries: Vec<String> = hz[0].iter().map(|m| m.entries.to_string()).collect();
    println!("\nEligible zone entries per scene: {}.", entries.join(", "));
    eprintln!("finished in {:.0} s", started.elapsed().as_secs_f64());
    Ok(())
}

/// The grid index with the best mean F1 over every scene but `held`, among the policies whose
/// mean lead time there is at least 2 s (the warning a person needs); the default policy when no
/// other scene exists.
fn choose_policy(per_scene: &[Vec<SweepPoint>], held: usize) -> usize {
    let others: Vec<&Vec<SweepPoint>> = per_scene
        .iter()
        .enumerate()
        .filter(|&(k, _)| k != held)
        .map(|(_, v)| v)
        .collect();
    let default = per_scene[held]
        .iter()
        .position(|p| p.confirm == 2 && p.horizon_s == 4.8)
        .unwrap_or(0);
    if others.is_empty() {
        return default;
    }
    let mean = |j: usize, f: fn(&HazardMetrics) -> f64| {
        others.iter().map(|v| f(&v[j].metrics)).sum::<f64>() / others.len() as f64
    };
    (0..per_scene[held].len())
        .filter(|&j| mean(j, |m| m.mean_lead_time_s) >= 2.0)
        .max_by(|&a, &b| mean(a, |m| m.f1).total_cmp(&mean(b, |m| m.f1)))
        .unwrap_or(default)
}

/// One hazard table row: the per-scene `cells`, then the average of each metric in bold.
fn print_hazard_row(name: &str, cells: &[String], metrics: &[&HazardMetrics]) {
    let avg = |f: fn(&HazardMetrics) -> f64| {
        metrics.iter().map(|m| f(m)).sum::<f64>() / metrics.len().max(1) as f64
    };
    println!(
        "| {name} | {} | **{:.2} / {:.2} / {:.1} / {:.1}** |",
        cells.join(" | "),
        avg(|m| m.precision),
        avg(|m| m.recall),
        avg(|m| m.mean_lead_time_s),
        avg(|m| m.false_alerts_per_min)
    );
}

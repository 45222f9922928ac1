//! ETH/UCY leave-one-out benchmark of the hazard application (the README tables).
//!
//! Per held-out scene: trains a GRU teacher and two MLP students (the recipe's MLP-64 and a
//! 424-parameter MLP-8), each alone and with output + hidden-state distillation, on three seeds
//! (all on the other scenes' train files); exports the seed-0 students to int8 QDQ ONNX
//! (`out/eth-ucy/<scene>/mlp<H>[_kd].int8.onnx`), then measures ADE/FDE of every stage beside
//! constant velocity, the seed means alone against distilled, and the hazard-alert metrics of
//! the device pipeline on the scene's zones (`scenes/eth-ucy/<scene>.toml`), under the default
//! alert policy and under the policy chosen on the other four scenes (leave-one-scene-out, so
//! the held-out scene never tunes its own).
//!
//! `cargo run --release -p sprig-compress --example eth_ucy -- [--frame world|heading]
//! [DATA_ROOT] [SCENE...]` (DATA_ROOT defaults to ../shared/datasets/eth-ucy). `--frame
//! heading` trains every model in the heading frame (each window turned so its last observed
//! step points along +x, mirror images as augmentation) and writes to `out/eth-ucy-heading/`.

use sprig_compress::hazard::{
    evaluate, load_zones, sweep_policies, AnyPredictor, HazardMetrics, SweepPoint, MIN_WARNING_S,
};
use sprig_compress::trajectory::*;
use sprig_models::predictors::student_mlp;
use sprig_models::trajectory::{load_windows, split_files, Frame, TrajSplit};
use sprig_runtime::hazard::AlertPolicy;
use std::path::PathBuf;

/// The students: the recipe's MLP-64 (6,808 parameters), as good as the GRU teacher on these
/// scenes, so distillation has nothing to give it; and an MLP-8 (424 parameters), which alone
/// falls behind the teacher: the capacity gap distillation is for.
const STUDENTS: [(&str, usize); 2] = [("MLP-64", 64), ("MLP-8", 8)];
/// Seeds of the alone-vs-distilled comparison (the tables use seed 0).
const SEEDS: u64 = 3;

/// (ADE, FDE) of one student on each seed.
type SeedScores = Vec<(f64, f64)>;

fn main() -> anyhow::Result<()> {
    let mut args: Vec<String> = std::env::args().skip(1).collect();
    let mut frame = Frame::World;
    if let Some(i) = args.iter().position(|a| a == "--frame") {
        let value = args.get(i + 1).cloned().unwrap_or_default();
        frame = Frame::parse(&value)
            .ok_or_else(|| anyhow::anyhow!("--frame '{value}' (expected world or heading)"))?;
        args.drain(i..(i + 2).min(args.len()));
    }
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
        frame,
        ..Default::default()
    };
    let out_root = PathBuf::from(match frame {
        Frame::World => "out/eth-ucy",
        Frame::Heading => "out/eth-ucy-heading",
    });
    let teacher_hidden = 128;
    let kd = TrajKd {
        output: 1.0,
        hidden: 1.0,
    };
    let mut stages = vec![
        "constant velocity".to_string(),
        "teacher (GRU-128, float)".to_string(),
    ];
    let mut hazard_rows = vec!["constant velocity".to_string()];
    for (name, _) in STUDENTS {
        for kind in ["alone", "+ KD"] {
            stages.push(format!("student {name} {kind} (float)"));
            stages.push(format!("student {name} {kind} (int8, sprig-runtime)"));
            hazard_rows.push(format!("student {name} {kind} (int8)"));
        }
    }
    let mut ade: Vec<Vec<(f64, f64)>> = vec![Vec::new(); stages.len()];
    let mut hz: Vec<Vec<HazardMetrics>> = vec![Vec::new(); hazard_rows.len()];
    // Per student and scene: float ADE/FDE of every seed, alone and distilled.
    let mut seeds: Vec<Vec<[SeedScores; 2]>> = vec![Vec::new(); STUDENTS.len()];
    // Per predictor, per scene: the whole policy grid.
    let mut sweeps: Vec<Vec<Vec<SweepPoint>>> = vec![Vec::new(); hazard_rows.len()];
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
        let calib = &train[..train.len().min(4000)];
        let out = out_root.join(scene);
        let mut preds = vec![
            predict_cv(&test),
            predict_teacher(&teacher.model, &test, frame)?,
        ];
        let mut predictors = vec![AnyPredictor::load("cv")?];
        for (si, (name, hidden)) in STUDENTS.into_iter().enumerate() {
            let spec = student_mlp("traj-student", hidden);
            let mut per_seed = [Vec::new(), Vec::new()];
            for seed in 0..SEEDS {
                let cfg = TrajTrainConfig { seed, ..cfg };
                for (ki, teach) in [None, Some((&teacher.model, teacher_hidden, kd))]
                    .into_iter()
                    .enumerate()
                {
                    let label = format!(
                        "{scene} {name}{} seed {seed}",
                        if ki == 1 { " + KD" } else { "" }
                    );
                    let student = train_student(&spec, &train, &cfg, teach, &label)?;
                    let float = predict_student(&student.model, &test, frame)?;
                    per_seed[ki].push(ade_fde(&test, &float));
                    if seed > 0 {
                        continue;
                    }
                    let int8 = export_student_int8(&student, calib, frame)?;
                    let file = format!("mlp{hidden}{}.int8.onnx", if ki == 1 { "_kd" } else { "" });
                    sprig_compress::write_file(&out.join(&file), &int8)?;
                    preds.push(float);
                    preds.push(predict_runtime(&int8, &test)?);
                    predictors.push(AnyPredictor::from_bytes(int8, &format!("{name} int8"))?);
                }
            }
            seeds[si].push(per_seed);
        }
        for (i, p) in preds.iter().enumerate() {
            ade[i].push(ade_fde(&test, p));
        }
        let zones = load_zones(&PathBuf::from(format!("scenes/eth-ucy/{scene}.toml")))?;
        let files = split_files(&dir, TrajSplit::Test)?;
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
    let average = |v: &[(f64, f64)]| {
        let (a, f) = v.iter().fold((0.0, 0.0), |(x, y), (a, f)| (x + a, y + f));
        (a / v.len() as f64, f / v.len() as f64)
    };
    println!("### ADE / FDE (m), 8 → 12 steps, leave-one-out\n");
    println!("| model | {} | average |", scenes.join(" | "));
    println!("|---|{}---|", "---|".repeat(scenes.len()));
    for (i, name) in stages.iter().enumerate() {
        let cells: Vec<String> = ade[i]
            .iter()
            .map(|(a, f)| format!("{a:.3} / {f:.3}"))
            .collect();
        let (a, f) = average(&ade[i]);
        println!("| {name} | {} | **{a:.3} / {f:.3}** |", cells.join(" | "));
    }
    println!(
        "\n### Float students alone and distilled, mean ADE / FDE (m) over seeds 0–{}\n",
        SEEDS - 1
    );
    println!("| student | {} | average |", scenes.join(" | "));
    println!("|---|{}---|", "---|".repeat(scenes.len()));
    for (si, (name, _)) in STUDENTS.iter().enumerate() {
        for (ki, kind) in ["alone", "+ KD"].iter().enumerate() {
            let means: Vec<(f64, f64)> = seeds[si].iter().map(|s| average(&s[ki])).collect();
            let cells: Vec<String> = means
                .iter()
                .map(|(a, f)| format!("{a:.3} / {f:.3}"))
                .collect();
            let (a, f) = average(&means);
            println!(
                "| {name} {kind} | {} | **{a:.3} / {f:.3}** |",
                cells.join(" | ")
            );
        }
    }
    println!(
        "\n### Hazard alerts (precision / recall / mean lead time s / false alerts per min)\n"
    );
    println!("| predictor | {} | average |", scenes.join(" | "));
    println!("|---|{}---|", "---|".repeat(scenes.len()));
    for (i, name) in hazard_rows.iter().enumerate() {
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
    for (i, name) in hazard_rows.iter().enumerate() {
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

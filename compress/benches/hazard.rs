//! Per-frame latency of the full online hazard pipeline (tracker → trajectory model → zone
//! check → alert policy) with 64 pedestrians in view, on the host. Prints a table.
//!
//! `cargo bench -p sprig-compress --bench hazard`

use sprig_compress::hazard::{parse_zones, AnyPredictor, MAX_TRACKS};
use sprig_compress::trajectory::*;
use sprig_models::datasets::Rng;
use sprig_models::predictors::student_mlp;
use sprig_models::trajectory::{simulate_walkers, tracks, windows};
use sprig_runtime::hazard::{AlertPolicy, HazardPipeline, Point, TrackerConfig};
use std::time::Instant;

const ZONES: &str = include_str!("../../scenes/demo/zones.toml");

/// 64 walkers pacing back and forth across the crossing on lanes 0.35 m apart at 1.2 m/s, with
/// 5 cm detection noise: every track lives the whole run and keeps approaching the zones.
fn frames(n: usize) -> Vec<Vec<Point>> {
    let mut rng = Rng(1);
    (0..n)
        .map(|k| {
            (0..MAX_TRACKS)
                .map(|i| {
                    let s = (0.48 * k as f32 + 3.0 * i as f32) % 32.0;
                    let x = 2.0 + if s < 16.0 { s } else { 32.0 - s };
                    let y = 0.5 + i as f32 * 0.35;
                    let noise = (rng.unit() as f32 - 0.5) * 0.1;
                    Point::new(x + noise, y + noise)
                })
                .collect()
        })
        .collect()
}

fn bench(label: &str, predictor: AnyPredictor, frames: &[Vec<Point>]) {
    let zones = parse_zones(ZONES, std::path::Path::new("zones.toml")).unwrap();
    let mut p = HazardPipeline::<_, MAX_TRACKS>::new(
        predictor,
        &zones,
        TrackerConfig::default(),
        AlertPolicy::default(),
    )
    .unwrap();
    let mut alerts = heapless::Vec::new();
    let mut times = Vec::new();
    let before = p.predictions;
    let mut n_alerts = 0;
    for (k, dets) in frames.iter().enumerate() {
        let t0 = Instant::now();
        p.process(k as f64 * 0.4, dets, &mut alerts).unwrap();
        if k >= 10 {
            times.push(t0.elapsed().as_secs_f64() * 1e6);
        }
        n_alerts += alerts.len();
    }
    times.sort_by(f64::total_cmp);
    let med = times[times.len() / 2];
    let p99 = times[times.len() * 99 / 100];
    let per_frame = (p.predictions - before) as f64 / frames.len() as f64;
    println!(
        "| {label} | {} | {per_frame:.1} | {med:.0} | {p99:.0} | {n_alerts} |",
        p.tracker().tracks().len()
    );
}

fn main() {
    // A small int8 student trained for a few seconds on simulated walkers.
    let train: Vec<Window> = (0..4u64)
        .flat_map(|s| windows(&tracks(&simulate_walkers(300 + s, 60, 600, 20.0, 12.0))))
        .collect();
    let cfg = TrajTrainConfig {
        epochs: 2,
        progress: false,
        ..Default::default()
    };
    let student = train_student(&student_mlp("bench", 64), &train, &cfg, None, "bench").unwrap();
    let int8 = export_student_int8(&student, &train[..1000], cfg.frame).unwrap();
    let frames = frames(400);
    println!("| predictor | live tracks | predictions / frame | median µs / frame | p99 µs / frame | alerts |");
    println!("|---|---:|---:|---:|---:|---:|");
    bench(
        "constant velocity",
        AnyPredictor::load("cv").unwrap(),
        &frames,
    );
    bench(
        "int8 MLP student (16→64→64→24)",
        AnyPredictor::from_bytes(int8, "int8").unwrap(),
        &frames,
    );
}

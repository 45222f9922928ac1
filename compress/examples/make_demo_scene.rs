//! Writes the short scene `sprig demo` runs the hazard pipeline on (scenes/demo/). ETH/UCY may
//! not be redistributed, so the demo scene is simulated: 60 seeded walkers crossing a 20 × 12 m
//! area between opposite edges (sprig_models::trajectory::simulate_walkers), 2 minutes at
//! 2.5 Hz. Two files: the annotated paths (ETH/UCY format, with identities) and the same
//! positions as anonymous noisy detections (`t x y`, 5 cm noise, 3 % missed) for the tracker.
//!
//! `cargo run -p sprig-compress --example make_demo_scene`

use sprig_models::datasets::Rng;
use sprig_models::trajectory::{simulate_walkers, to_text, STEP_S};

fn main() -> anyhow::Result<()> {
    let ann = simulate_walkers(2026, 60, 300, 20.0, 12.0);
    std::fs::create_dir_all("scenes/demo")?;
    std::fs::write("scenes/demo/walkers.txt", to_text(&ann))?;
    let mut rng = Rng(7);
    let mut noise = move || {
        // Sum of uniforms: roughly Gaussian, σ ≈ 5 cm.
        ((0..4).map(|_| rng.unit()).sum::<f64>() - 2.0) * 0.0866
    };
    let mut det = String::from("# t_s x_m y_m  (simulated detections; see make_demo_scene.rs)\n");
    let mut drop = Rng(11);
    for a in &ann {
        if drop.unit() < 0.03 {
            continue;
        }
        let t = a.frame as f64 / 10.0 * STEP_S;
        det.push_str(&format!(
            "{t:.1} {:.3} {:.3}\n",
            a.xy[0] as f64 + noise(),
            a.xy[1] as f64 + noise()
        ));
    }
    std::fs::write("scenes/demo/detections.txt", det)?;
    println!(
        "wrote scenes/demo/walkers.txt and detections.txt ({} annotations)",
        ann.len()
    );
    Ok(())
}

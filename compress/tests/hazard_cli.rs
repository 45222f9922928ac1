//! `sprig hazard eval|run|plot` through the CLI contract: JSON keys, the baseline beside a
//! model, alerts as JSON lines, bad input counted, zone errors naming the zone, a PNG written.

use sprig_compress::trajectory::*;
use sprig_models::predictors::student_mlp;
use sprig_models::trajectory::{load_windows, TrajSplit};
use std::path::{Path, PathBuf};
use std::process::Command;

fn repo() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .parent()
        .unwrap()
        .to_path_buf()
}

fn eth_ucy() -> PathBuf {
    let p = repo().join("../shared/datasets/eth-ucy");
    assert!(
        p.exists(),
        "{} is missing (CI puts ../shared beside the clone)",
        p.display()
    );
    p
}

fn sprig(args: &[&str]) -> std::process::Output {
    Command::new(env!("CARGO_BIN_EXE_sprig"))
        .args(args)
        .current_dir(repo())
        .output()
        .expect("sprig runs")
}

fn tmp(name: &str) -> PathBuf {
    let d = std::env::temp_dir().join(format!("sprig-hazard-cli-{}", std::process::id()));
    std::fs::create_dir_all(&d).unwrap();
    d.join(name)
}

fn json(o: &std::process::Output) -> serde_json::Value {
    assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
    serde_json::from_slice(&o.stdout).expect("valid JSON")
}

#[test]
fn hazard_eval_json_has_the_contract_keys_and_the_baseline() {
    let o = sprig(&[
        "hazard",
        "eval",
        "--model",
        "cv",
        "--zones",
        "scenes/eth-ucy/zara1.toml",
        "--data",
        eth_ucy().join("zara1").to_str().unwrap(),
        "--json",
    ]);
    let v = json(&o);
    let num = |k: &str| {
        v[k].as_f64()
            .unwrap_or_else(|| panic!("no number {k} in {v}"))
    };
    for k in [
        "ade",
        "fde",
        "precision",
        "recall",
        "f1",
        "mean_lead_time_s",
        "false_alerts_per_min",
    ] {
        assert!(num(k).is_finite() && num(k) >= 0.0, "{k} = {}", num(k));
    }
    // ADE of constant velocity, computed independently from the test windows.
    let test = load_windows(&eth_ucy().join("zara1"), TrajSplit::Test).unwrap();
    let (ade, fde) = ade_fde(&test, &predict_cv(&test));
    assert!((num("ade") - ade).abs() < 1e-4, "{} vs {ade}", num("ade"));
    assert!((num("fde") - fde).abs() < 1e-4);
    assert!(num("recall") > 0.5 && num("precision") > 0.5);
}

#[test]
fn hazard_eval_of_a_model_reports_the_baseline_beside_it() {
    let dir = eth_ucy().join("zara1");
    let mut train = load_windows(&dir, TrajSplit::Train).unwrap();
    sprig_models::datasets::shuffle(&mut train, 5);
    train.truncate(2000);
    let cfg = TrajTrainConfig {
        epochs: 2,
        progress: false,
        ..Default::default()
    };
    let student = train_student(&student_mlp("s", 16), &train, &cfg, None, "s").unwrap();
    let int8 = export_student_int8(&student, &train[..500], cfg.frame).unwrap();
    let model = tmp("eval.int8.onnx");
    std::fs::write(&model, &int8).unwrap();
    let o = sprig(&[
        "hazard",
        "eval",
        "--model",
        model.to_str().unwrap(),
        "--zones",
        "scenes/eth-ucy/zara1.toml",
        "--data",
        eth_ucy().join("zara1").to_str().unwrap(),
        "--json",
    ]);
    let v = json(&o);
    let (m, b) = (
        v["ade"].as_f64().unwrap(),
        v["baseline"]["ade"].as_f64().unwrap(),
    );
    assert!(
        m.is_finite() && b.is_finite() && m != b,
        "model {m} vs baseline {b}"
    );
    assert_eq!(v["baseline"]["windows"], v["windows"]);
}

#[test]
fn hazard_eval_sweep_walks_the_policy_grid_against_one_ground_truth() {
    let scene = eth_ucy().join("zara1");
    let png = tmp("sweep.png");
    let args = |extra: &[&str]| {
        let mut a = vec![
            "hazard",
            "eval",
            "--model",
            "cv",
            "--zones",
            "scenes/eth-ucy/zara1.toml",
            "--data",
            scene.to_str().unwrap(),
        ];
        a.extend_from_slice(extra);
        a.into_iter().map(String::from).collect::<Vec<_>>()
    };
    let run = |a: Vec<String>| sprig(&a.iter().map(String::as_str).collect::<Vec<_>>());
    let v = json(&run(args(&[
        "--sweep",
        "--json",
        "--plot",
        png.to_str().unwrap(),
    ])));
    let pts = v["sweep"].as_array().expect("a sweep array");
    assert_eq!(pts.len(), 4 * 7, "confirm 1-4 x 7 horizons");
    // Every policy is judged against the same true entries.
    assert!(pts.iter().all(|p| p["entries"] == pts[0]["entries"]));
    // The default policy's point is the plain evaluation, figure for figure.
    let plain = json(&run(args(&["--json"])));
    let default = pts
        .iter()
        .find(|p| p["confirm"] == 2 && (p["horizon_s"].as_f64().unwrap() - 4.8).abs() < 1e-6)
        .expect("the default policy is on the grid");
    for k in [
        "precision",
        "recall",
        "mean_lead_time_s",
        "false_alerts_per_min",
        "alerts",
    ] {
        assert_eq!(default[k], plain[k], "{k}");
    }
    // A non-default policy changes what is raised.
    let strict = json(&run(args(&[
        "--json",
        "--confirm",
        "4",
        "--horizon",
        "2.4",
    ])));
    assert!(strict["alerts"].as_u64() < plain["alerts"].as_u64());
    assert_eq!(strict["entries"], plain["entries"]);
    let png_bytes = std::fs::read(&png).unwrap();
    assert_eq!(&png_bytes[1..4], b"PNG");
    // Conflicting and impossible settings are refused with the flag named.
    let o = run(args(&["--sweep", "--confirm", "3"]));
    assert!(!o.status.success());
    assert!(String::from_utf8_lossy(&o.stderr).contains("--confirm"));
    let o = run(args(&["--horizon", "6"]));
    assert!(String::from_utf8_lossy(&o.stderr).contains("outside (0, 4.8]"));
}

#[test]
fn hazard_run_streams_alerts_and_counts_bad_lines() {
    let mut det = std::fs::read_to_string(repo().join("scenes/demo/detections.txt")).unwrap();
    det.push_str("garbage line\n1.0 nan 2.0\n0.0 1.0 1.0\n");
    let f = tmp("det.txt");
    std::fs::write(&f, det).unwrap();
    let o = sprig(&[
        "hazard",
        "run",
        "--model",
        "cv",
        "--zones",
        "scenes/demo/zones.toml",
        "--detections",
        f.to_str().unwrap(),
    ]);
    assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
    let out = String::from_utf8_lossy(&o.stdout);
    let alerts: Vec<&str> = out.lines().collect();
    assert!(alerts.len() >= 5, "{out}");
    for a in &alerts {
        assert!(
            a.starts_with('{') && a.contains("\"zone\"") && a.contains("\"time_to_entry_s\""),
            "{a}"
        );
    }
    let err = String::from_utf8_lossy(&o.stderr);
    // The garbage line; the NaN detection shares its frame time with a past frame, so that
    // frame (and the 0.0 one) are out of order.
    assert!(err.contains("1 malformed lines"), "{err}");
    assert!(err.contains("out-of-order frames"), "{err}");
}

#[test]
fn bad_zone_file_is_one_line_naming_the_zone() {
    let z = tmp("bad.toml");
    std::fs::write(
        &z,
        "[[zone]]\nname = \"kerb\"\npolygon = [[0.0, 0.0], [1.0, 0.0]]\n",
    )
    .unwrap();
    let o = sprig(&[
        "hazard",
        "run",
        "--model",
        "cv",
        "--zones",
        z.to_str().unwrap(),
        "--detections",
        "-",
    ]);
    assert_eq!(o.status.code(), Some(1));
    let err = String::from_utf8_lossy(&o.stderr);
    assert_eq!(err.trim_end().lines().count(), 1, "{err}");
    assert!(
        err.contains("zone 'kerb'") && err.contains("at least 3"),
        "{err}"
    );
}

#[test]
fn hazard_plot_writes_a_png() {
    let png = tmp("scene.png");
    let o = sprig(&[
        "hazard",
        "plot",
        "--model",
        "cv",
        "--zones",
        "scenes/demo/zones.toml",
        "--data",
        "scenes/demo/walkers.txt",
        "--output",
        png.to_str().unwrap(),
    ]);
    assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
    let bytes = std::fs::read(&png).unwrap();
    assert_eq!(&bytes[..8], b"\x89PNG\r\n\x1a\n");
    assert!(bytes.len() > 10_000);
}

/// `sprig compress` with a `[trajectory]` recipe: teacher, student alone, distilled and
/// distilled + pruned, each exported to int8 and scored (ADE/FDE, alerts on the scene) beside
/// constant velocity; the pruned student keeps about the scheduled share of zeros, int8 costs
/// little ADE. Small and seeded (one simulated recording, two epochs), in the heading frame (the
/// other trajectory tests cover the world frame), so the int8 files must carry the
/// `residual-cv-heading` decode for their ADE to match the float models'.
#[test]
fn trajectory_recipe_trains_prunes_quantizes_and_reports() {
    let out = tmp("traj-recipe");
    let recipe = tmp("traj.toml");
    std::fs::write(
        &recipe,
        r#"[trajectory]
name = "tiny"
data = "simulated"
sim_recordings = 1
epochs = 2
seed = 3
frame = "heading"
[trajectory.prune]
sparsity = 0.5
start_epoch = 0
end_epoch = 1
every = 5
[trajectory.hazard]
scene = "scenes/demo/walkers.txt"
zones = "scenes/demo/zones.toml"
"#,
    )
    .unwrap();
    let o = sprig(&[
        "compress",
        "--recipe",
        recipe.to_str().unwrap(),
        "--out",
        out.to_str().unwrap(),
        "--quiet",
    ]);
    assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
    for f in [
        "student.int8.onnx",
        "student-kd.int8.onnx",
        "student-kd-pruned.int8.onnx",
        "tiny.int8.onnx",
        "report.md",
    ] {
        assert!(out.join(f).exists(), "{f} missing");
    }
    let v: serde_json::Value =
        serde_json::from_slice(&std::fs::read(out.join("report.json")).unwrap()).unwrap();
    let rows = v["rows"].as_array().unwrap();
    assert_eq!(rows.len(), 8, "{v}");
    let row = |m: &str| {
        rows.iter()
            .find(|r| r["model"] == m)
            .unwrap_or_else(|| panic!("no row {m}: {v}"))
    };
    let pruned = row("student + KD, pruned int8 (sprig-runtime)");
    let (params, nz) = (
        pruned["params"].as_f64().unwrap(),
        pruned["nonzeros"].as_f64().unwrap(),
    );
    // Half of every weight matrix (biases are not pruned: a few hundred of 6,808).
    assert!(nz > 0.45 * params && nz < 0.56 * params, "{nz} of {params}");
    for stage in ["student", "student + KD", "student + KD, pruned"] {
        let (f, q) = (
            row(&format!("{stage} f32")),
            row(&format!("{stage} int8 (sprig-runtime)")),
        );
        let (fa, qa) = (f["ade"].as_f64().unwrap(), q["ade"].as_f64().unwrap());
        assert!((fa - qa).abs() < 0.05, "{stage}: float ADE {fa}, int8 {qa}");
        assert!(q["hazard"]["recall"].is_number(), "{q}");
    }
    assert!(row("constant velocity")["hazard"]["precision"].is_number());
    let int8 = std::fs::read(out.join("tiny.int8.onnx")).unwrap();
    let m = sprig_runtime::Model::parse(&int8).unwrap();
    assert_eq!(
        m.metadata(sprig_runtime::hazard::predict::DECODE_KEY),
        Some("residual-cv-heading")
    );
    // Mistakes are named before anything trains.
    for (body, want) in [
        ("[trajectory]\nname = \"x\"\ndata = \"simulated\"\nepochz = 2\n", ":4: unknown field `epochz`"),
        ("[trajectory]\nname = \"x\"\ndata = \"kitti\"\n", "data 'kitti'"),
        (
            "[trajectory]\nname = \"x\"\ndata = \"simulated\"\nframe = \"north\"\n",
            "frame 'north' (expected world or heading)",
        ),
        (
            "[trajectory]\nname = \"x\"\ndata = \"simulated\"\nepochs = 2\n[trajectory.prune]\nsparsity = 0.5\nend_epoch = 3\n",
            "prune.end_epoch 3 is after the last epoch (2)",
        ),
        (
            "[trajectory]\nname = \"x\"\ndata = \"simulated\"\n[trajectory.prune]\nsparsity = 1.5\nend_epoch = 3\n",
            "target sparsity 1.5 is outside [0, 1)",
        ),
    ] {
        std::fs::write(&recipe, body).unwrap();
        let o = sprig(&["compress", "--recipe", recipe.to_str().unwrap(), "--out", out.join("bad").to_str().unwrap()]);
        assert_eq!(o.status.code(), Some(1));
        let e = String::from_utf8_lossy(&o.stderr);
        assert!(e.contains(want), "{e}");
        assert!(!out.join("bad").exists(), "a rejected recipe wrote output");
    }
}

/// A trajectory run that stopped part-way continues from its finished stages (`--resume`, or
/// a plain rerun) and reports exactly what an uninterrupted run reports; other settings retrain.
#[test]
fn trajectory_recipe_run_continues_from_finished_stages() {
    let out = tmp("traj-resume");
    let recipe = tmp("traj-resume.toml");
    let body = |seed: u64| {
        format!(
            "[trajectory]\nname = \"tiny\"\ndata = \"simulated\"\nsim_recordings = 1\nepochs = 2\nseed = {seed}\n\
             [trajectory.prune]\nsparsity = 0.5\nstart_epoch = 0\nend_epoch = 1\nevery = 5\n"
        )
    };
    let run = |extra: &[&str]| {
        let mut args = vec![
            "compress",
            "--recipe",
            recipe.to_str().unwrap(),
            "--out",
            out.to_str().unwrap(),
            "--quiet",
        ];
        args.extend_from_slice(extra);
        let o = sprig(&args);
        assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
        let rows = serde_json::from_slice::<serde_json::Value>(
            &std::fs::read(out.join("report.json")).unwrap(),
        )
        .unwrap()["rows"]
            .clone();
        (String::from_utf8_lossy(&o.stdout).into_owned(), rows)
    };
    std::fs::write(&recipe, body(4)).unwrap();
    let (said, whole) = run(&[]);
    assert!(!said.contains("reused"), "{said}");
    // As if the run had been killed while the pruned student trained.
    for ext in ["safetensors", "json"] {
        std::fs::remove_file(out.join(format!("ckpt/traj-student-kd-pruned.{ext}"))).unwrap();
    }
    std::fs::remove_file(out.join("report.json")).unwrap();
    let (said, resumed) = run(&["--resume"]);
    for stage in ["teacher", "student", "student-kd"] {
        assert!(
            said.contains(&format!("{stage}: reused")),
            "{stage}: {said}"
        );
    }
    assert!(!said.contains("student-kd-pruned: reused"), "{said}");
    assert_eq!(resumed, whole, "the continued run reports other figures");
    // Another seed: nothing is reused.
    std::fs::write(&recipe, body(5)).unwrap();
    let (said, other) = run(&["--resume"]);
    assert!(!said.contains("reused"), "{said}");
    assert_ne!(other, whole);
}

//! The hazard application end to end: on a seeded subset of ETH/UCY (../shared), a distilled
//! int8 trajectory student must run on sprig-runtime within a small distance of its float model
//! and agree with onnxruntime. (The CLI side is in compress/tests/hazard_cli.rs.)

use crate::support::{python, repo};
use sprig_compress::trajectory::*;
use sprig_models::predictors::student_mlp;
use sprig_models::trajectory::{load_windows, Frame, TrajSplit, PRED};
use std::path::PathBuf;
use std::process::Command;

fn eth_ucy() -> PathBuf {
    let p = repo().join("../shared/datasets/eth-ucy");
    assert!(
        p.exists(),
        "{} is missing (CI puts ../shared beside the clone)",
        p.display()
    );
    p
}

fn tmp(name: &str) -> PathBuf {
    let d = std::env::temp_dir().join(format!("sprig-hazard-{}", std::process::id()));
    std::fs::create_dir_all(&d).unwrap();
    d.join(name)
}

/// A small student (and teacher) trained in `frame` on 3000 seeded zara1-split windows.
fn small_int8_student(frame: Frame) -> (Vec<u8>, Vec<Path12>, Vec<Window>) {
    let dir = eth_ucy().join("zara1");
    let mut train = load_windows(&dir, TrajSplit::Train).unwrap();
    sprig_models::datasets::shuffle(&mut train, 3);
    train.truncate(3000);
    let test = load_windows(&dir, TrajSplit::Test).unwrap();
    let cfg = TrajTrainConfig {
        epochs: 3,
        progress: false,
        frame,
        ..Default::default()
    };
    let teacher = train_teacher(&train, 32, &cfg, "teacher").unwrap();
    let student = train_student(
        &student_mlp("s", 32),
        &train,
        &cfg,
        Some((
            &teacher.model,
            32,
            TrajKd {
                output: 1.0,
                hidden: 1.0,
            },
        )),
        "student",
    )
    .unwrap();
    let float = predict_student(&student.model, &test, frame).unwrap();
    (
        export_student_int8(&student, &train[..1000], frame).unwrap(),
        float,
        test,
    )
}

/// Mean distance (m) between two sets of predicted paths.
fn mean_gap(a: &[Path12], b: &[Path12]) -> f64 {
    a.iter()
        .zip(b)
        .flat_map(|(p, q)| {
            p.iter()
                .zip(q)
                .map(|(p, q)| (((p[0] - q[0]).powi(2) + (p[1] - q[1]).powi(2)) as f64).sqrt())
        })
        .sum::<f64>()
        / (a.len() * PRED) as f64
}

/// Int8 predictions on the runtime `rt` sit a few cm from the float model's (quantization
/// only) and are no wild guesses (ADE within 1.5× constant velocity's).
fn assert_int8_tracks_float(rt: &[Path12], float: &[Path12], test: &[Window]) {
    let gap = mean_gap(rt, float);
    assert!(gap < 0.05, "int8 vs float mean gap {gap:.4} m");
    let (ade_rt, _) = ade_fde(test, rt);
    let (ade_cv, _) = ade_fde(test, &predict_cv(test));
    assert!(
        ade_rt < 1.5 * ade_cv,
        "int8 ADE {ade_rt:.3} vs CV {ade_cv:.3}"
    );
}

#[test]
fn int8_student_tracks_its_float_model_and_onnxruntime() {
    let (int8, float, test) = small_int8_student(Frame::World);
    let rt = predict_runtime(&int8, &test).unwrap();
    assert_int8_tracks_float(&rt, &float, &test);

    // onnxruntime runs the same file on the same inputs; raw outputs within one output step.
    let model = tmp("traj.int8.onnx");
    std::fs::write(&model, &int8).unwrap();
    let inputs: Vec<u8> = test[..200]
        .iter()
        .flat_map(|w| sprig_models::trajectory::encode(w, 0.0).0)
        .flat_map(f32::to_le_bytes)
        .collect();
    let samples = tmp("traj.f32");
    std::fs::write(&samples, inputs).unwrap();
    let out = tmp("traj.ort.f32");
    let o = Command::new(python())
        .arg(repo().join("tests/ort_reference.py"))
        .args(["run"])
        .arg(&model)
        .arg(&samples)
        .arg(&out)
        .output()
        .expect("python runs");
    assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
    let ort: Vec<f32> = std::fs::read(&out)
        .unwrap()
        .chunks(4)
        .map(|c| f32::from_le_bytes(c.try_into().unwrap()))
        .collect();
    let m = sprig_runtime::Model::parse(&int8).unwrap();
    let mut arena = vec![0u8; m.arena_bytes().unwrap()];
    let mut it = sprig_runtime::Interpreter::new(&m, &mut arena).unwrap();
    let mut max_diff = 0f32;
    let mut diffs = Vec::new();
    let mut values = Vec::new();
    for (i, w) in test[..200].iter().enumerate() {
        it.set_input_f32(0, &sprig_models::trajectory::encode(w, 0.0).0)
            .unwrap();
        it.invoke().unwrap();
        let y = it.output(0).unwrap();
        for (a, b) in y
            .as_f32()
            .unwrap()
            .iter()
            .zip(&ort[i * 2 * PRED..(i + 1) * 2 * PRED])
        {
            max_diff = max_diff.max((a - b).abs());
            diffs.push((a - b).abs());
            values.push(*a);
        }
    }
    // The outputs are dequantized int8: they sit on a grid whose spacing is one output step.
    values.sort_by(f32::total_cmp);
    values.dedup();
    let step = values
        .windows(2)
        .map(|w| w[1] - w[0])
        .fold(f32::INFINITY, f32::min);
    assert!(step.is_finite() && step > 0.0);
    let off = diffs.iter().filter(|d| **d > step * 0.5).count() as f64 / diffs.len() as f64;
    // Requantization rounds once, half to even, like onnxruntime's float path: outputs agree
    // exactly but for exact ties (found 2.7% off by up to two steps with gemmlowp's double
    // rounding, which this test caught).
    assert!(
        max_diff <= 1.01 * step,
        "sprig vs onnxruntime {max_diff} > one step of {step}"
    );
    assert!(
        off < 0.001,
        "{:.2}% of outputs differ from onnxruntime",
        100.0 * off
    );
    eprintln!(
        "sprig vs onnxruntime: max {:.2} steps, {:.3}% of outputs differ",
        max_diff / step,
        100.0 * off
    );
}

/// A student trained in the heading frame: the runtime's `residual-cv-heading` decode (rotate
/// in, rotate back out) must match the training side's, so int8 on the device tracks the float
/// model as closely as in the world frame; and turning the whole scene turns the predictions
/// with it (orientation-free by construction, not only by augmentation).
#[test]
fn heading_frame_student_decodes_on_the_runtime_and_turns_with_the_scene() {
    let (int8, float, test) = small_int8_student(Frame::Heading);
    let m = sprig_runtime::Model::parse(&int8).unwrap();
    assert_eq!(
        sprig_runtime::hazard::Decode::of(&m),
        sprig_runtime::hazard::Decode::ResidualToConstantVelocityHeading
    );
    let rt = predict_runtime(&int8, &test).unwrap();
    assert_int8_tracks_float(&rt, &float, &test);
    // The scene turned by 2 rad about a far point: predictions turn with it (up to float
    // rounding of the rotated inputs, which int8 can amplify by at most a step or so).
    let (s, c) = 2.0f32.sin_cos();
    let turn = |p: [f32; 2]| [c * p[0] - s * p[1] + 7.0, s * p[0] + c * p[1] - 3.0];
    let turned: Vec<Window> = test.iter().map(|w| w.map(turn)).collect();
    let rt_turned = predict_runtime(&int8, &turned).unwrap();
    let expected: Vec<Path12> = rt.iter().map(|p| p.map(turn)).collect();
    let gap = mean_gap(&rt_turned, &expected);
    assert!(
        gap < 0.01,
        "turned scene: predictions off by {gap:.4} m on average"
    );
}

/// The per-frame hook of the stream loop (what drives sprig-edge's alarm pin): called once per
/// processed frame, its alert counts add up to the alerts emitted.
#[test]
fn the_stream_reports_every_frame_and_its_alerts() {
    use sprig_runtime::hazard::{
        stream, AlertPolicy, ConstantVelocity, HazardPipeline, Point, TrackerConfig,
    };
    let zones = sprig_compress::hazard::load_zones(&repo().join("scenes/demo/zones.toml")).unwrap();
    let det = std::fs::read(repo().join("scenes/demo/detections.txt")).unwrap();
    let mut p = HazardPipeline::<_, 64>::new(
        ConstantVelocity,
        &zones,
        TrackerConfig::default(),
        AlertPolicy::default(),
    )
    .unwrap();
    let (mut emitted, mut frames, mut counted, mut last_t) = (0u64, 0u64, 0u64, f64::MIN);
    let sum = stream::run_frames(
        &mut p,
        std::io::Cursor::new(det),
        false,
        &|x, y| Point::new(x, y),
        |_| emitted += 1,
        |t, alerts| {
            assert!(t > last_t, "frames in time order");
            last_t = t;
            frames += 1;
            counted += alerts as u64;
        },
    )
    .unwrap();
    assert!(sum.alerts > 0);
    assert_eq!(
        (frames, counted, emitted),
        (sum.frames, sum.alerts, sum.alerts)
    );
}

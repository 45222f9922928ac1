//! `sprig-edge`: the on-device daemon for Jetson-class aarch64 Linux boards.
//!
//! - `classify MODEL SAMPLES.f32` runs an int8 classifier on raw f32 images and prints each
//!   output's bytes (the Cortex-M firmware's format, so tests compare boards with the host).
//! - `hazard MODEL ZONES.toml DETECTIONS|-` runs the pedestrian hazard pipeline (64 tracks) on
//!   detection lines `TIME_S X Y` from a file or stdin and prints alerts as JSON lines, exactly
//!   the loop `sprig hazard run` runs on the host. (GPIO, UDP input and profiling: the boards
//!   issue.)

use sprig_runtime::hazard::{
    io::write_alert_json, stream, AlertPolicy, Decode, HazardPipeline, ModelPredictor, Point,
    TrackerConfig,
};
use sprig_runtime::{Interpreter, Model};
use std::io::Write;
use std::process::ExitCode;

fn hazard(model_path: &str, zones_path: &str, detections: &str) -> Result<(), String> {
    let bytes = std::fs::read(model_path).map_err(|e| format!("{model_path}: {e}"))?;
    let text = std::fs::read_to_string(zones_path).map_err(|e| format!("{zones_path}: {e}"))?;
    let zones = sprig_runtime::hazard::zones_toml::parse(&text)
        .map_err(|e| format!("{zones_path}: {e}"))?;
    let model = Model::parse(&bytes).map_err(|e| format!("{model_path}: {e}"))?;
    let mut arena = vec![0u8; model.arena_bytes().map_err(|e| e.to_string())?];
    let mut it = Interpreter::new(&model, &mut arena).map_err(|e| e.to_string())?;
    let predictor = ModelPredictor::new(&mut it, Decode::of(&model)).map_err(|e| e.to_string())?;
    let mut p = HazardPipeline::<_, 64>::new(
        predictor,
        &zones,
        TrackerConfig::default(),
        AlertPolicy::default(),
    )
    .map_err(|e| e.to_string())?;
    let input: Box<dyn std::io::BufRead> = if detections == "-" {
        Box::new(std::io::stdin().lock())
    } else {
        let f = std::fs::File::open(detections).map_err(|e| format!("{detections}: {e}"))?;
        Box::new(std::io::BufReader::new(f))
    };
    let mut out = std::io::stdout().lock();
    let mut line = String::new();
    let sum = stream::run(&mut p, input, false, &|x, y| Point::new(x, y), |a| {
        line.clear();
        let _ = write_alert_json(&mut line, a, zones[a.zone].name());
        // Alerts go out as they happen; a closed stdout ends nothing but the printing.
        let _ = writeln!(out, "{line}");
        let _ = out.flush();
    })
    .map_err(|e| format!("{e:?}"))?;
    eprintln!(
        "{} frames, {} detections, {} alerts; skipped: {} malformed lines, {} non-finite detections, {} out-of-order frames, {} over the track table",
        sum.frames, sum.detections, sum.alerts, sum.malformed_lines, sum.non_finite,
        sum.out_of_order_frames, sum.table_full
    );
    Ok(())
}

fn run(model_path: &str, samples_path: &str) -> Result<(), String> {
    let bytes = std::fs::read(model_path).map_err(|e| format!("{model_path}: {e}"))?;
    let samples = std::fs::read(samples_path).map_err(|e| format!("{samples_path}: {e}"))?;
    let model = Model::parse(&bytes).map_err(|e| format!("{model_path}: {e}"))?;
    let mut arena = vec![0u8; model.arena_bytes().map_err(|e| e.to_string())?];
    let mut it = Interpreter::new(&model, &mut arena).map_err(|e| e.to_string())?;
    let report = it.arena_report();
    println!(
        "arena {} bytes (persistent {}, working {}), {} steps",
        report.total, report.persistent, report.working, report.steps
    );
    let per = it.input_mut(0).map_err(|e| e.to_string())?.len();
    if per == 0 || samples.len() % per != 0 {
        return Err(format!(
            "{samples_path}: {} bytes is not a whole number of {per}-byte inputs",
            samples.len()
        ));
    }
    for (i, img) in samples.chunks_exact(per).enumerate() {
        it.set_input(0, img).map_err(|e| e.to_string())?;
        it.invoke().map_err(|e| e.to_string())?;
        let out = it.output(0).map_err(|e| e.to_string())?;
        println!("out {}: {:02x?}", i, out.data);
    }
    Ok(())
}

fn main() -> ExitCode {
    let args: Vec<String> = std::env::args().collect();
    let r = match args.as_slice() {
        [_, cmd, model, samples] if cmd == "classify" => run(model, samples),
        [_, cmd, model, zones, det] if cmd == "hazard" => hazard(model, zones, det),
        _ => {
            eprintln!(
                "usage: sprig-edge classify MODEL.onnx SAMPLES.f32\n       sprig-edge hazard MODEL.onnx ZONES.toml DETECTIONS|-"
            );
            return ExitCode::from(2);
        }
    };
    match r {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("error: {e}");
            ExitCode::FAILURE
        }
    }
}

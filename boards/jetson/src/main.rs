//! `sprig-edge`: the on-device daemon for Jetson-class aarch64 Linux boards. This first version
//! classifies raw f32 images with an int8 ONNX model on sprig-runtime and prints each output's
//! bytes, the same format as the Cortex-M firmware, so tests can check both boards against the
//! host. (Detections, alerts, GPIO and profiling arrive with the boards issue.)

use sprig_runtime::{Interpreter, Model};
use std::process::ExitCode;

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
    match args.as_slice() {
        [_, cmd, model, samples] if cmd == "classify" => match run(model, samples) {
            Ok(()) => ExitCode::SUCCESS,
            Err(e) => {
                eprintln!("error: {e}");
                ExitCode::FAILURE
            }
        },
        _ => {
            eprintln!("usage: sprig-edge classify MODEL.onnx SAMPLES.f32");
            ExitCode::from(2)
        }
    }
}

//! The `sprig` command line.

use anyhow::{bail, Context, Result};
use clap::{Parser, Subcommand};
use mimalloc::MiMalloc;
use sprig_compress::{npy, read_file};
use sprig_runtime::{Interpreter, Model, StepObserver};
use std::alloc::{GlobalAlloc, Layout};
use std::path::PathBuf;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::Instant;

/// Counts heap allocations so `sprig profile` can show that inference makes none. Underneath,
/// mimalloc: training allocates and frees many large tensors per step, and the system
/// allocator hands each back to the kernel and faults it in again (measured: a third slower).
struct CountingAlloc;
static ALLOCATIONS: AtomicUsize = AtomicUsize::new(0);

unsafe impl GlobalAlloc for CountingAlloc {
    unsafe fn alloc(&self, layout: Layout) -> *mut u8 {
        ALLOCATIONS.fetch_add(1, Ordering::Relaxed);
        unsafe { MiMalloc.alloc(layout) }
    }
    unsafe fn alloc_zeroed(&self, layout: Layout) -> *mut u8 {
        ALLOCATIONS.fetch_add(1, Ordering::Relaxed);
        unsafe { MiMalloc.alloc_zeroed(layout) }
    }
    unsafe fn realloc(&self, ptr: *mut u8, layout: Layout, new_size: usize) -> *mut u8 {
        ALLOCATIONS.fetch_add(1, Ordering::Relaxed);
        unsafe { MiMalloc.realloc(ptr, layout, new_size) }
    }
    unsafe fn dealloc(&self, ptr: *mut u8, layout: Layout) {
        unsafe { MiMalloc.dealloc(ptr, layout) }
    }
}

#[global_allocator]
static GLOBAL: CountingAlloc = CountingAlloc;

#[derive(Parser)]
#[command(
    name = "sprig",
    version,
    about = "Make neural networks small enough for edge devices, and run them there."
)]
struct Cli {
    #[command(subcommand)]
    cmd: Cmd,
}

#[derive(Subcommand)]
enum Cmd {
    /// The whole pipeline on embedded data (no downloads): train a teacher, a student alone and
    /// with knowledge distillation, export int8 QDQ ONNX, run everything on sprig-runtime and
    /// print the size / latency / accuracy table.
    Demo {
        /// Where to write the ONNX files and the report.
        #[arg(long, default_value = "out/demo")]
        out: PathBuf,
        /// Training epochs per model (default: the recipe's 30).
        #[arg(long)]
        epochs: Option<usize>,
        /// No progress bars.
        #[arg(long)]
        quiet: bool,
    },
    /// Train the recipe's teacher(s) and its student alone (float), export ONNX, report.
    Train(RecipeArgs),
    /// `train`, then the student with the recipe's distillation losses.
    Distill(RecipeArgs),
    /// The whole recipe: `distill`, plus gradual pruning, int8 quantization (QAT or PTQ) and all
    /// combined; writes OUT/NAME.int8.onnx, OUT/NAME.f32.onnx, report.md/json and plots.
    Compress(RecipeArgs),
    /// Post-training quantization of a float ONNX classifier to int8 QDQ, calibrated on
    /// images; prints float and int8 top-1 on the dataset's test split.
    Quantize {
        /// The float .onnx file (opset ≥ 13, one image input).
        model: PathBuf,
        /// Calibration images, `KIND[:PATH]` (digits, mnist:DIR, fashion-mnist:DIR, cifar10:DIR).
        #[arg(long)]
        calib: String,
        /// Calibration images used (the first N of a seeded shuffle of the training split).
        #[arg(long, default_value_t = 256)]
        samples: usize,
        /// Zero point 0 on every activation (TensorRT).
        #[arg(long)]
        symmetric: bool,
        /// Output file (default: MODEL with `.int8.onnx`).
        #[arg(long)]
        output: Option<PathBuf>,
    },
    /// Plans an int8 model for a microcontroller on the host and writes the plan (steps,
    /// tensor table, arena layout, prepared constants), which firmware loads with
    /// `InterpreterWith::new_frozen_in` instead of planning from the ONNX graph.
    Freeze {
        /// The int8 .onnx file.
        model: PathBuf,
        /// Output file (default: MODEL with `.plan` instead of `.onnx`).
        #[arg(long, short)]
        output: Option<PathBuf>,
    },
    /// Turns graph inputs into constants: a model that takes a shape, axes, bounds or
    /// quantization parameters as inputs (refused by the runtime's static plan) gets the values
    /// the device will always feed baked in as initializers.
    Bake {
        /// The .onnx file.
        model: PathBuf,
        /// `NAME=FILE`: the graph input and its value, a `.npy` array or a serialized ONNX
        /// TensorProto (`.pb`). Repeat for several inputs.
        #[arg(long = "input", value_name = "NAME=FILE", required = true)]
        inputs: Vec<String>,
        /// Output file (default: MODEL with `.baked.onnx`).
        #[arg(long, short)]
        output: Option<PathBuf>,
    },
    /// Top-1 accuracy of an ONNX classifier on sprig-runtime.
    Eval {
        /// The .onnx file.
        model: PathBuf,
        /// `KIND[:PATH]`: digits, mnist:DIR, fashion-mnist:DIR, cifar10:DIR (the test split is used).
        #[arg(long)]
        dataset: String,
        /// Only the first N test images.
        #[arg(long)]
        limit: Option<usize>,
        /// Print JSON (`top1`, `images`, `median_us`, `arena_bytes`, `host_arena_bytes`).
        #[arg(long)]
        json: bool,
        /// Compute a float16 model's float16 part in half precision (f16 multiply-accumulate,
        /// f16 weights), as sprig-edge --half does on a Jetson; the same results on every CPU.
        #[arg(long)]
        half: bool,
    },
    /// Run an ONNX model on sprig-runtime with NumPy .npy inputs.
    Run {
        /// The .onnx file.
        model: PathBuf,
        /// Input .npy files, in graph input order.
        #[arg(long = "input", required = true)]
        inputs: Vec<PathBuf>,
        /// Write the first output here as .npy.
        #[arg(long)]
        output: Option<PathBuf>,
    },
    /// Pedestrian hazard-zone alerts: run the online pipeline, evaluate it, or plot a scene.
    Hazard {
        #[command(subcommand)]
        cmd: HazardCmd,
    },
    /// Install sprig-edge, a model and (with --zones) the hazard service on a Jetson over
    /// ssh/scp, switching the model atomically.
    Deploy {
        /// The board kind (jetson: aarch64 Linux with systemd).
        #[arg(long, value_parser = ["jetson"])]
        board: String,
        /// USER@ADDR or an ssh config alias.
        #[arg(long)]
        host: String,
        /// The int8 model.
        model: PathBuf,
        /// Zone file: install and (re)start the hazard service.
        #[arg(long)]
        zones: Option<PathBuf>,
        /// Where the service reads detection lines on the board (a named pipe is made).
        #[arg(long, default_value = "/run/sprig/detections")]
        input: String,
        /// Install folder on the board.
        #[arg(long, default_value = "/opt/sprig")]
        prefix: String,
        /// systemd unit folder on the board.
        #[arg(long, default_value = "/etc/systemd/system")]
        unit_dir: String,
        /// Use this aarch64 sprig-edge instead of cross-building one.
        #[arg(long)]
        edge_binary: Option<PathBuf>,
        /// Install files only; leave the service as it is.
        #[arg(long)]
        no_restart: bool,
    },
    /// Per-op latency, arena bytes and heap allocations of a model on sprig-runtime — on this
    /// host, or built into a board's firmware/daemon and run under emulation (flash, RAM,
    /// instructions, outputs compared with the host).
    Profile {
        /// The .onnx file.
        model: PathBuf,
        /// host, jetson-qemu (sprig-edge under qemu-aarch64) or cortex-m-qemu (firmware under
        /// qemu-system-arm, 256 KB / 64 KB budget).
        #[arg(long, value_enum, default_value = "host")]
        board: sprig_compress::boards::Board,
        /// Timed inferences.
        #[arg(long, default_value_t = 200)]
        runs: usize,
        /// Print JSON instead of a table.
        #[arg(long)]
        json: bool,
        /// Use only the portable kernels (what a CPU without AVX2/VNNI/dotprod runs, and the
        /// arena it needs).
        #[arg(long)]
        portable: bool,
        /// Compute a float16 model's float16 part in half precision (f16 multiply-accumulate,
        /// f16 weights), host or jetson-qemu; the same results on every CPU.
        #[arg(long)]
        half: bool,
        /// cortex-m-qemu: the firmware loads a plan made on the host (`sprig freeze`) instead
        /// of planning from the ONNX graph (less flash: no ONNX reader, fusion or planner).
        #[arg(long)]
        frozen: bool,
    },
}

#[derive(clap::Args)]
struct RecipeArgs {
    /// The recipe TOML (see recipes/digits.toml).
    #[arg(long)]
    recipe: PathBuf,
    /// Output folder (default out/NAME, the recipe's name).
    #[arg(long)]
    out: Option<PathBuf>,
    /// Continue from the last per-epoch checkpoint of a run that was stopped.
    #[arg(long)]
    resume: bool,
    /// No progress bars.
    #[arg(long)]
    quiet: bool,
    /// Timed inferences per model on sprig-runtime.
    #[arg(long, default_value_t = 200)]
    latency_runs: usize,
    /// Stop every stage after N epochs of this process (to try --resume).
    #[arg(long, hide = true)]
    stop_after: Option<usize>,
    /// Memory (MiB) for remembering teacher outputs between distillation epochs when the
    /// recipe has no augmentation, so the teacher runs once per image; 0 runs it every step.
    #[arg(long, default_value_t = 4096, value_name = "MIB")]
    teacher_cache_mb: usize,
}

fn run_recipe(args: RecipeArgs, goal: sprig_compress::pipeline::Goal) -> Result<()> {
    use sprig_compress::pipeline;
    use sprig_compress::recipe::Plan;
    let origin = args.recipe.display().to_string();
    let src = String::from_utf8(read_file(&args.recipe)?)
        .with_context(|| format!("{origin}: not UTF-8 text"))?;
    if sprig_compress::traj_pipeline::is_trajectory_recipe(&src) {
        return run_trajectory_recipe(&args, goal, &src, &origin);
    }
    let recipe = Plan::peek(&src, &origin)?;
    let (train, test) = pipeline::load_recipe_data(&recipe.data)?;
    let plan = Plan::parse(&src, &origin, train.chw, train.classes, train.len())?;
    let out = args
        .out
        .unwrap_or_else(|| PathBuf::from("out").join(&recipe.name));
    println!(
        "{}: {} train / {} test images, output in {}",
        recipe.data.dataset,
        train.len(),
        test.len(),
        out.display()
    );
    let opts = pipeline::Options {
        out: out.clone(),
        resume: args.resume,
        quiet: args.quiet,
        latency_runs: args.latency_runs,
        stop_after: args.stop_after,
        teacher_cache_mb: args.teacher_cache_mb,
    };
    let report = pipeline::run(&plan, &train, &test, goal, &opts)?;
    println!("\n{}", pipeline::markdown(&report));
    println!("report: {}", out.join("report.md").display());
    Ok(())
}

/// A `[trajectory]` recipe: the hazard models (teacher, students, KD, pruning, int8).
fn run_trajectory_recipe(
    args: &RecipeArgs,
    goal: sprig_compress::pipeline::Goal,
    src: &str,
    origin: &str,
) -> Result<()> {
    use sprig_compress::traj_pipeline;
    if goal != sprig_compress::pipeline::Goal::Compress {
        bail!("{origin}: a [trajectory] recipe runs all its stages with `sprig compress`");
    }
    // Every finished stage is checkpointed and reused when its settings match, so a killed run
    // continues with or without --resume (crate::traj_ckpt).
    let r = traj_pipeline::parse(src, origin)?;
    let out = args
        .out
        .clone()
        .unwrap_or_else(|| PathBuf::from("out").join(&r.name));
    let report = traj_pipeline::run(&r, &out, args.quiet)?;
    println!("\n{}", traj_pipeline::markdown(&report));
    println!("report: {}", out.join("report.md").display());
    Ok(())
}

fn quantize(
    model: &std::path::Path,
    calib: &str,
    samples: usize,
    symmetric: bool,
    output: Option<PathBuf>,
) -> Result<()> {
    let bytes = load(model)?;
    let (calib_set, test) = sprig_compress::pipeline::load_data(calib, Some(samples), Some(1000))?;
    let (q, summary) = sprig_compress::ptq::quantize_onnx(&bytes, &calib_set, symmetric)
        .with_context(|| model.display().to_string())?;
    let out = output.unwrap_or_else(|| {
        let stem = model
            .file_name()
            .map(|s| s.to_string_lossy().into_owned())
            .unwrap_or_default();
        let stem = stem.trim_end_matches(".onnx").trim_end_matches(".f32");
        model.with_file_name(format!("{stem}.int8.onnx"))
    });
    sprig_compress::write_file(&out, &q)?;
    let f = sprig_compress::eval::evaluate(&bytes, &test, 50)?;
    let i = sprig_compress::eval::evaluate(&q, &test, 50)?;
    println!(
        "{}: {} weight tensors int8, {} activations quantized, calibrated on {} images",
        out.display(),
        summary.weights_quantized,
        summary.activations_quantized,
        summary.calibration_images
    );
    println!(
        "file {} → {} bytes; arena {} → {} bytes; median {:.1} → {:.1} µs; top-1 on {} test images {:.2}% → {:.2}%",
        bytes.len(),
        q.len(),
        f.arena_bytes,
        i.arena_bytes,
        f.median_us,
        i.median_us,
        test.len(),
        100.0 * f.top1,
        100.0 * i.top1
    );
    Ok(())
}

/// Plan options from the `--half` flag.
fn plan_options(half: bool) -> sprig_runtime::PlanOptions {
    sprig_runtime::PlanOptions {
        half_arithmetic: half,
        ..Default::default()
    }
}

fn eval(
    model: &std::path::Path,
    dataset: &str,
    limit: Option<usize>,
    json: bool,
    opts: sprig_runtime::PlanOptions,
) -> Result<()> {
    let bytes = load(model)?;
    let (_, test) = sprig_compress::pipeline::load_data(dataset, Some(1), limit)?;
    let stats = sprig_compress::eval::evaluate_with(&bytes, &test, 100, opts)
        .with_context(|| model.display().to_string())?;
    if json {
        println!(
            "{}",
            serde_json::json!({"model": model.display().to_string(), "dataset": dataset,
                "images": test.len(), "top1": stats.top1, "median_us": stats.median_us,
                "arena_bytes": stats.arena_bytes, "host_arena_bytes": stats.host_arena_bytes,
                "half_arithmetic": opts.half_arithmetic})
        );
    } else {
        println!(
            "{}: top-1 {:.2}% on {} {} test images; median {:.1} µs; arena {} bytes ({} on this host, with repacked weights)",
            model.display(),
            100.0 * stats.top1,
            test.len(),
            dataset,
            stats.median_us,
            stats.arena_bytes,
            stats.host_arena_bytes
        );
    }
    Ok(())
}

#[derive(Subcommand)]
enum HazardCmd {
    /// Online pipeline: detections → tracker → trajectory model → zone check → alerts as JSON
    /// lines. Bad lines, NaN coordinates and out-of-order frames are skipped and counted.
    Run {
        /// Trajectory model (.onnx), or `cv` for constant velocity.
        #[arg(long)]
        model: String,
        /// Zones TOML (`[[zone]] name = ".." polygon = [[x, y], ..]`, metres).
        #[arg(long)]
        zones: PathBuf,
        /// Detection file, or `-` for stdin. Lines `TIME_S X Y` (or `FRAME ID X Y` with
        /// `--format eth-ucy`).
        #[arg(long)]
        detections: String,
        /// `points` (anonymous, tracked here) or `eth-ucy` (identities given).
        #[arg(long, default_value = "points")]
        format: String,
        /// 3×3 image→ground homography file: detections are then image foot points in pixels.
        #[arg(long)]
        homography: Option<PathBuf>,
        #[command(flatten)]
        policy: PolicyArgs,
    },
    /// Trajectory (ADE/FDE) and alert (precision, recall, F1, lead time, false alerts/min)
    /// metrics on a scene's test files, with the constant-velocity baseline beside them.
    Eval {
        /// Trajectory model (.onnx), or `cv` for the baseline alone.
        #[arg(long)]
        model: String,
        /// Zones TOML.
        #[arg(long)]
        zones: PathBuf,
        /// A scene folder with a `test/` subfolder (e.g. ../shared/datasets/eth-ucy/eth), or
        /// one annotation file.
        #[arg(long)]
        data: PathBuf,
        /// Print JSON.
        #[arg(long)]
        json: bool,
        #[command(flatten)]
        policy: PolicyArgs,
        /// Evaluate a grid of policies (confirm 1–4 × horizon 4.8–2.4 s) instead of one, and
        /// mark those meeting recall ≥ 0.95, precision ≥ 0.90 and lead time ≥ 2 s.
        #[arg(long, conflicts_with_all = ["confirm", "horizon"])]
        sweep: bool,
        /// With --sweep: also write a precision–recall PNG here.
        #[arg(long, requires = "sweep")]
        plot: Option<PathBuf>,
    },
    /// PNG of a scene: true paths, zones, and the observed/predicted path behind each alert.
    Plot {
        /// Trajectory model (.onnx), or `cv`.
        #[arg(long)]
        model: String,
        /// Zones TOML.
        #[arg(long)]
        zones: PathBuf,
        /// Scene folder (its first test file is drawn) or one annotation file.
        #[arg(long)]
        data: PathBuf,
        /// Only frames FIRST..LAST (file frame numbers).
        #[arg(long, value_parser = parse_range)]
        frames: Option<(i64, i64)>,
        /// Output PNG.
        #[arg(long, default_value = "hazard.png")]
        output: PathBuf,
        #[command(flatten)]
        policy: PolicyArgs,
    },
}

/// The alert policy's knobs: fewer false alerts against later and fewer warnings.
#[derive(clap::Args)]
struct PolicyArgs {
    /// Consecutive predictions of entry (one per 0.4 s step) before a pedestrian's alert.
    #[arg(long, default_value_t = 2, value_parser = clap::value_parser!(u8).range(1..))]
    confirm: u8,
    /// Consecutive predictions without entry before the zone re-arms for that pedestrian.
    #[arg(long, default_value_t = 5, value_parser = clap::value_parser!(u8).range(1..))]
    rearm: u8,
    /// Only predicted entries this many seconds ahead or nearer alert (at most 4.8).
    #[arg(long, default_value_t = 4.8, value_parser = parse_horizon)]
    horizon: f32,
}

impl PolicyArgs {
    fn policy(&self) -> sprig_runtime::hazard::AlertPolicy {
        sprig_runtime::hazard::AlertPolicy {
            confirm: self.confirm,
            rearm: self.rearm,
            horizon_s: self.horizon,
        }
    }
}

fn parse_horizon(s: &str) -> std::result::Result<f32, String> {
    let h: f32 = s.trim().parse().map_err(|e| format!("'{s}': {e}"))?;
    let max = sprig_runtime::hazard::PRED_STEPS as f32 * sprig_runtime::hazard::STEP_S;
    if !(h > 0.0 && h <= max + 1e-4) {
        return Err(format!(
            "horizon {h} s is outside (0, {max}] (the model predicts {max} s)"
        ));
    }
    Ok(h)
}

fn parse_range(s: &str) -> std::result::Result<(i64, i64), String> {
    let (a, b) = s
        .split_once("..")
        .ok_or_else(|| format!("'{s}' is not a range FIRST..LAST"))?;
    let p = |x: &str| x.trim().parse::<i64>().map_err(|e| format!("'{x}': {e}"));
    let (a, b) = (p(a)?, p(b)?);
    if b < a {
        return Err(format!("range {a}..{b} ends before it starts"));
    }
    Ok((a, b))
}

/// Test files of a scene folder, or the single file given.
fn scene_files(data: &std::path::Path) -> Result<Vec<PathBuf>> {
    if data.is_file() {
        return Ok(vec![data.to_path_buf()]);
    }
    if !data.exists() {
        bail!("{}: no such scene folder or file", data.display());
    }
    Ok(sprig_models::trajectory::split_files(
        data,
        sprig_models::trajectory::TrajSplit::Test,
    )?)
}

fn hazard(cmd: HazardCmd) -> Result<()> {
    use sprig_compress::hazard::*;
    match cmd {
        HazardCmd::Run {
            model,
            zones,
            detections,
            format,
            homography,
            policy,
        } => {
            let zones = load_zones(&zones)?;
            let predictor = AnyPredictor::load(&model)?;
            let format = match format.as_str() {
                "points" => DetectionFormat::Points,
                "eth-ucy" => DetectionFormat::EthUcy,
                other => bail!("unknown detection format '{other}' (expected points or eth-ucy)"),
            };
            let homography = match homography {
                Some(p) => Some(Homography::parse(
                    &String::from_utf8_lossy(&read_file(&p)?),
                    &p,
                )?),
                None => None,
            };
            let input: Box<dyn std::io::BufRead> = if detections == "-" {
                Box::new(std::io::stdin().lock())
            } else {
                let f = std::fs::File::open(&detections)
                    .with_context(|| format!("{detections}: cannot open"))?;
                Box::new(std::io::BufReader::new(f))
            };
            let sum = run_stream(
                predictor,
                &zones,
                input,
                format,
                homography,
                policy.policy(),
                |a| println!("{}", alert_json(a, &zones)),
            )?;
            eprintln!(
                "{} frames, {} detections, {} alerts, {} predictions; skipped: {} malformed lines, {} non-finite detections, {} out-of-order frames, {} pedestrians over the {}-track table",
                sum.frames, sum.detections, sum.alerts, sum.predictions, sum.malformed_lines,
                sum.non_finite, sum.out_of_order_frames, sum.table_full, MAX_TRACKS
            );
            Ok(())
        }
        HazardCmd::Eval {
            model,
            zones,
            data,
            json,
            policy,
            sweep,
            plot,
        } => {
            let zones = load_zones(&zones)?;
            let files = scene_files(&data)?;
            if sweep {
                let mut predictor = AnyPredictor::load(&model)?;
                let points =
                    sweep_policies(&mut predictor, &files, &zones, policy.rearm, MIN_WARNING_S)?;
                if let Some(path) = &plot {
                    let title = format!("{} on {}", predictor.label, data.display());
                    plot_sweep(path, &title, &points)?;
                }
                if json {
                    let v = serde_json::json!({"model": predictor.label, "sweep": points});
                    println!("{}", serde_json::to_string_pretty(&v)?);
                } else {
                    println!(
                        "{:>7} {:>9} {:>9} {:>7} {:>7} {:>7} {:>13}  targets",
                        "confirm", "horizon s", "precision", "recall", "F1", "lead s", "false/min"
                    );
                    for p in &points {
                        let m = &p.metrics;
                        println!(
                            "{:>7} {:>9.1} {:>9.3} {:>7.3} {:>7.3} {:>7.2} {:>13.2}  {}",
                            p.confirm,
                            p.horizon_s,
                            m.precision,
                            m.recall,
                            m.f1,
                            m.mean_lead_time_s,
                            m.false_alerts_per_min,
                            if p.meets_targets() { "met" } else { "" }
                        );
                    }
                    if let Some(path) = &plot {
                        println!("wrote {}", path.display());
                    }
                }
                return Ok(());
            }
            let policy = policy.policy();
            let mut predictor = AnyPredictor::load(&model)?;
            let m = evaluate(&mut predictor, &files, &zones, policy, MIN_WARNING_S)?;
            let base = if model == "cv" {
                None
            } else {
                Some(evaluate(
                    &mut AnyPredictor::load("cv")?,
                    &files,
                    &zones,
                    policy,
                    MIN_WARNING_S,
                )?)
            };
            if json {
                let mut v = serde_json::to_value(&m)?;
                if let Some(b) = &base {
                    v["baseline"] = serde_json::to_value(b)?;
                }
                v["model"] = predictor.label.clone().into();
                println!("{}", serde_json::to_string_pretty(&v)?);
            } else {
                println!(
                    "{:<28} {:>7} {:>7} {:>9} {:>7} {:>7} {:>10} {:>13}",
                    "predictor",
                    "ADE m",
                    "FDE m",
                    "precision",
                    "recall",
                    "F1",
                    "lead s",
                    "false/min"
                );
                let row = |name: &str, m: &HazardMetrics| {
                    println!(
                        "{:<28} {:>7.3} {:>7.3} {:>9.3} {:>7.3} {:>7.3} {:>10.2} {:>13.2}",
                        name,
                        m.ade,
                        m.fde,
                        m.precision,
                        m.recall,
                        m.f1,
                        m.mean_lead_time_s,
                        m.false_alerts_per_min
                    )
                };
                row(&predictor.label, &m);
                if let Some(b) = &base {
                    row("constant velocity", b);
                }
                println!(
                    "{} windows, {} alerts, {} eligible zone entries, {:.1} min of scene",
                    m.windows, m.alerts, m.entries, m.minutes
                );
            }
            Ok(())
        }
        HazardCmd::Plot {
            model,
            zones,
            data,
            frames,
            output,
            policy,
        } => {
            let zones = load_zones(&zones)?;
            let file = scene_files(&data)?.remove(0);
            let mut predictor = AnyPredictor::load(&model)?;
            let ann = sprig_models::trajectory::load_annotations(&file)?;
            let trace = trace_scene(&mut predictor, ann, &zones, frames, policy.policy())?;
            let title = format!(
                "{} — {} alerts ({})",
                file.file_name()
                    .map(|f| f.to_string_lossy())
                    .unwrap_or_default(),
                trace.alerts.len(),
                predictor.label
            );
            plot_scene(&output, &title, &trace, &zones)?;
            println!(
                "wrote {} ({} alerts drawn)",
                output.display(),
                trace.alerts.len()
            );
            Ok(())
        }
    }
}

fn main() {
    let cli = match Cli::try_parse() {
        Ok(c) => c,
        Err(e) => {
            use clap::error::ErrorKind;
            if matches!(
                e.kind(),
                ErrorKind::DisplayHelp
                    | ErrorKind::DisplayVersion
                    | ErrorKind::DisplayHelpOnMissingArgumentOrSubcommand
            ) {
                let _ = e.print();
                std::process::exit(
                    if e.kind() == ErrorKind::DisplayHelpOnMissingArgumentOrSubcommand {
                        2
                    } else {
                        0
                    },
                );
            }
            // clap's message up to its usage block, on one line ("required arguments were not
            // provided: --sweep"), without the usage it repeats from --help.
            let msg = e.to_string();
            let head: Vec<&str> = msg
                .lines()
                .take_while(|l| !l.trim().is_empty())
                .map(str::trim)
                .collect();
            let head = if head.is_empty() {
                "invalid arguments".to_string()
            } else {
                head.join(" ")
            };
            eprintln!("{head} (see sprig --help)");
            std::process::exit(2);
        }
    };
    if let Err(e) = dispatch(cli.cmd) {
        eprintln!(
            "error: {}{}",
            format!("{e:#}").replace('\n', " "),
            bake_hint(&e)
        );
        std::process::exit(1);
    }
}

/// A plan refused because a shape, axes or quantization parameter is not a constant is usually
/// a graph input the device always feeds the same value: say how to bake it in.
fn bake_hint(e: &anyhow::Error) -> &'static str {
    let runtime = e.chain().find_map(|c| {
        c.downcast_ref::<sprig_runtime::Error>().or_else(|| {
            match c.downcast_ref::<sprig_compress::Error>() {
                Some(sprig_compress::Error::Runtime(r)) => Some(r),
                _ => None,
            }
        })
    });
    match runtime {
        Some(sprig_runtime::Error::Unsupported { what, .. }) if what.starts_with("non-constant") => {
            " (if the graph takes it as an input, bake the value in: sprig bake MODEL --input NAME=FILE)"
        }
        _ => "",
    }
}

fn dispatch(cmd: Cmd) -> Result<()> {
    match cmd {
        Cmd::Hazard { cmd } => hazard(cmd),
        Cmd::Demo { out, epochs, quiet } => {
            let t = Instant::now();
            sprig_compress::demo::run(&out, epochs, quiet)?;
            println!("demo finished in {:.1} s", t.elapsed().as_secs_f64());
            Ok(())
        }
        Cmd::Train(a) => run_recipe(a, sprig_compress::pipeline::Goal::Train),
        Cmd::Distill(a) => run_recipe(a, sprig_compress::pipeline::Goal::Distill),
        Cmd::Compress(a) => run_recipe(a, sprig_compress::pipeline::Goal::Compress),
        Cmd::Eval {
            model,
            dataset,
            limit,
            json,
            half,
        } => eval(&model, &dataset, limit, json, plan_options(half)),
        Cmd::Quantize {
            model,
            calib,
            samples,
            symmetric,
            output,
        } => quantize(&model, &calib, samples, symmetric, output),
        Cmd::Run {
            model,
            inputs,
            output,
        } => run(&model, &inputs, output.as_deref()),
        Cmd::Deploy {
            board: _,
            host,
            model,
            zones,
            input,
            prefix,
            unit_dir,
            edge_binary,
            no_restart,
        } => {
            let d = sprig_compress::deploy::Deploy {
                host,
                model,
                zones,
                input,
                prefix,
                unit_dir,
                edge_binary,
                no_restart,
            };
            for line in sprig_compress::deploy::deploy(&d)? {
                println!("{line}");
            }
            Ok(())
        }
        Cmd::Profile {
            model,
            board,
            runs,
            json,
            portable,
            half,
            frozen,
        } => {
            sprig_runtime::kernels::set_portable_only(portable);
            let opts = plan_options(half);
            match board {
                sprig_compress::boards::Board::CortexMQemu if half => bail!(
                    "--half is for host and jetson-qemu: the Cortex-M4F has no float16 arithmetic"
                ),
                sprig_compress::boards::Board::CortexMQemu => {
                    board_profile(&model, board, json, opts, frozen)
                }
                _ if frozen => bail!(
                    "--frozen is for cortex-m-qemu: host and Jetson builds plan from the model"
                ),
                sprig_compress::boards::Board::Host => profile(&model, runs, json, opts),
                b => board_profile(&model, b, json, opts, false),
            }
        }
        Cmd::Bake {
            model,
            inputs,
            output,
        } => {
            let bytes = load(&model)?;
            let fixed = inputs
                .iter()
                .map(|spec| {
                    let (name, file) = spec
                        .split_once('=')
                        .ok_or_else(|| anyhow::anyhow!("--input '{spec}': expected NAME=FILE"))?;
                    Ok(sprig_compress::bake::FixedInput::from_file(
                        name,
                        std::path::Path::new(file),
                    )?)
                })
                .collect::<Result<Vec<_>>>()?;
            let baked = sprig_compress::bake::bake_inputs(&bytes, &fixed)
                .with_context(|| format!("baking inputs into {}", model.display()))?;
            let out = output.unwrap_or_else(|| model.with_extension("baked.onnx"));
            sprig_compress::write_file(&out, &baked.bytes)?;
            println!(
                "{}: {} bytes, {} input(s) baked; inputs left: {}",
                out.display(),
                baked.bytes.len(),
                fixed.len(),
                if baked.remaining_inputs.is_empty() {
                    "none".into()
                } else {
                    baked.remaining_inputs.join(", ")
                }
            );
            Ok(())
        }
        Cmd::Freeze { model, output } => {
            let bytes = load(&model)?;
            let plan = sprig_compress::freeze::freeze(&bytes)
                .with_context(|| format!("freezing the plan of {}", model.display()))?;
            let out = output.unwrap_or_else(|| model.with_extension("plan"));
            sprig_compress::write_file(&out, &plan.bytes)?;
            println!(
                "{}: {} bytes ({} steps, {} tensors; arena {} bytes) for {}",
                out.display(),
                plan.bytes.len(),
                plan.steps,
                plan.tensors,
                plan.arena_bytes,
                model.display()
            );
            Ok(())
        }
    }
}

/// `sprig profile --board jetson-qemu|cortex-m-qemu`.
fn board_profile(
    path: &std::path::Path,
    board: sprig_compress::boards::Board,
    json: bool,
    opts: sprig_runtime::PlanOptions,
    frozen: bool,
) -> Result<()> {
    use sprig_compress::boards::{self, Board};
    let bytes = load(path)?;
    let name = clap::ValueEnum::to_possible_value(&board)
        .map_or(String::new(), |v| v.get_name().to_string());
    eprintln!("building and running {} on {name}…", path.display());
    let r = match board {
        Board::CortexMQemu => boards::profile_cortex_m_qemu(path, &bytes, frozen)?,
        Board::JetsonQemu => boards::profile_jetson_qemu(path, &bytes, true, opts)?,
        Board::Host => unreachable!("host profiles run in-process"),
    };
    if json {
        println!("{}", serde_json::to_string_pretty(&r)?);
        return Ok(());
    }
    let opt = |v: Option<u64>| v.map_or("—".to_string(), |v| v.to_string());
    println!("{} on {}", path.display(), r.board);
    println!(
        "  flash: code {} bytes{}, model {} bytes",
        opt(r.flash_code_bytes),
        r.runtime_code_bytes
            .map_or(String::new(), |b| format!(" (sprig-runtime's own {b})")),
        r.flash_model_bytes
    );
    println!(
        "  RAM: arena {} bytes, other static {} bytes, {} {} bytes",
        r.arena_bytes,
        opt(r.static_ram_bytes),
        if r.board == "cortex-m-qemu" {
            "stack high-water"
        } else {
            "peak resident"
        },
        opt(r.stack_bytes)
    );
    if let Some(i) = r.instructions {
        println!("  {i} instructions per inference (median of {})", r.samples);
    }
    if let Some(us) = r.median_us {
        println!(
            "  {us:.1} µs per inference (emulated; median of {})",
            r.samples
        );
    }
    println!("  cycles: {}", opt(r.cycles));
    println!(
        "  outputs {} the host's on {} inputs",
        if r.outputs_match_host {
            "match"
        } else {
            "DIFFER FROM"
        },
        r.samples
    );
    println!("  {:<4} {:<20} {:<24} {:>14}", "#", "op", "node", r.unit);
    for (i, s) in r.steps.iter().enumerate() {
        println!(
            "  {:<4} {:<20} {:<24} {:>14.1}",
            i, s.op_type, s.name, s.value
        );
    }
    println!("note: {}", r.note);
    if !r.outputs_match_host {
        bail!("outputs on {} differ from the host's", r.board);
    }
    Ok(())
}

fn load(path: &std::path::Path) -> Result<Vec<u8>> {
    Ok(read_file(path)?)
}

/// Parses a model and allocates the arena its plan needs, naming the file in any error.
fn open<'m>(
    path: &std::path::Path,
    bytes: &'m [u8],
    opts: sprig_runtime::PlanOptions,
) -> Result<(Model<'m>, Vec<u8>)> {
    let ctx = || path.display().to_string();
    let model = Model::parse(bytes).with_context(ctx)?;
    let arena = vec![0u8; model.arena_bytes_with(opts).with_context(ctx)?];
    Ok((model, arena))
}

/// The elements of an integer output (little-endian bytes), for printing.
fn int_values(dtype: sprig_runtime::DType, b: &[u8]) -> Option<Vec<i64>> {
    use sprig_runtime::DType;
    let size = match dtype {
        DType::I64 => 8,
        DType::I32 => 4,
        DType::I8 | DType::U8 | DType::Bool => 1,
        _ => return None,
    };
    Some(
        b.chunks_exact(size)
            .map(|c| match dtype {
                DType::I64 => i64::from_le_bytes(c.try_into().unwrap_or([0; 8])),
                DType::I32 => i32::from_le_bytes(c.try_into().unwrap_or([0; 4])) as i64,
                DType::I8 => c[0] as i8 as i64,
                _ => c[0] as i64,
            })
            .collect(),
    )
}

fn run(path: &std::path::Path, inputs: &[PathBuf], output: Option<&std::path::Path>) -> Result<()> {
    let bytes = load(path)?;
    let (model, mut arena) = open(path, &bytes, Default::default())?;
    let mut it =
        Interpreter::new(&model, &mut arena).with_context(|| path.display().to_string())?;
    if inputs.len() != it.input_count() {
        bail!(
            "{} takes {} input(s), {} given",
            path.display(),
            it.input_count(),
            inputs.len()
        );
    }
    for (i, p) in inputs.iter().enumerate() {
        let a = npy::read(p)?;
        let (name, dtype, shape) = it.input_info(i)?;
        let want: Vec<u64> = shape.dims().iter().map(|&d| d as u64).collect();
        if a.dtype != dtype || a.shape != want {
            bail!(
                "{}: input '{name}' needs {dtype:?} {want:?}, the file holds {:?} {:?}",
                p.display(),
                a.dtype,
                a.shape
            );
        }
        it.set_input(i, &a.bytes)?;
    }
    it.invoke()?;
    for o in 0..it.output_count() {
        let t = it.output(o)?;
        print!("{}: {:?} {:?}", t.name, t.dtype, t.shape.dims());
        if let Some(v) = t.as_f32() {
            let (mn, mx) = v
                .iter()
                .fold((f32::MAX, f32::MIN), |(a, b), &x| (a.min(x), b.max(x)));
            let head: Vec<String> = v.iter().take(10).map(|x| format!("{x:.4}")).collect();
            print!(
                " min {mn:.4} max {mx:.4} argmax {} [{}{}]",
                sprig_compress::eval::argmax(v),
                head.join(", "),
                if v.len() > 10 { ", ..." } else { "" }
            );
        } else if let Some(v) = int_values(t.dtype, t.data) {
            // Indices (ArgMax), shape vectors, 8-bit codes.
            let head: Vec<String> = v.iter().take(10).map(|x| x.to_string()).collect();
            print!(
                " [{}{}]",
                head.join(", "),
                if v.len() > 10 { ", ..." } else { "" }
            );
        }
        println!();
        if o == 0 {
            if let Some(out) = output {
                let dims: Vec<u64> = t.shape.dims().iter().map(|&d| d as u64).collect();
                npy::write(out, t.dtype, &dims, t.data)?;
                println!("wrote {}", out.display());
            }
        }
    }
    Ok(())
}

struct Timer {
    started: Instant,
    per_step: Vec<Vec<f64>>,
    names: Vec<(String, String)>,
}

impl StepObserver for Timer {
    fn before(&mut self, index: usize, op_type: &str, node: &str) {
        if self.names.len() <= index {
            self.names.push((op_type.to_string(), node.to_string()));
            self.per_step.push(Vec::new());
        }
        self.started = Instant::now();
    }
    fn after(&mut self, index: usize) {
        let dt = self.started.elapsed().as_secs_f64() * 1e6;
        if let Some(v) = self.per_step.get_mut(index) {
            v.push(dt);
        }
    }
}

fn median(v: &mut [f64]) -> f64 {
    v.sort_by(|a, b| a.total_cmp(b));
    v.get(v.len() / 2).copied().unwrap_or(0.0)
}

/// The model's median latency through tract-onnx (optimized plan, one thread) on the inputs
/// sprig's interpreter holds, or why tract could not run it.
fn tract_median_us(
    path: &std::path::Path,
    it: &Interpreter<'_, '_>,
    input_bytes: &[Vec<u8>],
    runs: usize,
) -> std::result::Result<f64, String> {
    use tract_onnx::prelude::*;
    let mut inputs: TVec<TValue> = tvec!();
    for (i, bytes) in input_bytes.iter().enumerate() {
        let (_, dtype, shape) = it.input_info(i).map_err(|e| e.to_string())?;
        let dims: Vec<usize> = shape.dims().iter().map(|&d| d as usize).collect();
        let bytes = bytes.clone();
        let t: Tensor = match dtype {
            sprig_runtime::DType::F32 => {
                let v: Vec<f32> = bytes
                    .chunks_exact(4)
                    .map(|c| f32::from_le_bytes([c[0], c[1], c[2], c[3]]))
                    .collect();
                tract_ndarray::ArrayD::from_shape_vec(dims, v)
                    .map_err(|e| e.to_string())?
                    .into()
            }
            sprig_runtime::DType::U8 => tract_ndarray::ArrayD::from_shape_vec(dims, bytes)
                .map_err(|e| e.to_string())?
                .into(),
            sprig_runtime::DType::I8 => tract_ndarray::ArrayD::from_shape_vec(
                dims,
                bytes.iter().map(|&b| b as i8).collect(),
            )
            .map_err(|e| e.to_string())?
            .into(),
            d => return Err(format!("input {i} has element type {d:?}")),
        };
        inputs.push(t.into());
    }
    let plan = tract_onnx::onnx()
        .model_for_path(path)
        .and_then(|m| m.into_optimized())
        .and_then(|m| m.into_runnable())
        .map_err(|e| format!("{e:#}"))?;
    plan.run(inputs.clone()).map_err(|e| format!("{e:#}"))?; // warm-up
    let mut times = Vec::with_capacity(runs);
    for _ in 0..runs {
        let t = Instant::now();
        plan.run(inputs.clone()).map_err(|e| format!("{e:#}"))?;
        times.push(t.elapsed().as_secs_f64() * 1e6);
    }
    Ok(median(&mut times))
}

fn profile(
    path: &std::path::Path,
    runs: usize,
    json: bool,
    opts: sprig_runtime::PlanOptions,
) -> Result<()> {
    let bytes = load(path)?;
    let (model, mut arena) = open(path, &bytes, opts)?;
    let mut it = Interpreter::new_with(&model, &mut arena, opts)
        .with_context(|| path.display().to_string())?;
    let report = it.arena_report();
    let mut weight_bytes = 0usize;
    for t in model.initializers() {
        let t = t?;
        weight_bytes += t.shape.numel() * t.dtype.size();
    }
    // Deterministic pseudo-random inputs.
    let mut seed = 0x1234_5678u32;
    for i in 0..it.input_count() {
        let (_, dtype, _) = it.input_info(i)?;
        let buf = it.input_mut(i)?;
        for (j, b) in buf.iter_mut().enumerate() {
            seed = seed.wrapping_mul(1664525).wrapping_add(1013904223);
            *b = if dtype == sprig_runtime::DType::F32 && j % 4 == 3 {
                0x3e
            } else {
                (seed >> 24) as u8
            };
        }
    }
    // The arena reuses an input's bytes once its last reader has run, so every invoke gets
    // the same inputs refilled (outside the timed region) and tract gets this snapshot.
    let input_bytes: Vec<Vec<u8>> = (0..it.input_count())
        .map(|i| it.input_mut(i).map(|b| b.to_vec()))
        .collect::<std::result::Result<_, _>>()?;
    let refill = |it: &mut Interpreter<'_, '_>| -> Result<()> {
        for (i, b) in input_bytes.iter().enumerate() {
            it.set_input(i, b)?;
        }
        Ok(())
    };
    let runs = runs.max(1);
    let mut timer = Timer {
        started: Instant::now(),
        per_step: Vec::new(),
        names: Vec::new(),
    };
    it.invoke()?; // warm-up
    refill(&mut it)?;
    let before = ALLOCATIONS.load(Ordering::Relaxed);
    it.invoke()?;
    let heap_allocations = ALLOCATIONS.load(Ordering::Relaxed) - before;
    let mut totals = Vec::with_capacity(runs);
    for _ in 0..runs {
        refill(&mut it)?;
        let t = Instant::now();
        it.invoke()?;
        totals.push(t.elapsed().as_secs_f64() * 1e6);
    }
    for _ in 0..runs {
        refill(&mut it)?;
        it.invoke_with(&mut timer)?;
    }
    let total = median(&mut totals);
    let tract = tract_median_us(path, &it, &input_bytes, runs);
    let ops: Vec<serde_json::Value> = timer
        .names
        .iter()
        .zip(timer.per_step.iter_mut())
        .map(|((op, name), v)| serde_json::json!({"name": name, "op_type": op, "median_us": median(v)}))
        .collect();
    if json {
        let v = serde_json::json!({
            "model": path.display().to_string(),
            "board": "host",
            "flash_code_bytes": null,
            "flash_model_bytes": bytes.len(),
            "stack_bytes": null,
            "cycles": null,
            "outputs_match_host": true,
            "median_us": total,
            "tract_median_us": tract.as_ref().ok(),
            "tract_error": tract.as_ref().err(),
            "arena_bytes": report.total,
            "arena_persistent_bytes": report.persistent,
            "arena_working_bytes": report.working,
            "arena_lower_bound_bytes": report.working_lower_bound,
            "weight_bytes": weight_bytes,
            "heap_allocations": heap_allocations,
            "kernels": sprig_runtime::kernels::kernel_set(),
            "half_arithmetic": opts.half_arithmetic.then(sprig_runtime::half_ops::kernel_set),
            "steps": report.steps,
            "runs": runs,
            "ops": ops,
        });
        println!("{}", serde_json::to_string_pretty(&v)?);
    } else {
        let half = if opts.half_arithmetic {
            format!(
                "; half-precision arithmetic, {} f16 kernels",
                sprig_runtime::half_ops::kernel_set()
            )
        } else {
            String::new()
        };
        println!(
            "{}: {} steps, median {:.1} µs over {} runs (host, {} kernels{half})",
            path.display(),
            report.steps,
            total,
            runs,
            sprig_runtime::kernels::kernel_set()
        );
        match &tract {
            Ok(t) => println!(
                "tract 0.23, same inputs, same run: median {t:.1} µs (sprig / tract = {:.2})",
                total / t
            ),
            Err(e) => println!("tract 0.23 could not run this model: {e}"),
        }
        println!("arena {} bytes = {} persistent + {} working (liveness lower bound {}); weights {} bytes; heap allocations per inference: {}", report.total, report.persistent, report.working, report.working_lower_bound, weight_bytes, heap_allocations);
        println!("{:<4} {:<20} {:<24} {:>12}", "#", "op", "node", "median µs");
        for (i, o) in ops.iter().enumerate() {
            println!(
                "{:<4} {:<20} {:<24} {:>12.2}",
                i,
                o["op_type"].as_str().unwrap_or(""),
                o["name"].as_str().unwrap_or(""),
                o["median_us"].as_f64().unwrap_or(0.0)
            );
        }
    }
    Ok(())
}

//! Both boards, emulated, must print exactly what the host runtime computes for the same model
//! and inputs: the Cortex-M4 firmware under qemu-system-arm and `sprig-edge` cross-built for
//! aarch64 under qemu-aarch64 (cortex-a76, which has dotprod like Jetson Xavier), and once on a
//! booted aarch64 Linux kernel under qemu-system-aarch64 for its GPIO character device.

use crate::support::repo;
use sprig_runtime::{Interpreter, Model, PlanOptions};
use std::path::{Path, PathBuf};
use std::process::Command;

fn fixture(name: &str) -> PathBuf {
    repo().join("boards/cortex-m/models").join(name)
}

/// What the host runtime prints for the fixture model and samples, line by line.
fn host_lines() -> Vec<String> {
    host_lines_for(&fixture("digits_int8.onnx"), PlanOptions::default())
}

/// What the host runtime prints for `model` planned with `opts` on the fixture samples.
fn host_lines_for(model: &Path, opts: PlanOptions) -> Vec<String> {
    let bytes = std::fs::read(model).unwrap();
    let samples = std::fs::read(fixture("digits_samples.f32")).unwrap();
    let model = Model::parse(&bytes).unwrap();
    let mut arena = vec![0u8; model.arena_bytes_with(opts).unwrap()];
    let mut it = Interpreter::new_with(&model, &mut arena, opts).unwrap();
    let per = it.input_mut(0).unwrap().len();
    samples
        .chunks_exact(per)
        .enumerate()
        .map(|(i, img)| {
            it.set_input(0, img).unwrap();
            it.invoke().unwrap();
            format!("out {}: {:02x?}", i, it.output(0).unwrap().data)
        })
        .collect()
}

fn out_lines(stdout: &[u8]) -> Vec<String> {
    String::from_utf8_lossy(stdout)
        .lines()
        .filter(|l| l.starts_with("out "))
        .map(str::to_string)
        .collect()
}

fn cargo() -> String {
    std::env::var("CARGO").unwrap_or_else(|_| "cargo".into())
}

/// Builds a firmware binary (release, in its own workspace) and runs it on QEMU's MPS2-AN386
/// Cortex-M4; returns its output after checking it exited cleanly.
fn run_firmware(extra: &[&str], bin: &str) -> std::process::Output {
    run_firmware_in("target", extra, bin)
}

/// [`run_firmware`] with its own target directory (a build with other features must not
/// replace the binary another test is about to run).
fn run_firmware_in(target: &str, extra: &[&str], bin: &str) -> std::process::Output {
    let dir = repo().join("boards/cortex-m");
    let build = Command::new(cargo())
        .args(["build", "--release", "--quiet", "--target-dir", target])
        .args(extra)
        .current_dir(&dir)
        .env_remove("CARGO_TARGET_DIR")
        .status()
        .expect("cargo runs");
    assert!(build.success(), "firmware build failed ({bin})");
    let out = Command::new("timeout")
        .args([
            "300",
            "qemu-system-arm",
            "-cpu",
            "cortex-m4",
            "-machine",
            "mps2-an386",
            "-nographic",
            "-semihosting-config",
            "enable=on,target=native",
            "-kernel",
        ])
        .arg(
            dir.join(target)
                .join("thumbv7em-none-eabihf/release")
                .join(bin),
        )
        .output()
        .expect("qemu-system-arm is installed (tests/run.sh installs it)");
    assert!(
        out.status.success(),
        "firmware {bin} exited with {:?}: {}",
        out.status,
        String::from_utf8_lossy(&out.stdout)
    );
    out
}

/// The stack high-water mark the firmware printed.
fn stack_bytes(text: &str) -> usize {
    text.lines()
        .find_map(|l| l.strip_prefix("stack high-water mark: "))
        .and_then(|l| l.split_whitespace().next())
        .and_then(|n| n.parse().ok())
        .expect("firmware reports its stack use")
}

/// Cross-builds `sprig-edge` (debug) for aarch64; returns the executable.
fn build_sprig_edge() -> PathBuf {
    let build = Command::new(cargo())
        .args([
            "build",
            "--quiet",
            "-p",
            "sprig-jetson",
            "--target",
            "aarch64-unknown-linux-gnu",
        ])
        .current_dir(repo())
        .status()
        .expect("cargo runs");
    assert!(build.success(), "aarch64 build failed");
    let target_dir = std::env::var("CARGO_TARGET_DIR")
        .map(PathBuf::from)
        .unwrap_or_else(|_| repo().join("target"));
    target_dir.join("aarch64-unknown-linux-gnu/debug/sprig-edge")
}

/// Cross-builds `sprig-edge` for aarch64 and runs it under qemu-aarch64 (cortex-a76, which has
/// dotprod like Jetson Xavier) with `args`.
fn run_sprig_edge(args: &[&std::ffi::OsStr]) -> std::process::Output {
    let out = run_sprig_edge_raw(args);
    assert!(
        out.status.success(),
        "sprig-edge failed: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    out
}

/// [`run_sprig_edge`] without asserting success (for refused input).
fn run_sprig_edge_raw(args: &[&std::ffi::OsStr]) -> std::process::Output {
    let exe = build_sprig_edge();
    Command::new("timeout")
        .args([
            "300",
            "qemu-aarch64",
            "-cpu",
            "cortex-a76",
            "-L",
            "/usr/aarch64-linux-gnu",
        ])
        .arg(exe)
        .args(args)
        .output()
        .expect("qemu-aarch64 is installed (tests/run.sh installs it)")
}

#[test]
fn cortex_m4_firmware_under_qemu_matches_host() {
    let out = run_firmware(&[], "sprig-cortex-m");
    let got = out_lines(&out.stdout);
    assert_eq!(
        got.len(),
        8,
        "firmware printed: {}",
        String::from_utf8_lossy(&out.stdout)
    );
    assert_eq!(got, host_lines());
    // The firmware links for 64 KB of RAM; its painted-stack high-water mark must leave room.
    let stack = stack_bytes(&String::from_utf8_lossy(&out.stdout));
    assert!(
        stack < 60 * 1024,
        "stack high-water mark {stack} bytes leaves no room in 64 KB of RAM"
    );
}

#[test]
fn aarch64_sprig_edge_under_qemu_matches_host() {
    let (m, x) = (fixture("digits_int8.onnx"), fixture("digits_samples.f32"));
    let out = run_sprig_edge(&["classify".as_ref(), m.as_os_str(), x.as_os_str()]);
    assert_eq!(out_lines(&out.stdout), host_lines());
}

/// A float16 classifier for the fixture samples: a small CNN trained one epoch on 300 digits,
/// in sprig's float16 export (float16 weights and body, float32 input and output).
fn f16_model() -> PathBuf {
    use sprig_compress::train::{train, Run, TrainConfig};
    use sprig_models::arch::ArchSpec;
    let (train_set, _) = sprig_models::datasets::digits().split(0.2, 3);
    let idx: Vec<usize> = (0..300).collect();
    let train_set = train_set.subset(&idx);
    let spec = ArchSpec::small_cnn("f16", (1, 8, 8), 8, 12, None, 10);
    let cfg = TrainConfig {
        epochs: 1,
        progress: false,
        seed: 5,
        ..Default::default()
    };
    let r = train(&spec, &train_set, &cfg, Run::default(), "f16").unwrap();
    let bytes = sprig_compress::export::export_f16(&spec, &r.model.weights().unwrap());
    let path = std::env::temp_dir().join(format!("sprig-boards-f16-{}.onnx", std::process::id()));
    std::fs::write(&path, bytes).unwrap();
    path
}

/// `sprig-edge --half` on the Jetson's CPU model computes the float16 model with the FP16
/// `fmla` kernels and prints the same output bits as the host's portable half kernels; the
/// half outputs differ from the widened float32 plan's (so the f16 path really ran).
#[test]
fn aarch64_sprig_edge_half_arithmetic_matches_the_host_bit_for_bit() {
    let (m, x) = (f16_model(), fixture("digits_samples.f32"));
    let args = [
        "profile".as_ref(),
        m.as_os_str(),
        x.as_os_str(),
        "--half".as_ref(),
    ];
    let out = run_sprig_edge(&args);
    let text = String::from_utf8_lossy(&out.stdout);
    assert!(text.contains("half arithmetic neon-fp16"), "{text}");
    let half = PlanOptions {
        half_arithmetic: true,
        ..Default::default()
    };
    let host = host_lines_for(&m, half);
    assert_eq!(host.len(), 8);
    assert_eq!(out_lines(&out.stdout), host);
    assert_ne!(host, host_lines_for(&m, PlanOptions::default()));
    let _ = std::fs::remove_file(&m);
}

/// The host's alert lines for the demo scene with the firmware's trajectory model: the same
/// stream loop `sprig hazard run` uses.
fn host_alerts() -> Vec<String> {
    host_alerts_with(sprig_runtime::hazard::AlertPolicy::default())
}

/// [`host_alerts`] under another alert policy.
fn host_alerts_with(policy: sprig_runtime::hazard::AlertPolicy) -> Vec<String> {
    use sprig_compress::hazard::{
        alert_json, load_zones, run_stream, AnyPredictor, DetectionFormat,
    };
    let zones = load_zones(&repo().join("scenes/demo/zones.toml")).unwrap();
    let model = std::fs::read(fixture("traj_int8.onnx")).unwrap();
    let det = std::fs::read(repo().join("scenes/demo/detections.txt")).unwrap();
    let mut lines = Vec::new();
    run_stream(
        AnyPredictor::from_bytes(model, "traj").unwrap(),
        &zones,
        std::io::Cursor::new(det),
        DetectionFormat::Points,
        None,
        policy,
        |a| lines.push(alert_json(a, &zones)),
    )
    .unwrap();
    assert!(lines.len() >= 10, "the demo scene raises alerts: {lines:?}");
    lines
}

fn json_lines(stdout: &[u8]) -> Vec<String> {
    String::from_utf8_lossy(stdout)
        .lines()
        .filter(|l| l.starts_with('{'))
        .map(str::to_string)
        .collect()
}

/// How often the alarm pin (embedded-hal OutputPin) rises for these alerts: it is high for
/// frames that raised alerts (0.4 s apart), so once per run of consecutive alerting frames.
fn alarm_rises(alerts: &[String]) -> usize {
    let mut times: Vec<f64> = alerts
        .iter()
        .map(|l| {
            l.split(',').next().unwrap()["{\"t\":".len()..]
                .parse()
                .unwrap()
        })
        .collect();
    times.dedup();
    times
        .iter()
        .enumerate()
        .filter(|(i, t)| *i == 0 || **t - times[i - 1] > 0.41)
        .count()
}

#[test]
fn cortex_m4_hazard_firmware_under_qemu_gives_the_host_alerts() {
    let out = run_firmware(&["--bin", "hazard"], "hazard");
    let text = String::from_utf8_lossy(&out.stdout);
    let host = host_alerts();
    assert_eq!(json_lines(&out.stdout), host);
    assert_eq!(
        text.lines().filter(|l| *l == "alarm pin high").count(),
        alarm_rises(&host)
    );
    // Then the host benchmark's 64 walkers fill the track table: every track predicted on
    // every timed frame, each frame's cost reported.
    assert!(
        text.lines()
            .any(|l| l
                .starts_with("64 walkers: 64 live tracks, 1920 predictions in the last 30 frames")),
        "{text}"
    );
    for what in ["demo scene", "64 walkers"] {
        let prefix = format!("{what} per frame: ticks median ");
        let median: u64 = text
            .lines()
            .find_map(|l| l.strip_prefix(&prefix))
            .and_then(|rest| rest.split_whitespace().next()?.parse().ok())
            .unwrap_or_else(|| panic!("no per-frame cost for {what}: {text}"));
        assert!(median > 0, "{what}: {median}");
    }
    // It links for 256 KB / 64 KB, and its stack fits beside its statics (the interpreter's
    // tables and the arena are statics, the 64-track pipeline is on the stack).
    let elf =
        std::fs::read(repo().join("boards/cortex-m/target/thumbv7em-none-eabihf/release/hazard"))
            .unwrap();
    let statics: u64 = sprig_compress::boards::elf_sections(&elf)
        .unwrap()
        .iter()
        .filter(|s| s.1 && matches!(s.0.as_str(), ".data" | ".bss" | ".uninit"))
        .map(|s| s.3)
        .sum();
    let stack = stack_bytes(&text) as u64;
    assert!(
        statics + stack < 64 * 1024,
        "stack {stack} + statics {statics} bytes do not fit 64 KB of RAM"
    );
}

/// The hazard firmware built with `--features defmt` logs through defmt (frames over
/// semihosting, formatted on the host): decoded with the format table in its ELF, it reports
/// the host's alerts — same pedestrians, zones and frames, numbers equal to the host's printed
/// decimals — and the same alarm pin edges.
#[test]
fn cortex_m4_hazard_firmware_logs_the_host_alerts_through_defmt() {
    let target = "target/defmt";
    let out = run_firmware_in(
        target,
        &["--features", "defmt", "--bin", "hazard"],
        "hazard",
    );
    let elf = std::fs::read(
        repo()
            .join("boards/cortex-m")
            .join(target)
            .join("thumbv7em-none-eabihf/release/hazard"),
    )
    .unwrap();
    let table = defmt_decoder::Table::parse(&elf)
        .unwrap()
        .expect("the firmware has a defmt table");
    let mut decoder = table.new_stream_decoder();
    decoder.received(&out.stdout);
    let mut lines = Vec::new();
    loop {
        match decoder.decode() {
            Ok(frame) => lines.push(frame.display_message().to_string()),
            Err(defmt_decoder::DecodeError::UnexpectedEof) => break,
            Err(e) => panic!("undecodable defmt stream after {lines:?}: {e}"),
        }
    }
    // Nothing but frames: semihosting text would have broken the stream above.
    assert!(
        lines
            .iter()
            .any(|l| l.starts_with("hazard pipeline: 64 tracks")),
        "{lines:?}"
    );
    assert!(lines
        .iter()
        .any(|l| l.starts_with("stack high-water mark: ")));
    let host = host_alerts();
    let alerts: Vec<&String> = lines.iter().filter(|l| l.starts_with('{')).collect();
    assert_eq!(alerts.len(), host.len());
    println!(
        "defmt: {} frames decoded, {} alerts, e.g. {}",
        lines.len(),
        alerts.len(),
        alerts.first().map_or("", |s| s.as_str())
    );
    let parse = |l: &str| serde_json::from_str::<serde_json::Value>(l).unwrap();
    for (dev, want) in alerts.iter().zip(&host) {
        let (d, w) = (parse(dev), parse(want));
        for key in ["track", "zone"] {
            assert_eq!(d[key], w[key], "{dev} vs {want}");
        }
        // The host prints fixed decimals (3 for t, x, y; 2 for the time to entry).
        for (key, half_ulp) in [
            ("t", 5e-4),
            ("x", 5e-4),
            ("y", 5e-4),
            ("time_to_entry_s", 5e-3),
        ] {
            let (a, b) = (d[key].as_f64().unwrap(), w[key].as_f64().unwrap());
            assert!((a - b).abs() <= half_ulp + 1e-6, "{key}: {dev} vs {want}");
        }
    }
    assert_eq!(
        lines.iter().filter(|l| *l == "alarm pin high").count(),
        alarm_rises(&host)
    );
}

/// `sprig-edge hazard` arguments on the demo scene with the int8 fixture, then `extra`.
fn edge_hazard_args(extra: &[&str]) -> Vec<std::ffi::OsString> {
    let mut args: Vec<std::ffi::OsString> = vec![
        "hazard".into(),
        fixture("traj_int8.onnx").into(),
        repo().join("scenes/demo/zones.toml").into(),
        repo().join("scenes/demo/detections.txt").into(),
    ];
    args.extend(extra.iter().map(Into::into));
    args
}

fn os_strs(args: &[std::ffi::OsString]) -> Vec<&std::ffi::OsStr> {
    args.iter().map(|a| a.as_os_str()).collect()
}

#[test]
fn aarch64_sprig_edge_hazard_gives_the_host_alerts() {
    let out = run_sprig_edge(&os_strs(&edge_hazard_args(&[])));
    assert_eq!(json_lines(&out.stdout), host_alerts());
}

#[test]
fn aarch64_sprig_edge_hazard_takes_the_alert_policy_of_the_host_cli() {
    let args = edge_hazard_args(&["--confirm", "4", "--horizon", "2.4"]);
    let out = run_sprig_edge(&os_strs(&args));
    let strict = host_alerts_with(sprig_runtime::hazard::AlertPolicy {
        confirm: 4,
        rearm: 5,
        horizon_s: 2.4,
    });
    assert_eq!(json_lines(&out.stdout), strict);
    assert_ne!(strict, host_alerts(), "the policy changes the alerts");
    let bad = run_sprig_edge_raw(&os_strs(&edge_hazard_args(&["--horizon", "7"])));
    assert!(!bad.status.success());
    assert!(String::from_utf8_lossy(&bad.stderr).contains("--horizon 7"));
}

/// The int8 kernel property test on the Cortex-M4: 300 random convolutions and fully connected
/// layers through the firmware's kernel (im2row with SMLAD, `arm-dsp`) equal the reference.
#[test]
fn cortex_m4_dsp_kernel_is_bit_exact_with_the_reference() {
    let out = run_firmware(&[], "kernels");
    let text = String::from_utf8_lossy(&out.stdout);
    assert!(
        text.contains("kernels arm-dsp: 300 random int8 convolutions, 0 differ from the reference"),
        "{text}"
    );
}

/// The op families a plan uses, which is what a firmware for it is built with: int8 QDQ models
/// whose layers all fuse (sprig's exports, onnxruntime's quantized CNNs) need no float kernels —
/// just the fused int8 families they use — and float models do.
#[test]
fn plans_name_the_op_families_they_use() {
    let features = |rel: &str| {
        let bytes = std::fs::read(repo().join(rel)).unwrap();
        let model = sprig_runtime::Model::parse(&bytes).unwrap();
        let mut arena = vec![0u8; model.arena_bytes().unwrap()];
        let it = sprig_runtime::Interpreter::new(&model, &mut arena).unwrap();
        it.op_features().to_vec()
    };
    let cases: [(&str, &[&str]); 8] = [
        ("boards/cortex-m/models/digits_int8.onnx", &[]),
        ("boards/cortex-m/models/traj_int8.onnx", &[]),
        ("bench/models/fashion_cnn.int8.onnx", &[]),
        (
            "bench/models/resnet20.int8.onnx",
            &["int8-residual", "int8-avgpool"],
        ),
        (
            "bench/models/densenet_bc.int8.onnx",
            &["int8-concat", "int8-avgpool"],
        ),
        ("bench/models/gru_traj.int8.onnx", &["recurrent"]),
        ("tests/fixtures/digits_student.f32.onnx", &["float-ops"]),
        ("bench/models/densenet_bc.f32.onnx", &["float-ops"]),
    ];
    for (rel, want) in cases {
        assert_eq!(features(rel), want, "{rel}");
    }
}

/// `sprig profile --board cortex-m-qemu`: the digits model built into the profile firmware runs
/// under QEMU with the host's outputs, and every figure the report gives is there and sane.
#[test]
fn profile_on_the_cortex_m_board_reports_flash_ram_and_instructions() {
    use sprig_compress::boards::{profile_cortex_m_qemu, SAMPLES};
    let path = fixture("digits_int8.onnx");
    let bytes = std::fs::read(&path).unwrap();
    let r = profile_cortex_m_qemu(&path, &bytes, false).unwrap();
    assert!(r.outputs_match_host, "{r:?}");
    // Every layer fuses to int8, so the firmware was built without the float kernels — and
    // still gives the host's outputs.
    assert!(
        r.note
            .contains(sprig_compress::boards::FLOAT_KERNELS_LEFT_OUT),
        "{}",
        r.note
    );
    assert_eq!(r.samples, SAMPLES);
    assert_eq!(r.flash_model_bytes, bytes.len() as u64);
    let code = r.flash_code_bytes.unwrap();
    assert!((4_000..256 * 1024).contains(&code), "code {code}");
    let own = r.runtime_code_bytes.unwrap();
    assert!(own > 10_000 && own < code, "runtime {own} of {code}");
    let model = sprig_runtime::Model::parse(&bytes).unwrap();
    let steps = {
        let mut arena = vec![0u8; model.arena_bytes().unwrap()];
        sprig_runtime::Interpreter::new(&model, &mut arena)
            .unwrap()
            .arena_report()
            .steps
    };
    assert_eq!(r.steps.len(), steps);
    assert!(
        r.arena_bytes > 0
            && r.arena_bytes <= sprig_compress::eval::portable_arena_bytes(&model).unwrap()
    );
    let stack = r.stack_bytes.unwrap();
    assert!((1_000..64 * 1024).contains(&stack), "stack {stack}");
    // QEMU has no cycle counter. The steps' instructions add up to most of the inference's
    // (the rest is the interpreter between steps and the timer reads).
    assert_eq!(r.cycles, None);
    let inst = r.instructions.unwrap();
    let sum: f64 = r.steps.iter().map(|s| s.value).sum();
    assert!(
        inst > 10_000 && sum <= inst as f64 && sum >= 0.7 * inst as f64,
        "{inst} vs steps {sum}"
    );
}

/// `sprig profile --board cortex-m-qemu --frozen`: the firmware loads the plan `sprig freeze`
/// made instead of planning from the ONNX graph, gives the host's outputs, and sprig-runtime's
/// own code stays inside the 32 KB budget for this model's ops (it is about 14 KB).
#[test]
fn profile_on_the_cortex_m_board_with_a_frozen_plan_matches_the_host_in_less_flash() {
    use sprig_compress::boards::{profile_cortex_m_qemu, SAMPLES};
    let path = fixture("digits_int8.onnx");
    let bytes = std::fs::read(&path).unwrap();
    let r = profile_cortex_m_qemu(&path, &bytes, true).unwrap();
    assert!(r.outputs_match_host, "{r:?}");
    assert_eq!(r.samples, SAMPLES);
    assert!(r.note.contains("frozen plan"), "{}", r.note);
    let plan = sprig_compress::freeze::freeze(&bytes).unwrap();
    assert_eq!(r.flash_model_bytes, (bytes.len() + plan.bytes.len()) as u64);
    let own = r.runtime_code_bytes.unwrap();
    assert!(
        own > 4_000 && own <= 32 * 1024,
        "sprig-runtime's own code {own} B"
    );
    let model = sprig_runtime::Model::parse(&bytes).unwrap();
    assert_eq!(r.steps.len(), plan.steps);
    assert_eq!(r.arena_bytes, plan.arena_bytes);
    assert!(r.arena_bytes <= sprig_compress::eval::portable_arena_bytes(&model).unwrap());
}

/// `sprig profile --board jetson-qemu`: sprig-edge's profile under qemu-aarch64 gives the
/// host's outputs (the dotprod kernels are bit-exact), its arena, per-step times and a
/// deterministic instruction count per inference.
#[test]
fn profile_on_the_jetson_board_matches_the_host() {
    use sprig_compress::boards::{profile_jetson_qemu, SAMPLES};
    let path = fixture("digits_int8.onnx");
    let bytes = std::fs::read(&path).unwrap();
    // The debug build the other aarch64 tests use (a release build is what the CLI runs).
    let r = profile_jetson_qemu(&path, &bytes, false, Default::default()).unwrap();
    assert!(r.outputs_match_host, "{r:?}");
    assert_eq!(r.samples, SAMPLES);
    assert!(
        r.note.contains("sdot") || r.note.contains("dotprod"),
        "{}",
        r.note
    );
    assert!(r.arena_bytes > 0 && !r.steps.is_empty());
    assert!(r.median_us.unwrap() > 0.0 && r.stack_bytes.unwrap() > 0);
    // The QEMU plugin's count (a C compiler is on every machine these tests run on): one
    // inference of this model is tens of thousands of instructions, the same every run.
    let count = r.instructions.expect("an instruction count");
    assert!((5_000..5_000_000).contains(&count), "{count}");
    let again = profile_jetson_qemu(&path, &bytes, false, Default::default()).unwrap();
    assert_eq!(again.instructions, Some(count), "deterministic");
}

/// `sprig-edge hazard … udp:ADDR:PORT` under qemu-aarch64: the demo scene's detections sent
/// as datagrams of whole frames over loopback give the host's alerts.
#[test]
fn aarch64_sprig_edge_hazard_reads_detections_from_udp() {
    use std::io::{BufRead, BufReader};
    let exe = build_sprig_edge();
    let (m, z) = (
        fixture("traj_int8.onnx"),
        repo().join("scenes/demo/zones.toml"),
    );
    let mut child = Command::new("timeout")
        .args([
            "300",
            "qemu-aarch64",
            "-cpu",
            "cortex-a76",
            "-L",
            "/usr/aarch64-linux-gnu",
        ])
        .arg(exe)
        .arg("hazard")
        .arg(&m)
        .arg(&z)
        .arg("udp:127.0.0.1:0")
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    let mut err = BufReader::new(child.stderr.take().unwrap());
    let mut line = String::new();
    err.read_line(&mut line).unwrap();
    let addr = line
        .trim()
        .strip_prefix("listening on udp ")
        .unwrap_or_else(|| panic!("sprig-edge said {line:?}"))
        .to_string();
    let sock = std::net::UdpSocket::bind("127.0.0.1:0").unwrap();
    let det = std::fs::read_to_string(repo().join("scenes/demo/detections.txt")).unwrap();
    // Twenty frames (lines sharing a time stamp) per datagram: 15 datagrams, well inside the
    // socket's receive buffer even while the emulated daemon is still busy.
    let mut frames: Vec<String> = Vec::new();
    let mut last_t = "";
    for l in det.lines() {
        let t = l.split_whitespace().next().unwrap_or("");
        if t != last_t || frames.is_empty() {
            frames.push(String::new());
        }
        last_t = t;
        let f = frames.last_mut().unwrap();
        f.push_str(l);
        f.push('\n');
    }
    for chunk in frames.chunks(20) {
        sock.send_to(chunk.concat().as_bytes(), &addr).unwrap();
    }
    sock.send_to(b"", &addr).unwrap();
    let out = child.wait_with_output().unwrap();
    assert!(
        out.status.success(),
        "sprig-edge over udp: {:?}",
        out.status
    );
    assert_eq!(json_lines(&out.stdout), host_alerts());
}

/// Debian's arm64 Linux kernel (`tests/run.sh` fetches it into `.cache/linux-arm64/`), or
/// `SPRIG_ARM64_KERNEL`.
fn arm64_kernel() -> PathBuf {
    let path = std::env::var_os("SPRIG_ARM64_KERNEL")
        .map(PathBuf::from)
        .unwrap_or_else(|| repo().join(".cache/linux-arm64/vmlinuz"));
    assert!(
        path.is_file(),
        "{} is missing: tests/run.sh fetches Debian's arm64 kernel there (or set SPRIG_ARM64_KERNEL)",
        path.display()
    );
    path
}

/// An initramfs in the kernel's `newc` cpio format: directories (`None`) and files with
/// their bytes, in order.
fn newc_archive(entries: &[(&str, Option<&[u8]>)]) -> Vec<u8> {
    fn entry(out: &mut Vec<u8>, name: &str, mode: u32, data: &[u8]) {
        let fields = [0, mode, 0, 0, 1, 0, data.len() as u32, 0, 0, 0, 0];
        out.extend_from_slice(b"070701");
        for f in fields {
            out.extend_from_slice(format!("{f:08X}").as_bytes());
        }
        out.extend_from_slice(format!("{:08X}{:08X}", name.len() + 1, 0).as_bytes());
        out.extend_from_slice(name.as_bytes());
        out.push(0);
        out.resize(out.len().next_multiple_of(4), 0);
        out.extend_from_slice(data);
        out.resize(out.len().next_multiple_of(4), 0);
    }
    let mut out = Vec::new();
    for (name, data) in entries {
        match data {
            Some(d) => entry(&mut out, name, 0o100755, d),
            None => entry(&mut out, name, 0o040755, &[]),
        }
    }
    entry(&mut out, "TRAILER!!!", 0, &[]);
    out
}

/// `sprig-edge hazard --alarm-gpio /dev/gpiochip0:0` on a booted aarch64 Linux: Debian's
/// kernel under qemu-system-aarch64 (virt machine, cortex-a76), whose PL061 GPIO controller is
/// a real `/dev/gpiochip0` to linux-embedded-hal's character-device pin. The console gives the
/// host's alerts, and QEMU's PL061 trace shows line 0 rising once per run of alerting frames
/// and falling after each (the buzzer/LED a Jetson would drive).
#[test]
fn aarch64_sprig_edge_drives_a_gpio_line_on_a_booted_linux_kernel() {
    let kernel = arm64_kernel();
    let exe = build_sprig_edge();
    let dir = std::env::temp_dir().join(format!("sprig-linux-gpio-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let init = dir.join("init");
    let cc = Command::new("aarch64-linux-gnu-gcc")
        .args(["-static", "-Os", "-o"])
        .arg(&init)
        .arg(repo().join("tests/qemu-linux/init.c"))
        .status()
        .expect("aarch64-linux-gnu-gcc is installed (tests/run.sh installs it)");
    assert!(cc.success(), "building the initramfs init failed");
    let read = |p: PathBuf| std::fs::read(&p).unwrap_or_else(|e| panic!("{}: {e}", p.display()));
    let lib = |name: &str| read(Path::new("/usr/aarch64-linux-gnu/lib").join(name));
    let args = "/sprig-edge\nhazard\n/model.onnx\n/zones.toml\n/detections.txt\n\
                --alarm-gpio\n/dev/gpiochip0:0\n";
    let files: Vec<(&str, Vec<u8>)> = vec![
        ("init", read(init)),
        ("args", args.as_bytes().to_vec()),
        ("sprig-edge", read(exe)),
        ("lib/ld-linux-aarch64.so.1", lib("ld-linux-aarch64.so.1")),
        ("lib/libc.so.6", lib("libc.so.6")),
        ("lib/libgcc_s.so.1", lib("libgcc_s.so.1")),
        ("model.onnx", read(fixture("traj_int8.onnx"))),
        ("zones.toml", read(repo().join("scenes/demo/zones.toml"))),
        (
            "detections.txt",
            read(repo().join("scenes/demo/detections.txt")),
        ),
    ];
    let mut entries: Vec<(&str, Option<&[u8]>)> = vec![("dev", None), ("lib", None)];
    entries.extend(files.iter().map(|(n, d)| (*n, Some(d.as_slice()))));
    let initrd = dir.join("initrd.cpio");
    std::fs::write(&initrd, newc_archive(&entries)).unwrap();
    let out = Command::new("timeout")
        .args([
            "600",
            "qemu-system-aarch64",
            "-M",
            "virt",
            "-cpu",
            "cortex-a76",
        ])
        .args(["-m", "256", "-nographic", "-no-reboot", "-kernel"])
        .arg(&kernel)
        .arg("-initrd")
        .arg(&initrd)
        .args(["-append", "console=ttyAMA0 rdinit=/init panic=-1 quiet"])
        .args(["-trace", "pl061_set_output"])
        .output()
        .expect("qemu-system-aarch64 is installed (tests/run.sh installs qemu-system-arm)");
    std::fs::remove_dir_all(&dir).ok();
    let console = String::from_utf8_lossy(&out.stdout).replace('\r', "");
    assert!(
        console.contains("init: exit status 0"),
        "sprig-edge did not finish cleanly on the booted kernel:\n{console}\n{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let host = host_alerts();
    assert_eq!(json_lines(console.as_bytes()), host);
    // Line 0's writes after the controller's reset (which sets every line low once).
    let trace = String::from_utf8_lossy(&out.stderr);
    let line0: Vec<&str> = trace
        .lines()
        .filter_map(|l| l.split(" setting output 0 to ").nth(1))
        .skip_while(|v| *v == "0")
        .collect();
    let rises = line0.iter().filter(|v| **v == "1").count();
    assert_eq!(rises, alarm_rises(&host), "line 0 writes: {line0:?}");
    assert_eq!(line0.len(), 2 * rises, "every rise is followed by a fall");
    assert!(
        line0.chunks(2).all(|p| p == ["1", "0"]),
        "line 0 writes: {line0:?}"
    );
}

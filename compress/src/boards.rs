//! `sprig profile MODEL --board …`: builds the model into a board's firmware or daemon, runs it
//! under emulation and reports what decides whether it ships — flash (code and model apart), RAM
//! (arena, stack high-water mark), time per inference and per step, and whether its outputs are
//! the host's, byte for byte.
//!
//! Emulated time is not board time. Under `qemu-system-arm -icount shift=0` every instruction
//! takes 1 ns of virtual time and SysTick ticks at 25 MHz, so the Cortex-M figure is an
//! instruction count (ticks × 40), comparable between models and builds, not a cycle count.
//! qemu-user (the Jetson-like aarch64) runs at host speed with no instruction counter: its
//! timings are reported for completeness and flagged as emulated.

use serde::Serialize;
use sprig_runtime::{DType, Interpreter, Model, PlanOptions};
use std::ffi::OsStr;
use std::path::{Path, PathBuf};
use std::process::Command;

/// Where a profile runs.
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum Board {
    /// This machine, sprig-runtime's optimized kernels.
    Host,
    /// `sprig-edge` cross-built for aarch64 Linux, run under qemu-aarch64 (`-cpu cortex-a76`,
    /// which has dotprod like Jetson Xavier's Carmel cores).
    JetsonQemu,
    /// The `profile` firmware for thumbv7em (Cortex-M4F, 256 KB flash / 64 KB RAM budget), run
    /// under qemu-system-arm on MPS2-AN386.
    CortexMQemu,
}

/// One step's time on the board.
#[derive(Debug, Clone, Serialize)]
pub struct StepTime {
    /// Operator.
    pub op_type: String,
    /// Node name.
    pub name: String,
    /// Instructions (Cortex-M under QEMU) or microseconds (others), see `unit`.
    pub value: f64,
}

/// What a board run measured.
#[derive(Debug, Clone, Serialize)]
pub struct BoardReport {
    /// Which board.
    pub board: String,
    /// Flash (or file) bytes of code and constant data other than the model.
    pub flash_code_bytes: Option<u64>,
    /// The model file, stored in flash as it is.
    pub flash_model_bytes: u64,
    /// Of `flash_code_bytes`, sprig-runtime's own functions and tables (Cortex-M).
    pub runtime_code_bytes: Option<u64>,
    /// Arena the interpreter planned on the board.
    pub arena_bytes: usize,
    /// Statically allocated RAM besides the arena (.data + .bss, Cortex-M).
    pub static_ram_bytes: Option<u64>,
    /// Stack high-water mark (Cortex-M) or peak resident memory (Linux), bytes.
    pub stack_bytes: Option<u64>,
    /// Cycles per inference from a real cycle counter; `None` under emulation.
    pub cycles: Option<u64>,
    /// Instructions per inference (median), where the emulator counts them.
    pub instructions: Option<u64>,
    /// Median time per inference in µs (emulated on QEMU boards: not the board's speed).
    pub median_us: Option<f64>,
    /// Unit of `steps[].value`.
    pub unit: String,
    /// Per-step cost of one inference (the first on Cortex-M, whose instruction counts do not
    /// depend on caches; the last, after a warm-up, on Linux).
    pub steps: Vec<StepTime>,
    /// Inferences compared.
    pub samples: usize,
    /// Every output byte equal to the host runtime's for the same inputs.
    pub outputs_match_host: bool,
    /// How to read the figures.
    pub note: String,
}

/// Number of sample inputs each board runs.
pub const SAMPLES: usize = 4;

fn err(msg: String) -> crate::Error {
    crate::Error::Invalid(msg)
}

/// The repository's `boards/` folder (`SPRIG_BOARDS_DIR` overrides the one this binary was
/// built from).
pub fn boards_dir() -> PathBuf {
    std::env::var_os("SPRIG_BOARDS_DIR")
        .map(PathBuf::from)
        .unwrap_or_else(|| Path::new(env!("CARGO_MANIFEST_DIR")).join("../boards"))
}

/// Deterministic inputs for `model`'s first input: uniform [0, 1) floats, or random bytes.
pub fn sample_inputs(model: &Model<'_>, n: usize) -> crate::Result<Vec<u8>> {
    let mut arena = vec![0u8; model.arena_bytes()?];
    let mut it = Interpreter::new(model, &mut arena)?;
    let (_, dtype, _) = it.input_info(0)?;
    let len = it.input_mut(0)?.len();
    let mut seed = 0x2545_f491u32;
    let mut next = || {
        seed ^= seed << 13;
        seed ^= seed >> 17;
        seed ^= seed << 5;
        seed
    };
    let mut out = Vec::with_capacity(n * len);
    for _ in 0..n {
        if dtype == DType::F32 {
            for _ in 0..len / 4 {
                let v = (next() >> 8) as f32 / (1u32 << 24) as f32;
                out.extend_from_slice(&v.to_le_bytes());
            }
        } else {
            out.extend((0..len).map(|_| (next() >> 24) as u8));
        }
    }
    Ok(out)
}

/// The host runtime's output lines for `samples`, in the boards' format (`out I: [..]`).
pub fn host_output_lines(
    model: &Model<'_>,
    samples: &[u8],
    opts: PlanOptions,
) -> crate::Result<Vec<String>> {
    let mut arena = vec![0u8; model.arena_bytes_with(opts)?];
    let mut it = Interpreter::new_with(model, &mut arena, opts)?;
    let per = it.input_mut(0)?.len();
    let mut lines = Vec::new();
    for (i, s) in samples.chunks_exact(per).enumerate() {
        it.set_input(0, s)?;
        it.invoke()?;
        lines.push(format!("out {i}: {:02x?}", it.output(0)?.data));
    }
    Ok(lines)
}

/// Upper bounds of the interpreter's tables for `model`: every value it names, every node.
pub fn table_sizes(model: &Model<'_>) -> crate::Result<(usize, usize)> {
    let mut tensors = model.inputs().count() + model.initializers().count();
    let mut nodes = 0;
    for n in model.nodes() {
        tensors += n?.outputs.len();
        nodes += 1;
    }
    Ok((tensors + 4, nodes.max(1)))
}

/// `(name, allocated, occupies file bytes, size)` of each section of an ELF32 or ELF64
/// little-endian file.
pub fn elf_sections(elf: &[u8]) -> crate::Result<Vec<(String, bool, bool, u64)>> {
    let bad = || err("not a little-endian ELF file".into());
    if elf.len() < 64 || &elf[..4] != b"\x7fELF" || elf[5] != 1 {
        return Err(bad());
    }
    let wide = elf[4] == 2;
    let rd = |off: usize, n: usize| -> crate::Result<u64> {
        let b = elf.get(off..off + n).ok_or_else(bad)?;
        Ok(b.iter().rev().fold(0u64, |a, &x| (a << 8) | x as u64))
    };
    let (shoff, shentsize, shnum, shstrndx) = if wide {
        (rd(0x28, 8)?, rd(0x3a, 2)?, rd(0x3c, 2)?, rd(0x3e, 2)?)
    } else {
        (rd(0x20, 4)?, rd(0x2e, 2)?, rd(0x30, 2)?, rd(0x32, 2)?)
    };
    let header = |i: u64| -> crate::Result<(u64, u64, u64, u64, u64)> {
        let h = (shoff + i * shentsize) as usize;
        Ok(if wide {
            (
                rd(h, 4)?,
                rd(h + 4, 4)?,
                rd(h + 8, 8)?,
                rd(h + 0x18, 8)?,
                rd(h + 0x20, 8)?,
            )
        } else {
            (
                rd(h, 4)?,
                rd(h + 4, 4)?,
                rd(h + 8, 4)?,
                rd(h + 0x10, 4)?,
                rd(h + 0x14, 4)?,
            )
        })
    };
    let (_, _, _, str_off, _) = header(shstrndx)?;
    let mut out = Vec::new();
    for i in 0..shnum {
        let (name, kind, flags, _, size) = header(i)?;
        let start = (str_off + name) as usize;
        let end = elf[start.min(elf.len())..]
            .iter()
            .position(|&b| b == 0)
            .map_or(elf.len(), |p| start + p);
        let name = String::from_utf8_lossy(elf.get(start..end).unwrap_or(b"")).into_owned();
        const SHF_ALLOC: u64 = 2;
        const SHT_NOBITS: u64 = 8;
        out.push((name, flags & SHF_ALLOC != 0, kind != SHT_NOBITS, size));
    }
    Ok(out)
}

/// Bytes of the function and data symbols of a little-endian ELF32 file whose (mangled) names
/// contain `needle` — e.g. `sprig_runtime` for the runtime's own share of a firmware's flash.
pub fn elf32_symbol_bytes(elf: &[u8], needle: &str) -> crate::Result<u64> {
    let bad = || err("not a little-endian ELF32 file".into());
    if elf.len() < 52 || &elf[..4] != b"\x7fELF" || elf[4] != 1 || elf[5] != 1 {
        return Err(bad());
    }
    let rd = |off: usize, n: usize| -> crate::Result<usize> {
        let b = elf.get(off..off + n).ok_or_else(bad)?;
        Ok(b.iter().rev().fold(0usize, |a, &x| (a << 8) | x as usize))
    };
    let (shoff, shentsize, shnum) = (rd(0x20, 4)?, rd(0x2e, 2)?, rd(0x30, 2)?);
    let sh = |i: usize, field: usize| rd(shoff + i * shentsize + field, 4);
    let mut total = 0u64;
    for i in 0..shnum {
        const SHT_SYMTAB: usize = 2;
        if sh(i, 4)? != SHT_SYMTAB {
            continue;
        }
        let (off, size, link) = (sh(i, 0x10)?, sh(i, 0x14)?, sh(i, 0x18)?);
        let str_off = sh(link, 0x10)?;
        for k in 0..size / 16 {
            let e = off + k * 16;
            let (name, sym_size, info, shndx) =
                (rd(e, 4)?, rd(e + 8, 4)?, rd(e + 12, 1)?, rd(e + 14, 2)?);
            // STT_OBJECT = 1, STT_FUNC = 2; defined in some section.
            if !matches!(info & 0xf, 1 | 2) || shndx == 0 || shndx >= 0xff00 {
                continue;
            }
            let start = str_off + name;
            let end = elf[start.min(elf.len())..]
                .iter()
                .position(|&b| b == 0)
                .map_or(elf.len(), |p| start + p);
            if elf
                .get(start..end)
                .is_some_and(|n| n.windows(needle.len()).any(|w| w == needle.as_bytes()))
            {
                total += sym_size as u64;
            }
        }
    }
    Ok(total)
}

/// The value after `key` on a line starting with `prefix`, e.g. `ticks` in
/// `inference 0: ticks 5014 cycles 0`.
fn field(line: &str, key: &str) -> Option<u64> {
    let mut words = line.split_whitespace();
    while let Some(w) = words.next() {
        if w == key {
            return words.next()?.trim_end_matches(',').parse().ok();
        }
    }
    None
}

/// The `out I: [..]` lines both boards print (compared with the host's).
fn output_lines(lines: &[&str]) -> Vec<String> {
    lines
        .iter()
        .filter(|l| l.starts_with("out "))
        .map(|l| l.to_string())
        .collect()
}

/// Bytes from the `arena N bytes (…)` line both boards print.
fn arena_line(lines: &[&str]) -> Option<usize> {
    lines
        .iter()
        .find_map(|l| l.strip_prefix("arena ").and_then(|r| r.split(' ').next()))
        .and_then(|n| n.parse().ok())
}

fn median(v: &mut [f64]) -> Option<f64> {
    v.sort_by(|a, b| a.total_cmp(b));
    v.get(v.len() / 2).copied()
}

/// Step names (op type, node name) in the order the interpreter runs them on the host.
fn step_names(model: &Model<'_>) -> crate::Result<Vec<(String, String)>> {
    struct Names(Vec<(String, String)>);
    impl sprig_runtime::StepObserver for Names {
        fn before(&mut self, _: usize, op: &str, node: &str) {
            self.0.push((op.into(), node.into()));
        }
        fn after(&mut self, _: usize) {}
    }
    let was = !sprig_runtime::kernels::optimized_allowed();
    sprig_runtime::kernels::set_portable_only(true);
    let mut arena = vec![0u8; model.arena_bytes()?];
    let r = (|| {
        let mut it = Interpreter::new(model, &mut arena)?;
        let mut names = Names(Vec::new());
        it.invoke_with(&mut names)?;
        Ok::<_, crate::Error>(names.0)
    })();
    sprig_runtime::kernels::set_portable_only(was);
    r
}

/// How the report says an int8-only model's firmware was built.
pub const FLOAT_KERNELS_LEFT_OUT: &str =
    "without the float32 kernels (every layer runs in int8; feature float-ops off)";

/// The sprig-runtime op families the model's plan uses (the firmware is built with just these).
fn op_features(model: &Model<'_>) -> crate::Result<Vec<&'static str>> {
    let mut arena = vec![0u8; model.arena_bytes()?];
    Ok(Interpreter::new(model, &mut arena)?.op_features().to_vec())
}

fn run_checked(cmd: &mut Command, what: &str) -> crate::Result<std::process::Output> {
    let out = cmd.output().map_err(|e| {
        err(format!(
            "{what}: could not start {:?}: {e}",
            cmd.get_program()
        ))
    })?;
    if !out.status.success() {
        let mut text = String::from_utf8_lossy(&out.stderr).into_owned();
        text.push_str(&String::from_utf8_lossy(&out.stdout));
        let tail: Vec<&str> = text.lines().rev().take(25).collect();
        let tail: Vec<&str> = tail.into_iter().rev().collect();
        return Err(err(format!(
            "{what} failed ({}):\n{}",
            out.status,
            tail.join("\n")
        )));
    }
    Ok(out)
}

fn cargo() -> String {
    std::env::var("CARGO").unwrap_or_else(|_| "cargo".into())
}

/// Builds the `profile` firmware with `model_path`, runs it under qemu-system-arm and reads its
/// report. `frozen`: the firmware loads a plan made here ([`crate::freeze`]) instead of planning
/// from the ONNX graph, so the ONNX reader, fusion pass and planner are not linked; the plan
/// counts as model flash.
pub fn profile_cortex_m_qemu(
    model_path: &Path,
    bytes: &[u8],
    frozen: bool,
) -> crate::Result<BoardReport> {
    // One firmware build and run at a time in this process: they share the staging folder and
    // the firmware's target directory.
    static BUILD: std::sync::Mutex<()> = std::sync::Mutex::new(());
    let _one_at_a_time = BUILD.lock().unwrap_or_else(|e| e.into_inner());
    let model = Model::parse(bytes)?;
    let arena = crate::eval::portable_arena_bytes(&model)?;
    let plan = if frozen {
        Some(crate::freeze::freeze(bytes)?)
    } else {
        None
    };
    let (tensors, nodes) = match &plan {
        Some(p) => (p.tensors.max(1), p.steps.max(1)),
        None => table_sizes(&model)?,
    };
    let samples = sample_inputs(&model, SAMPLES)?;
    let host = host_output_lines(&model, &samples, PlanOptions::default())?;
    let features = op_features(&model)?;
    let dir = boards_dir().join("cortex-m");
    let work = dir.join("target/sprig-profile");
    std::fs::create_dir_all(&work).map_err(|e| err(format!("{}: {e}", work.display())))?;
    let staged = work.join("model.onnx");
    crate::write_file(&staged, bytes)?;
    let sample_file = work.join("samples.bin");
    crate::write_file(&sample_file, &samples)?;
    let plan_file = work.join("model.plan");
    let mut features = features;
    let plan_bytes = match &plan {
        Some(p) => {
            crate::write_file(&plan_file, &p.bytes)?;
            features.push("frozen");
            p.bytes.len()
        }
        None => 0,
    };
    run_checked(
        Command::new(cargo())
            .args(["build", "--release", "--quiet", "--bin", "profile"])
            .args(["--no-default-features", "--features", &features.join(",")])
            .current_dir(&dir)
            .env_remove("CARGO_TARGET_DIR")
            .env("SPRIG_PROFILE_PLAN", &plan_file)
            .env("SPRIG_PROFILE_MODEL", &staged)
            .env("SPRIG_PROFILE_SAMPLES", &sample_file)
            .env("SPRIG_PROFILE_ARENA", arena.to_string())
            .env("SPRIG_PROFILE_TENSORS", tensors.to_string())
            .env("SPRIG_PROFILE_NODES", nodes.to_string()),
        &format!(
            "building the Cortex-M firmware for {} (256 KB flash / 64 KB RAM; a model that does not fit fails to link)",
            model_path.display()
        ),
    )?;
    let elf_path = dir.join("target/thumbv7em-none-eabihf/release/profile");
    let elf = crate::read_file(&elf_path)?;
    let sections = elf_sections(&elf)?;
    let flash: u64 = sections.iter().filter(|s| s.1 && s.2).map(|s| s.3).sum();
    let ram_static: u64 = sections
        .iter()
        .filter(|s| s.1 && (s.0 == ".data" || s.0 == ".bss" || s.0 == ".uninit"))
        .map(|s| s.3)
        .sum();
    let ran = run_checked(
        Command::new("timeout")
            .args([
                "600",
                "qemu-system-arm",
                "-cpu",
                "cortex-m4",
                "-machine",
                "mps2-an386",
                "-nographic",
                "-semihosting-config",
                "enable=on,target=native",
                "-icount",
                "shift=0",
                "-kernel",
            ])
            .arg(&elf_path),
        "running the firmware under qemu-system-arm",
    );
    let out = match ran {
        // The stack ran into the statics (the fault handler reports it) or past the bottom of
        // RAM (QEMU locks up: the handler could not even start).
        Err(e) if e.to_string().contains("Lockup") || e.to_string().contains("hard fault") => {
            return Err(err(format!(
                "{} does not fit the 64 KB RAM budget as built: the firmware's stack overflowed \
                 into its {ram_static} bytes of statics (the {arena}-byte arena and the \
                 interpreter's tables for {tensors} tensors / {nodes} nodes); QEMU: {}",
                model_path.display(),
                e.to_string()
                    .lines()
                    .find_map(|l| ["Lockup", "hard fault"]
                        .iter()
                        .find_map(|k| l.find(k).map(|at| &l[at..])))
                    .and_then(|l| l.split("  ").next())
                    .unwrap_or("fault")
            )))
        }
        // `timeout` ended QEMU: the firmware never reported. A stack that overflowed into the
        // statics without faulting (it overwrote the arena or the tables) hangs this way.
        Err(e) if e.to_string().contains("exit status: 124") => {
            return Err(err(format!(
                "{} did not finish on the board within 600 s of emulation: the firmware hung. \
                 The likeliest cause is a stack overflow into its {ram_static} bytes of statics \
                 (the {arena}-byte arena and the interpreter's tables for {tensors} tensors / \
                 {nodes} nodes), which leave {} bytes of the 64 KB RAM budget for the stack; a \
                 model this size needs a part with more RAM (boards/cortex-m: `--features \
                 nrf52840`, 256 KB)",
                model_path.display(),
                (64 * 1024u64).saturating_sub(ram_static)
            )))
        }
        r => r?,
    };
    let text = String::from_utf8_lossy(&out.stdout).into_owned();
    let lines: Vec<&str> = text.lines().collect();
    let outs = output_lines(&lines);
    let mut inst: Vec<f64> = lines
        .iter()
        .filter(|l| l.starts_with("inference "))
        .filter_map(|l| field(l, "ticks"))
        .map(|t| (t * 40) as f64)
        .collect();
    let names = step_names(&model)?;
    let steps = lines
        .iter()
        .filter(|l| l.starts_with("step "))
        .filter_map(|l| field(l, "ticks"))
        .enumerate()
        .map(|(i, t)| {
            let (op, name) = names.get(i).cloned().unwrap_or_default();
            StepTime {
                op_type: op,
                name,
                value: (t * 40) as f64,
            }
        })
        .collect();
    let arena_bytes = arena_line(&lines)
        .ok_or_else(|| err(format!("the firmware printed no arena line:\n{text}")))?;
    let stack = lines
        .iter()
        .find_map(|l| l.strip_prefix("stack high-water mark: "))
        .and_then(|r| r.split(' ').next())
        .and_then(|n| n.parse().ok());
    let cycles = lines
        .iter()
        .filter(|l| l.starts_with("inference "))
        .filter_map(|l| field(l, "cycles"))
        .max()
        .filter(|&c| c > 0);
    Ok(BoardReport {
        board: "cortex-m-qemu".into(),
        flash_code_bytes: Some(
            flash.saturating_sub((bytes.len() + plan_bytes + samples.len()) as u64),
        ),
        flash_model_bytes: (bytes.len() + plan_bytes) as u64,
        runtime_code_bytes: Some(elf32_symbol_bytes(&elf, "sprig_runtime")?),
        arena_bytes,
        static_ram_bytes: Some(ram_static.saturating_sub(arena as u64)),
        stack_bytes: stack,
        cycles,
        instructions: median(&mut inst).map(|v| v as u64),
        median_us: None,
        unit: "instructions".into(),
        steps,
        samples: outs.len(),
        outputs_match_host: outs.len() == host.len() && outs == host,
        note: format!("QEMU MPS2-AN386 (Cortex-M4F), 256 KB flash / 64 KB RAM link budget, {}; sprig-runtime op families built: {}; errors without tensor and node names (feature error-names off: the host planned this model already){}; built with SPRIG_PROFILE_ARENA={arena} SPRIG_PROFILE_TENSORS={tensors} SPRIG_PROFILE_NODES={nodes}: instruction counts from SysTick under -icount shift=0, not cycles (QEMU does not model the DWT cycle counter; on a real board the firmware prints DWT cycles)", if features.contains(&"float-ops") { "with the float32 kernels (the model computes in float)" } else { FLOAT_KERNELS_LEFT_OUT }, if features.iter().all(|f| *f == "frozen") { "none beyond the int8 core".to_string() } else { features.iter().filter(|f| **f != "frozen").copied().collect::<Vec<_>>().join(", ") }, if plan_bytes > 0 { format!("; a frozen plan ({plan_bytes} bytes, counted in model flash) instead of planning from the ONNX graph on the board") } else { String::new() }),
    })
}

/// Builds the QEMU plugin that counts guest instructions (`boards/jetson/qemu/insn_markers.c`)
/// into `work` with the host's C compiler; `None` (and the profile goes without an instruction
/// count) when there is none.
fn build_instruction_counter(work: &Path) -> Option<PathBuf> {
    let src = boards_dir().join("jetson/qemu/insn_markers.c");
    let so = work.join("insn_markers.so");
    let built = Command::new(std::env::var_os("CC").unwrap_or_else(|| "cc".into()))
        .args(["-shared", "-fPIC", "-O2", "-o"])
        .arg(&so)
        .arg(&src)
        .output()
        .is_ok_and(|o| o.status.success());
    built.then_some(so)
}

/// The median instruction count of one inference: `sprig-edge profile` says how many markers it
/// made last ("instruction markers N", two per inference) and the plugin printed the count at
/// each ("insn-marker COUNT" on stderr); earlier markers, if any, are not the profile's.
fn instructions_per_inference(stdout: &[&str], stderr: &str) -> Option<u64> {
    let n: usize = stdout
        .iter()
        .find_map(|l| l.strip_prefix("instruction markers "))?
        .trim()
        .parse()
        .ok()?;
    let marks: Vec<u64> = stderr
        .lines()
        .filter_map(|l| l.strip_prefix("insn-marker ")?.trim().parse().ok())
        .collect();
    if n == 0 || !n.is_multiple_of(2) || marks.len() < n {
        return None;
    }
    let mut per: Vec<u64> = marks[marks.len() - n..]
        .chunks_exact(2)
        .map(|m| m[1].saturating_sub(m[0]))
        .collect();
    per.sort_unstable();
    Some(per[per.len() / 2])
}

/// Cross-builds `sprig-edge` for aarch64 Linux (`release`, or the debug build the tests already
/// have), runs `sprig-edge profile` under qemu-aarch64 (with the instruction counter of
/// [`build_instruction_counter`] where a C compiler is there) and reads its report.
pub fn profile_jetson_qemu(
    model_path: &Path,
    bytes: &[u8],
    release: bool,
    opts: PlanOptions,
) -> crate::Result<BoardReport> {
    let model = Model::parse(bytes)?;
    let samples = sample_inputs(&model, SAMPLES)?;
    let host = host_output_lines(&model, &samples, opts)?;
    let root = boards_dir().join("..");
    run_checked(
        Command::new(cargo())
            .args(["build", "--quiet", "-p", "sprig-jetson"])
            .args(["--target", "aarch64-unknown-linux-gnu"])
            .args(release.then_some("--release"))
            .current_dir(&root),
        "cross-building sprig-edge for aarch64-unknown-linux-gnu",
    )?;
    let target_dir = std::env::var_os("CARGO_TARGET_DIR")
        .map(PathBuf::from)
        .unwrap_or_else(|| root.join("target"));
    let exe = target_dir
        .join("aarch64-unknown-linux-gnu")
        .join(if release { "release" } else { "debug" })
        .join("sprig-edge");
    let work = target_dir.join("sprig-profile");
    std::fs::create_dir_all(&work).map_err(|e| err(format!("{}: {e}", work.display())))?;
    let sample_file = work.join("samples.bin");
    crate::write_file(&sample_file, &samples)?;
    let counter = build_instruction_counter(&work);
    let out = run_checked(
        Command::new("timeout")
            .args([
                "600",
                "qemu-aarch64",
                "-cpu",
                "cortex-a76",
                "-L",
                "/usr/aarch64-linux-gnu",
            ])
            .args(
                counter
                    .iter()
                    .flat_map(|so| [OsStr::new("-plugin"), so.as_os_str()]),
            )
            .arg(&exe)
            .arg("profile")
            .arg(model_path)
            .arg(&sample_file)
            .args(opts.half_arithmetic.then_some("--half")),
        "running sprig-edge under qemu-aarch64",
    )?;
    let text = String::from_utf8_lossy(&out.stdout).into_owned();
    let lines: Vec<&str> = text.lines().collect();
    let outs = output_lines(&lines);
    let mut us: Vec<f64> = lines
        .iter()
        .filter(|l| l.starts_with("inference "))
        .filter_map(|l| {
            l.split("us ")
                .nth(1)?
                .split_whitespace()
                .next()?
                .parse()
                .ok()
        })
        .collect();
    let names = step_names(&model)?;
    let steps = lines
        .iter()
        .filter(|l| l.starts_with("step "))
        .filter_map(|l| {
            l.split("us ")
                .nth(1)?
                .split_whitespace()
                .next()?
                .parse()
                .ok()
        })
        .enumerate()
        .map(|(i, v): (usize, f64)| {
            let (op, name) = names.get(i).cloned().unwrap_or_default();
            StepTime {
                op_type: op,
                name,
                value: v,
            }
        })
        .collect();
    let arena_bytes = arena_line(&lines)
        .ok_or_else(|| err(format!("sprig-edge printed no arena line:\n{text}")))?;
    let rss = lines
        .iter()
        .find_map(|l| l.strip_prefix("peak resident memory: "))
        .and_then(|r| r.split(' ').next())
        .and_then(|n| n.parse::<u64>().ok());
    let instructions = counter
        .as_ref()
        .and_then(|_| instructions_per_inference(&lines, &String::from_utf8_lossy(&out.stderr)));
    let exe_bytes = std::fs::metadata(&exe).map(|m| m.len()).ok();
    let kernels = lines
        .iter()
        .find_map(|l| l.strip_prefix("kernels "))
        .unwrap_or("?")
        .to_string();
    let half = match lines
        .iter()
        .find_map(|l| l.strip_prefix("half arithmetic "))
    {
        Some(k) => format!(", half-precision arithmetic on {k} kernels"),
        None => String::new(),
    };
    Ok(BoardReport {
        board: "jetson-qemu".into(),
        flash_code_bytes: exe_bytes,
        flash_model_bytes: bytes.len() as u64,
        runtime_code_bytes: None,
        arena_bytes,
        static_ram_bytes: None,
        stack_bytes: rss,
        cycles: None,
        instructions,
        median_us: median(&mut us),
        unit: "µs (emulated)".into(),
        steps,
        samples: outs.len(),
        outputs_match_host: outs.len() == host.len() && outs == host,
        note: format!("sprig-edge (aarch64, {}) under qemu-aarch64 -cpu cortex-a76, {kernels} kernels{half}: code = the daemon's file size; stack_bytes = peak resident memory of the process; times are emulated (qemu-user translates every instruction), not Jetson timings; {}", if release { "release" } else { "debug" }, match (&counter, instructions) {
            (Some(_), Some(_)) => "instructions: the median guest instruction count of one inference (a QEMU plugin, boards/jetson/qemu/insn_markers.c), deterministic where the times are not",
            (Some(_), None) => "no instruction count: the QEMU plugin loaded but printed no markers",
            (None, _) => "no instruction count: the QEMU plugin (boards/jetson/qemu/insn_markers.c) could not be built with cc",
        }),
    })
}

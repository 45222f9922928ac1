//! Puts the board's memory map where the linker finds it as `memory.x` (no file of that name
//! may sit in the crate root: the linker would find it first) (the 256 KB / 64 KB
//! budget by default, the nRF52840's with `--features nrf52840`) and rebuilds when a model
//! changes. For the `profile` firmware it also stages the model, the sample inputs and the
//! table sizes `sprig profile --board cortex-m-qemu` chose (`SPRIG_PROFILE_MODEL`,
//! `SPRIG_PROFILE_SAMPLES`, `SPRIG_PROFILE_ARENA`, `SPRIG_PROFILE_TENSORS`,
//! `SPRIG_PROFILE_NODES`, and with the `frozen` feature the plan, `SPRIG_PROFILE_PLAN`); without
//! them, the digits model and its samples.
use std::{env, fs, path::PathBuf};

fn main() {
    let out = PathBuf::from(env::var_os("OUT_DIR").unwrap());
    let src = if env::var_os("CARGO_FEATURE_NRF52840").is_some() {
        "memory-nrf52840.x"
    } else {
        "memory-64k.x"
    };
    fs::copy(src, out.join("memory.x")).unwrap();
    println!("cargo:rustc-link-search={}", out.display());
    println!("cargo:rerun-if-changed=memory-64k.x");
    println!("cargo:rerun-if-changed=memory-nrf52840.x");
    println!("cargo:rerun-if-changed=models");
    // defmt's linker script (its crate puts it on the search path) keeps the format-string
    // table in the ELF, where the host-side decoder reads it.
    if env::var_os("CARGO_FEATURE_DEFMT").is_some() {
        println!("cargo:rustc-link-arg=-Tdefmt.x");
    }

    let var = |k: &str, default: &str| {
        println!("cargo:rerun-if-env-changed={k}");
        env::var(k).unwrap_or_else(|_| default.to_string())
    };
    let model = var("SPRIG_PROFILE_MODEL", "models/digits_int8.onnx");
    let samples = var("SPRIG_PROFILE_SAMPLES", "models/digits_samples.f32");
    println!("cargo:rerun-if-changed={model}");
    println!("cargo:rerun-if-changed={samples}");
    fs::copy(&model, out.join("profile_model.onnx"))
        .unwrap_or_else(|e| panic!("SPRIG_PROFILE_MODEL {model}: {e}"));
    fs::copy(&samples, out.join("profile_samples.bin"))
        .unwrap_or_else(|e| panic!("SPRIG_PROFILE_SAMPLES {samples}: {e}"));
    // The frozen plan (feature `frozen`); an empty file otherwise.
    let plan_out = out.join("profile_plan.bin");
    if env::var_os("CARGO_FEATURE_FROZEN").is_some() {
        // The default model's plan is checked in (a test keeps it equal to `sprig freeze`'s).
        let plan = var("SPRIG_PROFILE_PLAN", "models/digits_int8.plan");
        println!("cargo:rerun-if-changed={plan}");
        fs::copy(&plan, &plan_out).unwrap_or_else(|e| panic!("SPRIG_PROFILE_PLAN {plan}: {e}"));
    } else {
        fs::write(&plan_out, b"").unwrap();
    }
    let num = |k: &str, default: &str| -> usize {
        let v = var(k, default);
        v.parse()
            .unwrap_or_else(|_| panic!("{k}={v} is not a number"))
    };
    fs::write(
        out.join("profile_config.rs"),
        format!(
            "/// Arena bytes the host planned for this model.\nconst ARENA_BYTES: usize = {};\n/// Tensor table size.\nconst MAX_TENSORS: usize = {};\n/// Node table size.\nconst MAX_NODES: usize = {};\n",
            num("SPRIG_PROFILE_ARENA", "2048"),
            num("SPRIG_PROFILE_TENSORS", "64"),
            num("SPRIG_PROFILE_NODES", "32"),
        ),
    )
    .unwrap();
}

//! Puts the board's memory map where the linker finds it as `memory.x` (no file of that name
//! may sit in the crate root: the linker would find it first) (the 256 KB / 64 KB
//! budget by default, the nRF52840's with `--features nrf52840`) and rebuilds when a model
//! changes.
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
}

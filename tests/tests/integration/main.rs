//! The cross-crate integration and conformance tests, one module per area, in one test binary:
//! linking the training and runtime crates once instead of once per file is most of what a
//! clean build of this crate costs. Tests that flip a process-wide switch (the kernel choice)
//! stay in their own binaries beside this one (`tests/tests/frozen_plan.rs`,
//! `tests/tests/kernel_switch.rs`).
//!
//! One area: `cargo test --workspace --test integration boards::` (module path as filter).

mod support;

mod arena;
mod boards;
mod compress;
mod conformance;
mod conformance_baked;
mod float16;
mod hazard;
mod int8_lut;
mod mobile;
mod onnxruntime;
mod pipeline;
mod qoperator;
mod recurrent;
mod robustness;
mod shape_fold;
mod tract;

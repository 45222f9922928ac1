//! # sprig-runtime
//!
//! A `#![no_std]` inference engine for standard ONNX files, int8 QDQ models first. The model is
//! read in place ([`Model::parse`], zero-copy: weights stay in the caller's bytes, e.g. flash),
//! planned once into one caller-given arena ([`Interpreter::new`]), and run with
//! [`InterpreterWith::invoke`], which allocates nothing and reports every problem as an
//! [`Error`] instead of panicking.
//!
//! ```
//! use sprig_runtime::{Interpreter, Model};
//! # let bytes = sprig_runtime::testutil::tiny_relu_model();
//! let model = Model::parse(&bytes)?;            // validates the whole file
//! let mut arena = vec![0u8; model.arena_bytes()?];
//! let mut it = Interpreter::new(&model, &mut arena)?;
//! it.set_input_f32(0, &[-1.0, 2.0, -3.0, 4.0])?;
//! it.invoke()?;
//! assert_eq!(it.output(0)?.as_f32().unwrap(), &[0.0, 2.0, 0.0, 4.0]);
//! # Ok::<(), sprig_runtime::Error>(())
//! ```
#![no_std]
#![warn(missing_docs)]
// Unsafe code is denied everywhere but in `simd`, `int8_avx2` and `int8_neon`, where calling a
// `#[target_feature]` function after run-time CPU detection and vector intrinsics need it.
#![deny(unsafe_code)]

#[cfg(feature = "alloc")]
extern crate alloc;
#[cfg(feature = "std")]
extern crate std;

pub mod dynquant;
pub mod einsum;
mod error;
pub mod fold;
pub mod frozen;
mod fuse;
mod graph;
pub mod grid_sample;
#[cfg(all(feature = "std", target_arch = "aarch64"))]
mod half_neon;
pub mod half_ops;
pub mod hazard;
pub mod index_nd;
#[cfg(all(feature = "std", target_arch = "x86_64"))]
mod int8_avx2;
pub mod int8_dsp;
#[cfg(all(feature = "std", target_arch = "aarch64"))]
mod int8_neon;
mod interp;
pub mod intop;
pub mod kernels;
pub mod local_norm;
pub mod logic;
pub mod loss;
pub mod norm;
pub mod one_hot;
pub mod onnx;
pub mod ops;
pub mod planner;
mod prepare;
pub mod proto;
pub mod quad;
pub mod quant;
pub mod rnn;
pub mod sequence;
pub mod signal;
#[cfg(all(feature = "std", target_arch = "x86_64"))]
mod simd;
pub mod tensor;
#[doc(hidden)]
pub mod testutil;
pub mod topk;

pub use error::{Error, Name, Result};
pub use interp::{
    ArenaReport, Interpreter, InterpreterWith, PlanOptions, StepObserver, TensorRef, OP_FAMILIES,
};
pub use onnx::Model;
pub use tensor::{DType, Shape};

/// The README's examples, compiled and run as doctests.
#[cfg(doctest)]
#[doc = include_str!("../../README.md")]
pub struct ReadmeDoctests;

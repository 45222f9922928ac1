//! # sprig-models
//!
//! Dataset loaders (with errors that name the file and what was wrong) and model architectures
//! described as plain layer lists, so one description drives candle training, ONNX export and
//! the runtime.
#![warn(missing_docs)]

pub mod arch;
pub mod datasets;
pub mod predictors;
pub mod trajectory;

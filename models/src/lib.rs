//! # sprig-models
//!
//! Dataset loaders (with errors that name the file and what was wrong: digits, MNIST/Fashion-MNIST
//! IDX, ETH/UCY trajectories) and model architectures described as plain layer lists, so one
//! description drives candle training, ONNX export and the runtime; plus the trajectory
//! teacher/student and a seeded walker simulator ([`trajectory`], [`predictors`]).
#![warn(missing_docs)]

pub mod arch;
pub mod datasets;
pub mod predictors;
pub mod train_ops;
pub mod trajectory;

//! # sprig-compress
//!
//! Host side of sprig: trains teachers and students on candle ([`train`], [`trajectory`]),
//! distils ([`kd`]), prunes ([`prune`]), quantizes ([`quantize`]) and writes standard int8 QDQ
//! ONNX ([`export`]) that onnxruntime, tract and sprig-runtime all execute; measures the result
//! on sprig-runtime ([`eval`], [`hazard`]). The `sprig` binary is a thin CLI over these modules.
#![warn(missing_docs)]

pub mod bake;
pub mod boards;
pub mod demo;
pub mod demo_hazard;
pub mod deploy;
pub mod distill;
pub mod eval;
pub mod export;
pub mod freeze;
pub mod hazard;
pub mod kd;
pub mod npy;
pub mod optim;
pub mod pb;
pub mod pipeline;
pub mod plot;
pub mod prune;
pub mod ptq;
pub mod qat;
pub mod quantize;
pub mod recipe;
pub mod structured;
pub mod teacher;
pub mod teacher_cache;
pub mod train;
pub mod traj_ckpt;
pub mod traj_pipeline;
pub mod trajectory;

/// Errors of the host tool.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// Training failed inside candle.
    #[error("training: {0}")]
    Candle(#[from] candle_core::Error),
    /// The runtime refused a model or an input.
    #[error("sprig-runtime: {0}")]
    Runtime(sprig_runtime::Error),
    /// A file could not be read or written.
    #[error("{path}: {err}")]
    Io {
        /// The file.
        path: std::path::PathBuf,
        /// The OS error.
        err: std::io::Error,
    },
    /// Input data that does not fit the model.
    #[error("{0}")]
    Invalid(String),
    /// A dataset problem.
    #[error(transparent)]
    Dataset(#[from] sprig_models::datasets::DatasetError),
}

impl From<sprig_runtime::Error> for Error {
    fn from(e: sprig_runtime::Error) -> Self {
        Error::Runtime(e)
    }
}

/// Result alias of this crate.
pub type Result<T> = std::result::Result<T, Error>;

/// Reads a file, naming it in the error.
pub fn read_file(path: &std::path::Path) -> Result<Vec<u8>> {
    std::fs::read(path).map_err(|err| Error::Io {
        path: path.into(),
        err,
    })
}

/// Writes a file atomically (temporary file + rename) so a killed run never leaves a torn file.
pub fn write_file(path: &std::path::Path, bytes: &[u8]) -> Result<()> {
    let tmp = path.with_extension("tmp~");
    let io = |err| Error::Io {
        path: path.into(),
        err,
    };
    if let Some(dir) = path.parent().filter(|d| !d.as_os_str().is_empty()) {
        std::fs::create_dir_all(dir).map_err(io)?;
    }
    std::fs::write(&tmp, bytes).map_err(io)?;
    std::fs::rename(&tmp, path).map_err(io)
}

//! Helpers every area uses: where the repository and the reference Python are, and raw f32
//! files.

use std::path::{Path, PathBuf};

/// The repository root (the parent of this crate).
pub fn repo() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .parent()
        .unwrap()
        .to_path_buf()
}

/// The Python with onnx and onnxruntime: `$SPRIG_PYTHON`, else the venv `tests/run.sh` makes.
pub fn python() -> PathBuf {
    let p = std::env::var_os("SPRIG_PYTHON")
        .map(PathBuf::from)
        .unwrap_or_else(|| repo().join(".venv/bin/python"));
    assert!(
        p.exists(),
        "{} is missing: run ./tests/run.sh, which creates the venv with onnx and onnxruntime",
        p.display()
    );
    p
}

/// A file of little-endian f32 values.
pub fn f32s(p: &Path) -> Vec<f32> {
    std::fs::read(p)
        .unwrap_or_else(|e| panic!("{}: {e}", p.display()))
        .chunks_exact(4)
        .map(|c| f32::from_le_bytes([c[0], c[1], c[2], c[3]]))
        .collect()
}

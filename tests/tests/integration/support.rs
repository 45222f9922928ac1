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

/// Runs a case generator (`tests/SCRIPT OUT_DIR`, Python with onnx and onnxruntime) into a fresh
/// temporary directory; returns the directory and the `.onnx` files directly in it, sorted
/// (variants such as `CASE.float.onnx` included).
pub fn generated_cases(script: &str) -> (PathBuf, Vec<PathBuf>) {
    let stem = script.trim_end_matches(".py");
    let dir = std::env::temp_dir().join(format!("sprig-{stem}-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let out = std::process::Command::new(python())
        .arg(repo().join("tests").join(script))
        .arg(&dir)
        .output()
        .unwrap_or_else(|e| panic!("python: {e} (run ./tests/run.sh first)"));
    assert!(
        out.status.success(),
        "{script} failed: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    (dir.clone(), onnx_files(&dir))
}

/// Runs every case a generator wrote (`CASE.onnx`, its input `CASE.x.f32` and the expected
/// output `CASE.y0.f32`, onnxruntime's unless the generator says otherwise) on sprig-runtime and
/// checks the first output's largest relative difference |sprig − want| / (1 + |want|) against
/// `tolerance`, printing each; removes `dir`.
pub fn check_cases_against_onnxruntime(dir: &Path, cases: &[PathBuf], tolerance: f32) {
    for case in cases {
        let stem = case.file_stem().unwrap().to_string_lossy().to_string();
        let x = f32s(&dir.join(format!("{stem}.x.f32")));
        let got = &run_f32(&std::fs::read(case).unwrap(), &x, &stem)[0];
        let want = f32s(&dir.join(format!("{stem}.y0.f32")));
        assert_eq!(got.len(), want.len(), "{stem}: output length");
        let worst = got
            .iter()
            .zip(&want)
            .map(|(g, w)| (g - w).abs() / (1.0 + w.abs()))
            .fold(0f32, f32::max);
        println!(
            "{stem}: {} outputs, max relative difference from the expected output {worst:.2e}",
            got.len()
        );
        assert!(
            worst <= tolerance,
            "{stem}: sprig differs from the expected output (the generator's reference) by {worst}"
        );
    }
    let _ = std::fs::remove_dir_all(dir);
}

/// The `.onnx` files directly in `dir`, sorted.
pub fn onnx_files(dir: &Path) -> Vec<PathBuf> {
    files_with_extension(dir, "onnx")
}

/// The files directly in `dir` whose extension is `ext`, sorted.
pub fn files_with_extension(dir: &Path, ext: &str) -> Vec<PathBuf> {
    let mut cases: Vec<_> = std::fs::read_dir(dir)
        .unwrap()
        .flatten()
        .map(|e| e.path())
        .filter(|p| p.extension().is_some_and(|e| e == ext))
        .collect();
    cases.sort();
    cases
}

/// Plans `model` (ONNX bytes) on sprig-runtime, runs it on the float32 input `x` and returns
/// every output as f32 values; `what` names the case in panics.
pub fn run_f32(model: &[u8], x: &[f32], what: &str) -> Vec<Vec<f32>> {
    let m = sprig_runtime::Model::parse(model).unwrap_or_else(|e| panic!("{what}: {e}"));
    let mut arena = vec![0u8; m.arena_bytes().unwrap()];
    let mut it = sprig_runtime::Interpreter::new(&m, &mut arena)
        .unwrap_or_else(|e| panic!("{what}: plan refused: {e}"));
    it.set_input_f32(0, x).unwrap();
    it.invoke().unwrap();
    (0..it.output_count())
        .map(|k| it.output(k).unwrap().as_f32().unwrap().to_vec())
        .collect()
}

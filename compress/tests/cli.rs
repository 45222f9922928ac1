//! The CLI contract: help lists the subcommands; bad input gives one line and a non-zero exit.

use std::process::Command;

fn sprig(args: &[&str]) -> std::process::Output {
    Command::new(env!("CARGO_BIN_EXE_sprig"))
        .args(args)
        .output()
        .expect("sprig runs")
}

#[test]
fn help_lists_subcommands() {
    let o = sprig(&["--help"]);
    assert!(o.status.success());
    let text = String::from_utf8_lossy(&o.stdout);
    for cmd in ["demo", "run", "profile", "hazard"] {
        assert!(text.contains(cmd), "--help does not mention {cmd}:\n{text}");
    }
}

#[test]
fn unknown_subcommand_is_one_line_and_fails() {
    let o = sprig(&["frobnicate"]);
    assert_eq!(o.status.code(), Some(2));
    let err = String::from_utf8_lossy(&o.stderr);
    assert_eq!(err.trim_end().lines().count(), 1, "{err}");
    assert!(err.contains("frobnicate"));
}

#[test]
fn missing_model_file_is_one_line_and_fails() {
    let o = sprig(&["profile", "/nonexistent/model.onnx"]);
    assert_eq!(o.status.code(), Some(1));
    let err = String::from_utf8_lossy(&o.stderr);
    assert_eq!(err.trim_end().lines().count(), 1, "{err}");
    assert!(err.contains("/nonexistent/model.onnx"), "{err}");
}

#[test]
fn corrupt_model_is_a_typed_one_line_error() {
    let dir = std::env::temp_dir().join(format!("sprig-cli-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let p = dir.join("bad.onnx");
    std::fs::write(&p, [0x3a, 0x40, 0x0a]).unwrap();
    let o = sprig(&["profile", p.to_str().unwrap()]);
    assert_eq!(o.status.code(), Some(1));
    let err = String::from_utf8_lossy(&o.stderr);
    assert!(err.contains("truncated"), "{err}");
}

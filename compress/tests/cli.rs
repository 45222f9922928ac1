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
    for cmd in [
        "demo", "train", "distill", "compress", "eval", "run", "profile", "hazard",
    ] {
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

fn tmp(name: &str) -> std::path::PathBuf {
    let dir = std::env::temp_dir().join(format!("sprig-cli-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    dir.join(name)
}

/// A recipe mistake is reported with file and line before anything trains (the run returns at
/// once and writes nothing).
#[test]
fn bad_recipes_name_the_key_and_line() {
    let recipe = std::fs::read_to_string(
        std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("../recipes/digits.toml"),
    )
    .unwrap();
    let line_of = |needle: &str| recipe.lines().position(|l| l.contains(needle)).unwrap() + 1;
    let cases = [
        (
            recipe.replace("margin = 1.0", "margn = 1.0"),
            line_of("margin = 1.0"),
            "unknown field `margn`",
        ),
        (
            recipe.replace("student_layer = \"conv2\"", "student_layer = \"conv7\""),
            line_of("student_layer"),
            "student_layer 'conv7' does not exist in student (its layers: conv1, conv2, fc1)",
        ),
        (
            recipe.replace("sparsity = 0.8", "sparsity = 1.5"),
            0,
            "target sparsity 1.5 is outside [0, 1)",
        ),
    ];
    for (i, (text, line, want)) in cases.iter().enumerate() {
        let p = tmp(&format!("bad{i}.toml"));
        std::fs::write(&p, text).unwrap();
        let out = tmp(&format!("bad{i}-out"));
        let o = sprig(&[
            "compress",
            "--recipe",
            p.to_str().unwrap(),
            "--out",
            out.to_str().unwrap(),
        ]);
        assert_eq!(o.status.code(), Some(1));
        let err = String::from_utf8_lossy(&o.stderr);
        assert_eq!(err.trim_end().lines().count(), 1, "{err}");
        assert!(err.contains(want), "{err}");
        if *line > 0 {
            assert!(err.contains(&format!("bad{i}.toml:{line}:")), "{err}");
        }
        assert!(!out.exists(), "a rejected recipe wrote {}", out.display());
    }
}

#[test]
fn eval_reports_top1_as_json() {
    let model = std::path::Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("../boards/cortex-m/models/digits_int8.onnx");
    let o = sprig(&[
        "eval",
        model.to_str().unwrap(),
        "--dataset",
        "digits",
        "--json",
    ]);
    assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
    let v: serde_json::Value = serde_json::from_slice(&o.stdout).unwrap();
    let top1 = v["top1"].as_f64().unwrap();
    assert!(top1 > 0.9 && top1 <= 1.0, "{v}");
    assert_eq!(v["images"], 359);
    let o = sprig(&["eval", model.to_str().unwrap(), "--dataset", "cifar:/x"]);
    assert_eq!(o.status.code(), Some(1));
    assert!(String::from_utf8_lossy(&o.stderr).contains("unknown dataset kind 'cifar'"));
}

#[test]
fn quantize_writes_an_int8_model_and_reports_accuracy() {
    let model = std::path::Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("../tests/fixtures/digits_student.f32.onnx");
    let out = tmp("ptq.int8.onnx");
    let o = sprig(&[
        "quantize",
        model.to_str().unwrap(),
        "--calib",
        "digits",
        "--output",
        out.to_str().unwrap(),
    ]);
    assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
    let text = String::from_utf8_lossy(&o.stdout);
    assert!(
        text.contains("3 weight tensors int8") && text.contains("top-1"),
        "{text}"
    );
    let e = sprig(&[
        "eval",
        out.to_str().unwrap(),
        "--dataset",
        "digits",
        "--json",
    ]);
    let v: serde_json::Value = serde_json::from_slice(&e.stdout).unwrap();
    assert!(v["top1"].as_f64().unwrap() > 0.9, "{v}");
}

/// `sprig profile --json` gives the contract's keys, with tract timed on the same model in the
/// same run and zero heap allocations per inference.
#[test]
fn profile_json_has_the_contract_keys_and_a_tract_time() {
    let model = std::path::Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("../boards/cortex-m/models/digits_int8.onnx");
    let o = sprig(&["profile", model.to_str().unwrap(), "--runs", "20", "--json"]);
    assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
    let v: serde_json::Value = serde_json::from_slice(&o.stdout).unwrap();
    for key in [
        "median_us",
        "tract_median_us",
        "arena_bytes",
        "arena_lower_bound_bytes",
        "heap_allocations",
        "ops",
    ] {
        assert!(v.get(key).is_some(), "missing {key}: {v}");
    }
    assert!(v["median_us"].as_f64().unwrap() > 0.0);
    assert!(v["tract_median_us"].as_f64().unwrap() > 0.0, "{v}");
    assert_eq!(v["heap_allocations"].as_u64(), Some(0));
    let ops = v["ops"].as_array().unwrap();
    assert!(!ops.is_empty());
    for op in ops {
        assert!(
            op.get("name").is_some()
                && op.get("op_type").is_some()
                && op.get("median_us").is_some()
        );
    }
}

/// `--half`: a float16 model evaluated and profiled with half-precision arithmetic keeps its
/// accuracy (within a point of the widened plan) and needs less arena (f16 weights); the
/// Cortex-M board, which has no float16 arithmetic, refuses the flag.
#[test]
fn half_arithmetic_from_the_cli() {
    let model = std::path::Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("../tests/fixtures/digits_demo.f16.onnx");
    let m = model.to_str().unwrap();
    let eval = |half: bool| {
        let mut args = vec!["eval", m, "--dataset", "digits", "--json"];
        args.extend(half.then_some("--half"));
        let o = sprig(&args);
        assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
        serde_json::from_slice::<serde_json::Value>(&o.stdout).unwrap()
    };
    let (half, widened) = (eval(true), eval(false));
    assert_eq!(half["half_arithmetic"], true);
    let (h, w) = (
        half["top1"].as_f64().unwrap(),
        widened["top1"].as_f64().unwrap(),
    );
    assert!(w > 0.9 && (h - w).abs() <= 0.01, "half {h}, widened {w}");
    assert!(
        half["arena_bytes"].as_u64() < widened["arena_bytes"].as_u64(),
        "{half} vs {widened}"
    );
    let o = sprig(&["profile", m, "--runs", "5", "--json", "--half"]);
    assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
    let v: serde_json::Value = serde_json::from_slice(&o.stdout).unwrap();
    assert!(v["half_arithmetic"].is_string(), "{v}");
    let o = sprig(&["profile", m, "--board", "cortex-m-qemu", "--half"]);
    assert_eq!(o.status.code(), Some(1));
    assert!(String::from_utf8_lossy(&o.stderr).contains("no float16 arithmetic"));
}

/// `sprig freeze`: writes the plan the firmware loads (the same bytes as the library's), and
/// refuses a float model and `--frozen` off the Cortex-M board with a message.
#[test]
fn freeze_from_the_cli() {
    let root = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("..");
    let model = root.join("boards/cortex-m/models/digits_int8.onnx");
    let out = std::env::temp_dir().join(format!("sprig-cli-freeze-{}.plan", std::process::id()));
    let o = sprig(&[
        "freeze",
        model.to_str().unwrap(),
        "-o",
        out.to_str().unwrap(),
    ]);
    assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
    let said = String::from_utf8_lossy(&o.stdout);
    let plan = std::fs::read(&out).unwrap();
    let _ = std::fs::remove_file(&out);
    let bytes = std::fs::read(&model).unwrap();
    let want = sprig_compress::freeze::freeze(&bytes).unwrap();
    let arena = format!("arena {} bytes", want.arena_bytes);
    assert!(said.contains("8 steps") && said.contains(&arena), "{said}");
    assert_eq!(plan, want.bytes);
    let float = root.join("tests/fixtures/digits_student.f32.onnx");
    let o = sprig(&[
        "freeze",
        float.to_str().unwrap(),
        "-o",
        out.to_str().unwrap(),
    ]);
    assert_eq!(o.status.code(), Some(1));
    let err = String::from_utf8_lossy(&o.stderr);
    assert!(err.contains("float step") && !out.exists(), "{err}");
    let o = sprig(&["profile", model.to_str().unwrap(), "--frozen"]);
    assert_eq!(o.status.code(), Some(1));
    assert!(String::from_utf8_lossy(&o.stderr).contains("--frozen is for cortex-m-qemu"));
}

/// `sprig bake`: a model whose Reshape target is a graph input is refused by `sprig run`, runs
/// once the value is baked from a `.npy` file, and bad requests are one-line errors naming the
/// input.
#[test]
fn bake_turns_a_shape_input_into_a_constant() {
    use sprig_compress::pb::{self, Attr, Msg};
    let mut g = Msg::new();
    g.msg(
        1,
        &pb::node(
            "Reshape",
            "r",
            &["x", "shape"],
            &["y"],
            &[] as &[(&str, Attr)],
        ),
    )
    .str(2, "g")
    .msg(11, &pb::value_info("x", pb::dtype::FLOAT, &[2, 3]))
    .msg(11, &pb::value_info("shape", pb::dtype::INT64, &[2]))
    .msg(12, &pb::value_info("y", pb::dtype::FLOAT, &[3, 2]));
    let model = tmp("reshape.onnx");
    std::fs::write(&model, pb::model(&g, 13)).unwrap();
    let x = tmp("x.npy");
    let xs: Vec<u8> = (0..6).flat_map(|i| (i as f32).to_le_bytes()).collect();
    sprig_compress::npy::write(&x, sprig_runtime::DType::F32, &[2, 3], &xs).unwrap();
    let shape = tmp("shape.npy");
    let sv: Vec<u8> = [3i64, 2].iter().flat_map(|v| v.to_le_bytes()).collect();
    sprig_compress::npy::write(&shape, sprig_runtime::DType::I64, &[2], &sv).unwrap();

    let o = sprig(&[
        "run",
        model.to_str().unwrap(),
        "--input",
        x.to_str().unwrap(),
    ]);
    assert_eq!(o.status.code(), Some(1), "a run-time shape must be refused");
    let err = String::from_utf8_lossy(&o.stderr);
    assert_eq!(err.trim_end().lines().count(), 1, "{err}");
    assert!(
        err.contains("non-constant") && err.contains("sprig bake MODEL --input NAME=FILE"),
        "the refusal should point at sprig bake: {err}"
    );

    let baked = tmp("reshape.baked.onnx");
    let o = sprig(&[
        "bake",
        model.to_str().unwrap(),
        "--input",
        &format!("shape={}", shape.display()),
    ]);
    assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
    let said = String::from_utf8_lossy(&o.stdout);
    assert!(said.contains("inputs left: x"), "{said}");
    let y = tmp("y.npy");
    let o = sprig(&[
        "run",
        baked.to_str().unwrap(),
        "--input",
        x.to_str().unwrap(),
        "--output",
        y.to_str().unwrap(),
    ]);
    assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
    let out = sprig_compress::npy::read(&y).unwrap();
    assert_eq!(out.shape, vec![3, 2]);
    assert_eq!(out.bytes, xs);

    for (spec, says) in [
        (
            format!("shap={}", shape.display()),
            "'shap' is not an input",
        ),
        (format!("shape={}", x.display()), "'shape' is declared I64"),
        ("shape".to_string(), "expected NAME=FILE"),
    ] {
        let o = sprig(&["bake", model.to_str().unwrap(), "--input", &spec]);
        assert_eq!(o.status.code(), Some(1), "{spec}");
        let err = String::from_utf8_lossy(&o.stderr);
        assert_eq!(err.trim_end().lines().count(), 1, "{err}");
        assert!(err.contains(says), "{spec}: {err}");
    }
}

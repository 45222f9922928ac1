//! The ONNX node tests that pass shapes, axes, Slice/Clip bounds or quantization parameters as
//! graph inputs (refused by the static planner, see conformance.rs) run here with those inputs
//! baked into initializers by `sprig bake`'s library ([`sprig_compress::bake`]), as a user
//! deploying such a model does: sprig-runtime must compute ONNX's expected outputs from the baked
//! file, and ONNX's checker and onnxruntime must accept it (`tests/baked_ort.py`), so both the
//! ops' semantics and the rewrite are checked.

use crate::support::{python, repo};
use sprig_compress::bake::{bake_inputs, FixedInput};
use sprig_runtime::onnx::TensorView;
use sprig_runtime::{Interpreter, Model};
use std::path::Path;
use std::process::Command;

const NODE_TESTS: &str = "/usr/share/libonnx-testdata/data/node";

const CASES: &[&str] = &[
    "test_clip",
    "test_clip_default_max",
    "test_clip_default_min",
    "test_clip_example",
    "test_clip_inbounds",
    "test_clip_outbounds",
    "test_clip_splitbounds",
    "test_dequantizelinear",
    "test_dequantizelinear_axis",
    "test_quantizelinear",
    "test_quantizelinear_axis",
    "test_reshape_extended_dims",
    "test_reshape_negative_dim",
    "test_reshape_negative_extended_dims",
    "test_reshape_one_dim",
    "test_reshape_reduced_dims",
    "test_reshape_reordered_all_dims",
    "test_reshape_reordered_last_dims",
    "test_reshape_zero_and_negative_dim",
    "test_reshape_zero_dim",
    "test_squeeze",
    "test_squeeze_negative_axes",
    "test_unsqueeze_axis_0",
    "test_unsqueeze_axis_1",
    "test_unsqueeze_axis_2",
    "test_unsqueeze_negative_axes",
    "test_unsqueeze_three_axes",
    "test_unsqueeze_two_axes",
    "test_unsqueeze_unsorted_axes",
    "test_slice",
    "test_slice_default_axes",
    "test_slice_default_steps",
    "test_slice_end_out_of_bounds",
    "test_slice_neg",
    "test_slice_neg_steps",
    "test_slice_negative_axes",
    "test_slice_start_out_of_bounds",
    "test_basic_convinteger",
    "test_convinteger_with_padding",
    "test_convinteger_without_padding",
    "test_matmulinteger",
    "test_qlinearconv",
    "test_qlinearmatmul_2D",
    "test_qlinearmatmul_3D",
    "test_reduce_sum_default_axes_keepdims_example",
    "test_reduce_sum_default_axes_keepdims_random",
    "test_reduce_sum_do_not_keepdims_example",
    "test_reduce_sum_do_not_keepdims_random",
    "test_reduce_sum_empty_axes_input_noop_example",
    "test_reduce_sum_empty_axes_input_noop_random",
    "test_reduce_sum_keepdims_example",
    "test_reduce_sum_keepdims_random",
    "test_reduce_sum_negative_axes_keepdims_example",
    "test_reduce_sum_negative_axes_keepdims_random",
    "test_constant_pad",
    "test_edge_pad",
    "test_reflect_pad",
    "test_expand_dim_changed",
    "test_expand_dim_unchanged",
    "test_tile",
    "test_tile_precomputed",
    "test_split_variable_parts_1d",
    "test_split_variable_parts_2d",
    "test_split_variable_parts_default_axis",
    "test_split_zero_size_splits",
    "test_resize_downsample_scales_linear",
    "test_resize_downsample_scales_linear_align_corners",
    "test_resize_downsample_scales_nearest",
    "test_resize_downsample_sizes_linear_pytorch_half_pixel",
    "test_resize_downsample_sizes_nearest",
    "test_resize_downsample_sizes_nearest_tf_half_pixel_for_nn",
    "test_resize_upsample_scales_linear",
    "test_resize_upsample_scales_linear_align_corners",
    "test_resize_upsample_scales_nearest",
    "test_resize_upsample_sizes_nearest",
    "test_resize_upsample_sizes_nearest_ceil_half_pixel",
    "test_resize_upsample_sizes_nearest_floor_align_corners",
    "test_resize_upsample_sizes_nearest_round_prefer_ceil_asymmetric",
    "test_upsample_nearest",
    "test_top_k",
    "test_top_k_negative_axis",
    "test_top_k_smallest",
    "test_onehot_negative_indices",
    "test_onehot_with_axis",
    "test_onehot_with_negative_axis",
    "test_onehot_without_axis",
    "test_stft",
    "test_stft_with_window",
];

/// Cases whose only inputs are sizes (ConstantOfShape, the windows, MelWeightMatrix): baked
/// entirely, no graph input left.
const ALL_FROZEN: &[&str] = &[
    "test_constantofshape_float_ones",
    "test_constantofshape_int_shape_zero",
    "test_constantofshape_int_zeros",
    "test_blackmanwindow",
    "test_blackmanwindow_symmetric",
    "test_hammingwindow",
    "test_hammingwindow_symmetric",
    "test_hannwindow",
    "test_hannwindow_symmetric",
    "test_melweightmatrix",
];

/// The case's `test_data_set_0/{kind}_{k}.pb`.
fn data_file(case: &Path, kind: &str, k: usize) -> std::path::PathBuf {
    case.join("test_data_set_0").join(format!("{kind}_{k}.pb"))
}

/// Bakes every input but the first (all of them for [`ALL_FROZEN`]) into the case's model,
/// writes the baked file to `out` for the onnxruntime check, runs it and compares every output.
fn run_case(name: &str, out: &Path) -> Result<(), String> {
    let all = ALL_FROZEN.contains(&name);
    let case = Path::new(NODE_TESTS).join(name);
    let bytes = std::fs::read(case.join("model.onnx")).map_err(|e| e.to_string())?;
    let model = Model::parse(&bytes).map_err(|e| e.to_string())?;
    let mut names = Vec::new();
    for vi in model.inputs() {
        let vi = vi.map_err(|e| e.to_string())?;
        if model
            .initializer(vi.name)
            .map_err(|e| e.to_string())?
            .is_none()
        {
            names.push(vi.name.to_string());
        }
    }
    let first_baked = if all { 0 } else { 1 };
    let fixed = names
        .iter()
        .enumerate()
        .skip(first_baked)
        .map(|(k, n)| {
            FixedInput::from_file(n, &data_file(&case, "input", k)).map_err(|e| e.to_string())
        })
        .collect::<Result<Vec<_>, _>>()?;
    let baked = bake_inputs(&bytes, &fixed).map_err(|e| e.to_string())?;
    std::fs::write(out.join(format!("{name}.onnx")), &baked.bytes).map_err(|e| e.to_string())?;
    std::fs::write(
        out.join(format!("{name}.dir")),
        case.to_string_lossy().as_bytes(),
    )
    .map_err(|e| e.to_string())?;

    let model = Model::parse(&baked.bytes).map_err(|e| e.to_string())?;
    let mut arena = vec![0u8; model.arena_bytes().map_err(|e| e.to_string())?];
    let mut it = Interpreter::new(&model, &mut arena).map_err(|e| e.to_string())?;
    if it.input_count() != first_baked {
        return Err(format!("{} inputs left after baking", it.input_count()));
    }
    if !all {
        let raw = std::fs::read(data_file(&case, "input", 0)).map_err(|e| e.to_string())?;
        let x = TensorView::parse(&raw).map_err(|e| e.to_string())?;
        it.set_input(0, x.raw().ok_or("non-raw input")?)
            .map_err(|e| e.to_string())?;
    }
    it.invoke().map_err(|e| e.to_string())?;
    // ONNX made the windows' expected values with numpy's float32 cos (errors up to 3.5e-5
    // against the exact window; sprig's are within 1e-7, and within 3e-7 of onnxruntime's,
    // tests/mobile_cases.py).
    let tol = if name.ends_with("window") || name.ends_with("window_symmetric") {
        1e-4
    } else {
        1e-5
    };
    for k in 0..it.output_count() {
        let raw = std::fs::read(data_file(&case, "output", k)).map_err(|e| e.to_string())?;
        let want = TensorView::parse(&raw).map_err(|e| e.to_string())?;
        let want_bytes = want.raw().ok_or("non-raw expected output")?;
        let got = it.output(k).map_err(|e| e.to_string())?;
        if got.shape.dims() != want.shape.dims() || got.data.len() != want_bytes.len() {
            return Err(format!(
                "output {k}: shape {:?} ({} bytes), expected {:?} ({} bytes)",
                got.shape.dims(),
                got.data.len(),
                want.shape.dims(),
                want_bytes.len()
            ));
        }
        match (got.as_f32(), want.dtype) {
            (Some(g), sprig_runtime::DType::F32) => {
                for (i, (a, b)) in g.iter().zip(want_bytes.chunks(4)).enumerate() {
                    let b = f32::from_le_bytes(b.try_into().unwrap());
                    if (a - b).abs() > tol * b.abs().max(1.0) {
                        return Err(format!("output {k} element {i}: {a} vs {b}"));
                    }
                }
            }
            _ if got.data == want_bytes => {}
            _ => return Err(format!("output {k}: integer values differ")),
        }
    }
    Ok(())
}

#[test]
fn node_tests_with_baked_inputs_match_onnx() {
    assert!(
        Path::new(NODE_TESTS).exists(),
        "{NODE_TESTS} missing: tests/run.sh installs libonnx-testdata"
    );
    let out = std::env::temp_dir().join(format!("sprig-baked-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&out);
    std::fs::create_dir_all(&out).unwrap();
    let mut failures = Vec::new();
    for name in CASES.iter().chain(ALL_FROZEN) {
        if let Err(e) = run_case(name, &out) {
            failures.push(format!("{name}: {e}"));
        }
    }
    eprintln!(
        "baked-input node tests: {} of {} match",
        CASES.len() + ALL_FROZEN.len() - failures.len(),
        CASES.len() + ALL_FROZEN.len()
    );
    assert!(failures.is_empty(), "{}", failures.join("\n"));
    // The baked files are standard ONNX: ONNX's checker accepts them and onnxruntime gives the
    // same outputs from them as from the originals fed every input.
    let ort = Command::new(python())
        .arg(repo().join("tests/baked_ort.py"))
        .arg(&out)
        .output()
        .expect("python runs");
    eprint!("{}", String::from_utf8_lossy(&ort.stdout));
    assert!(
        ort.status.success(),
        "baked models rejected by onnx/onnxruntime: {}{}",
        String::from_utf8_lossy(&ort.stdout),
        String::from_utf8_lossy(&ort.stderr)
    );
    let _ = std::fs::remove_dir_all(&out);
}

//! The ONNX node tests that pass shapes, axes, Slice/Clip bounds or quantization parameters as
//! graph inputs (refused by the static planner, see conformance.rs) run here with those inputs
//! frozen into initializers (tests/freeze_inputs.py, onnx from the venv): sprig-runtime must
//! compute ONNX's expected outputs, so the ops' semantics are checked even where the test files
//! are not in ahead-of-time form.

use crate::support::{python, repo};
use sprig_compress::npy;
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
];

/// Cases whose only input is the shape (ConstantOfShape): frozen entirely, no graph input left.
const ALL_FROZEN: &[&str] = &[
    "test_constantofshape_float_ones",
    "test_constantofshape_int_shape_zero",
    "test_constantofshape_int_zeros",
];

fn run_case(name: &str, dir: &Path) -> Result<(), String> {
    let all = ALL_FROZEN.contains(&name);
    let o = Command::new(python())
        .arg(repo().join("tests/freeze_inputs.py"))
        .arg(Path::new(NODE_TESTS).join(name))
        .arg(dir)
        .args(all.then_some("--all"))
        .output()
        .map_err(|e| e.to_string())?;
    if !o.status.success() {
        return Err(String::from_utf8_lossy(&o.stderr).into_owned());
    }
    let bytes = std::fs::read(dir.join("model.onnx")).map_err(|e| e.to_string())?;
    let model = Model::parse(&bytes).map_err(|e| e.to_string())?;
    let mut arena = vec![0u8; model.arena_bytes().map_err(|e| e.to_string())?];
    let mut it = Interpreter::new(&model, &mut arena).map_err(|e| e.to_string())?;
    if !all {
        let x = npy::read(&dir.join("input_0.npy")).map_err(|e| e.to_string())?;
        it.set_input(0, &x.bytes).map_err(|e| e.to_string())?;
    }
    it.invoke().map_err(|e| e.to_string())?;
    for k in 0..it.output_count() {
        let want = npy::read(&dir.join(format!("output_{k}.npy"))).map_err(|e| e.to_string())?;
        let got = it.output(k).map_err(|e| e.to_string())?;
        if got.data.len() != want.bytes.len() {
            return Err(format!(
                "output {k}: {} bytes, expected {}",
                got.data.len(),
                want.bytes.len()
            ));
        }
        match (got.as_f32(), want.dtype) {
            (Some(g), sprig_runtime::DType::F32) => {
                for (i, (a, b)) in g.iter().zip(want.bytes.chunks(4)).enumerate() {
                    let b = f32::from_le_bytes(b.try_into().unwrap());
                    if (a - b).abs() > 1e-5 * b.abs().max(1.0) {
                        return Err(format!("output {k} element {i}: {a} vs {b}"));
                    }
                }
            }
            _ if got.data == want.bytes.as_slice() => {}
            _ => return Err(format!("output {k}: integer values differ")),
        }
    }
    Ok(())
}

#[test]
fn node_tests_with_frozen_inputs_match_onnx() {
    assert!(
        Path::new(NODE_TESTS).exists(),
        "{NODE_TESTS} missing: tests/run.sh installs libonnx-testdata"
    );
    let base = std::env::temp_dir().join(format!("sprig-frozen-{}", std::process::id()));
    let mut failures = Vec::new();
    for name in CASES.iter().chain(ALL_FROZEN) {
        let dir = base.join(name);
        std::fs::create_dir_all(&dir).unwrap();
        if let Err(e) = run_case(name, &dir) {
            failures.push(format!("{name}: {e}"));
        }
    }
    eprintln!(
        "frozen-input node tests: {} of {} match",
        CASES.len() + ALL_FROZEN.len() - failures.len(),
        CASES.len() + ALL_FROZEN.len()
    );
    assert!(failures.is_empty(), "{}", failures.join("\n"));
}

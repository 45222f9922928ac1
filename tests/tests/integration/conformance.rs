//! ONNX's own backend node tests (Debian `libonnx-testdata`) for every op sprig-runtime claims.
//!
//! A test case is *claimed* when every node's op is in `SUPPORTED_OPS`. A claimed case must
//! either pass (outputs equal to ONNX's within rtol 1e-3 / atol 1e-5, int outputs exact) or be
//! refused at plan time with a typed error and be listed in `KNOWN_GAPS` below — so a new gap
//! or a wrong answer fails this test, and README's numbers come from its output.

use sprig_runtime::onnx::{for_each_op_type, TensorView};
use sprig_runtime::ops::SUPPORTED_OPS;
use sprig_runtime::{DType, Interpreter, Model};
use std::path::Path;

const NODE_DIR: &str = "/usr/share/libonnx-testdata/data/node";

/// Why most listed cases are refused; conformance_baked.rs runs them with those inputs baked in.
const STATIC_PLAN: &str =
    "static plan: shape, axes, K, bounds or quantization parameters given as graph inputs instead of constants";

/// Claimed-op cases the runtime refuses (typed error at plan time), with the reason.
const KNOWN_GAPS: &[(&str, &str)] = &[
    (
        "test_clip_default_int8_inbounds",
        "Clip on int8 tensors outside QDQ patterns",
    ),
    (
        "test_clip_default_int8_max",
        "Clip on int8 tensors outside QDQ patterns",
    ),
    (
        "test_clip_default_int8_min",
        "Clip on int8 tensors outside QDQ patterns",
    ),
    ("test_averagepool_3d_default", "3-D pooling"),
    ("test_maxpool_3d_default", "3-D pooling"),
    (
        "test_batchnorm_epsilon_training_mode",
        "training-mode or argmax extra outputs",
    ),
    (
        "test_batchnorm_example_training_mode",
        "training-mode or argmax extra outputs",
    ),
    (
        "test_maxpool_with_argmax_2d_precomputed_pads",
        "training-mode or argmax extra outputs",
    ),
    (
        "test_maxpool_with_argmax_2d_precomputed_strides",
        "training-mode or argmax extra outputs",
    ),
    ("test_cumsum_1d", "double, bfloat16 and string tensors"),
    (
        "test_cumsum_1d_exclusive",
        "double, bfloat16 and string tensors",
    ),
    (
        "test_cumsum_1d_reverse",
        "double, bfloat16 and string tensors",
    ),
    (
        "test_cumsum_1d_reverse_exclusive",
        "double, bfloat16 and string tensors",
    ),
    (
        "test_cumsum_2d_axis_0",
        "double, bfloat16 and string tensors",
    ),
    (
        "test_cumsum_2d_axis_1",
        "double, bfloat16 and string tensors",
    ),
    (
        "test_cumsum_2d_negative_axis",
        "double, bfloat16 and string tensors",
    ),
    (
        "test_einsum_batch_diagonal",
        "double, bfloat16 and string tensors",
    ),
    (
        "test_einsum_batch_matmul",
        "double, bfloat16 and string tensors",
    ),
    (
        "test_einsum_inner_prod",
        "double, bfloat16 and string tensors",
    ),
    ("test_einsum_sum", "double, bfloat16 and string tensors"),
    (
        "test_einsum_transpose",
        "double, bfloat16 and string tensors",
    ),
    (
        "test_eyelike_with_dtype",
        "double, bfloat16 and string tensors",
    ),
    ("test_blackmanwindow", STATIC_PLAN),
    ("test_blackmanwindow_symmetric", STATIC_PLAN),
    ("test_hammingwindow", STATIC_PLAN),
    ("test_hammingwindow_symmetric", STATIC_PLAN),
    ("test_hannwindow", STATIC_PLAN),
    ("test_hannwindow_symmetric", STATIC_PLAN),
    ("test_melweightmatrix", STATIC_PLAN),
    ("test_stft", STATIC_PLAN),
    ("test_stft_with_window", STATIC_PLAN),
    ("test_onehot_negative_indices", STATIC_PLAN),
    ("test_onehot_with_axis", STATIC_PLAN),
    ("test_onehot_with_negative_axis", STATIC_PLAN),
    ("test_onehot_without_axis", STATIC_PLAN),
    ("test_dequantizelinear_axis", STATIC_PLAN),
    ("test_quantizelinear_axis", STATIC_PLAN),
    ("test_reshape_extended_dims", STATIC_PLAN),
    ("test_reshape_negative_dim", STATIC_PLAN),
    ("test_reshape_negative_extended_dims", STATIC_PLAN),
    ("test_reshape_one_dim", STATIC_PLAN),
    ("test_reshape_reduced_dims", STATIC_PLAN),
    ("test_reshape_reordered_all_dims", STATIC_PLAN),
    ("test_reshape_reordered_last_dims", STATIC_PLAN),
    ("test_reshape_zero_and_negative_dim", STATIC_PLAN),
    ("test_reshape_zero_dim", STATIC_PLAN),
    ("test_slice", STATIC_PLAN),
    ("test_slice_default_axes", STATIC_PLAN),
    ("test_slice_default_steps", STATIC_PLAN),
    ("test_slice_end_out_of_bounds", STATIC_PLAN),
    ("test_slice_neg", STATIC_PLAN),
    ("test_slice_neg_steps", STATIC_PLAN),
    ("test_slice_negative_axes", STATIC_PLAN),
    ("test_slice_start_out_of_bounds", STATIC_PLAN),
    ("test_squeeze", STATIC_PLAN),
    ("test_squeeze_negative_axes", STATIC_PLAN),
    ("test_unsqueeze_axis_0", STATIC_PLAN),
    ("test_unsqueeze_axis_1", STATIC_PLAN),
    ("test_unsqueeze_axis_2", STATIC_PLAN),
    ("test_unsqueeze_negative_axes", STATIC_PLAN),
    ("test_unsqueeze_three_axes", STATIC_PLAN),
    ("test_unsqueeze_two_axes", STATIC_PLAN),
    ("test_unsqueeze_unsorted_axes", STATIC_PLAN),
    ("test_qlinearconv", STATIC_PLAN),
    ("test_qlinearmatmul_2D", STATIC_PLAN),
    ("test_qlinearmatmul_3D", STATIC_PLAN),
    ("test_constantofshape_float_ones", STATIC_PLAN),
    ("test_constantofshape_int_shape_zero", STATIC_PLAN),
    ("test_constantofshape_int_zeros", STATIC_PLAN),
    (
        "test_cast_BFLOAT16_to_FLOAT",
        "double, bfloat16 and string tensors",
    ),
    (
        "test_cast_DOUBLE_to_FLOAT",
        "double, bfloat16 and string tensors",
    ),
    (
        "test_cast_DOUBLE_to_FLOAT16",
        "double, bfloat16 and string tensors",
    ),
    (
        "test_cast_FLOAT16_to_DOUBLE",
        "double, bfloat16 and string tensors",
    ),
    (
        "test_cast_FLOAT_to_BFLOAT16",
        "double, bfloat16 and string tensors",
    ),
    (
        "test_cast_FLOAT_to_DOUBLE",
        "double, bfloat16 and string tensors",
    ),
    (
        "test_cast_FLOAT_to_STRING",
        "double, bfloat16 and string tensors",
    ),
    (
        "test_cast_STRING_to_FLOAT",
        "double, bfloat16 and string tensors",
    ),
    (
        "test_castlike_BFLOAT16_to_FLOAT_expanded",
        "double, bfloat16 and string tensors",
    ),
    (
        "test_castlike_DOUBLE_to_FLOAT16_expanded",
        "double, bfloat16 and string tensors",
    ),
    (
        "test_castlike_DOUBLE_to_FLOAT_expanded",
        "double, bfloat16 and string tensors",
    ),
    (
        "test_castlike_FLOAT16_to_DOUBLE_expanded",
        "double, bfloat16 and string tensors",
    ),
    (
        "test_castlike_FLOAT_to_BFLOAT16_expanded",
        "double, bfloat16 and string tensors",
    ),
    (
        "test_castlike_FLOAT_to_DOUBLE_expanded",
        "double, bfloat16 and string tensors",
    ),
    (
        "test_castlike_FLOAT_to_STRING_expanded",
        "double, bfloat16 and string tensors",
    ),
    (
        "test_castlike_STRING_to_FLOAT_expanded",
        "double, bfloat16 and string tensors",
    ),
    (
        "test_constant",
        "graph output that is a constant (nothing to compute)",
    ),
    ("test_identity_opt", "optional/sequence types"),
    ("test_identity_sequence", "optional/sequence types"),
    ("test_reshape_allowzero_reordered", "Reshape allowzero"),
    (
        "test_mod_mixed_sign_float64",
        "int16, uint16, uint32, uint64 and float64 tensors",
    ),
    (
        "test_mod_mixed_sign_int16",
        "int16, uint16, uint32, uint64 and float64 tensors",
    ),
    (
        "test_mod_uint16",
        "int16, uint16, uint32, uint64 and float64 tensors",
    ),
    (
        "test_mod_uint32",
        "int16, uint16, uint32, uint64 and float64 tensors",
    ),
    (
        "test_mod_uint64",
        "int16, uint16, uint32, uint64 and float64 tensors",
    ),
    (
        "test_max_float64",
        "int16, uint16, uint32, uint64 and float64 tensors",
    ),
    (
        "test_max_int16",
        "int16, uint16, uint32, uint64 and float64 tensors",
    ),
    (
        "test_max_uint16",
        "int16, uint16, uint32, uint64 and float64 tensors",
    ),
    (
        "test_max_uint32",
        "int16, uint16, uint32, uint64 and float64 tensors",
    ),
    (
        "test_max_uint64",
        "int16, uint16, uint32, uint64 and float64 tensors",
    ),
    (
        "test_min_float64",
        "int16, uint16, uint32, uint64 and float64 tensors",
    ),
    (
        "test_min_int16",
        "int16, uint16, uint32, uint64 and float64 tensors",
    ),
    (
        "test_min_uint16",
        "int16, uint16, uint32, uint64 and float64 tensors",
    ),
    (
        "test_min_uint32",
        "int16, uint16, uint32, uint64 and float64 tensors",
    ),
    (
        "test_min_uint64",
        "int16, uint16, uint32, uint64 and float64 tensors",
    ),
    (
        "test_pow_types_float",
        "Pow with an integer base or exponent",
    ),
    (
        "test_pow_types_float32_int32",
        "Pow with an integer base or exponent",
    ),
    (
        "test_pow_types_float32_int64",
        "Pow with an integer base or exponent",
    ),
    ("test_pow_types_int", "Pow with an integer base or exponent"),
    (
        "test_pow_types_int32_float32",
        "Pow with an integer base or exponent",
    ),
    (
        "test_pow_types_int32_int32",
        "Pow with an integer base or exponent",
    ),
    (
        "test_pow_types_int64_float32",
        "Pow with an integer base or exponent",
    ),
    (
        "test_pow_types_int64_int64",
        "Pow with an integer base or exponent",
    ),
    (
        "test_pow_types_float32_uint32",
        "int16, uint16, uint32, uint64 and float64 tensors",
    ),
    (
        "test_pow_types_float32_uint64",
        "int16, uint16, uint32, uint64 and float64 tensors",
    ),
    ("test_reduce_sum_default_axes_keepdims_example", STATIC_PLAN),
    ("test_reduce_sum_default_axes_keepdims_random", STATIC_PLAN),
    ("test_reduce_sum_do_not_keepdims_example", STATIC_PLAN),
    ("test_reduce_sum_do_not_keepdims_random", STATIC_PLAN),
    ("test_reduce_sum_empty_axes_input_noop_example", STATIC_PLAN),
    ("test_reduce_sum_empty_axes_input_noop_random", STATIC_PLAN),
    ("test_reduce_sum_keepdims_example", STATIC_PLAN),
    ("test_reduce_sum_keepdims_random", STATIC_PLAN),
    (
        "test_reduce_sum_negative_axes_keepdims_example",
        STATIC_PLAN,
    ),
    ("test_reduce_sum_negative_axes_keepdims_random", STATIC_PLAN),
    (
        "test_reduce_log_sum_exp_default_axes_keepdims_example",
        "double, bfloat16 and string tensors",
    ),
    (
        "test_reduce_log_sum_exp_default_axes_keepdims_random",
        "double, bfloat16 and string tensors",
    ),
    (
        "test_reduce_log_sum_exp_do_not_keepdims_example",
        "double, bfloat16 and string tensors",
    ),
    (
        "test_reduce_log_sum_exp_do_not_keepdims_random",
        "double, bfloat16 and string tensors",
    ),
    (
        "test_reduce_log_sum_exp_keepdims_example",
        "double, bfloat16 and string tensors",
    ),
    (
        "test_reduce_log_sum_exp_keepdims_random",
        "double, bfloat16 and string tensors",
    ),
    (
        "test_reduce_log_sum_exp_negative_axes_keepdims_example",
        "double, bfloat16 and string tensors",
    ),
    (
        "test_reduce_log_sum_exp_negative_axes_keepdims_random",
        "double, bfloat16 and string tensors",
    ),
    ("test_constant_pad", STATIC_PLAN),
    ("test_edge_pad", STATIC_PLAN),
    ("test_reflect_pad", STATIC_PLAN),
    ("test_expand_dim_changed", STATIC_PLAN),
    ("test_expand_dim_unchanged", STATIC_PLAN),
    ("test_tile", STATIC_PLAN),
    ("test_tile_precomputed", STATIC_PLAN),
    (
        "test_dropout_default_mask",
        "training-mode or argmax extra outputs",
    ),
    (
        "test_dropout_default_mask_ratio",
        "training-mode or argmax extra outputs",
    ),
    (
        "test_training_dropout",
        "training-mode or argmax extra outputs",
    ),
    (
        "test_training_dropout_default",
        "training-mode or argmax extra outputs",
    ),
    (
        "test_training_dropout_default_mask",
        "training-mode or argmax extra outputs",
    ),
    (
        "test_training_dropout_mask",
        "training-mode or argmax extra outputs",
    ),
    (
        "test_training_dropout_zero_ratio",
        "training-mode or argmax extra outputs",
    ),
    (
        "test_training_dropout_zero_ratio_mask",
        "training-mode or argmax extra outputs",
    ),
    ("test_split_variable_parts_1d", STATIC_PLAN),
    ("test_split_variable_parts_2d", STATIC_PLAN),
    ("test_split_variable_parts_default_axis", STATIC_PLAN),
    ("test_split_zero_size_splits", STATIC_PLAN),
    ("test_resize_downsample_scales_cubic", "cubic Resize"),
    (
        "test_resize_downsample_scales_cubic_A_n0p5_exclude_outside",
        "cubic Resize",
    ),
    (
        "test_resize_downsample_scales_cubic_align_corners",
        "cubic Resize",
    ),
    ("test_resize_downsample_scales_linear", STATIC_PLAN),
    (
        "test_resize_downsample_scales_linear_align_corners",
        STATIC_PLAN,
    ),
    ("test_resize_downsample_scales_nearest", STATIC_PLAN),
    ("test_resize_downsample_sizes_cubic", "cubic Resize"),
    (
        "test_resize_downsample_sizes_linear_pytorch_half_pixel",
        STATIC_PLAN,
    ),
    ("test_resize_downsample_sizes_nearest", STATIC_PLAN),
    (
        "test_resize_downsample_sizes_nearest_tf_half_pixel_for_nn",
        STATIC_PLAN,
    ),
    (
        "test_resize_tf_crop_and_resize",
        "Resize tf_crop_and_resize",
    ),
    ("test_resize_upsample_scales_cubic", "cubic Resize"),
    (
        "test_resize_upsample_scales_cubic_A_n0p5_exclude_outside",
        "cubic Resize",
    ),
    (
        "test_resize_upsample_scales_cubic_align_corners",
        "cubic Resize",
    ),
    (
        "test_resize_upsample_scales_cubic_asymmetric",
        "cubic Resize",
    ),
    ("test_resize_upsample_scales_linear", STATIC_PLAN),
    (
        "test_resize_upsample_scales_linear_align_corners",
        STATIC_PLAN,
    ),
    ("test_resize_upsample_scales_nearest", STATIC_PLAN),
    ("test_resize_upsample_sizes_cubic", "cubic Resize"),
    ("test_resize_upsample_sizes_nearest", STATIC_PLAN),
    (
        "test_resize_upsample_sizes_nearest_ceil_half_pixel",
        STATIC_PLAN,
    ),
    (
        "test_resize_upsample_sizes_nearest_floor_align_corners",
        STATIC_PLAN,
    ),
    (
        "test_resize_upsample_sizes_nearest_round_prefer_ceil_asymmetric",
        STATIC_PLAN,
    ),
    ("test_upsample_nearest", STATIC_PLAN),
    ("test_convtranspose_3d", "3-D convolution"),
    ("test_top_k", STATIC_PLAN),
    ("test_top_k_negative_axis", STATIC_PLAN),
    ("test_top_k_smallest", STATIC_PLAN),
];

enum Outcome {
    Pass,
    Fail(String),
    Refused(String),
}

fn run_case(dir: &Path) -> Option<Outcome> {
    let bytes = std::fs::read(dir.join("model.onnx")).ok()?;
    let mut claimed = true;
    for_each_op_type(&bytes, |op| {
        claimed &= SUPPORTED_OPS.contains(&op) || op == "Constant"
    })
    .ok()?;
    if !claimed {
        return None;
    }
    let model = match Model::parse(&bytes) {
        Ok(m) => m,
        Err(e) => return Some(Outcome::Refused(format!("parse: {e}"))),
    };
    let need = match model.arena_bytes() {
        Ok(n) => n,
        Err(e) => return Some(Outcome::Refused(format!("{e}"))),
    };
    let mut arena = vec![0u8; need];
    let mut it = match Interpreter::new(&model, &mut arena) {
        Ok(i) => i,
        Err(e) => return Some(Outcome::Refused(format!("{e}"))),
    };
    let data = dir.join("test_data_set_0");
    for i in 0..it.input_count() {
        let raw = std::fs::read(data.join(format!("input_{i}.pb"))).ok()?;
        let t = TensorView::parse(&raw).ok()?;
        let mut buf = vec![0u8; t.shape.numel() * t.dtype.size()];
        match t.raw() {
            Some(r) => buf.copy_from_slice(r),
            None => return Some(Outcome::Refused("non-raw test input".into())),
        }
        if t.dtype == DType::F16 {
            // float16 inputs are computed as float32: hand over the widened values.
            buf = buf
                .chunks_exact(2)
                .flat_map(|c| {
                    half::f16::from_le_bytes([c[0], c[1]])
                        .to_f32()
                        .to_le_bytes()
                })
                .collect();
        }
        if let Err(e) = it.set_input(i, &buf) {
            return Some(Outcome::Fail(format!("input {i}: {e}")));
        }
    }
    if let Err(e) = it.invoke() {
        return Some(Outcome::Fail(format!("invoke: {e}")));
    }
    for o in 0..it.output_count() {
        let raw = std::fs::read(data.join(format!("output_{o}.pb"))).ok()?;
        let want = TensorView::parse(&raw).ok()?;
        let got = it.output(o).ok()?;
        // float16 outputs come out as float32 holding f16 values: compare in f16.
        let (want_dtype, wraw_f16);
        if want.dtype == DType::F16 && got.dtype == DType::F32 {
            want_dtype = DType::F32;
            wraw_f16 = Some(
                want.raw()?
                    .chunks_exact(2)
                    .flat_map(|c| {
                        half::f16::from_le_bytes([c[0], c[1]])
                            .to_f32()
                            .to_le_bytes()
                    })
                    .collect::<Vec<u8>>(),
            );
        } else {
            want_dtype = want.dtype;
            wraw_f16 = None;
        }
        if got.shape.dims() != want.shape.dims() || got.dtype != want_dtype {
            return Some(Outcome::Fail(format!(
                "output {o}: shape/type {:?} {:?} vs expected {:?} {:?}",
                got.dtype,
                got.shape.dims(),
                want.dtype,
                want.shape.dims()
            )));
        }
        let wraw = match &wraw_f16 {
            Some(w) => w.as_slice(),
            None => want.raw()?,
        };
        if got.dtype == DType::F32 {
            let g: Vec<f32> = got
                .data
                .chunks_exact(4)
                .map(|c| f32::from_le_bytes(c.try_into().unwrap()))
                .collect();
            let w: Vec<f32> = wraw
                .chunks_exact(4)
                .map(|c| f32::from_le_bytes(c.try_into().unwrap()))
                .collect();
            for (i, (a, b)) in g.iter().zip(&w).enumerate() {
                let ok =
                    (a.is_nan() && b.is_nan()) || (a - b).abs() <= 1e-5 + 1e-3 * b.abs() || a == b;
                if !ok {
                    return Some(Outcome::Fail(format!(
                        "output {o}[{i}] = {a}, expected {b}"
                    )));
                }
            }
        } else if got.data != wraw {
            return Some(Outcome::Fail(format!("output {o}: integer values differ")));
        }
    }
    Some(Outcome::Pass)
}

#[test]
fn onnx_backend_node_tests() {
    let root = Path::new(NODE_DIR);
    if !root.exists() {
        panic!("{NODE_DIR} is missing: install Debian's libonnx-testdata (tests/run.sh does)");
    }
    let mut dirs: Vec<_> = std::fs::read_dir(root)
        .unwrap()
        .flatten()
        .map(|e| e.path())
        .collect();
    dirs.sort();
    let (mut pass, mut refused_known, mut bad) = (0, 0, Vec::new());
    for d in &dirs {
        let name = d.file_name().unwrap().to_string_lossy().to_string();
        match run_case(d) {
            None => {}
            // A listed gap that passes has been closed: the list must say so.
            Some(Outcome::Pass) if KNOWN_GAPS.iter().any(|(n, _)| *n == name) => {
                bad.push(format!("PASSES  {name}: listed in KNOWN_GAPS, remove it"))
            }
            Some(Outcome::Pass) => pass += 1,
            Some(Outcome::Fail(why)) => bad.push(format!("FAIL    {name}: {why}")),
            Some(Outcome::Refused(why)) => {
                if KNOWN_GAPS.iter().any(|(n, _)| *n == name) {
                    refused_known += 1;
                } else {
                    bad.push(format!("REFUSED {name}: {why}"));
                }
            }
        }
    }
    println!(
        "conformance: {pass} passed, {refused_known} refused (known gaps), {} unexpected",
        bad.len()
    );
    for b in &bad {
        println!("  {b}");
    }
    assert!(pass > 0, "no claimed test case ran");
    assert!(
        bad.is_empty(),
        "{} claimed ONNX node tests failed, were refused without being listed, or pass while listed",
        bad.len()
    );
}

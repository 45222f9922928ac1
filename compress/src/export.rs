//! ONNX export of a trained [`ArchSpec`]: float32, and int8 QDQ following DESIGN §3 — int8
//! symmetric per-output-channel weights with DequantizeLinear on axis 0, int32 bias, activations
//! wrapped in QuantizeLinear/DequantizeLinear pairs. MaxPool and Flatten run directly on the int8
//! tensor (ONNX allows int8 for both, and they commute with quantization), so no extra Q/DQ is
//! placed around them.

use crate::pb::{self, dtype, node, tensor, tensor_f32, value_info, Attr, Msg};
use crate::quantize::{ActQuant, WeightQuant};
use sprig_models::arch::{ArchSpec, LayerSpec, LayerWeights};

/// Opset of every exported file (QDQ with per-axis scales needs 13).
pub const OPSET: i64 = 13;

/// Name of the graph input and output.
pub const INPUT: &str = "input";
/// See [`INPUT`].
pub const OUTPUT: &str = "logits";

fn input_dims(spec: &ArchSpec) -> [usize; 4] {
    [1, spec.input.0, spec.input.1, spec.input.2]
}

fn out_features(spec: &ArchSpec) -> usize {
    spec.shapes().last().map(|s| s.0).unwrap_or(0)
}

/// Float32 ONNX of the trained model.
pub fn export_f32(spec: &ArchSpec, weights: &[LayerWeights]) -> Vec<u8> {
    let mut g = Msg::new();
    g.str(2, &spec.name);
    let mut cur = INPUT.to_string();
    let mut c_in = spec.input.0;
    let n_layers = spec.layers.len();
    for (i, ((l, w), s)) in spec
        .layers
        .iter()
        .zip(weights)
        .zip(spec.shapes())
        .enumerate()
    {
        let out = if i + 1 == n_layers {
            OUTPUT.to_string()
        } else {
            format!("t{i}")
        };
        match (l, w) {
            (
                LayerSpec::Conv {
                    out: oc, k, relu, ..
                },
                LayerWeights::Conv { w, b },
            ) => {
                g.msg(5, &tensor_f32(&format!("w{i}"), &[*oc, c_in, *k, *k], w));
                g.msg(5, &tensor_f32(&format!("b{i}"), &[*oc], b));
                let pre = if *relu { format!("c{i}") } else { out.clone() };
                g.msg(
                    1,
                    &layer_node(l, i, &[&cur, &format!("w{i}"), &format!("b{i}")], &pre),
                );
                if *relu {
                    g.msg(1, &node("Relu", &format!("relu{i}"), &[&pre], &[&out], &[]));
                }
            }
            (LayerSpec::Dense { out: o, relu }, LayerWeights::Dense { w, b }) => {
                g.msg(5, &tensor_f32(&format!("w{i}"), &[*o, c_in], w));
                g.msg(5, &tensor_f32(&format!("b{i}"), &[*o], b));
                let pre = if *relu { format!("c{i}") } else { out.clone() };
                g.msg(
                    1,
                    &layer_node(l, i, &[&cur, &format!("w{i}"), &format!("b{i}")], &pre),
                );
                if *relu {
                    g.msg(1, &node("Relu", &format!("relu{i}"), &[&pre], &[&out], &[]));
                }
            }
            (LayerSpec::MaxPool2 | LayerSpec::Flatten, _) => {
                g.msg(1, &layer_node(l, i, &[&cur], &out));
            }
            _ => panic!("weights do not match the architecture at layer {i}"),
        }
        cur = out;
        c_in = s.0;
    }
    g.msg(11, &value_info(INPUT, dtype::FLOAT, &input_dims(spec)));
    g.msg(
        12,
        &value_info(OUTPUT, dtype::FLOAT, &[1, out_features(spec)]),
    );
    pb::model(&g, OPSET)
}

/// The node of layer `i` (Conv, Gemm, MaxPool or Flatten). The same node serves the float and
/// the QDQ export: only its inputs differ.
fn layer_node(l: &LayerSpec, i: usize, ins: &[&str], out: &str) -> Msg {
    match *l {
        LayerSpec::Conv { k, pad, .. } => {
            let (k, p) = (k as i64, pad as i64);
            node(
                "Conv",
                &format!("conv{i}"),
                ins,
                &[out],
                &[
                    ("kernel_shape", Attr::Ints(&[k, k])),
                    ("pads", Attr::Ints(&[p, p, p, p])),
                ],
            )
        }
        LayerSpec::Dense { .. } => node(
            "Gemm",
            &format!("fc{i}"),
            ins,
            &[out],
            &[("transB", Attr::Int(1))],
        ),
        LayerSpec::MaxPool2 => node(
            "MaxPool",
            &format!("pool{i}"),
            ins,
            &[out],
            &[
                ("kernel_shape", Attr::Ints(&[2, 2])),
                ("strides", Attr::Ints(&[2, 2])),
            ],
        ),
        LayerSpec::Flatten => node(
            "Flatten",
            &format!("flatten{i}"),
            ins,
            &[out],
            &[("axis", Attr::Int(1))],
        ),
    }
}

fn scalar_f32(name: &str, v: f32) -> Msg {
    tensor_f32(name, &[], &[v])
}

fn scalar_i8(name: &str, v: i8) -> Msg {
    tensor(name, dtype::INT8, &[], &[v as u8])
}

/// Int8 QDQ ONNX. `acts[0]` quantizes the input, `acts[j + 1]` the output of the j-th weighted
/// layer (after its activation).
pub fn export_int8(spec: &ArchSpec, weights: &[LayerWeights], acts: &[ActQuant]) -> Vec<u8> {
    let mut g = Msg::new();
    g.str(2, &format!("{}-int8", spec.name));
    let mut c_in = spec.input.0;
    // Quantize the float input.
    g.msg(5, &scalar_f32("in_scale", acts[0].scale));
    g.msg(5, &scalar_i8("in_zp", acts[0].zero_point));
    g.msg(
        1,
        &node(
            "QuantizeLinear",
            "quant_input",
            &[INPUT, "in_scale", "in_zp"],
            &["q_in"],
            &[],
        ),
    );
    let mut cur = "q_in".to_string();
    let mut cur_q = acts[0];
    let mut act_i = 1;
    for (i, ((l, w), s)) in spec
        .layers
        .iter()
        .zip(weights)
        .zip(spec.shapes())
        .enumerate()
    {
        let out = format!("q{i}");
        match (l, w) {
            (LayerSpec::Conv { .. }, LayerWeights::Conv { w, b })
            | (LayerSpec::Dense { .. }, LayerWeights::Dense { w, b }) => {
                let (oc, dims, relu) = match *l {
                    LayerSpec::Conv { out, k, relu, .. } => (out, vec![out, c_in, k, k], relu),
                    LayerSpec::Dense { out, relu } => (out, vec![out, c_in], relu),
                    _ => unreachable!(),
                };
                let wq = WeightQuant::per_channel(w, oc);
                let bias_scales: Vec<f32> = wq.scales.iter().map(|s| s * cur_q.scale).collect();
                let bq: Vec<i32> = b
                    .iter()
                    .zip(&bias_scales)
                    .map(|(b, s)| (b / s).round().clamp(i32::MIN as f32, i32::MAX as f32) as i32)
                    .collect();
                let y = acts[act_i];
                act_i += 1;
                // Inputs dequantized.
                g.msg(5, &scalar_f32(&format!("s_x{i}"), cur_q.scale));
                g.msg(5, &scalar_i8(&format!("z_x{i}"), cur_q.zero_point));
                g.msg(
                    1,
                    &node(
                        "DequantizeLinear",
                        &format!("dq_x{i}"),
                        &[&cur, &format!("s_x{i}"), &format!("z_x{i}")],
                        &[&format!("x{i}")],
                        &[],
                    ),
                );
                // Weights: int8 per channel, axis 0.
                g.msg(
                    5,
                    &tensor(
                        &format!("w{i}_q"),
                        dtype::INT8,
                        &dims,
                        &wq.values.iter().map(|&v| v as u8).collect::<Vec<_>>(),
                    ),
                );
                g.msg(5, &tensor_f32(&format!("w{i}_scale"), &[oc], &wq.scales));
                g.msg(
                    5,
                    &tensor(&format!("w{i}_zp"), dtype::INT8, &[oc], &vec![0u8; oc]),
                );
                g.msg(
                    1,
                    &node(
                        "DequantizeLinear",
                        &format!("dq_w{i}"),
                        &[
                            &format!("w{i}_q"),
                            &format!("w{i}_scale"),
                            &format!("w{i}_zp"),
                        ],
                        &[&format!("w{i}")],
                        &[("axis", Attr::Int(0))],
                    ),
                );
                // Bias: int32, scale = s_x · s_w[c].
                g.msg(
                    5,
                    &tensor(
                        &format!("b{i}_q"),
                        dtype::INT32,
                        &[oc],
                        &bq.iter().flat_map(|v| v.to_le_bytes()).collect::<Vec<_>>(),
                    ),
                );
                g.msg(5, &tensor_f32(&format!("b{i}_scale"), &[oc], &bias_scales));
                g.msg(
                    5,
                    &tensor(&format!("b{i}_zp"), dtype::INT32, &[oc], &vec![0u8; 4 * oc]),
                );
                g.msg(
                    1,
                    &node(
                        "DequantizeLinear",
                        &format!("dq_b{i}"),
                        &[
                            &format!("b{i}_q"),
                            &format!("b{i}_scale"),
                            &format!("b{i}_zp"),
                        ],
                        &[&format!("b{i}")],
                        &[("axis", Attr::Int(0))],
                    ),
                );
                let pre = format!("f{i}");
                let ins = [format!("x{i}"), format!("w{i}"), format!("b{i}")];
                let ins: Vec<&str> = ins.iter().map(|s| s.as_str()).collect();
                g.msg(1, &layer_node(l, i, &ins, &pre));
                let act = if relu {
                    g.msg(
                        1,
                        &node(
                            "Relu",
                            &format!("relu{i}"),
                            &[&pre],
                            &[&format!("r{i}")],
                            &[],
                        ),
                    );
                    format!("r{i}")
                } else {
                    pre
                };
                g.msg(5, &scalar_f32(&format!("s_y{i}"), y.scale));
                g.msg(5, &scalar_i8(&format!("z_y{i}"), y.zero_point));
                g.msg(
                    1,
                    &node(
                        "QuantizeLinear",
                        &format!("q_y{i}"),
                        &[&act, &format!("s_y{i}"), &format!("z_y{i}")],
                        &[&out],
                        &[],
                    ),
                );
                cur_q = y;
            }
            (LayerSpec::MaxPool2 | LayerSpec::Flatten, _) => {
                g.msg(1, &layer_node(l, i, &[&cur], &out));
            }
            _ => panic!("weights do not match the architecture at layer {i}"),
        }
        cur = out;
        c_in = s.0;
    }
    g.msg(5, &scalar_f32("out_scale", cur_q.scale));
    g.msg(5, &scalar_i8("out_zp", cur_q.zero_point));
    g.msg(
        1,
        &node(
            "DequantizeLinear",
            "dq_output",
            &[&cur, "out_scale", "out_zp"],
            &[OUTPUT],
            &[],
        ),
    );
    g.msg(11, &value_info(INPUT, dtype::FLOAT, &input_dims(spec)));
    g.msg(
        12,
        &value_info(OUTPUT, dtype::FLOAT, &[1, out_features(spec)]),
    );
    pb::model(&g, OPSET)
}

//! Post-training quantization of any float ONNX classifier (`sprig quantize`): the graph is
//! calibrated on sprig-runtime (every activation made a graph output of a probe copy, min/max
//! over the calibration images), then rewritten to standard QDQ — int8 per-channel weights
//! behind DequantizeLinear (axis 0), int32 biases, and a QuantizeLinear/DequantizeLinear pair on
//! the input and on every activation (after the ReLU that follows a Conv/Gemm, never between
//! them, so sprig-runtime, onnxruntime and TensorRT fuse them). MaxPool, Flatten, Reshape,
//! Transpose, Pad, Resize and the other data-movement ops keep their input's parameters, so they
//! run directly on int8; element-wise activations (HardSwish, Sigmoid, …) get their own, so
//! sprig-runtime runs them as int8 lookup tables. Everything the rewrite does not touch is
//! copied byte for byte.

use crate::pb::{self, dtype, tensor, tensor_f32, Msg};
use crate::quantize::{ActQuant, WeightQuant};
use sprig_models::datasets::ImageSet;
use sprig_runtime::onnx::{Node, TensorView};
use sprig_runtime::{DType, Interpreter, Model};
use std::collections::{HashMap, HashSet};

/// Ops whose float output is worth quantizing.
const COMPUTE: &[&str] = &[
    "Conv",
    "Gemm",
    "MatMul",
    "Relu",
    "Clip",
    "Add",
    "AveragePool",
    "GlobalAveragePool",
    "Concat",
    "LeakyRelu",
    "Sigmoid",
    "Tanh",
    "BatchNormalization",
    "Mul",
    "Sub",
    "Div",
    "PRelu",
    "HardSigmoid",
    "HardSwish",
    "Elu",
    "Selu",
    "Celu",
    "Softplus",
    "Softsign",
    "Exp",
    "Log",
    "Erf",
    "Sqrt",
    "ReduceMean",
];
/// Ops that commute with quantization: their output keeps the input's parameters.
const PASSTHROUGH: &[&str] = &[
    "MaxPool",
    "Flatten",
    "Reshape",
    "Squeeze",
    "Unsqueeze",
    "Identity",
    "Transpose",
    "Slice",
    "Gather",
    // Reflect, edge and wrap modes only (a constant Pad is quantized like a compute op).
    "Pad",
    "Tile",
    "Expand",
    "DepthToSpace",
    "SpaceToDepth",
    // Nearest copies input values; linear interpolates between them, so stays in their range.
    "Resize",
    "Upsample",
];

/// What the rewrite did.
#[derive(Debug, Clone, serde::Serialize)]
pub struct PtqSummary {
    /// Weight tensors now int8.
    pub weights_quantized: usize,
    /// Activations with a Quantize/Dequantize pair (the input included).
    pub activations_quantized: usize,
    /// Calibration images used.
    pub calibration_images: usize,
}

fn invalid(m: String) -> crate::Error {
    crate::Error::Invalid(m)
}

/// One protobuf field: its number, its payload, and its complete encoding (key included).
type Field<'a> = (u32, &'a [u8], &'a [u8]);

/// The fields of a protobuf message, in order.
fn fields(mut b: &[u8]) -> crate::Result<Vec<Field<'_>>> {
    fn varint(b: &[u8], at: &mut usize) -> crate::Result<u64> {
        let mut v = 0u64;
        for shift in (0..64).step_by(7) {
            let byte = *b
                .get(*at)
                .ok_or_else(|| invalid("truncated protobuf".into()))?;
            *at += 1;
            v |= ((byte & 0x7f) as u64) << shift;
            if byte & 0x80 == 0 {
                return Ok(v);
            }
        }
        Err(invalid("bad protobuf varint".into()))
    }
    let mut out = Vec::new();
    while !b.is_empty() {
        let mut at = 0;
        let key = varint(b, &mut at)?;
        let payload_start;
        match key & 7 {
            0 => {
                payload_start = at;
                varint(b, &mut at)?;
            }
            1 => {
                payload_start = at;
                at += 8;
            }
            2 => {
                let n = varint(b, &mut at)? as usize;
                payload_start = at;
                at += n;
            }
            5 => {
                payload_start = at;
                at += 4;
            }
            w => return Err(invalid(format!("protobuf wire type {w} not supported"))),
        }
        if at > b.len() {
            return Err(invalid("truncated protobuf".into()));
        }
        out.push(((key >> 3) as u32, &b[payload_start..at], &b[..at]));
        b = &b[at..];
    }
    Ok(out)
}

/// A `NodeProto` with inputs and outputs renamed through the maps; everything else copied.
fn rewrite_node(
    raw: &[u8],
    inputs: &HashMap<String, String>,
    outputs: &HashMap<String, String>,
) -> crate::Result<Msg> {
    let mut m = Msg::new();
    for (num, payload, whole) in fields(raw)? {
        let name = std::str::from_utf8(payload).unwrap_or("");
        match num {
            1 => {
                m.str(1, inputs.get(name).map_or(name, |s| s.as_str()));
            }
            2 => {
                m.str(2, outputs.get(name).map_or(name, |s| s.as_str()));
            }
            _ => m.0.extend_from_slice(whole),
        }
    }
    Ok(m)
}

/// A graph output without a declared shape (the runtime infers it).
fn probe_output(name: &str) -> Msg {
    let mut tt = Msg::new();
    tt.int(1, dtype::FLOAT);
    let mut ty = Msg::new();
    ty.msg(1, &tt);
    let mut vi = Msg::new();
    vi.str(1, name).msg(2, &ty);
    vi
}

fn f32_values(t: &TensorView) -> crate::Result<Vec<f32>> {
    let mut v = vec![0f32; t.shape.numel()];
    t.for_each_f32(|i, x| v[i] = x)?;
    Ok(v)
}

/// Quantizes the float model `bytes`, calibrating on `calib` (images shaped like the model's
/// input). `symmetric` puts every activation zero point at 0 (TensorRT's convention).
pub fn quantize_onnx(
    bytes: &[u8],
    calib: &ImageSet,
    symmetric: bool,
) -> crate::Result<(Vec<u8>, PtqSummary)> {
    let model = Model::parse(bytes)?;
    let opset = model.opset();
    if opset < 13 {
        return Err(invalid(format!(
            "the model's opset is {opset}; per-channel QDQ needs 13 or later (re-export with opset ≥ 13)"
        )));
    }
    let inputs: Vec<_> = model.inputs().collect::<Result<_, _>>()?;
    let inits: HashSet<&str> = model
        .initializers()
        .map(|t| t.map(|t| t.name))
        .collect::<Result<_, _>>()?;
    let graph_inputs: Vec<_> = inputs.iter().filter(|i| !inits.contains(i.name)).collect();
    let [input] = graph_inputs.as_slice() else {
        return Err(invalid(format!(
            "quantize takes models with one input; this one has {}",
            graph_inputs.len()
        )));
    };
    if input.dtype != Some(DType::F32) {
        return Err(invalid(format!("input '{}' is not float32", input.name)));
    }
    let dims: Vec<usize> = input
        .shape
        .map(|s| s.dims().iter().map(|&d| d as usize).collect())
        .unwrap_or_default();
    let (c, h, w) = calib.chw;
    if dims.len() != 4 || dims[1..] != [c, h, w] {
        return Err(invalid(format!(
            "calibration images are {c}×{h}×{w} but the model input '{}' is {:?}",
            input.name, dims
        )));
    }
    let nodes: Vec<Node> = model.nodes().collect::<Result<_, _>>()?;
    let raws: Vec<&[u8]> = model.node_slices().collect::<Result<_, _>>()?;
    let outputs: Vec<&str> = model
        .outputs()
        .map(|o| o.map(|o| o.name))
        .collect::<Result<_, _>>()?;
    let mut consumers: HashMap<&str, Vec<usize>> = HashMap::new();
    for (i, n) in nodes.iter().enumerate() {
        for inp in n.inputs.iter().filter(|s| !s.is_empty()) {
            consumers.entry(inp).or_default().push(i);
        }
    }
    // Which outputs get a Q/DQ pair: compute ops (unless a lone Relu/Clip consumes them — the
    // pair goes after it) and passthrough ops whose input is quantized.
    let mut observed: Vec<&str> = vec![input.name];
    let mut passthrough_of: HashMap<&str, &str> = HashMap::new();
    let mut quantized: HashSet<&str> = HashSet::from([input.name]);
    // Float tensors: only those carry activations. Exporters' shape arithmetic (Shape → Gather
    // → Concat → Reshape, Mul/Div on sizes) runs on int64 and is left as it is.
    let mut float: HashSet<&str> = HashSet::from([input.name]);
    for t in model.initializers() {
        let t = t?;
        if t.dtype == DType::F32 {
            float.insert(t.name);
        }
    }
    for n in &nodes {
        let is_float = |i: usize| n.input(i).is_some_and(|x| float.contains(x));
        let value_is_float = || -> crate::Result<bool> {
            Ok(match n.attr("value")?.and_then(|a| a.tensor()) {
                Some(t) => t?.dtype == DType::F32,
                None => n.op_type == "ConstantOfShape", // its default value is float 0
            })
        };
        let out_float = match n.op_type {
            "Shape" | "Size" | "ArgMax" | "ArgMin" | "Equal" | "Less" | "Greater"
            | "LessOrEqual" | "GreaterOrEqual" | "Not" | "And" | "Or" | "Xor" | "NonZero" => false,
            "Cast" => n.attr_i("to", 0)? == 1,
            "Constant" | "ConstantOfShape" => value_is_float()?,
            "Where" => is_float(1),
            "Concat" => (0..n.inputs.len()).all(is_float),
            _ => is_float(0),
        };
        if out_float {
            float.extend(n.outputs.iter().filter(|o| !o.is_empty()));
        }
    }
    for n in &nodes {
        let Some(&out) = n.outputs.first() else {
            continue;
        };
        if n.outputs.len() != 1 || !n.domain.is_empty() || !float.contains(out) {
            continue;
        }
        // A constant Pad writes zeros, which in int8 would be code 0, not the zero point: it
        // gets its own parameters (a float Pad between DQ and Q); the other modes copy values.
        let constant_pad =
            n.op_type == "Pad" && n.attr_s("mode")?.unwrap_or(b"constant") == b"constant";
        if COMPUTE.contains(&n.op_type) || constant_pad {
            let cons = consumers.get(out).map(|v| v.as_slice()).unwrap_or(&[]);
            let fused = !outputs.contains(&out)
                && matches!(n.op_type, "Conv" | "Gemm" | "MatMul" | "Add")
                && cons.len() == 1
                && matches!(nodes[cons[0]].op_type, "Relu" | "Clip");
            if !fused {
                observed.push(out);
                quantized.insert(out);
            }
        } else if PASSTHROUGH.contains(&n.op_type) && quantized.contains(n.inputs[0]) {
            passthrough_of.insert(out, n.inputs[0]);
            quantized.insert(out);
        }
    }
    // Calibration on a probe copy whose outputs are every observed activation.
    let mut g = Msg::new();
    g.str(2, "probe");
    for r in &raws {
        g.0.extend_from_slice(&field_bytes(1, r));
    }
    for r in model.initializer_slices() {
        g.0.extend_from_slice(&field_bytes(5, r?));
    }
    for r in model.value_info_slices(false) {
        g.0.extend_from_slice(&field_bytes(11, r?));
    }
    // The input's range comes from the images themselves (a graph input cannot be an output).
    for o in &observed[1..] {
        g.msg(12, &probe_output(o));
    }
    let probe = pb::model(&g, opset);
    let pm = Model::parse(&probe)?;
    let mut arena = vec![0u8; pm.arena_bytes()?];
    let mut it = Interpreter::new(&pm, &mut arena)?;
    let mut ranges = vec![(f32::MAX, f32::MIN); observed.len()];
    ranges[0] = calib
        .images
        .iter()
        .fold((f32::MAX, f32::MIN), |(a, b), &x| (a.min(x), b.max(x)));
    for i in 0..calib.len() {
        it.set_input_f32(0, calib.image(i))?;
        it.invoke()?;
        for (k, r) in ranges.iter_mut().enumerate().skip(1) {
            let out = it.output(k - 1)?;
            let v = out
                .as_f32()
                .ok_or_else(|| invalid(format!("activation '{}' is not float32", observed[k])))?;
            for &x in v {
                *r = (r.0.min(x), r.1.max(x));
            }
        }
    }
    let mut params: HashMap<&str, ActQuant> = HashMap::new();
    for (o, &(lo, hi)) in observed.iter().zip(&ranges) {
        params.insert(
            o,
            if symmetric {
                ActQuant::symmetric(lo, hi)
            } else {
                ActQuant::from_range(lo, hi)
            },
        );
    }
    for n in &nodes {
        if let Some(src) = n.outputs.first().and_then(|o| passthrough_of.get(o)) {
            if let Some(&q) = params.get(src) {
                params.insert(n.outputs[0], q);
            }
        }
    }
    // The rewrite.
    let mut g = Msg::new();
    g.str(2, "sprig-ptq-int8");
    let mut new_inits = Msg::new();
    let qdq = |g: &mut Msg, inits: &mut Msg, float: &str, out: &str, q: ActQuant| {
        let (s, z, mid) = (
            format!("{out}_scale"),
            format!("{out}_zp"),
            format!("{out}_q"),
        );
        inits.msg(5, &tensor_f32(&s, &[], &[q.scale]));
        inits.msg(5, &tensor(&z, dtype::INT8, &[], &[q.zero_point as u8]));
        g.msg(
            1,
            &pb::node(
                "QuantizeLinear",
                &format!("{out}_quant"),
                &[float, &s, &z],
                &[&mid],
                &[],
            ),
        );
        g.msg(
            1,
            &pb::node(
                "DequantizeLinear",
                &format!("{out}_dequant"),
                &[&mid, &s, &z],
                &[out],
                &[],
            ),
        );
    };
    let input_dq = format!("{}_dq", input.name);
    qdq(
        &mut g,
        &mut new_inits,
        input.name,
        &input_dq,
        params[input.name],
    );
    let rename_inputs: HashMap<String, String> =
        HashMap::from([(input.name.to_string(), input_dq.clone())]);
    let mut replaced_inits: HashSet<String> = HashSet::new();
    let mut weights_quantized = 0;
    for (n, raw) in nodes.iter().zip(&raws) {
        // Weights and bias of Conv/Gemm/MatMul: int8 / int32 behind DequantizeLinear, under
        // the float initializer's own name so the node itself is unchanged.
        if matches!(n.op_type, "Conv" | "Gemm" | "MatMul") {
            let x_q = n.input(0).and_then(|x| params.get(x).copied());
            let wname = n.input(1).unwrap_or("");
            let wt = model.initializer(wname)?;
            let per_channel = match n.op_type {
                "Conv" => true,
                "Gemm" => n.attr_i("transB", 0)? == 1,
                _ => false,
            };
            if let (Some(xq), Some(wt)) = (x_q, wt.filter(|t| t.dtype == DType::F32)) {
                let wv = f32_values(&wt)?;
                let wdims: Vec<usize> = wt.shape.dims().iter().map(|&d| d as usize).collect();
                let oc = if per_channel { wdims[0] } else { 1 };
                let wq = WeightQuant::per_channel(&wv, oc);
                let (q, s, z) = (
                    format!("{wname}_int8"),
                    format!("{wname}_scale"),
                    format!("{wname}_zp"),
                );
                let vals: Vec<u8> = wq.values.iter().map(|&v| v as u8).collect();
                new_inits.msg(5, &tensor(&q, dtype::INT8, &wdims, &vals));
                let sdims: &[usize] = if per_channel { &[oc] } else { &[] };
                new_inits.msg(5, &tensor_f32(&s, sdims, &wq.scales));
                new_inits.msg(5, &tensor(&z, dtype::INT8, sdims, &vec![0u8; oc]));
                let axis = [("axis", pb::Attr::Int(0))];
                let attrs: &[(&str, pb::Attr)] = if per_channel { &axis } else { &[] };
                g.msg(
                    1,
                    &pb::node(
                        "DequantizeLinear",
                        &format!("{wname}_dequant"),
                        &[&q, &s, &z],
                        &[wname],
                        attrs,
                    ),
                );
                replaced_inits.insert(wname.to_string());
                weights_quantized += 1;
                if let Some(bname) = n.input(2).filter(|b| !b.is_empty()) {
                    if let Some(bt) = model.initializer(bname)?.filter(|t| t.dtype == DType::F32) {
                        let bv = f32_values(&bt)?;
                        let scales: Vec<f32> = (0..bv.len())
                            .map(|c| xq.scale * wq.scales[if per_channel { c } else { 0 }])
                            .collect();
                        let bq: Vec<u8> = bv
                            .iter()
                            .zip(&scales)
                            .flat_map(|(b, s)| {
                                ((b / s).round().clamp(i32::MIN as f32, i32::MAX as f32) as i32)
                                    .to_le_bytes()
                            })
                            .collect();
                        let (q, s, z) = (
                            format!("{bname}_int32"),
                            format!("{bname}_scale"),
                            format!("{bname}_zp"),
                        );
                        new_inits.msg(5, &tensor(&q, dtype::INT32, &[bv.len()], &bq));
                        new_inits.msg(5, &tensor_f32(&s, &[bv.len()], &scales));
                        new_inits.msg(
                            5,
                            &tensor(&z, dtype::INT32, &[bv.len()], &vec![0u8; 4 * bv.len()]),
                        );
                        g.msg(
                            1,
                            &pb::node(
                                "DequantizeLinear",
                                &format!("{bname}_dequant"),
                                &[&q, &s, &z],
                                &[bname],
                                &[("axis", pb::Attr::Int(0))],
                            ),
                        );
                        replaced_inits.insert(bname.to_string());
                    }
                }
            }
        }
        let out = n.outputs.first().copied().unwrap_or("");
        let mut ins = rename_inputs.clone();
        let mut rename_out = HashMap::new();
        let int8_name = |x: &str| {
            if x == input.name {
                format!("{input_dq}_q")
            } else {
                format!("{x}_q")
            }
        };
        match (passthrough_of.get(out), params.get(out).copied()) {
            (Some(src), Some(q)) => {
                // Runs on the int8 tensor itself; its output is dequantized for float readers.
                ins.insert(src.to_string(), int8_name(src));
                rename_out.insert(out.to_string(), int8_name(out));
                g.msg(1, &rewrite_node(raw, &ins, &rename_out)?);
                let (s, z) = (format!("{out}_scale"), format!("{out}_zp"));
                new_inits.msg(5, &tensor_f32(&s, &[], &[q.scale]));
                new_inits.msg(5, &tensor(&z, dtype::INT8, &[], &[q.zero_point as u8]));
                let node = pb::node(
                    "DequantizeLinear",
                    &format!("{out}_dequant"),
                    &[&int8_name(out), &s, &z],
                    &[out],
                    &[],
                );
                g.msg(1, &node);
            }
            (None, Some(q)) if n.outputs.len() == 1 => {
                let float = format!("{out}_float");
                rename_out.insert(out.to_string(), float.clone());
                g.msg(1, &rewrite_node(raw, &ins, &rename_out)?);
                qdq(&mut g, &mut new_inits, &float, out, q);
            }
            _ => {
                g.msg(1, &rewrite_node(raw, &ins, &rename_out)?);
            }
        }
    }
    for r in model.initializer_slices() {
        let r = r?;
        let t = TensorView::parse(r)?;
        if !replaced_inits.contains(t.name) {
            g.0.extend_from_slice(&field_bytes(5, r));
        }
    }
    g.0.extend_from_slice(&new_inits.0);
    for r in model.value_info_slices(false) {
        g.0.extend_from_slice(&field_bytes(11, r?));
    }
    for r in model.value_info_slices(true) {
        g.0.extend_from_slice(&field_bytes(12, r?));
    }
    let summary = PtqSummary {
        weights_quantized,
        activations_quantized: observed.len(),
        calibration_images: calib.len(),
    };
    Ok((pb::model(&g, opset), summary))
}

/// `bytes` wrapped as length-delimited field `num`.
fn field_bytes(num: u32, bytes: &[u8]) -> Vec<u8> {
    let mut m = Msg::new();
    m.bytes(num, bytes);
    m.0
}

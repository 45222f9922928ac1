//! ONNX export of a trained [`ArchSpec`] (batch norm folded): float32, and int8 QDQ following
//! DESIGN §3 — int8 symmetric per-output-channel weights with DequantizeLinear on axis 0, int32
//! bias, activations wrapped in QuantizeLinear/DequantizeLinear pairs, both inputs of a residual
//! Add or a DenseNet Concat dequantized and its output quantized (the layout TensorRT expects). MaxPool and Flatten
//! run directly on the int8 tensor (ONNX allows int8 for both, and they commute with
//! quantization), so no extra Q/DQ is placed around them. One emitter writes both variants:
//! in float mode its quantize/dequantize steps are the identity. The float16 variant is the
//! float graph with half-precision weights, a Cast after the input and one before the output
//! (the file's inputs and outputs stay float32, as onnxconverter's `keep_io_types` does).

use crate::pb::{self, dtype, node, tensor, tensor_f16, tensor_f32, value_info, Attr, Msg};
use crate::quantize::{ActQuant, WeightQuant};
use sprig_models::arch::{ArchSpec, ConvWeights, LayerSpec, LayerWeights};

/// Opset of every exported file (QDQ with per-axis scales needs 13).
pub const OPSET: i64 = 13;

/// Name of the graph input and output.
pub const INPUT: &str = "input";
/// See [`INPUT`].
pub const OUTPUT: &str = "logits";

/// A tensor flowing through the graph: its name and, in the int8 graph, its quantization.
#[derive(Clone)]
struct Flow {
    name: String,
    q: Option<ActQuant>,
}

/// Writes the graph layer by layer.
struct Emitter<'a> {
    g: Msg,
    /// Activation quantization in [`ArchSpec::quant_points`] order; `None` = float export.
    acts: Option<&'a [ActQuant]>,
    /// Float weights in half precision (the float16 export).
    half: bool,
    next_act: usize,
    names: usize,
}

impl Emitter<'_> {
    fn fresh(&mut self, stem: &str) -> String {
        self.names += 1;
        format!("{stem}_{}", self.names)
    }

    fn init(&mut self, t: Msg) {
        self.g.msg(5, &t);
    }

    fn node(&mut self, op: &str, ins: &[&str], outs: &[&str], attrs: &[(&str, Attr)]) {
        let name = self.fresh(&op.to_lowercase());
        self.g.msg(1, &node(op, &name, ins, outs, attrs));
    }

    fn scale_zp(&mut self, q: ActQuant) -> (String, String) {
        let (s, z) = (self.fresh("scale"), self.fresh("zp"));
        self.init(tensor_f32(&s, &[], &[q.scale]));
        self.init(tensor(&z, dtype::INT8, &[], &[q.zero_point as u8]));
        (s, z)
    }

    /// The float view of `x` (a DequantizeLinear in the int8 graph).
    fn dequant(&mut self, x: &Flow) -> String {
        match x.q {
            None => x.name.clone(),
            Some(q) => {
                let (s, z) = self.scale_zp(q);
                let out = self.fresh("x");
                self.node("DequantizeLinear", &[&x.name, &s, &z], &[&out], &[]);
                out
            }
        }
    }

    /// Ends a float computation at the next quantization point (a QuantizeLinear in the int8
    /// graph).
    fn quant(&mut self, float: &str) -> Flow {
        let Some(acts) = self.acts else {
            return Flow {
                name: float.into(),
                q: None,
            };
        };
        let q = acts[self.next_act];
        self.next_act += 1;
        let (s, z) = self.scale_zp(q);
        let out = self.fresh("q");
        self.node("QuantizeLinear", &[float, &s, &z], &[&out], &[]);
        Flow {
            name: out,
            q: Some(q),
        }
    }

    /// Conv or Gemm with weights `w` (shape `dims`) and bias `b`, optional ReLU, ending at a
    /// quantization point. `out` names the float result (the graph output for the last layer).
    #[allow(clippy::too_many_arguments)]
    fn weighted(
        &mut self,
        x: &Flow,
        op: &str,
        attrs: &[(&str, Attr)],
        w: &[f32],
        dims: &[usize],
        b: &[f32],
        relu: bool,
        out: Option<&str>,
    ) -> Flow {
        let oc = dims[0];
        let xf = self.dequant(x);
        let (wn, bn) = (self.fresh("w"), self.fresh("b"));
        // tract cannot type a float16 Gemm (its expansion yields float32): the half-precision
        // dense layer is MatMul with the transposed weights, then Add.
        let half_dense = self.half && op == "Gemm";
        match x.q {
            None if half_dense => {
                let (o, i) = (dims[0], dims[1]);
                let wt: Vec<f32> = (0..i * o).map(|k| w[(k % o) * i + k / o]).collect();
                self.init(tensor_f16(&wn, &[i, o], &wt));
                self.init(tensor_f16(&bn, &[oc], b));
            }
            None if self.half => {
                self.init(tensor_f16(&wn, dims, w));
                self.init(tensor_f16(&bn, &[oc], b));
            }
            None => {
                self.init(tensor_f32(&wn, dims, w));
                self.init(tensor_f32(&bn, &[oc], b));
            }
            Some(xq) => {
                let wq = WeightQuant::per_channel(w, oc);
                let bias_scales: Vec<f32> = wq.scales.iter().map(|s| s * xq.scale).collect();
                let bq: Vec<u8> = b
                    .iter()
                    .zip(&bias_scales)
                    .flat_map(|(b, s)| {
                        ((b / s).round().clamp(i32::MIN as f32, i32::MAX as f32) as i32)
                            .to_le_bytes()
                    })
                    .collect();
                let values: Vec<u8> = wq.values.iter().map(|&v| v as u8).collect();
                let (wq_n, ws, wz) = (self.fresh("wq"), self.fresh("ws"), self.fresh("wz"));
                self.init(tensor(&wq_n, dtype::INT8, dims, &values));
                self.init(tensor_f32(&ws, &[oc], &wq.scales));
                self.init(tensor(&wz, dtype::INT8, &[oc], &vec![0u8; oc]));
                self.node(
                    "DequantizeLinear",
                    &[&wq_n, &ws, &wz],
                    &[&wn],
                    &[("axis", Attr::Int(0))],
                );
                let (bq_n, bs, bz) = (self.fresh("bq"), self.fresh("bs"), self.fresh("bz"));
                self.init(tensor(&bq_n, dtype::INT32, &[oc], &bq));
                self.init(tensor_f32(&bs, &[oc], &bias_scales));
                self.init(tensor(&bz, dtype::INT32, &[oc], &vec![0u8; 4 * oc]));
                self.node(
                    "DequantizeLinear",
                    &[&bq_n, &bs, &bz],
                    &[&bn],
                    &[("axis", Attr::Int(0))],
                );
            }
        }
        let float_out = match (out, relu, x.q) {
            (Some(o), false, None) => o.to_string(),
            _ => self.fresh("f"),
        };
        if half_dense {
            let prod = self.fresh("mm");
            self.node("MatMul", &[&xf, &wn], &[&prod], &[]);
            self.node("Add", &[&prod, &bn], &[&float_out], &[]);
        } else {
            self.node(op, &[&xf, &wn, &bn], &[&float_out], attrs);
        }
        let act = if relu {
            let r = match (out, x.q) {
                (Some(o), None) => o.to_string(),
                _ => self.fresh("r"),
            };
            self.node("Relu", &[&float_out], &[&r], &[]);
            r
        } else {
            float_out
        };
        self.quant(&act)
    }

    /// A `k`×`k` convolution with padding `pad` and stride `stride`.
    fn conv(
        &mut self,
        x: &Flow,
        cw: &ConvWeights,
        c_in: usize,
        (k, pad, stride): (usize, usize, usize),
        relu: bool,
    ) -> Flow {
        self.grouped_conv(x, cw, c_in, (k, pad, stride, 1), relu)
    }

    /// A convolution in `groups` groups (`groups` = `c_in`: depthwise).
    fn grouped_conv(
        &mut self,
        x: &Flow,
        cw: &ConvWeights,
        c_in: usize,
        (k, pad, stride, groups): (usize, usize, usize, usize),
        relu: bool,
    ) -> Flow {
        let oc = cw.b.len();
        let (k, p, s) = (k as i64, pad as i64, stride as i64);
        let (ks, pads, strides) = ([k, k], [p, p, p, p], [s, s]);
        let mut attrs = vec![
            ("kernel_shape", Attr::Ints(&ks)),
            ("pads", Attr::Ints(&pads)),
            ("strides", Attr::Ints(&strides)),
        ];
        if groups != 1 {
            attrs.push(("group", Attr::Int(groups as i64)));
        }
        self.weighted(
            x,
            "Conv",
            &attrs,
            &cw.w,
            &[oc, c_in / groups, k as usize, k as usize],
            &cw.b,
            relu,
            None,
        )
    }

    /// `relu(a + b)` (or `a + b`) with both inputs dequantized (int8 residual Add).
    fn add(&mut self, a: &Flow, b: &Flow, relu: bool) -> Flow {
        let (af, bf) = (self.dequant(a), self.dequant(b));
        let sum = self.fresh("sum");
        self.node("Add", &[&af, &bf], &[&sum], &[]);
        if !relu {
            return self.quant(&sum);
        }
        let r = self.fresh("r");
        self.node("Relu", &[&sum], &[&r], &[]);
        self.quant(&r)
    }

    /// `x` and `new` concatenated along the channels (a DenseNet layer), both inputs
    /// dequantized and the result quantized at its own point.
    fn concat(&mut self, x: &Flow, new: &Flow) -> Flow {
        let (xf, nf) = (self.dequant(x), self.dequant(new));
        let cat = self.fresh("cat");
        self.node("Concat", &[&xf, &nf], &[&cat], &[("axis", Attr::Int(1))]);
        self.quant(&cat)
    }

    /// An op that commutes with quantization, applied to the int8 tensor directly.
    fn passthrough(&mut self, x: &Flow, op: &str, attrs: &[(&str, Attr)]) -> Flow {
        let out = self.fresh(&op.to_lowercase());
        self.node(op, &[&x.name], &[&out], attrs);
        Flow { name: out, q: x.q }
    }
}

fn input_dims(spec: &ArchSpec) -> [usize; 4] {
    [1, spec.input.0, spec.input.1, spec.input.2]
}

fn out_features(spec: &ArchSpec) -> usize {
    spec.shapes().last().map(|s| s.0).unwrap_or(0)
}

fn emit(
    spec: &ArchSpec,
    weights: &[LayerWeights],
    acts: Option<&[ActQuant]>,
    half: bool,
) -> Vec<u8> {
    let mut e = Emitter {
        g: Msg::new(),
        acts,
        half,
        next_act: 0,
        names: 0,
    };
    let suffix = match (acts.is_some(), half) {
        (true, _) => "-int8",
        (false, true) => "-f16",
        (false, false) => "",
    };
    e.g.str(2, &format!("{}{suffix}", spec.name));
    let mut x = e.quant(INPUT);
    if half {
        let h = e.fresh("input_f16");
        e.node(
            "Cast",
            &[INPUT],
            &[&h],
            &[("to", Attr::Int(dtype::FLOAT16))],
        );
        x.name = h;
    }
    let mut c_in = spec.input.0;
    let n_layers = spec.layers.len();
    for (i, ((l, w), s)) in spec
        .layers
        .iter()
        .zip(weights)
        .zip(spec.shapes())
        .enumerate()
    {
        // The last layer writes the graph output directly, unless a Cast still follows.
        let last = (i + 1 == n_layers && !half).then_some(OUTPUT);
        x = match (l, w) {
            (
                &LayerSpec::Conv {
                    k,
                    pad,
                    stride,
                    relu,
                    ..
                },
                LayerWeights::Conv { w, b },
            ) => {
                let cw = ConvWeights {
                    w: w.clone(),
                    b: b.clone(),
                };
                e.conv(&x, &cw, c_in, (k, pad, stride), relu)
            }
            (&LayerSpec::Residual { stride, .. }, LayerWeights::Residual { c1, c2, shortcut }) => {
                let out = c1.b.len();
                let a1 = e.conv(&x, c1, c_in, (3, 1, stride), true);
                let z2 = e.conv(&a1, c2, out, (3, 1, 1), false);
                let sc = match shortcut {
                    Some(sw) => e.conv(&x, sw, c_in, (1, 0, stride), false),
                    None => x.clone(),
                };
                e.add(&z2, &sc, true)
            }
            (LayerSpec::DenseLayer { .. }, LayerWeights::DenseLayer { c1, c2 }) => {
                let a1 = e.conv(&x, c1, c_in, (1, 0, 1), true);
                let a2 = e.conv(&a1, c2, c1.b.len(), (3, 1, 1), true);
                e.concat(&x, &a2)
            }
            (
                &LayerSpec::InvertedResidual { stride, .. },
                LayerWeights::InvertedResidual {
                    expand,
                    dw,
                    project,
                },
            ) => {
                let mut a = x.clone();
                if let Some(ew) = expand {
                    a = e.conv(&a, ew, c_in, (1, 0, 1), true);
                }
                let hid = dw.b.len();
                let a = e.grouped_conv(&a, dw, hid, (3, 1, stride, hid), true);
                let z = e.conv(&a, project, hid, (1, 0, 1), false);
                if stride == 1 && c_in == s.0 {
                    e.add(&z, &x, false)
                } else {
                    z
                }
            }
            (&LayerSpec::Dense { out, relu }, LayerWeights::Dense { w, b }) => e.weighted(
                &x,
                "Gemm",
                &[("transB", Attr::Int(1))],
                w,
                &[out, c_in],
                b,
                relu,
                last,
            ),
            (LayerSpec::MaxPool2, _) => e.passthrough(
                &x,
                "MaxPool",
                &[
                    ("kernel_shape", Attr::Ints(&[2, 2])),
                    ("strides", Attr::Ints(&[2, 2])),
                ],
            ),
            (LayerSpec::AvgPool2, _) => {
                let xf = e.dequant(&x);
                let p = e.fresh("avgpool");
                e.node(
                    "AveragePool",
                    &[&xf],
                    &[&p],
                    &[
                        ("kernel_shape", Attr::Ints(&[2, 2])),
                        ("strides", Attr::Ints(&[2, 2])),
                    ],
                );
                e.quant(&p)
            }
            (LayerSpec::Flatten, _) => e.passthrough(&x, "Flatten", &[("axis", Attr::Int(1))]),
            (LayerSpec::GlobalAvgPool, _) => {
                let xf = e.dequant(&x);
                let g = e.fresh("gap");
                e.node("GlobalAveragePool", &[&xf], &[&g], &[]);
                let q = e.quant(&g);
                e.passthrough(&q, "Flatten", &[("axis", Attr::Int(1))])
            }
            _ => panic!("weights do not match the architecture at layer {i}"),
        };
        c_in = s.0;
    }
    if acts.is_some() {
        let q = x.q.expect("int8 graph ends quantized");
        let (s, z) = e.scale_zp(q);
        e.node("DequantizeLinear", &[&x.name, &s, &z], &[OUTPUT], &[]);
    } else if half {
        e.node(
            "Cast",
            &[&x.name],
            &[OUTPUT],
            &[("to", Attr::Int(dtype::FLOAT))],
        );
    } else if x.name != OUTPUT {
        e.node("Identity", &[&x.name], &[OUTPUT], &[]);
    }
    e.g.msg(11, &value_info(INPUT, dtype::FLOAT, &input_dims(spec)));
    e.g.msg(
        12,
        &value_info(OUTPUT, dtype::FLOAT, &[1, out_features(spec)]),
    );
    pb::model(&e.g, OPSET)
}

/// Float32 ONNX of the trained model.
pub fn export_f32(spec: &ArchSpec, weights: &[LayerWeights]) -> Vec<u8> {
    emit(spec, weights, None, false)
}

/// Float16 ONNX of the trained model: half-precision weights and computation, float32 input
/// and output (half the float32 file; for GPUs and CPUs with half-precision arithmetic such as
/// Xavier's).
pub fn export_f16(spec: &ArchSpec, weights: &[LayerWeights]) -> Vec<u8> {
    emit(spec, weights, None, true)
}

/// Int8 QDQ ONNX; `acts` quantizes the activations in [`ArchSpec::quant_points`] order
/// (`acts[0]` the input).
pub fn export_int8(spec: &ArchSpec, weights: &[LayerWeights], acts: &[ActQuant]) -> Vec<u8> {
    assert_eq!(
        acts.len(),
        spec.quant_points().len(),
        "one activation quantization per quantization point"
    );
    emit(spec, weights, Some(acts), false)
}

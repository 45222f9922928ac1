"""Whole blocks of mobile architectures built from the ops beyond sprig's own exports (HardSwish,
squeeze-excite with ReduceMean and HardSigmoid, reflect Pad, PRelu, PixelShuffle as
DepthToSpace, LogSoftmax, Split, Resize, ConvTranspose, LayerNormalization, self-attention,
InstanceNormalization, GlobalMaxPool, comparisons and boolean masks, TopK, LRN, MVN, CumSum,
OneHot, GatherND, ScatterND, EyeLike, ReverseSequence, Einsum, GridSample, NLL and cross-entropy losses,
DFT, STFT, windows and MelWeightMatrix, ...), with onnxruntime's
outputs: the ops as exporters combine them, where ONNX's node tests check one node at a time.

  mobile_cases.py OUT_DIR
      writes, per case, CASE.onnx (weights as initializers, one float input X), CASE.x.f32 and
      CASE.y0.f32 (onnxruntime's output, one intra-op thread, graph optimizations off; for the
      blocks with transforms of lengths that are not powers of two, ONNX's reference
      evaluator's, which transforms in float64: onnxruntime computes those DFTs in float32
      and lands up to 3.7e-4 from it, a bound checked here (1e-3), where sprig stays within
      2.1e-6).
      Seeded: the same files every run.
"""
import pathlib
import sys

import numpy as np
import onnx
from onnx import TensorProto, helper, numpy_helper
from onnx.reference import ReferenceEvaluator
from ort_reference import session

rng = np.random.default_rng(11)
OUT = pathlib.Path(sys.argv[1])


class Graph:
    def __init__(self):
        self.nodes, self.inits, self.n = [], [], 0

    def w(self, shape, scale=0.4, name=None):
        """Random float weights of `shape`."""
        return self.c((rng.standard_normal(shape) * scale).astype("f4"), name)

    def c(self, values, name=None, dtype="f4"):
        """A constant initializer with these values (int64 for shapes, pads and axes)."""
        name = name or f"w{len(self.inits)}"
        self.inits.append(numpy_helper.from_array(np.array(values, dtype), name))
        return name

    def op(self, op, ins, **attrs):
        self.n += 1
        out = f"t{self.n}"
        self.nodes.append(helper.make_node(op, ins, [out], **attrs))
        return out


def save(name, g, x_shape, y, opset, expected="onnxruntime"):
    graph = helper.make_graph(
        g.nodes, name, [helper.make_tensor_value_info("X", TensorProto.FLOAT, x_shape)],
        [helper.make_tensor_value_info(y, TensorProto.FLOAT, None)], initializer=g.inits)
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", opset)])
    model.ir_version = 8
    model = onnx.shape_inference.infer_shapes(model)
    onnx.checker.check_model(model, full_check=True)
    x = rng.standard_normal(x_shape).astype("f4")
    sess = session(model)
    (out,) = sess.run(None, {"X": x})
    if expected == "reference":
        ref = ReferenceEvaluator(model).run(None, {"X": x})[0].astype("f4")
        off = np.max(np.abs(out - ref) / (1 + np.abs(ref)))
        assert off < 1e-3, f"{name}: onnxruntime {off:.2e} from the reference evaluator"
        out = ref
    onnx.save(model, OUT / f"{name}.onnx")
    x.tofile(OUT / f"{name}.x.f32")
    out.astype("<f4").tofile(OUT / f"{name}.y0.f32")


def mobilenet_v3_block(opset):
    """Reflect pad, conv + HardSwish, depthwise conv, squeeze-excite (ReduceMean, 1x1 convs,
    HardSigmoid, Mul), then ReduceMean as the global pool, Gemm and LogSoftmax."""
    g = Graph()
    if opset >= 18:
        # Opset 18 takes Pad's axes and ReduceMean's axes as inputs.
        t = g.op("Pad", ["X", g.c([1, 1, 1, 1], "pads", "i8"), "",
                         g.c([2, 3], "pad_axes", "i8")], mode="reflect")
    else:
        t = g.op("Pad", ["X", g.c([0, 0, 1, 1, 0, 0, 1, 1], "pads", "i8")], mode="reflect")
    t = g.op("Conv", [t, g.w([8, 3, 3, 3]), g.w([8], 0.1)], strides=[2, 2])
    t = g.op("HardSwish", [t])
    t = g.op("Conv", [t, g.w([8, 1, 3, 3]), g.w([8], 0.1)], group=8, pads=[1, 1, 1, 1])
    t = g.op("HardSwish", [t])
    if opset >= 18:
        axes = g.c([2, 3], "axes", "i8")
        se = g.op("ReduceMean", [t, axes], keepdims=1)
    else:
        se = g.op("ReduceMean", [t], axes=[2, 3], keepdims=1)
    se = g.op("Conv", [se, g.w([4, 8, 1, 1]), g.w([4], 0.1)])
    se = g.op("Relu", [se])
    se = g.op("Conv", [se, g.w([8, 4, 1, 1]), g.w([8], 0.1)])
    se = g.op("HardSigmoid", [se], alpha=1 / 6, beta=0.5)
    t = g.op("Mul", [t, se])
    if opset >= 18:
        t = g.op("ReduceMean", [t, axes], keepdims=0)
    else:
        t = g.op("ReduceMean", [t], axes=[2, 3], keepdims=0)
    t = g.op("Gemm", [t, g.w([10, 8]), g.w([10], 0.1)], transB=1)
    return g, g.op("LogSoftmax", [t], axis=-1)


def super_resolution_head():
    """Conv + PRelu (per-channel slopes), PixelShuffle (DepthToSpace, CRD as PyTorch exports
    it), Conv + Elu, SpaceToDepth back, Softplus and a clamp by Max/Min."""
    g = Graph()
    t = g.op("Conv", ["X", g.w([12, 2, 3, 3]), g.w([12], 0.1)], pads=[1, 1, 1, 1])
    t = g.op("PRelu", [t, g.w([12, 1, 1], 0.2)])
    t = g.op("DepthToSpace", [t], blocksize=2, mode="CRD")
    t = g.op("Conv", [t, g.w([4, 3, 3, 3]), g.w([4], 0.1)], pads=[1, 1, 1, 1])
    t = g.op("Elu", [t], alpha=0.7)
    t = g.op("SpaceToDepth", [t], blocksize=2)
    t = g.op("Softplus", [t])
    t = g.op("Max", [t, g.w([1], name="lo")])
    return g, g.op("Min", [t, g.w([16, 1, 1], 1.0)])


def elementwise_tail():
    """Element-wise functions on one tensor, then reductions over inner and outer axes."""
    g = Graph()
    t = g.op("Selu", ["X"])
    t = g.op("Softsign", [t])
    t = g.op("Erf", [t])
    u = g.op("Pow", [g.op("Abs", [t]), g.c([1.5], "p")])
    t = g.op("Add", [g.op("Sum", [t, u]), g.op("Mean", [t, u])])
    t = g.op("Tile", [t, g.c([1, 2, 1], "reps", "i8")])
    t = g.op("ReduceLogSumExp", [t], axes=[0, 2], keepdims=0)
    return g, g.op("Log", [g.op("Reciprocal", [g.op("Softplus", [t])])])


def detection_neck():
    """A YOLO-style neck: SiLU (x · Sigmoid(x)), Split into two branches, nearest upsampling by
    scales on one and bilinear (half-pixel) by sizes on the other, Concat, a strided conv,
    then an align-corners bilinear downsample."""
    g = Graph()
    t = g.op("Conv", ["X", g.w([8, 4, 3, 3]), g.w([8], 0.1)], pads=[1, 1, 1, 1])
    t = g.op("Mul", [t, g.op("Sigmoid", [t])])
    g.n += 1
    a, b = f"t{g.n}a", f"t{g.n}b"
    g.nodes.append(helper.make_node("Split", [t, g.c([3, 5], "parts", "i8")], [a, b], axis=1))
    a = g.op("Resize", [a, "", g.c([1, 1, 2, 2], "up")], mode="nearest")
    b = g.op("Resize", [b, "", "", g.c([1, 5, 8, 8], "size", "i8")], mode="linear")
    t = g.op("Concat", [a, b], axis=1)
    t = g.op("Conv", [t, g.w([6, 8, 3, 3]), g.w([6], 0.1)], pads=[1, 1, 1, 1], strides=[2, 2])
    return g, g.op("Resize", [t, "", g.c([1, 1, 0.75, 0.75], "down")], mode="linear",
                   coordinate_transformation_mode="align_corners")


def segmentation_decoder():
    """A U-Net step: strided conv down, grouped ConvTranspose back up (stride 2, pads,
    output_padding), the skip connection added, and a 1-D ConvTranspose with dilation."""
    g = Graph()
    d = g.op("Relu", [g.op("Conv", ["X", g.w([6, 4, 3, 3]), g.w([6], 0.1)], pads=[1, 1, 1, 1],
                                strides=[2, 2])])
    u = g.op("ConvTranspose", [d, g.w([6, 2, 3, 3]), g.w([4], 0.1)], strides=[2, 2],
             pads=[1, 1, 1, 1], output_padding=[1, 1], group=2)
    t = g.op("Add", [u, "X"])
    t = g.op("Reshape", [t, g.c([1, 4, 64], "flat", "i8")])
    return g, g.op("ConvTranspose", [t, g.w([4, 3, 3])], dilations=[2], strides=[1])


def mobilenet_v3_digits(pad_mode):
    """A MobileNetV3-style classifier for 8×8 digits (the PTQ test quantizes it): Pad, conv +
    HardSwish, depthwise conv + HardSwish, squeeze-excite, global pooling as ReduceMean without
    kept dimensions, Gemm."""
    g = Graph()
    t = g.op("Pad", ["X", g.c([0, 0, 1, 1, 0, 0, 1, 1], "pads", "i8")], mode=pad_mode)
    t = g.op("HardSwish", [g.op("Conv", [t, g.w([8, 1, 3, 3], 0.8), g.w([8], 0.2)])])
    t = g.op("Conv", [t, g.w([8, 1, 3, 3], 0.6), g.w([8], 0.1)], group=8, pads=[1, 1, 1, 1])
    t = g.op("HardSwish", [t])
    se = g.op("ReduceMean", [t], axes=[2, 3], keepdims=1)
    se = g.op("Relu", [g.op("Conv", [se, g.w([4, 8, 1, 1], 0.8), g.w([4], 0.1)])])
    se = g.op("HardSigmoid", [g.op("Conv", [se, g.w([8, 4, 1, 1], 0.8), g.w([8], 0.1)])],
              alpha=1 / 6, beta=0.5)
    t = g.op("Mul", [t, se])
    t = g.op("ReduceMean", [t], axes=[-2, -1], keepdims=0)
    return g, g.op("Gemm", [t, g.w([10, 8], 0.8), g.w([10], 0.1)], transB=1)


def transformer_block():
    """A pre-norm transformer encoder block as MobileViT and trajectory transformers use it (8
    tokens of 16 features): LayerNormalization as PyTorch exports nn.LayerNorm from opset 17,
    single-head self-attention (batched MatMul, Transpose, Softmax), a GELU MLP in its exported
    Erf form, residual Adds, and a final LayerNormalization without bias."""
    g = Graph()
    d = 16

    def ln(x, bias=True):
        ins = [x, g.c(1 + rng.standard_normal(d) * 0.2)]
        if bias:
            ins.append(g.w([d], 0.2))
        return g.op("LayerNormalization", ins, axis=-1, epsilon=1e-5)

    h = ln("X")
    q = g.op("MatMul", [h, g.w([d, d], 0.3)])
    k = g.op("MatMul", [h, g.w([d, d], 0.3)])
    v = g.op("MatMul", [h, g.w([d, d], 0.3)])
    s = g.op("MatMul", [q, g.op("Transpose", [k], perm=[0, 2, 1])])
    s = g.op("Softmax", [g.op("Mul", [s, g.c(0.25)])], axis=-1)
    t = g.op("Add", ["X", g.op("MatMul", [g.op("MatMul", [s, v]), g.w([d, d], 0.3)])])
    h = g.op("Add", [g.op("MatMul", [ln(t), g.w([d, 2 * d], 0.3)]), g.w([2 * d], 0.1)])
    erf = g.op("Erf", [g.op("Div", [h, g.c(np.sqrt(2.0))])])
    h = g.op("Mul", [g.op("Mul", [h, g.op("Add", [erf, g.c(1.0)])]), g.c(0.5)])
    t = g.op("Add", [t, g.op("MatMul", [h, g.w([2 * d, d], 0.3)])])
    return g, ln(t, bias=False)


def instance_norm_head():
    """A style-transfer / re-identification head: conv, InstanceNormalization, ReLU, then
    GlobalMaxPool, Flatten and a Gemm classifier."""
    g = Graph()
    t = g.op("Conv", ["X", g.w([6, 3, 3, 3], 0.5), g.w([6], 0.1)], pads=[1, 1, 1, 1])
    t = g.op("InstanceNormalization", [t, g.c(1 + rng.standard_normal(6) * 0.2),
                                       g.w([6], 0.2)], epsilon=1e-5)
    t = g.op("Flatten", [g.op("GlobalMaxPool", [g.op("Relu", [t])])])
    return g, g.op("Gemm", [t, g.w([4, 6], 0.8), g.w([4], 0.1)], transB=1)


def masked_softmax():
    """Attention scores masked on run-time values, as exporters write masks and thresholds:
    comparisons of a tensor with broadcast constants (Greater, LessOrEqual, GreaterOrEqual, Less,
    Equal), Not/And/Or/Xor on the bool masks, Where to put -1e4 where the mask is off, then
    Softmax, the mask cast to int64 and weighted with integer Mul/Sub/Max/Div, cast back to
    float32 to zero what it left out, and a three-input Sum with a broadcast row."""
    g = Graph()
    a = g.op("Greater", ["X", g.c(-0.8)])
    b = g.op("LessOrEqual", ["X", g.c(rng.standard_normal(6) + 1.0)])
    band = g.op("Xor", [g.op("GreaterOrEqual", ["X", g.c(0.2)]), g.op("Less", ["X", g.c(1.2)])])
    zero = g.op("Equal", [g.op("Floor", [g.op("Mul", ["X", g.c(2.0)])]), g.c(0.0)])
    keep = g.op("Or", [g.op("And", [a, b]), g.op("And", [band, g.op("Not", [zero])])])
    p = g.op("Softmax", [g.op("Where", [keep, "X", g.c(-1e4)])], axis=-1)
    k = g.op("Cast", [keep], to=TensorProto.INT64)
    k = g.op("Max", [g.op("Sub", [g.op("Mul", [k, g.c(3, dtype="i8")]), g.c(1, dtype="i8")]),
                     g.c(0, dtype="i8")])
    m = g.op("Cast", [g.op("Div", [k, g.c(2, dtype="i8")])], to=TensorProto.FLOAT)
    pm = g.op("Mul", [p, m])
    return g, g.op("Sum", [pm, g.op("Mul", [pm, g.c(0.5)]), g.c(rng.standard_normal(6) * 0.1)])


def activations_opset20():
    """Newer activations as single nodes: YOLOv4's Mish (opset 18), nn.GELU exported as Gelu
    at opset 20 (exact and tanh-approximated), and sinusoidal features (Sin, Cos) as positional
    encodings use them."""
    g = Graph()
    t = g.op("Mish", [g.op("Conv", ["X", g.w([4, 2, 3, 3], 0.6), g.w([4], 0.1)], pads=[1, 1, 1, 1])])
    t = g.op("Conv", [t, g.w([4, 4, 1, 1], 0.6), g.w([4], 0.1)])
    t = g.op("Add", [g.op("Gelu", [t]), g.op("Gelu", [t], approximate="tanh")])
    return g, g.op("Add", [g.op("Sin", [t]), g.op("Cos", [g.op("Mul", [t, g.c(0.5)])])])


def classifier_top5():
    """A classifier's end as deployed for a top-5 answer: global pooling, Gemm, Softmax, then
    TopK with K a constant (values and indices; the indices cast to float and concatenated to
    the values so one output checks both), and the 3 smallest logits along the batch axis too."""
    g = Graph()
    logits = g.op("Gemm", [g.op("Flatten", [g.op("GlobalAveragePool", ["X"])]), g.w([3, 16], 1.0),
                           g.w([16], 0.2)])
    p = g.op("Softmax", [logits], axis=-1)
    values, indices = "top_values", "top_indices"
    g.nodes.append(helper.make_node("TopK", [p, g.c([5], dtype="i8")], [values, indices], axis=-1))
    low, low_ix = "low_values", "low_indices"
    g.nodes.append(helper.make_node("TopK", [logits, g.c([3], dtype="i8")], [low, low_ix], axis=0,
                                    largest=0))
    low = g.op("Add", [g.op("Flatten", [low]), g.op("Cast", [g.op("Flatten", [low_ix])],
                                                     to=TensorProto.FLOAT)])
    top = g.op("Concat", [values, g.op("Cast", [indices], to=TensorProto.FLOAT)], axis=1)
    return g, g.op("Concat", [top, g.op("Reshape", [low, g.c([-1, 16], dtype="i8")])], axis=1)


def caffe_norms():
    """The normalizations of Caffe-era nets (AlexNet, GoogLeNet): conv, ReLU, LRN across 5
    channels (AlexNet's alpha, beta and bias), max pooling, LRN over 3 channels with large alpha
    (onnxruntime refuses even sizes, which ONNX allows; a unit test covers those), then MeanVarianceNormalization over H, W and over N, H, W (its default)."""
    g = Graph()
    t = g.op("Relu", [g.op("Conv", ["X", g.w([8, 3, 3, 3], 0.5), g.w([8], 0.1)], pads=[1, 1, 1, 1])])
    t = g.op("LRN", [t], size=5, alpha=1e-4, beta=0.75, bias=2.0)
    t = g.op("MaxPool", [t], kernel_shape=[3, 3], strides=[2, 2])
    t = g.op("Conv", [t, g.w([6, 8, 1, 1], 0.5), g.w([6], 0.1)])
    t = g.op("LRN", [t], size=3, alpha=0.3, beta=0.5, bias=1.0)
    t = g.op("MeanVarianceNormalization", [t], axes=[2, 3])
    # Default axes written out: onnx 1.23's shape inference fails on MVN without `axes` (ONNX's
    # own test_mvn node test covers the default).
    t = g.op("Mul", [t, g.w([6, 1, 1], 1.0)])
    return g, g.op("MeanVarianceNormalization", [t], axes=[0, 2, 3])


def index_arithmetic():
    """Index plumbing as transformer and detection exports write it: position ids as
    `cumsum(mask) * mask` in int64 (CumSum on int64, exclusive/reverse CumSum on float32 and
    int32), one-hot masks of those ids (OneHot, depth 8), GatherND on constant tuples (full
    and partial, a negative coordinate, batch_dims 1), ScatterND with an add reduction,
    EyeLike and ReverseSequence; everything flattened and concatenated into one output."""
    g = Graph()
    flat = []
    # X: 2 x 7. Position ids of the positive entries, counted from 1.
    mask = g.op("Cast", [g.op("Greater", ["X", g.c(0.0)])], to=TensorProto.INT64)
    pos = g.op("Mul", [g.op("CumSum", [mask, g.c(1, dtype="i8")]), mask])
    hot = g.op("OneHot", [pos, g.c([8], dtype="i8"), g.c([-0.5, 2.0])], axis=-1)
    flat.append(hot)
    flat.append(g.op("CumSum", ["X", g.c(0, dtype="i8")], exclusive=1, reverse=1))
    ints = g.op("Cast", [g.op("Mul", ["X", g.c(10.0)])], to=TensorProto.INT32)
    ints = g.op("CumSum", [ints, g.c(-1, dtype="i4")], exclusive=1)
    flat.append(g.op("Cast", [ints], to=TensorProto.FLOAT))
    # A 4 x 5 x 6 tensor to index into.
    cube = g.op("Reshape", [g.op("MatMul", ["X", g.w([7, 60], 0.5)]), g.c([4, 5, 6], dtype="i8")])
    flat.append(g.op("GatherND", [cube, g.c([[1, 2], [3, -1], [0, 4]], dtype="i8")]))
    rows = g.op("GatherND", [cube, g.c([[3], [1]], dtype="i8")])
    flat.append(g.op("GatherND", [cube, g.c([[4], [0], [2], [1]], dtype="i8")], batch_dims=1))
    upd = g.op("Mul", [rows, g.c(2.0)])
    flat.append(g.op("ScatterND", [g.op("Relu", [cube]), g.c([[2], [0]], dtype="i8"), upd],
                     reduction="add"))
    flat.append(g.op("ScatterND", [cube, g.c([[1, 1], [2, 3]], dtype="i8"),
                                   g.op("Neg", [g.op("GatherND", [cube, g.c([[0, 0], [3, 4]],
                                                                            dtype="i8")])])]))
    flat.append(g.op("EyeLike", [flat[3]], k=1))
    flat.append(g.op("ReverseSequence", [cube, g.c([5, 3, 1, 0], dtype="i8")], batch_axis=0,
                     time_axis=1))
    flat.append(g.op("ReverseSequence", [g.op("Transpose", [cube], perm=[1, 0, 2]),
                                         g.c([2, 4, 5, 1], dtype="i8")], batch_axis=1, time_axis=0))
    flat = [g.op("Reshape", [t, g.c([-1], dtype="i8")]) for t in flat]
    return g, g.op("Concat", flat, axis=0)


def einsum_attention():
    """Attention written with torch.einsum as exported (Einsum, opset 12): scores
    `bhqd,bhkd->bhqk`, Softmax, `bhqk,bhkd->bhqd`, then heads merged with a weight by
    `...hd,hde->...e` (broadcast batch axes), a diagonal `...ii->...i`, the implicit forms
    `ij,jk` and `i,i` (a dot product), a transpose `ij->ji` and a full sum `ij->`."""
    g = Graph()
    scores = g.op("Einsum", ["X", "X"], equation="bhqd,bhkd->bhqk")
    p = g.op("Softmax", [g.op("Mul", [scores, g.c(0.45)])], axis=-1)
    ctx = g.op("Einsum", [p, "X"], equation="bhqk,bhkd->bhqd")
    ctx = g.op("Transpose", [ctx], perm=[0, 2, 1, 3])  # b q h d
    merged = g.op("Einsum", [ctx, g.w([3, 5, 6], 0.5)], equation="...hd,hde->...e")  # b q e
    flat = [merged]
    flat.append(g.op("Einsum", [scores], equation="...ii ->...i"))
    m2 = g.op("Reshape", [merged, g.c([8, 6], dtype="i8")])
    flat.append(g.op("Einsum", [m2, g.w([6, 3], 0.5)], equation="ij,jk"))
    v = g.op("Reshape", [m2, g.c([-1], dtype="i8")])
    flat.append(g.op("Einsum", [v, v], equation="i,i"))
    flat.append(g.op("Einsum", [m2], equation="ij->ji"))
    flat.append(g.op("Einsum", [m2], equation="ij->"))
    flat = [g.op("Reshape", [t, g.c([-1], dtype="i8")]) for t in flat]
    return g, g.op("Concat", flat, axis=0)


def flow_warp(opset):
    """A flow-warp / spatial-transformer head: a conv predicts a sampling grid (Tanh, scaled
    by 1.4 so some positions fall outside the image), transposed to N×H×W×2, and the image is
    sampled with GridSample in every mode and padding (bilinear/zeros, nearest/border with
    align_corners, bicubic/reflection, bilinear/reflection with align_corners; opset 20
    spells the modes linear and cubic)."""
    g = Graph()
    flow = g.op("Tanh", [g.op("Conv", ["X", g.w([2, 3, 3, 3], 0.6), g.w([2], 0.1)],
                               pads=[1, 1, 1, 1], strides=[2, 2])])
    grid = g.op("Transpose", [g.op("Mul", [flow, g.c(1.4)])], perm=[0, 2, 3, 1])
    lin, cub = ("bilinear", "bicubic") if opset < 20 else ("linear", "cubic")
    outs = [
        g.op("GridSample", ["X", grid], mode=lin, padding_mode="zeros"),
        g.op("GridSample", ["X", grid], mode="nearest", padding_mode="border", align_corners=1),
        g.op("GridSample", ["X", grid], mode=cub, padding_mode="reflection"),
        g.op("GridSample", ["X", grid], mode=lin, padding_mode="reflection", align_corners=1),
    ]
    return g, g.op("Concat", outs, axis=1)


def classifier_loss():
    """A model's loss on the device: class scores from a conv head, cross-entropy against
    constant labels (per-class weights, one label ignored, mean; its log_prob output too), a
    per-pixel NLL of LogSoftmax (N×C×H×W, no reduction, int32 labels) and its sum."""
    g = Graph()
    scores = g.op("Conv", ["X", g.w([5, 3, 3, 3], 0.6), g.w([5], 0.1)], pads=[1, 1, 1, 1])
    pooled = g.op("Flatten", [g.op("GlobalAveragePool", [scores])])  # 4 x 5
    labels = g.c([1, 4, 2, 0], dtype="i8")
    loss, log_prob = "sce_loss", "sce_log_prob"
    g.nodes.append(helper.make_node("SoftmaxCrossEntropyLoss",
                                    [pooled, labels, g.c([1.0, 0.5, 2.0, 1.0, 1.5])],
                                    [loss, log_prob], ignore_index=2))
    logp = g.op("LogSoftmax", [scores], axis=1)
    pixel_labels = g.c(rng.integers(0, 5, size=(4, 6, 6)), dtype="i4")
    per_pixel = g.op("NegativeLogLikelihoodLoss", [logp, pixel_labels], reduction="none")
    total = g.op("NegativeLogLikelihoodLoss", [logp, pixel_labels], reduction="sum")
    flat = [loss, log_prob, per_pixel, total]
    flat = [g.op("Reshape", [t, g.c([-1], dtype="i8")]) for t in flat]
    return g, g.op("Concat", flat, axis=0)


def kws_frontend():
    """A keyword-spotting model with its audio front end inside the file (as torchaudio and
    tf.signal export it): Hann window, STFT (25 ms frames, 10 ms hop at 16 kHz, 512-point FFT
    of 400 windowed samples, the window centred by Pad), power by ReduceSumSquare over re/im, MelWeightMatrix (40 bands,
    20-4000 Hz), log, then a small conv classifier over the time x mel image."""
    g = Graph()
    sig = g.op("Unsqueeze", ["X", g.c([2], dtype="i8")])
    # A 400-sample window centred in the 512-point frame, as torch.stft places it.
    win = g.op("Pad", [g.op("HannWindow", [g.c(400, dtype="i8")]), g.c([56, 56], dtype="i8")])
    # onesided spelled out: onnx 1.23's shape inference takes a missing one as 0 (the
    # schema's default is 1).
    spec = g.op("STFT", [sig, g.c(160, dtype="i8"), win, g.c(512, dtype="i8")], onesided=1)
    power = g.op("ReduceSumSquare", [spec], axes=[-1], keepdims=0)
    mel = g.op("MelWeightMatrix", [g.c(40, dtype="i8"), g.c(512, dtype="i8"),
                                   g.c(16000, dtype="i8"), g.c(20.0), g.c(4000.0)])
    logmel = g.op("Log", [g.op("Add", [g.op("MatMul", [power, mel]), g.c(1e-6)])])
    img = g.op("Unsqueeze", [logmel, g.c([1], dtype="i8")])
    h = g.op("Relu", [g.op("Conv", [img, g.w([4, 1, 3, 3], 0.1), g.w([4], 0.1)], pads=[1, 1, 1, 1])])
    pooled = g.op("Flatten", [g.op("GlobalAveragePool", [h])])
    scores = g.op("Gemm", [pooled, g.w([3, 4]), g.w([3])], transB=1)
    # The log-mel features too, so the front end is compared value by value.
    flat = [g.op("Reshape", [t, g.c([-1], dtype="i8")]) for t in (logmel, scores)]
    return g, g.op("Concat", flat, axis=0)


def hann_stft(g, n, hop):
    """The one-sided STFT of the signal X (batch x samples) in n-point frames every hop
    samples, each times a periodic Hann window of n."""
    sig = g.op("Unsqueeze", ["X", g.c([2], dtype="i8")])
    win = g.op("HannWindow", [g.c(n, dtype="i8")])
    return g.op("STFT", [sig, g.c(hop, dtype="i8"), win, g.c(n, dtype="i8")], onesided=1)


def log_mel(g, spec, mels, n, rate, upper_hz):
    """log(power of spec x mel filterbank + 1e-6): mels bands from 20 Hz to upper_hz."""
    power = g.op("ReduceSumSquare", [spec], axes=[-1], keepdims=0)
    mel = g.op("MelWeightMatrix", [g.c(mels, dtype="i8"), g.c(n, dtype="i8"),
                                   g.c(rate, dtype="i8"), g.c(20.0), g.c(upper_hz)])
    return g.op("Log", [g.op("Add", [g.op("MatMul", [power, mel]), g.c(1e-6)])])


def kws_frontend_small():
    """The same front end sized for a 64 KB microcontroller (README, Boards): 512 samples at
    8 kHz, a 128-point STFT every 64 samples with a periodic Hann window, 16 mel bands from 20
    Hz to 4 kHz, log; its output is the log-mel image."""
    g = Graph()
    return g, log_mel(g, hann_stft(g, 128, 64), 16, 128, 8000, 4000.0)


def mel_spectrogram_400():
    """torchaudio's MelSpectrogram defaults at 16 kHz: n_fft = 400 (25 ms, a mixed-radix FFT,
    400 = 4*4*5*5) with the periodic Hann window as long as the frame, 10 ms hop, 40 mel bands
    (20-8000 Hz), log; 1,600 samples give 8 frames."""
    g = Graph()
    return g, log_mel(g, hann_stft(g, 400, 160), 40, 400, 16000, 8000.0)


def stft_400():
    """Two 400-point frames every 160 samples (560 samples) with a periodic Hann window: the
    STFT of mel_spectrogram_400 alone, small enough for a 64 KB microcontroller (README,
    Boards)."""
    g = Graph()
    return g, hann_stft(g, 400, 160)


def dft_opset20():
    """DFT at opset 20 (axis as an input) on a complex signal: along axis 1 zero-padded to 16
    points (radix-2 FFT), the inverse along axis -2 (the last signal axis, 3 values) padded to
    9 points (mixed radix, 3*3), a one-sided 12-point transform of the real part (4*3), an
    11-point one (prime: the direct DFT), and the symmetric Hamming
    and Blackman windows as weights."""
    g = Graph()
    fwd = g.op("DFT", ["X", g.c(16, dtype="i8"), g.c(1, dtype="i8")])
    inv = g.op("DFT", ["X", g.c(9, dtype="i8"), g.c(-2, dtype="i8")], inverse=1)
    re = g.op("Slice", ["X", g.c([0], dtype="i8"), g.c([1], dtype="i8"), g.c([3], dtype="i8")])
    one = g.op("DFT", [re, g.c(12, dtype="i8"), g.c(1, dtype="i8")], onesided=1)
    prime = g.op("DFT", [re, g.c(11, dtype="i8"), g.c(1, dtype="i8")])
    ham = g.op("HammingWindow", [g.c(12, dtype="i8")], periodic=0)
    black = g.op("BlackmanWindow", [g.c(12, dtype="i8")], periodic=0)
    weighted = g.op("Mul", [g.op("Reshape", [g.op("Add", [ham, black]), g.c([1, 12, 1, 1], dtype="i8")]), "X"])
    parts = [fwd, inv, one, prime, weighted]
    flat = [g.op("Reshape", [t, g.c([-1], dtype="i8")]) for t in parts]
    return g, g.op("Concat", flat, axis=0)


for mode in ("reflect", "constant"):
    g, y = mobilenet_v3_digits(mode)
    save(f"mobilenet_v3_digits_{mode}_pad", g, [1, 1, 8, 8], y, 17)
g, y = mobilenet_v3_block(17)
save("mobilenet_v3_block", g, [1, 3, 16, 16], y, 17)
g, y = mobilenet_v3_block(18)
save("mobilenet_v3_block_opset18", g, [1, 3, 16, 16], y, 18)
g, y = segmentation_decoder()
save("segmentation_decoder", g, [1, 4, 8, 8], y, 13)
g, y = detection_neck()
save("detection_neck", g, [1, 4, 4, 4], y, 13)
g, y = super_resolution_head()
save("super_resolution_head", g, [1, 2, 6, 6], y, 13)
g, y = elementwise_tail()
save("elementwise_tail", g, [2, 5, 7], y, 13)
g, y = transformer_block()
save("transformer_block", g, [1, 8, 16], y, 17)
g, y = instance_norm_head()
save("instance_norm_head", g, [2, 3, 8, 8], y, 13)
g, y = masked_softmax()
save("masked_softmax", g, [2, 4, 6], y, 13)
g, y = activations_opset20()
save("activations_opset20", g, [1, 2, 5, 5], y, 20)
g, y = classifier_top5()
save("classifier_top5", g, [3, 3, 4, 4], y, 13)
g, y = caffe_norms()
save("caffe_norms", g, [2, 3, 9, 9], y, 13)
g, y = index_arithmetic()
save("index_arithmetic", g, [2, 7], y, 16)
g, y = einsum_attention()
save("einsum_attention", g, [2, 3, 4, 5], y, 13)
g, y = flow_warp(16)
save("flow_warp", g, [2, 3, 7, 6], y, 16)
g, y = flow_warp(20)
save("flow_warp_opset20", g, [2, 3, 7, 6], y, 20)
g, y = classifier_loss()
save("classifier_loss", g, [4, 3, 6, 6], y, 13)
g, y = kws_frontend()
save("kws_frontend", g, [1, 1600], y, 17)
g, y = dft_opset20()
save("dft_opset20", g, [2, 12, 3, 2], y, 20, expected="reference")
g, y = kws_frontend_small()
save("kws_frontend_small", g, [1, 512], y, 17)
g, y = mel_spectrogram_400()
save("mel_spectrogram_400", g, [1, 1600], y, 17, expected="reference")
g, y = stft_400()
save("stft_400", g, [1, 560], y, 17, expected="reference")

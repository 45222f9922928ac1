"""Float models quantized by onnxruntime's own `quantize_dynamic`, with onnxruntime's outputs:
weights int8 or uint8 at export, activations quantized at run time by DynamicQuantizeLinear,
then ConvInteger/MatMulInteger with that run-time zero point, Cast and the rescaling Mul — the
files users get from `onnxruntime.quantization.quantize_dynamic`.

  dynamic_quant_cases.py OUT_DIR
      writes, per case, CASE.onnx (one float input X), CASE.x.f32 and CASE.y0.f32
      (onnxruntime's output, one intra-op thread, graph optimizations off). Seeded.
"""
import pathlib
import sys
import tempfile

import numpy as np
import onnx
from onnx import TensorProto, helper, numpy_helper
from onnxruntime.quantization import QuantType, quantize_dynamic
from ort_reference import session

rng = np.random.default_rng(5)
OUT = pathlib.Path(sys.argv[1])


def const(name, values, dtype="f4"):
    return numpy_helper.from_array(np.array(values, dtype), name)


def small_cnn():
    """Conv + bias, Relu, MaxPool, Flatten, MatMul + Add: a digits classifier."""
    inits = [const("W1", rng.standard_normal((8, 1, 3, 3)) * 0.3),
             const("B1", rng.standard_normal(8) * 0.1),
             const("W2", rng.standard_normal((8 * 4 * 4, 10)) * 0.1),
             const("B2", rng.standard_normal(10) * 0.1)]
    nodes = [helper.make_node("Conv", ["X", "W1", "B1"], ["c"], pads=[1, 1, 1, 1]),
             helper.make_node("Relu", ["c"], ["r"]),
             helper.make_node("MaxPool", ["r"], ["p"], kernel_shape=[2, 2], strides=[2, 2]),
             helper.make_node("Flatten", ["p"], ["f"]),
             helper.make_node("MatMul", ["f", "W2"], ["m"]),
             helper.make_node("Add", ["m", "B2"], ["Y"])]
    return nodes, inits, [1, 1, 8, 8]


def attention_mlp():
    """A transformer's dense layers on a batch of tokens: batched 3-D MatMuls (Q, K, V
    projections and the MLP), Softmax attention and a residual Add."""
    d = 16
    inits = [const(n, rng.standard_normal((d, d)) * 0.25) for n in ("Wq", "Wk", "Wv", "W1")]
    inits.append(const("W2", rng.standard_normal((d, 4)) * 0.25))
    nodes = [helper.make_node("MatMul", ["X", w], [w + "x"]) for w in ("Wq", "Wk", "Wv")]
    nodes += [helper.make_node("Transpose", ["Wkx"], ["kT"], perm=[0, 2, 1]),
              helper.make_node("MatMul", ["Wqx", "kT"], ["s"]),
              helper.make_node("Softmax", ["s"], ["a"], axis=-1),
              helper.make_node("MatMul", ["a", "Wvx"], ["o"]),
              helper.make_node("Add", ["o", "X"], ["h"]),
              helper.make_node("MatMul", ["h", "W1"], ["u"]),
              helper.make_node("Relu", ["u"], ["v"]),
              helper.make_node("MatMul", ["v", "W2"], ["Y"])]
    return nodes, inits, [2, 6, d]


def save(name, case, weight_type, per_channel=False):
    nodes, inits, x_shape = case
    graph = helper.make_graph(
        nodes, name, [helper.make_tensor_value_info("X", TensorProto.FLOAT, x_shape)],
        [helper.make_tensor_value_info("Y", TensorProto.FLOAT, None)], initializer=inits)
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 13)])
    model.ir_version = 8
    with tempfile.TemporaryDirectory() as tmp:
        src, dst = pathlib.Path(tmp) / "f.onnx", pathlib.Path(tmp) / "q.onnx"
        onnx.save(model, src)
        quantize_dynamic(src, dst, weight_type=weight_type, per_channel=per_channel,
                         op_types_to_quantize=["Conv", "MatMul"])
        q = onnx.load(dst)
    ops = {n.op_type for n in q.graph.node}
    assert "DynamicQuantizeLinear" in ops, f"{name}: not dynamically quantized: {ops}"
    onnx.checker.check_model(q, full_check=True)
    x = rng.standard_normal(x_shape).astype("f4")
    (out,) = session(q).run(None, {"X": x})
    onnx.save(q, OUT / f"{name}.onnx")
    x.tofile(OUT / f"{name}.x.f32")
    out.astype("<f4").tofile(OUT / f"{name}.y0.f32")


save("small_cnn_int8", small_cnn(), QuantType.QInt8)
save("small_cnn_uint8_per_channel", small_cnn(), QuantType.QUInt8, per_channel=True)
save("attention_mlp_int8", attention_mlp(), QuantType.QInt8)
save("attention_mlp_uint8", attention_mlp(), QuantType.QUInt8)

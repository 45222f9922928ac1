"""float16 models with a reference output: OUT_DIR/CASE.onnx, CASE.x.f32 (the input values as
float32), CASE.y.f32 (the reference output as float32), seeded.

  float16_cases.py OUT_DIR

- f16_io: float16 input, weights and output (Conv, Relu, Flatten, Gemm);
- f16_keep_io: float32 input and output around the same float16 body (Cast at both ends, as
  onnxconverter-common's keep_io_types makes it).
The reference is onnxruntime when it runs the model, else onnx's reference implementation; both
compute in float16, sprig in float32, so the test allows float16-sized differences.
"""
import pathlib
import sys

import numpy as np
import onnx
import onnxruntime as ort
from onnx import TensorProto, helper, numpy_helper
from onnx.reference import ReferenceEvaluator

rng = np.random.default_rng(16)
out = pathlib.Path(sys.argv[1])
F16, F32 = TensorProto.FLOAT16, TensorProto.FLOAT


def body(x):
    inits = [
        numpy_helper.from_array((rng.standard_normal((4, 1, 3, 3)) * 0.4).astype(np.float16), "w"),
        numpy_helper.from_array((rng.standard_normal(4) * 0.1).astype(np.float16), "b"),
        numpy_helper.from_array((rng.standard_normal((10, 4 * 6 * 6)) * 0.1).astype(np.float16), "wd"),
        numpy_helper.from_array((rng.standard_normal(10) * 0.1).astype(np.float16), "bd"),
    ]
    nodes = [
        helper.make_node("Conv", [x, "w", "b"], ["c"], kernel_shape=[3, 3]),
        helper.make_node("Relu", ["c"], ["r"]),
        helper.make_node("Flatten", ["r"], ["f"]),
        helper.make_node("Gemm", ["f", "wd", "bd"], ["y16"], transB=1),
    ]
    return nodes, inits


def save(name, nodes, inits, in_type, out_name, out_type):
    g = helper.make_graph(nodes, name, [helper.make_tensor_value_info("x", in_type, [1, 1, 8, 8])],
                          [helper.make_tensor_value_info(out_name, out_type, [1, 10])], initializer=inits)
    m = helper.make_model(g, opset_imports=[helper.make_opsetid("", 13)])
    m.ir_version = 8
    onnx.checker.check_model(m, full_check=True)
    x = rng.uniform(-1, 1, (1, 1, 8, 8)).astype(np.float16 if in_type == F16 else np.float32)
    try:
        so = ort.SessionOptions()
        so.graph_optimization_level = ort.GraphOptimizationLevel.ORT_DISABLE_ALL
        y = ort.InferenceSession(m.SerializeToString(), so, providers=["CPUExecutionProvider"]).run(None, {"x": x})[0]
    except Exception:
        y = ReferenceEvaluator(m).run(None, {"x": x})[0]
    onnx.save(m, out / f"{name}.onnx")
    x.astype("<f4").tofile(out / f"{name}.x.f32")
    y.astype("<f4").tofile(out / f"{name}.y.f32")


nodes, inits = body("x")
save("f16_io", nodes, inits, F16, "y16", F16)
nodes, inits = body("x16")
nodes = [helper.make_node("Cast", ["x"], ["x16"], to=F16)] + nodes + [helper.make_node("Cast", ["y16"], ["y"], to=F32)]
save("f16_keep_io", nodes, inits, F32, "y", F32)

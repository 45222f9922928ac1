"""Int8 element-wise ops as exporters quantize them (`Q → DQ → op → Q → DQ`), for the
lookup-table fusion: every op sprig turns into a 256-entry table, on int8 and uint8; and the
data-movement ops sprig runs on the 8-bit codes (`Q → DQ → Transpose|Pad|… → Q → DQ`, same
parameters on both sides), written to OUT_DIR/layout/ with the same files.

  lut_cases.py OUT_DIR
      writes, per case, CASE.onnx; CASE.float.onnx, the same graph with the op's float result
      also a graph output (so sprig cannot fuse it and runs DQ, the float op and Q); CASE.x.f32,
      256 inputs that quantize to every 8-bit code; CASE.y0.f32, onnxruntime's output (one
      intra-op thread, graph optimizations off) and CASE.step.f32, the output quantization step.
"""
import pathlib
import sys

import numpy as np
import onnx
from onnx import TensorProto, helper, numpy_helper
from ort_reference import session

OUT = pathlib.Path(sys.argv[1])
# (op, attributes, input scale, output scale, output zero point for int8)
CASES = [
    ("Sigmoid", {}, 0.05, 1 / 256, -128),
    ("Tanh", {}, 0.03, 1 / 128, 0),
    ("HardSigmoid", {"alpha": 1 / 6, "beta": 0.5}, 0.06, 1 / 256, -128),
    ("HardSwish", {}, 0.05, 0.04, -20),
    ("Relu", {}, 0.1, 0.05, -128),
    ("LeakyRelu", {"alpha": 0.1}, 0.1, 0.06, 10),
    ("Elu", {"alpha": 0.8}, 0.04, 0.03, 5),
    ("Selu", {}, 0.04, 0.05, 0),
    ("Celu", {"alpha": 1.5}, 0.04, 0.03, 0),
    ("Softplus", {}, 0.05, 0.03, -128),
    ("Softsign", {}, 0.1, 1 / 128, 0),
    ("Exp", {}, 0.02, 0.05, -128),
    ("Erf", {}, 0.02, 1 / 128, 0),
    ("Abs", {}, 0.1, 0.05, -128),
    ("Neg", {}, 0.1, 0.1, 0),
    ("Sign", {}, 0.1, 1.0, 0),
    ("ThresholdedRelu", {"alpha": 2.0}, 0.1, 0.05, -128),
    ("Floor", {}, 0.07, 0.1, 0),
    ("Ceil", {}, 0.07, 0.1, 0),
    ("Round", {}, 0.05, 0.1, 0),
    ("Sqrt", {}, 0.05, 0.03, -128),
    ("Log", {}, 0.05, 0.04, 20),
    ("Reciprocal", {}, 0.05, 0.2, 0),
    ("Sin", {}, 0.05, 1 / 128, 0),
    ("Cos", {}, 0.05, 1 / 128, 0),
    ("Tan", {}, 0.01, 0.03, 0),
    ("Asin", {}, 1 / 128, 0.013, 0),
    ("Acos", {}, 1 / 128, 0.0125, -128),
    ("Atan", {}, 0.05, 0.0125, 0),
    ("Sinh", {}, 0.02, 0.05, 0),
    ("Cosh", {}, 0.02, 0.03, -128),
    ("Asinh", {}, 0.1, 0.03, 0),
    ("Acosh", {}, 0.1, 0.03, -128),
    ("Atanh", {}, 1 / 130, 0.03, 0),
    ("Shrink", {"lambd": 1.0, "bias": 0.5}, 0.05, 0.04, 0),
    ("Mish", {}, 0.05, 0.04, -20),
    ("Gelu", {}, 0.05, 0.04, -20),
    ("Gelu", {"approximate": "tanh"}, 0.05, 0.04, -20),
]
# Ops newer than the opset the cases use.
OPSET = {"Mish": 18, "Gelu": 20}


def qdq(name, scale, zp, dtype):
    zt = TensorProto.INT8 if dtype == np.int8 else TensorProto.UINT8
    return [numpy_helper.from_array(np.array(scale, "f4"), f"{name}_s"),
            helper.make_tensor(f"{name}_z", zt, [], [int(zp)])]


def build(op, attrs, sx, sy, zy, dtype, expose):
    unsigned = dtype == np.uint8
    zx = 128 if unsigned else 0
    zy = zy + 128 if unsigned else zy
    inits = qdq("x", sx, zx, dtype) + qdq("y", sy, zy, dtype)
    nodes = [
        helper.make_node("QuantizeLinear", ["X", "x_s", "x_z"], ["xq"]),
        helper.make_node("DequantizeLinear", ["xq", "x_s", "x_z"], ["xf"]),
        helper.make_node(op, ["xf"], ["f"], **attrs),
        helper.make_node("QuantizeLinear", ["f", "y_s", "y_z"], ["yq"]),
        helper.make_node("DequantizeLinear", ["yq", "y_s", "y_z"], ["Y"]),
    ]
    outs = [helper.make_tensor_value_info("Y", TensorProto.FLOAT, [256])]
    if expose:
        outs.append(helper.make_tensor_value_info("f", TensorProto.FLOAT, [256]))
    graph = helper.make_graph(nodes, op, [helper.make_tensor_value_info("X", TensorProto.FLOAT, [256])],
                              outs, initializer=inits)
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", OPSET.get(op, 14))])
    model.ir_version = 8
    onnx.checker.check_model(model, full_check=True)
    # Inputs that quantize to every code: (code − zx) · sx, code over the type's range.
    lo = 0 if unsigned else -128
    x = ((np.arange(256) + lo - zx) * np.float32(sx)).astype("f4")
    return model, x


def save(name, model, float_model, x, step, out):
    sess = session(model)
    (y,) = sess.run(None, {"X": x})
    onnx.save(model, out / f"{name}.onnx")
    onnx.save(float_model, out / f"{name}.float.onnx")
    x.tofile(out / f"{name}.x.f32")
    y.astype("<f4").tofile(out / f"{name}.y0.f32")
    np.array([step], "<f4").tofile(out / f"{name}.step.f32")


rng = np.random.default_rng(5)
I64 = TensorProto.INT64
# (name, op, attributes, constant inputs after the data, input shape, output shape)
LAYOUT = [
    ("transpose", "Transpose", {"perm": [0, 2, 3, 1]}, [], [1, 3, 4, 5], [1, 4, 5, 3]),
    ("slice", "Slice", {}, [[0, 1], [8, 7], [2, 3], [2, 2]], [1, 3, 8, 8], [1, 3, 4, 3]),
    ("gather", "Gather", {"axis": 1}, [[2, 0]], [1, 3, 4], [1, 2, 4]),
    ("pad_constant", "Pad", {"mode": "constant"}, [[0, 0, 1, 2, 0, 0, 2, 1], 0.37], [1, 2, 4, 4], [1, 2, 7, 7]),
    ("pad_zero", "Pad", {}, [[0, 0, 1, 1, 0, 0, 1, 1]], [1, 2, 4, 4], [1, 2, 6, 6]),
    ("pad_reflect", "Pad", {"mode": "reflect"}, [[0, 0, 2, 1, 0, 0, 1, 2]], [1, 2, 4, 4], [1, 2, 7, 7]),
    ("pad_edge", "Pad", {"mode": "edge"}, [[0, 0, 1, 0, 0, 0, 0, 3]], [1, 2, 4, 4], [1, 2, 5, 7]),
    ("depth_to_space_crd", "DepthToSpace", {"blocksize": 2, "mode": "CRD"}, [], [1, 8, 3, 3], [1, 2, 6, 6]),
    ("depth_to_space_dcr", "DepthToSpace", {"blocksize": 2}, [], [1, 8, 3, 3], [1, 2, 6, 6]),
    ("space_to_depth", "SpaceToDepth", {"blocksize": 2}, [], [1, 2, 4, 6], [1, 8, 2, 3]),
    ("tile", "Tile", {}, [[1, 2, 1, 2]], [1, 3, 2, 2], [1, 6, 2, 4]),
    ("expand", "Expand", {}, [[2, 3, 4, 5]], [1, 3, 1, 5], [2, 3, 4, 5]),
    ("resize_nearest", "Resize", {"mode": "nearest"}, ["", [1.0, 1.0, 2.0, 1.5]], [1, 2, 3, 4], [1, 2, 6, 6]),
]


def build_layout(name, op, attrs, consts, xshape, yshape, dtype, expose):
    unsigned = dtype == np.uint8
    sx, zx = 0.05, (131 if unsigned else 3)
    inits = qdq("x", sx, zx, dtype) + qdq("y", sx, zx, dtype)
    ins = ["xf"]
    for i, c in enumerate(consts):
        if c == "":
            ins.append("")
            continue
        floats = isinstance(c, float) or (isinstance(c, list) and isinstance(c[0], float))
        arr = np.array(c, "f4" if floats else "i8")
        inits.append(numpy_helper.from_array(arr, f"c{i}"))
        ins.append(f"c{i}")
    nodes = [
        helper.make_node("QuantizeLinear", ["X", "x_s", "x_z"], ["xq"]),
        helper.make_node("DequantizeLinear", ["xq", "x_s", "x_z"], ["xf"]),
        helper.make_node(op, ins, ["f"], **attrs),
        helper.make_node("QuantizeLinear", ["f", "y_s", "y_z"], ["yq"]),
        helper.make_node("DequantizeLinear", ["yq", "y_s", "y_z"], ["Y"]),
    ]
    outs = [helper.make_tensor_value_info("Y", TensorProto.FLOAT, yshape)]
    if expose:
        outs.append(helper.make_tensor_value_info("f", TensorProto.FLOAT, yshape))
    graph = helper.make_graph(nodes, name, [helper.make_tensor_value_info("X", TensorProto.FLOAT, xshape)],
                              outs, initializer=inits)
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 14)])
    model.ir_version = 8
    onnx.checker.check_model(model, full_check=True)
    lo = 0 if unsigned else -128
    x = ((rng.integers(0, 256, xshape) + lo - zx) * np.float32(sx)).astype("f4")
    return model, x, sx


(OUT / "layout").mkdir(exist_ok=True)
for name, op, attrs, consts, xshape, yshape in LAYOUT:
    for dtype in (np.int8, np.uint8):
        case = f"{name}_{np.dtype(dtype).name}"
        model, x, step = build_layout(case, op, attrs, consts, xshape, yshape, dtype, False)
        float_model, _, _ = build_layout(case, op, attrs, consts, xshape, yshape, dtype, True)
        save(case, model, float_model, x, step, OUT / "layout")

for op, attrs, sx, sy, zy in CASES:
    for dtype in (np.int8, np.uint8):
        name = f"{op}{'_' + attrs['approximate'] if 'approximate' in attrs else ''}_{np.dtype(dtype).name}"
        model, x = build(op, attrs, sx, sy, zy, dtype, False)
        float_model, _ = build(op, attrs, sx, sy, zy, dtype, True)
        save(name, model, float_model, x, sy, OUT)

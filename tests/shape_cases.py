"""Shape arithmetic as exporters write it, with onnxruntime's outputs: `x.view(x.size(0), -1)`
(Shape → Gather → Unsqueeze → Concat → Reshape) at opsets 9, 11 and 13, a ShuffleNet channel
shuffle with the group size computed from the shape, an upsample to a size computed from the
input's (integer, and PyTorch 1.x's float `floor(dim * scale)`), ConstantOfShape / Expand / Where(Equal) as PyTorch's `expand_as` writes them, and
channel indices from Range reversed by a Slice and read by a Gather. sprig-runtime folds all
of it at plan time (runtime/src/fold.rs).

  shape_cases.py OUT_DIR
      writes, per case, CASE.onnx (one float input X), CASE.x.f32 and CASE.yK.bin, output K's
      bytes as onnxruntime gives them (float32 or int64, little-endian); and CASE.bad /
      CASE.why for chains sprig must refuse at plan time; ptq/view_classifier.onnx for the
      post-training quantization test. Seeded.
"""
import pathlib
import sys

import numpy as np
import onnx
from onnx import TensorProto, helper, numpy_helper
from ort_reference import session

rng = np.random.default_rng(5)
OUT = pathlib.Path(sys.argv[1])
I64_MAX = np.iinfo(np.int64).max
I64_MIN = np.iinfo(np.int64).min


class Graph:
    def __init__(self, opset):
        self.nodes, self.inits, self.n, self.opset = [], [], 0, opset

    def c(self, values, dtype="i8"):
        """A constant initializer (int64 unless told)."""
        name = f"c{len(self.inits)}"
        self.inits.append(numpy_helper.from_array(np.array(values, dtype), name))
        return name

    def op(self, op, ins, **attrs):
        self.n += 1
        out = f"t{self.n}"
        self.nodes.append(helper.make_node(op, ins, [out], **attrs))
        return out

    def unsqueeze0(self, x):
        if self.opset >= 13:
            return self.op("Unsqueeze", [x, self.c([0])])
        return self.op("Unsqueeze", [x], axes=[0])

    def slice1d(self, x, start, end, step=None):
        if self.opset < 10:
            return self.op("Slice", [x], starts=[start], ends=[end], axes=[0])
        ins = [x, self.c([start]), self.c([end]), self.c([0])]
        if step is not None:
            ins.append(self.c([step]))
        return self.op("Slice", ins)


def save(name, g, x_shape, outputs):
    """`outputs`: (name, is_int64) pairs."""
    def build(shapes):
        graph = helper.make_graph(
            g.nodes, name, [helper.make_tensor_value_info("X", TensorProto.FLOAT, x_shape)],
            [helper.make_tensor_value_info(y, TensorProto.INT64 if i else TensorProto.FLOAT, s)
             for (y, i), s in zip(outputs, shapes)],
            initializer=g.inits)
        model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", g.opset)])
        model.ir_version = 8
        return model

    x = rng.standard_normal(x_shape).astype("f4")
    # Shapes computed from Shape are unknown to ONNX's static inference: the output shapes
    # come from onnxruntime's run.
    ys = session(build([None] * len(outputs))).run(None, {"X": x})
    model = build([list(y.shape) for y in ys])
    onnx.checker.check_model(model, full_check=True)
    onnx.save(model, OUT / f"{name}.onnx")
    x.tofile(OUT / f"{name}.x.f32")
    for k, y in enumerate(ys):
        assert y.dtype in (np.float32, np.int64), y.dtype
        y.astype(y.dtype.newbyteorder("<")).tofile(OUT / f"{name}.y{k}.bin")


def flatten_view(opset):
    """`x.view(x.size(0), -1)` then a dense layer; the shape vector is an output too."""
    g = Graph(opset)
    b = g.op("Gather", [g.op("Shape", ["X"]), g.c(0)], axis=0)
    shape = g.op("Concat", [g.unsqueeze0(b), g.c([-1])], axis=0)
    flat = g.op("Reshape", ["X", shape])
    w = g.c(rng.standard_normal((48, 5)) * 0.3, "f4")
    y = g.op("MatMul", [flat, w])
    save(f"flatten_view_opset{opset}", g, [2, 3, 4, 4], [(y, 0), (shape, 1)])


def channel_shuffle():
    """ShuffleNet: view(b, groups, c // groups, h, w).transpose(1, 2).reshape(b, -1, h, w)."""
    g = Graph(13)
    s = g.op("Shape", ["X"])
    dim = [g.unsqueeze0(g.op("Gather", [s, g.c(i)], axis=0)) for i in range(4)]
    per_group = g.op("Div", [dim[1], g.c([2])])
    five = g.op("Concat", [dim[0], g.c([2]), per_group, dim[2], dim[3]], axis=0)
    t = g.op("Transpose", [g.op("Reshape", ["X", five])], perm=[0, 2, 1, 3, 4])
    back = g.op("Concat", [dim[0], g.c([-1]), g.slice1d(s, 2, I64_MAX)], axis=0)
    y = g.op("Relu", [g.op("Reshape", [t, back])])
    save("channel_shuffle", g, [1, 6, 3, 3], [(y, 0)])


def upsample_to_size():
    """F.interpolate(x, size=(2h, 2w)) with the size computed from the input's shape."""
    g = Graph(13)
    s = g.op("Shape", ["X"])
    hw = g.op("Mul", [g.slice1d(s, 2, 4), g.c([2])])
    sizes = g.op("Concat", [g.slice1d(s, 0, 2), hw], axis=0)
    y = g.op("Resize", ["X", "", "", sizes], mode="nearest")
    save("upsample_to_size", g, [1, 2, 3, 4], [(y, 0), (g.op("Size", [y]), 1)])


def upsample_scale_factor():
    """F.interpolate(x, scale_factor=1.5) as PyTorch 1.x exported it at opset 11: each output
    size is floor(float(dim) * scale) computed from the shape, sizes into Resize with empty
    roi and scales constants."""
    g = Graph(11)
    s = g.op("Shape", ["X"])
    dims = []
    for axis in (2, 3):
        d = g.op("Cast", [g.op("Gather", [s, g.c(axis)], axis=0)], to=TensorProto.FLOAT)
        scaled = g.op("Floor", [g.op("Mul", [d, g.c(1.5, "f4")])])
        dims.append(g.unsqueeze0(g.op("Cast", [scaled], to=TensorProto.INT64)))
    sizes = g.op("Concat", [g.slice1d(s, 0, 2)] + dims, axis=0)
    empty = g.c([], "f4")
    y = g.op("Resize", ["X", empty, empty, sizes], mode="nearest",
             coordinate_transformation_mode="asymmetric", nearest_mode="floor")
    save("upsample_scale_factor", g, [1, 2, 3, 5], [(y, 0), (sizes, 1)])


def expand_as():
    """`bias.expand_as(x)`: ConstantOfShape, Where(Equal(shape, -1)), Expand; plus a constant
    float tensor of the input's shape added to the result."""
    g = Graph(13)
    s = g.op("Shape", ["X"])
    ones = g.op("ConstantOfShape", [g.op("Shape", [s])],
                value=helper.make_tensor("v", TensorProto.INT64, [1], [1]))
    minus = g.op("Mul", [ones, g.c(-1)])
    target = g.op("Where", [g.op("Equal", [s, minus]), ones, s])
    bias = g.c(rng.standard_normal((1, 3, 1, 1)), "f4")
    e = g.op("Expand", [bias, target])
    half = g.op("ConstantOfShape", [s],
                value=helper.make_tensor("h", TensorProto.FLOAT, [1], [0.5]))
    y = g.op("Mul", [g.op("Add", ["X", e]), half])
    save("expand_as", g, [2, 3, 2, 5], [(y, 0)])


def reversed_channels():
    """x[:, ::-1] written as Gather over Range(0, C) reversed by a Slice with step -1."""
    g = Graph(13)
    c = g.op("Gather", [g.op("Shape", ["X"]), g.c(1)], axis=0)
    idx = g.op("Range", [g.c(0), c, g.c(1)])
    rev = g.slice1d(idx, -1, I64_MIN, -1)
    y = g.op("Gather", ["X", rev], axis=1)
    save("reversed_channels", g, [2, 5, 3], [(y, 0), (rev, 1)])


def view_classifier():
    """ptq/view_classifier.onnx: a digits-shaped (1×8×8) CNN that flattens with
    `x.view(x.size(0), -1)`, for `sprig quantize` (tests/tests/integration/compress.rs)."""
    g = Graph(13)
    c = g.op("Relu", [g.op("Conv", ["X", g.c(rng.standard_normal((6, 1, 3, 3)) * 0.5, "f4"),
                                    g.c(np.zeros(6), "f4")], pads=[1, 1, 1, 1])])
    b = g.op("Gather", [g.op("Shape", [c]), g.c(0)], axis=0)
    flat = g.op("Reshape", [c, g.op("Concat", [g.unsqueeze0(b), g.c([-1])], axis=0)])
    y = g.op("MatMul", [flat, g.c(rng.standard_normal((384, 10)) * 0.1, "f4")])
    graph = helper.make_graph(
        g.nodes, "view_classifier",
        [helper.make_tensor_value_info("X", TensorProto.FLOAT, [1, 1, 8, 8])],
        [helper.make_tensor_value_info(y, TensorProto.FLOAT, [1, 10])], initializer=g.inits)
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 13)])
    model.ir_version = 8
    onnx.checker.check_model(model, full_check=True)
    (OUT / "ptq").mkdir(exist_ok=True)
    onnx.save(model, OUT / "ptq" / "view_classifier.onnx")


def refused(name, g, x_shape, y, why):
    """A model sprig must refuse at plan time: CASE.bad (ONNX bytes) and CASE.why (the text the
    typed error must contain)."""
    graph = helper.make_graph(
        g.nodes, name, [helper.make_tensor_value_info("X", TensorProto.FLOAT, x_shape)],
        [helper.make_tensor_value_info(y, TensorProto.FLOAT, None)], initializer=g.inits)
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", g.opset)])
    model.ir_version = 8
    (OUT / f"{name}.bad").write_bytes(model.SerializeToString())
    (OUT / f"{name}.why").write_text(why)


def bad_cases():
    g = Graph(13)
    b = g.op("Gather", [g.op("Shape", ["X"]), g.c(7)], axis=0)
    y = g.op("Reshape", ["X", g.op("Concat", [g.unsqueeze0(b), g.c([-1])], axis=0)])
    refused("gather_past_the_rank", g, [2, 3], y, "index out of range")
    g = Graph(13)
    shape = g.op("Div", [g.op("Shape", ["X"]), g.c([0, 1])])
    refused("division_by_zero", g, [2, 3], g.op("Reshape", ["X", shape]),
            "integer division by zero")
    g = Graph(13)
    idx = g.op("Range", [g.c(0), g.c(100), g.c(1)])
    refused("range_too_long_to_fold", g, [2, 3], g.op("Gather", ["X", idx], axis=1),
            "unsupported operator Range")


for opset in (9, 11, 13):
    flatten_view(opset)
channel_shuffle()
upsample_to_size()
upsample_scale_factor()
expand_as()
reversed_channels()
bad_cases()
view_classifier()

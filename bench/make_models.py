"""Writes the benchmark models sprig's own model families do not cover yet, as float32 ONNX and
int8 QDQ ONNX (onnxruntime's quantize_static, per-channel weights, int8 activations):

- densenet_bc: a DenseNet-BC-shaped CIFAR model (3x32x32; stem 3x3 conv to 24 channels; three
  dense blocks of 4 bottleneck layers, growth 12, each 1x1 conv to 48 then 3x3 conv to 12 and a
  Concat with the block input; transitions 1x1 conv halving the channels + 2x2 average pool;
  global average pool, dense 10). Post-activation Conv+ReLU (batch norm folded).
- gru_traj: a GRU trajectory predictor (8 observed steps of (dx, dy), hidden 64, last hidden
  state through a dense layer to 12 future (x, y)). onnxruntime's static quantizer leaves the
  GRU in float; its int8 file quantizes the dense decoder only.

Weights are seeded He-initialised random values and calibration uses seeded random inputs:
right shapes and realistic value ranges for timing, not trained models.

  .venv/bin/python bench/make_models.py   (writes bench/models/*.onnx)
"""
import pathlib

import numpy as np
import onnx
from onnx import TensorProto, helper, numpy_helper
from onnxruntime.quantization import CalibrationDataReader, QuantFormat, QuantType, quantize_static

rng = np.random.default_rng(2026)
out = pathlib.Path(__file__).resolve().parent / "models"


class Builder:
    def __init__(self):
        self.nodes, self.inits, self.n = [], [], 0

    def name(self, p):
        self.n += 1
        return f"{p}{self.n}"

    def const(self, arr, p):
        nm = self.name(p)
        self.inits.append(numpy_helper.from_array(arr.astype("f4"), nm))
        return nm

    def conv_relu(self, x, cin, cout, k):
        w = rng.standard_normal((cout, cin, k, k)) * np.sqrt(2.0 / (cin * k * k))
        b = rng.standard_normal(cout) * 0.05
        y = self.name("conv")
        self.nodes.append(helper.make_node(
            "Conv", [x, self.const(w, "w"), self.const(b, "b")], [y],
            kernel_shape=[k, k], pads=[k // 2] * 4))
        r = self.name("relu")
        self.nodes.append(helper.make_node("Relu", [y], [r]))
        return r

    def node(self, op, ins, **attrs):
        y = self.name(op.lower())
        self.nodes.append(helper.make_node(op, ins, [y], **attrs))
        return y

    def save(self, name, x_info, y, y_shape):
        graph = helper.make_graph(self.nodes, name, [x_info],
                                  [helper.make_tensor_value_info(y, TensorProto.FLOAT, y_shape)],
                                  initializer=self.inits)
        model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 13)])
        model.ir_version = 8
        onnx.checker.check_model(model, full_check=True)
        path = out / f"{name}.f32.onnx"
        onnx.save(model, path)
        return path


def densenet_bc():
    b = Builder()
    x = b.conv_relu("x", 3, 24, 3)
    c = 24
    for block in range(3):
        for _ in range(4):
            h = b.conv_relu(x, c, 48, 1)
            h = b.conv_relu(h, 48, 12, 3)
            x = b.node("Concat", [x, h], axis=1)
            c += 12
        if block < 2:
            x = b.conv_relu(x, c, c // 2, 1)
            c //= 2
            x = b.node("AveragePool", [x], kernel_shape=[2, 2], strides=[2, 2])
    x = b.node("GlobalAveragePool", [x])
    x = b.node("Flatten", [x])
    w = rng.standard_normal((10, c)) * np.sqrt(1.0 / c)
    y = b.node("Gemm", [x, b.const(w, "w"), b.const(np.zeros(10), "b")], transB=1)
    return b.save("densenet_bc", helper.make_tensor_value_info("x", TensorProto.FLOAT, [1, 3, 32, 32]),
                  y, [1, 10]), (1, 3, 32, 32)


def gru_traj():
    b = Builder()
    h = 64
    w = b.const(rng.standard_normal((1, 3 * h, 2)) * np.sqrt(1.0 / 2), "W")
    r = b.const(rng.standard_normal((1, 3 * h, h)) * np.sqrt(1.0 / h), "R")
    bias = b.const(rng.standard_normal((1, 6 * h)) * 0.05, "B")
    yh = b.name("yh")
    b.nodes.append(helper.make_node("GRU", ["x", w, r, bias], ["", yh], hidden_size=h))
    flat = b.node("Reshape", [yh, b.name("shape")])
    b.inits.append(numpy_helper.from_array(np.array([1, h], dtype=np.int64), b.nodes[-1].input[1]))
    wd = rng.standard_normal((24, h)) * np.sqrt(1.0 / h)
    y = b.node("Gemm", [flat, b.const(wd, "wd"), b.const(np.zeros(24), "bd")], transB=1)
    return b.save("gru_traj", helper.make_tensor_value_info("x", TensorProto.FLOAT, [8, 1, 2]),
                  y, [1, 24]), (8, 1, 2)


class Reader(CalibrationDataReader):
    def __init__(self, shape):
        self.items = iter([{"x": rng.uniform(-1, 1, shape).astype("f4")} for _ in range(32)])

    def get_next(self):
        return next(self.items, None)


for make in (densenet_bc, gru_traj):
    path, shape = make()
    int8 = path.with_name(path.name.replace(".f32.", ".int8."))
    quantize_static(str(path), str(int8), Reader(shape), quant_format=QuantFormat.QDQ,
                    activation_type=QuantType.QInt8, weight_type=QuantType.QInt8, per_channel=True)
    print(f"{path.name}, {int8.name}")

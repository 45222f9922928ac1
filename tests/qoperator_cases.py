"""Integer-operator ("QOperator") models with onnxruntime's outputs.

  qoperator_cases.py OUT_DIR
      writes, per case, CASE.onnx (one uint8/int8 input X, everything else initializers),
      CASE.x.bin (X's raw bytes) and CASE.y.bin (onnxruntime's output, raw; onnx's reference
      implementation where onnxruntime refuses the case), seeded.
Covers both of sprig's paths: symmetric int8 weights (the fused int8 layer and its optimized
kernels) and uint8/asymmetric weights, batched products and int32 outputs (the integer
reference kernel).
"""
import pathlib
import sys

import numpy as np
import onnx
from onnx import TensorProto, helper, numpy_helper
from onnx.reference import ReferenceEvaluator
from ort_reference import session

rng = np.random.default_rng(11)
out = pathlib.Path(sys.argv[1])
NP = {TensorProto.UINT8: np.uint8, TensorProto.INT8: np.int8}


def q(shape, dt):
    lo, hi = (0, 256) if dt == TensorProto.UINT8 else (-128, 128)
    return rng.integers(lo, hi, size=shape).astype(NP[dt])


def save(name, node, x, inits, y_type, reference=False):
    graph = helper.make_graph(
        [node], name, [helper.make_tensor_value_info("X", x[1], x[0].shape)],
        [helper.make_tensor_value_info("Y", y_type, [f"d{i}" for i in range(x[0].ndim)])],
        initializer=[numpy_helper.from_array(v, k) for k, v in inits.items()])
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 13)])
    model.ir_version = 8
    onnx.checker.check_model(model)
    if reference:
        # onnxruntime refuses per-channel weight zero points in ConvInteger; u8 x s8, above.
        (y,) = ReferenceEvaluator(model).run(None, {"X": x[0]})
    else:
        sess = session(model)
        (y,) = sess.run(None, {"X": x[0]})
    onnx.save(model, out / f"{name}.onnx")
    (out / f"{name}.x.bin").write_bytes(x[0].tobytes())
    (out / f"{name}.y.bin").write_bytes(np.ascontiguousarray(y).tobytes())


def u8_times_s8(xt, wt):
    """uint8 activations times int8 weights: onnxruntime's AVX2 kernels without VNNI add
    pairs of u8*s8 products in int16 (vpmaddubsw) and saturate, up to 28 steps off on such a
    CPU, so these cases take ONNX's reference evaluator (exact integer math) as the answer."""
    return xt == TensorProto.UINT8 and wt == TensorProto.INT8


def qlinearconv(name, xt, wt, c, oc, hw, k, *, per_channel, w_zp=0, group=1, **attrs):
    x = q((1, c, hw, hw), xt)
    w = q((oc, c // group, k, k), wt)
    ws = (rng.uniform(0.002, 0.02, oc) if per_channel else np.array([0.01])).astype("f4")
    inits = {
        "xs": np.array(0.02, "f4"), "xz": np.array(128 if xt == TensorProto.UINT8 else 3, NP[xt]),
        "w": w, "ws": ws, "wz": np.full(ws.shape, w_zp, NP[wt]),
        "ys": np.array(0.3, "f4"), "yz": np.array(120 if xt == TensorProto.UINT8 else -5, NP[xt]),
        "b": rng.integers(-3000, 3000, oc).astype("i4"),
    }
    node = helper.make_node("QLinearConv", ["X", "xs", "xz", "w", "ws", "wz", "ys", "yz", "b"], ["Y"],
                            group=group, **attrs)
    save(name, node, (x, xt), inits, xt, reference=u8_times_s8(xt, wt))


def qlinearmatmul(name, xt, wt, a_shape, n, w_zp=0):
    x = q(a_shape, xt)
    k = a_shape[-1]
    inits = {
        "as": np.array(0.05, "f4"), "az": np.array(7, NP[xt]),
        "b": q((k, n), wt), "bs": np.array(0.01, "f4"), "bz": np.array(w_zp, NP[wt]),
        "ys": np.array(0.4, "f4"), "yz": np.array(100 if xt == TensorProto.UINT8 else 2, NP[xt]),
    }
    node = helper.make_node("QLinearMatMul", ["X", "as", "az", "b", "bs", "bz", "ys", "yz"], ["Y"])
    save(name, node, (x, xt), inits, xt, reference=u8_times_s8(xt, wt))


U8, I8 = TensorProto.UINT8, TensorProto.INT8
qlinearconv("qconv_u8_int8w_per_channel", U8, I8, 6, 8, 9, 3, per_channel=True, pads=[1, 1, 1, 1], strides=[2, 2])
qlinearconv("qconv_i8_grouped", I8, I8, 4, 6, 7, 3, per_channel=False, group=2, pads=[1, 0, 1, 0])
qlinearconv("qconv_u8_uint8w_asymmetric", U8, U8, 3, 5, 8, 3, per_channel=False, w_zp=131)
qlinearconv("qconv_i8_per_channel_dilated", I8, I8, 5, 7, 11, 3, per_channel=True, dilations=[2, 2])
qlinearmatmul("qmatmul_u8_int8w_batched_rows", U8, I8, (3, 5, 16), 6)
qlinearmatmul("qmatmul_i8_asymmetric", I8, I8, (4, 12), 5, w_zp=-9)

x = q((1, 4, 6, 6), U8)
w = q((5, 4, 3, 3), I8)
save("convinteger_per_channel_wzp",
     helper.make_node("ConvInteger", ["X", "w", "xz", "wz"], ["Y"], pads=[1, 1, 1, 1]),
     (x, U8), {"w": w, "xz": np.array(100, np.uint8), "wz": rng.integers(-4, 4, 5).astype(np.int8)},
     TensorProto.INT32, reference=True)
save("convinteger_strided",
     helper.make_node("ConvInteger", ["X", "w", "xz", "wz"], ["Y"], strides=[2, 2]),
     (x, U8), {"w": w, "xz": np.array(100, np.uint8), "wz": np.array(-2, np.int8)}, TensorProto.INT32)
x = q((2, 3, 10), I8)
save("matmulinteger_batched_col_zp",
     helper.make_node("MatMulInteger", ["X", "b", "az", "bz"], ["Y"]),
     (x, I8), {"b": q((10, 4), U8), "az": np.array(-3, np.int8), "bz": rng.integers(120, 136, 4).astype(np.uint8)},
     TensorProto.INT32)

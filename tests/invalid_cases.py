"""Models that must be refused with a typed error naming the problem, one node each (the ops
whose parameters a file can get wrong: Einsum equations, GatherND/ScatterND index shapes,
OneHot depth, CumSum axis, ReverseSequence lengths, LRN size, MeanVarianceNormalization axes,
loss targets, DFT/STFT/window/mel sizes),
and models whose run-time indices are out of range (refused when invoked, never read).

  invalid_cases.py OUT_DIR
      writes CASE.onnx and CASE.want (`plan: TEXT` or `invoke: TEXT`: where the error must come
      and a piece of its message). Inputs for invoke cases are written as CASE.in<k>.bin (raw
      little-endian), one per graph input.
"""
import pathlib
import sys

import numpy as np
from onnx import TensorProto, helper, numpy_helper

OUT = pathlib.Path(sys.argv[1])
F, I64 = TensorProto.FLOAT, TensorProto.INT64


def case(name, op, inputs, attrs, want, inits=(), feeds=None, opset=16):
    """`inputs`: (name, elem type, shape) graph inputs; `inits`: (name, numpy array)."""
    node = helper.make_node(op, [i[0] for i in inputs] + [n for n, _ in inits], ["y"], **attrs)
    graph = helper.make_graph(
        [node], name, [helper.make_tensor_value_info(n, t, s) for n, t, s in inputs],
        [helper.make_tensor_value_info("y", F, None)],
        initializer=[numpy_helper.from_array(v, n) for n, v in inits])
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", opset)])
    model.ir_version = 8
    (OUT / f"{name}.onnx").write_bytes(model.SerializeToString())
    (OUT / f"{name}.want").write_text(want)
    for k, v in enumerate(feeds or []):
        (OUT / f"{name}.in{k}.bin").write_bytes(np.ascontiguousarray(v).tobytes())


x23 = [("a", F, [2, 3])]
case("einsum_sizes_differ", "Einsum", x23 + [("b", F, [2, 3])], {"equation": "ij,jk->ik"},
     "plan: a label has two different sizes")
case("einsum_bad_char", "Einsum", x23, {"equation": "i1->i"}, "plan: invalid character")
case("einsum_rank", "Einsum", x23, {"equation": "ijk->i"}, "plan: label count differs")
case("einsum_output_label", "Einsum", x23, {"equation": "ij->k"}, "plan: output label not in")
case("einsum_three_inputs", "Einsum", x23 + [("b", F, [3]), ("c", F, [3])],
     {"equation": "ij,j,j->i"}, "plan: Einsum takes one or two")
case("gathernd_tuple_too_long", "GatherND", x23 + [("i", I64, [1, 3])], {},
     "plan: the indices' last axis")
case("gathernd_batch_dims", "GatherND", x23 + [("i", I64, [3, 1])], {"batch_dims": 1},
     "plan: batch axes of data and indices differ")
case("scatternd_updates_shape", "ScatterND", x23 + [("i", I64, [2, 1]), ("u", F, [2, 2])], {},
     "plan: updates must have the shape")
case("onehot_runtime_depth", "OneHot", [("i", I64, [3]), ("d", I64, []), ("v", F, [2])], {},
     "plan: depth computed at run time", opset=11)
case("onehot_values", "OneHot", [("i", I64, [3])], {},
     "plan: values must hold [off, on]",
     inits=[("d", np.array(4, "i8")), ("v", np.array([0, 1, 2], "f4"))], opset=11)
case("cumsum_runtime_axis", "CumSum", x23 + [("ax", I64, [])], {},
     "plan: axis computed at run time", opset=14)
case("reversesequence_lens", "ReverseSequence", x23 + [("l", I64, [3])],
     {"batch_axis": 0, "time_axis": 1}, "plan: sequence_lens must be int64", opset=10)
case("lrn_size_zero", "LRN", [("x", F, [1, 3, 2, 2])], {"size": 0}, "plan: size must be")
case("mvn_repeated_axis", "MeanVarianceNormalization", [("x", F, [1, 3, 2, 2])],
     {"axes": [2, -2]}, "plan: axes repeat", opset=13)
case("nllloss_target_shape", "NegativeLogLikelihoodLoss", x23 + [("t", I64, [3])], {},
     "plan: input must be N×C×d… and targets N×d…", opset=13)
# Spectral ops: sizes that cannot be planned.
sig = [("s", F, [1, 16, 1])]
case("dft_axis_last", "DFT", sig, {"axis": 2}, "plan: axis out of range", opset=17)
case("dft_length_zero", "DFT", sig, {}, "plan: dft_length must be at least 1",
     inits=[("n", np.array(0, "i8"))], opset=17)
case("dft_long_direct", "DFT", sig, {},
     "plan: unsupported transform length above 4096 with a prime factor above 31",
     inits=[("n", np.array(4099, "i8"))], opset=17)
case("dft_inverse_onesided", "DFT", [("s", F, [1, 16, 2])], {"inverse": 1, "onesided": 1},
     "plan: unsupported inverse one-sided DFT", opset=17)
case("dft_runtime_length", "DFT", sig + [("n", I64, [])], {},
     "plan: unsupported dft_length computed at run time", opset=17)
case("stft_window_length", "STFT", sig, {}, "plan: window length must equal frame_length",
     inits=[("step", np.array(4, "i8")), ("w", np.ones(6, "f4")), ("n", np.array(8, "i8"))],
     opset=17)
case("stft_short_signal", "STFT", sig, {}, "plan: signal shorter than one frame",
     inits=[("step", np.array(4, "i8")), ("w", np.ones(32, "f4"))], opset=17)
case("window_size_zero", "HannWindow", [], {}, "plan: window size must be at least 1",
     inits=[("n", np.array(0, "i8"))], opset=17)
case("window_double", "HammingWindow", [], {"output_datatype": TensorProto.DOUBLE},
     "plan: unsupported output_datatype", inits=[("n", np.array(8, "i8"))], opset=17)
case("mel_above_nyquist", "MelWeightMatrix", [], {},
     "plan: mel bands reach past the spectrogram",
     inits=[("m", np.array(8, "i8")), ("d", np.array(64, "i8")), ("r", np.array(8000, "i8")),
            ("lo", np.array(0, "f4")), ("hi", np.array(6000, "f4"))], opset=17)
# Run-time indices out of range: refused by invoke with the op named.
data = np.arange(6, dtype="f4").reshape(2, 3)
case("gathernd_index_out_of_range", "GatherND", x23 + [("i", I64, [1, 2])], {},
     "invoke: GatherND index out of range", feeds=[data, np.array([[1, 3]], "i8")])
case("scatternd_index_out_of_range", "ScatterND", x23 + [("i", I64, [1, 1]), ("u", F, [1, 3])],
     {}, "invoke: ScatterND index out of range",
     feeds=[data, np.array([[-3]], "i8"), np.ones((1, 3), "f4")])
case("reversesequence_too_long", "ReverseSequence", x23 + [("l", I64, [2])],
     {"batch_axis": 0, "time_axis": 1}, "invoke: ReverseSequence length",
     feeds=[data, np.array([1, 4], "i8")], opset=10)
case("sce_target_out_of_range", "SoftmaxCrossEntropyLoss", x23 + [("t", I64, [2])], {},
     "invoke: loss target outside the classes", feeds=[data, np.array([2, 3], "i8")], opset=13)

"""Recurrent layers (RNN, GRU, LSTM) that ONNX's node tests leave out, with onnxruntime's outputs.

  recurrent_cases.py OUT_DIR
      writes, per case, CASE.onnx (weights, biases, initial states, peepholes and sequence_lens
      as initializers; one float input X), CASE.x.f32 and CASE.yK.f32 (onnxruntime's output K,
      one intra-op thread, graph optimizations off; onnx's reference implementation for
      layout = 1, which onnxruntime refuses). Seeded: the same files every run.
"""
import pathlib
import sys

import numpy as np
import onnx
from onnx import TensorProto, helper, numpy_helper
from onnx.reference import ReferenceEvaluator
from ort_reference import session

rng = np.random.default_rng(7)
GATES = {"RNN": 1, "GRU": 3, "LSTM": 4}


def case(name, op, seq, batch, inp, hidden, *, direction="forward", layout=0, bias=True,
         lens=None, h0=False, c0=False, peep=False, outputs=("Y", "Y_h"), **attrs):
    dirs = 2 if direction == "bidirectional" else 1
    g = GATES[op]
    inits = [
        numpy_helper.from_array((rng.standard_normal((dirs, g * hidden, inp)) * 0.5).astype("f4"), "W"),
        numpy_helper.from_array((rng.standard_normal((dirs, g * hidden, hidden)) * 0.5).astype("f4"), "R"),
    ]
    ins = ["X", "W", "R"]

    def opt(flag, arr, nm):
        if flag:
            inits.append(numpy_helper.from_array(arr, nm))
            ins.append(nm)
        else:
            ins.append("")

    state = (batch, dirs, hidden) if layout else (dirs, batch, hidden)
    opt(bias, (rng.standard_normal((dirs, 2 * g * hidden)) * 0.3).astype("f4"), "B")
    opt(lens is not None, np.array(lens or [], dtype="i4"), "seq_lens")
    opt(h0, (rng.standard_normal(state) * 0.5).astype("f4"), "h0")
    if op == "LSTM":
        opt(c0, (rng.standard_normal(state) * 0.5).astype("f4"), "c0")
        opt(peep, (rng.standard_normal((dirs, 3 * hidden)) * 0.3).astype("f4"), "P")
    while ins and ins[-1] == "":
        ins.pop()
    outs = [o if o in outputs else "" for o in ["Y", "Y_h", "Y_c"][: 3 if op == "LSTM" else 2]]
    while outs[-1] == "":
        outs.pop()
    node = helper.make_node(op, ins, outs, hidden_size=hidden, direction=direction, layout=layout, **attrs)
    xshape = (batch, seq, inp) if layout else (seq, batch, inp)
    yshape = (batch, seq, dirs, hidden) if layout else (seq, dirs, batch, hidden)
    shapes = {"Y": yshape, "Y_h": state, "Y_c": state}
    graph = helper.make_graph(
        [node], name, [helper.make_tensor_value_info("X", TensorProto.FLOAT, xshape)],
        [helper.make_tensor_value_info(o, TensorProto.FLOAT, shapes[o]) for o in outs if o],
        initializer=inits)
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 14)])
    model.ir_version = 8
    onnx.checker.check_model(model, full_check=True)
    x = rng.standard_normal(xshape).astype("f4")
    if layout == 0:
        sess = session(model)
        ys = sess.run(None, {"X": x})
    else:
        # onnxruntime refuses layout = 1; onnx's own reference implementation takes it.
        ys = ReferenceEvaluator(model).run(None, {"X": x})
    out = pathlib.Path(sys.argv[1])
    onnx.save(model, out / f"{name}.onnx")
    x.tofile(out / f"{name}.x.f32")
    for k, y in enumerate(ys):
        y.astype("<f4").tofile(out / f"{name}.y{k}.f32")


case("gru_bidirectional_lens", "GRU", 6, 3, 4, 5, direction="bidirectional", lens=[6, 2, 4], h0=True)
case("gru_linear_before_reset", "GRU", 5, 2, 3, 4, linear_before_reset=1, h0=True)
case("gru_reverse_batch_first", "GRU", 4, 2, 3, 6, direction="reverse", layout=1)
case("gru_trajectory_encoder", "GRU", 8, 1, 2, 32, outputs=("Y_h",))
case("lstm_bidirectional_peepholes", "LSTM", 5, 3, 4, 3, direction="bidirectional", lens=[5, 1, 3],
     h0=True, c0=True, peep=True, outputs=("Y", "Y_h", "Y_c"))
# No sequence_lens with layout 1: onnx's reference implementation ignores them.
case("lstm_batch_first", "LSTM", 4, 2, 3, 4, layout=1, h0=True, c0=True, outputs=("Y", "Y_h", "Y_c"))
case("rnn_relu_reverse", "RNN", 5, 2, 3, 4, direction="reverse", activations=["Relu"], h0=True)
case("rnn_bidirectional_mixed", "RNN", 4, 2, 3, 3, direction="bidirectional",
     activations=["Sigmoid", "Tanh"], lens=[3, 4])

"""Freezes an ONNX backend node test's extra inputs into initializers.

  freeze_inputs.py TEST_DIR OUT_DIR [--all]

Many ONNX node tests pass shapes, axes, Slice bounds, Clip bounds or quantization parameters as
graph inputs. sprig-runtime plans ahead of time and needs those as constants (as exported models
have them), so this writes OUT_DIR/model.onnx with inputs 1.. turned into initializers (their
values from test_data_set_0), OUT_DIR/input_0.npy and OUT_DIR/output_K.npy for every output.
With --all, input 0 is frozen too (a ConstantOfShape test's only input is the shape).
"""
import os
import sys

import numpy as np
import onnx
from onnx import numpy_helper


def main(test_dir, out_dir, freeze_all=False):
    m = onnx.load(os.path.join(test_dir, "model.onnx"))
    data = os.path.join(test_dir, "test_data_set_0")
    g = m.graph
    inits = {i.name for i in g.initializer}
    real_inputs = [i for i in g.input if i.name not in inits]
    keep = [] if freeze_all else real_inputs[:1]
    for k, inp in enumerate(real_inputs):
        t = onnx.TensorProto()
        with open(os.path.join(data, f"input_{k}.pb"), "rb") as f:
            t.ParseFromString(f.read())
        arr = numpy_helper.to_array(t)
        if k == 0 and not freeze_all:
            np.save(os.path.join(out_dir, "input_0.npy"), arr)
        else:
            g.initializer.append(numpy_helper.from_array(arr, inp.name))
    del g.input[:]
    g.input.extend(keep)
    onnx.save(m, os.path.join(out_dir, "model.onnx"))
    for k in range(len(g.output)):
        t = onnx.TensorProto()
        with open(os.path.join(data, f"output_{k}.pb"), "rb") as f:
            t.ParseFromString(f.read())
        np.save(os.path.join(out_dir, f"output_{k}.npy"), numpy_helper.to_array(t))


if __name__ == "__main__":
    main(sys.argv[1], sys.argv[2], "--all" in sys.argv[3:])

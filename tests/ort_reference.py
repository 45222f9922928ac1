"""onnxruntime as the reference for sprig-runtime tests.

  ort_reference.py run MODEL SAMPLES.f32 OUT.f32
      runs MODEL on every sample (raw little-endian f32 images, shape from the model input)
      with one intra-op thread and writes the concatenated float outputs.
  ort_reference.py quantize MODEL.f32.onnx SAMPLES.f32 OUT.onnx per-tensor|per-channel
      quantizes with onnxruntime's own quantize_static (QDQ, int8 activations and weights),
      calibrating on the samples.
"""
import sys

import numpy as np
import onnxruntime as ort
from onnxruntime.quantization import CalibrationDataReader, QuantFormat, QuantType, quantize_static


def session(model):
    """onnxruntime as the reference: CPU, one intra-op thread, graph optimizations off (so it
    runs the graph as written). `model`: a path, serialized bytes or an onnx ModelProto."""
    if hasattr(model, "SerializeToString"):
        model = model.SerializeToString()
    so = ort.SessionOptions()
    so.intra_op_num_threads = 1
    so.graph_optimization_level = ort.GraphOptimizationLevel.ORT_DISABLE_ALL
    return ort.InferenceSession(model, so, providers=["CPUExecutionProvider"])


def load(model, samples):
    sess = session(model)
    inp = sess.get_inputs()[0]
    shape = [d if isinstance(d, int) else 1 for d in inp.shape]
    # One sample = one whole input tensor (its first dimension is not always a batch: GRU).
    x = np.fromfile(samples, dtype="<f4").reshape([-1] + shape)
    return sess, inp.name, x


def run(model, samples, out):
    sess, name, x = load(model, samples)
    ys = [sess.run(None, {name: x[i]})[0].astype("<f4").ravel() for i in range(len(x))]
    np.concatenate(ys).tofile(out)


class Reader(CalibrationDataReader):
    def __init__(self, name, x):
        self.items = iter([{name: x[i]} for i in range(len(x))])

    def get_next(self):
        return next(self.items, None)


def quantize(model, samples, out, mode):
    _, name, x = load(model, samples)
    quantize_static(
        model,
        out,
        Reader(name, x),
        quant_format=QuantFormat.QDQ,
        activation_type=QuantType.QInt8,
        weight_type=QuantType.QInt8,
        per_channel=(mode == "per-channel"),
    )


if __name__ == "__main__":
    if sys.argv[1] == "run":
        run(*sys.argv[2:5])
    elif sys.argv[1] == "quantize":
        quantize(*sys.argv[2:6])
    else:
        sys.exit(__doc__)

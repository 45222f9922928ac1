"""Checks models rewritten by `sprig bake` with ONNX's own tools.

  baked_ort.py DIR
      DIR holds CASE.onnx files (ONNX node-test cases with some inputs baked in) and CASE.dir
      files naming the case's folder. For each: onnx.checker (full check, with shape inference)
      must accept the file, and onnxruntime must give the same outputs from it, fed the inputs
      left, as from the original model fed every input (compared with onnxruntime's own answer
      rather than the case's: onnxruntime 1.32 differs from ONNX's expected values on one Resize
      case either way). Prints one line per case that fails and exits non-zero if any did.
"""
import copy
import pathlib
import sys

import numpy as np
import onnx
from onnx import helper, numpy_helper

from ort_reference import session


def spell_out_stft_onesided(model):
    """A copy with STFT's `onesided` written out: onnx 1.23's shape inference takes a missing
    `onesided` as 0, while the schema's default (and ONNX's reference, and onnxruntime) is 1,
    so a file whose frame_step is a constant fails the full check on a correct output shape."""
    model = copy.deepcopy(model)
    for node in model.graph.node:
        if node.op_type == "STFT" and not any(a.name == "onesided" for a in node.attribute):
            node.attribute.append(helper.make_attribute("onesided", 1))
    return model


def check(model_path, case_dir):
    model = onnx.load(model_path)
    onnx.checker.check_model(spell_out_stft_onesided(model), full_check=True)
    sess = session(model)
    data = case_dir / "test_data_set_0"
    original = onnx.load(case_dir / "model.onnx")
    init = {t.name for t in original.graph.initializer}
    names = [i.name for i in original.graph.input if i.name not in init]
    every = {}
    for i, name in enumerate(names):
        t = onnx.TensorProto()
        t.ParseFromString((data / f"input_{i}.pb").read_bytes())
        every[name] = numpy_helper.to_array(t)
    left = {x.name for x in sess.get_inputs()}
    got = sess.run(None, {k: v for k, v in every.items() if k in left})
    want = session(original).run(None, every)
    for o, (g, w) in enumerate(zip(got, want)):
        if g.shape != w.shape or not np.array_equal(g, w, equal_nan=g.dtype.kind == "f"):
            raise AssertionError(f"output {o} differs from the original model's")

def main():
    root = pathlib.Path(sys.argv[1])
    bad = 0
    models = sorted(root.glob("*.onnx"))
    for m in models:
        case_dir = pathlib.Path(m.with_suffix(".dir").read_text().strip())
        try:
            check(m, case_dir)
        except Exception as e:  # report every case, not only the first
            bad += 1
            print(f"{m.stem}: {type(e).__name__}: {str(e).splitlines()[0] if str(e) else ''}")
    print(f"{len(models) - bad} of {len(models)} baked models pass onnx.checker and onnxruntime")
    sys.exit(1 if bad or not models else 0)


if __name__ == "__main__":
    main()

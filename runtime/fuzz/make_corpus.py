"""Regenerates the checked-in seed corpus of the parse_plan fuzz target.

Seeds: the sprig-exported int8 models the firmware ships, plus every ONNX backend node test
(Debian libonnx-testdata) whose ops sprig-runtime claims, plus the models of tests/shape_cases.py,
tests/mobile_cases.py (exporter-style chains with constant parameters) and
tests/dynamic_quant_cases.py (onnxruntime's quantize_dynamic files) and tests/invalid_cases.py
(one-node models with wrong parameters), so mutations start from files that
reach the planner and the kernels rather than stopping at the first unknown op.
Run: ../../.venv/bin/python make_corpus.py  (from runtime/fuzz)
"""
import hashlib, pathlib, re, shutil, subprocess, sys, tempfile
import onnx

here = pathlib.Path(__file__).resolve().parent
root = here.parent.parent
ops_rs = (root / "runtime/src/ops.rs").read_text()
block = ops_rs.split("pub const SUPPORTED_OPS")[1].split("];")[0]
claimed = set(re.findall(r'"(\w+)"', block)) | {"Constant"}

out = here / "corpus/parse_plan"
if out.exists():
    shutil.rmtree(out)
out.mkdir(parents=True)

def add(data: bytes):
    (out / hashlib.sha1(data).hexdigest()).write_bytes(data)

for p in sorted((root / "boards/cortex-m/models").glob("*.onnx")):
    add(p.read_bytes())
n = 0
for d in sorted(pathlib.Path("/usr/share/libonnx-testdata/data/node").iterdir()):
    f = d / "model.onnx"
    if not f.exists():
        continue
    data = f.read_bytes()
    ops = {node.op_type for node in onnx.load_from_string(data).graph.node}
    if ops <= claimed:
        add(data)
        n += 1
# Exporter-style shape arithmetic (folded at plan time, src/fold.rs) and whole blocks whose
# parameters are constants, as deployed (a node test's parameter inputs stop at plan time).
for script in ("shape_cases.py", "mobile_cases.py", "dynamic_quant_cases.py", "invalid_cases.py"):
    with tempfile.TemporaryDirectory() as tmp:
        subprocess.run([sys.executable, str(root / "tests" / script), tmp], check=True,
                       cwd=root / "tests")
        for p in sorted(pathlib.Path(tmp).glob("*.onnx")):
            add(p.read_bytes())
print(f"{n} node-test models + firmware, shape-arithmetic, mobile-block and dynamic-quantization models -> {out}")

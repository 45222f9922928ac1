"""Median latency (µs) of one inference in onnxruntime, one intra-op thread, batch 1.

  ort_time.py MODEL RUNS   →  prints the median in microseconds
"""
import sys
import time

import numpy as np
import onnxruntime as ort

model, runs = sys.argv[1], int(sys.argv[2])
so = ort.SessionOptions()
so.intra_op_num_threads = 1
so.inter_op_num_threads = 1
sess = ort.InferenceSession(model, so, providers=["CPUExecutionProvider"])
inp = sess.get_inputs()[0]
shape = [d if isinstance(d, int) else 1 for d in inp.shape]
x = (np.arange(np.prod(shape)) % 251 / 251.0).astype(np.float32).reshape(shape)
feed = {inp.name: x}
for _ in range(20):
    sess.run(None, feed)
times = []
for _ in range(runs):
    t = time.perf_counter()
    sess.run(None, feed)
    times.append((time.perf_counter() - t) * 1e6)
print(f"{np.median(times):.2f}")

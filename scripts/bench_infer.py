"""onnxruntime's side of `cargo xtask bench infer`.

Usage: python bench_infer.py MODEL.onnx THREADS SINGLES BATCHES NAME:TYPE:WIDTH:PATH...

One NAME:TYPE:WIDTH:PATH per graph input: PATH holds little-endian rows of WIDTH values of
TYPE (f32 or f64), fed to the input NAME. The protocol is the Rust side's: 50 warm-up calls;
then SINGLES calls of one row each (row i mod rows), each timed alone; then two untimed
calls of the first 1024 rows and BATCHES more, timed together. onnxruntime runs on the CPU
with THREADS intra-op and one inter-op thread. Prints one JSON line.
"""
import json
import sys
import time

import numpy as np
import onnxruntime as ort

model, threads, singles, batches = sys.argv[1:5]
threads, singles, batches = int(threads), int(singles), int(batches)
inputs = {}
for spec in sys.argv[5:]:
    name, kind, width, path = spec.split(":", 3)
    dtype = {"f32": "<f4", "f64": "<f8"}[kind]
    inputs[name] = np.fromfile(path, dtype=dtype).reshape(-1, int(width))
options = ort.SessionOptions()
options.intra_op_num_threads = threads
options.inter_op_num_threads = 1
options.execution_mode = ort.ExecutionMode.ORT_SEQUENTIAL
session = ort.InferenceSession(model, options, providers=["CPUExecutionProvider"])
expected = sorted(i.name for i in session.get_inputs())
if sorted(inputs) != expected:
    sys.exit(f"the model takes inputs {expected}, given {sorted(inputs)}")
rows = min(x.shape[0] for x in inputs.values())


def feed(lo, hi):
    return {name: x[lo:hi] for name, x in inputs.items()}


for i in range(50):
    session.run(None, feed(i % rows, i % rows + 1))
times = []
for i in range(singles):
    row = feed(i % rows, i % rows + 1)
    t = time.perf_counter_ns()
    session.run(None, row)
    times.append(time.perf_counter_ns() - t)
block = feed(0, 1024)
session.run(None, block)
session.run(None, block)
t = time.perf_counter_ns()
for _ in range(batches):
    session.run(None, block)
elapsed = (time.perf_counter_ns() - t) / 1e9
times = np.array(times, dtype=np.float64) / 1e3
print(json.dumps({
    "runtime": f"onnxruntime {ort.__version__}",
    "batch1_median_us": float(np.median(times)),
    "batch1_p99_us": float(np.percentile(times, 99)),
    "batch1024_rows_per_s": 1024 * batches / elapsed,
}))

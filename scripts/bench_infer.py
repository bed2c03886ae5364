"""onnxruntime's side of `cargo xtask bench infer`.

Usage: python bench_infer.py MODEL.onnx INPUTS.f32 N_FEATURES THREADS SINGLES BATCHES

INPUTS.f32 holds little-endian float32 rows of N_FEATURES values. The protocol is the Rust
side's: 50 warm-up calls; then SINGLES calls of one row each (row i mod rows), each timed
alone; then BATCHES calls of the first 1024 rows, timed together. onnxruntime runs on the CPU
with THREADS intra-op and one inter-op thread. Prints one JSON line.
"""
import json
import sys
import time

import numpy as np
import onnxruntime as ort

model, inputs, n_features, threads, singles, batches = sys.argv[1:7]
n_features, threads, singles, batches = int(n_features), int(threads), int(singles), int(batches)
x = np.fromfile(inputs, dtype="<f4").reshape(-1, n_features)
options = ort.SessionOptions()
options.intra_op_num_threads = threads
options.inter_op_num_threads = 1
options.execution_mode = ort.ExecutionMode.ORT_SEQUENTIAL
session = ort.InferenceSession(model, options, providers=["CPUExecutionProvider"])
name = session.get_inputs()[0].name
rows = x.shape[0]
for i in range(50):
    session.run(None, {name: x[i % rows : i % rows + 1]})
times = []
for i in range(singles):
    row = x[i % rows : i % rows + 1]
    t = time.perf_counter_ns()
    session.run(None, {name: row})
    times.append(time.perf_counter_ns() - t)
block = x[:1024]
session.run(None, {name: block})
t = time.perf_counter_ns()
for _ in range(batches):
    session.run(None, {name: block})
elapsed = (time.perf_counter_ns() - t) / 1e9
times = np.array(times, dtype=np.float64) / 1e3
print(json.dumps({
    "runtime": f"onnxruntime {ort.__version__}",
    "batch1_median_us": float(np.median(times)),
    "batch1_p99_us": float(np.percentile(times, 99)),
    "batch1024_rows_per_s": 1024 * batches / elapsed,
}))

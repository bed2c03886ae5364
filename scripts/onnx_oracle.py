"""Checks an exported model with the reference ONNX tools.

Usage: python onnx_oracle.py MODEL.onnx FEATURES.csv TRACT_OUTPUTS.csv

1. onnx.checker.check_model(full_check=True) must accept the model;
2. onnxruntime (CPU, one thread) runs it on FEATURES (rows of float32, no header);
3. its outputs are compared with TRACT_OUTPUTS (same layout).
Prints one JSON line with the findings; exits 1 if the checker fails or any output differs by
more than 1e-4.
"""
import json
import sys

import numpy as np
import onnx
import onnxruntime as ort

model_path, features_path, tract_path = sys.argv[1:4]
model = onnx.load(model_path)
onnx.checker.check_model(model, full_check=True)
x = np.loadtxt(features_path, delimiter=",", dtype=np.float32, ndmin=2)
expected = np.loadtxt(tract_path, delimiter=",", dtype=np.float32, ndmin=2)
options = ort.SessionOptions()
options.intra_op_num_threads = 1
session = ort.InferenceSession(model_path, options, providers=["CPUExecutionProvider"])
(output,) = session.run(None, {session.get_inputs()[0].name: x})
diff = float(np.max(np.abs(output - expected))) if output.shape == expected.shape else float("inf")
print(json.dumps({
    "checker": "ok",
    "onnxruntime": ort.__version__,
    "opset": [o.version for o in model.opset_import],
    "rows": int(x.shape[0]),
    "output_shape": list(output.shape),
    "max_abs_diff": diff,
    "metadata": {p.key: p.value for p in model.metadata_props},
}))
sys.exit(0 if diff <= 1e-4 else 1)

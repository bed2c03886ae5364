"""Checks exported models with the reference ONNX tools.

Usage: python onnx_oracle.py MODEL.onnx FEATURES.csv TRACT_OUTPUTS.csv
       python onnx_oracle.py --cases DIR

1. onnx.checker.check_model(full_check=True) must accept the model;
2. onnxruntime (CPU, one thread) runs it on FEATURES (rows of float32, no header);
3. its outputs are compared with TRACT_OUTPUTS (same layout).
Prints one JSON line with the findings; exits 1 if the checker fails or any output differs by
more than 1e-4.

With --cases, DIR holds cases NAME.onnx, NAME.x.csv and one or more NAME.<runtime>.csv
(outputs of other runtimes, such as burn and tract). Every case is checked and compared with
each of its outputs; one JSON line per case, then a summary line; exit 1 if any case fails.
"""
import json
import pathlib
import sys

import numpy as np
import onnx
import onnxruntime as ort

TOLERANCE = 1e-4


def load(path):
    return np.loadtxt(path, delimiter=",", dtype=np.float32, ndmin=2)


def run_model(model_path, x):
    options = ort.SessionOptions()
    options.intra_op_num_threads = 1
    session = ort.InferenceSession(str(model_path), options, providers=["CPUExecutionProvider"])
    (output,) = session.run(None, {session.get_inputs()[0].name: x})
    return output


def diff(a, b):
    return float(np.max(np.abs(a - b))) if a.shape == b.shape else float("inf")


def check(model_path, x):
    model = onnx.load(str(model_path))
    onnx.checker.check_model(model, full_check=True)
    return model, run_model(model_path, x)


def cases(directory):
    directory = pathlib.Path(directory)
    failed = 0
    names = sorted(p.name[: -len(".onnx")] for p in directory.glob("*.onnx"))
    worst = 0.0
    for name in names:
        x = load(directory / f"{name}.x.csv")
        row = {"case": name}
        try:
            _, output = check(directory / f"{name}.onnx", x)
            row["checker"] = "ok"
            for other in sorted(directory.glob(f"{name}.*.csv")):
                runtime = other.name[len(name) + 1 : -len(".csv")]
                if runtime == "x":
                    continue
                row[f"max_abs_diff_{runtime}"] = d = diff(output, load(other))
                worst = max(worst, d)
                if not d <= TOLERANCE:
                    row["ok"] = False
        except Exception as e:  # the checker's or onnxruntime's refusal
            row["checker"] = f"failed: {e}"
            row["ok"] = False
        failed += row.get("ok", True) is False
        print(json.dumps(row))
    print(json.dumps({"cases": len(names), "failed": failed, "worst_max_abs_diff": worst,
                      "onnxruntime": ort.__version__, "onnx": onnx.__version__}))
    return 1 if failed or not names else 0


def main():
    if sys.argv[1] == "--cases":
        sys.exit(cases(sys.argv[2]))
    model_path, features_path, tract_path = sys.argv[1:4]
    x = load(features_path)
    model, output = check(model_path, x)
    d = diff(output, load(tract_path))
    print(json.dumps({
        "checker": "ok",
        "onnxruntime": ort.__version__,
        "opset": [o.version for o in model.opset_import],
        "rows": int(x.shape[0]),
        "output_shape": list(output.shape),
        "max_abs_diff": d,
        "metadata": {p.key: p.value for p in model.metadata_props},
    }))
    sys.exit(0 if d <= TOLERANCE else 1)


if __name__ == "__main__":
    main()

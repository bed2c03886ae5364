"""Checks exported models with the reference ONNX tools.

Usage: python onnx_oracle.py MODEL.onnx TRACT_OUTPUTS.csv INPUT=ROWS.csv...
       python onnx_oracle.py --cases DIR

1. onnx.checker.check_model(full_check=True) must accept the model;
2. onnxruntime (CPU, one thread) runs it on the rows given for each graph input (CSV without
   a header; `nan` for a missing number; read as the input's element type, float32 or
   float64);
3. its first output is compared with TRACT_OUTPUTS (same layout); when the model also has the
   regression output `value`, that must equal output * std + mean from the metadata.
Prints one JSON line with the findings; exits 1 if the checker fails or any output differs by
more than 1e-4.

With --cases, DIR holds cases NAME.onnx, its inputs (NAME.x.csv for a model whose one input
is `features`, else NAME.in.INPUT.csv per input) and one or more NAME.<runtime>.csv (outputs
of other runtimes, such as burn and tract). Every case is checked and compared with each of
its outputs; one JSON line per case, then a summary line; exit 1 if any case fails.
"""
import json
import pathlib
import sys

import numpy as np
import onnx
import onnxruntime as ort

TOLERANCE = 1e-4
DTYPES = {"tensor(float)": np.float32, "tensor(double)": np.float64}


def load(path, dtype=np.float32):
    return np.loadtxt(path, delimiter=",", dtype=dtype, ndmin=2)


def session_of(model_path):
    options = ort.SessionOptions()
    options.intra_op_num_threads = 1
    return ort.InferenceSession(str(model_path), options, providers=["CPUExecutionProvider"])


def run_model(model, model_path, paths):
    """Runs the model on {input name: CSV path}; returns its first output, after checking
    the `value` output where there is one."""
    session = session_of(model_path)
    feed = {}
    for i in session.get_inputs():
        if i.name not in paths:
            raise ValueError(f"no rows given for input '{i.name}' ({i.type})")
        feed[i.name] = load(paths[i.name], DTYPES[i.type])
    names = [o.name for o in session.get_outputs()]
    outputs = dict(zip(names, session.run(None, feed)))
    first = outputs[names[0]]
    if "value" in outputs:
        meta = {p.key: p.value for p in model.metadata_props}
        kind = json.loads(meta["output"])
        expected = first * np.float32(kind["std"]) + np.float32(kind["mean"])
        d = diff(outputs["value"], expected)
        if not d <= TOLERANCE * max(1.0, abs(kind["std"]), abs(kind["mean"])):
            raise ValueError(f"output 'value' is not output * std + mean (max |Δ| {d})")
    return first, feed


def diff(a, b):
    return float(np.max(np.abs(a - b))) if a.shape == b.shape else float("inf")


def check(model_path, paths):
    model = onnx.load(str(model_path))
    onnx.checker.check_model(model, full_check=True)
    output, feed = run_model(model, model_path, paths)
    return model, output, feed


def case_inputs(directory, name):
    single = directory / f"{name}.x.csv"
    if single.exists():
        return {"features": single}
    prefix = f"{name}.in."
    return {p.name[len(prefix):-len(".csv")]: p for p in directory.glob(f"{prefix}*.csv")}


def cases(directory):
    directory = pathlib.Path(directory)
    failed = 0
    names = sorted(p.name[: -len(".onnx")] for p in directory.glob("*.onnx"))
    worst = 0.0
    for name in names:
        row = {"case": name}
        try:
            _, output, feed = check(directory / f"{name}.onnx", case_inputs(directory, name))
            row["checker"] = "ok"
            row["inputs"] = sorted(feed)
            for other in sorted(directory.glob(f"{name}.*.csv")):
                runtime = other.name[len(name) + 1 : -len(".csv")]
                if runtime == "x" or runtime.startswith("in."):
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
    model_path, tract_path = sys.argv[1:3]
    paths = dict(arg.split("=", 1) for arg in sys.argv[3:])
    model, output, feed = check(model_path, paths)
    d = diff(output, load(tract_path))
    print(json.dumps({
        "checker": "ok",
        "onnxruntime": ort.__version__,
        "opset": [o.version for o in model.opset_import],
        "inputs": {name: list(x.shape) for name, x in feed.items()},
        "rows": int(next(iter(feed.values())).shape[0]),
        "output_shape": list(output.shape),
        "max_abs_diff": d,
        "metadata": {p.key: p.value for p in model.metadata_props},
    }))
    sys.exit(0 if d <= TOLERANCE else 1)


if __name__ == "__main__":
    main()

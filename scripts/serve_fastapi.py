"""The Python peer of `cargo xtask bench serve`: FastAPI + uvicorn + onnxruntime serving a
run's model.onnx the way a user would write it by hand.

Usage: python serve_fastapi.py RUN_DIR PORT [WORKERS]

POST /predict takes {"rows": [{column: value, ...}, ...]} like autodl's server. The graph
imputes, clips and standardises the numeric columns itself (input `numeric`, float64, NaN for
missing); this server encodes the categorical columns the way the model's metadata describes
(one-hot and frequency encoding into input `encoded`; other step kinds are refused at
start-up) with numpy, runs onnxruntime (one intra-op thread), and answers
{"predictions": [{"label": ..., "probabilities": {...}}]} or [{"value": ...}]. A missing
column or a wrong type is a 422 (FastAPI's own validation would give the same status).
GET /health answers {"status": "ok"}.
"""
import json
import pathlib
import sys

import numpy as np
import onnxruntime as ort
import uvicorn
from fastapi import FastAPI, HTTPException, Request

run = pathlib.Path(sys.argv[1])
port = int(sys.argv[2])
workers = int(sys.argv[3]) if len(sys.argv) > 3 else 1
transform = json.loads((run / "data/transform.json").read_text())
exported = json.loads((run / "export.json").read_text())
options = ort.SessionOptions()
options.intra_op_num_threads = 1
options.inter_op_num_threads = 1
session = ort.InferenceSession(str(run / exported["onnx_path"]), options,
                               providers=["CPUExecutionProvider"])
inputs = {i.name: i for i in session.get_inputs()}
output = exported["output"]
labels = output.get("labels")
output_names = [exported.get("value_output_name") or exported["output_name"]]

steps = transform["steps"]
for step in steps:
    if step["kind"] not in ("numeric", "one_hot", "frequency"):
        sys.exit(f"serve_fastapi.py handles numeric, one-hot and frequency steps, not {step['kind']}")
numeric = [s for s in steps if s["kind"] == "numeric"]
others = [s for s in steps if s["kind"] != "numeric"]
width = sum(len(s["categories"]) + bool(s.get("other")) if s["kind"] == "one_hot" else 1
            for s in others)


def values_of(rows, name):
    values = []
    for r, row in enumerate(rows):
        if name not in row:
            raise HTTPException(422, f"row {r} lacks column '{name}'")
        values.append(row[name])
    return values


def encode(rows):
    feed = {}
    if "numeric" in inputs:
        x = np.full((len(rows), len(numeric)), np.nan)
        for j, s in enumerate(numeric):
            for r, value in enumerate(values_of(rows, s["column"])):
                if value is None:
                    continue
                if isinstance(value, (int, float)):
                    x[r, j] = value
                else:
                    try:
                        x[r, j] = float(value)
                    except (TypeError, ValueError):
                        raise HTTPException(422, f"row {r}, column '{s['column']}': expected a number")
        feed["numeric"] = x
    if "encoded" in inputs:
        x = np.zeros((len(rows), width), dtype=np.float32)
        offset = 0
        for s in others:
            values = values_of(rows, s["column"])
            if s["kind"] == "one_hot":
                index = {c: k for k, c in enumerate(s["categories"])}
                for r, value in enumerate(values):
                    label = s["impute"] if value is None else str(value)
                    k = index.get(label, len(s["categories"]) if s.get("other") else None)
                    if k is not None:
                        x[r, offset + k] = 1.0
                offset += len(s["categories"]) + bool(s.get("other"))
            else:
                freq = dict(s["frequencies"])
                for r, value in enumerate(values):
                    x[r, offset] = freq.get(s["impute"] if value is None else str(value), 0.0)
                offset += 1
        feed["encoded"] = x
    return feed


app = FastAPI()


@app.get("/health")
def health():
    return {"status": "ok"}


@app.post("/predict")
async def predict(request: Request):
    try:
        body = json.loads(await request.body())
    except json.JSONDecodeError as e:
        raise HTTPException(400, f"malformed JSON: {e}")
    rows = body["rows"] if isinstance(body, dict) and "rows" in body else body
    if isinstance(rows, dict):
        rows = [rows]
    if not isinstance(rows, list) or not rows or not all(isinstance(r, dict) for r in rows):
        raise HTTPException(422, "send {\"rows\": [objects]}")
    (y,) = session.run(output_names, encode(rows))
    if labels is not None:
        return {"predictions": [
            {"label": labels[int(np.argmax(p))],
             "probabilities": {l: float(q) for l, q in zip(labels, p)}}
            for p in y
        ]}
    return {"predictions": [{"value": float(v[0])} for v in y]}


if __name__ == "__main__":
    uvicorn.run("serve_fastapi:app" if workers > 1 else app, host="127.0.0.1", port=port,
                workers=workers, log_level="warning", access_log=False)

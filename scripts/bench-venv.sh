#!/usr/bin/env bash
# Installs the benchmark peers into a venv outside the repository (default
# ~/.cache/autodl-bench-venv): Optuna, PyTorch (the PyPI wheel, about 5 GB with its CUDA
# libraries; it runs on the CPU here), numpy, pandas + scikit-learn + pyarrow (the data
# stage's peers), onnxruntime + FastAPI + uvicorn (the deploy stage's peers) and Evidently
# (the monitor's peer; pandas stays below 3, which Evidently 0.7 does not support). Only `cargo xtask bench` needs it;
# tests never do. Prints the venv's python path.
set -euo pipefail
VENV="${AUTODL_BENCH_VENV:-$HOME/.cache/autodl-bench-venv}"
if [ ! -x "$VENV/bin/python" ]; then
    python3 -m venv "$VENV"
fi
if ! "$VENV/bin/python" -c "import torch, numpy, optuna" 2>/dev/null; then
    echo "installing torch and numpy into $VENV (a large download, once)" >&2
    "$VENV/bin/pip" install --quiet --disable-pip-version-check torch numpy optuna
fi
if ! "$VENV/bin/python" -c "import pandas, sklearn, pyarrow" 2>/dev/null; then
    echo "installing pandas, scikit-learn and pyarrow into $VENV" >&2
    "$VENV/bin/pip" install --quiet --disable-pip-version-check "pandas<3" "scikit-learn<1.8" pyarrow
fi
if ! "$VENV/bin/python" -c "import onnxruntime, fastapi, uvicorn" 2>/dev/null; then
    echo "installing onnxruntime, fastapi and uvicorn into $VENV" >&2
    "$VENV/bin/pip" install --quiet --disable-pip-version-check onnxruntime fastapi "uvicorn[standard]"
fi
if ! "$VENV/bin/python" -c "from evidently.presets import DataDriftPreset" 2>/dev/null; then
    echo "installing evidently into $VENV" >&2
    "$VENV/bin/pip" install --quiet --disable-pip-version-check evidently "pandas<3"
fi
echo "$VENV/bin/python"

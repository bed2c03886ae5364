#!/usr/bin/env bash
# Installs the benchmark peers into a venv outside the repository (default
# ~/.cache/autodl-bench-venv): Optuna, and PyTorch (the PyPI wheel, about 5 GB with its CUDA
# libraries; it runs on the CPU here) and numpy. Only `cargo xtask bench` needs it;
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
echo "$VENV/bin/python"

#!/usr/bin/env bash
# Creates (once) the Python virtual environment holding the oracles the tests compare against:
# onnx (onnx.checker), onnxruntime, numpy, scipy, scikit-learn (isotonic calibration) and
# river (streaming drift detectors).
# Prints the venv's python path on stdout.
#
# Location: $AUTODL_ORACLE_VENV if set, else <repo>/.venv (ignored by git).
# Everything comes from PyPI; nothing is downloaded at test time once this has run.
set -euo pipefail
here="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
venv="${AUTODL_ORACLE_VENV:-$here/.venv}"
requirements="$here/scripts/oracle-requirements.txt"
stamp="$venv/.autodl-requirements"
if [ -x "$venv/bin/python" ] && [ -f "$stamp" ] && cmp -s "$requirements" "$stamp"; then
  echo "$venv/bin/python"
  exit 0
fi
py="$(command -v python3 || true)"
if [ -z "$py" ] || ! "$py" -c 'import venv, ensurepip' 2>/dev/null; then
  if [ "$(id -u)" = 0 ] && command -v apt-get >/dev/null; then
    echo "oracle-venv: installing python3 and python3-venv from Debian" >&2
    DEBIAN_FRONTEND=noninteractive apt-get update -qq >&2
    DEBIAN_FRONTEND=noninteractive apt-get install -y -qq python3 python3-venv >&2
    py="$(command -v python3)"
  else
    echo "oracle-venv: python3 with the venv module is required (apt-get install python3-venv)" >&2
    exit 1
  fi
fi
echo "oracle-venv: creating $venv" >&2
"$py" -m venv "$venv" >&2
"$venv/bin/python" -m pip install --quiet --disable-pip-version-check -r "$requirements" >&2
cp "$requirements" "$stamp"
echo "$venv/bin/python"

#!/usr/bin/env bash
# Makes ./.venv ready to run fastnerf from this checkout: creates it once, installs torch (if
# the venv has none), fastnerf in editable mode with its test dependencies, then rebuilds
# fastnerf._C incrementally (ninja recompiles only what changed). Safe to run again.
#   TORCH_SPEC   what to pip-install when the venv has no torch (default torch==2.13.0)
#   PYTHON       the interpreter that creates the venv (default python3)
set -euo pipefail
cd "$(dirname "$0")/.."

if [ ! -x .venv/bin/python ]; then
  "${PYTHON:-python3}" -m venv .venv
fi
# shellcheck disable=SC1091
. .venv/bin/activate
export PIP_DISABLE_PIP_VERSION_CHECK=1

if ! python -c "import torch" 2>/dev/null; then
  pip install -q "${TORCH_SPEC:-torch==2.13.0}"
fi
if ! python -c "import fastnerf, triton, hypothesis, setuptools, ninja" 2>/dev/null; then
  pip install -q setuptools wheel ninja
  pip install -q --no-build-isolation -e ".[test]"   # builds fastnerf._C in place
else
  python setup.py -q build_ext --inplace 2>&1 | grep -vE "^(ptxas info|copying |running |building )" || true
fi
python -c "import fastnerf._C" || { echo "fastnerf._C failed to build; see the compiler output above" >&2; exit 1; }

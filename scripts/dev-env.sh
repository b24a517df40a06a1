#!/usr/bin/env bash
# Makes ./.venv ready to run fastnerf from this checkout: creates it once, installs torch (if
# the venv has none), fastnerf in editable mode with its test dependencies, then builds
# fastnerf._C in place. Safe to run again: later runs only recompile what changed.
#   TORCH_SPEC   what to pip-install when the venv has no torch (default torch==2.13.0)
#   PYTHON       the interpreter that creates the venv (default python3)
#
# Why two steps: pip's editable install compiles the extension in a temporary folder that it
# deletes, so every `pip install -e .` recompiles everything, and `build_ext --inplace` keeps
# its own objects in ./build. So the package is installed once without the extension
# (FASTNERF_SKIP_EXT=1, read by setup.py) and the extension is always built by build_ext in
# ./build, where ninja and setuptools see what is up to date.
set -euo pipefail
cd "$(dirname "$0")/.."

if [ ! -x .venv/bin/python ]; then
  "${PYTHON:-python3}" -m venv .venv
fi
# shellcheck disable=SC1091
. .venv/bin/activate
export PIP_DISABLE_PIP_VERSION_CHECK=1

# Presence checks by find_spec and metadata: importing torch only to see that it is there would
# cost seconds on every run. (`import fastnerf` would succeed from the checkout uninstalled.)
installed() { python -c "import importlib.util as u, sys; sys.exit(not all(u.find_spec(m) for m in sys.argv[1:]))" "$@"; }
if ! installed torch; then
  pip install -q "${TORCH_SPEC:-torch==2.13.0}"
fi
if ! installed triton hypothesis setuptools ninja onnx onnxscript onnxruntime pycolmap viser playwright imageio_ffmpeg || ! python -c "import importlib.metadata as m; m.distribution('fastnerf')" 2>/dev/null; then
  pip install -q setuptools wheel ninja
  FASTNERF_SKIP_EXT=1 pip install -q --no-build-isolation -e ".[test,export]"
fi

set +e
python setup.py -q build_ext --inplace 2>&1 | grep -vE "^(ptxas info|copying |running |building |skipping )"
build_status=${PIPESTATUS[0]}
set -e
if [ "$build_status" -ne 0 ] || ! python -c "import fastnerf._C"; then
  echo "fastnerf._C failed to build; see the compiler output above" >&2
  exit 1
fi

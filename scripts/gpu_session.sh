#!/usr/bin/env bash
# One full GPU check, for a machine with a CUDA GPU, PyTorch, Triton and nvcc (e.g. a lent H100):
# build the CUDA extension, run every test (GPU ones included), run the benchmarks on the GPU.
# Logs and result files go to ${OUT:-gpu-results}/. Copy the tables into benchmarks/RESULTS.md
# with the device and commit they print.
set -uo pipefail
cd "$(dirname "$0")/.."
OUT=${OUT:-gpu-results}
mkdir -p "$OUT"
export PYTHONUNBUFFERED=1
nvidia-smi --query-gpu=name,driver_version,memory.total --format=csv | tee "$OUT/gpu.txt"
python3 -m pip install --no-build-isolation --no-deps -e . 2>&1 | tail -3 | tee "$OUT/build.log"
python3 -c "import fastnerf, torch; print(fastnerf.backends.available('cuda'), torch.__version__)" | tee -a "$OUT/build.log"
python3 -m pytest -q -x tests 2>&1 | tee "$OUT/tests.log" | tail -15
python3 -m fastnerf bench --device cuda --out "$OUT" 2>&1 | tee "$OUT/bench.log" | tail -40

#!/usr/bin/env bash
# Compiles every csrc/**/*.cu with nvcc for the CI architectures (sm_80, sm_90) using the flags
# in fastnerf/_build.py, so CUDA code that does not compile fails CI on a machine with no GPU.
# With torch importable, also syntax-checks the *_cuda.cpp torch bindings against its headers.
set -euo pipefail
cd "$(dirname "$0")/.."
PY=${PYTHON:-python3}
NVCC=${NVCC:-nvcc}
read -r -a FLAGS <<<"$($PY fastnerf/_build.py nvcc-flags)"
read -r -a ARCHS <<<"$($PY fastnerf/_build.py ci-archs)"
GENCODE=()
for arch in "${ARCHS[@]}"; do GENCODE+=("-gencode=arch=compute_${arch},code=sm_${arch}"); done
out=$(mktemp -d)
trap 'rm -rf "$out"' EXIT

status=0
while IFS= read -r cu; do
  echo "nvcc ${cu} (sm_${ARCHS[*]})"
  if ! "$NVCC" "${FLAGS[@]}" "${GENCODE[@]}" -Icsrc -c "$cu" -o "$out/$(basename "$cu").o" 2>"$out/log"; then
    cat "$out/log"; status=1
  else
    grep -E "spill|error|warning" "$out/log" | grep -v " 0 bytes spill" || true
  fi
done < <(find csrc -name '*.cu' | sort)

if $PY -c "import torch" 2>/dev/null; then
  # A CPU build of torch ships the c10/cuda headers but not this generated one.
  mkdir -p "$out/stub/c10/cuda/impl" && echo "#pragma once" >"$out/stub/c10/cuda/impl/cuda_cmake_macros.h"
  read -r -a TORCH_INC <<<"$($PY -c 'from torch.utils.cpp_extension import include_paths; print(" ".join("-I" + p for p in include_paths()))')"
  PY_INC=$($PY -c 'import sysconfig; print(sysconfig.get_paths()["include"])')
  CUDA_INC=$($PY -c 'from torch.utils.cpp_extension import CUDA_HOME; print(CUDA_HOME or "/usr/local/cuda")')/include
  while IFS= read -r binding; do
    echo "syntax ${binding}"
    g++ -std=c++17 -fsyntax-only -w -DFASTNERF_WITH_CUDA -Icsrc "${TORCH_INC[@]}" -I"$out/stub" -I"$CUDA_INC" \
      -I"$PY_INC" "$binding" || status=1
  done < <(find csrc -name '*_cuda.cpp' | sort)
fi
exit $status

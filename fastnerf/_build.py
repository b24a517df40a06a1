"""The one place that says how fastnerf._C is built (read by setup.py and .ci/run).

Kept free of package imports so setup.py can load it by path before fastnerf is installed.
"""

import glob
import os
import shutil

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
CSRC = os.path.join(ROOT, "csrc")

# The C++ standard is left to torch: its headers decide what they need (C++17 or later).
CXX_FLAGS = ["-O3"]
# -Xptxas -v prints registers/spills per kernel; the build log then answers "did it spill?".
NVCC_FLAGS = ["-O3", "-std=c++17", "--use_fast_math", "-Xptxas", "-v"]
# CI compiles every .cu for these when TORCH_CUDA_ARCH_LIST is not set.
CI_CUDA_ARCHS = ("80", "90")


def relative(paths):
    return sorted(os.path.relpath(p, ROOT) for p in paths)


def cpu_sources():
    """Host C++: schemas, CPU kernels, the module stub. CUDA bindings are excluded."""
    every = glob.glob(os.path.join(CSRC, "**", "*.cpp"), recursive=True)
    return relative(p for p in every if not p.endswith("_cuda.cpp"))


def cuda_sources():
    """`*_cuda.cpp` (torch bindings for CUDA) and every `.cu` (raw kernels and launchers)."""
    bindings = glob.glob(os.path.join(CSRC, "**", "*_cuda.cpp"), recursive=True)
    kernels = glob.glob(os.path.join(CSRC, "**", "*.cu"), recursive=True)
    return relative(bindings + kernels)


def want_cuda():
    """Build CUDA sources iff a toolkit and a CUDA build of torch exist, unless FASTNERF_NO_CUDA=1."""
    if os.environ.get("FASTNERF_NO_CUDA", "0") == "1":
        return False
    import torch
    from torch.utils.cpp_extension import CUDA_HOME

    return torch.version.cuda is not None and CUDA_HOME is not None and shutil.which("nvcc") is not None


def extension():
    """The `fastnerf._C` extension for setuptools."""
    from torch.utils import cpp_extension

    include_dirs = [CSRC]
    with_cuda = want_cuda()
    define_macros = [("FASTNERF_WITH_CUDA", "1")] if with_cuda else []
    # Py_LIMITED_API is not used: the module is a stub that only loads the torch.library registrations.
    common = dict(include_dirs=include_dirs, define_macros=define_macros)
    if with_cuda:
        return cpp_extension.CUDAExtension(
            "fastnerf._C",
            cpu_sources() + cuda_sources(),
            extra_compile_args={"cxx": CXX_FLAGS, "nvcc": NVCC_FLAGS},
            **common,
        )
    cxx = CXX_FLAGS + (["-fopenmp"] if _openmp_ok() else [])
    return cpp_extension.CppExtension(
        "fastnerf._C",
        cpu_sources(),
        extra_compile_args={"cxx": cxx},
        extra_link_args=["-fopenmp"] if _openmp_ok() else [],
        **common,
    )


def _openmp_ok():
    # at::parallel_for uses torch's own thread pool (OpenMP in the Linux wheels); linking
    # -fopenmp matches it. macOS clang lacks it, and at::parallel_for still works without.
    import sys

    return sys.platform.startswith("linux")


if __name__ == "__main__":  # for scripts/check_cuda.sh: python fastnerf/_build.py nvcc-flags|ci-archs
    import sys

    print(" ".join({"nvcc-flags": NVCC_FLAGS, "ci-archs": CI_CUDA_ARCHS}[sys.argv[1]]))

"""The one place that says how fastnerf._C is built (read by setup.py and .ci/run).

Kept free of package imports so setup.py can load it by path before fastnerf is installed.
"""

import glob
import json
import os
import shutil

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
CSRC = os.path.join(ROOT, "csrc")

# The C++ standard is left to torch: its headers decide what they need (C++17 or later).
# -ffp-contract=off: the host compiler never fuses a * b + c into an FMA (GCC's default is to fuse
# wherever the target has FMA: aarch64, or x86-64 with -march=native). ray_aabb and march_rays
# promise results bitwise equal to the PyTorch reference, which rounds every product and sum.
# Explicit FMA (std::fma, _mm256_fmadd_ps) still works where a fast path wants it.
CXX_FLAGS = ["-O3", "-ffp-contract=off"]
# Device code: --use_fast_math lets nvcc contract and approximate everywhere (hash_encode,
# composite and freq_encode promise a tolerance, not bits). The bitwise math of ray_aabb and
# march_rays calls __fadd_rn/__fmul_rn/__fdiv_rn (add_rn & co. in csrc/ray_aabb/ray_aabb.h),
# which nvcc never fuses nor approximates. -Xcompiler: the same rule for host code in .cu files.
# -Xptxas -v prints registers/spills per kernel; the build log then answers "did it spill?".
NVCC_FLAGS = ["-O3", "-std=c++17", "--use_fast_math", "-Xcompiler=-ffp-contract=off", "-Xptxas", "-v"]
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


def headers():
    """Every header under csrc/, for setuptools' up-to-date check when the build runs without
    ninja (then a changed header rebuilds the extension; with ninja, torch always runs ninja,
    which recompiles just the files that include it and relinks)."""
    return relative(glob.glob(os.path.join(CSRC, "**", "*.h"), recursive=True))


def build_record(with_cuda):
    """What the extension is built with, compiled into it: torch.ops.fastnerf.build_info().

    Only values that stay the same from one build to the next (no time, no commit): a change here
    changes the compile command of module.cpp and so recompiles it.
    """
    import torch

    record = {"torch": torch.__version__, "cxx_flags": CXX_FLAGS, "cuda": None}
    if with_cuda:
        record.update(cuda=torch.version.cuda, nvcc_flags=NVCC_FLAGS,
                      cuda_archs=os.environ.get("TORCH_CUDA_ARCH_LIST") or "default")
    return record


def _record_define(with_cuda):
    # A C string literal holding the record's JSON, defined for the host C++ files only
    # (extra_compile_args["cxx"]); torch quotes each argument for the shell.
    return "-DFASTNERF_BUILD_RECORD=" + json.dumps(json.dumps(build_record(with_cuda), sort_keys=True))


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
    common = dict(include_dirs=include_dirs, define_macros=define_macros, depends=headers())
    if with_cuda:
        return cpp_extension.CUDAExtension(
            "fastnerf._C",
            cpu_sources() + cuda_sources(),
            extra_compile_args={"cxx": CXX_FLAGS + [_record_define(True)], "nvcc": NVCC_FLAGS},
            **common,
        )
    cxx = CXX_FLAGS + (["-fopenmp"] if _openmp_ok() else []) + [_record_define(False)]
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
